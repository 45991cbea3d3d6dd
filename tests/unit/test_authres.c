/* Unit tests for authres: the field tern writes (exact bytes, folding,
 * quoting, unsafe input), recognizing fields that claim our authserv-id
 * (comments, case, CFWS, look-alikes), and parsing RFC 8601's examples. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailauth/authres.h"
#include "mailauth/dmarc.h"
#include "test_fixture.h"
#include "util/mem.h"
#include "util/strbuf.h"

#define ID "mx.example.org"

/* Every line ends in CRLF, is at most 78 characters, and continuation
 * lines start with a blank. */
static void assert_folded(const char *f)
{
    size_t line = 0;
    const char *s = f;
    while (*s) {
        const char *e = strstr(s, "\r\n");
        assert_non_null(e);
        assert_true((size_t)(e - s) <= 78);
        if (line++ > 0)
            assert_true(*s == '\t' || *s == ' ');
        for (const char *p = s; p < e; p++)
            assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f ? 1 : *p == '\t');
        s = e + 2;
    }
}

static void test_build_none(void **state)
{
    (void)state;
    char *f = authres_build(ID, NULL, 0);
    assert_string_equal(f, "Authentication-Results: mx.example.org; none\r\n");
    free(f);
    assert_null(authres_build("", NULL, 0));
    assert_null(authres_build(NULL, NULL, 0));
}

static void test_build_spf(void **state)
{
    (void)state;
    const struct authres_prop p[] = {{"smtp", "mailfrom", "example.net"}};
    const struct authres_method m[] = {{"spf", "pass", NULL, NULL, p, 1}};
    char *f = authres_build(ID, m, 1);
    assert_string_equal(f, "Authentication-Results: mx.example.org;\r\n\tspf=pass smtp.mailfrom=example.net\r\n");
    free(f);
}

static void test_build_three_folded(void **state)
{
    (void)state;
    const struct authres_prop spf[] = {{"smtp", "mailfrom", "sender@example.net"}};
    const struct authres_prop dkim[] = {
        {"header", "d", "example.net"}, {"header", "i", "@example.net"}, {"header", "s", "sel"},
        {"header", "a", "rsa-sha256"}, {"header", "b", "AbCdEfGh"},
    };
    const struct authres_prop dmarc[] = {{"header", "from", "example.com"}, {"policy", "dmarc", "quarantine"}};
    const struct authres_method m[] = {
        {"spf", "pass", NULL, NULL, spf, 1},
        {"dkim", "pass", "2048-bit key", NULL, dkim, 5},
        {"dmarc", "fail", "p=reject dis=quarantine", NULL, dmarc, 2},
    };
    char *f = authres_build(ID, m, 3);
    assert_string_equal(f, "Authentication-Results: mx.example.org;\r\n"
                           "\tspf=pass smtp.mailfrom=sender@example.net;\r\n"
                           "\tdkim=pass (2048-bit key) header.d=example.net header.i=@example.net\r\n"
                           "\theader.s=sel header.a=rsa-sha256 header.b=AbCdEfGh;\r\n"
                           "\tdmarc=fail (p=reject dis=quarantine) header.from=example.com\r\n"
                           "\tpolicy.dmarc=quarantine\r\n");
    assert_folded(f);
    free(f);
}

static void test_build_quoting(void **state)
{
    (void)state;
    const struct authres_prop p[] = {
        {"smtp", "mailfrom", "a+b@example.com"},     /* local@domain: bare */
        {"smtp", "helo", "[192.0.2.1]"},             /* tspecials: quoted */
        {"header", "from", "\"john doe\"@example.com"},
        {"header", "x", ""},
        {"policy", "note", "a\x01" "b\xc3\xa9\r\nX-Forged: 1"},
    };
    const struct authres_method m[] = {{"spf", "pass", "it's (really) \\ fine", "bad \"sig\" \\ here", p, 5}};
    char *f = authres_build("mx example", m, 1);
    assert_string_equal(f, "Authentication-Results: \"mx example\";\r\n"
                           "\tspf=pass (it's \\(really\\) \\\\ fine) reason=\"bad \\\"sig\\\" \\\\ here\"\r\n"
                           "\tsmtp.mailfrom=a+b@example.com smtp.helo=\"[192.0.2.1]\"\r\n"
                           "\theader.from=\"\\\"john doe\\\"@example.com\" header.x=\"\"\r\n"
                           "\tpolicy.note=\"a?b????X-Forged: 1\"\r\n");
    assert_folded(f);
    /* It reads back to the same values, unsafe bytes made '?'. */
    struct authres_parsed r;
    assert_int_equal(authres_parse(f + 23, strlen(f) - 23, &r, NULL), 0);
    assert_string_equal(r.authserv_id, "mx example");
    assert_string_equal(r.methods[0].reason, "bad \"sig\" \\ here");
    assert_string_equal(r.methods[0].props[2].value, "\"john doe\"@example.com");
    assert_string_equal(r.methods[0].props[3].value, "");
    assert_string_equal(r.methods[0].props[4].value, "a?b????X-Forged: 1");
    authres_parsed_free(&r);
    free(f);
}

