/* Tests for cleanup: content fed through it into a real queue file (in a
 * temporary directory) and read back: Received: first, the header byte-exact,
 * missing From/Date/Message-ID added only for local submissions, messages
 * with no header or no separator, the size limits, recipient extraction for
 * "sendmail -t" (Resent-* too) with Bcc removed, hop counting, and a write
 * error. Each input is also fed in every two-piece split and byte by byte:
 * the result must not depend on how the content arrived. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "msg/cleanup.h"
#include "msg/msg_header.h"
#include "spool/queue_file.h"
#include "test_fixture.h"
#include "util/mem.h"
#include "util/strbuf.h"

#define QID "0123456789ABC"
#define RECEIVED "Received: from client.example.net (client.example.net [192.0.2.7])\r\n" \
                 "\tby mx.example.com (Tern) with ESMTP id " QID "; Wed, 25 Nov 2026 16:03:00 +0000 (UTC)\r\n"
/* Wed, 25 Nov 2026 16:03:00 UTC */
#define NOW ((time_t)1795622580)

/* ---- fixture and driver ------------------------------------------------- */

static char dir[64];
static int dirfd_ = -1;

static int group_setup(void **state)
{
    (void)state;
    setenv("TZ", "UTC", 1);
    tzset();
    if (tf_tmpdir_make(dir, sizeof dir, "cleanup") != 0)
        return -1;
    dirfd_ = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return dirfd_ < 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
    (void)state;
    tf_fs_uninstall();
    close(dirfd_);
    tf_tmpdir_remove(dir);
    return 0;
}

static struct cleanup_opts base_opts(void)
{
    return (struct cleanup_opts){
        .queue_id = QID,
        .myhostname = "mx.example.com",
        .myorigin = "example.com",
        .sender = "user@example.org",
        .full_name = NULL,
        .add_missing_headers = 0,
        .extract_recipients = 0,
        .received = RECEIVED,
        .header_size_limit = 102400,
        .message_size_limit = 0,
        .now = NOW,
    };
}

struct outcome {
    struct cleanup_result res;
    char *content;      /* what the queue file holds as content (NUL-terminated) */
    size_t len;
};

static void outcome_free(struct outcome *o)
{
    cleanup_result_free(&o->res);
    free(o->content);
    memset(o, 0, sizeof *o);
}

/* Feeds in[0..len) through cleanup: split into two pieces at `cut` when cut
 * is in (0, len), else in pieces of `chunk` bytes (0: one piece). When the
 * result is OK, finishes the queue file and reads its content back. */
static void run_split(const struct cleanup_opts *o, const char *in, size_t len, size_t chunk, size_t cut,
                      struct outcome *out)
{
    memset(out, 0, sizeof *out);
    unlinkat(dirfd_, QID, 0);
    struct queue_file_writer *w;
    assert_int_equal(queue_file_writer_open(dirfd_, QID, &w), 0);
    struct cleanup *c = cleanup_new(w, o);
    if (cut > 0 && cut < len) {
        cleanup_write(c, in, cut);
        cleanup_write(c, in + cut, len - cut);
    } else {
        size_t pos = 0;
        do {
            size_t n = chunk && len - pos > chunk ? chunk : len - pos;
            char *piece = xmalloc(n ? n : 1);   /* exact size for ASan */
            memcpy(piece, in + pos, n);
            cleanup_write(c, piece, n);
            free(piece);
            pos += n;
        } while (pos < len);
    }
    cleanup_finish(c, &out->res);
    cleanup_free(c);
    if (out->res.status != CLEANUP_OK) {
        queue_file_writer_abort(w);
        return;
    }
    struct queue_file_message m;
    queue_file_message_init(&m, QID, 1, o->sender);
    queue_file_message_add_rcpt(&m, "r@example.com", NULL, 0, -1);
    assert_int_equal(queue_file_writer_finish(w, &m), 0);
    queue_file_message_free(&m);
    char err[256];
    char *path = xasprintf("%s/%s", dir, QID);
    assert_int_equal(queue_file_read_path(path, &m, err, sizeof err), 0);
    free(path);
    out->len = (size_t)m.content_length;
    out->content = xmalloc(out->len + 1);
    int fd = openat(dirfd_, QID, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, out->content, out->len, (off_t)m.content_offset), (ssize_t)out->len);
    close(fd);
    out->content[out->len] = '\0';
    queue_file_message_free(&m);
    /* the reported size is what the file holds */
    assert_int_equal(out->res.size, out->len);
}

static void run(const struct cleanup_opts *o, const char *in, struct outcome *out)
{
    run_split(o, in, strlen(in), 0, 0, out);
}

/* The Message-ID cleanup adds holds the current time; blank its
 * YYYYMMDDhhmmss so runs a second apart compare equal. */
