/* Unit tests for src/qmgr/qmgr_msg.c: what happens to a recipient's result
 * as time passes, with util/clock frozen and moved by the test instead of
 * sleeping: the retry wait doubles from minimal_backoff_time up to
 * maximal_backoff_time; a deferral at maximal_queue_lifetime fails the
 * recipient as expired (bounce_queue_lifetime for a notice from <>); after
 * delay_warning_time the sender gets one delay notice. Results are checked
 * in memory and in the queue file as recovery would read it.
 *
 * A real store in a temporary spool and a real libevent loop carry the
 * delay notice's commit. The scheduler (qmgr.c) is not under test: this
 * file defines qmgr_msg_schedule and qmgr_msg_finish_if_done, so the linker
 * takes these instead of qmgr.o's and the test sees what would have been
 * scheduled. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <event2/event.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf.h"
#include "qmgr/qmgr_msg.h"
#include "qmgr/qmgr_notify.h"
#include "spool/queue_file.h"
#include "spool/queue_id.h"
#include "spool/store.h"
#include "util/clock.h"
#include "util/mem.h"
#include "util/strbuf.h"

#define ARRIVAL_S 1700000000LL
#define HOUR 3600LL
#define DAY 86400LL

/* ---- the scheduler, as this test sees it ---- */

static struct qmgr_msg *scheduled[8];
static size_t nscheduled;

void qmgr_msg_schedule(struct qmgr_msg *q)
{
    if (nscheduled < sizeof scheduled / sizeof scheduled[0])
        scheduled[nscheduled++] = q;
}

void qmgr_msg_finish_if_done(struct qmgr_msg *q)
{
    (void)q;
}

int qmgr_route_waits_for_table(struct qmgr_msg *q)
{
    (void)q;
    return 0;   /* no routing here: every deferral is recorded */
}

/* ---- fixture ---- */

struct fx {
    char dir[64];
    struct event_base *base;
    struct conf *conf;
};

static void set_clock(long long seconds_after_arrival)
{
    clock_test_set_us((ARRIVAL_S + seconds_after_arrival) * 1000000LL);
}

static int setup_with(void **state, const char *extra_conf)
{
    struct fx *fx = xcalloc(1, sizeof *fx);
    strcpy(fx->dir, "/tmp/tern-qmsg-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    const char *sub[] = {"incoming", "queue", "hold", "corrupt"};
    for (size_t i = 0; i < 4; i++) {
        char *p = xasprintf("%s/%s", fx->dir, sub[i]);
        assert_int_equal(mkdir(p, 0700), 0);
        free(p);
    }
    fx->base = event_base_new();
    assert_int_equal(store_open(fx->base, fx->dir, 1), 0);
    fx->conf = conf_new();
    conf_test_set_hostname(fx->conf, "mx.example.test");
    struct strbuf diag = STRBUF_INIT;
    char *text = xasprintf("minimal_backoff_time = 300s\nmaximal_backoff_time = 4000s\n"
                           "maximal_queue_lifetime = 5d\nbounce_queue_lifetime = 1d\n%s",
                           extra_conf);
    assert_int_equal(conf_load_string(fx->conf, text, "test", &diag), 0);
    free(text);
    strbuf_free(&diag);
    qmgr_msg_init(fx->base, fx->conf);
    qmgr_notify_init(fx->conf);
    queue_id_init(7);
    nscheduled = 0;
    set_clock(0);
    *state = fx;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, "delay_warning_time = 0\n");
}

