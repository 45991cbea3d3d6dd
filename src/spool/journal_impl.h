/* journal_impl: what journal.c and journal_recover.c share; not for other
 * modules (the API is journal.h). */
#ifndef TERN_SPOOL_JOURNAL_IMPL_H
#define TERN_SPOOL_JOURNAL_IMPL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "spool/journal.h"

#define SEG_MAGIC "TERNJSEG"
#define SEG_VERSION 1u
#define TMP_NAME "seg.new"
#define SPARE_TMP_NAME "free.new"
#define SEAL_SIZE JOURNAL_RECORD_HEADER

struct seg {
    uint64_t seq;
    int fd;
};

struct req {
    struct req *next;
    uint32_t type;
    uint32_t len;
    journal_done_fn cb;
    void *arg;
    int err;
    struct journal_addr addr;
    unsigned char data[];
};

struct journal {
    int dirfd;
    uint64_t segsize;
    uint32_t max_record;

    pthread_mutex_t mu; /* the queue of requests and the poison */
    pthread_cond_t cv;
    struct req *head, **tail;
    int closing;
    unsigned urgent;    /* queued records that are not lazy */
    int poison; /* errno that refuses every append, 0: none */
    pthread_t writer;
    pthread_mutex_t spare_mu; /* one journal_prepare_spare at a time */
    int writer_started;

    pthread_rwlock_t segmu; /* the table of segments, free names, what is durable */
    struct seg *segs;       /* ascending seq */
    size_t nsegs, capsegs;
    uint64_t *freenames;
    size_t nfree, capfree;
    uint64_t free_next;     /* the next free-<n> name */
    uint64_t active_seq;    /* 0: none */
    uint32_t durable_off;   /* in the active segment */

    /* the writer thread's own */
    int active_fd;
    uint32_t off;
    uint64_t next_seq;
    unsigned char *buf;
    size_t bufcap;
};

void journal_put32(unsigned char *p, uint32_t v);
void journal_put64(unsigned char *p, uint64_t v);
uint32_t journal_get32(const unsigned char *p);
uint64_t journal_get64(const unsigned char *p);
/* The bytes a record with len bytes of payload takes (8-aligned). */
size_t journal_rec_size(uint32_t len);
/* Writes a record (header, payload, padding) at p: journal_rec_size(len) bytes. */
void journal_encode(unsigned char *p, uint64_t seq, uint32_t type, const void *data, uint32_t len);
void journal_seg_name(char *out, size_t size, const char *prefix, uint64_t n);
/* Opens a journal file (segment, free file, temporary) in the journal's
 * directory, which the mail owner controls: never through a symbolic link,
 * never waiting (a FIFO, a lease), and only a regular file (else -1,
 * errno EINVAL). flags: O_RDONLY or O_RDWR, maybe O_CREAT|O_TRUNC. */
int journal_file_openat(int dirfd, const char *name, int flags, mode_t mode);
/* Reads and checks the record at off of segment seq (fd). 1: valid, with
 * *type, *len and the payload in *pl (grown as needed); 0: not a valid
 * record (*own: its header carried this segment's seq, so it is a record
 * of ours, torn or damaged); -1: I/O error (errno). */
int journal_read_record(struct journal *j, int fd, uint64_t seq, uint32_t off, uint32_t *type, uint32_t *len,
                        unsigned char **pl, size_t *plcap, int *own);
/* The segment table and the free list (the caller holds segmu, or is
 * alone: journal_open). */
int journal_seg_add(struct journal *j, uint64_t seq, int fd);
struct seg *journal_seg_find(struct journal *j, uint64_t seq);
int journal_free_push(struct journal *j, uint64_t n);
/* Scans the directory, replays every valid record, seals the newest
 * segment where its records end; sets next_seq. 0, or -1 with errno. */
int journal_recover(struct journal *j, journal_replay_fn replay, void *arg, struct journal_recovery *rec);

#endif
