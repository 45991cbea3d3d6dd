/* Tests for queue_file and queue_id: the writer/reader round trip, every way
 * the reader must refuse a damaged file (bad magic, unfinished, truncated,
 * flipped bytes, recipient count, id), progress records with a torn tail,
 * file-system failures injected through fsops, and the ID generator. The
 * test builds its own records from the format described in queue_file.h so
 * the reader is checked against the format, not against the writer alone. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "spool/queue_file.h"
#include "spool/queue_id.h"
#include "test_fixture.h"
#include "util/mem.h"
#include "util/strbuf.h"

#define ID_A "0123456789ABC"
#define ID_B "0123456789ABD"

/* ---- a controllable clock for queue_id ---------------------------------- */

/* queue_id_new() asks gettimeofday(); this definition in the executable
 * takes the call, so a test can make the clock step back. Unless a test sets
 * fake_clock_us, it reports the real time. */
static uint64_t fake_clock_us;

int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
    (void)tz;
    if (fake_clock_us) {
        tv->tv_sec = (time_t)(fake_clock_us / 1000000u);
        tv->tv_usec = (suseconds_t)(fake_clock_us % 1000000u);
        return 0;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = (suseconds_t)(ts.tv_nsec / 1000);
    return 0;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- fault injection ---------------------------------------------------- */

/* Installs the fixture's fsops with the nth call of op from now failing with
 * err. A failing write first puts half its bytes on disk, as a filling disk
 * does; a failing pwrite writes nothing. */
static void inject(enum tf_op op, int nth, int err)
{
    tf_fs_install();
    tf_fs_arm(op, (struct tf_fault){.nth = nth, .count = 1, .err = err, .partial = op == TF_WRITE});
}

/* ---- fixture ------------------------------------------------------------ */

struct fx {
    char dir[64];
    int dirfd;
};

static int setup(void **state)
{
    struct fx *fx = xcalloc(1, sizeof *fx);
    if (tf_tmpdir_make(fx->dir, sizeof fx->dir, "qf") != 0)
        return -1;
    fx->dirfd = open(fx->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fx->dirfd < 0)
        return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    tf_fs_uninstall();
    close(fx->dirfd);
    tf_tmpdir_remove(fx->dir);
    free(fx);
    return 0;
}

static char *path_in(const struct fx *fx, const char *name)
{
    return xasprintf("%s/%s", fx->dir, name);
}

static int exists(const struct fx *fx, const char *name)
{
    struct stat st;
    return fstatat(fx->dirfd, name, &st, 0) == 0;
}

static unsigned char *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    unsigned char *buf = xmalloc((size_t)st.st_size + 1);
    assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
    close(fd);
    *len = (size_t)st.st_size;
    return buf;
}

static void spit(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    close(fd);
}

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The envelope every writer test uses: three recipients, one expanded from
 * the first, attributes including an empty value. */
static void sample_message(struct queue_file_message *m, const char *id)
{
    queue_file_message_init(m, id, 1700000000123456LL, "sender@example.org");
    queue_file_message_set_attr(m, "client", "mail.example.net[192.0.2.7]");
    queue_file_message_set_attr(m, "helo", "mail.example.net");
    queue_file_message_set_attr(m, "protocol", "ESMTP");
    queue_file_message_set_attr(m, "empty", "");
    queue_file_message_add_rcpt(m, "a@example.com", "rfc822;A@Example.com", QF_NOTIFY_SUCCESS | QF_NOTIFY_FAILURE, -1);
    queue_file_message_add_rcpt(m, "b@example.com", NULL, 0, -1);
    queue_file_message_add_rcpt(m, "c@example.com", "", QF_NOTIFY_NEVER, 0);
}

/* Writes content in pieces of `piece` bytes (0: all at once). */
static int write_queue_file(const struct fx *fx, const char *name, const void *content, size_t len,
                            size_t piece, struct queue_file_message *m)
{
    struct queue_file_writer *w;
    if (queue_file_writer_open(fx->dirfd, name, &w) != 0)
        return -1;
    const char *p = content;
    size_t off = 0;
    while (off < len) {
        size_t n = piece && len - off > piece ? piece : len - off;
        if (queue_file_writer_write(w, p + off, n) != 0) {
            queue_file_writer_abort(w);
            return -1;
        }
        off += n;
    }
    assert_int_equal(queue_file_writer_length(w), len);
    return queue_file_writer_finish(w, m);
}

static const char sample_content[] =
    "Received: from x\r\nSubject: test\r\n\r\nline one\r\n.dot line kept unstuffed\r\n";

/* Writes the sample file ID_A and returns its bytes. */
static unsigned char *sample_file(const struct fx *fx, size_t *len, uint64_t *env_off)
{
    struct queue_file_message m;
    sample_message(&m, ID_A);
    assert_int_equal(write_queue_file(fx, ID_A, sample_content, strlen(sample_content), 7, &m), 0);
    queue_file_message_free(&m);
    char *path = path_in(fx, ID_A);
    unsigned char *buf = slurp(path, len);
    free(path);
    *env_off = le64(buf + 8);
    return buf;
}

static int read_path(const struct fx *fx, const char *name, struct queue_file_message *m, char *err, size_t errlen)
{
    char *path = path_in(fx, name);
    int rc = queue_file_read_path(path, m, err, errlen);
    free(path);
    return rc;
}

/* Asserts the file is refused, with a reason, and m left freeable. */
static void assert_refused(const struct fx *fx, const char *name, const char *what)
{
    struct queue_file_message m;
    char err[256] = "";
    if (read_path(fx, name, &m, err, sizeof err) == 0) {
        queue_file_message_free(&m);
        fail_msg("accepted a damaged queue file: %s", what);
    }
    assert_true(err[0] != '\0');
    assert_null(m.sender);
    assert_int_equal(m.nrcpt, 0);
    queue_file_message_free(&m);
}

static void assert_sample_envelope(const struct queue_file_message *m)
{
    assert_string_equal(m->id, ID_A);
    assert_int_equal(m->arrival_us, 1700000000123456LL);
    assert_string_equal(m->sender, "sender@example.org");
    assert_int_equal(m->nattrs, 4);
    assert_string_equal(m->attrs[0].name, "client");
    assert_string_equal(m->attrs[0].value, "mail.example.net[192.0.2.7]");
    assert_string_equal(m->attrs[1].name, "helo");
    assert_string_equal(m->attrs[2].name, "protocol");
    assert_string_equal(queue_file_message_attr(m, "protocol"), "ESMTP");
    assert_string_equal(queue_file_message_attr(m, "empty"), "");
    assert_null(queue_file_message_attr(m, "missing"));
    assert_int_equal(m->nrcpt, 3);
    assert_string_equal(m->rcpts[0].addr, "a@example.com");
    assert_string_equal(m->rcpts[0].orcpt, "rfc822;A@Example.com");
    assert_int_equal(m->rcpts[0].notify, QF_NOTIFY_SUCCESS | QF_NOTIFY_FAILURE);
    assert_int_equal(m->rcpts[0].parent, -1);
    assert_string_equal(m->rcpts[1].addr, "b@example.com");
    assert_string_equal(m->rcpts[1].orcpt, "");
    assert_int_equal(m->rcpts[1].notify, 0);
    assert_string_equal(m->rcpts[2].addr, "c@example.com");
    assert_int_equal(m->rcpts[2].notify, QF_NOTIFY_NEVER);
    assert_int_equal(m->rcpts[2].parent, 0);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(m->rcpts[i].state, QF_PENDING);
        assert_int_equal(m->rcpts[i].attempts, 0);
        assert_int_equal(m->rcpts[i].next_try, 0);
        assert_int_equal(m->rcpts[i].last_try, 0);
        assert_string_equal(m->rcpts[i].dsn, "");
        assert_string_equal(m->rcpts[i].reason, "");
    }
}

/* ---- building records by hand, from the format in queue_file.h ---------- */

