/* fuzz_dns_route: libFuzzer target for what the queue makes of DNS
 * answers: next hops for a mail domain or a host (MX records, then A/AAAA
 * per exchanger; dns_route.c) and raw lookups (dns_lookup). The answers
 * arrive as libunbound hands them over (struct ub_result, RDATA in wire
 * form), through the test resolver of dns_internal.h, and the result comes
 * out of a real libevent loop. Built and run by `make fuzz` and
 * `make fuzz-long`.
 *
 * Input: an options byte, then NUL-terminated fields: the domain asked for
 * and a canonical name for the answers (empty: none), then one answer per
 * lookup in the order they are made:
 *   u8 flags   0x01 havedata, 0x02 nxdomain, 0x04 secure, 0x08 bogus,
 *              0x10 the lookup failed (libunbound error, no result),
 *              0x20 the rest of the lookups never answer (timeout);
 *   u8 rcode, u8 record count (% 8), then per record u8 length and RDATA.
 * A lookup left without an answer when the input ends times out.
 * Options byte: 0x01 no IPv4, 0x02 no IPv6 (both: both wanted),
 * 0x04 dns_resolve_host instead of dns_resolve_mail_domain, 0x08 a raw
 * dns_lookup of the type in the next byte instead, 0x10 only two lookups
 * in flight at once (the others wait their turn).
 * Lookups whose query no longer wants them (cancelled, timed out) are
 * answered too, as libunbound goes on with them; so is every lookup left
 * at the end, and then no slot, waiting lookup or freed query may remain.
 *
 * Checks, besides the sanitizers, the promises of dns.h: the callback runs
 * once; a route with DNS_OK has 1..DNS_MAX_MX_HOSTS distinct hosts in
 * ascending preference, each with 1..DNS_MAX_HOST_ADDRS addresses of the
 * wanted families, names in lower case of DNS characters; a failure has a
 * reason and no hosts; a raw answer has records only with DNS_OK. */
#include <event2/event.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unbound.h>

#include "dns/dns_internal.h"
#include "fuzz_util.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_LOOKUPS (DNS_MAX_SUBS * 2)

struct harness {
    struct fuzz_fields in;
    const char *canonname;
    struct dns_sub *waiting[MAX_LOOKUPS];
    size_t nwaiting, next;
    int silent;            /* the remaining lookups never answer */
    int calls;
    struct dns_route *route;
    struct dns_rrset *rrset;
};

static int queue_lookup(void *arg, const char *name, int rrtype, struct dns_sub *s)
{
    struct harness *h = arg;
    FUZZ_REQUIRE(name != NULL && name[0] != '\0');
    FUZZ_REQUIRE(rrtype > 0 && rrtype <= 65535);
    FUZZ_REQUIRE(h->nwaiting < MAX_LOOKUPS);
    h->waiting[h->nwaiting++] = s;
    return 0;
}

/* A result built the way libunbound allocates one (ub_resolve_free frees it). */
static struct ub_result *make_result(struct harness *h, const struct dns_sub *s, unsigned flags)
{
    struct ub_result *res = xcalloc(1, sizeof *res);
    res->qname = xstrdup("fuzz.example");
    res->qtype = s->rrtype;
    res->qclass = 1;
    res->havedata = !!(flags & 0x01);
    res->nxdomain = !!(flags & 0x02);
    res->secure = !!(flags & 0x04);
    res->bogus = !!(flags & 0x08);
    if (res->bogus)
        res->why_bogus = xstrdup("signature expired");
    res->rcode = (int)fuzz_byte(&h->in);
    res->ttl = 300;
    if (h->canonname[0] != '\0')
        res->canonname = xstrdup(h->canonname);
    size_t n = fuzz_byte(&h->in) % 8;
    res->data = xcalloc(n + 1, sizeof *res->data);
    res->len = xcalloc(n + 1, sizeof *res->len);
    for (size_t i = 0; i < n; i++) {
        size_t want = fuzz_byte(&h->in), len;
        const uint8_t *p = fuzz_rest(&h->in, &len);
        if (len > want) {
            h->in.pos -= len - want;
            len = want;
        }
        res->data[i] = xmalloc(len ? len : 1);
        memcpy(res->data[i], p, len);
        res->len[i] = (int)len;
    }
    return res;
}

static void route_done(void *arg, struct dns_route *route)
{
    struct harness *h = arg;
    h->calls++;
    h->route = route;
}

static void rrset_done(void *arg, struct dns_rrset *rrset)
{
    struct harness *h = arg;
    h->calls++;
    h->rrset = rrset;
}

static void check_name(const char *name)
{
    size_t len = strlen(name);
    FUZZ_REQUIRE(len > 0 && len <= DNS_MAX_NAME && name[len - 1] != '.');
    for (const char *p = name; *p; p++)
        FUZZ_REQUIRE(*p == '.' || (dns_name_char_ok((unsigned char)*p) && !(*p >= 'A' && *p <= 'Z')));
}

