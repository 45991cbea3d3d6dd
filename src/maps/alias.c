/* alias: expansion of a local recipient through alias_maps (see alias.h). */
#include "maps/alias.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

/* A parsed item: a target plus whether "\name" forbade expanding it. */
struct item {
    struct alias_target target;
    int literal;
};

struct items {
    struct item *v;
    size_t n, cap;
};

static void items_free(struct items *it)
{
    for (size_t i = 0; i < it->n; i++)
        free(it->v[i].target.value);
    free(it->v);
    memset(it, 0, sizeof *it);
}

static void items_add(struct items *it, enum alias_target_type type, char *value, int literal)
{
    it->v = xgrow(it->v, &it->cap, it->n + 1, sizeof *it->v);
    it->v[it->n].target.type = type;
    it->v[it->n].target.value = value;
    it->v[it->n].literal = literal;
    it->n++;
}

const char *alias_target_type_name(enum alias_target_type type)
{
    switch (type) {
    case ALIAS_LOCAL_USER:
        return "local user";
    case ALIAS_ADDRESS:
        return "address";
    case ALIAS_COMMAND:
        return "command";
    case ALIAS_FILE:
        return "file";
    case ALIAS_INCLUDE:
        return "include";
    }
    return "unknown";
}

/* Length of s[0..len) after leading and trailing blanks; *start moves past
 * the leading ones. */
static size_t trim_span(const char **start, size_t len)
{
    const char *s = *start;
    while (len && str_is_space((unsigned char)*s)) {
        s++;
        len--;
    }
    while (len && str_is_space((unsigned char)s[len - 1]))
        len--;
    *start = s;
    return len;
}

/* Scans from s (at most len bytes) to the first unquoted byte for which
 * stop() is true, or to the end; returns its offset, or (size_t)-1 when a
 * quote is left open. Backslash escapes the next byte inside quotes. */
static size_t scan_unquoted(const char *s, size_t len, int (*stop)(int))
{
    int quoted = 0;
    for (size_t i = 0; i < len; i++) {
        if (quoted) {
            if (s[i] == '\\' && i + 1 < len)
                i++;
            else if (s[i] == '"')
                quoted = 0;
        } else if (s[i] == '"') {
            quoted = 1;
        } else if (stop((unsigned char)s[i])) {
            return i;
        }
    }
    return quoted ? (size_t)-1 : len;
}

static int is_comma(int c)
{
    return c == ',';
}

/* If s[0..len) is exactly one quoted string, returns it unquoted. */
static char *whole_quoted(const char *s, size_t len)
{
    if (len < 2 || s[0] != '"')
        return NULL;
    struct strbuf sb = STRBUF_INIT;
    size_t i = 1;
    for (; i < len && s[i] != '"'; i++) {
        if (s[i] == '\\' && i + 1 < len)
            i++;
        strbuf_putc(&sb, s[i]);
    }
    if (i != len - 1) { /* closing quote missing or not last */
        strbuf_free(&sb);
        return NULL;
    }
    if (!sb.buf)
        return xstrdup("");
    return strbuf_detach(&sb);
}

static int has_control(const char *s)
{
    for (; *s; s++)
        if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
            return 1;
    return 0;
}

/* Classifies one target text (already unquoted when it was quoted). Takes
 * ownership of text. Returns an error message or NULL. */
static char *classify(struct items *out, char *text, int was_quoted)
{
    if (!*text) { /* "" in a list is as harmless as ",," */
        free(text);
        return NULL;
    }
    if (has_control(text)) {
        free(text);
        return xstrdup("control character in alias target");
    }
    char *msg = NULL;
    const char *s = text;
    enum alias_target_type type;
    char *value = NULL;
    int literal = 0;
    if (*s == '|') {
        s++;
        while (str_is_space((unsigned char)*s))
            s++;
        if (!*s) {
            msg = xstrdup("empty command after '|'");
            goto out;
        }
        type = ALIAS_COMMAND;
        value = xstrdup(s);
    } else if (str_case_prefix(s, ":include:")) {
        s += strlen(":include:");
        size_t n = trim_span(&s, strlen(s));
        if (n == 0 || s[0] != '/') {
            msg = xasprintf(":include: needs an absolute file name, not \"%.*s\"", (int)n, s);
            goto out;
        }
        type = ALIAS_INCLUDE;
        value = xstrndup(s, n);
    } else if (*s == '/') {
        type = ALIAS_FILE;
        value = xstrdup(s);
    } else {
        if (*s == '\\' && !was_quoted) {
            literal = 1;
            s++;
        }
        if (!*s) {
            msg = xstrdup("empty name after '\\'");
            goto out;
        }
        if (strchr(s, '@')) {
            type = ALIAS_ADDRESS;
            value = xstrdup(s);
        } else {
            type = ALIAS_LOCAL_USER;
            value = xstrdup(s);
            str_lower(value);
        }
    }
    items_add(out, type, value, literal);
out:
    free(text);
    return msg;
}

