/* cleanup: header completion and content writing (see cleanup.h). */
#include "msg/cleanup.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "msg/msg_header.h"
#include "msg/rfc5322_addr.h"
#include "spool/queue_file.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

struct cleanup {
    struct queue_file_writer *w;
    struct cleanup_opts o;
    struct strbuf hdr;          /* header section collected so far */
    size_t scanned;             /* hdr bytes already classified as header lines */
    int in_body;
    uint64_t input_size;
    struct cleanup_result res;
};

struct cleanup *cleanup_new(struct queue_file_writer *w, const struct cleanup_opts *o)
{
    struct cleanup *c = xcalloc(1, sizeof *c);
    c->w = w;
    c->o = *o;
    /* The Received: field goes first, before anything the client sent. */
    c->o.received = o->received ? xstrdup(o->received) : NULL;
    c->res.status = CLEANUP_OK;
    return c;
}

static void emit(struct cleanup *c, const void *data, size_t len)
{
    if (c->res.status != CLEANUP_OK || len == 0)
        return;
    if (c->w && queue_file_writer_write(c->w, data, len) != 0) {
        c->res.status = CLEANUP_WRITE_ERROR;
        c->res.error_errno = errno;
        return;
    }
    c->res.size += len;
}

/* A line is at most 998 octets (RFC 5322 2.1.1): a field name, with the
 * white space after it, that runs longer never reaches its colon, so its
 * line is not a field. This also bounds how long an unfinished line can
 * stay undecided between header and body. */
#define FIELD_NAME_SCAN_MAX 998

/* Where the field name at line[0..len) ends: the length of its run of
 * printable characters, then past the white space that obsolete syntax
 * allows before the colon (RFC 5322 4.5); at most FIELD_NAME_SCAN_MAX. */
static size_t field_name_scan(const char *line, size_t len, size_t *name_len)
{
    size_t i = 0;
    if (len > FIELD_NAME_SCAN_MAX)
        len = FIELD_NAME_SCAN_MAX + 1;   /* room for a colon right at the bound */
    while (i < len && i < FIELD_NAME_SCAN_MAX && line[i] != ':' && (unsigned char)line[i] >= 33 &&
           (unsigned char)line[i] <= 126)
        i++;
    *name_len = i;
    while (i < len && i < FIELD_NAME_SCAN_MAX && (line[i] == ' ' || line[i] == '\t'))
        i++;
    return i;
}

static int is_field_line(const char *line, size_t len)
{
    size_t name_len, i = field_name_scan(line, len, &name_len);
    return name_len > 0 && i < len && line[i] == ':';
}

/* An unfinished line (no LF yet) that can no longer become a header field
 * or a continuation: the header ended before it. */
static int partial_is_body(const char *line, size_t len, int first_line)
{
    if (len == 0 || (len == 1 && line[0] == '\r'))
        return 0; /* may still be the empty line */
    if (!first_line && (line[0] == ' ' || line[0] == '\t'))
        return 0;
    size_t name_len, i = field_name_scan(line, len, &name_len);
    if (i == len)
        return name_len == 0; /* still a possible field name */
    return !(name_len > 0 && line[i] == ':');
}

/* Calls fn for each header field of hdr[0..len) with its unfolded value. */
static void each_field(const char *hdr, size_t len,
                       void (*fn)(const char *name, size_t nlen, const char *value, void *arg), void *arg)
{
    size_t pos = 0;
    while (pos < len) {
        size_t start = pos;
        /* field extends over continuation lines */
        const char *eol = memchr(hdr + pos, '\n', len - pos);
        size_t end = eol ? (size_t)(eol - hdr) + 1 : len;
        while (end < len && (hdr[end] == ' ' || hdr[end] == '\t')) {
            eol = memchr(hdr + end, '\n', len - end);
            end = eol ? (size_t)(eol - hdr) + 1 : len;
        }
        pos = end;
        const char *colon = memchr(hdr + start, ':', end - start);
        if (!colon)
            continue;
        struct strbuf v = STRBUF_INIT;
        for (const char *p = colon + 1; p < hdr + end; p++)
            if (*p != '\r' && *p != '\n')
                strbuf_putc(&v, *p);
        fn(hdr + start, (size_t)(colon - (hdr + start)), str_trim(v.buf ? v.buf : (char[]){""}), arg);
        strbuf_free(&v);
    }
}

struct rcpt_extract {
    struct cleanup *c;
    int resent;
};

