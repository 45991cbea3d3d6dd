/* Tests for smtp_cmd: command splitting, MAIL/RCPT arguments and their
 * ESMTP parameters, BDAT and HELO arguments. Each table row is one input
 * and the exact reply or parsed fields it must give. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_cmd.h"
#include "util/mem.h"
#include "util/str.h"

/* ------------------------------------------------------------------ */
/* Command lines                                                        */

struct cmd_row {
    const char *line;
    size_t len; /* 0: strlen(line) */
    int rc;
    enum smtp_verb verb;
    const char *verb_text;
    const char *arg;
};

static const struct cmd_row cmd_rows[] = {
    {"MAIL FROM:<a@b> SIZE=10", 0, 0, SMTP_MAIL, "MAIL", "FROM:<a@b> SIZE=10"},
    {"mail from:<a@b>", 0, 0, SMTP_MAIL, "mail", "from:<a@b>"},
    {"MaIl FROM:<>", 0, 0, SMTP_MAIL, "MaIl", "FROM:<>"},
    {"RCPT TO:<a@b>", 0, 0, SMTP_RCPT, "RCPT", "TO:<a@b>"},
    {"QUIT", 0, 0, SMTP_QUIT, "QUIT", ""},
    {"QUIT ", 0, 0, SMTP_QUIT, "QUIT", ""},
    {"quit  now", 0, 0, SMTP_QUIT, "quit", " now"},
    {"EHLO  client.example", 0, 0, SMTP_EHLO, "EHLO", " client.example"},
    {"HELO", 0, 0, SMTP_HELO, "HELO", ""},
    {"STARTTLS", 0, 0, SMTP_STARTTLS, "STARTTLS", ""},
    {"starttls", 0, 0, SMTP_STARTTLS, "starttls", ""},
    {"AUTH PLAIN AGFiYwBkZWY=", 0, 0, SMTP_AUTH, "AUTH", "PLAIN AGFiYwBkZWY="},
    {"BDAT 100 LAST", 0, 0, SMTP_BDAT, "BDAT", "100 LAST"},
    {"DATA", 0, 0, SMTP_DATA, "DATA", ""},
    {"NOOP anything at all", 0, 0, SMTP_NOOP, "NOOP", "anything at all"},
    {"HELP MAIL", 0, 0, SMTP_HELP, "HELP", "MAIL"},
    {"VRFY user", 0, 0, SMTP_VRFY, "VRFY", "user"},
    {"EXPN list", 0, 0, SMTP_EXPN, "EXPN", "list"},
    {"RSET", 0, 0, SMTP_RSET, "RSET", ""},
    {"MAILFROM:<a@b>", 0, 0, SMTP_UNKNOWN, "MAILFROM:<a@b>", ""},
    {"XYZZYXYZZYXYZZYXYZZY arg", 0, 0, SMTP_UNKNOWN, "XYZZYXYZZYXYZZY", "arg"},
    {"", 0, 0, SMTP_UNKNOWN, "", ""},
    {" MAIL FROM:<a@b>", 0, 0, SMTP_UNKNOWN, "", "MAIL FROM:<a@b>"},
    {"MAIL\tFROM:<a@b>", 0, 0, SMTP_UNKNOWN, "MAIL?FROM:<a@b>", ""},
    {"\xffMAIL x", 0, 0, SMTP_UNKNOWN, "?MAIL", "x"},
    {"MAI", 0, 0, SMTP_UNKNOWN, "MAI", ""},
    {"MAILX", 0, 0, SMTP_UNKNOWN, "MAILX", ""},
    {"DATA2", 0, 0, SMTP_UNKNOWN, "DATA2", ""},
    {"STARTTLSX", 0, 0, SMTP_UNKNOWN, "STARTTLSX", ""},
    {"GET / HTTP/1.1", 0, 0, SMTP_UNKNOWN, "GET", "/ HTTP/1.1"},
    {"MAIL\0FROM:<a@b>", 15, -1, SMTP_UNKNOWN, "", ""},
    {"\0", 1, -1, SMTP_UNKNOWN, "", ""},
    {"QUIT\0", 5, -1, SMTP_UNKNOWN, "", ""},
    {"RCPT TO:<a\0@b>", 14, -1, SMTP_UNKNOWN, "", ""},
};

static void test_cmd_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cmd_rows / sizeof cmd_rows[0]; i++) {
        const struct cmd_row *r = &cmd_rows[i];
        size_t len = r->len ? r->len : strlen(r->line);
        struct smtp_cmd c;
        int rc = smtp_cmd_parse(r->line, len, &c);
        if (rc != r->rc || c.verb != r->verb || strcmp(c.verb_text, r->verb_text) != 0)
            fail_msg("row %zu \"%s\": rc=%d verb=%d text=\"%s\"", i, r->line, rc, c.verb,
                     c.verb_text);
        if (rc == 0) {
            if (strcmp(c.arg, r->arg) != 0 || c.arg_len != strlen(r->arg))
                fail_msg("row %zu \"%s\": arg=\"%s\" (%zu)", i, r->line, c.arg, c.arg_len);
            /* arg really points into the line, not at a copy. */
            assert_true(c.arg >= r->line && c.arg <= r->line + len);
        }
    }
}

static void test_verb_names_roundtrip(void **state)
{
    (void)state;
    for (int v = SMTP_HELO; v <= SMTP_AUTH; v++) {
        const char *name = smtp_verb_name((enum smtp_verb)v);
        assert_string_not_equal(name, "UNKNOWN");
        char *lower = xstrdup(name);
        str_lower(lower);
        struct smtp_cmd c;
        assert_int_equal(smtp_cmd_parse(name, strlen(name), &c), 0);
        assert_int_equal(c.verb, v);
        assert_int_equal(smtp_cmd_parse(lower, strlen(lower), &c), 0);
        assert_int_equal(c.verb, v);
        free(lower);
    }
    assert_string_equal(smtp_verb_name(SMTP_UNKNOWN), "UNKNOWN");
    assert_string_equal(smtp_verb_name(SMTP_STARTTLS), "STARTTLS");
}

/* ------------------------------------------------------------------ */
/* Extensions                                                           */

enum {
    E_ESMTP = 1,
    E_UTF8 = 2,
    E_SIZE = 4,
    E_8BIT = 8,
    E_DSN = 16,
    E_CHUNK = 32,
    E_BIN = 64,
    E_AUTH = 128,
    E_ALL = 255,
    E_HELO = 0,
};

