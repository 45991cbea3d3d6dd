/* store: the durable spool and its commit protocol (see store.h). */
#include "spool/store.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "spool/spool.h"
#include "spool/store_journal.h"
#include "util/fsops.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

enum req_kind { REQ_COMMIT, REQ_BARRIER, REQ_UNLINK };

struct sync_req {
    struct sync_req *next;
    enum req_kind kind;
    char id[QUEUE_ID_LEN + 1];
    int fd;                     /* fsync mode: the committed file */
    int capture_dir_fd;         /* fsync mode: capture/ when the commit named the file there, else -1 */
    struct timespec written;    /* last change of the data this request covers */
    int ok;
    int err;
    struct queue_file_message m;
    store_commit_cb commit_cb;
    void (*barrier_cb)(void *arg, int ok);
    void *arg;
};

static struct {
    struct event_base *base;
    char *dir;
    int incoming_fd, queue_fd, hold_fd, corrupt_fd;
    int capture_fd;             /* capture/, or -1 when capture mode is off */
    enum store_capture capture;
    int use_syncfs;
    int journal;                /* queue_sync_method = journal (store_journal.h) */
    /* queue/ or hold/ may hold a message file: one until store_recover has
     * looked, then whether a name was there or a message was committed as a
     * file since. While not, id_in_use does not look there (a new name's
     * lookup costs a directory search, and with the journal a message is a
     * file only when it is large). Only store_recover's scan clears it: a
     * file removed is unlinked later, by the sync thread, so its removal
     * never does. */
    int may_have_files;
    time_t start_time;          /* incoming files newer than this are a live smtpd's */
    struct timespec writers_since;  /* better: when every live writer started (0: unknown) */
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct sync_req *pending, *pending_tail;
    struct sync_req *done, *done_tail;
    int stop;
    struct timespec last_failure;  /* when a sync last reported an error (under mu) */
    int event_fd;
    struct event *done_ev;
} st = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .event_fd = -1,
        .incoming_fd = -1, .queue_fd = -1, .hold_fd = -1, .corrupt_fd = -1, .capture_fd = -1};

static int place_fd(enum store_place p)
{
    return p == STORE_HOLD ? st.hold_fd : st.queue_fd;
}

static const char *place_dir(enum store_place p)
{
    return p == STORE_HOLD ? QDIR_HOLD : QDIR_QUEUE;
}

char *store_path(const char *id, enum store_place place)
{
    return xasprintf("%s/%s/%s", st.dir, place_dir(place), id);
}

int store_content_locate(const char *id, enum store_place place, char **path, uint64_t *base)
{
    if (store_journal_locate(id, path, base) == 0)
        return 0;
    *path = store_path(id, place);
    *base = 0;
    return 0;
}

void store_on_fatal(void (*fn)(int err))
{
    store_journal_on_fatal(fn);
}

void store_set_journal_segment_size(uint64_t bytes)
{
    store_journal_set_segment_size(bytes);
}

void store_content_done(const char *id)
{
    store_journal_unpin(id);
}

int store_incoming_dirfd(void)
{
    return st.incoming_fd;
}

/* ---------- the sync thread ---------- */

static int timespec_after(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec > b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec > b->tv_nsec);
}

