/* keyproc: the key process (see keyproc.h). */
#include "daemon/keyproc.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tls/tls.h"
#include "util/ipc.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/strbuf.h"

struct held_key {
    char id[65];
    EVP_PKEY *pkey;
};

struct keyproc {
    struct held_key *keys;
    size_t n;
};

static const char *openssl_reason(void)
{
    static char buf[256];
    return tls_error_text(ERR_peek_last_error(), buf, sizeof buf);
}

static EVP_PKEY *read_private_key(const char *file)
{
    BIO *bio = BIO_new_file(file, "r");
    /* the first private key of the file: a chain file has certificates too */
    EVP_PKEY *pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    return pkey;
}

struct keyproc *keyproc_load(const struct tls_keyring *ring, struct strbuf *diag)
{
    struct keyproc *kp = xcalloc(1, sizeof *kp);
    kp->keys = xcalloc(ring->n ? ring->n : 1, sizeof *kp->keys);
    int bad = 0;
    for (size_t i = 0; i < ring->n; i++) {
        const struct tls_keyring_entry *e = &ring->e[i];
        EVP_PKEY *pkey = read_private_key(e->key_file);
        char id[65];
        if (!pkey) {
            strbuf_printf(diag, "%s: cannot load the private key from %s: %s\n", e->label, e->key_file,
                          openssl_reason());
            bad = 1;
        } else if (tls_key_id(pkey, id) != 0 || strcmp(id, e->id) != 0) {
            strbuf_printf(diag, "%s: the private key does not match the certificate in %s (key %s)\n", e->label,
                          e->cert_file, e->key_file);
            EVP_PKEY_free(pkey);
            bad = 1;
        } else {
            struct held_key *k = &kp->keys[kp->n++];
            memcpy(k->id, e->id, sizeof k->id);
            k->pkey = pkey;
        }
        ERR_clear_error();
    }
    if (bad) {
        keyproc_free(kp);
        return NULL;
    }
    return kp;
}

void keyproc_free(struct keyproc *kp)
{
    if (!kp)
        return;
    for (size_t i = 0; i < kp->n; i++)
        EVP_PKEY_free(kp->keys[i].pkey);
    free(kp->keys);
    free(kp);
}

/* MGF1 (RFC 8017, B.2.1): len bytes of H(seed || counter) blocks. 0 or -1. */
static int mgf1(unsigned char *mask, size_t len, const unsigned char *seed, size_t seedlen, const EVP_MD *md)
{
    size_t hlen = (size_t)EVP_MD_get_size(md), done = 0;
    unsigned char block[EVP_MAX_MD_SIZE + 4], out[EVP_MAX_MD_SIZE];
    if (seedlen > EVP_MAX_MD_SIZE)
        return -1;
    memcpy(block, seed, seedlen);
    for (uint32_t counter = 0; done < len; counter++) {
        block[seedlen] = (unsigned char)(counter >> 24);
        block[seedlen + 1] = (unsigned char)(counter >> 16);
        block[seedlen + 2] = (unsigned char)(counter >> 8);
        block[seedlen + 3] = (unsigned char)counter;
        if (EVP_Digest(block, seedlen + 4, out, NULL, md, NULL) != 1)
            return -1;
        size_t take = len - done < hlen ? len - done : hlen;
        memcpy(mask + done, out, take);
        done += take;
    }
    return 0;
}

/* EMSA-PSS (RFC 8017, 9.1.2) as TLS uses it: MGF1 with the message's
 * digest, a salt as long as that digest. Only the structure is checked
 * (the message digest inside is what smtpd chose): what matters is that a
 * block that is not a PSS encoding, such as a ciphertext, is refused. */
