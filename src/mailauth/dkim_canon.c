/* dkim_canon: canonicalization (RFC 6376 §3.4) of header fields and, as a
 * stream, of the body; the header block split into fields; the header hash. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "mailauth/dkim_internal.h"
#include "util/base64.h"
#include "util/mem.h"
#include "util/str.h"

static int is_wsp(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

void dkim_why(char why[DKIM_REASON_MAX], const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(why, DKIM_REASON_MAX, fmt, ap);
    va_end(ap);
    if (n < 0)
        why[0] = '\0';
    /* Reasons quote input (tag names, values): keep them one printable line
     * of ASCII, since they go into logs and header comments. */
    for (unsigned char *p = (unsigned char *)why; *p; p++)
        if (*p < 0x20 || *p > 0x7e)
            *p = '?';
}

int dkim_b64_decode(const char *s, size_t len, unsigned char *out, size_t max, size_t *outlen)
{
    char buf[DKIM_MAX_TAGLIST];
    size_t n = 0;
    for (size_t k = 0; k < len; k++) {
        unsigned char c = (unsigned char)s[k];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            continue;
        if (n >= sizeof buf)
            return -1;
        buf[n++] = (char)c;
    }
    if (n == 0 || base64_decoded_max(n) > DKIM_MAX_TAGLIST)
        return -1;
    unsigned char tmp[DKIM_MAX_TAGLIST];
    size_t got;
    if (base64_decode(buf, n, tmp, &got) < 0 || got > max)
        return -1;
    memcpy(out, tmp, got);
    *outlen = got;
    return 0;
}

/* ---- header fields ------------------------------------------------------- */

void dkim_canon_header(enum dkim_canon c, const char *field, size_t len, struct strbuf *out)
{
    if (c == DKIM_CANON_SIMPLE) {
        strbuf_append(out, field, len);
        strbuf_append(out, "\r\n", 2);
        return;
    }
    /* Relaxed (§3.4.2): lower-case name, no WSP around the colon, unfolded,
     * WSP runs as one SP, none at the end. */
    size_t k = 0;
    while (k < len && field[k] != ':')
        k++;
    size_t nend = k;
    while (nend > 0 && is_wsp((unsigned char)field[nend - 1]))
        nend--;
    for (size_t j = 0; j < nend; j++)
        strbuf_putc(out, (char)lower((unsigned char)field[j]));
    if (k == len) { /* no colon: not a field, but keep the bytes we have */
        strbuf_append(out, "\r\n", 2);
        return;
    }
    strbuf_putc(out, ':');
    int pending = 0, started = 0;
    for (k++; k < len; k++) {
        unsigned char ch = (unsigned char)field[k];
        if (ch == '\r' && k + 1 < len && field[k + 1] == '\n') {
            k++;
            pending = 1;
            continue;
        }
        if (is_wsp(ch)) {
            pending = 1;
            continue;
        }
        if (pending && started)
            strbuf_putc(out, ' ');
        pending = 0;
        started = 1;
        strbuf_putc(out, (char)ch);
    }
    strbuf_append(out, "\r\n", 2);
}

static size_t name_compares;

size_t dkim_test_name_compares(void)
{
    return name_compares;
}

/* Orders two field names as their lower-case forms, a shorter prefix first. */
static int name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    name_compares++;
    size_t n = alen < blen ? alen : blen;
    for (size_t k = 0; k < n; k++) {
        unsigned char x = lower((unsigned char)a[k]), y = lower((unsigned char)b[k]);
        if (x != y)
            return x < y ? -1 : 1;
    }
    return alen < blen ? -1 : alen > blen;
}

static int by_name_cmp(const void *x, const void *y, void *arg)
{
    const struct dkim_field *f = arg;
    size_t i = *(const size_t *)x, j = *(const size_t *)y;
    int c = name_cmp(f[i].p, f[i].name_len, f[j].p, f[j].name_len);
    return c ? c : i < j ? -1 : i > j;
}

static void index_names(struct dkim_fields *fs)
{
    fs->by_name = xcalloc(fs->n ? fs->n : 1, sizeof *fs->by_name);
    fs->named = 0;
    for (size_t k = 0; k < fs->n; k++)
        if (fs->f[k].name_len > 0)
            fs->by_name[fs->named++] = k;
    qsort_r(fs->by_name, fs->named, sizeof *fs->by_name, by_name_cmp, fs->f);
}

