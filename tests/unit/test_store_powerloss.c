/* The whole store in journal mode (queue_sync_method = journal) under a
 * simulated power loss (issue 12); the journal alone is tested the same way
 * in test_journal_powerloss.c, with the same layer (powerloss_fixture.h).
 *
 * Each case is one seed. On a temporary spool the store runs in journal
 * mode with 64 KiB segments, on a real libevent loop, under the power-loss
 * layer, and a workload does what smtpd and the queue do: messages written
 * into incoming/ with queue_file_writer_* (never synced, like smtpd's) and
 * committed with store_commit (a few too large for a record: they stay
 * files in queue/), per-recipient progress (delivered, deferred, failed)
 * with store_append_status, store_remove of finished messages, moves to
 * hold/ and back, deletions from hold/. Busy phases alternate with drains,
 * so the journal rolls over many segments, the store's once-a-second tick
 * copies old messages forward and retires segments. At a random moment
 * (between two calls, or at the next sync: written but not synced) the
 * power goes; the loop then runs on a little (callbacks that still report
 * ok can only be for data synced before the loss), the store is closed,
 * and a new store opened on the directory with the real calls recovers.
 *
 * Asserted after each loss:
 * - every commit acknowledged (callback ok) and not removed before the loss
 *   is recovered, and so is every message recovered at the previous loss
 *   and not removed since;
 * - every recovered message is one the test wrote and committed (never
 *   one it only wrote to incoming/, never one an earlier recovery had not
 *   found), recovered once, intact: its envelope is the one written and
 *   its content bytes at store_content_locate's path and offset are the
 *   ones written. A removed message may come back (at-least-once), but
 *   only intact;
 * - the journal's order (journal.h: an acknowledged record is durable with
 *   every record appended before it): a progress record, move or removal
 *   appended before the last acknowledged journal commit is in what was
 *   recovered (a later one may or may not be). Messages kept as files get
 *   the file rules instead (a move is a rename: durable at once; progress
 *   is not synced: any prefix of it);
 * - corrupt/ holds only never-acknowledged file-mode messages.
 * And while the store runs (every 250 ms, and at the cut): every live
 * message's content is where store_content_locate says.
 * Then a second round goes on from the recovered spool, under the layer
 * again, and ends in a second loss checked the same way. Each seed's
 * counts are printed (what was written, acknowledged, removed, recovered,
 * how many writes the loss found unsynced, segments made and retired).
 *
 * Three bugs this test found (all fixed) keep cases of their own at the
 * end: a segment retired under commits not yet answered (acknowledged mail
 * lost), a memmove(NULL, ..., 0) that UBSan aborts on, and a message copied
 * forward only once (segments after it never retired).
 *
 * The layer takes file-system metadata (create, rename, unlink) as durable
 * once done (see powerloss_fixture.h): the store's unlink of an incoming/
 * file after its commit, its rename into queue/ (file mode) and the
 * journal's segment renames (making, retiring, recycling) are such
 * metadata, so a lost rename or unlink is not covered here. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "spool/journal.h"
#include "spool/queue_file.h"
#include "spool/queue_id.h"
#include "spool/spool.h"
#include "spool/store.h"
#include "spool/store_journal.h"
#include "test_fixture.h"
#include "powerloss_fixture.h"
#include "loop_fixture.h"
#include "util/mem.h"
#include "util/str.h"

#define SEG_SIZE 65536u
#define MAX_RCPT 4
#define MAX_HIST 8
#define ROUNDS 2
#define STEP_US 1500 /* the workload's timer */

static const char SENDER[] = "sender@example.com";

/* ---- the model: every message the test wrote ------------------------------ */

enum { T_WRITTEN, T_COMMITTING, T_ACKED, T_FAILED };

struct hist {
    long op; /* the workload's call number (log order for journal records) */
    int v;   /* a recipient state, or a place */
};

struct tmsg {
    char id[QUEUE_ID_LEN + 1];
    uint32_t size;   /* content bytes */
    uint8_t nrcpt;
    uint8_t state;   /* T_*: of the commit in this round */
    uint8_t file_mode; /* too large for a record: a queue/ file */
    uint8_t durable; /* acknowledged, or found by a recovery */
    uint8_t removed; /* store_remove called in this round */
    uint8_t gone;    /* a recovery did not find it: it must never come back */
    uint8_t found;   /* by the recovery being checked */
    uint8_t held;    /* place */
    uint8_t base_place;
    uint8_t base_state[MAX_RCPT];
    uint8_t nplace, nst[MAX_RCPT];
    struct hist place_h[MAX_HIST];
    struct hist st_h[MAX_RCPT][MAX_HIST];
    long commit_op, remove_op;
    int live_pos;    /* in T.live, or -1 */
    int have_m;
    struct queue_file_message m; /* the envelope the store handed over */
    unsigned records; /* MESSAGE records of it left in the journal (copies) */
};

/* What a recovery found. */
struct found {
    struct queue_file_message m;
    enum store_place place;
};

