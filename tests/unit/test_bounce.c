/* Tests for bounce: each notice is written into a real queue file with
 * queue_file_writer, read back from the file's content range and taken apart at its
 * MIME boundaries, so the checks see the bytes the queue would send: the top
 * header, each part's header, the exact delivery-status fields, the returned
 * original, line lengths, the boundary's uniqueness, 8-bit and SMTPUTF8
 * handling, injection attempts, and the I/O and argument errors. When
 * /usr/bin/python3 exists, tests/unit/check_dsn.py also parses notices with
 * Python's email package. */
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

#include "msg/bounce.h"
#include "spool/queue_file.h"
#include "test_fixture.h"
#include "util/mem.h"
#include "util/strbuf.h"

#define HOST "mx.tern.test"
#define NOTICE_ID "0123456789ABD"
#define ORIG_ID "0123456789ABC"
#define T0 ((time_t)1700000000) /* Tue, 14 Nov 2023 22:13:20 +0000 */
#define T0_DATE "Tue, 14 Nov 2023 22:13:20 +0000 (UTC)"
#define T1 ((time_t)1700432000) /* five days later */
#define T1_DATE "Sun, 19 Nov 2023 22:13:20 +0000 (UTC)"

static const char *const ORIGINAL = "Received: from client.example.org\r\n"
                                    "\tby mx.tern.test with ESMTP id " ORIG_ID "\r\n"
                                    "From: Alice <alice@example.org>\r\n"
                                    "To: bob@example.net\r\n"
                                    "Subject: lunch\r\n"
                                    "Message-ID: <m1@example.org>\r\n"
                                    "\r\n"
                                    "Shall we have lunch on Friday?\r\n"
                                    "-- \r\n"
                                    "Alice\r\n";
static const char *const ORIGINAL_HEADER = "Received: from client.example.org\r\n"
                                           "\tby mx.tern.test with ESMTP id " ORIG_ID "\r\n"
                                           "From: Alice <alice@example.org>\r\n"
                                           "To: bob@example.net\r\n"
                                           "Subject: lunch\r\n"
                                           "Message-ID: <m1@example.org>\r\n";

/* ---- fixture ------------------------------------------------------------ */

struct fx {
    char dir[64];
    int dirfd;
    int orig_fd;
    uint64_t off, len;
    int files;
};

static int setup(void **state)
{
    struct fx *fx = xcalloc(1, sizeof *fx);
    if (tf_tmpdir_make(fx->dir, sizeof fx->dir, "bounce") != 0)
        return -1;
    fx->dirfd = open(fx->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fx->dirfd < 0)
        return -1;
    fx->orig_fd = -1;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    tf_fs_uninstall();
    bounce_test_set_random(NULL);
    if (fx->orig_fd >= 0)
        close(fx->orig_fd);
    close(fx->dirfd);
    tf_tmpdir_remove(fx->dir);
    free(fx);
    return 0;
}

/* Queues content as an original message and opens it for bounce_write. */
static void make_original(struct fx *fx, const char *content, size_t len)
{
    char name[32];
    snprintf(name, sizeof name, "orig%d", ++fx->files);
    struct queue_file_writer *w;
    assert_int_equal(queue_file_writer_open(fx->dirfd, name, &w), 0);
    assert_int_equal(queue_file_writer_write(w, content, len), 0);
    struct queue_file_message m;
    queue_file_message_init(&m, ORIG_ID, (int64_t)T0 * 1000000, "alice@example.org");
    queue_file_message_add_rcpt(&m, "bob@example.net", "", 0, -1);
    assert_int_equal(queue_file_writer_finish(w, &m), 0);
    fx->off = m.content_offset;
    fx->len = m.content_length;
    assert_int_equal(fx->len, len);
    queue_file_message_free(&m);
    if (fx->orig_fd >= 0)
        close(fx->orig_fd);
    fx->orig_fd = openat(fx->dirfd, name, O_RDONLY | O_CLOEXEC);
    assert_true(fx->orig_fd >= 0);
}

static struct dsn_info base_info(enum dsn_kind kind)
{
    struct dsn_info info = {
        .kind = kind,
        .myhostname = HOST,
        .mail_name = "Tern",
        .notice_id = NOTICE_ID,
        .orig_queue_id = ORIG_ID,
        .orig_sender = "alice@example.org",
        .to = "alice@example.org",
        .arrival = T0,
        .now = T0,
        .max_returned = 10 * 1024 * 1024,
    };
    return info;
}

static struct dsn_rcpt failed_rcpt(void)
{
    struct dsn_rcpt r = {
        .final_rcpt = "bob@example.net",
        .orcpt = "rfc822;Bob@Example.NET",
        .action = "failed",
        .status = "5.1.1",
        .remote_mta = "dns; mx.example.net",
        .diagnostic = "smtp; 550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown",
        .last_attempt = T0,
    };
    return r;
}

/* Writes a notice into a fresh queue file and returns its content
 * (NUL-terminated, length in *len). */
