/* libFuzzer target for the mail-authentication parsers and the DMARC
 * evaluation: dmarc_record_parse, dmarc_from_value, authres_parse,
 * authres_is_ours and authres_build, the report's row lines and mailto:
 * URIs (dmarc_report), all on the whole input; then
 * dmarc_check_start with the input read as NUL-separated fields (the
 * Author Domain, an SPF and two DKIM identifiers, then one DNS answer per
 * query: a status byte and the TXT text) through a resolver whose answers
 * come later, from a queue.
 *
 *   make build/fuzz/fuzz_dmarc && build/fuzz/fuzz_dmarc CORPUS_COPY -max_total_time=60
 *
 * Checks, besides the sanitizers:
 *  - record: an error is non-empty printable ASCII shorter than
 *    DMARC_ERR_MAX; a record has policies in range, at most DMARC_MAX_URIS
 *    URIs each, every URI printable with a scheme and no ',' ';' or blank;
 *  - From: a status in range; an OK domain is lower-case and normalizes to
 *    itself;
 *  - A-R: an error is printable and bounded; a parsed field has keywords for
 *    methods and results, within the bounds; authres_is_ours agrees with the
 *    parsed authserv-id; the field built from the parse is CRLF-only and
 *    re-parses to the same id, methods, results, properties and (printable)
 *    values;
 *  - the check: the callback runs exactly once and never inside the start;
 *    the result and policies are in range; a pass has an aligned
 *    identifier; only a fail applies a policy; t=y lowers it; at most eight
 *    queries per Tree Walk. */
#include <event2/event.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz_util.h"
#include "mailauth/authres.h"
#include "mailauth/dmarc.h"
#include "mailauth/dmarc_report.h"
#include "util/list.h"
#include "util/mem.h"
#include "util/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require_printable(const char *s, size_t max)
{
    size_t n = strlen(s);
    FUZZ_REQUIRE(n > 0 && n < max);
    for (size_t i = 0; i < n; i++)
        FUZZ_REQUIRE(s[i] >= 0x20 && s[i] < 0x7f);
}

static int printable(const char *s)
{
    for (; *s; s++)
        if (*s < 0x20 || *s >= 0x7f)
            return 0;
    return 1;
}

static void check_record(const uint8_t *data, size_t size)
{
    struct dmarc_record r;
    char err[DMARC_ERR_MAX];
    if (dmarc_record_parse((const char *)data, size, &r, err) != 0) {
        require_printable(err, DMARC_ERR_MAX);
        FUZZ_REQUIRE(r.nrua == 0 && r.nruf == 0);
        return;
    }
    FUZZ_REQUIRE(r.p <= DMARC_POLICY_REJECT && r.sp <= DMARC_POLICY_REJECT && r.np <= DMARC_POLICY_REJECT);
    FUZZ_REQUIRE(r.nrua <= DMARC_MAX_URIS && r.nruf <= DMARC_MAX_URIS);
    FUZZ_REQUIRE(r.fo != 0 && !((r.fo & DMARC_FO_0) && (r.fo & DMARC_FO_1)));
    for (size_t i = 0; i < r.nrua + r.nruf; i++) {
        const char *u = i < r.nrua ? r.rua[i] : r.ruf[i - r.nrua];
        FUZZ_REQUIRE(printable(u) && strchr(u, ':') && !strpbrk(u, ",; \t"));
    }
    dmarc_record_free(&r);
}

static void check_from(const uint8_t *data, size_t size)
{
    char *v = xstrndup((const char *)data, size);
    struct dmarc_from f;
    dmarc_from_value(v, &f);
    FUZZ_REQUIRE(f.status <= DMARC_FROM_UTF8_DOMAIN);
    if (f.status == DMARC_FROM_OK) {
        char again[DMARC_DOMAIN_MAX + 1];
        FUZZ_REQUIRE(f.naddrs > 0);
        FUZZ_REQUIRE(dmarc_domain_normalize(f.domain, again) == 0 && strcmp(again, f.domain) == 0);
    } else {
        FUZZ_REQUIRE(f.domain[0] == '\0');
    }
    free(v);
    require_printable(dmarc_from_status_text(f.status), 80);
}

