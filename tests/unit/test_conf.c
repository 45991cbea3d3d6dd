/* Unit tests for conf (main.cf reading, expansion, typed lookup) and the
 * parameter table. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conf/conf.h"
#include "conf/conf_params.h"
#include "util/mem.h"
#include "util/strbuf.h"

/* ---- helpers ---- */

static struct conf *conf_from(const char *text, int expect_errors)
{
    struct conf *c = conf_new();
    conf_test_set_hostname(c, "mail.example.com");
    struct strbuf diag = STRBUF_INIT;
    int rc = conf_load_string(c, text, "main.cf", &diag);
    if (rc != expect_errors)
        fprintf(stderr, "unexpected diag: %s\n", strbuf_str(&diag));
    assert_int_equal(rc, expect_errors);
    strbuf_free(&diag);
    return c;
}

static char *check_output(struct conf *c, int expect_errors)
{
    struct strbuf out = STRBUF_INIT;
    int errors = conf_check(c, &out);
    if (errors != expect_errors)
        fprintf(stderr, "conf_check said:\n%s", strbuf_str(&out));
    assert_int_equal(errors, expect_errors);
    return strbuf_detach(&out);
}

/* stderr capture, to see what log_warn wrote */
static int saved_stderr = -1;
static FILE *capture_file;

static void capture_start(void)
{
    fflush(stderr);
    capture_file = tmpfile();
    assert_non_null(capture_file);
    saved_stderr = dup(STDERR_FILENO);
    assert_true(saved_stderr >= 0);
    assert_true(dup2(fileno(capture_file), STDERR_FILENO) >= 0);
}

static char *capture_end(void)
{
    fflush(stderr);
    assert_true(dup2(saved_stderr, STDERR_FILENO) >= 0);
    close(saved_stderr);
    saved_stderr = -1;
    struct strbuf sb = STRBUF_INIT;
    rewind(capture_file);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, capture_file)) > 0)
        strbuf_append(&sb, buf, n);
    fclose(capture_file);
    capture_file = NULL;
    return strbuf_detach(&sb);
}

