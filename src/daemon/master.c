/* master: `tern serve`: binds the ports, prepares the queue directory, and
 * starts and supervises the four roles (smtpd, queue, local, and the key
 * process that holds the TLS private keys for smtpd).
 *
 * Children are forked, not exec'd: they inherit the configuration parsed
 * here once, and only the file descriptors of their role. When started as
 * root, smtpd and queue drop to mail_owner before they run; local keeps root
 * to deliver as each recipient; the master keeps root to bind, restart and
 * reload. A child that dies is logged and restarted (with a growing pause
 * if it keeps dying). SIGTERM/SIGINT stop everything; SIGHUP reloads the
 * configuration (smtpd drains its sessions, queue and local restart);
 * SIGUSR1 reopens the log file everywhere. */
#include "daemon/master.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "daemon/instance.h"
#include "daemon/keyproc.h"
#include "daemon/listeners.h"
#include "daemon/master_files.h"
#include "spool/spool.h"
#include "util/clock.h"
#include "util/ipc.h"
#include "daemon/runtime.h"
#include "smtpd/smtpd_session.h"
#include "smtpd/smtpd_policy.h"
#include "tls/tls.h"
#include "tls/tls_keyclient.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"
#include "util/trusted_dir.h"

enum role { ROLE_KEYS, ROLE_QUEUE, ROLE_LOCAL, ROLE_SMTPD, ROLE_CAPTURE, ROLE_COUNT };

/* The key process's end of one smtpd's socketpair. The master keeps it, so
 * a restarted key process takes over the same channel (requests sent
 * meanwhile wait in the socket), until that smtpd has ended. */
struct key_end {
    int fd;
    pid_t smtpd;            /* 0 until that smtpd is forked */
};

struct child {
    const char *name;
    enum role role;
    pid_t pid;
    time_t started;
    unsigned quick_deaths;
    int restart_now;
    struct event *restart_timer;
};

static struct {
    struct event_base *base;
    struct instance inst;
    struct runtime rt;
    struct child children[ROLE_COUNT];
    int stopping;
    int queue_fd;               /* the queue directory, root's: every act of root there goes through it */
    int pid_dir_fd;             /* pid/ */
    int lock_fd;                /* pid/master.pid */
    struct event *kill_timer;
    pid_t *draining;            /* smtpd processes finishing their sessions after a reload */
    size_t ndraining, draining_cap;
    struct event *sigev[5];
    struct master_opts opts;
    struct tls_keyring keyring;         /* the private keys the contexts need */
    const struct tls_keyring *keys_to_load; /* what a key process being started loads */
    int key_status_fd;                  /* its report: "ok" or the problems (-1: log them) */
    struct key_end *key_ends;
    size_t nkey_ends;
    int smtpd_key_fd;                   /* smtpd's end, for the next smtpd forked */
} ms;

/* ---------- children ---------- */

static void drop_privileges(void)
{
    if (!ms.rt.is_root)
        return;
    if (setgroups(0, NULL) != 0 || setgid(ms.rt.owner_gid) != 0 || setuid(ms.rt.owner_uid) != 0)
        log_fatal("cannot drop privileges to uid %u: %s", (unsigned)ms.rt.owner_uid, strerror(errno));
    if (setuid(0) == 0)
        log_fatal("privileges were not dropped");
    /* Not dumpable whatever fs.suid_dumpable says: the queue holds the DKIM
     * keys, and no other process of the mail owner may read its memory. */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        log_fatal("prctl(PR_SET_DUMPABLE): %s", strerror(errno));
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void child_start(enum role role);

/* ---------- the key process ---------- */

static void close_key_ends(void)
{
    for (size_t i = 0; i < ms.nkey_ends; i++)
        close_fd(&ms.key_ends[i].fd);
}

/* A socketpair for the next smtpd: its end waits in ms.smtpd_key_fd. */
static int key_pair_new(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        log_error("socketpair for the key process: %s", strerror(errno));
        return -1;
    }
    ms.key_ends = xrealloc(ms.key_ends, (ms.nkey_ends + 1) * sizeof *ms.key_ends);
    ms.key_ends[ms.nkey_ends++] = (struct key_end){sv[0], 0};
    close_fd(&ms.smtpd_key_fd);
    ms.smtpd_key_fd = sv[1];
    return 0;
}

/* The smtpd pid has ended: the key process needs its channel no more. */
static void key_end_forget(pid_t pid)
{
    for (size_t i = 0; i < ms.nkey_ends; i++)
        if (ms.key_ends[i].smtpd == pid) {
            close_fd(&ms.key_ends[i].fd);
            ms.key_ends[i] = ms.key_ends[--ms.nkey_ends];
            return;
        }
}