static void p_u32(struct strbuf *b, uint32_t v)
{
    unsigned char x[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    strbuf_append(b, x, 4);
}

static void p_u64(struct strbuf *b, uint64_t v)
{
    p_u32(b, (uint32_t)v);
    p_u32(b, (uint32_t)(v >> 32));
}

static void p_strn(struct strbuf *b, const char *s, size_t n)
{
    p_u32(b, (uint32_t)n);
    strbuf_append(b, s, n);
}

static void p_str(struct strbuf *b, const char *s)
{
    p_strn(b, s, strlen(s));
}

/* Frames payload as a record (type, length, payload, CRC) onto out. */
static void p_record(struct strbuf *out, int type, const struct strbuf *payload)
{
    size_t start = out->len;
    strbuf_putc(out, (char)type);
    p_u32(out, (uint32_t)payload->len);
    strbuf_append(out, payload->buf ? payload->buf : "", payload->len);
    p_u32(out, queue_file_crc32(0, out->buf + start, out->len - start));
}

static void rec_str(struct strbuf *out, int type, const char *s)
{
    struct strbuf p = STRBUF_INIT;
    p_str(&p, s);
    p_record(out, type, &p);
    strbuf_free(&p);
}

static void rec_u64(struct strbuf *out, int type, uint64_t v)
{
    struct strbuf p = STRBUF_INIT;
    p_u64(&p, v);
    p_record(out, type, &p);
    strbuf_free(&p);
}

static void rec_rcpt(struct strbuf *out, int type, const char *addr, uint32_t parent)
{
    struct strbuf p = STRBUF_INIT;
    p_str(&p, addr);
    p_str(&p, "");
    p_u32(&p, 0);
    p_u32(&p, parent);
    p_record(out, type, &p);
    strbuf_free(&p);
}

static void rec_content(struct strbuf *out, uint64_t off, uint64_t len)
{
    struct strbuf p = STRBUF_INIT;
    p_u64(&p, off);
    p_u64(&p, len);
    p_record(out, 'C', &p);
    strbuf_free(&p);
}

static void rec_end(struct strbuf *out, uint32_t n)
{
    struct strbuf p = STRBUF_INIT;
    p_u32(&p, n);
    p_record(out, 'E', &p);
    strbuf_free(&p);
}

static void rec_status(struct strbuf *out, uint32_t idx, unsigned state, uint32_t attempts, const char *dsn,
                       const char *reason)
{
    struct strbuf p = STRBUF_INIT;
    p_u32(&p, idx);
    unsigned char s = (unsigned char)state;
    strbuf_append(&p, &s, 1);
    p_u32(&p, attempts);
    p_u64(&p, 1700000600);
    p_u64(&p, 1700000000);
    p_str(&p, dsn);
    p_str(&p, reason);
    p_record(out, 'D', &p);
    strbuf_free(&p);
}

#define CRAFT_CONTENT "Subject: x\r\n\r\nbody\r\n"

/* Header and content; the caller appends the envelope records. */
static void craft_start(struct strbuf *f)
{
    strbuf_append(f, QF_MAGIC, 8);
    p_u64(f, QF_HEADER_SIZE + strlen(CRAFT_CONTENT));
    strbuf_puts(f, CRAFT_CONTENT);
}

/* The usual records before the recipients. */
static void craft_head(struct strbuf *f, const char *id)
{
    craft_start(f);
    rec_str(f, 'I', id);
    rec_u64(f, 'T', 42);
    rec_str(f, 'S', "s@example.org");
}

static void craft_save(const struct fx *fx, const char *name, const struct strbuf *f)
{
    char *path = path_in(fx, name);
    spit(path, f->buf, f->len);
    free(path);
}

/* ---- round trip --------------------------------------------------------- */

static void test_round_trip(void **state)
{
    struct fx *fx = *state;
    struct queue_file_message w;
    sample_message(&w, ID_A);
    size_t clen = strlen(sample_content);
    assert_int_equal(write_queue_file(fx, ID_A, sample_content, clen, 5, &w), 0);
    /* finish reports the layout it wrote */
    assert_int_equal(w.content_offset, QF_HEADER_SIZE);
    assert_int_equal(w.content_length, clen);
    uint64_t writer_end = w.valid_end;
    assert_int_equal(w.file_size, writer_end);
    queue_file_message_free(&w);

    struct queue_file_message m;
    char err[256] = "";
    assert_int_equal(read_path(fx, ID_A, &m, err, sizeof err), 0);
    assert_sample_envelope(&m);
    assert_int_equal(m.content_offset, QF_HEADER_SIZE);
    assert_int_equal(m.content_length, clen);
    assert_int_equal(m.valid_end, writer_end);
    assert_int_equal(m.file_size, writer_end);
    assert_int_equal(queue_file_message_open_rcpts(&m), 3);

    size_t flen;
    char *path = path_in(fx, ID_A);
    unsigned char *buf = slurp(path, &flen);
    assert_int_equal(flen, writer_end);
    assert_memory_equal(buf, QF_MAGIC, 8);
    assert_int_equal(le64(buf + 8), QF_HEADER_SIZE + clen);
    assert_memory_equal(buf + m.content_offset, sample_content, clen);
    /* the envelope starts with the id record and ends with a framed 'E' */
    assert_int_equal(buf[QF_HEADER_SIZE + clen], 'I');
    const unsigned char *end_rec = buf + flen - (1 + 4 + 4 + 4);
    assert_int_equal(end_rec[0], 'E');
    assert_int_equal(le32(end_rec + 1), 4);
    assert_int_equal(le32(end_rec + 5), 3);
    assert_int_equal(le32(end_rec + 9), queue_file_crc32(0, end_rec, 9));
    free(buf);

    /* queue_file_read_fd gives the same as queue_file_read_path */
    struct queue_file_message m2;
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(queue_file_read_fd(fd, &m2, err, sizeof err), 0);
    close(fd);
    assert_sample_envelope(&m2);
    queue_file_message_free(&m2);
    free(path);
    queue_file_message_free(&m);
}

/* ---- the writer in memory (smtpd with the journal spool) ---------------- */

/* A budget for files in memory: grants while granted + bytes <= limit. */
struct budget {
    size_t limit, granted, released, refused;
};

static int budget_charge(void *arg, size_t bytes)
{
    struct budget *b = arg;
    if (b->granted - b->released + bytes > b->limit) {
        b->refused++;
        return -1;
    }
    b->granted += bytes;
    return 0;
}

static void budget_release(void *arg, size_t bytes)
{
    struct budget *b = arg;
    b->released += bytes;
}

static struct queue_file_memory memory_of(size_t max, struct budget *b)
{
    return (struct queue_file_memory){max, b ? budget_charge : NULL, b ? budget_release : NULL, b};
}

/* Writes content through a memory writer of memory_max bytes; *memfd as
 * queue_file_writer_finish_memory gives it. */
static int write_in_memory(const struct fx *fx, const char *name, const char *content, size_t len,
                           size_t memory_max, struct queue_file_message *m, int *memfd)
{
    struct queue_file_writer *w;
    struct queue_file_memory mem = memory_of(memory_max, NULL);
    if (queue_file_writer_open_memory(fx->dirfd, name, &mem, &w) != 0)
        return -1;
    for (size_t off = 0; off < len; off += 7)   /* small pieces: through the buffer */
        if (queue_file_writer_write(w, content + off, len - off < 7 ? len - off : 7) != 0) {
            queue_file_writer_abort(w);
            return -1;
        }
    return queue_file_writer_finish_memory(w, m, memfd, NULL, NULL, 0);
}

static void test_memory_writer_hands_a_sealed_file(void **state)
{
    struct fx *fx = *state;
    struct queue_file_message w;
    sample_message(&w, ID_A);
    int memfd = -1;
    assert_int_equal(write_in_memory(fx, ID_A, sample_content, strlen(sample_content), 1 << 20, &w, &memfd), 0);
    assert_true(memfd >= 0);
    assert_false(exists(fx, ID_A));   /* nothing on disk */
    struct queue_file_message m;
    char err[256] = "";
    assert_int_equal(queue_file_read_fd(memfd, &m, err, sizeof err), 0);
    assert_sample_envelope(&m);
    assert_int_equal(m.valid_end, w.valid_end);
    char got[sizeof sample_content];
    assert_int_equal(pread(memfd, got, m.content_length, (off_t)m.content_offset), (ssize_t)m.content_length);
    assert_memory_equal(got, sample_content, m.content_length);
    /* sealed: what the queue checked is what it keeps */
    assert_int_equal(pwrite(memfd, "X", 1, 0), -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(ftruncate(memfd, 10), -1);
    int seals = fcntl(memfd, F_GET_SEALS);
    assert_true((seals & (F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL)) ==
                (F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL));
    close(memfd);
    queue_file_message_free(&m);
    queue_file_message_free(&w);
}

/* Given a place for bytes, a file that never left the writer's buffer comes
 * back as its bytes (no descriptor made); one over bytes_max, or past the
 * buffer, comes as a sealed memfd; one the budget refuses, as a file. */
static void test_memory_writer_gives_a_small_file_as_bytes(void **state)
{
    struct fx *fx = *state;
    struct queue_file_message w;
    struct budget b = {.limit = 1 << 20};
    struct queue_file_memory mem = memory_of(1 << 20, &b);
    struct queue_file_writer *wr;
    struct strbuf bytes = STRBUF_INIT;
    int memfd = 123;
    size_t charged = 0;
    assert_int_equal(queue_file_writer_open_memory(fx->dirfd, ID_A, &mem, &wr), 0);
    assert_int_equal(queue_file_writer_write(wr, sample_content, strlen(sample_content)), 0);
    sample_message(&w, ID_A);
    assert_int_equal(queue_file_writer_finish_memory(wr, &w, &memfd, &charged, &bytes, 63 * 1024), 0);
    assert_int_equal(memfd, -1);
    assert_false(exists(fx, ID_A));
    assert_int_equal(bytes.len, w.file_size);
    assert_int_equal(charged % 4096, 0);
    assert_true(charged >= bytes.len && charged < bytes.len + 4096);
    assert_int_equal(b.granted, charged);
    struct queue_file_message m;
    char err[256] = "";
    assert_int_equal(queue_file_read_mem((const unsigned char *)bytes.buf, bytes.len, &m, err, sizeof err), 0);
    assert_sample_envelope(&m);
    assert_memory_equal(bytes.buf + m.content_offset, sample_content, m.content_length);
    queue_file_message_free(&m);
    queue_file_message_free(&w);

    /* larger than bytes_max: a sealed memfd, bytes untouched */
    strbuf_reset(&bytes);
    assert_int_equal(queue_file_writer_open_memory(fx->dirfd, ID_B, &mem, &wr), 0);
    assert_int_equal(queue_file_writer_write(wr, sample_content, strlen(sample_content)), 0);
    sample_message(&w, ID_B);
    assert_int_equal(queue_file_writer_finish_memory(wr, &w, &memfd, &charged, &bytes, 100), 0);
    assert_true(memfd >= 0);
    assert_int_equal(bytes.len, 0);
    assert_true((fcntl(memfd, F_GET_SEALS) & F_SEAL_WRITE) != 0);
    close(memfd);
    queue_file_message_free(&w);

    /* past the writer's 64 KiB buffer: a memfd too */
    size_t len = 100000;
    char *big = xmalloc(len);
    memset(big, 'q', len);
    char id_c[] = "0123456789ABE";
    assert_int_equal(queue_file_writer_open_memory(fx->dirfd, id_c, &mem, &wr), 0);
    assert_int_equal(queue_file_writer_write(wr, big, len), 0);
    sample_message(&w, id_c);
    assert_int_equal(queue_file_writer_finish_memory(wr, &w, &memfd, &charged, &bytes, 1 << 20), 0);
    assert_true(memfd >= 0);
    assert_int_equal(bytes.len, 0);
    assert_false(exists(fx, id_c));
    close(memfd);
    queue_file_message_free(&w);
    free(big);

    /* a budget with no room: the file is in the directory */
    struct budget none = {.limit = 0};
    mem = memory_of(1 << 20, &none);
    char id_d[] = "0123456789ABF";
    assert_int_equal(queue_file_writer_open_memory(fx->dirfd, id_d, &mem, &wr), 0);
    assert_int_equal(queue_file_writer_write(wr, sample_content, strlen(sample_content)), 0);
    sample_message(&w, id_d);
    memfd = 123;
    assert_int_equal(queue_file_writer_finish_memory(wr, &w, &memfd, &charged, &bytes, 1 << 20), 0);
    assert_int_equal(memfd, -1);
    assert_int_equal(bytes.len, 0);
    assert_int_equal(charged, 0);
    assert_true(exists(fx, id_d));
    assert_int_equal(read_path(fx, id_d, &m, err, sizeof err), 0);
    assert_string_equal(m.id, id_d);
    assert_int_equal(m.content_length, strlen(sample_content));
    queue_file_message_free(&m);
    queue_file_message_free(&w);
    strbuf_free(&bytes);
}

static void test_memory_writer_spills_to_the_directory(void **state)
{
    struct fx *fx = *state;
    /* content larger than the limit, in pieces that cross it mid-buffer */
    size_t len = 200000;
    char *content = xmalloc(len);
    for (size_t i = 0; i < len; i++)
        content[i] = (char)('a' + i % 26);
    struct queue_file_message w;
    sample_message(&w, ID_A);
    int memfd = 12345;
    assert_int_equal(write_in_memory(fx, ID_A, content, len, 100000, &w, &memfd), 0);
    assert_int_equal(memfd, -1);
    assert_true(exists(fx, ID_A));
    struct queue_file_message m;
    char err[256] = "";
    assert_int_equal(read_path(fx, ID_A, &m, err, sizeof err), 0);
    assert_sample_envelope(&m);
    assert_int_equal(m.content_length, len);
    size_t flen;
    char *path = path_in(fx, ID_A);
    unsigned char *buf = slurp(path, &flen);
    assert_memory_equal(buf + m.content_offset, content, len);
    free(buf);
    free(path);
    queue_file_message_free(&m);
    queue_file_message_free(&w);
    free(content);
}

static void test_memory_writer_abort_leaves_nothing(void **state)
{
    struct fx *fx = *state;
    struct queue_file_writer *w;
    struct queue_file_memory mem = memory_of(1000, NULL);
    assert_int_equal(queue_file_writer_open_memory(fx->dirfd, ID_A, &mem, &w), 0);
    assert_int_equal(queue_file_writer_write(w, "x", 1), 0);
    queue_file_writer_abort(w);
    assert_false(exists(fx, ID_A));
    /* spilled, then aborted: the file goes too */
    char big[70000];
    memset(big, 'y', sizeof big);
    assert_int_equal(queue_file_writer_open_memory(fx->dirfd, ID_B, &mem, &w), 0);
    assert_int_equal(queue_file_writer_write(w, big, sizeof big), 0);
    assert_true(exists(fx, ID_B));
    queue_file_writer_abort(w);
    assert_false(exists(fx, ID_B));
}

static void test_round_trip_null_sender_empty_content(void **state)
{
    struct fx *fx = *state;
    struct queue_file_message w;
    queue_file_message_init(&w, ID_B, 0, "");
    queue_file_message_add_rcpt(&w, "only@example.com", NULL, 0, -1);
    assert_int_equal(write_queue_file(fx, ID_B, "", 0, 0, &w), 0);
    queue_file_message_free(&w);

    struct queue_file_message m;
    char err[256];
    assert_int_equal(read_path(fx, ID_B, &m, err, sizeof err), 0);
    assert_string_equal(m.sender, "");
    assert_int_equal(m.arrival_us, 0);
    assert_int_equal(m.nattrs, 0);
    assert_int_equal(m.content_length, 0);
    assert_int_equal(m.content_offset, QF_HEADER_SIZE);
    assert_int_equal(m.nrcpt, 1);
    assert_string_equal(m.rcpts[0].addr, "only@example.com");
    queue_file_message_free(&m);
}

/* Content sizes around the writer's 64 KiB buffer, written in pieces that
 * straddle it, arrive byte-exact. */
static void test_round_trip_large_content(void **state)
{
    struct fx *fx = *state;
    static const size_t sizes[] = {65535, 65536, 65537, 200003};
    static const size_t pieces[] = {0, 1000, 65536, 70000};
    size_t max = 200003;
    char *content = xmalloc(max);
    for (size_t i = 0; i < max; i++)
        content[i] = (char)('A' + (i * 7 + i / 251) % 26);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        for (size_t p = 0; p < sizeof pieces / sizeof pieces[0]; p++) {
            char id[QUEUE_ID_LEN + 1];
            queue_id_new(id);
            struct queue_file_message w;
            sample_message(&w, id);
            assert_int_equal(write_queue_file(fx, id, content, sizes[s], pieces[p], &w), 0);
            queue_file_message_free(&w);
            struct queue_file_message m;
            char err[256];
            assert_int_equal(read_path(fx, id, &m, err, sizeof err), 0);
            assert_int_equal(m.content_length, sizes[s]);
            char *path = path_in(fx, id);
            size_t flen;
            unsigned char *buf = slurp(path, &flen);
            assert_memory_equal(buf + QF_HEADER_SIZE, content, sizes[s]);
            free(buf);
            free(path);
            queue_file_message_free(&m);
        }
    }
    free(content);
}

static void test_message_helpers(void **state)
{
    (void)state;
    struct queue_file_message m;
    queue_file_message_init(&m, ID_A, 1, NULL);
    assert_string_equal(m.sender, "");
    queue_file_message_set_attr(&m, "body", "7BIT");
    queue_file_message_set_attr(&m, "body", "8BITMIME");
    assert_int_equal(m.nattrs, 1);
    assert_string_equal(queue_file_message_attr(&m, "body"), "8BITMIME");
    for (int i = 0; i < 5; i++)
        queue_file_message_add_rcpt(&m, "x@example.com", NULL, 0, -1);
    m.rcpts[0].state = QF_DELIVERED;
    m.rcpts[1].state = QF_DEFERRED;
    m.rcpts[2].state = QF_FAILED;
    m.rcpts[3].state = QF_EXPANDED;
    assert_int_equal(queue_file_message_open_rcpts(&m), 2);
    assert_string_equal(queue_file_state_name(QF_PENDING), "pending");
    assert_string_equal(queue_file_state_name(QF_DELIVERED), "delivered");
    assert_string_equal(queue_file_state_name(QF_DEFERRED), "deferred");
    assert_string_equal(queue_file_state_name(QF_FAILED), "failed");
    assert_string_equal(queue_file_state_name(QF_EXPANDED), "expanded");
    assert_string_equal(queue_file_state_name((enum queue_file_rcpt_state)99), "unknown");
    queue_file_message_free(&m);
    assert_null(m.sender);
    assert_int_equal(m.nrcpt, 0);
}

static void test_crc32_known_value(void **state)
{
    (void)state;
    /* the standard check value of CRC-32/IEEE */
    assert_int_equal(queue_file_crc32(0, "123456789", 9), 0xCBF43926u);
    assert_int_equal(queue_file_crc32(0, "", 0), 0);
    /* incremental use gives the same as one call */
    assert_int_equal(queue_file_crc32(queue_file_crc32(0, "1234", 4), "56789", 5), 0xCBF43926u);
}

/* ---- refusals ----------------------------------------------------------- */

static void test_rejects_bad_magic(void **state)
{
    struct fx *fx = *state;
    size_t len;
    uint64_t env_off;
    unsigned char *buf = sample_file(fx, &len, &env_off);
    char *path = path_in(fx, ID_A);
    for (size_t i = 0; i < 8; i++) {
        unsigned char save = buf[i];
        buf[i] ^= 0x20;
        spit(path, buf, len);
        assert_refused(fx, ID_A, "bad magic");
        buf[i] = save;
    }
    memcpy(buf, "TERNQF02", 8);   /* a later format version */
    spit(path, buf, len);
    assert_refused(fx, ID_A, "other version");
    free(path);
    free(buf);
}

static void test_rejects_unfinished(void **state)
{
    struct fx *fx = *state;
    size_t len;
    uint64_t env_off;
    unsigned char *buf = sample_file(fx, &len, &env_off);
    char *path = path_in(fx, ID_A);
    /* the writer died before writing the envelope offset */
    memset(buf + 8, 0, 8);
    spit(path, buf, len);
    assert_refused(fx, ID_A, "envelope offset 0");
    /* ... or before writing the envelope at all */
    spit(path, buf, env_off);
    assert_refused(fx, ID_A, "envelope offset 0, no envelope");
    static const uint64_t bad_offsets[] = {1, 15, UINT64_MAX};
    for (size_t i = 0; i < sizeof bad_offsets / sizeof bad_offsets[0]; i++) {
        for (int k = 0; k < 8; k++)
            buf[8 + k] = (unsigned char)(bad_offsets[i] >> (8 * k));
        spit(path, buf, len);
        assert_refused(fx, ID_A, "impossible envelope offset");
    }
    /* offset past the end of the file */
    for (int k = 0; k < 8; k++)
        buf[8 + k] = (unsigned char)((uint64_t)(len + 1) >> (8 * k));
    spit(path, buf, len);
    assert_refused(fx, ID_A, "envelope offset past the end");
    spit(path, "", 0);
    assert_refused(fx, ID_A, "empty file");
    spit(path, QF_MAGIC, 8);
    assert_refused(fx, ID_A, "magic only");
    free(path);
    free(buf);
    assert_refused(fx, "no-such-file", "missing file");
}

/* Cutting the file anywhere before the end of its envelope is detected. */
static void test_rejects_truncation_anywhere(void **state)
{
    struct fx *fx = *state;
    size_t len;
    uint64_t env_off;
    unsigned char *buf = sample_file(fx, &len, &env_off);
    char *path = path_in(fx, ID_A);
    for (size_t cut = 0; cut < len; cut++) {
        spit(path, buf, cut);
        char what[64];
        snprintf(what, sizeof what, "cut at %zu of %zu", cut, len);
        assert_refused(fx, ID_A, what);
    }
    spit(path, buf, len);
    struct queue_file_message m;
    char err[256];
    assert_int_equal(read_path(fx, ID_A, &m, err, sizeof err), 0);
    queue_file_message_free(&m);
    free(path);
    free(buf);
}

/* Every byte of the envelope (and of the envelope offset) is protected: any
 * change makes the file invalid. */
static void test_rejects_flipped_byte(void **state)
{
    struct fx *fx = *state;
    size_t len;
    uint64_t env_off;
    unsigned char *buf = sample_file(fx, &len, &env_off);
    char *path = path_in(fx, ID_A);
    static const unsigned char masks[] = {0x01, 0x80, 0xFF};
    size_t tested = 0;
    for (size_t i = 8; i < len; i++) {
        if (i >= QF_HEADER_SIZE && i < env_off)
            continue;   /* content: not covered by a checksum */
        for (size_t k = 0; k < sizeof masks; k++) {
            buf[i] ^= masks[k];
            spit(path, buf, len);
            char what[64];
            snprintf(what, sizeof what, "byte %zu ^ 0x%02x", i, masks[k]);
            assert_refused(fx, ID_A, what);
            buf[i] ^= masks[k];
            tested++;
        }
    }
    assert_true(tested > 3 * 100);
    free(path);
    free(buf);
}

/* Sanity check for the hand-built files: the correct one is accepted, so a
 * refusal below is about the one thing each variant changes. */
static void test_crafted_file_accepted(void **state)
{
    struct fx *fx = *state;
    struct strbuf f = STRBUF_INIT;
    craft_head(&f, ID_A);
    rec_rcpt(&f, 'R', "r1@example.com", UINT32_MAX);
    rec_rcpt(&f, 'R', "r2@example.com", 0);
    rec_content(&f, QF_HEADER_SIZE, strlen(CRAFT_CONTENT));
    rec_end(&f, 2);
    craft_save(fx, ID_A, &f);
    struct queue_file_message m;
    char err[256];
    assert_int_equal(read_path(fx, ID_A, &m, err, sizeof err), 0);
    assert_string_equal(m.id, ID_A);
    assert_int_equal(m.arrival_us, 42);
    assert_string_equal(m.sender, "s@example.org");
    assert_int_equal(m.nrcpt, 2);
    assert_int_equal(m.rcpts[0].parent, -1);
    assert_int_equal(m.rcpts[1].parent, 0);
    assert_int_equal(m.valid_end, f.len);
    queue_file_message_free(&m);
    strbuf_free(&f);
}

static void test_rejects_rcpt_count_mismatch(void **state)
{
    struct fx *fx = *state;
    static const uint32_t counts[] = {0, 1, 3, UINT32_MAX};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        struct strbuf f = STRBUF_INIT;
        craft_head(&f, ID_A);
        rec_rcpt(&f, 'R', "r1@example.com", UINT32_MAX);
        rec_rcpt(&f, 'R', "r2@example.com", UINT32_MAX);
        rec_content(&f, QF_HEADER_SIZE, strlen(CRAFT_CONTENT));
        rec_end(&f, counts[i]);
        craft_save(fx, ID_A, &f);
        assert_refused(fx, ID_A, "end record count differs from the recipients");
        strbuf_free(&f);
    }
}