static struct {
    char dir[64];
    unsigned seed, rng;
    struct event_base *base;
    struct tmsg *tm;
    size_t n, cap;
    int *live;
    size_t nlive, caplive;
    long op;
    long k_max;         /* op of the last acknowledged journal commit (this round) */
    int working;        /* the workload runs */
    int store_is_open, layer_on;
    struct event *step;
    long next_check;    /* ms: the next check_live_content */
    char live_error[512]; /* what it found wrong */
    struct timespec start;
    struct found *found;
    size_t nfound, capfound;
    /* this round's counts */
    unsigned written, committed, acked, failed, removed, moved, progress, file_mode;
} T;

static unsigned rnd(unsigned n)
{
    return (unsigned)rand_r(&T.rng) % n;
}

static long ms_since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t0->tv_sec) * 1000L + (now.tv_nsec - t0->tv_nsec) / 1000000L;
}

static struct tmsg *find_tm(const char *id)
{
    size_t lo = 0, hi = T.n; /* ids are made in increasing order */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(T.tm[mid].id, id);
        if (c == 0)
            return &T.tm[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static void live_add(int idx)
{
    if (T.nlive == T.caplive) {
        T.caplive = T.caplive ? T.caplive * 2 : 256;
        T.live = xrealloc(T.live, T.caplive * sizeof *T.live);
    }
    T.tm[idx].live_pos = (int)T.nlive;
    T.live[T.nlive++] = idx;
}

static void live_del(int idx)
{
    int pos = T.tm[idx].live_pos;
    if (pos < 0)
        return;
    int last = T.live[--T.nlive];
    T.live[pos] = last;
    T.tm[last].live_pos = pos;
    T.tm[idx].live_pos = -1;
}

static void drop_m(struct tmsg *t)
{
    if (t->have_m)
        queue_file_message_free(&t->m);
    t->have_m = 0;
}

/* The content of message idx: a header line, then lines of letters. */
static void fill_content(char *buf, size_t idx, size_t size)
{
    int h = snprintf(buf, size, "Subject: m%zu\r\n\r\n", idx);
    for (size_t k = (size_t)h; k < size; k++)
        buf[k] = k % 72 == 70 ? '\r' : k % 72 == 71 ? '\n' : (char)('a' + (idx * 7 + k) % 26);
}

static void rcpt_addr(char *out, size_t size, size_t idx, unsigned r)
{
    snprintf(out, size, "r%u-%zu@example.org", r, idx);
}

/* ---- the workload ------------------------------------------------------------ */

/* Something went wrong on the loop: noted (the first only), the workload
 * stops, and the round fails when the loop returns (failing inside a
 * libevent callback would leave the loop running). */
static __attribute__((format(printf, 1, 2))) void workload_error(const char *fmt, ...)
{
    T.working = 0;
    if (T.live_error[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(T.live_error, sizeof T.live_error, fmt, ap);
    va_end(ap);
}

static void progress_message(int idx);
static int check_content(const struct tmsg *t, const struct queue_file_message *m, enum store_place place,
                         char *err, size_t errlen);

/* While the store runs: every live message's content is where the store
 * says (a segment retired under a live message shows here, before any
 * power loss). */
static void check_live_content(void)
{
    for (size_t i = 0; i < T.nlive && !T.live_error[0]; i++) {
        const struct tmsg *t = &T.tm[T.live[i]];
        char err[512];
        if (t->have_m && check_content(t, &t->m, t->held ? STORE_HOLD : STORE_QUEUE, err, sizeof err) != 0)
            workload_error("%s", err);
    }
}

static void on_commit(void *arg, int ok, struct queue_file_message *m, int err)
{
    (void)err;
    int idx = (int)(intptr_t)arg;
    struct tmsg *t = &T.tm[idx];
    if (!ok) {
        t->state = T_FAILED;
        T.failed++;
        return;
    }
    t->state = T_ACKED;
    t->durable = 1;
    t->m = *m;
    t->have_m = 1;
    T.acked++;
    if (!t->file_mode && t->commit_op > T.k_max)
        T.k_max = t->commit_op;
    live_add(idx);
    /* The first delivery attempt follows the commit, as in the queue. It
     * also means no journal message is ever copied forward before it has a
     * progress record: see test_copy_forward_without_progress. */
    if (T.working && !pl_crashed())
        progress_message(idx);
}

/* A call failed: only the power loss may have caused it. */
static void call_failed(const char *what, const struct tmsg *t)
{
    if (!pl_crashed())
        workload_error("%s %s failed before the power loss: %s", what, t->id, strerror(errno));
    T.working = 0;
}

/* A new message of size content bytes (0: a random size), written into
 * incoming/ and committed; returns its index (-1 when the power is gone). */
static int new_message(uint32_t size)
{
    if (T.n == T.cap) {
        T.cap = T.cap ? T.cap * 2 : 1024;
        T.tm = xrealloc(T.tm, T.cap * sizeof *T.tm);
    }
    int idx = (int)T.n;
    struct tmsg *t = &T.tm[T.n++];
    memset(t, 0, sizeof *t);
    t->live_pos = -1;
    queue_id_new(t->id);
    unsigned r = rnd(100);
    t->size = size ? size : r < 3 ? 17000 + rnd(20000) : r < 12 ? 6000 + rnd(9000) : 200 + rnd(5800);
    t->nrcpt = (uint8_t)(1 + rnd(MAX_RCPT));
    char *buf = xmalloc(t->size);
    fill_content(buf, (size_t)idx, t->size);
    struct queue_file_message m;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    queue_file_message_init(&m, t->id, (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000, SENDER);
    for (unsigned k = 0; k < t->nrcpt; k++) {
        char a[64];
        rcpt_addr(a, sizeof a, (size_t)idx, k);
        queue_file_message_add_rcpt(&m, a, "", QF_NOTIFY_FAILURE, -1);
    }
    struct queue_file_writer *w;
    int rc = queue_file_writer_open(store_incoming_dirfd(), t->id, &w);
    if (rc == 0)
        rc = queue_file_writer_write(w, buf, t->size);
    if (rc == 0)
        rc = queue_file_writer_finish(w, &m);
    queue_file_message_free(&m);
    free(buf);
    if (rc != 0) {
        call_failed("writing", t);
        return -1;
    }
    T.written++;
    struct stat sb;
    if (fstatat(store_incoming_dirfd(), t->id, &sb, 0) != 0) {
        workload_error("%s: incoming file: %s", t->id, strerror(errno));
        return -1;
    }
    t->file_mode = (uint64_t)sb.st_size > store_journal_max_message();
    T.file_mode += t->file_mode;
    t->state = T_COMMITTING;
    t->commit_op = ++T.op;
    T.committed++;
    store_commit(t->id, on_commit, (void *)(intptr_t)idx);
    return idx;
}

static void remove_message(int idx)
{
    struct tmsg *t = &T.tm[idx];
    long op = ++T.op;
    if (store_remove(t->id, t->held ? STORE_HOLD : STORE_QUEUE) != 0) {
        call_failed("store_remove", t);
        return;
    }
    t->removed = 1;
    t->remove_op = op;
    T.removed++;
    live_del(idx);
    drop_m(t);
}

static void move_message(int idx, int to_hold)
{
    struct tmsg *t = &T.tm[idx];
    if (t->nplace >= MAX_HIST)
        return;
    long op = ++T.op;
    if (store_move(t->id, t->held ? STORE_HOLD : STORE_QUEUE, to_hold ? STORE_HOLD : STORE_QUEUE) != 0) {
        call_failed("store_move", t);
        return;
    }
    t->held = (uint8_t)to_hold;
    t->place_h[t->nplace++] = (struct hist){op, to_hold};
    T.moved++;
}

/* One delivery attempt for one open recipient of a queued message. */
static void progress_message(int idx)
{
    struct tmsg *t = &T.tm[idx];
    if (t->held || !t->have_m)
        return;
    struct queue_file_message *m = &t->m;
    unsigned start = rnd(t->nrcpt), r = MAX_RCPT;
    for (unsigned k = 0; k < t->nrcpt; k++) {
        unsigned c = (start + k) % t->nrcpt;
        if (m->rcpts[c].state == QF_PENDING || m->rcpts[c].state == QF_DEFERRED) {
            r = c;
            break;
        }
    }
    if (r == MAX_RCPT) {
        remove_message(idx);
        return;
    }
    unsigned d = rnd(100);
    int st = d < 55 || t->nst[r] >= MAX_HIST - 1 ? QF_DELIVERED : d < 93 ? QF_DEFERRED : QF_FAILED;
    time_t now = time(NULL);
    m->rcpts[r].state = (enum queue_file_rcpt_state)st;
    m->rcpts[r].attempts++;
    m->rcpts[r].last_try = now;
    m->rcpts[r].next_try = st == QF_DEFERRED ? now + 60 : 0;
    long op = ++T.op;
    if (store_append_status(m, STORE_QUEUE, r) != 0) {
        call_failed("store_append_status", t);
        return;
    }
    t->st_h[r][t->nst[r]++] = (struct hist){op, st};
    T.progress++;
    if (queue_file_message_open_rcpts(m) == 0)
        remove_message(idx);
}

static void on_step(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (!T.working || pl_crashed()) {
        T.working = 0;
        return;
    }
    long now = ms_since(&T.start);
    if (now >= T.next_check) {
        check_live_content();
        T.next_check = now + 250;
    }
    /* 300 ms busy, 100 ms draining */
    int busy = now % 400 < 300;
    unsigned arrivals = busy ? rnd(5) : 0, attempts = busy ? 3 : 10;
    for (unsigned i = 0; i < arrivals && T.working; i++)
        new_message(0);
    for (unsigned i = 0; i < attempts && T.nlive && T.working; i++)
        progress_message(T.live[rnd((unsigned)T.nlive)]);
    if (T.working && T.nlive && rnd(100) < 5) {
        int idx = T.live[rnd((unsigned)T.nlive)];
        if (!T.tm[idx].held)
            move_message(idx, 1);
    }
    if (T.working && T.nlive && rnd(100) < 4) {
        int idx = T.live[rnd((unsigned)T.nlive)];
        if (T.tm[idx].held) {
            if (rnd(2))
                move_message(idx, 0);
            else
                remove_message(idx);
        }
    }
}

/* Runs the loop for ms (loop_fixture.h). */
static void run_for(int ms)
{
    tf_loop_for(T.base, ms);
}

/* ---- recovery -------------------------------------------------------------- */

static void on_found(void *arg, struct queue_file_message *m, enum store_place place)
{
    (void)arg;
    if (T.nfound == T.capfound) {
        T.capfound = T.capfound ? T.capfound * 2 : 256;
        T.found = xrealloc(T.found, T.capfound * sizeof *T.found);
    }
    T.found[T.nfound++] = (struct found){.m = *m, .place = place};
}

static void found_free(void)
{
    for (size_t i = 0; i < T.nfound; i++)
        queue_file_message_free(&T.found[i].m);
    T.nfound = 0;
}

static void set_writers_since_now(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    store_set_writers_since(now);
}

/* Is v allowed for a record history h (n entries) over base value b, when
 * every record before op k is durable? The last durable one's value, or
 * any later one's. With k < 0 (not ordered: unsynced file progress) any. */
static int allowed(const struct hist *h, unsigned n, int b, long k, int v)
{
    int last = -1;
    for (unsigned i = 0; i < n; i++)
        if (k >= 0 && h[i].op < k)
            last = (int)i;
    if ((last < 0 ? b : h[last].v) == v)
        return 1;
    for (unsigned i = (unsigned)(last + 1); i < n; i++)
        if (h[i].v == v)
            return 1;
    return k < 0 && b == v;
}

/* The content of message t (envelope m, in place) at store_content_locate's
 * path and offset is what was written: 0, or -1 with the reason in err. */
static int check_content(const struct tmsg *t, const struct queue_file_message *m, enum store_place place,
                         char *err, size_t errlen)
{
    size_t idx = (size_t)(t - T.tm);
    char *path = NULL;
    uint64_t base = 0;
    if (store_content_locate(t->id, place, &path, &base) != 0) {
        snprintf(err, errlen, "%s: store_content_locate failed", t->id);
        return -1;
    }
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: content at %s: %s", t->id, path, strerror(errno));
        rc = -1;
    } else {
        char *want = xmalloc(t->size), *got = xmalloc(t->size);
        fill_content(want, idx, t->size);
        ssize_t n = pread(fd, got, t->size, (off_t)(base + m->content_offset));
        close(fd);
        if (n != (ssize_t)t->size || memcmp(want, got, t->size) != 0) {
            snprintf(err, errlen, "%s: content differs from what was written (%s at %" PRIu64 "+%" PRIu64
                     ", %zd of %u bytes)", t->id, path, base, m->content_offset, n, t->size);
            rc = -1;
        }
        free(want);
        free(got);
    }
    free(path);
    store_content_done(t->id);
    return rc;
}

struct check_counts {
    unsigned found, must, reappeared, after_failure, corrupt;
};

/* Everything the top of this file promises, for what T.found holds. */
static void check_recovery(struct check_counts *c)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < T.n; i++)
        T.tm[i].found = 0;
    for (size_t i = 0; i < T.nfound; i++) {
        const struct found *f = &T.found[i];
        struct tmsg *t = find_tm(f->m.id);
        if (!t || t->state == T_WRITTEN)
            fail_msg("%s: recovered, but never committed", f->m.id);
        if (t->gone)
            fail_msg("%s: recovered, but an earlier recovery had not found it", t->id);
        if (t->found)
            fail_msg("%s: recovered twice", t->id);
        t->found = 1;
        c->found++;
        size_t idx = (size_t)(t - T.tm);
        /* the envelope */
        assert_string_equal(f->m.sender, SENDER);
        assert_int_equal(f->m.nrcpt, t->nrcpt);
        assert_int_equal(f->m.content_length, t->size);
        for (unsigned r = 0; r < t->nrcpt; r++) {
            char a[64];
            rcpt_addr(a, sizeof a, idx, r);
            assert_string_equal(f->m.rcpts[r].addr, a);
        }
        char err[512];
        if (check_content(t, &f->m, f->place, err, sizeof err) != 0)
            fail_msg("recovered: %s", err);
        /* the journal's order, or the files' rules */
        long k = t->file_mode ? -1 : T.k_max;
        int place = f->place == STORE_HOLD;
        int place_ok = t->file_mode ? place == t->held
                                    : allowed(t->place_h, t->nplace, t->base_place, k, place);
        if (!place_ok)
            fail_msg("%s: recovered in %s, but a move appended before the last acknowledged commit says otherwise",
                     t->id, place ? "hold" : "queue");
        for (unsigned r = 0; r < t->nrcpt; r++)
            if (!allowed(t->st_h[r], t->nst[r], t->base_state[r], k, f->m.rcpts[r].state))
                fail_msg("%s: recipient %u recovered as %s, not what its progress allows", t->id, r,
                         queue_file_state_name(f->m.rcpts[r].state));
        if (t->removed) {
            c->reappeared++;
            if (!t->file_mode && t->remove_op < T.k_max)
                fail_msg("%s: recovered, but its removal was appended before the last acknowledged commit", t->id);
        }
        if (!t->durable)
            c->after_failure++;
    }
    unsigned missing = 0;
    for (size_t i = 0; i < T.n; i++) {
        struct tmsg *t = &T.tm[i];
        if (t->durable && !t->removed) {
            c->must++;
            if (!t->found && missing++ < 10)
                print_error("%s: %s, not removed, but not recovered (%s message)\n", t->id,
                            t->state == T_ACKED ? "acknowledged" : "recovered before",
                            t->file_mode ? "file" : "journal");
        }
    }
    if (missing)
        fail_msg("%u of %u acknowledged (or recovered) messages not removed are lost", missing, c->must);
    /* corrupt/: only never-acknowledged files */
    char *p = xasprintf("%s/%s", T.dir, QDIR_CORRUPT);
    DIR *d = opendir(p);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        struct tmsg *t = find_tm(de->d_name);
        if (!t || !t->file_mode || t->durable)
            fail_msg("corrupt/%s: an acknowledged message, or not one of the test's", de->d_name);
        c->corrupt++;
        char *q = xasprintf("%s/%s", p, de->d_name);
        unlink(q);
        free(q);
    }
    closedir(d);
    free(p);
}

/* The model after a checked recovery: what was found is the new base. */
static void rebase(void)
{
    for (size_t i = 0; i < T.n; i++) {
        struct tmsg *t = &T.tm[i];
        live_del((int)i);
        drop_m(t);
        if (!t->found) {
            t->gone = 1;
            t->durable = 0;
            continue;
        }
        t->durable = 1;
        t->state = T_ACKED;
        t->removed = 0;
        t->nplace = 0;
        memset(t->nst, 0, sizeof t->nst);
    }
    for (size_t i = 0; i < T.nfound; i++) {
        struct found *f = &T.found[i];
        struct tmsg *t = find_tm(f->m.id);
        t->held = t->base_place = f->place == STORE_HOLD;
        for (unsigned r = 0; r < t->nrcpt; r++)
            t->base_state[r] = (uint8_t)f->m.rcpts[r].state;
        t->m = f->m;
        t->have_m = 1;
        live_add((int)(t - T.tm));
        /* its first record after the restart (see on_commit) */
        long op = ++T.op;
        assert_int_equal(store_append_status(&t->m, t->held ? STORE_HOLD : STORE_QUEUE, 0), 0);
        t->st_h[0][t->nst[0]++] = (struct hist){op, t->m.rcpts[0].state};
    }
    T.nfound = 0; /* the envelopes are the model's now */
}

/* MESSAGE records left in the journal, per message (a copy-forward makes a
 * second one). */
static int count_record(void *arg, uint32_t type, const void *data, size_t len, struct journal_addr addr)
{
    (void)arg;
    (void)addr;
    if (type != STORE_REC_MESSAGE || len < STORE_MESSAGE_PREFIX)
        return 0;
    struct queue_file_message m;
    char err[128];
    if (queue_file_read_mem((const char *)data + STORE_MESSAGE_PREFIX, len - STORE_MESSAGE_PREFIX, &m, err,
                            sizeof err) == 0) {
        struct tmsg *t = find_tm(m.id);
        if (t)
            t->records++;
        queue_file_message_free(&m);
    }
    return 0;
}

struct seg_counts {
    unsigned segs, frees, copied;
    uint64_t max_seq;
};

static void journal_counts(struct seg_counts *s)
{
    memset(s, 0, sizeof *s);
    char *p = xasprintf("%s/%s", T.dir, QDIR_JOURNAL);
    DIR *d = opendir(p);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "seg-", 4) == 0) {
            s->segs++;
            uint64_t seq = strtoull(de->d_name + 4, NULL, 16);
            if (seq > s->max_seq)
                s->max_seq = seq;
        } else if (strncmp(de->d_name, "free-", 5) == 0) {
            s->frees++;
        }
    }
    closedir(d);
    for (size_t i = 0; i < T.n; i++)
        T.tm[i].records = 0;
    assert_int_equal(journal_scan(p, count_record, NULL), 0);
    for (size_t i = 0; i < T.n; i++)
        s->copied += T.tm[i].records > 1;
    free(p);
}

