/* Tests for the queue file read from memory and from inside a larger file
 * (a journal segment), and for progress kept as bytes elsewhere than at the
 * file's end: what queue_sync_method = journal relies on (store_journal.c).
 * queue_file_read_mem and queue_file_read_at must give back exactly what
 * queue_file_read_fd gives for the same bytes; progress encoded and applied
 * must equal progress appended and read; queue_file_encode must give back
 * the message as it is now. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spool/queue_file.h"
#include "test_fixture.h"
#include "util/mem.h"
#include "util/strbuf.h"

#define ID "0123456789ABC"
static const char content[] = "Subject: mem\r\n\r\nbody line\r\n";

struct fx {
    char dir[64];
    int dirfd;
};

static int setup(void **state)
{
    struct fx *fx = xcalloc(1, sizeof *fx);
    *state = fx;
    if (tf_tmpdir_make(fx->dir, sizeof fx->dir, "qfmem") != 0)
        return -1;
    fx->dirfd = open(fx->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return fx->dirfd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    close(fx->dirfd);
    tf_tmpdir_remove(fx->dir);
    free(fx);
    return 0;
}

static void message(struct queue_file_message *m, size_t nrcpt)
{
    queue_file_message_init(m, ID, 1700000000123456LL, "sender@example.org");
    queue_file_message_set_attr(m, "client_address", "192.0.2.7");
    for (size_t i = 0; i < nrcpt; i++) {
        char addr[64];
        snprintf(addr, sizeof addr, "rcpt%zu@example.com", i);
        queue_file_message_add_rcpt(m, addr, "", 0, -1);
    }
}

/* The bytes of a queue file for a message with nrcpt recipients. */
static char *file_bytes(struct fx *fx, size_t nrcpt, size_t *len)
{
    struct queue_file_message m;
    message(&m, nrcpt);
    struct queue_file_writer *w;
    assert_int_equal(queue_file_writer_open(fx->dirfd, ID, &w), 0);
    assert_int_equal(queue_file_writer_write(w, content, strlen(content)), 0);
    assert_int_equal(queue_file_writer_finish(w, &m), 0);
    queue_file_message_free(&m);
    char *path = xasprintf("%s/%s", fx->dir, ID);
    char *bytes = tf_read_file(path, len);
    assert_non_null(bytes);
    unlink(path);
    free(path);
    return bytes;
}

static void assert_same(const struct queue_file_message *a, const struct queue_file_message *b)
{
    assert_string_equal(a->id, b->id);
    assert_int_equal(a->arrival_us, b->arrival_us);
    assert_string_equal(a->sender, b->sender);
    assert_int_equal(a->content_offset, b->content_offset);
    assert_int_equal(a->content_length, b->content_length);
    assert_int_equal(a->nrcpt, b->nrcpt);
    for (size_t i = 0; i < a->nrcpt; i++) {
        assert_string_equal(a->rcpts[i].addr, b->rcpts[i].addr);
        assert_int_equal(a->rcpts[i].state, b->rcpts[i].state);
        assert_int_equal(a->rcpts[i].attempts, b->rcpts[i].attempts);
        assert_int_equal(a->rcpts[i].parent, b->rcpts[i].parent);
        assert_int_equal(a->rcpts[i].flags, b->rcpts[i].flags);
        assert_string_equal(a->rcpts[i].reason, b->rcpts[i].reason);
    }
    assert_string_equal(queue_file_message_attr(a, "client_address"), queue_file_message_attr(b, "client_address"));
}

static void test_read_mem_equals_read_fd(void **state)
{
    struct fx *fx = *state;
    size_t len;
    char *bytes = file_bytes(fx, 3, &len);
    struct queue_file_message a, b;
    char err[256];
    assert_int_equal(queue_file_read_mem(bytes, len, &a, err, sizeof err), 0);
    assert_memory_equal(bytes + a.content_offset, content, strlen(content));
    int fd = open(fx->dir, O_RDWR | O_TMPFILE, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, bytes, len), (ssize_t)len);
    assert_int_equal(queue_file_read_fd(fd, &b, err, sizeof err), 0);
    assert_same(&a, &b);
    queue_file_message_free(&a);
    queue_file_message_free(&b);
    /* cut anywhere inside the envelope: refused, never half a message */
    for (size_t cut = 0; cut < len; cut += 7) {
        struct queue_file_message c;
        assert_int_equal(queue_file_read_mem(bytes, cut, &c, err, sizeof err), -1);
    }
    close(fd);
    free(bytes);
}

/* A queue file inside a larger file, followed by bytes that are not ours
 * (the next journal record): read at its offset, it is the same message;
 * an envelope over the first 64 KiB read makes the reader read more. */
