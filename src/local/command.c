/* command: one delivery command as a user, asynchronously (see command.h). */
#include "local/command.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include "spool/queue_file.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

/* ---------- environment ---------- */

void command_filter(char *s, const char *filter)
{
    for (char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (filter ? !strchr(filter, c) : c < 0x20 || c > 0x7e)
            *p = '_';
    }
}

static void env_append(char ***env, size_t *n, char *entry)
{
    *env = xrealloc(*env, (*n + 2) * sizeof **env);
    (*env)[(*n)++] = entry;
    (*env)[*n] = NULL;
}

static void env_add(char ***env, size_t *n, const char *filter, const char *name, const char *value, size_t len)
{
    if (!value)
        return;
    char *v = xstrndup(value, len);
    command_filter(v, filter);
    env_append(env, n, xasprintf("%s=%s", name, v));
    free(v);
}

/* Whether env already has a variable named like entry ("NAME=..."). */
static int env_has(char **env, const char *entry)
{
    size_t len = strcspn(entry, "=");
    for (char **p = env; *p; p++)
        if (strncmp(*p, entry, len) == 0 && (*p)[len] == '=')
            return 1;
    return 0;
}

char **command_env_exported(char *const *items, size_t n)
{
    char **env = xcalloc(1, sizeof *env);
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        char *item = xstrdup(items[i]);
        char *s = item;
        size_t len = strlen(s);
        if (len >= 2 && s[0] == '{' && s[len - 1] == '}') {
            s[len - 1] = '\0';
            s = str_trim(s + 1);
        }
        char *eq = strchr(s, '=');
        if (eq) {
            *eq = '\0';
            char *name = str_trim(s), *value = str_trim(eq + 1);
            if (*name)
                env_append(&env, &count, xasprintf("%s=%s", name, value));
        } else if (*s && getenv(s)) {
            env_append(&env, &count, xasprintf("%s=%s", s, getenv(s)));
        }
        free(item);
    }
    return env;
}

static void env_put(char ***env, size_t *n, const char *filter, const char *name, const char *value)
{
    if (value)
        env_add(env, n, filter, name, value, strlen(value));
}

char **command_env_build(const struct command_env_fields *f)
{
    char **env = xcalloc(1, sizeof *env);
    size_t n = 0;
    env_put(&env, &n, f->filter, "HOME", f->home);
    env_put(&env, &n, f->filter, "LOGNAME", f->logname);
    env_put(&env, &n, f->filter, "USER", f->logname);
    env_put(&env, &n, f->filter, "SHELL", f->shell);
    env_put(&env, &n, f->filter, "SENDER", f->sender);
    env_put(&env, &n, f->filter, "RECIPIENT", f->recipient);
    if (f->recipient) {
        const char *at = strrchr(f->recipient, '@');
        size_t local_len = at ? (size_t)(at - f->recipient) : strlen(f->recipient);
        env_add(&env, &n, f->filter, "LOCAL", f->recipient, local_len);
        if (at)
            env_put(&env, &n, f->filter, "DOMAIN", at + 1);
        /* the extension: after the first delimiter character in the local part */
        const char *delims = f->recipient_delimiter ? f->recipient_delimiter : "";
        for (size_t i = 0; *delims && i < local_len; i++) {
            if (strchr(delims, f->recipient[i])) {
                env_add(&env, &n, f->filter, "EXTENSION", f->recipient + i + 1, local_len - i - 1);
                break;
            }
        }
    }
    env_put(&env, &n, f->filter, "ORIGINAL_RECIPIENT", f->original_recipient);
    const struct {
        const char *name, *value;
    } client[] = {
        {"CLIENT_ADDRESS", f->client_address}, {"CLIENT_HELO", f->client_helo},
        {"CLIENT_HOSTNAME", f->client_hostname}, {"CLIENT_PROTOCOL", f->client_protocol},
        {"SASL_METHOD", f->sasl_method}, {"SASL_SENDER", f->sasl_sender},
        {"SASL_USERNAME", f->sasl_username},
    };
    for (size_t i = 0; i < sizeof client / sizeof client[0]; i++)
        if (client[i].value && *client[i].value)
            env_put(&env, &n, f->filter, client[i].name, client[i].value);
    env_append(&env, &n, xstrdup("PATH=/usr/bin:/bin"));
    for (char *const *e = f->exported; e && *e; e++)
        if (!env_has(env, *e))
            env_append(&env, &n, xstrdup(*e));
    return env;
}

