/* Tests for the local agent's commands and list files: the environment a
 * command gets (command_env_build), what its exit status means
 * (command_result, Postfix's sysexits mapping), a real command run through
 * the event loop (identity unchanged when not root: output kept, bounded,
 * time limit, command_execution_directory), command_expansion_filter and
 * export_environment, and the rules for .forward and :include: files
 * (list_file_check, list_file_parse, list_file_read) and the expansions of
 * forward_path and command_execution_directory. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include "local/command.h"
#include "local/list_file.h"
#include "local/luser.h"
#include "spool/queue_file.h"
#include "util/mem.h"

static const char *env_get(char **env, const char *name)
{
    size_t n = strlen(name);
    for (char **p = env; *p; p++)
        if (strncmp(*p, name, n) == 0 && (*p)[n] == '=')
            return *p + n + 1;
    return NULL;
}

static void test_env_fields(void **state)
{
    (void)state;
    struct command_env_fields f = {
        .home = "/home/bob", .logname = "bob", .shell = "/bin/sh",
        .sender = "a@remote.example", .recipient = "bob+lists-x@example.test",
        .original_recipient = "Bob+lists-x@Example.Test", .recipient_delimiter = "+-",
    };
    char **env = command_env_build(&f);
    assert_string_equal(env_get(env, "HOME"), "/home/bob");
    assert_string_equal(env_get(env, "LOGNAME"), "bob");
    assert_string_equal(env_get(env, "USER"), "bob");
    assert_string_equal(env_get(env, "SHELL"), "/bin/sh");
    assert_string_equal(env_get(env, "SENDER"), "a@remote.example");
    assert_string_equal(env_get(env, "RECIPIENT"), "bob+lists-x@example.test");
    assert_string_equal(env_get(env, "LOCAL"), "bob+lists-x");
    assert_string_equal(env_get(env, "DOMAIN"), "example.test");
    /* after the first delimiter character, whichever it is */
    assert_string_equal(env_get(env, "EXTENSION"), "lists-x");
    assert_string_equal(env_get(env, "ORIGINAL_RECIPIENT"), "Bob+lists-x@Example.Test");
    assert_string_equal(env_get(env, "PATH"), "/usr/bin:/bin");
    size_t n = 0;
    for (char **p = env; *p; p++)
        n++;
    assert_int_equal(n, 11);   /* nothing else, nothing inherited */
    command_env_free(env);
}

static void test_env_cleans_and_omits(void **state)
{
    (void)state;
    struct command_env_fields f = {
        .sender = "", .recipient = "odd\n\x1b[31mname\xc3\xa9@x", .recipient_delimiter = "",
    };
    char **env = command_env_build(&f);
    assert_null(env_get(env, "HOME"));
    assert_null(env_get(env, "EXTENSION"));
    assert_null(env_get(env, "ORIGINAL_RECIPIENT"));
    assert_string_equal(env_get(env, "SENDER"), "");
    assert_string_equal(env_get(env, "RECIPIENT"), "odd__[31mname__@x");
    assert_string_equal(env_get(env, "LOCAL"), "odd__[31mname__");
    assert_string_equal(env_get(env, "DOMAIN"), "x");
    command_env_free(env);
    /* a recipient without a domain has no DOMAIN */
    struct command_env_fields g = {.recipient = "|/bin/x"};
    env = command_env_build(&g);
    assert_string_equal(env_get(env, "LOCAL"), "|/bin/x");
    assert_null(env_get(env, "DOMAIN"));
    command_env_free(env);
}

/* Postfix's CLIENT_* and SASL_* variables: set when the value is not
 * empty, filtered like the others. */
