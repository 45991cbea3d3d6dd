/* qmgr_owner: Postfix's owner-listname rule (aliases(5); owner_request_special,
 * on by default), for the queue manager (qmgr.c; private to the queue
 * process).
 *
 * When a local recipient "list@domain" is an alias and alias_maps also has
 * "owner-list", the addresses the list expands to are sent as a message of
 * their own whose envelope sender is "owner-list@domain": bounces and delay
 * notices for the list's members go to the list's owner, not to whoever
 * wrote to the list, as with Postfix (whose local agent resubmits the
 * expansion with that sender). The new message is a copy of the content
 * and of the queue file's attributes, committed as every message is;
 * the list recipient is recorded as expanded only once that commit has
 * succeeded (a failure defers it; a crash in between expands it again:
 * duplicates, never a loss).
 *
 * Not done here: mail from the null sender keeps it (a bounce must not
 * make notices of its own); a list's |command, /file and :include:
 * targets stay recipients of the original message (the local agent
 * checks them against the alias that lists them), with its sender; only
 * the alias named by the recipient counts, not aliases nested in it
 * (qmgr_expand flattens them); expand_owner_alias is not supported. */
#ifndef TERN_QMGR_QMGR_OWNER_H
#define TERN_QMGR_QMGR_OWNER_H

#include <stddef.h>

struct qmgr_msg;
struct resolver;

/* The owner of the list addr (a local recipient that is an alias): 1 with
 * *owner ("owner-list@domain", malloc'd) when alias_maps has owner-list,
 * 0 when not (or addr is itself an owner- alias), -1 when a table failed. */
int qmgr_owner_of(struct resolver *r, const char *addr, char **owner);

/* Sends the n addresses to a new message from owner (a copy of q's
 * content and attributes) and takes recipient idx until it is committed:
 * then idx is recorded as expanded (or deferred when the commit failed)
 * and q is scheduled or finished. 0 when under way, -1 when the message
 * could not be written (idx untouched; the caller defers it). */
int qmgr_owner_resubmit(struct qmgr_msg *q, size_t idx, const char *owner, const char *const *addrs, size_t n);

#endif
