/* rights: the user a local target runs as (see rights.h). */
#include "local/rights.h"

#include <errno.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/log.h"
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

/* Root's capabilities come back in effect with root's effective uid: without
 * dropping this one for good, a delivery could pass a user's disk quota. */
void rights_drop_quota_override(void)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capget, &hdr, data) != 0) {
        log_warn("capget: %s", strerror(errno));
        return;
    }
    unsigned bit = 1u << CAP_SYS_RESOURCE;
    data[0].effective &= ~bit;
    data[0].permitted &= ~bit;
    data[0].inheritable &= ~bit;
    if (syscall(SYS_capset, &hdr, data) != 0)
        log_warn("cannot drop CAP_SYS_RESOURCE: %s", strerror(errno));
}

void rights_become(uid_t uid, gid_t gid)
{
    if (geteuid() != 0)   /* acting as another user already: the switch needs root's rights */
        rights_become_root();
    if (setresgid((gid_t)-1, gid, (gid_t)-1) != 0 || setresuid((uid_t)-1, uid, (uid_t)-1) != 0)
        log_panic("cannot act as uid %u gid %u: %s", (unsigned)uid, (unsigned)gid, strerror(errno));
}

void rights_become_root(void)
{
    if (setresuid((uid_t)-1, 0, (uid_t)-1) != 0 || setresgid((gid_t)-1, 0, (gid_t)-1) != 0)
        log_panic("cannot act as root again: %s", strerror(errno));
}
