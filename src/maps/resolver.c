/* resolver: recipient routing and local-recipient checks (see resolver.h). */
#include "maps/resolver.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conf/conf.h"
#include "maps/map.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

/* A list of domains as Postfix writes them (mydestination,
 * virtual_alias_domains): names, and type:table entries in which a domain
 * is listed when it is a key. */
struct domain_list {
    char **names;
    size_t n;
    struct map_list *tables;   /* NULL: none */
    int subdomains;            /* a name also matches its subdomains (Postfix's
                                  parent_domain_matches_subdomains, relay_domains) */
};

struct resolver {
    char **mydest;
    size_t nmydest;
    struct domain_list virtual_alias_domains;
    struct map_list *virtual_alias;   /* virtual_alias_maps; NULL: none */
    long virtual_recursion_limit, virtual_expansion_limit;
    int propagate_virtual_extension;  /* propagate_unmatched_extensions has "virtual" */
    struct domain_list virtual_mailbox_domains;
    struct domain_list relay_domains;
    struct map_list *relay_recipients;   /* relay_recipient_maps; NULL: any recipient */
    struct map_list *virtual_mailbox, *virtual_uid, *virtual_gid;   /* NULL: none */
    char *virtual_mailbox_base;
    long long virtual_minimum_uid;
    long long virtual_mailbox_limit;
    char *myorigin;
    struct map_list *aliases;
    struct map_list *transport;
    char *local_mailbox_base;
    char *home_mailbox;
    char *mail_spool_directory;
    char *recipient_delimiter;
};

static char *normalize_domain(const char *d)
{
    char *s = xstrdup(d);
    str_lower(s);
    size_t len = strlen(s);
    if (len > 1 && s[len - 1] == '.')
        s[len - 1] = '\0';
    return s;
}

static int domain_list_open(struct domain_list *l, struct conf *c, const char *param, char **err)
{
    memset(l, 0, sizeof *l);
    struct conf_list items = conf_list(c, param);
    struct strbuf tables = STRBUF_INIT;
    l->names = xcalloc(items.n + 1, sizeof *l->names);
    for (size_t i = 0; i < items.n; i++) {
        const char *it = items.items[i];
        if (strchr(it, ':') && it[0] != '[')
            strbuf_printf(&tables, "%s%s", tables.len ? ", " : "", it);
        else
            l->names[l->n++] = normalize_domain(it);
    }
    conf_list_free(&items);
    int rc = 0;
    if (tables.len) {
        char *why = NULL;
        l->tables = map_list_open(tables.buf, 0, &why);
        if (!l->tables) {
            if (err)
                *err = xasprintf("%s: %s", param, why ? why : "cannot open its tables");
            free(why);
            rc = -1;
        }
    }
    strbuf_free(&tables);
    return rc;
}

static void domain_list_free(struct domain_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->names[i]);
    free(l->names);
    if (l->tables)
        map_list_close(l->tables);
    memset(l, 0, sizeof *l);
}

/* 1 when the (normalized) domain is in the list, 0 when not, -1 when a
 * table could not be read. */
static int domain_list_match(const struct domain_list *l, const char *domain)
{
    for (size_t i = 0; i < l->n; i++) {
        const char *name = l->names[i];
        if (strcmp(name, domain) == 0)
            return 1;
        /* ".example.com" always, "example.com" with subdomains on: below it */
        size_t ln = strlen(name), ld = strlen(domain);
        if (name[0] == '.' ? ld > ln && strcmp(domain + ld - ln, name) == 0
                           : l->subdomains && ld > ln + 1 && domain[ld - ln - 1] == '.' &&
                                 strcmp(domain + ld - ln, name) == 0)
            return 1;
    }
    if (!l->tables)
        return 0;
    char *value = NULL;
    int rc = map_list_lookup(l->tables, domain, &value);
    /* a table's parents, as the names above */
    for (const char *p = strchr(domain, '.'); rc == 0 && l->subdomains && p && p[1]; p = strchr(p + 1, '.'))
        rc = map_list_lookup_partial(l->tables, p + 1, &value);
    free(value);
    return rc;
}

