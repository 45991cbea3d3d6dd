/* dns: the context (libunbound inside a libevent loop), the life cycle
 * every query shares, and raw lookups; the mail routing rules are in
 * dns_route.c, the answer cache of raw lookups in dns_cache.c. See dns.h
 * for the contract.
 *
 * Every query, however it ends (answer, failure found before any lookup,
 * timeout), finishes the same way: its result is stored, and its one timer
 * event is made active, so the caller's callback always runs later from the
 * loop, never inside dns_* or inside ub_process(); the callback may
 * therefore start, cancel or free anything, including the context. */
#include "dns/dns.h"
#include "dns/dns_internal.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unbound.h>

#include "util/clock.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

#define RRCLASS_IN 1
#define RCODE_NXDOMAIN 3

int dns_status_permanent(enum dns_status s)
{
    return s != DNS_OK && s != DNS_TEMPFAIL;
}

const char *dns_status_dsn(enum dns_status s)
{
    switch (s) {
    case DNS_OK: return "2.0.0";
    case DNS_NXDOMAIN: return "5.4.4";
    case DNS_NODATA: return "5.4.4";
    case DNS_NULL_MX: return "5.1.10";
    case DNS_INVALID: return "5.1.2";
    case DNS_TEMPFAIL: return "4.4.3";
    }
    return "4.4.3";
}

const char *dns_status_name(enum dns_status s)
{
    switch (s) {
    case DNS_OK: return "ok";
    case DNS_NXDOMAIN: return "nxdomain";
    case DNS_NODATA: return "nodata";
    case DNS_NULL_MX: return "null-mx";
    case DNS_INVALID: return "invalid";
    case DNS_TEMPFAIL: return "tempfail";
    }
    return "tempfail";
}

char *dns_type_name(int rrtype)
{
    switch (rrtype) {
    case DNS_TYPE_A: return xstrdup("A");
    case DNS_TYPE_PTR: return xstrdup("PTR");
    case DNS_TYPE_MX: return xstrdup("MX");
    case DNS_TYPE_TXT: return xstrdup("TXT");
    case DNS_TYPE_AAAA: return xstrdup("AAAA");
    case DNS_TYPE_TLSA: return xstrdup("TLSA");
    default: return xasprintf("TYPE%d", rrtype);
    }
}

static const char *rcode_name(int rcode)
{
    switch (rcode) {
    case 1: return "FORMERR";
    case 2: return "SERVFAIL";
    case 4: return "NOTIMP";
    case 5: return "REFUSED";
    default: return "unexpected rcode";
    }
}

int dns_name_char_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* A host name as looked up: LDH labels (underscore tolerated, for service
 * owner names and sloppy real hosts) of 1-63 octets, at most 253 in all, one
 * optional root dot. Returns it lower-cased without the dot, or NULL with
 * *why. Non-ASCII names must arrive as A-labels: turning U-labels into
 * A-labels (IDNA) is not done here. */
char *dns_normalize_name(const char *in, char **why)
{
    size_t len = strlen(in);
    if (len > 0 && in[len - 1] == '.')
        len--;
    if (len == 0 || len > DNS_MAX_NAME) {
        *why = xasprintf("Invalid domain name \"%s\": %s", in, len == 0 ? "empty" : "too long");
        return NULL;
    }
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '.') {
            if (label == 0) {
                *why = xasprintf("Invalid domain name \"%s\": empty label", in);
                return NULL;
            }
            label = 0;
            continue;
        }
        if (c >= 0x80) {
            *why = xasprintf("Invalid domain name \"%s\": non-ASCII (needs its IDNA A-label form)", in);
            return NULL;
        }
        if (!dns_name_char_ok(c) || ++label > 63) {
            *why = xasprintf("Invalid domain name \"%s\": %s", in, label > 63 ? "label too long" : "bad character");
            return NULL;
        }
    }
    if (label == 0) {
        *why = xasprintf("Invalid domain name \"%s\": empty label", in);
        return NULL;
    }
    char *out = xstrndup(in, len);
    str_lower(out);
    return out;
}

/* Sorts out one libunbound answer: DNS_OK when it has records, otherwise the
 * failure, with a reason worded like Postfix's (it ends up in bounces). */
