/* Tests for the key process and smtpd's side of it (tls_keyclient): keys
 * loaded all or nothing and checked against their certificates' public
 * keys; RSA-PSS, RSA PKCS#1 v1.5 and ECDSA signatures made through a stub
 * key over a socketpair verify under the real public key; what the key
 * process refuses (a block that is no PSS encoding, an unknown key, an
 * operation the key does not do, decryption); a late answer is skipped and
 * a missing one fails the operation after the timeout. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/keyproc.h"
#include "test_fixture.h"
#include "tls/tls.h"
#include "tls/tls_keyclient.h"
#include "util/ipc.h"
#include "util/mem.h"
#include "util/strbuf.h"

struct fixture {
    char dir[64];
    EVP_PKEY *rsa, *ec;
    char *rsa_file, *ec_file;
    struct tls_keyring ring;
};

static char *write_key(const char *dir, const char *name, EVP_PKEY *key)
{
    char *path = xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    return path;
}

static void ring_add(struct tls_keyring *ring, EVP_PKEY *public_of, const char *file)
{
    ring->e = xrealloc(ring->e, (ring->n + 1) * sizeof *ring->e);
    struct tls_keyring_entry *e = &ring->e[ring->n++];
    assert_int_equal(tls_key_id(public_of, e->id), 0);
    e->key_file = xstrdup(file);
    e->cert_file = xstrdup("/test/cert.pem");
    e->label = xstrdup("service test");
}

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof *f);
    assert_int_equal(tf_tmpdir_make(f->dir, sizeof f->dir, "keyproc"), 0);
    f->rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    f->ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(f->rsa);
    assert_non_null(f->ec);
    f->rsa_file = write_key(f->dir, "rsa.pem", f->rsa);
    f->ec_file = write_key(f->dir, "ec.pem", f->ec);
    ring_add(&f->ring, f->rsa, f->rsa_file);
    ring_add(&f->ring, f->ec, f->ec_file);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    EVP_PKEY_free(f->rsa);
    EVP_PKEY_free(f->ec);
    free(f->rsa_file);
    free(f->ec_file);
    tls_keyring_free(&f->ring);
    tf_tmpdir_remove(f->dir);
    free(f);
    return 0;
}

/* The public half only, as smtpd has it from the certificate. */
static EVP_PKEY *public_only(EVP_PKEY *key)
{
    unsigned char *der = NULL;
    int len = i2d_PUBKEY(key, &der);
    const unsigned char *p = der;
    EVP_PKEY *pub = d2i_PUBKEY(NULL, &p, len);
    OPENSSL_free(der);
    assert_non_null(pub);
    return pub;
}

static void test_load_all_or_nothing(void **state)
{
    struct fixture *f = *state;
    struct strbuf diag = STRBUF_INIT;
    struct keyproc *kp = keyproc_load(&f->ring, &diag);
    assert_non_null(kp);
    assert_int_equal(diag.len, 0);
    keyproc_free(kp);

    /* the EC key file where the RSA certificate's key belongs */
    struct tls_keyring bad = {0};
    ring_add(&bad, f->ec, f->ec_file);
    ring_add(&bad, f->rsa, f->ec_file);
    assert_null(keyproc_load(&bad, &diag));
    assert_non_null(strstr(strbuf_str(&diag), "service test: the private key does not match the certificate in "
                                               "/test/cert.pem"));
    tls_keyring_free(&bad);
    strbuf_free(&diag);

    ring_add(&bad, f->ec, "/nonexistent/key.pem");
    assert_null(keyproc_load(&bad, &diag));
    assert_non_null(strstr(strbuf_str(&diag), "cannot load the private key from /nonexistent/key.pem"));
    tls_keyring_free(&bad);
    strbuf_free(&diag);
}

/* Signs "message" with the stub of key (padding: 0 for ECDSA) and checks
 * the signature under the real key. */
static int sign_through_stub(EVP_PKEY *key, const char *id, int padding)
{
    EVP_PKEY *pub = public_only(key);
    EVP_PKEY *stub = tls_keyclient_stub(pub, id);
    assert_non_null(stub);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char sig[512];
    size_t siglen = sizeof sig;
    const unsigned char msg[] = "message";
    int ok = EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, stub) == 1;
    if (ok && padding) {
        assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, padding), 1);
        if (padding == RSA_PKCS1_PSS_PADDING)
            assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST), 1);
    }
    ok = ok && EVP_DigestSign(md, sig, &siglen, msg, sizeof msg) == 1;
    EVP_MD_CTX_free(md);
    if (ok) {
        md = EVP_MD_CTX_new();
        pctx = NULL;
        assert_int_equal(EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL, pub), 1);
        if (padding)
            assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, padding), 1);
        assert_int_equal(EVP_DigestVerify(md, sig, siglen, msg, sizeof msg), 1);
        EVP_MD_CTX_free(md);
    }
    EVP_PKEY_free(stub);
    EVP_PKEY_free(pub);
    return ok;
}

static void test_signatures_through_the_key_process(void **state)
{
    struct fixture *f = *state;
    struct strbuf diag = STRBUF_INIT;
    struct keyproc *kp = keyproc_load(&f->ring, &diag);
    assert_non_null(kp);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(sv[1]);
        keyproc_serve(kp, &sv[0], 1);
        _exit(1);
    }
    close(sv[0]);
    tls_keyclient_set_fd(sv[1]);
    assert_true(sign_through_stub(f->rsa, f->ring.e[0].id, RSA_PKCS1_PSS_PADDING));   /* TLS 1.3 */
    assert_true(sign_through_stub(f->rsa, f->ring.e[0].id, RSA_PKCS1_PADDING));       /* TLS 1.2 */
    assert_true(sign_through_stub(f->ec, f->ring.e[1].id, 0));
    /* a key the key process does not hold: refused, not hung */
    assert_false(sign_through_stub(f->ec, f->ring.e[0].id, 0));
    /* once the key process is gone the operation fails (the handshake does) */
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    assert_false(sign_through_stub(f->ec, f->ring.e[1].id, 0));
    tls_keyclient_set_fd(-1);
    close(sv[1]);
    assert_false(sign_through_stub(f->ec, f->ring.e[1].id, 0));
    keyproc_free(kp);
    strbuf_free(&diag);
}

