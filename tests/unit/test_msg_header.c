/* Unit tests for msg_header: scanning, the builders, field removal. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "msg/msg_header.h"
#include "util/mem.h"
#include "util/strbuf.h"

/* Wed, 25 Nov 2026 16:03:00 UTC */
#define T_NOV25 ((time_t)1795622580)
/* Tue, 1 Jul 2003 10:52:37 UTC */
#define T_JUL1 ((time_t)1057056757)

static void set_tz(const char *tz)
{
    setenv("TZ", tz, 1);
    tzset();
}

/* ---------------------------------------------------------------------------
 * msg_header_scan */

/* The input is header + sep + body, so the expected header_len is strlen(header)
 * and body_offset strlen(header) + strlen(sep). A non-zero len gives the input
 * size explicitly (for NUL bytes, which then may only appear in body). */
struct scan_case {
    const char *name;
    const char *header;
    const char *sep;
    const char *body;
    int from, date, mid, sender, to, cc, bcc, resent, received;
    const char *message_id;
    const char *from_value;
    int has_8bit, malformed;
};

static const struct scan_case scan_cases[] = {
    {"simple CRLF", "From: a@b\r\nTo: c@d\r\nSubject: hi\r\n", "\r\n", "body\r\n",
     1, 0, 0, 0, 1, 0, 0, 0, 0, NULL, "a@b", 0, 0},
    {"bare LF", "From: a@b\nDate: x\nMessage-ID: <1@h>\n", "\n", "body\n",
     1, 1, 1, 0, 0, 0, 0, 0, 0, "<1@h>", "a@b", 0, 0},
    {"folded, mixed case", "fROM: John\r\n  Doe <j@x>\r\nmessage-id:\r\n <1@x>  \r\nTO: a\r\n\tb\r\n",
     "\r\n", "", 1, 0, 1, 0, 1, 0, 0, 0, 0, "<1@x>", "John  Doe <j@x>", 0, 0},
    {"folded LF", "From: A\n <a@b>\n", "\n", "x", 1, 0, 0, 0, 0, 0, 0, 0, 0, NULL, "A <a@b>", 0, 0},
    {"no header at all", "", "", "Hello world\r\nFrom: x\r\n\r\nmore\r\n",
     0, 0, 0, 0, 0, 0, 0, 0, 0, NULL, NULL, 0, 0},
    {"first line continuation", "", "", " indented\r\nFrom: a\r\n",
     0, 0, 0, 0, 0, 0, 0, 0, 0, NULL, NULL, 0, 0},
    {"mbox From_ line", "", "", "From user Wed Nov 25 16:03:00 2026\nSubject: x\n\nbody\n",
     0, 0, 0, 0, 0, 0, 0, 0, 0, NULL, NULL, 0, 0},
    {"empty name", "", "", ": x\r\nFrom: a\r\n", 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL, NULL, 0, 0},
    {"8-bit name first", "", "", "S\xc3\xbc" "bject: x\r\n\r\n", 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL, NULL, 0, 0},
    {"no separator", "From: a@b\r\nDate: x\r\n", "", "", 1, 1, 0, 0, 0, 0, 0, 0, 0, NULL, "a@b", 0, 0},
    {"no final newline", "Subject: x", "", "", 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL, NULL, 0, 0},
    {"unterminated folded From", "From: a\r\n\t<b@c>", "", "", 1, 0, 0, 0, 0, 0, 0, 0, 0, NULL, "a\t<b@c>", 0, 0},
    {"empty input", "", "", "", 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL, NULL, 0, 0},
    {"separator only", "", "\r\n", "body", 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL, NULL, 0, 0},
    {"final bare CR is a separator", "From: a\r\n", "\r", "", 1, 0, 0, 0, 0, 0, 0, 0, 0, NULL, "a", 0, 0},
    {"8-bit in header", "Subject: Gr\xc3\xbc\xc3\x9f" "e\r\n", "\r\n", "", 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL, NULL, 1, 0},
    {"8-bit only in body", "Subject: x\r\n", "\r\n", "Gr\xc3\xbc\xc3\x9f" "e\r\n", 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL, NULL, 0, 0},
    {"duplicate Message-ID", "Message-ID: <a@x>\r\nMessage-Id: <b@x>\r\n", "\r\n", "",
     0, 0, 2, 0, 0, 0, 0, 0, 0, "<a@x>", NULL, 0, 0},
    {"duplicate From", "From: first@x\r\nFrom: second@x\r\n", "\r\n", "", 2, 0, 0, 0, 0, 0, 0, 0, 0, NULL, "first@x", 0, 0},
    {"Received counting",
     "Received: from a\r\n\tby b; date\r\nX-Received: no\r\nreceived: from c\r\nReceived-SPF: pass\r\nRECEIVED: x\r\n",
     "\r\n", "Received: in body\r\n", 0, 0, 0, 0, 0, 0, 0, 0, 3, NULL, NULL, 0, 0},
    {"body line before blank line", "From: a@b\r\n", "", "this is body\r\nTo: c@d\r\n\r\n",
     1, 0, 0, 0, 0, 0, 0, 0, 0, NULL, "a@b", 0, 1},
    {"8-bit name after a field", "To: a\r\n", "", "S\xc3\xbc" "bject: x\r\n", 0, 0, 0, 0, 1, 0, 0, 0, 0, NULL, NULL, 0, 1},
    {"Resent fields", "Resent-From: a\r\nresent-date: x\r\nResent-Message-ID: <r@x>\r\nResentment: no\r\n",
     "\r\n", "", 0, 0, 0, 0, 0, 0, 0, 3, 0, NULL, NULL, 0, 0},
    {"all the counted fields", "Date: d\r\nSender: s\r\nTo: t\r\nCc: c\r\nBcc: b\r\nbcc: b2\r\nFrom: f\r\n",
     "\r\n", "", 1, 1, 0, 1, 1, 1, 2, 0, 0, NULL, "f", 0, 0},
    {"white space before colon", "Subject : x\r\nFrom  :\ta@b \r\n", "\r\n", "",
     1, 0, 0, 0, 0, 0, 0, 0, 0, NULL, "a@b", 0, 0},
    {"white-space-only continuation", "Subject: a\r\n \r\nFrom: b\r\n", "\r\n", "",
     1, 0, 0, 0, 0, 0, 0, 0, 0, NULL, "b", 0, 0},
    {"bare CR inside a line", "Subject: a\rb\r\nFrom: x\ry\r\n", "\r\n", "", 1, 0, 0, 0, 0, 0, 0, 0, 0, NULL, "x\ry", 0, 0},
    {"empty values", "From:\r\nMessage-ID:   \r\n", "\r\n", "", 1, 0, 1, 0, 0, 0, 0, 0, 0, "", "", 0, 0},
    {"field names with odd characters", "X-A.b_c~!: v\r\nFrom: a\r\n", "\r\n", "",
     1, 0, 0, 0, 0, 0, 0, 0, 0, NULL, "a", 0, 0},
    {"From body field not counted", "Subject: x\r\n", "\r\n", "From: a@b\r\nMessage-ID: <x@y>\r\n",
     0, 0, 0, 0, 0, 0, 0, 0, 0, NULL, NULL, 0, 0},
};

