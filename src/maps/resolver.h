/* resolver: where an envelope recipient goes, and whether it exists.
 *
 * Used by smtpd (to accept or refuse RCPT TO) and by the queue (to route and
 * expand aliases before delivery), so both always agree. Owns the parsed
 * domain lists of the address classes, the alias tables,
 * virtual_alias_maps and transport_maps. Address classes as Postfix's
 * ADDRESS_CLASS_README defines them: local (mydestination, and [address]
 * of this host's inet_interfaces and proxy_interfaces), virtual alias
 * (virtual_alias_domains: every address must be in virtual_alias_maps),
 * and the rest, relayed. virtual_alias_maps applies to every class. Lookups may read files and the
 * passwd database; they do not block on the network. */
#ifndef TERN_MAPS_RESOLVER_H
#define TERN_MAPS_RESOLVER_H

#include <sys/types.h>

struct conf;
struct map_list;

struct resolver;

enum resolve_class {
    RESOLVE_LOCAL,          /* a domain in mydestination, [our address] (or no domain) */
    RESOLVE_REMOTE,         /* anywhere else: relayed */
    RESOLVE_VIRTUAL_ALIAS,  /* a domain in virtual_alias_domains: only its aliases exist */
    RESOLVE_VIRTUAL_MAILBOX,/* a domain in virtual_mailbox_domains: mailboxes of virtual_mailbox_maps */
    RESOLVE_RELAY,          /* relay_domains (and their subdomains): relayed for anyone, to the
                               recipients relay_recipient_maps lists when it is set */
};

enum resolve_verdict {
    RESOLVE_OK,         /* a local user or an alias */
    RESOLVE_UNKNOWN,    /* local domain, no such user or alias */
    RESOLVE_TEMPFAIL,   /* a table could not be read */
};

/* Opens the domain lists (a /file/name in one that cannot be read is an
 * error), the tables, and reads this host's addresses once. */
struct resolver *resolver_new(struct conf *c, char **err);
void resolver_free(struct resolver *r);
struct map_list *resolver_aliases(struct resolver *r);

/* Splits "local@domain" at the last '@'; domain NULL when there is none.
 * Both malloc'd; the domain lowercased with any trailing dot removed. */
void resolve_split(const char *addr, char **local, char **domain);
enum resolve_class resolver_class(const struct resolver *r, const char *addr);
/* As resolver_class, but -1 (and *cls REMOTE) when a table of a domain
 * list could not be read; else 0. */
int resolver_classify(const struct resolver *r, const char *addr, enum resolve_class *cls);
/* A local domain: no domain at all, one listed in mydestination (names,
 * /file/name, type:table), or "[address]" of one of this host's addresses
 * (inet_interfaces, with "all" the interfaces' addresses as they were at
 * resolver_new; proxy_interfaces), as Postfix's ADDRESS_CLASS_README says.
 * 1, 0, or -1 when a table of mydestination could not be read. */
int resolver_is_local_domain(const struct resolver *r, const char *domain);
/* A domain tern receives mail for (reject_unauth_destination lets it
 * through): mydestination, virtual_alias_domains or virtual_mailbox_domains. 1, 0, or -1 when a
 * table could not be read. */
int resolver_is_our_domain(const struct resolver *r, const char *domain);

/* The first /file/name of a domain list (mydestination,
 * virtual_alias_domains, virtual_mailbox_domains, relay_domains) that
 * cannot be read, as "param: cannot read /file: why" (malloc'd) with *param
 * the list's name; NULL (and *param NULL) when every one can. For `tern
 * config check`, which opens no tables. */
char *resolver_domain_list_files_problem(struct conf *c, const char **param);

/* relay_domains: 1, 0, or -1 when a table could not be read. */
int resolver_is_relay_domain(const struct resolver *r, const char *domain);

/* Any recipient (RCPT, VRFY, sendmail -bv): RESOLVE_OK when
 * virtual_alias_maps has it, or it is a local user or alias of a local
 * domain (postmaster, MAILER-DAEMON and double_bounce_sender always are),
 * or its class's table is not set (virtual_mailbox_maps,
 * relay_recipient_maps, local_recipient_maps set empty: Postfix checks a
 * table only when it is set), or it is in no domain of ours (relaying is
 * the restrictions' business); RESOLVE_UNKNOWN with *table naming where it is missing ("local
 * recipient table", "virtual alias table", "virtual mailbox table", "relay
 * recipient table"); RESOLVE_TEMPFAIL when a table
 * failed. */
enum resolve_verdict resolver_check_recipient(struct resolver *r, const char *addr, const char **table);

/* Addresses an expansion ends in (malloc'd). */
struct resolve_targets {
    char **v;
    size_t n, cap;
};
void resolve_targets_free(struct resolve_targets *t);

