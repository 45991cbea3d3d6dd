/* storage_reply: the one table from a storage failure (an errno from
 * writing, syncing or renaming a queue file) to the SMTP reply the client
 * gets. The store and the writers of incoming/ files report errno; only
 * the edges that talk SMTP (smtpd, the commit service) turn it into text,
 * here, so the same failure reads the same everywhere.
 *
 *   ENOSPC, EDQUOT   452 4.3.1 Insufficient system storage (RFC 3463: the
 *                    mail system is full; the client may retry later)
 *   EINVAL           451 4.3.0 Error: internal error (a malformed request)
 *   anything else    451 4.3.0 Error: queue file write error */
#ifndef TERN_SPOOL_STORAGE_REPLY_H
#define TERN_SPOOL_STORAGE_REPLY_H

/* The full reply line (code, enhanced code, text) for errno err. */
const char *storage_reply(int err);
/* Its three-digit code: 452 or 451. */
int storage_reply_code(int err);

#endif
