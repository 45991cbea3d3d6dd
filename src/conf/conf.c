/* conf: the struct conf: settings, main.cf loading, $name expansion and
 * typed lookup (see conf.h; the other parts of the module are listed in
 * conf_internal.h). */
#include "conf/conf.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf_internal.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

/* Expansion is bounded three ways so that no value, however hostile, can
 * exhaust the stack (depth), the CPU (references expanded: a = $b$b$b...,
 * b = $c$c$c... grows exponentially even when the result is empty) or
 * memory (output length). */
#define EXPAND_DEPTH_MAX 100
#define EXPAND_STEPS_MAX 100000
#define EXPAND_OUTPUT_MAX (1u << 20)

struct setting {
    char *value;  /* raw, as written; NULL = not set */
    char *origin; /* file the setting came from; NULL if unknown */
    int line;
    char *cache; /* expanded, validated effective value */
    unsigned long long cache_gen;
    int warned; /* a bad value was already logged */
};

/* A name that is not in the table but was set (Postfix lets users define
 * their own parameters to use in $expansions). */
struct extra {
    char *name;
    struct setting s;
};

struct conf {
    struct setting *known; /* parallel to conf_params[] */
    struct extra *extra;   /* sorted by name: a fuzzed main.cf may set thousands */
    size_t nextra, extra_cap;
    char *hostname;       /* default of myhostname */
    char *domain_default; /* default of mydomain, follows myhostname */
    unsigned long long gen; /* bumped by every change; caches of older gens are stale */
};

/* ---- small helpers ---- */

static int is_name_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_';
}

int conf_name_valid(const char *name)
{
    if (!name || !*name)
        return 0;
    for (const char *p = name; *p; p++)
        if (!is_name_char((unsigned char)*p))
            return 0;
    return 1;
}

void conf_put_where(struct strbuf *sb, const char *origin, int line)
{
    if (origin && line > 0)
        strbuf_printf(sb, "%s:%d: ", origin, line);
    else if (origin)
        strbuf_printf(sb, "%s: ", origin);
}

