/* bounce: delivery status notifications. See bounce.h for the contract and
 * the choices made where the RFCs leave room. */
#include "queue/bounce.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/types.h>
#include <unistd.h>

#include "msg/msg_header.h"
#include "util/mem.h"
#include "util/strbuf.h"

/* RFC 5322 2.1.1: lines SHOULD stay within 78 characters and MUST within 998. */
#define LINE_SOFT 78
#define LINE_HARD 998
#define TEXT_WIDTH 76
/* The header of the original is looked for in this much of its start; a
 * header beyond it is cut at a line end (a notice need not carry it all). */
#define HEADER_READ_MAX (1024 * 1024)
#define IO_CHUNK 65536
/* Each try has 96 fresh random bits: running out means a broken random source. */
#define BOUNDARY_TRIES 16
#define BOUNDARY_RANDOM_BYTES 12
#define BOUNDARY_ID_MAX 32

enum return_mode { RETURN_NONE, RETURN_HEADERS, RETURN_FULL };

struct notice {
    const struct dsn_info *info;
    const struct dsn_rcpt *rcpts;
    size_t n;
    int global;              /* RFC 6533 types */
    struct strbuf text;      /* part 1 body */
    struct strbuf status;    /* part 2 body */
    enum return_mode ret;
    int too_big;             /* headers only because of max_returned */
    int empty;               /* the original has no content */
    char *prefix;            /* the start of the original, for its header */
    size_t prefix_len;
    size_t header_len;       /* header bytes in prefix to return (RETURN_HEADERS) */
    int insert_separator;    /* RETURN_FULL: an empty line goes in at header_len */
    int ret_8bit;
    int ret_needs_crlf;      /* the returned content does not end in a line end */
    char boundary[BOUNDARY_ID_MAX + 2 + 2 * BOUNDARY_RANDOM_BYTES + 1];
};

/* ---------------------------------------------------------------------------
 * randomness (for the boundary) */

static void system_random(unsigned char *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = getrandom(buf + got, len - got, GRND_NONBLOCK);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (got == len)
        return;
    /* No entropy yet (early boot): uniqueness is all the boundary needs, and
     * it is verified against the content anyway. */
    static uint64_t counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + ((uint64_t)getpid() << 32) +
                 ++counter * 0x9E3779B97F4A7C15u;
    for (size_t i = got; i < len; i++) {
        x += 0x9E3779B97F4A7C15u;
        uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
        buf[i] = (unsigned char)(z ^ (z >> 31));
    }
}

static void (*random_fill)(unsigned char *buf, size_t len) = system_random;

#ifdef TERN_TEST_BUILD
void bounce_test_set_random(void (*fill)(unsigned char *buf, size_t len))
{
    random_fill = fill ? fill : system_random;
}
#endif

/* ---------------------------------------------------------------------------
 * text helpers */

/* Length of the valid UTF-8 sequence at s (RFC 3629), 0 if there is none. */
static size_t utf8_len(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xBF;
    size_t n;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (avail < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return n;
}

static uint32_t utf8_decode(const unsigned char *s, size_t n)
{
    static const unsigned char lead_mask[] = {0, 0x7F, 0x1F, 0x0F, 0x07};
    uint32_t cp = s[0] & lead_mask[n];
    for (size_t i = 1; i < n; i++)
        cp = (cp << 6) | (s[i] & 0x3Fu);
    return cp;
}

static void put_utf8(struct strbuf *sb, uint32_t cp)
{
    if (cp < 0x80) {
        sb_putc(sb, (char)cp);
    } else if (cp < 0x800) {
        sb_putc(sb, (char)(0xC0 | (cp >> 6)));
        sb_putc(sb, (char)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        sb_putc(sb, (char)(0xE0 | (cp >> 12)));
        sb_putc(sb, (char)(0x80 | ((cp >> 6) & 0x3F)));
        sb_putc(sb, (char)(0x80 | (cp & 0x3F)));
    } else {
        sb_putc(sb, (char)(0xF0 | (cp >> 18)));
        sb_putc(sb, (char)(0x80 | ((cp >> 12) & 0x3F)));
        sb_putc(sb, (char)(0x80 | ((cp >> 6) & 0x3F)));
        sb_putc(sb, (char)(0x80 | (cp & 0x3F)));
    }
}

static int has_8bit(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] >= 0x80)
            return 1;
    return 0;
}

static int utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s);
    for (size_t i = 0; i < len;) {
        size_t k = utf8_len(p + i, len - i);
        if (k == 0)
            return 0;
        i += k;
    }
    return 1;
}

