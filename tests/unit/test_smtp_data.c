/* Tests for smtp_data, the DATA/BDAT content decoder: end of data only at
 * <CRLF>.<CRLF>, every known SMTP smuggling sequence kept inside the
 * message, bare LF normalised (or refused), bare CR always refused,
 * dot-unstuffing, identical results however the input is split, BDAT
 * passing content through, and pipelined commands left unconsumed. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_data.h"
#include "util/mem.h"
#include "util/strbuf.h"

struct result {
    struct strbuf out;
    size_t consumed;
    int done;
    const char *error;
    unsigned long long lines;
};

/* Feeds in[0..len) in chunks of `chunk` bytes (0: all at once), stopping at
 * the end of data as smtpd does. Each output area is exactly the documented
 * minimum (2 * n + 2) on the heap, so ASan sees any overrun. */
static void feed(struct smtp_data *d, const char *in, size_t len, size_t chunk, struct result *r)
{
    size_t pos = 0;
    while (pos < len && !d->done) {
        size_t n = chunk && len - pos > chunk ? chunk : len - pos;
        char *piece = xmalloc(n);   /* exact size: reads past it are caught */
        memcpy(piece, in + pos, n);
        char *out = xmalloc(2 * n + 2);
        size_t outlen = 12345;
        size_t used = smtp_data_decode(d, piece, n, out, &outlen);
        assert_true(used <= n);
        assert_true(outlen <= 2 * n + 2);
        if (used < n)
            assert_true(d->done);   /* only the end of data stops early */
        strbuf_append(&r->out, out, outlen);
        r->consumed += used;
        pos += used;
        free(out);
        free(piece);
        if (used < n)
            break;
    }
}

static void run(enum smtp_data_mode mode, int reject, const char *in, size_t len, size_t chunk, int bdat_last,
                struct result *r)
{
    memset(r, 0, sizeof *r);
    struct smtp_data d;
    smtp_data_init(&d, mode, reject);
    feed(&d, in, len, chunk, r);
    if (bdat_last) {
        char out[2];
        size_t n = smtp_data_finish(&d, out);
        assert_true(n <= 1);
        strbuf_append(&r->out, out, n);
    }
    r->done = d.done;
    r->error = smtp_data_error(&d);
    r->lines = d.lines;
}

static void result_free(struct result *r)
{
    strbuf_free(&r->out);
}

static void assert_same(const struct result *a, const struct result *b, const char *what, size_t split)
{
    if (a->out.len != b->out.len || memcmp(strbuf_str(&a->out), strbuf_str(&b->out), a->out.len) != 0 ||
        a->consumed != b->consumed || a->done != b->done || (a->error == NULL) != (b->error == NULL) ||
        a->lines != b->lines)
        fail_msg("%s: result differs when split at %zu", what, split);
}

/* Every way of splitting in: one byte at a time, two pieces cut at each
 * position, and a few fixed chunk sizes, all give the whole-input result. */
static void assert_split_invariant(enum smtp_data_mode mode, int reject, const char *in, size_t len,
                                   int bdat_last, const char *what)
{
    struct result whole, part;
    run(mode, reject, in, len, 0, bdat_last, &whole);
    run(mode, reject, in, len, 1, bdat_last, &part);
    assert_same(&whole, &part, what, 1);
    result_free(&part);
    for (size_t cut = 1; cut < len; cut++) {
        memset(&part, 0, sizeof part);
        struct smtp_data d;
        smtp_data_init(&d, mode, reject);
        feed(&d, in, cut, 0, &part);
        if (!d.done)
            feed(&d, in + cut, len - cut, 0, &part);
        if (bdat_last) {
            char out[2];
            size_t n = smtp_data_finish(&d, out);
            strbuf_append(&part.out, out, n);
        }
        part.done = d.done;
        part.error = smtp_data_error(&d);
        part.lines = d.lines;
        assert_same(&whole, &part, what, cut);
        result_free(&part);
    }
    static const size_t chunks[] = {2, 3, 5, 7, 64};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        run(mode, reject, in, len, chunks[i], bdat_last, &part);
        assert_same(&whole, &part, what, chunks[i]);
        result_free(&part);
    }
    result_free(&whole);
}

/* The output may hold NUL bytes, so no strstr. */
static int contains(const struct strbuf *sb, const char *needle)
{
    return memmem(strbuf_str(sb), sb->len, needle, strlen(needle)) != NULL;
}

/* ---- DATA: end of data, unstuffing, line ends --------------------------- */

