/* smtp_addr: RFC 5321 envelope path syntax (see smtp_addr.h). */
#include "smtp/smtp_addr.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

const char SMTP_WHY_NON_ASCII[] = "non-ASCII character without SMTPUTF8";

/* One pass over the input: the cursor, what is allowed, what was seen. */
struct scan {
    const char *p;
    unsigned flags;
    int has_utf8;
    const char *why;
};

static int fail(struct scan *sc, const char *why)
{
    sc->why = why;
    return 0;
}

static int is_hex(unsigned char c)
{
    return str_is_digit(c) || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
}

/* RFC 5321 qtextSMTP, ASCII part: graphic or space, minus '"' and '\'. */
static int is_qtext(unsigned char c)
{
    return c >= 32 && c <= 126 && c != '"' && c != '\\';
}

/* RFC 5321 dcontent: printable ASCII except "[", "\", "]". */
static int is_dcontent(unsigned char c)
{
    return (c >= 33 && c <= 90) || (c >= 94 && c <= 126);
}

/* Length of the well-formed non-ASCII UTF-8 sequence at p (p[0] >= 0x80),
 * or 0. Overlong forms, surrogates and code points past U+10FFFF are the
 * classic ways to smuggle a second meaning past a byte-level check, so they
 * are malformed here; C1 controls (U+0080..U+009F) are refused like the C0
 * ones. The input is NUL-terminated and NUL is never a continuation byte, so
 * checking byte by byte never reads past the end. */
static size_t utf8_seq_len(const unsigned char *p)
{
    size_t n = str_utf8_len(p, strnlen((const char *)p, 4));
    if (n == 2 && p[0] == 0xC2 && p[1] < 0xA0)
        return 0; /* a C1 control */
    return n;
}

/* Consumes one non-ASCII character at sc->p, if UTF-8 is allowed. */
static int take_utf8(struct scan *sc)
{
    if (!(sc->flags & SMTP_PATH_ALLOW_UTF8))
        return fail(sc, SMTP_WHY_NON_ASCII);
    size_t n = utf8_seq_len((const unsigned char *)sc->p);
    if (n == 0)
        return fail(sc, "malformed UTF-8");
    sc->p += n;
    sc->has_utf8 = 1;
    return 1;
}

/* Dot-string = Atom *("." Atom) */
static int scan_dot_string(struct scan *sc)
{
    for (;;) {
        const char *atom = sc->p;
        for (;;) {
            unsigned char c = (unsigned char)*sc->p;
            if (str_is_atext(c))
                sc->p++;
            else if (c >= 0x80) {
                if (!take_utf8(sc))
                    return 0;
            } else
                break;
        }
        if (sc->p == atom) {
            if (*sc->p == '.')
                return fail(sc, "local part starts with a dot or has two in a row");
            if (*sc->p == '\0' || *sc->p == '>' || *sc->p == '@')
                return fail(sc, "empty local part");
            return fail(sc, "invalid character in local part");
        }
        if (*sc->p != '.')
            return 1;
        sc->p++;
        if (*sc->p == '@' || *sc->p == '>' || *sc->p == '\0')
            return fail(sc, "local part ends with a dot");
    }
}

/* Quoted-string = DQUOTE *QcontentSMTP DQUOTE, sc->p at the opening quote. */
static int scan_quoted_string(struct scan *sc)
{
    sc->p++;
    for (;;) {
        unsigned char c = (unsigned char)*sc->p;
        if (c == '"') {
            sc->p++;
            return 1;
        }
        if (c == '\\') {
            unsigned char e = (unsigned char)sc->p[1];
            if (e < 32 || e > 126)
                return fail(sc, e >= 0x80 ? "non-ASCII character after backslash"
                                          : "control character after backslash");
            sc->p += 2;
        } else if (is_qtext(c)) {
            sc->p++;
        } else if (c >= 0x80) {
            if (!take_utf8(sc))
                return 0;
        } else if (c == '\0') {
            return fail(sc, "unterminated quoted string");
        } else {
            return fail(sc, "control character in quoted string");
        }
    }
}