static char *write_notice(struct fx *fx, const struct dsn_info *info, const struct dsn_rcpt *rcpts, size_t n,
                          size_t *len, struct bounce_report *rep)
{
    char name[32];
    snprintf(name, sizeof name, "notice%d", ++fx->files);
    struct queue_file_writer *w;
    assert_int_equal(queue_file_writer_open(fx->dirfd, name, &w), 0);
    struct bounce_report dummy;
    int rc = bounce_write_report(w, info, rcpts, n, fx->orig_fd, fx->off, fx->len, rep ? rep : &dummy);
    assert_int_equal(rc, 0);
    struct queue_file_message m;
    queue_file_message_init(&m, NOTICE_ID, (int64_t)info->now * 1000000, "");
    queue_file_message_add_rcpt(&m, info->to, "", QF_NOTIFY_NEVER, -1);
    assert_int_equal(queue_file_writer_finish(w, &m), 0);
    int fd = openat(fx->dirfd, name, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    char *buf = xmalloc((size_t)m.content_length + 1);
    assert_int_equal(pread(fd, buf, (size_t)m.content_length, (off_t)m.content_offset),
                     (ssize_t)m.content_length);
    buf[m.content_length] = '\0';
    close(fd);
    *len = (size_t)m.content_length;
    queue_file_message_free(&m);
    return buf;
}

/* ---- taking a notice apart ---------------------------------------------- */

struct part {
    char *header; /* with its last CRLF, without the empty line */
    char *body;   /* the content before the CRLF of the next delimiter */
    size_t body_len;
};

struct notice {
    char *header;
    char *boundary;
    size_t nparts;
    struct part parts[4];
};

static char *dup_range(const char *p, size_t n)
{
    char *s = xmalloc(n + 1);
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static size_t count_occurrences(const char *buf, size_t len, const char *needle)
{
    size_t n = 0, nl = strlen(needle);
    for (const char *p = buf; (p = memmem(p, len - (size_t)(p - buf), needle, nl)) != NULL; p += nl)
        n++;
    return n;
}

/* Splits the notice, asserting the MIME frame: one header, a preamble, parts
 * opened by "CRLF--B CRLF", the close "CRLF--B--CRLF" ending the content, and
 * the boundary nowhere else. */
static void parse_notice(const char *buf, size_t len, struct notice *nt)
{
    memset(nt, 0, sizeof *nt);
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    assert_non_null(end);
    nt->header = dup_range(buf, (size_t)(end - buf) + 2);
    const char *b = strstr(nt->header, "boundary=\"");
    assert_non_null(b);
    b += 10;
    const char *q = strchr(b, '"');
    assert_non_null(q);
    nt->boundary = dup_range(b, (size_t)(q - b));
    assert_true(strlen(nt->boundary) > 0 && strlen(nt->boundary) <= 70);

    char *delim = xasprintf("\r\n--%s", nt->boundary);
    size_t dl = strlen(delim);
    const char *p = memmem(end + 2, len - (size_t)(end + 2 - buf), delim, dl);
    assert_non_null(p);
    for (;;) {
        assert_true(len - (size_t)(p - buf) >= dl + 4);
        const char *after = p + dl;
        if (memcmp(after, "--\r\n", 4) == 0) {
            assert_int_equal((size_t)(after + 4 - buf), len);
            break;
        }
        assert_memory_equal(after, "\r\n", 2);
        const char *start = after + 2;
        const char *next = memmem(start, len - (size_t)(start - buf), delim, dl);
        assert_non_null(next);
        assert_true(nt->nparts < 4);
        struct part *pt = &nt->parts[nt->nparts++];
        const char *sep = memmem(start, (size_t)(next - start), "\r\n\r\n", 4);
        if (sep) {
            pt->header = dup_range(start, (size_t)(sep - start) + 2);
            pt->body = dup_range(sep + 4, (size_t)(next - sep - 4));
            pt->body_len = (size_t)(next - sep - 4);
        } else {
            /* An empty body: the header's last CRLF is the delimiter's. */
            pt->header = dup_range(start, (size_t)(next - start));
            pt->body = xstrdup("");
        }
        p = next;
    }
    /* Once in Content-Type, once per delimiter line. */
    assert_int_equal(count_occurrences(buf, len, nt->boundary), nt->nparts + 2);
    free(delim);
}

static void notice_free(struct notice *nt)
{
    free(nt->header);
    free(nt->boundary);
    for (size_t i = 0; i < nt->nparts; i++) {
        free(nt->parts[i].header);
        free(nt->parts[i].body);
    }
}

/* Number of CRLF lines of buf equal to line. */
static size_t count_lines(const char *buf, const char *line)
{
    size_t n = 0, ll = strlen(line);
    const char *p = buf;
    while (*p) {
        const char *e = strstr(p, "\r\n");
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == ll && memcmp(p, line, ll) == 0)
            n++;
        if (!e)
            break;
        p = e + 2;
    }
    return n;
}

static size_t count_line_prefix(const char *buf, const char *prefix)
{
    size_t n = 0, pl = strlen(prefix);
    for (const char *p = buf; p && *p;) {
        if (strncmp(p, prefix, pl) == 0)
            n++;
        p = strstr(p, "\r\n");
        if (p)
            p += 2;
    }
    return n;
}

static void assert_has_line(const char *buf, const char *line)
{
    if (count_lines(buf, line) != 1)
        fail_msg("line not found once: [%s] in:\n%s", line, buf);
}

/* Every line ends in CRLF (no bare CR or LF) and is at most 998 octets. */
static void assert_lines_ok(const char *buf, size_t len)
{
    size_t col = 0;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '\r') {
            assert_true(i + 1 < len && buf[i + 1] == '\n');
            assert_true(col <= 998);
            col = 0;
            i++;
        } else {
            assert_true(buf[i] != '\n');
            col++;
        }
    }
    assert_int_equal(col, 0);
}

/* buf with every CRLF turned into nothing (unfolding, and joining text). */
static char *unfold(const char *buf, const char *join)
{
    struct strbuf sb = STRBUF_INIT;
    for (const char *p = buf; *p;) {
        if (p[0] == '\r' && p[1] == '\n') {
            strbuf_puts(&sb, join);
            p += 2;
        } else {
            strbuf_putc(&sb, *p++);
        }
    }
    return strbuf_detach(&sb);
}

/* Text with line ends and white-space runs turned into single spaces, so
 * word-wrapped prose can be searched. */
static char *flatten(const char *text)
{
    char *s = unfold(text, " ");
    size_t o = 0;
    for (size_t i = 0; s[i]; i++)
        if (s[i] != ' ' || (o > 0 && s[o - 1] != ' '))
            s[o++] = s[i];
    s[o] = '\0';
    return s;
}

/* The value of the field name in a field block, unfolded (CRLF removed). */
static char *field_value(const char *block, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = block; p && *p;) {
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            const char *e = v;
            for (;;) {
                e = strstr(e, "\r\n");
                if (!e || (e[2] != ' ' && e[2] != '\t'))
                    break;
                e += 2;
            }
            char *raw = dup_range(v, e ? (size_t)(e - v) : strlen(v));
            char *u = unfold(raw, "");
            free(raw);
            memmove(u, u + (u[0] == ' '), strlen(u + (u[0] == ' ')) + 1);
            return u;
        }
        p = strstr(p, "\r\n");
        if (p)
            p += 2;
    }
    return NULL;
}

/* ---- Python's opinion ----------------------------------------------------- */

static void python_check(struct fx *fx, const char *buf, size_t len, const char *args)
{
    if (access("/usr/bin/python3", X_OK) != 0)
        return; /* no Python: the C checks stand alone */
    char script[512];
    const char *slash = strrchr(__FILE__, '/');
    snprintf(script, sizeof script, "%.*scheck_dsn.py", slash ? (int)(slash - __FILE__ + 1) : 0, __FILE__);
    if (access(script, R_OK) != 0)
        fail_msg("%s not found (run the test from the repository root)", script);
    char *path = xasprintf("%s/notice%d.eml", fx->dir, ++fx->files);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    char *cmd = xasprintf("/usr/bin/python3 %s %s %s", script, path, args ? args : "");
    int rc = system(cmd);
    if (rc != 0)
        fail_msg("check_dsn.py failed (%d) on %s", rc, path);
    free(cmd);
    free(path);
}

/* ---- a failure notice, in full ------------------------------------------ */

