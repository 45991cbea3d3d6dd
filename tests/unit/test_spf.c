/* Tests for spf: RFC 7208 check_host() through a fake DNS.
 *
 * - The OpenSPF conformance suite (../shared/testdata/spf/rfc7208-tests.yml,
 *   from pyspf): every scenario's zonedata becomes the fake DNS, every case
 *   runs through spf_check_start and must give one of its results (and its
 *   explanation when it names one). Cases that may not pass are listed in
 *   suite_skips[] with the RFC's reason; a skipped case that passes is an
 *   error too, so the table cannot rot. The older rfc4408-tests.yml runs as
 *   well and its count is printed (RFC 4408 differs on purpose in places).
 * - The Stalwart set (../shared/testdata/spf/stalwart/), a second suite
 *   written independently from the RFC text; where it departs from RFC 7208
 *   the case is in stalwart_skips[] with the section that decides.
 * - Cases of our own: cancelling mid-check, the limits, macro expansion,
 *   IPv6 clients, the HELO identity, the record parser's messages.
 *
 * The fake DNS keeps the layer's promise: an answer never comes from
 * inside the lookup call. Lookups are queued and the test drains the queue,
 * answering them one by one, as the event loop would. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "mailauth/spf.h"
#include "test_fixture.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

/* ---- the fake DNS ---------------------------------------------------------- */

enum { Z_TIMEOUT = -1, Z_CNAME = 5, Z_SPF = 99 };

struct zrec {
    char *name;   /* lower case, no trailing dot */
    int type;     /* DNS_TYPE_*, Z_CNAME, Z_SPF, or Z_TIMEOUT */
    int none;     /* "TXT: NONE": the name has TXT, but not this record */
    int timeout;  /* "A: TIMEOUT": lookups of this type time out */
    unsigned char *data;
    size_t len;
};

struct zone {
    struct zrec *r;
    size_t n;
};

struct mailauth_dns_query {
    char *name;
    int rrtype;
    dns_rrset_cb cb;
    void *arg;
    struct mailauth_dns_query *next;
};

struct fake {
    struct zone zone;
    struct mailauth_dns_query *head, *tail;
    int in_lookup;      /* a lookup call is running: answering now is a bug */
    size_t lookups;     /* how many were started */
    size_t pending;
};

static char *lower_name(const char *s)
{
    char *n = xstrdup(s);
    for (char *p = n; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p + 32);
    size_t l = strlen(n);
    if (l > 0 && n[l - 1] == '.')
        n[l - 1] = '\0';
    return n;
}

static void zone_add(struct zone *z, const char *name, int type, const void *data, size_t len)
{
    z->r = xrealloc(z->r, (z->n + 1) * sizeof *z->r);
    struct zrec *r = &z->r[z->n++];
    r->name = lower_name(name);
    r->type = type;
    r->data = xmalloc(len + 1);
    if (len)
        memcpy(r->data, data, len);
    r->data[len] = 0;
    r->len = len;
    r->none = r->timeout = 0;
}

static void zone_free(struct zone *z)
{
    for (size_t i = 0; i < z->n; i++) {
        free(z->r[i].name);
        free(z->r[i].data);
    }
    free(z->r);
    z->r = NULL;
    z->n = 0;
}

/* A name in uncompressed wire format. */
static void wire_name(struct strbuf *sb, const char *name)
{
    char *n = lower_name(name);
    for (char *p = n; *p;) {
        char *dot = strchr(p, '.');
        size_t l = dot ? (size_t)(dot - p) : strlen(p);
        strbuf_putc(sb, (char)(l > 63 ? 63 : l));
        strbuf_append(sb, p, l > 63 ? 63 : l);
        p += l;
        if (*p == '.')
            p++;
    }
    strbuf_putc(sb, '\0');
    free(n);
}

/* TXT RDATA: each given string as character-strings of at most 255. */
static void txt_add_string(struct strbuf *sb, const char *s, size_t len)
{
    do {
        size_t l = len > 255 ? 255 : len;
        strbuf_putc(sb, (char)l);
        strbuf_append(sb, s, l);
        s += l;
        len -= l;
    } while (len > 0);
}

static void zone_txt(struct zone *z, const char *name, const char *text)
{
    struct strbuf sb = STRBUF_INIT;
    txt_add_string(&sb, text, strlen(text));
    zone_add(z, name, DNS_TYPE_TXT, sb.buf, sb.len);
    strbuf_free(&sb);
}

static void zone_addr(struct zone *z, const char *name, const char *addr)
{
    unsigned char a[16];
    if (inet_pton(AF_INET, addr, a) == 1)
        zone_add(z, name, DNS_TYPE_A, a, 4);
    else if (inet_pton(AF_INET6, addr, a) == 1)
        zone_add(z, name, DNS_TYPE_AAAA, a, 16);
    else
        fail_msg("bad address %s in zone", addr);
}

static void zone_name(struct zone *z, const char *name, int type, unsigned pref, const char *target)
{
    struct strbuf sb = STRBUF_INIT;
    if (type == DNS_TYPE_MX) {
        strbuf_putc(&sb, (char)(pref >> 8));
        strbuf_putc(&sb, (char)(pref & 255));
    }
    if (type == Z_CNAME)
        strbuf_puts(&sb, target);  /* kept as text: only the fake reads it */
    else
        wire_name(&sb, target);
    zone_add(z, name, type, sb.buf, sb.len);
    strbuf_free(&sb);
}

static struct mailauth_dns_query *fake_lookup(void *ctx, const char *name, int rrtype, dns_rrset_cb cb, void *arg)
{
    struct fake *f = ctx;
    f->in_lookup = 1;
    struct mailauth_dns_query *q = xcalloc(1, sizeof *q);
    q->name = xstrdup(name);
    q->rrtype = rrtype;
    q->cb = cb;
    q->arg = arg;
    if (f->tail)
        f->tail->next = q;
    else
        f->head = q;
    f->tail = q;
    f->lookups++;
    f->pending++;
    f->in_lookup = 0;
    return q;
}

static void query_free(struct mailauth_dns_query *q)
{
    free(q->name);
    free(q);
}

static void fake_cancel(void *ctx, struct mailauth_dns_query *q)
{
    struct fake *f = ctx;
    struct mailauth_dns_query **pp = &f->head, *prev = NULL;
    while (*pp && *pp != q) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    assert_non_null(*pp); /* cancelling a query that is not pending is a bug */
    *pp = q->next;
    if (f->tail == q)
        f->tail = prev;
    f->pending--;
    query_free(q);
}

static struct dns_rrset *rrset_new(const char *name, int type, enum dns_status st)
{
    struct dns_rrset *rs = xcalloc(1, sizeof *rs);
    rs->status = st;
    rs->name = lower_name(name);
    rs->rrtype = type;
    if (st != DNS_OK)
        rs->why = xstrdup(dns_status_name(st));
    return rs;
}

/* Answers as the suite's driver does (pyspf testspf.py): a bare TIMEOUT
 * times out a lookup unless a record of its type came before it, and ends
 * the list otherwise; "TYPE: TIMEOUT" times out that type; "TYPE: NONE" is
 * no record. SPF entries stand for TXT records listed after everything else,
 * unless the name has TXT entries of its own (RFC 7208 knows only TXT; the
 * suite writes most records as SPF to serve both kinds of implementation).
 * CNAMEs are followed. */