static size_t count_substr(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* ---- the table ---- */

static void test_table_sorted_and_findable(void **state)
{
    (void)state;
    assert_true(conf_params_count >= 54);
    /* the list of Postfix parameters without effect: sorted, none a row */
    assert_true(conf_ignored_count >= 1);
    for (size_t i = 0; i < conf_ignored_count; i++) {
        if (i > 0 && strcmp(conf_ignored[i - 1].name, conf_ignored[i].name) >= 0)
            fail_msg("ignored list not sorted at %s", conf_ignored[i].name);
        if (conf_param_find(conf_ignored[i].name))
            fail_msg("%s is both a row and on the ignored list", conf_ignored[i].name);
        assert_ptr_equal(conf_ignored_find(conf_ignored[i].name), &conf_ignored[i]);
        assert_true(conf_name_valid(conf_ignored[i].name));
        assert_true(strlen(conf_ignored[i].why) > 10);
        assert_null(strchr(conf_ignored[i].why, '\n'));
    }
    assert_null(conf_ignored_find("mail_name"));
    for (size_t i = 0; i < conf_params_count; i++) {
        if (i > 0 && strcmp(conf_params[i - 1].name, conf_params[i].name) >= 0)
            fail_msg("table not sorted at %s / %s", conf_params[i - 1].name, conf_params[i].name);
        assert_ptr_equal(conf_param_find(conf_params[i].name), &conf_params[i]);
        assert_true(conf_name_valid(conf_params[i].name));
    }
    assert_null(conf_param_find("no_such_parameter"));
    assert_null(conf_param_find(""));
    assert_null(conf_param_find("mail"));           /* prefix of mail_name */
    assert_null(conf_param_find("mail_name_x"));    /* extension of mail_name */
    assert_null(conf_param_find("a"));              /* before the first */
    assert_null(conf_param_find("zzz"));            /* after the last */
    assert_ptr_equal(conf_param_find_len("mail_namexyz", 9), conf_param_find("mail_name"));
    assert_null(conf_param_find_len("mail_name", 4));
}

/* Defaults must be usable as they are: numeric ones literal and valid or one
 * $reference to a row of the same kind, every $reference naming a parameter
 * of the table, every doc one line. */
static void test_table_defaults_sound(void **state)
{
    (void)state;
    for (size_t i = 0; i < conf_params_count; i++) {
        const struct conf_param *p = &conf_params[i];
        assert_non_null(p->def);
        assert_non_null(p->doc);
        assert_true(strlen(p->doc) > 10);
        assert_null(strchr(p->doc, '\n'));
        const struct conf_param *ref = conf_param_default_ref(p);
        if (p->type != CONF_STR && p->type != CONF_LIST && strchr(p->def, '$') && !ref)
            fail_msg("%s: numeric default with $ that is not one $reference", p->name);
        if (ref) {
            /* the getter hands on ref's value unchanged: it must suit p */
            if (ref->type != p->type || ref->unit != p->unit || ref->min < p->min ||
                ref->max > p->max || (p->choices && (!ref->choices || strcmp(ref->choices, p->choices))))
                fail_msg("%s: default $%s is of another kind or range", p->name, ref->name);
            /* and the chain of references ends */
            const struct conf_param *q = ref;
            for (size_t hops = 0; q; q = conf_param_default_ref(q))
                if (++hops > conf_params_count)
                    fail_msg("%s: circular default", p->name);
        }
        if (p->type == CONF_TIME)
            assert_non_null(strchr("smhdw", p->unit));
        /* a raw parameter's $names are its user's (forward_path's $home) */
        for (const char *d = (p->flags & CONF_F_RAW) ? NULL : strchr(p->def, '$'); d; d = strchr(d + 1, '$')) {
            const char *n = d + 1;
            if (*n == '{' || *n == '(')
                n++;
            size_t len = strspn(n, "abcdefghijklmnopqrstuvwxyz"
                                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
            if (!conf_param_find_len(n, len))
                fail_msg("%s: default refers to unknown $%.*s", p->name, (int)len, n);
        }
    }
    /* and a fresh configuration checks clean */
    struct conf *c = conf_new();
    char *out = check_output(c, 0);
    assert_string_equal(out, "");
    free(out);
    conf_free(c);
}

static void test_defaults_from_brief(void **state)
{
    (void)state;
    struct conf *c = conf_new();
    conf_test_set_hostname(c, "mail.example.com");
    assert_int_equal(conf_int(c, "message_size_limit"), 10240000);
    assert_int_equal(conf_int(c, "smtpd_recipient_limit"), 1000);
    assert_int_equal(conf_int(c, "header_size_limit"), 102400);
    assert_int_equal(conf_int(c, "hopcount_limit"), 50);
    assert_int_equal(conf_int(c, "default_process_limit"), 100);
    assert_int_equal(conf_time(c, "smtpd_timeout"), 300);
    assert_int_equal(conf_time(c, "smtpd_error_sleep_time"), 1);
    assert_int_equal(conf_time(c, "maximal_backoff_time"), 4000);
    assert_int_equal(conf_time(c, "maximal_queue_lifetime"), 5 * 86400);
    assert_int_equal(conf_time(c, "bounce_queue_lifetime"), 5 * 86400);
    assert_int_equal(conf_time(c, "delay_warning_time"), 0);
    assert_int_equal(conf_bool(c, "disable_vrfy_command"), 1);
    assert_int_equal(conf_bool(c, "disable_expn_command"), 1);
    assert_int_equal(conf_bool(c, "smtputf8_enable"), 1);
    assert_int_equal(conf_bool(c, "smtpd_require_from_header"), 1);
    assert_string_equal(conf_str(c, "smtpd_forbid_bare_newline"), "normalize");
    assert_string_equal(conf_str(c, "queue_sync_method"), "journal");
    assert_string_equal(conf_str(c, "queue_directory"), "/var/spool/tern");
    assert_string_equal(conf_str(c, "config_directory"), "/etc/tern");
    assert_string_equal(conf_str(c, "mail_owner"), "tern");
    assert_string_equal(conf_str(c, "local_mailbox_base"), "");
    assert_string_equal(conf_str(c, "smtpd_banner"), "mail.example.com ESMTP Tern");
    assert_string_equal(conf_raw(c, "mynetworks"), "127.0.0.0/8 [::1]/128");
    assert_string_equal(conf_str(c, "mynetworks_style"), "");
    assert_int_equal(conf_int(c, "smtp_destination_concurrency_limit"), 20);
    assert_int_equal(conf_int(c, "smtp_destination_recipient_limit"), 50);
    assert_string_equal(conf_raw(c, "smtp_destination_concurrency_limit"),
                        "$default_destination_concurrency_limit");
    assert_string_equal(conf_str(c, "smtp_destination_concurrency_limit"), "20");
    struct conf_list l = conf_list(c, "smtpd_relay_restrictions");
    assert_int_equal(l.n, 3);
    assert_string_equal(l.items[0], "permit_mynetworks");
    assert_string_equal(l.items[1], "permit_sasl_authenticated");
    assert_string_equal(l.items[2], "reject_unauth_destination");
    conf_list_free(&l);
    assert_int_equal(l.n, 0);
    assert_null(l.items);
    assert_int_equal(conf_is_set(c, "myhostname"), 0);
    conf_free(c);
}

/* ---- parsing ---- */

static void test_parse_lines(void **state)
{
    (void)state;
    struct conf *c = conf_from("# a comment\n"
                               "\n"
                               "myorigin=example.org\n"                    /* 3 */
                               "  # an indented comment\n"
                               "relayhost   =   [smtp.example.net]:587   \n" /* 5 */
                               "smtpd_banner = $myhostname ESMTP # not a comment\n"
                               "mydestination = a.example,\n"              /* 7 */
                               "    b.example,\n"
                               "# comment inside the continuation\n"
                               "\n"
                               "\tc.example\n"                               /* 11 */
                               "mail_name = first\n"                        /* 12 */
                               "mail_name = second\r\n"                     /* 13 */
                               "home_mailbox =\n"                           /* 14 */
                               "recipient_delimiter = +",                   /* 15, no newline */
                               0);
    assert_string_equal(conf_raw(c, "myorigin"), "example.org");
    assert_string_equal(conf_raw(c, "relayhost"), "[smtp.example.net]:587");
    assert_string_equal(conf_raw(c, "smtpd_banner"), "$myhostname ESMTP # not a comment");
    assert_string_equal(conf_raw(c, "mydestination"), "a.example, b.example, c.example");
    assert_string_equal(conf_raw(c, "mail_name"), "second");
    assert_string_equal(conf_raw(c, "home_mailbox"), "");
    assert_true(conf_is_set(c, "home_mailbox"));
    assert_string_equal(conf_raw(c, "recipient_delimiter"), "+");
    int line = -1;
    assert_string_equal(conf_origin(c, "myorigin", &line), "main.cf");
    assert_int_equal(line, 3);
    conf_origin(c, "relayhost", &line);
    assert_int_equal(line, 5);
    conf_origin(c, "mydestination", &line);
    assert_int_equal(line, 7);
    conf_origin(c, "mail_name", &line);
    assert_int_equal(line, 13);
    conf_origin(c, "recipient_delimiter", &line);
    assert_int_equal(line, 15);
    assert_null(conf_origin(c, "queue_directory", &line));
    assert_int_equal(line, 0);
    struct conf_list l = conf_list(c, "mydestination");
    assert_int_equal(l.n, 3);
    assert_string_equal(l.items[2], "c.example");
    conf_list_free(&l);
    conf_free(c);
}

static void test_parse_errors(void **state)
{
    (void)state;
    struct conf *c = conf_new();
    struct strbuf diag = STRBUF_INIT;
    const char text[] = "   orphan continuation\n"       /* 1 */
                        "myorigin = good.example\n"      /* 2 */
                        "this line has no equals\n"      /* 3 */
                        "= value without a name\n"       /* 4 */
                        "bad-name = x\n"                 /* 5 */
                        "bad name = x\n"                 /* 6 */
                        "mail_name = ok\n"               /* 7 */
                        "nul = a\0b\n"                   /* 8 */
                        "\x01\xff = binary\n";           /* 9 */
    int rc = conf_load_mem(c, text, sizeof text - 1, "main.cf", &diag);
    assert_int_equal(rc, 7);
    assert_string_equal(
        strbuf_str(&diag),
        "main.cf:1: error: line starts with whitespace but continues no setting\n"
        "main.cf:3: error: missing '=' after parameter name in \"this line has no equals\"\n"
        "main.cf:4: error: missing parameter name before '='\n"
        "main.cf:5: error: invalid parameter name \"bad-name\" (letters, digits and _ only)\n"
        "main.cf:6: error: invalid parameter name \"bad name\" (letters, digits and _ only)\n"
        "main.cf:8: error: NUL byte in line\n"
        "main.cf:9: error: invalid parameter name \"\\x01\\xff\" (letters, digits and _ only)\n");
    /* the good lines still count */
    assert_string_equal(conf_raw(c, "myorigin"), "good.example");
    assert_string_equal(conf_raw(c, "mail_name"), "ok");
    assert_null(conf_raw(c, "nul"));
    /* a NULL diag is fine too */
    assert_int_equal(conf_load_string(c, "junk\n", "x", NULL), 1);
    strbuf_free(&diag);
    conf_free(c);
}

static void test_load_file(void **state)
{
    (void)state;
    char path[] = "/tmp/test_conf_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] = "myorigin = file.example\nbroken\n";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);

    struct conf *c = conf_new();
    struct strbuf diag = STRBUF_INIT;
    assert_int_equal(conf_load_file(c, path, &diag), 1);
    char *expect = xasprintf("%s:2: error: missing '=' after parameter name in \"broken\"\n", path);
    assert_string_equal(strbuf_str(&diag), expect);
    free(expect);
    int line;
    assert_string_equal(conf_origin(c, "myorigin", &line), path);
    assert_int_equal(line, 1);
    unlink(path);

    errno = 0;
    assert_int_equal(conf_load_file(c, path, &diag), -1);
    assert_int_equal(errno, ENOENT);
    errno = 0;
    assert_int_equal(conf_load_file(c, "/", &diag), -1);
    assert_int_equal(errno, EISDIR);
    assert_string_equal(conf_raw(c, "myorigin"), "file.example");
    strbuf_free(&diag);
    conf_free(c);
}

/* ---- expansion ---- */

static void test_expansion_forms(void **state)
{
    (void)state;
    struct conf *c = conf_from("word = hello\n"
                               "nothing =\n"
                               "indirect = $word\n"
                               "smtpd_banner = [$word] [${word}] [$(word)] [${word?set}] "
                               "[${word:unset}] [${nothing?set}] [${nothing:unset}] "
                               "[${undefined_x:fallback}] [${undefined_x?no}] [$$word] "
                               "[${word?<$indirect>}] [${word?{braces}}] [$(word?a(b)c)] "
                               "[$word_suffix] [${word}_suffix] [$indirect.$mail_name]\n",
                               0);
    /* as in Postfix, ${name:text} is empty when $name is not */
    assert_string_equal(conf_str(c, "smtpd_banner"),
                        "[hello] [hello] [hello] [set] [] [] [unset] [fallback] [] "
                        "[$word] [<hello>] [{braces}] [a(b)c] [] [hello_suffix] "
                        "[hello.Tern]");
    /* ${name?text} tests the expanded value: "$nothing" is empty */
    conf_set(c, "indirect", "$nothing", NULL, 0);
    conf_set(c, "myorigin", "${indirect?full}${indirect:empty}", NULL, 0);
    assert_string_equal(conf_str(c, "myorigin"), "empty");
    /* the same string is returned until something changes */
    const char *a = conf_str(c, "myorigin");
    assert_ptr_equal(conf_str(c, "myorigin"), a);
    char *out = check_output(c, 0);
    /* settings without an origin sort first */
    assert_string_equal(out, "warning: unknown parameter indirect\n"
                             "main.cf:1: warning: unknown parameter word\n"
                             "main.cf:2: warning: unknown parameter nothing\n"
                             "main.cf:4: warning: smtpd_banner: reference to undefined parameter "
                             "$undefined_x\n"
                             "main.cf:4: warning: smtpd_banner: reference to undefined parameter "
                             "$word_suffix\n");
    free(out);
    conf_free(c);
}

static void test_expansion_follows_changes(void **state)
{
    (void)state;
    struct conf *c = conf_from("myorigin = $mydomain\n", 0);
    assert_string_equal(conf_str(c, "myorigin"), "example.com");
    conf_set(c, "mydomain", "other.example", "test", 1);
    assert_string_equal(conf_str(c, "myorigin"), "other.example");
    conf_load_string(c, "mydomain = third.example\n", "more.cf", NULL);
    assert_string_equal(conf_str(c, "myorigin"), "third.example");
    /* back to the computed default */
    conf_set(c, "mydomain", NULL, NULL, 0);
    assert_false(conf_is_set(c, "mydomain"));
    assert_string_equal(conf_str(c, "myorigin"), "example.com");
    /* an unknown name set to NULL disappears */
    conf_set(c, "custom", "x", NULL, 0);
    assert_string_equal(conf_raw(c, "custom"), "x");
    conf_set(c, "custom", NULL, NULL, 0);
    assert_null(conf_raw(c, "custom"));
    assert_false(conf_is_set(c, "custom"));
    conf_free(c);
}

static void test_expansion_errors(void **state)
{
    (void)state;
    struct conf *c = conf_from("myorigin = end$\n"
                               "smtpd_banner = ${unclosed\n"
                               "mail_name = ${}\n"
                               "queue_directory = a $- b\n"
                               "home_mailbox = ${word!x}\n"
                               "recipient_delimiter = ${word?never closed\n",
                               0);
    char *out = check_output(c, 6);
    assert_string_equal(
        out, "main.cf:1: error: myorigin: '$' at end of value (write $$ for a literal $)\n"
             "main.cf:2: error: smtpd_banner: missing '}' after ${unclosed\n"
             "main.cf:3: error: mail_name: missing parameter name after ${\n"
             "main.cf:4: error: queue_directory: '$' not followed by a parameter name (write $$ for a "
             "literal $)\n"
             "main.cf:5: error: home_mailbox: invalid character '!' after ${word (names are "
             "letters, digits and _)\n"
             "main.cf:6: error: recipient_delimiter: missing '}' after ${word?\n");
    free(out);
    /* getters fall back to the default, warning once per setting */
    capture_start();
    const char *origin = conf_str(c, "myorigin");
    const char *again = conf_str(c, "myorigin");
    const char *relay = conf_str(c, "queue_directory");
    char *log = capture_end();
    assert_string_equal(origin, "mail.example.com");
    assert_string_equal(again, "mail.example.com");
    assert_string_equal(relay, "/var/spool/tern");
    assert_int_equal(count_substr(log, "warning: "), 2);
    assert_non_null(strstr(log, "warning: main.cf:1: myorigin: '$' at end of value"));
    assert_non_null(strstr(log, "; using the default"));
    free(log);
    conf_free(c);
}

/* Writes "p<i> = $p<i+1>" for i in 1..n-1 and "p<n> = end". */
static char *chain(int n)
{
    struct strbuf sb = STRBUF_INIT;
    for (int i = 1; i < n; i++)
        strbuf_printf(&sb, "p%d = $p%d\n", i, i + 1);
    strbuf_printf(&sb, "p%d = end\n", n);
    return strbuf_detach(&sb);
}

static void test_expansion_depth_bound(void **state)
{
    (void)state;
    /* smtpd_banner -> p1 -> ... -> p100: 100 nested references are fine */
    char *text = chain(100);
    struct conf *c = conf_from(text, 0);
    conf_set(c, "smtpd_banner", "$p1", "t", 1);
    assert_string_equal(conf_str(c, "smtpd_banner"), "end");
    conf_free(c);
    free(text);

    /* one more is an error, not a crash */
    text = chain(101);
    c = conf_from(text, 0);
    conf_set(c, "smtpd_banner", "$p1", "t", 1);
    char *out = check_output(c, 1);
    assert_non_null(strstr(out, "t:1: error: smtpd_banner: expansion nested more than 100 levels "
                                "at $p101 (circular reference?)\n"));
    free(out);
    capture_start();
    assert_string_equal(conf_str(c, "smtpd_banner"), "mail.example.com ESMTP Tern");
    free(capture_end());
    conf_free(c);
    free(text);

    /* circular references, direct and through the computed defaults */
    c = conf_from("smtpd_banner = x $smtpd_banner\n"
                  "a = $b\n"
                  "b = ${a?$a}\n"
                  "mail_name = $a\n"
                  "myhostname = $myorigin\n"
                  "myorigin = $myhostname\n",
                  0);
    out = check_output(c, 4 + 1 /* mydestination's default, built from myhostname */);
    assert_non_null(strstr(out, "main.cf:1: error: smtpd_banner: expansion nested more than "
                                "100 levels at $smtpd_banner"));
    assert_non_null(strstr(out, "main.cf:4: error: mail_name: expansion nested more than"));
    assert_non_null(strstr(out, "main.cf:5: error: myhostname: expansion nested"));
    assert_non_null(strstr(out, "main.cf:6: error: myorigin: expansion nested"));
    assert_non_null(strstr(out, "error: mydestination: default value \"$myhostname, "
                                "localhost.$mydomain, localhost\": expansion nested"));
    /* a default that is one $reference takes the other's value as its
     * getter sees it (the system host name here), so it cannot break */
    assert_null(strstr(out, "smtp_helo_name"));
    free(out);
    capture_start();
    assert_string_equal(conf_str(c, "smtp_helo_name"), "mail.example.com");
    assert_string_equal(conf_str(c, "mail_name"), "Tern");
    assert_string_equal(conf_str(c, "myhostname"), "mail.example.com");
    assert_string_equal(conf_str(c, "mydomain"), "example.com");
    free(capture_end());
    conf_free(c);

    /* deeply nested ${x?${x?...}} text is bounded by the same depth */
    struct strbuf sb = STRBUF_INIT;
    strbuf_puts(&sb, "x = 1\nsmtpd_banner = ");
    for (int i = 0; i < 20000; i++)
        strbuf_puts(&sb, "${x?");
    strbuf_puts(&sb, "deep");
    for (int i = 0; i < 20000; i++)
        strbuf_putc(&sb, '}');
    strbuf_putc(&sb, '\n');
    c = conf_from(strbuf_str(&sb), 0);
    out = check_output(c, 1);
    assert_non_null(strstr(out, "expansion nested more than 100 levels"));
    free(out);
    conf_free(c);
    strbuf_free(&sb);
}

static void test_expansion_work_bounds(void **state)
{
    (void)state;
    /* 10 references per level, 12 levels: 10^12 references if unbounded */
    struct strbuf sb = STRBUF_INIT;
    for (int i = 1; i < 12; i++) {
        strbuf_printf(&sb, "q%d =", i);
        for (int j = 0; j < 10; j++)
            strbuf_printf(&sb, " $q%d", i + 1);
        strbuf_putc(&sb, '\n');
    }
    strbuf_puts(&sb, "q12 =\nsmtpd_banner = $q1\n");
    struct conf *c = conf_from(strbuf_str(&sb), 0);
    char *out = check_output(c, 1);
    assert_non_null(strstr(out, "error: smtpd_banner: expansion needs more than 100000 "
                                "references\n"));
    free(out);
    conf_free(c);
    strbuf_free(&sb);

    /* output growth: 4 KiB doubled 9 times is 2 MiB */
    strbuf_puts(&sb, "r0 = ");
    for (int i = 0; i < 4096; i++)
        strbuf_putc(&sb, 'x');
    strbuf_putc(&sb, '\n');
    for (int i = 1; i <= 9; i++)
        strbuf_printf(&sb, "r%d = $r%d$r%d\n", i, i - 1, i - 1);
    strbuf_puts(&sb, "smtpd_banner = $r9\nmail_name = $r7\n");
    c = conf_from(strbuf_str(&sb), 0);
    out = check_output(c, 1);
    assert_non_null(strstr(out, "error: smtpd_banner: expansion produces more than 1048576 "
                                "bytes\n"));
    free(out);
    assert_int_equal(strlen(conf_str(c, "mail_name")), 4096u << 7);
    conf_free(c);
    strbuf_free(&sb);

    /* values expanded only to test ${x?...} count too: 300 x 4 KiB */
    strbuf_puts(&sb, "big = ");
    for (int i = 0; i < 4096; i++)
        strbuf_putc(&sb, 'x');
    strbuf_puts(&sb, "\nsmtpd_banner = ");
    for (int i = 0; i < 300; i++)
        strbuf_puts(&sb, "${big?}");
    strbuf_puts(&sb, "\nmail_name = ${big?}${big?}${big?small}\n");
    c = conf_from(strbuf_str(&sb), 0);
    out = check_output(c, 1);
    assert_non_null(strstr(out, "error: smtpd_banner: expansion produces more than"));
    free(out);
    assert_string_equal(conf_str(c, "mail_name"), "small");
    conf_free(c);
    strbuf_free(&sb);
}

/* Unknown names are kept in a sorted index; many of them stay cheap and
 * print in order. */
static void test_many_unknown_names(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    unsigned seed = 7;
    for (int i = 0; i < 5000; i++) {
        seed = seed * 1103515245u + 12345u;
        strbuf_printf(&sb, "u%u = %d\n", (seed >> 8) % 3000, i);
    }
    strbuf_puts(&sb, "smtpd_banner = $u1$u2999\n");
    struct conf *c = conf_from(strbuf_str(&sb), 0);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    conf_print_nondefault(c, f);
    fclose(f);
    /* sorted, each name once, and the last setting of each name kept */
    const char *prev = "";
    size_t lines = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        assert_true(strcmp(prev, line) < 0);
        char name[32];
        assert_int_equal(sscanf(line, "%31s", name), 1);
        if (name[0] == 'u') {
            const char *raw = conf_raw(c, name);
            assert_non_null(raw);
            assert_string_equal(strchr(line, '=') + 2, raw);
        }
        prev = line;
        lines++;
    }
    assert_true(lines > 2000 && lines <= 3001);
    free(out);
    /* removing one keeps the others findable */
    const char *before = conf_raw(c, "u2999");
    char *keep = before ? xstrdup(before) : NULL;
    conf_set(c, "u1", NULL, NULL, 0);
    assert_null(conf_raw(c, "u1"));
    if (keep)
        assert_string_equal(conf_raw(c, "u2999"), keep);
    free(keep);
    conf_free(c);
    strbuf_free(&sb);
}

/* ---- typed values ---- */

static void test_typed_getters(void **state)
{
    (void)state;
    struct conf *c = conf_from("message_size_limit = 52428800\n"
                               "smtpd_recipient_limit = $limit\n"
                               "limit = 250\n"
                               "smtputf8_enable = No\n"
                               "disable_vrfy_command = false\n"
                               "disable_expn_command = 0\n"
                               "smtpd_require_from_header = TRUE\n"
                               "smtpd_timeout = 5m\n"
                               "minimal_backoff_time = 2h\n"
                               "maximal_backoff_time = 60\n"
                               "maximal_queue_lifetime = 3\n"
                               "bounce_queue_lifetime = 1w\n"
                               "delay_warning_time = 4\n"
                               "smtp_connect_timeout = 90s\n"
                               "smtpd_forbid_bare_newline = reject\n"
                               "inet_protocols = ipv4, ipv6\n"
                               "queue_run_delay = 300s\n",
                               0);
    assert_int_equal(conf_int(c, "message_size_limit"), 52428800);
    assert_int_equal(conf_int(c, "smtpd_recipient_limit"), 250);
    assert_int_equal(conf_bool(c, "smtputf8_enable"), 0);
    assert_int_equal(conf_bool(c, "disable_vrfy_command"), 0);
    assert_int_equal(conf_bool(c, "disable_expn_command"), 0);
    assert_int_equal(conf_bool(c, "smtpd_require_from_header"), 1);
    assert_int_equal(conf_time(c, "smtpd_timeout"), 300);
    assert_int_equal(conf_time(c, "minimal_backoff_time"), 7200);
    assert_int_equal(conf_time(c, "maximal_backoff_time"), 60);       /* unit s */
    assert_int_equal(conf_time(c, "maximal_queue_lifetime"), 3 * 86400); /* unit d */
    assert_int_equal(conf_time(c, "bounce_queue_lifetime"), 7 * 86400);
    assert_int_equal(conf_time(c, "delay_warning_time"), 4 * 3600);   /* unit h */
    assert_int_equal(conf_time(c, "smtp_connect_timeout"), 90);
    assert_string_equal(conf_str(c, "smtpd_forbid_bare_newline"), "reject");
    /* conf_str gives the text of any type */
    assert_string_equal(conf_str(c, "smtpd_timeout"), "5m");
    assert_string_equal(conf_str(c, "smtpd_recipient_limit"), "250");
    struct conf_list l = conf_list(c, "inet_protocols");
    assert_int_equal(l.n, 2);
    assert_string_equal(l.items[0], "ipv4");
    assert_string_equal(l.items[1], "ipv6");
    conf_list_free(&l);
    char *out = check_output(c, 0);
    assert_string_equal(out, "main.cf:3: warning: unknown parameter limit\n"
                             "main.cf:17: warning: queue_run_delay has no effect in tern: tern "
                             "schedules each deferred message at its own backoff time instead "
                             "of scanning the queue.\n");
    free(out);
    conf_free(c);
}

static void test_bad_values(void **state)
{
    (void)state;
    struct conf *c = conf_from("message_size_limit = 10M\n"                /* 1 */
                               "smtpd_recipient_limit = 0\n"               /* 2 */
                               "hopcount_limit = 99999999999999999999\n"   /* 3 */
                               "smtpd_hard_error_limit = -5\n"             /* 4 */
                               "smtpd_timeout = 5x\n"                      /* 5 */
                               "smtp_helo_timeout = 5 m\n"                 /* 6 */
                               "minimal_backoff_time = 0s\n"               /* 7 */
                               "maximal_backoff_time = 9999999w\n"         /* 8 */
                               "smtputf8_enable = maybe\n"                 /* 9 */
                               "smtpd_forbid_bare_newline = yes\n"         /* 10 */
                               "inet_protocols = ipv4, ipx\n"              /* 11 */
                               "queue_sync_method = \n"                    /* 12 */
                               "smtp_tcp_port = 65536\n"                   /* 13 */
                               "line_length_limit = 999\n",                /* 14 */
                               0);
    char *out = check_output(c, 13);
    assert_string_equal(
        out,
        "main.cf:1: error: message_size_limit: invalid integer \"10M\"\n"
        "main.cf:2: error: smtpd_recipient_limit: value \"0\" out of range (1..2147483647)\n"
        "main.cf:3: error: hopcount_limit: invalid integer \"99999999999999999999\"\n"
        "main.cf:4: error: smtpd_hard_error_limit: value \"-5\" out of range (1..2147483647)\n"
        "main.cf:5: error: smtpd_timeout: invalid time \"5x\" (expected a number with an "
        "optional unit s, m, h, d or w)\n"
        "main.cf:6: error: smtp_helo_timeout: invalid time \"5 m\" (expected a number with an "
        "optional unit s, m, h, d or w)\n"
        "main.cf:7: error: minimal_backoff_time: value \"0s\" out of range (1..2147483647 "
        "seconds)\n"
        "main.cf:8: error: maximal_backoff_time: value \"9999999w\" out of range "
        "(1..2147483647 seconds)\n"
        "main.cf:9: error: smtputf8_enable: invalid boolean \"maybe\" (expected yes or no)\n"
        "main.cf:10: error: smtpd_forbid_bare_newline: invalid value \"yes\" (expected "
        "normalize|reject)\n"
        "main.cf:11: error: inet_protocols: invalid item \"ipx\" (expected all|ipv4|ipv6)\n"
        "main.cf:12: error: queue_sync_method: invalid value \"\" (expected syncfs|fsync|journal)\n"
        "main.cf:13: error: smtp_tcp_port: value \"65536\" out of range (1..65535)\n"
        "main.cf:14: warning: line_length_limit has no effect in tern: tern does not split long "
        "message lines; SMTP command lines are bounded at 1000 octets.\n");
    free(out);

    capture_start();
    long long size = conf_int(c, "message_size_limit");
    long long size2 = conf_int(c, "message_size_limit");
    long long rcpt = conf_int(c, "smtpd_recipient_limit");
    long long hops = conf_int(c, "hopcount_limit");
    long long timeout = conf_time(c, "smtpd_timeout");
    int utf8 = conf_bool(c, "smtputf8_enable");
    const char *bare = conf_str(c, "smtpd_forbid_bare_newline");
    const char *sync = conf_str(c, "queue_sync_method");
    struct conf_list protos = conf_list(c, "inet_protocols");
    char *log = capture_end();
    assert_int_equal(size, 10240000);
    assert_int_equal(size2, 10240000);
    assert_int_equal(rcpt, 1000);
    assert_int_equal(hops, 50);
    assert_int_equal(timeout, 300);
    assert_int_equal(utf8, 1);
    assert_string_equal(bare, "normalize");
    assert_string_equal(sync, "journal");
    assert_int_equal(protos.n, 1);
    assert_string_equal(protos.items[0], "all");
    conf_list_free(&protos);
    /* one warning per bad setting, not per call */
    assert_int_equal(count_substr(log, "warning: "), 8);
    assert_int_equal(count_substr(log, "message_size_limit"), 1);
    assert_non_null(strstr(log, "warning: main.cf:1: message_size_limit: invalid integer "
                                "\"10M\"; using the default\n"));
    free(log);

    /* a fix clears the fallback */
    conf_set(c, "message_size_limit", "20480000", "fix", 1);
    assert_int_equal(conf_int(c, "message_size_limit"), 20480000);
    conf_free(c);

    /* a choice row whose default is empty ("not used") may be set empty too,
     * one with a default may not (queue_sync_method above) */
    c = conf_from("mynetworks_style =\n", 0);
    out = check_output(c, 0);
    assert_string_equal(out, "");
    free(out);
    assert_string_equal(conf_str(c, "mynetworks_style"), "");
    conf_set(c, "mynetworks_style", "hosts", "main.cf", 2);
    out = check_output(c, 1);
    assert_string_equal(out, "main.cf:2: error: mynetworks_style: invalid value \"hosts\" (expected "
                             "host|subnet|class)\n");
    free(out);
    conf_free(c);
}

static void test_list_split(void **state)
{
    (void)state;
    struct conf_list l = conf_list_split("  a, b,,c\t d\n e ,");
    assert_int_equal(l.n, 5);
    const char *want[] = {"a", "b", "c", "d", "e"};
    for (size_t i = 0; i < 5; i++)
        assert_string_equal(l.items[i], want[i]);
    conf_list_free(&l);

    l = conf_list_split("inline:{ a=b, c=d }, hash:/etc/x check_client_access{x{y, z}}w");
    assert_int_equal(l.n, 3);
    assert_string_equal(l.items[0], "inline:{ a=b, c=d }");
    assert_string_equal(l.items[1], "hash:/etc/x");
    assert_string_equal(l.items[2], "check_client_access{x{y, z}}w");
    conf_list_free(&l);

    l = conf_list_split("{unbalanced, rest");
    assert_int_equal(l.n, 1);
    assert_string_equal(l.items[0], "{unbalanced, rest");
    conf_list_free(&l);

    l = conf_list_split("} stray, x");
    assert_int_equal(l.n, 3);
    assert_string_equal(l.items[0], "}");
    conf_list_free(&l);

    l = conf_list_split(" , ,\t");
    assert_int_equal(l.n, 0);
    conf_list_free(&l);

    struct conf *c = conf_from("mydestination = $myhostname, localhost.$mydomain\n"
                               "mynetworks =\n",
                               0);
    l = conf_list(c, "mydestination");
    assert_int_equal(l.n, 2);
    assert_string_equal(l.items[0], "mail.example.com");
    assert_string_equal(l.items[1], "localhost.example.com");
    conf_list_free(&l);
    l = conf_list(c, "mynetworks");
    assert_int_equal(l.n, 0);
    conf_list_free(&l);
    conf_free(c);
}

/* ---- check ---- */

static void test_check_messages(void **state)
{
    (void)state;
    struct conf *c = conf_new();
    conf_test_set_hostname(c, "h.example");
    assert_int_equal(conf_load_string(c,
                                      "smtpd_milters = inet:localhost:8891\n" /* 1 */
                                      "myorigin = $mydomian\n"               /* 2 */
                                      "message_size_limit = big\n",          /* 3 */
                                      "/etc/tern/main.cf", NULL),
                     0);
    conf_load_string(c, "mail_name = ${not_there:x}$also_missing\n", "extra.cf", NULL);
    conf_set(c, "smtpd_recipient_limit", "none", "/etc/tern/master.cf", 12);
    conf_set(c, "milter_default_action", "accept", "/etc/tern/master.cf", 13);
    conf_set(c, "hopcount_limit", "x", NULL, 0);
    char *out = check_output(c, 3);
    assert_string_equal(
        out, "error: hopcount_limit: invalid integer \"x\"\n"
             "/etc/tern/main.cf:1: warning: unknown parameter smtpd_milters\n"
             "/etc/tern/main.cf:2: warning: myorigin: reference to undefined parameter $mydomian\n"
             "/etc/tern/main.cf:3: error: message_size_limit: invalid integer \"big\"\n"
             "/etc/tern/master.cf:12: error: smtpd_recipient_limit: invalid integer \"none\"\n"
             "/etc/tern/master.cf:13: warning: unknown parameter milter_default_action\n"
             "extra.cf:1: warning: mail_name: reference to undefined parameter $not_there\n"
             "extra.cf:1: warning: mail_name: reference to undefined parameter "
             "$also_missing\n");
    free(out);
    conf_free(c);
    /* an undefined reference inside a value reached through another is
     * reported where it is written, not at every use */
    c = conf_from("helper = $nowhere\nsmtpd_banner = $helper $helper\n", 0);
    out = check_output(c, 0);
    assert_string_equal(out, "main.cf:1: warning: unknown parameter helper\n");
    free(out);
    conf_free(c);
}

/* ---- computed defaults ---- */

static void test_computed_hostname_domain(void **state)
{
    (void)state;
    char host[256];
    if (gethostname(host, sizeof host) != 0 || !host[0])
        strcpy(host, "localhost");
    host[sizeof host - 1] = '\0';
    struct conf *c = conf_new();
    assert_string_equal(conf_str(c, "myhostname"), host);
    assert_string_equal(conf_raw(c, "myhostname"), host);
    const char *dot = strchr(host, '.');
    assert_string_equal(conf_str(c, "mydomain"), dot && dot[1] ? dot + 1 : "localdomain");
    assert_string_equal(conf_str(c, "myorigin"), host);
    conf_free(c);

    c = conf_new();
    conf_test_set_hostname(c, "mx1.mail.example.org");
    assert_string_equal(conf_str(c, "myhostname"), "mx1.mail.example.org");
    assert_string_equal(conf_str(c, "mydomain"), "mail.example.org");
    assert_string_equal(conf_raw(c, "mydomain"), "mail.example.org");
    conf_test_set_hostname(c, "single");
    assert_string_equal(conf_str(c, "myhostname"), "single");
    assert_string_equal(conf_str(c, "mydomain"), "localdomain");
    struct conf_list l = conf_list(c, "mydestination");
    assert_int_equal(l.n, 3);
    assert_string_equal(l.items[0], "single");
    assert_string_equal(l.items[1], "localhost.localdomain");
    assert_string_equal(l.items[2], "localhost");
    conf_list_free(&l);
    conf_test_set_hostname(c, "trailing.");
    assert_string_equal(conf_str(c, "mydomain"), "localdomain");
    conf_test_set_hostname(c, "");
    assert_string_equal(conf_str(c, "myhostname"), "localhost");

    /* mydomain follows a configured myhostname, and a configured mydomain wins */
    conf_load_string(c, "myhostname = smtp.$base\nbase = example.net\n", "main.cf", NULL);
    assert_string_equal(conf_str(c, "myhostname"), "smtp.example.net");
    assert_string_equal(conf_str(c, "mydomain"), "example.net");
    assert_string_equal(conf_raw(c, "mydomain"), "example.net");
    assert_string_equal(conf_str(c, "smtpd_banner"), "smtp.example.net ESMTP Tern");
    conf_set(c, "mydomain", "override.example", NULL, 0);
    assert_string_equal(conf_str(c, "mydomain"), "override.example");
    /* the usual Postfix way round: myhostname built from mydomain */
    conf_set(c, "myhostname", "mail.$mydomain", NULL, 0);
    assert_string_equal(conf_str(c, "myhostname"), "mail.override.example");
    conf_free(c);
}

/* ---- clone ---- */

static void test_clone_isolation(void **state)
{
    (void)state;
    struct conf *base = conf_from("smtpd_banner = $myhostname base\n"
                                  "custom = c1\n"
                                  "smtpd_client_restrictions = permit\n",
                                  0);
    assert_string_equal(conf_str(base, "smtpd_banner"), "mail.example.com base");
    struct conf *port587 = conf_clone(base);
    conf_set(port587, "smtpd_client_restrictions", "permit_sasl_authenticated, reject",
             "master.cf", 20);
    conf_set(port587, "custom", "c2", "master.cf", 21);
    conf_set(port587, "myhostname", "submit.example.com", "master.cf", 22);

    assert_string_equal(conf_raw(base, "smtpd_client_restrictions"), "permit");
    assert_string_equal(conf_raw(base, "custom"), "c1");
    assert_false(conf_is_set(base, "myhostname"));
    assert_string_equal(conf_str(base, "smtpd_banner"), "mail.example.com base");
    assert_string_equal(conf_str(base, "mydomain"), "example.com");

    assert_string_equal(conf_str(port587, "smtpd_banner"), "submit.example.com base");
    assert_string_equal(conf_str(port587, "mydomain"), "example.com");
    assert_string_equal(conf_raw(port587, "custom"), "c2");
    int line;
    assert_string_equal(conf_origin(port587, "smtpd_banner", &line), "main.cf");
    assert_int_equal(line, 1);
    assert_string_equal(conf_origin(port587, "custom", &line), "master.cf");
    assert_int_equal(line, 21);

    /* the clone outlives its parent */
    conf_free(base);
    struct conf_list l = conf_list(port587, "smtpd_client_restrictions");
    assert_int_equal(l.n, 2);
    assert_string_equal(l.items[1], "reject");
    conf_list_free(&l);
    struct conf *again = conf_clone(port587);
    assert_string_equal(conf_str(again, "smtpd_banner"), "submit.example.com base");
    conf_free(again);
    conf_free(port587);
}

/* ---- printing ---- */

static char *print_to_string(void (*fn)(const struct conf *, FILE *), const struct conf *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    fn(c, f);
    fclose(f);
    return buf;
}

static void test_print_nondefault(void **state)
{
    (void)state;
    struct conf *c = conf_from("relayhost =\n"
                               "myorigin = $mydomain\n"
                               "zz_custom = 1\n"
                               "alias_maps = hash:/etc/aliases, texthash:/etc/more\n"
                               "myorigin = $myhostname\n",
                               0);
    char *out = print_to_string(conf_print_nondefault, c);
    assert_string_equal(out, "alias_maps = hash:/etc/aliases, texthash:/etc/more\n"
                             "myorigin = $myhostname\n"
                             "relayhost =\n"
                             "zz_custom = 1\n");
    free(out);
    conf_free(c);

    c = conf_new();
    out = print_to_string(conf_print_nondefault, c);
    assert_string_equal(out, "");
    free(out);
    conf_free(c);
}

static void test_print_all(void **state)
{
    (void)state;
    struct conf *c = conf_from("mail_name = Other\nunknown_one = 1\n", 0);
    char *out = print_to_string(conf_print_all, c);
    assert_int_equal(count_substr(out, "\n"), conf_params_count);
    assert_non_null(strstr(out, "\nmyorigin = $myhostname\n"));
    assert_non_null(strstr(out, "\nmyhostname = mail.example.com\n"));
    assert_non_null(strstr(out, "\nmydomain = example.com\n"));
    assert_non_null(strstr(out, "\nmail_name = Other\n"));
    assert_non_null(strstr(out, "\nrelayhost =\n"));
    assert_non_null(strstr(out, "\nsmtpd_timeout = 300s\n"));
    assert_null(strstr(out, "unknown_one"));
    /* sorted by name: digits before letters */
    static const char first[] = "2bounce_notice_recipient = postmaster\nalias_database = hash:/etc/aliases\n";
    assert_true(strncmp(out, first, strlen(first)) == 0);
    free(out);
    conf_free(c);
}

static void test_print_man(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    conf_print_man(f);
    fclose(f);
    assert_true(strncmp(buf, ".\\\" Generated", 13) == 0);
    assert_non_null(strstr(buf, "\n.TH TERN.CONF 5 "));
    assert_non_null(strstr(buf, "\n.SH PARAMETERS\n"));
    for (size_t i = 0; i < conf_params_count; i++) {
        char *want = xasprintf("\n.TP\n.B %s\n(", conf_params[i].name);
        if (!strstr(buf, want))
            fail_msg("man page lacks %s", conf_params[i].name);
        free(want);
    }
    assert_non_null(strstr(buf, ".B message_size_limit\n(integer, 1 to 1099511627776; "
                                "default: \\fB10240000\\fR)\n.br\n"));
    assert_non_null(strstr(buf, ".B smtpd_forbid_bare_newline\n(one of normalize, reject; "
                                "default: \\fBnormalize\\fR)\n"));
    assert_non_null(strstr(buf, ".B maximal_queue_lifetime\n(time: a number with unit s, m, "
                                "h, d or w; a bare number is in days;"));
    assert_non_null(strstr(buf, ".B myhostname\n(string; default: computed)\n"));
    assert_non_null(strstr(buf, ".B relayhost\n(string; default: empty)\n"));
    assert_non_null(strstr(buf, "Host all non\\-local mail"));
    assert_non_null(strstr(buf, "(tern extension)"));
    /* a default that follows another parameter says so */
    assert_non_null(strstr(buf, ".B smtp_destination_concurrency_limit\n(integer, 1 to 2147483647; "
                                "default: \\fB$default_destination_concurrency_limit\\fR)\n"));
    /* the Postfix parameters without effect are a section of their own, after
     * the parameters */
    const char *ignored = strstr(buf, "\n.SH POSTFIX PARAMETERS WITHOUT EFFECT\n");
    assert_non_null(ignored);
    assert_true(ignored > strstr(buf, "\n.SH PARAMETERS\n"));
    for (size_t i = 0; i < conf_ignored_count; i++) {
        char *want = xasprintf("\n.TP\n.B %s\n", conf_ignored[i].name);
        if (!strstr(ignored, want))
            fail_msg("man page lacks ignored %s", conf_ignored[i].name);
        free(want);
    }
    assert_non_null(strstr(ignored, "\n.B queue_run_delay\ntern schedules each deferred message"));
    /* nothing but requests (.TP, .br ...) start with a dot */
    for (const char *p = buf; (p = strstr(p, "\n.")) != NULL; p++)
        assert_true((p[2] >= 'A' && p[2] <= 'Z') || (p[2] >= 'a' && p[2] <= 'z'));
    free(buf);
}

/* ---- defaults that follow another parameter ---- */

static void test_default_follows_other(void **state)
{
    (void)state;
    /* unset, the row takes the other row's value */
    struct conf *c = conf_from("default_destination_concurrency_limit = 7\n", 0);
    assert_int_equal(conf_int(c, "smtp_destination_concurrency_limit"), 7);
    assert_string_equal(conf_str(c, "smtp_destination_concurrency_limit"), "7");
    assert_int_equal(conf_int(c, "smtp_destination_recipient_limit"), 50);
    /* and follows it when it changes */
    conf_set(c, "default_destination_concurrency_limit", "3", "master.cf", 4);
    assert_int_equal(conf_int(c, "smtp_destination_concurrency_limit"), 3);
    /* its own setting wins */
    conf_set(c, "smtp_destination_concurrency_limit", "2", "main.cf", 9);
    assert_int_equal(conf_int(c, "smtp_destination_concurrency_limit"), 2);
    assert_int_equal(conf_int(c, "default_destination_concurrency_limit"), 3);
    /* reverting it to its default follows the other again */
    conf_set(c, "smtp_destination_concurrency_limit", NULL, NULL, 0);
    assert_int_equal(conf_int(c, "smtp_destination_concurrency_limit"), 3);
    conf_free(c);

    /* an invalid setting of the other row: both getters fall back to the
     * other's default, and conf_check reports the one bad setting once */
    c = conf_from("default_destination_recipient_limit = many\n", 0);
    capture_start();
    long long follower = conf_int(c, "smtp_destination_recipient_limit");
    long long other = conf_int(c, "default_destination_recipient_limit");
    char *log = capture_end();
    assert_int_equal(follower, 50);
    assert_int_equal(other, 50);
    assert_int_equal(count_substr(log, "warning: "), 1);
    free(log);
    char *out = check_output(c, 1);
    assert_string_equal(out, "main.cf:1: error: default_destination_recipient_limit: invalid "
                             "integer \"many\"\n");
    free(out);
    conf_free(c);
}

/* A Postfix parameter tern does not implement loads and is kept like any
 * name outside the table, but is no row: getters refuse it. */
static void test_ignored_parameters(void **state)
{
    (void)state;
    struct conf *c = conf_from("smtpd_tls_loglevel = 1\n"
                               "queue_run_delay = 300s\n",
                               0);
    assert_null(conf_param_find("smtpd_tls_loglevel"));
    assert_non_null(conf_ignored_find("smtpd_tls_loglevel"));
    assert_string_equal(conf_raw(c, "smtpd_tls_loglevel"), "1");
    assert_true(conf_is_set(c, "queue_run_delay"));
    char *out = check_output(c, 0);
    assert_string_equal(out, "main.cf:1: warning: smtpd_tls_loglevel has no effect in tern: the SMTP "
                             "server logs one line per TLS session (Postfix's level 1) and has no "
                             "other levels.\n"
                             "main.cf:2: warning: queue_run_delay has no effect in tern: tern "
                             "schedules each deferred message at its own backoff time instead of "
                             "scanning the queue.\n");
    free(out);
    /* `postconf -n` shows what main.cf says; `postconf` only the table */
    out = print_to_string(conf_print_nondefault, c);
    assert_non_null(strstr(out, "smtpd_tls_loglevel = 1\n"));
    free(out);
    out = print_to_string(conf_print_all, c);
    assert_null(strstr(out, "smtpd_tls_loglevel"));
    free(out);
    conf_free(c);
}

/* ---- programming errors abort ---- */

static void expect_abort(void (*fn)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0)
            dup2(devnull, STDERR_FILENO);
        fn();
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
}