static void check_scan(const struct scan_case *c)
{
    struct strbuf in = STRBUF_INIT;
    strbuf_puts(&in, c->header);
    strbuf_puts(&in, c->sep);
    strbuf_puts(&in, c->body);
    struct msg_header_info h;
    assert_int_equal(msg_header_scan(strbuf_str(&in), in.len, &h), 0);

#define CHECK_INT(got, want)                                                                  \
    do {                                                                                      \
        if ((long long)(got) != (long long)(want))                                            \
            fail_msg("%s: %s = %lld, expected %lld", c->name, #got, (long long)(got),          \
                     (long long)(want));                                                      \
    } while (0)
    CHECK_INT(h.has_from, c->from);
    CHECK_INT(h.has_date, c->date);
    CHECK_INT(h.has_message_id, c->mid);
    CHECK_INT(h.has_sender, c->sender);
    CHECK_INT(h.has_to, c->to);
    CHECK_INT(h.has_cc, c->cc);
    CHECK_INT(h.has_bcc, c->bcc);
    CHECK_INT(h.has_resent, c->resent);
    CHECK_INT(h.received_count, c->received);
    CHECK_INT(h.has_8bit, c->has_8bit);
    CHECK_INT(h.has_nul, 0);
    CHECK_INT(h.malformed, c->malformed);
    CHECK_INT(h.header_len, strlen(c->header));
    CHECK_INT(h.has_body_separator, *c->sep != '\0');
    CHECK_INT(h.body_offset, strlen(c->header) + strlen(c->sep));
#undef CHECK_INT
    if (c->message_id == NULL ? h.message_id != NULL
                              : h.message_id == NULL || strcmp(h.message_id, c->message_id) != 0)
        fail_msg("%s: message_id \"%s\", expected \"%s\"", c->name,
                 h.message_id ? h.message_id : "(null)", c->message_id ? c->message_id : "(null)");
    if (c->from_value == NULL ? h.from != NULL
                              : h.from == NULL || strcmp(h.from, c->from_value) != 0)
        fail_msg("%s: from \"%s\", expected \"%s\"", c->name, h.from ? h.from : "(null)",
                 c->from_value ? c->from_value : "(null)");
    msg_header_info_free(&h);
    assert_null(h.from);
    assert_null(h.message_id);
    strbuf_free(&in);
}

