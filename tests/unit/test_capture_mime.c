/* Tests for capture_mime (with capture_mime_text, capture_mime_html and
 * capture_mime_scan): the JSON view of real-looking messages (plain, CRLF
 * and LF, alternative, mixed with attachments named by RFC 2231 and RFC
 * 2047, an attached message, charsets, encoded words), the download of one
 * part, broken input (truncated base64, missing boundaries, NUL bytes, a
 * 10,000-part bomb, deep nesting) hitting the bounds instead of crashing, and
 * the link and one-time code rules of capture_mime_scan.h, both ways. Every
 * view is also checked for its shape and for valid UTF-8 without NUL in
 * every string. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture/capture_mime.h"
#include "capture/capture_mime_scan.h"
#include "test_fixture.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

/* ---- helpers ------------------------------------------------------------ */

static void check_strings(const json_t *j)
{
    size_t i;
    const char *key;
    json_t *v;
    switch (json_typeof(j)) {
    case JSON_STRING:
        assert_true(str_is_utf8(json_string_value(j), json_string_length(j)));
        assert_int_equal(strlen(json_string_value(j)), json_string_length(j));
        break;
    case JSON_ARRAY:
        json_array_foreach(j, i, v) check_strings(v);
        break;
    case JSON_OBJECT:
        json_object_foreach((json_t *)j, key, v) check_strings(v);
        break;
    default:
        break;
    }
}

/* The view, with its shape and strings checked. */
static json_t *view_with(const char *msg, size_t len, const struct capture_mime_limits *lim)
{
    json_t *v = capture_mime_view(msg, len, lim);
    assert_non_null(v);
    static const char *const arrays[] = {"headers", "from", "to", "cc", "reply_to", "parts", "attachments",
                                         "links", "codes"};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++)
        assert_true(json_is_array(json_object_get(v, arrays[i])));
    assert_true(json_is_string(json_object_get(v, "subject")));
    static const char *const nullable[] = {"message_id", "date", "text", "html"};
    for (size_t i = 0; i < sizeof nullable / sizeof nullable[0]; i++) {
        json_t *f = json_object_get(v, nullable[i]);
        assert_true(json_is_string(f) || json_is_null(f));
    }
    assert_true(json_is_boolean(json_object_get(v, "truncated")));
    check_strings(v);
    return v;
}

static json_t *view(const char *msg)
{
    return view_with(msg, strlen(msg), NULL);
}

static const char *str_of(json_t *v, const char *key)
{
    return json_string_value(json_object_get(v, key));
}

static int truncated(json_t *v)
{
    return json_is_true(json_object_get(v, "truncated"));
}

static size_t count_of(json_t *v, const char *key)
{
    return json_array_size(json_object_get(v, key));
}

/* The string at index i of array key. */
static const char *item(json_t *v, const char *key, size_t i)
{
    return json_string_value(json_array_get(json_object_get(v, key), i));
}

static const char *field(json_t *v, const char *key, size_t i, const char *name)
{
    return json_string_value(json_object_get(json_array_get(json_object_get(v, key), i), name));
}

/* The codes found in a message with this subject and text body, joined by
 * commas ("" when none); a static buffer. */
