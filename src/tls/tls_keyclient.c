/* tls_keyclient: keys whose private operations happen in the key process
 * (see tls_keyclient.h).
 *
 * Deprecated API on purpose (OPENSSL_SUPPRESS_DEPRECATED): an RSA_METHOD
 * and an EC_KEY_METHOD on a public-only key. OpenSSL 3.0 keeps such a
 * "foreign" key on its legacy code path, where the padding is done in
 * libcrypto and only the raw private operation reaches the method. The
 * alternative, an in-process provider with "RSA" and "EC" key managers,
 * was weighed and left for later: in 3.0 libssl fetches key managers by
 * name alone (the ECDHE keys too), so a second "EC" implementation competes
 * with the default provider's for every fetch, not only for our keys (see
 * docs/ARCHITECTURE.md). This file is the only one that opts in. */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "tls/tls_keyclient.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <string.h>

#include "util/ipc.h"
#include "util/log.h"
#include "util/mem.h"

static int key_fd = -1;
static uint32_t next_reqid = 1;
static RSA_METHOD *rsa_method;
static EC_KEY_METHOD *ec_method;
static int rsa_id_index = -1, ec_id_index = -1;

void tls_keyclient_set_fd(int fd)
{
    key_fd = fd;
}

/* The id string belongs to the key and goes with it. */
static void free_id(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    free(ptr);
}

/* One request, one answer: returns the result's length (at most outlen)
 * or -1, logged. Answers to earlier requests that timed out are skipped. */
static int remote_op(const char *id, const char *op, const unsigned char *in, size_t inlen, unsigned char *out,
                     size_t outlen)
{
    if (!id || key_fd < 0) {
        log_error("TLS private-key operation: no key process");
        return -1;
    }
    char *hex = xmalloc(inlen * 2 + 1);
    size_t hexlen;
    if (OPENSSL_buf2hexstr_ex(hex, inlen * 2 + 1, &hexlen, in, inlen, '\0') != 1) {
        free(hex);
        return -1;
    }
    uint32_t reqid = next_reqid++;
    struct ipc_msg req;
    ipc_msg_init(&req, IPC_KEY_SIGN, reqid);
    ipc_msg_add(&req, "key", id);
    ipc_msg_add(&req, "op", op);
    ipc_msg_add(&req, "data", hex);
    free(hex);
    int sent = ipc_send_blocking(key_fd, &req);
    ipc_msg_free(&req);
    if (sent != 0) {
        log_error("TLS private-key operation: cannot reach the key process: %s", strerror(errno));
        return -1;
    }
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long waited = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (waited >= TLS_KEYCLIENT_TIMEOUT_MS) {
            log_error("TLS private-key operation: no answer from the key process within %d ms",
                      TLS_KEYCLIENT_TIMEOUT_MS);
            return -1;
        }
        struct ipc_msg reply;
        if (ipc_recv_blocking(key_fd, &reply, TLS_KEYCLIENT_TIMEOUT_MS - (int)waited) != 0) {
            if (errno == ETIMEDOUT)
                continue;
            log_error("TLS private-key operation: key process: %s", strerror(errno));
            return -1;
        }
        if (reply.type != IPC_KEY_SIGN_REPLY || reply.reqid != reqid) {
            ipc_msg_free(&reply);   /* the late answer to a request that timed out */
            continue;
        }
        int rc = -1;
        const char *status = ipc_msg_get(&reply, "status");
        const char *result = ipc_msg_get(&reply, "result");
        size_t len = 0;
        if (strcmp(status, "ok") != 0) {
            const char *text = ipc_msg_get(&reply, "text");
            log_error("TLS private-key operation refused by the key process: %s", text ? text : "no reason");
        } else if (!result || strlen(result) > outlen * 2 ||
                   OPENSSL_hexstr2buf_ex(out, outlen, &len, result, '\0') != 1) {
            log_error("TLS private-key operation: a bad answer from the key process");
        } else {
            rc = (int)len;
        }
        ipc_msg_free(&reply);
        return rc;
    }
}

/* RSA: the padding is applied by libcrypto before it calls the method;
 * PKCS#1 v1.5 signatures arrive as a DigestInfo with padding =
 * RSA_PKCS1_PADDING, RSA-PSS as a finished PSS block with RSA_NO_PADDING. */
