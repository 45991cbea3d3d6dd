/* str: small string and character helpers for ASCII text (protocol
 * keywords, domains, configuration words, table files). Any module may use
 * them. No allocation. The character classes are ASCII-only on purpose:
 * <ctype.h> depends on the locale, protocols and file formats do not. */
#ifndef TERN_UTIL_STR_H
#define TERN_UTIL_STR_H

#include <stddef.h>
#include <stdint.h>

/* Copies src into dst of size dstsize, always NUL-terminating; returns
 * strlen(src) so truncation is detectable (like strlcpy). */
size_t str_copy(char *dst, const char *src, size_t dstsize);
/* ASCII-only case helpers: SMTP keywords and domains are ASCII. */
void str_lower(char *s);
int str_case_prefix(const char *s, const char *prefix);
/* Trims ASCII whitespace at both ends, in place; returns s. */
char *str_trim(char *s);
/* Makes text that came from outside safe to show on a terminal, in place:
 * CR, LF and TAB become a space (so a log line stays one line), and every
 * other byte that is not part of a printable UTF-8 character becomes '?':
 * the C0 controls (ESC starts terminal escape sequences), DEL, the C1
 * controls U+0080..U+009F (some terminals act on them too) and every byte
 * of an invalid or overlong UTF-8 sequence. Printable UTF-8 is kept (an
 * SMTPUTF8 address stays readable). The length never changes, so it works
 * in place; returns the number of bytes replaced (spaces not counted). */
size_t str_printable(char *s);

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
/* The value of a hexadecimal digit (either case), or -1. */
int str_hex_value(unsigned char c);
/* RFC 5322 atext, ASCII only (callers that allow UTF-8 add c >= 0x80). */
int str_is_atext(unsigned char c);
/* RFC 5322 dot-atom-text: atext runs joined by single dots, none at either
 * end; with allow_8bit, octets >= 0x80 count as atext (RFC 6532). */
int str_is_dot_atom(const char *s, size_t len, int allow_8bit);
/* 1 when any of the n bytes at s has the high bit set. */
int str_has_8bit(const void *s, size_t n);

/* UTF-8 as RFC 3629 defines it: no overlong forms, no surrogates, nothing
 * past U+10FFFF (the classic ways to slip a second meaning past a byte-level
 * check). str_utf8_len: the length of the well-formed character at s (1 for
 * an ASCII byte), 0 when the avail (>= 1) bytes there do not start one. Bytes
 * are read in order and reading stops at the first bad one. */
size_t str_utf8_len(const void *s, size_t avail);
/* 1 when the len bytes at s are all well-formed UTF-8. */
int str_is_utf8(const void *s, size_t len);
/* The code point of the n-byte character at s (n from str_utf8_len). */
uint32_t str_utf8_decode(const void *s, size_t n);

#endif
