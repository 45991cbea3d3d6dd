/* dkim_internal: what the dkim_*.c files share and no other module sees:
 * the tag-list parser, the parsed signature and key, the header block split
 * into fields, and the header hash both signer and verifier compute. */
#ifndef TERN_MAILAUTH_DKIM_INTERNAL_H
#define TERN_MAILAUTH_DKIM_INTERNAL_H

#include <stddef.h>

#include "mailauth/dkim.h"

/* One tag of a tag list: offsets into the parsed text. The value span is
 * trimmed of surrounding FWS; raw_* is everything between '=' and the ';'
 * or the end, which is what "deleting the b= value" removes. */
struct dkim_tag {
    size_t name, name_len;
    size_t val, val_len;
    size_t raw_val, raw_len;
};

/* Parses a tag list (RFC 6376 §3.2): 0 with *n tags, or -1 with why.
 * Duplicate names and syntax errors are refused. */
int dkim_tags_parse(const char *s, size_t len, struct dkim_tag *tags, size_t max, size_t *n,
                    char why[DKIM_REASON_MAX]);

/* Formats a reason into why, bounded and printable. */
void dkim_why(char why[DKIM_REASON_MAX], const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Decodes base64 with FWS (SP, HTAB, CR, LF) removed; -1 when invalid or
 * over max bytes. */
int dkim_b64_decode(const char *s, size_t len, unsigned char *out, size_t max, size_t *outlen);

struct dkim_sig {
    enum dkim_alg alg;
    enum dkim_canon hcanon, bcanon;
    char *d, *s, *i;                 /* i: decoded, NULL when absent */
    char *a;                         /* as written */
    char b64[9];                     /* first 8 characters of b= */
    unsigned char b[DKIM_SIG_MAX];
    size_t blen;
    unsigned char bh[32];
    char **h;                        /* lower case names */
    size_t nh;
    int has_l, has_t, has_x;
    unsigned long long t, x;
    size_t b_raw, b_raw_len;         /* b= value span within the parsed value */
};

struct dkim_key {
    int is_ed25519;
    int revoked, testing, strict;
    EVP_PKEY *pkey;                  /* NULL when revoked */
};

/* A header block split into fields. */
struct dkim_field {
    const char *p;     /* the field, without its final CRLF */
    size_t len;
    size_t name_len;   /* before the colon (trailing WSP excluded); 0: no colon */
};

/* by_name indexes the named fields (on first use), sorted by lower-case name and then
 * position, so that finding a name's fields costs a binary search rather than
 * a pass over the header: a signature's h= may name 128 fields, a message
 * carries up to DKIM_MAX_SIGS + DKIM_ARC_MAX_SETS signatures, and a 100 KB
 * header holds 25,000 fields (0.2 s of smtpd's loop for eight signatures when
 * each name scanned them all). */
struct dkim_fields {
    struct dkim_field *f;
    size_t n, cap;
    size_t *by_name;   /* indexes into f */
    size_t named;      /* entries in by_name */
};

void dkim_fields_split(const char *hdr, size_t len, struct dkim_fields *out);
void dkim_fields_free(struct dkim_fields *fs);
int dkim_field_is(const struct dkim_field *f, const char *name);
/* The fields named name (lower case) are f[by_name[k]] for k in [*lo, *hi),
 * top to bottom; *lo == *hi when there are none. Builds the index. */
void dkim_fields_named(struct dkim_fields *fs, const char *name, size_t *lo, size_t *hi);
/* Name comparisons made so far by this process (for the unit test that keeps
 * the header hash's cost linear). */
size_t dkim_test_name_compares(void);

/* The header hash (RFC 6376 §3.7): the fields h names, selected bottom up,
 * canonicalized, then the signature field sigf with the b= value span
 * [b_off, b_off + b_len) of sigf deleted and no final CRLF. */
void dkim_header_hash(enum dkim_canon c, struct dkim_fields *fs, char *const *h, size_t nh,
                      const char *sigf, size_t sigf_len, size_t b_off, size_t b_len, unsigned char hash[32]);

/* Of the TXT records of rs (the first 16), the first that parses as a key
 * record (RFC 6376 §6.1.2 step 4 lets the verifier choose): 0 with *key, or
 * -1 with why, the first record's fault ("" when rs holds none). */
int dkim_key_from_rrset(const struct dns_rrset *rs, struct dkim_key **key, char why[DKIM_REASON_MAX]);

/* 1 when sig[0..siglen) is alg's signature of hash by pk (rsa-sha256:
 * PKCS#1 v1.5 over the digest; ed25519-sha256: PureEd25519 over the 32
 * bytes, RFC 8463 §3), else 0. */
int dkim_sig_verify_hash(enum dkim_alg alg, EVP_PKEY *pk, const unsigned char *sig, size_t siglen,
                         const unsigned char hash[32]);

/* 1 when s is a valid domain name or selector (LDH labels joined by dots). */
int dkim_valid_name(const char *s, size_t len);
/* Tag lists, shared by the DKIM and ARC parsers: the tag called name (or
 * NULL), whether a tag's value is exactly want, its value as at most
 * maxdigits digits (0, or -1). */
const struct dkim_tag *dkim_tag_get(const char *s, const struct dkim_tag *tags, size_t n, const char *name);
int dkim_tag_is(const char *s, const struct dkim_tag *t, const char *want);
int dkim_tag_digits(const char *s, const struct dkim_tag *t, size_t maxdigits, unsigned long long *out);
/* d= and s= of a signature's tags, checked and copied into sig. */
int dkim_sig_take_ds(struct dkim_sig *sig, const char *s, const struct dkim_tag *tags, size_t n,
                     char why[DKIM_REASON_MAX]);

/* The body hashes of a verifier (DKIM or ARC), one per canonicalization
 * its signatures use, fed as the body streams (dkim_canon.c). */
struct dkim_bodies {
    struct dkim_body *body[2];   /* by enum dkim_canon; made when a signature needs one */
    unsigned char hash[2][32];
    int ended;
};
void dkim_bodies_need(struct dkim_bodies *b, enum dkim_canon c);
/* Feeds every hash; nothing after the end. */
void dkim_bodies_update(struct dkim_bodies *b, const void *data, size_t len);
/* Ends the body: each hash is final (once, however often called). */
void dkim_bodies_end(struct dkim_bodies *b);
void dkim_bodies_free(struct dkim_bodies *b);

#endif
