/* Unit tests for src/maps/map.c: table types, the text source format,
 * reloading, error states and map lists. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "maps/map.h"
#include "test_fixture.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

static char tmpdir[64];

static int setup_all(void **state)
{
    (void)state;
    if (tf_tmpdir_make(tmpdir, sizeof tmpdir, "test-maps") != 0)
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

/* Each test starts with an empty log and the default-free check interval 0. */
static int setup_one(void **state)
{
    (void)state;
    map_set_check_interval(0);
    return tf_log_clear();
}

static char *path_of(const char *name)
{
    return xasprintf("%s/%s", tmpdir, name);
}

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void write_str(const char *path, const char *data)
{
    write_file(path, data, strlen(data));
}

/* Sets mtime to a fixed distinct value so a rewrite within the same clock
 * tick is still seen as a change, without sleeping. */
static void set_mtime(const char *path, time_t sec)
{
    struct timespec ts[2] = {{sec, 0}, {sec, 0}};
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

/* Looks key up and checks the outcome; expected NULL means "not found". */
static void expect(struct map *m, const char *key, const char *expected)
{
    char *v = (char *)0x1;
    int rc = map_lookup(m, key, &v);
    if (expected) {
        assert_int_equal(rc, 1);
        assert_string_equal(v, expected);
        free(v);
    } else {
        assert_int_equal(rc, 0);
        assert_null(v);
    }
}

static void expect_error(struct map *m, const char *key)
{
    char *v = (char *)0x1;
    assert_int_equal(map_lookup(m, key, &v), -1);
    assert_null(v);
}

static struct map *open_ok(const char *spec, unsigned flags)
{
    char *err = NULL;
    struct map *m = map_open(spec, flags, &err);
    if (!m)
        fail_msg("map_open(%s): %s", spec, err ? err : "(no message)");
    assert_null(err);
    return m;
}

static void open_fails(const char *spec, const char *msg_part)
{
    char *err = NULL;
    struct map *m = map_open(spec, 0, &err);
    assert_null(m);
    assert_non_null(err);
    if (!strstr(err, msg_part))
        fail_msg("map_open(%s) error \"%s\" lacks \"%s\"", spec, err, msg_part);
    free(err);
    /* A NULL err pointer is allowed and must not leak. */
    assert_null(map_open(spec, 0, NULL));
}

static struct map *open_file_map(const char *type, const char *path, unsigned flags)
{
    char *spec = xasprintf("%s:%s", type, path);
    struct map *m = open_ok(spec, flags);
    free(spec);
    return m;
}

/* ---------- text source format ---------- */

static void test_hash_basic(void **state)
{
    (void)state;
    char *p = path_of("basic");
    write_str(p, "Key1 Value One\nkey2\tv2\nuser@Example.COM  OK  \n");
    struct map *m = open_file_map("hash", p, 0);
    expect(m, "key1", "Value One"); /* value case kept, trailing blanks gone */
    expect(m, "KEY1", "Value One"); /* lookup key folded */
    expect(m, "key2", "v2");
    expect(m, "user@example.com", "OK");
    expect(m, "key", NULL);
    expect(m, "key1 ", NULL);
    expect(m, "", NULL);
    map_close(m);
    assert_int_equal(tf_log_count("warning"), 0);
    free(p);
}

static void test_all_file_types_read_text(void **state)
{
    (void)state;
    char *p = path_of("types");
    write_str(p, "a 1\n");
    const char *types[] = {"hash", "btree", "lmdb", "texthash", "HASH", "TextHash"};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        struct map *m = open_file_map(types[i], p, 0);
        expect(m, "a", "1");
        expect(m, "b", NULL);
        map_close(m);
    }
    free(p);
}

static void test_comments_blank_and_continuation(void **state)
{
    (void)state;
    char *p = path_of("cont");
    write_str(p, "# a comment\n"
                 "\n"
                 "   \t\n"
                 "   # an indented comment is still a comment\n"
                 "key a,\n"
                 "  b\n"
                 "\tc\n"
                 "next x\n"
                 "# comment between continuation lines\n"
                 "  y\n"
                 "last z # not a comment here\n"
                 "#hidden 1\n");
    struct map *m = open_file_map("hash", p, 0);
    expect(m, "key", "a,  b\tc"); /* newline dropped, whitespace kept */
    expect(m, "next", "x  y");
    expect(m, "last", "z # not a comment here");
    expect(m, "#hidden", NULL);
    expect(m, "a", NULL);
    map_close(m);
    assert_int_equal(tf_log_count("warning"), 0);
    free(p);
}