static void key_status(const char *text)
{
    if (ms.key_status_fd < 0)
        return;
    size_t len = strlen(text);
    while (len > 0) {
        ssize_t n = write(ms.key_status_fd, text, len);
        if (n <= 0 && errno != EINTR)
            break;
        if (n > 0)
            text += n, len -= (size_t)n;
    }
    close_fd(&ms.key_status_fd);
}

/* In the forked key process: read the keys as root, then drop to
 * mail_owner. Not dumpable from the start, so that no process of the
 * same user (smtpd) can ptrace it or read its memory. */
static int run_key_process(void)
{
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        log_fatal("prctl(PR_SET_DUMPABLE): %s", strerror(errno));
    struct strbuf diag = STRBUF_INIT;
    const struct tls_keyring *ring = ms.keys_to_load ? ms.keys_to_load : &ms.keyring;
    struct keyproc *kp = keyproc_load(ring, &diag);
    if (!kp) {
        if (ms.key_status_fd < 0)
            log_error("cannot load the TLS keys: %s", strbuf_str(&diag));
        key_status(strbuf_str(&diag));
        strbuf_free(&diag);
        return 1;
    }
    strbuf_free(&diag);
    drop_privileges();
    /* again: the change of user resets the flag to fs.suid_dumpable, which
     * an administrator may have set to 1 */
    if (ms.rt.is_root && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        log_fatal("prctl(PR_SET_DUMPABLE): %s", strerror(errno));
    key_status("ok\n");
    log_info("holding %zu TLS private key%s for %zu smtpd process%s", ring->n, ring->n == 1 ? "" : "s",
             ms.nkey_ends, ms.nkey_ends == 1 ? "" : "es");
    int *fds = xcalloc(ms.nkey_ends ? ms.nkey_ends : 1, sizeof *fds);
    for (size_t i = 0; i < ms.nkey_ends; i++)
        fds[i] = ms.key_ends[i].fd;
    int rc = keyproc_serve(kp, fds, ms.nkey_ends);
    free(fds);
    keyproc_free(kp);
    return rc;
}

static void retire(pid_t pid);

/* Starts a key process for ring and waits for its report: 0 once it holds
 * every key, or -1 with the problems in diag (it has then exited). */
static int key_process_start_checked(const struct tls_keyring *ring, struct strbuf *diag)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        strbuf_printf(diag, "pipe: %s\n", strerror(errno));
        return -1;
    }
    ms.key_status_fd = pfd[1];
    ms.keys_to_load = ring;
    child_start(ROLE_KEYS);
    close_fd(&ms.key_status_fd);
    ms.keys_to_load = NULL;
    struct strbuf report = STRBUF_INIT;
    struct pollfd p = {.fd = pfd[0], .events = POLLIN};
    for (;;) {
        char buf[512];
        int pr = poll(&p, 1, 20000);
        if (pr < 0 && errno == EINTR)
            continue;
        ssize_t n = pr > 0 ? read(pfd[0], buf, sizeof buf) : -1;
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        strbuf_append(&report, buf, (size_t)n);
    }
    close(pfd[0]);
    int ok = strcmp(strbuf_str(&report), "ok\n") == 0;
    if (!ok) {
        strbuf_puts(diag, report.len ? strbuf_str(&report) : "the key process did not start\n");
        struct child *k = &ms.children[ROLE_KEYS];
        if (k->pid > 0) {
            kill(k->pid, SIGKILL);
            retire(k->pid);
            k->pid = 0;
        }
    }
    strbuf_free(&report);
    return ok ? 0 : -1;
}

/* The child gets its own event loop: the master's must stop existing here
 * without touching the kernel state the master still uses (its epoll set
 * and signal pipe), hence event_reinit before anything is freed. */
static void forget_master_loop(void)
{
    event_reinit(ms.base);
    for (int i = 0; i < 5; i++)
        if (ms.sigev[i]) {
            event_free(ms.sigev[i]);
            ms.sigev[i] = NULL;
        }
    for (int i = 0; i < ROLE_COUNT; i++)
        if (ms.children[i].restart_timer) {
            event_free(ms.children[i].restart_timer);
            ms.children[i].restart_timer = NULL;
        }
    if (ms.kill_timer) {
        event_free(ms.kill_timer);
        ms.kill_timer = NULL;
    }
    event_base_free(ms.base);
    ms.base = NULL;
}

