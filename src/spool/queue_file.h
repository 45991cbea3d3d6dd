/* queue_file: the on-disk format of one queued message, and nothing else.
 *
 * A queue file validates itself:
 *
 *   offset 0   "TERNQF01"                      magic and format version
 *   offset 8   u64 LE: offset of the envelope  (0 until the writer finishes)
 *   offset 16  the message content            (SMTP wire form: CRLF, dot-unstuffed)
 *   envelope   records ... 'E' (end) record
 *   progress   'D' status and 'X' added-recipient records, appended later
 *
 * A record is: u8 type, u32 LE payload length, payload, u32 LE CRC-32 of the
 * type, length and payload. A file is valid when its header is intact and its
 * envelope reaches an 'E' record whose recipient count matches. Progress
 * records after 'E' are read until the first torn or corrupt one (a crash
 * while appending); queue_file_read reports where the valid data ends so the owner
 * can cut the torn tail off before appending again.
 *
 * Writers: smtpd and pickup create files with queue_file_writer_*; only the queue
 * process appends progress (queue_store owns that). Readers: the queue
 * process, the local delivery agent (content only), `tern queue`.
 * Errors: -1 with errno for I/O; invalid content is reported as text. */
#ifndef TERN_SPOOL_QUEUE_FILE_H
#define TERN_SPOOL_QUEUE_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "spool/queue_id.h"

struct strbuf;

#define QF_MAGIC "TERNQF01"
#define QF_HEADER_SIZE 16

enum queue_file_rcpt_state {
    QF_PENDING = 0,   /* not yet tried */
    QF_DELIVERED = 1, /* done: delivered or relayed */
    QF_DEFERRED = 2,  /* temporary failure: retry at next_try */
    QF_FAILED = 3,    /* permanent failure: done, sender to be notified */
    QF_EXPANDED = 4,  /* done: replaced by the recipients it expanded to */
};

/* DSN NOTIFY bits (RFC 3461); 0 = not given. */
enum { QF_NOTIFY_SUCCESS = 1, QF_NOTIFY_FAILURE = 2, QF_NOTIFY_DELAY = 4, QF_NOTIFY_NEVER = 8 };

struct queue_file_rcpt {
    char *addr;        /* envelope recipient */
    char *orcpt;       /* original recipient, "" if none */
    unsigned notify;
    int parent;        /* index of the recipient this one was expanded from, or -1 */
    enum queue_file_rcpt_state state;
    uint32_t attempts;
    int64_t next_try;  /* unix seconds; 0 = now */
    int64_t last_try;
    char *dsn;         /* enhanced status of the last attempt, "" if none */
    char *reason;      /* text of the last attempt, "" if none */
    /* When the last attempt talked to another server (relay): */
    char *remote_mta;  /* its host name, "" if none (local delivery, DNS failure ...) */
    char *diag;        /* its reply, "550 5.1.1 <a@b>: User unknown"; "" if none */
    unsigned flags;    /* QF_RCPT_* */
};

/* The next hop accepted the recipient with our NOTIFY parameter (it spoke
 * DSN), so notices for it are that server's job from here on (RFC 3461
 * §5.2.2); without it a success is "relayed" (§6.3.1). */
enum {
    QF_RCPT_REMOTE_DSN = 1,
    QF_RCPT_DELAY_WARNED = 2,   /* a delay notice told the sender about it */
    /* virtual_alias_maps has been applied to this address (it came out of
     * an expansion that did, or it is a local user an alias named) */
    QF_RCPT_VIRTUAL_DONE = 4,
    /* it came out of virtual_alias_maps: local aliases still apply to it */
    QF_RCPT_FROM_VIRTUAL = 8,
};

/* The envelope attribute holding header fields (CRLF lines) that every
 * delivery writes above the content: what smtpd learns only at the end of
 * the message (Authentication-Results) when the header is already written. */
#define QF_ATTR_PREPEND "prepend"
/* The envelope attribute that sends a message to hold/ as it is committed,
 * and says why (smtpd_end_of_data_restrictions: a DMARC quarantine). */
#define QF_ATTR_HOLD "hold_reason"
/* Present when the queue may sign the message with DKIM: it came from
 * mynetworks, an authenticated client or a local user (qmgr_dkim.h). */
#define QF_ATTR_DKIM_SIGN "dkim_sign"

struct queue_file_attr {
    char *name;
    char *value;
};

struct queue_file_message {
    char id[QUEUE_ID_LEN + 1];
    int64_t arrival_us;
    char *sender;                 /* "" for the null sender */
    struct queue_file_attr *attrs;        /* client, helo, protocol, body, smtputf8, ... */
    size_t nattrs, attrs_cap;
    struct queue_file_rcpt *rcpts;
    size_t nrcpt, rcpts_cap;
    uint64_t content_offset, content_length;
    uint64_t valid_end;           /* file offset just past the last valid record */
    uint64_t file_size;
};

/* Building an envelope in memory. */
void queue_file_message_init(struct queue_file_message *m, const char *id, int64_t arrival_us, const char *sender);
void queue_file_message_set_attr(struct queue_file_message *m, const char *name, const char *value);
const char *queue_file_message_attr(const struct queue_file_message *m, const char *name);   /* NULL if absent */
struct queue_file_rcpt *queue_file_message_add_rcpt(struct queue_file_message *m, const char *addr, const char *orcpt,
                                    unsigned notify, int parent);
