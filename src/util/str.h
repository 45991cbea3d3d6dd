/* str: small string helpers for NUL-terminated ASCII text (protocol
 * keywords, domains, configuration words). No allocation. */
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
/* Makes text that came from outside safe to show on a terminal, in place:
 * CR, LF and TAB become a space (so a log line stays one line), and every
 * other byte that is not part of a printable UTF-8 character becomes '?':
 * the C0 controls (ESC starts terminal escape sequences), DEL, the C1
 * controls U+0080..U+009F (some terminals act on them too) and every byte
 * of an invalid or overlong UTF-8 sequence. Printable UTF-8 is kept (an
 * SMTPUTF8 address stays readable). The length never changes, so it works
 * in place; returns the number of bytes replaced (spaces not counted). */
size_t str_printable(char *s);

#endif
