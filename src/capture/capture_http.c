/* capture_http: the HTTP API of capture mode (see capture_http.h). */
#include "capture/capture_http.h"

#include <errno.h>
#include <limits.h>
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

#include "capture/capture_json.h"
#include "capture/capture_live.h"
#include "capture/capture_mime.h"
#include "capture/capture_release.h"
#include "capture/capture_rules.h"
#include "capture/capture_store.h"
#include "capture/capture_web.h"
#include "daemon/runtime.h"
#include "util/base64.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

#define CAPTURE_LIST_DEFAULT 50
#define CAPTURE_LIST_MAX 1000
#define CAPTURE_HTTP_HEADERS_MAX 16384
#define CAPTURE_HTTP_BODY_MAX 65536
#define CAPTURE_HTTP_TIMEOUT_S 30       /* reading a request (waits and streams are not cut by it) */

static struct {
    struct evhttp *http;
    char *inbox_domain;
    const struct capture_counters *counters;   /* smtpd's, shared memory; NULL: none */
    uint64_t requests, refused;
} hs;

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

static char *opt_dup(const char *s)
{
    return s && *s ? xstrdup(s) : NULL;
}

/* inbox, from, subject and the cursor parameter (since, after). */
static int read_filter(const struct evkeyvalq *q, struct capture_filter *f, const char *cursor_name)
{
    memset(f, 0, sizeof *f);
    long long after = number_param(q, cursor_name, 0, INT64_MAX);
    if (after < 0)
        return -1;
    f->after = (uint64_t)after;
    f->inbox = opt_dup(evhttp_find_header(q, "inbox"));
    f->from = opt_dup(evhttp_find_header(q, "from"));
    f->subject = opt_dup(evhttp_find_header(q, "subject"));
    return 0;
}

/* ---------- routes ---------- */

static void list_messages(struct evhttp_request *req, const struct evkeyvalq *q)
{
    struct capture_filter f;
    long long limit = number_param(q, "limit", CAPTURE_LIST_DEFAULT, CAPTURE_LIST_MAX);
    if (limit < 0 || read_filter(q, &f, "since") != 0) {
        capture_reply_error(req, 400, "Bad Request", "since and limit must be numbers (limit at most 1000)");
        return;
    }
    json_t *msgs = json_array();
    size_t total = 0;
    for (size_t i = capture_store_count(); i-- > 0;) {
        const struct capture_entry *e = capture_store_at(i);
        if (!capture_filter_match(&f, e))
            continue;
        if (total < (size_t)limit)
            json_array_append_new(msgs, capture_json_summary(e));
        total++;
    }
    capture_filter_free(&f);
    capture_reply_json(req, 200, "OK",
                       json_pack("{s:o, s:I, s:I}", "messages", msgs, "total", (json_int_t)total, "pruned",
                                 (json_int_t)capture_store_stats()->pruned));
}

static void wait_messages(struct evhttp_request *req, const struct evkeyvalq *q)
{
    struct capture_filter f;
    long long count = number_param(q, "count", 1, CAPTURE_LIST_MAX);
    long long timeout = number_param(q, "timeout", 30, CAPTURE_WAIT_MAX_S);
    if (count < 1 || timeout < 0 || read_filter(q, &f, "after") != 0) {
        capture_reply_error(req, 400, "Bad Request", "count (1-1000), timeout (0-600 s) and after must be numbers");
        return;
    }
    capture_live_wait(req, &f, (unsigned)count, (unsigned)timeout);
}

static void event_stream(struct evhttp_request *req, const struct evkeyvalq *q)
{
    struct capture_filter f;
    if (read_filter(q, &f, "last_event_id") != 0) {
        capture_reply_error(req, 400, "Bad Request", "last_event_id must be a cursor");
        return;
    }
    /* EventSource resumes with the last id it saw in this header */
    const char *last = evhttp_find_header(evhttp_request_get_input_headers(req), "Last-Event-ID");
    if (last && *last) {
        char *end;
        unsigned long long c = strtoull(last, &end, 10);
        if (*end == 0)
            f.after = c;
    } else if (!evhttp_find_header(q, "last_event_id")) {
        /* a new stream starts now; a page that listed first passes the
         * newest cursor it showed, so nothing falls between */
        size_t n = capture_store_count();
        f.after = n ? capture_store_at(n - 1)->cursor : 0;
    }
    capture_live_events(req, &f);
}

/* Every inbox with its message count and newest arrival, busiest last
 * seen first. */
