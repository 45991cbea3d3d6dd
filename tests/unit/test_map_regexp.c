/* Unit tests for src/maps/map_regexp.c through map.h: regexp: and pcre:
 * tables (matching, flags, $-substitution, negation, if/endif, bad lines,
 * reloading, bounds). Most tests run once per dialect; patterns avoid
 * syntax only one of them knows (\d, \.) unless the test is about that. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "maps/map.h"
#include "test_fixture.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/strbuf.h"

static char tmpdir[64];

static int setup_all(void **state)
{
    (void)state;
    if (tf_tmpdir_make(tmpdir, sizeof tmpdir, "test-map-regexp") != 0)
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

/* Writes the table text to a file named after the test and opens it as
 * type ("regexp" or "pcre"); *path_out (when not NULL) gets the path. */
static struct map *table_of(const char *type, const char *name, const char *text, char **path_out)
{
    char *path = xasprintf("%s/%s.%s", tmpdir, name, type);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
    char *spec = xasprintf("%s:%s", type, path);
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

static void expect_error(struct map *m, const char *key)
{
    char *v = (char *)0x1;
    assert_int_equal(map_lookup(m, key, &v), -1);
    assert_null(v);
}

/* Each check runs for both table types. */
#define BOTH(name)                                                                                 \
    static void test_##name##_regexp(void **state)                                                \
    {                                                                                              \
        (void)state;                                                                               \
        check_##name("regexp");                                                                    \
    }                                                                                              \
    static void test_##name##_pcre(void **state)                                                  \
    {                                                                                              \
        (void)state;                                                                               \
        check_##name("pcre");                                                                      \
    }

static void check_match_and_first_wins(const char *type)
{
    struct map *m = table_of(type, "first",
                             "# comment\n"
                             "\n"
                             "/^abc/     first\n"
                             "/abc/      second\n"
                             "/^[0-9]+$/ digits\n",
                             NULL);
    assert_true(map_is_pattern(m));
    expect(m, "abcd", "first");
    expect(m, "xabc", "second");
    expect(m, "12345", "digits");
    expect(m, "1234x", NULL);
    expect(m, "zzz", NULL);
    expect(m, "", NULL);
    map_close(m);
}
BOTH(match_and_first_wins)

static void check_case_flag(const char *type)
{
    struct map *m = table_of(type, "case",
                             "/^Hello$/   insensitive by default\n"
                             "/^World$/i  sensitive\n"
                             "/^(MiXeD)/  kept $1\n",
                             NULL);
    expect(m, "HELLO", "insensitive by default");
    expect(m, "hello", "insensitive by default");
    expect(m, "World", "sensitive");
    expect(m, "world", NULL);
    expect(m, "WORLD", NULL);
    /* The key is not folded: $1 gives it back as written. */
    expect(m, "mixed", "kept mixed");
    expect(m, "MIXED", "kept MIXED");
    map_close(m);
}
BOTH(case_flag)

static void check_substitution(const char *type)
{
    struct map *m = table_of(type, "subst",
                             "/^([^@]+)@([^@]+)$/   local=$1 domain=${2} again=$(1)-$2. cost $$5 $ "
                             "end\n"
                             "/^x(y)?(z)$/          [$1][$2]\n"
                             "/^(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)$/  $10-$9-${1}0\n",
                             NULL);
    expect(m, "joe@Example.org", "local=joe domain=Example.org again=joe-Example.org. cost $5 $ end");
    /* A group that took no part in the match is empty. */
    expect(m, "xz", "[][z]");
    expect(m, "xyz", "[y][z]");
    expect(m, "abcdefghij", "j-i-a0");
    map_close(m);
}
BOTH(substitution)

static void check_negation(const char *type)
{
    struct map *m = table_of(type, "negate",
                             "!/@/        no at sign\n"
                             "! /^b/      not b\n",
                             NULL);
    expect(m, "joe", "no at sign");
    expect(m, "a@b", "not b");
    expect(m, "b@c", NULL);
    map_close(m);
}
BOTH(negation)

static void check_nested_if(const char *type)
{
    struct map *m = table_of(type, "if",
                             "if /@example[.]com$/\n"
                             "if /^admin/\n"
                             "/./                 example admin\n"
                             "endif\n"
                             "/^([^@]*)@/         example user $1\n"
                             "endif\n"
                             "IF !/@/\n"
                             "/./                 bare\n"
                             "ENDIF\n"
                             "/./                 other\n",
                             NULL);
    expect(m, "admin@example.com", "example admin");
    expect(m, "joe@example.com", "example user joe");
    expect(m, "joe", "bare");
    expect(m, "admin@other.org", "other");
    assert_int_equal(tf_log_count("warning"), 0);
    map_close(m);
}
BOTH(nested_if)

static void check_unbalanced_if(const char *type)
{
    char *path;
    struct map *m = table_of(type, "unbalanced",
                             "endif\n"
                             "/^a/   a\n"
                             "if /^b/\n"
                             "/c$/   b and c\n",
                             &path);
    expect(m, "abc", "a");
    expect(m, "bxc", "b and c");
    expect(m, "xc", NULL);
    char *line1 = xasprintf("%s, line 1: endif without a matching if", path);
    char *line3 = xasprintf("%s, line 3: if without a matching endif", path);
    assert_int_equal(tf_log_count(line1), 1);
    assert_int_equal(tf_log_count(line3), 1);
    free(line1);
    free(line3);
    free(path);
    map_close(m);
}
BOTH(unbalanced_if)

/* Every bad line is logged with file and line and skipped; the good ones
 * around it still work. A bad if skips its whole block. */
static void check_bad_lines(const char *type)
{
    char *path;
    struct map *m = table_of(type, "bad",
                             "/unterminated     x\n"     /* 1 */
                             "/a[/              x\n"     /* 2 */
                             "/x/q              x\n"     /* 3 unknown flag */
                             "foo bar\n"                 /* 4 unknown keyword */
                             "/(x)/             $2\n"    /* 5 no group 2 */
                             "/(x)/             $name\n" /* 6 */
                             "!/(x)/            $1\n"    /* 7 negation has no groups */
                             "if /x/ junk\n"             /* 8 bad if: block skipped */
                             "/./               inside bad if\n"
                             "endif\n"
                             "abc/              x\n" /* 11 a letter cannot delimit */
                             "/(x)/             ${1\n"  /* 12 */
                             "/(x)/             $0\n"   /* 13 */
                             "/./               good\n", /* 14 */
                             &path);
    expect(m, "x", "good");
    expect(m, "abc", "good");
    static const int bad[] = {1, 2, 3, 5, 6, 7, 8, 12, 13};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *needle = xasprintf("%s, line %d: ", path, bad[i]);
        if (tf_log_count(needle) != 1)
            fail_msg("no warning for %s", needle);
        free(needle);
    }
    char *kw = xasprintf("%s, line 4: unknown keyword \"foo\"", path);
    char *kw11 = xasprintf("%s, line 11: unknown keyword \"abc\"", path);
    assert_int_equal(tf_log_count(kw), 1);
    assert_int_equal(tf_log_count(kw11), 1);
    assert_int_equal(tf_log_count("unknown flag 'q'"), 1);
    assert_int_equal(tf_log_count("the rules up to its endif are skipped"), 1);
    assert_int_equal(tf_log_count("line 14"), 0);
    free(kw);
    free(kw11);
    free(path);
    map_close(m);
}
BOTH(bad_lines)

