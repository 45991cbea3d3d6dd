/* capture_http: the HTTP API of capture mode (see capture_http.h). */
#include "capture/capture_http.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "capture/capture_store.h"
#include "capture/capture_web.h"
#include "util/base64.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

#define CAPTURE_MAX_WAITS 1024          /* parked wait requests */
#define CAPTURE_WAIT_MAX_S 600          /* longest wait a client may ask for */
#define CAPTURE_LIST_DEFAULT 50
#define CAPTURE_LIST_MAX 1000
#define CAPTURE_HTTP_HEADERS_MAX 16384
#define CAPTURE_HTTP_BODY_MAX 65536
#define CAPTURE_HTTP_TIMEOUT_S 30       /* reading a request; waits are not cut by it */

/* What a list or wait selects. */
struct filter {
    const char *inbox, *from, *subject;
    uint64_t after;                /* cursor: only messages after it */
};

struct wait {
    struct wait *next;
    struct evhttp_request *req;
    struct filter f;
    struct evkeyvalq query;        /* owns the filter's strings */
    unsigned count;
    struct event *timer;
};

static struct {
    struct event_base *base;
    struct evhttp *http;
    char *inbox_domain;
    struct wait *waits;
    size_t nwaits;
    uint64_t requests, refused;
} hs;

/* ---------- replies ---------- */

static void reply_json(struct evhttp_request *req, int code, const char *reason, json_t *body)
{
    struct evbuffer *b = evbuffer_new();
    char *text = json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII);
    evbuffer_add_printf(b, "%s\n", text ? text : "{}");
    free(text);
    json_decref(body);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_send_reply(req, code, reason, b);
    evbuffer_free(b);
}

static void reply_error(struct evhttp_request *req, int code, const char *reason, const char *why)
{
    reply_json(req, code, reason, json_pack("{s:s}", "error", why));
}

/* ---------- JSON of an entry ---------- */

static json_t *string_array(char **v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static json_t *opt_string(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *time_json(int64_t us)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    char buf[40];
    gmtime_r(&t, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(buf);
}

static json_t *summary_json(const struct capture_entry *e)
{
    char cursor[24];
    snprintf(cursor, sizeof cursor, "%llu", (unsigned long long)e->cursor);
    return json_pack("{s:s, s:s, s:o, s:s, s:o, s:s, s:s, s:o, s:I}", "id", e->id, "cursor", cursor, "inbox",
                     string_array(e->inboxes, e->ninbox), "from", e->from, "to", string_array(e->rcpts, e->nrcpt),
                     "subject", e->subject, "date", e->date, "received", time_json(e->arrival_us), "size",
                     (json_int_t)e->size);
}

static json_t *envelope_json(const struct capture_entry *e)
{
    return json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "mail_from", e->sender, "rcpt_to",
                     string_array(e->rcpts, e->nrcpt), "client_address", opt_string(e->client_address),
                     "client_name", opt_string(e->client_name), "helo", opt_string(e->helo), "tls",
                     opt_string(e->tls), "auth_login", opt_string(e->login), "protocol", opt_string(e->protocol));
}

/* ---------- selection ---------- */

static int contains_nocase(const char *hay, const char *needle)
{
    return strcasestr(hay, needle) != NULL;
}

static int matches(const struct capture_entry *e, const struct filter *f)
{
    if (e->cursor <= f->after)
        return 0;
    if (f->inbox && *f->inbox && !capture_entry_in_inbox(e, f->inbox))
        return 0;
    if (f->from && *f->from && !contains_nocase(e->from, f->from) && !contains_nocase(e->sender, f->from))
        return 0;
    if (f->subject && *f->subject && !contains_nocase(e->subject, f->subject))
        return 0;
    return 1;
}

/* A number parameter: dflt when absent, -1 when not a number in [0, max]. */
static long long number_param(const struct evkeyvalq *q, const char *name, long long dflt, long long max)
{
    const char *v = evhttp_find_header(q, name);
    if (!v || !*v)
        return dflt;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (*end || errno || v[0] == '-' || n > (unsigned long long)max)
        return -1;
    return (long long)n;
}

static int read_filter(const struct evkeyvalq *q, struct filter *f, const char *cursor_name)
{
    f->inbox = evhttp_find_header(q, "inbox");
    f->from = evhttp_find_header(q, "from");
    f->subject = evhttp_find_header(q, "subject");
    long long after = number_param(q, cursor_name, 0, INT64_MAX);
    if (after < 0)
        return -1;
    f->after = (uint64_t)after;
    return 0;
}

/* The matching messages, newest first, at most limit; *total counts all. */
static json_t *select_json(const struct filter *f, size_t limit, size_t *total)
{
    json_t *a = json_array();
    *total = 0;
    for (size_t i = capture_store_count(); i-- > 0;) {
        const struct capture_entry *e = capture_store_at(i);
        if (!matches(e, f))
            continue;
        if (*total < limit)
            json_array_append_new(a, summary_json(e));
        (*total)++;
    }
    return a;
}

/* ---------- routes ---------- */

static void list_messages(struct evhttp_request *req, const struct evkeyvalq *q)
{
    struct filter f;
    long long limit = number_param(q, "limit", CAPTURE_LIST_DEFAULT, CAPTURE_LIST_MAX);
    if (read_filter(q, &f, "since") != 0 || limit < 0) {
        reply_error(req, 400, "Bad Request", "since and limit must be numbers (limit at most 1000)");
        return;
    }
    size_t total;
    json_t *msgs = select_json(&f, (size_t)limit, &total);
    const struct capture_stats *st = capture_store_stats();
    reply_json(req, 200, "OK",
               json_pack("{s:o, s:I, s:I}", "messages", msgs, "total", (json_int_t)total, "pruned",
                         (json_int_t)st->pruned));
}

static void wait_free(struct wait *w)
{
    struct wait **pp = &hs.waits;
    while (*pp && *pp != w)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = w->next;
        hs.nwaits--;
    }
    if (w->timer)
        event_free(w->timer);
    evhttp_clear_headers(&w->query);
    free(w);
}