static void *sync_thread(void *unused)
{
    (void)unused;
    for (;;) {
        pthread_mutex_lock(&st.mu);
        while (!st.pending && !st.stop)
            pthread_cond_wait(&st.cv, &st.mu);
        if (!st.pending && st.stop) {
            pthread_mutex_unlock(&st.mu);
            return NULL;
        }
        struct sync_req *batch = st.pending;
        st.pending = st.pending_tail = NULL;
        pthread_mutex_unlock(&st.mu);

        /* Removals of finished messages are done here, off the event loop
         * (an unlink can wait on the disk), after this batch's sync has been
         * answered so no commit waits behind them; they need no sync. */
        struct sync_req *unlinks = NULL, **keep = &batch;
        int need_sync = 0;
        while (*keep) {
            struct sync_req *r = *keep;
            if (r->kind == REQ_UNLINK) {
                *keep = r->next;
                r->next = unlinks;
                unlinks = r;
            } else {
                need_sync = 1;
                keep = &r->next;
            }
        }

        /* One sync covers every file renamed into queue/ before it started:
         * the data, the inodes and the directory entries. */
        int rc = 0, err = 0;
        if (!need_sync) {
            /* nothing to make durable */
        } else if (st.use_syncfs) {
            if (fsops_syncfs(st.queue_fd) != 0) {
                rc = -1;
                err = errno;
            }
        } else {
            int capture_dir_fd = -1;
            for (struct sync_req *r = batch; r; r = r->next) {
                if (r->kind == REQ_COMMIT && r->fd >= 0 && fsops_fdatasync(r->fd) != 0) {
                    r->ok = 0;
                    r->err = errno;
                }
                if (r->kind == REQ_COMMIT && r->capture_dir_fd >= 0)
                    capture_dir_fd = r->capture_dir_fd;
            }
            /* A captured message's name is in capture/ (capture = yes), or
             * in both capture/ and queue/ (copy): that directory too. */
            if (fsops_fsync(st.queue_fd) != 0 || (capture_dir_fd >= 0 && fsops_fsync(capture_dir_fd) != 0)) {
                rc = -1;
                err = errno;
            }
        }
        /* A write-back error is reported once, to whichever sync comes
         * next, which may be an earlier batch's: so a file changed before a
         * failed sync ended is never called durable by a later one. */
        struct timespec failed_at;
        pthread_mutex_lock(&st.mu);
        if (rc != 0)
            clock_gettime(CLOCK_REALTIME, &st.last_failure);
        failed_at = st.last_failure;
        pthread_mutex_unlock(&st.mu);
        struct sync_req *last = batch;
        for (struct sync_req *r = batch; r; r = r->next) {
            if (rc != 0) {
                r->ok = 0;
                r->err = err;
            } else if (r->ok && failed_at.tv_sec && !timespec_after(&r->written, &failed_at)) {
                r->ok = 0;
                r->err = EIO;
            }
            last = r;
        }
        if (batch) {
            pthread_mutex_lock(&st.mu);
            if (st.done_tail)
                st.done_tail->next = batch;
            else
                st.done = batch;
            st.done_tail = last;
            pthread_mutex_unlock(&st.mu);
            uint64_t one = 1;
            (void)!write(st.event_fd, &one, sizeof one);
        }
        while (unlinks) {
            struct sync_req *r = unlinks;
            unlinks = r->next;
            if (fsops_unlinkat(r->fd, r->id, 0) != 0 && errno != ENOENT)
                log_warn("%s: cannot remove queue file: %s", r->id, strerror(errno));
            free(r);
        }
    }
}

static void finish_request(struct sync_req *r)
{
    if (r->fd >= 0)
        close(r->fd);
    if (r->kind == REQ_BARRIER) {
        r->barrier_cb(r->arg, r->ok);
    } else if (r->ok) {
        r->commit_cb(r->arg, 1, &r->m, 0);
    } else {
        log_warn("%s: cannot make queue file durable: %s", r->id, strerror(r->err));
        fsops_unlinkat(st.queue_fd, r->id, 0);
        queue_file_message_free(&r->m);
        r->commit_cb(r->arg, 0, NULL, r->err ? r->err : EIO);
    }
    free(r);
}

static void on_sync_done(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    uint64_t n;
    (void)!read(fd, &n, sizeof n);
    pthread_mutex_lock(&st.mu);
    struct sync_req *list = st.done;
    st.done = st.done_tail = NULL;
    pthread_mutex_unlock(&st.mu);
    while (list) {
        struct sync_req *r = list;
        list = r->next;
        finish_request(r);
    }
}

