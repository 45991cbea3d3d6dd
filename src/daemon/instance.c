/* instance: configuration directory and queue layout (see instance.h). */
#include "daemon/instance.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf.h"
#include "spool/spool.h"
#include "util/fsops.h"
#include "util/mem.h"

static const char default_master_cf[] =
    "# service type  private unpriv  chroot  wakeup  maxproc command + args\n"
    "smtp      inet  n       -       n       -       -       smtpd\n";

const char *instance_default_dir(void)
{
    const char *d = getenv("TERN_CONFIG");
    if (!d || !*d)
        d = getenv("MAIL_CONFIG");
    return d && *d ? d : "/etc/tern";
}

static char *absolute(const char *path)
{
    if (path[0] == '/')
        return xstrdup(path);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        return xstrdup(path);
    return xasprintf("%s/%s", cwd, path);
}

int instance_load(struct instance *in, const char *config_dir, struct strbuf *diag)
{
    memset(in, 0, sizeof *in);
    in->config_dir = absolute(config_dir);
    in->main_cf = xasprintf("%s/main.cf", in->config_dir);
    in->master_cf = xasprintf("%s/master.cf", in->config_dir);
    in->conf = conf_new();
    conf_set(in->conf, "config_directory", in->config_dir, NULL, 0);
    int errors = 0;
    int rc = conf_load_file(in->conf, in->main_cf, diag);
    if (rc < 0 && errno != ENOENT) {
        strbuf_printf(diag, "%s: %s\n", in->main_cf, strerror(errno));
        return -1;
    }
    if (rc > 0)
        errors += rc;
    rc = mastercf_load_file(&in->services, in->master_cf, diag);
    if (rc < 0) {
        if (errno != ENOENT) {
            strbuf_printf(diag, "%s: %s\n", in->master_cf, strerror(errno));
            return -1;
        }
        mastercf_load_string(&in->services, default_master_cf, "(built-in master.cf)", diag);
    } else {
        in->have_master_cf = 1;
        errors += rc;
    }
    return errors ? -1 : 0;
}

void instance_free(struct instance *in)
{
    if (in->conf)
        conf_free(in->conf);
    mastercf_free(&in->services);
    free(in->config_dir);
    free(in->main_cf);
    free(in->master_cf);
    memset(in, 0, sizeof *in);
}

const char *instance_queue_dir(struct instance *in)
{
    return conf_str(in->conf, "queue_directory");
}

static int make_dir(const char *path, mode_t mode, uid_t uid, gid_t gid, struct strbuf *diag)
{
    if (fsops_mkdir(path, mode) != 0 && errno != EEXIST) {
        strbuf_printf(diag, "mkdir %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (lstat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        strbuf_printf(diag, "%s: not a directory\n", path);
        return -1;
    }
    if (uid != (uid_t)-1 && (sb.st_uid != uid || sb.st_gid != gid) && chown(path, uid, gid) != 0) {
        strbuf_printf(diag, "chown %s: %s\n", path, strerror(errno));
        return -1;
    }
    /* mkdir honours the umask; the modes here are part of the security model */
    if ((sb.st_mode & 07777) != mode && chmod(path, mode) != 0) {
        strbuf_printf(diag, "chmod %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

int instance_prepare_queue(struct instance *in, uid_t uid, gid_t gid, struct strbuf *diag)
{
    const char *q = instance_queue_dir(in);
    if (q[0] != '/') {
        strbuf_printf(diag, "queue_directory must be an absolute path: %s\n", q);
        return -1;
    }
    char *parent = xstrdup(q);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = '\0';
        fsops_mkdir_p(parent, 0755);
    }
    free(parent);
    if (make_dir(q, 0755, uid, gid, diag) != 0)
        return -1;
    static const struct {
        const char *name;
        mode_t mode;
    } dirs[] = {
        {QDIR_INCOMING, 0700}, {QDIR_QUEUE, 0700}, {QDIR_HOLD, 0700},   {QDIR_CORRUPT, 0700},
        {QDIR_PRIVATE, 0700},  {QDIR_PID, 0700},   {QDIR_PUBLIC, 0755}, {QDIR_MAILDROP, 01733},
    };
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        char *p = xasprintf("%s/%s", q, dirs[i].name);
        int rc = make_dir(p, dirs[i].mode, uid, gid, diag);
        free(p);
        if (rc != 0)
            return -1;
    }
    return 0;
}

int instance_write_dev(const char *dir, int port, struct strbuf *diag)
{
    char *abs = absolute(dir);
    char *main_cf = xasprintf("%s/main.cf", abs);
    char *master_cf = xasprintf("%s/master.cf", abs);
    int rc = 0;
    struct stat sb;
    if (stat(main_cf, &sb) == 0)
        goto out;
    if (fsops_mkdir_p(abs, 0755) != 0) {
        strbuf_printf(diag, "mkdir %s: %s\n", abs, strerror(errno));
        rc = -1;
        goto out;
    }
    FILE *f = fopen(main_cf, "w");
    if (!f) {
        strbuf_printf(diag, "%s: %s\n", main_cf, strerror(errno));
        rc = -1;
        goto out;
    }
    fprintf(f,
            "# Development instance written by `tern dev` (make run). Edit freely;\n"
            "# delete this file to get the defaults back.\n"
            "myhostname = localhost\n"
            "mydomain = localhost\n"
            "myorigin = $myhostname\n"
            "mydestination = $myhostname, localhost.$mydomain, localhost\n"
            "inet_interfaces = loopback-only\n"
            "queue_directory = %s/spool\n"
            "maillog_file = %s/maillog\n"
            "# Any local part @localhost is a mailbox: %s/mail/USER/Maildir/\n"
            "local_mailbox_base = %s/mail\n"
            "home_mailbox = Maildir/\n"
            "alias_maps =\n"
            "minimal_backoff_time = 10s\n"
            "maximal_backoff_time = 60s\n",
            abs, abs, abs, abs);
    /* `make run` makes a throwaway self-signed certificate (openssl) so that
     * STARTTLS can be tried at once; never a key from the repository. */
    char *cert = xasprintf("%s/tls/cert.pem", abs), *key = xasprintf("%s/tls/key.pem", abs);
    if (stat(cert, &sb) == 0 && stat(key, &sb) == 0)
        fprintf(f,
                "# A throwaway self-signed certificate made by `make run`: STARTTLS works\n"
                "smtpd_tls_cert_file = %s\n"
                "smtpd_tls_key_file = %s\n",
                cert, key);
    free(cert);
    free(key);
    if (fclose(f) != 0)
        rc = -1;
    f = fopen(master_cf, "w");
    if (!f) {
        strbuf_printf(diag, "%s: %s\n", master_cf, strerror(errno));
        rc = -1;
        goto out;
    }
    fprintf(f,
            "# service        type  private unpriv  chroot  wakeup  maxproc command\n"
            "127.0.0.1:%d  inet  n       -       n       -       -       smtpd\n",
            port);
    if (fclose(f) != 0)
        rc = -1;
out:
    free(abs);
    free(main_cf);
    free(master_cf);
    return rc;
}
