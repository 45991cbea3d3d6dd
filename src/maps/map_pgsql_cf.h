/* map_pgsql_cf: the configuration file of a pgsql: table and the text work
 * around a query, with no database involved (so it is unit-tested alone):
 * reading Postfix's pgsql_table(5) file, deciding whether a key is queried
 * at all, expanding the query template with escaped key parts, and turning
 * the values a query returned into the lookup's answer. The engine that
 * talks to PostgreSQL is map_pgsql.c.
 *
 * File: "name = value" lines with main.cf's rules (comments, blank lines,
 * a line starting with whitespace continues the previous one; no $name
 * expansion). Settings (Postfix's):
 *   hosts            hosts tried in order (commas or blanks between):
 *                    host, host:port, [v6addr]:port, inet:host[:port],
 *                    unix:/directory (of the server's socket, as libpq's
 *                    host), or a postgresql:// URI (then user, password and
 *                    dbname do not apply to it). Default: localhost.
 *   user, password, dbname, encoding (default UTF8)
 *   query            the SQL, with %s the key, %u its local part (the whole
 *                    key when it has no '@'), %d its domain, %1..%9 the
 *                    domain's labels from the right (%1 = "com"), %% a '%';
 *                    %S %U %D are the same as %s %u %d here. Every part is
 *                    escaped as a string literal's content (put quotes
 *                    around it in the template). A key that lacks a part the
 *                    template uses is not queried (not found): no domain for
 *                    %d/%D/%1-9, fewer labels than the highest %n, an empty
 *                    local part ("@domain") for %u/%U.
 *                    Without query, the old select_function, or
 *                    select_field + table + where_field [+
 *                    additional_conditions], build one.
 *   result_format    applied to every non-NULL, non-empty field of every
 *                    row (default %s): %s the value, %u/%d its local part
 *                    and domain (a value without them is skipped), %S %U %D
 *                    %1-%9 the key's parts as in query (not escaped), %%.
 *                    The results are joined with "," (as Postfix does).
 *   domain           domains (commas or blanks between; ".example.com" also
 *                    matches subdomains) or type:name tables: when set, only
 *                    keys user@domain with a non-empty user and a listed
 *                    domain are queried.
 *   expansion_limit  more results than this: a temporary error (0 = none).
 *   retry_interval   seconds a table stays down (lookups fail at once, as
 *                    temporary errors) after every host failed. Postfix's
 *                    default is 60; tern's is 1, so a restarted database is
 *                    used again at once.
 *   idle_interval    seconds after which an unused connection is closed
 *                    (default 60).
 * and two of tern's own: connect_timeout (seconds per host, default 5) and
 * query_timeout (seconds from the lookup to its answer, default 10).
 * Unknown settings are logged with file:line and ignored. Keys are folded to
 * lower case before anything else, as Postfix does. */
#ifndef TERN_MAPS_MAP_PGSQL_CF_H
#define TERN_MAPS_MAP_PGSQL_CF_H

#include <stddef.h>

#include "util/strbuf.h"

struct map;

struct pgsql_host {
    char *host; /* libpq's "host" (a name, an address or a socket directory); the URI when uri */
    char *port; /* NULL: libpq's default */
    int uri;    /* host is a postgresql:// connection URI */
};

struct pgsql_cf {
    char *path;
    struct pgsql_host *hosts;
    size_t host_count;
    char *user, *password, *dbname, *encoding; /* NULL when not set (encoding: "UTF8") */
    char *query;
    char *result_format;
    char **domains; /* lower case; "type:name" entries are opened as tables */
    struct map **domain_maps;
    size_t domain_count;
    unsigned expansion_limit;
    unsigned retry_interval, idle_interval, connect_timeout, query_timeout;
    /* What the templates use, found when parsing. */
    int key_needs_user, key_needs_domain, key_labels;
    int value_needs_user, value_needs_domain;
};

/* Parses the file at path: NULL and a malloc'd "path:line: why" (or
 * "path: why") in *err when it cannot be used. */
struct pgsql_cf *pgsql_cf_read(const char *path, char **err);
/* The same from text (unit tests); path only names it in messages. */
struct pgsql_cf *pgsql_cf_parse(const char *path, const char *text, size_t len, char **err);
void pgsql_cf_free(struct pgsql_cf *cf);

/* Whether a (folded) key is queried: 1 yes, 0 no (not found without asking:
 * empty key, domain filter, a part the templates need is missing), -1 a
 * domain table failed (temporary error). */
int pgsql_key_eligible(const struct pgsql_cf *cf, const char *key);

/* Appends text escaped for the inside of a string literal. Returns 0, or -1
 * when it cannot be (invalid in the connection's encoding). */
typedef int pgsql_escape_fn(void *arg, struct strbuf *out, const char *text);
/* Without a connection: standard_conforming_strings on (the default since
 * PostgreSQL 9.1) doubles quotes only; off doubles backslashes too. */
int pgsql_escape_plain(void *standard_conforming, struct strbuf *out, const char *text);

/* Expands cf->query for an eligible key into out: 1 done, 0 the key lacks
 * a part it needs (not queried), -1 escaping failed. */
int pgsql_expand_query(const struct pgsql_cf *cf, const char *key, pgsql_escape_fn *escape,
                       void *escape_arg, struct strbuf *out);

/* The answer from the fields a query returned (NULL fields allowed):
 * 1 found (*value malloc'd: the result_format expansions joined with ","),
 * 0 nothing left, -1 more than expansion_limit (*why malloc'd). */
int pgsql_format_result(const struct pgsql_cf *cf, const char *key, const char *const *fields,
                        size_t count, char **value, char **why);

#endif
