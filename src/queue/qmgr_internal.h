/* qmgr_internal: what qmgr.c (the queue manager proper) shares with
 * qmgr_control.c (the queue commands). Private to the queue process: no
 * other module includes it.
 *
 * qmgr.c owns the message table and every state change of a message;
 * qmgr_control.c looks messages up, lists them, and moves, deletes or
 * flushes them on an administrator's request, then hands them back through
 * qmsg_schedule / qmsg_finish_if_done. All of it runs on the queue
 * process's one event loop thread. */
#ifndef TERN_QUEUE_QMGR_INTERNAL_H
#define TERN_QUEUE_QMGR_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "queue/queue_file.h"
#include "queue/queue_store.h"

struct event;

/* One message in the queue (or on hold), with its delivery progress. */
struct qmsg {
    struct qmsg *hnext;
    struct qf_message m;
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
struct qmsg *qmsg_find(const char *id);
/* Every message not deleted, sorted by queue id; *n of them. free() the array. */
struct qmsg **qmsg_sorted(size_t *n);
/* Starts delivery of every recipient that is due (no-op on hold or deleted). */
void qmsg_schedule(struct qmsg *q);
/* Removes the message (file and table entry) if nothing is left to do for
 * it, or frees a deleted one once no delivery is in flight. q may be freed. */
void qmsg_finish_if_done(struct qmsg *q);

#endif