static void test_scan_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof scan_cases / sizeof scan_cases[0]; i++)
        check_scan(&scan_cases[i]);
}

static void test_scan_nul_and_bounds(void **state)
{
    (void)state;
    struct msg_header_info h;
    /* A NUL in the header: flagged, and the value stops there. */
    static const char nul[] = "Subject: a\0b\r\nFrom: x\0y\r\n\r\nbody\0";
    assert_int_equal(msg_header_scan(nul, sizeof nul - 1, &h), 0);
    assert_int_equal(h.has_nul, 1);
    assert_int_equal(h.has_from, 1);
    assert_string_equal(h.from, "x");
    assert_int_equal(h.header_len, 25);
    assert_int_equal(h.body_offset, 27);
    msg_header_info_free(&h);

    /* NUL only in the body does not count */
    static const char body_nul[] = "Subject: a\r\n\r\nb\0dy";
    assert_int_equal(msg_header_scan(body_nul, sizeof body_nul - 1, &h), 0);
    assert_int_equal(h.has_nul, 0);
    msg_header_info_free(&h);

    /* The scan honours len, not a terminator: a field cut in the middle. */
    static const char cut[] = "From: a@b\r\nTo: c@d\r\n";
    assert_int_equal(msg_header_scan(cut, 8, &h), 0);
    assert_string_equal(h.from, "a@");
    assert_int_equal(h.header_len, 8);
    assert_int_equal(h.has_to, 0);
    msg_header_info_free(&h);

    assert_int_equal(msg_header_scan(NULL, 5, &h), -1);
    assert_int_equal(h.header_len, 0);
    assert_null(h.from);
    assert_int_equal(msg_header_scan(NULL, 0, &h), 0);
    msg_header_info_free(&h);
    msg_header_info_free(NULL);
}

/* ---------------------------------------------------------------------------
 * Builders */

static void assert_lines_within(const char *field, size_t width)
{
    const char *p = field;
    while (*p) {
        const char *eol = strstr(p, "\r\n");
        assert_non_null(eol);
        if ((size_t)(eol - p) > width)
            fail_msg("line longer than %zu: \"%.*s\"", width, (int)(eol - p), p);
        if (p != field && *p != ' ' && *p != '\t')
            fail_msg("continuation line without leading white space: \"%.*s\"", (int)(eol - p), p);
        p = eol + 2;
    }
}

static void expect_str(char *got, const char *want)
{
    assert_non_null(got);
    if (strcmp(got, want) != 0)
        fail_msg("got:\n%s\nexpected:\n%s", got, want);
    free(got);
}

static void test_date(void **state)
{
    (void)state;
    set_tz("UTC");
    expect_str(msg_header_date(T_NOV25), "Date: Wed, 25 Nov 2026 16:03:00 +0000 (UTC)\r\n");
    expect_str(msg_header_date(T_JUL1), "Date: Tue, 1 Jul 2003 10:52:37 +0000 (UTC)\r\n");
    expect_str(msg_header_date(0), "Date: Thu, 1 Jan 1970 00:00:00 +0000 (UTC)\r\n");
    /* POSIX TZ strings need no tzdata: east and west of UTC, half hours */
    set_tz("XYZ-5:30");
    expect_str(msg_header_date(T_NOV25), "Date: Wed, 25 Nov 2026 21:33:00 +0530 (XYZ)\r\n");
    set_tz("ABC10");
    expect_str(msg_header_date(T_NOV25), "Date: Wed, 25 Nov 2026 06:03:00 -1000 (ABC)\r\n");
    set_tz("<+03>-3");
    expect_str(msg_header_date(T_NOV25), "Date: Wed, 25 Nov 2026 19:03:00 +0300 (+03)\r\n");
    /* crossing midnight changes the day name too */
    set_tz("XYZ-9");
    expect_str(msg_header_date(T_NOV25), "Date: Thu, 26 Nov 2026 01:03:00 +0900 (XYZ)\r\n");
    set_tz("UTC");
}

