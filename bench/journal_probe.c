/* journal_probe: the spool's candidate commit designs, side by side (issue 12).
 *
 * Not part of tern and not part of `make test`: `make journal-probe` builds and
 * runs it (docs/PERFORMANCE.md, "The spool journal probe", has the commands and
 * the figures; docs/ARCHITECTURE.md the choice made from them).
 *
 * It simulates what the spool does per message, under N concurrent sessions
 * (threads): commit a 4 KiB message durably (the session waits, as smtpd waits
 * before its 250), then append a small progress record for its previous
 * message, then retire the message before that (all its recipients done).
 * Progress and retire records are not waited for (today they are not synced
 * either); they become durable with a later commit's sync (a committer thread
 * holds them for at most 50 ms waiting for a commit to carry them).
 *
 * Candidates (--cands):
 *   bare          one thread: pwrite 4 KiB into a pre-written file + fdatasync
 *                 (the disk's sync latency; N = 1 only)
 *   seg           our own segment log: segments fallocate'd (64 MiB), records
 *                 appended with pwritev by one writer thread that takes every
 *                 waiting request and ends the batch with one fdatasync; a
 *                 segment whose messages are all retired is unlinked (in log
 *                 order) by a helper thread, which also preallocates the next
 *   seg-prez      the same on recycled segments: written once (zeros), then
 *                 reused; records carry the segment's generation so an old
 *                 record is never taken for a new one
 *   seg-prez-dsync  seg-prez with pwritev2(RWF_DSYNC) instead of fdatasync
 *   rocksdb       RocksDB C API, sync=true puts from every session (its write
 *                 group does the batching), progress and retire sync=false
 *   lmdb          LMDB, one committer thread, one transaction per batch
 *   sqlite        SQLite, WAL, synchronous=FULL, one committer thread, one
 *                 transaction per batch
 *   files-pool    a file per message: the session writes queue/ID, a pool of
 *                 16 threads (fewer with fewer sessions) does its fdatasync, then
 *                 a shared fsync of queue/
 *                 (one per group of files); retire = unlink by the pool
 *   today         today's scheme (src/spool/store.c): write incoming/ID, rename
 *                 into queue/, one thread does syncfs per batch, and the
 *                 retires (unlinks) after answering the batch
 *
 * The run order alternates: in each round, for each N, every candidate runs
 * once, starting at a different candidate each round. --noisy adds a round
 * with a neighbour process (started and stopped here) that writes 64 KiB
 * files into the scratch file system and deletes them ~0.2 s later, ~150/s.
 *
 * --paired-bare runs bare just before every other candidate's N = 1 run, and
 * reports that run's median latency less bare's: on a busy machine the disk's
 * latency drifts more between runs than the candidates differ.
 *
 * Output: one line per run, then a summary (median and min-max over rounds). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <semaphore.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MSG_SIZE 4096
#define SEG_SIZE (64ull << 20)
#define SEG_POOL 4
#define MAX_SEGS 4096
#define POOL_THREADS 16
#define MAX_SESSIONS 256
#define MAX_RUNS 1024

static void die(const char *what)
{
    fprintf(stderr, "journal_probe: %s: %s\n", what, strerror(errno));
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---------- CRC-32 (the queue file's: IEEE, bytewise table) ---------- */

