/* qmgr_owner: list expansions sent from the list's owner (see qmgr_owner.h). */
#include "qmgr/qmgr_owner.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "maps/map.h"
#include "maps/resolver.h"
#include "qmgr/qmgr.h"
#include "qmgr/qmgr_msg.h"
#include "spool/queue_file.h"
#include "spool/queue_id.h"
#include "spool/store.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

int qmgr_owner_of(struct resolver *r, const char *addr, char **owner)
{
    *owner = NULL;
    struct map_list *aliases = resolver_aliases(r);
    if (!aliases)
        return 0;
    char *local = NULL, *domain = NULL;
    resolve_split(addr, &local, &domain);
    str_lower(local);
    int rc = 0;
    if (*local && strncmp(local, "owner-", 6) != 0) {
        char *key = xasprintf("owner-%s", local);
        char *value = NULL;
        rc = map_list_lookup(aliases, key, &value);
        if (rc > 0)
            *owner = domain && *domain ? xasprintf("%s@%s", key, domain) : xstrdup(key);
        rc = rc > 0 ? 1 : rc < 0 ? -1 : 0;
        free(value);
        free(key);
    }
    free(local);
    free(domain);
    return rc;
}

struct owner_job {
    struct qmgr_msg *q;   /* kept in memory: idx is taken */
    size_t idx;
    char id[QUEUE_ID_LEN + 1];
    char *owner;
    size_t n;
};

static void committed(void *arg, int ok)
{
    struct owner_job *j = arg;
    struct qmgr_msg *q = j->q;
    if (!ok) {
        log_warn("%s: to=<%s>: cannot queue the list's expansion from %s", q->m.id, q->m.rcpts[j->idx].addr,
                 j->owner);
        qmgr_msg_rcpt_finish(q, j->idx, QMSG_DEFERRED, "local", 0, "4.3.0", "cannot queue the list's expansion",
                             NULL);
    } else {
        qmgr_msg_rcpt_release(q, j->idx);
        log_info("%s: to=<%s>: expanded by alias to %zu address%s, sent from <%s> as %s", q->m.id,
                 q->m.rcpts[j->idx].addr, j->n, j->n == 1 ? "" : "es", j->owner, j->id);
        if (!q->deleted) {
            char *why = xasprintf("expanded by alias (owner-list: %s from <%s>)", j->id, j->owner);
            qmgr_msg_set_result(&q->m.rcpts[j->idx], QF_EXPANDED, "2.0.0", why, NULL);
            free(why);
            qmgr_msg_record(q, j->idx);
        }
    }
    free(j->owner);
    free(j);
    qmgr_msg_finish_if_done(q);
}

/* The content of q (as queued, wire form) into w. 0, or -1 with errno. */
static int copy_content(struct qmgr_msg *q, struct queue_file_writer *w)
{
    char *path;
    uint64_t base;
    store_content_locate(q->m.id, q->place, &path, &base);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int e = errno;
    free(path);
    if (fd < 0) {
        store_content_done(q->m.id);
        errno = e;
        return -1;
    }
    char *buf = xmalloc(65536);
    uint64_t left = q->m.content_length;
    off_t pos = (off_t)(base + q->m.content_offset);
    int rc = 0;
    while (left > 0 && rc == 0) {
        size_t want = left < 65536 ? (size_t)left : 65536;
        ssize_t got = pread(fd, buf, want, pos);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            if (got == 0)
                errno = EIO;
            rc = -1;
            break;
        }
        rc = queue_file_writer_write(w, buf, (size_t)got);
        pos += got;
        left -= (uint64_t)got;
    }
    e = errno;
    free(buf);
    close(fd);
    store_content_done(q->m.id);
    errno = e;
    return rc;
}

int qmgr_owner_resubmit(struct qmgr_msg *q, size_t idx, const char *owner, const char *const *addrs, size_t n)
{
    char id[QUEUE_ID_LEN + 1];
    queue_id_new(id);
    struct queue_file_writer *w;
    if (queue_file_writer_open(store_incoming_dirfd(), id, &w) != 0) {
        log_warn("%s: cannot create the list's message: %s", q->m.id, strerror(errno));
        return -1;
    }
    if (copy_content(q, w) != 0) {
        log_warn("%s: cannot copy the message for the list's owner: %s", q->m.id, strerror(errno));
        queue_file_writer_abort(w);
        return -1;
    }
    struct queue_file_message m;
    queue_file_message_init(&m, id, clock_now_us(), owner);
    for (size_t i = 0; i < q->m.nattrs; i++)   /* the client, the prepended fields, body, smtputf8 ... */
        if (strcmp(q->m.attrs[i].name, QF_ATTR_HOLD) != 0)
            queue_file_message_set_attr(&m, q->m.attrs[i].name, q->m.attrs[i].value);
    for (size_t i = 0; i < n; i++)
        queue_file_message_add_rcpt(&m, addrs[i], "", q->m.rcpts[idx].notify, -1);
    int rc = queue_file_writer_finish(w, &m);
    queue_file_message_free(&m);
    if (rc != 0) {
        log_warn("%s: cannot write the list's message: %s", q->m.id, strerror(errno));
        return -1;
    }
    struct owner_job *j = xcalloc(1, sizeof *j);
    j->q = q;
    j->idx = idx;
    str_copy(j->id, id, sizeof j->id);
    j->owner = xstrdup(owner);
    j->n = n;
    qmgr_msg_rcpt_take(q, idx);
    qmgr_commit(id, committed, j);
    return 0;
}
