/* msg_header: header scanning and the fields cleanup adds (see msg_header.h). */
#include "msg/msg_header.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

/* RFC 5322 2.1.1: lines SHOULD stay within 78 characters. */
#define FOLD_WIDTH 78
/* RFC 2047 2: an encoded-word is at most 75 characters. */
#define ENCODED_WORD_MAX 75
/* A space-free run longer than this cannot be folded into 78-byte lines, so a name
 * holding one is written as encoded-words, which may be split anywhere. */
#define NAME_RUN_MAX 60

/* ---------------------------------------------------------------------------
 * Lines and fields */

struct line {
    size_t start;
    size_t end;  /* end of the content: before CR LF, LF, or a final CR */
    size_t next; /* start of the next line */
};

static int next_line(const char *buf, size_t len, size_t pos, struct line *ln)
{
    if (pos >= len)
        return 0;
    const char *nl = memchr(buf + pos, '\n', len - pos);
    size_t end = nl ? (size_t)(nl - buf) : len;
    ln->start = pos;
    ln->next = nl ? end + 1 : len;
    if (end > pos && buf[end - 1] == '\r')
        end--;
    ln->end = end;
    return 1;
}

enum line_kind { LINE_EMPTY, LINE_CONT, LINE_FIELD, LINE_OTHER };

struct field_name {
    size_t len;         /* name without the white space before the colon */
    size_t value_start; /* after the colon */
};

static int is_ftext(unsigned char c)
{
    return c >= 33 && c <= 126 && c != ':';
}

static enum line_kind classify(const char *buf, const struct line *ln, struct field_name *fn)
{
    size_t i = ln->start;
    if (i == ln->end)
        return LINE_EMPTY;
    if (buf[i] == ' ' || buf[i] == '\t')
        return LINE_CONT;
    while (i < ln->end && is_ftext((unsigned char)buf[i]))
        i++;
    size_t name_len = i - ln->start;
    if (name_len == 0)
        return LINE_OTHER;
    while (i < ln->end && (buf[i] == ' ' || buf[i] == '\t'))
        i++; /* obs-optional: white space before the colon */
    if (i >= ln->end || buf[i] != ':')
        return LINE_OTHER;
    fn->len = name_len;
    fn->value_start = i + 1;
    return LINE_FIELD;
}

static int name_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

/* Trims SP/HTAB at both ends and hands the string over. */
static char *detach_trimmed(struct strbuf *sb)
{
    const char *s = strbuf_str(sb);
    size_t start = 0, end = sb->len;
    while (start < end && (s[start] == ' ' || s[start] == '\t'))
        start++;
    while (end > start && (s[end - 1] == ' ' || s[end - 1] == '\t'))
        end--;
    char *value = xmalloc(end - start + 1);
    memcpy(value, s + start, end - start);
    value[end - start] = '\0';
    strbuf_free(sb);
    return value;
}

/* Counts one field; returns where its value must go when it is to be kept. */
static char **count_field(struct msg_header_info *h, const char *name, size_t len)
{
    if (name_is(name, len, "From"))
        return h->has_from++ == 0 ? &h->from : NULL;
    if (name_is(name, len, "Message-ID"))
        return h->has_message_id++ == 0 ? &h->message_id : NULL;
    if (name_is(name, len, "Date"))
        h->has_date++;
    else if (name_is(name, len, "Sender"))
        h->has_sender++;
    else if (name_is(name, len, "To"))
        h->has_to++;
    else if (name_is(name, len, "Cc"))
        h->has_cc++;
    else if (name_is(name, len, "Bcc"))
        h->has_bcc++;
    else if (name_is(name, len, "Received"))
        h->received_count++;
    else if (len >= 7 && strncasecmp(name, "Resent-", 7) == 0)
        h->has_resent++;
    return NULL;
}

