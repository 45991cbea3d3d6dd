/* store_journal: the store's journal mode (see store_journal.h). */
#include "spool/store_journal.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool/journal.h"
#include "spool/spool.h"
#include "util/fsops.h"
#include "util/hashmap.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

/* One message the journal holds (live), or held and is still read by a
 * delivery (dead, pinned). Touched only on the event loop. */
struct jmsg {
    char id[QUEUE_ID_LEN + 1];
    struct journal_addr addr; /* its newest MESSAGE record */
    uint32_t len;             /* that record's payload length */
    enum store_place place;
    struct strbuf progress;   /* progress records appended since that record */
    unsigned readers;         /* store_journal_locate without unpin */
    int committing;           /* appended, not yet durable */
    int copying;              /* a copy-forward is on its way */
    int dead;                 /* finished or deleted; kept for its readers */
    unsigned copy_failed;     /* copy-forwards that failed (logged once) */
    struct queue_file_message *replayed; /* during the replay only */
};

/* A finished append, handed from the journal's writer to the event loop. */
struct done {
    struct done *next;
    int err;
    struct journal_addr addr;
    enum { DONE_COMMIT, DONE_COPY, DONE_NOTE } kind;
    char id[QUEUE_ID_LEN + 1];
    struct queue_file_message m; /* DONE_COMMIT */
    store_commit_cb cb;
    void *arg;
    struct durable_reply *reply; /* DONE_COMMIT: sent by the writer thread, which holds its sock */
    size_t progress_len;         /* DONE_COPY: progress folded into the copy */
    uint32_t copy_len;           /* DONE_COPY: the copy's payload length */
};

static struct {
    struct journal *j;
    int active;                 /* open: the map below is in use */
    char *dir;
    struct hashmap msgs;
    int event_fd;
    struct event *done_ev, *tick_ev;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct done *done;          /* under mu */
    /* the maintenance thread: retires segments, makes spares */
    pthread_t thread;
    int thread_started, stop;
    uint64_t segment_size;      /* 0: the journal's default */
    void (*on_fatal)(int err);  /* the journal refuses writes until reopened */
    int fatal_said;
    uint64_t retire_below;      /* under mu: retire every segment below this */
    uint64_t retired_below;
    int want_spare;             /* under mu: a rollover used the spare */
    uint64_t last_current;      /* the current segment at the last tick */
} sj = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .event_fd = -1};

static const void *jmsg_key(const void *item, size_t *len)
{
    const struct jmsg *e = item;
    *len = QUEUE_ID_LEN;
    return e->id;
}

static struct jmsg *find(const char *id)
{
    if (!sj.active || strlen(id) != QUEUE_ID_LEN)
        return NULL;
    return hashmap_get(&sj.msgs, id, QUEUE_ID_LEN);
}

static struct jmsg *find_live(const char *id)
{
    struct jmsg *e = find(id);
    return e && !e->dead ? e : NULL;
}

static void jmsg_free(struct jmsg *e)
{
    strbuf_free(&e->progress);
    if (e->replayed) {
        queue_file_message_free(e->replayed);
        free(e->replayed);
    }
    free(e);
}

static void forget(struct jmsg *e)
{
    hashmap_remove(&sj.msgs, e);
    jmsg_free(e);
}

/* A record holds at most a quarter of a segment, and at most 16 MiB: one
 * large message then delays the commits of its batch by one large write. */
static uint32_t max_record_of(uint64_t segment_size)
{
    uint64_t seg = segment_size ? segment_size : JOURNAL_SEGMENT_SIZE_DEFAULT;
    uint64_t max = seg / 4 < JOURNAL_MAX_RECORD_DEFAULT * 16u ? seg / 4 : JOURNAL_MAX_RECORD_DEFAULT * 16u;
    return (uint32_t)max;
}

static uint32_t max_record(void)
{
    return max_record_of(sj.segment_size);
}

/* Half a record: the rest is room for the progress a copy-forward folds
 * in (one status record a recipient, at most a few KiB each). */
size_t store_journal_max_message(void)
{
    return max_record() / 2 - STORE_MESSAGE_PREFIX;
}