void dkim_fields_named(struct dkim_fields *fs, const char *name, size_t *lo, size_t *hi)
{
    if (fs->by_name == NULL)
        index_names(fs);   /* on first use: a message without signatures never sorts */
    size_t len = strlen(name);
    /* The first entry not below name, then the first above it. */
    size_t a = 0, b = fs->named;
    while (a < b) {
        size_t m = a + (b - a) / 2;
        const struct dkim_field *f = &fs->f[fs->by_name[m]];
        if (name_cmp(f->p, f->name_len, name, len) < 0)
            a = m + 1;
        else
            b = m;
    }
    *lo = a;
    b = fs->named;
    while (a < b) {
        size_t m = a + (b - a) / 2;
        const struct dkim_field *f = &fs->f[fs->by_name[m]];
        if (name_cmp(f->p, f->name_len, name, len) <= 0)
            a = m + 1;
        else
            b = m;
    }
    *hi = a;
}

void dkim_fields_split(const char *hdr, size_t len, struct dkim_fields *out)
{
    out->f = NULL;
    out->n = out->cap = 0;
    size_t k = 0;
    while (k < len) {
        /* One line: up to CRLF (or the end). */
        size_t e = k;
        while (e < len && !(hdr[e] == '\r' && e + 1 < len && hdr[e + 1] == '\n'))
            e++;
        if (e == k)
            break; /* the empty line: the header ends */
        if (is_wsp((unsigned char)hdr[k]) && out->n > 0) {
            struct dkim_field *f = &out->f[out->n - 1];
            f->len = e - (size_t)(f->p - hdr);
        } else {
            out->f = xgrow(out->f, &out->cap, out->n + 1, sizeof *out->f);
            struct dkim_field *f = &out->f[out->n++];
            f->p = hdr + k;
            f->len = e - k;
            size_t c = 0;
            while (c < f->len && f->p[c] != ':')
                c++;
            if (c == f->len) {
                f->name_len = 0;
            } else {
                while (c > 0 && is_wsp((unsigned char)f->p[c - 1]))
                    c--;
                f->name_len = c;
            }
        }
        k = e + 2 > len ? len : e + 2;
    }
    out->by_name = NULL;
    out->named = 0;
}

void dkim_fields_free(struct dkim_fields *fs)
{
    free(fs->f);
    free(fs->by_name);
    fs->f = NULL;
    fs->by_name = NULL;
    fs->n = fs->cap = fs->named = 0;
}

int dkim_field_is(const struct dkim_field *f, const char *name)
{
    name_compares++;
    size_t n = strlen(name);
    if (f->name_len != n || n == 0)
        return 0;
    for (size_t k = 0; k < n; k++)
        if (lower((unsigned char)f->p[k]) != lower((unsigned char)name[k]))
            return 0;
    return 1;
}

void dkim_header_hash(enum dkim_canon c, struct dkim_fields *fs, char *const *h, size_t nh,
                      const char *sigf, size_t sigf_len, size_t b_off, size_t b_len, unsigned char hash[32])
{
    struct strbuf sb = STRBUF_INIT;
    /* Each name takes the last field of that name not yet taken (§5.4.2);
     * a name with none left contributes nothing. A name's fields are taken
     * bottom up, so one cursor per distinct name (its group's start in
     * by_name, and how far down it has been taken) is all the state. */
    struct cursor {
        size_t lo, next;
    } *cur = xcalloc(nh ? nh : 1, sizeof *cur);
    size_t ncur = 0;
    for (size_t j = 0; j < nh; j++) {
        size_t lo, hi, k = 0;
        dkim_fields_named(fs, h[j], &lo, &hi);
        if (lo == hi)
            continue;
        while (k < ncur && cur[k].lo != lo)
            k++;
        if (k == ncur)
            cur[ncur++] = (struct cursor){.lo = lo, .next = hi};
        if (cur[k].next == lo)
            continue;
        const struct dkim_field *f = &fs->f[fs->by_name[--cur[k].next]];
        dkim_canon_header(c, f->p, f->len, &sb);
    }
    free(cur);
    struct strbuf sig = STRBUF_INIT;
    strbuf_append(&sig, sigf, b_off);
    strbuf_append(&sig, sigf + b_off + b_len, sigf_len - b_off - b_len);
    dkim_canon_header(c, sig.len ? sig.buf : "", sig.len, &sb);
    strbuf_free(&sig);
    size_t total = sb.len - 2; /* the signature field goes in without its CRLF */
    unsigned int hl = 32;
    EVP_Digest(sb.buf, total, hash, &hl, EVP_sha256(), NULL);
    strbuf_free(&sb);
}

