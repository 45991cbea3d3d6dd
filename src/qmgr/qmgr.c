/* qmgr: the queue process: its main, its signals, and the scheduler.
 *
 * The only process that changes the spool (through spool/store). Its parts:
 *  - qmgr_commit.c takes commits from smtpd over private/queue (and from
 *    pickup.c, which picks up `sendmail` submissions from maildrop/);
 *  - qmgr_msg.c holds the message table and records each recipient's result,
 *    with retries by exponential backoff and expiry;
 *  - this file schedules every open recipient at once on arrival: routes it
 *    to the relay (qmgr_relay.c; qmgr_nexthop.c says where it goes) or, after alias expansion (qmgr_expand.c),
 *    to the local delivery agent (qmgr_local.c); and when a message has no
 *    open recipient left, sends the notices it owes (qmgr_notify.c) and
 *    removes it;
 *  - qmgr_control.c answers `tern queue` / `mailq` over public/qmgr.
 * Runs unprivileged (mail_owner). */
#include "qmgr/qmgr.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "conf/conf.h"
#include "daemon/runtime.h"
#include "maps/alias.h"
#include "maps/map.h"
#include "maps/resolver.h"
#include "maps/transport.h"
#include "qmgr/pickup.h"
#include "qmgr/qmgr_capture.h"
#include "qmgr/qmgr_commit.h"
#include "qmgr/qmgr_dmarc.h"
#include "qmgr/qmgr_control.h"
#include "qmgr/qmgr_expand.h"
#include "qmgr/qmgr_msg.h"
#include "qmgr/qmgr_nexthop.h"
#include "qmgr/qmgr_local.h"
#include "qmgr/qmgr_notify.h"
#include "qmgr/qmgr_owner.h"
#include "qmgr/qmgr_relay.h"
#include "spool/queue_id.h"
#include "spool/store.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/mem.h"

static struct {
    struct event_base *base;
    struct runtime *rt;
    struct resolver *resolver;
    char *myhostname;
    char *mailbox_transport;
    int owner_request_special;
    struct event *pickup_timer;
    int stopping;
    int64_t stop_started;       /* when SIGTERM came: outbound sessions drain */
    struct event *stop_timer;
} qm;

/* ---------- scheduling ---------- */

/* Expansions (aliases, virtual aliases) one recipient may be the end of;
 * more is a loop between them. */
#define QMGR_MAX_EXPANSION_DEPTH 20

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
            qmgr_msg_rcpt_result(q, idx, QMSG_DEFERRED, "local", 0, "4.3.0", e.error);
        else
            qmgr_msg_rcpt_result(q, idx, QMSG_BOUNCED, "local", 0, "5.4.6", e.error);
        qmgr_expansion_free(&e);
        return 0;
    }
    /* owner-list: the list's addresses go out from its owner (qmgr_owner.h) */
    char *owner = NULL;
    int has_owner = qm.owner_request_special && *q->m.sender
                        ? qmgr_owner_of(qm.resolver, q->m.rcpts[idx].addr, &owner) : 0;
    if (has_owner < 0) {
        qmgr_msg_rcpt_result(q, idx, QMSG_DEFERRED, "local", 0, "4.3.0", "alias lookup failed; try again later");
        qmgr_expansion_free(&e);
        return 0;
    }
    const char **to_owner = xcalloc(e.n + 1, sizeof *to_owner);
    size_t nowner = 0;
    int unrecorded = 0;
    for (size_t i = 0; i < e.n; i++) {
        const struct alias_target *t = &e.t[i];
        if (owner && (t->type == ALIAS_ADDRESS || t->type == ALIAS_LOCAL_USER)) {
            to_owner[nowner++] = t->value;
            continue;
        }
        /* A mailbox that another original recipient's expansion already
         * reaches gets the message once (as Postfix's duplicate filter). */
        int dup = 0;
        for (size_t k = 0; k < q->m.nrcpt && !dup; k++)
            dup = q->m.rcpts[k].parent >= 0 && strcasecmp(q->m.rcpts[k].addr, t->value) == 0;
        if (dup)
            continue;
        struct queue_file_rcpt *child =
            queue_file_message_add_rcpt(&q->m, t->value, "", q->m.rcpts[idx].notify, (int)idx);
        /* a local user is delivered as it is; an address is looked up in
         * virtual_alias_maps, as Postfix's local agent's forwarded copy is */
        if (t->type != ALIAS_ADDRESS) /* local-commands: and |command, /file, :include: */
            child->flags |= QF_RCPT_VIRTUAL_DONE;
        size_t nidx = q->m.nrcpt - 1;
        if (store_append_rcpt(&q->m, q->place, nidx) != 0) {
            log_warn("%s: cannot record alias expansion: %s", q->m.id, strerror(errno));
            unrecorded = 1;
        }
    }
    if (nowner) {
        /* recorded as expanded once the owner's message is committed */
        if (qmgr_owner_resubmit(q, idx, owner, to_owner, nowner) != 0)
            qmgr_msg_rcpt_result(q, idx, QMSG_DEFERRED, "local", 0, "4.3.0", "cannot queue the list's expansion");
        free(to_owner);
        free(owner);
        qmgr_expansion_free(&e);
        return 0;
    }
    free(to_owner);
    free(owner);
    qmgr_expansion_free(&e);
    qmgr_msg_set_result(&q->m.rcpts[idx], QF_EXPANDED, "2.0.0", "expanded by alias", NULL);
    /* Marked expanded on disk only when every target is recorded there:
     * otherwise a restart expands it again (duplicates, never a loss). */
    if (!unrecorded)
        qmgr_msg_record(q, idx);
    return 0;
}

