/* fsops: file-system call table with fault-injection hook (see fsops.h). */
#include "util/fsops.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static int real_open(const char *path, int flags, mode_t mode)
{
    return open(path, flags, mode);
}

static int real_openat(int dirfd, const char *path, int flags, mode_t mode)
{
    return openat(dirfd, path, flags, mode);
}

static int real_renameat(int fromdir, const char *from, int todir, const char *to)
{
    return renameat(fromdir, from, todir, to);
}

const struct fsops fsops_real = {
    .open = real_open,
    .openat = real_openat,
    .write = write,
    .pwrite = pwrite,
    .fsync = fsync,
    .fdatasync = fdatasync,
    .syncfs = syncfs,
    .rename = rename,
    .renameat = real_renameat,
    .link = link,
    .linkat = linkat,
    .unlink = unlink,
    .unlinkat = unlinkat,
    .mkdir = mkdir,
    .ftruncate = ftruncate,
    .pread = pread,
};

static const struct fsops *current_ops = &fsops_real;

const struct fsops *fsops_install(const struct fsops *ops)
{
    const struct fsops *old = current_ops;
    current_ops = ops ? ops : &fsops_real;
    return old;
}

const struct fsops *fsops_current(void)
{
    return current_ops;
}

int fsops_open(const char *path, int flags, mode_t mode) { return current_ops->open(path, flags, mode); }
int fsops_openat(int dirfd, const char *path, int flags, mode_t mode) { return current_ops->openat(dirfd, path, flags, mode); }
ssize_t fsops_write(int fd, const void *buf, size_t len) { return current_ops->write(fd, buf, len); }
ssize_t fsops_pwrite(int fd, const void *buf, size_t len, off_t off) { return current_ops->pwrite(fd, buf, len, off); }
int fsops_fsync(int fd) { return current_ops->fsync(fd); }
int fsops_fdatasync(int fd) { return current_ops->fdatasync(fd); }
int fsops_syncfs(int fd) { return current_ops->syncfs(fd); }
int fsops_rename(const char *from, const char *to) { return current_ops->rename(from, to); }
int fsops_renameat(int fromdir, const char *from, int todir, const char *to) { return current_ops->renameat(fromdir, from, todir, to); }
int fsops_linkat(int fromdir, const char *from, int todir, const char *to, int flags) { return current_ops->linkat(fromdir, from, todir, to, flags); }
int fsops_link(const char *from, const char *to) { return current_ops->link(from, to); }
int fsops_unlink(const char *path) { return current_ops->unlink(path); }
int fsops_unlinkat(int dirfd, const char *path, int flags) { return current_ops->unlinkat(dirfd, path, flags); }
int fsops_mkdir(const char *path, mode_t mode) { return current_ops->mkdir(path, mode); }
int fsops_ftruncate(int fd, off_t len) { return current_ops->ftruncate(fd, len); }
ssize_t fsops_pread(int fd, void *buf, size_t len, off_t off) { return current_ops->pread(fd, buf, len, off); }

int fsops_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = fsops_write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0) {
            errno = EIO;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The loop both positional calls share: on until len bytes moved, EINTR
 * retried, a 0 return an error (EIO: the file ended or the disk took none). */
static int positional_all(ssize_t (*op)(int, void *, size_t, off_t), int fd, char *p, size_t len, off_t off)
{
    while (len > 0) {
        ssize_t n = op(fd, p, len, off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0) {
            errno = EIO;
            return -1;
        }
        p += n;
        off += n;
        len -= (size_t)n;
    }
    return 0;
}

static ssize_t pwrite_op(int fd, void *buf, size_t len, off_t off)
{
    return fsops_pwrite(fd, buf, len, off);
}

static ssize_t pread_op(int fd, void *buf, size_t len, off_t off)
{
    return fsops_pread(fd, buf, len, off);
}

int fsops_pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
    return positional_all(pwrite_op, fd, (char *)buf, len, off);   /* pwrite only reads buf */
}

int fsops_pread_all(int fd, void *buf, size_t len, off_t off)
{
    return positional_all(pread_op, fd, buf, len, off);
}

int fsops_copy_all(int out_fd, int in_fd, uint64_t len)
{
    char buf[65536];
    for (uint64_t off = 0; off < len;) {
        size_t n = len - off < sizeof buf ? (size_t)(len - off) : sizeof buf;
        if (fsops_pread_all(in_fd, buf, n, (off_t)off) != 0 || fsops_write_all(out_fd, buf, n) != 0)
            return -1;
        off += n;
    }
    return 0;
}

int fsops_stat_no_times(int dirfd, const char *path, int flags, struct stat *st)
{
    const unsigned want = STATX_TYPE | STATX_MODE | STATX_NLINK | STATX_UID | STATX_GID | STATX_INO | STATX_SIZE;
    struct statx sx;
    if (statx(dirfd, path, flags, want, &sx) != 0) {
        /* a kernel or a seccomp filter without statx: the times then, but
         * an answer */
        if (errno == ENOSYS || errno == EPERM || errno == EINVAL)
            return fstatat(dirfd, path, st, flags);
        return -1;
    }
    if ((sx.stx_mask & want) != want) /* a file system that leaves some out */
        return fstatat(dirfd, path, st, flags);
    memset(st, 0, sizeof *st);
    st->st_dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
    st->st_ino = (ino_t)sx.stx_ino;
    st->st_mode = (mode_t)sx.stx_mode;
    st->st_nlink = (nlink_t)sx.stx_nlink;
    st->st_uid = (uid_t)sx.stx_uid;
    st->st_gid = (gid_t)sx.stx_gid;
    st->st_size = (off_t)sx.stx_size;
    return 0;
}

int fsops_fstat_no_times(int fd, struct stat *st)
{
    return fsops_stat_no_times(fd, "", AT_EMPTY_PATH, st);
}

/* dirfd/name made and filled from in_fd or, when in_fd is -1, from buf */
static int fill_new(int dirfd, const char *name, int in_fd, const void *buf, uint64_t len)
{
    int fd = fsops_openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -1;
    if ((in_fd >= 0 ? fsops_copy_all(fd, in_fd, len) : fsops_write_all(fd, buf, (size_t)len)) != 0) {
        int e = errno;
        close(fd);
        fsops_unlinkat(dirfd, name, 0);
        errno = e;
        return -1;
    }
    return fd;
}

int fsops_copy_to_new(int dirfd, const char *name, int in_fd, uint64_t len)
{
    return fill_new(dirfd, name, in_fd, NULL, len);
}

int fsops_write_new(int dirfd, const char *name, const void *buf, size_t len)
{
    return fill_new(dirfd, name, -1, buf, len);
}

int fsops_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsops_fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int fsops_mkdir_p(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    if (strlen(path) >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(buf, path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (fsops_mkdir(buf, mode) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (fsops_mkdir(buf, mode) != 0 && errno != EEXIST)
        return -1;
    return 0;
}