static struct dns_rrset *zone_answer(const struct zone *z, const char *qname, int type)
{
    if (type <= 0)
        return rrset_new(qname, type, DNS_INVALID);
    if (strncasecmp(qname, "_dns_error.", 11) == 0) /* the Stalwart set's failing name */
        return rrset_new(qname, type, DNS_TEMPFAIL);
    char *name = lower_name(qname);
    struct dns_rrset *rs = rrset_new(qname, type, DNS_OK);
    for (int hops = 0; hops < 10; hops++) {
        int exists = 0, has_txt = 0;
        const char *cname = NULL;
        for (size_t i = 0; i < z->n; i++)
            if (strcmp(z->r[i].name, name) == 0 && z->r[i].type == DNS_TYPE_TXT)
                has_txt = 1;
        int seen = 0, timed_out = 0;
        for (int synth = 0; synth < 2 && !timed_out; synth++)
            for (size_t i = 0; i < z->n; i++) {
                const struct zrec *r = &z->r[i];
                if (strcmp(r->name, name) != 0)
                    continue;
                exists = 1;
                if (synth != (r->type == Z_SPF))
                    continue;
                int rtype = r->type == Z_SPF ? (has_txt ? Z_SPF : DNS_TYPE_TXT) : r->type;
                if (r->type == Z_TIMEOUT) {
                    timed_out = !seen;
                    synth = 2; /* the list ends here */
                    break;
                }
                if (r->type == Z_CNAME)
                    cname = (const char *)r->data;
                if (rtype != type)
                    continue;
                if (r->none)
                    continue; /* not a record: it does not count as seen */
                seen = 1;
                if (r->timeout) {
                    timed_out = 1;
                    break;
                }
                rs->rrs = xrealloc(rs->rrs, (rs->nrrs + 1) * sizeof *rs->rrs);
                rs->rrs[rs->nrrs].data = xmalloc(r->len + 1);
                memcpy(rs->rrs[rs->nrrs].data, r->data, r->len);
                rs->rrs[rs->nrrs].len = r->len;
                rs->nrrs++;
            }
        if (timed_out) {
            dns_rrset_free(rs);
            free(name);
            return rrset_new(qname, type, DNS_TEMPFAIL);
        }
        if (rs->nrrs > 0 || cname == NULL) {
            if (rs->nrrs == 0) {
                rs->status = exists ? DNS_NODATA : DNS_NXDOMAIN;
                rs->why = xstrdup(dns_status_name(rs->status));
            }
            free(name);
            return rs;
        }
        free(name);
        name = lower_name(cname);
    }
    free(name);
    dns_rrset_free(rs);
    return rrset_new(qname, type, DNS_TEMPFAIL); /* a CNAME loop */
}

/* Answers the oldest pending lookup; 0 when none is pending. */
static int fake_step(struct fake *f)
{
    struct mailauth_dns_query *q = f->head;
    if (q == NULL)
        return 0;
    f->head = q->next;
    if (f->head == NULL)
        f->tail = NULL;
    f->pending--;
    struct dns_rrset *rs = zone_answer(&f->zone, q->name, q->rrtype);
    dns_rrset_cb cb = q->cb;
    void *arg = q->arg;
    query_free(q);
    cb(arg, rs);
    return 1;
}

static struct mailauth_dns fake_dns(struct fake *f)
{
    return (struct mailauth_dns){.lookup = fake_lookup, .cancel = fake_cancel, .ctx = f};
}

/* ---- running one check ----------------------------------------------------- */

struct got {
    int calls;
    enum spf_result result;
    char *explanation, *problem, *mechanism, *identity, *domain;
};

static void got_free(struct got *g)
{
    free(g->explanation);
    free(g->problem);
    free(g->mechanism);
    free(g->identity);
    free(g->domain);
    memset(g, 0, sizeof *g);
}

static void on_result(void *arg, const struct spf_outcome *out)
{
    struct got *g = arg;
    g->calls++;
    g->result = out->result;
    g->explanation = out->explanation ? xstrdup(out->explanation) : NULL;
    g->problem = out->problem ? xstrdup(out->problem) : NULL;
    g->mechanism = out->mechanism ? xstrdup(out->mechanism) : NULL;
    g->identity = out->identity ? xstrdup(out->identity) : NULL;
    g->domain = out->domain ? xstrdup(out->domain) : NULL;
    /* what goes to logs and SMTP replies must be printable */
    const char *strs[] = {out->explanation, out->problem, out->mechanism};
    for (size_t i = 0; i < 3; i++)
        for (const char *p = strs[i]; p && *p; p++)
            assert_true(*p >= 0x20 && *p < 0x7f);
    if (out->explanation)
        assert_true(strlen(out->explanation) <= SPF_EXPLANATION_MAX);
}

/* %{r} of the checks: the Stalwart set expects its own */
static const char *receiver = "receiver.example.net";

static void set_client(struct sockaddr_storage *ss, const char *ip)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
    } else {
        if (inet_pton(AF_INET6, ip, &s6->sin6_addr) != 1)
            fail_msg("bad client address %s", ip);
        s6->sin6_family = AF_INET6;
    }
}

/* Runs one check to its end; g gets the outcome. */
static void run_check(struct fake *f, const char *ip, const char *helo, const char *sender, int helo_identity,
                      const char *default_exp, struct got *g)
{
    struct sockaddr_storage ss;
    set_client(&ss, ip);
    struct mailauth_dns dns = fake_dns(f);
    struct spf_request req = {.client = (struct sockaddr *)&ss,
                              .helo = helo,
                              .sender = sender,
                              .receiver = receiver,
                              .helo_identity = helo_identity,
                              .default_explanation = default_exp};
    memset(g, 0, sizeof *g);
    struct spf_check *c = spf_check_start(&dns, &req, on_result, g);
    assert_non_null(c);
    assert_int_equal(g->calls, 0); /* never from inside the start */
    int steps = 0;
    while (g->calls == 0) {
        assert_true(fake_step(f));
        assert_true(++steps < 500);
    }
    assert_int_equal(g->calls, 1);
    assert_int_equal(f->pending, 0); /* nothing left running after the callback */
}

/* ---- the YAML suite ---------------------------------------------------------- */

static const char *testdata_dir(void)
{
    const char *dir = getenv("TERN_TESTDATA");
    return dir && *dir ? dir : "../shared/testdata";
}

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

static void load_zone(yaml_document_t *d, yaml_node_t *zd, struct zone *z)
{
    if (zd == NULL || zd->type != YAML_MAPPING_NODE)
        return;
    for (yaml_node_pair_t *p = zd->data.mapping.pairs.start; p < zd->data.mapping.pairs.top; p++) {
        const char *name = scalar(yaml_document_get_node(d, p->key));
        yaml_node_t *list = yaml_document_get_node(d, p->value);
        if (name == NULL || list == NULL || list->type != YAML_SEQUENCE_NODE)
            continue;
        for (yaml_node_item_t *it = list->data.sequence.items.start; it < list->data.sequence.items.top; it++) {
            yaml_node_t *rec = yaml_document_get_node(d, *it);
            if (scalar(rec) && strcmp(scalar(rec), "TIMEOUT") == 0) {
                zone_add(z, name, Z_TIMEOUT, "", 0);
                continue;
            }
            if (rec == NULL || rec->type != YAML_MAPPING_NODE || rec->data.mapping.pairs.start == rec->data.mapping.pairs.top)
                continue;
            yaml_node_pair_t *rp = rec->data.mapping.pairs.start;
            const char *type = scalar(yaml_document_get_node(d, rp->key));
            yaml_node_t *v = yaml_document_get_node(d, rp->value);
            if (type == NULL || v == NULL)
                continue;
            if (scalar(v) && (strcmp(scalar(v), "NONE") == 0 || strcmp(scalar(v), "TIMEOUT") == 0)) {
                int t = strcmp(type, "TXT") == 0 ? DNS_TYPE_TXT : strcmp(type, "SPF") == 0 ? Z_SPF
                      : strcmp(type, "A") == 0 ? DNS_TYPE_A : strcmp(type, "AAAA") == 0 ? DNS_TYPE_AAAA
                      : strcmp(type, "MX") == 0 ? DNS_TYPE_MX : strcmp(type, "PTR") == 0 ? DNS_TYPE_PTR : Z_CNAME;
                zone_add(z, name, t, "", 0);
                z->r[z->n - 1].none = scalar(v)[0] == 'N';
                z->r[z->n - 1].timeout = scalar(v)[0] == 'T';
                continue;
            }
            if (strcmp(type, "TXT") == 0 || strcmp(type, "SPF") == 0) {
                struct strbuf sb = STRBUF_INIT;
                if (v->type == YAML_SCALAR_NODE)
                    txt_add_string(&sb, (const char *)v->data.scalar.value, v->data.scalar.length);
                else if (v->type == YAML_SEQUENCE_NODE)
                    for (yaml_node_item_t *s = v->data.sequence.items.start; s < v->data.sequence.items.top; s++) {
                        yaml_node_t *sn = yaml_document_get_node(d, *s);
                        if (sn && sn->type == YAML_SCALAR_NODE)
                            txt_add_string(&sb, (const char *)sn->data.scalar.value, sn->data.scalar.length);
                    }
                zone_add(z, name, type[0] == 'T' ? DNS_TYPE_TXT : Z_SPF, sb.buf ? sb.buf : "", sb.len);
                strbuf_free(&sb);
            } else if (strcmp(type, "A") == 0 || strcmp(type, "AAAA") == 0) {
                zone_addr(z, name, scalar(v));
            } else if (strcmp(type, "MX") == 0 && v->type == YAML_SEQUENCE_NODE &&
                       v->data.sequence.items.top - v->data.sequence.items.start == 2) {
                const char *pref = scalar(yaml_document_get_node(d, v->data.sequence.items.start[0]));
                const char *host = scalar(yaml_document_get_node(d, v->data.sequence.items.start[1]));
                zone_name(z, name, DNS_TYPE_MX, (unsigned)atoi(pref ? pref : "0"), host ? host : "");
            } else if (strcmp(type, "PTR") == 0) {
                zone_name(z, name, DNS_TYPE_PTR, 0, scalar(v));
            } else if (strcmp(type, "CNAME") == 0) {
                zone_name(z, name, Z_CNAME, 0, scalar(v));
            } else {
                fail_msg("unknown record type %s in the suite", type);
            }
        }
    }
}

