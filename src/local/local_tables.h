/* local_tables: the local agent's requests that wait for asynchronous
 * tables (pgsql: virtual mailbox maps, map_async.h). Before a DELIVER is
 * carried out, a dry run of its first lookups (the address class, a
 * virtual mailbox, the alias a command or file target comes from, a local
 * user's mailbox_command_maps entry) starts
 * their queries; when an answer was missing the
 * request is held (a copy) and run again from the map layer's answer hook,
 * so the agent's loop never waits for a database. After
 * LOCAL_TABLE_ROUNDS rounds it runs anyway, and a missing answer is then a
 * temporary failure (the queue retries). Requests of a channel that closes
 * are dropped (the queue retries them too). */
#ifndef TERN_LOCAL_LOCAL_TABLES_H
#define TERN_LOCAL_LOCAL_TABLES_H

struct event_base;
struct ipc_chan;
struct ipc_msg;
struct resolver;

#define LOCAL_TABLE_ROUNDS 4

typedef void local_tables_run_fn(struct ipc_chan *ch, const struct ipc_msg *m);
typedef int local_tables_alive_fn(struct ipc_chan *ch);

/* Asynchronous tables answer on base; run carries a request out, alive
 * says whether its channel still stands. Before the resolver's tables are
 * opened. */
void local_tables_init(struct event_base *base, local_tables_run_fn *run, local_tables_alive_fn *alive);
struct map_list;
/* mailbox_command_maps (NULL: none), asked in the dry run too. */
void local_tables_watch_command_maps(struct map_list *maps);
/* 1 when m waits (held); 0: carry it out now. */
int local_tables_hold(struct resolver *r, struct ipc_chan *ch, const struct ipc_msg *m);
/* ch is closing: its held requests go. */
void local_tables_drop(struct ipc_chan *ch);

#endif
