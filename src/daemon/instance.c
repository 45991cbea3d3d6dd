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
#include "util/trusted_dir.h"

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

/* Makes (if missing) and opens the directory name under dirfd without
 * following a link, and gives it its owner and mode through the descriptor:
 * nothing here re-resolves a path that another user could change. */
static int make_dir_at(int dirfd, const char *shown, const char *name, mode_t mode, uid_t uid, gid_t gid,
                       struct strbuf *diag)
{
    if (mkdirat(dirfd, name, mode) != 0 && errno != EEXIST) {
        strbuf_printf(diag, "mkdir %s: %s\n", shown, strerror(errno));
        return -1;
    }
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        strbuf_printf(diag, "%s: %s\n", shown, errno == ELOOP || errno == ENOTDIR ? "not a directory" : strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (uid != (uid_t)-1 && (sb.st_uid != uid || sb.st_gid != gid) && fchown(fd, uid, gid) != 0) {
        strbuf_printf(diag, "chown %s: %s\n", shown, strerror(errno));
        close(fd);
        return -1;
    }
    /* mkdir honours the umask; the modes here are part of the security model */
    if ((sb.st_mode & 07777) != mode && fchmod(fd, mode) != 0) {
        strbuf_printf(diag, "chmod %s: %s\n", shown, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

const struct instance_queue_dir instance_queue_dirs[] = {
    {QDIR_INCOMING, 0700, 1}, {QDIR_QUEUE, 0700, 1},  {QDIR_HOLD, 0700, 1},   {QDIR_CORRUPT, 0700, 1},
    {QDIR_MAILDROP, 01733, 1}, {QDIR_PRIVATE, 0711, 0}, {QDIR_PUBLIC, 0755, 0}, {QDIR_PID, 0755, 0},
    {QDIR_DMARC, 0700, 1}, {QDIR_CAPTURE, 0700, 1}, {QDIR_CAPTURE_RULES, 0700, 1}, {QDIR_JOURNAL, 0700, 1},
    {NULL, 0, 0},
};

int instance_prepare_queue(struct instance *in, uid_t uid, gid_t gid, struct strbuf *diag)
{
    const char *q = instance_queue_dir(in);
    if (q[0] != '/') {
        strbuf_printf(diag, "queue_directory must be an absolute path: %s\n", q);
        return -1;
    }
    char *parent = xstrdup(q);
    char *slash = strrchr(parent, '/');
    const char *base = q + (slash - parent) + 1;
    if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
        strbuf_printf(diag, "queue_directory must name a directory: %s\n", q);
        free(parent);
        return -1;
    }
    *slash = '\0';
    if (!*parent)
        strcpy(parent, "/");
    fsops_mkdir_p(parent, 0755);
    int root = uid != (uid_t)-1;
    int parent_fd;
    if (root) {
        /* root creates and owns the queue directory: the path to it must be
         * one that no other user can redirect */
        struct strbuf why = STRBUF_INIT;
        parent_fd = trusted_dir_open(parent, &why);
        if (parent_fd < 0)
            strbuf_printf(diag, "queue_directory %s: %s; root keeps its queue only below directories no other "
                          "user can change\n", q, strbuf_str(&why));
        strbuf_free(&why);
    } else {
        parent_fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (parent_fd < 0)
            strbuf_printf(diag, "%s: %s\n", parent, strerror(errno));
    }
    free(parent);
    if (parent_fd < 0)
        return -1;
    /* The queue directory, pid/, private/ and public/ are root's: the
     * master acts there as root. mail_owner owns only what it writes. */
    int qfd = make_dir_at(parent_fd, q, base, 0755, root ? 0 : (uid_t)-1, root ? 0 : (gid_t)-1, diag);
    close(parent_fd);
    if (qfd < 0)
        return -1;
    for (const struct instance_queue_dir *d = instance_queue_dirs; d->name; d++) {
        char *shown = xasprintf("%s/%s", q, d->name);
        uid_t du = !root ? (uid_t)-1 : d->mail_owner ? uid : 0;
        gid_t dg = !root ? (gid_t)-1 : d->mail_owner ? gid : 0;
        int fd = make_dir_at(qfd, shown, d->name, d->mode, du, dg, diag);
        free(shown);
        if (fd < 0) {
            close(qfd);
            return -1;
        }
        close(fd);
    }
    return qfd;
}

pid_t instance_lock_holder(int fd)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    /* a read lock says nothing: anyone who may read the file can take one */
    if (fcntl(fd, F_GETLK, &fl) != 0 || fl.l_type != F_WRLCK || fl.l_pid <= 0)
        return 0;
    return fl.l_pid;
}

pid_t instance_running_master(struct instance *in, struct strbuf *why)
{
    char *pid_dir = xasprintf("%s/%s", instance_queue_dir(in), QDIR_PID);
    int as_root = geteuid() == 0;
    /* root signals what it finds here: only a pid/ no other user can change */
    int dfd = as_root ? trusted_dir_open(pid_dir, why) : open(pid_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    pid_t pid = 0;
    if (dfd < 0) {
        if (errno == ENOENT) {
            strbuf_reset(why);
        } else {
            if (!as_root)
                strbuf_printf(why, "%s: %s", pid_dir, strerror(errno));
            pid = -1;
        }
        free(pid_dir);
        return pid;
    }
    int fd = openat(dfd, QFILE_MASTER_PID, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat sb;
    if (fd < 0) {
        if (errno != ENOENT) {
            strbuf_printf(why, "%s/%s: %s", pid_dir, QFILE_MASTER_PID, strerror(errno));
            pid = -1;
        }
    } else if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (sb.st_uid != 0 && sb.st_uid != geteuid()) ||
               (sb.st_mode & (S_IWGRP | S_IWOTH))) {
        /* the lock's holder opened the file for writing: only its owner can */
        strbuf_printf(why, "%s/%s is not a plain file that only root%s can write", pid_dir, QFILE_MASTER_PID,
                      as_root ? "" : " or you");
        pid = -1;
    } else {
        pid = instance_lock_holder(fd);
    }
    if (fd >= 0)
        close(fd);
    close(dfd);
    free(pid_dir);
    return pid;
}

int instance_write_dev(const char *dir, int port, int http_port, struct strbuf *diag)
{
    char http[32];
    snprintf(http, sizeof http, "127.0.0.1:%d", http_port);
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
            "maximal_backoff_time = 60s\n"
            "# Capture mode: every message is kept and shown on the page and API at\n"
            "# http://%s/ (README: \"Testing your application's mail\");\n"
            "# mail for localhost also lands in the Maildirs above, and mail for\n"
            "# other domains never leaves this machine. Any SMTP AUTH login works.\n"
            "capture = copy\n"
            "capture_http_address = %s\n"
            "default_transport = discard:kept by tern dev's capture mode, not relayed\n"
            "# Captured mail is kept as files; small journal segments for the rest\n"
            "queue_journal_segment_size = 4194304\n",
            abs, abs, abs, abs, http, http);
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
