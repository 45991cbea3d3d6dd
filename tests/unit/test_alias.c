/* Unit tests for src/maps/alias.c: value parsing and recursive expansion
 * over aliases(5)-format tables. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_fixture.h"
#include "maps/alias.h"
#include "maps/map.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

static char tmpdir[64];

static int setup_all(void **state)
{
    (void)state;
    if (tf_tmpdir_make(tmpdir, sizeof tmpdir, "test-aliases") != 0)
        return -1;
    log_set_stderr(0);
    map_set_check_interval(0);
    return 0;
}

static int teardown_all(void **state)
{
    (void)state;
    log_set_stderr(1);
    return tf_tmpdir_remove(tmpdir);
}

static char *write_aliases(const char *name, const char *data)
{
    char *path = xasprintf("%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(data, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    return path;
}

static struct map_list *open_aliases(const char *name, const char *data)
{
    char *path = write_aliases(name, data);
    char *spec = xasprintf("hash:%s", path);
    char *err = NULL;
    struct map_list *l = map_list_open(spec, MAP_ALIAS_FORMAT, &err);
    assert_non_null(l);
    assert_null(err);
    free(spec);
    free(path);
    return l;
}

/* "type:value" lines, one per target, for compact comparisons. */
static char *render(const struct alias_result *r)
{
    static const char code[] = {'U', 'A', 'C', 'F', 'I'};
    struct strbuf sb = STRBUF_INIT;
    for (size_t i = 0; i < r->n; i++)
        strbuf_printf(&sb, "%c:%s\n", code[r->t[i].type], r->t[i].value);
    if (!sb.buf)
        return xstrdup("");
    return strbuf_detach(&sb);
}

static void expect_expansion(struct map_list *l, const char *name, const char *expected)
{
    struct alias_result r;
    int rc = alias_expand(l, name, &r);
    if (rc != 0)
        fail_msg("alias_expand(%s) = %d (%s)", name, rc, r.error ? r.error : "");
    assert_null(r.error);
    char *got = render(&r);
    assert_string_equal(got, expected);
    free(got);
    alias_result_free(&r);
    assert_null(r.t);
    assert_int_equal(r.n, 0);
}

static void expect_expand_error(struct map_list *l, const char *name, int temporary,
                                const char *msg_part)
{
    struct alias_result r;
    assert_int_equal(alias_expand(l, name, &r), -1);
    assert_non_null(r.error);
    assert_int_equal(r.temporary, temporary);
    assert_int_equal(r.n, 0);
    assert_null(r.t);
    if (!strstr(r.error, msg_part))
        fail_msg("error \"%s\" lacks \"%s\"", r.error, msg_part);
    alias_result_free(&r);
}

static void expect_parse(const char *value, const char *expected)
{
    struct alias_result r;
    int rc = alias_parse_value(value, &r);
    if (rc != 0)
        fail_msg("alias_parse_value(%s): %s", value, r.error ? r.error : "");
    char *got = render(&r);
    assert_string_equal(got, expected);
    free(got);
    alias_result_free(&r);
}

static void expect_parse_error(const char *value, const char *msg_part)
{
    struct alias_result r;
    assert_int_equal(alias_parse_value(value, &r), -1);
    assert_non_null(r.error);
    assert_int_equal(r.temporary, 0);
    assert_int_equal(r.n, 0);
    if (!strstr(r.error, msg_part))
        fail_msg("error \"%s\" lacks \"%s\"", r.error, msg_part);
    alias_result_free(&r);
}

/* ---------- alias_parse_value ---------- */

static void test_parse_kinds(void **state)
{
    (void)state;
    expect_parse("root, bob@x.test, \"|/bin/cmd arg\", /tmp/file, :include:/etc/list",
                 "U:root\nA:bob@x.test\nC:/bin/cmd arg\nF:/tmp/file\nI:/etc/list\n");
    expect_parse("Root", "U:root\n");
    expect_parse("Bob@Other.Test", "A:Bob@Other.Test\n"); /* addresses kept as written */
    expect_parse(":INCLUDE: /etc/list ", "I:/etc/list\n");
    expect_parse("| /usr/bin/procmail", "C:/usr/bin/procmail\n");
}

static void test_parse_quoting(void **state)
{
    (void)state;
    expect_parse("\"|cmd with, comma\", bob", "C:cmd with, comma\nU:bob\n");
    expect_parse("\"/var/log/with space\"", "F:/var/log/with space\n");
    expect_parse("\"a \\\"q\\\" \\\\ b\"", "U:a \"q\" \\ b\n");
    expect_parse("\"john doe\"@x.test", "A:\"john doe\"@x.test\n");
    expect_parse("\"Bob\"", "U:bob\n");
    expect_parse("\":include:/etc/l\"", "I:/etc/l\n");
    expect_parse("\"\", x", "U:x\n");
}