/* Cases that may fail, with the reason. None is needed: every case of
 * both suites passes. The table stays so that a future one is documented
 * where it is skipped (and a listed case that passes is reported). */
static const struct {
    const char *suite, *name, *reason;
} suite_skips[] = {
    {"", "", ""},
};

static const char *skip_reason(const char *suite, const char *name)
{
    for (size_t i = 0; i < sizeof suite_skips / sizeof suite_skips[0]; i++)
        if (*suite_skips[i].name && strcmp(suite_skips[i].suite, suite) == 0 &&
            strcmp(suite_skips[i].name, name) == 0)
            return suite_skips[i].reason;
    return NULL;
}

static int result_ok(yaml_document_t *d, yaml_node_t *want, enum spf_result got)
{
    if (want && want->type == YAML_SCALAR_NODE)
        return strcmp(scalar(want), spf_result_name(got)) == 0;
    if (want && want->type == YAML_SEQUENCE_NODE)
        for (yaml_node_item_t *it = want->data.sequence.items.start; it < want->data.sequence.items.top; it++) {
            const char *s = scalar(yaml_document_get_node(d, *it));
            if (s && strcmp(s, spf_result_name(got)) == 0)
                return 1;
        }
    return 0;
}

struct suite_count {
    int run, passed, skipped, failed;
};

static void run_suite(const char *file, int strict, struct suite_count *n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/spf/%s", testdata_dir(), file);
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        test_skip("%s not found (set TERN_TESTDATA to the testdata directory)", path);
    yaml_parser_t parser;
    assert_true(yaml_parser_initialize(&parser));
    yaml_parser_set_input_file(&parser, fp);
    memset(n, 0, sizeof *n);
    for (;;) {
        yaml_document_t doc;
        if (!yaml_parser_load(&parser, &doc))
            fail_msg("%s: YAML error: %s", file, parser.problem ? parser.problem : "?");
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        if (root == NULL) {
            yaml_document_delete(&doc);
            break;
        }
        struct fake f = {0};
        load_zone(&doc, map_get(&doc, root, "zonedata"), &f.zone);
        yaml_node_t *tests = map_get(&doc, root, "tests");
        for (yaml_node_pair_t *p = tests ? tests->data.mapping.pairs.start : NULL;
             tests && p < tests->data.mapping.pairs.top; p++) {
            const char *name = scalar(yaml_document_get_node(&doc, p->key));
            yaml_node_t *t = yaml_document_get_node(&doc, p->value);
            const char *host = scalar(map_get(&doc, t, "host"));
            const char *helo = scalar(map_get(&doc, t, "helo"));
            const char *from = scalar(map_get(&doc, t, "mailfrom"));
            const char *exp = scalar(map_get(&doc, t, "explanation"));
            yaml_node_t *want = map_get(&doc, t, "result");
            const char *reason = skip_reason(file, name);
            n->run++;
            struct got g;
            run_check(&f, host, helo ? helo : "", from ? from : "", 0, "DEFAULT", &g);
            int ok = result_ok(&doc, want, g.result);
            if (ok && exp && g.result == SPF_FAIL)
                ok = g.explanation && strcmp(g.explanation, exp) == 0;
            if (reason) {
                n->skipped++;
                if (ok)
                    print_error("%s: %s passes but is in the skip table (%s)\n", file, name, reason);
                n->failed += ok;
            } else if (ok) {
                n->passed++;
            } else {
                n->failed++;
                const char *w = scalar(want);
                print_error("%s: %s: got %s%s%s%s%s (%s), want %s%s%s\n", file, name, spf_result_name(g.result),
                            g.explanation ? " \"" : "", g.explanation ? g.explanation : "",
                            g.explanation ? "\"" : "", g.mechanism ? g.mechanism : "",
                            g.problem ? g.problem : "-", w ? w : "(a list)", exp ? " exp " : "",
                            exp ? exp : "");
            }
            got_free(&g);
        }
        zone_free(&f.zone);
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    fclose(fp);
    print_message("[  SUITE   ] %s: %d cases run, %d passed, %d skipped, %d failed\n", file, n->run, n->passed,
                  n->skipped, n->failed);
    if (strict)
        assert_int_equal(n->failed, 0);
}

static void test_rfc7208_suite(void **state)
{
    (void)state;
    struct suite_count n;
    run_suite("rfc7208-tests.yml", 1, &n);
    assert_true(n.run > 200);
}

/* RFC 4408's suite: the older rules (no void-lookup limit, other choices
 * for mx limits) make some cases differ; the count is reported, and every
 * case must still run to a result without a sanitizer report. */
static void test_rfc4408_suite(void **state)
{
    (void)state;
    struct suite_count n;
    run_suite("rfc4408-tests.yml", 0, &n);
    assert_true(n.run > 150);
    assert_true(n.passed * 10 > n.run * 9);
}

/* ---- the Stalwart set (stalwart/NAME.yml, read line by line) ----------------------- */

/* Removes name's records of one type. */
static void zone_drop(struct zone *z, const char *name, int type)
{
    char *n = lower_name(name);
    size_t k = 0;
    for (size_t i = 0; i < z->n; i++) {
        if (strcmp(z->r[i].name, n) == 0 && z->r[i].type == type) {
            free(z->r[i].name);
            free(z->r[i].data);
            continue;
        }
        z->r[k++] = z->r[i];
    }
    z->n = k;
    free(n);
}

/* Adds "<name> <v1>[,<v2>...]" records of one kind: a/aaaa addresses,
 * ptr names at the reverse name of an address, mx exchangers that the
 * driver calls mx.<ip>.<n> and gives that address. */
static void stalwart_record(struct zone *z, const char *key, char *rest)
{
    char *sp = strchr(rest, ' ');
    if (sp == NULL)
        fail_msg("stalwart record without a value: %s", rest);
    *sp = '\0';
    const char *owner = rest;
    char *value = sp + 1;
    /* the driver keeps one answer per name and type: a later line
     * replaces an earlier one */
    if (strcmp(key, "spf") == 0 || strcmp(key, "exp") == 0) {
        zone_drop(z, owner, DNS_TYPE_TXT);
        zone_txt(z, owner, value);
        return;
    }
    if (strcmp(key, "a") == 0 || strcmp(key, "aaaa") == 0 || strcmp(key, "mx") == 0)
        zone_drop(z, owner, key[0] == 'm' ? DNS_TYPE_MX : key[1] == 'a' ? DNS_TYPE_AAAA : DNS_TYPE_A);
    int n = 0;
    for (char *tok = strtok(value, ","); tok; tok = strtok(NULL, ","), n++) {
        while (*tok == ' ')
            tok++;
        char *end = tok + strlen(tok);
        while (end > tok && end[-1] == ' ')
            *--end = '\0';
        if (*tok == '\0')
            continue;
        if (strcmp(key, "a") == 0 || strcmp(key, "aaaa") == 0) {
            zone_addr(z, owner, tok);
        } else if (strcmp(key, "mx") == 0) {
            char name[128];
            snprintf(name, sizeof name, "mx.%s.%d", tok, n);
            zone_name(z, owner, DNS_TYPE_MX, (unsigned)n + 1, name);
            zone_addr(z, name, tok);
        } else if (strcmp(key, "ptr") == 0) {
            unsigned char a[16];
            struct strbuf rev = STRBUF_INIT;
            if (inet_pton(AF_INET, owner, a) == 1) {
                strbuf_printf(&rev, "%u.%u.%u.%u.in-addr.arpa", a[3], a[2], a[1], a[0]);
            } else {
                assert_int_equal(inet_pton(AF_INET6, owner, a), 1);
                for (int i = 15; i >= 0; i--)
                    strbuf_printf(&rev, "%x.%x.", a[i] & 15, a[i] >> 4);
                strbuf_puts(&rev, "ip6.arpa");
            }
            zone_name(z, rev.buf, DNS_TYPE_PTR, 0, tok);
            strbuf_free(&rev);
        } else {
            fail_msg("unknown stalwart record kind %s", key);
        }
    }
}

/* Where the set and RFC 7208 (with the OpenSPF suite) disagree; the
 * key is scenario|sender|client. */
static const struct {
    const char *id, *reason;
} stalwart_skips[] = {
    {"All test|sender@test.org|10.0.0.1",
     "\"v=spf1 -all ip:10.0.0.1\": a syntax error anywhere is a permerror before any term is "
     "evaluated (RFC 7208 §4.6, §4.6.1: ip is no mechanism); the set stops reading at -all"},
    {"DNS Lookup Limits|sender@ok.test.org|172.168.0.1",
     "ten a: terms of names that do not exist are ten void lookups; RFC 7208 §4.6.4 limits them to "
     "two (the OpenSPF suite's void-over-limit); the set has no such limit"},
    {"DNS Lookup Limits|sender@mx.test.org|10.0.0.8",
     "eleven MX records are a permerror when looked at (RFC 7208 §4.6.4, the OpenSPF suite's mx-limit); "
     "the set checks exchangers one by one and passes on the 8th before it counts the 11th"},
    {"Exists|sender@ip6.test.org|167.1.2.3",
     "exists looks up A records, even for an IPv6 client (RFC 7208 §5.7); the name has only AAAA"},
    {"Macro expansion 2|strong-bad@email.example.com|2001:db8::cb01",
     "exists looks up A records, even for an IPv6 client (RFC 7208 §5.7); the name has only AAAA"},
    {"IPv6 match|sender@test.org|10.1.2.3",
     "an IPv4 client is compared with ip4 only: IPv4 addresses are listed only with ip4 (RFC 7208 §5), "
     "so ip6:::ffff:10.1.2.3 does not match 10.1.2.3"},
};

static const char *stalwart_skip(const char *id)
{
    for (size_t i = 0; i < sizeof stalwart_skips / sizeof stalwart_skips[0]; i++)
        if (strcmp(stalwart_skips[i].id, id) == 0)
            return stalwart_skips[i].reason;
    return NULL;
}

static void run_stalwart_file(const char *path, struct suite_count *n)
{
    char *text = tf_read_file(path, NULL);
    if (text == NULL)
        test_skip("%s not found (set TERN_TESTDATA to the testdata directory)", path);
    struct fake f = {0};
    char helo[256] = "", sender[256] = "", ip[64] = "127.0.0.1", scenario[128] = "";
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *end = line + strlen(line);
        while (end > line && (end[-1] == ' ' || end[-1] == '\r'))
            *--end = '\0';
        if (strcmp(line, "---") == 0) {
            zone_free(&f.zone);
            strcpy(helo, "");
            strcpy(sender, "");
            strcpy(ip, "127.0.0.1");
            continue;
        }
        char *p = line;
        while (*p == ' ')
            p++;
        if (p[0] == '-' && p[1] == ' ')
            p += 2;
        if (*p == '#' || *p == '\0')
            continue;
        char *colon = strchr(p, ':');
        if (colon == NULL)
            continue;
        *colon = '\0';
        const char *key = p;
        char *val = colon + 1;
        while (*val == ' ')
            val++;
        if (strcmp(key, "name") == 0)
            str_copy(scenario, val, sizeof scenario);
        else if (strcmp(key, "records") == 0 || strcmp(key, "tests") == 0)
            continue;
        else if (strcmp(key, "domain") == 0)
            str_copy(helo, val, sizeof helo);
        else if (strcmp(key, "sender") == 0)
            str_copy(sender, val, sizeof sender);
        else if (strcmp(key, "ip") == 0)
            str_copy(ip, val, sizeof ip);
        else if (strcmp(key, "expect") == 0) {
            char *exp = strchr(val, ' ');
            if (exp)
                *exp++ = '\0';
            /* the set's driver checks the HELO identity first and the MAIL
             * FROM identity only when that passes */
            struct got g;
            run_check(&f, ip, helo, sender, 1, NULL, &g);
            if (g.result == SPF_PASS) {
                got_free(&g);
                run_check(&f, ip, helo, sender, 0, NULL, &g);
            }
            n->run++;
            char id[512];
            snprintf(id, sizeof id, "%s|%s|%s", scenario, sender, ip);
            const char *reason = stalwart_skip(id);
            int ok = strcmp(spf_result_name(g.result), val) == 0;
            if (ok && exp && *exp)
                ok = g.explanation && strcmp(g.explanation, exp) == 0;
            if (reason) {
                n->skipped++;
                if (ok)
                    print_error("%s: %s passes but is in the skip table (%s)\n", path, id, reason);
                n->failed += ok;
            } else if (ok) {
                n->passed++;
            } else {
                n->failed++;
                print_error("%s: %s: %s from %s: got %s \"%s\" (%s), want %s \"%s\"\n", path, scenario, sender, ip,
                            spf_result_name(g.result), g.explanation ? g.explanation : "",
                            g.problem ? g.problem : "-", val, exp ? exp : "");
            }
            got_free(&g);
        } else {
            stalwart_record(&f.zone, key, val);
        }
    }
    zone_free(&f.zone);
    free(text);
}

