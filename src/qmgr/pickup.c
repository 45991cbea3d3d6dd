/* pickup: maildrop/ to queue (see pickup.h). */
#include "qmgr/pickup.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "daemon/runtime.h"
#include "mailauth/authres.h"
#include "msg/cleanup.h"
#include "msg/msg_header.h"
#include "spool/maildrop.h"
#include "qmgr/qmgr.h"
#include "spool/queue_file.h"
#include "spool/queue_id.h"
#include "spool/spool.h"
#include "spool/store.h"
#include "smtp/smtp_addr.h"
#include "smtp/smtp_cmd.h"
#include "smtp/smtp_data.h"
#include "util/clock.h"
#include "util/hashmap.h"
#include "util/log.h"
#include "util/mem.h"

#define PICKUP_STUCK_MAX 256

/* Names being committed right now, so a second scan does not take them twice. */
struct inflight {
    struct inflight *next;
    char *name;
};

static struct {
    struct runtime *rt;
    int maildrop_fd;
    int corrupt_fd;
    char *myhostname, *myorigin;
    char *authserv_id;          /* claims in this name are dropped */
    size_t header_size_limit;
    uint64_t message_size_limit;
    long hopcount_limit;
    struct inflight *busy;
    /* The scan runs in rounds of PICKUP_SCAN_ROUND files from its own
     * event, so a full maildrop/ never holds up commits and deliveries;
     * requests while one is pending or running cost one more scan. */
    struct event *scan_ev;
    DIR *scan_dir;          /* a scan is running */
    int scan_pending;       /* scan_ev is armed */
    int rescan;             /* requested while running: scan again after it */
    /* Entries that could be neither moved aside nor removed (a directory
     * someone keeps files in): passed over without a word until they
     * change, so a poke does not log each of them again. */
    struct {
        dev_t dev;
        ino_t ino;
        struct timespec ctime;   /* a name given the inode again is a new file */
    } stuck[PICKUP_STUCK_MAX];
    size_t nstuck, next_stuck;
} pk = {.maildrop_fd = -1, .corrupt_fd = -1};

#define PICKUP_SCAN_ROUND 32

static void scan_round(evutil_socket_t fd, short what, void *arg);

void pickup_init(struct event_base *base, struct runtime *rt)
{
    pk.rt = rt;
    pk.scan_ev = evtimer_new(base, scan_round, NULL);
    char *p = xasprintf("%s/%s", rt->queue_dir, QDIR_MAILDROP);
    pk.maildrop_fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (pk.maildrop_fd < 0)
        log_error("open %s: %s", p, strerror(errno));
    free(p);
    p = xasprintf("%s/%s", rt->queue_dir, QDIR_CORRUPT);
    pk.corrupt_fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(p);
    pk.myhostname = xstrdup(conf_str(rt->conf, "myhostname"));
    pk.myorigin = xstrdup(conf_str(rt->conf, "myorigin"));
    pk.authserv_id = xstrdup(conf_str(rt->conf, "authserv_id"));
    pk.header_size_limit = (size_t)conf_int(rt->conf, "header_size_limit");
    pk.hopcount_limit = (long)conf_int(rt->conf, "hopcount_limit");
    long long lim = conf_int(rt->conf, "message_size_limit");
    pk.message_size_limit = lim > 0 ? (uint64_t)lim : 0;
}

void pickup_shutdown(void)
{
    if (pk.scan_dir)
        closedir(pk.scan_dir);
    pk.scan_dir = NULL;
    if (pk.scan_ev)
        event_free(pk.scan_ev);
    pk.scan_ev = NULL;
    pk.scan_pending = pk.rescan = 0;
    while (pk.busy) {
        struct inflight *b = pk.busy;
        pk.busy = b->next;
        free(b->name);
        free(b);
    }
    if (pk.maildrop_fd >= 0)
        close(pk.maildrop_fd);
    if (pk.corrupt_fd >= 0)
        close(pk.corrupt_fd);
    pk.maildrop_fd = pk.corrupt_fd = -1;
    free(pk.myhostname);
    free(pk.myorigin);
    free(pk.authserv_id);
    pk.myhostname = pk.myorigin = pk.authserv_id = NULL;
}

static int is_busy(const char *name)
{
    for (struct inflight *b = pk.busy; b; b = b->next)
        if (strcmp(b->name, name) == 0)
            return 1;
    return 0;
}

static void set_busy(const char *name, int busy)
{
    if (busy) {
        struct inflight *b = xcalloc(1, sizeof *b);
        b->name = xstrdup(name);
        b->next = pk.busy;
        pk.busy = b;
        return;
    }
    for (struct inflight **pp = &pk.busy; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->name, name) == 0) {
            struct inflight *b = *pp;
            *pp = b->next;
            free(b->name);
            free(b);
            return;
        }
    }
}

