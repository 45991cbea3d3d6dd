/* cli_dkim: `tern dkim keygen DOMAIN`: makes a DKIM signing key and prints
 * what to publish and configure (the DKIM key record, the dkim_sign_maps
 * line, suggested SPF and DMARC records), so a domain owner can go from no
 * mail authentication to all three in one step. */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
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
#include "mailauth/dkim.h"
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
                    "  the DNS records to publish and the dkim_sign_maps line to add\n");
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

int cli_dkim(const char *config_dir, int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "keygen") != 0)
        return usage();
    struct instance in;
    struct strbuf diag = STRBUF_INIT;
    if (instance_load(&in, config_dir, &diag) != 0) {
        fprintf(stderr, "tern dkim: %s", strbuf_str(&diag));
        strbuf_free(&diag);
        return EXIT_TROUBLE;
    }
    strbuf_free(&diag);
    int rc = keygen(&in, config_dir, argc - 2, argv + 2);
    instance_free(&in);
    return rc;
}
