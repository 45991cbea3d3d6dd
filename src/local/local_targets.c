/* local_targets: commands and files of aliases, mailbox_command (see
 * local_targets.h). */
#include "local/local_targets.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conf/conf.h"
#include "local/command.h"
#include "local/delivered_to.h"
#include "local/list_file.h"
#include "local/rights.h"
#include "local/maildir.h"
#include "local/mbox.h"
#include "maps/alias.h"
#include "maps/map.h"
#include "maps/resolver.h"
#include "spool/queue_file.h"
#include "util/ipc.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

/* Where a target came from, for allow_mail_to_commands / _files. */
enum target_source { SOURCE_ALIAS, SOURCE_FORWARD, SOURCE_INCLUDE };

struct local_targets {
    struct resolver *resolver;
    struct rights_policy policy;
    char *default_privs;
    char *mailbox_command;
    struct map_list *mailbox_command_maps;   /* NULL when unset */
    char *recipient_delimiter;
    char *expansion_filter;   /* command_expansion_filter */
    char *exec_directory;     /* command_execution_directory, unexpanded; "" for the home */
    char **export_env;        /* export_environment, "NAME=value", NULL-terminated */
    unsigned time_limit;
    struct conf_list forward_path;
    int enable_orcpt;        /* enable_original_recipient */
    off_t mailbox_limit;     /* mailbox_size_limit: files written, commands' RLIMIT_FSIZE */
    unsigned commands_from;  /* bits of 1 << enum target_source */
    unsigned files_from;
};

static unsigned sources_of(const char *param, struct conf_list l)
{
    unsigned bits = 0;
    for (size_t i = 0; i < l.n; i++) {
        if (strcmp(l.items[i], "alias") == 0)
            bits |= 1u << SOURCE_ALIAS;
        else if (strcmp(l.items[i], "forward") == 0)
            bits |= 1u << SOURCE_FORWARD;
        else if (strcmp(l.items[i], "include") == 0)
            bits |= 1u << SOURCE_INCLUDE;
        else
            log_warn("%s: unknown source \"%s\" ignored (alias, forward, include)", param, l.items[i]);
    }
    conf_list_free(&l);
    return bits;
}

struct local_targets *local_targets_new(struct conf *c, struct resolver *resolver, uid_t mail_owner)
{
    struct local_targets *lt = xcalloc(1, sizeof *lt);
    lt->resolver = resolver;
    lt->default_privs = xstrdup(conf_str(c, "default_privs"));
    lt->policy.is_root = geteuid() == 0;
    lt->policy.mail_owner = mail_owner;
    lt->policy.default_privs = lt->default_privs;
    lt->mailbox_command = xstrdup(conf_str(c, "mailbox_command"));
    const char *cmd_maps = conf_str(c, "mailbox_command_maps");
    if (*cmd_maps) {
        char *err = NULL;
        lt->mailbox_command_maps = map_list_open(cmd_maps, 0, &err);
        if (!lt->mailbox_command_maps)
            log_fatal("mailbox_command_maps: %s", err ? err : "cannot open");
    }
    lt->recipient_delimiter = xstrdup(conf_str(c, "recipient_delimiter"));
    lt->expansion_filter = xstrdup(conf_str(c, "command_expansion_filter"));
    lt->exec_directory = xstrdup(conf_str(c, "command_execution_directory"));
    struct conf_list exported = conf_list(c, "export_environment");
    lt->export_env = command_env_exported(exported.items, exported.n);
    conf_list_free(&exported);
    lt->time_limit = (unsigned)conf_time(c, "command_time_limit");
    lt->forward_path = conf_list(c, "forward_path");
    lt->enable_orcpt = conf_bool(c, "enable_original_recipient");
    lt->mailbox_limit = (off_t)conf_int(c, "mailbox_size_limit");
    lt->commands_from = sources_of("allow_mail_to_commands", conf_list(c, "allow_mail_to_commands"));
    lt->files_from = sources_of("allow_mail_to_files", conf_list(c, "allow_mail_to_files"));
    return lt;
}

struct map_list *local_targets_command_maps(struct local_targets *lt)
{
    return lt->mailbox_command_maps;
}

