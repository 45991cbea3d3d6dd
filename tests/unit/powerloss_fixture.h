/* powerloss_fixture: a simulated power loss under the util/fsops table,
 * shared by test_journal_powerloss.c (the journal alone) and
 * test_store_powerloss.c (the whole store in journal mode). Header-only,
 * static functions; include after <cmocka.h>.
 *
 * The model. A layer over the table installed before it (pl_install)
 * records every write and pwrite that no completed fdatasync or fsync of
 * its file (its inode) has covered yet, with the bytes it replaced. At the
 * "power loss" (pl_crash: now, or when the next sync is asked for, which
 * then does not happen) every uncovered write is undone, kept, or half
 * kept, chosen by a seeded random number, last first; from then on every
 * call that would change the disk (write, pwrite, syncs, rename, link,
 * unlink, mkdir, ftruncate, an open that creates or truncates) fails with
 * EIO, while reads go on. The test then releases the layer (pl_release)
 * and opens what is on disk with the real calls.
 *
 * What it does NOT model (say so wherever a result depends on it):
 * - File-system metadata is durable as soon as the call returns: a file's
 *   creation, a rename (the journal's seg.new/free.new -> seg-N/free-N and
 *   its retiring seg-N -> free-M, the store's incoming/ -> queue/), a link,
 *   an unlink (the store's removal of incoming/ files, the file mode's
 *   queue/ files), a mkdir, an ftruncate. A lost rename or unlink, which a
 *   real file system may show when the directory was not synced, is left
 *   out: the code under test syncs the directory where it relies on one,
 *   and that is not checked here.
 * - A write that extended its file is undone by writing zeros over it (the
 *   file keeps its new size), as a file system that commits the size before
 *   the data can show; a file system that commits the size with the data
 *   would show a shorter file instead.
 * - The writes of a file that is unlinked while no other name holds it are
 *   forgotten at the unlink (the file is gone for good, by the rule above).
 * - syncfs covers every recorded write (all the test's files are on one
 *   file system).
 * - Writes are torn at any byte ("half kept"), harsher than a disk that
 *   tears at sector boundaries. */
#ifndef TERN_POWERLOSS_FIXTURE_H
#define TERN_POWERLOSS_FIXTURE_H

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fsops.h"

#define PL_UNUSED __attribute__((unused))

struct pl_write {
    ino_t ino;
    off_t off;
    size_t len;
    unsigned char *old;
};

/* A file with recorded writes: a descriptor of its own (read and write),
 * opened through /proc/self/fd so that it works whatever the caller's
 * access mode was, and keeps the inode (and its number) alive. */
struct pl_file {
    ino_t ino;
    int fd;
};

static struct {
    pthread_mutex_t mu;
    int crashed;
    int crash_at_sync; /* the next sync does not happen: the power goes first */
    unsigned seed;
    unsigned sync_delay_us; /* a disk's latency, slept before each sync (outside the lock) */
    size_t lost;            /* at the loss: writes no sync covered */
    size_t undone, kept, halved;
    size_t writes, syncs;   /* recorded since pl_install */
    struct pl_write *w;
    size_t n, cap;
    struct pl_file *files;
    size_t nfiles, capfiles;
    void (*before_sync)(int fd, int kind); /* a test's hook (kind 0 fdatasync, 1 fsync, 2 syncfs) */
    const struct fsops *below;
    struct fsops ops;
} pl = {.mu = PTHREAD_MUTEX_INITIALIZER};

static ino_t pl_ino(int fd)
{
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    return st.st_ino;
}

