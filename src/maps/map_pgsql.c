/* map_pgsql: the asynchronous PostgreSQL lookup engine (see map_pgsql.h).
 *
 * One table = one connection, driven by libevent: while connecting, each
 * PQconnectPoll step says whether to wait for the socket to be readable or
 * writable (and libpq may switch sockets between addresses, so the event is
 * made afresh after every step); once connected the socket is always
 * watched for reading, so results and a server going away are both seen,
 * and for writing while PQflush has output left. Lookups wait in one list,
 * in order; the first is sent when the connection is ready, the next when
 * its results are all read. Every answer goes through an event made active
 * (finish), so callbacks run from the loop, never from inside a call. */
#include "maps/map_pgsql.h"

#include <ctype.h>
#include <event2/event.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "maps/map_pgsql_cf.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/strbuf.h"

enum conn_state { CONN_NONE, CONN_CONNECTING, CONN_READY };
enum query_state { QUERY_QUEUED, QUERY_SENT, QUERY_DONE };

struct pgsql_query {
    struct pgsql_table *table;
    struct pgsql_query *prev, *next; /* the table's list of live lookups, oldest first */
    enum query_state state;
    char *key; /* folded to lower case */
    pgsql_answer_fn *cb;
    void *arg;
    int cancelled;       /* sent, then cancelled: the answer is dropped when it comes */
    int on_reused_conn;  /* sent on a connection that had answered before */
    int resent;          /* already sent again after its connection broke */
    struct event *timeout_ev;
    struct event *answer_ev;
    int rc;
    char *value, *why;
};

struct pgsql_table {
    struct pgsql_cf *cf;
    struct event_base *base;
    PGconn *conn;
    enum conn_state state;
    size_t host_index;  /* the host being tried or connected to */
    int conn_used;      /* the connection has answered a query */
    struct event *io_ev;
    struct event *timer_ev; /* connect timeout while connecting, idle close when ready */
    struct pgsql_query *head, *tail;
    struct pgsql_query *inflight;
    /* The results of the query in flight. */
    char **fields;
    size_t field_count, field_cap;
    char *query_error;
    /* After every host failed: lookups fail at once until down_until. */
    double down_until;
    char *down_reason;
    char *last_failure;
};

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* libpq's messages end in a newline and may span lines: one line for logs,
 * each run of whitespace one blank. */
static char *one_line(const char *msg)
{
    struct strbuf out = STRBUF_INIT;
    for (const char *p = msg && *msg ? msg : "unknown error"; *p; p++) {
        if (isspace((unsigned char)*p)) {
            if (out.len > 0 && out.buf[out.len - 1] != ' ')
                strbuf_putc(&out, ' ');
        } else {
            strbuf_putc(&out, *p);
        }
    }
    while (out.len > 0 && out.buf[out.len - 1] == ' ')
        out.buf[--out.len] = '\0';
    return strbuf_detach(&out);
}

static const char *host_label(const struct pgsql_table *t)
{
    const struct pgsql_host *h = &t->cf->hosts[t->host_index < t->cf->host_count ? t->host_index : 0];
    return h->uri ? "(URI)" : h->host;
}

/* ---- answers ------------------------------------------------------------- */

static void unlink_query(struct pgsql_query *q)
{
    struct pgsql_table *t = q->table;
    if (q->prev)
        q->prev->next = q->next;
    else
        t->head = q->next;
    if (q->next)
        q->next->prev = q->prev;
    else
        t->tail = q->prev;
    q->prev = q->next = NULL;
}

static void free_query(struct pgsql_query *q)
{
    event_free(q->timeout_ev);
    event_free(q->answer_ev);
    free(q->key);
    free(q->value);
    free(q->why);
    free(q);
}

/* Records the answer and lets the loop deliver it (on_answer). Takes value
 * and why. */
