/* map_async: tables that answer later, behind map_lookup (see map_async.h). */
#include "maps/map_async.h"

#include <event2/event.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "maps/map.h"
#include "maps/map_pgsql.h"
#include "util/hashmap.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

static struct event_base *loop;           /* the process's (map_set_event_base) */
static unsigned long pending_count;        /* lookups that answered MAP_PENDING */
static unsigned open_tables;               /* answering on loop */
static void (*answer_hook)(void *arg);
static void *answer_hook_arg;

void map_set_event_base(struct event_base *base)
{
    loop = base;
}

int map_async_in_use(void)
{
    return open_tables > 0;
}

unsigned long map_pending_count(void)
{
    return pending_count;
}

void map_set_answer_hook(void (*hook)(void *arg), void *arg)
{
    answer_hook = hook;
    answer_hook_arg = arg;
}

struct answer {
    char *key;                 /* lower case */
    struct map_async *owner;
    struct pgsql_query *query; /* while it is asked */
    int rc;
    char *value;
    long long expires_ms;
};

struct map_async {
    char *spec;
    struct pgsql_table *pg;
    struct event_base *own_loop;   /* without the process's: the command line waits on it */
    struct hashmap answers;        /* struct answer, by key */
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const void *answer_key(const void *item, size_t *len)
{
    const struct answer *a = item;
    *len = strlen(a->key);
    return a->key;
}

static void answer_free(struct answer *a)
{
    if (a->query)
        pgsql_lookup_cancel(a->query);
    free(a->key);
    free(a->value);
    free(a);
}

struct map_async *map_async_open_pgsql(const char *spec, const char *path, char **err)
{
    struct map_async *a = xcalloc(1, sizeof *a);
    if (!loop)
        a->own_loop = event_base_new();
    a->pg = pgsql_table_open(path, loop ? loop : a->own_loop, err);
    if (!a->pg) {
        if (a->own_loop)
            event_base_free(a->own_loop);
        free(a);
        return NULL;
    }
    a->spec = xstrdup(spec);
    hashmap_init(&a->answers, answer_key, MAP_ANSWERS_MAX);
    if (!a->own_loop)
        open_tables++;
    return a;
}

static void on_answer(void *arg, int rc, const char *value, const char *why)
{
    struct answer *a = arg;
    a->query = NULL;
    a->rc = rc;
    a->value = rc == 1 && value ? xstrdup(value) : NULL;
    a->expires_ms = now_ms() + MAP_ANSWER_TTL_MS;
    if (rc < 0)
        log_warn("table %s: lookup of \"%s\": %s", a->owner->spec, a->key, why ? why : "temporary failure");
    if (answer_hook)
        answer_hook(answer_hook_arg);
}

static int drop_expired(void *item, void *arg)
{
    struct answer *a = item;
    if (a->query || a->expires_ms > *(long long *)arg)
        return 0;
    answer_free(a);
    return 1;
}

int map_async_lookup(struct map_async *a, const char *key, char **value)
{
    *value = NULL;
    if (a->own_loop) {
        char *why = NULL;
        int rc = pgsql_table_lookup_wait(a->pg, key, value, &why);
        if (rc < 0)
            log_warn("table %s: lookup of \"%s\": %s", a->spec, key, why ? why : "temporary failure");
        free(why);
        return rc;
    }
    char *folded = xstrdup(key);
    str_lower(folded);
    long long now = now_ms();
    struct answer *ans = hashmap_get_str(&a->answers, folded);
    if (ans && !ans->query && ans->expires_ms <= now) {
        hashmap_remove(&a->answers, ans);
        answer_free(ans);
        ans = NULL;
    }
    if (ans) {
        free(folded);
        if (ans->query) {
            pending_count++;
            return MAP_PENDING;
        }
        if (ans->rc == 1)
            *value = xstrdup(ans->value ? ans->value : "");
        return ans->rc;
    }
    if (hashmap_full(&a->answers))
        hashmap_remove_if(&a->answers, drop_expired, &now);
    if (hashmap_full(&a->answers)) {
        log_warn("table %s: %d lookups at once; \"%s\" fails for now", a->spec, MAP_ANSWERS_MAX, folded);
        free(folded);
        return -1;
    }
    ans = xcalloc(1, sizeof *ans);
    ans->key = folded;
    ans->owner = a;
    hashmap_add(&a->answers, ans);
    ans->query = pgsql_lookup(a->pg, folded, on_answer, ans);
    pending_count++;
    return MAP_PENDING;
}

void map_async_close(struct map_async *a)
{
    if (!a)
        return;
    size_t i = 0;
    struct answer *ans;
    while ((ans = hashmap_next(&a->answers, &i)))
        answer_free(ans);
    hashmap_free(&a->answers);
    pgsql_table_close(a->pg);
    if (a->own_loop)
        event_base_free(a->own_loop);
    else
        open_tables--;
    free(a->spec);
    free(a);
}