static void add_rcpts(const char *name, size_t nlen, const char *value, void *arg)
{
    struct rcpt_extract *x = arg;
    static const char *plain[] = {"To", "Cc", "Bcc"}, *resent[] = {"Resent-To", "Resent-Cc", "Resent-Bcc"};
    const char **want = x->resent ? resent : plain;
    int match = 0;
    for (int i = 0; i < 3; i++)
        if (strlen(want[i]) == nlen && strncasecmp(name, want[i], nlen) == 0)
            match = 1;
    if (!match)
        return;
    char **addrs = NULL;
    size_t n = 0;
    rfc5322_addr_list(value, &addrs, &n);
    struct cleanup_result *r = &x->c->res;
    for (size_t i = 0; i < n; i++) {
        char *a = addrs[i];
        /* An address without a domain is qualified with myorigin, as Postfix does. */
        char *q = strchr(a, '@') ? xstrdup(a) : xasprintf("%s@%s", a, x->c->o.myorigin);
        r->rcpts = xrealloc(r->rcpts, (r->nrcpts + 1) * sizeof *r->rcpts);
        r->rcpts[r->nrcpts++] = q;
    }
    rfc5322_addr_list_free(addrs, n);
}

static char *angle_id(const char *field)
{
    const char *lt = strchr(field, '<'), *gt = lt ? strchr(lt, '>') : NULL;
    return gt ? xstrndup(lt + 1, (size_t)(gt - lt - 1)) : NULL;
}

/* The header is complete: write Received, header, missing fields. */
static void flush_header(struct cleanup *c, size_t header_len, int has_separator)
{
    char *h = c->hdr.buf ? c->hdr.buf : (char[]){""};
    struct msg_header_info info;
    memset(&info, 0, sizeof info);
    msg_header_scan(h, header_len, &info);
    c->res.had_from = info.has_from;
    c->res.hops = info.received_count;
    c->res.has_8bit = info.has_8bit;
    if (info.message_id) {
        c->res.message_id = angle_id(info.message_id);
        if (!c->res.message_id)
            c->res.message_id = xstrdup(info.message_id);
    }

    size_t body_off = header_len;
    const struct cleanup_observer *obs = c->o.observer;
    if (obs && obs->header)
        header_len = obs->header(obs->arg, h, header_len);
    if (c->o.extract_recipients) {
        struct rcpt_extract x = {c, info.has_resent};
        each_field(h, header_len, add_rcpts, &x);
        header_len = msg_header_remove_field(h, header_len, "Bcc");
        if (info.has_resent)
            header_len = msg_header_remove_field(h, header_len, "Resent-Bcc");
    }
    /* the content ended inside a header line (BDAT, sendmail): end it
     * before anything is added after it */
    int unterminated = header_len > 0 && h[header_len - 1] != '\n';

    if (c->o.received)
        emit(c, c->o.received, strlen(c->o.received));
    emit(c, h, header_len);
    if (c->o.add_missing_headers) {
        if (unterminated && (!info.has_from || !info.has_date || !info.message_id))
            emit(c, "\r\n", 2);
        if (!info.has_from) {
            /* The null sender's From: still needs a domain (RFC 5322 addr-spec);
             * Postfix writes MAILER-DAEMON@$myhostname. */
            char *daemon = c->o.sender[0] ? NULL : xasprintf("MAILER-DAEMON@%s", c->o.myhostname);
            char *from = msg_header_from(daemon ? daemon : c->o.sender, c->o.full_name);
            if (from)
                emit(c, from, strlen(from));
            free(from);
            free(daemon);
        }
        if (!info.has_date) {
            char *date = msg_header_date(c->o.now);
            emit(c, date, strlen(date));
            free(date);
        }
        if (!info.message_id) {
            char *mid = msg_header_message_id(c->o.queue_id, c->o.myhostname);
            emit(c, mid, strlen(mid));
            free(c->res.message_id);
            c->res.message_id = angle_id(mid);
            free(mid);
        }
    }
    size_t rest = c->hdr.len - body_off;
    const char *body = h + body_off;
    if (!has_separator && rest > 0) {
        /* The body started without the empty line; put one in so its first
         * line cannot be read as a header field. */
        emit(c, "\r\n", 2);
    }
    emit(c, body, rest);
    if (obs && obs->body && c->res.status == CLEANUP_OK) {
        /* the observer's body starts after the empty line */
        size_t skip = 0;
        if (has_separator)
            skip = rest > 0 && body[0] == '\n' ? 1 : (rest > 1 && body[0] == '\r' && body[1] == '\n' ? 2 : 0);
        if (rest > skip)
            obs->body(obs->arg, body + skip, rest - skip);
    }
    msg_header_info_free(&info);
    strbuf_free(&c->hdr);
    c->in_body = 1;
}

