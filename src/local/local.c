/* local: the local delivery agent process.
 *
 * The only part of tern that keeps root (when started as root), and only to
 * write into mailboxes as their owners: before touching a user's files it
 * switches its effective identity to that user (rights_become: euid and
 * egid, so no capability of root's stays in effect), so the kernel checks
 * permissions and owns new files as for the user; nothing
 * here parses network input. Started by an ordinary user, it delivers as
 * that user.
 *
 * Requests come from the queue process over private/local, one per
 * recipient. Maildir deliveries are written to tmp/ at once and made
 * durable, linked into new/ and answered in batches (maildir_batch.h: the
 * Maildir rule of "fsync before new/", paid once per batch instead of once
 * per message). mbox deliveries happen one at a time under their locks. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf.h"
#include "spool/spool.h"
#include "util/ipc.h"
#include "daemon/runtime.h"
#include "local/command.h"
#include "local/deliver.h"
#include "local/delivered_to.h"
#include "local/local_tables.h"
#include "local/local_targets.h"
#include "maps/alias.h"
#include "local/maildir.h"
#include "local/maildir_batch.h"
#include "local/luser.h"
#include "local/mbox.h"
#include "local/rights.h"
#include "maps/resolver.h"
#include "spool/queue_id.h"
#include "util/fsops.h"
#include "util/log.h"
#include "util/mem.h"

/* How long delivery commands may go on after SIGTERM (at most
 * command_time_limit): below the queue's own wait for their results (10 s)
 * and the master's SIGKILL (15 s). */
#define LOCAL_STOP_GRACE 8

struct client {
    struct client *next;
    struct ipc_chan *ch;
    uintptr_t serial;   /* names it to replies that come later (commands) */
};

static struct {
    struct event_base *base;
    struct runtime *rt;
    struct resolver *resolver;
    int is_root;
    char *spool_dir;
    struct client *clients;
    struct local_targets *targets;
    uintptr_t client_serial;
    int stopping;   /* waiting for delivery commands to end: nothing new starts */
    int enable_orcpt;   /* enable_original_recipient: X-Original-To */
    off_t mailbox_limit;   /* mailbox_size_limit; 0: none */
    char *luser_relay, *delimiters;   /* luser_relay, recipient_delimiter */
    int acting;            /* acting as a user (become_user) */
    off_t message_limit;   /* message_size_limit; 0: none */
    struct event *accept_ev;   /* private/local */
} lc;

/* Connections to private/local at once: the queue needs one or two; a
 * compromised mail owner must not run local out of descriptors. */
#define LOCAL_MAX_CLIENTS 32

/* ---------- identity ---------- */

static void become_user(uid_t uid, gid_t gid)
{
    if (!lc.is_root || uid == (uid_t)-1)
        return;
    lc.acting = 1;
    rights_become(uid, gid);
}

static void become_root(void)
{
    if (!lc.is_root || !lc.acting)
        return;
    lc.acting = 0;
    rights_become_root();
}

/* ---------- replies ---------- */

static void send_reply(struct ipc_chan *ch, uint32_t reqid, const char *status, const char *dsn, const char *text)
{
    struct ipc_msg m;
    ipc_msg_init(&m, IPC_DELIVER_REPLY, reqid);
    ipc_msg_add(&m, "status", status);
    ipc_msg_add(&m, "dsn", dsn);
    ipc_msg_add(&m, "text", text);
    ipc_chan_send(ch, &m);
    ipc_msg_free(&m);
}

static int chan_alive(struct ipc_chan *ch)
{
    for (struct client *c = lc.clients; c; c = c->next)
        if (c->ch == ch)
            return 1;
    return 0;
}

static void reply_error(struct ipc_chan *ch, uint32_t reqid, const struct deliver_error *err)
{
    if (chan_alive(ch))
        send_reply(ch, reqid, err->temporary ? "deferred" : "bounced", err->enh, err->text);
}

static void reply_maildir_sent(struct ipc_chan *ch, uint32_t reqid, int unsynced)
{
    send_reply(ch, reqid, unsynced ? "sent-unsynced" : "sent", "2.0.0", "delivered to maildir");
}

static uintptr_t client_serial_of(struct ipc_chan *ch)
{
    for (struct client *c = lc.clients; c; c = c->next)
        if (c->ch == ch)
            return c->serial;
    return 0;
}

