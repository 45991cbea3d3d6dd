/* qmgr: the queue process: commits, scheduling, retries, queue commands.
 *
 * The only process that changes the spool (through queue_store). It
 *  - takes commits from smtpd over private/queue and answers once durable;
 *  - picks up `sendmail` submissions from maildrop/ (pickup.c);
 *  - schedules every open recipient at once on arrival, expands aliases
 *    (qmgr_expand.c), hands local recipients to the local delivery agent over
 *    private/local, records each result in the queue file, retries
 *    temporary failures with exponential backoff between
 *    minimal_backoff_time and maximal_backoff_time, and gives up after
 *    maximal_queue_lifetime;
 *  - answers `tern queue` / `mailq` over public/qmgr (qmgr_control.c,
 *    through the message table of qmgr_internal.h).
 * Runs unprivileged (mail_owner). */
#include "qmgr/qmgr.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "spool/spool.h"
#include "util/ipc.h"
#include "daemon/runtime.h"
#include "maps/resolver.h"
#include "maps/alias.h"
#include "qmgr/pickup.h"
#include "qmgr/qmgr_notify.h"
#include "qmgr/qmgr_control.h"
#include "qmgr/qmgr_expand.h"
#include "qmgr/qmgr_internal.h"
#include "qmgr/qmgr_log.h"
#include "qmgr/qmgr_relay.h"
#include "spool/queue_id.h"
#include "spool/store.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

#define QMSG_HASH_SIZE 4096

struct delivery {
    struct delivery *next;
    uint32_t reqid;
    struct qmgr_msg *q;
    size_t idx;
    int64_t start_us;
    char *dsn, *text;       /* a result waiting for the next sync */
};

static struct {
    struct event_base *base;
    struct runtime *rt;
    struct resolver *resolver;
    struct qmgr_msg *hash[QMSG_HASH_SIZE];
    size_t nmsgs;
    struct ipc_chan *local;
    unsigned local_gen;         /* counts connections to local, to drop stale replies */
    struct delivery *deliveries;
    unsigned inflight;
    unsigned max_inflight;
    /* recipients waiting for a free delivery slot */
    struct waiting { struct waiting *next; char id[QUEUE_ID_LEN + 1]; size_t idx; } *wait_head, *wait_tail;
    uint32_t next_reqid;
    long long min_backoff, max_backoff, max_lifetime, bounce_lifetime, delay_warning;
    char *myhostname;
    struct event *listen_ev, *pickup_timer;
    int stopping;
    int64_t stop_started;       /* when SIGTERM came: outbound sessions drain */
    struct event *stop_timer;
} qm;

static int64_t now_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

/* ---------- the message table ---------- */

static unsigned id_hash(const char *id)
{
    unsigned h = 2166136261u;
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 16777619u;
    return h % QMSG_HASH_SIZE;
}

struct qmgr_msg *qmgr_msg_find(const char *id)
{
    for (struct qmgr_msg *q = qm.hash[id_hash(id)]; q; q = q->hnext)
        if (strcmp(q->m.id, id) == 0)
            return q;
    return NULL;
}

static int cmp_qmsg(const void *a, const void *b)
{
    const struct qmgr_msg *x = *(const struct qmgr_msg *const *)a, *y = *(const struct qmgr_msg *const *)b;
    return strcmp(x->m.id, y->m.id);
}

struct qmgr_msg **qmgr_msg_sorted(size_t *n)
{
    struct qmgr_msg **v = xcalloc(qm.nmsgs + 1, sizeof *v);
    size_t k = 0;
    for (size_t h = 0; h < QMSG_HASH_SIZE; h++)
        for (struct qmgr_msg *q = qm.hash[h]; q; q = q->hnext)
            if (!q->deleted)
                v[k++] = q;
    qsort(v, k, sizeof *v, cmp_qmsg);
    *n = k;
    return v;
}

static void on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    qmgr_msg_schedule(arg);
}

