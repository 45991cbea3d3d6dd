/* mime_downgrade: 8-bit to 7-bit MIME conversion (see mime_downgrade.h). */
#include "msg/mime_downgrade.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "util/fsops.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

/* A segment is one line, or a piece of a longer one. SEG_MAX must exceed the
 * longest boundary plus 4 so a delimiter line is always seen whole. */
enum { CHUNK = 65536, SEG_MAX = 4096, OUT_MAX = 65536, BOUNDARY_MAX = 200 };

enum cte { CTE_NONE, CTE_7BIT, CTE_8BIT, CTE_BINARY, CTE_QP, CTE_BASE64, CTE_OTHER };
enum kind { KIND_LEAF, KIND_MULTIPART, KIND_RFC822, KIND_OTHER_MESSAGE };

struct dg {
    int in_fd, out_fd;
    uint64_t end;                 /* end of the message in in_fd */
    unsigned char *win;           /* pread window over in_fd */
    uint64_t win_pos;
    size_t win_len;
    unsigned char *out;           /* pending output */
    size_t out_used;
    uint64_t out_total;
    char bound[MIME_DG_MAX_DEPTH + 1][BOUNDARY_MAX + 1];
    size_t bound_len[MIME_DG_MAX_DEPTH + 1];
    int nbounds;
    const char *why;
    /* quoted-printable encoder */
    int qp_pending;               /* byte waiting to learn whether it ends a line, or -1 */
    bool qp_cr;                   /* a CR waiting to see whether LF follows */
    size_t qp_col;
};

struct region {
    uint64_t smtpd_content_end;         /* before the line break that belongs to the delimiter */
    uint64_t end;                 /* where the delimiter line (or the data) ends it */
    bool has8bit;
    int level;                    /* the boundary whose delimiter ended it, or -1 */
};

struct header {
    uint64_t fields_end;          /* where the fields stop */
    uint64_t body;                /* where the body starts (after the empty line) */
    bool has_sep, has_ct, has_mv, has_cte;
    struct strbuf ct, cte_value;  /* first Content-Type / CTE values, unfolded */
    /* what the values say */
    enum kind kind;
    enum cte cte;
    char boundary[BOUNDARY_MAX + 1];
    size_t blen;                  /* 0: no usable boundary */
    bool digest;
};

static int impossible(struct dg *d, const char *why)
{
    d->why = why;
    return MIME_DG_IMPOSSIBLE;
}

/* ---------------------------------------------------------------------------
 * Input: segments at a position, read through a window so that the scans
 * and the copies that follow them do few system calls. */

static int segment_at(struct dg *d, uint64_t pos, const unsigned char **seg, size_t *n)
{
    *n = 0;
    if (pos >= d->end)
        return 0;
    uint64_t avail = d->end - pos;
    size_t want = avail < SEG_MAX ? (size_t)avail : SEG_MAX;
    if (pos < d->win_pos || pos + want > d->win_pos + d->win_len) {
        size_t fill = avail < CHUNK ? (size_t)avail : CHUNK, got = 0;
        d->win_len = 0;
        while (got < fill) {
            ssize_t r = pread(d->in_fd, d->win + got, fill - got, (off_t)(pos + got));
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0)
                return -1;
            if (r == 0) {
                errno = EIO;
                return -1;
            }
            got += (size_t)r;
        }
        d->win_pos = pos;
        d->win_len = fill;
    }
    const unsigned char *s = d->win + (pos - d->win_pos);
    const unsigned char *lf = memchr(s, '\n', want);
    *seg = s;
    *n = lf ? (size_t)(lf - s) + 1 : want;
    return 0;
}

static bool is_empty_line(const unsigned char *s, size_t n)
{
    return (n == 1 && s[0] == '\n') || (n == 2 && s[0] == '\r' && s[1] == '\n');
}

/* The innermost boundary whose delimiter starts this line, or -1. */
static int delimiter_level(const struct dg *d, const unsigned char *s, size_t n)
{
    if (n < 2 || s[0] != '-' || s[1] != '-')
        return -1;
    for (int i = d->nbounds - 1; i >= 0; i--)
        if (n >= 2 + d->bound_len[i] && memcmp(s + 2, d->bound[i], d->bound_len[i]) == 0)
            return i;
    return -1;
}

/* Reads lines from pos (a line start) to the first delimiter line of a
 * boundary on the stack below stop_below, or the end of the data. */
