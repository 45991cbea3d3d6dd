/* smtpd: the SMTP server process.
 *
 * One event loop serves every listener and every session (no process or
 * thread per connection). It runs unprivileged (the master drops privileges
 * before calling smtpd_main). It writes each message into its own queue
 * file, in incoming/ or (journal spool) in memory, and asks the queue
 * process, over private/queue, to commit it (a file in memory goes along
 * inside the message, or as a descriptor when it is too large for one);
 * the queue answers once the message is durable and smtpd then says 250.
 *
 * Signals: SIGTERM closes sessions with 421 and exits; SIGUSR2 (reload)
 * stops accepting and exits when the last session ends. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf/conf.h"
#include "spool/storage_reply.h"
#include "spool/spool.h"
#include "util/ipc.h"
#include "daemon/runtime.h"
#include "maps/map.h"
#include "maps/resolver.h"
#include "spool/queue_id.h"
#include "smtpd/smtpd_session.h"
#include "smtpd/smtpd_anvil.h"
#include "smtpd/smtpd_mailauth.h"
#include "smtpd/smtpd_capture.h"
#include "smtpd/smtpd_sandbox.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

struct pending_commit {
    struct pending_commit *next;
    uint32_t reqid;
    char id[QUEUE_ID_LEN + 1];
    smtpd_commit_cb cb;
    void *arg;              /* NULL once the session went away or gave up */
    struct event *timer;    /* a queue that never answers must not hold the session */
    size_t content_charged; /* a queue file in memory: its bytes of the content budget */
};

static void pending_free(struct pending_commit *p)
{
    if (p->timer)
        event_free(p->timer);
    smtpd_content_memory_release(p->content_charged);
    free(p);
}

struct smtpd_listener {
    struct smtpd_settings set;
    struct event *ev;
    int fd;
};

static struct event_base *smtpd_base;
static struct runtime *smtpd_rt;
static struct smtpd_listener *listeners;
static size_t nlisteners;
static int incoming_dirfd = -1;
static struct resolver *resolver;
static struct ipc_chan *queue_chan;
static struct pending_commit *pending;
static uint32_t next_reqid = 1;
static int draining;
static struct event *drain_timer;
static int accept_paused;
static struct event *resume_timer;
static unsigned max_sessions;
static long commit_timeout;

int smtpd_incoming_dirfd(void)
{
    return incoming_dirfd;
}

struct resolver *smtpd_resolver(void)
{
    return resolver;
}

static void fail_all_pending(void)
{
    while (pending) {
        struct pending_commit *p = pending;
        pending = p->next;
        if (p->cb && p->arg)
            p->cb(p->arg, 0, "451 4.3.0 Error: queue service unavailable, try again later");
        pending_free(p);
    }
}

static void queue_reply(struct ipc_chan *ch, struct ipc_msg *m, void *arg)
{
    (void)arg;
    if (!m) {
        log_warn("connection to the queue service lost");
        /* ipc reports a dead channel from its own event: free it here. */
        ipc_chan_free(ch);
        queue_chan = NULL;
        fail_all_pending();
        return;
    }
    if (m->type != IPC_COMMIT_REPLY) {
        log_error("unexpected message type %u from the queue service", m->type);
        return;
    }
    struct pending_commit **pp = &pending;
    while (*pp && (*pp)->reqid != m->reqid)
        pp = &(*pp)->next;
    struct pending_commit *p = *pp;
    if (!p) {
        log_error("queue reply for unknown request %u", m->reqid);
        return;
    }
    *pp = p->next;
    const char *status = ipc_msg_get(m, "status");
    int ok = status && strcmp(status, "ok") == 0;
    const char *failure = ipc_msg_get(m, "reply");
    if (p->cb && p->arg)
        p->cb(p->arg, ok, failure ? failure : storage_reply(EIO));
    pending_free(p);
}

static int queue_connect(void)
{
    if (queue_chan)
        return 0;
    char *path = xasprintf("%s/%s", smtpd_rt->queue_dir, QSOCK_QUEUE);
    int fd = ipc_connect(path);
    if (fd < 0) {
        log_warn("connect to queue service %s: %s", path, strerror(errno));
        free(path);
        return -1;
    }
    free(path);
    queue_chan = ipc_chan_new(smtpd_base, fd, queue_reply, NULL);
    return 0;
}

/* The session gets its 451 now; the entry stays until the queue answers
 * (or goes away), so a late reply finds it and is dropped. */
static void on_commit_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct pending_commit *p = arg;
    log_warn("%s: no answer from the queue service in %ld seconds", p->id, commit_timeout);
    void *session = p->arg;
    p->arg = NULL;
    if (p->cb && session)
        p->cb(session, 0, "451 4.3.0 Error: queue service timeout, try again later");
}