static struct qmgr_msg *qmgr_msg_add(struct queue_file_message *m, enum store_place place)
{
    struct qmgr_msg *q = xcalloc(1, sizeof *q);
    q->m = *m;
    memset(m, 0, sizeof *m);
    q->place = place;
    q->active_us = now_us();
    q->timer = evtimer_new(qm.base, on_retry_timer, q);
    unsigned h = id_hash(q->m.id);
    q->hnext = qm.hash[h];
    qm.hash[h] = q;
    qm.nmsgs++;
    return q;
}

static void qmgr_msg_free(struct qmgr_msg *q)
{
    struct qmgr_msg **pp = &qm.hash[id_hash(q->m.id)];
    while (*pp && *pp != q)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = q->hnext;
    qm.nmsgs--;
    event_free(q->timer);
    queue_file_message_free(&q->m);
    free(q->rcpt_busy);
    free(q);
}

static int rcpt_busy(struct qmgr_msg *q, size_t idx)
{
    return idx < q->rcpt_busy_cap && q->rcpt_busy[idx];
}

static void set_rcpt_busy(struct qmgr_msg *q, size_t idx, int busy)
{
    if (idx >= q->rcpt_busy_cap) {
        size_t old = q->rcpt_busy_cap;
        q->rcpt_busy = xgrow(q->rcpt_busy, &q->rcpt_busy_cap, idx + 1, 1);
        memset(q->rcpt_busy + old, 0, q->rcpt_busy_cap - old);
    }
    q->rcpt_busy[idx] = (unsigned char)busy;
}

/* ---------- results ---------- */

static void log_delivery(struct qmgr_msg *q, size_t idx, const char *relay, int64_t start_us, const char *status)
{
    qmgr_log_delivery(q, idx, relay, start_us, now_us(), status);
}

static void record(struct qmgr_msg *q, size_t idx)
{
    /* The last result of a message is not written: its file is removed
     * next (a crash in between repeats that delivery, never loses it). */
    if (q->inflight == 0 && !q->deleted && queue_file_message_open_rcpts(&q->m) == 0) {
        int busy = 0;
        for (size_t i = 0; i < q->m.nrcpt && !busy; i++)
            busy = rcpt_busy(q, i);
        if (!busy)
            return;
    }
    if (store_append_status(&q->m, q->place, idx) != 0)
        log_warn("%s: cannot record delivery status: %s", q->m.id, strerror(errno));
}

static void set_result(struct queue_file_rcpt *r, enum queue_file_rcpt_state state, const char *dsn, const char *reason,
                       const struct qmgr_msg_remote *remote)
{
    r->state = state;
    r->last_try = time(NULL);
    free(r->dsn);
    free(r->reason);
    free(r->remote_mta);
    free(r->diag);
    r->dsn = xstrdup(dsn);
    r->reason = xstrdup(reason);
    r->remote_mta = xstrdup(remote && remote->mta ? remote->mta : "");
    r->diag = xstrdup(remote && remote->diag ? remote->diag : "");
    r->flags = (r->flags & QF_RCPT_DELAY_WARNED) | (remote && remote->dsn_passed ? QF_RCPT_REMOTE_DSN : 0);
}

/* Records and logs one attempt's result. A deferral past
 * maximal_queue_lifetime fails the recipient ("expired"); otherwise it sets
 * the next try, the wait doubling with each attempt from
 * minimal_backoff_time up to maximal_backoff_time. */