static void run_child(enum role role)
{
    forget_master_loop();
    /* The parent's libevent signal handlers must not run here. */
    int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        signal(sigs[i], SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    close_fd(&ms.lock_fd);
    close_fd(&ms.pid_dir_fd);
    close_fd(&ms.queue_fd);
    if (role != ROLE_KEYS)
        close_key_ends();
    if (role != ROLE_SMTPD)
        close_fd(&ms.smtpd_key_fd);
    if (role != ROLE_CAPTURE)
        close_fd(&ms.rt.capture_http_fd);
    if (role != ROLE_CAPTURE)
        close_fd(&ms.rt.capture_listen_fd);
    int rc = 0;
    switch (role) {
    case ROLE_CAPTURE:
        log_set_role("capture");
        close_fd(&ms.rt.local_listen_fd);
        close_fd(&ms.rt.queue_listen_fd);
        close_fd(&ms.rt.qmgr_listen_fd);
        for (size_t i = 0; i < ms.rt.nlisteners; i++)
            close_fd(&ms.rt.listeners[i].fd);
        drop_privileges();
        rc = capture_main(&ms.rt);
        break;
    case ROLE_KEYS:
        log_set_role("keys");
        close_fd(&ms.rt.local_listen_fd);
        close_fd(&ms.rt.queue_listen_fd);
        close_fd(&ms.rt.qmgr_listen_fd);
        for (size_t i = 0; i < ms.rt.nlisteners; i++)
            close_fd(&ms.rt.listeners[i].fd);
        rc = run_key_process();
        break;
    case ROLE_SMTPD:
        log_set_role("smtpd");
        close_fd(&ms.rt.local_listen_fd);
        close_fd(&ms.rt.queue_listen_fd);
        close_fd(&ms.rt.qmgr_listen_fd);
        drop_privileges();
        /* smtpd's one way to its private keys; it opens nothing for it */
        tls_keyclient_set_fd(ms.smtpd_key_fd);
        rc = smtpd_main(&ms.rt);
        break;
    case ROLE_QUEUE:
        log_set_role("queue");
        close_fd(&ms.rt.local_listen_fd);
        /* their addresses stay: mail routed to one of them loops back */
        for (size_t i = 0; i < ms.rt.nlisteners; i++) {
            socklen_t len = sizeof ms.rt.listeners[i].bound;
            if (getsockname(ms.rt.listeners[i].fd, (struct sockaddr *)&ms.rt.listeners[i].bound, &len) != 0)
                memset(&ms.rt.listeners[i].bound, 0, sizeof ms.rt.listeners[i].bound);
            close_fd(&ms.rt.listeners[i].fd);
        }
        qmgr_prepare_as_root(&ms.rt);
        drop_privileges();
        rc = qmgr_main(&ms.rt);
        break;
    case ROLE_LOCAL:
        log_set_role("local");
        close_fd(&ms.rt.queue_listen_fd);
        close_fd(&ms.rt.qmgr_listen_fd);
        for (size_t i = 0; i < ms.rt.nlisteners; i++)
            close_fd(&ms.rt.listeners[i].fd);
        rc = local_main(&ms.rt);
        break;
    default:
        break;
    }
    master_cleanup_for_exit();
    exit(rc);
}


/* A process told to go (SIGTERM, or SIGUSR2 for a draining smtpd) that is
 * still there after its grace is killed: a compromised smtpd may keep a
 * key process from acting on SIGTERM, or ignore SIGUSR2 itself and hold
 * its channel to every new key process. Only a pid not reaped yet is
 * signalled (a zombie keeps it): the role's current one, or a retired one. */
#define KEYPROC_STOP_GRACE 5

/* The deadlines running; static, not allocated, so the children forked
 * meanwhile inherit nothing to free. The oldest slot is reused when all are
 * taken (a deadline then lost only spares a process that should have gone). */
static struct deadline {
    pid_t pid;
    const char *what;
    int grace;
    long long due_ms;   /* a reused slot's earlier timer, firing first, finds it not due */
} deadlines[16];
static size_t next_deadline;

static void kill_if_still_there(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct deadline *d = arg;
    if (clock_monotonic_ms() < d->due_ms)
        return;
    int ours = d->pid > 0 && ms.children[ROLE_KEYS].pid == d->pid;
    for (size_t i = 0; !ours && d->pid > 0 && i < ms.ndraining; i++)
        ours = ms.draining[i] == d->pid;
    if (ours) {
        log_warn("the %s %ld did not stop within %d seconds; killing it", d->what, (long)d->pid, d->grace);
        kill(d->pid, SIGKILL);
    }
    d->pid = 0;
}

static void kill_after(pid_t pid, int grace, const char *what)
{
    struct deadline *d = &deadlines[next_deadline++ % (sizeof deadlines / sizeof deadlines[0])];
    /* due half a second early: the timer may fire a tick before the clock says */
    *d = (struct deadline){pid, what, grace, clock_monotonic_ms() + grace * 1000LL - 500};
    struct timeval tv = {grace, 0};
    event_base_once(ms.base, -1, EV_TIMEOUT, kill_if_still_there, d, &tv);
}

static void stop_key_process(pid_t pid)
{
    kill(pid, SIGTERM);
    kill_after(pid, KEYPROC_STOP_GRACE, "key process");
}

static void child_start(enum role role)
{
    struct child *c = &ms.children[role];
    /* A new smtpd needs its own channel to the key process, which must be
     * restarted to serve it (a reload has done both already). */
    if (role == ROLE_SMTPD && ms.smtpd_key_fd < 0 && key_pair_new() == 0) {
        struct child *k = &ms.children[ROLE_KEYS];
        if (k->pid > 0) {
            k->restart_now = 1;
            stop_key_process(k->pid);
        }
    }
    /* Signals stay blocked across fork() until the child has replaced the
     * master's handlers (run_child unblocks them): one sent to the new pid
     * meanwhile is then acted on, not swallowed by the master's handler. */
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid_t pid = fork();
    if (pid == 0)
        run_child(role);
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        log_error("fork %s: %s", c->name, strerror(errno));
        return;
    }
    c->pid = pid;
    c->started = time(NULL);
    c->restart_now = 0;
    if (role == ROLE_SMTPD) {
        for (size_t i = 0; i < ms.nkey_ends; i++)
            if (ms.key_ends[i].smtpd == 0)
                ms.key_ends[i].smtpd = pid;
        close_fd(&ms.smtpd_key_fd);
    }
}

