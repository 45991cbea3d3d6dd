/* dns: asynchronous DNS for outbound mail, through libunbound, inside the
 * caller's libevent loop.
 *
 * What it is for: finding where mail for a domain goes (RFC 5321 §5.1, RFC
 * 7505), and raw record lookups (TLSA for DANE, TXT, PTR ...) for the modules
 * that need them. One struct dns_ctx per process (the queue manager's) owns
 * the libunbound context, its cache (which honours the records' TTLs, so
 * repeated lookups are answered locally until they expire) and the libevent
 * read event on ub_fd() that feeds answers back into the loop. libunbound
 * resolves on a thread of its own; every callback of this module runs on the
 * loop's thread, from a libevent callback, never from inside a dns_* call.
 * Create the context in the process that uses it, after any fork().
 *
 * Where queries go: to the recursive resolvers of /etc/resolv.conf, or to the
 * ones named in dns_resolvers. Names are looked up exactly as given: no
 * search list, no /etc/hosts (RFC 5321 §5.1 forbids guessing FQDNs). The
 * special-use .test names (RFC 6761 §6.2) go to those resolvers too rather
 * than being answered "does not exist" by libunbound itself, so a test DNS
 * server can serve them. No DNSSEC trust anchor is configured yet, so the
 * `secure` flags below are 0 until DANE adds one; they are here so DANE can
 * ask whether the MX and TLSA answers were validated.
 *
 * Errors: dns_new() reports configuration errors through *err. Lookups
 * report through their callback, with a dns_status and a human-readable
 * reason written like Postfix's (it goes into logs and bounces); which
 * statuses are permanent is dns_status_permanent(). Every answer is
 * bounded: at most DNS_MAX_MX_HOSTS exchangers, DNS_MAX_HOST_ADDRS addresses
 * each, and each query ends (with DNS_TEMPFAIL if nothing else) after the
 * context's timeout. A process's lookups are bounded as a whole: at most
 * DNS_MAX_INFLIGHT at libunbound, abandoned ones counted until answered. */
#ifndef TERN_DNS_DNS_H
#define TERN_DNS_DNS_H

#include <stddef.h>
#include <sys/socket.h>

struct event_base;
struct dns_ctx;
struct dns_query;

#define DNS_MAX_MX_HOSTS 20       /* exchangers kept per domain, best first */
#define DNS_MAX_HOST_ADDRS 16     /* addresses kept per exchanger */
#define DNS_DEFAULT_TIMEOUT_MS 30000
/* Lookups a context has at libunbound at once, cancelled ones included until
 * libunbound answers them (it goes on resolving them; one it never answers
 * is given up 300 s after its query was freed); more wait their turn, in
 * order, within their own timeout. libunbound itself sets no bound on
 * lookups asked through its API. One FIFO for the process: a client whose
 * names never answer can make others' lookups wait (bounded per session by
 * the callers, see smtpd's SPF), which is the price of bounding libunbound. */
#define DNS_MAX_INFLIGHT 1024

/* RR types callers may want from dns_lookup(). */
enum {
    DNS_TYPE_A = 1,
    DNS_TYPE_PTR = 12,
    DNS_TYPE_MX = 15,
    DNS_TYPE_TXT = 16,
    DNS_TYPE_AAAA = 28,
    DNS_TYPE_TLSA = 52,
};

enum dns_status {
    DNS_OK,
    DNS_NXDOMAIN,  /* permanent: the domain does not exist */
    DNS_NODATA,    /* permanent: it exists but has nothing usable (no MX and no
                      address; or no exchanger has an address; or an address
                      literal of a family inet_protocols excludes) */
    DNS_NULL_MX,   /* permanent: RFC 7505 "does not accept mail" */
    DNS_INVALID,   /* permanent: not a valid domain name or address literal */
    DNS_TEMPFAIL,  /* temporary: SERVFAIL, timeout, DNSSEC failure, no resolver */
};

/* 1 for the statuses that should bounce, 0 for DNS_OK and DNS_TEMPFAIL. */
int dns_status_permanent(enum dns_status s);
/* The RFC 3463 enhanced status code a delivery failure with this status
 * should carry ("5.4.4", "5.1.10" for null MX, "4.4.3", ...); "2.0.0" for OK. */
const char *dns_status_dsn(enum dns_status s);
/* "ok", "nxdomain", "nodata", "null-mx", "invalid", "tempfail" (for logs). */
const char *dns_status_name(enum dns_status s);

/* One next hop. Its addresses come in the order to try them: IPv6 and IPv4
 * interleaved, IPv6 first (RFC 8305 §4), so a broken family costs one attempt
 * before the other is tried; only the families the context wants. Ports
 * are 0: the SMTP client sets its own. */
struct dns_host {
    char *name;                      /* lower case, no trailing dot; an address
                                        literal's address in text form */
    unsigned pref;                   /* MX preference; 0 for the implicit MX */
    struct sockaddr_storage *addrs;
    size_t naddrs;                   /* 1 .. DNS_MAX_HOST_ADDRS */
    int secure;                      /* its address answers were DNSSEC-validated */
};

