/* qmgr_nexthop: where a relayed recipient goes, and what its next hop gets
 * (see qmgr_nexthop.h). */
#include "qmgr/qmgr_nexthop.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/conf.h"
#include "daemon/runtime.h"
#include "dns/dns.h"
#include "maps/map.h"
#include "maps/resolver.h"
#include "maps/transport.h"
#include "qmgr/qmgr_msg.h"
#include "smtpc/smtpc.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

static struct {
    struct runtime *rt;
    struct resolver *resolver;   /* transport_maps; owned by qmgr */
    char *relayhost;
    char *myhostname;
    int wildcard;            /* a listener on 0.0.0.0 or :: */
    unsigned port;               /* smtp_tcp_port */
    struct map_list *tls_policy; /* smtp_tls_policy_maps */
    struct map_list *sasl_passwords;   /* smtp_sasl_password_maps, when smtp_sasl_auth_enable */
    int tls_default;             /* smtp_tls_security_level */
    int tls_default_secure;      /* it says "secure": match the next hop's domain */
    int lmtp_tls_level;          /* lmtp_tls_security_level (empty: none) */
    int lmtp_tls_secure;
    /* this server's own addresses, for loop detection */
    struct sockaddr_storage *own;
    size_t nown;
} nh;

/* ---------- our own addresses ---------- */

static void add_own(const struct sockaddr *sa)
{
    if (sa == NULL || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
        return;
    nh.own = xrealloc(nh.own, (nh.nown + 1) * sizeof *nh.own);
    memset(&nh.own[nh.nown], 0, sizeof *nh.own);
    memcpy(&nh.own[nh.nown], sa, sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
    nh.nown++;
}

static int is_wildcard(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    if (ss->ss_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
    return 0;
}

/* The addresses the SMTP listeners are bound to; a wildcard listener
 * stands for every interface address (as Postfix's inet_interfaces). */
static void collect_own_addresses(void)
{
    int wildcard = 0;
    for (size_t i = 0; i < nh.rt->nlisteners; i++) {
        /* the master took the address before it closed the socket here */
        const struct sockaddr_storage *ss = &nh.rt->listeners[i].bound;
        if (ss->ss_family != AF_INET && ss->ss_family != AF_INET6)
            continue;
        if (is_wildcard(ss))
            wildcard = 1;
        else
            add_own((const struct sockaddr *)ss);
    }
    nh.wildcard = wildcard;
    if (!wildcard)
        return;
    struct ifaddrs *ifa = NULL;
    if (getifaddrs(&ifa) != 0)
        return;
    for (struct ifaddrs *p = ifa; p; p = p->ifa_next)
        add_own(p->ifa_addr);
    freeifaddrs(ifa);
}

/* An IPv4-mapped IPv6 address (::ffff:192.0.2.1) as the IPv4 one. */
static struct sockaddr_storage unmapped(const struct sockaddr_storage *a)
{
    struct sockaddr_storage out = *a;
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)a;
    if (a->ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&out;
        memset(&out, 0, sizeof out);
        s4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, &s6->sin6_addr.s6_addr[12], 4);
    }
    return out;
}

/* With a wildcard listener, what reaches this host whatever its
 * interfaces: the loopback net, "this host" (0.0.0.0, ::). */
static int reaches_any_listener(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET) {
        uint32_t v4 = ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr);
        return (v4 >> 24) == 127 || v4 == 0;
    }
    const struct in6_addr *v6 = &((const struct sockaddr_in6 *)a)->sin6_addr;
    return a->ss_family == AF_INET6 && (IN6_IS_ADDR_LOOPBACK(v6) || IN6_IS_ADDR_UNSPECIFIED(v6));
}

static int same_addr(const struct sockaddr_storage *pa, const struct sockaddr_storage *pb)
{
    struct sockaddr_storage ua = unmapped(pa), ub = unmapped(pb);
    const struct sockaddr_storage *a = &ua, *b = &ub;
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr == ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr, &((const struct sockaddr_in6 *)b)->sin6_addr,
                  sizeof(struct in6_addr)) == 0;
}

static int host_is_us(const struct dns_host *h, int by_address)
{
    if (strcasecmp(h->name, nh.myhostname) == 0)
        return 1;
    for (size_t i = 0; by_address && i < h->naddrs; i++) {
        struct sockaddr_storage a = unmapped(&h->addrs[i]);
        if (nh.wildcard && reaches_any_listener(&a))
            return 1;
        for (size_t k = 0; k < nh.nown; k++)
            if (same_addr(&a, &nh.own[k]))
                return 1;
    }
    return 0;
}

/* ---------- destination keys ---------- */