int dkim_valid_name(const char *s, size_t len)
{
    if (len == 0 || len > 253)
        return 0;
    size_t lab = 0;
    for (size_t k = 0; k < len; k++) {
        unsigned char c = (unsigned char)s[k];
        if (c == '.') {
            if (lab == 0 || s[k - 1] == '-')
                return 0;
            lab = 0;
            continue;
        }
        if (!(str_is_alnum(c) || c == '_' || (c == '-' && lab > 0)))
            return 0;
        if (++lab > 63)
            return 0;
    }
    return lab > 0 && s[len - 1] != '-';
}

/* ---- the body, streamed -------------------------------------------------- */

struct dkim_body {
    enum dkim_canon c;
    EVP_MD_CTX *md;
    struct strbuf *tee;
    unsigned long long pending_crlf; /* empty lines held back */
    int cr;                          /* a CR was the last byte: LF may follow */
    int wsp;                         /* relaxed: WSP held back within a line */
    int line_content;                /* the current line has content */
    int any;                         /* anything emitted at all */
    unsigned char out[4096];
    size_t nout;
};

struct dkim_body *dkim_body_new(enum dkim_canon c)
{
    struct dkim_body *b = xcalloc(1, sizeof *b);
    b->c = c;
    b->md = EVP_MD_CTX_new();
    if (!b->md || EVP_DigestInit_ex(b->md, EVP_sha256(), NULL) != 1)
        abort(); /* out of memory, as xmalloc treats it */
    return b;
}

void dkim_body_tee(struct dkim_body *b, struct strbuf *tee)
{
    b->tee = tee;
}

static void flush(struct dkim_body *b)
{
    if (b->nout == 0)
        return;
    EVP_DigestUpdate(b->md, b->out, b->nout);
    if (b->tee)
        strbuf_append(b->tee, b->out, b->nout);
    b->nout = 0;
}

static void emit(struct dkim_body *b, unsigned char c)
{
    if (b->nout == sizeof b->out)
        flush(b);
    b->out[b->nout++] = c;
}

/* One byte of line content: first the empty lines held back (there is more
 * content after them, so they were not trailing), then a held WSP. */
static void content(struct dkim_body *b, unsigned char c)
{
    if (b->c == DKIM_CANON_RELAXED && is_wsp(c)) {
        b->wsp = 1;
        return;
    }
    for (; b->pending_crlf > 0; b->pending_crlf--) {
        emit(b, '\r');
        emit(b, '\n');
    }
    if (b->wsp) /* a WSP run inside a line (also a leading one) is one SP */
        emit(b, ' ');
    b->wsp = 0;
    b->line_content = 1;
    b->any = 1;
    emit(b, c);
}

static void line_end(struct dkim_body *b)
{
    b->wsp = 0; /* relaxed: WSP at the end of a line goes */
    b->line_content = 0;
    b->pending_crlf++;
}

void dkim_body_update(struct dkim_body *b, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t k = 0; k < len; k++) {
        unsigned char c = p[k];
        if (b->cr) {
            b->cr = 0;
            if (c == '\n') {
                line_end(b);
                continue;
            }
            content(b, '\r');
        }
        if (c == '\r')
            b->cr = 1;
        else
            content(b, c);
    }
}

void dkim_body_final(struct dkim_body *b, unsigned char hash[32])
{
    if (b->cr) {
        b->cr = 0;
        content(b, '\r');
    }
    /* Trailing empty lines are dropped; a last line without CRLF gets one;
     * an empty body is CRLF (simple) or nothing (relaxed). */
    if (b->any || b->c == DKIM_CANON_SIMPLE) {
        emit(b, '\r');
        emit(b, '\n');
    }
    flush(b);
    unsigned int n = 32;
    EVP_DigestFinal_ex(b->md, hash, &n);
}

void dkim_body_free(struct dkim_body *b)
{
    if (!b)
        return;
    EVP_MD_CTX_free(b->md);
    free(b);
}

void dkim_bodies_need(struct dkim_bodies *b, enum dkim_canon c)
{
    if (!b->body[c])
        b->body[c] = dkim_body_new(c);
}

void dkim_bodies_update(struct dkim_bodies *b, const void *data, size_t len)
{
    if (b->ended)
        return;
    for (int c = 0; c < 2; c++)
        if (b->body[c])
            dkim_body_update(b->body[c], data, len);
}

void dkim_bodies_end(struct dkim_bodies *b)
{
    if (b->ended)
        return;
    b->ended = 1;
    for (int c = 0; c < 2; c++)
        if (b->body[c])
            dkim_body_final(b->body[c], b->hash[c]);
}

void dkim_bodies_free(struct dkim_bodies *b)
{
    for (int c = 0; c < 2; c++)
        dkim_body_free(b->body[c]);
    memset(b, 0, sizeof *b);
}
