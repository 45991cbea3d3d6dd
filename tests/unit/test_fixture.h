/* test_fixture: what the cmocka unit tests share, so no test writes its own.
 *
 * - test_skip(reason): skips the running test, except under continuous
 *   integration (the environment variable CI set, as CI=true; "" "0" and
 *   "false" count as unset), where a skip FAILS with the reason: a missing
 *   tool or missing test data must never pass silently there.
 * - tf_tmpdir_make / tf_tmpdir_remove: a fresh directory under /tmp and its
 *   removal with everything in it (read-only parts included).
 * - tf_fs_*: a fault-injecting util/fsops table. It counts every call per
 *   operation and fails the ones a test arms ("the Nth call of X from now
 *   fails with errno E"), optionally writing half the bytes first as a
 *   filling disk does; it can hold calls at a gate (the spool's sync thread)
 *   and report each call to a test's hook. Thread-safe.
 * - tf_fs_identity: as root, DAC does not bind; permission tests switch the
 *   file-system identity to an unprivileged one instead of skipping.
 * - tf_read_file: a whole file as a string; tf_log_*: the log sent to a file
 *   whose lines a test counts; tf_count_fds: this process's open descriptors
 *   (a module that closes must leave the count where it was).
 *
 * Header-only: each test binary is one .c file (see the Makefile), so the
 * state below is per test binary. Include it after <cmocka.h>. */
#ifndef TERN_TEST_FIXTURE_H
#define TERN_TEST_FIXTURE_H

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <dirent.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/fsops.h"
#include "util/log.h"
#include "util/strbuf.h"

#define TF_UNUSED __attribute__((unused))

/* ---- skipping ----------------------------------------------------------- */

static TF_UNUSED int tf_under_ci(void)
{
    const char *ci = getenv("CI");
    return ci && *ci && strcmp(ci, "0") != 0 && strcmp(ci, "false") != 0;
}

/* test_skip("fmt", ...): the reason, printf-style. */
#define test_skip(...) tf_skip_(__FILE__, __LINE__, __VA_ARGS__)

/* Reports at the caller's file and line (cmocka's _skip and _fail). */
static TF_UNUSED __attribute__((format(printf, 3, 4), noreturn)) void tf_skip_(const char *file, int line,
                                                                               const char *fmt, ...)
{
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (tf_under_ci()) {
        print_error("%s:%d: would skip, but CI=%s allows no skip: %s\n", file, line, getenv("CI"), reason);
        _fail(file, line);
        abort(); /* not reached: _fail leaves the test */
    }
    print_message("[  SKIPPED ] %s\n", reason);
    _skip(file, line);
    abort(); /* not reached: _skip leaves the test */
}

/* ---- temporary directories ---------------------------------------------- */

/* Makes /tmp/tern-<name>-XXXXXX and writes its path to dir (size bytes, 64
 * is plenty). 0, or -1 with errno. */
static TF_UNUSED int tf_tmpdir_make(char *dir, size_t size, const char *name)
{
    int n = snprintf(dir, size, "/tmp/tern-%s-XXXXXX", name);
    if (n < 0 || (size_t)n >= size) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return mkdtemp(dir) ? 0 : -1;
}

static int tf_open_up_(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_D || flag == FTW_DNR)
        chmod(path, 0700);
    return 0;
}

static int tf_remove_entry_(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes dir and all below it, also where a test left a directory
 * read-only (directories are made writable on a first pass, top down, so
 * that their entries can go on the second, bottom up). 0, or -1 when
 * something stayed. */
static TF_UNUSED int tf_tmpdir_remove(const char *dir)
{
    if (!dir || !dir[0])
        return 0;
    chmod(dir, 0700);
    nftw(dir, tf_open_up_, 16, FTW_PHYS);
    nftw(dir, tf_remove_entry_, 16, FTW_DEPTH | FTW_PHYS);
    return access(dir, F_OK) == 0 ? -1 : 0;
}

/* ---- files and the log -------------------------------------------------- */

/* The whole file at path as a NUL-terminated heap string (*len, when not
 * NULL, gets its size), or NULL when it cannot be opened. */
static TF_UNUSED char *tf_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct strbuf sb = STRBUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        strbuf_append(&sb, chunk, n);
    fclose(f);
    if (len)
        *len = sb.len;
    return strbuf_detach(&sb);
}