/* 1 when the wait was answered (and freed). */
static int wait_try(struct wait *w)
{
    size_t total;
    json_t *msgs = select_json(&w->f, CAPTURE_LIST_MAX, &total);
    if (total < w->count) {
        json_decref(msgs);
        return 0;
    }
    struct evhttp_connection *conn = evhttp_request_get_connection(w->req);
    if (conn)
        evhttp_connection_set_closecb(conn, NULL, NULL);
    reply_json(w->req, 200, "OK", json_pack("{s:o, s:I}", "messages", msgs, "total", (json_int_t)total));
    wait_free(w);
    return 1;
}

static void on_wait_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct wait *w = arg;
    struct evhttp_connection *conn = evhttp_request_get_connection(w->req);
    if (conn)
        evhttp_connection_set_closecb(conn, NULL, NULL);
    size_t total;
    json_t *msgs = select_json(&w->f, CAPTURE_LIST_MAX, &total);
    reply_json(w->req, 408, "Request Timeout",
               json_pack("{s:s, s:o, s:I}", "error", "timed out before enough messages arrived", "messages", msgs,
                         "total", (json_int_t)total));
    wait_free(w);
}

static void on_wait_closed(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    wait_free(arg);   /* the client went away; evhttp frees the request */
}

static void wait_messages(struct evhttp_request *req, const char *query)
{
    if (hs.nwaits >= CAPTURE_MAX_WAITS) {
        reply_error(req, 503, "Service Unavailable", "too many waiting requests");
        return;
    }
    struct wait *w = xcalloc(1, sizeof *w);
    TAILQ_INIT(&w->query);
    w->req = req;
    long long count = -1, timeout = -1;
    if (evhttp_parse_query_str(query ? query : "", &w->query) == 0) {
        count = number_param(&w->query, "count", 1, CAPTURE_LIST_MAX);
        timeout = number_param(&w->query, "timeout", 30, CAPTURE_WAIT_MAX_S);
    }
    if (count < 1 || timeout < 0 || read_filter(&w->query, &w->f, "after") != 0) {
        evhttp_clear_headers(&w->query);
        free(w);
        reply_error(req, 400, "Bad Request", "count (1-1000), timeout (0-600 s) and after must be numbers");
        return;
    }
    w->count = (unsigned)count;
    w->next = hs.waits;
    hs.waits = w;
    hs.nwaits++;
    if (wait_try(w))
        return;
    w->timer = evtimer_new(hs.base, on_wait_timeout, w);
    struct timeval tv = {(time_t)timeout, 0};
    evtimer_add(w->timer, &tv);
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    if (conn)
        evhttp_connection_set_closecb(conn, on_wait_closed, w);
}

