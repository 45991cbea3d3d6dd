/* tls: OpenSSL contexts for the SMTP server (see tls.h). */
#include "tls/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf.h"
#include "maps/map.h"
#include "tls/tls_keyclient.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/strbuf.h"

static const struct {
    const char *name;
    int version;
} versions[] = {
    {"SSLv2", 0x0200}, {"SSLv3", SSL3_VERSION}, {"TLSv1", TLS1_VERSION},
    {"TLSv1.1", TLS1_1_VERSION}, {"TLSv1.2", TLS1_2_VERSION}, {"TLSv1.3", TLS1_3_VERSION},
};
#define NVERSIONS (sizeof versions / sizeof versions[0])

static int version_index(const char *name, size_t len)
{
    for (size_t i = 0; i < NVERSIONS; i++)
        if (strlen(versions[i].name) == len && strncasecmp(versions[i].name, name, len) == 0)
            return (int)i;
    return -1;
}

/* Postfix's forms: "!SSLv2, !SSLv3" (exclusions), "TLSv1.2 TLSv1.3"
 * (inclusions), ">=TLSv1.2" and "<=TLSv1.3" (bounds). */
static int allowed_versions(const char *list, int allowed[NVERSIONS], const char **bad)
{
    int any_include = 0, include[NVERSIONS] = {0};
    for (size_t i = 0; i < NVERSIONS; i++)
        allowed[i] = 1;
    static char badbuf[64];
    const char *p = list;
    while (*p) {
        while (*p == ',' || *p == ' ' || *p == '\t' || *p == ':')
            p++;
        if (!*p)
            break;
        const char *w = p;
        while (*p && *p != ',' && *p != ' ' && *p != '\t' && *p != ':')
            p++;
        size_t len = (size_t)(p - w);
        int neg = 0, ge = 0, le = 0;
        if (w[0] == '!')
            neg = 1, w++, len--;
        else if (len > 2 && w[0] == '>' && w[1] == '=')
            ge = 1, w += 2, len -= 2;
        else if (len > 2 && w[0] == '<' && w[1] == '=')
            le = 1, w += 2, len -= 2;
        int idx = version_index(w, len);
        if (idx < 0) {
            snprintf(badbuf, sizeof badbuf, "%.*s", (int)(len < 40 ? len : 40), w);
            *bad = badbuf;
            return -1;
        }
        if (neg) {
            allowed[idx] = 0;
        } else if (ge) {
            for (int i = 0; i < idx; i++)
                allowed[i] = 0;
        } else if (le) {
            for (size_t i = (size_t)idx + 1; i < NVERSIONS; i++)
                allowed[i] = 0;
        } else {
            any_include = 1;
            include[idx] = 1;
        }
    }
    if (any_include)
        for (size_t i = 0; i < NVERSIONS; i++)
            allowed[i] = allowed[i] && include[i];
    return 0;
}

int tls_min_version(const char *list, const char **bad)
{
    int allowed[NVERSIONS];
    if (allowed_versions(list, allowed, bad) != 0)
        return -1;
    /* SSLv2 and SSLv3 are never spoken, whatever the list says. */
    for (size_t i = 2; i < NVERSIONS; i++)
        if (allowed[i])
            return versions[i].version;
    *bad = "(no protocol left)";
    return -1;
}

static int max_version(const char *list)
{
    int allowed[NVERSIONS];
    const char *bad;
    if (allowed_versions(list, allowed, &bad) != 0)
        return 0;
    for (size_t i = NVERSIONS; i-- > 2;)
        if (allowed[i])
            return versions[i].version;
    return 0;
}

const char *tls_error_text(unsigned long e, char *buf, size_t len)
{
    if (e == 0) {
        snprintf(buf, len, "unknown error");
        return buf;
    }
    ERR_error_string_n(e, buf, len);
    return buf;
}

static char *ssl_err(const char *what, const char *file)
{
    char buf[256];
    unsigned long e = ERR_peek_last_error();
    tls_error_text(e, buf, sizeof buf);
    ERR_clear_error();
    return file ? xasprintf("%s %s: %s", what, file, buf) : xasprintf("%s: %s", what, buf);
}