void command_env_client(int qfd, off_t content_offset, struct command_env_fields *f, struct queue_file_message *m)
{
    char why[256];
    /* the queue file starts QF_HEADER_SIZE before its content (a queue/
     * file at 0, a journal message inside its segment) */
    uint64_t start = content_offset >= QF_HEADER_SIZE ? (uint64_t)content_offset - QF_HEADER_SIZE : 0;
    if (queue_file_read_at(qfd, start, m, why, sizeof why) != 0) {
        str_printable(why);
        log_warn("cannot read the client of the queue file for a command's environment: %s", why);
        return;
    }
    if (!queue_file_message_attr(m, "client_address"))
        return;
    f->client_address = queue_file_message_attr(m, "client_address");
    f->client_helo = queue_file_message_attr(m, "helo_name");
    f->client_hostname = queue_file_message_attr(m, "client_name");
    f->client_protocol = queue_file_message_attr(m, "protocol");
    f->sasl_method = queue_file_message_attr(m, "sasl_method");
    f->sasl_username = queue_file_message_attr(m, "sasl_username");
}

void command_env_free(char **env)
{
    if (!env)
        return;
    for (char **p = env; *p; p++)
        free(*p);
    free(env);
}

/* ---------- what the exit status means ---------- */

/* sysexits.h codes and how Postfix reports them. */
static const struct {
    int code;
    int temporary;
    const char *enh;
    const char *name;
} sysexits[] = {
    {EX_USAGE, 0, "5.3.0", "command line usage error"},
    {EX_DATAERR, 0, "5.6.0", "data format error"},
    {EX_NOINPUT, 0, "5.3.0", "cannot open input"},
    {EX_NOUSER, 0, "5.1.1", "user unknown"},
    {EX_NOHOST, 0, "5.1.2", "host name unknown"},
    {EX_UNAVAILABLE, 0, "5.3.0", "service unavailable"},
    {EX_SOFTWARE, 0, "5.3.0", "internal software error"},
    {EX_OSERR, 1, "4.3.0", "system resource problem"},
    {EX_OSFILE, 0, "5.3.0", "critical OS file missing"},
    {EX_CANTCREAT, 0, "5.2.0", "cannot create output file"},
    {EX_IOERR, 0, "5.3.0", "input/output error"},
    {EX_TEMPFAIL, 1, "4.3.0", "temporary failure"},
    {EX_PROTOCOL, 0, "5.5.0", "remote error in protocol"},
    {EX_NOPERM, 0, "5.7.0", "permission denied"},
    {EX_CONFIG, 0, "5.3.5", "local configuration error"},
};

/* The first line of the output, printable and bounded. */
static void first_line(const char *output, char *buf, size_t size)
{
    buf[0] = '\0';
    if (!output)
        return;
    while (*output == '\n' || *output == '\r')
        output++;
    size_t len = strcspn(output, "\r\n");
    if (len >= size)
        len = size - 1;
    memcpy(buf, output, len);
    buf[len] = '\0';
    str_printable(buf);
}

int command_result(int wstatus, int timed_out, const char *output, struct deliver_error *err)
{
    char line[160];
    first_line(output, line, sizeof line);
    const char *sep = line[0] ? ": " : "";
    if (timed_out) {
        deliver_error_set(err, 1, "4.3.0", "command time limit exceeded%s%s", sep, line);
        return -1;
    }
    if (WIFSIGNALED(wstatus)) {
        deliver_error_set(err, 1, "4.3.0", "command died with signal %d%s%s", WTERMSIG(wstatus), sep, line);
        return -1;
    }
    if (!WIFEXITED(wstatus)) {
        deliver_error_set(err, 1, "4.3.0", "command ended in an unknown way");
        return -1;
    }
    int code = WEXITSTATUS(wstatus);
    if (code == 0)
        return 0;
    for (size_t i = 0; i < sizeof sysexits / sizeof sysexits[0]; i++) {
        if (sysexits[i].code == code) {
            deliver_error_set(err, sysexits[i].temporary, sysexits[i].enh, "command died with status %d (%s)%s%s",
                              code, sysexits[i].name, sep, line);
            return -1;
        }
    }
    deliver_error_set(err, 0, "5.3.0", "command died with status %d%s%s", code, sep, line);
    return -1;
}

/* ---------- running ---------- */