static void test_parse_unquoted_spaces(void **state)
{
    (void)state;
    /* Commands and files keep their spaces; names split at whitespace. */
    expect_parse("|/usr/bin/procmail -a x, root bob\tcarol",
                 "C:/usr/bin/procmail -a x\nU:root\nU:bob\nU:carol\n");
    expect_parse("/tmp/a b", "F:/tmp/a b\n");
    expect_parse("bob \"|cmd x\"", "U:bob\nC:cmd x\n");
}

static void test_parse_empty_items_and_dups(void **state)
{
    (void)state;
    expect_parse("a,,b,", "U:a\nU:b\n");
    expect_parse("", "");
    expect_parse(" , ,\t", "");
    expect_parse("a, a", "U:a\nU:a\n"); /* parse keeps duplicates */
    expect_parse("\\bob", "U:bob\n");
}

static void test_parse_errors(void **state)
{
    (void)state;
    expect_parse_error("bob, \"unterminated", "unterminated quoted string");
    expect_parse_error("|", "empty command");
    expect_parse_error("\"|  \"", "empty command");
    expect_parse_error(":include:", "absolute file name");
    expect_parse_error(":include:etc/list", "absolute file name");
    expect_parse_error("bob\001", "control character");
    expect_parse_error("\"|cmd\nrm\"", "control character");
    expect_parse_error("\\", "empty name");
    expect_parse("\"|cmd\targ\"", "C:cmd\targ\n"); /* a tab is not a control character here */
}

static void test_type_names(void **state)
{
    (void)state;
    assert_string_equal(alias_target_type_name(ALIAS_LOCAL_USER), "local user");
    assert_string_equal(alias_target_type_name(ALIAS_ADDRESS), "address");
    assert_string_equal(alias_target_type_name(ALIAS_COMMAND), "command");
    assert_string_equal(alias_target_type_name(ALIAS_FILE), "file");
    assert_string_equal(alias_target_type_name(ALIAS_INCLUDE), "include");
}

/* ---------- alias_expand ---------- */

static const char etc_aliases[] =
    "# a typical /etc/aliases\n"
    "postmaster: root\n"
    "mailer-daemon: postmaster\n"
    "abuse: postmaster\n"
    "root: bob\n"
    "bob: bob, bob-archive@other.test\n"
    "chain1: chain2\n"
    "chain2: chain3\n"
    "chain3: Carol\n"
    "loopa: loopb\n"
    "loopb: loopa\n"
    "loop3a: loop3b, x\n"
    "loop3b: loop3c\n"
    "loop3c: loop3a\n"
    "self: self\n"
    "mixed: \"|/usr/bin/procmail -a x\", /var/log/mail.x,\n"
    "    :include:/etc/tern/list, dave@Example.test, \\root\n"
    "dups: carol, CAROL, x@a.test, x@A.TEST, X@a.test, carol\n"
    "diamond: d1, d2\n"
    "d1: d3\n"
    "d2: d3, erin\n"
    "d3: frank\n"
    "team: postmaster, abuse, bob\n"
    "empty: , ,\n"
    "broken: ok, \"unterminated\n"
    "\"john doe\": jd\n";

static void test_expand_basic(void **state)
{
    (void)state;
    struct map_list *l = open_aliases("aliases", etc_aliases);
    expect_expansion(l, "postmaster", "U:bob\nA:bob-archive@other.test\n");
    expect_expansion(l, "PostMaster", "U:bob\nA:bob-archive@other.test\n");
    expect_expansion(l, "mailer-daemon", "U:bob\nA:bob-archive@other.test\n");
    expect_expansion(l, "chain1", "U:carol\n");
    expect_expansion(l, "self", "U:self\n");
    expect_expansion(l, "John Doe", "U:jd\n");
    map_list_close(l);
}

static void test_expand_not_alias(void **state)
{
    (void)state;
    struct map_list *l = open_aliases("aliases", etc_aliases);
    struct alias_result r;
    assert_int_equal(alias_expand(l, "nobody-here", &r), 1);
    assert_int_equal(r.n, 0);
    assert_null(r.error);
    alias_result_free(&r);
    assert_int_equal(alias_expand(l, "", &r), 1);
    alias_result_free(&r);
    map_list_close(l);
}

