/* Tests for util/str: the ASCII character classes against <ctype.h> in the
 * C locale for every byte, the atext set of RFC 5322, has_8bit, and the
 * string helpers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <locale.h>
#include <string.h>

#include "util/str.h"

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

static void test_has_8bit(void **state)
{
    (void)state;
    assert_false(str_has_8bit("", 0));
    assert_false(str_has_8bit("plain ASCII \x7f", 13));
    assert_true(str_has_8bit("caf\xc3\xa9", 5));
    assert_false(str_has_8bit("caf\xc3\xa9", 3)); /* only the n bytes count */
    assert_true(str_has_8bit("\x80", 1));
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classes_match_c_locale),
        cmocka_unit_test(test_atext),
        cmocka_unit_test(test_has_8bit),
        cmocka_unit_test(test_copy_trim_lower),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
