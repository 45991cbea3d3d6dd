/* log: Postfix-style log lines (see log.h). */
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "util/mem.h"
#include "util/str.h"

static char log_role[32] = "tern";
static char log_host[256] = "localhost";
static int log_to_stderr = 1;
static int log_to_syslog;
static int log_fd = -1;
static char *log_path;
/* Whether log_reopen may create the file: not when the master (root)
 * made it through log_set_file_fd, so that a process reopening it never
 * creates one where the master's checks did not run. */
static int log_may_create;
static int log_debug_on;
/* This process's id, kept rather than asked for on every line (getpid is a
 * system call, and smtpd logs several lines a message); a fork's child
 * takes its own at once (pthread_atfork), before it can log. */
static long log_pid;
static int log_pid_hooked;

/* Batching (log_batch_on): the loop thread's info and debug lines wait in
 * batch until the flush event, activated by the first of them, runs after
 * the callbacks already due in this round of the loop. Other threads, and
 * warnings or worse, flush what waits and write at once. */
static pthread_mutex_t batch_lock = PTHREAD_MUTEX_INITIALIZER;
static char batch[LOG_BATCH_MAX];
static size_t batch_len;
static struct event *batch_event;
static int batch_scheduled;
static pthread_t batch_thread;

/* Not fsops_write_all: the tests' injected faults are for the spool's
 * writes, and a log line must neither take one nor fail by one. */
static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;   /* nowhere to say it: the line is lost, as with one write */
        p += w;
        n -= (size_t)w;
    }
}

/* Whether stderr and log_fd are regular files (checked when they are set):
 * an O_APPEND write to one is never interleaved with another process's, but
 * on a pipe or a FIFO only a write of at most PIPE_BUF bytes is whole. */
static int stderr_regular, log_fd_regular;