static void rcpt_result(struct qmgr_msg *q, size_t idx, enum qmgr_msg_outcome o, const char *relay, int64_t start_us,
                        const char *dsn, const char *reason, const struct qmgr_msg_remote *remote)
{
    struct queue_file_rcpt *r = &q->m.rcpts[idx];
    if (o == QMSG_SENT) {
        set_result(r, QF_DELIVERED, dsn, reason, remote);
        record(q, idx);
        log_delivery(q, idx, relay, start_us, "sent");
        return;
    }
    if (o == QMSG_BOUNCED) {
        set_result(r, QF_FAILED, dsn, reason, remote);
        record(q, idx);
        log_delivery(q, idx, relay, start_us, "bounced");
        return;
    }
    time_t now = time(NULL);
    set_result(r, QF_DEFERRED, dsn, reason, remote);
    r->attempts++;
    /* As in Postfix, a lifetime of 0 means one attempt only; notices (from
     * <>) live bounce_queue_lifetime. */
    long long lifetime = *q->m.sender ? qm.max_lifetime : qm.bounce_lifetime;
    if (now - q->m.arrival_us / 1000000 >= lifetime) {
        r->state = QF_FAILED;
        char *why = xasprintf("message expired after %lld days in the queue: %s",
                              (long long)(now - q->m.arrival_us / 1000000) / 86400, reason);
        free(r->reason);
        r->reason = why;
        record(q, idx);
        log_delivery(q, idx, relay, start_us, "expired");
        return;
    }
    long long backoff = qm.min_backoff;
    for (uint32_t k = 1; k < r->attempts && backoff < qm.max_backoff; k++)
        backoff *= 2;
    if (backoff > qm.max_backoff)
        backoff = qm.max_backoff;
    r->next_try = now + backoff;
    record(q, idx);
    log_delivery(q, idx, relay, start_us, "deferred");
}

static void arm_retry(struct qmgr_msg *q);

void qmgr_msg_rcpt_take(struct qmgr_msg *q, size_t idx)
{
    set_rcpt_busy(q, idx, 1);
    q->inflight++;
}

void qmgr_msg_rcpt_release(struct qmgr_msg *q, size_t idx)
{
    set_rcpt_busy(q, idx, 0);
    q->inflight--;
    arm_retry(q);
}

void qmgr_msg_rcpt_result(struct qmgr_msg *q, size_t idx, enum qmgr_msg_outcome o, const char *relay, int64_t start_us,
                      const char *dsn, const char *reason)
{
    rcpt_result(q, idx, o, relay, start_us, dsn, reason, NULL);
}

void qmgr_msg_rcpt_finish(struct qmgr_msg *q, size_t idx, enum qmgr_msg_outcome o, const char *relay, int64_t start_us,
                      const char *dsn, const char *reason, const struct qmgr_msg_remote *remote)
{
    set_rcpt_busy(q, idx, 0);
    q->inflight--;
    if (!q->deleted)
        rcpt_result(q, idx, o, relay, start_us, dsn, reason, remote);
    arm_retry(q);
}

/* ---------- delivery dispatch ---------- */

static void local_reply(struct ipc_chan *ch, struct ipc_msg *m, void *arg);

static int local_connect(void)
{
    if (qm.local)
        return 0;
    char *path = xasprintf("%s/%s", qm.rt->queue_dir, QSOCK_LOCAL);
    int fd = ipc_connect(path);
    if (fd < 0) {
        log_warn("connect to local delivery agent %s: %s", path, strerror(errno));
        free(path);
        return -1;
    }
    free(path);
    qm.local = ipc_chan_new(qm.base, fd, local_reply, NULL);
    qm.local_gen++;
    return 0;
}

/* Arms the message's retry timer for its earliest deferred recipient. A
 * deferral can come back from the local delivery agent long after
 * qmgr_msg_schedule() ran, so every place that defers calls this. */
static void arm_retry(struct qmgr_msg *q)
{
    if (q->deleted || q->place != STORE_QUEUE)
        return;
    /* Once no delivery is in flight, so that one notice covers every
     * recipient deferred in this round. */
    if (q->inflight == 0 && qm.delay_warning > 0 &&
        time(NULL) - q->m.arrival_us / 1000000 >= qm.delay_warning)
        qmgr_notify_delayed(q, qm.max_lifetime);
    int64_t next = 0;
    for (size_t i = 0; i < q->m.nrcpt; i++) {
        const struct queue_file_rcpt *r = &q->m.rcpts[i];
        if (r->state == QF_DEFERRED && !rcpt_busy(q, i) && (next == 0 || r->next_try < next))
            next = r->next_try;
    }
    if (next) {
        time_t now = time(NULL);
        struct timeval tv = {next > now ? next - now : 0, 0};
        evtimer_add(q->timer, &tv);
    }
}