/* ---- opening and closing the spool ------------------------------------------ */

/* A store on T.dir in journal mode, under the power-loss layer or not. */
static void spool_open(int layer)
{
    T.base = event_base_new();
    assert_non_null(T.base);
    if (layer) {
        pl_install();
        T.layer_on = 1;
    }
    store_journal_set_segment_size(SEG_SIZE);
    set_writers_since_now();
    T.store_is_open = 1;
    assert_int_equal(store_open(T.base, T.dir, STORE_SYNC_JOURNAL), 0);
}

/* Also after a failed assertion (teardown). */
static void spool_close(void)
{
    if (T.step)
        event_free(T.step);
    T.step = NULL;
    if (T.store_is_open)
        store_close();
    T.store_is_open = 0;
    if (T.layer_on) {
        pl_on_sync(NULL);
        pl_release();
    }
    T.layer_on = 0;
    if (T.base)
        event_base_free(T.base);
    T.base = NULL;
}

/* A new store on what the disk holds, with the real calls: recovered and checked. */
static void recover_and_check(struct check_counts *c)
{
    spool_open(0);
    store_recover(on_found, NULL);
    check_recovery(c);
    found_free();
    spool_close();
}

/* ---- a round: work, lose the power, recover, check ---------------------------- */

static void round_run(int round)
{
    T.written = T.committed = T.acked = T.failed = T.removed = T.moved = T.progress = T.file_mode = 0;
    T.k_max = -1;
    /* open under the layer; what it recovers is what the last check found */
    spool_open(1);
    store_recover(on_found, NULL);
    size_t expect = 0;
    for (size_t i = 0; i < T.n; i++)
        expect += T.tm[i].found;
    assert_int_equal(T.nfound, round == 0 ? 0 : expect);
    for (size_t i = 0; i < T.nfound; i++) {
        struct tmsg *t = find_tm(T.found[i].m.id);
        assert_non_null(t);
        assert_true(t->found);
    }
    rebase();

    /* work until the power goes */
    int cut_ms = round == 0 ? 1100 + (int)rnd(1300) : 1050 + (int)rnd(900);
    int at_sync = (int)rnd(2);
    clock_gettime(CLOCK_MONOTONIC, &T.start);
    T.working = 1;
    T.step = event_new(T.base, -1, EV_PERSIST, on_step, NULL);
    struct timeval sv = {0, STEP_US};
    event_add(T.step, &sv);
    T.next_check = 250;
    run_for(cut_ms);
    check_live_content();
    if (T.live_error[0])
        fail_msg("while running: %s", T.live_error);
    size_t live_at_cut = T.nlive;
    pl_crash(T.seed * 1000u + (unsigned)round, at_sync);
    for (int waited = 0; at_sync && !pl_crashed() && waited < 500; waited += 5)
        run_for(5);
    if (!pl_crashed())
        pl_crash(T.seed * 1000u + (unsigned)round, 0); /* no sync came */
    T.working = 0;
    long cut_at = ms_since(&T.start);
    run_for(30); /* late callbacks: ok only for data synced before the loss */
    spool_close();
    size_t lost = pl.lost, undone = pl.undone, kept = pl.kept, halved = pl.halved;
    struct check_counts c;
    recover_and_check(&c);
    struct seg_counts s;
    journal_counts(&s);
    print_message("seed %u round %d%s: power lost %s at %ld ms (%zu unsynced writes: %zu undone, %zu kept, %zu torn); "
                  "%u written, %u committed (%u as files), %u acknowledged, %u failed, %u status records, %u moves, "
                  "%u removed, %zu live at the cut; recovered %u (%u required, %u removed ones back, %u whose commit "
                  "had failed), %u corrupt/ files; journal: %" PRIu64 " segments made, %u in use, %u free, %u "
                  "messages with a copy\n",
                  T.seed, round, T.seed % 2 ? " (2 ms syncs)" : "", at_sync ? "at a sync" : "between calls", cut_at, lost, undone, kept, halved,
                  T.written, T.committed, T.file_mode, T.acked, T.failed, T.progress, T.moved, T.removed,
                  live_at_cut, c.found, c.must, c.reappeared, c.after_failure, c.corrupt, s.max_seq, s.segs,
                  s.frees, s.copied);
}

