/* cli_queue: `tern queue` and `mailq` (like Postfix's postqueue).
 *
 *   tern queue [list]          the queue, like `postqueue -p` / mailq
 *   tern queue flush           retry every deferred message now
 *   tern queue delete ID|ALL   remove messages (like postsuper -d)
 *   tern queue hold ID|ALL     keep messages from delivery (postsuper -h)
 *   tern queue release ID|ALL  undo hold (postsuper -H)
 *
 * With the daemon running, the requests go to the queue process over
 * public/qmgr (listing is open to every user, changes to root and the
 * mail owner). With it stopped, root and the mail owner read and change
 * the queue files directly, and the journal's messages (queue_sync_method =
 * journal) through the journal, as its owner, under the master's lock. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_out.h"
#include "conf/conf.h"
#include "daemon/instance.h"
#include "daemon/master_files.h"
#include "spool/spool.h"
#include "util/ipc.h"
#include "spool/queue_file.h"
#include "spool/store_journal.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

struct listing {
    unsigned long long bytes;
    unsigned count;
    int printed_header;
};

static void print_entry(struct listing *l, const char *id, const char *flag, unsigned long long size,
                        time_t arrival, const char *sender, const char *hold_reason, const char **rcpts,
                        const char **reasons, size_t n)
{
    if (!l->printed_header) {
        printf("-Queue ID-     --Size-- ----Arrival Time---- -Sender/Recipient-------\n");
        l->printed_header = 1;
    }
    char when[32];
    struct tm tm;
    localtime_r(&arrival, &tm);
    strftime(when, sizeof when, "%a %b %e %H:%M:%S", &tm);
    char idf[32];
    snprintf(idf, sizeof idf, "%s%s", id, flag);
    cli_out_line(stdout, "%-14s %8llu %s  %s", idf, size, when, *sender ? sender : "MAILER-DAEMON");
    if (hold_reason && *hold_reason)
        cli_out_line(stdout, "%45s(on hold: %s)", "", hold_reason);
    const char *last_reason = NULL;
    for (size_t i = 0; i < n; i++) {
        if (reasons[i] && *reasons[i] && (!last_reason || strcmp(last_reason, reasons[i]) != 0)) {
            cli_out_line(stdout, "%45s(%s)", "", reasons[i]);
            last_reason = reasons[i];
        }
        cli_out_line(stdout, "%45s%s", "", rcpts[i]);
    }
    printf("\n");
    l->bytes += size;
    l->count++;
}

static void print_footer(struct listing *l)
{
    if (!l->count) {
        printf("Mail queue is empty\n");
        return;
    }
    printf("-- %llu Kbytes in %u Request%s.\n", (l->bytes + 1023) / 1024, l->count, l->count == 1 ? "" : "s");
}

static int connect_qmgr(const char *qdir)
{
    char *path = xasprintf("%s/%s", qdir, QSOCK_QMGR);
    int fd = ipc_connect(path);
    free(path);
    return fd;
}

/* A request that could not be sent: the queue may have refused the
 * connection (a limit) and said why before closing. 1 if it did. */
static int report_refusal(int fd)
{
    struct ipc_msg m;
    if (ipc_recv_blocking(fd, &m, 1000) != 0)
        return 0;
    const char *text = m.type == IPC_DONE ? ipc_msg_get(&m, "text") : NULL;
    if (text && *text)
        cli_out_line(stderr, "tern: %s", text);
    ipc_msg_free(&m);
    return text && *text;
}

