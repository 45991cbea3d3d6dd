/* Tests for util/hashmap: lookups by string and by bytes, growth, removal
 * (backward-shift deletion checked against a plain array model under
 * random operations), the limit, remove_if, iteration, and misuse that must
 * be refused (a second item with the same key). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/hashmap.h"
#include "util/mem.h"

struct item {
    char name[32];
    int value;
};

static const void *item_name(const void *p, size_t *len)
{
    const struct item *it = p;
    *len = strlen(it->name);
    return it->name;
}

static const void *item_value(const void *p, size_t *len)
{
    const struct item *it = p;
    *len = sizeof it->value;
    return &it->value;
}

static struct item *new_item(const char *name, int value)
{
    struct item *it = xcalloc(1, sizeof *it);
    snprintf(it->name, sizeof it->name, "%s", name);
    it->value = value;
    return it;
}

static void free_all(struct hashmap *m)
{
    size_t i = 0;
    struct item *it;
    while ((it = hashmap_next(m, &i)))
        free(it);
    hashmap_free(m);
}

static void test_empty(void **state)
{
    (void)state;
    struct hashmap m;
    hashmap_init(&m, item_name, 0);
    assert_null(hashmap_get_str(&m, "x"));
    assert_null(hashmap_get(&m, "", 0));
    assert_int_equal(hashmap_count(&m), 0);
    struct item it = {"x", 1};
    assert_int_equal(hashmap_remove(&m, &it), 0);
    size_t i = 0;
    assert_null(hashmap_next(&m, &i));
    hashmap_free(&m);
}

static void test_string_keys(void **state)
{
    (void)state;
    struct hashmap m;
    hashmap_init(&m, item_name, 0);
    struct item *a = new_item("192.0.2.1", 1), *b = new_item("192.0.2.10", 2), *e = new_item("", 3);
    assert_int_equal(hashmap_add(&m, a), 0);
    assert_int_equal(hashmap_add(&m, b), 0);
    assert_int_equal(hashmap_add(&m, e), 0);
    assert_ptr_equal(hashmap_get_str(&m, "192.0.2.1"), a);
    assert_ptr_equal(hashmap_get_str(&m, "192.0.2.10"), b);
    assert_ptr_equal(hashmap_get_str(&m, ""), e);
    assert_ptr_equal(hashmap_get(&m, "192.0.2.10", 9), a); /* a prefix is its own key */
    assert_null(hashmap_get_str(&m, "192.0.2.100"));
    assert_null(hashmap_get_str(&m, "192.0.2.1 "));
    assert_int_equal(hashmap_count(&m), 3);
    free_all(&m);
}

static void test_byte_keys(void **state)
{
    (void)state;
    struct hashmap m;
    hashmap_init(&m, item_value, 0);
    for (int v = 0; v < 1000; v++)
        assert_int_equal(hashmap_add(&m, new_item("", v)), 0);
    for (int v = 0; v < 1000; v++) {
        struct item *it = hashmap_get(&m, &v, sizeof v);
        assert_non_null(it);
        assert_int_equal(it->value, v);
    }
    int missing = 1000;
    assert_null(hashmap_get(&m, &missing, sizeof missing));
    assert_null(hashmap_get(&m, &missing, 2)); /* length is part of the key */
    free_all(&m);
}

static void test_same_key_refused(void **state)
{
    (void)state;
    struct hashmap m;
    hashmap_init(&m, item_name, 0);
    struct item *a = new_item("k", 1), *twin = new_item("k", 2);
    assert_int_equal(hashmap_add(&m, a), 0);
    assert_int_equal(hashmap_add(&m, twin), -1);
    assert_int_equal(hashmap_count(&m), 1);
    assert_ptr_equal(hashmap_get_str(&m, "k"), a);
    /* Removing by an item with the same key but another address removes nothing. */
    assert_int_equal(hashmap_remove(&m, twin), 0);
    assert_int_equal(hashmap_count(&m), 1);
    assert_int_equal(hashmap_remove(&m, a), 1);
    assert_int_equal(hashmap_count(&m), 0);
    free(a);
    free(twin);
    hashmap_free(&m);
}

static void test_limit(void **state)
{
    (void)state;
    struct hashmap m;
    hashmap_init(&m, item_value, 3);
    struct item *it[4];
    for (int v = 0; v < 4; v++)
        it[v] = new_item("", v);
    for (int v = 0; v < 3; v++) {
        assert_false(hashmap_full(&m));
        assert_int_equal(hashmap_add(&m, it[v]), 0);
    }
    assert_true(hashmap_full(&m));
    assert_int_equal(hashmap_add(&m, it[3]), -1);
    assert_int_equal(hashmap_count(&m), 3);
    assert_int_equal(hashmap_remove(&m, it[1]), 1);
    assert_false(hashmap_full(&m));
    assert_int_equal(hashmap_add(&m, it[3]), 0);
    free(it[1]);
    free_all(&m);

    struct hashmap unbounded;
    hashmap_init(&unbounded, item_value, 0);
    assert_false(hashmap_full(&unbounded));
}