void queue_file_message_free(struct queue_file_message *m);
/* Count of recipients still to be delivered (pending or deferred). */
size_t queue_file_message_open_rcpts(const struct queue_file_message *m);

/* Writing a new queue file (smtpd, pickup). Content is buffered. */
struct queue_file_writer;
int queue_file_writer_open(int dirfd, const char *name, struct queue_file_writer **out);
/* The largest queue file handed from one process to another in memory
 * (smtpd to the queue): larger ones are files; the queue refuses a larger
 * memfd. */
#define QF_MEMORY_MAX (1024u * 1024)
/* Where a writer may keep its file in memory: at most max bytes, and, when
 * charge is set, only as far as charge(arg, bytes) grants each growth (0:
 * granted; -1: the file moves to its directory instead). What was granted
 * goes back through release(arg, bytes) when the file leaves memory, or
 * passes to the caller of queue_file_writer_finish_memory with the
 * descriptor. */
struct queue_file_memory {
    size_t max;
    int (*charge)(void *arg, size_t bytes);
    void (*release)(void *arg, size_t bytes);
    void *arg;
};
/* The same as queue_file_writer_open, but the file is kept in memory while
 * mem allows (in the writer's buffer, then in a memfd, never executable, if
 * it outgrows it), and moves to dirfd/name when it does not, or when no
 * memfd can be made. */
int queue_file_writer_open_memory(int dirfd, const char *name, const struct queue_file_memory *mem,
                                  struct queue_file_writer **out);
int queue_file_writer_write(struct queue_file_writer *w, const void *data, size_t len);
uint64_t queue_file_writer_length(const struct queue_file_writer *w);
/* Writes what is buffered and the envelope of m with its end record, and
 * fills in the envelope's offset (one write for a file that fits the
 * writer's 64 KiB buffer, the header included). Closes the file; does not
 * sync (the queue does that). */
int queue_file_writer_finish(struct queue_file_writer *w, struct queue_file_message *m);
/* The same; when the file is still in memory, it is the caller's: appended
 * to *bytes when bytes is not NULL and the whole file, of at most bytes_max
 * bytes, never left the writer's buffer (then *memfd is -1: one copy, no
 * descriptor), else in *memfd, sealed against any change (F_SEAL_WRITE,
 * _GROW, _SHRINK, _SEAL), for the caller to hand over; *charged (if not
 * NULL) gets the bytes of the memory budget it holds, for the caller to
 * release once the file is gone (NULL: released now). When the file is not
 * in memory, *memfd is -1, bytes untouched: the file is dirfd/name, as with
 * queue_file_writer_finish (which moves a file still in memory there). */
int queue_file_writer_finish_memory(struct queue_file_writer *w, struct queue_file_message *m, int *memfd,
                                    size_t *charged, struct strbuf *bytes, size_t bytes_max);
/* Closes and removes the file (a memfd: closes it). */
void queue_file_writer_abort(struct queue_file_writer *w);

/* Reading. Returns 0 and fills m; -1 with a reason in err when the file is
 * invalid or unreadable. m is left empty (freeable) on failure.
 * queue_file_read_path also refuses a file whose name is not the id it records
 * (queue_file_read_fd has no name: its callers compare m->id themselves). */
int queue_file_read_fd(int fd, struct queue_file_message *m, char *err, size_t errlen);
int queue_file_read_path(const char *path, struct queue_file_message *m, char *err, size_t errlen);
/* The envelope of a queue file that starts at offset start of fd (a
 * journal segment holds one inside a record). The offsets in m are
 * relative to start. It reads only as far as the envelope needs, so the
 * progress records it applies may be cut short: m's states and valid_end
 * are not the file's (never truncate or append by them); for readers that
 * want the envelope (a command's environment). */
int queue_file_read_at(int fd, uint64_t start, struct queue_file_message *m, char *err, size_t errlen);
/* The same for a whole queue file held in memory (a journal record): the
 * offsets in m are offsets into data. */
int queue_file_read_mem(const void *data, size_t len, struct queue_file_message *m, char *err, size_t errlen);

/* Progress records, appended at m->valid_end (the caller keeps valid_end
 * current in m). */
int queue_file_append_status(int fd, struct queue_file_message *m, size_t rcpt_index);
int queue_file_append_rcpt(int fd, struct queue_file_message *m, size_t rcpt_index);

/* The same records as bytes, appended to out, for a store that keeps
 * progress elsewhere than at the file's end (the journal); and their
 * reading: queue_file_apply_progress applies such records to m; 0, or -1
 * when one is torn, corrupt or names a recipient m does not have. */
void queue_file_encode_status(const struct queue_file_message *m, size_t rcpt_index, struct strbuf *out);
void queue_file_encode_rcpt(const struct queue_file_message *m, size_t rcpt_index, struct strbuf *out);
int queue_file_apply_progress(struct queue_file_message *m, const void *data, size_t len);
/* A whole queue file for m, whose content is the len bytes at content:
 * header, content, an envelope naming every recipient (those added by
 * expansion too) and a status record for each one with progress. Reading it
 * back gives m as it is now (the journal's copy-forward). Appends to out. */
void queue_file_encode(const struct queue_file_message *m, const void *content, size_t len, struct strbuf *out);

uint32_t queue_file_crc32(uint32_t crc, const void *data, size_t len);
const char *queue_file_state_name(enum queue_file_rcpt_state s);

#endif
