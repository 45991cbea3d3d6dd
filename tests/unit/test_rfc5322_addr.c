/* Unit tests for rfc5322_addr: address-list extraction and From: validity. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg/rfc5322_addr.h"
#include "test_fixture.h"
#include "util/mem.h"
#include "util/strbuf.h"

#define MAX_EXPECT 6

struct list_case {
    const char *value;
    const char *expect[MAX_EXPECT]; /* NULL-terminated */
    int from_valid;
};

static const struct list_case list_cases[] = {
    /* the basic forms */
    {"a@b", {"a@b"}, 1},
    {"A <a@b>", {"a@b"}, 1},
    {"<a@b>", {"a@b"}, 1},
    {"\"Doe, J\" <j@x>, k@y", {"j@x", "k@y"}, 1},
    {"(comment) a@b (c)", {"a@b"}, 1},
    {"a(x)@(y)b(z)", {"a@b"}, 1},
    {"J. Doe <j@x>", {"j@x"}, 1},
    {"John Q Public <jqp@example.com>, mary@x.example", {"jqp@example.com", "mary@x.example"}, 1},
    {"=?UTF-8?Q?J=C3=B6rg?= <j@x>", {"j@x"}, 1},
    {"A\r\n <a@b>,\r\n\tc@d", {"a@b", "c@d"}, 1},
    {"a@b (outer (inner (deep)) x)", {"a@b"}, 1},
    {"a@b (with \\) escaped paren)", {"a@b"}, 1},
    /* groups (RFC 5322 3.4, RFC 6854) */
    {"undisclosed-recipients:;", {NULL}, 1},
    {"Nightly Monitor Robot:;", {NULL}, 1},
    {"Team: a@x, B <b@y>;, c@z", {"a@x", "b@y", "c@z"}, 1},
    {"Managing Partners:ben@example.com,carol@example.com;", {"ben@example.com", "carol@example.com"}, 1},
    {"g: ,a@x,, ;", {"a@x"}, 1},
    {"g: a@b, c@d", {"a@b", "c@d"}, 0},           /* unclosed group: lenient */
    {"g: h: a@b; c@d;", {NULL}, 0},               /* no nested groups */
    {"Gr)oup: a@b, c@d;, e@f", {"e@f"}, 0},        /* broken group skipped whole */
    {"g: a@b, x y, c@d;", {"a@b", "c@d"}, 0},      /* broken member only */
    {"g: a@b; junk, e@f", {"a@b", "e@f"}, 0},
    /* quoted and obsolete local parts */
    {"\"john doe\"@x", {"\"john doe\"@x"}, 1},
    {"\"a.b\"@x", {"a.b@x"}, 1},
    {"\"a\\\"b\\\\c\"@x", {"\"a\\\"b\\\\c\"@x"}, 1},
    {"\"\"@x", {"\"\"@x"}, 1},
    {"john . doe @ example . com", {"john.doe@example.com"}, 1},
    {"\"john\".doe@x", {"john.doe@x"}, 1},
    {"\"fol\r\n ded\"@x", {"\"fol ded\"@x"}, 1},
    {"a..b@x", {"\"a..b\"@x"}, 0},
    {".a@x", {"\".a\"@x"}, 0},
    {"a.@x", {"\"a.\"@x"}, 0},
    /* routes, literals, missing domains, UTF-8 */
    {"<@r1.example,@r2.example:u@h.example>", {"u@h.example"}, 1},
    {"Name <@r1.example:u@h.example>", {"u@h.example"}, 1},
    {"<@:u@h>", {NULL}, 0},
    {"a@[192.0.2.1]", {"a@[192.0.2.1]"}, 1},
    {"a@[ IPv6:2001:db8::1 ]", {"a@[IPv6:2001:db8::1]"}, 1},
    {"a@[1.2\\.3], b@[x\x01], c@d", {"c@d"}, 1},  /* obs-dtext: valid, not returned */
    {"a@[1.2.3.4\xc3\xa9]", {"a@[1.2.3.4\xc3\xa9]"}, 1},
    {"a@[1.[2]", {NULL}, 0},
    {"a@-b.example, c@d-", {"a@-b.example", "c@d-"}, 0}, /* not host names */
    {"a@b-c.example", {"a@b-c.example"}, 1},
    {"root", {"root"}, 0},
    {"Root <root>", {"root"}, 0},
    {"a@b, c", {"a@b", "c"}, 0},
    {"J\xc3\xb6rg <j\xc3\xb6rg@b\xc3\xbc" "cher.example>", {"j\xc3\xb6rg@b\xc3\xbc" "cher.example"}, 1},
    /* null members (obs-addr-list) */
    {",a@b,,c@d,", {"a@b", "c@d"}, 1},
    {",,,", {NULL}, 0},
    {"", {NULL}, 0},
    {"   \t ", {NULL}, 0},
    {"(just a comment)", {NULL}, 0},
    /* broken items are skipped, the rest survive */
    {"a@b, @@bad, c@d", {"a@b", "c@d"}, 0},
    {"x@y z@w, ok@ok", {"ok@ok"}, 0},
    {"a@b, \"unterminated, c@d", {"a@b"}, 0},
    {"a@b, (unterminated, c@d", {"a@b"}, 0},
    {"a@, b@c", {"b@c"}, 0},
    {"<>, b@c", {"b@c"}, 0},
    {"a@b)c, d@e", {"d@e"}, 0},
    {"a\\b@c, d@e", {"d@e"}, 0},
    {"a@b <c@d>, e@f", {"e@f"}, 0},
    {"Joe Doe, e@f", {"e@f"}, 0},
    {"A <a@b, c@d>, e@f", {"e@f"}, 0},
    {"<a@b, c@d", {NULL}, 0},
    {"a@example.com., b@c", {"b@c"}, 0},
    {"a@b..c, b@c", {"b@c"}, 0},
    {"\"a\x01\"@x, c@d", {"c@d"}, 1},            /* obs-qtext: valid, not returned */
    {"\"a\tb\"@x, c@d", {"c@d"}, 1},             /* FWS in quotes: not for SMTP */
    {"\"a\\\x07\"@x, c@d", {"c@d"}, 1},           /* obs-qp */
    {"\"a\r\nb\"@x, c@d", {"c@d"}, 0},          /* CRLF without WSP is no fold */
    {"a@b\n", {"a@b"}, 0},
    {"a@b\r, c@d", {"a@b", "c@d"}, 0},
    {"A\n <a@b>,\n\tc@d", {"a@b", "c@d"}, 0},      /* LF-only folding: lenient */
    {"(a\r\n b) x@y", {"x@y"}, 1},
    {"(a\rb) x@y", {"x@y"}, 0},
    {"a@b\x7f, c@d", {"c@d"}, 0},
    {"a@b] , c@d", {"c@d"}, 0},
    {"a@b; c@d", {NULL}, 0},
    {"a@b\\", {NULL}, 0},
    {"\"a\\", {NULL}, 0},
    {"[1.2.3.4", {NULL}, 0},
};

