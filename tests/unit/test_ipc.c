/* Tests for ipc: the message encoding (built by hand from the format in
 * ipc.h and decoded), attribute lookup, every way the decoder must refuse a
 * packet, the blocking helpers over a SOCK_SEQPACKET socketpair (round trip,
 * timeout, EOF, oversize packets), named sockets, and the event-driven
 * channel (with a descriptor passed along, and refused where not declared). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "test_fixture.h"
#include "util/ipc.h"
#include "util/mem.h"
#include "util/strbuf.h"

/* The packet ipc sends for m: u16 type | u32 reqid | attributes. */
static void wire_of(const struct ipc_msg *m, struct strbuf *out)
{
    unsigned char h[6] = {(unsigned char)m->type, (unsigned char)(m->type >> 8), (unsigned char)m->reqid,
                          (unsigned char)(m->reqid >> 8), (unsigned char)(m->reqid >> 16),
                          (unsigned char)(m->reqid >> 24)};
    strbuf_append(out, h, 6);
    strbuf_append(out, m->body.buf ? m->body.buf : "", m->body.len);
}

/* One attribute, by hand: u8 namelen | name | u32 vallen | value | NUL. */
static void wire_attr(struct strbuf *out, const char *name, const char *value, size_t vlen)
{
    unsigned char n = (unsigned char)strlen(name);
    strbuf_append(out, &n, 1);
    strbuf_append(out, name, n);
    unsigned char l[4] = {(unsigned char)vlen, (unsigned char)(vlen >> 8), (unsigned char)(vlen >> 16),
                          (unsigned char)(vlen >> 24)};
    strbuf_append(out, l, 4);
    strbuf_append(out, value, vlen);
    strbuf_putc(out, '\0');
}

static void sample(struct ipc_msg *m)
{
    /* every attribute is one ipc_schema declares for DELIVER */
    ipc_msg_init(m, IPC_DELIVER, 0xDEADBEEFu);
    ipc_msg_add(m, "id", "0123456789ABC");
    ipc_msg_addf(m, "path", "/var/spool/tern/queue/%s", "0123456789ABC");
    ipc_msg_add(m, "sender", "");
    ipc_msg_add(m, "user", NULL);
    ipc_msg_add_u64(m, "offset", UINT64_MAX);
    ipc_msg_add_u64(m, "length", 42);
    ipc_msg_add(m, "rcpt", "J\xc3\xb6rg\r\n\t");
}

static void assert_sample(const struct ipc_msg *m)
{
    assert_int_equal(m->type, IPC_DELIVER);
    assert_int_equal(m->reqid, 0xDEADBEEFu);
    assert_string_equal(ipc_msg_get(m, "id"), "0123456789ABC");
    assert_string_equal(ipc_msg_get(m, "path"), "/var/spool/tern/queue/0123456789ABC");
    assert_string_equal(ipc_msg_get(m, "sender"), "");
    assert_string_equal(ipc_msg_get(m, "user"), "");
    assert_string_equal(ipc_msg_get(m, "offset"), "18446744073709551615");
    assert_true(ipc_msg_get_u64(m, "offset", 7) == UINT64_MAX);
    assert_true(ipc_msg_get_u64(m, "length", 7) == 42);
    assert_string_equal(ipc_msg_get(m, "rcpt"), "J\xc3\xb6rg\r\n\t");
    assert_null(ipc_msg_get(m, "missing"));
}

/* ---- encoding ----------------------------------------------------------- */

static void test_encode_layout(void **state)
{
    (void)state;
    struct ipc_msg m;
    ipc_msg_init(&m, 0x0102, 0x03040506);
    ipc_msg_add(&m, "id", "AB");
    ipc_msg_add(&m, "", "x");
    struct strbuf w = STRBUF_INIT;
    wire_of(&m, &w);
    static const unsigned char want[] = {0x02, 0x01, 0x06, 0x05, 0x04, 0x03, 2, 'i', 'd', 2, 0, 0, 0, 'A',
                                         'B', 0, 0, 1, 0, 0, 0, 'x', 0};
    assert_int_equal(w.len, sizeof want);
    assert_memory_equal(w.buf, want, sizeof want);
    /* the hand-built form is the same */
    struct strbuf h = STRBUF_INIT;
    strbuf_append(&h, want, 6);
    wire_attr(&h, "id", "AB", 2);
    wire_attr(&h, "", "x", 1);
    assert_int_equal(h.len, w.len);
    assert_memory_equal(h.buf, w.buf, w.len);
    strbuf_free(&h);
    strbuf_free(&w);
    ipc_msg_free(&m);
}

