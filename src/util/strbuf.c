/* strbuf: growable NUL-terminated byte buffer (see strbuf.h). */
#include "util/strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/mem.h"

/* The least room strbuf_vprintf makes before formatting in place: short
 * texts, the usual case, then need no second pass. */
#define STRBUF_PRINTF_ROOM 64

static void strbuf_reserve(struct strbuf *sb, size_t extra)
{
    sb->buf = xgrow(sb->buf, &sb->cap, sb->len + extra + 1, 1);
}

void strbuf_append(struct strbuf *sb, const void *data, size_t len)
{
    strbuf_reserve(sb, len);
    if (len)
        memcpy(sb->buf + sb->len, data, len);
    sb->len += len;
    sb->buf[sb->len] = '\0';
}

void strbuf_puts(struct strbuf *sb, const char *s)
{
    strbuf_append(sb, s, strlen(s));
}

void strbuf_putc(struct strbuf *sb, char c)
{
    strbuf_append(sb, &c, 1);
}

void strbuf_vprintf(struct strbuf *sb, const char *fmt, va_list ap)
{
    /* Formats straight into the room the buffer has, so text that fits
     * (most: a buffer is reused, or has grown past the first append) costs
     * one vsnprintf pass instead of a measuring pass and a writing pass. */
    if (sb->cap - sb->len < STRBUF_PRINTF_ROOM)
        strbuf_reserve(sb, STRBUF_PRINTF_ROOM);
    size_t room = sb->cap - sb->len;
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(sb->buf + sb->len, room, fmt, ap2);
    va_end(ap2);
    if (n <= 0) {
        sb->buf[sb->len] = '\0';   /* an encoding error may leave a part */
        return;
    }
    if ((size_t)n >= room) {
        strbuf_reserve(sb, (size_t)n);
        vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
    }
    sb->len += (size_t)n;
}

void strbuf_printf(struct strbuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    strbuf_vprintf(sb, fmt, ap);
    va_end(ap);
}

void strbuf_reset(struct strbuf *sb)
{
    sb->len = 0;
    if (sb->buf)
        sb->buf[0] = '\0';
}

void strbuf_free(struct strbuf *sb)
{
    free(sb->buf);
    sb->buf = NULL;
    sb->len = sb->cap = 0;
}

const char *strbuf_str(const struct strbuf *sb)
{
    return sb->buf ? sb->buf : "";
}

char *strbuf_detach(struct strbuf *sb)
{
    char *s = sb->buf ? sb->buf : xstrdup("");
    sb->buf = NULL;
    sb->len = sb->cap = 0;
    return s;
}

void strbuf_put_utf8(struct strbuf *sb, uint32_t cp)
{
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp, n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6)), b[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12)), b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
    } else {
        b[0] = (char)(0xF0 | (cp >> 18)), b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), b[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
    }
    strbuf_append(sb, b, n);
}
