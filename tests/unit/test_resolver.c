/* Unit tests for resolver's transport_maps lookup and its "error:" rule,
 * which smtpd (the refusal at RCPT) and the queue (the bounce) share. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "maps/resolver.h"

static void test_error_transport_status_and_text(void **state)
{
    (void)state;
    char status[16];
    const char *text;
    assert_int_equal(resolver_error_transport("error:5.1.2 No mail here", "5.1.1", status, &text), 1);
    assert_string_equal(status, "5.1.2");
    assert_string_equal(text, "No mail here");
    /* no status: the caller's default; no text: a fixed one */
    assert_int_equal(resolver_error_transport("error:go away", "5.0.0", status, &text), 1);
    assert_string_equal(status, "5.0.0");
    assert_string_equal(text, "go away");
    assert_int_equal(resolver_error_transport("  ERROR:", "5.1.1", status, &text), 1);
    assert_string_equal(status, "5.1.1");
    assert_string_equal(text, "mail for this destination is not accepted");
    assert_int_equal(resolver_error_transport("error:5.7.1", "5.0.0", status, &text), 1);
    assert_string_equal(status, "5.7.1");
    /* only a permanent status of RFC 3463's shape is taken as one */
    assert_int_equal(resolver_error_transport("error:4.2.0 busy", "5.0.0", status, &text), 1);
    assert_string_equal(status, "5.0.0");
    assert_string_equal(text, "4.2.0 busy");
    assert_int_equal(resolver_error_transport("error:5.1.2345 x", "5.0.0", status, &text), 1);
    assert_string_equal(status, "5.0.0");
    assert_int_equal(resolver_error_transport("error:5.1.2x y", "5.0.0", status, &text), 1);
    assert_string_equal(status, "5.0.0");
    assert_string_equal(text, "5.1.2x y");
    /* other transports */
    assert_int_equal(resolver_error_transport("smtp:[host]:25", "5.0.0", status, &text), 0);
    assert_int_equal(resolver_error_transport("errors:x", "5.0.0", status, &text), 0);
    assert_int_equal(resolver_error_transport("local:", "5.0.0", status, &text), 0);
}

static void test_transport_lookup_domain_then_parents(void **state)
{
    (void)state;
    struct conf *c = conf_new();
    conf_set(c, "transport_maps", "inline:{ example.net=error:5.1.2, .sub.example.org=smtp:[h]:2525 }",
             NULL, 0);
    conf_set(c, "alias_maps", "", NULL, 0);
    char *err = NULL;
    struct resolver *r = resolver_new(c, &err);
    assert_non_null(r);
    char *value = NULL;
    assert_int_equal(resolver_transport(r, "a@Example.NET.", &value), 1);
    assert_string_equal(value, "error:5.1.2");
    free(value);
    assert_int_equal(resolver_transport(r, "a@deep.sub.example.org", &value), 1);
    assert_string_equal(value, "smtp:[h]:2525");
    free(value);
    assert_int_equal(resolver_transport(r, "a@sub.example.org", &value), 0);
    assert_int_equal(resolver_transport(r, "a@other.example", &value), 0);
    assert_int_equal(resolver_transport(r, "nodomain", &value), 0);
    assert_null(value);
    resolver_free(r);
    conf_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_transport_status_and_text),
        cmocka_unit_test(test_transport_lookup_domain_then_parents),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