static int is_regular(int fd)
{
    struct stat sb;
    return fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Writes whole lines: at once to a regular file, else in pieces of at most
 * PIPE_BUF bytes that end at a line's end (a line is at most 2400 bytes). */
static void write_lines(int fd, int regular, const char *p, size_t n)
{
    while (n > PIPE_BUF && !regular) {
        size_t piece = PIPE_BUF;
        const char *nl = memrchr(p, '\n', PIPE_BUF);
        if (nl)
            piece = (size_t)(nl - p) + 1;
        write_all(fd, p, piece);
        p += piece;
        n -= piece;
    }
    write_all(fd, p, n);
}

/* with batch_lock held */
static void batch_flush_locked(void)
{
    if (batch_len > 0) {
        if (log_to_stderr)
            write_lines(STDERR_FILENO, stderr_regular, batch, batch_len);
        if (log_fd >= 0)
            write_lines(log_fd, log_fd_regular, batch, batch_len);
        batch_len = 0;
    }
}

void log_flush(void)
{
    pthread_mutex_lock(&batch_lock);
    batch_flush_locked();
    pthread_mutex_unlock(&batch_lock);
}

static void batch_event_run(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    pthread_mutex_lock(&batch_lock);
    batch_scheduled = 0;
    batch_flush_locked();
    pthread_mutex_unlock(&batch_lock);
}

/* fork: what waits is written once, by the parent, before the child exists;
 * the child logs line by line (its loop, if any, calls log_batch_on again) */
static void fork_prepare(void)
{
    pthread_mutex_lock(&batch_lock);
    batch_flush_locked();
}

static void fork_parent(void)
{
    pthread_mutex_unlock(&batch_lock);
}

static void log_pid_refresh(void)
{
    log_pid = (long)getpid();
}

static void fork_child(void)
{
    log_pid_refresh();
    batch_event = NULL;   /* the parent's loop's: never touched here */
    batch_scheduled = 0;
    pthread_mutex_unlock(&batch_lock);
}

void log_init(const char *role)
{
    log_set_role(role);
    if (gethostname(log_host, sizeof log_host) != 0)
        str_copy(log_host, "localhost", sizeof log_host);
    log_host[sizeof log_host - 1] = '\0';
    char *dot = strchr(log_host, '.');
    if (dot)
        *dot = '\0';
}

void log_set_role(const char *role)
{
    str_copy(log_role, role, sizeof log_role);
    if (!log_pid_hooked) {
        log_pid_hooked = pthread_atfork(fork_prepare, fork_parent, fork_child) == 0;
        if (log_pid_hooked)
            atexit(log_flush);
    }
    log_pid_refresh();
}

void log_batch_on(struct event_base *base)
{
    if (!log_pid_hooked)
        return;   /* without the fork hooks a child could write the parent's lines again */
    pthread_mutex_lock(&batch_lock);
    batch_flush_locked();
    stderr_regular = log_to_stderr && is_regular(STDERR_FILENO);
    if (batch_event)
        event_free(batch_event);
    batch_event = base ? event_new(base, -1, 0, batch_event_run, NULL) : NULL;
    batch_scheduled = 0;
    batch_thread = pthread_self();
    pthread_mutex_unlock(&batch_lock);
}

void log_set_stderr(int on)
{
    pthread_mutex_lock(&batch_lock);
    batch_flush_locked();
    log_to_stderr = on;
    stderr_regular = on && is_regular(STDERR_FILENO);
    pthread_mutex_unlock(&batch_lock);
}

void log_set_syslog(int on)
{
    if (on && !log_to_syslog)
        openlog("tern", LOG_PID | LOG_NDELAY, LOG_MAIL);
    log_to_syslog = on;
}

void log_set_debug(int on)
{
    log_debug_on = on;
}

void log_set_file(const char *path)
{
    pthread_mutex_lock(&batch_lock);
    batch_flush_locked();
    if (log_fd >= 0)
        close(log_fd);
    log_fd = -1;
    pthread_mutex_unlock(&batch_lock);
    free(log_path);
    log_path = NULL;
    if (!path || !*path)
        return;
    log_path = xstrdup(path);
    log_may_create = 1;
    log_reopen();
}

void log_set_file_fd(const char *path, int fd)
{
    pthread_mutex_lock(&batch_lock);
    batch_flush_locked();
    if (log_fd >= 0)
        close(log_fd);
    log_fd = fd;
    log_fd_regular = fd >= 0 && is_regular(fd);
    pthread_mutex_unlock(&batch_lock);
    free(log_path);
    log_path = xstrdup(path);
    log_may_create = 0;
}

void log_reopen(void)
{
    if (!log_path)
        return;
    /* never through a symlink: the local agent reopens it as root */
    int fd = open(log_path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC | (log_may_create ? O_CREAT : 0), 0640);
    if (fd < 0) {
        int e = errno;
        log_error("cannot open log file %s: %s", log_path, strerror(e));
        return;
    }
    /* under the lock: another thread may be writing to the old one */
    pthread_mutex_lock(&batch_lock);
    batch_flush_locked();   /* what was logged before the rotation goes to the old file */
    if (log_fd >= 0)
        close(log_fd);
    log_fd = fd;
    log_fd_regular = is_regular(fd);
    pthread_mutex_unlock(&batch_lock);
}

static void log_emit(int prio, const char *prefix, const char *fmt, va_list ap)
{
    int saved_errno = errno;
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    /* Every log line passes here, with whatever a client sent in it (HELO,
     * AUTH names, replies of other servers): one line per event, and
     * nothing a terminal showing the log would act on. Truncation by
     * vsnprintf may cut a UTF-8 character; its bytes then show as '?'. */
    str_printable(msg);

    if (log_to_syslog)
        syslog(prio, "%s%s", prefix, msg);
    if (log_to_stderr || log_fd >= 0) {
        char stamp[32];
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(stamp, sizeof stamp, "%b %e %H:%M:%S", &tm);
        char line[2400];
        int n = snprintf(line, sizeof line, "%s %s tern/%s[%ld]: %s%s\n", stamp, log_host,
                         log_role, log_pid_hooked ? log_pid : (long)getpid(), prefix, msg);
        if (n < 0)
            n = 0;
        if ((size_t)n >= sizeof line) {
            n = (int)sizeof line - 1;
            line[n - 1] = '\n';
        }
        pthread_mutex_lock(&batch_lock);
        if (batch_event && prio >= LOG_INFO && pthread_equal(pthread_self(), batch_thread)) {
            if (batch_len + (size_t)n > sizeof batch)
                batch_flush_locked();
            memcpy(batch + batch_len, line, (size_t)n);
            batch_len += (size_t)n;
            if (!batch_scheduled) {
                batch_scheduled = 1;
                event_active(batch_event, EV_TIMEOUT, 1);
            }
        } else {
            batch_flush_locked();   /* in order: what waits goes first */
            if (log_to_stderr)
                write_all(STDERR_FILENO, line, (size_t)n);
            if (log_fd >= 0)
                write_all(log_fd, line, (size_t)n);
        }
        pthread_mutex_unlock(&batch_lock);
    }
    errno = saved_errno;
}

void log_info(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_emit(LOG_INFO, "", fmt, ap);
    va_end(ap);
}

void log_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_emit(LOG_WARNING, "warning: ", fmt, ap);
    va_end(ap);
}

void log_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_emit(LOG_ERR, "error: ", fmt, ap);
    va_end(ap);
}

void log_debug(const char *fmt, ...)
{
    if (!log_debug_on)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_emit(LOG_DEBUG, "debug: ", fmt, ap);
    va_end(ap);
}

void log_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_emit(LOG_CRIT, "fatal: ", fmt, ap);
    va_end(ap);
    exit(1);
}

void log_panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_emit(LOG_CRIT, "panic: ", fmt, ap);
    va_end(ap);
    abort();
}