static int list_online(int fd)
{
    struct ipc_msg req;
    ipc_msg_init(&req, IPC_QUEUE_LIST, 1);
    int rc = ipc_send_blocking(fd, &req);
    ipc_msg_free(&req);
    if (rc != 0) {
        if (!report_refusal(fd))
            fprintf(stderr, "tern: no answer from the queue service\n");
        return -1;
    }
    struct listing l = {0};
    for (;;) {
        struct ipc_msg m;
        if (ipc_recv_blocking(fd, &m, 30000) != 0) {
            fprintf(stderr, "tern: error reading the queue listing: %s\n", strerror(errno));
            return -1;
        }
        if (m.type == IPC_DONE) {
            const char *status = ipc_msg_get(&m, "status"), *text = ipc_msg_get(&m, "text");
            if (status && strcmp(status, "ok") != 0) {
                cli_out_line(stderr, "tern: cannot list the queue: %s", text && *text ? text : status);
                ipc_msg_free(&m);
                return -1;
            }
            ipc_msg_free(&m);
            break;
        }
        size_t n = (size_t)ipc_msg_get_u64(&m, "nrcpt", 0);
        const char **rcpts = xcalloc(n + 1, sizeof *rcpts), **reasons = xcalloc(n + 1, sizeof *reasons);
        for (size_t i = 0; i < n; i++) {
            char key[32];
            snprintf(key, sizeof key, "rcpt%zu", i);
            rcpts[i] = ipc_msg_get(&m, key);
            snprintf(key, sizeof key, "reason%zu", i);
            reasons[i] = ipc_msg_get(&m, key);
            if (!rcpts[i])
                rcpts[i] = "";
        }
        const char *id = ipc_msg_get(&m, "id"), *flag = ipc_msg_get(&m, "flag"), *sender = ipc_msg_get(&m, "sender");
        print_entry(&l, id ? id : "?", flag ? flag : "", ipc_msg_get_u64(&m, "size", 0),
                    (time_t)ipc_msg_get_u64(&m, "arrival", 0), sender ? sender : "", ipc_msg_get(&m, "hold_reason"),
                    rcpts, reasons, n);
        free(rcpts);
        free(reasons);
        ipc_msg_free(&m);
    }
    print_footer(&l);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char **dir_ids(const char *dir, size_t *n)
{
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    char **v = NULL;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!queue_id_valid(e->d_name))
            continue;
        v = xgrow(v, &cap, *n + 1, sizeof *v);
        v[(*n)++] = xstrdup(e->d_name);
    }
    closedir(d);
    if (*n)
        qsort(v, *n, sizeof *v, cmp_str);
    return v;
}

/* One queue file found offline: the listing is sorted by ID across queue/
 * and hold/, as the queue process sorts it. */
struct offline_entry {
    char *id;
    const char *sub;
    const char *flag;
    struct queue_file_message *m; /* a journal message (read already), or NULL: a file */
};

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct offline_entry *)a)->id, ((const struct offline_entry *)b)->id);
}

static void collect_dir(struct offline_entry **v, size_t *n, size_t *cap, const char *qdir, const char *sub,
                        const char *flag)
{
    char *dir = xasprintf("%s/%s", qdir, sub);
    size_t k;
    char **ids = dir_ids(dir, &k);
    for (size_t i = 0; i < k; i++) {
        *v = xgrow(*v, cap, *n + 1, sizeof **v);
        (*v)[(*n)++] = (struct offline_entry){ids[i], sub, flag, NULL};
    }
    free(ids);
    free(dir);
}

struct journal_entries {
    struct offline_entry **v;
    size_t *n, *cap;
};

static void journal_found(void *arg, struct queue_file_message *m, enum store_place place)
{
    struct journal_entries *je = arg;
    *je->v = xgrow(*je->v, je->cap, *je->n + 1, sizeof **je->v);
    struct queue_file_message *copy = xmalloc(sizeof *copy);
    *copy = *m;
    (*je->v)[(*je->n)++] = (struct offline_entry){xstrdup(m->id), place == STORE_HOLD ? QDIR_HOLD : QDIR_QUEUE,
                                                  place == STORE_HOLD ? "!" : "", copy};
}

static void list_entry(struct listing *l, const char *qdir, const struct offline_entry *e)
{
    char *path = xasprintf("%s/%s/%s", qdir, e->sub, e->id);
    struct queue_file_message m;
    char err[256];
    int ok = 0;
    if (e->m) {
        m = *e->m;
        free(e->m);
        ok = 1;
    } else {
        ok = queue_file_read_path(path, &m, err, sizeof err) == 0;
    }
    if (ok) {
        const char **rcpts = xcalloc(m.nrcpt + 1, sizeof *rcpts), **reasons = xcalloc(m.nrcpt + 1, sizeof *reasons);
        size_t k = 0;
        for (size_t j = 0; j < m.nrcpt; j++) {
            if (m.rcpts[j].state != QF_PENDING && m.rcpts[j].state != QF_DEFERRED)
                continue;
            rcpts[k] = m.rcpts[j].addr;
            reasons[k++] = m.rcpts[j].state == QF_DEFERRED ? m.rcpts[j].reason : "";
        }
        const char *hold = strcmp(e->sub, QDIR_HOLD) == 0 ? queue_file_message_attr(&m, QF_ATTR_HOLD) : NULL;
        print_entry(l, m.id, e->flag, m.content_length, (time_t)(m.arrival_us / 1000000), m.sender, hold, rcpts,
                    reasons, k);
        free(rcpts);
        free(reasons);
        queue_file_message_free(&m);
    }
    free(path);
}