static struct smtp_ext ext_of(unsigned bits)
{
    struct smtp_ext e = {0};
    e.esmtp = !!(bits & E_ESMTP);
    e.smtputf8 = !!(bits & E_UTF8);
    e.size = !!(bits & E_SIZE);
    e.eightbit = !!(bits & E_8BIT);
    e.dsn = !!(bits & E_DSN);
    e.chunking = !!(bits & E_CHUNK);
    e.binarymime = !!(bits & E_BIN);
    e.auth = !!(bits & E_AUTH);
    return e;
}

#define SYN_MAIL "Syntax: MAIL FROM:<address>"
#define SYN_RCPT "Syntax: RCPT TO:<address>"
#define BAD_SENDER "Bad sender address syntax"
#define BAD_RCPT "Bad recipient address syntax"
#define NEED_UTF8 "Non-ASCII address: SMTPUTF8 is required"
#define UTF8_LOCAL "j\xc3\xb6rg"

static void expect_err(const char *what, size_t row, const char *in, int rc,
                       const struct smtp_reply_err *err, int code, const char *enh,
                       const char *text)
{
    if (rc != -1 || err->code != code || err->enh == NULL || strcmp(err->enh, enh) != 0 ||
        strcmp(err->text, text) != 0)
        fail_msg("%s row %zu \"%s\": rc=%d, got %d %s \"%s\", want %d %s \"%s\"", what, row, in,
                 rc, err->code, err->enh ? err->enh : "-", err->text, code, enh, text);
}

static void expect_str(const char *what, size_t row, const char *field, const char *want,
                       const char *got)
{
    if ((want == NULL) != (got == NULL) || (want && strcmp(want, got) != 0))
        fail_msg("%s row %zu: %s = \"%s\", want \"%s\"", what, row, field, got ? got : "(null)",
                 want ? want : "(null)");
}

/* ------------------------------------------------------------------ */
/* MAIL                                                                 */

struct mail_row {
    const char *arg;
    unsigned ext;
    int code; /* 0: success */
    const char *enh, *text;
    const char *mailbox;
    long long size;
    enum smtp_body body;
    int smtputf8;
    const char *ret, *envid, *auth;
};

#define MOK(arg, ext, mbox, size, body, utf8, ret, envid, auth) \
    {arg, ext, 0, NULL, NULL, mbox, size, body, utf8, ret, envid, auth}
#define MERR(arg, ext, code, enh, text) \
    {arg, ext, code, enh, text, NULL, -1, SMTP_BODY_NONE, 0, NULL, NULL, NULL}
#define MPLAIN(arg, ext, mbox) MOK(arg, ext, mbox, -1, SMTP_BODY_NONE, 0, NULL, NULL, NULL)