static int scan_region(struct dg *d, uint64_t pos, int stop_below, struct region *rg)
{
    uint64_t start = pos;
    bool line_start = true, last_cr = false;
    size_t prev_eol = 0;
    rg->has8bit = false;
    rg->level = -1;
    for (;;) {
        const unsigned char *s;
        size_t n;
        if (segment_at(d, pos, &s, &n) < 0)
            return -1;
        if (n == 0)
            break;
        if (line_start && d->nbounds > 0 && (rg->level = delimiter_level(d, s, n)) >= 0) {
            if (rg->level < stop_below)
                break;
            rg->level = -1;
        }
        if (!rg->has8bit)
            rg->has8bit = str_has_8bit(s, n);
        line_start = s[n - 1] == '\n';
        if (line_start)
            prev_eol = (n >= 2 ? s[n - 2] == '\r' : last_cr) ? 2 : 1;
        last_cr = s[n - 1] == '\r';
        pos += n;
    }
    rg->end = pos;
    rg->smtpd_content_end = rg->level >= 0 && pos > start ? pos - prev_eol : pos;
    return 0;
}

/* ---------------------------------------------------------------------------
 * Output */

static int out_flush(struct dg *d)
{
    if (d->out_used > 0 && fsops_write_all(d->out_fd, d->out, d->out_used) < 0)
        return -1;
    d->out_used = 0;
    return 0;
}

/* n is at most SEG_MAX: a segment or a field we add. */
static int out_put(struct dg *d, const void *p, size_t n)
{
    if (d->out_used + n > OUT_MAX && out_flush(d) < 0)
        return -1;
    memcpy(d->out + d->out_used, p, n);
    d->out_used += n;
    d->out_total += n;
    return 0;
}

static int out_field(struct dg *d, const char *name, const char *value)
{
    if (out_put(d, name, strlen(name)) < 0 || out_put(d, ": ", 2) < 0 ||
        out_put(d, value, strlen(value)) < 0)
        return -1;
    return out_put(d, "\r\n", 2);
}

