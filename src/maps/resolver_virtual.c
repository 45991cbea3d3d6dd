/* resolver_virtual: virtual_alias_maps expansion, virtual mailbox lookups,
 * relay_recipient_maps and the RCPT check of every class (see resolver.h). */
#include "maps/resolver.h"
#include "maps/resolver_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "maps/map.h"
#include "util/mem.h"
#include "util/str.h"

/* ---------- virtual_alias_maps ---------- */

/* Appends addr (taken over) to t. */
static void targets_take(struct resolve_targets *t, char *addr)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 4;
        t->v = xrealloc(t->v, t->cap * sizeof *t->v);
    }
    t->v[t->n++] = addr;
}

/* One lookup of key; found values are returned as they are. Pattern
 * tables see only the whole address (whole = 1), as in Postfix. */
static int virtual_try(struct resolver *r, const char *key, int whole, char **value)
{
    return whole ? map_list_lookup(r->virtual_alias, key, value)
                 : map_list_lookup_partial(r->virtual_alias, key, value);
}

/* The targets of one value: its addresses separated by commas or blanks,
 * "@domain" given local's part, a bare name myorigin's domain, and the
 * unmatched extension (ext, "" for none) put back before the '@'. */
static void virtual_targets(const struct resolver *r, const char *value, const char *local, const char *ext,
                            struct resolve_targets *out)
{
    const char *p = value;
    while (*p) {
        while (*p == ',' || str_is_space((unsigned char)*p))
            p++;
        size_t n = 0;
        while (p[n] && p[n] != ',' && !str_is_space((unsigned char)p[n]))
            n++;
        if (!n)
            break;
        char *t = xstrndup(p, n);
        p += n;
        char *full;
        const char *at = strrchr(t, '@');
        if (t[0] == '@')
            full = xasprintf("%s%s", local, t);     /* @domain: the same user there */
        else if (!at)
            full = xasprintf("%s@%s", t, r->myorigin);
        else
            full = xstrdup(t);
        free(t);
        if (*ext) {
            char *cut = strrchr(full, '@');
            char *with = xasprintf("%.*s%s%s", (int)(cut - full), full, ext, cut);
            free(full);
            full = with;
        }
        targets_take(out, full);
    }
}

/* virtual_alias_maps for one address, in Postfix's order (virtual(5)):
 * user@domain, then user (for our local domains only), then @domain; each
 * address form first with its recipient_delimiter extension, then without
 * (the extension is then carried over to the targets when
 * propagate_unmatched_extensions says "virtual"). 1 found (targets
 * appended to out), 0 not found, -1 a table failed. */
static int virtual_lookup(struct resolver *r, const char *addr, struct resolve_targets *out)
{
    char *local, *domain;
    resolve_split(addr, &local, &domain);
    char *base = xstrdup(local);
    const char *ext = "";
    size_t cut = *r->recipient_delimiter ? strcspn(base, r->recipient_delimiter) : strlen(base);
    if (cut > 0 && base[cut]) {
        ext = local + cut;
        base[cut] = '\0';
    }
    /* the bare user key: virtual(5) limits it to $myorigin, $mydestination,
     * $inet_interfaces and $proxy_interfaces */
    int local_domain = domain && strcmp(domain, r->myorigin) == 0 ? 1 : resolver_is_local_domain(r, domain);
    char *value = NULL;
    int rc = local_domain < 0 ? -1 : 0, stripped = 0;
    const char *forms[2] = {local, *ext ? base : NULL};
    for (int f = 0; f < 2 && rc == 0 && forms[f]; f++) {
        char *key = domain ? xasprintf("%s@%s", forms[f], domain) : xstrdup(forms[f]);
        rc = virtual_try(r, key, f == 0 && domain, &value);
        free(key);
        stripped = f == 1;
    }
    for (int f = 0; f < 2 && rc == 0 && forms[f] && local_domain > 0; f++) {
        rc = virtual_try(r, forms[f], 0, &value);
        stripped = f == 1;
    }
    if (rc == 0 && domain) {
        char *key = xasprintf("@%s", domain);
        rc = virtual_try(r, key, 0, &value);
        free(key);
        stripped = 0;   /* the catch-all keeps the whole local part */
    }
    /* an "@domain" target gets the user without the unmatched extension,
     * which is then carried over as to any target (Postfix's mail_addr_map) */
    if (rc > 0)
        virtual_targets(r, value, stripped ? base : local, stripped && r->propagate_virtual_extension ? ext : "",
                        out);
    free(value);
    free(base);
    free(local);
    free(domain);
    return rc;
}

