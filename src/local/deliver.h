/* deliver: what the local mailbox writers share — streaming one queued
 * message into a mailbox file, and the error record a delivery reports.
 *
 * The queue stores message content in SMTP wire form (CRLF line endings,
 * already dot-unstuffed); mailbox files use LF. deliver_copy() converts while
 * streaming, so a message of any size costs two 64 KiB buffers. It owns no
 * files: the caller opens the queue file and the output, and closes both.
 *
 * Callers: maildir_, mbox_, and the local delivery process (for example to
 * feed a pipe-to-command delivery). Every output write goes through fsops_write
 * (util/fsops.h) so tests can inject ENOSPC/EIO.
 *
 * Errors: deliver_copy() returns -1 with errno. deliver_error_* fill the
 * record a delivery hands back: all local mailbox failures are temporary
 * (4.2.2 when the mailbox or disk is full, 4.2.0 for permission and other
 * mailbox problems, 4.3.0 when the queue file cannot be read), because an
 * administrator can fix each of them and Postfix defers them too. */
#ifndef TERN_LOCAL_DELIVER_H
#define TERN_LOCAL_DELIVER_H

#include <sys/types.h>
#include <time.h>

struct deliver_input {
    int fd;              /* queue file, read with pread: the offset of fd is left alone */
    off_t offset;        /* where the content starts in fd */
    off_t length;        /* content bytes, wire form */
    /* the whole content (length bytes) when it has been read already (a
     * small message, by the Delivered-To check): copied from here instead
     * of read again; NULL: read from fd */
    const char *content;
    const char *prepend; /* LF-terminated header lines written first; NULL or "" for none */
    const char *sender;  /* envelope sender, "" for <> */
    time_t arrival;      /* when the queue accepted the message */
    /* mailbox_size_limit (0: none): an mbox may not grow past it, a Maildir
     * message or a file may not be larger. deliver_copy itself takes it as
     * the most bytes it may write; past them it fails with EFBIG, which
     * deliver_copy_reporting reports as a bounce, 5.2.2, as Postfix does. */
    off_t size_limit;
};

struct deliver_error {
    int temporary;  /* 1: defer and retry; 0: bounce */
    char enh[8];    /* enhanced status code, "4.2.0" */
    char text[256]; /* "cannot create maildir file ...: Permission denied"; a text too long
                       for it ends in "..." */
};

/* The name of the kernel's pseudo file system fd is on ("proc", "sysfs",
 * ...), or NULL for an ordinary one. A file a user names (an :include:, a
 * .forward, a /file target) is refused there: those files answer by who
 * asks and how (a /proc/PID/cwd link reaches past directories the user
 * cannot search), and they are no one's mail. */
const char *deliver_pseudo_fs(int fd);

/* Streams prepend + content (CRLF -> LF) to out_fd through fsops_write.
 * mbox_quote: mboxrd ">From " quoting — every output line matching ^>*From
 * (with the space) gets one more '>'. A CR not followed by LF is copied as is.
 * A prepend not ending in LF gets one, so the content starts a new line. The
 * output ends with a newline unless it is empty. *bytes_written (may be NULL)
 * receives the bytes written to out_fd, also on failure. Returns 0 or -1 with
 * errno; a queue file shorter than offset + length fails with EIO. */
int deliver_copy(const struct deliver_input *in, int out_fd, int mbox_quote, off_t *bytes_written);

/* deliver_copy() that also explains a failure in *err: a read failure of the
 * queue file is "4.3.0 cannot read queue file: ..."; a write failure is
 * deliver_error_errno(err, errno, "cannot write %s", out_name). errno is kept. */
int deliver_copy_reporting(const struct deliver_input *in, int out_fd, int mbox_quote,
                           off_t *bytes_written, const char *out_name, struct deliver_error *err);

/* Fills err (ignored when NULL) with the given code and formatted text. */
void deliver_error_set(struct deliver_error *err, int temporary, const char *enh,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* A temporary error for a failed file-system call: "4.2.2" (mailbox full) for
 * ENOSPC, EDQUOT and EFBIG, else "4.2.0"; text is "<fmt...>: strerror(errnum)".
 * errno is preserved. */
void deliver_error_errno(struct deliver_error *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