static int is_space_stop(int c)
{
    return str_is_space(c);
}

static char *parse_word(struct items *out, const char *s, size_t len)
{
    char *unq = whole_quoted(s, len);
    if (unq)
        return classify(out, unq, 1);
    return classify(out, xstrndup(s, len), 0);
}

static char *parse_chunk(struct items *out, const char *s, size_t len)
{
    len = trim_span(&s, len);
    if (len == 0)
        return NULL;
    char *unq = whole_quoted(s, len);
    if (unq)
        return classify(out, unq, 1);
    if (s[0] == '|' || s[0] == '/' || (len >= 9 && strncasecmp(s, ":include:", 9) == 0))
        return classify(out, xstrndup(s, len), 0);
    while (len) {
        size_t w = scan_unquoted(s, len, is_space_stop);
        if (w == (size_t)-1) /* cannot happen: the chunk's quotes balance */
            return xstrdup("unterminated quoted string in alias value");
        char *msg = parse_word(out, s, w);
        if (msg)
            return msg;
        s += w;
        len -= w;
        len = trim_span(&s, len);
    }
    return NULL;
}

static char *parse_items(const char *value, struct items *out)
{
    const char *s = value;
    size_t len = strlen(value);
    while (len) {
        size_t c = scan_unquoted(s, len, is_comma);
        if (c == (size_t)-1)
            return xstrdup("unterminated quoted string in alias value");
        char *msg = parse_chunk(out, s, c);
        if (msg)
            return msg;
        if (c == len)
            break;
        s += c + 1;
        len -= c + 1;
    }
    return NULL;
}

void alias_result_free(struct alias_result *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->t[i].value);
    free(r->t);
    free(r->error);
    memset(r, 0, sizeof *r);
}

static void result_fail(struct alias_result *r, int temporary, char *msg)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->t[i].value);
    free(r->t);
    free(r->error);
    r->t = NULL;
    r->n = 0;
    r->error = msg;
    r->temporary = temporary;
}

int alias_parse_value(const char *value, struct alias_result *out)
{
    memset(out, 0, sizeof *out);
    struct items it = {0};
    char *msg = parse_items(value, &it);
    if (msg) {
        items_free(&it);
        result_fail(out, 0, msg);
        return -1;
    }
    if (it.n) {
        out->t = xmalloc(it.n * sizeof *out->t);
        for (size_t i = 0; i < it.n; i++)
            out->t[i] = it.v[i].target;
        out->n = it.n;
    }
    free(it.v);
    return 0;
}

/* ---------- expansion ---------- */

struct frame {
    char *name;
    struct items items;
    size_t next;
};

struct expansion {
    struct map_list *maps;
    struct frame *stack;
    size_t depth, stack_cap;
    char **done; /* names fully expanded */
    size_t ndone, done_cap;
    size_t targets_cap;
    size_t expansions, items_seen;
    struct alias_result *out;
};

static int same_target(const struct alias_target *a, const struct alias_target *b)
{
    if (a->type != b->type)
        return 0;
    if (a->type != ALIAS_ADDRESS)
        return strcmp(a->value, b->value) == 0;
    /* The domain is case-insensitive, the local part is not. */
    const char *at_a = strrchr(a->value, '@'), *at_b = strrchr(b->value, '@');
    size_t la = (size_t)(at_a - a->value), lb = (size_t)(at_b - b->value);
    return la == lb && memcmp(a->value, b->value, la) == 0 && strcasecmp(at_a, at_b) == 0;
}

/* Returns 0, or -1 when the result would exceed ALIAS_MAX_TARGETS. */
static int add_target(struct expansion *x, const struct alias_target *t)
{
    struct alias_result *r = x->out;
    for (size_t i = 0; i < r->n; i++)
        if (same_target(&r->t[i], t))
            return 0;
    if (r->n >= ALIAS_MAX_TARGETS)
        return -1;
    r->t = xgrow(r->t, &x->targets_cap, r->n + 1, sizeof *r->t);
    r->t[r->n].type = t->type;
    r->t[r->n].value = xstrdup(t->value);
    r->n++;
    return 0;
}

static void push_frame(struct expansion *x, char *name, struct items *items)
{
    x->stack = xgrow(x->stack, &x->stack_cap, x->depth + 1, sizeof *x->stack);
    x->stack[x->depth].name = name;
    x->stack[x->depth].items = *items;
    x->stack[x->depth].next = 0;
    x->depth++;
}