static void delivery_done(struct delivery *d, const char *status, const char *dsn, const char *text)
{
    struct qmgr_msg *q = d->q;
    q->inflight--;
    qm.inflight--;
    set_rcpt_busy(q, d->idx, 0);
    if (!q->deleted) {
        if (strcmp(status, "sent") == 0)
            rcpt_result(q, d->idx, QMSG_SENT, "local", d->start_us, dsn, text, NULL);
        else if (strcmp(status, "bounced") == 0)
            rcpt_result(q, d->idx, QMSG_BOUNCED, "local", d->start_us, dsn, text, NULL);
        else
            rcpt_result(q, d->idx, QMSG_DEFERRED, "local", d->start_us, dsn, text, NULL);
        arm_retry(q);
    }
    free(d->dsn);
    free(d->text);
    free(d);
    qmgr_msg_finish_if_done(q);
}

static void dispatch_waiting(void);

static void delivery_synced(void *arg, int ok)
{
    struct delivery *d = arg;
    if (ok)
        delivery_done(d, "sent", d->dsn, d->text);
    else
        delivery_done(d, "deferred", "4.3.0", "cannot sync the mailbox file system");
    dispatch_waiting();
}

/* The local agent asked to share our next sync (IPC_BARRIER). */
struct barrier_ctx {
    uint32_t reqid;
    unsigned local_gen;
};

static void local_barrier_done(void *arg, int ok)
{
    struct barrier_ctx *b = arg;
    if (qm.local && qm.local_gen == b->local_gen) {
        struct ipc_msg r;
        ipc_msg_init(&r, IPC_BARRIER_REPLY, b->reqid);
        ipc_msg_add(&r, "status", ok ? "ok" : "fail");
        ipc_chan_send(qm.local, &r);
        ipc_msg_free(&r);
    }
    free(b);
}

static void local_reply(struct ipc_chan *ch, struct ipc_msg *m, void *arg)
{
    (void)arg;
    if (!m) {
        log_warn("connection to the local delivery agent lost");
        ipc_chan_free(ch);
        qm.local = NULL;
        struct delivery *list = qm.deliveries;
        qm.deliveries = NULL;
        while (list) {
            struct delivery *d = list;
            list = d->next;
            delivery_done(d, "deferred", "4.3.0", "local delivery agent failed");
        }
        return;
    }
    if (m->type == IPC_BARRIER) {
        struct barrier_ctx *b = xcalloc(1, sizeof *b);
        b->reqid = m->reqid;
        b->local_gen = qm.local_gen;
        /* without a time, assume the data is as old as it can be */
        struct timespec written = {(time_t)ipc_msg_get_u64(m, "written_s", 1),
                                   (long)ipc_msg_get_u64(m, "written_ns", 0) % 1000000000L};
        store_barrier_since(written, local_barrier_done, b);
        return;
    }
    struct delivery **pp = &qm.deliveries;
    while (*pp && (*pp)->reqid != m->reqid)
        pp = &(*pp)->next;
    struct delivery *d = *pp;
    if (!d) {
        log_error("local delivery reply for unknown request %u", m->reqid);
        return;
    }
    *pp = d->next;
    const char *status = ipc_msg_get(m, "status");
    const char *dsn = ipc_msg_get(m, "dsn");
    const char *text = ipc_msg_get(m, "text");
    if (status && strcmp(status, "sent-unsynced") == 0) {
        /* The mailbox is on the spool's file system and its new/ entry is
         * not synced yet: the next group commit makes it durable, and only
         * then is the delivery recorded (and the queue file removed). */
        d->dsn = xstrdup(dsn ? dsn : "2.0.0");
        d->text = xstrdup(text ? text : "delivered");
        store_barrier(delivery_synced, d);
    } else {
        delivery_done(d, status ? status : "deferred", dsn ? dsn : "4.3.0", text ? text : "no reason given");
    }
    dispatch_waiting();
}

