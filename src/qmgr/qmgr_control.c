/* qmgr_control: the queue commands on public/qmgr (see qmgr_control.h). */
#include "qmgr/qmgr_control.h"

#include <errno.h>
#include <event2/event.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "maps/map.h"
#include "qmgr/pickup.h"
#include "qmgr/qmgr_msg.h"
#include "spool/store.h"
#include "util/ipc.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

/* A `tern queue` / `mailq` / `sendmail` connection; uid is its peer's. */
struct conn {
    struct conn *next;
    struct ipc_chan *ch;
    uid_t uid;
    int privileged;             /* root or mail_owner */
    /* A LIST in progress: items are made as the client reads them. */
    int listing;
    uint32_t list_reqid;
    char list_after[64];        /* the last queue ID sent ("": none yet) */
};

/* The socket is open to every local user: bound what they can hold.
 * QMGR_CONTROL_MAX_CONNS in all, of which QMGR_CONTROL_RESERVED only root
 * and mail_owner may take (so `tern queue delete ALL` always gets in), and
 * at most QMGR_CONTROL_MAX_PER_UID for any other user. */
#define QMGR_CONTROL_MAX_CONNS 64
#define QMGR_CONTROL_RESERVED 4
#define QMGR_CONTROL_MAX_PER_UID 8
/* Answers queued for one client that does not read: producing stops here
 * (a LIST resumes as it drains; other requests wait unread). */
#define QMGR_CONTROL_OUTPUT_BOUND (256u * 1024)

/* authorized_mailq_users / authorized_flush_users: user names and tables
 * (a table lists a user when a lookup of the name finds anything, so
 * static:anyone admits everybody, as in Postfix). */
struct user_acl {
    struct conf_list names;
    struct map **maps;
    size_t nmaps;
};

static struct {
    struct event_base *base;
    struct event *listen_ev;
    struct conn *conns;
    int nconns;
    time_t warned_at;   /* refusals are logged once a minute at most */
    struct user_acl mailq_users, flush_users;
} ctl;

/* Takes the items of all (the value of param). */
static void acl_load(struct user_acl *acl, struct conf_list all, const char *param)
{
    acl->maps = xcalloc(all.n + 1, sizeof *acl->maps);
    acl->names.items = xcalloc(all.n + 1, sizeof *acl->names.items);
    for (size_t i = 0; i < all.n; i++) {
        if (!strchr(all.items[i], ':')) {
            acl->names.items[acl->names.n++] = xstrdup(all.items[i]);
            continue;
        }
        char *err = NULL;
        struct map *m = map_open(all.items[i], 0, &err);
        if (m)
            acl->maps[acl->nmaps++] = m;
        else
            log_warn("%s: %s: %s; it admits nobody", param, all.items[i], err ? err : "cannot open");
        free(err);
    }
    conf_list_free(&all);
}

static void acl_free(struct user_acl *acl)
{
    conf_list_free(&acl->names);
    for (size_t i = 0; i < acl->nmaps; i++)
        map_close(acl->maps[i]);
    free(acl->maps);
    memset(acl, 0, sizeof *acl);
}

/* Root and mail_owner always pass, as in Postfix. A table that fails to
 * answer admits nobody (the user is told to try again). */
static int acl_allows(const struct user_acl *acl, const struct conn *c)
{
    if (c->privileged)
        return 1;
    struct passwd pw, *found = NULL;
    char buf[4096];
    if (getpwuid_r(c->uid, &pw, buf, sizeof buf, &found) != 0 || !found)
        return 0;
    for (size_t i = 0; i < acl->names.n; i++)
        if (strcmp(acl->names.items[i], found->pw_name) == 0)
            return 1;
    for (size_t i = 0; i < acl->nmaps; i++) {
        char *value = NULL;
        int rc = map_lookup(acl->maps[i], found->pw_name, &value);
        free(value);
        if (rc == 1)
            return 1;
    }
    return 0;
}

static void send_done(struct ipc_chan *ch, uint32_t reqid, const char *status, const char *text)
{
    struct ipc_msg r;
    ipc_msg_init(&r, IPC_DONE, reqid);
    ipc_msg_add(&r, "status", status);
    ipc_msg_add(&r, "text", text);
    ipc_chan_send(ch, &r);
    ipc_msg_free(&r);
}

