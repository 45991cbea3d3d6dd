/* cleanup: turns decoded message content into the content of a queue file.
 *
 * Fed canonical content (CRLF lines, dot-stuffing undone) by smtpd or by the
 * sendmail pickup, it holds the header section in memory (bounded by
 * header_size_limit), then writes to the queue file: our Received: field,
 * the original header, the fields a local client's message lacks (From:,
 * Date:, Message-ID:, as Postfix does), and the body as it streams in.
 * It reports what later checks need: Message-ID, whether there was a From:,
 * the hop count, the size; for `sendmail -t` it extracts the To/Cc/Bcc
 * recipients and drops Bcc. I/O errors keep their errno for the caller's
 * 452/451 reply. */
#ifndef TERN_MSG_CLEANUP_H
#define TERN_MSG_CLEANUP_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct queue_file_writer;

/* Who watches the content go by (smtpd's mail authentication: DKIM hashes
 * the header and body, DMARC reads From:, our own Authentication-Results
 * claims are dropped). */
struct cleanup_observer {
    /* Once, when the header is complete: the header section exactly as the
     * client sent it (without the empty line; before our Received: and any
     * added field is written). It may remove whole fields in place and
     * returns the new length. */
    size_t (*header)(void *arg, char *header, size_t len);
    /* The body after the empty line, as it is written, in pieces. */
    void (*body)(void *arg, const char *data, size_t len);
    void *arg;
};

struct cleanup_opts {
    const char *queue_id;
    const char *myhostname;
    const char *myorigin;
    const char *sender;            /* envelope sender ("" for <>) */
    const char *full_name;         /* for an added From: (sendmail -F); NULL if none */
    int add_missing_headers;       /* local client or sendmail: complete the header */
    int extract_recipients;        /* sendmail -t */
    char *received;                /* the complete Received: field (CRLF), or NULL; owned by caller */
    size_t header_size_limit;
    uint64_t message_size_limit;   /* 0 = unlimited */
    time_t now;
    const struct cleanup_observer *observer;   /* NULL: none */
};

enum cleanup_status {
    CLEANUP_OK = 0,
    CLEANUP_TOO_BIG,               /* 552 5.3.4 */
    CLEANUP_HEADER_TOO_BIG,        /* 552 5.3.4 */
    CLEANUP_WRITE_ERROR,           /* 452 4.3.1 (ENOSPC/EDQUOT) or 451 4.3.0: see error_errno */
};

struct cleanup_result {
    enum cleanup_status status;
    int error_errno;
    uint64_t size;                 /* bytes written as content */
    char *message_id;              /* from the header or added; NULL if none */
    int had_from;                  /* the original header had From: */
    int hops;                      /* Received: fields in the original header */
    int has_8bit;
    char **rcpts;                  /* sendmail -t: extracted recipients */
    size_t nrcpts;
};

struct cleanup;
/* w NULL: nothing is written, the content is only checked (sendmail does
 * this before it commits a drop file, so what pickup would refuse is
 * refused at the door by the same rules). */
struct cleanup *cleanup_new(struct queue_file_writer *w, const struct cleanup_opts *o);
/* Feeds content. After an error the rest is counted and dropped. */
void cleanup_write(struct cleanup *c, const char *data, size_t len);
/* Ends the content and fills res (caller frees it with cleanup_result_free). */
void cleanup_finish(struct cleanup *c, struct cleanup_result *res);
void cleanup_free(struct cleanup *c);
void cleanup_result_free(struct cleanup_result *res);

#endif
