/* cli_dkim: `tern dkim keygen DOMAIN`: makes a DKIM signing key and prints
 * what to publish and configure (the DKIM key record, the dkim_sign_maps
 * line, suggested SPF and DMARC records), so a domain owner can go from no
 * mail authentication to all three in one step. `tern dkim check DOMAIN`
 * (and `tern doctor DOMAIN`, the start of the audit command) asks the
 * configured resolver what is published and says, line by line, what
 * matches the local keys and this host and what to change. */
#include "cli/cli.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <strings.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "daemon/instance.h"
#include "dns/dns.h"
#include "mailauth/dkim.h"
#include "mailauth/dmarc.h"
#include "mailauth/mailauth_dns.h"
#include "mailauth/spf.h"
#include "maps/map.h"
#include "util/fsops.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

#define EXIT_USAGE 64
#define EXIT_TROUBLE 1

static int usage(void)
{
    fprintf(stderr, "usage: tern dkim keygen DOMAIN [-s SELECTOR] [-t rsa|ed25519] [-b BITS]\n"
                    "  writes CONFIG_DIR/dkim/SELECTOR._domainkey.DOMAIN.pem (mode 0600) and prints\n"
                    "  the DNS records to publish and the dkim_sign_maps line to add\n"
                    "       tern dkim check DOMAIN   (also: tern doctor DOMAIN)\n"
                    "  compares what DNS publishes for DOMAIN with the local keys and this host: DKIM\n"
                    "  records, SPF for this host's addresses, DMARC, MX, PTR; a line each, ok or fix\n");
    return EXIT_USAGE;
}

/* A domain or selector as it may appear in a DNS name and a file name:
 * LDH labels (selectors may also hold '_'), no empty label, no leading dot. */
static int name_ok(const char *s, int underscore)
{
    size_t n = strlen(s), label = 0;
    if (n == 0 || n > 253 || s[0] == '.' || s[n - 1] == '.')
        return 0;
    for (const char *p = s; *p; p++) {
        if (*p == '.') {
            if (label == 0)
                return 0;
            label = 0;
            continue;
        }
        if (!str_is_alnum(*p) && *p != '-' && !(underscore && *p == '_'))
            return 0;
        if (++label > 63)
            return 0;
    }
    return 1;
}

/* "r202612" / "e202612": the key type and the month, so a rotation gets a
 * new selector and both keys can be published side by side. */
static char *default_selector(int ed25519)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    return xasprintf("%c%04d%02d", ed25519 ? 'e' : 'r', tm.tm_year + 1900, tm.tm_mon + 1);
}

static EVP_PKEY *generate(int ed25519, unsigned bits)
{
    return ed25519 ? EVP_PKEY_Q_keygen(NULL, NULL, "ED25519") : EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
}

/* Writes key as PKCS#8 PEM to dir/name, created 0600, never over an
 * existing file and never through a symbolic link. 0, or -1 with errno. */
static int write_key(int dirfd, const char *name, EVP_PKEY *key)
{
    BIO *mem = BIO_new(BIO_s_mem());
    if (!mem || !PEM_write_bio_PrivateKey(mem, key, NULL, NULL, 0, NULL, NULL)) {
        BIO_free(mem);
        errno = ENOMEM;
        return -1;
    }
    char *pem;
    long len = BIO_get_mem_data(mem, &pem);
    int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    int rc = -1;
    if (fd >= 0) {
        rc = fsops_write_all(fd, pem, (size_t)len);
        if (rc == 0)
            rc = fsync(fd);
        int e = errno;
        close(fd);
        if (rc != 0)
            unlinkat(dirfd, name, 0);
        errno = e;
    }
    BIO_free(mem);
    return rc;
}

/* What dkim_sign_maps names, for the advice: "texthash:/etc/tern/dkim" ->
 * the file to add the line to; NULL when it is not set or not a file. */
static const char *sign_map_file(const char *maps)
{
    const char *colon = strchr(maps, ':');
    if (!*maps || !colon || strchr(maps, ',') || strchr(maps, ' '))
        return NULL;
    return colon[1] == '/' ? colon + 1 : NULL;
}

