/* fsops: the one table through which the queue and the delivery agents make
 * their file-system calls.
 *
 * Production code calls fs_open(), fs_write() ... which go through the
 * current table (the real system calls by default). Tests install a table
 * that fails chosen calls with ENOSPC or EIO to prove that no failure loses
 * an acknowledged message. fs_write_all() loops over short writes. */
#ifndef TERN_UTIL_FSOPS_H
#define TERN_UTIL_FSOPS_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

struct fsops {
    int (*open)(const char *path, int flags, mode_t mode);
    int (*openat)(int dirfd, const char *path, int flags, mode_t mode);
    ssize_t (*write)(int fd, const void *buf, size_t len);
    ssize_t (*pwrite)(int fd, const void *buf, size_t len, off_t off);
    int (*fsync)(int fd);
    int (*fdatasync)(int fd);
    int (*syncfs)(int fd);
    int (*rename)(const char *from, const char *to);
    int (*renameat)(int fromdir, const char *from, int todir, const char *to);
    int (*link)(const char *from, const char *to);
    int (*unlink)(const char *path);
    int (*unlinkat)(int dirfd, const char *path, int flags);
    int (*mkdir)(const char *path, mode_t mode);
    int (*ftruncate)(int fd, off_t len);
};

extern const struct fsops fsops_real;
/* Installs a table (NULL restores the real one); returns the previous one. */
const struct fsops *fsops_install(const struct fsops *ops);
const struct fsops *fsops_current(void);

int fs_open(const char *path, int flags, mode_t mode);
int fs_openat(int dirfd, const char *path, int flags, mode_t mode);
ssize_t fs_write(int fd, const void *buf, size_t len);
ssize_t fs_pwrite(int fd, const void *buf, size_t len, off_t off);
int fs_fsync(int fd);
int fs_fdatasync(int fd);
int fs_syncfs(int fd);
int fs_rename(const char *from, const char *to);
int fs_renameat(int fromdir, const char *from, int todir, const char *to);
int fs_link(const char *from, const char *to);
int fs_unlink(const char *path);
int fs_unlinkat(int dirfd, const char *path, int flags);
int fs_mkdir(const char *path, mode_t mode);
int fs_ftruncate(int fd, off_t len);

/* Writes all of buf (retrying short writes and EINTR); 0 or -1 with errno. */
int fs_write_all(int fd, const void *buf, size_t len);
int fs_pwrite_all(int fd, const void *buf, size_t len, off_t off);
/* fsyncs the directory at path; 0 or -1 with errno. */
int fs_fsync_dir(const char *path);
/* mkdir -p with mode for each created component; 0 or -1 with errno. */
int fs_mkdir_p(const char *path, mode_t mode);

#endif
