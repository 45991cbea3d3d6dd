/* dkim_verify: the verifier (RFC 6376 §6): signature fields found and checked
 * as soon as the header is complete, key lookups started at once, the body
 * streamed through one canonicalizer per canonicalization, a result per
 * signature when both are done. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/rsa.h>

#include "mailauth/dkim_internal.h"
#include "util/mem.h"
#include "util/strbuf.h"

enum vstate {
    V_DONE,    /* result final */
    V_WAITING, /* key lookup running */
    V_KEYED,   /* signature checked against the key; the body decides */
};

struct vsig {
    struct dkim_verify *v;
    struct dkim_sig *sig;
    struct dkim_result res;
    enum vstate state;
    struct mailauth_dns_query *q;
    unsigned char hhash[32];
    int sig_ok;
};

struct dkim_verify {
    const struct mailauth_dns *dns;
    time_t now;
    dkim_verify_cb done;
    void *arg;
    struct vsig sigs[DKIM_MAX_SIGS];
    size_t nsig;
    struct dkim_bodies bodies;
    size_t pending;
};

const char *dkim_status_name(enum dkim_status s)
{
    switch (s) {
    case DKIM_PASS: return "pass";
    case DKIM_FAIL: return "fail";
    case DKIM_NEUTRAL: return "neutral";
    case DKIM_POLICY: return "policy";
    case DKIM_TEMPERROR: return "temperror";
    case DKIM_PERMERROR: return "permerror";
    }
    return "permerror";
}

static void set(struct vsig *vs, enum dkim_status st, const char *reason)
{
    vs->res.status = st;
    dkim_why(vs->res.reason, "%s", reason);
    vs->state = V_DONE;
}

/* Copies at most size - 1 bytes, printable ASCII only (A-R values). */
static void copy_id(char *dst, size_t size, const char *src, size_t len)
{
    size_t o = 0;
    for (size_t k = 0; k < len && o + 1 < size; k++) {
        unsigned char c = (unsigned char)src[k];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            continue;
        dst[o++] = c > 0x20 && c < 0x7f ? (char)c : '?';
    }
    dst[o] = '\0';
}

/* For a signature that did not parse, what the tags say (best effort), so
 * Authentication-Results can still name it. */
static void ids_from_tags(struct dkim_result *r, const char *val, size_t len)
{
    struct dkim_tag tags[DKIM_MAX_TAGS];
    size_t n;
    char why[DKIM_REASON_MAX];
    if (dkim_tags_parse(val, len, tags, DKIM_MAX_TAGS, &n, why) < 0)
        return;
    for (size_t k = 0; k < n; k++) {
        const char *name = val + tags[k].name;
        const char *p = val + tags[k].val;
        size_t l = tags[k].val_len;
        if (tags[k].name_len == 1 && name[0] == 'd')
            copy_id(r->d, sizeof r->d, p, l);
        else if (tags[k].name_len == 1 && name[0] == 's')
            copy_id(r->s, sizeof r->s, p, l);
        else if (tags[k].name_len == 1 && name[0] == 'i')
            copy_id(r->i, sizeof r->i, p, l);
        else if (tags[k].name_len == 1 && name[0] == 'a')
            copy_id(r->a, sizeof r->a, p, l);
        else if (tags[k].name_len == 1 && name[0] == 'b')
            copy_id(r->b, sizeof r->b, p, l);
    }
    if (!r->i[0] && r->d[0])
        snprintf(r->i, sizeof r->i, "@%s", r->d);
}

static void finalize(struct dkim_verify *v)
{
    for (size_t k = 0; k < v->nsig; k++) {
        struct vsig *vs = &v->sigs[k];
        if (vs->state != V_KEYED)
            continue;
        if (memcmp(vs->sig->bh, v->bodies.hash[vs->sig->bcanon], 32) != 0)
            set(vs, DKIM_FAIL, "body hash mismatch");
        else if (!vs->sig_ok)
            set(vs, DKIM_FAIL, "signature mismatch");
        else
            set(vs, DKIM_PASS, "");
    }
}

