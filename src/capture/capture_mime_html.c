/* capture_mime_html: see capture_mime_html.h. */
#include "capture/capture_mime_html.h"

#include <string.h>
#include <strings.h>

#include "util/str.h"

struct entity {
    const char *name;
    uint32_t code_point;
};

static const struct entity entities[] = {
    {"amp", '&'},       {"lt", '<'},        {"gt", '>'},        {"quot", '"'},      {"apos", '\''},
    {"nbsp", 0xa0},     {"copy", 0xa9},     {"reg", 0xae},      {"trade", 0x2122},  {"ndash", 0x2013},
    {"mdash", 0x2014},  {"hellip", 0x2026}, {"lsquo", 0x2018},  {"rsquo", 0x2019},  {"ldquo", 0x201c},
    {"rdquo", 0x201d},  {"euro", 0x20ac},   {"pound", 0xa3},    {"yen", 0xa5},      {"middot", 0xb7},
    {"bull", 0x2022},   {"zwnj", 0x200c},   {"zwj", 0x200d},    {"shy", 0xad},      {"laquo", 0xab},
    {"raquo", 0xbb},
};

/* Decodes the character reference at s[i] ('&') into out; the bytes it
 * took, or 0 when it is none we know (the '&' is then plain text). */
static size_t decode_reference(const char *s, size_t len, size_t i, struct strbuf *out)
{
    size_t j = i + 1;
    if (j < len && s[j] == '#') {
        int hex = j + 1 < len && (s[j + 1] == 'x' || s[j + 1] == 'X');
        j += hex ? 2 : 1;
        uint32_t cp = 0;
        size_t digits = 0;
        for (; j < len && digits < 8; j++, digits++) {
            int v = hex ? str_hex_value((unsigned char)s[j]) : str_is_digit((unsigned char)s[j]) ? s[j] - '0' : -1;
            if (v < 0)
                break;
            cp = cp * (hex ? 16 : 10) + (uint32_t)v;
        }
        if (digits == 0)
            return 0;
        if (j < len && s[j] == ';')
            j++;
        if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            cp = 0xfffd;
        strbuf_put_utf8(out, cp);
        return j - i;
    }
    size_t n = 0;
    while (j + n < len && n < 8 && str_is_alnum((unsigned char)s[j + n]))
        n++;
    for (size_t k = 0; k < sizeof entities / sizeof entities[0]; k++) {
        if (strlen(entities[k].name) == n && strncmp(s + j, entities[k].name, n) == 0) {
            strbuf_put_utf8(out, entities[k].code_point);
            return 1 + n + (j + n < len && s[j + n] == ';');
        }
    }
    return 0;
}

/* Appends the len bytes at s with character references decoded. */
static void put_decoded(struct strbuf *out, const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t n = s[i] == '&' ? decode_reference(s, len, i, out) : 0;
        if (n == 0)
            strbuf_putc(out, s[i++]);
        else
            i += n;
    }
}

static int name_is(const char *s, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(s, name, n) == 0;
}

static int name_in(const char *s, size_t n, const char *const *names)
{
    for (size_t i = 0; names[i]; i++)
        if (name_is(s, n, names[i]))
            return 1;
    return 0;
}

/* The position after the first case-insensitive "</name" at or after i
 * (len when there is none: an unclosed <script> hides the rest). */
static size_t skip_to_close(const char *s, size_t len, size_t i, const char *name, size_t name_len)
{
    for (; i + 2 + name_len <= len; i++)
        if (s[i] == '<' && s[i + 1] == '/' && strncasecmp(s + i + 2, name, name_len) == 0)
            return i + 2 + name_len;
    return len;
}

static int is_html_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

/* Reads the attributes of a tag from s[i] to its '>', adding hrefs to links
 * when want_href; returns the position after the '>' (or len). */
