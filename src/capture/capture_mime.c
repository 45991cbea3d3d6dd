/* capture_mime: see capture_mime.h. The message is parsed with GMime once
 * per call; the walk over its tree (walk_object) is shared by the view and
 * by capture_mime_part, so both number the parts alike. */
#include "capture/capture_mime.h"

#include <gmime/gmime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture/capture_mime_html.h"
#include "capture/capture_mime_scan.h"
#include "capture/capture_mime_text.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

const struct capture_mime_limits capture_mime_default_limits = {
    .max_parts = 1000,
    .max_depth = 32,
    .max_text_bytes = 2 * 1024 * 1024,
    .max_html_bytes = 2 * 1024 * 1024,
    .max_links = 500,
    .max_codes = 20,
    .max_headers = 1000,
    .max_header_value_bytes = 16 * 1024,
    .max_addresses = 1000,
};

/* ---- GMime -------------------------------------------------------------- */

static gsize gmime_ready;

static void gmime_init_once(void)
{
    if (g_once_init_enter(&gmime_ready)) {
        g_mime_init();
        g_once_init_leave(&gmime_ready, 1);
    }
}

void capture_mime_shutdown(void)
{
    if (gmime_ready)
        g_mime_shutdown();
}

struct parsed {
    GMimeStream *stream;
    GMimeParser *parser;
    GMimeParserOptions *options;
    GMimeMessage *message; /* NULL when GMime found no message at all */
};

