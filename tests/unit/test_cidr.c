/* Tests for cidr: parsing mynetworks-style lists (IPv4, IPv6, bracketed,
 * bare addresses, every prefix edge) and matching client addresses,
 * including IPv4-mapped IPv6, malformed entries, and garbage clients. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cidr.h"
#include "util/mem.h"

/* A list made of one entry, which must parse. */
static struct cidr_list one(const char *entry)
{
    struct cidr_list l = {0};
    if (cidr_list_add(&l, entry) != 0)
        fail_msg("refused \"%s\"", entry);
    assert_int_equal(l.n, 1);
    return l;
}

struct match_case {
    const char *addr;
    int match;
};

static void check_matches(const char *entry, const struct match_case *cases, size_t n)
{
    struct cidr_list l = one(entry);
    for (size_t i = 0; i < n; i++) {
        int got = cidr_list_match(&l, cases[i].addr);
        if (got != cases[i].match)
            fail_msg("%s vs %s: got %d, want %d", entry, cases[i].addr, got, cases[i].match);
    }
    cidr_list_free(&l);
}

#define CHECK(entry, cases) check_matches(entry, cases, sizeof cases / sizeof cases[0])

static void test_parse_list(void **state)
{
    (void)state;
    struct cidr_list l = {0};
    char *bad = NULL;
    assert_int_equal(cidr_list_parse(&l, "127.0.0.0/8 [::1]/128 10.1.2.3", &bad), 0);
    assert_null(bad);
    assert_int_equal(l.n, 3);
    assert_int_equal(l.b[0].family, AF_INET);
    assert_int_equal(l.b[0].prefix, 8);
    assert_memory_equal(l.b[0].addr, "\x7f\0\0\0", 4);
    assert_int_equal(l.b[1].family, AF_INET6);
    assert_int_equal(l.b[1].prefix, 128);
    assert_int_equal(l.b[1].addr[15], 1);
    assert_int_equal(l.b[2].family, AF_INET);
    assert_int_equal(l.b[2].prefix, 32);   /* a bare IPv4 address is a /32 */
    assert_true(cidr_list_match(&l, "127.0.0.1"));
    assert_true(cidr_list_match(&l, "127.255.255.254"));
    assert_true(cidr_list_match(&l, "::1"));
    assert_true(cidr_list_match(&l, "10.1.2.3"));
    assert_false(cidr_list_match(&l, "10.1.2.4"));
    assert_false(cidr_list_match(&l, "128.0.0.1"));
    assert_false(cidr_list_match(&l, "::2"));
    cidr_list_free(&l);
    assert_null(l.b);
    assert_int_equal(l.n, 0);
    /* commas, tabs and newlines separate too; runs of separators are one */
    assert_int_equal(cidr_list_parse(&l, ",10.0.0.0/8,, 192.168.0.0/16\t2001:db8::/32\r\n[fe80::]/10 ,", NULL), 0);
    assert_int_equal(l.n, 4);
    assert_true(cidr_list_match(&l, "192.168.77.1"));
    assert_true(cidr_list_match(&l, "fe80::1"));
    assert_true(cidr_list_match(&l, "febf:ffff::1"));
    assert_false(cidr_list_match(&l, "fec0::1"));
    cidr_list_free(&l);
    /* an empty list matches nothing */
    assert_int_equal(cidr_list_parse(&l, "", NULL), 0);
    assert_int_equal(l.n, 0);
    assert_false(cidr_list_match(&l, "127.0.0.1"));
    assert_false(cidr_list_match(&l, "::1"));
    cidr_list_free(&l);
}