static void finish(struct pgsql_query *q, int rc, char *value, char *why)
{
    if (q->table->inflight == q)
        q->table->inflight = NULL;
    q->state = QUERY_DONE;
    q->rc = rc;
    q->value = value;
    q->why = rc < 0 && !why ? xstrdup("temporary error") : why;
    evtimer_del(q->timeout_ev);
    event_active(q->answer_ev, EV_TIMEOUT, 1);
}

static void on_answer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct pgsql_query *q = arg;
    unlink_query(q);
    q->cb(q->arg, q->rc, q->rc > 0 ? q->value : NULL, q->rc < 0 ? q->why : NULL);
    free_query(q);
}

static void fail_queued(struct pgsql_table *t, const char *why)
{
    for (struct pgsql_query *q = t->head; q; q = q->next)
        if (q->state == QUERY_QUEUED)
            finish(q, -1, NULL, xstrdup(why));
}

static int have_queued(const struct pgsql_table *t)
{
    for (struct pgsql_query *q = t->head; q; q = q->next)
        if (q->state == QUERY_QUEUED)
            return 1;
    return 0;
}

/* ---- the connection ------------------------------------------------------ */

static void on_io(evutil_socket_t fd, short what, void *arg);
static void try_host(struct pgsql_table *t);
static void send_next(struct pgsql_table *t);

/* Watches the connection's current socket for what (EV_READ/EV_WRITE). */
static void watch(struct pgsql_table *t, short what)
{
    if (t->io_ev) {
        event_free(t->io_ev);
        t->io_ev = NULL;
    }
    int fd = PQsocket(t->conn);
    if (fd < 0)
        return;
    t->io_ev = event_new(t->base, fd, (short)(what | EV_PERSIST), on_io, t);
    event_add(t->io_ev, NULL);
}

static void clear_results(struct pgsql_table *t)
{
    for (size_t i = 0; i < t->field_count; i++)
        free(t->fields[i]);
    t->field_count = 0;
    free(t->query_error);
    t->query_error = NULL;
}

static void drop_connection(struct pgsql_table *t)
{
    if (t->io_ev) {
        event_free(t->io_ev);
        t->io_ev = NULL;
    }
    evtimer_del(t->timer_ev);
    if (t->conn)
        PQfinish(t->conn);
    t->conn = NULL;
    t->state = CONN_NONE;
    t->conn_used = 0;
    clear_results(t);
}

static void note_failure(struct pgsql_table *t, const char *msg)
{
    char *line = one_line(msg);
    free(t->last_failure);
    t->last_failure = xasprintf("%s: %s", host_label(t), line);
    free(line);
    log_warn("pgsql:%s: %s", t->cf->path, t->last_failure);
}

static void all_hosts_failed(struct pgsql_table *t)
{
    t->state = CONN_NONE;
    t->down_until = now_seconds() + t->cf->retry_interval;
    free(t->down_reason);
    t->down_reason = xasprintf("pgsql:%s: no database host answered (last: %s)", t->cf->path,
                               t->last_failure ? t->last_failure : "none");
    fail_queued(t, t->down_reason);
}

static void start_connect(struct pgsql_table *t)
{
    if (now_seconds() < t->down_until) {
        fail_queued(t, t->down_reason);
        return;
    }
    t->host_index = 0;
    try_host(t);
}

static void quiet_notices(void *arg, const char *message)
{
    (void)arg;
    (void)message; /* server NOTICEs are not lookup answers */
}

