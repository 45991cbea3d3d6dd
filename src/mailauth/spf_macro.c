/* spf_macro: the macro language of RFC 7208 §7: checking a macro-string's
 * syntax, and expanding it for one check. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "mailauth/spf_internal.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

/* Transformer digits above this are "all parts" anyway: a domain has at
 * most 127 labels, and §7.3 asks for at least 127. Capping while reading
 * keeps a run of digits from overflowing. */
#define SPF_MACRO_DIGITS_CAP 1000

static int is_delimiter(unsigned char c)
{
    return c == '.' || c == '-' || c == '+' || c == ',' || c == '/' || c == '_' || c == '=';
}

static int is_macro_letter(unsigned char c)
{
    return strchr("slodiphcrtvSLODIPHCRTV", c) != NULL && c != 0;
}

static int is_exp_only_letter(unsigned char c)
{
    return c == 'c' || c == 'r' || c == 't' || c == 'C' || c == 'R' || c == 'T';
}

char *spf_term_excerpt(const char *s, size_t len)
{
    /* Long enough to recognise the term in a log, short enough that a
     * hostile record cannot flood one. */
    size_t n = len > 60 ? 60 : len;
    char *e = xmalloc(n + 4);
    memcpy(e, s, n);
    if (n < len)
        memcpy(e + n, "...", 3), n += 3;
    e[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)e[i] < 0x20 || (unsigned char)e[i] > 0x7e)
            e[i] = '?';
    return e;
}

/* One %{...} at s (s[0] == '%', s[1] == '{'): its letter, digits (0 when
 * none), reversal and delimiters, and its length; 0 on a syntax error. */
struct macro_tok {
    unsigned char letter;
    unsigned digits;
    int has_digits;
    int reverse;
    char delims[8];
    size_t ndelims;
};

static size_t parse_expand(const char *s, struct macro_tok *t, char **err)
{
    memset(t, 0, sizeof *t);
    size_t i = 2;
    if (!is_macro_letter((unsigned char)s[i])) {
        *err = xasprintf("unknown macro letter in \"%%{%c\"", str_is_alnum((unsigned char)s[i]) ? s[i] : '?');
        return 0;
    }
    t->letter = (unsigned char)s[i++];
    while (str_is_digit((unsigned char)s[i])) {
        t->has_digits = 1;
        if (t->digits < SPF_MACRO_DIGITS_CAP)
            t->digits = t->digits * 10 + (unsigned)(s[i] - '0');
        i++;
    }
    if (t->has_digits && t->digits == 0) {
        *err = xstrdup("macro transformer digits must not be zero");
        return 0;
    }
    if (s[i] == 'r' || s[i] == 'R') {
        t->reverse = 1;
        i++;
    }
    while (is_delimiter((unsigned char)s[i])) {
        if (!memchr(t->delims, s[i], t->ndelims) && t->ndelims < sizeof t->delims)
            t->delims[t->ndelims++] = s[i];
        i++;
    }
    if (s[i] != '}') {
        *err = xstrdup("malformed macro: expected \"}\"");
        return 0;
    }
    return i + 1;
}

static int is_toplabel(const char *s, size_t len)
{
    if (len == 0 || !str_is_alnum((unsigned char)s[0]) || !str_is_alnum((unsigned char)s[len - 1]))
        return 0;
    int hyphen = 0, alpha = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '-')
            hyphen = 1;
        else if (str_is_alpha(c))
            alpha = 1;
        else if (!str_is_digit(c))
            return 0;
    }
    return hyphen || alpha;
}

