/* Unit tests for dmarc: policy records, the DNS Tree Walk (every example of
 * RFC 9989 4.10, 4.10.2 and Appendix B.4), alignment, sp/np/psd, t=y, DNS
 * failures, the From: domain, the cache and cancellation. DNS is a table
 * served by a fake struct mailauth_dns whose answers wait in a queue until
 * the test drains it, as the real resolver answers from the event loop. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mailauth/dmarc.h"
#include "test_fixture.h"
#include "util/clock.h"
#include "util/list.h"
#include "util/mem.h"

/* ---- the fake resolver ---- */

struct zone_rr {
    const char *name;
    int type;
    enum dns_status st;
    const char *txt[3]; /* TXT records (NULL-terminated); other types get one A-like rdata */
};

static const struct zone_rr *zone;
static size_t zone_n;
static unsigned zone_ttl = 300;

struct fake_q {
    struct list_node link;
    char *name;
    int type;
    dns_rrset_cb cb;
    void *arg;
};

static struct list queued;
static char *asked[64];
static size_t nasked;
static struct event_base *base;

static void reset_log(void)
{
    for (size_t i = 0; i < nasked; i++)
        free(asked[i]);
    nasked = 0;
}

static struct mailauth_dns_query *fake_lookup(TF_UNUSED void *ctx, const char *name, int rrtype,
                                              dns_rrset_cb cb, void *arg)
{
    struct fake_q *q = xcalloc(1, sizeof *q);
    q->name = xstrdup(name);
    q->type = rrtype;
    q->cb = cb;
    q->arg = arg;
    list_append(&queued, &q->link);
    const char *t = rrtype == DNS_TYPE_TXT ? "" : rrtype == DNS_TYPE_A ? "A " : rrtype == DNS_TYPE_AAAA ? "AAAA " : "MX ";
    if (nasked < 64)
        asked[nasked++] = xasprintf("%s%s", t, name);
    return (struct mailauth_dns_query *)q;
}

static void fake_cancel(TF_UNUSED void *ctx, struct mailauth_dns_query *handle)
{
    struct fake_q *q = (struct fake_q *)handle;
    list_remove(&queued, &q->link);
    free(q->name);
    free(q);
}

static const struct mailauth_dns fake_dns = {.lookup = fake_lookup, .cancel = fake_cancel, .ctx = NULL};

/* TXT RDATA: the text as strings of at most 255 bytes. */
static void put_txt(struct dns_rr *rr, const char *t)
{
    size_t len = strlen(t), o = 0, at = 0;
    unsigned char *d = xmalloc(len + len / 255 + 1);
    do {
        size_t c = len - at < 255 ? len - at : 255;
        d[o++] = (unsigned char)c;
        memcpy(d + o, t + at, c);
        o += c;
        at += c;
    } while (at < len);
    rr->data = d;
    rr->len = o;
}

static struct dns_rrset *answer(const char *name, int type)
{
    struct dns_rrset *rs = xcalloc(1, sizeof *rs);
    rs->name = xstrdup(name);
    rs->rrtype = type;
    rs->ttl = zone_ttl;
    rs->status = DNS_NXDOMAIN;
    for (size_t i = 0; i < zone_n && rs->status != DNS_OK; i++) {
        if (strcasecmp(zone[i].name, name) != 0)
            continue;
        if (zone[i].type != type) { /* the name exists */
            rs->status = rs->status == DNS_NXDOMAIN ? DNS_NODATA : rs->status;
            continue;
        }
        if ((rs->status = zone[i].st) != DNS_OK)
            break;
        size_t n = 0;
        while (type == DNS_TYPE_TXT && n < 3 && zone[i].txt[n])
            n++;
        rs->nrrs = type == DNS_TYPE_TXT ? n : 1;
        rs->rrs = xcalloc(rs->nrrs, sizeof *rs->rrs);
        for (size_t k = 0; k < rs->nrrs; k++)
            put_txt(&rs->rrs[k], type == DNS_TYPE_TXT ? zone[i].txt[k] : "addr");
    }
    if (rs->status != DNS_OK)
        rs->why = xstrdup("fake");
    return rs;
}

/* Delivers the oldest queued answer. */
static void deliver_one(void)
{
    struct fake_q *q = LIST_FIRST(&queued, struct fake_q, link);
    list_remove(&queued, &q->link);
    q->cb(q->arg, answer(q->name, q->type));
    free(q->name);
    free(q);
}

/* Delivers every queued answer and every pending event. */
static void drain(void)
{
    do {
        while (!list_empty(&queued))
            deliver_one();
        event_base_loop(base, EVLOOP_NONBLOCK);
    } while (!list_empty(&queued));
}

#define ZONE(z) (zone = (z), zone_n = sizeof(z) / sizeof((z)[0]))

/* ---- running a check ---- */

static struct dmarc_outcome *got;
static int calls;

static void on_done(TF_UNUSED void *arg, struct dmarc_outcome *o)
{
    calls++;
    got = o;
}