/* virtual_alias_maps applied to addr, recursively (virtual(5)): lookups
 * of user@domain, user (local domains only), @domain, each with and then
 * without a recipient_delimiter extension (carried over to the targets as
 * propagate_unmatched_extensions says); an "@domain" target keeps the
 * user, a bare name gets @$myorigin; an address whose value names itself is
 * delivered as it is; each address expanded once; duplicates dropped.
 * 1: addr is no virtual alias; 0: *out holds the final addresses; -1: an
 * error, always temporary (*error malloc'd, *dsn its enhanced status):
 * RESOLVE_DSN_TABLE_FAILED when a table could not be read,
 * RESOLVE_DSN_ALIAS_ERROR when the table itself is wrong (more than
 * virtual_alias_recursion_limit levels, more than
 * virtual_alias_expansion_limit addresses, or entries that only lead back
 * to each other). A wrong table is the administrator's to fix, not the
 * sender's fault: as Postfix's cleanup refuses such a message with "4.6.0
 * Alias expansion error" rather than bounce it, the recipient waits in the
 * queue and is delivered once the table is fixed. */
#define RESOLVE_DSN_TABLE_FAILED "4.3.0"
#define RESOLVE_DSN_ALIAS_ERROR "4.6.0"
int resolver_virtual_expand(struct resolver *r, const char *addr, struct resolve_targets *out, char **error,
                            const char **dsn);
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
    int is_virtual;     /* a virtual_mailbox_maps mailbox (user is the address) */
    long long size_limit; /* virtual_mailbox_limit for a virtual one; 0: none */
};
/* transport_maps (transport(5)): the entry for addr itself (the only key
 * pattern tables see), for addr without its recipient_delimiter extension,
 * for its domain, else for each parent domain as ".parent", and last
 * "*" (any address with a domain; not asked of pattern tables, which see
 * the address). 1 found (*value malloc'd, as written:
 * ":" and ":nexthop" too, which transport_combine reads), 0 none (or no
 * transport_maps), -1 a table could not be read. */
int resolver_transport(struct resolver *r, const char *addr, char **value);

/* The transport a recipient of class cls is delivered by (transport(5)),
 * as a string for transport_parse: its transport_maps entry applied to
 * the class's default transport with transport_combine, or that default
 * when there is no entry or only the null entry ":". The defaults:
 * "local" (tern's local agent) for RESOLVE_LOCAL, virtual_transport,
 * relay_transport, default_transport; RESOLVE_VIRTUAL_ALIAS is never
 * looked up (an address virtual_alias_maps does not list is unknown:
 * "error:5.1.1 ..."). *source names where the transport comes from, for
 * reasons: "transport_maps" when an entry changed something, else the
 * class's parameter ("virtual_transport", ...). 0 (*transport malloc'd),
 * -1 when transport_maps could not be read. */
int resolver_delivery_transport(struct resolver *r, const char *addr, enum resolve_class cls, char **transport,
                                const char **source);

/* An "error:[d.d.d ]text" transport entry: 1 with *status (the entry's own
 * 5.X.Y status, else default_status) and *text (the rest, else a fixed
 * text) pointing into value or static strings; 0 for any other entry. The
 * same rule serves smtpd (refusal at RCPT) and the queue (the bounce). */
int resolver_error_transport(const char *value, const char *default_status, char status[16],
                             const char **text);

/* A "retry:[4.X.Y ]text" transport entry (Postfix's retry(8)): the
 * recipient is deferred, never delivered. 1 with *status (the entry's own
 * 4.X.Y status, else 4.0.0) and *text (the rest, else a fixed text); 0
 * for any other entry. */
int resolver_retry_transport(const char *value, char status[16], const char **text);

/* Finds the mailbox of a local user: 0 found, 1 no such user, -1 temporary
 * problem (err filled). */
int resolver_mailbox(struct resolver *r, const char *user, struct local_mailbox *out,
                     char *err, size_t errlen);
void resolver_mailbox_free(struct local_mailbox *mb);

/* The mailbox of an address of a virtual mailbox domain (virtual(8)):
 * virtual_mailbox_maps (user@domain, without its extension, @domain) gives
 * a path below virtual_mailbox_base (a trailing '/': Maildir; no "." or
 * ".." components), virtual_uid_maps and virtual_gid_maps (e.g.
 * static:5000) its owner; a uid below virtual_minimum_uid is refused. 0
 * found, 1 not in the table, -1 a lookup failed or the entry is unusable
 * (err filled: a temporary problem for the administrator). */
int resolver_virtual_mailbox(struct resolver *r, const char *addr, struct local_mailbox *out, char *err,
                             size_t errlen);

#endif