static void test_rejects_id_mismatch(void **state)
{
    struct fx *fx = *state;
    /* a well-formed file whose id record names another message */
    struct queue_file_message w;
    sample_message(&w, ID_B);
    assert_int_equal(write_queue_file(fx, ID_A, "x\r\n", 3, 0, &w), 0);
    queue_file_message_free(&w);
    assert_refused(fx, ID_A, "file name and id record differ");
    /* the descriptor reader has no name to compare: it reports the recorded
     * id, which its callers compare with the name they opened */
    char *path = path_in(fx, ID_A);
    int fd = open(path, O_RDONLY);
    free(path);
    assert_true(fd >= 0);
    struct queue_file_message m;
    char err[256];
    assert_int_equal(queue_file_read_fd(fd, &m, err, sizeof err), 0);
    close(fd);
    assert_string_equal(m.id, ID_B);
    queue_file_message_free(&m);

    /* malformed ids in the id record */
    static const char *const bad_ids[] = {"", "0123456789AB", "0123456789ABCD", "0123456789abc",
                                          "0123456789ABI", "../../etc/pwd"};
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        struct strbuf f = STRBUF_INIT;
        craft_head(&f, bad_ids[i]);
        rec_rcpt(&f, 'R', "r1@example.com", UINT32_MAX);
        rec_content(&f, QF_HEADER_SIZE, strlen(CRAFT_CONTENT));
        rec_end(&f, 1);
        craft_save(fx, ID_A, &f);
        assert_refused(fx, ID_A, bad_ids[i]);
        strbuf_free(&f);
    }
}

