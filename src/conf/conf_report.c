/* conf_report: what `tern config` shows of a configuration: conf_check's
 * problems, `postconf -n` and `postconf` listings, and tern.conf(5) made from
 * the parameter table (declared in conf.h). */
#include "conf/conf_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct conf_setting *)a)->name, ((const struct conf_setting *)b)->name);
}

static int by_origin(const void *a, const void *b)
{
    const struct conf_setting *x = a, *y = b;
    const char *ox = x->origin ? x->origin : "", *oy = y->origin ? y->origin : "";
    int cmp = strcmp(ox, oy);
    if (cmp)
        return cmp;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return strcmp(x->name, y->name);
}

int conf_check(struct conf *c, struct strbuf *out)
{
    struct conf_setting *v;
    size_t n = conf_settings(c, &v);
    qsort(v, n, sizeof *v, by_origin);
    int errors = 0;
    struct strbuf val = STRBUF_INIT, why = STRBUF_INIT, undef = STRBUF_INIT;
    for (size_t i = 0; i < n; i++) {
        const struct conf_setting *e = &v[i];
        if (!e->p) {
            const struct conf_ignored *ig = conf_ignored_find(e->name);
            conf_put_where(out, e->origin, e->line);
            if (ig)
                strbuf_printf(out, "warning: %s has no effect in tern: %s\n", e->name, ig->why);
            else
                strbuf_printf(out, "warning: unknown parameter %s\n", e->name);
            continue;
        }
        strbuf_reset(&val);
        strbuf_reset(&why);
        strbuf_reset(&undef);
        int rc = conf_evaluate(c, e->p, e->value, &val, &why, &undef);
        /* undef is "\nname\nname\n..." */
        for (const char *u = strbuf_str(&undef); *u;) {
            const char *nl = strchr(u, '\n');
            size_t ulen = nl ? (size_t)(nl - u) : strlen(u);
            if (ulen) {
                conf_put_where(out, e->origin, e->line);
                strbuf_printf(out, "warning: %s: reference to undefined parameter $%.*s\n", e->name,
                          (int)ulen, u);
            }
            u += ulen + (nl ? 1 : 0);
        }
        if (rc) {
            conf_put_where(out, e->origin, e->line);
            strbuf_printf(out, "error: %s: %s\n", e->name, strbuf_str(&why));
            if (errors < INT_MAX)
                errors++;
        }
    }
    free(v);
    /* Defaults built from other parameters can break through a bad setting;
     * report them so that every value a getter would fall back on is known.
     * A default that is one $reference cannot: it takes the other row's
     * value as its getter returns it, which is valid. */
    for (size_t i = 0; i < conf_params_count; i++) {
        if (conf_is_set(c, conf_params[i].name) || conf_param_default_ref(&conf_params[i]))
            continue;
        strbuf_reset(&val);
        strbuf_reset(&why);
        if (conf_evaluate(c, &conf_params[i], NULL, &val, &why, NULL) != 0) {
            strbuf_printf(out, "error: %s: default value \"", conf_params[i].name);
            conf_put_quoted(out, conf_params[i].def, strlen(conf_params[i].def), CONF_QUOTE_MAX);
            strbuf_printf(out, "\": %s\n", strbuf_str(&why));
            if (errors < INT_MAX)
                errors++;
        }
    }
    strbuf_free(&val);
    strbuf_free(&why);
    strbuf_free(&undef);
    return errors;
}

static void print_setting(FILE *out, const char *name, const char *value)
{
    fprintf(out, "%s =%s%s\n", name, *value ? " " : "", value);
}

void conf_print_nondefault(const struct conf *c, FILE *out)
{
    struct conf_setting *v;
    size_t n = conf_settings(c, &v);
    qsort(v, n, sizeof *v, by_name);
    for (size_t i = 0; i < n; i++)
        print_setting(out, v[i].name, v[i].value);
    free(v);
}

void conf_print_all(const struct conf *c, FILE *out)
{
    for (size_t i = 0; i < conf_params_count; i++)
        print_setting(out, conf_params[i].name, conf_raw(c, conf_params[i].name));
}

/* Writes text for roff: escapes backslashes and hyphens, and keeps a '.' or
 * '\'' at the start of a line from being read as a request. */
static void roff_puts(FILE *out, const char *s)
{
    int line_start = 1;
    for (; *s; s++) {
        if (line_start && (*s == '.' || *s == '\''))
            fputs("\\&", out);
        if (*s == '\\')
            fputs("\\e", out);
        else if (*s == '-')
            fputs("\\-", out);
        else
            fputc(*s, out);
        line_start = *s == '\n';
    }
}

