/* local_targets: the local delivery agent's deliveries to `|command` and
 * `/file` targets of aliases, and to mailbox_command: what runs, and as
 * whom, decided from the agent's own configuration and tables.
 *
 * The request comes from the queue process (mail_owner), which root must
 * not obey blindly. For an alias target it names the target as the
 * expansion recorded it ("|/usr/bin/x arg", "/var/log/list") and the alias
 * whose value lists it. Here the alias is looked up again in alias_maps
 * (the first table that has it, as every lookup does), its value parsed,
 * and the target must be one of its items; the rights are those of the
 * owner of that table's source file, or default_privs when root owns it or
 * the table has no file (inline:, static:). Neither is ever root: a
 * default_privs that is root or mail_owner, and an owner without a passwd
 * entry, defer the delivery with the reason. So a compromised queue can
 * make root run no command, and write no file, that a mail to the alias
 * itself would not; anyone may mail an alias.
 *
 * allow_mail_to_commands and allow_mail_to_files (Postfix's "alias",
 * "forward", "include") say where such targets are allowed; aliases are
 * the source here (".forward" and ":include:" are not read yet, so those
 * targets bounce with 5.3.0 and say so). A refused one bounces 5.7.1, "mail
 * to command is restricted" as Postfix words it.
 *
 * Commands run through command.c with the environment Postfix gives them;
 * files get an mbox append under its locks (mbox.c) or, for a path ending
 * in '/', a Maildir delivery (maildir.c), written with the file-system
 * identity of the rights (setfsuid/setfsgid), never root's. Both get the
 * "From " line (commands; mbox files have theirs), Return-Path and
 * Delivered-To (the alias's address) above the message.
 *
 * mailbox_command, when set, replaces the mailbox delivery of a local user
 * (not of a virtual mailbox): it runs as that user, in the home directory.
 * A development mailbox (local_mailbox_base) has no user of its own; there
 * it runs as tern's own user, or as default_privs when that is root. */
#ifndef TERN_LOCAL_LOCAL_TARGETS_H
#define TERN_LOCAL_LOCAL_TARGETS_H

#include <stdint.h>
#include <sys/types.h>

#include "local/deliver.h"

struct conf;
struct resolver;
struct local_targets;

/* The agent's answer for a request: err NULL when delivered (text says
 * where), else deferred or bounced as err says. */
typedef void local_targets_reply_fn(void *ctx, uint32_t reqid, const struct deliver_error *err,
                                    const char *text);

struct local_targets *local_targets_new(struct conf *c, struct resolver *resolver, uid_t mail_owner);
void local_targets_free(struct local_targets *lt);

/* One request: the message (in), and the reply's channel (ctx, reqid). */
struct local_target_request {
    void *ctx;
    uint32_t reqid;
    const char *sender;
    const char *recipient;          /* the address being delivered (the alias's) */
    const char *original_recipient; /* may be NULL */
    const char *prepend;            /* the queue file's own fields above the content, or NULL */
    const struct deliver_input *in; /* in->prepend is ignored: built here */
};

/* A `|command` or `/file` target (as recorded: target) of the alias named
 * alias. Replies through reply, now or when the command ends. */
void local_targets_alias(struct local_targets *lt, const struct local_target_request *req, const char *target,
                         const char *alias, local_targets_reply_fn *reply);

/* mailbox_command for a local user; 0 when it is not set (the caller
 * delivers to the mailbox), 1 when the request is taken (replied to through
 * reply). uid (uid_t)-1: the development layout, no user of its own. */
int local_targets_mailbox_command(struct local_targets *lt, const struct local_target_request *req,
                                  const char *user, uid_t uid, local_targets_reply_fn *reply);

#endif