static void test_env_client_fields(void **state)
{
    (void)state;
    struct command_env_fields f = {
        .recipient = "bob@example.test", .client_address = "192.0.2.7", .client_helo = "evil;`id`.example",
        .client_hostname = "mx.example.org", .client_protocol = "ESMTPSA", .sasl_method = "PLAIN",
        .sasl_username = "bob", .sasl_sender = "",
        .filter = "1234567890!@%-_=+:,./abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    };
    char **env = command_env_build(&f);
    assert_string_equal(env_get(env, "CLIENT_ADDRESS"), "192.0.2.7");
    assert_string_equal(env_get(env, "CLIENT_HELO"), "evil__id_.example");
    assert_string_equal(env_get(env, "CLIENT_HOSTNAME"), "mx.example.org");
    assert_string_equal(env_get(env, "CLIENT_PROTOCOL"), "ESMTPSA");
    assert_string_equal(env_get(env, "SASL_METHOD"), "PLAIN");
    assert_string_equal(env_get(env, "SASL_USERNAME"), "bob");
    assert_null(env_get(env, "SASL_SENDER"));   /* empty: left out */
    command_env_free(env);
}

/* A queue file written as smtpd writes one gives its client; one written
 * as sendmail's (no client_address) gives nothing; nor does garbage. */
static void test_env_client_from_queue_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/tern-envclient-XXXXXX";
    assert_non_null(mkdtemp(dir));
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(dirfd >= 0);
    const char *names[] = {"0123456789ABC", "0123456789ABD"};
    for (int smtp = 1; smtp >= 0; smtp--) {
        struct queue_file_message m;
        queue_file_message_init(&m, names[smtp], 1700000000000000LL, "a@example.org");
        if (smtp) {
            queue_file_message_set_attr(&m, "client_name", "mx.example.org");
            queue_file_message_set_attr(&m, "client_address", "192.0.2.7");
            queue_file_message_set_attr(&m, "helo_name", "mx.example.org");
            queue_file_message_set_attr(&m, "sasl_method", "LOGIN");
            queue_file_message_set_attr(&m, "sasl_username", "bob");
        }
        queue_file_message_set_attr(&m, "protocol", smtp ? "ESMTPA" : "local");
        queue_file_message_add_rcpt(&m, "bob@example.test", "", 0, -1);
        struct queue_file_writer *w;
        assert_int_equal(queue_file_writer_open(dirfd, names[smtp], &w), 0);
        assert_int_equal(queue_file_writer_write(w, "Subject: x\r\n\r\nbody\r\n", 21), 0);
        assert_int_equal(queue_file_writer_finish(w, &m), 0);
        queue_file_message_free(&m);

        int fd = openat(dirfd, names[smtp], O_RDONLY);
        assert_true(fd >= 0);
        struct command_env_fields f = {.recipient = "bob@example.test"};
        struct queue_file_message qm;
        command_env_client(fd, QF_HEADER_SIZE, &f, &qm);
        char **env = command_env_build(&f);
        queue_file_message_free(&qm);
        if (smtp) {
            assert_string_equal(env_get(env, "CLIENT_ADDRESS"), "192.0.2.7");
            assert_string_equal(env_get(env, "CLIENT_HOSTNAME"), "mx.example.org");
            assert_string_equal(env_get(env, "CLIENT_HELO"), "mx.example.org");
            assert_string_equal(env_get(env, "CLIENT_PROTOCOL"), "ESMTPA");
            assert_string_equal(env_get(env, "SASL_METHOD"), "LOGIN");
            assert_string_equal(env_get(env, "SASL_USERNAME"), "bob");
        } else {
            assert_null(env_get(env, "CLIENT_ADDRESS"));
            assert_null(env_get(env, "CLIENT_PROTOCOL"));
            assert_null(env_get(env, "SASL_USERNAME"));
        }
        command_env_free(env);
        close(fd);
        unlinkat(dirfd, names[smtp], 0);
    }
    /* not a queue file: no client, no crash */
    int fd = openat(dirfd, "junk", O_RDWR | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "junk", 4), 4);
    struct command_env_fields f = {.recipient = "bob@example.test"};
    struct queue_file_message qm;
    command_env_client(fd, QF_HEADER_SIZE, &f, &qm);
    assert_null(f.client_address);
    queue_file_message_free(&qm);
    close(fd);
    unlinkat(dirfd, "junk", 0);
    close(dirfd);
    rmdir(dir);
}

