/* store_journal: the store's journal mode (queue_sync_method = journal):
 * committed messages kept as records of the spool journal (journal.h)
 * instead of a file each. Only store.c calls it; the store's API
 * (store.h) is the same in every mode.
 *
 * Records (journal types) and what replaying them means:
 *   STORE_REC_MESSAGE  8 bytes (byte 0: the place, 0 queue/ 1 hold/), then a
 *                      whole queue file (queue_file.h: header, content,
 *                      envelope, maybe progress). A message appears, or, for
 *                      an id already known, is replaced by this copy (the
 *                      copy-forward below writes one with its progress in).
 *   STORE_REC_PROGRESS the id (13 bytes), then queue_file progress records
 *                      ('D' status, 'X' added recipient), applied in order.
 *   STORE_REC_PLACE    the id, then one byte: the new place.
 *   STORE_REC_DONE     the id: the message is finished or deleted.
 * A record for an id not known at that point of the replay is left alone
 * (the message's first record was in a segment already retired).
 *
 * Commit: the incoming file (written by smtpd or pickup) is read whole,
 * validated and appended as one MESSAGE record; the commit's callback runs
 * when the journal has synced it (group commit: every record queued while
 * a sync runs shares the next fdatasync), and only then is the incoming
 * file removed. Progress, place and done records are appended without
 * waiting: each rides with the next sync, which follows within one batch.
 *
 * Segments are retired (recycled) strictly in log order, oldest first, and
 * only when no live message has its MESSAGE record there: a DONE record in
 * a later segment can then never go while the message it ends is still in
 * an older one. A message that would hold old segments back is copied
 * forward (a new MESSAGE record: the message as it is now, encoded afresh
 * with one status record a recipient) once more than STORE_JOURNAL_KEEP
 * segments would be kept for it. A message being read
 * by a delivery (store_content) is neither copied nor lets its segment go
 * until the reader is done.
 *
 * Messages larger than half the journal's record limit (the other half is
 * room for the progress a copy folds in), and commits in capture
 * mode (the capture process reads files), keep today's files in queue/:
 * store.c decides, and every call below says whether the id is a journal
 * message. */
#ifndef TERN_SPOOL_STORE_JOURNAL_H
#define TERN_SPOOL_STORE_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "spool/store.h"

enum {
    STORE_REC_MESSAGE = 1,
    STORE_REC_PROGRESS = 2,
    STORE_REC_PLACE = 3,
    STORE_REC_DONE = 4,
};
#define STORE_MESSAGE_PREFIX 8u   /* bytes before the queue file in a MESSAGE record */
#define STORE_JOURNAL_KEEP 3      /* segments before the current one kept for old messages */

struct event_base;

/* Opens queue_dir/journal (creating the directory when missing) and
 * replays it. 0, or -1 with errno (logged). */
int store_journal_open(struct event_base *base, const char *queue_dir);
void store_journal_close(void);
/* Hands over every live journal message (store_recover). */
void store_journal_recover(store_found_cb found, void *arg);
/* fn is called once, on the event loop, when a write or sync of the journal
 * failed: it then refuses every commit until it is opened again (store.h's
 * store_on_fatal). */
void store_journal_on_fatal(void (*fn)(int err));
/* Reads queue_dir/journal without changing it (`tern queue` while the
 * daemon is stopped): found gets every live message (and takes m over).
 * 0, or -1 with errno (ENOENT: no journal). */
int store_journal_read_only(const char *queue_dir, store_found_cb found, void *arg);
/* The size of a new journal's segments (queue_journal_segment_size; 0: the
 * journal's default, 64 MiB), before store_open; an existing journal keeps
 * its own. */
void store_journal_set_segment_size(uint64_t bytes);
/* Holds, releases (to = STORE_HOLD / STORE_QUEUE) or, with remove, deletes
 * every live journal message select picks, while no queue process runs
 * (`tern queue` with the daemon stopped; the caller holds the master's
 * lock, and runs as the journal's owner: files it makes are the queue's).
 * Each change is durable before this returns. *changed gets how many;
 * 0 (also when there is no journal), or -1 with errno. */
typedef int (*store_select_fn)(void *arg, const char *id, enum store_place place);
int store_journal_offline_change(const char *queue_dir, store_select_fn select, void *arg, int remove,
                                 enum store_place to, size_t *changed);
/* Largest incoming file the journal takes (bigger ones stay files). */
size_t store_journal_max_message(void);
/* Commits the queue file ID: fd is the open file (read, then closed before
 * this returns), size its size. The callback is called later, on the event
 * loop; reply (NULL: none) is sent by the writer thread once the record is
 * durable (spool/durable_reply.h). */
void store_journal_commit(const char *id, int fd, size_t size, struct durable_reply *reply, store_commit_cb cb,
                          void *arg);
/* The same for a queue file given as its bytes (copied). */
void store_journal_commit_bytes(const char *id, const void *file, size_t size, struct durable_reply *reply,
                                store_commit_cb cb, void *arg);
/* True when id is a live journal message (or one being committed). */
int store_journal_has(const char *id);
int store_journal_append_status(struct queue_file_message *m, size_t idx);
int store_journal_append_rcpt(struct queue_file_message *m, size_t idx);
int store_journal_remove(const char *id);
int store_journal_move(const char *id, enum store_place to);
/* Where the content of journal message id is: the segment's path (new
 * string) and the file offset of the queue file's start (add the
 * message's content_offset). Pins the message until store_journal_unpin.
 * 0, or -1 (not a journal message). */
int store_journal_locate(const char *id, char **path, uint64_t *base);
void store_journal_unpin(const char *id);

#endif
