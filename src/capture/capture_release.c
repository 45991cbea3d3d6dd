/* capture_release: captured messages handed to the real queue (see
 * capture_release.h). */
#include "capture/capture_release.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "capture/capture_json.h"
#include "capture/capture_store.h"
#include "conf/conf.h"
#include "maps/map.h"
#include "spool/queue_file.h"
#include "spool/queue_id.h"
#include "spool/spool.h"
#include "util/clock.h"
#include "util/ipc.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

#define RELEASE_MAX_RCPTS 100
#define RELEASE_ADDR_MAX 254       /* RFC 5321 4.5.3.1.3 path, less the brackets */

/* One release waiting for the queue's COMMIT_REPLY. */
struct pending {
    struct pending *next;
    uint32_t reqid;
    struct evhttp_request *req;
    char id[QUEUE_ID_LEN + 1];        /* the new queue file's */
    char captured[QUEUE_ID_LEN + 1];  /* the captured message's */
};

static struct {
    struct event_base *base;
    char *queue_dir;
    int incoming_fd;
    char **literals;             /* addresses and domains, lower case */
    size_t nliterals;
    struct map **tables;
    size_t ntables;
    struct ipc_chan *queue;      /* private/queue, opened on first use */
    struct pending *pending;
    uint32_t next_reqid;
} rl = {.incoming_fd = -1};

int capture_release_init(struct event_base *base, struct conf *c, const char *queue_dir, char **err)
{
    rl.base = base;
    rl.queue_dir = xstrdup(queue_dir);
    struct conf_list l = conf_list(c, "capture_release_recipients");
    for (size_t i = 0; i < l.n; i++) {
        const char *item = l.items[i];
        size_t type_len = strspn(item, "abcdefghijklmnopqrstuvwxyz0123456789");
        if (type_len > 0 && item[type_len] == ':') {
            struct map *m = map_open(item, 0, err);
            if (!m) {
                conf_list_free(&l);
                return -1;
            }
            rl.tables = xrealloc(rl.tables, (rl.ntables + 1) * sizeof *rl.tables);
            rl.tables[rl.ntables++] = m;
        } else {
            char *low = xstrdup(item[0] == '@' ? item + 1 : item);
            str_lower(low);
            rl.literals = xrealloc(rl.literals, (rl.nliterals + 1) * sizeof *rl.literals);
            rl.literals[rl.nliterals++] = low;
        }
    }
    conf_list_free(&l);
    return 0;
}

/* 1 allowed, 0 not, -1 a table failed. */
static int allowed(const char *addr)
{
    char *low = xstrdup(addr);
    str_lower(low);
    const char *domain = strrchr(low, '@') + 1;
    int ok = 0;
    for (size_t i = 0; i < rl.nliterals && !ok; i++)
        ok = strcmp(rl.literals[i], low) == 0 || strcmp(rl.literals[i], domain) == 0;
    for (size_t i = 0; i < rl.ntables && !ok; i++) {
        char *value = NULL;
        int rc = map_lookup(rl.tables[i], low, &value);
        if (rc == 0 && !map_is_pattern(rl.tables[i]))
            rc = map_lookup(rl.tables[i], domain, &value);
        free(value);
        if (rc < 0) {
            free(low);
            return -1;
        }
        ok = rc == 1;
    }
    free(low);
    return ok;
}

/* A plain address: local@domain, printable, no blanks or brackets. */
static int address_ok(const char *a)
{
    size_t len = strlen(a);
    const char *at = strrchr(a, '@');
    if (len == 0 || len > RELEASE_ADDR_MAX || !at || at == a || at[1] == 0)
        return 0;
    for (const unsigned char *p = (const unsigned char *)a; *p; p++)
        if (*p <= ' ' || *p == 0x7f || *p == '<' || *p == '>' || *p == ',' || *p == '"' || *p == '\\')
            return 0;
    return 1;
}

static struct pending *take_pending(uint32_t reqid)
{
    for (struct pending **pp = &rl.pending; *pp; pp = &(*pp)->next)
        if ((*pp)->reqid == reqid || reqid == 0) {
            struct pending *p = *pp;
            *pp = p->next;
            return p;
        }
    return NULL;
}

static void forget_request(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    struct pending *p = arg;
    /* the client went away; the release still goes. A request left before
     * its answer is detached by libevent and ours to free. */
    if (evhttp_request_get_connection(p->req) == NULL)
        evhttp_request_free(p->req);
    p->req = NULL;
}

static void answer(struct pending *p, int ok, const char *why)
{
    if (p->req) {
        struct evhttp_connection *conn = evhttp_request_get_connection(p->req);
        if (conn)
            evhttp_connection_set_closecb(conn, NULL, NULL);
        if (ok)
            capture_reply_json(p->req, 202, "Accepted", json_pack("{s:s}", "id", p->id));
        else
            capture_reply_error(p->req, 503, "Service Unavailable", why);
    }
    free(p);
}

static void on_queue_message(struct ipc_chan *ch, struct ipc_msg *m, void *arg)
{
    (void)arg;
    if (!m) {
        /* the queue went away: what waited is not known to be committed */
        ipc_chan_free(ch);
        rl.queue = NULL;
        struct pending *p;
        while ((p = take_pending(0)) != NULL)
            answer(p, 0, "the queue restarted; release again");
        return;
    }
    struct pending *p = m->type == IPC_COMMIT_REPLY ? take_pending(m->reqid) : NULL;
    if (!p)
        return;
    const char *status = ipc_msg_get(m, "status");
    int ok = status && strcmp(status, "ok") == 0;
    if (ok)
        log_info("capture: %s: released as %s", p->captured, p->id);
    answer(p, ok, ok ? NULL : ipc_msg_get(m, "reply") ? ipc_msg_get(m, "reply") : "the queue refused it");
}

