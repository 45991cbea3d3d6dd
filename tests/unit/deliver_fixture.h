/* deliver_fixture: what the local-delivery tests (test_maildir, test_mbox)
 * share on top of test_fixture.h: a temporary directory holding a queue
 * file, the deliver_input that reads one message from it, reading a file
 * back, and file-system faults that behave like a filling disk.
 *
 * The queue file has bytes before and after the content, so a test sees
 * that a delivery copies only [offset, offset + length). Include after
 * <cmocka.h>; header-only like test_fixture.h. */
#ifndef TERN_TEST_DELIVER_FIXTURE_H
#define TERN_TEST_DELIVER_FIXTURE_H

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "local/deliver.h"
#include "test_fixture.h"
#include "util/mem.h"

#define DELIVER_FX_JUNK "QHDR version 1; envelope records here.\n"
#define DELIVER_FX_TRAILER "TRAILER"

struct deliver_fx {
    char base[64];    /* the test's temporary directory */
    char *queue_path; /* base/queuefile */
    int qfd;          /* the open queue file, or -1 */
};

/* Makes /tmp/tern-<name>-XXXXXX; 0 or -1. */
static TF_UNUSED int deliver_fx_setup(struct deliver_fx *d, const char *name)
{
    if (tf_tmpdir_make(d->base, sizeof d->base, name) != 0)
        return -1;
    d->queue_path = xasprintf("%s/queuefile", d->base);
    d->qfd = -1;
    umask(022);
    return 0;
}

/* Restores the real fsops and removes everything. */
static TF_UNUSED void deliver_fx_teardown(struct deliver_fx *d)
{
    tf_fs_uninstall();
    if (d->qfd >= 0)
        close(d->qfd);
    tf_tmpdir_remove(d->base);
    free(d->queue_path);
}

/* A fresh queue file holding content (between DELIVER_FX_JUNK and
 * DELIVER_FX_TRAILER) and the input that delivers it. */
static TF_UNUSED struct deliver_input deliver_fx_input(struct deliver_fx *d, const char *prepend,
                                                       const char *content, size_t len)
{
    if (d->qfd >= 0)
        close(d->qfd);
    int fd = open(d->queue_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, DELIVER_FX_JUNK, strlen(DELIVER_FX_JUNK)), (ssize_t)strlen(DELIVER_FX_JUNK));
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    assert_int_equal(write(fd, DELIVER_FX_TRAILER, strlen(DELIVER_FX_TRAILER)),
                     (ssize_t)strlen(DELIVER_FX_TRAILER));
    d->qfd = fd;
    return (struct deliver_input){.fd = fd,
                                  .offset = (off_t)strlen(DELIVER_FX_JUNK),
                                  .length = (off_t)len,
                                  .prepend = prepend,
                                  .sender = "a@b.example",
                                  .arrival = 1700000000};
}

/* The whole file at path, which must exist; *len its size. */
static TF_UNUSED char *deliver_fx_slurp(const char *path, size_t *len)
{
    char *text = tf_read_file(path, len);
    assert_non_null(text);
    return text;
}

/* Installs the fixture's fsops with the nth call of op from now failing with
 * err (and, when every_later, all calls after it). A failing write first
 * puts half its bytes on disk, as a filling disk does, so the test sees
 * whether the partial file is cleaned up. */
static TF_UNUSED void deliver_fx_inject(enum tf_op op, int nth, int err, int every_later)
{
    tf_fs_install();
    tf_fs_arm(op, (struct tf_fault){.nth = nth, .count = every_later ? TF_ALWAYS : 1, .err = err, .partial = 1});
}

#endif