void capture_http_arrived(void)
{
    struct wait *w = hs.waits;
    while (w) {
        struct wait *next = w->next;
        wait_try(w);
        w = next;
    }
}

static void get_message(struct evhttp_request *req, const struct capture_entry *e)
{
    json_t *o = summary_json(e);
    json_object_set_new(o, "envelope", envelope_json(e));
    reply_json(req, 200, "OK", o);
}

static void get_raw(struct evhttp_request *req, const struct capture_entry *e)
{
    char *content;
    size_t len;
    if (capture_store_content(e, &content, &len) != 0) {
        reply_error(req, 500, "Internal Server Error", "cannot read the message");
        return;
    }
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, content, len);
    free(content);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    /* text/plain: a browser shows the source and runs nothing in it */
    evhttp_add_header(h, "Content-Type", "text/plain; charset=utf-8");
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(h, "Content-Security-Policy", "default-src 'none'; sandbox");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

static void delete_messages(struct evhttp_request *req, const struct evkeyvalq *q)
{
    const char *inbox = evhttp_find_header(q, "inbox");
    size_t n = 0;
    for (size_t i = capture_store_count(); i-- > 0;) {
        const struct capture_entry *e = capture_store_at(i);
        if (inbox && *inbox && !capture_entry_in_inbox(e, inbox))
            continue;
        char id[sizeof e->id];
        str_copy(id, e->id, sizeof id);
        if (capture_store_delete(id) == 0)
            n++;
    }
    reply_json(req, 200, "OK", json_pack("{s:I}", "deleted", (json_int_t)n));
}

static void new_inbox(struct evhttp_request *req)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char rnd[16];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        reply_error(req, 500, "Internal Server Error", "no randomness");
        return;
    }
    char local[sizeof rnd + 8] = "test-";
    size_t k = strlen(local);
    for (size_t i = 0; i < sizeof rnd; i++)
        local[k++] = alphabet[rnd[i] % (sizeof alphabet - 1)];
    local[k] = 0;
    char *addr = xasprintf("%s@%s", local, hs.inbox_domain);
    reply_json(req, 201, "Created", json_pack("{s:s}", "address", addr));
    free(addr);
}

static void metrics(struct evhttp_request *req)
{
    const struct capture_stats *st = capture_store_stats();
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b,
                        "# HELP tern_capture_messages Messages in the capture store.\n"
                        "# TYPE tern_capture_messages gauge\n"
                        "tern_capture_messages %zu\n"
                        "# HELP tern_capture_captured_total Messages captured since the capture process started.\n"
                        "# TYPE tern_capture_captured_total counter\n"
                        "tern_capture_captured_total %llu\n"
                        "# HELP tern_capture_pruned_total Messages removed by capture_max_messages or capture_max_age.\n"
                        "# TYPE tern_capture_pruned_total counter\n"
                        "tern_capture_pruned_total %llu\n"
                        "# HELP tern_capture_deleted_total Messages deleted through the API.\n"
                        "# TYPE tern_capture_deleted_total counter\n"
                        "tern_capture_deleted_total %llu\n"
                        "# HELP tern_capture_waiting Wait requests parked now.\n"
                        "# TYPE tern_capture_waiting gauge\n"
                        "tern_capture_waiting %zu\n"
                        "# HELP tern_capture_http_requests_total HTTP requests served.\n"
                        "# TYPE tern_capture_http_requests_total counter\n"
                        "tern_capture_http_requests_total %llu\n",
                        capture_store_count(), (unsigned long long)st->captured, (unsigned long long)st->pruned,
                        (unsigned long long)st->deleted, hs.nwaits, (unsigned long long)hs.requests);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain; version=0.0.4");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