static char tf_log_path_[128];

/* Sends the log to dir/log instead of stderr; 0 or -1. */
static TF_UNUSED int tf_log_capture(const char *dir)
{
    snprintf(tf_log_path_, sizeof tf_log_path_, "%s/log", dir);
    log_set_stderr(0);
    log_set_file(tf_log_path_);
    return 0;
}

/* Forgets the lines logged so far (a setup for each test). */
static TF_UNUSED int tf_log_clear(void)
{
    return truncate(tf_log_path_, 0);
}

/* How many captured lines contain needle. */
static TF_UNUSED int tf_log_count(const char *needle)
{
    FILE *f = fopen(tf_log_path_, "r");
    assert_non_null(f);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle))
            n++;
    fclose(f);
    return n;
}

/* The log goes to stderr again. */
static TF_UNUSED void tf_log_release(void)
{
    log_set_file(NULL);
    log_set_stderr(1);
}

/* How many descriptors this process has open (-1: /proc unreadable). The
 * count includes none of its own: the directory stream it reads is not
 * counted. */
static TF_UNUSED int tf_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int self = dirfd(d), n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' && atoi(e->d_name) != self)
            n++;
    closedir(d);
    return n;
}

/* ---- file-system identity ----------------------------------------------- */

#define TF_NOBODY_UID 65534
#define TF_NOBODY_GID 65534

static uid_t tf_give_uid_;
static gid_t tf_give_gid_;

static int tf_give_entry_(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return lchown(path, tf_give_uid_, tf_give_gid_);
}

/* Gives path and everything below it to uid:gid (root only); 0 or -1. */
static TF_UNUSED int tf_give_tree(const char *path, uid_t uid, gid_t gid)
{
    tf_give_uid_ = uid;
    tf_give_gid_ = gid;
    return nftw(path, tf_give_entry_, 16, FTW_PHYS);
}

/* Switches this thread's file-system uid and gid (root only); 0 or -1.
 * tf_fs_identity(0, 0) switches back. */
static TF_UNUSED int tf_fs_identity(uid_t uid, gid_t gid)
{
    setfsgid(gid);
    setfsuid(uid);
    return setfsuid((uid_t)-1) == (int)uid && setfsgid((gid_t)-1) == (int)gid ? 0 : -1;
}

/* ---- fault-injecting fsops ---------------------------------------------- */

enum tf_op {
    TF_OPEN,
    TF_OPENAT,
    TF_WRITE,
    TF_PWRITE,
    TF_FSYNC,
    TF_FDATASYNC,
    TF_SYNCFS,
    TF_RENAME,
    TF_RENAMEAT,
    TF_LINK,
    TF_UNLINK,
    TF_UNLINKAT,
    TF_MKDIR,
    TF_FTRUNCATE,
    TF_PREAD,
    TF_NOPS
};

/* count for calls that fail from nth on, forever */
#define TF_ALWAYS INT_MAX

struct tf_fault {
    int nth;     /* 1-based, counted from when it is armed; 0: not armed */
    int count;   /* how many calls from nth fail (TF_ALWAYS: all); 0 means 1 */
    int err;     /* errno of the failing calls */
    int partial; /* write/pwrite: put half the bytes on disk before failing */
    const char *path_suffix; /* open/openat: only paths ending so count */
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct fsops ops;
    int calls[TF_NOPS]; /* started since tf_fs_install */
    int done[TF_NOPS];  /* returned */
    struct tf_fault fault[TF_NOPS];
    int seen[TF_NOPS];  /* calls the armed fault has counted */
    int gen[TF_NOPS];   /* arming generation: a call counted under an older one never fails */
    int gated[TF_NOPS];
    int permits;        /* gated calls allowed through; -1: any number */
    size_t short_max;   /* 0, or the most bytes one write/pwrite moves */
    void (*on_call)(enum tf_op op, int fd);
} tf_fs = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .permits = -1};