int msg_header_scan(const char *buf, size_t len, struct msg_header_info *out)
{
    memset(out, 0, sizeof *out);
    if (buf == NULL) {
        if (len > 0)
            return -1;
        return 0;
    }
    struct line ln;
    struct field_name fn;
    struct strbuf value = STRBUF_INIT;
    char **value_dst = NULL; /* the field being unfolded into value, if any */
    int in_field = 0;
    size_t pos = 0, header_end = 0, body = 0;
    int ended = 0;

    while (next_line(buf, len, pos, &ln)) {
        enum line_kind kind = classify(buf, &ln, &fn);
        if (kind == LINE_FIELD) {
            if (value_dst)
                *value_dst = detach_trimmed(&value);
            value_dst = count_field(out, buf + ln.start, fn.len);
            if (value_dst)
                strbuf_append(&value, buf + fn.value_start, ln.end - fn.value_start);
            in_field = 1;
        } else if (kind == LINE_CONT && in_field) {
            if (value_dst)
                strbuf_append(&value, buf + ln.start, ln.end - ln.start);
        } else {
            header_end = ln.start;
            if (kind == LINE_EMPTY) {
                out->has_body_separator = 1;
                body = ln.next;
            } else {
                out->malformed = in_field; /* no field yet: all of it is body */
                body = ln.start;
            }
            ended = 1;
            break;
        }
        pos = ln.next;
    }
    if (!ended)
        header_end = body = len;
    if (value_dst)
        *value_dst = detach_trimmed(&value);
    strbuf_free(&value);

    out->header_len = header_end;
    out->body_offset = body;
    for (size_t i = 0; i < header_end; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c >= 0x80)
            out->has_8bit = 1;
        else if (c == '\0')
            out->has_nul = 1;
    }
    return 0;
}

void msg_header_info_free(struct msg_header_info *h)
{
    if (h == NULL)
        return;
    free(h->message_id);
    free(h->from);
    h->message_id = NULL;
    h->from = NULL;
}

size_t msg_header_remove_field(char *buf, size_t len, const char *name)
{
    if (buf == NULL || name == NULL || *name == '\0')
        return len;
    struct line ln;
    struct field_name fn;
    size_t rd = 0, wr = 0;
    int in_field = 0, removing = 0;

    while (next_line(buf, len, rd, &ln)) {
        enum line_kind kind = classify(buf, &ln, &fn);
        if (kind == LINE_FIELD) {
            in_field = 1;
            removing = name_is(buf + ln.start, fn.len, name);
        } else if (kind != LINE_CONT || !in_field) {
            break; /* separator, body, or no header at all */
        }
        if (!removing) {
            size_t n = ln.next - ln.start;
            if (wr != ln.start)
                memmove(buf + wr, buf + ln.start, n);
            wr += n;
        }
        rd = ln.next;
    }
    size_t rest = len - rd;
    if (wr != rd && rest > 0)
        memmove(buf + wr, buf + rd, rest);
    return wr + rest;
}

/* ---------------------------------------------------------------------------
 * Building folded fields */

struct fold_out {
    struct strbuf sb;
    size_t line_len;
    int words_on_line;
    int need_space;     /* a word must be preceded by a space (or a fold) */
    const char *prefix; /* starts a continuation line: " " or "\t" */
};

static void fold_start(struct fold_out *o, const char *field_name, const char *prefix)
{
    memset(o, 0, sizeof *o);
    strbuf_puts(&o->sb, field_name);
    o->line_len = strlen(field_name);
    o->need_space = 1;
    o->prefix = prefix;
}

/* Appends one unbreakable word, folding before it when it would pass the width.
 * The fold replaces the separating space, so unfolding gives back a single
 * space (prefix " ") or an equivalent FWS (prefix "\t"). */
static void fold_word_n(struct fold_out *o, const char *word, size_t len)
{
    if (o->words_on_line > 0 && o->line_len + 1 + len > FOLD_WIDTH) {
        strbuf_puts(&o->sb, "\r\n");
        strbuf_puts(&o->sb, o->prefix);
        o->line_len = strlen(o->prefix);
        o->words_on_line = 0;
    } else if (o->need_space) {
        strbuf_putc(&o->sb, ' ');
        o->line_len++;
    }
    strbuf_append(&o->sb, word, len);
    o->line_len += len;
    o->words_on_line++;
    o->need_space = 1;
}

static void fold_word(struct fold_out *o, const char *word)
{
    fold_word_n(o, word, strlen(word));
}

/* Each space-separated piece of text as a word (runs of spaces count as one). */
static void fold_words(struct fold_out *o, const char *text)
{
    const char *p = text;
    for (;;) {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            return;
        const char *start = p;
        while (*p != '\0' && *p != ' ')
            p++;
        fold_word_n(o, start, (size_t)(p - start));
    }
}

/* Ends the line here; the next word starts the continuation line. */
static void fold_break(struct fold_out *o)
{
    strbuf_puts(&o->sb, "\r\n");
    strbuf_puts(&o->sb, o->prefix);
    o->line_len = strlen(o->prefix);
    o->words_on_line = 0;
    o->need_space = 0;
}

