/* qmgr_local: local deliveries seen from the queue process (see qmgr_local.h). */
#include "qmgr/qmgr_local.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "conf/conf.h"
#include "daemon/runtime.h"
#include "maps/alias.h"
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
#include "util/strbuf.h"

/* One request to the local agent, waiting for its reply (or, after
 * "sent-unsynced", for the sync that makes the mailbox entry durable). */
struct delivery {
    struct delivery *next;
    uint32_t reqid;
    struct qmgr_msg *q;
    size_t idx;
    int64_t start_us;
    char *dsn, *text;
    char id[QUEUE_ID_LEN + 1]; /* its content stays where the agent reads it until done */
};

static void delivery_free(struct delivery *d)
{
    store_content_done(d->id);
    free(d->dsn);
    free(d->text);
    free(d);
}

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
    int stopping;            /* qmgr_local_quiesce: nothing new starts */
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
    delivery_free(d);
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

/* The reasons the local agent gives for a .forward's and an :include:'s
 * expansion, kept as the list recipient's result in the queue file; the
 * queue reads them back to know where a target came from. */
#define EXPANDED_BY_FORWARD "expanded by .forward"
#define EXPANDED_BY_LUSER "expanded by luser_relay"   /* an unknown local user's mail */

/* Where an alias target comes from, for the local agent to check. */
struct target_origin {
    char *alias;            /* the alias that lists it (or its :include:) */
    char *forward_of;       /* or the user whose .forward does */
    char *include;          /* the :include: files between, outermost first, one a line; or NULL */
    const char *expanded;   /* the address that was expanded */
};

static int starts_include(const char *addr)
{
    return strncmp(addr, ":include:", 9) == 0;
}

/* The domain a bare name in a .forward or :include: file gets: that of
 * the nearest address above the list. */
static const char *list_domain(const struct qmgr_msg *q, size_t idx)
{
    for (int p = (int)idx; p >= 0 && (size_t)p < q->m.nrcpt; p = q->m.rcpts[p].parent) {
        const char *at = strrchr(q->m.rcpts[p].addr, '@');
        if (at && !starts_include(q->m.rcpts[p].addr) && q->m.rcpts[p].addr[0] != '|')
            return at + 1;
    }
    return "localhost";
}

/* Whether idx or a recipient above it is the :include: addr. */
static int include_above(const struct qmgr_msg *q, size_t idx, const char *addr)
{
    for (int p = (int)idx; p >= 0 && (size_t)p < q->m.nrcpt; p = q->m.rcpts[p].parent)
        if (strcmp(q->m.rcpts[p].addr, addr) == 0)
            return 1;
    return 0;
}

/* The local agent read a .forward or :include: file: what it lists become
 * recipients of their own, recorded in the queue file, as alias targets
 * are (qmgr.c's expand_aliases); the list itself is done. */
