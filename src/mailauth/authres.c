/* authres: Authentication-Results (RFC 8601): building tern's field,
 * spotting forged ones that claim our authserv-id, parsing one field. See
 * authres.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailauth/authres.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

#define LINE_MAX_COLS 78

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* RFC 2045 token characters: printable ASCII but SPACE and tspecials. */
static int is_token_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && !strchr("()<>@,;:\\\"/[]?=", c);
}

static int is_keyword_char(unsigned char c)
{
    return str_is_alnum(c) || c == '-' || c == '_';
}

int authres_keyword_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > AUTHRES_KEYWORD_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_keyword_char((unsigned char)s[i]))
            return 0;
    return 1;
}

/* ---- writing ---- */

/* A DKIM domain-name (RFC 6376 3.5): LDH labels, no empty one. */
static int is_domain_name(const char *s, size_t len)
{
    size_t label = 0;
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return 0;
            label = 0;
        } else if (str_is_alnum(c) || (c == '-' && label > 0)) {
            label++;
        } else {
            return 0;
        }
    }
    return label > 0 && s[len - 1] != '-';
}

/* How a value is written: 0 bare token, 1 bare [local-part] "@" domain-name
 * (allowed for a pvalue only), 2 quoted-string. */
static int value_form(const char *v, int pvalue)
{
    size_t n = strlen(v);
    int token = n > 0;
    for (size_t i = 0; i < n && token; i++)
        token = is_token_char((unsigned char)v[i]);
    if (token)
        return 0;
    const char *at = strrchr(v, '@');
    if (pvalue && at != NULL) {
        size_t local = (size_t)(at - v);
        if ((local == 0 || str_is_dot_atom(v, local, 0)) && is_domain_name(at + 1, strlen(at + 1)))
            return 1;
    }
    return 2;
}

/* Printable ASCII only, at most AUTHRES_VALUE_MAX bytes (malloc'd). */
static char *safe_text(const char *s)
{
    size_t n = strlen(s);
    if (n > AUTHRES_VALUE_MAX)
        n = AUTHRES_VALUE_MAX;
    char *out = xstrndup(s, n);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] > 0x7e)
            out[i] = '?';
    return out;
}

static void put_value(struct strbuf *sb, const char *raw, int pvalue)
{
    char *v = safe_text(raw);
    if (value_form(v, pvalue) < 2) {
        strbuf_puts(sb, v);
    } else {
        strbuf_putc(sb, '"');
        for (const char *p = v; *p; p++) {
            if (*p == '"' || *p == '\\')
                strbuf_putc(sb, '\\');
            strbuf_putc(sb, *p);
        }
        strbuf_putc(sb, '"');
    }
    free(v);
}

/* Lines under construction: items are appended with a space, or on a new
 * folded line when they would pass LINE_MAX_COLS. */
struct writer {
    struct strbuf out;
    size_t col; /* characters on the current line */
};

static void put_item(struct writer *w, const char *item, size_t len, int first_on_line)
{
    if (!first_on_line) {
        if (w->col + 1 + len > LINE_MAX_COLS) {
            strbuf_puts(&w->out, "\r\n\t");
            w->col = 1;
        } else {
            strbuf_putc(&w->out, ' ');
            w->col++;
        }
    }
    strbuf_append(&w->out, item, len);
    w->col += len;
}

/* A comment's words, each an item, so it folds at its spaces. */
static void put_comment(struct writer *w, const char *text)
{
    char *t = safe_text(text);
    struct strbuf c = STRBUF_INIT;
    strbuf_putc(&c, '(');
    for (const char *p = t; *p; p++) {
        if (*p == '(' || *p == ')' || *p == '\\')
            strbuf_putc(&c, '\\');
        strbuf_putc(&c, *p);
    }
    strbuf_putc(&c, ')');
    free(t);
    /* Split at spaces (never inside a quoted-pair: '\' is escaped above). */
    const char *s = strbuf_str(&c);
    while (*s) {
        while (*s == ' ')
            s++;
        const char *e = s;
        while (*e && *e != ' ')
            e++;
        if (e > s)
            put_item(w, s, (size_t)(e - s), 0);
        s = e;
    }
    strbuf_free(&c);
}

