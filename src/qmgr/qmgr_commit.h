/* qmgr_commit: the commit service of the queue process. smtpd connects to
 * private/queue and sends COMMIT for each finished incoming/ file; the
 * store validates it, renames it into queue/ and makes it durable with the
 * next group commit, and only then is smtpd told "ok" (so it may say 250).
 * Pickup and the notices commit their own files through qmgr_commit. A
 * committed message enters the message table and is scheduled at once.
 * Queue process only. */
#ifndef TERN_QMGR_QMGR_COMMIT_H
#define TERN_QMGR_QMGR_COMMIT_H

struct event_base;

/* Accepts smtpd connections on listen_fd (private/queue). */
void qmgr_commit_start(struct event_base *base, int listen_fd);
/* Stops accepting new connections (at the start of shutdown). */
void qmgr_commit_stop(void);
/* Closes every smtpd connection: after the store's last commit callbacks,
 * which may still answer on them. */
void qmgr_commit_shutdown(void);

#endif