enum dns_status dns_classify(const char *name, int rrtype, int err, const struct ub_result *res, char **why)
{
    char *type = dns_type_name(rrtype);
    enum dns_status st = DNS_OK;
    if (err != 0) {
        st = DNS_TEMPFAIL;
        *why = xasprintf("Name service error for name=%s type=%s: %s", name, type, ub_strerror(err));
    } else if (res->bogus) {
        st = DNS_TEMPFAIL;
        *why = xasprintf("DNSSEC validation failed for name=%s type=%s: %s", name, type,
                         res->why_bogus ? res->why_bogus : "bogus answer");
    } else if (res->nxdomain || res->rcode == RCODE_NXDOMAIN) {
        st = DNS_NXDOMAIN;
        *why = xasprintf("Host or domain name not found. Name service error for name=%s type=%s: Host not found",
                         name, type);
    } else if (res->rcode != 0) {
        st = DNS_TEMPFAIL;
        *why = xasprintf("Host or domain name not found. Name service error for name=%s type=%s: "
                         "Host not found, try again (%s)", name, type, rcode_name(res->rcode));
    } else if (!res->havedata) {
        st = DNS_NODATA;
        *why = xasprintf("Host or domain name not found. Name service error for name=%s type=%s: "
                         "Host found but no data record of requested type", name, type);
    }
    free(type);
    return st;
}

/* ---- query life cycle ---- */

static void ub_answer(void *data, int err, struct ub_result *res);

#ifdef TERN_TEST_BUILD
static dns_test_resolver test_resolver;
static void *test_resolver_arg;

void dns_test_set_resolver(dns_test_resolver fn, void *arg)
{
    test_resolver = fn;
    test_resolver_arg = arg;
}

void dns_test_answer(struct dns_sub *s, int err, struct ub_result *res)
{
    ub_answer(s, err, res);
}
#endif

/* Hands a lookup to libunbound (or, in the test build, to the test resolver). */
static int resolve_async(struct dns_ctx *d, const char *name, int rrtype, struct dns_sub *s)
{
#ifdef TERN_TEST_BUILD
    if (test_resolver != NULL)
        return test_resolver(test_resolver_arg, name, rrtype, s);
#endif
    return ub_resolve_async(d->ub, name, rrtype, RRCLASS_IN, s, ub_answer, &s->async_id);
}

/* ---- lookups in flight ----
 *
 * libunbound keeps resolving a lookup after ub_cancel() (a threaded context
 * only marks it, and drops the answer when it comes), so cancelling frees
 * nothing there: a client that starts lookups and abandons them could grow
 * the process without bound (one smtpd session pipelining EHLO/MAIL pairs
 * reached 880 MB) and delay every other lookup. So this layer does not
 * cancel at libunbound when its caller cancels: a started lookup holds one
 * of the context's inflight_max slots until libunbound answers, whoever
 * still wants the answer; a query
 * freed meanwhile waits in d->orphans for its last answer. Lookups beyond the
 * slots wait their turn in d->waiting, in order, and a cancelled one that
 * never started costs nothing more.
 *
 * libunbound answers every lookup in the end (with SERVFAIL when it gives
 * up), except on its own allocation failures: a freed query still waiting
 * DNS_ORPHAN_HOLD_MAX seconds after it was freed is given up then (with
 * ub_cancel, after which no callback comes), so that lost answers cannot
 * take every place for good. */
#define DNS_ORPHAN_HOLD_MAX 300

static void cancel_async(struct dns_ctx *d, int async_id)
{
#ifdef TERN_TEST_BUILD
    if (test_resolver != NULL)
        return;   /* the test does not answer a lookup given up */
#endif
    ub_cancel(d->ub, async_id);
}

/* Frees the queries freed DNS_ORPHAN_HOLD_MAX ago or more whose answers
 * never came, and their places (oldest first: orphans are in that order). */
