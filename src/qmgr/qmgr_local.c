/* qmgr_local: local deliveries seen from the queue process (see qmgr_local.h). */
#include "qmgr/qmgr_local.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/conf.h"
#include "daemon/runtime.h"
#include "maps/resolver.h"
#include "qmgr/qmgr_expand.h"
#include "qmgr/qmgr_msg.h"
#include "spool/spool.h"
#include "spool/store.h"
#include "util/clock.h"
#include "util/ipc.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

/* One request to the local agent, waiting for its reply (or, after
 * "sent-unsynced", for the sync that makes the mailbox entry durable). */
struct delivery {
    struct delivery *next;
    uint32_t reqid;
    struct qmgr_msg *q;
    size_t idx;
    int64_t start_us;
    char *dsn, *text;
};

/* A recipient waiting for a free delivery slot, by queue id: the message
 * may be deleted meanwhile. */
struct waiting {
    struct waiting *next;
    char id[QUEUE_ID_LEN + 1];
    size_t idx;
};

static struct {
    struct event_base *base;
    struct runtime *rt;
    struct resolver *resolver;
    struct ipc_chan *chan;
    unsigned gen;               /* counts connections to local, to drop stale replies */
    struct delivery *deliveries;
    unsigned inflight, max_inflight;
    struct waiting *wait_head, *wait_tail;
    uint32_t next_reqid;
} lq;

static void local_reply(struct ipc_chan *ch, struct ipc_msg *m, void *arg);

void qmgr_local_init(struct event_base *base, struct runtime *rt, struct resolver *resolver)
{
    memset(&lq, 0, sizeof lq);
    lq.base = base;
    lq.rt = rt;
    lq.resolver = resolver;
    lq.max_inflight = (unsigned)conf_int(rt->conf, "default_process_limit");
    if (lq.max_inflight < 1)
        lq.max_inflight = 1;
}

static int local_connect(void)
{
    if (lq.chan)
        return 0;
    char *path = xasprintf("%s/%s", lq.rt->queue_dir, QSOCK_LOCAL);
    int fd = ipc_connect(path);
    if (fd < 0) {
        log_warn("connect to local delivery agent %s: %s", path, strerror(errno));
        free(path);
        return -1;
    }
    free(path);
    lq.chan = ipc_chan_new(lq.base, fd, local_reply, NULL);
    lq.gen++;
    return 0;
}

static void delivery_done(struct delivery *d, const char *status, const char *dsn, const char *text)
{
    struct qmgr_msg *q = d->q;
    lq.inflight--;
    enum qmgr_msg_outcome o = strcmp(status, "sent") == 0      ? QMSG_SENT
                              : strcmp(status, "bounced") == 0 ? QMSG_BOUNCED
                                                               : QMSG_DEFERRED;
    qmgr_msg_rcpt_finish(q, d->idx, o, "local", d->start_us, dsn, text, NULL);
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
    unsigned gen;
};

