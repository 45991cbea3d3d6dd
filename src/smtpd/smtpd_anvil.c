/* smtpd_anvil: per-client connection and rate limits (see smtpd_anvil.h). */
#include "smtpd/smtpd_anvil.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "util/mem.h"
#include "util/str.h"

#define BUCKETS 4096

struct client {
    struct client *next;
    char addr[INET6_ADDRSTRLEN];
    long conns;               /* open now */
    time_t conn_window, msg_window;
    long conn_in_window, msg_in_window;
    time_t last;
};

static struct client *table[BUCKETS];
static size_t nclients;

static unsigned hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % BUCKETS;
}

/* Drops entries with no open connection, oldest activity first, until
 * there is room (a rough sweep: it only ever forgets). */
static void make_room(time_t now)
{
    for (time_t age = 3600; nclients >= ANVIL_MAX_CLIENTS && age >= 0; age /= 2) {
        for (size_t b = 0; b < BUCKETS; b++) {
            struct client **pp = &table[b];
            while (*pp) {
                struct client *c = *pp;
                if (c->conns == 0 && now - c->last >= age) {
                    *pp = c->next;
                    free(c);
                    nclients--;
                } else {
                    pp = &c->next;
                }
            }
        }
        if (age == 0)
            break;
    }
}

static struct client *lookup(const char *addr, int create, time_t now)
{
    unsigned h = hash(addr);
    for (struct client *c = table[h]; c; c = c->next)
        if (strcmp(c->addr, addr) == 0)
            return c;
    if (!create)
        return NULL;
    if (nclients >= ANVIL_MAX_CLIENTS)
        make_room(now);
    if (nclients >= ANVIL_MAX_CLIENTS)
        return NULL;
    struct client *c = xcalloc(1, sizeof *c);
    str_copy(c->addr, addr, sizeof c->addr);
    c->next = table[h];
    table[h] = c;
    nclients++;
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
    for (size_t b = 0; b < BUCKETS; b++) {
        while (table[b]) {
            struct client *c = table[b];
            table[b] = c->next;
            free(c);
        }
    }
    nclients = 0;
}