/* Records with a valid checksum but impossible content. */
static void test_rejects_inconsistent_records(void **state)
{
    struct fx *fx = *state;
    size_t clen = strlen(CRAFT_CONTENT);
    for (int variant = 0; variant < 11; variant++) {
        struct strbuf f = STRBUF_INIT;
        const char *what = "";
        switch (variant) {
        case 0:
            what = "no recipients";
            craft_head(&f, ID_A);
            rec_content(&f, QF_HEADER_SIZE, clen);
            rec_end(&f, 0);
            break;
        case 1:
            what = "no content record";
            craft_head(&f, ID_A);
            rec_rcpt(&f, 'R', "r@example.com", UINT32_MAX);
            rec_end(&f, 1);
            break;
        case 2:
            what = "content length disagrees with the envelope offset";
            craft_head(&f, ID_A);
            rec_rcpt(&f, 'R', "r@example.com", UINT32_MAX);
            rec_content(&f, QF_HEADER_SIZE, clen - 1);
            rec_end(&f, 1);
            break;
        case 3:
            what = "content offset not after the header";
            craft_head(&f, ID_A);
            rec_rcpt(&f, 'R', "r@example.com", UINT32_MAX);
            rec_content(&f, 0, clen + QF_HEADER_SIZE);
            rec_end(&f, 1);
            break;
        case 4:
            what = "no id record";
            craft_start(&f);
            rec_str(&f, 'S', "s@example.org");
            rec_rcpt(&f, 'R', "r@example.com", UINT32_MAX);
            rec_content(&f, QF_HEADER_SIZE, clen);
            rec_end(&f, 1);
            break;
        case 5:
            what = "unknown record type in the envelope";
            craft_head(&f, ID_A);
            rec_str(&f, 'Q', "what");
            rec_rcpt(&f, 'R', "r@example.com", UINT32_MAX);
            rec_content(&f, QF_HEADER_SIZE, clen);
            rec_end(&f, 1);
            break;
        case 6:
            what = "progress record inside the envelope";
            craft_head(&f, ID_A);
            rec_rcpt(&f, 'R', "r@example.com", UINT32_MAX);
            rec_status(&f, 0, QF_DELIVERED, 1, "2.0.0", "ok");
            rec_content(&f, QF_HEADER_SIZE, clen);
            rec_end(&f, 1);
            break;
        case 7: {
            what = "NUL inside a string";
            craft_head(&f, ID_A);
            struct strbuf p = STRBUF_INIT;
            p_strn(&p, "r@exa\0mple.com", 14);
            p_str(&p, "");
            p_u32(&p, 0);
            p_u32(&p, UINT32_MAX);
            p_record(&f, 'R', &p);
            strbuf_free(&p);
            rec_content(&f, QF_HEADER_SIZE, clen);
            rec_end(&f, 1);
            break;
        }
        case 8:
            what = "recipient parent not an earlier recipient";
            craft_head(&f, ID_A);
            rec_rcpt(&f, 'R', "r@example.com", 1);
            rec_content(&f, QF_HEADER_SIZE, clen);
            rec_end(&f, 1);
            break;
        case 9: {
            what = "string length beyond its record";
            craft_head(&f, ID_A);
            struct strbuf p = STRBUF_INIT;
            p_u32(&p, 1000);
            strbuf_puts(&p, "short");
            p_record(&f, 'S', &p);
            strbuf_free(&p);
            rec_rcpt(&f, 'R', "r@example.com", UINT32_MAX);
            rec_content(&f, QF_HEADER_SIZE, clen);
            rec_end(&f, 1);
            break;
        }
        case 10: {
            what = "arrival record too short";
            craft_start(&f);
            rec_str(&f, 'I', ID_A);
            struct strbuf p = STRBUF_INIT;
            p_u32(&p, 42);
            p_record(&f, 'T', &p);
            strbuf_free(&p);
            rec_rcpt(&f, 'R', "r@example.com", UINT32_MAX);
            rec_content(&f, QF_HEADER_SIZE, clen);
            rec_end(&f, 1);
            break;
        }
        }
        craft_save(fx, ID_A, &f);
        assert_refused(fx, ID_A, what);
        strbuf_free(&f);
    }
}

