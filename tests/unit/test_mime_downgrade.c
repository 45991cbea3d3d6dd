/* Unit tests for mime_downgrade: exact output bytes, the quoted-printable
 * rules, structure handling, the cases that must give up, and I/O errors. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "msg/mime_downgrade.h"
#include "test_fixture.h"
#include "util/mem.h"
#include "util/strbuf.h"

static char tmpdir[64];

/* The content sits between 8-bit filler so that a read outside
 * [offset, offset + length) would change the result. */
#define PREFIX_LEN 37
#define SUFFIX "\xff\xfe--junk\r\n"

static int write_input(const char *in, size_t len, size_t prefix)
{
    char *path = xasprintf("%s/in", tmpdir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    unlink(path);
    free(path);
    char *filler = xmalloc(prefix + 1);
    memset(filler, 0xff, prefix);
    assert_int_equal(write(fd, filler, prefix), (ssize_t)prefix);
    free(filler);
    assert_int_equal(write(fd, in, len), (ssize_t)len);
    assert_int_equal(write(fd, SUFFIX, strlen(SUFFIX)), (ssize_t)strlen(SUFFIX));
    return fd;
}

static int open_output(void)
{
    char *path = xasprintf("%s/out", tmpdir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    unlink(path);
    free(path);
    return fd;
}

/* Runs the conversion; *out gets the output (NUL-terminated) on success. */
static int convert(const char *in, size_t len, char **out, size_t *outlen, const char **why)
{
    int in_fd = write_input(in, len, PREFIX_LEN);
    int out_fd = open_output();
    /* Something already in the output file: we must write from its position. */
    assert_int_equal(write(out_fd, "XY", 2), 2);
    uint64_t olen = 12345;
    const char *reason = NULL;
    int rc = mime_downgrade(in_fd, PREFIX_LEN, len, out_fd, &olen, &reason);
    *out = NULL;
    *outlen = 0;
    if (rc == 0) {
        off_t size = lseek(out_fd, 0, SEEK_END);
        assert_int_equal((uint64_t)size, olen + 2);
        *out = xmalloc(olen + 1);
        assert_int_equal(pread(out_fd, *out, olen, 2), (ssize_t)olen);
        (*out)[olen] = '\0';
        *outlen = olen;
    } else if (rc == MIME_DG_IMPOSSIBLE) {
        assert_non_null(reason);
    }
    if (why)
        *why = reason;
    close(in_fd);
    close(out_fd);
    return rc;
}

static void expect_bytes(const char *got, size_t glen, const char *want, size_t wlen)
{
    if (glen != wlen || memcmp(got, want, wlen) != 0) {
        fprintf(stderr, "--- want (%zu)\n%.*s\n--- got (%zu)\n%.*s\n---\n", wlen, (int)wlen, want, glen,
                (int)glen, got);
        fail();
    }
}

static void expect_conversion(const char *in, const char *want)
{
    char *out;
    size_t olen;
    assert_int_equal(convert(in, strlen(in), &out, &olen, NULL), 0);
    expect_bytes(out, olen, want, strlen(want));
    free(out);
}

static void expect_impossible(const char *in, const char *reason_part)
{
    char *out;
    size_t olen;
    const char *why = NULL;
    assert_int_equal(convert(in, strlen(in), &out, &olen, &why), MIME_DG_IMPOSSIBLE);
    assert_non_null(why);
    if (!strstr(why, reason_part)) {
        fprintf(stderr, "reason \"%s\" lacks \"%s\"\n", why, reason_part);
        fail();
    }
    assert_null(out);
}

/* ---------------------------------------------------------------------------
 * Whole messages */

static void test_plain_8bit(void **state)
{
    (void)state;
    expect_conversion("From: a@example.org\r\nSubject: hi\r\n\r\nGr\xfc\xdf" "e = 1\r\nbye\r\n",
                      "From: a@example.org\r\nSubject: hi\r\nMIME-Version: 1.0\r\n"
                      "Content-Type: text/plain; charset=unknown-8bit\r\n"
                      "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
                      "Gr=FC=DFe =3D 1\r\nbye\r\n");
}

static void test_mime_leaf_keeps_content_type(void **state)
{
    (void)state;
    /* MIME-Version present, Content-Type folded and kept, CTE 8bit folded
     * over two lines replaced in place, a duplicate CTE dropped. */
    expect_conversion("MIME-Version: 1.0\r\nContent-Type: text/plain;\r\n charset=iso-8859-1\r\n"
                      "Content-Transfer-Encoding:\r\n  8bit\r\nSubject: s\r\n"
                      "content-transfer-encoding : 8BIT\r\n\r\nna\xefve\r\n",
                      "MIME-Version: 1.0\r\nContent-Type: text/plain;\r\n charset=iso-8859-1\r\n"
                      "Content-Transfer-Encoding: quoted-printable\r\nSubject: s\r\n\r\nna=EFve\r\n");
}

static void test_7bit_unchanged(void **state)
{
    (void)state;
    const char *in = "From: a@b\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=x\r\n"
                     "Content-Transfer-Encoding: 8bit\r\n\r\n--x\r\nContent-Type: text/plain\r\n"
                     "Content-Transfer-Encoding: binary\r\n\r\nplain = text  \r\n.\r\nFrom me\r\n"
                     "--x--\r\n";
    expect_conversion(in, in);
    int fd = write_input(in, strlen(in), PREFIX_LEN);
    assert_int_equal(mime_downgrade_has_8bit(fd, PREFIX_LEN, strlen(in)), 0);
    /* The filler on both sides is 8-bit. */
    assert_int_equal(mime_downgrade_has_8bit(fd, 0, strlen(in)), 1);
    assert_int_equal(mime_downgrade_has_8bit(fd, PREFIX_LEN, strlen(in) + 1), 1);
    assert_int_equal(mime_downgrade_has_8bit(fd, PREFIX_LEN, 0), 0);
    close(fd);
}

static void test_offset_zero_and_empty(void **state)
{
    (void)state;
    const char *in = "Subject: x\r\n\r\n\xe9\r\n";
    int in_fd = write_input(in, strlen(in), 0);
    int out_fd = open_output();
    uint64_t olen = 0;
    assert_int_equal(mime_downgrade(in_fd, 0, strlen(in), out_fd, &olen, NULL), 0);
    const char *want = "Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=unknown-8bit\r\n"
                       "Content-Transfer-Encoding: quoted-printable\r\n\r\n=E9\r\n";
    char buf[256];
    assert_int_equal(olen, strlen(want));
    assert_int_equal(pread(out_fd, buf, sizeof buf, 0), (ssize_t)strlen(want));
    expect_bytes(buf, olen, want, strlen(want));
    close(out_fd);
    /* An empty range is 7-bit and converts to nothing. */
    out_fd = open_output();
    assert_int_equal(mime_downgrade(in_fd, 5, 0, out_fd, &olen, NULL), 0);
    assert_int_equal(olen, 0);
    assert_int_equal(lseek(out_fd, 0, SEEK_END), 0);
    close(out_fd);
    close(in_fd);
    /* Giving up with out_len and reason NULL. */
    const char *bad = "Subject: \xe9\r\n\r\nx\r\n";
    in_fd = write_input(bad, strlen(bad), 0);
    out_fd = open_output();
    assert_int_equal(mime_downgrade(in_fd, 0, strlen(bad), out_fd, NULL, NULL), MIME_DG_IMPOSSIBLE);
    close(out_fd);
    close(in_fd);
}

static void test_multipart_mixed(void **state)
{
    (void)state;
    const char *head = "From: a@b\r\nMIME-Version: 1.0\r\n"
                       "Content-Type: multipart/mixed; boundary=\"=_b1\"\r\n\r\nThis is MIME.\r\n"
                       "--=_b1\r\nContent-Type: text/plain; charset=iso-8859-1\r\n";
    const char *tail = "\r\n--=_b1\r\nContent-Type: application/octet-stream\r\n"
                       "Content-Transfer-Encoding: base64\r\n\r\nAAECAwQF\r\n"
                       "--=_b1 \r\nContent-Type: text/plain; charset=utf-8\r\n"
                       "Content-Transfer-Encoding: quoted-printable\r\n\r\nna=C3=AFve=\r\n\r\n"
                       "--=_b1--\r\nepilogue\r\n";
    char *in = xasprintf("%sContent-Transfer-Encoding: 8bit\r\n\r\ncaf\xe9 ok\r\nline 2%s", head, tail);
    char *want = xasprintf("%sContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9 ok\r\nline 2%s",
                           head, tail);
    expect_conversion(in, want);
    free(in);
    free(want);
}

static void test_nested_alternative(void **state)
{
    (void)state;
    /* Top-level 8bit label becomes 7bit, as does an inner 7-bit part labelled
     * 8bit; a part with no header at all gets CTE and Content-Type. */
    const char *in =
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; Boundary=outer (comment)\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        "--outer\r\nContent-Type: multipart/alternative;\r\n\tboundary=\"alt \\\"b\\\"\"\r\n\r\n"
        "--alt \"b\"\r\nContent-Type: text/plain\r\n\r\n\xc3\xa9t\xc3\xa9\r\n"
        "--alt \"b\"\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: 8bit\r\n\r\n<p>\xe9</p>\r\n"
        "--alt \"b\"--\r\n"
        "--outer\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\n\r\nascii\r\n"
        "--outer\r\n\r\n\xff\r\n"
        "--outer--\r\n";
    const char *want =
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; Boundary=outer (comment)\r\n"
        "Content-Transfer-Encoding: 7bit\r\n\r\n"
        "--outer\r\nContent-Type: multipart/alternative;\r\n\tboundary=\"alt \\\"b\\\"\"\r\n\r\n"
        "--alt \"b\"\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        "=C3=A9t=C3=A9\r\n"
        "--alt \"b\"\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        "<p>=E9</p>\r\n"
        "--alt \"b\"--\r\n"
        "--outer\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: 7bit\r\n\r\nascii\r\n"
        "--outer\r\nContent-Type: text/plain; charset=unknown-8bit\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n=FF\r\n"
        "--outer--\r\n";
    expect_conversion(in, want);
}

static void test_message_rfc822(void **state)
{
    (void)state;
    const char *in = "From: a@b\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n"
                     "--outer\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
                     "--outer\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
                     "From: c@d\r\nSubject: inner\r\n\r\nh\xe9llo\r\n"
                     "--outer--\r\n";
    const char *want = "From: a@b\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n"
                       "--outer\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
                       "--outer\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
                       "From: c@d\r\nSubject: inner\r\nMIME-Version: 1.0\r\n"
                       "Content-Type: text/plain; charset=unknown-8bit\r\n"
                       "Content-Transfer-Encoding: quoted-printable\r\n\r\nh=E9llo\r\n"
                       "--outer--\r\n";
    expect_conversion(in, want);

    /* A top-level message/rfc822 holding a multipart. */
    expect_conversion("Content-Type: message/rfc822\r\n\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n"
                      "--q\r\n\r\n\x80\r\n--q--\r\n",
                      "Content-Type: message/rfc822\r\nMIME-Version: 1.0\r\n\r\n"
                      "Content-Type: multipart/mixed; boundary=q\r\nMIME-Version: 1.0\r\n\r\n"
                      "--q\r\nContent-Type: text/plain; charset=unknown-8bit\r\n"
                      "Content-Transfer-Encoding: quoted-printable\r\n\r\n=80\r\n--q--\r\n");

    expect_impossible("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=o\r\n\r\n"
                      "--o\r\nContent-Type: message/rfc822\r\n\r\nSubject: \xe9t\xe9\r\n\r\nbody\r\n--o--\r\n",
                      "header");
}

static void test_digest_default_rfc822(void **state)
{
    (void)state;
    expect_conversion("MIME-Version: 1.0\r\nContent-Type: multipart/digest; boundary=d\r\n\r\n"
                      "--d\r\n\r\nSubject: one\r\n\r\n\xe9\r\n--d--\r\n",
                      "MIME-Version: 1.0\r\nContent-Type: multipart/digest; boundary=d\r\n\r\n"
                      "--d\r\n\r\nSubject: one\r\nMIME-Version: 1.0\r\n"
                      "Content-Type: text/plain; charset=unknown-8bit\r\n"
                      "Content-Transfer-Encoding: quoted-printable\r\n\r\n=E9\r\n--d--\r\n");
}

static void test_preamble_epilogue(void **state)
{
    (void)state;
    expect_conversion("Content-Type: multipart/mixed; boundary=b\r\n\r\nPr\xe9" "ambule\r\n"
                      "--b\r\n\r\nx\r\n--b--\r\n\xe9pilogue\r\n--b\r\nmore\r\n",
                      "Content-Type: multipart/mixed; boundary=b\r\nMIME-Version: 1.0\r\n\r\n"
                      "Pr=E9ambule\r\n--b\r\n\r\nx\r\n--b--\r\n=E9pilogue\r\n=2D-b\r\nmore\r\n");
}

static void test_missing_close_delimiter(void **state)
{
    (void)state;
    expect_conversion("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
                      "--b\r\nContent-Type: text/plain\r\n\r\none\r\n--b\r\n\r\ntw\xf6\r\n",
                      "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
                      "--b\r\nContent-Type: text/plain\r\n\r\none\r\n--b\r\n"
                      "Content-Type: text/plain; charset=unknown-8bit\r\n"
                      "Content-Transfer-Encoding: quoted-printable\r\n\r\ntw=F6\r\n");
    /* Inner part not closed: the outer delimiter ends it; the empty part
     * right after a delimiter stays as it is. */
    expect_conversion("Content-Type: multipart/mixed; boundary=o\r\nMIME-Version: 1.0\r\n\r\n"
                      "--o\r\nContent-Type: multipart/related; boundary=i\r\n\r\n--i\r\n\r\n\xe9\r\n"
                      "--o\r\n--o--\r\n",
                      "Content-Type: multipart/mixed; boundary=o\r\nMIME-Version: 1.0\r\n\r\n"
                      "--o\r\nContent-Type: multipart/related; boundary=i\r\n\r\n--i\r\n"
                      "Content-Type: text/plain; charset=unknown-8bit\r\n"
                      "Content-Transfer-Encoding: quoted-printable\r\n\r\n=E9\r\n"
                      "--o\r\n--o--\r\n");
}

static void test_boundary_prefix(void **state)
{
    (void)state;
    /* The inner boundary has the outer one as a prefix: the innermost wins,
     * so the part is a digest entry (a message), not a text part of "abc". */
    expect_conversion("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=abc\r\n\r\n"
                      "--abc\r\nContent-Type: multipart/digest; charset=\"x;y\"; boundary=abcd\r\n\r\n"
                      "--abcd\r\n\r\nSubject: s\r\n\r\n\xe9\r\n--abcd--\r\n"
                      "--abc\r\nContent-Type: text/plain\r\n\r\n\xe8\r\n--abc--\r\n",
                      "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=abc\r\n\r\n"
                      "--abc\r\nContent-Type: multipart/digest; charset=\"x;y\"; boundary=abcd\r\n\r\n"
                      "--abcd\r\n\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
                      "Content-Type: text/plain; charset=unknown-8bit\r\n"
                      "Content-Transfer-Encoding: quoted-printable\r\n\r\n=E9\r\n--abcd--\r\n"
                      "--abc\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n"
                      "\r\n=E8\r\n--abc--\r\n");
}

static void test_header_without_separator(void **state)
{
    (void)state;
    /* The sender forgot the empty line; our fields get one after them. */
    expect_conversion("Subject: x\r\nbody line\r\n\xe9\r\n",
                      "Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=unknown-8bit\r\n"
                      "Content-Transfer-Encoding: quoted-printable\r\n\r\nbody line\r\n=E9\r\n");
    expect_impossible("Subject: x\r\nb\xe9ody\r\n\r\ntext\r\n", "does not end");
}

static void test_lf_only_input(void **state)
{
    (void)state;
    /* Bare LF line ends are read like CRLF; the LF before a delimiter is the
     * delimiter's and stays; what we add or encode uses CRLF. */
    expect_conversion("Content-Type: multipart/mixed; boundary=b\n\n--b\n\nx\xe9\ny\n--b--\n",
                      "Content-Type: multipart/mixed; boundary=b\nMIME-Version: 1.0\r\n\n--b\n"
                      "Content-Type: text/plain; charset=unknown-8bit\r\n"
                      "Content-Transfer-Encoding: quoted-printable\r\n\nx=E9\r\ny\n--b--\n");
}

static void test_relabel_binary_and_8bit(void **state)
{
    (void)state;
    expect_conversion("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n"
                      "--z\r\nContent-Transfer-Encoding: binary\r\n\r\nabc\r\n"
                      "--z\r\nContent-Transfer-Encoding: binary\r\n\r\n\xe9\r\n--z--\r\n",
                      "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n"
                      "--z\r\nContent-Transfer-Encoding: 7bit\r\n\r\nabc\r\n"
                      "--z\r\nContent-Transfer-Encoding: quoted-printable\r\n"
                      "Content-Type: text/plain; charset=unknown-8bit\r\n\r\n=E9\r\n--z--\r\n");
}

static void test_impossible_cases(void **state)
{
    (void)state;
    expect_impossible("Subject: caf\xe9\r\n\r\nbody\r\n", "header");
    expect_impossible("Subject: x\r\n folded caf\xe9\r\n\r\nbody \xe9\r\n", "header");
    expect_impossible("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
                      "--b\r\nContent-Disposition: attachment; filename=\xe9.txt\r\n\r\nx\r\n--b--\r\n",
                      "header");
    expect_impossible("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
                      "--b\r\nContent-Transfer-Encoding: base64\r\n\r\nAA\xe9=\r\n--b--\r\n", "base64");
    expect_impossible("Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\xe9\r\n",
                      "quoted-printable");
    expect_impossible("Content-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n\xe9\r\n",
                      "unknown");
    expect_impossible("Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; h\xe9\r\n",
                      "message part");
    expect_impossible("Content-Type: multipart/mixed\r\n\r\n--b\r\n\r\n\xe9\r\n", "boundary");
    expect_impossible("Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n\xe9\r\n", "boundary");
    char *longb = xmalloc(300);
    memset(longb, 'q', 201);
    longb[201] = '\0';
    char *in = xasprintf("Content-Type: multipart/mixed; boundary=%s\r\n\r\n--%s\r\n\r\n\xe9\r\n", longb, longb);
    expect_impossible(in, "boundary");
    free(in);
    free(longb);
    expect_impossible("Content-Type: multipart/mixed; boundary=b\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                      "--b\r\n\r\n\xe9\r\n--b--\r\n", "invalid transfer encoding");
    expect_impossible("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b \xe9\r\n\r\nx\r\n--b--\r\n",
                      "boundary line");
    /* A Content-Type field beyond the bound. */
    struct strbuf sb = STRBUF_INIT;
    strbuf_puts(&sb, "Content-Type: text/plain;");
    while (sb.len <= MIME_DG_MAX_FIELD + 2000)
        strbuf_puts(&sb, "\r\n x-param=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa;");
    strbuf_puts(&sb, "\r\n\r\n\xe9\r\n");
    expect_impossible(strbuf_str(&sb), "too long");
    strbuf_free(&sb);
}

/* n nested multiparts around one 8-bit leaf. */
static char *nested(int n, const char *leaf)
{
    struct strbuf sb = STRBUF_INIT;
    strbuf_puts(&sb, "MIME-Version: 1.0\r\n");
    for (int i = 0; i < n; i++)
        strbuf_printf(&sb, "Content-Type: multipart/mixed; boundary=b%02d_\r\n\r\n--b%02d_\r\n", i, i);
    strbuf_printf(&sb, "\r\n%s\r\n", leaf);
    for (int i = n - 1; i >= 0; i--)
        strbuf_printf(&sb, "--b%02d_--\r\n", i);
    return strbuf_detach(&sb);
}

static void test_depth_bound(void **state)
{
    (void)state;
    char *in = nested(MIME_DG_MAX_DEPTH, "\xe9");
    char *out;
    size_t olen;
    assert_int_equal(convert(in, strlen(in), &out, &olen, NULL), 0);
    assert_non_null(strstr(out, "\r\n--b19_\r\nContent-Type: text/plain; charset=unknown-8bit\r\n"
                                "Content-Transfer-Encoding: quoted-printable\r\n\r\n=E9\r\n--b19_--\r\n"));
    free(out);
    free(in);
    in = nested(MIME_DG_MAX_DEPTH + 1, "\xe9");
    expect_impossible(in, "nested too deeply");
    free(in);
    /* Deep 7-bit structure is copied, not walked, and does not count. */
    char *deep = nested(50, "seven");
    char *msg = xasprintf("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=top\r\n\r\n"
                          "--top\r\nContent-Type: message/rfc822\r\n\r\n%s--top\r\n\r\n\xe9\r\n--top--\r\n", deep);
    assert_int_equal(convert(msg, strlen(msg), &out, &olen, NULL), 0);
    assert_non_null(strstr(out, deep));
    assert_non_null(strstr(out, "--top\r\nContent-Type: text/plain; charset=unknown-8bit\r\n"
                                "Content-Transfer-Encoding: quoted-printable\r\n\r\n=E9\r\n--top--\r\n"));
    free(out);
    free(msg);
    free(deep);
}

/* ---------------------------------------------------------------------------
 * Quoted-printable */

/* Converts "MIME-Version: 1.0\r\n\r\n" + body and checks the encoded body. */
static void expect_qp(const char *body, size_t blen, const char *want)
{
    struct strbuf in = STRBUF_INIT;
    strbuf_puts(&in, "MIME-Version: 1.0\r\n\r\n");
    strbuf_append(&in, body, blen);
    char *out;
    size_t olen;
    assert_int_equal(convert(in.buf, in.len, &out, &olen, NULL), 0);
    const char *ct = "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=unknown-8bit\r\n"
                     "Content-Transfer-Encoding: quoted-printable\r\n\r\n";
    assert_true(olen >= strlen(ct));
    expect_bytes(out, strlen(ct), ct, strlen(ct));
    expect_bytes(out + strlen(ct), olen - strlen(ct), want, strlen(want));
    free(out);
    strbuf_free(&in);
}

static char *repeat(char c, size_t n)
{
    char *s = xmalloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void test_qp_rules(void **state)
{
    (void)state;
#define QP(body, want) expect_qp(body, sizeof(body) - 1, want)
    QP("a=b\xff\x80\r\n", "a=3Db=FF=80\r\n");
    QP("trailing  \r\ntab\t\r\nmid space\tx\r\n\xe9\r\n",
       "trailing =20\r\ntab=09\r\nmid space\tx\r\n=E9\r\n");
    QP(".\r\n..x\r\n-- \r\n--b\r\nFrom me\r\nFrom\r\nFromage\r\n \xe9\r\n",
       "=2E\r\n=2E.x\r\n=2D-=20\r\n=2D-b\r\n=46rom me\r\n=46rom\r\n=46romage\r\n =E9\r\n");
    QP("a\rb\r\nc\nd\r\r\n\xe9\r\n", "a=0Db\r\nc\r\nd=0D\r\n=E9\r\n");
    QP("\r\n\r\n\xe9\r\n\r\n", "\r\n\r\n=E9\r\n\r\n");
    QP("\x00\x1f\x7f\xe9\r\n", "=00=1F=7F=E9\r\n");
    /* No line break at the end of the message: trailing white space still
     * encoded, and none added. */
    QP("\xe9 end ", "=E9 end=20");
    QP("\xe9\r", "=E9=0D");
#undef QP

    char *a76 = repeat('a', 76), *a75 = repeat('a', 75), *a74 = repeat('a', 74);
    char *body, *want;
    body = xasprintf("%s\r\n\xe9\r\n", a76);
    want = xasprintf("%s\r\n=E9\r\n", a76);
    expect_qp(body, strlen(body), want);
    free(body), free(want);
    body = xasprintf("%sbc\r\n\xe9\r\n", a75);
    want = xasprintf("%s=\r\nbc\r\n=E9\r\n", a75);
    expect_qp(body, strlen(body), want);
    free(body), free(want);
    /* A '-' or '.' moved to a line start by a soft break is encoded. */
    body = xasprintf("%s-x\r\n%s.y\xe9\r\n", a75, a75);
    want = xasprintf("%s=\r\n=2Dx\r\n%s=\r\n=2Ey=E9\r\n", a75, a75);
    expect_qp(body, strlen(body), want);
    free(body), free(want);
    /* An encoded token does not fit after 74 columns at the end of a line. */
    body = xasprintf("%s=\r\n%s\xe9\r\n", a74, a74);
    want = xasprintf("%s=\r\n=3D\r\n%s=\r\n=E9\r\n", a74, a74);
    expect_qp(body, strlen(body), want);
    free(body), free(want);
    /* White space before a soft break stays literal. */
    body = xasprintf("%s b\xe9\r\n", a75);
    want = xasprintf("%s=\r\n b=E9\r\n", a75);
    expect_qp(body, strlen(body), want);
    free(body), free(want);
    free(a76), free(a75), free(a74);

    /* 200 octets: 25 encoded tokens per line. */
    char *e200 = repeat('\xe9', 200);
    struct strbuf w = STRBUF_INIT;
    for (int line = 0; line < 8; line++) {
        for (int t = 0; t < 25; t++)
            strbuf_puts(&w, "=E9");
        strbuf_puts(&w, line < 7 ? "=\r\n" : "\r\n");
    }
    body = xasprintf("%s\r\n", e200);
    expect_qp(body, strlen(body), strbuf_str(&w));
    free(body);
    free(e200);
    strbuf_free(&w);
    char *x200 = repeat('x', 200);
    char *x75 = repeat('x', 75), *x50 = repeat('x', 50);
    body = xasprintf("%s\xe9\r\n", x200);
    want = xasprintf("%s=\r\n%s=\r\n%s=E9\r\n", x75, x75, x50);
    expect_qp(body, strlen(body), want);
    free(body), free(want), free(x200), free(x75), free(x50);
}

/* Decodes a quoted-printable body; -1 on a malformed escape. */
static int qp_decode(const char *s, size_t n, struct strbuf *out)
{
    size_t i = 0;
    while (i < n) {
        if (s[i] != '=') {
            strbuf_putc(out, s[i++]);
            continue;
        }
        if (i + 2 < n && s[i + 1] == '\r' && s[i + 2] == '\n') {
            i += 3;
            continue;
        }
        if (i + 2 >= n)
            return -1;
        char hex[3] = {s[i + 1], s[i + 2], 0};
        char *end;
        long v = strtol(hex, &end, 16);
        if (*end || !strchr("0123456789ABCDEF", hex[0]) || !strchr("0123456789ABCDEF", hex[1]))
            return -1;
        strbuf_putc(out, (char)v);
        i += 3;
    }
    return 0;
}

/* Checks the form of an encoded body: 7-bit, CRLF only, lines within 76,
 * nothing that a boundary, the SMTP end of data or mbox could misread. */
static void check_encoded_form(const char *s, size_t n)
{
    size_t col = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        assert_true(c < 0x80);
        if (c == '\r') {
            assert_true(i + 1 < n && s[i + 1] == '\n');
            i++;
            col = 0;
            continue;
        }
        assert_true(c != '\n');
        if (col == 0)
            assert_true(c != '-' && c != '.' && c != 'F');
        col++;
        assert_true(col <= 76);
        if (c == ' ' || c == '\t')
            assert_true(i + 1 < n && s[i + 1] != '\r');
    }
}

static uint32_t rng_state;

static uint32_t rng(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return rng_state >> 8;
}

static void test_qp_roundtrip(void **state)
{
    (void)state;
    static const char pieces[][8] = {"\r\n", " ", "\t", "=", ".", "-", "From ", "--", "\r", "\xe9", "\xff",
                                     "\x00", "abc", "Z", " \r\n", "\t\r\n", "\r\n.", "\r\n-"};
    for (uint32_t seed = 1; seed <= 40; seed++) {
        rng_state = seed;
        struct strbuf body = STRBUF_INIT;
        /* Some bodies well beyond the 64 KiB read window and 4 KiB segments. */
        size_t target = seed % 5 == 0 ? 200000 : rng() % 3000;
        while (body.len < target) {
            uint32_t r = rng();
            if (r % 7 == 0) {
                size_t run = rng() % (seed % 4 == 0 ? 9000 : 120);
                for (size_t k = 0; k < run; k++)
                    strbuf_putc(&body, (char)(33 + rng() % 94));
            } else {
                size_t k = rng() % (sizeof pieces / sizeof pieces[0]);
                strbuf_append(&body, pieces[k], k == 11 ? 1 : strlen(pieces[k]));
            }
        }
        strbuf_append(&body, "\xe9\r\n", 3);
        struct strbuf in = STRBUF_INIT;
        strbuf_puts(&in, "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"=_B0und4ry\"\r\n\r\n"
                     "--=_B0und4ry\r\nContent-Type: text/plain; charset=x\r\n\r\n");
        strbuf_append(&in, body.buf, body.len);
        strbuf_puts(&in, "\r\n--=_B0und4ry--\r\n");
        char *out;
        size_t olen;
        assert_int_equal(convert(in.buf, in.len, &out, &olen, NULL), 0);
        const char *mark = "Content-Transfer-Encoding: quoted-printable\r\n\r\n";
        char *start = strstr(out, mark);
        assert_non_null(start);
        start += strlen(mark);
        const char *tail = "\r\n--=_B0und4ry--\r\n";
        assert_true(olen >= strlen(tail));
        assert_memory_equal(out + olen - strlen(tail), tail, strlen(tail));
        size_t elen = (size_t)(out + olen - strlen(tail) - start);
        check_encoded_form(start, elen);
        struct strbuf dec = STRBUF_INIT;
        assert_int_equal(qp_decode(start, elen, &dec), 0);
        if (dec.len != body.len || memcmp(dec.buf, body.buf, body.len) != 0) {
            fprintf(stderr, "seed %u: decoded %zu bytes, body %zu\n", seed, dec.len, body.len);
            fail();
        }
        strbuf_free(&dec);
        free(out);
        strbuf_free(&in);
        strbuf_free(&body);
    }
}

/* Random MIME-like line soup: whatever the structure, a success must hold
 * no 8-bit octet, and nothing may crash or leak. */
static void test_random_structures(void **state)
{
    (void)state;
    static const char *lines[] = {
        "Content-Type: multipart/mixed; boundary=a\r\n", "Content-Type: multipart/digest; boundary=ab\r\n",
        "Content-Type: message/rfc822\r\n", "Content-Type: text/plain\r\n",
        "Content-Transfer-Encoding: 8bit\r\n", "Content-Transfer-Encoding: base64\r\n",
        "MIME-Version: 1.0\r\n", "\r\n", "\r\n", "\r\n", "--a\r\n", "--a--\r\n", "--ab\r\n",
        "--ab--\r\n", "text \xe9\r\n", "plain text\r\n", " folded\r\n", "\xff", "-", "\n", "\r",
        "Subject: x\r\n", "From y\r\n",
    };
    for (uint32_t seed = 1; seed <= 400; seed++) {
        rng_state = seed * 7919u;
        struct strbuf in = STRBUF_INIT;
        int count = (int)(rng() % 60);
        for (int i = 0; i < count; i++)
            strbuf_puts(&in, lines[rng() % (sizeof lines / sizeof lines[0])]);
        char *out;
        size_t olen;
        int rc = convert(in.buf ? in.buf : "", in.len, &out, &olen, NULL);
        assert_true(rc == 0 || rc == MIME_DG_IMPOSSIBLE);
        for (size_t i = 0; rc == 0 && i < olen; i++)
            assert_true((unsigned char)out[i] < 0x80);
        free(out);
        strbuf_free(&in);
    }
}

/* ---------------------------------------------------------------------------
 * Errors */

static void test_write_error(void **state)
{
    (void)state;
    const char *in = "Subject: x\r\n\r\n\xe9\r\n";
    int in_fd = write_input(in, strlen(in), PREFIX_LEN);
    int out_fd = open_output();
    tf_fs_install();
    tf_fs_arm(TF_WRITE, (struct tf_fault){.nth = 1, .count = TF_ALWAYS, .err = ENOSPC});
    uint64_t olen = 7;
    errno = 0;
    int rc = mime_downgrade(in_fd, PREFIX_LEN, strlen(in), out_fd, &olen, NULL);
    int saved = errno;
    tf_fs_uninstall();
    assert_int_equal(rc, -1);
    assert_int_equal(saved, ENOSPC);
    assert_int_equal(olen, 7);
    close(in_fd);
    close(out_fd);
}

static void test_read_errors(void **state)
{
    (void)state;
    const char *in = "Subject: x\r\n\r\nabc\r\n";
    int in_fd = write_input(in, strlen(in), PREFIX_LEN);
    int out_fd = open_output();
    uint64_t olen;
    size_t total = PREFIX_LEN + strlen(in) + strlen(SUFFIX);
    errno = 0;
    assert_int_equal(mime_downgrade(in_fd, PREFIX_LEN, total, out_fd, &olen, NULL), -1);
    assert_int_equal(errno, EIO);
    errno = 0;
    assert_int_equal(mime_downgrade_has_8bit(in_fd, 10, total), -1);
    assert_int_equal(errno, EIO);
    errno = 0;
    assert_int_equal(mime_downgrade(in_fd, UINT64_MAX - 2, 10, out_fd, &olen, NULL), -1);
    assert_int_equal(errno, EOVERFLOW);
    errno = 0;
    assert_int_equal(mime_downgrade_has_8bit(in_fd, 0, UINT64_MAX), -1);
    assert_int_equal(errno, EOVERFLOW);
    close(in_fd);
    errno = 0;
    assert_int_equal(mime_downgrade_has_8bit(in_fd, 0, 10), -1);
    assert_int_equal(errno, EBADF);
    errno = 0;
    assert_int_equal(mime_downgrade(in_fd, 0, 10, out_fd, &olen, NULL), -1);
    assert_int_equal(errno, EBADF);
    close(out_fd);
}

/* ---------------------------------------------------------------------------
 * Large structure: many parts and long lines across the read window. */

static void test_large_multipart(void **state)
{
    (void)state;
    struct strbuf in = STRBUF_INIT, want = STRBUF_INIT;
    const char *head = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=LB\r\n\r\n";
    strbuf_puts(&in, head);
    strbuf_puts(&want, head);
    char *line = repeat('k', 70);
    for (int p = 0; p < 40; p++) {
        strbuf_puts(&in, "--LB\r\nContent-Type: text/plain\r\n\r\n");
        strbuf_puts(&want, "--LB\r\nContent-Type: text/plain\r\n");
        if (p % 2)
            strbuf_puts(&want, "Content-Transfer-Encoding: quoted-printable\r\n");
        strbuf_puts(&want, "\r\n");
        for (int l = 0; l < 100; l++) {
            strbuf_printf(&in, "%s%s\r\n", line, p % 2 ? "\xe9" : "");
            strbuf_printf(&want, "%s%s\r\n", line, p % 2 ? "=E9" : "");
        }
    }
    strbuf_puts(&in, "--LB--\r\n");
    strbuf_puts(&want, "--LB--\r\n");
    char *out;
    size_t olen;
    assert_true(in.len > 4 * 65536);
    assert_int_equal(convert(in.buf, in.len, &out, &olen, NULL), 0);
    expect_bytes(out, olen, want.buf, want.len);
    free(out);
    free(line);
    strbuf_free(&in);
    strbuf_free(&want);
}

static int group_setup(void **state)
{
    (void)state;
    return tf_tmpdir_make(tmpdir, sizeof tmpdir, "mime-dg");
}

static int group_teardown(void **state)
{
    (void)state;
    return tf_tmpdir_remove(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_8bit),
        cmocka_unit_test(test_mime_leaf_keeps_content_type),
        cmocka_unit_test(test_7bit_unchanged),
        cmocka_unit_test(test_offset_zero_and_empty),
        cmocka_unit_test(test_multipart_mixed),
        cmocka_unit_test(test_nested_alternative),
        cmocka_unit_test(test_message_rfc822),
        cmocka_unit_test(test_digest_default_rfc822),
        cmocka_unit_test(test_preamble_epilogue),
        cmocka_unit_test(test_missing_close_delimiter),
        cmocka_unit_test(test_boundary_prefix),
        cmocka_unit_test(test_header_without_separator),
        cmocka_unit_test(test_lf_only_input),
        cmocka_unit_test(test_relabel_binary_and_8bit),
        cmocka_unit_test(test_impossible_cases),
        cmocka_unit_test(test_depth_bound),
        cmocka_unit_test(test_qp_rules),
        cmocka_unit_test(test_qp_roundtrip),
        cmocka_unit_test(test_random_structures),
        cmocka_unit_test(test_write_error),
        cmocka_unit_test(test_read_errors),
        cmocka_unit_test(test_large_multipart),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