/* Looks for the end of the header in the collected bytes; flushes if found. */
static void check_header_end(struct cleanup *c)
{
    const char *h = c->hdr.buf;
    size_t len = c->hdr.len;
    while (c->scanned < len) {
        const char *nl = memchr(h + c->scanned, '\n', len - c->scanned);
        if (!nl)
            break;
        size_t line = c->scanned, eol = (size_t)(nl - h) + 1;
        size_t llen = eol - line;
        int cont = (h[line] == ' ' || h[line] == '\t') && line > 0;
        int ends = (llen <= 2 && (llen == 1 || h[line] == '\r')) || (!cont && !is_field_line(h + line, llen));
        /* The limit applies however the header arrived: it may end in the
         * same write that carried all of it. */
        if (ends && line > c->o.header_size_limit) {
            c->res.status = CLEANUP_HEADER_TOO_BIG;
            return;
        }
        if (llen <= 2 && (llen == 1 || h[line] == '\r')) {
            /* the empty line: header ends, separator kept with the body */
            flush_header(c, line, 1);
            return;
        }
        if (!cont && !is_field_line(h + line, llen)) {
            flush_header(c, line, 0);
            return;
        }
        c->scanned = eol;
    }
    if (h && partial_is_body(h + c->scanned, len - c->scanned, c->scanned == 0)) {
        if (c->scanned > c->o.header_size_limit)
            c->res.status = CLEANUP_HEADER_TOO_BIG;
        else
            flush_header(c, c->scanned, 0);
    }
}

void cleanup_write(struct cleanup *c, const char *data, size_t len)
{
    c->input_size += len;
    if (c->o.message_size_limit && c->input_size > c->o.message_size_limit &&
        c->res.status == CLEANUP_OK)
        c->res.status = CLEANUP_TOO_BIG;
    if (c->res.status != CLEANUP_OK)
        return;
    if (c->in_body) {
        emit(c, data, len);
        if (c->o.observer && c->o.observer->body && c->res.status == CLEANUP_OK)
            c->o.observer->body(c->o.observer->arg, data, len);
        return;
    }
    strbuf_append(&c->hdr, data, len);
    check_header_end(c);
    if (c->in_body || c->res.status != CLEANUP_OK)
        return;
    /* Still in the header: complete lines, and an unfinished one when it is
     * header for sure (a field whose colon came, or a continuation). One that
     * may yet be the empty line or the first body line is not counted, or
     * the outcome would depend on where the input was cut; it stays under
     * FIELD_NAME_SCAN_MAX octets, so memory stays bounded. */
    size_t partial = c->hdr.len - c->scanned;
    const char *p = c->hdr.buf + c->scanned;
    int header_for_sure =
        partial > 0 && (is_field_line(p, partial) || (c->scanned > 0 && (p[0] == ' ' || p[0] == '\t')));
    size_t known = c->scanned + (header_for_sure ? partial : 0);
    if (known > c->o.header_size_limit)
        c->res.status = CLEANUP_HEADER_TOO_BIG;
}

void cleanup_finish(struct cleanup *c, struct cleanup_result *res)
{
    if (!c->in_body && c->res.status == CLEANUP_OK) {
        /* The content ended inside a line: it is part of the header only if
         * it is a header line. */
        const char *p = c->hdr.buf ? c->hdr.buf + c->scanned : "";
        size_t n = c->hdr.len - c->scanned;
        int header_line = n > 0 && (is_field_line(p, n) || (c->scanned > 0 && (p[0] == ' ' || p[0] == '\t')));
        size_t header_len = header_line || n == 0 ? c->hdr.len : c->scanned;
        if (header_len > c->o.header_size_limit)
            c->res.status = CLEANUP_HEADER_TOO_BIG;
        else
            flush_header(c, header_len, header_len == c->hdr.len);
    }
    *res = c->res;
    memset(&c->res, 0, sizeof c->res);
}

void cleanup_free(struct cleanup *c)
{
    if (!c)
        return;
    strbuf_free(&c->hdr);
    free(c->o.received);
    cleanup_result_free(&c->res);
    free(c);
}

void cleanup_result_free(struct cleanup_result *res)
{
    free(res->message_id);
    for (size_t i = 0; i < res->nrcpts; i++)
        free(res->rcpts[i]);
    free(res->rcpts);
    memset(res, 0, sizeof *res);
}