static void deliver_local(struct qmgr_msg *q, size_t idx)
{
    struct queue_file_rcpt *r = &q->m.rcpts[idx];
    if (local_connect() != 0) {
        rcpt_result(q, idx, QMSG_DEFERRED, "local", 0, "4.3.0", "local delivery agent unavailable", NULL);
        return;
    }
    struct delivery *d = xcalloc(1, sizeof *d);
    d->reqid = ++qm.next_reqid;
    d->q = q;
    d->idx = idx;
    d->start_us = now_us();
    d->next = qm.deliveries;
    qm.deliveries = d;
    q->inflight++;
    qm.inflight++;
    set_rcpt_busy(q, idx, 1);

    char *user = resolver_local_user(qm.resolver, r->addr);
    char *path = store_path(q->m.id, q->place);
    struct ipc_msg m;
    ipc_msg_init(&m, IPC_DELIVER, d->reqid);
    ipc_msg_add(&m, "id", q->m.id);
    ipc_msg_add(&m, "path", path);
    ipc_msg_add_u64(&m, "offset", q->m.content_offset);
    ipc_msg_add_u64(&m, "length", q->m.content_length);
    ipc_msg_add(&m, "sender", q->m.sender);
    ipc_msg_add(&m, "rcpt", r->addr);
    ipc_msg_add(&m, "user", user);
    ipc_msg_add_u64(&m, "arrival", (uint64_t)(q->m.arrival_us / 1000000));
    ipc_chan_send(qm.local, &m);
    ipc_msg_free(&m);
    free(user);
    free(path);
}

static void wait_for_slot(struct qmgr_msg *q, size_t idx)
{
    struct waiting *w = xcalloc(1, sizeof *w);
    str_copy(w->id, q->m.id, sizeof w->id);
    w->idx = idx;
    if (qm.wait_tail)
        qm.wait_tail->next = w;
    else
        qm.wait_head = w;
    qm.wait_tail = w;
    set_rcpt_busy(q, idx, 1);
}

static void dispatch_waiting(void)
{
    while (qm.wait_head && qm.inflight < qm.max_inflight) {
        struct waiting *w = qm.wait_head;
        qm.wait_head = w->next;
        if (!qm.wait_head)
            qm.wait_tail = NULL;
        struct qmgr_msg *q = qmgr_msg_find(w->id);
        if (q) {
            set_rcpt_busy(q, w->idx, 0);
            if (!q->deleted && q->place == STORE_QUEUE) {
                deliver_local(q, w->idx);
                arm_retry(q); /* deliver_local may defer at once */
            }
            qmgr_msg_finish_if_done(q);
        }
        free(w);
    }
}

/* Alias expansion of a local recipient: the targets become recipients of
 * their own, recorded in the queue file, so each has its own progress. */
static int expand_aliases(struct qmgr_msg *q, size_t idx)
{
    struct qmgr_expansion e;
    int rc = qmgr_expand(qm.resolver, q->m.rcpts[idx].addr, qm.myhostname, &e);
    if (rc == 1) {
        qmgr_expansion_free(&e);
        return 1;
    }
    if (rc < 0) {
        if (e.temporary)
            rcpt_result(q, idx, QMSG_DEFERRED, "local", 0, "4.3.0", e.error, NULL);
        else
            rcpt_result(q, idx, QMSG_BOUNCED, "local", 0, "5.4.6", e.error, NULL);
        qmgr_expansion_free(&e);
        return 0;
    }
    int unrecorded = 0;
    for (size_t i = 0; i < e.n; i++) {
        const struct alias_target *t = &e.t[i];
        /* A mailbox that another original recipient's expansion already
         * reaches gets the message once (as Postfix's duplicate filter). */
        int dup = 0;
        for (size_t k = 0; k < q->m.nrcpt && !dup; k++)
            dup = q->m.rcpts[k].parent >= 0 && strcasecmp(q->m.rcpts[k].addr, t->value) == 0;
        if (dup)
            continue;
        queue_file_message_add_rcpt(&q->m, t->value, "", q->m.rcpts[idx].notify, (int)idx);
        size_t nidx = q->m.nrcpt - 1;
        if (store_append_rcpt(&q->m, q->place, nidx) != 0) {
            log_warn("%s: cannot record alias expansion: %s", q->m.id, strerror(errno));
            unrecorded = 1;
        }
        if (t->type != ALIAS_LOCAL_USER && t->type != ALIAS_ADDRESS)
            rcpt_result(q, nidx, QMSG_BOUNCED, "local", 0, "5.3.0",
                        "delivery to commands, files and :include: lists in aliases is not supported yet", NULL);
    }
    qmgr_expansion_free(&e);
    set_result(&q->m.rcpts[idx], QF_EXPANDED, "2.0.0", "expanded by alias", NULL);
    /* Marked expanded on disk only when every target is recorded there:
     * otherwise a restart expands it again (duplicates, never a loss). */
    if (!unrecorded)
        record(q, idx);
    return 0;
}