/* luser_relay: expanded for the unknown user; hostile values cannot make
 * a command, file or list of it; empty, bad or self-naming: none. */
static void test_luser_relay_target(void **state)
{
    (void)state;
    struct alias_result r;
    assert_int_equal(luser_relay_target("", "ghost@example.test", "ghost", "+", &r), 0);
    alias_result_free(&r);
    assert_int_equal(luser_relay_target("catchall+$local@example.test", "Ghost+x@example.test", "ghost", "+", &r),
                     1);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.t[0].type, ALIAS_ADDRESS);
    assert_string_equal(r.t[0].value, "catchall+Ghost+x@example.test");
    alias_result_free(&r);
    assert_int_equal(luser_relay_target("${extension?ext-}$extension${extension:noext}@$domain",
                                        "ghost+tag@example.test", "ghost", "+", &r), 1);
    assert_string_equal(r.t[0].value, "ext-tag@example.test");
    alias_result_free(&r);
    assert_int_equal(luser_relay_target("${extension?ext-}$extension${extension:noext}@$domain",
                                        "ghost@example.test", "ghost", "+", &r), 1);
    assert_string_equal(r.t[0].value, "noext@example.test");
    alias_result_free(&r);
    /* a local part with list and shell syntax: filtered */
    assert_int_equal(luser_relay_target("$local", "|/bin/sh,x y:/etc@example.test", "x", "", &r), 1);
    assert_string_equal(r.t[0].value, "__bin_sh_x_y__etc");
    alias_result_free(&r);
    /* the recipient itself: a loop */
    assert_int_equal(luser_relay_target("$recipient", "ghost@example.test", "ghost", "", &r), 0);
    alias_result_free(&r);
    assert_int_equal(luser_relay_target("$nosuchname", "ghost@example.test", "ghost", "", &r), 0);
    alias_result_free(&r);
}

static void test_env_filter_and_export(void **state)
{
    (void)state;
    static const char postfix_filter[] =
        "1234567890!@%-_=+:,./abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    setenv("TERN_UNIT_TZ", "Europe/Paris", 1);
    unsetenv("TERN_UNIT_UNSET");
    char *items[] = {"TERN_UNIT_TZ", "TERN_UNIT_UNSET", "FIXED=a b", "{ SPACED = x, y }", "HOME=/evil", "=x"};
    char **exported = command_env_exported(items, sizeof items / sizeof items[0]);
    struct command_env_fields f = {
        .home = "/home/bob", .sender = "a`id`@x.example", .recipient = "bob+$(rm -rf ~);x@example.test",
        .recipient_delimiter = "+", .filter = postfix_filter, .exported = exported,
    };
    char **env = command_env_build(&f);
    /* shell syntax from an address does not survive the filter */
    assert_string_equal(env_get(env, "SENDER"), "a_id_@x.example");
    assert_string_equal(env_get(env, "RECIPIENT"), "bob+__rm_-rf____x@example.test");
    assert_string_equal(env_get(env, "EXTENSION"), "__rm_-rf____x");
    /* exported: set ones pass, unset ones do not, NAME=value sets; the
     * delivery's own names win */
    assert_string_equal(env_get(env, "TERN_UNIT_TZ"), "Europe/Paris");
    assert_null(env_get(env, "TERN_UNIT_UNSET"));
    assert_string_equal(env_get(env, "FIXED"), "a b");
    assert_string_equal(env_get(env, "SPACED"), "x, y");
    assert_string_equal(env_get(env, "HOME"), "/home/bob");
    assert_null(env_get(env, "TERN_UNIT_MARK"));
    size_t n = 0;
    for (char **p = env; *p; p++)
        n += strncmp(*p, "HOME=", 5) == 0;
    assert_int_equal(n, 1);
    command_env_free(env);
    command_env_free(exported);
    char s[] = "a;b c\x01" "d\xc3";
    command_filter(s, postfix_filter);
    assert_string_equal(s, "a_b_c_d_");
}