void store_journal_set_segment_size(uint64_t bytes)
{
    sj.segment_size = bytes;
}

/* ---------- from the writer thread to the event loop ---------- */

static void post(struct done *d)
{
    pthread_mutex_lock(&sj.mu);
    int first = sj.done == NULL; /* else the loop has yet to take the list: one wake-up does */
    d->next = sj.done;
    sj.done = d;
    pthread_mutex_unlock(&sj.mu);
    uint64_t one = 1;
    if (first)
        (void)!write(sj.event_fd, &one, sizeof one);
}

/* On the journal's writer thread: the record is durable (err 0) or failed. */
static void appended(void *arg, int err, struct journal_addr addr)
{
    struct done *d = arg;
    d->err = err;
    d->addr = addr;
    /* The client waits for this one: straight from here, not after a
     * wake-up of the event loop (post below is what tells it) */
    if (d->reply)
        durable_reply_send(d->reply, err);
    post(d);
}

static void finish_commit(struct done *d)
{
    struct jmsg *e = find(d->id);
    if (d->err == 0 && e) {
        e->committing = 0;
        e->addr = d->addr;
        d->cb(d->arg, 1, &d->m, 0);
    } else {
        log_warn("%s: cannot make the message durable in the journal: %s", d->id, strerror(d->err ? d->err : EIO));
        if (e)
            forget(e);
        queue_file_message_free(&d->m);
        d->cb(d->arg, 0, NULL, d->err ? d->err : EIO);
    }
}

static void finish_copy(struct done *d)
{
    struct jmsg *e = find(d->id);
    if (!e)
        return;
    e->copying = 0;
    if (d->err != 0) {
        log_warn("%s: copying forward in the journal: %s", d->id, strerror(d->err));
        return;
    }
    /* A delivery reads the old copy: keep pointing there (so its segment
     * stays); the new copy is the same message, and the next copy-forward
     * starts again from the old one with every progress record. */
    if (e->readers)
        return;
    /* From here on the copy is the message: progress appended while it was
     * on its way follows it in the log, and stays to be folded next time. */
    e->addr = d->addr;
    e->len = d->copy_len;
    size_t keep = e->progress.len - d->progress_len;
    if (keep)
        memmove(e->progress.buf, e->progress.buf + d->progress_len, keep);
    e->progress.len = keep;
}

void store_journal_on_fatal(void (*fn)(int err))
{
    sj.on_fatal = fn;
}

/* A failed write or sync poisons the journal (journal.h): only reading it
 * back from disk, at the next open, is trustworthy. Full disks and bounds
 * do not poison it. */
static void check_fatal(int err)
{
    if (!err || err == ENOSPC || err == EDQUOT || err == EMSGSIZE || err == ESHUTDOWN || sj.fatal_said)
        return;
    sj.fatal_said = 1;
    log_error("journal: a write or sync failed (%s); nothing more is taken until the queue restarts and "
              "reads the journal back", strerror(err));
    if (sj.on_fatal)
        sj.on_fatal(err);
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    uint64_t n;
    (void)!read(fd, &n, sizeof n);
    pthread_mutex_lock(&sj.mu);
    struct done *list = sj.done;
    sj.done = NULL;
    pthread_mutex_unlock(&sj.mu);
    /* the list is newest first: answer in the order of the log */
    struct done *rev = NULL;
    while (list) {
        struct done *d = list;
        list = d->next;
        d->next = rev;
        rev = d;
    }
    while (rev) {
        struct done *d = rev;
        rev = d->next;
        check_fatal(d->err);
        if (d->kind == DONE_COMMIT)
            finish_commit(d);
        else if (d->kind == DONE_COPY)
            finish_copy(d);
        else if (d->err)
            log_warn("%s: journal record failed: %s", d->id, strerror(d->err));
        free(d);
    }
}