void local_targets_free(struct local_targets *lt)
{
    if (!lt)
        return;
    free(lt->default_privs);
    free(lt->mailbox_command);
    if (lt->mailbox_command_maps)
        map_list_close(lt->mailbox_command_maps);
    free(lt->recipient_delimiter);
    free(lt->expansion_filter);
    free(lt->exec_directory);
    command_env_free(lt->export_env);
    conf_list_free(&lt->forward_path);
    free(lt);
}

/* ---------- is the target really the alias's? ---------- */

static int target_is(const struct alias_target *t, const char *target)
{
    if (t->type == ALIAS_COMMAND)
        return target[0] == '|' && strcmp(t->value, target + 1) == 0;
    if (t->type == ALIAS_FILE)
        return strcmp(t->value, target) == 0;
    if (t->type == ALIAS_INCLUDE)
        return strncmp(target, ":include:", 9) == 0 && strcmp(t->value, target + 9) == 0;
    return 0;
}

/* Looks alias up in alias_maps as every lookup does (the first table that
 * has it), checks that its value lists target and finds the owner of that
 * table's file. 0 with *owner (0 for a table without a file), or -1 with
 * err filled. */
static int alias_lists_target(struct local_targets *lt, const char *alias, const char *target, uid_t *owner,
                              struct deliver_error *err)
{
    struct map_list *maps = resolver_aliases(lt->resolver);
    size_t n = maps ? map_list_count(maps) : 0;
    char *name = xstrdup(alias);
    str_lower(name);   /* as alias_expand looks names up */
    int rc = -1;
    deliver_error_set(err, 0, "5.3.0", "alias %s does not list %s", name, target);
    for (size_t i = 0; i < n; i++) {
        struct map *m = map_list_get(maps, i);
        char *value = NULL;
        int found = map_lookup(m, name, &value);
        if (found < 0) {
            deliver_error_set(err, 1, "4.3.0", "alias lookup of %s failed; try again later", name);
            break;
        }
        if (found == 0)
            continue;
        struct alias_result res;
        int listed = 0;
        if (alias_parse_value(value, &res) == 0)
            for (size_t k = 0; k < res.n && !listed; k++)
                listed = target_is(&res.t[k], target);
        alias_result_free(&res);
        free(value);
        if (!listed)
            break;
        gid_t gid;
        int has_file = map_source_owner(m, owner, &gid);
        if (has_file < 0) {
            deliver_error_set(err, 1, "4.3.0", "alias table %s cannot be read", map_spec(m));
            break;
        }
        if (has_file == 0)
            *owner = 0;
        rc = 0;
        break;
    }
    free(name);
    return rc;
}

/* What forward_path and command_execution_directory may name, for user
 * (with r's home and shell) and address. */
struct address_vars {
    struct forward_vars v;
    char *local;
    char delimiter[2];
};

static void address_vars_init(struct local_targets *lt, struct address_vars *av, const struct rights *r,
                              const char *user, const char *address)
{
    memset(av, 0, sizeof *av);
    av->local = xstrdup(address ? address : "");
    char *at = strrchr(av->local, '@');
    if (at) {
        *at = '\0';
        av->v.domain = at + 1;
    }
    for (const char *p = av->local; *p && *lt->recipient_delimiter; p++) {
        if (strchr(lt->recipient_delimiter, *p)) {
            /* the extension names a file ($home/.forward+EXT): one with a
             * '/' would reach past the home directory, so, as Postfix does,
             * it is dropped (the address counts as the user's own) */
            if (strchr(p + 1, '/')) {
                log_warn("%s: address with an illegal extension (a '/'); the extension is ignored", address);
                break;
            }
            av->delimiter[0] = *p;
            av->v.extension = p + 1;
            break;
        }
    }
    av->v.user = user;
    av->v.home = r->home;
    av->v.shell = r->shell;
    av->v.recipient = address;
    av->v.local = av->local;
    av->v.recipient_delimiter = av->delimiter;
}

static void address_vars_free(struct address_vars *av)
{
    free(av->local);
}

/* ---------- delivering ---------- */

/* The file-system identity for a file delivery: the kernel then checks
 * permissions and owns new files as for that user. */
