/* journal_recover: journal_open's scan of the segments (the rules are in
 * journal.h: "Recovery"), the read-only scan and the opening of the
 * journal's files, which the mail owner's directory holds. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool/journal_impl.h"
#include "spool/queue_file.h"
#include "util/fsops.h"
#include "util/log.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int parse_name(const char *name, const char *prefix, uint64_t *n)
{
    size_t pl = strlen(prefix);
    if (strncmp(name, prefix, pl) != 0 || name[pl] != '-' || strlen(name + pl + 1) != 16)
        return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(name + pl + 1, &end, 16);
    if (errno || *end)
        return 0;
    *n = v;
    return 1;
}

/* The directory's segment seqs and free names (sorted); *tmp bit 1 (2)
 * when a leftover seg.new (free.new) is there. */
static int list_dir(struct journal *j, uint64_t **segs, size_t *nsegs, int *tmp)
{
    int fd = dup(j->dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    rewinddir(d);
    size_t cap = 0;
    *segs = NULL;
    *nsegs = 0;
    *tmp = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t n;
        if (strcmp(de->d_name, TMP_NAME) == 0) {
            *tmp |= 1;
        } else if (strcmp(de->d_name, SPARE_TMP_NAME) == 0) {
            *tmp |= 2;
        } else if (parse_name(de->d_name, "seg", &n)) {
            if (*nsegs == cap) {
                cap = cap ? cap * 2 : 16;
                uint64_t *m = realloc(*segs, cap * sizeof *m);
                if (!m)
                    goto nomem;
                *segs = m;
            }
            (*segs)[(*nsegs)++] = n;
        } else if (parse_name(de->d_name, "free", &n)) {
            if (journal_free_push(j, n) != 0)
                goto nomem;
            if (n >= j->free_next)
                j->free_next = n + 1;
        }
    }
    closedir(d);
    if (*nsegs)
        qsort(*segs, *nsegs, sizeof **segs, cmp_u64);
    return 0;
nomem:
    closedir(d);
    errno = ENOMEM;
    return -1;
}

/* Checks the header of an open segment; its seq to *seq. 0, or -1 with
 * errno (EBADMSG: not a segment header; EINVAL: another segment size). */
static int check_header(struct journal *j, int fd, uint64_t *seq)
{
    unsigned char h[JOURNAL_SEGMENT_HEADER];
    if (fsops_pread_all(fd, h, sizeof h, 0) != 0)
        return -1;
    if (memcmp(h, SEG_MAGIC, 8) != 0 || journal_get32(h + 8) != SEG_VERSION ||
        journal_get32(h + 12) != JOURNAL_SEGMENT_HEADER || journal_get32(h + 60) != queue_file_crc32(0, h, 60)) {
        errno = EBADMSG;
        return -1;
    }
    if (journal_get64(h + 24) != j->segsize) {
        errno = EINVAL;
        return -1;
    }
    *seq = journal_get64(h + 16);
    return 0;
}

int journal_file_openat(int dirfd, const char *name, int flags, mode_t mode)
{
    int fd = fsops_openat(dirfd, name, flags | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, mode);
    struct stat sb;
    if (fd >= 0 && (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))) {
        close(fd);
        errno = EINVAL;
        return -1;
    }
    return fd;
}

/* The highest seq any free file's header remembers (its stale records
 * carry it), so that no new segment reuses it. A free file that is not a
 * segment of this size is left alone (not reused) and logged. */
static uint64_t free_max_seq(struct journal *j)
{
    uint64_t max = 0;
    size_t keep = 0;
    for (size_t i = 0; i < j->nfree; i++) {
        char name[40];
        uint64_t seq = 0;
        journal_seg_name(name, sizeof name, "free", j->freenames[i]);
        int fd = journal_file_openat(j->dirfd, name, O_RDONLY, 0);
        if (fd < 0 || check_header(j, fd, &seq) != 0) {
            log_warn("journal: %s: %s; not reused", name, strerror(errno));
        } else {
            j->freenames[keep++] = j->freenames[i];
            if (seq > max)
                max = seq;
        }
        if (fd >= 0)
            close(fd);
    }
    j->nfree = keep;
    return max;
}

/* Scans one segment; *end gets where its records end, *sealed whether a
 * seal ends them, *own whether the record at *end carried its seq. */
static int scan_segment(struct journal *j, struct seg *s, journal_replay_fn replay, void *arg,
                        struct journal_recovery *rec, uint32_t *end, int *sealed, int *own)
{
    unsigned char *pl = NULL;
    size_t plcap = 0;
    uint32_t off = JOURNAL_SEGMENT_HEADER;
    int rc = 0;
    *sealed = 0;
    for (;;) {
        uint32_t type, len;
        int v = journal_read_record(j, s->fd, s->seq, off, &type, &len, &pl, &plcap, own);
        if (v < 0) {
            rc = -1;
            break;
        }
        if (v == 0)
            break;
        if (type == JOURNAL_TYPE_SEAL) {
            *sealed = 1;
            break;
        }
        rec->records++;
        struct journal_addr at = {.seg = s->seq, .off = off};
        if (replay && replay(arg, type, pl ? pl : (const unsigned char *)"", len, at) != 0) {
            rc = -1;
            break;
        }
        off += (uint32_t)journal_rec_size(len);
    }
    free(pl);
    *end = off;
    return rc;
}

