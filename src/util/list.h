/* list: the one doubly-linked list of tern, intrusive: an item embeds a
 * struct list_node and may sit in one list per node it embeds. Appending,
 * removing from anywhere and taking the first item are O(1), which is what
 * request queues need (a cancel takes a request out of the middle).
 *
 *     struct req { struct list_node link; ... };
 *     struct list queued = LIST_INIT;
 *     list_append(&queued, &r->link);
 *     for (struct req *r = LIST_FIRST(&queued, struct req, link); r;
 *          r = LIST_NEXT(r, struct req, link)) ...
 *     list_remove(&queued, &r->link);
 *
 * A zeroed struct list is empty, so lists inside xcalloc'ed structs need no
 * setup. No allocation, no locking: callers that share a list between
 * threads hold their own lock (see auth_passwd.c). Any module may use it. */
#ifndef TERN_UTIL_LIST_H
#define TERN_UTIL_LIST_H

#include <stddef.h>

struct list_node {
    struct list_node *prev, *next; /* NULL at the ends */
};

struct list {
    struct list_node *head, *tail;
};

#define LIST_INIT {NULL, NULL}

/* The item that embeds node as member, or NULL for a NULL node. */
#define LIST_ITEM(node, type, member) ((type *)list_container_((node), offsetof(type, member)))
#define LIST_FIRST(list, type, member) LIST_ITEM((list)->head, type, member)
#define LIST_NEXT(item, type, member) LIST_ITEM((item)->member.next, type, member)
#define LIST_LAST(list, type, member) LIST_ITEM((list)->tail, type, member)
#define LIST_PREV(item, type, member) LIST_ITEM((item)->member.prev, type, member)

static inline void *list_container_(struct list_node *node, size_t offset)
{
    return node ? (char *)node - offset : NULL;
}

static inline int list_empty(const struct list *l)
{
    return l->head == NULL;
}

static inline void list_append(struct list *l, struct list_node *n)
{
    n->next = NULL;
    n->prev = l->tail;
    if (l->tail)
        l->tail->next = n;
    else
        l->head = n;
    l->tail = n;
}

/* n must be in l. Leaves n's links NULL. */
static inline void list_remove(struct list *l, struct list_node *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        l->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        l->tail = n->prev;
    n->prev = n->next = NULL;
}

#endif
