/* qmgr_log: the delivery log line of the queue manager, in Postfix's form:
 *   ID: to=<rcpt>[, orig_to=<addr>], relay=R, delay=D, delays=a/b/c/d,
 *       dsn=X.Y.Z, status=S (reason)
 * with delays a (before the queue manager), b (in it), c (connection setup,
 * always 0 here) and d (transmission), written with Postfix's rounding.
 * Used by qmgr.c for every recorded result; no state, no errors. */
#ifndef TERN_QMGR_QMGR_LOG_H
#define TERN_QMGR_QMGR_LOG_H

#include <stddef.h>
#include <stdint.h>

struct qmgr_msg;

/* start_us: when the delivery began (0: it never started); now in
 * microseconds since the epoch. */
void qmgr_log_delivery(const struct qmgr_msg *q, size_t idx, const char *relay, int64_t start_us, int64_t now,
                       const char *status);

#endif