static const struct mail_row mail_rows[] = {
    /* paths, lenient forms */
    MPLAIN("FROM:<a@b>", E_ALL, "a@b"),
    MPLAIN("FROM:<>", E_ALL, ""),
    MPLAIN("from:<a@b>", E_ALL, "a@b"),
    MPLAIN("From:<A@B.example>", E_ALL, "A@B.example"),
    MPLAIN("FROM: <a@b>", E_ALL, "a@b"),
    MPLAIN("FROM:   <a@b>   ", E_ALL, "a@b"),
    MPLAIN(" FROM:<a@b>", E_ALL, "a@b"),
    MPLAIN("FROM:a@b", E_ALL, "a@b"),
    MPLAIN("FROM: a@b  ", E_ALL, "a@b"),
    MPLAIN("FROM:<@r.example:a@b>", E_ALL, "a@b"),
    MPLAIN("FROM:<\"x y\"@b>", E_ALL, "\"x y\"@b"),
    MPLAIN("FROM:<a@[192.0.2.1]>", E_ALL, "a@[192.0.2.1]"),
    MPLAIN("FROM:<a@b>", E_HELO, "a@b"),
    MPLAIN("FROM:<>", E_HELO, ""),
    MERR("FROM:a@b SIZE=10", E_ALL, 501, "5.1.7", BAD_SENDER),
    MERR("FROM:a@b>", E_ALL, 501, "5.1.7", BAD_SENDER),
    MERR("FROM:", E_ALL, 501, "5.1.7", BAD_SENDER),
    MERR("FROM:   ", E_ALL, 501, "5.1.7", BAD_SENDER),
    MERR("FROM:<a@b", E_ALL, 501, "5.1.7", BAD_SENDER),
    MERR("FROM:<a@b>x", E_ALL, 501, "5.1.7", BAD_SENDER),
    MERR("FROM:<a@b>SIZE=1", E_ALL, 501, "5.1.7", BAD_SENDER),
    MERR("FROM:<a@b>>", E_ALL, 501, "5.1.7", BAD_SENDER),
    MERR("FROM:<<a@b>>", E_ALL, 501, "5.1.7", BAD_SENDER),
    MERR("FROM:<a b@c>", E_ALL, 501, "5.1.7", BAD_SENDER),
    MERR("FROM:<a@b.>", E_ALL, 501, "5.1.7", BAD_SENDER),
    MERR("FROM:<postmaster>", E_ALL, 501, "5.1.7", BAD_SENDER),
    MERR("FROM:<a@b>\t", E_ALL, 501, "5.1.7", BAD_SENDER),
    MERR("FROM:Joe <a@b>", E_ALL, 501, "5.1.7", BAD_SENDER),
    MERR("FROM:<a\r@b>", E_ALL, 501, "5.1.7", BAD_SENDER),
    /* the keyword */
    MERR("", E_ALL, 501, "5.5.4", SYN_MAIL),
    MERR("   ", E_ALL, 501, "5.5.4", SYN_MAIL),
    MERR("TO:<a@b>", E_ALL, 501, "5.5.4", SYN_MAIL),
    MERR("FROM<a@b>", E_ALL, 501, "5.5.4", SYN_MAIL),
    MERR("FROM :<a@b>", E_ALL, 501, "5.5.4", SYN_MAIL),
    MERR("FROM <a@b>", E_ALL, 501, "5.5.4", SYN_MAIL),
    MERR("<a@b>", E_ALL, 501, "5.5.4", SYN_MAIL),
    MERR("FRO:<a@b>", E_ALL, 501, "5.5.4", SYN_MAIL),
    MERR("FROMX:<a@b>", E_ALL, 501, "5.5.4", SYN_MAIL),
    /* SIZE (RFC 1870) */
    MOK("FROM:<a@b> SIZE=10", E_ALL, "a@b", 10, SMTP_BODY_NONE, 0, NULL, NULL, NULL),
    MOK("FROM:<a@b> size=0", E_ALL, "a@b", 0, SMTP_BODY_NONE, 0, NULL, NULL, NULL),
    MOK("FROM:<a@b> SIZE=000123", E_ALL, "a@b", 123, SMTP_BODY_NONE, 0, NULL, NULL, NULL),
    MOK("FROM:<a@b> SIZE=9223372036854775806", E_ALL, "a@b", LLONG_MAX - 1, SMTP_BODY_NONE, 0,
        NULL, NULL, NULL),
    MOK("FROM:<a@b> SIZE=9223372036854775807", E_ALL, "a@b", LLONG_MAX, SMTP_BODY_NONE, 0, NULL,
        NULL, NULL),
    MOK("FROM:<a@b> SIZE=9223372036854775808", E_ALL, "a@b", LLONG_MAX, SMTP_BODY_NONE, 0, NULL,
        NULL, NULL),
    MOK("FROM:<a@b> SIZE=99999999999999999999", E_ALL, "a@b", LLONG_MAX, SMTP_BODY_NONE, 0, NULL,
        NULL, NULL),
    MOK("FROM:<> SIZE=10", E_ESMTP | E_SIZE, "", 10, SMTP_BODY_NONE, 0, NULL, NULL, NULL),
    MERR("FROM:<a@b> SIZE=123456789012345678901", E_ALL, 501, "5.5.4", "Bad SIZE parameter syntax"),
    MERR("FROM:<a@b> SIZE=abc", E_ALL, 501, "5.5.4", "Bad SIZE parameter syntax"),
    MERR("FROM:<a@b> SIZE=", E_ALL, 501, "5.5.4", "Bad SIZE parameter syntax"),
    MERR("FROM:<a@b> SIZE", E_ALL, 501, "5.5.4", "Bad SIZE parameter syntax"),
    MERR("FROM:<a@b> SIZE=-1", E_ALL, 501, "5.5.4", "Bad SIZE parameter syntax"),
    MERR("FROM:<a@b> SIZE=+1", E_ALL, 501, "5.5.4", "Bad SIZE parameter syntax"),
    MERR("FROM:<a@b> SIZE=1k", E_ALL, 501, "5.5.4", "Bad SIZE parameter syntax"),
    MERR("FROM:<a@b> SIZE=1=2", E_ALL, 501, "5.5.4", "Bad SIZE parameter syntax"),
    MERR("FROM:<a@b> SIZE=1 SIZE=2", E_ALL, 501, "5.5.4", "Bad SIZE parameter syntax"),
    MERR("FROM:<a@b> SIZE=10", E_ESMTP, 555, "5.5.4", "Unsupported option: SIZE"),
    MERR("FROM:<a@b> SIZE=10", E_HELO, 555, "5.5.4", "Unsupported option: SIZE"),
    MERR("FROM:<a@b> size=10", E_ALL & ~E_SIZE, 555, "5.5.4", "Unsupported option: size"),
    /* BODY (RFC 6152, RFC 3030) */
    MOK("FROM:<a@b> BODY=8BITMIME", E_ALL, "a@b", -1, SMTP_BODY_8BITMIME, 0, NULL, NULL, NULL),
    MOK("FROM:<a@b> body=8bitmime", E_ALL, "a@b", -1, SMTP_BODY_8BITMIME, 0, NULL, NULL, NULL),
    MOK("FROM:<a@b> BODY=7BIT", E_ALL, "a@b", -1, SMTP_BODY_7BIT, 0, NULL, NULL, NULL),
    MOK("FROM:<a@b> BODY=BINARYMIME", E_ALL, "a@b", -1, SMTP_BODY_BINARYMIME, 0, NULL, NULL, NULL),
    MOK("FROM:<a@b> BODY=7bit", E_ESMTP | E_8BIT, "a@b", -1, SMTP_BODY_7BIT, 0, NULL, NULL, NULL),
    MERR("FROM:<a@b> BODY=foo", E_ALL, 501, "5.5.4", "Bad BODY parameter syntax"),
    MERR("FROM:<a@b> BODY=8BIT", E_ALL, 501, "5.5.4", "Bad BODY parameter syntax"),
    MERR("FROM:<a@b> BODY=", E_ALL, 501, "5.5.4", "Bad BODY parameter syntax"),
    MERR("FROM:<a@b> BODY", E_ALL, 501, "5.5.4", "Bad BODY parameter syntax"),
    MERR("FROM:<a@b> BODY=7BIT BODY=7BIT", E_ALL, 501, "5.5.4", "Bad BODY parameter syntax"),
    MERR("FROM:<a@b> BODY=8BITMIME", E_ESMTP, 555, "5.5.4", "Unsupported option: BODY"),
    MERR("FROM:<a@b> BODY=BINARYMIME", E_ESMTP | E_8BIT, 555, "5.5.4",
         "Unsupported option: BODY=BINARYMIME"),
    MERR("FROM:<a@b> BODY=8BITMIME", E_ESMTP | E_BIN | E_CHUNK, 555, "5.5.4",
         "Unsupported option: BODY=8BITMIME"),
    /* SMTPUTF8 (RFC 6531) */
    MOK("FROM:<a@b> SMTPUTF8", E_ALL, "a@b", -1, SMTP_BODY_NONE, 1, NULL, NULL, NULL),
    MOK("FROM:<" UTF8_LOCAL "@example.com> SMTPUTF8", E_ALL, UTF8_LOCAL "@example.com", -1,
        SMTP_BODY_NONE, 1, NULL, NULL, NULL),
    MOK("FROM:<a@b\xc3\xbc.de> smtputf8 BODY=8BITMIME", E_ALL, "a@b\xc3\xbc.de", -1,
        SMTP_BODY_8BITMIME, 1, NULL, NULL, NULL),
    MERR("FROM:<" UTF8_LOCAL "@example.com>", E_ALL, 553, "5.6.7", NEED_UTF8),
    MERR("FROM:<" UTF8_LOCAL "@example.com> SIZE=10", E_ALL, 553, "5.6.7", NEED_UTF8),
    MERR("FROM:<" UTF8_LOCAL "@example.com> SMTPUTF8", E_ALL & ~E_UTF8, 553, "5.6.7", NEED_UTF8),
    MERR("FROM:<" UTF8_LOCAL "@example.com>", E_HELO, 553, "5.6.7", NEED_UTF8),
    MERR("FROM:<\xff@example.com>", E_ESMTP, 553, "5.6.7", NEED_UTF8),
    MERR("FROM:" UTF8_LOCAL "@example.com", E_ESMTP, 553, "5.6.7", NEED_UTF8),
    MERR("FROM:<\xc0\xaf@example.com> SMTPUTF8", E_ALL, 501, "5.1.7", BAD_SENDER),
    MERR("FROM:<\xed\xa0\x80@example.com> SMTPUTF8", E_ALL, 501, "5.1.7", BAD_SENDER),
    MERR("FROM:<a@b> SMTPUTF8", E_ALL & ~E_UTF8, 555, "5.5.4", "Unsupported option: SMTPUTF8"),
    MERR("FROM:<a@b> SMTPUTF8=yes", E_ALL, 501, "5.5.4", "Bad SMTPUTF8 parameter syntax"),
    MERR("FROM:<a@b> SMTPUTF8=", E_ALL, 501, "5.5.4", "Bad SMTPUTF8 parameter syntax"),
    MERR("FROM:<a@b> SMTPUTF8 SMTPUTF8", E_ALL, 501, "5.5.4", "Bad SMTPUTF8 parameter syntax"),
    /* RET, ENVID (RFC 3461) */
    MOK("FROM:<a@b> RET=FULL", E_ALL, "a@b", -1, SMTP_BODY_NONE, 0, "FULL", NULL, NULL),
    MOK("FROM:<a@b> ret=hdrs", E_ALL, "a@b", -1, SMTP_BODY_NONE, 0, "HDRS", NULL, NULL),
    MOK("FROM:<a@b> ENVID=QQ314159", E_ALL, "a@b", -1, SMTP_BODY_NONE, 0, NULL, "QQ314159", NULL),
    MOK("FROM:<a@b> ENVID=abc+2Bdef", E_ALL, "a@b", -1, SMTP_BODY_NONE, 0, NULL, "abc+def", NULL),
    MOK("FROM:<a@b> ENVID=a+20b+09c+3D", E_ALL, "a@b", -1, SMTP_BODY_NONE, 0, NULL, "a b\tc=", NULL),
    MOK("FROM:<a@b> ENVID=+41", E_ALL, "a@b", -1, SMTP_BODY_NONE, 0, NULL, "A", NULL),
    MOK("FROM:<a@b> ENVID=<x@y>", E_ALL, "a@b", -1, SMTP_BODY_NONE, 0, NULL, "<x@y>", NULL),
    MERR("FROM:<a@b> RET=NONE", E_ALL, 501, "5.5.4", "Bad RET parameter syntax"),
    MERR("FROM:<a@b> RET=", E_ALL, 501, "5.5.4", "Bad RET parameter syntax"),
    MERR("FROM:<a@b> RET", E_ALL, 501, "5.5.4", "Bad RET parameter syntax"),
    MERR("FROM:<a@b> RET=FULL RET=HDRS", E_ALL, 501, "5.5.4", "Bad RET parameter syntax"),
    MERR("FROM:<a@b> RET=FULL", E_ALL & ~E_DSN, 555, "5.5.4", "Unsupported option: RET"),
    MERR("FROM:<a@b> ENVID=x", E_ALL & ~E_DSN, 555, "5.5.4", "Unsupported option: ENVID"),
    MERR("FROM:<a@b> ENVID=", E_ALL, 501, "5.5.4", "Bad ENVID parameter syntax"),
    MERR("FROM:<a@b> ENVID", E_ALL, 501, "5.5.4", "Bad ENVID parameter syntax"),
    MERR("FROM:<a@b> ENVID=a+2b", E_ALL, 501, "5.5.4", "Bad ENVID parameter syntax"),
    MERR("FROM:<a@b> ENVID=a+2", E_ALL, 501, "5.5.4", "Bad ENVID parameter syntax"),
    MERR("FROM:<a@b> ENVID=a+", E_ALL, 501, "5.5.4", "Bad ENVID parameter syntax"),
    MERR("FROM:<a@b> ENVID=a+GG", E_ALL, 501, "5.5.4", "Bad ENVID parameter syntax"),
    MERR("FROM:<a@b> ENVID=a+00", E_ALL, 501, "5.5.4", "Bad ENVID parameter syntax"),
    MERR("FROM:<a@b> ENVID=a+0D+0A", E_ALL, 501, "5.5.4", "Bad ENVID parameter syntax"),
    MERR("FROM:<a@b> ENVID=a+7F", E_ALL, 501, "5.5.4", "Bad ENVID parameter syntax"),
    MERR("FROM:<a@b> ENVID=a+C3+BC", E_ALL, 501, "5.5.4", "Bad ENVID parameter syntax"),
    MERR("FROM:<a@b> ENVID=a=b", E_ALL, 501, "5.5.4", "Bad ENVID parameter syntax"),
    MERR("FROM:<a@b> ENVID=a\xc3\xbc", E_ALL, 501, "5.5.4", "Bad ENVID parameter syntax"),
    MERR("FROM:<a@b> ENVID=a\x01", E_ALL, 501, "5.5.4", "Bad ENVID parameter syntax"),
    MERR("FROM:<a@b> ENVID=a ENVID=b", E_ALL, 501, "5.5.4", "Bad ENVID parameter syntax"),
    /* AUTH (RFC 4954 5) */
    MOK("FROM:<a@b> AUTH=<>", E_ALL, "a@b", -1, SMTP_BODY_NONE, 0, NULL, NULL, "<>"),
    MOK("FROM:<e=mc2@example.com> AUTH=e+3Dmc2@example.com", E_ALL, "e=mc2@example.com", -1,
        SMTP_BODY_NONE, 0, NULL, NULL, "e=mc2@example.com"),
    MERR("FROM:<a@b> AUTH=<>", E_ALL & ~E_AUTH, 555, "5.5.4", "Unsupported option: AUTH"),
    MERR("FROM:<a@b> AUTH=", E_ALL, 501, "5.5.4", "Bad AUTH parameter syntax"),
    MERR("FROM:<a@b> AUTH=a+0Ab", E_ALL, 501, "5.5.4", "Bad AUTH parameter syntax"),
    MERR("FROM:<a@b> AUTH=<> AUTH=<>", E_ALL, 501, "5.5.4", "Bad AUTH parameter syntax"),
    /* unknown, RCPT-only and malformed keywords */
    MERR("FROM:<a@b> FOO=bar", E_ALL, 555, "5.5.4", "Unsupported option: FOO"),
    MERR("FROM:<a@b> FOO", E_ALL, 555, "5.5.4", "Unsupported option: FOO"),
    MERR("FROM:<a@b> X-Foo-1=\xff", E_ALL, 555, "5.5.4", "Unsupported option: X-Foo-1"),
    MERR("FROM:<a@b> NOTIFY=NEVER", E_ALL, 555, "5.5.4", "Unsupported option: NOTIFY"),
    MERR("FROM:<a@b> ORCPT=rfc822;a@b", E_ALL, 555, "5.5.4", "Unsupported option: ORCPT"),
    MERR("FROM:<a@b> SIZE=1 FOO=bar", E_ALL, 555, "5.5.4", "Unsupported option: FOO"),
    MERR("FROM:<a@b> FOO=bar", E_HELO, 555, "5.5.4", "Unsupported option: FOO"),
    MERR("FROM:<a@b> =x", E_ALL, 501, "5.5.4", "Bad parameter syntax"),
    MERR("FROM:<a@b> -X=1", E_ALL, 501, "5.5.4", "Bad parameter syntax"),
    MERR("FROM:<a@b> S_IZE=1", E_ALL, 501, "5.5.4", "Bad parameter syntax"),
    MERR("FROM:<a@b> SIZE\t=1", E_ALL, 501, "5.5.4", "Bad parameter syntax"),
    MERR("FROM:<a@b> \xc3\xbc=1", E_ALL, 501, "5.5.4", "Bad parameter syntax"),
    MERR("FROM:<a@b> =", E_HELO, 501, "5.5.4", "Bad parameter syntax"),
    MERR("FROM:<a@b> "
         "X-ABCDEFGHIJKLMNOPQRSTUVWXYZ-ABCDEFGHIJKLMNOPQRSTUVWXYZ-ABCDEFGHIJKLMNOPQRSTUVWXYZ=1",
         E_ALL, 555, "5.5.4",
         "Unsupported option: X-ABCDEFGHIJKLMNOPQRSTUVWXYZ-ABCDEFGHIJKLMNOPQRSTUVWXYZ-ABCDEFGH..."),
    /* several at once, any spacing */
    MOK("FROM:<a@b> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=QQ314159 SMTPUTF8 AUTH=<>", E_ALL, "a@b",
        100, SMTP_BODY_8BITMIME, 1, "HDRS", "QQ314159", "<>"),
    MOK("FROM: <a@b>   SIZE=1   BODY=7BIT  ", E_ALL, "a@b", 1, SMTP_BODY_7BIT, 0, NULL, NULL,
        NULL),
    /* a late error after earlier values were allocated (leak check) */
    MERR("FROM:<a@b> ENVID=x RET=FULL AUTH=<> SMTPUTF8 BODY=foo", E_ALL, 501, "5.5.4",
         "Bad BODY parameter syntax"),
    MERR("FROM:<" UTF8_LOCAL "@b> ENVID=x RET=FULL AUTH=<>", E_ALL, 553, "5.6.7", NEED_UTF8),
};