/* A key process that first sends a stale answer (the reply to an earlier
 * request that timed out), then the real one; or never answers. */
static void test_late_and_missing_answers(void **state)
{
    struct fixture *f = *state;
    struct strbuf diag = STRBUF_INIT;
    struct keyproc *kp = keyproc_load(&f->ring, &diag);
    assert_non_null(kp);
    for (int answers = 1; answers >= 0; answers--) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(sv[1]);
            struct ipc_msg req, stale, reply;
            if (ipc_recv_blocking(sv[0], &req, 5000) != 0)
                _exit(1);
            if (!answers) {
                sleep(10);   /* killed before */
                _exit(0);
            }
            ipc_msg_init(&stale, IPC_KEY_SIGN_REPLY, req.reqid - 1);
            ipc_msg_add(&stale, "status", "fail");
            ipc_msg_add(&stale, "text", "stale");
            keyproc_answer(kp, &req, &reply);
            int rc = ipc_send_blocking(sv[0], &stale) || ipc_send_blocking(sv[0], &reply);
            _exit(rc);
        }
        close(sv[0]);
        tls_keyclient_set_fd(sv[1]);
        if (answers) {
            assert_true(sign_through_stub(f->ec, f->ring.e[1].id, 0));
        } else {
            assert_false(sign_through_stub(f->ec, f->ring.e[1].id, 0)); /* after TLS_KEYCLIENT_TIMEOUT_MS */
            kill(pid, SIGKILL);
        }
        waitpid(pid, NULL, 0);
        tls_keyclient_set_fd(-1);
        close(sv[1]);
    }
    keyproc_free(kp);
    strbuf_free(&diag);
}

static const char *answer(struct keyproc *kp, const char *id, const char *op, const char *data)
{
    static char status[16];
    struct ipc_msg req, reply;
    ipc_msg_init(&req, IPC_KEY_SIGN, 7);
    ipc_msg_add(&req, "key", id);
    ipc_msg_add(&req, "op", op);
    ipc_msg_add(&req, "data", data);
    keyproc_answer(kp, &req, &reply);
    assert_int_equal(reply.type, IPC_KEY_SIGN_REPLY);
    assert_int_equal(reply.reqid, 7);
    snprintf(status, sizeof status, "%s", ipc_msg_get(&reply, "status"));
    ipc_msg_free(&req);
    ipc_msg_free(&reply);
    return status;
}

static void test_refusals(void **state)
{
    struct fixture *f = *state;
    struct strbuf diag = STRBUF_INIT;
    struct keyproc *kp = keyproc_load(&f->ring, &diag);
    assert_non_null(kp);
    const char *rsa = f->ring.e[0].id, *ec = f->ring.e[1].id;
    char digest[65];
    memset(digest, 'a', 64);
    digest[64] = '\0';
    assert_string_equal(answer(kp, ec, "ecdsa", digest), "ok");
    assert_string_equal(answer(kp, rsa, "ecdsa", digest), "fail");
    assert_string_equal(answer(kp, ec, "rsa-pkcs1", digest), "fail");
    assert_string_equal(answer(kp, "00", "ecdsa", digest), "fail");
    assert_string_equal(answer(kp, ec, "ecdsa", "not hex"), "fail");
    /* only what a handshake signs: digests of SHA-256/384/512, and for
     * PKCS#1 v1.5 their DigestInfo; not SHA-1's, MD5's, nor raw bytes */
    assert_string_equal(answer(kp, ec, "ecdsa", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), "fail");   /* 20 bytes */
    char long_digest[129];
    memset(long_digest, 'b', 128);
    long_digest[128] = '\0';
    assert_string_equal(answer(kp, ec, "ecdsa", long_digest), "ok");
    char info[200];
    snprintf(info, sizeof info, "3031300d060960864801650304020105000420%s", digest);
    assert_string_equal(answer(kp, rsa, "rsa-pkcs1", info), "ok");
    snprintf(info, sizeof info, "3021300906052b0e03021a05000414%.40s", digest);   /* SHA-1 */
    assert_string_equal(answer(kp, rsa, "rsa-pkcs1", info), "fail");
    snprintf(info, sizeof info, "3020300c06082a864886f70d020505000410%.32s", digest);   /* MD5 */
    assert_string_equal(answer(kp, rsa, "rsa-pkcs1", info), "fail");
    assert_string_equal(answer(kp, rsa, "rsa-pkcs1", digest), "fail");   /* raw bytes */
    /* no decryption: a ciphertext sent as a "PSS block" is refused (the
     * raw RSA operation would decrypt it) */
    char *block = xmalloc(513);
    memset(block, '0', 512);
    block[512] = '\0';
    memcpy(block + 2, "4142", 4);
    assert_string_equal(answer(kp, rsa, "rsa-pss", block), "fail");
    block[510] = 'b', block[511] = 'c';   /* the trailer alone is not enough */
    assert_string_equal(answer(kp, rsa, "rsa-pss", block), "fail");
    assert_string_equal(answer(kp, rsa, "rsa-decrypt", block), "fail");
    free(block);
    keyproc_free(kp);
    strbuf_free(&diag);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_load_all_or_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signatures_through_the_key_process, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_and_missing_answers, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
