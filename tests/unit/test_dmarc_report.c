/* Unit tests for dmarc_report (RFC 9990 aggregate reports): the row check
 * and its normalizing, the row's line and its parser, the report's XML
 * (defaults of the published policy, optional elements, escaping, the
 * element order of Appendix A, and validity under the Appendix A schema
 * when xmllint and the RFC text are at hand), gzip, the filename and
 * Report-ID, the message that carries a report, and rua mailto: URIs. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "mailauth/dmarc.h"
#include "mailauth/dmarc_report.h"
#include "test_fixture.h"
#include "util/base64.h"
#include "util/mem.h"
#include "util/strbuf.h"

/* ---- helpers ---- */

static void set(char **field, const char *value)
{
    free(*field);
    *field = value ? xstrdup(value) : NULL;
}

/* A row every field of which is good but not yet normalized. */
static void row_fill(struct dmarc_report_row *r)
{
    memset(r, 0, sizeof *r);
    r->policy_domain = xstrdup("Example.COM.");
    r->source_ip = xstrdup("192.0.2.1");
    r->header_from = xstrdup("Mail.Example.COM");
    r->envelope_from = xstrdup("Bounce.Example.com.");
    r->envelope_to = xstrdup("Dest.TEST");
    r->disposition = xstrdup("quarantine");
    r->dkim = xstrdup("pass");
    r->spf = xstrdup("fail");
    r->reason = xstrdup("");
    r->spf_domain = xstrdup("Bounce.Example.com");
    r->spf_result = xstrdup("softfail");
    r->dkim_sigs[0] = (struct dmarc_report_dkim){xstrdup("Example.COM."), xstrdup("Sel-1"), xstrdup("pass")};
    r->dkim_sigs[1] = (struct dmarc_report_dkim){xstrdup("other.test"), xstrdup("s_2.k"), xstrdup("permerror")};
    r->ndkim = 2;
    r->count = 1;
}

/* A checked row with the optional fields empty and no signature. */
static void row_fill_minimal(struct dmarc_report_row *r)
{
    memset(r, 0, sizeof *r);
    r->policy_domain = xstrdup("example.com");
    r->source_ip = xstrdup("2001:db8::25");
    r->header_from = xstrdup("example.com");
    r->envelope_from = xstrdup("");
    r->envelope_to = xstrdup("");
    r->disposition = xstrdup("none");
    r->dkim = xstrdup("fail");
    r->spf = xstrdup("fail");
    r->reason = xstrdup("");
    r->spf_domain = xstrdup("");
    r->spf_result = xstrdup("");
    r->count = 1;
}

static int check(struct dmarc_report_row *r, char *why)
{
    memset(why, 'X', DMARC_ERR_MAX);
    why[DMARC_ERR_MAX - 1] = '\0';
    strcpy(why, "unset");
    return dmarc_report_row_check(r, why);
}

/* why is a printable string of fewer than DMARC_ERR_MAX bytes starting with
 * "NAME " (the field it names). */
static void assert_why(const char *why, const char *name)
{
    size_t n = strnlen(why, DMARC_ERR_MAX);
    assert_true(n > 0 && n < DMARC_ERR_MAX);
    for (size_t i = 0; i < n; i++)
        assert_true(why[i] >= 0x20 && why[i] < 0x7f);
    size_t k = strlen(name);
    if (strncmp(why, name, k) != 0 || why[k] != ' ')
        fail_msg("why \"%s\" does not name %s", why, name);
}

static const char *testdata_dir(void)
{
    const char *dir = getenv("TERN_TESTDATA");
    return dir && *dir ? dir : "../shared/testdata";
}

static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* Offset of needle in hay at or after from; fails the test when absent. */
static size_t at(const char *hay, const char *needle, size_t from)
{
    const char *p = strstr(hay + from, needle);
    if (!p)
        fail_msg("\"%s\" not found in:\n%s", needle, hay + from);
    return (size_t)(p - hay);
}

static const struct dmarc_report_meta meta0 = {
    .org_name = "Example Receiver",
    .email = "dmarc-reports@mx.example.net",
    .receiver = "mx.example.net",
    .report_id = NULL,
    .begin = 1700000000,
    .end = 1700086399,
    .generator = "tern 0.1.0",
};

static void parse_record(const char *text, struct dmarc_record *rec)
{
    char err[DMARC_ERR_MAX];
    if (dmarc_record_parse(text, strlen(text), rec, err) != 0)
        fail_msg("record \"%s\" not parsed: %s", text, err);
}

/* The XML of one report of the given rows under the record text. */
static char *xml_of(const struct dmarc_report_meta *meta, const char *record, struct dmarc_report_row *const *rows,
                    size_t nrows)
{
    struct dmarc_record rec;
    parse_record(record, &rec);
    struct strbuf sb = STRBUF_INIT;
    dmarc_report_xml(meta, "example.com", &rec, rows, nrows, &sb);
    dmarc_record_free(&rec);
    return strbuf_detach(&sb);
}

/* The text between <name> and </name> of the first such element at or
 * after from (malloc'd), or NULL. */
static char *element_text(const char *xml, const char *name, size_t from)
{
    char open[64], close[64];
    snprintf(open, sizeof open, "<%s>", name);
    snprintf(close, sizeof close, "</%s>", name);
    const char *a = strstr(xml + from, open);
    if (!a)
        return NULL;
    a += strlen(open);
    const char *b = strstr(a, close);
    return b ? xstrndup(a, (size_t)(b - a)) : NULL;
}

static void assert_element(const char *xml, const char *name, const char *want)
{
    char *got = element_text(xml, name, 0);
    if (!got)
        fail_msg("no <%s> in:\n%s", name, xml);
    if (strcmp(got, want) != 0) {
        print_error("<%s> is \"%s\", not \"%s\"\n", name, got, want);
        free(got);
        fail();
    }
    free(got);
}

/* ---- dmarc_report_row_check ---- */

static void test_check_good_row_normalized(void **state)
{
    (void)state;
    struct dmarc_report_row r;
    char why[DMARC_ERR_MAX];
    row_fill(&r);
    assert_int_equal(check(&r, why), 0);
    assert_string_equal(r.policy_domain, "example.com");
    assert_string_equal(r.header_from, "mail.example.com");
    assert_string_equal(r.envelope_from, "bounce.example.com");
    assert_string_equal(r.envelope_to, "dest.test");
    assert_string_equal(r.spf_domain, "bounce.example.com");
    assert_string_equal(r.spf_result, "softfail");
    assert_string_equal(r.source_ip, "192.0.2.1");
    assert_string_equal(r.disposition, "quarantine");
    assert_string_equal(r.dkim_sigs[0].domain, "example.com");
    assert_string_equal(r.dkim_sigs[0].selector, "Sel-1"); /* selectors keep their case */
    assert_string_equal(r.dkim_sigs[1].domain, "other.test");
    assert_int_equal(r.ndkim, 2);
    /* checking again changes nothing */
    assert_int_equal(check(&r, why), 0);
    assert_string_equal(r.policy_domain, "example.com");
    dmarc_report_row_free(&r);
    assert_null(r.policy_domain);
    assert_int_equal(r.ndkim, 0);
}

