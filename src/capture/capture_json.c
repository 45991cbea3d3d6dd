/* capture_json: the API's JSON shapes and replies (see capture_json.h). */
#include "capture/capture_json.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "capture/capture_store.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

void capture_reply_json(struct evhttp_request *req, int code, const char *reason, json_t *body)
{
    struct evbuffer *b = evbuffer_new();
    /* ASCII only: \u escapes keep any byte of a message out of the reply's
     * own encoding questions */
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

void capture_reply_error(struct evhttp_request *req, int code, const char *reason, const char *why)
{
    capture_reply_json(req, code, reason, json_pack("{s:s}", "error", why));
}

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

json_t *capture_json_summary(const struct capture_entry *e)
{
    /* a string: JavaScript numbers lose digits past 2^53 */
    char cursor[24];
    snprintf(cursor, sizeof cursor, "%llu", (unsigned long long)e->cursor);
    return json_pack("{s:s, s:s, s:o, s:s, s:o, s:s, s:s, s:o, s:I}", "id", e->id, "cursor", cursor, "inbox",
                     string_array(e->inboxes, e->ninbox), "from", e->from, "to", string_array(e->rcpts, e->nrcpt),
                     "subject", e->subject, "date", e->date, "received", time_json(e->arrival_us), "size",
                     (json_int_t)e->size);
}

json_t *capture_json_auth_results(const struct capture_entry *e)
{
    return opt_string(e->auth_results);
}

json_t *capture_json_envelope(const struct capture_entry *e)
{
    return json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "mail_from", e->sender, "rcpt_to",
                     string_array(e->rcpts, e->nrcpt), "client_address", opt_string(e->client_address),
                     "client_name", opt_string(e->client_name), "helo", opt_string(e->helo), "tls",
                     opt_string(e->tls), "auth_login", opt_string(e->login), "protocol", opt_string(e->protocol));
}

json_t *capture_json_message(const struct capture_entry *e, json_t *view)
{
    json_t *o = capture_json_summary(e);
    json_object_set_new(o, "envelope", capture_json_envelope(e));
    json_object_set_new(o, "authentication_results", capture_json_auth_results(e));
    json_t *addresses = json_object();
    static const char *const address_fields[] = {"from", "to", "cc", "reply_to"};
    for (size_t i = 0; i < sizeof address_fields / sizeof address_fields[0]; i++) {
        json_t *v = json_object_get(view, address_fields[i]);
        if (v)
            json_object_set(addresses, address_fields[i], v);
    }
    json_object_set_new(o, "addresses", addresses);
    const char *key;
    json_t *value;
    json_object_foreach(view, key, value) {
        if (json_object_get(o, key) || json_object_get(addresses, key))
            continue;   /* the summary's own, or moved under addresses */
        json_object_set(o, key, value);
    }
    /* parts and attachments share their objects: one url each */
    json_t *parts = json_object_get(o, "parts");
    size_t i;
    json_t *part;
    json_array_foreach(parts, i, part) {
        char *url = xasprintf("/api/v1/messages/%s/parts/%lld", e->id,
                              (long long)json_integer_value(json_object_get(part, "part")));
        json_object_set_new(part, "url", json_string(url));
        free(url);
    }
    json_decref(view);
    return o;
}

char *capture_json_content_disposition(const char *filename, unsigned n)
{
    if (!filename || !*filename)
        return xasprintf("attachment; filename=\"part-%u\"", n);
    /* filename= for old clients: ASCII letters, digits and . - _ only;
     * filename*= carries the name itself, percent-encoded UTF-8 */
    struct strbuf ascii = STRBUF_INIT, pct = STRBUF_INIT;
    for (const unsigned char *p = (const unsigned char *)filename; *p; p++) {
        int plain = str_is_alnum(*p) || *p == '.' || *p == '-' || *p == '_';
        if (plain || (*p & 0xC0) != 0x80)   /* one '_' per character, not per UTF-8 byte */
            strbuf_putc(&ascii, plain ? (char)*p : '_');
        if (plain)
            strbuf_putc(&pct, (char)*p);
        else
            strbuf_printf(&pct, "%%%02X", *p);
    }
    char *out = xasprintf("attachment; filename=\"%s\"; filename*=UTF-8''%s", strbuf_str(&ascii), strbuf_str(&pct));
    strbuf_free(&ascii);
    strbuf_free(&pct);
    return out;
}
