/* map_regexp: regexp:/path and pcre:/path tables (see map_regexp.h; the
 * syntax is documented in map.h).
 *
 * A source file compiles into a flat array of rules. An "if" rule knows the
 * index just past its block, so a lookup is one forward walk: a pattern rule
 * that applies answers, an if whose pattern does not apply jumps over its
 * block. Results keep their $-references unexpanded; they are checked once
 * when the file is read (a reference to a group the pattern lacks is a bad
 * line) and expanded per lookup by the same walker, so the check and the
 * expansion cannot disagree. */
#include "maps/map_regexp.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "maps/map.h"
#include "maps/map_source.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

enum rule_kind { RULE_MATCH, RULE_IF };

struct rule {
    enum rule_kind kind;
    int negate;       /* !/pattern/: applies when the pattern does not match */
    int usable;       /* compiled; an if that is not (a bad line) skips its block */
    size_t lineno;
    regex_t *posix;   /* MAP_REGEXP_POSIX */
    pcre2_code *pcre; /* MAP_REGEXP_PCRE */
    size_t groups;    /* capture groups the result refers to at most (0: none) */
    char *result;     /* RULE_MATCH: result text, $-references unexpanded */
    size_t block_end; /* RULE_IF: index of the first rule after its endif */
};

struct map_regexp {
    enum map_regexp_dialect dialect;
    char *path;
    struct rule *rules;
    size_t n, cap;
    pcre2_match_context *match_ctx; /* the match and depth limits */
    uint32_t max_groups;            /* most capture groups of any pcre rule */
};

/* ---------- results: $n, ${n}, $(n), $$ ---------- */

/* Capture offsets of one match: start/end pairs, group 0 first; unset
 * groups (did not take part in the match) are SIZE_MAX. */
struct captures {
    const char *subject;
    size_t *offsets;
    size_t count; /* pairs */
};

/* Walks a result text. With out == NULL it only checks the text and sets
 * *max_ref to the highest group referred to; with out it appends the
 * expansion, stopping once it exceeds MAP_MAX_LINE. Returns NULL or why the
 * text is bad. */
static const char *result_walk(const char *text, size_t *max_ref, const struct captures *cap,
                               struct strbuf *out)
{
    if (max_ref)
        *max_ref = 0;
    for (const char *p = text; *p; p++) {
        if (out && out->len > MAP_MAX_LINE)
            return NULL;
        if (*p != '$') {
            if (out)
                strbuf_putc(out, *p);
            continue;
        }
        if (p[1] == '$') {
            if (out)
                strbuf_putc(out, '$');
            p++;
            continue;
        }
        const char *name = p + 1;
        char close = *name == '{' ? '}' : *name == '(' ? ')' : '\0';
        if (close)
            name++;
        size_t len = 0;
        while (str_is_alnum((unsigned char)name[len]) || name[len] == '_')
            len++;
        if (len == 0) {
            if (close)
                return "a ${ or $( without a group number";
            /* A '$' before neither a name nor a brace is text, as in Postfix. */
            if (out)
                strbuf_putc(out, '$');
            continue;
        }
        if (close && name[len] != close)
            return "a ${ or $( is not closed";
        size_t n = 0;
        for (size_t i = 0; i < len; i++) {
            if (!str_is_digit((unsigned char)name[i]))
                return "a $ reference that is not a group number (write $$ for a literal $)";
            n = n * 10 + (size_t)(name[i] - '0');
            if (n > 99)
                return "a $ reference to a group above 99";
        }
        if (n == 0)
            return "$0 is not a group (groups count from $1)";
        if (max_ref && n > *max_ref)
            *max_ref = n;
        if (out && cap && n < cap->count && cap->offsets[2 * n] != SIZE_MAX)
            strbuf_append(out, cap->subject + cap->offsets[2 * n],
                          cap->offsets[2 * n + 1] - cap->offsets[2 * n]);
        p = name + len + (close ? 1 : 0) - 1;
    }
    return NULL;
}

/* ---------- compiling rules ---------- */

struct parser {
    struct map_regexp *rx;
    size_t *open_ifs; /* indexes of the if rules whose endif is still to come */
    size_t n_open, cap_open;
};

static void rule_free(struct rule *r)
{
    if (r->posix) {
        regfree(r->posix);
        free(r->posix);
    }
    pcre2_code_free(r->pcre);
    free(r->result);
    memset(r, 0, sizeof *r);
}

/* Compile options from the flags after the closing delimiter. Both
 * dialects are case-insensitive by default and 'i' toggles that, as in
 * Postfix. Returns NULL, or why the flags are bad with the flag in *bad. */
