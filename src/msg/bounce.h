/* bounce: compose delivery status notifications -- bounces, delay notices,
 * success notices (RFC 3464 in an RFC 6522 multipart/report, with the RFC 3461
 * DSN parameters, RFC 3834 Auto-Submitted, and the RFC 6533 "global" types for
 * SMTPUTF8 mail).
 *
 * The module is pure: it decides nothing about who gets a notice or when (the
 * queue does that), keeps no state, never logs, and owns only its temporaries.
 * The queue process calls bounce_write with a queue_file_writer opened for the notice's
 * own queue file; the notice is written as content (CRLF wire form, no dot
 * stuffing), and the caller then finishes the file with a null sender.
 *
 * The notice:
 *   From: "Mail Delivery System" <MAILER-DAEMON@myhostname>, To: <to>, a
 *   Subject by kind, Date, Message-ID <...notice_id@myhostname>,
 *   Auto-Submitted: auto-replied, multipart/report; report-type=delivery-status
 *   with (1) a text/plain explanation, (2) message/delivery-status (or
 *   message/global-delivery-status), (3) the original as message/rfc822 (or
 *   message/global), or only its header as text/rfc822-headers (or
 *   message/global-headers). Part 3 is left out when there is nothing to return.
 *
 * Decided where the RFCs leave room:
 *  - Only failure notices return the full original, and only when RET=FULL
 *    (return_headers_only == 0) and length <= max_returned; delay and success
 *    notices carry no failure and return the header only (RFC 3461 6.2).
 *  - A full original whose header is not ended by an empty line gets one
 *    inserted (before its first body line), so the returned part parses as a
 *    message; nothing else of it is changed.
 *  - DSN fields are sanitised: control characters become '?' (TAB, CR, LF a space);
 *    in message/delivery-status non-ASCII becomes '?', except addresses, which
 *    go out as "utf-8;" with \x{HEX} escapes (RFC 6533 utf-8-addr-xtext); in the
 *    global type valid UTF-8 is kept and non-ASCII addresses use "utf-8;". The
 *    text part keeps valid UTF-8 (charset=utf-8 then). Diagnostics are cut to
 *    BOUNCE_DIAG_MAX bytes ("..." appended). Fields fold at spaces to 78
 *    columns (a run of white space becomes one space); a word longer than a
 *    line is broken at 998 octets with a folding space.
 *  - Per-message fields in RFC 3464 order: Original-Envelope-Id,
 *    Reporting-MTA, Arrival-Date, then X-Tern-Queue-ID and X-Tern-Sender
 *    (extension fields come last).
 *  - A missing or malformed action/status falls back to the kind's default
 *    ("failed" 5.0.0, "delayed" 4.0.0, "delivered" 2.0.0), and a diagnostic
 *    without "type;" gets "x-tern; ": a notice is worth more than a refusal.
 *  - Will-Retry-Until is written only for "delayed" recipients in a delay
 *    notice (RFC 3464 2.3.9 forbids it elsewhere).
 *  - The MIME boundary is notice_id plus 96 random bits, and is checked
 *    against every part (generated text and the returned original) and
 *    regenerated if it occurs; a full return therefore reads the original
 *    twice (scan, then copy), in 64 KiB chunks. The original's header is
 *    looked for in its first MiB; a longer header is returned cut at a line
 *    end.
 *  - The returned part is labelled 8bit when it holds 8-bit octets; lines
 *    over 998 octets in the original are not looked for ("binary").
 *
 * Errors: -1 with errno: EINVAL for unusable arguments (no recipients, no
 * myhostname or to, a notice_id/myhostname that cannot make a Message-ID),
 * EIO when orig_fd ends before offset+length, EAGAIN when no boundary free
 * of the content was found (a broken random source), else the errno of the
 * failed read or of the writer. After a failure the caller aborts the writer. */
#ifndef TERN_MSG_BOUNCE_H
#define TERN_MSG_BOUNCE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "spool/queue_file.h"

/* Bytes of a diagnostic kept in a notice. */
#define BOUNCE_DIAG_MAX 1000

enum dsn_kind { DSN_FAILURE, DSN_DELAY, DSN_SUCCESS };

struct dsn_rcpt {
    const char *final_rcpt;    /* the recipient address as delivered/attempted */
    const char *orcpt;         /* "rfc822;addr" original recipient (ORCPT, xtext-decoded) or NULL */
    const char *action;        /* "failed", "delayed", "delivered", "relayed", "expanded" */
    const char *status;        /* enhanced code "5.1.1" */
    const char *remote_mta;    /* "dns; mx.example.net" or NULL (local delivery) */
    const char *diagnostic;    /* "smtp; 550 5.1.1 <x>: user unknown" or "x-tern; text" or NULL */
    time_t last_attempt;       /* 0 = none */
    time_t will_retry_until;   /* delay notices: when the message expires; 0 = omit */
};

struct dsn_info {
    enum dsn_kind kind;
    const char *myhostname;    /* Reporting-MTA: dns; myhostname; From: MAILER-DAEMON@myhostname */
    const char *mail_name;     /* "Tern"; NULL means "Tern" */
    const char *notice_id;     /* queue id of the notice itself (for Message-ID) */
    const char *orig_queue_id; /* X-Tern-Queue-ID of the original, or NULL */
    const char *orig_sender;   /* envelope sender of the original (X-Tern-Sender), or NULL */
    const char *to;            /* who gets the notice (the original sender, or postmaster) */
    time_t arrival;            /* Arrival-Date; 0 = omit */
    time_t now;                /* Date: of the notice */
    const char *envid;         /* Original-Envelope-Id (xtext-decoded ENVID), or NULL */
    int return_headers_only;   /* RET=HDRS, or the caller decided the message is too big */
    int smtputf8;              /* original needed SMTPUTF8: global types (RFC 6533) */
    uint64_t max_returned;     /* return the full original only when length <= this */
};

/* What was written, for the caller's envelope of the notice. */
struct bounce_report {
    int body_8bit;     /* the notice body holds 8-bit octets: queue it with BODY=8BITMIME */
    int header_8bit;   /* the notice header holds UTF-8 (To:): needs SMTPUTF8 */
    int returned_full; /* part 3 is the whole original */
    int returned_headers; /* part 3 is the original's header only */
};

/* Writes the complete notice (header + MIME body, CRLF) to w. Reads the
 * original from orig_fd at [offset, offset+length). Returns 0 or -1 with
 * errno (see above). */
int bounce_write(struct queue_file_writer *w, const struct dsn_info *info, const struct dsn_rcpt *rcpts, size_t n,
                 int orig_fd, uint64_t offset, uint64_t length);
/* The same, also filling *out (when not NULL). */
int bounce_write_report(struct queue_file_writer *w, const struct dsn_info *info, const struct dsn_rcpt *rcpts,
                        size_t n, int orig_fd, uint64_t offset, uint64_t length, struct bounce_report *out);

#ifdef TERN_TEST_BUILD
/* Replaces the source of the boundary's random bytes (NULL: the system's). */
void bounce_test_set_random(void (*fill)(unsigned char *buf, size_t len));
#endif

#endif
