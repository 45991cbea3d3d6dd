/* journal: the spool's group-committed append-only log (issue 12), as a
 * library module; the store uses it with queue_sync_method = journal (the
 * default; store_journal.h).
 *
 * What it is for. The store commits a message by appending a record
 * here instead of creating, renaming and unlinking a file per message: many
 * callers' records share one fdatasync (group commit), and a pre-written
 * segment file never changes size, so a commit needs no file-system
 * metadata. What the records mean (message, progress, retire) is the
 * caller's business; the journal stores typed, CRC'd byte strings.
 *
 * Who may call it. One process owns a journal directory (the queue
 * process); nothing here locks the directory against a second process.
 * journal_append, journal_append_wait, journal_read and
 * journal_retire_segment are thread-safe. One writer thread, started by
 * journal_open, does every write and sync of records; completion callbacks
 * run on that thread and must not block on the journal (no
 * journal_append_wait, no journal_close from a callback).
 *
 * On disk. A directory of fixed-size segment files:
 *   seg-<16 hex digits>  a segment, named by its sequence number (seq;
 *                        increasing, never reused);
 *   free-<16 hex digits> a retired segment kept for reuse (the number is
 *                        only a name; its header still holds its old seq);
 *   seg.new, free.new    a segment or a spare being made (a leftover is
 *                        removed at open).
 * Integers are little-endian. A segment starts with a 64-byte header:
 *   0 "TERNJSEG"  8 version (u32, 1)  12 header size (u32, 64)  16 seq (u64)
 *   24 segment size (u64)  32..59 zero  60 CRC-32 of bytes 0..59.
 * Records follow from offset 64, each at an 8-byte aligned offset:
 *   0 CRC-32 (u32) of bytes 4..23 and the payload   4 payload length (u32)
 *   8 type (u32)   12 zero (u32)   16 the segment's seq (u64)   24 payload,
 *   then zero padding to a multiple of 8.
 * The CRC is queue_file_crc32's (the polynomial of the queue files). The seq
 * in each record tells a record of this segment from a stale one left in a
 * recycled file. Type JOURNAL_TYPE_SEAL (internal) ends a segment: the
 * writer seals a segment, and syncs the seal, before it writes anything to
 * the next one. The rest of a segment after its last record is free space
 * (zeros, or stale bytes of a recycled file): never data.
 *
 * Durability promise. When journal_append's callback reports 0 (or
 * journal_append_wait returns 0), the record and every record appended
 * before it are on stable storage: the fdatasync that followed their write
 * returned 0. A new segment's header and name are synced (file, then
 * directory) before its first record is written.
 *
 * Failures. A failed write or fdatasync fails every record of its batch
 * (the caller answers 451), and the journal then refuses every further
 * append with that errno until it is closed and reopened: after a failed
 * write-back the kernel may have dropped the dirty pages and marked them
 * clean, so a retried fdatasync could report success for data that never
 * reached the disk ("fsyncgate"). Reopening rereads what is really on disk.
 * A record reported failed may still be found at the next open (its bytes
 * may have reached the disk): callers get at-least-once, as a client that
 * retries after a 451 does. When a new segment cannot be made (ENOSPC,
 * EDQUOT, ...) the records that do not fit the current segment fail with
 * that errno, the journal is not poisoned, and the next append tries again.
 *
 * Recovery (journal_open). Segments are scanned in seq order; every valid
 * record is handed to the replay callback, in order. In the newest segment
 * the first invalid record (torn or never written) is the end of the log.
 * A segment that is not the newest must end with a seal; an invalid record
 * before its seal is corruption (a torn write cannot cause it, since the
 * seal was synced after everything before it and before anything after
 * it): the rest of that segment is skipped, and the scan goes on with the
 * next segment. It is logged and counted in struct journal_recovery, so
 * the caller (the store) can decide to refuse to start; the journal itself
 * does not, because one bad sector should not stop every other message.
 * The newest segment is then sealed at its end and appends go to a fresh
 * segment: writing after a cut could make stale, never-acknowledged records
 * that follow the cut valid again.
 *
 * Records are bounded (journal_options.max_record, 1 MiB by default;
 * larger ones fail with EMSGSIZE). How large messages are stored (their own
 * files, or streamed into reserved space) is a later design question. */
#ifndef TERN_SPOOL_JOURNAL_H
#define TERN_SPOOL_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#define JOURNAL_SEGMENT_SIZE_DEFAULT (64u << 20)
#define JOURNAL_MAX_RECORD_DEFAULT (1u << 20)
#define JOURNAL_SEGMENT_HEADER 64u
#define JOURNAL_RECORD_HEADER 24u
#define JOURNAL_TYPE_MAX 0xFFFFu        /* caller types are 1..JOURNAL_TYPE_MAX */
#define JOURNAL_TYPE_SEAL 0xFFFFFFFFu   /* internal: end of a segment */

struct journal;

/* Where a record is: its segment's seq and its offset in that segment. */
struct journal_addr {
    uint64_t seg;
    uint32_t off;
};

