/* base64: RFC 4648 §4 base64 (the standard alphabet, '=' padding), for SASL
 * (smtpd's AUTH, the SMTP client's AUTH PLAIN, Dovecot's resp=).
 *
 * Decoding is strict, as RFC 4954 wants of AUTH responses: a length that is
 * a multiple of four, only the 64 letters, and '=' only as the one or two
 * last characters; whitespace and line breaks are errors. The unused low
 * bits of the last letter are not checked (RFC 4648 §3.5 allows decoders to
 * ignore them). An empty input decodes to nothing; callers for which an
 * empty string means something else check that first.
 *
 * Any module may use it; no state, and no allocation except in
 * base64_sasl_plain. */
#ifndef TERN_UTIL_BASE64_H
#define TERN_UTIL_BASE64_H

#include <stddef.h>

/* Characters that n bytes encode to (without the NUL). */
size_t base64_encoded_len(size_t n);
/* Writes the encoding of src[0..n) and a NUL to dst, which holds
 * base64_encoded_len(n) + 1 bytes. Returns the length written (no NUL). */
size_t base64_encode(const void *src, size_t n, char *dst);
/* Most bytes len characters can decode to. */
size_t base64_decoded_max(size_t len);
/* Decodes in[0..len) into out (room for base64_decoded_max(len) bytes);
 * 0 with *outlen set, or -1 when in is not strict base64. */
int base64_decode(const char *in, size_t len, unsigned char *out, size_t *outlen);

/* The SASL PLAIN response (RFC 4616) with no authorization identity:
 * base64 of "\0user\0password", as a NUL-terminated heap string of *len
 * characters. The plain bytes are wiped; the caller wipes and frees the
 * result, which is as good as the password. */
char *base64_sasl_plain(const char *user, const char *password, size_t *len);

#endif
