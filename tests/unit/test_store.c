/* Tests for queue_store: the commit protocol driven through the real store,
 * a real libevent loop and a real spool in a temporary directory.
 *
 * The file-system table is replaced by counting fakes that pass through to
 * the real calls unless a test injects an error. The sync calls (syncfs, and
 * fsync of the queue directory in fsync mode) can also be held at a gate, so
 * a test decides exactly which commits share a sync: that is how the group
 * commit, the "no 250 before the sync" promise and the failure of a whole
 * batch are checked without depending on timing. The fakes are called from
 * the sync thread, so their bookkeeping is under one mutex.
 *
 * Covered: commit (envelope handed over, file moved from incoming/ to
 * queue/), acknowledgement only after a sync that started after the rename,
 * group commit, syncfs/fsync/fdatasync/renameat/openat failures (4xx reply,
 * file removed, next commit fine), refused incoming files, id collisions,
 * barriers, asynchronous removal, recovery of every kind of leftover,
 * progress records, moves between queue/ and hold/, open/close. Every test
 * also checks that the store leaves no file descriptor open after close. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "spool/queue_file.h"
#include "spool/queue_id.h"
#include "spool/storage_reply.h"
#include "spool/store.h"
#include "test_fixture.h"
#include "loop_fixture.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

#define WAIT_MS 10000

static const char CONTENT[] = "Subject: hello\r\n\r\nbody line\r\n";

/* ---- file-system calls: the shared fixture, plus what this test notes --- */

#define FK_MAX_INO 256

/* Which inodes were fsync'ed (directories) and fdatasync'ed (files), the
 * device syncfs was asked for, and on which thread unlinks ran. */
static struct {
    pthread_mutex_t mu;
    pthread_t main_thread;
    struct {
        int syncfs_dev_known;
        dev_t syncfs_dev;
        ino_t fsync_ino[FK_MAX_INO];
        size_t nfsync;
        ino_t fdatasync_ino[FK_MAX_INO];
        size_t nfdatasync;
        int unlink_on_loop, unlink_off_loop;
    } s;
} fk = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void fk_note_call(enum tf_op op, int fd)
{
    struct stat sb;
    int have_stat = (op == TF_FSYNC || op == TF_FDATASYNC || op == TF_SYNCFS) && fstat(fd, &sb) == 0;
    pthread_mutex_lock(&fk.mu);
    if (have_stat && op == TF_FSYNC && fk.s.nfsync < FK_MAX_INO)
        fk.s.fsync_ino[fk.s.nfsync++] = sb.st_ino;
    else if (have_stat && op == TF_FDATASYNC && fk.s.nfdatasync < FK_MAX_INO)
        fk.s.fdatasync_ino[fk.s.nfdatasync++] = sb.st_ino;
    else if (have_stat && op == TF_SYNCFS) {
        fk.s.syncfs_dev = sb.st_dev;
        fk.s.syncfs_dev_known = 1;
    } else if (op == TF_UNLINKAT) {
        if (pthread_equal(pthread_self(), fk.main_thread))
            fk.s.unlink_on_loop++;
        else
            fk.s.unlink_off_loop++;
    }
    pthread_mutex_unlock(&fk.mu);
}

/* Installs the fixture's table: syncs wait at its gate (open by default). */
static void fk_reset(void)
{
    pthread_mutex_lock(&fk.mu);
    memset(&fk.s, 0, sizeof fk.s);
    fk.main_thread = pthread_self();
    pthread_mutex_unlock(&fk.mu);
    tf_fs_install();
    tf_fs_gate(TF_FSYNC);
    tf_fs_gate(TF_SYNCFS);
    tf_fs_on_call(fk_note_call);
}

/* Calls nth .. nth+count-1 of op from now on fail with err (count -1: all). */
static void fk_fail(enum tf_op op, int nth, int count, int err)
{
    tf_fs_arm(op, (struct tf_fault){.nth = nth, .count = count < 0 ? TF_ALWAYS : count, .err = err});
}

static int ino_synced(enum tf_op op, ino_t ino)
{
    int found = 0;
    pthread_mutex_lock(&fk.mu);
    const ino_t *list = op == TF_FSYNC ? fk.s.fsync_ino : fk.s.fdatasync_ino;
    size_t n = op == TF_FSYNC ? fk.s.nfsync : fk.s.nfdatasync;
    for (size_t i = 0; i < n; i++)
        found |= list[i] == ino;
    pthread_mutex_unlock(&fk.mu);
    return found;
}

/* ---- fixture -------------------------------------------------------------- */

enum { D_INCOMING, D_QUEUE, D_HOLD, D_CORRUPT, D_N };
static const char *const dir_names[D_N] = {"incoming", "queue", "hold", "corrupt"};

struct fx {
    char dir[64];
    int dfd[D_N];       /* the test's own view of the spool */
    struct event_base *base;
    int is_open;
    int fds_before;
};

/* Commit callbacks seen so far, in the order the loop delivered them. */
static int g_seq, g_fired;

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static int make_spool(struct fx *fx, int with_corrupt)
{
    if (tf_tmpdir_make(fx->dir, sizeof fx->dir, "qs") != 0)
        return -1;
    for (int i = 0; i < D_N; i++) {
        fx->dfd[i] = -1;
        if (i == D_CORRUPT && !with_corrupt)
            continue;
        char *p = xasprintf("%s/%s", fx->dir, dir_names[i]);
        int rc = mkdir(p, 0700);
        if (rc == 0)
            fx->dfd[i] = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        free(p);
        if (fx->dfd[i] < 0)
            return -1;
    }
    return 0;
}

static int setup_common(void **state, int use_syncfs, int open_store)
{
    struct fx *fx = xcalloc(1, sizeof *fx);
    *state = fx;
    g_seq = g_fired = 0;
    /* Installed while no sync thread runs: the table pointer itself is not
     * meant to change under a running store. */
    fk_reset();
    if (make_spool(fx, 1) != 0)
        return -1;
    fx->base = event_base_new();
    if (!fx->base)
        return -1;
    fx->fds_before = count_fds();
    if (open_store) {
        if (store_open(fx->base, fx->dir, use_syncfs) != 0)
            return -1;
        fx->is_open = 1;
    }
    return 0;
}

static int setup_syncfs(void **state)
{
    return setup_common(state, 1, 1);
}

static int setup_fsync(void **state)
{
    return setup_common(state, 0, 1);
}

static int setup_closed(void **state)
{
    return setup_common(state, 1, 0);
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    int rc = 0;
    if (!fx)
        return 0;
    tf_fs_set_permits(-1);
    if (fx->is_open)
        store_close();
    tf_fs_uninstall();
    if (fx->base) {
        int now = count_fds();
        if (now != fx->fds_before) {
            fprintf(stderr, "store left %d file descriptors open\n", now - fx->fds_before);
            rc = -1;
        }
        event_base_free(fx->base);
    }
    for (int i = 0; i < D_N; i++)
        if (fx->dfd[i] >= 0)
            close(fx->dfd[i]);
    tf_tmpdir_remove(fx->dir);
    free(fx);
    return rc;
}

/* ---- the event loop (loop_fixture.h) ----------------------------------------- */

static int run_until(struct fx *fx, int (*pred)(void *), void *arg, int ms)
{
    return tf_loop_until(fx->base, pred, arg, ms);
}

static void run_for(struct fx *fx, int ms)
{
    tf_loop_for(fx->base, ms);
}

static int fired_reached(void *target)
{
    return g_fired >= *(int *)target;
}

static void wait_fired(struct fx *fx, int n)
{
    if (!run_until(fx, fired_reached, &n, WAIT_MS))
        fail_msg("only %d of %d commit callbacks within %d ms", g_fired, n, WAIT_MS);
}

/* ---- callbacks ------------------------------------------------------------ */

struct res {
    int fired, ok, seq;
    int m_given, reply_given;
    int syncs_done;      /* syncs finished when the callback ran */
    char reply[128];
    struct queue_file_message m;
};