static void give_up_stale_orphans(struct dns_ctx *d)
{
    int64_t now = clock_monotonic_ms() / 1000;
    int hold = d->orphan_hold_s > 0 ? d->orphan_hold_s : DNS_ORPHAN_HOLD_MAX;
    unsigned given_up = 0;
    struct dns_query *q;
    while ((q = LIST_FIRST(&d->orphans, struct dns_query, link)) != NULL &&
           now - q->orphaned_at >= hold) {
        for (size_t i = 0; i < q->nsubs; i++) {
            if (q->subs[i].started) {
                cancel_async(d, q->subs[i].async_id);
                q->subs[i].started = 0;
                d->inflight--;
                given_up++;
            }
        }
        list_remove(&d->orphans, &q->link);
        free(q);
    }
    if (given_up > 0)
        log_warn("dns: %u lookups abandoned %d s ago or more were never answered by the resolver library; "
                 "their places go to waiting lookups",
                 given_up, hold);
}

static void sub_wait_drop(struct dns_ctx *d, struct dns_sub *s)
{
    list_remove(&d->waiting, &s->wait_link);
    free(s->wait_name);
    s->wait_name = NULL;
}

/* Hands s to libunbound, or fails it at once as ub_resolve_async would. */
static void sub_start(struct dns_ctx *d, struct dns_sub *s, const char *name)
{
    int rc = resolve_async(d, name, s->rrtype, s);
    if (rc != 0) {
        ub_answer(s, rc, NULL);
        return;
    }
    s->started = 1;
    s->q->started++;
    d->inflight++;
}

static size_t inflight_max(const struct dns_ctx *d)
{
    return d->inflight_max ? d->inflight_max : DNS_MAX_INFLIGHT;
}

/* Starts waiting lookups while slots are free. A start that fails at once
 * answers its query from here, which may launch more: those queue behind. */
static void start_waiting(struct dns_ctx *d)
{
    if (d->starting)
        return;
    d->starting = 1;
    if (d->inflight >= inflight_max(d) && !list_empty(&d->waiting))
        give_up_stale_orphans(d);
    while (d->inflight < inflight_max(d) && !list_empty(&d->waiting)) {
        struct dns_sub *s = LIST_FIRST(&d->waiting, struct dns_sub, wait_link);
        char *name = s->wait_name;
        s->wait_name = NULL;
        list_remove(&d->waiting, &s->wait_link);
        sub_start(d, s, name);
        free(name);
    }
    d->starting = 0;
}

void dns_cancel_subs(struct dns_query *q)
{
    for (size_t i = 0; i < q->nsubs; i++) {
        struct dns_sub *s = &q->subs[i];
        if (s->wait_name != NULL)
            sub_wait_drop(q->d, s);
        s->pending = 0;   /* a started one keeps its slot until answered */
    }
    q->pending = 0;
}

static void free_hosts(struct dns_query *q)
{
    for (size_t i = 0; i < q->nhosts; i++) {
        free(q->hosts[i].name);
        free(q->hosts[i].why_temp);
        free(q->hosts[i].why_perm);
    }
    free(q->hosts);
    q->hosts = NULL;
    q->nhosts = 0;
}

static void query_free(struct dns_query *q)
{
    dns_cancel_subs(q);
    list_remove(&q->d->queries, &q->link);
    event_free(q->done_event);
    q->done_event = NULL;
    free_hosts(q);
    dns_route_free(q->route);
    q->route = NULL;
    dns_rrset_free(q->rrset);
    q->rrset = NULL;
    free(q->name);
    q->name = NULL;
    if (q->started > 0) {
        q->orphaned_at = clock_monotonic_ms() / 1000;
        list_append(&q->d->orphans, &q->link);   /* until its last answer */
    } else
        free(q);
}

/* The result is stored: hand it over on the next loop iteration. */
void dns_complete(struct dns_query *q)
{
    q->ready = 1;
    dns_cancel_subs(q);
    evtimer_del(q->done_event);
    event_active(q->done_event, EV_TIMEOUT, 0);
}