static void test_mail_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof mail_rows / sizeof mail_rows[0]; i++) {
        const struct mail_row *r = &mail_rows[i];
        struct smtp_ext ext = ext_of(r->ext);
        struct smtp_mail_args a;
        struct smtp_reply_err err = {0, NULL, ""};
        int rc = smtp_parse_mail(r->arg, &ext, &a, &err);
        if (r->code) {
            expect_err("MAIL", i, r->arg, rc, &err, r->code, r->enh, r->text);
            /* Nothing is left allocated or half-filled. */
            assert_null(a.path.mailbox);
            assert_null(a.ret);
            assert_null(a.envid);
            assert_null(a.auth);
            assert_int_equal(a.size, -1);
            smtp_mail_args_free(&a);
            continue;
        }
        if (rc != 0)
            fail_msg("MAIL row %zu \"%s\": %d %s \"%s\"", i, r->arg, err.code,
                     err.enh ? err.enh : "-", err.text);
        expect_str("MAIL", i, "mailbox", r->mailbox, a.path.mailbox);
        assert_int_equal(a.path.is_null, r->mailbox[0] == '\0');
        if (a.size != r->size || a.body != r->body || a.smtputf8 != r->smtputf8)
            fail_msg("MAIL row %zu \"%s\": size=%lld body=%d utf8=%d", i, r->arg, a.size,
                     a.body, a.smtputf8);
        expect_str("MAIL", i, "ret", r->ret, a.ret);
        expect_str("MAIL", i, "envid", r->envid, a.envid);
        expect_str("MAIL", i, "auth", r->auth, a.auth);
        smtp_mail_args_free(&a);
        assert_null(a.path.mailbox);
    }
}