static void test_failure_full(void **state)
{
    struct fx *fx = *state;
    make_original(fx, ORIGINAL, strlen(ORIGINAL));
    struct dsn_info info = base_info(DSN_FAILURE);
    struct dsn_rcpt r = failed_rcpt();
    struct bounce_report rep;
    size_t len;
    char *buf = write_notice(fx, &info, &r, 1, &len, &rep);
    assert_lines_ok(buf, len);
    assert_true(rep.returned_full);
    assert_false(rep.returned_headers);
    assert_false(rep.body_8bit);
    assert_false(rep.header_8bit);

    struct notice nt;
    parse_notice(buf, len, &nt);
    assert_has_line(nt.header, "Date: " T0_DATE);
    assert_has_line(nt.header, "From: \"Mail Delivery System\" <MAILER-DAEMON@" HOST ">");
    assert_has_line(nt.header, "To: <alice@example.org>");
    assert_has_line(nt.header, "Subject: Undelivered Mail Returned to Sender");
    assert_has_line(nt.header, "Auto-Submitted: auto-replied");
    assert_has_line(nt.header, "MIME-Version: 1.0");
    assert_has_line(nt.header, "Content-Transfer-Encoding: 7bit");
    assert_has_line(nt.header, "Content-Type: multipart/report; report-type=delivery-status;");
    char *bline = xasprintf("\tboundary=\"%s\"", nt.boundary);
    assert_has_line(nt.header, bline);
    free(bline);
    char *mid = field_value(nt.header, "Message-ID");
    assert_non_null(mid);
    assert_int_equal(mid[0], '<');
    assert_non_null(strstr(mid, "." NOTICE_ID "@" HOST ">"));
    free(mid);
    /* The boundary carries the notice's ID and random bits. */
    assert_int_equal(strncmp(nt.boundary, NOTICE_ID ".", strlen(NOTICE_ID) + 1), 0);
    assert_int_equal(strlen(nt.boundary), strlen(NOTICE_ID) + 1 + 24);

    assert_int_equal(nt.nparts, 3);
    assert_string_equal(nt.parts[0].header, "Content-Description: Notification\r\n"
                                            "Content-Type: text/plain; charset=us-ascii\r\n");
    assert_string_equal(nt.parts[1].header, "Content-Description: Delivery report\r\n"
                                            "Content-Type: message/delivery-status\r\n");
    assert_string_equal(nt.parts[2].header, "Content-Description: Undelivered Message\r\n"
                                            "Content-Type: message/rfc822\r\n");

    assert_string_equal(nt.parts[1].body,
                        "Reporting-MTA: dns; " HOST "\r\n"
                        "Arrival-Date: " T0_DATE "\r\n"
                        "X-Tern-Queue-ID: " ORIG_ID "\r\n"
                        "X-Tern-Sender: rfc822; alice@example.org\r\n"
                        "\r\n"
                        "Original-Recipient: rfc822;Bob@Example.NET\r\n"
                        "Final-Recipient: rfc822; bob@example.net\r\n"
                        "Action: failed\r\n"
                        "Status: 5.1.1\r\n"
                        "Remote-MTA: dns; mx.example.net\r\n"
                        "Diagnostic-Code: smtp; 550 5.1.1 <bob@example.net>: Recipient address\r\n"
                        " rejected: User unknown\r\n"
                        "Last-Attempt-Date: " T0_DATE "\r\n");

    /* The original comes back byte for byte. */
    assert_int_equal(nt.parts[2].body_len, strlen(ORIGINAL));
    assert_memory_equal(nt.parts[2].body, ORIGINAL, strlen(ORIGINAL));

    const char *text = nt.parts[0].body;
    assert_has_line(text, "This is the Tern mail system at host " HOST ".");
    assert_has_line(text, "<bob@example.net>:");
    char *flat = flatten(text);
    assert_non_null(strstr(flat, "host mx.example.net said: 550 5.1.1 <bob@example.net>: Recipient address "
                                 "rejected: User unknown"));
    assert_non_null(strstr(flat, "Your message is attached"));
    assert_non_null(strstr(flat, "postmaster@" HOST));
    free(flat);
    for (const char *p = text; (p = strstr(p, "\r\n")) != NULL; p += 2)
        assert_true(p == text || p[-1] != ' '); /* no trailing blanks */

    python_check(fx, buf, len, "--rcpts 1 --third message/rfc822");
    notice_free(&nt);
    free(buf);
}

/* ---- header-only returns ------------------------------------------------ */

static void test_headers_only_requested(void **state)
{
    struct fx *fx = *state;
    make_original(fx, ORIGINAL, strlen(ORIGINAL));
    struct dsn_info info = base_info(DSN_FAILURE);
    info.return_headers_only = 1;
    struct dsn_rcpt r = failed_rcpt();
    struct bounce_report rep;
    size_t len;
    char *buf = write_notice(fx, &info, &r, 1, &len, &rep);
    assert_lines_ok(buf, len);
    assert_false(rep.returned_full);
    assert_true(rep.returned_headers);
    struct notice nt;
    parse_notice(buf, len, &nt);
    assert_int_equal(nt.nparts, 3);
    assert_string_equal(nt.parts[2].header, "Content-Description: Undelivered Message Headers\r\n"
                                            "Content-Type: text/rfc822-headers\r\n");
    assert_string_equal(nt.parts[2].body, ORIGINAL_HEADER);
    assert_null(strstr(buf, "Shall we have lunch"));
    char *flat = flatten(nt.parts[0].body);
    assert_non_null(strstr(flat, "The header of your message is attached."));
    assert_null(strstr(flat, "too large"));
    free(flat);
    python_check(fx, buf, len, "--third text/rfc822-headers");
    notice_free(&nt);
    free(buf);
}

static void test_too_big_returns_headers(void **state)
{
    struct fx *fx = *state;
    make_original(fx, ORIGINAL, strlen(ORIGINAL));
    struct dsn_info info = base_info(DSN_FAILURE);
    struct dsn_rcpt r = failed_rcpt();
    struct bounce_report rep;
    size_t len;

    info.max_returned = strlen(ORIGINAL); /* exactly the limit: still in full */
    char *buf = write_notice(fx, &info, &r, 1, &len, &rep);
    assert_true(rep.returned_full);
    struct notice first;
    parse_notice(buf, len, &first);
    free(buf);

    info.max_returned = strlen(ORIGINAL) - 1;
    buf = write_notice(fx, &info, &r, 1, &len, &rep);
    assert_true(rep.returned_headers);
    struct notice nt;
    parse_notice(buf, len, &nt);
    assert_int_equal(nt.nparts, 3);
    assert_string_equal(nt.parts[2].body, ORIGINAL_HEADER);
    char *flat = flatten(nt.parts[0].body);
    assert_non_null(strstr(flat, "too large to return in full"));
    free(flat);
    /* Every notice gets its own boundary. */
    assert_string_not_equal(first.boundary, nt.boundary);
    notice_free(&first);
    notice_free(&nt);
    free(buf);
}

static void test_huge_header(void **state)
{
    struct fx *fx = *state;
    struct strbuf orig = STRBUF_INIT;
    for (int i = 0; orig.len < 1500000; i++)
        strbuf_printf(&orig, "X-Filler-%06d: a long header line to make the header section huge\r\n", i);
    strbuf_puts(&orig, "\r\nbody\r\n");
    make_original(fx, orig.buf, orig.len);
    struct dsn_info info = base_info(DSN_FAILURE);
    info.return_headers_only = 1;
    struct dsn_rcpt r = failed_rcpt();
    size_t len;
    char *buf = write_notice(fx, &info, &r, 1, &len, NULL);
    assert_lines_ok(buf, len);
    struct notice nt;
    parse_notice(buf, len, &nt);
    /* Cut at a line end within the first MiB. */
    size_t n = nt.parts[2].body_len;
    assert_true(n <= 1024 * 1024 && n > 1024 * 1024 - 100);
    assert_memory_equal(nt.parts[2].body, orig.buf, n);
    assert_memory_equal(nt.parts[2].body + n - 2, "\r\n", 2);
    python_check(fx, buf, len, "--third text/rfc822-headers");
    notice_free(&nt);
    free(buf);
    strbuf_free(&orig);
}

/* ---- delay and success notices ------------------------------------------ */