char *authres_build(const char *authserv_id, const struct authres_method *m, size_t n)
{
    if (authserv_id == NULL || *authserv_id == '\0' || n > AUTHRES_MAX_METHODS)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (!authres_keyword_ok(m[i].method) || !authres_keyword_ok(m[i].result) ||
            m[i].nprops > AUTHRES_MAX_PROPS)
            return NULL;
        for (size_t k = 0; k < m[i].nprops; k++)
            if (!authres_keyword_ok(m[i].props[k].ptype) || !authres_keyword_ok(m[i].props[k].property) ||
                m[i].props[k].value == NULL)
                return NULL;
    }
    struct writer w = {STRBUF_INIT, 0};
    struct strbuf item = STRBUF_INIT;
    strbuf_puts(&w.out, "Authentication-Results: ");
    put_value(&w.out, authserv_id, 0);
    strbuf_putc(&w.out, ';');
    if (n == 0) {
        strbuf_puts(&w.out, " none\r\n");
        return strbuf_detach(&w.out);
    }
    for (size_t i = 0; i < n; i++) {
        strbuf_puts(&w.out, "\r\n\t");
        w.col = 1;
        strbuf_reset(&item);
        strbuf_puts(&item, m[i].method);   /* keywords, checked above: no quoting */
        strbuf_putc(&item, '=');
        strbuf_puts(&item, m[i].result);
        put_item(&w, item.buf, item.len, 1);
        if (m[i].comment != NULL && *m[i].comment)
            put_comment(&w, m[i].comment);
        if (m[i].reason != NULL) {
            strbuf_reset(&item);
            strbuf_puts(&item, "reason=");
            put_value(&item, m[i].reason, 0);
            put_item(&w, item.buf, item.len, 0);
        }
        for (size_t k = 0; k < m[i].nprops; k++) {
            const struct authres_prop *p = &m[i].props[k];
            strbuf_reset(&item);
            strbuf_puts(&item, p->ptype);
            strbuf_putc(&item, '.');
            strbuf_puts(&item, p->property);
            strbuf_putc(&item, '=');
            put_value(&item, p->value, 1);
            put_item(&w, item.buf, item.len, 0);
        }
        if (i + 1 < n) {
            strbuf_putc(&w.out, ';');
            w.col++;
        }
    }
    strbuf_puts(&w.out, "\r\n");
    strbuf_free(&item);
    return strbuf_detach(&w.out);
}

/* ---- reading ---- */

struct cur {
    const char *p, *end;
};

/* Skips white space (folding included) and comments, nested to any depth
 * by a counter. 0, or -1 at an unclosed comment. */
static int skip_cfws(struct cur *c)
{
    while (c->p < c->end) {
        char ch = *c->p;
        if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
            c->p++;
        } else if (ch == '(') {
            size_t depth = 0;
            while (c->p < c->end) {
                ch = *c->p++;
                if (ch == '\\' && c->p < c->end)
                    c->p++;
                else if (ch == '(')
                    depth++;
                else if (ch == ')' && --depth == 0)
                    break;
            }
            if (depth != 0)
                return -1;
        } else {
            break;
        }
    }
    return 0;
}

/* A quoted-string at c->p (which is '"'), unescaped, into sb. */
static int read_quoted(struct cur *c, struct strbuf *sb)
{
    c->p++;
    while (c->p < c->end) {
        char ch = *c->p++;
        if (ch == '"')
            return 0;
        if (ch == '\\') {
            if (c->p >= c->end)
                return -1;
            ch = *c->p++;
        } else if (ch == '\r' || ch == '\n') {
            continue; /* folding inside the string: the CRLF goes */
        }
        if (ch == '\0')
            return -1; /* no NUL in a quoted-string (RFC 5322 3.2.4), escaped or not */
        strbuf_putc(sb, ch);
    }
    return -1;
}

/* A value (RFC 2045: token or quoted-string); pvalue also takes the
 * [local-part] "@" domain-name form. Malloc'd, or NULL. */
static char *read_value(struct cur *c, int pvalue)
{
    struct strbuf sb = STRBUF_INIT;
    if (c->p < c->end && *c->p == '"') {
        if (read_quoted(c, &sb) != 0) {
            strbuf_free(&sb);
            return NULL;
        }
        if (!(pvalue && c->p < c->end && *c->p == '@'))
            return strbuf_detach(&sb);
    }
    const char *s = c->p;
    while (c->p < c->end &&
           (is_token_char((unsigned char)*c->p) ||
            (pvalue && (*c->p == '@' || str_is_atext((unsigned char)*c->p))) ||
            (unsigned char)*c->p >= 0x80))
        c->p++;
    strbuf_append(&sb, s, (size_t)(c->p - s));
    if (sb.len == 0) {
        strbuf_free(&sb);
        return NULL;
    }
    return strbuf_detach(&sb);
}

