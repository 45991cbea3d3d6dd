/* resolver: where an envelope recipient goes, and whether a local one exists.
 *
 * Used by smtpd (to accept or refuse RCPT TO) and by the queue (to route and
 * expand aliases before delivery), so both always agree. Owns the parsed
 * mydestination list, the alias tables and transport_maps. Lookups may read files and the
 * passwd database; they do not block on the network. */
#ifndef TERN_MAPS_RESOLVER_H
#define TERN_MAPS_RESOLVER_H

#include <sys/types.h>

struct conf;
struct map_list;

struct resolver;

enum resolve_class {
    RESOLVE_LOCAL,      /* a domain in mydestination (or no domain) */
    RESOLVE_REMOTE,     /* anywhere else: relayed */
};

enum resolve_verdict {
    RESOLVE_OK,         /* a local user or an alias */
    RESOLVE_UNKNOWN,    /* local domain, no such user or alias */
    RESOLVE_TEMPFAIL,   /* a table could not be read */
};

/* Opens mydestination, alias_maps and transport_maps. */
struct resolver *resolver_new(struct conf *c, char **err);
void resolver_free(struct resolver *r);
struct map_list *resolver_aliases(struct resolver *r);

/* Splits "local@domain" at the last '@'; domain NULL when there is none.
 * Both malloc'd; the domain lowercased with any trailing dot removed. */
void resolve_split(const char *addr, char **local, char **domain);
enum resolve_class resolver_class(const struct resolver *r, const char *addr);
int resolver_is_local_domain(const struct resolver *r, const char *domain);
/* For a local address: does the local part name a user or an alias? */
enum resolve_verdict resolver_check_local(struct resolver *r, const char *addr);
/* The user part a local address delivers to: lowercased local part without
 * a recipient_delimiter extension. malloc'd. */
char *resolver_local_user(const struct resolver *r, const char *addr);

struct local_mailbox {
    char *user;
    char *path;         /* Maildir directory (with trailing '/') or mbox file */
    int is_maildir;
    int make_parents;   /* development mailboxes: create the directories above */
    uid_t uid;          /* owner for the delivery; (uid_t)-1 = as tern runs */
    gid_t gid;
};
/* transport_maps: the entry for addr's domain, else for each parent domain
 * as ".parent". 1 found (*value malloc'd), 0 none (or no transport_maps),
 * -1 a table could not be read. */
int resolver_transport(struct resolver *r, const char *addr, char **value);

/* An "error:[d.d.d ]text" transport entry: 1 with *status (the entry's own
 * 5.X.Y status, else default_status) and *text (the rest, else a fixed
 * text) pointing into value or static strings; 0 for any other entry. The
 * same rule serves smtpd (refusal at RCPT) and the queue (the bounce). */
int resolver_error_transport(const char *value, const char *default_status, char status[16],
                             const char **text);

/* Finds the mailbox of a local user: 0 found, 1 no such user, -1 temporary
 * problem (err filled). */
int resolver_mailbox(struct resolver *r, const char *user, struct local_mailbox *out,
                     char *err, size_t errlen);
void resolver_mailbox_free(struct local_mailbox *mb);

#endif