/* virtual_alias_maps for one recipient (every class, as Postfix's cleanup
 * does): the addresses it ends in become recipients of their own, marked
 * so that they are not looked up again. 1 when it is no virtual alias
 * (routing goes on), 0 when it is settled here. */
static int expand_virtual(struct qmgr_msg *q, size_t idx)
{
    struct resolve_targets t;
    char *error;
    const char *dsn;
    int rc = resolver_virtual_expand(qm.resolver, q->m.rcpts[idx].addr, &t, &error, &dsn);
    if (rc == 1)
        return 1;
    if (rc < 0) {
        /* A table that cannot be read or that is wrong (a limit, a loop)
         * defers: the admin's fix, not the sender, decides the outcome. */
        if (strcmp(dsn, RESOLVE_DSN_ALIAS_ERROR) == 0)
            log_warn("%s: to=<%s>: virtual_alias_maps: %s; deferred until the table is fixed", q->m.id,
                     q->m.rcpts[idx].addr, error);
        qmgr_msg_rcpt_result(q, idx, QMSG_DEFERRED, "virtual", 0, dsn, error);
        free(error);
        return 0;
    }
    if (t.n == 1 && strcasecmp(t.v[0], q->m.rcpts[idx].addr) == 0) {
        /* it names only itself: delivered as it is */
        q->m.rcpts[idx].flags |= QF_RCPT_VIRTUAL_DONE;
        resolve_targets_free(&t);
        return 1;
    }
    int unrecorded = 0;
    for (size_t i = 0; i < t.n; i++) {
        int dup = 0;
        for (size_t k = 0; k < q->m.nrcpt && !dup; k++)
            dup = q->m.rcpts[k].parent >= 0 && strcasecmp(q->m.rcpts[k].addr, t.v[i]) == 0;
        if (dup)
            continue;
        /* (a copy: adding may move the array the parent's strings hang from) */
        char *orcpt = xstrdup(q->m.rcpts[idx].orcpt);
        struct queue_file_rcpt *child =
            queue_file_message_add_rcpt(&q->m, t.v[i], orcpt, q->m.rcpts[idx].notify, (int)idx);
        free(orcpt);
        child->flags |= QF_RCPT_VIRTUAL_DONE | QF_RCPT_FROM_VIRTUAL;
        if (store_append_rcpt(&q->m, q->place, q->m.nrcpt - 1) != 0) {
            log_warn("%s: cannot record virtual alias expansion: %s", q->m.id, strerror(errno));
            unrecorded = 1;
        }
    }
    log_info("%s: to=<%s>: expanded by virtual_alias_maps to %zu address%s", q->m.id, q->m.rcpts[idx].addr, t.n,
             t.n == 1 ? "" : "es");
    resolve_targets_free(&t);
    qmgr_msg_set_result(&q->m.rcpts[idx], QF_EXPANDED, "2.0.0", "expanded by virtual alias", NULL);
    if (!unrecorded)
        qmgr_msg_record(q, idx);
    return 0;
}

