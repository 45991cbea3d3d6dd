/* qmgr_dkim: DKIM signing of the mail the queue relays (see qmgr_dkim.h). */
#include "qmgr/qmgr_dkim.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "daemon/runtime.h"
#include "mailauth/dkim.h"
#include "mailauth/dmarc.h"
#include "maps/map.h"
#include "spool/queue_file.h"
#include "util/hashmap.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/trusted_dir.h"
#include "util/strbuf.h"

/* The header is read up to this much to find its end; a longer one
 * (beyond any header_size_limit smtpd allows) is not signed. */
#define HEADER_READ_MAX (1024 * 1024)
#define KEYS_PER_DOMAIN 4
#define READ_CHUNK 65536

struct dkim_key_entry {
    char *selector;
    char *path;
    enum dkim_alg alg;
    EVP_PKEY *pkey;
};

/* The keys of one dkim_sign_maps entry: "example.org" or ".example.org". */
struct dkim_domain_keys {
    char *name;
    struct dkim_key_entry keys[KEYS_PER_DOMAIN];
    size_t n;
};

static struct {
    struct hashmap domains;    /* entry name -> struct dkim_domain_keys */
    size_t nkeys;
} dk;

static const void *domain_key(const void *item, size_t *len)
{
    const struct dkim_domain_keys *d = item;
    *len = strlen(d->name);
    return d->name;
}

static void domain_keys_free(struct dkim_domain_keys *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->keys[i].selector);
        free(d->keys[i].path);
        EVP_PKEY_free(d->keys[i].pkey);
    }
    free(d->name);
    free(d);
}

/* As root, a key (and the table naming the keys) is read only from a
 * directory no other user can change (trusted_dir), and only a regular file
 * root owns: a link or a file that mail_owner placed could otherwise make
 * root read another root-only key into the queue process. */