static int same_id(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 0 && a[la - 1] == '.')
        la--;
    if (lb > 0 && b[lb - 1] == '.')
        lb--;
    return la == lb && la > 0 && strncasecmp(a, b, la) == 0;
}

static void check_authres(const uint8_t *data, size_t size)
{
    static const char our[] = "mx.example.org";
    struct authres_parsed r;
    char err[AUTHRES_ERR_MAX];
    int ours = authres_is_ours("Authentication-Results", 22, (const char *)data, size, our);
    FUZZ_REQUIRE(ours == 0 || ours == 1);
    if (authres_parse((const char *)data, size, &r, err) != 0) {
        require_printable(err, AUTHRES_ERR_MAX);
        return;
    }
    FUZZ_REQUIRE(r.authserv_id != NULL && r.nmethods <= AUTHRES_MAX_METHODS);
    FUZZ_REQUIRE(ours == same_id(r.authserv_id, our));
    FUZZ_REQUIRE(!r.none || r.nmethods == 0);
    struct authres_method m[AUTHRES_MAX_METHODS];
    struct authres_prop props[AUTHRES_MAX_METHODS][AUTHRES_MAX_PROPS];
    for (size_t i = 0; i < r.nmethods; i++) {
        const struct authres_parsed_method *pm = &r.methods[i];
        FUZZ_REQUIRE(authres_keyword_ok(pm->method) && authres_keyword_ok(pm->result));
        FUZZ_REQUIRE(pm->nprops <= AUTHRES_MAX_PROPS);
        for (size_t k = 0; k < pm->nprops; k++) {
            FUZZ_REQUIRE(authres_keyword_ok(pm->props[k].ptype) && authres_keyword_ok(pm->props[k].property));
            props[i][k] = (struct authres_prop){pm->props[k].ptype, pm->props[k].property, pm->props[k].value};
        }
        m[i] = (struct authres_method){pm->method, pm->result, NULL, pm->reason, props[i], pm->nprops};
    }
    if (*r.authserv_id != '\0') {
        char *f = authres_build(r.authserv_id, m, r.nmethods);
        FUZZ_REQUIRE(f != NULL);
        size_t flen = strlen(f);
        FUZZ_REQUIRE(fuzz_is_crlf_only(f, flen) && !fuzz_has_8bit(f, flen));
        FUZZ_REQUIRE(authres_field_is_ours(f, flen, r.authserv_id) || !same_id(r.authserv_id, r.authserv_id) ||
                     !printable(r.authserv_id) ||
                     strlen(r.authserv_id) > AUTHRES_VALUE_MAX);
        struct authres_parsed b;
        const char *colon = strchr(f, ':');
        FUZZ_REQUIRE(authres_parse(colon + 1, flen - (size_t)(colon + 1 - f), &b, err) == 0);
        FUZZ_REQUIRE(b.nmethods == r.nmethods && b.none == (r.nmethods == 0));
        if (printable(r.authserv_id) && strlen(r.authserv_id) <= AUTHRES_VALUE_MAX)
            FUZZ_REQUIRE(strcmp(b.authserv_id, r.authserv_id) == 0);
        for (size_t i = 0; i < r.nmethods; i++) {
            const struct authres_parsed_method *x = &r.methods[i], *y = &b.methods[i];
            FUZZ_REQUIRE(strcmp(x->method, y->method) == 0 && strcmp(x->result, y->result) == 0);
            FUZZ_REQUIRE(x->nprops == y->nprops && (x->reason == NULL) == (y->reason == NULL));
            for (size_t k = 0; k < x->nprops; k++) {
                FUZZ_REQUIRE(strcmp(x->props[k].ptype, y->props[k].ptype) == 0);
                FUZZ_REQUIRE(strcmp(x->props[k].property, y->props[k].property) == 0);
                if (printable(x->props[k].value) && strlen(x->props[k].value) <= AUTHRES_VALUE_MAX)
                    FUZZ_REQUIRE(strcmp(x->props[k].value, y->props[k].value) == 0);
            }
        }
        authres_parsed_free(&b);
        free(f);
    }
    authres_parsed_free(&r);
}