static int copy_raw(struct dg *d, uint64_t pos, uint64_t end)
{
    while (pos < end) {
        const unsigned char *s;
        size_t n;
        if (segment_at(d, pos, &s, &n) < 0)
            return -1;
        if (n > end - pos)
            n = (size_t)(end - pos);
        if (out_put(d, s, n) < 0)
            return -1;
        pos += n;
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * Quoted-printable encoder (RFC 2045 6.7). Each byte is held back until the
 * next one shows whether it ends a line: white space there must be encoded,
 * and the last token of a line may use column 76, where a soft break's '='
 * would otherwise have to go. */

/* At a line start '-' could begin a boundary, '.' an SMTP end of data and
 * 'F' an mbox "From " line; encoding them there costs little. */
static size_t qp_token(int b, bool line_start, bool final, char tok[3])
{
    static const char hex[] = "0123456789ABCDEF";
    bool literal = (b >= 33 && b <= 126 && b != '=') || ((b == ' ' || b == '\t') && !final);
    if (literal && line_start && (b == '.' || b == '-' || b == 'F'))
        literal = false;
    if (literal) {
        tok[0] = (char)b;
        return 1;
    }
    tok[0] = '=';
    tok[1] = hex[(b >> 4) & 15];
    tok[2] = hex[b & 15];
    return 3;
}

static int qp_flush(struct dg *d, bool final)
{
    if (d->qp_pending < 0)
        return 0;
    char tok[3];
    size_t len = qp_token(d->qp_pending, d->qp_col == 0, final, tok);
    if (d->qp_col + len > (final ? 76u : 75u)) {
        if (out_put(d, "=\r\n", 3) < 0)
            return -1;
        d->qp_col = 0;
        len = qp_token(d->qp_pending, true, final, tok);
    }
    d->qp_pending = -1;
    d->qp_col += len;
    return out_put(d, tok, len);
}

static int qp_byte(struct dg *d, int b)
{
    if (qp_flush(d, false) < 0)
        return -1;
    d->qp_pending = b;
    return 0;
}

static int qp_hard_break(struct dg *d)
{
    if (qp_flush(d, true) < 0 || out_put(d, "\r\n", 2) < 0)
        return -1;
    d->qp_col = 0;
    return 0;
}

static int qp_feed(struct dg *d, const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int b = s[i];
        /* A CR not followed by LF is data; a bare LF is a line break. */
        if (d->qp_cr && b != '\n' && qp_byte(d, '\r') < 0)
            return -1;
        d->qp_cr = b == '\r';
        if (!d->qp_cr && (b == '\n' ? qp_hard_break(d) : qp_byte(d, b)) < 0)
            return -1;
    }
    return 0;
}

/* Encodes [pos, smtpd_content_end), then copies the line break and anything up to
 * end as they are. */
static int qp_region(struct dg *d, uint64_t pos, uint64_t smtpd_content_end, uint64_t end)
{
    d->qp_pending = -1;
    d->qp_cr = false;
    d->qp_col = 0;
    while (pos < smtpd_content_end) {
        const unsigned char *s;
        size_t n;
        if (segment_at(d, pos, &s, &n) < 0)
            return -1;
        if (n > smtpd_content_end - pos)
            n = (size_t)(smtpd_content_end - pos);
        if (qp_feed(d, s, n) < 0)
            return -1;
        pos += n;
    }
    if (d->qp_cr && qp_byte(d, '\r') < 0)
        return -1;
    if (qp_flush(d, true) < 0)
        return -1;
    return copy_raw(d, smtpd_content_end, end);
}

static int emit_region(struct dg *d, uint64_t pos, const struct region *rg)
{
    if (rg->has8bit)
        return qp_region(d, pos, rg->smtpd_content_end, rg->end);
    return copy_raw(d, pos, rg->end);
}

/* ---------------------------------------------------------------------------
 * Header fields */

/* The length of the field name when the line is "name:" or "name WSP:", else
 * 0; *value is set to the index after the colon. */
static size_t field_name_len(const unsigned char *s, size_t n, size_t *value)
{
    size_t i = 0;
    while (i < n && s[i] >= 33 && s[i] <= 126 && s[i] != ':')
        i++;
    size_t name = i;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (name == 0 || i >= n || s[i] != ':')
        return 0;
    *value = i + 1;
    return name;
}

static bool name_is(const unsigned char *s, size_t len, const char *name)
{
    return len == strlen(name) && strncasecmp((const char *)s, name, len) == 0;
}

static void append_unfolded(struct strbuf *sb, const unsigned char *s, size_t n)
{
    if (n > 0 && s[n - 1] == '\n')
        n--;
    if (n > 0 && s[n - 1] == '\r')
        n--;
    strbuf_append(sb, s, n);
}

static int parse_header(struct dg *d, uint64_t start, struct header *h)
{
    uint64_t pos = start;
    bool line_start = true, in_field = false;
    struct strbuf *collect = NULL;
    for (;;) {
        const unsigned char *s;
        size_t n, value = 0;
        if (segment_at(d, pos, &s, &n) < 0)
            return -1;
        if (n == 0)
            break;
        if (line_start) {
            if (delimiter_level(d, s, n) >= 0)
                break;
            if (is_empty_line(s, n)) {
                h->fields_end = pos;
                h->body = pos + n;
                h->has_sep = true;
                return 0;
            }
            size_t name = 0;
            bool continuation = s[0] == ' ' || s[0] == '\t';
            if (!continuation)
                name = field_name_len(s, n, &value);
            if (continuation ? !in_field : name == 0) {
                /* The header ends without an empty line; this line is body. */
                if (str_has_8bit(s, n))
                    return impossible(d, "8-bit octets in a header that does not end with an empty line");
                break;
            }
            if (name > 0) {
                in_field = true;
                collect = NULL;
                if (name_is(s, name, "content-type") && !h->has_ct) {
                    h->has_ct = true;
                    collect = &h->ct;
                } else if (name_is(s, name, "content-transfer-encoding") && !h->has_cte) {
                    h->has_cte = true;
                    collect = &h->cte_value;
                } else if (name_is(s, name, "mime-version")) {
                    h->has_mv = true;
                }
            }
        }
        if (str_has_8bit(s, n))
            return impossible(d, "8-bit octets in a message or MIME part header");
        if (collect) {
            append_unfolded(collect, s + value, n - value);
            if (collect->len > MIME_DG_MAX_FIELD)
                return impossible(d, "a MIME header field is too long");
        }
        line_start = s[n - 1] == '\n';
        pos += n;
    }
    h->fields_end = h->body = pos;
    h->has_sep = false;
    return 0;
}

/* Writes the header at [start, h->body), with the CTE label replaced by
 * new_cte (when not NULL) and the missing fields asked for added. */
static int emit_header(struct dg *d, uint64_t start, const struct header *h, const char *new_cte,
                       bool add_mv, bool add_ct)
{
    uint64_t pos = start;
    bool line_start = true, skipping = false, cte_done = false;
    while (new_cte && pos < h->fields_end) {
        const unsigned char *s;
        size_t n, value;
        if (segment_at(d, pos, &s, &n) < 0)
            return -1;
        if (n > h->fields_end - pos)
            n = (size_t)(h->fields_end - pos);
        if (line_start && s[0] != ' ' && s[0] != '\t') {
            size_t name = field_name_len(s, n, &value);
            skipping = name > 0 && name_is(s, name, "content-transfer-encoding");
            if (skipping && !cte_done && out_field(d, "Content-Transfer-Encoding", new_cte) < 0)
                return -1;
            cte_done = cte_done || skipping;
        }
        if (!skipping && out_put(d, s, n) < 0)
            return -1;
        line_start = s[n - 1] == '\n';
        pos += n;
    }
    if (!new_cte && copy_raw(d, start, h->fields_end) < 0)
        return -1;
    if (add_mv && out_field(d, "MIME-Version", "1.0") < 0)
        return -1;
    if (add_ct && out_field(d, "Content-Type", "text/plain; charset=unknown-8bit") < 0)
        return -1;
    bool add_cte = new_cte && !cte_done, added = add_mv || add_ct || add_cte;
    if (add_cte && out_field(d, "Content-Transfer-Encoding", new_cte) < 0)
        return -1;
    /* Without an empty line the body's first line would join the fields. */
    if (added && !h->has_sep && out_put(d, "\r\n", 2) < 0)
        return -1;
    return copy_raw(d, h->fields_end, h->body);
}

/* ---------------------------------------------------------------------------
 * Content-Type and Content-Transfer-Encoding values (RFC 2045 5.1, 6.1) */

static const char *skip_cfws(const char *p)
{
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            p++;
        if (*p != '(')
            return p;
        int depth = 0;
        while (*p) {
            if (*p == '\\' && p[1]) {
                p += 2;
                continue;
            }
            if (*p == '(')
                depth++;
            else if (*p == ')' && --depth == 0) {
                p++;
                break;
            }
            p++;
        }
    }
}

