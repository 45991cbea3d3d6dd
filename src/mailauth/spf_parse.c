/* spf_parse: an SPF record's text to its terms (RFC 7208 §4.5, §4.6, §5,
 * §6, §12). The whole record is checked before any of it is used, as §4.6
 * asks: one bad term anywhere makes the record a permerror. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mailauth/spf_internal.h"
#include "util/mem.h"
#include "util/str.h"

int spf_is_spf_record(const char *text, size_t len)
{
    return len >= 6 && strncasecmp(text, "v=spf1", 6) == 0 && (len == 6 || text[6] == ' ');
}

size_t spf_record_terms(const struct spf_record *r)
{
    return r->nterms + r->nmodifiers;
}

void spf_record_free(struct spf_record *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nterms; i++) {
        free(r->terms[i].spec);
        free(r->terms[i].text);
    }
    free(r->terms);
    free(r->redirect);
    free(r->exp);
    free(r);
}

/* "0" / "[1-9][0-9]*" up to max, the whole of s[0..len); -1 otherwise. */
static int parse_prefix(const char *s, size_t len, int max)
{
    if (len == 0 || len > 3 || (s[0] == '0' && len > 1))
        return -1;
    int v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!str_is_digit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v <= max ? v : -1;
}

/* Takes a dual-cidr-length off the end of [s, *len): "/n", "//m", "/n//m". */
static int strip_dual_cidr(const char *s, size_t *len, int *c4, int *c6)
{
    size_t n = *len;
    /* the last "/..." run of digits */
    size_t i = n;
    while (i > 0 && str_is_digit((unsigned char)s[i - 1]))
        i--;
    if (i == n || i == 0 || s[i - 1] != '/')
        return 0; /* no cidr at all: the slashes belong to the domain-spec */
    if (i >= 2 && s[i - 2] == '/') {
        if ((*c6 = parse_prefix(s + i, n - i, 128)) < 0)
            return -1;
        n = i - 2;
        size_t j = n;
        while (j > 0 && str_is_digit((unsigned char)s[j - 1]))
            j--;
        if (j < n && j > 0 && s[j - 1] == '/') {
            if ((*c4 = parse_prefix(s + j, n - j, 32)) < 0)
                return -1;
            n = j - 1;
        }
    } else {
        if ((*c4 = parse_prefix(s + i, n - i, 32)) < 0)
            return -1;
        n = i - 1;
    }
    *len = n;
    return 0;
}

static int set_error(char **err, const char *what, const char *term, size_t len)
{
    char *e = spf_term_excerpt(term, len);
    *err = xasprintf("%s: \"%s\"", what, e);
    free(e);
    return -1;
}

static char *checked_spec(const char *s, size_t len, const char *term, size_t tlen, char **err)
{
    char *spec = xstrndup(s, len);
    char *why = NULL;
    if (len == 0 || spf_macro_check(spec, 1, 0, &why) != 0) {
        char *msg = xasprintf("bad domain-spec (%s)", why ? why : "empty");
        set_error(err, msg, term, tlen);
        free(msg);
        free(why);
        free(spec);
        return NULL;
    }
    return spec;
}

static int parse_modifier(struct spf_record *r, const char *t, size_t len, size_t eq, char **err)
{
    const char *val = t + eq + 1;
    size_t vlen = len - eq - 1;
    int is_redirect = eq == 8 && strncasecmp(t, "redirect", 8) == 0;
    int is_exp = eq == 3 && strncasecmp(t, "exp", 3) == 0;
    r->nmodifiers++;
    if (!is_redirect && !is_exp) {
        /* Unknown modifiers are ignored (§6), but their value is still a
         * macro-string (§4.6.1). */
        char *v = xstrndup(val, vlen), *why = NULL;
        int rc = spf_macro_check(v, 0, 0, &why);
        free(v);
        if (rc != 0) {
            set_error(err, why, t, len);
            free(why);
            return -1;
        }
        return 0;
    }
    char **slot = is_redirect ? &r->redirect : &r->exp;
    if (*slot != NULL)
        return set_error(err, "modifier given twice", t, len);
    *slot = checked_spec(val, vlen, t, len, err);
    return *slot ? 0 : -1;
}

