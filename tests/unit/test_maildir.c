/* Tests for maildir and the streaming copier in deliver_content: exact bytes,
 * CRLF split across read chunks, unique names, directory creation, and every
 * file-system failure injected through fsops. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "local/deliver.h"
#include "local/maildir.h"
#include "deliver_fixture.h"
#include "test_fixture.h"
#include "util/mem.h"

/* ---- fixture ------------------------------------------------------------ */

struct fx {
    struct deliver_fx d;
    char *maildir;
};

static int setup(void **state)
{
    struct fx *fx = xcalloc(1, sizeof *fx);
    *state = fx;
    if (deliver_fx_setup(&fx->d, "maildir") != 0)
        return -1;
    fx->maildir = xasprintf("%s/Maildir", fx->d.base);
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    deliver_fx_teardown(&fx->d);
    free(fx->maildir);
    free(fx);
    return 0;
}

/* Number of entries in dir/sub; *only (if not NULL) gets the last name. */
static int count_entries(const char *dir, const char *sub, char **only)
{
    char *path = xasprintf("%s/%s", dir, sub);
    DIR *d = opendir(path);
    free(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        n++;
        if (only) {
            free(*only);
            *only = xstrdup(e->d_name);
        }
    }
    closedir(d);
    return n;
}

static void make_maildir(const char *dir)
{
    assert_int_equal(mkdir(dir, 0700), 0);
    char *p;
    p = xasprintf("%s/tmp", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    free(p);
    p = xasprintf("%s/new", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    free(p);
    p = xasprintf("%s/cur", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    free(p);
}

/* The reference conversion, written the obvious way. */
static char *crlf_to_lf(const char *in, size_t len, size_t *out_len)
{
    char *out = xmalloc(len + 2);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n')
            continue;
        out[o++] = in[i];
    }
    if (o > 0 && out[o - 1] != '\n')
        out[o++] = '\n';
    *out_len = o;
    return out;
}

/* Checks the name grammar: <sec>.M<usec>P<pid>Q<n>.<host>,S=<size>. */
static void assert_dovecot_name(const char *name, off_t size)
{
    long long sec, usec, pid;
    unsigned long q;
    int consumed = 0;
    assert_int_equal(sscanf(name, "%lld.M%lldP%lldQ%lu.%n", &sec, &usec, &pid, &q, &consumed), 4);
    assert_true(consumed > 0);
    assert_int_equal(pid, (long long)getpid());
    assert_true(usec >= 0 && usec < 1000000);
    const char *host = name + consumed;
    char *suffix = xasprintf(",S=%lld", (long long)size);
    size_t hl = strlen(host), sl = strlen(suffix);
    assert_true(hl > sl);
    assert_string_equal(host + hl - sl, suffix);
    assert_null(memchr(host, '/', hl - sl));
    assert_null(memchr(host, ':', hl - sl));
    free(suffix);
}

/* ---- deliver_copy ------------------------------------------------------- */

static char *copy_to_file(struct fx *fx, const struct deliver_input *in, int quote, int *rc,
                          off_t *written, size_t *len)
{
    char *out_path = xasprintf("%s/copy-out", fx->d.base);
    int fd = open(out_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    *rc = deliver_copy(in, fd, quote, written);
    close(fd);
    char *data = deliver_fx_slurp(out_path, len);
    unlink(out_path);
    free(out_path);
    return data;
}

static void test_copy_edge_cases(void **state)
{
    struct fx *fx = *state;
    struct {
        const char *prepend, *content, *expect;
    } cases[] = {
        {NULL, "", ""},
        {"", "", ""},
        {NULL, "abc", "abc\n"},
        {NULL, "abc\r", "abc\r\n"},
        {NULL, "\r", "\r\n"},
        {NULL, "a\r\rb\r\n", "a\r\rb\n"},
        {NULL, "a\r\r\nb", "a\r\nb\n"},
        {NULL, "\r\n\r\n", "\n\n"},
        {NULL, "a\nb\r\n", "a\nb\n"},
        {"X-A: 1", "B\r\n", "X-A: 1\nB\n"},
        {"X-A: 1\n", "", "X-A: 1\n"},
        {"X-A: 1\nX-B: 2\n", "S: x\r\n\r\nbody", "X-A: 1\nX-B: 2\nS: x\n\nbody\n"},
        /* No quoting without mbox_quote. */
        {NULL, "From x\r\n>From y\r\n", "From x\n>From y\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct deliver_input in =
            deliver_fx_input(&fx->d, cases[i].prepend, cases[i].content, strlen(cases[i].content));
        int rc;
        off_t written = -1;
        size_t len;
        char *got = copy_to_file(fx, &in, 0, &rc, &written, &len);
        assert_int_equal(rc, 0);
        assert_int_equal(len, strlen(cases[i].expect));
        assert_memory_equal(got, cases[i].expect, len);
        assert_int_equal(written, (off_t)len);
        free(got);
    }
}

static void test_copy_short_queue_file(void **state)
{
    struct fx *fx = *state;
    struct deliver_input in = deliver_fx_input(&fx->d, NULL, "abc\r\n", 5);
    in.length = 1000000; /* the file ends long before */
    int rc;
    off_t written;
    size_t len;
    errno = 0;
    char *got = copy_to_file(fx, &in, 0, &rc, &written, &len);
    assert_int_equal(rc, -1);
    assert_int_equal(errno, EIO);
    free(got);

    struct deliver_error err = {0};
    int fd = open("/dev/null", O_WRONLY);
    assert_int_equal(deliver_copy_reporting(&in, fd, 0, NULL, "x", &err), -1);
    close(fd);
    assert_int_equal(err.temporary, 1);
    assert_string_equal(err.enh, "4.3.0");
    assert_non_null(strstr(err.text, "cannot read queue file"));

    in.length = -1;
    fd = open("/dev/null", O_WRONLY);
    assert_int_equal(deliver_copy(&in, fd, 0, NULL), -1);
    assert_int_equal(errno, EINVAL);
    close(fd);
}

static void test_error_text_truncation_visible(void **state)
{
    (void)state;
    struct deliver_error err;
    char *long_path = xmalloc(1000);
    memset(long_path, 'p', 999);
    long_path[999] = '\0';
    deliver_error_errno(&err, ENOSPC, "cannot write %s", long_path);
    assert_string_equal(err.enh, "4.2.2");
    assert_int_equal(strlen(err.text), sizeof err.text - 1);
    assert_string_equal(err.text + sizeof err.text - 4, "...");
    deliver_error_errno(&err, EDQUOT, "x");
    assert_string_equal(err.enh, "4.2.2");
    deliver_error_errno(&err, EACCES, "x");
    assert_string_equal(err.enh, "4.2.0");
    assert_string_equal(err.text, "x: Permission denied");
    deliver_error_errno(NULL, EACCES, "x"); /* NULL is allowed */
    free(long_path);
}

/* ---- maildir ------------------------------------------------------------ */

/* mailbox_size_limit: a Maildir message larger than it bounces 5.2.2
 * and leaves nothing in tmp/ or new/; one of exactly that size is kept. */
static void test_size_limit(void **state)
{
    struct fx *fx = *state;
    const char *prepend = "Delivered-To: u@d\n";
    const char *content = "Subject: hi\r\n\r\nbody\r\n";
    size_t size = strlen(prepend) + strlen("Subject: hi\n\nbody\n");
    struct deliver_input in = deliver_fx_input(&fx->d, prepend, content, strlen(content));
    in.size_limit = (off_t)size - 1;
    struct deliver_error err = {0};
    char *final = NULL;
    assert_int_equal(maildir_deliver(fx->maildir, (uid_t)-1, (gid_t)-1, &in, &final, &err), -1);
    assert_false(err.temporary);
    assert_string_equal(err.enh, "5.2.2");
    assert_int_equal(count_entries(fx->maildir, "new", NULL), 0);
    assert_int_equal(count_entries(fx->maildir, "tmp", NULL), 0);
    in.size_limit = (off_t)size;
    assert_int_equal(maildir_deliver(fx->maildir, (uid_t)-1, (gid_t)-1, &in, &final, &err), 0);
    assert_int_equal(count_entries(fx->maildir, "new", NULL), 1);
    free(final);
}

static void test_exact_bytes(void **state)
{
    struct fx *fx = *state;
    const char *prepend = "Return-Path: <a@b>\nDelivered-To: u@d\n";
    const char *content = "Subject: hi\r\nFrom: a@b\r\n\r\nbody line\r\nlone\rCR\r\n.leading dot\r\n";
    const char *expect = "Return-Path: <a@b>\nDelivered-To: u@d\nSubject: hi\nFrom: a@b\n\n"
                         "body line\nlone\rCR\n.leading dot\n";
    struct deliver_input in = deliver_fx_input(&fx->d, prepend, content, strlen(content));
    struct deliver_error err = {0};
    char *final = NULL;
    assert_int_equal(maildir_deliver(fx->maildir, (uid_t)-1, (gid_t)-1, &in, &final, &err), 0);

    char *name = NULL;
    assert_int_equal(count_entries(fx->maildir, "new", &name), 1);
    assert_int_equal(count_entries(fx->maildir, "tmp", NULL), 0);
    assert_int_equal(count_entries(fx->maildir, "cur", NULL), 0);
    char *expect_path = xasprintf("%s/new/%s", fx->maildir, name);
    assert_string_equal(final, expect_path);

    size_t len;
    char *got = deliver_fx_slurp(final, &len);
    assert_int_equal(len, strlen(expect));
    assert_memory_equal(got, expect, len);
    assert_dovecot_name(name, (off_t)len);

    struct stat st;
    assert_int_equal(stat(final, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_nlink, 1);
    /* the queue file's own offset is untouched (pread only) */
    off_t queue_file_end = (off_t)(strlen(DELIVER_FX_JUNK) + strlen(content) + strlen(DELIVER_FX_TRAILER));
    assert_int_equal(lseek(fx->d.qfd, 0, SEEK_CUR), queue_file_end);
    free(got);
    free(expect_path);
    free(name);
    free(final);
}

/* CR and LF on both sides of each 64 KiB read boundary, a lone CR at a
 * boundary, and a lone CR at the very end. */
static void test_crlf_split_across_chunks(void **state)
{
    struct fx *fx = *state;
    const size_t len = 230001;
    char *content = xmalloc(len);
    for (size_t i = 0; i < len; i++)
        content[i] = (char)('a' + i % 26);
    for (size_t i = 69; i + 1 < len; i += 71) {
        content[i] = '\r';
        content[i + 1] = '\n';
    }
    const size_t k = 64 * 1024;
    content[k - 1] = '\r'; /* CRLF split by the first boundary */
    content[k] = '\n';
    content[2 * k - 1] = '\r'; /* lone CR just before the second */
    content[2 * k] = 'x';
    content[2 * k + 1] = 'y';
    content[3 * k - 2] = '\r'; /* CRLF just before the third */
    content[3 * k - 1] = '\n';
    content[3 * k] = 'z';
    content[len - 1] = '\r';

    size_t expect_len;
    char *expect = crlf_to_lf(content, len, &expect_len);
    assert_true(expect_len < len);

    struct deliver_input in = deliver_fx_input(&fx->d, "Delivered-To: u@d\n", content, len);
    struct deliver_error err = {0};
    char *final = NULL;
    assert_int_equal(maildir_deliver(fx->maildir, (uid_t)-1, (gid_t)-1, &in, &final, &err), 0);
    size_t got_len;
    char *got = deliver_fx_slurp(final, &got_len);
    const size_t plen = strlen("Delivered-To: u@d\n");
    assert_int_equal(got_len, plen + expect_len);
    assert_memory_equal(got, "Delivered-To: u@d\n", plen);
    assert_memory_equal(got + plen, expect, expect_len);
    /* the last two output bytes: the lone CR, then the added newline */
    assert_memory_equal(got + got_len - 2, "\r\n", 2);
    char *name = NULL;
    assert_int_equal(count_entries(fx->maildir, "new", &name), 1);
    assert_dovecot_name(name, (off_t)got_len);
    assert_int_equal(count_entries(fx->maildir, "tmp", NULL), 0);
    free(name);
    free(got);
    free(final);
    free(expect);
    free(content);
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_names_unique(void **state)
{
    struct fx *fx = *state;
    const char *content = "Subject: x\r\n\r\ny\r\n";
    struct deliver_input in = deliver_fx_input(&fx->d, "", content, strlen(content));
    enum { N = 1000 };
    char **paths = xcalloc(N, sizeof *paths);
    for (int i = 0; i < N; i++) {
        struct deliver_error err = {0};
        assert_int_equal(maildir_deliver(fx->maildir, (uid_t)-1, (gid_t)-1, &in, &paths[i], &err), 0);
    }
    qsort(paths, N, sizeof *paths, compare_strings);
    for (int i = 1; i < N; i++)
        assert_string_not_equal(paths[i - 1], paths[i]);
    assert_int_equal(count_entries(fx->maildir, "new", NULL), N);
    assert_int_equal(count_entries(fx->maildir, "tmp", NULL), 0);
    for (int i = 0; i < N; i++)
        free(paths[i]);
    free(paths);
}

/* The pid in a name is the delivering process's own, also in a child forked
 * after the parent delivered (the pid is asked once per process). */
static void test_names_of_a_forked_child_carry_its_pid(void **state)
{
    struct fx *fx = *state;
    const char *content = "Subject: x\r\n\r\ny\r\n";
    struct deliver_input in = deliver_fx_input(&fx->d, "", content, strlen(content));
    struct deliver_error err = {0};
    char *parent_path = NULL;
    assert_int_equal(maildir_deliver(fx->maildir, (uid_t)-1, (gid_t)-1, &in, &parent_path, &err), 0);
    assert_dovecot_name(strrchr(parent_path, '/') + 1, (off_t)strlen("Subject: x\n\ny\n"));
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        char *path = NULL;
        int ok = maildir_deliver(fx->maildir, (uid_t)-1, (gid_t)-1, &in, &path, &err) == 0;
        long long sec, usec, pid = 0;
        ok = ok && sscanf(strrchr(path, '/') + 1, "%lld.M%lldP%lld", &sec, &usec, &pid) == 3 &&
             pid == (long long)getpid();
        _exit(ok ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(count_entries(fx->maildir, "new", NULL), 2);
    free(parent_path);
}

static void assert_mode(const char *dir, const char *sub, mode_t mode)
{
    char *p = sub ? xasprintf("%s/%s", dir, sub) : xstrdup(dir);
    struct stat st;
    assert_int_equal(lstat(p, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, mode);
    free(p);
}

static void test_dirs_created_0700_trailing_slash(void **state)
{
    struct fx *fx = *state;
    char *with_slash = xasprintf("%s//", fx->maildir);
    struct deliver_input in = deliver_fx_input(&fx->d, NULL, "x\r\n", 3);
    struct deliver_error err = {0};
    char *final = NULL;
    assert_int_equal(maildir_deliver(with_slash, (uid_t)-1, (gid_t)-1, &in, &final, &err), 0);
    assert_mode(fx->maildir, NULL, 0700);
    assert_mode(fx->maildir, "tmp", 0700);
    assert_mode(fx->maildir, "new", 0700);
    assert_mode(fx->maildir, "cur", 0700);
    char *prefix = xasprintf("%s/new/", fx->maildir);
    assert_memory_equal(final, prefix, strlen(prefix));
    assert_null(strchr(final + strlen(prefix), '/'));
    free(prefix);
    free(final);
    free(with_slash);
}

static void test_existing_maildir_modes_untouched(void **state)
{
    struct fx *fx = *state;
    make_maildir(fx->maildir);
    char *new_dir = xasprintf("%s/new", fx->maildir);
    assert_int_equal(chmod(new_dir, 0750), 0);
    struct deliver_input in = deliver_fx_input(&fx->d, NULL, "x\r\n", 3);
    struct deliver_error err = {0};
    assert_int_equal(maildir_deliver(fx->maildir, (uid_t)-1, (gid_t)-1, &in, NULL, &err), 0);
    assert_mode(fx->maildir, "new", 0750);
    free(new_dir);
}

static void assert_failed_cleanly(struct fx *fx, int rc, const struct deliver_error *err,
                                  const char *enh, const char *text_part)
{
    assert_int_equal(rc, -1);
    assert_int_equal(err->temporary, 1);
    assert_string_equal(err->enh, enh);
    if (!strstr(err->text, text_part))
        fail_msg("error text \"%s\" lacks \"%s\"", err->text, text_part);
    assert_true(count_entries(fx->maildir, "new", NULL) <= 0);
    assert_true(count_entries(fx->maildir, "tmp", NULL) <= 0);
}

static void test_missing_parent(void **state)
{
    struct fx *fx = *state;
    char *dir = xasprintf("%s/nohome/Maildir", fx->d.base);
    struct deliver_input in = deliver_fx_input(&fx->d, NULL, "x\r\n", 3);
    struct deliver_error err = {0};
    char *final = (char *)"untouched";
    int rc = maildir_deliver(dir, (uid_t)-1, (gid_t)-1, &in, &final, &err);
    assert_null(final);
    assert_failed_cleanly(fx, rc, &err, "4.2.0", "No such file or directory");
    assert_non_null(strstr(err.text, "nohome/Maildir"));
    char *parent = xasprintf("%s/nohome", fx->d.base);
    struct stat st;
    assert_int_equal(lstat(parent, &st), -1);
    free(parent);
    free(dir);
}

static void test_empty_path(void **state)
{
    struct fx *fx = *state;
    struct deliver_input in = deliver_fx_input(&fx->d, NULL, "x\r\n", 3);
    struct deliver_error err = {0};
    assert_int_equal(maildir_deliver("", (uid_t)-1, (gid_t)-1, &in, NULL, &err), -1);
    assert_int_equal(err.temporary, 1);
}

static void test_permission_denied_real(void **state)
{
    struct fx *fx = *state;
    make_maildir(fx->maildir);
    char *tmp = xasprintf("%s/tmp", fx->maildir);
    assert_int_equal(chmod(tmp, 0500), 0);
    struct deliver_input in = deliver_fx_input(&fx->d, NULL, "x\r\n", 3);
    struct deliver_error err = {0};
    /* DAC does not bind root: as root, the maildir belongs to nobody and the
     * delivery runs under nobody's file-system identity, as local's would. */
    int as_root = geteuid() == 0;
    if (as_root) {
        assert_int_equal(chmod(fx->d.base, 0711), 0);
        assert_int_equal(tf_give_tree(fx->maildir, TF_NOBODY_UID, TF_NOBODY_GID), 0);
        assert_int_equal(tf_fs_identity(TF_NOBODY_UID, TF_NOBODY_GID), 0);
    }
    int rc = maildir_deliver(fx->maildir, (uid_t)-1, (gid_t)-1, &in, NULL, &err);
    if (as_root)
        assert_int_equal(tf_fs_identity(0, 0), 0);
    chmod(tmp, 0700);
    assert_failed_cleanly(fx, rc, &err, "4.2.0", "Permission denied");
    free(tmp);
}

static void test_permission_denied_injected(void **state)
{
    struct fx *fx = *state;
    make_maildir(fx->maildir);
    struct deliver_input in = deliver_fx_input(&fx->d, NULL, "x\r\n", 3);
    struct deliver_error err = {0};
    deliver_fx_inject(TF_OPEN, 1, EACCES, 0);
    int rc = maildir_deliver(fx->maildir, (uid_t)-1, (gid_t)-1, &in, NULL, &err);
    assert_failed_cleanly(fx, rc, &err, "4.2.0", "Permission denied");
    assert_non_null(strstr(err.text, "cannot create maildir file"));

    /* a maildir we may not create */
    tf_fs_uninstall();
    char *other = xasprintf("%s/Other", fx->d.base);
    deliver_fx_inject(TF_MKDIR, 1, EACCES, 0);
    memset(&err, 0, sizeof err);
    assert_int_equal(maildir_deliver(other, (uid_t)-1, (gid_t)-1, &in, NULL, &err), -1);
    assert_string_equal(err.enh, "4.2.0");
    assert_non_null(strstr(err.text, "cannot create maildir directory"));
    assert_non_null(strstr(err.text, "Permission denied"));
    free(other);
}

/* Large enough that the content takes several writes. */
static char *big_message(size_t *len)
{
    *len = 200 * 1024 + 17;
    char *m = xmalloc(*len);
    for (size_t i = 0; i < *len; i++)
        m[i] = (i % 80 == 78) ? '\r' : (i % 80 == 79) ? '\n' : (char)('A' + i % 23);
    return m;
}

static void test_injected_faults(void **state)
{
    struct fx *fx = *state;
    struct {
        enum tf_op op;
        int nth;
        int err;
        enum tf_op op2; /* TF_NOPS: none */
        int err2;
        const char *enh;
        const char *text;
    } cases[] = {
        {TF_WRITE, 1, ENOSPC, TF_NOPS, 0, "4.2.2", "No space left on device"},
        {TF_WRITE, 3, ENOSPC, TF_NOPS, 0, "4.2.2", "cannot write maildir file"},
        {TF_WRITE, 2, EDQUOT, TF_NOPS, 0, "4.2.2", "quota"},
        {TF_WRITE, 2, EIO, TF_NOPS, 0, "4.2.0", "Input/output error"},
        {TF_FSYNC, 1, EIO, TF_NOPS, 0, "4.2.0", "cannot sync maildir file"},
        {TF_FSYNC, 1, ENOSPC, TF_NOPS, 0, "4.2.2", "No space left on device"},
        {TF_FSYNC, 2, EIO, TF_NOPS, 0, "4.2.0", "cannot sync maildir directory"},
        {TF_LINK, 1, EIO, TF_NOPS, 0, "4.2.0", "cannot move maildir file"},
        {TF_LINK, 1, ENOSPC, TF_NOPS, 0, "4.2.2", "No space left on device"},
        {TF_LINK, 1, EPERM, TF_RENAME, EIO, "4.2.0", "Input/output error"},
        {TF_OPEN, 1, EIO, TF_NOPS, 0, "4.2.0", "cannot create maildir file"},
    };
    size_t len;
    char *content = big_message(&len);
    make_maildir(fx->maildir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct deliver_input in = deliver_fx_input(&fx->d, "Delivered-To: u@d\n", content, len);
        struct deliver_error err = {0};
        char *final = NULL;
        deliver_fx_inject(cases[i].op, cases[i].nth, cases[i].err, cases[i].op == TF_WRITE);
        if (cases[i].op2 != TF_NOPS)
            tf_fs_fail(cases[i].op2, 1, cases[i].err2);
        int rc = maildir_deliver(fx->maildir, (uid_t)-1, (gid_t)-1, &in, &final, &err);
        tf_fs_uninstall();
        if (tf_fs_fault_calls(cases[i].op) < cases[i].nth)
            fail_msg("case %zu: fault never reached (%d calls)", i, tf_fs_fault_calls(cases[i].op));
        assert_null(final);
        assert_failed_cleanly(fx, rc, &err, cases[i].enh, cases[i].text);
    }
    free(content);
}

static void test_link_unsupported_falls_back_to_rename(void **state)
{
    struct fx *fx = *state;
    make_maildir(fx->maildir);
    struct deliver_input in = deliver_fx_input(&fx->d, NULL, "x\r\n", 3);
    struct deliver_error err = {0};
    char *final = NULL;
    deliver_fx_inject(TF_LINK, 1, EPERM, 0);
    assert_int_equal(maildir_deliver(fx->maildir, (uid_t)-1, (gid_t)-1, &in, &final, &err), 0);
    tf_fs_uninstall();
    assert_int_equal(tf_fs_calls(TF_LINK), 1);
    assert_int_equal(count_entries(fx->maildir, "new", NULL), 1);
    assert_int_equal(count_entries(fx->maildir, "tmp", NULL), 0);
    size_t n;
    char *got = deliver_fx_slurp(final, &n);
    assert_int_equal(n, 2);
    assert_memory_equal(got, "x\n", 2);
    free(got);
    free(final);
}

static void test_unreadable_queue_file(void **state)
{
    struct fx *fx = *state;
    struct deliver_input in = deliver_fx_input(&fx->d, NULL, "x\r\n", 3);
    in.length = 5000;
    struct deliver_error err = {0};
    int rc = maildir_deliver(fx->maildir, (uid_t)-1, (gid_t)-1, &in, NULL, &err);
    assert_failed_cleanly(fx, rc, &err, "4.3.0", "cannot read queue file");
}

static void test_phased_api_shared_sync(void **state)
{
    struct fx *fx = *state;
    enum { N = 3 };
    struct maildir_delivery *d[N + 1];
    struct deliver_error err = {0};
    const char *content = "S: 1\r\n\r\nbody\r\n";
    struct deliver_input in = deliver_fx_input(&fx->d, NULL, content, strlen(content));
    for (int i = 0; i <= N; i++) {
        assert_int_equal(maildir_begin(fx->maildir, (uid_t)-1, (gid_t)-1, &in, &d[i], &err), 0);
        assert_true(maildir_fd(d[i]) >= 0);
        assert_null(maildir_final_path(d[i]));
        assert_int_equal(maildir_size(d[i]), (off_t)strlen("S: 1\n\nbody\n"));
    }
    assert_int_equal(count_entries(fx->maildir, "tmp", NULL), N + 1);
    assert_int_equal(count_entries(fx->maildir, "new", NULL), 0);
    assert_int_equal(syncfs(maildir_fd(d[0])), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(maildir_commit(d[i], &err), 0);
        assert_int_equal(maildir_fd(d[i]), -1);
        assert_non_null(maildir_final_path(d[i]));
    }
    char *new_dir = xasprintf("%s/new", fx->maildir);
    assert_string_equal(maildir_new_dir(d[0]), new_dir);
    assert_int_equal(fsops_fsync_dir(maildir_new_dir(d[0])), 0);
    assert_int_equal(count_entries(fx->maildir, "new", NULL), N);
    assert_int_equal(count_entries(fx->maildir, "tmp", NULL), 1);

    /* abort after commit is a no-op; free of an uncommitted one aborts it */
    maildir_abort(d[0]);
    assert_int_equal(count_entries(fx->maildir, "new", NULL), N);
    maildir_free(d[N]);
    assert_int_equal(count_entries(fx->maildir, "tmp", NULL), 0);

    /* withdraw takes a committed message back out */
    char *withdrawn = xstrdup(maildir_final_path(d[1]));
    assert_int_equal(maildir_withdraw(d[1]), 0);
    struct stat st;
    assert_int_equal(lstat(withdrawn, &st), -1);
    assert_int_equal(count_entries(fx->maildir, "new", NULL), N - 1);
    for (int i = 0; i < N; i++)
        maildir_free(d[i]);
    assert_int_equal(count_entries(fx->maildir, "new", NULL), N - 1);
    free(withdrawn);
    free(new_dir);
}

static void test_abort_and_commit_after_abort(void **state)
{
    struct fx *fx = *state;
    struct maildir_delivery *d;
    struct deliver_error err = {0};
    struct deliver_input in = deliver_fx_input(&fx->d, NULL, "x\r\n", 3);
    assert_int_equal(maildir_begin(fx->maildir, (uid_t)-1, (gid_t)-1, &in, &d, &err), 0);
    assert_int_equal(maildir_sync_file(d, &err), 0);
    maildir_abort(d);
    assert_int_equal(count_entries(fx->maildir, "tmp", NULL), 0);
    assert_int_equal(maildir_commit(d, &err), -1);
    assert_int_equal(count_entries(fx->maildir, "new", NULL), 0);
    maildir_free(d);
    maildir_free(NULL);
}

static void test_symlinked_maildir_followed(void **state)
{
    struct fx *fx = *state;
    char *real = xasprintf("%s/real", fx->d.base);
    assert_int_equal(mkdir(real, 0700), 0);
    assert_int_equal(symlink(real, fx->maildir), 0);
    struct deliver_input in = deliver_fx_input(&fx->d, NULL, "x\r\n", 3);
    struct deliver_error err = {0};
    assert_int_equal(maildir_deliver(fx->maildir, (uid_t)-1, (gid_t)-1, &in, NULL, &err), 0);
    assert_int_equal(count_entries(real, "new", NULL), 1);
    free(real);
}

static void test_chown_when_asked(void **state)
{
    struct fx *fx = *state;
    if (geteuid() != 0)
        test_skip("giving files away needs CAP_CHOWN: run as root");
    struct deliver_input in = deliver_fx_input(&fx->d, NULL, "x\r\n", 3);
    struct deliver_error err = {0};
    char *final = NULL;
    assert_int_equal(maildir_deliver(fx->maildir, 4321, 4322, &in, &final, &err), 0);
    const char *subs[] = {"", "/tmp", "/new", "/cur"};
    for (size_t i = 0; i < 4; i++) {
        char *p = xasprintf("%s%s", fx->maildir, subs[i]);
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_uid, 4321);
        assert_int_equal(st.st_gid, 4322);
        free(p);
    }
    struct stat st;
    assert_int_equal(stat(final, &st), 0);
    assert_int_equal(st.st_uid, 4321);
    assert_int_equal(st.st_gid, 4322);
    free(final);

    /* -1/-1: files stay ours */
    char *other = xasprintf("%s/Other", fx->d.base);
    assert_int_equal(maildir_deliver(other, (uid_t)-1, (gid_t)-1, &in, &final, &err), 0);
    assert_int_equal(stat(final, &st), 0);
    assert_int_equal(st.st_uid, geteuid());
    free(final);
    free(other);
}

static void test_hostname_escaping(void **state)
{
    (void)state;
    char *s = maildir_escape_hostname("mx/1:2.example");
    assert_string_equal(s, "mx\\0571\\0722.example");
    free(s);
    s = maildir_escape_hostname("plain.example");
    assert_string_equal(s, "plain.example");
    free(s);
    s = maildir_escape_hostname("");
    assert_string_equal(s, "localhost");
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_copy_edge_cases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy_short_queue_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_text_truncation_visible, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exact_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crlf_split_across_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names_unique, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names_of_a_forked_child_carry_its_pid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dirs_created_0700_trailing_slash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_existing_maildir_modes_untouched, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_parent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permission_denied_real, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permission_denied_injected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_injected_faults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_link_unsupported_falls_back_to_rename, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_queue_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_phased_api_shared_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_and_commit_after_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlinked_maildir_followed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chown_when_asked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostname_escaping, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
