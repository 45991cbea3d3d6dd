/* fuzz_dkim: libFuzzer target for mailauth/dkim's parsers and canonicalizers:
 * DKIM-Signature tag lists, key records, header-field and streamed body
 * canonicalization, on arbitrary bytes. Built and run by `make fuzz` and
 * `make fuzz-long`.
 *
 * Input: one byte (the chunk size for the body, 1..256), then NUL-separated
 * fields: a DKIM-Signature value, a key record, a header field; the rest of
 * the input (NULs included) is a message body. The verifier then runs on
 * the header "DKIM-Signature:<value>CRLF<field>CRLF" and the body, every key
 * lookup answered (later) with the key record (an empty one: TEMPFAIL).
 *
 * Checks, besides the sanitizers, what dkim.h promises:
 *  - a refused signature or key leaves no object and a reason that is
 *    non-empty, shorter than DKIM_REASON_MAX and printable ASCII; an
 *    accepted signature has a domain and a selector that are valid names;
 *  - relaxed header canonicalization ends in one CRLF and is idempotent
 *    (canonicalizing its output again changes nothing);
 *  - body canonicalization gives the same bytes and the same hash whether
 *    the body comes whole, byte by byte or in chunks of the given size; the
 *    output is empty or ends in exactly one CRLF (never an empty line); both
 *    canonicalizations are idempotent;
 *  - the verifier finds at most DKIM_MAX_SIGS signatures, calls done exactly
 *    once when dkim_verify_end returned 0 and never otherwise, and gives
 *    every signature a result with a printable reason (empty only on pass)
 *    and printable identifiers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "mailauth/dkim.h"
#include "util/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require_reason(const char *why)
{
    size_t n = strlen(why);
    FUZZ_REQUIRE(n > 0 && n < DKIM_REASON_MAX);
    for (size_t k = 0; k < n; k++)
        FUZZ_REQUIRE(why[k] >= 0x20 && why[k] <= 0x7e);
}

static int valid_name(const char *s)
{
    if (!s[0] || strlen(s) > 253)
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '.' || *p == '_'))
            return 0;
    return 1;
}

static void canon_body(enum dkim_canon c, const uint8_t *body, size_t len, size_t chunk, struct strbuf *out,
                       unsigned char hash[32])
{
    struct dkim_body *b = dkim_body_new(c);
    dkim_body_tee(b, out);
    for (size_t o = 0; o < len;) {
        size_t n = chunk && len - o > chunk ? chunk : len - o;
        dkim_body_update(b, body + o, n);
        o += n;
    }
    dkim_body_final(b, hash);
    dkim_body_free(b);
}

/* A DNS whose answers come when the target says so: every lookup of the
 * run gets the key record as one TXT record. */
struct fdns {
    int pending, cancelled, delivered;
    dns_rrset_cb cb[DKIM_MAX_SIGS];
    void *arg[DKIM_MAX_SIGS];
    int live[DKIM_MAX_SIGS];
};

static struct mailauth_dns_query *fdns_lookup(void *ctx, const char *name, int rrtype, dns_rrset_cb cb, void *arg)
{
    struct fdns *d = ctx;
    FUZZ_REQUIRE(rrtype == DNS_TYPE_TXT && strstr(name, "._domainkey.") != NULL);
    FUZZ_REQUIRE(d->pending < DKIM_MAX_SIGS);
    int i = d->pending++;
    d->cb[i] = cb;
    d->arg[i] = arg;
    d->live[i] = 1;
    return (struct mailauth_dns_query *)&d->live[i];
}

static void fdns_cancel(void *ctx, struct mailauth_dns_query *q)
{
    struct fdns *d = ctx;
    int *live = (int *)q;
    FUZZ_REQUIRE(*live == 1);
    *live = 0;
    d->cancelled++;
}

static struct dns_rrset *fdns_answer(const char *key)
{
    struct dns_rrset *rs = xcalloc(1, sizeof *rs);
    rs->rrtype = DNS_TYPE_TXT;
    size_t len = strlen(key);
    if (len == 0) {
        rs->status = DNS_TEMPFAIL;
        rs->why = xstrdup("timeout");
        return rs;
    }
    rs->status = DNS_OK;
    rs->nrrs = 1;
    rs->rrs = xcalloc(1, sizeof *rs->rrs);
    struct strbuf rd = STRBUF_INIT;
    for (size_t o = 0; o < len; o += 255) {
        size_t n = len - o < 255 ? len - o : 255;
        strbuf_putc(&rd, (char)n);
        strbuf_append(&rd, key + o, n);
    }
    rs->rrs[0].len = rd.len;
    rs->rrs[0].data = (unsigned char *)strbuf_detach(&rd);
    return rs;
}

static void printable(const char *s, size_t max)
{
    size_t n = strlen(s);
    FUZZ_REQUIRE(n < max);
    for (size_t k = 0; k < n; k++)
        FUZZ_REQUIRE(s[k] >= 0x20 && s[k] <= 0x7e);
}

static void on_done(void *arg, struct dkim_verify *v)
{
    (void)v;
    (*(int *)arg)++;
}