static void test_message_id(void **state)
{
    (void)state;
    time_t before = time(NULL);
    char *id = msg_header_message_id("4B2C3D1E", "mx.example.org");
    time_t after = time(NULL);
    assert_non_null(id);
    int matched = 0;
    for (time_t t = before; t <= after; t++) {
        struct tm tm;
        gmtime_r(&t, &tm);
        char want[128];
        snprintf(want, sizeof want, "Message-ID: <%04d%02d%02d%02d%02d%02d.4B2C3D1E@mx.example.org>\r\n",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        if (strcmp(id, want) == 0)
            matched = 1;
    }
    if (!matched)
        fail_msg("unexpected Message-ID field: %s", id);
    free(id);

    id = msg_header_message_id("Q.1", "[192.0.2.1]");
    assert_non_null(id);
    assert_non_null(strstr(id, ".Q.1@[192.0.2.1]>\r\n"));
    free(id);

    assert_null(msg_header_message_id("", "h"));
    assert_null(msg_header_message_id("a b", "h"));
    assert_null(msg_header_message_id(".a", "h"));
    assert_null(msg_header_message_id("a", ""));
    assert_null(msg_header_message_id("a", "bad host"));
    assert_null(msg_header_message_id("a", "h>\r\nX: y"));
    assert_null(msg_header_message_id("a", "[1.2\\.3]"));
    assert_null(msg_header_message_id(NULL, "h"));
    assert_null(msg_header_message_id("a", NULL));
}

struct from_case {
    const char *addr;
    const char *name;
    const char *want; /* NULL: the builder must refuse */
};

static const struct from_case from_cases[] = {
    {"a@b", NULL, "From: a@b\r\n"},
    {"a@b", "", "From: a@b\r\n"},
    {"a@b", " \t\r\n ", "From: a@b\r\n"},
    {"a@b", "John Doe", "From: John Doe <a@b>\r\n"},
    {"a@b", "  John \t Doe  ", "From: John Doe <a@b>\r\n"},
    {"a@b", "John Q. Public", "From: \"John Q. Public\" <a@b>\r\n"},
    {"a@b", "Doe, John", "From: \"Doe, John\" <a@b>\r\n"},
    {"a@b", "He said \"hi\" \\o/", "From: \"He said \\\"hi\\\" \\\\o/\" <a@b>\r\n"},
    {"a@b", "John\r\nBcc: victim@x", "From: \"John Bcc: victim@x\" <a@b>\r\n"},
    {"a@b", "J\xc3\xb6rg M\xc3\xbcller", "From: =?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <a@b>\r\n"},
    {"a@b", "\xff\xfe", "From: =?unknown-8bit?Q?=FF=FE?= <a@b>\r\n"},
    {"a@b", "=?UTF-8?B?SGk=?=", "From: =?UTF-8?Q?=3D=3FUTF-8=3FB=3FSGk=3D=3F=3D?= <a@b>\r\n"},
    {"john doe@x", NULL, "From: \"john doe\"@x\r\n"},
    {"\"john doe\"@x", NULL, "From: \"john doe\"@x\r\n"},
    {"\"a\\\"b@c\"@x", "N", "From: N <\"a\\\"b@c\"@x>\r\n"},
    {"\"unterminated@x", NULL, "From: \"\\\"unterminated\"@x\r\n"},
    {"\"a\\\"@x", NULL, "From: \"\\\"a\\\\\\\"\"@x\r\n"},
    {"j\"q\\@x", "J", "From: J <\"j\\\"q\\\\\"@x>\r\n"},
    {"a@b@c", NULL, "From: \"a@b\"@c\r\n"},
    {"MAILER-DAEMON", NULL, "From: MAILER-DAEMON\r\n"},
    {"j\xc3\xb6rg@example.com", NULL, "From: j\xc3\xb6rg@example.com\r\n"},
    {"user@example.com",
     "Alexander Maximilian Bartholomew Christopherson-Worthington the Third of Somewhere",
     "From: Alexander Maximilian Bartholomew Christopherson-Worthington the Third of\r\n"
     " Somewhere <user@example.com>\r\n"},
    {"user@example.com",
     "Alexander M. Bartholomew, Christopherson-Worthington, the Third of Somewhere",
     "From: \"Alexander M. Bartholomew, Christopherson-Worthington, the Third of\r\n"
     " Somewhere\" <user@example.com>\r\n"},
    {"", "x", NULL},
    {NULL, "x", NULL},
    {"a\r\n@b", NULL, NULL},
    {"a\t@b", NULL, NULL},
};

static void test_from(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof from_cases / sizeof from_cases[0]; i++) {
        const struct from_case *c = &from_cases[i];
        char *got = msg_header_from(c->addr, c->name);
        if (c->want == NULL) {
            if (got != NULL)
                fail_msg("from(%s): expected NULL, got %s", c->addr ? c->addr : "NULL", got);
            continue;
        }
        assert_lines_within(got, 78);
        expect_str(got, c->want);
    }
}