/* Appends s with line breaks and tabs as spaces, other control characters as
 * '?', and bytes >= 0x80 kept only as valid UTF-8 when allow_utf8 (else '?'),
 * stopping before max output bytes. Returns 1 if s was cut. */
static int put_clean(struct strbuf *sb, const char *s, size_t max, int allow_utf8)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s), used = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        size_t k = 1;
        if (c >= 0x80 && allow_utf8)
            k = utf8_len(p + i, len - i);
        size_t out = k ? k : 1;
        if (used + out > max)
            return 1;
        if (c == '\t' || c == '\r' || c == '\n')
            sb_putc(sb, ' ');
        else if (c < 0x20 || c == 0x7F || (c >= 0x80 && k <= 1))
            sb_putc(sb, '?');
        else
            sb_append(sb, p + i, k);
        i += k ? k : 1;
        used += out;
    }
    return 0;
}

static int is_atext(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* Length of the "type" before ';' at the start of s (an atom), 0 if none. */
static size_t type_prefix_len(const char *s)
{
    size_t i = 0;
    while (is_atext((unsigned char)s[i]))
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

/* "Name: value" folded at spaces (runs of which are collapsed) so lines stay
 * within LINE_SOFT when the words allow, and always within LINE_HARD. */
static void put_field(struct strbuf *sb, const char *name, const char *value)
{
    size_t name_col = strlen(name) + 1, col = name_col;
    sb_puts(sb, name);
    sb_putc(sb, ':');
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
            sb_puts(sb, "\r\n");
            col = 0;
        }
        sb_putc(sb, ' ');
        col++;
        while (col + wlen > LINE_HARD) {
            size_t cut = utf8_cut(w, LINE_HARD - col);
            sb_append(sb, w, cut);
            sb_puts(sb, "\r\n ");
            col = 1;
            w += cut;
            wlen -= cut;
        }
        sb_append(sb, w, wlen);
        col += wlen;
    }
    sb_puts(sb, "\r\n");
}

/* A paragraph of the text part, word-wrapped, each line starting with indent. */
static void put_wrapped(struct strbuf *sb, const char *indent, const char *text)
{
    size_t ind = strlen(indent), col = ind;
    int words = 0;
    sb_puts(sb, indent);
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
            sb_puts(sb, "\r\n");
            sb_puts(sb, indent);
            col = ind;
            words = 0;
        }
        if (words) {
            sb_putc(sb, ' ');
            col++;
        }
        while (col + wlen > LINE_HARD) {
            size_t cut = utf8_cut(w, LINE_HARD - col);
            sb_append(sb, w, cut);
            sb_puts(sb, "\r\n");
            sb_puts(sb, indent);
            col = ind;
            w += cut;
            wlen -= cut;
        }
        sb_append(sb, w, wlen);
        col += wlen;
        words++;
    }
    sb_puts(sb, "\r\n");
}

/* The date-time of a DSN field (numeric zone, RFC 3464 2.2.5), or NULL. */
static char *date_value(time_t t)
{
    char *h = msg_header_date(t);
    if (!h)
        return NULL;
    size_t len = strlen(h); /* "Date: " ... "\r\n" */
    memmove(h, h + 6, len - 8);
    h[len - 8] = '\0';
    return h;
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
                sb_putc(sb, (char)c);
            else if (c == ' ' || c == '+' || c == '=' || c == '\\')
                sb_printf(sb, "\\x{%02X}", c);
            else
                sb_putc(sb, '?');
            i++;
            continue;
        }
        size_t k = utf8_len(p + i, len - i);
        if (k == 0) {
            sb_putc(sb, '?');
            i++;
            continue;
        }
        sb_printf(sb, "\\x{%X}", (unsigned)utf8_decode(p + i, k));
        i += k;
    }
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Undoes the \x{HEX} escapes of an RFC 6533 utf-8 address for the global
 * type; NULL when s is not in that form (it is then copied unaltered). */
static char *utf8_addr_unescape(const char *s)
{
    struct strbuf out = STRBUF_INIT;
    const char *p = s;
    while (*p) {
        if (*p != '\\') {
            sb_putc(&out, *p++);
            continue;
        }
        if (p[1] != 'x' || p[2] != '{')
            goto bad;
        const char *q = p + 3;
        uint32_t cp = 0;
        int digits = 0, v;
        while (digits < 6 && (v = hex_value(*q)) >= 0) {
            cp = cp * 16 + (uint32_t)v;
            digits++;
            q++;
        }
        if (*q != '}' || digits < 2 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || cp < 0x20 ||
            cp == 0x7F)
            goto bad;
        put_utf8(&out, cp);
        p = q + 1;
    }
    if (out.len == 0 || !utf8_valid(sb_str(&out)))
        goto bad;
    return sb_detach(&out);
bad:
    sb_free(&out);
    return NULL;
}