static void test_command_dir_expand(void **state)
{
    (void)state;
    const char *filter = "abcdefghijklmnopqrstuvwxyz/.+-@";
    struct forward_vars v = {
        .user = "bob", .home = "/home/bob", .shell = "/bin/sh", .recipient = "bob+a;b@example.test",
        .local = "bob+a;b", .domain = "example.test", .extension = "a;b", .recipient_delimiter = "+",
    };
    char *p = command_dir_expand("$home/run/${extension}", &v, filter);
    assert_string_equal(p, "/home/bob/run/a_b");   /* values filtered ... */
    free(p);
    p = command_dir_expand("/srv/$user;x", &v, filter);
    assert_string_equal(p, "/srv/bob;x");          /* ... the configuration's own text not */
    free(p);
    /* an undefined attribute is empty, not a skipped entry */
    v.extension = NULL;
    p = command_dir_expand("$home/run/$extension", &v, filter);
    assert_string_equal(p, "/home/bob/run/");
    free(p);
    p = command_dir_expand("$home${extension?/x}${extension:/plain}", &v, filter);
    assert_string_equal(p, "/home/bob/plain");
    free(p);
    /* unknown names and bad syntax are errors */
    assert_null(command_dir_expand("$nosuch", &v, filter));
    assert_null(command_dir_expand("${home", &v, filter));
}

static int exited(int code)
{
    return (code & 0xff) << 8;  /* as waitpid reports a normal exit */
}

static void test_exit_status_mapping(void **state)
{
    (void)state;
    struct deliver_error err;
    memset(&err, 0, sizeof err);
    assert_int_equal(command_result(exited(0), 0, "chatter", &err), 0);

    assert_int_equal(command_result(exited(EX_TEMPFAIL), 0, "mailbox locked\nmore", &err), -1);
    assert_true(err.temporary);
    assert_string_equal(err.enh, "4.3.0");
    assert_string_equal(err.text, "command died with status 75 (temporary failure): mailbox locked");

    assert_int_equal(command_result(exited(EX_OSERR), 0, NULL, &err), -1);
    assert_true(err.temporary);

    assert_int_equal(command_result(exited(1), 0, "\nno such list\r\n", &err), -1);
    assert_false(err.temporary);
    assert_string_equal(err.enh, "5.3.0");
    assert_string_equal(err.text, "command died with status 1: no such list");

    assert_int_equal(command_result(exited(EX_NOUSER), 0, "", &err), -1);
    assert_false(err.temporary);
    assert_string_equal(err.enh, "5.1.1");
    assert_string_equal(err.text, "command died with status 67 (user unknown)");

    assert_int_equal(command_result(exited(EX_NOPERM), 0, NULL, &err), -1);
    assert_string_equal(err.enh, "5.7.0");

    /* output is made printable */
    assert_int_equal(command_result(exited(2), 0, "bad\x1b]0;title\x07 \xff", &err), -1);
    for (const char *p = err.text; *p; p++)
        assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p != 0x7f);

    assert_int_equal(command_result(SIGKILL, 0, NULL, &err), -1);   /* killed by a signal */
    assert_true(err.temporary);
    assert_string_equal(err.text, "command died with signal 9");

    assert_int_equal(command_result(SIGKILL, 1, NULL, &err), -1);
    assert_true(err.temporary);
    assert_string_equal(err.text, "command time limit exceeded");
}

/* ---------- a real command ---------- */

struct outcome {
    int called;
    struct deliver_error err;
    int ok;
    struct event_base *base;
};

static void on_done(void *arg, const struct deliver_error *err)
{
    struct outcome *o = arg;
    o->called++;
    o->ok = err == NULL;
    if (err)
        o->err = *err;
    event_base_loopbreak(o->base);
}

/* The working directory run() gives the command; required as
 * command_execution_directory makes it. */
static struct {
    const char *cwd;
    int required;
} run_dir = {"/nonexistent-dir", 0};

