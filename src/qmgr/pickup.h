/* pickup: moves `sendmail` submissions from maildrop/ into the queue.
 *
 * A maildrop file is written by any local user (see maildrop.h for its
 * format). Pickup trusts only the file's owner (its uid, for Received:),
 * validates the rest like network input, runs the content through
 * cleanup (Received:, missing From:/Date:/Message-ID:, `-t` recipients),
 * writes a queue file and commits it; the maildrop file is removed only
 * once the queue file is durable. A file that cannot be made into a
 * message is moved aside to corrupt/ with a log line. Part of the queue
 * process. */
#ifndef TERN_QMGR_PICKUP_H
#define TERN_QMGR_PICKUP_H

struct event_base;
struct runtime;

void pickup_init(struct event_base *base, struct runtime *rt);
/* Looks for new maildrop files; cheap when there are none. */
void pickup_scan(void);
void pickup_shutdown(void);

#endif
