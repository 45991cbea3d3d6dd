/* qmgr_msg: the queue process's message table and each recipient's
 * results (see qmgr_msg.h).
 *
 * Owns every state change of a recipient: a result is set in memory,
 * appended to the queue file and logged here; a deferral gets its next try
 * (the wait doubling from minimal_backoff_time up to maximal_backoff_time)
 * or, past maximal_queue_lifetime (bounce_queue_lifetime for notices),
 * fails as expired. Time comes from util/clock, so all of it is unit-tested
 * without sleeping. Runs on the queue process's event loop thread. */
#include "qmgr/qmgr_msg.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "qmgr/qmgr_log.h"
#include "qmgr/qmgr_notify.h"
#include "util/clock.h"
#include "util/hashmap.h"
#include "util/log.h"
#include "util/mem.h"

static struct {
    struct event_base *base;
    struct hashmap msgs;        /* by queue id */
    long long min_backoff, max_backoff, max_lifetime, bounce_lifetime, delay_warning;
} mt;

static const void *id_of(const void *item, size_t *len)
{
    const struct qmgr_msg *q = item;
    *len = strlen(q->m.id);
    return q->m.id;
}

void qmgr_msg_init(struct event_base *base, struct conf *c)
{
    memset(&mt, 0, sizeof mt);
    mt.base = base;
    hashmap_init(&mt.msgs, id_of, 0);
    mt.min_backoff = conf_time(c, "minimal_backoff_time");
    mt.max_backoff = conf_time(c, "maximal_backoff_time");
    if (mt.max_backoff < mt.min_backoff)
        mt.max_backoff = mt.min_backoff;
    mt.max_lifetime = conf_time(c, "maximal_queue_lifetime");
    mt.delay_warning = conf_time(c, "delay_warning_time");
    mt.bounce_lifetime = conf_time(c, "bounce_queue_lifetime");
}

static int drop_all(void *item, void *arg)
{
    (void)arg;
    struct qmgr_msg *q = item;
    event_free(q->timer);
    queue_file_message_free(&q->m);
    free(q->rcpt_busy);
    free(q);
    return 1;
}

void qmgr_msg_shutdown(void)
{
    hashmap_remove_if(&mt.msgs, drop_all, NULL);
    hashmap_free(&mt.msgs);
}

size_t qmgr_msg_count(void)
{
    return hashmap_count(&mt.msgs);
}

/* ---------- the table ---------- */

struct qmgr_msg *qmgr_msg_find(const char *id)
{
    return hashmap_get_str(&mt.msgs, id);
}

static int cmp_qmsg(const void *a, const void *b)
{
    const struct qmgr_msg *x = *(const struct qmgr_msg *const *)a, *y = *(const struct qmgr_msg *const *)b;
    return strcmp(x->m.id, y->m.id);
}

struct qmgr_msg **qmgr_msg_sorted(size_t *n)
{
    struct qmgr_msg **v = xcalloc(hashmap_count(&mt.msgs) + 1, sizeof *v);
    size_t k = 0, cursor = 0;
    struct qmgr_msg *q;
    while ((q = hashmap_next(&mt.msgs, &cursor)))
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

struct qmgr_msg *qmgr_msg_add(struct queue_file_message *m, enum store_place place)
{
    struct qmgr_msg *q = xcalloc(1, sizeof *q);
    q->m = *m;
    memset(m, 0, sizeof *m);
    q->place = place;
    q->active_us = clock_now_us();
    q->timer = evtimer_new(mt.base, on_retry_timer, q);
    /* The store refuses a commit whose id a queued message has, and
     * recovery reads each file once: a second one is a broken invariant. */
    if (hashmap_add(&mt.msgs, q) != 0)
        log_panic("%s: a message with this queue id is already in the queue", q->m.id);
    return q;
}

void qmgr_msg_free(struct qmgr_msg *q)
{
    hashmap_remove(&mt.msgs, q);
    event_free(q->timer);
    queue_file_message_free(&q->m);
    free(q->rcpt_busy);
    free(q);
}

int qmgr_msg_rcpt_busy(const struct qmgr_msg *q, size_t idx)
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
    qmgr_log_delivery(q, idx, relay, start_us, clock_now_us(), status);
}

void qmgr_msg_record(struct qmgr_msg *q, size_t idx)
{
    /* The last result of a message is not written: its file is removed
     * next (a crash in between repeats that delivery, never loses it). */
    if (q->inflight == 0 && !q->deleted && queue_file_message_open_rcpts(&q->m) == 0) {
        int busy = 0;
        for (size_t i = 0; i < q->m.nrcpt && !busy; i++)
            busy = qmgr_msg_rcpt_busy(q, i);
        if (!busy)
            return;
    }
    if (store_append_status(&q->m, q->place, idx) != 0)
        log_warn("%s: cannot record delivery status: %s", q->m.id, strerror(errno));
}

