/* qmgr_commit: commits from smtpd, pickup and notices (see qmgr_commit.h). */
#include "qmgr/qmgr_commit.h"
#include "qmgr/qmgr_dmarc.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "qmgr/qmgr.h"
#include "qmgr/qmgr_capture.h"
#include "qmgr/qmgr_msg.h"
#include "spool/queue_id.h"
#include "spool/storage_reply.h"
#include "spool/store.h"
#include "util/ipc.h"
#include "util/log.h"
#include "util/mem.h"

struct commit_ctx {
    struct ipc_chan *ch;   /* smtpd connection, or NULL for pickup and notices */
    uint32_t reqid;
    int captured;          /* committed into capture/ only (capture = yes) */
    int released;          /* released from capture: delivered whatever the mode */
    struct durable_reply reply; /* the 250's answer, sent by the journal's writer (len 0: none) */
    qmgr_commit_cb cb;
    void *arg;
};

/* Connections from smtpd stay registered so a reply to a closed one is dropped. */
struct conn {
    struct conn *next;
    struct ipc_chan *ch;
    struct durable_reply_socket *reply_sock; /* for the journal's durable replies; NULL until the first */
};

static struct {
    struct event_base *base;
    struct event *listen_ev;
    struct conn *conns;
} cm;

static int conn_alive(struct ipc_chan *ch)
{
    for (struct conn *c = cm.conns; c; c = c->next)
        if (c->ch == ch)
            return 1;
    return 0;
}

static void commit_done(void *arg, int ok, struct queue_file_message *m, int err)
{
    struct commit_ctx *cc = arg;
    struct qmgr_msg *q = NULL;
    /* The capture process first: once the client has its 250, the message
     * must be on the page and in the API (capture = yes, and copy, except
     * for a message the API itself released). In capture mode no commit
     * goes into the journal, so the writer thread never answered first. */
    if (ok && (cc->captured || !cc->released))
        qmgr_capture_notify(m->id);
    /* The client waits for this: answered before the log line and the
     * queue's own bookkeeping (the message is durable either way, and
     * nothing else reaches this process's loop in between). */
    if (cc->reply.sent && !ok)
        /* durable and acknowledged, then gone from the journal's index
         * before the loop took it over (deleted meanwhile); the record comes
         * back at the next start if no DONE follows it */
        log_warn("a message acknowledged by the journal's writer was not taken over (reqid %u)", cc->reqid);
    if (cc->ch && conn_alive(cc->ch) && !(cc->reply.sent)) {
        struct ipc_msg r;
        ipc_msg_init(&r, IPC_COMMIT_REPLY, cc->reqid);
        ipc_msg_add(&r, "status", ok ? "ok" : "fail");
        if (!ok)
            ipc_msg_add(&r, "reply", storage_reply(err));
        ipc_chan_send(cc->ch, &r);
        ipc_msg_free(&r);
    }
    if (ok && cc->captured) {
        log_info("%s: from=<%s>, size=%llu, nrcpt=%zu (captured)", m->id, m->sender,
                 (unsigned long long)m->content_length, m->nrcpt);
        queue_file_message_free(m);   /* taken over, as qmgr_msg_add would */
    } else if (ok) {
        log_info("%s: from=<%s>, size=%llu, nrcpt=%zu (queue active)", m->id, m->sender,
                 (unsigned long long)m->content_length, m->nrcpt);
        q = qmgr_msg_add(m, STORE_QUEUE);
        const char *hold = queue_file_message_attr(&q->m, QF_ATTR_HOLD);
        if (hold && store_move(q->m.id, STORE_QUEUE, STORE_HOLD) == 0) {
            q->place = STORE_HOLD;
            log_info("%s: placed on hold: %s", q->m.id, hold);
        } else if (hold) {
            /* fails open: delivered as if not held, and said so */
            log_error("%s: cannot place on hold (%s): %s; it will be delivered", q->m.id, hold, strerror(errno));
        }
    }
    if (cc->cb)
        cc->cb(cc->arg, ok);
    free(cc);
    if (q && q->place == STORE_QUEUE)
        qmgr_msg_schedule(q);
}