/* "type<sep>address" as RFC 3464 and RFC 6533 want it in this notice. */
static void put_address(struct strbuf *sb, const char *type, size_t type_len, const char *sep, const char *addr,
                        int global)
{
    int utf8_type = type_len == 5 && strncasecmp(type, "utf-8", 5) == 0;
    if (utf8_type && global) {
        char *plain = utf8_addr_unescape(addr);
        sb_printf(sb, "utf-8%s", sep);
        put_clean(sb, plain ? plain : addr, SIZE_MAX, 1);
        free(plain);
    } else if (!has_8bit(addr, strlen(addr)) || !utf8_valid(addr)) {
        sb_append(sb, type, type_len);
        sb_puts(sb, sep);
        put_clean(sb, addr, SIZE_MAX, 0);
    } else {
        sb_printf(sb, "utf-8%s", sep);
        if (global)
            put_clean(sb, addr, SIZE_MAX, 1);
        else
            put_utf8_addr_xtext(sb, addr);
    }
}

/* An ORCPT value, "addr-type;address" with the address xtext-decoded. */
static void put_orcpt(struct strbuf *sb, const char *orcpt, int global)
{
    size_t tl = type_prefix_len(orcpt);
    if (tl == 0) {
        put_address(sb, "unknown", 7, ";", orcpt, global);
        return;
    }
    const char *addr = orcpt + tl + 1;
    while (*addr == ' ')
        addr++;
    put_address(sb, orcpt, tl, ";", addr, global);
}

/* addr-spec for a header field: the local part quoted when it is not a
 * dot-atom (an envelope address may hold "john doe@x"). */
static void put_mailbox(struct strbuf *sb, const char *addr)
{
    const char *at = strrchr(addr, '@');
    size_t local_len = at ? (size_t)(at - addr) : strlen(addr);
    int dot_atom = local_len > 0 && addr[0] != '.' && addr[local_len - 1] != '.';
    int quoted = local_len >= 2 && addr[0] == '"' && addr[local_len - 1] == '"';
    for (size_t i = 0; i < local_len && dot_atom; i++) {
        unsigned char c = (unsigned char)addr[i];
        if (c == '.' ? addr[i + 1] == '.' : !(is_atext(c) || c >= 0x80))
            dot_atom = 0;
    }
    char *local = xstrndup(addr, local_len);
    if (dot_atom || quoted) {
        put_clean(sb, local, SIZE_MAX, 1);
    } else {
        struct strbuf q = STRBUF_INIT;
        put_clean(&q, local, SIZE_MAX, 1);
        sb_putc(sb, '"');
        for (size_t i = 0; i < q.len; i++) {
            if (q.buf[i] == '"' || q.buf[i] == '\\')
                sb_putc(sb, '\\');
            sb_putc(sb, q.buf[i]);
        }
        sb_putc(sb, '"');
        sb_free(&q);
    }
    free(local);
    if (at) {
        sb_putc(sb, '@');
        put_clean(sb, at + 1, SIZE_MAX, 1);
    }
}

/* ---------------------------------------------------------------------------
 * per-recipient values */

static const char *default_action(enum dsn_kind kind)
{
    return kind == DSN_FAILURE ? "failed" : kind == DSN_DELAY ? "delayed" : "delivered";
}

static const char *action_of(const struct notice *nt, const struct dsn_rcpt *r)
{
    static const char *const actions[] = {"failed", "delayed", "delivered", "relayed", "expanded"};
    for (size_t i = 0; r->action && i < sizeof actions / sizeof actions[0]; i++)
        if (strcasecmp(r->action, actions[i]) == 0)
            return actions[i];
    return default_action(nt->info->kind);
}

/* status-code = DIGIT "." 1*3DIGIT "." 1*3DIGIT, no leading zeros (RFC 3464
 * 2.3.4), class 2, 4 or 5 (RFC 3463). */