static void mask_message_id_time(struct outcome *o)
{
    char *p = o->content ? strstr(o->content, "Message-ID: <") : NULL;
    if (!p)
        return;
    p += strlen("Message-ID: <");
    for (int i = 0; i < 14 && p[i] >= '0' && p[i] <= '9'; i++)
        p[i] = '0';
}

/* Whole, byte by byte, and cut in two at every position: same result. */
static void assert_split_invariant(const struct cleanup_opts *o, const char *in)
{
    size_t len = strlen(in);
    struct outcome whole, part;
    run_split(o, in, len, 0, 0, &whole);
    mask_message_id_time(&whole);
    for (size_t cut = 0; cut <= len; cut++) {
        if (cut == 0)
            run_split(o, in, len, 1, 0, &part);
        else
            run_split(o, in, len, 0, cut, &part);
        mask_message_id_time(&part);
        if (part.res.status != whole.res.status || part.len != whole.len ||
            (whole.len && memcmp(part.content, whole.content, whole.len) != 0) ||
            part.res.hops != whole.res.hops || part.res.had_from != whole.res.had_from ||
            part.res.nrcpts != whole.res.nrcpts)
            fail_msg("result depends on the split (cut at %zu):\n--- whole:\n%s\n--- split:\n%s", cut,
                     whole.content ? whole.content : "(none)", part.content ? part.content : "(none)");
        outcome_free(&part);
    }
    outcome_free(&whole);
}

static void assert_content(const struct outcome *o, const char *want)
{
    if (o->len != strlen(want) || memcmp(o->content, want, o->len) != 0)
        fail_msg("content differs:\n--- got:\n%s\n--- want:\n%s", o->content ? o->content : "(none)", want);
}

static char *expected_date(void)
{
    return msg_header_date(NOW);
}

/* The fields add_missing_headers adds, in order, for opts o with none of
 * them present; the Message-ID (which holds the current time) is taken from
 * the content itself after checking its form. */
static char *expected_added(const struct cleanup_opts *o, const struct outcome *out)
{
    struct strbuf sb = STRBUF_INIT;
    char *from = msg_header_from(o->sender[0] ? o->sender : "MAILER-DAEMON", o->full_name);
    assert_non_null(from);
    strbuf_puts(&sb, from);
    free(from);
    char *date = expected_date();
    strbuf_puts(&sb, date);
    free(date);
    const char *mid = strstr(out->content, "\r\nMessage-ID: <");
    assert_non_null(mid);
    mid += 2;
    const char *end = strstr(mid, "\r\n");
    assert_non_null(end);
    char *field = xstrndup(mid, (size_t)(end - mid) + 2);
    char *suffix = xasprintf("." QID "@%s>\r\n", o->myhostname);
    size_t fl = strlen(field), sl = strlen(suffix);
    assert_true(fl > sl && strcmp(field + fl - sl, suffix) == 0);
    /* the reported Message-ID is the one written */
    assert_non_null(out->res.message_id);
    char *inner = xasprintf("Message-ID: <%s>\r\n", out->res.message_id);
    assert_string_equal(inner, field);
    free(inner);
    free(suffix);
    strbuf_puts(&sb, field);
    free(field);
    return strbuf_detach(&sb);
}

/* ---- header kept, Received first ---------------------------------------- */

static const char plain_msg[] =
    "From: Alice <alice@example.org>\r\n"
    "To: bob@example.com\r\n"
    "Subject:  odd   spacing\r\n"
    "\tand a folded line\r\n"
    "X-No-Space:value\r\n"
    "Date: Tue, 24 Nov 2026 10:00:00 +0100\r\n"
    "Message-ID: <abc.123@client.example.net>\r\n"
    "\r\n"
    "Body line 1\r\n"
    "Subject: not a header, in the body\r\n"
    "\r\n"
    "Received: also body\r\n";