struct resolver *resolver_new(struct conf *c, char **err)
{
    struct resolver *r = xcalloc(1, sizeof *r);
    struct conf_list dl = conf_list(c, "mydestination");
    r->mydest = xcalloc(dl.n + 1, sizeof *r->mydest);
    for (size_t i = 0; i < dl.n; i++)
        r->mydest[r->nmydest++] = normalize_domain(dl.items[i]);
    conf_list_free(&dl);
    const char *alias_maps = conf_str(c, "alias_maps");
    if (*alias_maps) {
        r->aliases = map_list_open(alias_maps, MAP_ALIAS_FORMAT, err);
        if (!r->aliases) {
            resolver_free(r);
            return NULL;
        }
    }
    const char *transport_maps = conf_str(c, "transport_maps");
    if (*transport_maps) {
        r->transport = map_list_open(transport_maps, 0, err);
        if (!r->transport) {
            resolver_free(r);
            return NULL;
        }
    }
    const char *virtual_alias_maps = conf_str(c, "virtual_alias_maps");
    if (*virtual_alias_maps) {
        r->virtual_alias = map_list_open(virtual_alias_maps, 0, err);
        if (!r->virtual_alias) {
            resolver_free(r);
            return NULL;
        }
    }
    if (domain_list_open(&r->virtual_alias_domains, c, "virtual_alias_domains", err) != 0) {
        resolver_free(r);
        return NULL;
    }
    struct { struct map_list **l; const char *param; } vmaps[] = {
        {&r->virtual_mailbox, "virtual_mailbox_maps"}, {&r->virtual_uid, "virtual_uid_maps"},
        {&r->virtual_gid, "virtual_gid_maps"}};
    for (size_t i = 0; i < sizeof vmaps / sizeof vmaps[0]; i++) {
        const char *spec = conf_str(c, vmaps[i].param);
        if (*spec && !(*vmaps[i].l = map_list_open(spec, 0, err))) {
            resolver_free(r);
            return NULL;
        }
    }
    if (domain_list_open(&r->virtual_mailbox_domains, c, "virtual_mailbox_domains", err) != 0 ||
        domain_list_open(&r->relay_domains, c, "relay_domains", err) != 0) {
        resolver_free(r);
        return NULL;
    }
    r->relay_domains.subdomains = 1;
    const char *rrm = conf_str(c, "relay_recipient_maps");
    if (*rrm && !(r->relay_recipients = map_list_open(rrm, 0, err))) {
        resolver_free(r);
        return NULL;
    }
    r->virtual_mailbox_base = xstrdup(conf_str(c, "virtual_mailbox_base"));
    r->virtual_minimum_uid = conf_int(c, "virtual_minimum_uid");
    r->virtual_mailbox_limit = conf_int(c, "virtual_mailbox_limit");
    r->virtual_recursion_limit = (long)conf_int(c, "virtual_alias_recursion_limit");
    r->virtual_expansion_limit = (long)conf_int(c, "virtual_alias_expansion_limit");
    struct conf_list pue = conf_list(c, "propagate_unmatched_extensions");
    for (size_t i = 0; i < pue.n; i++)
        r->propagate_virtual_extension |= strcasecmp(pue.items[i], "virtual") == 0;
    conf_list_free(&pue);
    r->myorigin = normalize_domain(conf_str(c, "myorigin"));
    r->local_mailbox_base = xstrdup(conf_str(c, "local_mailbox_base"));
    r->home_mailbox = xstrdup(conf_str(c, "home_mailbox"));
    r->mail_spool_directory = xstrdup(conf_str(c, "mail_spool_directory"));
    r->recipient_delimiter = xstrdup(conf_str(c, "recipient_delimiter"));
    return r;
}