static void pop_frame(struct expansion *x, int finished)
{
    struct frame *f = &x->stack[--x->depth];
    items_free(&f->items);
    if (finished) {
        x->done = xgrow(x->done, &x->done_cap, x->ndone + 1, sizeof *x->done);
        x->done[x->ndone++] = f->name;
    } else {
        free(f->name);
    }
}

static int name_in(char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return 1;
    return 0;
}

static int on_stack(const struct expansion *x, const char *name)
{
    for (size_t i = 0; i < x->depth; i++)
        if (strcmp(x->stack[i].name, name) == 0)
            return 1;
    return 0;
}

static char *loop_message(const struct expansion *x, const char *again)
{
    struct strbuf sb = STRBUF_INIT;
    strbuf_puts(&sb, "alias loop: ");
    size_t i = 0;
    while (i < x->depth && strcmp(x->stack[i].name, again) != 0)
        i++;
    for (; i < x->depth; i++) {
        strbuf_puts(&sb, x->stack[i].name);
        strbuf_puts(&sb, " -> ");
    }
    strbuf_puts(&sb, again);
    return strbuf_detach(&sb);
}

/* Looks up name and, when it is an alias, pushes its parsed value.
 * Returns 1 pushed, 0 not an alias, -1 error (x->out filled). */
static int expand_name(struct expansion *x, const char *name)
{
    char *value = NULL;
    int rc = map_list_lookup(x->maps, name, &value);
    if (rc < 0) {
        result_fail(x->out, 1, xasprintf("alias lookup of %s failed; try again later", name));
        return -1;
    }
    if (rc == 0)
        return 0;
    if (x->depth >= ALIAS_MAX_DEPTH) {
        free(value);
        result_fail(x->out, 0,
                    xasprintf("alias %s is nested more than %d deep", x->stack[0].name,
                              ALIAS_MAX_DEPTH));
        return -1;
    }
    if (++x->expansions > ALIAS_MAX_EXPANSIONS) {
        free(value);
        result_fail(x->out, 0,
                    xasprintf("alias %s expands more than %d aliases", x->stack[0].name,
                              ALIAS_MAX_EXPANSIONS));
        return -1;
    }
    struct items items = {0};
    char *msg = parse_items(value, &items);
    free(value);
    if (msg) {
        items_free(&items);
        result_fail(x->out, 0, xasprintf("alias %s: %s", name, msg));
        free(msg);
        return -1;
    }
    push_frame(x, xstrdup(name), &items);
    return 1;
}

/* One step of the depth-first walk; returns 0 to go on, -1 on error. */
static int expand_step(struct expansion *x)
{
    struct frame *f = &x->stack[x->depth - 1];
    if (f->next == f->items.n) {
        pop_frame(x, 1);
        return 0;
    }
    const struct item *it = &f->items.v[f->next++];
    const char *top = x->stack[0].name;
    if (++x->items_seen > ALIAS_MAX_ITEMS) {
        result_fail(x->out, 0, xasprintf("alias %s has more than %d items", top, ALIAS_MAX_ITEMS));
        return -1;
    }
    const char *user = it->target.value;
    int expandable = it->target.type == ALIAS_LOCAL_USER && !it->literal &&
                     strcmp(user, f->name) != 0 && !name_in(x->done, x->ndone, user);
    if (expandable && on_stack(x, user)) {
        result_fail(x->out, 0, loop_message(x, user));
        return -1;
    }
    if (expandable) {
        int rc = expand_name(x, user); /* may move the stack: f and it are stale */
        if (rc != 0)
            return rc < 0 ? -1 : 0;
    } else if (it->target.type == ALIAS_LOCAL_USER && !it->literal && strcmp(user, f->name) != 0) {
        return 0; /* an alias already expanded elsewhere in this walk */
    }
    if (add_target(x, &it->target) != 0) {
        result_fail(x->out, 0,
                    xasprintf("alias %s expands to more than %d targets", top, ALIAS_MAX_TARGETS));
        return -1;
    }
    return 0;
}

int alias_expand(struct map_list *maps, const char *localpart, struct alias_result *out)
{
    memset(out, 0, sizeof *out);
    if (!localpart || !*localpart)
        return 1;
    struct expansion x = {.maps = maps, .out = out};
    char *name = xstrdup(localpart);
    str_lower(name);
    int rc = expand_name(&x, name);
    free(name);
    if (rc <= 0)
        return rc == 0 ? 1 : -1;
    while (x.depth) {
        if (expand_step(&x) != 0) {
            rc = -1;
            break;
        }
    }
    while (x.depth)
        pop_frame(&x, 0);
    free(x.stack);
    for (size_t i = 0; i < x.ndone; i++)
        free(x.done[i]);
    free(x.done);
    if (rc < 0)
        return -1;
    if (out->n == 0) {
        result_fail(out, 0, xasprintf("alias %s expands to no recipients", localpart));
        return -1;
    }
    return 0;
}