static int is_pss_block(const unsigned char *block, size_t k, int modbits)
{
    size_t embits = (size_t)modbits - 1, emlen = (embits + 7) / 8;
    if (emlen > k || k - emlen > 1 || (k > emlen && block[0] != 0))
        return 0;
    const unsigned char *em = block + (k - emlen);
    unsigned char topmask = (unsigned char)(0xFF >> (8 * emlen - embits));
    if (emlen < 2 || em[emlen - 1] != 0xbc || (em[0] & ~topmask) != 0)
        return 0;
    const char *digests[] = {"SHA256", "SHA384", "SHA512"};
    int ok = 0;
    for (size_t d = 0; d < 3 && !ok; d++) {
        EVP_MD *md = EVP_MD_fetch(NULL, digests[d], NULL);
        int hlen = md ? EVP_MD_get_size(md) : 0;
        if (hlen <= 0 || emlen < 2 * (size_t)hlen + 2) {
            EVP_MD_free(md);
            continue;
        }
        size_t dblen = emlen - (size_t)hlen - 1;
        unsigned char *db = xmalloc(dblen);
        if (mgf1(db, dblen, em + dblen, (size_t)hlen, md) == 0) {
            for (size_t i = 0; i < dblen; i++)
                db[i] ^= em[i];
            db[0] &= topmask;
            size_t ps = dblen - (size_t)hlen - 1, i = 0;
            while (i < ps && db[i] == 0)
                i++;
            ok = i == ps && db[ps] == 0x01;
        }
        free(db);
        EVP_MD_free(md);
    }
    return ok;
}

static const struct held_key *find_key(const struct keyproc *kp, const char *id)
{
    for (size_t i = 0; i < kp->n; i++)
        if (strcmp(kp->keys[i].id, id) == 0)
            return &kp->keys[i];
    return NULL;
}

/* What TLS asks the key to sign, as this process sees it: a digest made
 * with SHA-256, -384 or -512 (TLS 1.2 and 1.3 sign with nothing weaker at
 * OpenSSL's security levels), for PKCS#1 v1.5 in its DER DigestInfo
 * (RFC 8017, 9.2 note 1). Anything else (a SHA-1 or MD5 DigestInfo, raw
 * bytes, a digest of another length) is no handshake's and is refused:
 * the key must not sign for a compromised smtpd what it could use
 * elsewhere the certificate is trusted. */
static int is_tls_digest_info(const unsigned char *in, size_t inlen)
{
    static const struct {
        unsigned char prefix[19];
        size_t hlen;
    } infos[] = {
        {{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00,
          0x04, 0x20}, 32},
        {{0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00,
          0x04, 0x30}, 48},
        {{0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00,
          0x04, 0x40}, 64},
    };
    for (size_t i = 0; i < sizeof infos / sizeof infos[0]; i++)
        if (inlen == 19 + infos[i].hlen && memcmp(in, infos[i].prefix, 19) == 0)
            return 1;
    return 0;
}

static int is_tls_digest(size_t inlen)
{
    return inlen == 32 || inlen == 48 || inlen == 64;
}

/* The operation itself; its result in out (*outlen), or the reason. */
static const char *operate(const struct held_key *k, const char *op, const unsigned char *in, size_t inlen,
                           unsigned char *out, size_t *outlen)
{
    int is_rsa = EVP_PKEY_is_a(k->pkey, "RSA");
    size_t rsa_size = is_rsa ? (size_t)EVP_PKEY_get_size(k->pkey) : 0;
    int sign;
    if (strcmp(op, "ecdsa") == 0 && EVP_PKEY_is_a(k->pkey, "EC") && is_tls_digest(inlen))
        sign = 1;
    else if (strcmp(op, "rsa-pkcs1") == 0 && is_rsa && inlen + 11 <= rsa_size && is_tls_digest_info(in, inlen))
        sign = 1;
    else if (strcmp(op, "rsa-pss") == 0 && is_rsa && inlen == rsa_size &&
             is_pss_block(in, inlen, EVP_PKEY_get_bits(k->pkey)))
        sign = 0; /* the raw operation on a finished block */
    else
        return "operation not allowed for this key";
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
    int ok = ctx != NULL;
    if (ok && sign)
        ok = EVP_PKEY_sign_init(ctx) == 1 &&
             (!is_rsa || EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1) &&
             EVP_PKEY_sign(ctx, out, outlen, in, inlen) == 1;
    else if (ok)
        ok = EVP_PKEY_decrypt_init(ctx) == 1 && EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING) == 1 &&
             EVP_PKEY_decrypt(ctx, out, outlen, in, inlen) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok ? NULL : openssl_reason();
}

