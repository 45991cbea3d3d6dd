/* Tests for tls: Postfix protocol lists to OpenSSL version bounds, and
 * building server contexts from real (throwaway) key files. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "tls/tls.h"
#include "test_fixture.h"
#include "util/mem.h"

static void test_protocol_lists(void **state)
{
    (void)state;
    const char *bad = NULL;
    assert_int_equal(tls_min_version("!SSLv2, !SSLv3, !TLSv1, !TLSv1.1", &bad), TLS1_2_VERSION);
    assert_int_equal(tls_min_version(">=TLSv1.2", &bad), TLS1_2_VERSION);
    assert_int_equal(tls_min_version(">=TLSv1.3", &bad), TLS1_3_VERSION);
    assert_int_equal(tls_min_version("TLSv1.3", &bad), TLS1_3_VERSION);
    assert_int_equal(tls_min_version("!SSLv2 !SSLv3", &bad), TLS1_VERSION);
    assert_int_equal(tls_min_version("", &bad), TLS1_VERSION);      /* SSL never */
    assert_int_equal(tls_min_version("tlsv1.2:tlsv1.3", &bad), TLS1_2_VERSION);
    assert_int_equal(tls_min_version("!TLSv1.5", &bad), -1);
    assert_string_equal(bad, "TLSv1.5");
    assert_int_equal(tls_min_version("SSLv3", &bad), -1);           /* nothing speakable left */
    assert_int_equal(tls_min_version("<=TLSv1.1, >=TLSv1.2", &bad), -1);
}

static char *make_pair(const char *dir, const char *kind)
{
    char *cmd = xasprintf("openssl req -x509 -newkey %s -nodes -keyout %s/%s-key.pem -out %s/%s-cert.pem "
                          "-days 1 -subj /CN=t.test >/dev/null 2>&1",
                          strcmp(kind, "ec") == 0 ? "ec -pkeyopt ec_paramgen_curve:P-256" : "rsa:2048", dir, kind,
                          dir, kind);
    int rc = system(cmd);
    free(cmd);
    return rc == 0 ? xasprintf("%s/%s", dir, kind) : NULL;
}

static struct conf *conf_with(const char *text)
{
    struct conf *c = conf_new();
    assert_int_equal(conf_load_string(c, text, "main.cf", NULL), 0);
    return c;
}

static void test_server_contexts(void **state)
{
    (void)state;
    char dir[64];
    assert_int_equal(tf_tmpdir_make(dir, sizeof dir, "tls"), 0);
    char *ec = make_pair(dir, "ec"), *rsa = make_pair(dir, "rsa");
    if (!ec || !rsa) {
        free(ec);
        free(rsa);
        tf_tmpdir_remove(dir);
        test_skip("cannot make test certificates (is the openssl command installed?)");
    }
    char *err = NULL;
    /* no certificate: no context, no error */
    struct conf *c = conf_with("");
    struct tls_keyring ring = {0};
    assert_null(tls_server_ctx(c, "service test", &ring, &err));
    assert_null(err);
    assert_int_equal(tls_server_level(c), TLS_LEVEL_MAY);
    conf_free(c);

    /* RSA and ECDSA side by side */
    char *text = xasprintf("smtpd_tls_cert_file = %s-cert.pem\nsmtpd_tls_key_file = %s-key.pem\n"
                           "smtpd_tls_eccert_file = %s-cert.pem\nsmtpd_tls_eckey_file = %s-key.pem\n",
                           rsa, rsa, ec, ec);
    c = conf_with(text);
    free(text);
    SSL_CTX *ctx = tls_server_ctx(c, "service test", &ring, &err);
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
    /* the key files are for the key process, named by their public keys */
    assert_int_equal(ring.n, 2);
    assert_non_null(strstr(ring.e[0].key_file, "rsa-key.pem"));
    assert_non_null(strstr(ring.e[1].key_file, "ec-key.pem"));
    assert_int_equal(strlen(ring.e[0].id), 64);
    assert_string_equal(ring.e[0].label, "service test");
    tls_keyring_free(&ring);
    tls_ctx_free(ctx);
    conf_free(c);

    /* a missing file names itself */
    c = conf_with("smtpd_tls_cert_file = /nonexistent/cert.pem\n");
    assert_null(tls_server_ctx(c, "service test", &ring, &err));
    assert_non_null(strstr(err, "/nonexistent/cert.pem"));
    free(err);
    conf_free(c);

    /* wrapper mode means encrypt */
    c = conf_with("smtpd_tls_wrappermode = yes\nsmtpd_tls_security_level = none\n");
    assert_int_equal(tls_server_level(c), TLS_LEVEL_ENCRYPT);
    conf_free(c);

    assert_int_equal(tf_tmpdir_remove(dir), 0);
    free(ec);
    free(rsa);
}

/* Ticket keys: a fresh key once the current one is a lifetime old; the
 * retired one still opens tickets (asking for renewal) for one lifetime. */
static void test_ticket_key_rotation(void **state)
{
    (void)state;
    struct tls_ticket_ring r;
    tls_ticket_ring_reset(&r, 3600);
    const long long t0 = 1700000000;
    const struct tls_ticket_key *k = tls_ticket_key_for_new(&r, t0);
    assert_non_null(k);
    unsigned char first[16];
    memcpy(first, k->name, 16);
    int renew = -1;
    /* the same key within its lifetime */
    assert_memory_equal(tls_ticket_key_for_new(&r, t0 + 3599)->name, first, 16);
    assert_non_null(tls_ticket_key_named(&r, first, t0 + 3599, &renew));
    assert_int_equal(renew, 0);
    /* replaced after it */
    k = tls_ticket_key_for_new(&r, t0 + 3600);
    assert_memory_not_equal(k->name, first, 16);
    unsigned char second[16];
    memcpy(second, k->name, 16);
    /* the retired key opens tickets for one lifetime more, asking for renewal */
    assert_non_null(tls_ticket_key_named(&r, first, t0 + 3600 + 3599, &renew));
    assert_int_equal(renew, 1);
    assert_null(tls_ticket_key_named(&r, first, t0 + 3600 + 3600, &renew));
    assert_non_null(tls_ticket_key_named(&r, second, t0 + 3600 + 3600, &renew));
    assert_int_equal(renew, 0);
    /* a name never issued */
    unsigned char other[16] = {0};
    assert_null(tls_ticket_key_named(&r, other, t0 + 3600, &renew));
    /* an idle server: the current key ages out for decryption too */
    assert_null(tls_ticket_key_named(&r, second, t0 + 3600 + 7200, &renew));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_protocol_lists),
        cmocka_unit_test(test_server_contexts),
        cmocka_unit_test(test_ticket_key_rotation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
