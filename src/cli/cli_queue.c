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
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_out.h"
#include "conf/conf.h"
#include "daemon/instance.h"
#include "spool/spool.h"
#include "util/ipc.h"
#include "spool/queue_file.h"
#include "spool/store_journal.h"
#include "util/mem.h"
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

/* Runs fn(arg) in a child process that is uid and gid (root's offline work
 * on what the mail owner controls: a link or a file planted there cannot
 * turn root's rights against root's files). fn's exit status, or -1
 * (said). The mail owner may signal its own processes: a child that is
 * stopped is killed rather than waited for without end. */
static int run_as(uid_t uid, gid_t gid, int (*fn)(void *), void *arg)
{
    /* an ignored SIGCHLD, inherited through exec, would reap the child
     * before waitpid could see its status */
    signal(SIGCHLD, SIG_DFL);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "tern: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        /* the terminal's stop signals stop root's command, not only its
         * helper, so any stop the parent sees came from someone's kill */
        signal(SIGTSTP, SIG_IGN);
        signal(SIGTTIN, SIG_IGN);
        signal(SIGTTOU, SIG_IGN);
        if (uid != geteuid() &&
            (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0 || setuid(0) == 0)) {
            fprintf(stderr, "tern: cannot become uid %ld: %s\n", (long)uid, strerror(errno));
            _exit(125);
        }
        int rc = fn(arg);
        fflush(stdout);
        _exit(rc);
    }
    int status;
    for (;;) {
        if (waitpid(pid, &status, WUNTRACED) < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (!WIFSTOPPED(status))
            break;
        fprintf(stderr, "tern: the helper running as uid %ld was stopped by signal %d; it is killed, not waited for\n",
                (long)uid, WSTOPSIG(status));
        kill(pid, SIGKILL);
    }
    if (WIFSIGNALED(status))
        fprintf(stderr, "tern: the helper running as uid %ld was killed by signal %d\n", (long)uid,
                WTERMSIG(status));
    return WIFEXITED(status) && WEXITSTATUS(status) != 125 ? WEXITSTATUS(status) : -1;
}

static int list_offline_child(void *qdir)
{
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
    int rc = run_as(uid, gid, list_offline_child, (void *)qdir);
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
    int type, report_fd;
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

/* The request's changes (files, then the journal's messages, which must
 * stay the queue process's): reports "errno changed failures" on
 * report_fd, errno 0 when the journal was changed or there is none. */
static int change_offline_child(void *arg)
{
    const struct offline_change *c = arg;
    int failures = 0;
    size_t n = (size_t)change_files_offline(c, &failures), in_journal = 0;
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
    dprintf(c->report_fd, "%d %zu %d", err, n + in_journal, failures);
    return 0;
}

/* With the daemon stopped: under the master's lock, a child that is the
 * spool's owner changes the files and the journal (root does not act on
 * what the mail owner controls). */
static int request_offline(const char *qdir, int type, const char *id, const char *verb)
{
    char *lockpath = xasprintf("%s/%s/%s", qdir, QDIR_PID, QFILE_MASTER_PID);
    int lock = open(lockpath, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    free(lockpath);
    if (lock >= 0 && flock(lock, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "tern: the queue is busy; try again\n");
        close(lock);
        return 1;
    }
    if (type == IPC_QUEUE_FLUSH) {
        fprintf(stderr, "tern: the mail system is down; queued mail is tried when it starts\n");
        if (lock >= 0)
            close(lock);
        return 0;
    }
    uid_t uid = geteuid();
    gid_t gid = getegid();
    int p[2] = {-1, -1}, rc = -1;
    if ((uid != 0 || spool_owner(qdir, &uid, &gid) == 0) && pipe2(p, O_CLOEXEC) == 0) {
        struct offline_change c = {qdir, id, type, p[1]};
        rc = run_as(uid, gid, change_offline_child, &c);
        close(p[1]);
    }
    char buf[96] = {0};
    ssize_t got = rc == 0 ? read(p[0], buf, sizeof buf - 1) : -1;
    if (p[0] >= 0)
        close(p[0]);
    if (lock >= 0)
        close(lock);
    int err = -1, failures = 0;
    size_t count = 0;
    if (got <= 0 || sscanf(buf, "%d %zu %d", &err, &count, &failures) != 3) {
        fprintf(stderr, "tern: %s: the queue was not changed (the helper process failed)\n", verb);
        return 1;
    }
    if (err != 0)
        fprintf(stderr, "tern: cannot change the queue's journal: %s\n", strerror(err));
    if (count == 0 && strcmp(id, "ALL") != 0 && err == 0) {
        cli_out_line(stderr, "tern: %s: no such message in the queue", id);
        return 1;
    }
    fprintf(stderr, "tern: %s: %zu message%s\n", verb, count, count == 1 ? "" : "s");
    return failures || err ? 1 : 0;
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