/* A reply that may come after the request's connection is gone (a command
 * ends): the client is found by its serial, never by a pointer that a new
 * connection may have taken over. */
static void targets_reply(void *ctx, uint32_t reqid, const struct deliver_error *err, const char *text)
{
    uintptr_t serial = (uintptr_t)ctx;
    for (struct client *c = lc.clients; c; c = c->next) {
        if (c->serial != serial)
            continue;
        if (err)
            reply_error(c->ch, reqid, err);
        else
            send_reply(c->ch, reqid, "sent", "2.0.0", text);
        return;
    }
}

/* The DELIVER_REPLY "expanded": text, ntargets and target0.. as the queue
 * records them; free with ipc_msg_free. Or -1 with err (5.2.4) when the
 * list is longer than the queue takes or than one message holds. */
static int expanded_msg(struct ipc_msg *m, uint32_t reqid, const struct alias_result *targets,
                               const char *text, struct deliver_error *err)
{
    /* a .forward or :include: file may be 1 MiB: what fits one message to
     * the queue, which records at most ALIAS_MAX_TARGETS, is all that goes */
    size_t bytes = strlen(text) + 256;
    for (size_t i = 0; i < targets->n; i++)
        bytes += strlen(targets->t[i].value) + 32;   /* name, prefix, lengths */
    if (targets->n > ALIAS_MAX_TARGETS || bytes > IPC_MAX_MSG - 1024) {
        deliver_error_set(err, 0, "5.2.4", "the list has %zu addresses in %zu bytes: more than the %d addresses "
                          "or %d KiB one list may expand to", targets->n, bytes, ALIAS_MAX_TARGETS,
                          (IPC_MAX_MSG - 1024) / 1024);
        return -1;
    }
    ipc_msg_init(m, IPC_DELIVER_REPLY, reqid);
    ipc_msg_add(m, "status", "expanded");
    ipc_msg_add(m, "dsn", "2.0.0");
    ipc_msg_add(m, "text", text);
    ipc_msg_add_u64(m, "ntargets", targets->n);
    for (size_t i = 0; i < targets->n; i++) {
        const struct alias_target *t = &targets->t[i];
        char name[32];
        snprintf(name, sizeof name, "target%zu", i);
        /* as the queue records targets: a bare name, an address, |command,
         * /file, :include:/file */
        ipc_msg_addf(m, name, "%s%s", t->type == ALIAS_COMMAND ? "|" : t->type == ALIAS_INCLUDE ? ":include:" : "",
                     t->value);
    }
    return 0;
}

static void targets_expand(void *ctx, uint32_t reqid, const struct alias_result *targets, const char *text)
{
    for (struct client *c = lc.clients; c; c = c->next) {
        if (c->serial == (uintptr_t)ctx) {
            struct ipc_msg m;
            struct deliver_error err;
            if (expanded_msg(&m, reqid, targets, text, &err) != 0) {
                reply_error(c->ch, reqid, &err);
                return;
            }
            ipc_chan_send(c->ch, &m);
            ipc_msg_free(&m);
            return;
        }
    }
}

static const struct local_targets_replies targets_replies = {targets_reply, targets_expand};

/* ---------- one request ---------- */

/* A journal segment's path: queue_directory/journal/seg-<16 hex digits>. */
static int is_journal_segment(const char *path)
{
    char *prefix = xasprintf("%s/%s/seg-", lc.rt->queue_dir, QDIR_JOURNAL);
    size_t n = strlen(prefix);
    int ok = strncmp(path, prefix, n) == 0 && strlen(path + n) == 16 && strspn(path + n, "0123456789abcdef") == 16;
    free(prefix);
    return ok;
}

/* Journal segments stay open between deliveries: a segment holds thousands
 * of messages, and opening it for each (as the mail owner: two identity
 * switches each way, the open, the checks, the close) was nine system
 * calls of a delivery's twenty-odd. A segment's path is not reused while
 * its queue process lives (seqs only grow; a journal rebuilt by hand could
 * start them again, so a queue connection that closes empties the cache)
 * and its size never changes; a retired segment's file is renamed, not
 * unlinked, so an entry that is no longer asked for only holds a
 * descriptor until it is the least recently used. */