static uint32_t crc_table[256];

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc32_buf(uint32_t crc, const void *data, size_t len)
{
    const unsigned char *p = data;
    crc = ~crc;
    while (len--)
        crc = crc_table[(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

/* ---------- the message ---------- */

static unsigned char content[MSG_SIZE];
static const char envelope[] = "S\0sender@example.org\0R\0rcpt@example.net\0A\0client=192.0.2.7 helo=mx.example.org\0";

static void make_content(void)
{
    const char *line = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n";
    size_t ll = strlen(line);
    for (size_t i = 0; i < MSG_SIZE; i++)
        content[i] = (unsigned char)line[i % ll];
}

static void id_name(uint64_t id, char out[17])
{
    snprintf(out, 17, "%016" PRIx64, id);
}

static void put_u32(unsigned char *p, uint32_t v)
{
    memcpy(p, &v, 4);   /* little-endian machine; a probe */
}

/* A queue file as today's writer makes it: header, content, envelope records
 * (type, length, payload, CRC), end record. */
static size_t encode_queue_file(unsigned char *buf, uint64_t id)
{
    size_t n = 0;
    memcpy(buf, "TERNQF01", 8);
    n = 16;
    memcpy(buf + n, content, MSG_SIZE);
    n += MSG_SIZE;
    uint64_t env_off = n;
    memcpy(buf + 8, &env_off, 8);
    char name[17];
    id_name(id, name);
    const void *parts[3] = {name, envelope, "E"};
    size_t lens[3] = {16, sizeof envelope, 1};
    for (int i = 0; i < 3; i++) {
        size_t start = n;
        buf[n++] = (unsigned char)"IRE"[i];
        put_u32(buf + n, (uint32_t)lens[i]);
        n += 4;
        memcpy(buf + n, parts[i], lens[i]);
        n += lens[i];
        put_u32(buf + n, crc32_buf(0, buf + start, n - start));
        n += 4;
    }
    return n;
}

/* ---------- sessions, requests, the committer queue ---------- */

enum req_kind { RK_COMMIT, RK_PROGRESS, RK_RETIRE };

struct req {
    struct req *next;
    enum req_kind kind;
    uint64_t id;
    int seg;                 /* seg: segment of the message (retire) / set by writer (commit) */
    int fd;                  /* files: the new file */
    sem_t *done;             /* commit: posted when durable */
    int err;
    size_t len;              /* seg: payload length */
    unsigned char hdr[21];   /* seg: type, len, gen, payload CRC, header CRC */
    unsigned char *payload;  /* seg: payload (ends where len says) */
};

struct sess {
    pthread_t th;
    int idx;
    sem_t done;
    uint64_t seq;
    int seg_of[4];           /* seg: segment of message seq % 4 */
    double *lat;
    size_t nlat, cap;
    unsigned char *buf;
    size_t commits;
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct req *head, *tail;
    int ncommit;             /* commits waiting in the queue */
    int stop;
} q = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void q_push(struct req *r)
{
    r->next = NULL;
    pthread_mutex_lock(&q.mu);
    if (q.tail)
        q.tail->next = r;
    else
        q.head = r;
    q.tail = r;
    if (r->kind == RK_COMMIT)
        q.ncommit++;
    pthread_cond_signal(&q.cv);
    pthread_mutex_unlock(&q.mu);
}

/* Requests nobody waits for (progress, retire) need not be synced at once:
 * they are held until a commit comes to carry them, or for at most this long. */
#define HOLD_NS (50 * 1000 * 1000L)

/* Every waiting request, once a commit is among them (or HOLD_NS passed);
 * NULL once stopped and empty. */
static struct req *q_take_batch(void)
{
    pthread_mutex_lock(&q.mu);
    while (!q.stop && q.ncommit == 0) {
        if (!q.head) {
            pthread_cond_wait(&q.cv, &q.mu);
            continue;
        }
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_nsec += HOLD_NS;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
        if (pthread_cond_timedwait(&q.cv, &q.mu, &dl) == ETIMEDOUT)
            break;
    }
    struct req *r = q.head;
    q.head = q.tail = NULL;
    q.ncommit = 0;
    pthread_mutex_unlock(&q.mu);
    return r;
}

/* Every waiting request, or NULL once stopped and empty. */
static struct req *q_take_all(void)
{
    pthread_mutex_lock(&q.mu);
    while (!q.head && !q.stop)
        pthread_cond_wait(&q.cv, &q.mu);
    struct req *r = q.head;
    q.head = q.tail = NULL;
    q.ncommit = 0;
    pthread_mutex_unlock(&q.mu);
    return r;
}

static struct req *q_take_one(void)
{
    pthread_mutex_lock(&q.mu);
    while (!q.head && !q.stop)
        pthread_cond_wait(&q.cv, &q.mu);
    struct req *r = q.head;
    if (r) {
        q.head = r->next;
        if (!q.head)
            q.tail = NULL;
        if (r->kind == RK_COMMIT)
            q.ncommit--;
    }
    pthread_mutex_unlock(&q.mu);
    return r;
}

static void q_stop(void)
{
    pthread_mutex_lock(&q.mu);
    q.stop = 1;
    pthread_cond_broadcast(&q.cv);
    pthread_mutex_unlock(&q.mu);
}

/* Per-run state every candidate shares. */
static struct {
    char dir[512];
    int nsess;
    atomic_int measuring, stop;
    atomic_ulong syncs, synced_commits;   /* batches and the commits they carried */
    /* seg: segment switches, drops and their costs */
    atomic_ulong seg_new, seg_drop, seg_stall_us;
    double drop_total, drop_max, new_total, new_max;
    unsigned long spares;        /* segments the helper preallocated (new_total is theirs) */
    unsigned long pool_miss;
} run;

/* ---------- candidate: bare fdatasync ---------- */

static int bare_fd = -1;
static uint64_t bare_off;

static void prewrite(int fd, uint64_t size)
{
    static unsigned char zeros[1 << 20];
    for (uint64_t off = 0; off < size; off += sizeof zeros)
        if (pwrite(fd, zeros, sizeof zeros, (off_t)off) != (ssize_t)sizeof zeros)
            die("pre-write");
    if (fdatasync(fd) != 0)
        die("fdatasync");
}

static void bare_open(void)
{
    char p[600];
    snprintf(p, sizeof p, "%s/bare", run.dir);
    bare_fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (bare_fd < 0)
        die("open bare");
    prewrite(bare_fd, 16 << 20);
    bare_off = 0;
}

static void bare_commit(struct sess *s, uint64_t id)
{
    (void)id;
    if (pwrite(bare_fd, content, MSG_SIZE, (off_t)bare_off) != MSG_SIZE || fdatasync(bare_fd) != 0)
        die("bare write");
    bare_off = (bare_off + MSG_SIZE) % (16 << 20);
    (void)s;
    atomic_fetch_add(&run.syncs, 1);
    atomic_fetch_add(&run.synced_commits, 1);
}

static void bare_close(void)
{
    close(bare_fd);
}

/* ---------- candidate (a): our own segment log ---------- */

struct segment {
    int fd;
    uint64_t gen;
    long live;       /* messages committed here and not yet retired */
    int pooled;      /* index in the recycled pool, or -1 */
    char path[600];
};

static struct {
    int prez, dsync;
    struct segment segs[MAX_SEGS];
    int head, cur;               /* oldest kept segment, segment being written */
    uint64_t off;                /* append offset in cur */
    uint64_t next_gen;
    pthread_t writer, helper;
    /* helper: preallocates one spare, unlinks dropped segments */
    pthread_mutex_t hmu;
    pthread_cond_t hcv;
    int spare_fd;                /* -1: being made */
    char spare_path[600];
    int drops[MAX_SEGS], ndrops;
    int hstop;
    int nspare;
    /* recycled pool (seg-prez): files written once, kept across runs */
    int pool_fd[SEG_POOL];
    int pool_free[SEG_POOL];
} sg = {.hmu = PTHREAD_MUTEX_INITIALIZER, .hcv = PTHREAD_COND_INITIALIZER};
static char pool_dir[512];
static int pool_ready;

static void *seg_helper(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&sg.hmu);
    for (;;) {
        while (!sg.hstop && sg.ndrops == 0 && (sg.prez || sg.spare_fd >= 0))
            pthread_cond_wait(&sg.hcv, &sg.hmu);
        if (sg.hstop)
            break;
        if (sg.ndrops > 0) {
            int i = sg.drops[--sg.ndrops];
            pthread_mutex_unlock(&sg.hmu);
            double t0 = now_s();
            close(sg.segs[i].fd);
            if (unlink(sg.segs[i].path) != 0)
                die("unlink segment");
            double dt = now_s() - t0;
            pthread_mutex_lock(&sg.hmu);
            run.drop_total += dt;
            if (dt > run.drop_max)
                run.drop_max = dt;
            atomic_fetch_add(&run.seg_drop, 1);
            pthread_cond_broadcast(&sg.hcv);
            continue;
        }
        /* make the next spare */
        snprintf(sg.spare_path, sizeof sg.spare_path, "%s/seg.%06d", run.dir, sg.nspare++);
        pthread_mutex_unlock(&sg.hmu);
        double t0 = now_s();
        int fd = open(sg.spare_path, O_RDWR | O_CREAT | O_EXCL, 0600);
        if (fd < 0 || fallocate(fd, 0, 0, (off_t)SEG_SIZE) != 0)
            die("fallocate segment");
        /* the new name must be durable before a record in it is called durable */
        int dfd = open(run.dir, O_RDONLY | O_DIRECTORY);
        if (dfd < 0 || fsync(dfd) != 0)
            die("fsync dir");
        close(dfd);
        double dt = now_s() - t0;
        pthread_mutex_lock(&sg.hmu);
        run.new_total += dt;
        run.spares++;
        if (dt > run.new_max)
            run.new_max = dt;
        sg.spare_fd = fd;
        pthread_cond_broadcast(&sg.hcv);
    }
    pthread_mutex_unlock(&sg.hmu);
    return NULL;
}

/* Opens the segment after the current one (writer thread). */
static void seg_next(void)
{
    int i = ++sg.cur;
    if (i >= MAX_SEGS) {
        errno = ENOSPC;
        die("too many segments");
    }
    struct segment *g = &sg.segs[i];
    g->live = 0;
    g->gen = sg.next_gen++;
    g->pooled = -1;
    if (sg.prez) {
        for (int k = 0; k < SEG_POOL; k++)
            if (sg.pool_free[k]) {
                sg.pool_free[k] = 0;
                g->pooled = k;
                g->fd = sg.pool_fd[k];
                break;
            }
        if (g->pooled >= 0) {
            sg.off = 0;
            return;
        }
        run.pool_miss++;   /* fall back to a new preallocated file (made inline) */
        snprintf(g->path, sizeof g->path, "%s/miss.%06d", run.dir, i);
        g->fd = open(g->path, O_RDWR | O_CREAT | O_EXCL, 0600);
        if (g->fd < 0 || fallocate(g->fd, 0, 0, (off_t)SEG_SIZE) != 0)
            die("fallocate");
        sg.off = 0;
        return;
    }
    double t0 = now_s();
    pthread_mutex_lock(&sg.hmu);
    while (sg.spare_fd < 0)
        pthread_cond_wait(&sg.hcv, &sg.hmu);
    g->fd = sg.spare_fd;
    snprintf(g->path, sizeof g->path, "%s", sg.spare_path);
    sg.spare_fd = -1;
    pthread_cond_broadcast(&sg.hcv);
    pthread_mutex_unlock(&sg.hmu);
    atomic_fetch_add(&run.seg_stall_us, (unsigned long)((now_s() - t0) * 1e6));
    atomic_fetch_add(&run.seg_new, 1);
    sg.off = 0;
}

static void seg_write(struct iovec *iov, int n, uint64_t off)
{
    if (n == 0)
        return;
    size_t want = 0;
    for (int i = 0; i < n; i++)
        want += iov[i].iov_len;
    ssize_t w = pwritev2(sg.segs[sg.cur].fd, iov, n, (off_t)off, sg.dsync ? RWF_DSYNC : 0);
    if (w != (ssize_t)want)
        die("pwritev2 segment");
}

static void seg_sync(void)
{
    if (!sg.dsync && fdatasync(sg.segs[sg.cur].fd) != 0)
        die("fdatasync segment");
}

static void *seg_writer(void *unused)
{
    (void)unused;
    static struct iovec iov[1024];
    struct req *batch;
    while ((batch = q_take_batch())) {
        int n = 0;
        uint64_t start = sg.off;
        unsigned long commits = 0;
        for (struct req *r = batch; r; r = r->next) {
            size_t reclen = sizeof r->hdr + r->len;
            if (sg.off + reclen > SEG_SIZE) {
                /* this segment is full: what is written goes to disk, then on */
                seg_write(iov, n, start);
                seg_sync();
                n = 0;
                seg_next();
                start = sg.off;
            }
            if (n + 2 > 1024) {
                seg_write(iov, n, start);
                n = 0;
                start = sg.off;
            }
            struct segment *g = &sg.segs[sg.cur];
            r->hdr[0] = (unsigned char)"MPR"[r->kind];
            put_u32(r->hdr + 1, (uint32_t)r->len);
            memcpy(r->hdr + 5, &g->gen, 8);
            put_u32(r->hdr + 13, crc32_buf(0, r->payload, r->len));
            put_u32(r->hdr + 17, crc32_buf(0, r->hdr, 17));
            iov[n].iov_base = r->hdr;
            iov[n++].iov_len = sizeof r->hdr;
            iov[n].iov_base = r->payload;
            iov[n++].iov_len = r->len;
            sg.off += reclen;
            if (r->kind == RK_COMMIT) {
                g->live++;
                r->seg = sg.cur;
                commits++;
            }
        }
        seg_write(iov, n, start);
        seg_sync();
        atomic_fetch_add(&run.syncs, 1);
        atomic_fetch_add(&run.synced_commits, commits);
        /* answer the commits; apply the retires now that they are durable */
        struct req *r = batch;
        while (r) {
            struct req *next = r->next;
            if (r->kind == RK_COMMIT) {
                sem_post(r->done);
            } else {
                if (r->kind == RK_RETIRE)
                    sg.segs[r->seg].live--;
                free(r);
            }
            r = next;
        }
        /* drop (or recycle) whole segments from the log's head, in order */
        while (sg.head < sg.cur && sg.segs[sg.head].live == 0) {
            struct segment *g = &sg.segs[sg.head];
            if (g->pooled >= 0) {
                sg.pool_free[g->pooled] = 1;
                atomic_fetch_add(&run.seg_drop, 1);
            } else {
                pthread_mutex_lock(&sg.hmu);
                sg.drops[sg.ndrops++] = sg.head;
                pthread_cond_broadcast(&sg.hcv);
                pthread_mutex_unlock(&sg.hmu);
            }
            sg.head++;
        }
    }
    return NULL;
}

static void seg_make_pool(void)
{
    if (pool_ready)
        return;
    if (mkdir(pool_dir, 0700) != 0 && errno != EEXIST)
        die("mkdir pool");
    for (int k = 0; k < SEG_POOL; k++) {
        char p[600];
        snprintf(p, sizeof p, "%s/recycled.%d", pool_dir, k);
        sg.pool_fd[k] = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
        if (sg.pool_fd[k] < 0)
            die("open pool segment");
        prewrite(sg.pool_fd[k], SEG_SIZE);
    }
    int dfd = open(pool_dir, O_RDONLY | O_DIRECTORY);
    if (dfd < 0 || fsync(dfd) != 0)
        die("fsync pool dir");
    close(dfd);
    pool_ready = 1;
}

static void seg_open_common(int prez, int dsync)
{
    sg.prez = prez;
    sg.dsync = dsync;
    sg.head = 0;
    sg.cur = -1;
    sg.next_gen = (uint64_t)time(NULL) << 20;
    sg.ndrops = 0;
    sg.hstop = 0;
    sg.spare_fd = -1;
    sg.nspare = 0;
    if (prez) {
        seg_make_pool();
        for (int k = 0; k < SEG_POOL; k++)
            sg.pool_free[k] = 1;
    }
    if (pthread_create(&sg.helper, NULL, seg_helper, NULL) != 0)
        die("pthread_create");
    seg_next();
    run.seg_new = 0;
    run.seg_stall_us = 0;
    pthread_mutex_lock(&sg.hmu);
    run.new_total = run.new_max = 0;
    run.spares = 0;
    pthread_mutex_unlock(&sg.hmu);
    if (pthread_create(&sg.writer, NULL, seg_writer, NULL) != 0)
        die("pthread_create");
}

static void seg_open(void) { seg_open_common(0, 0); }
static void segz_open(void) { seg_open_common(1, 0); }
static void segzd_open(void) { seg_open_common(1, 1); }

static void seg_commit(struct sess *s, uint64_t id)
{
    struct req r = {.kind = RK_COMMIT, .id = id, .done = &s->done};
    /* payload: id, envelope, content */
    unsigned char *p = s->buf;
    memcpy(p, &id, 8);
    memcpy(p + 8, envelope, sizeof envelope);
    memcpy(p + 8 + sizeof envelope, content, MSG_SIZE);
    r.payload = p;
    r.len = 8 + sizeof envelope + MSG_SIZE;
    q_push(&r);
    sem_wait(&s->done);
    s->seg_of[id % 4] = r.seg;
}

static struct req *small_req(enum req_kind kind, uint64_t id, int seg)
{
    struct req *r = calloc(1, sizeof *r + 32);
    if (!r)
        die("calloc");
    r->kind = kind;
    r->id = id;
    r->seg = seg;
    r->payload = (unsigned char *)(r + 1);
    memcpy(r->payload, &id, 8);
    /* progress: recipient 0 delivered, time, status code */
    uint32_t rc[4] = {0, 1, (uint32_t)time(NULL), 250};
    if (kind == RK_PROGRESS) {
        memcpy(r->payload + 8, rc, sizeof rc);
        r->len = 8 + sizeof rc;
    } else {
        r->len = 8;
    }
    return r;
}

static void seg_progress(struct sess *s, uint64_t id)
{
    (void)s;
    q_push(small_req(RK_PROGRESS, id, 0));
}

static void seg_retire(struct sess *s, uint64_t id)
{
    q_push(small_req(RK_RETIRE, id, s->seg_of[id % 4]));
}

static void seg_close(void)
{
    q_stop();
    pthread_join(sg.writer, NULL);
    pthread_mutex_lock(&sg.hmu);
    while (sg.ndrops > 0)
        pthread_cond_wait(&sg.hcv, &sg.hmu);   /* let queued drops finish (and be timed) */
    sg.hstop = 1;
    pthread_cond_broadcast(&sg.hcv);
    pthread_mutex_unlock(&sg.hmu);
    pthread_join(sg.helper, NULL);
    for (int i = sg.head; i <= sg.cur; i++)
        if (sg.segs[i].pooled < 0)
            close(sg.segs[i].fd);
    if (sg.spare_fd >= 0)
        close(sg.spare_fd);
}

/* ---------- candidate (b): RocksDB ---------- */

static struct {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_writeoptions_t *wsync, *wnosync;
} rk;

static void rk_check(char *err, const char *what)
{
    if (err) {
        fprintf(stderr, "journal_probe: %s: %s\n", what, err);
        exit(1);
    }
}

static void rocks_open(void)
{
    char *err = NULL;
    rk.opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(rk.opts, 1);
    rocksdb_options_set_compression(rk.opts, rocksdb_no_compression);
    rocksdb_options_set_max_background_jobs(rk.opts, 2);
    char p[600];
    snprintf(p, sizeof p, "%s/rocksdb", run.dir);
    rk.db = rocksdb_open(rk.opts, p, &err);
    rk_check(err, "rocksdb_open");
    rk.wsync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(rk.wsync, 1);
    rk.wnosync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(rk.wnosync, 0);
}

static void rocks_commit(struct sess *s, uint64_t id)
{
    char key[18];
    key[0] = 'm';
    id_name(id, key + 1);
    unsigned char *p = s->buf;
    memcpy(p, envelope, sizeof envelope);
    memcpy(p + sizeof envelope, content, MSG_SIZE);
    char *err = NULL;
    rocksdb_put(rk.db, rk.wsync, key, 17, (char *)p, sizeof envelope + MSG_SIZE, &err);
    rk_check(err, "rocksdb_put");
}

static void rocks_progress(struct sess *s, uint64_t id)
{
    (void)s;
    char key[18];
    key[0] = 'p';
    id_name(id, key + 1);
    uint32_t rc[4] = {0, 1, (uint32_t)time(NULL), 250};
    char *err = NULL;
    rocksdb_put(rk.db, rk.wnosync, key, 17, (char *)rc, sizeof rc, &err);
    rk_check(err, "rocksdb_put");
}

static void rocks_retire(struct sess *s, uint64_t id)
{
    (void)s;
    char key[18];
    id_name(id, key + 1);
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    key[0] = 'm';
    rocksdb_writebatch_delete(b, key, 17);
    key[0] = 'p';
    rocksdb_writebatch_delete(b, key, 17);
    char *err = NULL;
    rocksdb_write(rk.db, rk.wnosync, b, &err);
    rk_check(err, "rocksdb_write");
    rocksdb_writebatch_destroy(b);
}

static void rocks_close(void)
{
    rocksdb_close(rk.db);
    rocksdb_writeoptions_destroy(rk.wsync);
    rocksdb_writeoptions_destroy(rk.wnosync);
    rocksdb_options_destroy(rk.opts);
}

/* ---------- a committer thread for LMDB and SQLite ---------- */

static void (*committer_apply)(struct req *batch);   /* one transaction, durable on return */
static pthread_t committer;

static void *committer_main(void *unused)
{
    (void)unused;
    struct req *batch;
    while ((batch = q_take_batch())) {
        committer_apply(batch);
        unsigned long commits = 0;
        struct req *r = batch;
        while (r) {
            struct req *next = r->next;
            if (r->kind == RK_COMMIT) {
                commits++;
                sem_post(r->done);
            } else {
                free(r);
            }
            r = next;
        }
        atomic_fetch_add(&run.syncs, 1);
        atomic_fetch_add(&run.synced_commits, commits);
    }
    return NULL;
}

static void committer_start(void (*apply)(struct req *))
{
    committer_apply = apply;
    if (pthread_create(&committer, NULL, committer_main, NULL) != 0)
        die("pthread_create");
}

static void committer_stop(void)
{
    q_stop();
    pthread_join(committer, NULL);
}

static void queued_commit(struct sess *s, uint64_t id)
{
    struct req r = {.kind = RK_COMMIT, .id = id, .done = &s->done, .payload = s->buf};
    memcpy(s->buf, envelope, sizeof envelope);
    memcpy(s->buf + sizeof envelope, content, MSG_SIZE);
    r.len = sizeof envelope + MSG_SIZE;
    q_push(&r);
    sem_wait(&s->done);
}

static void queued_progress(struct sess *s, uint64_t id)
{
    (void)s;
    q_push(small_req(RK_PROGRESS, id, 0));
}

static void queued_retire(struct sess *s, uint64_t id)
{
    (void)s;
    q_push(small_req(RK_RETIRE, id, 0));
}

/* ---------- candidate (b): LMDB ---------- */

static struct {
    MDB_env *env;
    MDB_dbi dbi;
} lm;

static void lm_check(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "journal_probe: %s: %s\n", what, mdb_strerror(rc));
        exit(1);
    }
}