/* The store reports an errno; the reply is what a client would be told. */
static void on_commit(void *arg, int ok, struct queue_file_message *m, int err)
{
    struct res *r = arg;
    const char *reply = ok ? NULL : storage_reply(err);
    r->fired++;
    r->ok = ok;
    r->seq = ++g_seq;
    r->m_given = m != NULL;
    r->reply_given = reply != NULL;
    r->syncs_done = tf_fs_done(TF_SYNCFS) + tf_fs_done(TF_FSYNC);
    if (reply)
        str_copy(r->reply, reply, sizeof r->reply);
    if (m && r->fired == 1)
        r->m = *m; /* the callee takes the envelope over */
    g_fired++;
}

static void res_free(struct res *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (r[i].fired && r[i].m_given)
            queue_file_message_free(&r[i].m);
}

static int res_fired(void *arg)
{
    return ((struct res *)arg)->fired > 0;
}

struct bres {
    int fired, ok, seq;
};

static void on_barrier(void *arg, int ok)
{
    struct bres *b = arg;
    b->fired++;
    b->ok = ok;
    b->seq = ++g_seq;
}

static int bres_fired(void *arg)
{
    return ((struct bres *)arg)->fired > 0;
}

static void barrier_and_wait(struct fx *fx, struct bres *b)
{
    store_barrier(on_barrier, b);
    assert_true(run_until(fx, bres_fired, b, WAIT_MS));
    assert_int_equal(b->fired, 1);
}

static void expect_ok(const struct res *r, const char *id)
{
    assert_int_equal(r->fired, 1);
    if (!r->ok)
        fail_msg("commit of %s failed: %s", id, r->reply);
    assert_true(r->m_given);
    assert_false(r->reply_given);
    assert_string_equal(r->m.id, id);
}

static void expect_fail(const struct res *r, const char *prefix)
{
    assert_int_equal(r->fired, 1);
    assert_false(r->ok);
    assert_false(r->m_given);
    assert_true(r->reply_given);
    if (strncmp(r->reply, prefix, strlen(prefix)) != 0)
        fail_msg("reply \"%s\", expected it to start with \"%s\"", r->reply, prefix);
    assert_true(strlen(r->reply) > strlen(prefix)); /* a text follows the codes */
}

/* ---- files ---------------------------------------------------------------- */

static int present(const struct fx *fx, int d, const char *name)
{
    struct stat sb;
    return fstatat(fx->dfd[d], name, &sb, AT_SYMLINK_NOFOLLOW) == 0;
}

static int entries(const struct fx *fx, int d)
{
    char *p = xasprintf("%s/%s", fx->dir, dir_names[d]);
    DIR *dir = opendir(p);
    free(p);
    assert_non_null(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)))
        if (e->d_name[0] != '.')
            n++;
    closedir(dir);
    return n;
}

static off_t file_size(const struct fx *fx, int d, const char *name)
{
    struct stat sb;
    assert_int_equal(fstatat(fx->dfd[d], name, &sb, 0), 0);
    return sb.st_size;
}

static ino_t file_ino(const struct fx *fx, int d, const char *name)
{
    struct stat sb;
    assert_int_equal(fstatat(fx->dfd[d], name, &sb, 0), 0);
    return sb.st_ino;
}

static unsigned char *slurp(const struct fx *fx, int d, const char *name, size_t *len)
{
    int fd = openat(fx->dfd[d], name, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    unsigned char *buf = xmalloc((size_t)sb.st_size + 1);
    assert_int_equal(pread(fd, buf, (size_t)sb.st_size, 0), sb.st_size);
    close(fd);
    *len = (size_t)sb.st_size;
    return buf;
}

static void spit(const struct fx *fx, int d, const char *name, const void *buf, size_t len)
{
    int fd = openat(fx->dfd[d], name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    close(fd);
}

static void cut_to(const struct fx *fx, int d, const char *name, off_t len)
{
    int fd = openat(fx->dfd[d], name, O_WRONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, len), 0);
    close(fd);
}

static void fill_message(struct queue_file_message *m, const char *id, const char *sender, size_t nrcpt)
{
    queue_file_message_init(m, id, 1700000000123456LL, sender);
    queue_file_message_set_attr(m, "client", "client.example[192.0.2.1]");
    queue_file_message_set_attr(m, "protocol", "ESMTP");
    for (size_t i = 0; i < nrcpt; i++) {
        char *a = xasprintf("rcpt%zu@example.org", i);
        queue_file_message_add_rcpt(m, a, i == 0 ? "rfc822;orig@example.org" : "", QF_NOTIFY_FAILURE, -1);
        free(a);
    }
}

/* A finished queue file named name whose envelope says id. */
static void write_qf(int dirfd, const char *name, const char *id, const char *sender, size_t nrcpt)
{
    struct queue_file_message m;
    fill_message(&m, id, sender, nrcpt);
    struct queue_file_writer *w;
    assert_int_equal(queue_file_writer_open(dirfd, name, &w), 0);
    assert_int_equal(queue_file_writer_write(w, CONTENT, sizeof CONTENT - 1), 0);
    assert_int_equal(queue_file_writer_finish(w, &m), 0);
    queue_file_message_free(&m);
}

/* A new message in incoming/, written the way pickup does. */
static void new_incoming(char *id)
{
    queue_id_new(id);
    write_qf(store_incoming_dirfd(), id, id, "sender@example.com", 2);
}

/* A file a writer never finished: the envelope offset is still 0. */
static void write_unfinished(const struct fx *fx, int d, const char *name)
{
    unsigned char buf[QF_HEADER_SIZE + sizeof CONTENT - 1] = {0};
    memcpy(buf, QF_MAGIC, 8);
    memcpy(buf + QF_HEADER_SIZE, CONTENT, sizeof CONTENT - 1);
    spit(fx, d, name, buf, sizeof buf);
}

static void read_back(const struct fx *fx, int d, const char *id, struct queue_file_message *m)
{
    char *path = xasprintf("%s/%s/%s", fx->dir, dir_names[d], id);
    char err[256] = "";
    int rc = queue_file_read_path(path, m, err, sizeof err);
    free(path);
    if (rc != 0)
        fail_msg("%s/%s does not read back: %s", dir_names[d], id, err);
}

/* ---- commit --------------------------------------------------------------- */

static void test_commit_moves_file_and_hands_over_envelope(void **state)
{
    struct fx *fx = *state;
    char id[QUEUE_ID_LEN + 1];
    new_incoming(id);
    ino_t ino = file_ino(fx, D_INCOMING, id);
    struct res r = {0};
    store_commit(id, on_commit, &r);
    wait_fired(fx, 1);
    expect_ok(&r, id);

    assert_string_equal(r.m.sender, "sender@example.com");
    assert_int_equal(r.m.nrcpt, 2);
    assert_string_equal(r.m.rcpts[0].addr, "rcpt0@example.org");
    assert_string_equal(r.m.rcpts[0].orcpt, "rfc822;orig@example.org");
    assert_int_equal(r.m.rcpts[0].notify, QF_NOTIFY_FAILURE);
    assert_string_equal(r.m.rcpts[1].addr, "rcpt1@example.org");
    assert_int_equal(r.m.rcpts[1].state, QF_PENDING);
    assert_string_equal(queue_file_message_attr(&r.m, "client"), "client.example[192.0.2.1]");
    assert_int_equal(r.m.arrival_us, 1700000000123456LL);
    assert_int_equal(r.m.content_offset, QF_HEADER_SIZE);
    assert_int_equal(r.m.content_length, sizeof CONTENT - 1);
    assert_int_equal(r.m.valid_end, r.m.file_size);

    assert_false(present(fx, D_INCOMING, id));
    assert_true(present(fx, D_QUEUE, id));
    assert_int_equal(entries(fx, D_QUEUE), 1);
    assert_int_equal(entries(fx, D_INCOMING), 0);
    /* Renamed, not copied: the writer's inode is what the sync covered. */
    assert_int_equal(file_ino(fx, D_QUEUE, id), ino);
    assert_int_equal((uint64_t)file_size(fx, D_QUEUE, id), r.m.file_size);

    /* One syncfs, on the spool's file system; no per-file syncs. */
    assert_int_equal(tf_fs_calls(TF_SYNCFS), 1);
    assert_int_equal(tf_fs_calls(TF_FSYNC), 0);
    assert_int_equal(tf_fs_calls(TF_FDATASYNC), 0);
    struct stat sb;
    assert_int_equal(fstat(fx->dfd[D_QUEUE], &sb), 0);
    pthread_mutex_lock(&fk.mu);
    int dev_known = fk.s.syncfs_dev_known, same_dev = fk.s.syncfs_dev == sb.st_dev;
    pthread_mutex_unlock(&fk.mu);
    assert_true(dev_known);
    assert_true(same_dev);

    struct queue_file_message back;
    read_back(fx, D_QUEUE, id, &back);
    assert_string_equal(back.sender, "sender@example.com");
    assert_int_equal(back.nrcpt, 2);
    queue_file_message_free(&back);
    res_free(&r, 1);
}

/* The 250 promise: no acknowledgement before a sync that began after the
 * file was renamed; a commit arriving while a sync runs waits for the next. */
static void test_ack_waits_for_sync_started_after_rename(void **state)
{
    struct fx *fx = *state;
    char a[QUEUE_ID_LEN + 1], b[QUEUE_ID_LEN + 1];
    new_incoming(a);
    new_incoming(b);
    struct res r[2] = {{0}};

    tf_fs_set_permits(0);
    store_commit(a, on_commit, &r[0]);
    assert_true(tf_fs_wait_calls(TF_SYNCFS, 1, WAIT_MS));
    assert_true(present(fx, D_QUEUE, a)); /* step 3 done ... */
    assert_false(present(fx, D_INCOMING, a));
    run_for(fx, 100);
    assert_int_equal(r[0].fired, 0);      /* ... but not acknowledged */

    store_commit(b, on_commit, &r[1]);    /* the first sync is still running */
    tf_fs_add_permits(1);
    assert_true(run_until(fx, res_fired, &r[0], WAIT_MS));
    expect_ok(&r[0], a);
    assert_true(tf_fs_wait_calls(TF_SYNCFS, 2, WAIT_MS));
    run_for(fx, 100);
    assert_int_equal(r[1].fired, 0);      /* the first sync did not cover b */

    tf_fs_set_permits(-1);
    assert_true(run_until(fx, res_fired, &r[1], WAIT_MS));
    expect_ok(&r[1], b);
    assert_true(r[0].syncs_done >= 1);
    assert_true(r[1].syncs_done >= 2);
    assert_int_equal(tf_fs_calls(TF_SYNCFS), 2);
    res_free(r, 2);
}

#define NGROUP 50

static void test_group_commit_shares_syncs(void **state)
{
    struct fx *fx = *state;
    char ids[NGROUP][QUEUE_ID_LEN + 1];
    struct res r[NGROUP];
    memset(r, 0, sizeof r);
    for (int i = 0; i < NGROUP; i++)
        new_incoming(ids[i]);

    /* All commits are issued while the first sync is held, as when many
     * sessions finish DATA during one sync. */
    tf_fs_set_permits(0);
    for (int i = 0; i < NGROUP; i++)
        store_commit(ids[i], on_commit, &r[i]);
    tf_fs_set_permits(-1);
    wait_fired(fx, NGROUP);

    for (int i = 0; i < NGROUP; i++) {
        expect_ok(&r[i], ids[i]);
        if (i > 0)
            assert_true(r[i].seq > r[i - 1].seq); /* acknowledged in order */
        assert_true(present(fx, D_QUEUE, ids[i]));
    }
    int syncs = tf_fs_calls(TF_SYNCFS);
    assert_true(syncs < NGROUP);
    assert_true(syncs <= 2); /* the one held, and one for everything behind it */
    assert_int_equal(entries(fx, D_QUEUE), NGROUP);
    assert_int_equal(entries(fx, D_INCOMING), 0);
    res_free(r, NGROUP);
}

/* EIO from the sync of a batch fails every commit of that batch, and only
 * those; the next commit works without a restart. */
static void test_syncfs_eio_fails_whole_batch(void **state)
{
    struct fx *fx = *state;
    char ids[5][QUEUE_ID_LEN + 1];
    struct res r[5];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 5; i++)
        new_incoming(ids[i]);

    tf_fs_set_permits(0);
    store_commit(ids[0], on_commit, &r[0]);          /* batch 1: A */
    assert_true(tf_fs_wait_calls(TF_SYNCFS, 1, WAIT_MS));
    for (int i = 1; i < 4; i++)
        store_commit(ids[i], on_commit, &r[i]);      /* batch 2: B C D */
    fk_fail(TF_SYNCFS, 1, 1, EIO);                   /* the next (second) sync fails */
    tf_fs_set_permits(-1);
    wait_fired(fx, 4);

    expect_ok(&r[0], ids[0]);
    assert_true(present(fx, D_QUEUE, ids[0]));
    for (int i = 1; i < 4; i++) {
        expect_fail(&r[i], "451 4.3.0 ");
        assert_false(present(fx, D_QUEUE, ids[i]));
        assert_false(present(fx, D_INCOMING, ids[i]));
    }
    assert_int_equal(entries(fx, D_QUEUE), 1);

    /* a message written after the failure is accepted again (one written
     * before it is not: see test_write_before_failed_sync_refused) */
    usleep(20000);
    new_incoming(ids[4]);
    store_commit(ids[4], on_commit, &r[4]);
    wait_fired(fx, 5);
    expect_ok(&r[4], ids[4]);
    assert_true(present(fx, D_QUEUE, ids[4]));
    assert_int_equal(tf_fs_calls(TF_SYNCFS), 3);
    res_free(r, 5);
}