static void test_expand_target_kinds(void **state)
{
    (void)state;
    struct map_list *l = open_aliases("aliases", etc_aliases);
    /* \root is the user root itself, not root's alias (bob). */
    expect_expansion(l, "mixed",
                     "C:/usr/bin/procmail -a x\nF:/var/log/mail.x\nI:/etc/tern/list\n"
                     "A:dave@Example.test\nU:root\n");
    map_list_close(l);
}

static void test_expand_duplicates_removed(void **state)
{
    (void)state;
    struct map_list *l = open_aliases("aliases", etc_aliases);
    /* Domain compared without case, local part with it. */
    expect_expansion(l, "dups", "U:carol\nA:x@a.test\nA:X@a.test\n");
    expect_expansion(l, "diamond", "U:frank\nU:erin\n");
    expect_expansion(l, "team", "U:bob\nA:bob-archive@other.test\n");
    map_list_close(l);
}

static void test_expand_loops(void **state)
{
    (void)state;
    struct map_list *l = open_aliases("aliases", etc_aliases);
    expect_expand_error(l, "loopa", 0, "alias loop: loopa -> loopb -> loopa");
    expect_expand_error(l, "loopb", 0, "alias loop: loopb -> loopa -> loopb");
    expect_expand_error(l, "loop3a", 0, "alias loop: loop3a -> loop3b -> loop3c -> loop3a");
    map_list_close(l);
}

static void test_expand_value_errors(void **state)
{
    (void)state;
    struct map_list *l = open_aliases("aliases", etc_aliases);
    expect_expand_error(l, "empty", 0, "alias empty expands to no recipients");
    expect_expand_error(l, "broken", 0, "alias broken: unterminated quoted string");
    map_list_close(l);

    /* An error in a nested alias fails the whole expansion. */
    l = open_aliases("nested-bad", "top: a, sub\nsub: |\n");
    expect_expand_error(l, "top", 0, "alias sub: empty command");
    map_list_close(l);
}

static void test_expand_table_failure_is_temporary(void **state)
{
    (void)state;
    char *missing = xasprintf("%s/no-such-aliases", tmpdir);
    char *spec = xasprintf("hash:%s", missing);
    struct map_list *l = map_list_open(spec, MAP_ALIAS_FORMAT, NULL);
    assert_non_null(l);
    expect_expand_error(l, "postmaster", 1, "try again later");
    map_list_close(l);
    free(spec);

    /* The first lookup succeeds, a nested one hits the failing table. */
    spec = xasprintf("inline:{ top=sub }, hash:%s", missing);
    l = map_list_open(spec, MAP_ALIAS_FORMAT, NULL);
    assert_non_null(l);
    expect_expand_error(l, "top", 1, "alias lookup of sub failed");
    map_list_close(l);
    free(spec);
    free(missing);
}

static void test_expand_across_list(void **state)
{
    (void)state;
    char *path = write_aliases("list-a", "postmaster: root\nroot: local-root\n");
    char *spec = xasprintf("hash:%s inline:{ {root = ignored}, local-root=ops@example.test }",
                           path);
    struct map_list *l = map_list_open(spec, MAP_ALIAS_FORMAT, NULL);
    assert_non_null(l);
    expect_expansion(l, "postmaster", "A:ops@example.test\n");
    map_list_close(l);
    free(spec);
    free(path);
}

static void test_expand_reload(void **state)
{
    (void)state;
    struct map_list *l = open_aliases("reload", "postmaster: root\n");
    expect_expansion(l, "postmaster", "U:root\n");
    free(write_aliases("reload", "postmaster: alice, bob\n"));
    expect_expansion(l, "postmaster", "U:alice\nU:bob\n");
    map_list_close(l);
}

static struct map_list *chain_of(size_t links)
{
    struct strbuf sb = STRBUF_INIT;
    for (size_t i = 0; i < links; i++)
        strbuf_printf(&sb, "c%zu: c%zu\n", i, i + 1);
    struct map_list *l = open_aliases("chain", strbuf_str(&sb));
    strbuf_free(&sb);
    return l;
}

static void test_expand_depth_limit(void **state)
{
    (void)state;
    /* 100 aliases deep: c0 .. c99 are aliases, c100 is a user. */
    struct map_list *l = chain_of(ALIAS_MAX_DEPTH);
    expect_expansion(l, "c0", "U:c100\n");
    map_list_close(l);

    l = chain_of(ALIAS_MAX_DEPTH + 1);
    expect_expand_error(l, "c0", 0, "nested more than 100 deep");
    expect_expansion(l, "c1", "U:c101\n");
    map_list_close(l);
}