static const char *codes_of(const char *subject, const char *text)
{
    static char out[512];
    char *msg = xasprintf("From: a@example.com\r\nSubject: %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                          "\r\n%s\r\n", subject, text);
    json_t *v = view(msg);
    out[0] = '\0';
    for (size_t i = 0; i < count_of(v, "codes"); i++) {
        if (i)
            strcat(out, ",");
        strcat(out, item(v, "codes", i));
    }
    json_decref(v);
    free(msg);
    return out;
}

/* ---- plain messages ----------------------------------------------------- */

#define PLAIN_HEADER \
    "Received: from app.example.net (app.example.net [192.0.2.7])\r\n" \
    "\tby mx.example.com (Tern) with ESMTP id 0123456789ABC; Sun, 6 Dec 2026 21:22:45 +0100\r\n" \
    "From: \"Jane Doe\" <jane@example.net>\r\n" \
    "To: bob@example.com, \"Carol, Q.\" <carol@example.com>\r\n" \
    "Cc: Team: dan@example.com, erin@example.com;\r\n" \
    "Reply-To: =?UTF-8?Q?J=C3=B6rg?= <joerg@example.net>\r\n" \
    "Subject: Welcome to\r\n Example\r\n" \
    "Date: Sun, 6 Dec 2026 21:22:45 +0100\r\n" \
    "Message-ID: <abc.123@example.net>\r\n" \
    "MIME-Version: 1.0\r\n" \
    "Content-Type: text/plain; charset=utf-8\r\n"

static void check_plain(json_t *v)
{
    assert_string_equal(str_of(v, "subject"), "Welcome to Example");
    assert_string_equal(str_of(v, "message_id"), "abc.123@example.net");
    assert_string_equal(str_of(v, "date"), "2026-12-06T21:22:45+01:00");
    assert_int_equal(count_of(v, "from"), 1);
    assert_string_equal(field(v, "from", 0, "name"), "Jane Doe");
    assert_string_equal(field(v, "from", 0, "address"), "jane@example.net");
    assert_int_equal(count_of(v, "to"), 2);
    assert_string_equal(field(v, "to", 0, "name"), "");
    assert_string_equal(field(v, "to", 1, "name"), "Carol, Q.");
    assert_string_equal(field(v, "to", 1, "address"), "carol@example.com");
    assert_int_equal(count_of(v, "cc"), 2); /* the group's members */
    assert_string_equal(field(v, "cc", 1, "address"), "erin@example.com");
    assert_string_equal(field(v, "reply_to", 0, "name"), "J\xc3\xb6rg");
    assert_string_equal(str_of(v, "text"), "Hello Bob,\n\nthanks for signing up.\n");
    assert_true(json_is_null(json_object_get(v, "html")));
    assert_int_equal(count_of(v, "parts"), 1);
    assert_int_equal(count_of(v, "attachments"), 0);
    assert_string_equal(field(v, "parts", 0, "content_type"), "text/plain");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(json_object_get(v, "parts"), 0), "size")),
                     strlen("Hello Bob,\r\n\r\nthanks for signing up.\r\n"));
    assert_int_equal(count_of(v, "headers"), 10);
    assert_string_equal(field(v, "headers", 0, "name"), "Received");
    assert_string_equal(field(v, "headers", 5, "name"), "Subject");
    assert_string_equal(field(v, "headers", 5, "value"), "Welcome to Example");
    assert_false(truncated(v));
}

static void test_plain(void **state)
{
    (void)state;
    json_t *v = view(PLAIN_HEADER "\r\nHello Bob,\r\n\r\nthanks for signing up.\r\n");
    check_plain(v);
    json_decref(v);
}

/* The same message with LF line ends: the same view (the size aside). */
static void test_plain_lf(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    const char *crlf = PLAIN_HEADER "\r\nHello Bob,\r\n\r\nthanks for signing up.\r\n";
    for (const char *p = crlf; *p; p++)
        if (*p != '\r')
            strbuf_putc(&sb, *p);
    json_t *v = view_with(sb.buf, sb.len, NULL);
    assert_string_equal(str_of(v, "text"), "Hello Bob,\n\nthanks for signing up.\n");
    assert_string_equal(str_of(v, "subject"), "Welcome to Example");
    assert_int_equal(count_of(v, "headers"), 10);
    json_decref(v);
    strbuf_free(&sb);
}

/* ---- multipart ---------------------------------------------------------- */

