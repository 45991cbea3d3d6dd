/* smtp_cmd: SMTP command line and argument parsing (see smtp_cmd.h). */
#include "smtp/smtp_cmd.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

static const struct {
    enum smtp_verb verb;
    const char *name;
} verb_table[] = {
    {SMTP_HELO, "HELO"}, {SMTP_EHLO, "EHLO"}, {SMTP_MAIL, "MAIL"},
    {SMTP_RCPT, "RCPT"}, {SMTP_DATA, "DATA"}, {SMTP_BDAT, "BDAT"},
    {SMTP_RSET, "RSET"}, {SMTP_NOOP, "NOOP"}, {SMTP_QUIT, "QUIT"},
    {SMTP_VRFY, "VRFY"}, {SMTP_EXPN, "EXPN"}, {SMTP_HELP, "HELP"},
    {SMTP_STARTTLS, "STARTTLS"}, {SMTP_AUTH, "AUTH"},
};

#define N_VERBS (sizeof verb_table / sizeof verb_table[0])

const char *smtp_verb_name(enum smtp_verb v)
{
    for (size_t i = 0; i < N_VERBS; i++)
        if (verb_table[i].verb == v)
            return verb_table[i].name;
    return "UNKNOWN";
}

int smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *out)
{
    memset(out, 0, sizeof *out);
    out->verb = SMTP_UNKNOWN;
    out->arg = line + len;
    if (memchr(line, '\0', len) != NULL)
        return -1;

    const char *sp = memchr(line, ' ', len);
    size_t verb_len = sp ? (size_t)(sp - line) : len;
    if (sp) {
        out->arg = sp + 1;
        out->arg_len = len - verb_len - 1;
    }
    for (size_t i = 0; i < verb_len && i < sizeof out->verb_text - 1; i++) {
        unsigned char c = (unsigned char)line[i];
        out->verb_text[i] = c >= 0x21 && c <= 0x7E ? (char)c : '?';
    }
    for (size_t i = 0; i < N_VERBS; i++) {
        if (strlen(verb_table[i].name) == verb_len &&
            strncasecmp(line, verb_table[i].name, verb_len) == 0) {
            out->verb = verb_table[i].verb;
            break;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Replies                                                              */

static const char ENH_SYNTAX[] = "5.5.4";
static const char ENH_BAD_SENDER[] = "5.1.7";
static const char ENH_BAD_RCPT[] = "5.1.3";
static const char ENH_NON_ASCII[] = "5.6.7";

__attribute__((format(printf, 4, 5)))
static int reply(struct smtp_reply_err *err, int code, const char *enh, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        err->enh = enh;
        va_start(ap, fmt);
        vsnprintf(err->text, sizeof err->text, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Keywords are echoed, so they are syntax-checked before getting here
 * (letters, digits, hyphens) and cut at a length that always fits. */
#define ECHO_MAX 64

static int unsupported(struct smtp_reply_err *err, const char *key, size_t len)
{
    return reply(err, 555, ENH_SYNTAX, "Unsupported option: %.*s%s",
                 (int)(len > ECHO_MAX ? ECHO_MAX : len), key, len > ECHO_MAX ? "..." : "");
}

static int bad_param(struct smtp_reply_err *err, const char *name)
{
    return reply(err, 501, ENH_SYNTAX, "Bad %s parameter syntax", name);
}

static int non_ascii(struct smtp_reply_err *err)
{
    return reply(err, 553, ENH_NON_ASCII, "Non-ASCII address: SMTPUTF8 is required");
}

/* ------------------------------------------------------------------ */
/* ESMTP parameters                                                     */

struct param {
    const char *key;
    size_t key_len;
    const char *val; /* NULL when there was no "=" */
    size_t val_len;
};

/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
static int keyword_ok(const char *k, size_t n)
{
    if (n == 0 || !str_is_alnum((unsigned char)k[0]))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!str_is_alnum((unsigned char)k[i]) && k[i] != '-')
            return 0;
    return 1;
}

static int key_is(const struct param *pr, const char *name)
{
    return strlen(name) == pr->key_len && strncasecmp(pr->key, name, pr->key_len) == 0;
}

static int val_is(const struct param *pr, const char *word)
{
    return pr->val && strlen(word) == pr->val_len && strncasecmp(pr->val, word, pr->val_len) == 0;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* xtext (RFC 3461 4) decoded. The decoded text goes into DSNs and
 * Received-style headers, so it must be printable ASCII (graphic, space or
 * tab, as 4.2 and 4.4 require); anything else, a "+" not followed by two
 * upper-case hex digits, or an "=" is refused with NULL. */
static char *xtext_decode(const char *s, size_t n)
{
    char *out = xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '+') {
            if (i + 2 >= n)
                goto bad;
            int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
            if (hi < 0 || lo < 0)
                goto bad;
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
            if (c != '\t' && (c < 0x20 || c > 0x7E))
                goto bad;
        } else if (c < 0x21 || c > 0x7E || c == '=') {
            goto bad;
        }
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return out;
bad:
    free(out);
    return NULL;
}

/* Splits the text after the path into parameters, one call per parameter.
 * Returns 1 with *pr filled, 0 at the end, -1 when the path is followed by
 * something other than a space (the path itself is then malformed). */
static int next_param(const char **pp, int first, struct param *pr)
{
    const char *p = *pp;
    if (*p == '\0')
        return 0;
    if (first && *p != ' ')
        return -1;
    while (*p == ' ')
        p++;
    if (*p == '\0') {
        *pp = p;
        return 0;
    }
    const char *tok = p;
    while (*p && *p != ' ')
        p++;
    const char *eq = memchr(tok, '=', (size_t)(p - tok));
    pr->key = tok;
    pr->key_len = (size_t)((eq ? eq : p) - tok);
    pr->val = eq ? eq + 1 : NULL;
    pr->val_len = eq ? (size_t)(p - eq - 1) : 0;
    *pp = p;
    return 1;
}

/* Common to every parameter: keyword syntax, then ESMTP at all. */
static int param_precheck(const struct param *pr, const struct smtp_ext *ext,
                          struct smtp_reply_err *err)
{
    if (!keyword_ok(pr->key, pr->key_len))
        return reply(err, 501, ENH_SYNTAX, "Bad parameter syntax");
    if (!ext->esmtp)
        return unsupported(err, pr->key, pr->key_len);
    return 0;
}

static int parse_size(const struct param *pr, long long *size, struct smtp_reply_err *err)
{
    /* size-value ::= 1*20DIGIT (RFC 1870) */
    if (*size != -1 || !pr->val || pr->val_len == 0 || pr->val_len > 20)
        return bad_param(err, "SIZE");
    unsigned long long v = 0;
    for (size_t i = 0; i < pr->val_len; i++) {
        char c = pr->val[i];
        if (c < '0' || c > '9')
            return bad_param(err, "SIZE");
        unsigned d = (unsigned)(c - '0');
        v = v > ((unsigned long long)LLONG_MAX - d) / 10 ? (unsigned long long)LLONG_MAX : v * 10 + d;
    }
    *size = (long long)v;
    return 0;
}

static int parse_body(const struct param *pr, const struct smtp_ext *ext, enum smtp_body *body,
                      struct smtp_reply_err *err)
{
    if (*body != SMTP_BODY_NONE)
        return bad_param(err, "BODY");
    if (val_is(pr, "7BIT"))
        *body = SMTP_BODY_7BIT;
    else if (val_is(pr, "8BITMIME")) {
        if (!ext->eightbit)
            return unsupported(err, "BODY=8BITMIME", 13);
        *body = SMTP_BODY_8BITMIME;
    } else if (val_is(pr, "BINARYMIME")) {
        if (!ext->binarymime)
            return unsupported(err, "BODY=BINARYMIME", 15);
        *body = SMTP_BODY_BINARYMIME;
    } else
        return bad_param(err, "BODY");
    return 0;
}

static int parse_xtext_param(const struct param *pr, size_t max, char **dst, const char *name,
                             struct smtp_reply_err *err)
{
    if (*dst || !pr->val || pr->val_len == 0 || pr->val_len > max)
        return bad_param(err, name);
    *dst = xtext_decode(pr->val, pr->val_len);
    return *dst ? 0 : bad_param(err, name);
}

/* RFC 3461 5.4 and 4.4: ENVID up to 100 characters, ORCPT 500. RFC 4954
 * sets no bound for AUTH=; a path is at most 256 octets and xtext triples
 * an octet at most. */
#define ENVID_MAX 100
#define ORCPT_MAX 500
#define AUTH_MAX (3 * SMTP_PATH_MAX)

static int parse_mail_param(const struct param *pr, const struct smtp_ext *ext,
                            struct smtp_mail_args *out, struct smtp_reply_err *err)
{
    if (param_precheck(pr, ext, err) < 0)
        return -1;
    if (key_is(pr, "SIZE") && ext->size)
        return parse_size(pr, &out->size, err);
    if (key_is(pr, "BODY") && (ext->eightbit || ext->binarymime))
        return parse_body(pr, ext, &out->body, err);
    if (key_is(pr, "SMTPUTF8") && ext->smtputf8) {
        if (out->smtputf8 || pr->val)
            return bad_param(err, "SMTPUTF8");
        out->smtputf8 = 1;
        return 0;
    }
    if (key_is(pr, "RET") && ext->dsn) {
        if (out->ret)
            return bad_param(err, "RET");
        if (val_is(pr, "FULL"))
            out->ret = xstrdup("FULL");
        else if (val_is(pr, "HDRS"))
            out->ret = xstrdup("HDRS");
        else
            return bad_param(err, "RET");
        return 0;
    }
    if (key_is(pr, "ENVID") && ext->dsn)
        return parse_xtext_param(pr, ENVID_MAX, &out->envid, "ENVID", err);
    if (key_is(pr, "AUTH") && ext->auth)
        return parse_xtext_param(pr, AUTH_MAX, &out->auth, "AUTH", err);
    return unsupported(err, pr->key, pr->key_len);
}

/* notify-esmtp-value = "NEVER" / 1#notify-list-element */
int smtp_notify_parse(const char *value, size_t len, unsigned *notify)
{
    static const struct {
        const char *word;
        unsigned bit;
    } words[] = {{"NEVER", SMTP_NOTIFY_NEVER},
                 {"SUCCESS", SMTP_NOTIFY_SUCCESS},
                 {"FAILURE", SMTP_NOTIFY_FAILURE},
                 {"DELAY", SMTP_NOTIFY_DELAY}};
    if (len == 0)
        return -1;
    unsigned bits = 0;
    const char *p = value, *end = value + len;
    while (p <= end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        size_t n = (size_t)(e - p);
        unsigned bit = 0;
        for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
            if (strlen(words[i].word) == n && strncasecmp(p, words[i].word, n) == 0)
                bit = words[i].bit;
        if (bit == 0)
            return -1;
        bits |= bit;
        if (!comma)
            break;
        p = comma + 1;
    }
    if ((bits & SMTP_NOTIFY_NEVER) && bits != SMTP_NOTIFY_NEVER)
        return -1;
    *notify = bits;
    return 0;
}

int smtp_envid_valid(const char *envid)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)envid; *p; p++, n++)
        if (*p < 0x20 || *p > 0x7e)
            return 0;
    return n > 0 && n <= ENVID_MAX;
}

static int parse_notify(const struct param *pr, unsigned *notify, struct smtp_reply_err *err)
{
    if (*notify || !pr->val || smtp_notify_parse(pr->val, pr->val_len, notify) != 0)
        return bad_param(err, "NOTIFY");
    return 0;
}

/* original-recipient-address = addr-type ";" xtext, addr-type = atom */
static int parse_orcpt(const struct param *pr, char **orcpt, struct smtp_reply_err *err)
{
    if (*orcpt || !pr->val || pr->val_len == 0 || pr->val_len > ORCPT_MAX)
        return bad_param(err, "ORCPT");
    const char *semi = memchr(pr->val, ';', pr->val_len);
    if (!semi || semi == pr->val)
        return bad_param(err, "ORCPT");
    size_t type_len = (size_t)(semi - pr->val);
    for (size_t i = 0; i < type_len; i++)
        if (!str_is_atext((unsigned char)pr->val[i]) || pr->val[i] == '=')
            return bad_param(err, "ORCPT");
    size_t addr_len = pr->val_len - type_len - 1;
    if (addr_len == 0)
        return bad_param(err, "ORCPT");
    char *addr = xtext_decode(semi + 1, addr_len);
    if (!addr)
        return bad_param(err, "ORCPT");
    *orcpt = xasprintf("%.*s;%s", (int)type_len, pr->val, addr);
    free(addr);
    return 0;
}

static int parse_rcpt_param(const struct param *pr, const struct smtp_ext *ext,
                            struct smtp_rcpt_args *out, struct smtp_reply_err *err)
{
    if (param_precheck(pr, ext, err) < 0)
        return -1;
    if (key_is(pr, "NOTIFY") && ext->dsn)
        return parse_notify(pr, &out->notify, err);
    if (key_is(pr, "ORCPT") && ext->dsn)
        return parse_orcpt(pr, &out->orcpt, err);
    return unsupported(err, pr->key, pr->key_len);
}

/* ------------------------------------------------------------------ */
/* MAIL and RCPT                                                        */

/* "FROM:" / "TO:" and the spaces around, leniently; NULL if absent. */
static const char *after_keyword(const char *arg, const char *kw)
{
    while (*arg == ' ')
        arg++;
    if (!str_case_prefix(arg, kw))
        return NULL;
    arg += strlen(kw);
    while (*arg == ' ')
        arg++;
    return arg;
}

/* A bare "FROM:a@b" takes no parameters: without brackets nothing marks
 * where the address ends, so anything after it but spaces is refused. */
static int bare_path_has_tail(const char *path_start, const char *end)
{
    if (*path_start == '<')
        return 0;
    while (*end == ' ')
        end++;
    return *end != '\0';
}

static const struct smtp_ext no_ext;

/* What MAIL and RCPT differ in; the rest of their parsing is one. */
struct path_command {
    const char *keyword;    /* "FROM:" */
    const char *syntax;     /* the reply when the keyword is missing */
    unsigned path_flags;    /* for smtp_path_parse */
    const char *enh;        /* the enhanced code and text for a bad path */
    const char *bad_path;
    int (*param)(const struct param *pr, const struct smtp_ext *ext, void *out, struct smtp_reply_err *err);
};

/* Parses "KEYWORD:<path> [params]" into *path and, through pc->param, into
 * out. 0, or -1 with err set; on -1 the caller frees what out holds. */
static int parse_path_command(const char *arg, const struct smtp_ext *ext, const struct path_command *pc,
                              struct smtp_path *path, void *out, struct smtp_reply_err *err)
{
    const char *p = after_keyword(arg, pc->keyword);
    if (!p)
        return reply(err, 501, ENH_SYNTAX, "%s", pc->syntax);
    unsigned flags = pc->path_flags;
    if (ext->smtputf8)
        flags |= SMTP_PATH_ALLOW_UTF8;
    const char *end, *why;
    if (smtp_path_parse(p, flags, path, &end, &why) < 0)
        return why == SMTP_WHY_NON_ASCII ? non_ascii(err) : reply(err, 501, pc->enh, "%s", pc->bad_path);
    if (bare_path_has_tail(p, end))
        return reply(err, 501, pc->enh, "%s", pc->bad_path);
    struct param pr;
    int rc, first = 1;
    while ((rc = next_param(&end, first, &pr)) > 0) {
        first = 0;
        if (pc->param(&pr, ext, out, err) < 0)
            return -1;
    }
    if (rc < 0)
        return reply(err, 501, pc->enh, "%s", pc->bad_path);
    return 0;
}

static int mail_param(const struct param *pr, const struct smtp_ext *ext, void *out, struct smtp_reply_err *err)
{
    return parse_mail_param(pr, ext, out, err);
}

static int rcpt_param(const struct param *pr, const struct smtp_ext *ext, void *out, struct smtp_reply_err *err)
{
    return parse_rcpt_param(pr, ext, out, err);
}

static const struct path_command mail_command = {
    "FROM:", "Syntax: MAIL FROM:<address>", SMTP_PATH_ALLOW_NULL | SMTP_PATH_ALLOW_NO_BRACKETS,
    ENH_BAD_SENDER, "Bad sender address syntax", mail_param,
};

static const struct path_command rcpt_command = {
    "TO:", "Syntax: RCPT TO:<address>", SMTP_PATH_ALLOW_NO_DOMAIN | SMTP_PATH_ALLOW_NO_BRACKETS,
    ENH_BAD_RCPT, "Bad recipient address syntax", rcpt_param,
};

int smtp_parse_mail(const char *arg, const struct smtp_ext *ext, struct smtp_mail_args *out,
                    struct smtp_reply_err *err)
{
    memset(out, 0, sizeof *out);
    out->size = -1;
    if (parse_path_command(arg, ext ? ext : &no_ext, &mail_command, &out->path, out, err) < 0) {
        smtp_mail_args_free(out);
        return -1;
    }
    if (out->path.has_utf8 && !out->smtputf8) {
        smtp_mail_args_free(out);
        return non_ascii(err);
    }
    return 0;
}

int smtp_parse_rcpt(const char *arg, const struct smtp_ext *ext, struct smtp_rcpt_args *out,
                    struct smtp_reply_err *err)
{
    memset(out, 0, sizeof *out);
    if (parse_path_command(arg, ext ? ext : &no_ext, &rcpt_command, &out->path, out, err) < 0) {
        smtp_rcpt_args_free(out);
        return -1;
    }
    return 0;
}

void smtp_mail_args_free(struct smtp_mail_args *a)
{
    if (!a)
        return;
    smtp_path_free(&a->path);
    free(a->ret);
    free(a->envid);
    free(a->auth);
    memset(a, 0, sizeof *a);
    a->size = -1;
}

void smtp_rcpt_args_free(struct smtp_rcpt_args *a)
{
    if (!a)
        return;
    smtp_path_free(&a->path);
    free(a->orcpt);
    memset(a, 0, sizeof *a);
}

/* ------------------------------------------------------------------ */
/* BDAT and HELO                                                        */

int smtp_parse_bdat(const char *arg, unsigned long long *size, int *last)
{
    const unsigned long long max = 1ULL << 63;
    const char *p = arg;
    unsigned long long v = 0;

    *size = 0;
    *last = 0;
    while (*p == ' ')
        p++;
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (max - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (*p != '\0' && *p != ' ')
        return -1;
    while (*p == ' ')
        p++;
    int is_last = 0;
    if (strncasecmp(p, "LAST", 4) == 0) {
        is_last = 1;
        p += 4;
        while (*p == ' ')
            p++;
    }
    if (*p != '\0')
        return -1;
    *size = v;
    *last = is_last;
    return 0;
}

int smtp_parse_helo(const char *arg, char **name_out)
{
    if (name_out)
        *name_out = NULL;
    while (*arg == ' ')
        arg++;
    size_t n = strlen(arg);
    while (n && arg[n - 1] == ' ')
        n--;
    if (n == 0 || n > SMTP_DOMAIN_MAX)
        return -1;
    char *name = xstrndup(arg, n);
    if (!smtp_domain_valid(name, 0)) {
        free(name);
        return -1;
    }
    if (name_out)
        *name_out = name;
    else
        free(name);
    return 0;
}