/* Decodes the Q encoded-words of a From: field back into the name. */
static char *decode_q_words(const char *field)
{
    struct strbuf sb = STRBUF_INIT;
    const char *p = field;
    while ((p = strstr(p, "=?UTF-8?Q?")) != NULL) {
        p += 10;
        const char *end = strstr(p, "?=");
        assert_non_null(end);
        for (; p < end; p++) {
            if (*p == '_') {
                strbuf_putc(&sb, ' ');
            } else if (*p == '=') {
                unsigned v;
                assert_int_equal(sscanf(p + 1, "%2X", &v), 1);
                strbuf_putc(&sb, (char)v);
                p += 2;
            } else {
                strbuf_putc(&sb, *p);
            }
        }
        /* each encoded-word is whole, at most 75 characters */
        p = end + 2;
    }
    return strbuf_detach(&sb);
}

static void test_from_long_encoded(void **state)
{
    (void)state;
    /* 40 x "é " = 80 bytes, needs several encoded-words */
    struct strbuf name = STRBUF_INIT;
    for (int i = 0; i < 40; i++)
        strbuf_puts(&name, i ? " \xc3\xa9" : "\xc3\xa9");
    char *got = msg_header_from("a@b", strbuf_str(&name));
    assert_non_null(got);
    assert_lines_within(got, 78);
    assert_true(strncmp(got, "From: =?UTF-8?Q?", 16) == 0);
    assert_non_null(strstr(got, "?=\r\n =?UTF-8?Q?"));
    for (const char *w = got; (w = strstr(w, "=?")) != NULL;) {
        const char *end = strstr(w + strlen("=?UTF-8?Q?"), "?=");
        assert_non_null(end);
        assert_true((size_t)(end + 2 - w) <= 75);
        w = end + 2;
    }
    char *decoded = decode_q_words(got);
    assert_string_equal(decoded, strbuf_str(&name));
    /* no UTF-8 character is split between two words: each word decodes alone */
    free(decoded);
    assert_non_null(strstr(got, " <a@b>\r\n"));
    free(got);
    strbuf_free(&name);

    /* a space-free run too long to fold goes into encoded-words */
    char run[200];
    memset(run, 'x', sizeof run - 1);
    run[sizeof run - 1] = '\0';
    got = msg_header_from("a@b", run);
    assert_non_null(got);
    assert_lines_within(got, 78);
    decoded = decode_q_words(got);
    assert_string_equal(decoded, run);
    free(decoded);
    free(got);

    /* a run of exactly 60 stays a plain atom */
    run[60] = '\0';
    got = msg_header_from("a@b", run);
    assert_non_null(got);
    assert_null(strstr(got, "=?"));
    free(got);
}