struct dot_case {
    const char *name;
    const char *in;
    size_t inlen;          /* 0: strlen(in) */
    const char *out;       /* the decoded content */
    size_t outlen;         /* 0: strlen(out) */
    long consumed;         /* -1: all of it and the data has not ended */
    int bare_cr, bare_lf;  /* expected error conditions */
};

#define TERM "\r\n.\r\n"

static const struct dot_case dot_cases[] = {
    {"simple", "Subject: x\r\n\r\nbody\r\n.\r\n", 0, "Subject: x\r\n\r\nbody\r\n", 0, 23, 0, 0},
    {"empty message", ".\r\n", 0, "", 0, 3, 0, 0},
    {"one empty line", "\r\n.\r\n", 0, "\r\n", 0, 5, 0, 0},
    {"dot-stuffed lines", "..leading\r\n...\r\n..\r\n.\r\n", 0, ".leading\r\n..\r\n.\r\n", 0, 23, 0, 0},
    {"dot then text", ".x\r\n.\r\n", 0, "x\r\n", 0, 7, 0, 0},
    {"dot not at line start", "a.\r\nb .\r\n.\r\n", 0, "a.\r\nb .\r\n", 0, 12, 0, 0},
    {"pipelined command stays", "body\r\n.\r\nMAIL FROM:<a@b.example>\r\n", 0, "body\r\n", 0, 9, 0, 0},
    {"pipelined QUIT, no blank", "x\r\n.\r\nQUIT\r\n", 0, "x\r\n", 0, 6, 0, 0},
    {"not ended yet", "body\r\nmore", 0, "body\r\nmore", 0, -1, 0, 0},
    {"ends with dot CR", "body\r\n.\r", 0, "body\r\n", 0, -1, 0, 0},
    {"8-bit and NUL are text", "\xc3\xa9t\xc3\xa9\r\na\0b\r\n.\r\n", 15, "\xc3\xa9t\xc3\xa9\r\na\0b\r\n", 12, 15, 0,
     0},
    /* bare LF: a line end, stored as CRLF, never part of the terminator */
    {"bare LF lines", "a\nb\n.\r\n", 0, "a\r\nb\r\n\r\n", 0, -1, 0, 1},
    {"bare LF then real end", "a\nb\r\n.\r\n", 0, "a\r\nb\r\n", 0, 8, 0, 1},
    {"LF-terminated lone dot", "a\r\n.\nb\r\n.\r\n", 0, "a\r\n\r\nb\r\n", 0, 11, 0, 1},
    /* bare CR: refused, kept in the content, not a line end */
    {"bare CR in text", "a\rb\r\n.\r\n", 0, "a\rb\r\n", 0, 8, 1, 0},
    {"CR CR LF", "a\r\r\n.\r\n", 0, "a\r\r\n", 0, 7, 1, 0},
    {"dot CR x", "a\r\n.\rx\r\n.\r\n", 0, "a\r\n\rx\r\n", 0, 11, 1, 0},
};

static void check_dot_case(const struct dot_case *c, int reject)
{
    size_t inlen = c->inlen ? c->inlen : strlen(c->in);
    size_t outlen = c->outlen ? c->outlen : strlen(c->out);
    struct result r;
    run(SMTP_DATA_DOT, reject, c->in, inlen, 0, 0, &r);
    if (r.out.len != outlen || memcmp(strbuf_str(&r.out), c->out, outlen) != 0)
        fail_msg("%s: decoded to \"%s\"", c->name, strbuf_str(&r.out));
    if (c->consumed < 0) {
        assert_int_equal(r.consumed, inlen);
        if (r.done)
            fail_msg("%s: ended the data", c->name);
    } else {
        assert_int_equal(r.consumed, (size_t)c->consumed);
        if (!r.done)
            fail_msg("%s: did not end the data", c->name);
    }
    int want_error = c->bare_cr || (c->bare_lf && reject);
    if (want_error != (r.error != NULL))
        fail_msg("%s (reject=%d): error %s", c->name, reject, r.error ? r.error : "(none)");
    if (c->bare_cr)
        assert_non_null(strstr(r.error, "bare CR"));
    else if (want_error)
        assert_non_null(strstr(r.error, "bare LF"));
    result_free(&r);
    assert_split_invariant(SMTP_DATA_DOT, reject, c->in, inlen, 0, c->name);
}

static void test_dot_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof dot_cases / sizeof dot_cases[0]; i++) {
        check_dot_case(&dot_cases[i], 0);
        check_dot_case(&dot_cases[i], 1);
    }
}

/* ---- SMTP smuggling ------------------------------------------------------ */

/* Each sequence is one that some receiver somewhere takes as the end of
 * data. Placed between a first line and a smuggled transaction, it must not
 * end the data: the smuggled commands stay in the message, and only the real
 * terminator at the end ends it. */