/* ---- the check, with answers from the input ---- */

struct fq {
    struct list_node link;
    char *name;
    int type;
    dns_rrset_cb cb;
    void *arg;
};

static struct list queue;
static struct fuzz_fields *answers;
static size_t nqueries;

static struct mailauth_dns_query *fq_lookup(void *ctx, const char *name, int rrtype, dns_rrset_cb cb, void *arg)
{
    (void)ctx;
    struct fq *q = xcalloc(1, sizeof *q);
    q->name = xstrdup(name);
    q->type = rrtype;
    q->cb = cb;
    q->arg = arg;
    list_append(&queue, &q->link);
    nqueries++;
    return (struct mailauth_dns_query *)q;
}

static void fq_cancel(void *ctx, struct mailauth_dns_query *h)
{
    (void)ctx;
    struct fq *q = (struct fq *)h;
    list_remove(&queue, &q->link);
    free(q->name);
    free(q);
}

static const struct mailauth_dns fdns = {fq_lookup, fq_cancel, NULL};

/* The next answer: a status byte, then (for OK) the TXT text as one record
 * of strings of up to 255 bytes. */
static struct dns_rrset *next_answer(const struct fq *q)
{
    struct dns_rrset *rs = xcalloc(1, sizeof *rs);
    rs->name = xstrdup(q->name);
    rs->rrtype = q->type;
    rs->ttl = fuzz_byte(answers);
    static const enum dns_status st[] = {DNS_OK, DNS_NXDOMAIN, DNS_NODATA, DNS_TEMPFAIL, DNS_INVALID};
    rs->status = st[fuzz_byte(answers) % 5];
    char *text = fuzz_field(answers);
    if (rs->status == DNS_OK) {
        size_t len = strlen(text);
        unsigned char *d = xmalloc(len + len / 255 + 2);
        size_t o = 0, at = 0;
        do {
            size_t c = len - at < 255 ? len - at : 255;
            d[o++] = (unsigned char)c;
            memcpy(d + o, text + at, c);
            o += c;
            at += c;
        } while (at < len);
        rs->rrs = xcalloc(1, sizeof *rs->rrs);
        rs->rrs[0].data = d;
        rs->rrs[0].len = o;
        rs->nrrs = 1;
    }
    free(text);
    return rs;
}

static int calls;
static struct dmarc_outcome *outcome;

static void on_done(void *arg, struct dmarc_outcome *o)
{
    (void)arg;
    calls++;
    outcome = o;
}

static void check_walk(const uint8_t *data, size_t size, struct dmarc_cache *cache)
{
    static struct event_base *base;
    if (base == NULL)
        base = event_base_new();
    FUZZ_REQUIRE(base != NULL);
    struct fuzz_fields f = {data, size, 0};
    answers = &f;
    char *author = fuzz_field(&f), *spf = fuzz_field(&f), *d1 = fuzz_field(&f), *d2 = fuzz_field(&f);
    const char *dkim[2] = {d1, d2};
    struct dmarc_auth auth = {spf, *spf != '\0', dkim, 2};
    struct dmarc_env env = {&fdns, cache, base};
    calls = 0;
    nqueries = 0;
    outcome = NULL;
    dmarc_check_start(&env, author, &auth, on_done, NULL);
    FUZZ_REQUIRE(calls == 0);
    for (;;) {
        struct fq *q = LIST_FIRST(&queue, struct fq, link);
        if (q == NULL) {
            event_base_loop(base, EVLOOP_NONBLOCK);
            if (list_empty(&queue))
                break;
            continue;
        }
        list_remove(&queue, &q->link);
        q->cb(q->arg, next_answer(q));
        free(q->name);
        free(q);
    }
    FUZZ_REQUIRE(calls == 1);
    struct dmarc_outcome *o = outcome;
    FUZZ_REQUIRE(o->result <= DMARC_RESULT_PERMERROR && o->applied <= DMARC_POLICY_REJECT);
    require_printable(o->reason, 4096);
    FUZZ_REQUIRE(nqueries == o->queries && o->queries <= 4 * DMARC_MAX_QUERIES + 3);
    if (o->result == DMARC_RESULT_PASS)
        FUZZ_REQUIRE(o->spf == DMARC_ALIGN_YES || o->dkim == DMARC_ALIGN_YES);
    if (o->result != DMARC_RESULT_FAIL)
        FUZZ_REQUIRE(o->applied == DMARC_POLICY_NONE);
    else if (!o->testing)
        FUZZ_REQUIRE(o->applied == o->requested);
    else
        FUZZ_REQUIRE(o->record.testing && o->applied + 1 == o->requested);
    if (o->policy_domain != NULL)
        FUZZ_REQUIRE(o->has_record);
    dmarc_outcome_free(o);
    free(author);
    free(spf);
    free(d1);
    free(d2);
}