#define SEGMENTS_OPEN 4
static struct open_segment {
    char *path;
    int fd;
    off_t size;
    unsigned long used;
} segments[SEGMENTS_OPEN];
static unsigned long segments_clock;

static int segment_cached(const char *path, off_t *size)
{
    for (int i = 0; i < SEGMENTS_OPEN; i++)
        if (segments[i].path && strcmp(segments[i].path, path) == 0) {
            segments[i].used = ++segments_clock;
            *size = segments[i].size;
            return segments[i].fd;
        }
    return -1;
}

static void segment_keep(const char *path, int fd, off_t size)
{
    struct open_segment *slot = &segments[0];
    for (int i = 1; i < SEGMENTS_OPEN; i++)
        if (segments[i].used < slot->used)
            slot = &segments[i];
    if (slot->path) {
        close(slot->fd);
        free(slot->path);
    }
    *slot = (struct open_segment){xstrdup(path), fd, size, ++segments_clock};
}

/* A queue process that goes away may come back with its journal rebuilt
 * (segment names start again only then): nothing kept outlives it. */
static void segments_forget(void)
{
    for (int i = 0; i < SEGMENTS_OPEN; i++)
        if (segments[i].path) {
            close(segments[i].fd);
            free(segments[i].path);
            segments[i] = (struct open_segment){0};
        }
}

/* Done with a request's queue file: closed unless it is a kept segment. */
static void release_queue_file(int fd)
{
    for (int i = 0; i < SEGMENTS_OPEN; i++)
        if (segments[i].path && segments[i].fd == fd)
            return;
    close(fd);
}

/* The queue file named by a request, opened with the mail owner's rights:
 * the request comes from an unprivileged process, so it may name only a
 * regular file in queue/ or hold/ or a journal segment, and root's rights
 * are not lent to it. Its size to *size; release_queue_file() after. */
static int open_queue_file(const char *path, const char *id, off_t *size)
{
    int ok = queue_id_valid(id);
    int segment = ok && is_journal_segment(path);
    if (ok && !segment) {
        char *q = xasprintf("%s/%s/%s", lc.rt->queue_dir, QDIR_QUEUE, id);
        char *h = xasprintf("%s/%s/%s", lc.rt->queue_dir, QDIR_HOLD, id);
        ok = strcmp(path, q) == 0 || strcmp(path, h) == 0;
        free(q);
        free(h);
    }
    if (!ok) {
        log_warn("refusing a delivery request for %s", path);
        errno = EPERM;
        return -1;
    }
    if (segment) {
        int fd = segment_cached(path, size);
        if (fd >= 0)
            return fd;
    }
    become_user(lc.rt->owner_uid, lc.rt->owner_gid);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    become_root();
    struct stat sb;
    /* no times: this is often a journal segment the queue is appending to */
    if (fd >= 0 && (fsops_fstat_no_times(fd, &sb) != 0 || !S_ISREG(sb.st_mode))) {
        close(fd);
        errno = EPERM;
        return -1;
    }
    if (fd >= 0) {
        *size = sb.st_size;
        if (segment)
            segment_keep(path, fd, sb.st_size);
    }
    return fd;
}

static int in_spool(const char *path)
{
    size_t n = strlen(lc.spool_dir);
    return n && strncmp(path, lc.spool_dir, n) == 0 && path[n] == '/';
}

/* The request's offset and length must lie within the queue file (of size
 * qsize), and the length within what message_size_limit lets a message be
 * (twice, and 1 MiB, for mail taken before the limit was lowered): the
 * queue asks for nothing else, and local copies that much for a command's
 * input. 0, or -1 with err. */
static int check_extent(off_t qsize, const struct ipc_msg *m, struct deliver_error *err)
{
    uint64_t off = ipc_msg_get_u64(m, "offset", 0), len = ipc_msg_get_u64(m, "length", 0);
    if (qsize < 0 || off > (uint64_t)qsize || len > (uint64_t)qsize - off ||
        (lc.message_limit > 0 && len > 2 * (uint64_t)lc.message_limit + 1048576)) {
        log_warn("refusing a delivery request for %s: its content (%llu bytes at %llu) is not within the queue "
                 "file or message_size_limit", ipc_msg_get(m, "id") ? ipc_msg_get(m, "id") : "?",
                 (unsigned long long)len, (unsigned long long)off);
        deliver_error_set(err, 1, "4.3.0", "the delivery request does not match its queue file");
        return -1;
    }
    return 0;
}