static int keygen(struct instance *in, const char *config_dir, int argc, char **argv)
{
    const char *domain = NULL, *selector = NULL, *type = "rsa";
    unsigned long bits = 2048;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
            selector = argv[++i];
        else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc)
            type = argv[++i];
        else if (strcmp(argv[i], "-b") == 0 && i + 1 < argc) {
            char *end;
            bits = strtoul(argv[++i], &end, 10);
            if (*end || bits < 2048 || bits > 4096) {
                fprintf(stderr, "tern dkim keygen: -b takes 2048 to 4096 (RFC 8301 wants at least 1024; "
                                "2048 is what receivers expect today)\n");
                return EXIT_USAGE;
            }
        } else if (argv[i][0] != '-' && !domain)
            domain = argv[i];
        else
            return usage();
    }
    int ed25519 = strcmp(type, "ed25519") == 0;
    if (!domain || (!ed25519 && strcmp(type, "rsa") != 0))
        return usage();
    char *lower = xstrdup(domain);
    str_lower(lower);
    domain = lower;
    char *sel = selector ? xstrdup(selector) : default_selector(ed25519);
    int rc = EXIT_TROUBLE;
    char *dir = NULL, *name = NULL, *path = NULL, *record = NULL, *err = NULL;
    EVP_PKEY *key = NULL;
    int dirfd = -1;
    if (!name_ok(domain, 0) || !name_ok(sel, 1)) {
        fprintf(stderr, "tern dkim keygen: not a domain or selector name: %s %s\n", domain, sel);
        rc = EXIT_USAGE;
        goto out;
    }
    dir = xasprintf("%s/dkim", config_dir);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "tern dkim keygen: cannot create %s: %s\n", dir, strerror(errno));
        goto out;
    }
    dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dirfd < 0) {
        fprintf(stderr, "tern dkim keygen: cannot open %s: %s\n", dir, strerror(errno));
        goto out;
    }
    name = xasprintf("%s._domainkey.%s.pem", sel, domain);
    path = xasprintf("%s/%s", dir, name);
    key = generate(ed25519, (unsigned)bits);
    if (!key) {
        fprintf(stderr, "tern dkim keygen: OpenSSL could not make the key\n");
        goto out;
    }
    record = dkim_key_txt_record(key, 1, &err);
    if (!record) {
        fprintf(stderr, "tern dkim keygen: %s\n", err ? err : "cannot make the key record");
        goto out;
    }
    if (write_key(dirfd, name, key) != 0) {
        fprintf(stderr, "tern dkim keygen: cannot write %s: %s%s\n", path, strerror(errno),
                errno == EEXIST ? " (choose another selector with -s)" : "");
        goto out;
    }
    const char *maps = conf_str(in->conf, "dkim_sign_maps");
    const char *map_file = sign_map_file(maps);
    const char *host = conf_str(in->conf, "myhostname");
    printf("Wrote %s (%s, mode 0600%s).\n\n", path, ed25519 ? "Ed25519" : "RSA",
           geteuid() == 0 ? ", owner root: the queue process reads it before it drops root" : "");
    printf("1. Publish the key in DNS:\n\n   %s._domainkey.%s. IN TXT ( %s )\n\n", sel, domain, record);
    if (map_file)
        printf("2. Sign with it: add this line to %s (dkim_sign_maps = %s):\n\n", map_file, maps);
    else
        printf("2. Sign with it: set dkim_sign_maps = texthash:%s/dkim_sign in main.cf and add this line\n"
               "   to that file:\n\n",
               config_dir);
    printf("   %s  %s:%s\n\n", domain, sel, path);
    printf("   then `tern reload`. Several keys (RSA and Ed25519) go on one line, separated by commas.\n\n");
    printf("3. If %s has no SPF record yet, this one authorizes its MX hosts and this server:\n\n"
           "   %s. IN TXT \"v=spf1 mx a:%s ~all\"\n\n",
           domain, domain, host);
    printf("4. If it has no DMARC record yet, start by only asking for reports; after a few weeks of\n"
           "   clean reports, move to p=quarantine, then p=reject:\n\n"
           "   _dmarc.%s. IN TXT \"v=DMARC1; p=none; rua=mailto:postmaster@%s\"\n",
           domain, domain);
    rc = 0;
