/* Unit tests for ARC chain validation (mailauth/dkim_arc.c, RFC 8617 §5.2):
 * ValiMail's arc_test_suite validation cases (../shared/testdata/dkim,
 * TERN_TESTDATA; YAML via libyaml) with a skip table of the draft-era rules
 * RFC 8617 or RFC 8301 changed, Stalwart's two real chains, and our own
 * cases: a tampered body, a gap, a DNS failure, chunked bodies, cancelling.
 *
 * Key records come from a table behind struct mailauth_dns whose answers are
 * delivered only when the test runs the "loop" (tdns_run), so the verifier
 * sees them later, as it would from libunbound. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <yaml.h>

#include "test_fixture.h"

#include "mailauth/dkim.h"
#include "util/mem.h"
#include "util/strbuf.h"

/* ---- a table DNS whose answers come later ------------------------------ */

struct tzone {
    char *name, *text; /* text "~~TEMPFAIL~~": timeout */
};

struct tquery {
    struct tquery *next;
    char *name;
    dns_rrset_cb cb;
    void *arg;
};

struct tdns {
    struct tzone z[16];
    size_t nz;
    struct tquery *pending;
    int lookups, cancels;
};

static void tdns_add(struct tdns *t, const char *name, const char *text)
{
    assert_true(t->nz < 16);
    t->z[t->nz].name = xstrdup(name);
    t->z[t->nz].text = xstrdup(text);
    t->nz++;
}

static void tdns_clear(struct tdns *t)
{
    for (size_t k = 0; k < t->nz; k++) {
        free(t->z[k].name);
        free(t->z[k].text);
    }
    t->nz = 0;
    assert_null(t->pending);
}

static struct mailauth_dns_query *tdns_lookup(void *ctx, const char *name, int rrtype, dns_rrset_cb cb, void *arg)
{
    struct tdns *t = ctx;
    assert_int_equal(rrtype, DNS_TYPE_TXT);
    struct tquery *q = xcalloc(1, sizeof *q);
    q->name = xstrdup(name);
    q->cb = cb;
    q->arg = arg;
    q->next = t->pending;
    t->pending = q;
    t->lookups++;
    return (struct mailauth_dns_query *)q;
}

static void tdns_cancel(void *ctx, struct mailauth_dns_query *mq)
{
    struct tdns *t = ctx;
    for (struct tquery **pp = &t->pending; *pp; pp = &(*pp)->next) {
        if (*pp == (struct tquery *)mq) {
            *pp = (*pp)->next;
            free(((struct tquery *)mq)->name);
            free(mq);
            t->cancels++;
            return;
        }
    }
    fail_msg("cancel of a query that is not running");
}

static struct dns_rrset *tdns_answer(struct tdns *t, const char *name)
{
    struct dns_rrset *rs = xcalloc(1, sizeof *rs);
    rs->name = xstrdup(name);
    rs->rrtype = DNS_TYPE_TXT;
    rs->status = DNS_NXDOMAIN;
    for (size_t k = 0; k < t->nz; k++) {
        if (strcasecmp(t->z[k].name, name) != 0)
            continue;
        if (strcmp(t->z[k].text, "~~TEMPFAIL~~") == 0) {
            rs->status = DNS_TEMPFAIL;
            rs->why = xstrdup("timeout");
            return rs;
        }
        /* TXT RDATA: the text cut into length-prefixed strings of <= 255 */
        const char *txt = t->z[k].text;
        size_t len = strlen(txt);
        struct strbuf rd = STRBUF_INIT;
        size_t o = 0;
        do {
            size_t n = len - o < 255 ? len - o : 255;
            strbuf_putc(&rd, (char)n);
            strbuf_append(&rd, txt + o, n);
            o += n;
        } while (o < len);
        rs->status = DNS_OK;
        rs->rrs = xrealloc(rs->rrs, (rs->nrrs + 1) * sizeof *rs->rrs);
        rs->rrs[rs->nrrs].len = rd.len;
        rs->rrs[rs->nrrs].data = (unsigned char *)strbuf_detach(&rd);
        rs->nrrs++;
    }
    if (rs->status != DNS_OK)
        rs->why = xstrdup("no such name");
    return rs;
}

/* The loop: delivers every pending answer. */
static void tdns_run(struct tdns *t)
{
    while (t->pending) {
        struct tquery *q = t->pending;
        t->pending = q->next;
        struct dns_rrset *rs = tdns_answer(t, q->name);
        dns_rrset_cb cb = q->cb;
        void *arg = q->arg;
        free(q->name);
        free(q);
        cb(arg, rs);
    }
}