static void enqueue(struct sync_req *r)
{
    r->next = NULL;
    pthread_mutex_lock(&st.mu);
    if (st.pending_tail)
        st.pending_tail->next = r;
    else
        st.pending = r;
    st.pending_tail = r;
    pthread_cond_signal(&st.cv);
    pthread_mutex_unlock(&st.mu);
}

/* ---------- open, recover ---------- */

static int open_dir(const char *name)
{
    char *path = xasprintf("%s/%s", st.dir, name);
    int fd = fsops_open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if (fd < 0)
        log_error("open %s: %s", path, strerror(errno));
    free(path);
    return fd;
}

int store_open(struct event_base *base, const char *queue_dir, int sync_method)
{
    st.base = base;
    st.start_time = time(NULL) - 1;  /* file times are coarse */
    st.dir = xstrdup(queue_dir);
    /* in journal mode the few messages kept as files (too large for a
     * record) are synced one by one: syncfs would wait for everything */
    st.use_syncfs = sync_method == STORE_SYNC_SYNCFS;
    st.journal = sync_method == STORE_SYNC_JOURNAL;
    st.may_have_files = 1; /* until store_recover has looked */
    st.incoming_fd = open_dir(QDIR_INCOMING);
    st.queue_fd = open_dir(QDIR_QUEUE);
    st.hold_fd = open_dir(QDIR_HOLD);
    st.corrupt_fd = open_dir(QDIR_CORRUPT);
    if (st.incoming_fd < 0 || st.queue_fd < 0 || st.hold_fd < 0 || st.corrupt_fd < 0)
        return -1;
    st.event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (st.event_fd < 0)
        return -1;
    st.done_ev = event_new(base, st.event_fd, EV_READ | EV_PERSIST, on_sync_done, NULL);
    event_add(st.done_ev, NULL);
    st.stop = 0;
    st.last_failure = (struct timespec){0, 0};
    if (pthread_create(&st.thread, NULL, sync_thread, NULL) != 0)
        return -1;
    st.thread_started = 1;
    if (st.journal && store_journal_open(base, queue_dir) != 0)
        return -1;
    return 0;
}

void store_close(void)
{
    store_journal_close(); /* its last completions may still remove incoming files */
    if (st.thread_started) {
        pthread_mutex_lock(&st.mu);
        st.stop = 1;
        pthread_cond_signal(&st.cv);
        pthread_mutex_unlock(&st.mu);
        pthread_join(st.thread, NULL);
        st.thread_started = 0;
        on_sync_done(st.event_fd, 0, NULL);
    }
    if (st.done_ev)
        event_free(st.done_ev);
    st.done_ev = NULL;
    int *fds[] = {&st.incoming_fd, &st.queue_fd, &st.hold_fd, &st.corrupt_fd, &st.capture_fd, &st.event_fd};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
        if (*fds[i] >= 0)
            close(*fds[i]);
        *fds[i] = -1;
    }
    free(st.dir);
    st.dir = NULL;
}

static void move_to_corrupt(int dirfd, enum store_place place, const char *name)
{
    if (fsops_renameat(dirfd, name, st.corrupt_fd, name) != 0)
        log_error("%s/%s: cannot move to %s/: %s; left in place", place_dir(place), name, QDIR_CORRUPT,
                  strerror(errno));
}

