/* mastercf: master.cf parsing (see mastercf.h). */
#include "conf/mastercf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/conf.h"
#include "util/mem.h"
#include "util/str.h"

#define FIELDS 8 /* service type private unpriv chroot wakeup maxproc command */
#define QUOTE_MAX 80

static void diag_error(struct strbuf *diag, const char *origin, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void diag_error(struct strbuf *diag, const char *origin, int line, const char *fmt, ...)
{
    if (!diag)
        return;
    if (origin)
        strbuf_printf(diag, "%s:%d: ", origin, line);
    strbuf_puts(diag, "error: ");
    va_list ap;
    va_start(ap, fmt);
    strbuf_vprintf(diag, fmt, ap);
    va_end(ap);
    strbuf_putc(diag, '\n');
}

/* A field quoted for a diagnostic (binary input stays readable and short). */
static const char *quoted(struct strbuf *sb, const char *s)
{
    strbuf_reset(sb);
    conf_put_quoted(sb, s, strlen(s), QUOTE_MAX);
    return strbuf_str(sb);
}

/* ---- listen addresses ---- */

static int port_valid(const char *port)
{
    if (!*port)
        return 0;
    if (str_is_digit((unsigned char)*port)) {
        long n = 0;
        for (const char *p = port; *p; p++) {
            if (!str_is_digit((unsigned char)*p))
                goto name; /* "1ctp"-style names do exist in /etc/services */
            n = n * 10 + (*p - '0');
            if (n > 65535)
                return 0;
        }
        return n > 0;
    }
name:
    if (!str_is_alnum((unsigned char)*port))
        return 0;
    for (const char *p = port; *p; p++)
        if (!str_is_alnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.' && *p != '+')
            return 0;
    return 1;
}

static int hostname_valid(const char *h, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!str_is_alnum((unsigned char)h[i]) && h[i] != '-' && h[i] != '.' && h[i] != '_')
            return 0;
    return 1;
}

static int ip_literal_valid(const char *h, size_t len)
{
    char buf[64];
    unsigned char addr[16];
    if (len == 0 || len >= sizeof buf)
        return 0;
    memcpy(buf, h, len);
    buf[len] = '\0';
    return inet_pton(AF_INET6, buf, addr) == 1 || inet_pton(AF_INET, buf, addr) == 1;
}

int mastercf_split_listen(const char *service_name, const char *inet_interfaces_fallback,
                          char **host, char **port)
{
    *host = *port = NULL;
    const char *name = service_name;
    const char *h = NULL, *p;
    size_t hlen = 0;
    if (!name || !*name)
        return -1;
    if (name[0] == '[') {
        const char *close = strchr(name, ']');
        if (!close || close[1] != ':')
            return -1;
        h = name + 1;
        hlen = (size_t)(close - h);
        if (!ip_literal_valid(h, hlen))
            return -1;
        p = close + 2;
    } else {
        const char *colon = strrchr(name, ':');
        if (colon) {
            if (strchr(name, ':') != colon) /* IPv6 needs brackets */
                return -1;
            h = name;
            hlen = (size_t)(colon - name);
            if (!hostname_valid(h, hlen))
                return -1;
            p = colon + 1;
        } else {
            p = name;
        }
    }
    if (!port_valid(p))
        return -1;
    if (h) {
        *host = xstrndup(h, hlen);
    } else {
        const char *fb = inet_interfaces_fallback;
        if (fb && *fb && strcasecmp(fb, "all") != 0)
            *host = xstrdup(fb);
    }
    *port = xstrdup(p);
    return 0;
}

/* ---- services ---- */

static void service_free(struct mastercf_service *s)
{
    free(s->name);
    free(s->type);
    free(s->private_);
    free(s->unpriv);
    free(s->chroot);
    free(s->wakeup);
    free(s->maxproc);
    free(s->command);
    for (size_t i = 0; i < s->nargs; i++)
        free(s->args[i]);
    free(s->args);
    for (size_t i = 0; i < s->noverrides; i++) {
        free(s->overrides[i].name);
        free(s->overrides[i].value);
    }
    free(s->overrides);
    free(s->file);
    memset(s, 0, sizeof *s);
}

void mastercf_free(struct mastercf *m)
{
    for (size_t i = 0; i < m->n; i++)
        service_free(&m->svc[i]);
    free(m->svc);
    memset(m, 0, sizeof *m);
}

struct token {
    char *text;
    int braced; /* was "{ text }": may hold spaces, never an option */
};

struct tokens {
    struct token *v;
    size_t n, cap;
};

static void tokens_free(struct tokens *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i].text);
    free(t->v);
}

static void tokens_add(struct tokens *t, const char *s, size_t len, int braced)
{
    t->v = xgrow(t->v, &t->cap, t->n + 1, sizeof *t->v);
    t->v[t->n].text = xstrndup(s, len);
    t->v[t->n].braced = braced;
    t->n++;
}