/* TERN_POWERLOSS_SEED=B runs seeds B+1 .. B+5 instead of 1 .. 5 (a longer
 * search, run by hand); odd seeds add a disk latency of 2 ms to each sync,
 * which makes the batches larger. */
static void run_seed(unsigned n)
{
    const char *b = getenv("TERN_POWERLOSS_SEED");
    unsigned seed = n + (b ? (unsigned)strtoul(b, NULL, 10) : 0);
    T.seed = seed;
    T.rng = seed;
    pl_set_sync_delay(seed % 2 ? 2000 : 0);
    for (int round = 0; round < ROUNDS; round++)
        round_run(round);
    pl_set_sync_delay(0);
}

/* ---- cases for bugs this test found (fixed) ------------------------------- */

/* Each found by this test; the randomized rounds above meet them too rarely
 * (the first), avoid them (the second) or show them only as segments kept
 * (the third), so each has a case of its own. */
static int acked(void *arg)
{
    return T.tm[(intptr_t)arg].state != T_COMMITTING;
}

/* Runs the loop until pred holds or ms pass. */
static int run_until(int (*pred)(void *), void *arg, int ms)
{
    return tf_loop_until(T.base, pred, arg, ms);
}

static void open_under_layer(void)
{
    spool_open(1);
    store_recover(on_found, NULL);
    assert_int_equal(T.nfound, 0);
}

