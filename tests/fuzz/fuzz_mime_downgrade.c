/* fuzz_mime_downgrade: libFuzzer target for the 8-bit to 7-bit conversion
 * the SMTP client applies before relaying to a server without 8BITMIME.
 * The input is the queued content; it sits at an offset in its file, as in
 * a queue file. Built and run by `make fuzz` and `make fuzz-long`.
 *
 * Checks, besides the sanitizers, what mime_downgrade.h promises:
 *  - it converts or gives up with a reason, and never fails on a readable file;
 *  - a converted message is 7-bit, and has CRLF line ends only when the
 *    input had (a bare LF in copied 7-bit text is copied as it is);
 *  - a message with no 8-bit octet is copied unchanged;
 *  - converting the output again changes nothing (it is 7-bit);
 *  - mime_downgrade_has_8bit agrees with a plain scan. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "msg/mime_downgrade.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Where the content starts in its file, like QF_HEADER_SIZE in a queue file. */
#define CONTENT_OFFSET 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int in = memfd_create("in", MFD_CLOEXEC), out = memfd_create("out", MFD_CLOEXEC);
    FUZZ_REQUIRE(in >= 0 && out >= 0);
    static const char envelope_stand_in[CONTENT_OFFSET] = "TERNQF01........";
    FUZZ_REQUIRE(write(in, envelope_stand_in, CONTENT_OFFSET) == CONTENT_OFFSET);
    FUZZ_REQUIRE(size == 0 || write(in, data, size) == (ssize_t)size);

    int has_8bit = fuzz_has_8bit(data, size);
    FUZZ_REQUIRE(mime_downgrade_has_8bit(in, CONTENT_OFFSET, size) == has_8bit);

    uint64_t out_len = 0;
    const char *reason = NULL;
    int rc = mime_downgrade(in, CONTENT_OFFSET, size, out, &out_len, &reason);
    FUZZ_REQUIRE(rc == 0 || rc == MIME_DG_IMPOSSIBLE);
    if (rc == MIME_DG_IMPOSSIBLE) {
        FUZZ_REQUIRE(has_8bit);
        FUZZ_REQUIRE(reason != NULL && reason[0] != '\0');
    } else {
        size_t len;
        char *conv = fuzz_read_all(out, &len);
        FUZZ_REQUIRE(len == out_len);
        FUZZ_REQUIRE(!fuzz_has_8bit(conv, len));
        if (!has_8bit)
            FUZZ_REQUIRE(len == size && memcmp(conv, data, size) == 0);
        if (fuzz_is_crlf_only((const char *)data, size))
            FUZZ_REQUIRE(fuzz_is_crlf_only(conv, len));

        /* Once 7-bit, it stays as it is. */
        int again = memfd_create("again", MFD_CLOEXEC);
        FUZZ_REQUIRE(again >= 0);
        uint64_t again_len = 0;
        FUZZ_REQUIRE(mime_downgrade(out, 0, len, again, &again_len, NULL) == 0);
        FUZZ_REQUIRE(again_len == len);
        size_t len2;
        char *conv2 = fuzz_read_all(again, &len2);
        FUZZ_REQUIRE(len2 == len && memcmp(conv2, conv, len) == 0);
        free(conv2);
        close(again);
        free(conv);
    }

    /* A range past the end of the file is an I/O error, not a conversion. */
    FUZZ_REQUIRE(mime_downgrade(in, CONTENT_OFFSET, size + 1, out, NULL, NULL) == -1);
    close(in);
    close(out);
    return 0;
}
