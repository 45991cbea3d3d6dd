/* Unit tests for src/maps/map_cidr.c through map.h: cidr: tables
 * (cidr_table(5)): IPv4 and IPv6 blocks, bare addresses, brackets, first
 * match wins, !pattern, if/endif blocks (nested, negated, bad), bad lines,
 * keys that are no address, continuation lines, reloading, and
 * check_client_access-style use through map_is_pattern. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "maps/map.h"
#include "test_fixture.h"
#include "util/log.h"
#include "util/mem.h"

static char tmpdir[64];

static int setup_all(void **state)
{
    (void)state;
    if (tf_tmpdir_make(tmpdir, sizeof tmpdir, "test-map-cidr") != 0)
        return -1;
    tf_log_capture(tmpdir);
    return 0;
}

static int teardown_all(void **state)
{
    (void)state;
    tf_log_release();
    return tf_tmpdir_remove(tmpdir);
}

static int setup_one(void **state)
{
    (void)state;
    map_set_check_interval(0);
    return tf_log_clear();
}

static void write_text(const char *path, const char *text)
{
    char *tmp = xasprintf("%s.new", path);
    FILE *f = fopen(tmp, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, path), 0);
    free(tmp);
}

/* Writes the table text to a file named after the test and opens it as
 * cidr:; *path_out (when not NULL) gets the path. */
static struct map *table_of(const char *name, const char *text, char **path_out)
{
    char *path = xasprintf("%s/%s.cidr", tmpdir, name);
    write_text(path, text);
    char *spec = xasprintf("cidr:%s", path);
    char *err = NULL;
    struct map *m = map_open(spec, 0, &err);
    if (!m)
        fail_msg("map_open(%s): %s", spec, err);
    free(spec);
    if (path_out)
        *path_out = path;
    else
        free(path);
    return m;
}

static void expect(struct map *m, const char *key, const char *expected)
{
    char *v = (char *)0x1;
    int rc = map_lookup(m, key, &v);
    if (expected) {
        if (rc != 1)
            fail_msg("%s: key \"%s\": rc %d, expected \"%s\"", map_spec(m), key, rc, expected);
        assert_string_equal(v, expected);
        free(v);
    } else {
        if (rc != 0)
            fail_msg("%s: key \"%s\": rc %d (%s), expected not found", map_spec(m), key, rc,
                     rc == 1 ? v : "");
        assert_null(v);
    }
}

static void test_blocks_and_first_match(void **state)
{
    (void)state;
    /* cidr_table(5)'s example, and more */
    struct map *m = table_of("first",
                             "# Rule order matters.\n"
                             "192.168.1.1             OK\n"
                             "192.168.0.0/16          REJECT\n"
                             "2001:db8::1             OK\n"
                             "2001:db8::/32           REJECT go away\n"
                             "[2001:db9::]/32         bracketed\n"
                             "[10.9.9.9]              bracketed v4\n"
                             "0.0.0.0/0               any v4\n",
                             NULL);
    assert_true(map_is_pattern(m));
    expect(m, "192.168.1.1", "OK");
    expect(m, "192.168.1.2", "REJECT");
    expect(m, "192.168.255.255", "REJECT");
    expect(m, "2001:db8::1", "OK");
    expect(m, "2001:0DB8:0:0::1", "OK"); /* compared as binary */
    expect(m, "2001:db8:ffff::2", "REJECT go away");
    expect(m, "2001:db9::5", "bracketed");
    expect(m, "10.9.9.9", "bracketed v4");
    expect(m, "10.9.9.8", "any v4");
    expect(m, "::ffff:192.168.3.4", "REJECT"); /* IPv4-mapped: as IPv4 */
    expect(m, "2001:dba::1", NULL);           /* no IPv6 catch-all */
    /* keys that are no address find nothing */
    expect(m, "mail.example.com", NULL);
    expect(m, "unknown", NULL);
    expect(m, "[192.168.1.1]", NULL);
    expect(m, "192.168.1.1/32", NULL);
    expect(m, "192.168.1", NULL);
    expect(m, "", NULL);
    map_close(m);
}

static void test_prefix_edges(void **state)
{
    (void)state;
    struct map *m = table_of("edges",
                             "10.0.0.0/31      slash31\n"
                             "10.0.0.128/25    slash25\n"
                             "172.16.0.0/12    slash12\n"
                             "::/0             any v6\n",
                             NULL);
    expect(m, "10.0.0.0", "slash31");
    expect(m, "10.0.0.1", "slash31");
    expect(m, "10.0.0.2", NULL);
    expect(m, "10.0.0.127", NULL);
    expect(m, "10.0.0.128", "slash25");
    expect(m, "10.0.0.255", "slash25");
    expect(m, "172.31.255.255", "slash12");
    expect(m, "172.32.0.0", NULL);
    expect(m, "::1", "any v6");
    map_close(m);
}

static void test_negation(void **state)
{
    (void)state;
    struct map *m = table_of("negate",
                             "!10.0.0.0/8     outside ten\n"
                             "10.1.0.0/16     ten-one\n",
                             NULL);
    expect(m, "10.1.2.3", "ten-one");
    expect(m, "10.2.2.3", NULL);
    expect(m, "192.0.2.1", "outside ten");
    /* an address of the other family is not in the block */
    expect(m, "2001:db8::1", "outside ten");
    expect(m, "not-an-address", NULL);
    map_close(m);
}