static void check_reload(const char *type)
{
    char *path;
    struct map *m = table_of(type, "reload", "/^a/ one\n", &path);
    expect(m, "abc", "one");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("/^a/ two\n/^b/ three\n", f);
    assert_int_equal(fclose(f), 0);
    struct timespec ts[2] = {{1000000, 0}, {1000000, 0}};
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
    expect(m, "abc", "two");
    expect(m, "bcd", "three");
    /* A vanished file is a temporary error until it is back. */
    assert_int_equal(unlink(path), 0);
    expect_error(m, "abc");
    f = fopen(path, "wb");
    assert_non_null(f);
    fputs("/^a/ four\n", f);
    assert_int_equal(fclose(f), 0);
    expect(m, "abc", "four");
    free(path);
    map_close(m);
}
BOTH(reload)

static void check_delimiters_and_continuation(const char *type)
{
    struct map *m = table_of(type, "delim",
                             "|^a/b|     slash inside\n"
                             "/^c\\/d/   escaped slash\n"
                             "%^e%       percent\n"
                             "/^long/\n"
                             "   continued result\n",
                             NULL);
    expect(m, "a/b", "slash inside");
    expect(m, "c/d", "escaped slash");
    expect(m, "e", "percent");
    /* The continuation's leading blanks separate it from the pattern. */
    expect(m, "longer", "continued result");
    map_close(m);
}
BOTH(delimiters_and_continuation)

/* A result longer than MAP_MAX_LINE after substitution is a temporary error. */
static void check_result_too_long(const char *type)
{
    struct map *m = table_of(type, "long", "/^(.*)$/ $1$1\n", NULL);
    size_t n = MAP_MAX_LINE / 2 + 10;
    char *key = xmalloc(n + 1);
    memset(key, 'k', n);
    key[n] = '\0';
    expect_error(m, key);
    assert_int_equal(tf_log_count("is longer than 65536 bytes"), 1);
    key[100] = '\0';
    char *v = NULL;
    assert_int_equal(map_lookup(m, key, &v), 1);
    assert_int_equal(strlen(v), 200);
    free(v);
    free(key);
    map_close(m);
}
BOTH(result_too_long)