static void on_restart_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct child *c = arg;
    if (!ms.stopping && c->pid == 0)
        child_start(c->role);
}

static int all_stopped(void)
{
    for (int i = 0; i < ROLE_COUNT; i++)
        if (ms.children[i].pid > 0)
            return 0;
    return ms.ndraining == 0;
}

static void forget_draining(pid_t pid)
{
    for (size_t i = 0; i < ms.ndraining; i++) {
        if (ms.draining[i] == pid) {
            ms.draining[i] = ms.draining[--ms.ndraining];
            return;
        }
    }
}

/* A process that is no child of a role any more (an smtpd draining after
 * a reload, a replaced key process): reaped without a restart, signalled
 * with the others at stop. */
static void retire(pid_t pid)
{
    ms.draining = xgrow(ms.draining, &ms.draining_cap, ms.ndraining + 1, sizeof *ms.draining);
    ms.draining[ms.ndraining++] = pid;
}

static void reap(void)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct child *c = NULL;
        for (int i = 0; i < ROLE_COUNT; i++)
            if (ms.children[i].pid == pid)
                c = &ms.children[i];
        if (!c) {
            forget_draining(pid); /* an smtpd draining after a reload, a replaced key process */
            key_end_forget(pid);
            continue;
        }
        c->pid = 0;
        if (c->role == ROLE_SMTPD)
            key_end_forget(pid);
        if (ms.stopping)
            continue;
        if (c->restart_now) {
            child_start(c->role);
            continue;
        }
        if (WIFSIGNALED(status))
            log_warn("process %s pid %d killed by signal %d", c->name, (int)pid, WTERMSIG(status));
        else
            log_warn("process %s pid %d exit status %d", c->name, (int)pid, WEXITSTATUS(status));
        /* A process that keeps dying right after start waits longer each time. */
        if (time(NULL) - c->started < 10)
            c->quick_deaths++;
        else
            c->quick_deaths = 0;
        int delay = c->quick_deaths ? 1 << (c->quick_deaths > 6 ? 6 : c->quick_deaths) : 1;
        log_info("restarting %s in %d seconds", c->name, delay);
        struct timeval tv = {delay, 0};
        evtimer_add(c->restart_timer, &tv);
    }
    if (ms.stopping && all_stopped())
        event_base_loopexit(ms.base, NULL);
}

/* Draining smtpd processes too: they still log, and a stop must not leave
 * them behind holding client sessions. */
static void signal_children(int sig)
{
    for (int i = 0; i < ROLE_COUNT; i++)
        if (ms.children[i].pid > 0)
            kill(ms.children[i].pid, sig);
    for (size_t i = 0; i < ms.ndraining; i++)
        kill(ms.draining[i], sig);
}

