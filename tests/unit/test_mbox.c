/* Tests for mbox: the From line, mboxrd quoting (also across read chunks),
 * message separation, both locks and their bounded waits, refusal of
 * symlinks and special files, and cut-back of failed appends. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "local/deliver.h"
#include "local/mbox.h"
#include "deliver_fixture.h"
#include "test_fixture.h"
#include "util/mem.h"
#include "util/strbuf.h"

/* ---- fixture ------------------------------------------------------------ */

struct fx {
    struct deliver_fx d;
    char *mbox;
    char *lock;
};

static const struct mbox_lock_policy quick = {.wait_ms = 300, .retry_ms = 20, .stale_seconds = 300};

static int setup(void **state)
{
    struct fx *fx = xcalloc(1, sizeof *fx);
    *state = fx;
    if (deliver_fx_setup(&fx->d, "mbox") != 0)
        return -1;
    fx->mbox = xasprintf("%s/mbox", fx->d.base);
    fx->lock = xasprintf("%s/mbox.lock", fx->d.base);
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    deliver_fx_teardown(&fx->d);
    free(fx->mbox);
    free(fx->lock);
    free(fx);
    return 0;
}

static void write_file(const char *path, const char *data)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
    close(fd);
}

static void assert_file_is(const char *path, const char *expect, size_t expect_len)
{
    size_t len;
    char *got = deliver_fx_slurp(path, &len);
    int same = len == expect_len && memcmp(got, expect, len) == 0;
    free(got);
    if (!same)
        fail_msg("%s: got %zu bytes, want %zu", path, len, expect_len);
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void assert_temp_error(int rc, const struct deliver_error *err, const char *enh,
                              const char *text_part)
{
    assert_int_equal(rc, -1);
    assert_int_equal(err->temporary, 1);
    assert_string_equal(err->enh, enh);
    if (!strstr(err->text, text_part))
        fail_msg("error text \"%s\" lacks \"%s\"", err->text, text_part);
}

/* mboxrd by the book, the obvious way: CRLF -> LF, then each line matching
 * ^>*From  gets a '>', then a final newline if missing. */
static char *reference_mbox_body(const char *in, size_t len, size_t *out_len)
{
    struct strbuf lf = STRBUF_INIT;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n')
            continue;
        strbuf_putc(&lf, in[i]);
    }
    struct strbuf out = STRBUF_INIT;
    const char *p = strbuf_str(&lf), *end = p + lf.len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t line_len = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        size_t gt = 0;
        while (gt < line_len && p[gt] == '>')
            gt++;
        if (line_len - gt >= 5 && memcmp(p + gt, "From ", 5) == 0)
            strbuf_putc(&out, '>');
        strbuf_append(&out, p, line_len);
        p += line_len;
    }
    if (out.len > 0 && out.buf[out.len - 1] != '\n')
        strbuf_putc(&out, '\n');
    strbuf_free(&lf);
    *out_len = out.len;
    return strbuf_detach(&out);
}

#define FROM_LINE "From a@b.example Tue Nov 14 22:13:20 2023\n"

/* ---- tests -------------------------------------------------------------- */

static void test_from_line_format(void **state)
{
    (void)state;
    char *s = mbox_from_line("a@b.example", 1700000000);
    assert_string_equal(s, FROM_LINE);
    free(s);
    s = mbox_from_line("", 1699142400);
    assert_string_equal(s, "From MAILER-DAEMON Sun Nov  5 00:00:00 2023\n");
    free(s);
    s = mbox_from_line(NULL, 1699142400);
    assert_string_equal(s, "From MAILER-DAEMON Sun Nov  5 00:00:00 2023\n");
    free(s);
    s = mbox_from_line("\"a b\"\t\r\n\x7f@x", 1699142400);
    assert_string_equal(s, "From \"a_b\"____@x Sun Nov  5 00:00:00 2023\n");
    free(s);
    /* 0 means now: the year at least must be this one */
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    s = mbox_from_line("x@y", 0);
    char year[16];
    snprintf(year, sizeof year, " %d\n", tm.tm_year + 1900);
    assert_true(tf_ends_with(s, year));
    free(s);
}

