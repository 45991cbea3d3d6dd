/* fuzz_spf: libFuzzer target for the SPF module (src/mailauth/spf*.c): the
 * record parser, the macro expander, and whole checks over a fake DNS
 * whose every TXT answer is the fuzzed record. Built and run by
 * `make fuzz` and `make fuzz-long`.
 *
 * Input: an options byte, then NUL-terminated fields:
 *   record text (v=spf1 ...), a macro-string, the sender's local-part, the
 *   domain, the HELO name, the validated name for %{p}, then the rest as
 *   the client address (16 octets used, padded with zeros).
 * Options byte: 0x01 IPv6 client (else IPv4), 0x02 expand with
 * SPF_MACRO_DOMAIN, 0x04 with SPF_MACRO_EXPLAIN, 0x08 the HELO identity,
 * 0x10 answers are empty (NODATA) for A/AAAA, 0x20 TXT times out after the
 * first answer; the high two bits: cancel the check after that many
 * (times 8) answers, 0 never.
 *
 * Checks, besides the sanitizers:
 *   - spf_record_parse: a record xor an error, the error printable and at
 *     most 200 octets;
 *   - spf_macro_expand: an output xor an error, both printable US-ASCII;
 *     the output at most SPF_EXPAND_MAX octets, at most 253 (SPF_DOMAIN_MAX)
 *     with SPF_MACRO_DOMAIN (§7.3);
 *   - a check: the callback exactly once, never inside spf_check_start,
 *     never after a cancel; its strings printable, an explanation only on
 *     fail and at most SPF_EXPLANATION_MAX octets, a problem on
 *     temperror/permerror; at most one lookup pending at a time, and at
 *     most 1 + 10 * 11 + 11 + 2 lookups in all (spf.h's bound). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "mailauth/spf.h"
#include "util/log.h"
#include "util/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_SPF_MAX_LOOKUPS (1 + 10 * 11 + 11 + 2)

static void require_printable(const char *s, size_t max)
{
    FUZZ_REQUIRE(s != NULL);
    size_t n = 0;
    for (; s[n]; n++)
        FUZZ_REQUIRE((unsigned char)s[n] >= 0x20 && (unsigned char)s[n] < 0x7f);
    FUZZ_REQUIRE(n <= max);
}

/* ---- a fake DNS: one pending lookup, answered from the input ---- */

struct mailauth_dns_query {
    int rrtype;
    dns_rrset_cb cb;
    void *arg;
};

struct fake {
    const char *record;
    unsigned opts;
    unsigned char ip[16];
    int family;
    struct mailauth_dns_query *pending;
    size_t lookups, answered;
    int in_start;
};

static struct mailauth_dns_query *fake_lookup(void *ctx, const char *name, int rrtype, dns_rrset_cb cb, void *arg)
{
    struct fake *f = ctx;
    (void)name;
    FUZZ_REQUIRE(f->pending == NULL); /* one at a time */
    f->lookups++;
    FUZZ_REQUIRE(f->lookups <= FUZZ_SPF_MAX_LOOKUPS);
    struct mailauth_dns_query *q = xcalloc(1, sizeof *q);
    q->rrtype = rrtype;
    q->cb = cb;
    q->arg = arg;
    f->pending = q;
    return q;
}

static void fake_cancel(void *ctx, struct mailauth_dns_query *q)
{
    struct fake *f = ctx;
    FUZZ_REQUIRE(q != NULL && q == f->pending);
    free(q);
    f->pending = NULL;
}

static void add_rr(struct dns_rrset *rs, const void *p, size_t len)
{
    rs->rrs = xrealloc(rs->rrs, (rs->nrrs + 1) * sizeof *rs->rrs);
    rs->rrs[rs->nrrs].data = xmalloc(len ? len : 1);
    memcpy(rs->rrs[rs->nrrs].data, p, len);
    rs->rrs[rs->nrrs].len = len;
    rs->nrrs++;
}

static struct dns_rrset *fake_answer(struct fake *f, int type)
{
    struct dns_rrset *rs = xcalloc(1, sizeof *rs);
    rs->name = xstrdup("fuzz.example");
    rs->rrtype = type;
    rs->status = DNS_OK;
    static const unsigned char name[] = "\4fuzz\7example";
    if (type == DNS_TYPE_TXT) {
        if ((f->opts & 0x20) && f->answered > 0) {
            rs->status = DNS_TEMPFAIL;
            rs->why = xstrdup("timeout");
            return rs;
        }
        /* the record as TXT strings of at most 255 octets */
        size_t len = strlen(f->record), cap = len + len / 255 + 2, n = 0;
        unsigned char *buf = xmalloc(cap);
        const char *p = f->record;
        do {
            size_t l = len > 255 ? 255 : len;
            buf[n++] = (unsigned char)l;
            memcpy(buf + n, p, l);
            n += l;
            p += l;
            len -= l;
        } while (len > 0);
        add_rr(rs, buf, n);
        free(buf);
    } else if (type == DNS_TYPE_A || type == DNS_TYPE_AAAA) {
        if (f->opts & 0x10) {
            rs->status = DNS_NODATA;
            rs->why = xstrdup("nodata");
        } else {
            add_rr(rs, f->ip, type == DNS_TYPE_A ? 4 : 16);
        }
    } else if (type == DNS_TYPE_MX) {
        unsigned char mx[2 + sizeof name];
        mx[0] = 0;
        mx[1] = 10;
        memcpy(mx + 2, name, sizeof name);
        add_rr(rs, mx, sizeof mx);
    } else if (type == DNS_TYPE_PTR) {
        add_rr(rs, name, sizeof name);
    } else {
        rs->status = DNS_INVALID;
        rs->why = xstrdup("invalid");
    }
    return rs;
}

