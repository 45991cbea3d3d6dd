/* resolver_domains: the domain lists of the address classes (mydestination,
 * virtual_alias_domains, virtual_mailbox_domains, relay_domains) and this
 * host's own addresses, which make "[ip]" a local domain (see resolver.h). */
#include "maps/resolver.h"
#include "maps/resolver_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf/conf.h"
#include "maps/map.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

/* Enough for every address of a large host; more are ignored, so a machine
 * with thousands of aliases on its interfaces cannot make start-up unbounded. */
#define OWN_ADDRESSES_MAX 256

char *resolver_normalize_domain(const char *d)
{
    char *s = xstrdup(d);
    str_lower(s);
    size_t len = strlen(s);
    if (len > 1 && s[len - 1] == '.')
        s[len - 1] = '\0';
    return s;
}

/* "/file/name" entries are read by the map layer as name lists: it rereads
 * a file when it changes and tells the sandbox about it, as for any table.
 * The file must be readable when the list is opened: Postfix refuses to
 * start without it, and a typo should not pass as a domain that is never
 * ours. */
static int open_name_files(struct domain_list *l, const char *param, const struct strbuf *files, char **err)
{
    struct strbuf specs = STRBUF_INIT;
    int rc = 0;
    for (const char *p = files->buf; p && *p && rc == 0;) {
        size_t n = strcspn(p, "\n");
        char *path = xstrndup(p, n);
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
            if (err)
                *err = xasprintf("%s: cannot read %s: %s", param, path, strerror(errno));
            rc = -1;
        } else {
            close(fd);
            strbuf_printf(&specs, "%stexthash:%s", specs.len ? ", " : "", path);
        }
        free(path);
        p += n + (p[n] == '\n');
    }
    if (rc == 0 && specs.len) {
        char *why = NULL;
        l->files = map_list_open(specs.buf, MAP_NAME_LIST_FORMAT, &why);
        if (!l->files) {
            if (err)
                *err = xasprintf("%s: %s", param, why ? why : "cannot open its files");
            rc = -1;
        }
        free(why);
    }
    strbuf_free(&specs);
    return rc;
}

int domain_list_open(struct domain_list *l, struct conf *c, const char *param, char **err)
{
    memset(l, 0, sizeof *l);
    struct conf_list items = conf_list(c, param);
    struct strbuf tables = STRBUF_INIT, files = STRBUF_INIT;
    l->names = xcalloc(items.n + 1, sizeof *l->names);
    for (size_t i = 0; i < items.n; i++) {
        const char *it = items.items[i];
        if (it[0] == '/')
            strbuf_printf(&files, "%s%s", files.len ? "\n" : "", it);
        else if (strchr(it, ':') && it[0] != '[')
            strbuf_printf(&tables, "%s%s", tables.len ? ", " : "", it);
        else
            l->names[l->n++] = resolver_normalize_domain(it);
    }
    conf_list_free(&items);
    int rc = 0;
    if (tables.len) {
        char *why = NULL;
        l->tables = map_list_open(tables.buf, 0, &why);
        if (!l->tables) {
            if (err)
                *err = xasprintf("%s: %s", param, why ? why : "cannot open its tables");
            rc = -1;
        }
        free(why);
    }
    if (rc == 0 && files.len)
        rc = open_name_files(l, param, &files, err);
    strbuf_free(&tables);
    strbuf_free(&files);
    return rc;
}

void domain_list_free(struct domain_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->names[i]);
    free(l->names);
    if (l->tables)
        map_list_close(l->tables);
    if (l->files)
        map_list_close(l->files);
    memset(l, 0, sizeof *l);
}

static int lookup_key(struct map_list *tables, const char *key, int whole)
{
    char *value = NULL;
    int rc = whole ? map_list_lookup(tables, key, &value) : map_list_lookup_partial(tables, key, &value);
    free(value);
    return rc;
}

/* A file's names mean what the same names written in main.cf mean:
 * ".parent" covers the subdomains, "parent" too when the list matches
 * subdomains. */
static int files_match(const struct domain_list *l, const char *domain)
{
    int rc = lookup_key(l->files, domain, 1);
    for (const char *p = strchr(domain, '.'); rc == 0 && p && p[1]; p = strchr(p + 1, '.')) {
        rc = lookup_key(l->files, p, 0);
        if (rc == 0 && l->subdomains)
            rc = lookup_key(l->files, p + 1, 0);
    }
    return rc;
}

int domain_list_match(const struct domain_list *l, const char *domain)
{
    for (size_t i = 0; i < l->n; i++) {
        const char *name = l->names[i];
        if (strcmp(name, domain) == 0)
            return 1;
        /* ".example.com" always, "example.com" with subdomains on: below it */
        size_t ln = strlen(name), ld = strlen(domain);
        if (name[0] == '.' ? ld > ln && strcmp(domain + ld - ln, name) == 0
                           : l->subdomains && ld > ln + 1 && domain[ld - ln - 1] == '.' &&
                                 strcmp(domain + ld - ln, name) == 0)
            return 1;
    }
    int rc = l->files ? files_match(l, domain) : 0;
    if (rc != 0 || !l->tables)
        return rc;
    rc = lookup_key(l->tables, domain, 1);
    /* a table's parents, as the names above */
    for (const char *p = strchr(domain, '.'); rc == 0 && l->subdomains && p && p[1]; p = strchr(p + 1, '.'))
        rc = lookup_key(l->tables, p + 1, 0);
    return rc;
}