static struct dmarc_outcome *check(struct dmarc_cache *cache, const char *author, const char *spf,
                                   const char *const *dkim, size_t ndkim)
{
    struct dmarc_env env = {.dns = &fake_dns, .cache = cache, .base = base};
    struct dmarc_auth auth = {.spf_domain = spf, .spf_pass = spf != NULL, .dkim_domains = dkim, .ndkim = ndkim};
    reset_log();
    dmarc_outcome_free(got); /* the previous check's: tests look at one at a time */
    calls = 0;
    got = NULL;
    dmarc_check_start(&env, author, &auth, on_done, NULL);
    assert_int_equal(calls, 0); /* never from inside the start */
    drain();
    assert_int_equal(calls, 1);
    return got;
}

static void assert_asked(const char *const *want)
{
    size_t n = 0;
    while (want[n])
        n++;
    for (size_t i = 0; i < n && i < nasked; i++)
        assert_string_equal(asked[i], want[i]);
    assert_int_equal(nasked, n);
}

/* ---- records ---- */

static void test_record_full(TF_UNUSED void **state)
{
    struct dmarc_record r;
    const char *t = "v=DMARC1; p=reject; sp=quarantine; np=none; psd=n; t=y; adkim=s; aspf=r; "
                    "rua=mailto:a@example.com, mailto:b@example.net!10m; ruf=mailto:f@example.com; fo=1:d";
    assert_int_equal(dmarc_record_parse(t, strlen(t), &r, NULL), 0);
    assert_int_equal(r.p, DMARC_POLICY_REJECT);
    assert_int_equal(r.sp, DMARC_POLICY_QUARANTINE);
    assert_int_equal(r.np, DMARC_POLICY_NONE);
    assert_int_equal(r.psd, DMARC_PSD_N);
    assert_int_equal(r.testing, 1);
    assert_int_equal(r.adkim, DMARC_STRICT);
    assert_int_equal(r.aspf, DMARC_RELAXED);
    assert_int_equal(r.nrua, 2);
    assert_string_equal(r.rua[0], "mailto:a@example.com");
    assert_string_equal(r.rua[1], "mailto:b@example.net"); /* the obsolete size is dropped */
    assert_int_equal(r.nruf, 1);
    assert_int_equal(r.fo, DMARC_FO_1 | DMARC_FO_D);
    assert_int_equal(r.ignored, 0);
    assert_true(dmarc_record_policy_ok(&r));
    dmarc_record_free(&r);
}

static void test_record_defaults_and_case(TF_UNUSED void **state)
{
    struct dmarc_record r;
    const char *t = "V = DMARC1 ;P = Reject;";
    assert_int_equal(dmarc_record_parse(t, strlen(t), &r, NULL), 0);
    assert_int_equal(r.p, DMARC_POLICY_REJECT);
    assert_int_equal(r.sp, DMARC_POLICY_UNSET);
    assert_int_equal(r.psd, DMARC_PSD_U);
    assert_int_equal(r.adkim, DMARC_RELAXED);
    assert_int_equal(r.testing, 0);
    assert_int_equal(r.fo, DMARC_FO_0);
    dmarc_record_free(&r);
}

static void test_record_not_dmarc(TF_UNUSED void **state)
{
    static const char *const bad[] = {
        "", "p=reject; v=DMARC1", "v=DMARC1x; p=none", "v=dmarc1; p=none", "v=spf1 -all",
        "v=DMARC2; p=reject", "x v=DMARC1", "v:DMARC1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct dmarc_record r;
        char err[DMARC_ERR_MAX] = "";
        assert_int_equal(dmarc_record_parse(bad[i], strlen(bad[i]), &r, err), -1);
        assert_true(err[0] != '\0');
        assert_int_equal(r.nrua, 0);
    }
}

static void test_record_unknown_and_bad_tags(TF_UNUSED void **state)
{
    struct dmarc_record r;
    const char *t = "v=DMARC1; p=none; pct=50; foo=bar; rf=afrf; ri=3600; psd=x; t=maybe; adkim=q; "
                    "fo=0:1; p=reject; 9=1; novalue=";
    assert_int_equal(dmarc_record_parse(t, strlen(t), &r, NULL), 0);
    assert_int_equal(r.p, DMARC_POLICY_NONE); /* the first p counts */
    assert_int_equal(r.psd, DMARC_PSD_U);
    assert_int_equal(r.testing, 0);
    assert_int_equal(r.adkim, DMARC_RELAXED);
    assert_int_equal(r.fo, DMARC_FO_0);
    assert_int_equal(r.ignored, 11);
    assert_true(dmarc_record_policy_ok(&r));
    dmarc_record_free(&r);
}