static void lmdb_apply(struct req *batch)
{
    MDB_txn *txn;
    lm_check(mdb_txn_begin(lm.env, NULL, 0, &txn), "mdb_txn_begin");
    for (struct req *r = batch; r; r = r->next) {
        char key[18];
        id_name(r->id, key + 1);
        MDB_val k = {17, key};
        if (r->kind == RK_COMMIT) {
            key[0] = 'm';
            MDB_val v = {r->len, r->payload};
            lm_check(mdb_put(txn, lm.dbi, &k, &v, 0), "mdb_put");
        } else if (r->kind == RK_PROGRESS) {
            key[0] = 'p';
            MDB_val v = {r->len, r->payload};
            lm_check(mdb_put(txn, lm.dbi, &k, &v, 0), "mdb_put");
        } else {
            key[0] = 'm';
            int rc = mdb_del(txn, lm.dbi, &k, NULL);
            if (rc != MDB_NOTFOUND)
                lm_check(rc, "mdb_del");
            key[0] = 'p';
            rc = mdb_del(txn, lm.dbi, &k, NULL);
            if (rc != MDB_NOTFOUND)
                lm_check(rc, "mdb_del");
        }
    }
    lm_check(mdb_txn_commit(txn), "mdb_txn_commit");
}

static void lmdb_open(void)
{
    lm_check(mdb_env_create(&lm.env), "mdb_env_create");
    lm_check(mdb_env_set_mapsize(lm.env, (size_t)8 << 30), "mdb_env_set_mapsize");
    char p[600];
    snprintf(p, sizeof p, "%s/lmdb", run.dir);
    if (mkdir(p, 0700) != 0)
        die("mkdir lmdb");
    lm_check(mdb_env_open(lm.env, p, 0, 0600), "mdb_env_open");
    MDB_txn *txn;
    lm_check(mdb_txn_begin(lm.env, NULL, 0, &txn), "mdb_txn_begin");
    lm_check(mdb_dbi_open(txn, NULL, 0, &lm.dbi), "mdb_dbi_open");
    lm_check(mdb_txn_commit(txn), "mdb_txn_commit");
    committer_start(lmdb_apply);
}

