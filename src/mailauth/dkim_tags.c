/* dkim_tags: tag lists (RFC 6376 §3.2), the DKIM-Signature value (§3.5) and
 * key records (§3.6.1, RFC 8463 §4), parsed strictly and within bounds. */
#include <string.h>
#include <strings.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/x509.h>

#include "mailauth/dkim_internal.h"
#include "util/mem.h"
#include "util/str.h"

static int is_wsp(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* FWS = [*WSP CRLF] 1*WSP, taken loosely as any run of WSP and CRLF-before-WSP. */
static void skip_fws(const char *s, size_t len, size_t *pos)
{
    for (;;) {
        if (*pos < len && is_wsp((unsigned char)s[*pos]))
            (*pos)++;
        else if (*pos + 2 < len && s[*pos] == '\r' && s[*pos + 1] == '\n' && is_wsp((unsigned char)s[*pos + 2]))
            *pos += 3;
        else
            return;
    }
}

int dkim_tags_parse(const char *s, size_t len, struct dkim_tag *tags, size_t max, size_t *n,
                    char why[DKIM_REASON_MAX])
{
    *n = 0;
    if (len > DKIM_MAX_TAGLIST) {
        dkim_why(why, "tag list longer than %d bytes", DKIM_MAX_TAGLIST);
        return -1;
    }
    size_t pos = 0;
    for (;;) {
        skip_fws(s, len, &pos);
        if (pos == len) {
            if (*n == 0) {
                dkim_why(why, "empty tag list");
                return -1;
            }
            return 0;
        }
        /* tag-name = ALPHA *ALNUMPUNC */
        size_t name = pos;
        if (!str_is_alpha((unsigned char)s[pos])) {
            dkim_why(why, "tag list syntax error at offset %zu", pos);
            return -1;
        }
        while (pos < len && (str_is_alnum((unsigned char)s[pos]) || s[pos] == '_'))
            pos++;
        size_t name_len = pos - name;
        skip_fws(s, len, &pos);
        if (pos == len || s[pos] != '=') {
            dkim_why(why, "tag %.*s has no '='", (int)(name_len > 20 ? 20 : name_len), s + name);
            return -1;
        }
        pos++;
        size_t raw = pos;
        skip_fws(s, len, &pos);
        size_t val = pos, val_end = pos;
        while (pos < len && s[pos] != ';') {
            unsigned char c = (unsigned char)s[pos];
            if (is_wsp(c) || (c == '\r' && pos + 2 < len && s[pos + 1] == '\n' && is_wsp((unsigned char)s[pos + 2]))) {
                skip_fws(s, len, &pos);
                continue;
            }
            /* VALCHAR = %x21-3A / %x3C-7E; UTF-8 allowed (RFC 6376 §3.2 with RFC 6532) */
            if (c < 0x21 || c == 0x7f) {
                dkim_why(why, "tag %.*s: bad character 0x%02x in value", (int)(name_len > 20 ? 20 : name_len),
                         s + name, c);
                return -1;
            }
            pos++;
            val_end = pos;
        }
        for (size_t k = 0; k < *n; k++) {
            if (tags[k].name_len == name_len && memcmp(s + tags[k].name, s + name, name_len) == 0) {
                dkim_why(why, "tag %.*s occurs twice", (int)(name_len > 20 ? 20 : name_len), s + name);
                return -1;
            }
        }
        if (*n == max) {
            dkim_why(why, "more than %zu tags", max);
            return -1;
        }
        tags[*n] = (struct dkim_tag){name, name_len, val, val_end - val, raw, pos - raw};
        (*n)++;
        if (pos == len)
            return 0;
        pos++; /* ';' */
    }
}

int dkim_sig_take_ds(struct dkim_sig *sig, const char *s, const struct dkim_tag *tags, size_t n,
                     char why[DKIM_REASON_MAX])
{
    const struct dkim_tag *t = dkim_tag_get(s, tags, n, "d");
    if (!dkim_valid_name(s + t->val, t->val_len)) {
        dkim_why(why, "d= is not a domain name");
        return -1;
    }
    sig->d = xstrndup(s + t->val, t->val_len);
    t = dkim_tag_get(s, tags, n, "s");
    if (!dkim_valid_name(s + t->val, t->val_len)) {
        dkim_why(why, "s= is not a selector");
        return -1;
    }
    sig->s = xstrndup(s + t->val, t->val_len);
    return 0;
}

const struct dkim_tag *dkim_tag_get(const char *s, const struct dkim_tag *tags, size_t n, const char *name)
{
    size_t l = strlen(name);
    for (size_t k = 0; k < n; k++)
        if (tags[k].name_len == l && memcmp(s + tags[k].name, name, l) == 0)
            return &tags[k];
    return NULL;
}

int dkim_tag_is(const char *s, const struct dkim_tag *t, const char *want)
{
    return t->val_len == strlen(want) && memcmp(s + t->val, want, t->val_len) == 0;
}

/* A colon-separated list in a tag value, each item trimmed of FWS; calls fn
 * for each; stops at the first fn that returns non-zero and returns it. */
static int list_each(const char *s, const struct dkim_tag *t, int (*fn)(void *, const char *, size_t), void *arg)
{
    size_t k = t->val, end = t->val + t->val_len;
    for (;;) {
        size_t a = k;
        while (k < end && s[k] != ':')
            k++;
        size_t b = k;
        while (a < b && (is_wsp((unsigned char)s[a]) || s[a] == '\r' || s[a] == '\n'))
            a++;
        while (b > a && (is_wsp((unsigned char)s[b - 1]) || s[b - 1] == '\r' || s[b - 1] == '\n'))
            b--;
        int r = fn(arg, s + a, b - a);
        if (r)
            return r;
        if (k >= end)
            return 0;
        k++;
    }
}

static int item_eq(const char *p, size_t n, const char *want)
{
    return n == strlen(want) && memcmp(p, want, n) == 0;
}

int dkim_tag_digits(const char *s, const struct dkim_tag *t, size_t maxdigits, unsigned long long *out)
{
    if (t->val_len == 0 || t->val_len > maxdigits)
        return -1;
    unsigned long long v = 0;
    for (size_t k = 0; k < t->val_len; k++) {
        if (!str_is_digit((unsigned char)s[t->val + k]))
            return -1;
        v = v * 10 + (unsigned)(s[t->val + k] - '0');
    }
    *out = v;
    return 0;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1; /* dkim-quoted-printable wants upper-case hex (RFC 2045) */
}

static int domain_within(const char *sub, const char *d)
{
    size_t ls = strlen(sub), ld = strlen(d);
    if (ls < ld)
        return 0;
    if (strcasecmp(sub + ls - ld, d) != 0)
        return 0;
    return ls == ld || sub[ls - ld - 1] == '.';
}

struct hlist {
    struct dkim_sig *sig;
    int bad, from;
};

static int h_item(void *arg, const char *p, size_t n)
{
    struct hlist *hl = arg;
    if (n == 0 || hl->sig->nh == DKIM_MAX_SIGNED_FIELDS) {
        hl->bad = 1;
        return 1;
    }
    for (size_t k = 0; k < n; k++) {
        unsigned char c = (unsigned char)p[k];
        if (c < 0x21 || c > 0x7e || c == ':') {
            hl->bad = 1;
            return 1;
        }
    }
    char *name = xstrndup(p, n);
    str_lower(name);
    if (strcmp(name, "from") == 0)
        hl->from = 1;
    hl->sig->h = xrealloc(hl->sig->h, (hl->sig->nh + 1) * sizeof *hl->sig->h);
    hl->sig->h[hl->sig->nh++] = name;
    return 0;
}

static int q_item(void *arg, const char *p, size_t n)
{
    (void)arg;
    return item_eq(p, n, "dns/txt") ? 1 : 0;
}

static int parse_canon(const char *p, size_t n, enum dkim_canon *c)
{
    if (item_eq(p, n, "simple"))
        *c = DKIM_CANON_SIMPLE;
    else if (item_eq(p, n, "relaxed"))
        *c = DKIM_CANON_RELAXED;
    else
        return -1;
    return 0;
}

#define TAGV(t) (int)((t)->val_len > 40 ? 40 : (t)->val_len), s + (t)->val

static int sig_fill(struct dkim_sig *sig, const char *s, const struct dkim_tag *tags, size_t n,
                    char why[DKIM_REASON_MAX])
{
    static const char *const required[] = {"v", "a", "b", "bh", "d", "h", "s"};
    for (size_t k = 0; k < sizeof required / sizeof required[0]; k++) {
        if (!dkim_tag_get(s, tags, n, required[k])) {
            dkim_why(why, "signature has no %s= tag", required[k]);
            return -1;
        }
    }
    const struct dkim_tag *t = dkim_tag_get(s, tags, n, "v");
    if (!dkim_tag_is(s, t, "1")) {
        dkim_why(why, "unsupported version v=%.*s", TAGV(t));
        return -1;
    }
    t = dkim_tag_get(s, tags, n, "a");
    sig->a = xstrndup(s + t->val, t->val_len > 31 ? 31 : t->val_len);
    if (dkim_tag_is(s, t, "rsa-sha256")) {
        sig->alg = DKIM_ALG_RSA_SHA256;
    } else if (dkim_tag_is(s, t, "ed25519-sha256")) {
        sig->alg = DKIM_ALG_ED25519_SHA256;
    } else if (dkim_tag_is(s, t, "rsa-sha1")) {
        dkim_why(why, "rsa-sha1 is not accepted (RFC 8301)");
        return -1;
    } else {
        dkim_why(why, "unsupported algorithm a=%.*s", TAGV(t));
        return -1;
    }
    t = dkim_tag_get(s, tags, n, "b");
    size_t k8 = 0;
    for (size_t k = 0; k < t->val_len && k8 < 8; k++)
        if (!str_is_space((unsigned char)s[t->val + k]))
            sig->b64[k8++] = s[t->val + k];
    sig->b64[k8] = '\0';
    sig->b_raw = t->raw_val;
    sig->b_raw_len = t->raw_len;
    if (dkim_b64_decode(s + t->val, t->val_len, sig->b, sizeof sig->b, &sig->blen) < 0) {
        dkim_why(why, "b= is not base64 of at most %d bytes", DKIM_SIG_MAX);
        return -1;
    }
    t = dkim_tag_get(s, tags, n, "bh");
    size_t bhlen;
    if (dkim_b64_decode(s + t->val, t->val_len, sig->bh, sizeof sig->bh, &bhlen) < 0 || bhlen != 32) {
        dkim_why(why, "bh= is not base64 of a SHA-256 hash");
        return -1;
    }
    sig->hcanon = sig->bcanon = DKIM_CANON_SIMPLE;
    if ((t = dkim_tag_get(s, tags, n, "c"))) {
        const char *p = s + t->val, *slash = memchr(p, '/', t->val_len);
        size_t hl = slash ? (size_t)(slash - p) : t->val_len;
        if (parse_canon(p, hl, &sig->hcanon) < 0 ||
            (slash && parse_canon(slash + 1, t->val_len - hl - 1, &sig->bcanon) < 0)) {
            dkim_why(why, "unsupported canonicalization c=%.*s", TAGV(t));
            return -1;
        }
    }
    if (dkim_sig_take_ds(sig, s, tags, n, why) < 0)
        return -1;
    struct hlist hl = {sig, 0, 0};
    list_each(s, dkim_tag_get(s, tags, n, "h"), h_item, &hl);
    if (hl.bad) {
        dkim_why(why, "h= is not a list of at most %d field names", DKIM_MAX_SIGNED_FIELDS);
        return -1;
    }
    if (!hl.from) {
        dkim_why(why, "h= does not sign From (RFC 6376 5.4)");
        return -1;
    }
    if ((t = dkim_tag_get(s, tags, n, "i"))) {
        /* dkim-quoted-printable: =XX hex escapes, FWS ignored */
        char *i = xmalloc(t->val_len + 1);
        size_t o = 0;
        for (size_t k = 0; k < t->val_len; k++) {
            unsigned char c = (unsigned char)s[t->val + k];
            int hi = k + 2 < t->val_len ? hexval((unsigned char)s[t->val + k + 1]) : -1;
            int lo = k + 2 < t->val_len ? hexval((unsigned char)s[t->val + k + 2]) : -1;
            if (c == '=' && hi >= 0 && lo >= 0) {
                c = (unsigned char)(hi * 16 + lo);
                k += 2;
            } else if (str_is_space(c)) {
                continue; /* FWS inside the value is not part of it */
            } else if (c == '=') {
                free(i);
                dkim_why(why, "i= is not dkim-quoted-printable");
                return -1;
            }
            i[o++] = (char)c;
        }
        i[o] = '\0';
        sig->i = i;
        const char *at = strrchr(i, '@');
        if (!at || memchr(i, '\0', o) != NULL || !domain_within(at + 1, sig->d)) {
            dkim_why(why, "i= is not within d=");
            return -1;
        }
    }
    if ((t = dkim_tag_get(s, tags, n, "l"))) {
        unsigned long long l;
        if (dkim_tag_digits(s, t, 76, &l) < 0) {
            dkim_why(why, "l= is not a number");
            return -1;
        }
        sig->has_l = 1;
    }
    if ((t = dkim_tag_get(s, tags, n, "q")) && !list_each(s, t, q_item, NULL)) {
        dkim_why(why, "unsupported query method q=%.*s", TAGV(t));
        return -1;
    }
    if ((t = dkim_tag_get(s, tags, n, "t"))) {
        if (dkim_tag_digits(s, t, 12, &sig->t) < 0) {
            dkim_why(why, "t= is not a time");
            return -1;
        }
        sig->has_t = 1;
    }
    if ((t = dkim_tag_get(s, tags, n, "x"))) {
        if (dkim_tag_digits(s, t, 12, &sig->x) < 0) {
            dkim_why(why, "x= is not a time");
            return -1;
        }
        sig->has_x = 1;
        if (sig->has_t && sig->x <= sig->t) {
            dkim_why(why, "x= is not after t=");
            return -1;
        }
    }
    return 0;
}

int dkim_sig_parse(const char *value, size_t len, struct dkim_sig **out, char why[DKIM_REASON_MAX])
{
    struct dkim_tag tags[DKIM_MAX_TAGS];
    size_t n;
    *out = NULL;
    if (dkim_tags_parse(value, len, tags, DKIM_MAX_TAGS, &n, why) < 0)
        return -1;
    struct dkim_sig *sig = xcalloc(1, sizeof *sig);
    if (sig_fill(sig, value, tags, n, why) < 0) {
        dkim_sig_free(sig);
        return -1;
    }
    *out = sig;
    return 0;
}

void dkim_sig_free(struct dkim_sig *s)
{
    if (!s)
        return;
    for (size_t k = 0; k < s->nh; k++)
        free(s->h[k]);
    free(s->h);
    free(s->d);
    free(s->s);
    free(s->i);
    free(s->a);
    free(s);
}

const char *dkim_sig_domain(const struct dkim_sig *s)
{
    return s->d;
}

const char *dkim_sig_selector(const struct dkim_sig *s)
{
    return s->s;
}

int dkim_sig_has_l(const struct dkim_sig *s)
{
    return s->has_l;
}

/* ---- key records --------------------------------------------------------- */

static int want_sha256(void *arg, const char *p, size_t n)
{
    (void)arg;
    return item_eq(p, n, "sha256");
}

static int want_email(void *arg, const char *p, size_t n)
{
    (void)arg;
    return item_eq(p, n, "email") || item_eq(p, n, "*");
}

static int key_flag(void *arg, const char *p, size_t n)
{
    struct dkim_key *k = arg;
    if (item_eq(p, n, "y"))
        k->testing = 1;
    else if (item_eq(p, n, "s"))
        k->strict = 1;
    return 0; /* unknown flags are ignored (§3.6.1) */
}

/* A public exponent of at most 32 bits (65537, 3): a sender's DNS chooses
 * the key, and an exponent as long as the modulus (OpenSSL bounds it only
 * above 3072 bits) makes each verification cost a private key's work, on
 * smtpd's one event loop. Keys in use have 65537. */
static int rsa_exponent_sane(const EVP_PKEY *pk)
{
    BIGNUM *e = NULL;
    int ok = EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &e) == 1 && BN_num_bits(e) <= 32;
    BN_free(e);
    return ok;
}