static void test_record_bad_policy(TF_UNUSED void **state)
{
    struct dmarc_record r;
    const char *t = "v=DMARC1; p=bogus; rua=not a uri, mailto:ok@example.com,mailto:x@y!k";
    assert_int_equal(dmarc_record_parse(t, strlen(t), &r, NULL), 0);
    assert_true(r.p_invalid);
    assert_false(dmarc_record_policy_ok(&r));
    assert_int_equal(r.nrua, 1);
    assert_string_equal(r.rua[0], "mailto:ok@example.com");
    dmarc_record_free(&r);

    t = "v=DMARC1; rua=mailto:ok@example.com";
    assert_int_equal(dmarc_record_parse(t, strlen(t), &r, NULL), 0);
    assert_false(r.p_invalid);
    assert_false(dmarc_record_policy_ok(&r)); /* p absent */
    dmarc_record_free(&r);

    t = "v=DMARC1; p=none; sp=never";
    assert_int_equal(dmarc_record_parse(t, strlen(t), &r, NULL), 0);
    assert_true(r.sp_invalid);
    assert_false(dmarc_record_policy_ok(&r));
    dmarc_record_free(&r);
}

static void test_record_uri_bound(TF_UNUSED void **state)
{
    struct strbuf sb = STRBUF_INIT;
    strbuf_puts(&sb, "v=DMARC1; p=none; rua=");
    for (int i = 0; i < 20; i++)
        strbuf_printf(&sb, "%smailto:r%d@example.com", i ? "," : "", i);
    struct dmarc_record r;
    assert_int_equal(dmarc_record_parse(sb.buf, sb.len, &r, NULL), 0);
    assert_int_equal(r.nrua, DMARC_MAX_URIS);
    assert_string_equal(r.rua[DMARC_MAX_URIS - 1], "mailto:r7@example.com");
    dmarc_record_free(&r);
    strbuf_free(&sb);
}

/* ---- the Tree Walk examples ---- */

/* RFC 9989 4.10: thirteen labels cost eight queries, the intermediate names skipped. */
static void test_walk_bound_long_name(TF_UNUSED void **state)
{
    static const struct zone_rr z[] = {{"_dmarc.example.com", DNS_TYPE_TXT, DNS_OK, {"v=DMARC1; p=reject"}}};
    ZONE(z);
    struct dmarc_outcome *o = check(NULL, "a.b.c.d.e.f.g.h.i.j.mail.example.com", NULL, NULL, 0);
    static const char *const want[] = {
        "_dmarc.a.b.c.d.e.f.g.h.i.j.mail.example.com", "_dmarc.g.h.i.j.mail.example.com",
        "_dmarc.h.i.j.mail.example.com", "_dmarc.i.j.mail.example.com", "_dmarc.j.mail.example.com",
        "_dmarc.mail.example.com", "_dmarc.example.com", "_dmarc.com", NULL};
    assert_asked(want);
    assert_int_equal(o->queries, 8);
    assert_string_equal(o->org_domain, "example.com");
    assert_string_equal(o->policy_domain, "example.com");
    assert_int_equal(o->result, DMARC_RESULT_FAIL);
}

/* Eight labels: the parent is the next name (x >= 8 leaves seven). */
static void test_walk_eight_labels(TF_UNUSED void **state)
{
    zone = NULL;
    zone_n = 0;
    struct dmarc_outcome *o = check(NULL, "a.b.c.d.e.f.example.com", NULL, NULL, 0);
    static const char *const want[] = {
        "_dmarc.a.b.c.d.e.f.example.com", "_dmarc.b.c.d.e.f.example.com", "_dmarc.c.d.e.f.example.com",
        "_dmarc.d.e.f.example.com", "_dmarc.e.f.example.com", "_dmarc.f.example.com", "_dmarc.example.com",
        "_dmarc.com", NULL};
    assert_asked(want);
    assert_int_equal(o->result, DMARC_RESULT_NONE);
    assert_null(o->policy_domain);
    assert_string_equal(o->org_domain, "a.b.c.d.e.f.example.com"); /* no record: itself */
}

/* RFC 9989 4.10.2's three examples for a.mail.example.com. */
static void test_org_domain_examples(TF_UNUSED void **state)
{
    static const struct zone_rr z1[] = {
        {"_dmarc.mail.example.com", DNS_TYPE_TXT, DNS_OK, {"v=DMARC1; p=none"}},
        {"_dmarc.example.com", DNS_TYPE_TXT, DNS_OK, {"v=DMARC1; p=reject"}},
    };
    ZONE(z1);
    struct dmarc_outcome *o = check(NULL, "a.mail.example.com", NULL, NULL, 0);
    static const char *const want[] = {"_dmarc.a.mail.example.com", "_dmarc.mail.example.com",
                                       "_dmarc.example.com", "_dmarc.com", NULL};
    assert_asked(want);
    assert_string_equal(o->org_domain, "example.com");
    assert_string_equal(o->policy_domain, "example.com");

    static const struct zone_rr z2[] = {
        {"_dmarc.mail.example.com", DNS_TYPE_TXT, DNS_OK, {"v=DMARC1; p=quarantine; psd=n"}},
        {"_dmarc.example.com", DNS_TYPE_TXT, DNS_OK, {"v=DMARC1; p=reject"}},
    };
    ZONE(z2);
    o = check(NULL, "a.mail.example.com", NULL, NULL, 0);
    static const char *const want2[] = {"_dmarc.a.mail.example.com", "_dmarc.mail.example.com", NULL};
    assert_asked(want2); /* psd=n stops the walk */
    assert_string_equal(o->org_domain, "mail.example.com");
    assert_string_equal(o->policy_domain, "mail.example.com");
    assert_int_equal(o->requested, DMARC_POLICY_QUARANTINE);

    static const struct zone_rr z3[] = {{"_dmarc.com", DNS_TYPE_TXT, DNS_OK, {"v=DMARC1; p=reject; psd=y"}}};
    ZONE(z3);
    o = check(NULL, "a.mail.example.com", NULL, NULL, 0);
    assert_string_equal(o->org_domain, "example.com");
    assert_string_equal(o->policy_domain, "com"); /* the PSD's record applies */
    assert_int_equal(o->requested, DMARC_POLICY_REJECT);
}