/* A |command, /file or :include: target of an alias or a .forward:
 * local_targets checks it against our own tables and files and picks the
 * rights; the queue only names where it comes from. */
static void deliver_listed_target(struct ipc_chan *ch, const struct ipc_msg *m)
{
    off_t qsize;
    int qfd = open_queue_file(ipc_msg_get(m, "path"), ipc_msg_get(m, "id"), &qsize);
    struct deliver_error err;
    if (qfd < 0) {
        deliver_error_errno(&err, errno, "cannot open queue file %s", ipc_msg_get(m, "id"));
        reply_error(ch, m->reqid, &err);
        return;
    }
    if (check_extent(qsize, m, &err) != 0) {
        reply_error(ch, m->reqid, &err);
        release_queue_file(qfd);
        return;
    }
    local_targets_request(lc.targets, m, qfd, (void *)client_serial_of(ch), &targets_replies);
    release_queue_file(qfd);
}

static void deliver(struct ipc_chan *ch, const struct ipc_msg *m)
{
    if (lc.stopping) {   /* also a request held for a table's answer */
        send_reply(ch, m->reqid, "deferred", "4.3.0", "local delivery agent is stopping");
        return;
    }
    const char *id = ipc_msg_get(m, "id");
    const char *path = ipc_msg_get(m, "path");
    const char *sender = ipc_msg_get(m, "sender");
    const char *rcpt = ipc_msg_get(m, "rcpt");
    const char *user = ipc_msg_get(m, "user");
    struct deliver_error err;
    memset(&err, 0, sizeof err);
    if (!id || !path || !sender || !rcpt || !user) {
        log_error("malformed delivery request");
        deliver_error_set(&err, 1, "4.3.0", "malformed delivery request");
        reply_error(ch, m->reqid, &err);
        return;
    }
    if (ipc_msg_get(m, "alias") || ipc_msg_get(m, "forward_of")) {
        deliver_listed_target(ch, m);
        return;
    }
    struct local_mailbox mb;
    char why[256] = "";
    /* which kind of mailbox: decided here from our own configuration, not
     * from what the queue (mail_owner's) says */
    enum resolve_class cls;
    int rc = resolver_classify(lc.resolver, rcpt, &cls);
    if (rc != 0)
        snprintf(why, sizeof why, "virtual domain lookup failed for %s", rcpt);
    else if (cls == RESOLVE_VIRTUAL_MAILBOX)
        rc = resolver_virtual_mailbox(lc.resolver, rcpt, &mb, why, sizeof why);
    else
        rc = resolver_mailbox(lc.resolver, user, &mb, why, sizeof why);
    struct alias_result relay;   /* luser_relay: the unknown user's mail goes there */
    if (rc == 1 && cls != RESOLVE_VIRTUAL_MAILBOX &&
        luser_relay_target(lc.luser_relay, rcpt, user, lc.delimiters, &relay)) {
        targets_expand((void *)client_serial_of(ch), m->reqid, &relay, "expanded by luser_relay");
        alias_result_free(&relay);
        return;
    }
    if (rc == 1) {
        if (cls == RESOLVE_VIRTUAL_MAILBOX)
            deliver_error_set(&err, 0, "5.1.1", "unknown user: \"%s\" in virtual mailbox table", rcpt);
        else
            deliver_error_set(&err, 0, "5.1.1", "unknown user: \"%s\"", user);
        reply_error(ch, m->reqid, &err);
        return;
    }
    if (rc < 0) {
        deliver_error_set(&err, 1, "4.3.0", "%s", why);
        reply_error(ch, m->reqid, &err);
        return;
    }
    off_t length = (off_t)ipc_msg_get_u64(m, "length", 0);
    if (mb.size_limit > 0 && length > mb.size_limit) {
        deliver_error_set(&err, 0, "5.2.2", "message is larger than virtual_mailbox_limit (%lld bytes)",
                          mb.size_limit);
        reply_error(ch, m->reqid, &err);
        resolver_mailbox_free(&mb);
        return;
    }
    if (mb.make_parents) {
        /* the directories above the mailbox, made as its owner (a virtual
         * mailbox's uid; nobody else in the development layout) */
        become_user(mb.uid, mb.gid);
        struct stat pst;
        if (fsops_stat_no_times(AT_FDCWD, mb.path, 0, &pst) != 0) {
            char *parent = xstrdup(mb.path);
            size_t len = strlen(parent);
            while (len > 1 && parent[len - 1] == '/')
                parent[--len] = '\0';
            char *slash = strrchr(parent, '/');
            if (slash && slash != parent) {
                *slash = '\0';
                fsops_mkdir_p(parent, 0700);
            }
            free(parent);
        }
        become_root();
    }
    off_t qsize;
    int qfd = open_queue_file(path, id, &qsize);
    if (qfd < 0) {
        deliver_error_errno(&err, errno, "cannot open queue file %s", id);
        reply_error(ch, m->reqid, &err);
        resolver_mailbox_free(&mb);
        return;
    }
    if (check_extent(qsize, m, &err) != 0) {
        reply_error(ch, m->reqid, &err);
        release_queue_file(qfd);
        resolver_mailbox_free(&mb);
        return;
    }
    /* Return-Path, X-Original-To, Delivered-To, then the fields the queue
     * file asks to put above the content */
    const char *orig = ipc_msg_get(m, "orig_rcpt") ? ipc_msg_get(m, "orig_rcpt") : rcpt;
    char *prepend = delivered_to_prepend(NULL, sender, lc.enable_orcpt ? orig : NULL, rcpt, ipc_msg_get(m, "prepend"));
    struct deliver_input in = {
        .fd = qfd,
        .offset = (off_t)ipc_msg_get_u64(m, "offset", 0),
        .length = (off_t)ipc_msg_get_u64(m, "length", 0),
        .prepend = prepend,
        .sender = sender,
        .arrival = (time_t)ipc_msg_get_u64(m, "arrival", 0),
        .size_limit = mb.is_virtual ? 0 : lc.mailbox_limit,   /* virtual_mailbox_limit: above */
    };
    /* a message that was here before bounces, as with Postfix (delivered_to.h) */
    char *content;
    if (delivered_to_loop(&in, ipc_msg_get(m, "prepend"), rcpt, &err, &content) != 0) {
        reply_error(ch, m->reqid, &err);
        release_queue_file(qfd);
        free(prepend);
        resolver_mailbox_free(&mb);
        return;
    }
    in.content = content;
    struct local_target_request req = {
        .ctx = (void *)client_serial_of(ch),
        .reqid = m->reqid,
        .sender = sender,
        .recipient = rcpt,
        .original_recipient = orig,
        .x_original_to = lc.enable_orcpt ? orig : NULL,
        .prepend = ipc_msg_get(m, "prepend"),
        .in = &in,
    };
    /* a local user's .forward (not for the copy its own .forward keeps),
     * then mailbox_command: either takes the request and answers it */
    int skip_forward = mb.is_virtual || mb.uid == (uid_t)-1 || ipc_msg_get(m, "skip_forward");
    if (!skip_forward && local_targets_forward(lc.targets, &req, user, &targets_replies)) {
        /* its targets went back to the queue */
    } else if (!mb.is_virtual && local_targets_mailbox_command(lc.targets, &req, user, mb.uid, targets_reply)) {
        /* the command answers when it ends */
    } else if (mb.is_maildir) {
        struct maildir_delivery *md;
        become_user(mb.uid, mb.gid);
        int begun = maildir_begin(mb.path, (uid_t)-1, (gid_t)-1, &in, &md, &err);
        become_root();
        if (begun != 0)
            reply_error(ch, m->reqid, &err);
        else
            maildir_batch_add(ch, m->reqid, mb.uid, mb.gid, md);
    } else {
        /* The mail spool belongs to root and group mail: the lock file and a
         * new mailbox are made with root's rights (the mailbox then given to
         * the user); a mailbox in the home directory is written as the user. */
        int spool = in_spool(mb.path);
        struct stat sb;
        int too_big = 0;
        if (mb.size_limit > 0) {
            become_user(mb.uid, mb.gid);
            /* no times: the append follows (see fsops_stat_no_times) */
            too_big = fsops_stat_no_times(AT_FDCWD, mb.path, 0, &sb) == 0 && sb.st_size + length > mb.size_limit;
            become_root();
        }
        if (spool && lc.is_root && fsops_stat_no_times(AT_FDCWD, mb.path, AT_SYMLINK_NOFOLLOW, &sb) == 0 &&
            sb.st_uid != mb.uid) {
            deliver_error_set(&err, 1, "4.2.0", "mailbox %s is not owned by %s", mb.path, user);
            rc = -1;
        } else if (too_big) {
            deliver_error_set(&err, 1, "4.2.2", "mailbox %s would grow past virtual_mailbox_limit", mb.path);
            rc = -1;
        } else {
            if (!spool)
                become_user(mb.uid, mb.gid);
            /* A mailbox locked by a mail reader must not hold up every other
             * local delivery (this loop serves them all): wait a moment, then
             * defer and retry later. */
            static const struct mbox_lock_policy brief = {250, 50, 300, 1};
            rc = mbox_deliver_with_policy(mb.path, spool && lc.is_root ? mb.uid : (uid_t)-1,
                                          spool && lc.is_root ? mb.gid : (gid_t)-1, &in, &brief, &err);
            become_root();
        }
        if (rc == 0)
            send_reply(ch, m->reqid, "sent", "2.0.0", "delivered to mailbox");
        else
            reply_error(ch, m->reqid, &err);
    }
    release_queue_file(qfd);
    free(content);
    free(prepend);
    resolver_mailbox_free(&mb);
}