/* ENVID's 100-character and AUTH's bounds, built rather than spelled out. */
static void test_mail_param_lengths(void **state)
{
    (void)state;
    struct smtp_ext ext = ext_of(E_ALL);
    struct smtp_mail_args a;
    struct smtp_reply_err err;
    char v[1200];

    memset(v, 'e', 100);
    v[100] = '\0';
    char *arg = xasprintf("FROM:<a@b> ENVID=%s", v);
    assert_int_equal(smtp_parse_mail(arg, &ext, &a, &err), 0);
    assert_int_equal(strlen(a.envid), 100);
    smtp_mail_args_free(&a);
    free(arg);

    memset(v, 'e', 101);
    v[101] = '\0';
    arg = xasprintf("FROM:<a@b> ENVID=%s", v);
    assert_int_equal(smtp_parse_mail(arg, &ext, &a, &err), -1);
    assert_int_equal(err.code, 501);
    assert_string_equal(err.text, "Bad ENVID parameter syntax");
    free(arg);

    memset(v, 'u', 768);
    v[768] = '\0';
    arg = xasprintf("FROM:<a@b> AUTH=%s", v);
    assert_int_equal(smtp_parse_mail(arg, &ext, &a, &err), 0);
    smtp_mail_args_free(&a);
    free(arg);
    memset(v, 'u', 769);
    v[769] = '\0';
    arg = xasprintf("FROM:<a@b> AUTH=%s", v);
    assert_int_equal(smtp_parse_mail(arg, &ext, &a, &err), -1);
    assert_string_equal(err.text, "Bad AUTH parameter syntax");
    free(arg);

    /* A NULL ext is a HELO session: plain MAIL works, parameters do not. */
    assert_int_equal(smtp_parse_mail("FROM:<a@b>", NULL, &a, &err), 0);
    smtp_mail_args_free(&a);
    assert_int_equal(smtp_parse_mail("FROM:<a@b> SIZE=1", NULL, &a, &err), -1);
    assert_int_equal(err.code, 555);
    /* A NULL err is allowed too. */
    assert_int_equal(smtp_parse_mail("FROM:<a@b> SIZE=x", &ext, &a, NULL), -1);
    smtp_mail_args_free(&a);
    smtp_mail_args_free(NULL);
}