static const char *parse_flags(enum map_regexp_dialect dialect, const char *flags, size_t len,
                               int *posix_opts, uint32_t *pcre_opts, char *bad)
{
    *posix_opts = REG_EXTENDED | REG_ICASE;
    *pcre_opts = PCRE2_CASELESS;
    for (size_t i = 0; i < len; i++) {
        char f = flags[i];
        if (dialect == MAP_REGEXP_POSIX) {
            int bit = f == 'i' ? REG_ICASE : f == 'x' ? REG_EXTENDED : f == 'm' ? REG_NEWLINE : 0;
            if (!bit) {
                *bad = f;
                return "regexp: tables know the flags i, x and m";
            }
            *posix_opts ^= bit;
        } else {
            /* X (Postfix's PCRE_EXTRA: an unknown escape is an error) is how
             * PCRE2 always behaves, so it is accepted and changes nothing. */
            uint32_t bit = f == 'i'   ? PCRE2_CASELESS
                           : f == 'm' ? PCRE2_MULTILINE
                           : f == 's' ? PCRE2_DOTALL
                           : f == 'x' ? PCRE2_EXTENDED
                           : f == 'A' ? PCRE2_ANCHORED
                           : f == 'E' ? PCRE2_DOLLAR_ENDONLY
                           : f == 'U' ? PCRE2_UNGREEDY
                                      : 0;
            if (!bit && f != 'X') {
                *bad = f;
                return "pcre: tables know the flags i, m, s, x, A, E, U and X";
            }
            *pcre_opts ^= bit;
        }
    }
    return NULL;
}

/* Compiles pattern into r; groups_needed is the highest $n its result
 * uses. Returns 0, or -1 with the reason in err. */
static int compile_pattern(struct map_regexp *rx, struct rule *r, const char *pattern,
                           int posix_opts, uint32_t pcre_opts, size_t groups_needed, char *err,
                           size_t err_size)
{
    size_t groups = 0;
    if (rx->dialect == MAP_REGEXP_POSIX) {
        r->posix = xmalloc(sizeof *r->posix);
        /* Without $-references the match positions are not needed. */
        int rc = regcomp(r->posix, pattern, posix_opts | (groups_needed ? 0 : REG_NOSUB));
        if (rc != 0) {
            char msg[200];
            regerror(rc, r->posix, msg, sizeof msg);
            free(r->posix);
            r->posix = NULL;
            snprintf(err, err_size, "bad regular expression: %s", msg);
            return -1;
        }
        groups = r->posix->re_nsub;
    } else {
        int code;
        PCRE2_SIZE offset;
        r->pcre = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, pcre_opts, &code,
                                &offset, NULL);
        if (!r->pcre) {
            PCRE2_UCHAR msg[200];
            pcre2_get_error_message(code, msg, sizeof msg);
            snprintf(err, err_size, "bad regular expression at offset %zu: %s", (size_t)offset,
                     (const char *)msg);
            return -1;
        }
        uint32_t count = 0;
        pcre2_pattern_info(r->pcre, PCRE2_INFO_CAPTURECOUNT, &count);
        groups = count;
        if (count > rx->max_groups)
            rx->max_groups = count;
    }
    if (groups_needed > groups) {
        snprintf(err, err_size, "the result refers to $%zu but the pattern has %zu group%s",
                 groups_needed, groups, groups == 1 ? "" : "s");
        return -1;
    }
    r->groups = groups_needed;
    return 0;
}

/* Parses "[!]<d>pattern<d>flags" at *pp into r (and *pp past the flags),
 * with the result text that follows (NULL for an if). Returns 0, or -1
 * with the reason in err. */
static int parse_rule(struct map_regexp *rx, struct rule *r, const char **pp, int is_if, char *err,
                      size_t err_size)
{
    const char *p = *pp;
    if (*p == '!') {
        r->negate = 1;
        p++;
        while (str_is_blank((unsigned char)*p))
            p++;
    }
    char delim = *p;
    if (!delim || str_is_alnum((unsigned char)delim) || str_is_blank((unsigned char)delim) ||
        delim == '\\') {
        snprintf(err, err_size, "expected a pattern between delimiters, such as /pattern/");
        return -1;
    }
    const char *start = ++p;
    /* A backslash keeps the next character in the pattern, the delimiter
     * too: the regex engines read "\/" as a plain '/'. */
    while (*p && *p != delim)
        p += p[0] == '\\' && p[1] ? 2 : 1;
    if (!*p) {
        snprintf(err, err_size, "the pattern has no closing '%c'", delim);
        return -1;
    }
    char *pattern = xstrndup(start, (size_t)(p - start));
    const char *flags = ++p;
    while (*p && !str_is_blank((unsigned char)*p))
        p++;
    size_t flags_len = (size_t)(p - flags);
    while (str_is_blank((unsigned char)*p))
        p++;
    *pp = p;
    int posix_opts;
    uint32_t pcre_opts;
    char bad_flag = 0;
    const char *why = parse_flags(rx->dialect, flags, flags_len, &posix_opts, &pcre_opts, &bad_flag);
    if (why) {
        snprintf(err, err_size, "unknown flag '%c' (%s)", bad_flag, why);
        free(pattern);
        return -1;
    }
    size_t max_ref = 0;
    if (is_if && *p)
        why = "text after the if pattern";
    if (!is_if) {
        why = result_walk(p, &max_ref, NULL, NULL);
        if (!why && max_ref && r->negate)
            why = "a !/pattern/ rule matches no groups for its result to refer to";
    }
    if (why) {
        snprintf(err, err_size, "%s", why);
        free(pattern);
        return -1;
    }
    int rc = compile_pattern(rx, r, pattern, posix_opts, pcre_opts, max_ref, err, err_size);
    free(pattern);
    return rc;
}

