/* Tests for maildrop: the envelope sendmail writes and pickup reads (round
 * trip, and every way an untrusted drop file is refused, with memory bounded
 * even for a file that never ends its line), and line_norm, the line-end
 * normaliser for locally submitted text. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spool/maildrop.h"
#include "util/mem.h"
#include "util/strbuf.h"

static FILE *file_with(const void *data, size_t len)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    rewind(f);
    return f;
}

/* Reads an envelope from data; returns the reader's result, err filled. */
static int read_env(const void *data, size_t len, struct maildrop_env *env, char *err, size_t errlen)
{
    FILE *f = file_with(data, len);
    err[0] = '\0';
    int rc = maildrop_read_env(f, env, err, errlen);
    fclose(f);
    return rc;
}

static void assert_refused_n(const char *data, size_t len, const char *reason)
{
    struct maildrop_env env;
    char err[256];
    if (read_env(data, len, &env, err, sizeof err) == 0) {
        maildrop_env_free(&env);
        fail_msg("accepted a bad drop file (%s)", reason);
    }
    if (!strstr(err, reason))
        fail_msg("refused with \"%s\", expected \"%s\"", err, reason);
    /* nothing is left allocated or half-filled */
    assert_null(env.sender);
    assert_null(env.full_name);
    assert_null(env.rcpts);
    assert_int_equal(env.nrcpts, 0);
    maildrop_env_free(&env);
}

static void assert_refused(const char *data, const char *reason)
{
    assert_refused_n(data, strlen(data), reason);
}

/* ---- round trip --------------------------------------------------------- */

static void test_round_trip(void **state)
{
    (void)state;
    char *rcpts[] = {"a@example.com", "b c@example.com", "\"quoted\"@example.com", "user"};
    struct maildrop_env w = {
        .sender = "sender@example.org",
        .full_name = "J\xc3\xb6rg  Example (admin)",
        .extract = 1,
        .rcpts = rcpts,
        .nrcpts = 4,
    };
    static const char content[] = "Subject: hi\r\n\r\nbody\r\n.\r\n";
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(maildrop_write_env(f, &w), 0);
    long env_end = ftell(f);
    fputs(content, f);
    rewind(f);

    /* the bytes are the documented format */
    char head[256] = "";
    size_t hn = fread(head, 1, (size_t)env_end, f);
    assert_int_equal(hn, (size_t)env_end);
    assert_string_equal(head, "TERNMD01\nS sender@example.org\nF J\xc3\xb6rg  Example (admin)\nT\n"
                              "R a@example.com\nR b c@example.com\nR \"quoted\"@example.com\nR user\n\n");
    rewind(f);

    struct maildrop_env r;
    char err[256];
    assert_int_equal(maildrop_read_env(f, &r, err, sizeof err), 0);
    assert_string_equal(r.sender, "sender@example.org");
    assert_string_equal(r.full_name, "J\xc3\xb6rg  Example (admin)");
    assert_int_equal(r.extract, 1);
    assert_int_equal(r.nrcpts, 4);
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(r.rcpts[i], rcpts[i]);
    assert_int_equal(r.content_offset, env_end);
    /* f is left at the content */
    assert_int_equal(ftell(f), env_end);
    char body[64] = "";
    assert_int_equal(fread(body, 1, sizeof body - 1, f), strlen(content));
    assert_string_equal(body, content);
    fclose(f);
    maildrop_env_free(&r);
    assert_null(r.sender);
}

/* sendmail's -N, -R and -V travel as N, D and E records, before the
 * recipients, and come back as written (pickup checks their values). */