/* The kernel reports a write-back error once, to the next sync: a file
 * written before a failed sync may have lost its data even if the sync of
 * its own batch succeeds, so its commit is refused. */
static void test_write_before_failed_sync_refused(void **state)
{
    struct fx *fx = *state;
    char ids[2][QUEUE_ID_LEN + 1];
    struct res r[2];
    memset(r, 0, sizeof r);
    new_incoming(ids[0]);
    new_incoming(ids[1]);
    fk_fail(TF_SYNCFS, 1, 1, EIO);
    store_commit(ids[0], on_commit, &r[0]);
    wait_fired(fx, 1);
    expect_fail(&r[0], "451 4.3.0 ");
    store_commit(ids[1], on_commit, &r[1]);     /* its own sync succeeds */
    wait_fired(fx, 2);
    expect_fail(&r[1], "451 4.3.0 ");
    assert_false(present(fx, D_QUEUE, ids[1]));
    res_free(r, 2);
}

static void test_syncfs_out_of_space(void **state)
{
    struct fx *fx = *state;
    char ids[5][QUEUE_ID_LEN + 1];
    struct res r[5];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 5; i++)
        new_incoming(ids[i]);

    fk_fail(TF_SYNCFS, 1, -1, ENOSPC); /* until cleared */
    for (int i = 0; i < 3; i++)
        store_commit(ids[i], on_commit, &r[i]);
    wait_fired(fx, 3);
    for (int i = 0; i < 3; i++) {
        expect_fail(&r[i], "452 4.3.1 ");
        assert_false(present(fx, D_QUEUE, ids[i]));
    }
    assert_int_equal(entries(fx, D_QUEUE), 0);
    assert_int_equal(entries(fx, D_INCOMING), 2);

    /* A full quota is out of storage too. */
    fk_fail(TF_SYNCFS, 1, 1, EDQUOT);
    store_commit(ids[3], on_commit, &r[3]);
    wait_fired(fx, 4);
    expect_fail(&r[3], "452 4.3.1 ");

    tf_fs_clear(TF_SYNCFS);
    /* a message written after the failure is accepted again (one written
     * before it is not: see test_write_before_failed_sync_refused) */
    usleep(20000);
    new_incoming(ids[4]);
    store_commit(ids[4], on_commit, &r[4]);
    wait_fired(fx, 5);
    expect_ok(&r[4], ids[4]);
    assert_int_equal(entries(fx, D_QUEUE), 1);
    assert_int_equal(entries(fx, D_INCOMING), 1); /* the one written before the failure, never committed */
    res_free(r, 5);
}