static void become(struct local_targets *lt, const struct rights *r)
{
    if (!lt->policy.is_root)
        return;
    rights_become(r->uid, r->gid);
}

static void become_root_again(struct local_targets *lt)
{
    if (!lt->policy.is_root)
        return;
    rights_become_root();
}

static char *make_prepend(const struct local_target_request *req, int from_line)
{
    char *from = from_line ? mbox_from_line(req->sender, req->in->arrival) : NULL;
    char *p = delivered_to_prepend(from, req->sender, req->x_original_to, req->recipient, req->prepend);
    free(from);
    return p;
}

static void deliver_file(struct local_targets *lt, const struct local_target_request *req, const char *path,
                         const struct rights *r, local_targets_reply_fn *reply)
{
    struct deliver_error err;
    memset(&err, 0, sizeof err);
    if (strcmp(path, "/dev/null") == 0) {
        /* the classic "discard" alias: nothing to write (and no regular
         * file, which mbox requires) */
        reply(req->ctx, req->reqid, NULL, "delivered to file: /dev/null");
        return;
    }
    char *prepend = make_prepend(req, 0);
    struct deliver_input in = *req->in;
    in.prepend = prepend;
    in.size_limit = lt->mailbox_limit;
    size_t len = strlen(path);
    int rc;
    become(lt, r);
    if (len && path[len - 1] == '/') {
        rc = maildir_deliver(path, (uid_t)-1, (gid_t)-1, &in, NULL, &err);
    } else {
        /* one message at a time, as mailbox deliveries: a brief wait for
         * the locks, then a retry later */
        static const struct mbox_lock_policy brief = {250, 50, 300, 1};
        rc = mbox_deliver_with_policy(path, (uid_t)-1, (gid_t)-1, &in, &brief, &err);
    }
    become_root_again(lt);
    free(prepend);
    if (rc == 0) {
        char *text = xasprintf("delivered to file: %s", path);
        reply(req->ctx, req->reqid, NULL, text);
        free(text);
    } else {
        reply(req->ctx, req->reqid, &err, NULL);
    }
}

struct command_ctx {
    void *ctx;
    uint32_t reqid;
    local_targets_reply_fn *reply;
    char *what;
};

static void command_done(void *arg, const struct deliver_error *err)
{
    struct command_ctx *c = arg;
    if (err) {
        c->reply(c->ctx, c->reqid, err, NULL);
    } else {
        char *text = xasprintf("delivered to %s", c->what);
        c->reply(c->ctx, c->reqid, NULL, text);
        free(text);
    }
    free(c->what);
    free(c);
}

/* The message for the command's standard input, in memory the command can
 * read and seek: "From " line, Return-Path, Delivered-To, the content. */
static int message_fd(const struct local_target_request *req, struct deliver_error *err)
{
    int fd = memfd_create("tern-message", MFD_CLOEXEC);
    if (fd < 0) {
        deliver_error_errno(err, errno, "cannot hold the message for the command");
        return -1;
    }
    char *prepend = make_prepend(req, 1);
    struct deliver_input in = *req->in;
    in.prepend = prepend;
    in.size_limit = 0;   /* the command's own files are bounded by RLIMIT_FSIZE */
    int rc = deliver_copy_reporting(&in, fd, 0, NULL, "the command's input", err);
    free(prepend);
    if (rc != 0 || lseek(fd, 0, SEEK_SET) != 0) {
        if (rc == 0)
            deliver_error_errno(err, errno, "cannot rewind the command's input");
        close(fd);
        return -1;
    }
    return fd;
}