static void on_kill_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    log_warn("children did not stop in time; killing them");
    signal_children(SIGKILL);
}

/* Opens maillog_file for the master running as root. Every process
 * writes the file, most as mail_owner, so root creates it and lets
 * mail_owner's group write it; but root acts only in a directory no other
 * user can change (trusted_dir, from / down), never through a link, and
 * only on a plain file with one name: otherwise a user who can write the
 * directory could make root create, chown or append to any file. -1 with
 * the reason in diag. */
static void reload(void)
{
    struct instance fresh;
    struct strbuf diag = STRBUF_INIT;
    if (instance_load(&fresh, ms.inst.config_dir, &diag) != 0 || conf_check(fresh.conf, &diag) > 0) {
        log_error("reload refused, configuration has errors: %s", strbuf_str(&diag));
        instance_free(&fresh);
        strbuf_free(&diag);
        return;
    }
    strbuf_free(&diag);
    /* The new log file first: a maillog_file root must not open refuses the
     * whole reload, as a syntax error does. */
    int new_log_fd = -1;
    const char *new_log = conf_str(fresh.conf, "maillog_file");
    if (ms.rt.is_root && *new_log && (new_log_fd = maillog_open(new_log, ms.rt.owner_gid, &diag)) < 0) {
        log_error("reload refused: %s", strbuf_str(&diag));
        instance_free(&fresh);
        strbuf_free(&diag);
        return;
    }
    /* The listening sockets stay; their settings (and TLS keys) follow the
     * new files, all or nothing. */
    size_t n = ms.rt.nlisteners;
    struct conf **confs = xcalloc(n ? n : 1, sizeof *confs);
    struct ssl_ctx_st **ctxs = xcalloc(n ? n : 1, sizeof *ctxs);
    struct tls_keyring keyring = {0};
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        struct runtime_listener *l = &ms.rt.listeners[i];
        struct conf *c = confs[i] = conf_clone(fresh.conf);
        for (size_t k = 0; k < fresh.services.n; k++) {
            struct mastercf_service *s = &fresh.services.svc[k];
            if (strcmp(s->name, l->service) != 0)
                continue;
            for (size_t j = 0; j < s->noverrides; j++)
                conf_set(c, s->overrides[j].name, s->overrides[j].value, s->file, s->line);
        }
        if (listeners_tls(l->service, c, &keyring, &ctxs[i], &diag) != 0)
            bad = 1;
    }
    /* The keys too: a new key process reads them for the new smtpd and the
     * draining one; the old key process goes only once it holds them all. */
    pid_t old_keys = ms.children[ROLE_KEYS].pid;
    if (!bad && key_pair_new() == 0) {
        ms.children[ROLE_KEYS].pid = 0;
        if (key_process_start_checked(&keyring, &diag) != 0) {
            bad = 1;
            ms.children[ROLE_KEYS].pid = old_keys;
            close_fd(&ms.smtpd_key_fd);
            key_end_forget(0);
        }
    } else if (!bad) {
        strbuf_puts(&diag, "cannot make a socketpair for the key process");
        bad = 1;
    }
    if (bad) {
        tls_keyring_free(&keyring);
        log_error("reload refused: %s", strbuf_str(&diag));
        for (size_t i = 0; i < n; i++) {
            conf_free(confs[i]);
            tls_ctx_free(ctxs[i]);
        }
        free(confs);
        free(ctxs);
        strbuf_free(&diag);
        instance_free(&fresh);
        if (new_log_fd >= 0)
            close(new_log_fd);
        return;
    }
    strbuf_free(&diag);
    if (old_keys > 0) {
        retire(old_keys);
        stop_key_process(old_keys);
    }
    tls_keyring_free(&ms.keyring);
    ms.keyring = keyring;
    for (size_t i = 0; i < n; i++) {
        struct runtime_listener *l = &ms.rt.listeners[i];
        conf_free(l->conf);
        l->conf = confs[i];
        /* the draining smtpd has its own copy (fork): this one can go */
        tls_ctx_free(l->tls_ctx);
        l->tls_ctx = ctxs[i];
    }
    free(confs);
    free(ctxs);
    conf_free(ms.inst.conf);
    ms.inst.conf = fresh.conf;
    fresh.conf = NULL;
    mastercf_free(&ms.inst.services);
    ms.inst.services = fresh.services;
    memset(&fresh.services, 0, sizeof fresh.services);
    instance_free(&fresh);
    ms.rt.conf = ms.inst.conf;
    if (new_log_fd >= 0)
        log_set_file_fd(new_log, new_log_fd);
    else
        log_set_file(new_log);
    log_info("reload -- version %s, configuration %s", TERN_VERSION, ms.inst.config_dir);
    /* smtpd finishes its sessions while a new one takes new connections. */
    struct child *s = &ms.children[ROLE_SMTPD];
    if (s->pid > 0) {
        kill(s->pid, SIGUSR2);
        retire(s->pid);
        /* an idle session ends after smtpd_timeout: twice that, and 10 s,
         * is all a draining smtpd gets (a client cut off then has no 250
         * yet, and sends again) */
        long t = (long)conf_time(ms.inst.conf, "smtpd_timeout");
        kill_after(s->pid, (int)(t > 0 ? 2 * t + 10 : 610), "draining smtpd");
        s->pid = 0;
    }
    child_start(ROLE_SMTPD);
    /* capture restarts too (its limits); turning capture mode on or off, or
     * moving capture_http_address, needs a restart of tern */
    for (int r = ROLE_QUEUE; r < ROLE_COUNT; r++) {
        if (r == ROLE_SMTPD)
            continue;
        struct child *c = &ms.children[r];
        if (c->pid > 0) {
            c->restart_now = 1;
            kill(c->pid, SIGTERM);
        }
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    (void)arg;
    switch (sig) {
    case SIGCHLD:
        reap();
        break;
    case SIGHUP:
        if (!ms.stopping)
            reload();
        break;
    case SIGUSR1: {
        /* the master (re)creates the file first, so the children only reopen it */
        struct strbuf why = STRBUF_INIT;
        if (!ms.rt.is_root)
            log_reopen();
        else if (maillog_use(conf_str(ms.inst.conf, "maillog_file"), ms.rt.is_root, ms.rt.owner_gid, &why) != 0)
            log_error("cannot reopen the log: %s", strbuf_str(&why));
        strbuf_free(&why);
        signal_children(SIGUSR1);
        break;
    }
    default:
        if (ms.stopping)
            break;
        log_info("terminating on signal %d", (int)sig);
        ms.stopping = 1;
        signal_children(SIGTERM);
        struct timeval tv = {15, 0};
        ms.kill_timer = evtimer_new(ms.base, on_kill_timer, NULL);
        evtimer_add(ms.kill_timer, &tv);
        if (all_stopped())
            event_base_loopexit(ms.base, NULL);
    }
}