static struct rule *add_rule(struct map_regexp *rx)
{
    rx->rules = xgrow(rx->rules, &rx->cap, rx->n + 1, sizeof *rx->rules);
    struct rule *r = &rx->rules[rx->n++];
    memset(r, 0, sizeof *r);
    return r;
}

static void parse_line(void *arg, const char *path, size_t lineno, char *line)
{
    struct parser *ps = arg;
    struct map_regexp *rx = ps->rx;
    char err[320];
    const char *p = line;
    size_t word = 0;
    while (str_is_alpha((unsigned char)p[word]))
        word++;
    /* Delimiters are never letters, so a line starting with one is a keyword. */
    if (word == 5 && strncasecmp(p, "endif", 5) == 0) {
        const char *rest = p + 5;
        while (str_is_blank((unsigned char)*rest))
            rest++;
        if (*rest)
            log_warn("%s, line %zu: text after endif ignored", path, lineno);
        if (ps->n_open == 0) {
            log_warn("%s, line %zu: endif without a matching if; skipped", path, lineno);
            return;
        }
        rx->rules[ps->open_ifs[--ps->n_open]].block_end = rx->n;
        return;
    }
    if (word == 2 && strncasecmp(p, "if", 2) == 0) {
        p += 2;
        while (str_is_blank((unsigned char)*p))
            p++;
        struct rule *r = add_rule(rx);
        r->kind = RULE_IF;
        r->lineno = lineno;
        ps->open_ifs = xgrow(ps->open_ifs, &ps->cap_open, ps->n_open + 1, sizeof *ps->open_ifs);
        ps->open_ifs[ps->n_open++] = rx->n - 1;
        if (parse_rule(rx, r, &p, 1, err, sizeof err) != 0) {
            /* Skipping the block, not just the if line, keeps rules meant
             * for some keys from applying to every key. */
            log_warn("%s, line %zu: %s; the rules up to its endif are skipped", path, lineno, err);
            rule_free(r);
            r->kind = RULE_IF;
            r->lineno = lineno;
            return;
        }
        r->usable = 1;
        return;
    }
    if (word > 0) {
        log_warn("%s, line %zu: unknown keyword \"%.*s\" (if, endif or a /pattern/); skipped", path,
                 lineno, (int)word, p);
        return;
    }
    struct rule r = {.kind = RULE_MATCH, .lineno = lineno};
    if (parse_rule(rx, &r, &p, 0, err, sizeof err) != 0) {
        log_warn("%s, line %zu: %s; rule skipped", path, lineno, err);
        rule_free(&r);
        return;
    }
    if (!*p)
        log_warn("%s, line %zu: no result text; an empty result is used", path, lineno);
    r.result = xstrdup(p);
    r.usable = 1;
    *add_rule(rx) = r;
}

struct map_regexp *map_regexp_parse(const char *path, enum map_regexp_dialect dialect,
                                    const char *data, size_t len)
{
    struct map_regexp *rx = xcalloc(1, sizeof *rx);
    rx->dialect = dialect;
    rx->path = xstrdup(path);
    if (dialect == MAP_REGEXP_PCRE) {
        rx->match_ctx = pcre2_match_context_create(NULL);
        if (!rx->match_ctx)
            log_fatal("out of memory");
        pcre2_set_match_limit(rx->match_ctx, MAP_PCRE_MATCH_LIMIT);
        pcre2_set_depth_limit(rx->match_ctx, MAP_PCRE_DEPTH_LIMIT);
    }
    struct parser ps = {.rx = rx};
    map_source_lines(path, data, len, parse_line, &ps);
    while (ps.n_open > 0) {
        size_t i = ps.open_ifs[--ps.n_open];
        log_warn("%s, line %zu: if without a matching endif; its block runs to the end of the file",
                 path, rx->rules[i].lineno);
        rx->rules[i].block_end = rx->n;
    }
    free(ps.open_ifs);
    return rx;
}

/* ---------- lookups ---------- */

/* One lookup's key, and the PCRE2 match data its rules share (sized for
 * the rule with the most groups, so there is one allocation per lookup). */
