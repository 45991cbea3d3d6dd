/* qmgr_dkim: DKIM signatures for the mail the queue relays.
 *
 * Which mail: what smtpd accepted from mynetworks or an authenticated
 * client, and what local users submitted with sendmail (the envelope's
 * dkim_sign attribute, QF_ATTR_DKIM_SIGN); never mail that merely passes
 * through from outside; and only when the envelope sender's domain is the
 * From: domain or related to it (one a subdomain of the other), so From:
 * alone cannot borrow another domain's key. Which keys: dkim_sign_maps, looked up with the
 * From: header's domain, then ".parent" for each parent domain; the entry's
 * name (without its dot) is the d= and each "selector:/path/key.pem" of its
 * value makes one signature (RSA and Ed25519 side by side give two).
 *
 * The keys are read once, as root, when the queue process starts and
 * before it drops to mail_owner (qmgr_prepare_as_root, the master's
 * contract in daemon/runtime.h); a reload restarts the queue process and so
 * reads them again. Root reads a key only from a directory no other user
 * can change (trusted_dir) and only a regular root-owned file: a planted
 * link cannot make it read another key. smtpd never holds them.
 *
 * Where to: SMTP next hops only. An LMTP next hop (transport_maps
 * "lmtp:...", mailbox_transport, virtual_transport) is final delivery into
 * a mailbox store, where no one verifies a signature: qmgr_relay does not
 * ask for one.
 *
 * When: as a message is sent, over the content exactly as it goes out: a
 * copy converted to 7-bit for a server without 8BITMIME is signed again,
 * so the signature verifies at the far end. Signing reads the queue file
 * (the header, then the body through the streaming body hash); it needs no
 * DNS and does not block beyond that read. */
#ifndef TERN_QMGR_QMGR_DKIM_H
#define TERN_QMGR_QMGR_DKIM_H

#include <stddef.h>
#include <stdint.h>

struct conf;
struct strbuf;
struct queue_file_message;

/* Reads every key dkim_sign_maps names. Keys that load are kept even when
 * others fail; each problem is a line in diag and the result is -1. */
int qmgr_dkim_load(struct conf *c, struct strbuf *diag);
void qmgr_dkim_free(void);
size_t qmgr_dkim_key_count(void);

/* The DKIM-Signature fields (CRLF lines) for the message m whose content
 * is fd[offset, offset + length), or NULL when it is not to be signed (not
 * marked, no key for its From: domain) or cannot be (logged). lifetime:
 * seconds for x=, 0 for none. */
char *qmgr_dkim_sign(const struct queue_file_message *m, int fd, uint64_t offset, uint64_t length, long lifetime);

#endif