static void test_delay_notice(void **state)
{
    struct fx *fx = *state;
    make_original(fx, ORIGINAL, strlen(ORIGINAL));
    struct dsn_info info = base_info(DSN_DELAY);
    info.envid = "QQ314159";
    struct dsn_rcpt r[2] = {
        {.final_rcpt = "bob@example.net",
         .action = "delayed",
         .status = "4.4.1",
         .remote_mta = "dns; mx.example.net",
         .diagnostic = "x-tern; connect to mx.example.net[192.0.2.1]:25: Connection timed out",
         .last_attempt = T0,
         .will_retry_until = T1},
        /* Not "delayed": Will-Retry-Until must not appear for it. */
        {.final_rcpt = "carol@example.net", .action = "failed", .status = "5.2.2", .will_retry_until = T1},
    };
    struct bounce_report rep;
    size_t len;
    char *buf = write_notice(fx, &info, r, 2, &len, &rep);
    assert_lines_ok(buf, len);
    assert_true(rep.returned_headers);
    struct notice nt;
    parse_notice(buf, len, &nt);
    assert_has_line(nt.header, "Subject: Delayed Mail (still being retried)");
    assert_int_equal(nt.nparts, 3);
    assert_string_equal(nt.parts[2].header, "Content-Description: Delayed Message Headers\r\n"
                                            "Content-Type: text/rfc822-headers\r\n");
    assert_string_equal(nt.parts[2].body, ORIGINAL_HEADER);
    const char *st = nt.parts[1].body;
    /* RFC 3464 order: Original-Envelope-Id comes first. */
    static const char head[] = "Original-Envelope-Id: QQ314159\r\nReporting-MTA: dns; " HOST "\r\n";
    assert_int_equal(strncmp(st, head, strlen(head)), 0);
    assert_has_line(st, "Action: delayed");
    assert_has_line(st, "Status: 4.4.1");
    assert_has_line(st, "Will-Retry-Until: " T1_DATE);
    assert_int_equal(count_line_prefix(st, "Will-Retry-Until:"), 1);
    assert_has_line(st, "Final-Recipient: rfc822; carol@example.net");
    assert_has_line(st, "Status: 5.2.2");
    char *diag = field_value(st, "Diagnostic-Code");
    assert_string_equal(diag, "x-tern; connect to mx.example.net[192.0.2.1]:25: Connection timed out");
    free(diag);
    assert_int_equal(count_line_prefix(st, "Diagnostic-Code:"), 1);

    char *flat = flatten(nt.parts[0].body);
    assert_non_null(strstr(flat, "keep trying until " T1_DATE "."));
    /* An x-tern diagnostic is ours, not the remote host's words. */
    assert_non_null(strstr(flat, "<bob@example.net>: connect to mx.example.net[192.0.2.1]:25"));
    assert_null(strstr(flat, "said:"));
    assert_non_null(strstr(flat, "do not need to send the message again"));
    /* carol has no diagnostic: the status explains. */
    assert_non_null(strstr(flat, "delivery failed: a problem with the recipient's mailbox (status 5.2.2)"));
    free(flat);
    python_check(fx, buf, len, "--rcpts 2 --third text/rfc822-headers");
    notice_free(&nt);
    free(buf);
}

static void test_success_notice(void **state)
{
    struct fx *fx = *state;
    make_original(fx, ORIGINAL, strlen(ORIGINAL));
    struct dsn_info info = base_info(DSN_SUCCESS);
    struct dsn_rcpt r[3] = {
        {.final_rcpt = "bob@example.net",
         .orcpt = "rfc822;bob@example.net",
         .action = "delivered",
         .status = "2.0.0",
         .diagnostic = "x-tern; delivered to maildir",
         .last_attempt = T0,
         .will_retry_until = T1},
        {.final_rcpt = "dave@example.com", .action = "relayed", .status = "2.0.0", .remote_mta = "dns; mx.example.com",
         .diagnostic = "smtp; 250 2.0.0 Ok: queued as 4XyZ"},
        {.final_rcpt = "team@example.net", .action = "expanded", .status = "2.0.0"},
    };
    struct bounce_report rep;
    size_t len;
    char *buf = write_notice(fx, &info, r, 3, &len, &rep);
    assert_lines_ok(buf, len);
    /* Success notices carry the header only, whatever RET said. */
    assert_true(rep.returned_headers);
    struct notice nt;
    parse_notice(buf, len, &nt);
    assert_has_line(nt.header, "Subject: Successful Mail Delivery Report");
    assert_string_equal(nt.parts[2].header, "Content-Description: Delivered Message Headers\r\n"
                                            "Content-Type: text/rfc822-headers\r\n");
    const char *st = nt.parts[1].body;
    assert_has_line(st, "Action: delivered");
    assert_has_line(st, "Action: relayed");
    assert_has_line(st, "Action: expanded");
    assert_int_equal(count_line_prefix(st, "Will-Retry-Until:"), 0);
    assert_int_equal(count_line_prefix(st, "Status: 2.0.0"), 3);
    char *flat = flatten(nt.parts[0].body);
    assert_non_null(strstr(flat, "was delivered to the recipients listed below"));
    assert_non_null(strstr(flat, "marked as relayed"));
    assert_non_null(strstr(flat, "delivered to an alias or list and forwarded to its members"));
    free(flat);
    python_check(fx, buf, len, "--rcpts 3 --third text/rfc822-headers");
    notice_free(&nt);
    free(buf);
}

/* ---- SMTPUTF8 and 8-bit ------------------------------------------------- */

static void test_smtputf8_global_types(void **state)
{
    struct fx *fx = *state;
    static const char orig[] = "From: \xe7\x94\xa8\xe6\x88\xb7 <\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.test>\r\n"
                               "Subject: \xc3\xa9t\xc3\xa9\r\n"
                               "\r\n"
                               "Bonjour \xc3\xa0 tous\r\n";
    make_original(fx, orig, strlen(orig));
    struct dsn_info info = base_info(DSN_FAILURE);
    info.smtputf8 = 1;
    info.to = "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.test";
    struct dsn_rcpt r = {
        .final_rcpt = "j\xc3\xb6rg@\xc3\xa4rger.test",
        .orcpt = "utf-8;J\\x{F6}rg@\\x{E4}rger.test",
        .action = "failed",
        .status = "5.1.1",
        .diagnostic = "smtp; 550 5.1.1 Benutzer unbekannt: j\xc3\xb6rg",
    };
    struct bounce_report rep;
    size_t len;
    char *buf = write_notice(fx, &info, &r, 1, &len, &rep);
    assert_lines_ok(buf, len);
    assert_true(rep.body_8bit);
    assert_true(rep.header_8bit);
    assert_true(rep.returned_full);
    struct notice nt;
    parse_notice(buf, len, &nt);
    assert_has_line(nt.header, "To: <\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.test>");
    assert_has_line(nt.header, "Content-Transfer-Encoding: 8bit");
    /* RFC 6522: the report-type is the second part's subtype */
    assert_has_line(nt.header, "Content-Type: multipart/report; report-type=global-delivery-status;");
    assert_string_equal(nt.parts[0].header, "Content-Description: Notification\r\n"
                                            "Content-Type: text/plain; charset=utf-8\r\n"
                                            "Content-Transfer-Encoding: 8bit\r\n");
    assert_string_equal(nt.parts[1].header, "Content-Description: Delivery report\r\n"
                                            "Content-Type: message/global-delivery-status\r\n"
                                            "Content-Transfer-Encoding: 8bit\r\n");
    assert_string_equal(nt.parts[2].header, "Content-Description: Undelivered Message\r\n"
                                            "Content-Type: message/global\r\n"
                                            "Content-Transfer-Encoding: 8bit\r\n");
    const char *st = nt.parts[1].body;
    /* The unitext form of ORCPT is up-converted (RFC 6533 4.1). */
    assert_has_line(st, "Original-Recipient: utf-8;J\xc3\xb6rg@\xc3\xa4rger.test");
    assert_has_line(st, "Final-Recipient: utf-8; j\xc3\xb6rg@\xc3\xa4rger.test");
    assert_has_line(st, "Diagnostic-Code: smtp; 550 5.1.1 Benutzer unbekannt: j\xc3\xb6rg");
    assert_has_line(nt.parts[0].body, "<j\xc3\xb6rg@\xc3\xa4rger.test>:");
    assert_memory_equal(nt.parts[2].body, orig, strlen(orig));
    python_check(fx, buf, len, "--rcpts 1 --third message/global");
    notice_free(&nt);
    free(buf);

    /* Header only: message/global-headers. */
    info.return_headers_only = 1;
    buf = write_notice(fx, &info, &r, 1, &len, &rep);
    parse_notice(buf, len, &nt);
    assert_string_equal(nt.parts[2].header, "Content-Description: Undelivered Message Headers\r\n"
                                            "Content-Type: message/global-headers\r\n"
                                            "Content-Transfer-Encoding: 8bit\r\n");
    python_check(fx, buf, len, "--third message/global-headers");
    notice_free(&nt);
    free(buf);
}

