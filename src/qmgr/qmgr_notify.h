/* qmgr_notify: the delivery status notifications a finished message owes.
 *
 * When every recipient of a message is done, the queue manager asks this
 * module before it removes the file: failed recipients get the sender a
 * non-delivery notice (a bounce), recipients delivered with NOTIFY=SUCCESS a
 * success notice (RFC 3461), unless the recipient said NOTIFY=NEVER. Notices
 * go from <> to the original sender; a message with the null sender gets
 * none, except that a failed bounce becomes a "double bounce" to the
 * postmaster (2bounce_notice_recipient), and a failed double bounce is
 * dropped with a log line, so notices can never loop.
 *
 * Each notice is composed by bounce.c into a new queue file and committed
 * like any message; only when it is durable may the original go. Private to
 * the queue process. */
#ifndef TERN_QMGR_QMGR_NOTIFY_H
#define TERN_QMGR_QMGR_NOTIFY_H

struct conf;
struct qmgr_msg;

void qmgr_notify_init(struct conf *c);
void qmgr_notify_shutdown(void);

/* Sends what q owes. Returns 0 when nothing is owed (remove q now), or 1
 * when notices are being committed: done(q, ok) is called later, ok = 0 if
 * a notice could not be queued (keep q and try again later). */
int qmgr_notify_finished(struct qmgr_msg *q, void (*done)(struct qmgr_msg *q, int ok));

/* Tells the sender once about recipients still deferred (RFC 3464 delay
 * notice, "Delayed Mail (still being retried)"): those not yet warned
 * about that did not exclude NOTIFY=DELAY; never for the null sender.
 * Marks them warned in the queue file; the notice is committed like any
 * message, and one that cannot be queued is logged and not retried.
 * lifetime (maximal_queue_lifetime) gives Will-Retry-Until. */
void qmgr_notify_delayed(struct qmgr_msg *q, long long lifetime);

#endif
