/* dkim_sign: the signer (RFC 6376 §5): relaxed/relaxed, t= always, never
 * l=, From oversigned; the private-key operation behind a callback; and the
 * key helpers `tern dkim keygen` uses (PEM loading, the TXT record). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "mailauth/dkim_internal.h"
#include "util/base64.h"
#include "util/mem.h"
#include "util/str.h"

#define FOLD_AT 78

const char *const dkim_default_headers[] = {
    "from", "to", "cc", "subject", "date", "message-id", "reply-to", "in-reply-to", "references",
    "mime-version", "content-type", "content-transfer-encoding", "list-id", "list-unsubscribe",
    "list-unsubscribe-post", "list-post", "list-help", "list-subscribe", "list-owner", "list-archive",
    "sender", NULL,
};

struct dkim_signer {
    char *domain, *selector, *identity, *exact;
    enum dkim_alg alg;
    char **headers;
    size_t nheaders;
    unsigned long lifetime;
    time_t now;
    struct dkim_body *body;
    int hashed;
    struct strbuf field; /* the folded field up to and including "b=" */
    size_t col;          /* the column after it */
};

/* i= must be written as is (no dkim-quoted-printable encoding here) and
 * lie within d= (RFC 6376 §3.5), or verifiers refuse the signature. */
static int valid_identity(const char *s, const char *domain)
{
    const char *at = strrchr(s, '@');
    if (!at || strlen(s) > 255)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= 0x20 || *p == ';' || *p == '=' || *p >= 0x7f)
            return 0;
    size_t la = strlen(at + 1), ld = strlen(domain);
    return la >= ld && strcasecmp(at + 1 + la - ld, domain) == 0 && (la == ld || at[la - ld] == '.');
}

/* A field name for h= (RFC 5322 ftext), or with spaces and colons an
 * exact list; never ';' or a line break, which would end the tag. */
static int valid_names(const char *s, int list)
{
    if (!*s || strlen(s) > DKIM_MAX_TAGLIST / 4)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (list && (*p == ' ' || *p == ':'))
            continue;
        if (*p < 0x21 || *p > 0x7e || *p == ':' || *p == ';')
            return 0;
    }
    return 1;
}

struct dkim_signer *dkim_signer_new(const struct dkim_sign_params *p, char **err)
{
    if (!p->domain || !dkim_valid_name(p->domain, strlen(p->domain))) {
        *err = xstrdup("dkim: the signing domain is not a valid domain name");
        return NULL;
    }
    if (!p->selector || !dkim_valid_name(p->selector, strlen(p->selector))) {
        *err = xstrdup("dkim: the selector is not a valid name");
        return NULL;
    }
    if (p->identity && !valid_identity(p->identity, p->domain)) {
        *err = xstrdup("dkim: the identity (i=) is not an address within the signing domain");
        return NULL;
    }
    if (p->header_list_exact && !valid_names(p->header_list_exact, 1)) {
        *err = xstrdup("dkim: the exact header list is not a list of field names");
        return NULL;
    }
    for (size_t k = 0; p->headers && p->headers[k]; k++) {
        if (!valid_names(p->headers[k], 0)) {
            *err = xstrdup("dkim: a header name to sign is not a field name");
            return NULL;
        }
    }
    if (p->alg != DKIM_ALG_RSA_SHA256 && p->alg != DKIM_ALG_ED25519_SHA256) {
        *err = xstrdup("dkim: unknown algorithm");
        return NULL;
    }
    struct dkim_signer *s = xcalloc(1, sizeof *s);
    s->domain = xstrdup(p->domain);
    s->selector = xstrdup(p->selector);
    s->identity = p->identity ? xstrdup(p->identity) : NULL;
    s->exact = p->header_list_exact ? xstrdup(p->header_list_exact) : NULL;
    s->alg = p->alg;
    s->lifetime = p->lifetime;
    s->now = p->now;
    const char *const *h = p->headers ? p->headers : dkim_default_headers;
    for (size_t k = 0; h[k] && s->nheaders < DKIM_MAX_SIGNED_FIELDS; k++) {
        s->headers = xrealloc(s->headers, (s->nheaders + 1) * sizeof *s->headers);
        s->headers[s->nheaders] = xstrdup(h[k]);
        str_lower(s->headers[s->nheaders++]);
    }
    s->body = dkim_body_new(DKIM_CANON_RELAXED);
    return s;
}