static void lmdb_close(void)
{
    committer_stop();
    mdb_env_close(lm.env);
}

/* ---------- candidate (b): SQLite ---------- */

static struct {
    sqlite3 *db;
    sqlite3_stmt *ins_m, *ins_p, *del_m, *del_p;
} sq;

static void sq_exec(const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(sq.db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "journal_probe: sqlite: %s: %s\n", sql, err ? err : "?");
        exit(1);
    }
}

static void sq_step(sqlite3_stmt *st)
{
    if (sqlite3_step(st) != SQLITE_DONE) {
        fprintf(stderr, "journal_probe: sqlite step: %s\n", sqlite3_errmsg(sq.db));
        exit(1);
    }
    sqlite3_reset(st);
}

static void sqlite_apply(struct req *batch)
{
    sq_exec("BEGIN");
    for (struct req *r = batch; r; r = r->next) {
        sqlite3_int64 id = (sqlite3_int64)r->id;
        if (r->kind == RK_COMMIT) {
            sqlite3_bind_int64(sq.ins_m, 1, id);
            sqlite3_bind_blob(sq.ins_m, 2, r->payload, (int)r->len, SQLITE_STATIC);
            sq_step(sq.ins_m);
        } else if (r->kind == RK_PROGRESS) {
            sqlite3_bind_int64(sq.ins_p, 1, id);
            sqlite3_bind_blob(sq.ins_p, 2, r->payload, (int)r->len, SQLITE_STATIC);
            sq_step(sq.ins_p);
        } else {
            sqlite3_bind_int64(sq.del_m, 1, id);
            sq_step(sq.del_m);
            sqlite3_bind_int64(sq.del_p, 1, id);
            sq_step(sq.del_p);
        }
    }
    sq_exec("COMMIT");
}