static void test_rename_failure(void **state)
{
    struct fx *fx = *state;
    static const struct {
        int err;
        const char *reply;
    } cases[] = {{EIO, "451 4.3.0 "}, {EXDEV, "451 4.3.0 "}, {ENOSPC, "452 4.3.1 "}, {EDQUOT, "452 4.3.1 "}};
    enum { NC = sizeof cases / sizeof cases[0] };
    char ids[NC + 1][QUEUE_ID_LEN + 1];
    struct res r[NC + 1];
    memset(r, 0, sizeof r);
    for (int i = 0; i < NC; i++) {
        new_incoming(ids[i]);
        fk_fail(TF_RENAMEAT, 1, 1, cases[i].err);
        store_commit(ids[i], on_commit, &r[i]);
        wait_fired(fx, i + 1);
        expect_fail(&r[i], cases[i].reply);
        assert_false(present(fx, D_INCOMING, ids[i]));
        assert_false(present(fx, D_QUEUE, ids[i]));
    }
    assert_int_equal(entries(fx, D_QUEUE), 0);
    assert_int_equal(entries(fx, D_INCOMING), 0);
    assert_int_equal(tf_fs_calls(TF_SYNCFS), 0); /* a refused commit costs no sync */

    new_incoming(ids[NC]);
    store_commit(ids[NC], on_commit, &r[NC]);
    wait_fired(fx, NC + 1);
    expect_ok(&r[NC], ids[NC]);
    assert_true(present(fx, D_QUEUE, ids[NC]));
    res_free(r, NC + 1);
}

static void test_open_failure_refuses_commit(void **state)
{
    struct fx *fx = *state;
    char id[QUEUE_ID_LEN + 1], id2[QUEUE_ID_LEN + 1];
    new_incoming(id);
    new_incoming(id2);
    struct res r[2] = {{0}};
    fk_fail(TF_OPENAT, 1, 1, EMFILE);
    store_commit(id, on_commit, &r[0]);
    wait_fired(fx, 1);
    expect_fail(&r[0], "451 4.3.0 ");
    assert_int_equal(tf_fs_calls(TF_OPENAT), 3); /* two writers, then the store */
    assert_false(present(fx, D_INCOMING, id));
    assert_false(present(fx, D_QUEUE, id));

    store_commit(id2, on_commit, &r[1]);
    wait_fired(fx, 2);
    expect_ok(&r[1], id2);
    res_free(r, 2);
}

static void test_invalid_incoming_refused_and_removed(void **state)
{
    struct fx *fx = *state;
    enum { TRUNCATED, WRONG_ID, UNFINISHED, GARBAGE, EMPTY, MISSING, NCASES };
    char ids[NCASES][QUEUE_ID_LEN + 1], other[QUEUE_ID_LEN + 1];
    struct res r[NCASES];
    memset(r, 0, sizeof r);
    for (int i = 0; i < NCASES; i++)
        queue_id_new(ids[i]);
    queue_id_new(other);

    write_qf(fx->dfd[D_INCOMING], ids[TRUNCATED], ids[TRUNCATED], "s@example.com", 2);
    cut_to(fx, D_INCOMING, ids[TRUNCATED], file_size(fx, D_INCOMING, ids[TRUNCATED]) - 5);
    write_qf(fx->dfd[D_INCOMING], ids[WRONG_ID], other, "s@example.com", 1);
    write_unfinished(fx, D_INCOMING, ids[UNFINISHED]);
    spit(fx, D_INCOMING, ids[GARBAGE], "this is not a queue file\n", 25);
    spit(fx, D_INCOMING, ids[EMPTY], "", 0);

    for (int i = 0; i < NCASES; i++) {
        store_commit(ids[i], on_commit, &r[i]);
        wait_fired(fx, i + 1);
        expect_fail(&r[i], "451 4.3.0 ");
        assert_false(present(fx, D_INCOMING, ids[i]));
        assert_false(present(fx, D_QUEUE, ids[i]));
    }
    assert_false(present(fx, D_QUEUE, other));
    assert_int_equal(entries(fx, D_INCOMING), 0);
    assert_int_equal(entries(fx, D_QUEUE), 0);
    assert_int_equal(tf_fs_calls(TF_SYNCFS), 0);
    res_free(r, NCASES);
}

/* A name that is not a queue id is refused without touching any file:
 * nothing outside incoming/ID can be reached through a commit request. */
static void test_malformed_id_touches_nothing(void **state)
{
    struct fx *fx = *state;
    char held[QUEUE_ID_LEN + 1];
    queue_id_new(held);
    write_qf(fx->dfd[D_HOLD], held, held, "s@example.com", 1);
    spit(fx, D_INCOMING, "not-an-id", "x", 1);
    char *traversal = xasprintf("../hold/%s", held);
    const char *bad[] = {"", "not-an-id", "0123456789AB", "0123456789ABCD", "0123456789abc",
                         "0123456789ABI", traversal};
    enum { NB = sizeof bad / sizeof bad[0] };
    struct res r[NB];
    memset(r, 0, sizeof r);
    for (int i = 0; i < NB; i++) {
        store_commit(bad[i], on_commit, &r[i]);
        wait_fired(fx, i + 1);
        expect_fail(&r[i], "451 4.3.0 ");
    }
    assert_true(present(fx, D_INCOMING, "not-an-id"));
    assert_true(present(fx, D_HOLD, held));
    assert_int_equal(entries(fx, D_QUEUE), 0);
    assert_int_equal(tf_fs_calls(TF_RENAMEAT), 0);
    assert_int_equal(tf_fs_calls(TF_UNLINKAT), 0);
    free(traversal);
    res_free(r, NB);
}

/* An incoming file whose id is already in queue/ or hold/ (a repeated id,
 * e.g. after the clock stepped back across a restart) must not replace the
 * committed message: that one may already be acknowledged. */
static void test_commit_never_replaces_committed_file(void **state)
{
    struct fx *fx = *state;
    char a[QUEUE_ID_LEN + 1], h[QUEUE_ID_LEN + 1];
    struct res r[3];
    memset(r, 0, sizeof r);
    new_incoming(a);
    store_commit(a, on_commit, &r[0]);
    wait_fired(fx, 1);
    expect_ok(&r[0], a);

    write_qf(store_incoming_dirfd(), a, a, "second@example.com", 1);
    store_commit(a, on_commit, &r[1]);
    wait_fired(fx, 2);
    expect_fail(&r[1], "451 4.3.0 ");
    assert_false(present(fx, D_INCOMING, a));
    struct queue_file_message back;
    read_back(fx, D_QUEUE, a, &back);
    assert_string_equal(back.sender, "sender@example.com");
    assert_int_equal(back.nrcpt, 2);
    queue_file_message_free(&back);

    queue_id_new(h);
    write_qf(fx->dfd[D_HOLD], h, h, "held@example.com", 1);
    write_qf(store_incoming_dirfd(), h, h, "second@example.com", 1);
    store_commit(h, on_commit, &r[2]);
    wait_fired(fx, 3);
    expect_fail(&r[2], "451 4.3.0 ");
    assert_false(present(fx, D_QUEUE, h));
    assert_false(present(fx, D_INCOMING, h));
    read_back(fx, D_HOLD, h, &back);
    assert_string_equal(back.sender, "held@example.com");
    queue_file_message_free(&back);
    res_free(r, 3);
}

/* Commits still in flight when the store closes are finished, not dropped. */
static void test_close_finishes_pending_commits(void **state)
{
    struct fx *fx = *state;
    char ids[5][QUEUE_ID_LEN + 1];
    struct res r[5];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 5; i++) {
        new_incoming(ids[i]);
        store_commit(ids[i], on_commit, &r[i]);
    }
    store_close();
    fx->is_open = 0;
    assert_int_equal(g_fired, 5);
    for (int i = 0; i < 5; i++) {
        expect_ok(&r[i], ids[i]);
        assert_true(present(fx, D_QUEUE, ids[i]));
    }
    res_free(r, 5);
}

/* ---- fsync mode ----------------------------------------------------------- */

static void test_fsync_mode_commit(void **state)
{
    struct fx *fx = *state;
    char id[QUEUE_ID_LEN + 1];
    new_incoming(id);
    struct res r = {0};
    store_commit(id, on_commit, &r);
    wait_fired(fx, 1);
    expect_ok(&r, id);
    assert_true(present(fx, D_QUEUE, id));
    assert_false(present(fx, D_INCOMING, id));
    /* The file's data and the queue/ directory entry, no syncfs. */
    assert_int_equal(tf_fs_calls(TF_SYNCFS), 0);
    assert_int_equal(tf_fs_calls(TF_FDATASYNC), 1);
    assert_int_equal(tf_fs_calls(TF_FSYNC), 1);
    assert_true(ino_synced(TF_FDATASYNC, file_ino(fx, D_QUEUE, id)));
    struct stat sb;
    assert_int_equal(fstat(fx->dfd[D_QUEUE], &sb), 0);
    assert_true(ino_synced(TF_FSYNC, sb.st_ino));
    res_free(&r, 1);
}