/* Splits a logical line into fields; after the command, "{ text }" is one
 * argument (Postfix 3). Returns -1 with why set on unbalanced braces. */
static int tokenize(const char *line, struct tokens *t, const char **why)
{
    const char *p = line;
    for (;;) {
        while (str_is_space((unsigned char)*p))
            p++;
        if (!*p)
            return 0;
        if (*p == '{' && t->n >= FIELDS) {
            int level = 1;
            const char *q = p + 1;
            for (; *q && level; q++) {
                if (*q == '{')
                    level++;
                else if (*q == '}')
                    level--;
            }
            if (level) {
                *why = "missing '}' in a { ... } argument";
                return -1;
            }
            if (*q && !str_is_space((unsigned char)*q)) {
                *why = "text right after '}' in a { ... } argument";
                return -1;
            }
            const char *b = p + 1, *e = q - 1; /* inside the braces */
            while (b < e && str_is_space((unsigned char)*b))
                b++;
            while (e > b && str_is_space((unsigned char)e[-1]))
                e--;
            tokens_add(t, b, (size_t)(e - b), 1);
            p = q;
            continue;
        }
        const char *start = p;
        while (*p && !str_is_space((unsigned char)*p))
            p++;
        tokens_add(t, start, (size_t)(p - start), 0);
    }
}

static int yes_no_dash(const char *s)
{
    return strcmp(s, "y") == 0 || strcmp(s, "n") == 0 || strcmp(s, "-") == 0;
}

static int count_or_dash(const char *s, int question_ok)
{
    if (strcmp(s, "-") == 0)
        return 1;
    size_t n = 0;
    while (str_is_digit((unsigned char)s[n]))
        n++;
    if (n == 0 || n > 9) /* fits an int */
        return 0;
    if (question_ok && s[n] == '?')
        n++;
    return s[n] == '\0';
}

static int type_valid(const char *type)
{
    static const char *const types[] = {"inet", "unix", "unix-dgram", "fifo", "pass"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(type, types[i]) == 0)
            return 1;
    return 0;
}

static int add_override(struct mastercf_service *s, size_t *cap, const char *spec, int braced,
                        const char *origin, int lineno, struct strbuf *diag)
{
    struct strbuf q = STRBUF_INIT;
    const char *eq = strchr(spec, '=');
    int rc = -1;
    if (!eq) {
        diag_error(diag, origin, lineno,
                   "-o %s: expected name=value (write -o { name = value } for spaces)",
                   quoted(&q, spec));
        goto out;
    }
    size_t nlen = (size_t)(eq - spec);
    const char *value = eq + 1;
    if (braced) {
        while (nlen && str_is_space((unsigned char)spec[nlen - 1]))
            nlen--;
        while (str_is_space((unsigned char)*value))
            value++;
    }
    char *name = xstrndup(spec, nlen);
    if (!conf_name_valid(name)) {
        diag_error(diag, origin, lineno, "-o: invalid parameter name \"%s\"", quoted(&q, name));
        free(name);
        goto out;
    }
    s->overrides = xgrow(s->overrides, cap, s->noverrides + 1, sizeof *s->overrides);
    s->overrides[s->noverrides].name = name;
    s->overrides[s->noverrides].value = xstrdup(value);
    s->noverrides++;
    rc = 0;
out:
    strbuf_free(&q);
    return rc;
}

/* Checks the fixed fields; one diagnostic for the first problem. */
static int check_fields(const struct mastercf *m, char **f, const char *origin, int lineno,
                        struct strbuf *diag)
{
    static const char *const field_names[] = {"private", "unpriv", "chroot"};
    struct strbuf q = STRBUF_INIT;
    int rc = -1;
    if (!type_valid(f[1])) {
        diag_error(diag, origin, lineno,
                   "unknown service type \"%s\" (expected inet, unix, unix-dgram, fifo or pass)",
                   quoted(&q, f[1]));
        goto out;
    }
    if (strcmp(f[1], "inet") == 0) {
        char *host, *port;
        if (mastercf_split_listen(f[0], NULL, &host, &port) != 0) {
            diag_error(diag, origin, lineno,
                       "bad inet service \"%s\" (expected port, host:port or [ipv6]:port)",
                       quoted(&q, f[0]));
            goto out;
        }
        free(host);
        free(port);
    } else if (strchr(f[0], '/') || strcmp(f[0], "..") == 0 || strcmp(f[0], ".") == 0) {
        /* these name a socket under the queue directory */
        diag_error(diag, origin, lineno, "bad %s service name \"%s\"", f[1], quoted(&q, f[0]));
        goto out;
    }
    for (int i = 0; i < 3; i++) {
        if (!yes_no_dash(f[2 + i])) {
            diag_error(diag, origin, lineno, "%s field must be y, n or -, not \"%s\"",
                       field_names[i], quoted(&q, f[2 + i]));
            goto out;
        }
    }
    if (!count_or_dash(f[5], 1)) {
        diag_error(diag, origin, lineno, "wakeup field must be -, N or N?, not \"%s\"",
                   quoted(&q, f[5]));
        goto out;
    }
    if (!count_or_dash(f[6], 0)) {
        diag_error(diag, origin, lineno, "maxproc field must be - or a number, not \"%s\"",
                   quoted(&q, f[6]));
        goto out;
    }
    for (size_t i = 0; i < m->n; i++) {
        const struct mastercf_service *o = &m->svc[i];
        if (strcmp(o->name, f[0]) == 0 && strcmp(o->type, f[1]) == 0) {
            diag_error(diag, origin, lineno, "duplicate service %s/%s (first at %s:%d)",
                       quoted(&q, f[0]), f[1], o->file ? o->file : "-", o->line);
            goto out;
        }
    }
    rc = 0;
out:
    strbuf_free(&q);
    return rc;
}