static void route(struct qmgr_msg *q, size_t idx)
{
    struct queue_file_rcpt *r = &q->m.rcpts[idx];
    const char *hops = queue_file_message_attr(&q->m, "loop_hops");
    if (hops) {
        char *why = xasprintf("mail forwarding loop: too many hops (%s Received: header fields)", hops);
        rcpt_result(q, idx, QMSG_BOUNCED, "none", 0, "5.4.6", why, NULL);
        free(why);
        return;
    }
    enum qmgr_relay_route how = qmgr_relay_transport(q, idx);
    if (how == RELAY_ROUTE_SETTLED)
        return;
    if (how == RELAY_ROUTE_SMTP ||
        (how == RELAY_ROUTE_DEFAULT && resolver_class(qm.resolver, r->addr) != RESOLVE_LOCAL)) {
        qmgr_relay_enqueue(q, idx);
        return;
    }
    /* Recipients that came out of an expansion go straight to their
     * mailbox: alias_expand already followed every chain. */
    if (r->parent < 0 && expand_aliases(q, idx) == 0)
        return;
    if (qm.inflight >= qm.max_inflight)
        wait_for_slot(q, idx);
    else
        deliver_local(q, idx);
}

static void remove_message(struct qmgr_msg *q)
{
    if (store_remove(q->m.id, q->place) != 0)
        log_warn("%s: cannot remove queue file: %s", q->m.id, strerror(errno));
    log_info("%s: removed", q->m.id);
    qmgr_msg_free(q);
}

static void notices_done(struct qmgr_msg *q, int ok)
{
    q->notifying = 0;
    if (q->deleted) {
        qmgr_msg_finish_if_done(q);
        return;
    }
    if (ok) {
        remove_message(q);
        return;
    }
    /* A notice could not be queued (disk full?): keep the message and try
     * again in a minute. */
    struct timeval tv = {60, 0};
    evtimer_add(q->timer, &tv);
}

void qmgr_msg_finish_if_done(struct qmgr_msg *q)
{
    if (q->inflight)
        return;
    if (q->deleted) {
        qmgr_msg_free(q);
        return;
    }
    for (size_t i = 0; i < q->m.nrcpt; i++)
        if (rcpt_busy(q, i))
            return;
    if (queue_file_message_open_rcpts(&q->m) > 0 || q->notifying)
        return;
    /* The notices the message owes must be durable before it goes. */
    q->notifying = 1;
    if (qmgr_notify_finished(q, notices_done) == 1)
        return; /* q may already be gone */
    q->notifying = 0;
    remove_message(q);
}

void qmgr_msg_schedule(struct qmgr_msg *q)
{
    /* stopping: nothing new starts; what is due waits for the restart */
    if (q->deleted || q->place != STORE_QUEUE || qm.stopping)
        return;
    time_t now = time(NULL);
    /* m.nrcpt may grow while we go (alias expansion appends). */
    for (size_t i = 0; i < q->m.nrcpt; i++) {
        struct queue_file_rcpt *r = &q->m.rcpts[i];
        if (rcpt_busy(q, i))
            continue;
        if (r->state == QF_PENDING || (r->state == QF_DEFERRED && r->next_try <= now))
            route(q, i);
    }
    arm_retry(q);
    qmgr_msg_finish_if_done(q);
}

/* ---------- commits from smtpd and pickup ---------- */

struct commit_ctx {
    struct ipc_chan *ch;   /* smtpd connection, or NULL for pickup */
    uint32_t reqid;
    qmgr_commit_cb cb;
    void *arg;
};

