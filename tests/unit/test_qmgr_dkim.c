/* Tests for qmgr_dkim: which keys dkim_sign_maps loads (and, as root, which
 * it refuses: a link or a file another user owns), which messages get
 * signed (marked ones whose From: domain or a parent has an entry, and whose
 * envelope sender is of that domain), and that d= is the entry's domain. That the signatures verify at the far end is
 * tests/integration/test_mailauth.py's (dkimpy and a second tern). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "mailauth/dkim.h"
#include "qmgr/qmgr_dkim.h"
#include "spool/queue_file.h"
#include "test_fixture.h"
#include "util/mem.h"
#include "util/strbuf.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    return tf_tmpdir_make(dir, sizeof dir, "qmgr_dkim");
}

static int teardown(void **state)
{
    (void)state;
    qmgr_dkim_free();
    tf_tmpdir_remove(dir);
    return 0;
}

static char *write_key(const char *name, const char *type)
{
    EVP_PKEY *k = strcmp(type, "ED25519") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")
                                              : EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    assert_non_null(k);
    char *path = xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    EVP_PKEY_free(k);
    return path;
}

static int load(const char *map_text, struct strbuf *diag)
{
    char *map = xasprintf("%s/dkim_sign", dir);
    FILE *f = fopen(map, "w");
    assert_non_null(f);
    fputs(map_text, f);
    fclose(f);
    struct conf *c = conf_new();
    char *cf = xasprintf("dkim_sign_maps = texthash:%s\n", map);
    assert_int_equal(conf_load_string(c, cf, "test", NULL), 0);
    int rc = qmgr_dkim_load(c, diag);
    conf_free(c);
    free(cf);
    free(map);
    return rc;
}

/* A queue file holding content, marked for signing when sign. */
static int queue_file(const char *content, int sign, struct queue_file_message *m)
{
    char *path = xasprintf("%s/qf", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    free(path);
    queue_file_message_init(m, "0123456789ABC", 1, "a@example.org");
    if (sign)
        queue_file_message_set_attr(m, QF_ATTR_DKIM_SIGN, "1");
    return fd;
}

static const char MSG[] = "From: Alice <alice@mail.example.org>\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\n"
                          "body line\r\n";

static void test_parent_entry_signs_subdomains(void **state)
{
    (void)state;
    char *rsa = write_key("rsa.pem", "RSA"), *ed = write_key("ed.pem", "ED25519");
    char *map = xasprintf(".example.org r1:%s, e1:%s\n", rsa, ed);
    struct strbuf diag = STRBUF_INIT;
    assert_int_equal(load(map, &diag), 0);
    assert_int_equal(qmgr_dkim_key_count(), 2);
    struct queue_file_message m;
    int fd = queue_file(MSG, 1, &m);
    char *sigs = qmgr_dkim_sign(&m, fd, 0, strlen(MSG), 3600);
    assert_non_null(sigs);
    /* two signatures, d= the entry's domain, x= after t= */
    assert_non_null(strstr(sigs, "d=example.org;"));
    assert_non_null(strstr(sigs, "s=r1;"));
    assert_non_null(strstr(sigs, "s=e1;"));
    assert_non_null(strstr(sigs, "a=rsa-sha256;"));
    assert_non_null(strstr(sigs, "a=ed25519-sha256;"));
    assert_non_null(strstr(sigs, " x="));
    /* not marked: never signed */
    queue_file_message_free(&m);
    close(fd);
    fd = queue_file(MSG, 0, &m);
    assert_null(qmgr_dkim_sign(&m, fd, 0, strlen(MSG), 0));
    queue_file_message_free(&m);
    close(fd);
    /* From: alone does not borrow a key: the envelope sender must be of
     * the same domain (or a parent or subdomain of it); <> is not signed */
    const char *senders[] = {"x@customer-b.example", "", "x@notexample.org"};
    for (size_t i = 0; i < 3; i++) {
        fd = queue_file(MSG, 1, &m);
        free(m.sender);
        m.sender = xstrdup(senders[i]);
        assert_null(qmgr_dkim_sign(&m, fd, 0, strlen(MSG), 0));
        queue_file_message_free(&m);
        close(fd);
    }
    fd = queue_file(MSG, 1, &m);
    free(m.sender);
    m.sender = xstrdup("bounces@lists.mail.example.org");
    char *sub = qmgr_dkim_sign(&m, fd, 0, strlen(MSG), 0);
    assert_non_null(sub);
    free(sub);
    queue_file_message_free(&m);
    close(fd);
    /* a domain without an entry: not signed */
    static const char other[] = "From: x@example.com\r\n\r\nb\r\n";
    fd = queue_file(other, 1, &m);
    assert_null(qmgr_dkim_sign(&m, fd, 0, strlen(other), 0));
    queue_file_message_free(&m);
    close(fd);
    free(sigs);
    free(map);
    free(rsa);
    free(ed);
    strbuf_free(&diag);
}

static void test_bad_entries_reported_good_ones_kept(void **state)
{
    (void)state;
    char *rsa = write_key("good.pem", "RSA");
    char *map = xasprintf("example.org r1:%s, nocolon, r2:%s/missing.pem\n", rsa, dir);
    struct strbuf diag = STRBUF_INIT;
    assert_int_equal(load(map, &diag), -1);
    assert_non_null(strstr(strbuf_str(&diag), "\"nocolon\" is not selector:/path/key.pem"));
    assert_non_null(strstr(strbuf_str(&diag), "missing.pem"));
    assert_int_equal(qmgr_dkim_key_count(), 1);
    free(map);
    free(rsa);
    strbuf_free(&diag);
}

/* As root the keys are root's files, read through a trusted directory: a
 * link planted where a key should be is refused, not followed. */
static void test_root_refuses_a_link(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        test_skip("needs root: the checks apply to root only");
        return;
    }
    char *real = write_key("real.pem", "RSA");
    char *link = xasprintf("%s/link.pem", dir);
    assert_int_equal(symlink(real, link), 0);
    char *map = xasprintf("example.org l1:%s\n", link);
    struct strbuf diag = STRBUF_INIT;
    assert_int_equal(load(map, &diag), -1);
    assert_non_null(strstr(strbuf_str(&diag), "not a regular file owned by root"));
    assert_int_equal(qmgr_dkim_key_count(), 0);
    free(map);
    free(link);
    free(real);
    strbuf_free(&diag);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_parent_entry_signs_subdomains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_entries_reported_good_ones_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_root_refuses_a_link, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
