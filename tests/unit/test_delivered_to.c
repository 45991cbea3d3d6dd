/* Tests for the local agent's mail forwarding loop check (delivered_to.c):
 * which Delivered-To fields count (the header's, not the body's; folded,
 * any case), and the check over a queue file's content and the queue's own
 * prepended fields, with the 5.4.6 bounce it gives. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "local/delivered_to.h"
#include "util/mem.h"

static int in_text(const char *text, const char *address, int *ended)
{
    return delivered_to_in_text(text, strlen(text), address, ended);
}

static void test_header_fields_count(void **state)
{
    (void)state;
    int ended = -1;
    assert_int_equal(in_text("Subject: x\r\nDelivered-To: bob@example.org\r\n\r\nbody\r\n", "bob@example.org",
                             &ended), 1);
    /* case, blanks and folding do not matter */
    assert_int_equal(in_text("delivered-to:   BOB@Example.ORG  \r\n\r\n", "bob@example.org", NULL), 1);
    assert_int_equal(in_text("DELIVERED-TO :\r\n\tbob@example.org\r\n\r\n", "bob@example.org", NULL), 1);
    /* LF lines too (the queue's prepend as local builds it) */
    assert_int_equal(in_text("Delivered-To: bob@example.org\n", "bob@example.org", &ended), 1);
    /* another address, or the address as part of a longer one */
    assert_int_equal(in_text("Delivered-To: alice@example.org\r\n\r\n", "bob@example.org", &ended), 0);
    assert_int_equal(ended, 1);
    assert_int_equal(in_text("Delivered-To: bob@example.org.evil\r\n\r\n", "bob@example.org", NULL), 0);
    assert_int_equal(in_text("X-Delivered-To: bob@example.org\r\n\r\n", "bob@example.org", NULL), 0);
    assert_int_equal(in_text("Delivered-To-X: bob@example.org\r\n\r\n", "bob@example.org", NULL), 0);
    /* a continuation of another field is not a field */
    assert_int_equal(in_text("Subject: x\r\n Delivered-To: bob@example.org\r\n\r\n", "bob@example.org", NULL), 0);
}

static void test_body_does_not_count(void **state)
{
    (void)state;
    int ended = 0;
    assert_int_equal(in_text("Subject: x\r\n\r\nDelivered-To: bob@example.org\r\n", "bob@example.org", &ended), 0);
    assert_int_equal(ended, 1);
    /* no header at all: the content starts with the empty line */
    assert_int_equal(in_text("\r\nDelivered-To: bob@example.org\r\n", "bob@example.org", NULL), 0);
    /* a line that is no field ends the header as well */
    assert_int_equal(in_text("Subject: x\r\nnot a field\r\nDelivered-To: bob@example.org\r\n", "bob@example.org",
                             NULL), 0);
    /* text that ends inside the header says so */
    assert_int_equal(in_text("Subject: x\r\nTo: y", "bob@example.org", &ended), 0);
    assert_int_equal(ended, 0);
}

/* A queue file: some bytes of envelope, then the content. */
static int queue_file(const char *content, struct deliver_input *in)
{
    int fd = memfd_create("queue", 0);
    assert_true(fd >= 0);
    const char envelope[] = "ENVELOPE";
    assert_int_equal(write(fd, envelope, sizeof envelope - 1), (ssize_t)(sizeof envelope - 1));
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    memset(in, 0, sizeof *in);
    in->fd = fd;
    in->offset = sizeof envelope - 1;
    in->length = (off_t)strlen(content);
    in->prepend = "Delivered-To: bob@example.org\n";   /* the caller's own: never looked at */
    in->sender = "";
    return fd;
}

