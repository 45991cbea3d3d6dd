/* dkim: DomainKeys Identified Mail (RFC 6376), signing and verifying, with
 * RFC 8301 (no rsa-sha1, RSA keys of 1024 bits or more) and RFC 8463
 * (ed25519-sha256).
 *
 * What it is for: smtpd verifies the signatures of incoming mail while the
 * message arrives, and the queue signs outgoing mail; both feed the body in
 * chunks as it comes, so no second pass over a large message is needed. The
 * module is a library: it keeps no global state, never logs and never blocks.
 * Key records are fetched through struct mailauth_dns (mailauth_dns.h); the
 * private-key operation of signing is a callback, so the key may live in the
 * key process.
 *
 * Who may call it: any process folder that may include src/mailauth (smtpd,
 * qmgr, daemon, cli). Crypto is OpenSSL 3 EVP: rsa-sha256 and ed25519-sha256.
 *
 * Input: header blocks and bodies are CRLF text as stored in the queue. Only
 * CRLF ends a line; a bare CR or LF is an ordinary byte. The header block is
 * the fields up to the empty line (the empty line itself and anything after it
 * is ignored); its size is the caller's bound (header_size_limit).
 *
 * Bounds: at most DKIM_MAX_SIGS DKIM-Signature fields are looked at (the first
 * ones, top down; others are ignored); a signature field or key record longer
 * than DKIM_MAX_TAGLIST bytes, with more than DKIM_MAX_TAGS tags or an h= of
 * more than DKIM_MAX_SIGNED_FIELDS names is refused; reasons are printable
 * ASCII of at most DKIM_REASON_MAX - 1 bytes.
 *
 * Ownership: every object is freed by its *_free function, which may be called
 * at any time (it cancels what is running). Strings returned as char * are the
 * caller's (free()); const pointers stay valid as long as their object. */
#ifndef TERN_MAILAUTH_DKIM_H
#define TERN_MAILAUTH_DKIM_H

#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>

#include "mailauth/mailauth_dns.h"
#include "util/strbuf.h"

#define DKIM_MAX_SIGS 8             /* DKIM-Signature fields verified per message */
#define DKIM_MAX_TAGLIST 16384      /* bytes of one signature field or key record */
#define DKIM_MAX_TAGS 64            /* tags in one tag list */
#define DKIM_MAX_SIGNED_FIELDS 128  /* names in one h= */
#define DKIM_REASON_MAX 128         /* a reason, with its NUL */
#define DKIM_CLOCK_SKEW 300         /* seconds a t= may lie in the future */
#define DKIM_RSA_MIN_BITS 1024      /* RFC 8301 §3.2 */
#define DKIM_RSA_MAX_BITS 4096
#define DKIM_SIG_MAX 512            /* bytes of a signature (RSA-4096) */

/* ---- canonicalization (RFC 6376 §3.4) ----------------------------------- */

enum dkim_canon { DKIM_CANON_SIMPLE, DKIM_CANON_RELAXED };

/* Appends the canonical form of one header field to out. field is the field
 * as it appears (name, colon, value with its folding), without the CRLF that
 * ends it; the canonical form ends with CRLF. */
void dkim_canon_header(enum dkim_canon c, const char *field, size_t len, struct strbuf *out);

/* A streaming body canonicalizer with its SHA-256: feed the body in chunks of
 * any size; trailing empty lines are held back (a count, not the bytes) until
 * more content comes, so memory stays constant. The result is the same
 * however the input is cut. */
struct dkim_body;
struct dkim_body *dkim_body_new(enum dkim_canon c);
/* Also appends the canonical output to tee (tests, fuzzing); NULL stops it. */
void dkim_body_tee(struct dkim_body *b, struct strbuf *tee);
void dkim_body_update(struct dkim_body *b, const void *data, size_t len);
/* Ends the body and writes its hash; after this only dkim_body_free. */
void dkim_body_final(struct dkim_body *b, unsigned char hash[32]);
void dkim_body_free(struct dkim_body *b);

/* ---- tag lists, signatures, key records (RFC 6376 §3.2, §3.5, §3.6.1) --- */

enum dkim_alg { DKIM_ALG_RSA_SHA256, DKIM_ALG_ED25519_SHA256 };