static void test_received_smtp(void **state)
{
    (void)state;
    set_tz("UTC");
    struct msg_received r = {
        .helo = "helo.example", .client_name = "client.example", .client_addr = "192.0.2.7",
        .by_host = "mx.example.org", .protocol = "ESMTP", .queue_id = "4B2C3D",
        .for_rcpt = "user@example.org", .tls_info = NULL, .mail_name = "Tern", .when = T_NOV25,
    };
    expect_str(msg_header_received(&r),
               "Received: from helo.example (client.example [192.0.2.7])\r\n"
               "\tby mx.example.org (Tern) with ESMTP id 4B2C3D\r\n"
               "\tfor <user@example.org>; Wed, 25 Nov 2026 16:03:00 +0000 (UTC)\r\n");

    /* more than one recipient: no for clause; the date moves on when it must */
    r.for_rcpt = NULL;
    expect_str(msg_header_received(&r),
               "Received: from helo.example (client.example [192.0.2.7])\r\n"
               "\tby mx.example.org (Tern) with ESMTP id 4B2C3D;\r\n"
               "\tWed, 25 Nov 2026 16:03:00 +0000 (UTC)\r\n");
    r.by_host = "mx";
    expect_str(msg_header_received(&r),
               "Received: from helo.example (client.example [192.0.2.7])\r\n"
               "\tby mx (Tern) with ESMTP id 4B2C3D; Wed, 25 Nov 2026 16:03:00 +0000 (UTC)\r\n");
    r.by_host = "mx.example.org";

    /* TLS, as Postfix writes it, folded inside the comment when long */
    r.protocol = "ESMTPS";
    r.for_rcpt = "user@example.org";
    r.tls_info = "(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) "
                 "key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256)";
    char *got = msg_header_received(&r);
    assert_non_null(got);
    assert_lines_within(got, 78);
    expect_str(got,
               "Received: from helo.example (client.example [192.0.2.7])\r\n"
               "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange\r\n"
               "\tX25519 server-signature RSA-PSS (2048 bits) server-digest SHA256)\r\n"
               "\tby mx.example.org (Tern) with ESMTPS id 4B2C3D\r\n"
               "\tfor <user@example.org>; Wed, 25 Nov 2026 16:03:00 +0000 (UTC)\r\n");

    /* no HELO: the client name stands in; unknown name; IPv6 literal; default name */
    struct msg_received r6 = {
        .helo = NULL, .client_name = NULL, .client_addr = "2001:db8::1", .by_host = "mx",
        .protocol = "SMTP", .queue_id = "ID", .mail_name = NULL, .when = T_NOV25,
    };
    expect_str(msg_header_received(&r6),
               "Received: from unknown (unknown [IPv6:2001:db8::1])\r\n"
               "\tby mx (Tern) with SMTP id ID; Wed, 25 Nov 2026 16:03:00 +0000 (UTC)\r\n");
    r6.client_addr = "IPv6:2001:db8::2";
    r6.client_name = "c.example";
    expect_str(msg_header_received(&r6),
               "Received: from c.example (c.example [IPv6:2001:db8::2])\r\n"
               "\tby mx (Tern) with SMTP id ID; Wed, 25 Nov 2026 16:03:00 +0000 (UTC)\r\n");
}

static void test_received_hostile(void **state)
{
    (void)state;
    set_tz("UTC");
    struct msg_received r = {
        .helo = "evil\r\nX-Injected: yes (x) ;\"", .client_name = "c(x)",
        .client_addr = "192.0.2.7", .by_host = "mx", .protocol = "ESMTP", .queue_id = "ID",
        .for_rcpt = "\"a\r\nb\"@x", .mail_name = "Tern", .when = T_NOV25,
    };
    expect_str(msg_header_received(&r),
               "Received: from evil??X-Injected:?yes??x???? (c?x? [192.0.2.7])\r\n"
               "\tby mx (Tern) with ESMTP id ID\r\n"
               "\tfor <\"a??b\"@x>; Wed, 25 Nov 2026 16:03:00 +0000 (UTC)\r\n");

    /* a HELO too long for one line: folded before the comment, nothing cut */
    char helo[300];
    memset(helo, 'h', sizeof helo - 1);
    helo[sizeof helo - 1] = '\0';
    r.helo = helo;
    r.client_name = "c.example";
    r.for_rcpt = NULL;
    char *got = msg_header_received(&r);
    assert_non_null(got);
    assert_non_null(strstr(got, helo));
    assert_non_null(strstr(got, helo + 200));
    char *want_start = xasprintf("Received: from %s\r\n\t(c.example [192.0.2.7])\r\n", helo);
    assert_true(strncmp(got, want_start, strlen(want_start)) == 0);
    free(want_start);
    free(got);
}

