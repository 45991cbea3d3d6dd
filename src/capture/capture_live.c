/* capture_live: waits and event streams (see capture_live.h). */
#include "capture/capture_live.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdlib.h>
#include <string.h>

#include "capture/capture_json.h"
#include "util/log.h"
#include "util/mem.h"

/* A comment line this often keeps a stream's connection known alive (and
 * finds clients that went away without a word). */
#define CAPTURE_KEEPALIVE_S 15
/* Most messages one wait answer or one stream's catch-up carries. */
#define CAPTURE_LIVE_BATCH 1000

struct wait {
    struct wait *next;
    struct evhttp_request *req;
    struct capture_filter f;
    unsigned count;
    struct event *timer;
};

struct stream {
    struct stream *next;
    struct evhttp_request *req;
    struct capture_filter f;   /* f.after: the last cursor sent */
};

static struct {
    struct event_base *base;
    struct wait *waits;
    size_t nwaits;
    struct stream *streams;
    size_t nstreams;
    uint64_t pruned_seen;
    struct event *keepalive;
} lv;

/* The matching messages after f->after, oldest first, at most max. */
static json_t *matching(const struct capture_filter *f, size_t max, size_t *total)
{
    size_t n = capture_store_count(), first = n;
    *total = 0;
    /* newest first to find where the matches start, then in order */
    while (first > 0 && capture_store_at(first - 1)->cursor > f->after)
        first--;
    json_t *a = json_array();
    for (size_t i = first; i < n; i++) {
        const struct capture_entry *e = capture_store_at(i);
        if (!capture_filter_match(f, e))
            continue;
        if (*total < max)
            json_array_append_new(a, capture_json_summary(e));
        (*total)++;
    }
    return a;
}

/* ---------- waits ---------- */

static void wait_free(struct wait *w)
{
    struct wait **pp = &lv.waits;
    while (*pp && *pp != w)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = w->next;
        lv.nwaits--;
    }
    if (w->timer)
        event_free(w->timer);
    capture_filter_free(&w->f);
    free(w);
}

/* From a connection's close callback: a request the client left before we
 * answered it is detached from its connection by libevent and left for us
 * to free (still attached, the connection frees it). */
static void free_if_detached(struct evhttp_request *req)
{
    if (evhttp_request_get_connection(req) == NULL)
        evhttp_request_free(req);
}

static void forget_connection(struct evhttp_request *req)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    if (conn)
        evhttp_connection_set_closecb(conn, NULL, NULL);
}

/* 1 when the wait was answered (and freed). */
static int wait_try(struct wait *w)
{
    size_t total;
    json_t *msgs = matching(&w->f, CAPTURE_LIVE_BATCH, &total);
    if (total < w->count) {
        json_decref(msgs);
        return 0;
    }
    forget_connection(w->req);
    capture_reply_json(w->req, 200, "OK", json_pack("{s:o, s:I}", "messages", msgs, "total", (json_int_t)total));
    wait_free(w);
    return 1;
}

static void on_wait_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct wait *w = arg;
    forget_connection(w->req);
    size_t total;
    json_t *msgs = matching(&w->f, CAPTURE_LIVE_BATCH, &total);
    capture_reply_json(w->req, 408, "Request Timeout",
                       json_pack("{s:s, s:o, s:I}", "error", "timed out before enough messages arrived", "messages",
                                 msgs, "total", (json_int_t)total));
    wait_free(w);
}

static void on_wait_closed(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    struct wait *w = arg;
    free_if_detached(w->req);   /* the client went away */
    wait_free(w);
}

void capture_live_wait(struct evhttp_request *req, struct capture_filter *f, unsigned count, unsigned timeout_s)
{
    if (lv.nwaits >= CAPTURE_MAX_WAITS) {
        capture_filter_free(f);
        capture_reply_error(req, 503, "Service Unavailable", "too many waiting requests");
        return;
    }
    struct wait *w = xcalloc(1, sizeof *w);
    w->req = req;
    w->f = *f;
    memset(f, 0, sizeof *f);
    w->count = count;
    w->next = lv.waits;
    lv.waits = w;
    lv.nwaits++;
    if (wait_try(w))
        return;
    w->timer = evtimer_new(lv.base, on_wait_timeout, w);
    struct timeval tv = {(time_t)timeout_s, 0};
    evtimer_add(w->timer, &tv);
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    if (conn)
        evhttp_connection_set_closecb(conn, on_wait_closed, w);
}

/* ---------- event streams ---------- */

static void stream_free(struct stream *s)
{
    struct stream **pp = &lv.streams;
    while (*pp && *pp != s)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = s->next;
        lv.nstreams--;
    }
    capture_filter_free(&s->f);
    free(s);
}

static void on_stream_closed(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    struct stream *s = arg;
    free_if_detached(s->req);
    stream_free(s);
}

static void stream_end(struct stream *s)
{
    forget_connection(s->req);
    evhttp_send_reply_end(s->req);
    stream_free(s);
}

/* Queues text on the stream; 0, or -1 when the client reads too slowly
 * (the stream is then ended and freed). */