out:
    if (dirfd >= 0)
        close(dirfd);
    EVP_PKEY_free(key);
    free(err);
    free(record);
    free(path);
    free(name);
    free(dir);
    free(sel);
    free(lower);
    return rc;
}

/* ---------- tern dkim check DOMAIN ---------- */

/* What the check found, one topic each, printed in this order at the end
 * (the answers come in any order). */
enum topic { T_DKIM, T_SPF, T_DMARC, T_MX, T_HOST, T_COUNT };

struct check;

/* One lookup in flight and what to do with its answer. */
struct pending {
    struct check *c;
    void (*done)(struct pending *p, struct dns_rrset *rs);
    char *name;
    char *key_p;     /* DKIM: the p= our key should have */
    char *selector;
    char *addr;      /* SPF and PTR: this host's address */
};

struct check {
    struct event_base *base;
    struct dns_ctx *dns;
    struct mailauth_dns mdns;
    const char *domain, *host;
    struct strbuf out[T_COUNT];
    int outstanding;
    int problems;
};

static void say(struct check *c, enum topic t, int problem, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void say(struct check *c, enum topic t, int problem, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    strbuf_puts(&c->out[t], problem ? "  fix:  " : "  ok:   ");
    strbuf_vprintf(&c->out[t], fmt, ap);
    strbuf_putc(&c->out[t], '\n');
    va_end(ap);
    c->problems += problem;
}

static void finished(struct check *c)
{
    if (--c->outstanding == 0)
        event_base_loopexit(c->base, NULL);
}

static void pending_free(struct pending *p)
{
    free(p->name);
    free(p->key_p);
    free(p->selector);
    free(p->addr);
    free(p);
}

static void on_answer(void *arg, struct dns_rrset *rs)
{
    struct pending *p = arg;
    struct check *c = p->c;
    p->done(p, rs);
    dns_rrset_free(rs);
    pending_free(p);
    finished(c);
}

static struct pending *ask(struct check *c, const char *name, int rrtype,
                           void (*done)(struct pending *, struct dns_rrset *))
{
    struct pending *p = xcalloc(1, sizeof *p);
    p->c = c;
    p->done = done;
    p->name = xstrdup(name);
    c->outstanding++;
    dns_lookup(c->dns, name, rrtype, on_answer, p);
    return p;
}

/* A TXT record's strings joined; "" when malformed or long. */
static char *txt_text(const struct dns_rr *rr)
{
    struct strbuf sb = STRBUF_INIT;
    char *s = xstrdup(dns_txt_text(rr, 16384, &sb) == 0 ? strbuf_str(&sb) : "");
    strbuf_free(&sb);
    return s;
}

/* The p= of a key record, blanks removed ("" when it has none). */
static char *tag_p(const char *record)
{
    struct strbuf sb = STRBUF_INIT;
    for (const char *t = record; t && *t;) {
        while (*t == ' ' || *t == '\t' || *t == ';')
            t++;
        const char *end = strchr(t, ';');
        size_t n = end ? (size_t)(end - t) : strlen(t);
        if (n > 1 && t[0] == 'p' && (t[1] == '=' || t[1] == ' ')) {
            const char *eq = memchr(t, '=', n);
            for (const char *q = eq ? eq + 1 : t + n; q < t + n; q++)
                if (!str_is_space((unsigned char)*q))
                    strbuf_putc(&sb, *q);
        }
        t = end ? end + 1 : NULL;
    }
    char *s = xstrdup(strbuf_str(&sb));
    strbuf_free(&sb);
    return s;
}

static void dkim_answer(struct pending *p, struct dns_rrset *rs)
{
    struct check *c = p->c;
    if (rs->status == DNS_TEMPFAIL) {
        say(c, T_DKIM, 1, "%s: the lookup failed for now (%s); try again", p->name, rs->why ? rs->why : "");
        return;
    }
    for (size_t i = 0; i < rs->nrrs; i++) {
        char *text = txt_text(&rs->rrs[i]);
        char *published = tag_p(text);
        /* v=DKIM1 is optional in a key record (RFC 6376 3.6.1) */
        int match = *published && strcmp(published, p->key_p) == 0;
        free(text);
        free(published);
        if (match) {
            say(c, T_DKIM, 0, "selector %s: the key record at %s matches the local key", p->selector, p->name);
            return;
        }
    }
    if (rs->nrrs)
        say(c, T_DKIM, 1, "selector %s: %s holds another key than the local one: publish the record "
            "`tern dkim keygen` printed (or remove the selector from dkim_sign_maps)", p->selector, p->name);
    else
        say(c, T_DKIM, 1, "selector %s: no key record at %s: publish the record `tern dkim keygen` printed",
            p->selector, p->name);
}

static void dmarc_answer(struct pending *p, struct dns_rrset *rs)
{
    struct check *c = p->c;
    if (rs->status == DNS_TEMPFAIL) {
        say(c, T_DMARC, 1, "%s: the lookup failed for now; try again", p->name);
        return;
    }
    for (size_t i = 0; i < rs->nrrs; i++) {
        char *text = txt_text(&rs->rrs[i]);
        struct dmarc_record rec;
        char err[DMARC_ERR_MAX];
        if (dmarc_record_parse(text, strlen(text), &rec, err) == 0) {
            if (!dmarc_record_policy_ok(&rec))
                say(c, T_DMARC, 1, "%s: the record's policy (p=, sp= or np=) is missing or invalid: \"%s\"", p->name,
                    text);
            else if (rec.p == DMARC_POLICY_NONE)
                say(c, T_DMARC, 0, "p=none%s: receivers report but do not act; once the reports are clean, "
                    "move to p=quarantine, then p=reject", rec.nrua ? "" : " and no rua= (no reports)");
            else
                say(c, T_DMARC, 0, "p=%s%s", dmarc_policy_name(rec.p), rec.testing ? " (t=y: testing)" : "");
            dmarc_record_free(&rec);
            free(text);
            return;
        }
        free(text);
    }
    say(c, T_DMARC, 1, "no DMARC record at %s: publish %s. IN TXT \"v=DMARC1; p=none; rua=mailto:postmaster@%s\"",
        p->name, p->name, c->domain);
}

static void spf_done(void *arg, const struct spf_outcome *o)
{
    struct pending *p = arg;
    struct check *c = p->c;
    if (o->result == SPF_PASS)
        say(c, T_SPF, 0, "this server's address %s may send for %s (%s)", p->addr, c->domain,
            o->mechanism ? o->mechanism : "pass");
    else if (o->result == SPF_NONE)
        say(c, T_SPF, 1, "%s has no SPF record: publish %s. IN TXT \"v=spf1 mx a:%s ~all\"", c->domain, c->domain,
            c->host);
    else
        say(c, T_SPF, 1, "SPF of %s says %s for this server's address %s%s%s: add a:%s or ip%c:%s to it",
            c->domain, spf_result_name(o->result), p->addr, o->problem ? " (" : "", o->problem ? o->problem : "",
            c->host, strchr(p->addr, ':') ? '6' : '4', p->addr);
    pending_free(p);
    finished(c);
}

static void ptr_answer(struct pending *p, struct dns_rrset *rs)
{
    struct check *c = p->c;
    if (rs->status == DNS_TEMPFAIL) {
        say(c, T_HOST, 1, "%s: the PTR lookup failed for now (%s); try again", p->addr, rs->why ? rs->why : "");
        return;
    }
    for (size_t i = 0; i < rs->nrrs; i++) {
        char *name = dns_rdata_name(rs->rrs[i].data, rs->rrs[i].len);
        int same = name && strcasecmp(name, c->host) == 0;
        if (same) {
            say(c, T_HOST, 0, "%s has the PTR record %s", p->addr, c->host);
            free(name);
            return;
        }
        if (name)
            say(c, T_HOST, 1, "%s's PTR record names %s; receivers expect %s (ask whoever runs the address)",
                p->addr, name, c->host);
        free(name);
        if (rs->nrrs)
            return;
    }
    say(c, T_HOST, 1, "%s has no PTR record; many receivers refuse such mail: ask whoever runs the address "
        "for one naming %s", p->addr, c->host);
}

/* An address of this host: SPF must allow it, its PTR should name it. */
static void host_address(struct check *c, const char *addr)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    char labels[80], rev[96];
    int family = dns_reverse_labels(addr, labels);
    if (family == AF_INET && inet_pton(AF_INET, addr, &sin->sin_addr) == 1)
        sin->sin_family = AF_INET;
    else if (family == AF_INET6 && inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1)
        sin6->sin6_family = AF_INET6;
    else
        return;
    snprintf(rev, sizeof rev, "%s.%s", labels, family == AF_INET ? "in-addr.arpa" : "ip6.arpa");
    struct pending *p = xcalloc(1, sizeof *p);
    p->c = c;
    p->addr = xstrdup(addr);
    c->outstanding++;
    char *sender = xasprintf("postmaster@%s", c->domain);
    struct spf_request req = {.client = (struct sockaddr *)&ss, .helo = c->host, .sender = sender,
                              .receiver = c->host};
    spf_check_start(&c->mdns, &req, spf_done, p);
    free(sender);
    struct pending *q = ask(c, rev, DNS_TYPE_PTR, ptr_answer);
    q->addr = xstrdup(addr);
}

