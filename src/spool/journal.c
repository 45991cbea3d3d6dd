/* journal: the spool's group-committed segment log (see journal.h for the
 * format, the durability promise and the recovery rules). */
#include "spool/journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "spool/journal_impl.h"
#include "spool/queue_file.h"
#include "util/fsops.h"
#include "util/log.h"
#include "util/mem.h"


/* ---- encoding ---------------------------------------------------------- */

void journal_put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

void journal_put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

uint32_t journal_get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

uint64_t journal_get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

size_t journal_rec_size(uint32_t len)
{
    return (JOURNAL_RECORD_HEADER + (size_t)len + 7) & ~(size_t)7;
}

static void seg_header(unsigned char h[JOURNAL_SEGMENT_HEADER], uint64_t seq, uint64_t segsize)
{
    memset(h, 0, JOURNAL_SEGMENT_HEADER);
    memcpy(h, SEG_MAGIC, 8);
    journal_put32(h + 8, SEG_VERSION);
    journal_put32(h + 12, JOURNAL_SEGMENT_HEADER);
    journal_put64(h + 16, seq);
    journal_put64(h + 24, segsize);
    journal_put32(h + 60, queue_file_crc32(0, h, 60));
}

/* Writes a record (header, payload, padding) at p: journal_rec_size(len) bytes. */
void journal_encode(unsigned char *p, uint64_t seq, uint32_t type, const void *data, uint32_t len)
{
    size_t n = journal_rec_size(len);
    journal_put32(p + 4, len);
    journal_put32(p + 8, type);
    journal_put32(p + 12, 0);
    journal_put64(p + 16, seq);
    if (len)
        memcpy(p + JOURNAL_RECORD_HEADER, data, len);
    memset(p + JOURNAL_RECORD_HEADER + len, 0, n - JOURNAL_RECORD_HEADER - len);
    journal_put32(p, queue_file_crc32(0, p + 4, JOURNAL_RECORD_HEADER - 4 + (size_t)len));
}

void journal_seg_name(char *out, size_t size, const char *prefix, uint64_t n)
{
    snprintf(out, size, "%s-%016" PRIx64, prefix, n);
}

/* Reads and checks the record at off of segment seq (fd). 1: valid, with
 * *type, *len and the payload in *pl (grown as needed); 0: not a valid
 * record (*own says whether its header carried this segment's seq, i.e. a
 * record of ours that is torn or damaged); -1: I/O error. */
int journal_read_record(struct journal *j, int fd, uint64_t seq, uint32_t off, uint32_t *type, uint32_t *len,
                       unsigned char **pl, size_t *plcap, int *own)
{
    unsigned char h[JOURNAL_RECORD_HEADER];
    *own = 0;
    if ((uint64_t)off + JOURNAL_RECORD_HEADER > j->segsize)
        return 0;
    if (fsops_pread_all(fd, h, sizeof h, off) != 0)
        return -1;
    *len = journal_get32(h + 4);
    *type = journal_get32(h + 8);
    *own = journal_get64(h + 16) == seq;
    if (!*own || journal_get32(h + 12) != 0 || *type == 0 ||
        *len > j->segsize - off - JOURNAL_RECORD_HEADER)
        return 0;
    if (*len > *plcap) {
        unsigned char *n = realloc(*pl, *len);
        if (!n)
            return -1;
        *pl = n;
        *plcap = *len;
    }
    if (*len && fsops_pread_all(fd, *pl, *len, (off_t)off + JOURNAL_RECORD_HEADER) != 0)
        return -1;
    uint32_t crc = queue_file_crc32(0, h + 4, JOURNAL_RECORD_HEADER - 4);
    crc = queue_file_crc32(crc, *pl, *len);
    return crc == journal_get32(h) ? 1 : 0;
}

/* ---- the segment table (under segmu) ----------------------------------- */

int journal_seg_add(struct journal *j, uint64_t seq, int fd)
{
    if (j->nsegs == j->capsegs) {
        size_t cap = j->capsegs ? j->capsegs * 2 : 16;
        struct seg *n = realloc(j->segs, cap * sizeof *n);
        if (!n)
            return -1;
        j->segs = n;
        j->capsegs = cap;
    }
    size_t i = j->nsegs;
    while (i > 0 && j->segs[i - 1].seq > seq) {
        j->segs[i] = j->segs[i - 1];
        i--;
    }
    j->segs[i] = (struct seg){.seq = seq, .fd = fd};
    j->nsegs++;
    return 0;
}