/* The report's file lines and rua URIs (dmarc_report): a parsed row
 * writes a line that parses to itself, and its XML is printable ASCII;
 * an address from a mailto: URI is printable, its host the part after its
 * last '@' and a normalized domain. */
static void check_report(const uint8_t *data, size_t size)
{
    struct dmarc_report_row r;
    if (dmarc_report_row_parse((const char *)data, size, &r) == 0) {
        struct strbuf once = STRBUF_INIT, twice = STRBUF_INIT, xml = STRBUF_INIT;
        strbuf_printf(&once, "%llu\t", (unsigned long long)r.count);
        dmarc_report_row_line(&r, &once);
        struct dmarc_report_row again;
        FUZZ_REQUIRE(dmarc_report_row_parse(once.buf, once.len, &again) == 0);
        strbuf_printf(&twice, "%llu\t", (unsigned long long)again.count);
        dmarc_report_row_line(&again, &twice);
        FUZZ_REQUIRE(strcmp(once.buf, twice.buf) == 0);
        struct dmarc_record rec;
        FUZZ_REQUIRE(dmarc_record_parse("v=DMARC1; p=none", 16, &rec, NULL) == 0);
        struct dmarc_report_meta meta = {"org & co", "r@x.test", "mx.x.test", NULL, 0, 86399, "fuzz"};
        struct dmarc_report_row *rows[] = {&r};
        dmarc_report_xml(&meta, r.policy_domain, &rec, rows, 1, &xml);
        for (size_t i = 0; i < xml.len; i++)
            FUZZ_REQUIRE(xml.buf[i] == '\n' || (xml.buf[i] >= 0x20 && xml.buf[i] < 0x7f));
        dmarc_record_free(&rec);
        dmarc_report_row_free(&again);
        dmarc_report_row_free(&r);
        strbuf_free(&once);
        strbuf_free(&twice);
        strbuf_free(&xml);
    }
    char *uri = xstrndup((const char *)data, size);
    char *addr;
    const char *host;
    if (dmarc_report_mailto(uri, &addr, &host) == 0) {
        FUZZ_REQUIRE(printable(addr) && host == strrchr(addr, '@') + 1);
        char norm[DMARC_DOMAIN_MAX + 1];
        FUZZ_REQUIRE(dmarc_domain_normalize(host, norm) == 0 && strcmp(norm, host) == 0);
        free(addr);
    }
    free(uri);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct dmarc_cache *cache;
    if (cache == NULL)
        cache = dmarc_cache_new(64);
    check_record(data, size);
    check_from(data, size);
    check_authres(data, size);
    check_report(data, size);
    /* Half the runs share a cache across inputs (clock_now moves on by
     * itself, so entries also expire); half go without one. */
    check_walk(data, size, size % 2 ? cache : NULL);
    return 0;
}