void resolve_targets_free(struct resolve_targets *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i]);
    free(t->v);
    memset(t, 0, sizeof *t);
}

static int targets_has(const struct resolve_targets *t, const char *addr)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcasecmp(t->v[i], addr) == 0)
            return 1;
    return 0;
}

struct virtual_walk {
    struct resolver *r;
    const char *recipient;          /* whose expansion this is: errors name it */
    struct resolve_targets final;   /* where the expansion ends */
    struct resolve_targets seen;    /* addresses already expanded */
    char *error;
    const char *dsn;                /* the error's enhanced status */
};

static int virtual_walk(struct virtual_walk *w, const char *addr, long depth)
{
    if (depth > w->r->virtual_recursion_limit) {
        w->error = xasprintf("virtual alias expansion of <%s> is nested deeper than virtual_alias_recursion_limit "
                             "(%ld) at <%s>", w->recipient, w->r->virtual_recursion_limit, addr);
        w->dsn = RESOLVE_DSN_ALIAS_ERROR;
        return -1;
    }
    struct resolve_targets found = {0};
    int rc = virtual_lookup(w->r, addr, &found);
    if (rc < 0) {
        w->error = xasprintf("virtual_alias_maps lookup of <%s> failed", addr);
        w->dsn = RESOLVE_DSN_TABLE_FAILED;
        return -1;
    }
    if (rc == 0) {
        if (!targets_has(&w->final, addr))
            targets_take(&w->final, xstrdup(addr));
    } else {
        for (size_t i = 0; i < found.n && !w->error; i++) {
            const char *t = found.v[i];
            /* an address that names itself is delivered as it is */
            int self = strcasecmp(t, addr) == 0;
            if (!self && targets_has(&w->seen, t))
                continue;   /* already expanded elsewhere in this walk: its targets are in */
            if (self) {
                if (!targets_has(&w->final, t))
                    targets_take(&w->final, xstrdup(t));
                continue;
            }
            targets_take(&w->seen, xstrdup(t));
            if (virtual_walk(w, t, depth + 1) != 0)
                break;
        }
    }
    resolve_targets_free(&found);
    /* the addresses the recipient expands to; an address expanded further
     * on the way (in seen) is not one of them */
    if (!w->error && (long)w->final.n > w->r->virtual_expansion_limit) {
        w->error = xasprintf("virtual alias expansion of <%s> has more than virtual_alias_expansion_limit (%ld) "
                             "addresses", w->recipient, w->r->virtual_expansion_limit);
        w->dsn = RESOLVE_DSN_ALIAS_ERROR;
    }
    return w->error ? -1 : 0;
}

int resolver_virtual_expand(struct resolver *r, const char *addr, struct resolve_targets *out, char **error,
                            const char **dsn)
{
    memset(out, 0, sizeof *out);
    *error = NULL;
    *dsn = NULL;
    if (!r->virtual_alias)
        return 1;
    struct virtual_walk w = {.r = r, .recipient = addr};
    targets_take(&w.seen, xstrdup(addr));
    int rc = virtual_walk(&w, addr, 0);
    resolve_targets_free(&w.seen);
    if (rc == 0 && w.final.n == 0) {
        /* every target leads back to an address already expanded: a table
         * mistake like the limits (Postfix meets it as the nesting limit) */
        w.error = xasprintf("virtual alias expansion of <%s> loops back to itself", addr);
        w.dsn = RESOLVE_DSN_ALIAS_ERROR;
        rc = -1;
    }
    if (rc != 0) {
        resolve_targets_free(&w.final);
        *error = w.error;
        *dsn = w.dsn;
        return -1;
    }
    /* not found at all: the address is no virtual alias */
    if (w.final.n == 1 && strcmp(w.final.v[0], addr) == 0) {
        struct resolve_targets probe = {0};
        int found = virtual_lookup(r, addr, &probe);
        resolve_targets_free(&probe);
        if (found == 0) {
            resolve_targets_free(&w.final);
            return 1;
        }
    }
    *out = w.final;
    return 0;
}

