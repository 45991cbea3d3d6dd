/* Tests for util/log's batching (log_batch_on): the lines one round of an
 * event loop logs reach maillog_file together when the round's callbacks are
 * done, in the order they were logged; a warning, a line from another
 * thread, a fork and exit write what waits first; nothing is written twice
 * (a child never repeats its parent's waiting lines) and nothing is lost at
 * exit. What the admin checks is the log file's text. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/log.h"

static char path[64];

static int setup(void **state)
{
    (void)state;
    snprintf(path, sizeof path, "/tmp/tern-test-log-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    close(fd);
    log_init("test");
    log_set_stderr(0);
    log_set_file(path);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    log_batch_on(NULL);
    log_set_file(NULL);
    unlink(path);
    return 0;
}

/* The log file's text, with each line cut to what follows "tern/test[pid]: "
 * (the stamp and pid vary), one per line. */
static char *messages(void)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char out[65536];
    out[0] = '\0';
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        char *m = strstr(line, "]: ");
        assert_non_null(m);
        strncat(out, m + 3, sizeof out - strlen(out) - 1);
    }
    fclose(f);
    return out;
}

static void run_round(struct event_base *base)
{
    /* 1: nothing left to wait for after the round, which is fine */
    assert_true(event_base_loop(base, EVLOOP_NONBLOCK) >= 0);
}

struct logging_cb {
    const char *text;
};

static void log_from_callback(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    log_info("%s", ((struct logging_cb *)arg)->text);
}

static void test_a_round_is_written_at_its_end_in_order(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    log_batch_on(base);
    /* two callbacks due in the same round, each logging */
    struct logging_cb a = {"from callback a"}, b = {"from callback b"};
    struct event *ea = event_new(base, -1, 0, log_from_callback, &a);
    struct event *eb = event_new(base, -1, 0, log_from_callback, &b);
    event_active(ea, EV_TIMEOUT, 1);
    event_active(eb, EV_TIMEOUT, 1);
    log_info("before the round");
    log_info("second line");
    assert_string_equal(messages(), "");   /* waiting for the round's end */
    run_round(base);
    assert_string_equal(messages(), "before the round\nsecond line\nfrom callback a\nfrom callback b\n");
    log_info("next round");
    run_round(base);
    assert_string_equal(messages(),
                        "before the round\nsecond line\nfrom callback a\nfrom callback b\nnext round\n");
    event_free(ea);
    event_free(eb);
    log_batch_on(NULL);
    event_base_free(base);
}

static void test_a_warning_writes_what_waits_first(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    log_batch_on(base);
    log_info("one");
    log_warn("two");
    assert_string_equal(messages(), "one\nwarning: two\n");
    log_info("three");
    run_round(base);
    assert_string_equal(messages(), "one\nwarning: two\nthree\n");
    log_batch_on(NULL);
    event_base_free(base);
}

static void test_more_than_a_batch_is_written_whole(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    log_batch_on(base);
    char filler[1500];
    memset(filler, 'x', sizeof filler - 1);
    filler[sizeof filler - 1] = '\0';
    int lines = 3 * LOG_BATCH_MAX / (int)sizeof filler;
    for (int i = 0; i < lines; i++)
        log_info("%04d %s", i, filler);
    run_round(base);
    char *text = messages();
    char want[16];
    for (int i = 0; i < lines; i++) {
        snprintf(want, sizeof want, "%04d ", i);
        char *at = strstr(text, want);
        assert_non_null(at);
        text = at + 5 + sizeof filler;   /* past this line: the next must follow it */
    }
    assert_string_equal(text, "");
    log_batch_on(NULL);
    event_base_free(base);
}

static void *log_from_thread(void *arg)
{
    (void)arg;
    log_info("from another thread");
    return NULL;
}

static void test_another_threads_line_is_written_at_once(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    log_batch_on(base);
    log_info("loop thread");
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, log_from_thread, NULL), 0);
    pthread_join(t, NULL);
    assert_string_equal(messages(), "loop thread\nfrom another thread\n");
    log_batch_on(NULL);
    event_base_free(base);
}

static void test_a_child_never_writes_its_parents_lines(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    log_batch_on(base);
    log_info("parent before the fork");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        log_info("child");   /* written at once: the child's loop is not the parent's */
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    log_info("parent after the fork");
    run_round(base);
    assert_string_equal(messages(), "parent before the fork\nchild\nparent after the fork\n");
    log_batch_on(NULL);
    event_base_free(base);
}

static struct event_base *exit_base;   /* static: the child's exit finds no leak */

static void test_exit_writes_what_waits(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        exit_base = event_base_new();
        log_batch_on(exit_base);
        log_info("logged, then exit before the round ends");
        exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_string_equal(messages(), "logged, then exit before the round ends\n");
}

/* A pipe (tern serve's stderr under a supervisor, a FIFO as maillog_file):
 * only writes of at most PIPE_BUF bytes are whole there (another process's
 * line can land inside a longer one), so to anything but a regular file a
 * round's lines go in pieces of at most PIPE_BUF that end at a line's end.
 * Seen here through a packet socket, where each write is one packet. */
static void test_lines_go_to_a_pipe_in_whole_pieces(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    int big = 1 << 20;
    (void)setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    (void)setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    log_set_file_fd("/nonexistent/fifo", sv[1]);
    struct event_base *base = event_base_new();
    log_batch_on(base);
    char filler[200];
    memset(filler, 'x', sizeof filler - 1);
    filler[sizeof filler - 1] = '\0';
    for (int i = 0; i < 60; i++)   /* about 15 KB in one round */
        log_info("line %02d %s END", i, filler);
    run_round(base);
    log_batch_on(NULL);
    event_base_free(base);
    log_set_file(NULL);   /* closes sv[1] */
    static char packet[1 << 16];
    int lines = 0, packets = 0;
    ssize_t n;
    while ((n = recv(sv[0], packet, sizeof packet, MSG_DONTWAIT)) > 0) {
        packets++;
        assert_true(n <= PIPE_BUF);
        assert_int_equal(packet[n - 1], '\n');
        for (ssize_t k = 0; k < n; k++)
            lines += packet[k] == '\n';
    }
    close(sv[0]);
    assert_int_equal(lines, 60);
    assert_true(packets >= 4);   /* 60 lines of ~250 bytes: 15 KB in pieces of at most 4 KiB */
}

static void test_without_batching_each_line_is_written_at_once(void **state)
{
    (void)state;
    log_info("plain");
    assert_string_equal(messages(), "plain\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_round_is_written_at_its_end_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_warning_writes_what_waits_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_more_than_a_batch_is_written_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_another_threads_line_is_written_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_child_never_writes_its_parents_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exit_writes_what_waits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_without_batching_each_line_is_written_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lines_go_to_a_pipe_in_whole_pieces, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