/* The "ok" COMMIT_REPLY for the journal's writer to send the moment the
 * message is durable (spool/durable_reply.h), on the
 * connection's reply socket, made at its first commit. Whatever the commit's outcome,
 * commit_done alone answers a failure, and answers a success the writer
 * could not send. Capture mode never gets there: the store commits files
 * then, and commit_done tells the capture process before it answers. */
static void prepare_durable_reply(struct conn *c, struct commit_ctx *cc)
{
    if (!c->reply_sock && !(c->reply_sock = durable_reply_socket_new(ipc_chan_fd(c->ch))))
        return; /* out of descriptors: the loop answers */
    struct ipc_msg r;
    ipc_msg_init(&r, IPC_COMMIT_REPLY, cc->reqid);
    ipc_msg_add(&r, "status", "ok");
    cc->reply.len = ipc_msg_wire(&r, cc->reply.wire, sizeof cc->reply.wire);
    ipc_msg_free(&r);
    cc->reply.sock = c->reply_sock;
}

void qmgr_commit(const char *id, qmgr_commit_cb cb, void *arg)
{
    struct commit_ctx *cc = xcalloc(1, sizeof *cc);
    cc->cb = cb;
    cc->arg = arg;
    cc->captured = qmgr_capture_only();
    store_commit(id, commit_done, cc);
}

static void conn_message(struct ipc_chan *ch, struct ipc_msg *m, void *arg)
{
    struct conn *c = arg;
    if (!m) {
        struct conn **pp = &cm.conns;
        while (*pp && *pp != c)
            pp = &(*pp)->next;
        if (*pp)
            *pp = c->next;
        ipc_chan_free(ch);
        durable_reply_socket_release(c->reply_sock);
        free(c);
        return;
    }
    if (m->type == IPC_COMMIT || m->type == IPC_CAPTURE_RELEASE) {
        const char *id = ipc_msg_get(m, "id");
        const void *file;
        size_t len;
        struct commit_ctx *cc = xcalloc(1, sizeof *cc);
        cc->ch = ch;
        cc->reqid = m->reqid;
        cc->captured = m->type == IPC_COMMIT && qmgr_capture_only();
        if (m->type == IPC_CAPTURE_RELEASE) {
            cc->released = 1;
            store_commit_for_delivery(id ? id : "", commit_done, cc);
        } else if ((file = ipc_msg_get_bytes(m, "file", &len))) {
            if (m->fd != -1) {
                log_error("%s: a COMMIT with the queue file both inside and as a descriptor; refused",
                          id && queue_id_valid(id) ? id : "?");
                commit_done(cc, 0, NULL, EBADMSG);
                return;
            }
            prepare_durable_reply(c, cc);
            store_commit_bytes(id ? id : "", file, len, cc->reply.len ? &cc->reply : NULL, commit_done, cc);
        } else if (m->fd == IPC_FD_LOST) {
            /* smtpd sent the file, the kernel could not hand it to us */
            log_warn("%s: the queue file smtpd sent could not be received (out of descriptors?)",
                     id && queue_id_valid(id) ? id : "?");
            commit_done(cc, 0, NULL, EMFILE);
        } else if (m->fd >= 0) {
            int memfd = m->fd;
            m->fd = -1;
            prepare_durable_reply(c, cc);
            store_commit_memory(id ? id : "", memfd, cc->reply.len ? &cc->reply : NULL, commit_done, cc);
        } else {
            store_commit(id ? id : "", commit_done, cc);
        }
        return;
    }
    if (m->type == IPC_DMARC_RECORD) {
        qmgr_dmarc_record(m);
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
        c->ch = ipc_chan_new(cm.base, cfd, conn_message, c);
        c->next = cm.conns;
        cm.conns = c;
    }
}

void qmgr_commit_start(struct event_base *base, int listen_fd)
{
    cm.base = base;
    cm.listen_ev = event_new(base, listen_fd, EV_READ | EV_PERSIST, on_accept, NULL);
    event_add(cm.listen_ev, NULL);
}

void qmgr_commit_stop(void)
{
    if (cm.listen_ev)
        event_free(cm.listen_ev);
    cm.listen_ev = NULL;
}

void qmgr_commit_shutdown(void)
{
    qmgr_commit_stop();
    while (cm.conns) {
        struct conn *c = cm.conns;
        cm.conns = c->next;
        ipc_chan_free(c->ch);
        durable_reply_socket_release(c->reply_sock);
        free(c);
    }
}