static void run_command(struct local_targets *lt, const struct local_target_request *req, const char *command,
                        const struct rights *r, const char *what, local_targets_reply_fn *reply)
{
    struct deliver_error err;
    memset(&err, 0, sizeof err);
    /* command_execution_directory, expanded for this delivery: the
     * values through command_expansion_filter, as the environment's */
    char *dir = NULL;
    if (*lt->exec_directory) {
        struct address_vars av;
        address_vars_init(lt, &av, r, r->user, req->recipient);
        dir = command_dir_expand(lt->exec_directory, &av.v, lt->expansion_filter);
        address_vars_free(&av);
        if (!dir) {
            deliver_error_set(&err, 1, "4.3.5", "command_execution_directory: bad expansion");
            reply(req->ctx, req->reqid, &err, NULL);
            return;
        }
    }
    int fd = message_fd(req, &err);
    if (fd < 0) {
        free(dir);
        reply(req->ctx, req->reqid, &err, NULL);
        return;
    }
    struct command_env_fields f = {
        .home = r->home,
        .logname = r->user,
        .shell = r->shell,
        .sender = req->sender,
        .recipient = req->recipient,
        .original_recipient = req->original_recipient,
        .recipient_delimiter = lt->recipient_delimiter,
        .filter = lt->expansion_filter,
        .exported = lt->export_env,
    };
    struct queue_file_message qm;
    command_env_client(req->in->fd, req->in->offset, &f, &qm);
    char **env = command_env_build(&f);
    queue_file_message_free(&qm);
    struct command_request cr = {
        .command = command,
        .env = env,
        .uid = r->uid,
        .gid = r->gid,
        .user = lt->policy.is_root ? r->user : NULL,
        .cwd = dir ? dir : r->home,
        .cwd_required = dir != NULL,
        .stdin_fd = fd,
        .time_limit = lt->time_limit,
        .file_size_limit = lt->mailbox_limit,
    };
    struct command_ctx *c = xcalloc(1, sizeof *c);
    c->ctx = req->ctx;
    c->reqid = req->reqid;
    c->reply = reply;
    c->what = xstrdup(what);
    log_info("running %s as %s", what, r->user);
    if (command_start(&cr, command_done, c, &err) != 0) {
        free(c->what);
        free(c);
        reply(req->ctx, req->reqid, &err, NULL);
    }
    command_env_free(env);
    free(dir);
    close(fd);
}

/* ---------- .forward and :include: ---------- */

/* Reads a list file with r's file-system identity. As list_file_read. */
static int read_list(struct local_targets *lt, enum list_file_kind kind, const char *path, const struct rights *r,
                     struct alias_result *targets, uid_t *owner, char *why, size_t whylen)
{
    become(lt, r);
    int rc = list_file_read(kind, path, r->uid, targets, owner, why, whylen);
    become_root_again(lt);
    return rc;
}

static int list_has(const struct alias_result *targets, const char *target)
{
    for (size_t i = 0; i < targets->n; i++)
        if (target_is(&targets->t[i], target))
            return 1;
    return 0;
}

/* The first usable file of forward_path for user's mail to address (read
 * with r's identity): 0 with *targets and *path (malloc'd), 1 when there
 * is none. A file that is there but refused is logged and passed over, as
 * Postfix does; the same files give the same answer when a target of the
 * .forward is checked later. */
static int find_forward(struct local_targets *lt, const struct rights *r, const char *user, const char *address,
                        struct alias_result *targets, char **path)
{
    struct address_vars av;
    address_vars_init(lt, &av, r, user, address);
    const struct forward_vars v = av.v;
    int rc = 1;
    for (size_t i = 0; i < lt->forward_path.n && rc == 1; i++) {
        char *candidate = forward_path_expand(lt->forward_path.items[i], &v);
        if (!candidate)
            continue;
        uid_t owner;
        char why[512];
        int read = read_list(lt, LIST_FORWARD, candidate, r, targets, &owner, why, sizeof why);
        if (read == 0) {
            *path = candidate;
            rc = 0;
            break;
        }
        if (read < 0)
            log_warn("ignoring the .forward of %s: %s", user, why);
        free(candidate);
    }
    address_vars_free(&av);
    return rc;
}

/* The rights of a local user's own .forward: the user's, or default_privs
 * for root's. */
static int forward_rights(struct local_targets *lt, const char *user, struct rights *out, struct deliver_error *err)
{
    errno = 0;
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        deliver_error_set(err, 1, "4.3.0", "cannot look up the user %s", user);
        return -1;
    }
    if (!lt->policy.is_root) {
        rights_self(out);
        free(out->home);
        out->home = xstrdup(pw->pw_dir);
        return 0;
    }
    if (pw->pw_uid == 0) {
        if (rights_default(&lt->policy, out, err) != 0)
            return -1;
        free(out->home);
        out->home = xstrdup(pw->pw_dir);   /* root's .forward is still in root's home */
        return 0;
    }
    rights_from_passwd(out, pw);
    return 0;
}

