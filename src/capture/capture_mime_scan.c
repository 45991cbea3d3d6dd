/* capture_mime_scan: see capture_mime_scan.h for the rules this file keeps. */
#include "capture/capture_mime_scan.h"

#include <stdlib.h>
#include <string.h>

#include "util/mem.h"
#include "util/str.h"

/* A URL longer than this is no link anyone means to follow. */
#define LINK_MAX 8192
/* Rule 5 of the header: the distances, in bytes of the read text. */
#define CODE_AFTER_KEYWORD 40
#define CODE_BEFORE_KEYWORD 30

void capture_mime_scan_list_init(struct capture_mime_scan_list *list, size_t max)
{
    memset(list, 0, sizeof *list);
    list->max = max;
}

void capture_mime_scan_list_add(struct capture_mime_scan_list *list, const char *s, size_t len)
{
    /* Linear: the lists hold at most a few hundred short strings. */
    for (size_t i = 0; i < list->count; i++)
        if (strlen(list->items[i]) == len && memcmp(list->items[i], s, len) == 0)
            return;
    if (list->count >= list->max) {
        list->dropped = 1;
        return;
    }
    list->items = xgrow(list->items, &list->cap, list->count + 1, sizeof *list->items);
    list->items[list->count++] = xstrndup(s, len);
}

void capture_mime_scan_list_free(struct capture_mime_scan_list *list)
{
    for (size_t i = 0; i < list->count; i++)
        free(list->items[i]);
    free(list->items);
    memset(list, 0, sizeof *list);
}

static int ascii_alnum(const char *s, size_t len, size_t i)
{
    return i < len && str_is_alnum((unsigned char)s[i]);
}

/* The length of the scheme prefix ("http://", "https://") at s[i], or 0. */
static size_t web_scheme_len(const char *s, size_t len, size_t i)
{
    if (len - i >= 7 && strncasecmp(s + i, "http://", 7) == 0)
        return 7;
    if (len - i >= 8 && strncasecmp(s + i, "https://", 8) == 0)
        return 8;
    return 0;
}

int capture_mime_scan_is_web_link(const char *s, size_t len)
{
    size_t scheme = web_scheme_len(s, len, 0);
    if (scheme == 0 || len == scheme || len > LINK_MAX || s[scheme] == '/')
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
            return 0;
    return 1;
}

static int ends_url(unsigned char c)
{
    return c <= ' ' || c >= 0x7f || strchr("<>\"`{}|\\^", c) != NULL;
}

/* The end of the URL whose text starts at s[i] after a prefix of prefix_len
 * bytes, trailing punctuation taken off (see the header). */
static size_t url_end(const char *s, size_t len, size_t i, size_t prefix_len)
{
    size_t e = i + prefix_len;
    int parens = 0, brackets = 0;
    while (e < len && !ends_url((unsigned char)s[e])) {
        parens += s[e] == '(' ? 1 : s[e] == ')' ? -1 : 0;
        brackets += s[e] == '[' ? 1 : s[e] == ']' ? -1 : 0;
        e++;
    }
    while (e > i + prefix_len) {
        char c = s[e - 1];
        if (strchr(".,;:!?'*", c) != NULL) {
            e--;
        } else if (c == ')' && parens < 0) {
            parens++;
            e--;
        } else if (c == ']' && brackets < 0) {
            brackets++;
            e--;
        } else {
            break;
        }
    }
    return e;
}

void capture_mime_scan_links(struct capture_mime_scan_list *links, const char *text, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t scheme = web_scheme_len(text, len, i);
        if (scheme == 0 || (i > 0 && ascii_alnum(text, len, i - 1))) {
            i++;
            continue;
        }
        size_t e = url_end(text, len, i, scheme);
        if (capture_mime_scan_is_web_link(text + i, e - i))
            capture_mime_scan_list_add(links, text + i, e - i);
        i = e > i + scheme ? e : i + scheme;
    }
}

/* ---- one-time codes ------------------------------------------------------ */

/* Rule 1: the bytes of a blank (ASCII blanks, no-break and the Unicode
 * spaces U+2000..U+200B, U+202F, U+3000) at s[i], or 0. */