static struct dns_rrset *rrset_failure(const char *name, int rrtype, enum dns_status st, char *why)
{
    struct dns_rrset *rs = xcalloc(1, sizeof *rs);
    rs->status = st;
    rs->why = why;
    rs->name = xstrdup(name);
    rs->rrtype = rrtype;
    return rs;
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct dns_query *q = arg;
    if (!q->ready) {
        char *why = xasprintf("DNS lookup timed out (name=%s, after %u ms)", q->name, q->timeout_ms);
        if (q->kind == QUERY_RRSET) {
            q->rrset = rrset_failure(q->name, q->rrtype, DNS_TEMPFAIL, why);
        } else if (q->nhosts > 0) {
            q->route = dns_route_at_timeout(q, why);
            free(why);
        } else {
            q->route = dns_route_new(q->name, DNS_TEMPFAIL, why);
        }
        dns_cancel_subs(q);
    }
    void *cb_arg = q->arg;
    if (q->kind == QUERY_ROUTE) {
        dns_route_cb cb = q->route_cb;
        struct dns_route *r = q->route;
        q->route = NULL;
        query_free(q);
        cb(cb_arg, r);
    } else {
        dns_rrset_cb cb = q->rrset_cb;
        struct dns_rrset *rs = q->rrset;
        q->rrset = NULL;
        query_free(q);
        cb(cb_arg, rs);
    }
}

struct dns_query *dns_query_new(struct dns_ctx *d, enum dns_query_kind kind, void *arg)
{
    struct dns_query *q = xcalloc(1, sizeof *q);
    q->d = d;
    q->kind = kind;
    q->arg = arg;
    q->done_event = evtimer_new(d->base, on_done, q);
    if (q->done_event == NULL)
        log_fatal("dns: cannot create a timer event");
    q->timeout_ms = d->timeout_ms;
    struct timeval tv = {(time_t)(d->timeout_ms / 1000), (suseconds_t)(d->timeout_ms % 1000) * 1000};
    evtimer_add(q->done_event, &tv);
    list_append(&d->queries, &q->link);
    return q;
}

/* While a batch of lookups is being started, one extra pending count keeps a
 * lookup that fails at once from finishing the query half-launched. */
void dns_launch_begin(struct dns_query *q)
{
    q->pending++;
}

void dns_launch(struct dns_query *q, const char *name, int rrtype, size_t host)
{
    if (q->nsubs >= DNS_MAX_SUBS)
        log_panic("dns: too many lookups for one query");
    struct dns_sub *s = &q->subs[q->nsubs++];
    s->q = q;
    s->rrtype = rrtype;
    s->host = host;
    s->pending = 1;
    q->pending++;
    struct dns_ctx *d = q->d;
    if (d->inflight < inflight_max(d) && list_empty(&d->waiting)) {
        sub_start(d, s, name);
    } else {
        s->wait_name = xstrdup(name);
        list_append(&d->waiting, &s->wait_link);
        start_waiting(d);   /* gives up stale places if that is what it takes */
    }
}

void dns_launch_end(struct dns_query *q)
{
    if (--q->pending == 0 && !q->ready)
        dns_route_finish(q);
}

/* ---- raw lookups ---- */

static void rrset_answer(struct dns_query *q, int err, struct ub_result *res)
{
    char *why = NULL;
    enum dns_status st = dns_classify(q->name, q->rrtype, err, res, &why);
    struct dns_rrset *rs = rrset_failure(q->name, q->rrtype, st, why);
    if (res != NULL) {
        rs->ttl = res->ttl > 0 ? (unsigned)res->ttl : 0;
        rs->secure = res->secure && !res->bogus;
        if (res->canonname != NULL) {
            /* Same form as every other name here: lower case, no root dot. */
            char *canon = xstrdup(res->canonname);
            size_t len = strlen(canon);
            if (len > 0 && canon[len - 1] == '.')
                canon[len - 1] = '\0';
            str_lower(canon);
            if (strcmp(canon, q->name) != 0)
                rs->canonname = canon;
            else
                free(canon);
        }
    }
    if (st == DNS_OK) {
        size_t n = 0;
        while (res->data[n] != NULL)
            n++;
        rs->rrs = xcalloc(n, sizeof *rs->rrs);
        for (size_t i = 0; i < n; i++) {
            size_t len = res->len[i] > 0 ? (size_t)res->len[i] : 0;
            rs->rrs[i].data = xmalloc(len ? len : 1);
            memcpy(rs->rrs[i].data, res->data[i], len);
            rs->rrs[i].len = len;
        }
        rs->nrrs = n;
    }
    q->rrset = rs;
    dns_cache_put(q->d, rs);
    dns_complete(q);
}

