/* libFuzzer target for smtp_addr: arbitrary bytes as an envelope path under
 * every flag combination, checking the invariants callers rely on rather
 * than just "no crash":
 *   - a parse that succeeds ends inside the input and fills every string;
 *   - without SMTP_PATH_ALLOW_UTF8 nothing non-ASCII gets through;
 *   - no control character ever reaches mailbox/local_unquoted/domain;
 *   - the canonical mailbox parses back to itself (a fixed point).
 * Build: clang -fsanitize=fuzzer,address,undefined -std=c17 -D_GNU_SOURCE
 *        -Isrc tests/fuzz/fuzz_smtp_addr.c src/smtp/smtp_addr.c
 *        src/util/mem.c src/util/strbuf.c src/util/log.c */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_addr.h"
#include "util/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text(const char *s, unsigned flags)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7F)
            abort();
        if (*p >= 0x80 && !(flags & SMTP_PATH_ALLOW_UTF8))
            abort();
    }
}

static void check_path(const char *in, size_t len, unsigned flags)
{
    struct smtp_path p;
    const char *end = NULL, *why = NULL;
    if (smtp_path_parse(in, flags, &p, &end, &why) != 0) {
        if (why == NULL || end != in || p.mailbox || p.local || p.domain)
            abort();
        smtp_path_free(&p);
        return;
    }
    if (end <= in || end > in + len || !p.mailbox || !p.local || !p.local_unquoted)
        abort();
    if ((size_t)(end - in) > SMTP_PATH_MAX || strlen(p.local) > SMTP_LOCAL_PART_MAX)
        abort();
    if (p.domain && strlen(p.domain) > SMTP_DOMAIN_MAX)
        abort();
    if (p.is_null && !(flags & SMTP_PATH_ALLOW_NULL))
        abort();
    if (!p.domain && !p.is_null && !(flags & SMTP_PATH_ALLOW_NO_DOMAIN))
        abort();
    check_text(p.mailbox, flags);
    check_text(p.local, flags);
    check_text(p.domain ? p.domain : "", flags);
    if (p.domain && !smtp_domain_valid(p.domain, (flags & SMTP_PATH_ALLOW_UTF8) != 0))
        abort();
    if (!smtp_local_part_valid(p.local, (flags & SMTP_PATH_ALLOW_UTF8) != 0) && p.domain)
        abort();
    if (!p.is_null) {
        char *again = xasprintf("<%s>", p.mailbox);
        struct smtp_path q;
        const char *qend;
        if (smtp_path_parse(again, flags, &q, &qend, NULL) != 0 || *qend != '\0' ||
            strcmp(q.mailbox, p.mailbox) != 0 || q.has_utf8 > p.has_utf8)
            abort();
        smtp_path_free(&q);
        free(again);
    }
    smtp_path_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = xmalloc(size + 1);
    memcpy(in, data, size);
    in[size] = '\0';
    for (unsigned flags = 0; flags < 16; flags++)
        check_path(in, size, flags);
    smtp_domain_valid(in, 0);
    smtp_domain_valid(in, 1);
    smtp_local_part_valid(in, 0);
    smtp_local_part_valid(in, 1);
    free(in);
    return 0;
}
