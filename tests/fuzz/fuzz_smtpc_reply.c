/* fuzz_smtpc_reply: libFuzzer target for the SMTP client's reply reader
 * and EHLO keyword parser, fed what a remote server sends. Lines are cut
 * as smtpc_conn cuts them (at LF, a CR before it dropped, at most
 * SMTPC_REPLY_LINE_MAX octets); the first reply is read as the greeting,
 * the second as the EHLO reply, the rest as replies to commands. Built and
 * run by `make fuzz` and `make fuzz-long`.
 *
 * Checks, besides the sanitizers, for every complete reply:
 *  - its code is 200..599 and the text starts with it;
 *  - the kept text is bounded by SMTPC_TEXT_MAX, printable and valid UTF-8
 *    (it goes into logs and bounces);
 *  - the enhanced code is empty or class.subject.detail with the class of
 *    a reply, and smtpc_status_for makes one of the code's class from it;
 *  - a SIZE limit is only set when SIZE was offered. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "smtpc/smtpc_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Length of the valid UTF-8 sequence at s, 0 if none (RFC 3629). */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    size_t n = s[0] < 0x80 ? 1 : s[0] >= 0xc2 && s[0] <= 0xdf ? 2 : s[0] >= 0xe0 && s[0] <= 0xef ? 3
             : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : 0;
    if (n == 0 || n > len)
        return 0;
    uint32_t cp = n == 1 ? s[0] : s[0] & (0x7fu >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

static void check_enh(const char *enh, int cls)
{
    size_t len = strlen(enh);
    FUZZ_REQUIRE(len < 16);
    if (len > 0) {
        FUZZ_REQUIRE(enh[0] == '2' || enh[0] == '4' || enh[0] == '5');
        FUZZ_REQUIRE(enh[1] == '.');
        int dots = 0;
        for (size_t i = 1; i < len; i++) {
            FUZZ_REQUIRE(enh[i] == '.' || (enh[i] >= '0' && enh[i] <= '9'));
            dots += enh[i] == '.';
        }
        FUZZ_REQUIRE(dots == 2 && enh[len - 1] != '.');
    }
    char status[16];
    smtpc_status_for(cls * 100, enh, status);
    FUZZ_REQUIRE(status[0] == '0' + cls && strlen(status) < 16);
}

static void check_reply(const struct smtpc_reply *r)
{
    FUZZ_REQUIRE(r->code >= 200 && r->code <= 599);
    FUZZ_REQUIRE(r->nlines >= 1 && r->nlines <= SMTPC_REPLY_LINES_MAX);
    const unsigned char *t = (const unsigned char *)strbuf_str(&r->text);
    size_t len = r->text.len;
    FUZZ_REQUIRE(len >= 3 && len <= SMTPC_TEXT_MAX);
    char code[4];
    snprintf(code, sizeof code, "%d", r->code);
    FUZZ_REQUIRE(memcmp(t, code, 3) == 0);
    for (size_t i = 0; i < len;) {
        FUZZ_REQUIRE(t[i] >= 0x20 && t[i] != 0x7f);
        size_t n = utf8_seq(t + i, len - i);
        FUZZ_REQUIRE(n > 0);
        i += n;
    }
    check_enh(r->enh, r->code / 100);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct smtpc_reply r;
    memset(&r, 0, sizeof r);
    smtpc_reply_reset(&r);
    struct smtpc_ext ext;
    memset(&ext, 0, sizeof ext);
    char *line = xmalloc(SMTPC_REPLY_LINE_MAX + 1);
    unsigned replies = 0;
    size_t pos = 0;
    while (pos < size) {
        const uint8_t *nl = memchr(data + pos, '\n', size - pos);
        if (nl == NULL)
            break;   /* an unfinished line waits for more input */
        size_t total = (size_t)(nl - (data + pos)) + 1;
        if (total > SMTPC_REPLY_LINE_MAX)
            break;   /* "reply line too long": the connection ends */
        size_t len = total - 1;
        memcpy(line, data + pos, len);
        if (len > 0 && line[len - 1] == '\r')
            len--;
        line[len] = '\0';
        pos += total;

        if (r.complete)
            smtpc_reply_reset(&r);
        const char *why = NULL;
        if (smtpc_reply_add_line(&r, line, len, replies == 1 ? &ext : NULL, &why) < 0) {
            FUZZ_REQUIRE(why != NULL);
            break;   /* a protocol failure ends the session */
        }
        if (r.complete) {
            check_reply(&r);
            replies++;
        }
    }
    FUZZ_REQUIRE(ext.size || ext.size_limit == 0);
    smtpc_reply_free(&r);
    free(line);
    return 0;
}