/* ---------- setup ---------- */

static int resolve_owner(struct strbuf *diag)
{
    ms.rt.is_root = geteuid() == 0;
    if (!ms.rt.is_root) {
        ms.rt.owner_uid = getuid();
        ms.rt.owner_gid = getgid();
        return 0;
    }
    const char *owner = conf_str(ms.inst.conf, "mail_owner");
    /* Also in dev mode: no fallback to "nobody", an account other daemons
     * share, which would then own the queue and become root through it. */
    struct passwd *pw = getpwnam(owner);
    if (!pw) {
        strbuf_printf(diag,
                  "mail_owner %s does not exist; create it with:\n"
                  "  useradd --system --home-dir /var/spool/tern --shell /usr/sbin/nologin %s\n",
                  owner, owner);
        return -1;
    }
    if (pw->pw_uid == 0) {
        strbuf_printf(diag, "mail_owner must not be root\n");
        return -1;
    }
    ms.rt.owner_uid = pw->pw_uid;
    ms.rt.owner_gid = pw->pw_gid;
    return 0;
}

/* A listening socket in a directory of the queue that root owns (private/
 * or public/), bound and owned through the directory's descriptor; the
 * socket itself belongs to mail_owner, whose processes accept on it or
 * connect to it. */
static int make_unix_listener(const char *dirname, const char *name, int mode, struct strbuf *diag)
{
    int dfd = openat(ms.queue_fd, dirname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int fd = dfd < 0 ? -1 : ipc_listen_at(dfd, name, mode);
    if (fd < 0) {
        strbuf_printf(diag, "cannot listen on %s/%s/%s: %s\n", ms.rt.queue_dir, dirname, name, strerror(errno));
    } else if (ms.rt.is_root && fchownat(dfd, name, ms.rt.owner_uid, ms.rt.owner_gid, AT_SYMLINK_NOFOLLOW) != 0) {
        strbuf_printf(diag, "chown %s/%s/%s: %s\n", ms.rt.queue_dir, dirname, name, strerror(errno));
        close(fd);
        fd = -1;
    }
    if (dfd >= 0)
        close(dfd);
    return fd;
}

/* `tern start`: the parent returns to the shell once the ports are known to
 * be free (they are bound after this, but the lock is already held). */
static int daemonize(struct strbuf *diag, int use_syslog)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        strbuf_printf(diag, "fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid > 0)
        _exit(0);
    setsid();
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        if (null > STDERR_FILENO)
            close(null);
    }
    log_set_stderr(0);
    if (use_syslog)
        log_set_syslog(1);
    return 0;
}