static void local_barrier_done(void *arg, int ok)
{
    struct barrier_ctx *b = arg;
    if (lq.chan && lq.gen == b->gen) {
        struct ipc_msg r;
        ipc_msg_init(&r, IPC_BARRIER_REPLY, b->reqid);
        ipc_msg_add(&r, "status", ok ? "ok" : "fail");
        ipc_chan_send(lq.chan, &r);
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
        lq.chan = NULL;
        struct delivery *list = lq.deliveries;
        lq.deliveries = NULL;
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
        b->gen = lq.gen;
        /* without a time, assume the data is as old as it can be */
        struct timespec written = {(time_t)ipc_msg_get_u64(m, "written_s", 1),
                                   (long)ipc_msg_get_u64(m, "written_ns", 0) % 1000000000L};
        store_barrier_since(written, local_barrier_done, b);
        return;
    }
    struct delivery **pp = &lq.deliveries;
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

int qmgr_local_is_alias_target(const struct queue_file_rcpt *r)
{
    return r->parent >= 0 && !(r->flags & QF_RCPT_FROM_VIRTUAL) &&
           (r->addr[0] == '|' || r->addr[0] == '/' || strncmp(r->addr, ":include:", 9) == 0);
}

/* For an alias target: which alias lists it (the agent checks it). 0 with
 * *alias, or -1 when the recipient is settled here. */
static int alias_of_target(struct qmgr_msg *q, size_t idx, char **alias)
{
    const struct queue_file_rcpt *r = &q->m.rcpts[idx];
    const char *parent = (size_t)r->parent < q->m.nrcpt ? q->m.rcpts[r->parent].addr : "";
    int rc = qmgr_expand_source(lq.resolver, parent, r->addr, alias);
    if (rc == 0)
        return 0;
    if (rc < 0)
        qmgr_msg_rcpt_result(q, idx, QMSG_DEFERRED, "local", 0, "4.3.0", "alias lookup failed; try again later");
    else
        qmgr_msg_rcpt_result(q, idx, QMSG_BOUNCED, "local", 0, "5.3.0", "no alias lists this target any more");
    return -1;
}

static void deliver_now(struct qmgr_msg *q, size_t idx)
{
    struct queue_file_rcpt *r = &q->m.rcpts[idx];
    char *alias = NULL;
    if (qmgr_local_is_alias_target(r) && alias_of_target(q, idx, &alias) != 0)
        return;
    if (local_connect() != 0) {
        free(alias);
        qmgr_msg_rcpt_result(q, idx, QMSG_DEFERRED, "local", 0, "4.3.0", "local delivery agent unavailable");
        return;
    }
    struct delivery *d = xcalloc(1, sizeof *d);
    d->reqid = ++lq.next_reqid;
    d->q = q;
    d->idx = idx;
    d->start_us = clock_now_us();
    d->next = lq.deliveries;
    lq.deliveries = d;
    lq.inflight++;
    qmgr_msg_rcpt_take(q, idx);

    char *user = resolver_local_user(lq.resolver, r->addr);
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
    const char *prepend = queue_file_message_attr(&q->m, QF_ATTR_PREPEND);
    if (prepend)
        ipc_msg_add(&m, "prepend", prepend);
    if (alias) {
        ipc_msg_add(&m, "alias", alias);
        ipc_msg_add(&m, "alias_rcpt", q->m.rcpts[r->parent].addr);
        free(alias);
    }
    ipc_chan_send(lq.chan, &m);
    ipc_msg_free(&m);
    free(user);
    free(path);
}

/* A waiting recipient is reserved (busy) so the scheduler leaves it alone,
 * but not taken: a message deleted meanwhile may go at once. */
static void wait_for_slot(struct qmgr_msg *q, size_t idx)
{
    struct waiting *w = xcalloc(1, sizeof *w);
    str_copy(w->id, q->m.id, sizeof w->id);
    w->idx = idx;
    if (lq.wait_tail)
        lq.wait_tail->next = w;
    else
        lq.wait_head = w;
    lq.wait_tail = w;
    qmgr_msg_rcpt_reserve(q, idx, 1);
}

static void dispatch_waiting(void)
{
    while (lq.wait_head && lq.inflight < lq.max_inflight) {
        struct waiting *w = lq.wait_head;
        lq.wait_head = w->next;
        if (!lq.wait_head)
            lq.wait_tail = NULL;
        struct qmgr_msg *q = qmgr_msg_find(w->id);
        if (q) {
            qmgr_msg_rcpt_reserve(q, w->idx, 0);
            if (!q->deleted && q->place == STORE_QUEUE) {
                deliver_now(q, w->idx);
                qmgr_msg_arm_retry(q); /* deliver_now may defer at once */
            }
            qmgr_msg_finish_if_done(q);
        }
        free(w);
    }
}

void qmgr_local_deliver(struct qmgr_msg *q, size_t idx)
{
    if (lq.inflight >= lq.max_inflight)
        wait_for_slot(q, idx);
    else
        deliver_now(q, idx);
}

void qmgr_local_shutdown(void)
{
    if (lq.chan)
        ipc_chan_free(lq.chan);
    while (lq.deliveries) {
        struct delivery *d = lq.deliveries;
        lq.deliveries = d->next;
        free(d->dsn);
        free(d->text);
        free(d);
    }
    while (lq.wait_head) {
        struct waiting *w = lq.wait_head;
        lq.wait_head = w->next;
        free(w);
    }
    memset(&lq, 0, sizeof lq);
}