int dkim_sig_verify_hash(enum dkim_alg alg, EVP_PKEY *pk, const unsigned char *sig, size_t siglen,
                         const unsigned char hash[32])
{
    int ok = 0;
    if (alg == DKIM_ALG_ED25519_SHA256) {
        /* RFC 8463 §3: PureEd25519 over the SHA-256 of the header data. */
        EVP_MD_CTX *m = EVP_MD_CTX_new();
        ok = m && EVP_DigestVerifyInit(m, NULL, NULL, NULL, pk) == 1 && EVP_DigestVerify(m, sig, siglen, hash, 32) == 1;
        EVP_MD_CTX_free(m);
    } else {
        EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
        ok = c && EVP_PKEY_verify_init(c) == 1 && EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) == 1 &&
             EVP_PKEY_CTX_set_signature_md(c, EVP_sha256()) == 1 && EVP_PKEY_verify(c, sig, siglen, hash, 32) == 1;
        EVP_PKEY_CTX_free(c);
    }
    return ok;
}

/* One TXT record's strings, concatenated (RFC 6376 §3.6.2.2), as a key. */
static int parse_rr(const struct dns_rr *rr, struct dkim_key **key, char why[DKIM_REASON_MAX])
{
    struct strbuf txt = STRBUF_INIT;
    if (dns_txt_text(rr, DKIM_MAX_TAGLIST, &txt) != 0) {
        strbuf_free(&txt);
        dkim_why(why, "malformed or too long TXT record");
        return -1;
    }
    int r = dkim_key_parse(txt.len ? txt.buf : "", txt.len, key, why);
    strbuf_free(&txt);
    return r;
}

int dkim_key_from_rrset(const struct dns_rrset *rs, struct dkim_key **key, char why[DKIM_REASON_MAX])
{
    char one[DKIM_REASON_MAX];
    *key = NULL;
    why[0] = '\0';
    for (size_t i = 0; i < rs->nrrs && !*key && i < 16; i++) {
        if (parse_rr(&rs->rrs[i], key, one) < 0 && !why[0])
            dkim_why(why, "%s", one);
    }
    return *key ? 0 : -1;
}

/* The key record arrived: judge it, and check the signature with it. */
static void use_key(struct vsig *vs, const struct dns_rrset *rs)
{
    char why[DKIM_REASON_MAX], msg[DKIM_REASON_MAX + 32];
    if (rs->status == DNS_TEMPFAIL) {
        snprintf(msg, sizeof msg, "key lookup failed: %s", rs->why ? rs->why : "temporary DNS failure");
        set(vs, DKIM_TEMPERROR, msg);
        return;
    }
    if (rs->status != DNS_OK || rs->nrrs == 0) {
        set(vs, DKIM_PERMERROR, "no key record");
        return;
    }
    /* RFC 6376 leaves several TXT records undefined (§3.6.2.2) and lets the
     * verifier choose (§6.1.2 step 4): the first that is a key record is
     * used, so unrelated TXT data at the name does not hide the key; with
     * none, the first one's fault is reported. */
    struct dkim_key *key = NULL;
    if (dkim_key_from_rrset(rs, &key, why) < 0) {
        snprintf(msg, sizeof msg, "bad key record: %s", why);
        set(vs, DKIM_PERMERROR, msg);
        return;
    }
    vs->res.testing = key->testing;
    if (key->revoked) {
        set(vs, DKIM_PERMERROR, "key revoked (empty p=)");
    } else if (key->is_ed25519 != (vs->sig->alg == DKIM_ALG_ED25519_SHA256)) {
        set(vs, DKIM_PERMERROR, "key type does not match a=");
    } else if (key->strict && vs->sig->i && strcasecmp(strrchr(vs->sig->i, '@') + 1, vs->sig->d) != 0) {
        set(vs, DKIM_PERMERROR, "key t=s, but i= is a subdomain of d=");
    } else if (!key->is_ed25519 && EVP_PKEY_get_bits(key->pkey) < DKIM_RSA_MIN_BITS) {
        snprintf(msg, sizeof msg, "key too short (%d bits, RFC 8301 wants 1024)", EVP_PKEY_get_bits(key->pkey));
        set(vs, DKIM_FAIL, msg);
    } else if (!key->is_ed25519 && EVP_PKEY_get_bits(key->pkey) > DKIM_RSA_MAX_BITS) {
        snprintf(msg, sizeof msg, "key too long (%d bits, at most %d)", EVP_PKEY_get_bits(key->pkey),
                 DKIM_RSA_MAX_BITS);
        set(vs, DKIM_PERMERROR, msg);
    } else {
        vs->sig_ok = dkim_sig_verify_hash(vs->sig->alg, key->pkey, vs->sig->b, vs->sig->blen, vs->hhash);
        vs->state = V_KEYED;
    }
    dkim_key_free(key);
}