static void test_header_byte_exact(void **state)
{
    (void)state;
    struct cleanup_opts o = base_opts();
    struct outcome out;
    run(&o, plain_msg, &out);
    assert_int_equal(out.res.status, CLEANUP_OK);
    assert_content(&out, RECEIVED "" "From: Alice <alice@example.org>\r\n"
                                  "To: bob@example.com\r\n"
                                  "Subject:  odd   spacing\r\n"
                                  "\tand a folded line\r\n"
                                  "X-No-Space:value\r\n"
                                  "Date: Tue, 24 Nov 2026 10:00:00 +0100\r\n"
                                  "Message-ID: <abc.123@client.example.net>\r\n"
                                  "\r\n"
                                  "Body line 1\r\n"
                                  "Subject: not a header, in the body\r\n"
                                  "\r\n"
                                  "Received: also body\r\n");
    assert_int_equal(out.res.had_from, 1);
    assert_int_equal(out.res.hops, 0);
    assert_int_equal(out.res.has_8bit, 0);
    assert_string_equal(out.res.message_id, "abc.123@client.example.net");
    assert_int_equal(out.res.nrcpts, 0);
    outcome_free(&out);
    assert_split_invariant(&o, plain_msg);
    /* with add_missing_headers, nothing is added: all three are present */
    o.add_missing_headers = 1;
    run(&o, plain_msg, &out);
    assert_int_equal(out.len, strlen(RECEIVED) + strlen(plain_msg));
    assert_memory_equal(out.content + strlen(RECEIVED), plain_msg, strlen(plain_msg));
    outcome_free(&out);
    /* without a Received: from the caller, the content is the input */
    o.received = NULL;
    run(&o, plain_msg, &out);
    assert_content(&out, plain_msg);
    outcome_free(&out);
}

/* The caller's Received: copy is cleanup's own: the caller may free it. */
static void test_received_copied(void **state)
{
    (void)state;
    struct cleanup_opts o = base_opts();
    o.received = xstrdup("Received: by test\r\n");
    struct queue_file_writer *w;
    unlinkat(dirfd_, QID, 0);
    assert_int_equal(queue_file_writer_open(dirfd_, QID, &w), 0);
    struct cleanup *c = cleanup_new(w, &o);
    memset(o.received, 'X', strlen(o.received));
    free(o.received);
    cleanup_write(c, "Subject: x\r\n\r\nb\r\n", 17);
    struct cleanup_result res;
    cleanup_finish(c, &res);
    cleanup_free(c);
    assert_int_equal(res.status, CLEANUP_OK);
    assert_int_equal(res.size, strlen("Received: by test\r\n") + 17);
    cleanup_result_free(&res);
    queue_file_writer_abort(w);
}

/* ---- missing fields ------------------------------------------------------ */

static void test_missing_fields_added(void **state)
{
    (void)state;
    static const char in[] = "Subject: hi\r\nTo: bob@example.com\r\n\r\nbody\r\n";
    struct cleanup_opts o = base_opts();
    o.add_missing_headers = 1;
    struct outcome out;
    run(&o, in, &out);
    assert_int_equal(out.res.status, CLEANUP_OK);
    assert_int_equal(out.res.had_from, 0);
    char *added = expected_added(&o, &out);
    char *want = xasprintf(RECEIVED "Subject: hi\r\nTo: bob@example.com\r\n%s\r\nbody\r\n", added);
    assert_content(&out, want);
    assert_non_null(strstr(added, "From: user@example.org\r\n"));
    free(want);
    free(added);
    outcome_free(&out);
    assert_split_invariant(&o, in);

    /* a full name for the added From: */
    o.full_name = "Jane Q. Doe";
    run(&o, in, &out);
    added = expected_added(&o, &out);
    assert_non_null(strstr(added, "From: \"Jane Q. Doe\" <user@example.org>\r\n"));
    free(added);
    outcome_free(&out);

    /* the null sender */
    o.full_name = NULL;
    o.sender = "";
    run(&o, in, &out);
    added = expected_added(&o, &out);
    assert_true(strncmp(added, "From: MAILER-DAEMON", 19) == 0);
    free(added);
    outcome_free(&out);

    /* only what is missing */
    o.sender = "user@example.org";
    static const char has_from[] = "From: me@example.org\r\nMessage-ID: <x@y>\r\n\r\nbody\r\n";
    run(&o, has_from, &out);
    char *date = expected_date();
    char *want2 = xasprintf(RECEIVED "From: me@example.org\r\nMessage-ID: <x@y>\r\n%s\r\nbody\r\n", date);
    assert_content(&out, want2);
    assert_string_equal(out.res.message_id, "x@y");
    free(want2);
    free(date);
    outcome_free(&out);

    /* not for SMTP clients: nothing added */
    o.add_missing_headers = 0;
    run(&o, in, &out);
    assert_content(&out, RECEIVED "Subject: hi\r\nTo: bob@example.com\r\n\r\nbody\r\n");
    assert_null(out.res.message_id);
    outcome_free(&out);
}

/* Field names are matched without regard to case. */
static void test_missing_fields_case_insensitive(void **state)
{
    (void)state;
    static const char in[] = "FROM: a@example.org\r\ndate: Tue, 24 Nov 2026 10:00:00 +0100\r\n"
                             "MESSAGE-ID: <m@x>\r\n\r\nbody\r\n";
    struct cleanup_opts o = base_opts();
    o.add_missing_headers = 1;
    struct outcome out;
    run(&o, in, &out);
    char *want = xasprintf(RECEIVED "%s", in);
    assert_content(&out, want);
    free(want);
    assert_int_equal(out.res.had_from, 1);
    assert_string_equal(out.res.message_id, "m@x");
    outcome_free(&out);
}