/* ------------------------------------------------------------------ */
/* RCPT                                                                 */

struct rcpt_row {
    const char *arg;
    unsigned ext;
    int code;
    const char *enh, *text;
    const char *mailbox;
    unsigned notify;
    const char *orcpt;
    int has_utf8;
};

#define ROK(arg, ext, mbox, notify, orcpt, utf8) {arg, ext, 0, NULL, NULL, mbox, notify, orcpt, utf8}
#define RERR(arg, ext, code, enh, text) {arg, ext, code, enh, text, NULL, 0, NULL, 0}

#define N_S SMTP_NOTIFY_SUCCESS
#define N_F SMTP_NOTIFY_FAILURE
#define N_D SMTP_NOTIFY_DELAY
#define N_N SMTP_NOTIFY_NEVER

static const struct rcpt_row rcpt_rows[] = {
    ROK("TO:<a@b>", E_ALL, "a@b", 0, NULL, 0),
    ROK("to:<a@b>", E_ALL, "a@b", 0, NULL, 0),
    ROK("TO: <a@b>", E_ALL, "a@b", 0, NULL, 0),
    ROK("TO:a@b", E_ALL, "a@b", 0, NULL, 0),
    ROK("TO:<a@b>  ", E_HELO, "a@b", 0, NULL, 0),
    ROK("TO:<postmaster>", E_ALL, "postmaster", 0, NULL, 0),
    ROK("TO:<Postmaster>", E_ALL, "postmaster", 0, NULL, 0),
    ROK("TO:postmaster", E_ALL, "postmaster", 0, NULL, 0),
    ROK("TO:<@relay.example:a@b>", E_ALL, "a@b", 0, NULL, 0),
    RERR("TO:<>", E_ALL, 501, "5.1.3", BAD_RCPT),
    RERR("TO:", E_ALL, 501, "5.1.3", BAD_RCPT),
    RERR("TO:<a@b", E_ALL, 501, "5.1.3", BAD_RCPT),
    RERR("TO:<a@b>x", E_ALL, 501, "5.1.3", BAD_RCPT),
    RERR("TO:<user>", E_ALL, 501, "5.1.3", BAD_RCPT),
    RERR("TO:<\"postmaster\">", E_ALL, 501, "5.1.3", BAD_RCPT),
    RERR("TO:a@b NOTIFY=NEVER", E_ALL, 501, "5.1.3", BAD_RCPT),
    RERR("TO:<a@b_c>", E_ALL, 501, "5.1.3", BAD_RCPT),
    RERR("", E_ALL, 501, "5.5.4", SYN_RCPT),
    RERR("FROM:<a@b>", E_ALL, 501, "5.5.4", SYN_RCPT),
    RERR("TO <a@b>", E_ALL, 501, "5.5.4", SYN_RCPT),
    RERR("T0:<a@b>", E_ALL, 501, "5.5.4", SYN_RCPT),
    RERR("<a@b>", E_ALL, 501, "5.5.4", SYN_RCPT),
    /* NOTIFY */
    ROK("TO:<a@b> NOTIFY=NEVER", E_ALL, "a@b", N_N, NULL, 0),
    ROK("TO:<a@b> NOTIFY=SUCCESS,FAILURE,DELAY", E_ALL, "a@b", N_S | N_F | N_D, NULL, 0),
    ROK("TO:<a@b> notify=delay", E_ALL, "a@b", N_D, NULL, 0),
    ROK("TO:<a@b> NOTIFY=Failure,sUCCESS", E_ALL, "a@b", N_S | N_F, NULL, 0),
    ROK("TO:<a@b> NOTIFY=SUCCESS,SUCCESS", E_ALL, "a@b", N_S, NULL, 0),
    RERR("TO:<a@b> NOTIFY=NEVER,SUCCESS", E_ALL, 501, "5.5.4", "Bad NOTIFY parameter syntax"),
    RERR("TO:<a@b> NOTIFY=DELAY,NEVER", E_ALL, 501, "5.5.4", "Bad NOTIFY parameter syntax"),
    RERR("TO:<a@b> NOTIFY=", E_ALL, 501, "5.5.4", "Bad NOTIFY parameter syntax"),
    RERR("TO:<a@b> NOTIFY", E_ALL, 501, "5.5.4", "Bad NOTIFY parameter syntax"),
    RERR("TO:<a@b> NOTIFY=SUCCESS,", E_ALL, 501, "5.5.4", "Bad NOTIFY parameter syntax"),
    RERR("TO:<a@b> NOTIFY=,SUCCESS", E_ALL, 501, "5.5.4", "Bad NOTIFY parameter syntax"),
    RERR("TO:<a@b> NOTIFY=SUCCESS,,DELAY", E_ALL, 501, "5.5.4", "Bad NOTIFY parameter syntax"),
    RERR("TO:<a@b> NOTIFY=FOO", E_ALL, 501, "5.5.4", "Bad NOTIFY parameter syntax"),
    RERR("TO:<a@b> NOTIFY=SUCCESSX", E_ALL, 501, "5.5.4", "Bad NOTIFY parameter syntax"),
    RERR("TO:<a@b> NOTIFY=SUCCESS NOTIFY=DELAY", E_ALL, 501, "5.5.4", "Bad NOTIFY parameter syntax"),
    RERR("TO:<a@b> NOTIFY=NEVER", E_ALL & ~E_DSN, 555, "5.5.4", "Unsupported option: NOTIFY"),
    RERR("TO:<a@b> NOTIFY=NEVER", E_HELO, 555, "5.5.4", "Unsupported option: NOTIFY"),
    /* ORCPT */
    ROK("TO:<a@b> ORCPT=rfc822;a@b", E_ALL, "a@b", 0, "rfc822;a@b", 0),
    ROK("TO:<a@b> ORCPT=RFC822;a+2Bb@c", E_ALL, "a@b", 0, "RFC822;a+b@c", 0),
    ROK("TO:<a@b> ORCPT=rfc822;Joe+20Smith+20<a@b>", E_ALL, "a@b", 0, "rfc822;Joe Smith <a@b>", 0),
    ROK("TO:<a@b> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b", E_ALL, "a@b", N_S | N_F, "rfc822;a@b", 0),
    RERR("TO:<a@b> ORCPT=rfc822;", E_ALL, 501, "5.5.4", "Bad ORCPT parameter syntax"),
    RERR("TO:<a@b> ORCPT=;a@b", E_ALL, 501, "5.5.4", "Bad ORCPT parameter syntax"),
    RERR("TO:<a@b> ORCPT=rfc822", E_ALL, 501, "5.5.4", "Bad ORCPT parameter syntax"),
    RERR("TO:<a@b> ORCPT=", E_ALL, 501, "5.5.4", "Bad ORCPT parameter syntax"),
    RERR("TO:<a@b> ORCPT", E_ALL, 501, "5.5.4", "Bad ORCPT parameter syntax"),
    RERR("TO:<a@b> ORCPT=rfc(822);a@b", E_ALL, 501, "5.5.4", "Bad ORCPT parameter syntax"),
    RERR("TO:<a@b> ORCPT=rfc822;a+0Ab", E_ALL, 501, "5.5.4", "Bad ORCPT parameter syntax"),
    RERR("TO:<a@b> ORCPT=rfc822;a+2", E_ALL, 501, "5.5.4", "Bad ORCPT parameter syntax"),
    RERR("TO:<a@b> ORCPT=rfc822;a@b ORCPT=rfc822;a@b", E_ALL, 501, "5.5.4",
         "Bad ORCPT parameter syntax"),
    RERR("TO:<a@b> ORCPT=rfc822;a@b", E_ALL & ~E_DSN, 555, "5.5.4", "Unsupported option: ORCPT"),
    /* parameters that belong to MAIL, and unknown ones */
    RERR("TO:<a@b> SIZE=10", E_ALL, 555, "5.5.4", "Unsupported option: SIZE"),
    RERR("TO:<a@b> SMTPUTF8", E_ALL, 555, "5.5.4", "Unsupported option: SMTPUTF8"),
    RERR("TO:<a@b> RET=FULL", E_ALL, 555, "5.5.4", "Unsupported option: RET"),
    RERR("TO:<a@b> XFOO", E_ALL, 555, "5.5.4", "Unsupported option: XFOO"),
    RERR("TO:<a@b> _X", E_ALL, 501, "5.5.4", "Bad parameter syntax"),
    /* UTF-8 only inside an SMTPUTF8 transaction (ext->smtputf8 for RCPT) */
    ROK("TO:<" UTF8_LOCAL "@example.com>", E_ALL, UTF8_LOCAL "@example.com", 0, NULL, 1),
    ROK("TO:<a@\xc3\xbc.example> NOTIFY=NEVER", E_ALL, "a@\xc3\xbc.example", N_N, NULL, 1),
    ROK("TO:<a@b>", E_ALL, "a@b", 0, NULL, 0),
    RERR("TO:<" UTF8_LOCAL "@example.com>", E_ALL & ~E_UTF8, 553, "5.6.7", NEED_UTF8),
    RERR("TO:<" UTF8_LOCAL "@example.com>", E_HELO, 553, "5.6.7", NEED_UTF8),
    RERR("TO:<a@\xc3\xbc.example> NOTIFY=NEVER", E_ALL & ~E_UTF8, 553, "5.6.7", NEED_UTF8),
    RERR("TO:<\xc0\xaf@example.com>", E_ALL, 501, "5.1.3", BAD_RCPT),
    RERR("TO:<\xc2\x85@example.com>", E_ALL, 501, "5.1.3", BAD_RCPT),
    /* late failure after ORCPT was allocated (leak check) */
    RERR("TO:<a@b> ORCPT=rfc822;a@b NOTIFY=BOGUS", E_ALL, 501, "5.5.4", "Bad NOTIFY parameter syntax"),
};

