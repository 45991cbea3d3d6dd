/* Tests for util/base64: the RFC 4648 §10 vectors both ways, round trips of
 * every length and byte value, and the strictness SASL needs (RFC 4954:
 * smtpd answers 501 5.5.2 to anything that is not exactly base64). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "util/base64.h"

static const struct {
    const char *plain, *encoded;
} vectors[] = {
    {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
};

static void test_rfc4648_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        const char *p = vectors[i].plain, *e = vectors[i].encoded;
        char enc[16];
        assert_int_equal(base64_encoded_len(strlen(p)), strlen(e));
        assert_int_equal(base64_encode(p, strlen(p), enc), strlen(e));
        assert_string_equal(enc, e);
        unsigned char dec[16];
        size_t n = 99;
        assert_int_equal(base64_decode(e, strlen(e), dec, &n), 0);
        assert_int_equal(n, strlen(p));
        assert_memory_equal(dec, p, n);
    }
}

static void test_round_trip_all_lengths(void **state)
{
    (void)state;
    unsigned char raw[300], dec[300];
    char enc[401];
    for (size_t i = 0; i < sizeof raw; i++)
        raw[i] = (unsigned char)(i * 37 + 11); /* every byte value occurs */
    for (size_t len = 0; len <= sizeof raw; len++) {
        size_t elen = base64_encode(raw, len, enc);
        assert_int_equal(elen, base64_encoded_len(len));
        assert_true(base64_decoded_max(elen) >= len);
        size_t n;
        assert_int_equal(base64_decode(enc, elen, dec, &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(dec, raw, len);
    }
}

static void test_sasl_plain(void **state)
{
    (void)state;
    size_t len;
    char *resp = base64_sasl_plain("user", "pass", &len);
    assert_string_equal(resp, "AHVzZXIAcGFzcw=="); /* "\0user\0pass" */
    assert_int_equal(len, 16);
    free(resp);
    resp = base64_sasl_plain("", "", &len);
    assert_string_equal(resp, "AAA="); /* two NULs */
    free(resp);
}

static void test_strict_rejections(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "Zg=",       /* length not a multiple of 4 */
        "Zg",        /* unpadded */
        "Z",
        "Zm9v\r\n",  /* line break */
        " Zm9v",     /* leading space */
        "Zm 9v",     /* space inside */
        "Zm9vYg==\n",
        "Z===",      /* too much padding */
        "====",
        "=Zg=",      /* padding first */
        "Zg=a",      /* data after padding */
        "Zm=v",
        "Zg==Zm9v",  /* padding in the middle */
        "Zm9-",      /* base64url letters are not the standard alphabet */
        "Zm9_",
        "Zm9\x80",
        "Zm9*",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unsigned char out[16];
        size_t n = 0;
        if (base64_decode(bad[i], strlen(bad[i]), out, &n) != -1)
            fail_msg("accepted \"%s\"", bad[i]);
    }
    /* A NUL inside the given length is not a letter either. */
    unsigned char out[8];
    size_t n;
    assert_int_equal(base64_decode("Zm\0v", 4, out, &n), -1);
}

static void test_unused_bits_ignored(void **state)
{
    (void)state;
    /* RFC 4648 §3.5 lets a decoder ignore the pad bits; OpenSSL's decoder,
     * which smtpd used before, did too, so "Zh==" still reads as "f". */
    unsigned char out[4];
    size_t n;
    assert_int_equal(base64_decode("Zh==", 4, out, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], 'f');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_vectors),
        cmocka_unit_test(test_round_trip_all_lengths),
        cmocka_unit_test(test_sasl_plain),
        cmocka_unit_test(test_strict_rejections),
        cmocka_unit_test(test_unused_bits_ignored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