/* A second, independent set written from the RFC text (Stalwart
 * mail-auth's); its receiving host for %{r} is localdomain.org. */
static void test_stalwart_set(void **state)
{
    (void)state;
    static const char *files[] = {"a", "all", "basic", "examples", "exists", "exp",
                                  "include", "ip", "macro", "mx", "ptr", "redirect"};
    struct suite_count n = {0};
    receiver = "localdomain.org";
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/spf/stalwart/%s.yml", testdata_dir(), files[i]);
        run_stalwart_file(path, &n);
    }
    print_message("[  SUITE   ] stalwart/*.yml: %d checks run, %d passed, %d skipped, %d failed\n", n.run, n.passed,
                  n.skipped, n.failed);
    receiver = "receiver.example.net";
    assert_true(n.run > 150);
    assert_int_equal(n.failed, 0);
}

/* ---- our own cases ----------------------------------------------------------- */

/* One check of sender from ip, HELO mail.example.org, default explanation. */
static void check(struct fake *f, const char *ip, const char *sender, struct got *g)
{
    run_check(f, ip, "mail.example.org", sender, 0, NULL, g);
}

#define ASSERT_RESULT(g, want)                                                                          \
    do {                                                                                                \
        if ((g)->result != (want))                                                              \
            fail_msg("got %s (%s), want %s", spf_result_name((g)->result),                          \
                     (g)->problem ? (g)->problem : "-", spf_result_name(want));                     \
    } while (0)

/* A zone that makes a check go through every kind of lookup: TXT, include,
 * a, mx and its addresses, ptr and its validation, exists, redirect, exp. */
static void busy_zone(struct zone *z)
{
    zone_txt(z, "example.com", "v=spf1 include:inc.example.com a mx ptr:example.net exists:%{ir}.x.example.com "
                               "redirect=red.example.com exp=why.example.com");
    zone_txt(z, "inc.example.com", "v=spf1 a:host.example.com -all");
    zone_addr(z, "host.example.com", "192.0.2.99");
    zone_addr(z, "example.com", "192.0.2.98");
    zone_name(z, "example.com", DNS_TYPE_MX, 10, "mx1.example.com");
    zone_name(z, "example.com", DNS_TYPE_MX, 20, "mx2.example.com");
    zone_addr(z, "mx1.example.com", "192.0.2.97");
    zone_addr(z, "mx2.example.com", "192.0.2.96");
    zone_name(z, "1.2.0.192.in-addr.arpa", DNS_TYPE_PTR, 0, "h.example.org");
    zone_addr(z, "h.example.org", "192.0.2.1");
    zone_txt(z, "red.example.com", "v=spf1 -all exp=why.example.com");
    zone_txt(z, "why.example.com", "%{i} may not send for %{d}");
}

