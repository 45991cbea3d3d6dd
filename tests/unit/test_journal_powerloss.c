/* The spool journal under a simulated power loss (see the comment below);
 * the other journal tests are in test_journal.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "journal_fixture.h"

static struct journal *gj;

/* ---- simulated power loss ------------------------------------------------
 *
 * A layer over the fixture's table records every pwrite that no completed
 * fdatasync or fsync of its file has covered yet, with the bytes it
 * replaced. At the "power loss" every later call fails with EIO and each
 * uncovered write is undone, kept, or half kept (chosen by a seeded random
 * number), last first. The journal is then reopened on the real table: every
 * record acknowledged before the loss must be there. File-system metadata
 * (creations, renames) is taken as durable once done: the journal syncs the
 * directory after each of them before relying on it, and modelling a lost
 * rename is left out. */

#define PL_FILES 64

struct pl_write {
    ino_t ino;
    off_t off;
    size_t len;
    unsigned char *old;
};

static struct {
    pthread_mutex_t mu;
    int crashed;
    int crash_at_sync; /* the next sync does not happen: the power goes first */
    unsigned seed;
    size_t lost;
    struct pl_write *w;
    size_t n, cap;
    struct {
        ino_t ino;
        int fd;
    } files[PL_FILES];
    size_t nfiles;
    const struct fsops *below;
    struct fsops ops;
} pl = {.mu = PTHREAD_MUTEX_INITIALIZER};

static ino_t pl_ino(int fd)
{
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    return st.st_ino;
}

static ssize_t pl_pwrite(int fd, const void *buf, size_t len, off_t off)
{
    pthread_mutex_lock(&pl.mu);
    if (pl.crashed) {
        pthread_mutex_unlock(&pl.mu);
        errno = EIO;
        return -1;
    }
    ino_t ino = pl_ino(fd);
    size_t f = 0;
    while (f < pl.nfiles && pl.files[f].ino != ino)
        f++;
    if (f == pl.nfiles) {
        assert_true(f < PL_FILES);
        pl.files[f].ino = ino;
        pl.files[f].fd = dup(fd);
        pl.nfiles++;
    }
    unsigned char *old = calloc(1, len ? len : 1);
    ssize_t got_old = pread(fd, old, len, off);
    (void)got_old; /* past the end: zeros */
    ssize_t rc = pl.below->pwrite(fd, buf, len, off);
    if (rc > 0) {
        if (pl.n == pl.cap) {
            pl.cap = pl.cap ? pl.cap * 2 : 256;
            pl.w = realloc(pl.w, pl.cap * sizeof *pl.w);
        }
        pl.w[pl.n++] = (struct pl_write){.ino = ino, .off = off, .len = (size_t)rc, .old = old};
    } else {
        free(old);
    }
    pthread_mutex_unlock(&pl.mu);
    return rc;
}

static void pl_crash_locked(void);

static int pl_sync(int fd, int data_only)
{
    pthread_mutex_lock(&pl.mu);
    if (pl.crash_at_sync && !pl.crashed)
        pl_crash_locked();
    if (pl.crashed) {
        pthread_mutex_unlock(&pl.mu);
        errno = EIO;
        return -1;
    }
    int rc = data_only ? pl.below->fdatasync(fd) : pl.below->fsync(fd);
    if (rc == 0) {
        ino_t ino = pl_ino(fd);
        size_t k = 0;
        for (size_t i = 0; i < pl.n; i++) {
            if (pl.w[i].ino == ino)
                free(pl.w[i].old);
            else
                pl.w[k++] = pl.w[i];
        }
        pl.n = k;
    }
    pthread_mutex_unlock(&pl.mu);
    return rc;
}

static int pl_fdatasync(int fd)
{
    return pl_sync(fd, 1);
}

static int pl_fsync(int fd)
{
    return pl_sync(fd, 0);
}

static int pl_renameat(int fromdir, const char *from, int todir, const char *to)
{
    pthread_mutex_lock(&pl.mu);
    int crashed = pl.crashed;
    pthread_mutex_unlock(&pl.mu);
    if (crashed) {
        errno = EIO;
        return -1;
    }
    return pl.below->renameat(fromdir, from, todir, to);
}

static void pl_install(void)
{
    pl.crashed = 0;
    pl.crash_at_sync = 0;
    pl.lost = 0;
    pl.below = fsops_current();
    pl.ops = *pl.below;
    pl.ops.pwrite = pl_pwrite;
    pl.ops.fdatasync = pl_fdatasync;
    pl.ops.fsync = pl_fsync;
    pl.ops.renameat = pl_renameat;
    fsops_install(&pl.ops);
}