/* A parsed DKIM-Signature value (what follows "DKIM-Signature:"). */
struct dkim_sig;
/* 0 with *out (free with dkim_sig_free), or -1 with a reason in
 * why[DKIM_REASON_MAX] and *out NULL. Syntax errors, missing required tags,
 * unsupported algorithms (rsa-sha1 included), versions, canonicalizations
 * or query methods, an i= outside d=, an h= without From and an x= not after
 * t= are all refused. l= is parsed (dkim_sig_has_l) but never honoured. */
int dkim_sig_parse(const char *value, size_t len, struct dkim_sig **out, char why[DKIM_REASON_MAX]);
void dkim_sig_free(struct dkim_sig *s);
const char *dkim_sig_domain(const struct dkim_sig *s);
const char *dkim_sig_selector(const struct dkim_sig *s);
int dkim_sig_has_l(const struct dkim_sig *s);

/* A parsed key record (the TXT record text, its strings concatenated). */
struct dkim_key;
/* 0 with *out, or -1 with why. An empty p= (revoked) parses: see
 * dkim_key_revoked. The public key is decoded and checked here: RSA as
 * SubjectPublicKeyInfo or PKCS#1 RSAPublicKey, Ed25519 as its 32 raw bytes. */
int dkim_key_parse(const char *txt, size_t len, struct dkim_key **out, char why[DKIM_REASON_MAX]);
void dkim_key_free(struct dkim_key *k);
int dkim_key_revoked(const struct dkim_key *k);
int dkim_key_testing(const struct dkim_key *k); /* t=y */

/* ---- verifying ----------------------------------------------------------- */

/* RFC 8601 §2.7.1 results. */
enum dkim_status {
    DKIM_PASS,
    DKIM_FAIL,      /* body hash or signature mismatch, RSA key too short */
    DKIM_NEUTRAL,   /* syntax errors, unsupported algorithm or version, l= */
    DKIM_POLICY,    /* expired (x=), t= in the future */
    DKIM_TEMPERROR, /* the key lookup failed for now */
    DKIM_PERMERROR, /* no key record, an unusable or revoked key */
};
/* "pass", "fail", "neutral", "policy", "temperror", "permerror". */
const char *dkim_status_name(enum dkim_status s);

struct dkim_result {
    enum dkim_status status;
    char reason[DKIM_REASON_MAX]; /* why, for logs and the A-R comment ("" on pass) */
    /* For Authentication-Results (header.d, header.i, header.s, header.a,
     * header.b): printable, "" when the signature did not say. */
    char d[256];
    char i[320];      /* i=, or "@" d when absent */
    char s[256];
    char a[32];
    char b[9];        /* the first 8 characters of b= */
    int testing;      /* the key record says t=y */
};

struct dkim_verify;
/* Called once the results are ready, when dkim_verify_end returned 0. */
typedef void (*dkim_verify_cb)(void *arg, struct dkim_verify *v);

/* Starts verifying a message whose header block is hdr[0..len): finds the
 * DKIM-Signature fields, checks each and starts its key lookup at once
 * (dns must outlive v). now is the time to judge t= and x= by. Never NULL.
 *
 * Decisions where the RFCs leave room or older practice differs:
 *  - a signature that does not parse, or uses rsa-sha1 (RFC 8301), another
 *    algorithm, a version other than v=1 (draft-era v=0.5 included) or a
 *    c= or q= we do not know is neutral, and no key is looked up;
 *  - l= is never honoured: such a signature is policy without a lookup
 *    (content may have been appended after the signed part);
 *  - x= in the past, or t= more than DKIM_CLOCK_SKEW ahead: policy;
 *  - of several TXT records at the key's name, the first that parses as a
 *    key record is used (at most 16 are looked at); the key's g= tag is
 *    ignored (RFC 6376 dropped it); t=y is reported in result.testing and
 *    does not change the result; t=s wants i='s domain to be d= exactly;
 *  - RSA keys under 1024 bits fail (RFC 8301 §3.2), over 4096 bits are a
 *    permerror; an Ed25519 key must be the 32 raw bytes (RFC 8463 §4). */
struct dkim_verify *dkim_verify_new(const struct mailauth_dns *dns, const char *hdr, size_t len, time_t now,
                                    dkim_verify_cb done, void *arg);