static struct qmgr_msg *accept_message(struct queue_file_message *m)
{
    log_info("%s: from=<%s>, size=%llu, nrcpt=%zu (queue active)", m->id, m->sender,
             (unsigned long long)m->content_length, m->nrcpt);
    struct qmgr_msg *q = qmgr_msg_add(m, STORE_QUEUE);
    return q;
}

/* Connections from smtpd stay registered so a reply to a closed one is dropped. */
struct conn {
    struct conn *next;
    struct ipc_chan *ch;
};
static struct conn *conns;

static int conn_alive(struct ipc_chan *ch)
{
    for (struct conn *c = conns; c; c = c->next)
        if (c->ch == ch)
            return 1;
    return 0;
}

static void commit_done(void *arg, int ok, struct queue_file_message *m, const char *reply)
{
    struct commit_ctx *cc = arg;
    struct qmgr_msg *q = NULL;
    if (ok)
        q = accept_message(m);
    if (cc->ch && conn_alive(cc->ch)) {
        struct ipc_msg r;
        ipc_msg_init(&r, IPC_COMMIT_REPLY, cc->reqid);
        ipc_msg_add(&r, "status", ok ? "ok" : "fail");
        if (!ok)
            ipc_msg_add(&r, "reply", reply);
        ipc_chan_send(cc->ch, &r);
        ipc_msg_free(&r);
    }
    if (cc->cb)
        cc->cb(cc->arg, ok);
    free(cc);
    if (q)
        qmgr_msg_schedule(q);
}

void qmgr_commit(const char *id, qmgr_commit_cb cb, void *arg)
{
    struct commit_ctx *cc = xcalloc(1, sizeof *cc);
    cc->cb = cb;
    cc->arg = arg;
    store_commit(id, commit_done, cc);
}

static void conn_message(struct ipc_chan *ch, struct ipc_msg *m, void *arg)
{
    struct conn *c = arg;
    if (!m) {
        struct conn **pp = &conns;
        while (*pp && *pp != c)
            pp = &(*pp)->next;
        if (*pp)
            *pp = c->next;
        ipc_chan_free(ch);
        free(c);
        return;
    }
    if (m->type == IPC_COMMIT) {
        const char *id = ipc_msg_get(m, "id");
        struct commit_ctx *cc = xcalloc(1, sizeof *cc);
        cc->ch = ch;
        cc->reqid = m->reqid;
        store_commit(id ? id : "", commit_done, cc);
        return;
    }
    log_error("unexpected message type %u on the queue socket", m->type);
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    for (int i = 0; i < 16; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
            return;
        struct conn *c = xcalloc(1, sizeof *c);
        c->ch = ipc_chan_new(qm.base, cfd, conn_message, c);
        c->next = conns;
        conns = c;
    }
}

/* ---------- process ---------- */

static void found_at_start(void *arg, struct queue_file_message *m, enum store_place place)
{
    (void)arg;
    struct qmgr_msg *q = qmgr_msg_add(m, place);
    /* Deliveries in flight at the crash are simply tried again. */
    (void)q;
}

static void on_pickup_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    pickup_scan();
}

#define STOP_DRAIN_US (10 * 1000000LL)

static void on_stop_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (qmgr_relay_active() == 0 || now_us() - qm.stop_started >= STOP_DRAIN_US)
        event_base_loopexit(qm.base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    (void)arg;
    if (sig == SIGUSR1) {
        log_reopen();
        return;
    }
    if (qm.stopping)
        return;
    qm.stopping = 1;
    /* Outbound sessions get a few seconds to finish (the master kills
     * after 15): cut off after the final dot, a message is delivered
     * again after the restart. */
    qmgr_relay_quiesce();
    qm.stop_started = now_us();
    qm.stop_timer = event_new(qm.base, -1, EV_PERSIST, on_stop_tick, NULL);
    struct timeval tv = {0, 50000};
    event_add(qm.stop_timer, &tv);
    on_stop_tick(-1, 0, NULL);
}

