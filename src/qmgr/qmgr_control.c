/* qmgr_control: the queue commands on public/qmgr (see qmgr_control.h). */
#include "qmgr/qmgr_control.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/ipc.h"
#include "qmgr/pickup.h"
#include "qmgr/qmgr_msg.h"
#include "spool/store.h"
#include "util/log.h"
#include "util/mem.h"

/* A `tern queue` / `mailq` / `sendmail` connection; uid is its peer's. */
struct conn {
    struct conn *next;
    struct ipc_chan *ch;
    uid_t uid;
};

#define QMGR_CONTROL_MAX_CONNS 64

static struct {
    struct event_base *base;
    struct event *listen_ev;
    struct conn *conns;
    int nconns;
    int warned;
} ctl;

static void send_done(struct ipc_chan *ch, uint32_t reqid, const char *status, const char *text)
{
    struct ipc_msg r;
    ipc_msg_init(&r, IPC_DONE, reqid);
    ipc_msg_add(&r, "status", status);
    ipc_msg_add(&r, "text", text);
    ipc_chan_send(ch, &r);
    ipc_msg_free(&r);
}

static void cli_list(struct ipc_chan *ch, uint32_t reqid)
{
    size_t n;
    struct qmgr_msg **v = qmgr_msg_sorted(&n);
    for (size_t i = 0; i < n; i++) {
        struct qmgr_msg *q = v[i];
        struct ipc_msg r;
        ipc_msg_init(&r, IPC_QUEUE_LIST_ITEM, reqid);
        ipc_msg_add(&r, "id", q->m.id);
        ipc_msg_add(&r, "flag", q->place == STORE_HOLD ? "!" : q->inflight ? "*" : "");
        ipc_msg_add_u64(&r, "size", q->m.content_length);
        ipc_msg_add_u64(&r, "arrival", (uint64_t)(q->m.arrival_us / 1000000));
        ipc_msg_add(&r, "sender", q->m.sender);
        size_t k = 0;
        for (size_t j = 0; j < q->m.nrcpt && r.body.len < IPC_MAX_MSG - 2048; j++) {
            struct queue_file_rcpt *rc = &q->m.rcpts[j];
            if (rc->state != QF_PENDING && rc->state != QF_DEFERRED)
                continue;
            char key[32];
            snprintf(key, sizeof key, "rcpt%zu", k);
            ipc_msg_add(&r, key, rc->addr);
            snprintf(key, sizeof key, "reason%zu", k);
            ipc_msg_add(&r, key, rc->state == QF_DEFERRED ? rc->reason : "");
            k++;
        }
        ipc_msg_add_u64(&r, "nrcpt", k);
        ipc_chan_send(ch, &r);
        ipc_msg_free(&r);
    }
    free(v);
    send_done(ch, reqid, "ok", "");
}

static int cli_privileged(const struct conn *c)
{
    return c->uid == 0 || c->uid == getuid();
}

static void flush_one(struct qmgr_msg *q)
{
    for (size_t i = 0; i < q->m.nrcpt; i++)
        if (q->m.rcpts[i].state == QF_DEFERRED)
            q->m.rcpts[i].next_try = 0;
    qmgr_msg_schedule(q);
}

static int cli_apply(int type, struct qmgr_msg *q)
{
    switch (type) {
    case IPC_QUEUE_DELETE:
        if (store_remove(q->m.id, q->place) != 0 && errno != ENOENT)
            return -1;
        log_info("%s: removed (deleted by the administrator)", q->m.id);
        q->deleted = 1;
        evtimer_del(q->timer);
        qmgr_msg_finish_if_done(q);
        return 0;
    case IPC_QUEUE_HOLD:
        if (q->place == STORE_HOLD)
            return 0;
        if (store_move(q->m.id, STORE_QUEUE, STORE_HOLD) != 0)
            return -1;
        q->place = STORE_HOLD;
        evtimer_del(q->timer);
        log_info("%s: placed on hold", q->m.id);
        return 0;
    case IPC_QUEUE_RELEASE:
        if (q->place != STORE_HOLD)
            return 0;
        if (store_move(q->m.id, STORE_HOLD, STORE_QUEUE) != 0)
            return -1;
        q->place = STORE_QUEUE;
        log_info("%s: released from hold", q->m.id);
        flush_one(q);
        return 0;
    }
    return -1;
}

