/* mime_downgrade: turn a message with 8-bit octets into 7-bit MIME, so that
 * the SMTP client can relay it to a server that does not offer 8BITMIME
 * (RFC 6152 section 3, RFC 1652) instead of bouncing it with 5.6.3.
 *
 * Called by the SMTP client (queue process) when the content has 8-bit octets
 * and the server did not announce 8BITMIME. The module reads the queued
 * content with pread() only, streams the converted copy into a file the
 * caller owns (an unlinked temp file), keeps no state between calls, never
 * logs, and holds at most a few fixed-size buffers plus bounded header
 * values (see the end of this comment) whatever the message size.
 *
 * What it changes (everything else is copied byte for byte):
 *  - A content with no 8-bit octet at all is copied unchanged.
 *  - A leaf part (not multipart, not message) whose body has 8-bit octets and
 *    whose Content-Transfer-Encoding is absent, 7bit, 8bit or binary is
 *    re-encoded quoted-printable (RFC 2045 6.7) and labelled so: the first
 *    CTE field is replaced where it stands, later duplicates are dropped, or
 *    the field is added at the end of the part's header. Such a part without
 *    any Content-Type also gets "Content-Type: text/plain; charset=unknown-8bit"
 *    (RFC 1428; what sendmail does), because the default us-ascii would be a
 *    lie about the decoded octets.
 *  - The top-level header, and that of a message/rfc822 part being converted,
 *    gets "MIME-Version: 1.0" when it has none. Content-Type is honoured even
 *    without MIME-Version (as Postfix and mail readers do).
 *  - A multipart or message/rfc822 (or message/global) part labelled 8bit or
 *    binary is relabelled 7bit, and so is a leaf labelled 8bit or binary
 *    whose body has no 8-bit octet.
 *  - A multipart preamble or epilogue with 8-bit octets is quoted-printable
 *    encoded too: mail readers ignore that text (RFC 2046 5.1.1), so this
 *    keeps every octet recoverable rather than bouncing the whole message.
 *  - The encoder keeps the original line breaks as hard breaks (a bare LF
 *    also counts as one and is written CRLF; a bare CR becomes =0D), keeps
 *    encoded lines within 76 characters with soft breaks, and encodes a '-',
 *    '.' or 'F' that would start a line (also after a soft break), so that
 *    no encoded line can look like a MIME boundary, an SMTP end of data, or
 *    an mbox "From " separator.
 *  - Structure is not repaired: a missing close delimiter stays missing.
 *
 * When it gives up (MIME_DG_IMPOSSIBLE, *reason says why, for the DSN):
 * 8-bit octets in the top-level header, a part header or a delimiter line;
 * in a part already encoded base64, quoted-printable or with an unknown
 * encoding; in a message/(any) part other than rfc822/global; in a multipart
 * without a usable boundary (1 to 200 octets), or labelled with an encoding
 * a composite type may not have; nesting deeper than MIME_DG_MAX_DEPTH
 * (counting multipart and message/rfc822 levels); a Content-Type or
 * Content-Transfer-Encoding field longer than MIME_DG_MAX_FIELD unfolded;
 * a header ended by a non-field line that has 8-bit octets (the sender forgot
 * the empty line, and encoding it would turn header into body).
 *
 * Line ends are CRLF; a bare LF is read as a line end too (as msg_header
 * does), but what this module adds or encodes always uses CRLF. Boundaries
 * are matched as a prefix of the line (RFC 2046 5.1.1), the innermost open
 * one first. Each nesting level re-reads its part once to find where it
 * ends and whether it has 8-bit octets, so the work is bounded by
 * (MIME_DG_MAX_DEPTH + 3) reads of the content; memory by a 64 KiB read
 * window, a 64 KiB output buffer and one header field per level. */
#ifndef TERN_MSG_MIME_DOWNGRADE_H
#define TERN_MSG_MIME_DOWNGRADE_H

#include <stdint.h>

#define MIME_DG_IMPOSSIBLE 1
#define MIME_DG_MAX_DEPTH 20
#define MIME_DG_MAX_FIELD 16384

/* Converts the content in in_fd at [offset, offset + length) (an RFC 5322
 * message, CRLF lines, already dot-unstuffed) into 7-bit form, written to
 * out_fd from its current position with fsops_write_all(). Returns 0 with
 * *out_len set to the bytes written; MIME_DG_IMPOSSIBLE with *reason (a
 * static string, when reason is not NULL) when it cannot be made 7-bit, in
 * which case out_fd holds garbage; -1 with errno on a read or write error
 * (EIO when the file is shorter than offset + length, EOVERFLOW when the
 * range does not fit an off_t). *out_len is set only on success; out_len and
 * reason may be NULL. */
int mime_downgrade(int in_fd, uint64_t offset, uint64_t length, int out_fd,
                   uint64_t *out_len, const char **reason);

/* 1 when [offset, offset + length) of fd has an octet >= 0x80, 0 when not,
 * -1 with errno on a read error (EIO for a short file). */
int mime_downgrade_has_8bit(int fd, uint64_t offset, uint64_t length);

#endif