static void recover_dir(int dirfd, enum store_place place, store_found_cb found, void *arg)
{
    int dup_fd = dup(dirfd);
    DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (!d) {
        log_error("cannot read the %s directory: %s", place_dir(place), strerror(errno));
        st.may_have_files = 1;
        return;
    }
    rewinddir(d);
    struct dirent *e;
    /* errno cleared before each readdir: the body changes it, and a read
     * error must not pass for the end of the directory */
    while ((errno = 0, e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        st.may_have_files = 1;
        if (!queue_id_valid(e->d_name)) {
            log_warn("%s/%s: not a queue file name; moved to %s/", place_dir(place), e->d_name,
                     QDIR_CORRUPT);
            move_to_corrupt(dirfd, place, e->d_name);
            continue;
        }
        char err[256];
        struct queue_file_message m;
        int fd = fsops_openat(dirfd, e->d_name, O_RDWR | O_CLOEXEC, 0);
        if (fd < 0) {
            /* Not shown to be invalid: leave it for the next start rather
             * than quarantine a message that may have been acknowledged. */
            log_error("%s/%s: cannot open queue file: %s; left in place", place_dir(place), e->d_name,
                      strerror(errno));
            continue;
        }
        if (queue_file_read_fd(fd, &m, err, sizeof err) != 0 || strcmp(m.id, e->d_name) != 0) {
            if (m.sender)
                snprintf(err, sizeof err, "queue id in file does not match its name"), queue_file_message_free(&m);
            log_warn("%s: invalid queue file (%s); moved to %s/", e->d_name, err, QDIR_CORRUPT);
            close(fd);
            move_to_corrupt(dirfd, place, e->d_name);
            continue;
        }
        if (m.valid_end < m.file_size) {
            /* A progress record torn by a crash: cut it off so later
             * records follow valid ones. */
            log_info("%s: removing a torn progress record", m.id);
            if (fsops_ftruncate(fd, (off_t)m.valid_end) == 0)
                m.file_size = m.valid_end;
        }
        close(fd);
        found(arg, &m, place);
    }
    if (errno != 0) {
        log_error("cannot read all of the %s directory: %s", place_dir(place), strerror(errno));
        st.may_have_files = 1;
    }
    closedir(d);
}

void store_set_writers_since(struct timespec since)
{
    st.writers_since = since;
}

/* Written after every live writer started: maybe one of theirs that is
 * between creating and locking its file, or finished and waiting for its
 * COMMIT. */
static int written_by_live_writer(const struct stat *sb)
{
    if (st.writers_since.tv_sec == 0)
        return sb->st_mtim.tv_sec >= st.start_time;
    return sb->st_mtim.tv_sec > st.writers_since.tv_sec ||
           (sb->st_mtim.tv_sec == st.writers_since.tv_sec && sb->st_mtim.tv_nsec >= st.writers_since.tv_nsec);
}

void store_recover(store_found_cb found, void *arg)
{
    int dup_fd = dup(st.incoming_fd);
    DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (d) {
        struct dirent *e;
        /* smtpd may already be writing while the queue starts (or
         * restarts): a file it still holds locked, or one made since this
         * process started, is its, not a leftover. */
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            int fd = openat(st.incoming_fd, e->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
            struct stat sb;
            /* a file that cannot even be opened (EMFILE ...) is left for
             * the next start; a symlink (ELOOP) never belongs here */
            int live = fd >= 0 ? (flock(fd, LOCK_EX | LOCK_NB) != 0 || (fstat(fd, &sb) == 0 && written_by_live_writer(&sb)))
                               : errno != ELOOP && errno != ENOENT;
            if (fd >= 0)
                close(fd);
            if (live)
                continue;
            log_info("%s: removing unfinished incoming file (never acknowledged)", e->d_name);
            fsops_unlinkat(st.incoming_fd, e->d_name, 0);
        }
        closedir(d);
    }
    /* only this loop adds names to queue/ and hold/: what the scan sees
     * is all there is */
    st.may_have_files = 0;
    recover_dir(st.queue_fd, STORE_QUEUE, found, arg);
    recover_dir(st.hold_fd, STORE_HOLD, found, arg);
    if (st.journal)
        store_journal_recover(found, arg);
}

/* ---------- commit ---------- */

int store_set_capture(enum store_capture mode)
{
    if (mode != STORE_CAPTURE_OFF && st.capture_fd < 0) {
        st.capture_fd = open_dir(QDIR_CAPTURE);
        if (st.capture_fd < 0)
            return -1;
    }
    st.capture = mode;
    return 0;
}

/* True when queue/ID, hold/ID or capture/ID exists (or cannot be checked),
 * or the journal holds ID. */
static int id_in_use(const char *id)
{
    if (store_journal_has(id))
        return 1;
    int dirs[] = {st.may_have_files ? st.queue_fd : -1, st.may_have_files ? st.hold_fd : -1, st.capture_fd};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        struct stat sb;
        if (dirs[i] < 0)
            continue;
        if (fstatat(dirs[i], id, &sb, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT)
            return 1;
    }
    return 0;
}

static void commit(const char *id, enum store_capture capture, store_commit_cb cb, void *arg);

void store_commit(const char *id, store_commit_cb cb, void *arg)
{
    commit(id, st.capture, cb, arg);
}

void store_commit_for_delivery(const char *id, store_commit_cb cb, void *arg)
{
    commit(id, STORE_CAPTURE_OFF, cb, arg);
}

/* Unlinks dirfd/id on the sync thread, off the event loop (an unlink can
 * wait on the disk); while closing, at once. */
static int unlink_later(int dirfd, const char *id)
{
    if (!st.thread_started)
        return fsops_unlinkat(dirfd, id, 0);
    struct sync_req *r = xcalloc(1, sizeof *r);
    r->kind = REQ_UNLINK;
    r->fd = dirfd;
    str_copy(r->id, id, sizeof r->id);
    enqueue(r);
    return 0;
}

static void commit(const char *id, enum store_capture capture, store_commit_cb cb, void *arg);

/* Whether the journal takes a queue file of this size (else it stays a file). */
static int journal_takes(enum store_capture capture, uint64_t size)
{
    return st.journal && capture == STORE_CAPTURE_OFF && size <= store_journal_max_message();
}

/* Hands a queue file to the journal, an open one (fd, taken over) or its
 * bytes (file, when fd is -1), unless a committed message has its id. */
static void journal_commit(const char *id, int fd, const void *file, size_t size, struct durable_reply *reply,
                           store_commit_cb cb, void *arg)
{
    if (id_in_use(id)) {
        log_error("%s: a committed message already has this queue id; refusing the new one", id);
        if (fd >= 0)
            close(fd);
        cb(arg, 0, NULL, EEXIST);
        return;
    }
    if (fd >= 0)
        store_journal_commit(id, fd, size, reply, cb, arg);
    else
        store_journal_commit_bytes(id, file, size, reply, cb, arg);
}

/* Commits into the journal when it takes this message: the journal is on,
 * capture mode does not need a file, and the file fits a record. 1 when
 * taken (the callback follows), 0 when the file path is to be used. */
static int commit_to_journal(const char *id, enum store_capture capture, store_commit_cb cb, void *arg)
{
    if (!st.journal || capture != STORE_CAPTURE_OFF)
        return 0;
    int fd = fsops_openat(st.incoming_fd, id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || !journal_takes(capture, (uint64_t)sb.st_size)) {
        if (fd >= 0)
            close(fd);
        return 0; /* the file path reports what is wrong, or takes it */
    }
    journal_commit(id, fd, NULL, (size_t)sb.st_size, NULL, cb, arg);
    /* read and closed (or refused): the record does not need the file (a
     * crash before the record is durable loses nothing acknowledged) */
    (void)unlink_later(st.incoming_fd, id);
    return 1;
}

/* Writes a queue file in memory (memfd, else file) to incoming/ID, for the
 * file path. */
static int memory_to_incoming(const char *id, int memfd, const void *file, off_t size)
{
    int fd = memfd >= 0 ? fsops_copy_to_new(st.incoming_fd, id, memfd, (uint64_t)size)
                        : fsops_write_new(st.incoming_fd, id, file, (size_t)size);
    if (fd < 0)
        return -1;
    if (close(fd) != 0) {
        int e = errno;
        fsops_unlinkat(st.incoming_fd, id, 0);
        errno = e;
        return -1;
    }
    return 0;
}

/* A queue file in memory, written to incoming/ID (rc 0) or not (rc -1,
 * with e): committed from there as a file. */
static void memory_committed(const char *id, int rc, int e, store_commit_cb cb, void *arg)
{
    if (rc != 0) {
        log_warn("%s: cannot write the queue file to %s/: %s", id, QDIR_INCOMING, strerror(e));
        cb(arg, 0, NULL, e ? e : EIO);
        return;
    }
    commit(id, st.capture, cb, arg);
}

void store_commit_memory(const char *id, int memfd, struct durable_reply *reply, store_commit_cb cb, void *arg)
{
    const int sealed = F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK;
    struct stat sb;
    int seals = fcntl(memfd, F_GET_SEALS);
    /* no times: with its ctime seen here, the read of the memfd that
     * follows stamps its atime with a fine-grained time, and every file
     * written after that, the journal segment too, gets a new mtime, so the
     * next fdatasync also writes the segment's inode (measured: 3 disk
     * writes per append instead of 2; see fsops_fstat_no_times) */
    if (!queue_id_valid(id) || fsops_fstat_no_times(memfd, &sb) != 0 || !S_ISREG(sb.st_mode) || seals < 0 ||
        (seals & sealed) != sealed || (uint64_t)sb.st_size > QF_MEMORY_MAX) {
        log_error("%s: refusing a queue file in memory that is not a sealed memfd of at most %u bytes",
                  queue_id_valid(id) ? id : "?", QF_MEMORY_MAX);
        close(memfd);
        cb(arg, 0, NULL, EBADMSG);
        return;
    }
    if (journal_takes(st.capture, (uint64_t)sb.st_size)) {
        journal_commit(id, memfd, NULL, (size_t)sb.st_size, reply, cb, arg);
        return;
    }
    int rc = memory_to_incoming(id, memfd, NULL, sb.st_size);
    int e = errno;
    close(memfd);
    memory_committed(id, rc, e, cb, arg);
}

void store_commit_bytes(const char *id, const void *file, size_t size, struct durable_reply *reply,
                        store_commit_cb cb, void *arg)
{
    if (!queue_id_valid(id) || size > QF_MEMORY_MAX) {
        if (queue_id_valid(id))
            log_error("%s: refusing a queue file in memory of more than %u bytes", id, QF_MEMORY_MAX);
        else
            log_error("refusing a queue file in memory: its queue id is not one");
        cb(arg, 0, NULL, EBADMSG);
        return;
    }
    if (journal_takes(st.capture, size)) {
        journal_commit(id, -1, file, size, reply, cb, arg);
        return;
    }
    int rc = memory_to_incoming(id, -1, file, (off_t)size);
    memory_committed(id, rc, errno, cb, arg);
}

static void commit(const char *id, enum store_capture capture, store_commit_cb cb, void *arg)
{
    if (queue_id_valid(id) && commit_to_journal(id, capture, cb, arg))
        return;
    struct sync_req *r = xcalloc(1, sizeof *r);
    r->kind = REQ_COMMIT;
    r->fd = -1;
    r->capture_dir_fd = -1;
    r->ok = 1;
    r->commit_cb = cb;
    r->arg = arg;
    str_copy(r->id, id, sizeof r->id);
    char err[256];
    if (!queue_id_valid(id)) {
        log_error("commit request for a malformed queue id");
        free(r);
        cb(arg, 0, NULL, EINVAL);
        return;
    }
    int fd = fsops_openat(st.incoming_fd, id, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0 || queue_file_read_fd(fd, &r->m, err, sizeof err) != 0 || strcmp(r->m.id, id) != 0) {
        if (fd < 0)
            snprintf(err, sizeof err, "open: %s", strerror(errno));
        else if (r->m.sender)
            snprintf(err, sizeof err, "queue id mismatch"), queue_file_message_free(&r->m);
        log_error("%s: refusing invalid incoming file: %s", id, err);
        if (fd >= 0)
            close(fd);
        fsops_unlinkat(st.incoming_fd, id, 0);
        free(r);
        cb(arg, 0, NULL, EBADMSG);
        return;
    }
    /* rename() would silently replace a committed (maybe acknowledged)
     * message that has the same id, e.g. one repeated after the clock
     * stepped back across a restart. Only this loop adds names to queue/ and
     * hold/, so the check cannot race. */
    if (id_in_use(id)) {
        log_error("%s: a committed message already has this queue id; refusing the new one", id);
        close(fd);
        fsops_unlinkat(st.incoming_fd, id, 0);
        queue_file_message_free(&r->m);
        free(r);
        cb(arg, 0, NULL, EEXIST);
        return;
    }
    /* The file's last change: a sync failure after it voids the commit. */
    struct stat fst;
    if (fstat(fd, &fst) == 0)
        r->written = fst.st_mtim;
    else
        clock_gettime(CLOCK_REALTIME, &r->written);
    int to_fd = capture == STORE_CAPTURE_ONLY ? st.capture_fd : st.queue_fd;
    if (capture == STORE_CAPTURE_COPY && fsops_linkat(st.incoming_fd, id, st.capture_fd, id, 0) != 0) {
        int e = errno;
        log_warn("%s: link into %s/: %s", id, QDIR_CAPTURE, strerror(e));
        close(fd);
        fsops_unlinkat(st.incoming_fd, id, 0);
        queue_file_message_free(&r->m);
        free(r);
        cb(arg, 0, NULL, e ? e : EIO);
        return;
    }
    if (fsops_renameat(st.incoming_fd, id, to_fd, id) != 0) {
        int e = errno;
        log_warn("%s: rename into %s/: %s", id, to_fd == st.queue_fd ? QDIR_QUEUE : QDIR_CAPTURE, strerror(e));
        if (capture == STORE_CAPTURE_COPY)
            fsops_unlinkat(st.capture_fd, id, 0);
        close(fd);
        fsops_unlinkat(st.incoming_fd, id, 0);
        queue_file_message_free(&r->m);
        free(r);
        cb(arg, 0, NULL, e ? e : EIO);
        return;
    }
    if (to_fd == st.queue_fd)
        st.may_have_files = 1;
    if (st.use_syncfs) {
        close(fd);
    } else {
        r->fd = fd;
        if (capture != STORE_CAPTURE_OFF)
            r->capture_dir_fd = st.capture_fd;
    }
    enqueue(r);
}

void store_barrier(void (*cb)(void *arg, int ok), void *arg)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    store_barrier_since(now, cb, arg);
}

