/* smtpd_anvil: per-client connection and rate limits (see smtpd_anvil.h). */
#include "smtpd/smtpd_anvil.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "util/hashmap.h"
#include "util/mem.h"
#include "util/str.h"

struct client {
    char addr[INET6_ADDRSTRLEN];
    long conns;               /* open now */
    time_t conn_window, msg_window;
    long conn_in_window, msg_in_window;
    time_t last;
};

static const void *client_key(const void *item, size_t *len)
{
    const struct client *c = item;
    *len = strlen(c->addr);
    return c->addr;
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
    char key[INET6_ADDRSTRLEN]; /* as stored: an overlong address is cut the same way */
    str_copy(key, addr, sizeof key);
    struct client *c = hashmap_get_str(&clients, key);
    if (c || !create)
        return c;
    if (hashmap_full(&clients))
        make_room(now);
    if (hashmap_full(&clients))
        return NULL;
    c = xcalloc(1, sizeof *c);
    memcpy(c->addr, key, sizeof key);
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

int smtpd_anvil_connect(const char *addr, const struct smtpd_anvil_limits *l, time_t now)
{
    struct client *c = lookup(addr, 1, now);
    if (!c)
        return 0;
    c->last = now;
    if (l->conn_count > 0 && c->conns >= l->conn_count)
        return 1;
    if (over_rate(&c->conn_window, &c->conn_in_window, l->conn_rate, l->unit, now))
        return 2;
    c->conns++;
    return 0;
}

void smtpd_anvil_disconnect(const char *addr)
{
    struct client *c = lookup(addr, 0, 0);
    if (c && c->conns > 0)
        c->conns--;
}

int smtpd_anvil_message(const char *addr, const struct smtpd_anvil_limits *l, time_t now)
{
    struct client *c = lookup(addr, 1, now);
    if (!c)
        return 0;
    c->last = now;
    return over_rate(&c->msg_window, &c->msg_in_window, l->msg_rate, l->unit, now);
}

void smtpd_anvil_reset(void)
{
    size_t i = 0;
    struct client *c;
    while ((c = hashmap_next(&clients, &i)))
        free(c);
    hashmap_free(&clients);
}