static void check_list(const struct list_case *c)
{
    char **addrs = (char **)(uintptr_t)1; /* must be overwritten */
    size_t n = 99;
    size_t want = 0;
    while (want < MAX_EXPECT && c->expect[want] != NULL)
        want++;
    int count = rfc5322_addr_list(c->value, &addrs, &n);
    if ((size_t)count != want || n != want) {
        for (size_t i = 0; i < n; i++)
            print_error("  got [%zu] %s\n", i, addrs[i]);
        fail_msg("value \"%s\": %d addresses, expected %zu", c->value, count, want);
    }
    if (want == 0)
        assert_null(addrs);
    for (size_t i = 0; i < want; i++) {
        if (strcmp(addrs[i], c->expect[i]) != 0)
            fail_msg("value \"%s\": address %zu is \"%s\", expected \"%s\"", c->value, i,
                     addrs[i], c->expect[i]);
    }
    rfc5322_addr_list_free(addrs, n);
    if (rfc5322_addr_from_valid(c->value) != c->from_valid)
        fail_msg("value \"%s\": from_valid %d, expected %d", c->value, !c->from_valid,
                 c->from_valid);
}

static void test_list_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof list_cases / sizeof list_cases[0]; i++)
        check_list(&list_cases[i]);
}

static void test_null_value(void **state)
{
    (void)state;
    char **addrs = (char **)(uintptr_t)1;
    size_t n = 7;
    assert_int_equal(rfc5322_addr_list(NULL, &addrs, &n), 0);
    assert_null(addrs);
    assert_int_equal(n, 0);
    assert_int_equal(rfc5322_addr_from_valid(NULL), 0);
    rfc5322_addr_list_free(NULL, 0);
}