enum tls_level tls_server_level(struct conf *c)
{
    if (conf_bool(c, "smtpd_tls_wrappermode"))
        return TLS_LEVEL_ENCRYPT;
    const char *v = conf_str(c, "smtpd_tls_security_level");
    if (strcasecmp(v, "encrypt") == 0)
        return TLS_LEVEL_ENCRYPT;
    if (strcasecmp(v, "may") == 0)
        return TLS_LEVEL_MAY;
    return TLS_LEVEL_NONE;
}

/* ---- certificates here, private keys in the key process ---- */

void tls_keyring_free(struct tls_keyring *k)
{
    for (size_t i = 0; i < k->n; i++) {
        free(k->e[i].key_file);
        free(k->e[i].cert_file);
        free(k->e[i].label);
    }
    free(k->e);
    k->e = NULL;
    k->n = 0;
}

int tls_key_id(EVP_PKEY *key, char id[65])
{
    unsigned char *der = NULL;
    int len = i2d_PUBKEY(key, &der);
    unsigned char md[32];
    unsigned int mdlen = 0;
    int ok = len > 0 && EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL) == 1 && mdlen == 32;
    OPENSSL_free(der);
    if (!ok)
        return -1;
    for (int i = 0; i < 32; i++)
        snprintf(id + 2 * i, 3, "%02x", md[i]);
    return 0;
}

/* The certificates of a file, never its private key: a chain file holds
 * both, and whatever the master reads stays in the memory smtpd inherits.
 * The file is read here and wiped; only its CERTIFICATE blocks go on to
 * OpenSSL. NULL with errno. */
static BIO *read_certificates_only(const char *file)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    /* one buffer of the file's size: a growing one would leave copies behind */
    struct stat sb;
    if (fstat(fd, &sb) != 0 || sb.st_size > 1024 * 1024) {
        int saved = sb.st_size > 1024 * 1024 ? EFBIG : errno;
        close(fd);
        errno = saved;
        return NULL;
    }
    size_t size = (size_t)sb.st_size, got = 0;
    char *text = xmalloc(size + 1);
    ssize_t n = 0;
    while (got < size && (n = read(fd, text + got, size - got)) > 0)
        got += (size_t)n;
    int saved = errno;
    close(fd);
    text[got] = '\0';
    if (n < 0) {
        OPENSSL_cleanse(text, size + 1);
        free(text);
        errno = saved;
        return NULL;
    }
    struct strbuf certs = STRBUF_INIT;
    static const char begin[] = "-----BEGIN CERTIFICATE-----", end[] = "-----END CERTIFICATE-----";
    const char *p = text;
    const char *b;
    while ((b = strstr(p, begin)) != NULL) {
        const char *e = strstr(b, end);
        if (!e)
            break;
        e += sizeof end - 1;
        strbuf_append(&certs, b, (size_t)(e - b));
        strbuf_puts(&certs, "\n");
        p = e;
    }
    OPENSSL_cleanse(text, size + 1);
    free(text);
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio && certs.len && BIO_write(bio, certs.buf, (int)certs.len) != (int)certs.len) {
        BIO_free(bio);
        bio = NULL;
    }
    strbuf_free(&certs);
    if (!bio)
        errno = ENOMEM;
    return bio;
}

/* The leaf certificate and its chain, as SSL_CTX_use_certificate_chain_file
 * would load them. */
static int load_certificates(SSL_CTX *ctx, const char *file, char **err)
{
    BIO *bio = read_certificates_only(file);
    if (!bio) {
        *err = xasprintf("cannot load the certificate chain from %s: %s", file, strerror(errno));
        return -1;
    }
    X509 *leaf = PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL);
    int rc = leaf && SSL_CTX_use_certificate(ctx, leaf) == 1 ? 0 : -1;
    X509_free(leaf);
    if (rc == 0 && SSL_CTX_clear_chain_certs(ctx) != 1)
        rc = -1;
    X509 *ca;
    while (rc == 0 && (ca = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
        if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
            X509_free(ca);
            rc = -1;
        }
    BIO_free(bio);
    if (rc != 0) {
        *err = ssl_err("cannot load the certificate chain from", file);
        return -1;
    }
    ERR_clear_error(); /* the end of the file */
    return 0;
}