static struct mailauth_dns tdns_iface(struct tdns *t)
{
    return (struct mailauth_dns){.lookup = tdns_lookup, .cancel = tdns_cancel, .ctx = t};
}

/* ---- helpers ------------------------------------------------------------- */

static const char *testdata_dir(void)
{
    const char *dir = getenv("TERN_TESTDATA");
    return dir && *dir ? dir : "../shared/testdata";
}

/* LF line ends to CRLF (the YAML and Stalwart messages are stored with LF). */
static char *to_crlf(const char *s, size_t len, size_t *outlen)
{
    struct strbuf sb = STRBUF_INIT;
    for (size_t k = 0; k < len; k++) {
        if (s[k] == '\n' && (k == 0 || s[k - 1] != '\r'))
            strbuf_putc(&sb, '\r');
        strbuf_putc(&sb, s[k]);
    }
    *outlen = sb.len;
    return strbuf_detach(&sb);
}

struct vrun {
    int done_calls;
};

static void on_done(void *arg, struct dkim_arc_verify *v)
{
    (void)v;
    ((struct vrun *)arg)->done_calls++;
}

/* Validates msg (CRLF text) at time now, the body fed in chunks of chunk
 * bytes (0: all at once); the verifier is the caller's to free. */
static struct dkim_arc_verify *verify_msg(struct tdns *t, const char *msg, size_t len, time_t now, size_t chunk)
{
    static struct mailauth_dns dns;
    dns = tdns_iface(t);
    const char *sep = strstr(msg, "\r\n\r\n");
    size_t hlen = sep ? (size_t)(sep - msg) + 2 : len;
    size_t boff = sep ? hlen + 2 : len;
    struct vrun run = {0};
    struct dkim_arc_verify *v = dkim_arc_verify_new(&dns, msg, hlen, now, on_done, &run);
    for (size_t o = boff; o < len;) {
        size_t n = chunk && len - o > chunk ? chunk : len - o;
        dkim_arc_verify_body(v, msg + o, n);
        o += n;
    }
    int ready = dkim_arc_verify_end(v);
    assert_int_equal(run.done_calls, 0); /* never from inside a call */
    tdns_run(t);
    assert_int_equal(run.done_calls, ready ? 0 : 1);
    return v;
}

static void expect(struct tdns *t, const char *msg, size_t chunk, enum dkim_arc_status st, const char *reason_part)
{
    size_t len;
    char *m = to_crlf(msg, strlen(msg), &len);
    struct dkim_arc_verify *v = verify_msg(t, m, len, 1700000000, chunk);
    const struct dkim_arc_result *r = dkim_arc_verify_result(v);
    if (r->status != st || (reason_part && !strstr(r->reason, reason_part)))
        fail_msg("got arc=%s (%s), want %s (%s)", dkim_arc_status_name(r->status), r->reason,
                 dkim_arc_status_name(st), reason_part ? reason_part : "");
    dkim_arc_verify_free(v);
    free(m);
}

/* ---- ValiMail's arc_test_suite ------------------------------------------- */

static yaml_node_t *map_get(yaml_document_t *d, yaml_node_t *map, const char *key)
{
    if (map == NULL || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(d, p->key);
        if (k && k->type == YAML_SCALAR_NODE && strcmp((const char *)k->data.scalar.value, key) == 0)
            return yaml_document_get_node(d, p->value);
    }
    return NULL;
}