static void check_route(const struct dns_route *r, int want4, int want6, int mail_domain)
{
    FUZZ_REQUIRE(r != NULL && r->domain != NULL);
    if (r->status != DNS_OK) {
        FUZZ_REQUIRE(r->why != NULL && r->why[0] != '\0');
        FUZZ_REQUIRE(r->nhosts == 0);
        return;
    }
    FUZZ_REQUIRE(r->nhosts >= 1 && r->nhosts <= DNS_MAX_MX_HOSTS);
    if (!r->from_mx || !mail_domain)
        FUZZ_REQUIRE(r->nhosts == 1 && r->hosts[0].pref == 0);
    for (size_t i = 0; i < r->nhosts; i++) {
        const struct dns_host *host = &r->hosts[i];
        if (!r->literal)
            check_name(host->name);
        for (size_t k = 0; k < i; k++)
            FUZZ_REQUIRE(strcmp(r->hosts[k].name, host->name) != 0);
        if (i > 0)
            FUZZ_REQUIRE(r->hosts[i - 1].pref <= host->pref);
        FUZZ_REQUIRE(host->naddrs >= 1 && host->naddrs <= DNS_MAX_HOST_ADDRS);
        for (size_t k = 0; k < host->naddrs; k++) {
            int family = host->addrs[k].ss_family;
            FUZZ_REQUIRE((family == AF_INET && want4) || (family == AF_INET6 && want6));
        }
    }
}

static void check_rrset(const struct dns_rrset *rs)
{
    FUZZ_REQUIRE(rs != NULL && rs->name != NULL);
    if (rs->status != DNS_OK) {
        FUZZ_REQUIRE(rs->why != NULL && rs->nrrs == 0);
        return;
    }
    FUZZ_REQUIRE(rs->why == NULL);
    if (rs->canonname)
        FUZZ_REQUIRE(strcmp(rs->canonname, rs->name) != 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct event_base *base;
    if (base == NULL) {
        log_set_stderr(0);
        base = event_base_new();
        FUZZ_REQUIRE(base != NULL);
    }
    struct harness h;
    memset(&h, 0, sizeof h);
    h.in = (struct fuzz_fields){data, size, 0};
    unsigned options = fuzz_byte(&h.in);
    int raw_type = options & 0x08 ? (int)fuzz_byte(&h.in) : 0;
    char *domain = fuzz_field(&h.in), *canonname = fuzz_field(&h.in);
    h.canonname = canonname;

    /* A context as dns_new makes it, less libunbound. */
    struct dns_ctx d;
    memset(&d, 0, sizeof d);
    d.base = base;
    d.want_ipv4 = !(options & 0x01);
    d.want_ipv6 = !(options & 0x02);
    if (!d.want_ipv4 && !d.want_ipv6)
        d.want_ipv4 = d.want_ipv6 = 1;
    d.timeout_ms = 1;
    d.inflight_max = options & 0x10 ? 2 : 0;
    dns_test_cache_init(&d);
    dns_test_set_resolver(queue_lookup, &h);

    if (options & 0x08)
        dns_lookup(&d, domain, raw_type, rrset_done, &h);
    else if (options & 0x04)
        dns_resolve_host(&d, domain, route_done, &h);
    else
        dns_resolve_mail_domain(&d, domain, route_done, &h);

    /* Answers in the order of the lookups; answering one may start more. */
    while (h.next < h.nwaiting && !h.silent && h.in.pos < h.in.size) {
        struct dns_sub *s = h.waiting[h.next++];
        if (!s->pending) {   /* the query already has its result */
            dns_test_answer(s, UB_SERVFAIL, NULL);
            continue;
        }
        unsigned flags = fuzz_byte(&h.in);
        if (flags & 0x20) {
            h.silent = 1;
            h.next--;   /* answered only at the end, unwanted */
            break;
        }
        if (flags & 0x10)
            dns_test_answer(s, UB_SERVFAIL, NULL);
        else
            dns_test_answer(s, 0, make_result(&h, s, flags));
    }
    /* The result, or the timeout for lookups still waiting. */
    event_base_loop(base, EVLOOP_ONCE);
    FUZZ_REQUIRE(h.calls == 1);
    if (options & 0x08) {
        check_rrset(h.rrset);
        dns_rrset_free(h.rrset);
    } else {
        check_route(h.route, d.want_ipv4, d.want_ipv6, !(options & 0x04));
        dns_route_free(h.route);
    }
    FUZZ_REQUIRE(list_empty(&d.queries));
    /* libunbound answers what it was given, wanted or not: that frees the
     * slots and the query kept for them. */
    while (h.next < h.nwaiting)
        dns_test_answer(h.waiting[h.next++], UB_SERVFAIL, NULL);
    FUZZ_REQUIRE(d.inflight == 0 && list_empty(&d.waiting) && list_empty(&d.orphans));
    dns_test_cache_free(&d);
    dns_test_set_resolver(NULL, NULL);
    free(domain);
    free(canonname);
    return 0;
}