static int list_offline_files(const char *qdir)
{
    struct offline_entry *v = NULL;
    size_t n = 0, cap = 0;
    collect_dir(&v, &n, &cap, qdir, QDIR_QUEUE, "");
    collect_dir(&v, &n, &cap, qdir, QDIR_HOLD, "!");
    /* queue_sync_method = journal: the messages in the journal's segments */
    struct journal_entries je = {&v, &n, &cap};
    if (store_journal_read_only(qdir, journal_found, &je) != 0 && errno != ENOENT)
        fprintf(stderr, "tern: cannot read the queue's journal: %s\n", strerror(errno));
    if (n)
        qsort(v, n, sizeof *v, cmp_entry);
    struct listing l = {0};
    for (size_t i = 0; i < n; i++) {
        list_entry(&l, qdir, &v[i]);
        free(v[i].id);
    }
    free(v);
    print_footer(&l);
    return 0;
}

/* ---------- root's offline work, as the spool's owner ---------- */

/* The one user that owns queue/, hold/ and journal/ (those that exist), and
 * that user's own group: 0, or -1 (said). uid 0: the spool is root's. */
static int spool_owner(const char *qdir, uid_t *uid, gid_t *gid)
{
    static const char *const subs[] = {QDIR_QUEUE, QDIR_HOLD, QDIR_JOURNAL};
    struct stat first = {0};
    int found = 0;
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        char *path = xasprintf("%s/%s", qdir, subs[i]);
        int dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        struct stat sb;
        int ok = dfd >= 0 && fstat(dfd, &sb) == 0, e = errno;
        if (dfd >= 0)
            close(dfd);
        if (!ok && e != ENOENT)
            fprintf(stderr, "tern: %s: %s\n", path, strerror(e));
        else if (ok && found && sb.st_uid != first.st_uid)
            fprintf(stderr, "tern: %s belongs to uid %ld, the rest of the queue to uid %ld; not reading it as root\n",
                    path, (long)sb.st_uid, (long)first.st_uid);
        free(path);
        if ((!ok && e != ENOENT) || (ok && found && sb.st_uid != first.st_uid))
            return -1;
        if (ok && !found) {
            first = sb;
            found = 1;
        }
    }
    *uid = first.st_uid;
    struct passwd *pw = getpwuid(first.st_uid);
    *gid = pw ? pw->pw_gid : first.st_gid;
    if (*uid != 0 && *gid == 0) {
        fprintf(stderr, "tern: the queue's owner (uid %ld) has group root; not reading the queue as root\n",
                (long)*uid);
        return -1;
    }
    return 0;
}

/* ---------- the helper: root's offline work, as the spool's owner ---------- */

/* What the helper prints, on its way to root's terminal: the helper runs
 * as the mail owner, so its bytes are made printable here, a line at a
 * time, whatever the helper did to them. */
struct relay {
    int fd;   /* the pipe's read end (non-blocking); -1 at its end */
    FILE *to;
    size_t len;
    char buf[16384];
};

/* Writes n bytes at line (line[n] is free to use) made printable. */
static void relay_emit(FILE *to, char *line, size_t n, int newline)
{
    for (size_t i = 0; i < n; i++)
        if (line[i] == '\0')
            line[i] = '?';
    line[n] = '\0';
    str_printable(line);
    fwrite(line, 1, n, to);
    if (newline)
        fputc('\n', to);
}

/* One read from the pipe: 1 when bytes came, -1 when none are there yet,
 * 0 at its end (or an error: the rest is written and the pipe closed). */
