/* Tests for trusted_dir: which directories root may act in. Builds small
 * trees under a fresh directory in /tmp (root's, below the sticky /tmp);
 * the ownership cases need root and are skipped otherwise. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/mem.h"
#include "util/strbuf.h"
#include "util/trusted_dir.h"

static char base[64];

static int setup(void **state)
{
    (void)state;
    strcpy(base, "/tmp/tern-trusted-XXXXXX");
    if (!mkdtemp(base))
        return -1;
    return chmod(base, 0755);
}

static int teardown(void **state)
{
    (void)state;
    char *cmd = xasprintf("rm -rf '%s'", base);
    int rc = system(cmd);
    free(cmd);
    return rc == 0 ? 0 : -1;
}

/* Opens path; expects success, or failure whose reason contains want. */
static void expect(const char *path, const char *want)
{
    struct strbuf why = STRBUF_INIT;
    int fd = trusted_dir_open(path, &why);
    if (!want) {
        if (fd < 0)
            fail_msg("%s refused: %s", path, strbuf_str(&why));
        struct stat a, b;
        assert_int_equal(fstat(fd, &a), 0);
        assert_int_equal(stat(path, &b), 0);
        assert_true(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
        close(fd);
    } else {
        if (fd >= 0)
            fail_msg("%s accepted, expected \"%s\"", path, want);
        if (!strstr(strbuf_str(&why), want))
            fail_msg("%s: \"%s\" does not say \"%s\"", path, strbuf_str(&why), want);
    }
    strbuf_free(&why);
}

static char *at(const char *rel)
{
    return xasprintf("%s/%s", base, rel);
}

static void make(const char *rel, mode_t mode, uid_t uid)
{
    char *p = at(rel);
    assert_int_equal(mkdir(p, mode), 0);
    assert_int_equal(chmod(p, mode), 0);
    if (uid != (uid_t)-1)
        assert_int_equal(chown(p, uid, 0), 0);
    free(p);
}

static void test_modes(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    make("ok", 0755, 0);
    make("ok/deeper", 0700, 0);
    make("open", 0777, 0);
    make("group", 0775, 0);
    make("sticky", 01777, 0);
    make("sticky/inside", 0755, 0);
    make("sticky/theirs", 0755, 1);
    make("user", 0755, 1);
    make("user/inside", 0755, 0);
    char *p;
    expect(p = at("ok"), NULL), free(p);
    expect(p = at("ok/deeper"), NULL), free(p);
    expect(p = at("ok//deeper/./"), NULL), free(p);
    expect(p = at("open"), "open is writable by others"), free(p);
    expect(p = at("group"), "group is writable by its group"), free(p);
    expect(p = at("sticky"), "sticky is writable by others"); /* as the last one: no */
    free(p);
    expect(p = at("sticky/inside"), NULL), free(p);            /* as an ancestor: yes */
    expect(p = at("sticky/theirs"), "theirs is owned by uid 1, not root"), free(p);
    expect(p = at("user/inside"), "user is owned by uid 1, not root"), free(p);
    expect(p = at("ok/../ok"), "\"..\" is not allowed"), free(p);
    expect(p = at("missing"), "No such file"), free(p);
    expect("relative/path", "not an absolute path");
    expect("/", NULL);
}

static void test_links(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    make("real", 0755, 0);
    make("real/sub", 0755, 0);
    make("theirs", 0755, 1);
    char *p = at("real"), *l = at("abs-link"), *r = at("rel-link"), *t = at("their-link"), *w = at("to-theirs");
    assert_int_equal(symlink(p, l), 0);
    assert_int_equal(symlink("real/sub", r), 0);
    assert_int_equal(symlink(p, t), 0);
    assert_int_equal(lchown(t, 1, 1), 0);
    assert_int_equal(symlink("theirs", w), 0);
    char *q;
    expect(l, NULL);
    expect(q = at("abs-link/sub"), NULL), free(q);
    expect(r, NULL);
    expect(t, "their-link is a symbolic link owned by uid 1, not root");
    expect(w, "theirs is owned by uid 1, not root");
    char *loop = at("loop");
    assert_int_equal(symlink("loop", loop), 0);
    expect(loop, "too many symbolic links");
    free(loop);
    free(p), free(l), free(r), free(t), free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_modes),
        cmocka_unit_test(test_links),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