void keyproc_answer(struct keyproc *kp, const struct ipc_msg *req, struct ipc_msg *reply)
{
    ipc_msg_init(reply, IPC_KEY_SIGN_REPLY, req->reqid);
    const char *why = NULL;
    const char *id = ipc_msg_get(req, "key"), *hex = ipc_msg_get(req, "data");
    if (!id || !hex) /* only in another message type */
        id = hex = "";
    const struct held_key *k = find_key(kp, id);
    size_t inlen = strlen(hex) / 2, outlen = 1024;
    unsigned char *in = xmalloc(inlen + 1), out[1024];
    if (req->type != IPC_KEY_SIGN)
        why = "not a KEY_SIGN request";
    else if (!k)
        why = "no such key";
    else if (OPENSSL_hexstr2buf_ex(in, inlen + 1, &inlen, hex, '\0') != 1)
        why = "data is not hex";
    else if ((size_t)EVP_PKEY_get_size(k->pkey) > sizeof out)
        why = "key too large";
    else
        why = operate(k, ipc_msg_get(req, "op"), in, inlen, out, &outlen);
    ERR_clear_error();
    free(in);
    if (why) {
        const char *op = ipc_msg_get(req, "op");
        log_warn("refused %s with key %.16s: %s", op ? op : "?", k ? k->id : "(unknown)", why);
        ipc_msg_add(reply, "status", "fail");
        ipc_msg_add(reply, "text", why);
        return;
    }
    char result[2 * sizeof out + 1];
    size_t hexlen;
    OPENSSL_buf2hexstr_ex(result, sizeof result, &hexlen, out, outlen, '\0');
    OPENSSL_cleanse(out, sizeof out);   /* a decryption's plaintext */
    ipc_msg_add(reply, "status", "ok");
    ipc_msg_add(reply, "result", result);
}

static volatile sig_atomic_t reopen_log, stop;

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        reopen_log = 1;
    else
        stop = 1;
}

int keyproc_serve(struct keyproc *kp, const int *fds, size_t nfds)
{
    /* SIGTERM (a restart for a new smtpd, a reload, the stop) ends the loop
     * between two requests: the one being answered is answered, and those
     * still in the sockets wait there for the next key process. */
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    struct pollfd *pfd = xcalloc(nfds ? nfds : 1, sizeof *pfd);
    for (size_t i = 0; i < nfds; i++) {
        pfd[i].fd = fds[i];
        pfd[i].events = POLLIN;
    }
    while (!stop) {
        int n = poll(pfd, (nfds_t)nfds, -1);
        if (reopen_log) {
            reopen_log = 0;
            log_reopen();
        }
        if (n < 0 && errno != EINTR) {
            log_error("poll: %s", strerror(errno));
            free(pfd);
            return 1;
        }
        for (size_t i = 0; n > 0 && i < nfds && !stop; i++) {
            if (pfd[i].fd < 0 || !pfd[i].revents)
                continue;
            struct ipc_msg req, reply;
            if (ipc_recv_blocking(pfd[i].fd, &req, 0) != 0) {
                if (errno == ETIMEDOUT)
                    continue;
                /* an smtpd that ended (or sent what the schema refuses) */
                if (errno != ECONNRESET)
                    log_warn("dropping a channel from smtpd: %s", strerror(errno));
                close(pfd[i].fd);
                pfd[i].fd = -1;
                continue;
            }
            keyproc_answer(kp, &req, &reply);
            /* An smtpd waits for each answer before it asks again: one whose
             * socket is full of unread answers is not an smtpd doing its
             * work, and must not keep this process waiting (a stop would
             * never be acted on). It loses its channel. */
            if (ipc_send_nowait(pfd[i].fd, &reply) != 0) {
                log_warn("dropping a channel from smtpd: cannot answer: %s", strerror(errno));
                close(pfd[i].fd);
                pfd[i].fd = -1;
            }
            ipc_msg_free(&req);
            ipc_msg_free(&reply);
        }
    }
    free(pfd);
    return 0;
}