static int drop_odd(void *p, void *arg)
{
    struct item *it = p;
    int *calls = arg;
    (*calls)++;
    if (it->value % 2) {
        free(it);
        return 1;
    }
    return 0;
}

static void test_remove_if(void **state)
{
    (void)state;
    struct hashmap m;
    hashmap_init(&m, item_value, 0);
    for (int v = 0; v < 500; v++)
        hashmap_add(&m, new_item("", v));
    int calls = 0;
    assert_int_equal(hashmap_remove_if(&m, drop_odd, &calls), 250);
    assert_int_equal(calls, 500); /* every item seen once */
    assert_int_equal(hashmap_count(&m), 250);
    for (int v = 0; v < 500; v++) {
        struct item *it = hashmap_get(&m, &v, sizeof v);
        if (v % 2)
            assert_null(it);
        else
            assert_non_null(it);
    }
    calls = 0;
    assert_int_equal(hashmap_remove_if(&m, drop_odd, &calls), 0);
    free_all(&m);
}

static void test_iteration_sees_each_once(void **state)
{
    (void)state;
    struct hashmap m;
    hashmap_init(&m, item_value, 0);
    enum { N = 777 };
    for (int v = 0; v < N; v++)
        hashmap_add(&m, new_item("", v));
    char seen[N] = {0};
    size_t i = 0, n = 0;
    struct item *it;
    while ((it = hashmap_next(&m, &i))) {
        assert_int_equal(seen[it->value], 0);
        seen[it->value] = 1;
        n++;
    }
    assert_int_equal(n, N);
    free_all(&m);
}

/* Random adds and removes on a small key space (many collisions and long
 * probe runs, including runs that wrap around the end of the slot array),
 * each step checked against an array that says which keys are in. */
static void test_random_against_model(void **state)
{
    (void)state;
    enum { KEYS = 300, STEPS = 20000 };
    struct item *model[KEYS] = {0};
    struct hashmap m;
    hashmap_init(&m, item_name, 0);
    unsigned seed = 12345;
    size_t in = 0;
    for (int step = 0; step < STEPS; step++) {
        seed = seed * 1103515245u + 12345u;
        int k = (int)((seed >> 8) % KEYS);
        char name[16];
        snprintf(name, sizeof name, "k%d", k);
        if (model[k]) {
            assert_ptr_equal(hashmap_get_str(&m, name), model[k]);
            assert_int_equal(hashmap_remove(&m, model[k]), 1);
            free(model[k]);
            model[k] = NULL;
            in--;
        } else {
            assert_null(hashmap_get_str(&m, name));
            model[k] = new_item(name, k);
            assert_int_equal(hashmap_add(&m, model[k]), 0);
            in++;
        }
        assert_int_equal(hashmap_count(&m), in);
        if (step % 1000 == 0) {
            for (int j = 0; j < KEYS; j++) {
                char other[16];
                snprintf(other, sizeof other, "k%d", j);
                assert_ptr_equal(hashmap_get_str(&m, other), model[j]);
            }
        }
    }
    for (int j = 0; j < KEYS; j++)
        free(model[j]);
    hashmap_free(&m);
}

static void test_free_leaves_map_usable(void **state)
{
    (void)state;
    struct hashmap m;
    hashmap_init(&m, item_name, 2);
    struct item *a = new_item("a", 1);
    hashmap_add(&m, a);
    hashmap_free(&m);
    assert_int_equal(hashmap_count(&m), 0);
    assert_null(hashmap_get_str(&m, "a"));
    assert_int_equal(hashmap_add(&m, a), 0); /* key function and limit kept */
    assert_ptr_equal(hashmap_get_str(&m, "a"), a);
    free_all(&m);
}

static void test_hash_is_fnv1a(void **state)
{
    (void)state;
    /* The values map.c's own table gave before it moved here, so slot
     * order (map_foreach) stays as it was. */
    if (sizeof(size_t) == 8) {
        assert_true(hashmap_hash("", 0) == (size_t)1469598103934665603ULL);
        assert_true(hashmap_hash("a", 1) == (size_t)0x44bd8ad473cd9906ULL);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_string_keys),
        cmocka_unit_test(test_byte_keys),
        cmocka_unit_test(test_same_key_refused),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_remove_if),
        cmocka_unit_test(test_iteration_sees_each_once),
        cmocka_unit_test(test_random_against_model),
        cmocka_unit_test(test_free_leaves_map_usable),
        cmocka_unit_test(test_hash_is_fnv1a),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