/* B.4.1: example.com, MAIL FROM example.com, DKIM signing.example.com. */
static const struct zone_rr zone_b41[] = {
    {"_dmarc.example.com", DNS_TYPE_TXT, DNS_OK, {"v=DMARC1; p=reject"}},
    {"_dmarc.signing.example.com", DNS_TYPE_TXT, DNS_OK, {"v=DMARC1; p=none"}},
};

static void test_b41_simple(TF_UNUSED void **state)
{
    ZONE(zone_b41);
    const char *dkim[] = {"signing.example.com"};
    struct dmarc_outcome *o = check(NULL, "example.com", "example.com", dkim, 1);
    static const char *const want[] = {"_dmarc.example.com", "_dmarc.com", "_dmarc.signing.example.com",
                                       "_dmarc.example.com", "_dmarc.com", NULL};
    assert_asked(want);
    assert_string_equal(o->org_domain, "example.com");
    assert_string_equal(o->policy_domain, "example.com");
    assert_int_equal(o->spf, DMARC_ALIGN_YES);
    assert_int_equal(o->dkim, DMARC_ALIGN_YES);
    assert_string_equal(o->dkim_aligned_domain, "signing.example.com");
    assert_int_equal(o->result, DMARC_RESULT_PASS);
    assert_int_equal(o->applied, DMARC_POLICY_NONE);
    assert_int_equal(o->requested, DMARC_POLICY_REJECT);

    /* With the cache the identifier's walk asks only its own name. */
    struct dmarc_cache *c = dmarc_cache_new(16);
    o = check(c, "example.com", "example.com", dkim, 1);
    static const char *const want2[] = {"_dmarc.example.com", "_dmarc.com", "_dmarc.signing.example.com", NULL};
    assert_asked(want2);
    assert_int_equal(o->result, DMARC_RESULT_PASS);
    dmarc_cache_free(c);
}

/* B.4.2: the deep name, MAIL FROM example.com, DKIM signing.example.com. */
static void test_b42_deep(TF_UNUSED void **state)
{
    ZONE(zone_b41);
    const char *dkim[] = {"signing.example.com"};
    struct dmarc_cache *c = dmarc_cache_new(16);
    struct dmarc_outcome *o = check(c, "a.b.c.d.e.f.g.h.i.j.k.example.com", "example.com", dkim, 1);
    static const char *const want[] = {
        "_dmarc.a.b.c.d.e.f.g.h.i.j.k.example.com", "_dmarc.g.h.i.j.k.example.com", "_dmarc.h.i.j.k.example.com",
        "_dmarc.i.j.k.example.com", "_dmarc.j.k.example.com", "_dmarc.k.example.com", "_dmarc.example.com",
        "_dmarc.com", "_dmarc.signing.example.com", NULL};
    assert_asked(want);
    assert_string_equal(o->org_domain, "example.com");
    assert_string_equal(o->policy_domain, "example.com");
    assert_int_equal(o->spf, DMARC_ALIGN_YES);
    assert_int_equal(o->dkim, DMARC_ALIGN_YES);
    assert_int_equal(o->result, DMARC_RESULT_PASS);
    dmarc_cache_free(c);
}

/* B.4.3: giant.bank.example under a PSD bank.example (psd=y). */
static const struct zone_rr zone_b43[] = {
    {"_dmarc.bank.example", DNS_TYPE_TXT, DNS_OK, {"v=DMARC1; p=reject; psd=y"}},
    {"_dmarc.giant.bank.example", DNS_TYPE_TXT, DNS_OK, {"v=DMARC1; p=quarantine"}},
};