static void list_inboxes(struct evhttp_request *req)
{
    json_t *by_name = json_object();
    for (size_t i = capture_store_count(); i-- > 0;) {
        const struct capture_entry *e = capture_store_at(i);
        for (size_t k = 0; k < e->ninbox; k++) {
            json_t *o = json_object_get(by_name, e->inboxes[k]);
            if (!o) {
                /* newest first: the first message seen is the latest */
                json_t *summary = capture_json_summary(e);
                o = json_pack("{s:s, s:I, s:O}", "address", e->inboxes[k], "count", (json_int_t)0, "latest",
                              json_object_get(summary, "received"));
                json_decref(summary);
                json_object_set_new(by_name, e->inboxes[k], o);
            }
            json_object_set_new(o, "count", json_integer(json_integer_value(json_object_get(o, "count")) + 1));
        }
    }
    json_t *a = json_array();
    const char *key;
    json_t *val;
    json_object_foreach(by_name, key, val)
        json_array_append(a, val);
    json_decref(by_name);
    capture_reply_json(req, 200, "OK", json_pack("{s:o}", "inboxes", a));
}

static void get_message(struct evhttp_request *req, const struct capture_entry *e)
{
    char *content;
    size_t len;
    if (capture_store_content(e, &content, &len) != 0) {
        capture_reply_error(req, 500, "Internal Server Error", "cannot read the message");
        return;
    }
    json_t *o = capture_json_message(e, capture_mime_view(content, len, NULL));
    free(content);
    capture_reply_json(req, 200, "OK", o);
}

/* One part, decoded, always as a download: an HTML part opened from here
 * must not run in the page's origin. */
static void get_part(struct evhttp_request *req, const struct capture_entry *e, const char *number)
{
    char *end;
    unsigned long n = strtoul(number, &end, 10);
    char *content;
    size_t len;
    if (*end || n == 0 || n > UINT_MAX) {
        capture_reply_error(req, 404, "Not Found", "no such part");
        return;
    }
    if (capture_store_content(e, &content, &len) != 0) {
        capture_reply_error(req, 500, "Internal Server Error", "cannot read the message");
        return;
    }
    struct capture_mime_part_content part;
    int rc = capture_mime_part(content, len, (unsigned)n, NULL, &part);
    free(content);
    if (rc != 0) {
        capture_reply_error(req, 404, "Not Found", "no such part");
        return;
    }
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, part.data, part.len);
    char *disposition = capture_json_content_disposition(part.filename, (unsigned)n);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", part.content_type);
    evhttp_add_header(h, "Content-Disposition", disposition);
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(h, "Content-Security-Policy", "default-src 'none'; sandbox");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
    free(disposition);
    capture_mime_part_content_free(&part);
}

static void get_raw(struct evhttp_request *req, const struct capture_entry *e)
{
    char *content;
    size_t len;
    if (capture_store_content(e, &content, &len) != 0) {
        capture_reply_error(req, 500, "Internal Server Error", "cannot read the message");
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
    capture_live_deleted(NULL, inbox && *inbox ? inbox : NULL);
    capture_reply_json(req, 200, "OK", json_pack("{s:I}", "deleted", (json_int_t)n));
}

static void delete_message(struct evhttp_request *req, const char *id)
{
    char copy[QUEUE_ID_LEN + 1];
    str_copy(copy, id, sizeof copy);
    capture_store_delete(copy);
    capture_live_deleted(copy, NULL);
    capture_reply_json(req, 200, "OK", json_pack("{s:I}", "deleted", (json_int_t)1));
}

/* n random letters and digits into out (n + 1 bytes); -1 without randomness. */
static int random_word(char *out, size_t n)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char rnd[32];
    if (n > sizeof rnd || getrandom(rnd, n, 0) != (ssize_t)n)
        return -1;
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[rnd[i] % (sizeof alphabet - 1)];   /* 256 % 36: a slight bias, no secret */
    out[n] = 0;
    return 0;
}

/* A fresh inbox: an address no one else uses, and a login for it (the
 * address; any password works while capture_require_auth = no). */
