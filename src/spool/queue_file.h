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
 * while appending); qf_read reports where the valid data ends so the owner
 * can cut the torn tail off before appending again.
 *
 * Writers: smtpd and pickup create files with qf_writer_*; only the queue
 * process appends progress (queue_store owns that). Readers: the queue
 * process, the local delivery agent (content only), `tern queue`.
 * Errors: -1 with errno for I/O; invalid content is reported as text. */
#ifndef TERN_SPOOL_QUEUE_FILE_H
#define TERN_SPOOL_QUEUE_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "spool/queue_id.h"

#define QF_MAGIC "TERNQF01"
#define QF_HEADER_SIZE 16

enum qf_rcpt_state {
    QF_PENDING = 0,   /* not yet tried */
    QF_DELIVERED = 1, /* done: delivered or relayed */
    QF_DEFERRED = 2,  /* temporary failure: retry at next_try */
    QF_FAILED = 3,    /* permanent failure: done, sender to be notified */
    QF_EXPANDED = 4,  /* done: replaced by the recipients it expanded to */
};

/* DSN NOTIFY bits (RFC 3461); 0 = not given. */
enum { QF_NOTIFY_SUCCESS = 1, QF_NOTIFY_FAILURE = 2, QF_NOTIFY_DELAY = 4, QF_NOTIFY_NEVER = 8 };

struct qf_rcpt {
    char *addr;        /* envelope recipient */
    char *orcpt;       /* original recipient, "" if none */
    unsigned notify;
    int parent;        /* index of the recipient this one was expanded from, or -1 */
    enum qf_rcpt_state state;
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
};

struct qf_attr {
    char *name;
    char *value;
};

struct qf_message {
    char id[QUEUE_ID_LEN + 1];
    int64_t arrival_us;
    char *sender;                 /* "" for the null sender */
    struct qf_attr *attrs;        /* client, helo, protocol, body, smtputf8, ... */
    size_t nattrs, attrs_cap;
    struct qf_rcpt *rcpts;
    size_t nrcpt, rcpts_cap;
    uint64_t content_offset, content_length;
    uint64_t valid_end;           /* file offset just past the last valid record */
    uint64_t file_size;
};

/* Building an envelope in memory. */
void qf_message_init(struct qf_message *m, const char *id, int64_t arrival_us, const char *sender);
void qf_message_set_attr(struct qf_message *m, const char *name, const char *value);
const char *qf_message_attr(const struct qf_message *m, const char *name);   /* NULL if absent */
struct qf_rcpt *qf_message_add_rcpt(struct qf_message *m, const char *addr, const char *orcpt,
                                    unsigned notify, int parent);
void qf_message_free(struct qf_message *m);
/* Count of recipients still to be delivered (pending or deferred). */
size_t qf_message_open_rcpts(const struct qf_message *m);

/* Writing a new queue file (smtpd, pickup). Content is buffered. */
struct qf_writer;
int qf_writer_open(int dirfd, const char *name, struct qf_writer **out);
int qf_writer_write(struct qf_writer *w, const void *data, size_t len);
uint64_t qf_writer_length(const struct qf_writer *w);
/* Flushes content, writes the envelope of m and the end record, then the
 * envelope offset. Closes the file; does not sync (the queue does that). */
int qf_writer_finish(struct qf_writer *w, struct qf_message *m);
/* Closes and removes the file. */
void qf_writer_abort(struct qf_writer *w);

/* Reading. Returns 0 and fills m; -1 with a reason in err when the file is
 * invalid or unreadable. m is left empty (freeable) on failure.
 * qf_read_path also refuses a file whose name is not the id it records
 * (qf_read_fd has no name: its callers compare m->id themselves). */
int qf_read_fd(int fd, struct qf_message *m, char *err, size_t errlen);
int qf_read_path(const char *path, struct qf_message *m, char *err, size_t errlen);

/* Progress records, appended at m->valid_end (the caller keeps valid_end
 * current in m). */
int qf_append_status(int fd, struct qf_message *m, size_t rcpt_index);
int qf_append_rcpt(int fd, struct qf_message *m, size_t rcpt_index);

uint32_t qf_crc32(uint32_t crc, const void *data, size_t len);
const char *qf_state_name(enum qf_rcpt_state s);

#endif
