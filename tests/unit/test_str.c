/* Tests for util/str: the ASCII character classes against <ctype.h> in the
 * C locale for every byte, the atext set of RFC 5322, has_8bit, UTF-8
 * (RFC 3629 well-formedness, and strbuf_put_utf8 round trips), the
 * string helpers, and str_printable, the one rule for showing outside text
 * in log lines and CLI output (controls and invalid UTF-8 become '?',
 * CR/LF/TAB a space, printable UTF-8 stays). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <locale.h>
#include <string.h>

#include "util/str.h"
#include "util/strbuf.h"

static void test_classes_match_c_locale(void **state)
{
    (void)state;
    setlocale(LC_CTYPE, "C");
    for (int c = 0; c < 256; c++) {
        unsigned char u = (unsigned char)c;
        assert_int_equal(str_is_space(u), !!isspace(c));
        assert_int_equal(str_is_blank(u), isspace(c) && c != '\n');
        assert_int_equal(str_is_digit(u), !!isdigit(c));
        assert_int_equal(str_is_alpha(u), !!isalpha(c));
        assert_int_equal(str_is_alnum(u), !!isalnum(c));
        assert_int_equal(str_is_ctl(u), !!iscntrl(c));
    }
}

static void test_atext(void **state)
{
    (void)state;
    const char *specials = "!#$%&'*+-/=?^_`{|}~";
    for (int c = 0; c < 256; c++) {
        int want = c < 0x80 && (isalnum(c) || (c && strchr(specials, c)));
        if (str_is_atext((unsigned char)c) != want)
            fail_msg("atext(0x%02x) = %d", c, !want);
    }
    assert_false(str_is_atext('@'));
    assert_false(str_is_atext('.'));
    assert_false(str_is_atext('\0'));
}

static void test_dot_atom(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int ascii, utf8;
    } cases[] = {
        {"a", 1, 1},          {"a.b", 1, 1},        {"first.last+tag", 1, 1},
        {"", 0, 0},           {".a", 0, 0},         {"a.", 0, 0},
        {"a..b", 0, 0},       {"a b", 0, 0},        {"a@b", 0, 0},
        {"\"q\"", 0, 0},      {"j\xc3\xb6rg", 0, 1}, {"x.\xe2\x82\xac.y", 0, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *s = cases[i].s;
        if (str_is_dot_atom(s, strlen(s), 0) != cases[i].ascii || str_is_dot_atom(s, strlen(s), 1) != cases[i].utf8)
            fail_msg("\"%s\"", s);
    }
    /* only len bytes count */
    assert_true(str_is_dot_atom("ab..", 2, 0));
}

static void test_has_8bit(void **state)
{
    (void)state;
    assert_false(str_has_8bit("", 0));
    assert_false(str_has_8bit("plain ASCII \x7f", 13));
    assert_true(str_has_8bit("caf\xc3\xa9", 5));
    assert_false(str_has_8bit("caf\xc3\xa9", 3)); /* only the n bytes count */
    assert_true(str_has_8bit("\x80", 1));
}

static void test_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t len;
    } cases[] = {
        {"a", 1},
        {"\xc3\xa9", 2},         /* U+00E9 */
        {"\xc2\x80", 2},         /* U+0080: a C1 control is still UTF-8 */
        {"\xe2\x82\xac", 3},     /* U+20AC */
        {"\xf0\x9f\x98\x80", 4}, /* U+1F600 */
        {"\xf4\x8f\xbf\xbf", 4}, /* U+10FFFF */
        {"\xc0\xaf", 0},         /* overlong '/' */
        {"\xc1\xbf", 0},
        {"\xe0\x9f\xbf", 0},     /* overlong */
        {"\xed\xa0\x80", 0},     /* surrogate U+D800 */
        {"\xf0\x8f\xbf\xbf", 0}, /* overlong */
        {"\xf4\x90\x80\x80", 0}, /* past U+10FFFF */
        {"\xf5\x80\x80\x80", 0},
        {"\x80", 0},             /* a lone continuation byte */
        {"\xc3", 0},             /* cut short */
        {"\xe2\x82", 0},
        {"\xc3(", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t avail = strlen(cases[i].s);
        if (str_utf8_len(cases[i].s, avail) != cases[i].len)
            fail_msg("case %zu: got %zu, want %zu", i, str_utf8_len(cases[i].s, avail), cases[i].len);
    }
    /* avail is honoured even when more bytes follow */
    assert_int_equal(str_utf8_len("\xe2\x82\xac", 2), 0);
    assert_true(str_is_utf8("caf\xc3\xa9 \xe2\x82\xac", 9));
    assert_false(str_is_utf8("caf\xc3", 4));
    assert_true(str_is_utf8("", 0));

    /* Every scalar value encodes, measures and decodes back. */
    struct strbuf sb = STRBUF_INIT;
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp += (cp < 0x1000 ? 1 : 97)) {
        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue;
        strbuf_reset(&sb);
        strbuf_put_utf8(&sb, cp);
        size_t n = str_utf8_len(sb.buf, sb.len);
        if (n != sb.len || str_utf8_decode(sb.buf, n) != cp)
            fail_msg("U+%04X: %zu bytes, length %zu", (unsigned)cp, sb.len, n);
    }
    strbuf_free(&sb);
}

