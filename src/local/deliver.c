/* deliver: streaming copy of queued content into mailboxes, and the
 * shared delivery error record (see deliver.h). */
#include "local/deliver.h"

#include <errno.h>
#include <linux/magic.h>
#include <sys/vfs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/fsops.h"
#include "util/mem.h"
#include "util/str.h"

#define COPY_CHUNK (64 * 1024)

static const char from_word[] = "From ";
#define FROM_WORD_LEN (sizeof from_word - 1)

/* The copier is two layers fed one byte at a time (with a fast path for runs
 * of ordinary bytes): CRLF -> LF, then mboxrd quoting on the LF stream. Both
 * keep their state across chunk boundaries, so a CRLF or a "From " split by
 * the 64 KiB read size is seen whole. */
struct copier {
    int out_fd;
    int mbox_quote;
    char *out;
    size_t out_len;
    off_t written;
    int failed;          /* a write failed; errno saved in fail_errno */
    int fail_errno;
    int pending_cr;      /* saw CR; the next byte decides whether it is a line end */
    int at_line_start;   /* quoting: matching ^>*From  on the current line */
    size_t gt_held;      /* quoting: '>' held back at the start of the line */
    size_t from_held;    /* quoting: bytes of "From " matched after them */
    int emitted_any;
    char last_emitted;
    off_t limit;         /* most bytes to write; 0: no limit */
};

static void flush_out(struct copier *c)
{
    if (c->failed || c->out_len == 0)
        return;
    if (c->limit > 0 && c->written + (off_t)c->out_len > c->limit) {
        c->failed = 1;
        c->fail_errno = EFBIG;   /* the file size limit, as RLIMIT_FSIZE would say */
        return;
    }
    if (fsops_write_all(c->out_fd, c->out, c->out_len) != 0) {
        c->failed = 1;
        c->fail_errno = errno;
        return;
    }
    c->written += (off_t)c->out_len;
    c->out_len = 0;
}

static void emit_bytes(struct copier *c, const char *p, size_t n)
{
    if (n == 0)
        return;
    c->emitted_any = 1;
    c->last_emitted = p[n - 1];
    while (n > 0 && !c->failed) {
        size_t room = COPY_CHUNK - c->out_len;
        size_t take = n < room ? n : room;
        memcpy(c->out + c->out_len, p, take);
        c->out_len += take;
        p += take;
        n -= take;
        if (c->out_len == COPY_CHUNK)
            flush_out(c);
    }
}

static void emit_byte(struct copier *c, char ch)
{
    emit_bytes(c, &ch, 1);
}

static void emit_repeated(struct copier *c, char ch, size_t count)
{
    while (count-- > 0 && !c->failed)
        emit_byte(c, ch);
}

/* Gives back what the line-start matcher held when the line turned out not
 * to be a "From " line. */
static void release_held(struct copier *c)
{
    emit_repeated(c, '>', c->gt_held);
    emit_bytes(c, from_word, c->from_held);
    c->gt_held = 0;
    c->from_held = 0;
    c->at_line_start = 0;
}

/* Second layer: one byte of LF-terminated text. */
static void put_text_byte(struct copier *c, char ch)
{
    if (c->at_line_start) {
        if (c->from_held == 0 && ch == '>') {
            c->gt_held++;
            return;
        }
        if (ch == from_word[c->from_held]) {
            if (++c->from_held < FROM_WORD_LEN)
                return;
            emit_byte(c, '>');
            release_held(c);
            return;
        }
        release_held(c);
    }
    emit_byte(c, ch);
    if (ch == '\n' && c->mbox_quote)
        c->at_line_start = 1;
}

/* First layer: one byte of wire text. */
static void put_wire_byte(struct copier *c, char ch)
{
    if (c->pending_cr) {
        c->pending_cr = 0;
        if (ch == '\n') {
            put_text_byte(c, '\n');
            return;
        }
        put_text_byte(c, '\r');
    }
    if (ch == '\r') {
        c->pending_cr = 1;
        return;
    }
    put_text_byte(c, ch);
}

static void put_wire(struct copier *c, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && !c->failed) {
        if (!c->pending_cr && !c->at_line_start) {
            /* memchr scans many bytes at a time: the run up to the next CR or LF */
            const char *lf = memchr(p + i, '\n', n - i);
            const char *cr = memchr(p + i, '\r', lf ? (size_t)(lf - (p + i)) : n - i);
            size_t run = cr ? (size_t)(cr - p) : lf ? (size_t)(lf - p) : n;
            emit_bytes(c, p + i, run - i);
            i = run;
            if (i == n)
                break;
        }
        put_wire_byte(c, p[i++]);
    }
}

/* Ends the stream: a trailing lone CR and any held line start are real text. */
static void finish(struct copier *c)
{
    if (c->pending_cr) {
        c->pending_cr = 0;
        put_text_byte(c, '\r');
    }
    if (c->at_line_start)
        release_held(c);
    if (c->emitted_any && c->last_emitted != '\n')
        emit_byte(c, '\n');
    flush_out(c);
}

enum copy_failure { COPY_OK, COPY_READ_FAILED, COPY_WRITE_FAILED };