static void delivery_expanded(struct delivery *d, const struct ipc_msg *m)
{
    struct qmgr_msg *q = d->q;
    size_t idx = d->idx;
    lq.inflight--;
    delivery_free(d);
    qmgr_msg_rcpt_release(q, idx);
    if (q->deleted) {
        qmgr_msg_finish_if_done(q);
        return;
    }
    const char *text = ipc_msg_get(m, "text");
    char *reason = xstrdup(text && (strcmp(text, EXPANDED_BY_FORWARD) == 0 || strcmp(text, EXPANDED_BY_LUSER) == 0)
                               ? text
                               : "expanded by :include:");
    char *domain = xstrdup(list_domain(q, idx));
    uint64_t n = ipc_msg_get_u64(m, "ntargets", 0);
    int unrecorded = 0;
    size_t added = 0;
    for (uint64_t i = 0; i < n && i < ALIAS_MAX_TARGETS; i++) {
        char name[32];
        snprintf(name, sizeof name, "target%llu", (unsigned long long)i);
        const char *t = ipc_msg_get(m, name);
        if (!t || !*t)
            continue;
        int special = t[0] == '|' || t[0] == '/' || starts_include(t);
        char *addr = special || strchr(t, '@') ? xstrdup(t) : xasprintf("%s@%s", t, domain);
        /* an :include: of a file that already lists it, directly or
         * further up, is a loop: recorded anyway so that its delivery says
         * so, rather than dropped as a duplicate of the list it names */
        int loop = starts_include(addr) && include_above(q, idx, addr);
        int dup = 0;
        for (size_t k = 0; k < q->m.nrcpt && !dup && !loop; k++)
            dup = k != idx && q->m.rcpts[k].parent >= 0 &&
                  (special ? strcmp(q->m.rcpts[k].addr, addr) : strcasecmp(q->m.rcpts[k].addr, addr)) == 0;
        if (!dup) {
            struct queue_file_rcpt *child =
                queue_file_message_add_rcpt(&q->m, addr, "", q->m.rcpts[idx].notify, (int)idx);
            /* an address meets the local aliases again, as Postfix's
             * forwarded copy does; commands and files go to local as they are */
            child->flags |= special ? QF_RCPT_VIRTUAL_DONE : QF_RCPT_FROM_VIRTUAL;
            if (store_append_rcpt(&q->m, q->place, q->m.nrcpt - 1) != 0) {
                log_warn("%s: cannot record the expansion of %s: %s", q->m.id, q->m.rcpts[idx].addr,
                         strerror(errno));
                unrecorded = 1;
            }
            added++;
        }
        free(addr);
    }
    log_info("%s: to=<%s>: %s to %zu recipient%s", q->m.id, q->m.rcpts[idx].addr, reason, added,
             added == 1 ? "" : "s");
    qmgr_msg_set_result(&q->m.rcpts[idx], QF_EXPANDED, "2.0.0", reason, NULL);
    if (!unrecorded)
        qmgr_msg_record(q, idx);
    free(reason);
    free(domain);
    qmgr_msg_schedule(q);   /* routes the new recipients; may free q */
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
    if (status && strcmp(status, "expanded") == 0) {
        delivery_expanded(d, m);
    } else if (status && strcmp(status, "sent-unsynced") == 0) {
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

/* Fills o for alias target idx: the alias or .forward above it, and the
 * :include: files between (nested ones included, at most
 * ALIAS_MAX_INCLUDE_DEPTH). 0, or -1 when the recipient is settled here
 * (bounced or deferred). */
static int target_origin(struct qmgr_msg *q, size_t idx, struct target_origin *o)
{
    memset(o, 0, sizeof o[0]);
    size_t listed = idx;    /* what the alias or .forward lists */
    int p = q->m.rcpts[idx].parent;
    size_t depth = 0;
    const char *files[ALIAS_MAX_INCLUDE_DEPTH];   /* innermost first */
    const char *why = NULL, *enh = "5.3.0";
    char too_deep[64];
    snprintf(too_deep, sizeof too_deep, "too many nested :include: lists (at most %d)", ALIAS_MAX_INCLUDE_DEPTH);
    while (p >= 0 && (size_t)p < q->m.nrcpt && starts_include(q->m.rcpts[p].addr)) {
        if (depth == ALIAS_MAX_INCLUDE_DEPTH) {
            why = too_deep;
            enh = "5.4.6";   /* as Postfix reports a nesting too deep to be anything but a loop */
            break;
        }
        files[depth++] = q->m.rcpts[p].addr + 9;
        listed = (size_t)p;
        p = q->m.rcpts[p].parent;
    }
    if (!why && (p < 0 || (size_t)p >= q->m.nrcpt))
        why = "no alias lists this target";
    if (why) {
        qmgr_msg_rcpt_result(q, idx, QMSG_BOUNCED, "local", 0, enh, why);
        return -1;
    }
    if (depth) {
        struct strbuf chain = STRBUF_INIT;
        for (size_t i = depth; i > 0; i--)
            strbuf_printf(&chain, "%s%s", i == depth ? "" : "\n", files[i - 1]);
        o->include = strbuf_detach(&chain);
    }
    const struct queue_file_rcpt *g = &q->m.rcpts[p];
    o->expanded = g->addr;
    if (g->state == QF_EXPANDED && strcmp(g->reason, EXPANDED_BY_FORWARD) == 0) {
        o->forward_of = resolver_local_user(lq.resolver, g->addr);
        return 0;
    }
    int rc = qmgr_expand_source(lq.resolver, g->addr, q->m.rcpts[listed].addr, &o->alias);
    if (rc == 0)
        return 0;
    free(o->include);
    o->include = NULL;
    if (rc < 0)
        qmgr_msg_rcpt_result(q, idx, QMSG_DEFERRED, "local", 0, "4.3.0", "alias lookup failed; try again later");
    else
        qmgr_msg_rcpt_result(q, idx, QMSG_BOUNCED, "local", 0, "5.3.0", "no alias lists this target any more");
    return -1;
}

/* The copy a user's own .forward keeps ("\user" or "user"): delivered to the
 * mailbox without reading the .forward again. */
static int own_forward_copy(const struct qmgr_msg *q, size_t idx)
{
    int p = q->m.rcpts[idx].parent;
    if (p < 0 || (size_t)p >= q->m.nrcpt || q->m.rcpts[p].state != QF_EXPANDED ||
        strcmp(q->m.rcpts[p].reason, EXPANDED_BY_FORWARD) != 0)
        return 0;
    char *self = resolver_local_user(lq.resolver, q->m.rcpts[idx].addr);
    char *owner = resolver_local_user(lq.resolver, q->m.rcpts[p].addr);
    int same = strcmp(self, owner) == 0;
    free(self);
    free(owner);
    return same;
}

/* The recipient as it arrived (RCPT TO), before aliases, virtual aliases
 * and .forward files: the top of idx's chain. For X-Original-To. */
static const char *arrived_as(const struct qmgr_msg *q, size_t idx)
{
    size_t i = idx;
    for (size_t hops = 0; hops < q->m.nrcpt && q->m.rcpts[i].parent >= 0 &&
                          (size_t)q->m.rcpts[i].parent < q->m.nrcpt; hops++)
        i = (size_t)q->m.rcpts[i].parent;
    return q->m.rcpts[i].addr;
}

static void deliver_now(struct qmgr_msg *q, size_t idx)
{
    struct queue_file_rcpt *r = &q->m.rcpts[idx];
    struct target_origin o;
    memset(&o, 0, sizeof o);
    int listed = qmgr_local_is_alias_target(r);
    if (listed && target_origin(q, idx, &o) != 0)
        return;
    if (local_connect() != 0) {
        free(o.alias);
        free(o.forward_of);
        free(o.include);
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
    char *path;
    uint64_t base;
    store_content_locate(q->m.id, q->place, &path, &base);
    str_copy(d->id, q->m.id, sizeof d->id);
    struct ipc_msg m;
    ipc_msg_init(&m, IPC_DELIVER, d->reqid);
    ipc_msg_add(&m, "id", q->m.id);
    ipc_msg_add(&m, "path", path);
    ipc_msg_add_u64(&m, "offset", base + q->m.content_offset);
    ipc_msg_add_u64(&m, "length", q->m.content_length);
    ipc_msg_add(&m, "sender", q->m.sender);
    ipc_msg_add(&m, "rcpt", r->addr);
    ipc_msg_add(&m, "user", user);
    ipc_msg_add(&m, "orig_rcpt", arrived_as(q, idx));
    ipc_msg_add_u64(&m, "arrival", (uint64_t)(q->m.arrival_us / 1000000));
    const char *prepend = queue_file_message_attr(&q->m, QF_ATTR_PREPEND);
    if (prepend)
        ipc_msg_add(&m, "prepend", prepend);
    if (listed) {
        if (o.alias)
            ipc_msg_add(&m, "alias", o.alias);
        if (o.forward_of)
            ipc_msg_add(&m, "forward_of", o.forward_of);
        if (o.include)
            ipc_msg_add(&m, "include", o.include);
        ipc_msg_add(&m, "alias_rcpt", o.expanded);
        free(o.alias);
        free(o.forward_of);
        free(o.include);
    } else if (own_forward_copy(q, idx)) {
        ipc_msg_add(&m, "skip_forward", "yes");
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
    while (lq.wait_head && lq.inflight < lq.max_inflight && !lq.stopping) {
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

void qmgr_local_quiesce(void)
{
    lq.stopping = 1;
}

unsigned qmgr_local_active(void)
{
    return lq.inflight;
}

void qmgr_local_deliver(struct qmgr_msg *q, size_t idx)
{
    if (lq.inflight >= lq.max_inflight || lq.stopping)
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
        delivery_free(d);
    }
    while (lq.wait_head) {
        struct waiting *w = lq.wait_head;
        lq.wait_head = w->next;
        free(w);
    }
    memset(&lq, 0, sizeof lq);
}
