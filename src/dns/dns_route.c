/* dns_route: where mail for a domain goes (RFC 5321 §5.1, RFC 7505).
 * The MX answer becomes a sorted, shuffled, deduplicated list of exchangers
 * (or the implicit MX), each exchanger's A/AAAA lookups run in parallel, and
 * the result is the exchangers that have an address, or the reason none
 * does. Part of the dns module: see dns.h. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unbound.h>

#include "dns/dns_internal.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

int dns_reverse_labels(const char *addr, char out[80])
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, addr, &a4) == 1) {
        const unsigned char *o = (const unsigned char *)&a4;
        snprintf(out, 80, "%u.%u.%u.%u", o[3], o[2], o[1], o[0]);
        return AF_INET;
    }
    if (inet_pton(AF_INET6, addr, &a6) != 1)
        return 0;
    static const char hex[] = "0123456789abcdef";
    char *w = out;
    for (int i = 15; i >= 0; i--) {
        *w++ = hex[a6.s6_addr[i] & 15];
        *w++ = '.';
        *w++ = hex[a6.s6_addr[i] >> 4];
        *w++ = i ? '.' : '\0';
    }
    return AF_INET6;
}

int dns_txt_text(const struct dns_rr *rr, size_t max, struct strbuf *out)
{
    size_t added = 0;
    for (size_t k = 0; k < rr->len;) {
        size_t l = rr->data[k++];
        if (l > rr->len - k || added + l > max)
            return -1;
        strbuf_append(out, rr->data + k, l);
        added += l;
        k += l;
    }
    return 0;
}

char *dns_rdata_name(const unsigned char *p, size_t len)
{
    struct strbuf sb = STRBUF_INIT;
    size_t i = 0;
    for (;;) {
        if (i >= len)
            goto bad;
        size_t l = p[i++];
        if (l == 0)
            break;
        if (l > 63 || l > len - i || sb.len + 1 + l > DNS_MAX_NAME + 1)
            goto bad;
        if (sb.len > 0)
            strbuf_putc(&sb, '.');
        for (size_t k = 0; k < l; k++) {
            if (!dns_name_char_ok(p[i + k]))
                goto bad;
        }
        strbuf_append(&sb, p + i, l);
        i += l;
    }
    if (i != len || sb.len > DNS_MAX_NAME)
        goto bad;
    char *s = strbuf_detach(&sb);
    if (s == NULL)
        s = xstrdup("");
    str_lower(s);
    return s;
bad:
    strbuf_free(&sb);
    return NULL;
}

struct dns_route *dns_route_new(const char *domain, enum dns_status st, char *why)
{
    struct dns_route *r = xcalloc(1, sizeof *r);
    r->status = st;
    r->why = why;
    r->domain = xstrdup(domain);
    return r;
}

static void fail_route(struct dns_query *q, enum dns_status st, char *why)
{
    q->route = dns_route_new(q->name, st, why);
    dns_complete(q);
}

/* ---- MX ---- */

struct mx_rec {
    unsigned pref;
    uint32_t tiebreak;        /* random: shuffles equal preferences */
    char *name;
};

static int mx_cmp(const void *a, const void *b)
{
    const struct mx_rec *x = a, *y = b;
    if (x->pref != y->pref)
        return x->pref < y->pref ? -1 : 1;
    if (x->tiebreak != y->tiebreak)
        return x->tiebreak < y->tiebreak ? -1 : 1;
    return 0;
}

static void start_address_lookups(struct dns_query *q)
{
    dns_launch_begin(q);
    for (size_t i = 0; i < q->nhosts && !q->ready; i++) {
        if (q->d->want_ipv6)
            dns_launch(q, q->hosts[i].name, DNS_TYPE_AAAA, i);
        if (q->d->want_ipv4)
            dns_launch(q, q->hosts[i].name, DNS_TYPE_A, i);
    }
    dns_launch_end(q);
}

static void add_host(struct dns_query *q, const char *name, unsigned pref)
{
    struct dns_host_state *h = &q->hosts[q->nhosts++];
    h->name = xstrdup(name);
    h->pref = pref;
    h->secure = 1;
}