static void test_build_bounds(void **state)
{
    (void)state;
    char big[700];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    const struct authres_prop p[] = {{"policy", "long", big}};
    const struct authres_method m[] = {{"x-test", "pass", NULL, NULL, p, 1}};
    char *f = authres_build(ID, m, 1);
    const char *v = strstr(f, "policy.long=");
    assert_non_null(v);
    assert_int_equal(strspn(v + 12, "a"), AUTHRES_VALUE_MAX); /* cut, on a line of its own */
    assert_non_null(strstr(f, ";\r\n\tx-test=pass\r\n\tpolicy.long=aaa"));
    free(f);

    const struct authres_method bad[] = {
        {"d kim", "pass", NULL, NULL, NULL, 0},
        {"dkim", "", NULL, NULL, NULL, 0},
        {"dkim", "pass", NULL, NULL, (const struct authres_prop[]){{"header.x", "d", "v"}}, 1},
        {"dkim", "pass", NULL, NULL, (const struct authres_prop[]){{"header", "d", NULL}}, 1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_null(authres_build(ID, &bad[i], 1));
    struct authres_method many[AUTHRES_MAX_METHODS + 1];
    for (size_t i = 0; i <= AUTHRES_MAX_METHODS; i++)
        many[i] = (struct authres_method){"dkim", "pass", NULL, NULL, NULL, 0};
    assert_null(authres_build(ID, many, AUTHRES_MAX_METHODS + 1));
    f = authres_build(ID, many, AUTHRES_MAX_METHODS);
    assert_non_null(f);
    assert_folded(f);
    free(f);
}

/* The DMARC outcome as the server will write it. */
static void test_build_dmarc_outcome(void **state)
{
    (void)state;
    char dom[] = "example.com";
    struct dmarc_outcome o = {.result = DMARC_RESULT_FAIL, .author_domain = dom, .requested = DMARC_POLICY_REJECT,
                              .applied = DMARC_POLICY_QUARANTINE, .testing = 1};
    struct dmarc_authres d;
    dmarc_outcome_authres(&o, &d);
    char *f = authres_build(ID, &d.method, 1);
    assert_string_equal(f, "Authentication-Results: mx.example.org;\r\n"
                           "\tdmarc=fail (p=reject dis=quarantine t=y) header.from=example.com\r\n"
                           "\tpolicy.dmarc=quarantine\r\n");
    free(f);
    o = (struct dmarc_outcome){.result = DMARC_RESULT_NONE, .author_domain = dom, .applied = DMARC_POLICY_NONE};
    dmarc_outcome_authres(&o, &d);
    f = authres_build(ID, &d.method, 1);
    assert_string_equal(f, "Authentication-Results: mx.example.org;\r\n\tdmarc=none header.from=example.com\r\n");
    free(f);
}

/* ---- ours or not ---- */

static int ours(const char *value)
{
    return authres_is_ours("Authentication-Results", 22, value, strlen(value), ID);
}

static void test_is_ours(void **state)
{
    (void)state;
    assert_true(ours(" mx.example.org; spf=pass smtp.mailfrom=example.net"));
    assert_true(ours(" MX.Example.ORG; none"));
    assert_true(ours(" (forged (nested)) mx.example.org (x); none"));
    assert_true(ours("\r\n\t(c)\r\n mx.example.org;"));
    assert_true(ours(" \"mx.example.org\"; none"));
    assert_true(ours(" \"MX.example.org\""));
    assert_true(ours(" mx.example.org.; none"));
    assert_true(ours("mx.example.org"));             /* no ';' at all: still claims it */
    assert_true(ours(" mx.example.org 1; none"));
    assert_true(ours(" mx.example.org/garbage"));    /* a lenient reader sees our id */
    assert_false(ours(" mx.example.org.evil; none"));
    assert_false(ours(" evil.mx.example.org; none"));
    assert_false(ours(" mx.example.orgx; none"));
    assert_false(ours(" mx-example.org; none"));
    assert_false(ours(" mx.example.com; none"));     /* same length, another name */
    assert_false(ours(" nx.example.org; none"));
    assert_false(ours(" mx.example.org\xc3\xa9; none"));
    assert_false(ours(" \"mx.example.org \"; none"));
    assert_false(ours(" (mx.example.org"));          /* all comment */
    assert_false(ours(" example.org; none"));
    assert_false(ours(""));
    assert_false(authres_is_ours("X-Authentication-Results", 24, " mx.example.org;", 16, ID));
    assert_false(authres_is_ours("ARC-Authentication-Results", 26, " mx.example.org;", 16, ID));
    assert_true(authres_is_ours("authentication-results  ", 24, " mx.example.org;", 16, ID));
    assert_true(authres_is_ours("Authentication-Results", 22, " mx.example.org.;", 17, "MX.EXAMPLE.ORG."));

    const char *f1 = "Authentication-Results : (x)\r\n\tmx.example.org;\r\n\tdkim=pass header.d=x.example\r\n";
    assert_true(authres_field_is_ours(f1, strlen(f1), ID));
    const char *f2 = "Authentication-Results: example.net; dkim=pass\r\n";
    assert_false(authres_field_is_ours(f2, strlen(f2), ID));
    assert_false(authres_field_is_ours("Authentication-Results mx.example.org", 37, ID));
    /* What we build is ours. */
    char *f = authres_build(ID, NULL, 0);
    assert_true(authres_field_is_ours(f, strlen(f), ID));
    free(f);
}

/* ---- parsing ---- */

static struct authres_parsed parse_ok(const char *v)
{
    struct authres_parsed r;
    char err[AUTHRES_ERR_MAX] = "";
    int rc = authres_parse(v, strlen(v), &r, err);
    if (rc != 0)
        print_error("parse failed: %s\n", err);
    assert_int_equal(rc, 0);
    return r;
}

static void test_parse_rfc_examples(void **state)
{
    (void)state;
    struct authres_parsed r = parse_ok(" example.org 1; none");
    assert_string_equal(r.authserv_id, "example.org");
    assert_int_equal(r.version, 1);
    assert_true(r.none);
    assert_int_equal(r.nmethods, 0);
    authres_parsed_free(&r);

    r = parse_ok(" example.com;\r\n          spf=pass smtp.mailfrom=example.net");
    assert_int_equal(r.nmethods, 1);
    assert_string_equal(r.methods[0].method, "spf");
    assert_string_equal(r.methods[0].result, "pass");
    assert_int_equal(r.methods[0].nprops, 1);
    assert_string_equal(r.methods[0].props[0].ptype, "smtp");
    assert_string_equal(r.methods[0].props[0].property, "mailfrom");
    assert_string_equal(r.methods[0].props[0].value, "example.net");
    authres_parsed_free(&r);

    r = parse_ok(" example.com;\r\n          auth=pass (cram-md5) smtp.auth=sender@example.com;\r\n"
                 "          spf=fail smtp.mailfrom=example.com");
    assert_int_equal(r.nmethods, 2);
    assert_string_equal(r.methods[0].props[0].value, "sender@example.com");
    assert_string_equal(r.methods[1].method, "spf");
    assert_string_equal(r.methods[1].result, "fail");
    authres_parsed_free(&r);

    /* B.7, the comment-heavy example. */
    r = parse_ok(" foo.example.net (foobar) 1 (baz);\r\n"
                 "    dkim (Because I like it) / 1 (One yay) = (wait for it) fail\r\n"
                 "      policy (A dot can go here) . (like that) expired\r\n"
                 "      (this surprised me) = (as I wasn't expecting it) 1362471462");
    assert_string_equal(r.authserv_id, "foo.example.net");
    assert_int_equal(r.nmethods, 1);
    assert_string_equal(r.methods[0].method, "dkim");
    assert_int_equal(r.methods[0].version, 1);
    assert_string_equal(r.methods[0].result, "fail");
    assert_string_equal(r.methods[0].props[0].ptype, "policy");
    assert_string_equal(r.methods[0].props[0].property, "expired");
    assert_string_equal(r.methods[0].props[0].value, "1362471462");
    authres_parsed_free(&r);

    r = parse_ok(" \"quoted id\"; DKIM=Pass reason=\"good sig\" header.d=example.com header.i=@example.com;");
    assert_string_equal(r.authserv_id, "quoted id");
    assert_string_equal(r.methods[0].method, "dkim");
    assert_string_equal(r.methods[0].result, "pass");
    assert_string_equal(r.methods[0].reason, "good sig");
    assert_string_equal(r.methods[0].props[1].value, "@example.com");
    authres_parsed_free(&r);
}

static void test_parse_errors(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "   ", "example.com", "example.com none", "example.com; spf", "example.com; spf=",
        "example.com; spf=pass smtp", "example.com; spf=pass smtp.mailfrom", "example.com; (unclosed",
        "example.com; spf=pass smtp.mailfrom=a (unclosed", "example.com; spf=pass header.d=x d",
        "example.com; none; spf=pass", "example.com; spf/x=pass", "\"unclosed; none", "example.com;;",
        "example.com; spf=pass ) x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct authres_parsed r;
        char err[AUTHRES_ERR_MAX] = "";
        assert_int_equal(authres_parse(bad[i], strlen(bad[i]), &r, err), -1);
        assert_true(err[0] != '\0');
        for (const char *p = err; *p; p++)
            assert_true(*p >= 0x20 && *p < 0x7f);
        assert_null(r.methods);
        assert_null(r.authserv_id);
    }
}

static void test_parse_bounds(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    strbuf_puts(&sb, "x");
    for (int i = 0; i < AUTHRES_MAX_METHODS; i++)
        strbuf_puts(&sb, "; dkim=pass");
    struct authres_parsed r;
    assert_int_equal(authres_parse(sb.buf, sb.len, &r, NULL), 0);
    assert_int_equal(r.nmethods, AUTHRES_MAX_METHODS);
    authres_parsed_free(&r);
    strbuf_puts(&sb, "; dkim=pass");
    assert_int_equal(authres_parse(sb.buf, sb.len, &r, NULL), -1);

    strbuf_reset(&sb);
    strbuf_puts(&sb, "x; dkim=pass");
    for (int i = 0; i < AUTHRES_MAX_PROPS; i++)
        strbuf_puts(&sb, " header.d=a");
    assert_int_equal(authres_parse(sb.buf, sb.len, &r, NULL), 0);
    authres_parsed_free(&r);
    strbuf_puts(&sb, " header.d=a");
    assert_int_equal(authres_parse(sb.buf, sb.len, &r, NULL), -1);

    /* Deep comments are counted, not recursed into. */
    strbuf_reset(&sb);
    strbuf_puts(&sb, "x; dkim=pass ");
    for (int i = 0; i < 10000; i++)
        strbuf_putc(&sb, '(');
    for (int i = 0; i < 10000; i++)
        strbuf_putc(&sb, ')');
    assert_int_equal(authres_parse(sb.buf, sb.len, &r, NULL), 0);
    authres_parsed_free(&r);
    strbuf_free(&sb);
    char *huge = xmalloc(AUTHRES_FIELD_MAX + 2);
    memset(huge, 'a', AUTHRES_FIELD_MAX + 1);
    huge[AUTHRES_FIELD_MAX + 1] = '\0';
    assert_int_equal(authres_parse(huge, AUTHRES_FIELD_MAX + 1, &r, NULL), -1);
    free(huge);
}

static void test_roundtrip(void **state)
{
    (void)state;
    const struct authres_prop dkim[] = {{"header", "d", "example.com"}, {"header", "s", "2024a"}};
    const struct authres_method m[] = {
        {"dkim", "fail", "signature did not verify", "body hash mismatch", dkim, 2},
        {"spf", "softfail", NULL, NULL, (const struct authres_prop[]){{"smtp", "helo", "client.example"}}, 1},
        {"dmarc", "none", NULL, NULL, NULL, 0},
    };
    char *f = authres_build(ID, m, 3);
    assert_folded(f);
    const char *colon = strchr(f, ':');
    struct authres_parsed r = parse_ok(colon + 1);
    assert_string_equal(r.authserv_id, ID);
    assert_int_equal(r.nmethods, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(r.methods[i].method, m[i].method);
        assert_string_equal(r.methods[i].result, m[i].result);
        assert_int_equal(r.methods[i].nprops, m[i].nprops);
        for (size_t k = 0; k < m[i].nprops; k++)
            assert_string_equal(r.methods[i].props[k].value, m[i].props[k].value);
    }
    assert_string_equal(r.methods[0].reason, "body hash mismatch");
    authres_parsed_free(&r);
    free(f);
}

/* A NUL inside a quoted authserv-id (found by fuzz_dmarc): no valid
 * quoted-string holds one, so the field neither parses nor is ours, and the
 * reader never sees an id cut short at the NUL. */
static void test_nul_in_quoted_id(void **state)
{
    (void)state;
    static const char value[] = " \"mx.example.org\0evil\"; none";
    struct authres_parsed p;
    char err[AUTHRES_ERR_MAX];
    assert_int_equal(authres_parse(value, sizeof value - 1, &p, err), -1);
    assert_int_equal(authres_is_ours("Authentication-Results", 22, value, sizeof value - 1, "mx.example.org"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_none),
        cmocka_unit_test(test_build_spf),
        cmocka_unit_test(test_build_three_folded),
        cmocka_unit_test(test_build_quoting),
        cmocka_unit_test(test_build_bounds),
        cmocka_unit_test(test_build_dmarc_outcome),
        cmocka_unit_test(test_is_ours),
        cmocka_unit_test(test_parse_rfc_examples),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_bounds),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_nul_in_quoted_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