static void test_round_trip_dsn_options(void **state)
{
    (void)state;
    char *rcpts[] = {"a@example.com"};
    struct maildrop_env w = {
        .sender = "s@example.org",
        .notify = "SUCCESS,FAILURE",
        .ret = "HDRS",
        .envid = "job 42",
        .rcpts = rcpts,
        .nrcpts = 1,
    };
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(maildrop_write_env(f, &w), 0);
    long env_end = ftell(f);
    rewind(f);
    char head[256] = "";
    assert_int_equal(fread(head, 1, (size_t)env_end, f), (size_t)env_end);
    assert_string_equal(head, "TERNMD01\nS s@example.org\nN SUCCESS,FAILURE\nD HDRS\nE job 42\n"
                              "R a@example.com\n\n");
    rewind(f);
    struct maildrop_env r;
    char err[256];
    assert_int_equal(maildrop_read_env(f, &r, err, sizeof err), 0);
    assert_string_equal(r.notify, "SUCCESS,FAILURE");
    assert_string_equal(r.ret, "HDRS");
    assert_string_equal(r.envid, "job 42");
    maildrop_env_free(&r);
    fclose(f);
    /* a control character in one is refused on both sides */
    w.envid = "a\tb";
    f = tmpfile();
    assert_int_equal(maildrop_write_env(f, &w), -1);
    fclose(f);
    f = tmpfile();
    fputs("TERNMD01\nS s@example.org\nE a\x01\n\n", f);
    rewind(f);
    assert_int_equal(maildrop_read_env(f, &r, err, sizeof err), -1);
    fclose(f);
}

static void test_round_trip_minimal(void **state)
{
    (void)state;
    /* null sender, no full name, not -t, no recipients, no content */
    struct maildrop_env w = {.sender = ""};
    FILE *f = tmpfile();
    assert_int_equal(maildrop_write_env(f, &w), 0);
    rewind(f);
    struct maildrop_env r;
    char err[256];
    assert_int_equal(maildrop_read_env(f, &r, err, sizeof err), 0);
    assert_string_equal(r.sender, "");
    assert_null(r.full_name);
    assert_int_equal(r.extract, 0);
    assert_int_equal(r.nrcpts, 0);
    assert_int_equal(r.content_offset, (long)strlen("TERNMD01\nS \n\n"));
    assert_int_equal(fgetc(f), EOF);
    fclose(f);
    maildrop_env_free(&r);
    /* a sender with leading space and a full name of spaces survive */
    w.sender = " odd";
    w.full_name = "  ";
    f = tmpfile();
    assert_int_equal(maildrop_write_env(f, &w), 0);
    rewind(f);
    assert_int_equal(maildrop_read_env(f, &r, err, sizeof err), 0);
    assert_string_equal(r.sender, " odd");
    assert_string_equal(r.full_name, "  ");
    fclose(f);
    maildrop_env_free(&r);
}

/* A hand-written file: records in another order, S missing (null sender),
 * repeated S/F (the last wins), empty R lines ignored. */
static void test_reader_lenient_parts(void **state)
{
    (void)state;
    static const char in[] = "TERNMD01\nR x@example.com\nF One\nF Two\nS a@example.org\nS b@example.org\nR \nT\n\nbody";
    struct maildrop_env r;
    char err[256];
    assert_int_equal(read_env(in, strlen(in), &r, err, sizeof err), 0);
    assert_string_equal(r.sender, "b@example.org");
    assert_string_equal(r.full_name, "Two");
    assert_int_equal(r.extract, 1);
    assert_int_equal(r.nrcpts, 1);
    assert_string_equal(r.rcpts[0], "x@example.com");
    assert_int_equal(r.content_offset, (long)(strlen(in) - 4));
    maildrop_env_free(&r);
    static const char nosender[] = "TERNMD01\nR x@example.com\n\n";
    assert_int_equal(read_env(nosender, strlen(nosender), &r, err, sizeof err), 0);
    assert_string_equal(r.sender, "");
    maildrop_env_free(&r);
}

/* ---- refusals ----------------------------------------------------------- */