static int status_valid(const char *s)
{
    if ((s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return 0;
    const char *p = s + 2;
    for (int field = 0; field < 2; field++) {
        size_t digits = 0;
        while (p[digits] >= '0' && p[digits] <= '9')
            digits++;
        if (digits == 0 || digits > 3 || (digits > 1 && p[0] == '0'))
            return 0;
        p += digits;
        if (field == 0 && *p++ != '.')
            return 0;
    }
    return *p == '\0';
}

static const char *status_of(const struct notice *nt, const struct dsn_rcpt *r)
{
    if (r->status && status_valid(r->status))
        return r->status;
    return nt->info->kind == DSN_FAILURE ? "5.0.0" : nt->info->kind == DSN_DELAY ? "4.0.0" : "2.0.0";
}

/* The text after "type;" of a typed value, or all of it. */
static const char *untyped(const char *s)
{
    size_t tl = type_prefix_len(s);
    if (tl)
        s += tl + 1;
    while (*s == ' ')
        s++;
    return s;
}

/* RFC 3463 subject sub-codes, for a reason when there is no diagnostic. */
static const char *status_subject(const char *status)
{
    switch (status[3] == '.' ? status[2] : '\0') {
    case '1': return "a problem with the address";
    case '2': return "a problem with the recipient's mailbox";
    case '3': return "a problem with the receiving mail system";
    case '4': return "a network or routing problem";
    case '5': return "a mail protocol problem";
    case '6': return "a problem with the message content";
    case '7': return "a security or policy refusal";
    default: return "the reason was not given";
    }
}

/* ---------------------------------------------------------------------------
 * part 1: the text */

static void text_reason(struct strbuf *out, const struct notice *nt, const struct dsn_rcpt *r)
{
    const char *action = action_of(nt, r);
    const char *status = status_of(nt, r);
    if (r->diagnostic && *untyped(r->diagnostic)) {
        /* Only an SMTP reply is the remote host's own words. */
        if (r->remote_mta && *untyped(r->remote_mta) && type_prefix_len(r->diagnostic) == 4 &&
            strncasecmp(r->diagnostic, "smtp", 4) == 0) {
            sb_puts(out, "host ");
            put_clean(out, untyped(r->remote_mta), LINE_HARD / 2, 0);
            sb_puts(out, " said: ");
        }
        if (put_clean(out, untyped(r->diagnostic), BOUNCE_DIAG_MAX, 1))
            sb_puts(out, "...");
        return;
    }
    if (strcmp(action, "relayed") == 0) {
        sb_puts(out, "relayed to a mail system that does not report delivery");
        if (r->remote_mta && *untyped(r->remote_mta)) {
            sb_puts(out, " (");
            put_clean(out, untyped(r->remote_mta), LINE_HARD / 2, 0);
            sb_puts(out, ")");
        }
    } else if (strcmp(action, "expanded") == 0) {
        sb_puts(out, "delivered to an alias or list and forwarded to its members");
    } else if (strcmp(action, "delivered") == 0) {
        sb_puts(out, "delivered");
    } else {
        sb_printf(out, "%s: %s (status %s)", strcmp(action, "delayed") == 0 ? "not delivered yet" : "delivery failed",
                  status_subject(status), status);
    }
}

static void build_text(struct notice *nt, const char *host, const char *mail_name)
{
    const struct dsn_info *info = nt->info;
    struct strbuf *sb = &nt->text;
    struct strbuf para = STRBUF_INIT;

    sb_printf(&para, "This is the %s mail system at host %s.", mail_name, host);
    put_wrapped(sb, "", sb_str(&para));
    sb_puts(sb, "\r\n");
    sb_reset(&para);

    if (info->kind == DSN_FAILURE) {
        put_wrapped(sb, "",
                    "Your message could not be delivered to one or more of its recipients. The mail "
                    "system has given up on the recipients listed below: each of them refused the "
                    "message for good, or could not be reached for as long as a message may wait "
                    "in the queue.");
        sb_puts(sb, "\r\n");
        if (nt->ret == RETURN_FULL)
            sb_puts(&para, "Your message is attached to this notice.");
        else if (nt->ret == RETURN_HEADERS && nt->too_big && !info->return_headers_only)
            sb_puts(&para, "The header of your message is attached; the message was too large to return "
                           "in full.");
        else if (nt->ret == RETURN_HEADERS)
            sb_puts(&para, "The header of your message is attached.");
        else
            sb_puts(&para, nt->empty ? "Your message was empty, so nothing of it is attached."
                                     : "Your message had no header to attach.");
        sb_puts(&para, " Please check each address below for typing mistakes and read the reason "
                       "given for it. If a reason is unclear or the problem persists, write to the "
                       "postmaster of this mail system (postmaster@");
        sb_puts(&para, host);
        sb_puts(&para, ") and include this notice.");
        put_wrapped(sb, "", sb_str(&para));
    } else if (info->kind == DSN_DELAY) {
        time_t until = 0;
        for (size_t i = 0; i < nt->n; i++)
            if (nt->rcpts[i].will_retry_until > until && strcmp(action_of(nt, &nt->rcpts[i]), "delayed") == 0)
                until = nt->rcpts[i].will_retry_until;
        char *date = until ? date_value(until) : NULL;
        sb_puts(&para, "Your message has not been delivered yet to the recipients listed below. ");
        if (date)
            sb_printf(&para, "The mail system will keep trying until %s.", date);
        else
            sb_puts(&para, "The mail system will keep trying for a while.");
        sb_puts(&para, " You do not need to send the message again. If it still cannot be delivered "
                       "when the mail system gives up, you will get another notice.");
        free(date);
        put_wrapped(sb, "", sb_str(&para));
    } else {
        int relayed = 0;
        for (size_t i = 0; i < nt->n; i++)
            relayed |= strcmp(action_of(nt, &nt->rcpts[i]), "relayed") == 0;
        sb_puts(&para, "Your message was delivered to the recipients listed below, as you asked to be "
                       "told.");
        if (relayed)
            sb_puts(&para, " A recipient marked as relayed was handed to a mail system that does not "
                           "report delivery, so no further notice will come for it.");
        put_wrapped(sb, "", sb_str(&para));
    }
    sb_puts(sb, "\r\n");

    for (size_t i = 0; i < nt->n; i++) {
        const struct dsn_rcpt *r = &nt->rcpts[i];
        sb_reset(&para);
        sb_putc(&para, '<');
        put_clean(&para, r->final_rcpt, SIZE_MAX, 1);
        sb_puts(&para, ">:");
        put_wrapped(sb, "", sb_str(&para));
        sb_reset(&para);
        text_reason(&para, nt, r);
        put_wrapped(sb, "    ", sb_str(&para));
        if (i + 1 < nt->n)
            sb_puts(sb, "\r\n");
    }
    sb_free(&para);
}

/* ---------------------------------------------------------------------------
 * part 2: the delivery status (RFC 3464 2.2, 2.3) */

static void put_date_field(struct strbuf *sb, const char *name, time_t t)
{
    char *date = date_value(t);
    if (date)
        put_field(sb, name, date);
    free(date);
}

static void build_status(struct notice *nt, const char *host)
{
    const struct dsn_info *info = nt->info;
    struct strbuf *sb = &nt->status;
    struct strbuf v = STRBUF_INIT;

    if (info->envid && *info->envid) {
        put_clean(&v, info->envid, SIZE_MAX, 0);
        put_field(sb, "Original-Envelope-Id", sb_str(&v));
        sb_reset(&v);
    }
    sb_printf(&v, "dns; %s", host);
    put_field(sb, "Reporting-MTA", sb_str(&v));
    sb_reset(&v);
    if (info->arrival)
        put_date_field(sb, "Arrival-Date", info->arrival);
    if (info->orig_queue_id && *info->orig_queue_id) {
        put_clean(&v, info->orig_queue_id, SIZE_MAX, 0);
        put_field(sb, "X-Tern-Queue-ID", sb_str(&v));
        sb_reset(&v);
    }
    if (info->orig_sender && *info->orig_sender) {
        put_address(&v, "rfc822", 6, "; ", info->orig_sender, nt->global);
        put_field(sb, "X-Tern-Sender", sb_str(&v));
        sb_reset(&v);
    }

    for (size_t i = 0; i < nt->n; i++) {
        const struct dsn_rcpt *r = &nt->rcpts[i];
        const char *action = action_of(nt, r);
        sb_puts(sb, "\r\n");
        if (r->orcpt && *r->orcpt) {
            put_orcpt(&v, r->orcpt, nt->global);
            put_field(sb, "Original-Recipient", sb_str(&v));
            sb_reset(&v);
        }
        put_address(&v, "rfc822", 6, "; ", r->final_rcpt, nt->global);
        put_field(sb, "Final-Recipient", sb_str(&v));
        sb_reset(&v);
        put_field(sb, "Action", action);
        put_field(sb, "Status", status_of(nt, r));
        if (r->remote_mta && *untyped(r->remote_mta)) {
            if (type_prefix_len(r->remote_mta) == 0)
                sb_puts(&v, "dns; ");
            put_clean(&v, r->remote_mta, LINE_HARD / 2, 0);
            put_field(sb, "Remote-MTA", sb_str(&v));
            sb_reset(&v);
        }
        if (r->diagnostic && *untyped(r->diagnostic)) {
            size_t tl = type_prefix_len(r->diagnostic);
            if (tl)
                sb_append(&v, r->diagnostic, tl);
            else
                sb_puts(&v, "x-tern");
            sb_puts(&v, "; ");
            if (put_clean(&v, untyped(r->diagnostic), BOUNCE_DIAG_MAX, nt->global))
                sb_puts(&v, "...");
            put_field(sb, "Diagnostic-Code", sb_str(&v));
            sb_reset(&v);
        }
        if (r->last_attempt)
            put_date_field(sb, "Last-Attempt-Date", r->last_attempt);
        if (r->will_retry_until && info->kind == DSN_DELAY && strcmp(action, "delayed") == 0)
            put_date_field(sb, "Will-Retry-Until", r->will_retry_until);
    }
    sb_free(&v);
}

/* ---------------------------------------------------------------------------
 * part 3: the original */

static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0) {
            errno = EIO; /* the queue file is shorter than its envelope says */
            return -1;
        }
        done += (size_t)r;
    }
    return 0;
}