static const struct {
    const char *seq;
    size_t len;
    int bare_cr;   /* the sequence holds a bare CR (refused in any mode) */
    int bare_lf;
} smuggle[] = {
    {"\r\n.\n", 4, 0, 1},
    {"\n.\r\n", 4, 0, 1},
    {"\n.\n", 3, 0, 1},
    {"\r.\r\n", 4, 1, 0},
    {"\r\n.\r", 4, 1, 0},
    {"\r\n\0.\r\n", 6, 0, 0},
    {"\r\n.\0\r\n", 6, 0, 0},
    {"\r.\r", 3, 1, 0},
    {"\r.\n", 3, 1, 1},
    {"\n.\r", 3, 1, 1},
    {"\r\n.\r\r\n", 6, 1, 0},
    {"\r\r\n.\r\r\n", 7, 1, 0},
    {"\n\n.\n\n", 5, 0, 1},
    {"\r\n \r\n.\n", 7, 0, 1},
    {"\r\n .\r\n", 6, 0, 0},
    {"\r\n\t.\r\n", 6, 0, 0},
    {"\r\n..\r\n", 6, 0, 0},
    {"\r\n.\n\r\n", 6, 0, 1},
    {"\r\n\r.\r\n", 6, 1, 0},
    {"\r\n\x0b.\r\n", 6, 0, 0},
    {"\r\n.\x0c\r\n", 6, 0, 0},
    {"\n\r.\r\n", 5, 1, 1},
};

#define SMUGGLED "MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n" \
                 "From: ceo@example.com\r\n\r\nwire money\r\n"

static void test_smuggling_never_ends_data(void **state)
{
    (void)state;
    size_t checked = 0;
    for (size_t i = 0; i < sizeof smuggle / sizeof smuggle[0]; i++) {
        struct strbuf in = STRBUF_INIT;
        strbuf_puts(&in, "From: a@example.org\r\n\r\nhello");
        strbuf_append(&in, smuggle[i].seq, smuggle[i].len);
        strbuf_puts(&in, SMUGGLED);
        size_t real_end = in.len + 5;
        strbuf_puts(&in, TERM);
        strbuf_puts(&in, "QUIT\r\n");
        char what[64];
        snprintf(what, sizeof what, "smuggling sequence %zu", i);
        for (int reject = 0; reject <= 1; reject++) {
            struct result r;
            run(SMTP_DATA_DOT, reject, in.buf, in.len, 0, 0, &r);
            if (!r.done || r.consumed != real_end)
                fail_msg("%s ended the data at %zu (real end %zu)", what, r.consumed, real_end);
            /* the smuggled transaction is message content */
            assert_true(contains(&r.out, "MAIL FROM:<evil@attacker.example>\r\n"));
            assert_true(contains(&r.out, "wire money\r\n"));
            /* and the stored content has no line end but CRLF, except the
             * bare CR a refused message keeps */
            for (size_t k = 0; k < r.out.len; k++) {
                if (r.out.buf[k] == '\n' && (k == 0 || r.out.buf[k - 1] != '\r'))
                    fail_msg("%s: bare LF stored at %zu", what, k);
            }
            int want_error = smuggle[i].bare_cr || (reject && smuggle[i].bare_lf);
            if (want_error != (r.error != NULL))
                fail_msg("%s (reject=%d): error %s", what, reject, r.error ? r.error : "(none)");
            result_free(&r);
            assert_split_invariant(SMTP_DATA_DOT, reject, in.buf, in.len, 0, what);
            checked++;
        }
        strbuf_free(&in);
    }
    assert_int_equal(checked, 2 * sizeof smuggle / sizeof smuggle[0]);
}

/* The smuggling sequences at the very start of the content, where the CRLF
 * of the DATA command is the one before them. */
static void test_smuggling_at_content_start(void **state)
{
    (void)state;
    static const char *const starts[] = {".\n", ".\r", ".\rx\r\n", ".\n.\n", "\0.\r\n", " .\r\n"};
    static const size_t lens[] = {2, 2, 5, 4, 4, 4};
    for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++) {
        struct strbuf in = STRBUF_INIT;
        strbuf_append(&in, starts[i], lens[i]);
        strbuf_puts(&in, SMUGGLED);
        size_t real_end = in.len + 5;
        strbuf_puts(&in, TERM);
        struct result r;
        run(SMTP_DATA_DOT, 0, in.buf, in.len, 0, 0, &r);
        if (!r.done || r.consumed != real_end)
            fail_msg("start %zu ended the data at %zu", i, r.consumed);
        result_free(&r);
        assert_split_invariant(SMTP_DATA_DOT, 0, in.buf, in.len, 0, "content start");
        strbuf_free(&in);
    }
}

