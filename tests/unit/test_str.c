/* Tests for str: str_printable, the one rule for showing outside text in
 * log lines and CLI output (controls and invalid UTF-8 become '?', CR/LF/TAB
 * a space, printable UTF-8 stays). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "util/str.h"

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
        cmocka_unit_test(test_printable),
        cmocka_unit_test(test_printable_exhaustive_pairs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