static void test_8bit_address_without_smtputf8(void **state)
{
    struct fx *fx = *state;
    make_original(fx, ORIGINAL, strlen(ORIGINAL));
    struct dsn_info info = base_info(DSN_FAILURE);
    struct dsn_rcpt r[3] = {
        {.final_rcpt = "jos\xc3\xa9 x@example.com", .action = "failed", .status = "5.1.1",
         .orcpt = "rfc822;Jos\xc3\xa9+a=b@example.com", .diagnostic = "smtp; 550 unknown caf\xc3\xa9"},
        {.final_rcpt = "a+b=c@example.com", .action = "failed", .status = "5.1.1"},
        {.final_rcpt = "\xff\xfe@example.com", .action = "failed", .status = "5.1.1"},
    };
    struct bounce_report rep;
    size_t len;
    char *buf = write_notice(fx, &info, r, 3, &len, &rep);
    assert_lines_ok(buf, len);
    struct notice nt;
    parse_notice(buf, len, &nt);
    assert_string_equal(nt.parts[1].header, "Content-Description: Delivery report\r\n"
                                            "Content-Type: message/delivery-status\r\n");
    const char *st = nt.parts[1].body;
    for (const char *p = st; *p; p++)
        assert_true((unsigned char)*p < 0x80); /* RFC 3464: 7bit */
    /* RFC 6533 utf-8-addr-xtext: SP, '+', '=' and non-ASCII escaped. */
    assert_has_line(st, "Final-Recipient: utf-8; jos\\x{E9}\\x{20}x@example.com");
    assert_has_line(st, "Original-Recipient: utf-8;Jos\\x{E9}\\x{2B}a\\x{3D}b@example.com");
    assert_has_line(st, "Final-Recipient: rfc822; a+b=c@example.com");
    assert_has_line(st, "Final-Recipient: rfc822; ??@example.com"); /* not UTF-8: no faithful form */
    assert_has_line(st, "Diagnostic-Code: smtp; 550 unknown caf??");
    /* The text shows the address as it is, in UTF-8. */
    assert_string_equal(nt.parts[0].header, "Content-Description: Notification\r\n"
                                            "Content-Type: text/plain; charset=utf-8\r\n"
                                            "Content-Transfer-Encoding: 8bit\r\n");
    assert_has_line(nt.parts[0].body, "<jos\xc3\xa9 x@example.com>:");
    assert_has_line(nt.parts[0].body, "<??@example.com>:");
    assert_true(rep.body_8bit);
    python_check(fx, buf, len, "--rcpts 3");
    notice_free(&nt);
    free(buf);
}

static void test_8bit_content(void **state)
{
    struct fx *fx = *state;
    static const char orig[] = "Subject: caf\xe9\r\n\r\nLatin-1 body: na\xefve \xe0 la carte\r\n";
    make_original(fx, orig, strlen(orig));
    struct dsn_info info = base_info(DSN_FAILURE);
    struct dsn_rcpt r = failed_rcpt();
    struct bounce_report rep;
    size_t len;
    char *buf = write_notice(fx, &info, &r, 1, &len, &rep);
    assert_lines_ok(buf, len);
    assert_true(rep.body_8bit);
    assert_false(rep.header_8bit);
    struct notice nt;
    parse_notice(buf, len, &nt);
    assert_has_line(nt.header, "Content-Transfer-Encoding: 8bit");
    assert_string_equal(nt.parts[0].header, "Content-Description: Notification\r\n"
                                            "Content-Type: text/plain; charset=us-ascii\r\n");
    assert_string_equal(nt.parts[2].header, "Content-Description: Undelivered Message\r\n"
                                            "Content-Type: message/rfc822\r\n"
                                            "Content-Transfer-Encoding: 8bit\r\n");
    assert_memory_equal(nt.parts[2].body, orig, strlen(orig));
    python_check(fx, buf, len, "--third message/rfc822");
    notice_free(&nt);
    free(buf);
}

/* ---- originals without the usual shape ------------------------------------ */

static void check_returned(struct fx *fx, const char *orig, int headers_only, const char *expect_body,
                           const char *third)
{
    make_original(fx, orig, strlen(orig));
    struct dsn_info info = base_info(DSN_FAILURE);
    info.return_headers_only = headers_only;
    struct dsn_rcpt r = failed_rcpt();
    size_t len;
    char *buf = write_notice(fx, &info, &r, 1, &len, NULL);
    assert_lines_ok(buf, len);
    struct notice nt;
    parse_notice(buf, len, &nt);
    if (!expect_body) {
        assert_int_equal(nt.nparts, 2);
    } else {
        assert_int_equal(nt.nparts, 3);
        assert_string_equal(nt.parts[2].body, expect_body);
    }
    char *args = xasprintf("--third %s", third);
    python_check(fx, buf, len, args);
    free(args);
    notice_free(&nt);
    free(buf);
}

static void test_original_without_separator(void **state)
{
    struct fx *fx = *state;
    /* The header is ended by a body line: the empty line is put in. */
    check_returned(fx, "Subject: x\r\nFrom: a@example.org\r\nbody line here\r\nmore\r\n", 0,
                   "Subject: x\r\nFrom: a@example.org\r\n\r\nbody line here\r\nmore\r\n", "message/rfc822");
    check_returned(fx, "Subject: x\r\nFrom: a@example.org\r\nbody line here\r\nmore\r\n", 1,
                   "Subject: x\r\nFrom: a@example.org\r\n", "text/rfc822-headers");
    /* No header at all: an empty one goes in front. */
    check_returned(fx, "just a body line\r\nand another\r\n", 0, "\r\njust a body line\r\nand another\r\n",
                   "message/rfc822");
    /* ... and with headers only there is nothing to return. */
    check_returned(fx, "just a body line\r\n", 1, NULL, "none");
    /* All header, no body: returned as it is. */
    check_returned(fx, "Subject: only a header\r\n", 0, "Subject: only a header\r\n", "message/rfc822");
    /* No line end at the end: one is added before the delimiter. */
    check_returned(fx, "Subject: x\r\n\r\nno final line end", 0, "Subject: x\r\n\r\nno final line end\r\n",
                   "message/rfc822");
    check_returned(fx, "Subject: no line end", 1, "Subject: no line end\r\n", "text/rfc822-headers");
}