static void run(const char *command, const char *input, unsigned limit, struct outcome *o)
{
    struct event_base *base = event_base_new();
    command_init(base);
    memset(o, 0, sizeof *o);
    o->base = base;
    int fd = memfd_create("test", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, input, strlen(input)), (ssize_t)strlen(input));
    lseek(fd, 0, SEEK_SET);
    struct command_env_fields f = {.sender = "s@x", .recipient = "r@y"};
    char **env = command_env_build(&f);
    struct command_request req = {
        .command = command, .env = env, .uid = getuid(), .gid = getgid(),
        .cwd = run_dir.cwd, .cwd_required = run_dir.required, .stdin_fd = fd, .time_limit = limit,
    };
    struct deliver_error err;
    if (getuid() == 0)
        req.uid = 65534, req.gid = 65534;   /* root: never as root */
    assert_int_equal(command_start(&req, on_done, o, &err), 0);
    close(fd);
    command_env_free(env);
    event_base_dispatch(base);
    command_shutdown();
    event_base_free(base);
    assert_int_equal(o->called, 1);
}

static void test_run_reads_input_and_environment(void **state)
{
    (void)state;
    struct outcome o;
    run("read line; test \"$line\" = hello && test \"$SENDER\" = s@x && test \"$(pwd)\" = / "
        "&& test -z \"$TERN_UNIT_MARK\"",
        "hello\n", 10, &o);
    assert_true(o.ok);
    run("echo first line; echo second; exit 1", "", 10, &o);
    assert_false(o.ok);
    assert_string_equal(o.err.text, "command died with status 1: first line");
    run("exit 75", "", 10, &o);
    assert_true(o.err.temporary);
}

static void test_run_execution_directory(void **state)
{
    (void)state;
    struct outcome o;
    run_dir.cwd = "/tmp";
    run_dir.required = 1;
    run("test \"$(pwd)\" = /tmp", "", 10, &o);
    assert_true(o.ok);
    /* one that cannot be entered: deferred, not run elsewhere */
    run_dir.cwd = "/nonexistent-dir";
    run("exit 0", "", 10, &o);
    assert_false(o.ok);
    assert_true(o.err.temporary);
    assert_string_equal(o.err.text, "command died with status 75 (temporary failure): "
                                    "cannot change to command_execution_directory");
    run_dir.required = 0;
}

static void test_run_output_is_bounded_and_time_limited(void **state)
{
    (void)state;
    struct outcome o;
    /* far more output than is kept: read and dropped, never blocking the command */
    run("head -c 1000000 /dev/zero | tr '\\0' x; exit 3", "", 10, &o);
    assert_false(o.ok);
    assert_true(strlen(o.err.text) < sizeof o.err.text);
    run("sleep 30 & sleep 30", "", 1, &o);
    assert_true(o.err.temporary);
    assert_string_equal(o.err.text, "command time limit exceeded");
}

static void test_refuses_root(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    struct command_request req = {.command = "true", .uid = 0, .gid = 0, .stdin_fd = 0, .time_limit = 1};
    struct deliver_error err;
    assert_int_equal(command_start(&req, on_done, NULL, &err), -1);
    assert_string_equal(err.text, "refusing to run a command as root");
}

/* ---------- list files ---------- */

static struct stat file_stat(mode_t mode, uid_t uid)
{
    struct stat st;
    memset(&st, 0, sizeof st);
    st.st_mode = mode;
    st.st_uid = uid;
    st.st_size = 100;
    return st;
}