/* ---------- the web page ---------- */

/* index.html with a fresh nonce wherever it says {{nonce}}: the CSP then
 * lets only the page's own scripts and styles run (never a message's). */
static void serve_page(struct evhttp_request *req)
{
    const struct capture_asset *a = capture_web_find("index.html");
    unsigned char rnd[16];
    char nonce[32];
    if (!a || getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        reply_error(req, 500, "Internal Server Error", "the page is not available");
        return;
    }
    base64_encode(rnd, sizeof rnd, nonce);
    struct evbuffer *b = evbuffer_new();
    const char *p = (const char *)a->data, *end = p + a->len;
    static const char mark[] = "{{nonce}}";
    while (p < end) {
        const char *m = memmem(p, (size_t)(end - p), mark, sizeof mark - 1);
        if (!m) {
            evbuffer_add(b, p, (size_t)(end - p));
            break;
        }
        evbuffer_add(b, p, (size_t)(m - p));
        evbuffer_add(b, nonce, strlen(nonce));
        p = m + sizeof mark - 1;
    }
    char *csp = xasprintf("default-src 'none'; script-src 'nonce-%s'; style-src 'self' 'nonce-%s'; img-src 'self' data:; "
                          "font-src 'self'; connect-src 'self'; frame-src 'self'; base-uri 'none'; form-action 'none'; "
                          "frame-ancestors 'none'",
                          nonce, nonce);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", a->content_type);
    evhttp_add_header(h, "Content-Security-Policy", csp);
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(h, "Referrer-Policy", "no-referrer");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
    free(csp);
}

