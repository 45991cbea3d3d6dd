/* rfc5322_addr: addresses out of message header fields (RFC 5322 3.4, 4.4; RFC 6854).
 *
 * For: "sendmail -t" (recipients from To:/Cc:/Bcc:), smtpd's From: sanity check,
 * and DMARC (the From: domain). Any module may call it; it owns nothing beyond the
 * arrays it returns, keeps no state, and never logs. Input may be hostile network
 * bytes: it is scanned once, left to right, with no recursion; comment nesting is
 * bounded by RFC5322_MAX_COMMENT_DEPTH.
 *
 * Errors are not reported as such: an address-list item with a syntax error is
 * skipped (up to the next top-level comma, treating a group as one item) and the
 * rest of the list is still extracted. rfc5322_addr_from_valid() is the strict check.
 *
 * What is accepted (the "interpretation" grammar of RFC 5322 section 4, leniently):
 *  - addr-spec, name-addr ("Name <a@b>"), display names of atoms, quoted strings and
 *    dots ("J. Doe <j@x>"), comments anywhere between tokens, nested;
 *  - groups "name: a@b, c@d;" and empty ones "undisclosed-recipients:;"; a group not
 *    closed by ';' before the end of the value is closed there (lenient);
 *  - obsolete forms: a source route in an angle addr ("<@r1,@r2:a@b>", route
 *    dropped), CFWS around dots, quoted words in local parts, null list members;
 *  - an addr-spec without "@domain" ("root", "<root>"): returned as the bare local
 *    part without '@', and the caller appends "@" + myorigin (Postfix does the same);
 *  - consecutive, leading or trailing dots in a local part (lenient; the result is
 *    quoted, see below);
 *  - UTF-8 (any byte >= 0x80) in atoms, quoted strings, comments and domain
 *    literals (RFC 6532 3.2);
 *  - folded or unfolded values: CRLF then SP/HTAB is folding. LF then SP/HTAB is
 *    taken as folding too, and a stray CR or LF as white space, but either makes
 *    the value invalid for rfc5322_addr_from_valid (pass values unfolded, as
 *    msg_header_scan returns them).
 * Valid but not returned: a local part holding control characters or a tab
 *  (obs-qtext, obs-qp) and a domain literal with obs-dtext (quoted-pairs,
 *  controls). RFC 5322 4 says to honour them when reading, so rfc5322_addr_from_valid
 *  accepts them, but SMTP cannot carry them and a control character in a
 *  recipient is a hazard further down.
 * Refused (the item is skipped): an empty angle addr "<>", a domain that is not
 *  dot-separated atoms or a [domain-literal], a group inside a group, missing
 *  commas between addresses, bytes that fit no token (a stray ')', ']', '\' or
 *  control character outside quotes and comments).
 *
 * Output form of each address: "local@domain" as RFC 5321 wants it in a path: the
 * local part is a dot-atom when it can be one, otherwise a quoted string with '"'
 * and '\' backslash-escaped ("\"Doe, J\"@x" stays quoted); CFWS, quoted-pairs and
 * folding are resolved; case is preserved. Domain literals are returned with their
 * brackets and without inner white space. */
#ifndef TERN_MSG_RFC5322_ADDR_H
#define TERN_MSG_RFC5322_ADDR_H

#include <stddef.h>

/* Deeper comment nesting than this makes the item a syntax error. */
#define RFC5322_MAX_COMMENT_DEPTH 32

/* Extracts the addresses of an address-list field value (the part after the colon,
 * folded or unfolded, NUL-terminated). Returns the number of addresses, and sets
 * *addrs to a malloc'd array of that many malloc'd strings (NULL when there are
 * none) and *n to the same count. A NULL value yields 0. Never fails otherwise. */
int rfc5322_addr_list(const char *value, char ***addrs, size_t *n);
void rfc5322_addr_list_free(char **addrs, size_t n);

/* True (1) if value is a valid From: field body: a mailbox-list, or an address-list
 * as RFC 6854 allows, with at least one address, every item correct, none of the
 * lenient extras above (missing domain, unclosed group, stray dots in a local
 * part, a CR or LF that is neither CRLF folding nor quoted by a backslash: an
 * obs-qp, RFC 5322 4.1, which is_email calls deprecated but valid), and no domain label that starts or
 * ends with '-' (not a host name; such an address is still extracted). The
 * obsolete forms RFC 5322 section 4 says must be honoured are valid. A group
 * counts as an address even when it is empty ("From: Nightly Monitor Robot:;" is
 * the RFC 6854 example); a caller that needs a replyable mailbox extracts the
 * list and checks its count. */
int rfc5322_addr_from_valid(const char *value);

#endif
