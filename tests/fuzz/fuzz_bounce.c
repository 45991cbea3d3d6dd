/* fuzz_bounce: libFuzzer target for the notice composer (bounces, delay
 * and success notices), fed with a fuzzed original message and fuzzed
 * per-recipient results: what remote servers said (diagnostics, remote MTA
 * names, status codes) and what clients gave (ORCPT, ENVID, the sender).
 * Built and run by `make fuzz` and `make fuzz-long`.
 *
 * Input: two option bytes, then NUL-separated fields: the original
 * sender, ENVID, then per recipient final_rcpt, orcpt, action, status,
 * remote_mta, diagnostic, and last the original message (the rest, NULs
 * included).
 *   byte 0: 0x03 kind (failure, delay, success; 3 is failure), 0x04 RET=HDRS,
 *           0x08 SMTPUTF8, 0x10 max_returned 64 bytes, 0x20 empty fields
 *           are NULL rather than "";
 *   byte 1: number of recipients, 1 + (byte % 4).
 *
 * Checks, besides the sanitizers:
 *  - a notice is always written (the arguments are usable);
 *  - its header scans as a header with From: and ends with an empty line;
 *  - the MIME boundary occurs exactly at the part delimiters: no fuzzed text
 *    and no returned original can open or close a part;
 *  - the generated parts (text and delivery-status) are CRLF lines of at
 *    most 998 octets;
 *  - no 8-bit octet unless the report says the body or header has them;
 *  - the full original is returned only for a failure with RET=FULL that
 *    fits max_returned. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "msg/bounce.h"
#include "msg/msg_header.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_RCPTS 4
#define RCPT_FIELDS 6

/* Reproducible boundaries: the same input gives the same notice. */
static uint64_t random_state;

static void fuzz_random(unsigned char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        random_state ^= random_state << 13;
        random_state ^= random_state >> 7;
        random_state ^= random_state << 17;
        buf[i] = (unsigned char)random_state;
    }
}

static size_t count_occurrences(const char *hay, size_t len, const char *needle)
{
    size_t n = 0, nlen = strlen(needle);
    for (const char *p = hay; (p = memmem(p, len - (size_t)(p - hay), needle, nlen)) != NULL; p += nlen)
        n++;
    return n;
}

/* The boundary="..." parameter of the notice's header. */
static char *header_boundary(const char *notice, size_t header_len)
{
    const char *b = memmem(notice, header_len, "boundary=\"", 10);
    FUZZ_REQUIRE(b != NULL);
    b += 10;
    const char *end = memchr(b, '"', header_len - (size_t)(b - notice));
    FUZZ_REQUIRE(end != NULL && end > b);
    return xstrndup(b, (size_t)(end - b));
}

static void check_lines(const char *p, size_t len)
{
    FUZZ_REQUIRE(fuzz_is_crlf_only(p, len));
    size_t line = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '\r')
            line = 0;
        else if (p[i] != '\n')
            FUZZ_REQUIRE(++line <= 998);
    }
}