/* Reads the start of the original and decides what part 3 holds. */
static int plan_return(struct notice *nt, int fd, uint64_t offset, uint64_t length)
{
    const struct dsn_info *info = nt->info;
    nt->too_big = length > info->max_returned;
    int full = info->kind == DSN_FAILURE && !info->return_headers_only && !nt->too_big;
    if (length == 0) {
        nt->empty = 1;
        nt->ret = RETURN_NONE;
        return 0;
    }
    nt->prefix_len = length < HEADER_READ_MAX ? (size_t)length : HEADER_READ_MAX;
    nt->prefix = xmalloc(nt->prefix_len + 1);
    if (read_at(fd, nt->prefix, nt->prefix_len, offset) != 0)
        return -1;
    nt->prefix[nt->prefix_len] = '\0';

    struct msg_header_info hi;
    msg_header_scan(nt->prefix, nt->prefix_len, &hi);
    size_t header_len = hi.header_len;
    int has_separator = hi.has_body_separator;
    int ended = has_separator || header_len < nt->prefix_len || nt->prefix_len == length;
    msg_header_info_free(&hi);

    if (full) {
        nt->ret = RETURN_FULL;
        nt->header_len = header_len;
        nt->insert_separator = ended && !has_separator && header_len < nt->prefix_len;
        return 0;
    }
    if (!ended) {
        /* The header goes on past what was read: keep its whole lines. */
        while (header_len > 0 && nt->prefix[header_len - 1] != '\n')
            header_len--;
    }
    nt->header_len = header_len;
    nt->ret = header_len ? RETURN_HEADERS : RETURN_NONE;
    if (nt->ret == RETURN_HEADERS) {
        nt->ret_8bit = has_8bit(nt->prefix, header_len);
        nt->ret_needs_crlf = nt->prefix[header_len - 1] != '\n';
    }
    return 0;
}