/* A file name any local user chose, made fit for the log. */
static void printable_name(const char *name, char *out, size_t size)
{
    size_t k = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p && k + 1 < size; p++)
        out[k++] = *p > 0x20 && *p < 0x7f ? (char)*p : '?';
    out[k] = '\0';
}

static int is_stuck(const struct stat *sb)
{
    for (size_t i = 0; i < pk.nstuck; i++)
        if (pk.stuck[i].dev == sb->st_dev && pk.stuck[i].ino == sb->st_ino &&
            pk.stuck[i].ctime.tv_sec == sb->st_ctim.tv_sec && pk.stuck[i].ctime.tv_nsec == sb->st_ctim.tv_nsec)
            return 1;
    return 0;
}

/* To corrupt/ (0700, mail_owner: no other user reads it), so it is not
 * scanned again; else removed (an empty directory too); else remembered
 * and passed over. Logged this once, saying which. */
static void move_aside(const char *name, const char *why)
{
    char *dst = xasprintf("maildrop-%s", name);
    char shown[256];
    printable_name(name, shown, sizeof shown);
    if (renameat(pk.maildrop_fd, name, pk.corrupt_fd, dst) == 0) {
        log_warn("maildrop/%s: %s; moved to %s/maildrop-%s", shown, why, QDIR_CORRUPT, shown);
    } else if (unlinkat(pk.maildrop_fd, name, 0) == 0 || unlinkat(pk.maildrop_fd, name, AT_REMOVEDIR) == 0) {
        log_warn("maildrop/%s: %s; removed", shown, why);
    } else {
        struct stat sb;
        if (fstatat(pk.maildrop_fd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
            pk.stuck[pk.next_stuck].dev = sb.st_dev;
            pk.stuck[pk.next_stuck].ino = sb.st_ino;
            pk.stuck[pk.next_stuck].ctime = sb.st_ctim;
            pk.next_stuck = (pk.next_stuck + 1) % PICKUP_STUCK_MAX;
            if (pk.nstuck < PICKUP_STUCK_MAX)
                pk.nstuck++;
        }
        log_warn("maildrop/%s: %s; it can be neither moved aside nor removed (%s): passed over from now on",
                 shown, why, strerror(errno));
    }
    free(dst);
}

/* An envelope address from sendmail's command line or the header, by the
 * rule sendmail checked it with. */
static char *checked_address(const char *a, int allow_null)
{
    return smtp_addr_envelope(a, pk.myorigin, allow_null);
}

struct pickup_commit {
    char *name;
};

static void committed(void *arg, int ok)
{
    struct pickup_commit *pc = arg;
    if (ok)
        unlinkat(pk.maildrop_fd, pc->name, 0);
    set_busy(pc->name, 0);
    free(pc->name);
    free(pc);
}

static const void *rcpt_key(const void *item, size_t *len)
{
    *len = strlen(item);
    return item;
}

/* Adds addr unless seen (the recipients' addresses, by a hash: a file may
 * name thousands). */
static void add_rcpt_unique(struct queue_file_message *m, struct hashmap *seen, const char *addr, unsigned notify)
{
    if (hashmap_get_str(seen, addr))
        return;
    struct queue_file_rcpt *r = queue_file_message_add_rcpt(m, addr, "", notify, -1);
    hashmap_add(seen, r->addr);
}

/* sendmail's -N, -R and -V, checked again (the file is untrusted) by the
 * rules smtpd applies to NOTIFY, RET and ENVID. NULL, or what is wrong. */
static const char *dsn_options_problem(const struct maildrop_env *env, unsigned *notify)
{
    *notify = 0;
    if (env->notify && smtp_notify_parse(env->notify, strlen(env->notify), notify) != 0)
        return "bad NOTIFY (-N) value";
    if (env->ret && strcmp(env->ret, "FULL") != 0 && strcmp(env->ret, "HDRS") != 0)
        return "bad RET (-R) value";
    if (env->envid && !smtp_envid_valid(env->envid))
        return "bad ENVID (-V) value";
    return NULL;
}

/* An Authentication-Results field in our name must not reach a mailbox
 * from a local user either (RFC 8601 §5): dropped as smtpd drops it. */
static size_t drop_claims(void *arg, char *hdr, size_t len)
{
    (void)arg;
    return authres_drop_ours(hdr, len, pk.authserv_id);
}

static const struct cleanup_observer claims_filter = {drop_claims, NULL, NULL};

static void pickup_file(const char *name)
{
    /* Any local user can put anything here: a FIFO must not block the
     * queue (O_NONBLOCK), and a file larger than a message can be is
     * refused before it is read. */
    int fd = openat(pk.maildrop_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    struct stat sb;
    if (fstatat(pk.maildrop_fd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && is_stuck(&sb))
        return;
    if (fd < 0) {
        if (errno == ELOOP)
            move_aside(name, "a symbolic link");
        else if (errno == EACCES || errno == EPERM)
            move_aside(name, "not readable by the mail system");
        else if (errno == ENXIO)
            move_aside(name, "a socket");
        return;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        move_aside(name, "not a regular file");
        return;
    }
    uint64_t most = MAILDROP_MAX_ENVELOPE + (pk.message_size_limit ? 2 * pk.message_size_limit : 0);
    if (pk.message_size_limit && (uint64_t)sb.st_size > most) {
        close(fd);
        move_aside(name, "larger than message_size_limit allows");
        return;
    }
    FILE *f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        return;
    }
    struct maildrop_env env;
    char err[256];
    if (maildrop_read_env(f, &env, err, sizeof err) != 0) {
        fclose(f);
        move_aside(name, err);
        return;
    }
    if (env.nrcpts > MAILDROP_MAX_RCPTS) {
        fclose(f);
        maildrop_env_free(&env);
        snprintf(err, sizeof err, "more than %d recipients", MAILDROP_MAX_RCPTS);
        move_aside(name, err);
        return;
    }
    char *sender = checked_address(env.sender, 1);
    if (!sender) {
        fclose(f);
        maildrop_env_free(&env);
        move_aside(name, "bad sender address");
        return;
    }
    unsigned notify;
    const char *dsn_problem = dsn_options_problem(&env, &notify);
    if (dsn_problem) {
        fclose(f);
        maildrop_env_free(&env);
        free(sender);
        move_aside(name, dsn_problem);
        return;
    }

    char id[QUEUE_ID_LEN + 1];
    queue_id_new(id);
    struct queue_file_writer *w;
    if (queue_file_writer_open(store_incoming_dirfd(), id, &w) != 0) {
        log_warn("%s: cannot create queue file: %s (will retry)", id, strerror(errno));
        fclose(f);
        maildrop_env_free(&env);
        free(sender);
        return;
    }
    log_info("%s: uid=%u from=<%s>", id, (unsigned)sb.st_uid, sender);
    /* "for <rcpt>" names the recipient as it will be delivered: qualified. */
    char *for_rcpt = !env.extract && env.nrcpts == 1 ? checked_address(env.rcpts[0], 0) : NULL;
    struct msg_received rcv = {
        .by_host = pk.myhostname,
        .protocol = "local",
        .queue_id = id,
        .for_rcpt = for_rcpt,
        .uid = sb.st_uid,
        .when = time(NULL),
    };
    char *received = msg_header_received(&rcv);
    free(for_rcpt);
    struct cleanup_opts o = {
        .queue_id = id,
        .myhostname = pk.myhostname,
        .myorigin = pk.myorigin,
        .sender = sender,
        .full_name = env.full_name,
        .add_missing_headers = 1,
        .extract_recipients = env.extract,
        .received = received,
        .header_size_limit = pk.header_size_limit,
        .message_size_limit = pk.message_size_limit,
        .now = time(NULL),
        .observer = &claims_filter,
    };
    struct cleanup *cl = cleanup_new(w, &o);
    free(received);
    struct smtp_data dec;
    smtp_data_init(&dec, SMTP_DATA_BDAT, 0);
    static char in[65536], out[2 * 65536 + 2];
    size_t n;
    uint64_t total = 0;
    /* The size was checked above; a file still growing is read no further. */
    while (total <= most && (n = fread(in, 1, sizeof in, f)) > 0) {
        total += n;
        size_t outlen;
        smtp_data_decode(&dec, in, n, out, &outlen);
        cleanup_write(cl, out, outlen);
    }
    int read_error = ferror(f);
    fclose(f);
    n = smtp_data_finish(&dec, out);
    cleanup_write(cl, out, n);
    struct cleanup_result res;
    cleanup_finish(cl, &res);
    cleanup_free(cl);

    const char *problem = NULL;
    struct queue_file_message m;
    queue_file_message_init(&m, id, 0, sender);
    m.arrival_us = clock_now_us();
    struct hashmap seen;
    hashmap_init(&seen, rcpt_key, 0);
    size_t malformed = 0;
    const char *first_malformed = NULL;
    for (size_t i = 0; i < env.nrcpts; i++) {
        char *a = checked_address(env.rcpts[i], 0);
        if (a)
            add_rcpt_unique(&m, &seen, a, notify);
        else if (malformed++ == 0)
            first_malformed = env.rcpts[i];
        free(a);
    }
    /* one line a file, however many: a local user must not fill the log */
    if (malformed)
        log_warn("%s: ignoring %zu malformed recipient address%s, the first \"%s\"", id, malformed,
                 malformed == 1 ? "" : "es", first_malformed);
    for (size_t i = 0; i < res.nrcpts && m.nrcpt < MAILDROP_MAX_RCPTS; i++) {
        char *a = checked_address(res.rcpts[i], 0);
        if (a)
            add_rcpt_unique(&m, &seen, a, notify);
        free(a);
    }
    hashmap_free(&seen);
    if (read_error)
        problem = "read error";
    else if (smtp_data_error(&dec))
        problem = smtp_data_error(&dec);
    else if (res.status == CLEANUP_TOO_BIG)
        problem = "message size exceeds message_size_limit";
    else if (res.status == CLEANUP_HEADER_TOO_BIG)
        problem = "message header exceeds header_size_limit";
    else if (m.nrcpt == 0)
        problem = "no recipient addresses found";

    if (res.status == CLEANUP_WRITE_ERROR) {
        log_warn("%s: queue file write error: %s (will retry)", id, strerror(res.error_errno));
        queue_file_writer_abort(w);
    } else if (problem) {
        queue_file_writer_abort(w);
        move_aside(name, problem);
    } else {
        queue_file_message_set_attr(&m, "origin", "local");
        queue_file_message_set_attr(&m, "protocol", "local");
        queue_file_message_set_attr(&m, QF_ATTR_DKIM_SIGN, "1");   /* a local user's: the queue may sign it */
        char uid[24];
        snprintf(uid, sizeof uid, "%u", (unsigned)sb.st_uid);
        queue_file_message_set_attr(&m, "uid", uid);
        /* as smtpd stores MAIL's RET and ENVID */
        if (env.ret)
            queue_file_message_set_attr(&m, "ret", env.ret);
        if (env.envid)
            queue_file_message_set_attr(&m, "envid", env.envid);
        if (res.message_id)
            queue_file_message_set_attr(&m, "message_id", res.message_id);
        /* Nobody to say 554 to: the queue bounces it (a forwarding loop) */
        if (pk.hopcount_limit > 0 && res.hops > pk.hopcount_limit) {
            char hops[24];
            snprintf(hops, sizeof hops, "%d", res.hops);
            queue_file_message_set_attr(&m, "loop_hops", hops);
        }
        if (queue_file_writer_finish(w, &m) != 0) {
            log_warn("%s: queue file write error: %s (will retry)", id, strerror(errno));
        } else {
            if (res.message_id)
                log_info("%s: message-id=<%s>", id, res.message_id);
            struct pickup_commit *pc = xcalloc(1, sizeof *pc);
            pc->name = xstrdup(name);
            set_busy(name, 1);
            qmgr_commit(id, committed, pc);
        }
    }
    queue_file_message_free(&m);
    cleanup_result_free(&res);
    maildrop_env_free(&env);
    free(sender);
}

static void scan_schedule(void)
{
    if (pk.scan_pending || !pk.scan_ev)
        return;
    pk.scan_pending = 1;
    /* a zero timer runs after the sockets ready now: it yields to them */
    struct timeval now = {0, 0};
    evtimer_add(pk.scan_ev, &now);
}

void pickup_scan(void)
{
    if (pk.maildrop_fd < 0)
        return;
    if (pk.scan_dir)
        pk.rescan = 1;
    else
        scan_schedule();
}

static void scan_round(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    pk.scan_pending = 0;
    if (!pk.scan_dir) {
        int dfd = dup(pk.maildrop_fd);
        pk.scan_dir = dfd >= 0 ? fdopendir(dfd) : NULL;
        if (!pk.scan_dir) {
            if (dfd >= 0)
                close(dfd);
            return;
        }
        rewinddir(pk.scan_dir);
    }
    struct dirent *e = NULL;
    time_t now = time(NULL);
    /* every entry counts toward the round, dot files too: a directory of
     * them must not make one round of the whole */
    for (int files = 0; files < PICKUP_SCAN_ROUND && (e = readdir(pk.scan_dir)); files++) {
        if (e->d_name[0] == '.') {
            /* A sendmail that died while writing leaves a dot file. */
            struct stat sb;
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
                fstatat(pk.maildrop_fd, e->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && now - sb.st_mtime > 86400)
                unlinkat(pk.maildrop_fd, e->d_name, 0);
            continue;
        }
        if (!is_busy(e->d_name))
            pickup_file(e->d_name);
    }
    if (e) {   /* more to come: the next round after other work */
        scan_schedule();
        return;
    }
    closedir(pk.scan_dir);
    pk.scan_dir = NULL;
    if (pk.rescan) {
        pk.rescan = 0;
        scan_schedule();
    }
}
