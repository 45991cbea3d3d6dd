/* mbox: locked append of one message to an mbox file (see mbox.h). */
#include "local/mbox.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/fsops.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/strbuf.h"

const struct mbox_lock_policy mbox_lock_default = {
    .wait_ms = 10000,
    .retry_ms = 200,
    .stale_seconds = 300,
};

/* A mailbox that a reader replaces between our lstat() and open() gets
 * another look; one that keeps changing is an error, not a loop. */
#define OPEN_ATTEMPTS 3

static int dotlock_denied_warned;

static long long monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void pause_us(long long us)
{
    if (us <= 0)
        return;
    struct timespec ts = {.tv_sec = (time_t)(us / 1000000), .tv_nsec = (long)(us % 1000000) * 1000};
    nanosleep(&ts, NULL); /* a signal only shortens one pause of a bounded wait */
}

/* The budgeted policies' allowance (mbox.h), in microseconds; started
 * full. */
static long long allowance_us = -1, allowance_at;

/* How long a wait may last now: the policy's wait, or less when budgeted. */
static long long wait_allowed_us(const struct mbox_lock_policy *policy, long long now)
{
    long long want = (long long)policy->wait_ms * 1000;
    if (!policy->budgeted)
        return want;
    if (allowance_us < 0)
        allowance_us = MBOX_WAIT_BANK_MS * 1000LL;
    else
        allowance_us += (now - allowance_at) * MBOX_WAIT_REFILL_PER_S / 1000;
    if (allowance_us > MBOX_WAIT_BANK_MS * 1000LL)
        allowance_us = MBOX_WAIT_BANK_MS * 1000LL;
    allowance_at = now;
    return want < allowance_us ? want : allowance_us;
}

static void wait_spent(const struct mbox_lock_policy *policy, long long since)
{
    if (!policy->budgeted)
        return;
    long long now = monotonic_us();
    allowance_us -= now - since;
    if (allowance_us < 0)
        allowance_us = 0;
    allowance_at = now;
}

/* Sleeps the policy's retry pause, but not past the deadline. */
static void pause_until_retry(const struct mbox_lock_policy *policy, long long now,
                              long long deadline)
{
    long long retry = policy->retry_ms > 0 ? (long long)policy->retry_ms * 1000 : 1000; /* no spinning */
    pause_us(deadline - now < retry ? deadline - now : retry);
}

char *mbox_from_line(const char *sender, time_t arrival)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    if (arrival == 0)
        arrival = time(NULL);
    struct tm tm;
    if (!localtime_r(&arrival, &tm)) {
        arrival = time(NULL);
        localtime_r(&arrival, &tm);
    }

    struct strbuf sb = STRBUF_INIT;
    strbuf_puts(&sb, "From ");
    if (!sender || !*sender) {
        strbuf_puts(&sb, "MAILER-DAEMON");
    } else {
        for (const unsigned char *p = (const unsigned char *)sender; *p; p++)
            strbuf_putc(&sb, *p <= ' ' || *p == 0x7f ? '_' : (char)*p);
    }
    /* asctime() format, written out so that no locale can change it. */
    strbuf_printf(&sb, " %s %s %2d %02d:%02d:%02d %d\n", days[tm.tm_wday], months[tm.tm_mon],
              tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, tm.tm_year + 1900);
    return strbuf_detach(&sb);
}

static int dotlock_try(const char *lock_path, const char *path, const struct mbox_lock_policy *policy,
                       long long start, long long deadline, int *held, struct deliver_error *err);

/* 0 with *held telling whether PATH.lock is ours, or -1 with err filled. */
static int dotlock_acquire(const char *lock_path, const char *path,
                           const struct mbox_lock_policy *policy, int *held,
                           struct deliver_error *err)
{
    long long start = monotonic_us();
    int rc = dotlock_try(lock_path, path, policy, start, start + wait_allowed_us(policy, start), held, err);
    wait_spent(policy, start);
    return rc;
}

static int dotlock_try(const char *lock_path, const char *path, const struct mbox_lock_policy *policy,
                       long long start, long long deadline, int *held, struct deliver_error *err)
{
    *held = 0;
    for (;;) {
        int fd = fsops_open(lock_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY,
                         0600);
        if (fd >= 0) {
            close(fd);
            *held = 1;
            return 0;
        }
        int e = errno;
        if (e == EINTR)
            continue;
        if (e == EACCES) {
            if (!dotlock_denied_warned) {
                log_warn("cannot create lock file %s: %s; locking mailboxes with fcntl() only",
                         lock_path, strerror(e));
                dotlock_denied_warned = 1;
            }
            return 0;
        }
        if (e != EEXIST) {
            deliver_error_errno(err, e, "cannot create lock file %s", lock_path);
            return -1;
        }

        int retry_now = 0;
        struct stat st;
        if (lstat(lock_path, &st) != 0) {
            if (errno != ENOENT) {
                deliver_error_errno(err, errno, "cannot examine lock file %s", lock_path);
                return -1;
            }
            retry_now = 1; /* released since our open() */
        } else if (time(NULL) - st.st_mtime > (time_t)policy->stale_seconds) {
            log_warn("removing stale lock file %s (%lld seconds old)", lock_path,
                     (long long)(time(NULL) - st.st_mtime));
            if (fsops_unlink(lock_path) != 0 && errno != ENOENT) {
                deliver_error_errno(err, errno, "cannot remove stale lock file %s", lock_path);
                return -1;
            }
            retry_now = 1;
        }
        long long now = monotonic_us();
        if (now >= deadline) {
            deliver_error_set(err, 1, "4.2.0",
                              "cannot lock mailbox %s: lock file %s still held after %lld ms", path,
                              lock_path, (now - start) / 1000);
            return -1;
        }
        if (!retry_now)
            pause_until_retry(policy, now, deadline);
    }
}