/* Some cipher of ctx takes the key exchange from the RSA key itself. */
static int offers_static_rsa(SSL_CTX *ctx)
{
    STACK_OF(SSL_CIPHER) *ciphers = SSL_CTX_get_ciphers(ctx);
    for (int i = 0; i < sk_SSL_CIPHER_num(ciphers); i++)
        if (SSL_CIPHER_get_kx_nid(sk_SSL_CIPHER_value(ciphers, i)) == NID_kx_rsa)
            return 1;
    return 0;
}

static void keyring_add(struct tls_keyring *keys, const char *id, const char *key, const char *cert,
                        const char *label)
{
    for (size_t i = 0; i < keys->n; i++)
        if (strcmp(keys->e[i].id, id) == 0 && strcmp(keys->e[i].key_file, key) == 0)
            return;
    keys->e = xrealloc(keys->e, (keys->n + 1) * sizeof *keys->e);
    struct tls_keyring_entry *e = &keys->e[keys->n++];
    memcpy(e->id, id, sizeof e->id);
    e->key_file = xstrdup(key);
    e->cert_file = xstrdup(cert);
    e->label = xstrdup(label);
}

/* The exceptions, loaded into the context (and so into smtpd) as before the
 * key process, with a warning that says why:
 * - static RSA key exchange decrypts with the private key, and OpenSSL 3.0
 *   does that only with a key it holds itself (it passes the TLS version
 *   checks as provider parameters, which a key with an RSA_METHOD cannot
 *   take): a context that offers it (smtpd_tls_exclude_ciphers without
 *   kRSA, not the default) keeps its RSA key;
 * - a key that is neither RSA nor EC (Ed25519, Ed448) has no stub yet. */
static int load_pair_in_process(SSL_CTX *ctx, const char *cert, const char *key, const char *label,
                                const char *why, char **err)
{
    log_warn("%s: %s, so the private key %s is loaded into smtpd instead of the key process", label, why, key);
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        *err = ssl_err("cannot load the private key from", key);
        return -1;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        *err = ssl_err("the private key does not match the certificate in", cert);
        return -1;
    }
    return 0;
}

/* The certificate from cert, and for its key a stub whose private half is
 * key's, read by the key process (which checks that they match). */
static int load_pair(SSL_CTX *ctx, const char *cert, const char *key, const char *label, struct tls_keyring *keys,
                     char **err)
{
    if (load_certificates(ctx, cert, err) != 0)
        return -1;
    EVP_PKEY *pub = SSL_CTX_get0_certificate(ctx) ? X509_get0_pubkey(SSL_CTX_get0_certificate(ctx)) : NULL;
    if (pub && EVP_PKEY_is_a(pub, "RSA") && offers_static_rsa(ctx))
        return load_pair_in_process(ctx, cert, key, label,
                                    "static RSA key exchange is offered (smtpd_tls_exclude_ciphers)", err);
    if (pub && !EVP_PKEY_is_a(pub, "RSA") && !EVP_PKEY_is_a(pub, "EC")) {
        const char *type = EVP_PKEY_get0_type_name(pub);
        char *why = xasprintf("the key process does not handle %s keys yet", type ? type : "such");
        int rc = load_pair_in_process(ctx, cert, key, label, why, err);
        free(why);
        return rc;
    }
    char id[65];
    EVP_PKEY *stub = pub && tls_key_id(pub, id) == 0 ? tls_keyclient_stub(pub, id) : NULL;
    if (!stub) {
        *err = xasprintf("cannot use the public key of the certificate in %s", cert);
        return -1;
    }
    int rc = SSL_CTX_use_PrivateKey(ctx, stub);
    EVP_PKEY_free(stub);
    if (rc != 1) {
        *err = ssl_err("the private key does not match the certificate in", cert);
        return -1;
    }
    keyring_add(keys, id, key, cert, label);
    return 0;
}

/* smtpd_tls_chain_files: each file holds a key and its certificate chain
 * (Postfix 3.4's form); several files give several key types. */