static void test_rcpt_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rcpt_rows / sizeof rcpt_rows[0]; i++) {
        const struct rcpt_row *r = &rcpt_rows[i];
        struct smtp_ext ext = ext_of(r->ext);
        struct smtp_rcpt_args a;
        struct smtp_reply_err err = {0, NULL, ""};
        int rc = smtp_parse_rcpt(r->arg, &ext, &a, &err);
        if (r->code) {
            expect_err("RCPT", i, r->arg, rc, &err, r->code, r->enh, r->text);
            assert_null(a.path.mailbox);
            assert_null(a.orcpt);
            assert_int_equal(a.notify, 0);
            smtp_rcpt_args_free(&a);
            continue;
        }
        if (rc != 0)
            fail_msg("RCPT row %zu \"%s\": %d %s \"%s\"", i, r->arg, err.code,
                     err.enh ? err.enh : "-", err.text);
        expect_str("RCPT", i, "mailbox", r->mailbox, a.path.mailbox);
        expect_str("RCPT", i, "orcpt", r->orcpt, a.orcpt);
        if (a.notify != r->notify || a.path.has_utf8 != r->has_utf8)
            fail_msg("RCPT row %zu \"%s\": notify=%u utf8=%d", i, r->arg, a.notify,
                     a.path.has_utf8);
        smtp_rcpt_args_free(&a);
    }
}

static void test_rcpt_orcpt_length(void **state)
{
    (void)state;
    struct smtp_ext ext = ext_of(E_ALL);
    struct smtp_rcpt_args a;
    struct smtp_reply_err err;
    char v[600];
    /* The whole value, "rfc822;" included, may be 500 characters. */
    memcpy(v, "rfc822;", 7);
    memset(v + 7, 'o', 493);
    v[500] = '\0';
    char *arg = xasprintf("TO:<a@b> ORCPT=%s", v);
    assert_int_equal(smtp_parse_rcpt(arg, &ext, &a, &err), 0);
    assert_int_equal(strlen(a.orcpt), 500);
    smtp_rcpt_args_free(&a);
    free(arg);
    v[500] = 'o';
    v[501] = '\0';
    arg = xasprintf("TO:<a@b> ORCPT=%s", v);
    assert_int_equal(smtp_parse_rcpt(arg, &ext, &a, &err), -1);
    assert_int_equal(err.code, 501);
    assert_string_equal(err.text, "Bad ORCPT parameter syntax");
    free(arg);
}