static void test_loop_in_queue_file(void **state)
{
    (void)state;
    struct deliver_input in;
    struct deliver_error err;
    memset(&err, 0, sizeof err);
    int fd = queue_file("Received: from a\r\nDelivered-To: bob@example.org\r\nSubject: s\r\n\r\nhi\r\n", &in);
    assert_int_equal(delivered_to_loop(&in, NULL, "Bob@Example.org", &err, NULL), 1);
    assert_int_equal(err.temporary, 0);
    assert_string_equal(err.enh, "5.4.6");
    assert_string_equal(err.text, "mail forwarding loop for Bob@Example.org");
    /* another recipient of the same message is delivered */
    assert_int_equal(delivered_to_loop(&in, NULL, "alice@example.org", &err, NULL), 0);
    close(fd);

    /* only in the body */
    fd = queue_file("Subject: s\r\n\r\nDelivered-To: bob@example.org\r\n", &in);
    assert_int_equal(delivered_to_loop(&in, NULL, "bob@example.org", &err, NULL), 0);
    /* the queue's own prepended fields are the header too */
    assert_int_equal(delivered_to_loop(&in, "Authentication-Results: x\r\nDelivered-To: bob@example.org\r\n",
                                       "bob@example.org", &err, NULL), 1);
    close(fd);

    /* a header longer than one read, the field at its end; the address is
     * made printable for the log */
    size_t pad = 100000;
    char *big = xmalloc(pad + 200);
    size_t n = 0;
    while (n < pad)
        n += (size_t)sprintf(big + n, "X-Pad: %05zu\r\n", n);
    sprintf(big + n, "Delivered-To: b\x1bob@example.org\r\n\r\nbody\r\n");
    fd = queue_file(big, &in);
    assert_int_equal(delivered_to_loop(&in, NULL, "b\x1bob@example.org", &err, NULL), 1);
    assert_string_equal(err.text, "mail forwarding loop for b?ob@example.org");
    close(fd);
    free(big);

    /* a queue file shorter than it says: deferred */
    fd = queue_file("Subject: s\r\n", &in);
    in.length += 100;
    assert_int_equal(delivered_to_loop(&in, NULL, "bob@example.org", &err, NULL), -1);
    assert_int_equal(err.temporary, 1);
    close(fd);
}

/* A small content is read once: the check hands what it read to the
 * caller, and the copy takes it from there (the queue file is not read
 * again); a large one, or one that loops, is not handed over. */
static void test_small_content_read_once(void **state)
{
    (void)state;
    struct deliver_input in;
    struct deliver_error err;
    memset(&err, 0, sizeof err);
    const char *msg = "Subject: s\r\nFrom: a@b\r\n\r\nFrom the start\r\nbody\r\n";
    int fd = queue_file(msg, &in);
    char *content = (char *)1;
    assert_int_equal(delivered_to_loop(&in, NULL, "bob@example.org", &err, &content), 0);
    assert_non_null(content);
    assert_memory_equal(content, msg, strlen(msg));
    close(fd);
    in.fd = -1;   /* nothing left to read from */
    in.content = content;
    in.prepend = "Delivered-To: bob@example.org\n";
    int out = memfd_create("out", 0);
    assert_true(out >= 0);
    assert_int_equal(deliver_copy(&in, out, 1, NULL), 0);
    char got[256];
    ssize_t n = pread(out, got, sizeof got - 1, 0);
    assert_true(n > 0);
    got[n] = '\0';
    assert_string_equal(got, "Delivered-To: bob@example.org\nSubject: s\nFrom: a@b\n\n>From the start\nbody\n");
    close(out);
    free(content);

    /* a loop: nothing handed over */
    fd = queue_file("Delivered-To: bob@example.org\r\n\r\nx\r\n", &in);
    assert_int_equal(delivered_to_loop(&in, NULL, "bob@example.org", &err, &content), 1);
    assert_null(content);
    close(fd);

    /* larger than the first read: read in part, nothing handed over */
    size_t len = DELIVERED_TO_FIRST_READ + 5000;
    char *big = xmalloc(len + 1);
    memset(big, 'x', len);
    memcpy(big, "Subject: s\r\n\r\n", 14);
    big[len] = '\0';
    fd = queue_file(big, &in);
    assert_int_equal(delivered_to_loop(&in, NULL, "bob@example.org", &err, &content), 0);
    assert_null(content);
    close(fd);
    free(big);
}

/* Postfix's order above the message: From line, Return-Path, X-Original-To
 * (left out without an original), Delivered-To, the queue file's fields. */
static void test_prepend_order(void **state)
{
    (void)state;
    char *p = delivered_to_prepend("From a@b Thu Jan  1 00:00:00 1970\n", "a@b", "list@d", "bob@d",
                                   "Authentication-Results: x\n");
    assert_string_equal(p, "From a@b Thu Jan  1 00:00:00 1970\nReturn-Path: <a@b>\nX-Original-To: list@d\n"
                           "Delivered-To: bob@d\nAuthentication-Results: x\n");
    free(p);
    p = delivered_to_prepend(NULL, "", NULL, "bob@d", NULL);
    assert_string_equal(p, "Return-Path: <>\nDelivered-To: bob@d\n");
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_fields_count),
        cmocka_unit_test(test_body_does_not_count),
        cmocka_unit_test(test_loop_in_queue_file),
        cmocka_unit_test(test_small_content_read_once),
        cmocka_unit_test(test_prepend_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