static void test_rejects_bad_magic(void **state)
{
    (void)state;
    assert_refused("", "not a maildrop file");
    assert_refused("TERNMD02\nS a@b\n\n", "not a maildrop file");
    assert_refused("ternmd01\nS a@b\n\n", "not a maildrop file");
    assert_refused("TERNMD01", "not a maildrop file");
    assert_refused("TERNMD01\r\nS a@b\n\n", "not a maildrop file");
    assert_refused(" TERNMD01\nS a@b\n\n", "not a maildrop file");
    assert_refused("TERNMD01 \nS a@b\n\n", "not a maildrop file");
    assert_refused("From a@b Mon Jan  1 00:00:00 2026\nS a@b\n\n", "not a maildrop file");
    static const char nul_magic[] = "TERNMD01\0\nS a@b\n\n";
    assert_refused_n(nul_magic, sizeof nul_magic - 1, "not a maildrop file");
}

static void test_rejects_missing_terminator(void **state)
{
    (void)state;
    assert_refused("TERNMD01\n", "not terminated");
    assert_refused("TERNMD01\nS a@b\n", "not terminated");
    assert_refused("TERNMD01\nS a@b\nR c@d\n", "not terminated");
    /* the last line is cut short */
    assert_refused("TERNMD01\nS a@b\nR c@d", "malformed envelope line");
}

static void test_rejects_control_chars(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "TERNMD01\nS a\x01@b\n\n",  "TERNMD01\nS a@b\r\n\n",     "TERNMD01\nR c@d\r\n\n",
        "TERNMD01\nR c\t@d\n\n",    "TERNMD01\nF Name\x1b[31m\n\n", "TERNMD01\nF Name\x7f\n\n",
        "TERNMD01\nR c@d\x7f\n\n",  "TERNMD01\nS \x1f\n\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_refused(bad[i], "bad characters");
    /* a NUL inside a line */
    static const char nul[] = "TERNMD01\nR c@d\0evil@x\n\n";
    assert_refused_n(nul, sizeof nul - 1, "malformed envelope line");
    /* 8-bit text is allowed (UTF-8 names and addresses) */
    struct maildrop_env r;
    char err[256];
    static const char utf8[] = "TERNMD01\nS j\xc3\xb6rg@example.org\nR \xe7\x94\xa8@example.com\n\n";
    assert_int_equal(read_env(utf8, strlen(utf8), &r, err, sizeof err), 0);
    assert_string_equal(r.rcpts[0], "\xe7\x94\xa8@example.com");
    maildrop_env_free(&r);
}

static void test_rejects_unknown_records(void **state)
{
    (void)state;
    assert_refused("TERNMD01\nS a@b\nX whatever\n\n", "unknown envelope record 'X'");
    assert_refused("TERNMD01\ns a@b\n\n", "unknown envelope record 's'");
    assert_refused("TERNMD01\n S a@b\n\n", "unknown envelope record ' '");
    assert_refused("TERNMD01\nS a@b\n\r\n\n", "unknown envelope record");
    assert_refused("TERNMD01\nS a@b\n\xff\n\n", "unknown envelope record");
}

static void test_rejects_long_address(void **state)
{
    (void)state;
    struct strbuf in = STRBUF_INIT;
    strbuf_puts(&in, "TERNMD01\nR ");
    for (size_t i = 0; i < MAILDROP_MAX_ADDR + 1; i++)
        strbuf_putc(&in, 'a');
    strbuf_puts(&in, "\n\n");
    assert_refused_n(in.buf, in.len, "bad characters");
    strbuf_free(&in);
    /* exactly the limit is fine */
    strbuf_puts(&in, "TERNMD01\nR ");
    for (size_t i = 0; i < MAILDROP_MAX_ADDR; i++)
        strbuf_putc(&in, 'a');
    strbuf_puts(&in, "\n\n");
    struct maildrop_env r;
    char err[256];
    assert_int_equal(read_env(in.buf, in.len, &r, err, sizeof err), 0);
    assert_int_equal(strlen(r.rcpts[0]), MAILDROP_MAX_ADDR);
    maildrop_env_free(&r);
    strbuf_free(&in);
}

static void test_rejects_oversize_envelope(void **state)
{
    (void)state;
    /* many valid recipient lines past the limit */
    struct strbuf in = STRBUF_INIT;
    strbuf_puts(&in, "TERNMD01\nS a@example.org\n");
    while (in.len <= MAILDROP_MAX_ENVELOPE + 100)
        strbuf_puts(&in, "R someone.with.a.long.name@example.com\n");
    strbuf_puts(&in, "\n");
    assert_refused_n(in.buf, in.len, "too large");
    strbuf_free(&in);
}

