/* fuzz_cleanup: libFuzzer target for cleanup, the header handling and
 * completion between smtpd or pickup and the queue file. Built and run by
 * `make fuzz` and `make fuzz-long`.
 *
 * Input: one byte of options, then NUL-separated fields: the envelope
 * sender and the full name (sendmail -F), then the content as a client
 * sends it. The content goes through the BDAT decoder first, as pickup and
 * smtpd feed cleanup with canonical content (CRLF, no dot stuffing).
 *
 * Options byte: 0x01 complete the header (local submission), 0x02 extract
 * recipients (sendmail -t), 0x04 our Received: field first, 0x08 a small
 * header_size_limit (200), 0x10 a small message_size_limit (600); the top
 * three bits vary how the content is cut into writes.
 *
 * Checks, besides the sanitizers:
 *  - how the content is cut into writes changes nothing (smtpd's reads and
 *    pickup's 64 KiB blocks fall anywhere);
 *  - res.size is what reached the queue file;
 *  - with the header completed, the queue file's header has Date:, a
 *    Message-ID and (for a sender msg_header_from accepts) From:, and
 *    res.message_id is set;
 *  - with recipients extracted, no Bcc: is left, every recipient has a
 *    domain and no control character;
 *  - the Received: field comes first, byte for byte. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "msg/cleanup.h"
#include "msg/msg_header.h"
#include "smtp/smtp_data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RECEIVED "Received: from localhost by mx.example.org (Tern) id FUZZ; Sun, 6 Dec 2026 12:00:00 +0000\r\n"

struct outcome {
    struct cleanup_result res;
    char *content;
    size_t len;
};

/* Feeds content in writes of sizes that step through a pattern picked by
 * cut (0: all at once), as the queue file of name. */
static void run(const struct cleanup_opts *o, const char *content, size_t len, unsigned cut, const char *name,
                struct outcome *out)
{
    struct queue_file_writer *w = fuzz_writer_open(name);
    struct cleanup *c = cleanup_new(w, o);
    size_t pos = 0, step = 0;
    while (pos < len) {
        size_t n = cut == 0 ? len - pos : 1 + (step++ * (2 * cut + 1)) % (13 * cut);
        if (n > len - pos)
            n = len - pos;
        cleanup_write(c, content + pos, n);
        pos += n;
    }
    cleanup_finish(c, &out->res);
    cleanup_free(c);
    out->content = fuzz_writer_content(w, name, &out->len);
}

/* An added Message-ID holds the wall-clock second (msg_header_message_id
 * reads time()), which may tick between the two runs: b's becomes a's. */
static void align_added_message_id(const struct outcome *a, struct outcome *b)
{
    const char *ma = a->res.message_id, *mb = b->res.message_id;
    if (ma == NULL || mb == NULL || strcmp(ma, mb) == 0 || strlen(ma) != strlen(mb) ||
        strcmp(ma + 14, mb + 14) != 0 || strcmp(ma + 14, ".4Tt7Hq0DzKz1a2b@mx.example.org") != 0)
        return;
    char *at = memmem(b->content, b->len, mb, strlen(mb));
    if (at != NULL)
        memcpy(at, ma, strlen(ma));
    memcpy(b->res.message_id, ma, strlen(ma));
}

static void require_same(const struct outcome *a, struct outcome *b)
{
    /* Over a limit, what was written before it depends on the writes, and
     * a content over both limits may be caught by either first (both 552). */
    if ((a->res.status == CLEANUP_OK) != (b->res.status == CLEANUP_OK))
        fprintf(stderr, "status %d written whole, %d written in pieces\n", a->res.status, b->res.status);
    FUZZ_REQUIRE((a->res.status == CLEANUP_OK) == (b->res.status == CLEANUP_OK));
    if (a->res.status != CLEANUP_OK)
        return;
    align_added_message_id(a, b);
    FUZZ_REQUIRE(a->len == b->len && memcmp(a->content, b->content, a->len) == 0);
    FUZZ_REQUIRE(a->res.had_from == b->res.had_from && a->res.hops == b->res.hops);
    FUZZ_REQUIRE(a->res.has_8bit == b->res.has_8bit);
    FUZZ_REQUIRE((a->res.message_id == NULL) == (b->res.message_id == NULL));
    if (a->res.message_id)
        FUZZ_REQUIRE(strcmp(a->res.message_id, b->res.message_id) == 0);
    FUZZ_REQUIRE(a->res.nrcpts == b->res.nrcpts);
    for (size_t i = 0; i < a->res.nrcpts; i++)
        FUZZ_REQUIRE(strcmp(a->res.rcpts[i], b->res.rcpts[i]) == 0);
}