static void dotlock_release(const char *lock_path)
{
    if (fsops_unlink(lock_path) != 0 && errno != ENOENT)
        log_warn("cannot remove lock file %s: %s", lock_path, strerror(errno));
}

static int refuse_file_type(const char *path, const struct stat *st, struct deliver_error *err)
{
    if (S_ISLNK(st->st_mode))
        deliver_error_set(err, 1, "4.2.0",
                          "mailbox %s is a symbolic link; refusing to deliver to it", path);
    else if (!S_ISREG(st->st_mode))
        deliver_error_set(err, 1, "4.2.0",
                          "mailbox %s is not a regular file; refusing to deliver to it", path);
    else if (st->st_nlink != 1)
        deliver_error_set(err, 1, "4.2.0",
                          "mailbox %s has %ju hard links; refusing to deliver to it", path,
                          (uintmax_t)st->st_nlink);
    else
        return 0;
    return -1;
}

/* Opens the existing mailbox or creates it. O_NOFOLLOW and the fstat() check
 * close the race between looking at the name and opening it; the lstat()
 * first keeps us from opening devices and FIFOs at all. */
static int open_mailbox(const char *path, uid_t uid, gid_t gid, struct deliver_error *err)
{
    for (int attempt = 0; attempt < OPEN_ATTEMPTS; attempt++) {
        struct stat st;
        int fd;
        /* no times here and below: see fsops_stat_no_times */
        if (fsops_stat_no_times(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, &st) == 0) {
            if (refuse_file_type(path, &st, err) != 0)
                return -1;
            fd = fsops_open(path, O_RDWR | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0);
            if (fd < 0) {
                if (errno == ENOENT)
                    continue;
                if (errno == ELOOP) {
                    st.st_mode = S_IFLNK;
                    refuse_file_type(path, &st, err);
                } else {
                    deliver_error_errno(err, errno, "cannot open mailbox %s", path);
                }
                return -1;
            }
        } else if (errno == ENOENT) {
            fd = fsops_open(path, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY,
                         0600);
            if (fd < 0) {
                if (errno == EEXIST)
                    continue;
                deliver_error_errno(err, errno, "cannot create mailbox %s", path);
                return -1;
            }
            if (uid != (uid_t)-1 && fchown(fd, uid, gid) != 0) {
                deliver_error_errno(err, errno, "cannot change owner of mailbox %s", path);
                close(fd);
                fsops_unlink(path);
                return -1;
            }
        } else {
            deliver_error_errno(err, errno, "cannot examine mailbox %s", path);
            return -1;
        }

        if (fsops_fstat_no_times(fd, &st) != 0) {
            deliver_error_errno(err, errno, "cannot examine mailbox %s", path);
            close(fd);
            return -1;
        }
        if (refuse_file_type(path, &st, err) != 0) {
            close(fd);
            return -1;
        }
        const char *pseudo = deliver_pseudo_fs(fd);
        if (pseudo) {
            deliver_error_set(err, 0, "5.2.0", "mailbox %s is on the kernel's %s file system; refusing to deliver "
                              "to it", path, pseudo);
            close(fd);
            return -1;
        }
        /* Written with root's rights for a given owner: the file opened must
         * be that owner's, not one another user planted in a shared spool. */
        if (uid != (uid_t)-1 && st.st_uid != uid) {
            deliver_error_set(err, 1, "4.2.0", "mailbox %s is not owned by uid %u", path, (unsigned)uid);
            close(fd);
            return -1;
        }
        return fd;
    }
    deliver_error_set(err, 1, "4.2.0", "mailbox %s keeps changing while being opened", path);
    return -1;
}

static int fcntl_try(int fd, const char *path, const struct mbox_lock_policy *policy, long long start,
                     long long deadline, struct deliver_error *err);

static int fcntl_lock(int fd, const char *path, const struct mbox_lock_policy *policy,
                      struct deliver_error *err)
{
    long long start = monotonic_us();
    int rc = fcntl_try(fd, path, policy, start, start + wait_allowed_us(policy, start), err);
    wait_spent(policy, start);
    return rc;
}