/* The power goes now; a new store with the real calls recovers; checked. */
static void lose_power_and_check(void)
{
    pl_crash(T.seed, 0);
    T.working = 0;
    run_for(30);
    spool_close();
    struct check_counts c;
    recover_and_check(&c);
}

/* A sync gate: stage 1 holds the first fdatasync of a segment (its seq to
 * gate.seq), stage 2 the first of a segment after that one. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stage, waiting;
    uint64_t seq;
} gate = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static uint64_t fd_segment(int fd)
{
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0)
        return 0;
    path[n] = '\0';
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    return strncmp(b, "seg-", 4) == 0 ? strtoull(b + 4, NULL, 16) : 0;
}

static void gate_hook(int fd, int kind)
{
    uint64_t seq = kind == 0 ? fd_segment(fd) : 0;
    if (!seq)
        return;
    pthread_mutex_lock(&gate.mu);
    if (gate.stage == 1 || (gate.stage == 2 && seq > gate.seq)) {
        if (gate.stage == 1)
            gate.seq = seq;
        gate.waiting = gate.stage;
        pthread_cond_broadcast(&gate.cv);
        while (gate.waiting)
            pthread_cond_wait(&gate.cv, &gate.mu);
    }
    pthread_mutex_unlock(&gate.mu);
}

/* Releases a held sync and arms the next stage. */
static void gate_next(int stage)
{
    pthread_mutex_lock(&gate.mu);
    gate.stage = stage;
    gate.waiting = 0;
    pthread_cond_broadcast(&gate.cv);
    pthread_mutex_unlock(&gate.mu);
}