static void test_continuation_without_entry(void **state)
{
    (void)state;
    char *p = path_of("cont0");
    write_str(p, "  orphan value\nk v\n");
    struct map *m = open_file_map("hash", p, 0);
    expect(m, "orphan", NULL);
    expect(m, "k", "v");
    map_close(m);
    assert_int_equal(tf_log_count("line 1: continuation line without an entry"), 1);
    free(p);
}

static void test_duplicates_last_wins(void **state)
{
    (void)state;
    char *p = path_of("dup");
    write_str(p, "k one\nother x\nK two\n");
    struct map *m = open_file_map("hash", p, 0);
    expect(m, "k", "two");
    expect(m, "other", "x");
    map_close(m);
    assert_int_equal(tf_log_count("line 3: duplicate entry for \"k\""), 1);
    free(p);
}

static void test_missing_value_and_crlf(void **state)
{
    (void)state;
    char *p = path_of("crlf");
    write_str(p, "lonely\r\nk v\r\nk2 a\r\n  b\r\n");
    struct map *m = open_file_map("hash", p, 0);
    expect(m, "lonely", NULL);
    expect(m, "k", "v");
    expect(m, "k2", "a  b");
    map_close(m);
    assert_int_equal(tf_log_count("line 1: expected format: key whitespace value"), 1);
    free(p);
}

static void test_nul_byte_line_skipped(void **state)
{
    (void)state;
    char *p = path_of("nul");
    static const char data[] = "bad va\0lue\ngood 1\n";
    write_file(p, data, sizeof data - 1);
    struct map *m = open_file_map("hash", p, 0);
    expect(m, "bad", NULL);
    expect(m, "good", "1");
    map_close(m);
    assert_int_equal(tf_log_count("line 1: line contains a NUL byte"), 1);
    free(p);
}

static void test_long_lines(void **state)
{
    (void)state;
    char *p = path_of("long");
    struct strbuf sb = STRBUF_INIT;
    /* Exactly MAP_MAX_LINE bytes: kept. */
    strbuf_puts(&sb, "edge ");
    for (size_t i = 5; i < MAP_MAX_LINE; i++)
        strbuf_putc(&sb, 'e');
    strbuf_putc(&sb, '\n');
    /* One byte more: skipped. */
    strbuf_puts(&sb, "big ");
    for (size_t i = 4; i < MAP_MAX_LINE + 1; i++)
        strbuf_putc(&sb, 'b');
    strbuf_putc(&sb, '\n');
    strbuf_puts(&sb, "after 1\n");
    /* Too long only once its continuation lines are added. */
    strbuf_puts(&sb, "grown start\n");
    for (int i = 0; i < 3; i++) {
        strbuf_putc(&sb, ' ');
        for (int j = 0; j < 30000; j++)
            strbuf_putc(&sb, 'g');
        strbuf_putc(&sb, '\n');
    }
    strbuf_puts(&sb, "final 2\n");
    write_file(p, sb.buf, sb.len);
    strbuf_free(&sb);

    struct map *m = open_file_map("hash", p, 0);
    char *v = NULL;
    assert_int_equal(map_lookup(m, "edge", &v), 1);
    assert_int_equal(strlen(v), MAP_MAX_LINE - 5);
    free(v);
    expect(m, "big", NULL);
    expect(m, "after", "1");
    expect(m, "grown", NULL);
    expect(m, "final", "2");
    map_close(m);
    assert_int_equal(tf_log_count("line 2: line is longer than 65536 bytes; entry skipped"), 1);
    assert_int_equal(tf_log_count("line 4: line is longer than 65536 bytes; entry skipped"), 1);
    free(p);
}

static void test_no_trailing_newline_and_empty_file(void **state)
{
    (void)state;
    char *p = path_of("nonl");
    write_str(p, "a 1\nb 2");
    struct map *m = open_file_map("hash", p, 0);
    expect(m, "b", "2");
    map_close(m);

    write_str(p, "");
    m = open_file_map("hash", p, 0);
    expect(m, "a", NULL);
    map_close(m);
    free(p);
}