/* The :include: files of an origin (o->include, one a line, the one the
 * alias or .forward lists first), split into files[] (malloc'd copy in
 * *buf). The count, or -1 with err: too many, an empty name, or a loop (a
 * file that lists itself, directly or through others; target included). */
static int include_chain(const struct local_target_origin *o, const char *target,
                         const char *files[ALIAS_MAX_INCLUDE_DEPTH], char **buf, struct deliver_error *err)
{
    *buf = NULL;
    if (!o->include)
        return 0;
    *buf = xstrdup(o->include);
    int n = 0;
    for (char *line = *buf, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (n == ALIAS_MAX_INCLUDE_DEPTH) {
            deliver_error_set(err, 0, "5.4.6", "too many nested :include: lists (at most %d)",
                              ALIAS_MAX_INCLUDE_DEPTH);
            return -1;
        }
        if (line[0] != '/') {
            deliver_error_set(err, 0, "5.3.0", "not an :include: file: \"%s\"", line);
            return -1;
        }
        files[n++] = line;
    }
    const char *inner = strncmp(target, ":include:", 9) == 0 ? target + 9 : NULL;
    if (inner && n == ALIAS_MAX_INCLUDE_DEPTH) {
        deliver_error_set(err, 0, "5.4.6", "too many nested :include: lists (at most %d)", ALIAS_MAX_INCLUDE_DEPTH);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        for (int k = i + 1; k <= n; k++) {
            const char *other = k < n ? files[k] : inner;
            if (other && strcmp(files[i], other) == 0) {
                deliver_error_set(err, 0, "5.4.6", "mail forwarding loop: :include:%s lists itself%s", files[i],
                                  k > i + 1 ? " through other :include: files" : "");
                return -1;
            }
        }
    }
    return n;
}

/* Where a target came from and with whose rights it runs: the alias or
 * .forward that lists it (or lists the first of the :include: files that
 * lead to it), checked against our own tables and files. Each :include:
 * file is read with the rights of what lists it, under list_file.c's rules,
 * and must list the next one (the last, the target); what it lists gets
 * its owner's rights. 0 with *r and *source, or -1 with err. */
static int origin_rights(struct local_targets *lt, const char *target, const struct local_target_origin *o,
                         struct rights *r, enum target_source *source, struct deliver_error *err)
{
    const char *files[ALIAS_MAX_INCLUDE_DEPTH];
    char *buf;
    int nfiles = include_chain(o, target, files, &buf, err);
    if (nfiles < 0) {
        free(buf);
        return -1;
    }
    char *listed = nfiles ? xasprintf(":include:%s", files[0]) : xstrdup(target);
    int rc = -1;
    if (o->alias) {
        uid_t owner;
        if (alias_lists_target(lt, o->alias, listed, &owner, err) == 0 &&
            rights_of_owner(&lt->policy, owner, r, err) == 0)
            rc = 0;
        *source = SOURCE_ALIAS;
    } else if (o->forward_user && forward_rights(lt, o->forward_user, r, err) == 0) {
        struct alias_result fwd;
        char *path = NULL;
        if (find_forward(lt, r, o->forward_user, o->forward_address, &fwd, &path) != 0) {
            deliver_error_set(err, 0, "5.3.0", "%s has no .forward any more", o->forward_user);
        } else {
            if (list_has(&fwd, listed))
                rc = 0;
            else
                deliver_error_set(err, 0, "5.3.0", "%s does not list %s", path, listed);
            alias_result_free(&fwd);
            free(path);
        }
        *source = SOURCE_FORWARD;
    } else if (!o->forward_user) {
        deliver_error_set(err, 0, "5.3.0", "no alias or .forward named for %s", target);
    }
    free(listed);
    for (int i = 0; rc == 0 && i < nfiles; i++) {
        /* the file, read with the rights of what lists it; what it lists
         * gets its owner's */
        struct alias_result inc;
        uid_t owner;
        char why[512];
        int read = read_list(lt, LIST_INCLUDE, files[i], r, &inc, &owner, why, sizeof why);
        rights_free(r);
        rc = -1;
        if (read != 0) {
            deliver_error_set(err, 1, "4.3.0", read == 1 ? "%s: no such :include: file" : "%s",
                              read == 1 ? files[i] : why);
            break;
        }
        char *next = i + 1 < nfiles ? xasprintf(":include:%s", files[i + 1]) : xstrdup(target);
        int has = list_has(&inc, next);
        alias_result_free(&inc);
        if (!has)
            deliver_error_set(err, 0, "5.3.0", "%s does not list %s", files[i], next);
        free(next);
        if (has && rights_of_owner(&lt->policy, owner, r, err) == 0)
            rc = 0;
        *source = SOURCE_INCLUDE;
    }
    free(buf);
    return rc;
}

