/* Unit tests for src/util/ipc_schema.c: the declared messages are what the
 * check accepts and nothing else; a channel closes on a message that does
 * not match (as on a malformed packet); and docs/ARCHITECTURE.md's socket
 * table is exactly the one rendered from the schema. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/ipc.h"
#include "util/ipc_schema.h"
#include "util/mem.h"
#include "util/strbuf.h"

static int check(const struct ipc_msg *m, const char *why_contains)
{
    char why[160] = "";
    int rc = ipc_schema_check(m, 0, why, sizeof why);
    if (why_contains && strstr(why, why_contains) == NULL)
        fail_msg("reason \"%s\" does not mention \"%s\"", why, why_contains);
    return rc;
}

static void test_accepts_what_the_processes_send(void **state)
{
    (void)state;
    struct ipc_msg m;
    ipc_msg_init(&m, IPC_COMMIT, 1);
    ipc_msg_add(&m, "id", "01K1YSCA0Y6J7");
    assert_int_equal(check(&m, NULL), 0);
    ipc_msg_free(&m);

    ipc_msg_init(&m, IPC_COMMIT_REPLY, 1);
    ipc_msg_add(&m, "status", "fail");
    ipc_msg_add(&m, "reply", "452 4.3.1 Insufficient system storage");
    assert_int_equal(check(&m, NULL), 0);
    ipc_msg_free(&m);

    ipc_msg_init(&m, IPC_DELIVER_REPLY, 1);
    ipc_msg_add(&m, "status", "sent-unsynced");
    ipc_msg_add(&m, "dsn", "2.0.0");
    ipc_msg_add(&m, "text", "delivered to maildir");
    assert_int_equal(check(&m, NULL), 0);
    ipc_msg_free(&m);

    /* numbered attributes: rcpt0 .. rcptN */
    ipc_msg_init(&m, IPC_QUEUE_LIST_ITEM, 1);
    ipc_msg_add(&m, "id", "01K1YSCA0Y6J7");
    ipc_msg_add(&m, "flag", "");
    ipc_msg_add_u64(&m, "size", 10);
    ipc_msg_add_u64(&m, "arrival", 1700000000);
    ipc_msg_add(&m, "sender", "a@example.org");
    ipc_msg_add(&m, "rcpt0", "b@example.org");
    ipc_msg_add(&m, "reason0", "");
    ipc_msg_add(&m, "rcpt12", "c@example.org");
    ipc_msg_add(&m, "reason12", "connection refused");
    ipc_msg_add_u64(&m, "nrcpt", 2);
    assert_int_equal(check(&m, NULL), 0);
    ipc_msg_free(&m);

    ipc_msg_init(&m, IPC_PICKUP, 1);
    assert_int_equal(check(&m, NULL), 0);
    ipc_msg_free(&m);
}

/* Only an attribute declared IPC_BYTES may hold a NUL: a text value holding
 * one would reach its receiver cut short, as a C string. */
static void test_a_nul_only_in_bytes(void **state)
{
    (void)state;
    struct ipc_msg m;
    ipc_msg_init(&m, IPC_COMMIT, 1);
    ipc_msg_add(&m, "id", "01K1YSCA0Y6J7");
    ipc_msg_add_bytes(&m, "file", "TERNQ\0\0\1", 8);
    assert_int_equal(check(&m, NULL), 0);
    ipc_msg_free(&m);

    ipc_msg_init(&m, IPC_COMMIT, 1);
    ipc_msg_add_bytes(&m, "id", "01K1YSCA0Y6J7\0X", 15);
    assert_int_equal(check(&m, "attribute id holds a NUL"), -1);
    ipc_msg_free(&m);

    ipc_msg_init(&m, IPC_BARRIER, 1);
    ipc_msg_add_bytes(&m, "written_s", "12\0", 3);
    assert_int_equal(check(&m, "holds a NUL"), -1);
    ipc_msg_free(&m);
}