static void check_outcome(const struct cleanup_opts *o, const struct outcome *r)
{
    FUZZ_REQUIRE(r->res.size == r->len);
    if (r->res.status != CLEANUP_OK)
        return;
    FUZZ_REQUIRE(r->res.error_errno == 0);
    const char *h = r->content;
    size_t hlen = r->len;
    if (o->received) {
        size_t rl = strlen(o->received);
        FUZZ_REQUIRE(r->len >= rl && memcmp(r->content, o->received, rl) == 0);
    }
    struct msg_header_info info;
    FUZZ_REQUIRE(msg_header_scan(h, hlen, &info) == 0);
    if (o->add_missing_headers) {
        /* A From: is added when msg_header_from can make one of the sender
         * (smtpd and pickup pass only addresses that it can). */
        char *from = msg_header_from(o->sender[0] ? o->sender : "MAILER-DAEMON@mx.example.org", o->full_name);
        FUZZ_REQUIRE(info.has_from || from == NULL);
        free(from);
        FUZZ_REQUIRE(info.has_date && info.message_id != NULL);
        FUZZ_REQUIRE(r->res.message_id != NULL);
    }
    if (o->extract_recipients) {
        FUZZ_REQUIRE(!info.has_bcc);
        for (size_t i = 0; i < r->res.nrcpts; i++) {
            const char *a = r->res.rcpts[i];
            FUZZ_REQUIRE(strchr(a, '@') != NULL && a[0] != '\0');
            for (const unsigned char *p = (const unsigned char *)a; *p; p++)
                FUZZ_REQUIRE(*p >= 0x20 && *p != 0x7f);
        }
    } else {
        FUZZ_REQUIRE(r->res.nrcpts == 0);
    }
    msg_header_info_free(&info);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_fields in = {data, size, 0};
    unsigned flags = fuzz_byte(&in);
    char *sender = fuzz_field(&in);
    char *full_name = fuzz_field(&in);
    size_t raw_len;
    const uint8_t *raw = fuzz_rest(&in, &raw_len);

    /* What pickup does with the file's content before cleanup sees it. */
    char *content = xmalloc(2 * raw_len + 4);
    struct smtp_data dec;
    smtp_data_init(&dec, SMTP_DATA_BDAT, 0);
    size_t len = 0;
    smtp_data_decode(&dec, (const char *)raw, raw_len, content, &len);
    len += smtp_data_finish(&dec, content + len);

    struct cleanup_opts o = {
        .queue_id = "4Tt7Hq0DzKz1a2b",
        .myhostname = "mx.example.org",
        .myorigin = "example.org",
        .sender = sender,
        .full_name = full_name[0] ? full_name : NULL,
        .add_missing_headers = !!(flags & 0x01),
        .extract_recipients = !!(flags & 0x02),
        .received = flags & 0x04 ? RECEIVED : NULL,
        .header_size_limit = flags & 0x08 ? 200 : 102400,
        .message_size_limit = flags & 0x10 ? 600 : 0,
        .now = 1796558400,
    };
    struct outcome whole, cut;
    run(&o, content, len, 0, "whole", &whole);
    run(&o, content, len, 1 + (flags >> 5), "cut", &cut);
    check_outcome(&o, &whole);
    require_same(&whole, &cut);

    cleanup_result_free(&whole.res);
    cleanup_result_free(&cut.res);
    free(whole.content);
    free(cut.content);
    free(content);
    free(sender);
    free(full_name);
    return 0;
}