/* ---------- process ---------- */

static void client_message(struct ipc_chan *ch, struct ipc_msg *m, void *arg)
{
    struct client *c = arg;
    if (!m) {
        local_tables_drop(ch);
        for (struct client **pp = &lc.clients; *pp; pp = &(*pp)->next) {
            if (*pp == c) {
                *pp = c->next;
                break;
            }
        }
        maildir_batch_drop_channel(ch);
        ipc_chan_free(ch);
        free(c);
        segments_forget();
        return;
    }
    if (m->type == IPC_BARRIER_REPLY) {
        maildir_batch_barrier_reply(m);
        return;
    }
    if (m->type != IPC_DELIVER) {
        log_error("unexpected message type %u", m->type);
        return;
    }
    if (local_tables_hold(lc.resolver, ch, m))
        return;
    deliver(ch, m);
}

static void resume_accepting(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    event_add(lc.accept_ev, NULL);
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0) {
        /* out of descriptors: the socket stays readable; pause, not spin */
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            log_warn("cannot accept a delivery connection: %s; pausing for a second", strerror(errno));
            event_del(lc.accept_ev);
            struct timeval tv = {1, 0};
            event_base_once(lc.base, -1, EV_TIMEOUT, resume_accepting, NULL, &tv);
        }
        return;
    }
    size_t nclients = 0;
    for (struct client *c = lc.clients; c; c = c->next)
        nclients++;
    if (nclients >= LOCAL_MAX_CLIENTS) {
        log_warn("refusing a delivery connection: %d are open already", LOCAL_MAX_CLIENTS);
        close(cfd);
        return;
    }
    /* Only the queue process (running as mail_owner, or root) may ask. */
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
        (cred.uid != 0 && cred.uid != lc.rt->owner_uid)) {
        log_warn("refusing a delivery connection from uid %u", (unsigned)cred.uid);
        close(cfd);
        return;
    }
    struct client *c = xcalloc(1, sizeof *c);
    c->ch = ipc_chan_new(lc.base, cfd, client_message, c);
    c->serial = ++lc.client_serial;
    c->next = lc.clients;
    lc.clients = c;
}