/* ---------- virtual mailbox domains ---------- */

/* A virtual(8) table for addr: user@domain, the same without a
 * recipient_delimiter extension, then @domain. 1 found (*value), 0 not
 * found (or no table), -1 failed. */
static int virtual_mailbox_lookup(const struct resolver *r, struct map_list *table, const char *addr, char **value)
{
    *value = NULL;
    if (!table)
        return 0;
    char *local, *domain;
    resolve_split(addr, &local, &domain);
    int rc = 0;
    if (domain) {
        char *key = xasprintf("%s@%s", local, domain);
        rc = map_list_lookup(table, key, value);
        free(key);
        size_t cut = *r->recipient_delimiter ? strcspn(local, r->recipient_delimiter) : strlen(local);
        if (rc == 0 && cut > 0 && local[cut]) {
            key = xasprintf("%.*s@%s", (int)cut, local, domain);
            rc = map_list_lookup_partial(table, key, value);
            free(key);
        }
        if (rc == 0) {
            key = xasprintf("@%s", domain);
            rc = map_list_lookup_partial(table, key, value);
            free(key);
        }
    }
    free(local);
    free(domain);
    return rc;
}

/* A uid or gid from its table: 0, or -1 with err filled. */
static int virtual_id(const struct resolver *r, struct map_list *table, const char *param, const char *addr,
                      long long *id, char *err, size_t errlen)
{
    char *value = NULL;
    int rc = virtual_mailbox_lookup(r, table, addr, &value);
    char *end = NULL;
    long long v = rc > 0 ? strtoll(value, &end, 10) : -1;
    int ok = rc > 0 && end != value && end && *end == '\0' && v >= 0 && v < 0x7fffffff;
    if (!ok)
        snprintf(err, errlen, "%s: %s for %s", param,
                 rc < 0 ? "lookup failed" : rc == 0 ? "no entry" : "not a number", addr);
    free(value);
    *id = v;
    return ok ? 0 : -1;
}

/* No empty, "." or ".." component, no control characters: the path stays
 * below virtual_mailbox_base. */
