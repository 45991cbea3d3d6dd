/* base64: RFC 4648 encoding and strict decoding (see base64.h). */
#include "util/base64.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/mem.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t base64_encoded_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

size_t base64_encode(const void *src, size_t n, char *dst)
{
    const unsigned char *s = src;
    char *d = dst;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *d++ = alphabet[v >> 18 & 63];
        *d++ = alphabet[v >> 12 & 63];
        *d++ = alphabet[v >> 6 & 63];
        *d++ = alphabet[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)s[i + 1] << 8;
        *d++ = alphabet[v >> 18 & 63];
        *d++ = alphabet[v >> 12 & 63];
        *d++ = i + 1 < n ? alphabet[v >> 6 & 63] : '=';
        *d++ = '=';
    }
    *d = '\0';
    return (size_t)(d - dst);
}

size_t base64_decoded_max(size_t len)
{
    return len / 4 * 3;
}

/* The value of one letter, or -1. */
static int letter_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int base64_decode(const char *in, size_t len, unsigned char *out, size_t *outlen)
{
    if (len % 4 != 0)
        return -1;
    size_t pad = 0;
    if (len >= 4) {
        pad = in[len - 1] == '=' ? (in[len - 2] == '=' ? 2 : 1) : 0;
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i += 4) {
        int last = i + 4 == len;
        uint32_t v = 0;
        for (size_t k = 0; k < 4; k++) {
            int x;
            if (last && k >= 4 - pad)
                x = 0; /* padding */
            else if ((x = letter_value(in[i + k])) < 0)
                return -1; /* includes a '=' anywhere but the end */
            v = v << 6 | (uint32_t)x;
        }
        out[n++] = (unsigned char)(v >> 16);
        if (!last || pad < 2)
            out[n++] = (unsigned char)(v >> 8);
        if (!last || pad < 1)
            out[n++] = (unsigned char)v;
    }
    *outlen = n;
    return 0;
}

char *base64_sasl_plain(const char *user, const char *password, size_t *len)
{
    size_t ulen = strlen(user), plen = strlen(password);
    size_t rawlen = 1 + ulen + 1 + plen;
    unsigned char *raw = xmalloc(rawlen);
    raw[0] = '\0';
    memcpy(raw + 1, user, ulen);
    raw[1 + ulen] = '\0';
    memcpy(raw + 2 + ulen, password, plen);
    char *out = xmalloc(base64_encoded_len(rawlen) + 1);
    *len = base64_encode(raw, rawlen, out);
    explicit_bzero(raw, rawlen);
    free(raw);
    return out;
}