static void stop_now(void *arg)
{
    (void)arg;
    event_base_loopexit(lc.base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    (void)arg;
    if (sig == SIGUSR1) {
        log_reopen();
        return;
    }
    unsigned running = command_running();
    if (sig == SIGTERM && running && !lc.stopping) {
        unsigned limit = (unsigned)conf_time(lc.rt->conf, "command_time_limit");
        unsigned grace = limit < LOCAL_STOP_GRACE ? limit : LOCAL_STOP_GRACE;
        log_info("stopping: waiting up to %us for %u delivery command%s", grace, running, running == 1 ? "" : "s");
        lc.stopping = 1;
        command_drain(grace, stop_now, NULL);
        return;
    }
    event_base_loopexit(lc.base, NULL);
}

int local_main(struct runtime *rt)
{
    memset(&lc, 0, sizeof lc);
    lc.rt = rt;
    lc.is_root = geteuid() == 0;
    if (lc.is_root) {
        setgroups(0, NULL);
        rights_drop_quota_override();
    }
    lc.base = event_base_new();
    if (!lc.base)
        log_fatal("cannot create event loop");
    log_batch_on(lc.base);
    /* pgsql: tables answer on this loop; held requests run again */
    local_tables_init(lc.base, deliver, chan_alive);
    char *err = NULL;
    lc.resolver = resolver_new(rt->conf, &err);
    if (!lc.resolver)
        log_fatal("%s", err ? err : "cannot set up recipient lookups");
    lc.enable_orcpt = conf_bool(rt->conf, "enable_original_recipient");
    lc.mailbox_limit = (off_t)conf_int(rt->conf, "mailbox_size_limit");
    lc.message_limit = (off_t)conf_int(rt->conf, "message_size_limit");
    lc.luser_relay = xstrdup(conf_str(rt->conf, "luser_relay"));
    lc.delimiters = xstrdup(conf_str(rt->conf, "recipient_delimiter"));
    if (lc.mailbox_limit > 0 && lc.mailbox_limit < (off_t)conf_int(rt->conf, "message_size_limit"))
        log_warn("mailbox_size_limit (%lld) is smaller than message_size_limit (%lld): larger messages are "
                 "accepted and then bounce at delivery", (long long)lc.mailbox_limit,
                 conf_int(rt->conf, "message_size_limit"));
    lc.targets = local_targets_new(rt->conf, lc.resolver, rt->owner_uid);
    local_tables_watch_command_maps(local_targets_command_maps(lc.targets));
    command_init(lc.base);
    lc.spool_dir = xstrdup(conf_str(rt->conf, "mail_spool_directory"));
    size_t sl = strlen(lc.spool_dir);
    while (sl > 1 && lc.spool_dir[sl - 1] == '/')
        lc.spool_dir[--sl] = '\0';
    struct stat qst;
    /* Sharing the queue's syncs needs them to be whole-file-system syncs. */
    int syncfs_mode = strcmp(conf_str(rt->conf, "queue_sync_method"), "syncfs") == 0;
    int spool_known = syncfs_mode && stat(rt->queue_dir, &qst) == 0;
    static const struct maildir_batch_ops batch_ops = {become_user, become_root, chan_alive, reply_maildir_sent,
                                                       reply_error};
    maildir_batch_init(lc.base, &batch_ops, !syncfs_mode, spool_known ? &qst.st_dev : NULL,
                       MAILDIR_BATCH_INTERVAL_MS);
    /* The directory tern was started in is nothing of the users': an
     * :include: of /proc/self/cwd/... would reach it past directories they
     * cannot search. */
    if (chdir("/") != 0)
        log_warn("cannot change to /: %s", strerror(errno));
    lc.accept_ev = event_new(lc.base, rt->local_listen_fd, EV_READ | EV_PERSIST, on_accept, NULL);
    event_add(lc.accept_ev, NULL);
    int sigs[] = {SIGTERM, SIGINT, SIGUSR1};
    struct event *sigev[3];
    for (int i = 0; i < 3; i++) {
        sigev[i] = evsignal_new(lc.base, sigs[i], on_signal, NULL);
        event_add(sigev[i], NULL);
    }
    event_base_dispatch(lc.base);
    maildir_batch_shutdown();
    for (int i = 0; i < 3; i++)
        event_free(sigev[i]);
    event_free(lc.accept_ev);
    while (lc.clients) {
        struct client *c = lc.clients;
        lc.clients = c->next;
        ipc_chan_free(c->ch);
        free(c);
    }
    command_shutdown();
    local_targets_free(lc.targets);
    resolver_free(lc.resolver);
    free(lc.spool_dir);
    free(lc.luser_relay);
    free(lc.delimiters);
    segments_forget();
    log_batch_on(NULL);   /* its flush event goes with the loop */
    event_base_free(lc.base);
    return 0;
}
