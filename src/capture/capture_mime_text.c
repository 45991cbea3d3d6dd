/* capture_mime_text: see capture_mime_text.h. */
#include "capture/capture_mime_text.h"

#include <errno.h>
#include <gmime/gmime.h>
#include <iconv.h>
#include <string.h>

#include "util/str.h"

#define REPLACEMENT "\xef\xbf\xbd" /* U+FFFD */

/* Appends n bytes unless that would pass max; 1 when it did not fit. */
static int put_bounded(struct strbuf *out, const char *s, size_t n, size_t max)
{
    if (out->len + n > max)
        return 1;
    strbuf_append(out, s, n);
    return 0;
}

int capture_mime_text_clean(struct strbuf *out, const char *in, size_t len, enum capture_mime_text_mode mode,
                            size_t max)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)in[i];
        if (c >= 0x80) {
            size_t n = str_utf8_len(in + i, len - i);
            if (n == 0) {
                if (put_bounded(out, REPLACEMENT, 3, max))
                    return 1;
                i++;
            } else {
                if (put_bounded(out, in + i, n, max))
                    return 1;
                i += n;
            }
            continue;
        }
        const char *put = (const char *)&in[i];
        size_t put_len = 1;
        if (c == '\r' || c == '\n' || c == '\t') {
            if (mode == CAPTURE_MIME_TEXT_LINE) {
                put = " ";
            } else if (c == '\r') {
                /* CRLF is one line end; the queue stores CRLF, readers want LF. */
                if (i + 1 < len && in[i + 1] == '\n')
                    i++;
                put = "\n";
            }
        } else if (str_is_ctl(c)) {
            put = REPLACEMENT;
            put_len = 3;
        }
        if (put_bounded(out, put, put_len, max))
            return 1;
        i++;
    }
    return 0;
}

static int is_utf8_name(const char *name)
{
    return g_ascii_strcasecmp(name, "UTF-8") == 0 || g_ascii_strcasecmp(name, "utf8") == 0;
}

static int is_ascii_name(const char *name)
{
    static const char *const names[] = {"us-ascii", "ascii", "us_ascii", "ansi_x3.4-1968", "iso646-us", NULL};
    for (size_t i = 0; names[i]; i++)
        if (g_ascii_strcasecmp(name, names[i]) == 0)
            return 1;
    return 0;
}

/* Input bytes handed to one iconv call. glibc's iconv works through all the
 * input it is given before it reports an invalid byte, so with the whole
 * body each of many invalid bytes cost a pass over the rest (17 s for 3 MB
 * of broken Shift_JIS under ASan); slices keep each call short. */
#define ICONV_SLICE 256

/* Converts with cd, each output chunk cleaned into out. */
static int convert(iconv_t cd, struct strbuf *out, const char *in, size_t len, enum capture_mime_text_mode mode,
                   size_t max)
{
    char chunk[4 * ICONV_SLICE];
    char *inp = (char *)in;
    size_t inleft = len;
    for (;;) {
        char *outp = chunk;
        size_t outleft = sizeof chunk;
        /* With all input taken, one last call writes what a stateful
         * charset (ISO-2022-JP) still owes. */
        int flushing = inleft == 0;
        size_t slice = inleft < ICONV_SLICE ? inleft : ICONV_SLICE, slice_left = slice;
        size_t r = flushing ? iconv(cd, NULL, NULL, &outp, &outleft) : iconv(cd, &inp, &slice_left, &outp, &outleft);
        int err = r == (size_t)-1 ? errno : 0;
        inleft -= slice - slice_left;
        if (capture_mime_text_clean(out, chunk, (size_t)(outp - chunk), mode, max))
            return 1;
        if (err == E2BIG)
            continue;
        if (flushing)
            return 0;
        /* A character cut by the slice's end: the next slice starts with it
         * (unless it did not fit in a whole slice, which is no character). */
        if (err == EINVAL && inleft > slice_left && slice_left < slice)
            continue;
        if (err == EILSEQ || err == EINVAL) {
            /* A byte the charset does not define, or a character cut off at
             * the end: mark it and go on from the next byte. */
            if (put_bounded(out, REPLACEMENT, 3, max))
                return 1;
            inp++;
            inleft--;
            iconv(cd, NULL, NULL, NULL, NULL);
            continue;
        }
        if (err != 0)
            return 0;
    }
}

int capture_mime_text_decode(struct strbuf *out, const char *in, size_t len, const char *charset,
                             enum capture_mime_text_mode mode, size_t max)
{
    const char *from = NULL;
    if (charset && *charset && !is_ascii_name(charset) && !is_utf8_name(g_mime_charset_iconv_name(charset)))
        from = charset;
    if (from == NULL && (str_is_utf8(in, len) || (charset && is_utf8_name(g_mime_charset_iconv_name(charset)))))
        return capture_mime_text_clean(out, in, len, mode, max);
    iconv_t cd = from ? g_mime_iconv_open("UTF-8", from) : (iconv_t)-1;
    if (cd == (iconv_t)-1) {
        if (str_is_utf8(in, len))
            return capture_mime_text_clean(out, in, len, mode, max);
        cd = g_mime_iconv_open("UTF-8", "windows-1252");
        if (cd == (iconv_t)-1)
            return capture_mime_text_clean(out, in, len, mode, max);
    }
    int cut = convert(cd, out, in, len, mode, max);
    g_mime_iconv_close(cd);
    return cut;
}