static void key_cb(void *arg, struct dns_rrset *rs)
{
    struct vsig *vs = arg;
    struct dkim_verify *v = vs->v;
    vs->q = NULL;
    use_key(vs, rs);
    dns_rrset_free(rs);
    v->pending--;
    if (v->bodies.ended && v->pending == 0) {
        finalize(v);
        v->done(v->arg, v); /* last: done may free v */
    }
}

static void start(struct dkim_verify *v, struct vsig *vs, struct dkim_fields *fs, const struct dkim_field *f)
{
    size_t voff = (size_t)((const char *)memchr(f->p, ':', f->len) - f->p) + 1;
    const char *val = f->p + voff;
    size_t vlen = f->len - voff;
    char why[DKIM_REASON_MAX];
    vs->v = v;
    vs->res.status = DKIM_NEUTRAL;
    if (dkim_sig_parse(val, vlen, &vs->sig, why) < 0) {
        ids_from_tags(&vs->res, val, vlen);
        set(vs, DKIM_NEUTRAL, why);
        return;
    }
    struct dkim_sig *s = vs->sig;
    struct dkim_result *r = &vs->res;
    copy_id(r->d, sizeof r->d, s->d, strlen(s->d));
    copy_id(r->s, sizeof r->s, s->s, strlen(s->s));
    copy_id(r->a, sizeof r->a, s->a, strlen(s->a));
    if (s->i)
        copy_id(r->i, sizeof r->i, s->i, strlen(s->i));
    else
        snprintf(r->i, sizeof r->i, "@%s", r->d);
    memcpy(r->b, s->b64, sizeof r->b);
    if (s->has_l) {
        set(vs, DKIM_POLICY, "l= limits the signed body: content may be appended, not trusted");
        return;
    }
    if (s->has_x && (unsigned long long)v->now > s->x) {
        set(vs, DKIM_POLICY, "signature expired (x=)");
        return;
    }
    if (s->has_t && s->t > (unsigned long long)v->now + DKIM_CLOCK_SKEW) {
        set(vs, DKIM_POLICY, "signature timestamp t= in the future");
        return;
    }
    dkim_header_hash(s->hcanon, fs, s->h, s->nh, f->p, f->len, voff + s->b_raw, s->b_raw_len, vs->hhash);
    dkim_bodies_need(&v->bodies, s->bcanon);
    char name[600];
    snprintf(name, sizeof name, "%s._domainkey.%s", s->s, s->d);
    vs->state = V_WAITING;
    v->pending++;
    vs->q = mailauth_dns_lookup(v->dns, name, DNS_TYPE_TXT, key_cb, vs);
}

struct dkim_verify *dkim_verify_new(const struct mailauth_dns *dns, const char *hdr, size_t len, time_t now,
                                    dkim_verify_cb done, void *arg)
{
    struct dkim_verify *v = xcalloc(1, sizeof *v);
    v->dns = dns;
    v->now = now;
    v->done = done;
    v->arg = arg;
    struct dkim_fields fs;
    dkim_fields_split(hdr, len, &fs);
    for (size_t k = 0; k < fs.n && v->nsig < DKIM_MAX_SIGS; k++)
        if (dkim_field_is(&fs.f[k], "dkim-signature"))
            start(v, &v->sigs[v->nsig++], &fs, &fs.f[k]);
    dkim_fields_free(&fs);
    return v;
}

void dkim_verify_body(struct dkim_verify *v, const void *data, size_t len)
{
    dkim_bodies_update(&v->bodies, data, len);
}

int dkim_verify_end(struct dkim_verify *v)
{
    dkim_bodies_end(&v->bodies);
    if (v->pending > 0)
        return 0;
    finalize(v);
    return 1;
}

size_t dkim_verify_count(const struct dkim_verify *v)
{
    return v->nsig;
}

const struct dkim_result *dkim_verify_result(const struct dkim_verify *v, size_t i)
{
    return i < v->nsig ? &v->sigs[i].res : NULL;
}

void dkim_verify_free(struct dkim_verify *v)
{
    if (!v)
        return;
    for (size_t k = 0; k < v->nsig; k++) {
        if (v->sigs[k].q)
            mailauth_dns_cancel(v->dns, v->sigs[k].q);
        dkim_sig_free(v->sigs[k].sig);
    }
    dkim_bodies_free(&v->bodies);
    free(v);
}
