/* local_targets: the local delivery agent's deliveries to `|command`,
 * `/file` and `:include:` targets of aliases and .forward files, the
 * reading of .forward files, and mailbox_command: what runs, and as whom,
 * decided from the agent's own configuration, tables and files.
 *
 * The request comes from the queue process (mail_owner), which root must
 * not obey blindly. For a target it names the target as the expansion
 * recorded it ("|/usr/bin/x arg", "/var/log/list", ":include:/etc/list")
 * and where it comes from: the alias whose value lists it, or the local
 * user whose .forward does, and possibly an :include: file in between.
 * Every link is checked here again:
 *   - the alias is looked up in alias_maps (the first table that has it,
 *     as every lookup does) and its value must list the target (or the
 *     :include:); the rights are those of the owner of that table's source
 *     file, or default_privs when root owns it or it has no file;
 *   - a .forward is read again as its user (list_file.c's rules) and must
 *     list it; the rights are the user's (default_privs for root's);
 *   - an :include: file is read with the rights of what lists it and must
 *     list the target; the target then gets the rights of the file's
 *     owner (default_privs for root). An :include: file may list another
 *     (a list of lists): each file of the chain is read and checked the
 *     same way, with the rights of the one above it, and must list the
 *     next; at most ALIAS_MAX_INCLUDE_DEPTH files deep, and a file that
 *     lists itself, directly or through others, bounces 5.4.6 as a loop
 *     (the queue records such a target instead of dropping it as a
 *     duplicate, so the loop is reported rather than silently cut).
 * None of them is ever root: a default_privs that is root or mail_owner,
 * and an owner without a passwd entry, defer the delivery with the reason.
 * So a compromised queue can make root run no command, and write no file,
 * that a mail to the alias or user itself would not.
 *
 * allow_mail_to_commands and allow_mail_to_files (Postfix's "alias",
 * "forward", "include") say where such targets are allowed; a refused one
 * bounces 5.7.1, "mail to command is restricted" as Postfix words it.
 *
 * .forward (the first usable file of forward_path, by default
 * $home/.forward+EXTENSION then $home/.forward) is read for a local user's
 * mailbox delivery:
 * its targets, and an :include: file's, go back to the queue ("expanded")
 * and become recipients of their own; "\user" (the user itself) is the
 * copy the mailbox keeps, delivered without reading the .forward again.
 *
 * Commands run through command.c with the environment Postfix gives them;
 * files get an mbox append under its locks (mbox.c) or, for a path ending
 * in '/', a Maildir delivery (maildir.c), written with the file-system
 * identity of the rights (setfsuid/setfsgid), never root's. Commands get
 * the "From " line, Return-Path and Delivered-To (the address delivered)
 * above the message; files their mailbox's own.
 *
 * Postfix's parameters for commands apply: command_expansion_filter
 * (the bytes the delivery's values in the environment and in
 * command_execution_directory keep; others become '_', so an address
 * cannot smuggle shell syntax into a command line that uses $RECIPIENT),
 * export_environment (what of the agent's own environment a command sees),
 * command_execution_directory (the working directory, with $user, $home,
 * $recipient ... expanded; one that cannot be entered defers the
 * delivery; empty: the home directory, or "/").
 *
 * mailbox_command, or the user's entry in mailbox_command_maps (looked up
 * by user name, first), when set, replaces the mailbox delivery of a local
 * user (not of a virtual mailbox): it runs as that user, in the home
 * directory. A development mailbox (local_mailbox_base) has no user of its
 * own; there it runs as tern's own user, or as default_privs when that is
 * root. */
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
    const char *original_recipient; /* as it arrived, before any expansion; may be NULL */
    const char *x_original_to;      /* for X-Original-To (enable_original_recipient); NULL: none */
    const char *prepend;            /* the queue file's own fields above the content, or NULL */
    const struct deliver_input *in; /* in->prepend is ignored: built here */
};

struct alias_result;
/* Targets a .forward or :include: file lists, to become recipients of
 * their own (the queue records them); text says which kind of file. */
typedef void local_targets_expand_fn(void *ctx, uint32_t reqid, const struct alias_result *targets,
                                     const char *text);

struct local_targets_replies {
    local_targets_reply_fn *reply;
    local_targets_expand_fn *expand;
};

/* Where the queue says a target comes from: the alias that lists it, or
 * the local user whose .forward does; with include, that alias or .forward
 * lists the :include: file and the file lists the target. */
struct local_target_origin {
    const char *alias;
    const char *forward_user;
    const char *forward_address;    /* the user's address (forward_path's $extension ...) */
    const char *include;            /* the :include: files, one a line, the listed one first */
};

/* A `|command`, `/file` or `:include:/file` target (as recorded: target)
 * from origin, each link of which is checked here again. An :include: is
 * read and its targets handed to replies->expand; the others are
 * delivered and answered through replies->reply, now or when the command
 * ends. */
void local_targets_listed(struct local_targets *lt, const struct local_target_request *req, const char *target,
                          const struct local_target_origin *origin, const struct local_targets_replies *replies);

/* The .forward of a local user (read as the user): 1 when it lists
 * targets, handed to replies->expand; 0 when there is none, it is empty,
 * or it is ignored (not the user's or root's, writable by group or others:
 * logged), and the mailbox delivery goes on. */
int local_targets_forward(struct local_targets *lt, const struct local_target_request *req, const char *user,
                          const struct local_targets_replies *replies);

struct map_list;
/* mailbox_command_maps as opened (NULL when unset), for local_tables' dry run. */
struct map_list *local_targets_command_maps(struct local_targets *lt);

struct ipc_msg;
/* A DELIVER request (m) for a listed target: its origin (alias, forward_of,
 * include), the address delivered (alias_rcpt) and the message (qfd, open
 * as the mail owner) handed to local_targets_listed. */
void local_targets_request(struct local_targets *lt, const struct ipc_msg *m, int qfd, void *ctx,
                           const struct local_targets_replies *replies);

/* mailbox_command_maps' or mailbox_command's command for a local user; 0
 * when neither names one (the caller delivers to the mailbox), 1 when the
 * request is taken (replied to through reply; a table that fails defers).
 * uid (uid_t)-1: the development layout, no user of its own. */
int local_targets_mailbox_command(struct local_targets *lt, const struct local_target_request *req,
                                  const char *user, uid_t uid, local_targets_reply_fn *reply);

#endif