/* Feeds the next chunk of the body (any size, any cut). */
void dkim_verify_body(struct dkim_verify *v, const void *data, size_t len);
/* Ends the body. Returns 1 when every result is ready now (done will never
 * be called); 0 when key lookups are still running: done then runs exactly
 * once, later, from a DNS callback (never from inside a dkim_* call). */
int dkim_verify_end(struct dkim_verify *v);
/* Signatures found (0 .. DKIM_MAX_SIGS), and each one's result, in header
 * order; valid once the results are ready. */
size_t dkim_verify_count(const struct dkim_verify *v);
const struct dkim_result *dkim_verify_result(const struct dkim_verify *v, size_t i);
/* Cancels running lookups (done is not called) and frees; also from done. */
void dkim_verify_free(struct dkim_verify *v);

/* ---- ARC (RFC 8617), verifying ------------------------------------------ */

/* Chain validation (RFC 8617 §5.2) of the ARC sets on incoming mail, so the
 * receiver can report arc=pass|fail|none in Authentication-Results. No
 * sealing: ARC is experimental and on its way to Historic; verify only.
 *
 * What is checked: every ARC-Seal (AS), ARC-Message-Signature (AMS) and
 * ARC-Authentication-Results (AAR) field is sorted by its instance i=; each
 * instance 1..N has exactly one of each, N <= DKIM_ARC_MAX_SETS; cv= is
 * none for i=1 and pass above (any cv=fail: fail); the newest AMS is
 * verified as a DKIM signature over the header and the streamed body (its
 * h= must not name ARC-Seal); then every AS from N down to 1 over the AAR,
 * AMS, AS of instances 1..i (relaxed, the AS's own b= emptied). Every key
 * is looked up at once, in parallel, when the header is complete.
 *
 * Decisions: every error is a fail, DNS failures too (§5.2.1: "all
 * failures are permanent"); rsa-sha1 and RSA keys under 1024 bits fail as
 * in DKIM (RFC 8301); the AS's t= and the AMS's t= are not judged (the
 * chain's age is not a validity rule) but an AMS x= in the past fails; an
 * AMS l= fails (appended content); empty names in an AMS h= ("a::b") are
 * skipped and an h= of no names is accepted, as the ARC test suite wants
 * (the AMS then covers itself and the body; RFC 8617 asks no From there). The older AMSs are
 * verified too, for the optional oldest-pass (§5.2 step 5); they never
 * change the chain's status. A key name shared by several signatures is
 * looked up once.
 *
 * Bounds: DKIM_ARC_MAX_SETS instances (RFC 8617 allows 50; real chains
 * hold a handful, and each instance costs up to two key lookups and two
 * signature checks, so a longer chain fails), at most 3 times that many
 * ARC fields are looked at; tag lists as in DKIM. */
#define DKIM_ARC_MAX_SETS 16

enum dkim_arc_status { DKIM_ARC_NONE, DKIM_ARC_PASS, DKIM_ARC_FAIL };
/* "none", "pass", "fail". */
const char *dkim_arc_status_name(enum dkim_arc_status s);

struct dkim_arc_result {
    enum dkim_arc_status status;
    char reason[DKIM_REASON_MAX]; /* why it failed, for logs and the A-R comment ("" otherwise) */
    unsigned instances;           /* N, the ARC sets found (0: none, or not sorted into sets) */
    /* On pass, RFC 8617 §5.2 step 5 (A-R header.oldest-pass): the oldest
     * instance from which every AMS up to N verifies; 0 when all do. */
    unsigned oldest_pass;
    /* The newest seal's d= and s= (A-R header.d / header.s; the selector
     * for logs), printable; "" when it was not parsed. */
    char d[256];
    char s[256];
};

struct dkim_arc_verify;
/* Called once the result is ready, when dkim_arc_verify_end returned 0. */
typedef void (*dkim_arc_verify_cb)(void *arg, struct dkim_arc_verify *v);

/* Starts validating the chain of the message whose header block is
 * hdr[0..len) (dns must outlive v; now judges an AMS x=). Never NULL. */
