/* str: small string helpers (see str.h). */
#include "util/str.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

size_t str_copy(char *dst, const char *src, size_t dstsize)
{
    size_t len = strlen(src);
    if (dstsize) {
        size_t n = len < dstsize - 1 ? len : dstsize - 1;
        memcpy(dst, src, n);
        dst[n] = '\0';
    }
    return len;
}

void str_lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

int str_case_prefix(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

char *str_trim(char *s)
{
    char *start = s;
    while (*start && isspace((unsigned char)*start))
        start++;
    size_t len = strlen(start);
    while (len && isspace((unsigned char)start[len - 1]))
        len--;
    memmove(s, start, len);
    s[len] = '\0';
    return s;
}

int str_is_blank(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

int str_is_space(unsigned char c)
{
    return str_is_blank(c) || c == '\n';
}

int str_is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

int str_is_alpha(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

int str_is_alnum(unsigned char c)
{
    return str_is_alpha(c) || str_is_digit(c);
}

int str_hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int str_is_ctl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

int str_is_atext(unsigned char c)
{
    return str_is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

int str_is_dot_atom(const char *s, size_t len, int allow_8bit)
{
    if (len == 0 || s[0] == '.' || s[len - 1] == '.')
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (s[i + 1] == '.')
                return 0;
        } else if (!(c >= 0x80 ? allow_8bit : str_is_atext(c))) {
            return 0;
        }
    }
    return 1;
}

int str_has_8bit(const void *s, size_t n)
{
    const unsigned char *p = s;
    for (size_t i = 0; i < n; i++)
        if (p[i] & 0x80)
            return 1;
    return 0;
}

size_t str_utf8_len(const void *s, size_t avail)
{
    const unsigned char *p = s;
    unsigned char c = p[0];
    unsigned char lo = 0x80, hi = 0xBF; /* the second byte's range */
    size_t n;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0; /* no overlong forms */
        else if (c == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F; /* nothing above U+10FFFF */
    } else {
        return 0;
    }
    if (avail < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return n;
}

int str_is_utf8(const void *s, size_t len)
{
    const unsigned char *p = s;
    for (size_t i = 0; i < len;) {
        size_t n = str_utf8_len(p + i, len - i);
        if (n == 0)
            return 0;
        i += n;
    }
    return 1;
}

uint32_t str_utf8_decode(const void *s, size_t n)
{
    static const unsigned char lead_mask[] = {0, 0x7F, 0x1F, 0x0F, 0x07};
    const unsigned char *p = s;
    uint32_t cp = p[0] & lead_mask[n];
    for (size_t i = 1; i < n; i++)
        cp = (cp << 6) | (p[i] & 0x3Fu);
    return cp;
}

/* The length of the printable character at p (avail bytes left), or 0 for
 * a control, DEL, a C1 control (U+0080..U+009F) or anything not UTF-8. */
static size_t printable_char_len(const unsigned char *p, size_t avail)
{
    if (p[0] >= 0x20 && p[0] < 0x7f)
        return 1;
    if (p[0] < 0x80)
        return 0;
    size_t n = str_utf8_len(p, avail);
    if (n == 0)
        return 0;
    uint32_t cp = str_utf8_decode(p, n);
    return cp >= 0x80 && cp <= 0x9f ? 0 : n;
}

size_t str_printable(char *s)
{
    size_t replaced = 0, left = strlen(s);
    unsigned char *p = (unsigned char *)s;
    while (left) {
        size_t n = printable_char_len(p, left);
        if (n) {
            p += n, left -= n;
            continue;
        }
        if (*p == '\r' || *p == '\n' || *p == '\t') {
            *p = ' ';
        } else {
            *p = '?';
            replaced++;
        }
        p++, left--;
    }
    return replaced;
}