static void test_check_every_value_of_the_lists(void **state)
{
    (void)state;
    static const char *const dispositions[] = {"none", "pass", "quarantine", "reject"};
    static const char *const reasons[] = {"", "local_policy", "mailing_list", "other", "policy_test_mode",
                                          "trusted_forwarder"};
    static const char *const dkim_results[] = {"none", "pass", "fail", "policy", "neutral", "temperror", "permerror"};
    static const char *const spf_results[] = {"none", "pass", "fail", "softfail", "policy", "neutral", "temperror",
                                              "permerror"};
    char why[DMARC_ERR_MAX];
    struct dmarc_report_row r;
    for (size_t i = 0; i < sizeof dispositions / sizeof *dispositions; i++) {
        row_fill(&r);
        set(&r.disposition, dispositions[i]);
        assert_int_equal(check(&r, why), 0);
        dmarc_report_row_free(&r);
    }
    for (size_t i = 0; i < sizeof reasons / sizeof *reasons; i++) {
        row_fill(&r);
        set(&r.reason, reasons[i]);
        assert_int_equal(check(&r, why), 0);
        dmarc_report_row_free(&r);
    }
    for (size_t i = 0; i < sizeof dkim_results / sizeof *dkim_results; i++) {
        row_fill(&r);
        set(&r.dkim_sigs[1].result, dkim_results[i]);
        assert_int_equal(check(&r, why), 0);
        dmarc_report_row_free(&r);
    }
    for (size_t i = 0; i < sizeof spf_results / sizeof *spf_results; i++) {
        row_fill(&r);
        set(&r.spf_result, spf_results[i]);
        assert_int_equal(check(&r, why), 0);
        dmarc_report_row_free(&r);
    }
    for (int d = 0; d < 2; d++)
        for (int s = 0; s < 2; s++) {
            row_fill(&r);
            set(&r.dkim, d ? "pass" : "fail");
            set(&r.spf, s ? "pass" : "fail");
            assert_int_equal(check(&r, why), 0);
            dmarc_report_row_free(&r);
        }
}

static void test_check_optional_fields(void **state)
{
    (void)state;
    char why[DMARC_ERR_MAX];
    struct dmarc_report_row r;
    /* NULL optional fields become "" */
    row_fill(&r);
    set(&r.envelope_from, NULL);
    set(&r.envelope_to, NULL);
    set(&r.reason, NULL);
    set(&r.spf_domain, NULL);
    set(&r.spf_result, NULL);
    assert_int_equal(check(&r, why), 0);
    assert_string_equal(r.envelope_from, "");
    assert_string_equal(r.envelope_to, "");
    assert_string_equal(r.reason, "");
    assert_string_equal(r.spf_domain, "");
    assert_string_equal(r.spf_result, "");
    dmarc_report_row_free(&r);
    /* no signatures at all */
    row_fill_minimal(&r);
    assert_int_equal(check(&r, why), 0);
    dmarc_report_row_free(&r);
    /* exactly DMARC_REPORT_MAX_DKIM signatures */
    row_fill_minimal(&r);
    for (size_t i = 0; i < DMARC_REPORT_MAX_DKIM; i++)
        r.dkim_sigs[i] = (struct dmarc_report_dkim){xstrdup("example.com"), xstrdup("s"), xstrdup("fail")};
    r.ndkim = DMARC_REPORT_MAX_DKIM;
    assert_int_equal(check(&r, why), 0);
    dmarc_report_row_free(&r);
}

static void test_check_source_ip(void **state)
{
    (void)state;
    static const struct { const char *in, *out; } good[] = {
        {"192.0.2.1", "192.0.2.1"},
        {"IPv6:2001:DB8::1", "2001:db8::1"},
        {"ipv6:2001:db8::1", "2001:db8::1"},
        {"2001:0db8::1", "2001:db8::1"},
        {"2001:0DB8:0:0:0:0:0:0001", "2001:db8::1"},
        {"::1", "::1"},
        {"::ffff:192.0.2.1", "::ffff:192.0.2.1"},
    };
    static const char *const bad[] = {"", "192.0.2", "192.0.2.256", "192.0.2.1 ", " 192.0.2.1", "[192.0.2.1]",
                                      "2001:db8::g", "2001:db8:::1", "IPv6:", "IPv6:IPv6:::1", "example.com",
                                      "192.0.2.1/24"};
    char why[DMARC_ERR_MAX];
    struct dmarc_report_row r;
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        row_fill(&r);
        set(&r.source_ip, good[i].in);
        if (check(&r, why) != 0)
            fail_msg("%s refused: %s", good[i].in, why);
        assert_string_equal(r.source_ip, good[i].out);
        dmarc_report_row_free(&r);
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        row_fill(&r);
        set(&r.source_ip, bad[i]);
        if (check(&r, why) == 0)
            fail_msg("source_ip \"%s\" accepted as %s", bad[i], r.source_ip);
        assert_why(why, "source_ip");
        dmarc_report_row_free(&r);
    }
    row_fill(&r);
    set(&r.source_ip, NULL);
    assert_int_equal(check(&r, why), -1);
    assert_why(why, "source_ip");
    dmarc_report_row_free(&r);
}

/* One bad value of one field, and the name why must start with. */
struct bad_field {
    size_t off;
    const char *value;
    const char *name;
};
#define F(field) offsetof(struct dmarc_report_row, field)

static void test_check_bad_fields(void **state)
{
    (void)state;
    char long_label[80];
    memset(long_label, 'a', 64);
    strcpy(long_label + 64, ".test");
    const struct bad_field bad[] = {
        {F(policy_domain), "", "policy_domain"},
        {F(policy_domain), NULL, "policy_domain"},
        {F(policy_domain), "a..b", "policy_domain"},
        {F(policy_domain), "example.com..", "policy_domain"},
        {F(policy_domain), ".example.com", "policy_domain"},
        {F(policy_domain), "[192.0.2.1]", "policy_domain"},
        {F(policy_domain), "[IPv6:2001:db8::1]", "policy_domain"},
        {F(policy_domain), "exa mple.com", "policy_domain"},
        {F(policy_domain), "-x.example.com", "policy_domain"},
        {F(policy_domain), "x-.example.com", "policy_domain"},
        {F(policy_domain), "ex\tample.com", "policy_domain"},
        {F(policy_domain), "b\xc3\xa4r.example", "policy_domain"},
        {F(policy_domain), long_label, "policy_domain"},
        {F(header_from), "", "header_from"},
        {F(header_from), NULL, "header_from"},
        {F(header_from), "a..b", "header_from"},
        {F(header_from), "[192.0.2.1]", "header_from"},
        {F(header_from), "user@example.com", "header_from"},
        {F(envelope_from), "a..b", "envelope_from"},
        {F(envelope_from), "[192.0.2.1]", "envelope_from"},
        {F(envelope_to), "a..b", "envelope_to"},
        {F(envelope_to), ".", "envelope_to"},
        {F(disposition), "", "disposition"},
        {F(disposition), NULL, "disposition"},
        {F(disposition), "discard", "disposition"},
        {F(disposition), "Reject", "disposition"},
        {F(disposition), "reject ", "disposition"},
        {F(dkim), "", "dkim"},
        {F(dkim), "none", "dkim"},
        {F(dkim), "PASS", "dkim"},
        {F(dkim), "temperror", "dkim"},
        {F(spf), "", "spf"},
        {F(spf), "softfail", "spf"},
        {F(spf), "neutral", "spf"},
        {F(reason), "forwarded", "reason"},
        {F(reason), "Local_policy", "reason"},
        {F(reason), "sampled_out", "reason"},
        {F(spf_domain), "a..b", "spf_domain"},
        {F(spf_result), "", "spf_result"},
        {F(spf_result), NULL, "spf_result"},
        {F(spf_result), "hardfail", "spf_result"},
        {F(spf_result), "Pass", "spf_result"},
    };
    char why[DMARC_ERR_MAX];
    struct dmarc_report_row r;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        row_fill(&r);
        set((char **)((char *)&r + bad[i].off), bad[i].value);
        if (check(&r, why) == 0)
            fail_msg("%s \"%s\" accepted", bad[i].name, bad[i].value ? bad[i].value : "(null)");
        assert_why(why, bad[i].name);
        dmarc_report_row_free(&r);
    }
}

static void test_check_spf_pair(void **state)
{
    (void)state;
    char why[DMARC_ERR_MAX];
    struct dmarc_report_row r;
    /* a result without a domain */
    row_fill(&r);
    set(&r.spf_domain, "");
    assert_int_equal(check(&r, why), -1);
    assert_why(why, "spf_result");
    dmarc_report_row_free(&r);
    /* a domain without a result */
    row_fill(&r);
    set(&r.spf_result, "");
    assert_int_equal(check(&r, why), -1);
    assert_why(why, "spf_result");
    dmarc_report_row_free(&r);
    /* neither: fine */
    row_fill(&r);
    set(&r.spf_domain, "");
    set(&r.spf_result, "");
    assert_int_equal(check(&r, why), 0);
    dmarc_report_row_free(&r);
}

