/* store: the durable spool; the one module that changes it.
 *
 * Directories under queue_directory and what a file in each means:
 *
 *   incoming/ID   being written by smtpd or pickup; never acknowledged
 *   queue/ID      committed: acknowledged, or about to be (see below)
 *   hold/ID       committed and put on hold by the administrator
 *   corrupt/ID    failed validation at start-up; kept for inspection
 *   maildrop/X    written by `sendmail`; durable before sendmail exits
 *   capture/ID    capture mode: kept for the capture process, never delivered
 *                 from there (store_set_capture)
 *   journal/      queue_sync_method = journal: committed messages as records
 *                 of the spool journal instead of queue/ and hold/ files
 *                 (store_journal.h has that mode's protocol; the one below
 *                 is the files')
 *
 * Commit protocol (the 250 promise), for a message ID:
 *
 *   step                               files                 crash here means
 *   1 writer fills incoming/ID          incoming/ID (partial)  not acknowledged
 *   2 writer finishes envelope + end    incoming/ID (valid)    not acknowledged
 *   3 store validates, renames          queue/ID (not synced)  not acknowledged
 *   4 sync thread: syncfs (or fsync     queue/ID (durable)     not acknowledged,
 *     of file + directory), one per       but delivered: the client retries
 *     batch of commits                    (the duplicate window)
 *   5 reply "ok"; smtpd sends 250       queue/ID (durable)     acknowledged, kept
 *   6 per-recipient progress appended   queue/ID + records     progress after the
 *     (status records after the end)                           last sync may redo
 *                                                             a delivery (dup)
 *   7 last recipient done: unlink       (none)                 may redo (dup)
 *
 * Recovery at start (store_recover): every incoming/ file is removed (never
 * acknowledged); every queue/ and hold/ file is read and validated; a valid
 * one resumes with its recorded progress (a torn last progress record is
 * cut off); an invalid one can only be an unacknowledged file from a crash
 * between steps 3 and 4 (or media damage): it is moved to corrupt/ and
 * logged, never silently deleted.
 *
 * A write-back error is reported by the kernel once, to whichever sync runs
 * next; so every commit (and barrier) remembers when its data last changed,
 * and is failed if any sync failed after that.
 *
 * Syncs are shared: commits that arrive while a sync runs wait for the next
 * one, so N concurrent messages cost one sync, not N (group commit). The
 * sync runs in a thread; results come back to the event loop.
 * Errors: a commit fails with an errno (storage_reply.h turns it into the
 * client's 4xx reply); the file is removed. */
#ifndef TERN_SPOOL_STORE_H
#define TERN_SPOOL_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "spool/durable_reply.h"
#include "spool/queue_file.h"

struct event_base;

enum store_place { STORE_QUEUE, STORE_HOLD };

/* Callback for a finished commit; m is the validated envelope (the callee
 * takes it over when ok); err the errno when not ok (EINVAL: a malformed
 * request, EBADMSG: an invalid incoming file, EEXIST: the id is taken). */
typedef void (*store_commit_cb)(void *arg, int ok, struct queue_file_message *m, int err);
/* Called for each message found at recovery (callee takes m over). */
typedef void (*store_found_cb)(void *arg, struct queue_file_message *m, enum store_place place);

/* How commits are made durable (main.cf queue_sync_method): fsync of each
 * file and of queue/; one syncfs per batch; or a record in the journal
 * (store_journal.h; messages too large for a record still use files,
 * synced with fsync). */
enum store_sync { STORE_SYNC_FSYNC = 0, STORE_SYNC_SYNCFS = 1, STORE_SYNC_JOURNAL = 2 };
int store_open(struct event_base *base, const char *queue_dir, int sync_method);
/* fn is called once when the store can take nothing more until the
 * process starts again: the journal's write or sync failed, and only
 * reading it back from disk tells what survived (journal.h, "Failures").
 * The queue process restarts itself; without fn, commits fail with 451. */