static const char alternative[] =
    "From: shop@example.net\r\nTo: bob@example.com\r\nSubject: Confirm your address\r\n"
    "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"=_alt\"\r\n\r\n"
    "This is a MIME message.\r\n"
    "--=_alt\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
    "Confirm here: https://shop.example.net/confirm?t=abc&u=1.\r\n"
    "Docs (see https://en.wikipedia.org/wiki/Foo_(bar)) and <https://shop.example.net/help>\r\n"
    "Not links: ftp://files.example.net/x javascript:alert(1) xhttps://evil.example/\r\n"
    "--=_alt\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    "<html><head><title>T 999999</title><style>p{color:#123456}</style></head><body>\r\n"
    "<p>Click <a href=3D\"https://shop.example.net/confirm?t=3Dabc&amp;u=3D1\">confirm</a>=\r\n"
    " or <A HREF=3D' https://shop.example.net/other '>other</A>.</p>\r\n"
    "<a href=3D\"javascript:alert(1)\">x</a><a href=3D\"data:text/html,hi\">y</a>\r\n"
    "<a href=3D\"mailto:help@example.net\">m</a><a href=3D\"/relative\">r</a>\r\n"
    "<map><area href=3D\"http://shop.example.net/area\"></map>\r\n"
    "<a href=3D\"https://shop.example.net/help\">again</a>\r\n"
    "</body></html>\r\n"
    "--=_alt--\r\n";

static void test_alternative(void **state)
{
    (void)state;
    json_t *v = view(alternative);
    assert_true(strstr(str_of(v, "text"), "Confirm here:") == str_of(v, "text"));
    assert_non_null(strstr(str_of(v, "html"), "<a href=\"https://shop.example.net/confirm?t=abc&amp;u=1\">"));
    assert_int_equal(count_of(v, "parts"), 2);
    assert_int_equal(count_of(v, "attachments"), 0);
    assert_string_equal(field(v, "parts", 1, "content_type"), "text/html");
    assert_true(json_is_null(json_object_get(json_array_get(json_object_get(v, "parts"), 1), "filename")));
    static const char *const links[] = {
        "https://shop.example.net/confirm?t=abc&u=1", "https://en.wikipedia.org/wiki/Foo_(bar)",
        "https://shop.example.net/help", "https://shop.example.net/other", "http://shop.example.net/area",
    };
    assert_int_equal(count_of(v, "links"), 5);
    for (size_t i = 0; i < 5; i++)
        assert_string_equal(item(v, "links", i), links[i]);
    /* The title and the style's colour are never read as codes. */
    assert_int_equal(count_of(v, "codes"), 0);
    json_decref(v);
}

static const char mixed[] =
    "From: reports@example.net\r\nTo: bob@example.com\r\nSubject: Your files\r\n"
    "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=mixed-1\r\n\r\n"
    "--mixed-1\r\nContent-Type: multipart/related; boundary=rel-2\r\n\r\n"
    "--rel-2\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>See <img src=\"cid:logo@x\"></p>\r\n"
    "--rel-2\r\nContent-Type: image/png; name=\"logo.png\"\r\nContent-ID: <logo@x>\r\n"
    "Content-Disposition: inline\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n"
    "--rel-2--\r\n"
    "--mixed-1\r\nContent-Type: application/pdf\r\n"
    "Content-Disposition: attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf\r\n"
    "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcfsj6IK\r\n"
    "--mixed-1\r\nContent-Type: application/octet-stream\r\n"
    "Content-Disposition: attachment;\r\n filename*0*=UTF-8''%C3%BCber%20;\r\n filename*1=\"lange Namen.bin\"\r\n\r\n"
    "xyz\r\n"
    "--mixed-1\r\nContent-Type: text/plain; charset=iso-8859-1;\r\n name=\"=?UTF-8?B?w7xiZXIudHh0?=\"\r\n"
    "Content-Disposition: attachment\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    "Gr=FC=DFe=\r\n aus K=F6ln\r\n"
    "--mixed-1--\r\n";

static void test_mixed_attachments(void **state)
{
    (void)state;
    json_t *v = view(mixed);
    assert_true(json_is_null(json_object_get(v, "text"))); /* the only text/plain is an attachment */
    assert_string_equal(str_of(v, "html"), "<p>See <img src=\"cid:logo@x\"></p>");
    assert_int_equal(count_of(v, "parts"), 5);
    assert_int_equal(count_of(v, "attachments"), 4);
    json_t *logo = json_array_get(json_object_get(v, "attachments"), 0);
    assert_int_equal(json_integer_value(json_object_get(logo, "part")), 2);
    assert_string_equal(json_string_value(json_object_get(logo, "filename")), "logo.png");
    assert_string_equal(json_string_value(json_object_get(logo, "disposition")), "inline");
    assert_string_equal(json_string_value(json_object_get(logo, "content_id")), "logo@x");
    assert_int_equal(json_integer_value(json_object_get(logo, "size")), 8);
    assert_string_equal(field(v, "attachments", 1, "filename"), "r\xc3\xa9sum\xc3\xa9.pdf");
    assert_string_equal(field(v, "attachments", 1, "disposition"), "attachment");
    assert_string_equal(field(v, "attachments", 2, "filename"), "\xc3\xbc" "ber lange Namen.bin"); /* RFC 2231 continued */
    assert_string_equal(field(v, "attachments", 3, "filename"), "\xc3\xbc" "ber.txt");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(json_object_get(v, "parts"), 2), "size")), 15);

    struct capture_mime_part_content c;
    assert_int_equal(capture_mime_part(mixed, strlen(mixed), 3, NULL, &c), 0);
    assert_int_equal(c.len, 15);
    assert_memory_equal(c.data, "%PDF-1.4\n%\xc7\xec\x8f\xa2\n", 15);
    assert_string_equal(c.content_type, "application/pdf");
    assert_string_equal(c.filename, "r\xc3\xa9sum\xc3\xa9.pdf");
    capture_mime_part_content_free(&c);
    assert_int_equal(capture_mime_part(mixed, strlen(mixed), 5, NULL, &c), 0);
    assert_string_equal(c.data, "Gr\xfc\xdf" "e aus K\xf6ln"); /* the charset stays the part's */
    assert_string_equal(c.content_type, "text/plain; charset=iso-8859-1");
    capture_mime_part_content_free(&c);
    assert_int_equal(capture_mime_part(mixed, strlen(mixed), 2, NULL, &c), 0);
    assert_memory_equal(c.data, "\x89PNG\r\n\x1a\n", 8);
    assert_string_equal(c.content_type, "image/png");
    capture_mime_part_content_free(&c);
    assert_int_equal(capture_mime_part(mixed, strlen(mixed), 0, NULL, &c), -1);
    assert_int_equal(capture_mime_part(mixed, strlen(mixed), 6, NULL, &c), -1);
    assert_null(c.data);
    json_decref(v);
}

