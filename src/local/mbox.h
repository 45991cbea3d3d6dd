/* mbox: appends one message to an mbox file (mboxrd flavour: a
 * "From <sender> <asctime>" separator line, ">From " quoting, a blank line
 * after each message).
 *
 * Called by the local delivery process, running as the recipient (or as root
 * with setfsuid() switched to the recipient); this module never changes
 * identity. It owns, for the length of one call, the lock file PATH.lock and
 * the append to PATH; it creates PATH (mode 0600, fchown'd to uid/gid unless
 * uid is (uid_t)-1) when missing.
 *
 * Locking, the way mail readers expect it: a dot-lock PATH.lock created with
 * O_EXCL (one older than the stale limit is removed), then an fcntl() write
 * lock on the whole file. Both waits are bounded. If the directory does not
 * let us create the lock file (EACCES, e.g. Debian's /var/mail for a user
 * who is not in group mail) delivery goes on under the fcntl lock alone and
 * a warning is logged once per process.
 *
 * For the same reasons as Postfix, PATH must be a regular file with one link
 * that is not a symlink. A failed append is cut back (ftruncate) to the
 * original size, so the mailbox never holds half a message.
 *
 * Errors are reported in struct deliver_error, always temporary: "4.2.2"
 * when the disk or quota is full, "4.2.0" for anything else on the mailbox
 * side (lock timeouts, permissions, refused file types, I/O errors), "4.3.0"
 * when the queue file cannot be read. */
#ifndef TERN_LOCAL_MBOX_H
#define TERN_LOCAL_MBOX_H

#include <sys/types.h>

#include "local/deliver.h"

struct mbox_lock_policy {
    unsigned wait_ms;       /* longest wait for each of the two locks */
    unsigned retry_ms;      /* pause between attempts */
    unsigned stale_seconds; /* a PATH.lock older than this is removed */
    int budgeted;           /* waits come out of the process's allowance (below) */
};

/* The local agent delivers from one event loop, so a lock someone keeps
 * must not stall every other delivery: a budgeted policy's waits come out
 * of one allowance that refills at MBOX_WAIT_REFILL_PER_S per second of
 * time passing, up to MBOX_WAIT_BANK; when it is spent, a held lock fails
 * (4.2.0, tried again later) without waiting. */
#define MBOX_WAIT_BANK_MS 250
#define MBOX_WAIT_REFILL_PER_S 100   /* ms: at most a tenth of the time spent waiting */

/* 10 s per lock, retried every 200 ms; locks stale after 300 s. */
extern const struct mbox_lock_policy mbox_lock_default;

/* Appends one message to the mbox at path under mbox_lock_default.
 * 0, or -1 with err filled. */
int mbox_deliver(const char *path, uid_t uid, gid_t gid, const struct deliver_input *in,
                 struct deliver_error *err);

/* mbox_deliver() under a chosen lock policy (configuration, tests). */
int mbox_deliver_with_policy(const char *path, uid_t uid, gid_t gid,
                             const struct deliver_input *in,
                             const struct mbox_lock_policy *policy, struct deliver_error *err);

/* The separator line, "From <sender or MAILER-DAEMON> Www Mmm dd hh:mm:ss yyyy\n",
 * in local time (as asctime() and mail readers have it). Bytes of the sender
 * that would break the line (space, control characters) become '_'; an
 * arrival of 0 means now. Heap string. */
char *mbox_from_line(const char *sender, time_t arrival);

#endif