static void test_empty_original(void **state)
{
    struct fx *fx = *state;
    make_original(fx, "", 0);
    struct dsn_info info = base_info(DSN_FAILURE);
    struct dsn_rcpt r = failed_rcpt();
    struct bounce_report rep;
    size_t len;
    char *buf = write_notice(fx, &info, &r, 1, &len, &rep);
    assert_false(rep.returned_full);
    assert_false(rep.returned_headers);
    struct notice nt;
    parse_notice(buf, len, &nt);
    assert_int_equal(nt.nparts, 2);
    char *flat = flatten(nt.parts[0].body);
    assert_non_null(strstr(flat, "Your message was empty"));
    free(flat);
    python_check(fx, buf, len, "--third none");
    notice_free(&nt);
    free(buf);
}

/* ---- the boundary ---------------------------------------------------------- */

static unsigned char next_random_byte;
static int random_calls;

/* Each call fills the buffer with one byte value, the next call the next. */
static void fake_random(unsigned char *buf, size_t len)
{
    memset(buf, next_random_byte, len);
    next_random_byte += 0x11;
    random_calls++;
}

static char *boundary_for(unsigned char byte)
{
    char hex[3];
    snprintf(hex, sizeof hex, "%02x", byte);
    struct strbuf sb = STRBUF_INIT;
    strbuf_puts(&sb, NOTICE_ID ".");
    for (int i = 0; i < 12; i++)
        strbuf_puts(&sb, hex);
    return strbuf_detach(&sb);
}

static void test_boundary_in_original(void **state)
{
    struct fx *fx = *state;
    char *b11 = boundary_for(0x11), *b22 = boundary_for(0x22);
    /* The first boundary tried is in the body, far into it (across the
     * reader's chunks), the second is not. */
    struct strbuf orig = STRBUF_INIT;
    strbuf_puts(&orig, "Subject: tricky\r\n\r\n");
    for (int i = 0; i < 3000; i++)
        strbuf_puts(&orig, "filler line to push the boundary past the first read chunk\r\n");
    strbuf_printf(&orig, "--%s\r\nnot a real part\r\n--%s--\r\n", b11, b11);
    make_original(fx, orig.buf, orig.len);

    next_random_byte = 0x11;
    random_calls = 0;
    bounce_test_set_random(fake_random);
    struct dsn_info info = base_info(DSN_FAILURE);
    struct dsn_rcpt r = failed_rcpt();
    size_t len;
    char *buf = write_notice(fx, &info, &r, 1, &len, NULL);
    assert_int_equal(random_calls, 2);
    struct notice nt;
    parse_notice(buf, len, &nt);
    assert_string_equal(nt.boundary, b22);
    assert_int_equal(nt.nparts, 3);
    assert_int_equal(nt.parts[2].body_len, orig.len);
    assert_memory_equal(nt.parts[2].body, orig.buf, orig.len);
    python_check(fx, buf, len, "--third message/rfc822");
    notice_free(&nt);
    free(buf);

    /* The same boundary straddling a chunk border: at offset 65536 - 10. */
    strbuf_reset(&orig);
    strbuf_puts(&orig, "Subject: straddle\r\n\r\n");
    while (orig.len < 65536 - 10)
        strbuf_putc(&orig, 'x');
    strbuf_puts(&orig, b11);
    strbuf_puts(&orig, "\r\n");
    make_original(fx, orig.buf, orig.len);
    next_random_byte = 0x11;
    random_calls = 0;
    buf = write_notice(fx, &info, &r, 1, &len, NULL);
    assert_int_equal(random_calls, 2);
    parse_notice(buf, len, &nt);
    assert_string_equal(nt.boundary, b22);
    notice_free(&nt);
    free(buf);

    /* In the returned header only. */
    strbuf_reset(&orig);
    strbuf_printf(&orig, "Subject: %s\r\n\r\nbody\r\n", b11);
    make_original(fx, orig.buf, orig.len);
    info.return_headers_only = 1;
    next_random_byte = 0x11;
    random_calls = 0;
    buf = write_notice(fx, &info, &r, 1, &len, NULL);
    assert_int_equal(random_calls, 2);
    parse_notice(buf, len, &nt);
    assert_string_equal(nt.boundary, b22);
    notice_free(&nt);
    free(buf);
    strbuf_free(&orig);
    free(b11);
    free(b22);
}

static void test_boundary_in_diagnostic(void **state)
{
    struct fx *fx = *state;
    make_original(fx, ORIGINAL, strlen(ORIGINAL));
    char *b33 = boundary_for(0x33), *b44 = boundary_for(0x44);
    char *diag = xasprintf("smtp; 550 go away --%s", b33);
    struct dsn_info info = base_info(DSN_FAILURE);
    struct dsn_rcpt r = failed_rcpt();
    r.diagnostic = diag;
    next_random_byte = 0x33;
    random_calls = 0;
    bounce_test_set_random(fake_random);
    size_t len;
    char *buf = write_notice(fx, &info, &r, 1, &len, NULL);
    struct notice nt;
    parse_notice(buf, len, &nt);
    assert_string_equal(nt.boundary, b44);
    notice_free(&nt);
    free(buf);
    free(diag);
    free(b33);
    free(b44);
}

static void stuck_random(unsigned char *buf, size_t len)
{
    memset(buf, 0x55, len);
}

static void test_boundary_never_free(void **state)
{
    struct fx *fx = *state;
    char *b55 = boundary_for(0x55);
    char *orig = xasprintf("Subject: x\r\n\r\n%s\r\n", b55);
    make_original(fx, orig, strlen(orig));
    bounce_test_set_random(stuck_random);
    struct dsn_info info = base_info(DSN_FAILURE);
    struct dsn_rcpt r = failed_rcpt();
    struct queue_file_writer *w;
    assert_int_equal(queue_file_writer_open(fx->dirfd, "stuck", &w), 0);
    errno = 0;
    assert_int_equal(bounce_write(w, &info, &r, 1, fx->orig_fd, fx->off, fx->len), -1);
    assert_int_equal(errno, EAGAIN);
    queue_file_writer_abort(w);
    free(orig);
    free(b55);
}

/* ---- long and hostile values -------------------------------------------- */