static void sqlite_open(void)
{
    char p[600];
    snprintf(p, sizeof p, "%s/queue.db", run.dir);
    if (sqlite3_open(p, &sq.db) != SQLITE_OK)
        die("sqlite3_open");
    sq_exec("PRAGMA journal_mode=WAL");
    sq_exec("PRAGMA synchronous=FULL");
    sq_exec("CREATE TABLE m(id INTEGER PRIMARY KEY, body BLOB)");
    sq_exec("CREATE TABLE p(id INTEGER, rec BLOB)");
    sq_exec("CREATE INDEX p_id ON p(id)");
    if (sqlite3_prepare_v2(sq.db, "INSERT INTO m VALUES(?,?)", -1, &sq.ins_m, NULL) ||
        sqlite3_prepare_v2(sq.db, "INSERT INTO p VALUES(?,?)", -1, &sq.ins_p, NULL) ||
        sqlite3_prepare_v2(sq.db, "DELETE FROM m WHERE id=?", -1, &sq.del_m, NULL) ||
        sqlite3_prepare_v2(sq.db, "DELETE FROM p WHERE id=?", -1, &sq.del_p, NULL)) {
        fprintf(stderr, "journal_probe: sqlite prepare: %s\n", sqlite3_errmsg(sq.db));
        exit(1);
    }
    committer_start(sqlite_apply);
}

static void sqlite_close(void)
{
    committer_stop();
    sqlite3_finalize(sq.ins_m);
    sqlite3_finalize(sq.ins_p);
    sqlite3_finalize(sq.del_m);
    sqlite3_finalize(sq.del_p);
    sqlite3_close(sq.db);
}

/* ---------- candidate (c): files, per-file fdatasync by a pool ---------- */

static struct {
    int incoming_fd, queue_fd;
    pthread_t th[POOL_THREADS];
    int nth;
    /* the shared directory fsync (files-pool) */
    pthread_mutex_t dmu;
    pthread_cond_t dcv;
    unsigned long dir_req, dir_done;
    int dir_busy;
} fp = {.dmu = PTHREAD_MUTEX_INITIALIZER, .dcv = PTHREAD_COND_INITIALIZER};

static int open_subdir(const char *name)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", run.dir, name);
    if (mkdir(p, 0700) != 0)
        die("mkdir");
    int fd = open(p, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        die("open dir");
    return fd;
}

/* Makes queue/'s entries made so far durable: one fsync for everyone waiting. */
static void dir_sync_shared(void)
{
    pthread_mutex_lock(&fp.dmu);
    unsigned long ticket = ++fp.dir_req;
    while (fp.dir_done < ticket) {
        if (!fp.dir_busy) {
            fp.dir_busy = 1;
            unsigned long target = fp.dir_req;
            pthread_mutex_unlock(&fp.dmu);
            if (fsync(fp.queue_fd) != 0)
                die("fsync queue dir");
            pthread_mutex_lock(&fp.dmu);
            fp.dir_busy = 0;
            fp.dir_done = target;
            pthread_cond_broadcast(&fp.dcv);
        } else {
            pthread_cond_wait(&fp.dcv, &fp.dmu);
        }
    }
    pthread_mutex_unlock(&fp.dmu);
}

