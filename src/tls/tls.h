/* tls: OpenSSL contexts for the SMTP server (STARTTLS, port 465) and the
 * description of an established TLS session for logs and Received:.
 *
 * Who calls it: the master builds one server context per listener from
 * that listener's configuration while it is root; the forked smtpd
 * inherits it. The contexts hold certificates and public keys only: each
 * certificate's key is a stub (tls_keyclient.h) whose private operations
 * go to the key process, and the key files themselves are listed in a
 * tls_keyring for the key process to read. Neither the master nor smtpd
 * ever reads a private key. A reload builds new contexts and frees the old
 * ones once no child uses them.
 *
 * What it owns: the SSL_CTX it returns (free it with tls_ctx_free).
 *
 * Errors: tls_server_ctx reports a bad configuration (an unreadable
 * certificate, an unknown protocol name) through *err, with the file name
 * and OpenSSL's reason; an unreadable or mismatched private key is found
 * by the key process when it loads the keyring.
 *
 * The exceptions: an RSA key of a context that offers static RSA key
 * exchange (kRSA, excluded by default), and a key neither RSA nor EC
 * (Ed25519), are loaded into the context itself, with a warning: OpenSSL
 * 3.0 decrypts the premaster secret only with a key it holds, and the stub
 * exists for RSA and EC only (see load_pair_in_process in tls.c). */
#ifndef TERN_TLS_TLS_H
#define TERN_TLS_TLS_H

#include <stddef.h>

struct conf;
struct ssl_ctx_st;
struct ssl_st;
struct evp_pkey_st;

/* The private keys the contexts need, for the key process: each is named
 * by the id of its public key (tls_key_id), which is also what smtpd's
 * stub key sends. */
struct tls_keyring_entry {
    char id[65];
    char *key_file;         /* where the private key is read (by the key process) */
    char *cert_file;        /* its certificate, for messages */
    char *label;            /* "service NAME" or "tls_server_sni_maps: NAME", for messages */
};
struct tls_keyring {
    struct tls_keyring_entry *e;
    size_t n;
};
void tls_keyring_free(struct tls_keyring *k);

/* The hex SHA-256 of the DER public key; 0, or -1. */
int tls_key_id(struct evp_pkey_st *key, char id[65]);

enum tls_level { TLS_LEVEL_NONE, TLS_LEVEL_MAY, TLS_LEVEL_ENCRYPT };

/* smtpd_tls_security_level (with smtpd_tls_wrappermode = yes meaning
 * encrypt, as on port 465). */
enum tls_level tls_server_level(struct conf *c);

/* The server context for a listener's configuration: certificates from
 * smtpd_tls_chain_files, or smtpd_tls_cert_file/smtpd_tls_key_file plus
 * smtpd_tls_eccert_file/smtpd_tls_eckey_file (RSA and ECDSA side by side),
 * their keys added to keys under label,
 * protocols from smtpd_tls_protocols (Postfix syntax: "!SSLv3, !TLSv1" or
 * ">=TLSv1.2"), ciphers from smtpd_tls_ciphers. Returns NULL with *err
 * NULL when no certificate is configured, NULL with *err (free it) on an
 * error. */
struct ssl_ctx_st *tls_server_ctx(struct conf *c, const char *label, struct tls_keyring *keys, char **err);
void tls_ctx_free(struct ssl_ctx_st *ctx);

/* A client context for the SMTP client: protocols from the list named by
 * protocols_param (smtp_tls_protocols for opportunistic TLS,
 * smtp_tls_mandatory_protocols when TLS is required). NULL with *err on
 * an error. */
struct ssl_ctx_st *tls_client_ctx(struct conf *c, const char *protocols_param, char **err);
/* Trusted CAs for a client context (smtp_tls_CAfile, smtp_tls_CApath),
 * loaded only once a verifying level needs them: reading Debian's bundle
 * costs a noticeable moment. 0, or -1 with *err. */
int tls_client_load_cas(struct ssl_ctx_st *ctx, const char *cafile, const char *capath, char **err);

/* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" */
void tls_describe(struct ssl_st *ssl, char *buf, size_t len);

/* The lowest protocol version a Postfix protocol list allows (an OpenSSL
 * TLS1_x_VERSION), or -1 with *bad naming an unknown word. Exposed for
 * tests. */
int tls_min_version(const char *list, const char **bad);

/* Session-ticket keys (see tls.c): the current one encrypts new tickets
 * for `lifetime` seconds; the one before still opens tickets (which are then
 * renewed) for one lifetime after it was retired. Exposed for tests. */
struct tls_ticket_key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
    long long created;
    int in_use;
};
struct tls_ticket_ring {
    struct tls_ticket_key current, previous;
    long long previous_retired;
    long long lifetime;
};
void tls_ticket_ring_reset(struct tls_ticket_ring *r, long long lifetime);
/* The key for a new ticket at time now (a fresh one once the current is a
 * lifetime old); NULL if no random bytes could be had. */
const struct tls_ticket_key *tls_ticket_key_for_new(struct tls_ticket_ring *r, long long now);
/* The key a ticket names, or NULL (unknown or too old); *renew is set when
 * the ticket should be replaced by one under the current key. */
const struct tls_ticket_key *tls_ticket_key_named(struct tls_ticket_ring *r, const unsigned char name[16],
                                                  long long now, int *renew);

/* The last OpenSSL error as text (for logs), "unknown error" if none. */
const char *tls_error_text(unsigned long e, char *buf, size_t len);

#endif