struct seg *journal_seg_find(struct journal *j, uint64_t seq)
{
    size_t lo = 0, hi = j->nsegs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (j->segs[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < j->nsegs && j->segs[lo].seq == seq ? &j->segs[lo] : NULL;
}

int journal_free_push(struct journal *j, uint64_t n)
{
    if (j->nfree == j->capfree) {
        size_t cap = j->capfree ? j->capfree * 2 : 16;
        uint64_t *m = realloc(j->freenames, cap * sizeof *m);
        if (!m)
            return -1;
        j->freenames = m;
        j->capfree = cap;
    }
    j->freenames[j->nfree++] = n;
    return 0;
}

/* ---- making segments --------------------------------------------------- */

static const unsigned char zeros[65536];

/* A new file of segsize bytes made as tmp, header for seq, synced, renamed
 * to name, directory synced. */
static int create_file(struct journal *j, const char *tmp, uint64_t seq, const char *name, int *poisoned)
{
    int fd = journal_file_openat(j->dirfd, tmp, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return -1;
    unsigned char h[JOURNAL_SEGMENT_HEADER];
    seg_header(h, seq, j->segsize);
    int rc = fsops_pwrite_all(fd, h, sizeof h, 0);
    for (uint64_t off = JOURNAL_SEGMENT_HEADER; rc == 0 && off < j->segsize;) {
        uint64_t n = j->segsize - off < sizeof zeros ? j->segsize - off : sizeof zeros;
        rc = fsops_pwrite_all(fd, zeros, (size_t)n, (off_t)off);
        off += n;
    }
    if (rc == 0)
        rc = fsops_fsync(fd);
    if (rc == 0)
        rc = fsops_renameat(j->dirfd, tmp, j->dirfd, name);
    if (rc != 0) {
        int e = errno;
        close(fd);
        (void)fsops_unlinkat(j->dirfd, tmp, 0);
        errno = e;
        return -1;
    }
    if (fsops_fsync(j->dirfd) != 0) {
        int e = errno;
        close(fd);
        *poisoned = 1;
        errno = e;
        return -1;
    }
    return fd;
}

/* A free file rewritten for seq (header synced before its new name). */
static int recycle_segment(struct journal *j, uint64_t freen, uint64_t seq, const char *name, int *poisoned)
{
    char fname[40];
    journal_seg_name(fname, sizeof fname, "free", freen);
    int fd = journal_file_openat(j->dirfd, fname, O_RDWR, 0);
    if (fd < 0)
        return -1;
    unsigned char h[JOURNAL_SEGMENT_HEADER];
    seg_header(h, seq, j->segsize);
    int rc = fsops_pwrite_all(fd, h, sizeof h, 0);
    if (rc == 0)
        rc = fsops_fdatasync(fd);
    if (rc == 0)
        rc = fsops_renameat(j->dirfd, fname, j->dirfd, name);
    if (rc != 0) {
        int e = errno;
        close(fd);
        /* a failed write-back of the header: do not trust the file again */
        if (e == EIO)
            *poisoned = 1;
        errno = e;
        return -1;
    }
    if (fsops_fsync(j->dirfd) != 0) {
        int e = errno;
        close(fd);
        *poisoned = 1;
        errno = e;
        return -1;
    }
    return fd;
}

/* Makes the next segment the active one (writer thread, or open). */
static int next_segment(struct journal *j, int *poisoned)
{
    uint64_t seq = j->next_seq++;
    char name[40];
    journal_seg_name(name, sizeof name, "seg", seq);
    uint64_t freen = 0;
    int have_free = 0;
    pthread_rwlock_wrlock(&j->segmu);
    if (j->nfree > 0) {
        freen = j->freenames[--j->nfree];
        have_free = 1;
    }
    pthread_rwlock_unlock(&j->segmu);
    int fd = have_free ? recycle_segment(j, freen, seq, name, poisoned) : create_file(j, TMP_NAME, seq, name, poisoned);
    if (fd < 0) {
        int e = errno;
        if (have_free && !*poisoned) {
            pthread_rwlock_wrlock(&j->segmu);
            (void)journal_free_push(j, freen);
            pthread_rwlock_unlock(&j->segmu);
        }
        errno = e;
        return -1;
    }
    pthread_rwlock_wrlock(&j->segmu);
    int rc = journal_seg_add(j, seq, fd);
    if (rc == 0) {
        j->active_seq = seq;
        j->durable_off = JOURNAL_SEGMENT_HEADER;
    }
    pthread_rwlock_unlock(&j->segmu);
    if (rc != 0) {
        close(fd);
        *poisoned = 1;
        errno = ENOMEM;
        return -1;
    }
    j->active_fd = fd;
    j->off = JOURNAL_SEGMENT_HEADER;
    return 0;
}

/* ---- the writer -------------------------------------------------------- */

static void poison(struct journal *j, int err)
{
    pthread_mutex_lock(&j->mu);
    if (!j->poison)
        j->poison = err ? err : EIO;
    pthread_mutex_unlock(&j->mu);
    log_error("journal: write or sync failed (%s): refusing appends until reopened", strerror(err));
}

static void fail_from(struct req *r, struct req *end, int err)
{
    for (; r != end; r = r->next)
        r->err = err;
}

static int reserve(struct journal *j, size_t need)
{
    if (need <= j->bufcap)
        return 0;
    size_t cap = j->bufcap ? j->bufcap : 65536;
    while (cap < need)
        cap *= 2;
    unsigned char *n = realloc(j->buf, cap);
    if (!n)
        return -1;
    j->buf = n;
    j->bufcap = cap;
    return 0;
}

/* Writes buf[0..blen) at start of the active segment and, with sync (or
 * when it is a seal's), syncs it: everything written to the segment so far
 * is then durable. */
static int flush(struct journal *j, uint32_t start, size_t blen, int sync)
{
    if (blen && fsops_pwrite_all(j->active_fd, j->buf, blen, start) != 0)
        return errno ? errno : EIO;
    if (!sync)
        return 0;
    if (fsops_fdatasync(j->active_fd) != 0)
        return errno ? errno : EIO;
    pthread_rwlock_wrlock(&j->segmu);
    j->durable_off = j->off;
    pthread_rwlock_unlock(&j->segmu);
    return 0;
}

static int flush_sync(struct journal *j, uint32_t start, size_t blen)
{
    return flush(j, start, blen, 1);
}

/* Writes a batch; with sync its records are durable when it returns (or
 * failed: r->err), without they are written and wait for a later sync. */
static void write_batch(struct journal *j, struct req *batch, int sync)
{
    pthread_mutex_lock(&j->mu);
    int p = j->poison;
    pthread_mutex_unlock(&j->mu);
    if (p) {
        fail_from(batch, NULL, p);
        return;
    }
    struct req *unsynced = batch;
    uint32_t start = j->off;
    size_t blen = 0;
    for (struct req *r = batch; r; r = r->next) {
        size_t need = journal_rec_size(r->len);
        if (j->active_fd >= 0 && j->off + need + SEAL_SIZE > j->segsize) {
            if (reserve(j, blen + SEAL_SIZE) != 0) {
                fail_from(unsynced, NULL, ENOMEM);
                poison(j, ENOMEM);
                return;
            }
            journal_encode(j->buf + blen, j->active_seq, JOURNAL_TYPE_SEAL, NULL, 0);
            blen += SEAL_SIZE;
            j->off += SEAL_SIZE;
            int err = flush_sync(j, start, blen);
            if (err) {
                fail_from(unsynced, NULL, err);
                poison(j, err);
                return;
            }
            unsynced = r;
            blen = 0;
            j->active_fd = -1; /* the table keeps the descriptor for reads */
            pthread_rwlock_wrlock(&j->segmu);
            j->active_seq = 0;
            pthread_rwlock_unlock(&j->segmu);
        }
        if (j->active_fd < 0) {
            int poisoned = 0;
            if (next_segment(j, &poisoned) != 0) {
                int err = errno ? errno : EIO;
                fail_from(r, NULL, err);
                if (poisoned)
                    poison(j, err);
                else
                    log_error("journal: cannot make a segment: %s", strerror(err));
                return;
            }
            start = j->off;
        }
        if (reserve(j, blen + need) != 0) {
            fail_from(unsynced, NULL, ENOMEM);
            poison(j, ENOMEM);
            return;
        }
        journal_encode(j->buf + blen, j->active_seq, r->type, r->data, r->len);
        r->addr = (struct journal_addr){.seg = j->active_seq, .off = j->off};
        blen += need;
        j->off += (uint32_t)need;
    }
    if (blen || (sync && j->active_fd >= 0)) {
        int err = flush(j, start, blen, sync);
        if (err) {
            fail_from(unsynced, NULL, err);
            poison(j, err);
        }
    }
}

static void complete(struct req *list, int err)
{
    while (list) {
        struct req *next = list->next;
        if (err && !list->err)
            list->err = err;
        list->cb(list->arg, list->err, list->addr);
        free(list);
        list = next;
    }
}

static int poisoned(struct journal *j)
{
    pthread_mutex_lock(&j->mu);
    int p = j->poison;
    pthread_mutex_unlock(&j->mu);
    return p;
}

/* Records nobody waits for (lazy) are written at once, so a crash of the
 * process loses none of them (they are in the page cache), but their sync
 * waits up to JOURNAL_LAZY_MS for a record someone waits for, and then
 * covers both: "held" are written records whose sync is still to come. */
static void *writer_main(void *arg)
{
    struct journal *j = arg;
    struct req *held = NULL, **held_tail = &held;
    struct timespec until = {0, 0};
    for (;;) {
        pthread_mutex_lock(&j->mu);
        int timed_out = 0;
        while (!j->head && !j->closing && !timed_out) {
            if (held)
                timed_out = pthread_cond_timedwait(&j->cv, &j->mu, &until) == ETIMEDOUT;
            else
                pthread_cond_wait(&j->cv, &j->mu);
        }
        struct req *batch = j->head;
        j->head = NULL;
        j->tail = &j->head;
        int urgent = j->urgent, closing = j->closing;
        j->urgent = 0;
        pthread_mutex_unlock(&j->mu);
        if (!batch && !held)
            break; /* closing, and nothing left */
        if (!urgent && !closing && !timed_out && batch) {
            /* only lazy records: write them, sync later */
            write_batch(j, batch, 0);
            if (!held) {
                clock_gettime(CLOCK_MONOTONIC, &until);
                until.tv_nsec += JOURNAL_LAZY_MS * 1000000L;
                if (until.tv_nsec >= 1000000000L) {
                    until.tv_sec++;
                    until.tv_nsec -= 1000000000L;
                }
            }
            *held_tail = batch;
            while (*held_tail)
                held_tail = &(*held_tail)->next;
            int p = poisoned(j);
            if (p) {
                complete(held, p);
                held = NULL;
                held_tail = &held;
            }
            continue;
        }
        /* someone waits, the wait is over, or closing: one sync for all */
        if (batch)
            write_batch(j, batch, 1);
        else
            write_batch(j, NULL, 1);
        int p = poisoned(j);
        complete(held, p);
        held = NULL;
        held_tail = &held;
        complete(batch, p);
    }
    return NULL;
}

/* ---- opening (recovery: journal_recover.c) ------------------------- */

int journal_open(struct journal **out, const char *dir, const struct journal_options *opt,
                 journal_replay_fn replay, void *arg, struct journal_recovery *rec)
{
    struct journal_options o = opt ? *opt : (struct journal_options){0};
    if (!o.segment_size)
        o.segment_size = JOURNAL_SEGMENT_SIZE_DEFAULT;
    if (!o.max_record)
        o.max_record = JOURNAL_MAX_RECORD_DEFAULT;
    if (o.segment_size % 4096 || o.segment_size < 65536 || o.segment_size > UINT32_MAX ||
        journal_rec_size(o.max_record) + SEAL_SIZE > o.segment_size - JOURNAL_SEGMENT_HEADER) {
        errno = EINVAL;
        return -1;
    }
    struct journal_recovery dummy;
    if (!rec)
        rec = &dummy;
    memset(rec, 0, sizeof *rec);
    struct journal *j = calloc(1, sizeof *j);
    if (!j)
        return -1;
    j->segsize = o.segment_size;
    j->max_record = o.max_record;
    j->tail = &j->head;
    j->active_fd = -1;
    pthread_mutex_init(&j->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* the lazy wait's deadline */
    pthread_cond_init(&j->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_rwlock_init(&j->segmu, NULL);
    pthread_mutex_init(&j->spare_mu, NULL);
    j->dirfd = fsops_open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
    if (j->dirfd < 0 || journal_recover(j, replay, arg, rec) != 0) {
        int e = errno;
        journal_close(j);
        errno = e;
        return -1;
    }
    int e = pthread_create(&j->writer, NULL, writer_main, j);
    if (e) {
        journal_close(j);
        errno = e;
        return -1;
    }
    j->writer_started = 1;
    *out = j;
    return 0;
}

/* ---- the callers' side ------------------------------------------------- */

static int append(struct journal *j, uint32_t type, const void *data, size_t len, journal_done_fn cb, void *arg,
                  int lazy);

int journal_append(struct journal *j, uint32_t type, const void *data, size_t len, journal_done_fn cb,
                   void *arg)
{
    return append(j, type, data, len, cb, arg, 0);
}

int journal_append_lazy(struct journal *j, uint32_t type, const void *data, size_t len, journal_done_fn cb,
                        void *arg)
{
    return append(j, type, data, len, cb, arg, 1);
}

static int append(struct journal *j, uint32_t type, const void *data, size_t len, journal_done_fn cb, void *arg,
                  int lazy)
{
    if (type == 0 || type > JOURNAL_TYPE_MAX || !cb) {
        errno = EINVAL;
        return -1;
    }
    if (len > j->max_record) {
        errno = EMSGSIZE;
        return -1;
    }
    struct req *r = malloc(sizeof *r + len);
    if (!r)
        return -1;
    *r = (struct req){.type = type, .len = (uint32_t)len, .cb = cb, .arg = arg};
    if (len)
        memcpy(r->data, data, len);
    pthread_mutex_lock(&j->mu);
    int err = j->closing ? ESHUTDOWN : j->poison;
    if (!err) {
        *j->tail = r;
        j->tail = &r->next;
        if (!lazy)
            j->urgent++;
        pthread_cond_signal(&j->cv);
    }
    pthread_mutex_unlock(&j->mu);
    if (err) {
        free(r);
        errno = err;
        return -1;
    }
    return 0;
}

struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, err;
    struct journal_addr addr;
};

static void wake(void *arg, int err, struct journal_addr addr)
{
    struct waiter *w = arg;
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    w->err = err;
    w->addr = addr;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int journal_append_wait(struct journal *j, uint32_t type, const void *data, size_t len,
                        struct journal_addr *addr)
{
    struct waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    if (journal_append(j, type, data, len, wake, &w) != 0)
        return -1;
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    if (w.err) {
        errno = w.err;
        return -1;
    }
    if (addr)
        *addr = w.addr;
    return 0;
}

int journal_read(struct journal *j, struct journal_addr addr, uint32_t *type, void *buf, size_t cap,
                 size_t *len)
{
    if (addr.off < JOURNAL_SEGMENT_HEADER || addr.off % 8) {
        errno = EINVAL;
        return -1;
    }
    pthread_rwlock_rdlock(&j->segmu);
    struct seg *s = journal_seg_find(j, addr.seg);
    if (!s || (addr.seg == j->active_seq && addr.off >= j->durable_off)) {
        pthread_rwlock_unlock(&j->segmu);
        errno = ENOENT;
        return -1;
    }
    unsigned char *pl = NULL;
    size_t plcap = 0;
    uint32_t t, l;
    int own;
    int v = journal_read_record(j, s->fd, s->seq, addr.off, &t, &l, &pl, &plcap, &own);
    pthread_rwlock_unlock(&j->segmu);
    int rc = -1;
    if (v < 0) {
        /* errno from the read */
    } else if (v == 0 || t == JOURNAL_TYPE_SEAL) {
        errno = EBADMSG;
    } else {
        *type = t;
        *len = l;
        if (l > cap) {
            errno = ENOBUFS;
        } else {
            if (l)
                memcpy(buf, pl, l);
            rc = 0;
        }
    }
    free(pl);
    return rc;
}

int journal_retire_segment(struct journal *j, uint64_t seq)
{
    pthread_rwlock_wrlock(&j->segmu);
    struct seg *s = journal_seg_find(j, seq);
    int e = !s ? ENOENT : seq == j->active_seq ? EBUSY : 0;
    if (e) {
        pthread_rwlock_unlock(&j->segmu);
        errno = e;
        return -1;
    }
    int fd = s->fd;
    size_t i = (size_t)(s - j->segs);
    memmove(&j->segs[i], &j->segs[i + 1], (j->nsegs - i - 1) * sizeof *s);
    j->nsegs--;
    uint64_t freen = j->free_next++;
    pthread_rwlock_unlock(&j->segmu);

    char from[40], to[40];
    journal_seg_name(from, sizeof from, "seg", seq);
    journal_seg_name(to, sizeof to, "free", freen);
    if (fsops_renameat(j->dirfd, from, j->dirfd, to) != 0) {
        e = errno;
        pthread_rwlock_wrlock(&j->segmu);
        (void)journal_seg_add(j, seq, fd);
        pthread_rwlock_unlock(&j->segmu);
        errno = e;
        return -1;
    }
    close(fd);
    int rc = fsops_fsync(j->dirfd);
    e = errno;
    pthread_rwlock_wrlock(&j->segmu);
    (void)journal_free_push(j, freen); /* on ENOMEM it is found again at the next open */
    pthread_rwlock_unlock(&j->segmu);
    if (rc != 0) {
        log_error("journal: retiring segment %016" PRIx64 ": directory sync: %s", seq, strerror(e));
        errno = e;
        return -1;
    }
    return 0;
}

int journal_prepare_spare(struct journal *j, unsigned want)
{
    pthread_mutex_lock(&j->spare_mu);
    int rc = 0;
    for (;;) {
        pthread_rwlock_wrlock(&j->segmu);
        int enough = j->nfree >= want;
        uint64_t freen = enough ? 0 : j->free_next++;
        pthread_rwlock_unlock(&j->segmu);
        if (enough)
            break;
        char name[40];
        int poisoned = 0;
        journal_seg_name(name, sizeof name, "free", freen);
        int fd = create_file(j, SPARE_TMP_NAME, 0, name, &poisoned);
        if (fd < 0) {
            int e = errno;
            /* a spare whose name may not be durable is still a free file */
            if (poisoned)
                log_error("journal: making a spare segment: directory sync: %s", strerror(e));
            errno = e;
            rc = -1;
            break;
        }
        close(fd);
        pthread_rwlock_wrlock(&j->segmu);
        int pushed = journal_free_push(j, freen);
        pthread_rwlock_unlock(&j->segmu);
        if (pushed != 0) {
            errno = ENOMEM;
            rc = -1;
            break;
        }
    }
    pthread_mutex_unlock(&j->spare_mu);
    return rc;
}

size_t journal_segments(struct journal *j, uint64_t **seqs)
{
    pthread_rwlock_rdlock(&j->segmu);
    size_t n = j->nsegs;
    uint64_t *v = xcalloc(n ? n : 1, sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = j->segs[i].seq;
    pthread_rwlock_unlock(&j->segmu);
    *seqs = v;
    return n;
}

uint64_t journal_current_segment(struct journal *j)
{
    pthread_rwlock_rdlock(&j->segmu);
    uint64_t seq = j->active_seq;
    pthread_rwlock_unlock(&j->segmu);
    return seq;
}

void journal_close(struct journal *j)
{
    if (!j)
        return;
    pthread_mutex_lock(&j->mu);
    j->closing = 1;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    if (j->writer_started)
        pthread_join(j->writer, NULL);
    for (size_t i = 0; i < j->nsegs; i++)
        close(j->segs[i].fd);
    if (j->dirfd >= 0)
        close(j->dirfd);
    pthread_rwlock_destroy(&j->segmu);
    pthread_mutex_destroy(&j->spare_mu);
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j->segs);
    free(j->freenames);
    free(j->buf);
    free(j);
}