static const char *domain_of(const char *addr)
{
    const char *at = strrchr(addr, '@');
    return at ? at + 1 : "";
}

int qmgr_nexthop_parse(const char *spec, char **host, int *use_mx, unsigned *port)
{
    const char *end = spec + strlen(spec);
    const char *colon = NULL;
    *use_mx = 1;
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        if (!close)
            return -1;
        *use_mx = 0;
        *host = xstrndup(spec + 1, (size_t)(close - spec - 1));
        colon = close[1] == ':' ? close + 1 : NULL;
        if (!colon && close[1])
            goto bad;
    } else {
        colon = strrchr(spec, ':');
        *host = xstrndup(spec, colon ? (size_t)(colon - spec) : (size_t)(end - spec));
    }
    *port = nh.port;
    if (colon) {
        char *stop = NULL;
        long p = strtol(colon + 1, &stop, 10);
        if (stop == colon + 1 || *stop || p < 1 || p > 65535)
            goto bad;
        *port = (unsigned)p;
    }
    if (!**host)
        goto bad;
    return 0;
bad:
    free(*host);
    *host = NULL;
    return -1;
}

/* ---------- transport_maps ---------- */

/* A recipient's next hop from a transport entry's nexthop part: empty means
 * the usual one (relayhost or the domain). */
static char *default_nexthop(const char *addr)
{
    if (nh.relayhost && *nh.relayhost)
        return xstrdup(nh.relayhost);
    return xstrdup(domain_of(addr));
}

int qmgr_nexthop_transport(struct qmgr_msg *q, size_t idx, enum resolve_class cls, struct transport_hop *hop,
                           const char **source)
{
    memset(hop, 0, sizeof *hop);
    char *transport = NULL;
    if (resolver_delivery_transport(nh.resolver, q->m.rcpts[idx].addr, cls, &transport, source) != 0) {
        qmgr_msg_rcpt_result(q, idx, QMSG_DEFERRED, "none", 0, "4.3.0", "transport_maps lookup failure");
        return -1;
    }
    char *err = NULL;
    int rc = transport_parse(transport, nh.rt->queue_dir, hop, &err);
    if (rc != 0) {
        /* a broken entry or parameter waits for its fix, never sends
         * mail somewhere unintended */
        char *why = xasprintf("%s: %s", *source, err);
        log_warn("%s: %s", q->m.id, why);
        qmgr_msg_rcpt_result(q, idx, QMSG_DEFERRED, "none", 0, "4.3.5", why);
        free(why);
        free(err);
    }
    free(transport);
    return rc;
}

void qmgr_nexthop_discard(struct qmgr_msg *q, size_t idx, const char *text)
{
    char *why = xasprintf("delivered to discard: %s", text);
    qmgr_msg_rcpt_result(q, idx, QMSG_SENT, "none", 0, "2.0.0", why);
    free(why);
}

char *qmgr_nexthop_key(const char *addr, const struct transport_hop *hop, int *lmtp)
{
    *lmtp = hop && hop->kind == TRANSPORT_LMTP;
    if (*lmtp)
        return transport_lmtp_key(hop);
    if (hop && hop->kind == TRANSPORT_SMTP && hop->nexthop[0])
        return xstrdup(hop->nexthop);
    return default_nexthop(addr);
}

/* ---------- exchangers ---------- */

long qmgr_nexthop_usable_hosts(const struct dns_route *r)
{
    /* An address literal ([127.0.0.1]:10025, a content filter beside us)
     * is where the admin sends mail, on whatever port: only what DNS names
     * for a domain is checked against our own addresses, as Postfix does. */
    for (size_t i = 0; i < r->nhosts; i++) {
        if (!host_is_us(&r->hosts[i], !r->literal))
            continue;
        size_t n = 0;
        while (n < r->nhosts && r->hosts[n].pref < r->hosts[i].pref)
            n++;
        return n == 0 ? -1 : (long)n;
    }
    return (long)r->nhosts;
}

/* ---------- TLS and login ---------- */

/* "none" "may" "encrypt" "verify" "secure" (Postfix's levels; dane is
 * not built yet and counts as may); *secure tells the last. -1: unknown. */
static int tls_level_of(const char *word, size_t len, int *secure)
{
    static const struct {
        const char *name;
        int level, secure;
    } levels[] = {{"none", SMTPC_TLS_NONE, 0},     {"may", SMTPC_TLS_MAY, 0},
                  {"encrypt", SMTPC_TLS_ENCRYPT, 0}, {"verify", SMTPC_TLS_VERIFY, 0},
                  {"secure", SMTPC_TLS_VERIFY, 1}, {"dane", SMTPC_TLS_MAY, 0}};
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
        if (strlen(levels[i].name) == len && strncasecmp(levels[i].name, word, len) == 0) {
            *secure = levels[i].secure;
            return levels[i].level;
        }
    return -1;
}

