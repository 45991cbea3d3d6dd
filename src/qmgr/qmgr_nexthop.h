/* qmgr_nexthop: where a relayed recipient goes, and what its next hop gets.
 *
 * Next-hop resolution for the queue process, apart from the sessions that
 * use it (qmgr_relay) so that the routing rules can be read in one place:
 *  - a recipient's transport: its transport_maps entry, looked up once per
 *    routing, over its address class's default transport
 *    (qmgr_nexthop_transport, called by the scheduler in qmgr.c), turned
 *    into a destination key (qmgr_nexthop_key): the transport's next hop,
 *    else relayhost, else the recipient's domain; an LMTP one as
 *    transport_lmtp_key writes it;
 *  - an SMTP destination key read back as host, port and whether DNS is
 *    asked for MX records (qmgr_nexthop_parse);
 *  - which exchangers of a DNS route may be tried: none that is this
 *    server (myhostname, a listener's address, any interface address for a
 *    wildcard listener) or less preferred than it (qmgr_nexthop_usable_hosts);
 *  - the TLS level and login a next hop gets (smtp_tls_policy_maps,
 *    smtp_tls_security_level, lmtp_tls_security_level,
 *    smtp_sasl_password_maps).
 *
 * Owns relayhost, the own-address list and the policy tables, set up by
 * qmgr_nexthop_init (qmgr_relay_init calls it) and dropped by
 * qmgr_nexthop_shutdown. No I/O after setup except table lookups. */
#ifndef TERN_QMGR_QMGR_NEXTHOP_H
#define TERN_QMGR_QMGR_NEXTHOP_H

#include <stddef.h>

#include "maps/resolver.h"

struct dns_route;
struct qmgr_msg;
struct resolver;
struct runtime;
struct transport_hop;

/* Reads the settings and collects this server's addresses (after the
 * listeners are bound). resolver: the queue's, for transport_maps; it
 * must outlive this module. 0, or -1 with *err (a table that cannot be
 * opened). */
int qmgr_nexthop_init(struct runtime *rt, struct resolver *resolver, char **err);
void qmgr_nexthop_shutdown(void);

/* The transport recipient idx, of address class cls, is delivered by:
 * resolver_delivery_transport (its transport_maps entry, looked up once
 * per routing, over the class's default transport: default_transport,
 * relay_transport, virtual_transport or local), parsed into *hop (free it
 * with transport_hop_free; qmgr_relay_enqueue takes SMTP and LMTP hops).
 * *source names where the transport came from ("transport_maps",
 * "relay_transport", ...). 0, or -1 when the recipient is settled here and
 * *hop holds nothing: transport_maps could not be read (deferred, 4.3.0),
 * or the transport does not parse (deferred, 4.3.5, the reason naming
 * *source). */
int qmgr_nexthop_transport(struct qmgr_msg *q, size_t idx, enum resolve_class cls, struct transport_hop *hop,
                           const char **source);

/* A discard: next hop: the recipient is done (delivered, status 2.0.0,
 * "delivered to discard: TEXT"), as Postfix's discard(8) reports it. */
void qmgr_nexthop_discard(struct qmgr_msg *q, size_t idx, const char *text);

/* The destination key of a remote recipient (malloc'd): its transport's
 * next hop (hop; NULL when it has none), else relayhost, else its
 * domain; *lmtp set when it is an LMTP key (transport_lmtp_key). */
char *qmgr_nexthop_key(const char *addr, const struct transport_hop *hop, int *lmtp);

/* Reads an SMTP destination key: "[host]:port", "[host]" (the host's own
 * addresses), "host:port", "host" (MX lookup); an IPv6 address in brackets
 * keeps its colons; no port: smtp_tcp_port. 0 (*host malloc'd), or -1
 * for an empty host or a bad port. */
int qmgr_nexthop_parse(const char *spec, char **host, int *use_mx, unsigned *port);

/* How many of the route's exchangers (best first) to try: those preferred
 * over ourselves when we are listed (as Postfix: every record with our
 * preference or worse is dropped); -1 when that leaves none (a loop). */
long qmgr_nexthop_usable_hosts(const struct dns_route *r);

/* The TLS level (enum smtpc_tls) and the names the certificate must carry
 * (*match malloc'd, or NULL) for the destination key and its host: for
 * SMTP smtp_tls_policy_maps (the key, then the host), else
 * smtp_tls_security_level ("secure" matches the host and its
 * subdomains); for LMTP lmtp_tls_security_level. */
void qmgr_nexthop_tls(const char *key, const char *host, int lmtp, int *level, char **match);

/* The login for an SMTP destination: smtp_sasl_password_maps (the key as
 * written, "[smtp.example.com]:587", then the host), "user:password".
 * *user and *pass malloc'd, or both NULL when there is none. */
void qmgr_nexthop_login(const char *key, const char *host, char **user, char **pass);

#endif