static int parse_service(struct mastercf *m, const char *line, const char *origin, int lineno,
                         struct strbuf *diag)
{
    struct tokens t = {NULL, 0, 0};
    struct mastercf_service s;
    memset(&s, 0, sizeof s);
    const char *why = NULL;
    int rc = -1;
    if (tokenize(line, &t, &why) != 0) {
        diag_error(diag, origin, lineno, "%s", why);
        goto out;
    }
    if (t.n < FIELDS) {
        diag_error(diag, origin, lineno,
                   "expected at least 8 fields (service type private unpriv chroot wakeup "
                   "maxproc command), found %zu",
                   t.n);
        goto out;
    }
    char *f[FIELDS];
    for (int i = 0; i < FIELDS; i++)
        f[i] = t.v[i].text;
    if (check_fields(m, f, origin, lineno, diag) != 0)
        goto out;

    size_t args_cap = 0, over_cap = 0;
    for (size_t i = FIELDS; i < t.n; i++) {
        const struct token *tok = &t.v[i];
        if (!tok->braced && strcmp(tok->text, "-o") == 0) {
            if (i + 1 >= t.n) {
                diag_error(diag, origin, lineno, "-o at end of line: expected name=value");
                goto out;
            }
            i++;
            if (add_override(&s, &over_cap, t.v[i].text, t.v[i].braced, origin, lineno, diag))
                goto out;
        } else if (!tok->braced && strncmp(tok->text, "-o", 2) == 0) {
            if (add_override(&s, &over_cap, tok->text + 2, 0, origin, lineno, diag))
                goto out;
        } else {
            s.args = xgrow(s.args, &args_cap, s.nargs + 1, sizeof *s.args);
            s.args[s.nargs++] = xstrdup(tok->text);
        }
    }
    s.name = xstrdup(f[0]);
    s.type = xstrdup(f[1]);
    s.private_ = xstrdup(f[2]);
    s.unpriv = xstrdup(f[3]);
    s.chroot = xstrdup(f[4]);
    s.wakeup = xstrdup(f[5]);
    s.maxproc = xstrdup(f[6]);
    s.command = xstrdup(f[7]);
    s.file = origin ? xstrdup(origin) : NULL;
    s.line = lineno;
    m->svc = xgrow(m->svc, &m->cap, m->n + 1, sizeof *m->svc);
    m->svc[m->n++] = s;
    memset(&s, 0, sizeof s);
    rc = 0;
out:
    service_free(&s);
    tokens_free(&t);
    return rc;
}

int mastercf_load_mem(struct mastercf *m, const char *data, size_t len, const char *origin,
                      struct strbuf *diag)
{
    struct conf_lines r;
    struct strbuf line = STRBUF_INIT;
    int errors = 0, lineno = 0;
    conf_lines_init(&r, data, len);
    for (;;) {
        enum conf_line_kind kind = conf_lines_next(&r, &line, &lineno);
        int bad;
        if (kind == CONF_LINE_END)
            break;
        if (kind == CONF_LINE_ORPHAN) {
            diag_error(diag, origin, lineno,
                       "line starts with whitespace but continues no service");
            bad = 1;
        } else if (kind == CONF_LINE_NUL) {
            diag_error(diag, origin, lineno, "NUL byte in line");
            bad = 1;
        } else {
            bad = parse_service(m, strbuf_str(&line), origin, lineno, diag) != 0;
        }
        if (bad && errors < 0x7fffffff)
            errors++;
    }
    strbuf_free(&line);
    return errors;
}

int mastercf_load_string(struct mastercf *m, const char *text, const char *origin,
                         struct strbuf *diag)
{
    return mastercf_load_mem(m, text, strlen(text), origin, diag);
}

int mastercf_load_file(struct mastercf *m, const char *path, struct strbuf *diag)
{
    struct strbuf data = STRBUF_INIT;
    if (conf_read_file(path, &data) != 0) {
        int e = errno;
        strbuf_free(&data);
        errno = e;
        return -1;
    }
    int rc = mastercf_load_mem(m, strbuf_str(&data), data.len, path, diag);
    strbuf_free(&data);
    return rc;
}
