/* maildir: one message into a Maildir, in phases that let deliveries share
 * syncs (see maildir.h). */
#include "local/maildir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "util/fsops.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

/* A name collision needs the same second, microsecond, pid and counter: it
 * only happens when the clock steps back across a pid reuse. A few fresh
 * names are plenty. */
#define NAME_ATTEMPTS 8

struct maildir_delivery {
    char *dir;        /* without trailing '/' */
    char *new_dir;
    char *base_name;  /* unique name without the ",S=" part */
    char *tmp_path;
    char *final_path; /* set by a successful commit */
    int fd;
    off_t size;
    int tmp_exists;
    int committed;
};

static unsigned long delivery_counter;

char *maildir_escape_hostname(const char *hostname)
{
    struct strbuf sb = STRBUF_INIT;
    for (const char *p = hostname; *p; p++) {
        if (*p == '/')
            strbuf_puts(&sb, "\\057");
        else if (*p == ':')
            strbuf_puts(&sb, "\\072");
        else
            strbuf_putc(&sb, *p);
    }
    if (sb.len == 0)
        strbuf_puts(&sb, "localhost");
    return strbuf_detach(&sb);
}

static char *host_part(void)
{
    /* The host name is looked up once per process, not per message. */
    static char *escaped;
    if (!escaped) {
        char host[256];
        if (gethostname(host, sizeof host) != 0)
            str_copy(host, "localhost", sizeof host);
        host[sizeof host - 1] = '\0';
        escaped = maildir_escape_hostname(host);
    }
    return xstrdup(escaped);
}

static char *unique_base_name(const char *host)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    delivery_counter++;
    return xasprintf("%lld.M%ldP%ldQ%lu.%s", (long long)tv.tv_sec, (long)tv.tv_usec,
                     (long)getpid(), delivery_counter, host);
}

static char *without_trailing_slashes(const char *dir)
{
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/')
        len--;
    return xstrndup(dir, len);
}

static char *parent_of(const char *dir)
{
    const char *slash = strrchr(dir, '/');
    if (!slash)
        return xstrdup(".");
    if (slash == dir)
        return xstrdup("/");
    return xstrndup(dir, (size_t)(slash - dir));
}

/* 1 if created, 0 if it existed, -1 on error (err filled). */
static int make_dir(const char *path, uid_t uid, gid_t gid, struct deliver_error *err)
{
    if (fsops_mkdir(path, 0700) != 0) {
        if (errno == EEXIST)
            return 0;
        deliver_error_errno(err, errno, "cannot create maildir directory %s", path);
        return -1;
    }
    /* lchown: if the new directory were swapped for a symlink we must not
     * give away whatever it points to. */
    if (uid != (uid_t)-1 && lchown(path, uid, gid) != 0) {
        deliver_error_errno(err, errno, "cannot change owner of maildir directory %s", path);
        return -1;
    }
    return 1;
}

/* A directory we create is only durable once its parent is synced; without
 * that a crash could take new/ and the message in it away after we
 * reported success. Existing directories cost nothing. */
static int ensure_dirs(const char *dir, uid_t uid, gid_t gid, struct deliver_error *err)
{
    int rc = make_dir(dir, uid, gid, err);
    if (rc < 0)
        return -1;
    if (rc > 0) {
        char *parent = parent_of(dir);
        int sync_rc = fsops_fsync_dir(parent);
        if (sync_rc != 0)
            deliver_error_errno(err, errno, "cannot sync directory %s", parent);
        free(parent);
        if (sync_rc != 0)
            return -1;
    }

    static const char *const subdirs[] = {"tmp", "new", "cur"};
    int created_any = 0;
    for (size_t i = 0; i < sizeof subdirs / sizeof subdirs[0]; i++) {
        char *path = xasprintf("%s/%s", dir, subdirs[i]);
        rc = make_dir(path, uid, gid, err);
        free(path);
        if (rc < 0)
            return -1;
        created_any |= rc;
    }
    if (created_any && fsops_fsync_dir(dir) != 0) {
        deliver_error_errno(err, errno, "cannot sync maildir directory %s", dir);
        return -1;
    }
    return 0;
}

static void close_file(struct maildir_delivery *d)
{
    if (d->fd >= 0)
        close(d->fd);
    d->fd = -1;
}

static void remove_tmp(struct maildir_delivery *d)
{
    close_file(d);
    if (d->tmp_exists && fsops_unlink(d->tmp_path) != 0 && errno != ENOENT)
        log_warn("cannot remove maildir file %s: %s", d->tmp_path, strerror(errno));
    d->tmp_exists = 0;
}

int maildir_begin(const char *dir, uid_t uid, gid_t gid, const struct deliver_input *in,
                  struct maildir_delivery **out, struct deliver_error *err)
{
    *out = NULL;
    if (!dir || !*dir) {
        deliver_error_set(err, 1, "4.3.5", "maildir path is empty");
        return -1;
    }
    struct maildir_delivery *d = xcalloc(1, sizeof *d);
    d->fd = -1;
    d->dir = without_trailing_slashes(dir);
    d->new_dir = xasprintf("%s/new", d->dir);

    /* The directories are made only when the file cannot be created: an
     * existing Maildir costs no mkdir calls (new/ is checked again at commit). */
    char *host = host_part();
    for (int ensured = 0;; ensured = 1) {
        for (int attempt = 0; attempt < NAME_ATTEMPTS && d->fd < 0; attempt++) {
            free(d->base_name);
            free(d->tmp_path);
            d->base_name = unique_base_name(host);
            d->tmp_path = xasprintf("%s/tmp/%s", d->dir, d->base_name);
            d->fd = fsops_open(d->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY,
                            0600);
            if (d->fd < 0 && errno != EEXIST)
                break;
        }
        if (d->fd >= 0 || errno != ENOENT || ensured)
            break;
        if (ensure_dirs(d->dir, uid, gid, err) != 0) {
            free(host);
            goto fail;
        }
    }
    free(host);
    if (d->fd < 0) {
        deliver_error_errno(err, errno, "cannot create maildir file %s", d->tmp_path);
        goto fail;
    }
    d->tmp_exists = 1;