static void test_large_file(void **state)
{
    (void)state;
    char *p = path_of("large");
    struct strbuf sb = STRBUF_INIT;
    for (int i = 0; i < 100000; i++)
        strbuf_printf(&sb, "user%d@Example.test relay%d\n", i, i % 97);
    write_file(p, sb.buf, sb.len);
    strbuf_free(&sb);
    struct map *m = open_file_map("hash", p, 0);
    expect(m, "user0@example.test", "relay0");
    expect(m, "USER54321@EXAMPLE.TEST", "relay1"); /* 54321 % 97 == 1 */
    expect(m, "user99999@example.test", "relay89");
    expect(m, "user100000@example.test", NULL);
    map_close(m);
    free(p);
}

/* ---------- aliases(5) format ---------- */

static void test_alias_format(void **state)
{
    (void)state;
    char *p = path_of("aliases");
    write_str(p, "# /etc/aliases\n"
                 "Postmaster: root\n"
                 "root : bob, carol,\n"
                 "    dave\n"
                 "\"John Doe\": jd\n"
                 "\"esc\\\"aped\" : e\n"
                 "nocolon value\n"
                 "two words: x\n"
                 "\"unterminated: x\n"
                 "\"q\" x\n"
                 "empty:\n"
                 ": nameless\n"
                 "mail:x: colon in value\n");
    struct map *m = open_file_map("hash", p, MAP_ALIAS_FORMAT);
    expect(m, "postmaster", "root");
    expect(m, "root", "bob, carol,    dave");
    expect(m, "john doe", "jd");
    expect(m, "esc\"aped", "e");
    expect(m, "mail", "x: colon in value");
    expect(m, "nocolon", NULL);
    expect(m, "two words", NULL);
    expect(m, "two", NULL);
    expect(m, "empty", NULL);
    expect(m, "q", NULL);
    map_close(m);
    assert_int_equal(tf_log_count("line 7: need name:value pair"), 1);
    assert_int_equal(tf_log_count("line 8: name contains whitespace"), 1);
    assert_int_equal(tf_log_count("line 9: unterminated quoted name"), 1);
    assert_int_equal(tf_log_count("line 10: need name:value pair"), 1);
    assert_int_equal(tf_log_count("line 11: alias \"empty\" has no value"), 1);
    assert_int_equal(tf_log_count("line 12: empty alias name"), 1);

    /* The same file read as postmap format: first word is the key. */
    m = open_file_map("hash", p, 0);
    expect(m, "postmaster:", "root");
    expect(m, "postmaster", NULL);
    map_close(m);
    free(p);
}

/* ---------- reloading ---------- */

static void test_reload_on_mtime_change_same_size(void **state)
{
    (void)state;
    char *p = path_of("reload1");
    write_str(p, "k old\n");
    set_mtime(p, 1000000);
    struct map *m = open_file_map("hash", p, 0);
    expect(m, "k", "old");
    write_str(p, "k new\n"); /* same size */
    set_mtime(p, 1000001);
    expect(m, "k", "new");
    map_close(m);
    free(p);
}

static void test_reload_on_size_change_and_replace(void **state)
{
    (void)state;
    char *p = path_of("reload2");
    char *tmp = path_of("reload2.tmp");
    write_str(p, "k 1\n");
    struct map *m = open_file_map("hash", p, 0);
    expect(m, "k", "1");
    write_str(p, "k 22\nj 3\n");
    expect(m, "k", "22");
    expect(m, "j", "3");
    /* Atomic replace by rename: the inode changes. */
    write_str(tmp, "k 4\n");
    assert_int_equal(rename(tmp, p), 0);
    expect(m, "k", "4");
    expect(m, "j", NULL);
    map_close(m);
    free(tmp);
    free(p);
}

static void test_reload_throttled_by_interval(void **state)
{
    (void)state;
    char *p = path_of("reload3");
    write_str(p, "k before\n");
    map_set_check_interval(3600);
    struct map *m = open_file_map("hash", p, 0);
    expect(m, "k", "before");
    write_str(p, "k after, longer\n");
    expect(m, "k", "before"); /* not re-stat'ed within the interval */
    map_set_check_interval(0);
    expect(m, "k", "after, longer");
    map_close(m);
    free(p);
}