/* After a bare-LF line, a real CRLF line end counts again: the literal
 * <CRLF>.<CRLF> that follows is the end. */
static void test_real_end_after_bare_lf(void **state)
{
    (void)state;
    static const char in[] = "a\nb\r\n.\r\nRSET\r\n";
    struct result r;
    run(SMTP_DATA_DOT, 0, in, strlen(in), 0, 0, &r);
    assert_true(r.done);
    assert_int_equal(r.consumed, strlen("a\nb\r\n.\r\n"));
    assert_string_equal(strbuf_str(&r.out), "a\r\nb\r\n");
    assert_null(r.error);
    result_free(&r);
    run(SMTP_DATA_DOT, 1, in, strlen(in), 0, 0, &r);
    assert_non_null(r.error);
    result_free(&r);
}

/* Once the data has ended the decoder takes nothing more. */
static void test_nothing_after_done(void **state)
{
    (void)state;
    struct smtp_data d;
    smtp_data_init(&d, SMTP_DATA_DOT, 0);
    char out[64];
    size_t outlen;
    assert_int_equal(smtp_data_decode(&d, "x\r\n.\r\nNOOP\r\n", 12, out, &outlen), 6);
    assert_int_equal(outlen, 3);
    assert_true(d.done);
    assert_int_equal(smtp_data_decode(&d, "NOOP\r\n", 6, out, &outlen), 0);
    assert_int_equal(outlen, 0);
    assert_int_equal(d.lines, 1);
}

/* The documented output bound: an input of only LFs, or CR + byte pairs,
 * doubles in size and never more. */
static void test_output_bound(void **state)
{
    (void)state;
    static const char *const worst[] = {"\n\n\n\n\n\n\n\n", "\rx\rx\rx\rx", "\r\r\r\r\r\r\r\r", ".\n.\n.\n.\n",
                                        ".\r.\r.\r.\r"};
    for (size_t i = 0; i < sizeof worst / sizeof worst[0]; i++) {
        for (int mode = 0; mode <= 1; mode++) {
            struct result r;
            run(mode ? SMTP_DATA_BDAT : SMTP_DATA_DOT, 0, worst[i], strlen(worst[i]), 0, 0, &r);
            assert_true(r.out.len <= 2 * strlen(worst[i]));
            result_free(&r);
            /* one byte at a time: each call is checked against 2 * n + 2 */
            run(mode ? SMTP_DATA_BDAT : SMTP_DATA_DOT, 0, worst[i], strlen(worst[i]), 1, 0, &r);
            result_free(&r);
        }
    }
}

static void test_line_count(void **state)
{
    (void)state;
    struct result r;
    run(SMTP_DATA_DOT, 0, "a\r\nb\nc\r\n\r\n.\r\n", 13, 0, 0, &r);
    assert_true(r.done);
    assert_int_equal(r.lines, 4);
    result_free(&r);
}

/* ---- BDAT ---------------------------------------------------------------- */

static void test_bdat_never_ends_never_unstuffs(void **state)
{
    (void)state;
    static const char in[] = "Subject: x\r\n\r\n..two dots\r\n.\r\n.\r\nafter\r\n.";
    struct result r;
    run(SMTP_DATA_BDAT, 0, in, strlen(in), 0, 1, &r);
    assert_false(r.done);
    assert_int_equal(r.consumed, strlen(in));
    assert_string_equal(strbuf_str(&r.out), in);
    assert_null(r.error);
    result_free(&r);
    assert_split_invariant(SMTP_DATA_BDAT, 0, in, strlen(in), 1, "bdat");
    /* the smuggling sequences are content too */
    for (size_t i = 0; i < sizeof smuggle / sizeof smuggle[0]; i++) {
        struct strbuf b = STRBUF_INIT;
        strbuf_puts(&b, "x");
        strbuf_append(&b, smuggle[i].seq, smuggle[i].len);
        strbuf_puts(&b, SMUGGLED);
        run(SMTP_DATA_BDAT, 0, b.buf, b.len, 0, 1, &r);
        assert_false(r.done);
        assert_int_equal(r.consumed, b.len);
        assert_true(contains(&r.out, "wire money"));
        result_free(&r);
        assert_split_invariant(SMTP_DATA_BDAT, 0, b.buf, b.len, 1, "bdat smuggling");
        strbuf_free(&b);
    }
}

