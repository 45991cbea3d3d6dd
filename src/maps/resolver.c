/* resolver: recipient routing and local-recipient checks (see resolver.h). */
#include "maps/resolver.h"
#include "maps/resolver_internal.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conf/conf.h"
#include "maps/map.h"
#include "maps/transport.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

/* A table list from a parameter's value; NULL for an empty one. */
static int open_optional_maps(struct map_list **l, const char *specs, char **err)
{
    *l = *specs ? map_list_open(specs, 0, err) : NULL;
    return *specs && !*l ? -1 : 0;
}

/* local_recipient_maps: the tables that are also alias_maps ("$alias_maps"
 * in it, as Postfix's default has) are read in aliases(5) format, since
 * tern reads the text source where Postfix reads newaliases' database. */
static int open_local_recipient_maps(struct resolver *r, struct conf *c, char **err)
{
    struct conf_list lrm = conf_list(c, "local_recipient_maps");
    struct conf_list am = conf_list(c, "alias_maps");
    struct strbuf plain = STRBUF_INIT, aliases = STRBUF_INIT;
    for (size_t i = 0; i < lrm.n; i++) {
        int is_alias = 0;
        for (size_t k = 0; k < am.n && !is_alias; k++)
            is_alias = strcmp(lrm.items[i], am.items[k]) == 0;
        struct strbuf *to = is_alias ? &aliases : &plain;
        strbuf_printf(to, "%s%s", to->len ? ", " : "", lrm.items[i]);
    }
    conf_list_free(&lrm);
    conf_list_free(&am);
    int rc = 0;
    if (plain.len && !(r->local_recipients = map_list_open(plain.buf, 0, err)))
        rc = -1;
    if (rc == 0 && aliases.len && !(r->local_recipient_aliases = map_list_open(aliases.buf, MAP_ALIAS_FORMAT, err)))
        rc = -1;
    strbuf_free(&plain);
    strbuf_free(&aliases);
    return rc;
}