static void test_round_trip(void **state)
{
    (void)state;
    struct ipc_msg m, d;
    sample(&m);
    struct strbuf w = STRBUF_INIT;
    wire_of(&m, &w);
    assert_int_equal(ipc_msg_decode(&d, w.buf, w.len), 0);
    assert_sample(&d);
    assert_int_equal(d.body.len, m.body.len);
    assert_memory_equal(d.body.buf, m.body.buf, m.body.len);
    ipc_msg_free(&d);
    /* no attributes at all */
    struct ipc_msg e;
    ipc_msg_init(&e, IPC_PICKUP, 0);
    strbuf_reset(&w);
    wire_of(&e, &w);
    assert_int_equal(w.len, 6);
    assert_int_equal(ipc_msg_decode(&d, w.buf, w.len), 0);
    assert_int_equal(d.type, IPC_PICKUP);
    assert_int_equal(d.reqid, 0);
    assert_null(ipc_msg_get(&d, "id"));
    ipc_msg_free(&d);
    ipc_msg_free(&e);
    strbuf_free(&w);
    ipc_msg_free(&m);
}

/* Bytes of every value, NULs included, come back as they went, with their
 * length. */
static void test_bytes_round_trip(void **state)
{
    (void)state;
    unsigned char bytes[300];
    for (size_t i = 0; i < sizeof bytes; i++)
        bytes[i] = (unsigned char)i;
    struct ipc_msg m, d;
    ipc_msg_init(&m, IPC_COMMIT, 7);
    ipc_msg_add(&m, "id", "01K1YSCA0Y6J7");
    ipc_msg_add_bytes(&m, "file", bytes, sizeof bytes);
    struct strbuf w = STRBUF_INIT;
    wire_of(&m, &w);
    assert_int_equal(ipc_msg_decode(&d, w.buf, w.len), 0);
    size_t len = 0;
    const unsigned char *got = ipc_msg_get_bytes(&d, "file", &len);
    assert_non_null(got);
    assert_int_equal(len, sizeof bytes);
    assert_memory_equal(got, bytes, sizeof bytes);
    assert_int_equal(got[len], 0);   /* terminated all the same */
    assert_string_equal(ipc_msg_get(&d, "id"), "01K1YSCA0Y6J7");
    assert_null(ipc_msg_get_bytes(&d, "missing", &len));
    ipc_msg_free(&d);
    strbuf_free(&w);
    ipc_msg_free(&m);
}

/* ipc_msg_wire gives the packet a channel sends, or nothing when it does
 * not fit the caller's buffer. */
static void test_wire_into_a_buffer(void **state)
{
    (void)state;
    struct ipc_msg m;
    ipc_msg_init(&m, IPC_COMMIT_REPLY, 4242);
    ipc_msg_add(&m, "status", "ok");
    struct strbuf w = STRBUF_INIT;
    wire_of(&m, &w);
    unsigned char buf[64];
    assert_int_equal(ipc_msg_wire(&m, buf, sizeof buf), w.len);
    assert_memory_equal(buf, w.buf, w.len);
    struct ipc_msg d;
    assert_int_equal(ipc_msg_decode(&d, buf, w.len), 0);
    assert_int_equal(d.type, IPC_COMMIT_REPLY);
    assert_int_equal(d.reqid, 4242);
    assert_string_equal(ipc_msg_get(&d, "status"), "ok");
    ipc_msg_free(&d);
    memset(buf, 0x5a, sizeof buf);
    assert_int_equal(ipc_msg_wire(&m, buf, w.len - 1), 0);
    assert_int_equal(buf[0], 0x5a); /* nothing written */
    strbuf_free(&w);
    ipc_msg_free(&m);
}

static void test_get(void **state)
{
    (void)state;
    struct ipc_msg m;
    ipc_msg_init(&m, IPC_DONE, 1);
    assert_null(ipc_msg_get(&m, "status"));   /* empty message */
    assert_int_equal(ipc_msg_get_u64(&m, "n", 99), 99);
    ipc_msg_add(&m, "status", "first");
    ipc_msg_add(&m, "stat", "prefix");
    ipc_msg_add(&m, "status", "second");
    ipc_msg_add(&m, "STATUS", "upper");
    assert_string_equal(ipc_msg_get(&m, "status"), "first");   /* the first of duplicates */
    assert_string_equal(ipc_msg_get(&m, "stat"), "prefix");
    assert_string_equal(ipc_msg_get(&m, "STATUS"), "upper");   /* names are case-sensitive */
    assert_null(ipc_msg_get(&m, "sta"));
    assert_null(ipc_msg_get(&m, "statusx"));
    assert_null(ipc_msg_get(&m, ""));
    /* the longest allowed name */
    char name[256];
    memset(name, 'n', 255);
    name[255] = '\0';
    ipc_msg_add(&m, name, "long");
    assert_string_equal(ipc_msg_get(&m, name), "long");
    ipc_msg_free(&m);
}

