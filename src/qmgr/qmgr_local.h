/* qmgr_local: the queue process's side of local delivery: the connection
 * to the local delivery agent over private/local, the deliveries in flight
 * (at most default_process_limit; the rest wait in a FIFO), and the
 * BARRIER requests by which local shares the queue's group commit.
 *
 * A recipient goes through the message table's take/finish API
 * (qmgr_msg.h), as with the relay. Queue process only. */
#ifndef TERN_QMGR_QMGR_LOCAL_H
#define TERN_QMGR_QMGR_LOCAL_H

#include <stddef.h>

struct event_base;
struct qmgr_msg;
struct resolver;
struct runtime;

void qmgr_local_init(struct event_base *base, struct runtime *rt, struct resolver *resolver);
/* Delivers recipient idx of q to its local mailbox now, or as soon as a
 * delivery slot is free. The result comes back through qmgr_msg_rcpt_finish. */
void qmgr_local_deliver(struct qmgr_msg *q, size_t idx);
void qmgr_local_shutdown(void);

/* Stopping: no new local delivery starts (what waits is tried again after
 * the restart); qmgr_local_active() counts those still in flight, whose
 * results the queue waits a few seconds for (a delivery command the local
 * agent lets finish). */
void qmgr_local_quiesce(void);
unsigned qmgr_local_active(void);

struct queue_file_rcpt;
/* A |command, /file or :include: target that a local alias expanded to (a
 * recipient of its own, kept as the expansion wrote it): it goes to the
 * local agent as it is, with the alias that lists it (qmgr_expand_source),
 * which the agent checks against its own tables. Told apart by its text,
 * which no expanded address starts with, so a restart that lost the
 * recipient's flags still knows it. */
int qmgr_local_is_alias_target(const struct queue_file_rcpt *r);

#endif