int journal_recover(struct journal *j, journal_replay_fn replay, void *arg, struct journal_recovery *rec)
{
    uint64_t *seqs;
    size_t n;
    int tmp;
    if (list_dir(j, &seqs, &n, &tmp) != 0)
        return -1;
    if (tmp & 1)
        (void)fsops_unlinkat(j->dirfd, TMP_NAME, 0);
    if (tmp & 2)
        (void)fsops_unlinkat(j->dirfd, SPARE_TMP_NAME, 0);
    uint64_t max = free_max_seq(j);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char name[40];
        uint64_t seq = 0;
        journal_seg_name(name, sizeof name, "seg", seqs[i]);
        int fd = journal_file_openat(j->dirfd, name, O_RDWR, 0);
        int e = 0;
        if (fd < 0 || check_header(j, fd, &seq) != 0)
            e = errno;
        else if (seq != seqs[i])
            e = EBADMSG; /* a header that is not this file's */
        else if (journal_seg_add(j, seq, fd) != 0)
            e = ENOMEM;
        if (e) {
            if (fd >= 0)
                close(fd);
            log_error("journal: segment %s: %s", name, strerror(e));
            errno = e;
            rc = -1;
        }
    }
    free(seqs);
    if (rc != 0)
        return -1;
    for (size_t i = 0; i < j->nsegs; i++) {
        struct seg *s = &j->segs[i];
        int newest = i + 1 == j->nsegs, sealed, own;
        uint32_t end;
        if (s->seq > max)
            max = s->seq;
        rec->segments++;
        if (scan_segment(j, s, replay, arg, rec, &end, &sealed, &own) != 0)
            return -1;
        if (sealed)
            continue;
        if (!newest) {
            if (rec->corrupt_segments++ == 0)
                rec->first_corrupt = (struct journal_addr){.seg = s->seq, .off = end};
            log_error("journal: segment %016" PRIx64 ": invalid record at offset %" PRIu32
                      " before the seal; the rest of the segment is skipped", s->seq, end);
            continue;
        }
        rec->tail_cut = own;
        /* seal the tail where it ends; appends go to a new segment */
        if ((uint64_t)end + SEAL_SIZE <= j->segsize) {
            unsigned char seal[SEAL_SIZE];
            journal_encode(seal, s->seq, JOURNAL_TYPE_SEAL, NULL, 0);
            if (fsops_pwrite_all(s->fd, seal, sizeof seal, end) != 0 || fsops_fdatasync(s->fd) != 0)
                return -1;
        }
    }
    j->next_seq = max + 1;
    return 0;
}


int journal_scan(const char *dir, journal_replay_fn replay, void *arg)
{
    struct journal j;
    memset(&j, 0, sizeof j);
    j.dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (j.dirfd < 0)
        return -1;
    uint64_t *seqs = NULL;
    size_t n = 0;
    int tmp, rc = list_dir(&j, &seqs, &n, &tmp);
    free(j.freenames);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char name[40];
        unsigned char h[JOURNAL_SEGMENT_HEADER];
        journal_seg_name(name, sizeof name, "seg", seqs[i]);
        /* a FIFO put in its place must not hang the reader: passed over */
        int fd = journal_file_openat(j.dirfd, name, O_RDONLY, 0);
        if (fd < 0)
            continue; /* retired meanwhile, or not a file */
        /* the segment size is the header's: a reader has no options */
        if (fsops_pread_all(fd, h, sizeof h, 0) == 0 && memcmp(h, SEG_MAGIC, 8) == 0 &&
            journal_get32(h + 60) == queue_file_crc32(0, h, 60) && journal_get64(h + 16) == seqs[i]) {
            j.segsize = journal_get64(h + 24);
            struct seg s = {.seq = seqs[i], .fd = fd};
            struct journal_recovery rec;
            memset(&rec, 0, sizeof rec);
            uint32_t end;
            int sealed, own;
            rc = scan_segment(&j, &s, replay, arg, &rec, &end, &sealed, &own);
        }
        close(fd);
    }
    free(seqs);
    int e = errno;
    close(j.dirfd);
    errno = e;
    return rc;
}

uint64_t journal_existing_segment_size(const char *dir)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
        if (dfd >= 0)
            close(dfd);
        return 0;
    }
    uint64_t size = 0;
    struct dirent *de;
    while (size == 0 && (de = readdir(d)) != NULL) {
        uint64_t n;
        if (!parse_name(de->d_name, "seg", &n) && !parse_name(de->d_name, "free", &n))
            continue;
        unsigned char h[JOURNAL_SEGMENT_HEADER];
        int fd = journal_file_openat(dirfd(d), de->d_name, O_RDONLY, 0);
        if (fd >= 0 && fsops_pread_all(fd, h, sizeof h, 0) == 0 && memcmp(h, SEG_MAGIC, 8) == 0 &&
            journal_get32(h + 60) == queue_file_crc32(0, h, 60))
            size = journal_get64(h + 24);
        if (fd >= 0)
            close(fd);
    }
    closedir(d);
    return size;
}