static void test_ipv4_prefixes(void **state)
{
    (void)state;
    static const struct match_case p32[] = {
        {"192.0.2.1", 1}, {"192.0.2.0", 0}, {"192.0.2.2", 0}, {"193.0.2.1", 0}, {"::ffff:192.0.2.1", 1},
    };
    CHECK("192.0.2.1/32", p32);
    CHECK("192.0.2.1", p32);
    CHECK("[192.0.2.1]", p32);
    static const struct match_case p0[] = {
        {"0.0.0.0", 1}, {"255.255.255.255", 1}, {"192.0.2.1", 1}, {"::ffff:10.0.0.1", 1},
        {"::1", 0}, {"2001:db8::1", 0}, {"::", 0},
    };
    CHECK("0.0.0.0/0", p0);
    CHECK("10.20.30.40/0", p0);   /* host bits are ignored */
    static const struct match_case p23[] = {
        {"192.0.2.0", 1}, {"192.0.2.255", 1}, {"192.0.3.0", 1}, {"192.0.3.255", 1},
        {"192.0.1.255", 0}, {"192.0.4.0", 0}, {"192.1.2.0", 0},
    };
    CHECK("192.0.2.0/23", p23);
    CHECK("192.0.3.77/23", p23);
    static const struct match_case p24[] = {
        {"1.2.3.0", 1}, {"1.2.3.4", 1}, {"1.2.3.255", 1}, {"1.2.4.0", 0}, {"1.2.2.255", 0},
    };
    CHECK("1.2.3.0/24", p24);
    static const struct match_case p1[] = {
        {"127.255.255.255", 1}, {"0.0.0.1", 1}, {"128.0.0.0", 0}, {"255.0.0.1", 0},
    };
    CHECK("0.0.0.0/1", p1);
    static const struct match_case p31[] = {
        {"10.0.0.4", 1}, {"10.0.0.5", 1}, {"10.0.0.6", 0}, {"10.0.0.3", 0},
    };
    CHECK("10.0.0.4/31", p31);
    static const struct match_case p9[] = {
        {"10.0.0.0", 1}, {"10.127.255.255", 1}, {"10.128.0.0", 0}, {"11.0.0.0", 0},
    };
    CHECK("10.0.0.0/9", p9);
}

