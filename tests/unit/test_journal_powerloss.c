/* The spool journal under a simulated power loss (see the comment below);
 * the other journal tests are in test_journal.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "journal_fixture.h"
#include "powerloss_fixture.h"

static struct journal *gj;

/* ---- simulated power loss ------------------------------------------------
 *
 * The layer of powerloss_fixture.h, over the fixture's table, records every
 * write that no completed fdatasync or fsync of its file has covered yet. At
 * the "power loss" every later call that would change the disk fails with
 * EIO and each uncovered write is undone, kept, or half kept (chosen by a
 * seeded random number), last first. The journal is then reopened on the
 * real table: every record acknowledged before the loss must be there.
 * File-system metadata (creations, renames) is taken as durable once done:
 * the journal syncs the directory after each of them before relying on it,
 * and modelling a lost rename is left out. */

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
