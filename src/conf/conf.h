/* conf: main.cf reading, $name expansion and typed lookup.
 *
 * A struct conf holds every parameter of conf_params.h at its default plus
 * what main.cf (or conf_set, e.g. for master.cf -o overrides) set, with the
 * file and line of each setting. The master parses the configuration once
 * and hands children what they need; per-listener overrides go on a
 * conf_clone. A struct conf is not thread-safe (getters fill a cache).
 *
 * Syntax is Postfix's: "name = value"; a line starting with whitespace
 * continues the previous one; lines whose first non-blank is '#' are
 * comments; a later setting wins. Values are expanded when read: $name,
 * ${name}, $(name), ${name?text} (text if $name is non-empty),
 * ${name:text} (text if empty), $$ for a literal $.
 *
 * Errors: loading reports syntax errors to a diag strbuf as
 * "FILE:LINE: error: ..." and skips the line; conf_check reports unknown
 * names (warnings) and values that do not parse for their type (errors).
 * The typed getters never fail: a bad value falls back to the default with a
 * single log_warn. Asking a getter for a name not in the table, or of the
 * wrong type, is a programming error (log_panic);
 * tests/unit/test_conf_callsites.c finds both in src/ before they run.
 *
 * The module's files: conf.c (the struct conf, loading, expansion, getters),
 * conf_lines.c (file and logical-line reading, shared with mastercf),
 * conf_value.c (typed values, lists), conf_report.c (conf_check and the
 * printers); conf_internal.h is what they share. */
#ifndef TERN_CONF_CONF_H
#define TERN_CONF_CONF_H

#include <stddef.h>
#include <stdio.h>

#include "conf/conf_params.h"
#include "util/strbuf.h"

struct conf;

/* Every parameter at its default. */
struct conf *conf_new(void);
struct conf *conf_clone(const struct conf *c);
void conf_free(struct conf *c);

/* Both return the number of syntax errors (0 = all lines taken), each
 * reported to diag (may be NULL). conf_load_file returns -1 with errno set
 * when the file cannot be read; nothing is changed then. */
int conf_load_file(struct conf *c, const char *path, struct strbuf *diag);
int conf_load_string(struct conf *c, const char *text, const char *origin, struct strbuf *diag);
/* Same for bytes that may hold anything, NULs included (fuzzing, files). */
int conf_load_mem(struct conf *c, const char *data, size_t len, const char *origin,
                  struct strbuf *diag);

/* Sets name (any name: unknown ones are kept, expandable, and reported by
 * conf_check). value NULL reverts to the default. origin/line say where the
 * setting came from (origin may be NULL). Invalidates strings returned by
 * conf_str. name must satisfy conf_name_valid (log_panic otherwise). */
void conf_set(struct conf *c, const char *name, const char *value, const char *origin, int line);
/* Parameter names are [A-Za-z0-9_]+. */
int conf_name_valid(const char *name);

/* Unexpanded value (the setting, else the default, computed defaults
 * filled in); NULL for a name neither in the table nor set. */
const char *conf_raw(const struct conf *c, const char *name);
/* Whether a file or conf_set gave the name a value. */
int conf_is_set(const struct conf *c, const char *name);
/* Where the setting came from; NULL origin when not set or set without one. */
const char *conf_origin(const struct conf *c, const char *name, int *line);

/* Typed getters of expanded values. conf_str accepts every type (the
 * expanded text) and returns a string owned by c, valid until the next
 * conf_set or load. */
const char *conf_str(struct conf *c, const char *name);
long long conf_int(struct conf *c, const char *name);
int conf_bool(struct conf *c, const char *name);
long long conf_time(struct conf *c, const char *name); /* seconds */

struct conf_list {
    char **items;
    size_t n;
};
/* Items of a CONF_LIST, split on commas and whitespace outside {...};
 * empty items dropped. Free with conf_list_free. */
struct conf_list conf_list(struct conf *c, const char *name);
void conf_list_free(struct conf_list *l);
/* The same splitting, for any text (e.g. a value from a lookup table). */
struct conf_list conf_list_split(const char *text);

/* Validates every parameter. Writes one line per problem to out:
 * "FILE:LINE: warning: unknown parameter NAME",
 * "FILE:LINE: warning: NAME: reference to undefined parameter $OTHER",
 * "FILE:LINE: error: NAME: ..." for values that do not expand or parse.
 * Returns the number of errors. */
int conf_check(struct conf *c, struct strbuf *out);

/* `postconf -n`: "name = rawvalue" for every setting, sorted by name. */
void conf_print_nondefault(const struct conf *c, FILE *out);
/* `postconf`: every known parameter, "name = rawvalue" (unexpanded, as
 * postconf prints), computed defaults filled in, sorted by name. */
void conf_print_all(const struct conf *c, FILE *out);
/* tern.conf(5) in man(7) roff, generated from the table. */
void conf_print_man(FILE *out);

/* Reads a whole configuration file into data (appending). Returns 0, or -1
 * with errno set (EFBIG beyond 64 MiB). Shared with mastercf. */
int conf_read_file(const char *path, struct strbuf *data);

/* Reads main.cf/master.cf text as logical lines: continuation lines joined
 * with one space, comment and blank lines skipped, ends trimmed.
 * Shared with mastercf. */
struct conf_lines {
    const char *data;
    size_t len, pos;
    int lineno; /* physical lines consumed */
};
enum conf_line_kind {
    CONF_LINE_END,    /* no more input */
    CONF_LINE_OK,     /* a logical line */
    CONF_LINE_ORPHAN, /* a continuation line with no line to continue */
    CONF_LINE_NUL,    /* a logical line holding a NUL byte (left in line) */
};
void conf_lines_init(struct conf_lines *r, const char *data, size_t len);
/* Fills line and *lineno (its first physical line, 1-based). */
enum conf_line_kind conf_lines_next(struct conf_lines *r, struct strbuf *line, int *lineno);
/* Appends s to sb for a diagnostic: non-printable bytes as \xHH, cut to
 * max bytes with "..." so binary input cannot flood a report. */
void conf_put_quoted(struct strbuf *sb, const char *s, size_t len, size_t max);

#ifdef TERN_TEST_BUILD
/* Replaces the system host name behind the myhostname default. */
void conf_test_set_hostname(struct conf *c, const char *hostname);
#endif

#endif