/* 1 when s ends with suffix. */
static TF_UNUSED int tf_ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Counts the call, waits at the gate if op is gated, and returns the errno
 * it must fail with (0: go ahead). *partial says to write half first. */
static int tf_fs_begin_(enum tf_op op, int fd, const char *path, int *partial)
{
    void (*hook)(enum tf_op, int) = tf_fs.on_call;
    if (hook)
        hook(op, fd);
    pthread_mutex_lock(&tf_fs.mu);
    tf_fs.calls[op]++;
    pthread_cond_broadcast(&tf_fs.cv);
    /* The call's number is taken when it starts, so a call already waiting
     * at the gate when a fault is armed is not one of "the Nth from now". */
    const struct tf_fault *f = &tf_fs.fault[op];
    int gen = tf_fs.gen[op], n = 0;
    if (f->nth > 0 && !(f->path_suffix && path && !tf_ends_with(path, f->path_suffix)))
        n = ++tf_fs.seen[op];
    if (tf_fs.gated[op]) {
        while (tf_fs.permits == 0)
            pthread_cond_wait(&tf_fs.cv, &tf_fs.mu);
        if (tf_fs.permits > 0)
            tf_fs.permits--;
    }
    int err = 0;
    f = &tf_fs.fault[op];
    if (n > 0 && gen == tf_fs.gen[op]) {
        int count = f->count > 0 ? f->count : 1;
        if (n >= f->nth && (count == TF_ALWAYS || n - f->nth < count))
            err = f->err;
    }
    if (partial)
        *partial = err && f->partial;
    pthread_mutex_unlock(&tf_fs.mu);
    return err;
}

static void tf_fs_end_(enum tf_op op)
{
    int e = errno;
    pthread_mutex_lock(&tf_fs.mu);
    tf_fs.done[op]++;
    pthread_cond_broadcast(&tf_fs.cv);
    pthread_mutex_unlock(&tf_fs.mu);
    errno = e;
}

#define TF_FAIL_(op, err)    \
    do {                     \
        tf_fs_end_(op);      \
        errno = (err);       \
        return -1;           \
    } while (0)

static int tf_open_(const char *path, int flags, mode_t mode)
{
    int err = tf_fs_begin_(TF_OPEN, -1, path, NULL);
    if (err)
        TF_FAIL_(TF_OPEN, err);
    int rc = fsops_real.open(path, flags, mode);
    tf_fs_end_(TF_OPEN);
    return rc;
}

static int tf_openat_(int dirfd, const char *path, int flags, mode_t mode)
{
    int err = tf_fs_begin_(TF_OPENAT, dirfd, path, NULL);
    if (err)
        TF_FAIL_(TF_OPENAT, err);
    int rc = fsops_real.openat(dirfd, path, flags, mode);
    tf_fs_end_(TF_OPENAT);
    return rc;
}

static size_t tf_short_(size_t len)
{
    pthread_mutex_lock(&tf_fs.mu);
    size_t max = tf_fs.short_max;
    pthread_mutex_unlock(&tf_fs.mu);
    return max && len > max ? max : len;
}

static ssize_t tf_write_(int fd, const void *buf, size_t len)
{
    int partial;
    int err = tf_fs_begin_(TF_WRITE, fd, NULL, &partial);
    if (err) {
        if (partial && len > 1)
            (void)!fsops_real.write(fd, buf, len / 2);
        TF_FAIL_(TF_WRITE, err);
    }
    ssize_t rc = fsops_real.write(fd, buf, tf_short_(len));
    tf_fs_end_(TF_WRITE);
    return rc;
}

static ssize_t tf_pwrite_(int fd, const void *buf, size_t len, off_t off)
{
    int partial;
    int err = tf_fs_begin_(TF_PWRITE, fd, NULL, &partial);
    if (err) {
        if (partial && len > 1)
            (void)!fsops_real.pwrite(fd, buf, len / 2, off);
        TF_FAIL_(TF_PWRITE, err);
    }
    ssize_t rc = fsops_real.pwrite(fd, buf, tf_short_(len), off);
    tf_fs_end_(TF_PWRITE);
    return rc;
}

