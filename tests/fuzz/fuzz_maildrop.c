/* fuzz_maildrop: libFuzzer target for the maildrop file reader: what
 * pickup makes of a file any local user can leave in maildrop/. The input
 * is the whole file. Built and run by `make fuzz` and `make fuzz-long`.
 *
 * Checks, besides the sanitizers:
 *  - a file is read, or refused with a reason, never half-read: a refusal
 *    leaves the envelope empty;
 *  - what was read has no control characters (pickup logs it and turns it
 *    into envelope addresses) and addresses within MAILDROP_MAX_ADDR;
 *  - the content starts where the reader says, after the empty line;
 *  - writing the envelope back and reading it again gives the same envelope
 *    (sendmail's writer and pickup's reader agree);
 *  - the line-end normalisation of the content gives CRLF line ends only,
 *    however the content is cut into buffers. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "spool/maildrop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text(const char *s)
{
    FUZZ_REQUIRE(s != NULL && strlen(s) <= MAILDROP_MAX_ADDR);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        FUZZ_REQUIRE(*p >= 0x20 && *p != 0x7f);
}

static void require_same_env(const struct maildrop_env *a, const struct maildrop_env *b)
{
    FUZZ_REQUIRE(strcmp(a->sender, b->sender) == 0);
    FUZZ_REQUIRE((a->full_name == NULL) == (b->full_name == NULL));
    if (a->full_name)
        FUZZ_REQUIRE(strcmp(a->full_name, b->full_name) == 0);
    FUZZ_REQUIRE(a->extract == b->extract && a->nrcpts == b->nrcpts);
    for (size_t i = 0; i < a->nrcpts; i++)
        FUZZ_REQUIRE(strcmp(a->rcpts[i], b->rcpts[i]) == 0);
}

/* Normalises content in buffers of step bytes; returns the output length. */
static size_t normalise(const char *in, size_t len, size_t step, char *out)
{
    struct line_norm n = {0};
    size_t o = 0;
    for (size_t pos = 0; pos < len; pos += step)
        o += maildrop_line_norm_feed(&n, in + pos, len - pos < step ? len - pos : step, out + o);
    o += maildrop_line_norm_end(&n, out + o);
    return o;
}

static void check_content(const char *content, size_t len)
{
    char *whole = xmalloc(2 * len + 2), *cut = xmalloc(2 * len + 2);
    size_t n = normalise(content, len, len ? len : 1, whole);
    FUZZ_REQUIRE(n <= 2 * len + 2);
    FUZZ_REQUIRE(fuzz_is_crlf_only(whole, n));
    FUZZ_REQUIRE(normalise(content, len, 1, cut) == n && memcmp(whole, cut, n) == 0);
    free(whole);
    free(cut);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fmemopen((void *)data, size ? size : 1, "r");
    FUZZ_REQUIRE(f != NULL);
    if (size == 0) {
        fclose(f);
        return 0;
    }
    struct maildrop_env env;
    char err[256] = "";
    if (maildrop_read_env(f, &env, err, sizeof err) != 0) {
        FUZZ_REQUIRE(err[0] != '\0');
        FUZZ_REQUIRE(env.sender == NULL && env.full_name == NULL && env.rcpts == NULL && env.nrcpts == 0);
        fclose(f);
        return 0;
    }
    fclose(f);
    check_text(env.sender);
    if (env.full_name)
        check_text(env.full_name);
    for (size_t i = 0; i < env.nrcpts; i++) {
        check_text(env.rcpts[i]);
        FUZZ_REQUIRE(env.rcpts[i][0] != '\0');
    }
    FUZZ_REQUIRE(env.content_offset >= (long)strlen(MAILDROP_MAGIC) + 1 && (size_t)env.content_offset <= size);
    FUZZ_REQUIRE(data[env.content_offset - 1] == '\n' && data[env.content_offset - 2] == '\n');
    check_content((const char *)data + env.content_offset, size - (size_t)env.content_offset);

    char *copy = NULL;
    size_t copy_len = 0;
    FILE *w = open_memstream(&copy, &copy_len);
    FUZZ_REQUIRE(w != NULL);
    FUZZ_REQUIRE(maildrop_write_env(w, &env) == 0);
    FUZZ_REQUIRE(fclose(w) == 0);
    FILE *r = fmemopen(copy, copy_len, "r");
    FUZZ_REQUIRE(r != NULL);
    struct maildrop_env again;
    FUZZ_REQUIRE(maildrop_read_env(r, &again, err, sizeof err) == 0);
    FUZZ_REQUIRE((size_t)again.content_offset == copy_len);
    require_same_env(&env, &again);
    fclose(r);
    free(copy);
    maildrop_env_free(&again);
    maildrop_env_free(&env);
    return 0;
}