/* Domain = sub-domain *("." sub-domain), sub-domain = Let-dig [Ldh-str]
 * or, with SMTPUTF8, a U-label (checked here only as well-formed UTF-8
 * letters between the same hyphen rules; IDNA2008 validity is left to the
 * code that converts it to an A-label). */
static int scan_domain(struct scan *sc)
{
    const char *start = sc->p;
    for (;;) {
        const char *label = sc->p;
        for (;;) {
            unsigned char c = (unsigned char)*sc->p;
            if (str_is_alnum(c) || (c == '-' && sc->p != label))
                sc->p++;
            else if (c >= 0x80) {
                if (!take_utf8(sc))
                    return 0;
            } else
                break;
        }
        if (sc->p == label) {
            if (*sc->p == '-')
                return fail(sc, "domain label starts with a hyphen");
            if (label == start)
                return fail(sc, *sc->p == '.' ? "domain starts with a dot" : "missing domain");
            return fail(sc, *sc->p == '.' ? "empty domain label" : "domain ends with a dot");
        }
        if (sc->p[-1] == '-')
            return fail(sc, "domain label ends with a hyphen");
        if (sc->p - label > SMTP_LABEL_MAX)
            return fail(sc, "domain label too long");
        if (sc->p - start > SMTP_DOMAIN_MAX)
            return fail(sc, "domain too long");
        if (*sc->p != '.')
            return 1;
        sc->p++;
    }
}

/* Snum 3("." Snum); inet_pton refuses what the ABNF refuses and also
 * leading zeros, which some stacks would read as octal. */
static int ipv4_literal_ok(const char *a, size_t n)
{
    char buf[INET_ADDRSTRLEN];
    struct in_addr addr;

    if (n == 0 || n >= sizeof buf)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!str_is_digit((unsigned char)a[i]) && a[i] != '.')
            return 0;
    memcpy(buf, a, n);
    buf[n] = '\0';
    return inet_pton(AF_INET, buf, &addr) == 1;
}

/* RFC 5321 IPv6-addr. inet_pton alone would also take "a:b:c:d:e:f::h",
 * where "::" stands for a single group: RFC 5321 4.1.3 allows at most 6
 * groups beside "::" (4 with an embedded IPv4), so the group counts are
 * checked here first. */
static int ipv6_literal_ok(const char *a, size_t n)
{
    char buf[INET6_ADDRSTRLEN];
    struct in6_addr addr;
    int before = 0, after = 0, compressed = 0, v4 = 0;

    if (n == 0 || n >= sizeof buf)
        return 0;
    memcpy(buf, a, n);
    buf[n] = '\0';

    const char *p = buf;
    if (p[0] == ':') {
        if (p[1] != ':')
            return 0;
        compressed = 1;
        p += 2;
    }
    while (*p) {
        const char *q = p;
        while (is_hex((unsigned char)*q))
            q++;
        if (*q == '.') {
            if (!ipv4_literal_ok(p, strlen(p)))
                return 0;
            v4 = 1;
            break;
        }
        if (q == p || q - p > 4)
            return 0;
        if (compressed)
            after++;
        else
            before++;
        p = q;
        if (*p == '\0')
            break;
        if (*p != ':')
            return 0;
        p++;
        if (*p == ':') {
            if (compressed)
                return 0;
            compressed = 1;
            p++;
        } else if (*p == '\0') {
            return 0;
        }
    }
    int groups = before + after;
    if (v4 ? (compressed ? groups > 4 : groups != 6) : (compressed ? groups > 6 : groups != 8))
        return 0;
    return inet_pton(AF_INET6, buf, &addr) == 1;
}

/* Standardized-tag = Ldh-str */
static int ldh_str_ok(const char *t, size_t n)
{
    if (n == 0 || !str_is_alnum((unsigned char)t[n - 1]))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!str_is_alnum((unsigned char)t[i]) && t[i] != '-')
            return 0;
    return 1;
}