static int relative_path_safe(const char *p)
{
    if (!*p)
        return 0;
    for (const char *c = p; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return 0;
    const char *seg = p;
    while (*seg) {
        size_t n = strcspn(seg, "/");
        if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return 0;
        if (n == 0 && seg[n] == '/' && seg != p && seg[1] != '\0')
            return 0;   /* "a//b" */
        seg += n;
        if (*seg == '/')
            seg++;
    }
    return 1;
}

int resolver_virtual_mailbox(struct resolver *r, const char *addr, struct local_mailbox *out, char *err,
                             size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->uid = (uid_t)-1;
    out->gid = (gid_t)-1;
    char *value = NULL;
    int rc = virtual_mailbox_lookup(r, r->virtual_mailbox, addr, &value);
    if (rc <= 0) {
        if (rc < 0)
            snprintf(err, errlen, "virtual_mailbox_maps lookup failed for %s", addr);
        return rc < 0 ? -1 : 1;
    }
    const char *rel = value;
    while (*rel == '/')
        rel++;
    if (!*r->virtual_mailbox_base || r->virtual_mailbox_base[0] != '/') {
        snprintf(err, errlen, "virtual_mailbox_base must be an absolute directory");
        free(value);
        return -1;
    }
    if (!relative_path_safe(rel)) {
        snprintf(err, errlen, "virtual_mailbox_maps gives %s an unsafe path", addr);
        free(value);
        return -1;
    }
    long long uid, gid;
    if (virtual_id(r, r->virtual_uid, "virtual_uid_maps", addr, &uid, err, errlen) != 0 ||
        virtual_id(r, r->virtual_gid, "virtual_gid_maps", addr, &gid, err, errlen) != 0) {
        free(value);
        return -1;
    }
    if (uid < r->virtual_minimum_uid) {
        snprintf(err, errlen, "virtual_uid_maps gives %s uid %lld, below virtual_minimum_uid (%lld)", addr, uid,
                 r->virtual_minimum_uid);
        free(value);
        return -1;
    }
    size_t len = strlen(rel);
    out->is_maildir = rel[len - 1] == '/';
    out->path = xasprintf("%s/%s", r->virtual_mailbox_base, rel);
    out->user = xstrdup(addr);
    out->uid = (uid_t)uid;
    out->gid = (gid_t)gid;
    out->make_parents = 1;   /* below the base, as that uid */
    out->is_virtual = 1;
    out->size_limit = r->virtual_mailbox_limit;
    free(value);
    return 0;
}

/* postmaster, MAILER-DAEMON and double_bounce_sender, whatever their case. */
static int is_exempt_local_part(const struct resolver *r, const char *addr)
{
    const char *at = strrchr(addr, '@');
    size_t n = at ? (size_t)(at - addr) : strlen(addr);
    const char *names[] = {"postmaster", "mailer-daemon", r->double_bounce_sender};
    for (size_t i = 0; i < 3; i++)
        if (*names[i] && strlen(names[i]) == n && strncasecmp(addr, names[i], n) == 0)
            return 1;
    return 0;
}

enum resolve_verdict resolver_check_recipient(struct resolver *r, const char *addr, const char **table)
{
    *table = "local recipient table";
    if (r->virtual_alias) {
        struct resolve_targets t = {0};
        int rc = virtual_lookup(r, addr, &t);
        resolve_targets_free(&t);
        if (rc > 0)
            return RESOLVE_OK;
        if (rc < 0)
            return RESOLVE_TEMPFAIL;
    }
    enum resolve_class cls;
    if (resolver_classify(r, addr, &cls) != 0)
        return RESOLVE_TEMPFAIL;
    switch (cls) {
    case RESOLVE_LOCAL:
        /* as Postfix's smtpd (check_rcpt_maps): the addresses bounces come
         * from and go to always exist; aliases decide where they go */
        if (is_exempt_local_part(r, addr))
            return RESOLVE_OK;
        return resolver_check_local(r, addr);
    case RESOLVE_VIRTUAL_ALIAS:
        *table = "virtual alias table";
        return RESOLVE_UNKNOWN;
    case RESOLVE_RELAY: {
        if (!r->relay_recipients)
            return RESOLVE_OK;
        *table = "relay recipient table";
        char *value = NULL;
        int rc = virtual_mailbox_lookup(r, r->relay_recipients, addr, &value);
        free(value);
        return rc > 0 ? RESOLVE_OK : rc == 0 ? RESOLVE_UNKNOWN : RESOLVE_TEMPFAIL;
    }
    case RESOLVE_VIRTUAL_MAILBOX: {
        /* a class's table is checked only when it is set (Postfix's
         * check_rcpt_maps): with none, the final server (Dovecot over LMTP)
         * decides which mailboxes exist */
        if (!r->virtual_mailbox)
            return RESOLVE_OK;
        *table = "virtual mailbox table";
        char *value = NULL;
        int rc = virtual_mailbox_lookup(r, r->virtual_mailbox, addr, &value);
        free(value);
        return rc > 0 ? RESOLVE_OK : rc == 0 ? RESOLVE_UNKNOWN : RESOLVE_TEMPFAIL;
    }
    default:
        return RESOLVE_OK;
    }
}