static void test_b43_psd(TF_UNUSED void **state)
{
    ZONE(zone_b43);
    const char *dkim[] = {"mail.mega.bank.example"};
    struct dmarc_outcome *o = check(NULL, "giant.bank.example", "mail.giant.bank.example", dkim, 1);
    static const char *const want[] = {"_dmarc.giant.bank.example", "_dmarc.bank.example",
                                       "_dmarc.mail.giant.bank.example", "_dmarc.giant.bank.example",
                                       "_dmarc.bank.example", NULL};
    assert_asked(want); /* mega.bank.example cannot share giant's org domain: no walk */
    assert_string_equal(o->org_domain, "giant.bank.example");
    assert_string_equal(o->policy_domain, "giant.bank.example");
    assert_int_equal(o->spf, DMARC_ALIGN_YES);
    assert_string_equal(o->spf_aligned_domain, "mail.giant.bank.example");
    assert_int_equal(o->dkim, DMARC_ALIGN_NO);
    assert_int_equal(o->result, DMARC_RESULT_PASS);

    /* DKIM alone from mega: not aligned, so fail under giant's p=quarantine. */
    o = check(NULL, "giant.bank.example", NULL, dkim, 1);
    assert_int_equal(o->dkim, DMARC_ALIGN_NO);
    assert_int_equal(o->spf, DMARC_ALIGN_NA);
    assert_int_equal(o->result, DMARC_RESULT_FAIL);
    assert_int_equal(o->applied, DMARC_POLICY_QUARANTINE);
    assert_int_equal(o->source, DMARC_SRC_P);
}

/* The identifier's walk decides: mega's org domain is mega, not giant. */
static void test_psd_identifier_walk(TF_UNUSED void **state)
{
    ZONE(zone_b43);
    const char *dkim[] = {"x.mail.giant.bank.example"};
    struct dmarc_outcome *o = check(NULL, "mail.giant.bank.example", NULL, dkim, 1);
    assert_string_equal(o->org_domain, "giant.bank.example");
    assert_string_equal(o->policy_domain, "giant.bank.example");
    assert_int_equal(o->dkim, DMARC_ALIGN_YES);
}

/* ---- alignment, policies ---- */

static void test_strict_alignment(TF_UNUSED void **state)
{
    static const struct zone_rr z[] = {{"_dmarc.example.com", DNS_TYPE_TXT, DNS_OK, {"v=DMARC1; p=reject; adkim=s; aspf=s"}}};
    ZONE(z);
    const char *dkim[] = {"signing.example.com", "EXAMPLE.COM."};
    struct dmarc_outcome *o = check(NULL, "example.com", "bounce.example.com", dkim, 1);
    assert_int_equal(o->spf, DMARC_ALIGN_NO);
    assert_int_equal(o->dkim, DMARC_ALIGN_NO);
    assert_int_equal(o->result, DMARC_RESULT_FAIL);
    assert_int_equal(o->applied, DMARC_POLICY_REJECT);
    static const char *const want[] = {"_dmarc.example.com", "_dmarc.com", NULL};
    assert_asked(want); /* strict: no identifier walks */

    o = check(NULL, "example.com", NULL, dkim, 2); /* equal, in another case, with the root dot */
    assert_int_equal(o->dkim, DMARC_ALIGN_YES);
    assert_string_equal(o->dkim_aligned_domain, "example.com");
    assert_int_equal(o->result, DMARC_RESULT_PASS);
}

static void test_relaxed_unrelated(TF_UNUSED void **state)
{
    static const struct zone_rr z[] = {{"_dmarc.example.com", DNS_TYPE_TXT, DNS_OK, {"v=DMARC1; p=quarantine"}}};
    ZONE(z);
    const char *dkim[] = {"example.net", "evil-example.com"};
    struct dmarc_outcome *o = check(NULL, "news.example.com", "example.com.evil.org", dkim, 2);
    assert_int_equal(o->spf, DMARC_ALIGN_NO);
    assert_int_equal(o->dkim, DMARC_ALIGN_NO);
    assert_int_equal(o->result, DMARC_RESULT_FAIL);
    assert_int_equal(o->applied, DMARC_POLICY_QUARANTINE);
}

static const struct zone_rr zone_sub[] = {
    {"_dmarc.example.com", DNS_TYPE_TXT, DNS_OK, {"v=DMARC1; p=reject; sp=quarantine; np=none"}},
    {"exists.example.com", DNS_TYPE_MX, DNS_OK, {NULL}},
};

static void test_sp_np(TF_UNUSED void **state)
{
    ZONE(zone_sub);
    struct dmarc_outcome *o = check(NULL, "exists.example.com", NULL, NULL, 0);
    assert_int_equal(o->result, DMARC_RESULT_FAIL);
    assert_int_equal(o->author_exists, 1);
    assert_int_equal(o->source, DMARC_SRC_SP);
    assert_int_equal(o->applied, DMARC_POLICY_QUARANTINE);

    o = check(NULL, "ghost.example.com", NULL, NULL, 0);
    static const char *const want[] = {"_dmarc.ghost.example.com", "_dmarc.example.com", "_dmarc.com",
                                       "A ghost.example.com", "AAAA ghost.example.com", "MX ghost.example.com",
                                       NULL};
    assert_asked(want);
    assert_int_equal(o->author_exists, 0);
    assert_int_equal(o->source, DMARC_SRC_NP);
    assert_int_equal(o->requested, DMARC_POLICY_NONE);
    assert_int_equal(o->applied, DMARC_POLICY_NONE);

    o = check(NULL, "example.com", NULL, NULL, 0); /* the domain itself: p */
    assert_int_equal(o->source, DMARC_SRC_P);
    assert_int_equal(o->applied, DMARC_POLICY_REJECT);
    assert_int_equal(o->author_exists, -1);
}