static size_t blank_len(const unsigned char *s, size_t len, size_t i)
{
    if (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n' || s[i] == '\f' || s[i] == '\v')
        return 1;
    if (s[i] == 0xc2 && i + 1 < len && s[i + 1] == 0xa0)
        return 2;
    if (s[i] == 0xe2 && i + 2 < len && s[i + 1] == 0x80 && (s[i + 2] <= 0x8b || s[i + 2] == 0xaf))
        return 3;
    if (s[i] == 0xe3 && i + 2 < len && s[i + 1] == 0x80 && s[i + 2] == 0x80)
        return 3;
    return 0;
}

/* The bytes of a URL at s[i] (rule 1: http://, https://, www.), or 0. */
static size_t url_len(const char *s, size_t len, size_t i)
{
    if (i > 0 && ascii_alnum(s, len, i - 1))
        return 0;
    size_t prefix = web_scheme_len(s, len, i);
    if (prefix == 0 && len - i >= 4 && strncasecmp(s + i, "www.", 4) == 0)
        prefix = 4;
    return prefix ? url_end(s, len, i, prefix) - i : 0;
}

/* Rule 1: blanks folded, URLs out, Unicode dashes (U+2010..U+2015) as '-'. */
static char *read_text(const char *src, size_t len, size_t *out_len)
{
    const unsigned char *s = (const unsigned char *)src;
    char *out = xmalloc(len + 1);
    size_t o = 0, i = 0;
    while (i < len) {
        size_t n = blank_len(s, len, i);
        size_t u = n ? 0 : url_len(src, len, i);
        if (n || u) {
            int line_end = 0;
            while (i < len && ((n = blank_len(s, len, i)) || (u = url_len(src, len, i)))) {
                line_end |= s[i] == '\n';
                i += n ? n : u;
                u = 0;
            }
            out[o++] = line_end ? '\n' : ' ';
            continue;
        }
        if (s[i] == 0xe2 && i + 2 < len && s[i + 1] == 0x80 && s[i + 2] >= 0x90 && s[i + 2] <= 0x95) {
            out[o++] = '-';
            i += 3;
            continue;
        }
        out[o++] = (char)s[i++];
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}

struct keyword {
    size_t start, end;
    int used;
};

struct reading {
    const char *b; /* the text as rule 1 reads it */
    size_t len;
    struct keyword *kw;
    size_t nkw, kw_cap;
};

static int word_is(const char *b, size_t s, size_t e, const char *const *words)
{
    for (size_t i = 0; words[i]; i++)
        if (strlen(words[i]) == e - s && strncasecmp(b + s, words[i], e - s) == 0)
            return 1;
    return 0;
}

/* The word (ASCII letters and digits) before position pos, skipping at most
 * three other bytes; 0 when there is none. */
static int word_before(const char *b, size_t pos, size_t *ws, size_t *we)
{
    size_t i = pos, skipped = 0;
    while (i > 0 && !str_is_alnum((unsigned char)b[i - 1])) {
        if (++skipped > 3)
            return 0;
        i--;
    }
    if (i == 0)
        return 0;
    *we = i;
    while (i > 0 && str_is_alnum((unsigned char)b[i - 1]))
        i--;
    *ws = i;
    return 1;
}

static const char *const keywords[] = {"code", "codes", "passcode", "passcodes", "otp", "pin", "verification",
                                       "verify", "token", "2fa", "mfa", NULL};
static const char *const not_code_after[] = {"zip", "postal", "post", "promo", "promotional", "discount", "coupon",
                                             "voucher", "gift", "country", "area", "error", "status", "source",
                                             "tracking", "qr", "bar", "referral", "sort", "swift", "bank", "tax",
                                             NULL};

static void find_keywords(struct reading *r)
{
    const char *b = r->b;
    size_t i = 0;
    while (i < r->len) {
        if (!str_is_alnum((unsigned char)b[i])) {
            i++;
            continue;
        }
        size_t s = i;
        while (i < r->len && str_is_alnum((unsigned char)b[i]))
            i++;
        /* A word joined to a non-ASCII letter is part of a longer word. */
        if ((s > 0 && (unsigned char)b[s - 1] >= 0x80) || (i < r->len && (unsigned char)b[i] >= 0x80))
            continue;
        size_t start = s;
        int hit = word_is(b, s, i, keywords);
        if (hit && strncasecmp(b + s, "code", 4) == 0) {
            size_t ws, we;
            if (word_before(b, s, &ws, &we) && s - we == 1 && word_is(b, ws, we, not_code_after))
                hit = 0;
        }
        if (!hit && i - s == 4 && strncasecmp(b + s, "time", 4) == 0 && s >= 4 &&
            strncasecmp(b + s - 4, "one", 3) == 0 && (b[s - 1] == '-' || b[s - 1] == ' ') &&
            (s == 4 || !str_is_alnum((unsigned char)b[s - 5]))) {
            hit = 1;
            start = s - 4;
        }
        if (hit) {
            r->kw = xgrow(r->kw, &r->kw_cap, r->nkw + 1, sizeof *r->kw);
            r->kw[r->nkw++] = (struct keyword){start, i, 0};
        }
    }
}

static int is_currency_word(const char *b, size_t s, size_t e)
{
    static const char *const words[] = {"usd", "eur", "gbp", "chf", "jpy", "cad", "aud", "dollars", "euros",
                                        "euro", "pounds", NULL};
    return e > s && word_is(b, s, e, words);
}

/* c is one of the bytes of set (never NUL). */
static int in_set(unsigned char c, const char *set)
{
    return c != 0 && strchr(set, c) != NULL;
}

/* A dollar, euro, pound or yen sign ending at b[pos - 1], or starting at b[pos]. */
static int currency_sign_before(const char *b, size_t pos)
{
    const unsigned char *u = (const unsigned char *)b;
    return (pos >= 1 && u[pos - 1] == '$') ||
           (pos >= 3 && u[pos - 3] == 0xe2 && u[pos - 2] == 0x82 && u[pos - 1] == 0xac) ||
           (pos >= 2 && u[pos - 2] == 0xc2 && (u[pos - 1] == 0xa3 || u[pos - 1] == 0xa5));
}

static int currency_sign_at(const char *b, size_t len, size_t pos)
{
    const unsigned char *u = (const unsigned char *)b;
    return (pos < len && u[pos] == '$') ||
           (pos + 2 < len && u[pos] == 0xe2 && u[pos + 1] == 0x82 && u[pos + 2] == 0xac) ||
           (pos + 1 < len && u[pos] == 0xc2 && (u[pos + 1] == 0xa3 || u[pos + 1] == 0xa5));
}

/* Rule 4: 1 when the candidate at [s, e) is not a code whatever its context. */
static int excluded(const struct reading *r, size_t s, size_t e, const char *value, size_t vlen)
{
    const char *b = r->b;
    const unsigned char *u = (const unsigned char *)b;
    size_t len = r->len;
    if (s > 0) {
        unsigned char p = u[s - 1];
        if (p >= 0x80 || str_is_alnum(p) || in_set(p, "_@#$%+/\\"))
            return 1;
        if (in_set(p, ".,-") && s >= 2 && str_is_alnum(u[s - 2]))
            return 1;
        if (p == ':' && s >= 2 && str_is_digit(u[s - 2]))
            return 1;
    }
    if (e < len) {
        unsigned char q = u[e];
        if (q >= 0x80 || str_is_alnum(q) || in_set(q, "_@#$%+/\\"))
            return 1;
        if (in_set(q, ".,:-") && e + 1 < len && str_is_alnum(u[e + 1]))
            return 1;
    }
    size_t ws, we;
    if (s > 0 && b[s - 1] == ' ' && (currency_sign_before(b, s - 1) ||
                                     (word_before(b, s, &ws, &we) && we == s - 1 && is_currency_word(b, ws, we))))
        return 1;
    if (e < len && b[e] == ' ') {
        size_t ne = e + 1;
        while (ne < len && str_is_alnum(u[ne]))
            ne++;
        if (currency_sign_at(b, len, e + 1) || is_currency_word(b, e + 1, ne))
            return 1;
    }
    if (vlen == 4 && (strncmp(value, "19", 2) == 0 || strncmp(value, "20", 2) == 0) && str_is_digit(u[s])) {
        static const char *const months[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep",
                                             "sept", "oct", "nov", "dec", "january", "february", "march",
                                             "april", "june", "july", "august", "september", "october",
                                             "november", "december", NULL};
        size_t pos = s;
        for (int k = 0; k < 2 && word_before(b, pos, &ws, &we); k++) {
            if (word_is(b, ws, we, months))
                return 1;
            pos = ws;
        }
    }
    return 0;
}

/* Rule 3: the candidate starting at the word [s, e); its span's end and its
 * value (digits without separators) in value[]. 0 when there is none, with
 * *span_end where reading goes on. */
static int candidate(const struct reading *r, size_t s, size_t e, size_t *span_end, char *value, size_t *vlen)
{
    const char *b = r->b;
    size_t n = e - s, digits = 0, upper = 0;
    for (size_t i = s; i < e; i++) {
        digits += str_is_digit((unsigned char)b[i]);
        upper += b[i] >= 'A' && b[i] <= 'Z';
    }
    *span_end = e;
    if (digits != n) {
        if (n < 6 || n > 10 || digits == 0 || digits + upper != n)
            return 0;
        memcpy(value, b + s, n);
        *vlen = n;
        return 1;
    }
    /* Digit groups joined by single spaces or hyphens. */
    size_t groups = 1, end = e, total = n;
    int same = n == 3 || n == 4;
    while (end + 1 < r->len && (b[end] == ' ' || b[end] == '-') && str_is_digit((unsigned char)b[end + 1])) {
        size_t g = end + 1;
        while (g < r->len && str_is_digit((unsigned char)b[g]))
            g++;
        if (g < r->len && str_is_alnum((unsigned char)b[g]))
            break;
        same &= g - (end + 1) == n;
        groups++;
        total += g - (end + 1);
        end = g;
    }
    *span_end = end;
    if (groups == 1 ? n < 4 || n > 10 : groups > 3 || !same || total > 10)
        return 0;
    size_t o = 0;
    for (size_t i = s; i < end; i++)
        if (str_is_digit((unsigned char)b[i]))
            value[o++] = b[i];
    *vlen = o;
    return 1;
}

/* The index of the first keyword that starts at or after pos (keywords are
 * found in order, so both their starts and their ends ascend). */
static size_t first_keyword_from(const struct reading *r, size_t pos)
{
    size_t lo = 0, hi = r->nkw;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->kw[mid].start < pos)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Rule 5. */
static int in_context(struct reading *r, size_t s, size_t e, size_t vlen, int keyword_anywhere)
{
    size_t k = first_keyword_from(r, s);
    struct keyword *nearest = k > 0 ? &r->kw[k - 1] : NULL;
    if (nearest && nearest->end <= s && !nearest->used && s - nearest->end <= CODE_AFTER_KEYWORD) {
        nearest->used = 1;
        return 1;
    }
    int line_start = s == 0 || r->b[s - 1] == '\n';
    if (!line_start)
        return 0;
    k = first_keyword_from(r, e);
    if (k < r->nkw && r->kw[k].start - e <= CODE_BEFORE_KEYWORD &&
        memchr(r->b + e, '\n', r->kw[k].start - e) == NULL)
        return 1;
    return keyword_anywhere && vlen >= 6 && (e == r->len || r->b[e] == '\n');
}

static void scan_reading(struct capture_mime_scan_list *codes, struct reading *r, int keyword_anywhere)
{
    const char *b = r->b;
    size_t i = 0;
    while (i < r->len) {
        if (!str_is_alnum((unsigned char)b[i])) {
            i++;
            continue;
        }
        size_t s = i, e = i;
        while (e < r->len && str_is_alnum((unsigned char)b[e]))
            e++;
        char value[16];
        size_t vlen = 0, span_end;
        if (candidate(r, s, e, &span_end, value, &vlen) && !excluded(r, s, span_end, value, vlen) &&
            in_context(r, s, span_end, vlen, keyword_anywhere))
            capture_mime_scan_list_add(codes, value, vlen);
        i = span_end;
    }
}

void capture_mime_scan_codes(struct capture_mime_scan_list *codes, const char *const *sources, const size_t *lens,
                             size_t n)
{
    struct reading *readings = xcalloc(n ? n : 1, sizeof *readings);
    int keyword_anywhere = 0;
    for (size_t i = 0; i < n; i++) {
        readings[i].b = read_text(sources[i] ? sources[i] : "", sources[i] ? lens[i] : 0, &readings[i].len);
        find_keywords(&readings[i]);
        keyword_anywhere |= readings[i].nkw > 0;
    }
    for (size_t i = 0; i < n && keyword_anywhere; i++)
        scan_reading(codes, &readings[i], keyword_anywhere);
    for (size_t i = 0; i < n; i++) {
        free((char *)readings[i].b);
        free(readings[i].kw);
    }
    free(readings);
}