static void test_full_walk(void **state)
{
    (void)state;
    struct fake f = {0};
    busy_zone(&f.zone);
    struct got g;
    check(&f, "192.0.2.1", "user@example.com", &g);
    ASSERT_RESULT(&g, SPF_FAIL);
    /* the redirect's record decides, and its exp explains (§6.2) */
    assert_string_equal(g.explanation, "192.0.2.1 may not send for red.example.com");
    assert_string_equal(g.mechanism, "-all");
    assert_string_equal(g.identity, "user@example.com");
    assert_null(g.problem);
    /* TXT x4 (top, include, redirect, exp), A x3, MX, 2 exchangers, PTR */
    assert_true(f.lookups >= 10);
    got_free(&g);
    zone_free(&f.zone);
}

/* Cancelling after every possible number of answers: no callback, no
 * lookup left pending, nothing leaked (ASan's leak check at exit). */
static void test_cancel_at_every_step(void **state)
{
    (void)state;
    struct fake f = {0};
    busy_zone(&f.zone);
    struct mailauth_dns dns = fake_dns(&f);
    struct sockaddr_storage ss;
    set_client(&ss, "192.0.2.1");
    int completed = 0;
    for (int n = 0; n < 100 && !completed; n++) {
        struct got g = {0};
        struct spf_request req = {.client = (struct sockaddr *)&ss, .helo = "h", .sender = "u@example.com"};
        struct spf_check *c = spf_check_start(&dns, &req, on_result, &g);
        for (int k = 0; k < n && g.calls == 0; k++)
            assert_true(fake_step(&f));
        if (g.calls) {
            completed = 1; /* the whole check took fewer than n answers */
            got_free(&g);
            break;
        }
        assert_int_equal(f.pending, 1); /* one lookup at a time */
        spf_check_cancel(c);
        assert_int_equal(f.pending, 0);
        assert_false(fake_step(&f));
        assert_int_equal(g.calls, 0);
    }
    assert_true(completed);
    /* a check decided at once (no domain) can be cancelled as well */
    struct got g = {0};
    struct spf_request req = {.client = (struct sockaddr *)&ss, .helo = "h", .sender = "u@[192.0.2.1]"};
    spf_check_cancel(spf_check_start(&dns, &req, on_result, &g));
    assert_false(fake_step(&f));
    assert_int_equal(g.calls, 0);
    zone_free(&f.zone);
}

struct cancel_in_cb {
    struct spf_check *c;
    int calls;
    enum spf_result result;
};

static void cancel_from_callback(void *arg, const struct spf_outcome *out)
{
    struct cancel_in_cb *x = arg;
    x->calls++;
    x->result = out->result;
    spf_check_cancel(x->c); /* a session torn down by the result */
}

/* A cancel from inside the callback is harmless: no double free (ASan). */
static void test_cancel_inside_callback(void **state)
{
    (void)state;
    struct fake f = {0};
    zone_txt(&f.zone, "example.com", "v=spf1 -all");
    struct mailauth_dns dns = fake_dns(&f);
    struct sockaddr_storage ss;
    set_client(&ss, "192.0.2.1");
    struct spf_request req = {.client = (struct sockaddr *)&ss, .helo = "h", .sender = "u@example.com"};
    struct cancel_in_cb x = {0};
    x.c = spf_check_start(&dns, &req, cancel_from_callback, &x);
    while (fake_step(&f))
        ;
    assert_int_equal(x.calls, 1);
    assert_int_equal(x.result, SPF_FAIL);
    zone_free(&f.zone);
}

/* Ten nested includes are the limit of DNS terms (§4.6.4): pass; eleven
 * are a permerror. */
static void test_include_depth(void **state)
{
    (void)state;
    for (int depth = 10; depth <= 11; depth++) {
        struct fake f = {0};
        char name[64], text[128];
        zone_txt(&f.zone, "example.com", "v=spf1 include:i1.example.com -all");
        for (int i = 1; i <= depth; i++) {
            snprintf(name, sizeof name, "i%d.example.com", i);
            if (i < depth)
                snprintf(text, sizeof text, "v=spf1 include:i%d.example.com", i + 1);
            else
                snprintf(text, sizeof text, "v=spf1 ip4:192.0.2.0/24");
            zone_txt(&f.zone, name, text);
        }
        /* depth includes below the top: depth - 1 of them in the chain + 1 */
        struct got g;
        check(&f, "192.0.2.1", "u@example.com", &g);
        ASSERT_RESULT(&g, depth - 1 <= 9 ? SPF_PASS : SPF_PERMERROR);
        if (g.result == SPF_PERMERROR)
            assert_non_null(strstr(g.problem, "DNS-querying terms"));
        else
            assert_string_equal(g.mechanism, "include:i1.example.com");
        got_free(&g);
        zone_free(&f.zone);
    }
}

/* An mx term may name 10 exchangers, not 11 (§4.6.4), and a check makes a
 * bounded number of lookups even when every term is as costly as can be. */
static void test_mx_limit_and_lookup_bound(void **state)
{
    (void)state;
    for (int n = 10; n <= 11; n++) {
        struct fake f = {0};
        zone_txt(&f.zone, "example.com", "v=spf1 mx -all");
        for (int i = 0; i < n; i++) {
            char mx[64];
            snprintf(mx, sizeof mx, "mx%d.example.com", i);
            zone_name(&f.zone, "example.com", DNS_TYPE_MX, (unsigned)i, mx);
            zone_addr(&f.zone, mx, i == n - 1 ? "192.0.2.1" : "192.0.2.200");
        }
        struct got g;
        check(&f, "192.0.2.1", "u@example.com", &g);
        ASSERT_RESULT(&g, n == 10 ? SPF_PASS : SPF_PERMERROR);
        got_free(&g);
        zone_free(&f.zone);
    }
    /* ten mx terms of ten exchangers each, none matching */
    struct fake f = {0};
    zone_txt(&f.zone, "example.com", "v=spf1 mx mx mx mx mx mx mx mx mx mx mx -all");
    for (int i = 0; i < 10; i++) {
        char mx[64];
        snprintf(mx, sizeof mx, "mx%d.example.com", i);
        zone_name(&f.zone, "example.com", DNS_TYPE_MX, (unsigned)i, mx);
        zone_addr(&f.zone, mx, "192.0.2.200");
    }
    struct got g;
    check(&f, "192.0.2.1", "u@example.com", &g);
    ASSERT_RESULT(&g, SPF_PERMERROR); /* the 11th mx */
    assert_true(f.lookups <= 1 + 10 * 11);
    got_free(&g);
    zone_free(&f.zone);
}

/* Only the first 10 PTR names are validated (§4.6.4): the 11th would
 * match, but is ignored, and that is no error. */
static void test_ptr_limit(void **state)
{
    (void)state;
    struct fake f = {0};
    zone_txt(&f.zone, "example.com", "v=spf1 ptr -all");
    for (int i = 0; i < 11; i++) {
        char n[64];
        snprintf(n, sizeof n, "h%d.%s", i, i == 10 ? "example.com" : "other.example");
        zone_name(&f.zone, "1.2.0.192.in-addr.arpa", DNS_TYPE_PTR, 0, n);
        zone_addr(&f.zone, n, "192.0.2.1");
    }
    struct got g;
    check(&f, "192.0.2.1", "u@example.com", &g);
    ASSERT_RESULT(&g, SPF_FAIL);
    got_free(&g);
    /* with the matching name among the first ten it passes */
    zone_free(&f.zone);
    zone_txt(&f.zone, "example.com", "v=spf1 ptr -all");
    zone_name(&f.zone, "1.2.0.192.in-addr.arpa", DNS_TYPE_PTR, 0, "mail.EXAMPLE.com");
    zone_addr(&f.zone, "mail.example.com", "192.0.2.1");
    check(&f, "192.0.2.1", "u@example.com", &g);
    ASSERT_RESULT(&g, SPF_PASS);
    assert_string_equal(g.mechanism, "ptr");
    got_free(&g);
    zone_free(&f.zone);
}

