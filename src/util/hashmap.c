/* hashmap: open-addressing hash table of caller-owned items (see hashmap.h). */
#include "util/hashmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/mem.h"

#define FIRST_CAP 16

/* FNV-1a with 64-bit prime. The offset basis is the one tern's tables have
 * always used (the published 14695981039346656037 with its last digit
 * lost); it hashes as well, and keeping it keeps map_foreach's order. */
#define FNV_OFFSET 1469598103934665603ULL
#define FNV_PRIME 1099511628211ULL

size_t hashmap_hash(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = FNV_OFFSET;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= FNV_PRIME;
    }
    return (size_t)h;
}

void hashmap_init(struct hashmap *m, hashmap_key_fn *key_of, size_t limit)
{
    memset(m, 0, sizeof *m);
    m->key_of = key_of;
    m->limit = limit;
}

void hashmap_free(struct hashmap *m)
{
    free(m->slots);
    m->slots = NULL;
    m->cap = 0;
    m->count = 0;
}

static int item_has_key(const struct hashmap *m, const void *item, const void *key, size_t len)
{
    size_t ilen;
    const void *ikey = m->key_of(item, &ilen);
    return ilen == len && memcmp(ikey, key, len) == 0;
}

/* The slot holding key, or the empty slot where it would go. The map is
 * never full (at most half its slots are used), so the probe ends. */
static size_t probe(const struct hashmap *m, size_t hash, const void *key, size_t len)
{
    size_t mask = m->cap - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        const struct hashmap_slot *s = &m->slots[i];
        if (!s->item || (s->hash == hash && item_has_key(m, s->item, key, len)))
            return i;
    }
}

/* Puts a slot into fresh slots (no key compares: it is known to be new). */
static void place(struct hashmap_slot *slots, size_t cap, struct hashmap_slot s)
{
    size_t mask = cap - 1;
    size_t j = s.hash & mask;
    while (slots[j].item)
        j = (j + 1) & mask;
    slots[j] = s;
}

static void grow(struct hashmap *m)
{
    size_t ncap = m->cap ? m->cap * 2 : FIRST_CAP;
    struct hashmap_slot *fresh = xcalloc(ncap, sizeof *fresh);
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].item)
            place(fresh, ncap, m->slots[i]);
    free(m->slots);
    m->slots = fresh;
    m->cap = ncap;
}

void *hashmap_get(const struct hashmap *m, const void *key, size_t len)
{
    if (!m->count)
        return NULL;
    return m->slots[probe(m, hashmap_hash(key, len), key, len)].item;
}

void *hashmap_get_str(const struct hashmap *m, const char *key)
{
    return hashmap_get(m, key, strlen(key));
}

int hashmap_add(struct hashmap *m, void *item)
{
    if (m->limit && m->count >= m->limit)
        return -1;
    if ((m->count + 1) * 2 > m->cap)
        grow(m);
    size_t len;
    const void *key = m->key_of(item, &len);
    size_t hash = hashmap_hash(key, len);
    size_t i = probe(m, hash, key, len);
    if (m->slots[i].item)
        return -1; /* the key is taken: the caller broke the contract */
    m->slots[i].hash = hash;
    m->slots[i].item = item;
    m->count++;
    return 0;
}

/* Empties slot i and moves later slots of the same probe run back, so no
 * lookup stops early at the hole (deletion without tombstones). */
static void delete_at(struct hashmap *m, size_t i)
{
    size_t mask = m->cap - 1;
    for (size_t j = (i + 1) & mask; m->slots[j].item; j = (j + 1) & mask) {
        size_t home = m->slots[j].hash & mask;
        /* Slot j may fill the hole at i unless its home lies cyclically in (i, j]. */
        int home_between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!home_between) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].item = NULL;
    m->slots[i].hash = 0;
    m->count--;
}

int hashmap_remove(struct hashmap *m, const void *item)
{
    if (!m->count)
        return 0;
    size_t len;
    const void *key = m->key_of(item, &len);
    size_t i = probe(m, hashmap_hash(key, len), key, len);
    if (m->slots[i].item != item)
        return 0;
    delete_at(m, i);
    return 1;
}

size_t hashmap_remove_if(struct hashmap *m, int (*drop)(void *item, void *arg), void *arg)
{
    if (!m->count)
        return 0;
    /* Rebuilt rather than deleted in place: moving slots back during the
     * walk would let some items be visited twice and others never. */
    struct hashmap_slot *kept = xcalloc(m->cap, sizeof *kept);
    size_t dropped = 0;
    for (size_t i = 0; i < m->cap; i++) {
        struct hashmap_slot s = m->slots[i];
        if (!s.item)
            continue;
        if (drop(s.item, arg))
            dropped++;
        else
            place(kept, m->cap, s);
    }
    free(m->slots);
    m->slots = kept;
    m->count -= dropped;
    return dropped;
}

size_t hashmap_count(const struct hashmap *m)
{
    return m->count;
}

int hashmap_full(const struct hashmap *m)
{
    return m->limit && m->count >= m->limit;
}

void *hashmap_next(const struct hashmap *m, size_t *cursor)
{
    while (*cursor < m->cap) {
        void *item = m->slots[(*cursor)++].item;
        if (item)
            return item;
    }
    return NULL;
}