static int setup_delay_warning(void **state)
{
    return setup_with(state, "delay_warning_time = 4h\n");
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    store_close();
    qmgr_msg_shutdown();
    qmgr_notify_shutdown();
    conf_free(fx->conf);
    event_base_free(fx->base);
    nftw(fx->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    clock_test_set_us(0);
    free(fx);
    return 0;
}

/* A committed message with two recipients (the second stays pending, so
 * every result of the first is written to the file). */
static struct qmgr_msg *queued_message(struct fx *fx, const char *sender)
{
    char id[QUEUE_ID_LEN + 1];
    queue_id_new(id);
    char *qdir = xasprintf("%s/queue", fx->dir);
    int dfd = open(qdir, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    struct queue_file_writer *w;
    assert_int_equal(queue_file_writer_open(dfd, id, &w), 0);
    static const char content[] = "From: a@example.org\r\nSubject: late\r\n\r\nbody\r\n";
    assert_int_equal(queue_file_writer_write(w, content, sizeof content - 1), 0);
    struct queue_file_message m;
    queue_file_message_init(&m, id, ARRIVAL_S * 1000000LL, sender);
    queue_file_message_add_rcpt(&m, "rcpt1@far.example", "", 0, -1);
    queue_file_message_add_rcpt(&m, "rcpt2@far.example", "", 0, -1);
    assert_int_equal(queue_file_writer_finish(w, &m), 0);
    queue_file_message_free(&m);
    close(dfd);
    free(qdir);
    /* as recovery would load it */
    char *path = store_path(id, STORE_QUEUE);
    char err[256];
    assert_int_equal(queue_file_read_path(path, &m, err, sizeof err), 0);
    free(path);
    return qmgr_msg_add(&m, STORE_QUEUE);
}

static void defer_first(struct qmgr_msg *q)
{
    qmgr_msg_rcpt_take(q, 0);
    qmgr_msg_rcpt_finish(q, 0, QMSG_DEFERRED, "far.example[192.0.2.1]:25", clock_now_us(), "4.4.1",
                         "connection refused", NULL);
}

/* The first recipient as the queue file on disk has it now. */
static struct queue_file_rcpt on_disk(const struct qmgr_msg *q, struct queue_file_message *m)
{
    char *path = store_path(q->m.id, STORE_QUEUE);
    char err[256];
    assert_int_equal(queue_file_read_path(path, m, err, sizeof err), 0);
    free(path);
    return m->rcpts[0];
}

/* ---- tests ---- */

static void test_backoff_doubles_up_to_the_maximum(void **state)
{
    struct fx *fx = *state;
    struct qmgr_msg *q = queued_message(fx, "alice@example.org");
    const long long waits[] = {300, 600, 1200, 2400, 4000, 4000};
    long long now = 0;
    for (size_t k = 0; k < sizeof waits / sizeof waits[0]; k++) {
        set_clock(now);
        defer_first(q);
        const struct queue_file_rcpt *r = &q->m.rcpts[0];
        assert_int_equal(r->state, QF_DEFERRED);
        assert_int_equal(r->attempts, k + 1);
        assert_int_equal(r->next_try, ARRIVAL_S + now + waits[k]);
        struct queue_file_message m;
        struct queue_file_rcpt d = on_disk(q, &m);
        assert_int_equal(d.state, QF_DEFERRED);
        assert_int_equal(d.attempts, k + 1);
        assert_int_equal(d.next_try, ARRIVAL_S + now + waits[k]);
        assert_string_equal(d.dsn, "4.4.1");
        assert_string_equal(d.reason, "connection refused");
        queue_file_message_free(&m);
        now += waits[k];
    }
}

static void test_expires_at_maximal_queue_lifetime(void **state)
{
    struct fx *fx = *state;
    struct qmgr_msg *q = queued_message(fx, "alice@example.org");
    set_clock(5 * DAY - 1);
    defer_first(q);
    assert_int_equal(q->m.rcpts[0].state, QF_DEFERRED);
    set_clock(5 * DAY);
    defer_first(q);
    assert_int_equal(q->m.rcpts[0].state, QF_FAILED);
    assert_string_equal(q->m.rcpts[0].reason, "message expired after 5 days in the queue: connection refused");
    struct queue_file_message m;
    struct queue_file_rcpt d = on_disk(q, &m);
    assert_int_equal(d.state, QF_FAILED);
    assert_string_equal(d.reason, "message expired after 5 days in the queue: connection refused");
    queue_file_message_free(&m);
}

static void test_notice_expires_at_bounce_queue_lifetime(void **state)
{
    struct fx *fx = *state;
    struct qmgr_msg *q = queued_message(fx, "");
    set_clock(DAY - 1);
    defer_first(q);
    assert_int_equal(q->m.rcpts[0].state, QF_DEFERRED);
    set_clock(DAY);
    defer_first(q);
    assert_int_equal(q->m.rcpts[0].state, QF_FAILED);
    assert_string_equal(q->m.rcpts[0].reason, "message expired after 1 days in the queue: connection refused");
}

static void test_sent_and_bounced_are_final(void **state)
{
    struct fx *fx = *state;
    struct qmgr_msg *q = queued_message(fx, "alice@example.org");
    set_clock(10);
    qmgr_msg_rcpt_take(q, 0);
    assert_true(qmgr_msg_rcpt_busy(q, 0));
    qmgr_msg_rcpt_finish(q, 0, QMSG_BOUNCED, "far.example", clock_now_us(), "5.1.1", "no such user", NULL);
    assert_false(qmgr_msg_rcpt_busy(q, 0));
    assert_int_equal(q->inflight, 0);
    struct queue_file_message m;
    struct queue_file_rcpt d = on_disk(q, &m);
    assert_int_equal(d.state, QF_FAILED);
    assert_int_equal(d.last_try, ARRIVAL_S + 10);
    queue_file_message_free(&m);
}

/* Runs the loop until n messages were scheduled or max_ms passed. */
static void run_until_scheduled(struct fx *fx, size_t n, int max_ms)
{
    for (int i = 0; i < max_ms / 10 && nscheduled < n; i++) {
        struct timeval tv = {0, 10000};
        event_base_loopexit(fx->base, &tv);
        event_base_dispatch(fx->base);
    }
}

/* The whole file: a queue file has binary records, so search it with memmem. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    struct strbuf sb = STRBUF_INIT;
    char buf[4096];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0)
        strbuf_append(&sb, buf, got);
    fclose(f);
    *len = sb.len;
    return strbuf_detach(&sb);
}

static void test_delay_notice_once_after_delay_warning_time(void **state)
{
    struct fx *fx = *state;
    struct qmgr_msg *q = queued_message(fx, "alice@example.org");
    set_clock(4 * HOUR - 1);
    defer_first(q);
    run_until_scheduled(fx, 1, 300);
    assert_int_equal(nscheduled, 0);
    assert_false(q->m.rcpts[0].flags & QF_RCPT_DELAY_WARNED);

    set_clock(4 * HOUR);
    defer_first(q);
    run_until_scheduled(fx, 1, 10000);
    assert_int_equal(nscheduled, 1);
    struct qmgr_msg *notice = scheduled[0];
    assert_string_equal(notice->m.sender, "");
    assert_int_equal(notice->m.nrcpt, 1);
    assert_string_equal(notice->m.rcpts[0].addr, "alice@example.org");
    assert_string_equal(queue_file_message_attr(&notice->m, "notice"), "delay");
    char *path = store_path(notice->m.id, STORE_QUEUE);
    size_t len;
    char *text = slurp(path, &len);
    free(path);
    assert_non_null(memmem(text, len, "Subject: Delayed Mail (still being retried)\r\n", 45));
    assert_non_null(memmem(text, len, "Final-Recipient: rfc822; rcpt1@far.example", 42));
    free(text);
    /* marked on disk, so a restart does not warn again */
    assert_true(q->m.rcpts[0].flags & QF_RCPT_DELAY_WARNED);
    struct queue_file_message m;
    struct queue_file_rcpt d = on_disk(q, &m);
    assert_true(d.flags & QF_RCPT_DELAY_WARNED);
    queue_file_message_free(&m);

    set_clock(9 * HOUR);
    defer_first(q);
    run_until_scheduled(fx, 2, 300);
    assert_int_equal(nscheduled, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_backoff_doubles_up_to_the_maximum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expires_at_maximal_queue_lifetime, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notice_expires_at_bounce_queue_lifetime, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sent_and_bounced_are_final, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delay_notice_once_after_delay_warning_time, setup_delay_warning,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
