/* dmarc_record: the DMARC policy record (RFC 9989 4.7, 4.8), TXT joining and
 * domain-name normalization (see dmarc.h for the rules chosen). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailauth/dmarc.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

static int is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* s[0..len) equals word, ASCII case-insensitively. */
static int word_is(const char *s, size_t len, const char *word)
{
    size_t n = strlen(word);
    if (len != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)s[i]) != word[i])
            return 0;
    return 1;
}

/* Trims SP/HTAB off both ends of [*s, *s + *len). */
static void trim_wsp(const char **s, size_t *len)
{
    while (*len > 0 && is_wsp(**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && is_wsp((*s)[*len - 1]))
        (*len)--;
}

static void set_err(char *err, const char *msg)
{
    if (err != NULL)
        snprintf(err, DMARC_ERR_MAX, "%s", msg);
}

const char *dmarc_policy_name(enum dmarc_policy p)
{
    switch (p) {
    case DMARC_POLICY_NONE: return "none";
    case DMARC_POLICY_QUARANTINE: return "quarantine";
    case DMARC_POLICY_REJECT: return "reject";
    case DMARC_POLICY_UNSET: break;
    }
    return "";
}

static enum dmarc_policy parse_request(const char *v, size_t len)
{
    if (word_is(v, len, "none"))
        return DMARC_POLICY_NONE;
    if (word_is(v, len, "quarantine"))
        return DMARC_POLICY_QUARANTINE;
    if (word_is(v, len, "reject"))
        return DMARC_POLICY_REJECT;
    return DMARC_POLICY_UNSET;
}

/* fo: 0, 1, d, s separated by colons, each at most once, not 0 with 1. */
static unsigned parse_fo(const char *v, size_t len)
{
    unsigned bits = 0;
    size_t i = 0;
    while (i <= len) {
        size_t j = i;
        while (j < len && v[j] != ':')
            j++;
        const char *item = v + i;
        size_t n = j - i;
        trim_wsp(&item, &n);
        unsigned bit = 0;
        if (n == 1) {
            switch (lower((unsigned char)item[0])) {
            case '0': bit = DMARC_FO_0; break;
            case '1': bit = DMARC_FO_1; break;
            case 'd': bit = DMARC_FO_D; break;
            case 's': bit = DMARC_FO_S; break;
            default: break;
            }
        }
        if (bit == 0 || (bits & bit))
            return 0;
        bits |= bit;
        i = j + 1;
    }
    if ((bits & DMARC_FO_0) && (bits & DMARC_FO_1))
        return 0;
    return bits;
}

static int is_hex(char c)
{
    return str_is_digit((unsigned char)c) || (lower((unsigned char)c) >= 'a' && lower((unsigned char)c) <= 'f');
}

/* An RFC 3986 URI, as far as its characters and scheme go: scheme ":"
 * then at least one character of unreserved, reserved but "," and "!",
 * or a %HH escape. */
static int uri_valid(const char *u, size_t len)
{
    size_t i = 0;
    if (len == 0 || !str_is_alpha((unsigned char)u[0]))
        return 0;
    while (i < len && (str_is_alnum((unsigned char)u[i]) || u[i] == '+' || u[i] == '-' || u[i] == '.'))
        i++;
    if (i >= len || u[i] != ':' || i + 1 >= len)
        return 0;
    for (i++; i < len; i++) {
        unsigned char c = (unsigned char)u[i];
        if (c == '%') {
            if (i + 2 >= len || !is_hex(u[i + 1]) || !is_hex(u[i + 2]))
                return 0;
            i += 2;
        } else if (!(str_is_alnum(c) || strchr("-._~:/?#[]@$&'()*+;=", c))) {
            return 0;
        }
    }
    return 1;
}

/* Strips an obsolete "!size[kmgt]" suffix (RFC 9989 4.8: to be ignored). */
static size_t strip_size(const char *u, size_t len)
{
    const char *bang = memchr(u, '!', len);
    if (bang == NULL)
        return len;
    size_t at = (size_t)(bang - u), i = at + 1;
    size_t digits = 0;
    while (i < len && str_is_digit((unsigned char)u[i])) {
        i++;
        digits++;
    }
    if (i < len && strchr("kmgtKMGT", u[i]))
        i++;
    if (digits == 0 || i != len)
        return 0; /* not the suffix's syntax: the URI is malformed */
    return at;
}

/* A comma-separated URI list: keeps the valid ones. 1 when the tag's value
 * had at least one. */
static int parse_uris(const char *v, size_t len, char **uris, size_t *n)
{
    size_t i = 0;
    int any = 0;
    while (i <= len) {
        size_t j = i;
        while (j < len && v[j] != ',')
            j++;
        const char *u = v + i;
        size_t ulen = j - i;
        trim_wsp(&u, &ulen);
        ulen = strip_size(u, ulen);
        if (ulen > 0 && uri_valid(u, ulen)) {
            any = 1;
            if (*n < DMARC_MAX_URIS)
                uris[(*n)++] = xstrndup(u, ulen);
        }
        i = j + 1;
    }
    return any;
}

static int value_chars_ok(const char *v, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c > 0x7e || c == ';')
            return 0;
    }
    return 1;
}

