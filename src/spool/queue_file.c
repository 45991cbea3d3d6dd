/* queue_file: the self-validating queue file format (see queue_file.h). */
#include "spool/queue_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "util/fsops.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

enum {
    REC_ID = 'I',
    REC_ARRIVAL = 'T',
    REC_SENDER = 'S',
    REC_ATTR = 'A',
    REC_RCPT = 'R',
    REC_CONTENT = 'C',
    REC_END = 'E',
    REC_STATUS = 'D',
    REC_ADDED_RCPT = 'X',
};

/* The envelope plus progress of one message stays far below this; anything
 * bigger is corruption, not data. */
#define QF_MAX_TRAILER (64u * 1024 * 1024)
#define QF_MAX_FIELD (1u << 20)
#define QF_WRITE_BUF 65536

/* ---------- CRC-32 (IEEE 802.3) ---------- */

/* zlib's: the same polynomial and conventions, and several times faster
 * than a byte-at-a-time table (every record is checked when written, when
 * committed and when read). */
uint32_t queue_file_crc32(uint32_t crc, const void *data, size_t len)
{
    if (len == 0)
        return crc; /* zlib gives its initial value for a NULL buffer */
    return (uint32_t)crc32_z(crc, data, len);
}

/* ---------- encoding ---------- */

static void put_u32(struct strbuf *sb, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    strbuf_append(sb, b, 4);
}

static void put_u64(struct strbuf *sb, uint64_t v)
{
    put_u32(sb, (uint32_t)v);
    put_u32(sb, (uint32_t)(v >> 32));
}