static int gate_holds(void *arg)
{
    pthread_mutex_lock(&gate.mu);
    int w = gate.waiting == (int)(intptr_t)arg;
    pthread_mutex_unlock(&gate.mu);
    return w;
}

/* Once a bug (store_journal.c, on_tick; fixed: a message being committed
 * keeps the segment that was current when it was appended): a segment is retired under a
 * message whose commit is durable but not yet answered. on_tick leaves out
 * messages still committing ("it will be in the current segment or a later
 * one"), but the writer assigns a record its segment when it writes it, and
 * answers a batch only when the whole batch is written and synced: when the
 * batch rolls over to a new segment, the records before the rollover are in
 * the old segment while their messages still count as committing. A tick in
 * that window, with no older live message, takes the current (new) segment
 * as the oldest one needed and retires the old one (renamed to a free file,
 * later recycled); the commit is then acknowledged with its only copy in a
 * retired segment: store_content_locate names a file that is gone, and
 * after a restart (or the recycling) the acknowledged message is lost.
 *
 * Made certain here with a sync gate: A's sync is held while M and nine
 * large messages are committed (so they share the next batch, which must
 * roll over after M); A is acknowledged and removed; the sync of the new
 * segment is held for 1.3 s, so the store's tick (once a second) runs in
 * the window; then the batch completes and M is acknowledged. */
