/* maildir_batch: the local agent's Maildir deliveries, made durable together
 * (see maildir_batch.h). */
#include "local/maildir_batch.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/fsops.h"
#include "util/ipc.h"
#include "util/mem.h"

struct pending {
    struct pending *next;
    struct ipc_chan *ch;
    uint32_t reqid;
    struct maildir_delivery *md;
    uid_t uid;
    gid_t gid;
    dev_t dev;
    int failed;
    int spool_synced;   /* same file system as the queue: its next sync covers new/ */
    struct deliver_error err;
};

/* A batch waiting for the queue's sync (IPC_BARRIER). */
struct waiting_batch {
    struct waiting_batch *next;
    uint32_t reqid;
    struct ipc_chan *ch;
    struct pending *list;
};


static struct {
    struct maildir_batch_ops ops;
    struct pending *batch, *batch_tail;
    size_t nbatch;
    struct event *flush_ev;
    dev_t spool_dev;
    int have_spool_dev;
    int sync_each;      /* Maildirs synced file by file, not with syncfs */
    struct waiting_batch *waiting;
    uint32_t barrier_seq;
    struct timespec last_flush;   /* CLOCK_MONOTONIC; zero before the first */
    unsigned interval_ms;
    struct event_base *base;
} mb;

static int tmp_fd(struct pending *p);
static int new_dir_fd(struct pending *p);

/* 1 when an entry before p in list is a live one of the same Maildir. */
static int same_maildir_before(struct pending *list, struct pending *p)
{
    for (struct pending *q = list; q != p; q = q->next)
        if (!q->failed && !q->spool_synced && strcmp(maildir_new_dir(q->md), maildir_new_dir(p->md)) == 0)
            return 1;
    return 0;
}

/* queue_sync_method = fsync or journal: each tmp/ file (fdatasync) and each
 * new/ directory (fsync) of the batch on its own, so the batch waits for
 * its own data only, never for what else the file system holds dirty
 * (which a syncfs writes out too: a busy neighbour's files). */
static int sync_each(struct pending *list, dev_t dev, int (*fd_of)(struct pending *p))
{
    int dirs = fd_of == new_dir_fd;
    /* Start every file's write-back first: their blocks are then allocated
     * in the same file-system transaction, which the first fdatasync
     * commits for all of them, so the later ones find little left to do
     * (one after the other, each would commit a transaction of its own).
     * A file alone (one session's mail) has nothing to share it with. */
    size_t files = 0;
    for (struct pending *p = list; p; p = p->next)
        files += !p->failed && !p->spool_synced && p->dev == dev;
    if (!dirs && files > 1)
        for (struct pending *p = list; p; p = p->next)
            if (!p->failed && !p->spool_synced && p->dev == dev)
                (void)sync_file_range(maildir_fd(p->md), 0, 0, SYNC_FILE_RANGE_WRITE);
    for (struct pending *p = list; p; p = p->next) {
        if (p->failed || p->spool_synced || p->dev != dev || (dirs && same_maildir_before(list, p)))
            continue;
        int fd = fd_of(p);
        if (fd < 0)
            return -1;
        int rc = dirs ? fsops_fsync(fd) : fsops_fdatasync(fd);
        int e = errno;
        if (fd != maildir_fd(p->md))
            close(fd);
        if (rc != 0) {
            errno = e;
            return -1;
        }
    }
    return 0;
}

static int sync_device(struct pending *list, dev_t dev, int (*fd_of)(struct pending *p))
{
    if (mb.sync_each)
        return sync_each(list, dev, fd_of);
    for (struct pending *p = list; p; p = p->next) {
        if (p->failed || p->spool_synced || p->dev != dev)
            continue;
        int fd = fd_of(p);
        if (fd < 0)
            return -1;
        int rc = fsops_syncfs(fd);
        if (fd_of != NULL && fd != maildir_fd(p->md))
            close(fd);
        return rc;
    }
    return 0;
}

static int tmp_fd(struct pending *p)
{
    return maildir_fd(p->md);
}

