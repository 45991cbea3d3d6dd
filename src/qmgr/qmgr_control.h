/* qmgr_control: the queue-command service of the queue process, on
 * public/qmgr (mode 0666).
 *
 * Answers `tern queue`, `mailq` and `sendmail`: list, flush, delete, hold,
 * release (by queue id or ALL) and pickup pokes for new maildrop/ files.
 * Owns the listening socket's event and the client connections. Anyone may
 * list, flush and poke; delete, hold and release need the peer (SO_PEERCRED)
 * to be root or the queue process's own user (mail_owner), else the reply is
 * "denied". Each request ends with one IPC_DONE whose status is ok, denied,
 * notfound (text: the id) or error (a spool operation failed, a missing id,
 * an unknown request).
 *
 * Called by qmgr.c only, on the queue process's event loop. */
#ifndef TERN_QMGR_QMGR_CONTROL_H
#define TERN_QMGR_QMGR_CONTROL_H

struct event_base;

/* Accepts queue-command connections on listen_fd (non-blocking). */
void qmgr_control_start(struct event_base *base, int listen_fd);
/* Stops listening and closes every client connection. */
void qmgr_control_stop(void);

#endif