void qmgr_msg_set_result(struct queue_file_rcpt *r, enum queue_file_rcpt_state state, const char *dsn,
                         const char *reason, const struct qmgr_msg_remote *remote)
{
    r->state = state;
    r->last_try = clock_now();
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
        qmgr_msg_set_result(r, QF_DELIVERED, dsn, reason, remote);
        qmgr_msg_record(q, idx);
        log_delivery(q, idx, relay, start_us, "sent");
        return;
    }
    if (o == QMSG_BOUNCED) {
        qmgr_msg_set_result(r, QF_FAILED, dsn, reason, remote);
        qmgr_msg_record(q, idx);
        log_delivery(q, idx, relay, start_us, "bounced");
        return;
    }
    time_t now = clock_now();
    qmgr_msg_set_result(r, QF_DEFERRED, dsn, reason, remote);
    r->attempts++;
    /* As in Postfix, a lifetime of 0 means one attempt only; notices (from
     * <>) live bounce_queue_lifetime. */
    long long lifetime = *q->m.sender ? mt.max_lifetime : mt.bounce_lifetime;
    if (now - q->m.arrival_us / 1000000 >= lifetime) {
        r->state = QF_FAILED;
        char *why = xasprintf("message expired after %lld days in the queue: %s",
                              (long long)(now - q->m.arrival_us / 1000000) / 86400, reason);
        free(r->reason);
        r->reason = why;
        qmgr_msg_record(q, idx);
        log_delivery(q, idx, relay, start_us, "expired");
        return;
    }
    long long backoff = mt.min_backoff;
    for (uint32_t k = 1; k < r->attempts && backoff < mt.max_backoff; k++)
        backoff *= 2;
    if (backoff > mt.max_backoff)
        backoff = mt.max_backoff;
    r->next_try = now + backoff;
    qmgr_msg_record(q, idx);
    log_delivery(q, idx, relay, start_us, "deferred");
}

/* A deferral can come back from a delivery agent long after
 * qmgr_msg_schedule() ran, so every place that defers calls this. */
void qmgr_msg_arm_retry(struct qmgr_msg *q)
{
    if (q->deleted || q->place != STORE_QUEUE)
        return;
    /* Once no delivery is in flight, so that one notice covers every
     * recipient deferred in this round. */
    if (q->inflight == 0 && mt.delay_warning > 0 &&
        clock_now() - q->m.arrival_us / 1000000 >= mt.delay_warning)
        qmgr_notify_delayed(q, mt.max_lifetime);
    int64_t next = 0;
    for (size_t i = 0; i < q->m.nrcpt; i++) {
        const struct queue_file_rcpt *r = &q->m.rcpts[i];
        if (r->state == QF_DEFERRED && !qmgr_msg_rcpt_busy(q, i) && (next == 0 || r->next_try < next))
            next = r->next_try;
    }
    if (next) {
        time_t now = clock_now();
        struct timeval tv = {next > now ? next - now : 0, 0};
        evtimer_add(q->timer, &tv);
    }
}

void qmgr_msg_rcpt_reserve(struct qmgr_msg *q, size_t idx, int reserved)
{
    set_rcpt_busy(q, idx, reserved);
}

void qmgr_msg_rcpt_take(struct qmgr_msg *q, size_t idx)
{
    set_rcpt_busy(q, idx, 1);
    q->inflight++;
}

void qmgr_msg_rcpt_release(struct qmgr_msg *q, size_t idx)
{
    set_rcpt_busy(q, idx, 0);
    q->inflight--;
    qmgr_msg_arm_retry(q);
}

void qmgr_msg_rcpt_result(struct qmgr_msg *q, size_t idx, enum qmgr_msg_outcome o, const char *relay,
                          int64_t start_us, const char *dsn, const char *reason)
{
    if (o == QMSG_DEFERRED && qmgr_route_waits_for_table(q))
        return;
    rcpt_result(q, idx, o, relay, start_us, dsn, reason, NULL);
}

void qmgr_msg_rcpt_finish(struct qmgr_msg *q, size_t idx, enum qmgr_msg_outcome o, const char *relay,
                          int64_t start_us, const char *dsn, const char *reason, const struct qmgr_msg_remote *remote)
{
    set_rcpt_busy(q, idx, 0);
    q->inflight--;
    if (!q->deleted)
        rcpt_result(q, idx, o, relay, start_us, dsn, reason, remote);
    qmgr_msg_arm_retry(q);
}