static char *fold_finish(struct fold_out *o)
{
    strbuf_puts(&o->sb, "\r\n");
    return strbuf_detach(&o->sb);
}

/* Network text placed as an atom or inside a comment in Received: anything that
 * could end the token, the comment or the field becomes '?'. */
static char *clean_token(const char *s)
{
    char *out = xstrdup(s ? s : "unknown");
    if (*out == '\0') {
        free(out);
        return xstrdup("unknown");
    }
    for (char *p = out; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= ' ' || c >= 0x7f || strchr("()\\\";", c) != NULL)
            *p = '?';
    }
    return out;
}

/* Free text (an address, the TLS comment): only control characters go. */
static char *clean_ctl(const char *s)
{
    char *out = xstrdup(s);
    for (char *p = out; *p; p++)
        if (str_is_ctl((unsigned char)*p))
            *p = '?';
    return out;
}

/* ---------------------------------------------------------------------------
 * Date */

static const char *const day_names[7] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const month_names[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* A zone abbreviation safe inside a comment: "UTC", "CET", "+03". */
static int zone_name_ok(const char *z)
{
    if (z == NULL || *z == '\0' || strlen(z) > 16)
        return 0;
    for (; *z; z++) {
        unsigned char c = (unsigned char)*z;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '-'))
            return 0;
    }
    return 1;
}

/* RFC 5322 3.3 date-time in local time; the names are English whatever the locale. */
static int format_date(time_t t, struct strbuf *sb)
{
    struct tm tm;
    if (localtime_r(&t, &tm) == NULL)
        return 0;
    long long year = (long long)tm.tm_year + 1900;
    if (year < 1900 || tm.tm_wday < 0 || tm.tm_wday > 6 || tm.tm_mon < 0 || tm.tm_mon > 11)
        return 0;
    long offset = tm.tm_gmtoff / 60;
    char sign = '+';
    if (offset < 0) {
        sign = '-';
        offset = -offset;
    }
    strbuf_printf(sb, "%s, %d %s %lld %02d:%02d:%02d %c%02ld%02ld", day_names[tm.tm_wday],
              tm.tm_mday, month_names[tm.tm_mon], year, tm.tm_hour, tm.tm_min, tm.tm_sec,
              sign, offset / 60, offset % 60);
    if (zone_name_ok(tm.tm_zone))
        strbuf_printf(sb, " (%s)", tm.tm_zone);
    return 1;
}

char *msg_header_date(time_t t)
{
    struct strbuf sb = STRBUF_INIT;
    strbuf_puts(&sb, "Date: ");
    if (!format_date(t, &sb)) {
        strbuf_free(&sb);
        return NULL;
    }
    strbuf_puts(&sb, "\r\n");
    return strbuf_detach(&sb);
}

/* ---------------------------------------------------------------------------
 * Message-ID */

static int is_atext(unsigned char c, int allow_8bit)
{
    return c >= 0x80 ? allow_8bit : str_is_atext(c);
}

/* no-fold-literal of RFC 5322 3.6.4: "[" *dtext "]". */
static int is_no_fold_literal(const char *s)
{
    size_t len = strlen(s);
    if (len < 2 || s[0] != '[' || s[len - 1] != ']')
        return 0;
    for (size_t i = 1; i + 1 < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 33 || c > 126 || c == '[' || c == ']' || c == '\\')
            return 0;
    }
    return 1;
}

char *msg_header_message_id(const char *queue_id, const char *myhostname)
{
    if (queue_id == NULL || myhostname == NULL ||
        !str_is_dot_atom(queue_id, strlen(queue_id), 0))
        return NULL;
    if (!str_is_dot_atom(myhostname, strlen(myhostname), 0) && !is_no_fold_literal(myhostname))
        return NULL;
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm) == NULL)
        return NULL;
    return xasprintf("Message-ID: <%04lld%02d%02d%02d%02d%02d.%s@%s>\r\n",
                     (long long)tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, queue_id, myhostname);
}

/* ---------------------------------------------------------------------------
 * From */

/* Controls become spaces (a CR or LF here would forge a header line); runs of
 * white space collapse to one space; both ends are trimmed. */
static char *clean_name(const char *name)
{
    char *out = xmalloc(strlen(name) + 1);
    size_t n = 0;
    int space = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (str_is_ctl(*p) || *p == ' ') {
            space = 1;
            continue;
        }
        if (space && n > 0)
            out[n++] = ' ';
        space = 0;
        out[n++] = (char)*p;
    }
    out[n] = '\0';
    return out;
}