static void serve_asset(struct evhttp_request *req, const char *name)
{
    const struct capture_asset *a = strcmp(name, "index.html") == 0 ? NULL : capture_web_find(name);
    if (!a) {
        reply_error(req, 404, "Not Found", "no such file");
        return;
    }
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_reference(b, a->data, a->len, NULL, NULL);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", a->content_type);
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(h, "Cache-Control", "no-cache");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

/* ---------- request checks ---------- */

/* Host names this listener answers to: loopback only, so that a web page
 * whose name an attacker points at 127.0.0.1 (DNS rebinding) is refused. */
static int host_allowed(const char *host)
{
    if (!host)
        return 0;
    char name[256];
    size_t len = strlen(host);
    if (len >= sizeof name)
        return 0;
    memcpy(name, host, len + 1);
    /* strip the port: "[::1]:8025", "127.0.0.1:8025", "localhost:8025" */
    char *colon = name[0] == '[' ? strchr(name, ']') : strrchr(name, ':');
    if (name[0] == '[') {
        if (!colon)
            return 0;
        colon[1] = 0;
        return strcmp(name, "[::1]") == 0;
    }
    if (colon)
        *colon = 0;
    if (strcasecmp(name, "localhost") == 0)
        return 1;
    return strncmp(name, "127.", 4) == 0 && name[4 + strspn(name + 4, "0123456789.")] == 0;
}

/* A browser names the page a state-changing request came from: it must be
 * this server (same host:port as the request's Host). */
static int origin_allowed(struct evhttp_request *req, const char *host)
{
    const char *origin = evhttp_find_header(evhttp_request_get_input_headers(req), "Origin");
    if (!origin)
        return 1;   /* not a browser's cross-site request: curl, a test suite */
    const char *p = strncmp(origin, "http://", 7) == 0 ? origin + 7 : NULL;
    return p && host && strcasecmp(p, host) == 0;
}

static const char *id_after(const char *path, const char *prefix, char *id, size_t idlen, const char **rest)
{
    size_t n = strlen(prefix);
    if (strncmp(path, prefix, n) != 0)
        return NULL;
    const char *s = path + n;
    size_t k = strcspn(s, "/");
    if (k == 0 || k >= idlen)
        return NULL;
    memcpy(id, s, k);
    id[k] = 0;
    *rest = s + k;
    return id;
}

static void handle(struct evhttp_request *req, void *arg)
{
    (void)arg;
    hs.requests++;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    const char *host = evhttp_find_header(evhttp_request_get_input_headers(req), "Host");
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (!path) {
        reply_error(req, 400, "Bad Request", "bad request line");
        return;
    }
    if (!host_allowed(host)) {
        hs.refused++;
        reply_error(req, 403, "Forbidden", "this server answers only to localhost and loopback addresses");
        return;
    }
    if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD && !origin_allowed(req, host)) {
        hs.refused++;
        reply_error(req, 403, "Forbidden", "cross-origin request refused");
        return;
    }
    struct evkeyvalq q;
    TAILQ_INIT(&q);
    if (evhttp_parse_query_str(query ? query : "", &q) != 0) {
        reply_error(req, 400, "Bad Request", "malformed query string");
        return;
    }
    char id[QUEUE_ID_LEN + 2];
    const char *rest = NULL;
    int get = method == EVHTTP_REQ_GET || method == EVHTTP_REQ_HEAD;
    if (strcmp(path, "/api/v1/messages") == 0 && get) {
        list_messages(req, &q);
    } else if (strcmp(path, "/api/v1/messages") == 0 && method == EVHTTP_REQ_DELETE) {
        delete_messages(req, &q);
    } else if (strcmp(path, "/api/v1/wait") == 0 && get) {
        wait_messages(req, query);
    } else if (strcmp(path, "/api/v1/inboxes") == 0 && method == EVHTTP_REQ_POST) {
        new_inbox(req);
    } else if (strcmp(path, "/metrics") == 0 && get) {
        metrics(req);
    } else if (strcmp(path, "/") == 0 && get) {
        serve_page(req);
    } else if (strncmp(path, "/assets/", 8) == 0 && get) {
        serve_asset(req, path + 8);
    } else if (id_after(path, "/api/v1/messages/", id, sizeof id, &rest)) {
        const struct capture_entry *e = capture_store_find(id);
        if (!e)
            reply_error(req, 404, "Not Found", "no such message");
        else if (*rest == 0 && get)
            get_message(req, e);
        else if (*rest == 0 && method == EVHTTP_REQ_DELETE)
            capture_store_delete(id), reply_json(req, 200, "OK", json_pack("{s:I}", "deleted", (json_int_t)1));
        else if (strcmp(rest, "/raw") == 0 && get)
            get_raw(req, e);
        else
            reply_error(req, 404, "Not Found", "no such resource");
    } else {
        reply_error(req, 404, "Not Found", "no such resource");
    }
    evhttp_clear_headers(&q);
}

int capture_http_start(struct event_base *base, int fd, const char *inbox_domain)
{
    hs.base = base;
    hs.inbox_domain = xstrdup(inbox_domain);
    hs.http = evhttp_new(base);
    if (!hs.http)
        return -1;
    evhttp_set_allowed_methods(hs.http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST | EVHTTP_REQ_DELETE);
    evhttp_set_max_headers_size(hs.http, CAPTURE_HTTP_HEADERS_MAX);
    evhttp_set_max_body_size(hs.http, CAPTURE_HTTP_BODY_MAX);
    evhttp_set_timeout(hs.http, CAPTURE_HTTP_TIMEOUT_S);
    evhttp_set_gencb(hs.http, handle, NULL);
    if (evhttp_accept_socket(hs.http, fd) != 0)
        return -1;
    return 0;
}

void capture_http_stop(void)
{
    while (hs.waits) {
        struct wait *w = hs.waits;
        struct evhttp_connection *conn = evhttp_request_get_connection(w->req);
        if (conn)
            evhttp_connection_set_closecb(conn, NULL, NULL);
        reply_error(w->req, 503, "Service Unavailable", "the server is stopping");
        wait_free(w);
    }
    if (hs.http)
        evhttp_free(hs.http);
    free(hs.inbox_domain);
    memset(&hs, 0, sizeof hs);
}