static size_t token_len(const char *p)
{
    size_t n = 0;
    while ((unsigned char)p[n] > 32 && (unsigned char)p[n] < 127 && !strchr("()<>@,;:\\\"/[]?=", p[n]))
        n++;
    return n;
}

static bool token_is(const char *p, size_t len, const char *word)
{
    return len == strlen(word) && strncasecmp(p, word, len) == 0;
}

static enum cte parse_cte(const char *v)
{
    const char *p = skip_cfws(v);
    size_t len = token_len(p);
    static const struct { const char *name; enum cte cte; } names[] = {
        {"7bit", CTE_7BIT}, {"8bit", CTE_8BIT}, {"binary", CTE_BINARY},
        {"quoted-printable", CTE_QP}, {"base64", CTE_BASE64},
    };
    if (len == 0)
        return *p ? CTE_OTHER : CTE_NONE;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (token_is(p, len, names[i].name))
            return names[i].cte;
    return CTE_OTHER;
}

/* Finds the kind and, for a multipart, the boundary (into boundary, "" when
 * there is no usable one). An unparsable type is text/plain (RFC 2045 5.2). */
static enum kind parse_content_type(const char *v, char *boundary, size_t *blen, bool *digest)
{
    *blen = 0;
    boundary[0] = '\0';
    *digest = false;
    const char *p = skip_cfws(v);
    size_t tlen = token_len(p);
    const char *type = p;
    p = skip_cfws(p + tlen);
    if (tlen == 0 || *p != '/')
        return KIND_LEAF;
    p = skip_cfws(p + 1);
    size_t slen = token_len(p);
    if (slen == 0)
        return KIND_LEAF;
    if (token_is(type, tlen, "message"))
        return token_is(p, slen, "rfc822") || token_is(p, slen, "global") ? KIND_RFC822
                                                                             : KIND_OTHER_MESSAGE;
    if (!token_is(type, tlen, "multipart"))
        return KIND_LEAF;
    *digest = token_is(p, slen, "digest");
    p = skip_cfws(p + slen);
    while (*p == ';') {
        p = skip_cfws(p + 1);
        const char *name = p;
        size_t nlen = token_len(p);
        p = skip_cfws(p + nlen);
        if (nlen == 0 || *p != '=')
            break;
        p = skip_cfws(p + 1);
        struct strbuf val = STRBUF_INIT;
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++) {
                if (*p == '\\' && p[1])
                    p++;
                strbuf_putc(&val, *p);
            }
            if (*p == '"')
                p++;
        } else {
            size_t vlen = token_len(p);
            strbuf_append(&val, p, vlen);
            p += vlen;
        }
        bool take = token_is(name, nlen, "boundary");
        if (take && val.len >= 1 && val.len <= BOUNDARY_MAX && !strpbrk(strbuf_str(&val), "\r\n")) {
            memcpy(boundary, val.buf, val.len + 1);
            *blen = val.len;
        }
        strbuf_free(&val);
        if (take)
            break;
        p = skip_cfws(p);
    }
    return KIND_MULTIPART;
}