static int relay_read(struct relay *r)
{
    ssize_t got = read(r->fd, r->buf + r->len, sizeof r->buf - 1 - r->len);
    if (got < 0 && (errno == EAGAIN || errno == EINTR))
        return -1;
    if (got <= 0) {
        if (r->len)
            relay_emit(r->to, r->buf, r->len, 0);
        r->len = 0;
        close(r->fd);
        r->fd = -1;
        fflush(r->to);
        return 0;
    }
    r->len += (size_t)got;
    char *p = r->buf, *nl;
    size_t left = r->len;
    while ((nl = memchr(p, '\n', left)) != NULL) {
        size_t n = (size_t)(nl - p);
        relay_emit(r->to, p, n, 1);
        p += n + 1;
        left -= n + 1;
    }
    memmove(r->buf, p, left);
    r->len = left;
    if (r->len == sizeof r->buf - 1) {   /* a line longer than the buffer: in pieces */
        relay_emit(r->to, r->buf, r->len, 0);
        r->len = 0;
    }
    fflush(r->to);
    return 1;
}

/* Moves fd to a descriptor of 10 or above, close-on-exec: out of the way
 * of the ones the helper is given. */
static int fd_above(int fd)
{
    int high = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    close(fd);
    return high;
}

/* The helper's side of the fork, before fn: a session of its own (no
 * controlling terminal to push input into), nothing of root's open but
 * /dev/null and its pipes (descriptors 0 to 2, the report on 3), then uid
 * and gid, and dying with the parent. Returns only when all went well. */
static void helper_setup(uid_t uid, gid_t gid, pid_t parent, int out, int err, int report)
{
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0 || setsid() < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(out, STDOUT_FILENO) < 0 ||
        dup2(err, STDERR_FILENO) < 0 || (report >= 0 && dup2(report, 3) < 0) ||
        close_range(report >= 0 ? 4 : 3, ~0U, 0) != 0)
        _exit(125);
    if (uid != geteuid() &&
        (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0 || setuid(0) == 0)) {
        fprintf(stderr, "tern: cannot become uid %ld: %s\n", (long)uid, strerror(errno));
        _exit(125);
    }
    /* set after the uid change, which clears it */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(125);
}

/* Runs fn(arg, report) in a child process that is uid and gid (root's
 * offline work on what the mail owner controls: a link or a file planted
 * there cannot turn root's rights against root's files); report is the
 * helper's descriptor for report_fd (-1: none). What it prints reaches
 * stdout and stderr through relay. fn's exit status, or -1 (said). The
 * mail owner may signal its own processes: a helper that is stopped is
 * killed rather than waited for without end. */
static int run_as(uid_t uid, gid_t gid, int (*fn)(void *, int), void *arg, int report_fd)
{
    /* an ignored SIGCHLD, inherited through exec, would reap the child
     * before waitpid could see its status */
    signal(SIGCHLD, SIG_DFL);
    fflush(stdout);
    fflush(stderr);
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) != 0)
        return -1;
    if (pipe2(err, O_CLOEXEC) != 0) {
        close(out[0]);
        close(out[1]);
        return -1;
    }
    pid_t parent = getpid(), pid = fork();
    if (pid < 0) {
        fprintf(stderr, "tern: fork: %s\n", strerror(errno));
        for (int i = 0; i < 2; i++) {
            close(out[i]);
            close(err[i]);
        }
        return -1;
    }
    if (pid == 0) {
        helper_setup(uid, gid, parent, fd_above(out[1]), fd_above(err[1]),
                     report_fd >= 0 ? fd_above(report_fd) : -1);
        int rc = fn(arg, report_fd >= 0 ? 3 : -1);
        fflush(stdout);
        fflush(stderr);
        _exit(rc);
    }
    close(out[1]);
    close(err[1]);
    struct relay *r = xcalloc(2, sizeof *r);
    r[0].fd = out[0];
    r[0].to = stdout;
    r[1].fd = err[0];
    r[1].to = stderr;
    for (int i = 0; i < 2; i++)
        fcntl(r[i].fd, F_SETFL, fcntl(r[i].fd, F_GETFL) | O_NONBLOCK);
    int status = 0, reaped = 0;
    while (!reaped) {
        struct pollfd pf[2] = {{r[0].fd, POLLIN, 0}, {r[1].fd, POLLIN, 0}};
        /* the pipes, and every tenth of a second whether it stopped */
        if (poll(pf, 2, 100) > 0)
            for (int i = 0; i < 2; i++)
                if (r[i].fd >= 0 && pf[i].revents)
                    relay_read(&r[i]);
        pid_t w = waitpid(pid, &status, WNOHANG | WUNTRACED);
        if (w < 0 && errno != EINTR)
            break;
        if (w != pid)
            continue;
        if (WIFSTOPPED(status)) {
            fprintf(stderr, "tern: the helper running as uid %ld was stopped by signal %d; it is killed, not waited for\n",
                    (long)uid, WSTOPSIG(status));
            kill(pid, SIGKILL);
            continue;
        }
        reaped = 1;
    }
    /* what it wrote before it ended; a process it left behind holding the
     * pipes is not waited for */
    for (int i = 0; i < 2; i++) {
        while (r[i].fd >= 0 && relay_read(&r[i]) == 1)
            ;
        if (r[i].fd >= 0) {
            if (r[i].len)
                relay_emit(r[i].to, r[i].buf, r[i].len, 0);
            close(r[i].fd);
        }
    }
    free(r);
    if (!reaped)
        return -1;
    if (WIFSIGNALED(status))
        fprintf(stderr, "tern: the helper running as uid %ld was killed by signal %d\n", (long)uid,
                WTERMSIG(status));
    return WIFEXITED(status) && WEXITSTATUS(status) != 125 ? WEXITSTATUS(status) : -1;
}