static const char *scalar(yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* Cases whose expectation RFC 8617 (or RFC 8301, which ARC inherits through
 * DKIM) no longer shares with the drafts the suite was written for. */
static const struct {
    const char *name, *why;
} suite_skips[] = {
    {"ams_fields_a_sha1", "expects an rsa-sha1 AMS to pass; RFC 8301 forbids rsa-sha1 verification"},
    {"as_fields_a_sha1", "expects an rsa-sha1 AS to pass; RFC 8301 forbids rsa-sha1 verification"},
};

static const char *skip_reason(const char *name)
{
    for (size_t k = 0; k < sizeof suite_skips / sizeof suite_skips[0]; k++)
        if (strcmp(suite_skips[k].name, name) == 0)
            return suite_skips[k].why;
    return NULL;
}

static enum dkim_arc_status want_status(const char *cv)
{
    /* Three cases (an AS with cv=fail) leave cv empty: the drafts let the
     * validator stop there without a verdict; RFC 8617 §5.2 steps 2 and 3C
     * make it fail. */
    if (!cv || !*cv || strcasecmp(cv, "fail") == 0)
        return DKIM_ARC_FAIL;
    if (strcasecmp(cv, "pass") == 0)
        return DKIM_ARC_PASS;
    assert_string_equal(cv, "None");
    return DKIM_ARC_NONE;
}

static void test_arc_suite(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/dkim/arc_test_suite/arc-draft-validation-tests.yml", testdata_dir());
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        test_skip("%s not found (set TERN_TESTDATA to the testdata directory)", path);
    yaml_parser_t parser;
    assert_true(yaml_parser_initialize(&parser));
    yaml_parser_set_input_file(&parser, fp);
    int run = 0, passed = 0, skipped = 0, failed = 0;
    for (;;) {
        yaml_document_t doc;
        if (!yaml_parser_load(&parser, &doc))
            fail_msg("YAML error: %s", parser.problem ? parser.problem : "?");
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        if (root == NULL) {
            yaml_document_delete(&doc);
            break;
        }
        struct tdns t = {0};
        yaml_node_t *recs = map_get(&doc, root, "txt-records");
        for (yaml_node_pair_t *p = recs && recs->type == YAML_MAPPING_NODE ? recs->data.mapping.pairs.start : NULL;
             p && p < recs->data.mapping.pairs.top; p++)
            tdns_add(&t, scalar(yaml_document_get_node(&doc, p->key)),
                     scalar(yaml_document_get_node(&doc, p->value)));
        yaml_node_t *tests = map_get(&doc, root, "tests");
        for (yaml_node_pair_t *p = tests ? tests->data.mapping.pairs.start : NULL;
             tests && p < tests->data.mapping.pairs.top; p++) {
            const char *name = scalar(yaml_document_get_node(&doc, p->key));
            yaml_node_t *tc = yaml_document_get_node(&doc, p->value);
            const char *msg = scalar(map_get(&doc, tc, "message"));
            const char *cv = scalar(map_get(&doc, tc, "cv"));
            const char *when = scalar(map_get(&doc, tc, "t"));
            const char *reason = skip_reason(name);
            enum dkim_arc_status want = want_status(cv);
            run++;
            size_t len;
            char *m = to_crlf(msg ? msg : "", msg ? strlen(msg) : 0, &len);
            /* every other case with the body cut into 7-byte chunks */
            struct dkim_arc_verify *v =
                verify_msg(&t, m, len, when ? (time_t)strtoll(when, NULL, 10) : 1700000000, run % 2 ? 7 : 0);
            const struct dkim_arc_result *r = dkim_arc_verify_result(v);
            int ok = r->status == want;
            if (getenv("TERN_ARC_VERBOSE")) /* each case's verdict, to review the reasons */
                print_message("%-32s %-4s %s\n", name, dkim_arc_status_name(r->status), r->reason);
            if (reason) {
                skipped++;
                if (ok)
                    print_error("%s passes but is in the skip table (%s)\n", name, reason);
                failed += ok;
            } else if (ok) {
                passed++;
            } else {
                failed++;
                print_error("%s: got arc=%s (%s), want %s\n", name, dkim_arc_status_name(r->status), r->reason,
                            dkim_arc_status_name(want));
            }
            dkim_arc_verify_free(v);
            free(m);
        }
        tdns_clear(&t);
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    fclose(fp);
    print_message("[  SUITE   ] arc-draft-validation-tests.yml: %d cases run, %d passed, %d skipped, %d failed\n", run,
                  passed, skipped, failed);
    assert_int_equal(failed, 0);
    assert_true(run > 150);
}

/* ---- Stalwart's chains --------------------------------------------------- */

/* DNS lines "<name> <text>" up to an empty line, then the message (LF). */
static void test_stalwart(void **state)
{
    (void)state;
    static const unsigned want_n[] = {1, 2};
    for (int n = 1; n <= 2; n++) {
        char path[512];
        snprintf(path, sizeof path, "%s/dkim/stalwart/arc/%03d.txt", testdata_dir(), n);
        size_t len;
        char *file = tf_read_file(path, &len);
        if (!file)
            test_skip("cannot read %s (set TERN_TESTDATA to the testdata directory)", path);
        struct tdns t = {0};
        const char *s = file;
        while (*s && *s != '\n') {
            const char *eol = strchr(s, '\n');
            size_t nl = strcspn(s, " \t");
            char *name = xstrndup(s, nl);
            char *text = xstrndup(s + nl + 1, (size_t)(eol - s) - nl - 1);
            tdns_add(&t, name, text);
            free(name);
            free(text);
            s = eol + 1;
        }
        while (*s == '\n')
            s++;
        size_t mlen;
        char *msg = to_crlf(s, len - (size_t)(s - file), &mlen);
        for (size_t chunk = 0; chunk < 2; chunk++) {
            struct dkim_arc_verify *v = verify_msg(&t, msg, mlen, 1674137914, chunk);
            const struct dkim_arc_result *r = dkim_arc_verify_result(v);
            if (r->status != DKIM_ARC_PASS)
                fail_msg("%s: arc=%s (%s)", path, dkim_arc_status_name(r->status), r->reason);
            assert_int_equal(r->instances, want_n[n - 1]);
            assert_true(r->d[0] && r->s[0]);
            dkim_arc_verify_free(v);
        }
        free(msg);
        free(file);
        tdns_clear(&t);
    }
}

/* ---- our own cases ------------------------------------------------------- */

static const char *key_dummy =
    "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JY"
    "i0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K"
    "4w3QIDAQAB";

/* A message of the suite, read from it (LF line ends). */
static char *suite_msg(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/dkim/arc_test_suite/arc-draft-validation-tests.yml", testdata_dir());
    char *y = tf_read_file(path, NULL);
    if (!y)
        test_skip("%s not found (set TERN_TESTDATA to the testdata directory)", path);
    char *key = xasprintf("\n  %s:\n", name);
    const char *p = strstr(y, key);
    free(key);
    assert_non_null(p);
    p = strstr(p, "message:     |\n");
    assert_non_null(p);
    p = strchr(p, '\n') + 1;
    /* the block: lines indented by 6 spaces (or empty), up to "    cv:" */
    struct strbuf sb = STRBUF_INIT;
    while (strncmp(p, "    cv:", 7) != 0) {
        const char *eol = strchr(p, '\n');
        assert_non_null(eol);
        if (eol - p >= 6)
            strbuf_append(&sb, p + 6, (size_t)(eol - p) - 6);
        strbuf_putc(&sb, '\n');
        p = eol + 1;
    }
    free(y);
    return strbuf_detach(&sb);
}

static char *replace(const char *msg, const char *from, const char *to)
{
    const char *at = strstr(msg, from);
    assert_non_null(at);
    return xasprintf("%.*s%s%s", (int)(at - msg), msg, to, at + strlen(from));
}

/* Removes the field that starts with start (with its continuation lines). */
static char *drop_field(const char *msg, const char *start)
{
    const char *at = strstr(msg, start);
    assert_non_null(at);
    const char *e = strchr(at, '\n');
    while (e && (e[1] == ' ' || e[1] == '\t'))
        e = strchr(e + 1, '\n');
    return xasprintf("%.*s%s", (int)(at - msg), msg, e + 1);
}

/* The chain of two sets that passes (the suite's cv_pass_i2_1). */
static char *chain2(void)
{
    return suite_msg("cv_pass_i2_1");
}

static void expect_oldest(struct tdns *t, const char *name, unsigned want)
{
    size_t len;
    char *raw = suite_msg(name);
    char *m = to_crlf(raw, strlen(raw), &len);
    struct dkim_arc_verify *v = verify_msg(t, m, len, 1700000000, 0);
    const struct dkim_arc_result *r = dkim_arc_verify_result(v);
    assert_int_equal(r->status, DKIM_ARC_PASS);
    assert_int_equal(r->oldest_pass, want);
    dkim_arc_verify_free(v);
    free(m);
    free(raw);
}

static void test_own_cases(void **state)
{
    (void)state;
    struct tdns t = {0};
    tdns_add(&t, "dummy._domainkey.example.org", key_dummy);
    /* oldest-pass: every AMS verifies (0), or AMS i=1 does not (2) */
    expect_oldest(&t, "cv_pass_i2_1", 0);
    expect_oldest(&t, "cv_pass_i5_1", 0);
    expect_oldest(&t, "cv_pass_i2_1_ams1_invalid", 2);
    char *msg = chain2();
    expect(&t, msg, 0, DKIM_ARC_PASS, NULL);
    expect(&t, msg, 1, DKIM_ARC_PASS, NULL); /* one byte at a time */
    /* an AAR is signed by the newest AMS (its h= names it; the oldest AAR is
     * the one bottom-up selection takes) and by both seals */
    char *m = replace(msg, "i=1; lists.example.org;", "i=1; lists.example.com;");
    expect(&t, m, 0, DKIM_ARC_FAIL, "ARC-Message-Signature i=2: signature mismatch");
    free(m);

    /* a tampered body: the newest AMS's body hash */
    m = replace(msg, "This is a test message.", "This is a test massage.");
    expect(&t, m, 0, DKIM_ARC_FAIL, "ARC-Message-Signature i=2: body hash mismatch");
    free(m);
    /* a tampered AMS of the first set, which the newest AMS does not sign:
     * both seals cover it, the newest is reported first */
    m = replace(msg, "i=1; s=dummy; t=12345", "i=1; s=dummy; t=12344");
    expect(&t, m, 0, DKIM_ARC_FAIL, "ARC-Seal i=2: signature mismatch");
    free(m);

    /* a gap: the first set removed, only i=2 left */
    char *m1 = drop_field(msg, "ARC-Seal: a=rsa-sha256;\n    b=dOdFEyhrk");
    char *m2 = drop_field(m1, "ARC-Message-Signature: a=rsa-sha256;\n    b=QsRzR");
    char *m3 = drop_field(m2, "ARC-Authentication-Results: i=1;");
    expect(&t, m3, 0, DKIM_ARC_FAIL, "ARC set i=1 has no");
    expect(&t, m1, 0, DKIM_ARC_FAIL, "ARC set i=1 has no ARC-Seal");
    free(m1);
    free(m2);
    free(m3);
    /* a repeated instance */
    m = replace(msg, "ARC-Authentication-Results: i=1;", "ARC-Authentication-Results: i=2;");
    expect(&t, m, 0, DKIM_ARC_FAIL, "two ARC-Authentication-Results fields with i=2");
    free(m);
    /* an instance over the bound */
    m = replace(msg, "ARC-Authentication-Results: i=1;", "ARC-Authentication-Results: i=17;");
    expect(&t, m, 0, DKIM_ARC_FAIL, "more than 16 ARC sets");
    free(m);
    /* no ARC at all */
    expect(&t, "From: a@example.org\nSubject: x\n\nbody\n", 0, DKIM_ARC_NONE, NULL);
    tdns_clear(&t);

    /* a DNS failure fails the chain (RFC 8617 §5.2.1: all failures are permanent) */
    tdns_add(&t, "dummy._domainkey.example.org", "~~TEMPFAIL~~");
    expect(&t, msg, 0, DKIM_ARC_FAIL, "key lookup failed");
    tdns_clear(&t);
    expect(&t, msg, 0, DKIM_ARC_FAIL, "no key record");
    free(msg);
}

static void free_in_done(void *arg, struct dkim_arc_verify *v)
{
    (*(int *)arg)++;
    dkim_arc_verify_free(v);
}

static void test_cancel(void **state)
{
    (void)state;
    struct tdns t = {0};
    tdns_add(&t, "dummy._domainkey.example.org", key_dummy);
    struct mailauth_dns dns = tdns_iface(&t);
    size_t len;
    char *raw = chain2();
    char *msg = to_crlf(raw, strlen(raw), &len);
    free(raw);
    size_t hlen = (size_t)(strstr(msg, "\r\n\r\n") - msg) + 2;

    /* Freed before the answers, the body half fed: the lookup cancelled
     * (one: both AMSs and both seals use one key), done never runs,
     * nothing leaks (ASan). */
    int calls = 0;
    struct dkim_arc_verify *v = dkim_arc_verify_new(&dns, msg, hlen, 1700000000, free_in_done, &calls);
    assert_int_equal(t.lookups, 1);
    dkim_arc_verify_body(v, msg + hlen + 2, 10);
    dkim_arc_verify_free(v);
    assert_int_equal(t.cancels, 1);
    assert_null(t.pending);
    tdns_run(&t);
    assert_int_equal(calls, 0);

    /* Freed from inside done. */
    v = dkim_arc_verify_new(&dns, msg, hlen, 1700000000, free_in_done, &calls);
    dkim_arc_verify_body(v, msg + hlen + 2, len - hlen - 2);
    assert_int_equal(dkim_arc_verify_end(v), 0);
    tdns_run(&t);
    assert_int_equal(calls, 1);
    assert_int_equal(t.cancels, 1);

    /* A structural failure: ready at once, no lookup. */
    t.lookups = 0;
    char *bad = replace(msg, "cv=pass", "cv=none");
    v = dkim_arc_verify_new(&dns, bad, hlen, 1700000000, free_in_done, &calls);
    assert_int_equal(t.lookups, 0);
    assert_int_equal(dkim_arc_verify_end(v), 1);
    assert_int_equal(dkim_arc_verify_result(v)->status, DKIM_ARC_FAIL);
    assert_non_null(strstr(dkim_arc_verify_result(v)->reason, "cv=none, want pass"));
    dkim_arc_verify_free(v);
    free(bad);
    free(msg);
    tdns_clear(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arc_suite),
        cmocka_unit_test(test_stalwart),
        cmocka_unit_test(test_own_cases),
        cmocka_unit_test(test_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