void store_barrier_since(struct timespec written, void (*cb)(void *arg, int ok), void *arg)
{
    struct sync_req *r = xcalloc(1, sizeof *r);
    r->kind = REQ_BARRIER;
    r->fd = -1;
    r->written = written;
    r->ok = 1;
    r->barrier_cb = cb;
    r->arg = arg;
    enqueue(r);
}

/* ---------- progress ---------- */

static int with_file(const char *id, enum store_place place, int (*fn)(int fd, struct queue_file_message *m, size_t idx),
                     struct queue_file_message *m, size_t idx)
{
    int fd = fsops_openat(place_fd(place), id, O_WRONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int rc = fn(fd, m, idx);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int store_append_status(struct queue_file_message *m, enum store_place place, size_t idx)
{
    if (store_journal_has(m->id))
        return store_journal_append_status(m, idx);
    return with_file(m->id, place, queue_file_append_status, m, idx);
}

int store_append_rcpt(struct queue_file_message *m, enum store_place place, size_t idx)
{
    if (store_journal_has(m->id))
        return store_journal_append_rcpt(m, idx);
    return with_file(m->id, place, queue_file_append_rcpt, m, idx);
}

int store_remove(const char *id, enum store_place place)
{
    if (store_journal_has(id))
        return store_journal_remove(id);
    return unlink_later(place_fd(place), id);
}

int store_move(const char *id, enum store_place from, enum store_place to)
{
    if (from == to)
        return 0;
    if (store_journal_has(id))
        return store_journal_move(id, to);
    return fsops_renameat(place_fd(from), id, place_fd(to), id);
}
