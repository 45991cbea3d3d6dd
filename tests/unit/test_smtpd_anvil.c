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
    struct smtpd_anvil_limits l = {2, 0, 60};
    assert_int_equal(smtpd_anvil_connect("192.0.2.1", &l, 1000), 0);
    assert_int_equal(smtpd_anvil_connect("192.0.2.1", &l, 1000), 0);
    assert_int_equal(smtpd_anvil_connect("192.0.2.1", &l, 1000), 1);   /* third at once */
    assert_int_equal(smtpd_anvil_connect("192.0.2.2", &l, 1000), 0);   /* others unaffected */
    smtpd_anvil_disconnect("192.0.2.1", ANVIL_ADMITTED, 1000);
    assert_int_equal(smtpd_anvil_connect("192.0.2.1", &l, 1001), 0);   /* a slot came free */
    smtpd_anvil_disconnect("192.0.2.9", ANVIL_ADMITTED, 1000);                                /* unknown: harmless */
    smtpd_anvil_reset();
}

static void test_rates(void **state)
{
    (void)state;
    struct smtpd_anvil_limits l = {0, 3, 60};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(smtpd_anvil_connect("198.51.100.7", &l, 2000 + i), 0);
        smtpd_anvil_disconnect("198.51.100.7", ANVIL_ADMITTED, 2000 + i);
    }
    assert_int_equal(smtpd_anvil_connect("198.51.100.7", &l, 2010), 2);  /* fourth in the minute */
    assert_int_equal(smtpd_anvil_connect("198.51.100.7", &l, 2060), 0);  /* next window */
    assert_int_equal(smtpd_anvil_rate("198.51.100.7", ANVIL_RATE_MSG, 2, 60, 2060), 0);
    assert_int_equal(smtpd_anvil_rate("198.51.100.7", ANVIL_RATE_MSG, 2, 60, 2061), 0);
    assert_int_equal(smtpd_anvil_rate("198.51.100.7", ANVIL_RATE_MSG, 2, 60, 2062), 1);
    assert_int_equal(smtpd_anvil_rate("198.51.100.7", ANVIL_RATE_MSG, 2, 60, 2121), 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(smtpd_anvil_rate("198.51.100.8", ANVIL_RATE_MSG, 0, 60, 3000), 0);
    smtpd_anvil_reset();
}

