/* map_cidr: cidr:/path tables (see map_cidr.h; the syntax is documented in
 * map.h).
 *
 * As map_regexp.c, a source file becomes a flat array of rules, and an
 * "if" rule knows the index just past its block, so a lookup is one
 * forward walk. Addresses and blocks are util/cidr's: the key is parsed
 * once per lookup, each rule is a prefix comparison. */
#include "maps/map_cidr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "maps/map_source.h"
#include "util/cidr.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

enum rule_kind { RULE_MATCH, RULE_IF };

struct rule {
    enum rule_kind kind;
    int negate;             /* !pattern: applies when the key is not in the block */
    int usable;             /* parsed; an if that is not (a bad line) skips its block */
    struct cidr_block block;
    char *result;           /* RULE_MATCH */
    size_t block_end;       /* RULE_IF: index of the first rule after its endif */
    size_t lineno;
};

struct map_cidr {
    struct rule *rules;
    size_t n, cap;
};

struct parser {
    struct map_cidr *t;
    size_t *open_ifs; /* indexes of the if rules whose endif is still to come */
    size_t n_open, cap_open;
};

static struct rule *add_rule(struct map_cidr *t)
{
    t->rules = xgrow(t->rules, &t->cap, t->n + 1, sizeof *t->rules);
    struct rule *r = &t->rules[t->n++];
    memset(r, 0, sizeof *r);
    return r;
}

/* "[!]network[/prefix]" at *pp into r, *pp moved past it and the blanks
 * after. Returns NULL, or why the pattern is bad (in err). */
static const char *parse_pattern(struct rule *r, const char **pp, char *err, size_t err_size)
{
    const char *p = *pp;
    if (*p == '!') {
        r->negate = 1;
        p++;
    }
    const char *start = p;
    while (*p && !str_is_blank((unsigned char)*p))
        p++;
    size_t len = (size_t)(p - start);
    while (str_is_blank((unsigned char)*p))
        p++;
    *pp = p;
    char text[128];
    if (len == 0 || len >= sizeof text) {
        snprintf(err, err_size, "expected a network/prefix or an address%s", len ? " (too long)" : "");
        return err;
    }
    memcpy(text, start, len);
    text[len] = '\0';
    if (cidr_block_parse(&r->block, text) != 0) {
        snprintf(err, err_size, "\"%s\" is not a network/prefix or an address", text);
        return err;
    }
    struct cidr_block net;
    if (!cidr_block_is_network(&r->block, &net)) {
        char shown[INET6_ADDRSTRLEN];
        inet_ntop(net.family, net.addr, shown, sizeof shown);
        snprintf(err, err_size, "\"%s\" has address bits set past its prefix (the network is %s/%d)", text,
                 shown, net.prefix);
        return err;
    }
    return NULL;
}

/* A keyword is a whole word: "if", "endif" alone or before a blank (an
 * IPv6 address such as "add::1" may start with letters). */
static int keyword(const char *p, const char *word)
{
    size_t n = strlen(word);
    return strncasecmp(p, word, n) == 0 && (p[n] == '\0' || str_is_blank((unsigned char)p[n]));
}

static void parse_line(void *arg, const char *path, size_t lineno, char *line)
{
    struct parser *ps = arg;
    struct map_cidr *t = ps->t;
    char err[320];
    const char *p = line;
    if (keyword(p, "endif")) {
        p += 5;
        while (str_is_blank((unsigned char)*p))
            p++;
        if (*p)
            log_warn("%s, line %zu: text after endif ignored", path, lineno);
        if (ps->n_open == 0) {
            log_warn("%s, line %zu: endif without a matching if; skipped", path, lineno);
            return;
        }
        t->rules[ps->open_ifs[--ps->n_open]].block_end = t->n;
        return;
    }
    if (keyword(p, "if")) {
        p += 2;
        while (str_is_blank((unsigned char)*p))
            p++;
        struct rule *r = add_rule(t);
        r->kind = RULE_IF;
        r->lineno = lineno;
        ps->open_ifs = xgrow(ps->open_ifs, &ps->cap_open, ps->n_open + 1, sizeof *ps->open_ifs);
        ps->open_ifs[ps->n_open++] = t->n - 1;
        const char *why = parse_pattern(r, &p, err, sizeof err);
        if (!why && *p)
            why = "text after the if pattern";
        if (why) {
            /* The whole block is skipped, not just the if line, so rules
             * meant for some addresses never apply to all. */
            log_warn("%s, line %zu: %s; the rules up to its endif are skipped", path, lineno, why);
            return;
        }
        r->usable = 1;
        return;
    }
    struct rule r = {.kind = RULE_MATCH, .lineno = lineno};
    const char *why = parse_pattern(&r, &p, err, sizeof err);
    if (!why && !*p)
        why = "no result after the pattern";
    if (why) {
        log_warn("%s, line %zu: %s; rule skipped", path, lineno, why);
        return;
    }
    r.result = xstrdup(p);
    r.usable = 1;
    *add_rule(t) = r;
}

struct map_cidr *map_cidr_parse(const char *path, const char *data, size_t len)
{
    struct map_cidr *t = xcalloc(1, sizeof *t);
    struct parser ps = {.t = t};
    map_source_lines(path, data, len, parse_line, &ps);
    while (ps.n_open > 0) {
        size_t i = ps.open_ifs[--ps.n_open];
        log_warn("%s, line %zu: if without a matching endif; its block runs to the end of the file", path,
                 t->rules[i].lineno);
        t->rules[i].block_end = t->n;
    }
    free(ps.open_ifs);
    return t;
}

int map_cidr_lookup(const struct map_cidr *t, const char *key, char **value)
{
    *value = NULL;
    struct cidr_addr a;
    if (cidr_addr_parse(&a, key) != 0)
        return 0;
    size_t i = 0;
    while (i < t->n) {
        const struct rule *r = &t->rules[i];
        if (!r->usable) { /* only an if whose line was bad: skip its block */
            i = r->block_end;
            continue;
        }
        int applies = cidr_block_match(&r->block, &a) != r->negate;
        if (r->kind == RULE_IF) {
            i = applies ? i + 1 : r->block_end;
            continue;
        }
        if (applies) {
            *value = xstrdup(r->result);
            return 1;
        }
        i++;
    }
    return 0;
}

size_t map_cidr_count(const struct map_cidr *t)
{
    return t->n;
}

void map_cidr_free(struct map_cidr *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->rules[i].result);
    free(t->rules);
    free(t);
}