static void check_notice(const char *notice, size_t len, const struct dsn_info *info, uint64_t orig_len,
                         const struct bounce_report *rep)
{
    struct msg_header_info h;
    FUZZ_REQUIRE(msg_header_scan(notice, len, &h) == 0);
    FUZZ_REQUIRE(h.has_from == 1 && h.has_body_separator && !h.malformed);
    char *boundary = header_boundary(notice, h.header_len);
    char delimiter[128];
    snprintf(delimiter, sizeof delimiter, "\r\n--%s", boundary);

    int returned = rep->returned_full || rep->returned_headers;
    FUZZ_REQUIRE(!(rep->returned_full && rep->returned_headers));
    size_t parts = 2 + (size_t)returned;
    FUZZ_REQUIRE(count_occurrences(notice, len, boundary) == 1 + parts + 1);   /* the header's, then delimiters */
    FUZZ_REQUIRE(count_occurrences(notice, len, delimiter) == parts + 1);

    /* Everything before the third part is ours. */
    const char *generated_end = notice + len;
    if (returned) {
        const char *p = notice;
        for (int i = 0; i < 3; i++) {
            p = memmem(p, len - (size_t)(p - notice), delimiter, strlen(delimiter));
            FUZZ_REQUIRE(p != NULL);
            p += strlen(delimiter);
        }
        generated_end = p;
    }
    check_lines(notice, (size_t)(generated_end - notice));

    if (!rep->body_8bit && !rep->header_8bit)
        FUZZ_REQUIRE(!fuzz_has_8bit(notice, len));
    if (!rep->header_8bit)
        FUZZ_REQUIRE(!fuzz_has_8bit(notice, h.header_len));
    if (rep->returned_full)
        FUZZ_REQUIRE(info->kind == DSN_FAILURE && !info->return_headers_only && orig_len <= info->max_returned);
    free(boundary);
    msg_header_info_free(&h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_fields in = {data, size, 0};
    unsigned flags = fuzz_byte(&in);
    size_t nrcpts = 1 + fuzz_byte(&in) % MAX_RCPTS;
    int null_when_empty = !!(flags & 0x20);
    char *orig_sender = fuzz_field(&in), *envid = fuzz_field(&in);
    char *fields[MAX_RCPTS][RCPT_FIELDS];
    struct dsn_rcpt rcpts[MAX_RCPTS];
    for (size_t i = 0; i < nrcpts; i++) {
        for (int k = 0; k < RCPT_FIELDS; k++)
            fields[i][k] = fuzz_field(&in);
        /* final_rcpt is always there; the others may be absent. */
#define OPTIONAL(s) (null_when_empty && (s)[0] == '\0' ? NULL : (s))
        rcpts[i] = (struct dsn_rcpt){
            .final_rcpt = fields[i][0],
            .orcpt = OPTIONAL(fields[i][1]),
            .action = OPTIONAL(fields[i][2]),
            .status = OPTIONAL(fields[i][3]),
            .remote_mta = OPTIONAL(fields[i][4]),
            .diagnostic = OPTIONAL(fields[i][5]),
            .last_attempt = 1796558400,
            .will_retry_until = 1796990400,
        };
    }
    size_t orig_len;
    const uint8_t *orig = fuzz_rest(&in, &orig_len);

    static const enum dsn_kind kinds[] = {DSN_FAILURE, DSN_DELAY, DSN_SUCCESS, DSN_FAILURE};
    struct dsn_info info = {
        .kind = kinds[flags & 3],
        .myhostname = "mx.example.org",
        .notice_id = "4Tt7Hq0DzKz1a2c",
        .orig_queue_id = "4Tt7Hq0DzKz1a2b",
        .orig_sender = OPTIONAL(orig_sender),
        .to = "sender@example.com",
        .arrival = 1796554800,
        .now = 1796558400,
        .envid = OPTIONAL(envid),
        .return_headers_only = !!(flags & 0x04),
        .smtputf8 = !!(flags & 0x08),
        .max_returned = flags & 0x10 ? 64 : 10 * 1024 * 1024,
    };
#undef OPTIONAL

    random_state = 0x9e3779b97f4a7c15u;
    bounce_test_set_random(fuzz_random);
    /* The original sits after other bytes in its file, as in a queue file. */
    int fd = memfd_create("orig", MFD_CLOEXEC);
    FUZZ_REQUIRE(fd >= 0 && write(fd, "TERNQF01........", 16) == 16);
    FUZZ_REQUIRE(orig_len == 0 || write(fd, orig, orig_len) == (ssize_t)orig_len);

    struct queue_file_writer *w = fuzz_writer_open("notice");
    struct bounce_report rep;
    int rc = bounce_write_report(w, &info, rcpts, nrcpts, fd, 16, orig_len, &rep);
    FUZZ_REQUIRE(rc == 0);
    size_t len;
    char *notice = fuzz_writer_content(w, "notice", &len);
    check_notice(notice, len, &info, orig_len, &rep);

    free(notice);
    close(fd);
    for (size_t i = 0; i < nrcpts; i++)
        for (int k = 0; k < RCPT_FIELDS; k++)
            free(fields[i][k]);
    free(orig_sender);
    free(envid);
    return 0;
}