/* The download's content type may go into an HTTP header: only token
 * characters get there. */
static void test_part_content_type(void **state)
{
    (void)state;
    static const char msg[] = "Content-Type: text/plain; charset=\"utf-8\\r\\nX-Evil: 1\"\r\n"
                              "Content-Disposition: attachment; filename=\"a\tb.txt\"\r\n\r\nx";
    struct capture_mime_part_content c;
    assert_int_equal(capture_mime_part(msg, strlen(msg), 1, NULL, &c), 0);
    assert_string_equal(c.content_type, "text/plain");
    assert_string_equal(c.filename, "a b.txt");
    capture_mime_part_content_free(&c);
    static const char odd[] = "Content-Type: te\"xt/pl ain\r\n\r\nx";
    assert_int_equal(capture_mime_part(odd, strlen(odd), 1, NULL, &c), 0);
    assert_null(strpbrk(c.content_type, "\" \r\n"));
    capture_mime_part_content_free(&c);
}

/* An attached message: its leaves are numbered and listed, never the body. */
static void test_attached_message(void **state)
{
    (void)state;
    static const char msg[] =
        "From: a@example.com\r\nSubject: Fwd: report\r\n"
        "Content-Type: multipart/mixed; boundary=b1\r\n\r\n"
        "--b1\r\nContent-Type: text/plain\r\n\r\nSee the attached message.\r\n"
        "--b1\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename=orig.eml\r\n\r\n"
        "From: b@example.com\r\nSubject: original\r\nContent-Type: multipart/alternative; boundary=b2\r\n\r\n"
        "--b2\r\nContent-Type: text/plain\r\n\r\ninner text\r\n"
        "--b2\r\nContent-Type: text/html\r\n\r\n<p>inner html</p>\r\n--b2--\r\n"
        "--b1--\r\n";
    json_t *v = view(msg);
    assert_string_equal(str_of(v, "text"), "See the attached message.");
    assert_true(json_is_null(json_object_get(v, "html")));
    assert_int_equal(count_of(v, "parts"), 3);
    assert_string_equal(field(v, "parts", 2, "content_type"), "text/html");
    assert_int_equal(count_of(v, "attachments"), 0);
    struct capture_mime_part_content c;
    assert_int_equal(capture_mime_part(msg, strlen(msg), 2, NULL, &c), 0);
    assert_string_equal(c.data, "inner text");
    assert_null(c.filename);
    capture_mime_part_content_free(&c);
    json_decref(v);
}

/* ---- charsets and encoded words ----------------------------------------- */

