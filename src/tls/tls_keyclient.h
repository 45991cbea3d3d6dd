/* tls_keyclient: smtpd's side of the key process. smtpd's SSL contexts
 * hold, for each certificate, a key that has only the public half: its
 * private-key operations (the TLS 1.3 CertificateVerify, the TLS 1.2
 * ServerKeyExchange signature) are sent as KEY_SIGN over a socketpair to
 * the key process (src/daemon/keyproc.c), which holds the private keys.
 *
 * Who calls it: tls.c makes the keys (tls_keyclient_stub) while the master
 * builds the contexts; the master hands the forked smtpd its end of the
 * socketpair (tls_keyclient_set_fd) before smtpd runs.
 *
 * Limits: the operation is synchronous inside OpenSSL's handshake: smtpd
 * waits for the answer (TLS_KEYCLIENT_TIMEOUT_MS at most), and its event
 * loop waits with it. A failed or late answer fails that handshake only
 * (logged); a late answer is recognised by its request id and dropped. */
#ifndef TERN_TLS_TLS_KEYCLIENT_H
#define TERN_TLS_TLS_KEYCLIENT_H

struct evp_pkey_st;

#define TLS_KEYCLIENT_TIMEOUT_MS 2000

/* A key with the public half of pub (RSA or EC) whose private operations
 * go to the key process under id (tls_key_id). NULL for another key type. */
struct evp_pkey_st *tls_keyclient_stub(struct evp_pkey_st *pub, const char *id);

/* The socket to the key process (-1: none; operations then fail). */
void tls_keyclient_set_fd(int fd);

#endif