void dkim_signer_body(struct dkim_signer *s, const void *data, size_t len)
{
    if (!s->hashed)
        dkim_body_update(s->body, data, len);
}

/* Appends one token, after a space or, when it would pass the fold column,
 * after a line break (folding only where white space is allowed anyway). */
static void put_token(struct dkim_signer *s, const char *tok, size_t len, int first)
{
    if (!first && s->col + 1 + len > FOLD_AT) {
        strbuf_puts(&s->field, "\r\n ");
        s->col = 1;
    } else if (!first) {
        strbuf_putc(&s->field, ' ');
        s->col++;
    }
    strbuf_append(&s->field, tok, len);
    s->col += len;
}

static void put_tag(struct dkim_signer *s, const char *fmt, const char *val)
{
    char *t = xasprintf(fmt, val);
    put_token(s, t, strlen(t), 0);
    free(t);
}

/* h= names, split where the list allows white space: after each ':' (ours)
 * or at the spaces of an exact list. */
static void put_h(struct dkim_signer *s, char **names, size_t n)
{
    struct strbuf words = STRBUF_INIT;
    if (s->exact) {
        strbuf_puts(&words, "h=");
        strbuf_puts(&words, s->exact);
        strbuf_putc(&words, ';');
    } else {
        strbuf_puts(&words, "h=");
        for (size_t k = 0; k < n; k++)
            strbuf_printf(&words, "%s%s", names[k], k + 1 < n ? ": " : ";");
    }
    /* words are separated by single spaces; fold between them, but for our
     * own list the space after ':' is only a place to break, not text. */
    const char *p = words.buf;
    int first_word = 1;
    while (*p) {
        const char *e = strchr(p, ' ');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (first_word) {
            put_token(s, p, l, 0);
        } else if (s->col + (s->exact ? 1 : 0) + l > FOLD_AT) {
            strbuf_puts(&s->field, "\r\n ");
            s->col = 1;
            strbuf_append(&s->field, p, l);
            s->col += l;
        } else {
            if (s->exact) {
                strbuf_putc(&s->field, ' ');
                s->col++;
            }
            strbuf_append(&s->field, p, l);
            s->col += l;
        }
        first_word = 0;
        p += l;
        while (*p == ' ')
            p++;
    }
    strbuf_free(&words);
}

static void exact_names(const char *exact, char ***names, size_t *n)
{
    *names = NULL;
    *n = 0;
    const char *p = exact;
    while (*p && *n < DKIM_MAX_SIGNED_FIELDS) {
        const char *e = strchr(p, ':');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        const char *a = p, *b = p + l;
        while (a < b && str_is_space((unsigned char)*a))
            a++;
        while (b > a && str_is_space((unsigned char)b[-1]))
            b--;
        *names = xrealloc(*names, (*n + 1) * sizeof **names);
        (*names)[*n] = xstrndup(a, (size_t)(b - a));
        str_lower((*names)[(*n)++]);
        p += l;
        if (*p == ':')
            p++;
    }
}

