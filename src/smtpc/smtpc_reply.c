/* smtpc_reply: reading server replies (RFC 5321 §4.2), their
 * enhanced status codes (RFC 3463, RFC 2034) and the EHLO keywords (§4.1.1.1)
 * for smtpc. Replies are network input: each line is checked before
 * anything is taken from it, and only a bounded, printable copy of the text
 * is kept. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtpc/smtpc_internal.h"
#include "util/mem.h"
#include "util/str.h"

void smtpc_reply_reset(struct smtpc_reply *r)
{
    r->code = 0;
    r->enh[0] = '\0';
    r->nlines = 0;
    r->complete = 0;
    r->cut = 0;
    strbuf_reset(&r->text);
}

void smtpc_reply_free(struct smtpc_reply *r)
{
    strbuf_free(&r->text);
}

/* Length of an enhanced status code (class "." subject "." detail, RFC 3463
 * §2: 1-3 digits each after the class) at the start of s, followed by a space
 * or the end; 0 if there is none. */
static size_t enh_len(const char *s, size_t len)
{
    if (len < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return 0;
    size_t i = 2;
    for (int part = 0; part < 2; part++) {
        size_t start = i;
        while (i < len && str_is_digit(s[i]) && i - start < 4)
            i++;
        if (i == start || i - start > 3)
            return 0;
        if (part == 0) {
            if (i >= len || s[i] != '.')
                return 0;
            i++;
        }
    }
    if (i < len && s[i] != ' ')
        return 0;
    return i;
}

/* Appends text to the kept reply text: controls and octets that are not
 * UTF-8 become '?', so the text is safe in a log line or a bounce, and
 * nothing is added past SMTPC_TEXT_MAX but one "...". */
static void text_append(struct smtpc_reply *r, const char *s, size_t len)
{
    if (r->cut)
        return;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t n = 1;
        const char *piece = s + i;
        if (u[i] >= 0x80) {
            n = str_utf8_len(u + i, len - i);
            if (n == 0) {
                n = 1;
                piece = "?";
            }
        } else if (u[i] < 0x20 || u[i] == 0x7f) {
            piece = "?";
        }
        if (r->text.len + n > SMTPC_TEXT_MAX - 3) {
            strbuf_puts(&r->text, "...");
            r->cut = 1;
            return;
        }
        strbuf_append(&r->text, piece, piece == s + i ? n : 1);
        i += n;
    }
}

static int keyword_is(const char *kw, size_t kwlen, const char *name)
{
    return strlen(name) == kwlen && strncasecmp(kw, name, kwlen) == 0;
}

/* One EHLO keyword line: "SIZE 10240000", "PIPELINING", ... */
static void ehlo_keyword(struct smtpc_ext *ext, const char *s, size_t len)
{
    size_t kwlen = 0;
    while (kwlen < len && s[kwlen] != ' ')
        kwlen++;
    if (keyword_is(s, kwlen, "PIPELINING")) {
        ext->pipelining = 1;
    } else if (keyword_is(s, kwlen, "SIZE")) {
        /* RFC 1870 §4: an optional limit; 0 or none means no fixed limit.
         * A value that is not a number, or too large to mean anything, is
         * treated as no limit rather than as a tiny one. */
        ext->size = 1;
        ext->size_limit = 0;
        size_t i = kwlen;
        while (i < len && s[i] == ' ')
            i++;
        uint64_t v = 0;
        int ok = i < len;
        for (; i < len && s[i] != ' '; i++) {
            if (!str_is_digit(s[i]) || v > (UINT64_MAX - 9) / 10) {
                ok = 0;
                break;
            }
            v = v * 10 + (uint64_t)(s[i] - '0');
        }
        if (ok)
            ext->size_limit = v;
    } else if (keyword_is(s, kwlen, "8BITMIME")) {
        ext->eightbit = 1;
    } else if (keyword_is(s, kwlen, "SMTPUTF8")) {
        ext->smtputf8 = 1;
    } else if (keyword_is(s, kwlen, "DSN")) {
        ext->dsn = 1;
    } else if (keyword_is(s, kwlen, "CHUNKING")) {
        ext->chunking = 1;
    } else if (keyword_is(s, kwlen, "ENHANCEDSTATUSCODES")) {
        ext->enhanced = 1;
    } else if (keyword_is(s, kwlen, "STARTTLS")) {
        ext->starttls = 1;
    } else if (keyword_is(s, kwlen, "AUTH")) {
        /* RFC 4954: "AUTH mech mech ..." */
        for (size_t i = kwlen; i < len;) {
            while (i < len && s[i] == ' ')
                i++;
            size_t w = i;
            while (i < len && s[i] != ' ')
                i++;
            if (i - w == 5 && strncasecmp(s + w, "PLAIN", 5) == 0)
                ext->auth_plain = 1;
            else if (i - w == 5 && strncasecmp(s + w, "LOGIN", 5) == 0)
                ext->auth_login = 1;
        }
    }
}

int smtpc_reply_add_line(struct smtpc_reply *r, const char *line, size_t len, struct smtpc_ext *ext,
                         const char **why)
{
    if (len < 3 || !str_is_digit(line[0]) || !str_is_digit(line[1]) || !str_is_digit(line[2]) || line[0] < '2' ||
        line[0] > '5' || (len > 3 && line[3] != ' ' && line[3] != '-')) {
        *why = "malformed reply line";
        return -1;
    }
    if (++r->nlines > SMTPC_REPLY_LINES_MAX) {
        *why = "reply of too many lines";
        return -1;
    }
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    int last = len == 3 || line[3] == ' ';
    const char *rest = len > 4 ? line + 4 : "";
    size_t restlen = len > 4 ? len - 4 : 0;

    size_t el = enh_len(rest, restlen);
    if (r->nlines == 1) {
        r->code = code;
        char head[8];
        snprintf(head, sizeof head, "%d", code);
        strbuf_puts(&r->text, head);
        if (el > 0) {
            memcpy(r->enh, rest, el);
            r->enh[el] = '\0';
        }
    } else if (ext != NULL) {
        ehlo_keyword(ext, rest, restlen);
    }
    /* A continuation line repeats the code and, with ENHANCEDSTATUSCODES,
     * the status: the text keeps the first of each. */
    if (el > 0 && r->nlines > 1) {
        rest += el;
        restlen -= el;
    }
    while (restlen > 0 && *rest == ' ')
        rest++, restlen--;
    if (restlen > 0) {
        text_append(r, " ", 1);
        text_append(r, rest, restlen);
    }
    r->complete = last;
    return 0;
}

void smtpc_status_for(int code, const char *reply_enh, char enh[16])
{
    int cls = code / 100;
    if (reply_enh != NULL && reply_enh[0] != '\0') {
        snprintf(enh, 16, "%d%s", cls, reply_enh + 1);
    } else {
        snprintf(enh, 16, "%d.0.0", cls);
    }
}