static void run_verifier(const char *sigv, const char *keyv, const char *field, const uint8_t *body, size_t blen,
                         size_t chunk)
{
    struct fdns d = {0};
    struct mailauth_dns dns = {.lookup = fdns_lookup, .cancel = fdns_cancel, .ctx = &d};
    struct strbuf hdr = STRBUF_INIT;
    strbuf_printf(&hdr, "DKIM-Signature:%s\r\n%s\r\n", sigv, field);
    int done = 0;
    struct dkim_verify *v = dkim_verify_new(&dns, hdr.buf, hdr.len, 1528637909, on_done, &done);
    strbuf_free(&hdr);
    for (size_t o = 0; o < blen; o += chunk)
        dkim_verify_body(v, body + o, blen - o < chunk ? blen - o : chunk);
    int ready = dkim_verify_end(v);
    FUZZ_REQUIRE(done == 0);
    FUZZ_REQUIRE(ready == (d.pending == 0));
    for (int i = 0; i < d.pending; i++) {
        FUZZ_REQUIRE(d.live[i]);
        d.live[i] = 0;
        d.delivered++;
        d.cb[i](d.arg[i], fdns_answer(keyv));
    }
    FUZZ_REQUIRE(done == (ready ? 0 : 1));
    size_t n = dkim_verify_count(v);
    FUZZ_REQUIRE(n <= DKIM_MAX_SIGS);
    for (size_t i = 0; i < n; i++) {
        const struct dkim_result *r = dkim_verify_result(v, i);
        printable(r->reason, DKIM_REASON_MAX);
        FUZZ_REQUIRE((r->status == DKIM_PASS) == (r->reason[0] == '\0'));
        printable(r->d, sizeof r->d);
        printable(r->i, sizeof r->i);
        printable(r->s, sizeof r->s);
        printable(r->a, sizeof r->a);
        printable(r->b, sizeof r->b);
    }
    dkim_verify_free(v);
    FUZZ_REQUIRE(d.cancelled == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_fields f = {data, size, 0};
    size_t chunk = fuzz_byte(&f) + 1;
    char *sigv = fuzz_field(&f), *keyv = fuzz_field(&f), *field = fuzz_field(&f);
    size_t blen;
    const uint8_t *body = fuzz_rest(&f, &blen);
    char why[DKIM_REASON_MAX];

    struct dkim_sig *sig = (struct dkim_sig *)1;
    if (dkim_sig_parse(sigv, strlen(sigv), &sig, why) == 0) {
        FUZZ_REQUIRE(sig != NULL);
        FUZZ_REQUIRE(valid_name(dkim_sig_domain(sig)));
        FUZZ_REQUIRE(valid_name(dkim_sig_selector(sig)));
        dkim_sig_free(sig);
    } else {
        FUZZ_REQUIRE(sig == NULL);
        require_reason(why);
    }
    struct dkim_key *key = (struct dkim_key *)1;
    if (dkim_key_parse(keyv, strlen(keyv), &key, why) == 0) {
        FUZZ_REQUIRE(key != NULL);
        dkim_key_free(key);
    } else {
        FUZZ_REQUIRE(key == NULL);
        require_reason(why);
    }

    struct strbuf h1 = STRBUF_INIT, h2 = STRBUF_INIT;
    dkim_canon_header(DKIM_CANON_RELAXED, field, strlen(field), &h1);
    FUZZ_REQUIRE(h1.len >= 2 && memcmp(h1.buf + h1.len - 2, "\r\n", 2) == 0);
    dkim_canon_header(DKIM_CANON_RELAXED, h1.buf, h1.len - 2, &h2);
    FUZZ_REQUIRE(h1.len == h2.len && memcmp(h1.buf, h2.buf, h1.len) == 0);
    strbuf_free(&h1);
    strbuf_free(&h2);

    for (int c = 0; c < 2; c++) {
        struct strbuf whole = STRBUF_INIT, bytes = STRBUF_INIT, cut = STRBUF_INIT, again = STRBUF_INIT;
        unsigned char hw[32], hb[32], hc[32], ha[32];
        canon_body((enum dkim_canon)c, body, blen, 0, &whole, hw);
        canon_body((enum dkim_canon)c, body, blen, 1, &bytes, hb);
        canon_body((enum dkim_canon)c, body, blen, chunk, &cut, hc);
        FUZZ_REQUIRE(whole.len == bytes.len && whole.len == cut.len);
        FUZZ_REQUIRE(whole.len == 0 || (memcmp(whole.buf, bytes.buf, whole.len) == 0 &&
                                        memcmp(whole.buf, cut.buf, whole.len) == 0));
        FUZZ_REQUIRE(memcmp(hw, hb, 32) == 0 && memcmp(hw, hc, 32) == 0);
        if (whole.len > 0) {
            FUZZ_REQUIRE(whole.len >= 2 && memcmp(whole.buf + whole.len - 2, "\r\n", 2) == 0);
            FUZZ_REQUIRE(whole.len == 2 || whole.len < 4 || memcmp(whole.buf + whole.len - 4, "\r\n\r\n", 4) != 0);
        } else {
            FUZZ_REQUIRE(c == DKIM_CANON_RELAXED); /* simple: an empty body is CRLF */
        }
        canon_body((enum dkim_canon)c, (const uint8_t *)(whole.len ? whole.buf : ""), whole.len, chunk, &again, ha);
        FUZZ_REQUIRE(again.len == whole.len && memcmp(ha, hw, 32) == 0);
        strbuf_free(&whole);
        strbuf_free(&bytes);
        strbuf_free(&cut);
        strbuf_free(&again);
    }
    run_verifier(sigv, keyv, field, body, blen, chunk);
    free(sigv);
    free(keyv);
    free(field);
    return 0;
}