/* A keyword, lower-cased (malloc'd), or NULL. */
static char *read_keyword(struct cur *c)
{
    const char *s = c->p;
    while (c->p < c->end && is_keyword_char((unsigned char)*c->p))
        c->p++;
    size_t n = (size_t)(c->p - s);
    if (n == 0 || n > AUTHRES_KEYWORD_MAX)
        return NULL;
    char *k = xstrndup(s, n);
    for (char *q = k; *q; q++)
        *q = (char)lower((unsigned char)*q);
    return k;
}

static int read_digits(struct cur *c, unsigned *v)
{
    unsigned n = 0;
    const char *s = c->p;
    while (c->p < c->end && str_is_digit((unsigned char)*c->p)) {
        if (n < 100000)
            n = n * 10 + (unsigned)(*c->p - '0');
        c->p++;
    }
    *v = n;
    return c->p > s ? 0 : -1;
}

static int at(struct cur *c, char ch)
{
    return c->p < c->end && *c->p == ch;
}

static void fail(char *err, const struct cur *c, const char *start, const char *what)
{
    if (err != NULL)
        snprintf(err, AUTHRES_ERR_MAX, "%s at offset %zu", what, (size_t)(c->p - start));
}

/* The statements after a method's result: reason= and ptype.property=. */
static int read_props(struct cur *c, struct authres_parsed_method *m, const char **why)
{
    for (;;) {
        if (skip_cfws(c) != 0) {
            *why = "unclosed comment";
            return -1;
        }
        if (c->p >= c->end || *c->p == ';')
            return 0;
        char *k = read_keyword(c);
        if (k == NULL) {
            *why = "expected a property";
            return -1;
        }
        if (skip_cfws(c) != 0) {
            free(k);
            *why = "unclosed comment";
            return -1;
        }
        if (strcmp(k, "reason") == 0 && at(c, '=') && m->reason == NULL && m->nprops == 0) {
            free(k);
            c->p++;
            if (skip_cfws(c) != 0 || (m->reason = read_value(c, 0)) == NULL) {
                *why = "bad reason value";
                return -1;
            }
            continue;
        }
        if (!at(c, '.')) {
            free(k);
            *why = "expected '.' after a ptype";
            return -1;
        }
        c->p++;
        char *prop = NULL, *val = NULL;
        if (skip_cfws(c) == 0)
            prop = read_keyword(c);
        if (prop != NULL && skip_cfws(c) == 0 && at(c, '=')) {
            c->p++;
            if (skip_cfws(c) == 0)
                val = read_value(c, 1);
        }
        if (prop == NULL || val == NULL || m->nprops >= AUTHRES_MAX_PROPS) {
            free(k);
            free(prop);
            free(val);
            *why = prop == NULL ? "expected a property name" : val == NULL ? "bad property value" : "too many properties";
            return -1;
        }
        if (m->nprops == 0)
            m->props = xcalloc(AUTHRES_MAX_PROPS, sizeof *m->props);
        m->props[m->nprops++] = (struct authres_parsed_prop){k, prop, val};
    }
}

int authres_parse(const char *value, size_t len, struct authres_parsed *out, char *err)
{
    memset(out, 0, sizeof *out);
    struct cur c = {value, value + len};
    const char *why = NULL;
    if (value == NULL || len > AUTHRES_FIELD_MAX) {
        if (err != NULL)
            snprintf(err, AUTHRES_ERR_MAX, "field longer than %d bytes", AUTHRES_FIELD_MAX);
        return -1;
    }
    out->version = 1;
    if (skip_cfws(&c) != 0 || (out->authserv_id = read_value(&c, 0)) == NULL) {
        why = "expected an authserv-id";
        goto bad;
    }
    if (skip_cfws(&c) != 0) {
        why = "unclosed comment";
        goto bad;
    }
    if (c.p < c.end && str_is_digit((unsigned char)*c.p)) {
        read_digits(&c, &out->version);
        if (skip_cfws(&c) != 0) {
            why = "unclosed comment";
            goto bad;
        }
    }
    if (!at(&c, ';')) {
        why = "expected ';' after the authserv-id";
        goto bad;
    }
    while (at(&c, ';')) {
        c.p++;
        if (skip_cfws(&c) != 0) {
            why = "unclosed comment";
            goto bad;
        }
        if (c.p >= c.end && out->nmethods > 0)
            break; /* a trailing ';' (lenient) */
        char *method = read_keyword(&c);
        if (method == NULL) {
            why = "expected a method";
            goto bad;
        }
        if (skip_cfws(&c) != 0) {
            free(method);
            why = "unclosed comment";
            goto bad;
        }
        if (strcmp(method, "none") == 0 && out->nmethods == 0 && c.p >= c.end) {
            free(method);
            out->none = 1;
            return 0;
        }
        if (out->nmethods >= AUTHRES_MAX_METHODS) {
            free(method);
            why = "too many methods";
            goto bad;
        }
        if (out->nmethods == 0)
            out->methods = xcalloc(AUTHRES_MAX_METHODS, sizeof *out->methods);
        struct authres_parsed_method *m = &out->methods[out->nmethods++];
        m->method = method;
        m->version = 1;
        if (at(&c, '/')) {
            c.p++;
            if (skip_cfws(&c) != 0 || read_digits(&c, &m->version) != 0 || skip_cfws(&c) != 0) {
                why = "bad method version";
                goto bad;
            }
        }
        if (!at(&c, '=')) {
            why = "expected '=' after a method";
            goto bad;
        }
        c.p++;
        if (skip_cfws(&c) != 0 || (m->result = read_keyword(&c)) == NULL) {
            why = "expected a result";
            goto bad;
        }
        if (read_props(&c, m, &why) != 0)
            goto bad;
    }
    if (skip_cfws(&c) != 0 || c.p < c.end) {
        why = "unexpected text";
        goto bad;
    }
    return 0;
bad:
    fail(err, &c, value, why);
    authres_parsed_free(out);
    return -1;
}