struct running {
    struct running *next;
    pid_t pid;
    int out_fd;
    struct event *out_ev, *timer;
    char output[COMMAND_OUTPUT_MAX + 1];
    size_t output_len;
    int timed_out;
    int stopped;              /* killed at the end of command_drain's grace */
    command_done_fn *done;
    void *arg;
};

static struct {
    struct event_base *base;
    struct event *sigchld;
    struct running *list;
    struct event *drain_timer;     /* command_drain: the grace period */
    command_drained_fn *drained;   /* NULL once called */
    void *drained_arg;
} cm;

static void drain_over(void)
{
    command_drained_fn *fn = cm.drained;
    cm.drained = NULL;
    if (cm.drain_timer)
        event_del(cm.drain_timer);
    if (fn)
        fn(cm.drained_arg);
}

static void running_free(struct running *r)
{
    if (r->out_ev)
        event_free(r->out_ev);
    if (r->timer)
        event_free(r->timer);
    if (r->out_fd >= 0)
        close(r->out_fd);
    free(r);
}

/* Reads what the command wrote; keeps the start, drops the rest. 0 at end
 * of output (or error), 1 when more may come. At most 64 KiB a call: a
 * command writing without end must not keep the loop from everyone else
 * (the read event comes back for the rest). */
static int drain(struct running *r)
{
    char buf[4096];
    for (int reads = 0; reads < 16; reads++) {
        ssize_t n = read(r->out_fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN ? 1 : 0;
        if (n == 0)
            return 0;
        size_t room = COMMAND_OUTPUT_MAX - r->output_len;
        size_t take = (size_t)n < room ? (size_t)n : room;
        memcpy(r->output + r->output_len, buf, take);
        r->output_len += take;
        r->output[r->output_len] = '\0';
    }
    return 1;
}

static void on_output(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct running *r = arg;
    if (drain(r) == 0) {
        /* end of output: the command may still run; SIGCHLD finishes it */
        event_del(r->out_ev);
    }
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct running *r = arg;
    r->timed_out = 1;
    kill(-r->pid, SIGKILL);
    kill(r->pid, SIGKILL);
}

static void finish(struct running *r, int wstatus)
{
    /* What a background child of the command still holds open is not
     * waited for: take what is there now. */
    drain(r);
    struct deliver_error err;
    memset(&err, 0, sizeof err);
    int rc = -1;
    if (r->stopped)
        deliver_error_set(&err, 1, "4.3.0", "command killed: the local delivery agent is stopping");
    else
        rc = command_result(wstatus, r->timed_out, r->output, &err);
    if (rc != 0 && r->output_len)
        log_info("command output: %.*s", (int)r->output_len, r->output);
    r->done(r->arg, rc == 0 ? NULL : &err);
    running_free(r);
}

static void on_sigchld(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    for (;;) {
        int wstatus;
        pid_t pid = waitpid(-1, &wstatus, WNOHANG);
        if (pid <= 0)
            break;
        for (struct running **pp = &cm.list; *pp; pp = &(*pp)->next) {
            if ((*pp)->pid == pid) {
                struct running *r = *pp;
                *pp = r->next;
                finish(r, wstatus);
                break;
            }
        }
    }
    if (cm.drained && !cm.list)
        drain_over();
}

/* The grace is over: what still runs is killed, and its end, reported as
 * deferred through the usual path, ends the drain; should a command not
 * die within a second (stuck in the kernel), the drain ends anyway. */
static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (!cm.list || cm.list->stopped) {
        drain_over();
        return;
    }
    unsigned n = command_running();
    log_warn("%u delivery command%s still running after the grace period; killing %s", n, n == 1 ? "" : "s",
             n == 1 ? "it" : "them");
    for (struct running *r = cm.list; r; r = r->next) {
        r->stopped = 1;
        kill(-r->pid, SIGKILL);
        kill(r->pid, SIGKILL);
    }
    struct timeval tv = {1, 0};
    evtimer_add(cm.drain_timer, &tv);
}

unsigned command_running(void)
{
    unsigned n = 0;
    for (struct running *r = cm.list; r; r = r->next)
        n++;
    return n;
}

void command_drain(unsigned grace, command_drained_fn *drained, void *arg)
{
    cm.drained = drained;
    cm.drained_arg = arg;
    if (!cm.list) {
        drain_over();
        return;
    }
    if (!cm.drain_timer)
        cm.drain_timer = evtimer_new(cm.base, on_drain_timeout, NULL);
    struct timeval tv = {(time_t)grace, 0};
    evtimer_add(cm.drain_timer, &tv);
}

