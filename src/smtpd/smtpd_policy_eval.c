/* smtpd_policy_eval: evaluating the restriction lists at RCPT (see
 * smtpd_policy.h; the lists are parsed by smtpd_policy.c). */
#include "smtpd/smtpd_policy.h"
#include "smtpd/smtpd_policy_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "maps/map.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

/* ---------- names and addresses ---------- */

/* The '@' that starts the domain: the last one outside a quoted string.
 * NULL when there is none; *malformed set for an unterminated quote, which
 * the relay check treats as not ours rather than guess. */
static const char *domain_at(const char *addr, int *malformed)
{
    const char *at = NULL;
    int quoted = 0;
    *malformed = 0;
    for (const char *s = addr; *s; s++) {
        if (*s == '\\' && s[1] != 0)
            s++;
        else if (*s == '"')
            quoted = !quoted;
        else if (*s == '@' && !quoted)
            at = s;
    }
    if (quoted)
        *malformed = 1;
    return at;
}

/* Postfix's "truncate a name ending in dot but not dot-dot". In place. */
static void strip_one_dot(char *s)
{
    size_t n = strlen(s);
    if (n >= 2 && s[n - 1] == '.' && s[n - 2] != '.')
        s[n - 1] = 0;
    else if (n == 1 && s[0] == '.')
        s[0] = 0;
}

/* Like Postfix's valid_hostname(): letters, digits, '_' and inner '-'
 * (octets >= 0x80 pass as letters: the SMTP parser already vetted UTF-8),
 * labels of 1..63, at most 255 in all, and not entirely numeric. */
static int valid_hostname(const char *name)
{
    size_t len = strlen(name), label = 0;
    int non_numeric = 0;
    if (len == 0 || len > 255)
        return 0;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        unsigned char ch = *p;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || ch >= 0x80) {
            non_numeric = 1;
            if (++label > 63)
                return 0;
        } else if (ch >= '0' && ch <= '9') {
            if (++label > 63)
                return 0;
        } else if (ch == '.') {
            if (label == 0 || p[1] == 0)
                return 0;
            label = 0;
        } else if (ch == '-') {
            non_numeric = 1;
            if (label == 0 || p[1] == 0 || p[1] == '.' || ++label > 63)
                return 0;
        } else {
            return 0;
        }
    }
    return non_numeric;
}