void dns_route_mx_answer(struct dns_query *q, int err, struct ub_result *res)
{
    char *why = NULL;
    enum dns_status st = dns_classify(q->name, DNS_TYPE_MX, err, res, &why);
    if (st == DNS_NODATA) {
        /* No MX: the domain itself is the implicit MX (preference 0). */
        free(why);
        q->mx_secure = res->secure;
        q->hosts = xcalloc(1, sizeof *q->hosts);
        add_host(q, q->name, 0);
        start_address_lookups(q);
        return;
    }
    if (st != DNS_OK) {
        fail_route(q, st, why);
        return;
    }
    q->mx_secure = res->secure;
    q->from_mx = 1;

    size_t n = 0, nrec = 0, nroot = 0;
    while (res->data[n] != NULL)
        n++;
    struct mx_rec *recs = xcalloc(n ? n : 1, sizeof *recs);
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = (const unsigned char *)res->data[i];
        size_t len = res->len[i] > 0 ? (size_t)res->len[i] : 0;
        if (len < 3)
            continue;
        char *target = dns_rdata_name(p + 2, len - 2);
        if (target == NULL)
            continue;
        recs[nrec].pref = (unsigned)p[0] << 8 | p[1];
        recs[nrec].tiebreak = arc4random();
        recs[nrec].name = target;
        if (target[0] == '\0')
            nroot++;
        nrec++;
    }
    if (nrec == 0) {
        fail_route(q, DNS_TEMPFAIL, xasprintf("Malformed MX answer for name=%s", q->name));
    } else if (nroot == nrec) {
        /* RFC 7505: the domain says it accepts no mail. A root target is
         * never a host, so several of them (against the RFC) mean the same. */
        fail_route(q, DNS_NULL_MX, xasprintf("Domain %s does not accept mail (nullMX)", q->name));
    } else {
        qsort(recs, nrec, sizeof *recs, mx_cmp);
        q->hosts = xcalloc(DNS_MAX_MX_HOSTS, sizeof *q->hosts);
        for (size_t i = 0; i < nrec && q->nhosts < DNS_MAX_MX_HOSTS; i++) {
            if (recs[i].name[0] == '\0')
                continue;               /* a null MX beside real ones: unusable */
            int seen = 0;               /* listed twice: the better preference counts */
            for (size_t k = 0; k < q->nhosts && !seen; k++)
                seen = strcmp(q->hosts[k].name, recs[i].name) == 0;
            if (!seen)
                add_host(q, recs[i].name, recs[i].pref);
        }
        start_address_lookups(q);
    }
    for (size_t i = 0; i < nrec; i++)
        free(recs[i].name);
    free(recs);
}

/* ---- addresses ---- */

void dns_route_addr_answer(struct dns_query *q, struct dns_sub *s, int err, struct ub_result *res)
{
    struct dns_host_state *h = &q->hosts[s->host];
    char *why = NULL;
    enum dns_status st = dns_classify(h->name, s->rrtype, err, res, &why);
    h->lookups++;
    if (res == NULL || !res->secure)
        h->secure = 0;                  /* a validated "no AAAA" leaves it secure */
    if (st == DNS_OK) {
        size_t want = s->rrtype == DNS_TYPE_A ? 4 : 16, got = 0;
        for (size_t i = 0; res->data[i] != NULL; i++) {
            if (res->len[i] < 0 || (size_t)res->len[i] != want)
                continue;
            if (want == 4 && h->n4 < DNS_MAX_HOST_ADDRS)
                memcpy(h->v4[h->n4++], res->data[i], 4);
            else if (want == 16 && h->n6 < DNS_MAX_HOST_ADDRS)
                memcpy(h->v6[h->n6++], res->data[i], 16);
            got++;
        }
        if (got > 0)
            return;
        char *type = dns_type_name(s->rrtype);
        why = xasprintf("Malformed %s answer for name=%s", type, h->name);
        free(type);
        st = DNS_TEMPFAIL;
    }
    if (st == DNS_TEMPFAIL) {
        h->tempfail++;
        if (h->why_temp == NULL) {
            h->why_temp = why;
            why = NULL;
        }
    } else {
        if (st == DNS_NXDOMAIN)
            h->nxdomain++;
        if (h->why_perm == NULL) {
            h->why_perm = why;
            why = NULL;
        }
    }
    free(why);
}