/* In fsync mode a failed fdatasync fails that file's commit only. */
static void test_fsync_mode_fdatasync_failure(void **state)
{
    struct fx *fx = *state;
    char ids[5][QUEUE_ID_LEN + 1];
    struct res r[5];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 5; i++)
        new_incoming(ids[i]);

    tf_fs_set_permits(0);
    store_commit(ids[0], on_commit, &r[0]);          /* batch 1: A */
    assert_true(tf_fs_wait_calls(TF_FSYNC, 1, WAIT_MS));
    for (int i = 1; i < 4; i++)
        store_commit(ids[i], on_commit, &r[i]);      /* batch 2: B C D */
    fk_fail(TF_FDATASYNC, 2, 1, EIO);                /* A was 1; B is next, then C */
    tf_fs_set_permits(-1);
    wait_fired(fx, 4);
    expect_ok(&r[0], ids[0]);
    expect_ok(&r[1], ids[1]);
    expect_fail(&r[2], "451 4.3.0 ");
    expect_ok(&r[3], ids[3]);
    assert_false(present(fx, D_QUEUE, ids[2]));
    assert_false(present(fx, D_INCOMING, ids[2]));
    assert_int_equal(entries(fx, D_QUEUE), 3);

    fk_fail(TF_FDATASYNC, 1, 1, ENOSPC);
    /* a message written after the failure is accepted again (one written
     * before it is not: see test_write_before_failed_sync_refused) */
    usleep(20000);
    new_incoming(ids[4]);
    store_commit(ids[4], on_commit, &r[4]);
    wait_fired(fx, 5);
    expect_fail(&r[4], "452 4.3.1 ");
    assert_false(present(fx, D_QUEUE, ids[4]));
    res_free(r, 5);
}

/* In fsync mode a failed fsync of queue/ fails the whole batch. */
static void test_fsync_mode_dir_fsync_failure(void **state)
{
    struct fx *fx = *state;
    char ids[4][QUEUE_ID_LEN + 1];
    struct res r[4];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 4; i++)
        new_incoming(ids[i]);

    struct bres hold = {0};
    tf_fs_set_permits(0);
    store_barrier(on_barrier, &hold);               /* batch 1 keeps the thread busy */
    assert_true(tf_fs_wait_calls(TF_FSYNC, 1, WAIT_MS));
    store_commit(ids[0], on_commit, &r[0]);         /* batch 2: A B */
    store_commit(ids[1], on_commit, &r[1]);
    fk_fail(TF_FSYNC, 1, 1, EIO);                   /* the next (second) sync fails */
    tf_fs_set_permits(-1);
    wait_fired(fx, 2);
    assert_true(run_until(fx, bres_fired, &hold, WAIT_MS));
    assert_true(hold.ok);
    expect_fail(&r[0], "451 4.3.0 ");
    expect_fail(&r[1], "451 4.3.0 ");
    assert_int_equal(entries(fx, D_QUEUE), 0);

    fk_fail(TF_FSYNC, 1, 1, ENOSPC);
    store_commit(ids[2], on_commit, &r[2]);
    wait_fired(fx, 3);
    expect_fail(&r[2], "452 4.3.1 ");

    usleep(20000); /* written after the failures */
    new_incoming(ids[3]);
    store_commit(ids[3], on_commit, &r[3]);
    wait_fired(fx, 4);
    expect_ok(&r[3], ids[3]);
    assert_int_equal(entries(fx, D_QUEUE), 1);
    assert_int_equal(entries(fx, D_INCOMING), 1); /* the old ids[3], never committed */
    assert_int_equal(tf_fs_calls(TF_SYNCFS), 0);
    res_free(r, 4);
}

static void test_fsync_mode_barrier(void **state)
{
    struct fx *fx = *state;
    struct bres b = {0};
    barrier_and_wait(fx, &b);
    assert_true(b.ok);
    assert_int_equal(tf_fs_calls(TF_FSYNC), 1);
    assert_int_equal(tf_fs_calls(TF_SYNCFS), 0);
    struct stat sb;
    assert_int_equal(fstat(fx->dfd[D_QUEUE], &sb), 0);
    assert_true(ino_synced(TF_FSYNC, sb.st_ino));

    struct bres bad = {0};
    fk_fail(TF_FSYNC, 1, 1, EIO);
    barrier_and_wait(fx, &bad);
    assert_false(bad.ok);
}

/* ---- barrier and removal -------------------------------------------------- */

static void test_barrier_after_pending_commits(void **state)
{
    struct fx *fx = *state;
    char a[QUEUE_ID_LEN + 1], b[QUEUE_ID_LEN + 1];
    new_incoming(a);
    new_incoming(b);
    struct res r[2] = {{0}};
    struct bres first = {0}, after = {0};

    tf_fs_set_permits(0);
    store_barrier(on_barrier, &first);
    assert_true(tf_fs_wait_calls(TF_SYNCFS, 1, WAIT_MS));
    store_commit(a, on_commit, &r[0]);
    store_commit(b, on_commit, &r[1]);
    store_barrier(on_barrier, &after);
    run_for(fx, 50);
    assert_int_equal(after.fired, 0);
    tf_fs_set_permits(-1);
    assert_true(run_until(fx, bres_fired, &after, WAIT_MS));
    assert_int_equal(after.fired, 1);
    assert_true(after.ok);
    assert_true(first.ok);
    expect_ok(&r[0], a);
    expect_ok(&r[1], b);
    assert_true(first.seq < r[0].seq);
    assert_true(r[0].seq < r[1].seq);
    assert_true(r[1].seq < after.seq);

    /* A barrier on its own still syncs: it covers writes the store did
     * not make (progress records, a mailbox on the same file system). */
    int before = tf_fs_calls(TF_SYNCFS);
    struct bres alone = {0};
    barrier_and_wait(fx, &alone);
    assert_true(alone.ok);
    assert_int_equal(tf_fs_calls(TF_SYNCFS), before + 1);

    struct bres bad = {0};
    fk_fail(TF_SYNCFS, 1, 1, EIO);
    barrier_and_wait(fx, &bad);
    assert_false(bad.ok);
    res_free(r, 2);
}

struct gone {
    const struct fx *fx;
    int d;
    const char *name;
};

static int is_gone(void *arg)
{
    struct gone *g = arg;
    return !present(g->fx, g->d, g->name);
}

static int unlinks_reached(void *target)
{
    return tf_fs_done(TF_UNLINKAT) >= *(int *)target;
}

/* Unlinks run on the sync thread after it has posted the batch's results, so
 * a barrier's reply does not mean they are done: wait for the calls. */
static void wait_unlinks(struct fx *fx, int n)
{
    if (!run_until(fx, unlinks_reached, &n, WAIT_MS))
        fail_msg("only %d of %d unlinks within %d ms", tf_fs_done(TF_UNLINKAT), n, WAIT_MS);
}

