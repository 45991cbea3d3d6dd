/* master_files: the master's pid lock and log file (see master_files.h). */
#include "daemon/master_files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/instance.h"
#include "spool/spool.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/strbuf.h"
#include "util/trusted_dir.h"

/* Opens pid/master.pid as a file root made, never through a link or a
 * second name: with the old layout mail_owner could write pid/, and may
 * have left a link to a root file there. Anything else is removed. The
 * file is the owner's alone (0600): whoever can open it can lock it, and a
 * lock held by someone else would keep the master from starting. */
static int open_pid_file(int pid_dir_fd, const char *queue_dir, struct strbuf *diag)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        int fd = openat(pid_dir_fd, QFILE_MASTER_PID, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
        struct stat sb;
        const char *wrong = NULL;
        if (fd < 0 && errno != ELOOP) {
            strbuf_printf(diag, "%s/%s/%s: %s\n", queue_dir, QDIR_PID, QFILE_MASTER_PID, strerror(errno));
            return -1;
        }
        if (fd < 0)
            wrong = "a symbolic link";
        else if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))
            wrong = "not a plain file";
        else if (sb.st_nlink != 1)
            wrong = "a file with more than one name";
        else if (sb.st_uid != geteuid())
            wrong = "a file of another user";
        if (!wrong && (sb.st_mode & 07777) != 0600 && fchmod(fd, 0600) != 0)
            wrong = "a file whose mode cannot be set";
        if (!wrong)
            return fd;
        if (fd >= 0)
            close(fd);
        log_warn("%s/%s/%s was %s; removed", queue_dir, QDIR_PID, QFILE_MASTER_PID, wrong);
        if (unlinkat(pid_dir_fd, QFILE_MASTER_PID, 0) != 0 && errno != ENOENT) {
            strbuf_printf(diag, "%s/%s/%s: cannot remove: %s\n", queue_dir, QDIR_PID, QFILE_MASTER_PID,
                          strerror(errno));
            return -1;
        }
    }
    strbuf_printf(diag, "%s/%s/%s: keeps changing\n", queue_dir, QDIR_PID, QFILE_MASTER_PID);
    return -1;
}

int pidlock_take(int queue_fd, const char *queue_dir, int *pid_dir_fd_out, int *lock_fd_out, struct strbuf *diag)
{
    int pid_dir_fd = openat(queue_fd, QDIR_PID, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    *pid_dir_fd_out = pid_dir_fd;
    *lock_fd_out = -1;
    if (pid_dir_fd < 0) {
        strbuf_printf(diag, "%s/%s: %s\n", queue_dir, QDIR_PID, strerror(errno));
        return -1;
    }
    int lock_fd = open_pid_file(pid_dir_fd, queue_dir, diag);
    if (lock_fd < 0)
        return -1;
    if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
        pid_t pid = instance_lock_holder(lock_fd);
        if (pid > 0)
            strbuf_printf(diag, "the tern instance using %s is already running (pid %ld)\n", queue_dir,
                          (long)pid);
        else
            strbuf_printf(diag, "the tern instance using %s is already running\n", queue_dir);
        /* Not ours: the exit path must not unlink the running master's pid file. */
        close(lock_fd);
        return -1;
    }
    /* A master that was stopping may have removed the name after we opened
     * it: then the lock is on a file nobody else will find. */
    struct stat held, named;
    if (fstat(lock_fd, &held) != 0 || fstatat(pid_dir_fd, QFILE_MASTER_PID, &named, AT_SYMLINK_NOFOLLOW) != 0 ||
        held.st_ino != named.st_ino || held.st_dev != named.st_dev) {
        strbuf_printf(diag, "%s/%s/%s changed while starting; try again\n", queue_dir, QDIR_PID,
                      QFILE_MASTER_PID);
        close(lock_fd);
        return -1;
    }
    *lock_fd_out = lock_fd;
    return 0;
}

void pidlock_publish(int lock_fd)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    /* only the owner opens the file, and the parent of `tern start` never
     * takes this lock: nothing to wait for */
    if (fcntl(lock_fd, F_SETLK, &fl) != 0)
        log_warn("cannot lock the pid file: %s; tern stop will not find this master", strerror(errno));
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    if (ftruncate(lock_fd, 0) != 0 || pwrite(lock_fd, buf, (size_t)n, 0) != n)
        log_warn("cannot write the pid file");
}

int maillog_open(const char *path, gid_t group, struct strbuf *diag)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (path[0] != '/' || !*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
        strbuf_printf(diag, "maillog_file %s: must be the absolute path of a file\n", path);
        return -1;
    }
    char *dir = slash == path ? xstrdup("/") : xstrndup(path, (size_t)(slash - path));
    struct strbuf why = STRBUF_INIT;
    int dfd = trusted_dir_open(dir, &why);
    if (dfd < 0) {
        strbuf_printf(diag,
                      "maillog_file %s: %s; root writes its log only in a directory no other user can change "
                      "(as /var/log/tern/, made by root with mode 0755)\n",
                      path, strbuf_str(&why));
        strbuf_free(&why);
        free(dir);
        return -1;
    }
    strbuf_free(&why);
    free(dir);
    int fd = openat(dfd, base, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0660);
    int e = errno;
    close(dfd);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        strbuf_printf(diag, "maillog_file %s: %s\n", path, e == ELOOP ? "is a symbolic link" : strerror(e));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    /* The name is in root's own directory, so only root made it; a second
     * name elsewhere is harmless while the file is already the log, root's
     * with the mail owner's group (the group may link it, and must not be
     * able to keep tern from starting that way). Owner or mode to change on
     * a file with more names: refused, that is no log file of ours. */
    int ours = sb.st_uid == 0 && sb.st_gid == group && (sb.st_mode & 07777) == 0660;
    if (!S_ISREG(sb.st_mode) || (sb.st_nlink != 1 && !ours)) {
        strbuf_printf(diag, "maillog_file %s: %s\n", path,
                      S_ISREG(sb.st_mode) ? "has more than one name (a hard link)" : "is not a plain file");
        close(fd);
        return -1;
    }
    if (sb.st_nlink != 1)
        log_warn("maillog_file %s has %ju names (a hard link elsewhere); it is still the log", path,
                 (uintmax_t)sb.st_nlink);
    if ((sb.st_uid != 0 || sb.st_gid != group) && fchown(fd, 0, group) != 0)
        strbuf_printf(diag, "maillog_file %s: chown: %s\n", path, strerror(errno));
    else if ((sb.st_mode & 07777) != 0660 && fchmod(fd, 0660) != 0)
        strbuf_printf(diag, "maillog_file %s: chmod: %s\n", path, strerror(errno));
    else
        return fd;
    close(fd);
    return -1;
}

int maillog_use(const char *path, int as_root, gid_t group, struct strbuf *diag)
{
    if (!*path || !as_root) {
        log_set_file(path);
        return 0;
    }
    int fd = maillog_open(path, group, diag);
    if (fd < 0)
        return -1;
    log_set_file_fd(path, fd);
    return 0;
}
