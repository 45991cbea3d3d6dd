/* map_regexp: the pattern tables regexp:/path (POSIX extended regular
 * expressions, regcomp(3)) and pcre:/path (PCRE2), in the format of
 * Postfix's regexp_table(5) and pcre_table(5). map.c reads and rereads the
 * source file (map_source.h's line rules) and hands its text here; this
 * module compiles the rules and answers lookups. See map.h for the syntax. */
#ifndef TERN_MAPS_MAP_REGEXP_H
#define TERN_MAPS_MAP_REGEXP_H

#include <stddef.h>

enum map_regexp_dialect { MAP_REGEXP_POSIX, MAP_REGEXP_PCRE };

/* PCRE2's bounds on one match, so a pathological pattern (nested
 * quantifiers) costs milliseconds and a temporary error, never a hang. */
#define MAP_PCRE_MATCH_LIMIT 1000000
#define MAP_PCRE_DEPTH_LIMIT 10000

struct map_regexp;

/* Compiles the rules of one version of the source file. Bad lines are
 * logged ("path, line N: ...") and skipped; never fails. */
struct map_regexp *map_regexp_parse(const char *path, enum map_regexp_dialect dialect,
                                    const char *data, size_t len);
/* The first rule that applies to the whole key wins: 1 found (*value
 * malloc'd, $n substituted), 0 not found, -1 temporary error (a PCRE2
 * match limit was hit, or the result would exceed MAP_MAX_LINE; logged
 * naming table). */
int map_regexp_lookup(const struct map_regexp *rx, const char *table, const char *key,
                      char **value);
/* How many rules (pattern lines, if and endif) were compiled. */
size_t map_regexp_count(const struct map_regexp *rx);
void map_regexp_free(struct map_regexp *rx);

#endif
