/* dkim_arc: ARC chain validation (RFC 8617 §5.2), verify only. The ARC
 * fields are sorted into sets by instance and checked for structure as soon
 * as the header is complete; the newest AMS and every AS are parsed, their
 * header hashes computed and all their key lookups started at once; the
 * body streams through one canonicalizer for the newest AMS; the result is
 * decided when both are done. Shares DKIM's tag lists, canonicalization,
 * key records and signature checks (dkim_internal.h). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mailauth/dkim_internal.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

enum arc_kind { ARC_AAR, ARC_AMS, ARC_AS };

/* One signature to check against its key: an AMS or an AS. */
struct arc_check {
    struct dkim_arc_verify *v;
    struct dkim_sig *sig;         /* NULL: it did not parse (why says why) */
    unsigned inst;
    int is_seal;
    unsigned char hhash[32];
    struct mailauth_dns_query *q;
    /* Another check with the same key name, whose lookup this one waits
     * for: a chain sealed by one operator asks for one key once. */
    struct arc_check *same;
    char why[DKIM_REASON_MAX];    /* set when it failed */
};

struct dkim_arc_verify {
    const struct mailauth_dns *dns;
    time_t now;
    dkim_arc_verify_cb done;
    void *arg;
    struct dkim_arc_result res;
    int decided;                  /* res final */
    /* by instance, [0] unused: every AMS (the newest decides, the older
     * ones give oldest-pass) and every AS */
    struct arc_check ams[DKIM_ARC_MAX_SETS + 1], seal[DKIM_ARC_MAX_SETS + 1];
    unsigned n;
    struct dkim_bodies bodies;    /* as the AMSs need them */
    size_t pending;
};

const char *dkim_arc_status_name(enum dkim_arc_status s)
{
    switch (s) {
    case DKIM_ARC_NONE: return "none";
    case DKIM_ARC_PASS: return "pass";
    case DKIM_ARC_FAIL: return "fail";
    }
    return "fail";
}

static void decide(struct dkim_arc_verify *v, enum dkim_arc_status st, const char *reason)
{
    v->res.status = st;
    dkim_why(v->res.reason, "%s", reason);
    v->decided = 1;
}

/* ---- parsing ------------------------------------------------------------- */

/* An instance value (§4.2.1): 1*DIGIT in 1..50, no leading zero; 0 when
 * not one. */
static unsigned parse_instance(const char *p, size_t n)
{
    if (n == 0 || n > 2 || p[0] == '0')
        return 0;
    unsigned i = 0;
    for (size_t k = 0; k < n; k++) {
        if (!str_is_digit((unsigned char)p[k]))
            return 0;
        i = i * 10 + (unsigned)(p[k] - '0');
    }
    return i <= 50 ? i : 0;
}

static size_t skip_fws(const char *p, size_t n, size_t k)
{
    while (k < n && (p[k] == ' ' || p[k] == '\t' || p[k] == '\r' || p[k] == '\n'))
        k++;
    return k;
}

/* The instance of an AAR: "i=" 1*DIGIT ";" first (§4.1.1: arc-info =
 * instance [CFWS] ";" authres-payload), FWS allowed around the tokens;
 * 0 when it has none. */
static unsigned aar_instance(const char *p, size_t n)
{
    size_t k = skip_fws(p, n, 0);
    if (k == n || p[k] != 'i')
        return 0;
    k = skip_fws(p, n, k + 1);
    if (k == n || p[k] != '=')
        return 0;
    size_t a = k = skip_fws(p, n, k + 1);
    while (k < n && str_is_digit((unsigned char)p[k]))
        k++;
    unsigned i = parse_instance(p + a, k - a);
    k = skip_fws(p, n, k);
    return k < n && p[k] == ';' ? i : 0;
}

/* The instance of an AMS or AS, from its tag list; 0 when it has none
 * (why says so when the tag list itself is broken). */
static unsigned sig_instance(const char *val, size_t len, char why[DKIM_REASON_MAX])
{
    struct dkim_tag tags[DKIM_MAX_TAGS];
    size_t n;
    if (dkim_tags_parse(val, len, tags, DKIM_MAX_TAGS, &n, why) < 0)
        return 0;
    const struct dkim_tag *t = dkim_tag_get(val, tags, n, "i");
    return t ? parse_instance(val + t->val, t->val_len) : 0;
}