static int new_dir_fd(struct pending *p)
{
    mb.ops.become_user(p->uid, p->gid);
    int fd = open(maildir_new_dir(p->md), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    mb.ops.become_root();
    return fd;
}

/* Runs fn once per distinct device among the live entries. */
static void sync_all(struct pending *list, int (*fd_of)(struct pending *p), const char *what)
{
    for (struct pending *p = list; p; p = p->next) {
        if (p->failed || p->spool_synced)
            continue;
        int seen = 0;
        for (struct pending *q = list; q != p; q = q->next)
            if (!q->failed && !q->spool_synced && q->dev == p->dev)
                seen = 1;
        if (seen)
            continue;
        if (sync_device(list, p->dev, fd_of) != 0) {
            int e = errno;
            for (struct pending *q = list; q; q = q->next) {
                if (!q->failed && !q->spool_synced && q->dev == p->dev) {
                    q->failed = 1;
                    deliver_error_errno(&q->err, e, "cannot sync %s", what);
                }
            }
        }
    }
}

static void free_pending(struct pending *p)
{
    mb.ops.become_user(p->uid, p->gid);
    maildir_free(p->md); /* removes the tmp/ file of an unfinished delivery */
    mb.ops.become_root();
    free(p);
}

/* Links a batch whose tmp/ files are durable into new/, makes the entries
 * durable (or leaves that to the queue's next sync, for mailboxes on its
 * file system), and replies. */
static void finish_batch(struct pending *list)
{
    for (struct pending *p = list; p; p = p->next) {
        if (p->failed)
            continue;
        mb.ops.become_user(p->uid, p->gid);
        if (maildir_commit(p->md, &p->err) != 0)
            p->failed = 1;
        mb.ops.become_root();
    }
    /* On the queue's own file system the queue's next group commit makes
     * the new/ entries durable before it records the delivery (it waits for
     * one when the reply says so), so no sync is needed here. */
    for (struct pending *p = list; p; p = p->next)
        p->spool_synced = !p->failed && mb.have_spool_dev && p->dev == mb.spool_dev;
    sync_all(list, new_dir_fd, "maildir directory");
    for (struct pending *p = list; p; p = p->next) {
        if (p->failed) {
            mb.ops.become_user(p->uid, p->gid);
            maildir_withdraw(p->md);
            mb.ops.become_root();
        }
    }
    while (list) {
        struct pending *p = list;
        list = p->next;
        if (p->failed)
            mb.ops.reply_error(p->ch, p->reqid, &p->err);
        else if (mb.ops.chan_alive(p->ch))
            mb.ops.reply_sent(p->ch, p->reqid, p->spool_synced);
        free_pending(p);
    }
}

void maildir_batch_barrier_reply(const struct ipc_msg *m)
{
    struct waiting_batch **pp = &mb.waiting;
    while (*pp && (*pp)->reqid != m->reqid)
        pp = &(*pp)->next;
    struct waiting_batch *w = *pp;
    if (!w)
        return;
    *pp = w->next;
    const char *status = ipc_msg_get(m, "status");
    if (!status || strcmp(status, "ok") != 0) {
        for (struct pending *p = w->list; p; p = p->next) {
            p->failed = 1;
            deliver_error_set(&p->err, 1, "4.3.0", "cannot sync the mail file system");
        }
    }
    finish_batch(w->list);
    free(w);
}

static void flush_batch(void)
{
    if (mb.flush_ev)
        event_del(mb.flush_ev);
    if (!mb.batch)
        return;
    clock_gettime(CLOCK_MONOTONIC, &mb.last_flush);
    struct pending *list = mb.batch;
    mb.batch = mb.batch_tail = NULL;
    mb.nbatch = 0;

    /* Mailboxes on the spool's file system: the queue's next group commit
     * makes their tmp/ files durable too, so ask it instead of adding a
     * second stream of syncs that would flush each other's data. */
    struct pending *shared = NULL, **shared_tail = &shared, *own = NULL, **own_tail = &own;
    struct ipc_chan *queue = NULL;
    while (list) {
        struct pending *p = list;
        list = p->next;
        p->next = NULL;
        int on_spool = mb.have_spool_dev && p->dev == mb.spool_dev && mb.ops.chan_alive(p->ch) &&
                       (!queue || p->ch == queue);
        if (on_spool) {
            queue = p->ch;
            *shared_tail = p;
            shared_tail = &p->next;
        } else {
            *own_tail = p;
            own_tail = &p->next;
        }
    }
    if (shared) {
        struct waiting_batch *w = xcalloc(1, sizeof *w);
        w->reqid = ++mb.barrier_seq;
        w->ch = queue;
        w->list = shared;
        w->next = mb.waiting;
        mb.waiting = w;
        /* The queue must know how old the data is: a sync that failed after
         * the oldest file was written may have lost it. */
        struct timespec oldest = {0, 0};
        for (struct pending *p = shared; p; p = p->next) {
            struct stat sb;
            if (fstat(maildir_fd(p->md), &sb) == 0 &&
                (!oldest.tv_sec || sb.st_mtim.tv_sec < oldest.tv_sec ||
                 (sb.st_mtim.tv_sec == oldest.tv_sec && sb.st_mtim.tv_nsec < oldest.tv_nsec)))
                oldest = sb.st_mtim;
        }
        struct ipc_msg m;
        ipc_msg_init(&m, IPC_BARRIER, w->reqid);
        ipc_msg_add_u64(&m, "written_s", (uint64_t)oldest.tv_sec);
        ipc_msg_add_u64(&m, "written_ns", (uint64_t)oldest.tv_nsec);
        ipc_chan_send(queue, &m);
        ipc_msg_free(&m);
    }
    if (own) {
        sync_all(own, tmp_fd, "maildir file");
        finish_batch(own);
    }
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    flush_batch();
}

void maildir_batch_init(struct event_base *base, const struct maildir_batch_ops *ops, int sync_each,
                        const dev_t *spool_dev, unsigned interval_ms)
{
    memset(&mb, 0, sizeof mb);
    mb.ops = *ops;
    mb.base = base;
    mb.interval_ms = interval_ms;
    mb.sync_each = sync_each;
    if (spool_dev) {
        mb.spool_dev = *spool_dev;
        mb.have_spool_dev = 1;
    }
    mb.flush_ev = event_new(base, -1, 0, on_flush, NULL);
}

void maildir_batch_add(struct ipc_chan *ch, uint32_t reqid, uid_t uid, gid_t gid, struct maildir_delivery *md)
{
    struct pending *p = xcalloc(1, sizeof *p);
    p->ch = ch;
    p->reqid = reqid;
    p->uid = uid;
    p->gid = gid;
    p->md = md;
    struct stat sb;
    /* no times: the link into new/ changes this file's ctime, a fine-grained
     * one once its ctime was seen (see fsops_fstat_no_times) */
    p->dev = fsops_fstat_no_times(maildir_fd(md), &sb) == 0 ? sb.st_dev : 0;
    if (mb.batch_tail)
        mb.batch_tail->next = p;
    else
        mb.batch = p;
    mb.batch_tail = p;
    if (++mb.nbatch >= MAILDIR_BATCH_MAX) {
        flush_batch();
    } else if (mb.nbatch == 1) {
        /* About one round of syncs per interval at most: after a quiet
         * spell a delivery is finished in this turn of the loop, but when
         * one comes right after a round it waits out the rest of the
         * interval with whatever else arrives, and they share the syncs
         * (each round costs a cache flush per file and per new/ directory,
         * which the queue's own commits would otherwise queue behind). */
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long since_us = (long long)(now.tv_sec - mb.last_flush.tv_sec) * 1000000 +
                             (now.tv_nsec - mb.last_flush.tv_nsec) / 1000;
        long long wait_us = (long long)mb.interval_ms * 1000 - since_us;
        if (wait_us <= 0 || (mb.last_flush.tv_sec == 0 && mb.last_flush.tv_nsec == 0)) {
            event_active(mb.flush_ev, 0, 0);
        } else {
            /* the loop's cached time dates from the start of this turn,
             * which may have spent a round of syncs already */
            event_base_update_cache_time(mb.base);
            struct timeval tv = {(time_t)(wait_us / 1000000), (suseconds_t)(wait_us % 1000000)};
            event_add(mb.flush_ev, &tv);
        }
    }
}

static void free_waiting(struct waiting_batch *w)
{
    while (w->list) {
        struct pending *p = w->list;
        w->list = p->next;
        free_pending(p);
    }
    free(w);
}

void maildir_batch_drop_channel(struct ipc_chan *ch)
{
    /* Deliveries not yet synced are still made, but answer no one: a new
     * connection may be given the freed channel's address, and must not
     * get replies to requests it never sent. */
    for (struct pending *p = mb.batch; p; p = p->next)
        if (p->ch == ch)
            p->ch = NULL;
    for (struct waiting_batch **wp = &mb.waiting; *wp;) {
        struct waiting_batch *w = *wp;
        if (w->ch != ch) {
            wp = &w->next;
            continue;
        }
        *wp = w->next;
        free_waiting(w);
    }
}

void maildir_batch_shutdown(void)
{
    /* Finish what arrived with syncs of our own: the queue is going away. */
    mb.have_spool_dev = 0;
    if (mb.batch)
        flush_batch();
    while (mb.waiting) {
        struct waiting_batch *w = mb.waiting;
        mb.waiting = w->next;
        free_waiting(w);
    }
    if (mb.flush_ev)
        event_free(mb.flush_ev);
    mb.flush_ev = NULL;
}
