/* bounce_fields: the field formatting of delivery status notifications --
 * cleaning untrusted text, address forms (RFC 3464 2.3.1-2, RFC 6533 3),
 * folding header fields and wrapping the text part, cutting diagnostics.
 * Private to bounce.c, which composes the notice; see bounce_internal.h. */
#include "msg/bounce_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "msg/msg_header.h"
#include "msg/bounce.h"
#include "util/mem.h"
#include "util/str.h"

/* RFC 5322 2.1.1: lines SHOULD stay within 78 characters (BOUNCE_LINE_HARD
 * is the MUST). */
#define LINE_SOFT 78
#define TEXT_WIDTH 76

/* ---------------------------------------------------------------------------
 * text */

/* Appends s with line breaks and tabs as spaces, other control characters as
 * '?', and bytes >= 0x80 kept only as valid UTF-8 when allow_utf8 (else '?'),
 * stopping before max output bytes. Returns 1 if s was cut. */
int bounce_put_clean(struct strbuf *sb, const char *s, size_t max, int allow_utf8)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s), used = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        size_t k = 1;
        if (c >= 0x80 && allow_utf8)
            k = str_utf8_len(p + i, len - i);
        size_t out = k ? k : 1;
        if (used + out > max)
            return 1;
        if (c == '\t' || c == '\r' || c == '\n')
            strbuf_putc(sb, ' ');
        else if (c < 0x20 || c == 0x7F || (c >= 0x80 && k <= 1))
            strbuf_putc(sb, '?');
        else
            strbuf_append(sb, p + i, k);
        i += k ? k : 1;
        used += out;
    }
    return 0;
}

/* Length of the "type" before ';' at the start of s (an atom), 0 if none. */
size_t bounce_type_prefix_len(const char *s)
{
    size_t i = 0;
    while (str_is_atext((unsigned char)s[i]))
        i++;
    return s[i] == ';' ? i : 0;
}

/* How far into s a cut at or before max keeps UTF-8 sequences whole. */
static size_t utf8_cut(const char *s, size_t max)
{
    size_t cut = max;
    while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
        cut--;
    return cut ? cut : max;
}

/* ---------------------------------------------------------------------------
 * folding and wrapping */

/* "Name: value" folded at spaces (runs of which are collapsed) so lines stay
 * within LINE_SOFT when the words allow, and always within BOUNCE_LINE_HARD. */
void bounce_put_field(struct strbuf *sb, const char *name, const char *value)
{
    size_t name_col = strlen(name) + 1, col = name_col;
    strbuf_puts(sb, name);
    strbuf_putc(sb, ':');
    const char *p = value;
    for (;;) {
        while (*p == ' ')
            p++;
        const char *w = p;
        while (*p && *p != ' ')
            p++;
        size_t wlen = (size_t)(p - w);
        if (wlen == 0)
            break;
        if (col > name_col && col + 1 + wlen > LINE_SOFT) {
            strbuf_puts(sb, "\r\n");
            col = 0;
        }
        strbuf_putc(sb, ' ');
        col++;
        while (col + wlen > BOUNCE_LINE_HARD) {
            size_t cut = utf8_cut(w, BOUNCE_LINE_HARD - col);
            strbuf_append(sb, w, cut);
            strbuf_puts(sb, "\r\n ");
            col = 1;
            w += cut;
            wlen -= cut;
        }
        strbuf_append(sb, w, wlen);
        col += wlen;
    }
    strbuf_puts(sb, "\r\n");
}

/* A paragraph of the text part, word-wrapped, each line starting with indent. */
void bounce_put_wrapped(struct strbuf *sb, const char *indent, const char *text)
{
    size_t ind = strlen(indent), col = ind;
    int words = 0;
    strbuf_puts(sb, indent);
    const char *p = text;
    for (;;) {
        while (*p == ' ')
            p++;
        const char *w = p;
        while (*p && *p != ' ')
            p++;
        size_t wlen = (size_t)(p - w);
        if (wlen == 0)
            break;
        if (words && col + 1 + wlen > TEXT_WIDTH) {
            strbuf_puts(sb, "\r\n");
            strbuf_puts(sb, indent);
            col = ind;
            words = 0;
        }
        if (words) {
            strbuf_putc(sb, ' ');
            col++;
        }
        while (col + wlen > BOUNCE_LINE_HARD) {
            size_t cut = utf8_cut(w, BOUNCE_LINE_HARD - col);
            strbuf_append(sb, w, cut);
            strbuf_puts(sb, "\r\n");
            strbuf_puts(sb, indent);
            col = ind;
            w += cut;
            wlen -= cut;
        }
        strbuf_append(sb, w, wlen);
        col += wlen;
        words++;
    }
    strbuf_puts(sb, "\r\n");
}

/* ---------------------------------------------------------------------------
 * addresses in DSN fields (RFC 3464 2.3.1-2, RFC 6533 3) */

static int is_qchar(unsigned char c)
{
    return c > 0x20 && c < 0x7F && c != '+' && c != '=' && c != '\\';
}

/* RFC 6533 utf-8-addr-xtext: the 7-bit form for message/delivery-status. */
static void put_utf8_addr_xtext(struct strbuf *sb, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s);
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        if (c < 0x80) {
            if (is_qchar(c))
                strbuf_putc(sb, (char)c);
            else if (c == ' ' || c == '+' || c == '=' || c == '\\')
                strbuf_printf(sb, "\\x{%02X}", c);
            else
                strbuf_putc(sb, '?');
            i++;
            continue;
        }
        size_t k = str_utf8_len(p + i, len - i);
        if (k == 0) {
            strbuf_putc(sb, '?');
            i++;
            continue;
        }
        strbuf_printf(sb, "\\x{%X}", (unsigned)str_utf8_decode(p + i, k));
        i += k;
    }
}