static void test_check_dkim_signatures(void **state)
{
    (void)state;
    static const char *const bad_selectors[] = {"a b", "", "-x.", ".x", "x.", "a..b", "a/b", "a;b", "s\xc3\xa9l"};
    static const char *const bad_results[] = {"", "softfail", "PASS", "pass ", "hardfail"};
    static const char *const bad_domains[] = {"", "a..b", "[192.0.2.1]", "a b"};
    char why[DMARC_ERR_MAX];
    struct dmarc_report_row r;
    for (size_t i = 0; i < sizeof bad_selectors / sizeof *bad_selectors; i++) {
        row_fill(&r);
        set(&r.dkim_sigs[1].selector, bad_selectors[i]);
        if (check(&r, why) == 0)
            fail_msg("selector \"%s\" accepted", bad_selectors[i]);
        assert_why(why, "a DKIM selector");
        dmarc_report_row_free(&r);
    }
    row_fill(&r);
    set(&r.dkim_sigs[0].selector, NULL);
    assert_int_equal(check(&r, why), -1);
    assert_why(why, "a DKIM selector");
    dmarc_report_row_free(&r);
    for (size_t i = 0; i < sizeof bad_results / sizeof *bad_results; i++) {
        row_fill(&r);
        set(&r.dkim_sigs[0].result, bad_results[i]);
        if (check(&r, why) == 0)
            fail_msg("DKIM result \"%s\" accepted", bad_results[i]);
        assert_why(why, "a DKIM result");
        dmarc_report_row_free(&r);
    }
    for (size_t i = 0; i < sizeof bad_domains / sizeof *bad_domains; i++) {
        row_fill(&r);
        set(&r.dkim_sigs[1].domain, bad_domains[i]);
        if (check(&r, why) == 0)
            fail_msg("DKIM domain \"%s\" accepted", bad_domains[i]);
        assert_why(why, "a DKIM domain");
        dmarc_report_row_free(&r);
    }
    /* more than DMARC_REPORT_MAX_DKIM: the struct holds no more, so the
     * count alone says so; put it back before freeing */
    row_fill(&r);
    r.ndkim = DMARC_REPORT_MAX_DKIM + 1;
    assert_int_equal(check(&r, why), -1);
    char want[64];
    snprintf(want, sizeof want, "more than %d DKIM", DMARC_REPORT_MAX_DKIM);
    assert_true(strncmp(why, want, strlen(want)) == 0);
    r.ndkim = 2;
    dmarc_report_row_free(&r);
}

static void test_selector_ok(void **state)
{
    (void)state;
    char s[DMARC_REPORT_FIELD_MAX + 2];
    assert_true(dmarc_report_selector_ok("s"));
    assert_true(dmarc_report_selector_ok("sel-1"));
    assert_true(dmarc_report_selector_ok("s_2.k"));
    assert_true(dmarc_report_selector_ok("2024a.example"));
    assert_false(dmarc_report_selector_ok(""));
    assert_false(dmarc_report_selector_ok("a b"));
    assert_false(dmarc_report_selector_ok("-x."));
    assert_false(dmarc_report_selector_ok(".x"));
    assert_false(dmarc_report_selector_ok("x."));
    assert_false(dmarc_report_selector_ok("a..b"));
    assert_false(dmarc_report_selector_ok("a\tb"));
    assert_false(dmarc_report_selector_ok("a=b"));
    memset(s, 'a', DMARC_REPORT_FIELD_MAX);
    s[DMARC_REPORT_FIELD_MAX] = '\0';
    assert_true(dmarc_report_selector_ok(s));
    s[DMARC_REPORT_FIELD_MAX] = 'a';
    s[DMARC_REPORT_FIELD_MAX + 1] = '\0';
    assert_false(dmarc_report_selector_ok(s));
}

/* ---- dmarc_report_row_line, dmarc_report_row_parse ---- */

static char *line_of(const struct dmarc_report_row *r, const char *count)
{
    struct strbuf sb = STRBUF_INIT;
    strbuf_puts(&sb, count);
    strbuf_putc(&sb, '\t');
    dmarc_report_row_line(r, &sb);
    return strbuf_detach(&sb);
}

static void assert_rows_equal(const struct dmarc_report_row *a, const struct dmarc_report_row *b)
{
    assert_string_equal(a->policy_domain, b->policy_domain);
    assert_string_equal(a->source_ip, b->source_ip);
    assert_string_equal(a->header_from, b->header_from);
    assert_string_equal(a->envelope_from, b->envelope_from);
    assert_string_equal(a->envelope_to, b->envelope_to);
    assert_string_equal(a->disposition, b->disposition);
    assert_string_equal(a->dkim, b->dkim);
    assert_string_equal(a->spf, b->spf);
    assert_string_equal(a->reason, b->reason);
    assert_string_equal(a->spf_domain, b->spf_domain);
    assert_string_equal(a->spf_result, b->spf_result);
    assert_int_equal(a->ndkim, b->ndkim);
    for (size_t i = 0; i < a->ndkim; i++) {
        assert_string_equal(a->dkim_sigs[i].domain, b->dkim_sigs[i].domain);
        assert_string_equal(a->dkim_sigs[i].selector, b->dkim_sigs[i].selector);
        assert_string_equal(a->dkim_sigs[i].result, b->dkim_sigs[i].result);
    }
}

static void test_line_exact(void **state)
{
    (void)state;
    char why[DMARC_ERR_MAX];
    struct dmarc_report_row r;
    row_fill(&r);
    set(&r.reason, "local_policy");
    assert_int_equal(check(&r, why), 0);
    struct strbuf sb = STRBUF_INIT;
    dmarc_report_row_line(&r, &sb);
    assert_string_equal(sb.buf, "example.com\t192.0.2.1\tmail.example.com\tbounce.example.com\tdest.test\t"
                                "quarantine\tpass\tfail\tlocal_policy\tbounce.example.com\tsoftfail\t"
                                "example.com\tSel-1\tpass\tother.test\ts_2.k\tpermerror");
    strbuf_free(&sb);
    dmarc_report_row_free(&r);

    row_fill_minimal(&r);
    assert_int_equal(check(&r, why), 0);
    dmarc_report_row_line(&r, &sb);
    assert_string_equal(sb.buf, "example.com\t2001:db8::25\texample.com\t\t\tnone\tfail\tfail\t\t\t");
    strbuf_free(&sb);
    dmarc_report_row_free(&r);
}

static void round_trip(struct dmarc_report_row *r, const char *count, uint64_t want_count)
{
    char why[DMARC_ERR_MAX];
    assert_int_equal(check(r, why), 0);
    char *line = line_of(r, count);
    struct dmarc_report_row back;
    if (dmarc_report_row_parse(line, strlen(line), &back) != 0)
        fail_msg("line not parsed back: %s", line);
    assert_rows_equal(r, &back);
    assert_true(back.count == want_count);
    /* and its line is the same again */
    char *again = line_of(&back, count);
    assert_string_equal(line, again);
    free(again);
    free(line);
    dmarc_report_row_free(&back);
    dmarc_report_row_free(r);
}

static void test_round_trip(void **state)
{
    (void)state;
    struct dmarc_report_row r;
    row_fill(&r);
    round_trip(&r, "5", 5);
    row_fill(&r);
    set(&r.reason, "trusted_forwarder");
    set(&r.source_ip, "IPv6:2001:DB8::1");
    round_trip(&r, "18446744073709551615", UINT64_MAX);
    row_fill_minimal(&r);
    round_trip(&r, "1", 1);
    /* the most signatures a row holds */
    row_fill_minimal(&r);
    for (size_t i = 0; i < DMARC_REPORT_MAX_DKIM; i++) {
        char d[32], s[32];
        snprintf(d, sizeof d, "d%zu.example", i);
        snprintf(s, sizeof s, "s%zu", i);
        r.dkim_sigs[i] = (struct dmarc_report_dkim){xstrdup(d), xstrdup(s), xstrdup(i % 2 ? "pass" : "neutral")};
    }
    r.ndkim = DMARC_REPORT_MAX_DKIM;
    round_trip(&r, "0012", 12);
    /* a field of DMARC_REPORT_FIELD_MAX bytes (a selector may be that long) */
    row_fill_minimal(&r);
    char sel[DMARC_REPORT_FIELD_MAX + 1];
    memset(sel, 's', DMARC_REPORT_FIELD_MAX);
    sel[DMARC_REPORT_FIELD_MAX] = '\0';
    r.dkim_sigs[0] = (struct dmarc_report_dkim){xstrdup("example.com"), xstrdup(sel), xstrdup("pass")};
    r.ndkim = 1;
    round_trip(&r, "3", 3);
}

