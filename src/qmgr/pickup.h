/* pickup: moves `sendmail` submissions from maildrop/ into the queue.
 *
 * A maildrop file is written by any local user (see maildrop.h for its
 * format). Pickup trusts only the file's owner (its uid, for Received:),
 * validates the rest like network input, runs the content through
 * cleanup (Received:, missing From:/Date:/Message-ID:, `-t` recipients),
 * writes a queue file and commits it; the maildrop file is removed only
 * once the queue file is durable. A file that cannot be made into a
 * message (unreadable, not a regular file, malformed) is moved aside to
 * corrupt/ (mail_owner only) with one log line, never rescanned. Part of
 * the queue process. */
#ifndef TERN_QMGR_PICKUP_H
#define TERN_QMGR_PICKUP_H

struct event_base;
struct runtime;

void pickup_init(struct event_base *base, struct runtime *rt);
/* Asks for a scan of maildrop/. It runs from the event loop in rounds of a
 * few files; requests while one is pending or running cause one more scan
 * after it, not one each (public/qmgr lets any user poke). */
void pickup_scan(void);
void pickup_shutdown(void);

#endif