int dkim_signer_hash(struct dkim_signer *s, const char *hdr, size_t len, unsigned char hash[32], char **err)
{
    struct dkim_fields fs;
    dkim_fields_split(hdr, len, &fs);
    char **names = NULL;
    size_t n = 0;
    size_t lo, hi;
    dkim_fields_named(&fs, "from", &lo, &hi);
    size_t froms = hi - lo;
    if (froms == 0 || froms >= DKIM_MAX_SIGNED_FIELDS / 2 || s->hashed) {
        dkim_fields_free(&fs);
        *err = xstrdup(s->hashed      ? "dkim: signer used twice"
                       : froms == 0 ? "dkim: the message has no From field (RFC 6376 5.4)"
                                    : "dkim: the message has too many From fields to sign");
        return -1;
    }
    if (s->exact) {
        exact_names(s->exact, &names, &n);
    } else {
        /* From first and oversigned; the others as often as they occur. */
        for (size_t j = 0; j <= froms; j++) {
            names = xrealloc(names, (n + 1) * sizeof *names);
            names[n++] = xstrdup("from");
        }
        for (size_t h = 0; h < s->nheaders; h++) {
            int seen = strcmp(s->headers[h], "from") == 0;
            for (size_t j = 0; j < h && !seen; j++)
                seen = strcmp(s->headers[j], s->headers[h]) == 0;
            if (seen) /* From is done; a name listed twice counts once */
                continue;
            dkim_fields_named(&fs, s->headers[h], &lo, &hi);
            for (size_t k = lo; k < hi && n < DKIM_MAX_SIGNED_FIELDS; k++) {
                names = xrealloc(names, (n + 1) * sizeof *names);
                names[n++] = xstrdup(s->headers[h]);
            }
        }
    }
    unsigned char bh[32];
    dkim_body_final(s->body, bh);
    s->hashed = 1;
    char bh64[64];
    base64_encode(bh, sizeof bh, bh64);

    strbuf_puts(&s->field, "DKIM-Signature:");
    s->col = strlen("DKIM-Signature:");
    put_token(s, "v=1;", 4, 0);
    put_tag(s, "a=%s;", s->alg == DKIM_ALG_RSA_SHA256 ? "rsa-sha256" : "ed25519-sha256");
    put_tag(s, "c=%s;", "relaxed/relaxed");
    put_tag(s, "d=%s;", s->domain);
    if (s->identity)
        put_tag(s, "i=%s;", s->identity);
    put_tag(s, "q=%s;", "dns/txt");
    put_tag(s, "s=%s;", s->selector);
    char num[32];
    snprintf(num, sizeof num, "%lld", (long long)s->now);
    put_tag(s, "t=%s;", num);
    if (s->lifetime) {
        snprintf(num, sizeof num, "%lld", (long long)s->now + (long long)s->lifetime);
        put_tag(s, "x=%s;", num);
    }
    put_h(s, names, n);
    put_tag(s, "bh=%s;", bh64);
    put_token(s, "b=", 2, 0);

    /* The hashed form is the field as it will be sent, b= empty. */
    dkim_header_hash(DKIM_CANON_RELAXED, &fs, names, n, s->field.buf, s->field.len, s->field.len, 0, hash);
    for (size_t k = 0; k < n; k++)
        free(names[k]);
    free(names);
    dkim_fields_free(&fs);
    return 0;
}

char *dkim_signer_field(struct dkim_signer *s, const unsigned char *sig, size_t siglen)
{
    if (!s->hashed || siglen == 0 || siglen > DKIM_SIG_MAX)
        return NULL;
    struct strbuf out = STRBUF_INIT;
    strbuf_append(&out, s->field.buf, s->field.len);
    char *b64 = xmalloc(base64_encoded_len(siglen) + 1);
    size_t n = base64_encode(sig, siglen, b64);
    size_t col = s->col;
    for (size_t k = 0; k < n;) {
        if (col >= FOLD_AT) {
            strbuf_puts(&out, "\r\n ");
            col = 1;
        }
        size_t room = FOLD_AT - col, take = n - k < room ? n - k : room;
        strbuf_append(&out, b64 + k, take);
        k += take;
        col += take;
    }
    strbuf_puts(&out, "\r\n");
    free(b64);
    return strbuf_detach(&out);
}

char *dkim_signer_finish(struct dkim_signer *s, const char *hdr, size_t len, dkim_sign_fn sign, void *arg,
                         char **err)
{
    unsigned char hash[32], sig[DKIM_SIG_MAX];
    size_t siglen = sizeof sig;
    if (dkim_signer_hash(s, hdr, len, hash, err) < 0)
        return NULL;
    if (sign(arg, hash, sig, &siglen) < 0 || siglen == 0 || siglen > sizeof sig) {
        *err = xstrdup("dkim: the private-key operation failed");
        return NULL;
    }
    return dkim_signer_field(s, sig, siglen);
}