enum tag_id { T_P, T_SP, T_NP, T_PSD, T_T, T_ADKIM, T_ASPF, T_FO, T_RUA, T_RUF, T_COUNT };
static const char *const tag_names[T_COUNT] = {"p", "sp", "np", "psd", "t", "adkim", "aspf", "fo", "rua", "ruf"};

/* Applies one tag; returns 0 when its value was bad (the default stays). */
static int apply_tag(struct dmarc_record *rec, enum tag_id id, const char *v, size_t len)
{
    switch (id) {
    case T_P:
    case T_SP:
    case T_NP: {
        enum dmarc_policy p = parse_request(v, len);
        enum dmarc_policy *dst = id == T_P ? &rec->p : id == T_SP ? &rec->sp : &rec->np;
        int *bad = id == T_P ? &rec->p_invalid : id == T_SP ? &rec->sp_invalid : &rec->np_invalid;
        *dst = p;
        *bad = p == DMARC_POLICY_UNSET;
        return !*bad;
    }
    case T_PSD:
        if (word_is(v, len, "y"))
            rec->psd = DMARC_PSD_Y;
        else if (word_is(v, len, "n"))
            rec->psd = DMARC_PSD_N;
        else
            return word_is(v, len, "u");
        return 1;
    case T_T:
        if (word_is(v, len, "y"))
            rec->testing = 1;
        else
            return word_is(v, len, "n");
        return 1;
    case T_ADKIM:
    case T_ASPF: {
        enum dmarc_mode *m = id == T_ADKIM ? &rec->adkim : &rec->aspf;
        if (word_is(v, len, "s"))
            *m = DMARC_STRICT;
        else
            return word_is(v, len, "r");
        return 1;
    }
    case T_FO: {
        unsigned bits = parse_fo(v, len);
        if (bits == 0)
            return 0;
        rec->fo = bits;
        return 1;
    }
    case T_RUA:
        return parse_uris(v, len, rec->rua, &rec->nrua);
    case T_RUF:
        return parse_uris(v, len, rec->ruf, &rec->nruf);
    case T_COUNT: break;
    }
    return 0;
}

/* The first tag must be v=DMARC1: "v" *WSP "=" *WSP "DMARC1" *WSP. */
static int version_ok(const char *s, size_t len)
{
    trim_wsp(&s, &len);
    if (len == 0 || lower((unsigned char)s[0]) != 'v')
        return 0;
    s++;
    len--;
    while (len > 0 && is_wsp(*s)) {
        s++;
        len--;
    }
    if (len == 0 || *s != '=')
        return 0;
    s++;
    len--;
    while (len > 0 && is_wsp(*s)) {
        s++;
        len--;
    }
    return len == 6 && memcmp(s, "DMARC1", 6) == 0;
}