static void test_read_at_inside_a_larger_file(void **state)
{
    struct fx *fx = *state;
    size_t counts[] = {2, 3000};
    for (size_t k = 0; k < 2; k++) {
        size_t len;
        char *bytes = file_bytes(fx, counts[k], &len);
        int fd = open(fx->dir, O_RDWR | O_TMPFILE, 0600);
        assert_true(fd >= 0);
        char junk[4096];
        memset(junk, 'J', sizeof junk);
        assert_int_equal(pwrite(fd, junk, 100, 0), 100);
        assert_int_equal(pwrite(fd, bytes, len, 100), (ssize_t)len);
        assert_int_equal(pwrite(fd, junk, sizeof junk, 100 + (off_t)len), (ssize_t)sizeof junk);
        struct queue_file_message a, b;
        char err[256];
        assert_int_equal(queue_file_read_at(fd, 100, &a, err, sizeof err), 0);
        assert_int_equal(queue_file_read_mem(bytes, len, &b, err, sizeof err), 0);
        assert_same(&a, &b);
        assert_int_equal(a.nrcpt, counts[k]);
        queue_file_message_free(&a);
        queue_file_message_free(&b);
        /* not a queue file there */
        assert_int_equal(queue_file_read_at(fd, 0, &a, err, sizeof err), -1);
        close(fd);
        free(bytes);
    }
}

/* Progress as bytes: encoded and applied equals appended to a file and
 * read; a torn or foreign record is refused whole. */
static void test_progress_bytes_equal_appended_records(void **state)
{
    struct fx *fx = *state;
    size_t len;
    char *bytes = file_bytes(fx, 2, &len);
    struct queue_file_message live, replayed, fromfile;
    char err[256];
    assert_int_equal(queue_file_read_mem(bytes, len, &live, err, sizeof err), 0);
    assert_int_equal(queue_file_read_mem(bytes, len, &replayed, err, sizeof err), 0);

    /* what the queue does: one recipient deferred, one expanded into a new one */
    struct strbuf progress = STRBUF_INIT;
    struct queue_file_rcpt *r = &live.rcpts[0];
    r->state = QF_DEFERRED;
    r->attempts = 2;
    free(r->reason);
    r->reason = xstrdup("connection refused");
    r->flags = QF_RCPT_DELAY_WARNED;
    queue_file_encode_status(&live, 0, &progress);
    queue_file_message_add_rcpt(&live, "added@example.com", "", 0, 1);
    queue_file_encode_rcpt(&live, 2, &progress);
    live.rcpts[1].state = QF_EXPANDED;
    queue_file_encode_status(&live, 1, &progress);

    assert_int_equal(queue_file_apply_progress(&replayed, progress.buf, progress.len), 0);
    assert_same(&live, &replayed);

    /* the same records at the end of the file read back the same */
    char *whole = xmalloc(len + progress.len);
    memcpy(whole, bytes, len);
    memcpy(whole + len, progress.buf, progress.len);
    assert_int_equal(queue_file_read_mem(whole, len + progress.len, &fromfile, err, sizeof err), 0);
    assert_same(&live, &fromfile);
    queue_file_message_free(&fromfile);

    /* torn: refused (the caller keeps the message as it was) */
    struct queue_file_message again;
    assert_int_equal(queue_file_read_mem(bytes, len, &again, err, sizeof err), 0);
    assert_int_equal(queue_file_apply_progress(&again, progress.buf, progress.len - 1), -1);
    /* a status for a recipient the message does not have: refused */
    struct strbuf foreign = STRBUF_INIT;
    queue_file_encode_status(&live, 2, &foreign);
    struct queue_file_message small;
    assert_int_equal(queue_file_read_mem(bytes, len, &small, err, sizeof err), 0);
    assert_int_equal(queue_file_apply_progress(&small, foreign.buf, foreign.len), -1);
    queue_file_message_free(&small);
    queue_file_message_free(&again);

    /* copy-forward: the whole message as it is now, read back equal */
    struct strbuf copy = STRBUF_INIT;
    queue_file_encode(&live, content, strlen(content), &copy);
    struct queue_file_message copied;
    assert_int_equal(queue_file_read_mem(copy.buf, copy.len, &copied, err, sizeof err), 0);
    assert_same(&live, &copied);
    assert_memory_equal(copy.buf + copied.content_offset, content, strlen(content));
    queue_file_message_free(&copied);

    strbuf_free(&copy);
    strbuf_free(&foreign);
    strbuf_free(&progress);
    free(whole);
    queue_file_message_free(&live);
    queue_file_message_free(&replayed);
    free(bytes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read_mem_equals_read_fd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_at_inside_a_larger_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_progress_bytes_equal_appended_records, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