static void *pool_main(void *unused)
{
    (void)unused;
    struct req *r;
    while ((r = q_take_one())) {
        if (r->kind == RK_COMMIT) {
            if (fdatasync(r->fd) != 0)
                die("fdatasync");
            close(r->fd);
            dir_sync_shared();
            atomic_fetch_add(&run.syncs, 1);
            atomic_fetch_add(&run.synced_commits, 1);
            sem_post(r->done);
        } else {
            char name[17];
            id_name(r->id, name);
            if (unlinkat(fp.queue_fd, name, 0) != 0)
                die("unlink");
            free(r);
        }
    }
    return NULL;
}

static void pool_open(void)
{
    fp.incoming_fd = -1;
    fp.queue_fd = open_subdir("queue");
    fp.dir_req = fp.dir_done = 0;
    fp.dir_busy = 0;
    fp.nth = run.nsess < POOL_THREADS ? run.nsess : POOL_THREADS;
    for (int i = 0; i < fp.nth; i++)
        if (pthread_create(&fp.th[i], NULL, pool_main, NULL) != 0)
            die("pthread_create");
}

static void write_file(int dirfd, uint64_t id, unsigned char *buf, int keep_open, int *fd_out)
{
    char name[17];
    id_name(id, name);
    size_t len = encode_queue_file(buf, id);
    int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || write(fd, buf, len) != (ssize_t)len)
        die("write queue file");
    if (keep_open)
        *fd_out = fd;
    else
        close(fd);
}

static void pool_commit(struct sess *s, uint64_t id)
{
    struct req r = {.kind = RK_COMMIT, .id = id, .done = &s->done};
    write_file(fp.queue_fd, id, s->buf, 1, &r.fd);
    q_push(&r);
    sem_wait(&s->done);
}

/* Progress as the queue appends it today: open, append a record, close. */
static void file_progress(struct sess *s, uint64_t id)
{
    (void)s;
    char name[17];
    id_name(id, name);
    unsigned char rec[32];
    rec[0] = 'D';
    put_u32(rec + 1, 20);
    memset(rec + 5, 0, 20);
    put_u32(rec + 25, crc32_buf(0, rec, 25));
    int fd = openat(fp.queue_fd, name, O_WRONLY | O_APPEND);
    if (fd < 0 || write(fd, rec, 29) != 29)
        die("append progress");
    close(fd);
}

static void file_retire(struct sess *s, uint64_t id)
{
    (void)s;
    q_push(small_req(RK_RETIRE, id, 0));
}

static void pool_close(void)
{
    q_stop();
    for (int i = 0; i < fp.nth; i++)
        pthread_join(fp.th[i], NULL);
    close(fp.queue_fd);
}

/* ---------- candidate (c): today's scheme ---------- */

static pthread_t today_th;

static void *today_sync(void *unused)
{
    (void)unused;
    struct req *batch;
    while ((batch = q_take_all())) {
        unsigned long commits = 0;
        for (struct req *r = batch; r; r = r->next)
            commits += r->kind == RK_COMMIT;
        if (commits && syncfs(fp.queue_fd) != 0)
            die("syncfs");
        if (commits) {
            atomic_fetch_add(&run.syncs, 1);
            atomic_fetch_add(&run.synced_commits, commits);
        }
        struct req *unlinks = NULL;
        struct req *r = batch;
        while (r) {
            struct req *next = r->next;
            if (r->kind == RK_COMMIT) {
                sem_post(r->done);
            } else {
                r->next = unlinks;
                unlinks = r;
            }
            r = next;
        }
        while (unlinks) {
            r = unlinks;
            unlinks = r->next;
            char name[17];
            id_name(r->id, name);
            if (unlinkat(fp.queue_fd, name, 0) != 0)
                die("unlink");
            free(r);
        }
    }
    return NULL;
}

static void today_open(void)
{
    fp.incoming_fd = open_subdir("incoming");
    fp.queue_fd = open_subdir("queue");
    if (pthread_create(&today_th, NULL, today_sync, NULL) != 0)
        die("pthread_create");
}

static void today_commit(struct sess *s, uint64_t id)
{
    char name[17];
    id_name(id, name);
    write_file(fp.incoming_fd, id, s->buf, 0, NULL);
    if (renameat(fp.incoming_fd, name, fp.queue_fd, name) != 0)
        die("rename");
    struct req r = {.kind = RK_COMMIT, .id = id, .done = &s->done};
    q_push(&r);
    sem_wait(&s->done);
}

static void today_close(void)
{
    q_stop();
    pthread_join(today_th, NULL);
    close(fp.incoming_fd);
    close(fp.queue_fd);
}

/* ---------- the table of candidates ---------- */

struct cand {
    const char *name;
    void (*open)(void);
    void (*commit)(struct sess *s, uint64_t id);
    void (*progress)(struct sess *s, uint64_t id);
    void (*retire)(struct sess *s, uint64_t id);
    void (*close)(void);
    int only_one;   /* N = 1 only */
};

static void nop(struct sess *s, uint64_t id)
{
    (void)s;
    (void)id;
}

static const struct cand cands[] = {
    {"bare", bare_open, bare_commit, nop, nop, bare_close, 1},
    {"seg", seg_open, seg_commit, seg_progress, seg_retire, seg_close, 0},
    {"seg-prez", segz_open, seg_commit, seg_progress, seg_retire, seg_close, 0},
    {"seg-prez-dsync", segzd_open, seg_commit, seg_progress, seg_retire, seg_close, 0},
    {"rocksdb", rocks_open, rocks_commit, rocks_progress, rocks_retire, rocks_close, 0},
    {"lmdb", lmdb_open, queued_commit, queued_progress, queued_retire, lmdb_close, 0},
    {"sqlite", sqlite_open, queued_commit, queued_progress, queued_retire, sqlite_close, 0},
    {"files-pool", pool_open, pool_commit, file_progress, file_retire, pool_close, 0},
    {"today", today_open, today_commit, file_progress, file_retire, today_close, 0},
};
#define NCANDS (sizeof cands / sizeof cands[0])

/* ---------- sessions ---------- */

static const struct cand *cur_cand;

static void *session_main(void *arg)
{
    struct sess *s = arg;
    while (!atomic_load(&run.stop)) {
        uint64_t id = ((uint64_t)s->idx << 40) | s->seq;
        int m0 = atomic_load(&run.measuring);
        double t0 = now_s();
        cur_cand->commit(s, id);
        double t1 = now_s();
        if (m0 && atomic_load(&run.measuring)) {
            if (s->nlat == s->cap) {
                s->cap = s->cap ? s->cap * 2 : 4096;
                s->lat = realloc(s->lat, s->cap * sizeof *s->lat);
                if (!s->lat)
                    die("realloc");
            }
            s->lat[s->nlat++] = t1 - t0;
            s->commits++;
        }
        if (s->seq >= 1)
            cur_cand->progress(s, id - 1);
        if (s->seq >= 2)
            cur_cand->retire(s, id - 2);
        s->seq++;
    }
    return NULL;
}