static int parse_canon(const char *p, size_t n, enum dkim_canon *c)
{
    if (n == 6 && memcmp(p, "simple", 6) == 0)
        *c = DKIM_CANON_SIMPLE;
    else if (n == 7 && memcmp(p, "relaxed", 7) == 0)
        *c = DKIM_CANON_RELAXED;
    else
        return -1;
    return 0;
}

/* h= of an AMS: colon-separated names, FWS around them ignored, empty
 * items skipped; ARC-Seal may not be signed (its b= is made after the AMS,
 * so no AMS can cover it). */
static int parse_h(struct dkim_sig *sig, const char *s, const struct dkim_tag *t, char why[DKIM_REASON_MAX])
{
    size_t k = t->val, end = t->val + t->val_len;
    while (k < end) {
        size_t a = k;
        while (k < end && s[k] != ':')
            k++;
        size_t b = k++;
        while (a < b && str_is_space((unsigned char)s[a]))
            a++;
        while (b > a && str_is_space((unsigned char)s[b - 1]))
            b--;
        if (a == b)
            continue;
        for (size_t j = a; j < b; j++) {
            if ((unsigned char)s[j] < 0x21 || (unsigned char)s[j] > 0x7e) {
                dkim_why(why, "h= is not a list of field names");
                return -1;
            }
        }
        if (sig->nh == DKIM_MAX_SIGNED_FIELDS) {
            dkim_why(why, "h= names more than %d fields", DKIM_MAX_SIGNED_FIELDS);
            return -1;
        }
        char *name = xstrndup(s + a, b - a);
        str_lower(name);
        sig->h = xrealloc(sig->h, (sig->nh + 1) * sizeof *sig->h);
        sig->h[sig->nh++] = name;
        if (strcmp(name, "arc-seal") == 0) {
            dkim_why(why, "h= signs ARC-Seal (RFC 8617 4.1.2)");
            return -1;
        }
    }
    return 0;
}

/* The tags an AMS and an AS share: i= a= b= d= s= t=. */
static int parse_common(struct dkim_sig *sig, const char *s, const struct dkim_tag *tags, size_t n,
                        char why[DKIM_REASON_MAX])
{
    static const char *const required[] = {"i", "a", "b", "d", "s"};
    for (size_t k = 0; k < sizeof required / sizeof required[0]; k++) {
        if (!dkim_tag_get(s, tags, n, required[k])) {
            dkim_why(why, "no %s= tag", required[k]);
            return -1;
        }
    }
    const struct dkim_tag *t = dkim_tag_get(s, tags, n, "a");
    sig->a = xstrndup(s + t->val, t->val_len > 31 ? 31 : t->val_len);
    if (dkim_tag_is(s, t, "rsa-sha256")) {
        sig->alg = DKIM_ALG_RSA_SHA256;
    } else if (dkim_tag_is(s, t, "ed25519-sha256")) {
        sig->alg = DKIM_ALG_ED25519_SHA256;
    } else {
        dkim_why(why, "unsupported algorithm a=%s%s", sig->a,
                 dkim_tag_is(s, t, "rsa-sha1") ? " (RFC 8301)" : "");
        return -1;
    }
    t = dkim_tag_get(s, tags, n, "b");
    sig->b_raw = t->raw_val;
    sig->b_raw_len = t->raw_len;
    if (dkim_b64_decode(s + t->val, t->val_len, sig->b, sizeof sig->b, &sig->blen) < 0) {
        dkim_why(why, "b= is not base64 of at most %d bytes", DKIM_SIG_MAX);
        return -1;
    }
    if (dkim_sig_take_ds(sig, s, tags, n, why) < 0)
        return -1;
    if ((t = dkim_tag_get(s, tags, n, "t"))) {
        if (dkim_tag_digits(s, t, 12, &sig->t) < 0) {
            dkim_why(why, "t= is not a time");
            return -1;
        }
        sig->has_t = 1;
    }
    return 0;
}