static void test_parse_normalizes(void **state)
{
    (void)state;
    /* a line is checked, as a row: the same normalizing */
    const char *line = "7\tExample.COM.\tIPv6:2001:0DB8::1\tExample.com\t\tTo.Test\treject\tfail\tfail\t\t\t";
    struct dmarc_report_row r;
    assert_int_equal(dmarc_report_row_parse(line, strlen(line), &r), 0);
    assert_string_equal(r.policy_domain, "example.com");
    assert_string_equal(r.source_ip, "2001:db8::1");
    assert_string_equal(r.envelope_to, "to.test");
    assert_true(r.count == 7);
    assert_int_equal(r.ndkim, 0);
    dmarc_report_row_free(&r);
    /* len, not the NUL, ends the line */
    const char *longer = "2\texample.com\t192.0.2.9\texample.com\t\t\tnone\tpass\tpass\t\t\tGARBAGE";
    assert_int_equal(dmarc_report_row_parse(longer, strlen(longer) - strlen("GARBAGE"), &r), 0);
    assert_string_equal(r.spf_result, "");
    assert_true(r.count == 2);
    dmarc_report_row_free(&r);
}

static void assert_parse_refused(const char *line, size_t len)
{
    struct dmarc_report_row r;
    memset(&r, 0x5a, sizeof r);
    if (dmarc_report_row_parse(line, len, &r) == 0) {
        print_error("line accepted: \"%.*s\"\n", (int)len, line);
        dmarc_report_row_free(&r);
        fail();
    }
}

static void refuse(const char *line)
{
    assert_parse_refused(line, strlen(line));
}