static int fcntl_try(int fd, const char *path, const struct mbox_lock_policy *policy, long long start,
                     long long deadline, struct deliver_error *err)
{
    for (;;) {
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
        if (fcntl(fd, F_SETLK, &fl) == 0)
            return 0;
        int e = errno;
        if (e == EINTR)
            continue;
        if (e != EACCES && e != EAGAIN) {
            deliver_error_errno(err, e, "cannot lock mailbox %s", path);
            return -1;
        }
        long long now = monotonic_us();
        if (now >= deadline) {
            deliver_error_set(err, 1, "4.2.0",
                              "cannot lock mailbox %s: still locked by another process after %lld ms",
                              path, (now - start) / 1000);
            return -1;
        }
        pause_until_retry(policy, now, deadline);
    }
}

/* A reader that rewrites the mailbox may rename a new file over it while we
 * wait for the lock; appending to the old one would lose the message. */
static int still_same_file(int fd, const char *path, struct deliver_error *err)
{
    struct stat by_fd, by_name;
    if (fsops_fstat_no_times(fd, &by_fd) != 0) {
        deliver_error_errno(err, errno, "cannot examine mailbox %s", path);
        return -1;
    }
    if (fsops_stat_no_times(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, &by_name) != 0 || by_name.st_dev != by_fd.st_dev ||
        by_name.st_ino != by_fd.st_ino) {
        deliver_error_set(err, 1, "4.2.0", "mailbox %s was replaced while waiting for its lock",
                          path);
        return -1;
    }
    return 0;
}

/* Everything after the locks: the append itself, cut back on failure. */
static int append_message(int fd, const char *path, const struct deliver_input *in,
                          struct deliver_error *err)
{
    struct stat st;
    if (fsops_fstat_no_times(fd, &st) != 0) {
        deliver_error_errno(err, errno, "cannot examine mailbox %s", path);
        return -1;
    }
    off_t original_size = st.st_size;

    struct strbuf head = STRBUF_INIT;
    /* A mailbox whose last line is unterminated would swallow our "From ". */
    if (original_size > 0) {
        char last;
        ssize_t n;
        do
            n = pread(fd, &last, 1, original_size - 1);
        while (n < 0 && errno == EINTR);
        if (n != 1) {
            deliver_error_errno(err, n < 0 ? errno : EIO, "cannot read mailbox %s", path);
            return -1;
        }
        if (last != '\n')
            strbuf_putc(&head, '\n');
    }
    char *from = mbox_from_line(in->sender, in->arrival);
    strbuf_puts(&head, from);
    free(from);

    char *what = xasprintf("mailbox %s", path);
    int rc = 0;
    /* mailbox_size_limit: what the message may add, after the "From " line
     * and before the empty line that ends it */
    struct deliver_input limited = *in;
    if (in->size_limit > 0) {
        limited.size_limit = in->size_limit - original_size - (off_t)head.len - 1;
        if (limited.size_limit <= 0) {
            deliver_error_set(err, 0, "5.2.2", "cannot write %s: mailbox full: %s (mailbox_size_limit)", what,
                              strerror(EFBIG));
            free(what);
            strbuf_free(&head);
            return -1;
        }
    }
    if (fsops_write_all(fd, head.buf, head.len) != 0) {
        deliver_error_errno(err, errno, "cannot write %s", what);
        rc = -1;
    } else if (deliver_copy_reporting(&limited, fd, 1, NULL, what, err) != 0) {
        rc = -1;
    } else if (fsops_write_all(fd, "\n", 1) != 0) {
        deliver_error_errno(err, errno, "cannot write %s", what);
        rc = -1;
    } else if (fsops_fsync(fd) != 0) {
        deliver_error_errno(err, errno, "cannot sync %s", what);
        rc = -1;
    }
    if (rc != 0 && fsops_ftruncate(fd, original_size) != 0)
        log_error("cannot truncate %s back to %lld bytes after a failed delivery: %s", what,
                  (long long)original_size, strerror(errno));
    free(what);
    strbuf_free(&head);
    return rc;
}

int mbox_deliver_with_policy(const char *path, uid_t uid, gid_t gid,
                             const struct deliver_input *in,
                             const struct mbox_lock_policy *policy, struct deliver_error *err)
{
    if (!path || !*path) {
        deliver_error_set(err, 1, "4.3.5", "mailbox path is empty");
        return -1;
    }
    char *lock_path = xasprintf("%s.lock", path);
    int dotlock_held = 0;
    int rc = -1;
    int fd = -1;
    if (dotlock_acquire(lock_path, path, policy, &dotlock_held, err) != 0)
        goto out;
    fd = open_mailbox(path, uid, gid, err);
    if (fd < 0)
        goto out;
    if (fcntl_lock(fd, path, policy, err) != 0 || still_same_file(fd, path, err) != 0)
        goto out;
    rc = append_message(fd, path, in, err);

out:
    if (fd >= 0)
        close(fd); /* releases the fcntl lock */
    if (dotlock_held)
        dotlock_release(lock_path);
    free(lock_path);
    return rc;
}

int mbox_deliver(const char *path, uid_t uid, gid_t gid, const struct deliver_input *in,
                 struct deliver_error *err)
{
    return mbox_deliver_with_policy(path, uid, gid, in, &mbox_lock_default, err);
}
