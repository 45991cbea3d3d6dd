/* Tests for maildir_batch, the local agent's shared Maildir syncs (with
 * queue_sync_method fsync or journal: each file fdatasync'd, each new/
 * fsync'd once a round): a delivery after a quiet spell is finished in the
 * loop's next turn, deliveries that come within the interval of a round
 * wait for the next one and share it, and every delivery ends linked in
 * new/ with its reply. The syncs are counted through the fault-injecting
 * fsops table of test_fixture.h. The interval here is INTERVAL_MS, long
 * enough that a loaded machine under ASan still adds three deliveries
 * within it (the agent's is MAILDIR_BATCH_INTERVAL_MS). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deliver_fixture.h"
#include "local/maildir.h"
#include "local/maildir_batch.h"
#include "util/mem.h"
#include "util/str.h"

#define MAXREPLIES 16
#define INTERVAL_MS 200
/* libevent's coarse clock: a timer may fire a tick (4 ms at HZ=250) early */
#define CLOCK_SLACK_MS 10

static struct {
    unsigned n;         /* every reply; the first MAXREPLIES are kept */
    uint32_t reqid[MAXREPLIES];
    int error[MAXREPLIES];
    struct timespec at[MAXREPLIES];
} replies;

static void no_identity(uid_t uid, gid_t gid)
{
    (void)uid;
    (void)gid;
}

static void stay_root(void)
{
}

/* the queue's connection, as the batch sees it: any pointer will do */
static char queue_chan;
#define QUEUE_CHAN ((struct ipc_chan *)&queue_chan)

static int alive(struct ipc_chan *ch)
{
    return ch == QUEUE_CHAN;
}

static void record(uint32_t reqid, int error)
{
    if (replies.n < MAXREPLIES) {
        replies.reqid[replies.n] = reqid;
        replies.error[replies.n] = error;
        clock_gettime(CLOCK_MONOTONIC, &replies.at[replies.n]);
    }
    replies.n++;
}

static void sent(struct ipc_chan *ch, uint32_t reqid, int unsynced)
{
    (void)ch;
    assert_int_equal(unsynced, 0); /* sync_each: the batch syncs itself */
    record(reqid, 0);
}

static void failed(struct ipc_chan *ch, uint32_t reqid, const struct deliver_error *err)
{
    (void)ch;
    (void)err;
    record(reqid, 1);
}

static const struct maildir_batch_ops ops = {no_identity, stay_root, alive, sent, failed};

struct fx {
    struct deliver_fx d;
    char shm[64];
    char *maildir;
    struct event_base *base;
};

static int setup(void **state)
{
    struct fx *fx = xcalloc(1, sizeof *fx);
    *state = fx;
    if (deliver_fx_setup(&fx->d, "mdbatch") != 0)
        return -1;
    /* on tmpfs: a round's syncs take no time, so only the interval decides
     * which deliveries share one */
    str_copy(fx->shm, "/dev/shm/tern-mdbatch-XXXXXX", sizeof fx->shm);
    if (!mkdtemp(fx->shm))
        return -1;
    fx->maildir = xasprintf("%s/Maildir", fx->shm);
    fx->base = event_base_new();
    memset(&replies, 0, sizeof replies);
    tf_fs_install();
    maildir_batch_init(fx->base, &ops, 1, NULL, INTERVAL_MS);
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    maildir_batch_shutdown();
    event_base_free(fx->base);
    deliver_fx_teardown(&fx->d);
    tf_tmpdir_remove(fx->shm);
    free(fx->maildir);
    free(fx);
    return 0;
}

/* One message begun in tmp/ and handed to the batch. */
static void add(struct fx *fx, uint32_t reqid)
{
    struct deliver_input in = deliver_fx_input(&fx->d, NULL, "Subject: batch\r\n\r\nbody\r\n", 24);
    struct maildir_delivery *md;
    struct deliver_error err;
    assert_int_equal(maildir_begin(fx->maildir, (uid_t)-1, (gid_t)-1, &in, &md, &err), 0);
    maildir_batch_add(QUEUE_CHAN, reqid, (uid_t)-1, (gid_t)-1, md);
}

static double ms_between(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) * 1000.0 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

/* Runs the loop until n replies are in (or 5 s pass). */
static void run_until_replies(struct fx *fx, unsigned n)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (replies.n < n) {
        event_base_loop(fx->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (ms_between(&start, &now) > 5000)
            fail_msg("%u of %u replies after 5 s", replies.n, n);
        struct timespec nap = {0, 100000};
        nanosleep(&nap, NULL);
    }
}

