/* map_pgsql_cf: a pgsql: table's configuration file, key eligibility, query
 * and result expansion (see map_pgsql_cf.h for the rules). No libpq here:
 * escaping comes in as a function, so tests need no database. */
#include "maps/map_pgsql_cf.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maps/map.h"
#include "maps/map_source.h"
#include "util/log.h"
#include "util/mem.h"

/* The largest configuration file read (it holds a few settings). */
#define PGSQL_CF_MAX_SIZE (1024 * 1024)

/* ---- the file ------------------------------------------------------------ */

/* Every setting, in one place, so unknown ones are told apart. */
enum setting {
    SET_HOSTS, SET_USER, SET_PASSWORD, SET_DBNAME, SET_ENCODING, SET_QUERY, SET_RESULT_FORMAT,
    SET_DOMAIN, SET_EXPANSION_LIMIT, SET_RETRY_INTERVAL, SET_IDLE_INTERVAL, SET_CONNECT_TIMEOUT,
    SET_QUERY_TIMEOUT, SET_SELECT_FUNCTION, SET_SELECT_FIELD, SET_TABLE, SET_WHERE_FIELD,
    SET_ADDITIONAL_CONDITIONS, SET_COUNT
};
static const char *const setting_names[SET_COUNT] = {
    "hosts", "user", "password", "dbname", "encoding", "query", "result_format", "domain",
    "expansion_limit", "retry_interval", "idle_interval", "connect_timeout", "query_timeout",
    "select_function", "select_field", "table", "where_field", "additional_conditions"};

struct parse_state {
    char *values[SET_COUNT];
    size_t lines[SET_COUNT];
    char *err; /* first error */
};

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

static void parse_line(void *arg, const char *path, size_t lineno, char *line)
{
    struct parse_state *ps = arg;
    if (ps->err)
        return;
    char *eq = strchr(line, '=');
    if (!eq) {
        ps->err = xasprintf("%s:%zu: expected \"name = value\"", path, lineno);
        return;
    }
    *eq = '\0';
    char *name = trim(line);
    char *value = trim(eq + 1);
    for (int i = 0; i < SET_COUNT; i++) {
        if (strcmp(name, setting_names[i]) == 0) {
            free(ps->values[i]); /* a later line wins, as in main.cf */
            ps->values[i] = xstrdup(value);
            ps->lines[i] = lineno;
            return;
        }
    }
    log_warn("%s:%zu: unknown setting \"%s\" ignored", path, lineno, name);
}

/* Checks a template's % escapes and records which key or value parts it
 * uses. is_result: a result_format (lower case = the value's parts). */
static char *scan_template(struct pgsql_cf *cf, const char *tmpl, int is_result, const char *what,
                           size_t lineno)
{
    for (const char *p = tmpl; *p; p++) {
        if (*p != '%')
            continue;
        char c = *++p;
        if (c >= '1' && c <= '9') {
            cf->key_needs_domain = 1;
            if (c - '0' > cf->key_labels)
                cf->key_labels = c - '0';
            continue;
        }
        switch (c) {
        case '%': case 's': case 'S':
            break;
        case 'u':
            *(is_result ? &cf->value_needs_user : &cf->key_needs_user) = 1;
            break;
        case 'd':
            *(is_result ? &cf->value_needs_domain : &cf->key_needs_domain) = 1;
            break;
        case 'U':
            cf->key_needs_user = 1;
            break;
        case 'D':
            cf->key_needs_domain = 1;
            break;
        default:
            return xasprintf("%s:%zu: %s: unknown expansion \"%%%s\" (%%s %%u %%d %%S %%U %%D "
                             "%%1-%%9 %%%%)",
                             cf->path, lineno, what, c ? (char[2]){c, '\0'} : "");
        }
    }
    return NULL;
}