_Static_assert(SMTPD_COMMIT_FILE_MAX + 1024 <= IPC_MAX_MSG, "a COMMIT with its file fits one message");

size_t smtpd_commit_file_max(void)
{
    return queue_chan && ipc_chan_queued(queue_chan) > IPC_MAX_QUEUED / 8 ? 0 : SMTPD_COMMIT_FILE_MAX;
}

void smtpd_commit(const char *id, int memfd, const struct strbuf *bytes, size_t charged, smtpd_commit_cb cb,
                  void *arg)
{
    int in_bytes = bytes && bytes->len > 0;
    if (queue_connect() != 0) {
        smtpd_content_memory_release(charged);
        if (memfd >= 0)
            close(memfd);
        else if (!in_bytes)
            unlinkat(incoming_dirfd, id, 0);
        cb(arg, 0, "451 4.3.0 Error: queue service unavailable, try again later");
        return;
    }
    struct pending_commit *p = xcalloc(1, sizeof *p);
    p->reqid = next_reqid++;
    str_copy(p->id, id, sizeof p->id);
    p->cb = cb;
    p->arg = arg;
    p->content_charged = charged;
    p->next = pending;
    pending = p;
    p->timer = evtimer_new(smtpd_base, on_commit_timeout, p);
    struct timeval tv = {commit_timeout, 0};
    evtimer_add(p->timer, &tv);
    struct ipc_msg m;
    ipc_msg_init(&m, IPC_COMMIT, p->reqid);
    ipc_msg_add(&m, "id", id);
    if (in_bytes)
        ipc_msg_add_bytes(&m, "file", bytes->buf, bytes->len);
    if (ipc_chan_send_fd(queue_chan, &m, memfd) != 0) {
        /* queue_reply(NULL) already failed every pending commit */
    }
    ipc_msg_free(&m);
}

void smtpd_queue_notify(const struct ipc_msg *m)
{
    if (queue_connect() != 0)
        return;   /* queue_connect logged it */
    ipc_chan_send(queue_chan, m);
}

void smtpd_commit_cancel(void *arg)
{
    for (struct pending_commit *p = pending; p; p = p->next)
        if (p->arg == arg)
            p->arg = NULL;
}

static void maybe_exit(void)
{
    if (draining && smtpd_session_count() == 0 && !pending)
        event_base_loopexit(smtpd_base, NULL);
}

/* Accepting pauses when the process is out of descriptors or at its session
 * limit (a session needs its socket and, during DATA, a queue file), instead
 * of spinning on a listener that stays readable. */
static void pause_accepting(int seconds)
{
    if (accept_paused)
        return;
    accept_paused = 1;
    for (size_t i = 0; i < nlisteners; i++)
        if (listeners[i].ev)
            event_del(listeners[i].ev);
    if (seconds > 0) {
        struct timeval tv = {seconds, 0};
        evtimer_add(resume_timer, &tv);
    }
}

static void resume_accepting(void)
{
    if (!accept_paused || draining)
        return;
    accept_paused = 0;
    evtimer_del(resume_timer);
    for (size_t i = 0; i < nlisteners; i++)
        if (listeners[i].ev)
            event_add(listeners[i].ev, NULL);
}

static void on_resume_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    resume_accepting();
}

void smtpd_session_closed(void)
{
    if (smtpd_session_count() < max_sessions)
        resume_accepting();
    maybe_exit();
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct smtpd_listener *l = arg;
    for (int i = 0; i < 64; i++) {
        if (smtpd_session_count() >= max_sessions) {
            log_warn("%u sessions: the limit for this process; not accepting more for now",
                     smtpd_session_count());
            pause_accepting(0);
            return;
        }
        struct sockaddr_storage ss;
        socklen_t sslen = sizeof ss;
        int cfd = accept4(fd, (struct sockaddr *)&ss, &sslen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                log_warn("accept on %s: %s; pausing for a second", l->set.service, strerror(errno));
                pause_accepting(1);
            } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED) {
                log_warn("accept on %s: %s", l->set.service, strerror(errno));
            }
            return;
        }
        smtpd_session_start(smtpd_base, &l->set, cfd, (struct sockaddr *)&ss, sslen);
    }
}