static enum copy_failure copy_stream(const struct deliver_input *in, int out_fd, int mbox_quote,
                                     off_t *bytes_written)
{
    struct copier c = {
        .out_fd = out_fd,
        .mbox_quote = mbox_quote,
        .out = xmalloc(COPY_CHUNK),
        .at_line_start = mbox_quote,
        .limit = in->size_limit,
    };
    char *inbuf = NULL;
    enum copy_failure result = COPY_OK;
    int saved_errno = 0;

    if (in->offset < 0 || in->length < 0) {
        result = COPY_READ_FAILED;
        saved_errno = EINVAL;
        goto out;
    }
    if (in->prepend && *in->prepend) {
        size_t plen = strlen(in->prepend);
        put_wire(&c, in->prepend, plen);
        if (in->prepend[plen - 1] != '\n')
            put_wire_byte(&c, '\n');
    }

    if (in->content) {
        put_wire(&c, in->content, (size_t)in->length);
        goto copied;
    }
    inbuf = xmalloc(COPY_CHUNK);
    off_t pos = in->offset;
    off_t left = in->length;
    while (left > 0 && !c.failed) {
        size_t want = left < COPY_CHUNK ? (size_t)left : COPY_CHUNK;
        ssize_t n = pread(in->fd, inbuf, want, pos);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            result = COPY_READ_FAILED;
            saved_errno = n < 0 ? errno : EIO; /* 0: the queue file is shorter than promised */
            goto out;
        }
        put_wire(&c, inbuf, (size_t)n);
        pos += n;
        left -= n;
    }
copied:
    if (!c.failed)
        finish(&c);
    if (c.failed) {
        result = COPY_WRITE_FAILED;
        saved_errno = c.fail_errno;
    }

out:
    if (bytes_written)
        *bytes_written = c.written;
    free(inbuf);
    free(c.out);
    if (result != COPY_OK)
        errno = saved_errno;
    return result;
}

int deliver_copy(const struct deliver_input *in, int out_fd, int mbox_quote, off_t *bytes_written)
{
    return copy_stream(in, out_fd, mbox_quote, bytes_written) == COPY_OK ? 0 : -1;
}

int deliver_copy_reporting(const struct deliver_input *in, int out_fd, int mbox_quote,
                           off_t *bytes_written, const char *out_name, struct deliver_error *err)
{
    enum copy_failure f = copy_stream(in, out_fd, mbox_quote, bytes_written);
    if (f == COPY_OK)
        return 0;
    int e = errno;
    if (f == COPY_READ_FAILED)
        deliver_error_set(err, 1, "4.3.0", "cannot read queue file: %s", strerror(e));
    else if (e == EFBIG && in->size_limit > 0)   /* a bounce, as with Postfix: it will not fit later either */
        deliver_error_set(err, 0, "5.2.2", "cannot write %s: mailbox full: %s (mailbox_size_limit)", out_name,
                          strerror(e));
    else
        deliver_error_errno(err, e, "cannot write %s", out_name);
    errno = e;
    return -1;
}

static void set_text(struct deliver_error *err, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void set_text(struct deliver_error *err, const char *fmt, va_list ap)
{
    int n = vsnprintf(err->text, sizeof err->text, fmt, ap);
    if (n < 0) {
        str_copy(err->text, "(error text could not be formatted)", sizeof err->text);
        return;
    }
    /* Long paths can overflow the record: show that something was cut. */
    if ((size_t)n >= sizeof err->text)
        memcpy(err->text + sizeof err->text - 4, "...", 4);
}

void deliver_error_set(struct deliver_error *err, int temporary, const char *enh,
                       const char *fmt, ...)
{
    if (!err)
        return;
    int e = errno;
    err->temporary = temporary;
    str_copy(err->enh, enh, sizeof err->enh);
    va_list ap;
    va_start(ap, fmt);
    set_text(err, fmt, ap);
    va_end(ap);
    errno = e;
}

void deliver_error_errno(struct deliver_error *err, int errnum, const char *fmt, ...)
{
    if (!err)
        return;
    int e = errno;
    int full = errnum == ENOSPC || errnum == EDQUOT || errnum == EFBIG;
    va_list ap;
    va_start(ap, fmt);
    char *what = xvasprintf(fmt, ap);
    va_end(ap);
    deliver_error_set(err, 1, full ? "4.2.2" : "4.2.0", "%s: %s", what, strerror(errnum));
    free(what);
    errno = e;
}

const char *deliver_pseudo_fs(int fd)
{
    static const struct {
        long magic;
        const char *name;
    } pseudo[] = {
        {PROC_SUPER_MAGIC, "proc"},         {SYSFS_MAGIC, "sysfs"},       {DEBUGFS_MAGIC, "debugfs"},
        {SECURITYFS_MAGIC, "securityfs"},   {TRACEFS_MAGIC, "tracefs"},   {CGROUP_SUPER_MAGIC, "cgroup"},
        {CGROUP2_SUPER_MAGIC, "cgroup2"},   {BPF_FS_MAGIC, "bpf"},         {DEVPTS_SUPER_MAGIC, "devpts"},
    };
    struct statfs sf;
    if (fstatfs(fd, &sf) != 0)
        return NULL;   /* the caller's own checks (a regular file, its owner) still apply */
    for (size_t i = 0; i < sizeof pseudo / sizeof pseudo[0]; i++)
        if ((long)sf.f_type == pseudo[i].magic)
            return pseudo[i].name;
    return NULL;
}