static void parse(struct parsed *p, const char *msg, size_t len)
{
    gmime_init_once();
    /* Loose on every count: the view is for looking at mail that may be
     * broken, so show what can be made of it rather than nothing. */
    static const char *fallback[] = {"UTF-8", "windows-1252", NULL};
    p->options = g_mime_parser_options_new();
    g_mime_parser_options_set_rfc2047_compliance_mode(p->options, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_parameter_compliance_mode(p->options, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_address_compliance_mode(p->options, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_allow_addresses_without_domain(p->options, TRUE);
    g_mime_parser_options_set_fallback_charsets(p->options, fallback);
    /* The stream keeps its own copy; the parts refer to it, not to msg. */
    p->stream = g_mime_stream_mem_new_with_buffer(msg ? msg : "", msg ? len : 0);
    p->parser = g_mime_parser_new_with_stream(p->stream);
    g_mime_parser_set_format(p->parser, GMIME_FORMAT_MESSAGE);
    p->message = g_mime_parser_construct_message(p->parser, p->options);
}

static void parsed_free(struct parsed *p)
{
    if (p->message)
        g_object_unref(p->message);
    g_object_unref(p->parser);
    g_object_unref(p->stream);
    g_mime_parser_options_free(p->options);
}

/* The content of a leaf with its transfer encoding undone, into sink. */
static void write_content(GMimePart *part, GMimeStream *sink)
{
    GMimeDataWrapper *content = g_mime_part_get_content(part);
    if (content)
        g_mime_data_wrapper_write_to_stream(content, sink);
}

static GByteArray *decoded_content(GMimePart *part)
{
    GByteArray *bytes = g_byte_array_new();
    GMimeStream *mem = g_mime_stream_mem_new_with_byte_array(bytes);
    g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(mem), FALSE);
    write_content(part, mem);
    g_object_unref(mem);
    return bytes;
}

static size_t decoded_size(GMimePart *part)
{
    GMimeStream *null = g_mime_stream_null_new();
    write_content(part, null);
    size_t size = GMIME_STREAM_NULL(null)->written;
    g_object_unref(null);
    return size;
}

/* ---- the walk ------------------------------------------------------------ */

struct leaf {
    GMimePart *part;
    unsigned number;
    int in_message; /* inside an attached message/rfc822 */
};

struct walk {
    const struct capture_mime_limits *lim;
    struct leaf *leaves;
    size_t count, cap;
    int truncated;
};

static void walk_object(struct walk *w, GMimeObject *object, unsigned depth, int in_message)
{
    if (object == NULL)
        return;
    if (GMIME_IS_MULTIPART(object) || GMIME_IS_MESSAGE_PART(object)) {
        if (depth >= w->lim->max_depth) {
            w->truncated = 1;
            return;
        }
        if (GMIME_IS_MESSAGE_PART(object)) {
            GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(object));
            if (inner)
                walk_object(w, g_mime_message_get_mime_part(inner), depth + 1, 1);
            return;
        }
        GMimeMultipart *multipart = GMIME_MULTIPART(object);
        int n = g_mime_multipart_get_count(multipart);
        for (int i = 0; i < n; i++)
            walk_object(w, g_mime_multipart_get_part(multipart, i), depth + 1, in_message);
        return;
    }
    if (!GMIME_IS_PART(object))
        return;
    if (w->count >= w->lim->max_parts) {
        w->truncated = 1;
        return;
    }
    w->leaves = xgrow(w->leaves, &w->cap, w->count + 1, sizeof *w->leaves);
    w->leaves[w->count] = (struct leaf){GMIME_PART(object), (unsigned)w->count + 1, in_message};
    w->count++;
}

static void walk_message(struct walk *w, const struct parsed *p, const struct capture_mime_limits *lim)
{
    memset(w, 0, sizeof *w);
    w->lim = lim;
    if (p->message)
        walk_object(w, g_mime_message_get_mime_part(p->message), 0, 0);
}

/* ---- strings ------------------------------------------------------------- */

/* A JSON string of outside text, cleaned (one line) and cut to max bytes. */
static json_t *json_line(const char *s, size_t max, int *truncated)
{
    struct strbuf sb = STRBUF_INIT;
    if (s && capture_mime_text_clean(&sb, s, strlen(s), CAPTURE_MIME_TEXT_LINE, max))
        *truncated = 1;
    json_t *j = json_stringn(sb.buf ? sb.buf : "", sb.len);
    strbuf_free(&sb);
    return j;
}

static json_t *json_line_or_null(const char *s, size_t max, int *truncated)
{
    return s ? json_line(s, max, truncated) : json_null();
}

/* "type/subtype" in lower case, or application/octet-stream when GMime's
 * reading of it has anything but token characters (it may end up in an
 * HTTP Content-Type header). */
static char *mime_type(GMimeObject *object)
{
    GMimeContentType *ct = g_mime_object_get_content_type(object);
    char *type = ct ? g_mime_content_type_get_mime_type(ct) : NULL;
    int ok = type != NULL && strchr(type, '/') != NULL;
    for (const char *c = type; ok && *c; c++)
        ok = str_is_alnum((unsigned char)*c) || strchr("!#$&^_.+-/", *c) != NULL;
    char *out = xstrdup(ok ? type : "application/octet-stream");
    g_free(type);
    str_lower(out);
    return out;
}

/* ---- the view ------------------------------------------------------------ */

struct view {
    const struct capture_mime_limits *lim;
    json_t *root;
    int truncated;
    struct strbuf text, html;
    int has_text, has_html;
};

struct field {
    GMimeHeader *header;
    gint64 offset;
    size_t index;
};

static int by_offset(const void *a, const void *b)
{
    const struct field *x = a, *y = b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static void collect_fields(GMimeHeaderList *list, struct field **fields, size_t *count, size_t *cap)
{
    int n = list ? g_mime_header_list_get_count(list) : 0;
    for (int i = 0; i < n; i++) {
        *fields = xgrow(*fields, cap, *count + 1, sizeof **fields);
        GMimeHeader *h = g_mime_header_list_get_header_at(list, i);
        (*fields)[*count] = (struct field){h, g_mime_header_get_offset(h), *count};
        (*count)++;
    }
}

/* GMime keeps the Content-* fields of the top level with the body's part,
 * the others with the message; the view lists them as the message has
 * them, so the two lists are merged by their offset in the message. */
static void add_headers(struct view *v, GMimeMessage *message)
{
    struct field *fields = NULL;
    size_t count = 0, cap = 0;
    collect_fields(g_mime_object_get_header_list(GMIME_OBJECT(message)), &fields, &count, &cap);
    GMimeObject *body = g_mime_message_get_mime_part(message);
    if (body)
        collect_fields(g_mime_object_get_header_list(body), &fields, &count, &cap);
    if (count > 1)
        qsort(fields, count, sizeof *fields, by_offset);
    json_t *headers = json_array();
    for (size_t i = 0; i < count; i++) {
        if (i >= v->lim->max_headers) {
            v->truncated = 1;
            break;
        }
        GMimeHeader *h = fields[i].header;
        json_t *entry = json_object();
        json_object_set_new(entry, "name", json_line(g_mime_header_get_name(h), v->lim->max_header_value_bytes,
                                                     &v->truncated));
        json_object_set_new(entry, "value", json_line(g_mime_header_get_value(h),
                                                      v->lim->max_header_value_bytes, &v->truncated));
        json_array_append_new(headers, entry);
    }
    free(fields);
    json_object_set_new(v->root, "headers", headers);
}

static void add_address(struct view *v, json_t *array, InternetAddress *address, int depth)
{
    if (INTERNET_ADDRESS_IS_GROUP(address)) {
        /* Groups do not nest (RFC 5322); one level is all GMime should give. */
        InternetAddressList *members = internet_address_group_get_members(INTERNET_ADDRESS_GROUP(address));
        int n = members && depth == 0 ? internet_address_list_length(members) : 0;
        for (int i = 0; i < n; i++)
            add_address(v, array, internet_address_list_get_address(members, i), depth + 1);
        return;
    }
    if (!INTERNET_ADDRESS_IS_MAILBOX(address))
        return;
    if (json_array_size(array) >= v->lim->max_addresses) {
        v->truncated = 1;
        return;
    }
    json_t *entry = json_object();
    json_object_set_new(entry, "name", json_line(internet_address_get_name(address),
                                                 v->lim->max_header_value_bytes, &v->truncated));
    json_object_set_new(entry, "address",
                        json_line(internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(address)),
                                  v->lim->max_header_value_bytes, &v->truncated));
    json_array_append_new(array, entry);
}

static void add_addresses(struct view *v, const char *key, InternetAddressList *list)
{
    json_t *array = json_array();
    int n = list ? internet_address_list_length(list) : 0;
    for (int i = 0; i < n; i++)
        add_address(v, array, internet_address_list_get_address(list, i), 0);
    json_object_set_new(v->root, key, array);
}

static void add_envelope_fields(struct view *v, GMimeMessage *message)
{
    const size_t max = v->lim->max_header_value_bytes;
    json_object_set_new(v->root, "subject", json_line(message ? g_mime_message_get_subject(message) : "", max,
                                                      &v->truncated));
    json_object_set_new(v->root, "message_id", json_line_or_null(message ? g_mime_message_get_message_id(message)
                                                                         : NULL, max, &v->truncated));
    GDateTime *date = message ? g_mime_message_get_date(message) : NULL;
    if (date) {
        /* By hand, not g_date_time_format: RFC 3339 wants four-digit years. */
        long offset = (long)(g_date_time_get_utc_offset(date) / G_TIME_SPAN_MINUTE);
        char rfc3339[40];
        snprintf(rfc3339, sizeof rfc3339, "%04d-%02d-%02dT%02d:%02d:%02d%c%02ld:%02ld", g_date_time_get_year(date),
                 g_date_time_get_month(date), g_date_time_get_day_of_month(date), g_date_time_get_hour(date),
                 g_date_time_get_minute(date), g_date_time_get_second(date), offset < 0 ? '-' : '+',
                 labs(offset) / 60, labs(offset) % 60);
        json_object_set_new(v->root, "date", json_string(rfc3339));
    } else {
        json_object_set_new(v->root, "date", json_null());
    }
    add_addresses(v, "from", message ? g_mime_message_get_from(message) : NULL);
    add_addresses(v, "to", message ? g_mime_message_get_to(message) : NULL);
    add_addresses(v, "cc", message ? g_mime_message_get_cc(message) : NULL);
    add_addresses(v, "reply_to", message ? g_mime_message_get_reply_to(message) : NULL);
}

/* "inline", "attachment" or NULL; unknown values count as attachment. */
static const char *disposition_of(GMimeObject *object)
{
    const char *d = g_mime_object_get_disposition(object);
    if (d == NULL)
        return NULL;
    return g_ascii_strcasecmp(d, "inline") == 0 ? "inline" : "attachment";
}

/* The leaf is a candidate body of type "text/<subtype>". */
static int is_body(const struct leaf *leaf, const char *subtype)
{
    GMimeObject *object = GMIME_OBJECT(leaf->part);
    GMimeContentType *ct = g_mime_object_get_content_type(object);
    const char *d = disposition_of(object);
    return !leaf->in_message && ct && g_mime_content_type_is_type(ct, "text", subtype) &&
           (d == NULL || strcmp(d, "inline") == 0) && g_mime_part_get_filename(leaf->part) == NULL;
}

/* The decoded body of leaf in UTF-8 into out (at most max bytes); its size
 * before conversion. */
static size_t read_body(struct view *v, const struct leaf *leaf, struct strbuf *out, size_t max)
{
    GByteArray *bytes = decoded_content(leaf->part);
    const char *charset = g_mime_object_get_content_type_parameter(GMIME_OBJECT(leaf->part), "charset");
    const char *data = bytes->len > 0 ? (const char *)bytes->data : "";
    if (capture_mime_text_decode(out, data, bytes->len, charset, CAPTURE_MIME_TEXT_BODY, max))
        v->truncated = 1;
    size_t size = bytes->len;
    g_byte_array_unref(bytes);
    return size;
}

static void add_parts(struct view *v, const struct walk *w)
{
    json_t *parts = json_array(), *attachments = json_array();
    const size_t max = v->lim->max_header_value_bytes;
    for (size_t i = 0; i < w->count; i++) {
        const struct leaf *leaf = &w->leaves[i];
        GMimeObject *object = GMIME_OBJECT(leaf->part);
        size_t size;
        int body = 0;
        if (!v->has_text && is_body(leaf, "plain")) {
            size = read_body(v, leaf, &v->text, v->lim->max_text_bytes);
            v->has_text = body = 1;
        } else if (!v->has_html && is_body(leaf, "html")) {
            size = read_body(v, leaf, &v->html, v->lim->max_html_bytes);
            v->has_html = body = 1;
        } else {
            size = decoded_size(leaf->part);
        }
        const char *filename = g_mime_part_get_filename(leaf->part);
        const char *disposition = disposition_of(object);
        char *type = mime_type(object);
        json_t *entry = json_object();
        json_object_set_new(entry, "part", json_integer(leaf->number));
        json_object_set_new(entry, "content_type", json_string(type));
        json_object_set_new(entry, "filename", json_line_or_null(filename, max, &v->truncated));
        json_object_set_new(entry, "size", json_integer((json_int_t)size));
        json_object_set_new(entry, "disposition", disposition ? json_string(disposition) : json_null());
        json_object_set_new(entry, "content_id",
                            json_line_or_null(g_mime_object_get_content_id(object), max, &v->truncated));
        json_array_append(parts, entry);
        if (!body && ((disposition && strcmp(disposition, "attachment") == 0) || filename))
            json_array_append(attachments, entry);
        json_decref(entry);
        free(type);
    }
    json_object_set_new(v->root, "parts", parts);
    json_object_set_new(v->root, "attachments", attachments);
}

static json_t *json_list(const struct capture_mime_scan_list *list)
{
    json_t *array = json_array();
    for (size_t i = 0; i < list->count; i++)
        json_array_append_new(array, json_string(list->items[i]));
    return array;
}

static void add_links_and_codes(struct view *v, const char *subject)
{
    struct capture_mime_scan_list links, codes;
    capture_mime_scan_list_init(&links, v->lim->max_links);
    capture_mime_scan_list_init(&codes, v->lim->max_codes);
    struct strbuf html_text = STRBUF_INIT;
    if (v->has_text)
        capture_mime_scan_links(&links, v->text.buf ? v->text.buf : "", v->text.len);
    if (v->has_html)
        capture_mime_html_read(v->html.buf ? v->html.buf : "", v->html.len, &html_text, &links);
    const char *sources[] = {subject, v->text.buf, html_text.buf};
    const size_t lens[] = {strlen(subject), v->text.len, html_text.len};
    capture_mime_scan_codes(&codes, sources, lens, 3);
    json_object_set_new(v->root, "links", json_list(&links));
    json_object_set_new(v->root, "codes", json_list(&codes));
    v->truncated |= links.dropped | codes.dropped;
    capture_mime_scan_list_free(&links);
    capture_mime_scan_list_free(&codes);
    strbuf_free(&html_text);
}

json_t *capture_mime_view(const char *msg, size_t len, const struct capture_mime_limits *lim)
{
    struct view v = {.lim = lim ? lim : &capture_mime_default_limits, .root = json_object()};
    struct parsed p;
    parse(&p, msg, len);
    struct walk w;
    walk_message(&w, &p, v.lim);
    v.truncated = w.truncated;

    if (p.message)
        add_headers(&v, p.message);
    else
        json_object_set_new(v.root, "headers", json_array());
    add_envelope_fields(&v, p.message);
    add_parts(&v, &w);
    json_object_set_new(v.root, "text", v.has_text ? json_stringn(v.text.buf ? v.text.buf : "", v.text.len)
                                                   : json_null());
    json_object_set_new(v.root, "html", v.has_html ? json_stringn(v.html.buf ? v.html.buf : "", v.html.len)
                                                   : json_null());
    add_links_and_codes(&v, json_string_value(json_object_get(v.root, "subject")));
    json_object_set_new(v.root, "truncated", json_boolean(v.truncated));

    strbuf_free(&v.text);
    strbuf_free(&v.html);
    free(w.leaves);
    parsed_free(&p);
    return v.root;
}

/* ---- one part ------------------------------------------------------------ */

/* A charset parameter safe to repeat in an HTTP header: token characters. */
static int is_token(const char *s)
{
    if (s == NULL || *s == '\0' || strlen(s) > 64)
        return 0;
    for (; *s; s++)
        if (!str_is_alnum((unsigned char)*s) && strchr("!#$&^_.+-", *s) == NULL)
            return 0;
    return 1;
}

int capture_mime_part(const char *msg, size_t len, unsigned number, const struct capture_mime_limits *lim,
                      struct capture_mime_part_content *out)
{
    memset(out, 0, sizeof *out);
    if (lim == NULL)
        lim = &capture_mime_default_limits;
    struct parsed p;
    parse(&p, msg, len);
    struct walk w;
    walk_message(&w, &p, lim);
    int rc = -1;
    if (number >= 1 && number <= w.count) {
        GMimePart *part = w.leaves[number - 1].part;
        GByteArray *bytes = decoded_content(part);
        out->len = bytes->len;
        out->data = xmalloc(bytes->len + 1);
        if (bytes->len > 0) /* an empty GByteArray has no data at all */
            memcpy(out->data, bytes->data, bytes->len);
        out->data[bytes->len] = '\0';
        g_byte_array_unref(bytes);

        char *type = mime_type(GMIME_OBJECT(part));
        const char *charset = g_mime_object_get_content_type_parameter(GMIME_OBJECT(part), "charset");
        if (strncmp(type, "text/", 5) == 0 && is_token(charset)) {
            out->content_type = xasprintf("%s; charset=%s", type, charset);
            free(type);
        } else {
            out->content_type = type;
        }
        const char *filename = g_mime_part_get_filename(part);
        if (filename) {
            struct strbuf sb = STRBUF_INIT;
            capture_mime_text_clean(&sb, filename, strlen(filename), CAPTURE_MIME_TEXT_LINE,
                                    lim->max_header_value_bytes);
            out->filename = sb.buf ? strbuf_detach(&sb) : xstrdup("");
        }
        rc = 0;
    }
    free(w.leaves);
    parsed_free(&p);
    return rc;
}

void capture_mime_part_content_free(struct capture_mime_part_content *content)
{
    free(content->data);
    free(content->content_type);
    free(content->filename);
    memset(content, 0, sizeof *content);
}
