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

#endif