static const char *text_in(const char *charset_and_encoding, const char *body, char *out, size_t outsize)
{
    char *msg = xasprintf("Subject: t\r\nContent-Type: text/plain%s\r\n\r\n%s", charset_and_encoding, body);
    json_t *v = view(msg);
    const char *t = str_of(v, "text");
    assert_non_null(t);
    snprintf(out, outsize, "%s", t);
    json_decref(v);
    free(msg);
    return out;
}

static void test_charsets(void **state)
{
    (void)state;
    char out[256];
    assert_string_equal(text_in("; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable",
                                "caf=E9 cr=E8me", out, sizeof out), "caf\xc3\xa9 cr\xc3\xa8me");
    assert_string_equal(text_in("; charset=windows-1252", "\x80 5 \x93quoted\x94", out, sizeof out),
                        "\xe2\x82\xac 5 \xe2\x80\x9cquoted\xe2\x80\x9d");
    assert_string_equal(text_in("; charset=Shift_JIS", "\x93\xfa\x96\x7b\x8c\xea", out, sizeof out),
                        "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e");
    assert_string_equal(text_in("; charset=iso-2022-jp", "\x1b$BF|K\\\x1b(B ok", out, sizeof out),
                        "\xe6\x97\xa5\xe6\x9c\xac ok");
    /* Unknown or missing charset: UTF-8 if it is, else windows-1252. */
    assert_string_equal(text_in("; charset=x-no-such", "caf\xe9", out, sizeof out), "caf\xc3\xa9");
    assert_string_equal(text_in("", "caf\xc3\xa9", out, sizeof out), "caf\xc3\xa9");
    assert_string_equal(text_in("; charset=us-ascii", "caf\xe9", out, sizeof out), "caf\xc3\xa9");
    /* Declared UTF-8 that is not: each bad byte one U+FFFD. */
    assert_string_equal(text_in("; charset=utf-8", "a\xff\xc3(b", out, sizeof out),
                        "a\xef\xbf\xbd\xef\xbf\xbd(b");
    /* A byte the charset does not define. */
    assert_string_equal(text_in("; charset=windows-1252", "x\x81y", out, sizeof out), "x\xef\xbf\xbdy");
    /* Long enough for several iconv slices, with characters cut by their ends. */
    struct strbuf sjis = STRBUF_INIT, want = STRBUF_INIT;
    strbuf_puts(&sjis, "Subject: t\r\nContent-Type: text/plain; charset=shift_jis\r\n\r\na");
    strbuf_putc(&want, 'a');
    for (int i = 0; i < 600; i++) {
        strbuf_puts(&sjis, "\x93\xfa\x96\x7b");
        strbuf_puts(&want, "\xe6\x97\xa5\xe6\x9c\xac");
    }
    strbuf_puts(&sjis, "\x93");                 /* cut off at the end */
    strbuf_puts(&want, "\xef\xbf\xbd");
    json_t *long_view = view_with(sjis.buf, sjis.len, NULL);
    assert_string_equal(str_of(long_view, "text"), want.buf);
    json_decref(long_view);
    strbuf_free(&sjis);
    strbuf_free(&want);

    /* NUL and other controls in a body. */
    char msg[] = "Subject: t\r\n\r\na\0b\x01" "c\td\r\n";
    json_t *v = view_with(msg, sizeof msg - 1, NULL);
    assert_string_equal(str_of(v, "text"), "a\xef\xbf\xbd" "b\xef\xbf\xbd" "c\td\n");
    json_decref(v);
}

static void test_encoded_words(void **state)
{
    (void)state;
    json_t *v = view("From: =?iso-8859-1?Q?Andr=E9?= Martin <andre@example.net>\r\n"
                     "Subject: =?UTF-8?B?w4lsw6h2ZQ==?= =?UTF-8?Q?_de_l=27=C3=A9cole?=\r\n"
                     "X-Raw: caf\xe9 8-bit\r\n"
                     "X-Bad: =?x-unknown?Q?abc?= =?utf-8?B?!!!?=\r\n\r\nbody\r\n");
    assert_string_equal(str_of(v, "subject"), "\xc3\x89l\xc3\xa8ve de l'\xc3\xa9" "cole");
    assert_string_equal(field(v, "from", 0, "name"), "Andr\xc3\xa9 Martin");
    assert_string_equal(field(v, "headers", 2, "value"), "caf\xc3\xa9 8-bit");
    assert_non_null(field(v, "headers", 3, "value"));
    json_decref(v);
}