static int load_chain_files(SSL_CTX *ctx, struct conf *c, const char *label, struct tls_keyring *keys, char **err)
{
    struct conf_list l = conf_list(c, "smtpd_tls_chain_files");
    int rc = 0;
    for (size_t i = 0; i < l.n && rc == 0; i++)
        rc = load_pair(ctx, l.items[i], l.items[i], label, keys, err);
    conf_list_free(&l);
    return rc;
}

/* ---- SNI (tls_server_sni_maps): one context per name, all loaded here ---- */

struct sni_entry {
    char *name;      /* lower case; ".example.com" stands for its subdomains */
    SSL_CTX *ctx;
};

struct sni_table {
    struct sni_entry *e;
    size_t n;
};

static int sni_index = -1;

static void sni_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    struct sni_table *t = ptr;
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->e[i].name);
        SSL_CTX_free(t->e[i].ctx);
    }
    free(t->e);
    free(t);
}

static SSL_CTX *sni_find(const struct sni_table *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcasecmp(t->e[i].name, name) == 0)
            return t->e[i].ctx;
    /* the parents: ".example.com" for "mail.example.com" */
    for (const char *p = strchr(name, '.'); p; p = strchr(p + 1, '.'))
        for (size_t i = 0; i < t->n; i++)
            if (strcasecmp(t->e[i].name, p) == 0)
                return t->e[i].ctx;
    return NULL;
}

static int on_servername(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    const struct sni_table *t = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    SSL_CTX *ctx = name ? sni_find(t, name) : NULL;
    if (ctx)
        SSL_set_SSL_CTX(ssl, ctx);
    return SSL_TLSEXT_ERR_OK;   /* unknown names get the default certificate */
}

static SSL_CTX *server_ctx_base(struct conf *c, char **err);

struct sni_build {
    struct conf *c;
    struct sni_table *t;
    struct tls_keyring *keys;
    char *err;
};

static int sni_add(void *arg, const char *key, const char *value)
{
    struct sni_build *b = arg;
    SSL_CTX *ctx = server_ctx_base(b->c, &b->err);
    if (!ctx)
        return -1;
    /* each file holds a private key and its certificate chain */
    char *files = xstrdup(value), *save = NULL;
    char *label = xasprintf("tls_server_sni_maps: %s", key);
    int rc = 0;
    for (char *f = strtok_r(files, " \t,", &save); f && rc == 0; f = strtok_r(NULL, " \t,", &save))
        rc = load_pair(ctx, f, f, label, b->keys, &b->err);
    free(label);
    free(files);
    if (rc != 0) {
        char *e = b->err;
        b->err = xasprintf("tls_server_sni_maps: %s: %s", key, e);
        free(e);
        SSL_CTX_free(ctx);
        return -1;
    }
    struct sni_table *t = b->t;
    t->e = xrealloc(t->e, (t->n + 1) * sizeof *t->e);
    t->e[t->n].name = xstrdup(key);
    t->e[t->n].ctx = ctx;
    t->n++;
    return 0;
}

static int setup_sni(SSL_CTX *ctx, struct conf *c, struct tls_keyring *keys, char **err)
{
    struct conf_list l = conf_list(c, "tls_server_sni_maps");
    if (l.n == 0) {
        conf_list_free(&l);
        return 0;
    }
    if (sni_index < 0)
        sni_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, sni_free);
    struct sni_build b = {c, xcalloc(1, sizeof *b.t), keys, NULL};
    int rc = 0;
    for (size_t i = 0; i < l.n && rc == 0; i++) {
        char *merr = NULL;
        struct map *m = map_open(l.items[i], 0, &merr);
        if (!m) {
            b.err = xasprintf("tls_server_sni_maps: %s", merr ? merr : l.items[i]);
            free(merr);
            rc = -1;
            break;
        }
        if (map_foreach(m, sni_add, &b) != 0) {
            if (!b.err)
                b.err = xasprintf("tls_server_sni_maps: cannot read %s", l.items[i]);
            rc = -1;
        }
        map_close(m);
    }
    conf_list_free(&l);
    SSL_CTX_set_ex_data(ctx, sni_index, b.t);   /* freed with ctx, also on error */
    if (rc != 0) {
        *err = b.err;
        return -1;
    }
    SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
    SSL_CTX_set_tlsext_servername_arg(ctx, b.t);
    return 0;
}