/* Starts connecting to the current host or, when it fails at once, the next. */
static void try_host(struct pgsql_table *t)
{
    const struct pgsql_cf *cf = t->cf;
    for (; t->host_index < cf->host_count; t->host_index++) {
        const struct pgsql_host *h = &cf->hosts[t->host_index];
        const char *keys[8], *values[8];
        int n = 0;
        if (h->uri) {
            keys[n] = "dbname", values[n++] = h->host; /* expanded as a URI */
        } else {
            keys[n] = "host", values[n++] = h->host;
            if (h->port)
                keys[n] = "port", values[n++] = h->port;
            if (cf->user)
                keys[n] = "user", values[n++] = cf->user;
            if (cf->password)
                keys[n] = "password", values[n++] = cf->password;
            if (cf->dbname)
                keys[n] = "dbname", values[n++] = cf->dbname;
        }
        keys[n] = "client_encoding", values[n++] = cf->encoding;
        keys[n] = "fallback_application_name", values[n++] = "tern";
        keys[n] = NULL, values[n] = NULL;
        t->conn = PQconnectStartParams(keys, values, h->uri);
        if (!t->conn) {
            note_failure(t, "out of memory");
            continue;
        }
        if (PQstatus(t->conn) == CONNECTION_BAD) {
            note_failure(t, PQerrorMessage(t->conn));
            drop_connection(t);
            continue;
        }
        t->state = CONN_CONNECTING;
        evtimer_add(t->timer_ev, &(struct timeval){.tv_sec = cf->connect_timeout});
        watch(t, EV_WRITE); /* PQconnectStart's state is "polling, writing" */
        return;
    }
    all_hosts_failed(t);
}

static void connect_step(struct pgsql_table *t)
{
    switch (PQconnectPoll(t->conn)) {
    case PGRES_POLLING_READING:
        watch(t, EV_READ);
        return;
    case PGRES_POLLING_WRITING:
        watch(t, EV_WRITE);
        return;
    case PGRES_POLLING_OK:
        evtimer_del(t->timer_ev);
        t->state = CONN_READY;
        t->conn_used = 0;
        t->down_until = 0;
        PQsetnonblocking(t->conn, 1);
        PQsetNoticeProcessor(t->conn, quiet_notices, NULL);
        log_debug("pgsql:%s: connected to %s", t->cf->path, host_label(t));
        watch(t, EV_READ);
        send_next(t);
        return;
    default:
        note_failure(t, PQerrorMessage(t->conn));
        drop_connection(t);
        t->host_index++;
        try_host(t);
        return;
    }
}

/* The connection failed after it was up. */
static void connection_broken(struct pgsql_table *t, const char *msg)
{
    char *line = one_line(msg);
    char *why = xasprintf("pgsql:%s: %s: %s", t->cf->path, host_label(t), line);
    free(line);
    log_warn("%s", why);
    struct pgsql_query *q = t->inflight;
    t->inflight = NULL;
    drop_connection(t);
    if (q) {
        if (q->cancelled) {
            unlink_query(q);
            free_query(q);
        } else if (q->on_reused_conn && !q->resent) {
            /* The server may have restarted since this connection last
             * answered: once more, on a new connection. */
            q->resent = 1;
            q->state = QUERY_QUEUED;
        } else {
            finish(q, -1, NULL, xstrdup(why));
        }
    }
    free(why);
    if (have_queued(t))
        start_connect(t);
}

/* ---- queries ------------------------------------------------------------- */

static int escape_on_connection(void *arg, struct strbuf *out, const char *text)
{
    size_t len = strlen(text);
    char *buf = xmalloc(2 * len + 1);
    int error = 0;
    PQescapeStringConn(arg, buf, text, len, &error);
    if (!error)
        strbuf_puts(out, buf);
    free(buf);
    return error ? -1 : 0;
}