static void test_parse_refuses(void **state)
{
    (void)state;
    const char *fixed = "example.com\t192.0.2.1\texample.com\t\t\tnone\tpass\tfail\t\t\t";
    char buf[2048];
    /* the line as it is is fine with a count */
    snprintf(buf, sizeof buf, "1\t%s", fixed);
    struct dmarc_report_row r;
    assert_int_equal(dmarc_report_row_parse(buf, strlen(buf), &r), 0);
    dmarc_report_row_free(&r);

    refuse("");
    refuse("1");
    refuse("1\t");
    refuse(fixed); /* no count: ten fields after the first */
    static const char *const counts[] = {"", "0", "00", "x", "+1", "-1", " 1", "1 ", "1a", "0x10", "1.0",
                                         "18446744073709551616", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof counts / sizeof *counts; i++) {
        snprintf(buf, sizeof buf, "%s\t%s", counts[i], fixed);
        refuse(buf);
    }
    /* the wrong number of fields: 10 fixed, 12 fixed, 11 + 1, 2 or 4 */
    refuse("1\texample.com\t192.0.2.1\texample.com\t\t\tnone\tpass\tfail\t\t");
    snprintf(buf, sizeof buf, "1\t%s\t", fixed);
    refuse(buf);
    snprintf(buf, sizeof buf, "1\t%s\texample.com", fixed);
    refuse(buf);
    snprintf(buf, sizeof buf, "1\t%s\texample.com\ts", fixed);
    refuse(buf);
    snprintf(buf, sizeof buf, "1\t%s\texample.com\ts\tpass\texample.com", fixed);
    refuse(buf);
    /* a trailing tab is one more (empty) field */
    snprintf(buf, sizeof buf, "1\t%s\texample.com\ts\tpass\t", fixed);
    refuse(buf);
    /* a field one byte longer than DMARC_REPORT_FIELD_MAX */
    char sel[DMARC_REPORT_FIELD_MAX + 2];
    memset(sel, 's', DMARC_REPORT_FIELD_MAX + 1);
    sel[DMARC_REPORT_FIELD_MAX + 1] = '\0';
    snprintf(buf, sizeof buf, "1\t%s\texample.com\t%s\tpass", fixed, sel);
    refuse(buf);
    /* the same with DMARC_REPORT_FIELD_MAX is fine */
    sel[DMARC_REPORT_FIELD_MAX] = '\0';
    snprintf(buf, sizeof buf, "1\t%s\texample.com\t%s\tpass", fixed, sel);
    assert_int_equal(dmarc_report_row_parse(buf, strlen(buf), &r), 0);
    dmarc_report_row_free(&r);
    /* a long field that is not the last, and a long count */
    char big[DMARC_REPORT_FIELD_MAX + 2];
    memset(big, '1', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    snprintf(buf, sizeof buf, "%s\t%s", big, fixed);
    refuse(buf);
    memset(big, 'a', sizeof big - 1);
    snprintf(buf, sizeof buf, "1\t%s\t192.0.2.1\texample.com\t\t\tnone\tpass\tfail\t\t\t", big);
    refuse(buf);
    /* fields that fail the check */
    refuse("1\texample.com\t192.0.2.1\texample.com\t\t\tmaybe\tpass\tfail\t\t\t");
    refuse("1\texample..com\t192.0.2.1\texample.com\t\t\tnone\tpass\tfail\t\t\t");
    refuse("1\texample.com\t192.0.2.300\texample.com\t\t\tnone\tpass\tfail\t\t\t");
    refuse("1\texample.com\t192.0.2.1\t\t\t\tnone\tpass\tfail\t\t\t");
    refuse("1\texample.com\t192.0.2.1\texample.com\t\t\tnone\tpass\tfail\t\texample.com\t");
    refuse("1\texample.com\t192.0.2.1\texample.com\t\t\tnone\tpass\tfail\t\t\tpass");
    snprintf(buf, sizeof buf, "1\t%s\texample.com\ta b\tpass", fixed);
    refuse(buf);
    snprintf(buf, sizeof buf, "1\t%s\texample.com\ts\tsoftfail", fixed);
    refuse(buf);
    /* a CR left at the end (a CRLF file) */
    snprintf(buf, sizeof buf, "1\t%s\texample.com\ts\tpass\r", fixed);
    refuse(buf);
    /* too many fields: one signature more than a row holds */
    size_t n = (size_t)snprintf(buf, sizeof buf, "1\t%s", fixed);
    for (int i = 0; i < DMARC_REPORT_MAX_DKIM; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "\texample.com\ts%d\tpass", i);
    assert_int_equal(dmarc_report_row_parse(buf, n, &r), 0);
    assert_int_equal(r.ndkim, DMARC_REPORT_MAX_DKIM);
    dmarc_report_row_free(&r);
    snprintf(buf + n, sizeof buf - n, "\texample.com\tsx\tpass");
    refuse(buf);
    /* and far too many */
    n = (size_t)snprintf(buf, sizeof buf, "1");
    for (int i = 0; i < 200; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "\t");
    refuse(buf);
}

/* ---- dmarc_report_id, dmarc_report_filename ---- */

static void test_id_and_filename(void **state)
{
    (void)state;
    char *id = dmarc_report_id(&meta0, "example.com");
    assert_string_equal(id, "1700000000.example.com@mx.example.net");
    free(id);
    char *file = dmarc_report_filename(&meta0, "example.com");
    assert_string_equal(file, "mx.example.net!example.com!1700000000!1700086399.xml.gz");
    free(file);
    struct dmarc_report_meta m = meta0;
    m.receiver = "mail.receiver.example";
    m.begin = 1013662812;
    m.end = 1013749130;
    file = dmarc_report_filename(&m, "example.com");
    assert_string_equal(file, "mail.receiver.example!example.com!1013662812!1013749130.xml.gz"); /* RFC 9990 3.5.2 */
    free(file);
    m.begin = 0;
    m.end = 86399;
    id = dmarc_report_id(&m, "sub.example.org");
    assert_string_equal(id, "0.sub.example.org@mail.receiver.example");
    free(id);
    /* the same period and domain give the same id; another domain another */
    char *a = dmarc_report_id(&meta0, "a.test"), *b = dmarc_report_id(&meta0, "a.test"),
         *c = dmarc_report_id(&meta0, "b.test");
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    free(a);
    free(b);
    free(c);
}

/* ---- dmarc_report_xml ---- */

static void test_xml_policy_defaults(void **state)
{
    (void)state;
    struct dmarc_report_row r;
    char why[DMARC_ERR_MAX];
    row_fill_minimal(&r);
    assert_int_equal(check(&r, why), 0);
    struct dmarc_report_row *rows[] = {&r};
    static const struct {
        const char *record, *p, *sp, *np, *adkim, *aspf, *fo, *testing;
    } cases[] = {
        {"v=DMARC1; p=reject", "reject", "reject", "reject", "r", "r", "0", "n"},
        {"v=DMARC1; p=quarantine; sp=none", "quarantine", "none", "none", "r", "r", "0", "n"},
        {"v=DMARC1; p=reject; np=quarantine", "reject", "reject", "quarantine", "r", "r", "0", "n"},
        {"v=DMARC1; p=none; sp=reject; np=quarantine", "none", "reject", "quarantine", "r", "r", "0", "n"},
        {"v=DMARC1; p=reject; sp=none; t=y; fo=1:d; adkim=s", "reject", "none", "none", "s", "r", "1:d", "y"},
        {"v=DMARC1; p=none; aspf=s; fo=0:d:s", "none", "none", "none", "r", "s", "0:d:s", "n"},
        {"v=DMARC1; p=none; fo=d:1", "none", "none", "none", "r", "r", "1:d", "n"},
        {"v=DMARC1; p=none; fo=s", "none", "none", "none", "r", "r", "s", "n"},
        /* unusable records are applied as p=none: so reported */
        {"v=DMARC1; p=bogus; rua=mailto:r@example.com", "none", "none", "none", "r", "r", "0", "n"},
        {"v=DMARC1; rua=mailto:r@example.com", "none", "none", "none", "r", "r", "0", "n"},
        {"v=DMARC1; p=reject; sp=bogus; rua=mailto:r@example.com", "none", "none", "none", "r", "r", "0", "n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *xml = xml_of(&meta0, cases[i].record, rows, 1);
        print_message("  %s\n", cases[i].record);
        assert_element(xml, "domain", "example.com");
        assert_element(xml, "p", cases[i].p);
        assert_element(xml, "sp", cases[i].sp);
        assert_element(xml, "np", cases[i].np);
        assert_element(xml, "adkim", cases[i].adkim);
        assert_element(xml, "aspf", cases[i].aspf);
        assert_element(xml, "fo", cases[i].fo);
        assert_element(xml, "testing", cases[i].testing);
        assert_element(xml, "discovery_method", "treewalk");
        assert_int_equal(count_of(xml, "<p>"), 1);
        assert_int_equal(count_of(xml, "<policy_published>"), 1);
        free(xml);
    }
    dmarc_report_row_free(&r);
}

static void test_xml_metadata_and_escaping(void **state)
{
    (void)state;
    struct dmarc_report_row r;
    char why[DMARC_ERR_MAX];
    row_fill_minimal(&r);
    assert_int_equal(check(&r, why), 0);
    struct dmarc_report_row *rows[] = {&r};
    struct dmarc_report_meta m = meta0;
    m.org_name = "A & B <x>\x01\t\x7f\"q\" 'a' \xc3\xa9nd";
    char *xml = xml_of(&m, "v=DMARC1; p=none", rows, 1);
    assert_element(xml, "org_name", "A &amp; B &lt;x&gt;&quot;q&quot; &apos;a&apos; nd");
    assert_element(xml, "email", "dmarc-reports@mx.example.net");
    assert_element(xml, "report_id", "1700000000.example.com@mx.example.net");
    assert_element(xml, "begin", "1700000000");
    assert_element(xml, "end", "1700086399");
    assert_element(xml, "generator", "tern 0.1.0");
    assert_element(xml, "version", "1.0");
    assert_true(strncmp(xml, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback xmlns=\"" DMARC_REPORT_NAMESPACE "\">\n",
                        strlen("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback xmlns=\"" DMARC_REPORT_NAMESPACE
                               "\">\n")) == 0);
    assert_true(strcmp(xml + strlen(xml) - strlen("</feedback>\n"), "</feedback>\n") == 0);
    for (const char *p = xml; *p; p++)
        if (!((*p >= 0x20 && *p < 0x7f) || *p == '\n'))
            fail_msg("byte 0x%02x in the XML", (unsigned char)*p);
    free(xml);
    /* no generator: no element */
    m.generator = NULL;
    xml = xml_of(&m, "v=DMARC1; p=none", rows, 1);
    assert_null(strstr(xml, "<generator>"));
    free(xml);
    dmarc_report_row_free(&r);
}

static void test_xml_rows(void **state)
{
    (void)state;
    char why[DMARC_ERR_MAX];
    struct dmarc_report_row a, b;
    row_fill(&a);
    set(&a.reason, "policy_test_mode");
    a.count = 42;
    assert_int_equal(check(&a, why), 0);
    row_fill_minimal(&b);
    b.count = 3;
    assert_int_equal(check(&b, why), 0);
    struct dmarc_report_row *rows[] = {&a, &b};
    char *xml = xml_of(&meta0, "v=DMARC1; p=quarantine", rows, 2);
    assert_int_equal(count_of(xml, "<record>"), 2);
    assert_int_equal(count_of(xml, "</record>"), 2);

    /* the top level, in order */
    size_t v = at(xml, "<version>", 0), md = at(xml, "<report_metadata>", v), pp = at(xml, "<policy_published>", md),
           rec1 = at(xml, "<record>", pp);
    (void)rec1;

    /* the first record: everything */
    size_t r1 = at(xml, "<record>", 0), r1end = at(xml, "</record>", r1);
    size_t row = at(xml, "<row>", r1), ids = at(xml, "<identifiers>", row), auth = at(xml, "<auth_results>", ids);
    assert_true(auth < r1end);
    char *s = element_text(xml, "source_ip", r1);
    assert_string_equal(s, "192.0.2.1");
    free(s);
    s = element_text(xml, "count", r1);
    assert_string_equal(s, "42");
    free(s);
    size_t pe = at(xml, "<policy_evaluated>", row), disp = at(xml, "<disposition>quarantine</disposition>", pe),
           dk = at(xml, "<dkim>pass</dkim>", disp), sp = at(xml, "<spf>fail</spf>", dk), rs = at(xml, "<reason>", sp),
           pe_end = at(xml, "</policy_evaluated>", rs);
    assert_true(at(xml, "<type>policy_test_mode</type>", rs) < pe_end);
    assert_true(pe_end < ids);
    assert_true(at(xml, "<header_from>mail.example.com</header_from>", ids) < auth);
    assert_true(at(xml, "<envelope_from>bounce.example.com</envelope_from>", ids) < auth);
    assert_true(at(xml, "<envelope_to>dest.test</envelope_to>", ids) < auth);
    /* auth_results: each dkim, then spf */
    size_t d1 = at(xml, "<dkim>", auth), d2 = at(xml, "<dkim>", d1 + 1), spf = at(xml, "<spf>", d2),
           auth_end = at(xml, "</auth_results>", spf);
    assert_true(auth_end < r1end);
    s = element_text(xml, "domain", d1);
    assert_string_equal(s, "example.com");
    free(s);
    s = element_text(xml, "selector", d1);
    assert_string_equal(s, "Sel-1");
    free(s);
    s = element_text(xml, "result", d1);
    assert_string_equal(s, "pass");
    free(s);
    s = element_text(xml, "selector", d2);
    assert_string_equal(s, "s_2.k");
    free(s);
    s = element_text(xml, "result", d2);
    assert_string_equal(s, "permerror");
    free(s);
    s = element_text(xml, "domain", spf);
    assert_string_equal(s, "bounce.example.com");
    free(s);
    s = element_text(xml, "scope", spf);
    assert_string_equal(s, "mfrom");
    free(s);
    s = element_text(xml, "result", spf);
    assert_string_equal(s, "softfail");
    free(s);

    /* the second record: no reason, envelope_from empty, no envelope_to,
     * no signature, no spf */
    size_t r2 = at(xml, "<record>", r1end), r2end = at(xml, "</record>", r2);
    char *rec2 = xstrndup(xml + r2, r2end - r2);
    assert_null(strstr(rec2, "<reason>"));
    assert_non_null(strstr(rec2, "<envelope_from></envelope_from>"));
    assert_null(strstr(rec2, "<envelope_to>"));
    assert_non_null(strstr(rec2, "<source_ip>2001:db8::25</source_ip>"));
    assert_non_null(strstr(rec2, "<count>3</count>"));
    assert_non_null(strstr(rec2, "<disposition>none</disposition>"));
    size_t a2 = at(rec2, "<auth_results>", 0);
    assert_true(strncmp(rec2 + a2, "<auth_results>\n    </auth_results>", strlen("<auth_results>\n    </auth_results>")) == 0);
    assert_int_equal(count_of(rec2, "<dkim>"), 1); /* the policy_evaluated one only */
    assert_int_equal(count_of(rec2, "<spf>"), 1);
    free(rec2);
    assert_string_equal(xml + r2end, "</record>\n</feedback>\n");
    free(xml);
    dmarc_report_row_free(&a);
    dmarc_report_row_free(&b);
}

/* The schema of RFC 9990 Appendix A, out of the RFC's text (page breaks
 * dropped), as tests/integration/test_mailauth.py's dmarc_schema does;
 * NULL when the RFC is not there. */
static char *rfc9990_schema(void)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/../rfc/rfc9990.txt", testdata_dir());
    size_t len;
    char *text = tf_read_file(path, &len);
    if (!text)
        return NULL;
    const char *a = strstr(text, "\nAppendix A.  DMARC XML Schema\n"),
               *b = strstr(text, "\nAppendix B.  Sample Report\n");
    if (!a || !b || b < a) {
        free(text);
        return NULL;
    }
    a = strchr(a + 1, '\n') + 1; /* past the heading */
    struct strbuf sb = STRBUF_INIT;
    while (a < b) {
        const char *nl = memchr(a, '\n', (size_t)(b - a));
        const char *end = nl ? nl : b;
        size_t n = (size_t)(end - a);
        int skip = memchr(a, '\f', n) || (n >= 8 && strncmp(a, "RFC 9990", 8) == 0) ||
                   (n >= 7 && strncmp(a, "Brotman", 7) == 0);
        if (!skip) {
            if (n >= 3 && strncmp(a, "   ", 3) == 0) {
                a += 3;
                n -= 3;
            }
            strbuf_append(&sb, a, n);
            strbuf_putc(&sb, '\n');
        }
        a = end + 1;
    }
    free(text);
    /* from the XML declaration on (the blank lines before it dropped) */
    char *all = strbuf_detach(&sb);
    char *start = strstr(all, "<?xml");
    char *xsd = start ? xstrdup(start) : NULL;
    free(all);
    return xsd;
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* Validates xml against the schema with xmllint; returns its exit status
 * and its output in out. */
static int xmllint(const char *dir, const char *xml, struct strbuf *out)
{
    char path[PATH_MAX], cmd[3 * PATH_MAX];
    snprintf(path, sizeof path, "%s/report.xml", dir);
    assert_int_equal(write_file(path, xml), 0);
    snprintf(cmd, sizeof cmd, "xmllint --noout --schema '%s/dmarc-2.0.xsd' '%s' 2>&1", dir, path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char buf[512];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
        strbuf_append(out, buf, n);
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_xml_schema_valid(void **state)
{
    (void)state;
    if (system("xmllint --version >/dev/null 2>&1") != 0)
        test_skip("xmllint not found (package libxml2-utils)");
    char *xsd = rfc9990_schema();
    if (!xsd)
        test_skip("%s/../rfc/rfc9990.txt not found (set TERN_TESTDATA to the testdata directory)", testdata_dir());
    char dir[64], path[PATH_MAX];
    assert_int_equal(tf_tmpdir_make(dir, sizeof dir, "dmarc-report"), 0);
    snprintf(path, sizeof path, "%s/dmarc-2.0.xsd", dir);
    assert_int_equal(write_file(path, xsd), 0);
    free(xsd);

    char why[DMARC_ERR_MAX];
    struct dmarc_report_row a, b, c;
    row_fill(&a);
    set(&a.reason, "local_policy");
    a.count = 1000000;
    assert_int_equal(check(&a, why), 0);
    row_fill_minimal(&b);
    assert_int_equal(check(&b, why), 0);
    row_fill_minimal(&c);
    set(&c.disposition, "pass");
    set(&c.dkim, "pass");
    set(&c.spf_domain, "example.com");
    set(&c.spf_result, "pass");
    assert_int_equal(check(&c, why), 0);
    struct dmarc_report_row *rows[] = {&a, &b, &c};
    struct dmarc_report_meta m = meta0;
    m.org_name = "A & B <x>\x01";
    static const char *const records[] = {"v=DMARC1; p=reject; sp=none; t=y; fo=1:d; adkim=s",
                                          "v=DMARC1; p=quarantine", "v=DMARC1; p=bogus; rua=mailto:r@example.com"};
    for (size_t i = 0; i < sizeof records / sizeof *records; i++) {
        char *xml = xml_of(&m, records[i], rows, 3);
        struct strbuf out = STRBUF_INIT;
        int rc = xmllint(dir, xml, &out);
        if (rc != 0)
            fail_msg("xmllint (%d) on the report for \"%s\":\n%s\n%s", rc, records[i], out.buf ? out.buf : "", xml);
        strbuf_free(&out);
        free(xml);
    }
    /* the check has teeth: an element out of its sequence is refused */
    char *xml = xml_of(&m, records[0], rows, 1);
    char *auth = strstr(xml, "    <auth_results>");
    char *ids = strstr(xml, "    <identifiers>");
    char *rec_end = strstr(xml, "  </record>");
    assert_true(ids && auth && rec_end && ids < auth && auth < rec_end);
    struct strbuf swapped = STRBUF_INIT;
    strbuf_append(&swapped, xml, (size_t)(ids - xml));
    strbuf_append(&swapped, auth, (size_t)(rec_end - auth));
    strbuf_append(&swapped, ids, (size_t)(auth - ids));
    strbuf_puts(&swapped, rec_end);
    struct strbuf out = STRBUF_INIT;
    assert_int_not_equal(xmllint(dir, swapped.buf, &out), 0);
    strbuf_free(&out);
    strbuf_free(&swapped);
    free(xml);

    dmarc_report_row_free(&a);
    dmarc_report_row_free(&b);
    dmarc_report_row_free(&c);
    assert_int_equal(tf_tmpdir_remove(dir), 0);
}

/* ---- dmarc_report_gzip ---- */

static unsigned char *gunzip(const unsigned char *gz, size_t gzlen, size_t *outlen)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
    size_t cap = 1024, n = 0;
    unsigned char *out = xmalloc(cap);
    z.next_in = (Bytef *)(uintptr_t)gz;
    z.avail_in = (uInt)gzlen;
    int rc;
    do {
        if (n == cap) {
            cap *= 2;
            out = xrealloc(out, cap);
        }
        z.next_out = out + n;
        z.avail_out = (uInt)(cap - n);
        rc = inflate(&z, Z_NO_FLUSH);
        n = cap - z.avail_out;
    } while (rc == Z_OK);
    assert_int_equal(rc, Z_STREAM_END);
    assert_int_equal(z.avail_in, 0); /* nothing after the gzip member */
    inflateEnd(&z);
    *outlen = n;
    return out;
}

static void gzip_round_trip(const void *data, size_t len)
{
    unsigned char *gz = NULL;
    size_t gzlen = 0;
    assert_int_equal(dmarc_report_gzip(data, len, &gz, &gzlen), 0);
    assert_non_null(gz);
    assert_true(gzlen >= 18); /* RFC 1952: a 10-byte header and an 8-byte trailer at least */
    assert_int_equal(gz[0], 0x1f);
    assert_int_equal(gz[1], 0x8b);
    assert_int_equal(gz[2], 8); /* deflate */
    size_t n;
    unsigned char *back = gunzip(gz, gzlen, &n);
    assert_int_equal(n, len);
    if (len)
        assert_memory_equal(back, data, len);
    free(back);
    free(gz);
}

static void test_gzip(void **state)
{
    (void)state;
    gzip_round_trip("", 0);
    gzip_round_trip("x", 1);
    struct dmarc_report_row r;
    char why[DMARC_ERR_MAX];
    row_fill(&r);
    assert_int_equal(check(&r, why), 0);
    struct dmarc_report_row *rows[] = {&r, &r, &r, &r};
    char *xml = xml_of(&meta0, "v=DMARC1; p=reject", rows, 4);
    gzip_round_trip(xml, strlen(xml));
    /* and it compresses */
    unsigned char *gz;
    size_t gzlen;
    assert_int_equal(dmarc_report_gzip(xml, strlen(xml), &gz, &gzlen), 0);
    assert_true(gzlen < strlen(xml) / 2);
    free(gz);
    free(xml);
    dmarc_report_row_free(&r);
    /* incompressible bytes, every value */
    size_t len = 300000;
    unsigned char *bin = xmalloc(len);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        bin[i] = (unsigned char)(x >> 24);
    }
    gzip_round_trip(bin, len);
    free(bin);
}

/* ---- dmarc_report_message ---- */

struct field {
    char *name, *value; /* value unfolded (CRLF removed), leading WSP kept out */
};

/* Splits the header of msg into fields (at most max); returns how many and
 * sets *body to where the body starts. */
static size_t header_fields(const char *msg, struct field *f, size_t max, const char **body)
{
    const char *end = strstr(msg, "\r\n\r\n");
    assert_non_null(end);
    *body = end + 4;
    size_t n = 0;
    const char *p = msg;
    while (p < end + 2) {
        const char *colon = strchr(p, ':');
        assert_non_null(colon);
        assert_true(n < max);
        f[n].name = xstrndup(p, (size_t)(colon - p));
        struct strbuf v = STRBUF_INIT;
        const char *q = colon + 1;
        while (*q == ' ')
            q++;
        for (;;) {
            const char *eol = strstr(q, "\r\n");
            strbuf_append(&v, q, (size_t)(eol - q));
            q = eol + 2;
            if (*q != ' ' && *q != '\t')
                break;
        }
        f[n].value = strbuf_detach(&v);
        if (!f[n].value)
            f[n].value = xstrdup("");
        n++;
        p = q;
    }
    return n;
}

static const char *field_value(const struct field *f, size_t n, const char *name, size_t *times)
{
    const char *v = NULL;
    *times = 0;
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(f[i].name, name) == 0) {
            if (!v)
                v = f[i].value;
            (*times)++;
        }
    return v;
}

static void check_message(const char *const *to, size_t nto, const char *want_to, size_t gzlen)
{
    unsigned char *gz = xmalloc(gzlen ? gzlen : 1);
    for (size_t i = 0; i < gzlen; i++)
        gz[i] = (unsigned char)(i * 7 + 3);
    struct strbuf sb = STRBUF_INIT;
    dmarc_report_message(&meta0, "example.com", to, nto, gz, gzlen, 1700090000, "seed.42", &sb);
    const char *msg = sb.buf;
    /* CRLF everywhere, no bare CR or LF, plain ASCII */
    for (size_t i = 0; i < sb.len; i++) {
        if (msg[i] == '\n')
            assert_true(i > 0 && msg[i - 1] == '\r');
        if (msg[i] == '\r')
            assert_true(msg[i + 1] == '\n');
        assert_true((msg[i] >= 0x20 && msg[i] < 0x7f) || msg[i] == '\r' || msg[i] == '\n');
    }
    assert_true(sb.len >= 2 && msg[sb.len - 2] == '\r' && msg[sb.len - 1] == '\n');

    struct field f[32];
    const char *body;
    size_t nf = header_fields(msg, f, 32, &body);
    size_t times;
    const char *v = field_value(f, nf, "From", &times);
    assert_int_equal(times, 1);
    assert_string_equal(v, "dmarc-reports@mx.example.net");
    v = field_value(f, nf, "To", &times);
    assert_int_equal(times, 1);
    assert_string_equal(v, want_to);
    v = field_value(f, nf, "Subject", &times);
    assert_int_equal(times, 1);
    assert_string_equal(v, "Report Domain: example.com Submitter: mx.example.net "
                           "Report-ID: <1700000000.example.com@mx.example.net>");
    v = field_value(f, nf, "Date", &times);
    assert_int_equal(times, 1);
    assert_true(strlen(v) > 20);
    v = field_value(f, nf, "Message-ID", &times);
    assert_int_equal(times, 1);
    assert_string_equal(v, "<1700000000.example.com@mx.example.net>");
    v = field_value(f, nf, "MIME-Version", &times);
    assert_int_equal(times, 1);
    assert_string_equal(v, "1.0");
    v = field_value(f, nf, "Content-Type", &times);
    assert_int_equal(times, 1);
    assert_string_equal(v, "multipart/mixed; boundary=\"=_dmarc_seed.42\"");
    for (size_t i = 0; i < nf; i++) {
        free(f[i].name);
        free(f[i].value);
    }

    /* the body: two parts between the boundary, then its close */
    const char *delim = "--=_dmarc_seed.42\r\n", *close = "\r\n--=_dmarc_seed.42--\r\n";
    assert_int_equal(count_of(body, "--=_dmarc_seed.42"), 3);
    assert_int_equal(count_of(body, close), 1);
    assert_string_equal(body + strlen(body) - strlen(close), close);
    const char *p1 = strstr(body, delim);
    assert_ptr_equal(p1, body); /* no preamble */
    const char *p2 = strstr(p1 + 1, delim);
    assert_non_null(p2);
    assert_true(p2[-1] == '\n' && p2[-2] == '\r');
    assert_true(strncmp(p1 + strlen(delim), "Content-Type: text/plain", 24) == 0);
    char *part2 = xstrndup(p2 + strlen(delim), strlen(p2 + strlen(delim)) - strlen(close));
    char *file = dmarc_report_filename(&meta0, "example.com");
    char want[512];
    snprintf(want, sizeof want,
             "Content-Type: application/gzip; name=\"%s\"\r\nContent-Disposition: attachment; filename=\"%s\"\r\n"
             "Content-Transfer-Encoding: base64\r\n\r\n",
             file, file);
    assert_true(strncmp(part2, want, strlen(want)) == 0);
    /* the text part names the file too */
    assert_non_null(strstr(p1, file));
    free(file);
    /* base64 lines of at most 76 characters that decode to gz */
    const char *b64 = part2 + strlen(want);
    struct strbuf all = STRBUF_INIT;
    size_t lines = 0;
    for (const char *q = b64; *q;) {
        const char *eol = strstr(q, "\r\n");
        assert_non_null(eol);
        size_t n = (size_t)(eol - q);
        assert_true(n > 0 && n <= 76);
        if (eol[2])
            assert_int_equal(n, 76); /* only the last line is shorter */
        strbuf_append(&all, q, n);
        lines++;
        q = eol + 2;
    }
    assert_int_equal(lines, (gzlen + 56) / 57);
    unsigned char *dec = xmalloc(base64_decoded_max(all.len) + 1);
    size_t declen = 0;
    assert_int_equal(base64_decode(all.buf ? all.buf : "", all.len, dec, &declen), 0);
    assert_int_equal(declen, gzlen);
    if (gzlen)
        assert_memory_equal(dec, gz, gzlen);
    free(dec);
    strbuf_free(&all);
    free(part2);
    strbuf_free(&sb);
    free(gz);
}

static void test_message(void **state)
{
    (void)state;
    const char *one[] = {"rua@example.com"};
    const char *three[] = {"rua@example.com", "Other@reports.example", "x@y.test"};
    check_message(one, 1, "rua@example.com", 1000);
    check_message(three, 3, "rua@example.com, Other@reports.example, x@y.test", 57 * 4);
    check_message(three, 2, "rua@example.com, Other@reports.example", 1);
    check_message(one, 1, "rua@example.com", 56);
    check_message(one, 1, "rua@example.com", 58);
}

static void test_message_with_real_report(void **state)
{
    (void)state;
    struct dmarc_report_row r;
    char why[DMARC_ERR_MAX];
    row_fill(&r);
    assert_int_equal(check(&r, why), 0);
    struct dmarc_report_row *rows[] = {&r};
    char *xml = xml_of(&meta0, "v=DMARC1; p=reject", rows, 1);
    unsigned char *gz;
    size_t gzlen;
    assert_int_equal(dmarc_report_gzip(xml, strlen(xml), &gz, &gzlen), 0);
    const char *to[] = {"rua@example.com"};
    struct strbuf sb = STRBUF_INIT;
    dmarc_report_message(&meta0, "example.com", to, 1, gz, gzlen, 1700090000, "s", &sb);
    /* the attachment, decoded and inflated, is the XML */
    const char *b = strstr(sb.buf, "Content-Transfer-Encoding: base64\r\n\r\n");
    assert_non_null(b);
    b += strlen("Content-Transfer-Encoding: base64\r\n\r\n");
    const char *e = strstr(b, "\r\n\r\n--=_dmarc_s--\r\n");
    assert_non_null(e);
    struct strbuf all = STRBUF_INIT;
    for (const char *q = b; q < e; q++)
        if (*q != '\r' && *q != '\n')
            strbuf_putc(&all, *q);
    unsigned char *dec = xmalloc(base64_decoded_max(all.len));
    size_t declen;
    assert_int_equal(base64_decode(all.buf, all.len, dec, &declen), 0);
    size_t n;
    unsigned char *back = gunzip(dec, declen, &n);
    assert_int_equal(n, strlen(xml));
    assert_memory_equal(back, xml, n);
    free(back);
    free(dec);
    strbuf_free(&all);
    strbuf_free(&sb);
    free(gz);
    free(xml);
    dmarc_report_row_free(&r);
}

/* ---- dmarc_report_mailto ---- */

static void mailto_ok(const char *uri, const char *want)
{
    char *addr = NULL;
    const char *host = NULL;
    if (dmarc_report_mailto(uri, &addr, &host) != 0)
        fail_msg("%s refused", uri);
    assert_string_equal(addr, want);
    const char *want_at = strrchr(want, '@');
    assert_ptr_equal(host, addr + (want_at - want) + 1);
    free(addr);
}

static void mailto_refused(const char *uri)
{
    char *addr = NULL;
    const char *host = NULL;
    if (dmarc_report_mailto(uri, &addr, &host) == 0) {
        print_error("%s accepted as %s\n", uri, addr);
        free(addr);
        fail();
    }
    assert_null(addr);
}

static void test_mailto(void **state)
{
    (void)state;
    mailto_ok("mailto:Reports@Example.COM", "Reports@example.com");
    {
        char *addr;
        const char *host;
        assert_int_equal(dmarc_report_mailto("mailto:Reports@Example.COM", &addr, &host), 0);
        assert_string_equal(host, "example.com");
        free(addr);
    }
    mailto_ok("MAILTO:rua@example.com", "rua@example.com");
    mailto_ok("MailTo:rua@example.com", "rua@example.com");
    mailto_ok("mailto:rua@example.com?subject=x", "rua@example.com");
    mailto_ok("mailto:rua@example.com?", "rua@example.com");
    mailto_ok("mailto:rua@example.com?subject=a%00b&body=c?d", "rua@example.com");
    mailto_ok("mailto:a%2Bb@x.test", "a+b@x.test");
    mailto_ok("mailto:a%2bb@x.test", "a+b@x.test");
    mailto_ok("mailto:%61%62@%58.test", "ab@x.test");
    mailto_ok("mailto:first.last+tag@sub.example.org", "first.last+tag@sub.example.org");
    mailto_ok("mailto:rua@Example.COM.", "rua@example.com");
    mailto_ok("mailto:rua@_report.example.com", "rua@_report.example.com");

    mailto_refused("http://x");
    mailto_refused("http://example.com/rua");
    mailto_refused("mailt:rua@example.com");
    mailto_refused("mailto");
    mailto_refused("");
    mailto_refused(" mailto:rua@example.com");
    mailto_refused("mailto:");
    mailto_refused("mailto:?subject=x");
    mailto_refused("mailto:@x.test");
    mailto_refused("mailto:a@");
    mailto_refused("mailto:a");
    mailto_refused("mailto:a@b@c");
    mailto_refused("mailto:a%40b@x.test");
    mailto_refused("mailto:a@x.test,b@y.test");
    mailto_refused("mailto:a%00@x.test");
    mailto_refused("mailto:a@x.test%00");
    mailto_refused("mailto:%00");
    mailto_refused("mailto:a@x.test%4");
    mailto_refused("mailto:a@x.test%");
    mailto_refused("mailto:a%4@x.test");
    mailto_refused("mailto:a%zz@x.test");
    mailto_refused("mailto:a%g0@x.test");
    mailto_refused("mailto:\"a b\"@x.test");
    mailto_refused("mailto:%22a%22@x.test");
    mailto_refused("mailto:a..b@x.test");
    mailto_refused("mailto:.a@x.test");
    mailto_refused("mailto:a.@x.test");
    mailto_refused("mailto:a b@x.test");
    mailto_refused("mailto:a%20b@x.test");
    mailto_refused("mailto:a%0d%0aBcc:x@y.test@x.test");
    mailto_refused("mailto:%C3%A9@x.test");
    mailto_refused("mailto:a@-x.test");
    mailto_refused("mailto:a@x-.test");
    mailto_refused("mailto:a@x..test");
    mailto_refused("mailto:a@x test");
    mailto_refused("mailto:a@[192.0.2.1]");
    mailto_refused("mailto:a@x.test:25");
    mailto_refused("mailto:a@b\xc3\xa4r.example");
    char uri[1024];
    char label[70];
    memset(label, 'x', 64);
    label[64] = '\0';
    snprintf(uri, sizeof uri, "mailto:a@%s.test", label);
    mailto_refused(uri);
    label[63] = '\0';
    snprintf(uri, sizeof uri, "mailto:a@%s.test", label);
    char want[128];
    snprintf(want, sizeof want, "a@%s.test", label);
    mailto_ok(uri, want);
    /* too long: an address longer than 254 bytes, and escapes past the bound */
    memset(uri, 0, sizeof uri);
    strcpy(uri, "mailto:");
    memset(uri + 7, 'a', 250);
    strcat(uri, "@x.test");
    mailto_refused(uri);
    strcpy(uri, "mailto:");
    for (int i = 0; i < 260; i++)
        strcat(uri, "%61");
    strcat(uri, "@x.test");
    mailto_refused(uri);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_good_row_normalized),
        cmocka_unit_test(test_check_every_value_of_the_lists),
        cmocka_unit_test(test_check_optional_fields),
        cmocka_unit_test(test_check_source_ip),
        cmocka_unit_test(test_check_bad_fields),
        cmocka_unit_test(test_check_spf_pair),
        cmocka_unit_test(test_check_dkim_signatures),
        cmocka_unit_test(test_selector_ok),
        cmocka_unit_test(test_line_exact),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_parse_normalizes),
        cmocka_unit_test(test_parse_refuses),
        cmocka_unit_test(test_id_and_filename),
        cmocka_unit_test(test_xml_policy_defaults),
        cmocka_unit_test(test_xml_metadata_and_escaping),
        cmocka_unit_test(test_xml_rows),
        cmocka_unit_test(test_xml_schema_valid),
        cmocka_unit_test(test_gzip),
        cmocka_unit_test(test_message),
        cmocka_unit_test(test_message_with_real_report),
        cmocka_unit_test(test_mailto),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