/* The innermost :include: file of an origin, for the log. */
static const char *innermost_include(const struct local_target_origin *o)
{
    const char *nl = o->include ? strrchr(o->include, '\n') : NULL;
    return nl ? nl + 1 : o->include;
}

void local_targets_listed(struct local_targets *lt, const struct local_target_request *req, const char *target,
                          const struct local_target_origin *o, const struct local_targets_replies *replies)
{
    struct deliver_error err;
    memset(&err, 0, sizeof err);
    int is_command = target[0] == '|', is_file = target[0] == '/';
    int is_include = strncmp(target, ":include:", 9) == 0;
    if (!is_command && !is_file && !is_include) {
        deliver_error_set(&err, 0, "5.3.0", "not a command, file or :include: target");
        replies->reply(req->ctx, req->reqid, &err, NULL);
        return;
    }
    struct rights r;
    memset(&r, 0, sizeof r);
    enum target_source source;
    if (origin_rights(lt, target, o, &r, &source, &err) != 0) {
        rights_free(&r);
        replies->reply(req->ctx, req->reqid, &err, NULL);
        return;
    }
    if (is_include) {
        /* its targets go back to the queue as recipients of their own; each
         * comes back here and is checked against the file again */
        struct alias_result inc;
        uid_t owner;
        char why[512];
        int read = read_list(lt, LIST_INCLUDE, target + 9, &r, &inc, &owner, why, sizeof why);
        if (read != 0) {
            deliver_error_set(&err, 1, "4.3.0", read == 1 ? "%s: no such :include: file" : "%s",
                              read == 1 ? target + 9 : why);
            replies->reply(req->ctx, req->reqid, &err, NULL);
        } else {
            replies->expand(req->ctx, req->reqid, &inc, "expanded by :include:");
            alias_result_free(&inc);
        }
    } else if (!((is_command ? lt->commands_from : lt->files_from) & (1u << source))) {
        deliver_error_set(&err, 0, "5.7.1", "mail to %s is restricted", is_command ? "command" : "file");
        replies->reply(req->ctx, req->reqid, &err, NULL);
    } else if (is_command) {
        char *what = source == SOURCE_ALIAS     ? xasprintf("command of alias %s", o->alias)
                     : source == SOURCE_FORWARD ? xasprintf("command of %s's .forward", o->forward_user)
                                                : xasprintf("command of :include:%s", innermost_include(o));
        run_command(lt, req, target + 1, &r, what, replies->reply);
        free(what);
    } else {
        deliver_file(lt, req, target, &r, replies->reply);
    }
    rights_free(&r);
}

int local_targets_forward(struct local_targets *lt, const struct local_target_request *req, const char *user,
                          const struct local_targets_replies *replies)
{
    struct rights r;
    memset(&r, 0, sizeof r);
    struct deliver_error err;
    memset(&err, 0, sizeof err);
    if (forward_rights(lt, user, &r, &err) != 0) {
        rights_free(&r);
        return 0;   /* the mailbox delivery finds the same problem and says so */
    }
    struct alias_result fwd;
    char *path = NULL;
    int found = find_forward(lt, &r, user, req->recipient, &fwd, &path);
    rights_free(&r);
    free(path);
    if (found != 0)
        return 0;
    if (fwd.n == 0) {
        alias_result_free(&fwd);
        return 0;
    }
    replies->expand(req->ctx, req->reqid, &fwd, "expanded by .forward");
    alias_result_free(&fwd);
    return 1;
}

