/* conf_lines: configuration text, shared by main.cf (conf.c) and master.cf
 * (mastercf.c): reading a whole file, splitting it into logical lines, and
 * quoting pieces of it in diagnostics. Declared in conf.h. */
#include "conf/conf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "util/str.h"

/* A main.cf larger than this is a mistake, not a configuration. */
#define CONF_FILE_MAX (64u << 20)

void conf_put_quoted(struct strbuf *sb, const char *s, size_t len, size_t max)
{
    size_t n = len < max ? len : max;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\\')
            strbuf_putc(sb, (char)ch);
        else
            strbuf_printf(sb, "\\x%02x", ch);
    }
    if (len > max)
        strbuf_puts(sb, "...");
}

void conf_lines_init(struct conf_lines *r, const char *data, size_t len)
{
    r->data = data;
    r->len = len;
    r->pos = 0;
    r->lineno = 0;
}

static void lines_advance(struct conf_lines *r, size_t next)
{
    r->pos = next;
    if (r->lineno < INT_MAX)
        r->lineno++;
}

enum conf_line_kind conf_lines_next(struct conf_lines *r, struct strbuf *line, int *lineno)
{
    strbuf_reset(line);
    int started = 0, has_nul = 0;
    while (r->pos < r->len) {
        const char *p = r->data + r->pos;
        size_t rest = r->len - r->pos;
        const char *nl = memchr(p, '\n', rest);
        size_t plen = nl ? (size_t)(nl - p) : rest;
        size_t next = r->pos + plen + (nl ? 1 : 0);
        size_t b = 0, e = plen;
        while (b < plen && str_is_blank((unsigned char)p[b]))
            b++;
        while (e > b && str_is_blank((unsigned char)p[e - 1]))
            e--;
        if (b == e || p[b] == '#') { /* blank or comment: ends nothing */
            lines_advance(r, next);
            continue;
        }
        if (b == 0) {
            if (started)
                break; /* the next logical line starts here */
            started = 1;
            *lineno = r->lineno + 1;
        } else if (!started) {
            lines_advance(r, next);
            *lineno = r->lineno;
            strbuf_append(line, p + b, e - b);
            return CONF_LINE_ORPHAN;
        } else {
            strbuf_putc(line, ' ');
        }
        if (memchr(p + b, '\0', e - b))
            has_nul = 1;
        strbuf_append(line, p + b, e - b);
        lines_advance(r, next);
    }
    if (!started)
        return CONF_LINE_END;
    return has_nul ? CONF_LINE_NUL : CONF_LINE_OK;
}

int conf_read_file(const char *path, struct strbuf *data)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t start = data->len;
    char chunk[8192];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || data->len - start + (size_t)(n > 0 ? n : 0) > CONF_FILE_MAX) {
            int e = n < 0 ? errno : EFBIG;
            close(fd);
            data->len = start;
            if (data->buf)
                data->buf[start] = '\0';
            errno = e;
            return -1;
        }
        if (n == 0)
            break;
        strbuf_append(data, chunk, (size_t)n);
    }
    close(fd);
    return 0;
}