/* How many expansions led to recipient idx. */
static int expansion_depth(const struct qmgr_msg *q, size_t idx)
{
    int depth = 0;
    for (int p = q->m.rcpts[idx].parent; p >= 0 && (size_t)p < q->m.nrcpt && depth <= QMGR_MAX_EXPANSION_DEPTH;
         p = q->m.rcpts[p].parent)
        depth++;
    return depth;
}

/* ---------- waiting for asynchronous tables (pgsql:) ---------- */

#define QMGR_TABLE_ROUNDS 8   /* routings in a row one message may wait */

static struct {
    int routing;                 /* inside route() */
    unsigned long pending_base;  /* map_pending_count() when it began */
    char **ids;                  /* messages to route again when answers arrive */
    size_t n, cap;
} tw;

int qmgr_route_waits_for_table(struct qmgr_msg *q)
{
    if (!tw.routing || map_pending_count() == tw.pending_base || q->table_rounds >= QMGR_TABLE_ROUNDS)
        return 0;
    for (size_t i = 0; i < tw.n; i++)
        if (strcmp(tw.ids[i], q->m.id) == 0)
            return 1;
    if (tw.n == tw.cap) {
        tw.cap = tw.cap ? tw.cap * 2 : 16;
        tw.ids = xrealloc(tw.ids, tw.cap * sizeof *tw.ids);
    }
    tw.ids[tw.n++] = xstrdup(q->m.id);
    return 1;
}

/* The map layer's answer hook: the waiting messages are routed again. */
static void tables_answered(void *arg)
{
    (void)arg;
    char **ids = tw.ids;
    size_t n = tw.n;
    memset(&tw, 0, sizeof tw);
    for (size_t i = 0; i < n; i++) {
        struct qmgr_msg *q = qmgr_msg_find(ids[i]);
        if (q) {
            q->table_rounds++;
            qmgr_msg_schedule(q);
        }
        free(ids[i]);
    }
    free(ids);
}

static void route_once(struct qmgr_msg *q, size_t idx);

static void route(struct qmgr_msg *q, size_t idx)
{
    tw.routing = 1;
    tw.pending_base = map_pending_count();
    route_once(q, idx);
    tw.routing = 0;
    if (map_pending_count() == tw.pending_base)
        q->table_rounds = 0;
}

static void deliver_by(struct qmgr_msg *q, size_t idx, enum resolve_class cls, const struct transport_hop *hop,
                       const char *source);

/* The local transport: aliases, then mailbox_transport or the local agent. */
static void deliver_local(struct qmgr_msg *q, size_t idx)
{
    const struct queue_file_rcpt *r = &q->m.rcpts[idx];
    /* Recipients that came out of an alias expansion go straight to their
     * mailbox: alias_expand already followed every chain. Those that came
     * out of virtual_alias_maps meet the local aliases now. */
    if ((r->parent < 0 || (r->flags & QF_RCPT_FROM_VIRTUAL)) && expand_aliases(q, idx) == 0)
        return;
    /* mailbox_transport: a local user's mailbox is somewhere else (Dovecot's
     * LMTP); local's own steps (.forward) are then that server's business */
    if (*qm.mailbox_transport) {
        struct transport_hop hop;
        char *err = NULL;
        if (transport_parse(qm.mailbox_transport, qm.rt->queue_dir, &hop, &err) != 0) {
            char *why = xasprintf("mailbox_transport: %s", err);
            log_warn("%s: %s", q->m.id, why);
            qmgr_msg_rcpt_result(q, idx, QMSG_DEFERRED, "none", 0, "4.3.5", why);
            free(why);
            free(err);
            return;
        }
        int local = hop.kind == TRANSPORT_LOCAL;
        if (!local)
            deliver_by(q, idx, RESOLVE_LOCAL, &hop, "mailbox_transport");
        transport_hop_free(&hop);
        if (!local)
            return;
    }
    qmgr_local_deliver(q, idx);
}