/* ---- no header, no separator --------------------------------------------- */

static void test_no_header_at_all(void **state)
{
    (void)state;
    static const char in[] = "Hello, this is just text.\r\nSubject: not a header\r\n\r\nbye\r\n";
    struct cleanup_opts o = base_opts();
    struct outcome out;
    run(&o, in, &out);
    assert_int_equal(out.res.status, CLEANUP_OK);
    /* the empty line keeps the body's lines out of the header */
    assert_content(&out, RECEIVED "\r\nHello, this is just text.\r\nSubject: not a header\r\n\r\nbye\r\n");
    assert_int_equal(out.res.had_from, 0);
    outcome_free(&out);
    assert_split_invariant(&o, in);

    o.add_missing_headers = 1;
    run(&o, in, &out);
    char *added = expected_added(&o, &out);
    char *want = xasprintf(RECEIVED "%s\r\n%s", added, in);
    assert_content(&out, want);
    free(want);
    free(added);
    outcome_free(&out);

    /* a first line that is a continuation has nothing to continue */
    o.add_missing_headers = 0;
    run(&o, " indented\r\nFrom: x@y\r\n\r\n", &out);
    assert_content(&out, RECEIVED "\r\n indented\r\nFrom: x@y\r\n\r\n");
    assert_int_equal(out.res.had_from, 0);
    outcome_free(&out);

    /* the empty message */
    run(&o, "", &out);
    assert_content(&out, RECEIVED);
    outcome_free(&out);
    /* only an empty line: an empty header and an empty body */
    run(&o, "\r\n", &out);
    assert_content(&out, RECEIVED "\r\n");
    outcome_free(&out);
}

static void test_missing_separator_inserted(void **state)
{
    (void)state;
    static const char in[] = "Subject: x\r\nTo: a@example.com\r\nthis is the body\r\nmore: body\r\n";
    struct cleanup_opts o = base_opts();
    struct outcome out;
    run(&o, in, &out);
    assert_content(&out, RECEIVED "Subject: x\r\nTo: a@example.com\r\n\r\nthis is the body\r\nmore: body\r\n");
    outcome_free(&out);
    assert_split_invariant(&o, in);

    /* an mbox "From " line after the header */
    run(&o, "Subject: x\r\nFrom someone Wed Nov 25 2026\r\n", &out);
    assert_content(&out, RECEIVED "Subject: x\r\n\r\nFrom someone Wed Nov 25 2026\r\n");
    outcome_free(&out);

    /* with fields added, they go before the inserted empty line */
    o.add_missing_headers = 1;
    run(&o, in, &out);
    char *added = expected_added(&o, &out);
    char *want = xasprintf(RECEIVED "Subject: x\r\nTo: a@example.com\r\n%s\r\nthis is the body\r\nmore: body\r\n",
                           added);
    assert_content(&out, want);
    free(want);
    free(added);
    outcome_free(&out);
}

/* RFC 5322 4.5 (obsolete syntax, which must be accepted when reading): white
 * space between a field name and its colon. msg_header_scan honours it; the
 * field and those after it must stay in the header. */
static void test_obsolete_space_before_colon(void **state)
{
    (void)state;
    static const char in[] = "From: a@example.org\r\nSubject : hello\r\nTo: b@example.com\r\n\r\nbody\r\n";
    struct cleanup_opts o = base_opts();
    struct outcome out;
    run(&o, in, &out);
    if (out.len != strlen(RECEIVED) + strlen(in) || memcmp(out.content + strlen(RECEIVED), in, strlen(in)) != 0) {
        char *got = xstrdup(out.content ? out.content + strlen(RECEIVED) : "");
        outcome_free(&out);
        print_message("a field with white space before its colon ended the header; got:\n%s\n", got);
        free(got);
        fail();
    }
    outcome_free(&out);
}

/* A message whose last line has no line end (possible with BDAT, and with
 * "sendmail" input that does not end in a newline). */
static void test_last_line_without_line_end(void **state)
{
    (void)state;
    struct cleanup_opts o = base_opts();
    struct outcome out;
    /* without added fields the bytes are kept as they are */
    run(&o, "Subject: x\r\n\r\nno newline", &out);
    assert_content(&out, RECEIVED "Subject: x\r\n\r\nno newline");
    outcome_free(&out);

    /* with added fields, each must start on a line of its own, and a body
     * line must not become part of the header */
    o.add_missing_headers = 1;
    static const char *const inputs[] = {"Subject: x", "Subject: x\r\nbody without newline",
                                         "just a body line"};
    int bad = 0;
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        run(&o, inputs[i], &out);
        int glued = strstr(out.content, "xFrom:") || strstr(out.content, "newlineFrom:") ||
                    strstr(out.content, "lineFrom:");
        struct msg_header_info info;
        msg_header_scan(out.content, out.len, &info);
        int from_in_header = info.has_from == 1;
        msg_header_info_free(&info);
        if (glued || !from_in_header) {
            print_message("input \"%s\" without a final line end: "
                          "added fields are glued to it or land in the body; got:\n%s\n", inputs[i],
                          out.content);
            bad++;
        }
        outcome_free(&out);
    }
    assert_int_equal(bad, 0);
}