static size_t read_attributes(const char *s, size_t len, size_t i, int want_href,
                              struct capture_mime_scan_list *links)
{
    while (i < len) {
        while (i < len && (is_html_blank(s[i]) || s[i] == '/'))
            i++;
        if (i >= len)
            return len;
        if (s[i] == '>')
            return i + 1;
        size_t name = i;
        while (i < len && !is_html_blank(s[i]) && s[i] != '=' && s[i] != '>' && s[i] != '/')
            i++;
        size_t name_len = i - name;
        while (i < len && is_html_blank(s[i]))
            i++;
        if (i >= len || s[i] != '=') {
            if (name_len == 0)
                i++; /* a stray byte such as '"': step over it */
            continue;
        }
        i++;
        while (i < len && is_html_blank(s[i]))
            i++;
        size_t value = i, value_end;
        if (i < len && (s[i] == '"' || s[i] == '\'')) {
            char quote = s[i++];
            value = i;
            while (i < len && s[i] != quote)
                i++;
            value_end = i;
            if (i < len)
                i++;
        } else {
            while (i < len && !is_html_blank(s[i]) && s[i] != '>')
                i++;
            value_end = i;
        }
        if (want_href && name_is(s + name, name_len, "href")) {
            struct strbuf url = STRBUF_INIT;
            put_decoded(&url, s + value, value_end - value);
            /* Browsers trim blanks around a URL and drop tabs and line ends in it. */
            size_t a = 0, b = url.len, o = 0;
            while (a < b && (unsigned char)url.buf[a] <= ' ')
                a++;
            while (b > a && (unsigned char)url.buf[b - 1] <= ' ')
                b--;
            for (size_t k = a; k < b; k++)
                if (url.buf[k] != '\t' && url.buf[k] != '\n' && url.buf[k] != '\r')
                    url.buf[o++] = url.buf[k];
            if (capture_mime_scan_is_web_link(url.buf, o))
                capture_mime_scan_list_add(links, url.buf, o);
            strbuf_free(&url);
        }
    }
    return len;
}

void capture_mime_html_read(const char *html, size_t len, struct strbuf *text,
                            struct capture_mime_scan_list *links)
{
    static const char *const line_tags[] = {"br", "p", "div", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3",
                                            "h4", "h5", "h6", "hr", "blockquote", "pre", "section", "article",
                                            "header", "footer", "center", "dd", "dt", "dl", "body", NULL};
    static const char *const hidden_tags[] = {"script", "style", "title", NULL};
    const char *s = html;
    size_t i = 0;
    while (i < len) {
        if (s[i] == '&') {
            size_t n = decode_reference(s, len, i, text);
            if (n == 0)
                strbuf_putc(text, s[i++]);
            else
                i += n;
            continue;
        }
        if (s[i] != '<') {
            strbuf_putc(text, s[i++]);
            continue;
        }
        if (len - i >= 4 && memcmp(s + i, "<!--", 4) == 0) {
            const char *end = memmem(s + i + 4, len - i - 4, "-->", 3);
            i = end ? (size_t)(end - s) + 3 : len;
            continue;
        }
        if (i + 1 < len && (s[i + 1] == '!' || s[i + 1] == '?')) {
            const char *end = memchr(s + i, '>', len - i);
            i = end ? (size_t)(end - s) + 1 : len;
            continue;
        }
        size_t j = i + 1;
        int closing = j < len && s[j] == '/';
        j += closing;
        size_t name = j;
        while (j < len && str_is_alnum((unsigned char)s[j]))
            j++;
        size_t name_len = j - name;
        if (name_len == 0 || !str_is_alpha((unsigned char)s[name])) {
            strbuf_putc(text, s[i++]); /* "a < b": not a tag */
            continue;
        }
        int want_href = !closing && (name_is(s + name, name_len, "a") || name_is(s + name, name_len, "area"));
        i = read_attributes(s, len, j, want_href, links);
        if (name_in(s + name, name_len, line_tags))
            strbuf_putc(text, '\n');
        else if (name_is(s + name, name_len, "td") || name_is(s + name, name_len, "th"))
            strbuf_putc(text, ' ');
        if (!closing && name_in(s + name, name_len, hidden_tags)) {
            i = skip_to_close(s, len, i, s + name, name_len);
            const char *end = memchr(s + i, '>', len - i);
            i = end ? (size_t)(end - s) + 1 : len;
        }
    }
}
