/* mailauth_dns: the DNS lookups SPF, DKIM and DMARC make, as an interface.
 *
 * What it is for: the mail-authentication modules (src/mailauth/) never call
 * libunbound themselves. They ask a struct mailauth_dns for raw record sets
 * (TXT, A, AAAA, MX, PTR), so that the processes give them the real resolver
 * (mailauth_dns_real(): dns_lookup() in the process's event loop) and the
 * unit tests give them a table of answers (the SPF suite's zone data, the
 * DMARC tree-walk examples) without a network.
 *
 * The contract is dns_lookup()'s (src/dns/dns.h): the callback runs exactly
 * once, later, never from inside the lookup call, unless the lookup is
 * cancelled first; the callback owns the rrset (dns_rrset_free). A record's
 * data is its RDATA in wire format with names uncompressed (TXT: a sequence
 * of length-prefixed strings; A: 4 octets; AAAA: 16; MX: preference then a
 * name; PTR: a name). */
#ifndef TERN_MAILAUTH_MAILAUTH_DNS_H
#define TERN_MAILAUTH_MAILAUTH_DNS_H

#include "dns/dns.h"

struct mailauth_dns_query;

struct mailauth_dns {
    /* Starts a lookup of name's rrtype records; never returns NULL. */
    struct mailauth_dns_query *(*lookup)(void *ctx, const char *name, int rrtype, dns_rrset_cb cb,
                                         void *arg);
    /* Stops a lookup whose callback has not run; it never will. */
    void (*cancel)(void *ctx, struct mailauth_dns_query *q);
    void *ctx;
};

/* The real resolver: lookups go to dns_lookup() on d (which must outlive
 * every lookup started through the returned interface). */
struct mailauth_dns mailauth_dns_real(struct dns_ctx *d);

static inline struct mailauth_dns_query *mailauth_dns_lookup(const struct mailauth_dns *dns, const char *name,
                                                             int rrtype, dns_rrset_cb cb, void *arg)
{
    return dns->lookup(dns->ctx, name, rrtype, cb, arg);
}

static inline void mailauth_dns_cancel(const struct mailauth_dns *dns, struct mailauth_dns_query *q)
{
    dns->cancel(dns->ctx, q);
}

#endif