static void test_regexp_flags(void **state)
{
    (void)state;
    char *path;
    struct map *m = table_of("regexp", "flags",
                             "/^a.b$/s    dotall is pcre's\n"    /* 1 refused */
                             "/^a+b$/x    basic\n"               /* 2 x toggles ERE off */
                             "/^x\\(y\\)z$/x  basic group $1\n" /* 3 */
                             "/^c$/m      multiline\n"           /* 4 */
                             "/^d$/      not multiline\n",
                             &path);
    char *line1 = xasprintf("%s, line 1: unknown flag 's'", path);
    assert_int_equal(tf_log_count(line1), 1);
    free(line1);
    /* In a basic expression '+' is an ordinary character. */
    expect(m, "a+b", "basic");
    expect(m, "aab", NULL);
    expect(m, "xyz", "basic group y");
    expect(m, "first\nc\nlast", "multiline");
    expect(m, "first\nd\nlast", NULL);
    free(path);
    map_close(m);
}

static void test_pcre_flags(void **state)
{
    (void)state;
    char *path;
    struct map *m = table_of("pcre", "flags",
                             "/^a.b$/s        dotall\n"
                             "/^c$/m          multiline\n"
                             "/^ d e f $/x    extended\n"
                             "/(g+?)/U        ungreedy $1\n"
                             "/h/A            anchored\n"
                             "/^j$/E          dollar end only\n"
                             "/^k$/X          extra is a no-op\n"
                             "/^\\d+$/        digits\n"
                             "/^l$/Z          unknown\n",
                             &path);
    expect(m, "a\nb", "dotall");
    expect(m, "first\nc\nlast", "multiline");
    expect(m, "def", "extended");
    /* U makes +? greedy. */
    expect(m, "gggg", "ungreedy gggg");
    expect(m, "hx", "anchored");
    expect(m, "xh", NULL);
    expect(m, "j", "dollar end only");
    expect(m, "j\n", NULL);
    expect(m, "K", "extra is a no-op");
    expect(m, "123", "digits");
    char *line9 = xasprintf("%s, line 9: unknown flag 'Z'", path);
    assert_int_equal(tf_log_count(line9), 1);
    free(line9);
    free(path);
    map_close(m);
}

/* Nested quantifiers on a near-miss take exponential time without a bound:
 * the match limit turns that into a prompt temporary error. */
static void test_pcre_backtracking_bounded(void **state)
{
    (void)state;
    struct map *m = table_of("pcre", "backtrack",
                             "/^(a+)+$/   catastrophic\n"
                             "/./         after\n",
                             NULL);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    expect_error(m, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(secs < 5.0);
    assert_int_equal(tf_log_count("match limit exceeded; temporary error"), 1);
    expect(m, "aaaa", "catastrophic");
    map_close(m);
}

static void test_pcre_syntax_posix_lacks(void **state)
{
    (void)state;
    struct map *m = table_of("pcre", "perlish",
                             "/^(?<user>[^@]+)@(?:mail\\.)?example\\.com$/  user $1\n"
                             "/^(\\w+)\\s(\\w+)$/  words $2 $1\n",
                             NULL);
    expect(m, "joe@mail.example.com", "user joe");
    expect(m, "joe@example.com", "user joe");
    expect(m, "joe@exampleXcom", NULL);
    expect(m, "hello world", "words world hello");
    map_close(m);
}

static void test_missing_file_and_relative_path(void **state)
{
    (void)state;
    char *spec = xasprintf("pcre:%s/no-such-file", tmpdir);
    struct map *m = map_open(spec, 0, NULL);
    assert_non_null(m);
    expect_error(m, "x");
    map_close(m);
    free(spec);
    char *err = NULL;
    assert_null(map_open("regexp:relative", 0, &err));
    assert_non_null(strstr(err, "absolute path"));
    free(err);
    m = map_open("inline:{a=b}", 0, NULL);
    assert_false(map_is_pattern(m));
    map_close(m);
}

#define BOTH_TESTS(name)                                                                           \
    cmocka_unit_test_setup(test_##name##_regexp, setup_one),                                      \
        cmocka_unit_test_setup(test_##name##_pcre, setup_one)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH_TESTS(match_and_first_wins),
        BOTH_TESTS(case_flag),
        BOTH_TESTS(substitution),
        BOTH_TESTS(negation),
        BOTH_TESTS(nested_if),
        BOTH_TESTS(unbalanced_if),
        BOTH_TESTS(bad_lines),
        BOTH_TESTS(reload),
        BOTH_TESTS(delimiters_and_continuation),
        BOTH_TESTS(result_too_long),
        cmocka_unit_test_setup(test_regexp_flags, setup_one),
        cmocka_unit_test_setup(test_pcre_flags, setup_one),
        cmocka_unit_test_setup(test_pcre_backtracking_bounded, setup_one),
        cmocka_unit_test_setup(test_pcre_syntax_posix_lacks, setup_one),
        cmocka_unit_test_setup(test_missing_file_and_relative_path, setup_one),
    };
    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