SSL_CTX *tls_server_ctx(struct conf *c, const char *label, struct tls_keyring *keys, char **err)
{
    *err = NULL;
    const char *cert = conf_str(c, "smtpd_tls_cert_file");
    const char *key = conf_str(c, "smtpd_tls_key_file");
    const char *eccert = conf_str(c, "smtpd_tls_eccert_file");
    const char *eckey = conf_str(c, "smtpd_tls_eckey_file");
    int have_chain = *conf_str(c, "smtpd_tls_chain_files") != '\0';
    if (!have_chain && !*cert && !*eccert)
        return NULL;
    SSL_CTX *ctx = server_ctx_base(c, err);
    if (!ctx)
        return NULL;
    int rc = 0;
    if (have_chain)
        rc = load_chain_files(ctx, c, label, keys, err);
    if (rc == 0 && *cert)
        rc = load_pair(ctx, cert, *key ? key : cert, label, keys, err);
    if (rc == 0 && *eccert)
        rc = load_pair(ctx, eccert, *eckey ? eckey : eccert, label, keys, err);
    if (rc == 0)
        rc = setup_sni(ctx, c, keys, err);
    if (rc != 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* A context of method limited to the protocol list of param. */
static SSL_CTX *new_ctx(const SSL_METHOD *method, const char *param, const char *protocols, char **err)
{
    const char *bad = NULL;
    int minv = tls_min_version(protocols, &bad);
    if (minv < 0) {
        *err = xasprintf("%s: unknown or empty protocol list at \"%s\"", param, bad);
        return NULL;
    }
    SSL_CTX *ctx = SSL_CTX_new(method);
    if (!ctx) {
        *err = ssl_err("cannot create a TLS context", NULL);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, minv);
    int maxv = max_version(protocols);
    if (maxv)
        SSL_CTX_set_max_proto_version(ctx, maxv);
    return ctx;
}

/* ---------- session tickets ----------
 *
 * A client that resumes with a ticket skips the full handshake (and its
 * private-key operation). The ticket is the session encrypted under a key
 * only this smtpd process knows: the current key encrypts, and is replaced
 * every smtpd_tls_session_cache_timeout; the one before it still decrypts
 * until its last ticket has expired, and such a ticket is renewed. Keys
 * are made at first use, in the smtpd process, and never leave it. */

static struct tls_ticket_ring ticket_ring;

void tls_ticket_ring_reset(struct tls_ticket_ring *r, long long lifetime)
{
    OPENSSL_cleanse(r, sizeof *r);
    r->lifetime = lifetime;
}

static int ticket_key_new(struct tls_ticket_key *k, long long now)
{
    if (RAND_bytes(k->name, sizeof k->name) != 1 || RAND_priv_bytes(k->aes, sizeof k->aes) != 1 ||
        RAND_priv_bytes(k->hmac, sizeof k->hmac) != 1)
        return -1;
    k->created = now;
    k->in_use = 1;
    return 0;
}

const struct tls_ticket_key *tls_ticket_key_for_new(struct tls_ticket_ring *r, long long now)
{
    if (r->current.in_use && now - r->current.created < r->lifetime)
        return &r->current;
    struct tls_ticket_key fresh;
    if (ticket_key_new(&fresh, now) != 0)
        return NULL;
    if (r->current.in_use) {
        r->previous = r->current;
        r->previous_retired = now;
    }
    r->current = fresh;
    OPENSSL_cleanse(&fresh, sizeof fresh);
    return &r->current;
}

const struct tls_ticket_key *tls_ticket_key_named(struct tls_ticket_ring *r, const unsigned char name[16],
                                                  long long now, int *renew)
{
    *renew = 0;
    if (r->current.in_use && memcmp(r->current.name, name, 16) == 0 && now - r->current.created < 2 * r->lifetime)
        return &r->current;
    /* a ticket made just before the key was retired lives one lifetime more */
    if (r->previous.in_use && memcmp(r->previous.name, name, 16) == 0 && now - r->previous_retired < r->lifetime) {
        *renew = 1;
        return &r->previous;
    }
    return NULL;
}

static int ticket_key_cb(SSL *ssl, unsigned char key_name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
                         EVP_MAC_CTX *hctx, int enc)
{
    (void)ssl;
    long long now = (long long)clock_now();
    const struct tls_ticket_key *k;
    int renew = 0;
    if (enc) {
        k = tls_ticket_key_for_new(&ticket_ring, now);
        if (!k || RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1)
            return -1;
        memcpy(key_name, k->name, 16);
    } else {
        k = tls_ticket_key_named(&ticket_ring, key_name, now, &renew);
        if (!k)
            return 0; /* unknown or expired: a full handshake */
    }
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    if (EVP_MAC_init(hctx, k->hmac, sizeof k->hmac, params) != 1)
        return -1;
    int ok = enc ? EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv)
                 : EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv);
    if (ok != 1)
        return -1;
    return renew ? 2 : 1;
}