static void fill_addrs(const struct dns_host_state *h, struct dns_host *out)
{
    size_t total = h->n4 + h->n6, i4 = 0, i6 = 0;
    if (total > DNS_MAX_HOST_ADDRS)
        total = DNS_MAX_HOST_ADDRS;
    out->addrs = xcalloc(total, sizeof *out->addrs);
    while (out->naddrs < total) {
        if (i6 < h->n6) {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->addrs[out->naddrs++];
            sin6->sin6_family = AF_INET6;
            memcpy(&sin6->sin6_addr, h->v6[i6++], 16);
        }
        if (i4 < h->n4 && out->naddrs < total) {
            struct sockaddr_in *sin = (struct sockaddr_in *)&out->addrs[out->naddrs++];
            sin->sin_family = AF_INET;
            memcpy(&sin->sin_addr, h->v4[i4++], 4);
        }
    }
}

/* The address lookups are over: the usable exchangers in order, or why
 * there is none. */
static struct dns_route *build_route(struct dns_query *q)
{
    size_t usable = 0;
    for (size_t i = 0; i < q->nhosts; i++)
        usable += q->hosts[i].n4 + q->hosts[i].n6 > 0;
    if (usable == 0) {
        /* RFC 5321 §5.1: MX records, none usable (or an unusable implicit
         * MX) is an error; it is only worth retrying when a lookup failed
         * temporarily. The best exchanger's reason speaks for all. */
        struct dns_host_state *temp = NULL, *first = q->nhosts ? &q->hosts[0] : NULL;
        int all_nx = q->nhosts > 0;
        for (size_t i = 0; i < q->nhosts; i++) {
            if (q->hosts[i].tempfail && temp == NULL)
                temp = &q->hosts[i];
            if (q->hosts[i].nxdomain < q->hosts[i].lookups || q->hosts[i].lookups == 0)
                all_nx = 0;
        }
        if (temp != NULL)
            return dns_route_new(q->name, DNS_TEMPFAIL, xstrdup(temp->why_temp));
        if (first == NULL || first->why_perm == NULL)
            return dns_route_new(q->name, DNS_TEMPFAIL, xasprintf("No address lookup completed for %s", q->name));
        return dns_route_new(q->name, !q->from_mx && all_nx ? DNS_NXDOMAIN : DNS_NODATA, xstrdup(first->why_perm));
    }
    struct dns_route *r = dns_route_new(q->name, DNS_OK, NULL);
    r->from_mx = q->from_mx;
    r->mx_secure = q->mx_secure;
    r->hosts = xcalloc(usable, sizeof *r->hosts);
    struct strbuf skipped = STRBUF_INIT;
    for (size_t i = 0; i < q->nhosts; i++) {
        struct dns_host_state *h = &q->hosts[i];
        if (h->n4 + h->n6 == 0) {
            strbuf_printf(&skipped, "%s%s (%s)", skipped.len ? "; " : "", h->name,
                      h->why_temp ? h->why_temp : h->why_perm ? h->why_perm : "no address");
            continue;
        }
        struct dns_host *out = &r->hosts[r->nhosts++];
        out->name = xstrdup(h->name);
        out->pref = h->pref;
        out->secure = h->secure;
        fill_addrs(h, out);
    }
    if (skipped.len > 0)
        r->why = xasprintf("skipped MX hosts without an address: %s", strbuf_str(&skipped));
    strbuf_free(&skipped);
    return r;
}

void dns_route_finish(struct dns_query *q)
{
    q->route = build_route(q);
    dns_complete(q);
}

/* The time is up while address lookups still run: exchangers already
 * resolved are worth trying; the others failed temporarily. */
struct dns_route *dns_route_at_timeout(struct dns_query *q, const char *why)
{
    for (size_t i = 0; i < q->nsubs; i++) {
        if (!q->subs[i].pending || q->subs[i].rrtype == DNS_TYPE_MX)
            continue;
        struct dns_host_state *h = &q->hosts[q->subs[i].host];
        h->tempfail++;
        if (h->why_temp == NULL)
            h->why_temp = xstrdup(why);
    }
    dns_cancel_subs(q);
    return build_route(q);
}