static void test_bdat_line_ends(void **state)
{
    (void)state;
    struct result r;
    /* bare LF normalised, or refused */
    run(SMTP_DATA_BDAT, 0, "a\nb\r\n", 5, 0, 1, &r);
    assert_string_equal(strbuf_str(&r.out), "a\r\nb\r\n");
    assert_null(r.error);
    result_free(&r);
    run(SMTP_DATA_BDAT, 1, "a\nb\r\n", 5, 0, 1, &r);
    assert_non_null(r.error);
    result_free(&r);
    /* a CR ending one chunk pairs with the LF starting the next */
    struct smtp_data d;
    smtp_data_init(&d, SMTP_DATA_BDAT, 1);
    char out[32];
    size_t n, total = 0;
    smtp_data_decode(&d, "abc\r", 4, out, &n);
    total += n;
    smtp_data_decode(&d, "\ndef\r\n", 6, out + total, &n);
    total += n;
    total += smtp_data_finish(&d, out + total);
    assert_int_equal(total, 10);
    assert_memory_equal(out, "abc\r\ndef\r\n", 10);
    assert_null(smtp_data_error(&d));
    /* content ending in CR at BDAT LAST: the CR is kept and refused */
    smtp_data_init(&d, SMTP_DATA_BDAT, 0);
    smtp_data_decode(&d, "abc\r", 4, out, &n);
    assert_int_equal(n, 3);
    assert_int_equal(smtp_data_finish(&d, out + n), 1);
    assert_memory_equal(out, "abc\r", 4);
    assert_non_null(smtp_data_error(&d));
    assert_non_null(strstr(smtp_data_error(&d), "bare CR"));
    /* content not ending in a line end is fine */
    smtp_data_init(&d, SMTP_DATA_BDAT, 0);
    smtp_data_decode(&d, "abc", 3, out, &n);
    assert_int_equal(smtp_data_finish(&d, out + n), 0);
    assert_null(smtp_data_error(&d));
}

/* Bare CR outranks bare LF in the reason given. */
static void test_error_precedence(void **state)
{
    (void)state;
    struct result r;
    run(SMTP_DATA_DOT, 1, "a\nb\rc\r\n.\r\n", 10, 0, 0, &r);
    assert_true(r.done);
    assert_non_null(r.error);
    assert_non_null(strstr(r.error, "bare CR"));
    result_free(&r);
}

/* A NUL is refused when the caller asks (smtpd: network input), wherever it
 * is, without changing where the data ends or what is stored; local
 * submissions (pickup) keep it. */
static void test_nul(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t len;
    } cases[] = {
        {"a\0b\r\n.\r\n", 8},
        {".\0\r\n.\r\n", 7},
        {"\0\r\n.\r\n", 6},
        {"x\r\n\0.\r\n.\r\n", 11},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct result r, plain;
        run(SMTP_DATA_DOT, SMTP_DATA_REJECT_NUL, cases[i].in, cases[i].len, 0, 0, &r);
        run(SMTP_DATA_DOT, 0, cases[i].in, cases[i].len, 0, 0, &plain);
        assert_true(r.done);
        assert_non_null(r.error);
        assert_non_null(strstr(r.error, "NUL"));
        assert_null(plain.error);
        assert_int_equal(r.out.len, plain.out.len);
        assert_memory_equal(strbuf_str(&r.out), strbuf_str(&plain.out), r.out.len);
        assert_split_invariant(SMTP_DATA_DOT, SMTP_DATA_REJECT_NUL, cases[i].in, cases[i].len, 0, "NUL");
        result_free(&r);
        result_free(&plain);
    }
    struct result r;
    run(SMTP_DATA_BDAT, SMTP_DATA_REJECT_NUL, "ab\0", 3, 0, 1, &r);
    assert_non_null(r.error);
    result_free(&r);
    /* bare CR still outranks it, as the older reason */
    run(SMTP_DATA_DOT, SMTP_DATA_REJECT_NUL, "\0a\rb\r\n.\r\n", 10, 0, 0, &r);
    assert_non_null(strstr(r.error, "bare CR"));
    result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dot_cases),
        cmocka_unit_test(test_smuggling_never_ends_data),
        cmocka_unit_test(test_smuggling_at_content_start),
        cmocka_unit_test(test_real_end_after_bare_lf),
        cmocka_unit_test(test_nothing_after_done),
        cmocka_unit_test(test_output_bound),
        cmocka_unit_test(test_line_count),
        cmocka_unit_test(test_bdat_never_ends_never_unstuffs),
        cmocka_unit_test(test_bdat_line_ends),
        cmocka_unit_test(test_error_precedence),
        cmocka_unit_test(test_nul),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