static void test_refuses_what_is_not_declared(void **state)
{
    (void)state;
    struct ipc_msg m;
    ipc_msg_init(&m, 999, 1);
    assert_int_equal(check(&m, "unknown message type 999"), -1);
    ipc_msg_free(&m);

    /* the old comment's "reason" was never an attribute of COMMIT_REPLY */
    ipc_msg_init(&m, IPC_COMMIT_REPLY, 1);
    ipc_msg_add(&m, "status", "fail");
    ipc_msg_add(&m, "reason", "disk full");
    assert_int_equal(check(&m, "undeclared attribute \"reason\""), -1);
    ipc_msg_free(&m);

    ipc_msg_init(&m, IPC_COMMIT_REPLY, 1);
    ipc_msg_add(&m, "status", "maybe");
    assert_int_equal(check(&m, "status \"maybe\""), -1);
    ipc_msg_free(&m);

    ipc_msg_init(&m, IPC_COMMIT, 1);
    assert_int_equal(check(&m, "id is missing"), -1);
    ipc_msg_free(&m);

    ipc_msg_init(&m, IPC_DELIVER, 1);
    ipc_msg_add(&m, "id", "01K1YSCA0Y6J7");
    ipc_msg_add(&m, "path", "/q/01K1YSCA0Y6J7");
    ipc_msg_add(&m, "offset", "-1");
    ipc_msg_add_u64(&m, "length", 5);
    ipc_msg_add(&m, "sender", "");
    ipc_msg_add(&m, "rcpt", "b@example.org");
    assert_int_equal(check(&m, "offset is not a number"), -1);
    ipc_msg_free(&m);

    /* A number is one ipc_msg_get_u64 can read: past 64 bits the receiver
     * would see its default instead (found by fuzz_ipc). */
    static const struct {
        const char *value;
        int ok;
    } numbers[] = {
        {"18446744073709551615", 1}, {"0018446744073709551615", 1}, {"0", 1}, {"000", 1},
        {"18446744073709551616", 0}, {"99999999999999999999999", 0}, {"", 0}, {"+5", 0},
    };
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        ipc_msg_init(&m, IPC_BARRIER, 1);
        ipc_msg_add(&m, "written_s", numbers[i].value);
        int rc = check(&m, numbers[i].ok ? NULL : "written_s is not a number");
        if (numbers[i].ok) {
            assert_int_equal(rc, 0);
            assert_int_equal(ipc_msg_get_u64(&m, "written_s", 1), ipc_msg_get_u64(&m, "written_s", 2));
        } else {
            assert_int_equal(rc, -1);
        }
        ipc_msg_free(&m);
    }

    /* a numbered name needs its digits, and only digits */
    const char *bad[] = {"rcpt", "rcptx", "rcpt1x", "xrcpt1"};
    for (size_t i = 0; i < 4; i++) {
        ipc_msg_init(&m, IPC_QUEUE_LIST_ITEM, 1);
        ipc_msg_add(&m, "id", "01K1YSCA0Y6J7");
        ipc_msg_add(&m, "flag", "");
        ipc_msg_add_u64(&m, "size", 10);
        ipc_msg_add_u64(&m, "arrival", 1);
        ipc_msg_add(&m, "sender", "");
        ipc_msg_add_u64(&m, "nrcpt", 0);
        ipc_msg_add(&m, bad[i], "x");
        assert_int_equal(check(&m, "undeclared attribute"), -1);
        ipc_msg_free(&m);
    }
}

struct seen {
    int messages, closed;
};

static void on_message(struct ipc_chan *ch, struct ipc_msg *m, void *arg)
{
    (void)ch;
    struct seen *s = arg;
    if (m)
        s->messages++;
    else
        s->closed++;
}

/* The test's own encoder, so a message the schema refuses can be sent. */
static void send_raw(int fd, uint16_t type, const char *name, const char *value)
{
    struct strbuf w = STRBUF_INIT;
    unsigned char h[6] = {(unsigned char)type, (unsigned char)(type >> 8), 1, 0, 0, 0};
    strbuf_append(&w, h, 6);
    unsigned char n = (unsigned char)strlen(name);
    strbuf_append(&w, &n, 1);
    strbuf_append(&w, name, n);
    size_t v = strlen(value);
    unsigned char l[4] = {(unsigned char)v, (unsigned char)(v >> 8), 0, 0};
    strbuf_append(&w, l, 4);
    strbuf_append(&w, value, v);
    strbuf_putc(&w, '\0');
    assert_int_equal(send(fd, w.buf, w.len, 0), (ssize_t)w.len);
    strbuf_free(&w);
}

static void test_channel_closes_on_a_message_off_the_schema(void **state)
{
    (void)state;
    int pair[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, pair), 0);
    struct event_base *base = event_base_new();
    struct seen s = {0};
    struct ipc_chan *ch = ipc_chan_new(base, pair[1], on_message, &s);
    send_raw(pair[0], IPC_COMMIT_REPLY, "status", "ok");        /* fine */
    send_raw(pair[0], IPC_COMMIT_REPLY, "status", "perhaps");   /* not a status it has */
    for (int i = 0; i < 200 && s.closed == 0; i++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(1000);
    assert_int_equal(s.messages, 1);
    assert_int_equal(s.closed, 1);
    ipc_chan_free(ch);
    event_base_free(base);
    close(pair[0]);

    /* the blocking receiver refuses it too */
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, pair), 0);
    send_raw(pair[0], IPC_DONE, "bogus", "1");
    struct ipc_msg m;
    assert_int_equal(ipc_recv_blocking(pair[1], &m, 1000), -1);
    close(pair[0]);
    close(pair[1]);
}

static void test_architecture_doc_has_the_table(void **state)
{
    (void)state;
    struct strbuf table = STRBUF_INIT;
    ipc_schema_markdown(&table);
    FILE *f = fopen("docs/ARCHITECTURE.md", "r");
    if (!f)
        fail_msg("cannot read docs/ARCHITECTURE.md (run from the repository root)");
    struct strbuf doc = STRBUF_INIT;
    char buf[4096];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0)
        strbuf_append(&doc, buf, got);
    fclose(f);
    if (!strstr(strbuf_str(&doc), strbuf_str(&table)))
        fail_msg("docs/ARCHITECTURE.md's socket table differs from src/util/ipc_schema.c; it should read:\n%s",
                 strbuf_str(&table));
    size_t n;
    const struct ipc_msg_spec *all = ipc_schema_all(&n);
    assert_true(n >= 14);
    for (size_t i = 0; i < n; i++)
        assert_ptr_equal(ipc_schema_find(all[i].type), &all[i]);
    strbuf_free(&doc);
    strbuf_free(&table);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_what_the_processes_send),
        cmocka_unit_test(test_refuses_what_is_not_declared),
        cmocka_unit_test(test_a_nul_only_in_bytes),
        cmocka_unit_test(test_channel_closes_on_a_message_off_the_schema),
        cmocka_unit_test(test_architecture_doc_has_the_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