static int parse_ams(struct dkim_sig *sig, const char *s, const struct dkim_tag *tags, size_t n,
                     char why[DKIM_REASON_MAX])
{
    const struct dkim_tag *t;
    if (!(t = dkim_tag_get(s, tags, n, "bh")) || !dkim_tag_get(s, tags, n, "h")) {
        dkim_why(why, "no %s= tag", t ? "h" : "bh");
        return -1;
    }
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
            dkim_why(why, "unsupported canonicalization c=");
            return -1;
        }
    }
    if (parse_h(sig, s, dkim_tag_get(s, tags, n, "h"), why) < 0)
        return -1;
    if (dkim_tag_get(s, tags, n, "l")) {
        sig->has_l = 1;
        dkim_why(why, "l= limits the signed body");
        return -1;
    }
    if ((t = dkim_tag_get(s, tags, n, "x"))) {
        if (dkim_tag_digits(s, t, 12, &sig->x) < 0) {
            dkim_why(why, "x= is not a time");
            return -1;
        }
        sig->has_x = 1;
    }
    return 0;
}

/* Parses an AMS or AS value; the AS's cv= goes to *cv (0 none, 1 pass,
 * 2 fail). 0 with *out, or -1 with why. */
static int arc_sig_parse(const char *val, size_t len, int is_seal, int *cv, struct dkim_sig **out,
                         char why[DKIM_REASON_MAX])
{
    struct dkim_tag tags[DKIM_MAX_TAGS];
    size_t n;
    *out = NULL;
    if (dkim_tags_parse(val, len, tags, DKIM_MAX_TAGS, &n, why) < 0)
        return -1;
    struct dkim_sig *sig = xcalloc(1, sizeof *sig);
    int r = parse_common(sig, val, tags, n, why);
    if (r == 0 && !is_seal) {
        r = parse_ams(sig, val, tags, n, why);
    } else if (r == 0) {
        const struct dkim_tag *t = dkim_tag_get(val, tags, n, "cv");
        sig->hcanon = DKIM_CANON_RELAXED;
        if (dkim_tag_get(val, tags, n, "h")) {
            dkim_why(why, "h= in an ARC-Seal (RFC 8617 4.1.3)");
            r = -1;
        } else if (!t || !(dkim_tag_is(val, t, "none") || dkim_tag_is(val, t, "pass") || dkim_tag_is(val, t, "fail"))) {
            dkim_why(why, "cv= is not none, pass or fail");
            r = -1;
        } else {
            *cv = dkim_tag_is(val, t, "none") ? 0 : dkim_tag_is(val, t, "pass") ? 1 : 2;
        }
    }
    if (r < 0) {
        dkim_sig_free(sig);
        return -1;
    }
    *out = sig;
    return 0;
}

/* ---- the sets ------------------------------------------------------------ */

/* Field indexes by kind and instance, as collected from the header. */
struct arc_sets {
    size_t at[3][DKIM_ARC_MAX_SETS + 1];
    unsigned char have[3][DKIM_ARC_MAX_SETS + 1];
    unsigned n;
};

static size_t value_off(const struct dkim_field *f)
{
    return (size_t)((const char *)memchr(f->p, ':', f->len) - f->p) + 1;
}

/* Step 1 and 3 A/B of §5.2: -1 with why when the sets are not exactly one
 * each of AAR, AMS, AS for 1..N; 0 otherwise (n 0: no ARC at all). */