static void test_np_fallbacks(TF_UNUSED void **state)
{
    /* No np: a non-existent subdomain gets sp, and no existence query is needed. */
    static const struct zone_rr z1[] = {{"_dmarc.example.com", DNS_TYPE_TXT, DNS_OK, {"v=DMARC1; p=reject; sp=quarantine"}}};
    ZONE(z1);
    struct dmarc_outcome *o = check(NULL, "ghost.example.com", NULL, NULL, 0);
    assert_int_equal(nasked, 3);
    assert_int_equal(o->applied, DMARC_POLICY_QUARANTINE);
    assert_int_equal(o->source, DMARC_SRC_SP);
    /* np only: existing subdomains get p. */
    static const struct zone_rr z2[] = {
        {"_dmarc.example.com", DNS_TYPE_TXT, DNS_OK, {"v=DMARC1; p=none; np=reject"}},
        {"www.example.com", DNS_TYPE_A, DNS_OK, {NULL}},
    };
    ZONE(z2);
    o = check(NULL, "www.example.com", NULL, NULL, 0);
    assert_int_equal(o->author_exists, 1);
    assert_int_equal(o->applied, DMARC_POLICY_NONE);
    assert_int_equal(o->source, DMARC_SRC_P);
    o = check(NULL, "nx.example.com", NULL, NULL, 0);
    assert_int_equal(o->author_exists, 0);
    assert_int_equal(o->applied, DMARC_POLICY_REJECT);
}

static void test_testing_flag(TF_UNUSED void **state)
{
    static const struct zone_rr z[] = {
        {"_dmarc.reject.example", DNS_TYPE_TXT, DNS_OK, {"v=DMARC1; p=reject; t=y"}},
        {"_dmarc.quarantine.example", DNS_TYPE_TXT, DNS_OK, {"v=DMARC1; p=quarantine; t=y"}},
        {"_dmarc.none.example", DNS_TYPE_TXT, DNS_OK, {"v=DMARC1; p=none; t=y"}},
    };
    ZONE(z);
    struct dmarc_outcome *o = check(NULL, "reject.example", NULL, NULL, 0);
    assert_int_equal(o->requested, DMARC_POLICY_REJECT);
    assert_int_equal(o->applied, DMARC_POLICY_QUARANTINE);
    assert_true(o->testing);
    assert_non_null(strstr(o->reason, "t=y"));
    o = check(NULL, "quarantine.example", NULL, NULL, 0);
    assert_int_equal(o->applied, DMARC_POLICY_NONE);
    assert_true(o->testing);
    o = check(NULL, "none.example", NULL, NULL, 0);
    assert_int_equal(o->applied, DMARC_POLICY_NONE);
    assert_false(o->testing); /* t has no effect on none */
}

static void test_bad_policy_records(TF_UNUSED void **state)
{
    static const struct zone_rr z[] = {
        {"_dmarc.norua.example", DNS_TYPE_TXT, DNS_OK, {"v=DMARC1; p=bogus"}},
        {"_dmarc.rua.example", DNS_TYPE_TXT, DNS_OK, {"v=DMARC1; p=reject; sp=bogus; rua=mailto:d@rua.example"}},
        {"_dmarc.multi.example", DNS_TYPE_TXT, DNS_OK, {"v=DMARC1; p=reject", "v=DMARC1; p=none"}},
        {"_dmarc.mixed.example", DNS_TYPE_TXT, DNS_OK, {"v=spf1 -all", "v=DMARC1; p=reject", "hello"}},
    };
    ZONE(z);
    struct dmarc_outcome *o = check(NULL, "norua.example", NULL, NULL, 0);
    assert_int_equal(o->result, DMARC_RESULT_PERMERROR);
    o = check(NULL, "rua.example", NULL, NULL, 0);
    assert_int_equal(o->result, DMARC_RESULT_FAIL);
    assert_true(o->fallback_none);
    assert_int_equal(o->applied, DMARC_POLICY_NONE);
    assert_int_equal(o->record.nrua, 1);
    assert_string_equal(o->record.rua[0], "mailto:d@rua.example");
    o = check(NULL, "multi.example", NULL, NULL, 0); /* two records: both discarded */
    assert_int_equal(o->result, DMARC_RESULT_NONE);
    o = check(NULL, "mixed.example", NULL, NULL, 0); /* other TXT records do not count */
    assert_int_equal(o->result, DMARC_RESULT_FAIL);
    assert_int_equal(o->applied, DMARC_POLICY_REJECT);
}

static void test_long_record_in_strings(TF_UNUSED void **state)
{
    char rec[700];
    snprintf(rec, sizeof rec, "v=DMARC1; p=reject; rua=mailto:%0600d@example.com", 7);
    const struct zone_rr z[] = {{"_dmarc.example.com", DNS_TYPE_TXT, DNS_OK, {rec}}};
    ZONE(z);
    struct dmarc_outcome *o = check(NULL, "example.com", NULL, NULL, 0);
    assert_int_equal(o->applied, DMARC_POLICY_REJECT); /* three strings joined */
    assert_int_equal(o->record.nrua, 1);
    assert_int_equal(strlen(o->record.rua[0]), strlen("mailto:@example.com") + 600);
}