    if (uid != (uid_t)-1 && fchown(d->fd, uid, gid) != 0) {
        deliver_error_errno(err, errno, "cannot change owner of maildir file %s", d->tmp_path);
        goto fail;
    }
    char *what = xasprintf("maildir file %s", d->tmp_path);
    int rc = deliver_copy_reporting(in, d->fd, 0, &d->size, what, err);
    free(what);
    if (rc != 0)
        goto fail;
    *out = d;
    return 0;

fail:
    maildir_free(d);
    return -1;
}

int maildir_sync_file(struct maildir_delivery *d, struct deliver_error *err)
{
    if (d->fd < 0) {
        deliver_error_set(err, 1, "4.3.0", "maildir delivery to %s has no open file", d->dir);
        return -1;
    }
    if (fsops_fsync(d->fd) != 0) {
        deliver_error_errno(err, errno, "cannot sync maildir file %s", d->tmp_path);
        return -1;
    }
    return 0;
}

int maildir_fd(struct maildir_delivery *d)
{
    return d->fd;
}

static int link_unsupported(int e)
{
    return e == EPERM || e == ENOTSUP || e == EOPNOTSUPP || e == ENOSYS || e == EXDEV || e == EMLINK;
}

int maildir_commit(struct maildir_delivery *d, struct deliver_error *err)
{
    if (d->committed)
        return 0;
    if (!d->tmp_exists) {
        deliver_error_set(err, 1, "4.3.0", "maildir delivery to %s was aborted", d->dir);
        return -1;
    }
    /* close() is where some network file systems report write errors. */
    int fd = d->fd;
    d->fd = -1;
    if (fd >= 0 && close(fd) != 0 && errno != EINTR) {
        deliver_error_errno(err, errno, "cannot write maildir file %s", d->tmp_path);
        remove_tmp(d);
        return -1;
    }

    char *host = NULL;
    char *final = NULL;
    int linked = 0, renamed = 0, e = 0;
    for (int attempt = 0; attempt < NAME_ATTEMPTS && !linked && !renamed; attempt++) {
        if (attempt > 0) {
            if (!host)
                host = host_part();
            free(d->base_name);
            d->base_name = unique_base_name(host);
        }
        free(final);
        final = xasprintf("%s/%s,S=%lld", d->new_dir, d->base_name, (long long)d->size);
        /* link, not rename: it never replaces an existing message. */
        if (fsops_link(d->tmp_path, final) == 0) {
            linked = 1;
        } else if (errno == EEXIST) {
            e = errno;
        } else if (link_unsupported(errno)) {
            if (fsops_rename(d->tmp_path, final) == 0)
                renamed = 1;
            else {
                e = errno;
                break;
            }
        } else {
            e = errno;
            break;
        }
    }
    free(host);
    if (!linked && !renamed) {
        deliver_error_errno(err, e, "cannot move maildir file %s to %s", d->tmp_path, final);
        free(final);
        remove_tmp(d);
        return -1;
    }
    if (linked && fsops_unlink(d->tmp_path) != 0)
        /* Delivered all the same; readers clean up tmp/ files older than 36 hours. */
        log_warn("cannot remove maildir file %s: %s", d->tmp_path, strerror(errno));
    d->tmp_exists = 0;
    d->committed = 1;
    d->final_path = final;
    return 0;
}

const char *maildir_new_dir(struct maildir_delivery *d)
{
    return d->new_dir;
}

const char *maildir_final_path(struct maildir_delivery *d)
{
    return d->final_path;
}

off_t maildir_size(struct maildir_delivery *d)
{
    return d->size;
}

void maildir_abort(struct maildir_delivery *d)
{
    if (!d || d->committed)
        return;
    remove_tmp(d);
}

int maildir_withdraw(struct maildir_delivery *d)
{
    if (!d->committed) {
        errno = EINVAL;
        return -1;
    }
    if (fsops_unlink(d->final_path) != 0 && errno != ENOENT)
        return -1;
    d->committed = 0;
    free(d->final_path);
    d->final_path = NULL;
    return 0;
}

void maildir_free(struct maildir_delivery *d)
{
    if (!d)
        return;
    maildir_abort(d);
    close_file(d);
    free(d->dir);
    free(d->new_dir);
    free(d->base_name);
    free(d->tmp_path);
    free(d->final_path);
    free(d);
}

int maildir_deliver(const char *dir, uid_t uid, gid_t gid, const struct deliver_input *in,
                    char **final_path, struct deliver_error *err)
{
    if (final_path)
        *final_path = NULL;
    struct maildir_delivery *d;
    if (maildir_begin(dir, uid, gid, in, &d, err) != 0)
        return -1;
    if (maildir_sync_file(d, err) != 0 || maildir_commit(d, err) != 0) {
        maildir_free(d);
        return -1;
    }
    if (fsops_fsync_dir(d->new_dir) != 0) {
        deliver_error_errno(err, errno, "cannot sync maildir directory %s", d->new_dir);
        if (maildir_withdraw(d) != 0)
            log_warn("cannot withdraw unsynced maildir file %s: %s", d->final_path,
                     strerror(errno));
        maildir_free(d);
        return -1;
    }
    if (final_path)
        *final_path = xstrdup(d->final_path);
    maildir_free(d);
    return 0;
}
