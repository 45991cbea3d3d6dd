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
    time_t conn_window, msg_window;
    long conn_in_window, msg_in_window;
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

struct sweep {
    time_t now, age;
};

static int drop_if_idle(void *item, void *arg)
{
    struct client *c = item;
    const struct sweep *sw = arg;
    if (c->conns == 0 && sw->now - c->last >= sw->age) {
        free(c);
        return 1;
    }
    return 0;
}

/* Drops entries with no open connection, oldest activity first, until
 * there is room (a rough sweep: it only ever forgets). */
static void make_room(time_t now)
{
    for (time_t age = 3600; hashmap_full(&clients) && age >= 0; age /= 2) {
        struct sweep sw = {now, age};
        hashmap_remove_if(&clients, drop_if_idle, &sw);
        if (age == 0)
            break;
    }
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

/* Counts one event in a fixed window of unit seconds; 1 if over limit. */
static int over_rate(time_t *window, long *count, long limit, long unit, time_t now)
{
    if (unit <= 0)
        unit = 60;
    if (now - *window >= unit) {
        *window = now;
        *count = 0;
    }
    if (limit > 0 && *count >= limit)
        return 1;
    (*count)++;
    return 0;
}

/* Counts the clients that found no slot because every entry holds an open
 * connection: together they are one client, so they are never uncounted. */
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
    if (over_rate(&c->conn_window, &c->conn_in_window, l->conn_rate, l->unit, now))
        return ANVIL_OVER_RATE;
    c->conns++;
    return admitted;
}

void smtpd_anvil_disconnect(const char *addr, int admitted)
{
    struct client *c = admitted == ANVIL_ADMITTED_SHARED ? &shared : lookup(addr, 0, 0);
    if (c && c->conns > 0)
        c->conns--;
}

int smtpd_anvil_message(const char *addr, const struct smtpd_anvil_limits *l, time_t now)
{
    struct client *c = lookup(addr, 1, now);
    if (!c)
        c = &shared;
    c->last = now;
    return over_rate(&c->msg_window, &c->msg_in_window, l->msg_rate, l->unit, now);
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

/* The slot for key: its own, a new one (taking the slot of the client that
 * failed least recently among those not locked out), or NULL when every
 * slot holds a running lockout. */
static struct lockout *lockout_slot(const char *key, time_t now)
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
            if (c->until <= now && (!stalest || c->last < stalest->last))
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
    struct lockout *l = lockout_slot(key, now);
    int locks = ANVIL_LOCKED;
    if (!l) {
        l = &overflow;
        locks = ANVIL_LOCKED_SHARED;
    }
    if (window <= 0)
        window = 600;
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
    i = 0;
    struct lockout *l;
    while ((l = hashmap_next(&lockouts, &i)))
        free(l);
    hashmap_free(&lockouts);
    memset(&overflow, 0, sizeof overflow);
}