void resolver_free(struct resolver *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nmydest; i++)
        free(r->mydest[i]);
    free(r->mydest);
    if (r->aliases)
        map_list_close(r->aliases);
    if (r->transport)
        map_list_close(r->transport);
    if (r->virtual_alias)
        map_list_close(r->virtual_alias);
    domain_list_free(&r->virtual_alias_domains);
    domain_list_free(&r->virtual_mailbox_domains);
    domain_list_free(&r->relay_domains);
    if (r->relay_recipients)
        map_list_close(r->relay_recipients);
    struct map_list *vmaps[] = {r->virtual_mailbox, r->virtual_uid, r->virtual_gid};
    for (size_t i = 0; i < 3; i++)
        if (vmaps[i])
            map_list_close(vmaps[i]);
    free(r->virtual_mailbox_base);
    free(r->myorigin);
    free(r->local_mailbox_base);
    free(r->home_mailbox);
    free(r->mail_spool_directory);
    free(r->recipient_delimiter);
    free(r);
}

struct map_list *resolver_aliases(struct resolver *r)
{
    return r->aliases;
}

int resolver_transport(struct resolver *r, const char *addr, char **value)
{
    *value = NULL;
    if (!r->transport)
        return 0;
    char *local, *domain;
    resolve_split(addr, &local, &domain);
    free(local);
    if (!domain)
        return 0;
    int rc = map_list_lookup(r->transport, domain, value);
    for (const char *p = strchr(domain, '.'); rc == 0 && p; p = strchr(p + 1, '.'))
        rc = map_list_lookup(r->transport, p, value);
    free(domain);
    return rc;
}

/* "5.X.Y" with X and Y of one to three digits (RFC 3463), then a space or the end. */
static size_t permanent_status_len(const char *s)
{
    if (s[0] != '5' || s[1] != '.')
        return 0;
    size_t i = 2;
    for (int part = 0; part < 2; part++) {
        size_t digits = 0;
        while (s[i] >= '0' && s[i] <= '9' && digits < 4) {
            i++;
            digits++;
        }
        if (digits == 0 || digits > 3)
            return 0;
        if (part == 0 && s[i++] != '.')
            return 0;
    }
    return s[i] == '\0' || s[i] == ' ' || s[i] == '\t' ? i : 0;
}

int resolver_error_transport(const char *value, const char *default_status, char status[16],
                             const char **text)
{
    while (*value == ' ' || *value == '\t')
        value++;
    if (strncasecmp(value, "error", 5) != 0 || (value[5] != ':' && value[5] != '\0'))
        return 0;
    const char *rest = value[5] ? value + 6 : value + 5;
    while (*rest == ' ' || *rest == '\t')
        rest++;
    size_t n = permanent_status_len(rest);
    if (n) {
        memcpy(status, rest, n);
        status[n] = '\0';
        rest += n;
        while (*rest == ' ' || *rest == '\t')
            rest++;
    } else {
        snprintf(status, 16, "%s", default_status);
    }
    *text = *rest ? rest : "mail for this destination is not accepted";
    return 1;
}

void resolve_split(const char *addr, char **local, char **domain)
{
    const char *at = strrchr(addr, '@');
    if (!at) {
        *local = xstrdup(addr);
        *domain = NULL;
        return;
    }
    *local = xstrndup(addr, (size_t)(at - addr));
    *domain = normalize_domain(at + 1);
}

int resolver_is_local_domain(const struct resolver *r, const char *domain)
{
    if (!domain || !*domain)
        return 1;
    char *d = normalize_domain(domain);
    int found = 0;
    for (size_t i = 0; i < r->nmydest && !found; i++)
        found = strcmp(r->mydest[i], d) == 0;
    free(d);
    return found;
}