static int name_needs_encoding(const char *name)
{
    size_t run = 0;
    if (strstr(name, "=?") != NULL)
        return 1;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (*p >= 0x80)
            return 1;
        run = *p == ' ' ? 0 : run + 1;
        if (run > NAME_RUN_MAX)
            return 1;
    }
    return 0;
}

static int name_is_atoms(const char *name)
{
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p != ' ' && !is_atext(*p, 0))
            return 0;
    return 1;
}

/* Q encoding for a phrase (RFC 2047 5(3)): only these stand for themselves. */
static int q_plain(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("!*+-/", c) != NULL;
}

static size_t q_len(const unsigned char *s, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += (q_plain(s[i]) || s[i] == ' ') ? 1 : 3;
    return len;
}

static void q_put(struct strbuf *sb, const unsigned char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        if (q_plain(s[i])) {
            strbuf_putc(sb, (char)s[i]);
        } else if (s[i] == ' ') {
            strbuf_putc(sb, '_');
        } else {
            strbuf_putc(sb, '=');
            strbuf_putc(sb, hex[s[i] >> 4]);
            strbuf_putc(sb, hex[s[i] & 15]);
        }
    }
}

/* The whole name as a sequence of encoded-words, each sized to fit the line it
 * lands on, never splitting a UTF-8 character (RFC 2047 5). White space between
 * encoded-words is not displayed, so the name's own spaces are encoded as '_'. */
static void put_encoded_name(struct fold_out *o, const char *name)
{
    int utf8 = str_is_utf8(name, strlen(name));
    const char *charset = utf8 ? "UTF-8" : "unknown-8bit";
    size_t overhead = strlen("=?") + strlen(charset) + strlen("?Q?") + strlen("?=");
    const unsigned char *s = (const unsigned char *)name;
    size_t len = strlen(name), i = 0;
    struct strbuf word = STRBUF_INIT;

    while (i < len) {
        size_t room = o->line_len + 1 < FOLD_WIDTH ? FOLD_WIDTH - o->line_len - 1 : 0;
        if (room < overhead + 12 && o->words_on_line > 0)
            room = FOLD_WIDTH - strlen(o->prefix); /* fold_word will start a new line */
        if (room > ENCODED_WORD_MAX)
            room = ENCODED_WORD_MAX;
        size_t budget = room > overhead + 12 ? room - overhead : 12;

        strbuf_reset(&word);
        strbuf_printf(&word, "=?%s?Q?", charset);
        size_t used = 0;
        while (i < len) {
            size_t n = utf8 ? str_utf8_len(s + i, len - i) : 1;
            size_t enc = q_len(s + i, n);
            if (used > 0 && used + enc > budget)
                break;
            q_put(&word, s + i, n);
            used += enc;
            i += n;
        }
        strbuf_puts(&word, "?=");
        fold_word_n(o, word.buf, word.len);
    }
    strbuf_free(&word);
}

/* A quoted string, folded at its spaces (FWS inside quoted-string, RFC 5322 3.2.4). */
static void put_quoted_name(struct fold_out *o, const char *name)
{
    struct strbuf q = STRBUF_INIT;
    strbuf_putc(&q, '"');
    for (const char *p = name; *p; p++) {
        if (*p == '"' || *p == '\\')
            strbuf_putc(&q, '\\');
        strbuf_putc(&q, *p);
    }
    strbuf_putc(&q, '"');
    fold_words(o, q.buf); /* clean_name left single spaces only */
    strbuf_free(&q);
}

/* A whole RFC 5321 Quoted-string, as the SMTP side keeps a quoted local part. */
static int is_quoted_string(const char *s, size_t len)
{
    if (len < 2 || s[0] != '"' || s[len - 1] != '"')
        return 0;
    for (size_t i = 1; i + 1 < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || str_is_ctl(c))
            return 0;
        if (c == '\\') {
            if (i + 2 >= len || str_is_ctl((unsigned char)s[i + 1]))
                return 0; /* the escape would eat the closing quote */
            i++;
        }
    }
    return 1;
}

/* The address as Tern keeps it (RFC 5321 form: local part a dot-atom or a quoted
 * string) is written unchanged; a local part that is neither is taken as the
 * unquoted form and quoted (RFC 5321 4.1.2). */