static void test_retire_while_committing(void **state)
{
    (void)state;
    T.seed = 101;
    T.rng = 101;
    T.k_max = -1;
    open_under_layer();
    pl_on_sync(gate_hook);
    gate_next(1);
    int a = new_message(500);
    assert_true(a >= 0);
    if (!run_until(gate_holds, (void *)(intptr_t)1, 5000))
        fail_msg("the first commit's sync never came");
    int m = new_message(800);
    assert_true(m >= 0);
    /* nine of the largest the journal takes: more than a 64 KiB segment */
    for (int i = 0; i < 9; i++)
        assert_true(new_message(7000) >= 0);
    gate_next(2);
    assert_true(run_until(acked, (void *)(intptr_t)a, 5000));
    assert_int_equal(T.tm[a].state, T_ACKED);
    remove_message(a);
    if (!run_until(gate_holds, (void *)(intptr_t)2, 5000))
        fail_msg("the batch never rolled over to a new segment");
    uint64_t old_seg = gate.seq;
    run_for(1300); /* a tick */
    gate_next(0);
    for (int i = m; i < m + 10; i++)
        assert_true(run_until(acked, (void *)(intptr_t)i, 5000));
    pl_on_sync(NULL);
    assert_int_equal(T.tm[m].state, T_ACKED);
    char *path = NULL;
    uint64_t base = 0;
    assert_int_equal(store_content_locate(T.tm[m].id, STORE_QUEUE, &path, &base), 0);
    int exists = access(path, F_OK) == 0;
    print_message("acknowledged %s is in %s (segment %016" PRIx64 " when its batch began): %s\n", T.tm[m].id, path,
                  old_seg, exists ? "there" : "RETIRED");
    free(path);
    store_content_done(T.tm[m].id);
    if (!exists)
        print_error("%s: acknowledged, but the segment holding it was retired while its commit was in flight\n",
                    T.tm[m].id);
    lose_power_and_check(); /* fails when it is lost */
    assert_true(exists);
}

/* Once a bug (store_journal.c, finish_copy; fixed): copying forward a message
 * that has no progress record since its MESSAGE record: e->progress.buf
 * is still NULL and finish_copy calls memmove(NULL, NULL + 0, 0), which
 * is undefined behaviour; UBSan reports it ("null pointer passed as
 * argument 1") and, built with -fno-sanitize-recover, aborts the whole
 * test binary. Not a loss in practice, but the sanitizer build cannot run
 * a copy-forward of such a message (a fresh commit not yet tried, or a
 * held one, that outlives STORE_JOURNAL_KEEP segments). The randomized
 * rounds avoid it by giving every message a progress record first
 * (on_commit, rebase). */
static void test_copy_forward_without_progress(void **state)
{
    (void)state;
    T.seed = 102;
    T.rng = 102;
    T.k_max = -1;
    open_under_layer();
    int m = new_message(2000);
    assert_true(m >= 0);
    assert_true(run_until(acked, (void *)(intptr_t)m, 5000));
    assert_int_equal(T.tm[m].state, T_ACKED);
    /* about 8 of the largest journal messages a segment: 6 segments, each
     * message removed */
    for (int i = 0; i < 50; i++) {
        int f = new_message(7000);
        assert_true(f >= 0);
        assert_true(run_until(acked, (void *)(intptr_t)f, 5000));
        remove_message(f);
    }
    run_for(2100); /* ticks: the copy-forward of m, and its completion */
    lose_power_and_check();
}

