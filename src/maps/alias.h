/* alias: expansion of a local recipient through alias_maps (aliases(5)).
 *
 * Owns the meaning of an alias value: the comma-separated list of targets,
 * their kinds (local user, address, |command, /file, :include:/file), quoting,
 * and the recursive expansion of names that are themselves aliases. It does
 * not deliver anything and does not read :include: files: the local delivery
 * agent gets the targets and decides (it also decides whether an address
 * target in one of our domains is local and should be expanded again).
 *
 * Callers: the local delivery agent, and "tern aliases" style tools.
 *
 * Value syntax (one string, as stored by a MAP_ALIAS_FORMAT table):
 *   - items are separated by commas outside double quotes;
 *   - an item that is one "quoted string" is unquoted (\" and \\ escape) and
 *     taken whole: "|/bin/cmd a, b" is one command with a comma in it;
 *   - an unquoted item starting with '|', '/' or ":include:" is taken whole,
 *     spaces and all (|/usr/bin/procmail -a x);
 *   - any other unquoted item is split at whitespace, so "root bob" is two
 *     names, as Sendmail and Postfix read it;
 *   - |cmd -> ALIAS_COMMAND, value "cmd" (the '|' dropped);
 *     :include:/path -> ALIAS_INCLUDE, value "/path" (must be absolute);
 *     /path -> ALIAS_FILE; anything with '@' -> ALIAS_ADDRESS (as written);
 *     else ALIAS_LOCAL_USER, folded to lowercase;
 *   - \name (backslash before a bare name) is the local user "name" that is
 *     never expanded again, the classic way to break a loop.
 * Empty items (",,") are ignored. Control characters other than tab, an
 * unterminated quote, an empty command or a relative :include: are errors.
 *
 * Expansion: a bare name that is itself an alias is expanded in turn; a name
 * that names the alias being expanded ("bob: bob, x") is delivered to the
 * user bob; a name that reappears further up the chain (a: b, b: a) is a
 * loop and an error. Names expanded once are not expanded twice, duplicate
 * targets are dropped, the nesting depth is at most ALIAS_MAX_DEPTH and the
 * result at most ALIAS_MAX_TARGETS targets (more is an error, never a silent
 * cut). A table failure is a temporary error (4xx); anything wrong with the
 * aliases themselves is permanent (5xx). */
#ifndef TERN_MAPS_ALIAS_H
#define TERN_MAPS_ALIAS_H

#include <stddef.h>

#include "maps/map.h"

#define ALIAS_MAX_DEPTH 100
/* :include: files nested in one another (a list of lists), counted from
 * the one an alias or .forward names. Real hierarchies of lists stay a few
 * levels deep; every level costs the local agent one more file to read and
 * check, as the right user, for each target below it, so the bound also
 * bounds what one delivery makes it read. Deeper nesting bounces (5.4.6). */
#define ALIAS_MAX_INCLUDE_DEPTH 10
#define ALIAS_MAX_TARGETS 1000
/* Bounds the work of one expansion whatever the tables hold. */
#define ALIAS_MAX_EXPANSIONS 1000
#define ALIAS_MAX_ITEMS 20000

enum alias_target_type {
    ALIAS_LOCAL_USER, /* bare name "bob" */
    ALIAS_ADDRESS,    /* "bob@other.test" */
    ALIAS_COMMAND,    /* "|/usr/bin/procmail" -> value "/usr/bin/procmail" */
    ALIAS_FILE,       /* "/var/log/x" */
    ALIAS_INCLUDE     /* ":include:/path" -> value "/path" */
};

struct alias_target {
    enum alias_target_type type;
    char *value;
};

struct alias_result {
    struct alias_target *t;
    size_t n;
    char *error;   /* set when a call returned -1 */
    int temporary; /* with error: 1 = defer (4xx), 0 = bounce (5xx) */
};

/* Expands localpart (folded to lowercase here) through maps. Returns 0 found
 * (out filled), 1 not an alias (out empty), -1 error (out->error set, and
 * out->temporary). Always call alias_result_free afterwards. */
int alias_expand(struct map_list *maps, const char *localpart, struct alias_result *out);
void alias_result_free(struct alias_result *r);

/* Parses one alias value into targets without any lookup or recursion.
 * Returns 0 (out->n may be 0 for a value of only commas), or -1 with
 * out->error set. Duplicates are kept. */
int alias_parse_value(const char *value, struct alias_result *out);

/* "local user", "address", "command", "file", "include": for log lines. */
const char *alias_target_type_name(enum alias_target_type type);

#endif