/* "[addr]:port", "host:port", "host" -> host and port (NULL if none). */
static char *split_host_port(const char *spec, struct pgsql_host *h)
{
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        if (!close || (close[1] && close[1] != ':'))
            return xasprintf("bad host \"%s\"", spec);
        h->host = xstrndup(spec + 1, (size_t)(close - spec - 1));
        h->port = close[1] ? xstrdup(close + 2) : NULL;
    } else {
        const char *colon = strchr(spec, ':');
        h->host = colon ? xstrndup(spec, (size_t)(colon - spec)) : xstrdup(spec);
        h->port = colon ? xstrdup(colon + 1) : NULL;
    }
    if (!h->host[0] || (h->port && (!h->port[0] || strspn(h->port, "0123456789") != strlen(h->port))))
        return xasprintf("bad host \"%s\"", spec);
    return NULL;
}

static char *parse_host(const char *spec, struct pgsql_host *h)
{
    if (strncmp(spec, "postgresql://", 13) == 0 || strncmp(spec, "postgres://", 11) == 0) {
        h->host = xstrdup(spec);
        h->uri = 1;
        return NULL;
    }
    if (strncmp(spec, "unix:", 5) == 0) {
        if (spec[5] != '/')
            return xasprintf("bad host \"%s\" (unix:/directory)", spec);
        h->host = xstrdup(spec + 5);
        return NULL;
    }
    if (strncmp(spec, "inet:", 5) == 0)
        spec += 5;
    return split_host_port(spec, h);
}

/* Splits a list on commas and blanks into malloc'd words. */
static char **split_list(const char *text, size_t *count)
{
    char **words = NULL;
    size_t n = 0, cap = 0;
    const char *p = text;
    for (;;) {
        p += strspn(p, ", \t\r\n");
        if (!*p)
            break;
        size_t len = strcspn(p, ", \t\r\n");
        words = xgrow(words, &cap, n + 1, sizeof *words);
        words[n++] = xstrndup(p, len);
        p += len;
    }
    *count = n;
    return words;
}

static int parse_seconds(const char *text, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno || end == text || *end || text[0] == '-' || v > 86400 * 365)
        return -1;
    *out = (unsigned)v;
    return 0;
}

