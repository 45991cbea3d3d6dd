/* smtpd_anvil: per-client connection and rate limits and the AUTH lockout
 * (see smtpd_anvil.h). */
#include "smtpd/smtpd_anvil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/hashmap.h"
#include "util/mem.h"
#include "util/str.h"

void smtpd_anvil_client_key(const char *addr, char *key, size_t size)
{
    struct in6_addr a6;
    if (strchr(addr, ':') && inet_pton(AF_INET6, addr, &a6) == 1) {
        if (IN6_IS_ADDR_V4MAPPED(&a6)) {
            /* ::ffff:192.0.2.1 is the IPv4 client 192.0.2.1 */
            inet_ntop(AF_INET, &a6.s6_addr[12], key, (socklen_t)size);
            return;
        }
        /* One subscriber gets a /64 (RFC 6177): counting each of its 2^64
         * addresses apart would let one client take every slot. */
        memset(&a6.s6_addr[8], 0, 8);
        char buf[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &a6, buf, sizeof buf);
        snprintf(key, size, "%s/64", buf);
        return;
    }
    str_copy(key, addr, size);
}

/* ---- connections and rates ---- */

struct client {
    char key[ANVIL_KEY_LEN];
    long conns;               /* open now */
    time_t window_end[ANVIL_RATES];   /* the rate's window ends (its unit after it began) */
    long in_window[ANVIL_RATES];      /* counted in it; only rates with a limit count */
    time_t last;
};

static const void *client_key(const void *item, size_t *len)
{
    const struct client *c = item;
    *len = strlen(c->key);
    return c->key;
}

/* Starts zeroed; the first lookup gives it its key and its bound, so the
 * module needs no setup call. */
static struct hashmap clients;
/* No sweep before this after one that freed nothing. */
static time_t next_sweep;

/* An entry that holds nothing a limit needs (no open connection, no
 * limited rate still counting in its window) is the same as none. Each
 * count carries its own window, so services with other limits and units
 * (master.cf -o) never make another service's counts look spent. */
static int holds_something(const struct client *c, time_t now)
{
    if (c->conns > 0)
        return 1;
    for (int r = 0; r < ANVIL_RATES; r++)
        if (c->in_window[r] > 0 && now < c->window_end[r])
            return 1;
    return 0;
}

static int drop_if_holding_nothing(void *item, void *arg)
{
    struct client *c = item;
    if (holds_something(c, *(const time_t *)arg))
        return 0;
    free(c);
    return 1;
}

/* Drops every entry that holds nothing, so forgetting changes no limit; at
 * most once a second when a sweep found nothing to drop (a full table of
 * live entries sends new clients to the shared entry). */
static void make_room(time_t now)
{
    if (now < next_sweep)
        return;
    if (hashmap_remove_if(&clients, drop_if_holding_nothing, &now) == 0)
        next_sweep = now + 1;
}

static struct client *lookup(const char *addr, int create, time_t now)
{
    if (!clients.key_of)
        hashmap_init(&clients, client_key, ANVIL_MAX_CLIENTS);
    char key[ANVIL_KEY_LEN];
    smtpd_anvil_client_key(addr, key, sizeof key);
    struct client *c = hashmap_get_str(&clients, key);
    if (c || !create)
        return c;
    if (hashmap_full(&clients))
        make_room(now);
    if (hashmap_full(&clients))
        return NULL;
    c = xcalloc(1, sizeof *c);
    memcpy(c->key, key, sizeof key);
    hashmap_add(&clients, c);
    return c;
}

/* Counts one event of rate r in a fixed window of unit seconds; 1 if over
 * limit (and not counted). count 0: only whether one more would be over. */
static int over_rate(struct client *c, enum anvil_rate r, long limit, long unit, time_t now, int count)
{
    if (limit <= 0)
        return 0;
    if (unit <= 0)
        unit = 60;
    if (now >= c->window_end[r]) {
        c->window_end[r] = now + unit;
        c->in_window[r] = 0;
    }
    if (c->in_window[r] >= limit)
        return 1;
    if (count)
        c->in_window[r]++;
    return 0;
}

/* Counts the clients that found no slot because every entry holds an open
 * connection or a running count: together they are one client, so they are
 * never uncounted. */
static struct client shared;

int smtpd_anvil_connect(const char *addr, const struct smtpd_anvil_limits *l, time_t now)
{
    struct client *c = lookup(addr, 1, now);
    int admitted = ANVIL_ADMITTED;
    if (!c) {
        c = &shared;
        admitted = ANVIL_ADMITTED_SHARED;
    }
    c->last = now;
    if (l->conn_count > 0 && c->conns >= l->conn_count)
        return ANVIL_OVER_COUNT;
    if (over_rate(c, ANVIL_RATE_CONN, l->conn_rate, l->unit, now, 1))
        return ANVIL_OVER_RATE;
    c->conns++;
    return admitted;
}