/* Appends a small record about id (progress, place, done), not waited for. */
static int note(uint32_t type, const char *id, const void *data, size_t len)
{
    /* closing: the journal's last completions may start work (a notice's
     * progress) after it is closed */
    if (!sj.j) {
        errno = ESHUTDOWN;
        return -1;
    }
    size_t n = QUEUE_ID_LEN + len;
    unsigned char *buf = xmalloc(n);
    memcpy(buf, id, QUEUE_ID_LEN);
    if (len)
        memcpy(buf + QUEUE_ID_LEN, data, len);
    struct done *d = xcalloc(1, sizeof *d);
    d->kind = DONE_NOTE;
    str_copy(d->id, id, sizeof d->id);
    int rc = journal_append_lazy(sj.j, type, buf, n, appended, d);
    int e = errno;
    free(buf);
    if (rc != 0) {
        free(d);
        errno = e;
        return -1;
    }
    return 0;
}

/* ---------- retiring and copying forward ---------- */

static void *maintenance_thread(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&sj.mu);
    while (!sj.stop) {
        if (sj.retired_below >= sj.retire_below && !sj.want_spare) {
            pthread_cond_wait(&sj.cv, &sj.mu);
            continue;
        }
        sj.want_spare = 0;
        uint64_t below = sj.retire_below;
        pthread_mutex_unlock(&sj.mu);
        uint64_t *seqs;
        size_t n = journal_segments(sj.j, &seqs);
        /* oldest first: a later segment never goes before an earlier one */
        for (size_t i = 0; i < n && seqs[i] < below; i++)
            if (journal_retire_segment(sj.j, seqs[i]) != 0) {
                log_warn("journal: cannot retire segment %016" PRIx64 ": %s", seqs[i], strerror(errno));
                break;
            }
        free(seqs);
        /* one spare ahead, so a rollover does not write a whole segment
         * while commits wait, and a full disk shows before it matters */
        if (journal_prepare_spare(sj.j, 1) != 0)
            log_warn("journal: cannot prepare a spare segment: %s", strerror(errno));
        pthread_mutex_lock(&sj.mu);
        sj.retired_below = below;
    }
    pthread_mutex_unlock(&sj.mu);
    return NULL;
}

/* Starts a copy of e's newest MESSAGE record at the log's end, with its
 * progress folded in: the message as it is now, encoded afresh (one status
 * record a recipient), so the copies of a message deferred for days do not
 * grow with every attempt. */
static void copy_forward(struct jmsg *e)
{
    unsigned char *buf = xmalloc(e->len);
    uint32_t type;
    size_t len;
    if (journal_read(sj.j, e->addr, &type, buf, e->len, &len) != 0 || type != STORE_REC_MESSAGE || len != e->len) {
        free(buf);
        return; /* not durable yet, or unreadable: kept where it is */
    }
    struct queue_file_message m;
    char err[256] = "a progress record does not fit the message";
    const unsigned char *qf = buf + STORE_MESSAGE_PREFIX;
    if (queue_file_read_mem(qf, len - STORE_MESSAGE_PREFIX, &m, err, sizeof err) != 0 ||
        queue_file_apply_progress(&m, e->progress.buf ? e->progress.buf : "", e->progress.len) != 0) {
        if (m.sender)
            queue_file_message_free(&m);
        if (!e->copy_failed++)
            log_error("%s: journal: cannot copy the message forward (%s); its segment is kept", e->id, err);
        free(buf);
        return;
    }
    struct strbuf copy = STRBUF_INIT;
    unsigned char prefix[STORE_MESSAGE_PREFIX] = {e->place == STORE_HOLD ? 1 : 0};
    strbuf_append(&copy, prefix, sizeof prefix);
    queue_file_encode(&m, qf + m.content_offset, (size_t)m.content_length, &copy);
    queue_file_message_free(&m);
    free(buf);
    struct done *d = xcalloc(1, sizeof *d);
    d->kind = DONE_COPY;
    str_copy(d->id, e->id, sizeof d->id);
    d->progress_len = e->progress.len;
    d->copy_len = (uint32_t)copy.len;
    if (journal_append_lazy(sj.j, STORE_REC_MESSAGE, copy.buf, copy.len, appended, d) == 0) {
        e->copying = 1;
    } else {
        if (!e->copy_failed++)
            log_error("%s: journal: cannot copy the message forward (%s); its segment is kept", e->id,
                      strerror(errno));
        free(d);
    }
    strbuf_free(&copy);
}