static void new_inbox(struct evhttp_request *req)
{
    char word[17], password[17];
    if (random_word(word, 16) != 0 || random_word(password, 16) != 0) {
        capture_reply_error(req, 500, "Internal Server Error", "no randomness");
        return;
    }
    char *addr = xasprintf("test-%s@%s", word, hs.inbox_domain);
    capture_reply_json(req, 201, "Created",
                       json_pack("{s:s, s:s, s:s}", "address", addr, "login", addr, "password", password));
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
                        "# HELP tern_capture_event_streams Event streams open now.\n"
                        "# TYPE tern_capture_event_streams gauge\n"
                        "tern_capture_event_streams %zu\n"
                        "# HELP tern_capture_http_requests_total HTTP requests served.\n"
                        "# TYPE tern_capture_http_requests_total counter\n"
                        "tern_capture_http_requests_total %llu\n",
                        capture_store_count(), (unsigned long long)st->captured, (unsigned long long)st->pruned,
                        (unsigned long long)st->deleted, capture_live_waiting(), capture_live_streams(),
                        (unsigned long long)hs.requests);
    const struct capture_counters *smtp = hs.counters;
    if (smtp)
        evbuffer_add_printf(b,
                            "# HELP tern_capture_smtp_sessions_total SMTP sessions started.\n"
                            "# TYPE tern_capture_smtp_sessions_total counter\n"
                            "tern_capture_smtp_sessions_total %llu\n"
                            "# HELP tern_capture_smtp_sessions_refused_total Sessions refused by the session failure rate.\n"
                            "# TYPE tern_capture_smtp_sessions_refused_total counter\n"
                            "tern_capture_smtp_sessions_refused_total %llu\n"
                            "# HELP tern_capture_smtp_rejected_total SMTP replies 4xx and 5xx (refused recipients, "
                            "failure rules, limits).\n"
                            "# TYPE tern_capture_smtp_rejected_total counter\n"
                            "tern_capture_smtp_rejected_total %llu\n",
                            (unsigned long long)smtp->sessions, (unsigned long long)smtp->refused_sessions,
                            (unsigned long long)smtp->rejected);
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
        capture_reply_error(req, 500, "Internal Server Error", "the page is not available");
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
        capture_reply_error(req, 404, "Not Found", "no such file");
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
        capture_reply_error(req, 400, "Bad Request", "bad request line");
        return;
    }
    if (!host_allowed(host)) {
        hs.refused++;
        capture_reply_error(req, 403, "Forbidden", "this server answers only to localhost and loopback addresses");
        return;
    }
    if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD && !origin_allowed(req, host)) {
        hs.refused++;
        capture_reply_error(req, 403, "Forbidden", "cross-origin request refused");
        return;
    }
    struct evkeyvalq q;
    TAILQ_INIT(&q);
    if (evhttp_parse_query_str(query ? query : "", &q) != 0) {
        capture_reply_error(req, 400, "Bad Request", "malformed query string");
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
        wait_messages(req, &q);
    } else if (strcmp(path, "/api/v1/events") == 0 && get) {
        event_stream(req, &q);
    } else if (strcmp(path, "/api/v1/inboxes") == 0 && method == EVHTTP_REQ_POST) {
        new_inbox(req);
    } else if (strcmp(path, "/api/v1/inboxes") == 0 && get) {
        list_inboxes(req);
    } else if (strcmp(path, "/metrics") == 0 && get) {
        metrics(req);
    } else if (strcmp(path, "/api/v1/rules") == 0 && get) {
        capture_rules_get(req);
    } else if (strcmp(path, "/api/v1/rules") == 0 && method == EVHTTP_REQ_PUT) {
        capture_rules_put(req);
    } else if (strcmp(path, "/api/v1/rules") == 0 && method == EVHTTP_REQ_DELETE) {
        capture_rules_delete(req);
    } else if (strcmp(path, "/api/v1/openapi.json") == 0 && get) {
        serve_asset(req, "openapi.json");
    } else if (strcmp(path, "/") == 0 && get) {
        serve_page(req);
    } else if (strncmp(path, "/assets/", 8) == 0 && get) {
        serve_asset(req, path + 8);
    } else if (id_after(path, "/api/v1/messages/", id, sizeof id, &rest)) {
        const struct capture_entry *e = capture_store_find(id);
        if (!e)
            capture_reply_error(req, 404, "Not Found", "no such message");
        else if (*rest == 0 && get)
            get_message(req, e);
        else if (*rest == 0 && method == EVHTTP_REQ_DELETE)
            delete_message(req, id);
        else if (strcmp(rest, "/raw") == 0 && get)
            get_raw(req, e);
        else if (strncmp(rest, "/parts/", 7) == 0 && get)
            get_part(req, e, rest + 7);
        else if (strcmp(rest, "/release") == 0 && method == EVHTTP_REQ_POST)
            capture_release(req, e);
        else
            capture_reply_error(req, 404, "Not Found", "no such resource");
    } else {
        capture_reply_error(req, 404, "Not Found", "no such resource");
    }
    evhttp_clear_headers(&q);
}

int capture_http_start(struct event_base *base, int fd, const char *inbox_domain,
                       const struct capture_counters *counters)
{
    hs.counters = counters;
    capture_live_init(base);
    hs.inbox_domain = xstrdup(inbox_domain);
    hs.http = evhttp_new(base);
    if (!hs.http)
        return -1;
    evhttp_set_allowed_methods(hs.http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_DELETE);
    evhttp_set_max_headers_size(hs.http, CAPTURE_HTTP_HEADERS_MAX);
    evhttp_set_max_body_size(hs.http, CAPTURE_HTTP_BODY_MAX);
    evhttp_set_timeout(hs.http, CAPTURE_HTTP_TIMEOUT_S);
    evhttp_set_gencb(hs.http, handle, NULL);
    if (evhttp_accept_socket(hs.http, fd) != 0)
        return -1;
    return 0;
}

void capture_http_arrived(void)
{
    capture_live_arrived();
}

void capture_http_stop(void)
{
    capture_live_shutdown();
    if (hs.http)
        evhttp_free(hs.http);
    free(hs.inbox_domain);
    memset(&hs, 0, sizeof hs);
}
