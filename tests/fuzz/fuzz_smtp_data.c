/* libFuzzer target: the DATA/BDAT decoder. Besides not crashing, checks the
 * promises of smtp_data.h: output has only CRLF line ends, and the end of
 * data is found exactly where a real <CRLF>.<CRLF> is, and a NUL in what
 * was read is always noticed. Built by `make fuzz`. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *out = malloc(2 * size + 4);
    for (int mode = 0; mode < 2; mode++) {
        struct smtp_data d;
        smtp_data_init(&d, mode ? SMTP_DATA_BDAT : SMTP_DATA_DOT, SMTP_DATA_REJECT_NUL);
        size_t outlen = 0;
        size_t used = smtp_data_decode(&d, (const char *)data, size, out, &outlen);
        if (used > size)
            abort();
        if (mode == 1 && (d.done || used != size))
            abort();
        if (d.done) {
            /* the terminator is ".\r\n" right after a CRLF (or at the start) */
            if (used < 3 || memcmp(data + used - 3, ".\r\n", 3) != 0)
                abort();
            if (used > 3 && (used < 5 || memcmp(data + used - 5, "\r\n", 2) != 0))
                abort();
        }
        outlen += smtp_data_finish(&d, out + outlen);
        if (!d.bare_cr) {
            for (size_t i = 0; i < outlen; i++) {
                if (out[i] == '\r' && (i + 1 >= outlen || out[i + 1] != '\n'))
                    abort();
                if (out[i] == '\n' && (i == 0 || out[i - 1] != '\r'))
                    abort();
            }
        }
        /* a NUL anywhere in what was read is reported */
        if ((memchr(data, '\0', used) != NULL) != (d.nul != 0))
            abort();
    }
    free(out);
    return 0;
}