static void test_huge_diagnostic(void **state)
{
    struct fx *fx = *state;
    make_original(fx, ORIGINAL, strlen(ORIGINAL));
    struct dsn_info info = base_info(DSN_FAILURE);

    /* Many words: folded at spaces within 78 columns, cut at the bound. */
    struct strbuf d = STRBUF_INIT;
    strbuf_puts(&d, "smtp; 550");
    for (int i = 0; i < 1000; i++)
        strbuf_printf(&d, " word%03d", i);
    struct dsn_rcpt r = failed_rcpt();
    r.diagnostic = d.buf;
    size_t len;
    char *buf = write_notice(fx, &info, &r, 1, &len, NULL);
    assert_lines_ok(buf, len);
    struct notice nt;
    parse_notice(buf, len, &nt);
    const char *st = nt.parts[1].body;
    for (const char *p = st; *p;) {
        const char *e = strstr(p, "\r\n");
        assert_true(e - p <= 78);
        p = e + 2;
    }
    char *v = field_value(st, "Diagnostic-Code");
    assert_int_equal(strncmp(v, "smtp; 550 word000 word001", 25), 0);
    assert_int_equal(strlen(v), strlen("smtp; ") + BOUNCE_DIAG_MAX + 3);
    assert_string_equal(v + strlen(v) - 3, "...");
    free(v);
    python_check(fx, buf, len, "--rcpts 1");
    notice_free(&nt);
    free(buf);

    /* One word longer than a line: broken at 998 octets. */
    strbuf_reset(&d);
    strbuf_puts(&d, "smtp; ");
    for (int i = 0; i < 5000; i++)
        strbuf_putc(&d, (char)('a' + i % 26));
    r.diagnostic = d.buf;
    buf = write_notice(fx, &info, &r, 1, &len, NULL);
    assert_lines_ok(buf, len);
    parse_notice(buf, len, &nt);
    st = nt.parts[1].body;
    const char *dc = strstr(st, "Diagnostic-Code: smtp;\r\n ");
    assert_non_null(dc);
    const char *line2 = dc + strlen("Diagnostic-Code: smtp;\r\n");
    const char *e2 = strstr(line2, "\r\n");
    assert_int_equal(e2 - line2, 998);
    assert_memory_equal(line2 + 1, d.buf + 6, 997);
    assert_int_equal(strncmp(e2, "\r\n ", 3), 0);
    assert_int_equal(strncmp(e2 + 3, d.buf + 6 + 997, 3), 0);
    /* The text part breaks it too. */
    for (const char *p = nt.parts[0].body; *p;) {
        const char *e = strstr(p, "\r\n");
        assert_true(e - p <= 998);
        p = e + 2;
    }
    python_check(fx, buf, len, "--rcpts 1");
    notice_free(&nt);
    free(buf);

    /* UTF-8 in the global type is cut between characters, never inside. */
    strbuf_reset(&d);
    strbuf_puts(&d, "smtp; 5");
    for (int i = 0; i < 700; i++)
        strbuf_puts(&d, "\xc3\xa9");
    r.diagnostic = d.buf;
    info.smtputf8 = 1;
    buf = write_notice(fx, &info, &r, 1, &len, NULL);
    assert_lines_ok(buf, len);
    parse_notice(buf, len, &nt);
    /* 499 characters after the "5" fill 999 bytes; the 500th would pass
     * the bound. The hard break at 998 octets adds one space. */
    v = field_value(nt.parts[1].body, "Diagnostic-Code");
    assert_int_equal(strlen(v), strlen("smtp; 5") + 998 + 1 + 3);
    assert_string_equal(v + strlen(v) - 5, "\xc3\xa9...");
    free(v);
    python_check(fx, buf, len, "--rcpts 1");
    notice_free(&nt);
    free(buf);
    strbuf_free(&d);
}

static void test_many_recipients(void **state)
{
    struct fx *fx = *state;
    make_original(fx, ORIGINAL, strlen(ORIGINAL));
    struct dsn_info info = base_info(DSN_FAILURE);
    struct dsn_rcpt r[100];
    char *addrs[100];
    for (int i = 0; i < 100; i++) {
        addrs[i] = xasprintf("user%03d@example.net", i);
        r[i] = failed_rcpt();
        r[i].final_rcpt = addrs[i];
        r[i].orcpt = NULL;
    }
    size_t len;
    char *buf = write_notice(fx, &info, r, 100, &len, NULL);
    assert_lines_ok(buf, len);
    struct notice nt;
    parse_notice(buf, len, &nt);
    assert_int_equal(count_line_prefix(nt.parts[1].body, "Final-Recipient: rfc822; user"), 100);
    assert_int_equal(count_line_prefix(nt.parts[1].body, "Action: failed"), 100);
    assert_int_equal(count_line_prefix(nt.parts[1].body, "Original-Recipient:"), 0);
    for (int i = 0; i < 100; i++) {
        char *line = xasprintf("Final-Recipient: rfc822; %s", addrs[i]);
        assert_has_line(nt.parts[1].body, line);
        free(line);
        line = xasprintf("<%s>:", addrs[i]);
        assert_has_line(nt.parts[0].body, line);
        free(line);
        free(addrs[i]);
    }
    python_check(fx, buf, len, "--rcpts 100 --third message/rfc822");
    notice_free(&nt);
    free(buf);
}

static void test_injection(void **state)
{
    struct fx *fx = *state;
    make_original(fx, ORIGINAL, strlen(ORIGINAL));
    struct dsn_info info = base_info(DSN_FAILURE);
    info.envid = "env\r\nX-Evil: 1";
    info.to = "alice@example.org\r\nBcc: victim@example.com";
    struct dsn_rcpt r = {
        .final_rcpt = "bob@example.net\r\nAction: delivered",
        .orcpt = "rfc822;bob@example.net\nStatus: 2.0.0",
        .action = "failed",
        .status = "5.1.1",
        .remote_mta = "dns; mx\r\n\r\n--fake",
        .diagnostic = "smtp; 550 no\r\nX-Evil: 2\r\n\r\nFinal-Recipient: rfc822; evil@example.com\x01\x7f",
    };
    size_t len;
    char *buf = write_notice(fx, &info, &r, 1, &len, NULL);
    assert_lines_ok(buf, len);
    struct notice nt;
    parse_notice(buf, len, &nt);
    assert_int_equal(nt.nparts, 3);
    assert_int_equal(count_line_prefix(buf, "X-Evil"), 0);
    assert_int_equal(count_line_prefix(buf, "Bcc"), 0);
    assert_int_equal(count_line_prefix(buf, "--fake"), 0);
    const char *st = nt.parts[1].body;
    assert_int_equal(count_line_prefix(st, "Final-Recipient:"), 1);
    assert_int_equal(count_line_prefix(st, "Action:"), 1);
    assert_int_equal(count_line_prefix(st, "Status:"), 1);
    assert_has_line(st, "Final-Recipient: rfc822; bob@example.net Action: delivered");
    assert_has_line(st, "Original-Envelope-Id: env X-Evil: 1");
    char *v = field_value(st, "Diagnostic-Code");
    assert_string_equal(v, "smtp; 550 no X-Evil: 2 Final-Recipient: rfc822; evil@example.com??");
    free(v);
    /* The To: local part is quoted rather than let out. */
    assert_has_line(nt.header, "To: <\"alice@example.org  Bcc: victim\"@example.com>");
    python_check(fx, buf, len, "--rcpts 1");
    notice_free(&nt);
    free(buf);
}

/* ---- what the caller gets wrong, and what falls back -------------------- */