static void send_next(struct pgsql_table *t)
{
    while (t->state == CONN_READY && !t->inflight) {
        struct pgsql_query *q = t->head;
        while (q && q->state != QUERY_QUEUED)
            q = q->next;
        if (!q) {
            if (t->cf->idle_interval)
                evtimer_add(t->timer_ev, &(struct timeval){.tv_sec = t->cf->idle_interval});
            return;
        }
        evtimer_del(t->timer_ev);
        struct strbuf sql = STRBUF_INIT;
        int rc = pgsql_expand_query(t->cf, q->key, escape_on_connection, t->conn, &sql);
        if (rc <= 0) {
            char *why = rc < 0 ? one_line(PQerrorMessage(t->conn)) : NULL;
            finish(q, rc, NULL, why ? xasprintf("key cannot be queried: %s", why) : NULL);
            free(why);
            strbuf_free(&sql);
            continue;
        }
        q->state = QUERY_SENT;
        q->on_reused_conn = t->conn_used;
        t->inflight = q;
        int sent = PQsendQuery(t->conn, strbuf_str(&sql));
        strbuf_free(&sql);
        int flushed = sent ? PQflush(t->conn) : -1;
        if (flushed < 0) {
            connection_broken(t, PQerrorMessage(t->conn));
            return;
        }
        watch(t, flushed ? (short)(EV_READ | EV_WRITE) : EV_READ);
    }
}

static void collect_fields(struct pgsql_table *t, const PGresult *res)
{
    int rows = PQntuples(res), cols = PQnfields(res);
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < cols; c++) {
            t->fields = xgrow(t->fields, &t->field_cap, t->field_count + 1, sizeof *t->fields);
            t->fields[t->field_count++] = PQgetisnull(res, r, c) ? NULL : xstrdup(PQgetvalue(res, r, c));
        }
    }
}

/* Every result of the query in flight is in: its answer, then the next. */
static void query_complete(struct pgsql_table *t)
{
    struct pgsql_query *q = t->inflight;
    t->inflight = NULL;
    t->conn_used = 1;
    if (q->cancelled) {
        unlink_query(q);
        free_query(q);
    } else if (t->query_error) {
        finish(q, -1, NULL, xasprintf("pgsql:%s: query failed: %s", t->cf->path, t->query_error));
    } else {
        char *value = NULL, *why = NULL;
        int rc = pgsql_format_result(t->cf, q->key, (const char *const *)t->fields, t->field_count,
                                     &value, &why);
        finish(q, rc, value, why);
    }
    clear_results(t);
    send_next(t);
}

static void read_results(struct pgsql_table *t)
{
    while (t->inflight && !PQisBusy(t->conn)) {
        PGresult *res = PQgetResult(t->conn);
        if (!res) {
            query_complete(t);
            return;
        }
        ExecStatusType status = PQresultStatus(res);
        if (status == PGRES_TUPLES_OK)
            collect_fields(t, res);
        else if (status != PGRES_COMMAND_OK && status != PGRES_EMPTY_QUERY && !t->query_error)
            t->query_error = one_line(PQresultErrorMessage(res));
        PQclear(res);
    }
    if (PQstatus(t->conn) == CONNECTION_BAD)
        connection_broken(t, PQerrorMessage(t->conn));
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    struct pgsql_table *t = arg;
    if (t->state == CONN_CONNECTING) {
        connect_step(t);
        return;
    }
    if (what & EV_WRITE) {
        int flushed = PQflush(t->conn);
        if (flushed < 0) {
            connection_broken(t, PQerrorMessage(t->conn));
            return;
        }
        if (flushed == 0)
            watch(t, EV_READ);
    }
    if (what & EV_READ) {
        if (!PQconsumeInput(t->conn)) {
            connection_broken(t, PQerrorMessage(t->conn));
            return;
        }
        read_results(t);
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct pgsql_table *t = arg;
    if (t->state == CONN_CONNECTING) {
        char *msg = xasprintf("no connection within connect_timeout = %u s", t->cf->connect_timeout);
        note_failure(t, msg);
        free(msg);
        drop_connection(t);
        t->host_index++;
        try_host(t);
    } else if (t->state == CONN_READY && !t->inflight) {
        log_debug("pgsql:%s: closing the connection unused for %u s", t->cf->path, t->cf->idle_interval);
        drop_connection(t);
    }
}

static void on_query_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct pgsql_query *q = arg;
    struct pgsql_table *t = q->table;
    char *why = xasprintf("pgsql:%s: no answer within query_timeout = %u s", t->cf->path,
                          t->cf->query_timeout);
    if (q->state == QUERY_SENT) {
        /* The connection is in the middle of this query: start afresh. */
        log_warn("%s", why);
        t->inflight = NULL;
        drop_connection(t);
    }
    if (q->cancelled) {
        unlink_query(q);
        free_query(q);
        free(why);
    } else {
        finish(q, -1, NULL, why);
    }
    if (t->state == CONN_NONE && have_queued(t))
        start_connect(t);
}