static void unknown_getter(void)
{
    struct conf *c = conf_new();
    (void)conf_str(c, "no_such_parameter");
}

static void wrong_type_getter(void)
{
    struct conf *c = conf_new();
    (void)conf_int(c, "smtpd_timeout");
}

static void wrong_list_getter(void)
{
    struct conf *c = conf_new();
    struct conf_list l = conf_list(c, "myorigin");
    (void)l;
}

static void bad_name_set(void)
{
    struct conf *c = conf_new();
    conf_set(c, "bad name", "x", NULL, 0);
}

static void ignored_getter(void)
{
    struct conf *c = conf_new();
    (void)conf_int(c, "smtpd_tls_loglevel");
}

static void test_programming_errors_abort(void **state)
{
    (void)state;
    expect_abort(ignored_getter);
    expect_abort(unknown_getter);
    expect_abort(wrong_type_getter);
    expect_abort(wrong_list_getter);
    expect_abort(bad_name_set);
}

/* ---- arbitrary input ---- */

static void test_arbitrary_bytes(void **state)
{
    (void)state;
    static const char alphabet[] = "ab_= \t\n#${}():?,\r\0\xff";
    unsigned seed = 12345;
    char buf[512];
    struct strbuf diag = STRBUF_INIT, out = STRBUF_INIT;
    for (int round = 0; round < 3000; round++) {
        size_t len = 0;
        seed = seed * 1103515245u + 12345u;
        size_t want = (seed >> 16) % sizeof buf;
        /* start most lines with a known name so expansion gets exercised */
        static const char *const starts[] = {"smtpd_banner = ", "a = ", "b = $a", "\nmyorigin ="};
        const char *st = starts[(seed >> 8) % 4];
        memcpy(buf, st, strlen(st));
        len = strlen(st);
        while (len < want) {
            seed = seed * 1103515245u + 12345u;
            buf[len++] = alphabet[(seed >> 16) % (sizeof alphabet - 1)];
        }
        struct conf *c = conf_new();
        conf_load_mem(c, buf, len, "fuzz", &diag);
        conf_check(c, &out);
        capture_start();
        for (size_t i = 0; i < conf_params_count; i++) {
            const struct conf_param *p = &conf_params[i];
            (void)conf_str(c, p->name);
            if (p->type == CONF_LIST) {
                struct conf_list l = conf_list(c, p->name);
                conf_list_free(&l);
            }
        }
        free(capture_end());
        conf_free(c);
        strbuf_reset(&diag);
        strbuf_reset(&out);
    }
    strbuf_free(&diag);
    strbuf_free(&out);
}