/* The cipher list for TLS 1.2 and older: the grade, less smtpd_tls_exclude_ciphers. */
static char *server_cipher_list(struct conf *c)
{
    const char *grade = conf_str(c, "smtpd_tls_ciphers");
    struct strbuf list = STRBUF_INIT;
    strbuf_puts(&list, strcasecmp(grade, "high") == 0 ? "HIGH:!aNULL:!MD5:!RC4:!3DES"
                                                       : "HIGH:MEDIUM:!aNULL:!MD5:!RC4:!3DES:!SEED:!IDEA");
    struct conf_list ex = conf_list(c, "smtpd_tls_exclude_ciphers");
    for (size_t i = 0; i < ex.n; i++)
        strbuf_printf(&list, ":!%s", ex.items[i]);
    conf_list_free(&ex);
    return strbuf_detach(&list);
}

/* A context with the listener's protocols, options and ciphers, no keys. */
static SSL_CTX *server_ctx_base(struct conf *c, char **err)
{
    const char *param = tls_server_level(c) == TLS_LEVEL_ENCRYPT ? "smtpd_tls_mandatory_protocols"
                                                                  : "smtpd_tls_protocols";
    SSL_CTX *ctx = new_ctx(TLS_server_method(), param, conf_str(c, param), err);
    if (!ctx)
        return NULL;
    /* Renegotiation and compression only ever helped attackers; the
     * server picks the cipher so the list's order counts. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    char *list = server_cipher_list(c);
    if (SSL_CTX_set_cipher_list(ctx, list) != 1) {
        *err = ssl_err("cannot set the cipher list", list);
        free(list);
        SSL_CTX_free(ctx);
        return NULL;
    }
    free(list);
    /* No server-side session cache (stateless tickets instead: nothing to
     * share between processes, nothing kept per client). */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    long long lifetime = conf_time(c, "smtpd_tls_session_cache_timeout");
    if (lifetime > 0) {
        if (ticket_ring.lifetime != lifetime)
            tls_ticket_ring_reset(&ticket_ring, lifetime);
        SSL_CTX_set_timeout(ctx, (long)lifetime);
        SSL_CTX_set_num_tickets(ctx, 1);
        SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_cb);
    } else {
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(ctx, 0);
    }
    return ctx;
}

SSL_CTX *tls_client_ctx(struct conf *c, const char *protocols_param, char **err)
{
    *err = NULL;
    SSL_CTX *ctx = new_ctx(TLS_client_method(), protocols_param, conf_str(c, protocols_param), err);
    if (!ctx)
        return NULL;
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    return ctx;
}

int tls_client_load_cas(SSL_CTX *ctx, const char *cafile, const char *capath, char **err)
{
    if (!*cafile && !*capath)
        return 0;
    if (SSL_CTX_load_verify_locations(ctx, *cafile ? cafile : NULL, *capath ? capath : NULL) != 1) {
        *err = ssl_err("cannot load trusted CA certificates from", *cafile ? cafile : capath);
        return -1;
    }
    return 0;
}

void tls_ctx_free(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx);
}

void tls_describe(SSL *ssl, char *buf, size_t len)
{
    const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);
    int alg_bits = 0;
    int bits = cipher ? SSL_CIPHER_get_bits(cipher, &alg_bits) : 0;
    snprintf(buf, len, "%s with cipher %s (%d/%d bits)", SSL_get_version(ssl),
             cipher ? SSL_CIPHER_get_name(cipher) : "unknown", bits, alg_bits);
}