int dmarc_record_parse(const char *text, size_t len, struct dmarc_record *rec, char *err)
{
    memset(rec, 0, sizeof *rec);
    if (text == NULL || len == 0) {
        set_err(err, "empty record");
        return -1;
    }
    if (len > DMARC_RECORD_MAX) {
        set_err(err, "record longer than 8192 bytes");
        return -1;
    }
    size_t end = 0;
    while (end < len && text[end] != ';')
        end++;
    if (!version_ok(text, end)) {
        set_err(err, "does not start with v=DMARC1");
        return -1;
    }
    rec->psd = DMARC_PSD_U;
    rec->adkim = rec->aspf = DMARC_RELAXED;
    rec->fo = DMARC_FO_0;
    unsigned seen = 0;
    size_t i = end + 1;
    while (i < len) {
        size_t j = i;
        while (j < len && text[j] != ';')
            j++;
        const char *tag = text + i;
        size_t tlen = j - i;
        i = j + 1;
        trim_wsp(&tag, &tlen);
        if (tlen == 0)
            continue; /* ";;" or the trailing separator */
        size_t nlen = 0;
        while (nlen < tlen && str_is_alpha((unsigned char)tag[nlen]))
            nlen++;
        const char *v = tag + nlen;
        size_t vlen = tlen - nlen;
        trim_wsp(&v, &vlen);
        if (nlen == 0 || vlen == 0 || *v != '=') {
            rec->ignored++;
            continue;
        }
        v++;
        vlen--;
        trim_wsp(&v, &vlen);
        int id = -1;
        for (int k = 0; k < T_COUNT; k++)
            if (word_is(tag, nlen, tag_names[k]))
                id = k;
        if (id < 0 || (seen & (1u << id))) {
            rec->ignored++; /* unknown, historic (pct, rf, ri), v again, or repeated */
            continue;
        }
        seen |= 1u << id;
        if (!value_chars_ok(v, vlen)) {
            if (id == T_P)
                rec->p_invalid = 1;
            else if (id == T_SP)
                rec->sp_invalid = 1;
            else if (id == T_NP)
                rec->np_invalid = 1;
            rec->ignored++;
            continue;
        }
        if (!apply_tag(rec, (enum tag_id)id, v, vlen))
            rec->ignored++;
    }
    return 0;
}

void dmarc_record_free(struct dmarc_record *rec)
{
    if (rec == NULL)
        return;
    for (size_t i = 0; i < rec->nrua; i++)
        free(rec->rua[i]);
    for (size_t i = 0; i < rec->nruf; i++)
        free(rec->ruf[i]);
    memset(rec, 0, sizeof *rec);
}

int dmarc_record_policy_ok(const struct dmarc_record *rec)
{
    return rec->p != DMARC_POLICY_UNSET && !rec->p_invalid && !rec->sp_invalid && !rec->np_invalid;
}

char *dmarc_txt_record(const struct dns_rr *rr)
{
    struct strbuf sb = STRBUF_INIT;
    int ok = dns_txt_text(rr, DMARC_RECORD_MAX, &sb) == 0 && memchr(sb.buf ? sb.buf : "", '\0', sb.len) == NULL;
    char *text = ok ? xstrdup(strbuf_str(&sb)) : NULL;   /* a NUL inside: not text, so not a DMARC record */
    strbuf_free(&sb);
    return text;
}

int dmarc_domain_normalize(const char *name, char *out)
{
    size_t len = name ? strlen(name) : 0;
    if (len > 0 && name[len - 1] == '.')
        len--;
    if (len == 0 || len > DMARC_DOMAIN_MAX)
        return -1;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '.') {
            if (label == 0 || name[i - 1] == '-')
                return -1;
            label = 0;
        } else if (str_is_alnum(c) || c == '_' || (c == '-' && label > 0)) {
            if (++label > 63)
                return -1;
        } else {
            return -1;
        }
        out[i] = (char)lower(c);
    }
    if (label == 0 || name[len - 1] == '-')
        return -1;   /* "example.com.." ends in an empty label */
    out[len] = '\0';
    return 0;
}