static ssize_t tf_pread_(int fd, void *buf, size_t len, off_t off)
{
    int err = tf_fs_begin_(TF_PREAD, fd, NULL, NULL);
    if (err)
        TF_FAIL_(TF_PREAD, err);
    ssize_t rc = fsops_real.pread(fd, buf, len, off);
    tf_fs_end_(TF_PREAD);
    return rc;
}

/* The calls with one descriptor or one path and nothing else to vary. */
#define TF_SIMPLE_(name, op, real_call, fd_arg, path_arg, ...) \
    static int name(__VA_ARGS__)                               \
    {                                                          \
        int err = tf_fs_begin_(op, fd_arg, path_arg, NULL);    \
        if (err)                                               \
            TF_FAIL_(op, err);                                 \
        int rc = real_call;                                    \
        tf_fs_end_(op);                                        \
        return rc;                                             \
    }

TF_SIMPLE_(tf_fsync_, TF_FSYNC, fsops_real.fsync(fd), fd, NULL, int fd)
TF_SIMPLE_(tf_fdatasync_, TF_FDATASYNC, fsops_real.fdatasync(fd), fd, NULL, int fd)
TF_SIMPLE_(tf_syncfs_, TF_SYNCFS, fsops_real.syncfs(fd), fd, NULL, int fd)
TF_SIMPLE_(tf_rename_, TF_RENAME, fsops_real.rename(from, to), -1, to, const char *from, const char *to)
TF_SIMPLE_(tf_renameat_, TF_RENAMEAT, fsops_real.renameat(fromdir, from, todir, to), todir, to,
           int fromdir, const char *from, int todir, const char *to)
TF_SIMPLE_(tf_link_, TF_LINK, fsops_real.link(from, to), -1, to, const char *from, const char *to)
TF_SIMPLE_(tf_unlink_, TF_UNLINK, fsops_real.unlink(path), -1, path, const char *path)
TF_SIMPLE_(tf_unlinkat_, TF_UNLINKAT, fsops_real.unlinkat(dirfd, path, flags), dirfd, path, int dirfd,
           const char *path, int flags)
TF_SIMPLE_(tf_mkdir_, TF_MKDIR, fsops_real.mkdir(path, mode), -1, path, const char *path, mode_t mode)
TF_SIMPLE_(tf_ftruncate_, TF_FTRUNCATE, fsops_real.ftruncate(fd, len), fd, NULL, int fd, off_t len)

/* Resets every count, fault, gate and hook and installs the table. Call it
 * while no other thread makes file-system calls through fsops. */
static TF_UNUSED void tf_fs_install(void)
{
    pthread_mutex_lock(&tf_fs.mu);
    memset(tf_fs.calls, 0, sizeof tf_fs.calls);
    memset(tf_fs.done, 0, sizeof tf_fs.done);
    memset(tf_fs.fault, 0, sizeof tf_fs.fault);
    memset(tf_fs.seen, 0, sizeof tf_fs.seen);
    memset(tf_fs.gated, 0, sizeof tf_fs.gated);
    tf_fs.permits = -1;
    tf_fs.short_max = 0;
    tf_fs.on_call = NULL;
    tf_fs.ops = (struct fsops){
        .open = tf_open_,
        .openat = tf_openat_,
        .write = tf_write_,
        .pwrite = tf_pwrite_,
        .fsync = tf_fsync_,
        .fdatasync = tf_fdatasync_,
        .syncfs = tf_syncfs_,
        .rename = tf_rename_,
        .renameat = tf_renameat_,
        .link = tf_link_,
        .linkat = fsops_real.linkat, /* capture copies only; no fault injected yet */
        .unlink = tf_unlink_,
        .unlinkat = tf_unlinkat_,
        .mkdir = tf_mkdir_,
        .ftruncate = tf_ftruncate_,
        .pread = tf_pread_,
    };
    pthread_cond_broadcast(&tf_fs.cv);
    pthread_mutex_unlock(&tf_fs.mu);
    fsops_install(&tf_fs.ops);
}

