/* dns_internal: what dns.c (context, query life cycle, raw lookups),
 * dns_cache.c (their answers kept by TTL) and dns_route.c (next hops per
 * RFC 5321 §5.1) share. Nothing outside src/dns/
 * includes this. */
#ifndef TERN_DNS_DNS_INTERNAL_H
#define TERN_DNS_DNS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "dns/dns.h"
#include "util/hashmap.h"
#include "util/list.h"

struct ub_result;

#define DNS_MAX_NAME 253                 /* text form, without the root dot */
#define DNS_MAX_SUBS (1 + 2 * DNS_MAX_MX_HOSTS) /* the MX lookup, then A+AAAA per host */

struct dns_ctx {
    struct event_base *base;
    struct ub_ctx *ub;
    struct event *ub_event;   /* ub_fd() readable: answers are waiting */
    int want_ipv4, want_ipv6;
    unsigned timeout_ms;
    struct list queries;       /* of struct dns_query: live ones, so dns_free() can cancel them */
    struct hashmap cache;      /* raw answers (dns_lookup) until their TTL ends: see dns.c */
    size_t cache_bytes;        /* what they hold */
    /* Lookups handed to libunbound and not yet answered, cancelled ones
     * included (see dns.c, "lookups in flight"); those waiting their turn;
     * and the queries freed while libunbound still works for them. */
    size_t inflight, inflight_max;   /* max 0: DNS_MAX_INFLIGHT */
    int orphan_hold_s;               /* 0: DNS_ORPHAN_HOLD_MAX (see dns.c) */
    struct list waiting;             /* of struct dns_sub */
    struct list orphans;             /* of struct dns_query */
    int starting;                    /* start_waiting() is running */
};

/* One libunbound lookup in flight on behalf of a dns_query. */
struct dns_sub {
    struct dns_query *q;
    int async_id;
    int pending;              /* the query wants its answer */
    int started;              /* handed to libunbound, answer not yet back */
    char *wait_name;          /* waiting for a slot: the name to look up */
    struct list_node wait_link;   /* in d->waiting while wait_name is set */
    int rrtype;
    size_t host;              /* address lookups: index into q->hosts */
};

/* An exchanger while its address lookups run. */
struct dns_host_state {
    char *name;
    unsigned pref;
    unsigned char v4[DNS_MAX_HOST_ADDRS][4];
    size_t n4;
    unsigned char v6[DNS_MAX_HOST_ADDRS][16];
    size_t n6;
    int lookups, nxdomain, tempfail; /* finished lookups and how they failed */
    int secure;
    char *why_temp, *why_perm;       /* first reason of each kind */
};

enum dns_query_kind { QUERY_ROUTE, QUERY_RRSET };

struct dns_query {
    struct dns_ctx *d;
    struct list_node link;     /* in d->queries, or d->orphans once freed by
                                  its caller while subs are still started */
    unsigned started;          /* subs started (see struct dns_sub) */
    int64_t orphaned_at;       /* monotonic seconds, once in d->orphans */
    enum dns_query_kind kind;
    char *name;               /* normalized, or as given when invalid */
    int rrtype;               /* QUERY_RRSET */
    struct event *done_event; /* the timeout, made active early on completion */
    unsigned timeout_ms;
    int ready;                /* result stored; done_event will deliver it */
    unsigned pending;         /* subs in flight, plus one while launching */
    struct dns_sub subs[DNS_MAX_SUBS];
    size_t nsubs;
    void *arg;
    /* QUERY_ROUTE */
    dns_route_cb route_cb;
    struct dns_host_state *hosts;
    size_t nhosts;
    int from_mx, mx_secure;
    struct dns_route *route;
    /* QUERY_RRSET */
    dns_rrset_cb rrset_cb;
    struct dns_rrset *rrset;
};


/* dns.c */
int dns_name_char_ok(unsigned char c);
char *dns_type_name(int rrtype);
/* Lower-cased, without the root dot, or NULL with *why (see dns.c). */
char *dns_normalize_name(const char *in, char **why);
/* DNS_OK when res has records, else the failure with a Postfix-style *why. */
enum dns_status dns_classify(const char *name, int rrtype, int err, const struct ub_result *res, char **why);
void dns_cancel_subs(struct dns_query *q);
/* The result is stored: deliver it from the loop, soon. */
void dns_complete(struct dns_query *q);
struct dns_query *dns_query_new(struct dns_ctx *d, enum dns_query_kind kind, void *arg);
/* Starting a batch of lookups: launch_begin / launch... / launch_end. */
void dns_launch_begin(struct dns_query *q);
void dns_launch(struct dns_query *q, const char *name, int rrtype, size_t host);
void dns_launch_end(struct dns_query *q);

#ifdef TERN_TEST_BUILD
/* Test resolver (the fuzz target of dns_route): while set, dns_launch hands
 * each lookup to fn instead of libunbound, and the answer is given later
 * with dns_test_answer, in the form libunbound's callback receives it (res
 * is freed with ub_resolve_free). fn returns 0, or an error that fails the
 * lookup at once, as ub_resolve_async would. NULL restores libunbound. */
typedef int (*dns_test_resolver)(void *arg, const char *name, int rrtype, struct dns_sub *s);
void dns_test_set_resolver(dns_test_resolver fn, void *arg);
void dns_test_answer(struct dns_sub *s, int err, struct ub_result *res);
/* The answer cache of a context made by hand (as dns_new makes it). */
void dns_test_cache_init(struct dns_ctx *d);
void dns_test_cache_free(struct dns_ctx *d);
size_t dns_test_cache_count(struct dns_ctx *d);   /* answers kept */
#endif

/* dns_cache.c: answers of raw lookups kept while their TTL lasts. */
void dns_cache_init(struct dns_ctx *d);
void dns_cache_clear(struct dns_ctx *d);
/* Keeps a copy of rs if it may be kept (see dns_cache.c). */
void dns_cache_put(struct dns_ctx *d, const struct dns_rrset *rs);
/* A copy of the cached answer, its TTL what is left of it; NULL if none. */
struct dns_rrset *dns_cache_get(struct dns_ctx *d, const char *name, int rrtype);

/* dns_route.c */
/* A route with no hosts yet; takes why. */
struct dns_route *dns_route_new(const char *domain, enum dns_status st, char *why);
void dns_route_mx_answer(struct dns_query *q, int err, struct ub_result *res);
void dns_route_addr_answer(struct dns_query *q, struct dns_sub *s, int err, struct ub_result *res);
void dns_route_finish(struct dns_query *q);
struct dns_route *dns_route_at_timeout(struct dns_query *q, const char *why);

#endif
