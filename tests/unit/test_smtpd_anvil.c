/* Tests for smtpd_anvil: per-client concurrency and fixed-window rates. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>

#include "smtpd/smtpd_anvil.h"

static void test_concurrency(void **state)
{
    (void)state;
    struct smtpd_anvil_limits l = {2, 0, 0, 60};
    assert_int_equal(smtpd_anvil_connect("192.0.2.1", &l, 1000), 0);
    assert_int_equal(smtpd_anvil_connect("192.0.2.1", &l, 1000), 0);
    assert_int_equal(smtpd_anvil_connect("192.0.2.1", &l, 1000), 1);   /* third at once */
    assert_int_equal(smtpd_anvil_connect("192.0.2.2", &l, 1000), 0);   /* others unaffected */
    smtpd_anvil_disconnect("192.0.2.1");
    assert_int_equal(smtpd_anvil_connect("192.0.2.1", &l, 1001), 0);   /* a slot came free */
    smtpd_anvil_disconnect("192.0.2.9");                                /* unknown: harmless */
    smtpd_anvil_reset();
}

static void test_rates(void **state)
{
    (void)state;
    struct smtpd_anvil_limits l = {0, 3, 2, 60};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(smtpd_anvil_connect("198.51.100.7", &l, 2000 + i), 0);
        smtpd_anvil_disconnect("198.51.100.7");
    }
    assert_int_equal(smtpd_anvil_connect("198.51.100.7", &l, 2010), 2);  /* fourth in the minute */
    assert_int_equal(smtpd_anvil_connect("198.51.100.7", &l, 2060), 0);  /* next window */
    assert_int_equal(smtpd_anvil_message("198.51.100.7", &l, 2060), 0);
    assert_int_equal(smtpd_anvil_message("198.51.100.7", &l, 2061), 0);
    assert_int_equal(smtpd_anvil_message("198.51.100.7", &l, 2062), 1);
    assert_int_equal(smtpd_anvil_message("198.51.100.7", &l, 2121), 0);
    struct smtpd_anvil_limits none = {0, 0, 0, 60};
    for (int i = 0; i < 1000; i++)
        assert_int_equal(smtpd_anvil_message("198.51.100.8", &none, 3000), 0);
    smtpd_anvil_reset();
}

static void test_table_bound(void **state)
{
    (void)state;
    struct smtpd_anvil_limits l = {1, 0, 0, 60};
    char addr[64];
    /* more clients than the table holds: idle ones are forgotten, held
     * connections never are */
    assert_int_equal(smtpd_anvil_connect("203.0.113.1", &l, 5000), 0);
    for (int i = 0; i < ANVIL_MAX_CLIENTS + 100; i++) {
        snprintf(addr, sizeof addr, "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        smtpd_anvil_connect(addr, &l, 5000);
        smtpd_anvil_disconnect(addr);
    }
    assert_int_equal(smtpd_anvil_connect("203.0.113.1", &l, 9000), 1);   /* still counted */
    smtpd_anvil_reset();
}

static void test_full_of_held_connections(void **state)
{
    (void)state;
    struct smtpd_anvil_limits l = {1, 0, 0, 60};
    char addr[64];
    /* every entry holds a connection: nothing can be forgotten, so a new
     * client goes untracked (allowed) rather than evicting a held one */
    for (int i = 0; i < ANVIL_MAX_CLIENTS; i++) {
        snprintf(addr, sizeof addr, "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        assert_int_equal(smtpd_anvil_connect(addr, &l, 5000), 0);
    }
    assert_int_equal(smtpd_anvil_connect("203.0.113.9", &l, 9000), 0);
    assert_int_equal(smtpd_anvil_connect("203.0.113.9", &l, 9000), 0); /* not counted */
    assert_int_equal(smtpd_anvil_connect("10.0.0.0", &l, 9000), 1);    /* still counted */
    /* one client leaves: its idle entry makes room for the next */
    smtpd_anvil_disconnect("10.0.0.1");
    assert_int_equal(smtpd_anvil_connect("203.0.113.9", &l, 9000), 0);
    assert_int_equal(smtpd_anvil_connect("203.0.113.9", &l, 9000), 1);
    smtpd_anvil_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrency),
        cmocka_unit_test(test_rates),
        cmocka_unit_test(test_table_bound),
        cmocka_unit_test(test_full_of_held_connections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