static int collect(const struct dkim_fields *fs, struct arc_sets *as, char why[DKIM_REASON_MAX])
{
    static const char *const names[3] = {"arc-authentication-results", "arc-message-signature", "arc-seal"};
    static const char *const shown[3] = {"ARC-Authentication-Results", "ARC-Message-Signature", "ARC-Seal"};
    size_t seen = 0;
    memset(as, 0, sizeof *as);
    for (size_t k = 0; k < fs->n; k++) {
        int kind = -1;
        for (int j = 0; j < 3 && kind < 0; j++)
            if (dkim_field_is(&fs->f[k], names[j]))
                kind = j;
        if (kind < 0)
            continue;
        if (++seen > 3 * DKIM_ARC_MAX_SETS) {
            dkim_why(why, "more than %d ARC fields", 3 * DKIM_ARC_MAX_SETS);
            return -1;
        }
        const struct dkim_field *f = &fs->f[k];
        size_t voff = value_off(f);
        char bad[DKIM_REASON_MAX] = "";
        unsigned i = kind == ARC_AAR ? aar_instance(f->p + voff, f->len - voff)
                                     : sig_instance(f->p + voff, f->len - voff, bad);
        if (i == 0) {
            if (bad[0])
                dkim_why(why, "%s: %s", shown[kind], bad);
            else
                dkim_why(why, "%s without a valid instance i=", shown[kind]);
            return -1;
        }
        if (i > DKIM_ARC_MAX_SETS) {
            dkim_why(why, "instance i=%u: more than %d ARC sets", i, DKIM_ARC_MAX_SETS);
            return -1;
        }
        if (as->have[kind][i]) {
            dkim_why(why, "two %s fields with i=%u", shown[kind], i);
            return -1;
        }
        as->have[kind][i] = 1;
        as->at[kind][i] = k;
        if (i > as->n)
            as->n = i;
    }
    for (unsigned i = 1; i <= as->n; i++) {
        for (int j = 0; j < 3; j++) {
            if (!as->have[j][i]) {
                dkim_why(why, "ARC set i=%u has no %s", i, shown[j]);
                return -1;
            }
        }
    }
    return 0;
}

/* The AS hash (§5.1.1): AAR, AMS, AS of every instance 1..i in that order,
 * relaxed; the AS of i with its b= value deleted and without its CRLF. */
static void seal_hash(const struct dkim_fields *fs, const struct arc_sets *as, unsigned i, const struct dkim_sig *sig,
                      unsigned char hash[32])
{
    struct strbuf sb = STRBUF_INIT;
    for (unsigned k = 1; k <= i; k++) {
        for (int j = 0; j < 3; j++) {
            const struct dkim_field *f = &fs->f[as->at[j][k]];
            if (j == ARC_AS && k == i)
                break;
            dkim_canon_header(DKIM_CANON_RELAXED, f->p, f->len, &sb);
        }
    }
    const struct dkim_field *f = &fs->f[as->at[ARC_AS][i]];
    size_t b_off = value_off(f) + sig->b_raw;
    struct strbuf own = STRBUF_INIT;
    strbuf_append(&own, f->p, b_off);
    strbuf_append(&own, f->p + b_off + sig->b_raw_len, f->len - b_off - sig->b_raw_len);
    dkim_canon_header(DKIM_CANON_RELAXED, own.buf, own.len, &sb);
    strbuf_free(&own);
    unsigned int hl = 32;
    EVP_Digest(sb.buf, sb.len - 2, hash, &hl, EVP_sha256(), NULL);
    strbuf_free(&sb);
}

/* ---- keys and the result ------------------------------------------------- */

/* fmt has one %s; dkim_why cuts what does not fit and keeps it printable. */
static void check_fail(struct arc_check *c, const char *fmt, const char *arg)
{
    dkim_why(c->why, fmt, arg);
}

static void use_key(struct arc_check *c, const struct dns_rrset *rs)
{
    char why[DKIM_REASON_MAX];
    struct dkim_key *key = NULL;
    if (rs->status == DNS_TEMPFAIL) {
        /* §5.2.1: all failures are permanent, DNS ones too. */
        check_fail(c, "key lookup failed: %s", rs->why ? rs->why : "temporary DNS failure");
        return;
    }
    if (rs->status != DNS_OK || rs->nrrs == 0) {
        check_fail(c, "%s", "no key record");
        return;
    }
    if (dkim_key_from_rrset(rs, &key, why) < 0) {
        check_fail(c, "bad key record: %s", why);
        return;
    }
    if (key->revoked)
        check_fail(c, "%s", "key revoked (empty p=)");
    else if (key->is_ed25519 != (c->sig->alg == DKIM_ALG_ED25519_SHA256))
        check_fail(c, "%s", "key type does not match a=");
    else if (!key->is_ed25519 && EVP_PKEY_get_bits(key->pkey) < DKIM_RSA_MIN_BITS)
        check_fail(c, "%s", "RSA key shorter than 1024 bits (RFC 8301)");
    else if (!key->is_ed25519 && EVP_PKEY_get_bits(key->pkey) > DKIM_RSA_MAX_BITS)
        check_fail(c, "%s", "RSA key longer than 4096 bits");
    else if (!dkim_sig_verify_hash(c->sig->alg, key->pkey, c->sig->b, c->sig->blen, c->hhash))
        check_fail(c, "%s", "signature mismatch");
    dkim_key_free(key);
}