/* ---- limits -------------------------------------------------------------- */

static char *big_header(size_t fields)
{
    struct strbuf sb = STRBUF_INIT;
    for (size_t i = 0; i < fields; i++)
        strbuf_printf(&sb, "X-Filler-%03zu: 0123456789012345678901234567890123456789\r\n", i);
    strbuf_puts(&sb, "\r\nbody\r\n");
    return strbuf_detach(&sb);
}

static void test_header_size_limit(void **state)
{
    (void)state;
    char *in = big_header(20);   /* 20 lines of 54 bytes */
    size_t header_len = strstr(in, "\r\n\r\n") + 2 - in;
    struct cleanup_opts o = base_opts();
    struct outcome out;
    /* fed in small pieces */
    o.header_size_limit = 500;
    run_split(&o, in, strlen(in), 10, 0, &out);
    assert_int_equal(out.res.status, CLEANUP_HEADER_TOO_BIG);
    outcome_free(&out);
    run_split(&o, in, strlen(in), 1, 0, &out);
    assert_int_equal(out.res.status, CLEANUP_HEADER_TOO_BIG);
    outcome_free(&out);
    /* a header that fits */
    o.header_size_limit = header_len + 2;
    run_split(&o, in, strlen(in), 10, 0, &out);
    assert_int_equal(out.res.status, CLEANUP_OK);
    outcome_free(&out);
    /* fed at once: the limit does not depend on the piece size */
    o.header_size_limit = 500;
    run(&o, in, &out);
    assert_int_equal(out.res.status, CLEANUP_HEADER_TOO_BIG);
    outcome_free(&out);
    free(in);
}

/* At the boundary (a header of exactly the limit passes, one byte more does
 * not), the outcome must not depend on where the input was split. */
static void test_header_size_limit_boundary(void **state)
{
    (void)state;
    char *in = big_header(10);
    size_t len = strlen(in);
    size_t header_len = (size_t)(strstr(in, "\r\n\r\n") + 2 - in);
    struct cleanup_opts o = base_opts();
    struct outcome out;
    int bad = 0;
    for (int over = 0; over <= 1; over++) {
        o.header_size_limit = header_len - (size_t)over;
        int want = over ? CLEANUP_HEADER_TOO_BIG : CLEANUP_OK;
        run(&o, in, &out);
        assert_int_equal(out.res.status, want);
        outcome_free(&out);
        for (size_t cut = 1; cut < len; cut++) {
            run_split(&o, in, len, 0, cut, &out);
            if ((int)out.res.status != want) {
                print_message("header of %zu bytes, limit %zu, input cut "
                              "at %zu: status %d, want %d\n", header_len, o.header_size_limit, cut,
                              (int)out.res.status, want);
                bad++;
            }
            outcome_free(&out);
        }
    }
    free(in);
    assert_int_equal(bad, 0);
}

/* A header of exactly the limit followed, without the empty line, by a
 * body line passes however the input was cut: an unfinished line that may
 * still turn out to be body does not count against the limit (found by
 * fuzz_cleanup; tests/fuzz/corpus/fuzz_cleanup/regress-limit-body-line).
 * Lines too long to hold a field name are body either way. */
static void test_header_size_limit_no_separator(void **state)
{
    (void)state;
    struct strbuf long_name = STRBUF_INIT;
    for (int i = 0; i < 1200; i++)
        strbuf_putc(&long_name, 'n');
    strbuf_puts(&long_name, ": value\r\n");
    const char *const body_lines[] = {
        "Frample.org wom: not a field\r\nmore\r\n",
        "NoColonAtAll\r\n",
        strbuf_str(&long_name),
    };
    static const char header[] = "Subject: limit\r\nX-Pad: 0123456789\r\n";
    struct cleanup_opts o = base_opts();
    o.received = NULL;
    o.header_size_limit = strlen(header);
    int bad = 0;
    for (size_t k = 0; k < sizeof body_lines / sizeof body_lines[0]; k++) {
        char *in = xasprintf("%s%s", header, body_lines[k]);
        size_t len = strlen(in);
        struct outcome out;
        run(&o, in, &out);
        assert_int_equal(out.res.status, CLEANUP_OK);
        outcome_free(&out);
        for (size_t cut = 1; cut < len; cut++) {
            run_split(&o, in, len, 0, cut, &out);
            if (out.res.status != CLEANUP_OK) {
                print_message("body line %zu, input cut at %zu: status %d\n", k, cut, (int)out.res.status);
                bad++;
            }
            outcome_free(&out);
        }
        free(in);
    }
    strbuf_free(&long_name);
    assert_int_equal(bad, 0);
}