/* The real system calls again. */
static TF_UNUSED void tf_fs_uninstall(void)
{
    fsops_install(NULL);
}

/* Arms op with f, its count of calls starting now. */
static TF_UNUSED void tf_fs_arm(enum tf_op op, struct tf_fault f)
{
    pthread_mutex_lock(&tf_fs.mu);
    tf_fs.fault[op] = f;
    tf_fs.seen[op] = 0;
    tf_fs.gen[op]++;
    pthread_mutex_unlock(&tf_fs.mu);
}

/* The nth call of op from now fails with err. */
static TF_UNUSED void tf_fs_fail(enum tf_op op, int nth, int err)
{
    tf_fs_arm(op, (struct tf_fault){.nth = nth, .count = 1, .err = err});
}

static TF_UNUSED void tf_fs_clear(enum tf_op op)
{
    tf_fs_arm(op, (struct tf_fault){0});
}

static TF_UNUSED int tf_fs_calls(enum tf_op op)
{
    pthread_mutex_lock(&tf_fs.mu);
    int n = tf_fs.calls[op];
    pthread_mutex_unlock(&tf_fs.mu);
    return n;
}

static TF_UNUSED int tf_fs_done(enum tf_op op)
{
    pthread_mutex_lock(&tf_fs.mu);
    int n = tf_fs.done[op];
    pthread_mutex_unlock(&tf_fs.mu);
    return n;
}

/* Calls the armed fault of op has counted (those matching its path suffix). */
static TF_UNUSED int tf_fs_fault_calls(enum tf_op op)
{
    pthread_mutex_lock(&tf_fs.mu);
    int n = tf_fs.seen[op];
    pthread_mutex_unlock(&tf_fs.mu);
    return n;
}

/* Waits up to ms until op has been called n times; 1 if it was. */
static TF_UNUSED int tf_fs_wait_calls(enum tf_op op, int n, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&tf_fs.mu);
    int rc = 0;
    while (tf_fs.calls[op] < n && rc == 0)
        rc = pthread_cond_timedwait(&tf_fs.cv, &tf_fs.mu, &until);
    int reached = tf_fs.calls[op] >= n;
    pthread_mutex_unlock(&tf_fs.mu);
    return reached;
}

/* Every write and pwrite moves at most max bytes (0: no limit). */
static TF_UNUSED void tf_fs_short_writes(size_t max)
{
    pthread_mutex_lock(&tf_fs.mu);
    tf_fs.short_max = max;
    pthread_mutex_unlock(&tf_fs.mu);
}

/* Calls of op (once counted) wait while the permits are 0. */
static TF_UNUSED void tf_fs_gate(enum tf_op op)
{
    pthread_mutex_lock(&tf_fs.mu);
    tf_fs.gated[op] = 1;
    pthread_mutex_unlock(&tf_fs.mu);
}

/* How many gated calls may pass from now (-1: any number). */
static TF_UNUSED void tf_fs_set_permits(int n)
{
    pthread_mutex_lock(&tf_fs.mu);
    tf_fs.permits = n;
    pthread_cond_broadcast(&tf_fs.cv);
    pthread_mutex_unlock(&tf_fs.mu);
}

static TF_UNUSED void tf_fs_add_permits(int n)
{
    pthread_mutex_lock(&tf_fs.mu);
    if (tf_fs.permits >= 0)
        tf_fs.permits += n;
    pthread_cond_broadcast(&tf_fs.cv);
    pthread_mutex_unlock(&tf_fs.mu);
}

/* fn sees every call (op, and the descriptor or directory descriptor, -1 for
 * path calls) before it is counted, on the calling thread. */
static TF_UNUSED void tf_fs_on_call(void (*fn)(enum tf_op op, int fd))
{
    pthread_mutex_lock(&tf_fs.mu);
    tf_fs.on_call = fn;
    pthread_mutex_unlock(&tf_fs.mu);
}

#endif