/* Hands recipient idx to what its transport (hop, from source) says. */
static void deliver_by(struct qmgr_msg *q, size_t idx, enum resolve_class cls, const struct transport_hop *hop,
                       const char *source)
{
    switch (hop->kind) {
    case TRANSPORT_SMTP:
    case TRANSPORT_LMTP:
        qmgr_relay_enqueue(q, idx, hop);
        return;
    case TRANSPORT_LOCAL:
        deliver_local(q, idx);
        return;
    case TRANSPORT_VIRTUAL:
        /* tern's virtual delivery is the local agent's, which decides a
         * mailbox's kind from its own configuration, not from the queue
         * (mail_owner's): given another address it would write a local
         * user's mailbox, so such an entry waits for a fix */
        if (cls == RESOLVE_VIRTUAL_MAILBOX) {
            qmgr_local_deliver(q, idx);
        } else {
            char *why = xasprintf("%s: virtual: delivers only addresses of virtual_mailbox_domains", source);
            log_warn("%s: to=<%s>: %s", q->m.id, q->m.rcpts[idx].addr, why);
            qmgr_msg_rcpt_result(q, idx, QMSG_DEFERRED, "none", 0, "4.3.5", why);
            free(why);
        }
        return;
    case TRANSPORT_ERROR:
        /* smtpd refuses transport_maps' error: entries at RCPT; this is mail
         * from sendmail, queued before the entry was added, or a parameter */
        qmgr_msg_rcpt_result(q, idx, QMSG_BOUNCED, "none", 0, hop->status, hop->text);
        return;
    case TRANSPORT_RETRY:
        qmgr_msg_rcpt_result(q, idx, QMSG_DEFERRED, "none", 0, hop->status, hop->text);
        return;
    case TRANSPORT_DISCARD:
        qmgr_nexthop_discard(q, idx, hop->text);
        return;
    }
}

static void route_once(struct qmgr_msg *q, size_t idx)
{
    struct queue_file_rcpt *r = &q->m.rcpts[idx];
    const char *hops = queue_file_message_attr(&q->m, "loop_hops");
    if (hops) {
        char *why = xasprintf("mail forwarding loop: too many hops (%s Received: header fields)", hops);
        qmgr_msg_rcpt_result(q, idx, QMSG_BOUNCED, "none", 0, "5.4.6", why);
        free(why);
        return;
    }
    if (expansion_depth(q, idx) > QMGR_MAX_EXPANSION_DEPTH) {
        /* virtual_alias_maps and aliases naming each other */
        qmgr_msg_rcpt_result(q, idx, QMSG_BOUNCED, "none", 0, "5.4.6",
                             "mail forwarding loop: aliases and virtual aliases lead back to each other");
        return;
    }
    if (qmgr_local_is_alias_target(r)) {
        /* local-commands: an alias's |command, /file or :include: goes to
         * the local agent, which checks it against its own alias_maps */
        qmgr_local_deliver(q, idx);
        return;
    }
    if (!(r->flags & QF_RCPT_VIRTUAL_DONE) && expand_virtual(q, idx) == 0)
        return;
    r = &q->m.rcpts[idx];   /* the expansion may have moved the array */
    enum resolve_class cls;
    if (resolver_classify(qm.resolver, r->addr, &cls) != 0) {
        qmgr_msg_rcpt_result(q, idx, QMSG_DEFERRED, "none", 0, "4.3.0",
                             "domain lookup failed (virtual_alias_domains, virtual_mailbox_domains or relay_domains)");
        return;
    }
    /* transport_maps is asked once, over the class's default transport */
    struct transport_hop hop;
    const char *source;
    if (qmgr_nexthop_transport(q, idx, cls, &hop, &source) != 0)
        return;
    deliver_by(q, idx, cls, &hop, source);
    transport_hop_free(&hop);
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
        if (qmgr_msg_rcpt_busy(q, i))
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
    time_t now = clock_now();
    /* m.nrcpt may grow while we go (alias expansion appends). */
    for (size_t i = 0; i < q->m.nrcpt; i++) {
        struct queue_file_rcpt *r = &q->m.rcpts[i];
        if (qmgr_msg_rcpt_busy(q, i))
            continue;
        if (r->state == QF_PENDING || (r->state == QF_DEFERRED && r->next_try <= now))
            route(q, i);
    }
    qmgr_msg_arm_retry(q);
    qmgr_msg_finish_if_done(q);
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
    if ((qmgr_relay_active() == 0 && qmgr_local_active() == 0) || clock_now_us() - qm.stop_started >= STOP_DRAIN_US)
        event_base_loopexit(qm.base, NULL);
}