static void test_remove_is_asynchronous(void **state)
{
    struct fx *fx = *state;
    char a[QUEUE_ID_LEN + 1], h[QUEUE_ID_LEN + 1], missing[QUEUE_ID_LEN + 1], d[QUEUE_ID_LEN + 1];
    struct res r = {0};
    new_incoming(a);
    store_commit(a, on_commit, &r);
    wait_fired(fx, 1);
    expect_ok(&r, a);

    assert_int_equal(store_remove(a, STORE_QUEUE), 0);
    struct bres b = {0};
    barrier_and_wait(fx, &b);
    assert_true(b.ok);
    wait_unlinks(fx, 1);
    assert_false(present(fx, D_QUEUE, a));
    pthread_mutex_lock(&fk.mu);
    int on_loop = fk.s.unlink_on_loop, off_loop = fk.s.unlink_off_loop;
    pthread_mutex_unlock(&fk.mu);
    assert_int_equal(on_loop, 0); /* the loop never waits on the unlink */
    assert_int_equal(off_loop, 1);

    /* From hold/, and with no barrier: a removal alone needs no sync. */
    queue_id_new(h);
    write_qf(fx->dfd[D_HOLD], h, h, "s@example.com", 1);
    int syncs = tf_fs_calls(TF_SYNCFS);
    assert_int_equal(store_remove(h, STORE_HOLD), 0);
    struct gone g = {fx, D_HOLD, h};
    assert_true(run_until(fx, is_gone, &g, WAIT_MS));
    run_for(fx, 50);
    assert_int_equal(tf_fs_calls(TF_SYNCFS), syncs);

    /* Already gone: nothing to do, nothing breaks. */
    queue_id_new(missing);
    assert_int_equal(store_remove(missing, STORE_QUEUE), 0);
    struct bres b2 = {0};
    barrier_and_wait(fx, &b2);
    assert_true(b2.ok);
    wait_unlinks(fx, 3); /* a, h, missing: the fault below must hit d's */

    /* A failed unlink leaves the file (logged); asking again removes it. */
    queue_id_new(d);
    write_qf(fx->dfd[D_QUEUE], d, d, "s@example.com", 1);
    fk_fail(TF_UNLINKAT, 1, 1, EIO);
    assert_int_equal(store_remove(d, STORE_QUEUE), 0);
    struct bres b3 = {0};
    barrier_and_wait(fx, &b3);
    wait_unlinks(fx, 4);
    assert_true(present(fx, D_QUEUE, d));
    assert_int_equal(store_remove(d, STORE_QUEUE), 0);
    struct bres b4 = {0};
    barrier_and_wait(fx, &b4);
    wait_unlinks(fx, 5);
    assert_false(present(fx, D_QUEUE, d));
    res_free(&r, 1);
}

/* ---- recovery ------------------------------------------------------------- */

#define MAX_FOUND 16

struct found {
    size_t n;
    struct queue_file_message m[MAX_FOUND];
    enum store_place place[MAX_FOUND];
};

static void on_found(void *arg, struct queue_file_message *m, enum store_place place)
{
    struct found *f = arg;
    assert_true(f->n < MAX_FOUND);
    f->m[f->n] = *m;
    f->place[f->n] = place;
    f->n++;
}

static const struct queue_file_message *found_id(const struct found *f, const char *id, enum store_place *place)
{
    for (size_t i = 0; i < f->n; i++) {
        if (strcmp(f->m[i].id, id) == 0) {
            if (place)
                *place = f->place[i];
            return &f->m[i];
        }
    }
    return NULL;
}

static void found_free(struct found *f)
{
    for (size_t i = 0; i < f->n; i++)
        queue_file_message_free(&f->m[i]);
    f->n = 0;
}

/* A queue file with progress: rcpt 0 delivered, rcpt 1 expanded into a new
 * rcpt 2; then a status record for rcpt 2 torn by a crash. Returns the end
 * of the last whole record. */