static void test_deliver_exact_bytes(void **state)
{
    struct fx *fx = *state;
    const char *content = "Subject: hi\r\n\r\nbody\r\nlone\rCR\r\n";
    struct deliver_input in = deliver_fx_input(&fx->d, "Return-Path: <a@b.example>\nDelivered-To: u@d\n",
                                         content, strlen(content));
    struct deliver_error err = {0};
    assert_int_equal(mbox_deliver(fx->mbox, (uid_t)-1, (gid_t)-1, &in, &err), 0);
    const char *expect = FROM_LINE "Return-Path: <a@b.example>\nDelivered-To: u@d\n"
                                   "Subject: hi\n\nbody\nlone\rCR\n\n";
    assert_file_is(fx->mbox, expect, strlen(expect));
    struct stat st;
    assert_int_equal(stat(fx->mbox, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_false(exists(fx->lock));
}

static void test_from_quoting(void **state)
{
    struct fx *fx = *state;
    const char *content = "Subject: q\r\n\r\nFrom x\r\n>From y\r\n>>From z\r\nFromage\r\nFrom\r\n"
                          " From a\r\nFrom\tx\r\n>>>\r\n>Fro\r\nfrom lower\r\n>F>From \r\n"
                          "From \r\nFrom ";
    const char *body = "Subject: q\n\n>From x\n>>From y\n>>>From z\nFromage\nFrom\n"
                       " From a\nFrom\tx\n>>>\n>Fro\nfrom lower\n>F>From \n"
                       ">From \n>From \n";
    struct deliver_input in = deliver_fx_input(&fx->d, NULL, content, strlen(content));
    in.sender = "";
    in.arrival = 1699142400;
    struct deliver_error err = {0};
    assert_int_equal(mbox_deliver(fx->mbox, (uid_t)-1, (gid_t)-1, &in, &err), 0);
    char *expect = xasprintf("From MAILER-DAEMON Sun Nov  5 00:00:00 2023\n%s\n", body);
    assert_file_is(fx->mbox, expect, strlen(expect));
    free(expect);

    /* the reference agrees with the hand-written expectation */
    size_t ref_len;
    char *ref = reference_mbox_body(content, strlen(content), &ref_len);
    assert_int_equal(ref_len, strlen(body));
    assert_memory_equal(ref, body, ref_len);
    free(ref);
}

/* "From " and ">>From " split by the 64 KiB read boundaries, and a line
 * start decided by a CRLF split by one. */
static void test_quoting_across_chunks(void **state)
{
    struct fx *fx = *state;
    const size_t k = 64 * 1024, len = 3 * k + 5000;
    char *content = xmalloc(len);
    for (size_t i = 0; i < len; i++)
        content[i] = (char)('a' + i % 26);
    for (size_t i = 60; i + 1 < len; i += 61) {
        content[i] = '\r';
        content[i + 1] = '\n';
    }
    /* line start at k - 1: "F" | "rom " */
    memcpy(content + k - 3, "\r\nFrom x", 8);
    /* line start at 2k - 2: ">>" | "From " */
    memcpy(content + 2 * k - 4, "\r\n>>From y", 10);
    /* CR | LF, then "From " */
    memcpy(content + 3 * k - 1, "\r\nFrom z", 8);
    /* near misses straddling too */
    memcpy(content + 3 * k + 1000 - 2, "\r\nFrom\r\n", 8);

    size_t expect_len;
    char *expect_body = reference_mbox_body(content, len, &expect_len);
    struct deliver_input in = deliver_fx_input(&fx->d, NULL, content, len);
    struct deliver_error err = {0};
    assert_int_equal(mbox_deliver(fx->mbox, (uid_t)-1, (gid_t)-1, &in, &err), 0);
    struct strbuf want = STRBUF_INIT;
    strbuf_puts(&want, FROM_LINE);
    strbuf_append(&want, expect_body, expect_len);
    strbuf_putc(&want, '\n');
    assert_file_is(fx->mbox, want.buf, want.len);
    /* the three planted lines really were quoted */
    assert_non_null(strstr(want.buf, "\n>From x"));
    assert_non_null(strstr(want.buf, "\n>>>From y"));
    assert_non_null(strstr(want.buf, "\n>From z"));
    assert_non_null(strstr(want.buf, "\nFrom\n"));
    strbuf_free(&want);
    free(expect_body);
    free(content);
}

static void test_two_messages_separated(void **state)
{
    struct fx *fx = *state;
    struct deliver_input in = deliver_fx_input(&fx->d, NULL, "S: 1\r\n\r\none\r\n", 13);
    struct deliver_error err = {0};
    assert_int_equal(mbox_deliver(fx->mbox, (uid_t)-1, (gid_t)-1, &in, &err), 0);
    in = deliver_fx_input(&fx->d, "Delivered-To: u@d\n", "S: 2\r\n\r\ntwo", 11);
    in.sender = "c@d";
    in.arrival = 1699142400;
    assert_int_equal(mbox_deliver(fx->mbox, (uid_t)-1, (gid_t)-1, &in, &err), 0);
    const char *expect = FROM_LINE "S: 1\n\none\n\n"
                                   "From c@d Sun Nov  5 00:00:00 2023\nDelivered-To: u@d\nS: 2\n\ntwo\n\n";
    assert_file_is(fx->mbox, expect, strlen(expect));
    assert_false(exists(fx->lock));
}

/* mailbox_size_limit: a message that makes the mailbox grow past the
 * limit bounces 5.2.2 and leaves the mailbox as it was; one that fits
 * exactly is delivered. */
static void test_size_limit(void **state)
{
    struct fx *fx = *state;
    struct deliver_input in = deliver_fx_input(&fx->d, NULL, "S: 1\r\n\r\none\r\n", 13);
    struct deliver_error err = {0};
    assert_int_equal(mbox_deliver(fx->mbox, (uid_t)-1, (gid_t)-1, &in, &err), 0);
    struct stat st;
    assert_int_equal(stat(fx->mbox, &st), 0);
    off_t first = st.st_size;   /* the second message is as long */
    in.size_limit = 2 * first - 1;
    assert_int_equal(mbox_deliver(fx->mbox, (uid_t)-1, (gid_t)-1, &in, &err), -1);
    assert_false(err.temporary);
    assert_string_equal(err.enh, "5.2.2");
    assert_non_null(strstr(err.text, "mailbox full"));
    assert_int_equal(stat(fx->mbox, &st), 0);
    assert_int_equal(st.st_size, first);
    /* already at the limit: refused before anything is written */
    in.size_limit = first;
    memset(&err, 0, sizeof err);
    assert_int_equal(mbox_deliver(fx->mbox, (uid_t)-1, (gid_t)-1, &in, &err), -1);
    assert_string_equal(err.enh, "5.2.2");
    assert_int_equal(stat(fx->mbox, &st), 0);
    assert_int_equal(st.st_size, first);
    in.size_limit = 2 * first;
    assert_int_equal(mbox_deliver(fx->mbox, (uid_t)-1, (gid_t)-1, &in, &err), 0);
    assert_int_equal(stat(fx->mbox, &st), 0);
    assert_int_equal(st.st_size, 2 * first);
    assert_false(exists(fx->lock));
}

static void test_unterminated_existing_mailbox(void **state)
{
    struct fx *fx = *state;
    write_file(fx->mbox, "From x@y Sun Nov  5 00:00:00 2023\nS: 0\n\nno newline");
    struct deliver_input in = deliver_fx_input(&fx->d, NULL, "S: 1\r\n", 6);
    struct deliver_error err = {0};
    assert_int_equal(mbox_deliver(fx->mbox, (uid_t)-1, (gid_t)-1, &in, &err), 0);
    const char *expect = "From x@y Sun Nov  5 00:00:00 2023\nS: 0\n\nno newline\n" FROM_LINE
                         "S: 1\n\n";
    assert_file_is(fx->mbox, expect, strlen(expect));
}

static char *big_message(size_t *len)
{
    *len = 200 * 1024 + 17;
    char *m = xmalloc(*len);
    for (size_t i = 0; i < *len; i++)
        m[i] = (i % 80 == 78) ? '\r' : (i % 80 == 79) ? '\n' : (char)('A' + i % 23);
    memcpy(m + 80, "From inside\r\n", 13);
    return m;
}

/* Every write of the append fails in turn; each time the mailbox must be
 * exactly what it was. Also a failing fsync. */
static void test_truncate_back_on_failure(void **state)
{
    struct fx *fx = *state;
    struct deliver_input in = deliver_fx_input(&fx->d, NULL, "S: first\r\n\r\nkeep me\r\n", 21);
    struct deliver_error err = {0};
    assert_int_equal(mbox_deliver(fx->mbox, (uid_t)-1, (gid_t)-1, &in, &err), 0);
    size_t before_len;
    char *before = deliver_fx_slurp(fx->mbox, &before_len);

    size_t len;
    char *content = big_message(&len);
    in = deliver_fx_input(&fx->d, "Delivered-To: u@d\n", content, len);

    /* count the writes of a good append, into a scratch copy */
    char *scratch = xasprintf("%s/scratch", fx->d.base);
    tf_fs_install();
    assert_int_equal(mbox_deliver(scratch, (uid_t)-1, (gid_t)-1, &in, &err), 0);
    tf_fs_uninstall();
    int writes = tf_fs_calls(TF_WRITE);
    assert_true(writes >= 5); /* From line, several chunks, the blank line */

    for (int nth = 1; nth <= writes; nth++) {
        deliver_fx_inject(TF_WRITE, nth, ENOSPC, 1);
        memset(&err, 0, sizeof err);
        int rc = mbox_deliver(fx->mbox, (uid_t)-1, (gid_t)-1, &in, &err);
        tf_fs_uninstall();
        assert_temp_error(rc, &err, "4.2.2", "No space left on device");
        assert_file_is(fx->mbox, before, before_len);
        assert_false(exists(fx->lock));
    }

    deliver_fx_inject(TF_FSYNC, 1, EIO, 0);
    memset(&err, 0, sizeof err);
    int rc = mbox_deliver(fx->mbox, (uid_t)-1, (gid_t)-1, &in, &err);
    tf_fs_uninstall();
    assert_temp_error(rc, &err, "4.2.0", "cannot sync mailbox");
    assert_file_is(fx->mbox, before, before_len);

    /* the queue file ends early: nothing half-written stays either */
    in.length += 10;
    memset(&err, 0, sizeof err);
    rc = mbox_deliver(fx->mbox, (uid_t)-1, (gid_t)-1, &in, &err);
    assert_temp_error(rc, &err, "4.3.0", "cannot read queue file");
    assert_file_is(fx->mbox, before, before_len);

    free(scratch);
    free(content);
    free(before);
}

static void test_refuses_symlinks_and_special_files(void **state)
{
    struct fx *fx = *state;
    struct deliver_input in = deliver_fx_input(&fx->d, NULL, "x\r\n", 3);
    struct deliver_error err = {0};

    char *target = xasprintf("%s/target", fx->d.base);
    write_file(target, "original\n");
    assert_int_equal(symlink(target, fx->mbox), 0);
    int rc = mbox_deliver(fx->mbox, (uid_t)-1, (gid_t)-1, &in, &err);
    assert_temp_error(rc, &err, "4.2.0", "symbolic link");
    assert_file_is(target, "original\n", 9);
    assert_false(exists(fx->lock));
    assert_int_equal(unlink(fx->mbox), 0);

    /* dangling: must not create the target */
    char *nowhere = xasprintf("%s/nowhere", fx->d.base);
    assert_int_equal(symlink(nowhere, fx->mbox), 0);
    rc = mbox_deliver(fx->mbox, (uid_t)-1, (gid_t)-1, &in, &err);
    assert_temp_error(rc, &err, "4.2.0", "symbolic link");
    assert_false(exists(nowhere));
    assert_int_equal(unlink(fx->mbox), 0);

    assert_int_equal(mkdir(fx->mbox, 0700), 0);
    rc = mbox_deliver(fx->mbox, (uid_t)-1, (gid_t)-1, &in, &err);
    assert_temp_error(rc, &err, "4.2.0", "not a regular file");
    assert_int_equal(rmdir(fx->mbox), 0);

    /* a FIFO with no reader: refused, without hanging */
    assert_int_equal(mkfifo(fx->mbox, 0600), 0);
    rc = mbox_deliver(fx->mbox, (uid_t)-1, (gid_t)-1, &in, &err);
    assert_temp_error(rc, &err, "4.2.0", "not a regular file");
    assert_int_equal(unlink(fx->mbox), 0);

    /* hard-linked: someone else's file could be behind it */
    assert_int_equal(link(target, fx->mbox), 0);
    rc = mbox_deliver(fx->mbox, (uid_t)-1, (gid_t)-1, &in, &err);
    assert_temp_error(rc, &err, "4.2.0", "2 hard links");
    assert_file_is(target, "original\n", 9);
    assert_false(exists(fx->lock));

    free(nowhere);
    free(target);
}

static void test_missing_directory(void **state)
{
    struct fx *fx = *state;
    char *path = xasprintf("%s/nodir/mbox", fx->d.base);
    struct deliver_input in = deliver_fx_input(&fx->d, NULL, "x\r\n", 3);
    struct deliver_error err = {0};
    int rc = mbox_deliver(path, (uid_t)-1, (gid_t)-1, &in, &err);
    assert_temp_error(rc, &err, "4.2.0", "No such file or directory");
    rc = mbox_deliver("", (uid_t)-1, (gid_t)-1, &in, &err);
    assert_int_equal(rc, -1);
    assert_int_equal(err.temporary, 1);
    free(path);
}

static long long elapsed_ms(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)(now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

static void test_held_dotlock_times_out(void **state)
{
    struct fx *fx = *state;
    write_file(fx->lock, "");
    struct deliver_input in = deliver_fx_input(&fx->d, NULL, "x\r\n", 3);
    struct deliver_error err = {0};
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int rc = mbox_deliver_with_policy(fx->mbox, (uid_t)-1, (gid_t)-1, &in, &quick, &err);
    long long took = elapsed_ms(&start);
    assert_temp_error(rc, &err, "4.2.0", "lock file");
    assert_true(took >= 290); /* ms rounding */
    assert_true(took < 3000);
    assert_true(exists(fx->lock)); /* not ours to remove */
    assert_false(exists(fx->mbox));
}

static void test_stale_dotlock_removed(void **state)
{
    struct fx *fx = *state;
    write_file(fx->lock, "");
    struct timeval old[2];
    gettimeofday(&old[0], NULL);
    old[0].tv_sec -= 1000;
    old[1] = old[0];
    assert_int_equal(utimes(fx->lock, old), 0);
    struct deliver_input in = deliver_fx_input(&fx->d, NULL, "x\r\n", 3);
    struct deliver_error err = {0};
    assert_int_equal(mbox_deliver_with_policy(fx->mbox, (uid_t)-1, (gid_t)-1, &in, &quick, &err), 0);
    assert_false(exists(fx->lock));
    assert_file_is(fx->mbox, FROM_LINE "x\n\n", strlen(FROM_LINE) + 3);
}

static void test_dotlock_released_while_waiting(void **state)
{
    struct fx *fx = *state;
    write_file(fx->lock, "");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct timespec ts = {0, 200 * 1000000};
        nanosleep(&ts, NULL);
        unlink(fx->lock);
        _exit(0);
    }
    struct mbox_lock_policy patient = quick;
    patient.wait_ms = 5000;
    struct deliver_input in = deliver_fx_input(&fx->d, NULL, "x\r\n", 3);
    struct deliver_error err = {0};
    int rc = mbox_deliver_with_policy(fx->mbox, (uid_t)-1, (gid_t)-1, &in, &patient, &err);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(rc, 0);
    assert_false(exists(fx->lock));
    assert_file_is(fx->mbox, FROM_LINE "x\n\n", strlen(FROM_LINE) + 3);
}

/* The local agent's waits share one allowance: a lock kept by someone makes
 * the first delivery wait at most the allowance (not the policy's 5 s), and
 * the next ones, with it spent, fail at once instead of stalling the loop. */
static void test_budgeted_waits_share_one_allowance(void **state)
{
    struct fx *fx = *state;
    write_file(fx->lock, "");   /* held, and fresh: never stale */
    struct mbox_lock_policy budgeted = quick;
    budgeted.wait_ms = 5000;
    budgeted.budgeted = 1;
    struct deliver_input in = deliver_fx_input(&fx->d, NULL, "x\r\n", 3);
    long long took[3];
    for (int i = 0; i < 3; i++) {
        struct deliver_error err = {0};
        struct timespec start;
        clock_gettime(CLOCK_MONOTONIC, &start);
        int rc = mbox_deliver_with_policy(fx->mbox, (uid_t)-1, (gid_t)-1, &in, &budgeted, &err);
        took[i] = elapsed_ms(&start);
        assert_temp_error(rc, &err, "4.2.0", "still held");
    }
    assert_true(took[0] < 2500);                 /* the allowance (250 ms), not the policy's 5 s */
    assert_true(took[1] + took[2] < took[0] + 200);   /* spent: the next waits are a refill's worth */
    /* an unbudgeted policy still waits its own time */
    struct deliver_error err = {0};
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    assert_int_equal(mbox_deliver_with_policy(fx->mbox, (uid_t)-1, (gid_t)-1, &in, &quick, &err), -1);
    assert_true(elapsed_ms(&start) >= 290);
}

/* Another process (a mail reader) holds the fcntl lock. */
static void test_fcntl_lock_held(void **state)
{
    struct fx *fx = *state;
    write_file(fx->mbox, "");
    int ready[2], release[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(release), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        close(release[1]);
        int fd = open(fx->mbox, O_RDWR);
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        if (fd < 0 || fcntl(fd, F_SETLKW, &fl) != 0)
            _exit(1);
        (void)!write(ready[1], "x", 1);
        char c;
        (void)!read(release[0], &c, 1);
        _exit(0);
    }
    close(ready[1]);
    close(release[0]);
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);

    struct deliver_input in = deliver_fx_input(&fx->d, NULL, "x\r\n", 3);
    struct deliver_error err = {0};
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int rc = mbox_deliver_with_policy(fx->mbox, (uid_t)-1, (gid_t)-1, &in, &quick, &err);
    long long took = elapsed_ms(&start);
    assert_temp_error(rc, &err, "4.2.0", "still locked");
    assert_true(took >= 290); /* ms rounding */
    assert_false(exists(fx->lock)); /* our dot-lock is released on failure */
    assert_file_is(fx->mbox, "", 0);

    close(release[1]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(ready[0]);
    assert_int_equal(mbox_deliver_with_policy(fx->mbox, (uid_t)-1, (gid_t)-1, &in, &quick, &err), 0);
    assert_file_is(fx->mbox, FROM_LINE "x\n\n", strlen(FROM_LINE) + 3);
}

static void test_dotlock_denied_falls_back_to_fcntl(void **state)
{
    struct fx *fx = *state;
    struct deliver_input in = deliver_fx_input(&fx->d, NULL, "x\r\n", 3);
    struct deliver_error err = {0};
    tf_fs_install();
    tf_fs_arm(TF_OPEN, (struct tf_fault){.nth = 1, .count = TF_ALWAYS, .err = EACCES, .path_suffix = ".lock"});
    assert_int_equal(mbox_deliver_with_policy(fx->mbox, (uid_t)-1, (gid_t)-1, &in, &quick, &err), 0);
    assert_int_equal(mbox_deliver_with_policy(fx->mbox, (uid_t)-1, (gid_t)-1, &in, &quick, &err), 0);
    tf_fs_uninstall();
    assert_int_equal(tf_fs_fault_calls(TF_OPEN), 2);
    assert_false(exists(fx->lock));
    assert_file_is(fx->mbox, FROM_LINE "x\n\n" FROM_LINE "x\n\n", 2 * (strlen(FROM_LINE) + 3));

    /* any other lock-file error is not ignored */
    tf_fs_install();
    tf_fs_arm(TF_OPEN, (struct tf_fault){.nth = 1, .err = EIO, .path_suffix = ".lock"});
    int rc = mbox_deliver_with_policy(fx->mbox, (uid_t)-1, (gid_t)-1, &in, &quick, &err);
    tf_fs_uninstall();
    assert_temp_error(rc, &err, "4.2.0", "cannot create lock file");
}

static void test_dotlock_denied_real(void **state)
{
    struct fx *fx = *state;
    write_file(fx->mbox, "");
    struct deliver_input in = deliver_fx_input(&fx->d, NULL, "x\r\n", 3);
    /* DAC does not bind root: as root, the mailbox and its directory belong
     * to nobody and the delivery runs under nobody's file-system identity. */
    int as_root = geteuid() == 0;
    if (as_root) {
        assert_int_equal(chown(fx->mbox, TF_NOBODY_UID, TF_NOBODY_GID), 0);
        assert_int_equal(chown(fx->d.base, TF_NOBODY_UID, TF_NOBODY_GID), 0);
    }
    assert_int_equal(chmod(fx->d.base, 0500), 0);
    struct deliver_error err = {0};
    if (as_root)
        assert_int_equal(tf_fs_identity(TF_NOBODY_UID, TF_NOBODY_GID), 0);
    int rc = mbox_deliver_with_policy(fx->mbox, (uid_t)-1, (gid_t)-1, &in, &quick, &err);
    if (as_root)
        assert_int_equal(tf_fs_identity(0, 0), 0);
    chmod(fx->d.base, 0700);
    assert_int_equal(rc, 0);
    assert_file_is(fx->mbox, FROM_LINE "x\n\n", strlen(FROM_LINE) + 3);
}

static void test_create_owner(void **state)
{
    struct fx *fx = *state;
    if (geteuid() != 0)
        test_skip("giving files away needs CAP_CHOWN: run as root");
    struct deliver_input in = deliver_fx_input(&fx->d, NULL, "x\r\n", 3);
    struct deliver_error err = {0};
    assert_int_equal(mbox_deliver(fx->mbox, 4321, 4322, &in, &err), 0);
    struct stat st;
    assert_int_equal(stat(fx->mbox, &st), 0);
    assert_int_equal(st.st_uid, 4321);
    assert_int_equal(st.st_gid, 4322);
    assert_int_equal(st.st_mode & 07777, 0600);
    /* the owner's next message goes in */
    assert_int_equal(mbox_deliver(fx->mbox, 4321, 4322, &in, &err), 0);
    /* a mailbox owned by someone else is refused (temporarily), untouched */
    assert_int_equal(stat(fx->mbox, &st), 0);
    off_t size = st.st_size;
    assert_int_equal(mbox_deliver(fx->mbox, 1234, 1234, &in, &err), -1);
    assert_true(err.temporary);
    assert_non_null(strstr(err.text, "is not owned by uid 1234"));
    assert_int_equal(stat(fx->mbox, &st), 0);
    assert_int_equal(st.st_uid, 4321);
    assert_int_equal(st.st_size, size);
}

int main(void)
{
    /* The From line is in local time; pin it. */
    setenv("TZ", "UTC", 1);
    tzset();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_from_line_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deliver_exact_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_from_quoting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quoting_across_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_messages_separated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unterminated_existing_mailbox, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncate_back_on_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_symlinks_and_special_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_held_dotlock_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_dotlock_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dotlock_released_while_waiting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_budgeted_waits_share_one_allowance, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fcntl_lock_held, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dotlock_denied_falls_back_to_fcntl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dotlock_denied_real, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_owner, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