/* Looks for the boundary in the original's [offset, offset+length), and notes
 * whether the original has 8-bit bytes and how it ends. */
static int scan_original(struct notice *nt, int fd, uint64_t offset, uint64_t length, int *found)
{
    size_t blen = strlen(nt->boundary);
    char *buf = xmalloc(IO_CHUNK + blen);
    size_t keep = 0;
    unsigned char last = 0;
    int eight = 0;
    *found = 0;
    for (uint64_t pos = 0; pos < length;) {
        size_t want = length - pos < IO_CHUNK ? (size_t)(length - pos) : IO_CHUNK;
        if (read_at(fd, buf + keep, want, offset + pos) != 0) {
            int e = errno;
            free(buf);
            errno = e;
            return -1;
        }
        eight = eight || has_8bit(buf + keep, want);
        last = (unsigned char)buf[keep + want - 1];
        size_t total = keep + want;
        if (memmem(buf, total, nt->boundary, blen)) {
            *found = 1;
            break;
        }
        keep = total < blen - 1 ? total : blen - 1;
        memmove(buf, buf + total - keep, keep);
        pos += want;
    }
    free(buf);
    nt->ret_8bit = eight;
    nt->ret_needs_crlf = last != '\n';
    return 0;
}

static void make_boundary(struct notice *nt)
{
    static const char hex[] = "0123456789abcdef";
    /* RFC 2046 bchars; a notice_id is a queue ID, but check rather than trust. */
    static const char bchars[] = "'()+_,-./:=?";
    unsigned char rnd[BOUNDARY_RANDOM_BYTES];
    size_t o = 0;
    const char *id = nt->info->notice_id ? nt->info->notice_id : "";
    for (size_t i = 0; id[i] && o < BOUNDARY_ID_MAX; i++) {
        unsigned char c = (unsigned char)id[i];
        if ((c < 0x80 && ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) ||
            (c != '\0' && strchr(bchars, c)))
            nt->boundary[o++] = (char)c;
    }
    nt->boundary[o++] = '.';
    random_fill(rnd, sizeof rnd);
    for (size_t i = 0; i < sizeof rnd; i++) {
        nt->boundary[o++] = hex[rnd[i] >> 4];
        nt->boundary[o++] = hex[rnd[i] & 15];
    }
    nt->boundary[o] = '\0';
}

