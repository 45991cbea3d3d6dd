/* str: small string and character helpers for ASCII text (protocol
 * keywords, domains, configuration words, table files). Any module may use
 * them. No allocation. The character classes are ASCII-only on purpose:
 * <ctype.h> depends on the locale, protocols and file formats do not. */
#ifndef TERN_UTIL_STR_H
#define TERN_UTIL_STR_H

#include <stddef.h>

/* Copies src into dst of size dstsize, always NUL-terminating; returns
 * strlen(src) so truncation is detectable (like strlcpy). */
size_t str_copy(char *dst, const char *src, size_t dstsize);
/* ASCII-only case helpers: SMTP keywords and domains are ASCII. */
void str_lower(char *s);
int str_case_prefix(const char *s, const char *prefix);
/* Trims ASCII whitespace at both ends, in place; returns s. */
char *str_trim(char *s);

/* Blanks of a configuration or table line: space, tab, CR, FF, VT (not LF,
 * which ends the line). */
int str_is_blank(unsigned char c);
/* str_is_blank or LF: the C locale's isspace(). */
int str_is_space(unsigned char c);
int str_is_digit(unsigned char c);
int str_is_alpha(unsigned char c);
int str_is_alnum(unsigned char c);
/* Control characters: 0x00-0x1f and DEL. */
int str_is_ctl(unsigned char c);
/* RFC 5322 atext, ASCII only (callers that allow UTF-8 add c >= 0x80). */
int str_is_atext(unsigned char c);
/* 1 when any of the n bytes at s has the high bit set. */
int str_has_8bit(const void *s, size_t n);

#endif