int qmgr_main(struct runtime *rt)
{
    memset(&qm, 0, sizeof qm);
    qm.rt = rt;
    queue_id_init(0);
    qm.base = event_base_new();
    if (!qm.base)
        log_fatal("cannot create event loop");
    char *err = NULL;
    qm.resolver = resolver_new(rt->conf, &err);
    if (!qm.resolver)
        log_fatal("%s", err ? err : "cannot set up recipient lookups");
    qm.min_backoff = conf_time(rt->conf, "minimal_backoff_time");
    qm.max_backoff = conf_time(rt->conf, "maximal_backoff_time");
    if (qm.max_backoff < qm.min_backoff)
        qm.max_backoff = qm.min_backoff;
    qm.max_lifetime = conf_time(rt->conf, "maximal_queue_lifetime");
    qm.delay_warning = conf_time(rt->conf, "delay_warning_time");
    qm.bounce_lifetime = conf_time(rt->conf, "bounce_queue_lifetime");
    qm.max_inflight = (unsigned)conf_int(rt->conf, "default_process_limit");
    if (qm.max_inflight < 1)
        qm.max_inflight = 1;
    qm.myhostname = xstrdup(conf_str(rt->conf, "myhostname"));
    qmgr_notify_init(rt->conf);
    /* The SMTP client writes to peers that may have gone away. */
    signal(SIGPIPE, SIG_IGN);
    if (qmgr_relay_init(qm.base, rt, &err) != 0)
        log_fatal("outbound delivery: %s", err ? err : "cannot set up");
    int use_syncfs = strcmp(conf_str(rt->conf, "queue_sync_method"), "fsync") != 0;
    if (store_open(qm.base, rt->queue_dir, use_syncfs) != 0)
        log_fatal("cannot open the queue in %s", rt->queue_dir);
    store_recover(found_at_start, NULL);
    if (qm.nmsgs)
        log_info("queue: %zu messages recovered", qm.nmsgs);
    pickup_init(qm.base, rt);

    qm.listen_ev = event_new(qm.base, rt->queue_listen_fd, EV_READ | EV_PERSIST, on_accept, NULL);
    event_add(qm.listen_ev, NULL);
    qmgr_control_start(qm.base, rt->qmgr_listen_fd);
    int sigs[] = {SIGTERM, SIGINT, SIGUSR1};
    struct event *sigev[3];
    for (int i = 0; i < 3; i++) {
        sigev[i] = evsignal_new(qm.base, sigs[i], on_signal, NULL);
        event_add(sigev[i], NULL);
    }
    /* A safety net for maildrop files whose wake-up was lost. */
    qm.pickup_timer = event_new(qm.base, -1, EV_PERSIST, on_pickup_timer, NULL);
    struct timeval tv = {30, 0};
    event_add(qm.pickup_timer, &tv);

    size_t n;
    struct qmgr_msg **v = qmgr_msg_sorted(&n);
    for (size_t i = 0; i < n; i++)
        qmgr_msg_schedule(v[i]);
    free(v);
    pickup_scan();

    event_base_dispatch(qm.base);

    for (int i = 0; i < 3; i++)
        event_free(sigev[i]);
    event_free(qm.pickup_timer);
    if (qm.stop_timer)
        event_free(qm.stop_timer);
    event_free(qm.listen_ev);
    qmgr_control_stop();
    store_close();      /* its last callbacks may still need pickup's state */
    qmgr_relay_shutdown();   /* after them: a last commit may still route a recipient */
    pickup_shutdown();
    qmgr_notify_shutdown();
    while (conns) {
        struct conn *c = conns;
        conns = c->next;
        ipc_chan_free(c->ch);
        free(c);
    }
    if (qm.local)
        ipc_chan_free(qm.local);
    while (qm.deliveries) {
        struct delivery *d = qm.deliveries;
        qm.deliveries = d->next;
        free(d);
    }
    while (qm.wait_head) {
        struct waiting *w = qm.wait_head;
        qm.wait_head = w->next;
        free(w);
    }
    for (size_t h = 0; h < QMSG_HASH_SIZE; h++)
        while (qm.hash[h])
            qmgr_msg_free(qm.hash[h]);
    resolver_free(qm.resolver);
    free(qm.myhostname);
    event_base_free(qm.base);
    return 0;
}