/* A stream that serves one endless line: the reader must give up after
 * about MAILDROP_MAX_ENVELOPE bytes instead of holding the whole line. */
struct endless {
    size_t served, limit;
    char fill;
};

static ssize_t endless_read(void *cookie, char *buf, size_t len)
{
    struct endless *e = cookie;
    if (e->served >= e->limit)
        return 0;
    size_t n = len < e->limit - e->served ? len : e->limit - e->served;
    size_t k = 0;
    if (e->served == 0) {
        static const char start[] = "TERNMD01\nR ";
        k = n < sizeof start - 1 ? n : sizeof start - 1;
        memcpy(buf, start, k);
    }
    memset(buf + k, e->fill, n - k);
    e->served += n;
    return (ssize_t)n;
}

static void test_endless_line_bounded(void **state)
{
    (void)state;
    struct endless e = {.limit = 8 * MAILDROP_MAX_ENVELOPE, .fill = 'a'};
    cookie_io_functions_t io = {.read = endless_read};
    FILE *f = fopencookie(&e, "r", io);
    assert_non_null(f);
    struct maildrop_env r;
    char err[256];
    assert_int_equal(maildrop_read_env(f, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "too large"));
    fclose(f);
    if (e.served > MAILDROP_MAX_ENVELOPE + 65536)
        fail_msg("read %zu bytes of one line before refusing it (limit %u)", e.served, MAILDROP_MAX_ENVELOPE);
}

static void test_write_refuses_control_chars(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    struct maildrop_env w = {.sender = "a@b\nR injected@evil"};
    errno = 0;
    assert_int_equal(maildrop_write_env(f, &w), -1);
    assert_int_equal(errno, EINVAL);
    w.sender = "a@b";
    w.full_name = "Name\nT";
    assert_int_equal(maildrop_write_env(f, &w), -1);
    assert_int_equal(errno, EINVAL);
    char *rcpts[] = {"ok@example.com", "bad@example.com\n\ncontent"};
    w.full_name = NULL;
    w.rcpts = rcpts;
    w.nrcpts = 2;
    assert_int_equal(maildrop_write_env(f, &w), -1);
    assert_int_equal(errno, EINVAL);
    fclose(f);
}

/* ---- line_norm ---------------------------------------------------------- */

static size_t norm_all(const char *in, size_t len, size_t chunk, char *out)
{
    struct line_norm n = {0};
    size_t o = 0, pos = 0;
    while (pos < len) {
        size_t k = chunk && len - pos > chunk ? chunk : len - pos;
        o += maildrop_line_norm_feed(&n, in + pos, k, out + o);
        pos += k;
    }
    o += maildrop_line_norm_end(&n, out + o);
    return o;
}

static void test_line_norm(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"", ""},
        {"abc", "abc"},
        {"a\r\nb\r\n", "a\r\nb\r\n"},
        {"a\nb\n", "a\r\nb\r\n"},
        {"a\rb\r", "a\r\nb\r\n"},
        {"a\r\r\nb", "a\r\n\r\nb"},
        {"\n\r", "\r\n\r\n"},
        {"\r\n\r\n", "\r\n\r\n"},
        {"\n\n", "\r\n\r\n"},
        {"\r\r\r", "\r\n\r\n\r\n"},
        {"x\n\ry\r\n\nz", "x\r\n\r\ny\r\n\r\nz"},
        {".\n..\r", ".\r\n..\r\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = strlen(cases[i].in);
        char *out = xmalloc(2 * len + 2);
        size_t n = norm_all(cases[i].in, len, 0, out);
        if (n != strlen(cases[i].out) || memcmp(out, cases[i].out, n) != 0)
            fail_msg("case %zu: got %zu bytes", i, n);
        /* one byte per call: every CR meets its LF across a boundary */
        char *out1 = xmalloc(2 * len + 2);
        size_t n1 = norm_all(cases[i].in, len, 1, out1);
        assert_int_equal(n1, n);
        assert_memory_equal(out1, out, n);
        free(out1);
        free(out);
    }
}

