/* conf_internal: what the files of the conf module share. Private to
 * src/conf (conf.c, conf_lines.c, conf_value.c, conf_report.c); nothing
 * else includes it: conf.h is the public API.
 *
 *   conf.c        the struct conf: settings, loading, $name expansion,
 *                 typed getters;
 *   conf_lines.c  configuration text: files, logical lines, quoting;
 *   conf_value.c  what a value means: typed parsing, validation, lists;
 *   conf_report.c conf_check, `postconf -n`, `postconf`, tern.conf(5). */
#ifndef TERN_CONF_CONF_INTERNAL_H
#define TERN_CONF_CONF_INTERNAL_H

#include <stddef.h>

#include "conf/conf.h"
#include "conf/conf_params.h"
#include "util/strbuf.h"

/* How much of an offending value a diagnostic quotes. */
#define CONF_QUOTE_MAX 80

/* ---- conf_value.c: no struct conf, only text ---- */

/* Each returns 0 with *out set, or -1 if v is not one (surrounding blanks
 * allowed). A time is a number with an optional unit s, m, h, d or w;
 * default_unit (0 = 's') applies to a bare number; *out is in seconds. */
int conf_parse_int(const char *v, long long *out);
int conf_parse_time(const char *v, char default_unit, long long *out);
int conf_parse_bool(const char *v, int *out);
/* Checks an expanded value against p's type, range and choices: 0, or -1
 * with why saying what is wrong. */
int conf_validate(const struct conf_param *p, const char *v, struct strbuf *why);

/* ---- conf.c, for conf_report.c ---- */

/* One setting made by a file or conf_set, seen from outside conf.c. */
struct conf_setting {
    const char *name;
    const char *value;         /* raw, as written */
    const char *origin;        /* NULL if unknown */
    int line;
    const struct conf_param *p; /* NULL: not in the table */
};
/* Every setting of c, in no particular order; *out (free() it) points into
 * c and is valid until c changes. Returns how many. */
size_t conf_settings(const struct conf *c, struct conf_setting **out);
/* Expands raw (or p's default when raw is NULL) and validates it. On failure
 * why says what is wrong; out holds what could be expanded. undefined, if
 * not NULL, collects names referred to but never defined, "\n"-framed. */
int conf_evaluate(struct conf *c, const struct conf_param *p, const char *raw, struct strbuf *out,
                  struct strbuf *why, struct strbuf *undefined);
/* "FILE:LINE: " (or "FILE: ", or nothing) for a diagnostic. */
void conf_put_where(struct strbuf *sb, const char *origin, int line);

#endif