static void stop_accepting(void)
{
    for (size_t i = 0; i < nlisteners; i++) {
        if (listeners[i].ev) {
            event_free(listeners[i].ev);
            listeners[i].ev = NULL;
        }
    }
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    log_info("shutdown: %u sessions still open, exiting", smtpd_session_count());
    event_base_loopexit(smtpd_base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    (void)arg;
    if (sig == SIGUSR1) {
        log_reopen();
        return;
    }
    draining = 1;
    stop_accepting();
    if (sig == SIGTERM || sig == SIGINT)
        smtpd_session_shutdown_all();
    /* A reload lets sessions finish, but not forever. */
    struct timeval tv = {sig == SIGUSR2 ? 600 : 10, 0};
    if (!drain_timer) {
        drain_timer = evtimer_new(smtpd_base, on_drain_timeout, NULL);
        evtimer_add(drain_timer, &tv);
    }
    maybe_exit();
}

int smtpd_main(struct runtime *rt)
{
    smtpd_rt = rt;
    queue_id_init(1);
    smtpd_base = event_base_new();
    /* pgsql: tables answer on this loop; waiting RCPTs run again (smtpd_cmd.c) */
    map_set_event_base(smtpd_base);
    map_set_answer_hook(smtpd_session_tables_answered, NULL);
    if (!smtpd_base)
        log_fatal("cannot create event loop");
    log_batch_on(smtpd_base);
    char *incoming = xasprintf("%s/%s", rt->queue_dir, QDIR_INCOMING);
    incoming_dirfd = open(incoming, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (incoming_dirfd < 0)
        log_fatal("open %s: %s", incoming, strerror(errno));
    free(incoming);
    char *err = NULL;
    resolver = resolver_new(rt->conf, &err);
    if (!resolver)
        log_fatal("%s", err ? err : "cannot set up recipient lookups");
    if (strcmp(conf_str(rt->conf, "capture"), "no") != 0)
        smtpd_capture_init(rt->conf, rt->queue_dir);

    /* Descriptors: a session holds its socket and, while receiving, its
     * queue file; keep some for logs, IPC and lookups. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max && rl.rlim_cur < 65536) {
        rl.rlim_cur = rl.rlim_max < 65536 ? rl.rlim_max : 65536;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    max_sessions = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > 200 ? (unsigned)((rl.rlim_cur - 64) / 2) : 64;
    resume_timer = evtimer_new(smtpd_base, on_resume_timer, NULL);
    commit_timeout = (long)conf_time(rt->conf, "smtpd_timeout");
    nlisteners = rt->nlisteners;
    listeners = xcalloc(nlisteners ? nlisteners : 1, sizeof *listeners);
    for (size_t i = 0; i < nlisteners; i++) {
        struct smtpd_listener *l = &listeners[i];
        smtpd_settings_load(&l->set, rt->listeners[i].conf, rt->listeners[i].service, rt->listeners[i].tls_ctx);
        l->set.capture_counters = rt->capture_counters;
        l->fd = rt->listeners[i].fd;
        evutil_make_socket_nonblocking(l->fd);
        l->ev = event_new(smtpd_base, l->fd, EV_READ | EV_PERSIST, on_accept, l);
        event_add(l->ev, NULL);
    }
    int sigs[] = {SIGTERM, SIGINT, SIGUSR1, SIGUSR2};
    struct event *sigev[4];
    for (int i = 0; i < 4; i++) {
        sigev[i] = evsignal_new(smtpd_base, sigs[i], on_signal, NULL);
        event_add(sigev[i], NULL);
    }
    queue_connect();
    /* Last: everything above may open what the sandbox then closes off. */
    const char **password_files = xcalloc(nlisteners ? nlisteners : 1, sizeof *password_files);
    size_t npassword_files = 0;
    for (size_t i = 0; i < nlisteners; i++)
        if (listeners[i].set.sasl_enabled && !listeners[i].set.sasl_dovecot)
            password_files[npassword_files++] = listeners[i].set.sasl_path;
    smtpd_sandbox_enter(smtpd_base, rt, password_files, npassword_files);
    free(password_files);
    event_base_dispatch(smtpd_base);

    for (int i = 0; i < 4; i++)
        event_free(sigev[i]);
    stop_accepting();
    for (size_t i = 0; i < nlisteners; i++)
        smtpd_settings_free(&listeners[i].set);
    free(listeners);
    if (queue_chan)
        ipc_chan_free(queue_chan);
    fail_all_pending();
    if (drain_timer)
        event_free(drain_timer);
    event_free(resume_timer);
    smtpd_auth_shutdown();
    smtpd_dns_shutdown();
    smtpd_mailauth_shutdown();
    smtpd_anvil_reset();
    smtpd_sandbox_shutdown();
    smtpd_capture_shutdown();
    resolver_free(resolver);
    close(incoming_dirfd);
    log_batch_on(NULL);   /* its flush event goes with the loop */
    event_base_free(smtpd_base);
    return 0;
}