void store_on_fatal(void (*fn)(int err));
/* queue_journal_segment_size, before store_open (0: the default). */
void store_set_journal_segment_size(uint64_t bytes);
/* Tells recovery that every writer of incoming/ started at or after since
 * (the master's start: smtpd and pickup are its children), so an unlocked
 * incoming file last written before it is a dead writer's and goes. Without
 * it, recovery keeps unlocked files written up to a second before the
 * store opened, in case a writer had not locked its new file yet. */
void store_set_writers_since(struct timespec since);
void store_close(void);
void store_recover(store_found_cb found, void *arg);

/* Capture mode (main.cf capture): STORE_CAPTURE_ONLY commits into
 * capture/ instead of queue/ (the callback's message is then not queued);
 * STORE_CAPTURE_COPY commits into queue/ and links the file into capture/
 * too, before the same sync (the capture process reads only the envelope's
 * own recipients, not the progress records the queue appends). Returns -1
 * when capture/ cannot be opened. */
enum store_capture { STORE_CAPTURE_OFF, STORE_CAPTURE_ONLY, STORE_CAPTURE_COPY };
int store_set_capture(enum store_capture mode);
/* Takes incoming/ID into the queue (steps 3-5). */
void store_commit(const char *id, store_commit_cb cb, void *arg);
/* The same for a queue file in memory (smtpd's memfd, taken over): it must
 * be sealed against change (F_SEAL_WRITE, _GROW, _SHRINK) and at most
 * QF_MEMORY_MAX bytes, or it is refused (EBADMSG). The journal takes it from there; where a file is
 * needed (another queue_sync_method, capture mode, a message too large for
 * a record) it is first written to incoming/ID. reply: sent when durable
 * (NULL: none; spool/durable_reply.h). */
void store_commit_memory(const char *id, int memfd, struct durable_reply *reply, store_commit_cb cb, void *arg);
/* The same for a queue file given as its bytes (smtpd's COMMIT carries a
 * small one inside; copied). */
void store_commit_bytes(const char *id, const void *file, size_t size, struct durable_reply *reply,
                        store_commit_cb cb, void *arg);
/* The same into queue/ whatever the capture mode: a message the capture
 * API releases to be delivered for real. */
void store_commit_for_delivery(const char *id, store_commit_cb cb, void *arg);
/* Calls cb once the next sync has finished. With syncfs that makes
 * everything written to the file system so far durable (the local agent
 * relies on this for Maildirs on the spool's file system); with
 * queue_sync_method = fsync only queue/ and the files committed with it. */
void store_barrier(void (*cb)(void *arg, int ok), void *arg);
/* The same for data last changed at `written`: ok is 0 if any sync failed
 * after that (the failure may have concerned that data). */
void store_barrier_since(struct timespec written, void (*cb)(void *arg, int ok), void *arg);
/* Directory fd of incoming/ for writers in this process (pickup). */
int store_incoming_dirfd(void);

/* Progress: appends the status of recipient idx (and, for recipients added
 * by expansion, their record). -1 with errno on failure. */
int store_append_status(struct queue_file_message *m, enum store_place place, size_t idx);
int store_append_rcpt(struct queue_file_message *m, enum store_place place, size_t idx);
/* Removes a finished or deleted message (done by the sync thread, off the
 * event loop; errors are logged there). */
int store_remove(const char *id, enum store_place place);
/* Moves between queue/ and hold/. */
int store_move(const char *id, enum store_place from, enum store_place to);
/* Path of a message file, for messages kept as files. */
char *store_path(const char *id, enum store_place place);
/* Where a reader (a delivery) finds message id's content: the file to
 * open (*path, a new string: queue/ID, hold/ID or a journal segment) and
 * the offset to add to the message's content_offset. A journal message's
 * copy stays in place until store_content_done(id); call it once per
 * locate. 0, or -1. */
int store_content_locate(const char *id, enum store_place place, char **path, uint64_t *base);
void store_content_done(const char *id);

#endif