struct lookup {
    const char *table;
    const char *key;
    size_t key_len;
    pcre2_match_data *md;
};

/* 1 matched (cap filled when the rule wants groups), 0 not, -1 error (logged). */
static int rule_match(const struct map_regexp *rx, const struct rule *r, const struct lookup *lk,
                      struct captures *cap)
{
    const char *key = lk->key;
    size_t want = r->kind == RULE_MATCH && !r->negate && r->groups ? r->groups + 1 : 0;
    if (r->posix) {
        regmatch_t *m = want ? xcalloc(want, sizeof *m) : NULL;
        int rc = regexec(r->posix, key, want, m, 0);
        if (rc == 0 && want) {
            cap->offsets = xmalloc(2 * want * sizeof *cap->offsets);
            cap->count = want;
            for (size_t i = 0; i < want; i++) {
                int unset = m[i].rm_so < 0;
                cap->offsets[2 * i] = unset ? SIZE_MAX : (size_t)m[i].rm_so;
                cap->offsets[2 * i + 1] = unset ? SIZE_MAX : (size_t)m[i].rm_eo;
            }
        }
        free(m);
        if (rc == 0)
            return 1;
        if (rc == REG_NOMATCH)
            return 0;
        log_error("table %s: %s, line %zu: matching failed (regexec error %d); temporary error",
                  lk->table, rx->path, r->lineno, rc);
        return -1;
    }
    int rc = pcre2_match(r->pcre, (PCRE2_SPTR)key, lk->key_len, 0, 0, lk->md, rx->match_ctx);
    if (rc > 0 && want) {
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(lk->md);
        cap->offsets = xmalloc(2 * want * sizeof *cap->offsets);
        cap->count = want;
        for (size_t i = 0; i < want; i++) {
            /* Groups past the last one set are unset whatever the vector holds. */
            int unset = i >= (size_t)rc || ov[2 * i] == PCRE2_UNSET;
            cap->offsets[2 * i] = unset ? SIZE_MAX : (size_t)ov[2 * i];
            cap->offsets[2 * i + 1] = unset ? SIZE_MAX : (size_t)ov[2 * i + 1];
        }
    }
    if (rc > 0)
        return 1;
    if (rc == PCRE2_ERROR_NOMATCH)
        return 0;
    PCRE2_UCHAR msg[200];
    pcre2_get_error_message(rc, msg, sizeof msg);
    log_error("table %s: %s, line %zu: pattern gave up on key \"%.100s\": %s; temporary error",
              lk->table, rx->path, r->lineno, key, (const char *)msg);
    return -1;
}

static int walk_rules(const struct map_regexp *rx, const struct lookup *lk, char **value)
{
    const char *table = lk->table, *key = lk->key;
    size_t i = 0;
    while (i < rx->n) {
        const struct rule *r = &rx->rules[i];
        if (!r->usable) { /* only an if whose line was bad: skip its block */
            i = r->block_end;
            continue;
        }
        struct captures cap = {.subject = key};
        int rc = rule_match(rx, r, lk, &cap);
        if (rc < 0)
            return -1;
        int applies = rc != r->negate;
        if (r->kind == RULE_IF) {
            i = applies ? i + 1 : r->block_end;
            continue;
        }
        if (!applies) {
            i++;
            continue;
        }
        struct strbuf out = STRBUF_INIT;
        result_walk(r->result, NULL, &cap, &out); /* checked when the file was read */
        free(cap.offsets);
        if (out.len > MAP_MAX_LINE) {
            log_error("table %s: %s, line %zu: the result for key \"%.100s\" is longer than %d "
                      "bytes; temporary error",
                      table, rx->path, r->lineno, key, MAP_MAX_LINE);
            strbuf_free(&out);
            return -1;
        }
        *value = strbuf_detach(&out);
        return 1;
    }
    return 0;
}

int map_regexp_lookup(const struct map_regexp *rx, const char *table, const char *key,
                      char **value)
{
    *value = NULL;
    struct lookup lk = {.table = table, .key = key, .key_len = strlen(key)};
    if (rx->dialect == MAP_REGEXP_PCRE) {
        lk.md = pcre2_match_data_create(rx->max_groups + 1, NULL);
        if (!lk.md)
            log_fatal("out of memory");
    }
    int rc = walk_rules(rx, &lk, value);
    pcre2_match_data_free(lk.md);
    return rc;
}

size_t map_regexp_count(const struct map_regexp *rx)
{
    return rx->n;
}

void map_regexp_free(struct map_regexp *rx)
{
    if (!rx)
        return;
    for (size_t i = 0; i < rx->n; i++)
        rule_free(&rx->rules[i]);
    free(rx->rules);
    pcre2_match_context_free(rx->match_ctx);
    free(rx->path);
    free(rx);
}