/* address-literal, sc->p at "[". */
static int scan_literal(struct scan *sc)
{
    const char *content = sc->p + 1;
    const char *last = sc->p + SMTP_DOMAIN_MAX - 1; /* where "]" is at the latest */
    const char *q = content;
    while (q < last && is_dcontent((unsigned char)*q))
        q++;
    if (*q != ']') {
        if (q == last && is_dcontent((unsigned char)*q))
            return fail(sc, "address literal too long");
        return fail(sc, *q == '\0' ? "unterminated address literal"
                                   : "invalid character in address literal");
    }
    size_t n = (size_t)(q - content);
    const char *colon = memchr(content, ':', n);
    int ok;
    if (colon == NULL) {
        ok = ipv4_literal_ok(content, n);
    } else {
        size_t tag_len = (size_t)(colon - content);
        size_t rest_len = n - tag_len - 1;
        if (tag_len == 4 && strncasecmp(content, "IPv6", 4) == 0)
            ok = ipv6_literal_ok(colon + 1, rest_len);
        else
            ok = ldh_str_ok(content, tag_len) && rest_len > 0;
    }
    if (!ok)
        return fail(sc, "invalid address literal");
    sc->p = q + 1;
    return 1;
}

static int scan_domain_or_literal(struct scan *sc)
{
    const char *start = sc->p;
    int ok = *sc->p == '[' ? scan_literal(sc) : scan_domain(sc);
    if (ok && sc->p - start > SMTP_DOMAIN_MAX)
        return fail(sc, "domain too long");
    return ok;
}

/* A-d-l ":" with sc->p at the first "@". Only domains are allowed there
 * (At-domain = "@" Domain); the route is dropped, as App. C says to. */
static int scan_source_route(struct scan *sc)
{
    for (;;) {
        sc->p++;
        if (!scan_domain(sc))
            return 0;
        if (*sc->p == ':') {
            sc->p++;
            return 1;
        }
        if (*sc->p != ',' || sc->p[1] != '@')
            return fail(sc, "bad source route");
        sc->p++;
    }
}

/* Local part from its wire form: quotes dropped, escapes resolved. */
static char *unquote_local(const char *local, size_t len)
{
    if (len < 2 || local[0] != '"')
        return xstrndup(local, len);
    char *out = xmalloc(len);
    size_t o = 0;
    for (size_t i = 1; i + 1 < len; i++) {
        if (local[i] == '\\')
            i++;
        out[o++] = local[i];
    }
    out[o] = '\0';
    return out;
}

/* The form with the least quoting (RFC 5321 4.1.2 says all quoted forms
 * are equivalent and the minimum should be sent): bare when the unquoted
 * text is a Dot-string, else quoted with only '"' and '\' escaped. */
static char *canonical_local(const char *unquoted, int quoted)
{
    struct scan sc = {unquoted, SMTP_PATH_ALLOW_UTF8, 0, NULL};
    if (!quoted || (scan_dot_string(&sc) && *sc.p == '\0'))
        return xstrdup(unquoted);
    struct strbuf sb = STRBUF_INIT;
    strbuf_putc(&sb, '"');
    for (const char *c = unquoted; *c; c++) {
        if (*c == '"' || *c == '\\')
            strbuf_putc(&sb, '\\');
        strbuf_putc(&sb, *c);
    }
    strbuf_putc(&sb, '"');
    return strbuf_detach(&sb);
}

static int path_fail(struct smtp_path *out, const char **why, const char *reason)
{
    smtp_path_free(out);
    if (why)
        *why = reason;
    return -1;
}

