/* hashmap: the one hash table of tern. It finds items the caller owns by a
 * key each item carries (a string or any run of bytes), so every table in
 * the program (anvil's clients, the lookup tables, password entries, Dovecot
 * request ids, the queue's messages) shares one tested implementation.
 *
 * Open addressing with linear probing, kept at most half full; the slot array
 * doubles as it fills. The map stores pointers and never copies, frees or
 * changes an item: the caller allocates items, keeps their keys unchanged
 * while they are in a map, and frees them after taking them out (or after
 * hashmap_free). A limit, when given, bounds the number of items: an add
 * past it fails and the caller decides what to forget (see smtpd_anvil.c).
 *
 * Usage:
 *     static const void *client_key(const void *item, size_t *len)
 *     { const struct client *c = item; *len = strlen(c->addr); return c->addr; }
 *     struct hashmap clients;
 *     hashmap_init(&clients, client_key, 0);
 *     hashmap_add(&clients, c);
 *     struct client *c = hashmap_get_str(&clients, "192.0.2.1");
 *
 * Any module may use it. Not thread-safe: one map, one thread at a time.
 * Iteration order is the slot order: stable for the same inserts, otherwise
 * unspecified. */
#ifndef TERN_UTIL_HASHMAP_H
#define TERN_UTIL_HASHMAP_H

#include <stddef.h>

/* Returns the key of item and sets *len to its length in bytes. */
typedef const void *hashmap_key_fn(const void *item, size_t *len);

struct hashmap_slot {
    size_t hash;
    void *item; /* NULL: empty */
};

struct hashmap {
    struct hashmap_slot *slots;
    size_t cap;   /* 0 or a power of two */
    size_t count;
    size_t limit; /* most items; 0: no limit */
    hashmap_key_fn *key_of;
};

/* Prepares an empty map (no allocation until the first add). */
void hashmap_init(struct hashmap *m, hashmap_key_fn *key_of, size_t limit);
/* Frees the slot array; the items stay the caller's. The map is empty and
 * usable again afterwards. */
void hashmap_free(struct hashmap *m);

/* The item whose key is these len bytes, or NULL. */
void *hashmap_get(const struct hashmap *m, const void *key, size_t len);
void *hashmap_get_str(const struct hashmap *m, const char *key);
/* Adds item. 0, or -1 (nothing added) when the map holds its limit of
 * items or already holds an item with the same key. */
int hashmap_add(struct hashmap *m, void *item);
/* Takes out this very item (found by its key); 1, or 0 when it is not in. */
int hashmap_remove(struct hashmap *m, const void *item);
/* Takes out every item for which drop(item, arg) returns nonzero; drop may
 * free the item. Returns how many went. */
size_t hashmap_remove_if(struct hashmap *m, int (*drop)(void *item, void *arg), void *arg);

size_t hashmap_count(const struct hashmap *m);
int hashmap_full(const struct hashmap *m);
/* Iteration: size_t i = 0; while ((item = hashmap_next(m, &i))) ...
 * The map must not change during it (freeing the items it returned, before
 * hashmap_free, is fine). */
void *hashmap_next(const struct hashmap *m, size_t *cursor);

/* The hash the map uses (64-bit FNV-1a, see hashmap.c, truncated to size_t). */
size_t hashmap_hash(const void *key, size_t len);

#endif