static void test_forward_rules(void **state)
{
    (void)state;
    char why[128];
    struct stat ok = file_stat(S_IFREG | 0644, 1000);
    assert_int_equal(list_file_check(LIST_FORWARD, &ok, NULL, 1000, why, sizeof why), 0);
    struct stat roots = file_stat(S_IFREG | 0600, 0);
    assert_int_equal(list_file_check(LIST_FORWARD, &roots, NULL, 1000, why, sizeof why), 0);
    struct stat other = file_stat(S_IFREG | 0644, 1001);
    assert_int_equal(list_file_check(LIST_FORWARD, &other, NULL, 1000, why, sizeof why), -1);
    assert_string_equal(why, "owned by uid 1001, not by the user or root");
    struct stat group = file_stat(S_IFREG | 0664, 1000);
    assert_int_equal(list_file_check(LIST_FORWARD, &group, NULL, 1000, why, sizeof why), -1);
    assert_string_equal(why, "writable by group or others");
    struct stat world = file_stat(S_IFREG | 0646, 1000);
    assert_int_equal(list_file_check(LIST_FORWARD, &world, NULL, 1000, why, sizeof why), -1);
    struct stat dir = file_stat(S_IFDIR | 0755, 1000);
    assert_int_equal(list_file_check(LIST_FORWARD, &dir, NULL, 1000, why, sizeof why), -1);
    assert_string_equal(why, "not a regular file");
    struct stat big = file_stat(S_IFREG | 0644, 1000);
    big.st_size = LIST_FILE_MAX + 1;
    assert_int_equal(list_file_check(LIST_FORWARD, &big, NULL, 1000, why, sizeof why), -1);
}

static void test_include_rules(void **state)
{
    (void)state;
    char why[128];
    struct stat dir = file_stat(S_IFDIR | 0755, 0);
    struct stat tmp = file_stat(S_IFDIR | 01777, 0);
    struct stat open_dir = file_stat(S_IFDIR | 0777, 0);
    /* anyone's file: its owner's rights apply */
    struct stat list = file_stat(S_IFREG | 0644, 1234);
    assert_int_equal(list_file_check(LIST_INCLUDE, &list, &dir, 0, why, sizeof why), 0);
    assert_int_equal(list_file_check(LIST_INCLUDE, &list, &tmp, 0, why, sizeof why), 0);
    assert_int_equal(list_file_check(LIST_INCLUDE, &list, &open_dir, 0, why, sizeof why), -1);
    assert_string_equal(why, "in a directory others may write to");
    struct stat world = file_stat(S_IFREG | 0666, 1234);
    assert_int_equal(list_file_check(LIST_INCLUDE, &world, &dir, 0, why, sizeof why), -1);
    assert_string_equal(why, "writable by group or others");
    struct stat group = file_stat(S_IFREG | 0464, 1234);
    assert_int_equal(list_file_check(LIST_INCLUDE, &group, &dir, 0, why, sizeof why), -1);
}

static void test_list_parse(void **state)
{
    (void)state;
    const char text[] = "# staff\n"
                        "  alice, bob@example.test\r\n"
                        "\n"
                        "|/usr/bin/archive --list staff\n"
                        "   # indented comment\n"
                        "/var/log/staff.mbox\n"
                        "\\carol :include:/etc/mail/more";
    struct alias_result r;
    assert_int_equal(list_file_parse(text, sizeof text - 1, &r), 0);
    assert_int_equal(r.n, 6);
    assert_int_equal(r.t[0].type, ALIAS_LOCAL_USER);
    assert_string_equal(r.t[0].value, "alice");
    assert_int_equal(r.t[1].type, ALIAS_ADDRESS);
    assert_int_equal(r.t[2].type, ALIAS_COMMAND);
    assert_string_equal(r.t[2].value, "/usr/bin/archive --list staff");
    assert_int_equal(r.t[3].type, ALIAS_FILE);
    assert_string_equal(r.t[3].value, "/var/log/staff.mbox");
    assert_int_equal(r.t[4].type, ALIAS_LOCAL_USER);
    assert_string_equal(r.t[4].value, "carol");
    assert_int_equal(r.t[5].type, ALIAS_INCLUDE);
    alias_result_free(&r);
    assert_int_equal(list_file_parse("", 0, &r), 0);
    assert_int_equal(r.n, 0);
    alias_result_free(&r);
    assert_int_equal(list_file_parse("a\0b", 3, &r), -1);
    alias_result_free(&r);
    assert_int_equal(list_file_parse("\"open", 5, &r), -1);
    alias_result_free(&r);
}

