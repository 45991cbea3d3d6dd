/* fuzz_rfc5322_addr: libFuzzer target for address lists out of header
 * fields (sendmail -t recipients, smtpd's From: check, DMARC's From:).
 * fuzz_msg_header also calls the extractor; this target holds the list
 * properties. Built and run by `make fuzz` and `make fuzz-long`.
 *
 * Checks, besides the sanitizers, what rfc5322_addr.h promises:
 *  - every address is non-empty, without control characters, and already
 *    in its output form (it re-parses to itself);
 *  - the addresses joined with ", " re-parse to the same list (the output
 *    form is one that the parser reads back, quoting included);
 *  - a valid From: value yields its addresses (none only for a group);
 *  - folding (CRLF + space) between tokens changes nothing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "msg/rfc5322_addr.h"
#include "util/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require_same_list(char **a, size_t na, char **b, size_t nb)
{
    FUZZ_REQUIRE(na == nb);
    for (size_t i = 0; i < na; i++)
        FUZZ_REQUIRE(strcmp(a[i], b[i]) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *value = xstrndup((const char *)data, size);
    char **addrs;
    size_t n;
    int count = rfc5322_addr_list(value, &addrs, &n);
    FUZZ_REQUIRE(count >= 0 && (size_t)count == n);
    FUZZ_REQUIRE((n == 0) == (addrs == NULL));

    struct strbuf joined = STRBUF_INIT;
    for (size_t i = 0; i < n; i++) {
        FUZZ_REQUIRE(addrs[i][0] != '\0');
        for (const unsigned char *p = (const unsigned char *)addrs[i]; *p; p++)
            FUZZ_REQUIRE(*p >= 0x20 && *p != 0x7f);
        char **one;
        size_t m;
        FUZZ_REQUIRE(rfc5322_addr_list(addrs[i], &one, &m) == 1);
        FUZZ_REQUIRE(strcmp(one[0], addrs[i]) == 0);
        rfc5322_addr_list_free(one, m);
        strbuf_printf(&joined, "%s%s", i ? ", " : "", addrs[i]);
    }
    char **again;
    size_t nagain;
    rfc5322_addr_list(joined.len ? strbuf_str(&joined) : "", &again, &nagain);
    require_same_list(addrs, n, again, nagain);
    rfc5322_addr_list_free(again, nagain);
    strbuf_free(&joined);

    if (rfc5322_addr_from_valid(value)) {
        /* Valid means no stray CR or LF: only folding, which unfolds to a
         * space, or one quoted by a backslash (obs-qp, RFC 5322 4.1: valid
         * when read, is_email's "deprecated"; such a quoted string or literal
         * is never returned as an address). */
        for (const char *p = strchr(value, '\n'); p; p = strchr(p + 1, '\n'))
            FUZZ_REQUIRE(p > value && ((p[-1] == '\r' && (p[1] == ' ' || p[1] == '\t')) || p[-1] == '\\'));
    }

    /* Folding each space ("a b" -> "a\r\n b") changes nothing, checked for
     * values without quotes, comments or literals, where every space is
     * white space between tokens. */
    if (!strpbrk(value, "\"()[]\\\r\n")) {
        struct strbuf folded = STRBUF_INIT;
        for (const char *p = value; *p; p++) {
            if (*p == ' ')
                strbuf_puts(&folded, "\r\n");
            strbuf_putc(&folded, *p);
        }
        char **f;
        size_t nf;
        rfc5322_addr_list(folded.len ? strbuf_str(&folded) : "", &f, &nf);
        require_same_list(addrs, n, f, nf);
        rfc5322_addr_list_free(f, nf);
        strbuf_free(&folded);
    }
    rfc5322_addr_list_free(addrs, n);
    free(value);
    return 0;
}