static void put_str(struct strbuf *sb, const char *s)
{
    size_t len = s ? strlen(s) : 0;
    put_u32(sb, (uint32_t)len);
    strbuf_append(sb, s ? s : "", len);
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const unsigned char *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

/* Appends a framed record (type, length, payload, CRC) to out. */
static void put_record(struct strbuf *out, int type, const struct strbuf *payload)
{
    size_t start = out->len;
    strbuf_putc(out, (char)type);
    put_u32(out, (uint32_t)payload->len);
    strbuf_append(out, payload->buf ? payload->buf : "", payload->len);
    uint32_t crc = queue_file_crc32(0, out->buf + start, out->len - start);
    put_u32(out, crc);
}

static void put_rcpt_payload(struct strbuf *p, const struct queue_file_rcpt *r)
{
    put_str(p, r->addr);
    put_str(p, r->orcpt);
    put_u32(p, r->notify);
    put_u32(p, (uint32_t)r->parent);
}

/* ---------- in-memory envelope ---------- */

void queue_file_message_init(struct queue_file_message *m, const char *id, int64_t arrival_us, const char *sender)
{
    memset(m, 0, sizeof *m);
    str_copy(m->id, id ? id : "", sizeof m->id);
    m->arrival_us = arrival_us;
    m->sender = xstrdup(sender ? sender : "");
}

void queue_file_message_set_attr(struct queue_file_message *m, const char *name, const char *value)
{
    for (size_t i = 0; i < m->nattrs; i++) {
        if (strcmp(m->attrs[i].name, name) == 0) {
            free(m->attrs[i].value);
            m->attrs[i].value = xstrdup(value);
            return;
        }
    }
    m->attrs = xgrow(m->attrs, &m->attrs_cap, m->nattrs + 1, sizeof *m->attrs);
    m->attrs[m->nattrs].name = xstrdup(name);
    m->attrs[m->nattrs].value = xstrdup(value);
    m->nattrs++;
}

const char *queue_file_message_attr(const struct queue_file_message *m, const char *name)
{
    for (size_t i = 0; i < m->nattrs; i++)
        if (strcmp(m->attrs[i].name, name) == 0)
            return m->attrs[i].value;
    return NULL;
}

struct queue_file_rcpt *queue_file_message_add_rcpt(struct queue_file_message *m, const char *addr, const char *orcpt,
                                    unsigned notify, int parent)
{
    m->rcpts = xgrow(m->rcpts, &m->rcpts_cap, m->nrcpt + 1, sizeof *m->rcpts);
    struct queue_file_rcpt *r = &m->rcpts[m->nrcpt++];
    memset(r, 0, sizeof *r);
    r->addr = xstrdup(addr);
    r->orcpt = xstrdup(orcpt ? orcpt : "");
    r->notify = notify;
    r->parent = parent;
    r->state = QF_PENDING;
    r->dsn = xstrdup("");
    r->reason = xstrdup("");
    r->remote_mta = xstrdup("");
    r->diag = xstrdup("");
    return r;
}

void queue_file_message_free(struct queue_file_message *m)
{
    free(m->sender);
    for (size_t i = 0; i < m->nattrs; i++) {
        free(m->attrs[i].name);
        free(m->attrs[i].value);
    }
    free(m->attrs);
    for (size_t i = 0; i < m->nrcpt; i++) {
        free(m->rcpts[i].addr);
        free(m->rcpts[i].orcpt);
        free(m->rcpts[i].dsn);
        free(m->rcpts[i].reason);
        free(m->rcpts[i].remote_mta);
        free(m->rcpts[i].diag);
    }
    free(m->rcpts);
    memset(m, 0, sizeof *m);
}

size_t queue_file_message_open_rcpts(const struct queue_file_message *m)
{
    size_t n = 0;
    for (size_t i = 0; i < m->nrcpt; i++)
        if (m->rcpts[i].state == QF_PENDING || m->rcpts[i].state == QF_DEFERRED)
            n++;
    return n;
}

const char *queue_file_state_name(enum queue_file_rcpt_state s)
{
    switch (s) {
    case QF_PENDING: return "pending";
    case QF_DELIVERED: return "delivered";
    case QF_DEFERRED: return "deferred";
    case QF_FAILED: return "failed";
    case QF_EXPANDED: return "expanded";
    }
    return "unknown";
}

/* ---------- writer ---------- */

struct queue_file_writer {
    int dirfd;
    int fd;
    char *name;
    /* queue_file_writer_open_memory: the file is in memory while mem.max
     * is not 0 (0: in dirfd from the start, or spilled): in buf alone until
     * it outgrows it (fd is -1 until then), then in a memfd; charged: bytes
     * of mem's budget it holds */
    struct queue_file_memory mem;
    size_t charged;
    uint64_t written;     /* bytes written to fd so far */
    char buf[QF_WRITE_BUF];
    size_t buflen;
    uint64_t content_len;
};

/* The file is new: locked while it is written (the queue's recovery leaves a
 * locked incoming file alone: its writer is alive). Cannot fail. */
static void lock_new_file(int fd)
{
    (void)flock(fd, LOCK_EX | LOCK_NB);
}

static void memory_release(struct queue_file_writer *w)
{
    if (w->charged && w->mem.release)
        w->mem.release(w->mem.arg, w->charged);
    w->charged = 0;
}

/* Room in memory for a file of size bytes (charged by whole pages, as a
 * memfd holds them): 0, or -1 when it is larger than mem.max or the budget
 * refuses. */
static int memory_grow(struct queue_file_writer *w, uint64_t size)
{
    if (size > w->mem.max)
        return -1;
    size_t pages = (size_t)((size + 4095) & ~(uint64_t)4095);
    if (pages <= w->charged)
        return 0;
    if (w->mem.charge && w->mem.charge(w->mem.arg, pages - w->charged) != 0)
        return -1;
    w->charged = pages;
    return 0;
}

/* The file leaves memory: it moves to dirfd/name, as if written there. */
static int writer_spill(struct queue_file_writer *w)
{
    /* no memfd yet: nothing has been written out of the buffer */
    int fd = w->fd < 0 ? fsops_write_new(w->dirfd, w->name, "", 0)
                       : fsops_copy_to_new(w->dirfd, w->name, w->fd, w->written);
    if (fd < 0)
        return -1;
    lock_new_file(fd);
    if (w->fd >= 0)
        close(w->fd);
    w->fd = fd;
    w->mem.max = 0;
    memory_release(w);
    return 0;
}

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U /* Linux 6.3; Debian 12's headers predate it */
#endif

/* A file in memory that outgrows the buffer gets its memfd (never
 * executable; older kernels do not know the flag: without it); where none
 * can be made it is a file in dirfd after all. */
static int writer_memfd(struct queue_file_writer *w)
{
    int fd = memfd_create("tern-queue-file", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);
    if (fd < 0 && errno == EINVAL)
        fd = memfd_create("tern-queue-file", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return writer_spill(w);
    w->fd = fd;
    return 0;
}

/* Writes at the end of the file (in memory while it fits). */
static int writer_append(struct queue_file_writer *w, const void *data, size_t len)
{
    if (w->mem.max && memory_grow(w, w->written + len) != 0 && writer_spill(w) != 0)
        return -1;
    if (w->fd < 0 && writer_memfd(w) != 0)
        return -1;
    if (fsops_write_all(w->fd, data, len) != 0)
        return -1;
    w->written += len;
    return 0;
}

static int writer_new(int dirfd, const char *name, int fd, const struct queue_file_memory *mem,
                      struct queue_file_writer **out)
{
    /* Not zeroed: buf is 64 KiB and only its first buflen bytes are ever
     * read. Clearing it cost a 64 KiB memset per message, and touched (so
     * faulted in) every page of it whenever the heap had just grown. */
    struct queue_file_writer *w = xmalloc(sizeof *w);
    w->dirfd = dirfd;
    w->fd = fd;
    w->name = xstrdup(name);
    w->mem = mem ? *mem : (struct queue_file_memory){0};
    w->charged = 0;
    w->written = 0;
    w->content_len = 0;
    /* The header starts the buffer: a message that fits it is written
     * whole by one write at its end, its envelope's offset filled in first
     * (queue_file_writer_finish_memory) */
    memset(w->buf, 0, QF_HEADER_SIZE);
    memcpy(w->buf, QF_MAGIC, 8);
    w->buflen = QF_HEADER_SIZE;
    *out = w;
    return 0;
}

int queue_file_writer_open(int dirfd, const char *name, struct queue_file_writer **out)
{
    int fd = fsops_openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    lock_new_file(fd);
    return writer_new(dirfd, name, fd, NULL, out);
}

int queue_file_writer_open_memory(int dirfd, const char *name, const struct queue_file_memory *mem,
                                  struct queue_file_writer **out)
{
    if (mem->max == 0)
        return queue_file_writer_open(dirfd, name, out);
    /* no descriptor until the file outgrows the buffer (writer_append):
     * most messages never do, and go to the queue as bytes */
    return writer_new(dirfd, name, -1, mem, out);
}

static int writer_flush(struct queue_file_writer *w)
{
    if (w->buflen == 0)
        return 0;
    if (writer_append(w, w->buf, w->buflen) != 0)
        return -1;
    w->buflen = 0;
    return 0;
}

int queue_file_writer_write(struct queue_file_writer *w, const void *data, size_t len)
{
    const char *p = data;
    w->content_len += len;
    if (w->buflen + len > sizeof w->buf) {
        if (writer_flush(w) != 0)
            return -1;
        if (len >= sizeof w->buf)
            return writer_append(w, p, len);
    }
    memcpy(w->buf + w->buflen, p, len);
    w->buflen += len;
    return 0;
}

uint64_t queue_file_writer_length(const struct queue_file_writer *w)
{
    return w->content_len;
}

static void encode_envelope(struct strbuf *out, const struct queue_file_message *m, uint64_t content_len)
{
    struct strbuf p = STRBUF_INIT;
    put_str(&p, m->id);
    put_record(out, REC_ID, &p);
    strbuf_reset(&p);
    put_u64(&p, (uint64_t)m->arrival_us);
    put_record(out, REC_ARRIVAL, &p);
    strbuf_reset(&p);
    put_str(&p, m->sender);
    put_record(out, REC_SENDER, &p);
    for (size_t i = 0; i < m->nattrs; i++) {
        strbuf_reset(&p);
        put_str(&p, m->attrs[i].name);
        put_str(&p, m->attrs[i].value);
        put_record(out, REC_ATTR, &p);
    }
    for (size_t i = 0; i < m->nrcpt; i++) {
        strbuf_reset(&p);
        put_rcpt_payload(&p, &m->rcpts[i]);
        put_record(out, REC_RCPT, &p);
    }
    strbuf_reset(&p);
    put_u64(&p, QF_HEADER_SIZE);
    put_u64(&p, content_len);
    put_record(out, REC_CONTENT, &p);
    strbuf_reset(&p);
    put_u32(&p, (uint32_t)m->nrcpt);
    put_record(out, REC_END, &p);
    strbuf_free(&p);
}

int queue_file_writer_finish_memory(struct queue_file_writer *w, struct queue_file_message *m, int *memfd,
                                    size_t *charged, struct strbuf *bytes, size_t bytes_max)
{
    int rc = -1;
    struct strbuf env = STRBUF_INIT;
    int as_bytes = 0;
    if (memfd)
        *memfd = -1;
    if (charged)
        *charged = 0;
    /* a caller that takes no descriptor gets the file in dirfd */
    if (w->mem.max && !memfd && writer_spill(w) != 0)
        goto out;
    uint64_t env_off = QF_HEADER_SIZE + w->content_len;
    encode_envelope(&env, m, w->content_len);
    unsigned char off[8];
    for (int i = 0; i < 8; i++)
        off[i] = (unsigned char)(env_off >> (8 * i));
    if (w->written == 0 && w->buflen + env.len <= sizeof w->buf) {
        /* all of it is still in the buffer, the header first: one write,
         * or none when the caller takes it as bytes */
        memcpy(w->buf + 8, off, sizeof off);
        memcpy(w->buf + w->buflen, env.buf, env.len);
        w->buflen += env.len;
        as_bytes = bytes && memfd && w->mem.max && w->fd < 0 && w->buflen <= bytes_max &&
                   memory_grow(w, w->buflen) == 0;
        if (as_bytes)
            strbuf_append(bytes, w->buf, w->buflen);
        else if (writer_flush(w) != 0)
            goto out;
    } else if (writer_flush(w) != 0 || writer_append(w, env.buf, env.len) != 0 ||
               fsops_pwrite_all(w->fd, off, sizeof off, 8) != 0) {
        goto out;
    }
    /* Sealed: the reader may trust that what it checked is what it keeps. */
    if (w->mem.max && !as_bytes && fcntl(w->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0)
        goto out;
    m->content_offset = QF_HEADER_SIZE;
    m->content_length = w->content_len;
    m->valid_end = env_off + env.len;
    m->file_size = m->valid_end;
    rc = 0;
out:;
    int e = errno;
    strbuf_free(&env);
    if (rc == 0 && w->mem.max) {
        *memfd = w->fd;   /* -1 with the file in bytes */
        if (charged)
            *charged = w->charged; /* the caller's now, with the descriptor */
        else
            memory_release(w);
        w->charged = 0;
    } else if (w->fd >= 0 && close(w->fd) != 0 && rc == 0) {
        e = errno;
        rc = -1;
    }
    if (rc != 0 && !w->mem.max)
        fsops_unlinkat(w->dirfd, w->name, 0);
    memory_release(w);
    free(w->name);
    free(w);
    errno = e;
    return rc;
}

int queue_file_writer_finish(struct queue_file_writer *w, struct queue_file_message *m)
{
    return queue_file_writer_finish_memory(w, m, NULL, NULL, NULL, 0);
}

void queue_file_writer_abort(struct queue_file_writer *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    if (!w->mem.max)
        fsops_unlinkat(w->dirfd, w->name, 0);
    memory_release(w);
    free(w->name);
    free(w);
}

/* ---------- reader ---------- */

struct cursor {
    const unsigned char *p;
    size_t len;
    size_t pos;
    int bad;
};

static uint32_t cur_u32(struct cursor *c)
{
    if (c->bad || c->len - c->pos < 4) {
        c->bad = 1;
        return 0;
    }
    uint32_t v = get_u32(c->p + c->pos);
    c->pos += 4;
    return v;
}

static uint64_t cur_u64(struct cursor *c)
{
    if (c->bad || c->len - c->pos < 8) {
        c->bad = 1;
        return 0;
    }
    uint64_t v = get_u64(c->p + c->pos);
    c->pos += 8;
    return v;
}

static uint8_t cur_u8(struct cursor *c)
{
    if (c->bad || c->len - c->pos < 1) {
        c->bad = 1;
        return 0;
    }
    return c->p[c->pos++];
}

/* Strings in the file never contain NUL: a NUL means corruption. */
static char *cur_str(struct cursor *c)
{
    uint32_t n = cur_u32(c);
    if (c->bad || n > QF_MAX_FIELD || c->len - c->pos < n || memchr(c->p + c->pos, 0, n)) {
        c->bad = 1;
        return NULL;
    }
    char *s = xstrndup((const char *)c->p + c->pos, n);
    c->pos += n;
    return s;
}

/* Reads the next framed record; returns its type, or -1 at a torn/corrupt
 * record or the end of data. */
static int next_record(struct cursor *c, struct cursor *payload)
{
    if (c->len - c->pos < 9)
        return -1;
    const unsigned char *start = c->p + c->pos;
    uint32_t plen = get_u32(start + 1);
    if (plen > c->len - c->pos - 9)
        return -1;
    uint32_t crc = get_u32(start + 5 + plen);
    if (queue_file_crc32(0, start, 5 + (size_t)plen) != crc)
        return -1;
    payload->p = start + 5;
    payload->len = plen;
    payload->pos = 0;
    payload->bad = 0;
    c->pos += 9 + (size_t)plen;
    return start[0];
}

static int read_rcpt(struct cursor *pl, struct queue_file_message *m)
{
    char *addr = cur_str(pl);
    char *orcpt = cur_str(pl);
    uint32_t notify = cur_u32(pl);
    uint32_t parent = cur_u32(pl);
    int ok = !pl->bad && (parent == UINT32_MAX || parent < m->nrcpt);
    if (ok)
        queue_file_message_add_rcpt(m, addr, orcpt, notify, parent == UINT32_MAX ? -1 : (int)parent);
    free(addr);
    free(orcpt);
    return ok ? 0 : -1;
}

static int read_status(struct cursor *pl, struct queue_file_message *m)
{
    uint32_t idx = cur_u32(pl);
    uint8_t state = cur_u8(pl);
    uint32_t attempts = cur_u32(pl);
    uint64_t next_try = cur_u64(pl);
    uint64_t last_try = cur_u64(pl);
    char *dsn = cur_str(pl);
    char *reason = cur_str(pl);
    /* Later fields are optional: records written before they existed end here. */
    char *remote_mta = NULL, *diag = NULL;
    uint8_t flags = 0;
    if (!pl->bad && pl->pos < pl->len) {
        remote_mta = cur_str(pl);
        diag = cur_str(pl);
        flags = cur_u8(pl);
    }
    if (pl->bad || idx >= m->nrcpt || state > QF_EXPANDED) {
        free(dsn);
        free(reason);
        free(remote_mta);
        free(diag);
        return -1;
    }
    struct queue_file_rcpt *r = &m->rcpts[idx];
    r->state = (enum queue_file_rcpt_state)state;
    r->attempts = attempts;
    r->next_try = (int64_t)next_try;
    r->last_try = (int64_t)last_try;
    free(r->dsn);
    free(r->reason);
    r->dsn = dsn;
    r->reason = reason;
    free(r->remote_mta);
    free(r->diag);
    r->remote_mta = remote_mta ? remote_mta : xstrdup("");
    r->diag = diag ? diag : xstrdup("");
    r->flags = flags;
    return 0;
}

#define FAIL(...)                                   \
    do {                                            \
        snprintf(err, errlen, __VA_ARGS__);         \
        goto fail;                                  \
    } while (0)

/* Parses the envelope and progress records that start at file offset
 * env_off of a queue file of size bytes; trailer holds bytes env_off..size. */
static int parse_trailer(const unsigned char *trailer, size_t tlen, uint64_t env_off, uint64_t size,
                         struct queue_file_message *m, char *err, size_t errlen);

int queue_file_read_fd(int fd, struct queue_file_message *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    m->sender = xstrdup("");
    unsigned char *buf = NULL;
    struct stat st;
    unsigned char hdr[QF_HEADER_SIZE];
    if (fstat(fd, &st) != 0)
        FAIL("fstat: %s", strerror(errno));
    if (pread(fd, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr)
        FAIL("short header");
    if (memcmp(hdr, QF_MAGIC, 8) != 0)
        FAIL("bad magic");
    uint64_t env_off = get_u64(hdr + 8);
    uint64_t size = (uint64_t)st.st_size;
    if (env_off < QF_HEADER_SIZE || env_off > size)
        FAIL("no envelope (unfinished file)");
    if (size - env_off > QF_MAX_TRAILER)
        FAIL("envelope too large");
    size_t tlen = (size_t)(size - env_off);
    buf = xmalloc(tlen ? tlen : 1);
    size_t got = 0;
    while (got < tlen) {
        ssize_t n = pread(fd, buf + got, tlen - got, (off_t)(env_off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            FAIL("read: %s", n < 0 ? strerror(errno) : "short file");
        got += (size_t)n;
    }
    int rc = parse_trailer(buf, tlen, env_off, size, m, err, errlen);
    free(buf);
    return rc;
fail:
    free(buf);
    queue_file_message_free(m);
    m->sender = NULL;
    return -1;
}

int queue_file_read_mem(const void *data, size_t len, struct queue_file_message *m, char *err, size_t errlen)
{
    const unsigned char *p = data;
    memset(m, 0, sizeof *m);
    m->sender = xstrdup("");
    if (len < QF_HEADER_SIZE)
        FAIL("short header");
    if (memcmp(p, QF_MAGIC, 8) != 0)
        FAIL("bad magic");
    uint64_t env_off = get_u64(p + 8);
    if (env_off < QF_HEADER_SIZE || env_off > len)
        FAIL("no envelope (unfinished file)");
    if (len - env_off > QF_MAX_TRAILER)
        FAIL("envelope too large");
    return parse_trailer(p + env_off, (size_t)(len - env_off), env_off, len, m, err, errlen);
fail:
    queue_file_message_free(m);
    m->sender = NULL;
    return -1;
}

int queue_file_read_at(int fd, uint64_t start, struct queue_file_message *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    m->sender = xstrdup("");
    unsigned char hdr[QF_HEADER_SIZE];
    struct stat st;
    /* no times: fd is a journal segment the queue is appending to */
    if (fsops_fstat_no_times(fd, &st) != 0)
        FAIL("fstat: %s", strerror(errno));
    if (fsops_pread_all(fd, hdr, sizeof hdr, (off_t)start) != 0)
        FAIL("short header");
    if (memcmp(hdr, QF_MAGIC, 8) != 0)
        FAIL("bad magic");
    uint64_t env_off = get_u64(hdr + 8), size = (uint64_t)st.st_size;
    if (env_off < QF_HEADER_SIZE || start > size || env_off > size - start)
        FAIL("no envelope (unfinished file)");
    /* What follows the queue file in a journal segment is not ours: read a
     * little of the trailer, and more only while the envelope is not whole. */
    uint64_t avail = size - start - env_off;
    if (avail > QF_MAX_TRAILER)
        avail = QF_MAX_TRAILER;
    for (size_t want = 65536;; want *= 2) {
        size_t n = want < avail ? want : (size_t)avail;
        unsigned char *buf = xmalloc(n ? n : 1);
        int rc = fsops_pread_all(fd, buf, n, (off_t)(start + env_off));
        if (rc == 0) {
            queue_file_message_free(m);
            memset(m, 0, sizeof *m);
            m->sender = xstrdup("");
            rc = parse_trailer(buf, n, env_off, env_off + n, m, err, errlen);
        } else {
            snprintf(err, errlen, "read: %s", strerror(errno));
        }
        free(buf);
        if (rc == 0 || n == avail) /* a bad envelope fails again with more bytes: at most avail */
            return rc == 0 ? 0 : -1;
    }
fail:
    queue_file_message_free(m);
    m->sender = NULL;
    return -1;
}

static int parse_trailer(const unsigned char *buf, size_t tlen, uint64_t env_off, uint64_t size,
                         struct queue_file_message *m, char *err, size_t errlen)
{
    struct cursor c = {buf, tlen, 0, 0}, pl;
    int have_id = 0, have_content = 0, ended = 0;
    while (!ended) {
        int type = next_record(&c, &pl);
        switch (type) {
        case -1:
            FAIL("envelope incomplete or corrupt at offset %llu",
                 (unsigned long long)(env_off + c.pos));
        case REC_ID: {
            char *id = cur_str(&pl);
            if (!id || !queue_id_valid(id)) {
                free(id);
                FAIL("bad queue id record");
            }
            str_copy(m->id, id, sizeof m->id);
            free(id);
            have_id = 1;
            break;
        }
        case REC_ARRIVAL:
            m->arrival_us = (int64_t)cur_u64(&pl);
            if (pl.bad)
                FAIL("bad arrival record");
            break;
        case REC_SENDER:
            free(m->sender);
            m->sender = cur_str(&pl);
            if (!m->sender) {
                m->sender = xstrdup("");
                FAIL("bad sender record");
            }
            break;
        case REC_ATTR: {
            char *name = cur_str(&pl), *value = cur_str(&pl);
            if (!pl.bad)
                queue_file_message_set_attr(m, name, value);
            free(name);
            free(value);
            if (pl.bad)
                FAIL("bad attribute record");
            break;
        }
        case REC_RCPT:
            if (read_rcpt(&pl, m) != 0)
                FAIL("bad recipient record");
            break;
        case REC_CONTENT:
            m->content_offset = cur_u64(&pl);
            m->content_length = cur_u64(&pl);
            if (pl.bad || m->content_offset != QF_HEADER_SIZE ||
                m->content_offset + m->content_length != env_off)
                FAIL("content record does not match the file");
            have_content = 1;
            break;
        case REC_END: {
            uint32_t n = cur_u32(&pl);
            if (pl.bad || n != m->nrcpt)
                FAIL("end record: recipient count mismatch");
            ended = 1;
            break;
        }
        default:
            FAIL("unexpected record type %d in envelope", type);
        }
    }
    if (!have_id || !have_content || m->nrcpt == 0)
        FAIL("envelope lacks id, content or recipients");

    /* Progress records: stop quietly at the first torn one. */
    for (;;) {
        size_t before = c.pos;
        int type = next_record(&c, &pl);
        int ok = 0;
        if (type == REC_STATUS)
            ok = read_status(&pl, m) == 0;
        else if (type == REC_ADDED_RCPT)
            ok = read_rcpt(&pl, m) == 0;
        if (!ok) {
            c.pos = before;
            break;
        }
    }
    m->valid_end = env_off + c.pos;
    m->file_size = size;
    return 0;
fail:
    queue_file_message_free(m);
    m->sender = NULL;
    return -1;
}

int queue_file_read_path(const char *path, struct queue_file_message *m, char *err, size_t errlen)
{
    /* Not through a link, and never waiting on a FIFO someone put there
     * (O_NONBLOCK; a regular file reads the same with it) */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    struct stat sb;
    const char *why = NULL;
    if (fd < 0 || fstat(fd, &sb) != 0)
        why = strerror(errno);
    else if (!S_ISREG(sb.st_mode))
        why = "not a regular file";
    if (why) {
        memset(m, 0, sizeof *m);
        snprintf(err, errlen, "open %s: %s", path, why);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int rc = queue_file_read_fd(fd, m, err, errlen);
    close(fd);
    /* Queue files are named by their id; the queue treats a file whose id
     * record names another message as corrupt, so readers by path agree. */
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    if (rc == 0 && strcmp(name, m->id) != 0) {
        snprintf(err, errlen, "queue id %s in file does not match its name", m->id);
        queue_file_message_free(m);
        rc = -1;
    }
    return rc;
}

/* ---------- progress ---------- */

void queue_file_encode_status(const struct queue_file_message *m, size_t idx, struct strbuf *out)
{
    const struct queue_file_rcpt *r = &m->rcpts[idx];
    struct strbuf p = STRBUF_INIT;
    put_u32(&p, (uint32_t)idx);
    unsigned char st = (unsigned char)r->state;
    strbuf_append(&p, &st, 1);
    put_u32(&p, r->attempts);
    put_u64(&p, (uint64_t)r->next_try);
    put_u64(&p, (uint64_t)r->last_try);
    put_str(&p, r->dsn);
    put_str(&p, r->reason);
    put_str(&p, r->remote_mta);
    put_str(&p, r->diag);
    unsigned char fl = (unsigned char)r->flags;
    strbuf_append(&p, &fl, 1);
    put_record(out, REC_STATUS, &p);
    strbuf_free(&p);
}

void queue_file_encode_rcpt(const struct queue_file_message *m, size_t idx, struct strbuf *out)
{
    struct strbuf p = STRBUF_INIT;
    put_rcpt_payload(&p, &m->rcpts[idx]);
    put_record(out, REC_ADDED_RCPT, &p);
    strbuf_free(&p);
}

static int append_encoded(int fd, struct queue_file_message *m, struct strbuf *rec)
{
    int rc = fsops_pwrite_all(fd, rec->buf, rec->len, (off_t)m->valid_end);
    if (rc == 0) {
        m->valid_end += rec->len;
        if (m->file_size < m->valid_end)
            m->file_size = m->valid_end;
    }
    int e = errno;
    strbuf_free(rec);
    errno = e;
    return rc;
}

int queue_file_append_status(int fd, struct queue_file_message *m, size_t idx)
{
    struct strbuf rec = STRBUF_INIT;
    queue_file_encode_status(m, idx, &rec);
    return append_encoded(fd, m, &rec);
}

int queue_file_append_rcpt(int fd, struct queue_file_message *m, size_t idx)
{
    struct strbuf rec = STRBUF_INIT;
    queue_file_encode_rcpt(m, idx, &rec);
    return append_encoded(fd, m, &rec);
}

int queue_file_apply_progress(struct queue_file_message *m, const void *data, size_t len)
{
    struct cursor c = {data, len, 0, 0}, pl;
    while (c.pos < c.len) {
        int type = next_record(&c, &pl);
        if (type == REC_STATUS) {
            if (read_status(&pl, m) != 0)
                return -1;
        } else if (type == REC_ADDED_RCPT) {
            if (read_rcpt(&pl, m) != 0)
                return -1;
        } else {
            return -1;
        }
    }
    return 0;
}

static int rcpt_has_progress(const struct queue_file_rcpt *r)
{
    return r->state != QF_PENDING || r->attempts || r->next_try || r->last_try || r->flags || r->dsn[0] ||
           r->reason[0] || r->remote_mta[0] || r->diag[0];
}

void queue_file_encode(const struct queue_file_message *m, const void *content, size_t len, struct strbuf *out)
{
    unsigned char hdr[QF_HEADER_SIZE] = {0};
    memcpy(hdr, QF_MAGIC, 8);
    uint64_t env_off = QF_HEADER_SIZE + (uint64_t)len;
    for (int i = 0; i < 8; i++)
        hdr[8 + i] = (unsigned char)(env_off >> (8 * i));
    strbuf_append(out, hdr, sizeof hdr);
    strbuf_append(out, content, len);
    encode_envelope(out, m, len);
    for (size_t i = 0; i < m->nrcpt; i++)
        if (rcpt_has_progress(&m->rcpts[i]))
            queue_file_encode_status(m, i, out);
}
