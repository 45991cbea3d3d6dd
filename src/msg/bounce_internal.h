/* bounce_internal: the field formatting of delivery status notifications,
 * what bounce_fields.c gives bounce.c. Private to bounce.c: no other module
 * includes it (the queue calls bounce.h).
 *
 * bounce_fields.c turns untrusted values (addresses, diagnostics, names from
 * the envelope or a remote reply) into text fit for a notice: control
 * characters cleaned, UTF-8 kept only where the part may carry it, addresses
 * in the RFC 3464 / RFC 6533 forms, header fields folded to 78 columns and
 * never past 998 octets, diagnostics cut to BOUNCE_DIAG_MAX. bounce.c decides
 * what goes in the notice and where.
 *
 * The functions append to a strbuf, keep no state and cannot fail (memory
 * runs out through xmalloc); only bounce_date_value can return NULL. */
#ifndef TERN_MSG_BOUNCE_INTERNAL_H
#define TERN_MSG_BOUNCE_INTERNAL_H

#include <stddef.h>
#include <time.h>

#include "util/strbuf.h"

/* RFC 5322 2.1.1: a line MUST stay within 998 characters. */
#define BOUNCE_LINE_HARD 998

/* Appends s with line breaks and tabs as spaces, other control characters as
 * '?', and bytes >= 0x80 kept only as valid UTF-8 when allow_utf8 (else '?'),
 * stopping before max output bytes. Returns 1 if s was cut. */
int bounce_put_clean(struct strbuf *sb, const char *s, size_t max, int allow_utf8);

/* Length of the "type" before ';' at the start of s (an atom), 0 if none. */
size_t bounce_type_prefix_len(const char *s);

/* The text after "type;" of a typed value (leading spaces skipped), or all of it. */
const char *bounce_untyped(const char *s);

/* "Name: value\r\n" folded at spaces (runs of which are collapsed) so lines
 * stay within 78 columns when the words allow, and always within 998. */
void bounce_put_field(struct strbuf *sb, const char *name, const char *value);

/* A paragraph of the text part, word-wrapped to 76 columns, each line
 * starting with indent, ending in CRLF. */
void bounce_put_wrapped(struct strbuf *sb, const char *indent, const char *text);

/* The date-time of a DSN field (numeric zone, RFC 3464 2.2.5), or NULL;
 * the caller frees it. */
char *bounce_date_value(time_t t);

/* "Name: date-time\r\n", nothing when t cannot be formatted. */
void bounce_put_date_field(struct strbuf *sb, const char *name, time_t t);

/* The untyped text of a diagnostic, cleaned and cut to BOUNCE_DIAG_MAX bytes
 * with "..." appended when cut. */
void bounce_put_diagnostic(struct strbuf *sb, const char *diagnostic, int allow_utf8);

/* "type<sep>address" as RFC 3464 and RFC 6533 want it: a non-ASCII address
 * becomes "utf-8", escaped as utf-8-addr-xtext unless global (the RFC 6533
 * types), where "utf-8" escapes are undone instead. */
void bounce_put_address(struct strbuf *sb, const char *type, size_t type_len, const char *sep, const char *addr,
                        int global);

/* An ORCPT value, "addr-type;address" ("unknown" when it has no type). */
void bounce_put_orcpt(struct strbuf *sb, const char *orcpt, int global);

/* addr-spec for a header field: the local part quoted when it is not a
 * dot-atom (an envelope address may hold "john doe@x"). */
void bounce_put_mailbox(struct strbuf *sb, const char *addr);

#endif