static void diag_error(struct strbuf *diag, const char *origin, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void diag_error(struct strbuf *diag, const char *origin, int line, const char *fmt, ...)
{
    if (!diag)
        return;
    conf_put_where(diag, origin, line);
    strbuf_puts(diag, "error: ");
    va_list ap;
    va_start(ap, fmt);
    strbuf_vprintf(diag, fmt, ap);
    va_end(ap);
    strbuf_putc(diag, '\n');
}

static void setting_clear(struct setting *s)
{
    free(s->value);
    free(s->origin);
    free(s->cache);
    memset(s, 0, sizeof *s);
}

static void setting_copy(struct setting *dst, const struct setting *src)
{
    memset(dst, 0, sizeof *dst);
    dst->value = src->value ? xstrdup(src->value) : NULL;
    dst->origin = src->origin ? xstrdup(src->origin) : NULL;
    dst->line = src->line;
}

static size_t param_index(const struct conf_param *p)
{
    return (size_t)(p - conf_params);
}

/* Compares name[0..len) with the NUL-terminated s, as strcmp would. */
static int name_cmp(const char *name, size_t len, const char *s)
{
    int cmp = strncmp(name, s, len);
    if (cmp == 0 && s[len] != '\0')
        cmp = -1;
    return cmp;
}

/* Binary search: the index of name if present (*found = 1), else where it
 * would go. */
static size_t extra_position(const struct conf *c, const char *name, size_t len, int *found)
{
    size_t lo = 0, hi = c->nextra;
    *found = 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = name_cmp(name, len, c->extra[mid].name);
        if (cmp == 0) {
            *found = 1;
            return mid;
        }
        if (cmp < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static struct extra *extra_find_len(const struct conf *c, const char *name, size_t len)
{
    int found;
    size_t i = extra_position(c, name, len, &found);
    return found ? &c->extra[i] : NULL;
}

static const struct setting *setting_find(const struct conf *c, const char *name)
{
    const struct conf_param *p = conf_param_find(name);
    if (p)
        return &c->known[param_index(p)];
    const struct extra *e = extra_find_len(c, name, strlen(name));
    return e ? &e->s : NULL;
}

/* ---- expansion ---- */

struct expand {
    struct conf *c;
    int failed;
    struct strbuf err;        /* why, for the first failure */
    struct strbuf *undefined; /* if set: direct references to undefined names, "\n"-framed */
    size_t nundefined;
    int param_level; /* nesting of parameter values being expanded */
    size_t steps;    /* references expanded */
    size_t produced; /* bytes appended to any buffer, ${x?...} tests included */
};

/* conf_check reports this many undefined names per setting at most. */
#define UNDEFINED_REPORT_MAX 20

static void expand_init(struct expand *x, struct conf *c, struct strbuf *undefined)
{
    memset(x, 0, sizeof *x);
    x->c = c;
    x->undefined = undefined;
}

static int expand_fail(struct expand *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int expand_fail(struct expand *x, const char *fmt, ...)
{
    if (!x->failed) {
        va_list ap;
        va_start(ap, fmt);
        strbuf_vprintf(&x->err, fmt, ap);
        va_end(ap);
        x->failed = 1;
    }
    return -1;
}

static int emit(struct expand *x, struct strbuf *out, const char *data, size_t len)
{
    if (len > EXPAND_OUTPUT_MAX - x->produced)
        return expand_fail(x, "expansion produces more than %u bytes", EXPAND_OUTPUT_MAX);
    x->produced += len;
    strbuf_append(out, data, len);
    return 0;
}

static void note_undefined(struct expand *x, const char *name, size_t len)
{
    if (!x->undefined || x->param_level > 0 || x->nundefined >= UNDEFINED_REPORT_MAX)
        return;
    struct strbuf probe = STRBUF_INIT;
    strbuf_putc(&probe, '\n');
    strbuf_append(&probe, name, len);
    strbuf_putc(&probe, '\n');
    if (x->undefined->len == 0)
        strbuf_putc(x->undefined, '\n');
    if (!strstr(strbuf_str(x->undefined), strbuf_str(&probe))) {
        strbuf_append(x->undefined, name, len);
        strbuf_putc(x->undefined, '\n');
        x->nundefined++;
    }
    strbuf_free(&probe);
}

static int expand_text(struct expand *x, const char *s, size_t n, int depth, struct strbuf *out);

static int expand_default(struct expand *x, const struct conf_param *p, int depth,
                          struct strbuf *out)
{
    if (p->flags & CONF_F_HOSTNAME)
        return emit(x, out, x->c->hostname, strlen(x->c->hostname));
    if (p->flags & CONF_F_DOMAIN)
        return emit(x, out, x->c->domain_default, strlen(x->c->domain_default));
    return expand_text(x, p->def, strlen(p->def), depth, out);
}

/* Appends the expanded value of the named parameter; "" if it has none. */
static int expand_ref(struct expand *x, const char *name, size_t len, int depth,
                      struct strbuf *out)
{
    if (depth >= EXPAND_DEPTH_MAX)
        return expand_fail(x, "expansion nested more than %d levels at $%.*s (circular "
                              "reference?)",
                           EXPAND_DEPTH_MAX, (int)len, name);
    if (++x->steps > EXPAND_STEPS_MAX)
        return expand_fail(x, "expansion needs more than %d references", EXPAND_STEPS_MAX);
    const struct conf_param *p = conf_param_find_len(name, len);
    const struct setting *s;
    if (p) {
        s = &x->c->known[param_index(p)];
    } else {
        const struct extra *e = extra_find_len(x->c, name, len);
        if (!e) {
            note_undefined(x, name, len);
            return 0;
        }
        s = &e->s;
    }
    if (p && (p->flags & CONF_F_RAW)) {
        const char *text = s->value ? s->value : p->def;
        return emit(x, out, text, strlen(text));
    }
    x->param_level++;
    int rc = s->value ? expand_text(x, s->value, strlen(s->value), depth + 1, out)
                      : expand_default(x, p, depth + 1, out);
    x->param_level--;
    return rc;
}

/* Index of the bracket closing the one opened just before s[i], or n. */
static size_t find_close(const char *s, size_t i, size_t n, char open, char close)
{
    int level = 1;
    for (; i < n; i++) {
        if (s[i] == open)
            level++;
        else if (s[i] == close && --level == 0)
            return i;
    }
    return n;
}

/* ${name}, ${name?text}, ${name:text} and the same with (): s[*ip] is the
 * opening bracket; *ip ends past the closing one. */
static int expand_braced(struct expand *x, const char *s, size_t n, size_t *ip, int depth,
                         struct strbuf *out)
{
    size_t i = *ip;
    char open = s[i], close = open == '{' ? '}' : ')';
    size_t nb = ++i;
    while (i < n && is_name_char((unsigned char)s[i]))
        i++;
    size_t nlen = i - nb;
    if (nlen == 0)
        return expand_fail(x, "missing parameter name after $%c", open);
    if (i >= n)
        return expand_fail(x, "missing '%c' after $%c%.*s", close, open, (int)nlen, s + nb);
    if (s[i] == close) {
        *ip = i + 1;
        return expand_ref(x, s + nb, nlen, depth, out);
    }
    if (s[i] != '?' && s[i] != ':')
        return expand_fail(x, "invalid character '%c' after $%c%.*s (names are letters, "
                              "digits and _)",
                           s[i] > 0x20 && s[i] < 0x7f ? s[i] : '?', open, (int)nlen, s + nb);
    char op = s[i];
    size_t tb = i + 1;
    size_t te = find_close(s, tb, n, open, close);
    if (te >= n)
        return expand_fail(x, "missing '%c' after $%c%.*s%c", close, open, (int)nlen, s + nb, op);
    *ip = te + 1;
    struct strbuf val = STRBUF_INIT;
    int rc = expand_ref(x, s + nb, nlen, depth, &val);
    int nonempty = val.len > 0;
    strbuf_free(&val); /* before recursing: nested tests must not pile values up */
    if (rc)
        return rc;
    if ((op == '?') != nonempty)
        return 0;
    if (depth >= EXPAND_DEPTH_MAX)
        return expand_fail(x, "expansion nested more than %d levels", EXPAND_DEPTH_MAX);
    return expand_text(x, s + tb, te - tb, depth + 1, out);
}

static int expand_text(struct expand *x, const char *s, size_t n, int depth, struct strbuf *out)
{
    size_t i = 0;
    while (i < n) {
        const char *dollar = memchr(s + i, '$', n - i);
        size_t run = dollar ? (size_t)(dollar - (s + i)) : n - i;
        if (emit(x, out, s + i, run))
            return -1;
        i += run;
        if (i >= n)
            break;
        if (++i >= n)
            return expand_fail(x, "'$' at end of value (write $$ for a literal $)");
        unsigned char ch = (unsigned char)s[i];
        int rc;
        if (ch == '$') {
            rc = emit(x, out, "$", 1);
            i++;
        } else if (ch == '{' || ch == '(') {
            rc = expand_braced(x, s, n, &i, depth, out);
        } else if (is_name_char(ch)) {
            size_t nb = i;
            while (i < n && is_name_char((unsigned char)s[i]))
                i++;
            rc = expand_ref(x, s + nb, i - nb, depth, out);
        } else {
            rc = expand_fail(x, "'$' not followed by a parameter name (write $$ for a literal $)");
        }
        if (rc)
            return rc;
    }
    return 0;
}

int conf_evaluate(struct conf *c, const struct conf_param *p, const char *raw, struct strbuf *out,
                  struct strbuf *why, struct strbuf *undefined)
{
    struct expand x;
    expand_init(&x, c, undefined);
    int rc;
    if (p && (p->flags & CONF_F_RAW))
        rc = emit(&x, out, raw ? raw : p->def, strlen(raw ? raw : p->def));
    else
        rc = raw ? expand_text(&x, raw, strlen(raw), 0, out) : expand_default(&x, p, 0, out);
    if (rc)
        strbuf_puts(why, strbuf_str(&x.err));
    strbuf_free(&x.err);
    if (rc)
        return -1;
    return conf_validate(p, strbuf_str(out), why);
}

/* mydomain's default follows myhostname as the getters see it: the setting,
 * or the system host name when there is none or it does not expand. */
static void refresh_domain_default(struct conf *c)
{
    struct strbuf host = STRBUF_INIT, why = STRBUF_INIT;
    const struct conf_param *p = conf_param_find("myhostname");
    const char *name = c->hostname;
    if (conf_evaluate(c, p, c->known[param_index(p)].value, &host, &why, NULL) == 0)
        name = strbuf_str(&host);
    const char *dot = strchr(name, '.');
    char *fresh = xstrdup(dot && dot[1] ? dot + 1 : "localdomain");
    free(c->domain_default);
    c->domain_default = fresh;
    strbuf_free(&host);
    strbuf_free(&why);
}

static void changed(struct conf *c)
{
    c->gen++;
}

/* ---- construction ---- */

static void set_hostname(struct conf *c, const char *hostname)
{
    free(c->hostname);
    c->hostname = xstrdup(hostname && *hostname ? hostname : "localhost");
    refresh_domain_default(c);
    changed(c);
}

struct conf *conf_new(void)
{
    struct conf *c = xcalloc(1, sizeof *c);
    c->known = xcalloc(conf_params_count, sizeof *c->known);
    c->gen = 1;
    char host[256];
    if (gethostname(host, sizeof host) != 0)
        host[0] = '\0';
    host[sizeof host - 1] = '\0';
    set_hostname(c, host);
    return c;
}

#ifdef TERN_TEST_BUILD
void conf_test_set_hostname(struct conf *c, const char *hostname)
{
    set_hostname(c, hostname);
}
#endif

struct conf *conf_clone(const struct conf *c)
{
    struct conf *d = xcalloc(1, sizeof *d);
    d->known = xcalloc(conf_params_count, sizeof *d->known);
    for (size_t i = 0; i < conf_params_count; i++)
        setting_copy(&d->known[i], &c->known[i]);
    if (c->nextra) {
        d->extra = xcalloc(c->nextra, sizeof *d->extra);
        d->nextra = d->extra_cap = c->nextra;
        for (size_t i = 0; i < c->nextra; i++) {
            d->extra[i].name = xstrdup(c->extra[i].name);
            setting_copy(&d->extra[i].s, &c->extra[i].s);
        }
    }
    d->hostname = xstrdup(c->hostname);
    d->domain_default = xstrdup(c->domain_default);
    d->gen = 1;
    return d;
}

void conf_free(struct conf *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < conf_params_count; i++)
        setting_clear(&c->known[i]);
    for (size_t i = 0; i < c->nextra; i++) {
        free(c->extra[i].name);
        setting_clear(&c->extra[i].s);
    }
    free(c->known);
    free(c->extra);
    free(c->hostname);
    free(c->domain_default);
    free(c);
}

/* ---- setting ---- */

/* name: name characters only, len bytes. */
static void set_value(struct conf *c, const char *name, size_t len, const char *value,
                      const char *origin, int line)
{
    struct setting *s;
    const struct conf_param *p = conf_param_find_len(name, len);
    if (p) {
        s = &c->known[param_index(p)];
    } else {
        int found;
        size_t idx = extra_position(c, name, len, &found);
        if (!found && !value)
            return;
        if (!found) {
            c->extra = xgrow(c->extra, &c->extra_cap, c->nextra + 1, sizeof *c->extra);
            memmove(&c->extra[idx + 1], &c->extra[idx], (c->nextra - idx) * sizeof *c->extra);
            c->nextra++;
            memset(&c->extra[idx], 0, sizeof c->extra[idx]);
            c->extra[idx].name = xstrndup(name, len);
        }
        struct extra *e = &c->extra[idx];
        if (!value) { /* an unknown name at its "default" is no name at all */
            free(e->name);
            setting_clear(&e->s);
            memmove(e, e + 1, (c->nextra - idx - 1) * sizeof *e);
            c->nextra--;
            changed(c);
            return;
        }
        s = &e->s;
    }
    char *fresh_value = value ? xstrdup(value) : NULL;
    char *fresh_origin = value && origin ? xstrdup(origin) : NULL;
    free(s->value);
    free(s->origin);
    s->value = fresh_value;
    s->origin = fresh_origin;
    s->line = value ? line : 0;
    s->warned = 0;
    changed(c);
}

void conf_set(struct conf *c, const char *name, const char *value, const char *origin, int line)
{
    if (!conf_name_valid(name))
        log_panic("conf_set: invalid parameter name \"%s\"", name ? name : "(null)");
    set_value(c, name, strlen(name), value, origin, line);
    refresh_domain_default(c);
}

static int load_line(struct conf *c, const char *text, const char *origin, int lineno,
                     struct strbuf *diag)
{
    struct strbuf q = STRBUF_INIT;
    const char *eq = strchr(text, '=');
    int rc = -1;
    if (!eq) {
        conf_put_quoted(&q, text, strlen(text), CONF_QUOTE_MAX);
        diag_error(diag, origin, lineno, "missing '=' after parameter name in \"%s\"", strbuf_str(&q));
        goto out;
    }
    size_t nlen = (size_t)(eq - text);
    while (nlen && str_is_blank((unsigned char)text[nlen - 1]))
        nlen--;
    if (nlen == 0) {
        diag_error(diag, origin, lineno, "missing parameter name before '='");
        goto out;
    }
    for (size_t i = 0; i < nlen; i++) {
        if (!is_name_char((unsigned char)text[i])) {
            conf_put_quoted(&q, text, nlen, CONF_QUOTE_MAX);
            diag_error(diag, origin, lineno,
                       "invalid parameter name \"%s\" (letters, digits and _ only)", strbuf_str(&q));
            goto out;
        }
    }
    const char *value = eq + 1;
    while (str_is_blank((unsigned char)*value))
        value++;
    set_value(c, text, nlen, value, origin, lineno);
    rc = 0;
out:
    strbuf_free(&q);
    return rc;
}

int conf_load_mem(struct conf *c, const char *data, size_t len, const char *origin,
                  struct strbuf *diag)
{
    struct conf_lines r;
    struct strbuf line = STRBUF_INIT;
    int errors = 0, lineno = 0;
    conf_lines_init(&r, data, len);
    for (;;) {
        enum conf_line_kind kind = conf_lines_next(&r, &line, &lineno);
        int bad = 0;
        if (kind == CONF_LINE_END)
            break;
        if (kind == CONF_LINE_ORPHAN) {
            diag_error(diag, origin, lineno,
                       "line starts with whitespace but continues no setting");
            bad = 1;
        } else if (kind == CONF_LINE_NUL) {
            diag_error(diag, origin, lineno, "NUL byte in line");
            bad = 1;
        } else {
            bad = load_line(c, strbuf_str(&line), origin, lineno, diag) != 0;
        }
        if (bad && errors < INT_MAX)
            errors++;
    }
    strbuf_free(&line);
    refresh_domain_default(c);
    changed(c);
    return errors;
}

int conf_load_string(struct conf *c, const char *text, const char *origin, struct strbuf *diag)
{
    return conf_load_mem(c, text, strlen(text), origin, diag);
}

int conf_load_file(struct conf *c, const char *path, struct strbuf *diag)
{
    struct strbuf data = STRBUF_INIT;
    if (conf_read_file(path, &data) != 0) {
        int e = errno;
        strbuf_free(&data);
        errno = e;
        return -1;
    }
    int rc = conf_load_mem(c, strbuf_str(&data), data.len, path, diag);
    strbuf_free(&data);
    return rc;
}

/* ---- lookup ---- */

const char *conf_raw(const struct conf *c, const char *name)
{
    const struct conf_param *p = conf_param_find(name);
    if (p) {
        const struct setting *s = &c->known[param_index(p)];
        if (s->value)
            return s->value;
        if (p->flags & CONF_F_HOSTNAME)
            return c->hostname;
        if (p->flags & CONF_F_DOMAIN)
            return c->domain_default;
        return p->def;
    }
    const struct extra *e = extra_find_len(c, name, strlen(name));
    return e ? e->s.value : NULL;
}

int conf_is_set(const struct conf *c, const char *name)
{
    const struct setting *s = setting_find(c, name);
    return s && s->value;
}

const char *conf_origin(const struct conf *c, const char *name, int *line)
{
    const struct setting *s = setting_find(c, name);
    if (line)
        *line = s ? s->line : 0;
    return s && s->value ? s->origin : NULL;
}

static const struct conf_param *param_for_getter(const char *getter, const char *name, int type)
{
    const struct conf_param *p = conf_param_find(name);
    if (!p)
        log_panic("%s: unknown parameter \"%s\"", getter, name);
    if (type >= 0 && p->type != (enum conf_type)type)
        log_panic("%s: parameter %s is a %s", getter, name, conf_type_name(p->type));
    return p;
}

/* The expanded, validated value of p: the setting if it is good, else the
 * default. A bad setting is logged once per setting. */
static const char *effective(struct conf *c, const struct conf_param *p)
{
    struct setting *s = &c->known[param_index(p)];
    if (s->cache && s->cache_gen == c->gen)
        return s->cache;
    free(s->cache);
    s->cache = NULL;
    struct strbuf out = STRBUF_INIT, why = STRBUF_INIT;
    if (s->value) {
        if (conf_evaluate(c, p, s->value, &out, &why, NULL) == 0)
            goto done;
        if (!s->warned) {
            struct strbuf where = STRBUF_INIT;
            conf_put_where(&where, s->origin, s->line);
            log_warn("%s%s: %s; using the default", strbuf_str(&where), p->name, strbuf_str(&why));
            strbuf_free(&where);
            s->warned = 1;
        }
        strbuf_reset(&out);
        strbuf_reset(&why);
    }
    const struct conf_param *ref = conf_param_default_ref(p);
    if (ref) {
        /* The other row's value as its getter sees it, so a bad setting there
         * falls back to its default here too. The unit test checks that both
         * rows have the same type, unit and a range that fits. */
        strbuf_puts(&out, effective(c, ref));
        if (conf_validate(p, strbuf_str(&out), &why) != 0)
            log_panic("%s: default $%s: %s", p->name, ref->name, strbuf_str(&why));
    } else if (conf_evaluate(c, p, NULL, &out, &why, NULL) != 0) {
        /* Only a default built from other, broken settings gets here; the
         * numeric defaults are literals or one $reference (the unit test
         * checks). */
        if (!s->warned)
            log_warn("%s: default value: %s", p->name, strbuf_str(&why));
        s->warned = 1;
    }
done:
    s->cache = strbuf_detach(&out);
    s->cache_gen = c->gen;
    strbuf_free(&why);
    return s->cache;
}

const char *conf_str(struct conf *c, const char *name)
{
    return effective(c, param_for_getter("conf_str", name, -1));
}

long long conf_int(struct conf *c, const char *name)
{
    const struct conf_param *p = param_for_getter("conf_int", name, CONF_INT);
    long long n;
    if (conf_parse_int(effective(c, p), &n) != 0)
        log_panic("conf_int: %s: default \"%s\" is no integer", name, p->def);
    return n;
}

long long conf_time(struct conf *c, const char *name)
{
    const struct conf_param *p = param_for_getter("conf_time", name, CONF_TIME);
    long long n;
    if (conf_parse_time(effective(c, p), p->unit, &n) != 0)
        log_panic("conf_time: %s: default \"%s\" is no time", name, p->def);
    return n;
}

int conf_bool(struct conf *c, const char *name)
{
    const struct conf_param *p = param_for_getter("conf_bool", name, CONF_BOOL);
    int b;
    if (conf_parse_bool(effective(c, p), &b) != 0)
        log_panic("conf_bool: %s: default \"%s\" is no boolean", name, p->def);
    return b;
}

struct conf_list conf_list(struct conf *c, const char *name)
{
    return conf_list_split(effective(c, param_for_getter("conf_list", name, CONF_LIST)));
}

/* ---- for conf_report.c ---- */

size_t conf_settings(const struct conf *c, struct conf_setting **out)
{
    struct conf_setting *v = xcalloc(conf_params_count + c->nextra, sizeof *v);
    size_t n = 0;
    for (size_t i = 0; i < conf_params_count; i++) {
        const struct setting *s = &c->known[i];
        if (s->value)
            v[n++] = (struct conf_setting){conf_params[i].name, s->value, s->origin, s->line,
                                           &conf_params[i]};
    }
    for (size_t i = 0; i < c->nextra; i++) {
        const struct setting *s = &c->extra[i].s;
        v[n++] = (struct conf_setting){c->extra[i].name, s->value, s->origin, s->line, NULL};
    }
    *out = v;
    return n;
}