int local_targets_mailbox_command(struct local_targets *lt, const struct local_target_request *req,
                                  const char *user, uid_t uid, local_targets_reply_fn *reply)
{
    struct deliver_error err;
    memset(&err, 0, sizeof err);
    /* mailbox_command_maps first (the user's own command), as Postfix */
    char *command = NULL;
    int found = lt->mailbox_command_maps ? map_list_lookup(lt->mailbox_command_maps, user, &command) : 0;
    if (found < 0) {
        deliver_error_set(&err, 1, "4.3.0", "mailbox_command_maps lookup of %s failed; try again later", user);
        reply(req->ctx, req->reqid, &err, NULL);
        return 1;
    }
    if (found && !*command) {   /* an empty value names no command: mailbox_command applies */
        free(command);
        command = NULL;
        found = 0;
    }
    const char *what = found ? "mailbox_command_maps" : "mailbox_command";
    if (!found && *lt->mailbox_command)
        command = xstrdup(lt->mailbox_command);
    if (!command || !*command) {
        free(command);
        return 0;
    }
    struct rights r;
    memset(&r, 0, sizeof r);
    int rc = 0;
    if (!lt->policy.is_root) {
        rights_self(&r);
    } else if (uid == (uid_t)-1) {
        rc = rights_default(&lt->policy, &r, &err);
    } else {
        errno = 0;
        struct passwd *pw = getpwuid(uid);
        if (pw && pw->pw_uid != 0) {
            rights_from_passwd(&r, pw);
        } else {
            /* root's mail: Postfix runs it as default_privs too */
            rc = pw ? rights_default(&lt->policy, &r, &err) : -1;
            if (!pw)
                deliver_error_set(&err, 1, "4.3.0", "cannot look up the user %s", user);
        }
    }
    if (rc == 0)
        run_command(lt, req, command, &r, what, reply);
    else
        reply(req->ctx, req->reqid, &err, NULL);
    rights_free(&r);
    free(command);
    return 1;
}

void local_targets_request(struct local_targets *lt, const struct ipc_msg *m, int qfd, void *ctx,
                           const struct local_targets_replies *replies)
{
    const char *parent = ipc_msg_get(m, "alias_rcpt");
    const char *arrived = ipc_msg_get(m, "orig_rcpt") ? ipc_msg_get(m, "orig_rcpt") : parent;
    struct local_target_origin o = {
        .alias = ipc_msg_get(m, "alias"),
        .forward_user = ipc_msg_get(m, "forward_of"),
        .forward_address = parent,
        .include = ipc_msg_get(m, "include"),
    };
    /* the address being delivered: the one mail came for, unless another
     * alias than its own lists the target (then that alias's address) */
    char *parent_user = parent ? resolver_local_user(lt->resolver, parent) : NULL;
    const char *at = parent ? strrchr(parent, '@') : NULL;
    char *recipient = !o.alias || (parent_user && strcmp(parent_user, o.alias) == 0)
                          ? xstrdup(parent ? parent : ipc_msg_get(m, "rcpt"))
                          : xasprintf("%s%s", o.alias, at ? at : "");
    free(parent_user);
    struct deliver_input in = {
        .fd = qfd,
        .offset = (off_t)ipc_msg_get_u64(m, "offset", 0),
        .length = (off_t)ipc_msg_get_u64(m, "length", 0),
        .sender = ipc_msg_get(m, "sender"),
        .arrival = (time_t)ipc_msg_get_u64(m, "arrival", 0),
    };
    struct local_target_request req = {
        .ctx = ctx,
        .reqid = m->reqid,
        .sender = in.sender,
        .recipient = recipient,
        .original_recipient = arrived,
        .x_original_to = lt->enable_orcpt ? arrived : NULL,
        .prepend = ipc_msg_get(m, "prepend"),
        .in = &in,
    };
    struct deliver_error err;
    memset(&err, 0, sizeof err);
    if (delivered_to_loop(&in, req.prepend, recipient, &err, NULL) != 0)
        replies->reply(ctx, m->reqid, &err, NULL);   /* a loop, or the queue file unreadable */
    else
        local_targets_listed(lt, &req, ipc_msg_get(m, "rcpt"), &o, replies);
    free(recipient);
}