static char *apply_settings(struct pgsql_cf *cf, struct parse_state *ps)
{
    char **v = ps->values;
    size_t *ln = ps->lines;
    cf->user = v[SET_USER] ? xstrdup(v[SET_USER]) : NULL;
    cf->password = v[SET_PASSWORD] ? xstrdup(v[SET_PASSWORD]) : NULL;
    cf->dbname = v[SET_DBNAME] ? xstrdup(v[SET_DBNAME]) : NULL;
    cf->encoding = xstrdup(v[SET_ENCODING] && *v[SET_ENCODING] ? v[SET_ENCODING] : "UTF8");

    size_t nhosts = 0;
    char **hosts = split_list(v[SET_HOSTS] ? v[SET_HOSTS] : "", &nhosts);
    if (nhosts == 0) {
        hosts = xgrow(hosts, &(size_t){0}, 1, sizeof *hosts);
        hosts[nhosts++] = xstrdup("localhost");
    }
    cf->hosts = xcalloc(nhosts, sizeof *cf->hosts);
    char *err = NULL;
    for (size_t i = 0; i < nhosts; i++) {
        if (!err) {
            char *why = parse_host(hosts[i], &cf->hosts[i]);
            cf->host_count = i + 1;
            if (why) {
                err = xasprintf("%s:%zu: hosts: %s", cf->path, ln[SET_HOSTS], why);
                free(why);
            }
        }
        free(hosts[i]);
    }
    free(hosts);
    if (err)
        return err;

    /* The query, or the old interface's pieces it is built from. */
    size_t qline = ln[SET_QUERY];
    if (v[SET_QUERY] && *v[SET_QUERY]) {
        cf->query = xstrdup(v[SET_QUERY]);
    } else if (v[SET_SELECT_FUNCTION] && *v[SET_SELECT_FUNCTION]) {
        cf->query = xasprintf("SELECT %s('%%s')", v[SET_SELECT_FUNCTION]);
        qline = ln[SET_SELECT_FUNCTION];
    } else if (v[SET_SELECT_FIELD] && v[SET_TABLE] && v[SET_WHERE_FIELD]) {
        cf->query = xasprintf("SELECT %s FROM %s WHERE %s='%%s' %s", v[SET_SELECT_FIELD], v[SET_TABLE],
                              v[SET_WHERE_FIELD],
                              v[SET_ADDITIONAL_CONDITIONS] ? v[SET_ADDITIONAL_CONDITIONS] : "");
        qline = ln[SET_TABLE];
    } else {
        return xasprintf("%s: no \"query\" setting (the SQL to run, e.g. query = SELECT goto FROM "
                         "alias WHERE address = '%%s')",
                         cf->path);
    }
    if ((err = scan_template(cf, cf->query, 0, "query", qline)))
        return err;
    cf->result_format = xstrdup(v[SET_RESULT_FORMAT] && *v[SET_RESULT_FORMAT] ? v[SET_RESULT_FORMAT] : "%s");
    if ((err = scan_template(cf, cf->result_format, 1, "result_format", ln[SET_RESULT_FORMAT])))
        return err;

    cf->domains = split_list(v[SET_DOMAIN] ? v[SET_DOMAIN] : "", &cf->domain_count);
    cf->domain_maps = xcalloc(cf->domain_count + 1, sizeof *cf->domain_maps);
    for (size_t i = 0; i < cf->domain_count; i++) {
        char *d = cf->domains[i];
        if (d[0] == '/')
            return xasprintf("%s:%zu: domain: a file of domains is not supported: name it as a "
                             "table (hash:%s)",
                             cf->path, ln[SET_DOMAIN], d);
        if (strchr(d, ':')) {
            char *why = NULL;
            cf->domain_maps[i] = map_open(d, 0, &why);
            if (!cf->domain_maps[i]) {
                err = xasprintf("%s:%zu: domain: %s", cf->path, ln[SET_DOMAIN], why ? why : d);
                free(why);
                return err;
            }
        } else {
            for (char *p = d; *p; p++)
                *p = (char)tolower((unsigned char)*p);
        }
    }

    struct { enum setting which; unsigned *out; unsigned dflt; } nums[] = {
        {SET_EXPANSION_LIMIT, &cf->expansion_limit, 0}, {SET_RETRY_INTERVAL, &cf->retry_interval, 1},
        {SET_IDLE_INTERVAL, &cf->idle_interval, 60},    {SET_CONNECT_TIMEOUT, &cf->connect_timeout, 5},
        {SET_QUERY_TIMEOUT, &cf->query_timeout, 10}};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        const char *text = v[nums[i].which];
        *nums[i].out = nums[i].dflt;
        if (text && *text && parse_seconds(text, nums[i].out) != 0)
            return xasprintf("%s:%zu: %s: \"%s\" is not a number", cf->path, ln[nums[i].which],
                             setting_names[nums[i].which], text);
    }
    if (cf->connect_timeout == 0 || cf->query_timeout == 0)
        return xasprintf("%s: connect_timeout and query_timeout must be at least 1", cf->path);
    return NULL;
}

struct pgsql_cf *pgsql_cf_parse(const char *path, const char *text, size_t len, char **err)
{
    *err = NULL;
    struct parse_state ps = {0};
    map_source_lines(path, text, len, parse_line, &ps);
    struct pgsql_cf *cf = xcalloc(1, sizeof *cf);
    cf->path = xstrdup(path);
    char *why = ps.err ? ps.err : apply_settings(cf, &ps);
    for (int i = 0; i < SET_COUNT; i++)
        free(ps.values[i]);
    if (why) {
        if (why != ps.err)
            free(ps.err);
        *err = why;
        pgsql_cf_free(cf);
        return NULL;
    }
    return cf;
}