/* Once a second: segments below the oldest message go; messages that
 * would keep more than STORE_JOURNAL_KEEP old segments are copied. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    uint64_t current = journal_current_segment(sj.j), oldest = UINT64_MAX;
    struct jmsg *e;
    size_t cursor = 0;
    /* A message being committed has no address yet, but its record is in
     * the segment that was current when it was appended, or a later one:
     * and it may be there already, written and synced, while the writer
     * finishes the rest of its batch in the next segment (the answer comes
     * per batch). So that segment stays. */
    while ((e = hashmap_next(&sj.msgs, &cursor)))
        if ((!e->dead || e->readers) && e->addr.seg < oldest)
            oldest = e->addr.seg;
    if (oldest != UINT64_MAX && oldest + STORE_JOURNAL_KEEP < current) {
        cursor = 0;
        while ((e = hashmap_next(&sj.msgs, &cursor)))
            if (!e->dead && !e->readers && !e->committing && !e->copying &&
                e->addr.seg + STORE_JOURNAL_KEEP < current)
                copy_forward(e);
    }
    uint64_t below = oldest < current ? oldest : current;
    pthread_mutex_lock(&sj.mu);
    if (below > sj.retire_below || current != sj.last_current) {
        if (below > sj.retire_below)
            sj.retire_below = below;
        sj.want_spare = current != sj.last_current;
        sj.last_current = current;
        pthread_cond_signal(&sj.cv);
    }
    pthread_mutex_unlock(&sj.mu);
}

/* ---------- open and replay ---------- */

static struct jmsg *replay_id(struct hashmap *map, const void *data, size_t len)
{
    if (len < QUEUE_ID_LEN)
        return NULL;
    return hashmap_get(map, data, QUEUE_ID_LEN);
}

static void replay_forget(struct hashmap *map, struct jmsg *e)
{
    hashmap_remove(map, e);
    jmsg_free(e);
}

/* Applies one record to the messages in map (arg). */
static int replay(void *arg, uint32_t type, const void *data, size_t len, struct journal_addr addr)
{
    struct hashmap *map = arg;
    const unsigned char *p = data;
    if (type == STORE_REC_MESSAGE) {
        struct queue_file_message *m = xmalloc(sizeof *m);
        char err[256];
        if (len < STORE_MESSAGE_PREFIX ||
            queue_file_read_mem(p + STORE_MESSAGE_PREFIX, len - STORE_MESSAGE_PREFIX, m, err, sizeof err) != 0) {
            log_error("journal: record at %016" PRIx64 ":%" PRIu32 " is not a message (%s); skipped", addr.seg,
                      addr.off, len < STORE_MESSAGE_PREFIX ? "too short" : err);
            free(m);
            return 0;
        }
        struct jmsg *e = hashmap_get(map, m->id, QUEUE_ID_LEN);
        if (!e) {
            e = xcalloc(1, sizeof *e);
            str_copy(e->id, m->id, sizeof e->id);
            hashmap_add(map, e);
        } else {
            queue_file_message_free(e->replayed);
            free(e->replayed);
            strbuf_reset(&e->progress);
        }
        e->replayed = m;
        e->addr = addr;
        e->len = (uint32_t)len;
        e->place = p[0] == 1 ? STORE_HOLD : STORE_QUEUE;
        return 0;
    }
    struct jmsg *e = replay_id(map, data, len);
    if (!e)
        return 0;
    p += QUEUE_ID_LEN;
    len -= QUEUE_ID_LEN;
    if (type == STORE_REC_PROGRESS) {
        if (queue_file_apply_progress(e->replayed, p, len) != 0)
            log_error("%s: journal: a progress record does not fit the message; ignored", e->id);
        else
            strbuf_append(&e->progress, p, len);
    } else if (type == STORE_REC_PLACE && len == 1) {
        e->place = p[0] == 1 ? STORE_HOLD : STORE_QUEUE;
    } else if (type == STORE_REC_DONE) {
        replay_forget(map, e);
    }
    return 0;
}

