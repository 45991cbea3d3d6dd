/* keyproc: the key process. It holds the TLS private keys and does the
 * private-key operations of smtpd's handshakes (KEY_SIGN), so that smtpd,
 * which parses network input, never has a private key in its memory.
 *
 * Who calls it: the master forks the key process, which loads the keyring
 * (keyproc_load) while still root, drops to mail_owner, and serves the
 * socketpairs of every running smtpd (keyproc_serve). It parses no network
 * input: only KEY_SIGN requests, checked against the IPC schema.
 *
 * What it answers: ecdsa (a digest, signed), rsa-pkcs1 (a DigestInfo,
 * signed with PKCS#1 v1.5 padding), rsa-pss (a finished PSS block: only one
 * that decodes as PSS is signed, so the raw RSA operation does not become a
 * decryption oracle). Every other request is refused: no decryption. */
#ifndef TERN_DAEMON_KEYPROC_H
#define TERN_DAEMON_KEYPROC_H

#include <stddef.h>

struct ipc_msg;
struct strbuf;
struct tls_keyring;

struct keyproc;

/* Reads every key of ring and checks it against its certificate's public
 * key: all or nothing. NULL with one line per problem in diag
 * ("service NAME: cannot load the private key from FILE: reason",
 * "...: the private key does not match the certificate in FILE"). */
struct keyproc *keyproc_load(const struct tls_keyring *ring, struct strbuf *diag);
void keyproc_free(struct keyproc *kp);

/* The answer to one KEY_SIGN request (reply is initialised here). */
void keyproc_answer(struct keyproc *kp, const struct ipc_msg *req, struct ipc_msg *reply);

/* Answers requests on fds until SIGTERM (then 0, between two requests); a
 * descriptor whose peer is gone or sent garbage is dropped. */
int keyproc_serve(struct keyproc *kp, const int *fds, size_t nfds);

#endif