static int list_offline_child(void *qdir, int report_fd)
{
    (void)report_fd;
    return list_offline_files(qdir);
}

/* The listing with tern stopped reads what the mail owner controls (the
 * files in queue/ and hold/, the journal's segments): root reads them as
 * that owner; a FIFO or device is refused by the readers themselves. */
static int list_offline(const char *qdir)
{
    char *q = xasprintf("%s/%s", qdir, QDIR_QUEUE);
    int dfd = open(q, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) {
        fprintf(stderr, "tern: the mail system is down and %s is not readable (%s)\n", q, strerror(errno));
        free(q);
        return 1;
    }
    close(dfd);
    free(q);
    uid_t uid;
    gid_t gid;
    if (geteuid() != 0)
        return list_offline_files(qdir);
    if (spool_owner(qdir, &uid, &gid) != 0)
        return 1;
    if (uid == 0)
        return list_offline_files(qdir);
    int rc = run_as(uid, gid, list_offline_child, (void *)qdir, -1);
    return rc < 0 ? 1 : rc;
}

static int request_online(int fd, int type, const char *id, const char *verb)
{
    struct ipc_msg req, m;
    ipc_msg_init(&req, (uint16_t)type, 1);
    if (id)
        ipc_msg_add(&req, "id", id);
    int rc = ipc_send_blocking(fd, &req);
    ipc_msg_free(&req);
    if (rc != 0) {
        if (!report_refusal(fd))
            fprintf(stderr, "tern: no answer from the queue service\n");
        return 1;
    }
    if (ipc_recv_blocking(fd, &m, 30000) != 0) {
        fprintf(stderr, "tern: no answer from the queue service\n");
        return 1;
    }
    const char *status = ipc_msg_get(&m, "status"), *text = ipc_msg_get(&m, "text");
    int ok = status && strcmp(status, "ok") == 0;
    if (!ok) {
        if (status && strcmp(status, "notfound") == 0)
            cli_out_line(stderr, "tern: %s: no such message in the queue", text ? text : id);
        else if (status && strcmp(status, "denied") == 0)
            cli_out_line(stderr, "tern: %s: %s", verb, text && *text ? text : "permission denied");
        else
            cli_out_line(stderr, "tern: %s failed: %s", verb, text ? text : "unknown error");
    } else if (type != IPC_QUEUE_FLUSH) {
        cli_out_line(stderr, "tern: %s: %s message%s", verb, text ? text : "?", text && strcmp(text, "1") == 0 ? "" : "s");
    }
    ipc_msg_free(&m);
    return ok ? 0 : 1;
}

struct journal_select {
    const char *id;
    int type;
};

/* Whether a stopped-daemon request changes this journal message. */
static int select_journal_message(void *arg, const char *id, enum store_place place)
{
    const struct journal_select *js = arg;
    int in_scope = js->type == IPC_QUEUE_DELETE || (js->type == IPC_QUEUE_RELEASE) == (place == STORE_HOLD);
    return in_scope && (strcmp(js->id, "ALL") == 0 || strcmp(js->id, id) == 0);
}