static void test_table_bound(void **state)
{
    (void)state;
    struct smtpd_anvil_limits l = {1, 0, 60};
    char addr[64];
    /* more clients than the table holds: idle ones are forgotten, held
     * connections never are */
    assert_int_equal(smtpd_anvil_connect("203.0.113.1", &l, 5000), 0);
    for (int i = 0; i < ANVIL_MAX_CLIENTS + 100; i++) {
        snprintf(addr, sizeof addr, "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        smtpd_anvil_connect(addr, &l, 5000);
        smtpd_anvil_disconnect(addr, ANVIL_ADMITTED, 5000);
    }
    assert_int_equal(smtpd_anvil_connect("203.0.113.1", &l, 9000), 1);   /* still counted */
    smtpd_anvil_reset();
}

static void test_full_of_held_connections(void **state)
{
    (void)state;
    struct smtpd_anvil_limits l = {1, 0, 60};
    char addr[64];
    /* every entry holds a connection: nothing can be forgotten, so new
     * clients are counted together in one shared entry, never uncounted */
    for (int i = 0; i < ANVIL_MAX_CLIENTS; i++) {
        snprintf(addr, sizeof addr, "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        assert_int_equal(smtpd_anvil_connect(addr, &l, 5000), ANVIL_ADMITTED);
    }
    assert_int_equal(smtpd_anvil_connect("203.0.113.9", &l, 9000), ANVIL_ADMITTED_SHARED);
    assert_int_equal(smtpd_anvil_connect("203.0.113.9", &l, 9000), ANVIL_OVER_COUNT);
    assert_int_equal(smtpd_anvil_connect("203.0.113.10", &l, 9000), ANVIL_OVER_COUNT);  /* shared */
    assert_int_equal(smtpd_anvil_connect("10.0.0.0", &l, 9000), ANVIL_OVER_COUNT);     /* still counted */
    smtpd_anvil_disconnect("203.0.113.9", ANVIL_ADMITTED_SHARED, 9000);
    assert_int_equal(smtpd_anvil_connect("203.0.113.10", &l, 9000), ANVIL_ADMITTED_SHARED);
    /* one client leaves: its idle entry makes room for the next */
    smtpd_anvil_disconnect("10.0.0.1", ANVIL_ADMITTED, 9000);
    assert_int_equal(smtpd_anvil_connect("203.0.113.11", &l, 9000), ANVIL_ADMITTED);
    assert_int_equal(smtpd_anvil_connect("203.0.113.11", &l, 9000), ANVIL_OVER_COUNT);
    smtpd_anvil_reset();
}

/* Every IPv6 address of one /64 is one client, for every limit. */
static void test_ipv6_per_64(void **state)
{
    (void)state;
    char key[ANVIL_KEY_LEN];
    smtpd_anvil_client_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd", key, sizeof key);
    assert_string_equal(key, "2001:db8:1:2::/64");
    smtpd_anvil_client_key("::ffff:192.0.2.7", key, sizeof key);
    assert_string_equal(key, "192.0.2.7");
    smtpd_anvil_client_key("192.0.2.7", key, sizeof key);
    assert_string_equal(key, "192.0.2.7");

    struct smtpd_anvil_limits count = {2, 0, 60};
    assert_int_equal(smtpd_anvil_connect("2001:db8:1:2::1", &count, 1000), 0);
    assert_int_equal(smtpd_anvil_connect("2001:db8:1:2::2", &count, 1000), 0);
    assert_int_equal(smtpd_anvil_connect("2001:db8:1:2:ffff::3", &count, 1000), 1);  /* same /64 */
    assert_int_equal(smtpd_anvil_connect("2001:db8:1:3::1", &count, 1000), 0);       /* next /64 */
    smtpd_anvil_disconnect("2001:db8:1:2::77", ANVIL_ADMITTED, 1000);   /* any address of the /64 frees its slot */
    assert_int_equal(smtpd_anvil_connect("2001:db8:1:2::4", &count, 1000), 0);
    smtpd_anvil_reset();

    struct smtpd_anvil_limits rate = {0, 3, 60};
    char addr[64];
    for (int i = 0; i < 3; i++) {
        snprintf(addr, sizeof addr, "2001:db8:5:5::%x", i + 1);
        assert_int_equal(smtpd_anvil_connect(addr, &rate, 2000), 0);
        smtpd_anvil_disconnect(addr, ANVIL_ADMITTED, 2000);
    }
    assert_int_equal(smtpd_anvil_connect("2001:db8:5:5:1:2:3:4", &rate, 2001), 2);
    assert_int_equal(smtpd_anvil_rate("2001:db8:5:5::a", ANVIL_RATE_MSG, 2, 60, 2001), 0);
    assert_int_equal(smtpd_anvil_rate("2001:db8:5:5::b", ANVIL_RATE_MSG, 2, 60, 2001), 0);
    assert_int_equal(smtpd_anvil_rate("2001:db8:5:5::c", ANVIL_RATE_MSG, 2, 60, 2001), 1);
    smtpd_anvil_reset();

    /* the lockout too: 3 failures from 3 addresses of a /64 lock the /64 */
    assert_int_equal(smtpd_anvil_auth_failure("2001:db8:9:9::1", 3, 600, 100), 0);
    assert_int_equal(smtpd_anvil_auth_failure("2001:db8:9:9::2", 3, 600, 100), 0);
    assert_int_equal(smtpd_anvil_auth_failure("2001:db8:9:9::3", 3, 600, 100), ANVIL_LOCKED);
    assert_int_equal(smtpd_anvil_auth_locked("2001:db8:9:9:dead:beef::1", 101), ANVIL_LOCKED);
    assert_int_equal(smtpd_anvil_auth_locked("2001:db8:9:a::1", 101), 0);
    smtpd_anvil_reset();
}

static void test_lockout(void **state)
{
    (void)state;
    assert_int_equal(smtpd_anvil_auth_failure("192.0.2.1", 3, 600, 100), 0);
    assert_int_equal(smtpd_anvil_auth_failure("192.0.2.1", 3, 600, 101), 0);
    assert_int_equal(smtpd_anvil_auth_locked("192.0.2.1", 102), 0);
    assert_int_equal(smtpd_anvil_auth_failure("192.0.2.1", 3, 600, 102), ANVIL_LOCKED);
    assert_int_equal(smtpd_anvil_auth_locked("192.0.2.1", 103), ANVIL_LOCKED);
    assert_int_equal(smtpd_anvil_auth_locked("192.0.2.2", 103), 0);
    assert_int_equal(smtpd_anvil_auth_locked("192.0.2.1", 702), 0);   /* it ends */
    /* failures spread over more than the window never add up */
    for (int i = 0; i < 10; i++)
        assert_int_equal(smtpd_anvil_auth_failure("192.0.2.3", 3, 600, 1000 + 400 * i), 0);
    smtpd_anvil_reset();
}

/* The audit's case: more addresses lock themselves out than the table
 * holds; a fresh address must still be counted and locked out. */
static void test_lockout_table_full(void **state)
{
    (void)state;
    char addr[64];
    for (int i = 0; i < ANVIL_MAX_LOCKOUTS + 8; i++) {
        snprintf(addr, sizeof addr, "10.0.%d.%d", i >> 8, i & 255);
        for (int k = 0; k < 5; k++)
            smtpd_anvil_auth_failure(addr, 5, 600, 1000);
    }
    /* a fresh address: 20 wrong guesses cannot all go through */
    int refused_after = -1;
    for (int k = 0; k < 20 && refused_after < 0; k++) {
        if (smtpd_anvil_auth_locked("198.51.100.1", 1001))
            refused_after = k;
        else
            smtpd_anvil_auth_failure("198.51.100.1", 5, 600, 1001);
    }
    assert_true(refused_after >= 0 && refused_after <= 5);
    /* the shared lockout holds every client without a slot, not the ones in the table */
    assert_int_equal(smtpd_anvil_auth_locked("198.51.100.2", 1001), ANVIL_LOCKED_SHARED);
    assert_int_equal(smtpd_anvil_auth_locked("10.0.0.0", 1001), ANVIL_LOCKED);
    /* once the lockouts end, slots free up and each client counts alone again */
    assert_int_equal(smtpd_anvil_auth_locked("198.51.100.2", 1700), 0);
    assert_int_equal(smtpd_anvil_auth_failure("198.51.100.2", 5, 600, 1700), 0);
    assert_int_equal(smtpd_anvil_auth_locked("198.51.100.3", 1700), 0);
    smtpd_anvil_reset();
}

/* A full table gives up only an entry whose lockout and window ended (the
 * one that failed least recently): entries still counting failures stay,
 * and clients without a slot are counted together. */
static void test_lockout_full_table_keeps_counting(void **state)
{
    (void)state;
    char addr[64];
    assert_int_equal(smtpd_anvil_auth_failure("192.0.2.50", 2, 600, 100), 0);
    assert_int_equal(smtpd_anvil_auth_failure("192.0.2.50", 2, 600, 100), ANVIL_LOCKED);
    /* one failure each, within the window: every slot still counts */
    for (int i = 0; i < ANVIL_MAX_LOCKOUTS - 1; i++) {
        snprintf(addr, sizeof addr, "10.1.%d.%d", i >> 8, i & 255);
        assert_int_equal(smtpd_anvil_auth_failure(addr, 2, 600, 200 + i / 4), 0);
    }
    /* so the next clients share the overflow entry: two failures lock all of them */
    assert_int_equal(smtpd_anvil_auth_failure("203.0.113.1", 2, 600, 500), 0);
    assert_int_equal(smtpd_anvil_auth_failure("203.0.113.2", 2, 600, 500), ANVIL_LOCKED_SHARED);
    assert_int_equal(smtpd_anvil_auth_locked("203.0.113.3", 501), ANVIL_LOCKED_SHARED);
    assert_int_equal(smtpd_anvil_auth_locked("192.0.2.50", 500), ANVIL_LOCKED);
    /* the ones in the table keep their own count: one more failure locks */
    assert_int_equal(smtpd_anvil_auth_failure("10.1.0.0", 2, 600, 502), ANVIL_LOCKED);
    /* once the first entries' windows end, their slots go to new clients,
     * the least recent first, and the others are still counted */
    assert_int_equal(smtpd_anvil_auth_failure("198.51.100.1", 2, 600, 805), 0);
    assert_int_equal(smtpd_anvil_auth_locked("198.51.100.1", 805), 0);
    assert_int_equal(smtpd_anvil_auth_failure("198.51.100.1", 2, 600, 806), ANVIL_LOCKED);
    snprintf(addr, sizeof addr, "10.1.%d.%d", (ANVIL_MAX_LOCKOUTS - 2) >> 8, (ANVIL_MAX_LOCKOUTS - 2) & 255);
    assert_int_equal(smtpd_anvil_auth_failure(addr, 2, 600, 806), ANVIL_LOCKED);
    smtpd_anvil_reset();
}

/* The review's case: more addresses than slots take turns failing, each
 * staying under the limit; their guesses must still lock someone out. */
static void test_lockout_many_addresses_taking_turns(void **state)
{
    (void)state;
    char addr[64];
    int locked = 0;
    for (int n = 0; n < 22000; n++) {
        int i = n % (ANVIL_MAX_LOCKOUTS + 76);
        snprintf(addr, sizeof addr, "10.2.%d.%d", i >> 8, i & 255);
        time_t now = 1000 + n / 50;   /* 50 guesses a second */
        if (smtpd_anvil_auth_locked(addr, now))
            continue;
        if (smtpd_anvil_auth_failure(addr, 5, 600, now))
            locked++;
    }
    assert_true(locked > 0);
    smtpd_anvil_reset();
}

/* The limits table forgets only what counts nothing: entries with a
 * limited rate running in its window stay; new clients then share. */
static void test_table_full_of_running_rates(void **state)
{
    (void)state;
    char addr[64];
    for (int i = 0; i < ANVIL_MAX_CLIENTS; i++) {
        snprintf(addr, sizeof addr, "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        assert_int_equal(smtpd_anvil_rate(addr, ANVIL_RATE_RCPT, 2, 60, 5000), 0);
    }
    /* nothing can go: the newcomers count together */
    assert_int_equal(smtpd_anvil_rate("203.0.113.1", ANVIL_RATE_RCPT, 2, 60, 5001), 0);
    assert_int_equal(smtpd_anvil_rate("203.0.113.2", ANVIL_RATE_RCPT, 2, 60, 5001), 0);
    assert_int_equal(smtpd_anvil_rate("203.0.113.3", ANVIL_RATE_RCPT, 2, 60, 5001), 1);
    assert_int_equal(smtpd_anvil_rate("10.0.0.5", ANVIL_RATE_RCPT, 2, 60, 5002), 0);   /* its own count */
    assert_int_equal(smtpd_anvil_rate("10.0.0.5", ANVIL_RATE_RCPT, 2, 60, 5002), 1);
    /* another service (master.cf -o) without a recipient limit, or with
     * another time unit, leaves these counts running */
    assert_int_equal(smtpd_anvil_rate("198.18.0.1", ANVIL_RATE_RCPT, 0, 60, 5003), 0);
    assert_int_equal(smtpd_anvil_rate("198.18.0.2", ANVIL_RATE_MSG, 5, 1, 5003), 0);
    assert_int_equal(smtpd_anvil_rate("198.18.0.3", ANVIL_RATE_RCPT, 0, 60, 5004), 0);
    assert_int_equal(smtpd_anvil_rate("10.0.0.5", ANVIL_RATE_RCPT, 2, 60, 5004), 1);
    /* the windows end: the entries count nothing, and go */
    assert_int_equal(smtpd_anvil_rate("203.0.113.4", ANVIL_RATE_RCPT, 2, 60, 5070), 0);
    assert_int_equal(smtpd_anvil_rate("203.0.113.4", ANVIL_RATE_RCPT, 2, 60, 5070), 0);
    assert_int_equal(smtpd_anvil_rate("203.0.113.4", ANVIL_RATE_RCPT, 2, 60, 5070), 1);   /* its own entry now */
    assert_int_equal(smtpd_anvil_rate("203.0.113.5", ANVIL_RATE_RCPT, 2, 60, 5070), 0);
    smtpd_anvil_reset();
}

/* Recipients, AUTH commands and new TLS sessions per time unit; asking
 * whether the next would be over counts nothing. */
static void test_other_rates(void **state)
{
    (void)state;
    for (enum anvil_rate r = ANVIL_RATE_RCPT; r <= ANVIL_RATE_TLS; r++) {
        assert_int_equal(smtpd_anvil_rate_reached("192.0.2.77", r, 2, 60, 100), 0);
        assert_int_equal(smtpd_anvil_rate("192.0.2.77", r, 2, 60, 100), 0);
        assert_int_equal(smtpd_anvil_rate_reached("192.0.2.77", r, 2, 60, 101), 0);
        assert_int_equal(smtpd_anvil_rate_reached("192.0.2.77", r, 2, 60, 101), 0);
        assert_int_equal(smtpd_anvil_rate("192.0.2.77", r, 2, 60, 101), 0);
        assert_int_equal(smtpd_anvil_rate_reached("192.0.2.77", r, 2, 60, 102), 1);
        assert_int_equal(smtpd_anvil_rate("192.0.2.77", r, 2, 60, 102), 1);
        assert_int_equal(smtpd_anvil_rate("192.0.2.78", r, 2, 60, 102), 0);   /* per client */
        assert_int_equal(smtpd_anvil_rate("192.0.2.77", r, 2, 60, 160), 0);   /* next window */
        assert_int_equal(smtpd_anvil_rate("192.0.2.77", r, 0, 60, 160), 0);   /* no limit */
    }
    /* the rates are apart: recipients do not use up messages */
    assert_int_equal(smtpd_anvil_rate("192.0.2.79", ANVIL_RATE_RCPT, 1, 60, 200), 0);
    assert_int_equal(smtpd_anvil_rate("192.0.2.79", ANVIL_RATE_MSG, 1, 60, 200), 0);
    smtpd_anvil_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrency),
        cmocka_unit_test(test_rates),
        cmocka_unit_test(test_table_bound),
        cmocka_unit_test(test_full_of_held_connections),
        cmocka_unit_test(test_ipv6_per_64),
        cmocka_unit_test(test_lockout),
        cmocka_unit_test(test_lockout_table_full),
        cmocka_unit_test(test_lockout_full_table_keeps_counting),
        cmocka_unit_test(test_lockout_many_addresses_taking_turns),
        cmocka_unit_test(test_table_full_of_running_rates),
        cmocka_unit_test(test_other_rates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