struct dns_route {
    enum dns_status status;
    char *why;          /* reason for a failure; with DNS_OK, NULL, or a note
                           naming exchangers skipped for want of an address */
    char *domain;       /* as asked, lower case, without a trailing dot
                           (an invalid name or a literal: exactly as given) */
    struct dns_host *hosts;  /* DNS_OK only: preference ascending, random
                                order among equal preferences; hosts without
                                any address are left out */
    size_t nhosts;
    int from_mx;        /* hosts come from MX records (0: implicit MX or literal) */
    int literal;        /* the domain was an address literal: no DNS was used */
    int mx_secure;      /* the MX answer (or its absence) was DNSSEC-validated */
};

/* Takes ownership of the route: free it with dns_route_free(). */
typedef void (*dns_route_cb)(void *arg, struct dns_route *route);

/* One record of a raw answer: the RDATA in wire format (names uncompressed). */
struct dns_rr {
    unsigned char *data;
    size_t len;
};

struct dns_rrset {
    enum dns_status status;   /* OK, NXDOMAIN, NODATA, INVALID or TEMPFAIL */
    char *why;                /* NULL when OK */
    char *name;               /* as asked, lower case, no trailing dot */
    char *canonname;          /* where CNAMEs led, same form; NULL when none */
    int rrtype;
    unsigned ttl;             /* seconds the answer stays valid */
    int secure;               /* DNSSEC-validated */
    struct dns_rr *rrs;
    size_t nrrs;
};

/* Takes ownership of the answer: free it with dns_rrset_free(). */
typedef void (*dns_rrset_cb)(void *arg, struct dns_rrset *rrset);

/* A context on base. resolvers: "" (or NULL) uses /etc/resolv.conf;
 * otherwise a list separated by commas and/or blanks of "ip", "ip:port",
 * "[ipv6]", "[ipv6]:port" or a bare IPv6 address, all recursive resolvers.
 * want_ipv4/want_ipv6 (inet_protocols): which address families next hops
 * get; at least one. Returns NULL with *err (free it) on a bad list or an
 * unreadable resolv.conf. */
struct dns_ctx *dns_new(struct event_base *base, const char *resolvers, int want_ipv4, int want_ipv6,
                        char **err);
/* Cancels every query still running (their callbacks are not called) and
 * frees the context. */
void dns_free(struct dns_ctx *d);
/* The limit on one query (a whole MX + address resolution), for queries
 * started later; 0 means DNS_DEFAULT_TIMEOUT_MS. */
void dns_set_timeout(struct dns_ctx *d, unsigned timeout_ms);

/* Finds the next hops for mail to domain: its MX records, sorted by
 * preference with equal preferences shuffled, each exchanger's A/AAAA;
 * without MX records the domain's own A/AAAA (the implicit MX); an address
 * literal ("[192.0.2.1]", "[IPv6:2001:db8::1]") is its own single hop,
 * without DNS. Loop detection (ourselves as a listed exchanger) is the
 * caller's, with the names and addresses this returns. cb runs exactly once,
 * later, from the event loop, unless the query is cancelled first. Never
 * returns NULL. */
struct dns_query *dns_resolve_mail_domain(struct dns_ctx *d, const char *domain, dns_route_cb cb, void *arg);

/* The route to one host without MX lookup (Postfix's "[host]" next hop):
 * its A/AAAA records as a single hop; an IP address ("192.0.2.1",
 * "2001:db8::1") or an address literal is used as it is. Same callback
 * rules; a name without addresses is DNS_NXDOMAIN or DNS_NODATA. */
struct dns_query *dns_resolve_host(struct dns_ctx *d, const char *host, dns_route_cb cb, void *arg);

/* Looks up the rrtype records of name (a host name; underscores allowed, as
 * in TLSA and SRV owner names). Same callback rules as above. */
struct dns_query *dns_lookup(struct dns_ctx *d, const char *name, int rrtype, dns_rrset_cb cb, void *arg);

/* Stops a query whose callback has not run yet; the callback never runs.
 * Not to be called once it has (the handle is gone by then). Lookups it had
 * started at libunbound keep their DNS_MAX_INFLIGHT slots until answered. */
void dns_cancel(struct dns_query *q);

/* One TXT record's character-strings joined, as SPF (RFC 7208 3.3), DKIM
 * (RFC 6376 3.6.2.2) and DMARC read them, appended to out: 0, or -1 when
 * the RDATA is malformed or the text would pass max octets (out then holds
 * what was appended so far). NUL octets are kept; out->len counts them. */
struct strbuf;
int dns_txt_text(const struct dns_rr *rr, size_t max, struct strbuf *out);

/* An IP address's labels reversed, as DNSBLs and the reverse tree use
 * them: "4.3.2.1" for 1.2.3.4, 32 nibbles for IPv6; the family (AF_INET,
 * AF_INET6), or 0 when addr is no address (out untouched). out holds 80. */
int dns_reverse_labels(const char *addr, char out[80]);

/* A name in RDATA (an MX's exchange after its preference, a PTR): the
 * uncompressed wire-format name filling exactly len octets, as lower-case
 * text without the final dot ("" for the root); NULL when it is malformed
 * or not a usable host name. Malloc'd. */
char *dns_rdata_name(const unsigned char *p, size_t len);

void dns_route_free(struct dns_route *route);
void dns_rrset_free(struct dns_rrset *rrset);

#endif