static void test_temperror(TF_UNUSED void **state)
{
    static const struct zone_rr z[] = {
        {"_dmarc.example.com", DNS_TYPE_TXT, DNS_TEMPFAIL, {NULL}},
        {"_dmarc.ok.example", DNS_TYPE_TXT, DNS_OK, {"v=DMARC1; p=reject"}},
        {"_dmarc.example", DNS_TYPE_TXT, DNS_TEMPFAIL, {NULL}},
    };
    ZONE(z);
    struct dmarc_outcome *o = check(NULL, "example.com", NULL, NULL, 0);
    assert_int_equal(o->result, DMARC_RESULT_TEMPERROR);
    assert_int_equal(o->requested, DMARC_POLICY_UNSET);
    /* The policy is known, but the Organizational Domain is not: a relaxed
     * identifier in another name is unknown; an equal one still aligns. */
    const char *dkim[] = {"mail.ok.example"};
    o = check(NULL, "ok.example", NULL, dkim, 1);
    assert_null(o->org_domain);
    assert_int_equal(o->dkim, DMARC_ALIGN_UNKNOWN);
    assert_int_equal(o->result, DMARC_RESULT_TEMPERROR);
    assert_int_equal(o->applied, DMARC_POLICY_NONE);
    o = check(NULL, "ok.example", "ok.example", dkim, 1);
    assert_int_equal(o->result, DMARC_RESULT_PASS);
}

/* ---- cache, cancel, bad input ---- */

static void test_cache(TF_UNUSED void **state)
{
    ZONE(zone_b41);
    const int64_t t0 = 1000000000LL * 1000000;
    clock_test_set_us(t0);
    struct dmarc_cache *c = dmarc_cache_new(3);
    struct dmarc_outcome *o = check(c, "example.com", NULL, NULL, 0);
    assert_int_equal(o->queries, 2);
    assert_int_equal(dmarc_cache_count(c), 2);
    o = check(c, "example.com", NULL, NULL, 0); /* everything cached: still later, no query */
    assert_int_equal(o->queries, 0);
    assert_int_equal(nasked, 0);
    assert_int_equal(o->applied, DMARC_POLICY_REJECT);
    /* The bound: four names through a cache of three push the oldest out. */
    check(c, "a.b.example.com", NULL, NULL, 0);
    assert_int_equal(dmarc_cache_count(c), 3);
    assert_int_equal(check(c, "example.com", NULL, NULL, 0)->queries, 0); /* the newest stayed */
    clock_test_set_us(t0 + zone_ttl * 1000000LL); /* the TTL: past it, asked again */
    assert_int_equal(check(c, "example.com", NULL, NULL, 0)->queries, 2);
    dmarc_cache_free(c);
    c = dmarc_cache_new(3);
    zone_ttl = 86400; /* kept DMARC_CACHE_MAX_TTL at most */
    clock_test_set_us(t0);
    check(c, "example.com", NULL, NULL, 0);
    clock_test_set_us(t0 + DMARC_CACHE_MAX_TTL * 1000000LL);
    assert_int_equal(check(c, "example.com", NULL, NULL, 0)->queries, 2);
    dmarc_cache_free(c);
    c = dmarc_cache_new(3);
    zone_ttl = 0; /* a TTL of 0 keeps nothing */
    check(c, "example.com", NULL, NULL, 0);
    assert_int_equal(dmarc_cache_count(c), 0);
    zone_ttl = 300;
    dmarc_cache_free(c);
    clock_test_set_us(0);
}

static void test_cancel(TF_UNUSED void **state)
{
    ZONE(zone_sub);
    struct dmarc_env env = {.dns = &fake_dns, .cache = NULL, .base = base};
    calls = 0;
    struct dmarc_check *chk = dmarc_check_start(&env, "ghost.example.com", NULL, on_done, NULL);
    assert_false(list_empty(&queued));
    dmarc_check_cancel(chk);
    assert_true(list_empty(&queued)); /* its query went with it */
    drain();
    assert_int_equal(calls, 0);

    /* Cancelled while the existence queries are out. */
    chk = dmarc_check_start(&env, "ghost.example.com", NULL, on_done, NULL);
    for (int i = 0; i < 3; i++) /* the three _dmarc answers */
        deliver_one();
    assert_int_equal(calls, 0);
    dmarc_check_cancel(chk);
    assert_true(list_empty(&queued));

    /* Cancelled with a result already waiting (all cached, or a bad name). */
    struct dmarc_cache *c = dmarc_cache_new(8);
    check(c, "example.com", NULL, NULL, 0);
    env.cache = c;
    calls = 0;
    chk = dmarc_check_start(&env, "example.com", NULL, on_done, NULL);
    dmarc_check_cancel(chk);
    chk = dmarc_check_start(&env, "bad..name", NULL, on_done, NULL);
    dmarc_check_cancel(chk);
    drain();
    assert_int_equal(calls, 0);
    dmarc_cache_free(c);
}