static void test_fallbacks(void **state)
{
    struct fx *fx = *state;
    make_original(fx, ORIGINAL, strlen(ORIGINAL));
    struct dsn_info info = base_info(DSN_FAILURE);
    info.mail_name = NULL;
    info.to = "john doe@example.org";
    info.orig_queue_id = NULL;
    info.orig_sender = NULL;
    info.arrival = 0;
    struct dsn_rcpt r[4] = {
        {.final_rcpt = "a@example.net", .action = NULL, .status = NULL, .diagnostic = "user unknown",
         .remote_mta = "mx.example.net"},
        {.final_rcpt = "b@example.net", .action = "bogus", .status = "5.01.1", .orcpt = "b@example.net"},
        {.final_rcpt = "c@example.net", .action = "FAILED", .status = "6.1.1"},
        {.final_rcpt = "d@example.net", .action = "failed", .status = "5.1.1 (extra)"},
    };
    size_t len;
    char *buf = write_notice(fx, &info, r, 4, &len, NULL);
    struct notice nt;
    parse_notice(buf, len, &nt);
    assert_has_line(nt.header, "To: <\"john doe\"@example.org>");
    const char *st = nt.parts[1].body;
    /* Optional per-message fields left out when not given. */
    assert_int_equal(strncmp(st, "Reporting-MTA: dns; " HOST "\r\n\r\n", strlen(HOST) + 24), 0);
    assert_int_equal(count_line_prefix(st, "Action: failed"), 4);
    assert_int_equal(count_line_prefix(st, "Status: 5.0.0"), 4);
    assert_has_line(st, "Diagnostic-Code: x-tern; user unknown");
    assert_has_line(st, "Remote-MTA: dns; mx.example.net");
    assert_has_line(st, "Original-Recipient: unknown;b@example.net");
    assert_int_equal(count_line_prefix(st, "Last-Attempt-Date:"), 0);
    assert_has_line(nt.parts[0].body, "This is the Tern mail system at host " HOST ".");
    python_check(fx, buf, len, "--rcpts 4");
    notice_free(&nt);
    free(buf);

    /* A delay notice defaults to delayed/4.0.0, a success notice to delivered/2.0.0. */
    info.kind = DSN_DELAY;
    struct dsn_rcpt bare = {.final_rcpt = "e@example.net"};
    buf = write_notice(fx, &info, &bare, 1, &len, NULL);
    parse_notice(buf, len, &nt);
    assert_has_line(nt.parts[1].body, "Action: delayed");
    assert_has_line(nt.parts[1].body, "Status: 4.0.0");
    char *flat = flatten(nt.parts[0].body);
    assert_non_null(strstr(flat, "keep trying for a while"));
    free(flat);
    notice_free(&nt);
    free(buf);
    info.kind = DSN_SUCCESS;
    buf = write_notice(fx, &info, &bare, 1, &len, NULL);
    parse_notice(buf, len, &nt);
    assert_has_line(nt.parts[1].body, "Action: delivered");
    assert_has_line(nt.parts[1].body, "Status: 2.0.0");
    notice_free(&nt);
    free(buf);
}

static void expect_einval(struct fx *fx, const struct dsn_info *info, const struct dsn_rcpt *r, size_t n)
{
    struct queue_file_writer *w;
    assert_int_equal(queue_file_writer_open(fx->dirfd, "bad", &w), 0);
    errno = 0;
    assert_int_equal(bounce_write(w, info, r, n, fx->orig_fd, fx->off, fx->len), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(queue_file_writer_length(w), 0); /* nothing written */
    queue_file_writer_abort(w);
}

static void test_invalid_arguments(void **state)
{
    struct fx *fx = *state;
    make_original(fx, ORIGINAL, strlen(ORIGINAL));
    struct dsn_info info = base_info(DSN_FAILURE);
    struct dsn_rcpt r = failed_rcpt();
    expect_einval(fx, &info, &r, 0);
    expect_einval(fx, &info, NULL, 1);
    expect_einval(fx, NULL, &r, 1);
    info.myhostname = NULL;
    expect_einval(fx, &info, &r, 1);
    info.myhostname = "";
    expect_einval(fx, &info, &r, 1);
    info.myhostname = "bad host";
    expect_einval(fx, &info, &r, 1);
    info = base_info(DSN_FAILURE);
    info.to = "";
    expect_einval(fx, &info, &r, 1);
    info = base_info(DSN_FAILURE);
    info.notice_id = "not an id";
    expect_einval(fx, &info, &r, 1);
    info = base_info(DSN_FAILURE);
    r.final_rcpt = NULL;
    expect_einval(fx, &info, &r, 1);
}

/* ---- I/O errors ---------------------------------------------------------- */

static void test_read_errors(void **state)
{
    struct fx *fx = *state;
    make_original(fx, ORIGINAL, strlen(ORIGINAL));
    struct dsn_info info = base_info(DSN_FAILURE);
    struct dsn_rcpt r = failed_rcpt();
    struct queue_file_writer *w;

    /* The queue file ends before the content range does. */
    assert_int_equal(queue_file_writer_open(fx->dirfd, "short", &w), 0);
    errno = 0;
    assert_int_equal(bounce_write(w, &info, &r, 1, fx->orig_fd, fx->off, fx->len + 100000), -1);
    assert_int_equal(errno, EIO);
    queue_file_writer_abort(w);

    /* Longer than the header read: the boundary scan finds the file short. */
    struct strbuf big = STRBUF_INIT;
    strbuf_puts(&big, "Subject: big\r\n\r\n");
    while (big.len < 1200000)
        strbuf_puts(&big, "0123456789012345678901234567890123456789012345678901234567890123456789\r\n");
    make_original(fx, big.buf, big.len);
    assert_int_equal(queue_file_writer_open(fx->dirfd, "short2", &w), 0);
    errno = 0;
    assert_int_equal(bounce_write(w, &info, &r, 1, fx->orig_fd, fx->off, fx->len + 1000000), -1);
    assert_int_equal(errno, EIO);
    queue_file_writer_abort(w);

    assert_int_equal(queue_file_writer_open(fx->dirfd, "badfd", &w), 0);
    errno = 0;
    assert_int_equal(bounce_write(w, &info, &r, 1, -1, fx->off, fx->len), -1);
    assert_int_equal(errno, EBADF);
    queue_file_writer_abort(w);

    /* An empty range needs no reading at all. */
    assert_int_equal(queue_file_writer_open(fx->dirfd, "none", &w), 0);
    assert_int_equal(bounce_write(w, &info, &r, 1, -1, 0, 0), 0);
    assert_true(queue_file_writer_length(w) > 0);
    queue_file_writer_abort(w);
    strbuf_free(&big);
}

static void test_write_error(void **state)
{
    struct fx *fx = *state;
    struct strbuf big = STRBUF_INIT;
    strbuf_puts(&big, "Subject: big\r\n\r\n");
    while (big.len < 300000)
        strbuf_puts(&big, "0123456789012345678901234567890123456789012345678901234567890123456789\r\n");
    make_original(fx, big.buf, big.len);
    struct dsn_info info = base_info(DSN_FAILURE);
    struct dsn_rcpt r = failed_rcpt();
    struct queue_file_writer *w;
    assert_int_equal(queue_file_writer_open(fx->dirfd, "full", &w), 0);
    tf_fs_install();
    tf_fs_arm(TF_WRITE, (struct tf_fault){.nth = 1, .count = TF_ALWAYS, .err = ENOSPC});
    errno = 0;
    assert_int_equal(bounce_write(w, &info, &r, 1, fx->orig_fd, fx->off, fx->len), -1);
    assert_int_equal(errno, ENOSPC);
    tf_fs_uninstall();
    queue_file_writer_abort(w);
    strbuf_free(&big);
}

int main(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_failure_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_headers_only_requested, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_big_returns_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_huge_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delay_notice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_success_notice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_smtputf8_global_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_8bit_address_without_smtputf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_8bit_content, setup, teardown),
        cmocka_unit_test_setup_teardown(test_original_without_separator, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_original, setup, teardown),
        cmocka_unit_test_setup_teardown(test_boundary_in_original, setup, teardown),
        cmocka_unit_test_setup_teardown(test_boundary_in_diagnostic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_boundary_never_free, setup, teardown),
        cmocka_unit_test_setup_teardown(test_huge_diagnostic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_recipients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_injection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fallbacks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_error, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
