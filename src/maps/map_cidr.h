/* map_cidr: cidr:/path tables, in the format of Postfix's cidr_table(5):
 * network blocks matched against an address key, first match wins. map.c
 * reads and rereads the source file (map_source.h's line rules) and hands
 * its text here; this module parses the rules and answers lookups. See
 * map.h for the syntax. */
#ifndef TERN_MAPS_MAP_CIDR_H
#define TERN_MAPS_MAP_CIDR_H

#include <stddef.h>

struct map_cidr;

/* Parses the rules of one version of the source file. Bad lines are
 * logged ("path, line N: ...") and skipped; never fails. */
struct map_cidr *map_cidr_parse(const char *path, const char *data, size_t len);
/* The first rule that applies to the address key wins: 1 found (*value
 * malloc'd), 0 not found (also for a key that is no IPv4 or IPv6 address).
 * Never a temporary error. */
int map_cidr_lookup(const struct map_cidr *t, const char *key, char **value);
/* How many rules (pattern lines, if and endif) were kept. */
size_t map_cidr_count(const struct map_cidr *t);
void map_cidr_free(struct map_cidr *t);

#endif
