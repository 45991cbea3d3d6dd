/* Tests for util/fsops helpers that are not part of the fault-injection
 * table: fsops_fstat_no_times must report what fstat reports for a file's
 * kind, owner, size and identity (the callers check "a regular file of at
 * most N bytes" with it), never the times, and fail as fstat fails; the
 * new-file helpers make a file only where none is, whole or not at all. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_fixture.h"
#include "util/fsops.h"

static void assert_same_file(const struct stat *untimed, const struct stat *full)
{
    assert_int_equal(untimed->st_dev, full->st_dev);
    assert_int_equal(untimed->st_ino, full->st_ino);
    assert_int_equal(untimed->st_mode, full->st_mode);
    assert_int_equal(untimed->st_nlink, full->st_nlink);
    assert_int_equal(untimed->st_uid, full->st_uid);
    assert_int_equal(untimed->st_gid, full->st_gid);
    assert_int_equal(untimed->st_size, full->st_size);
    /* the times are left out on purpose: zero, whatever the file's are */
    assert_int_equal(untimed->st_mtim.tv_sec, 0);
    assert_int_equal(untimed->st_ctim.tv_sec, 0);
    assert_int_equal(untimed->st_atim.tv_sec, 0);
    assert_true(full->st_mtim.tv_sec != 0);
}

static void test_regular_file_as_fstat_sees_it(void **state)
{
    (void)state;
    char dir[64];
    tf_tmpdir_make(dir, sizeof dir, "fsops");
    char path[128];
    snprintf(path, sizeof path, "%s/f", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0640);
    assert_true(fd >= 0);
    char buf[1234];
    memset(buf, 'x', sizeof buf);
    assert_int_equal(write(fd, buf, sizeof buf), sizeof buf);

    struct stat untimed, full;
    memset(&untimed, 0xff, sizeof untimed);
    assert_int_equal(fsops_fstat_no_times(fd, &untimed), 0);
    assert_int_equal(fstat(fd, &full), 0);
    assert_true(S_ISREG(untimed.st_mode));
    assert_int_equal(untimed.st_mode & 07777, 0640);
    assert_int_equal(untimed.st_size, 1234);
    assert_same_file(&untimed, &full);

    /* a second name shows in st_nlink, as the Maildir link does */
    char path2[140];
    snprintf(path2, sizeof path2, "%s/g", dir);
    assert_int_equal(link(path, path2), 0);
    assert_int_equal(fsops_fstat_no_times(fd, &untimed), 0);
    assert_int_equal(untimed.st_nlink, 2);

    /* by name, without following a symbolic link */
    char link_path[140];
    snprintf(link_path, sizeof link_path, "%s/l", dir);
    assert_int_equal(symlink(path, link_path), 0);
    assert_int_equal(fsops_stat_no_times(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, &untimed), 0);
    assert_int_equal(fstat(fd, &full), 0);
    assert_same_file(&untimed, &full);
    assert_int_equal(fsops_stat_no_times(AT_FDCWD, link_path, AT_SYMLINK_NOFOLLOW, &untimed), 0);
    assert_true(S_ISLNK(untimed.st_mode));
    assert_int_equal(fsops_stat_no_times(AT_FDCWD, link_path, 0, &untimed), 0);
    assert_true(S_ISREG(untimed.st_mode));
    assert_int_equal(untimed.st_ino, full.st_ino);
    errno = 0;
    assert_int_equal(fsops_stat_no_times(AT_FDCWD, "/nonexistent/x", 0, &untimed), -1);
    assert_int_equal(errno, ENOENT);
    close(fd);
    tf_tmpdir_remove(dir);
}

static void test_sealed_memfd_and_directory(void **state)
{
    (void)state;
    int m = memfd_create("test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    assert_true(m >= 0);
    assert_int_equal(write(m, "hello", 5), 5);
    assert_int_equal(fcntl(m, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK), 0);
    struct stat untimed, full;
    assert_int_equal(fsops_fstat_no_times(m, &untimed), 0);
    assert_int_equal(fstat(m, &full), 0);
    assert_int_equal(untimed.st_size, 5);
    assert_same_file(&untimed, &full);
    close(m);

    int d = open("/", O_RDONLY | O_DIRECTORY);
    assert_true(d >= 0);
    assert_int_equal(fsops_fstat_no_times(d, &untimed), 0);
    assert_true(S_ISDIR(untimed.st_mode));
    close(d);
}

static void test_bad_descriptor_fails_like_fstat(void **state)
{
    (void)state;
    struct stat st;
    int fd = open("/dev/null", O_RDONLY);
    assert_true(fd >= 0);
    close(fd);
    errno = 0;
    assert_int_equal(fsops_fstat_no_times(fd, &st), -1);
    assert_int_equal(errno, EBADF);
}

/* fsops_write_new and fsops_copy_to_new: a new file of mode 0600 holding
 * the bytes; never over a file already there (which keeps its bytes). */
static void test_new_files_whole_or_not_at_all(void **state)
{
    (void)state;
    char dir[256];
    assert_int_equal(tf_tmpdir_make(dir, sizeof dir, "fsops"), 0);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(dfd >= 0);
    static const char bytes[] = "queue\0file";
    int fd = fsops_write_new(dfd, "a", bytes, sizeof bytes);
    assert_true(fd >= 0);
    close(fd);
    int mem = memfd_create("src", MFD_CLOEXEC);
    assert_int_equal(write(mem, "copied", 6), 6);
    fd = fsops_copy_to_new(dfd, "b", mem, 6);
    assert_true(fd >= 0);
    close(fd);
    close(mem);
    char path[300];
    size_t len;
    snprintf(path, sizeof path, "%s/a", dir);
    char *got = tf_read_file(path, &len);
    assert_int_equal(len, sizeof bytes);
    assert_memory_equal(got, bytes, sizeof bytes);
    free(got);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    snprintf(path, sizeof path, "%s/b", dir);
    got = tf_read_file(path, &len);
    assert_int_equal(len, 6);
    assert_memory_equal(got, "copied", 6);
    free(got);
    /* a name that is taken: refused, the file there untouched */
    assert_int_equal(fsops_write_new(dfd, "b", "other", 5), -1);
    assert_int_equal(errno, EEXIST);
    got = tf_read_file(path, &len);
    assert_int_equal(len, 6);
    free(got);
    close(dfd);
    tf_tmpdir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_regular_file_as_fstat_sees_it),
        cmocka_unit_test(test_sealed_memfd_and_directory),
        cmocka_unit_test(test_bad_descriptor_fails_like_fstat),
        cmocka_unit_test(test_new_files_whole_or_not_at_all),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