void command_init(struct event_base *base)
{
    cm.base = base;
    cm.list = NULL;
    cm.sigchld = evsignal_new(base, SIGCHLD, on_sigchld, NULL);
    event_add(cm.sigchld, NULL);
}

void command_shutdown(void)
{
    while (cm.list) {
        struct running *r = cm.list;
        cm.list = r->next;
        kill(-r->pid, SIGKILL);
        kill(r->pid, SIGKILL);
        waitpid(r->pid, NULL, 0);
        /* the caller's context is freed by its callback; the reply has
         * nobody to go to by now */
        struct deliver_error err;
        deliver_error_set(&err, 1, "4.3.0", "command killed: the local delivery agent is stopping");
        r->done(r->arg, &err);
        running_free(r);
    }
    if (cm.sigchld)
        event_free(cm.sigchld);
    if (cm.drain_timer)
        event_free(cm.drain_timer);
    memset(&cm, 0, sizeof cm);
}

/* In the child: becomes the user and runs the command; never returns. Only
 * async-signal-safe calls matter little here (the agent is single-threaded)
 * but nothing of libevent is touched. */
static void run_child(const struct command_request *req, int out_w)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int s = 1; s < NSIG; s++)
        signal(s, SIG_DFL);
    setsid();
    umask(077);
    if (dup2(req->stdin_fd, 0) < 0 || dup2(out_w, 1) < 0 || dup2(out_w, 2) < 0)
        _exit(EX_OSERR);
    close_range(3, ~0U, 0);
    if (req->file_size_limit > 0) {
        struct rlimit fsize = {(rlim_t)req->file_size_limit, (rlim_t)req->file_size_limit};
        if (setrlimit(RLIMIT_FSIZE, &fsize) != 0)
            _exit(EX_OSERR);
    }
    if (geteuid() == 0) {
        if ((req->user ? initgroups(req->user, req->gid) : setgroups(1, &req->gid)) != 0 ||
            setgid(req->gid) != 0 || setuid(req->uid) != 0 || getuid() == 0 || geteuid() == 0)
            _exit(EX_OSERR);
    }
    if (req->cwd_required && (!req->cwd || chdir(req->cwd) != 0)) {
        /* what the bounce or the log says (the output goes to the agent) */
        static const char msg[] = "cannot change to command_execution_directory\n";
        ssize_t ignored = write(1, msg, sizeof msg - 1);
        (void)ignored;
        _exit(EX_TEMPFAIL);
    }
    if (!req->cwd || chdir(req->cwd) != 0)
        if (chdir("/") != 0)
            _exit(EX_OSERR);
    char *const argv[] = {"sh", "-c", (char *)req->command, NULL};
    execve("/bin/sh", argv, req->env);
    _exit(EX_OSERR);
}

int command_start(const struct command_request *req, command_done_fn *done, void *arg, struct deliver_error *err)
{
    if (geteuid() == 0 && req->uid == 0) {
        deliver_error_set(err, 1, "4.3.0", "refusing to run a command as root");
        return -1;
    }
    /* each holds a process, a pipe and its message in memory until it ends */
    size_t running = 0;
    for (struct running *r = cm.list; r; r = r->next)
        running++;
    if (running >= COMMAND_MAX_RUNNING) {
        deliver_error_set(err, 1, "4.3.2", "%d delivery commands are running already; tried again later",
                          COMMAND_MAX_RUNNING);
        return -1;
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        deliver_error_errno(err, errno, "cannot create a pipe");
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        deliver_error_errno(err, errno, "cannot fork");
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0)
        run_child(req, p[1]);
    close(p[1]);
    fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK);
    struct running *r = xcalloc(1, sizeof *r);
    r->pid = pid;
    r->out_fd = p[0];
    r->done = done;
    r->arg = arg;
    r->out_ev = event_new(cm.base, p[0], EV_READ | EV_PERSIST, on_output, r);
    event_add(r->out_ev, NULL);
    r->timer = evtimer_new(cm.base, on_timeout, r);
    struct timeval tv = {(time_t)req->time_limit, 0};
    evtimer_add(r->timer, &tv);
    r->next = cm.list;
    cm.list = r;
    return 0;
}