int spf_macro_check(const char *spec, int domain_spec, int explain, char **err)
{
    *err = NULL;
    size_t lit_start = 0; /* where the literal text after the last macro begins */
    int ends_in_macro = 0;
    for (size_t i = 0; spec[i];) {
        unsigned char c = (unsigned char)spec[i];
        if (c == '%') {
            char n = spec[i + 1];
            if (n == '%' || n == '_' || n == '-') {
                i += 2;
            } else if (n == '{') {
                struct macro_tok t;
                size_t len = parse_expand(spec + i, &t, err);
                if (len == 0)
                    return -1;
                if (!explain && is_exp_only_letter(t.letter)) {
                    *err = xasprintf("macro %%{%c} is allowed only in explanations", t.letter);
                    return -1;
                }
                i += len;
            } else {
                *err = xstrdup("\"%\" not followed by \"{\", \"%\", \"-\" or \"_\"");
                return -1;
            }
            lit_start = i;
            ends_in_macro = 1;
            continue;
        }
        if (!(c >= 0x21 && c <= 0x7e) && !(explain && c == ' ')) {
            *err = xasprintf("invalid character 0x%02x in a macro-string", c);
            return -1;
        }
        ends_in_macro = 0;
        i++;
    }
    if (!domain_spec)
        return 0;
    /* domain-end = ( "." toplabel [ "." ] ) / macro-expand */
    if (ends_in_macro)
        return 0;
    const char *tail = spec + lit_start;
    size_t len = strlen(tail);
    if (len > 0 && tail[len - 1] == '.')
        len--;
    if (len == 0 && lit_start > 0)
        return 0; /* "%{d}.": a macro then a trailing dot; accepted (§7.3) */
    const char *dot = NULL;
    for (size_t i = len; i > 0; i--)
        if (tail[i - 1] == '.') {
            dot = tail + i - 1;
            break;
        }
    if (dot == NULL || !is_toplabel(dot + 1, (size_t)(tail + len - (dot + 1)))) {
        *err = xstrdup("domain-spec does not end in a valid top-level label");
        return -1;
    }
    return 0;
}

int spf_macro_uses_p(const char *spec)
{
    for (const char *p = spec; (p = strchr(p, '%')) != NULL;) {
        if (p[1] == '{' && (p[2] == 'p' || p[2] == 'P'))
            return 1;
        p += p[1] ? 2 : 1;
    }
    return 0;
}

int spf_domain_ok(const char *name)
{
    size_t len = strlen(name);
    if (len > 0 && name[len - 1] == '.')
        len--;
    if (len == 0 || len > SPF_DOMAIN_MAX)
        return 0;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '.') {
            if (label == 0)
                return 0;
            label = 0;
            continue;
        }
        /* A label may hold any octet (RFC 2181 §11); the expander only
         * makes printable ASCII, so that is all there is to check. */
        if (c < 0x20 || c >= 0x7f)
            return 0;
        if (++label > 63)
            return 0;
    }
    return label > 0;
}

/* The value a macro letter stands for, written to sb. */
static void letter_value(unsigned char letter, const struct spf_macro_ctx *m, struct strbuf *sb)
{
    char buf[INET6_ADDRSTRLEN + 8];
    switch (letter | 0x20) {
    case 's': strbuf_puts(sb, m->sender ? m->sender : ""); break;
    case 'l': strbuf_puts(sb, m->local ? m->local : ""); break;
    case 'o': strbuf_puts(sb, m->sender_domain ? m->sender_domain : ""); break;
    case 'd': strbuf_puts(sb, m->domain ? m->domain : ""); break;
    case 'h': strbuf_puts(sb, m->helo ? m->helo : ""); break;
    case 'p': strbuf_puts(sb, m->validated && *m->validated ? m->validated : "unknown"); break;
    case 'r': strbuf_puts(sb, m->receiver && *m->receiver ? m->receiver : "unknown"); break;
    case 'v': strbuf_puts(sb, m->family == AF_INET6 ? "ip6" : "in-addr"); break;
    case 't': strbuf_printf(sb, "%lld", (long long)m->now); break;
    case 'i':
        if (m->family == AF_INET6) {
            /* dot-format: every nibble, most significant first (§7.3);
             * upper case as the OpenSPF suite expects (DNS names ignore
             * case, so lookups are the same either way) */
            for (int i = 0; i < 16; i++)
                strbuf_printf(sb, "%s%X.%X", i ? "." : "", m->ip[i] >> 4, m->ip[i] & 15);
            break;
        }
        /* IPv4 "i" and "c" are the same */
        __attribute__((fallthrough));
    case 'c':
        if (inet_ntop(m->family == AF_INET6 ? AF_INET6 : AF_INET, m->ip, buf, sizeof buf) != NULL)
            strbuf_puts(sb, buf);
        break;
    default: break;
    }
}