/* ---------- the noisy neighbour ---------- */

static pid_t neighbour_start(double seconds)
{
    char d[600];
    snprintf(d, sizeof d, "%s/neighbour", run.dir);
    if (mkdir(d, 0700) != 0)
        die("mkdir neighbour");
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid > 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    static unsigned char data[64 << 10];
    memset(data, 'n', sizeof data);
    double end = now_s() + seconds, next = now_s();
    for (unsigned long i = 0; now_s() < end; i++) {
        char p[700];
        snprintf(p, sizeof p, "%s/f%lu", d, i);
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            (void)!write(fd, data, sizeof data);
            close(fd);
        }
        if (i >= 32) {
            snprintf(p, sizeof p, "%s/f%lu", d, i - 32);
            unlink(p);
        }
        next += 1.0 / 150;
        double w = next - now_s();
        if (w > 0) {
            struct timespec ts = {(time_t)w, (long)((w - (double)(time_t)w) * 1e9)};
            nanosleep(&ts, NULL);
        }
    }
    _exit(0);
}

static void neighbour_stop(pid_t pid)
{
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

/* ---------- measuring ---------- */

struct result {
    char cond[8];
    int cand, n, round;
    double rate, p50, p95, cpu_us, batch, load0, load1, others;
    double bare_p50;   /* --paired-bare: p50 of the bare run just before, or 0 */
    unsigned long commits;
    char extra[160];
};

static struct result results[MAX_RUNS];
static int nresults;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

/* Busy CPU seconds of the whole machine (all CPUs) from /proc/stat. */
static double machine_busy_s(void)
{
    FILE *f = fopen("/proc/stat", "r");
    unsigned long long v[10] = {0};
    if (!f)
        return 0;
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
               &v[7]) != 8) {
        fclose(f);
        return 0;
    }
    fclose(f);
    double hz = (double)sysconf(_SC_CLK_TCK);
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / hz;   /* less idle, iowait */
}

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    return remove(path);
}

static void rm_tree(const char *path)
{
    nftw(path, rm_entry, 32, FTW_DEPTH | FTW_PHYS);
}

static const char *scratch;
static int run_counter;
static double last_bare_p50;   /* --paired-bare */
static int paired_bare;

static void run_one(int ci, int n, double seconds, int noisy, int round)
{
    const struct cand *c = &cands[ci];
    memset(&run, 0, sizeof run);
    snprintf(run.dir, sizeof run.dir, "%s/run.%d", scratch, run_counter++);
    if (mkdir(run.dir, 0700) != 0)
        die("mkdir run dir");
    run.nsess = n;
    q.head = q.tail = NULL;
    q.ncommit = 0;
    q.stop = 0;
    cur_cand = c;
    c->open();
    sync();
    pid_t nb = noisy ? neighbour_start(seconds + 3) : 0;

    static struct sess sess[MAX_SESSIONS];
    for (int i = 0; i < n; i++) {
        memset(&sess[i], 0, sizeof sess[i]);
        sess[i].idx = i + 1;
        sem_init(&sess[i].done, 0, 0);
        sess[i].buf = malloc(2 * MSG_SIZE);
        if (!sess[i].buf)
            die("malloc");
        if (pthread_create(&sess[i].th, NULL, session_main, &sess[i]) != 0)
            die("pthread_create");
    }
    struct timespec warm = {0, 500 * 1000 * 1000};
    nanosleep(&warm, NULL);
    double la[1];
    getloadavg(la, 1);
    double load0 = la[0];
    unsigned long syncs0 = atomic_load(&run.syncs), sc0 = atomic_load(&run.synced_commits);
    double cpu0 = cpu_s(), busy0 = machine_busy_s(), t0 = now_s();
    atomic_store(&run.measuring, 1);
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
    atomic_store(&run.measuring, 0);
    double t1 = now_s(), cpu1 = cpu_s(), busy1 = machine_busy_s();
    unsigned long syncs1 = atomic_load(&run.syncs), sc1 = atomic_load(&run.synced_commits);
    getloadavg(la, 1);
    atomic_store(&run.stop, 1);
    for (int i = 0; i < n; i++)
        pthread_join(sess[i].th, NULL);
    c->close();
    if (noisy)
        neighbour_stop(nb);

    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += sess[i].nlat;
    double *all = malloc((total + 1) * sizeof *all);
    if (!all)
        die("malloc");
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        memcpy(all + k, sess[i].lat, sess[i].nlat * sizeof *all);
        k += sess[i].nlat;
        free(sess[i].lat);
        free(sess[i].buf);
        sem_destroy(&sess[i].done);
    }
    qsort(all, total, sizeof *all, cmp_double);
    struct result *r = &results[nresults < MAX_RUNS ? nresults++ : MAX_RUNS - 1];
    memset(r, 0, sizeof *r);
    snprintf(r->cond, sizeof r->cond, "%s", noisy ? "noisy" : "quiet");
    r->cand = ci;
    r->n = n;
    r->round = round;
    r->commits = total;
    r->rate = (double)total / (t1 - t0);
    r->p50 = total ? all[total / 2] * 1e3 : 0;
    r->p95 = total ? all[(size_t)((double)total * 0.95)] * 1e3 : 0;
    r->cpu_us = total ? (cpu1 - cpu0) / (double)total * 1e6 : 0;
    r->batch = syncs1 > syncs0 ? (double)(sc1 - sc0) / (double)(syncs1 - syncs0) : 0;
    if (ci == 0)
        last_bare_p50 = r->p50;
    else if (paired_bare && n == 1)
        r->bare_p50 = last_bare_p50;
    r->load0 = load0;
    r->load1 = la[0];
    /* other processes' CPU during the window, as a share of the whole machine */
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    r->others = ((busy1 - busy0) - (cpu1 - cpu0)) / ((t1 - t0) * (double)ncpu) * 100;
    if (r->others < 0)
        r->others = 0;
    if (run.seg_new || run.seg_drop || run.pool_miss)
        snprintf(r->extra, sizeof r->extra, "segs new %lu (stall %.1f ms, make avg %.1f max %.1f ms) dropped %lu (unlink avg %.1f max %.1f ms) pool-miss %lu",
                 (unsigned long)run.seg_new, (double)run.seg_stall_us / 1e3,
                 run.spares ? run.new_total / (double)run.spares * 1e3 : 0, run.new_max * 1e3,
                 (unsigned long)run.seg_drop,
                 run.seg_drop && !sg.prez ? run.drop_total / (double)run.seg_drop * 1e3 : 0, run.drop_max * 1e3,
                 run.pool_miss);
    free(all);
    printf("run %-5s r%d %-15s N=%-2d %8.0f commits/s  p50 %7.3f ms  p95 %7.3f ms  cpu %6.1f us/commit  %6.1f commits/sync  load %.2f-%.2f  others %3.0f%%  %s",
           r->cond, round, c->name, n, r->rate, r->p50, r->p95, r->cpu_us, r->batch, r->load0, r->load1, r->others,
           r->extra);
    if (r->bare_p50 > 0)
        printf("  p50-bare %+.3f ms", r->p50 - r->bare_p50);
    printf("\n");
    fflush(stdout);
    double rm0 = now_s();
    rm_tree(run.dir);
    sync();
    if (now_s() - rm0 > 2)
        fprintf(stderr, "journal_probe: removing the run's files took %.1f s\n", now_s() - rm0);
    struct timespec settle = {0, 300 * 1000 * 1000};
    nanosleep(&settle, NULL);
}