static void test_if_endif(void **state)
{
    (void)state;
    struct map *m = table_of("ifs",
                             "if 10.0.0.0/8\n"
                             "10.1.0.0/16     in ten-one\n"
                             "IF !10.2.0.0/16\n"
                             "10.0.0.0/8      ten, not ten-two\n"
                             "ENDIF\n"
                             "endif\n"
                             "if !192.0.2.0/24\n"
                             "0.0.0.0/0       not test-net\n"
                             "endif\n"
                             "192.0.2.7       seven\n",
                             NULL);
    expect(m, "10.1.5.5", "in ten-one");
    expect(m, "10.3.5.5", "ten, not ten-two");
    expect(m, "10.2.5.5", "not test-net"); /* the inner block is skipped, the next block applies */
    expect(m, "192.0.2.7", "seven");
    expect(m, "192.0.2.8", NULL);
    expect(m, "198.51.100.1", "not test-net");
    assert_int_equal(tf_log_count("warning"), 0);
    map_close(m);
}

static void test_bad_lines(void **state)
{
    (void)state;
    struct map *m = table_of("bad",
                             "10.0.0.1/8          host bits\n"          /* 1 */
                             "10.0.0.0/33         too long\n"           /* 2 */
                             "300.0.0.0/8         no address\n"         /* 3 */
                             "10.0.0.0/+8         signed prefix\n"      /* 4 */
                             "2001:db8::/129      too long v6\n"        /* 5 */
                             "192.0.2.0/24\n"                           /* 6: no result */
                             "if 198.51.100.0/24 extra\n"               /* 7: bad if */
                             "0.0.0.0/0           inside a bad if\n"    /* 8 */
                             "endif\n"                                  /* 9 */
                             "endif\n"                                  /* 10: no if */
                             "frobnicate          word\n"               /* 11 */
                             "add::1              letters first\n"      /* 12: an address */
                             "if 203.0.113.0/24\n"                      /* 13: no endif */
                             "203.0.113.5         five\n",
                             NULL);
    expect(m, "10.0.0.1", NULL);
    expect(m, "192.0.2.1", NULL);
    expect(m, "198.51.100.9", NULL);
    expect(m, "8.8.8.8", NULL); /* the rule inside the bad if never applies */
    expect(m, "add::1", "letters first");
    expect(m, "203.0.113.5", "five");
    assert_int_equal(tf_log_count("line 1: \"10.0.0.1/8\" has address bits set past its prefix "
                                  "(the network is 10.0.0.0/8)"),
                     1);
    assert_int_equal(tf_log_count("line 2: \"10.0.0.0/33\" is not a network"), 1);
    assert_int_equal(tf_log_count("line 3: "), 1);
    assert_int_equal(tf_log_count("line 4: "), 1);
    assert_int_equal(tf_log_count("line 5: "), 1);
    assert_int_equal(tf_log_count("line 6: no result after the pattern"), 1);
    assert_int_equal(tf_log_count("line 7: text after the if pattern; the rules up to its endif are skipped"), 1);
    assert_int_equal(tf_log_count("line 10: endif without a matching if"), 1);
    assert_int_equal(tf_log_count("line 11: \"frobnicate\" is not a network/prefix or an address"), 1);
    assert_int_equal(tf_log_count("line 13: if without a matching endif"), 1);
    map_close(m);
}

static void test_continuation_and_comments(void **state)
{
    (void)state;
    struct map *m = table_of("cont",
                             "  # an indented comment\n"
                             "192.0.2.0/24   REJECT\n"
                             "  spam from here\n"
                             "\n"
                             "198.51.100.1\tOK\r\n",
                             NULL);
    expect(m, "192.0.2.9", "REJECT  spam from here");
    expect(m, "198.51.100.1", "OK");
    map_close(m);
}

static void test_reload_and_missing(void **state)
{
    (void)state;
    char *path = NULL;
    struct map *m = table_of("reload", "192.0.2.0/24 one\n", &path);
    uid_t uid;
    gid_t gid;
    assert_int_equal(map_source_owner(m, &uid, &gid), 1);
    assert_int_equal(uid, getuid());
    expect(m, "192.0.2.1", "one");
    write_text(path, "192.0.2.0/24 two\n");
    expect(m, "192.0.2.1", "two");
    assert_int_equal(unlink(path), 0);
    char *v = NULL;
    assert_int_equal(map_lookup(m, "192.0.2.1", &v), -1); /* a missing file is a temporary error */
    assert_null(v);
    write_text(path, "192.0.2.0/24 three\n");
    expect(m, "192.0.2.1", "three");
    map_close(m);
    free(path);
}

static void test_in_a_list(void **state)
{
    (void)state;
    char *path = xasprintf("%s/list.cidr", tmpdir);
    write_text(path, "192.0.2.0/24 from cidr\n");
    char *specs = xasprintf("cidr:%s, inline:{ 192.0.2=partial }", path);
    char *err = NULL;
    struct map_list *l = map_list_open(specs, 0, &err);
    assert_non_null(l);
    char *v = NULL;
    assert_int_equal(map_list_lookup(l, "192.0.2.5", &v), 1);
    assert_string_equal(v, "from cidr");
    free(v);
    /* a partial key (an access table's shorter network) skips cidr: */
    assert_int_equal(map_list_lookup_partial(l, "192.0.2", &v), 1);
    assert_string_equal(v, "partial");
    free(v);
    map_list_close(l);
    free(specs);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_blocks_and_first_match, setup_one),
        cmocka_unit_test_setup(test_prefix_edges, setup_one),
        cmocka_unit_test_setup(test_negation, setup_one),
        cmocka_unit_test_setup(test_if_endif, setup_one),
        cmocka_unit_test_setup(test_bad_lines, setup_one),
        cmocka_unit_test_setup(test_continuation_and_comments, setup_one),
        cmocka_unit_test_setup(test_reload_and_missing, setup_one),
        cmocka_unit_test_setup(test_in_a_list, setup_one),
    };
    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