/* The first /file/name of items that cannot be read; items freed. */
static char *list_file_problem(const char *param, struct conf_list items)
{
    char *problem = NULL;
    for (size_t k = 0; k < items.n && !problem; k++) {
        int fd = items.items[k][0] == '/' ? open(items.items[k], O_RDONLY | O_CLOEXEC | O_NOCTTY) : -2;
        if (fd >= 0)
            close(fd);
        else if (fd == -1)
            problem = xasprintf("%s: cannot read %s: %s", param, items.items[k], strerror(errno));
    }
    conf_list_free(&items);
    return problem;
}

char *resolver_domain_list_files_problem(struct conf *c, const char **param)
{
    char *problem = list_file_problem(*param = "mydestination", conf_list(c, "mydestination"));
    if (!problem)
        problem = list_file_problem(*param = "virtual_alias_domains", conf_list(c, "virtual_alias_domains"));
    if (!problem)
        problem = list_file_problem(*param = "virtual_mailbox_domains", conf_list(c, "virtual_mailbox_domains"));
    if (!problem)
        problem = list_file_problem(*param = "relay_domains", conf_list(c, "relay_domains"));
    if (!problem)
        *param = NULL;
    return problem;
}

/* ---------- this host's addresses ---------- */

static void own_add(struct resolver *r, int family, const void *addr)
{
    if (r->nown_addresses >= OWN_ADDRESSES_MAX)
        return;
    struct own_address *o = &r->own_addresses[r->nown_addresses++];
    o->family = family;
    memcpy(o->addr, addr, family == AF_INET ? 4 : 16);
}

static void own_add_sockaddr(struct resolver *r, const struct sockaddr *sa)
{
    if (sa && sa->sa_family == AF_INET)
        own_add(r, AF_INET, &((const struct sockaddr_in *)sa)->sin_addr);
    else if (sa && sa->sa_family == AF_INET6)
        own_add(r, AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr);
}

/* An address as Postfix writes it in inet_interfaces and in a literal:
 * "192.0.2.1", "[192.0.2.1]", "::1", "[::1]", "[IPv6:::1]". 1 parsed. */
static int parse_address(const char *text, int *family, unsigned char addr[16])
{
    size_t len = strlen(text);
    char buf[64];
    if (text[0] == '[') {
        if (len < 3 || text[len - 1] != ']' || len - 2 >= sizeof buf)
            return 0;
        memcpy(buf, text + 1, len - 2);
        buf[len - 2] = '\0';
    } else {
        if (len >= sizeof buf)
            return 0;
        memcpy(buf, text, len + 1);
    }
    const char *a = strncasecmp(buf, "ipv6:", 5) == 0 ? buf + 5 : buf;
    if (inet_pton(AF_INET, a, addr) == 1) {
        *family = AF_INET;
        return a == buf;   /* "IPv6:" before an IPv4 address is no address */
    }
    if (inet_pton(AF_INET6, a, addr) == 1) {
        *family = AF_INET6;
        return 1;
    }
    return 0;
}

/* inet_interfaces ("all": every interface's address, read once here;
 * "loopback-only"; or addresses) and proxy_interfaces (addresses). Host
 * names in them are not resolved: the resolver does not block on DNS, and
 * a name's addresses are whatever the interfaces already have. */
/* inet_interfaces' or proxy_interfaces' entries; items freed. */
static void own_add_listed(struct resolver *r, struct conf_list items, int is_inet_interfaces)
{
    for (size_t i = 0; i < items.n; i++) {
        const char *it = items.items[i];
        int family;
        unsigned char addr[16];
        if (is_inet_interfaces && strcasecmp(it, "all") == 0) {
            struct ifaddrs *ifa = NULL;
            if (getifaddrs(&ifa) != 0)
                continue;
            for (struct ifaddrs *a = ifa; a; a = a->ifa_next)
                own_add_sockaddr(r, a->ifa_addr);
            freeifaddrs(ifa);
        } else if (is_inet_interfaces && strcasecmp(it, "loopback-only") == 0) {
            struct in_addr v4 = {htonl(INADDR_LOOPBACK)};
            own_add(r, AF_INET, &v4);
            own_add(r, AF_INET6, &in6addr_loopback);
        } else if (parse_address(it, &family, addr)) {
            own_add(r, family, addr);
        }
    }
    conf_list_free(&items);
}

/* inet_interfaces ("all": every interface's address, read once here;
 * "loopback-only"; or addresses) and proxy_interfaces (addresses). Host
 * names in them are not resolved: the resolver does not block on DNS, and
 * a name's addresses are whatever the interfaces already have. */
void resolver_load_own_addresses(struct resolver *r, struct conf *c)
{
    r->own_addresses = xcalloc(OWN_ADDRESSES_MAX, sizeof *r->own_addresses);
    own_add_listed(r, conf_list(c, "inet_interfaces"), 1);
    own_add_listed(r, conf_list(c, "proxy_interfaces"), 0);
}

/* 1 when domain (normalized) is "[address]" of one of this host's addresses. */
static int is_own_literal(const struct resolver *r, const char *domain)
{
    int family;
    unsigned char addr[16];
    if (domain[0] != '[' || !parse_address(domain, &family, addr))
        return 0;
    for (size_t i = 0; i < r->nown_addresses; i++)
        if (r->own_addresses[i].family == family &&
            memcmp(r->own_addresses[i].addr, addr, family == AF_INET ? 4 : 16) == 0)
            return 1;
    return 0;
}

int resolver_is_local_domain(const struct resolver *r, const char *domain)
{
    if (!domain || !*domain)
        return 1;
    char *d = resolver_normalize_domain(domain);
    int found = is_own_literal(r, d) ? 1 : domain_list_match(&r->mydestination, d);
    free(d);
    return found;
}