static EVP_PKEY *decode_rsa(const unsigned char *der, size_t len)
{
    const unsigned char *p = der;
    EVP_PKEY *pk = d2i_PUBKEY(NULL, &p, (long)len);
    if (!(pk && p == der + len && EVP_PKEY_is_a(pk, "RSA"))) {
        EVP_PKEY_free(pk);
        /* The PKCS#1 RSAPublicKey that RFC 6376 §3.6.1 literally describes. */
        p = der;
        pk = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, (long)len);
        if (!(pk && p == der + len)) {
            EVP_PKEY_free(pk);
            return NULL;
        }
    }
    if (!rsa_exponent_sane(pk)) {
        EVP_PKEY_free(pk);
        return NULL;
    }
    return pk;
}

static int key_fill(struct dkim_key *key, const char *s, const struct dkim_tag *tags, size_t n,
                    char why[DKIM_REASON_MAX])
{
    const struct dkim_tag *t = dkim_tag_get(s, tags, n, "v");
    if (t && (t != &tags[0] || !dkim_tag_is(s, t, "DKIM1"))) {
        dkim_why(why, "key record v= is not DKIM1 first");
        return -1;
    }
    if ((t = dkim_tag_get(s, tags, n, "h")) && !list_each(s, t, want_sha256, NULL)) {
        dkim_why(why, "key record h= does not allow sha256");
        return -1;
    }
    if ((t = dkim_tag_get(s, tags, n, "k"))) {
        if (dkim_tag_is(s, t, "ed25519")) {
            key->is_ed25519 = 1;
        } else if (!dkim_tag_is(s, t, "rsa")) {
            dkim_why(why, "unknown key type k=%.*s", TAGV(t));
            return -1;
        }
    }
    if ((t = dkim_tag_get(s, tags, n, "s")) && !list_each(s, t, want_email, NULL)) {
        dkim_why(why, "key record service type s= excludes email");
        return -1;
    }
    if ((t = dkim_tag_get(s, tags, n, "t")))
        list_each(s, t, key_flag, key);
    if (!(t = dkim_tag_get(s, tags, n, "p"))) {
        dkim_why(why, "key record has no p= tag");
        return -1;
    }
    if (t->val_len == 0) {
        key->revoked = 1;
        return 0;
    }
    unsigned char der[DKIM_MAX_TAGLIST];
    size_t dlen;
    if (dkim_b64_decode(s + t->val, t->val_len, der, sizeof der, &dlen) < 0) {
        dkim_why(why, "key record p= is not base64");
        return -1;
    }
    if (key->is_ed25519) {
        if (dlen != 32) {
            dkim_why(why, "ed25519 key is %zu bytes, not 32 (RFC 8463)", dlen);
            return -1;
        }
        key->pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, der, 32);
    } else {
        key->pkey = decode_rsa(der, dlen);
    }
    if (!key->pkey) {
        dkim_why(why, "key record p= is not a valid %s public key%s", key->is_ed25519 ? "ed25519" : "RSA",
                 key->is_ed25519 ? "" : " (or its exponent is longer than 32 bits)");
        return -1;
    }
    return 0;
}

int dkim_key_parse(const char *txt, size_t len, struct dkim_key **out, char why[DKIM_REASON_MAX])
{
    struct dkim_tag tags[DKIM_MAX_TAGS];
    size_t n;
    *out = NULL;
    if (dkim_tags_parse(txt, len, tags, DKIM_MAX_TAGS, &n, why) < 0)
        return -1;
    struct dkim_key *k = xcalloc(1, sizeof *k);
    if (key_fill(k, txt, tags, n, why) < 0) {
        dkim_key_free(k);
        return -1;
    }
    *out = k;
    return 0;
}

void dkim_key_free(struct dkim_key *k)
{
    if (!k)
        return;
    EVP_PKEY_free(k->pkey);
    free(k);
}

int dkim_key_revoked(const struct dkim_key *k)
{
    return k->revoked;
}

int dkim_key_testing(const struct dkim_key *k)
{
    return k->testing;
}