static void put_external_addr(struct strbuf *sb, const char *addr)
{
    const char *at = strrchr(addr, '@');
    size_t local_len = at ? (size_t)(at - addr) : strlen(addr);
    if (str_is_dot_atom(addr, local_len, 1) || is_quoted_string(addr, local_len)) {
        strbuf_append(sb, addr, local_len);
    } else {
        strbuf_putc(sb, '"');
        for (size_t i = 0; i < local_len; i++) {
            if (addr[i] == '"' || addr[i] == '\\')
                strbuf_putc(sb, '\\');
            strbuf_putc(sb, addr[i]);
        }
        strbuf_putc(sb, '"');
    }
    if (at)
        strbuf_puts(sb, at);
}

char *msg_header_from(const char *sender_addr, const char *full_name)
{
    if (sender_addr == NULL || *sender_addr == '\0')
        return NULL;
    for (const unsigned char *p = (const unsigned char *)sender_addr; *p; p++)
        if (str_is_ctl(*p))
            return NULL;

    struct fold_out o;
    struct strbuf addr = STRBUF_INIT;
    char *name = clean_name(full_name ? full_name : "");
    fold_start(&o, "From:", " ");
    if (*name != '\0') {
        if (name_needs_encoding(name))
            put_encoded_name(&o, name);
        else if (name_is_atoms(name))
            fold_words(&o, name);
        else
            put_quoted_name(&o, name);
        strbuf_putc(&addr, '<');
        put_external_addr(&addr, sender_addr);
        strbuf_putc(&addr, '>');
    } else {
        put_external_addr(&addr, sender_addr);
    }
    fold_word_n(&o, addr.buf, addr.len);
    strbuf_free(&addr);
    free(name);
    return fold_finish(&o);
}

/* ---------------------------------------------------------------------------
 * Received */

/* Appends "keyword value" as one unit: a clause is never split from its value. */
static void fold_clause(struct fold_out *o, const char *keyword, const char *value)
{
    char *clause = xasprintf("%s %s", keyword, value);
    fold_word(o, clause);
    free(clause);
}

char *msg_header_received(const struct msg_received *r)
{
    struct strbuf date = STRBUF_INIT;
    if (!format_date(r->when, &date)) {
        strbuf_free(&date);
        return NULL;
    }
    struct fold_out o;
    char *by = clean_token(r->by_host);
    char *id = clean_token(r->queue_id);
    char *mail_name = clean_token(r->mail_name ? r->mail_name : "Tern");
    char *tmp;

    fold_start(&o, "Received:", "\t");
    if (r->client_addr != NULL) {
        char *name = clean_token(r->client_name);
        char *helo = r->helo ? clean_token(r->helo) : xstrdup(name);
        char *addr = clean_token(r->client_addr);
        int v6 = strchr(addr, ':') != NULL && strncasecmp(addr, "IPv6:", 5) != 0;
        char *proto = clean_token(r->protocol ? r->protocol : "SMTP");

        fold_clause(&o, "from", helo);
        tmp = xasprintf("(%s", name);
        fold_word(&o, tmp);
        free(tmp);
        tmp = xasprintf("[%s%s])", v6 ? "IPv6:" : "", addr);
        fold_word(&o, tmp);
        free(tmp);
        if (r->tls_info != NULL && r->tls_info[strspn(r->tls_info, " ")] != '\0') {
            char *tls = clean_ctl(r->tls_info);
            fold_break(&o); /* never a line of white space only (RFC 5322 3.2.2) */
            fold_words(&o, tls);
            free(tls);
        }
        fold_break(&o);
        fold_clause(&o, "by", by);
        tmp = xasprintf("(%s)", mail_name);
        fold_word(&o, tmp);
        free(tmp);
        fold_clause(&o, "with", proto);
        free(name);
        free(helo);
        free(addr);
        free(proto);
    } else {
        fold_clause(&o, "by", by);
        tmp = xasprintf("(%s,", mail_name);
        fold_word(&o, tmp);
        free(tmp);
        tmp = xasprintf("%lu)", (unsigned long)r->uid);
        fold_clause(&o, "from userid", tmp);
        free(tmp);
        fold_break(&o);
    }
    if (r->for_rcpt != NULL) {
        fold_clause(&o, "id", id);
        fold_break(&o);
        char *rcpt = clean_ctl(r->for_rcpt);
        tmp = xasprintf("<%s>;", rcpt);
        fold_clause(&o, "for", tmp);
        free(tmp);
        free(rcpt);
    } else {
        tmp = xasprintf("%s;", id);
        fold_clause(&o, "id", tmp);
        free(tmp);
    }
    fold_word_n(&o, date.buf, date.len);
    strbuf_free(&date);
    free(by);
    free(id);
    free(mail_name);
    return fold_finish(&o);
}