/* 2n of the largest journal messages, each committed, acknowledged and
 * removed: about n/4 segments of traffic that leaves nothing live. */
static void filler(int n)
{
    for (int i = 0; i < 2 * n + 1; i++) {
        int f = new_message(7000);
        assert_true(f >= 0);
        assert_true(run_until(acked, (void *)(intptr_t)f, 5000));
        assert_int_equal(T.tm[f].state, T_ACKED);
        remove_message(f);
    }
}

/* A deferred attempt for recipient 0 of message idx. */
static void defer_first(int idx)
{
    struct tmsg *t = &T.tm[idx];
    t->m.rcpts[0].state = QF_DEFERRED;
    t->m.rcpts[0].attempts++;
    long op = ++T.op;
    assert_int_equal(store_append_status(&t->m, STORE_QUEUE, 0), 0);
    t->st_h[0][t->nst[0]++] = (struct hist){op, QF_DEFERRED};
}

static unsigned segments_in_use(void)
{
    struct seg_counts s;
    journal_counts(&s);
    return s.segs;
}

/* Once a bug (store_journal.c, finish_copy/copy_forward; fixed: the copy's
 * length is kept): a message is
 * copied forward once, never twice when its copy folded progress in.
 * finish_copy points the message at its copy (e->addr) but keeps e->len,
 * the length of the old record; the copy is longer by the progress folded
 * into it, so the next copy_forward's journal_read (cap e->len) fails with
 * ENOBUFS (or the length check fails) and the message silently stays where
 * it is, every tick. It is the oldest live message, so no segment from
 * its copy on is retired again while it lives (until a restart, whose
 * replay sets the length right): a message deferred for days keeps every
 * segment written since, and the journal grows until the disk is full
 * (then commits fail with 452, so nothing acknowledged is lost). */
static void test_copy_forward_twice(void **state)
{
    (void)state;
    T.seed = 103;
    T.rng = 103;
    T.k_max = -1;
    open_under_layer();
    int m = new_message(2000);
    assert_true(m >= 0);
    assert_true(run_until(acked, (void *)(intptr_t)m, 5000));
    assert_int_equal(T.tm[m].state, T_ACKED);
    defer_first(m); /* progress, folded into its first copy */
    filler(28);
    run_for(2100); /* ticks: m copied forward, the segments before its copy retired */
    unsigned after_first = segments_in_use();
    filler(28);
    run_for(2100); /* ticks: m copied forward again, the segments before it retired */
    unsigned after_second = segments_in_use();
    char *path = NULL;
    uint64_t base = 0;
    assert_int_equal(store_content_locate(T.tm[m].id, STORE_QUEUE, &path, &base), 0);
    print_message("segments in use after the first copy-forward: %u, after the second: %u; %s is in %s\n",
                  after_first, after_second, T.tm[m].id, path);
    free(path);
    store_content_done(T.tm[m].id);
    lose_power_and_check(); /* nothing is lost, only kept too long */
    if (after_second > STORE_JOURNAL_KEEP + 2)
        fail_msg("%u segments kept for one live message (at most %d expected)", after_second,
                 STORE_JOURNAL_KEEP + 2);
}

/* ---- cases ------------------------------------------------------------------ */

static int setup(void **state)
{
    (void)state;
    memset(&T, 0, sizeof T);
    assert_int_equal(tf_tmpdir_make(T.dir, sizeof T.dir, "spl"), 0);
    const char *sub[] = {QDIR_INCOMING, QDIR_QUEUE, QDIR_HOLD, QDIR_CORRUPT};
    for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++) {
        char *p = xasprintf("%s/%s", T.dir, sub[i]);
        assert_int_equal(mkdir(p, 0700), 0);
        free(p);
    }
    assert_int_equal(tf_log_capture(T.dir), 0);
    return 0;
}

static void gate_next(int stage);

static int teardown(void **state)
{
    (void)state;
    gate_next(0); /* a sync a failed case left held */
    pl_set_sync_delay(0);
    spool_close();
    found_free();
    free(T.found);
    for (size_t i = 0; i < T.n; i++)
        drop_m(&T.tm[i]);
    free(T.tm);
    free(T.live);
    tf_log_release();
    tf_tmpdir_remove(T.dir);
    memset(&T, 0, sizeof T);
    return 0;
}

#define SEED_CASE(n)                                   \
    static void test_power_loss_seed_##n(void **state) \
    {                                                  \
        (void)state;                                   \
        run_seed(n);                                   \
    }
SEED_CASE(1)
SEED_CASE(2)
SEED_CASE(3)
SEED_CASE(4)
SEED_CASE(5)

int main(void)
{
    queue_id_init(7);
    /* TERN_TEST_FILTER=test_copy_forward_twice (cmocka's pattern) runs one case */
    const char *filter = getenv("TERN_TEST_FILTER");
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_power_loss_seed_1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_power_loss_seed_2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_power_loss_seed_3, setup, teardown),
        cmocka_unit_test_setup_teardown(test_power_loss_seed_4, setup, teardown),
        cmocka_unit_test_setup_teardown(test_power_loss_seed_5, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retire_while_committing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy_forward_without_progress, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy_forward_twice, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