static uint64_t write_torn(const struct fx *fx, const char *id)
{
    write_qf(fx->dfd[D_QUEUE], id, id, "torn@example.com", 2);
    struct queue_file_message m;
    read_back(fx, D_QUEUE, id, &m);
    int fd = openat(fx->dfd[D_QUEUE], id, O_WRONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    m.rcpts[0].state = QF_DELIVERED;
    m.rcpts[0].attempts = 1;
    free(m.rcpts[0].dsn);
    m.rcpts[0].dsn = xstrdup("2.0.0");
    free(m.rcpts[0].reason);
    m.rcpts[0].reason = xstrdup("250 2.0.0 ok");
    assert_int_equal(queue_file_append_status(fd, &m, 0), 0);
    queue_file_message_add_rcpt(&m, "expanded@example.org", "", 0, 1);
    assert_int_equal(queue_file_append_rcpt(fd, &m, 2), 0);
    m.rcpts[1].state = QF_EXPANDED;
    assert_int_equal(queue_file_append_status(fd, &m, 1), 0);
    uint64_t good_end = m.valid_end;
    m.rcpts[2].state = QF_FAILED;
    assert_int_equal(queue_file_append_status(fd, &m, 2), 0);
    assert_int_equal(ftruncate(fd, (off_t)m.valid_end - 4), 0); /* its CRC never made it */
    close(fd);
    queue_file_message_free(&m);
    return good_end;
}

static void check_torn_progress(const struct queue_file_message *m)
{
    assert_int_equal(m->nrcpt, 3);
    assert_int_equal(m->rcpts[0].state, QF_DELIVERED);
    assert_int_equal(m->rcpts[0].attempts, 1);
    assert_string_equal(m->rcpts[0].dsn, "2.0.0");
    assert_string_equal(m->rcpts[0].reason, "250 2.0.0 ok");
    assert_int_equal(m->rcpts[1].state, QF_EXPANDED);
    assert_string_equal(m->rcpts[2].addr, "expanded@example.org");
    assert_int_equal(m->rcpts[2].parent, 1);
    assert_int_equal(m->rcpts[2].state, QF_PENDING); /* the torn FAILED is gone */
}

static void test_recover_sorts_out_the_spool(void **state)
{
    struct fx *fx = *state;
    char in_done[QUEUE_ID_LEN + 1], in_partial[QUEUE_ID_LEN + 1], q_ok[QUEUE_ID_LEN + 1],
        q_torn[QUEUE_ID_LEN + 1], q_garbage[QUEUE_ID_LEN + 1], q_unfinished[QUEUE_ID_LEN + 1],
        q_wrong[QUEUE_ID_LEN + 1], q_other[QUEUE_ID_LEN + 1], h_ok[QUEUE_ID_LEN + 1],
        h_cut[QUEUE_ID_LEN + 1];
    char *ids[] = {in_done, in_partial, q_ok, q_torn, q_garbage, q_unfinished, q_wrong, q_other, h_ok, h_cut};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        queue_id_new(ids[i]);
    const char *wrong_name = "notaqueueid";

    /* incoming/: never acknowledged, whatever state they are in, when left
     * over from before the queue started... */
    write_qf(fx->dfd[D_INCOMING], in_done, in_done, "s@example.com", 1);
    write_unfinished(fx, D_INCOMING, in_partial);
    struct timespec old_times[2] = {{time(NULL) - 3600, 0}, {time(NULL) - 3600, 0}};
    assert_int_equal(utimensat(fx->dfd[D_INCOMING], in_done, old_times, 0), 0);
    assert_int_equal(utimensat(fx->dfd[D_INCOMING], in_partial, old_times, 0), 0);
    /* ...but not one a live smtpd holds (locked), nor one made since */
    char in_live[QUEUE_ID_LEN + 1], in_new[QUEUE_ID_LEN + 1];
    queue_id_new(in_live);
    queue_id_new(in_new);
    struct queue_file_writer *live;
    assert_int_equal(queue_file_writer_open(fx->dfd[D_INCOMING], in_live, &live), 0);
    assert_int_equal(utimensat(fx->dfd[D_INCOMING], in_live, old_times, 0), 0);
    write_unfinished(fx, D_INCOMING, in_new);
    /* queue/ and hold/ */
    write_qf(fx->dfd[D_QUEUE], q_ok, q_ok, "ok@example.com", 3);
    uint64_t torn_good_end = write_torn(fx, q_torn);
    spit(fx, D_QUEUE, q_garbage, "garbage\0\1\2 not a queue file", 28);
    write_unfinished(fx, D_QUEUE, q_unfinished);
    write_qf(fx->dfd[D_QUEUE], q_wrong, q_other, "s@example.com", 1);
    write_qf(fx->dfd[D_QUEUE], wrong_name, q_other, "s@example.com", 1);
    write_qf(fx->dfd[D_HOLD], h_ok, h_ok, "held@example.com", 1);
    write_qf(fx->dfd[D_HOLD], h_cut, h_cut, "s@example.com", 1);
    cut_to(fx, D_HOLD, h_cut, file_size(fx, D_HOLD, h_cut) - 1);

    /* What corrupt/ must receive, byte for byte. */
    struct {
        int d;
        const char *name;
        unsigned char *bytes;
        size_t len;
    } bad[] = {{D_QUEUE, q_garbage, NULL, 0}, {D_QUEUE, q_unfinished, NULL, 0}, {D_QUEUE, q_wrong, NULL, 0},
               {D_QUEUE, wrong_name, NULL, 0}, {D_HOLD, h_cut, NULL, 0}};
    enum { NBAD = sizeof bad / sizeof bad[0] };
    for (int i = 0; i < NBAD; i++)
        bad[i].bytes = slurp(fx, bad[i].d, bad[i].name, &bad[i].len);

    struct found f = {0};
    store_recover(on_found, &f);

    assert_int_equal(entries(fx, D_INCOMING), 2);
    assert_true(present(fx, D_INCOMING, in_live));
    assert_true(present(fx, D_INCOMING, in_new));
    queue_file_writer_abort(live);
    fsops_unlinkat(fx->dfd[D_INCOMING], in_new, 0);
    assert_int_equal(f.n, 3);
    enum store_place place;
    const struct queue_file_message *m = found_id(&f, q_ok, &place);
    assert_non_null(m);
    assert_int_equal(place, STORE_QUEUE);
    assert_string_equal(m->sender, "ok@example.com");
    assert_int_equal(m->nrcpt, 3);
    assert_int_equal(m->content_length, sizeof CONTENT - 1);
    assert_int_equal(m->valid_end, m->file_size);

    m = found_id(&f, h_ok, &place);
    assert_non_null(m);
    assert_int_equal(place, STORE_HOLD);
    assert_string_equal(m->sender, "held@example.com");

    m = found_id(&f, q_torn, &place);
    assert_non_null(m);
    assert_int_equal(place, STORE_QUEUE);
    check_torn_progress(m);
    assert_int_equal(m->valid_end, torn_good_end);
    assert_int_equal(m->file_size, torn_good_end);
    assert_int_equal((uint64_t)file_size(fx, D_QUEUE, q_torn), torn_good_end); /* cut off */

    assert_int_equal(entries(fx, D_QUEUE), 2);
    assert_true(present(fx, D_QUEUE, q_ok));
    assert_true(present(fx, D_QUEUE, q_torn));
    assert_int_equal(entries(fx, D_HOLD), 1);
    assert_true(present(fx, D_HOLD, h_ok));
    assert_int_equal(entries(fx, D_CORRUPT), NBAD);
    for (int i = 0; i < NBAD; i++) {
        size_t len;
        unsigned char *now = slurp(fx, D_CORRUPT, bad[i].name, &len);
        assert_int_equal(len, bad[i].len);
        assert_memory_equal(now, bad[i].bytes, len);
        assert_false(present(fx, bad[i].d, bad[i].name));
        free(now);
        free(bad[i].bytes);
    }

    /* The torn tail is gone for good: a new record follows valid ones. */
    struct queue_file_message *tm = (struct queue_file_message *)found_id(&f, q_torn, NULL);
    tm->rcpts[2].state = QF_DEFERRED;
    tm->rcpts[2].next_try = 1700000999;
    assert_int_equal(store_append_status(tm, STORE_QUEUE, 2), 0);
    struct queue_file_message back;
    read_back(fx, D_QUEUE, q_torn, &back);
    assert_int_equal(back.rcpts[2].state, QF_DEFERRED);
    assert_int_equal(back.rcpts[2].next_try, 1700000999);
    assert_int_equal(back.valid_end, tm->valid_end);
    assert_int_equal(back.file_size, tm->valid_end);
    queue_file_message_free(&back);
    found_free(&f);

    /* Recovery again finds the same messages and moves nothing more. */
    store_recover(on_found, &f);
    assert_int_equal(f.n, 3);
    assert_non_null(found_id(&f, q_ok, NULL));
    assert_non_null(found_id(&f, q_torn, NULL));
    assert_non_null(found_id(&f, h_ok, NULL));
    assert_int_equal(entries(fx, D_CORRUPT), NBAD);
    found_free(&f);
}

/* When the torn tail cannot be cut off the message still resumes with its
 * earlier progress, and the next record overwrites the torn one. */
static void test_recover_truncate_failure(void **state)
{
    struct fx *fx = *state;
    char id[QUEUE_ID_LEN + 1];
    queue_id_new(id);
    uint64_t good_end = write_torn(fx, id);
    off_t torn_size = file_size(fx, D_QUEUE, id);

    fk_fail(TF_FTRUNCATE, 1, 1, EIO);
    struct found f = {0};
    store_recover(on_found, &f);
    assert_int_equal(tf_fs_calls(TF_FTRUNCATE), 1);
    assert_int_equal(f.n, 1);
    check_torn_progress(&f.m[0]);
    assert_int_equal(f.m[0].valid_end, good_end);
    assert_int_equal(f.m[0].file_size, (uint64_t)torn_size);
    assert_int_equal(file_size(fx, D_QUEUE, id), torn_size);

    f.m[0].rcpts[2].state = QF_DELIVERED;
    assert_int_equal(store_append_status(&f.m[0], STORE_QUEUE, 2), 0);
    struct queue_file_message back;
    read_back(fx, D_QUEUE, id, &back);
    assert_int_equal(back.rcpts[2].state, QF_DELIVERED);
    assert_int_equal(back.valid_end, f.m[0].valid_end);
    queue_file_message_free(&back);
    found_free(&f);
}

/* A file that cannot be opened or moved is not known to be bad: it stays
 * where it is (never deleted, never quarantined by a passing error) and the
 * next recovery finds it. */
static void test_recover_io_errors_keep_files(void **state)
{
    struct fx *fx = *state;
    char ok[QUEUE_ID_LEN + 1], garbage[QUEUE_ID_LEN + 1];
    queue_id_new(ok);
    queue_id_new(garbage);
    write_qf(fx->dfd[D_QUEUE], ok, ok, "s@example.com", 1);

    fk_fail(TF_OPENAT, 1, 1, EMFILE);
    struct found f = {0};
    store_recover(on_found, &f);
    assert_int_equal(f.n, 0);
    assert_true(present(fx, D_QUEUE, ok));
    assert_int_equal(entries(fx, D_CORRUPT), 0);

    store_recover(on_found, &f);
    assert_int_equal(f.n, 1);
    assert_string_equal(f.m[0].id, ok);
    found_free(&f);

    spit(fx, D_QUEUE, garbage, "junk", 4);
    fk_fail(TF_RENAMEAT, 1, 1, EIO);
    store_recover(on_found, &f);
    assert_int_equal(tf_fs_calls(TF_RENAMEAT), 1);
    assert_true(present(fx, D_QUEUE, garbage));
    assert_int_equal(entries(fx, D_CORRUPT), 0);
    found_free(&f);

    store_recover(on_found, &f);
    assert_false(present(fx, D_QUEUE, garbage));
    assert_true(present(fx, D_CORRUPT, garbage));
    assert_int_equal(f.n, 1);
    found_free(&f);
}

/* ---- progress, moves, paths ----------------------------------------------- */

static void test_append_round_trip(void **state)
{
    struct fx *fx = *state;
    char id[QUEUE_ID_LEN + 1];
    new_incoming(id);
    struct res r = {0};
    store_commit(id, on_commit, &r);
    wait_fired(fx, 1);
    expect_ok(&r, id);
    struct queue_file_message *m = &r.m;

    m->rcpts[0].state = QF_DELIVERED;
    m->rcpts[0].attempts = 1;
    m->rcpts[0].last_try = 1700000100;
    free(m->rcpts[0].dsn);
    m->rcpts[0].dsn = xstrdup("2.0.0");
    free(m->rcpts[0].reason);
    m->rcpts[0].reason = xstrdup("250 2.0.0 Ok: queued as X");
    uint64_t end0 = m->valid_end;
    assert_int_equal(store_append_status(m, STORE_QUEUE, 0), 0);
    assert_true(m->valid_end > end0);

    queue_file_message_add_rcpt(m, "alias-target@example.net", "rfc822;rcpt1@example.org", QF_NOTIFY_SUCCESS, 1);
    assert_int_equal(store_append_rcpt(m, STORE_QUEUE, 2), 0);
    m->rcpts[1].state = QF_EXPANDED;
    assert_int_equal(store_append_status(m, STORE_QUEUE, 1), 0);

    assert_int_equal(store_move(id, STORE_QUEUE, STORE_HOLD), 0);
    assert_false(present(fx, D_QUEUE, id));
    assert_true(present(fx, D_HOLD, id));
    m->rcpts[2].state = QF_DEFERRED;
    m->rcpts[2].attempts = 2;
    m->rcpts[2].next_try = 1700003600;
    m->rcpts[2].last_try = 1700000200;
    free(m->rcpts[2].dsn);
    m->rcpts[2].dsn = xstrdup("4.4.1");
    free(m->rcpts[2].reason);
    m->rcpts[2].reason = xstrdup("connection refused");
    assert_int_equal(store_append_status(m, STORE_HOLD, 2), 0);

    /* Not in queue/ any more: the append fails and changes nothing. */
    uint64_t end = m->valid_end;
    errno = 0;
    assert_int_equal(store_append_status(m, STORE_QUEUE, 2), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(m->valid_end, end);

    /* A full disk: -1 with the error, the file and valid_end unchanged. */
    fk_fail(TF_PWRITE, 1, 1, ENOSPC);
    errno = 0;
    assert_int_equal(store_append_status(m, STORE_HOLD, 0), -1);
    assert_int_equal(errno, ENOSPC);
    assert_int_equal(m->valid_end, end);
    fk_fail(TF_PWRITE, 1, 1, EIO);
    assert_int_equal(store_append_rcpt(m, STORE_HOLD, 2), -1);
    assert_int_equal(errno, EIO);
    assert_int_equal(m->valid_end, end);

    struct queue_file_message back;
    read_back(fx, D_HOLD, id, &back);
    assert_int_equal(back.valid_end, end);
    assert_int_equal(back.file_size, end);
    assert_int_equal(back.nrcpt, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(back.rcpts[i].addr, m->rcpts[i].addr);
        assert_string_equal(back.rcpts[i].orcpt, m->rcpts[i].orcpt);
        assert_int_equal(back.rcpts[i].notify, m->rcpts[i].notify);
        assert_int_equal(back.rcpts[i].parent, m->rcpts[i].parent);
        assert_int_equal(back.rcpts[i].state, m->rcpts[i].state);
        assert_int_equal(back.rcpts[i].attempts, m->rcpts[i].attempts);
        assert_int_equal(back.rcpts[i].next_try, m->rcpts[i].next_try);
        assert_int_equal(back.rcpts[i].last_try, m->rcpts[i].last_try);
        assert_string_equal(back.rcpts[i].dsn, m->rcpts[i].dsn);
        assert_string_equal(back.rcpts[i].reason, m->rcpts[i].reason);
    }
    assert_int_equal(back.rcpts[2].parent, 1);
    assert_int_equal(back.rcpts[0].last_try, 1700000100);
    queue_file_message_free(&back);

    /* And back to queue/, where appends go again. */
    assert_int_equal(store_move(id, STORE_HOLD, STORE_QUEUE), 0);
    m->rcpts[2].state = QF_DELIVERED;
    assert_int_equal(store_append_status(m, STORE_QUEUE, 2), 0);
    read_back(fx, D_QUEUE, id, &back);
    assert_int_equal(back.rcpts[2].state, QF_DELIVERED);
    assert_int_equal(queue_file_message_open_rcpts(&back), 0);
    queue_file_message_free(&back);
    res_free(&r, 1);
}

static void test_move_and_path(void **state)
{
    struct fx *fx = *state;
    char id[QUEUE_ID_LEN + 1];
    queue_id_new(id);
    write_qf(fx->dfd[D_QUEUE], id, id, "s@example.com", 1);

    assert_int_equal(store_move(id, STORE_QUEUE, STORE_QUEUE), 0);
    assert_true(present(fx, D_QUEUE, id));
    assert_int_equal(store_move(id, STORE_QUEUE, STORE_HOLD), 0);
    assert_true(present(fx, D_HOLD, id));
    assert_false(present(fx, D_QUEUE, id));
    errno = 0;
    assert_int_equal(store_move(id, STORE_QUEUE, STORE_HOLD), -1);
    assert_int_equal(errno, ENOENT);
    fk_fail(TF_RENAMEAT, 1, 1, EIO);
    assert_int_equal(store_move(id, STORE_HOLD, STORE_QUEUE), -1);
    assert_int_equal(errno, EIO);
    assert_true(present(fx, D_HOLD, id));

    char *p = store_path(id, STORE_HOLD);
    char *want = xasprintf("%s/hold/%s", fx->dir, id);
    assert_string_equal(p, want);
    free(p);
    free(want);
    p = store_path(id, STORE_QUEUE);
    want = xasprintf("%s/queue/%s", fx->dir, id);
    assert_string_equal(p, want);
    free(p);
    free(want);

    /* incoming/ for writers in this process is the spool's incoming/. */
    struct stat a, b;
    assert_int_equal(fstat(store_incoming_dirfd(), &a), 0);
    assert_int_equal(fstat(fx->dfd[D_INCOMING], &b), 0);
    assert_true(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
}

/* ---- open/close ----------------------------------------------------------- */

static void test_open_failures(void **state)
{
    struct fx *fx = *state;
    /* corrupt/ missing */
    struct fx other = {0};
    assert_int_equal(make_spool(&other, 0), 0);
    assert_int_equal(store_open(fx->base, other.dir, 1), -1);
    store_close();
    for (int i = 0; i < D_N; i++)
        if (other.dfd[i] >= 0)
            close(other.dfd[i]);
    tf_tmpdir_remove(other.dir);

    /* a directory that cannot be opened */
    int opens = tf_fs_calls(TF_OPEN);
    fk_fail(TF_OPEN, 2, 1, EACCES);
    assert_int_equal(store_open(fx->base, fx->dir, 1), -1);
    store_close();
    assert_int_equal(tf_fs_calls(TF_OPEN), opens + 4);

    /* and then a working store in the same process */
    assert_int_equal(store_open(fx->base, fx->dir, 1), 0);
    fx->is_open = 1;
    char id[QUEUE_ID_LEN + 1];
    new_incoming(id);
    struct res r = {0};
    store_commit(id, on_commit, &r);
    wait_fired(fx, 1);
    expect_ok(&r, id);
    res_free(&r, 1);
}

int main(void)
{
    log_set_stderr(0);
    queue_id_init(7);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_commit_moves_file_and_hands_over_envelope, setup_syncfs, teardown),
        cmocka_unit_test_setup_teardown(test_ack_waits_for_sync_started_after_rename, setup_syncfs, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit_shares_syncs, setup_syncfs, teardown),
        cmocka_unit_test_setup_teardown(test_syncfs_eio_fails_whole_batch, setup_syncfs, teardown),
        cmocka_unit_test_setup_teardown(test_write_before_failed_sync_refused, setup_syncfs, teardown),
        cmocka_unit_test_setup_teardown(test_syncfs_out_of_space, setup_syncfs, teardown),
        cmocka_unit_test_setup_teardown(test_rename_failure, setup_syncfs, teardown),
        cmocka_unit_test_setup_teardown(test_open_failure_refuses_commit, setup_syncfs, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_incoming_refused_and_removed, setup_syncfs, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_id_touches_nothing, setup_syncfs, teardown),
        cmocka_unit_test_setup_teardown(test_commit_never_replaces_committed_file, setup_syncfs, teardown),
        cmocka_unit_test_setup_teardown(test_close_finishes_pending_commits, setup_syncfs, teardown),
        cmocka_unit_test_setup_teardown(test_fsync_mode_commit, setup_fsync, teardown),
        cmocka_unit_test_setup_teardown(test_fsync_mode_fdatasync_failure, setup_fsync, teardown),
        cmocka_unit_test_setup_teardown(test_fsync_mode_dir_fsync_failure, setup_fsync, teardown),
        cmocka_unit_test_setup_teardown(test_fsync_mode_barrier, setup_fsync, teardown),
        cmocka_unit_test_setup_teardown(test_barrier_after_pending_commits, setup_syncfs, teardown),
        cmocka_unit_test_setup_teardown(test_remove_is_asynchronous, setup_syncfs, teardown),
        cmocka_unit_test_setup_teardown(test_recover_sorts_out_the_spool, setup_syncfs, teardown),
        cmocka_unit_test_setup_teardown(test_recover_truncate_failure, setup_syncfs, teardown),
        cmocka_unit_test_setup_teardown(test_recover_io_errors_keep_files, setup_syncfs, teardown),
        cmocka_unit_test_setup_teardown(test_append_round_trip, setup_syncfs, teardown),
        cmocka_unit_test_setup_teardown(test_move_and_path, setup_syncfs, teardown),
        cmocka_unit_test_setup_teardown(test_open_failures, setup_closed, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