void authres_parsed_free(struct authres_parsed *p)
{
    for (size_t i = 0; i < p->nmethods; i++) {
        struct authres_parsed_method *m = &p->methods[i];
        for (size_t k = 0; k < m->nprops; k++) {
            free(m->props[k].ptype);
            free(m->props[k].property);
            free(m->props[k].value);
        }
        free(m->props);
        free(m->method);
        free(m->result);
        free(m->reason);
    }
    free(p->methods);
    free(p->authserv_id);
    memset(p, 0, sizeof *p);
}

/* ---- recognizing ours ---- */

/* a[0..alen) equals b ASCII case-insensitively, one trailing dot of either ignored. */
static int id_equal(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    if (alen > 0 && a[alen - 1] == '.')
        alen--;
    if (blen > 0 && b[blen - 1] == '.')
        blen--;
    if (alen != blen || alen == 0)
        return 0;
    for (size_t i = 0; i < alen; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return 0;
    return 1;
}

int authres_is_ours(const char *name, size_t name_len, const char *value, size_t value_len, const char *our_id)
{
    static const char field[] = "Authentication-Results";
    while (name_len > 0 && (name[name_len - 1] == ' ' || name[name_len - 1] == '\t'))
        name_len--;
    if (name_len != sizeof field - 1 || our_id == NULL)
        return 0;
    for (size_t i = 0; i < name_len; i++)
        if (lower((unsigned char)name[i]) != lower((unsigned char)field[i]))
            return 0;
    struct cur c = {value, value + value_len};
    if (skip_cfws(&c) != 0 || c.p >= c.end)
        return 0;
    if (*c.p == '"') {
        struct strbuf sb = STRBUF_INIT;
        int ours = read_quoted(&c, &sb) == 0 && id_equal(strbuf_str(&sb), sb.len, our_id);
        strbuf_free(&sb);
        return ours;
    }
    const char *s = c.p;
    while (c.p < c.end && (is_token_char((unsigned char)*c.p) || (unsigned char)*c.p >= 0x80))
        c.p++;
    return id_equal(s, (size_t)(c.p - s), our_id);
}

int authres_field_is_ours(const char *field, size_t len, const char *our_id)
{
    const char *colon = memchr(field, ':', len);
    if (colon == NULL)
        return 0;
    size_t nlen = (size_t)(colon - field);
    return authres_is_ours(field, nlen, colon + 1, len - nlen - 1, our_id);
}

size_t authres_drop_ours(char *hdr, size_t len, const char *our_id)
{
    size_t pos = 0;
    while (pos < len) {
        /* one field: its first line and every continuation line */
        size_t end = pos;
        do {
            const char *nl = memchr(hdr + end, '\n', len - end);
            end = nl ? (size_t)(nl - hdr) + 1 : len;
        } while (end < len && (hdr[end] == ' ' || hdr[end] == '\t'));
        if (authres_field_is_ours(hdr + pos, end - pos, our_id)) {
            memmove(hdr + pos, hdr + end, len - end);
            len -= end - pos;
            continue;
        }
        pos = end;
    }
    return len;
}