struct pgsql_cf *pgsql_cf_read(const char *path, char **err)
{
    *err = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        *err = xasprintf("%s: %s", path, strerror(errno));
        return NULL;
    }
    char *data = xmalloc(PGSQL_CF_MAX_SIZE + 1);
    size_t len = fread(data, 1, PGSQL_CF_MAX_SIZE + 1, f);
    int failed = ferror(f);
    fclose(f);
    struct pgsql_cf *cf = NULL;
    if (failed)
        *err = xasprintf("%s: read error", path);
    else if (len > PGSQL_CF_MAX_SIZE)
        *err = xasprintf("%s: larger than %d bytes", path, PGSQL_CF_MAX_SIZE);
    else
        cf = pgsql_cf_parse(path, data, len, err);
    free(data);
    return cf;
}

void pgsql_cf_free(struct pgsql_cf *cf)
{
    if (!cf)
        return;
    for (size_t i = 0; i < cf->host_count; i++) {
        free(cf->hosts[i].host);
        free(cf->hosts[i].port);
    }
    free(cf->hosts);
    for (size_t i = 0; i < cf->domain_count; i++) {
        free(cf->domains[i]);
        if (cf->domain_maps && cf->domain_maps[i])
            map_close(cf->domain_maps[i]);
    }
    free(cf->domains);
    free(cf->domain_maps);
    if (cf->password) /* do not leave the password in freed memory */
        memset(cf->password, 0, strlen(cf->password));
    free(cf->password);
    free(cf->user);
    free(cf->dbname);
    free(cf->encoding);
    free(cf->query);
    free(cf->result_format);
    free(cf->path);
    free(cf);
}

/* ---- keys ---------------------------------------------------------------- */

/* The domain's n-th label from the right (1 = the last) as start and length;
 * -1 when there are fewer labels or that one is empty. */
static int domain_label(const char *domain, int n, const char **start, size_t *len)
{
    const char *end = domain + strlen(domain);
    for (int i = 1;; i++) {
        const char *p = end;
        while (p > domain && p[-1] != '.')
            p--;
        if (i == n) {
            *start = p;
            *len = (size_t)(end - p);
            return *len > 0 ? 0 : -1;
        }
        if (p == domain)
            return -1;
        end = p - 1;
    }
}

static int domain_listed(const struct pgsql_cf *cf, const char *domain)
{
    for (size_t i = 0; i < cf->domain_count; i++) {
        const char *entry = cf->domains[i];
        if (cf->domain_maps[i]) {
            char *value = NULL;
            int rc = map_lookup(cf->domain_maps[i], domain, &value);
            free(value);
            if (rc != 0)
                return rc;
        } else if (entry[0] == '.') {
            size_t dl = strlen(domain), el = strlen(entry);
            if (dl > el && strcmp(domain + dl - el, entry) == 0)
                return 1;
        } else if (strcmp(domain, entry) == 0) {
            return 1;
        }
    }
    return 0;
}

int pgsql_key_eligible(const struct pgsql_cf *cf, const char *key)
{
    if (!key[0])
        return 0;
    const char *at = strrchr(key, '@');
    if (cf->domain_count > 0) {
        if (!at || at == key || !at[1])
            return 0;
        int listed = domain_listed(cf, at + 1);
        if (listed <= 0)
            return listed;
    }
    if (cf->key_needs_domain && (!at || !at[1]))
        return 0;
    if (cf->key_needs_user && at == key)
        return 0;
    for (int n = 1; n <= cf->key_labels; n++) {
        const char *start;
        size_t len;
        if (domain_label(at + 1, n, &start, &len) != 0)
            return 0;
    }
    return 1;
}

int pgsql_escape_plain(void *standard_conforming, struct strbuf *out, const char *text)
{
    int backslashes_special = !*(const int *)standard_conforming;
    for (const char *p = text; *p; p++) {
        if (*p == '\'' || (*p == '\\' && backslashes_special))
            strbuf_putc(out, *p);
        strbuf_putc(out, *p);
    }
    return 0;
}

