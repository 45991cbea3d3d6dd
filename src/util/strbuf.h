/* strbuf: a growable byte buffer, always NUL-terminated.
 *
 * Used for building replies, header blocks and records. It grows without a
 * limit of its own: code that fills it from the network checks its bound
 * (line length, header size) before appending. */
#ifndef TERN_UTIL_STRBUF_H
#define TERN_UTIL_STRBUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct strbuf {
    char *buf;   /* NUL-terminated; NULL until first append */
    size_t len;
    size_t cap;
};

#define STRBUF_INIT {NULL, 0, 0}

void strbuf_append(struct strbuf *sb, const void *data, size_t len);
void strbuf_puts(struct strbuf *sb, const char *s);
void strbuf_putc(struct strbuf *sb, char c);
/* Appends code point cp (at most U+10FFFF, not a surrogate) as UTF-8. */
void strbuf_put_utf8(struct strbuf *sb, uint32_t cp);
void strbuf_printf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strbuf_vprintf(struct strbuf *sb, const char *fmt, va_list ap);
void strbuf_reset(struct strbuf *sb);
void strbuf_free(struct strbuf *sb);
/* Returns the contents ("" when empty); valid until the next change. */
const char *strbuf_str(const struct strbuf *sb);
/* Hands the heap string to the caller and empties sb. */
char *strbuf_detach(struct strbuf *sb);

#endif