/* ---- broken input and bounds --------------------------------------------- */

static void test_broken(void **state)
{
    (void)state;
    /* Truncated base64, no closing boundary. */
    static const char cut[] =
        "Subject: cut\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n"
        "--zz\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\nSGVsbG8gd29y\r\n"
        "--zz\r\nContent-Type: application/octet-stream; name=a.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        "AAEC!!A";
    json_t *v = view(cut);
    assert_string_equal(str_of(v, "text"), "Hello wor");
    assert_int_equal(count_of(v, "parts"), 2);
    assert_int_equal(count_of(v, "attachments"), 1);
    json_decref(v);

    /* A multipart without a boundary parameter, header only, nothing at all. */
    static const char *const others[] = {
        "Content-Type: multipart/mixed\r\n\r\n--x\r\n\r\nhi\r\n",
        "Subject: only a header\r\n",
        "",
        "\r\n\r\n",
        "no header at all, just text\r\n",
        "Content-Type: text/plain; charset=\"\r\nContent-Transfer-Encoding: x-uue\r\n\r\n\xff\xfe\r\n",
        "Content-Type: /\r\nContent-Disposition: ;;;\r\n\r\nx",
        "Date: Mon, 99 Foo 12345 99:99:99 +9999\r\nFrom: <<<@>>>, ;;\r\nTo: \"unterminated\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
        json_decref(view(others[i]));
    v = view("Date: the day after tomorrow\r\nFrom: nobody\r\n\r\nx");
    assert_true(json_is_null(json_object_get(v, "date")));
    json_decref(v);

    /* An empty part downloads as empty (fuzz_capture_mime found the copy of
     * nothing from GLib's NULL buffer). */
    static const char empty[] = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n--b--\r\n";
    struct capture_mime_part_content c;
    assert_int_equal(capture_mime_part(empty, strlen(empty), 1, NULL, &c), 0);
    assert_int_equal(c.len, 0);
    assert_string_equal(c.data, "");
    capture_mime_part_content_free(&c);

    /* NUL bytes in the header. */
    static const char nul[] = "Subject: a\0b\r\nX-Y: \0\r\n\r\nbody";
    v = view_with(nul, sizeof nul - 1, NULL);
    json_decref(v);
    v = view_with(NULL, 0, NULL);
    assert_int_equal(count_of(v, "parts"), 0);
    json_decref(v);
}

static void test_part_bomb(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    strbuf_puts(&sb, "Subject: bomb\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n");
    for (int i = 0; i < 10000; i++)
        strbuf_printf(&sb, "--B\r\nContent-Type: application/octet-stream; name=f%d\r\n\r\nx\r\n", i);
    strbuf_puts(&sb, "--B--\r\n");
    json_t *v = view_with(sb.buf, sb.len, NULL);
    assert_int_equal(count_of(v, "parts"), 1000);
    assert_true(truncated(v));
    struct capture_mime_part_content c;
    assert_int_equal(capture_mime_part(sb.buf, sb.len, 1000, NULL, &c), 0);
    assert_string_equal(c.filename, "f999");
    capture_mime_part_content_free(&c);
    assert_int_equal(capture_mime_part(sb.buf, sb.len, 1001, NULL, &c), -1);
    json_decref(v);
    strbuf_free(&sb);
}

static void test_deep_nesting(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    strbuf_puts(&sb, "Subject: deep\r\n");
    for (int i = 0; i < 2000; i++) {
        if (i % 3 == 2)
            strbuf_puts(&sb, "Content-Type: message/rfc822\r\n\r\n");
        else
            strbuf_printf(&sb, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i);
    }
    strbuf_puts(&sb, "Content-Type: text/plain\r\n\r\nleaf\r\n");
    json_t *v = view_with(sb.buf, sb.len, NULL);
    assert_int_equal(count_of(v, "parts"), 0);
    assert_true(truncated(v));
    json_decref(v);
    strbuf_free(&sb);

    /* Just inside the bound: 32 containers, then the leaf. */
    strbuf_puts(&sb, "Subject: deep\r\n");
    for (int i = 0; i < 32; i++)
        strbuf_printf(&sb, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i);
    strbuf_puts(&sb, "Content-Type: text/plain\r\n\r\nleaf\r\n");
    v = view_with(sb.buf, sb.len, NULL);
    assert_int_equal(count_of(v, "parts"), 1);
    assert_string_equal(str_of(v, "text"), "leaf\n");
    assert_false(truncated(v));
    json_decref(v);
    strbuf_free(&sb);
}

static void test_size_limits(void **state)
{
    (void)state;
    struct capture_mime_limits lim = capture_mime_default_limits;
    lim.max_text_bytes = 8;
    lim.max_header_value_bytes = 5;
    lim.max_headers = 2;
    /* "ab" + three 3-byte characters: the cut falls inside the third. */
    json_t *v = view_with("Subject: 1234567\r\nX-A: b\r\nX-B: c\r\n\r\nab\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac",
                          strlen("Subject: 1234567\r\nX-A: b\r\nX-B: c\r\n\r\nab\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"),
                          &lim);
    assert_string_equal(str_of(v, "text"), "ab\xe2\x82\xac\xe2\x82\xac");
    assert_string_equal(str_of(v, "subject"), "12345");
    assert_int_equal(count_of(v, "headers"), 2);
    assert_true(truncated(v));
    json_decref(v);

    lim = capture_mime_default_limits;
    lim.max_links = 3;
    v = view_with("Subject: l\r\n\r\nhttp://a.example/ http://b.example/ http://a.example/ http://c.example/ "
                  "http://d.example/\r\n", 97, &lim);
    assert_int_equal(count_of(v, "links"), 3);
    assert_string_equal(item(v, "links", 2), "http://c.example/");
    assert_true(truncated(v));
    json_decref(v);
}

/* ---- links ---------------------------------------------------------------- */

static void test_web_link_rule(void **state)
{
    (void)state;
    assert_true(capture_mime_scan_is_web_link("https://example.com/x", 21));
    assert_true(capture_mime_scan_is_web_link("HTTP://EXAMPLE.COM", 18));
    assert_false(capture_mime_scan_is_web_link("https://", 8));
    assert_false(capture_mime_scan_is_web_link("https:///path", 13));
    assert_false(capture_mime_scan_is_web_link("javascript:alert(1)", 19));
    assert_false(capture_mime_scan_is_web_link("data:text/html,x", 16));
    assert_false(capture_mime_scan_is_web_link("mailto:a@b", 10));
    assert_false(capture_mime_scan_is_web_link("https://a b", 11));
    assert_false(capture_mime_scan_is_web_link("//example.com", 13));
}

static void test_html_links_entities(void **state)
{
    (void)state;
    json_t *v = view("Subject: h\r\nContent-Type: text/html\r\n\r\n"
                     "<a href=\"&#104;ttps://x.example/&#x61;?a=1&amp;b=2\">x</a>"
                     "<a title='x > y' href=https://y.example/unquoted>y</a>"
                     "<a href=\"https://z.example/\n/split\">z</a><!-- <a href=\"https://hidden.example/\"> -->"
                     "<script>var s = '<a href=\"https://script.example/\">';</script>"
                     "<a name=\"n\">no href</a><a href=\"  JavaScript:evil()\">j</a>");
    assert_int_equal(count_of(v, "links"), 3);
    assert_string_equal(item(v, "links", 0), "https://x.example/a?a=1&b=2");
    assert_string_equal(item(v, "links", 1), "https://y.example/unquoted");
    assert_string_equal(item(v, "links", 2), "https://z.example//split");
    json_decref(v);
}

/* ---- one-time codes -------------------------------------------------------- */

static void test_codes_found(void **state)
{
    (void)state;
    assert_string_equal(codes_of("Sign in", "Your verification code is 482913."), "482913");
    assert_string_equal(codes_of("Sign in", "Your code: 123 456"), "123456");
    assert_string_equal(codes_of("Sign in", "Security code - 1234-5678 - expires soon"), "12345678");
    assert_string_equal(codes_of("Sign in", "Use the one-time passcode K7PX2M to continue"), "K7PX2M");
    assert_string_equal(codes_of("Sign in", "Your PIN:\r\n\r\n    4821\r\n"), "4821");
    assert_string_equal(codes_of("482913 is your login code", "Welcome back."), "482913");
    assert_string_equal(codes_of("Your OTP", "Hello,\r\n\r\n739201\r\n\r\nIt expires in 10 minutes."), "739201");
    assert_string_equal(codes_of("Verify", "Enter this token, \"AB12CD34\", in the app."), "AB12CD34");
    assert_string_equal(codes_of("Hi", "Hello,\r\n739201 is your Example verification code.\r\n"), "739201");
    /* Codes in the subject and the body, each once, in order. */
    assert_string_equal(codes_of("Your code is 111111", "code: 111111, backup code: 222222"), "111111,222222");
    /* From the HTML, read as text. */
    json_t *v = view("Subject: Your sign-in\r\nContent-Type: text/html\r\n\r\n"
                     "<table><tr><td>Verification&nbsp;code:</td><td><strong>90&#50;817</strong></td></tr></table>");
    assert_int_equal(count_of(v, "codes"), 1);
    assert_string_equal(item(v, "codes", 0), "902817");
    json_decref(v);
}

static void test_codes_not_found(void **state)
{
    (void)state;
    /* No keyword anywhere. */
    assert_string_equal(codes_of("Your order", "Order 12345678 ships soon.\r\n\r\n445566\r\n"), "");
    /* Dates, times, years in a date. */
    assert_string_equal(codes_of("Your code", "code sent 2026-12-06 at 12:30, code valid until Dec 6, 2026"), "");
    assert_string_equal(codes_of("Your code", "code expires 06/12/2026 or 6.12.2026"), "");
    /* Phone numbers, prices, amounts. */
    assert_string_equal(codes_of("Code", "code? call +1 555 123 4567 or 555-123-4567"), "");
    assert_string_equal(codes_of("Code", "code costs $1234, or 1234 USD, or EUR 5678, or 1,234.50"), "");
    /* Parts of URLs, e-mail addresses and other words. */
    assert_string_equal(codes_of("Code", "code: https://example.com/verify/123456 or www.example.com/123456"), "");
    assert_string_equal(codes_of("Code", "code: 123456@example.com, ID-123456, #123456, 123456abc, a_123456"), "");
    /* Keywords that are not about a code. */
    assert_string_equal(codes_of("Shipping", "zip code 90210; promo code SAVE2026; error code 5001"), "");
    /* Lower case, too short, too long, letters only. */
    assert_string_equal(codes_of("Code", "code abc123 / code 123 / code 12345678901 / code ABCDEFG"), "");
    /* Too far from the keyword. */
    assert_string_equal(codes_of("x", "code. This sentence is longer than forty bytes before 123456"), "");
    /* Before a keyword only when first on its line. */
    assert_string_equal(codes_of("x", "Order 12345678 is ready; enter your promo code at checkout"), "");
    /* Each keyword gives one code. */
    assert_string_equal(codes_of("x", "promo: use code ABC123 to get 1000 points"), "ABC123");
    /* Alone on a line, but shorter than six. */
    assert_string_equal(codes_of("Your code", "Hello\r\n\r\n2026\r\n"), "");
}

static void test_codes_bound(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    strbuf_puts(&sb, "Subject: many\r\n\r\n");
    for (int i = 0; i < 30; i++)
        strbuf_printf(&sb, "code %06d\r\n", 100000 + i);
    json_t *v = view_with(sb.buf, sb.len, NULL);
    assert_int_equal(count_of(v, "codes"), 20);
    assert_string_equal(item(v, "codes", 19), "100019");
    assert_true(truncated(v));
    json_decref(v);
    strbuf_free(&sb);
}

static int group_teardown(void **state)
{
    (void)state;
    capture_mime_shutdown();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_plain_lf),
        cmocka_unit_test(test_alternative),
        cmocka_unit_test(test_mixed_attachments),
        cmocka_unit_test(test_part_content_type),
        cmocka_unit_test(test_attached_message),
        cmocka_unit_test(test_charsets),
        cmocka_unit_test(test_encoded_words),
        cmocka_unit_test(test_broken),
        cmocka_unit_test(test_part_bomb),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_size_limits),
        cmocka_unit_test(test_web_link_rule),
        cmocka_unit_test(test_html_links_entities),
        cmocka_unit_test(test_codes_found),
        cmocka_unit_test(test_codes_not_found),
        cmocka_unit_test(test_codes_bound),
    };
    return cmocka_run_group_tests(tests, NULL, group_teardown);
}