static void host_route(void *arg, struct dns_route *r)
{
    struct check *c = arg;
    if (r->status != DNS_OK || r->nhosts == 0) {
        say(c, T_HOST, 1, "this host's name %s has no address in DNS (%s): publish its A/AAAA records, or set "
            "myhostname to the name that has them", c->host, r->why ? r->why : dns_status_name(r->status));
        say(c, T_SPF, 1, "cannot tell whether SPF of %s allows this host: %s has no address", c->domain, c->host);
    }
    for (size_t i = 0; i < r->nhosts; i++)
        for (size_t k = 0; k < r->hosts[i].naddrs; k++) {
            char buf[INET6_ADDRSTRLEN];
            const struct sockaddr *sa = (const struct sockaddr *)&r->hosts[i].addrs[k];
            const void *a = sa->sa_family == AF_INET ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
                                                     : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
            if (inet_ntop(sa->sa_family, a, buf, sizeof buf))
                host_address(c, buf);
        }
    dns_route_free(r);
    finished(c);
}

static void mx_route(void *arg, struct dns_route *r)
{
    struct check *c = arg;
    int ours = 0;
    struct strbuf names = STRBUF_INIT;
    for (size_t i = 0; i < r->nhosts; i++) {
        strbuf_printf(&names, "%s%s", i ? ", " : "", r->hosts[i].name);
        ours |= strcasecmp(r->hosts[i].name, c->host) == 0;
    }
    if (r->status != DNS_OK)
        say(c, T_MX, 1, "mail for %s cannot be delivered: %s", c->domain, r->why ? r->why : dns_status_name(r->status));
    else if (ours)
        say(c, T_MX, 0, "%s receives mail for %s (MX: %s)", c->host, c->domain, strbuf_str(&names));
    else
        say(c, T_MX, 0, "mail for %s goes to %s, not to this host (%s): fine if this one only sends",
            c->domain, strbuf_str(&names), c->host);
    strbuf_free(&names);
    dns_route_free(r);
    finished(c);
}