static void test_received_local(void **state)
{
    (void)state;
    set_tz("UTC");
    struct msg_received r = {
        .client_addr = NULL, .by_host = "host.example", .queue_id = "4B2C3D", .uid = 1000,
        .mail_name = "Tern", .when = T_NOV25,
    };
    expect_str(msg_header_received(&r),
               "Received: by host.example (Tern, from userid 1000)\r\n"
               "\tid 4B2C3D; Wed, 25 Nov 2026 16:03:00 +0000 (UTC)\r\n");
    r.for_rcpt = "bob@example.com";
    r.uid = 0;
    expect_str(msg_header_received(&r),
               "Received: by host.example (Tern, from userid 0)\r\n"
               "\tid 4B2C3D\r\n"
               "\tfor <bob@example.com>; Wed, 25 Nov 2026 16:03:00 +0000 (UTC)\r\n");
    /* what the builder writes must scan as one Received field */
    char *got = msg_header_received(&r);
    struct msg_header_info h;
    assert_int_equal(msg_header_scan(got, strlen(got), &h), 0);
    assert_int_equal(h.received_count, 1);
    assert_int_equal(h.header_len, strlen(got));
    assert_int_equal(h.malformed, 0);
    msg_header_info_free(&h);
    free(got);
}

/* ---------------------------------------------------------------------------
 * msg_header_remove_field */

struct remove_case {
    const char *name;
    const char *field;
    const char *in;
    const char *want;
};

static const struct remove_case remove_cases[] = {
    {"with continuation", "Bcc", "To: a\r\nBcc: b,\r\n  c\r\nSubject: s\r\n\r\nBcc: body\r\n",
     "To: a\r\nSubject: s\r\n\r\nBcc: body\r\n"},
    {"last field, no newline", "Bcc", "To: a\r\nBcc: b", "To: a\r\n"},
    {"last field before separator", "Bcc", "To: a\nBcc: b\n c\n\nbody", "To: a\n\nbody"},
    {"first field", "Bcc", "bcc: x\nTo: a\n", "To: a\n"},
    {"all fields", "Bcc", "Bcc: 1\nBCC: 2\n\t2b\nBcc: 3\n", ""},
    {"similar names kept", "Bcc", "Bccx: 1\nX-Bcc: 2\nResent-Bcc: 3\n\n", "Bccx: 1\nX-Bcc: 2\nResent-Bcc: 3\n\n"},
    {"white space before colon", "Bcc", "Bcc : x\nTo: a\n", "To: a\n"},
    {"no header: nothing touched", "Bcc", "body\nBcc: x\n", "body\nBcc: x\n"},
    {"stops at a body line", "Bcc", "To: a\nbody\nBcc: x\n", "To: a\nbody\nBcc: x\n"},
    {"only the separator follows", "Bcc", "Bcc: x\r\n\r\n", "\r\n"},
    {"empty input", "Bcc", "", ""},
    {"other name", "Subject", "Subject: a\n b\nTo: c\n", "To: c\n"},
};

static void test_remove_field(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof remove_cases / sizeof remove_cases[0]; i++) {
        const struct remove_case *c = &remove_cases[i];
        size_t len = strlen(c->in);
        char *buf = xmalloc(len + 1);
        memcpy(buf, c->in, len);
        size_t got = msg_header_remove_field(buf, len, c->field);
        if (got != strlen(c->want) || memcmp(buf, c->want, got) != 0)
            fail_msg("%s: got \"%.*s\" (%zu), expected \"%s\"", c->name, (int)got, buf, got, c->want);
        /* removing again changes nothing */
        assert_int_equal(msg_header_remove_field(buf, got, c->field), got);
        struct msg_header_info h;
        msg_header_scan(buf, got, &h);
        if (strcmp(c->field, "Bcc") == 0)
            assert_int_equal(h.has_bcc, 0);
        msg_header_info_free(&h);
        free(buf);
    }
    char buf[] = "Bcc: x\n";
    assert_int_equal(msg_header_remove_field(buf, 7, NULL), 7);
    assert_int_equal(msg_header_remove_field(buf, 7, ""), 7);
    assert_int_equal(msg_header_remove_field(NULL, 0, "Bcc"), 0);
    assert_string_equal(buf, "Bcc: x\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan_table),
        cmocka_unit_test(test_scan_nul_and_bounds),
        cmocka_unit_test(test_date),
        cmocka_unit_test(test_message_id),
        cmocka_unit_test(test_from),
        cmocka_unit_test(test_from_long_encoded),
        cmocka_unit_test(test_received_smtp),
        cmocka_unit_test(test_received_hostile),
        cmocka_unit_test(test_received_local),
        cmocka_unit_test(test_remove_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