static struct map_list *fanout_of(size_t users, const char *extra)
{
    struct strbuf sb = STRBUF_INIT;
    strbuf_puts(&sb, "big:");
    for (size_t i = 0; i < users; i++)
        strbuf_printf(&sb, "%s u%zu", i ? "," : "", i);
    strbuf_puts(&sb, "\n");
    strbuf_puts(&sb, extra);
    struct map_list *l = open_aliases("big", strbuf_str(&sb));
    strbuf_free(&sb);
    return l;
}

static void test_expand_target_cap(void **state)
{
    (void)state;
    struct map_list *l = fanout_of(ALIAS_MAX_TARGETS, "bigger: big, one-more\nsame: big, u0\n");
    struct alias_result r;
    assert_int_equal(alias_expand(l, "big", &r), 0);
    assert_int_equal(r.n, ALIAS_MAX_TARGETS);
    assert_string_equal(r.t[0].value, "u0");
    assert_string_equal(r.t[999].value, "u999");
    alias_result_free(&r);
    /* Duplicates do not count against the cap. */
    assert_int_equal(alias_expand(l, "same", &r), 0);
    assert_int_equal(r.n, ALIAS_MAX_TARGETS);
    alias_result_free(&r);
    expect_expand_error(l, "bigger", 0, "expands to more than 1000 targets");
    map_list_close(l);

    l = fanout_of(ALIAS_MAX_TARGETS + 1, "");
    expect_expand_error(l, "big", 0, "alias big expands to more than 1000 targets");
    map_list_close(l);
}

static void test_expand_item_cap(void **state)
{
    (void)state;
    /* 25000 copies of one name: one target, but bounded work. */
    struct strbuf sb = STRBUF_INIT;
    strbuf_puts(&sb, "many: x");
    for (int i = 0; i < 25000; i++)
        strbuf_puts(&sb, ",x");
    strbuf_puts(&sb, "\nfew: x,x,x\n");
    struct map_list *l = open_aliases("many", strbuf_str(&sb));
    strbuf_free(&sb);
    expect_expand_error(l, "many", 0, "more than 20000 items");
    expect_expansion(l, "few", "U:x\n");
    map_list_close(l);
}

static void test_expand_exponential_dag_is_fast(void **state)
{
    (void)state;
    /* Each level names both nodes of the next: 2^60 paths, 120 names. */
    struct strbuf sb = STRBUF_INIT;
    for (int i = 0; i < 60; i++)
        strbuf_printf(&sb, "a%d: a%d, b%d\nb%d: a%d, b%d\n", i, i + 1, i + 1, i, i + 1, i + 1);
    strbuf_puts(&sb, "a60: leaf1\nb60: leaf2\n");
    struct map_list *l = open_aliases("dag", strbuf_str(&sb));
    strbuf_free(&sb);
    /* a0..a59 nest 61 deep then: within the depth limit. */
    expect_expansion(l, "a0", "U:leaf1\nU:leaf2\n");
    map_list_close(l);
}

static void test_expand_expansion_cap(void **state)
{
    (void)state;
    /* 1001 distinct aliases reached from one name. */
    struct strbuf sb = STRBUF_INIT;
    strbuf_puts(&sb, "root:");
    for (int i = 0; i < ALIAS_MAX_EXPANSIONS; i++)
        strbuf_printf(&sb, "%s g%d", i ? "," : "", i);
    strbuf_puts(&sb, "\n");
    for (int i = 0; i < ALIAS_MAX_EXPANSIONS; i++)
        strbuf_printf(&sb, "g%d: shared\n", i);
    struct map_list *l = open_aliases("groups", strbuf_str(&sb));
    strbuf_free(&sb);
    expect_expand_error(l, "root", 0, "expands more than 1000 aliases");
    expect_expansion(l, "g7", "U:shared\n");
    map_list_close(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_kinds),
        cmocka_unit_test(test_parse_quoting),
        cmocka_unit_test(test_parse_unquoted_spaces),
        cmocka_unit_test(test_parse_empty_items_and_dups),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_expand_basic),
        cmocka_unit_test(test_expand_not_alias),
        cmocka_unit_test(test_expand_target_kinds),
        cmocka_unit_test(test_expand_duplicates_removed),
        cmocka_unit_test(test_expand_loops),
        cmocka_unit_test(test_expand_value_errors),
        cmocka_unit_test(test_expand_table_failure_is_temporary),
        cmocka_unit_test(test_expand_across_list),
        cmocka_unit_test(test_expand_reload),
        cmocka_unit_test(test_expand_depth_limit),
        cmocka_unit_test(test_expand_target_cap),
        cmocka_unit_test(test_expand_item_cap),
        cmocka_unit_test(test_expand_exponential_dag_is_fast),
        cmocka_unit_test(test_expand_expansion_cap),
    };
    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