/* libunbound's callback, from ub_process() (or from dns_launch() when a lookup
 * cannot even start). Only stores: the caller hears later, via on_done. */
static void ub_answer(void *data, int err, struct ub_result *res)
{
    struct dns_sub *s = data;
    struct dns_query *q = s->q;
    struct dns_ctx *d = q->d;
    int had_slot = s->started;
    if (had_slot) {
        s->started = 0;
        q->started--;
        d->inflight--;
    }
    if (s->pending) {
        s->pending = 0;
        q->pending--;
        if (!q->ready) {
            if (q->kind == QUERY_RRSET)
                rrset_answer(q, err, res);
            else if (s->rrtype == DNS_TYPE_MX)
                dns_route_mx_answer(q, err, res);
            else
                dns_route_addr_answer(q, s, err, res);
            if (q->kind == QUERY_ROUTE && q->pending == 0 && !q->ready)
                dns_route_finish(q);
        }
    }
    if (res != NULL)
        ub_resolve_free(res);
    if (q->done_event == NULL && q->started == 0) {   /* an orphan's last answer */
        list_remove(&d->orphans, &q->link);
        free(q);
    }
    if (had_slot)
        start_waiting(d);
}

/* ---- public ---- */

struct dns_query *dns_lookup(struct dns_ctx *d, const char *name, int rrtype, dns_rrset_cb cb, void *arg)
{
    struct dns_query *q = dns_query_new(d, QUERY_RRSET, arg);
    q->rrset_cb = cb;
    q->rrtype = rrtype;
    char *why = NULL;
    q->name = dns_normalize_name(name, &why);
    if (q->name == NULL || rrtype <= 0 || rrtype > 65535) {
        if (q->name == NULL)
            q->name = xstrdup(name);
        else
            why = xasprintf("Invalid record type %d", rrtype);
        q->rrset = rrset_failure(q->name, rrtype, DNS_INVALID, why);
        dns_complete(q);
        return q;
    }
    q->rrset = dns_cache_get(d, q->name, rrtype);
    if (q->rrset) {
        dns_complete(q);   /* delivered later, from the loop, as any answer */
        return q;
    }
    dns_launch(q, q->name, rrtype, 0);
    return q;
}

void dns_cancel(struct dns_query *q)
{
    if (q != NULL)
        query_free(q);
}

void dns_rrset_free(struct dns_rrset *rs)
{
    if (rs == NULL)
        return;
    for (size_t i = 0; i < rs->nrrs; i++)
        free(rs->rrs[i].data);
    free(rs->rrs);
    free(rs->why);
    free(rs->name);
    free(rs->canonname);
    free(rs);
}

static void on_ub_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct dns_ctx *d = arg;
    int rc = ub_process(d->ub);
    if (rc != 0)
        log_warn("dns: reading resolver answers: %s", ub_strerror(rc));
}

/* One dns_resolvers entry as libunbound's "addr[@port]". */
static char *resolver_spec(const char *tok, char **err)
{
    char *host = NULL;
    const char *port = NULL;
    const char *colon = strchr(tok, ':');
    if (tok[0] == '[') {
        const char *close = strchr(tok, ']');
        if (close == NULL || (close[1] != '\0' && close[1] != ':')) {
            *err = xasprintf("dns_resolvers: bad entry \"%s\"", tok);
            return NULL;
        }
        host = xstrndup(tok + 1, (size_t)(close - tok - 1));
        if (close[1] == ':')
            port = close + 2;
    } else if (colon != NULL && strchr(colon + 1, ':') == NULL) {
        host = xstrndup(tok, (size_t)(colon - tok));
        port = colon + 1;
    } else {
        host = xstrdup(tok);            /* IPv4 alone, or a bare IPv6 address */
    }
    unsigned char buf[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, host, buf) != 1 && inet_pton(AF_INET6, host, buf) != 1) {
        *err = xasprintf("dns_resolvers: \"%s\" is not an IP address (resolvers are given by address)", tok);
        free(host);
        return NULL;
    }
    if (port != NULL) {
        char *end = NULL;
        long p = port[0] >= '0' && port[0] <= '9' ? strtol(port, &end, 10) : 0;
        if (end == NULL || *end != '\0' || p < 1 || p > 65535) {
            *err = xasprintf("dns_resolvers: bad port in \"%s\"", tok);
            free(host);
            return NULL;
        }
        char *spec = xasprintf("%s@%ld", host, p);
        free(host);
        return spec;
    }
    return host;
}