/* A header that never ends (no empty line, no body line) is bounded. */
static void test_header_never_ends(void **state)
{
    (void)state;
    struct cleanup_opts o = base_opts();
    o.header_size_limit = 4096;
    struct queue_file_writer *w;
    unlinkat(dirfd_, QID, 0);
    assert_int_equal(queue_file_writer_open(dirfd_, QID, &w), 0);
    struct cleanup *c = cleanup_new(w, &o);
    static const char line[] = "X-Endless: 0123456789\r\n";
    for (int i = 0; i < 100000; i++)
        cleanup_write(c, line, sizeof line - 1);
    struct cleanup_result res;
    cleanup_finish(c, &res);
    assert_int_equal(res.status, CLEANUP_HEADER_TOO_BIG);
    cleanup_free(c);
    cleanup_result_free(&res);
    queue_file_writer_abort(w);
}

static void test_message_size_limit(void **state)
{
    (void)state;
    static const char in[] = "Subject: x\r\n\r\n0123456789012345678901234567890123456789\r\n";
    size_t len = strlen(in);
    struct cleanup_opts o = base_opts();
    struct outcome out;
    o.message_size_limit = len;
    run(&o, in, &out);
    assert_int_equal(out.res.status, CLEANUP_OK);
    outcome_free(&out);
    o.message_size_limit = len - 1;
    run(&o, in, &out);
    assert_int_equal(out.res.status, CLEANUP_TOO_BIG);
    outcome_free(&out);
    run_split(&o, in, len, 1, 0, &out);
    assert_int_equal(out.res.status, CLEANUP_TOO_BIG);
    outcome_free(&out);
    /* exceeded inside the header: still TOO_BIG, the first error */
    o.message_size_limit = 5;
    run_split(&o, in, len, 3, 0, &out);
    assert_int_equal(out.res.status, CLEANUP_TOO_BIG);
    outcome_free(&out);
    /* 0 means no limit */
    o.message_size_limit = 0;
    char *big = xmalloc(3 * 1000 * 1000 + 32);
    strcpy(big, "Subject: big\r\n\r\n");
    size_t pos = strlen(big);
    while (pos < 3 * 1000 * 1000) {
        memcpy(big + pos, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n", 64);
        pos += 64;
    }
    big[pos] = '\0';
    run_split(&o, big, pos, 65536, 0, &out);
    assert_int_equal(out.res.status, CLEANUP_OK);
    assert_int_equal(out.len, strlen(RECEIVED) + pos);
    assert_memory_equal(out.content + strlen(RECEIVED), big, pos);
    outcome_free(&out);
    free(big);
}

/* ---- sendmail -t ---------------------------------------------------------- */

static void assert_rcpts(const struct outcome *out, const char *const *want, size_t n)
{
    if (out->res.nrcpts != n) {
        for (size_t i = 0; i < out->res.nrcpts; i++)
            print_message("  got rcpt %s\n", out->res.rcpts[i]);
        fail_msg("%zu recipients, want %zu", out->res.nrcpts, n);
    }
    for (size_t i = 0; i < n; i++)
        assert_string_equal(out->res.rcpts[i], want[i]);
}

static void test_extract_recipients(void **state)
{
    (void)state;
    static const char in[] = "From: me@example.org\r\n"
                             "To: a@example.com, Bee <b@example.com>\r\n"
                             "Subject: hello\r\n"
                             "cc: c@example.com,\r\n d@example.com\r\n"
                             "Bcc: secret@example.com,\r\n\thidden@example.com\r\n"
                             "X-After: kept\r\n"
                             "BCC: local\r\n"
                             "\r\n"
                             "To: body@example.com\r\n";
    struct cleanup_opts o = base_opts();
    o.extract_recipients = 1;
    struct outcome out;
    run(&o, in, &out);
    assert_int_equal(out.res.status, CLEANUP_OK);
    static const char *const want[] = {"a@example.com", "b@example.com", "c@example.com", "d@example.com",
                                       "secret@example.com", "hidden@example.com", "local@example.com"};
    assert_rcpts(&out, want, 7);
    /* Bcc is gone, with its continuation line; the rest is byte-exact */
    assert_content(&out, RECEIVED "From: me@example.org\r\n"
                                  "To: a@example.com, Bee <b@example.com>\r\n"
                                  "Subject: hello\r\n"
                                  "cc: c@example.com,\r\n d@example.com\r\n"
                                  "X-After: kept\r\n"
                                  "\r\n"
                                  "To: body@example.com\r\n");
    outcome_free(&out);
    assert_split_invariant(&o, in);

    /* not asked: Bcc stays, nothing is extracted */
    o.extract_recipients = 0;
    run(&o, in, &out);
    assert_int_equal(out.res.nrcpts, 0);
    assert_non_null(strstr(out.content, "Bcc: secret@example.com"));
    outcome_free(&out);
}

static void test_extract_resent(void **state)
{
    (void)state;
    static const char in[] = "Resent-From: fwd@example.org\r\n"
                             "Resent-To: r1@example.com\r\n"
                             "Resent-Cc: r2@example.com\r\n"
                             "Resent-Bcc: r3@example.com\r\n"
                             "From: orig@example.org\r\n"
                             "To: original-to@example.com\r\n"
                             "Bcc: original-bcc@example.com\r\n"
                             "\r\n"
                             "body\r\n";
    struct cleanup_opts o = base_opts();
    o.extract_recipients = 1;
    struct outcome out;
    run(&o, in, &out);
    /* with Resent-* fields, only they name the recipients */
    static const char *const want[] = {"r1@example.com", "r2@example.com", "r3@example.com"};
    assert_rcpts(&out, want, 3);
    assert_null(strstr(out.content, "Resent-Bcc:"));
    assert_null(strstr(out.content, "r3@example.com"));
    assert_null(strstr(out.content, "\r\nBcc:"));
    assert_non_null(strstr(out.content, "Resent-To: r1@example.com\r\n"));
    assert_non_null(strstr(out.content, "To: original-to@example.com\r\n"));
    outcome_free(&out);
    assert_split_invariant(&o, in);
}

static void test_extract_groups_and_garbage(void **state)
{
    (void)state;
    static const char in[] = "To: undisclosed-recipients:;\r\n"
                             "Cc: Team: x@example.com, y@example.com;, (comment) z@example.com\r\n"
                             "Bcc:\r\n"
                             "\r\n";
    struct cleanup_opts o = base_opts();
    o.extract_recipients = 1;
    struct outcome out;
    run(&o, in, &out);
    static const char *const want[] = {"x@example.com", "y@example.com", "z@example.com"};
    assert_rcpts(&out, want, 3);
    assert_null(strstr(out.content, "Bcc:"));
    outcome_free(&out);
}

/* ---- hops, 8-bit ---------------------------------------------------------- */

static void test_hop_count(void **state)
{
    (void)state;
    static const char in[] = "Received: from a by b; date\r\n"
                             "received: from c\r\n\tby d; date\r\n"
                             "X-Received: not one\r\n"
                             "RECEIVED: from e by f; date\r\n"
                             "Subject: loop?\r\n"
                             "\r\n"
                             "Received: in the body, not counted\r\n";
    struct cleanup_opts o = base_opts();
    struct outcome out;
    run(&o, in, &out);
    assert_int_equal(out.res.hops, 3);   /* our own Received: is not counted */
    outcome_free(&out);
    assert_split_invariant(&o, in);
    run(&o, "Subject: none\r\n\r\n", &out);
    assert_int_equal(out.res.hops, 0);
    outcome_free(&out);
}

static void test_8bit_header(void **state)
{
    (void)state;
    struct cleanup_opts o = base_opts();
    struct outcome out;
    run(&o, "Subject: caf\xc3\xa9\r\n\r\nbody\r\n", &out);
    assert_int_equal(out.res.has_8bit, 1);
    outcome_free(&out);
    run(&o, "Subject: cafe\r\n\r\nbod\xc3\xbf\r\n", &out);
    assert_int_equal(out.res.has_8bit, 0);   /* the header only */
    outcome_free(&out);
}

/* ---- write errors ----------------------------------------------------------- */

static void test_write_error(void **state)
{
    (void)state;
    struct cleanup_opts o = base_opts();
    struct queue_file_writer *w;
    unlinkat(dirfd_, QID, 0);
    assert_int_equal(queue_file_writer_open(dirfd_, QID, &w), 0);   /* nothing written yet */
    tf_fs_install();
    tf_fs_fail(TF_WRITE, 1, ENOSPC);   /* the first content flush */
    struct cleanup *c = cleanup_new(w, &o);
    cleanup_write(c, "Subject: x\r\n\r\n", 14);
    char *chunk = xmalloc(70000);
    memset(chunk, 'a', 70000);
    for (int i = 0; i < 5; i++)
        cleanup_write(c, chunk, 70000);
    free(chunk);
    struct cleanup_result res;
    cleanup_finish(c, &res);
    cleanup_free(c);
    tf_fs_uninstall();
    assert_int_equal(res.status, CLEANUP_WRITE_ERROR);
    assert_int_equal(res.error_errno, ENOSPC);
    assert_int_equal(tf_fs_calls(TF_WRITE), 1);   /* nothing more was tried after the error */
    cleanup_result_free(&res);
    queue_file_writer_abort(w);
}

/* Without a writer (sendmail's check before it commits a drop file) the
 * verdicts and the -t recipients are those a writing cleanup gives. */
static void test_check_only(void **state)
{
    (void)state;
    struct cleanup_opts o = base_opts();
    o.extract_recipients = 1;
    o.received = NULL;
    struct cleanup *c = cleanup_new(NULL, &o);
    static const char in[] = "To: a@example.net, bare\r\nBcc: b@example.net\r\nSubject: x\r\n\r\n"
                             "To: not@in.header\r\n";
    cleanup_write(c, in, sizeof in - 1);
    struct cleanup_result res;
    cleanup_finish(c, &res);
    cleanup_free(c);
    assert_int_equal(res.status, CLEANUP_OK);
    assert_int_equal(res.nrcpts, 3);
    assert_string_equal(res.rcpts[0], "a@example.net");
    assert_string_equal(res.rcpts[1], "bare@example.com");
    assert_string_equal(res.rcpts[2], "b@example.net");
    cleanup_result_free(&res);

    o.header_size_limit = 20;
    c = cleanup_new(NULL, &o);
    cleanup_write(c, in, sizeof in - 1);
    cleanup_finish(c, &res);
    cleanup_free(c);
    assert_int_equal(res.status, CLEANUP_HEADER_TOO_BIG);
    cleanup_result_free(&res);
}

/* The observer (smtpd's mail authentication) sees the header exactly as
 * sent, may drop fields from what is written, and sees the body after the
 * empty line in pieces that add up to it, however the content arrived. */
struct watch {
    struct strbuf header, body;
    int headers;
};

static size_t watch_header(void *arg, char *header, size_t len)
{
    struct watch *w = arg;
    w->headers++;
    strbuf_append(&w->header, header, len);
    return msg_header_remove_field(header, len, "X-Drop");
}

static void watch_body(void *arg, const char *data, size_t len)
{
    struct watch *w = arg;
    strbuf_append(&w->body, data, len);
}

static void test_observer(void **state)
{
    (void)state;
    static const char hdr[] = "From: a@example.org\r\nX-Drop: claimed\r\n\tfolded\r\nSubject: s\r\n";
    static const char body[] = "line one\r\n\r\nX-Drop: not a header\r\n";
    char *in = xasprintf("%s\r\n%s", hdr, body);
    size_t len = strlen(in);
    struct cleanup_opts o = base_opts();
    for (size_t cut = 0; cut <= len; cut++) {
        struct watch w = {STRBUF_INIT, STRBUF_INIT, 0};
        struct cleanup_observer obs = {watch_header, watch_body, &w};
        o.observer = &obs;
        struct outcome out;
        run_split(&o, in, len, cut == 0 ? 1 : 0, cut, &out);
        assert_int_equal(out.res.status, CLEANUP_OK);
        assert_int_equal(w.headers, 1);
        assert_string_equal(strbuf_str(&w.header), hdr);
        assert_string_equal(strbuf_str(&w.body), body);
        char *want = xasprintf(RECEIVED "From: a@example.org\r\nSubject: s\r\n\r\n%s", body);
        assert_content(&out, want);
        free(want);
        outcome_free(&out);
        strbuf_free(&w.header);
        strbuf_free(&w.body);
    }
    free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_byte_exact),
        cmocka_unit_test(test_received_copied),
        cmocka_unit_test(test_missing_fields_added),
        cmocka_unit_test(test_missing_fields_case_insensitive),
        cmocka_unit_test(test_no_header_at_all),
        cmocka_unit_test(test_missing_separator_inserted),
        cmocka_unit_test(test_obsolete_space_before_colon),
        cmocka_unit_test(test_last_line_without_line_end),
        cmocka_unit_test(test_header_size_limit),
        cmocka_unit_test(test_header_size_limit_boundary),
        cmocka_unit_test(test_header_size_limit_no_separator),
        cmocka_unit_test(test_header_never_ends),
        cmocka_unit_test(test_message_size_limit),
        cmocka_unit_test(test_extract_recipients),
        cmocka_unit_test(test_extract_resent),
        cmocka_unit_test(test_extract_groups_and_garbage),
        cmocka_unit_test(test_hop_count),
        cmocka_unit_test(test_8bit_header),
        cmocka_unit_test(test_write_error),
        cmocka_unit_test(test_check_only),
        cmocka_unit_test(test_observer),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