static void test_list_read(void **state)
{
    (void)state;
    char dir[] = "/tmp/tern-list-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = xasprintf("%s/forward", dir);
    char *link = xasprintf("%s/link", dir);
    struct alias_result r;
    uid_t owner;
    char why[256];
    assert_int_equal(list_file_read(LIST_FORWARD, path, getuid(), &r, &owner, why, sizeof why), 1);
    FILE *f = fopen(path, "w");
    fputs("me@example.test\n", f);
    fclose(f);
    chmod(path, 0600);
    assert_int_equal(list_file_read(LIST_FORWARD, path, getuid(), &r, &owner, why, sizeof why), 0);
    assert_int_equal(owner, getuid());
    assert_int_equal(r.n, 1);
    alias_result_free(&r);
    chmod(path, 0620);
    assert_int_equal(list_file_read(LIST_FORWARD, path, getuid(), &r, &owner, why, sizeof why), -1);
    assert_non_null(strstr(why, "forward is writable by group or others"));
    chmod(path, 0600);
    /* a symbolic link in the last component is not followed */
    assert_int_equal(symlink(path, link), 0);
    assert_int_equal(list_file_read(LIST_FORWARD, link, getuid(), &r, &owner, why, sizeof why), -1);
    assert_non_null(strstr(why, "cannot open"));
    unlink(link);
    unlink(path);
    rmdir(dir);
    free(path);
    free(link);
}

static void test_forward_path_expand(void **state)
{
    (void)state;
    struct forward_vars v = {
        .user = "bob", .home = "/home/bob", .shell = "/bin/sh", .recipient = "bob+lists@example.test",
        .local = "bob+lists", .domain = "example.test", .extension = "lists", .recipient_delimiter = "+",
    };
    char *p = forward_path_expand("$home/.forward${recipient_delimiter}${extension}", &v);
    assert_string_equal(p, "/home/bob/.forward+lists");
    free(p);
    p = forward_path_expand("$(home)/.forward", &v);
    assert_string_equal(p, "/home/bob/.forward");
    free(p);
    p = forward_path_expand("/var/forward/$user${extension?-}${extension}$$", &v);
    assert_string_equal(p, "/var/forward/bob-lists$");
    free(p);
    /* without an extension: an entry that names it is skipped */
    v.extension = NULL;
    v.recipient_delimiter = "";
    assert_null(forward_path_expand("$home/.forward${recipient_delimiter}${extension}", &v));
    assert_null(forward_path_expand("$home/.forward$extension", &v));
    p = forward_path_expand("/var/forward/$user${extension?-}${extension:plain}", &v);
    assert_string_equal(p, "/var/forward/bobplain");
    free(p);
    /* unknown names and bad syntax skip the entry */
    assert_null(forward_path_expand("$nosuch/.forward", &v));
    assert_null(forward_path_expand("${home/.forward", &v));
    assert_null(forward_path_expand("$/x", &v));
    assert_null(forward_path_expand("", &v));
}

int main(void)
{
    /* nothing of the test's environment may reach a command */
    setenv("TERN_UNIT_MARK", "leaked", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_fields),
        cmocka_unit_test(test_env_cleans_and_omits),
        cmocka_unit_test(test_env_client_fields),
        cmocka_unit_test(test_env_client_from_queue_file),
        cmocka_unit_test(test_luser_relay_target),
        cmocka_unit_test(test_env_filter_and_export),
        cmocka_unit_test(test_exit_status_mapping),
        cmocka_unit_test(test_run_reads_input_and_environment),
        cmocka_unit_test(test_run_execution_directory),
        cmocka_unit_test(test_run_output_is_bounded_and_time_limited),
        cmocka_unit_test(test_refuses_root),
        cmocka_unit_test(test_forward_rules),
        cmocka_unit_test(test_include_rules),
        cmocka_unit_test(test_list_parse),
        cmocka_unit_test(test_list_read),
        cmocka_unit_test(test_forward_path_expand),
        cmocka_unit_test(test_command_dir_expand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