static int parse_term(struct spf_record *r, const char *t, size_t len, char **err)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)t[i] < 0x21 || (unsigned char)t[i] > 0x7e)
            return set_error(err, "invalid character in term", t, len);
    /* A modifier: name "=" ..., name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ) */
    size_t n = 0;
    if (len > 0 && str_is_alpha((unsigned char)t[0])) {
        n = 1;
        while (n < len && (str_is_alnum((unsigned char)t[n]) || t[n] == '-' || t[n] == '_' || t[n] == '.'))
            n++;
        if (n < len && t[n] == '=')
            return parse_modifier(r, t, len, n, err);
    }
    struct spf_term m = {.qual = SPF_PASS, .cidr4 = 32, .cidr6 = 128};
    const char *p = t;
    size_t plen = len;
    if (plen > 0 && strchr("+-?~", *p)) {
        m.qual = *p == '+' ? SPF_PASS : *p == '-' ? SPF_FAIL : *p == '~' ? SPF_SOFTFAIL : SPF_NEUTRAL;
        p++, plen--;
    }
    size_t nl = 0;
    while (nl < plen && p[nl] != ':' && p[nl] != '/')
        nl++;
    static const struct {
        const char *name;
        enum spf_mech mech;
    } names[] = {{"all", SPF_M_ALL}, {"include", SPF_M_INCLUDE}, {"a", SPF_M_A},   {"mx", SPF_M_MX},
                 {"ptr", SPF_M_PTR}, {"ip4", SPF_M_IP4},         {"ip6", SPF_M_IP6}, {"exists", SPF_M_EXISTS}};
    size_t k;
    for (k = 0; k < sizeof names / sizeof names[0]; k++)
        if (strlen(names[k].name) == nl && strncasecmp(p, names[k].name, nl) == 0)
            break;
    if (k == sizeof names / sizeof names[0])
        return set_error(err, "unknown mechanism", t, len);
    m.mech = names[k].mech;
    const char *arg = p + nl; /* ":" ..., "/" ... or "" */
    size_t alen = plen - nl;
    switch (m.mech) {
    case SPF_M_ALL:
        if (alen != 0)
            return set_error(err, "\"all\" takes no argument", t, len);
        r->has_all = 1;
        break;
    case SPF_M_INCLUDE:
    case SPF_M_EXISTS:
        if (alen < 1 || arg[0] != ':')
            return set_error(err, "mechanism needs \":domain\"", t, len);
        if ((m.spec = checked_spec(arg + 1, alen - 1, t, len, err)) == NULL)
            return -1;
        break;
    case SPF_M_A:
    case SPF_M_MX:
    case SPF_M_PTR: {
        size_t dlen = alen;
        if (m.mech != SPF_M_PTR && strip_dual_cidr(arg, &dlen, &m.cidr4, &m.cidr6) != 0)
            return set_error(err, "bad CIDR length", t, len);
        if (dlen > 0) {
            if (arg[0] != ':')
                return set_error(err, "malformed mechanism", t, len);
            if ((m.spec = checked_spec(arg + 1, dlen - 1, t, len, err)) == NULL)
                return -1;
        }
        break;
    }
    case SPF_M_IP4:
    case SPF_M_IP6: {
        if (alen < 1 || arg[0] != ':')
            return set_error(err, "mechanism needs \":network\"", t, len);
        const char *net = arg + 1;
        size_t nlen = alen - 1;
        const char *slash = memchr(net, '/', nlen);
        size_t addrlen = slash ? (size_t)(slash - net) : nlen;
        if (slash) {
            int v = parse_prefix(slash + 1, nlen - addrlen - 1, m.mech == SPF_M_IP4 ? 32 : 128);
            if (v < 0)
                return set_error(err, "bad CIDR length", t, len);
            if (m.mech == SPF_M_IP4)
                m.cidr4 = v;
            else
                m.cidr6 = v;
        }
        char buf[64];
        if (addrlen == 0 || addrlen >= sizeof buf)
            return set_error(err, "bad network address", t, len);
        memcpy(buf, net, addrlen);
        buf[addrlen] = '\0';
        if (inet_pton(m.mech == SPF_M_IP4 ? AF_INET : AF_INET6, buf, m.net) != 1)
            return set_error(err, "bad network address", t, len);
        break;
    }
    }
    m.text = xstrndup(t, len); /* printable: checked above */
    r->terms = xrealloc(r->terms, (r->nterms + 1) * sizeof *r->terms);
    r->terms[r->nterms++] = m;
    return 0;
}

int spf_record_parse(const char *text, struct spf_record **out, char **err)
{
    *out = NULL;
    *err = NULL;
    size_t len = strlen(text);
    if (!spf_is_spf_record(text, len)) {
        *err = xstrdup("not an SPF record (no \"v=spf1\")");
        return -1;
    }
    if (len > SPF_RECORD_MAX) {
        *err = xasprintf("record longer than %d octets", SPF_RECORD_MAX);
        return -1;
    }
    struct spf_record *r = xcalloc(1, sizeof *r);
    /* terms = *( 1*SP ( directive / modifier ) ), record = version terms *SP:
     * terms are split on SP only; any other blank is a syntax error. */
    for (size_t i = 6; i < len;) {
        while (i < len && text[i] == ' ')
            i++;
        size_t start = i;
        while (i < len && text[i] != ' ')
            i++;
        if (i > start && parse_term(r, text + start, i - start, err) != 0) {
            spf_record_free(r);
            return -1;
        }
    }
    *out = r;
    return 0;
}
