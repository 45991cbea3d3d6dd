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

struct resolver {
    char **mydest;
    size_t nmydest;
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

enum resolve_class resolver_class(const struct resolver *r, const char *addr)
{
    char *local, *domain;
    resolve_split(addr, &local, &domain);
    int is_local = resolver_is_local_domain(r, domain);
    free(local);
    free(domain);
    return is_local ? RESOLVE_LOCAL : RESOLVE_REMOTE;
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