static int in_memory(const struct strbuf *sb, const char *needle)
{
    return sb->len && memmem(sb->buf, sb->len, needle, strlen(needle)) != NULL;
}

static int choose_boundary(struct notice *nt, int fd, uint64_t offset, uint64_t length)
{
    for (int tries = 0; tries < BOUNDARY_TRIES; tries++) {
        make_boundary(nt);
        if (in_memory(&nt->text, nt->boundary) || in_memory(&nt->status, nt->boundary))
            continue;
        if (nt->ret == RETURN_HEADERS &&
            memmem(nt->prefix, nt->header_len, nt->boundary, strlen(nt->boundary)))
            continue;
        if (nt->ret == RETURN_FULL) {
            int found;
            if (scan_original(nt, fd, offset, length, &found) != 0)
                return -1;
            if (found)
                continue;
        }
        return 0;
    }
    errno = EAGAIN;
    return -1;
}

/* Copies the original to w, with the empty line it lacks when planned. */
static int copy_original(struct qf_writer *w, struct notice *nt, int fd, uint64_t offset, uint64_t length)
{
    char *buf = xmalloc(IO_CHUNK);
    int rc = 0;
    for (uint64_t pos = 0; pos < length && rc == 0;) {
        size_t want = length - pos < IO_CHUNK ? (size_t)(length - pos) : IO_CHUNK;
        if (nt->insert_separator && pos < nt->header_len && nt->header_len - pos < want)
            want = (size_t)(nt->header_len - pos);
        if (nt->insert_separator && pos == nt->header_len && qf_writer_write(w, "\r\n", 2) != 0) {
            rc = -1;
            break;
        }
        if (read_at(fd, buf, want, offset + pos) != 0 || qf_writer_write(w, buf, want) != 0)
            rc = -1;
        pos += want;
    }
    int e = errno;
    free(buf);
    errno = e;
    return rc;
}

/* ---------------------------------------------------------------------------
 * the notice */

static const char *subject_of(enum dsn_kind kind)
{
    switch (kind) {
    case DSN_DELAY: return "Delayed Mail (still being retried)";
    case DSN_SUCCESS: return "Successful Mail Delivery Report";
    default: return "Undelivered Mail Returned to Sender";
    }
}

static void put_top_header(struct strbuf *sb, struct notice *nt, const char *host, const char *message_id,
                           const char *date, int body_8bit)
{
    const struct dsn_info *info = nt->info;
    sb_puts(sb, date);
    sb_printf(sb, "From: \"Mail Delivery System\" <MAILER-DAEMON@%s>\r\n", host);
    sb_puts(sb, "To: <");
    put_mailbox(sb, info->to);
    sb_puts(sb, ">\r\n");
    sb_printf(sb, "Subject: %s\r\n", subject_of(info->kind));
    sb_puts(sb, message_id);
    sb_puts(sb, "Auto-Submitted: auto-replied\r\n");
    sb_puts(sb, "MIME-Version: 1.0\r\n");
    sb_printf(sb, "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n",
              nt->boundary);
    sb_printf(sb, "Content-Transfer-Encoding: %s\r\n", body_8bit ? "8bit" : "7bit");
    sb_puts(sb, "\r\n");
    sb_puts(sb, "This is a MIME-encapsulated message: a delivery status notification.\r\n");
}

static void put_part3_header(struct strbuf *sb, const struct notice *nt)
{
    const char *what = nt->info->kind == DSN_FAILURE ? "Undelivered Message"
                       : nt->info->kind == DSN_DELAY ? "Delayed Message"
                                                     : "Delivered Message";
    const char *type;
    if (nt->ret == RETURN_FULL)
        type = nt->global ? "message/global" : "message/rfc822";
    else
        type = nt->global ? "message/global-headers" : "text/rfc822-headers";
    sb_printf(sb, "\r\n--%s\r\n", nt->boundary);
    sb_printf(sb, "Content-Description: %s%s\r\n", what, nt->ret == RETURN_FULL ? "" : " Headers");
    sb_printf(sb, "Content-Type: %s\r\n", type);
    if (nt->ret_8bit)
        sb_puts(sb, "Content-Transfer-Encoding: 8bit\r\n");
    sb_puts(sb, "\r\n");
}

static void notice_free(struct notice *nt)
{
    int e = errno;
    sb_free(&nt->text);
    sb_free(&nt->status);
    free(nt->prefix);
    errno = e;
}

