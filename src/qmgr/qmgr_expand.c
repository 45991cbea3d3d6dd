/* qmgr_expand: alias expansion of a local recipient (see qmgr_expand.h). */
#include "qmgr/qmgr_expand.h"

#include <stdlib.h>
#include <string.h>

#include "maps/resolver.h"
#include "util/mem.h"

static int expansion_seen(struct qmgr_expansion *e, const char *user)
{
    for (size_t i = 0; i < e->nseen; i++)
        if (strcmp(e->seen[i], user) == 0)
            return 1;
    e->seen = xgrow(e->seen, &e->seen_cap, e->nseen + 1, sizeof *e->seen);
    e->seen[e->nseen++] = xstrdup(user);
    return 0;
}

void qmgr_expansion_free(struct qmgr_expansion *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->t[i].value);
    free(e->t);
    for (size_t i = 0; i < e->nseen; i++)
        free(e->seen[i]);
    free(e->seen);
    free(e->error);
}

/* Appends res's targets to e, following address targets in our domains;
 * domain qualifies bare names. */
static int flatten(const struct resolver *resolver, struct map_list *aliases,
                   const struct alias_result *res, const char *domain, struct qmgr_expansion *e,
                   int depth)
{
    for (size_t i = 0; i < res->n; i++) {
        const struct alias_target *t = &res->t[i];
        if (t->type == ALIAS_ADDRESS && resolver_class(resolver, t->value) == RESOLVE_LOCAL) {
            char *user = resolver_local_user(resolver, t->value);
            if (!expansion_seen(e, user)) {
                struct alias_result sub;
                memset(&sub, 0, sizeof sub);
                int rc = depth < ALIAS_MAX_DEPTH ? alias_expand(aliases, user, &sub) : 1;
                if (rc == 0) {
                    char *local, *dom;
                    resolve_split(t->value, &local, &dom);
                    rc = flatten(resolver, aliases, &sub, dom ? dom : domain, e, depth + 1);
                    free(local);
                    free(dom);
                } else if (rc < 0) {
                    e->temporary = sub.temporary;
                    e->error = xstrdup(sub.error ? sub.error : "alias expansion failed");
                }
                alias_result_free(&sub);
                free(user);
                if (rc < 0)
                    return -1;
                if (rc == 0)
                    continue;
            } else {
                free(user);
            }
        }
        char *value;
        if (t->type == ALIAS_LOCAL_USER)
            value = xasprintf("%s@%s", t->value, domain);
        else if (t->type == ALIAS_ADDRESS)
            value = xstrdup(t->value);
        else
            value = xasprintf("%s%s", t->type == ALIAS_COMMAND ? "|" : t->type == ALIAS_INCLUDE ? ":include:" : "",
                              t->value);
        int dup = 0;
        for (size_t k = 0; k < e->n && !dup; k++)
            dup = e->t[k].type == t->type && strcmp(e->t[k].value, value) == 0;
        if (dup) {
            free(value);
            continue;
        }
        if (e->n >= ALIAS_MAX_TARGETS) {
            free(value);
            e->error = xstrdup("alias expansion has too many targets");
            return -1;
        }
        e->t = xgrow(e->t, &e->cap, e->n + 1, sizeof *e->t);
        e->t[e->n].type = t->type;
        e->t[e->n].value = value;
        e->n++;
    }
    return 0;
}

int qmgr_expand(struct resolver *r, const char *addr, const char *default_domain,
                struct qmgr_expansion *e)
{
    memset(e, 0, sizeof *e);
    struct map_list *aliases = resolver_aliases(r);
    if (!aliases)
        return 1;
    char *user = resolver_local_user(r, addr);
    struct alias_result res;
    memset(&res, 0, sizeof res);
    int rc = alias_expand(aliases, user, &res);
    if (rc == 1) {
        alias_result_free(&res);
        free(user);
        return 1;
    }
    if (rc < 0) {
        e->temporary = res.temporary;
        e->error = xstrdup(res.error ? res.error : "alias expansion failed");
    } else {
        char *local, *domain;
        resolve_split(addr, &local, &domain);
        expansion_seen(e, user);
        rc = flatten(r, aliases, &res, domain ? domain : default_domain, e, 1);
        free(local);
        free(domain);
    }
    free(user);
    alias_result_free(&res);
    return rc < 0 ? -1 : 0;
}

/* The text a target is recorded under ("|cmd", "/file", ":include:/path",
 * or the name/address itself), as flatten writes it. */
static int target_matches(const struct alias_target *t, const char *text)
{
    switch (t->type) {
    case ALIAS_COMMAND:
        return text[0] == '|' && strcmp(t->value, text + 1) == 0;
    case ALIAS_INCLUDE:
        return strncmp(text, ":include:", 9) == 0 && strcmp(t->value, text + 9) == 0;
    case ALIAS_FILE:
        return strcmp(t->value, text) == 0;
    default:
        return 0;
    }
}

int qmgr_expand_source(struct resolver *r, const char *addr, const char *target, char **alias)
{
    *alias = NULL;
    struct map_list *aliases = resolver_aliases(r);
    if (!aliases)
        return 1;
    /* Breadth first over the names addr leads to, each looked up once, as
     * bounded as alias_expand's own walk. */
    char **todo = NULL;
    size_t ntodo = 0, cap = 0, next = 0;
    todo = xgrow(todo, &cap, 1, sizeof *todo);
    todo[ntodo++] = resolver_local_user(r, addr);
    int rc = 1;
    while (next < ntodo && next < ALIAS_MAX_EXPANSIONS && rc == 1) {
        const char *name = todo[next++];
        char *value = NULL;
        int found = map_list_lookup(aliases, name, &value);
        if (found < 0) {
            rc = -1;
            break;
        }
        if (found == 0)
            continue;
        struct alias_result res;
        if (alias_parse_value(value, &res) == 0) {
            for (size_t i = 0; i < res.n && rc == 1; i++) {
                const struct alias_target *t = &res.t[i];
                if (target_matches(t, target)) {
                    *alias = xstrdup(name);
                    rc = 0;
                    break;
                }
                char *user = NULL;
                if (t->type == ALIAS_LOCAL_USER)
                    user = xstrdup(t->value);
                else if (t->type == ALIAS_ADDRESS && resolver_class(r, t->value) == RESOLVE_LOCAL)
                    user = resolver_local_user(r, t->value);
                if (!user)
                    continue;
                int seen = 0;
                for (size_t k = 0; k < ntodo && !seen; k++)
                    seen = strcmp(todo[k], user) == 0;
                if (seen) {
                    free(user);
                    continue;
                }
                todo = xgrow(todo, &cap, ntodo + 1, sizeof *todo);
                todo[ntodo++] = user;
            }
        }
        alias_result_free(&res);
        free(value);
    }
    for (size_t i = 0; i < ntodo; i++)
        free(todo[i]);
    free(todo);
    return rc;
}