/* ---------------------------------------------------------------------------
 * Structure */

static int convert_entity(struct dg *d, uint64_t start, bool is_message, bool in_digest, int depth,
                          uint64_t *end);

/* Copies the delimiter line at pos; *close when it is the close delimiter. */
static int copy_delimiter(struct dg *d, uint64_t pos, int level, uint64_t *after, bool *close)
{
    const unsigned char *s;
    size_t n, b = d->bound_len[level];
    bool first = true;
    *close = false;
    do {
        if (segment_at(d, pos, &s, &n) < 0)
            return -1;
        if (n == 0)
            break;
        if (first)
            *close = n >= b + 4 && s[b + 2] == '-' && s[b + 3] == '-';
        first = false;
        if (str_has_8bit(s, n))
            return impossible(d, "8-bit octets in a MIME boundary line");
        if (out_put(d, s, n) < 0)
            return -1;
        pos += n;
    } while (s[n - 1] != '\n');
    *after = pos;
    return 0;
}

static void push_boundary(struct dg *d, const struct header *h)
{
    memcpy(d->bound[d->nbounds], h->boundary, h->blen + 1);
    d->bound_len[d->nbounds++] = h->blen;
}

/* The body of a multipart from pos: preamble, parts, epilogue. *end gets
 * where it stops: an enclosing delimiter, or the end of the data when the
 * close delimiter is missing. */
static int convert_multipart(struct dg *d, uint64_t pos, const struct header *h, int depth, uint64_t *end)
{
    int level = d->nbounds, rc;
    push_boundary(d, h);
    struct region rg;
    if ((rc = scan_region(d, pos, d->nbounds, &rg)) != 0 || (rc = emit_region(d, pos, &rg)) != 0)
        goto out;
    pos = rg.end;
    while (rg.level == level) {
        bool close = false;
        if ((rc = copy_delimiter(d, pos, level, &pos, &close)) != 0)
            goto out;
        if (close) {
            /* The epilogue runs to the enclosing delimiter, even one of ours. */
            d->nbounds = level;
            if ((rc = scan_region(d, pos, d->nbounds, &rg)) == 0)
                rc = emit_region(d, pos, &rg);
            pos = rg.end;
            break;
        }
        if ((rc = convert_entity(d, pos, false, h->digest, depth, &pos)) != 0)
            goto out;
        const unsigned char *s;
        size_t n;
        if ((rc = segment_at(d, pos, &s, &n)) != 0)
            goto out;
        rg.level = n > 0 ? delimiter_level(d, s, n) : -1;
    }
    *end = pos;
out:
    d->nbounds = level;
    return rc;
}

static bool composite_cte_ok(enum cte cte)
{
    return cte == CTE_NONE || cte == CTE_7BIT || cte == CTE_8BIT || cte == CTE_BINARY;
}