struct offline_change {
    const char *qdir, *id;
    int type;
};

/* Moves or removes the files of a stopped-daemon request in queue/ and
 * hold/: how many; *failures counts those that could not be. */
static int change_files_offline(const struct offline_change *c, int *failures)
{
    const char *from = c->type == IPC_QUEUE_RELEASE ? QDIR_HOLD : QDIR_QUEUE;
    int count = 0;
    for (int pass = 0; pass < 2; pass++) {
        const char *sub = pass == 0 ? from : (c->type == IPC_QUEUE_DELETE ? QDIR_HOLD : NULL);
        if (!sub)
            break;
        char *dir = xasprintf("%s/%s", c->qdir, sub);
        size_t n;
        char **ids = dir_ids(dir, &n);
        for (size_t i = 0; i < n; i++) {
            if (strcmp(c->id, "ALL") == 0 || strcmp(c->id, ids[i]) == 0) {
                char *path = xasprintf("%s/%s", dir, ids[i]);
                int rc;
                if (c->type == IPC_QUEUE_DELETE) {
                    rc = unlink(path);
                } else {
                    char *to = xasprintf("%s/%s/%s", c->qdir, c->type == IPC_QUEUE_HOLD ? QDIR_HOLD : QDIR_QUEUE,
                                         ids[i]);
                    rc = rename(path, to);
                    free(to);
                }
                rc == 0 ? count++ : (*failures)++;
                free(path);
            }
            free(ids[i]);
        }
        free(ids);
        free(dir);
    }
    return count;
}

/* The request's changes, each part reported on report_fd when it is done
 * (so that a helper killed half-way is not taken for one that did
 * nothing): "files CHANGED FAILURES", then "journal ERRNO CHANGED", errno
 * 0 when the journal was changed or there is none. */
static int change_offline_child(void *arg, int report_fd)
{
    const struct offline_change *c = arg;
    int failures = 0;
    int n = change_files_offline(c, &failures);
    dprintf(report_fd, "files %d %d\n", n, failures);
    size_t in_journal = 0;
    int err = 0;
    char *path = xasprintf("%s/%s", c->qdir, QDIR_JOURNAL);
    int dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    free(path);
    if (dfd >= 0) {
        close(dfd);
        struct journal_select js = {c->id, c->type};
        if (store_journal_offline_change(c->qdir, select_journal_message, &js, c->type == IPC_QUEUE_DELETE,
                                         c->type == IPC_QUEUE_HOLD ? STORE_HOLD : STORE_QUEUE, &in_journal) != 0)
            err = errno ? errno : EIO;
    } else if (errno != ENOENT) {
        err = errno;
    }
    dprintf(report_fd, "journal %d %zu\n", err, in_journal);
    return 0;
}

/* Takes the lock the master takes at start (pid/master.pid, made if need
 * be): no tern starts while the files change, nor another tern queue.
 * The lock's descriptor, *pid_dir its directory's, or -1 (said). */