/* Hands every message of map over to found, then empties map. */
static void hand_over(struct hashmap *map, store_found_cb found, void *arg)
{
    struct jmsg *e;
    size_t cursor = 0;
    while ((e = hashmap_next(map, &cursor))) {
        struct queue_file_message *m = e->replayed;
        e->replayed = NULL;
        if (m) {
            found(arg, m, e->place);
            free(m);
        }
    }
}

static int drop_all(void *item, void *arg)
{
    (void)arg;
    jmsg_free(item);
    return 1;
}

int store_journal_read_only(const char *queue_dir, store_found_cb found, void *arg)
{
    char *dir = xasprintf("%s/%s", queue_dir, QDIR_JOURNAL);
    struct hashmap map;
    hashmap_init(&map, jmsg_key, 0);
    int rc = journal_scan(dir, replay, &map);
    int e = errno;
    free(dir);
    if (rc == 0)
        hand_over(&map, found, arg);
    hashmap_remove_if(&map, drop_all, NULL);
    hashmap_free(&map);
    errno = e;
    return rc;
}

int store_journal_open(struct event_base *base, const char *queue_dir)
{
    sj.dir = xasprintf("%s/%s", queue_dir, QDIR_JOURNAL);
    if (fsops_mkdir(sj.dir, 0700) != 0 && errno != EEXIST) {
        log_error("cannot create %s: %s", sj.dir, strerror(errno));
        return -1;
    }
    hashmap_init(&sj.msgs, jmsg_key, 0);
    sj.active = 1;
    /* a journal keeps the segment size it was made with */
    uint64_t existing = journal_existing_segment_size(sj.dir);
    if (existing && existing != sj.segment_size) {
        if (sj.segment_size)
            log_info("journal: segments of %" PRIu64 " bytes exist; queue_journal_segment_size applies to a new journal",
                     existing);
        sj.segment_size = existing;
    }
    struct journal_options opt = {.segment_size = sj.segment_size, .max_record = max_record()};
    struct journal_recovery rec;
    if (journal_open(&sj.j, sj.dir, &opt, replay, &sj.msgs, &rec) != 0) {
        log_error("cannot open the journal in %s: %s", sj.dir, strerror(errno));
        return -1;
    }
    if (rec.corrupt_segments)
        log_error("journal: %" PRIu64 " damaged segment(s), the first at %016" PRIx64 ":%" PRIu32
                  "; the records after the damage in each were skipped",
                  rec.corrupt_segments, rec.first_corrupt.seg, rec.first_corrupt.off);
    if (rec.tail_cut)
        log_info("journal: cut off a torn record at the end (never acknowledged)");
    sj.event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (sj.event_fd < 0)
        return -1;
    sj.done_ev = event_new(base, sj.event_fd, EV_READ | EV_PERSIST, on_done, NULL);
    event_add(sj.done_ev, NULL);
    sj.tick_ev = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    struct timeval second = {1, 0};
    event_add(sj.tick_ev, &second);
    /* A spare before the first commit: after a restart the first append
     * starts a new segment (never after a cut), and on a nearly full disk
     * that must not be the moment a whole segment is written. */
    if (journal_prepare_spare(sj.j, 1) != 0)
        log_warn("journal: cannot prepare a spare segment: %s", strerror(errno));
    sj.stop = 0;
    sj.fatal_said = 0;
    sj.retire_below = sj.retired_below = 0;
    sj.want_spare = 0;
    sj.last_current = journal_current_segment(sj.j);
    if (pthread_create(&sj.thread, NULL, maintenance_thread, NULL) != 0)
        return -1;
    sj.thread_started = 1;
    return 0;
}

void store_journal_recover(store_found_cb found, void *arg)
{
    hand_over(&sj.msgs, found, arg);
}

/* Also after a store_journal_open that failed half-way. */
void store_journal_close(void)
{
    if (sj.thread_started) {
        pthread_mutex_lock(&sj.mu);
        sj.stop = 1;
        pthread_cond_signal(&sj.cv);
        pthread_mutex_unlock(&sj.mu);
        pthread_join(sj.thread, NULL);
        sj.thread_started = 0;
    }
    if (sj.j) {
        journal_close(sj.j); /* completes what is queued: callbacks post */
        sj.j = NULL;
        on_done(sj.event_fd, 0, NULL);
    }
    if (sj.active) {
        sj.active = 0;
        hashmap_remove_if(&sj.msgs, drop_all, NULL);
        hashmap_free(&sj.msgs);
    }
    if (sj.done_ev)
        event_free(sj.done_ev);
    if (sj.tick_ev)
        event_free(sj.tick_ev);
    sj.done_ev = sj.tick_ev = NULL;
    if (sj.event_fd >= 0)
        close(sj.event_fd);
    sj.event_fd = -1;
    free(sj.dir);
    sj.dir = NULL;
}