static void test_ipv6_prefixes(void **state)
{
    (void)state;
    static const struct match_case p32[] = {
        {"2001:db8::1", 1}, {"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 1}, {"2001:DB8::abcd", 1},
        {"2001:db9::1", 0}, {"2001:db7:ffff::", 0}, {"192.0.2.1", 0},
    };
    CHECK("2001:db8::/32", p32);
    CHECK("[2001:db8::]/32", p32);
    CHECK("[2001:0db8:0000::]/32", p32);
    static const struct match_case p128[] = {
        {"::1", 1}, {"0:0:0:0:0:0:0:1", 1}, {"::2", 0}, {"::", 0}, {"127.0.0.1", 0}, {"::ffff:127.0.0.1", 0},
    };
    CHECK("::1", p128);
    CHECK("[::1]", p128);
    CHECK("[::1]/128", p128);
    CHECK("::1/128", p128);
    static const struct match_case p127[] = {
        {"2001:db8::", 1}, {"2001:db8::1", 1}, {"2001:db8::2", 0}, {"2001:db8::3", 0},
    };
    CHECK("2001:db8::/127", p127);
    CHECK("2001:db8::1/127", p127);
    static const struct match_case p0[] = {
        {"::", 1}, {"::1", 1}, {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1}, {"::ffff:1.2.3.4", 1},
        {"1.2.3.4", 0},
    };
    CHECK("::/0", p0);
    CHECK("[::]/0", p0);
    static const struct match_case p65[] = {
        {"2001:db8:0:1::1", 1}, {"2001:db8:0:1:7fff:ffff:ffff:ffff", 1}, {"2001:db8:0:1:8000::", 0},
        {"2001:db8:0:2::", 0},
    };
    CHECK("2001:db8:0:1::/65", p65);
    static const struct match_case p10[] = {
        {"fe80::1", 1}, {"febf::1", 1}, {"fec0::1", 0}, {"fe7f::1", 0},
    };
    CHECK("fe80::/10", p10);
}

/* A client connecting over IPv6 with a mapped IPv4 address matches the IPv4
 * blocks; other embeddings of IPv4 in IPv6 do not. */
static void test_mapped_ipv4(void **state)
{
    (void)state;
    static const struct match_case c[] = {
        {"::ffff:1.2.3.4", 1},
        {"::FFFF:1.2.3.4", 1},
        {"0:0:0:0:0:ffff:1.2.3.4", 1},
        {"::ffff:102:304", 1},        /* the same address in hex */
        {"::ffff:1.2.4.4", 0},
        {"::1.2.3.4", 0},             /* IPv4-compatible, not mapped */
        {"64:ff9b::1.2.3.4", 0},      /* NAT64 */
        {"::fffe:1.2.3.4", 0},
        {"1:0:0:0:0:ffff:1.2.3.4", 0},
    };
    CHECK("1.2.3.0/24", c);
    /* an IPv6 block holding mapped addresses matches them as IPv6 */
    struct cidr_list l = one("::ffff:0:0/96");
    assert_true(cidr_list_match(&l, "::ffff:10.0.0.1"));
    cidr_list_free(&l);
}

static void test_malformed_entries(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "/8", "10.0.0.0/", "10.0.0.0/8x", "10.0.0.0/x", "10.0.0.0/-1", "10.0.0.0/33", "10.0.0.0/128",
        "::1/129", "::/1000", "10.0.0.0/99999999999999999999", "10.0.0.0//8", "10.0.0.0/8/8", "1.2.3",
        "1.2.3.4.5", "256.1.1.1", "1.2.3.-4", "[1.2.3.4", "1.2.3.4]", "[::1", "::1]", "[::1/128]", "[]",
        "[[::1]]", "::1::2", "2001:db8:::/32", "gggg::", "localhost", "10.0.0.0/+8", "10.0.0.0/ 8",
        "10.0.0.0/8 ", " 10.0.0.0/8", "10.0.0.0/-0", "10.0.0.0/0x8", "fe80::1%eth0",
        /* longer than any address could be */
        ("1111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111"
         "1111111111111111111111111111111111111.1.1.1/8"),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct cidr_list l = {0};
        if (cidr_list_add(&l, bad[i]) != -1)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_int_equal(l.n, 0);
        cidr_list_free(&l);
    }
    /* a list counts its malformed entries, names the first, keeps the rest */
    struct cidr_list l = {0};
    char *first = NULL;
    assert_int_equal(cidr_list_parse(&l, "10.0.0.0/8 garbage, 1.2.3.4/33 [::1]/128 ::1]/64 192.168.1.1", &first),
                     3);
    assert_string_equal(first, "garbage");
    free(first);
    assert_int_equal(l.n, 3);
    assert_true(cidr_list_match(&l, "10.9.9.9"));
    assert_true(cidr_list_match(&l, "::1"));
    assert_true(cidr_list_match(&l, "192.168.1.1"));
    assert_false(cidr_list_match(&l, "1.2.3.4"));
    cidr_list_free(&l);
    /* without a place for the name */
    assert_int_equal(cidr_list_parse(&l, "x y z 127.0.0.1", NULL), 3);
    assert_int_equal(l.n, 1);
    cidr_list_free(&l);
}

/* Whatever the client string, it matches nothing unless it is an address:
 * not even "everything" blocks. */
static void test_garbage_clients(void **state)
{
    (void)state;
    struct cidr_list l = {0};
    assert_int_equal(cidr_list_parse(&l, "0.0.0.0/0 ::/0", NULL), 0);
    static const char *const garbage[] = {
        "", "unknown", "localhost", "1.2.3.4 ", " 1.2.3.4", "1.2.3.4/32", "[1.2.3.4]", "[::1]", "::1%lo",
        "1.2.3.4.5", "999.1.1.1", "1.2.3", "0x7f.0.0.1", "::1::", "1.2.3.4\n", "::ffff:1.2.3.4.5",
        "::ffff:999.2.3.4", "IPv6:::1",
    };
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++)
        if (cidr_list_match(&l, garbage[i]))
            fail_msg("matched garbage client \"%s\"", garbage[i]);
    assert_true(cidr_list_match(&l, "1.2.3.4"));
    assert_true(cidr_list_match(&l, "::"));
    cidr_list_free(&l);
}

