/* Tests for dmarc_from: the Author Domain of a From: value (RFC 9989
 * 5.3.1), in particular internationalized names, which are looked up as
 * A-labels. (test_dmarc covers the rest of the module.) */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "mailauth/dmarc.h"

static void expect(const char *value, enum dmarc_from_status status, const char *domain)
{
    struct dmarc_from f;
    dmarc_from_value(value, &f);
    if (f.status != status)
        fail_msg("%s: status %d (%s), want %d", value, f.status, dmarc_from_status_text(f.status), status);
    assert_string_equal(f.domain, domain);
}

static void test_unicode_domains_become_alabels(void **state)
{
    (void)state;
    expect("Anna <anna@b\xc3\xbc" "cher.example>", DMARC_FROM_OK, "xn--bcher-kva.example");
    /* upper case and NFC: the same name */
    expect("anna@B\xc3\x9c" "CHER.example", DMARC_FROM_OK, "xn--bcher-kva.example");
    /* an A-label as written stays as it is */
    expect("anna@xn--bcher-kva.example", DMARC_FROM_OK, "xn--bcher-kva.example");
    /* the same name twice, once in each form: one author domain */
    expect("a@b\xc3\xbc" "cher.example, b@xn--bcher-kva.example", DMARC_FROM_OK, "xn--bcher-kva.example");
}

static void test_bad_unicode_refused(void **state)
{
    (void)state;
    /* not UTF-8 */
    expect("anna@b\xfc" "cher.example", DMARC_FROM_UTF8_DOMAIN, "");
    /* a code point IDNA2008 disallows (U+2665 BLACK HEART SUIT) */
    expect("anna@\xe2\x99\xa5.example", DMARC_FROM_UTF8_DOMAIN, "");
    /* two author domains, one of them internationalized */
    expect("a@b\xc3\xbc" "cher.example, b@example.org", DMARC_FROM_SEVERAL_DOMAINS, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unicode_domains_become_alabels),
        cmocka_unit_test(test_bad_unicode_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