static void list_item(struct ipc_chan *ch, uint32_t reqid, const struct qmgr_msg *q)
{
    struct ipc_msg r;
    ipc_msg_init(&r, IPC_QUEUE_LIST_ITEM, reqid);
    ipc_msg_add(&r, "id", q->m.id);
    ipc_msg_add(&r, "flag", q->place == STORE_HOLD ? "!" : q->inflight ? "*" : "");
    ipc_msg_add_u64(&r, "size", q->m.content_length);
    ipc_msg_add_u64(&r, "arrival", (uint64_t)(q->m.arrival_us / 1000000));
    ipc_msg_add(&r, "sender", q->m.sender);
    const char *hold = queue_file_message_attr(&q->m, QF_ATTR_HOLD);
    if (hold && q->place == STORE_HOLD)
        ipc_msg_add(&r, "hold_reason", hold);
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

static void list_continue(struct ipc_chan *ch, void *arg);

/* Sends the messages after c->list_after, in queue ID order, until the
 * output bound; then waits for the client to read. The queue may change
 * between rounds: each round starts from the ID where the last one ended. */
static void list_produce(struct conn *c)
{
    size_t n;
    struct qmgr_msg **v = qmgr_msg_sorted(&n);
    size_t lo = 0, hi = n;
    while (lo < hi) {   /* the first ID after list_after */
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(v[mid]->m.id, c->list_after) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t i = lo;
    for (; i < n && ipc_chan_queued(c->ch) < QMGR_CONTROL_OUTPUT_BOUND; i++) {
        list_item(c->ch, c->list_reqid, v[i]);
        str_copy(c->list_after, v[i]->m.id, sizeof c->list_after);
    }
    free(v);
    if (i < n) {
        ipc_chan_on_drain(c->ch, QMGR_CONTROL_OUTPUT_BOUND / 2, list_continue);
        return;
    }
    c->listing = 0;
    send_done(c->ch, c->list_reqid, "ok", "");
    ipc_chan_set_reading(c->ch, 1);
}

static void list_continue(struct ipc_chan *ch, void *arg)
{
    (void)ch;
    struct conn *c = arg;
    if (c->listing)
        list_produce(c);
}

static void cli_list(struct conn *c, uint32_t reqid)
{
    /* no further request is read until this one is answered */
    ipc_chan_set_reading(c->ch, 0);
    c->listing = 1;
    c->list_reqid = reqid;
    c->list_after[0] = '\0';
    list_produce(c);
}

static void resume_reading(struct ipc_chan *ch, void *arg)
{
    (void)arg;
    ipc_chan_set_reading(ch, 1);
}

static int cli_privileged(const struct conn *c)
{
    return c->privileged;
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
        if (!acl_allows(&ctl.mailq_users, c)) {
            send_done(c->ch, m->reqid, "denied", "permission denied (authorized_mailq_users)");
            return;
        }
        cli_list(c, m->reqid);
        return;
    case IPC_PICKUP:
        /* coalesced: a flood of pokes costs one scan */
        pickup_scan();
        send_done(c->ch, m->reqid, "ok", "");
        return;
    case IPC_QUEUE_FLUSH: {
        if (!acl_allows(&ctl.flush_users, c)) {
            send_done(c->ch, m->reqid, "denied", "permission denied (authorized_flush_users)");
            return;
        }
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
    /* a client that sends requests without reading the answers is not
     * read from until it has read them */
    if (!c->listing && ipc_chan_queued(ch) >= QMGR_CONTROL_OUTPUT_BOUND) {
        ipc_chan_set_reading(ch, 0);
        ipc_chan_on_drain(ch, QMGR_CONTROL_OUTPUT_BOUND / 2, resume_reading);
    }
}

static int conns_of(uid_t uid)
{
    int n = 0;
    for (struct conn *c = ctl.conns; c; c = c->next)
        n += c->uid == uid;
    return n;
}

/* Says why before closing, so the client can tell the user. */
static void refuse(int fd, const char *why)
{
    struct ipc_msg r;
    ipc_msg_init(&r, IPC_DONE, 0);
    ipc_msg_add(&r, "status", "error");
    ipc_msg_add(&r, "text", why);
    (void)ipc_send_blocking(fd, &r);   /* a non-blocking socket: never waits */
    ipc_msg_free(&r);
    /* Closing with the client's request unread would make the kernel give it
     * ECONNRESET instead of our answer: stop its sending, drop what it sent. */
    shutdown(fd, SHUT_RDWR);
    char drop[64];
    for (int i = 0; i < 64 && recv(fd, drop, sizeof drop, MSG_DONTWAIT | MSG_TRUNC) > 0; i++)
        ;
    close(fd);
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    for (int i = 0; i < 16; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
            return;
        struct ucred cred;
        socklen_t len = sizeof cred;
        uid_t uid = (uid_t)-1;
        if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
            uid = cred.uid;
        int privileged = uid == 0 || uid == getuid();
        if (ctl.nconns >= QMGR_CONTROL_MAX_CONNS ||
            (!privileged && ctl.nconns >= QMGR_CONTROL_MAX_CONNS - QMGR_CONTROL_RESERVED)) {
            if (time(NULL) - ctl.warned_at >= 60) {
                ctl.warned_at = time(NULL);
                log_warn("%d queue command connections open; refusing more", ctl.nconns);
            }
            refuse(cfd, "the queue service is busy; try again later");
            continue;
        }
        if (!privileged && conns_of(uid) >= QMGR_CONTROL_MAX_PER_UID) {
            if (time(NULL) - ctl.warned_at >= 60) {
                ctl.warned_at = time(NULL);
                log_warn("uid %u holds %d queue command connections; refusing more", (unsigned)uid,
                         QMGR_CONTROL_MAX_PER_UID);
            }
            refuse(cfd, "too many queue command connections of this user; try again later");
            continue;
        }
        ctl.nconns++;
        struct conn *c = xcalloc(1, sizeof *c);
        c->uid = uid;
        c->privileged = privileged;
        c->ch = ipc_chan_new(ctl.base, cfd, conn_message, c);
        c->next = ctl.conns;
        ctl.conns = c;
    }
}

void qmgr_control_start(struct event_base *base, int listen_fd, struct conf *conf)
{
    memset(&ctl, 0, sizeof ctl);
    ctl.base = base;
    acl_load(&ctl.mailq_users, conf_list(conf, "authorized_mailq_users"), "authorized_mailq_users");
    acl_load(&ctl.flush_users, conf_list(conf, "authorized_flush_users"), "authorized_flush_users");
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
    acl_free(&ctl.mailq_users);
    acl_free(&ctl.flush_users);
}
