/* libFuzzer target for smtp_cmd. The first input byte chooses which
 * extensions are on; the rest is one command line (NULs included, as a
 * client can send them). Besides "no crash, no leak" it checks that every
 * error is a well-formed reply whose text cannot break the SMTP stream
 * (printable ASCII only) and that successful parses are self-consistent.
 * Build: clang -fsanitize=fuzzer,address,undefined -std=c17 -D_GNU_SOURCE
 *        -Isrc tests/fuzz/fuzz_smtp_cmd.c src/smtp/smtp_cmd.c
 *        src/smtp/smtp_addr.c src/util/mem.c src/util/strbuf.c src/util/log.c */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_cmd.h"
#include "util/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_err(const struct smtp_reply_err *err)
{
    if (err->code != 501 && err->code != 553 && err->code != 555)
        abort();
    if (err->enh == NULL || strlen(err->enh) != 5)
        abort();
    size_t n = strnlen(err->text, sizeof err->text);
    if (n == 0 || n == sizeof err->text)
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)err->text[i] < 0x20 || (unsigned char)err->text[i] > 0x7E)
            abort();
}

static void check_printable(const char *s)
{
    if (!s)
        return;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p < 0x20 && *p != '\t') || *p > 0x7E)
            abort();
}

static void try_mail(const char *arg, const struct smtp_ext *ext)
{
    struct smtp_mail_args a;
    struct smtp_reply_err err;
    if (smtp_parse_mail(arg, ext, &a, &err) != 0) {
        check_err(&err);
        if (a.path.mailbox || a.envid || a.ret || a.auth)
            abort();
        return;
    }
    if (!a.path.mailbox || (a.path.has_utf8 && !a.smtputf8))
        abort();
    if (!ext->esmtp && (a.size != -1 || a.body || a.smtputf8 || a.ret || a.envid || a.auth))
        abort();
    if (a.size < -1 || (a.size >= 0 && !ext->size))
        abort();
    check_printable(a.envid);
    check_printable(a.auth);
    smtp_mail_args_free(&a);
}

static void try_rcpt(const char *arg, const struct smtp_ext *ext)
{
    struct smtp_rcpt_args a;
    struct smtp_reply_err err;
    if (smtp_parse_rcpt(arg, ext, &a, &err) != 0) {
        check_err(&err);
        if (a.path.mailbox || a.orcpt || a.notify)
            abort();
        return;
    }
    if (!a.path.mailbox || a.path.is_null || (a.path.has_utf8 && !ext->smtputf8))
        abort();
    if ((a.notify & SMTP_NOTIFY_NEVER) && a.notify != SMTP_NOTIFY_NEVER)
        abort();
    if ((a.notify || a.orcpt) && !ext->dsn)
        abort();
    check_printable(a.orcpt);
    smtp_rcpt_args_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    unsigned bits = data[0];
    struct smtp_ext ext = {
        .esmtp = !!(bits & 1), .smtputf8 = !!(bits & 2), .size = !!(bits & 4),
        .eightbit = !!(bits & 8), .dsn = !!(bits & 16), .chunking = !!(bits & 32),
        .binarymime = !!(bits & 64), .auth = !!(bits & 128),
    };
    size_t len = size - 1;
    char *line = xmalloc(len + 1);
    memcpy(line, data + 1, len);
    line[len] = '\0';

    struct smtp_cmd cmd;
    int rc = smtp_cmd_parse(line, len, &cmd);
    if (rc == 0) {
        if (memchr(line, '\0', len) || cmd.arg < line || cmd.arg > line + len ||
            cmd.arg + cmd.arg_len != line + len || strlen(cmd.verb_text) > 15)
            abort();
        unsigned long long bsize;
        int last;
        char *name = NULL;
        switch (cmd.verb) {
        case SMTP_MAIL:
            try_mail(cmd.arg, &ext);
            break;
        case SMTP_RCPT:
            try_rcpt(cmd.arg, &ext);
            break;
        case SMTP_BDAT:
            if (smtp_parse_bdat(cmd.arg, &bsize, &last) == 0 && bsize > (1ULL << 63))
                abort();
            break;
        case SMTP_HELO:
        case SMTP_EHLO:
            if (smtp_parse_helo(cmd.arg, &name) == 0 && !smtp_domain_valid(name, 0))
                abort();
            free(name);
            break;
        default:
            break;
        }
    } else if (!memchr(line, '\0', len)) {
        abort();
    }
    /* The argument parsers see the whole line too, for coverage of inputs
     * that do not start with a verb. */
    try_mail(line, &ext);
    try_rcpt(line, &ext);
    free(line);
    return 0;
}