/* ---- the API ------------------------------------------------------------- */

struct pgsql_table *pgsql_table_open(const char *cf_path, struct event_base *base, char **err)
{
    struct pgsql_cf *cf = pgsql_cf_read(cf_path, err);
    if (!cf)
        return NULL;
    struct pgsql_table *t = xcalloc(1, sizeof *t);
    t->cf = cf;
    t->base = base;
    t->timer_ev = evtimer_new(base, on_timer, t);
    return t;
}

struct pgsql_query *pgsql_lookup(struct pgsql_table *t, const char *key, pgsql_answer_fn *cb, void *arg)
{
    struct pgsql_query *q = xcalloc(1, sizeof *q);
    q->table = t;
    q->key = xstrdup(key);
    for (char *p = q->key; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    q->cb = cb;
    q->arg = arg;
    q->answer_ev = event_new(t->base, -1, 0, on_answer, q);
    q->timeout_ev = evtimer_new(t->base, on_query_timeout, q);
    q->prev = t->tail;
    if (t->tail)
        t->tail->next = q;
    else
        t->head = q;
    t->tail = q;
    evtimer_add(q->timeout_ev, &(struct timeval){.tv_sec = t->cf->query_timeout});
    int eligible = pgsql_key_eligible(t->cf, q->key);
    if (eligible <= 0) {
        finish(q, eligible, NULL,
               eligible < 0 ? xasprintf("pgsql:%s: a domain table failed", t->cf->path) : NULL);
        return q;
    }
    q->state = QUERY_QUEUED;
    if (t->state == CONN_NONE)
        start_connect(t);
    else if (t->state == CONN_READY)
        send_next(t);
    return q;
}

void pgsql_lookup_cancel(struct pgsql_query *q)
{
    if (q->state == QUERY_SENT) {
        q->cancelled = 1; /* freed when its results or its timeout come */
        return;
    }
    unlink_query(q);
    free_query(q);
}

void pgsql_table_close(struct pgsql_table *t)
{
    if (!t)
        return;
    t->inflight = NULL;
    drop_connection(t);
    while (t->head) {
        struct pgsql_query *q = t->head;
        unlink_query(q);
        free_query(q);
    }
    event_free(t->timer_ev);
    free(t->fields);
    free(t->down_reason);
    free(t->last_failure);
    pgsql_cf_free(t->cf);
    free(t);
}

const char *pgsql_table_path(const struct pgsql_table *t)
{
    return t->cf->path;
}

struct waiter {
    int done, rc;
    char *value, *why;
};

static void wait_answer(void *arg, int rc, const char *value, const char *why)
{
    struct waiter *w = arg;
    w->done = 1;
    w->rc = rc;
    w->value = value ? xstrdup(value) : NULL;
    w->why = why ? xstrdup(why) : NULL;
}

int pgsql_table_lookup_wait(struct pgsql_table *t, const char *key, char **value, char **why)
{
    struct waiter w = {0};
    *value = *why = NULL;
    struct pgsql_query *q = pgsql_lookup(t, key, wait_answer, &w);
    while (!w.done) {
        if (event_base_loop(t->base, EVLOOP_ONCE) < 0) {
            pgsql_lookup_cancel(q);
            *why = xstrdup("the event loop failed");
            return -1;
        }
    }
    *value = w.value;
    *why = w.why;
    return w.rc;
}