/* ---- address literals ---- */

/* "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC 5321 §4.1.3) as a one-hop route. */
static struct dns_route *literal_route(const struct dns_ctx *d, const char *domain)
{
    size_t len = strlen(domain);
    char *inner = xstrndup(domain + 1, len - 2);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    int family = 0;
    if (str_case_prefix(inner, "IPv6:")) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        if (inet_pton(AF_INET6, inner + 5, &sin6->sin6_addr) == 1)
            family = sin6->sin6_family = AF_INET6;
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        if (inet_pton(AF_INET, inner, &sin->sin_addr) == 1)
            family = sin->sin_family = AF_INET;
    }
    free(inner);
    if (family == 0)
        return dns_route_new(domain, DNS_INVALID, xasprintf("Unsupported address literal %s", domain));
    if ((family == AF_INET && !d->want_ipv4) || (family == AF_INET6 && !d->want_ipv6))
        return dns_route_new(domain, DNS_NODATA,
                         xasprintf("Address literal %s: %s is disabled by inet_protocols", domain,
                                   family == AF_INET ? "IPv4" : "IPv6"));
    char text[INET6_ADDRSTRLEN];
    const void *addr = family == AF_INET ? (const void *)&((struct sockaddr_in *)&ss)->sin_addr
                                         : (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
    inet_ntop(family, addr, text, sizeof text);
    struct dns_route *r = dns_route_new(domain, DNS_OK, NULL);
    r->literal = 1;
    r->hosts = xcalloc(1, sizeof *r->hosts);
    r->nhosts = 1;
    r->hosts[0].name = xstrdup(text);
    r->hosts[0].addrs = xmalloc(sizeof ss);
    memcpy(r->hosts[0].addrs, &ss, sizeof ss);
    r->hosts[0].naddrs = 1;
    return r;
}

struct dns_query *dns_resolve_mail_domain(struct dns_ctx *d, const char *domain, dns_route_cb cb, void *arg)
{
    struct dns_query *q = dns_query_new(d, QUERY_ROUTE, arg);
    q->route_cb = cb;
    size_t len = strlen(domain);
    if (len >= 2 && domain[0] == '[' && domain[len - 1] == ']') {
        q->name = xstrdup(domain);
        q->route = literal_route(d, domain);
        dns_complete(q);
        return q;
    }
    char *why = NULL;
    q->name = dns_normalize_name(domain, &why);
    if (q->name == NULL) {
        q->name = xstrdup(domain);
        fail_route(q, DNS_INVALID, why);
        return q;
    }
    dns_launch_begin(q);
    dns_launch(q, q->name, DNS_TYPE_MX, 0);
    dns_launch_end(q);
    return q;
}

struct dns_query *dns_resolve_host(struct dns_ctx *d, const char *host, dns_route_cb cb, void *arg)
{
    /* An IP address given bare is its own literal. */
    unsigned char buf[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1) {
        char *lit = inet_pton(AF_INET, host, buf) == 1 ? xasprintf("[%s]", host) : xasprintf("[IPv6:%s]", host);
        struct dns_query *q = dns_resolve_mail_domain(d, lit, cb, arg);
        free(lit);
        return q;
    }
    size_t len = strlen(host);
    if (len >= 2 && host[0] == '[' && host[len - 1] == ']')
        return dns_resolve_mail_domain(d, host, cb, arg);
    struct dns_query *q = dns_query_new(d, QUERY_ROUTE, arg);
    q->route_cb = cb;
    char *why = NULL;
    q->name = dns_normalize_name(host, &why);
    if (q->name == NULL) {
        q->name = xstrdup(host);
        fail_route(q, DNS_INVALID, why);
        return q;
    }
    q->hosts = xcalloc(1, sizeof *q->hosts);
    add_host(q, q->name, 0);
    start_address_lookups(q);
    return q;
}

void dns_route_free(struct dns_route *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nhosts; i++) {
        free(r->hosts[i].name);
        free(r->hosts[i].addrs);
    }
    free(r->hosts);
    free(r->why);
    free(r->domain);
    free(r);
}