/* Adds each resolver of the list; returns how many, or -1 with *err. */
static int add_resolvers(struct ub_ctx *ub, const char *list, char **err)
{
    char *copy = xstrdup(list), *save = NULL;
    int n = 0;
    for (char *tok = strtok_r(copy, ", \t\r\n", &save); tok != NULL; tok = strtok_r(NULL, ", \t\r\n", &save)) {
        char *spec = resolver_spec(tok, err);
        if (spec == NULL) {
            n = -1;
            break;
        }
        int rc = ub_ctx_set_fwd(ub, spec);
        free(spec);
        if (rc != 0) {
            *err = xasprintf("dns_resolvers: \"%s\": %s", tok, ub_strerror(rc));
            n = -1;
            break;
        }
        n++;
    }
    free(copy);
    return n;
}

struct dns_ctx *dns_new(struct event_base *base, const char *resolvers, int want_ipv4, int want_ipv6, char **err)
{
    *err = NULL;
    if (!want_ipv4 && !want_ipv6) {
        *err = xstrdup("dns: neither IPv4 nor IPv6 is enabled");
        return NULL;
    }
    struct ub_ctx *ub = ub_ctx_create();
    if (ub == NULL) {
        *err = xstrdup("dns: cannot create a libunbound context");
        return NULL;
    }
    /* Resolving on a thread, not a forked process: nothing else to reap. */
    int rc = ub_ctx_async(ub, 1);
    if (rc != 0) {
        *err = xasprintf("dns: configuring libunbound: %s", ub_strerror(rc));
        ub_ctx_delete(ub);
        return NULL;
    }
    int n = resolvers != NULL ? add_resolvers(ub, resolvers, err) : 0;
    if (n < 0) {
        ub_ctx_delete(ub);
        return NULL;
    }
    if (n == 0 && (rc = ub_ctx_resolvconf(ub, NULL)) != 0) {
        *err = xasprintf("dns: reading /etc/resolv.conf: %s", ub_strerror(rc));
        ub_ctx_delete(ub);
        return NULL;
    }
    /* Let the recursive resolver answer for .test (RFC 6761 §6.2). This
     * also finalizes the context, so it comes after every option. */
    ub_ctx_zone_remove(ub, "test.");

    struct dns_ctx *d = xcalloc(1, sizeof *d);
    dns_cache_init(d);
    d->base = base;
    d->ub = ub;
    d->want_ipv4 = want_ipv4;
    d->want_ipv6 = want_ipv6;
    d->timeout_ms = DNS_DEFAULT_TIMEOUT_MS;
    d->ub_event = event_new(base, ub_fd(ub), EV_READ | EV_PERSIST, on_ub_readable, d);
    if (d->ub_event == NULL || event_add(d->ub_event, NULL) != 0) {
        *err = xstrdup("dns: cannot watch the libunbound descriptor");
        dns_free(d);
        return NULL;
    }
    return d;
}

void dns_set_timeout(struct dns_ctx *d, unsigned timeout_ms)
{
    d->timeout_ms = timeout_ms ? timeout_ms : DNS_DEFAULT_TIMEOUT_MS;
}

void dns_free(struct dns_ctx *d)
{
    if (d == NULL)
        return;
    while (!list_empty(&d->queries))
        query_free(LIST_FIRST(&d->queries, struct dns_query, link));
    if (d->ub_event != NULL)
        event_free(d->ub_event);
    ub_ctx_delete(d->ub);   /* answers nothing more */
    while (!list_empty(&d->orphans)) {
        struct dns_query *q = LIST_FIRST(&d->orphans, struct dns_query, link);
        list_remove(&d->orphans, &q->link);
        free(q);
    }
    dns_cache_clear(d);
    free(d);
}