static int stream_send(struct stream *s, const char *text, size_t len)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(s->req);
    struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
    if (bev && evbuffer_get_length(bufferevent_get_output(bev)) > CAPTURE_STREAM_BACKLOG) {
        log_warn("capture: an event stream's client reads too slowly; closed");
        stream_end(s);
        return -1;
    }
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, text, len);
    evhttp_send_reply_chunk(s->req, b);
    evbuffer_free(b);
    return 0;
}

static int stream_event(struct stream *s, const char *type, const char *id, json_t *data)
{
    char *json = json_dumps(data, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(data);
    char *text = id ? xasprintf("event: %s\nid: %s\ndata: %s\n\n", type, id, json ? json : "{}")
                    : xasprintf("event: %s\ndata: %s\n\n", type, json ? json : "{}");
    free(json);
    int rc = stream_send(s, text, strlen(text));
    free(text);
    return rc;
}

/* Sends what arrived after the stream's last cursor. -1: stream gone. */
static int stream_catch_up(struct stream *s)
{
    size_t n = capture_store_count(), first = n;
    while (first > 0 && capture_store_at(first - 1)->cursor > s->f.after)
        first--;
    if (n - first > CAPTURE_LIVE_BATCH)
        first = n - CAPTURE_LIVE_BATCH;
    for (size_t i = first; i < n; i++) {
        const struct capture_entry *e = capture_store_at(i);
        uint64_t cursor = e->cursor;
        if (capture_filter_match(&s->f, e)) {
            char id[24];
            snprintf(id, sizeof id, "%llu", (unsigned long long)cursor);
            if (stream_event(s, "message", id, capture_json_summary(e)) != 0)
                return -1;
        }
        s->f.after = cursor;
    }
    return 0;
}

void capture_live_events(struct evhttp_request *req, struct capture_filter *f)
{
    if (lv.nstreams >= CAPTURE_MAX_STREAMS) {
        capture_filter_free(f);
        capture_reply_error(req, 503, "Service Unavailable", "too many event streams");
        return;
    }
    struct stream *s = xcalloc(1, sizeof *s);
    s->req = req;
    s->f = *f;
    memset(f, 0, sizeof *f);
    s->next = lv.streams;
    lv.streams = s;
    lv.nstreams++;
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "text/event-stream");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_send_reply_start(req, 200, "OK");
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    if (conn)
        evhttp_connection_set_closecb(conn, on_stream_closed, s);
    /* the browser's EventSource retries after 2 s if the stream breaks */
    static const char hello[] = "retry: 2000\n: tern capture events\n\n";
    if (stream_send(s, hello, sizeof hello - 1) == 0)
        stream_catch_up(s);
}

static void on_keepalive(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    static const char ping[] = ": keepalive\n\n";
    for (struct stream *s = lv.streams, *next; s; s = next) {
        next = s->next;
        stream_send(s, ping, sizeof ping - 1);
    }
}

/* ---------- changes ---------- */

static void tell_pruned(void)
{
    uint64_t pruned = capture_store_stats()->pruned;
    if (pruned == lv.pruned_seen)
        return;
    json_int_t count = (json_int_t)(pruned - lv.pruned_seen);
    lv.pruned_seen = pruned;
    for (struct stream *s = lv.streams, *next; s; s = next) {
        next = s->next;
        stream_event(s, "pruned", NULL, json_pack("{s:I}", "count", count));
    }
}

void capture_live_arrived(void)
{
    for (struct wait *w = lv.waits, *next; w; w = next) {
        next = w->next;
        wait_try(w);
    }
    tell_pruned();
    for (struct stream *s = lv.streams, *next; s; s = next) {
        next = s->next;
        stream_catch_up(s);
    }
}

void capture_live_deleted(const char *id, const char *inbox)
{
    for (struct stream *s = lv.streams, *next; s; s = next) {
        next = s->next;
        json_t *data = id      ? json_pack("{s:s}", "id", id)
                       : inbox ? json_pack("{s:s, s:b}", "inbox", inbox, "all", 1)
                               : json_pack("{s:n, s:b}", "inbox", "all", 1);
        stream_event(s, "deleted", NULL, data);
    }
}

size_t capture_live_waiting(void)
{
    return lv.nwaits;
}

size_t capture_live_streams(void)
{
    return lv.nstreams;
}

void capture_live_init(struct event_base *base)
{
    memset(&lv, 0, sizeof lv);
    lv.base = base;
    lv.pruned_seen = capture_store_stats()->pruned;
    lv.keepalive = event_new(base, -1, EV_PERSIST, on_keepalive, NULL);
    struct timeval tv = {CAPTURE_KEEPALIVE_S, 0};
    event_add(lv.keepalive, &tv);
}

void capture_live_shutdown(void)
{
    while (lv.waits) {
        struct wait *w = lv.waits;
        forget_connection(w->req);
        capture_reply_error(w->req, 503, "Service Unavailable", "the server is stopping");
        wait_free(w);
    }
    while (lv.streams)
        stream_end(lv.streams);
    if (lv.keepalive)
        event_free(lv.keepalive);
    memset(&lv, 0, sizeof lv);
}
