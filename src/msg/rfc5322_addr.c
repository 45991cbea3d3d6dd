/* rfc5322_addr: addresses out of header field values (see rfc5322_addr.h).
 *
 * A lexer turns the value into tokens (atoms, quoted strings, domain literals and
 * the specials that matter), dropping white space and comments; a loop-driven
 * parser with one token of lookahead recognises items. Nothing recurses: comments
 * are skipped with a depth counter and groups cannot nest. */
#include "msg/rfc5322_addr.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

enum tok_type {
    TOK_END,
    TOK_ERROR,   /* a byte or construct no item can contain */
    TOK_ATOM,
    TOK_QSTR,    /* text holds the content, quoted-pairs and folding resolved */
    TOK_LITERAL, /* text holds the content between the brackets, white space dropped */
    TOK_SPECIAL  /* one of < > @ , ; : . in special */
};

struct lexer {
    const unsigned char *p; /* next unread byte */
    enum tok_type type;
    char special;
    int has_ctl;     /* TOK_QSTR: held a control character (never valid in SMTP) */
    int obs_literal; /* TOK_LITERAL: held obs-dtext (quoted-pairs, controls) */
    int bad_eol;     /* a CR or LF somewhere that was not CRLF folding */
    struct strbuf text;
};

/* atext of RFC 5322 3.2.3, plus UTF-8 bytes (RFC 6532 3.2). */
static int is_atext(unsigned char c)
{
    return c >= 0x80 || str_is_atext(c);
}

/* Steps over a CR or LF at lx->p. CRLF then SP/HTAB is folding, invisible. LF then
 * SP/HTAB is taken as folding too (a caller that stripped the CRs), but like a
 * stray CR or LF it makes the value invalid for rfc5322_addr_from_valid. Returns 1 when
 * the line end was (taken as) folding. */
static int skip_eol(struct lexer *lx)
{
    const unsigned char *p = lx->p;
    if (p[0] == '\r' && p[1] == '\n' && (p[2] == ' ' || p[2] == '\t')) {
        lx->p += 2;
        return 1;
    }
    lx->bad_eol = 1;
    lx->p++;
    return p[0] == '\n' && (p[1] == ' ' || p[1] == '\t');
}

/* Leaves p after the comment. Returns 0 for an unterminated or too deeply nested
 * comment; an over-deep one is still skipped to its end so parsing can resume. */
static int skip_comment(struct lexer *lx)
{
    int depth = 0, too_deep = 0;
    for (;;) {
        unsigned char c = *lx->p;
        if (c == '\0')
            return 0;
        if (c == '\r' || c == '\n') {
            skip_eol(lx);
            continue;
        }
        lx->p++;
        if (c == '\\') {
            if (*lx->p == '\0')
                return 0;
            lx->p++;
        } else if (c == '(') {
            if (++depth > RFC5322_MAX_COMMENT_DEPTH)
                too_deep = 1;
        } else if (c == ')') {
            if (--depth == 0)
                return !too_deep;
        }
    }
}

static enum tok_type lex_quoted(struct lexer *lx)
{
    lx->p++; /* opening quote */
    for (;;) {
        unsigned char c = *lx->p;
        if (c == '\0')
            return TOK_ERROR;
        if (c == '\r' || c == '\n') {
            if (!skip_eol(lx))
                lx->has_ctl = 1; /* not qtext, not even obsolete */
            continue;            /* folding is invisible; the WSP after it stays */
        }
        lx->p++;
        if (c == '"')
            return TOK_QSTR;
        if (c == '\\') {
            c = *lx->p;
            if (c == '\0')
                return TOK_ERROR;
            lx->p++;
        }
        if (str_is_ctl(c))
            lx->has_ctl = 1;
        strbuf_putc(&lx->text, (char)c);
    }
}

/* A domain literal. The obsolete quoted-pairs and controls (obs-dtext) are valid
 * when reading (RFC 5322 4.4) but no use as a destination: flagged, not refused.
 * A token that is no literal at all is still consumed to its ']' so the next item
 * parses. */
