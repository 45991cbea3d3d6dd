/* fsops: file-system call table with fault-injection hook (see fsops.h). */
#include "util/fsops.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
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
    .unlink = unlink,
    .unlinkat = unlinkat,
    .mkdir = mkdir,
    .ftruncate = ftruncate,
};

static const struct fsops *fs_ops = &fsops_real;

const struct fsops *fsops_install(const struct fsops *ops)
{
    const struct fsops *old = fs_ops;
    fs_ops = ops ? ops : &fsops_real;
    return old;
}

const struct fsops *fsops_current(void)
{
    return fs_ops;
}

int fs_open(const char *path, int flags, mode_t mode) { return fs_ops->open(path, flags, mode); }
int fs_openat(int dirfd, const char *path, int flags, mode_t mode) { return fs_ops->openat(dirfd, path, flags, mode); }
ssize_t fs_write(int fd, const void *buf, size_t len) { return fs_ops->write(fd, buf, len); }
ssize_t fs_pwrite(int fd, const void *buf, size_t len, off_t off) { return fs_ops->pwrite(fd, buf, len, off); }
int fs_fsync(int fd) { return fs_ops->fsync(fd); }
int fs_fdatasync(int fd) { return fs_ops->fdatasync(fd); }
int fs_syncfs(int fd) { return fs_ops->syncfs(fd); }
int fs_rename(const char *from, const char *to) { return fs_ops->rename(from, to); }
int fs_renameat(int fromdir, const char *from, int todir, const char *to) { return fs_ops->renameat(fromdir, from, todir, to); }
int fs_link(const char *from, const char *to) { return fs_ops->link(from, to); }
int fs_unlink(const char *path) { return fs_ops->unlink(path); }
int fs_unlinkat(int dirfd, const char *path, int flags) { return fs_ops->unlinkat(dirfd, path, flags); }
int fs_mkdir(const char *path, mode_t mode) { return fs_ops->mkdir(path, mode); }
int fs_ftruncate(int fd, off_t len) { return fs_ops->ftruncate(fd, len); }

int fs_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = fs_write(fd, p, len);
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

int fs_pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = fs_pwrite(fd, p, len, off);
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

int fs_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fs_fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int fs_mkdir_p(const char *path, mode_t mode)
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
        if (fs_mkdir(buf, mode) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (fs_mkdir(buf, mode) != 0 && errno != EEXIST)
        return -1;
    return 0;
}
