/* dmarc_cache: answers of earlier _dmarc TXT queries (see dmarc.h). A Tree
 * Walk asks the same few names again and again (every walk in .com ends at
 * _dmarc.com), so the cache is per name, not per walk: one entry serves
 * every walk that passes there. Bounded: when full, expired entries go
 * first, then the oldest. Failures (TEMPFAIL) are never kept. */
#include <stdlib.h>
#include <string.h>

#include "mailauth/dmarc.h"
#include "util/clock.h"
#include "util/hashmap.h"
#include "util/list.h"
#include "util/mem.h"

struct cache_entry {
    struct list_node link; /* in age order, oldest first */
    char *name;
    char *text;            /* the one DMARC record, or NULL: none */
    time_t expires;
};

struct dmarc_cache {
    struct hashmap map;
    struct list age;
    size_t max;
};

static const void *entry_key(const void *item, size_t *len)
{
    const struct cache_entry *e = item;
    *len = strlen(e->name);
    return e->name;
}

struct dmarc_cache *dmarc_cache_new(size_t max_entries)
{
    struct dmarc_cache *c = xcalloc(1, sizeof *c);
    c->max = max_entries ? max_entries : 1000;
    hashmap_init(&c->map, entry_key, 0);
    return c;
}

static void entry_free(struct cache_entry *e)
{
    free(e->name);
    free(e->text);
    free(e);
}

static void entry_drop(struct dmarc_cache *c, struct cache_entry *e)
{
    hashmap_remove(&c->map, e);
    list_remove(&c->age, &e->link);
    entry_free(e);
}

void dmarc_cache_free(struct dmarc_cache *c)
{
    if (c == NULL)
        return;
    struct cache_entry *e;
    while ((e = LIST_FIRST(&c->age, struct cache_entry, link)) != NULL) {
        list_remove(&c->age, &e->link);
        entry_free(e);
    }
    hashmap_free(&c->map);
    free(c);
}

size_t dmarc_cache_count(const struct dmarc_cache *c)
{
    return c ? hashmap_count(&c->map) : 0;
}

int dmarc_cache_get(struct dmarc_cache *c, const char *name, char **text)
{
    *text = NULL;
    if (c == NULL)
        return 0;
    struct cache_entry *e = hashmap_get_str(&c->map, name);
    if (e == NULL)
        return 0;
    if (clock_now() >= e->expires) {
        entry_drop(c, e);
        return 0;
    }
    *text = e->text ? xstrdup(e->text) : NULL;
    return 1;
}

/* Makes room for one entry: the expired ones, then the oldest. */
static void make_room(struct dmarc_cache *c)
{
    if (hashmap_count(&c->map) < c->max)
        return;
    time_t now = clock_now();
    struct cache_entry *e = LIST_FIRST(&c->age, struct cache_entry, link);
    while (e != NULL) {
        struct cache_entry *next = LIST_NEXT(e, struct cache_entry, link);
        if (now >= e->expires)
            entry_drop(c, e);
        e = next;
    }
    while (hashmap_count(&c->map) >= c->max)
        entry_drop(c, LIST_FIRST(&c->age, struct cache_entry, link));
}

void dmarc_cache_put(struct dmarc_cache *c, const char *name, const char *text, unsigned ttl)
{
    if (c == NULL || ttl == 0)
        return;
    if (ttl > DMARC_CACHE_MAX_TTL)
        ttl = DMARC_CACHE_MAX_TTL;
    struct cache_entry *old = hashmap_get_str(&c->map, name);
    if (old != NULL)
        entry_drop(c, old);
    make_room(c);
    struct cache_entry *e = xcalloc(1, sizeof *e);
    e->name = xstrdup(name);
    e->text = text ? xstrdup(text) : NULL;
    e->expires = clock_now() + (time_t)ttl;
    hashmap_add(&c->map, e);
    list_append(&c->age, &e->link);
}