struct key_walk {
    struct check *c;
    const char *want;   /* the entry that applies to the domain */
};

static int check_entry(void *arg, const char *name, const char *value)
{
    struct key_walk *w = arg;
    if (strcasecmp(name, w->want) != 0)
        return 0;
    const char *d = name[0] == '.' ? name + 1 : name;
    char *copy = xstrdup(value), *save = NULL;
    for (char *item = strtok_r(copy, ", \t", &save); item; item = strtok_r(NULL, ", \t", &save)) {
        char *colon = strchr(item, ':');
        if (!colon)
            continue;
        *colon = '\0';
        char *err = NULL;
        EVP_PKEY *key = dkim_key_load_pem(colon + 1, &err);
        char *record = key ? dkim_key_txt_record(key, 0, &err) : NULL;
        EVP_PKEY_free(key);
        if (!record) {
            say(w->c, T_DKIM, 1, "selector %s: %s%s", item, err ? err : "cannot read the key",
                geteuid() ? " (run as root to read the key)" : "");
            free(err);
            continue;
        }
        char *name_at = xasprintf("%s._domainkey.%s", item, d);
        struct pending *p = ask(w->c, name_at, DNS_TYPE_TXT, dkim_answer);
        p->key_p = tag_p(record);
        p->selector = xstrdup(item);
        free(name_at);
        free(record);
    }
    free(copy);
    return 1;
}

