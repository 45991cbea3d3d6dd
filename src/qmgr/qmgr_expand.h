/* qmgr_expand: what one local recipient finally reaches through alias_maps,
 * for the queue manager (qmgr.c; private to the queue process).
 *
 * Owns the flattening of alias_expand's result into a list of final targets.
 * An address target in one of our domains is looked up again, as Postfix's
 * local agent does with the recipient it becomes (bare names alias_expand
 * has already followed). Each local name is followed once: a loop ends in
 * that name's own mailbox, as "bob: bob" does. Duplicate targets are dropped.
 * It only looks things up: qmgr.c records the targets as recipients of their
 * own in the queue file.
 *
 * Errors: a failed lookup, nesting deeper than ALIAS_MAX_DEPTH or more than
 * ALIAS_MAX_TARGETS targets; e->error says why, and e->temporary whether a
 * later retry may succeed (4xx) or not (5xx). */
#ifndef TERN_QMGR_QMGR_EXPAND_H
#define TERN_QMGR_QMGR_EXPAND_H

#include <stddef.h>

#include "maps/alias.h"

struct resolver;

struct qmgr_expansion {
    struct alias_target *t;     /* value: the recipient address, or |cmd etc. */
    size_t n, cap;
    char **seen;                /* local names already followed */
    size_t nseen, seen_cap;
    int temporary;
    char *error;
};

/* Expands the local recipient addr through r's alias_maps. A bare name in an
 * alias gets addr's domain, or default_domain when addr has none. Returns 1
 * when addr is no alias (or there are no alias_maps), 0 with the targets in
 * e->t[0..e->n), -1 with e->error set. e is initialised here; free it with
 * qmgr_expansion_free whatever the result. */
int qmgr_expand(struct resolver *r, const char *addr, const char *default_domain,
                struct qmgr_expansion *e);
void qmgr_expansion_free(struct qmgr_expansion *e);

/* Which alias lists target ("|cmd", "/file" or ":include:/path", as the
 * expansion recorded it) among the aliases the local recipient addr leads
 * to: the local delivery agent is told that name, looks it up itself and
 * takes the rights from the table that holds it. 0 with *alias (malloc'd),
 * 1 when no alias lists it (any more), -1 when a table failed. */
int qmgr_expand_source(struct resolver *r, const char *addr, const char *target, char **alias);

#endif