int bounce_write_report(struct qf_writer *w, const struct dsn_info *info, const struct dsn_rcpt *rcpts,
                        size_t n, int orig_fd, uint64_t offset, uint64_t length, struct bounce_report *out)
{
    if (out)
        memset(out, 0, sizeof *out);
    if (!w || !info || !rcpts || n == 0 || !info->myhostname || !*info->myhostname || !info->to ||
        !*info->to || offset > (uint64_t)INT64_MAX || length > (uint64_t)INT64_MAX - offset) {
        errno = EINVAL;
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!rcpts[i].final_rcpt) {
            errno = EINVAL;
            return -1;
        }
    }
    char *message_id = msg_header_message_id(info->notice_id, info->myhostname);
    char *date = msg_header_date(info->now);
    if (!message_id || !date) {
        free(message_id);
        free(date);
        errno = EINVAL;
        return -1;
    }

    /* myhostname made a valid msg-id, so it is a dot-atom or a literal. */
    const char *host = info->myhostname;
    const char *mail_name = info->mail_name && *info->mail_name ? info->mail_name : "Tern";
    struct notice nt = {.info = info, .rcpts = rcpts, .n = n, .global = info->smtputf8 != 0};
    struct strbuf sb = STRBUF_INIT;
    int rc = -1;

    if (plan_return(&nt, orig_fd, offset, length) != 0)
        goto out;
    {
        /* The name in the greeting is ours to show, not trusted text. */
        struct strbuf name = STRBUF_INIT;
        put_clean(&name, mail_name, 64, 1);
        build_text(&nt, host, sb_str(&name));
        sb_free(&name);
    }
    build_status(&nt, host);
    if (choose_boundary(&nt, orig_fd, offset, length) != 0)
        goto out;

    int text_8bit = has_8bit(nt.text.buf, nt.text.len);
    int status_8bit = has_8bit(nt.status.buf, nt.status.len);
    put_top_header(&sb, &nt, host, message_id, date, text_8bit || status_8bit || nt.ret_8bit);

    sb_printf(&sb, "\r\n--%s\r\n", nt.boundary);
    sb_puts(&sb, "Content-Description: Notification\r\n");
    sb_printf(&sb, "Content-Type: text/plain; charset=%s\r\n", text_8bit ? "utf-8" : "us-ascii");
    if (text_8bit)
        sb_puts(&sb, "Content-Transfer-Encoding: 8bit\r\n");
    sb_puts(&sb, "\r\n");
    sb_append(&sb, nt.text.buf, nt.text.len);

    sb_printf(&sb, "\r\n--%s\r\n", nt.boundary);
    sb_puts(&sb, "Content-Description: Delivery report\r\n");
    sb_printf(&sb, "Content-Type: %s\r\n", nt.global ? "message/global-delivery-status" : "message/delivery-status");
    if (status_8bit)
        sb_puts(&sb, "Content-Transfer-Encoding: 8bit\r\n");
    sb_puts(&sb, "\r\n");
    sb_append(&sb, nt.status.buf, nt.status.len);

    if (nt.ret != RETURN_NONE) {
        put_part3_header(&sb, &nt);
        if (nt.ret == RETURN_HEADERS)
            sb_append(&sb, nt.prefix, nt.header_len);
    }
    if (qf_writer_write(w, sb.buf, sb.len) != 0)
        goto out;
    if (nt.ret == RETURN_FULL && copy_original(w, &nt, orig_fd, offset, length) != 0)
        goto out;
    sb_reset(&sb);
    if (nt.ret != RETURN_NONE && nt.ret_needs_crlf)
        sb_puts(&sb, "\r\n");
    sb_printf(&sb, "\r\n--%s--\r\n", nt.boundary);
    if (qf_writer_write(w, sb.buf, sb.len) != 0)
        goto out;

    if (out) {
        out->body_8bit = text_8bit || status_8bit || nt.ret_8bit;
        out->header_8bit = has_8bit(info->to, strlen(info->to));
        out->returned_full = nt.ret == RETURN_FULL;
        out->returned_headers = nt.ret == RETURN_HEADERS;
    }
    rc = 0;
out:
    notice_free(&nt);
    {
        int e = errno;
        sb_free(&sb);
        free(message_id);
        free(date);
        errno = e;
    }
    return rc;
}

int bounce_write(struct qf_writer *w, const struct dsn_info *info, const struct dsn_rcpt *rcpts, size_t n,
                 int orig_fd, uint64_t offset, uint64_t length)
{
    return bounce_write_report(w, info, rcpts, n, orig_fd, offset, length, NULL);
}