static void test_bad_author(TF_UNUSED void **state)
{
    zone_n = 0;
    static const char *const bad[] = {"", "bad..name", "-x.example", "x-.example", "ex ample.com",
                                      "[192.0.2.1]", "ex\xc3\xa4mple.com"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct dmarc_outcome *o = check(NULL, bad[i], NULL, NULL, 0);
        assert_int_equal(o->result, DMARC_RESULT_PERMERROR);
        assert_int_equal(nasked, 0);
        }
    char longname[300];
    memset(longname, 'a', sizeof longname);
    longname[299] = '\0';
    struct dmarc_outcome *o = check(NULL, longname, NULL, NULL, 0);
    assert_int_equal(o->result, DMARC_RESULT_PERMERROR);
    assert_string_equal(dmarc_result_name(DMARC_RESULT_TEMPERROR), "temperror");
    assert_string_equal(dmarc_policy_name(DMARC_POLICY_QUARANTINE), "quarantine");
}

/* ---- the From: domain ---- */

static void test_from(TF_UNUSED void **state)
{
    struct dmarc_from f;
    dmarc_from_value("Joe <joe@Mail.Example.COM>", &f);
    assert_int_equal(f.status, DMARC_FROM_OK);
    assert_string_equal(f.domain, "mail.example.com");
    dmarc_from_value("a@example.com, b@EXAMPLE.com", &f);
    assert_int_equal(f.status, DMARC_FROM_OK);
    assert_int_equal(f.naddrs, 2);
    dmarc_from_value("a@example.com, b@example.net", &f);
    assert_int_equal(f.status, DMARC_FROM_SEVERAL_DOMAINS);
    assert_string_equal(f.domain, "");
    dmarc_from_value("Robots:;", &f);
    assert_int_equal(f.status, DMARC_FROM_NO_ADDRESS);
    dmarc_from_value("a@[192.0.2.1]", &f);
    assert_int_equal(f.status, DMARC_FROM_BAD_DOMAIN);
    dmarc_from_value("<>, a@example.com", &f);
    assert_int_equal(f.status, DMARC_FROM_INVALID);
    dmarc_from_value("a@b\xc3\xa4r.example", &f);   /* looked up as A-labels (test_dmarc_from) */
    assert_int_equal(f.status, DMARC_FROM_OK);
    assert_string_equal(f.domain, "xn--br-via.example");

    const char *h1 = "Subject: x\r\nFrom: a@example.org\r\n\r\nbody\r\n";
    dmarc_from_header(h1, strlen(h1), &f);
    assert_int_equal(f.status, DMARC_FROM_OK);
    assert_string_equal(f.domain, "example.org");
    const char *h2 = "From: a@example.org\r\nFrom: b@example.org\r\n\r\n";
    dmarc_from_header(h2, strlen(h2), &f);
    assert_int_equal(f.status, DMARC_FROM_SEVERAL_FIELDS);
    const char *h3 = "Subject: x\r\n\r\nFrom: a@example.org\r\n";
    dmarc_from_header(h3, strlen(h3), &f);
    assert_int_equal(f.status, DMARC_FROM_NO_FIELD);
    const char *h4 = "From: \"Doe, J\"\r\n <j@folded.example>\r\n\r\n";
    dmarc_from_header(h4, strlen(h4), &f);
    assert_int_equal(f.status, DMARC_FROM_OK);
    assert_string_equal(f.domain, "folded.example");
    assert_string_equal(dmarc_from_status_text(DMARC_FROM_SEVERAL_FIELDS), "more than one From: field");
}

static int setup(TF_UNUSED void **state)
{
    base = event_base_new();
    return base ? 0 : -1;
}

static int teardown(TF_UNUSED void **state)
{
    reset_log();
    dmarc_outcome_free(got);
    event_base_free(base);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_full),
        cmocka_unit_test(test_record_defaults_and_case),
        cmocka_unit_test(test_record_not_dmarc),
        cmocka_unit_test(test_record_unknown_and_bad_tags),
        cmocka_unit_test(test_record_bad_policy),
        cmocka_unit_test(test_record_uri_bound),
        cmocka_unit_test(test_walk_bound_long_name),
        cmocka_unit_test(test_walk_eight_labels),
        cmocka_unit_test(test_org_domain_examples),
        cmocka_unit_test(test_b41_simple),
        cmocka_unit_test(test_b42_deep),
        cmocka_unit_test(test_b43_psd),
        cmocka_unit_test(test_psd_identifier_walk),
        cmocka_unit_test(test_strict_alignment),
        cmocka_unit_test(test_relaxed_unrelated),
        cmocka_unit_test(test_sp_np),
        cmocka_unit_test(test_np_fallbacks),
        cmocka_unit_test(test_testing_flag),
        cmocka_unit_test(test_bad_policy_records),
        cmocka_unit_test(test_long_record_in_strings),
        cmocka_unit_test(test_temperror),
        cmocka_unit_test(test_cache),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_bad_author),
        cmocka_unit_test(test_from),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