static void test_missing_file_then_recovery(void **state)
{
    (void)state;
    char *p = path_of("appears-later");
    unlink(p);
    struct map *m = open_file_map("hash", p, 0);
    expect_error(m, "k");
    expect_error(m, "k");
    expect_error(m, "other");
    assert_int_equal(tf_log_count("cannot open"), 1); /* logged once, not per lookup */
    assert_int_equal(tf_log_count("No such file or directory"), 1);

    write_str(p, "k v\n");
    expect(m, "k", "v");
    assert_int_equal(tf_log_count("is readable again"), 1);

    unlink(p);
    expect_error(m, "k"); /* never stale answers from a vanished file */
    assert_int_equal(tf_log_count("cannot open"), 2);
    write_str(p, "k v2\n");
    expect(m, "k", "v2");
    map_close(m);
    free(p);
}

static void test_unreadable_file(void **state)
{
    (void)state;
    char *p = path_of("eio");
    write_str(p, "k v\n");
    struct map *m = open_file_map("hash", p, 0);
    expect(m, "k", "v");
    write_str(p, "k changed\n");
    tf_fs_install();
    tf_fs_arm(TF_OPEN, (struct tf_fault){.nth = 1, .count = TF_ALWAYS, .err = EIO});
    expect_error(m, "k");
    expect_error(m, "k");
    tf_fs_uninstall();
    assert_int_equal(tf_log_count("cannot read"), 1);
    assert_int_equal(tf_log_count("Input/output error"), 1);
    expect(m, "k", "changed");
    map_close(m);

    /* A directory is not a table. */
    m = open_file_map("hash", tmpdir, 0);
    expect_error(m, "k");
    map_close(m);
    free(p);
}

static void test_open_failure_logged_at_open(void **state)
{
    (void)state;
    map_set_check_interval(3600);
    char *p = path_of("never");
    unlink(p);
    struct map *m = open_file_map("texthash", p, 0);
    assert_int_equal(tf_log_count("cannot open"), 1);
    expect_error(m, "k"); /* within the interval: still failing, not re-logged */
    assert_int_equal(tf_log_count("cannot open"), 1);
    map_close(m);
    free(p);
}

/* ---------- inline and static ---------- */

static void test_inline(void **state)
{
    (void)state;
    struct map *m = open_ok("inline:{ key1=value1, { key2 = value with spaces } }", 0);
    expect(m, "key1", "value1");
    expect(m, "KEY2", "value with spaces");
    expect(m, "key3", NULL);
    map_close(m);

    m = open_ok("inline:{a=1,b=2 c=3,,{ D = x, y },{e=}}", 0);
    expect(m, "a", "1");
    expect(m, "b", "2");
    expect(m, "c", "3");
    expect(m, "d", "x, y");
    expect(m, "e", "");
    map_close(m);

    m = open_ok("inline:{ { k = a{b}c }, j=x=y, a=1, A=2 }", 0);
    expect(m, "k", "a{b}c");
    expect(m, "j", "x=y");
    expect(m, "a", "2");
    map_close(m);
    assert_int_equal(tf_log_count("duplicate entry for \"a\""), 1);

    m = open_ok("  inline:{}  ", 0);
    expect(m, "a", NULL);
    assert_string_equal(map_spec(m), "inline:{}");
    map_close(m);
}

static void test_inline_errors(void **state)
{
    (void)state;
    open_fails("inline:a=b", "expected inline:{");
    open_fails("inline:{a=b", "expected inline:{");
    open_fails("inline:{a=b} junk", "text after the closing");
    open_fails("inline:{ a }", "entry \"a\" has no '='");
    open_fails("inline:{ =x }", "empty key");
    open_fails("inline:{ { = x } }", "empty key");
    open_fails("inline:{ {novalue} }", "has no '='");
}