static void test_get_u64(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        uint64_t want;
    } cases[] = {
        {"0", 0},
        {"123", 123},
        {"18446744073709551615", UINT64_MAX},
        {"00042", 42},
        {"18446744073709551616", 7},   /* out of range */
        {"", 7},
        {"12x", 7},
        {"x12", 7},
        {"-1", 7},                     /* strtoull would wrap it to UINT64_MAX */
        {"-0", 7},
        {"+5", 7},
        {" 5", 7},
        {"5 ", 7},
        {"0x10", 7},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ipc_msg m;
        ipc_msg_init(&m, IPC_DONE, 0);
        ipc_msg_add(&m, "n", cases[i].value);
        uint64_t got = ipc_msg_get_u64(&m, "n", 7);
        if (got != cases[i].want)
            fail_msg("\"%s\": got %llu, want %llu", cases[i].value, (unsigned long long)got,
                     (unsigned long long)cases[i].want);
        ipc_msg_free(&m);
    }
}

/* ---- decoder refusals ---------------------------------------------------- */

static void assert_decode_fails(const void *p, size_t len, const char *what)
{
    struct ipc_msg d;
    if (ipc_msg_decode(&d, p, len) == 0) {
        ipc_msg_free(&d);
        fail_msg("decoded a bad packet: %s", what);
    }
}

/* Cut anywhere, a packet decodes only where an attribute ends. */
static void test_decode_truncated(void **state)
{
    (void)state;
    struct strbuf w = STRBUF_INIT;
    strbuf_append(&w, "\x03\x00\x01\x00\x00\x00", 6);
    size_t bounds[4];
    bounds[0] = w.len;
    wire_attr(&w, "id", "0123456789ABC", 13);
    bounds[1] = w.len;
    wire_attr(&w, "reason", "mailbox full", 12);
    bounds[2] = w.len;
    wire_attr(&w, "e", "", 0);
    bounds[3] = w.len;
    for (size_t cut = 0; cut <= w.len; cut++) {
        int boundary = 0;
        for (size_t b = 0; b < 4; b++)
            boundary |= cut == bounds[b];
        struct ipc_msg d;
        int rc = ipc_msg_decode(&d, w.buf, cut);
        if (boundary) {
            if (rc != 0)
                fail_msg("refused a whole packet of %zu bytes", cut);
            ipc_msg_free(&d);
        } else if (rc == 0) {
            ipc_msg_free(&d);
            fail_msg("decoded a packet cut at %zu", cut);
        }
    }
    strbuf_free(&w);
}

static void test_decode_overlong_and_nul(void **state)
{
    (void)state;
    static const unsigned char head[6] = {1, 0, 0, 0, 0, 0};
    struct strbuf w = STRBUF_INIT;

    /* value length beyond the packet, by one and by a lot */
    static const uint32_t lens[] = {4, 5, 100, 0x7FFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFAu};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        strbuf_reset(&w);
        strbuf_append(&w, head, 6);
        strbuf_append(&w, "\x01k", 2);
        unsigned char l[4] = {(unsigned char)lens[i], (unsigned char)(lens[i] >> 8),
                              (unsigned char)(lens[i] >> 16), (unsigned char)(lens[i] >> 24)};
        strbuf_append(&w, l, 4);
        strbuf_append(&w, "abc\0", 4);   /* 3 bytes of value and a NUL */
        char what[64];
        snprintf(what, sizeof what, "value length %u", (unsigned)lens[i]);
        assert_decode_fails(w.buf, w.len, what);
    }
    /* name length beyond the packet */
    strbuf_reset(&w);
    strbuf_append(&w, head, 6);
    strbuf_append(&w, "\xff" "abc", 4);
    assert_decode_fails(w.buf, w.len, "name length 255");
    /* value without its NUL */
    strbuf_reset(&w);
    strbuf_append(&w, head, 6);
    strbuf_append(&w, "\x01k\x03\x00\x00\x00" "abcX", 10);
    assert_decode_fails(w.buf, w.len, "no NUL after the value");
    strbuf_reset(&w);
    strbuf_append(&w, head, 6);
    strbuf_append(&w, "\x01k\x03\x00\x00\x00" "abc", 9);
    assert_decode_fails(w.buf, w.len, "NUL missing at the end");
    /* a NUL inside the value decodes (an IPC_BYTES value may hold one;
     * ipc_schema_check refuses it in text: test_ipc_schema), its length kept */
    strbuf_reset(&w);
    strbuf_append(&w, head, 6);
    strbuf_append(&w, "\x01k\x03\x00\x00\x00" "a\0c\0", 10);
    struct ipc_msg d;
    assert_int_equal(ipc_msg_decode(&d, w.buf, w.len), 0);
    size_t len = 0;
    const char *v = ipc_msg_get_bytes(&d, "k", &len);
    assert_non_null(v);
    assert_int_equal(len, 3);
    assert_memory_equal(v, "a\0c", 3);
    ipc_msg_free(&d);
    /* a good attribute then one byte of garbage */
    strbuf_reset(&w);
    strbuf_append(&w, head, 6);
    wire_attr(&w, "k", "v", 1);
    strbuf_putc(&w, 'x');
    assert_decode_fails(w.buf, w.len, "trailing byte");
    /* too short for the header */
    assert_decode_fails("\x01\x00\x00\x00\x00", 5, "5-byte packet");
    assert_decode_fails("", 0, "empty packet");
    strbuf_free(&w);
}