/* "(((...a...)))" with depth levels of nesting around the text. */
static char *nested_comment(int depth, const char *tail)
{
    struct strbuf sb = STRBUF_INIT;
    for (int i = 0; i < depth; i++)
        strbuf_putc(&sb, '(');
    strbuf_puts(&sb, "x");
    for (int i = 0; i < depth; i++)
        strbuf_putc(&sb, ')');
    strbuf_puts(&sb, tail);
    return strbuf_detach(&sb);
}

static void test_comment_depth_bound(void **state)
{
    (void)state;
    char **addrs;
    size_t n;

    char *ok = nested_comment(RFC5322_MAX_COMMENT_DEPTH, "a@b, c@d");
    assert_int_equal(rfc5322_addr_list(ok, &addrs, &n), 2);
    assert_string_equal(addrs[0], "a@b");
    rfc5322_addr_list_free(addrs, n);
    assert_true(rfc5322_addr_from_valid(ok));
    free(ok);

    /* one level too deep: that item goes, the next one stays */
    char *deep = nested_comment(RFC5322_MAX_COMMENT_DEPTH + 1, "a@b, c@d");
    assert_int_equal(rfc5322_addr_list(deep, &addrs, &n), 1);
    assert_string_equal(addrs[0], "c@d");
    rfc5322_addr_list_free(addrs, n);
    assert_false(rfc5322_addr_from_valid(deep));
    free(deep);

    /* very deep nesting is just counted: no recursion, no stack use */
    char *huge = nested_comment(100000, "a@b, c@d");
    assert_int_equal(rfc5322_addr_list(huge, &addrs, &n), 1);
    assert_string_equal(addrs[0], "c@d");
    rfc5322_addr_list_free(addrs, n);
    free(huge);
}

static void test_many_addresses(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    for (int i = 0; i < 2000; i++)
        strbuf_printf(&sb, "%sUser %d <u%d@example.com>", i ? ", " : "", i, i);
    char **addrs;
    size_t n;
    assert_int_equal(rfc5322_addr_list(strbuf_str(&sb), &addrs, &n), 2000);
    assert_int_equal(n, 2000);
    assert_string_equal(addrs[0], "u0@example.com");
    assert_string_equal(addrs[1999], "u1999@example.com");
    rfc5322_addr_list_free(addrs, n);
    assert_true(rfc5322_addr_from_valid(strbuf_str(&sb)));
    strbuf_free(&sb);
}


/* ---------------------------------------------------------------------------
 * Conformance: the is_email 3.05 vectors (../shared/testdata/address/isemail).
 * As a From: header value every address except the ISEMAIL_ERR ones is valid
 * (RFC 5322 allows comments, folding, obsolete forms, long parts, any dtext), and
 * yields exactly one address. */

static const char *testdata_dir(void)
{
    const char *dir = getenv("TERN_TESTDATA");
    return dir && *dir ? dir : "../shared/testdata";
}

/* XML text to bytes; the control pictures U+2400..U+241F stand for 0x00..0x1F.
 * Returns 0 when the text holds a NUL, which a C string cannot carry. */