/* ---------- commit ---------- */

/* The MESSAGE record of a queue file in buf (after STORE_MESSAGE_PREFIX
 * bytes left for the prefix; freed here), read with e (its errno, 0 when
 * the read went well). */
static void commit_record(const char *id, unsigned char *buf, size_t size, int e,
                          struct durable_reply *reply, store_commit_cb cb, void *arg)
{
    if (!sj.j) { /* closing (see note) */
        free(buf);
        cb(arg, 0, NULL, ESHUTDOWN);
        return;
    }
    memset(buf, 0, STORE_MESSAGE_PREFIX);
    struct done *d = xcalloc(1, sizeof *d);
    d->kind = DONE_COMMIT;
    d->cb = cb;
    d->arg = arg;
    str_copy(d->id, id, sizeof d->id);
    char err[256];
    if (e != 0) {
        log_error("%s: cannot read the incoming file: %s", id, strerror(e));
    } else if (queue_file_read_mem(buf + STORE_MESSAGE_PREFIX, size, &d->m, err, sizeof err) != 0 ||
               strcmp(d->m.id, id) != 0) {
        if (d->m.sender) {
            snprintf(err, sizeof err, "queue id mismatch");
            queue_file_message_free(&d->m);
        }
        log_error("%s: refusing invalid incoming file: %s", id, err);
        e = EBADMSG;
    }
    /* the writer thread holds the reply's socket until it has sent it */
    if (e == 0 && reply && reply->sock) {
        durable_reply_socket_hold(reply->sock);
        d->reply = reply;
    }
    if (e == 0) {
        struct jmsg *m = xcalloc(1, sizeof *m);
        str_copy(m->id, id, sizeof m->id);
        m->committing = 1;
        /* until the record's address is known: the lowest it can have (0
         * while the writer is between segments: then nothing is retired) */
        m->addr.seg = journal_current_segment(sj.j);
        m->len = (uint32_t)(STORE_MESSAGE_PREFIX + size);
        m->place = STORE_QUEUE;
        if (hashmap_add(&sj.msgs, m) != 0) {
            /* the id of a deleted message a delivery still reads */
            e = EEXIST;
            jmsg_free(m);
            queue_file_message_free(&d->m);
            log_error("%s: a message with this queue id is still being read; refusing the new one", id);
        } else if (journal_append(sj.j, STORE_REC_MESSAGE, buf, STORE_MESSAGE_PREFIX + size, appended, d) != 0) {
            e = errno ? errno : EIO;
            forget(m);
            queue_file_message_free(&d->m);
            log_warn("%s: cannot append to the journal: %s", id, strerror(e));
        }
    }
    free(buf);
    if (e != 0) {
        if (d->reply)
            durable_reply_socket_release(d->reply->sock);
        free(d);
        cb(arg, 0, NULL, e);
    }
}

void store_journal_commit(const char *id, int fd, size_t size, struct durable_reply *reply, store_commit_cb cb,
                          void *arg)
{
    unsigned char *buf = xmalloc(STORE_MESSAGE_PREFIX + size);
    int e = sj.j && fsops_pread_all(fd, buf + STORE_MESSAGE_PREFIX, size, 0) != 0 ? (errno ? errno : EIO) : 0;
    close(fd);
    commit_record(id, buf, size, e, reply, cb, arg);
}

void store_journal_commit_bytes(const char *id, const void *file, size_t size, struct durable_reply *reply,
                                store_commit_cb cb, void *arg)
{
    unsigned char *buf = xmalloc(STORE_MESSAGE_PREFIX + size);
    memcpy(buf + STORE_MESSAGE_PREFIX, file, size);
    commit_record(id, buf, size, 0, reply, cb, arg);
}