int smtp_path_parse(const char *s, unsigned flags, struct smtp_path *out,
                    const char **end, const char **why)
{
    struct scan sc = {s, flags, 0, NULL};
    int bracketed = *s == '<';

    memset(out, 0, sizeof *out);
    if (end)
        *end = s;
    if (!bracketed && !(flags & SMTP_PATH_ALLOW_NO_BRACKETS))
        return path_fail(out, why, "missing '<'");
    if (bracketed)
        sc.p++;

    if (bracketed && *sc.p == '>') {
        if (!(flags & SMTP_PATH_ALLOW_NULL))
            return path_fail(out, why, "null path not allowed here");
        out->is_null = 1;
        out->mailbox = xstrdup("");
        out->local = xstrdup("");
        out->local_unquoted = xstrdup("");
        if (end)
            *end = sc.p + 1;
        return 0;
    }
    if (bracketed && *sc.p == '@') {
        if (!scan_source_route(&sc))
            return path_fail(out, why, sc.why);
        out->had_source_route = 1;
    }

    const char *local = sc.p;
    int quoted = *sc.p == '"';
    if (!(quoted ? scan_quoted_string(&sc) : scan_dot_string(&sc)))
        return path_fail(out, why, sc.why);
    size_t local_len = (size_t)(sc.p - local);
    if (local_len > SMTP_LOCAL_PART_MAX)
        return path_fail(out, why, "local part too long");

    const char *domain = NULL;
    size_t domain_len = 0;
    if (*sc.p == '@') {
        sc.p++;
        domain = sc.p;
        if (!scan_domain_or_literal(&sc))
            return path_fail(out, why, sc.why);
        domain_len = (size_t)(sc.p - domain);
    } else if (!(flags & SMTP_PATH_ALLOW_NO_DOMAIN) || quoted || local_len != 10 ||
               strncasecmp(local, "postmaster", 10) != 0) {
        return path_fail(out, why, *sc.p == '\0' || *sc.p == '>' || *sc.p == ' '
                                       ? "missing domain" : "invalid character in local part");
    }

    if (bracketed) {
        if (*sc.p != '>')
            return path_fail(out, why, *sc.p == '\0' ? "missing '>'" : "unexpected character in path");
        sc.p++;
    }
    size_t wire_len = (size_t)(sc.p - s) + (bracketed ? 0 : 2);
    if (wire_len > SMTP_PATH_MAX)
        return path_fail(out, why, "path too long");

    out->local = xstrndup(local, local_len);
    out->local_unquoted = unquote_local(local, local_len);
    out->has_utf8 = sc.has_utf8;
    if (domain) {
        out->domain = xstrndup(domain, domain_len);
        out->is_literal = *domain == '[';
        char *canon = canonical_local(out->local_unquoted, quoted);
        out->mailbox = xasprintf("%s@%s", canon, out->domain);
        free(canon);
    } else {
        out->mailbox = xstrdup("postmaster");
    }
    if (end)
        *end = sc.p;
    return 0;
}

void smtp_path_free(struct smtp_path *p)
{
    if (!p)
        return;
    free(p->mailbox);
    free(p->local);
    free(p->local_unquoted);
    free(p->domain);
    memset(p, 0, sizeof *p);
}

int smtp_domain_valid(const char *d, int allow_utf8)
{
    struct scan sc = {d, allow_utf8 ? SMTP_PATH_ALLOW_UTF8 : 0u, 0, NULL};
    return scan_domain_or_literal(&sc) && *sc.p == '\0';
}

int smtp_local_part_valid(const char *lp, int allow_utf8)
{
    struct scan sc = {lp, allow_utf8 ? SMTP_PATH_ALLOW_UTF8 : 0u, 0, NULL};
    int ok = *lp == '"' ? scan_quoted_string(&sc) : scan_dot_string(&sc);
    return ok && *sc.p == '\0' && sc.p - lp <= SMTP_LOCAL_PART_MAX;
}

char *smtp_addr_envelope(const char *addr, const char *myorigin, int allow_null)
{
    if (allow_null && *addr == '\0')
        return xstrdup("");
    char *qualified = strchr(addr, '@') ? xstrdup(addr) : xasprintf("%s@%s", addr, myorigin);
    char *wrapped = xasprintf("<%s>", qualified);
    struct smtp_path p;
    const char *end;
    char *mailbox = NULL;
    if (smtp_path_parse(wrapped, SMTP_PATH_ALLOW_UTF8, &p, &end, NULL) == 0) {
        if (*end == '\0')
            mailbox = xstrdup(p.mailbox);
        smtp_path_free(&p);
    }
    free(wrapped);
    free(qualified);
    return mailbox;
}