void master_cleanup_for_exit(void)
{
    for (size_t i = 0; i < ms.rt.nlisteners; i++) {
        close_fd(&ms.rt.listeners[i].fd);
        conf_free(ms.rt.listeners[i].conf);
        tls_ctx_free(ms.rt.listeners[i].tls_ctx);
        free(ms.rt.listeners[i].service);
        free(ms.rt.listeners[i].address);
    }
    free(ms.rt.listeners);
    ms.rt.listeners = NULL;
    ms.rt.nlisteners = 0;
    close_fd(&ms.rt.queue_listen_fd);
    close_fd(&ms.rt.qmgr_listen_fd);
    close_fd(&ms.rt.local_listen_fd);
    close_fd(&ms.rt.capture_listen_fd);
    close_fd(&ms.rt.capture_http_fd);
    free(ms.rt.capture_http_address);
    ms.rt.capture_http_address = NULL;
    close_key_ends();
    free(ms.key_ends);
    ms.key_ends = NULL;
    ms.nkey_ends = 0;
    close_fd(&ms.smtpd_key_fd);
    tls_keyring_free(&ms.keyring);
    for (int i = 0; i < ROLE_COUNT; i++)
        if (ms.children[i].restart_timer) {
            event_free(ms.children[i].restart_timer);
            ms.children[i].restart_timer = NULL;
        }
    if (ms.kill_timer) {
        event_free(ms.kill_timer);
        ms.kill_timer = NULL;
    }
    free(ms.draining);
    ms.draining = NULL;
    ms.ndraining = ms.draining_cap = 0;
    free(ms.rt.queue_dir);
    ms.rt.queue_dir = NULL;
    instance_free(&ms.inst);
    /* ms.base belongs to the master; a child only forgets it. */
}

