/* qmgr_notify: notices owed by finished messages (see qmgr_notify.h). */
#include "qmgr/qmgr_notify.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "msg/bounce.h"
#include "qmgr/qmgr.h"
#include "qmgr/qmgr_msg.h"
#include "spool/queue_id.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/mem.h"

/* What a notice is, in its envelope's "notice" attribute: a failed
 * "failure" notice is retried to the postmaster as a "double" one; a failed
 * "double" one is dropped. */
#define NOTICE_FAILURE "failure"
#define NOTICE_SUCCESS "success"
#define NOTICE_DOUBLE "double"
#define NOTICE_DELAY "delay"

static struct {
    char *myhostname;
    char *mail_name;
    char *double_bounce_rcpt;
    uint64_t bounce_size_limit;
} nt;

struct pending {
    struct qmgr_msg *q;
    void (*done)(struct qmgr_msg *q, int ok);
    int outstanding;
    int failed;
};

void qmgr_notify_init(struct conf *c)
{
    nt.myhostname = xstrdup(conf_str(c, "myhostname"));
    nt.mail_name = xstrdup(conf_str(c, "mail_name"));
    const char *pm = conf_str(c, "2bounce_notice_recipient");
    nt.double_bounce_rcpt = strchr(pm, '@') ? xstrdup(pm) : xasprintf("%s@%s", pm, nt.myhostname);
    long long lim = conf_int(c, "bounce_size_limit");
    nt.bounce_size_limit = lim > 0 ? (uint64_t)lim : 0;
}

void qmgr_notify_shutdown(void)
{
    free(nt.myhostname);
    free(nt.mail_name);
    free(nt.double_bounce_rcpt);
    memset(&nt, 0, sizeof nt);
}

static int wants(const struct queue_file_rcpt *r, unsigned bit, int by_default)
{
    if (r->notify & QF_NOTIFY_NEVER)
        return 0;
    return r->notify ? (r->notify & bit) != 0 : by_default;
}

static void committed(void *arg, int ok)
{
    struct pending *p = arg;
    if (!ok)
        p->failed = 1;
    if (--p->outstanding > 0)
        return;
    p->done(p->q, !p->failed);
    free(p);
}

/* Writes one notice as a new queue file and commits it. 0 queued (the
 * commit reports later), -1 not queued. */
static int send_one(struct pending *p, enum dsn_kind kind, const char *notice, const char *to,
                    const struct dsn_rcpt *rcpts, size_t n)
{
    struct qmgr_msg *q = p->q;
    char id[QUEUE_ID_LEN + 1];
    queue_id_new(id);
    struct queue_file_writer *w;
    if (queue_file_writer_open(store_incoming_dirfd(), id, &w) != 0) {
        log_warn("%s: cannot create a notice: %s", q->m.id, strerror(errno));
        return -1;
    }
    char *path;
    uint64_t base;
    store_content_locate(q->m.id, q->place, &path, &base);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    const char *ret = queue_file_message_attr(&q->m, "ret");
    struct dsn_info info = {
        .kind = kind,
        .myhostname = nt.myhostname,
        .mail_name = nt.mail_name,
        .notice_id = id,
        .orig_queue_id = q->m.id,
        .orig_sender = q->m.sender,
        .to = to,
        .arrival = (time_t)(q->m.arrival_us / 1000000),
        .now = clock_now(),
        .envid = queue_file_message_attr(&q->m, "envid"),
        .return_headers_only = kind == DSN_SUCCESS || (ret && strcmp(ret, "HDRS") == 0),
        .smtputf8 = queue_file_message_attr(&q->m, "smtputf8") != NULL,
        .max_returned = nt.bounce_size_limit,
    };
    struct bounce_report report;
    memset(&report, 0, sizeof report);
    int rc = fd >= 0 ? bounce_write_report(w, &info, rcpts, n, fd, base + q->m.content_offset,
                                           q->m.content_length, &report)
                     : -1;
    int e = errno;
    if (fd >= 0)
        close(fd);
    store_content_done(q->m.id);
    if (rc != 0) {
        log_warn("%s: cannot write a notice: %s", q->m.id, strerror(e));
        queue_file_writer_abort(w);
        return -1;
    }
    struct queue_file_message m;
    queue_file_message_init(&m, id, clock_now_us(), "");
    queue_file_message_add_rcpt(&m, to, "", 0, -1);
    queue_file_message_set_attr(&m, "origin", "notice");
    queue_file_message_set_attr(&m, "notice", notice);
    /* what relaying the notice will need from the next hop */
    if (report.header_8bit)
        queue_file_message_set_attr(&m, "smtputf8", "1");
    if (report.body_8bit)
        queue_file_message_set_attr(&m, "body", "8BITMIME");
    rc = queue_file_writer_finish(w, &m);
    queue_file_message_free(&m);
    if (rc != 0) {
        log_warn("%s: cannot write a notice: %s", q->m.id, strerror(errno));
        return -1;
    }
    log_info("%s: sender %s notification: %s", q->m.id,
             kind == DSN_FAILURE ? "non-delivery" : kind == DSN_DELAY ? "delay" : "delivery status", id);
    p->outstanding++;
    qmgr_commit(id, committed, p);
    return 0;
}