static void test_void_lookups(void **state)
{
    (void)state;
    /* two void lookups (NXDOMAIN of a, no MX) are allowed, a third is not */
    struct fake f = {0};
    zone_txt(&f.zone, "two.example.com", "v=spf1 a:nx1.example.com mx:nomx.example.com ?all");
    zone_txt(&f.zone, "three.example.com", "v=spf1 a:nx1.example.com mx:nomx.example.com exists:nx2.example.com ?all");
    zone_addr(&f.zone, "nomx.example.com", "192.0.2.50");
    struct got g;
    check(&f, "192.0.2.1", "u@two.example.com", &g);
    ASSERT_RESULT(&g, SPF_NEUTRAL);
    assert_string_equal(g.mechanism, "?all");
    got_free(&g);
    check(&f, "192.0.2.1", "u@three.example.com", &g);
    ASSERT_RESULT(&g, SPF_PERMERROR);
    assert_non_null(strstr(g.problem, "void"));
    got_free(&g);
    /* a ptr term whose PTR lookup finds nothing is a void lookup too */
    zone_txt(&f.zone, "ptr.example.com", "v=spf1 a:nx1.example.com mx:nomx.example.com ptr ?all");
    check(&f, "192.0.2.1", "u@ptr.example.com", &g);
    ASSERT_RESULT(&g, SPF_PERMERROR);
    assert_string_equal(g.mechanism, "ptr");
    got_free(&g);
    zone_free(&f.zone);
}

static void test_record_selection(void **state)
{
    (void)state;
    struct fake f = {0};
    /* several strings of one record are joined without spaces (§3.3) */
    struct strbuf sb = STRBUF_INIT;
    txt_add_string(&sb, "v=spf1 ip4:192.0.2.0", 20);
    txt_add_string(&sb, "/24 -all", 8);
    zone_add(&f.zone, "split.example.com", DNS_TYPE_TXT, sb.buf, sb.len);
    strbuf_free(&sb);
    zone_txt(&f.zone, "two.example.com", "v=spf1 -all");
    zone_txt(&f.zone, "two.example.com", "v=spf1 +all");
    zone_txt(&f.zone, "other.example.com", "v=spf10 +all");
    zone_txt(&f.zone, "other.example.com", "google-site-verification=xyz");
    /* a record longer than SPF_RECORD_MAX is refused */
    struct strbuf big = STRBUF_INIT;
    strbuf_puts(&big, "v=spf1");
    while (big.len <= SPF_RECORD_MAX)
        strbuf_puts(&big, " ip4:192.0.2.200");
    strbuf_puts(&big, " +all");
    zone_txt(&f.zone, "big.example.com", big.buf);
    strbuf_free(&big);
    struct got g;
    check(&f, "192.0.2.1", "u@split.example.com", &g);
    ASSERT_RESULT(&g, SPF_PASS);
    assert_string_equal(g.mechanism, "ip4:192.0.2.0/24");
    got_free(&g);
    check(&f, "192.0.2.1", "u@two.example.com", &g);
    ASSERT_RESULT(&g, SPF_PERMERROR);
    got_free(&g);
    check(&f, "192.0.2.1", "u@other.example.com", &g);
    ASSERT_RESULT(&g, SPF_NONE);
    assert_null(g.problem);
    got_free(&g);
    check(&f, "192.0.2.1", "u@big.example.com", &g);
    ASSERT_RESULT(&g, SPF_PERMERROR);
    assert_non_null(strstr(g.problem, "longer"));
    got_free(&g);
    check(&f, "192.0.2.1", "u@absent.example.com", &g);
    ASSERT_RESULT(&g, SPF_NONE);
    got_free(&g);
    zone_free(&f.zone);
}