/* A CR ending one buffer and the LF starting the next are one line end. */
static void test_line_norm_cr_at_boundary(void **state)
{
    (void)state;
    struct line_norm n = {0};
    char out[32];
    size_t o = maildrop_line_norm_feed(&n, "abc\r", 4, out);
    assert_int_equal(o, 3);   /* the CR waits for the next byte */
    assert_int_equal(n.pending_cr, 1);
    o += maildrop_line_norm_feed(&n, "\ndef", 4, out + o);
    o += maildrop_line_norm_end(&n, out + o);
    assert_int_equal(o, 8);
    assert_memory_equal(out, "abc\r\ndef", 8);
    /* a CR at the very end becomes CRLF at maildrop_line_norm_end */
    struct line_norm n2 = {0};
    o = maildrop_line_norm_feed(&n2, "x\r", 2, out);
    assert_int_equal(maildrop_line_norm_end(&n2, out + o), 2);
    assert_memory_equal(out, "x\r\n", 3);
    assert_int_equal(maildrop_line_norm_end(&n2, out), 0);
    /* the CR then a non-LF first byte: the line ends before it */
    struct line_norm n3 = {0};
    o = maildrop_line_norm_feed(&n3, "a\r", 2, out);
    o += maildrop_line_norm_feed(&n3, "b", 1, out + o);
    assert_int_equal(o, 4);
    assert_memory_equal(out, "a\r\nb", 4);
    /* an empty feed keeps the pending CR */
    struct line_norm n4 = {0};
    o = maildrop_line_norm_feed(&n4, "\r", 1, out);
    o += maildrop_line_norm_feed(&n4, "", 0, out + o);
    o += maildrop_line_norm_feed(&n4, "\n", 1, out + o);
    assert_int_equal(o, 2);
    assert_int_equal(maildrop_line_norm_end(&n4, out + o), 0);
}

/* Every split of a mixed input gives the same bytes, and each call stays
 * within its documented output size (heap-exact buffers, so ASan checks). */
static void test_line_norm_every_split(void **state)
{
    (void)state;
    static const char in[] = "one\rtwo\nthree\r\nfour\r\r\n\n\rfive\r";
    size_t len = strlen(in);
    char whole[128];
    size_t wn = norm_all(in, len, 0, whole);
    for (size_t cut = 0; cut <= len; cut++) {
        struct line_norm n = {0};
        char *a = xmalloc(2 * cut + 2), *b = xmalloc(2 * (len - cut) + 2);
        size_t an = maildrop_line_norm_feed(&n, in, cut, a);
        size_t bn = maildrop_line_norm_feed(&n, in + cut, len - cut, b);
        char tail[2];
        size_t tn = maildrop_line_norm_end(&n, tail);
        assert_int_equal(an + bn + tn, wn);
        assert_memory_equal(whole, a, an);
        assert_memory_equal(whole + an, b, bn);
        assert_memory_equal(whole + an + bn, tail, tn);
        free(a);
        free(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_round_trip_minimal),
        cmocka_unit_test(test_round_trip_dsn_options),
        cmocka_unit_test(test_reader_lenient_parts),
        cmocka_unit_test(test_rejects_bad_magic),
        cmocka_unit_test(test_rejects_missing_terminator),
        cmocka_unit_test(test_rejects_control_chars),
        cmocka_unit_test(test_rejects_unknown_records),
        cmocka_unit_test(test_rejects_long_address),
        cmocka_unit_test(test_rejects_oversize_envelope),
        cmocka_unit_test(test_endless_line_bounded),
        cmocka_unit_test(test_write_refuses_control_chars),
        cmocka_unit_test(test_line_norm),
        cmocka_unit_test(test_line_norm_cr_at_boundary),
        cmocka_unit_test(test_line_norm_every_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
