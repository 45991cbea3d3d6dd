/* dns_cache: the answer cache of raw lookups (dns_lookup), in front of
 * libunbound.
 *
 * libunbound caches too, but reaching its cache costs a round trip to its
 * worker thread for every lookup; the mail-authentication checks ask the
 * same few names for every message (make bench: about half of their cost).
 * So dns_lookup answers from here while an answer's TTL lasts: positive
 * answers and "does not exist"/"no data" with a TTL, never failures. At most
 * DNS_CACHE_MAX answers holding DNS_CACHE_BYTES (a sender's DNS chooses how
 * big an answer is: one over DNS_CACHE_ANSWER_MAX is not kept), each kept
 * at most DNS_CACHE_MAX_TTL seconds; when full, the expired go, and if none
 * has, all. */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dns/dns.h"
#include "dns/dns_internal.h"
#include "util/clock.h"
#include "util/hashmap.h"
#include "util/mem.h"

#define DNS_CACHE_MAX 4096
#define DNS_CACHE_BYTES (4u * 1024 * 1024)
#define DNS_CACHE_ANSWER_MAX 8192
#define DNS_CACHE_MAX_TTL 3600

struct cached {
    char *key;                /* "TYPE name" */
    struct dns_rrset *rrset;
    int64_t expires;          /* monotonic seconds */
    size_t bytes;             /* counted in cache_bytes */
};

/* What an answer holds, roughly: its records' data and names. */
static size_t rrset_bytes(const struct dns_rrset *rs)
{
    size_t n = sizeof *rs + strlen(rs->name) + (rs->canonname ? strlen(rs->canonname) : 0) +
               rs->nrrs * sizeof *rs->rrs;
    for (size_t i = 0; i < rs->nrrs; i++)
        n += rs->rrs[i].len;
    return n;
}

static const void *cached_key(const void *item, size_t *len)
{
    const struct cached *c = item;
    *len = strlen(c->key);
    return c->key;
}

static struct dns_rrset *rrset_copy(const struct dns_rrset *rs, unsigned ttl)
{
    struct dns_rrset *c = xcalloc(1, sizeof *c);
    *c = *rs;
    c->ttl = ttl;
    c->why = rs->why ? xstrdup(rs->why) : NULL;
    c->name = xstrdup(rs->name);
    c->canonname = rs->canonname ? xstrdup(rs->canonname) : NULL;
    c->rrs = rs->nrrs ? xcalloc(rs->nrrs, sizeof *c->rrs) : NULL;
    for (size_t i = 0; i < rs->nrrs; i++) {
        c->rrs[i].data = xmalloc(rs->rrs[i].len ? rs->rrs[i].len : 1);
        memcpy(c->rrs[i].data, rs->rrs[i].data, rs->rrs[i].len);
        c->rrs[i].len = rs->rrs[i].len;
    }
    return c;
}

static void cached_free(struct cached *c)
{
    dns_rrset_free(c->rrset);
    free(c->key);
    free(c);
}

struct sweep {
    struct dns_ctx *d;
    int64_t now;
};

static int cached_expired(void *item, void *arg)
{
    struct cached *c = item;
    struct sweep *sw = arg;
    if (c->expires > sw->now)
        return 0;
    sw->d->cache_bytes -= c->bytes;
    cached_free(c);
    return 1;
}

void dns_cache_clear(struct dns_ctx *d)
{
    size_t i = 0;
    struct cached *c;
    while ((c = hashmap_next(&d->cache, &i)))
        cached_free(c);
    hashmap_free(&d->cache);
    d->cache_bytes = 0;
}

/* Room for a key: the type (at most 65535), a space, a name (at most
 * DNS_MAX_NAME, as dns_normalize_name allows) and the NUL. */
#define CACHE_KEY_MAX (5 + 1 + DNS_MAX_NAME + 1)

/* The key "TYPE name" written into key[CACHE_KEY_MAX] by hand: a lookup
 * answered from the cache (every check of every message) then neither
 * formats nor allocates. */
static const char *cache_key(char *key, const char *name, int rrtype)
{
    char digits[8];
    size_t nd = 0;
    unsigned t = (unsigned)rrtype;
    do {
        digits[nd++] = (char)('0' + t % 10);
        t /= 10;
    } while (t > 0 && nd < sizeof digits);
    size_t len = 0;
    while (nd > 0)
        key[len++] = digits[--nd];
    key[len++] = ' ';
    size_t nlen = strnlen(name, DNS_MAX_NAME);
    memcpy(key + len, name, nlen);
    key[len + nlen] = '\0';
    return key;
}

void dns_cache_put(struct dns_ctx *d, const struct dns_rrset *rs)
{
    if (rs->ttl == 0 || (rs->status != DNS_OK && rs->status != DNS_NXDOMAIN && rs->status != DNS_NODATA))
        return;
    size_t bytes = rrset_bytes(rs);
    if (bytes > DNS_CACHE_ANSWER_MAX)
        return;
    struct sweep sw = {d, clock_monotonic_ms() / 1000};
    if (hashmap_count(&d->cache) >= DNS_CACHE_MAX || d->cache_bytes + bytes > DNS_CACHE_BYTES) {
        hashmap_remove_if(&d->cache, cached_expired, &sw);
        if (hashmap_count(&d->cache) >= DNS_CACHE_MAX || d->cache_bytes + bytes > DNS_CACHE_BYTES)
            dns_cache_clear(d);
    }
    struct cached *c = xcalloc(1, sizeof *c);
    char key[CACHE_KEY_MAX];
    c->key = xstrdup(cache_key(key, rs->name, rs->rrtype));
    unsigned ttl = rs->ttl < DNS_CACHE_MAX_TTL ? rs->ttl : DNS_CACHE_MAX_TTL;
    c->rrset = rrset_copy(rs, ttl);
    c->expires = sw.now + ttl;
    c->bytes = bytes;
    struct cached *old = hashmap_get_str(&d->cache, c->key);
    if (old) {
        hashmap_remove(&d->cache, old);
        d->cache_bytes -= old->bytes;
        cached_free(old);
    }
    hashmap_add(&d->cache, c);
    d->cache_bytes += bytes;
}

struct dns_rrset *dns_cache_get(struct dns_ctx *d, const char *name, int rrtype)
{
    char key[CACHE_KEY_MAX];
    struct cached *c = hashmap_get_str(&d->cache, cache_key(key, name, rrtype));
    if (!c)
        return NULL;
    int64_t now = clock_monotonic_ms() / 1000;
    if (c->expires <= now) {
        hashmap_remove(&d->cache, c);
        d->cache_bytes -= c->bytes;
        cached_free(c);
        return NULL;
    }
    return rrset_copy(c->rrset, (unsigned)(c->expires - now));
}

void dns_cache_init(struct dns_ctx *d)
{
    hashmap_init(&d->cache, cached_key, 0);
}

#ifdef TERN_TEST_BUILD
void dns_test_cache_init(struct dns_ctx *d)
{
    dns_cache_init(d);
}

void dns_test_cache_free(struct dns_ctx *d)
{
    dns_cache_clear(d);
}

size_t dns_test_cache_count(struct dns_ctx *d)
{
    return hashmap_count(&d->cache);
}
#endif