static int open_queue(void)
{
    if (rl.incoming_fd < 0) {
        char *path = xasprintf("%s/%s", rl.queue_dir, QDIR_INCOMING);
        rl.incoming_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        free(path);
        if (rl.incoming_fd < 0)
            return -1;
    }
    if (!rl.queue) {
        char *path = xasprintf("%s/%s", rl.queue_dir, QSOCK_QUEUE);
        int fd = ipc_connect(path);
        free(path);
        if (fd < 0)
            return -1;
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        rl.queue = ipc_chan_new(rl.base, fd, on_queue_message, NULL);
    }
    return rl.queue ? 0 : -1;
}

/* Writes incoming/ID: the captured content, its sender, the new recipients. */
static int write_copy(const struct capture_entry *e, json_t *to, char *id)
{
    char *content;
    size_t len;
    if (capture_store_content(e, &content, &len) != 0)
        return -1;
    queue_id_new(id);
    struct queue_file_writer *w;
    if (queue_file_writer_open(rl.incoming_fd, id, &w) != 0) {
        free(content);
        return -1;
    }
    int rc = queue_file_writer_write(w, content, len);
    free(content);
    struct queue_file_message m;
    queue_file_message_init(&m, id, clock_now_us(), e->sender);
    size_t i;
    json_t *v;
    json_array_foreach(to, i, v)
        queue_file_message_add_rcpt(&m, json_string_value(v), "", 0, -1);
    queue_file_message_set_attr(&m, "origin", "capture");
    queue_file_message_set_attr(&m, "protocol", "capture-release");
    queue_file_message_set_attr(&m, "released_from", e->id);
    if (e->dkim_sign)
        queue_file_message_set_attr(&m, QF_ATTR_DKIM_SIGN, "1");
    if (rc != 0) {
        queue_file_writer_abort(w);
        queue_file_message_free(&m);
        return -1;
    }
    if (queue_file_writer_finish(w, &m) != 0) {
        int err = errno;
        unlinkat(rl.incoming_fd, id, 0);   /* never committed: nothing to keep */
        queue_file_message_free(&m);
        errno = err;
        return -1;
    }
    queue_file_message_free(&m);
    return 0;
}

void capture_release(struct evhttp_request *req, const struct capture_entry *e)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    json_error_t jerr;
    json_t *body = json_loadb((const char *)evbuffer_pullup(in, (ev_ssize_t)len), len, 0, &jerr);
    json_t *to = body ? json_object_get(body, "to") : NULL;
    if (!json_is_array(to) || json_array_size(to) == 0 || json_array_size(to) > RELEASE_MAX_RCPTS) {
        json_decref(body);
        capture_reply_error(req, 400, "Bad Request", "expected {\"to\": [\"address\", ...]} (1 to 100 addresses)");
        return;
    }
    size_t i;
    json_t *v;
    json_array_foreach(to, i, v) {
        const char *a = json_string_value(v);
        if (!a || !address_ok(a)) {
            json_decref(body);
            capture_reply_error(req, 400, "Bad Request", "every recipient must be a plain address local@domain");
            return;
        }
        int ok = allowed(a);
        if (ok != 1) {
            char *why = ok < 0 ? xstrdup("capture_release_recipients: a table lookup failed; try again")
                        : rl.nliterals + rl.ntables == 0
                            ? xstrdup("releasing is off: list the addresses or domains it may go to in "
                                      "capture_release_recipients")
                            : xasprintf("%s is not in capture_release_recipients", a);
            json_decref(body);
            capture_reply_error(req, ok < 0 ? 503 : 403, ok < 0 ? "Service Unavailable" : "Forbidden", why);
            free(why);
            return;
        }
    }
    struct pending *p = xcalloc(1, sizeof *p);
    str_copy(p->captured, e->id, sizeof p->captured);
    if (open_queue() != 0 || write_copy(e, to, p->id) != 0) {
        log_warn("capture: cannot release %s: %s", e->id, strerror(errno));
        json_decref(body);
        free(p);
        capture_reply_error(req, 503, "Service Unavailable", "cannot hand the message to the queue now");
        return;
    }
    json_decref(body);
    p->req = req;
    p->reqid = ++rl.next_reqid ? rl.next_reqid : ++rl.next_reqid;
    p->next = rl.pending;
    rl.pending = p;
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    if (conn)
        evhttp_connection_set_closecb(conn, forget_request, p);
    struct ipc_msg m;
    ipc_msg_init(&m, IPC_CAPTURE_RELEASE, p->reqid);
    ipc_msg_add(&m, "id", p->id);
    if (ipc_chan_send(rl.queue, &m) != 0) {
        take_pending(p->reqid);
        answer(p, 0, "cannot reach the queue");
    }
    ipc_msg_free(&m);
}

void capture_release_shutdown(void)
{
    struct pending *p;
    while ((p = take_pending(0)) != NULL)
        answer(p, 0, "the server is stopping");
    if (rl.queue)
        ipc_chan_free(rl.queue);
    if (rl.incoming_fd >= 0)
        close(rl.incoming_fd);
    for (size_t i = 0; i < rl.nliterals; i++)
        free(rl.literals[i]);
    free(rl.literals);
    for (size_t i = 0; i < rl.ntables; i++)
        map_close(rl.tables[i]);
    free(rl.tables);
    free(rl.queue_dir);
    memset(&rl, 0, sizeof rl);
    rl.incoming_fd = -1;
}
