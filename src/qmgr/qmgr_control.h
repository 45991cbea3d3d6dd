/* qmgr_control: the queue-command service of the queue process, on
 * public/qmgr (mode 0666).
 *
 * Answers `tern queue`, `mailq` and `sendmail`: list, flush, delete, hold,
 * release (by queue id or ALL) and pickup pokes for new maildrop/ files.
 * Owns the listening socket's event and the client connections. Anyone may
 * poke; list needs authorized_mailq_users, flush authorized_flush_users
 * (both static:anyone by default); delete, hold and release need the peer
 * (SO_PEERCRED) to be root or the queue process's own user (mail_owner).
 * Root and mail_owner pass every check; a refused request gets "denied".
 * Each request ends with one IPC_DONE whose status is ok, denied, notfound
 * (text: the id) or error (a spool operation failed, a missing id, an
 * unknown request).
 *
 * Any local user can connect, so what one can hold is bounded: 64
 * connections in all, 4 of them kept for root and mail_owner, 8 per other
 * user (a connection over a limit gets an IPC_DONE error and is closed);
 * at most 256 KiB of answers queued per connection (a LIST makes its items
 * as the client reads them; a client that does not read is not read from);
 * pickup pokes are coalesced by pickup_scan.
 *
 * Called by qmgr.c only, on the queue process's event loop. */
#ifndef TERN_QMGR_QMGR_CONTROL_H
#define TERN_QMGR_QMGR_CONTROL_H

struct conf;
struct event_base;

/* Accepts queue-command connections on listen_fd (non-blocking). */
void qmgr_control_start(struct event_base *base, int listen_fd, struct conf *conf);
/* Stops listening and closes every client connection. */
void qmgr_control_stop(void);

#endif