struct resolver *resolver_new(struct conf *c, char **err)
{
    struct resolver *r = xcalloc(1, sizeof *r);
    if (domain_list_open(&r->mydestination, c, "mydestination", err) != 0) {
        resolver_free(r);
        return NULL;
    }
    resolver_load_own_addresses(r, c);
    r->double_bounce_sender = xstrdup(conf_str(c, "double_bounce_sender"));
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
    if (open_optional_maps(&r->virtual_mailbox, conf_str(c, "virtual_mailbox_maps"), err) != 0 ||
        open_optional_maps(&r->virtual_uid, conf_str(c, "virtual_uid_maps"), err) != 0 ||
        open_optional_maps(&r->virtual_gid, conf_str(c, "virtual_gid_maps"), err) != 0) {
        resolver_free(r);
        return NULL;
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
    /* unset: system users and aliases (Postfix's default), or anyone in the
     * development layout; set: exactly its tables (empty: no check) */
    r->local_recipient_maps_set = conf_is_set(c, "local_recipient_maps");
    if (r->local_recipient_maps_set && open_local_recipient_maps(r, c, err) != 0) {
        resolver_free(r);
        return NULL;
    }
    r->default_transport = xstrdup(conf_str(c, "default_transport"));
    r->relay_transport = xstrdup(conf_str(c, "relay_transport"));
    r->virtual_transport = xstrdup(conf_str(c, "virtual_transport"));
    r->virtual_mailbox_base = xstrdup(conf_str(c, "virtual_mailbox_base"));
    r->virtual_minimum_uid = conf_int(c, "virtual_minimum_uid");
    r->virtual_mailbox_limit = conf_int(c, "virtual_mailbox_limit");
    r->virtual_recursion_limit = (long)conf_int(c, "virtual_alias_recursion_limit");
    r->virtual_expansion_limit = (long)conf_int(c, "virtual_alias_expansion_limit");
    struct conf_list pue = conf_list(c, "propagate_unmatched_extensions");
    for (size_t i = 0; i < pue.n; i++)
        r->propagate_virtual_extension |= strcasecmp(pue.items[i], "virtual") == 0;
    conf_list_free(&pue);
    r->myorigin = resolver_normalize_domain(conf_str(c, "myorigin"));
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
    domain_list_free(&r->mydestination);
    free(r->own_addresses);
    free(r->double_bounce_sender);
    if (r->aliases)
        map_list_close(r->aliases);
    if (r->transport)
        map_list_close(r->transport);
    if (r->virtual_alias)
        map_list_close(r->virtual_alias);
    domain_list_free(&r->virtual_alias_domains);
    domain_list_free(&r->virtual_mailbox_domains);
    domain_list_free(&r->relay_domains);
    if (r->local_recipients)
        map_list_close(r->local_recipients);
    if (r->local_recipient_aliases)
        map_list_close(r->local_recipient_aliases);
    if (r->relay_recipients)
        map_list_close(r->relay_recipients);
    struct map_list *vmaps[] = {r->virtual_mailbox, r->virtual_uid, r->virtual_gid};
    for (size_t i = 0; i < 3; i++)
        if (vmaps[i])
            map_list_close(vmaps[i]);
    free(r->default_transport);
    free(r->relay_transport);
    free(r->virtual_transport);
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
    int rc = 0;
    if (domain) {
        /* transport(5)'s order: the address (pattern tables see only this
         * whole key), the address without its extension, the domain, then
         * each parent as ".parent" */
        char *key = xasprintf("%s@%s", local, domain);
        rc = map_list_lookup(r->transport, key, value);
        free(key);
        size_t cut = *r->recipient_delimiter ? strcspn(local, r->recipient_delimiter) : strlen(local);
        if (rc == 0 && cut > 0 && local[cut]) {
            key = xasprintf("%.*s@%s", (int)cut, local, domain);
            rc = map_list_lookup_partial(r->transport, key, value);
            free(key);
        }
        if (rc == 0)
            rc = map_list_lookup_partial(r->transport, domain, value);
        for (const char *p = strchr(domain, '.'); rc == 0 && p; p = strchr(p + 1, '.'))
            rc = map_list_lookup_partial(r->transport, p, value);
    }
    /* "*": any address, asked only when no other key matched; a bare
     * local name (an alias's target) is local, as it has always been */
    if (rc == 0 && domain)
        rc = map_list_lookup_partial(r->transport, "*", value);
    free(local);
    free(domain);
    return rc;
}

int resolver_delivery_transport(struct resolver *r, const char *addr, enum resolve_class cls, char **transport,
                                const char **source)
{
    *transport = NULL;
    const char *class_default = "local";
    *source = "local delivery";
    switch (cls) {
    case RESOLVE_VIRTUAL_ALIAS:
        /* an address virtual_alias_maps does not list: unknown, whatever
         * transport_maps says (Postfix's trivial-rewrite does not let the
         * table override this class either) */
        *transport = xstrdup("error:5.1.1 User unknown in virtual alias table");
        *source = "virtual_alias_domains";
        return 0;
    case RESOLVE_VIRTUAL_MAILBOX:
        class_default = r->virtual_transport, *source = "virtual_transport";
        break;
    case RESOLVE_RELAY:
        class_default = r->relay_transport, *source = "relay_transport";
        break;
    case RESOLVE_REMOTE:
        class_default = r->default_transport, *source = "default_transport";
        break;
    case RESOLVE_LOCAL:
        break;
    }
    char *entry = NULL;
    int rc = resolver_transport(r, addr, &entry);
    if (rc < 0)
        return -1;
    if (rc == 0 || transport_is_null(entry)) {
        *transport = xstrdup(class_default);
    } else {
        *transport = transport_combine(class_default, entry);
        *source = "transport_maps";
    }
    free(entry);
    return 0;
}

/* "C.X.Y" with C the class digit and X and Y of one to three digits (RFC
 * 3463), then a space or the end. */
static size_t status_len(const char *s, char class_digit)
{
    if (s[0] != class_digit || s[1] != '.')
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

/* "NAME:[C.X.Y ]text", the form error(8) and retry(8) read their next hop
 * in: 1 with *status and *text, 0 when value names another transport. */
static int status_transport(const char *value, const char *name, char class_digit, const char *default_status,
                            const char *default_text, char status[16], const char **text)
{
    size_t name_len = strlen(name);
    while (*value == ' ' || *value == '\t')
        value++;
    if (strncasecmp(value, name, name_len) != 0 || (value[name_len] != ':' && value[name_len] != '\0'))
        return 0;
    const char *rest = value[name_len] ? value + name_len + 1 : value + name_len;
    while (*rest == ' ' || *rest == '\t')
        rest++;
    size_t n = status_len(rest, class_digit);
    if (n) {
        memcpy(status, rest, n);
        status[n] = '\0';
        rest += n;
        while (*rest == ' ' || *rest == '\t')
            rest++;
    } else {
        snprintf(status, 16, "%s", default_status);
    }
    *text = *rest ? rest : default_text;
    return 1;
}

int resolver_error_transport(const char *value, const char *default_status, char status[16],
                             const char **text)
{
    return status_transport(value, "error", '5', default_status, "mail for this destination is not accepted",
                            status, text);
}

int resolver_retry_transport(const char *value, char status[16], const char **text)
{
    return status_transport(value, "retry", '4', "4.0.0", "delivery to this destination is deferred", status,
                            text);
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
    *domain = resolver_normalize_domain(at + 1);
}

int resolver_classify(const struct resolver *r, const char *addr, enum resolve_class *cls)
{
    char *local_part, *domain;
    resolve_split(addr, &local_part, &domain);
    free(local_part);
    int rc = 0;
    *cls = RESOLVE_REMOTE;
    int local = resolver_is_local_domain(r, domain);
    if (local > 0) {
        *cls = RESOLVE_LOCAL;
    } else if (local < 0) {
        rc = -1;
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
    char *d = resolver_normalize_domain(domain);
    int m = domain_list_match(&r->relay_domains, d);
    free(d);
    return m;
}

int resolver_is_our_domain(const struct resolver *r, const char *domain)
{
    int local = resolver_is_local_domain(r, domain);
    if (local != 0)
        return local;
    char *d = resolver_normalize_domain(domain);
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

/* local_recipient_maps, when main.cf sets it: the address, then the user
 * name (each with its extension, then without), then @domain, as Postfix's
 * mail_addr_find; pattern tables see only the whole address. */
static enum resolve_verdict check_local_recipient_maps(struct resolver *r, const char *addr)
{
    if (!r->local_recipients && !r->local_recipient_aliases)
        return RESOLVE_OK;   /* set to nothing: Postfix's "no check" */
    char *local, *domain;
    resolve_split(addr, &local, &domain);
    unquote_local(local);
    char *base = xstrdup(local);
    size_t cut = *r->recipient_delimiter ? strcspn(base, r->recipient_delimiter) : strlen(base);
    if (cut > 0)
        base[cut] = '\0';
    char *keys[5] = {domain ? xasprintf("%s@%s", local, domain) : NULL,
                     domain && strcmp(base, local) != 0 ? xasprintf("%s@%s", base, domain) : NULL, xstrdup(local),
                     strcmp(base, local) != 0 ? xstrdup(base) : NULL, domain ? xasprintf("@%s", domain) : NULL};
    int rc = 0;
    for (int i = 0; i < 5 && rc == 0; i++) {
        if (!keys[i])
            continue;
        struct map_list *lists[2] = {r->local_recipients, r->local_recipient_aliases};
        for (int l = 0; l < 2 && rc == 0; l++) {
            if (!lists[l])
                continue;
            char *value = NULL;
            rc = i == 0 ? map_list_lookup(lists[l], keys[i], &value) : map_list_lookup_partial(lists[l], keys[i], &value);
            free(value);
        }
    }
    for (int i = 0; i < 5; i++)
        free(keys[i]);
    free(base);
    free(local);
    free(domain);
    return rc > 0 ? RESOLVE_OK : rc == 0 ? RESOLVE_UNKNOWN : RESOLVE_TEMPFAIL;
}

enum resolve_verdict resolver_check_local(struct resolver *r, const char *addr)
{
    if (r->local_recipient_maps_set)
        return check_local_recipient_maps(r, addr);
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