static const char *kind_name(const struct arc_check *c)
{
    return c->is_seal ? "ARC-Seal" : "ARC-Message-Signature";
}

/* Steps 4 to 6 of §5.2: the newest AMS, the older ones for oldest-pass,
 * then the seals from N down. */
static void finalize(struct dkim_arc_verify *v)
{
    if (v->decided)
        return;
    for (unsigned i = 1; i <= v->n; i++) {
        struct arc_check *c = &v->ams[i];
        if (c->sig && !c->why[0] && memcmp(c->sig->bh, v->bodies.hash[c->sig->bcanon], 32) != 0)
            dkim_why(c->why, "body hash mismatch");
    }
    for (unsigned k = 0; k <= v->n; k++) {
        struct arc_check *c = k == 0 ? &v->ams[v->n] : &v->seal[v->n + 1 - k];
        if (c->why[0]) {
            /* dkim_why: a reason that does not fit is cut, not refused */
            dkim_why(v->res.reason, "%s i=%u: %s", kind_name(c), c->inst, c->why);
            v->res.status = DKIM_ARC_FAIL;
            v->decided = 1;
            return;
        }
    }
    v->res.oldest_pass = 0;
    for (unsigned m = v->n - 1; m >= 1; m--) {
        if (v->ams[m].why[0]) {
            v->res.oldest_pass = m + 1;
            break;
        }
    }
    decide(v, DKIM_ARC_PASS, "");
}

static void key_cb(void *arg, struct dns_rrset *rs)
{
    struct arc_check *c = arg;
    struct dkim_arc_verify *v = c->v;
    c->q = NULL;
    use_key(c, rs);
    for (unsigned i = 1; i <= v->n; i++) {
        if (v->ams[i].same == c)
            use_key(&v->ams[i], rs);
        if (v->seal[i].same == c)
            use_key(&v->seal[i], rs);
    }
    dns_rrset_free(rs);
    v->pending--;
    if (v->bodies.ended && v->pending == 0) {
        finalize(v);
        v->done(v->arg, v); /* last: done may free v */
    }
}

static int same_key(const struct dkim_sig *a, const struct dkim_sig *b)
{
    return strcasecmp(a->s, b->s) == 0 && strcasecmp(a->d, b->d) == 0;
}

/* Starts c's key lookup, or joins one started before it (in the order
 * dkim_arc_verify_new starts them: seal i, then AMS i) for the same name. */
static void lookup(struct dkim_arc_verify *v, struct arc_check *c)
{
    for (unsigned i = 1; i <= v->n; i++) {
        struct arc_check *o[2] = {&v->seal[i], &v->ams[i]};
        for (int j = 0; j < 2; j++) {
            if (o[j] == c) {
                i = v->n; /* only the checks started before c */
                break;
            }
            if (o[j]->sig && !o[j]->why[0] && !o[j]->same && same_key(o[j]->sig, c->sig)) {
                c->same = o[j];
                return;
            }
        }
    }
    char name[600];
    snprintf(name, sizeof name, "%s._domainkey.%s", c->sig->s, c->sig->d);
    v->pending++;
    c->q = mailauth_dns_lookup(v->dns, name, DNS_TYPE_TXT, key_cb, c);
}

/* Parses the seals and the AMSs, computes their hashes; 0, or -1 with why
 * (the chain fails before any lookup). An older AMS that does not parse
 * only ends oldest-pass there. */
