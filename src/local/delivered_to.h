/* delivered_to: the local delivery agent's mail forwarding loop check, as
 * Postfix's local(8) makes it.
 *
 * Every local delivery writes "Delivered-To: ADDRESS" above the message (the
 * address delivered: the recipient, or the alias whose command or file
 * takes it). A message that comes back to the same address — a .forward to
 * a remote mailbox that forwards back, two hosts' aliases pointing at each
 * other — already carries that field, so it is bounced with 5.4.6 "mail
 * forwarding loop for ADDRESS" instead of going round until the hop count
 * stops it, with one more copy in the mailbox on every turn.
 *
 * Only the message's header counts: the fields the queue file prepends
 * (prepend) and the content's header, up to the first line that is empty or
 * is not a header field. A Delivered-To line quoted in the body (a bounce, a
 * forwarded message as text) is not a loop. Names and addresses compare
 * without regard to case; a folded value is unfolded and trimmed first. */
#ifndef TERN_LOCAL_DELIVERED_TO_H
#define TERN_LOCAL_DELIVERED_TO_H

#include <stddef.h>

#include "local/deliver.h"

/* Most header bytes read from the queue file; a header this long is cut
 * there (cleanup bounds headers far below it: header_size_limit). */
#define DELIVERED_TO_HEADER_MAX (1024 * 1024)

/* Whether text (len bytes; lines end in LF or CRLF) holds a Delivered-To
 * field equal to address in its header. *header_ended (may be NULL) is set
 * to 1 when the header ends inside text, 0 when text ends first. */
int delivered_to_in_text(const char *text, size_t len, const char *address, int *header_ended);

/* The check for a delivery: 1 when queued (the queue file's own fields,
 * may be NULL) or the header of the content in in->fd (in->offset,
 * in->length) holds Delivered-To: address; 0 when not; -1 when the queue
 * file cannot be read (err filled, temporary). With 1, err holds the
 * bounce: 5.4.6 "mail forwarding loop for ADDRESS". in->prepend is not
 * looked at: the caller's own Delivered-To is there. content (may be
 * NULL): with 0, the content when the check read all of it (a message of
 * at most DELIVERED_TO_FIRST_READ bytes takes one read; one whose header
 * runs to its end, up to DELIVERED_TO_HEADER_MAX, takes several), for the
 * caller's in->content (and to free); else NULL. */
#define DELIVERED_TO_FIRST_READ (64 * 1024)
int delivered_to_loop(const struct deliver_input *in, const char *queued, const char *address,
                      struct deliver_error *err, char **content);

/* The lines a local delivery writes above the message, in Postfix's order:
 * from_line (mbox "From ", may be NULL), "Return-Path: <sender>",
 * "X-Original-To: original" (the recipient as it arrived, before aliases
 * and virtual aliases; left out when original is NULL: with
 * enable_original_recipient = no), "Delivered-To: address", then queued
 * (the queue file's own fields, may be NULL). Malloc'd, LF line ends. */
char *delivered_to_prepend(const char *from_line, const char *sender, const char *original, const char *address,
                           const char *queued);

#endif
