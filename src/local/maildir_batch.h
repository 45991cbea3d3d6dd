/* maildir_batch: the local agent's Maildir deliveries, made durable together.
 *
 * Every delivery of a batch has written its file to tmp/ (maildir_begin);
 * the batch then makes the files durable, links them into new/, makes the
 * new/ entries durable and answers: the Maildir rule ("fsync before new/")
 * paid once a batch. A batch is what arrives until its round of syncs
 * starts: in the next turn of the event loop after a quiet spell, else
 * about MAILDIR_BATCH_INTERVAL_MS after the previous round started (deliveries
 * that come one at a time, as from one SMTP session, then share a round
 * instead of paying a cache flush per file and another per new/ each), or
 * at once when it reaches MAILDIR_BATCH_MAX. How depends on queue_sync_method: with syncfs, one syncfs
 * per file system, and for mailboxes on the queue's own file system the
 * queue's next group commit does it (an IPC_BARRIER to the queue, answered
 * with "sent-unsynced"); with fsync or journal (sync_each), every file's
 * write-back is started, each file fdatasync'd and each new/ fsync'd once,
 * so a batch never waits for what else its file system has to write.
 *
 * Used by local.c only; the file-system identity switches and the replies
 * are local.c's (ops). */
#ifndef TERN_LOCAL_MAILDIR_BATCH_H
#define TERN_LOCAL_MAILDIR_BATCH_H

#include <stdint.h>
#include <sys/types.h>

#include "local/deliver.h"
#include "local/maildir.h"

struct event_base;
struct ipc_chan;
struct ipc_msg;

#define MAILDIR_BATCH_MAX 256
/* About one round of syncs per this many milliseconds at most: a delivery
 * waits at most about this long for company, and only when a round has
 * just been made. */
#define MAILDIR_BATCH_INTERVAL_MS 5

struct maildir_batch_ops {
    void (*become_user)(uid_t uid, gid_t gid);   /* for the recipient's files */
    void (*become_root)(void);
    int (*chan_alive)(struct ipc_chan *ch);       /* the queue connection is still there */
    void (*reply_sent)(struct ipc_chan *ch, uint32_t reqid, int unsynced);
    void (*reply_error)(struct ipc_chan *ch, uint32_t reqid, const struct deliver_error *err);
};

/* spool_dev: the queue's file system when its syncs are whole-file-system
 * ones (syncfs) and may be shared; NULL otherwise. interval_ms: the least
 * time between the starts of two rounds of syncs, give or take a tick of
 * libevent's coarse clock (MAILDIR_BATCH_INTERVAL_MS; 0: every turn). */
void maildir_batch_init(struct event_base *base, const struct maildir_batch_ops *ops, int sync_each,
                        const dev_t *spool_dev, unsigned interval_ms);
/* Takes over md (begun, its file written in tmp/) to finish and answer as
 * part of the next batch. */
void maildir_batch_add(struct ipc_chan *ch, uint32_t reqid, uid_t uid, gid_t gid, struct maildir_delivery *md);
/* The queue's answer to a batch's IPC_BARRIER. */
void maildir_batch_barrier_reply(const struct ipc_msg *m);
/* The queue connection ch is gone: batches waiting for its sync are dropped
 * (their tmp/ files removed; nobody would take the results), and deliveries
 * of its not yet synced are made but answer no one (a new connection may
 * reuse ch's address). */
void maildir_batch_drop_channel(struct ipc_chan *ch);
/* At exit: what is pending is finished with syncs of its own. */
void maildir_batch_shutdown(void);

#endif