/* The layer's own descriptor of ino (fd is the caller's), made on first use. */
static int pl_file_locked(ino_t ino, int fd)
{
    for (size_t f = 0; f < pl.nfiles; f++)
        if (pl.files[f].ino == ino)
            return pl.files[f].fd;
    if (pl.nfiles == pl.capfiles) {
        pl.capfiles = pl.capfiles ? pl.capfiles * 2 : 64;
        pl.files = realloc(pl.files, pl.capfiles * sizeof *pl.files);
        assert_non_null(pl.files);
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int own = open(path, O_RDWR | O_CLOEXEC);
    assert_true(own >= 0);
    pl.files[pl.nfiles++] = (struct pl_file){.ino = ino, .fd = own};
    return own;
}

/* Forgets ino's writes and closes its descriptor (the file is gone). */
static void pl_forget_file_locked(ino_t ino)
{
    size_t k = 0;
    for (size_t i = 0; i < pl.n; i++) {
        if (pl.w[i].ino == ino)
            free(pl.w[i].old);
        else
            pl.w[k++] = pl.w[i];
    }
    pl.n = k;
    for (size_t f = 0; f < pl.nfiles; f++)
        if (pl.files[f].ino == ino) {
            close(pl.files[f].fd);
            pl.files[f] = pl.files[--pl.nfiles];
            break;
        }
}

static int pl_dead_locked(void)
{
    if (!pl.crashed)
        return 0;
    errno = EIO;
    return 1;
}

/* Records len bytes about to be written at off of fd: returns the bytes
 * they replace (zeros past the end), for pl_note_locked. */
static unsigned char *pl_before_locked(int fd, ino_t ino, size_t len, off_t off)
{
    int own = pl_file_locked(ino, fd);
    unsigned char *old = calloc(1, len ? len : 1);
    assert_non_null(old);
    ssize_t got_old = pread(own, old, len, off);
    (void)got_old; /* past the end: zeros */
    return old;
}

static void pl_note_locked(ino_t ino, off_t off, ssize_t rc, unsigned char *old)
{
    if (rc <= 0) {
        free(old);
        return;
    }
    if (pl.n == pl.cap) {
        pl.cap = pl.cap ? pl.cap * 2 : 256;
        pl.w = realloc(pl.w, pl.cap * sizeof *pl.w);
        assert_non_null(pl.w);
    }
    pl.w[pl.n++] = (struct pl_write){.ino = ino, .off = off, .len = (size_t)rc, .old = old};
    pl.writes++;
}

static ssize_t pl_pwrite(int fd, const void *buf, size_t len, off_t off)
{
    pthread_mutex_lock(&pl.mu);
    if (pl_dead_locked()) {
        pthread_mutex_unlock(&pl.mu);
        return -1;
    }
    ino_t ino = pl_ino(fd);
    unsigned char *old = pl_before_locked(fd, ino, len, off);
    ssize_t rc = pl.below->pwrite(fd, buf, len, off);
    pl_note_locked(ino, off, rc, old);
    pthread_mutex_unlock(&pl.mu);
    return rc;
}

/* write at the file position (or the end, for O_APPEND) */
static ssize_t pl_write(int fd, const void *buf, size_t len)
{
    pthread_mutex_lock(&pl.mu);
    if (pl_dead_locked()) {
        pthread_mutex_unlock(&pl.mu);
        return -1;
    }
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    int fl = fcntl(fd, F_GETFL);
    off_t off = (fl >= 0 && (fl & O_APPEND)) ? st.st_size : lseek(fd, 0, SEEK_CUR);
    if (!S_ISREG(st.st_mode) || off < 0) {
        pthread_mutex_unlock(&pl.mu);
        return pl.below->write(fd, buf, len);
    }
    unsigned char *old = pl_before_locked(fd, st.st_ino, len, off);
    ssize_t rc = pl.below->write(fd, buf, len);
    pl_note_locked(st.st_ino, off, rc, old);
    pthread_mutex_unlock(&pl.mu);
    return rc;
}

static void pl_crash_locked(void);

/* A completed sync covers every write recorded before it (of its inode;
 * all of them for syncfs). */
static int pl_sync(int fd, int kind)
{
    void (*hook)(int, int) = __atomic_load_n(&pl.before_sync, __ATOMIC_ACQUIRE);
    if (hook)
        hook(fd, kind);
    unsigned delay = __atomic_load_n(&pl.sync_delay_us, __ATOMIC_RELAXED);
    if (delay)
        usleep(delay);
    pthread_mutex_lock(&pl.mu);
    if (pl.crash_at_sync && !pl.crashed)
        pl_crash_locked();
    if (pl_dead_locked()) {
        pthread_mutex_unlock(&pl.mu);
        return -1;
    }
    int rc = kind == 0 ? pl.below->fdatasync(fd) : kind == 1 ? pl.below->fsync(fd) : pl.below->syncfs(fd);
    if (rc == 0) {
        pl.syncs++;
        ino_t ino = pl_ino(fd);
        size_t k = 0;
        for (size_t i = 0; i < pl.n; i++) {
            if (kind == 2 || pl.w[i].ino == ino)
                free(pl.w[i].old);
            else
                pl.w[k++] = pl.w[i];
        }
        pl.n = k;
    }
    pthread_mutex_unlock(&pl.mu);
    return rc;
}

static int pl_fdatasync(int fd)
{
    return pl_sync(fd, 0);
}

static int pl_fsync(int fd)
{
    return pl_sync(fd, 1);
}

static int pl_syncfs(int fd)
{
    return pl_sync(fd, 2);
}

/* ---- metadata: durable once done (see the top); refused after the loss -- */

static int pl_alive(void)
{
    pthread_mutex_lock(&pl.mu);
    int dead = pl_dead_locked();
    pthread_mutex_unlock(&pl.mu);
    return !dead;
}

static int pl_open(const char *path, int flags, mode_t mode)
{
    if ((flags & (O_CREAT | O_TRUNC)) && !pl_alive())
        return -1;
    return pl.below->open(path, flags, mode);
}

static int pl_openat(int dirfd, const char *path, int flags, mode_t mode)
{
    if ((flags & (O_CREAT | O_TRUNC)) && !pl_alive())
        return -1;
    return pl.below->openat(dirfd, path, flags, mode);
}

static int pl_rename(const char *from, const char *to)
{
    return pl_alive() ? pl.below->rename(from, to) : -1;
}

static int pl_renameat(int fromdir, const char *from, int todir, const char *to)
{
    return pl_alive() ? pl.below->renameat(fromdir, from, todir, to) : -1;
}

static int pl_link(const char *from, const char *to)
{
    return pl_alive() ? pl.below->link(from, to) : -1;
}

static int pl_linkat(int fromdir, const char *from, int todir, const char *to, int flags)
{
    return pl_alive() ? pl.below->linkat(fromdir, from, todir, to, flags) : -1;
}

static int pl_mkdir(const char *path, mode_t mode)
{
    return pl_alive() ? pl.below->mkdir(path, mode) : -1;
}

/* unlink and unlinkat: a file whose last name goes takes its writes along */
static int pl_unlinkat(int dirfd, const char *path, int flags)
{
    pthread_mutex_lock(&pl.mu);
    if (pl_dead_locked()) {
        pthread_mutex_unlock(&pl.mu);
        return -1;
    }
    struct stat st;
    int known = fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1;
    int rc = pl.below->unlinkat(dirfd, path, flags);
    int e = errno;
    if (rc == 0 && known)
        pl_forget_file_locked(st.st_ino);
    pthread_mutex_unlock(&pl.mu);
    errno = e;
    return rc;
}

static int pl_unlink(const char *path)
{
    pthread_mutex_lock(&pl.mu);
    if (pl_dead_locked()) {
        pthread_mutex_unlock(&pl.mu);
        return -1;
    }
    struct stat st;
    int known = lstat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1;
    int rc = pl.below->unlink(path);
    int e = errno;
    if (rc == 0 && known)
        pl_forget_file_locked(st.st_ino);
    pthread_mutex_unlock(&pl.mu);
    errno = e;
    return rc;
}

/* A truncation is durable; recorded writes past the new end go with it. */
static int pl_ftruncate(int fd, off_t len)
{
    pthread_mutex_lock(&pl.mu);
    if (pl_dead_locked()) {
        pthread_mutex_unlock(&pl.mu);
        return -1;
    }
    int rc = pl.below->ftruncate(fd, len);
    int e = errno;
    if (rc == 0) {
        ino_t ino = pl_ino(fd);
        size_t k = 0;
        for (size_t i = 0; i < pl.n; i++) {
            struct pl_write *w = &pl.w[i];
            if (w->ino == ino && w->off >= len) {
                free(w->old);
                continue;
            }
            if (w->ino == ino && w->off + (off_t)w->len > len)
                w->len = (size_t)(len - w->off);
            pl.w[k++] = *w;
        }
        pl.n = k;
    }
    pthread_mutex_unlock(&pl.mu);
    errno = e;
    return rc;
}

/* Installs the layer over the current table (call it while no other
 * thread makes file-system calls through fsops). */
static PL_UNUSED void pl_install(void)
{
    pthread_mutex_lock(&pl.mu);
    pl.crashed = 0;
    pl.crash_at_sync = 0;
    pl.lost = pl.undone = pl.kept = pl.halved = 0;
    pl.writes = pl.syncs = 0;
    pl.before_sync = NULL;
    pl.below = fsops_current();
    pl.ops = *pl.below;
    pl.ops.open = pl_open;
    pl.ops.openat = pl_openat;
    pl.ops.write = pl_write;
    pl.ops.pwrite = pl_pwrite;
    pl.ops.fdatasync = pl_fdatasync;
    pl.ops.fsync = pl_fsync;
    pl.ops.syncfs = pl_syncfs;
    pl.ops.rename = pl_rename;
    pl.ops.renameat = pl_renameat;
    pl.ops.link = pl_link;
    pl.ops.linkat = pl_linkat;
    pl.ops.unlink = pl_unlink;
    pl.ops.unlinkat = pl_unlinkat;
    pl.ops.mkdir = pl_mkdir;
    pl.ops.ftruncate = pl_ftruncate;
    pthread_mutex_unlock(&pl.mu);
    fsops_install(&pl.ops);
}

/* The power goes: pl.lost gets how many writes no sync covered, and
 * pl.undone/kept/halved what became of them. */
static void pl_crash_locked(void)
{
    unsigned seed = pl.seed;
    pl.crashed = 1;
    pl.lost = pl.n;
    for (size_t i = pl.n; i-- > 0;) {
        struct pl_write *w = &pl.w[i];
        int fd = -1;
        for (size_t f = 0; f < pl.nfiles; f++)
            if (pl.files[f].ino == w->ino)
                fd = pl.files[f].fd;
        assert_true(fd >= 0);
        unsigned r = (unsigned)rand_r(&seed) % 3;
        size_t keep = r == 0 ? 0 : r == 1 ? w->len : w->len / 2;
        if (keep == 0)
            pl.undone++;
        else if (keep == w->len)
            pl.kept++;
        else
            pl.halved++;
        if (keep < w->len)
            assert_int_equal(pwrite(fd, w->old + keep, w->len - keep, w->off + (off_t)keep),
                             (ssize_t)(w->len - keep));
        free(w->old);
    }
    pl.n = 0;
}

/* now (between calls), or at the next sync (written, not yet synced) */
static PL_UNUSED size_t pl_crash(unsigned seed, int at_sync)
{
    pthread_mutex_lock(&pl.mu);
    pl.seed = seed;
    if (at_sync)
        pl.crash_at_sync = 1;
    else
        pl_crash_locked();
    pthread_mutex_unlock(&pl.mu);
    return 0;
}

static PL_UNUSED int pl_crashed(void)
{
    pthread_mutex_lock(&pl.mu);
    int c = pl.crashed;
    pthread_mutex_unlock(&pl.mu);
    return c;
}

static PL_UNUSED void pl_set_sync_delay(unsigned us)
{
    __atomic_store_n(&pl.sync_delay_us, us, __ATOMIC_RELAXED);
}

/* fn(fd, kind) runs first in every sync call (kind 0 fdatasync, 1 fsync,
 * 2 syncfs), on the caller's thread and outside the layer's lock: a test
 * may hold a sync there. Set after pl_install, which clears it. */
static PL_UNUSED void pl_on_sync(void (*fn)(int fd, int kind))
{
    __atomic_store_n(&pl.before_sync, fn, __ATOMIC_RELEASE);
}

/* The table below the layer again; the layer forgets everything. */
static PL_UNUSED void pl_release(void)
{
    pthread_mutex_lock(&pl.mu);
    for (size_t f = 0; f < pl.nfiles; f++)
        close(pl.files[f].fd);
    pl.nfiles = 0;
    free(pl.files);
    pl.files = NULL;
    pl.capfiles = 0;
    for (size_t i = 0; i < pl.n; i++)
        free(pl.w[i].old);
    pl.n = 0;
    free(pl.w);
    pl.w = NULL;
    pl.cap = 0;
    pthread_mutex_unlock(&pl.mu);
    fsops_install(pl.below);
}

#endif