/* Raw parameters (mailbox_command, forward_path) keep their $names for
 * the code that uses them: no expansion, no "undefined" warning. */
static void test_raw_parameters(void **state)
{
    (void)state;
    struct conf *c = conf_from("mailbox_command = /usr/bin/procmail -a \"$EXTENSION\" ${x?y}\n"
                               "other = [$mailbox_command]\n",
                               0);
    assert_string_equal(conf_str(c, "mailbox_command"), "/usr/bin/procmail -a \"$EXTENSION\" ${x?y}");
    char *out = check_output(c, 0);
    assert_null(strstr(out, "EXTENSION"));
    free(out);
    conf_free(c);
    c = conf_from("", 0);
    struct conf_list l = conf_list(c, "forward_path");
    assert_int_equal(l.n, 2);
    assert_string_equal(l.items[0], "$home/.forward${recipient_delimiter}${extension}");
    assert_string_equal(l.items[1], "$home/.forward");
    conf_list_free(&l);
    conf_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_sorted_and_findable),
        cmocka_unit_test(test_table_defaults_sound),
        cmocka_unit_test(test_defaults_from_brief),
        cmocka_unit_test(test_parse_lines),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_expansion_forms),
        cmocka_unit_test(test_expansion_follows_changes),
        cmocka_unit_test(test_expansion_errors),
        cmocka_unit_test(test_expansion_depth_bound),
        cmocka_unit_test(test_expansion_work_bounds),
        cmocka_unit_test(test_many_unknown_names),
        cmocka_unit_test(test_typed_getters),
        cmocka_unit_test(test_raw_parameters),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_list_split),
        cmocka_unit_test(test_check_messages),
        cmocka_unit_test(test_computed_hostname_domain),
        cmocka_unit_test(test_clone_isolation),
        cmocka_unit_test(test_print_nondefault),
        cmocka_unit_test(test_print_all),
        cmocka_unit_test(test_print_man),
        cmocka_unit_test(test_default_follows_other),
        cmocka_unit_test(test_ignored_parameters),
        cmocka_unit_test(test_programming_errors_abort),
        cmocka_unit_test(test_arbitrary_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