/* ---- blocking helpers over a socketpair --------------------------------- */

static int pair[2];

static int setup_pair(void **state)
{
    (void)state;
    return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair);
}

static int teardown_pair(void **state)
{
    (void)state;
    if (pair[0] >= 0)
        close(pair[0]);
    if (pair[1] >= 0)
        close(pair[1]);
    return 0;
}

static long ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

static void test_blocking_round_trip(void **state)
{
    (void)state;
    struct ipc_msg m, r;
    sample(&m);
    assert_int_equal(ipc_send_blocking(pair[0], &m), 0);
    struct ipc_msg second;
    ipc_msg_init(&second, IPC_DONE, 2);
    ipc_msg_add(&second, "status", "ok");
    ipc_msg_add(&second, "text", "1");
    assert_int_equal(ipc_send_blocking(pair[0], &second), 0);
    /* each packet is one message, in order */
    assert_int_equal(ipc_recv_blocking(pair[1], &r, 1000), 0);
    assert_sample(&r);
    ipc_msg_free(&r);
    assert_int_equal(ipc_recv_blocking(pair[1], &r, 1000), 0);
    assert_int_equal(r.type, IPC_DONE);
    assert_int_equal(r.reqid, 2);
    assert_string_equal(ipc_msg_get(&r, "status"), "ok");
    assert_null(ipc_msg_get(&r, "id"));
    ipc_msg_free(&r);
    /* and the other way */
    assert_int_equal(ipc_send_blocking(pair[1], &second), 0);
    assert_int_equal(ipc_recv_blocking(pair[0], &r, 1000), 0);
    assert_int_equal(r.reqid, 2);
    ipc_msg_free(&r);
    ipc_msg_free(&second);
    ipc_msg_free(&m);
}

static void test_blocking_timeout(void **state)
{
    (void)state;
    struct ipc_msg r;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    errno = 0;
    assert_int_equal(ipc_recv_blocking(pair[1], &r, 100), -1);
    assert_int_equal(errno, ETIMEDOUT);
    long ms = ms_since(&t0);
    assert_true(ms >= 90);
    assert_true(ms < 2000);
    /* zero timeout: an immediate answer */
    assert_int_equal(ipc_recv_blocking(pair[1], &r, 0), -1);
    assert_int_equal(errno, ETIMEDOUT);
    /* a message already there arrives even with a zero timeout */
    struct ipc_msg m;
    ipc_msg_init(&m, IPC_COMMIT, 9);
    ipc_msg_add(&m, "id", "0123456789ABC");
    assert_int_equal(ipc_send_blocking(pair[0], &m), 0);
    assert_int_equal(ipc_recv_blocking(pair[1], &r, 0), 0);
    assert_int_equal(r.reqid, 9);
    ipc_msg_free(&r);
    ipc_msg_free(&m);
}

static void test_blocking_eof_and_garbage(void **state)
{
    (void)state;
    struct ipc_msg r;
    /* a packet that does not decode */
    assert_int_equal(send(pair[0], "\x01\x00\x00\x00\x00\x00\x05k", 8, 0), 8);
    assert_int_equal(ipc_recv_blocking(pair[1], &r, 1000), -1);
    assert_int_equal(send(pair[0], "abc", 3, 0), 3);
    assert_int_equal(ipc_recv_blocking(pair[1], &r, 1000), -1);
    /* the peer goes away */
    close(pair[0]);
    pair[0] = -1;
    errno = 0;
    assert_int_equal(ipc_recv_blocking(pair[1], &r, 1000), -1);
    assert_int_equal(errno, ECONNRESET);
    /* sending to a closed peer fails (and does not raise SIGPIPE) */
    struct ipc_msg m;
    ipc_msg_init(&m, IPC_PICKUP, 0);
    assert_int_equal(ipc_send_blocking(pair[1], &m), -1);
    ipc_msg_free(&m);
}

