/* Tests for the spool journal (src/spool/journal.c): records appended and
 * read back, group commit, segment rollover, recovery after a torn tail and
 * with a corrupt old segment, a failed fdatasync that fails its batch and
 * poisons the journal, ENOSPC when no segment can be made, recycling of
 * retired segments, and a simulated power loss (every write not followed
 * by a completed sync of its file is dropped, or half kept: that one is in
 * test_journal_powerloss.c).
 *
 * File-system calls go through the shared fault-injecting fsops table of
 * test_fixture.h, whose call counters count the syncs. Segments are 64 KiB
 * so that a few records fill one. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "journal_fixture.h"

/* ---- round trips ---------------------------------------------------------- */

static void test_round_trip(void **state)
{
    (void)state;
    struct journal_recovery rec;
    struct journal *j = reopen(&rec);
    assert_int_equal(rec.records, 0);
    static const size_t lens[] = {0, 1, 7, 8, 100, 4096, 16384};
    struct journal_addr addr[7];
    char buf[16384 + 1], back[16384];
    for (int i = 0; i < 7; i++) {
        size_t n = lens[i] ? payload(buf, i, lens[i]) : 0;
        assert_int_equal(journal_append_wait(j, (uint32_t)(i + 1), buf, n, &addr[i]), 0);
        assert_int_equal(addr[i].off % 8, 0);
    }
    for (int i = 0; i < 7; i++) {
        uint32_t type;
        size_t len;
        assert_int_equal(journal_read(j, addr[i], &type, back, sizeof back, &len), 0);
        assert_int_equal(type, i + 1);
        size_t n = lens[i] ? payload(buf, i, lens[i]) : 0;
        assert_int_equal(len, n);
        assert_memory_equal(back, buf, n);
    }
    uint32_t type;
    size_t len;
    /* too small a buffer, not a record, not durable, no such segment */
    assert_int_equal(journal_read(j, addr[4], &type, back, 10, &len), -1);
    assert_int_equal(errno, ENOBUFS);
    assert_int_equal(len, 100);
    struct journal_addr bad = {.seg = addr[4].seg, .off = addr[4].off + 8};
    assert_int_equal(journal_read(j, bad, &type, back, sizeof back, &len), -1);
    assert_int_equal(errno, EBADMSG);
    bad.off = SEG - 64;
    assert_int_equal(journal_read(j, bad, &type, back, sizeof back, &len), -1);
    assert_int_equal(errno, ENOENT);
    bad = (struct journal_addr){.seg = 99, .off = 64};
    assert_int_equal(journal_read(j, bad, &type, back, sizeof back, &len), -1);
    assert_int_equal(errno, ENOENT);
    /* bounds */
    assert_int_equal(journal_append_wait(j, 1, buf, 16385, NULL), -1);
    assert_int_equal(errno, EMSGSIZE);
    assert_int_equal(journal_append_wait(j, 0, buf, 1, NULL), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(journal_append_wait(j, JOURNAL_TYPE_MAX + 1, buf, 1, NULL), -1);
    assert_int_equal(errno, EINVAL);
    journal_close(j);

    j = reopen(&rec);
    assert_int_equal(rec.records, 7);
    assert_int_equal(rec.tail_cut, 0);
    assert_int_equal(got.n, 7);
    for (int i = 0; i < 7; i++) {
        size_t n = lens[i] ? payload(buf, i, lens[i]) : 0;
        assert_int_equal(got.type[i], i + 1);
        assert_int_equal(got.len[i], n);
        assert_memory_equal(got.data[i], buf, n);
        assert_int_equal(got.addr[i].seg, addr[i].seg);
        assert_int_equal(got.addr[i].off, addr[i].off);
    }
    journal_close(j);

    struct journal_options bad_opts = {.segment_size = 4096};
    assert_int_equal(journal_open(&j, dir, &bad_opts, NULL, NULL, NULL), -1);
    assert_int_equal(errno, EINVAL);
    bad_opts = (struct journal_options){.segment_size = 2 * SEG};
    assert_int_equal(journal_open(&j, dir, &bad_opts, NULL, NULL, NULL), -1);
    assert_int_equal(errno, EINVAL); /* the existing segments are 64 KiB */
}

/* ---- group commit --------------------------------------------------------- */

#define THREADS 16
#define PER_THREAD 40

static struct journal *gj;

static void slow_sync(enum tf_op op, int fd)
{
    (void)fd;
    if (op == TF_FDATASYNC) {
        struct timespec ts = {0, 2000000}; /* a disk's sync, roughly */
        nanosleep(&ts, NULL);
    }
}

static void *appender(void *arg)
{
    int t = (int)(intptr_t)arg;
    char buf[200];
    for (int i = 0; i < PER_THREAD; i++) {
        size_t n = payload(buf, t * 1000 + i, 150);
        if (journal_append_wait(gj, 1, buf, n, NULL) != 0)
            return (void *)1;
    }
    return NULL;
}

static void test_group_commit_threads(void **state)
{
    (void)state;
    gj = reopen(NULL);
    tf_fs_on_call(slow_sync);
    int before = tf_fs_calls(TF_FDATASYNC);
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, appender, (void *)(intptr_t)t), 0);
    for (int t = 0; t < THREADS; t++) {
        void *rv;
        pthread_join(th[t], &rv);
        assert_null(rv);
    }
    int syncs = tf_fs_calls(TF_FDATASYNC) - before;
    tf_fs_on_call(NULL);
    print_message("group commit: %d records, %d fdatasync calls\n", THREADS * PER_THREAD, syncs);
    assert_true(syncs * 4 <= THREADS * PER_THREAD);
    journal_close(gj);
    struct journal_recovery rec;
    struct journal *j = reopen(&rec);
    assert_int_equal(rec.records, THREADS * PER_THREAD);
    /* each thread's records in its order */
    int next[THREADS] = {0};
    for (size_t i = 0; i < got.n; i++) {
        int id = atoi(got.data[i] + 4);
        assert_int_equal(id % 1000, next[id / 1000]++);
    }
    journal_close(j);
}