struct journal_options {
    uint64_t segment_size; /* 0: JOURNAL_SEGMENT_SIZE_DEFAULT; a multiple of 4096, >= 64 KiB */
    uint32_t max_record;   /* 0: JOURNAL_MAX_RECORD_DEFAULT; must fit an empty segment */
};

/* What journal_open found. */
struct journal_recovery {
    uint64_t records;          /* valid records delivered */
    uint64_t segments;         /* segments scanned */
    uint64_t corrupt_segments; /* old segments with an invalid record before their seal */
    struct journal_addr first_corrupt; /* the first such record (when corrupt_segments > 0) */
    int tail_cut;              /* 1: the newest segment ended in a torn or invalid record */
};

/* A recovered record, in log order. Return 0 to go on, or -1 with errno
 * set to make journal_open fail with that errno. data is valid only during
 * the call. */
typedef int (*journal_replay_fn)(void *arg, uint32_t type, const void *data, size_t len,
                                 struct journal_addr addr);

/* The outcome of one append: err 0 (durable, at addr) or an errno. Called
 * on the writer thread. */
typedef void (*journal_done_fn)(void *arg, int err, struct journal_addr addr);

/* Opens (creating the directory's first segment when empty) the journal in
 * dir, which must exist, replays every valid record through replay (may be
 * NULL), fills *rec (may be NULL), and starts the writer thread. 0, or -1
 * with errno (EINVAL: bad options or a segment of another size; EBADMSG: a
 * segment header that is not ours; errors of the file system). */
int journal_open(struct journal **out, const char *dir, const struct journal_options *opt,
                 journal_replay_fn replay, void *arg, struct journal_recovery *rec);

/* The segment size of the journal in dir (from the first segment or free
 * file with a valid header), or 0 when it has none: a journal keeps the
 * size it was made with. */
uint64_t journal_existing_segment_size(const char *dir);

/* Reads the journal in dir without changing anything (no writer, no
 * seal): every valid record of every segment, in log order, to replay
 * (a torn or damaged record ends its segment's scan). For readers while
 * the owner is stopped (`tern queue`); with the owner running it sees a
 * valid prefix of the log. 0, or -1 with errno. */
int journal_scan(const char *dir, journal_replay_fn replay, void *arg);

/* Queues a record (data is copied) and returns: 0, and cb(arg, ...) is
 * called exactly once later; or -1 with errno and cb is never called
 * (EMSGSIZE: longer than max_record; EINVAL: type outside 1..JOURNAL_TYPE_MAX;
 * the poisoning errno after a failed write or sync; ESHUTDOWN: closing). */
int journal_append(struct journal *j, uint32_t type, const void *data, size_t len, journal_done_fn cb,
                   void *arg);

/* journal_append for a record nobody waits for (progress, a message done):
 * the writer writes it at once (so a crash of the process loses it not:
 * it is in the page cache) but holds its fdatasync up to JOURNAL_LAZY_MS
 * for a record that someone waits for, so that both share one sync
 * instead of paying one each. The same promise when cb reports 0; the
 * report just comes later. */
#define JOURNAL_LAZY_MS 20
int journal_append_lazy(struct journal *j, uint32_t type, const void *data, size_t len, journal_done_fn cb,
                        void *arg);

/* journal_append that waits for the outcome: 0 when durable (*addr, may be
 * NULL, gets the address), or -1 with errno. */
int journal_append_wait(struct journal *j, uint32_t type, const void *data, size_t len,
                        struct journal_addr *addr);

/* Reads the durable record at addr: its type to *type, its length to *len,
 * and its payload to buf when it fits cap (else ENOBUFS, with *len set).
 * 0, or -1 with errno (ENOENT: no such segment, or an address not yet
 * durable; EBADMSG: no valid record there). */
int journal_read(struct journal *j, struct journal_addr addr, uint32_t *type, void *buf, size_t cap,
                 size_t *len);

/* The caller says no live record is left in segment seq: its file is
 * renamed to a free name (and the directory synced) to be reused for a
 * later segment, never unlinked. 0, or -1 with errno (ENOENT: no such
 * segment; EBUSY: the segment being appended to). */
int journal_retire_segment(struct journal *j, uint64_t seq);

/* Makes free files (zero-filled segments, header seq 0) until at least
 * want are ready, so that the writer's next rollovers need not write a
 * whole segment while commits wait. Meant for a caller's background thread
 * or timer (e.g. after each rollover): a disk too full for the next
 * segment shows up here (ENOSPC), before the current segment fills. The
 * writer makes a segment itself when none is ready. 0, or -1 with errno. */
int journal_prepare_spare(struct journal *j, unsigned want);

/* The seqs of the segments in use (not free), ascending, in a new array
 * (*seqs, the caller frees it); returns how many. */
size_t journal_segments(struct journal *j, uint64_t **seqs);

/* The seq of the segment being appended to (0 before the first one). */
uint64_t journal_current_segment(struct journal *j);

/* Writes (and completes) the records already queued, stops the writer
 * thread, closes every file. No other call on j may run during or after
 * it (an append racing with it gets ESHUTDOWN at best). NULL is a no-op. */
void journal_close(struct journal *j);

#endif