/* A message of exactly IPC_MAX_MSG bytes passes; a larger one is refused by
 * the sender, and a larger packet from elsewhere is refused by the receiver
 * even when its first IPC_MAX_MSG bytes would decode. */
static void test_blocking_size_limit(void **state)
{
    (void)state;
    int size = 4 * IPC_MAX_MSG;
    setsockopt(pair[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    setsockopt(pair[1], SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    /* header 6 + attr (1 + 2 + 4 + v + 1) = IPC_MAX_MSG */
    size_t vlen = IPC_MAX_MSG - 6 - 8;
    char *v = xmalloc(vlen + 2);
    memset(v, 'v', vlen + 1);
    v[vlen] = '\0';
    struct ipc_msg m, r;
    ipc_msg_init(&m, IPC_COMMIT, 1);
    ipc_msg_add(&m, "id", v);
    assert_int_equal(6 + m.body.len, IPC_MAX_MSG);
    assert_int_equal(ipc_send_blocking(pair[0], &m), 0);
    assert_int_equal(ipc_recv_blocking(pair[1], &r, 1000), 0);
    assert_int_equal(strlen(ipc_msg_get(&r, "id")), vlen);
    ipc_msg_free(&r);
    ipc_msg_free(&m);

    /* one byte more */
    v[vlen] = 'v';
    v[vlen + 1] = '\0';
    ipc_msg_init(&m, IPC_COMMIT, 2);
    ipc_msg_add(&m, "id", v);
    errno = 0;
    assert_int_equal(ipc_send_blocking(pair[0], &m), -1);
    assert_int_equal(errno, EMSGSIZE);
    ipc_msg_free(&m);

    /* a raw packet whose first IPC_MAX_MSG bytes are a whole message */
    v[vlen] = '\0';
    ipc_msg_init(&m, IPC_COMMIT, 3);
    ipc_msg_add(&m, "id", v);
    ipc_msg_add(&m, "more", "lost if the packet is cut");
    struct strbuf w = STRBUF_INIT;
    wire_of(&m, &w);
    assert_true(w.len > IPC_MAX_MSG);
    assert_int_equal(send(pair[0], w.buf, w.len, 0), (ssize_t)w.len);
    int rc = ipc_recv_blocking(pair[1], &r, 1000);
    if (rc == 0) {
        ipc_msg_free(&r);
        fail_msg("accepted an oversize packet cut to IPC_MAX_MSG bytes");
    }
    strbuf_free(&w);
    ipc_msg_free(&m);
    free(v);
}

/* ---- named sockets ------------------------------------------------------- */

static void test_listen_connect(void **state)
{
    (void)state;
    char dir[64];
    assert_int_equal(tf_tmpdir_make(dir, sizeof dir, "ipc"), 0);
    char *path = xasprintf("%s/sock", dir);
    int lfd = ipc_listen(path, 0600);
    assert_true(lfd >= 0);
    /* a stale socket file is replaced */
    close(lfd);
    lfd = ipc_listen(path, 0660);
    assert_true(lfd >= 0);
    int cfd = ipc_connect(path);
    assert_true(cfd >= 0);
    int afd = accept(lfd, NULL, NULL);
    assert_true(afd >= 0);
    struct ipc_msg m, r;
    ipc_msg_init(&m, IPC_QUEUE_HOLD, 77);
    ipc_msg_add(&m, "id", "ALL");
    assert_int_equal(ipc_send_blocking(cfd, &m), 0);
    assert_int_equal(ipc_recv_blocking(afd, &r, 1000), 0);
    assert_int_equal(r.type, IPC_QUEUE_HOLD);
    assert_string_equal(ipc_msg_get(&r, "id"), "ALL");
    ipc_msg_free(&r);
    ipc_msg_free(&m);
    close(afd);
    close(cfd);
    close(lfd);
    unlink(path);
    /* nobody listening */
    assert_int_equal(ipc_connect(path), -1);
    /* a path that does not fit sockaddr_un */
    char *longpath = xmalloc(200);
    memset(longpath, 'p', 199);
    longpath[0] = '/';
    longpath[199] = '\0';
    errno = 0;
    assert_int_equal(ipc_connect(longpath), -1);
    assert_int_equal(errno, ENAMETOOLONG);
    assert_int_equal(ipc_listen(longpath, 0600), -1);
    assert_int_equal(errno, ENAMETOOLONG);
    free(longpath);
    tf_tmpdir_remove(dir);
    free(path);
}

/* ---- event-driven channel ----------------------------------------------- */

struct chan_log {
    int messages;
    int closed;
    uint32_t last_reqid;
    char last_status[32];
};

static void on_message(struct ipc_chan *ch, struct ipc_msg *m, void *arg)
{
    (void)ch;
    struct chan_log *log = arg;
    if (!m) {
        log->closed++;
        return;
    }
    log->messages++;
    log->last_reqid = m->reqid;
    const char *s = ipc_msg_get(m, "status");
    snprintf(log->last_status, sizeof log->last_status, "%s", s ? s : "");
}

static void run_until(struct event_base *base, const int *counter, int want)
{
    for (int i = 0; i < 200 && *counter < want; i++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(1000);
}

static void test_channel(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    assert_non_null(base);
    struct chan_log log = {0};
    struct ipc_chan *ch = ipc_chan_new(base, pair[1], on_message, &log);
    pair[1] = -1;   /* the channel owns it now */
    assert_true(ipc_chan_fd(ch) >= 0);

    /* messages in: each handled once, in order */
    struct ipc_msg m, r;
    for (uint32_t i = 1; i <= 3; i++) {
        ipc_msg_init(&m, IPC_COMMIT_REPLY, i);
        ipc_msg_add(&m, "status", i == 3 ? "fail" : "ok");
        assert_int_equal(ipc_send_blocking(pair[0], &m), 0);
        ipc_msg_free(&m);
    }
    run_until(base, &log.messages, 3);
    assert_int_equal(log.messages, 3);
    assert_int_equal(log.last_reqid, 3);
    assert_string_equal(log.last_status, "fail");
    assert_int_equal(log.closed, 0);

    /* messages out */
    ipc_msg_init(&m, IPC_COMMIT, 41);
    ipc_msg_add(&m, "id", "0123456789ABC");
    assert_int_equal(ipc_chan_send(ch, &m), 0);
    ipc_msg_free(&m);
    assert_int_equal(ipc_recv_blocking(pair[0], &r, 1000), 0);
    assert_int_equal(r.reqid, 41);
    assert_string_equal(ipc_msg_get(&r, "id"), "0123456789ABC");
    ipc_msg_free(&r);

    /* a malformed packet is fatal for the channel: the handler gets NULL */
    assert_int_equal(send(pair[0], "\x01\x00", 2, 0), 2);
    run_until(base, &log.closed, 1);
    assert_int_equal(log.closed, 1);
    ipc_msg_init(&m, IPC_COMMIT, 42);
    ipc_msg_add(&m, "id", "0123456789ABC");
    assert_int_equal(ipc_chan_send(ch, &m), -1);   /* dead channel */
    ipc_msg_free(&m);
    ipc_chan_free(ch);
    event_base_free(base);
}

/* An oversize packet on a channel is refused, not cut and taken. */
static void test_channel_oversize(void **state)
{
    (void)state;
    int size = 4 * IPC_MAX_MSG;
    setsockopt(pair[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    struct event_base *base = event_base_new();
    struct chan_log log = {0};
    struct ipc_chan *ch = ipc_chan_new(base, pair[1], on_message, &log);
    pair[1] = -1;
    size_t vlen = IPC_MAX_MSG - 6 - 7;
    char *v = xmalloc(vlen + 1);
    memset(v, 'v', vlen);
    v[vlen] = '\0';
    struct ipc_msg m;
    ipc_msg_init(&m, IPC_DONE, 3);
    ipc_msg_add(&m, "k", v);
    ipc_msg_add(&m, "more", "cut off");
    struct strbuf w = STRBUF_INIT;
    wire_of(&m, &w);
    assert_int_equal(send(pair[0], w.buf, w.len, 0), (ssize_t)w.len);
    run_until(base, &log.closed, 1);
    assert_int_equal(log.messages, 0);
    assert_int_equal(log.closed, 1);
    strbuf_free(&w);
    ipc_msg_free(&m);
    free(v);
    ipc_chan_free(ch);
    event_base_free(base);
}

static void test_channel_peer_closes(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    struct chan_log log = {0};
    struct ipc_chan *ch = ipc_chan_new(base, pair[1], on_message, NULL);
    pair[1] = -1;
    ipc_chan_set_arg(ch, &log);
    close(pair[0]);
    pair[0] = -1;
    run_until(base, &log.closed, 1);
    assert_int_equal(log.closed, 1);
    assert_int_equal(log.messages, 0);
    ipc_chan_free(ch);
    ipc_chan_free(NULL);
    event_base_free(base);
}

/* ---- a descriptor passed along (COMMIT with smtpd's memfd) ---- */

struct fd_log {
    int messages, closed;
    int kept;            /* the descriptor the handler took */
};

static void on_fd_message(struct ipc_chan *ch, struct ipc_msg *m, void *arg)
{
    (void)ch;
    struct fd_log *log = arg;
    if (!m) {
        log->closed++;
        return;
    }
    log->messages++;
    if (m->fd >= 0 && log->kept < 0) {
        log->kept = m->fd;   /* taken: ipc does not close it */
        m->fd = -1;
    }
}

/* Notes what came: a descriptor (kept), or IPC_FD_LOST. */
static void on_lost_message(struct ipc_chan *ch, struct ipc_msg *m, void *arg)
{
    (void)ch;
    struct fd_log *log = arg;
    if (!m) {
        log->closed++;
        return;
    }
    log->messages++;
    log->kept = m->fd;
    if (m->fd >= 0)
        m->fd = -1;
}

/* Sends a packet with n descriptors of the file fd by hand. */
static void send_with_fds(int sock, const struct ipc_msg *m, int fd, int n)
{
    struct strbuf w = STRBUF_INIT;
    wire_of(m, &w);
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(2 * sizeof(int))];
    } control;
    memset(&control, 0, sizeof control);
    struct iovec iov = {.iov_base = w.buf, .iov_len = w.len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                        .msg_controllen = CMSG_SPACE((size_t)n * sizeof(int))};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++)
        memcpy(CMSG_DATA(c) + (size_t)i * sizeof(int), &fd, sizeof fd);
    assert_int_equal(sendmsg(sock, &mh, 0), (ssize_t)w.len);
    strbuf_free(&w);
}

static void test_channel_passes_a_descriptor(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    struct fd_log got = {.kept = -1};
    struct ipc_chan *rx = ipc_chan_new(base, pair[1], on_fd_message, &got);
    pair[1] = -1;
    struct fd_log none = {.kept = -1};

    /* COMMIT may carry one: the receiver reads the same file */
    int memfd = memfd_create("test", MFD_CLOEXEC);
    assert_true(memfd >= 0);
    assert_int_equal(write(memfd, "queue file", 10), 10);
    struct ipc_msg m;
    ipc_msg_init(&m, IPC_COMMIT, 5);
    ipc_msg_add(&m, "id", "0123456789ABC");
    struct ipc_chan *tx = ipc_chan_new(base, dup(pair[0]), on_fd_message, &none);
    assert_int_equal(ipc_chan_send_fd(tx, &m, memfd), 0);   /* taken over */
    run_until(base, &got.messages, 1);
    assert_int_equal(got.messages, 1);
    assert_true(got.kept >= 0);
    char buf[16] = "";
    assert_int_equal(pread(got.kept, buf, sizeof buf, 0), 10);
    assert_memory_equal(buf, "queue file", 10);
    close(got.kept);

    /* a type that never carries one: the channel is closed, the descriptor too */
    int fd = memfd_create("stray", MFD_CLOEXEC);
    struct ipc_msg r;
    ipc_msg_init(&r, IPC_COMMIT_REPLY, 6);
    ipc_msg_add(&r, "status", "ok");
    send_with_fds(pair[0], &r, fd, 1);
    ipc_msg_free(&r);
    run_until(base, &got.closed, 1);
    assert_int_equal(got.closed, 1);
    assert_int_equal(got.messages, 1);

    /* two in one packet are refused as well (on a fresh channel) */
    struct fd_log two = {.kept = -1};
    int sp[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
    struct ipc_chan *rx2 = ipc_chan_new(base, sp[1], on_fd_message, &two);
    send_with_fds(sp[0], &m, fd, 2);
    run_until(base, &two.closed, 1);
    assert_int_equal(two.closed, 1);
    assert_int_equal(two.messages, 0);
    close(fd);
    close(sp[0]);
    ipc_msg_free(&m);
    ipc_chan_free(rx2);
    ipc_chan_free(tx);
    ipc_chan_free(rx);
    event_base_free(base);
}

/* A process out of descriptors cannot take one that comes: the message
 * still arrives, marked IPC_FD_LOST, and the channel lives on. */
static void test_channel_descriptor_lost(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    struct fd_log got = {.kept = -1};
    struct ipc_chan *rx = ipc_chan_new(base, pair[1], on_lost_message, &got);
    pair[1] = -1;
    int memfd = memfd_create("test", MFD_CLOEXEC);
    struct ipc_msg m;
    ipc_msg_init(&m, IPC_COMMIT, 9);
    ipc_msg_add(&m, "id", "0123456789ABC");
    send_with_fds(pair[0], &m, memfd, 1);
    close(memfd);
    /* no descriptor free below the limit: the lowest free one is the limit */
    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    int lowest = dup(0);
    assert_true(lowest >= 0);
    close(lowest);
    struct rlimit tight = {(rlim_t)lowest, old.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &tight), 0);
    for (int i = 0; i < 200 && got.messages < 1 && got.closed < 1; i++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_int_equal(got.messages, 1);
    assert_int_equal(got.closed, 0);
    assert_int_equal(got.kept, IPC_FD_LOST);
    /* the next one comes through as usual */
    memfd = memfd_create("test", MFD_CLOEXEC);
    send_with_fds(pair[0], &m, memfd, 1);
    close(memfd);
    got.kept = -1;
    run_until(base, &got.messages, 2);
    assert_int_equal(got.messages, 2);
    assert_true(got.kept >= 0);
    close(got.kept);
    ipc_msg_free(&m);
    ipc_chan_free(rx);
    event_base_free(base);
}

/* ---- output that waits for the peer: pause reading, drain callback ---- */

static int drained_calls;

static void on_drained(struct ipc_chan *ch, void *arg)
{
    (void)ch;
    (void)arg;
    drained_calls++;
}

static void test_channel_backpressure(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    struct chan_log log = {0};
    struct ipc_chan *ch = ipc_chan_new(base, pair[1], on_message, &log);
    pair[1] = -1;

    /* a paused channel takes no message until reading resumes */
    ipc_chan_set_reading(ch, 0);
    struct ipc_msg m;
    ipc_msg_init(&m, IPC_COMMIT_REPLY, 7);
    ipc_msg_add(&m, "status", "ok");
    assert_int_equal(ipc_send_blocking(pair[0], &m), 0);
    ipc_msg_free(&m);
    for (int i = 0; i < 20; i++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_int_equal(log.messages, 0);
    ipc_chan_set_reading(ch, 1);
    run_until(base, &log.messages, 1);
    assert_int_equal(log.messages, 1);

    /* a peer that does not read: output queues up in the channel ... */
    char big[8192];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    int sent = 0;
    while (ipc_chan_queued(ch) < 256 * 1024 && sent < 10000) {
        ipc_msg_init(&m, IPC_DONE, (uint32_t)sent);
        ipc_msg_add(&m, "status", "ok");
        ipc_msg_add(&m, "text", big);
        assert_int_equal(ipc_chan_send(ch, &m), 0);
        ipc_msg_free(&m);
        sent++;
    }
    assert_true(ipc_chan_queued(ch) >= 256 * 1024);
    /* ... and the drain callback waits until the peer has read it */
    ipc_chan_on_drain(ch, 0, on_drained);
    for (int i = 0; i < 20; i++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_int_equal(drained_calls, 0);
    for (int i = 0; i < sent; i++) {
        struct ipc_msg r;
        while (ipc_recv_blocking(pair[0], &r, 0) != 0)
            event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        ipc_msg_free(&r);
    }
    run_until(base, &drained_calls, 1);
    assert_int_equal(drained_calls, 1);
    assert_int_equal(ipc_chan_queued(ch), 0);
    /* at once when already below the mark, and once only */
    ipc_chan_on_drain(ch, 0, on_drained);
    run_until(base, &drained_calls, 2);
    for (int i = 0; i < 5; i++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_int_equal(drained_calls, 2);
    ipc_chan_free(ch);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_layout),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_wire_into_a_buffer),
        cmocka_unit_test(test_bytes_round_trip),
        cmocka_unit_test(test_get),
        cmocka_unit_test(test_get_u64),
        cmocka_unit_test(test_decode_truncated),
        cmocka_unit_test(test_decode_overlong_and_nul),
        cmocka_unit_test_setup_teardown(test_blocking_round_trip, setup_pair, teardown_pair),
        cmocka_unit_test_setup_teardown(test_blocking_timeout, setup_pair, teardown_pair),
        cmocka_unit_test_setup_teardown(test_blocking_eof_and_garbage, setup_pair, teardown_pair),
        cmocka_unit_test_setup_teardown(test_blocking_size_limit, setup_pair, teardown_pair),
        cmocka_unit_test(test_listen_connect),
        cmocka_unit_test_setup_teardown(test_channel, setup_pair, teardown_pair),
        cmocka_unit_test_setup_teardown(test_channel_oversize, setup_pair, teardown_pair),
        cmocka_unit_test_setup_teardown(test_channel_peer_closes, setup_pair, teardown_pair),
        cmocka_unit_test_setup_teardown(test_channel_backpressure, setup_pair, teardown_pair),
        cmocka_unit_test_setup_teardown(test_channel_passes_a_descriptor, setup_pair, teardown_pair),
        cmocka_unit_test_setup_teardown(test_channel_descriptor_lost, setup_pair, teardown_pair),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