static int xml_decode(const char *s, size_t len, struct strbuf *out)
{
    strbuf_reset(out);
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '&') {
            strbuf_putc(out, s[i]);
            continue;
        }
        const char *semi = memchr(s + i, ';', len - i);
        assert_non_null(semi);
        size_t n = (size_t)(semi - (s + i)) + 1;
        if (strncmp(s + i, "&amp;", n) == 0)
            strbuf_putc(out, '&');
        else if (strncmp(s + i, "&lt;", n) == 0)
            strbuf_putc(out, '<');
        else if (strncmp(s + i, "&gt;", n) == 0)
            strbuf_putc(out, '>');
        else if (strncmp(s + i, "&quot;", n) == 0)
            strbuf_putc(out, '"');
        else if (strncmp(s + i, "&apos;", n) == 0)
            strbuf_putc(out, '\'');
        else if (s[i + 1] == '#') {
            unsigned long cp = s[i + 2] == 'x' ? strtoul(s + i + 3, NULL, 16) : strtoul(s + i + 2, NULL, 10);
            if (cp >= 0x2400 && cp <= 0x241F)
                cp -= 0x2400;
            if (cp == 0)
                return 0;
            strbuf_put_utf8(out, (uint32_t)cp);
        } else {
            fail_msg("unknown XML entity %.*s", (int)n, s + i);
        }
        i += n - 1;
    }
    return 1;
}

/* The text of <tag>...</tag> (or "" for <tag/>) inside [from, to). */
static int xml_element(const char *from, const char *to, const char *tag, const char **text,
                       size_t *len)
{
    char open[64], empty[64], close[64];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(empty, sizeof empty, "<%s/>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *e = strstr(from, empty);
    const char *o = strstr(from, open);
    if (e && e < to && (!o || e < o)) {
        *text = e;
        *len = 0;
        return 1;
    }
    if (!o || o >= to)
        return 0;
    o += strlen(open);
    const char *c = strstr(o, close);
    assert_non_null(c);
    *text = o;
    *len = (size_t)(c - o);
    return 1;
}

static int cat_is(const char *cat, size_t len, const char *want)
{
    return len == strlen(want) && strncmp(cat, want, len) == 0;
}

static void test_isemail_vectors(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/address/isemail/tests.xml", testdata_dir());
    char *xml = tf_read_file(path, NULL);
    if (xml == NULL)
        test_skip("%s not found (set TERN_TESTDATA to the testdata directory)", path);
    struct strbuf addr = STRBUF_INIT;
    int checked = 0, mismatches = 0;
    for (const char *t = strstr(xml, "<test id="); t != NULL;) {
        const char *end = strstr(t, "</test>");
        assert_non_null(end);
        const char *id = t + strlen("<test id=\"");
        const char *text, *cat;
        size_t len, cat_len;
        assert_true(xml_element(t, end, "address", &text, &len));
        assert_true(xml_element(t, end, "category", &cat, &cat_len));
        if (xml_decode(text, len, &addr)) {
            int want_valid = !cat_is(cat, cat_len, "ISEMAIL_ERR");
            /* \ before a non-ASCII character is a quoted-pair since RFC 6532 */
            if (strcmp(strbuf_str(&addr), "\"test\\\xc2\xa9\"@iana.org") == 0)
                want_valid = 1;
            /* deprecated forms and obs-dtext literals may be valid yet unusable */
            size_t min_n = cat_is(cat, cat_len, "ISEMAIL_DEPREC") ||
                                   cat_is(cat, cat_len, "ISEMAIL_RFC5322") || !want_valid
                               ? 0
                               : 1;
            size_t max_n = want_valid ? 1 : (size_t)-1;
            int valid = rfc5322_addr_from_valid(strbuf_str(&addr));
            char **addrs;
            size_t n;
            rfc5322_addr_list(strbuf_str(&addr), &addrs, &n);
            if (valid != want_valid || n < min_n || n > max_n) {
                print_error("test %.*s \"%s\" (%.*s): from_valid %d, %zu addresses\n",
                            (int)strcspn(id, "\""), id, strbuf_str(&addr), (int)cat_len, cat, valid, n);
                mismatches++;
            }
            rfc5322_addr_list_free(addrs, n);
            checked++;
        }
        t = strstr(end, "<test id=");
    }
    free(xml);
    strbuf_free(&addr);
    assert_int_equal(mismatches, 0);
    assert_true(checked >= 160);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_table),
        cmocka_unit_test(test_null_value),
        cmocka_unit_test(test_comment_depth_bound),
        cmocka_unit_test(test_many_addresses),
        cmocka_unit_test(test_isemail_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