static int prepare(struct dkim_arc_verify *v, struct dkim_fields *fs, const struct arc_sets *as,
                   char why[DKIM_REASON_MAX])
{
    char one[DKIM_REASON_MAX];
    unsigned n = as->n;
    for (unsigned i = 1; i <= n; i++) {
        struct arc_check *c = &v->seal[i];
        const struct dkim_field *f = &fs->f[as->at[ARC_AS][i]];
        size_t voff = value_off(f);
        int cv = 0;
        if (arc_sig_parse(f->p + voff, f->len - voff, 1, &cv, &c->sig, one) < 0) {
            dkim_why(why, "ARC-Seal i=%u: %s", i, one);
            return -1;
        }
        if (i == n) {
            snprintf(v->res.d, sizeof v->res.d, "%s", c->sig->d);
            snprintf(v->res.s, sizeof v->res.s, "%s", c->sig->s);
        }
        /* §5.2 steps 2 and 3 C */
        if (cv == 2) {
            dkim_why(why, "ARC-Seal i=%u says cv=fail", i);
            return -1;
        }
        if (cv != (i > 1)) {
            dkim_why(why, "ARC-Seal i=%u: cv=%s, want %s", i, cv ? "pass" : "none", i > 1 ? "pass" : "none");
            return -1;
        }
        seal_hash(fs, as, i, c->sig, c->hhash);
    }
    for (unsigned i = n; i >= 1; i--) {
        struct arc_check *c = &v->ams[i];
        const struct dkim_field *f = &fs->f[as->at[ARC_AMS][i]];
        size_t voff = value_off(f);
        if (arc_sig_parse(f->p + voff, f->len - voff, 0, NULL, &c->sig, one) < 0) {
            if (i == n) {
                dkim_why(why, "ARC-Message-Signature i=%u: %s", i, one);
                return -1;
            }
            dkim_why(c->why, "%s", one);
            continue;
        }
        if (c->sig->has_x && (unsigned long long)v->now > c->sig->x) {
            if (i == n) {
                dkim_why(why, "ARC-Message-Signature i=%u: expired (x=)", i);
                return -1;
            }
            dkim_why(c->why, "expired (x=)");
            continue;
        }
        dkim_header_hash(c->sig->hcanon, fs, c->sig->h, c->sig->nh, f->p, f->len, voff + c->sig->b_raw,
                         c->sig->b_raw_len, c->hhash);
        dkim_bodies_need(&v->bodies, c->sig->bcanon);
    }
    return 0;
}

struct dkim_arc_verify *dkim_arc_verify_new(const struct mailauth_dns *dns, const char *hdr, size_t len, time_t now,
                                            dkim_arc_verify_cb done, void *arg)
{
    struct dkim_arc_verify *v = xcalloc(1, sizeof *v);
    v->dns = dns;
    v->now = now;
    v->done = done;
    v->arg = arg;
    struct dkim_fields fs;
    struct arc_sets as;
    char why[DKIM_REASON_MAX];
    dkim_fields_split(hdr, len, &fs);
    if (collect(&fs, &as, why) < 0) {
        decide(v, DKIM_ARC_FAIL, why);
    } else if (as.n == 0) {
        decide(v, DKIM_ARC_NONE, "");
    } else {
        v->n = v->res.instances = as.n;
        for (unsigned i = 1; i <= as.n; i++) {
            v->ams[i] = (struct arc_check){.v = v, .inst = i};
            v->seal[i] = (struct arc_check){.v = v, .inst = i, .is_seal = 1};
        }
        if (prepare(v, &fs, &as, why) < 0) {
            decide(v, DKIM_ARC_FAIL, why);
        } else {
            for (unsigned i = 1; i <= as.n; i++) {
                lookup(v, &v->seal[i]);
                if (v->ams[i].sig)
                    lookup(v, &v->ams[i]);
            }
        }
    }
    dkim_fields_free(&fs);
    return v;
}

void dkim_arc_verify_body(struct dkim_arc_verify *v, const void *data, size_t len)
{
    dkim_bodies_update(&v->bodies, data, len);
}

int dkim_arc_verify_end(struct dkim_arc_verify *v)
{
    dkim_bodies_end(&v->bodies);
    if (v->pending > 0)
        return 0;
    finalize(v);
    return 1;
}

const struct dkim_arc_result *dkim_arc_verify_result(const struct dkim_arc_verify *v)
{
    return &v->res;
}

void dkim_arc_verify_free(struct dkim_arc_verify *v)
{
    if (!v)
        return;
    for (unsigned i = 1; i <= DKIM_ARC_MAX_SETS; i++) {
        struct arc_check *c[2] = {&v->ams[i], &v->seal[i]};
        for (int j = 0; j < 2; j++) {
            if (c[j]->q)
                mailauth_dns_cancel(v->dns, c[j]->q);
            dkim_sig_free(c[j]->sig);
        }
    }
    dkim_bodies_free(&v->bodies);
    free(v);
}