static const char *unit_name(char unit)
{
    switch (unit) {
    case 'm':
        return "minutes";
    case 'h':
        return "hours";
    case 'd':
        return "days";
    case 'w':
        return "weeks";
    }
    return "seconds";
}

static void man_param(FILE *out, const struct conf_param *p)
{
    fputs(".TP\n.B ", out);
    roff_puts(out, p->name);
    fputs("\n(", out);
    switch (p->type) {
    case CONF_BOOL:
        fputs("yes or no", out);
        break;
    case CONF_INT:
        fprintf(out, "integer, %lld to %lld", p->min, p->max);
        break;
    case CONF_TIME:
        fprintf(out, "time: a number with unit s, m, h, d or w; a bare number is in %s; "
                     "%lld to %lld seconds",
                unit_name(p->unit), p->min, p->max);
        break;
    case CONF_STR:
        fputs(p->choices ? "one of " : "string", out);
        break;
    case CONF_LIST:
        fputs(p->choices ? "list of " : "list", out);
        break;
    }
    if (p->choices) {
        for (const char *ch = p->choices; *ch; ch++)
            if (*ch == '|')
                fputs(", ", out);
            else
                fputc(*ch, out);
    }
    fputs("; default: ", out);
    if (p->flags & (CONF_F_HOSTNAME | CONF_F_DOMAIN)) {
        fputs("computed", out);
    } else if (*p->def) {
        fputs("\\fB", out);
        roff_puts(out, p->def);
        fputs("\\fR", out);
    } else {
        fputs("empty", out);
    }
    fputs(")\n.br\n", out);
    roff_puts(out, p->doc);
    fputc('\n', out);
}

void conf_print_man(FILE *out)
{
    fputs(".\\\" Generated by `tern config man` from the parameter table; do not edit.\n"
          ".TH TERN.CONF 5 \"\" \"Tern\" \"File Formats Manual\"\n"
          ".SH NAME\n"
          "tern.conf \\- Tern configuration parameters (main.cf)\n"
          ".SH SYNOPSIS\n"
          ".I config_directory\\fB/main.cf\\fR\n"
          ".SH DESCRIPTION\n"
          "Tern reads its parameters from main.cf in Postfix syntax, using Postfix\n"
          "parameter names wherever the concept is the same.\n"
          ".PP\n"
          "Each setting is \\fIname\\fR \\fB=\\fR \\fIvalue\\fR.\n"
          "A line that starts with whitespace continues the previous line.\n"
          "Lines whose first non\\-blank character is \\fB#\\fR are comments;\n"
          "a \\fB#\\fR later in a line is part of the value.\n"
          "When a name is set twice, the later setting wins.\n"
          ".PP\n"
          "Values may refer to other parameters: \\fB$\\fR\\fIname\\fR,\n"
          "\\fB${\\fR\\fIname\\fR\\fB}\\fR and \\fB$(\\fR\\fIname\\fR\\fB)\\fR\n"
          "expand to its value;\n"
          "\\fB${\\fR\\fIname\\fR\\fB?\\fR\\fItext\\fR\\fB}\\fR expands to \\fItext\\fR\n"
          "when the value is not empty,\n"
          "\\fB${\\fR\\fIname\\fR\\fB:\\fR\\fItext\\fR\\fB}\\fR when it is empty;\n"
          "\\fB$$\\fR is a literal dollar sign.\n"
          "A default written as \\fB$\\fR\\fIname\\fR is the value of that parameter.\n"
          ".PP\n"
          "Times are a number with a unit: \\fBs\\fR (seconds), \\fBm\\fR (minutes),\n"
          "\\fBh\\fR (hours), \\fBd\\fR (days) or \\fBw\\fR (weeks).\n"
          "Lists are separated by commas or whitespace.\n"
          "Sizes are in bytes.\n"
          ".PP\n"
          "\\fBtern config check\\fR reports unknown parameters and invalid values\n"
          "with their file and line.\n"
          ".SH PARAMETERS\n",
          out);
    for (size_t i = 0; i < conf_params_count; i++)
        man_param(out, &conf_params[i]);
    fputs(".SH POSTFIX PARAMETERS WITHOUT EFFECT\n"
          "Tern does not implement these Postfix parameters.\n"
          "A main.cf that sets them still loads, and \\fBtern config check\\fR\n"
          "warns that they have no effect and why; \\fBtern config \\-a\\fR does not\n"
          "list them, and no code reads them.\n",
          out);
    for (size_t i = 0; i < conf_ignored_count; i++) {
        fputs(".TP\n.B ", out);
        roff_puts(out, conf_ignored[i].name);
        fputc('\n', out);
        roff_puts(out, conf_ignored[i].why);
        fputc('\n', out);
    }
    fputs(".SH SEE ALSO\n"
          "tern(8), postconf(5)\n",
          out);
}