static enum tok_type lex_literal(struct lexer *lx)
{
    int bad = 0;
    lx->p++; /* '[' */
    for (;;) {
        unsigned char c = *lx->p;
        if (c == '\0')
            return TOK_ERROR;
        if (c == '\r' || c == '\n') {
            if (!skip_eol(lx))
                bad = 1;
            continue;
        }
        lx->p++;
        if (c == ']')
            return bad ? TOK_ERROR : TOK_LITERAL;
        if (c == ' ' || c == '\t')
            continue;
        if (c == '\\') {
            lx->obs_literal = 1;
            if (*lx->p == '\0')
                return TOK_ERROR;
            lx->p++;
        } else if (c == '[') {
            bad = 1;
        } else if (str_is_ctl(c)) {
            lx->obs_literal = 1;
        } else {
            strbuf_putc(&lx->text, (char)c); /* dtext, UTF-8 included (RFC 6532) */
        }
    }
}

static void advance(struct lexer *lx)
{
    for (;;) {
        unsigned char c = *lx->p;
        if (c == ' ' || c == '\t') {
            lx->p++;
        } else if (c == '\r' || c == '\n') {
            skip_eol(lx);
        } else if (c == '(') {
            if (!skip_comment(lx)) {
                lx->type = TOK_ERROR;
                return;
            }
        } else {
            break;
        }
    }
    strbuf_reset(&lx->text);
    lx->has_ctl = 0;
    lx->obs_literal = 0;
    unsigned char c = *lx->p;
    if (c == '\0') {
        lx->type = TOK_END;
    } else if (is_atext(c)) {
        const unsigned char *start = lx->p;
        while (is_atext(*lx->p))
            lx->p++;
        strbuf_append(&lx->text, start, (size_t)(lx->p - start));
        lx->type = TOK_ATOM;
    } else if (c == '"') {
        lx->type = lex_quoted(lx);
    } else if (c == '[') {
        lx->type = lex_literal(lx);
    } else if (strchr("<>@,;:.", c) != NULL) {
        lx->p++;
        lx->type = TOK_SPECIAL;
        lx->special = (char)c;
    } else {
        lx->p++; /* ')' ']' '\' or a control character */
        lx->type = TOK_ERROR;
    }
}

struct parser {
    struct lexer lx;
    struct strbuf local; /* the current run of words and dots */
    struct strbuf out;   /* the address being built */
    struct strbuf scratch;
    int collect;         /* store addresses (rfc5322_addr_from_valid only counts) */
    char **addrs;
    size_t n, cap;
    int items;   /* addresses and groups accepted */
    int errors;  /* items skipped */
    int lenient; /* accepted, but not valid in a From: (see rfc5322_addr_from_valid) */
    int unusable; /* the current item is valid but cannot be an SMTP address */
    int bad_eol; /* a stray CR or LF (see struct lexer) */
};

static int is_special(const struct parser *ps, char c)
{
    return ps->lx.type == TOK_SPECIAL && ps->lx.special == c;
}

/* What a run of words and dots can still be: a display name, a local part, or
 * neither. */
struct run {
    int words;
    int dots;
    int adjacent;  /* two words without a dot between: a phrase, never a local part */
    int bad_dots;  /* leading, doubled or trailing dot: lenient as a local part */
    int first_dot; /* starts with a dot: lenient as a phrase too (obs-phrase) */
    int ctl;       /* a quoted word held a control character */
};

static struct run read_run(struct parser *ps)
{
    struct run r = {0, 0, 0, 0, 0, 0};
    int last = 0; /* 0 nothing yet, 1 word, 2 dot */
    strbuf_reset(&ps->local);
    for (;;) {
        if (ps->lx.type == TOK_ATOM || ps->lx.type == TOK_QSTR) {
            if (last == 1)
                r.adjacent = 1;
            if (ps->lx.has_ctl)
                r.ctl = 1;
            strbuf_append(&ps->local, ps->lx.text.buf, ps->lx.text.len);
            r.words++;
            last = 1;
        } else if (is_special(ps, '.')) {
            if (last != 1)
                r.bad_dots = 1;
            if (last == 0)
                r.first_dot = 1;
            strbuf_putc(&ps->local, '.');
            r.dots++;
            last = 2;
        } else {
            break;
        }
        advance(&ps->lx);
    }
    if (last == 2)
        r.bad_dots = 1;
    return r;
}

