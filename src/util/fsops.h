/* fsops: the one table through which the queue and the delivery agents make
 * their file-system calls.
 *
 * Production code calls fsops_open(), fsops_write() ... which go through the
 * current table (the real system calls by default). Tests install a table
 * that fails chosen calls with ENOSPC or EIO to prove that no failure loses
 * an acknowledged message. fsops_write_all() loops over short writes. */
#ifndef TERN_UTIL_FSOPS_H
#define TERN_UTIL_FSOPS_H

#include <stddef.h>
#include <stdint.h>
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
    int (*linkat)(int fromdir, const char *from, int todir, const char *to, int flags);
    int (*unlink)(const char *path);
    int (*unlinkat)(int dirfd, const char *path, int flags);
    int (*mkdir)(const char *path, mode_t mode);
    int (*ftruncate)(int fd, off_t len);
    ssize_t (*pread)(int fd, void *buf, size_t len, off_t off);
};

extern const struct fsops fsops_real;
/* Installs a table (NULL restores the real one); returns the previous one. */
const struct fsops *fsops_install(const struct fsops *ops);
const struct fsops *fsops_current(void);

int fsops_open(const char *path, int flags, mode_t mode);
int fsops_openat(int dirfd, const char *path, int flags, mode_t mode);
ssize_t fsops_write(int fd, const void *buf, size_t len);
ssize_t fsops_pwrite(int fd, const void *buf, size_t len, off_t off);
int fsops_fsync(int fd);
int fsops_fdatasync(int fd);
int fsops_syncfs(int fd);
int fsops_rename(const char *from, const char *to);
int fsops_renameat(int fromdir, const char *from, int todir, const char *to);
int fsops_link(const char *from, const char *to);
int fsops_linkat(int fromdir, const char *from, int todir, const char *to, int flags);
int fsops_unlink(const char *path);
int fsops_unlinkat(int dirfd, const char *path, int flags);
int fsops_mkdir(const char *path, mode_t mode);
int fsops_ftruncate(int fd, off_t len);
ssize_t fsops_pread(int fd, void *buf, size_t len, off_t off);

/* Writes all of buf (retrying short writes and EINTR); 0 or -1 with errno. */
int fsops_write_all(int fd, const void *buf, size_t len);
int fsops_pwrite_all(int fd, const void *buf, size_t len, off_t off);
/* Reads exactly len bytes at off (retrying short reads and EINTR); 0, or -1
 * with errno (EIO when the file ends first). */
int fsops_pread_all(int fd, void *buf, size_t len, off_t off);
/* Copies the first len bytes of in_fd to out_fd's position; 0, or -1 with
 * errno (EIO when in_fd ends first). */
int fsops_copy_all(int out_fd, int in_fd, uint64_t len);
/* Creates dirfd/name (O_EXCL, mode 0600) holding the first len bytes of
 * in_fd; its descriptor (open for writing, at the end), or -1 with errno and
 * nothing left behind. */
int fsops_copy_to_new(int dirfd, const char *name, int in_fd, uint64_t len);
/* The same holding buf's len bytes. */
int fsops_write_new(int dirfd, const char *name, const void *buf, size_t len);
/* fstat(2) and fstatat(2) without the times: st_dev, st_ino, st_mode,
 * st_nlink, st_uid, st_gid and st_size are filled, the times left zero
 * (where statx cannot answer, a plain fstatat does, times and all); 0 or
 * -1 with errno. fsops_stat_no_times: path relative to dirfd, flags
 * AT_SYMLINK_NOFOLLOW or 0. For files that are written after they are looked at (a
 * journal segment, a mailbox, a Maildir file about to be linked): a stat
 * that returns ctime or mtime marks them as seen, and on a file system with
 * multigrain timestamps (ext4, xfs, btrfs, tmpfs since Linux 6.13) the
 * file's next change then takes a fresh fine-grained time. That moves the
 * time every later write on the machine is stamped with, so the journal
 * segment gets a new mtime at each append, and on ext4 without a journal its
 * next fdatasync writes the segment's inode too: measured, 3 disk writes per
 * commit instead of 2, +40% per fdatasync. */
int fsops_fstat_no_times(int fd, struct stat *st);
int fsops_stat_no_times(int dirfd, const char *path, int flags, struct stat *st);
/* fsyncs the directory at path; 0 or -1 with errno. */
int fsops_fsync_dir(const char *path);
/* mkdir -p with mode for each created component; 0 or -1 with errno. */
int fsops_mkdir_p(const char *path, mode_t mode);

#endif