static void test_static(void **state)
{
    (void)state;
    struct map *m = open_ok("static:some value", 0);
    expect(m, "anything", "some value");
    expect(m, "", "some value");
    map_close(m);

    m = open_ok("static:{ some value }", 0);
    expect(m, "x", "some value");
    map_close(m);

    m = open_ok("static:{a {nested} b}", 0);
    expect(m, "x", "a {nested} b");
    map_close(m);

    m = open_ok("static:", 0);
    expect(m, "x", "");
    map_close(m);

    open_fails("static:{abc", "expected static:{text}");
    open_fails("static:{abc} def", "expected static:{text}");
}

/* ---------- unix ---------- */

static void test_unix_tables(void **state)
{
    (void)state;
    struct map *m = open_ok("unix:passwd.byname", 0);
    char *v = NULL;
    assert_int_equal(map_lookup(m, "ROOT", &v), 1);
    assert_true(strncmp(v, "root:x:0:0:", 11) == 0);
    /* name:x:uid:gid:gecos:home:shell -- six colons */
    int colons = 0;
    for (char *q = v; *q; q++)
        colons += *q == ':';
    assert_true(colons >= 6);
    free(v);
    expect(m, "no-such-user-tern-test", NULL);
    map_close(m);

    m = open_ok("unix:group.byname", 0);
    assert_int_equal(map_lookup(m, "root", &v), 1);
    assert_true(strncmp(v, "root:x:0:", 9) == 0);
    free(v);
    expect(m, "no-such-group-tern-test", NULL);
    map_close(m);

    open_fails("unix:shadow.byname", "unknown unix table");
}

/* ---------- spec errors ---------- */

static void test_spec_errors(void **state)
{
    (void)state;
    open_fails("TCP:localhost:9999", "table type tcp is not supported yet");
    open_fails("pcre:relative/checks", "table pcre:relative/checks: the file name must be an absolute path");
    open_fails("cidr:relative/clients", "table cidr:relative/clients: the file name must be an absolute path");
    open_fails("mysql:/etc/x.cf", "table type mysql is not supported yet");
    open_fails("frobnicate:/x", "unknown table type \"frobnicate\"");
    open_fails("/etc/aliases", "is not of the form type:name");
    open_fails(":/etc/aliases", "is not of the form type:name");
    open_fails("ha sh:/etc/aliases", "is not of the form type:name");
    open_fails("", "is not of the form type:name");
    open_fails("hash:etc/aliases", "must be an absolute path");
    open_fails("hash:", "must be an absolute path");
}

static void test_map_spec(void **state)
{
    (void)state;
    struct map *m = open_ok("  static:{x}\n", 0);
    assert_string_equal(map_spec(m), "static:{x}");
    map_close(m);
    map_close(NULL);
}

/* ---------- lists ---------- */

static void test_list_order(void **state)
{
    (void)state;
    char *err = NULL;
    struct map_list *l =
        map_list_open("inline:{a=1}, inline:{ a=2, b=2 }\n\tinline:{ {c = 3, three} }", 0, &err);
    assert_non_null(l);
    assert_null(err);
    assert_int_equal(map_list_count(l), 3);
    assert_string_equal(map_spec(map_list_get(l, 1)), "inline:{ a=2, b=2 }");
    assert_null(map_list_get(l, 3));
    char *v = NULL;
    assert_int_equal(map_list_lookup(l, "A", &v), 1);
    assert_string_equal(v, "1");
    free(v);
    assert_int_equal(map_list_lookup(l, "b", &v), 1);
    assert_string_equal(v, "2");
    free(v);
    assert_int_equal(map_list_lookup(l, "c", &v), 1);
    assert_string_equal(v, "3, three");
    free(v);
    assert_int_equal(map_list_lookup(l, "d", &v), 0);
    assert_null(v);
    map_list_close(l);

    l = map_list_open(" , ", 0, &err);
    assert_non_null(l);
    assert_int_equal(map_list_count(l), 0);
    assert_int_equal(map_list_lookup(l, "a", &v), 0);
    map_list_close(l);
    map_list_close(NULL);
}