/* ------------------------------------------------------------------ */
/* BDAT and HELO                                                        */

static void test_bdat_table(void **state)
{
    (void)state;
    static const struct {
        const char *arg;
        int rc;
        unsigned long long size;
        int last;
    } rows[] = {
        {"100", 0, 100, 0},
        {"100 LAST", 0, 100, 1},
        {"100 last", 0, 100, 1},
        {"100 LaSt", 0, 100, 1},
        {"0 LAST", 0, 0, 1},
        {"0", 0, 0, 0},
        {"100  LAST  ", 0, 100, 1},
        {" 100", 0, 100, 0},
        {"100 ", 0, 100, 0},
        {"000000000000000000000000000000000010", 0, 10, 0},
        {"9223372036854775807", 0, 9223372036854775807ULL, 0},
        {"9223372036854775808 LAST", 0, 9223372036854775808ULL, 1},
        {"9223372036854775809", -1, 0, 0},
        {"18446744073709551615", -1, 0, 0},
        {"18446744073709551616", -1, 0, 0},
        {"99999999999999999999999", -1, 0, 0},
        {"", -1, 0, 0},
        {" ", -1, 0, 0},
        {"LAST", -1, 0, 0},
        {"LAST 100", -1, 0, 0},
        {"-1", -1, 0, 0},
        {"+1", -1, 0, 0},
        {"10LAST", -1, 0, 0},
        {"10 LASTX", -1, 0, 0},
        {"10 LAS", -1, 0, 0},
        {"10 LAST X", -1, 0, 0},
        {"10 LAST LAST", -1, 0, 0},
        {"10 FIRST", -1, 0, 0},
        {"10 20", -1, 0, 0},
        {"1e3", -1, 0, 0},
        {"0x10", -1, 0, 0},
        {"10\t", -1, 0, 0},
        {"\xd9\xa1", -1, 0, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        unsigned long long size = 42;
        int last = 42;
        int rc = smtp_parse_bdat(rows[i].arg, &size, &last);
        if (rc != rows[i].rc || (rc == 0 && (size != rows[i].size || last != rows[i].last)))
            fail_msg("BDAT row %zu \"%s\": rc=%d size=%llu last=%d", i, rows[i].arg, rc, size,
                     last);
    }
}

static void test_helo_table(void **state)
{
    (void)state;
    static const struct {
        const char *arg;
        const char *name; /* NULL: rejected */
    } rows[] = {
        {"mail.example.com", "mail.example.com"},
        {"Mail.Example.COM", "Mail.Example.COM"},
        {"mail.example.com ", "mail.example.com"},
        {"  x  ", "x"},
        {"localhost", "localhost"},
        {"[192.0.2.1]", "[192.0.2.1]"},
        {"[IPv6:2001:db8::1]", "[IPv6:2001:db8::1]"},
        {"192.0.2.1", "192.0.2.1"},
        {"", NULL},
        {"   ", NULL},
        {"my_host", NULL},
        {"host.example.com.", NULL},
        {"host extra", NULL},
        {"-host", NULL},
        {"host-", NULL},
        {"b\xc3\xbc" "cher.de", NULL},
        {"[1.2.3]", NULL},
        {"[192.0.2.1", NULL},
        {"host\tname", NULL},
        {"host\r", NULL},
        {"a..b", NULL},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char *name = (char *)"untouched";
        int rc = smtp_parse_helo(rows[i].arg, &name);
        if (rows[i].name) {
            if (rc != 0 || name == NULL || strcmp(name, rows[i].name) != 0)
                fail_msg("HELO row %zu \"%s\": rc=%d name=%s", i, rows[i].arg, rc,
                         name ? name : "(null)");
            free(name);
        } else if (rc != -1 || name != NULL) {
            fail_msg("HELO row %zu \"%s\": accepted", i, rows[i].arg);
        }
        assert_int_equal(smtp_parse_helo(rows[i].arg, NULL), rows[i].name ? 0 : -1);
    }
    /* The 255-octet domain limit applies to HELO names. */
    char big[300];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    for (size_t i = 60; i < sizeof big - 1; i += 61)
        big[i] = '.';
    assert_int_equal(smtp_parse_helo(big, NULL), -1);
    big[255] = '\0';
    assert_int_equal(smtp_parse_helo(big, NULL), 0);
}

/* -N and RCPT's NOTIFY share the parser; -V is held to ENVID's rule. */
static void test_notify_and_envid_values(void **state)
{
    (void)state;
    unsigned bits = 0;
    assert_int_equal(smtp_notify_parse("never", 5, &bits), 0);
    assert_int_equal(bits, SMTP_NOTIFY_NEVER);
    assert_int_equal(smtp_notify_parse("success,DELAY,Failure", 21, &bits), 0);
    assert_int_equal(bits, SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_DELAY | SMTP_NOTIFY_FAILURE);
    assert_int_equal(smtp_notify_parse("never,success", 13, &bits), -1);
    assert_int_equal(smtp_notify_parse("success,", 8, &bits), -1);
    assert_int_equal(smtp_notify_parse("", 0, &bits), -1);
    assert_int_equal(smtp_notify_parse("sometimes", 9, &bits), -1);
    assert_true(smtp_envid_valid("job 42.abc"));
    assert_false(smtp_envid_valid(""));
    assert_false(smtp_envid_valid("tab\there"));
    assert_false(smtp_envid_valid("caf\xc3\xa9"));
    char longest[102];
    memset(longest, 'e', 101);
    longest[101] = '\0';
    assert_false(smtp_envid_valid(longest));
    longest[100] = '\0';
    assert_true(smtp_envid_valid(longest));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cmd_table),
        cmocka_unit_test(test_notify_and_envid_values),
        cmocka_unit_test(test_verb_names_roundtrip),
        cmocka_unit_test(test_mail_table),
        cmocka_unit_test(test_mail_param_lengths),
        cmocka_unit_test(test_rcpt_table),
        cmocka_unit_test(test_rcpt_orcpt_length),
        cmocka_unit_test(test_bdat_table),
        cmocka_unit_test(test_helo_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