void smtpd_anvil_disconnect(const char *addr, int admitted, time_t now)
{
    struct client *c = admitted == ANVIL_ADMITTED_SHARED ? &shared : lookup(addr, 0, 0);
    if (c && c->conns > 0)
        c->conns--;
    /* an entry that now holds nothing frees its slot at once */
    if (c && c != &shared && c->conns == 0 && !holds_something(c, now)) {
        hashmap_remove(&clients, c);
        free(c);
    }
}

int smtpd_anvil_rate(const char *addr, enum anvil_rate r, long limit, long unit, time_t now)
{
    struct client *c = lookup(addr, 1, now);
    if (!c)
        c = &shared;
    c->last = now;
    return over_rate(c, r, limit, unit, now, 1);
}

int smtpd_anvil_rate_reached(const char *addr, enum anvil_rate r, long limit, long unit, time_t now)
{
    struct client *c = lookup(addr, 0, now);
    if (!c && !hashmap_full(&clients))
        return 0;   /* nothing counted yet */
    return over_rate(c ? c : &shared, r, limit, unit, now, 0);   /* its own count, or the shared one */
}

/* ---- failed logins ---- */

struct lockout {
    char key[ANVIL_KEY_LEN];
    unsigned failures;
    time_t first;   /* start of the counting window */
    time_t last;    /* latest failure */
    time_t until;   /* refused before this */
};

static const void *lockout_key(const void *item, size_t *len)
{
    const struct lockout *l = item;
    *len = strlen(l->key);
    return l->key;
}

static struct hashmap lockouts;
/* Counts the failures of every client that found no slot because all of them
 * hold a running lockout; locked, it refuses all those clients together. */
static struct lockout overflow;

/* The slot for key: its own, a new one, or NULL when every slot still
 * counts (a running lockout, or failures within their window). A new one
 * takes the slot of an entry that counts nothing any more (its lockout and
 * its window ended), the one that failed least recently: giving that up
 * loses no failure. */
static struct lockout *lockout_slot(const char *key, long window, time_t now)
{
    if (!lockouts.key_of)
        hashmap_init(&lockouts, lockout_key, ANVIL_MAX_LOCKOUTS);
    struct lockout *l = hashmap_get_str(&lockouts, key);
    if (l)
        return l;
    if (hashmap_full(&lockouts)) {
        struct lockout *stalest = NULL, *c;
        size_t i = 0;
        while ((c = hashmap_next(&lockouts, &i)))
            if (c->until <= now && (c->failures == 0 || now - c->first > window) &&
                (!stalest || c->last < stalest->last))
                stalest = c;
        if (!stalest)
            return NULL;
        hashmap_remove(&lockouts, stalest);
        free(stalest);
    }
    l = xcalloc(1, sizeof *l);
    memcpy(l->key, key, ANVIL_KEY_LEN);
    l->first = now;
    hashmap_add(&lockouts, l);
    return l;
}

int smtpd_anvil_auth_locked(const char *addr, time_t now)
{
    char key[ANVIL_KEY_LEN];
    smtpd_anvil_client_key(addr, key, sizeof key);
    struct lockout *l = lockouts.key_of ? hashmap_get_str(&lockouts, key) : NULL;
    if (l)
        return l->until > now ? ANVIL_LOCKED : 0;
    return overflow.until > now ? ANVIL_LOCKED_SHARED : 0;
}

int smtpd_anvil_auth_failure(const char *addr, long limit, long window, time_t now)
{
    char key[ANVIL_KEY_LEN];
    smtpd_anvil_client_key(addr, key, sizeof key);
    if (window <= 0)
        window = 600;
    struct lockout *l = lockout_slot(key, window, now);
    int locks = ANVIL_LOCKED;
    if (!l) {
        l = &overflow;
        locks = ANVIL_LOCKED_SHARED;
    }
    if (now - l->first > window) {
        l->failures = 0;
        l->first = now;
    }
    l->last = now;
    if (limit > 0 && ++l->failures >= (unsigned long)limit) {
        l->until = now + window;
        l->failures = 0;
        l->first = now;
        return locks;
    }
    return 0;
}

void smtpd_anvil_reset(void)
{
    size_t i = 0;
    struct client *c;
    while ((c = hashmap_next(&clients, &i)))
        free(c);
    hashmap_free(&clients);
    memset(&shared, 0, sizeof shared);
    next_sweep = 0;
    i = 0;
    struct lockout *l;
    while ((l = hashmap_next(&lockouts, &i)))
        free(l);
    hashmap_free(&lockouts);
    memset(&overflow, 0, sizeof overflow);
}
