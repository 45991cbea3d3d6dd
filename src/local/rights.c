/* rights: the user a local target runs as (see rights.h). */
#include "local/rights.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/mem.h"

void rights_free(struct rights *r)
{
    free(r->user);
    free(r->home);
    free(r->shell);
    memset(r, 0, sizeof *r);
}

void rights_from_passwd(struct rights *r, const struct passwd *pw)
{
    r->uid = pw->pw_uid;
    r->gid = pw->pw_gid;
    r->user = xstrdup(pw->pw_name);
    r->home = xstrdup(pw->pw_dir);
    r->shell = xstrdup(pw->pw_shell);
}

int rights_default(const struct rights_policy *p, struct rights *out, struct deliver_error *err)
{
    errno = 0;
    struct passwd *pw = getpwnam(p->default_privs);
    if (!pw) {
        deliver_error_set(err, 1, "4.3.5", "default_privs: no user %s", p->default_privs);
        return -1;
    }
    if (pw->pw_uid == 0 || (p->is_root && pw->pw_uid == p->mail_owner)) {
        deliver_error_set(err, 1, "4.3.5", "default_privs: %s is a privileged user", p->default_privs);
        return -1;
    }
    rights_from_passwd(out, pw);
    return 0;
}

void rights_self(struct rights *out)
{
    struct passwd *pw = getpwuid(geteuid());
    if (pw) {
        rights_from_passwd(out, pw);
        return;
    }
    out->uid = geteuid();
    out->gid = getegid();
    out->user = xasprintf("%u", (unsigned)out->uid);
    out->home = xstrdup("/");
    out->shell = xstrdup("/bin/sh");
}

int rights_of_owner(const struct rights_policy *p, uid_t owner, struct rights *out, struct deliver_error *err)
{
    if (!p->is_root) {
        rights_self(out);
        return 0;
    }
    if (owner == 0)
        return rights_default(p, out, err);
    errno = 0;
    struct passwd *pw = getpwuid(owner);
    if (!pw) {
        deliver_error_set(err, 1, "4.3.0", "the owner of the alias table or :include: file (uid %u) has no "
                          "passwd entry", (unsigned)owner);
        return -1;
    }
    rights_from_passwd(out, pw);
    return 0;
}