int store_journal_has(const char *id)
{
    return find_live(id) != NULL;
}

/* ---------- progress, place, removal ---------- */

static int append_progress(struct queue_file_message *m, size_t idx,
                           void (*encode)(const struct queue_file_message *, size_t, struct strbuf *))
{
    struct jmsg *e = find_live(m->id);
    if (!e) {
        errno = ENOENT;
        return -1;
    }
    struct strbuf rec = STRBUF_INIT;
    encode(m, idx, &rec);
    int rc = note(STORE_REC_PROGRESS, m->id, rec.buf, rec.len);
    if (rc == 0)
        strbuf_append(&e->progress, rec.buf, rec.len);
    strbuf_free(&rec);
    return rc;
}

int store_journal_append_status(struct queue_file_message *m, size_t idx)
{
    return append_progress(m, idx, queue_file_encode_status);
}

int store_journal_append_rcpt(struct queue_file_message *m, size_t idx)
{
    return append_progress(m, idx, queue_file_encode_rcpt);
}

int store_journal_remove(const char *id)
{
    struct jmsg *e = find_live(id);
    if (!e) {
        errno = ENOENT;
        return -1;
    }
    int rc = note(STORE_REC_DONE, id, NULL, 0);
    if (rc != 0)
        return -1;
    if (e->readers)
        e->dead = 1;
    else
        forget(e);
    return 0;
}

int store_journal_move(const char *id, enum store_place to)
{
    struct jmsg *e = find_live(id);
    if (!e) {
        errno = ENOENT;
        return -1;
    }
    unsigned char place = to == STORE_HOLD ? 1 : 0;
    if (note(STORE_REC_PLACE, id, &place, 1) != 0)
        return -1;
    e->place = to;
    return 0;
}

int store_journal_locate(const char *id, char **path, uint64_t *base)
{
    struct jmsg *e = find_live(id);
    if (!e || e->committing)
        return -1;
    *path = xasprintf("%s/seg-%016" PRIx64, sj.dir, e->addr.seg);
    *base = (uint64_t)e->addr.off + JOURNAL_RECORD_HEADER + STORE_MESSAGE_PREFIX;
    e->readers++;
    return 0;
}

void store_journal_unpin(const char *id)
{
    struct jmsg *e = find(id);
    if (!e || !e->readers)
        return;
    if (--e->readers == 0 && e->dead)
        forget(e);
}

/* ---------- changes while the queue process is stopped ---------- */

int store_journal_offline_change(const char *queue_dir, store_select_fn select, void *arg, int remove,
                                 enum store_place to, size_t *changed)
{
    *changed = 0;
    char *dir = xasprintf("%s/%s", queue_dir, QDIR_JOURNAL);
    uint64_t segsize = journal_existing_segment_size(dir);
    if (segsize == 0) { /* no journal, or nothing in it */
        free(dir);
        return 0;
    }
    struct hashmap map;
    hashmap_init(&map, jmsg_key, 0);
    struct journal_options opt = {.segment_size = segsize, .max_record = max_record_of(segsize)};
    struct journal *j = NULL;
    int rc = journal_open(&j, dir, &opt, replay, &map, NULL);
    int e = errno;
    free(dir);
    struct jmsg *m;
    size_t cursor = 0;
    while (rc == 0 && (m = hashmap_next(&map, &cursor))) {
        if (!select(arg, m->id, m->place) || (!remove && m->place == to))
            continue;
        unsigned char rec[QUEUE_ID_LEN + 1];
        memcpy(rec, m->id, QUEUE_ID_LEN);
        rec[QUEUE_ID_LEN] = to == STORE_HOLD ? 1 : 0;
        if (journal_append_wait(j, remove ? STORE_REC_DONE : STORE_REC_PLACE, rec,
                                remove ? QUEUE_ID_LEN : QUEUE_ID_LEN + 1, NULL) != 0) {
            e = errno;
            rc = -1;
        } else {
            (*changed)++;
        }
    }
    journal_close(j);
    hashmap_remove_if(&map, drop_all, NULL);
    hashmap_free(&map);
    errno = e;
    return rc;
}