static void test_list_error_semantics(void **state)
{
    (void)state;
    char *missing = path_of("list-missing");
    unlink(missing);
    char *specs = xasprintf("inline:{hit=early}, hash:%s, static:{fallback}", missing);
    struct map_list *l = map_list_open(specs, 0, NULL);
    assert_non_null(l);
    char *v = NULL;
    /* A hit before the failing map is good. */
    assert_int_equal(map_list_lookup(l, "hit", &v), 1);
    assert_string_equal(v, "early");
    free(v);
    /* The failing map might have held the key: the later static answer is not trusted. */
    assert_int_equal(map_list_lookup(l, "other", &v), -1);
    assert_null(v);
    map_list_close(l);
    free(specs);

    specs = xasprintf("hash:%s inline:{k=v}", missing);
    l = map_list_open(specs, 0, NULL);
    assert_int_equal(map_list_lookup(l, "k", &v), -1);
    assert_null(v);
    write_str(missing, "k fromfile\n");
    assert_int_equal(map_list_lookup(l, "k", &v), 1);
    assert_string_equal(v, "fromfile");
    free(v);
    assert_int_equal(map_list_lookup(l, "zz", &v), 0);
    map_list_close(l);
    free(specs);
    free(missing);
}

static void test_list_open_errors(void **state)
{
    (void)state;
    char *err = NULL;
    assert_null(map_list_open("inline:{a=1}, ldap:/etc/x.cf", 0, &err));
    assert_non_null(err);
    assert_string_equal(err, "table type ldap is not supported yet");
    free(err);
    err = NULL;
    /* Unbraced spaces split a spec: "static:some value" is two specs. */
    assert_null(map_list_open("static:some value", 0, &err));
    assert_non_null(err);
    assert_non_null(strstr(err, "\"value\" is not of the form type:name"));
    free(err);
    assert_null(map_list_open("inline:{a=1", 0, &err));
    assert_non_null(strstr(err, "expected inline:{"));
    free(err);
    assert_null(map_list_open("inline:{a=1}, bogus", 0, NULL));
}

static void test_list_alias_flag_passed_on(void **state)
{
    (void)state;
    char *p = path_of("list-aliases");
    write_str(p, "root: bob\n");
    char *specs = xasprintf("hash:%s", p);
    struct map_list *l = map_list_open(specs, MAP_ALIAS_FORMAT, NULL);
    char *v = NULL;
    assert_int_equal(map_list_lookup(l, "root", &v), 1);
    assert_string_equal(v, "bob");
    free(v);
    map_list_close(l);
    free(specs);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_hash_basic, setup_one),
        cmocka_unit_test_setup(test_all_file_types_read_text, setup_one),
        cmocka_unit_test_setup(test_comments_blank_and_continuation, setup_one),
        cmocka_unit_test_setup(test_continuation_without_entry, setup_one),
        cmocka_unit_test_setup(test_duplicates_last_wins, setup_one),
        cmocka_unit_test_setup(test_missing_value_and_crlf, setup_one),
        cmocka_unit_test_setup(test_nul_byte_line_skipped, setup_one),
        cmocka_unit_test_setup(test_long_lines, setup_one),
        cmocka_unit_test_setup(test_no_trailing_newline_and_empty_file, setup_one),
        cmocka_unit_test_setup(test_large_file, setup_one),
        cmocka_unit_test_setup(test_alias_format, setup_one),
        cmocka_unit_test_setup(test_reload_on_mtime_change_same_size, setup_one),
        cmocka_unit_test_setup(test_reload_on_size_change_and_replace, setup_one),
        cmocka_unit_test_setup(test_reload_throttled_by_interval, setup_one),
        cmocka_unit_test_setup(test_missing_file_then_recovery, setup_one),
        cmocka_unit_test_setup(test_unreadable_file, setup_one),
        cmocka_unit_test_setup(test_open_failure_logged_at_open, setup_one),
        cmocka_unit_test_setup(test_inline, setup_one),
        cmocka_unit_test_setup(test_inline_errors, setup_one),
        cmocka_unit_test_setup(test_static, setup_one),
        cmocka_unit_test_setup(test_unix_tables, setup_one),
        cmocka_unit_test_setup(test_spec_errors, setup_one),
        cmocka_unit_test_setup(test_map_spec, setup_one),
        cmocka_unit_test_setup(test_list_order, setup_one),
        cmocka_unit_test_setup(test_list_error_semantics, setup_one),
        cmocka_unit_test_setup(test_list_open_errors, setup_one),
        cmocka_unit_test_setup(test_list_alias_flag_passed_on, setup_one),
    };
    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