int resolver_classify(const struct resolver *r, const char *addr, enum resolve_class *cls)
{
    char *local, *domain;
    resolve_split(addr, &local, &domain);
    free(local);
    int rc = 0;
    *cls = RESOLVE_REMOTE;
    if (resolver_is_local_domain(r, domain)) {
        *cls = RESOLVE_LOCAL;
    } else {
        int m = domain_list_match(&r->virtual_alias_domains, domain);
        if (m > 0)
            *cls = RESOLVE_VIRTUAL_ALIAS;
        int v = m == 0 ? domain_list_match(&r->virtual_mailbox_domains, domain) : 0;
        if (v > 0)
            *cls = RESOLVE_VIRTUAL_MAILBOX;
        int rd = m == 0 && v == 0 && domain ? domain_list_match(&r->relay_domains, domain) : 0;
        if (rd > 0)
            *cls = RESOLVE_RELAY;
        rc = m < 0 || v < 0 || rd < 0 ? -1 : 0;
    }
    free(domain);
    return rc;
}

enum resolve_class resolver_class(const struct resolver *r, const char *addr)
{
    enum resolve_class cls;
    resolver_classify(r, addr, &cls);
    return cls;
}

int resolver_is_relay_domain(const struct resolver *r, const char *domain)
{
    char *d = normalize_domain(domain);
    int m = domain_list_match(&r->relay_domains, d);
    free(d);
    return m;
}

int resolver_is_our_domain(const struct resolver *r, const char *domain)
{
    if (resolver_is_local_domain(r, domain))
        return 1;
    char *d = normalize_domain(domain);
    int m = domain_list_match(&r->virtual_alias_domains, d);
    if (m == 0)
        m = domain_list_match(&r->virtual_mailbox_domains, d);
    free(d);
    return m;
}

/* "john..doe" -> john..doe: RFC 5321 says the quoted and unquoted forms
 * of a local part are the same address. In place. */
static void unquote_local(char *s)
{
    size_t len = strlen(s);
    if (len < 2 || s[0] != '"' || s[len - 1] != '"')
        return;
    char *out = s;
    for (size_t i = 1; i < len - 1; i++) {
        if (s[i] == '\\' && i + 1 < len - 1)
            i++;
        *out++ = s[i];
    }
    *out = '\0';
}

char *resolver_local_user(const struct resolver *r, const char *addr)
{
    char *local, *domain;
    /* The last '@' separates the domain; one inside quotes belongs to the
     * local part, and resolve_split keeps it there. */
    resolve_split(addr, &local, &domain);
    free(domain);
    unquote_local(local);
    /* Fold case as Postfix's local delivery does. */
    str_lower(local);
    if (*r->recipient_delimiter) {
        size_t cut = strcspn(local, r->recipient_delimiter);
        if (cut > 0)
            local[cut] = '\0';
    }
    return local;
}

/* A user name that may safely become a path component. */
static int user_name_safe(const char *u)
{
    if (!*u || strlen(u) > 64 || u[0] == '.' || u[0] == '-')
        return 0;
    for (const char *p = u; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '/' || ch < 0x21 || ch == 0x7f)
            return 0;
    }
    return 1;
}

enum resolve_verdict resolver_check_local(struct resolver *r, const char *addr)
{
    char *user = resolver_local_user(r, addr);
    enum resolve_verdict v = RESOLVE_UNKNOWN;
    if (r->aliases) {
        char *value = NULL;
        int rc = map_list_lookup(r->aliases, user, &value);
        free(value);
        if (rc > 0) {
            v = RESOLVE_OK;
            goto out;
        }
        if (rc < 0) {
            v = RESOLVE_TEMPFAIL;
            goto out;
        }
    }
    if (*r->local_mailbox_base) {
        v = user_name_safe(user) ? RESOLVE_OK : RESOLVE_UNKNOWN;
        goto out;
    }
    errno = 0;
    struct passwd *pw = getpwnam(user);
    if (pw)
        v = RESOLVE_OK;
    else if (errno != 0 && errno != ENOENT && errno != ESRCH && errno != EBADF && errno != EPERM)
        v = RESOLVE_TEMPFAIL;
out:
    free(user);
    return v;
}

