/* msg_header: inspect and complete a message's header before it is queued
 * ("cleanup" in Postfix terms).
 *
 * Called by the SMTP server (after DATA/BDAT) and by the sendmail pickup path. The
 * caller collects the header section (up to and including the empty line, or the
 * whole message when there is none) in memory, bounded by header_size_limit, then
 * scans it here and prepends the fields that are missing (Received:, and for local
 * submissions Date:, Message-ID:, From:) with the builders below. The module keeps
 * no state, never logs, and owns only the strings it returns (free them with
 * free(), or msg_header_info_free for a scan result).
 *
 * Scanning rules (RFC 5322 2.2, 3.5, 4.5), decided where the RFC leaves room:
 *  - Lines end in CRLF or bare LF (unit tests and "sendmail" input use LF); a CR
 *    right before the LF, or as the last byte of the input, belongs to the line end.
 *  - A field line is "name:" with name 1+ bytes of 33..126 except ':', optionally
 *    followed by white space before the colon (obsolete syntax, RFC 5322 4.5; must
 *    be honoured when reading). A continuation line starts with SP or HTAB, also
 *    one holding only white space (obs-FWS), as Postfix does.
 *  - The header section is absent when the first line is not a field line (a body
 *    line, or a continuation with nothing to continue): header_len = 0, the whole
 *    input is body, and malformed stays 0 -- Postfix treats such a message as all
 *    body and adds its headers in front. A first line that is empty is the
 *    separator of an empty header (header_len = 0, has_body_separator = 1).
 *  - After the first field, the section ends at the first empty line (the
 *    separator), or at the first line that is neither a field nor a continuation:
 *    that line starts the body and malformed = 1 (the sender forgot the empty line;
 *    a "From " mbox line or a mistyped field name lands here too).
 *  - Whenever has_body_separator is 0 the caller must write an empty line between
 *    the header it writes and the body (body_offset..len), or the body's first line
 *    would be read as a header by the next hop.
 *  - The has_* members count occurrences (a value > 1 is a duplicate, which RFC
 *    5322 3.6 forbids for From, Date, Message-ID, Sender, To, Cc, Bcc); message_id
 *    and from hold the first occurrence. Values are unfolded (each line end before
 *    a continuation removed, the leading white space kept) and trimmed of SP/HTAB.
 *  - A NUL byte in the header sets has_nul; a returned value stops at it.
 *
 * Builders return malloc'd, CRLF-terminated fields, folded at white space so that
 * lines stay within 78 bytes when the parts allow it; text that came from the
 * network (HELO name, client name, recipient) has control characters (and, where
 * a comment or atom would break, parentheses and white space) replaced with '?'
 * so it cannot end the field or forge another one. */
#ifndef TERN_MSG_MSG_HEADER_H
#define TERN_MSG_MSG_HEADER_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

struct msg_header_info {
    int has_from, has_date, has_message_id, has_sender, has_to, has_cc, has_bcc;
    int has_resent;         /* Resent-* fields */
    int received_count;     /* Received: fields (hop-count loop detection) */
    char *message_id;       /* first Message-ID value (unfolded, trimmed), NULL if none */
    char *from;             /* first From: value (unfolded, trimmed), NULL if none */
    int has_8bit;           /* a byte >= 0x80 in the header section */
    int has_nul;            /* a NUL byte in the header section */
    int malformed;          /* the section was ended by a non-field line, see above */
    size_t header_len;      /* bytes of the header section, without the separator line */
    int has_body_separator; /* the section ended with an empty line */
    size_t body_offset;     /* where the body starts: after the separator, if any */
};

/* Scans buf[0..len) (need not be NUL-terminated). Field names are matched
 * case-insensitively. Fills *out (call msg_header_info_free afterwards). Returns 0,
 * or -1 with *out zeroed when buf is NULL and len > 0. */
int msg_header_scan(const char *buf, size_t len, struct msg_header_info *out);
void msg_header_info_free(struct msg_header_info *h);

/* "Date: Wed, 25 Nov 2026 16:03:00 +0000 (UTC)\r\n" in the local time zone (TZ);
 * the "(zone)" comment only when the zone abbreviation is a short alphanumeric
 * (or +/-) name. NULL if t is before 1900 or cannot be converted to local time. */
char *msg_header_date(time_t t);

/* "Message-ID: <YYYYMMDDhhmmss.QUEUEID@myhostname>\r\n" with the current time in
 * UTC. NULL if queue_id is not a dot-atom-text or myhostname is not a dot-atom-text
 * or [literal] (the result must be a valid msg-id, RFC 5322 3.6.4). */
char *msg_header_message_id(const char *queue_id, const char *myhostname);

/* "From: Full Name <local@domain>\r\n", or "From: local@domain\r\n" when full_name
 * is NULL or blank. sender_addr is the envelope sender in the form Tern keeps
 * addresses (smtp_addr's canonical mailbox, rfc5322_addr_list's output): its local
 * part (before the last '@') is written unchanged when it is a dot-atom or a
 * quoted string, and quoted when it is neither (an unquoted "john doe@x"). The name
 * has control characters turned into spaces and white-space runs collapsed; it is
 * written as atoms when it can be, else as a quoted string, and as RFC 2047
 * Q-encoded words (charset UTF-8, or unknown-8bit when it is not valid UTF-8) when
 * it holds non-ASCII bytes, contains "=?", or has a run of more than 60 bytes
 * without a space (which could not be folded). NULL if sender_addr is empty or
 * holds a control character. */
char *msg_header_from(const char *sender_addr, const char *full_name);

struct msg_received {
    const char *helo;        /* NULL: client_name is used, as Postfix does */
    const char *client_name; /* NULL: "unknown" */
    const char *client_addr; /* NULL selects the local-submission form */
    const char *by_host;
    const char *protocol;    /* "SMTP", "ESMTP", "ESMTPS", "ESMTPSA", "UTF8SMTP"... */
    const char *queue_id;
    const char *for_rcpt;    /* NULL unless exactly one recipient */
    const char *tls_info;    /* NULL or "(using TLSv1.3 with cipher ...)" */
    const char *mail_name;   /* NULL: "Tern" */
    uid_t uid;               /* local form only: the submitting user */
    time_t when;
};

/* SMTP form:
 *   Received: from HELO (CLIENT_NAME [CLIENT_ADDR])\r\n
 *   \t(using TLSv1.3 ...)\r\n                          (when tls_info)
 *   \tby BY_HOST (MAIL_NAME) with PROTOCOL id QUEUE_ID\r\n
 *   \tfor <RCPT>; DATE\r\n                             (else "id QUEUE_ID; DATE")
 * Local form (client_addr NULL; helo, client_name, protocol, tls_info unused):
 *   Received: by BY_HOST (MAIL_NAME, from userid UID)\r\n
 *   \tid QUEUE_ID; DATE\r\n                            (or "\tid QUEUE_ID\r\n\tfor <RCPT>; DATE")
 * An IPv6 client_addr gets the "IPv6:" prefix of RFC 5321 address literals. Long
 * parts (a long HELO, tls_info) are folded at their spaces. NULL if the date cannot
 * be formatted (see msg_header_date). */
char *msg_header_received(const struct msg_received *r);

/* Removes every field called name (case-insensitive, with its continuation lines)
 * from the header section of buf[0..len), in place; the separator and body are kept
 * and moved up. The section is found with the rules of msg_header_scan. Returns the
 * new length. Used with "Bcc" for "sendmail -t". */
size_t msg_header_remove_field(char *buf, size_t len, const char *name);

#endif