/* The dkim_sign_maps entry that applies to domain (itself, else ".parent"),
 * as qmgr_dkim finds it; each of its keys is compared with what DNS holds. */
static void check_keys(struct check *c, struct conf *conf)
{
    const char *specs = conf_str(conf, "dkim_sign_maps");
    char *err = NULL;
    struct map_list *l = *specs ? map_list_open(specs, 0, &err) : NULL;
    if (!l) {
        say(c, T_DKIM, 1, "%s: tern does not sign (dkim_sign_maps %s): run `tern dkim keygen %s`", c->domain,
            !*specs ? "is empty" : err ? err : "cannot be opened", c->domain);
        free(err);
        return;
    }
    int found = 0;
    for (const char *want = c->domain; want && !found; want = strchr(want + 1, '.')) {
        struct key_walk w = {c, want};
        for (size_t i = 0; i < map_list_count(l) && !found; i++)
            found = map_foreach(map_list_get(l, i), check_entry, &w) > 0;
    }
    if (!found)
        say(c, T_DKIM, 1, "%s has no entry in dkim_sign_maps: run `tern dkim keygen %s`", c->domain, c->domain);
    map_list_close(l);
}

static int check(struct instance *in, const char *domain_arg)
{
    char *domain = xstrdup(domain_arg);
    str_lower(domain);
    if (!name_ok(domain, 0)) {
        fprintf(stderr, "tern dkim check: not a domain name: %s\n", domain);
        free(domain);
        return EXIT_USAGE;
    }
    struct check c = {.domain = domain, .host = conf_str(in->conf, "myhostname")};
    for (int t = 0; t < T_COUNT; t++)
        c.out[t] = (struct strbuf)STRBUF_INIT;
    c.base = event_base_new();
    char *err = NULL;
    c.dns = dns_new(c.base, conf_str(in->conf, "dns_resolvers"), 1, 1, &err);
    if (!c.dns) {
        fprintf(stderr, "tern dkim check: %s\n", err ? err : "no resolver");
        free(err);
        event_base_free(c.base);
        free(domain);
        return EXIT_TROUBLE;
    }
    c.mdns = mailauth_dns_real(c.dns);
    check_keys(&c, in->conf);
    char *dmarc = xasprintf("_dmarc.%s", domain);
    ask(&c, dmarc, DNS_TYPE_TXT, dmarc_answer);
    free(dmarc);
    c.outstanding += 2;
    dns_resolve_mail_domain(c.dns, domain, mx_route, &c);
    dns_resolve_host(c.dns, c.host, host_route, &c);
    event_base_dispatch(c.base);
    static const char *const heading[T_COUNT] = {"DKIM", "SPF", "DMARC", "MX", NULL};
    for (int t = 0; t < T_COUNT; t++) {
        if (t == T_HOST)
            printf("this host (%s):\n", c.host);
        else
            printf("%s:\n", heading[t]);
        fputs(c.out[t].len ? strbuf_str(&c.out[t]) : "  (nothing to say)\n", stdout);
        strbuf_free(&c.out[t]);
    }
    printf(c.problems ? "%d thing%s to fix.\n" : "Everything checked is in order.\n", c.problems,
           c.problems == 1 ? "" : "s");
    dns_free(c.dns);
    event_base_free(c.base);
    free(domain);
    return c.problems ? EXIT_TROUBLE : 0;
}

int cli_dkim(const char *config_dir, int argc, char **argv)
{
    int is_check = argc == 3 && strcmp(argv[1], "check") == 0;
    if (argc < 2 || (strcmp(argv[1], "keygen") != 0 && !is_check))
        return usage();
    struct instance in;
    struct strbuf diag = STRBUF_INIT;
    if (instance_load(&in, config_dir, &diag) != 0) {
        fprintf(stderr, "tern dkim: %s", strbuf_str(&diag));
        strbuf_free(&diag);
        return EXIT_TROUBLE;
    }
    strbuf_free(&diag);
    int rc = is_check ? check(&in, argv[2]) : keygen(&in, config_dir, argc - 2, argv + 2);
    instance_free(&in);
    return rc;
}