static void fill_rcpt(struct dsn_rcpt *d, const struct qmgr_msg *q, const struct queue_file_rcpt *r, const char *action,
                      char **diag, char **orcpt, char **mta)
{
    memset(d, 0, sizeof *d);
    d->final_rcpt = r->addr;
    /* the address the sender used: ORCPT, else the one an alias came from */
    const struct queue_file_rcpt *top = r;
    while (top->parent >= 0 && (size_t)top->parent < q->m.nrcpt)
        top = &q->m.rcpts[top->parent];
    *orcpt = NULL;
    if (top->orcpt[0])
        *orcpt = xstrdup(top->orcpt);
    else if (top != r)
        *orcpt = xasprintf("rfc822;%s", top->addr);
    d->orcpt = *orcpt;
    d->action = action;
    d->status = r->dsn[0] ? r->dsn : (strcmp(action, "failed") == 0 ? "5.0.0" : "2.0.0");
    /* What the other server said goes out as it said it (RFC 3464 §2.3.6). */
    if (r->diag[0])
        *diag = xasprintf("smtp; %s", r->diag);
    else
        *diag = r->reason[0] ? xasprintf("x-tern; %s", r->reason) : NULL;
    d->diagnostic = *diag;
    *mta = r->remote_mta[0] ? xasprintf("dns; %s", r->remote_mta) : NULL;
    d->remote_mta = *mta;
    d->last_attempt = (time_t)r->last_try;
}

/* The recipients one notice reports, with the strings fill_rcpt made. */
struct rcpt_set {
    struct dsn_rcpt *d;
    char **diags, **orcpts, **mtas;
    size_t *which;   /* their indices in the message */
    size_t n;
};

static void set_init(struct rcpt_set *s, size_t cap)
{
    s->d = xcalloc(cap, sizeof *s->d);
    s->diags = xcalloc(cap, sizeof *s->diags);
    s->orcpts = xcalloc(cap, sizeof *s->orcpts);
    s->mtas = xcalloc(cap, sizeof *s->mtas);
    s->which = xcalloc(cap, sizeof *s->which);
    s->n = 0;
}

static struct dsn_rcpt *set_add(struct rcpt_set *s, const struct qmgr_msg *q, size_t idx, const char *action)
{
    size_t n = s->n++;
    fill_rcpt(&s->d[n], q, &q->m.rcpts[idx], action, &s->diags[n], &s->orcpts[n], &s->mtas[n]);
    s->which[n] = idx;
    return &s->d[n];
}

static void set_free(struct rcpt_set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->diags[i]);
        free(s->orcpts[i]);
        free(s->mtas[i]);
    }
    free(s->diags);
    free(s->orcpts);
    free(s->mtas);
    free(s->which);
    free(s->d);
}