/* Appends len bytes of text, escaped when escape is set. */
static int put_part(struct strbuf *out, const char *text, size_t len, pgsql_escape_fn *escape, void *arg)
{
    if (!escape) {
        strbuf_append(out, text, len);
        return 0;
    }
    char *copy = xstrndup(text, len);
    int rc = escape(arg, out, copy);
    free(copy);
    return rc;
}

/* The local part (all of it without '@') and domain (NULL) of an address. */
static void address_parts(const char *addr, size_t *user_len, const char **domain)
{
    const char *at = strrchr(addr, '@');
    *user_len = at ? (size_t)(at - addr) : strlen(addr);
    *domain = at ? at + 1 : NULL;
}

/* Expands tmpl; lower-case escapes take subject's parts (the key in a
 * query, the value in a result), upper-case and digits the key's. Returns
 * 1, 0 when a needed part is missing, -1 when escaping failed. */
static int expand(const char *tmpl, const char *subject, const char *key, pgsql_escape_fn *escape,
                  void *arg, struct strbuf *out)
{
    size_t s_user, k_user;
    const char *s_domain, *k_domain;
    address_parts(subject, &s_user, &s_domain);
    address_parts(key, &k_user, &k_domain);
    for (const char *p = tmpl; *p; p++) {
        if (*p != '%') {
            strbuf_putc(out, *p);
            continue;
        }
        const char *part = NULL;
        size_t len = 0;
        char c = *++p;
        switch (c) {
        case '%': strbuf_putc(out, '%'); continue;
        case 's': part = subject; len = strlen(subject); break;
        case 'S': part = key; len = strlen(key); break;
        case 'u': part = subject; len = s_user; break;
        case 'U': part = key; len = k_user; break;
        case 'd': part = s_domain; len = part ? strlen(part) : 0; break;
        case 'D': part = k_domain; len = part ? strlen(part) : 0; break;
        default:
            if (c >= '1' && c <= '9' && k_domain && domain_label(k_domain, c - '0', &part, &len) == 0)
                break;
            return 0; /* scan_template let only these through: a part is missing */
        }
        if (!part || len == 0)
            return 0;
        if (put_part(out, part, len, escape, arg) != 0)
            return -1;
    }
    return 1;
}

int pgsql_expand_query(const struct pgsql_cf *cf, const char *key, pgsql_escape_fn *escape,
                       void *escape_arg, struct strbuf *out)
{
    if (pgsql_key_eligible(cf, key) != 1)
        return 0;
    return expand(cf->query, key, key, escape, escape_arg, out);
}

int pgsql_format_result(const struct pgsql_cf *cf, const char *key, const char *const *fields,
                        size_t count, char **value, char **why)
{
    *value = NULL;
    *why = NULL;
    struct strbuf out = STRBUF_INIT, one = STRBUF_INIT;
    unsigned results = 0;
    for (size_t i = 0; i < count; i++) {
        const char *field = fields[i];
        if (!field || !field[0])
            continue;
        const char *at = strrchr(field, '@');
        if (cf->value_needs_domain && (!at || !at[1]))
            continue;
        if (cf->value_needs_user && at == field)
            continue;
        strbuf_reset(&one);
        if (expand(cf->result_format, field, key, NULL, NULL, &one) != 1)
            continue;
        if (cf->expansion_limit && ++results > cf->expansion_limit) {
            *why = xasprintf("%s: more than expansion_limit = %u results for \"%s\"", cf->path,
                             cf->expansion_limit, key);
            strbuf_free(&out);
            strbuf_free(&one);
            return -1;
        }
        if (out.len > 0)
            strbuf_putc(&out, ',');
        strbuf_puts(&out, strbuf_str(&one));
    }
    strbuf_free(&one);
    if (out.len == 0) {
        strbuf_free(&out);
        return 0;
    }
    *value = strbuf_detach(&out);
    return 1;
}