static int offline_lock(const char *qdir, int *pid_dir)
{
    struct strbuf diag = STRBUF_INIT;
    int lock = -1, qfd = open(qdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    *pid_dir = -1;
    if (qfd < 0)
        strbuf_printf(&diag, "%s: %s\n", qdir, strerror(errno));
    else if (pidlock_take(qfd, qdir, pid_dir, &lock, &diag) != 0 && *pid_dir >= 0) {
        close(*pid_dir);
        *pid_dir = -1;
    }
    if (qfd >= 0)
        close(qfd);
    if (lock < 0) {
        cli_out_line(stderr, "tern: %s", strbuf_str(&diag));
        fprintf(stderr, "tern: the queue is not changed without the lock; try again (as root)\n");
    }
    strbuf_free(&diag);
    return lock;
}

/* With the daemon stopped: under the master's lock, a child that is the
 * spool's owner changes the files and the journal (root does not act on
 * what the mail owner controls). */
static int request_offline(const char *qdir, int type, const char *id, const char *verb)
{
    if (type == IPC_QUEUE_FLUSH) {
        fprintf(stderr, "tern: the mail system is down; queued mail is tried when it starts\n");
        return 0;
    }
    int pid_dir, lock = offline_lock(qdir, &pid_dir);
    if (lock < 0)
        return 1;
    uid_t uid = geteuid();
    gid_t gid = getegid();
    int p[2] = {-1, -1};
    char buf[128] = {0};
    if ((uid != 0 || spool_owner(qdir, &uid, &gid) == 0) && pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0) {
        struct offline_change c = {qdir, id, type};
        (void)run_as(uid, gid, change_offline_child, &c, p[1]);
        close(p[1]);
        /* the report is what the helper wrote before it ended, if anything */
        if (read(p[0], buf, sizeof buf - 1) < 0)
            buf[0] = '\0';
        close(p[0]);
    }
    /* as the master leaves it: the name first, then the lock */
    unlinkat(pid_dir, QFILE_MASTER_PID, 0);
    close(lock);
    close(pid_dir);
    int files = 0, failures = 0, err = 0, parts = 0;
    size_t in_journal = 0;
    if (sscanf(buf, "files %d %d", &files, &failures) == 2) {
        parts++;
        const char *j = strstr(buf, "\njournal ");
        if (j && sscanf(j + 1, "journal %d %zu", &err, &in_journal) == 2)
            parts++;
    }
    if (parts == 0) {
        fprintf(stderr, "tern: %s: the helper process failed; the queue may be partly changed (tern queue lists it)\n",
                verb);
        return 1;
    }
    if (parts == 1)
        fprintf(stderr, "tern: %s: the helper process failed after %d queue file%s; the journal may be partly "
                "changed (tern queue lists it)\n", verb, files, files == 1 ? "" : "s");
    else if (err != 0)
        fprintf(stderr, "tern: cannot change the queue's journal: %s\n", strerror(err));
    size_t count = (size_t)files + in_journal;
    if (parts == 2 && count == 0 && strcmp(id, "ALL") != 0 && err == 0) {
        cli_out_line(stderr, "tern: %s: no such message in the queue", id);
        return 1;
    }
    if (parts == 2)
        fprintf(stderr, "tern: %s: %zu message%s\n", verb, count, count == 1 ? "" : "s");
    return parts < 2 || failures || err ? 1 : 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: tern [-c DIR] queue [list | flush | delete ID|ALL | hold ID|ALL | release ID|ALL]\n");
    return 64;
}

int cli_queue(const char *config_dir, int argc, char **argv)
{
    struct instance in;
    struct strbuf diag = STRBUF_INIT;
    if (instance_load(&in, config_dir, &diag) != 0) {
        fprintf(stderr, "%s", strbuf_str(&diag));
        strbuf_free(&diag);
        instance_free(&in);
        return 78;
    }
    strbuf_free(&diag);
    char *qdir = xstrdup(instance_queue_dir(&in));
    instance_free(&in);
    const char *verb = argc > 1 ? argv[1] : "list";
    if (strcmp(argv[0], "mailq") == 0)
        verb = "list";
    int type = -1;
    if (strcmp(verb, "list") == 0 || strcmp(verb, "-p") == 0)
        type = IPC_QUEUE_LIST;
    else if (strcmp(verb, "flush") == 0 || strcmp(verb, "-f") == 0)
        type = IPC_QUEUE_FLUSH;
    else if (strcmp(verb, "delete") == 0)
        type = IPC_QUEUE_DELETE;
    else if (strcmp(verb, "hold") == 0)
        type = IPC_QUEUE_HOLD;
    else if (strcmp(verb, "release") == 0)
        type = IPC_QUEUE_RELEASE;
    int rc;
    const char *id = argc > 2 ? argv[2] : NULL;
    if (type < 0) {
        rc = usage();
    } else if ((type == IPC_QUEUE_DELETE || type == IPC_QUEUE_HOLD || type == IPC_QUEUE_RELEASE) &&
               (!id || (strcmp(id, "ALL") != 0 && !queue_id_valid(id)))) {
        if (id)
            cli_out_line(stderr, "tern: %s: not a queue ID", id);
        rc = usage();
    } else {
        int fd = connect_qmgr(qdir);
        if (fd >= 0) {
            rc = type == IPC_QUEUE_LIST ? (list_online(fd) ? 1 : 0) : request_online(fd, type, id, verb);
            close(fd);
        } else if (type == IPC_QUEUE_LIST) {
            rc = list_offline(qdir);
        } else {
            rc = request_offline(qdir, type, id, verb);
        }
    }
    free(qdir);
    return rc;
}
