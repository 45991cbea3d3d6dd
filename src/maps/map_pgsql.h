/* map_pgsql: pgsql: lookup tables (Postfix's pgsql_table(5)), answered by
 * PostgreSQL through libpq without ever blocking the caller's libevent loop.
 *
 * What it is for: a daemon's event loop asks a table and is called back
 * with the answer, while connecting, sending and reading all run as socket
 * events on that loop (libpq's asynchronous API: PQconnectStartParams and
 * PQconnectPoll, PQsendQuery, PQconsumeInput, PQisBusy, PQgetResult). The
 * configuration file's rules, the query and result expansion are in
 * map_pgsql_cf.h. map_open opens pgsql: tables through map_async.h, which
 * turns this engine's callbacks into answers map_lookup's callers can ask
 * for again; without an event loop (the command line) it uses
 * pgsql_table_lookup_wait.
 *
 * Connections: one per table, opened on the first lookup and reused; the
 * hosts are tried in the order given, each for at most connect_timeout
 * seconds. When every host failed, the table is down for retry_interval
 * seconds: lookups in that time fail at once (-1, with the last reason),
 * and the next lookup after it reconnects, from the first host. A
 * connection that breaks while idle is noticed (the socket is watched) and
 * reopened by the next lookup; a query whose connection broke under it is
 * sent once more on a new connection (the server may have restarted since
 * the connection was last used) before it fails. Queries are sent one at a
 * time per table, in order. An unused connection is closed after
 * idle_interval seconds.
 *
 * One step is not asynchronous: libpq resolves a host name with
 * getaddrinfo inside PQconnectPoll. Name hosts by address (or unix:) where
 * a stalled resolver must not stop the loop.
 *
 * Answers: exactly one callback per lookup, never from inside pgsql_lookup
 * (always from the event loop), unless the lookup is cancelled or its table
 * closed first: rc 1 found (value: the result), 0 not found (value NULL),
 * -1 temporary error (why: the reason, e.g. every host refused, the query
 * failed, query_timeout passed, more than expansion_limit results). value
 * and why are valid only during the callback. A lookup whose key the table
 * would not query (domain filter, a missing %d part ...) answers 0 without
 * touching the database. Not thread-safe: one event loop owns a table. */
#ifndef TERN_MAPS_MAP_PGSQL_H
#define TERN_MAPS_MAP_PGSQL_H

struct event_base;
struct pgsql_table;
struct pgsql_query;

typedef void pgsql_answer_fn(void *arg, int rc, const char *value, const char *why);

/* Reads the configuration file; connects later, on the first lookup.
 * NULL and a malloc'd message ("path:line: why") in *err when the file
 * cannot be used. */
struct pgsql_table *pgsql_table_open(const char *cf_path, struct event_base *base, char **err);

/* Starts a lookup of key (folded to lower case, as Postfix does). The
 * returned handle is valid until the callback has run or the lookup is
 * cancelled; never NULL. */
struct pgsql_query *pgsql_lookup(struct pgsql_table *t, const char *key, pgsql_answer_fn *cb, void *arg);

/* The callback of q will not run; frees q. */
void pgsql_lookup_cancel(struct pgsql_query *q);

/* Cancels every outstanding lookup (no callbacks), closes the connection. */
void pgsql_table_close(struct pgsql_table *t);

/* Blocking convenience for command-line use: runs the table's event loop
 * until the answer. 1 found (*value malloc'd), 0 not found, -1 temporary
 * error (*why malloc'd). Never call it from inside a running event loop. */
int pgsql_table_lookup_wait(struct pgsql_table *t, const char *key, char **value, char **why);

/* The configuration file's path. */
const char *pgsql_table_path(const struct pgsql_table *t);

#endif