/* Undoes the \x{HEX} escapes of an RFC 6533 utf-8 address for the global
 * type; NULL when s is not in that form (it is then copied unaltered). */
static char *utf8_addr_unescape(const char *s)
{
    struct strbuf out = STRBUF_INIT;
    const char *p = s;
    while (*p) {
        if (*p != '\\') {
            strbuf_putc(&out, *p++);
            continue;
        }
        if (p[1] != 'x' || p[2] != '{')
            goto bad;
        const char *q = p + 3;
        uint32_t cp = 0;
        int digits = 0, v;
        while (digits < 6 && (v = str_hex_value(*q)) >= 0) {
            cp = cp * 16 + (uint32_t)v;
            digits++;
            q++;
        }
        if (*q != '}' || digits < 2 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || cp < 0x20 ||
            cp == 0x7F)
            goto bad;
        strbuf_put_utf8(&out, cp);
        p = q + 1;
    }
    if (out.len == 0 || !str_is_utf8(out.buf, out.len))
        goto bad;
    return strbuf_detach(&out);
bad:
    strbuf_free(&out);
    return NULL;
}

/* "type<sep>address" as RFC 3464 and RFC 6533 want it in this notice. */
void bounce_put_address(struct strbuf *sb, const char *type, size_t type_len, const char *sep, const char *addr,
                        int global)
{
    int utf8_type = type_len == 5 && strncasecmp(type, "utf-8", 5) == 0;
    if (utf8_type && global) {
        char *plain = utf8_addr_unescape(addr);
        strbuf_printf(sb, "utf-8%s", sep);
        bounce_put_clean(sb, plain ? plain : addr, SIZE_MAX, 1);
        free(plain);
    } else if (!str_has_8bit(addr, strlen(addr)) || !str_is_utf8(addr, strlen(addr))) {
        strbuf_append(sb, type, type_len);
        strbuf_puts(sb, sep);
        bounce_put_clean(sb, addr, SIZE_MAX, 0);
    } else {
        strbuf_printf(sb, "utf-8%s", sep);
        if (global)
            bounce_put_clean(sb, addr, SIZE_MAX, 1);
        else
            put_utf8_addr_xtext(sb, addr);
    }
}

/* An ORCPT value, "addr-type;address" with the address xtext-decoded. */
void bounce_put_orcpt(struct strbuf *sb, const char *orcpt, int global)
{
    size_t tl = bounce_type_prefix_len(orcpt);
    if (tl == 0) {
        bounce_put_address(sb, "unknown", 7, ";", orcpt, global);
        return;
    }
    const char *addr = orcpt + tl + 1;
    while (*addr == ' ')
        addr++;
    bounce_put_address(sb, orcpt, tl, ";", addr, global);
}

/* addr-spec for a header field: the local part quoted when it is not a
 * dot-atom (an envelope address may hold "john doe@x"). */
void bounce_put_mailbox(struct strbuf *sb, const char *addr)
{
    const char *at = strrchr(addr, '@');
    size_t local_len = at ? (size_t)(at - addr) : strlen(addr);
    int dot_atom = local_len > 0 && addr[0] != '.' && addr[local_len - 1] != '.';
    int quoted = local_len >= 2 && addr[0] == '"' && addr[local_len - 1] == '"';
    for (size_t i = 0; i < local_len && dot_atom; i++) {
        unsigned char c = (unsigned char)addr[i];
        if (c == '.' ? addr[i + 1] == '.' : !(str_is_atext(c) || c >= 0x80))
            dot_atom = 0;
    }
    char *local = xstrndup(addr, local_len);
    if (dot_atom || quoted) {
        bounce_put_clean(sb, local, SIZE_MAX, 1);
    } else {
        struct strbuf q = STRBUF_INIT;
        bounce_put_clean(&q, local, SIZE_MAX, 1);
        strbuf_putc(sb, '"');
        for (size_t i = 0; i < q.len; i++) {
            if (q.buf[i] == '"' || q.buf[i] == '\\')
                strbuf_putc(sb, '\\');
            strbuf_putc(sb, q.buf[i]);
        }
        strbuf_putc(sb, '"');
        strbuf_free(&q);
    }
    free(local);
    if (at) {
        strbuf_putc(sb, '@');
        bounce_put_clean(sb, at + 1, SIZE_MAX, 1);
    }
}

/* ---------------------------------------------------------------------------
 * typed values, dates, diagnostics */

/* The text after "type;" of a typed value, or all of it. */
const char *bounce_untyped(const char *s)
{
    size_t tl = bounce_type_prefix_len(s);
    if (tl)
        s += tl + 1;
    while (*s == ' ')
        s++;
    return s;
}

/* The date-time of a DSN field (numeric zone, RFC 3464 2.2.5), or NULL. */
char *bounce_date_value(time_t t)
{
    char *h = msg_header_date(t);
    if (!h)
        return NULL;
    size_t len = strlen(h); /* "Date: " ... "\r\n" */
    memmove(h, h + 6, len - 8);
    h[len - 8] = '\0';
    return h;
}

void bounce_put_date_field(struct strbuf *sb, const char *name, time_t t)
{
    char *date = bounce_date_value(t);
    if (date)
        bounce_put_field(sb, name, date);
    free(date);
}

void bounce_put_diagnostic(struct strbuf *sb, const char *diagnostic, int allow_utf8)
{
    if (bounce_put_clean(sb, bounce_untyped(diagnostic), BOUNCE_DIAG_MAX, allow_utf8))
        strbuf_puts(sb, "...");
}