static void cli_request(struct conn *c, struct ipc_msg *m)
{
    switch (m->type) {
    case IPC_QUEUE_LIST:
        cli_list(c->ch, m->reqid);
        return;
    case IPC_PICKUP:
        pickup_scan();
        send_done(c->ch, m->reqid, "ok", "");
        return;
    case IPC_QUEUE_FLUSH: {
        size_t n;
        struct qmgr_msg **v = qmgr_msg_sorted(&n);
        for (size_t i = 0; i < n; i++)
            flush_one(v[i]);
        free(v);
        pickup_scan();
        send_done(c->ch, m->reqid, "ok", "queue flushed");
        return;
    }
    case IPC_QUEUE_DELETE:
    case IPC_QUEUE_HOLD:
    case IPC_QUEUE_RELEASE: {
        if (!cli_privileged(c)) {
            send_done(c->ch, m->reqid, "denied", "permission denied");
            return;
        }
        const char *id = ipc_msg_get(m, "id");   /* required by ipc_schema */
        int count = 0, failed = 0;
        if (strcmp(id, "ALL") == 0) {
            size_t n;
            struct qmgr_msg **v = qmgr_msg_sorted(&n);
            for (size_t i = 0; i < n; i++)
                cli_apply(m->type, v[i]) == 0 ? count++ : failed++;
            free(v);
        } else {
            struct qmgr_msg *q = qmgr_msg_find(id);
            if (!q || q->deleted) {
                send_done(c->ch, m->reqid, "notfound", id);
                return;
            }
            cli_apply(m->type, q) == 0 ? count++ : failed++;
        }
        char text[64];
        snprintf(text, sizeof text, "%d", count);
        send_done(c->ch, m->reqid, failed ? "error" : "ok", text);
        return;
    }
    default:
        send_done(c->ch, m->reqid, "error", "unknown request");
    }
}

static void conn_message(struct ipc_chan *ch, struct ipc_msg *m, void *arg)
{
    struct conn *c = arg;
    if (!m) {
        struct conn **pp = &ctl.conns;
        while (*pp && *pp != c)
            pp = &(*pp)->next;
        if (*pp)
            *pp = c->next;
        ctl.nconns--;
        ipc_chan_free(ch);
        free(c);
        return;
    }
    cli_request(c, m);
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    for (int i = 0; i < 16; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
            return;
        /* The socket is open to every local user: bound what they can hold. */
        if (ctl.nconns >= QMGR_CONTROL_MAX_CONNS) {
            if (!ctl.warned++)
                log_warn("%d queue command connections open; refusing more", QMGR_CONTROL_MAX_CONNS);
            close(cfd);
            continue;
        }
        ctl.warned = 0;
        ctl.nconns++;
        struct conn *c = xcalloc(1, sizeof *c);
        struct ucred cred;
        socklen_t len = sizeof cred;
        c->uid = (uid_t)-1;
        if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
            c->uid = cred.uid;
        c->ch = ipc_chan_new(ctl.base, cfd, conn_message, c);
        c->next = ctl.conns;
        ctl.conns = c;
    }
}

void qmgr_control_start(struct event_base *base, int listen_fd)
{
    memset(&ctl, 0, sizeof ctl);
    ctl.base = base;
    ctl.listen_ev = event_new(base, listen_fd, EV_READ | EV_PERSIST, on_accept, NULL);
    event_add(ctl.listen_ev, NULL);
}

void qmgr_control_stop(void)
{
    if (ctl.listen_ev)
        event_free(ctl.listen_ev);
    ctl.listen_ev = NULL;
    while (ctl.conns) {
        struct conn *c = ctl.conns;
        ctl.conns = c->next;
        ipc_chan_free(c->ch);
        free(c);
    }
}
