/* map_async: tables that answer later (pgsql:), made usable through
 * map_lookup's synchronous interface by an answer cache.
 *
 * How it works: the first lookup of a key starts the query and returns
 * MAP_PENDING; when the answer arrives (on the process's event loop,
 * map_set_event_base) it is kept for MAP_ANSWER_TTL_MS and the process's
 * answer hook runs (map_set_answer_hook): the caller then runs its whole
 * evaluation again (smtpd the RCPT command, the queue the recipient's
 * routing), and this time the lookup finds the answer. A key already
 * being asked is not asked twice. Temporary errors are answers too: kept
 * for the same time, so a database that is down costs one query per key
 * per TTL, not one per retry.
 *
 * Without an event base (the command line) a lookup waits for its answer
 * on a loop of its own. Private to src/maps (map.c dispatches to it). */
#ifndef TERN_MAPS_MAP_ASYNC_H
#define TERN_MAPS_MAP_ASYNC_H

#define MAP_ANSWER_TTL_MS 1000   /* how long an answer serves repeated lookups: the retry comes at once */
#define MAP_ANSWERS_MAX 10000    /* answers kept per table */

struct map_async;

/* A pgsql: table (path: its configuration file). NULL with *err. */
struct map_async *map_async_open_pgsql(const char *spec, const char *path, char **err);
/* 1 found (*value malloc'd), 0 not found, -1 temporary error, MAP_PENDING. */
int map_async_lookup(struct map_async *a, const char *key, char **value);
void map_async_close(struct map_async *a);

#endif