static void test_copy_trim_lower(void **state)
{
    (void)state;
    char buf[6];
    assert_int_equal(str_copy(buf, "abcdefgh", sizeof buf), 8);
    assert_string_equal(buf, "abcde");
    char t[] = " \t Mixed Case \r\n";
    str_trim(t);
    assert_string_equal(t, "Mixed Case");
    str_lower(t);
    assert_string_equal(t, "mixed case");
    assert_true(str_case_prefix("EHLO host", "ehlo"));
    assert_false(str_case_prefix("EH", "ehlo"));
}

struct printable_case {
    const char *in, *out;
    size_t replaced;
};

static void test_printable(void **state)
{
    (void)state;
    static const struct printable_case cases[] = {
        {"plain text <a@b.example>", "plain text <a@b.example>", 0},
        {"", "", 0},
        {"\x1b[31mred\x1b[0m", "?[31mred?[0m", 2},                 /* CSI colour */
        {"title\x1b]0;x\x07", "title?]0;x?", 2},                    /* OSC, BEL */
        {"a\x01\x08\x7f" "b", "a???b", 3},                           /* C0, backspace, DEL */
        {"line\r\nnext\tcol", "line  next col", 0},                  /* one line */
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7", 0},
        {"c1 \xc2\x9b" "2J", "c1 ??2J", 2},                          /* U+009B CSI, UTF-8 encoded */
        {"raw \x9b" "2J", "raw ?2J", 1},                              /* stray continuation byte */
        {"bad \xff\xfe", "bad ??", 2},
        {"overlong \xc0\xaf \xe0\x80\xaf", "overlong ?? ???", 5},
        {"surrogate \xed\xa0\x80", "surrogate ???", 3},
        {"too big \xf4\x90\x80\x80", "too big ????", 4},
        {"cut \xe2\x82", "cut ??", 2},                               /* truncated at the end */
        {"cut \xe2\x82x", "cut ??x", 2},
        {"nbsp \xc2\xa0 ok", "nbsp \xc2\xa0 ok", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[128];
        strcpy(buf, cases[i].in);
        size_t n = str_printable(buf);
        if (strcmp(buf, cases[i].out) != 0 || n != cases[i].replaced)
            fail_msg("case %zu: got \"%s\" (%zu replaced), want \"%s\" (%zu)", i, buf, n, cases[i].out,
                     cases[i].replaced);
    }
}

/* Every single byte and every byte pair: the result is printable by the
 * rule's own definition and the length is kept. */
static void test_printable_exhaustive_pairs(void **state)
{
    (void)state;
    for (unsigned a = 1; a < 256; a++) {
        for (unsigned b = 0; b < 256; b++) {
            char buf[3] = {(char)a, (char)b, 0};
            size_t len = strlen(buf);
            str_printable(buf);
            assert_int_equal(strlen(buf), len);
            for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)buf[i];
                assert_true(c >= 0x20 && c != 0x7f);
            }
            /* a second pass changes nothing: the output is already safe */
            char again[3];
            memcpy(again, buf, sizeof again);
            assert_int_equal(str_printable(again), 0);
            assert_memory_equal(again, buf, sizeof again);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classes_match_c_locale),
        cmocka_unit_test(test_atext),
        cmocka_unit_test(test_dot_atom),
        cmocka_unit_test(test_has_8bit),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_copy_trim_lower),
        cmocka_unit_test(test_printable),
        cmocka_unit_test(test_printable_exhaustive_pairs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