static int async_ok, async_fail, async_err;
static pthread_mutex_t async_mu = PTHREAD_MUTEX_INITIALIZER;

static void async_done(void *arg, int err, struct journal_addr addr)
{
    (void)arg;
    (void)addr;
    pthread_mutex_lock(&async_mu);
    if (err) {
        async_fail++;
        async_err = err;
    } else {
        async_ok++;
    }
    pthread_mutex_unlock(&async_mu);
}

static void async_wait(int total)
{
    for (int k = 0; k < 10000; k++) {
        pthread_mutex_lock(&async_mu);
        int n = async_ok + async_fail;
        pthread_mutex_unlock(&async_mu);
        if (n >= total)
            return;
        usleep(1000);
    }
    fail_msg("callbacks did not come");
}

/* The writer is held in its first sync; 500 records queued meanwhile share
 * the next one. */
static void test_group_commit_gated(void **state)
{
    (void)state;
    struct journal *j = reopen(NULL);
    async_ok = async_fail = 0;
    tf_fs_gate(TF_FDATASYNC);
    tf_fs_set_permits(0);
    int before = tf_fs_calls(TF_FDATASYNC);
    char buf[64];
    assert_int_equal(journal_append(j, 1, "first", 5, async_done, NULL), 0);
    assert_true(tf_fs_wait_calls(TF_FDATASYNC, before + 1, 10000));
    for (int i = 0; i < 500; i++)
        assert_int_equal(journal_append(j, 2, buf, payload(buf, i, 40), async_done, NULL), 0);
    assert_int_equal(async_ok, 0); /* nothing acknowledged before its sync */
    tf_fs_set_permits(-1);
    async_wait(501);
    assert_int_equal(async_fail, 0);
    /* 500 records of 64 bytes need one rollover: its seal's sync, then one */
    assert_true(tf_fs_calls(TF_FDATASYNC) - before <= 4);
    journal_close(j);
}