/* Split on the delimiters, reverse, keep the rightmost n, join with ".". */
static void transform(const char *v, const struct macro_tok *t, struct strbuf *out)
{
    const char *delims = t->ndelims ? t->delims : ".";
    size_t nd = t->ndelims ? t->ndelims : 1;
    size_t nparts = 1;
    for (const char *p = v; *p; p++)
        if (memchr(delims, *p, nd))
            nparts++;
    const char **start = xcalloc(nparts, sizeof *start);
    size_t *len = xcalloc(nparts, sizeof *len);
    size_t k = 0;
    start[0] = v;
    for (const char *p = v;; p++) {
        if (*p == '\0' || memchr(delims, *p, nd)) {
            len[k] = (size_t)(p - start[k]);
            if (*p == '\0')
                break;
            start[++k] = p + 1;
        }
    }
    size_t keep = t->has_digits && t->digits < nparts ? t->digits : nparts;
    /* After reversal the parts run nparts-1 .. 0; the rightmost `keep` of
     * that order are the first `keep` original parts, reversed. */
    for (size_t j = 0; j < keep; j++) {
        size_t idx = t->reverse ? keep - 1 - j : nparts - keep + j;
        if (j)
            strbuf_putc(out, '.');
        strbuf_append(out, start[idx], len[idx]);
    }
    free(start);
    free(len);
}

static void url_escape(const char *v, size_t n, struct strbuf *out)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (str_is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
            strbuf_putc(out, (char)c);
        else
            strbuf_printf(out, "%%%02X", c);
    }
}

int spf_macro_expand(const char *spec, const struct spf_macro_ctx *m, int flags, char **out, char **err)
{
    *out = NULL;
    *err = NULL;
    int explain = (flags & SPF_MACRO_EXPLAIN) != 0;
    if (spf_macro_check(spec, 0, explain, err) != 0)
        return -1;
    struct strbuf sb = STRBUF_INIT, val = STRBUF_INIT, tr = STRBUF_INIT;
    for (size_t i = 0; spec[i];) {
        if (sb.len > SPF_EXPAND_MAX)
            break;
        if (spec[i] != '%') {
            strbuf_putc(&sb, spec[i++]);
            continue;
        }
        char n = spec[i + 1];
        if (n == '%' || n == '_' || n == '-') {
            strbuf_puts(&sb, n == '%' ? "%" : n == '_' ? " " : "%20");
            i += 2;
            continue;
        }
        struct macro_tok t;
        size_t len = parse_expand(spec + i, &t, err); /* checked above: never 0 */
        if (len == 0)
            break;
        i += len;
        strbuf_reset(&val);
        letter_value(t.letter, m, &val);
        /* Values come from the SMTP session and DNS: keep the output
         * printable ASCII whatever they hold (upper-case macros escape
         * every such octet anyway). */
        int upper = t.letter >= 'A' && t.letter <= 'Z';
        for (size_t k = 0; k < val.len && !upper; k++)
            if ((unsigned char)val.buf[k] < 0x20 || (unsigned char)val.buf[k] > 0x7e)
                val.buf[k] = '?';
        const char *v = strbuf_str(&val);
        size_t vlen = val.len;
        if (t.has_digits || t.reverse || t.ndelims) {
            strbuf_reset(&tr);
            transform(v, &t, &tr);
            v = strbuf_str(&tr);
            vlen = tr.len;
        }
        if (vlen > SPF_EXPAND_MAX)
            vlen = SPF_EXPAND_MAX + 1; /* enough to trip the bound below */
        if (upper)
            url_escape(v, vlen, &sb);
        else
            strbuf_append(&sb, v, vlen);
    }
    strbuf_free(&val);
    strbuf_free(&tr);
    if (*err != NULL || sb.len > SPF_EXPAND_MAX) {
        if (*err == NULL)
            *err = xasprintf("macro expansion longer than %d octets", SPF_EXPAND_MAX);
        strbuf_free(&sb);
        return -1;
    }
    char *s = strbuf_detach(&sb);
    if (s == NULL)
        s = xstrdup("");
    if (flags & SPF_MACRO_DOMAIN) {
        /* §7.3: cut whole labels off the left until it fits. */
        size_t len = strlen(s);
        char *p = s;
        while (len > SPF_DOMAIN_MAX) {
            char *dot = strchr(p, '.');
            if (dot == NULL) {
                p += len;
                len = 0;
                break;
            }
            len -= (size_t)(dot + 1 - p);
            p = dot + 1;
        }
        memmove(s, p, len + 1);
    }
    *out = s;
    return 0;
}