static int convert_body(struct dg *d, uint64_t start, const struct header *h, bool is_message, int depth,
                        const struct region *body, uint64_t *end)
{
    const char *relabel = h->cte == CTE_8BIT || h->cte == CTE_BINARY ? "7bit" : NULL;
    bool add_mv = is_message && !h->has_mv;
    int rc;

    *end = body->end;
    if (!body->has8bit) {
        if ((rc = emit_header(d, start, h, relabel, false, false)) != 0)
            return rc;
        return copy_raw(d, h->body, body->end);
    }
    switch (h->kind) {
    case KIND_MULTIPART:
    case KIND_RFC822:
        if (depth >= MIME_DG_MAX_DEPTH)
            return impossible(d, "MIME parts nested too deeply");
        if (!composite_cte_ok(h->cte))
            return impossible(d, "a multipart or message part with an invalid transfer encoding");
        if (h->kind == KIND_MULTIPART && h->blen == 0)
            return impossible(d, "8-bit octets in a multipart without a usable boundary");
        if ((rc = emit_header(d, start, h, relabel, add_mv, false)) != 0)
            return rc;
        if (h->kind == KIND_MULTIPART)
            return convert_multipart(d, h->body, h, depth + 1, end);
        return convert_entity(d, h->body, true, false, depth + 1, end);
    case KIND_OTHER_MESSAGE:
        return impossible(d, "8-bit octets in a message part that cannot be re-encoded");
    case KIND_LEAF:
        break;
    }
    if (!composite_cte_ok(h->cte))
        return impossible(d, "8-bit octets in a part already encoded base64, quoted-printable or unknown");
    if ((rc = emit_header(d, start, h, "quoted-printable", add_mv, !h->has_ct)) != 0)
        return rc;
    return qp_region(d, h->body, body->smtpd_content_end, body->end);
}

/* Converts one entity (header and body) from start to the first enclosing
 * delimiter or the end of the data; *end gets where it stopped. */
static int convert_entity(struct dg *d, uint64_t start, bool is_message, bool in_digest, int depth,
                          uint64_t *end)
{
    struct header h = {.ct = STRBUF_INIT, .cte_value = STRBUF_INIT};
    struct region body;
    int rc = parse_header(d, start, &h);
    if (rc == 0) {
        h.cte = h.has_cte ? parse_cte(strbuf_str(&h.cte_value)) : CTE_NONE;
        h.kind = in_digest ? KIND_RFC822 : KIND_LEAF;
        if (h.has_ct)
            h.kind = parse_content_type(strbuf_str(&h.ct), h.boundary, &h.blen, &h.digest);
        /* With its own boundary open, a line that matches it and an enclosing
         * one as a prefix belongs to the multipart, as it will when its parts
         * are converted (the innermost boundary wins). */
        int stop_below = d->nbounds;
        bool own = h.kind == KIND_MULTIPART && h.blen > 0 && depth < MIME_DG_MAX_DEPTH;
        if (own)
            push_boundary(d, &h);
        rc = scan_region(d, h.body, stop_below, &body);
        d->nbounds = stop_below;
        if (rc == 0)
            rc = convert_body(d, start, &h, is_message, depth, &body, end);
    }
    strbuf_free(&h.ct);
    strbuf_free(&h.cte_value);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Entry points */

static int dg_init(struct dg *d, int in_fd, uint64_t offset, uint64_t length)
{
    memset(d, 0, sizeof *d);
    if (length > (uint64_t)INT64_MAX || offset > (uint64_t)INT64_MAX - length) {
        errno = EOVERFLOW;
        return -1;
    }
    d->in_fd = in_fd;
    d->end = offset + length;
    d->win = xmalloc(CHUNK);
    return 0;
}

int mime_downgrade_has_8bit(int fd, uint64_t offset, uint64_t length)
{
    struct dg d;
    if (dg_init(&d, fd, offset, length) < 0)
        return -1;
    struct region rg;
    int rc = scan_region(&d, offset, 0, &rg);
    int saved = errno;
    free(d.win);
    errno = saved;
    return rc < 0 ? -1 : rg.has8bit;
}

int mime_downgrade(int in_fd, uint64_t offset, uint64_t length, int out_fd, uint64_t *out_len,
                   const char **reason)
{
    struct dg *d = xmalloc(sizeof *d);
    if (dg_init(d, in_fd, offset, length) < 0) {
        free(d);
        return -1;
    }
    d->out_fd = out_fd;
    d->out = xmalloc(OUT_MAX);
    struct region all;
    uint64_t end;
    int rc = scan_region(d, offset, 0, &all);
    if (rc == 0)
        rc = all.has8bit ? convert_entity(d, offset, true, false, 0, &end) : copy_raw(d, offset, d->end);
    if (rc == 0)
        rc = out_flush(d);
    if (rc == 0 && out_len)
        *out_len = d->out_total;
    if (rc == MIME_DG_IMPOSSIBLE && reason)
        *reason = d->why;
    int saved = errno;
    free(d->win);
    free(d->out);
    free(d);
    errno = saved;
    return rc;
}