/* ---- progress records --------------------------------------------------- */

static int open_rw(const struct fx *fx, const char *name)
{
    int fd = openat(fx->dirfd, name, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    return fd;
}

static void set_status(struct queue_file_message *m, size_t i, enum queue_file_rcpt_state s, uint32_t attempts,
                       const char *dsn, const char *reason)
{
    struct queue_file_rcpt *r = &m->rcpts[i];
    r->state = s;
    r->attempts = attempts;
    r->next_try = 1700000000 + attempts * 600;
    r->last_try = 1700000000 + attempts;
    free(r->dsn);
    free(r->reason);
    r->dsn = xstrdup(dsn);
    r->reason = xstrdup(reason);
}

/* Writes the sample, then (re-reading each time, as the queue does):
 * rcpt 0 deferred, rcpt 0 delivered, rcpt 1 failed, an added rcpt 3 from 1,
 * rcpt 3 deferred. Returns the offsets where each progress record starts
 * (6 entries: the 5 starts and the end). */
static void write_progress(const struct fx *fx, uint64_t starts[6])
{
    size_t len;
    uint64_t env_off;
    free(sample_file(fx, &len, &env_off));
    struct queue_file_message m;
    char err[256];
    assert_int_equal(read_path(fx, ID_A, &m, err, sizeof err), 0);
    int fd = open_rw(fx, ID_A);
    starts[0] = m.valid_end;
    set_status(&m, 0, QF_DEFERRED, 1, "4.2.0", "mailbox busy");
    assert_int_equal(queue_file_append_status(fd, &m, 0), 0);
    starts[1] = m.valid_end;
    set_status(&m, 0, QF_DELIVERED, 2, "2.0.0", "delivered to maildir");
    assert_int_equal(queue_file_append_status(fd, &m, 0), 0);
    starts[2] = m.valid_end;
    set_status(&m, 1, QF_FAILED, 1, "5.1.1", "user unknown");
    free(m.rcpts[1].remote_mta);
    free(m.rcpts[1].diag);
    m.rcpts[1].remote_mta = xstrdup("mx.example.net");
    m.rcpts[1].diag = xstrdup("550 5.1.1 <b@example.com>: User unknown");
    m.rcpts[1].flags = QF_RCPT_REMOTE_DSN;
    assert_int_equal(queue_file_append_status(fd, &m, 1), 0);
    starts[3] = m.valid_end;
    queue_file_message_add_rcpt(&m, "d@example.com", "rfc822;d@example.com", QF_NOTIFY_DELAY, 1);
    assert_int_equal(queue_file_append_rcpt(fd, &m, 3), 0);
    starts[4] = m.valid_end;
    set_status(&m, 3, QF_DEFERRED, 1, "4.4.1", "connection refused");
    assert_int_equal(queue_file_append_status(fd, &m, 3), 0);
    starts[5] = m.valid_end;
    assert_int_equal(m.file_size, m.valid_end);
    close(fd);
    queue_file_message_free(&m);
}

static void test_progress_applied_in_order(void **state)
{
    struct fx *fx = *state;
    uint64_t starts[6];
    write_progress(fx, starts);
    struct queue_file_message m;
    char err[256];
    assert_int_equal(read_path(fx, ID_A, &m, err, sizeof err), 0);
    assert_int_equal(m.valid_end, starts[5]);
    assert_int_equal(m.file_size, starts[5]);
    assert_int_equal(m.nrcpt, 4);
    /* the later status of rcpt 0 wins */
    assert_int_equal(m.rcpts[0].state, QF_DELIVERED);
    assert_int_equal(m.rcpts[0].attempts, 2);
    assert_int_equal(m.rcpts[0].next_try, 1700000000 + 1200);
    assert_int_equal(m.rcpts[0].last_try, 1700000002);
    assert_string_equal(m.rcpts[0].dsn, "2.0.0");
    assert_string_equal(m.rcpts[0].reason, "delivered to maildir");
    assert_int_equal(m.rcpts[1].state, QF_FAILED);
    assert_string_equal(m.rcpts[1].reason, "user unknown");
    assert_string_equal(m.rcpts[1].remote_mta, "mx.example.net");
    assert_string_equal(m.rcpts[1].diag, "550 5.1.1 <b@example.com>: User unknown");
    assert_int_equal(m.rcpts[1].flags, QF_RCPT_REMOTE_DSN);
    assert_string_equal(m.rcpts[0].remote_mta, "");
    assert_string_equal(m.rcpts[0].diag, "");
    assert_int_equal(m.rcpts[0].flags, 0);
    assert_int_equal(m.rcpts[2].state, QF_PENDING);
    assert_string_equal(m.rcpts[3].addr, "d@example.com");
    assert_string_equal(m.rcpts[3].orcpt, "rfc822;d@example.com");
    assert_int_equal(m.rcpts[3].notify, QF_NOTIFY_DELAY);
    assert_int_equal(m.rcpts[3].parent, 1);
    assert_int_equal(m.rcpts[3].state, QF_DEFERRED);
    assert_string_equal(m.rcpts[3].dsn, "4.4.1");
    assert_int_equal(queue_file_message_open_rcpts(&m), 2);   /* rcpts 2 and 3 */
    queue_file_message_free(&m);
}

/* A crash while appending leaves part of the last record: at every cut the
 * earlier records are applied, the torn one ignored, and valid_end points
 * at its start. */
static void test_torn_tail_ignored(void **state)
{
    struct fx *fx = *state;
    uint64_t starts[6];
    write_progress(fx, starts);
    char *path = path_in(fx, ID_A);
    size_t len;
    unsigned char *buf = slurp(path, &len);
    assert_int_equal(len, starts[5]);
    for (size_t cut = starts[4]; cut < starts[5]; cut++) {
        spit(path, buf, cut);
        struct queue_file_message m;
        char err[256];
        assert_int_equal(read_path(fx, ID_A, &m, err, sizeof err), 0);
        assert_int_equal(m.valid_end, starts[4]);
        assert_int_equal(m.file_size, cut);
        assert_int_equal(m.nrcpt, 4);
        assert_int_equal(m.rcpts[3].state, QF_PENDING);   /* its status was torn */
        assert_int_equal(m.rcpts[0].state, QF_DELIVERED);
        queue_file_message_free(&m);
    }
    /* a cut inside the added-recipient record loses that recipient too */
    for (size_t cut = starts[3]; cut < starts[4]; cut++) {
        spit(path, buf, cut);
        struct queue_file_message m;
        char err[256];
        assert_int_equal(read_path(fx, ID_A, &m, err, sizeof err), 0);
        assert_int_equal(m.valid_end, starts[3]);
        assert_int_equal(m.nrcpt, 3);
        queue_file_message_free(&m);
    }
    free(buf);
    free(path);
}

/* A damaged progress record ends the valid data: it and everything after it
 * are ignored (later records may depend on it). */
static void test_corrupt_progress_record_ends_valid_data(void **state)
{
    struct fx *fx = *state;
    uint64_t starts[6];
    write_progress(fx, starts);
    char *path = path_in(fx, ID_A);
    size_t len;
    unsigned char *buf = slurp(path, &len);
    for (size_t i = starts[1]; i < starts[2]; i++) {
        buf[i] ^= 0x10;
        spit(path, buf, len);
        struct queue_file_message m;
        char err[256];
        assert_int_equal(read_path(fx, ID_A, &m, err, sizeof err), 0);
        assert_int_equal(m.valid_end, starts[1]);
        assert_int_equal(m.file_size, len);
        assert_int_equal(m.rcpts[0].state, QF_DEFERRED);   /* only the first applied */
        assert_int_equal(m.rcpts[1].state, QF_PENDING);
        assert_int_equal(m.nrcpt, 3);
        queue_file_message_free(&m);
        buf[i] ^= 0x10;
    }
    /* a well-framed status for a recipient that does not exist ends it too */
    struct strbuf tail = STRBUF_INIT;
    rec_status(&tail, 7, QF_DELIVERED, 1, "2.0.0", "ghost");
    rec_status(&tail, 0, QF_FAILED, 9, "5.0.0", "after the bad one");
    unsigned char *bigger = xmalloc(len + tail.len);
    memcpy(bigger, buf, len);
    memcpy(bigger + len, tail.buf, tail.len);
    spit(path, bigger, len + tail.len);
    struct queue_file_message m;
    char err[256];
    assert_int_equal(read_path(fx, ID_A, &m, err, sizeof err), 0);
    assert_int_equal(m.valid_end, len);
    assert_int_equal(m.rcpts[0].state, QF_DELIVERED);
    queue_file_message_free(&m);
    free(bigger);
    strbuf_free(&tail);
    free(buf);
    free(path);
}

/* After a torn tail, new records are appended at valid_end, over the torn
 * bytes, whether the new record is shorter or longer than what it covers. */
static void test_append_over_torn_tail(void **state)
{
    struct fx *fx = *state;
    static const char *const reasons[] = {"x", "a much longer reason text than the record it overwrites, "
                                               "so that it runs past the end of the torn bytes"};
    for (size_t k = 0; k < 2; k++) {
        uint64_t starts[6];
        write_progress(fx, starts);
        char *path = path_in(fx, ID_A);
        size_t len;
        unsigned char *buf = slurp(path, &len);
        size_t cut = (size_t)starts[4] + (size_t)(starts[5] - starts[4]) * 2 / 3;
        spit(path, buf, cut);
        free(buf);

        struct queue_file_message m;
        char err[256];
        assert_int_equal(read_path(fx, ID_A, &m, err, sizeof err), 0);
        assert_int_equal(m.valid_end, starts[4]);
        int fd = open_rw(fx, ID_A);
        set_status(&m, 2, QF_DELIVERED, 1, "2.0.0", reasons[k]);
        assert_int_equal(queue_file_append_status(fd, &m, 2), 0);
        set_status(&m, 3, QF_FAILED, 2, "5.4.4", "no route");
        assert_int_equal(queue_file_append_status(fd, &m, 3), 0);
        uint64_t end = m.valid_end;
        close(fd);
        queue_file_message_free(&m);

        assert_int_equal(read_path(fx, ID_A, &m, err, sizeof err), 0);
        assert_int_equal(m.valid_end, end);
        assert_int_equal(m.rcpts[2].state, QF_DELIVERED);
        assert_string_equal(m.rcpts[2].reason, reasons[k]);
        assert_int_equal(m.rcpts[3].state, QF_FAILED);
        assert_string_equal(m.rcpts[3].reason, "no route");
        assert_int_equal(m.rcpts[0].state, QF_DELIVERED);
        assert_int_equal(m.rcpts[1].state, QF_FAILED);
        /* whatever the torn bytes left beyond the new records is ignored */
        assert_true(m.file_size >= m.valid_end);
        queue_file_message_free(&m);
        unlinkat(fx->dirfd, ID_A, 0);
        free(path);
    }
}

/* ---- file-system failures ---------------------------------------------- */

static void test_fault_open(void **state)
{
    struct fx *fx = *state;
    struct queue_file_writer *w = NULL;
    inject(TF_OPENAT, 1, EACCES);
    assert_int_equal(queue_file_writer_open(fx->dirfd, ID_A, &w), -1);
    assert_int_equal(errno, EACCES);
    assert_false(exists(fx, ID_A));
    /* opening writes nothing (the header waits in the buffer for the
     * first write, see test_fault_write_in_finish) */
    inject(TF_WRITE, 1, ENOSPC);
    assert_int_equal(queue_file_writer_open(fx->dirfd, ID_A, &w), 0);
    assert_int_equal(tf_fs_calls(TF_WRITE), 0);
    queue_file_writer_abort(w);
    assert_false(exists(fx, ID_A));
    /* an existing file is never overwritten */
    tf_fs_uninstall();
    assert_int_equal(queue_file_writer_open(fx->dirfd, ID_A, &w), 0);
    struct queue_file_writer *w2 = NULL;
    assert_int_equal(queue_file_writer_open(fx->dirfd, ID_A, &w2), -1);
    assert_int_equal(errno, EEXIST);
    queue_file_writer_abort(w);
    assert_false(exists(fx, ID_A));
    queue_file_writer_abort(NULL);
}

/* Each write the finish makes fails in turn, with ENOSPC and EIO: the call
 * reports -1 with that errno and no file is left behind. A message that
 * fits the writer's buffer is one write (header, content and envelope, the
 * offset filled in); a larger one has had its header and content written
 * already (writes 1 and 2), and the finish appends the envelope (write 3)
 * and fills in its offset (pwrite 1). */
static void test_fault_write_in_finish(void **state)
{
    struct fx *fx = *state;
    static const int errs[] = {ENOSPC, EIO};
    size_t big_len = 70000;
    char *big = xmalloc(big_len);
    memset(big, 'y', big_len);
    static const struct {
        enum tf_op op;
        int nth;
        int big;
    } points[] = {{TF_WRITE, 1, 0}, {TF_WRITE, 3, 1}, {TF_PWRITE, 1, 1}};
    for (size_t e = 0; e < 2; e++) {
        for (size_t p = 0; p < sizeof points / sizeof points[0]; p++) {
            struct queue_file_message m;
            sample_message(&m, ID_A);
            inject(points[p].op, points[p].nth, errs[e]);
            struct queue_file_writer *w;
            assert_int_equal(queue_file_writer_open(fx->dirfd, ID_A, &w), 0);
            if (points[p].big)
                assert_int_equal(queue_file_writer_write(w, big, big_len), 0);
            else
                assert_int_equal(queue_file_writer_write(w, sample_content, strlen(sample_content)), 0);
            errno = 0;
            assert_int_equal(queue_file_writer_finish(w, &m), -1);
            assert_int_equal(errno, errs[e]);
            assert_int_equal(tf_fs_calls(points[p].op), points[p].nth);
            assert_false(exists(fx, ID_A));
            tf_fs_uninstall();
            queue_file_message_free(&m);
        }
    }
    free(big);
}

/* A message that fits the writer's buffer costs one write and no pwrite
 * (smtpd makes one per message), and reads back whole. */
static void test_small_message_is_one_write(void **state)
{
    struct fx *fx = *state;
    inject(TF_WRITE, 1000, EIO); /* never reached: counts the calls */
    struct queue_file_writer *w;
    assert_int_equal(queue_file_writer_open(fx->dirfd, ID_A, &w), 0);
    assert_int_equal(queue_file_writer_write(w, sample_content, 10), 0);
    assert_int_equal(queue_file_writer_write(w, sample_content + 10, strlen(sample_content) - 10), 0);
    struct queue_file_message m;
    sample_message(&m, ID_A);
    assert_int_equal(queue_file_writer_finish(w, &m), 0);
    assert_int_equal(tf_fs_calls(TF_WRITE), 1);
    assert_int_equal(tf_fs_calls(TF_PWRITE), 0);
    tf_fs_uninstall();
    queue_file_message_free(&m);
    char err[256] = "";
    assert_int_equal(read_path(fx, ID_A, &m, err, sizeof err), 0);
    assert_int_equal(m.content_length, strlen(sample_content));
    assert_string_equal(m.id, ID_A);
    queue_file_message_free(&m);
}

/* Content bigger than the buffer is written during queue_file_writer_write; its
 * failure is reported there and abort removes the file. */
static void test_fault_write_during_content(void **state)
{
    struct fx *fx = *state;
    size_t big = 150000;
    char *content = xmalloc(big);
    memset(content, 'x', big);
    /* 50000-byte writes: the second flushes the header and the first,
     * the third flushes the second */
    for (int nth = 1; nth <= 2; nth++) {
        inject(TF_WRITE, nth, ENOSPC);
        struct queue_file_writer *w;
        assert_int_equal(queue_file_writer_open(fx->dirfd, ID_A, &w), 0);
        int rc = 0;
        for (size_t off = 0; off < big && rc == 0; off += 50000)
            rc = queue_file_writer_write(w, content + off, 50000);
        assert_int_equal(rc, -1);
        assert_int_equal(errno, ENOSPC);
        queue_file_writer_abort(w);
        assert_false(exists(fx, ID_A));
        tf_fs_uninstall();
    }
    free(content);
}

/* The budget decides too: what it refuses goes to the directory, and every
 * byte granted comes back (at a spill, an abort, or to the finisher). */
static void test_memory_writer_budget(void **state)
{
    struct fx *fx = *state;
    char content[20000];
    memset(content, 'z', sizeof content);
    struct queue_file_message w;

    /* room for it: charged by whole pages, handed to the finisher */
    struct budget b = {.limit = 1 << 20};
    struct queue_file_memory mem = memory_of(1 << 20, &b);
    struct queue_file_writer *wr;
    assert_int_equal(queue_file_writer_open_memory(fx->dirfd, ID_A, &mem, &wr), 0);
    assert_int_equal(queue_file_writer_write(wr, content, sizeof content), 0);
    sample_message(&w, ID_A);
    int memfd = -1;
    size_t charged = 0;
    assert_int_equal(queue_file_writer_finish_memory(wr, &w, &memfd, &charged, NULL, 0), 0);
    queue_file_message_free(&w);
    assert_true(memfd >= 0);
    struct stat sb;
    assert_int_equal(fstat(memfd, &sb), 0);
    assert_int_equal(charged % 4096, 0);
    assert_true(charged >= (size_t)sb.st_size && charged < (size_t)sb.st_size + 4096);
    assert_int_equal(b.granted, charged);
    assert_int_equal(b.released, 0);   /* the finisher's to give back */
    close(memfd);

    /* a budget that runs out mid-way: the file moves, the grant comes back
     * (the writer's 64 KiB buffer is flushed at about 65 KB, which the budget
     * grants, and again at about 130 KB, which it refuses) */
    struct budget tight = {.limit = 65536 + 4096};
    mem = memory_of(1 << 20, &tight);
    assert_int_equal(queue_file_writer_open_memory(fx->dirfd, ID_B, &mem, &wr), 0);
    for (int round = 0; round < 8; round++)
        for (size_t off = 0; off < sizeof content; off += 5000)
            assert_int_equal(queue_file_writer_write(wr, content + off, 5000), 0);
    sample_message(&w, ID_B);
    memfd = 123;
    assert_int_equal(queue_file_writer_finish_memory(wr, &w, &memfd, &charged, NULL, 0), 0);
    queue_file_message_free(&w);
    assert_int_equal(memfd, -1);
    assert_int_equal(charged, 0);
    assert_true(tight.refused >= 1);
    assert_true(tight.granted > 0);
    assert_int_equal(tight.granted, tight.released);
    struct queue_file_message m;
    char err[256] = "";
    assert_int_equal(read_path(fx, ID_B, &m, err, sizeof err), 0);
    assert_int_equal(m.content_length, 8 * sizeof content);
    queue_file_message_free(&m);

    /* an abort gives back what was granted */
    struct budget some = {.limit = 1 << 20};
    mem = memory_of(1 << 20, &some);
    char id_c[] = "0123456789ABE";
    assert_int_equal(queue_file_writer_open_memory(fx->dirfd, id_c, &mem, &wr), 0);
    for (int i = 0; i < 4; i++) /* past the writer's buffer: in the memfd, charged */
        assert_int_equal(queue_file_writer_write(wr, content, sizeof content), 0);
    queue_file_writer_abort(wr);
    assert_true(some.granted > 0);
    assert_int_equal(some.granted, some.released);
    assert_false(exists(fx, id_c));
}

/* queue_file_writer_finish on a writer in memory: the file lands in the
 * directory (a caller that takes no descriptor must not lose the message). */
static void test_memory_writer_plain_finish_writes_the_file(void **state)
{
    struct fx *fx = *state;
    struct budget b = {.limit = 1 << 20};
    struct queue_file_memory mem = memory_of(1 << 20, &b);
    struct queue_file_writer *wr;
    assert_int_equal(queue_file_writer_open_memory(fx->dirfd, ID_A, &mem, &wr), 0);
    assert_int_equal(queue_file_writer_write(wr, sample_content, strlen(sample_content)), 0);
    struct queue_file_message w;
    sample_message(&w, ID_A);
    assert_int_equal(queue_file_writer_finish(wr, &w), 0);
    queue_file_message_free(&w);
    assert_int_equal(b.granted, b.released);
    struct queue_file_message m;
    char err[256] = "";
    assert_int_equal(read_path(fx, ID_A, &m, err, sizeof err), 0);
    assert_sample_envelope(&m);
    queue_file_message_free(&m);
}

/* The disk fills while a file in memory moves to the directory: the write
 * fails with the error, and neither the file nor a part of it stays. */
static void test_fault_during_spill(void **state)
{
    struct fx *fx = *state;
    size_t big = 150000;
    char *content = xmalloc(big);
    memset(content, 'x', big);
    for (int nth = 1; nth <= 2; nth++) {
        struct queue_file_writer *w;
        struct queue_file_memory mem = memory_of(100000, NULL);
        assert_int_equal(queue_file_writer_open_memory(fx->dirfd, ID_A, &mem, &w), 0);
        assert_int_equal(queue_file_writer_write(w, content, 70000), 0);   /* buffered, then in memory */
        inject(TF_WRITE, nth, ENOSPC);   /* the 1st and 2nd write after the memfd's */
        int rc = 0;
        for (size_t off = 70000; off < big && rc == 0; off += 40000)
            rc = queue_file_writer_write(w, content + off, big - off < 40000 ? big - off : 40000);
        assert_int_equal(rc, -1);
        assert_int_equal(errno, ENOSPC);
        queue_file_writer_abort(w);
        assert_false(exists(fx, ID_A));
        tf_fs_uninstall();
    }
    free(content);
}

/* Short writes are retried: the file is complete and valid. */
static void test_short_writes_complete(void **state)
{
    struct fx *fx = *state;
    tf_fs_install();
    tf_fs_short_writes(3);
    struct queue_file_message w;
    sample_message(&w, ID_A);
    assert_int_equal(write_queue_file(fx, ID_A, sample_content, strlen(sample_content), 0, &w), 0);
    int fd = open_rw(fx, ID_A);
    set_status(&w, 1, QF_DEFERRED, 1, "4.0.0", "later");
    assert_int_equal(queue_file_append_status(fd, &w, 1), 0);
    close(fd);
    tf_fs_uninstall();
    queue_file_message_free(&w);
    struct queue_file_message m;
    char err[256];
    assert_int_equal(read_path(fx, ID_A, &m, err, sizeof err), 0);
    assert_string_equal(m.id, ID_A);
    assert_int_equal(m.nrcpt, 3);
    assert_int_equal(m.rcpts[1].state, QF_DEFERRED);
    assert_int_equal(m.valid_end, m.file_size);
    queue_file_message_free(&m);
}

/* A failed append leaves valid_end where it was; the next append goes to
 * the same place, so a half-written record is simply overwritten. */
static void test_fault_append(void **state)
{
    struct fx *fx = *state;
    size_t len;
    uint64_t env_off;
    free(sample_file(fx, &len, &env_off));
    struct queue_file_message m;
    char err[256];
    assert_int_equal(read_path(fx, ID_A, &m, err, sizeof err), 0);
    int fd = open_rw(fx, ID_A);
    uint64_t before = m.valid_end;
    static const int errs[] = {ENOSPC, EIO};
    for (size_t e = 0; e < 2; e++) {
        inject(TF_PWRITE, 1, errs[e]);
        set_status(&m, 0, QF_DELIVERED, 1, "2.0.0", "ok");
        assert_int_equal(queue_file_append_status(fd, &m, 0), -1);
        assert_int_equal(errno, errs[e]);
        assert_int_equal(m.valid_end, before);
        inject(TF_PWRITE, 1, errs[e]);
        queue_file_message_add_rcpt(&m, "new@example.com", NULL, 0, 0);
        assert_int_equal(queue_file_append_rcpt(fd, &m, m.nrcpt - 1), -1);
        assert_int_equal(m.valid_end, before);
        m.nrcpt--;   /* the caller forgets the recipient it failed to record */
        free(m.rcpts[m.nrcpt].addr);
        free(m.rcpts[m.nrcpt].orcpt);
        free(m.rcpts[m.nrcpt].dsn);
        free(m.rcpts[m.nrcpt].reason);
        free(m.rcpts[m.nrcpt].remote_mta);
        free(m.rcpts[m.nrcpt].diag);
    }
    tf_fs_uninstall();
    struct queue_file_message r;
    assert_int_equal(read_path(fx, ID_A, &r, err, sizeof err), 0);
    assert_int_equal(r.rcpts[0].state, QF_PENDING);
    assert_int_equal(r.nrcpt, 3);
    queue_file_message_free(&r);
    /* the retry succeeds at the same offset */
    assert_int_equal(queue_file_append_status(fd, &m, 0), 0);
    close(fd);
    assert_int_equal(read_path(fx, ID_A, &r, err, sizeof err), 0);
    assert_int_equal(r.rcpts[0].state, QF_DELIVERED);
    assert_int_equal(r.valid_end, m.valid_end);
    queue_file_message_free(&r);
    queue_file_message_free(&m);
}

/* ---- queue_id ----------------------------------------------------------- */

static int cmp_id(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static void test_queue_id_unique_monotonic(void **state)
{
    (void)state;
    enum { N = 100000 };
    char(*ids)[QUEUE_ID_LEN + 1] = xmalloc(N * sizeof *ids);
    queue_id_init(3);
    uint64_t start = now_us();
    for (size_t i = 0; i < N; i++) {
        queue_id_new(ids[i]);
        assert_int_equal(strlen(ids[i]), QUEUE_ID_LEN);
        assert_true(queue_id_valid(ids[i]));
        assert_int_equal(ids[i][12], '3');
        if (i > 0 && strcmp(ids[i - 1], ids[i]) >= 0)
            fail_msg("id %zu (%s) not after %s", i, ids[i], ids[i - 1]);
        if (i > 0)
            assert_true(queue_id_time_us(ids[i]) > queue_id_time_us(ids[i - 1]));
    }
    assert_true(queue_id_time_us(ids[0]) >= start);
    /* strictly increasing implies unique; check anyway by sorting */
    qsort(ids, N, sizeof *ids, cmp_id);
    for (size_t i = 1; i < N; i++)
        assert_true(strcmp(ids[i - 1], ids[i]) != 0);
    free(ids);
}

static void test_queue_id_valid(void **state)
{
    (void)state;
    assert_true(queue_id_valid("0123456789ABC"));
    assert_true(queue_id_valid("ZZZZZZZZZZZZZ"));
    assert_true(queue_id_valid("0000000000000"));
    static const char *const bad[] = {
        "", "0123456789AB", "0123456789ABCD", "0123456789abc", "0123456789ABI", "0123456789ABL",
        "0123456789ABO", "0123456789ABU", "0123456789AB-", "0123456789AB.", "012345678/ABC",
        "0123456789AB ", " 0123456789AB", "0123456789A\xc3\x89",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (queue_id_valid(bad[i]))
            fail_msg("accepted \"%s\"", bad[i]);
    assert_false(queue_id_valid(NULL));
    char embedded_nul[] = "0123456\0" "89ABC";
    assert_false(queue_id_valid(embedded_nul));
}

static void test_queue_id_time_round_trip(void **state)
{
    (void)state;
    /* explicit values: 12 base-32 digits, most significant first */
    assert_int_equal(queue_id_time_us("0000000000000"), 0);
    assert_int_equal(queue_id_time_us("0000000000010"), 1);
    assert_int_equal(queue_id_time_us("00000000000Z0"), 31);
    assert_int_equal(queue_id_time_us("0000000000100"), 32);
    assert_int_equal(queue_id_time_us("ZZZZZZZZZZZZZ"), (UINT64_C(1) << 60) - 1);
    assert_int_equal(queue_id_time_us("00000000000!0"), 0);   /* not a digit */
    /* a fresh id carries the real clock */
    char id[QUEUE_ID_LEN + 1];
    uint64_t before = now_us();
    queue_id_new(id);
    uint64_t after = now_us();
    uint64_t t = queue_id_time_us(id);
    /* the generator may run ahead of the real clock by one per id issued
     * earlier within the same microseconds, never behind it */
    assert_true(t >= before);
    assert_true(t <= after + 2000000);
    /* with a (later) fake clock, the exact value */
    fake_clock_us = UINT64_C(3000000000123456);
    queue_id_new(id);
    fake_clock_us = 0;
    assert_int_equal(queue_id_time_us(id), UINT64_C(3000000000123456));
}

static void test_queue_id_tag_and_clock_step_back(void **state)
{
    (void)state;
    queue_id_init(31);
    char a[QUEUE_ID_LEN + 1], b[QUEUE_ID_LEN + 1], c[QUEUE_ID_LEN + 1];
    fake_clock_us = UINT64_C(4000000000000000);
    queue_id_new(a);
    assert_int_equal(a[12], 'Z');
    /* the clock steps back an hour: ids still increase */
    fake_clock_us -= UINT64_C(3600000000);
    queue_id_new(b);
    assert_true(strcmp(a, b) < 0);
    assert_int_equal(queue_id_time_us(b), queue_id_time_us(a) + 1);
    /* the same microsecond twice */
    queue_id_new(c);
    assert_true(strcmp(b, c) < 0);
    fake_clock_us = 0;
    queue_id_init(32);   /* tags wrap into 0..31 */
    queue_id_new(a);
    assert_int_equal(a[12], '0');
    assert_true(strcmp(c, a) < 0);
    queue_id_init(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip_null_sender_empty_content, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip_large_content, setup, teardown),
        cmocka_unit_test(test_message_helpers),
        cmocka_unit_test(test_crc32_known_value),
        cmocka_unit_test_setup_teardown(test_rejects_bad_magic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejects_unfinished, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejects_truncation_anywhere, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejects_flipped_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crafted_file_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejects_rcpt_count_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejects_id_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejects_inconsistent_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_progress_applied_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_progress_record_ends_valid_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_over_torn_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_small_message_is_one_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_write_in_finish, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_write_during_content, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_writes_complete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_append, setup, teardown),
        cmocka_unit_test(test_queue_id_unique_monotonic),
        cmocka_unit_test_setup_teardown(test_memory_writer_hands_a_sealed_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_writer_gives_a_small_file_as_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_writer_spills_to_the_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_writer_abort_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_during_spill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_writer_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_writer_plain_finish_writes_the_file, setup, teardown),
        cmocka_unit_test(test_queue_id_valid),
        cmocka_unit_test(test_queue_id_time_round_trip),
        cmocka_unit_test(test_queue_id_tag_and_clock_step_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
