/* qmgr_internal: what qmgr.c (the queue manager proper) shares with
 * qmgr_control.c (the queue commands). Private to the queue process: no
 * other module includes it.
 *
 * qmgr.c owns the message table and every state change of a message;
 * qmgr_control.c looks messages up, lists them, and moves, deletes or
 * flushes them on an administrator's request, then hands them back through
 * qmgr_msg_schedule / qmgr_msg_finish_if_done. All of it runs on the queue
 * process's one event loop thread. */
#ifndef TERN_QMGR_QMGR_INTERNAL_H
#define TERN_QMGR_QMGR_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "spool/queue_file.h"
#include "spool/store.h"

struct event;

/* One message in the queue (or on hold), with its delivery progress. */
struct qmgr_msg {
    struct qmgr_msg *hnext;
    struct queue_file_message m;
    enum store_place place;
    unsigned inflight;
    int deleted;
    int notifying;              /* its notices are being committed; removal waits */
    int64_t active_us;          /* when the queue manager took it */
    unsigned char *rcpt_busy;   /* per recipient: a delivery is in flight */
    size_t rcpt_busy_cap;
    struct event *timer;
};

/* The message with that queue id, deleted ones included; NULL if none. */
struct qmgr_msg *qmgr_msg_find(const char *id);
/* Every message not deleted, sorted by queue id; *n of them. free() the array. */
struct qmgr_msg **qmgr_msg_sorted(size_t *n);
/* Starts delivery of every recipient that is due (no-op on hold or deleted). */
void qmgr_msg_schedule(struct qmgr_msg *q);
/* Removes the message (file and table entry) if nothing is left to do for
 * it, or frees a deleted one once no delivery is in flight. q may be freed. */
void qmgr_msg_finish_if_done(struct qmgr_msg *q);

/* One delivery attempt's outcome for a recipient. */
enum qmgr_msg_outcome { QMSG_SENT, QMSG_DEFERRED, QMSG_BOUNCED };

/* What another server said, kept with the result for notices. */
struct qmgr_msg_remote {
    const char *mta;      /* its host name */
    const char *diag;     /* its reply, "550 5.1.1 ..."; "" when it said nothing */
    int dsn_passed;       /* it accepted our NOTIFY (spoke DSN) */
};

/* A delivery agent takes a due recipient: busy, and the message stays in
 * memory until qmgr_msg_rcpt_release or qmgr_msg_rcpt_finish. */
void qmgr_msg_rcpt_take(struct qmgr_msg *q, size_t idx);
/* Gives a taken recipient back without a result (hold, delete, shutdown). */
void qmgr_msg_rcpt_release(struct qmgr_msg *q, size_t idx);
/* The result of a taken recipient (ignored if the message was deleted):
 * recorded, logged, retry timer armed. remote may be NULL. Never frees q:
 * call qmgr_msg_finish_if_done afterwards. */
void qmgr_msg_rcpt_finish(struct qmgr_msg *q, size_t idx, enum qmgr_msg_outcome o, const char *relay, int64_t start_us,
                      const char *dsn, const char *reason, const struct qmgr_msg_remote *remote);
/* The result of a recipient that was never taken (settled while routing). */
void qmgr_msg_rcpt_result(struct qmgr_msg *q, size_t idx, enum qmgr_msg_outcome o, const char *relay, int64_t start_us,
                      const char *dsn, const char *reason);

#endif
