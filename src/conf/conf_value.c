/* conf_value: what a parameter value means: integers, times, booleans,
 * choices and lists, and whether an expanded value suits its table entry
 * (see conf_internal.h; conf_list_split is declared in conf.h). Text only:
 * nothing here knows a struct conf. */
#include "conf/conf_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/mem.h"
#include "util/str.h"

static const char *skip_blanks(const char *s)
{
    while (str_is_space((unsigned char)*s))
        s++;
    return s;
}

static int only_blanks(const char *s)
{
    return *skip_blanks(s) == '\0';
}

int conf_parse_int(const char *v, long long *out)
{
    const char *p = skip_blanks(v);
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (*p < '0' || *p > '9')
        return -1;
    long long n = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        int d = *p - '0';
        if (n > (LLONG_MAX - d) / 10)
            return -1;
        n = n * 10 + d;
    }
    if (!only_blanks(p))
        return -1;
    *out = neg ? -n : n;
    return 0;
}

static long long time_unit_seconds(char unit)
{
    switch (unit) {
    case 's':
        return 1;
    case 'm':
        return 60;
    case 'h':
        return 3600;
    case 'd':
        return 86400;
    case 'w':
        return 604800;
    }
    return 0;
}

int conf_parse_time(const char *v, char default_unit, long long *out)
{
    const char *p = skip_blanks(v);
    if (*p < '0' || *p > '9')
        return -1;
    long long n = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        int d = *p - '0';
        if (n > (LLONG_MAX - d) / 10)
            return -1;
        n = n * 10 + d;
    }
    char unit = default_unit ? default_unit : 's';
    if (*p && !str_is_space((unsigned char)*p))
        unit = *p++;
    long long mult = time_unit_seconds(unit);
    if (!mult || !only_blanks(p) || n > LLONG_MAX / mult)
        return -1;
    *out = n * mult;
    return 0;
}

int conf_parse_bool(const char *v, int *out)
{
    static const char *const truths[] = {"yes", "true", "1"};
    static const char *const falsities[] = {"no", "false", "0"};
    const char *p = skip_blanks(v);
    size_t len = strlen(p);
    while (len && str_is_space((unsigned char)p[len - 1]))
        len--;
    for (size_t i = 0; i < 3; i++) {
        if (strlen(truths[i]) == len && strncasecmp(p, truths[i], len) == 0) {
            *out = 1;
            return 0;
        }
        if (strlen(falsities[i]) == len && strncasecmp(p, falsities[i], len) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

static int choice_ok(const char *choices, const char *v, size_t len)
{
    const char *p = choices;
    for (;;) {
        const char *bar = strchr(p, '|');
        size_t clen = bar ? (size_t)(bar - p) : strlen(p);
        if (clen == len && strncmp(p, v, len) == 0)
            return 1;
        if (!bar)
            return 0;
        p = bar + 1;
    }
}

static void why_value(struct strbuf *why, const char *what, const char *v)
{
    strbuf_printf(why, "invalid %s \"", what);
    conf_put_quoted(why, v, strlen(v), CONF_QUOTE_MAX);
    strbuf_putc(why, '"');
}

int conf_validate(const struct conf_param *p, const char *v, struct strbuf *why)
{
    long long n = 0;
    int b;
    switch (p->type) {
    case CONF_STR: {
        if (!p->choices)
            return 0;
        const char *s = skip_blanks(v);
        size_t len = strlen(s);
        while (len && str_is_space((unsigned char)s[len - 1]))
            len--;
        /* a row whose default is empty may be set empty: "not used" */
        if (choice_ok(p->choices, s, len) || (len == 0 && !*p->def))
            return 0;
        why_value(why, "value", v);
        strbuf_printf(why, " (expected %s)", p->choices);
        return -1;
    }
    case CONF_LIST: {
        if (!p->choices)
            return 0;
        struct conf_list l = conf_list_split(v);
        int rc = 0;
        for (size_t i = 0; i < l.n && rc == 0; i++) {
            if (!choice_ok(p->choices, l.items[i], strlen(l.items[i]))) {
                why_value(why, "item", l.items[i]);
                strbuf_printf(why, " (expected %s)", p->choices);
                rc = -1;
            }
        }
        conf_list_free(&l);
        return rc;
    }
    case CONF_BOOL:
        if (conf_parse_bool(v, &b) == 0)
            return 0;
        why_value(why, "boolean", v);
        strbuf_puts(why, " (expected yes or no)");
        return -1;
    case CONF_INT:
        if (conf_parse_int(v, &n) != 0) {
            why_value(why, "integer", v);
            return -1;
        }
        break;
    case CONF_TIME:
        if (conf_parse_time(v, p->unit, &n) != 0) {
            why_value(why, "time", v);
            strbuf_puts(why, " (expected a number with an optional unit s, m, h, d or w)");
            return -1;
        }
        break;
    }
    if (n < p->min || n > p->max) {
        strbuf_printf(why, "value \"");
        conf_put_quoted(why, v, strlen(v), CONF_QUOTE_MAX);
        strbuf_printf(why, "\" out of range (%lld..%lld%s)", p->min, p->max,
                  p->type == CONF_TIME ? " seconds" : "");
        return -1;
    }
    return 0;
}

struct conf_list conf_list_split(const char *text)
{
    struct conf_list l = {NULL, 0};
    size_t cap = 0;
    const char *p = text;
    for (;;) {
        while (*p && (*p == ',' || str_is_space((unsigned char)*p)))
            p++;
        if (!*p)
            break;
        const char *start = p;
        int braces = 0;
        for (; *p; p++) {
            if (*p == '{')
                braces++;
            else if (*p == '}' && braces > 0)
                braces--;
            else if (braces == 0 && (*p == ',' || str_is_space((unsigned char)*p)))
                break;
        }
        l.items = xgrow(l.items, &cap, l.n + 1, sizeof *l.items);
        l.items[l.n++] = xstrndup(start, (size_t)(p - start));
    }
    return l;
}

void conf_list_free(struct conf_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}