struct dkim_arc_verify *dkim_arc_verify_new(const struct mailauth_dns *dns, const char *hdr, size_t len, time_t now,
                                            dkim_arc_verify_cb done, void *arg);
/* Feeds the next chunk of the body (any size, any cut). */
void dkim_arc_verify_body(struct dkim_arc_verify *v, const void *data, size_t len);
/* Ends the body. 1: the result is ready now (done will never be called);
 * 0: key lookups still run, done then runs exactly once, later, from a DNS
 * callback (never from inside a dkim_arc_* call). */
int dkim_arc_verify_end(struct dkim_arc_verify *v);
/* The result, valid once it is ready. */
const struct dkim_arc_result *dkim_arc_verify_result(const struct dkim_arc_verify *v);
/* Cancels running lookups (done is not called) and frees; also from done. */
void dkim_arc_verify_free(struct dkim_arc_verify *v);

/* ---- signing ------------------------------------------------------------- */

/* The private-key operation: sign hash (the SHA-256 of the canonicalized
 * header data) and write the signature to sig, which holds *siglen bytes
 * (DKIM_SIG_MAX); set *siglen to its length. rsa-sha256: PKCS#1 v1.5 with
 * SHA-256 over the digest; ed25519-sha256: PureEd25519 over the 32 bytes
 * (RFC 8463 §3). 0 on success, -1 on failure. */
typedef int (*dkim_sign_fn)(void *arg, const unsigned char hash[32], unsigned char *sig, size_t *siglen);
/* The default callback: arg is an EVP_PKEY * (RSA or Ed25519). */
int dkim_sign_evp(void *arg, const unsigned char hash[32], unsigned char *sig, size_t *siglen);

struct dkim_sign_params {
    const char *domain;          /* d= */
    const char *selector;        /* s= */
    enum dkim_alg alg;
    /* Field names to sign when present, NULL-terminated; NULL: the default
     * list (dkim_default_headers). Each is signed as often as it occurs;
     * From once more (oversigned, so no From can be added). From is always
     * signed; a message without From is refused (RFC 6376 §5.4). */
    const char *const *headers;
    /* Interop and test vectors only: the h= value exactly as given, used
     * verbatim (no presence check, no oversigning). NULL normally. */
    const char *header_list_exact;
    const char *identity;        /* i=, NULL for none (then "@" d is implied) */
    unsigned long lifetime;      /* x= t= + lifetime; 0: no x= */
    time_t now;                  /* t= */
};

/* The default header list, NULL-terminated. */
extern const char *const dkim_default_headers[];

struct dkim_signer;
/* NULL with *err (free it) when domain or selector is not a valid name. */
struct dkim_signer *dkim_signer_new(const struct dkim_sign_params *p, char **err);
void dkim_signer_body(struct dkim_signer *s, const void *data, size_t len);
/* Ends the body and computes the hash to sign over the header block
 * hdr[0..len). 0, or -1 with *err (no From field). */
int dkim_signer_hash(struct dkim_signer *s, const char *hdr, size_t len, unsigned char hash[32], char **err);
/* The complete field for signature sig[0..siglen): "DKIM-Signature: ...",
 * folded at 78 columns, CRLF line ends (the last one included), ready to be
 * prepended. Only after dkim_signer_hash. */
char *dkim_signer_field(struct dkim_signer *s, const unsigned char *sig, size_t siglen);
/* dkim_signer_hash, sign, dkim_signer_field in one: NULL with *err. */
char *dkim_signer_finish(struct dkim_signer *s, const char *hdr, size_t len, dkim_sign_fn sign, void *arg,
                         char **err);
void dkim_signer_free(struct dkim_signer *s);

/* Loads a private key from a PEM file (PKCS#8, or traditional RSA, as
 * `openssl genpkey` and `openssl genrsa` write them): RSA of 1024 to 4096
 * bits, or Ed25519. NULL with *err. Free with EVP_PKEY_free. */
EVP_PKEY *dkim_key_load_pem(const char *path, char **err);
/* The key record to publish for key: "v=DKIM1; k=rsa; p=..." (or
 * k=ed25519). With split, as zone-file character-strings: quoted, each at
 * most 255 octets, separated by a space. NULL with *err. */
char *dkim_key_txt_record(EVP_PKEY *key, int split, char **err);

#endif