int resolver_mailbox(struct resolver *r, const char *user, struct local_mailbox *out, char *err,
                     size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->uid = (uid_t)-1;
    out->gid = (gid_t)-1;
    if (!user_name_safe(user))
        return 1;
    const char *hm = *r->home_mailbox ? r->home_mailbox : NULL;
    if (*r->local_mailbox_base) {
        /* Development mode: a directory per local part, owned by whoever runs
         * tern; Maildir unless home_mailbox names an mbox file. */
        out->user = xstrdup(user);
        out->path = xasprintf("%s/%s/%s", r->local_mailbox_base, user, hm ? hm : "Maildir/");
        out->is_maildir = out->path[strlen(out->path) - 1] == '/';
        out->make_parents = 1;
        return 0;
    }
    errno = 0;
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        if (errno != 0 && errno != ENOENT && errno != ESRCH && errno != EBADF && errno != EPERM) {
            snprintf(err, errlen, "cannot look up user %s: %s", user, strerror(errno));
            return -1;
        }
        return 1;
    }
    out->user = xstrdup(user);
    out->uid = pw->pw_uid;
    out->gid = pw->pw_gid;
    if (hm) {
        out->path = xasprintf("%s/%s", pw->pw_dir, hm);
        out->is_maildir = hm[strlen(hm) - 1] == '/';
    } else {
        out->path = xasprintf("%s/%s", r->mail_spool_directory, user);
        out->is_maildir = 0;
    }
    return 0;
}

void resolver_mailbox_free(struct local_mailbox *mb)
{
    free(mb->user);
    free(mb->path);
    memset(mb, 0, sizeof *mb);
}

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
    int local_domain = resolver_is_local_domain(r, domain);
    char *value = NULL;
    int rc = 0, stripped = 0;
    const char *forms[2] = {local, *ext ? base : NULL};
    for (int f = 0; f < 2 && rc == 0 && forms[f]; f++) {
        char *key = domain ? xasprintf("%s@%s", forms[f], domain) : xstrdup(forms[f]);
        rc = virtual_try(r, key, f == 0 && domain, &value);
        free(key);
        stripped = f == 1;
    }
    for (int f = 0; f < 2 && rc == 0 && forms[f] && local_domain; f++) {
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
    struct resolve_targets final;   /* where the expansion ends */
    struct resolve_targets seen;    /* addresses already expanded */
    char *error;
    int temporary;
};

static int virtual_walk(struct virtual_walk *w, const char *addr, long depth)
{
    if (depth > w->r->virtual_recursion_limit) {
        w->error = xasprintf("virtual alias expansion of <%s> is nested deeper than virtual_alias_recursion_limit (%ld)",
                             addr, w->r->virtual_recursion_limit);
        return -1;
    }
    struct resolve_targets found = {0};
    int rc = virtual_lookup(w->r, addr, &found);
    if (rc < 0) {
        w->error = xasprintf("virtual_alias_maps lookup of <%s> failed", addr);
        w->temporary = 1;
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
    if (!w->error && (long)w->final.n > w->r->virtual_expansion_limit)
        w->error = xasprintf("virtual alias expansion of <%s> has more than virtual_alias_expansion_limit (%ld) addresses",
                             addr, w->r->virtual_expansion_limit);
    return w->error ? -1 : 0;
}

int resolver_virtual_expand(struct resolver *r, const char *addr, struct resolve_targets *out, char **error,
                            int *temporary)
{
    memset(out, 0, sizeof *out);
    *error = NULL;
    *temporary = 0;
    if (!r->virtual_alias)
        return 1;
    struct virtual_walk w = {.r = r};
    targets_take(&w.seen, xstrdup(addr));
    int rc = virtual_walk(&w, addr, 0);
    resolve_targets_free(&w.seen);
    if (rc == 0 && w.final.n == 0) {
        /* every target leads back to an address already expanded */
        w.error = xasprintf("virtual alias expansion of <%s> loops back to itself", addr);
        rc = -1;
    }
    if (rc != 0) {
        resolve_targets_free(&w.final);
        *error = w.error;
        *temporary = w.temporary;
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
