/* qmgr_msg: the message table that the files of the queue process
 * share. Private to src/qmgr/: no other folder includes it.
 *
 * qmgr_msg.c owns the table and every recipient's result (recorded in the
 * queue file, logged, retried or expired); qmgr.c schedules messages and
 * removes finished ones; the delivery agents' sides (qmgr_local.c,
 * qmgr_relay.c) take due recipients and give back their results;
 * qmgr_commit.c adds committed messages; qmgr_control.c looks messages up,
 * lists them, and moves, deletes or flushes them on an administrator's
 * request, then hands them back through qmgr_msg_schedule /
 * qmgr_msg_finish_if_done. All of it runs on the queue process's one event
 * loop thread. */
#ifndef TERN_QMGR_QMGR_MSG_H
#define TERN_QMGR_QMGR_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "spool/queue_file.h"
#include "spool/store.h"

struct event;

/* One message in the queue (or on hold), with its delivery progress. */
struct qmgr_msg {
    struct queue_file_message m;
    enum store_place place;
    unsigned inflight;
    int deleted;
    int notifying;              /* its notices are being committed; removal waits */
    int64_t active_us;          /* when the queue manager took it */
    unsigned char *rcpt_busy;   /* per recipient: a delivery is in flight */
    size_t rcpt_busy_cap;
    struct event *timer;
    int table_rounds;           /* routings in a row that waited for an asynchronous table */
};

struct conf;
struct event_base;

/* Reads the retry and lifetime parameters (minimal_backoff_time,
 * maximal_backoff_time, maximal_queue_lifetime, bounce_queue_lifetime,
 * delay_warning_time); retry timers run on base. */
void qmgr_msg_init(struct event_base *base, struct conf *c);
/* Frees every message (at exit). */
void qmgr_msg_shutdown(void);
size_t qmgr_msg_count(void);
/* Takes over m (left empty) as a message in place; returns it. */
struct qmgr_msg *qmgr_msg_add(struct queue_file_message *m, enum store_place place);
/* Removes q from the table and frees it (its file is the caller's business). */
void qmgr_msg_free(struct qmgr_msg *q);
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

/* True while a delivery of recipient idx is in flight or waiting for a slot. */
int qmgr_msg_rcpt_busy(const struct qmgr_msg *q, size_t idx);
/* Marks a recipient that waits for a delivery slot (reserved = 1) so the
 * scheduler leaves it alone, or unmarks it; unlike take, the message may
 * be freed meanwhile. */
void qmgr_msg_rcpt_reserve(struct qmgr_msg *q, size_t idx, int reserved);
/* Sets a recipient's result in memory only (state, dsn, reason, remote). */
void qmgr_msg_set_result(struct queue_file_rcpt *r, enum queue_file_rcpt_state state, const char *dsn,
                         const char *reason, const struct qmgr_msg_remote *remote);
/* Appends recipient idx's status to the queue file (skipped for the last
 * result of a message, whose file is removed next). */
void qmgr_msg_record(struct qmgr_msg *q, size_t idx);
/* Arms the retry timer for the earliest deferred recipient, and sends the
 * delay notice once delay_warning_time has passed. */
void qmgr_msg_arm_retry(struct qmgr_msg *q);

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
/* qmgr.c: 1 when a deferral decided while routing is only an asynchronous
 * table's answer still on the way: the recipient is left as it is and the
 * message routed again when the answer is in (qmgr_msg_rcpt_result then
 * records nothing). */
int qmgr_route_waits_for_table(struct qmgr_msg *q);
void qmgr_msg_rcpt_result(struct qmgr_msg *q, size_t idx, enum qmgr_msg_outcome o, const char *relay, int64_t start_us,
                      const char *dsn, const char *reason);

#endif