static int file_trusted(const char *path, struct strbuf *diag, const char *what)
{
    if (geteuid() != 0)
        return 1;
    const char *slash = strrchr(path, '/');
    char *dir = slash == path ? xstrdup("/") : xstrndup(path, (size_t)(slash - path));
    struct strbuf why = STRBUF_INIT;
    int dfd = trusted_dir_open(dir, &why);
    struct stat st;
    int ok = dfd >= 0 && fstatat(dfd, slash + 1, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
             st.st_uid == 0;
    if (dfd < 0)
        strbuf_printf(diag, "dkim_sign_maps: %s %s not read: %s\n", what, path, strbuf_str(&why));
    else if (!ok)
        strbuf_printf(diag, "dkim_sign_maps: %s %s not read: not a regular file owned by root\n", what, path);
    if (dfd >= 0)
        close(dfd);
    strbuf_free(&why);
    free(dir);
    return ok;
}

struct load_ctx {
    struct strbuf *diag;
    int bad;
};

/* One entry: "selector:/path/key.pem" items separated by commas or blanks. */
static int load_entry(void *arg, const char *name, const char *value)
{
    struct load_ctx *lc = arg;
    struct dkim_domain_keys *d = xcalloc(1, sizeof *d);
    d->name = xstrdup(name);
    str_lower(d->name);
    char *copy = xstrdup(value), *save = NULL;
    for (char *item = strtok_r(copy, ", \t", &save); item; item = strtok_r(NULL, ", \t", &save)) {
        char *colon = strchr(item, ':');
        if (!colon || colon == item || colon[1] != '/') {
            strbuf_printf(lc->diag, "dkim_sign_maps: %s: \"%s\" is not selector:/path/key.pem\n", name, item);
            lc->bad = 1;
            continue;
        }
        if (d->n == KEYS_PER_DOMAIN) {
            strbuf_printf(lc->diag, "dkim_sign_maps: %s: more than %d keys\n", name, KEYS_PER_DOMAIN);
            lc->bad = 1;
            break;
        }
        *colon = '\0';
        char *err = NULL;
        char *what = xasprintf("%s: key", name);
        EVP_PKEY *pkey = file_trusted(colon + 1, lc->diag, what) ? dkim_key_load_pem(colon + 1, &err) : NULL;
        free(what);
        if (!pkey) {
            strbuf_printf(lc->diag, "dkim_sign_maps: %s: %s\n", name, err ? err : "cannot load the key");
            free(err);
            lc->bad = 1;
            continue;
        }
        struct dkim_key_entry *k = &d->keys[d->n++];
        k->selector = xstrdup(item);
        k->path = xstrdup(colon + 1);
        k->alg = EVP_PKEY_is_a(pkey, "ED25519") ? DKIM_ALG_ED25519_SHA256 : DKIM_ALG_RSA_SHA256;
        k->pkey = pkey;
    }
    free(copy);
    if (d->n && hashmap_add(&dk.domains, d) == 0)
        dk.nkeys += d->n;
    else
        domain_keys_free(d);   /* nothing usable, or a second entry of that name */
    return 0;
}

int qmgr_dkim_load(struct conf *c, struct strbuf *diag)
{
    qmgr_dkim_free();
    const char *specs = conf_str(c, "dkim_sign_maps");
    if (!*specs)
        return 0;
    char *err = NULL;
    struct map_list *l = map_list_open(specs, 0, &err);
    if (!l) {
        strbuf_printf(diag, "dkim_sign_maps: %s\n", err ? err : "cannot open");
        free(err);
        return -1;
    }
    hashmap_init(&dk.domains, domain_key, 0);
    struct load_ctx lc = {diag, 0};
    for (size_t i = 0; i < map_list_count(l); i++) {
        /* the table names files root then reads: it must be root's too */
        const char *spec = map_spec(map_list_get(l, i)), *colon = strchr(spec, ':');
        if (colon && colon[1] == '/' && !file_trusted(colon + 1, diag, "table")) {
            lc.bad = 1;
            continue;
        }
        if (map_foreach(map_list_get(l, i), load_entry, &lc) < 0) {
            strbuf_printf(diag, "dkim_sign_maps: cannot read %s\n", map_spec(map_list_get(l, i)));
            lc.bad = 1;
        }
    }
    map_list_close(l);
    return lc.bad ? -1 : 0;
}

void qmgr_dkim_free(void)
{
    size_t i = 0;
    struct dkim_domain_keys *d;
    while ((d = hashmap_next(&dk.domains, &i)))
        domain_keys_free(d);
    hashmap_free(&dk.domains);
    dk.nkeys = 0;
}

size_t qmgr_dkim_key_count(void)
{
    return dk.nkeys;
}

/* The entry for domain: itself, else ".parent" for each parent (the
 * entry's name without its dot is the d= to sign with). */
static const struct dkim_domain_keys *find_keys(const char *domain)
{
    const struct dkim_domain_keys *d = hashmap_get_str(&dk.domains, domain);
    for (const char *p = strchr(domain, '.'); !d && p; p = strchr(p + 1, '.'))
        d = hashmap_get_str(&dk.domains, p);
    return d;
}

/* Reads the header of the content: *hdr (the fields, without the empty
 * line) and where the body starts. -1 when it cannot be read. */
static int read_header(int fd, uint64_t offset, uint64_t length, struct strbuf *hdr, uint64_t *body_at)
{
    char buf[READ_CHUNK];
    uint64_t pos = 0;
    while (pos < length && hdr->len < HEADER_READ_MAX) {
        size_t want = length - pos < sizeof buf ? (size_t)(length - pos) : sizeof buf;
        ssize_t got = pread(fd, buf, want, (off_t)(offset + pos));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return -1;
        strbuf_append(hdr, buf, (size_t)got);
        pos += (uint64_t)got;
        const char *end = hdr->len >= 2 && memcmp(hdr->buf, "\r\n", 2) == 0 ? hdr->buf
                                                                          : memmem(hdr->buf, hdr->len, "\r\n\r\n", 4);
        if (end) {
            size_t fields = end == hdr->buf ? 0 : (size_t)(end - hdr->buf) + 2;
            *body_at = fields + 2;
            hdr->len = fields;
            hdr->buf[fields] = '\0';
            return 0;
        }
    }
    if (hdr->len >= HEADER_READ_MAX)
        return -1;
    *body_at = length;   /* a header without a body */
    return 0;
}

/* The body, read once, into every signer (one per key). 0, or -1 with *err. */
static int feed_body(struct dkim_signer **signers, size_t n, int fd, uint64_t offset, uint64_t length,
                     uint64_t body_at, char **err)
{
    char buf[READ_CHUNK];
    for (uint64_t pos = body_at; pos < length;) {
        size_t want = length - pos < sizeof buf ? (size_t)(length - pos) : sizeof buf;
        ssize_t got = pread(fd, buf, want, (off_t)(offset + pos));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            *err = xasprintf("cannot read the queue file: %s", got < 0 ? strerror(errno) : "short file");
            return -1;
        }
        for (size_t i = 0; i < n; i++)
            if (signers[i])
                dkim_signer_body(signers[i], buf, (size_t)got);
        pos += (uint64_t)got;
    }
    return 0;
}