struct seen {
    int calls;
    struct fake *f;
};

static void on_result(void *arg, const struct spf_outcome *out)
{
    struct seen *s = arg;
    FUZZ_REQUIRE(!s->f->in_start);
    FUZZ_REQUIRE(++s->calls == 1);
    FUZZ_REQUIRE(s->f->pending == NULL);
    FUZZ_REQUIRE((unsigned)out->result <= SPF_PERMERROR);
    FUZZ_REQUIRE((out->explanation != NULL) == (out->result == SPF_FAIL));
    if (out->explanation)
        require_printable(out->explanation, SPF_EXPLANATION_MAX);
    FUZZ_REQUIRE((out->problem != NULL) == (out->result == SPF_TEMPERROR || out->result == SPF_PERMERROR));
    if (out->problem)
        require_printable(out->problem, 200);
    if (out->mechanism)
        require_printable(out->mechanism, SPF_RECORD_MAX);
}

static void run_check(struct fake *f, const char *local, const char *domain, const char *helo)
{
    struct mailauth_dns dns = {.lookup = fake_lookup, .cancel = fake_cancel, .ctx = f};
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (f->family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, f->ip, 16);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, f->ip, 4);
    }
    char *sender = xasprintf("%s@%s", local, domain);
    struct spf_request req = {.client = (struct sockaddr *)&ss,
                              .helo = helo,
                              .sender = *local || *domain ? sender : "",
                              .receiver = "mx.fuzz.example",
                              .helo_identity = (f->opts & 0x08) != 0};
    struct seen s = {.f = f};
    f->in_start = 1;
    struct spf_check *c = spf_check_start(&dns, &req, on_result, &s);
    f->in_start = 0;
    free(sender);
    FUZZ_REQUIRE(c != NULL);
    size_t cancel_after = (size_t)(f->opts >> 6) * 8;
    while (s.calls == 0) {
        FUZZ_REQUIRE(f->pending != NULL); /* a check always waits on something */
        if (cancel_after && f->answered == cancel_after) {
            spf_check_cancel(c);
            FUZZ_REQUIRE(f->pending == NULL);
            break;
        }
        struct mailauth_dns_query *q = f->pending;
        f->pending = NULL;
        struct dns_rrset *rs = fake_answer(f, q->rrtype);
        f->answered++;
        dns_rrset_cb cb = q->cb;
        void *arg = q->arg;
        free(q);
        cb(arg, rs);
    }
    FUZZ_REQUIRE(s.calls <= 1);
    FUZZ_REQUIRE(f->pending == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        log_set_stderr(0);
        quiet = 1;
    }
    struct fuzz_fields in = {data, size, 0};
    unsigned opts = fuzz_byte(&in);
    char *record = fuzz_field(&in);
    char *spec = fuzz_field(&in);
    char *local = fuzz_field(&in);
    char *domain = fuzz_field(&in);
    char *helo = fuzz_field(&in);
    char *validated = fuzz_field(&in);
    size_t iplen;
    const uint8_t *ip = fuzz_rest(&in, &iplen);

    struct spf_record *r;
    char *err;
    int rc = spf_record_parse(record, &r, &err);
    FUZZ_REQUIRE(rc == 0 || rc == -1);
    if (rc == 0) {
        FUZZ_REQUIRE(r != NULL && err == NULL);
        spf_record_free(r);
    } else {
        FUZZ_REQUIRE(r == NULL);
        require_printable(err, 200);
        free(err);
    }

    struct spf_macro_ctx m = {.local = local, .domain = domain, .sender_domain = domain, .helo = helo,
                              .validated = validated, .receiver = "mx.fuzz.example", .now = 1700000000};
    char *sender = xasprintf("%s@%s", local, domain);
    m.sender = sender;
    m.family = (opts & 0x01) ? AF_INET6 : AF_INET;
    memcpy(m.ip, ip, iplen < 16 ? iplen : 16);
    int flags = ((opts & 0x02) ? SPF_MACRO_DOMAIN : 0) | ((opts & 0x04) ? SPF_MACRO_EXPLAIN : 0);
    char *out;
    rc = spf_macro_expand(spec, &m, flags, &out, &err);
    FUZZ_REQUIRE(rc == 0 || rc == -1);
    if (rc == 0) {
        FUZZ_REQUIRE(err == NULL);
        require_printable(out, (flags & SPF_MACRO_DOMAIN) ? SPF_DOMAIN_MAX : SPF_EXPAND_MAX);
        free(out);
    } else {
        FUZZ_REQUIRE(out == NULL);
        require_printable(err, 200);
        free(err);
    }

    struct fake f = {.record = record, .opts = opts, .family = m.family};
    memcpy(f.ip, m.ip, 16);
    run_check(&f, local, domain, helo);

    free(sender);
    free(record);
    free(spec);
    free(local);
    free(domain);
    free(helo);
    free(validated);
    return 0;
}