static int rsa_remote_priv_enc(int flen, const unsigned char *from, unsigned char *to, RSA *rsa, int padding)
{
    const char *op = padding == RSA_PKCS1_PADDING ? "rsa-pkcs1" : padding == RSA_NO_PADDING ? "rsa-pss" : NULL;
    if (!op || flen < 0)
        return -1;
    return remote_op(RSA_get_ex_data(rsa, rsa_id_index), op, from, (size_t)flen, to, (size_t)RSA_size(rsa));
}

/* Decryption (static RSA key exchange) never goes to the key process: a
 * context that offers it holds its RSA key itself (tls.c). */
static int rsa_no_priv_dec(int flen, const unsigned char *from, unsigned char *to, RSA *rsa, int padding)
{
    (void)flen, (void)from, (void)to, (void)rsa, (void)padding;
    return -1;
}

static int ec_remote_sign(int type, const unsigned char *dgst, int dlen, unsigned char *sig, unsigned int *siglen,
                          const BIGNUM *kinv, const BIGNUM *r, EC_KEY *eckey)
{
    (void)type, (void)kinv, (void)r;
    int n = dlen < 0 ? -1
                     : remote_op(EC_KEY_get_ex_data(eckey, ec_id_index), "ecdsa", dgst, (size_t)dlen, sig,
                                 (size_t)ECDSA_size(eckey));
    if (n < 0)
        return 0;
    *siglen = (unsigned)n;
    return 1;
}

static ECDSA_SIG *ec_remote_sign_sig(const unsigned char *dgst, int dlen, const BIGNUM *kinv, const BIGNUM *r,
                                     EC_KEY *eckey)
{
    int size = ECDSA_size(eckey);
    if (size <= 0)
        return NULL;
    unsigned char *der = xmalloc((size_t)size);
    unsigned int len = 0;
    ECDSA_SIG *sig = NULL;
    if (ec_remote_sign(0, dgst, dlen, der, &len, kinv, r, eckey) == 1) {
        const unsigned char *p = der;
        sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
    }
    free(der);
    return sig;
}

static int methods_ready(void)
{
    if (rsa_method && ec_method)
        return 1;
    rsa_id_index = RSA_get_ex_new_index(0, NULL, NULL, NULL, free_id);
    ec_id_index = EC_KEY_get_ex_new_index(0, NULL, NULL, NULL, free_id);
    /* The public operations stay OpenSSL's own. */
    rsa_method = RSA_meth_dup(RSA_PKCS1_OpenSSL());
    ec_method = EC_KEY_METHOD_new(EC_KEY_OpenSSL());
    if (!rsa_method || !ec_method || rsa_id_index < 0 || ec_id_index < 0)
        return 0;
    RSA_meth_set1_name(rsa_method, "tern key process");
    RSA_meth_set_priv_enc(rsa_method, rsa_remote_priv_enc);
    RSA_meth_set_priv_dec(rsa_method, rsa_no_priv_dec);
    EC_KEY_METHOD_set_sign(ec_method, ec_remote_sign, NULL, ec_remote_sign_sig);
    return 1;
}

EVP_PKEY *tls_keyclient_stub(EVP_PKEY *pub, const char *id)
{
    if (!methods_ready())
        return NULL;
    EVP_PKEY *stub = EVP_PKEY_new();
    if (!stub)
        return NULL;
    /* A copy: the certificate's own public key must keep OpenSSL's methods. */
    if (EVP_PKEY_is_a(pub, "RSA")) {
        RSA *rsa = RSAPublicKey_dup(EVP_PKEY_get0_RSA(pub));
        if (rsa && RSA_set_method(rsa, rsa_method) == 1 && RSA_set_ex_data(rsa, rsa_id_index, xstrdup(id)) == 1 &&
            EVP_PKEY_assign_RSA(stub, rsa) == 1)
            return stub;
        RSA_free(rsa);
    } else if (EVP_PKEY_is_a(pub, "EC")) {
        EC_KEY *ec = EC_KEY_dup(EVP_PKEY_get0_EC_KEY(pub));
        if (ec && EC_KEY_set_method(ec, ec_method) == 1 && EC_KEY_set_ex_data(ec, ec_id_index, xstrdup(id)) == 1 &&
            EVP_PKEY_assign_EC_KEY(stub, ec) == 1)
            return stub;
        EC_KEY_free(ec);
    }
    EVP_PKEY_free(stub);
    return NULL;
}
