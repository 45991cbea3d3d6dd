/* resolver_internal: what the resolver's files share (resolver.c: the
 * classes, local users and mailboxes; resolver_domains.c: domain lists and
 * this host's addresses; resolver_virtual.c: virtual aliases, virtual
 * mailboxes, relay recipients and the RCPT check). Not for other modules:
 * they use resolver.h. */
#ifndef TERN_MAPS_RESOLVER_INTERNAL_H
#define TERN_MAPS_RESOLVER_INTERNAL_H

#include "maps/resolver.h"

struct conf;
struct map_list;

/* A list of domains as Postfix writes them (mydestination,
 * virtual_alias_domains, virtual_mailbox_domains, relay_domains): names,
 * /file/name entries whose files list names, and type:table entries in
 * which a domain is listed when it is a key. */
struct domain_list {
    char **names;
    size_t n;
    struct map_list *tables;   /* NULL: none */
    struct map_list *files;    /* the /file/name entries; NULL: none */
    int subdomains;            /* a name also matches its subdomains (Postfix's
                                  parent_domain_matches_subdomains, relay_domains) */
};

/* One of this host's addresses (inet_interfaces, proxy_interfaces). */
struct own_address {
    int family;                /* AF_INET or AF_INET6 */
    unsigned char addr[16];
};

struct resolver {
    struct domain_list mydestination;
    struct own_address *own_addresses;   /* "[address]" of these is a local domain */
    size_t nown_addresses;
    char *double_bounce_sender;
    struct domain_list virtual_alias_domains;
    struct map_list *virtual_alias;   /* virtual_alias_maps; NULL: none */
    long virtual_recursion_limit, virtual_expansion_limit;
    int propagate_virtual_extension;  /* propagate_unmatched_extensions has "virtual" */
    struct domain_list virtual_mailbox_domains;
    struct domain_list relay_domains;
    struct map_list *local_recipients;   /* local_recipient_maps when set (both NULL: set empty) */
    struct map_list *local_recipient_aliases;   /* its tables that are alias_maps too */
    int local_recipient_maps_set;
    struct map_list *relay_recipients;   /* relay_recipient_maps; NULL: any recipient */
    struct map_list *virtual_mailbox, *virtual_uid, *virtual_gid;   /* NULL: none */
    char *virtual_mailbox_base;
    long long virtual_minimum_uid;
    long long virtual_mailbox_limit;
    char *myorigin;
    struct map_list *aliases;
    struct map_list *transport;
    /* the default transport of each address class that is delivered
     * (transport(5)): local domains have tern's local agent */
    char *default_transport, *relay_transport, *virtual_transport;
    char *local_mailbox_base;
    char *home_mailbox;
    char *mail_spool_directory;
    char *recipient_delimiter;
};

/* resolver_domains.c */
char *resolver_normalize_domain(const char *d);   /* lowercased, no trailing dot; malloc'd */
/* 0, or -1 with *err (malloc'd) when a table cannot be opened or a
 * /file/name cannot be read. */
int domain_list_open(struct domain_list *l, struct conf *c, const char *param, char **err);
void domain_list_free(struct domain_list *l);
/* 1 when the (normalized) domain is in the list, 0 when not, -1 when a
 * table could not be read. */
int domain_list_match(const struct domain_list *l, const char *domain);
void resolver_load_own_addresses(struct resolver *r, struct conf *c);

#endif