static int valid_hostaddr(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* "[192.0.2.1]", "[IPv6:2001:db8::1]" (and "[::1]", as Postfix allows). */
static int valid_literal(const char *lit)
{
    size_t n = strlen(lit);
    if (n < 3 || lit[0] != '[' || lit[n - 1] != ']')
        return 0;
    char *inner = xstrndup(lit + 1, n - 2);
    const char *a = str_case_prefix(inner, "IPv6:") ? inner + 5 : inner;
    int ok = valid_hostaddr(a);
    free(inner);
    return ok;
}

/* ---------- evaluation ---------- */

enum verdict { V_DUNNO, V_PERMIT, V_DECIDED };
/* DEST_TEMPFAIL: a domain table (pgsql: down or slow) could not say; the
 * recipient is deferred, never refused as unauthorized relaying. */
enum dest { DEST_UNKNOWN, DEST_LOCAL, DEST_RELAY, DEST_REMOTE, DEST_TEMPFAIL };

struct eval {
    const struct smtpd_policy_ctx *c;
    struct smtpd_policy_result *r;
    const char *list;
    const struct restriction *cur; /* top-level restriction being applied */
    enum dest dest;                /* recipient's class, asked once per RCPT */
    char *client_reply;            /* "name[addr]" */
};

static void fill_text(struct smtpd_policy_result *r, const char *fmt, va_list ap)
{
    struct strbuf sb = STRBUF_INIT;
    strbuf_vprintf(&sb, fmt, ap);
    size_t len = sb.len;
    if (len > POLICY_TEXT_MAX) {
        log_warn("reply text cut to %d characters: %.*s...", POLICY_TEXT_MAX, 80, strbuf_str(&sb));
        len = POLICY_TEXT_MAX;
    }
    memcpy(r->text, strbuf_str(&sb), len);
    r->text[len] = 0;
    strbuf_free(&sb);
    /* Client-chosen bytes (HELO, addresses) must not smuggle line breaks
     * or controls into the reply or the log. */
    for (char *s = r->text; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

static enum verdict decide(struct eval *e, int code, const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static enum verdict decide(struct eval *e, int code, const char *enh, const char *fmt, ...)
{
    struct smtpd_policy_result *r = e->r;
    va_list ap;
    r->code = code;
    str_copy(r->enh, enh, sizeof r->enh);
    va_start(ap, fmt);
    fill_text(r, fmt, ap);
    va_end(ap);
    r->list = e->list;
    r->restriction = e->cur->def->name;
    r->table = e->cur->map ? map_spec(e->cur->map) : NULL;
    return V_DECIDED;
}

static enum verdict config_error(struct eval *e)
{
    return decide(e, 451, "4.3.5", "Server configuration error");
}

/* The class of an address's domain, for the relay checks and the
 * recipient tables. */
static enum dest addr_dest(const struct smtpd_policy_ctx *c, const char *addr)
{
    int malformed;
    const char *at = domain_at(addr, &malformed);
    if (malformed)
        return DEST_REMOTE;
    if (at == NULL)
        return DEST_LOCAL; /* "postmaster": RFC 5321 4.1.1.3 */
    char *dom = xstrdup(at + 1);
    str_lower(dom);
    strip_one_dot(dom);
    int local = *dom && c->is_local_domain ? c->is_local_domain(c->arg, dom) : 0;
    int relay = local == 0 && *dom && c->is_relay_domain ? c->is_relay_domain(c->arg, dom) : 0;
    free(dom);
    if (local == 1)
        return DEST_LOCAL;
    if (local < 0 || relay < 0)
        return DEST_TEMPFAIL;
    return relay == 1 ? DEST_RELAY : DEST_REMOTE;
}

static enum dest rcpt_dest(struct eval *e)
{
    if (e->dest == DEST_UNKNOWN)
        e->dest = addr_dest(e->c, e->c->recipient);
    return e->dest;
}

static enum verdict dest_tempfail(struct eval *e)
{
    return decide(e, 451, "4.3.0", "<%s>: Temporary lookup failure", e->c->recipient);
}

/* reject_unlisted_recipient, reject_unlisted_sender: addr, of a domain of
 * ours, that no table of its class lists (Postfix's check_rcpt_maps). */
static enum verdict unlisted(struct eval *e, const char *addr, enum dest d, int sender)
{
    const struct smtpd_policy_ctx *c = e->c;
    if (d == DEST_TEMPFAIL)
        return decide(e, 451, "4.3.0", "<%s>: Temporary lookup failure", addr);
    if (d == DEST_REMOTE || c->recipient_exists == NULL)
        return V_DUNNO;
    const char *table = NULL;
    int code = 550;
    int rc = c->recipient_exists(c->arg, addr, &table, &code);
    if (rc < 0)
        return decide(e, 451, "4.3.0", "<%s>: Temporary lookup failure", addr);
    if (rc > 0)
        return V_DUNNO;
    if (table == NULL)
        table = d == DEST_LOCAL ? "local recipient table" : "relay recipient table";
    if (code < 400 || code > 599)
        code = 550;
    char enh[16];
    snprintf(enh, sizeof enh, "%d.1.%d", code / 100, sender ? 0 : 1);
    return decide(e, code, enh, "<%s>: %s address rejected: User unknown in %s", addr,
                  sender ? "Sender" : "Recipient", table);
}

static enum verdict unlisted_sender(struct eval *e)
{
    const char *sender = e->c->sender;
    if (sender == NULL || *sender == '\0')
        return V_DUNNO; /* the null sender is nobody's address */
    return unlisted(e, sender, addr_dest(e->c, sender), 1);
}

/* An RFC 3463 code "c.sss.ddd" at the start of text, ended by a blank or
 * the end. Returns its length (0 if none). */
static size_t dsn_prefix(const char *t)
{
    size_t i = 0;
    if (t[0] != '2' && t[0] != '4' && t[0] != '5')
        return 0;
    if (t[1] != '.')
        return 0;
    i = 2;
    for (int part = 0; part < 2; part++) {
        size_t n = 0;
        while (n < 4 && str_is_digit(t[i + n]))
            n++;
        if (n == 0 || n > 3)
            return 0;
        i += n;
        if (part == 0) {
            if (t[i] != '.')
                return 0;
            i++;
        }
    }
    if (t[i] != 0 && t[i] != ' ' && t[i] != '\t')
        return 0;
    return i;
}

static const char *skip_blanks(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* A reject/defer from a table: "code [x.y.z] text". */
static enum verdict table_reject(struct eval *e, int code, const char *text,
                                 const char *reply_name, const char *reply_class)
{
    char enh[16];
    size_t dn = dsn_prefix(text);
    if (dn > 0) {
        memcpy(enh, text, dn);
        enh[dn] = 0;
        text = skip_blanks(text + dn);
    } else {
        str_copy(enh, code >= 500 ? "5.7.1" : "4.7.1", sizeof enh);
    }
    /* Postfix makes the enhanced class agree with the reply code. */
    enh[0] = (char)('0' + code / 100);
    return decide(e, code, enh, "<%s>: %s rejected: %s", reply_name, reply_class,
                  *text ? text : "Access denied");
}

static enum verdict eval_one(struct eval *e, const struct restriction *x, const char *reply_name,
                             const char *reply_class);

/* Acts on a value found in an access table (access(5) "ACTIONS"). */
static enum verdict access_action(struct eval *e, const char *value, const char *reply_name,
                                  const char *reply_class)
{
    const char *table = map_spec(e->cur->map);
    value = skip_blanks(value);
    size_t cmd_len = strcspn(value, " \t");
    const char *text = skip_blanks(value + cmd_len);
    char cmd[32];
    if (cmd_len < sizeof cmd) {
        memcpy(cmd, value, cmd_len);
        cmd[cmd_len] = 0;
    } else {
        cmd[0] = 0;
    }

    if (strcasecmp(cmd, "OK") == 0 || strcasecmp(cmd, "PERMIT") == 0)
        return V_PERMIT;
    if (cmd_len > 0 && value[strspn(value, "0123456789")] == 0)
        return V_PERMIT; /* all-numerical: pop-before-smtp time stamps */
    if (cmd_len == 3 && (value[0] == '4' || value[0] == '5') && str_is_digit(value[1]) &&
        str_is_digit(value[2]) && *text)
        return table_reject(e, atoi(cmd), text, reply_name, reply_class);
    if (strcasecmp(cmd, "REJECT") == 0)
        return table_reject(e, 554, text, reply_name, reply_class);
    if (strcasecmp(cmd, "DEFER") == 0)
        return table_reject(e, 450, text, reply_name, reply_class);
    if (strcasecmp(cmd, "DUNNO") == 0)
        return V_DUNNO;
    if (strcasecmp(cmd, "WARN") == 0 || strcasecmp(cmd, "INFO") == 0) {
        log_warn("%s: %s: <%s>: %s", table, cmd, reply_name, *text ? text : "(no text)");
        return V_DUNNO;
    }
    if (strcasecmp(cmd, "HOLD") == 0 || strcasecmp(cmd, "DISCARD") == 0 ||
        strcasecmp(cmd, "FILTER") == 0 || strcasecmp(cmd, "REDIRECT") == 0 ||
        strcasecmp(cmd, "BCC") == 0 || strcasecmp(cmd, "PREPEND") == 0 ||
        strcasecmp(cmd, "DEFER_IF_REJECT") == 0 || strcasecmp(cmd, "DEFER_IF_PERMIT") == 0) {
        log_warn("%s: action %s is not supported yet", table, cmd);
        return config_error(e);
    }

    /* Otherwise a list of restrictions, as access(5) allows. */
    struct rlist nested = {0};
    char *err = NULL;
    if (smtpd_policy_parse_list(&nested, table, value, 1, &err) < 0) {
        log_warn("%s: bad result \"%s\": %s", table, value, err);
        free(err);
        smtpd_policy_rlist_free(&nested);
        return config_error(e);
    }
    enum verdict v = V_DUNNO;
    for (size_t i = 0; i < nested.n && v == V_DUNNO; i++)
        v = eval_one(e, &nested.r[i], reply_name, reply_class);
    smtpd_policy_rlist_free(&nested);
    return v;
}

/* One lookup. Returns 1 when the key was found or the lookup failed (the
 * walk stops; *v says what to do), 0 when not found. */
static int lookup_key(struct eval *e, const char *key, const char *reply_name,
                      const char *reply_class, enum verdict *v)
{
    char *value = NULL;
    int rc = map_lookup(e->cur->map, key, &value);
    if (rc < 0) {
        *v = decide(e, 451, "4.3.0", "<%s>: Temporary lookup failure", reply_name);
        return 1;
    }
    if (rc == 0)
        return 0;
    *v = access_action(e, value, reply_name, reply_class);
    free(value);
    return 1;
}

/* Pattern tables (regexp:, pcre:) see only the whole name or address, as
 * in Postfix: a parent domain or "user@" is a partial key, and a rule such
 * as !/@example\.com$/ must not apply to the bare domain. */
static int whole_key_only(const struct eval *e)
{
    return map_is_pattern(e->cur->map);
}

/* "a.b.c", then "b.c", then "c" (parent_domain_matches_subdomains style). */
static int lookup_domain(struct eval *e, const char *domain, const char *reply_name,
                         const char *reply_class, enum verdict *v)
{
    if (domain[0] == '[')
        return lookup_key(e, domain, reply_name, reply_class, v);
    for (const char *d = domain; *d;) {
        if (lookup_key(e, d, reply_name, reply_class, v))
            return 1;
        if (whole_key_only(e))
            break;
        const char *dot = strchr(d + 1, '.');
        if (dot == NULL)
            break;
        d = dot + 1;
    }
    return 0;
}

static enum verdict check_client(struct eval *e)
{
    const struct smtpd_policy_ctx *c = e->c;
    enum verdict v = V_DUNNO;
    char *name = xstrdup(c->client_name ? c->client_name : "unknown");
    str_lower(name);
    strip_one_dot(name);
    int found = *name && lookup_domain(e, name, e->client_reply, "Client host", &v);
    free(name);
    if (found || c->client_addr == NULL || *c->client_addr == 0)
        return v;

    const char *a = c->client_addr;
    if (str_case_prefix(a, "::ffff:") && strchr(a + 7, '.'))
        a += 7;
    char *key = xstrdup(a);
    str_lower(key);
    char delim = strchr(key, ':') ? ':' : '.';
    while (*key) {
        if (lookup_key(e, key, e->client_reply, "Client host", &v) || whole_key_only(e))
            break;
        char *cut = strrchr(key, delim);
        if (cut == NULL)
            break;
        *cut = 0;
    }
    free(key);
    return v;
}

/* "user@domain", "domain" and its parents, "user@" (access(5)). */
static enum verdict check_address(struct eval *e, const char *addr, const char *reply_class)
{
    enum verdict v = V_DUNNO;
    if (*addr == 0) {
        lookup_key(e, "<>", "", reply_class, &v);
        return v;
    }
    int malformed;
    const char *at = domain_at(addr, &malformed);
    if (at == NULL || malformed) {
        char *user_at = xasprintf("%s@", addr);
        if (!lookup_key(e, addr, addr, reply_class, &v) && !whole_key_only(e))
            lookup_key(e, user_at, addr, reply_class, &v);
        free(user_at);
        return v;
    }
    char *local = xstrndup(addr, (size_t)(at - addr));
    char *domain = xstrdup(at + 1);
    str_lower(domain);
    strip_one_dot(domain);
    char *full = xasprintf("%s@%s", local, domain);
    char *user_at = xasprintf("%s@", local);
    if (!lookup_key(e, full, addr, reply_class, &v) && !whole_key_only(e) &&
        !(*domain && lookup_domain(e, domain, addr, reply_class, &v)))
        lookup_key(e, user_at, addr, reply_class, &v);
    free(user_at);
    free(full);
    free(domain);
    free(local);
    return v;
}

static enum verdict non_fqdn_address(struct eval *e, const char *addr, const char *reply_class)
{
    if (*addr == 0)
        return V_DUNNO;
    int malformed;
    const char *at = domain_at(addr, &malformed);
    int ok = 0;
    if (at != NULL && !malformed) {
        char *dom = xstrdup(at + 1);
        strip_one_dot(dom);
        if (dom[0] == '[')
            ok = 1; /* address literals are fully qualified by nature */
        else
            ok = valid_hostname(dom) && strchr(dom, '.') != NULL;
        free(dom);
    }
    if (ok)
        return V_DUNNO;
    return decide(e, 504, "5.5.2", "<%s>: %s rejected: need fully-qualified address", addr,
                  reply_class);
}

static enum verdict helo_literal(struct eval *e, const char *helo)
{
    if (valid_literal(helo))
        return V_DUNNO;
    return decide(e, 501, "5.5.2", "<%s>: Helo command rejected: invalid ip address", helo);
}

static enum verdict eval_one(struct eval *e, const struct restriction *x, const char *reply_name,
                             const char *reply_class)
{
    const struct smtpd_policy_ctx *c = e->c;
    enum dest d;
    int rc;
    /* At the end of the data there is no one recipient: a restriction
     * about it can only come from an access table's result there (the
     * lists themselves are refused at parse time); it is a configuration
     * error, never a crash. */
    if (c->recipient == NULL) {
        switch (x->def->kind) {
        case RK_PERMIT_AUTH_DEST:
        case RK_REJECT_UNAUTH_DEST:
        case RK_DEFER_UNAUTH_DEST:
        case RK_REJECT_UNLISTED_RCPT:
        case RK_REJECT_NON_FQDN_RCPT:
        case RK_CHECK_RCPT:
            log_warn("%s: %s needs a recipient; not at the end of the data", e->list, x->def->name);
            return config_error(e);
        default:
            break;
        }
    }
    switch (x->def->kind) {
    case RK_PERMIT:
        return V_PERMIT;
    case RK_REJECT:
        return decide(e, 554, "5.7.1", "<%s>: %s rejected: Access denied", reply_name,
                      reply_class);
    case RK_DEFER:
        return decide(e, 450, "4.7.1", "<%s>: %s rejected: Try again later", reply_name,
                      reply_class);
    case RK_PERMIT_MYNETWORKS:
        return c->mynetworks ? V_PERMIT : V_DUNNO;
    case RK_PERMIT_SASL:
        return c->authenticated ? V_PERMIT : V_DUNNO;
    case RK_PERMIT_AUTH_DEST:
        d = rcpt_dest(e);
        if (d == DEST_TEMPFAIL)
            return dest_tempfail(e);
        return d != DEST_REMOTE ? V_PERMIT : V_DUNNO;
    case RK_REJECT_UNAUTH_DEST:
    case RK_DEFER_UNAUTH_DEST:
        d = rcpt_dest(e);
        if (d == DEST_TEMPFAIL)
            return dest_tempfail(e);
        if (d != DEST_REMOTE)
            return V_DUNNO;
        if (x->def->kind == RK_REJECT_UNAUTH_DEST)
            return decide(e, 554, "5.7.1", "<%s>: Relay access denied", c->recipient);
        return decide(e, 454, "4.7.1", "<%s>: Relay access denied", c->recipient);
    case RK_REJECT_UNLISTED_RCPT:
        return unlisted(e, c->recipient, rcpt_dest(e), 0);
    case RK_REJECT_UNLISTED_SENDER:
        return unlisted_sender(e);
    case RK_REJECT_NON_FQDN_HELO:
        if (c->helo == NULL)
            return V_DUNNO;
        if (c->helo[0] == '[')
            return helo_literal(e, c->helo);
        {
            char *name = xstrdup(c->helo);
            strip_one_dot(name);
            int ok = valid_hostname(name) && strchr(name, '.') != NULL;
            free(name);
            if (ok)
                return V_DUNNO;
        }
        return decide(e, 504, "5.5.2",
                      "<%s>: Helo command rejected: need fully-qualified hostname", c->helo);
    case RK_REJECT_INVALID_HELO:
        if (c->helo == NULL)
            return V_DUNNO;
        if (c->helo[0] == '[')
            return helo_literal(e, c->helo);
        {
            char *name = xstrdup(c->helo);
            strip_one_dot(name);
            int ok = valid_hostname(name) || valid_hostaddr(name);
            free(name);
            if (ok)
                return V_DUNNO;
        }
        return decide(e, 501, "5.5.2", "<%s>: Helo command rejected: Invalid name", c->helo);
    case RK_REJECT_NON_FQDN_SENDER:
        return c->sender ? non_fqdn_address(e, c->sender, "Sender address") : V_DUNNO;
    case RK_REJECT_NON_FQDN_RCPT:
        return non_fqdn_address(e, c->recipient, "Recipient address");
    case RK_CHECK_CLIENT:
        return check_client(e);
    case RK_CHECK_HELO:
        if (c->helo == NULL || c->helo[0] == 0)
            return V_DUNNO;
        {
            enum verdict v = V_DUNNO;
            char *name = xstrdup(c->helo);
            str_lower(name);
            strip_one_dot(name);
            if (*name)
                lookup_domain(e, name, c->helo, "Helo command", &v);
            free(name);
            return v;
        }
    case RK_CHECK_SENDER:
        return c->sender ? check_address(e, c->sender, "Sender address") : V_DUNNO;
    case RK_CHECK_RCPT:
        return check_address(e, c->recipient, "Recipient address");
    case RK_RBL_CLIENT: {
        /* Postfix's default reply ($rbl_code 554); a lookup that failed
         * counts as not listed, as in Postfix */
        const char *text = NULL;
        if (c->rbl_listed == NULL || c->rbl_listed(c->arg, x->word, &text) != 1)
            return V_DUNNO;
        return decide(e, 554, "5.7.1", "Service unavailable; Client host [%s] blocked using %s%s%s",
                      c->client_addr ? c->client_addr : "unknown", x->word, text && *text ? "; " : "",
                      text ? text : "");
    }
    case RK_UNKNOWN_SENDER_DOMAIN: {
        if (c->sender == NULL || c->sender[0] == '\0' || c->sender_domain == NULL)
            return V_DUNNO;
        rc = c->sender_domain(c->arg);
        if (rc == 1)   /* Postfix's unknown_address_reject_code is 450 */
            return decide(e, 450, "4.1.8", "<%s>: Sender address rejected: Domain not found", c->sender);
        if (rc == 2)
            return decide(e, 550, "5.7.27", "<%s>: Sender address rejected: Domain %s does not accept mail "
                          "(nullMX)", c->sender, strrchr(c->sender, '@') ? strrchr(c->sender, '@') + 1 : "");
        if (rc < 0)
            return decide(e, 451, "4.4.3", "<%s>: Sender address rejected: Temporary failure in name resolution",
                          c->sender);
        return V_DUNNO;
    }
    case RK_SENDER_LOGIN_MISMATCH:
    case RK_AUTH_SENDER_LOGIN_MISMATCH:
    case RK_UNAUTH_SENDER_LOGIN_MISMATCH: {
        /* Postfix's texts; the null sender is nobody's */
        if (c->sender == NULL || c->sender[0] == '\0' || c->sender_owned == NULL)
            return V_DUNNO;
        int authed = c->authenticated && c->login != NULL;
        if (authed && x->def->kind == RK_UNAUTH_SENDER_LOGIN_MISMATCH)
            return V_DUNNO;
        if (!authed && x->def->kind == RK_AUTH_SENDER_LOGIN_MISMATCH)
            return V_DUNNO;
        rc = c->sender_owned(c->arg, c->sender, authed ? c->login : NULL);
        if (rc < 0)
            return decide(e, 451, "4.3.0", "<%s>: Temporary lookup failure", c->sender);
        if (rc == 1)
            return V_DUNNO;
        if (authed)
            return decide(e, 553, "5.7.1", "<%s>: Sender address rejected: not owned by user %s", c->sender,
                          c->login);
        return decide(e, 553, "5.7.1", "<%s>: Sender address rejected: not logged in", c->sender);
    }
    case RK_REJECT_SPF_FAIL:
    case RK_DEFER_SPF_TEMPERROR: {
        const char *text = NULL;
        rc = c->spf_result ? c->spf_result(c->arg, &text) : POLICY_SPF_UNKNOWN;
        const char *sender = c->sender && *c->sender ? c->sender : "<>";
        if (rc == POLICY_SPF_FAIL && x->def->kind == RK_REJECT_SPF_FAIL)
            return decide(e, 550, "5.7.23", "<%s>: Sender address rejected: SPF check failed%s%s", sender,
                          text ? ": " : "", text ? text : "");
        if (rc == POLICY_SPF_TEMPERROR && x->def->kind == RK_DEFER_SPF_TEMPERROR)
            return decide(e, 451, "4.7.24", "<%s>: Sender address rejected: SPF temporary error%s%s", sender,
                          text ? ": " : "", text ? text : "");
        return V_DUNNO;
    }
    case RK_REJECT_DMARC_POLICY: {
        const char *text = NULL;
        rc = c->dmarc_policy ? c->dmarc_policy(c->arg, &text) : POLICY_DMARC_NONE;
        if (rc == POLICY_DMARC_REJECT)
            return decide(e, 550, "5.7.1", "Message rejected: %s", text ? text : "DMARC policy");
        if (rc == POLICY_DMARC_HOLD) {
            /* accepted, on hold: a decision that is no refusal */
            decide(e, 0, "", "%s", text ? text : "DMARC policy quarantine");
            e->r->hold = 1;
            return V_DECIDED;
        }
        return V_DUNNO;
    }
    case RK_IGNORED:
        return V_DUNNO;
    }
    return V_DUNNO;
}

int smtpd_policy_check_rcpt(const struct smtpd_policy_lists *p, const struct smtpd_policy_ctx *c,
                      struct smtpd_policy_result *r)
{
    memset(r, 0, sizeof *r);
    if (c->recipient == NULL)
        log_panic("smtpd_policy_check_rcpt: no recipient");
    struct eval e = {c, r, NULL, NULL, DEST_UNKNOWN, NULL};
    e.client_reply = xasprintf("%s[%s]", c->client_name ? c->client_name : "unknown",
                               c->client_addr ? c->client_addr : "unknown");
    const char *helo = c->helo ? c->helo : "";
    const char *sender = c->sender ? c->sender : "";
    /* Each list's own restrictions (permit, reject ...) speak about what the
     * list is named after. */
    const char *reply_name[L_RCPT_LISTS] = {e.client_reply, helo, sender, c->recipient, c->recipient};
    static const char *const reply_class[L_RCPT_LISTS] = {
        "Client host", "Helo command", "Sender address", "Recipient address",
        "Recipient address"};

    for (int i = 0; i < L_RCPT_LISTS && r->code == 0; i++) {
        const struct rlist *l = &p->l[i];
        e.list = policy_list_param[i];
        for (size_t j = 0; j < l->n; j++) {
            e.cur = &l->r[j];
            enum verdict v = eval_one(&e, e.cur, reply_name[i], reply_class[i]);
            if (v != V_DUNNO)
                break; /* PERMIT ends this list; a decision ends all */
        }
        if (i == L_SENDER && r->code == 0 && c->reject_unlisted_sender) {
            /* smtpd_reject_unlisted_sender: as Postfix, after the sender
             * list, even one that permitted */
            static const struct rdef implicit_def = {"reject_unlisted_sender", RK_REJECT_UNLISTED_SENDER,
                                                     ARG_NONE};
            static const struct restriction implicit = {&implicit_def, NULL, NULL};
            e.list = "smtpd_reject_unlisted_sender";
            e.cur = &implicit;
            unlisted_sender(&e);
        }
    }
    free(e.client_reply);
    return r->code;
}

int smtpd_policy_check_end_of_data(const struct smtpd_policy_lists *p, const struct smtpd_policy_ctx *c,
                                   struct smtpd_policy_result *r)
{
    memset(r, 0, sizeof *r);
    struct eval e = {c, r, NULL, NULL, DEST_UNKNOWN, NULL};
    e.client_reply = xasprintf("%s[%s]", c->client_name ? c->client_name : "unknown",
                               c->client_addr ? c->client_addr : "unknown");
    const struct rlist *l = &p->l[L_EOD];
    e.list = policy_list_param[L_EOD];
    for (size_t j = 0; j < l->n; j++) {
        e.cur = &l->r[j];
        /* Postfix names the DATA command in these replies */
        if (eval_one(&e, e.cur, e.client_reply, "Data command") != V_DUNNO)
            break;
    }
    free(e.client_reply);
    return r->code;
}