static int count_new(struct fx *fx)
{
    char *path = xasprintf("%s/new", fx->maildir);
    DIR *d = opendir(path);
    free(path);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void test_deliveries_close_together_share_a_round(void **state)
{
    struct fx *fx = *state;
    /* after a quiet spell: finished at once, one file sync, one new/ sync */
    int fdatasyncs = tf_fs_calls(TF_FDATASYNC), fsyncs = tf_fs_calls(TF_FSYNC);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    add(fx, 1);
    run_until_replies(fx, 1);
    assert_int_equal(replies.error[0], 0);
    assert_int_equal(count_new(fx), 1);
    assert_true(ms_between(&t0, &replies.at[0]) < INTERVAL_MS);
    assert_int_equal(tf_fs_calls(TF_FDATASYNC) - fdatasyncs, 1);
    int round_fsyncs = tf_fs_calls(TF_FSYNC) - fsyncs;
    assert_true(round_fsyncs >= 1);

    /* three more right after that round, each in a turn of its own: they
     * wait for the interval and go together, new/ synced once for all */
    fdatasyncs = tf_fs_calls(TF_FDATASYNC);
    fsyncs = tf_fs_calls(TF_FSYNC);
    for (uint32_t id = 2; id <= 4; id++) {
        add(fx, id);
        event_base_loop(fx->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
    run_until_replies(fx, 4);
    assert_int_equal(count_new(fx), 4);
    for (unsigned i = 1; i < 4; i++) {
        assert_int_equal(replies.error[i], 0);
        assert_int_equal(replies.reqid[i], i + 1);
    }
    assert_int_equal(tf_fs_calls(TF_FDATASYNC) - fdatasyncs, 3);
    assert_int_equal(tf_fs_calls(TF_FSYNC) - fsyncs, 1);
    /* and not before the interval since the first round began had passed */
    if (ms_between(&t0, &replies.at[1]) < INTERVAL_MS - CLOCK_SLACK_MS)
        fail_msg("second round %.3f ms after the first began (first reply at %.3f ms)",
                 ms_between(&t0, &replies.at[1]), ms_between(&t0, &replies.at[0]));
}

static void test_full_batch_does_not_wait(void **state)
{
    struct fx *fx = *state;
    add(fx, 1);
    run_until_replies(fx, 1);
    /* right after a round, but a batch that reaches MAILDIR_BATCH_MAX goes
     * at once, in the call that fills it */
    for (uint32_t id = 0; id < MAILDIR_BATCH_MAX; id++) {
        assert_int_equal(replies.n, 1);
        add(fx, 100 + id);
    }
    assert_int_equal(replies.n, 1 + MAILDIR_BATCH_MAX);
    assert_int_equal(count_new(fx), 1 + MAILDIR_BATCH_MAX);
    /* the timer the full batch had armed is gone; the next one arms its own */
    add(fx, 999);
    run_until_replies(fx, 2 + MAILDIR_BATCH_MAX);
    assert_int_equal(count_new(fx), 2 + MAILDIR_BATCH_MAX);
}

static void test_shutdown_finishes_a_waiting_batch(void **state)
{
    struct fx *fx = *state;
    add(fx, 1);
    run_until_replies(fx, 1);
    add(fx, 2); /* right after a round: waits for the interval */
    event_base_loop(fx->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_int_equal(replies.n, 1);
    maildir_batch_shutdown();
    assert_int_equal(replies.n, 2);
    assert_int_equal(replies.error[1], 0);
    assert_int_equal(count_new(fx), 2);
}

/* The queue's connection goes while a delivery waits for its round: the
 * message is still delivered, but the reply goes to no one (a new
 * connection given the same address must not get it). */
static void test_a_dropped_connection_gets_no_reply(void **state)
{
    struct fx *fx = *state;
    add(fx, 1);
    run_until_replies(fx, 1);
    add(fx, 2);   /* right after a round: waits for the interval */
    maildir_batch_drop_channel(QUEUE_CHAN);
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do {
        event_base_loop(fx->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        struct timespec nap = {0, 1000000};
        nanosleep(&nap, NULL);
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (count_new(fx) < 2 && ms_between(&start, &now) < 5000);
    assert_int_equal(count_new(fx), 2);
    assert_int_equal(replies.n, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_deliveries_close_together_share_a_round, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_batch_does_not_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_finishes_a_waiting_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_dropped_connection_gets_no_reply, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