static void summary(const char *cond)
{
    int any = 0;
    for (int i = 0; i < nresults; i++)
        any |= strcmp(results[i].cond, cond) == 0;
    if (!any)
        return;
    printf("\nsummary (%s): median [min-max] over rounds\n", cond);
    printf("%-15s %3s %24s %26s %26s %22s %8s\n", "candidate", "N", "commits/s", "p50 ms", "p95 ms", "cpu us/commit",
           "batch");
    int ns[] = {1, 20, 50, 2, 5, 10, 100, 200};
    for (size_t ci = 0; ci < NCANDS; ci++) {
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
            double v[6][64];
            int k = 0, kb = 0;
            for (int i = 0; i < nresults && k < 64; i++) {
                struct result *r = &results[i];
                if (strcmp(r->cond, cond) || r->cand != (int)ci || r->n != ns[ni])
                    continue;
                v[0][k] = r->rate;
                v[1][k] = r->p50;
                v[2][k] = r->p95;
                v[3][k] = r->cpu_us;
                v[4][k] = r->batch;
                if (r->bare_p50 > 0)
                    v[5][kb++] = r->p50 - r->bare_p50;
                k++;
            }
            if (!k)
                continue;
            for (int j = 0; j < 5; j++)
                qsort(v[j], (size_t)k, sizeof v[j][0], cmp_double);
            printf("%-15s %3d %8.0f [%6.0f-%6.0f] %8.3f [%6.3f-%6.3f] %8.3f [%6.3f-%6.3f] %6.1f [%5.1f-%5.1f] %8.1f",
                   cands[ci].name, ns[ni], v[0][k / 2], v[0][0], v[0][k - 1], v[1][k / 2], v[1][0], v[1][k - 1],
                   v[2][k / 2], v[2][0], v[2][k - 1], v[3][k / 2], v[3][0], v[3][k - 1], v[4][k / 2]);
            if (kb) {
                qsort(v[5], (size_t)kb, sizeof v[5][0], cmp_double);
                printf("  p50-bare %+.3f [%+.3f %+.3f]", v[5][kb / 2], v[5][0], v[5][kb - 1]);
            }
            printf("\n");
        }
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: journal_probe --dir SCRATCH [--rounds R] [--seconds S] [--sessions 1,20,50]\n"
                    "                     [--cands a,b,...] [--paired-bare] [--noisy] [--noisy-only]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int rounds = 3, noisy = 0, noisy_only = 0;
    double seconds = 3;
    int ns[16] = {1, 20, 50}, nn = 3;
    int use[NCANDS];
    for (size_t i = 0; i < NCANDS; i++)
        use[i] = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--dir") && v) {
            scratch = v;
            i++;
        } else if (!strcmp(a, "--rounds") && v) {
            rounds = atoi(v);
            i++;
        } else if (!strcmp(a, "--seconds") && v) {
            seconds = atof(v);
            i++;
        } else if (!strcmp(a, "--sessions") && v) {
            nn = 0;
            char *copy = strdup(v), *save = NULL;
            for (char *t = strtok_r(copy, ",", &save); t && nn < 16; t = strtok_r(NULL, ",", &save))
                ns[nn++] = atoi(t);
            free(copy);
            i++;
        } else if (!strcmp(a, "--cands") && v) {
            for (size_t k = 0; k < NCANDS; k++)
                use[k] = 0;
            char *copy = strdup(v), *save = NULL;
            for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                size_t k;
                for (k = 0; k < NCANDS && strcmp(cands[k].name, t); k++)
                    ;
                if (k == NCANDS) {
                    fprintf(stderr, "journal_probe: no candidate %s\n", t);
                    exit(2);
                }
                use[k] = 1;
            }
            free(copy);
            i++;
        } else if (!strcmp(a, "--paired-bare")) {
            paired_bare = 1;
        } else if (!strcmp(a, "--noisy")) {
            noisy = 1;
        } else if (!strcmp(a, "--noisy-only")) {
            noisy = noisy_only = 1;
        } else {
            usage();
        }
    }
    if (!scratch || rounds < 1 || seconds <= 0)
        usage();
    for (int i = 0; i < nn; i++)
        if (ns[i] < 1 || ns[i] > MAX_SESSIONS)
            usage();
    if (mkdir(scratch, 0700) != 0 && errno != EEXIST)
        die(scratch);
    signal(SIGPIPE, SIG_IGN);
    crc_init();
    make_content();
    snprintf(pool_dir, sizeof pool_dir, "%s/pool", scratch);

    double la[3];
    getloadavg(la, 3);
    printf("journal_probe: scratch %s, %d round(s) of %.1f s per run (+0.5 s warm-up), load average %.2f %.2f %.2f\n",
           scratch, rounds, seconds, la[0], la[1], la[2]);
    double start = now_s();
    int list[NCANDS], nl = 0;
    for (size_t i = 0; i < NCANDS; i++)
        if (use[i])
            list[nl++] = (int)i;
    int total_rounds = (noisy_only ? 0 : rounds) + (noisy ? 1 : 0);
    for (int round = 0; round < total_rounds; round++) {
        int is_noisy = noisy_only || round == rounds;
        for (int ni = 0; ni < nn; ni++) {
            for (int j = 0; j < nl; j++) {
                int ci = list[(j + round) % nl];   /* a different first candidate each round */
                if (cands[ci].only_one && ns[ni] != 1)
                    continue;
                if (paired_bare && ns[ni] == 1) {
                    if (ci == 0)
                        continue;
                    run_one(0, 1, seconds, is_noisy, round + 1);   /* the disk's latency right now */
                }
                run_one(ci, ns[ni], seconds, is_noisy, round + 1);
            }
        }
    }
    summary("quiet");
    summary("noisy");
    getloadavg(la, 3);
    printf("\njournal_probe: %.0f s in all; load average at the end %.2f %.2f %.2f\n", now_s() - start, la[0], la[1],
           la[2]);
    if (pool_ready) {
        for (int k = 0; k < SEG_POOL; k++)
            close(sg.pool_fd[k]);
        rm_tree(pool_dir);
    }
    rmdir(scratch);
    return 0;
}