/* The local part as RFC 5321 wants it: a dot-atom, or else a quoted string. */
static void put_local(struct strbuf *out, const struct strbuf *local)
{
    const char *s = strbuf_str(local);
    if (str_is_dot_atom(s, local->len, 1)) {
        strbuf_append(out, s, local->len);
        return;
    }
    strbuf_putc(out, '"');
    for (size_t i = 0; i < local->len; i++) {
        if (s[i] == '"' || s[i] == '\\')
            strbuf_putc(out, '\\');
        strbuf_putc(out, s[i]);
    }
    strbuf_putc(out, '"');
}

/* Appends the domain (dot-atom with optional CFWS around the dots, or a literal). */
static int parse_domain(struct parser *ps, struct strbuf *dst)
{
    if (ps->lx.type == TOK_LITERAL) {
        if (ps->lx.obs_literal)
            ps->unusable = 1;
        strbuf_putc(dst, '[');
        strbuf_append(dst, ps->lx.text.buf, ps->lx.text.len);
        strbuf_putc(dst, ']');
        advance(&ps->lx);
        return 1;
    }
    for (;;) {
        if (ps->lx.type != TOK_ATOM)
            return 0;
        /* Each atom is one label: a host name label neither starts nor ends
         * with a hyphen (RFC 5321 4.1.2, RFC 1035). */
        if (ps->lx.text.buf[0] == '-' || ps->lx.text.buf[ps->lx.text.len - 1] == '-')
            ps->lenient++;
        strbuf_append(dst, ps->lx.text.buf, ps->lx.text.len);
        advance(&ps->lx);
        if (!is_special(ps, '.'))
            return 1;
        strbuf_putc(dst, '.');
        advance(&ps->lx);
    }
}

/* A run that is to be a local part has been read; builds "local[@domain]" in out. */
static int finish_addr_spec(struct parser *ps, const struct run *r)
{
    if (r->words == 0 || r->adjacent)
        return 0;
    if (r->ctl)
        ps->unusable = 1; /* obs-qtext, obs-qp or a tab: valid, but not in SMTP */
    if (r->bad_dots)
        ps->lenient++;
    strbuf_reset(&ps->out);
    put_local(&ps->out, &ps->local);
    if (!is_special(ps, '@')) {
        ps->lenient++; /* no domain: the caller appends myorigin */
        return 1;
    }
    advance(&ps->lx);
    strbuf_putc(&ps->out, '@');
    return parse_domain(ps, &ps->out);
}

/* obs-route: "@a,@b:" before the addr-spec in an angle addr; ignored (RFC 5322 4.4). */
static int skip_route(struct parser *ps)
{
    int domains = 0;
    for (;;) {
        if (is_special(ps, ',')) {
            advance(&ps->lx);
        } else if (is_special(ps, '@')) {
            advance(&ps->lx);
            strbuf_reset(&ps->scratch);
            if (!parse_domain(ps, &ps->scratch))
                return 0;
            domains++;
        } else if (is_special(ps, ':')) {
            advance(&ps->lx);
            return domains > 0;
        } else {
            return 0;
        }
    }
}

static void emit(struct parser *ps)
{
    ps->items++;
    if (ps->unusable || !ps->collect || ps->n >= (size_t)INT_MAX)
        return;
    ps->addrs = xgrow(ps->addrs, &ps->cap, ps->n + 1, sizeof *ps->addrs);
    ps->addrs[ps->n++] = xstrndup(strbuf_str(&ps->out), ps->out.len);
}

static int at_item_end(const struct parser *ps, int in_group)
{
    return ps->lx.type == TOK_END || is_special(ps, ',') || (in_group && is_special(ps, ';'));
}