void dkim_signer_free(struct dkim_signer *s)
{
    if (!s)
        return;
    for (size_t k = 0; k < s->nheaders; k++)
        free(s->headers[k]);
    free(s->headers);
    free(s->domain);
    free(s->selector);
    free(s->identity);
    free(s->exact);
    dkim_body_free(s->body);
    strbuf_free(&s->field);
    free(s);
}

int dkim_sign_evp(void *arg, const unsigned char hash[32], unsigned char *sig, size_t *siglen)
{
    EVP_PKEY *pk = arg;
    int ok = 0;
    if (EVP_PKEY_is_a(pk, "ED25519")) {
        EVP_MD_CTX *m = EVP_MD_CTX_new();
        ok = m && EVP_DigestSignInit(m, NULL, NULL, NULL, pk) == 1 && EVP_DigestSign(m, sig, siglen, hash, 32) == 1;
        EVP_MD_CTX_free(m);
    } else if (EVP_PKEY_is_a(pk, "RSA")) {
        EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
        ok = c && EVP_PKEY_sign_init(c) == 1 && EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) == 1 &&
             EVP_PKEY_CTX_set_signature_md(c, EVP_sha256()) == 1 && EVP_PKEY_sign(c, sig, siglen, hash, 32) == 1;
        EVP_PKEY_CTX_free(c);
    }
    return ok ? 0 : -1;
}

/* No passphrase prompt: a DKIM key file is read by a daemon. */
static int no_pass(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

EVP_PKEY *dkim_key_load_pem(const char *path, char **err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        *err = xasprintf("dkim: cannot open %s: %m", path);
        return NULL;
    }
    EVP_PKEY *pk = PEM_read_PrivateKey(f, NULL, no_pass, NULL);
    fclose(f);
    if (!pk) {
        *err = xasprintf("dkim: %s holds no PEM private key (PKCS#8 or RSA, unencrypted)", path);
        return NULL;
    }
    if (EVP_PKEY_is_a(pk, "RSA")) {
        int bits = EVP_PKEY_get_bits(pk);
        if (bits < DKIM_RSA_MIN_BITS || bits > DKIM_RSA_MAX_BITS) {
            *err = xasprintf("dkim: %s: RSA key of %d bits (1024 to 4096 allowed)", path, bits);
            EVP_PKEY_free(pk);
            return NULL;
        }
    } else if (!EVP_PKEY_is_a(pk, "ED25519")) {
        *err = xasprintf("dkim: %s: neither an RSA nor an Ed25519 key", path);
        EVP_PKEY_free(pk);
        return NULL;
    }
    return pk;
}

char *dkim_key_txt_record(EVP_PKEY *key, int split, char **err)
{
    unsigned char *der = NULL;
    size_t len = 0;
    const char *k;
    if (EVP_PKEY_is_a(key, "ED25519")) {
        k = "ed25519";
        der = xmalloc(32);
        len = 32;
        if (EVP_PKEY_get_raw_public_key(key, der, &len) != 1 || len != 32) {
            free(der);
            *err = xstrdup("dkim: cannot get the Ed25519 public key");
            return NULL;
        }
    } else if (EVP_PKEY_is_a(key, "RSA")) {
        k = "rsa";
        unsigned char *p = NULL;
        int n = i2d_PUBKEY(key, &p);
        if (n <= 0) {
            *err = xstrdup("dkim: cannot encode the RSA public key");
            return NULL;
        }
        der = xmalloc((size_t)n);
        memcpy(der, p, (size_t)n);
        OPENSSL_free(p);
        len = (size_t)n;
    } else {
        *err = xstrdup("dkim: neither an RSA nor an Ed25519 key");
        return NULL;
    }
    char *b64 = xmalloc(base64_encoded_len(len) + 1);
    base64_encode(der, len, b64);
    free(der);
    char *txt = xasprintf("v=DKIM1; k=%s; p=%s", k, b64);
    free(b64);
    if (!split)
        return txt;
    struct strbuf sb = STRBUF_INIT;
    size_t tl = strlen(txt);
    for (size_t o = 0; o < tl; o += 255) {
        size_t take = tl - o < 255 ? tl - o : 255;
        strbuf_printf(&sb, "%s\"%.*s\"", o ? " " : "", (int)take, txt + o);
    }
    free(txt);
    return strbuf_detach(&sb);
}
