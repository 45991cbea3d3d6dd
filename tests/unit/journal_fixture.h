/* journal_fixture: what test_journal.c and test_journal_powerloss.c share:
 * a journal directory, the records a replay delivered, payloads that name
 * their record, and the setup/teardown that install the fault table of
 * test_fixture.h. Include after <cmocka.h>. */
#ifndef TERN_JOURNAL_FIXTURE_H
#define TERN_JOURNAL_FIXTURE_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "spool/journal.h"
#include "test_fixture.h"

#define SEG 65536u

static char dir[64];

static const struct journal_options OPTS = {.segment_size = SEG, .max_record = 16384};

/* ---- what a replay delivered -------------------------------------------- */

#define MAXREC 16384

static struct replayed {
    size_t n;
    uint32_t type[MAXREC];
    size_t len[MAXREC];
    struct journal_addr addr[MAXREC];
    char *data[MAXREC];
} got;

static TF_UNUSED void got_reset(void)
{
    for (size_t i = 0; i < got.n; i++)
        free(got.data[i]);
    got.n = 0;
}

static TF_UNUSED int collect(void *arg, uint32_t type, const void *data, size_t len, struct journal_addr addr)
{
    (void)arg;
    assert_true(got.n < MAXREC);
    got.type[got.n] = type;
    got.len[got.n] = len;
    got.addr[got.n] = addr;
    got.data[got.n] = malloc(len + 1);
    if (len)
        memcpy(got.data[got.n], data, len);
    got.data[got.n][len] = '\0';
    got.n++;
    return 0;
}

static TF_UNUSED struct journal *reopen(struct journal_recovery *rec)
{
    got_reset();
    struct journal *j = NULL;
    assert_int_equal(journal_open(&j, dir, &OPTS, collect, NULL, rec), 0);
    return j;
}

/* The payload of record i: "rec <i>" padded with a letter to len bytes. */
static TF_UNUSED size_t payload(char *buf, int i, size_t len)
{
    int n = snprintf(buf, len + 1, "rec %d ", i); /* cut to len when longer */
    for (size_t k = (size_t)n; k < len; k++)
        buf[k] = (char)('a' + (i + (int)k) % 26);
    return len;
}

static TF_UNUSED void seg_path(char *out, size_t size, uint64_t seq)
{
    snprintf(out, size, "%s/seg-%016llx", dir, (unsigned long long)seq);
}

static TF_UNUSED int count_names(const char *prefix)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
            n++;
    closedir(d);
    return n;
}

/* Overwrites len bytes at off of segment seq with byte c. */
static TF_UNUSED void scribble(uint64_t seq, uint32_t off, size_t len, int c)
{
    char path[128];
    seg_path(path, sizeof path, seq);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    char buf[256];
    assert_true(len <= sizeof buf);
    memset(buf, c, len);
    assert_int_equal(pwrite(fd, buf, len, off), (ssize_t)len);
    close(fd);
}

static TF_UNUSED int setup(void **state)
{
    (void)state;
    assert_int_equal(tf_tmpdir_make(dir, sizeof dir, "journal"), 0);
    assert_int_equal(tf_log_capture(dir), 0);
    tf_fs_install();
    return 0;
}

static TF_UNUSED int teardown(void **state)
{
    (void)state;
    tf_fs_uninstall();
    got_reset();
    tf_log_release();
    tf_tmpdir_remove(dir);
    return 0;
}

#endif