/* Lazy records (progress, done) wait up to JOURNAL_LAZY_MS for a record
 * someone waits for and share its sync; alone, they are synced anyway. */
static void test_lazy_records_share_a_sync(void **state)
{
    (void)state;
    struct journal *j = reopen(NULL);
    async_ok = async_fail = 0;
    int before = tf_fs_calls(TF_FDATASYNC);
    char buf[64];
    for (int i = 0; i < 5; i++)
        assert_int_equal(journal_append_lazy(j, 3, buf, payload(buf, i, 40), async_done, NULL), 0);
    assert_int_equal(journal_append_wait(j, 1, "urgent", 6, NULL), 0);
    async_wait(5);
    assert_int_equal(async_fail, 0);
    /* the five and the urgent one: one sync (two if this thread was held up
     * past the wait between its appends; six without the wait) */
    assert_true(tf_fs_calls(TF_FDATASYNC) - before <= 2);

    /* alone: synced within the wait (not never) */
    before = tf_fs_calls(TF_FDATASYNC);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(journal_append_lazy(j, 3, "alone", 5, async_done, NULL), 0);
    async_wait(6);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_int_equal(tf_fs_calls(TF_FDATASYNC) - before, 1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_true(ms >= JOURNAL_LAZY_MS - 1);

    /* written at once, only its sync waits: a crash of the process (not of
     * the machine) loses no lazy record */
    int writes = tf_fs_calls(TF_PWRITE), syncs = tf_fs_calls(TF_FDATASYNC);
    tf_fs_gate(TF_FDATASYNC); /* its sync held: the write must not wait for it */
    tf_fs_set_permits(0);
    assert_int_equal(journal_append_lazy(j, 3, "early", 5, async_done, NULL), 0);
    assert_true(tf_fs_wait_calls(TF_PWRITE, writes + 1, 10000));
    assert_int_equal(async_ok, 6); /* written, not yet reported durable */
    tf_fs_set_permits(-1);
    async_wait(7);
    assert_int_equal(tf_fs_calls(TF_FDATASYNC), syncs + 1);
    journal_close(j);

    /* and every one of them is there after a reopen */
    j = reopen(NULL);
    assert_int_equal(got.n, 8);
    journal_close(j);
}

/* ---- rollover ------------------------------------------------------------- */

static void test_rollover(void **state)
{
    (void)state;
    struct journal *j = reopen(NULL);
    char buf[3000], back[3000];
    struct journal_addr addr[100];
    for (int i = 0; i < 100; i++)
        assert_int_equal(journal_append_wait(j, 3, buf, payload(buf, i, 2000 + (size_t)i), &addr[i]), 0);
    assert_true(addr[99].seg >= addr[0].seg + 3);
    for (int i = 1; i < 100; i++) {
        assert_true(addr[i].seg == addr[i - 1].seg || addr[i].seg == addr[i - 1].seg + 1);
        assert_true(addr[i].off + 2000u + (unsigned)i + 24 <= SEG);
    }
    for (int i = 0; i < 100; i++) {
        uint32_t type;
        size_t len, n = payload(buf, i, 2000 + (size_t)i);
        assert_int_equal(journal_read(j, addr[i], &type, back, sizeof back, &len), 0);
        assert_int_equal(len, n);
        assert_memory_equal(back, buf, n);
    }
    journal_close(j);
    struct journal_recovery rec;
    j = reopen(&rec);
    assert_int_equal(rec.records, 100);
    assert_int_equal(rec.corrupt_segments, 0);
    for (int i = 0; i < 100; i++) {
        size_t n = payload(buf, i, 2000 + (size_t)i);
        assert_int_equal(got.len[i], n);
        assert_memory_equal(got.data[i], buf, n);
    }
    journal_close(j);
}

/* ---- recovery ------------------------------------------------------------- */

static void check_sequence(int from, int to, size_t at)
{
    char buf[200];
    for (int i = from; i < to; i++, at++) {
        size_t n = payload(buf, i, 100);
        assert_true(at < got.n);
        assert_int_equal(got.len[at], n);
        assert_memory_equal(got.data[at], buf, n);
    }
}

static void torn_tail(int how)
{
    struct journal *j = reopen(NULL);
    char buf[200];
    struct journal_addr addr[10];
    for (int i = 0; i < 10; i++)
        assert_int_equal(journal_append_wait(j, 1, buf, payload(buf, i, 100), &addr[i]), 0);
    journal_close(j);
    if (how == 0)
        scribble(addr[9].seg, addr[9].off + 24 + 99, 1, '#'); /* the last payload byte */
    else
        scribble(addr[9].seg, addr[9].off + 60, 64, 0); /* a write that stopped halfway */
    struct journal_recovery rec;
    j = reopen(&rec);
    assert_int_equal(rec.records, 9);
    assert_int_equal(rec.tail_cut, 1);
    assert_int_equal(got.n, 9);
    check_sequence(0, 9, 0);
    for (int i = 10; i < 13; i++)
        assert_int_equal(journal_append_wait(j, 1, buf, payload(buf, i, 100), NULL), 0);
    assert_true(journal_current_segment(j) > addr[9].seg); /* never after a cut */
    journal_close(j);
    j = reopen(&rec);
    assert_int_equal(rec.tail_cut, 0);
    assert_int_equal(rec.corrupt_segments, 0); /* the cut segment was sealed */
    assert_int_equal(got.n, 12);
    check_sequence(0, 9, 0);
    check_sequence(10, 13, 9);
    journal_close(j);
}

static void test_torn_tail_corrupt(void **state)
{
    (void)state;
    torn_tail(0);
}

static void test_torn_tail_half_written(void **state)
{
    (void)state;
    torn_tail(1);
}

/* A bad record in the middle of an old segment: the rest of that segment is
 * skipped and counted, every other segment is delivered. */
static void test_corrupt_old_segment(void **state)
{
    (void)state;
    struct journal *j = reopen(NULL);
    char buf[200];
    struct journal_addr addr[1500];
    int n = 0;
    while (n < 1500) {
        assert_int_equal(journal_append_wait(j, 1, buf, payload(buf, n, 100), &addr[n]), 0);
        n++;
        if (addr[n - 1].seg == addr[0].seg + 2)
            break;
    }
    journal_close(j);
    int victim = 100, first_of_next = 0;
    while (addr[first_of_next].seg == addr[0].seg)
        first_of_next++;
    scribble(addr[victim].seg, addr[victim].off + 30, 4, 'X');
    struct journal_recovery rec;
    j = reopen(&rec);
    assert_int_equal(rec.corrupt_segments, 1);
    assert_int_equal(rec.first_corrupt.seg, addr[victim].seg);
    assert_int_equal(rec.first_corrupt.off, addr[victim].off);
    assert_int_equal(got.n, (size_t)(victim + n - first_of_next));
    check_sequence(0, victim, 0);
    check_sequence(first_of_next, n, (size_t)victim);
    assert_int_equal(tf_log_count("before the seal"), 1);
    journal_close(j);
    /* a segment header that is not ours: refused, nothing guessed */
    scribble(addr[0].seg, 0, 8, 'Z');
    assert_int_equal(journal_open(&j, dir, &OPTS, NULL, NULL, NULL), -1);
    assert_int_equal(errno, EBADMSG);
}

/* ---- failures ------------------------------------------------------------- */

static void test_fdatasync_failure_poisons(void **state)
{
    (void)state;
    struct journal *j = reopen(NULL);
    async_ok = async_fail = async_err = 0;
    assert_int_equal(journal_append_wait(j, 1, "before", 6, NULL), 0);
    tf_fs_gate(TF_FDATASYNC);
    tf_fs_set_permits(0);
    int before = tf_fs_calls(TF_FDATASYNC);
    assert_int_equal(journal_append(j, 1, "held", 4, async_done, NULL), 0);
    assert_true(tf_fs_wait_calls(TF_FDATASYNC, before + 1, 10000));
    for (int i = 0; i < 4; i++)
        assert_int_equal(journal_append(j, 1, "batch", 5, async_done, NULL), 0);
    tf_fs_fail(TF_FDATASYNC, 1, EIO); /* the held call is not "from now" */
    tf_fs_set_permits(-1);
    async_wait(5);
    assert_int_equal(async_ok, 1);
    assert_int_equal(async_fail, 4);
    assert_int_equal(async_err, EIO);
    /* poisoned: refused at once, no write tried */
    int pw = tf_fs_calls(TF_PWRITE);
    assert_int_equal(journal_append_wait(j, 1, "after", 5, NULL), -1);
    assert_int_equal(errno, EIO);
    assert_int_equal(journal_append(j, 1, "after", 5, async_done, NULL), -1);
    assert_int_equal(errno, EIO);
    assert_int_equal(tf_fs_calls(TF_PWRITE), pw);
    assert_true(tf_log_count("refusing appends until reopened") >= 1);
    journal_close(j);
    /* reopened: the acknowledged ones are there; appends work again */
    struct journal_recovery rec;
    j = reopen(&rec);
    assert_true(got.n >= 2);
    assert_string_equal(got.data[0], "before");
    assert_string_equal(got.data[1], "held");
    assert_int_equal(journal_append_wait(j, 1, "again", 5, NULL), 0);
    journal_close(j);
}

static void test_enospc_new_segment(void **state)
{
    (void)state;
    struct journal *j = reopen(NULL);
    struct tf_fault nospace = {.nth = 1, .count = TF_ALWAYS, .err = ENOSPC, .path_suffix = "seg.new"};
    tf_fs_arm(TF_OPENAT, nospace);
    char buf[9000];
    assert_int_equal(journal_append_wait(j, 1, "x", 1, NULL), -1); /* no segment yet */
    assert_int_equal(errno, ENOSPC);
    tf_fs_clear(TF_OPENAT);
    assert_int_equal(journal_append_wait(j, 1, buf, payload(buf, 0, 8000), NULL), 0);
    tf_fs_arm(TF_OPENAT, nospace);
    int ok = 1, rc;
    while ((rc = journal_append_wait(j, 1, buf, payload(buf, ok, 8000), NULL)) == 0)
        ok++;
    assert_int_equal(errno, ENOSPC);
    assert_int_equal(ok, 8); /* 8 records of 8000 bytes fill a 64 KiB segment */
    assert_int_equal(journal_append_wait(j, 1, buf, payload(buf, ok, 8000), NULL), -1);
    assert_int_equal(errno, ENOSPC); /* tried again, still full; not poisoned */
    tf_fs_clear(TF_OPENAT);
    assert_int_equal(journal_append_wait(j, 1, buf, payload(buf, ok, 8000), NULL), 0);
    journal_close(j);
    struct journal_recovery rec;
    j = reopen(&rec);
    assert_int_equal(got.n, 9);
    for (int i = 0; i < 9; i++) {
        size_t n = payload(buf, i, 8000);
        assert_memory_equal(got.data[i], buf, n);
    }
    assert_int_equal(count_names("seg.new"), 0);
    /* a spare cannot be made either: told now, not at the rollover */
    tf_fs_arm(TF_OPENAT, (struct tf_fault){.nth = 1, .count = TF_ALWAYS, .err = ENOSPC, .path_suffix = "free.new"});
    assert_int_equal(journal_prepare_spare(j, 1), -1);
    assert_int_equal(errno, ENOSPC);
    assert_int_equal(count_names("free"), 0);
    journal_close(j);
}

/* Spares made ahead are what the rollovers use: no segment made in the
 * writer, none unlinked. */
static void test_spares(void **state)
{
    (void)state;
    struct journal *j = reopen(NULL);
    assert_int_equal(journal_prepare_spare(j, 3), 0);
    assert_int_equal(count_names("free-"), 3);
    assert_int_equal(journal_prepare_spare(j, 2), 0); /* already enough */
    assert_int_equal(count_names("free-"), 3);
    tf_fs_arm(TF_OPENAT, (struct tf_fault){.nth = TF_ALWAYS, .err = 0, .path_suffix = "seg.new"});
    char buf[9000];
    struct journal_addr a;
    int i = 0;
    do
        assert_int_equal(journal_append_wait(j, 1, buf, payload(buf, i++, 8000), &a), 0);
    while (a.seg < 3);
    assert_int_equal(tf_fs_fault_calls(TF_OPENAT), 0);
    assert_int_equal(count_names("free-"), 0);
    journal_close(j);
    struct journal_recovery rec;
    j = reopen(&rec);
    assert_int_equal(got.n, (size_t)i);
    assert_int_equal(rec.corrupt_segments, 0);
    journal_close(j);
}

/* ---- recycling ------------------------------------------------------------ */

static void test_recycle(void **state)
{
    (void)state;
    struct journal *j = reopen(NULL);
    char buf[9000];
    struct journal_addr a;
    int i = 0;
    do
        assert_int_equal(journal_append_wait(j, 1, buf, payload(buf, i++, 8000), &a), 0);
    while (a.seg < 3);
    assert_int_equal(count_names("seg-"), 3);
    assert_int_equal(journal_retire_segment(j, 1), 0);
    assert_int_equal(journal_retire_segment(j, 2), 0);
    assert_int_equal(journal_retire_segment(j, 3), -1);
    assert_int_equal(errno, EBUSY);
    assert_int_equal(journal_retire_segment(j, 1), -1);
    assert_int_equal(errno, ENOENT);
    uint32_t type;
    size_t len;
    assert_int_equal(journal_read(j, (struct journal_addr){.seg = 1, .off = 64}, &type, buf, sizeof buf, &len), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(count_names("free-"), 2);
    /* two more segments: both from the free list */
    tf_fs_arm(TF_OPENAT, (struct tf_fault){.nth = TF_ALWAYS, .err = 0, .path_suffix = "seg.new"});
    int first_new = i;
    do
        assert_int_equal(journal_append_wait(j, 1, buf, payload(buf, i++, 8000), &a), 0);
    while (a.seg < 5);
    assert_int_equal(tf_fs_fault_calls(TF_OPENAT), 0); /* no new file made */
    assert_int_equal(count_names("free-"), 0);
    assert_int_equal(count_names("seg-"), 3);
    assert_int_equal(tf_fs_calls(TF_UNLINKAT), 0);
    assert_int_equal(tf_fs_calls(TF_UNLINK), 0);
    journal_close(j);
    /* the recycled files' old records (seqs 1, 2) are not delivered again */
    struct journal_recovery rec;
    int seg3_first = 0;
    j = reopen(&rec);
    for (size_t k = 0; k < got.n; k++)
        assert_true(got.addr[k].seg >= 3);
    seg3_first = atoi(got.data[0] + 4);
    assert_int_equal(got.n, (size_t)(i - seg3_first));
    assert_true(seg3_first < first_new);
    /* a free file found at open is reused too */
    assert_int_equal(journal_retire_segment(j, 3), 0);
    journal_close(j);
    j = reopen(&rec);
    assert_int_equal(count_names("free-"), 1);
    tf_fs_arm(TF_OPENAT, (struct tf_fault){.nth = TF_ALWAYS, .err = 0, .path_suffix = "seg.new"});
    assert_int_equal(journal_append_wait(j, 1, "x", 1, &a), 0);
    assert_int_equal(a.seg, 6);
    assert_int_equal(tf_fs_fault_calls(TF_OPENAT), 0);
    assert_int_equal(count_names("free-"), 0);
    assert_int_equal(tf_fs_calls(TF_UNLINKAT), 0);
    journal_close(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit_gated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lazy_records_share_a_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_half_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_old_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fdatasync_failure_poisons, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enospc_new_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spares, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