/* Many entries: the list grows and every entry is kept. */
static void test_many_entries(void **state)
{
    (void)state;
    struct cidr_list l = {0};
    for (int i = 0; i < 256; i++) {
        char e[32];
        snprintf(e, sizeof e, "10.%d.0.0/16", i);
        assert_int_equal(cidr_list_add(&l, e), 0);
    }
    assert_int_equal(l.n, 256);
    assert_true(cidr_list_match(&l, "10.0.1.1"));
    assert_true(cidr_list_match(&l, "10.255.255.255"));
    assert_false(cidr_list_match(&l, "11.0.0.0"));
    cidr_list_free(&l);
}

/* The block-level calls cidr: tables use: a block is a network only
 * when no bit past its prefix is set; an address parses once and matches
 * blocks of its own family (an IPv4-mapped one IPv4 blocks too). */
static void test_blocks_and_addresses(void **state)
{
    (void)state;
    struct cidr_block b, net;
    assert_int_equal(cidr_block_parse(&b, "10.0.0.0/8"), 0);
    assert_int_equal(cidr_block_is_network(&b, &net), 1);
    assert_int_equal(cidr_block_parse(&b, "10.1.0.0/8"), 0);
    assert_int_equal(cidr_block_is_network(&b, &net), 0);
    assert_int_equal(net.prefix, 8);
    assert_int_equal(net.addr[0], 10);
    assert_int_equal(net.addr[1], 0);
    assert_int_equal(cidr_block_parse(&b, "192.0.2.129/25"), 0);
    assert_int_equal(cidr_block_is_network(&b, NULL), 0);
    assert_int_equal(cidr_block_parse(&b, "192.0.2.128/25"), 0);
    assert_int_equal(cidr_block_is_network(&b, NULL), 1);
    assert_int_equal(cidr_block_parse(&b, "[2001:db8::1]/64"), 0);
    assert_int_equal(cidr_block_is_network(&b, &net), 0);
    assert_int_equal(net.addr[15], 0);
    assert_int_equal(cidr_block_parse(&b, "0.0.0.0/0"), 0);
    assert_int_equal(cidr_block_is_network(&b, NULL), 1);
    assert_int_equal(cidr_block_parse(&b, "2001:db8::1"), 0);
    assert_int_equal(b.prefix, 128);
    assert_int_equal(cidr_block_is_network(&b, NULL), 1);
    assert_int_equal(cidr_block_parse(&b, "10.0.0.0/33"), -1);

    struct cidr_addr a;
    assert_int_equal(cidr_addr_parse(&a, "[10.0.0.1]"), -1);
    assert_int_equal(cidr_addr_parse(&a, "10.0.0.1/32"), -1);
    assert_int_equal(cidr_addr_parse(&a, "host.example"), -1);
    assert_int_equal(cidr_addr_parse(&a, "::ffff:10.0.0.1"), 0);
    assert_int_equal(cidr_block_parse(&b, "10.0.0.0/8"), 0);
    assert_int_equal(cidr_block_match(&b, &a), 1);
    assert_int_equal(cidr_block_parse(&b, "::ffff:0:0/96"), 0);
    assert_int_equal(cidr_block_match(&b, &a), 1);
    assert_int_equal(cidr_addr_parse(&a, "2001:db8::1"), 0);
    assert_int_equal(cidr_block_parse(&b, "0.0.0.0/0"), 0);
    assert_int_equal(cidr_block_match(&b, &a), 0);
    assert_int_equal(cidr_block_parse(&b, "::/0"), 0);
    assert_int_equal(cidr_block_match(&b, &a), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_list),
        cmocka_unit_test(test_ipv4_prefixes),
        cmocka_unit_test(test_ipv6_prefixes),
        cmocka_unit_test(test_mapped_ipv4),
        cmocka_unit_test(test_malformed_entries),
        cmocka_unit_test(test_garbage_clients),
        cmocka_unit_test(test_many_entries),
        cmocka_unit_test(test_blocks_and_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