int master_run(const struct master_opts *opts)
{
    memset(&ms, 0, sizeof ms);
    ms.opts = *opts;
    ms.lock_fd = ms.queue_fd = ms.pid_dir_fd = -1;
    ms.rt.queue_listen_fd = ms.rt.qmgr_listen_fd = ms.rt.local_listen_fd = -1;
    ms.rt.capture_listen_fd = ms.rt.capture_http_fd = -1;
    ms.key_status_fd = ms.smtpd_key_fd = -1;
    /* before any child exists: every incoming/ file written earlier is a
     * dead instance's (the queue's recovery removes those) */
    clock_gettime(CLOCK_REALTIME, &ms.rt.started);
    log_init("master");
    log_set_stderr(1);
    struct strbuf diag = STRBUF_INIT;
    /* A value that does not parse is an error, as Postfix refuses to start on
     * one: `tern config check` shows the same messages. */
    struct strbuf checks = STRBUF_INIT;
    int bad = instance_load(&ms.inst, opts->config_dir, &diag) != 0;
    if (!bad && conf_check(ms.inst.conf, &checks) > 0) {
        bad = 1;
        strbuf_puts(&diag, strbuf_str(&checks));
    } else if (!bad && checks.len) {
        fputs(strbuf_str(&checks), stderr); /* warnings: unknown or not yet used parameters */
    }
    strbuf_free(&checks);
    if (bad) {
        fprintf(stderr, "%s", strbuf_str(&diag));
        fprintf(stderr, "tern: fatal: configuration errors in %s\n", opts->config_dir);
        strbuf_free(&diag);
        instance_free(&ms.inst);
        return 1;
    }
    ms.rt.conf = ms.inst.conf;
    ms.rt.config_dir = ms.inst.config_dir;
    ms.rt.queue_dir = xstrdup(instance_queue_dir(&ms.inst));
    ms.rt.foreground = 1;
    int rc = 1;
    if (resolve_owner(&diag) != 0)
        goto fail;
    ms.queue_fd = instance_prepare_queue(&ms.inst, ms.rt.is_root ? ms.rt.owner_uid : (uid_t)-1,
                                         ms.rt.is_root ? ms.rt.owner_gid : (gid_t)-1, &diag);
    if (ms.queue_fd < 0 || pidlock_take(ms.queue_fd, ms.rt.queue_dir, &ms.pid_dir_fd, &ms.lock_fd, &diag) != 0)
        goto fail;
    /* before detaching, so that a refused log file is reported on the terminal */
    const char *logfile = conf_str(ms.inst.conf, "maillog_file");
    if (maillog_use(logfile, ms.rt.is_root, ms.rt.owner_gid, &diag) != 0)
        goto fail;
    if (opts->daemonize && daemonize(&diag, !*logfile) != 0)
        goto fail;
    pidlock_publish(ms.lock_fd);
    if ((ms.rt.queue_listen_fd = make_unix_listener(QDIR_PRIVATE, QSOCK_QUEUE_NAME, 0600, &diag)) < 0 ||
        (ms.rt.qmgr_listen_fd = make_unix_listener(QDIR_PUBLIC, QSOCK_QMGR_NAME, 0666, &diag)) < 0 ||
        (ms.rt.local_listen_fd = make_unix_listener(QDIR_PRIVATE, QSOCK_LOCAL_NAME, 0600, &diag)) < 0)
        goto fail;
    if (listeners_bind(&ms.rt, &ms.inst, &ms.keyring, &diag) != 0)
        goto fail;
    if (strcmp(conf_str(ms.inst.conf, "capture"), "no") != 0) {
        void *page = mmap(NULL, sizeof *ms.rt.capture_counters, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                          -1, 0);
        ms.rt.capture_counters = page == MAP_FAILED ? NULL : page;
    }
    if (strcmp(conf_str(ms.inst.conf, "capture"), "no") != 0 &&
        ((ms.rt.capture_listen_fd = make_unix_listener(QDIR_PRIVATE, QSOCK_CAPTURE_NAME, 0600, &diag)) < 0 ||
         listeners_bind_capture(&ms.rt, ms.inst.conf, &diag) != 0))
        goto fail;
    if (ms.rt.nlisteners == 0)
        log_warn("no smtpd service in master.cf: mail arrives only through sendmail");

    ms.base = event_base_new();
    if (!ms.base) {
        strbuf_puts(&diag, "cannot create event loop\n");
        goto fail;
    }
    static const char *names[ROLE_COUNT] = {"keys", "queue", "local", "smtpd", "capture"};
    for (int i = 0; i < ROLE_COUNT; i++) {
        ms.children[i].name = names[i];
        ms.children[i].role = (enum role)i;
        ms.children[i].restart_timer = evtimer_new(ms.base, on_restart_timer, &ms.children[i]);
    }
    int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1};
    for (int i = 0; i < 5; i++) {
        ms.sigev[i] = evsignal_new(ms.base, sigs[i], on_signal, NULL);
        event_add(ms.sigev[i], NULL);
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
    /* The key process first: a key that cannot be read, or does not match
     * its certificate, stops the start here with the file's name. */
    if (key_pair_new() != 0) {
        strbuf_puts(&diag, "cannot make a socketpair for the key process\n");
        goto fail;
    }
    if (key_process_start_checked(&ms.keyring, &diag) != 0)
        goto fail;

    log_info("daemon started -- version %s, configuration %s", TERN_VERSION, ms.inst.config_dir);
    for (size_t i = 0; i < ms.rt.nlisteners; i++)
        log_info("listening on %s (service %s)", ms.rt.listeners[i].address, ms.rt.listeners[i].service);
    if (opts->announce)
        opts->announce(&ms.rt, opts->announce_arg);
    if (ms.rt.capture_http_address)
        log_info("capture mode (%s): API and page on http://%s/", conf_str(ms.inst.conf, "capture"),
                 ms.rt.capture_http_address);
    for (int i = 0; i < ROLE_COUNT; i++)
        if (i != ROLE_KEYS && (i != ROLE_CAPTURE || ms.rt.capture_http_fd >= 0))
            child_start((enum role)i);

    event_base_dispatch(ms.base);
    log_info("stopped");
    for (int i = 0; i < 5; i++) {
        event_free(ms.sigev[i]);
        ms.sigev[i] = NULL;
    }
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "%s", strbuf_str(&diag));
    fprintf(stderr, "tern: fatal: cannot start\n");
out:
    strbuf_free(&diag);
    if (ms.lock_fd >= 0) {
        /* still under the lock; by name in pid/, which only root can change */
        unlinkat(ms.pid_dir_fd, QFILE_MASTER_PID, 0);
        close_fd(&ms.lock_fd);
    }
    close_fd(&ms.pid_dir_fd);
    close_fd(&ms.queue_fd);
    master_cleanup_for_exit();
    if (ms.base)
        event_base_free(ms.base);
    return rc;
}