static int send_kind(struct pending *p, enum dsn_kind kind, const char *to, const char *notice)
{
    struct qmgr_msg *q = p->q;
    struct rcpt_set set;
    set_init(&set, q->m.nrcpt);
    for (size_t i = 0; i < q->m.nrcpt; i++) {
        const struct queue_file_rcpt *r = &q->m.rcpts[i];
        if (kind == DSN_FAILURE && r->state == QF_FAILED && wants(r, QF_NOTIFY_FAILURE, 1))
            set_add(&set, q, i, "failed");
        else if (kind == DSN_SUCCESS && r->state == QF_DELIVERED && wants(r, QF_NOTIFY_SUCCESS, 0) &&
                 !(r->flags & QF_RCPT_REMOTE_DSN))
            /* A next hop that took our NOTIFY reports success itself; one
             * that could not is "relayed" (RFC 3461 §5.2.2, §6.3.1). */
            set_add(&set, q, i, r->remote_mta[0] ? "relayed" : "delivered");
    }
    int rc = set.n ? send_one(p, kind, notice, to, set.d, set.n) : 0;
    set_free(&set);
    return rc;
}

static void delay_notice_done(struct qmgr_msg *q, int ok)
{
    (void)q; /* may be gone by now: only p was kept */
    if (!ok)
        log_warn("a delay notice could not be queued");
}

void qmgr_notify_delayed(struct qmgr_msg *q, long long lifetime)
{
    if (!*q->m.sender || queue_file_message_attr(&q->m, "notice"))
        return;
    struct rcpt_set set;
    set_init(&set, q->m.nrcpt);
    time_t until = (time_t)(q->m.arrival_us / 1000000 + lifetime);
    for (size_t i = 0; i < q->m.nrcpt; i++) {
        struct queue_file_rcpt *r = &q->m.rcpts[i];
        if (r->state != QF_DEFERRED || (r->flags & QF_RCPT_DELAY_WARNED) || !wants(r, QF_NOTIFY_DELAY, 1))
            continue;
        set_add(&set, q, i, "delayed")->will_retry_until = until;
    }
    if (set.n > 0) {
        /* The notice's commit is reported to a pending of its own, which
         * must not touch q: the message may be gone by then. */
        struct pending *p = xcalloc(1, sizeof *p);
        p->q = q;
        p->done = delay_notice_done;
        p->outstanding = 1;
        int queued = send_one(p, DSN_DELAY, NOTICE_DELAY, q->m.sender, set.d, set.n) == 0;
        if (!queued)
            p->failed = 1;
        p->q = NULL;
        committed(p, !p->failed);
        /* marked only when the notice exists: else the next round tries again */
        for (size_t k = 0; queued && k < set.n; k++) {
            q->m.rcpts[set.which[k]].flags |= QF_RCPT_DELAY_WARNED;
            if (store_append_status(&q->m, q->place, set.which[k]) != 0)
                log_warn("%s: cannot record the delay notice: %s", q->m.id, strerror(errno));
        }
    }
    set_free(&set);
}

int qmgr_notify_finished(struct qmgr_msg *q, void (*done)(struct qmgr_msg *q, int ok))
{
    const char *notice = queue_file_message_attr(&q->m, "notice");
    const char *to = q->m.sender;
    const char *failure_kind = NOTICE_FAILURE;
    if (!*to) {
        /* Nobody to tell, except that a bounce that failed goes to the
         * postmaster once. */
        int any_failed = 0;
        for (size_t i = 0; i < q->m.nrcpt; i++)
            any_failed |= q->m.rcpts[i].state == QF_FAILED;
        if (!any_failed || !notice || strcmp(notice, NOTICE_FAILURE) != 0) {
            if (any_failed && notice)
                log_info("%s: undeliverable %s notification discarded", q->m.id,
                         strcmp(notice, NOTICE_DOUBLE) == 0 ? "postmaster" : "delivery status");
            return 0;
        }
        to = nt.double_bounce_rcpt;
        failure_kind = NOTICE_DOUBLE;
    }
    struct pending *p = xcalloc(1, sizeof *p);
    p->q = q;
    p->done = done;
    p->outstanding = 1; /* held until both kinds are queued */
    if (send_kind(p, DSN_FAILURE, to, failure_kind) != 0)
        p->failed = 1;
    if (*q->m.sender && send_kind(p, DSN_SUCCESS, to, NOTICE_SUCCESS) != 0)
        p->failed = 1;
    if (p->outstanding == 1 && !p->failed) {
        free(p);
        return 0; /* nothing was owed */
    }
    committed(p, !p->failed);
    return 1;
}