/* smtp_tls_policy_maps (the next hop as written, then its host), else
 * smtp_tls_security_level. */
static void smtp_tls(const char *key, const char *host, int *level_out, char **match)
{
    int secure = nh.tls_default_secure;
    *level_out = nh.tls_default;
    char *value = NULL;
    if (nh.tls_policy && (map_list_lookup(nh.tls_policy, key, &value) == 1 ||
                          map_list_lookup(nh.tls_policy, host, &value) == 1)) {
        char *v = str_trim(value);
        size_t len = strcspn(v, " \t");
        int level = tls_level_of(v, len, &secure);
        if (level < 0)
            log_warn("smtp_tls_policy_maps: unknown level in \"%s\" for %s; using encrypt", v, key);
        *level_out = level < 0 ? SMTPC_TLS_ENCRYPT : level;
        const char *m = strstr(v + len, "match=");
        if (m) {
            m += 6;
            *match = xstrndup(m, strcspn(m, " \t"));
        }
    }
    free(value);
    if (*level_out >= SMTPC_TLS_VERIFY && !*match && secure)
        *match = xasprintf("%s:.%s", host, host);
}

void qmgr_nexthop_tls(const char *key, const char *host, int lmtp, int *level, char **match)
{
    *match = NULL;
    if (!lmtp) {
        smtp_tls(key, host, level, match);
        return;
    }
    /* lmtp_tls_security_level: none unless set, as a mailbox store is
     * usually on this host or next to it */
    *level = nh.lmtp_tls_level;
    if (*level >= SMTPC_TLS_VERIFY && nh.lmtp_tls_secure)
        *match = xstrdup(host);
}

void qmgr_nexthop_login(const char *key, const char *host, char **user, char **pass)
{
    *user = *pass = NULL;
    if (!nh.sasl_passwords)
        return;
    char *value = NULL;
    if (map_list_lookup(nh.sasl_passwords, key, &value) != 1 &&
        map_list_lookup(nh.sasl_passwords, host, &value) != 1) {
        free(value);
        return;
    }
    char *colon = strchr(value, ':');
    if (colon) {
        *user = xstrndup(value, (size_t)(colon - value));
        *pass = xstrdup(colon + 1);
    } else {
        log_warn("smtp_sasl_password_maps: the entry for %s is not user:password", key);
    }
    explicit_bzero(value, strlen(value));
    free(value);
}

/* ---------- setup ---------- */

int qmgr_nexthop_init(struct runtime *rt, struct resolver *resolver, char **err)
{
    memset(&nh, 0, sizeof nh);
    struct conf *c = rt->conf;
    nh.rt = rt;
    nh.resolver = resolver;
    nh.relayhost = xstrdup(conf_str(c, "relayhost"));
    nh.myhostname = xstrdup(conf_str(c, "myhostname"));
    nh.port = (unsigned)conf_int(c, "smtp_tcp_port");
    const char *level = conf_str(c, "smtp_tls_security_level");
    nh.tls_default = tls_level_of(level, strlen(level), &nh.tls_default_secure);
    if (nh.tls_default < 0)
        nh.tls_default = SMTPC_TLS_MAY;
    const char *lmtp_level = conf_str(c, "lmtp_tls_security_level");
    nh.lmtp_tls_level = *lmtp_level ? tls_level_of(lmtp_level, strlen(lmtp_level), &nh.lmtp_tls_secure)
                                    : SMTPC_TLS_NONE;
    if (nh.lmtp_tls_level < 0)
        nh.lmtp_tls_level = SMTPC_TLS_NONE;
    const char *sp = conf_str(c, "smtp_sasl_password_maps");
    if (conf_bool(c, "smtp_sasl_auth_enable") && *sp && !(nh.sasl_passwords = map_list_open(sp, 0, err)))
        return -1;
    const char *pm = conf_str(c, "smtp_tls_policy_maps");
    if (*pm && !(nh.tls_policy = map_list_open(pm, 0, err)))
        return -1;
    collect_own_addresses();
    return 0;
}

void qmgr_nexthop_shutdown(void)
{
    if (nh.tls_policy)
        map_list_close(nh.tls_policy);
    if (nh.sasl_passwords)
        map_list_close(nh.sasl_passwords);
    free(nh.relayhost);
    free(nh.myhostname);
    free(nh.own);
    memset(&nh, 0, sizeof nh);
}