static void test_ipv6_clients(void **state)
{
    (void)state;
    struct fake f = {0};
    zone_txt(&f.zone, "example.com", "v=spf1 ip4:192.0.2.0/24 a/24//64 mx//48 -all");
    zone_addr(&f.zone, "example.com", "192.0.2.10");
    zone_addr(&f.zone, "example.com", "2001:db8:1:2::10");
    zone_name(&f.zone, "example.com", DNS_TYPE_MX, 0, "mx.example.com");
    zone_addr(&f.zone, "mx.example.com", "2001:db8:aaaa::1");
    zone_txt(&f.zone, "six.example.com", "v=spf1 ip6:2001:db8::/32 -all");
    zone_txt(&f.zone, "ex.example.com", "v=spf1 exists:%{ir}.%{v}.e.example.com -all");
    zone_addr(&f.zone, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.e.example.com", "127.0.0.2");
    struct got g;
    /* a//64 matches an AAAA record in the same /64 */
    check(&f, "2001:db8:1:2::99", "u@example.com", &g);
    ASSERT_RESULT(&g, SPF_PASS);
    assert_string_equal(g.mechanism, "a/24//64");
    got_free(&g);
    /* mx//48: the exchanger's AAAA */
    check(&f, "2001:db8:aaaa:ffff::1", "u@example.com", &g);
    ASSERT_RESULT(&g, SPF_PASS);
    assert_string_equal(g.mechanism, "mx//48");
    got_free(&g);
    /* an IPv6 client never matches ip4, and its a lookups ask AAAA */
    check(&f, "2001:db8:9::1", "u@example.com", &g);
    ASSERT_RESULT(&g, SPF_FAIL);
    /* the built-in explanation shows the address as people write it */
    assert_string_equal(g.explanation, "2001:db8:9::1 is not one of example.com's designated mail servers");
    got_free(&g);
    /* an IPv4-mapped IPv6 client is an IPv4 client (§5) */
    check(&f, "::ffff:192.0.2.77", "u@example.com", &g);
    ASSERT_RESULT(&g, SPF_PASS);
    assert_string_equal(g.mechanism, "ip4:192.0.2.0/24");
    got_free(&g);
    check(&f, "2001:db8:ffff::1", "u@six.example.com", &g);
    ASSERT_RESULT(&g, SPF_PASS);
    got_free(&g);
    check(&f, "192.0.2.1", "u@six.example.com", &g);
    ASSERT_RESULT(&g, SPF_FAIL);
    /* the built-in explanation, with the client and the domain */
    assert_string_equal(g.explanation, "192.0.2.1 is not one of six.example.com's designated mail servers");
    got_free(&g);
    /* %{ir} of an IPv6 client is its nibbles, %{v} "ip6"; exists asks A */
    check(&f, "2001:db8::1", "u@ex.example.com", &g);
    ASSERT_RESULT(&g, SPF_PASS);
    got_free(&g);
    zone_free(&f.zone);
}

static void test_helo_identity(void **state)
{
    (void)state;
    struct fake f = {0};
    zone_txt(&f.zone, "mail.example.org", "v=spf1 a -all");
    zone_addr(&f.zone, "mail.example.org", "192.0.2.1");
    zone_txt(&f.zone, "example.com", "v=spf1 -all");
    struct got g;
    /* HELO identity: the HELO name is checked, whatever MAIL FROM says */
    run_check(&f, "192.0.2.1", "mail.example.org", "u@example.com", 1, NULL, &g);
    ASSERT_RESULT(&g, SPF_PASS);
    assert_string_equal(g.identity, "postmaster@mail.example.org");
    assert_string_equal(g.domain, "mail.example.org");
    got_free(&g);
    /* the MAIL FROM identity of the same session */
    run_check(&f, "192.0.2.1", "mail.example.org", "u@example.com", 0, NULL, &g);
    ASSERT_RESULT(&g, SPF_FAIL);
    got_free(&g);
    /* the null reverse-path: postmaster@HELO (§2.4) */
    run_check(&f, "192.0.2.2", "mail.example.org", "", 0, "no: %{s}", &g);
    ASSERT_RESULT(&g, SPF_FAIL);
    assert_string_equal(g.identity, "postmaster@mail.example.org");
    assert_string_equal(g.explanation, "no: postmaster@mail.example.org");
    got_free(&g);
    /* a HELO that is no domain name gives none, without DNS (§4.3) */
    const char *bad[] = {"[192.0.2.1]", "localhost", "a..example.org", "", "-", "ex ample.org"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t before = f.lookups;
        run_check(&f, "192.0.2.1", bad[i], "u@example.com", 1, NULL, &g);
        ASSERT_RESULT(&g, SPF_NONE);
        assert_int_equal(f.lookups, before + 1); /* only the deferral */
        got_free(&g);
    }
    zone_free(&f.zone);
}

static void test_explanations(void **state)
{
    (void)state;
    struct fake f = {0};
    zone_txt(&f.zone, "a.example.com", "v=spf1 -all exp=e.%{d}");
    zone_txt(&f.zone, "e.a.example.com", "%{S} from %{c} at %{r}: see http://%{d}/why?%{I}%_%%");
    zone_txt(&f.zone, "b.example.com", "v=spf1 -all exp=two.example.com");
    zone_txt(&f.zone, "two.example.com", "one");
    zone_txt(&f.zone, "two.example.com", "two");
    zone_txt(&f.zone, "c.example.com", "v=spf1 -all exp=bad.example.com");
    zone_txt(&f.zone, "bad.example.com", "50%");
    zone_txt(&f.zone, "d.example.com", "v=spf1 -include:inc.example.com ~all");
    zone_txt(&f.zone, "inc.example.com", "v=spf1 +all exp=e.a.example.com");
    zone_txt(&f.zone, "t.example.com", "v=spf1 -all exp=tmo.example.com");
    zone_add(&f.zone, "tmo.example.com", Z_TIMEOUT, "", 0);
    zone_txt(&f.zone, "long.example.com", "v=spf1 -all exp=l.example.com");
    struct strbuf sb = STRBUF_INIT;
    for (int i = 0; i < 60; i++)
        strbuf_puts(&sb, "%{s}");
    zone_txt(&f.zone, "l.example.com", sb.buf);
    strbuf_free(&sb);
    zone_txt(&f.zone, "s.example.com", "v=spf1 ~all exp=e.a.example.com");
    struct got g;
    check(&f, "192.0.2.1", "a b@a.example.com", &g);
    ASSERT_RESULT(&g, SPF_FAIL);
    assert_string_equal(g.explanation,
                        "a%20b%40a.example.com from 192.0.2.1 at receiver.example.net: see "
                        "http://a.example.com/why?192.0.2.1 %");
    got_free(&g);
    /* two TXT records, a macro error, a timeout: the default instead */
    const char *dflt[] = {"u@b.example.com", "u@c.example.com", "u@t.example.com"};
    for (size_t i = 0; i < 3; i++) {
        run_check(&f, "192.0.2.1", "h.example.org", dflt[i], 0, "DEFAULT %{o}", &g);
        ASSERT_RESULT(&g, SPF_FAIL);
        char want[64];
        snprintf(want, sizeof want, "DEFAULT %s", strchr(dflt[i], '@') + 1);
        assert_string_equal(g.explanation, want);
        got_free(&g);
    }
    /* -include: the include's own exp is never used (§6.2) */
    run_check(&f, "192.0.2.1", "h.example.org", "u@d.example.com", 0, "DEFAULT", &g);
    ASSERT_RESULT(&g, SPF_FAIL);
    assert_string_equal(g.explanation, "DEFAULT");
    assert_string_equal(g.mechanism, "-include:inc.example.com");
    got_free(&g);
    /* long explanations are cut to SPF_EXPLANATION_MAX */
    check(&f, "192.0.2.1", "someone@long.example.com", &g);
    ASSERT_RESULT(&g, SPF_FAIL);
    assert_int_equal(strlen(g.explanation), SPF_EXPLANATION_MAX);
    got_free(&g);
    /* only a fail has an explanation */
    check(&f, "192.0.2.1", "u@s.example.com", &g);
    ASSERT_RESULT(&g, SPF_SOFTFAIL);
    assert_null(g.explanation);
    got_free(&g);
    zone_free(&f.zone);
}

/* %{p}: a validated name, preferring the domain itself or a subdomain. */
static void test_p_macro(void **state)
{
    (void)state;
    struct fake f = {0};
    zone_txt(&f.zone, "example.com", "v=spf1 exists:%{p}.ok.example.com -all exp=e.example.com");
    zone_txt(&f.zone, "e.example.com", "p=%{p}");
    zone_name(&f.zone, "1.2.0.192.in-addr.arpa", DNS_TYPE_PTR, 0, "other.example.net");
    zone_name(&f.zone, "1.2.0.192.in-addr.arpa", DNS_TYPE_PTR, 0, "mail.example.com");
    zone_name(&f.zone, "1.2.0.192.in-addr.arpa", DNS_TYPE_PTR, 0, "fake.example.com");
    zone_addr(&f.zone, "other.example.net", "192.0.2.1");
    zone_addr(&f.zone, "mail.example.com", "192.0.2.1");
    zone_addr(&f.zone, "fake.example.com", "192.0.2.99"); /* does not lead back */
    zone_addr(&f.zone, "mail.example.com.ok.example.com", "127.0.0.2");
    struct got g;
    check(&f, "192.0.2.1", "u@example.com", &g);
    ASSERT_RESULT(&g, SPF_PASS);
    got_free(&g);
    /* no PTR at all: "unknown" */
    check(&f, "192.0.2.2", "u@example.com", &g);
    ASSERT_RESULT(&g, SPF_FAIL);
    assert_string_equal(g.explanation, "p=unknown");
    got_free(&g);
    zone_free(&f.zone);
}

static void test_outcome_fields(void **state)
{
    (void)state;
    struct fake f = {0};
    zone_txt(&f.zone, "example.com", "v=spf1 ip4:192.0.2.1 include:tmo.example.com -all");
    zone_add(&f.zone, "tmo.example.com", Z_TIMEOUT, "", 0);
    zone_txt(&f.zone, "bad.example.com", "v=spf1 ip4:192.0.2.1 foo:bar\x1b[31m -all");
    struct got g;
    check(&f, "192.0.2.1", "u@example.com", &g);
    ASSERT_RESULT(&g, SPF_PASS);
    assert_string_equal(g.mechanism, "ip4:192.0.2.1");
    assert_null(g.problem);
    assert_null(g.explanation);
    got_free(&g);
    check(&f, "192.0.2.2", "u@example.com", &g);
    ASSERT_RESULT(&g, SPF_TEMPERROR);
    assert_non_null(strstr(g.problem, "tmo.example.com"));
    got_free(&g);
    /* a syntax error anywhere is a permerror before anything matches; the
     * problem names the term, control characters made harmless */
    check(&f, "192.0.2.1", "u@bad.example.com", &g);
    ASSERT_RESULT(&g, SPF_PERMERROR);
    assert_non_null(strstr(g.problem, "foo:bar?[31m"));
    got_free(&g);
    /* no client address */
    struct mailauth_dns dns = fake_dns(&f);
    struct spf_request req = {.client = NULL, .helo = "h", .sender = "u@example.com"};
    memset(&g, 0, sizeof g);
    spf_check_start(&dns, &req, on_result, &g);
    assert_int_equal(g.calls, 0);
    while (fake_step(&f))
        ;
    assert_int_equal(g.calls, 1);
    ASSERT_RESULT(&g, SPF_PERMERROR);
    got_free(&g);
    assert_string_equal(spf_result_name(SPF_SOFTFAIL), "softfail");
    assert_string_equal(spf_result_name(SPF_TEMPERROR), "temperror");
    assert_string_equal(spf_result_name(SPF_NONE), "none");
    zone_free(&f.zone);
}

/* ---- the parser and the expander on their own ---- */

static void test_parse(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int ok;
        const char *why; /* a part of the message */
    } cases[] = {
        {"v=spf1", 1, NULL},
        {"v=spf1 ", 1, NULL},
        {"V=SPF1 A MX -ALL", 1, NULL},
        {"v=spf1 a:example.com/24//64 mx/0 ptr:example.org ip6:::1/128 ip4:0.0.0.0/0 exists:%{i}.x.org", 1, NULL},
        {"v=spf1 foo=bar.%{d} moo.cow-far_out=man:dog/cat", 1, NULL},
        {"v=spf1 -all redirect=a.example.com exp=e.example.com", 1, NULL},
        {"v=spf1 redirect=a.example.com redirect=b.example.com", 0, "twice"},
        {"v=spf1 exp=a.example.com exp=b.example.com", 0, "twice"},
        {"v=spf1 ip4:192.0.2.1/33", 0, "CIDR"},
        {"v=spf1 ip4:192.0.2.01", 0, "network"},
        {"v=spf1 ip4:192.0.2", 0, "network"},
        {"v=spf1 ip6:2001:db8::/129", 0, "CIDR"},
        {"v=spf1 a/032", 0, "CIDR"},
        {"v=spf1 a:example.com//", 0, NULL},
        {"v=spf1 include", 0, "domain"},
        {"v=spf1 include:", 0, "domain"},
        {"v=spf1 a:1.2.3.4", 0, "top-level"},
        {"v=spf1 a:%{d}", 1, NULL},
        {"v=spf1 a:%{c}.example.com", 0, "explanations"},
        {"v=spf1 exists:%{d0}.example.com", 0, "zero"},
        {"v=spf1 exists:%(ir).example.com", 0, "%"},
        {"v=spf1 all:foo", 0, "argument"},
        {"v=spf1 +redirect=a.example.com", 0, "unknown mechanism"},
        {"v=spf1 ip4:192.0.2.1\t-all", 0, "invalid character"},
        {"v=spf1 a:caf\xc3\xa9.example.com", 0, "invalid character"},
        {"v=spf10 -all", 0, "v=spf1"},
        {"spf1 -all", 0, "v=spf1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct spf_record *r;
        char *err;
        int rc = spf_record_parse(cases[i].text, &r, &err);
        if ((rc == 0) != cases[i].ok)
            fail_msg("\"%s\": rc %d (%s)", cases[i].text, rc, err ? err : "-");
        if (rc == 0) {
            assert_null(err);
            spf_record_free(r);
            continue;
        }
        assert_null(r);
        assert_non_null(err);
        assert_true(strlen(err) <= 200);
        for (const char *p = err; *p; p++)
            assert_true(*p >= 0x20 && *p < 0x7f);
        if (cases[i].why && !strstr(err, cases[i].why))
            fail_msg("\"%s\": message \"%s\" lacks \"%s\"", cases[i].text, err, cases[i].why);
        free(err);
    }
    struct spf_record *r;
    char *err;
    assert_int_equal(spf_record_parse("v=spf1 a mx unknown=x ~all exp=x.example.com", &r, &err), 0);
    assert_int_equal(spf_record_terms(r), 5);
    spf_record_free(r);
}

static void expand_ctx(struct spf_macro_ctx *m, const char *ip)
{
    memset(m, 0, sizeof *m);
    m->sender = "strong-bad@email.example.com";
    m->local = "strong-bad";
    m->sender_domain = "email.example.com";
    m->domain = "email.example.com";
    m->helo = "mx.example.org";
    m->now = 1234567890;
    if (inet_pton(AF_INET, ip, m->ip) == 1) {
        m->family = AF_INET;
    } else {
        assert_int_equal(inet_pton(AF_INET6, ip, m->ip), 1);
        m->family = AF_INET6;
    }
}

static char *expand(const struct spf_macro_ctx *m, const char *spec, int flags)
{
    char *out, *err;
    if (spf_macro_expand(spec, m, flags, &out, &err) != 0)
        fail_msg("\"%s\": %s", spec, err);
    assert_null(err);
    for (const char *p = out; *p; p++)
        assert_true(*p >= 0x20 && *p < 0x7f);
    return out;
}

/* RFC 7208 §7.4, every example, and the edges around them. */
static void test_macro_expansion(void **state)
{
    (void)state;
    struct spf_macro_ctx m;
    expand_ctx(&m, "192.0.2.3");
    static const struct {
        const char *spec, *want;
    } v4[] = {
        {"%{s}", "strong-bad@email.example.com"},
        {"%{o}", "email.example.com"},
        {"%{d}", "email.example.com"},
        {"%{d4}", "email.example.com"},
        {"%{d3}", "email.example.com"},
        {"%{d2}", "example.com"},
        {"%{d1}", "com"},
        {"%{dr}", "com.example.email"},
        {"%{d2r}", "example.email"},
        {"%{l}", "strong-bad"},
        {"%{l-}", "strong.bad"},
        {"%{lr}", "strong-bad"},
        {"%{lr-}", "bad.strong"},
        {"%{l1r-}", "strong"},
        {"%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"},
        {"%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"},
        {"%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"},
        {"%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"},
        {"%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"},
        {"%{d127}", "email.example.com"},
        {"%{d99999999999999999999}", "email.example.com"},
        {"%{l+-}", "strong.bad"},
        {"%{s@}", NULL}, /* not a delimiter: an error, checked below */
        {"%%%_%-", "% %20"},
        {"%{h}", "mx.example.org"},
        {"%{p}", "unknown"},
        {"%{S}", "strong-bad%40email.example.com"},
        {"%{L}", "strong-bad"},
    };
    for (size_t i = 0; i < sizeof v4 / sizeof v4[0]; i++) {
        if (v4[i].want == NULL)
            continue;
        char *out = expand(&m, v4[i].spec, 0);
        if (strcmp(out, v4[i].want) != 0)
            fail_msg("%s: got \"%s\", want \"%s\"", v4[i].spec, out, v4[i].want);
        free(out);
    }
    /* only in explanations: c, r, t and spaces */
    char *out = expand(&m, "%{c} %{r} %{t}", SPF_MACRO_EXPLAIN);
    assert_string_equal(out, "192.0.2.3 unknown 1234567890");
    free(out);
    /* IPv6: dot-format nibbles for i (the RFC prints them in lower case;
     * DNS does not care), RFC 5952 text for c */
    expand_ctx(&m, "2001:db8::cb01");
    out = expand(&m, "%{ir}.%{v}._spf.%{d2}", SPF_MACRO_DOMAIN);
    assert_true(strcasecmp(out, "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com") == 0);
    free(out);
    out = expand(&m, "%{c}", SPF_MACRO_EXPLAIN);
    assert_string_equal(out, "2001:db8::cb01");
    free(out);
    /* errors */
    const char *bad[] = {"%", "%{", "%{d", "%{d0}", "%{x}", "%{s@}", "%a", "%{dr2}", "a b", "\x01"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *err;
        if (spf_macro_expand(bad[i], &m, 0, &out, &err) == 0)
            fail_msg("\"%s\" expanded to \"%s\"", bad[i], out);
        assert_null(out);
        assert_non_null(err);
        for (const char *p = err; *p; p++)
            assert_true(*p >= 0x20 && *p < 0x7f);
        free(err);
    }
    char *err;
    assert_int_equal(spf_macro_expand("%{c}", &m, 0, &out, &err), -1);
    free(err);
    assert_int_equal(spf_macro_expand("%{t}", &m, SPF_MACRO_DOMAIN, &out, &err), -1);
    free(err);
}

/* §7.3: a target name over 253 octets loses whole labels on the left;
 * everything else stays bounded and printable whatever the inputs hold. */
static void test_macro_bounds(void **state)
{
    (void)state;
    struct spf_macro_ctx m;
    expand_ctx(&m, "192.0.2.3");
    m.local = "abcdefghij.abcdefghij.abcdefghij.abcdefghij.abcdefghij";
    char *out = expand(&m, "%{l}.%{l}.%{l}.%{l}.%{l}.%{l}.example.com", SPF_MACRO_DOMAIN);
    assert_true(strlen(out) <= SPF_DOMAIN_MAX);
    assert_true(strlen(out) > SPF_DOMAIN_MAX - 11);
    assert_non_null(strstr(out, ".example.com"));
    assert_int_equal(strncmp(out, "abcdefghij.", 11), 0); /* cut at a label */
    free(out);
    /* one huge label: nothing of it is left */
    char big[400];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    m.local = big;
    out = expand(&m, "%{l}", SPF_MACRO_DOMAIN);
    assert_string_equal(out, "");
    free(out);
    /* control characters and 8-bit octets of the inputs become '?' */
    m.local = "a\r\nb\x1b\xc3\xa9";
    out = expand(&m, "%{l}", 0);
    assert_string_equal(out, "a??b???");
    free(out);
    out = expand(&m, "%{L}", 0);
    assert_string_equal(out, "a%0D%0Ab%1B%C3%A9");
    free(out);
    /* more than SPF_EXPAND_MAX octets is an error, not a truncation */
    m.local = big;
    char *err;
    assert_int_equal(spf_macro_expand("%{l}%{l}%{l}%{l}%{l}%{l}", &m, 0, &out, &err), -1);
    assert_non_null(strstr(err, "longer"));
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc7208_suite),
        cmocka_unit_test(test_rfc4408_suite),
        cmocka_unit_test(test_stalwart_set),
        cmocka_unit_test(test_full_walk),
        cmocka_unit_test(test_cancel_at_every_step),
        cmocka_unit_test(test_cancel_inside_callback),
        cmocka_unit_test(test_include_depth),
        cmocka_unit_test(test_mx_limit_and_lookup_bound),
        cmocka_unit_test(test_ptr_limit),
        cmocka_unit_test(test_void_lookups),
        cmocka_unit_test(test_record_selection),
        cmocka_unit_test(test_ipv6_clients),
        cmocka_unit_test(test_helo_identity),
        cmocka_unit_test(test_explanations),
        cmocka_unit_test(test_p_macro),
        cmocka_unit_test(test_outcome_fields),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_macro_expansion),
        cmocka_unit_test(test_macro_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
