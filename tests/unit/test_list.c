/* Tests for util/list: append order, removal from the head, the middle and
 * the tail, emptiness, and an item in two lists at once. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "util/list.h"

struct req {
    int id;
    struct list_node queue_link;
    struct list_node all_link;
};

/* Writes the ids of l in order into ids; returns how many, checking that
 * the prev links mirror the next links. */
static int ids_of(struct list *l, int *ids, int max)
{
    int n = 0;
    struct list_node *prev = NULL;
    for (struct req *r = LIST_FIRST(l, struct req, queue_link); r; r = LIST_NEXT(r, struct req, queue_link)) {
        assert_ptr_equal(r->queue_link.prev, prev);
        prev = &r->queue_link;
        assert_true(n < max);
        ids[n++] = r->id;
    }
    assert_ptr_equal(l->tail, prev);
    return n;
}

static void test_append_and_remove(void **state)
{
    (void)state;
    struct req r[5];
    struct list l = LIST_INIT;
    assert_true(list_empty(&l));
    assert_null(LIST_FIRST(&l, struct req, queue_link));
    for (int i = 0; i < 5; i++) {
        r[i].id = i;
        list_append(&l, &r[i].queue_link);
    }
    assert_false(list_empty(&l));
    int ids[8];
    assert_int_equal(ids_of(&l, ids, 8), 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(ids[i], i);

    list_remove(&l, &r[2].queue_link); /* middle */
    assert_null(r[2].queue_link.next);
    assert_null(r[2].queue_link.prev);
    list_remove(&l, &r[0].queue_link); /* head */
    list_remove(&l, &r[4].queue_link); /* tail */
    assert_int_equal(ids_of(&l, ids, 8), 2);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 3);

    list_append(&l, &r[0].queue_link); /* a removed item can come back */
    assert_int_equal(ids_of(&l, ids, 8), 3);
    assert_int_equal(ids[2], 0);

    list_remove(&l, &r[1].queue_link);
    list_remove(&l, &r[3].queue_link);
    list_remove(&l, &r[0].queue_link);
    assert_true(list_empty(&l));
    assert_null(l.tail);
}

static void test_two_lists(void **state)
{
    (void)state;
    struct req r[3] = {{.id = 0}, {.id = 1}, {.id = 2}};
    struct list queue = LIST_INIT, all = LIST_INIT;
    for (int i = 0; i < 3; i++) {
        list_append(&all, &r[i].all_link);
        if (i != 1)
            list_append(&queue, &r[i].queue_link);
    }
    list_remove(&queue, &r[0].queue_link);
    struct req *first = LIST_FIRST(&all, struct req, all_link);
    assert_int_equal(first->id, 0);
    assert_int_equal(LIST_NEXT(first, struct req, all_link)->id, 1);
    assert_int_equal(LIST_FIRST(&queue, struct req, queue_link)->id, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_and_remove),
        cmocka_unit_test(test_two_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