/* The journal failed a write or sync: stop as for SIGTERM (deliveries in
 * flight finish and are recorded where possible), and the master starts
 * the queue again, which reads back what the disk really holds. */
static void storage_failed(int err)
{
    (void)err;
    log_warn("queue: restarting to read the queue back from disk");
    raise(SIGTERM);
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
    /* ... and local deliveries in flight (a command the local agent lets
     * finish, LOCAL_STOP_GRACE) their results recorded */
    qmgr_local_quiesce();
    qm.stop_started = clock_now_us();
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
    /* pgsql: tables answer on this loop; waiting messages are routed again */
    map_set_event_base(qm.base);
    map_set_answer_hook(tables_answered, NULL);
    if (!qm.base)
        log_fatal("cannot create event loop");
    log_batch_on(qm.base);
    char *err = NULL;
    qm.resolver = resolver_new(rt->conf, &err);
    if (!qm.resolver)
        log_fatal("%s", err ? err : "cannot set up recipient lookups");
    qmgr_msg_init(qm.base, rt->conf);
    qmgr_local_init(qm.base, rt, qm.resolver);
    qm.myhostname = xstrdup(conf_str(rt->conf, "myhostname"));
    qm.mailbox_transport = xstrdup(conf_str(rt->conf, "mailbox_transport"));
    qm.owner_request_special = conf_bool(rt->conf, "owner_request_special");
    qmgr_notify_init(rt->conf);
    /* The SMTP client writes to peers that may have gone away. */
    signal(SIGPIPE, SIG_IGN);
    if (qmgr_relay_init(qm.base, rt, qm.resolver, &err) != 0)
        log_fatal("outbound delivery: %s", err ? err : "cannot set up");
    qmgr_dmarc_init(qm.base, rt->conf, rt->queue_dir, qmgr_relay_dns());
    const char *method = conf_str(rt->conf, "queue_sync_method");
    int sync = strcmp(method, "fsync") == 0 ? STORE_SYNC_FSYNC
               : strcmp(method, "journal") == 0 ? STORE_SYNC_JOURNAL
                                                : STORE_SYNC_SYNCFS;
    store_on_fatal(storage_failed);
    store_set_journal_segment_size((uint64_t)conf_int(rt->conf, "queue_journal_segment_size"));
    if (store_open(qm.base, rt->queue_dir, sync) != 0)
        log_fatal("cannot open the queue in %s", rt->queue_dir);
    if (qmgr_capture_init(qm.base, rt->conf, rt->queue_dir) != 0)
        log_fatal("capture mode: cannot open %s/capture", rt->queue_dir);
    store_set_writers_since(rt->started);
    store_recover(found_at_start, NULL);
    if (qmgr_msg_count())
        log_info("queue: %zu messages recovered", qmgr_msg_count());
    pickup_init(qm.base, rt);

    qmgr_commit_start(qm.base, rt->queue_listen_fd);
    qmgr_control_start(qm.base, rt->qmgr_listen_fd, rt->conf);
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
    qmgr_commit_stop();
    qmgr_control_stop();
    qmgr_dmarc_shutdown();   /* its counts to disk, while the DNS it may be waiting on still exists */
    store_close();      /* its last callbacks may still need pickup's state */
    qmgr_relay_shutdown();   /* after them: a last commit may still route a recipient */
    pickup_shutdown();
    qmgr_notify_shutdown();
    qmgr_commit_shutdown();
    qmgr_capture_shutdown();
    qmgr_local_shutdown();
    qmgr_msg_shutdown();
    resolver_free(qm.resolver);
    free(qm.myhostname);
    free(qm.mailbox_transport);
    log_batch_on(NULL);   /* its flush event goes with the loop */
    event_base_free(qm.base);
    return 0;
}