/* Skips the rest of a broken item: to the next comma outside angle brackets (and,
 * at the top level, outside a group), or to the ';' closing the group we are in. */
static void skip_item(struct parser *ps, int in_group, int angle)
{
    int group = 0;
    ps->errors++;
    for (; ps->lx.type != TOK_END; advance(&ps->lx)) {
        if (ps->lx.type != TOK_SPECIAL)
            continue;
        char c = ps->lx.special;
        if (c == '<') {
            angle++;
        } else if (c == '>') {
            if (angle > 0)
                angle--;
        } else if (angle == 0) {
            if (c == ',' && !group)
                return;
            if (c == ';') {
                if (in_group)
                    return;
                group = 0;
            } else if (c == ':' && !in_group) {
                group = 1;
            }
        }
    }
}

static void parse_item(struct parser *ps, int in_group);

static void parse_group(struct parser *ps)
{
    advance(&ps->lx); /* ':' */
    for (;;) {
        while (is_special(ps, ','))
            advance(&ps->lx);
        if (is_special(ps, ';')) {
            advance(&ps->lx);
            break;
        }
        if (ps->lx.type == TOK_END) {
            ps->lenient++;
            break;
        }
        parse_item(ps, 1);
    }
    if (!at_item_end(ps, 0)) {
        skip_item(ps, 0, 0);
        return;
    }
    ps->items++;
}

/* One address (a mailbox or, at the top level, a group). Leaves the lexer on the
 * token that ends the item: END, ',' or, in a group, ';'. */
static void parse_item(struct parser *ps, int in_group)
{
    ps->unusable = 0;
    struct run r = read_run(ps);

    if (is_special(ps, '<')) {
        if (r.first_dot)
            ps->lenient++;
        advance(&ps->lx);
        if (is_special(ps, '@') && !skip_route(ps)) {
            skip_item(ps, in_group, 1);
            return;
        }
        struct run spec = read_run(ps);
        if (!finish_addr_spec(ps, &spec) || !is_special(ps, '>')) {
            skip_item(ps, in_group, 1);
            return;
        }
        advance(&ps->lx);
    } else if (is_special(ps, ':') && !in_group && r.words > 0) {
        if (r.first_dot)
            ps->lenient++;
        parse_group(ps);
        return;
    } else if (is_special(ps, '@') || at_item_end(ps, in_group)) {
        if (!finish_addr_spec(ps, &r)) {
            skip_item(ps, in_group, 0);
            return;
        }
    } else {
        skip_item(ps, in_group, 0);
        return;
    }
    if (!at_item_end(ps, in_group)) {
        skip_item(ps, in_group, 0);
        return;
    }
    emit(ps);
}

static void parse_list(struct parser *ps, const char *value, int collect)
{
    memset(ps, 0, sizeof *ps);
    ps->collect = collect;
    ps->lx.p = (const unsigned char *)value;
    advance(&ps->lx);
    for (;;) {
        while (is_special(ps, ','))
            advance(&ps->lx); /* obs-addr-list null members */
        if (ps->lx.type == TOK_END)
            break;
        parse_item(ps, 0);
    }
    ps->bad_eol = ps->lx.bad_eol;
    strbuf_free(&ps->lx.text);
    strbuf_free(&ps->local);
    strbuf_free(&ps->out);
    strbuf_free(&ps->scratch);
}

int rfc5322_addr_list(const char *value, char ***addrs, size_t *n)
{
    *addrs = NULL;
    *n = 0;
    if (value == NULL)
        return 0;
    struct parser ps;
    parse_list(&ps, value, 1);
    *addrs = ps.addrs;
    *n = ps.n;
    return (int)ps.n;
}

void rfc5322_addr_list_free(char **addrs, size_t n)
{
    if (addrs == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(addrs[i]);
    free(addrs);
}

int rfc5322_addr_from_valid(const char *value)
{
    if (value == NULL)
        return 0;
    struct parser ps;
    parse_list(&ps, value, 0);
    return ps.errors == 0 && ps.lenient == 0 && !ps.bad_eol && ps.items > 0;
}