/* The power goes: pl.lost gets how many writes no sync covered. */
static void pl_crash_locked(void)
{
    unsigned seed = pl.seed;
    pl.crashed = 1;
    pl.lost = pl.n;
    for (size_t i = pl.n; i-- > 0;) {
        struct pl_write *w = &pl.w[i];
        int fd = -1;
        for (size_t f = 0; f < pl.nfiles; f++)
            if (pl.files[f].ino == w->ino)
                fd = pl.files[f].fd;
        unsigned r = (unsigned)rand_r(&seed) % 3;
        size_t keep = r == 0 ? 0 : r == 1 ? w->len : w->len / 2;
        if (keep < w->len)
            assert_int_equal(pwrite(fd, w->old + keep, w->len - keep, w->off + (off_t)keep),
                             (ssize_t)(w->len - keep));
        free(w->old);
    }
    pl.n = 0;
}

/* now (between calls), or at the next sync (written, not yet synced) */
static size_t pl_crash(unsigned seed, int at_sync)
{
    pthread_mutex_lock(&pl.mu);
    pl.seed = seed;
    if (at_sync)
        pl.crash_at_sync = 1;
    else
        pl_crash_locked();
    pthread_mutex_unlock(&pl.mu);
    return 0;
}

static void pl_release(void)
{
    for (size_t f = 0; f < pl.nfiles; f++)
        close(pl.files[f].fd);
    pl.nfiles = 0;
    free(pl.w);
    pl.w = NULL;
    pl.cap = 0;
    fsops_install(pl.below);
}

#define PL_THREADS 8
#define PL_ROUNDS 8

static int pl_acked[PL_ROUNDS][PL_THREADS];
static int pl_round;
static pthread_mutex_t pl_count_mu = PTHREAD_MUTEX_INITIALIZER;
static int pl_total;

static void *pl_appender(void *arg)
{
    int t = (int)(intptr_t)arg;
    char buf[400];
    for (int i = 0; i < 10000; i++) {
        int id = pl_round * 100000 + t * 10000 + i;
        if (journal_append_wait(gj, 1, buf, payload(buf, id, 50 + (size_t)(i * 37 % 300)), NULL) != 0)
            break;
        pl_acked[pl_round][t] = i + 1;
        pthread_mutex_lock(&pl_count_mu);
        pl_total++;
        pthread_mutex_unlock(&pl_count_mu);
    }
    return NULL;
}

/* After a reopen: for every round and thread, the records found are its
 * first k, in order, with k at least what was acknowledged. */
static void pl_check(int rounds)
{
    int seen[PL_ROUNDS][PL_THREADS] = {{0}};
    char buf[400];
    for (size_t k = 0; k < got.n; k++) {
        int id = atoi(got.data[k] + 4);
        int r = id / 100000, t = id / 10000 % 10, i = id % 10000;
        assert_true(r < rounds && t < PL_THREADS);
        assert_int_equal(i, seen[r][t]); /* in order, no gap, no duplicate */
        size_t n = payload(buf, id, 50 + (size_t)(i * 37 % 300));
        assert_int_equal(got.len[k], n);
        assert_memory_equal(got.data[k], buf, n);
        seen[r][t]++;
    }
    for (int r = 0; r < rounds; r++)
        for (int t = 0; t < PL_THREADS; t++)
            assert_true(seen[r][t] >= pl_acked[r][t]);
}

static void test_power_loss(void **state)
{
    (void)state;
    memset(pl_acked, 0, sizeof pl_acked);
    for (pl_round = 0; pl_round < PL_ROUNDS; pl_round++) {
        struct journal_recovery rec;
        gj = reopen(&rec);
        pl_check(pl_round);
        pl_install();
        pthread_mutex_lock(&pl_count_mu);
        pl_total = 0;
        pthread_mutex_unlock(&pl_count_mu);
        pthread_t th[PL_THREADS];
        for (int t = 0; t < PL_THREADS; t++)
            assert_int_equal(pthread_create(&th[t], NULL, pl_appender, (void *)(intptr_t)t), 0);
        int target = 150 + pl_round * 50, total = 0;
        for (int k = 0; k < 20000 && total < target; k++) {
            usleep(500);
            pthread_mutex_lock(&pl_count_mu);
            total = pl_total;
            pthread_mutex_unlock(&pl_count_mu);
        }
        pl_crash(1234u + (unsigned)pl_round, pl_round > 0);
        for (int t = 0; t < PL_THREADS; t++)
            pthread_join(th[t], NULL);
        size_t lost = pl.lost;
        journal_close(gj);
        pl_release();
        print_message("power loss round %d: %d acknowledged, %zu writes not synced\n", pl_round, total,
                      lost);
    }
    struct journal_recovery rec;
    struct journal *j = reopen(&rec);
    pl_check(PL_ROUNDS);
    assert_int_equal(rec.corrupt_segments, 0);
    journal_close(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_power_loss, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
