/* rights: whose rights a |command or /file target of the local delivery
 * agent gets — the user it runs as, never root.
 *
 * local_targets.c decides which of these applies to a target (the owner of
 * the alias table or :include: file that lists it, the user of a .forward,
 * the recipient of mailbox_command); this module turns that into a user
 * with uid, gid, name, home and shell, and refuses the users nobody should
 * run as: default_privs (root's files' stand-in) may be neither root nor,
 * when tern runs as root, the mail owner, whose processes parse what
 * strangers send. Started by an ordinary user, tern can be no one else:
 * every target then gets that user's rights. */
#ifndef TERN_LOCAL_RIGHTS_H
#define TERN_LOCAL_RIGHTS_H

#include <pwd.h>
#include <sys/types.h>

#include "local/deliver.h"

/* Who a command runs as, or a file is written as. */
struct rights {
    uid_t uid;
    gid_t gid;
    char *user, *home, *shell;
};

/* What the choice depends on: the agent's own identity and configuration. */
struct rights_policy {
    int is_root;
    uid_t mail_owner;
    const char *default_privs;
};

void rights_free(struct rights *r);
void rights_from_passwd(struct rights *r, const struct passwd *pw);

/* default_privs, checked as above. 0, or -1 with err filled (deferred:
 * an administrator fixes it). */
int rights_default(const struct rights_policy *p, struct rights *out, struct deliver_error *err);

/* The user tern runs as (started by an ordinary user). */
void rights_self(struct rights *out);

/* The rights of a file's owner: default_privs for root (a table or list
 * root keeps is no reason to run its commands as root); tern's own user
 * when not root. 0, or -1 with err filled. */
int rights_of_owner(const struct rights_policy *p, uid_t owner, struct rights *out, struct deliver_error *err);

/* Acts as uid and gid (root's local agent, for everything it does on a
 * user's files), then as root again. The effective ids change, not only
 * the file-system ones: with an effective uid of root, /proc/sys answers
 * as to root, and capabilities such as CAP_SYS_PTRACE (which opens any
 * process's /proc/PID/cwd) stay in effect whatever the fsuid; a non-root
 * effective uid leaves no capability in effect. The saved uid stays root,
 * to come back. A switch that fails ends the process (it must never go on
 * as the wrong one). */
void rights_become(uid_t uid, gid_t gid);
void rights_become_root(void);
/* Drops CAP_SYS_RESOURCE (root only): setfsuid() leaves root's capabilities
 * in place, and without this one the kernel enforces each user's disk quota
 * on deliveries made as that user. */
void rights_drop_quota_override(void);

#endif