/* Whether the envelope sender's domain is the From: domain, or one is a
 * subdomain of the other. A client tern signs for (mynetworks, a login,
 * a local user) then cannot get a signature for just any domain in
 * dkim_sign_maps by writing it in From: alone: the envelope sender is what
 * smtpd_sender_login_maps ties to a login. The null sender has no domain
 * to compare: not signed. */
static int sender_matches(const char *sender, const char *from_domain)
{
    const char *at = strrchr(sender, '@');
    if (!at || !at[1])
        return 0;
    const char *env = at + 1;
    size_t le = strlen(env), lf = strlen(from_domain);
    const char *longer = le >= lf ? env : from_domain, *shorter = le >= lf ? from_domain : env;
    size_t ll = le >= lf ? le : lf, ls = le >= lf ? lf : le;
    return strcasecmp(longer + (ll - ls), shorter) == 0 && (ll == ls || longer[ll - ls - 1] == '.');
}

char *qmgr_dkim_sign(const struct queue_file_message *m, int fd, uint64_t offset, uint64_t length, long lifetime)
{
    if (!dk.nkeys || !queue_file_message_attr(m, QF_ATTR_DKIM_SIGN))
        return NULL;
    struct strbuf hdr = STRBUF_INIT;
    uint64_t body_at = 0;
    char *out = NULL;
    if (read_header(fd, offset, length, &hdr, &body_at) != 0) {
        log_warn("%s: not signed: cannot read the header", m->id);
        goto done;
    }
    struct dmarc_from from;
    dmarc_from_header(hdr.buf ? hdr.buf : "", hdr.len, &from);
    if (from.status != DMARC_FROM_OK) {
        log_info("%s: not signed: %s", m->id, dmarc_from_status_text(from.status));
        goto done;
    }
    const struct dkim_domain_keys *d = find_keys(from.domain);
    if (!d)
        goto done;   /* not a domain we sign for */
    if (!sender_matches(m->sender, from.domain)) {
        log_info("%s: not signed: the From: domain %s is not the envelope sender's (%s)", m->id, from.domain,
                 m->sender[0] ? m->sender : "<>");
        goto done;
    }
    const char *dname = d->name[0] == '.' ? d->name + 1 : d->name;
    struct strbuf fields = STRBUF_INIT;
    struct dkim_signer *signers[KEYS_PER_DOMAIN] = {NULL};
    for (size_t i = 0; i < d->n; i++) {
        struct dkim_sign_params p = {
            .domain = dname,
            .selector = d->keys[i].selector,
            .alg = d->keys[i].alg,
            .lifetime = lifetime > 0 ? (unsigned long)lifetime : 0,
            .now = time(NULL),
        };
        char *err = NULL;
        signers[i] = dkim_signer_new(&p, &err);
        if (!signers[i]) {
            log_warn("%s: not signed with %s: %s", m->id, d->keys[i].path, err ? err : "failed");
            free(err);
        }
    }
    char *err = NULL;
    if (feed_body(signers, d->n, fd, offset, length, body_at, &err) != 0) {
        log_warn("%s: not signed: %s", m->id, err);
        free(err);
    } else {
        for (size_t i = 0; i < d->n; i++) {
            if (!signers[i])
                continue;
            char *f = dkim_signer_finish(signers[i], hdr.buf ? hdr.buf : "", hdr.len, dkim_sign_evp, d->keys[i].pkey,
                                         &err);
            if (!f) {
                log_warn("%s: not signed with %s: %s", m->id, d->keys[i].path, err ? err : "failed");
                free(err);
                err = NULL;
                continue;
            }
            strbuf_puts(&fields, f);
            free(f);
            log_info("%s: DKIM-Signature added (d=%s, s=%s)", m->id, dname, d->keys[i].selector);
        }
    }
    for (size_t i = 0; i < d->n; i++)
        if (signers[i])
            dkim_signer_free(signers[i]);
    out = fields.len ? xstrdup(strbuf_str(&fields)) : NULL;
    strbuf_free(&fields);
done:
    strbuf_free(&hdr);
    return out;
}

void qmgr_prepare_as_root(struct runtime *rt)
{
    struct strbuf diag = STRBUF_INIT;
    if (qmgr_dkim_load(rt->conf, &diag) != 0) {
        /* mail still flows, signed with the keys that loaded */
        for (char *line = strtok(diag.buf, "\n"); line; line = strtok(NULL, "\n"))
            log_error("%s", line);
    }
    if (qmgr_dkim_key_count())
        log_info("DKIM: %zu signing key%s loaded", qmgr_dkim_key_count(), qmgr_dkim_key_count() == 1 ? "" : "s");
    strbuf_free(&diag);
}
