/* qmgr_relay: delivery to other mail servers, inside the queue process.
 *
 * What it does: queues each remote recipient on its next hop (decided by
 * qmgr_nexthop: transport_maps, then relayhost, then the recipient's
 * domain), and runs SMTP client sessions (smtpc) to it:
 * the destination's route comes from DNS (MX records, or the host's own
 * addresses for a "[host]" next hop), every address of every exchanger is
 * tried in order, and the recipients of one message that share a
 * destination travel in one transaction (up to
 * smtp_destination_recipient_limit). A transport_maps entry may also name
 * an LMTP server ("lmtp:unix:private/dovecot-lmtp", "lmtp:inet:host:24",
 * parsed by maps/transport): the same sessions in LMTP mode, to the
 * socket, or to the host's own addresses (no MX lookup, no loop check, no
 * login, STARTTLS over TCP only when lmtp_tls_security_level asks, no DKIM
 * signature), each recipient with its own reply to the final dot, with
 * Postfix's lmtp_* settings (LHLO name, timeouts, limits, connection
 * cache) where SMTP has its smtp_* ones. Sessions are bounded per
 * destination (smtp_ or lmtp_destination_concurrency_limit) and in total
 * (default_process_limit). Mail whose best exchanger is this server
 * bounces ("mail for X loops back to myself", 5.4.6); exchangers less
 * preferred than ourselves are never tried.
 *
 * What it owns: the destination table, the waiting recipients, the DNS
 * context and the client sessions. Results go back to the queue manager
 * through qmgr_msg_rcpt_result() and qmgr_msg_finish_if_done() (qmgr_msg.h).
 *
 * Errors: relay_init fails (NULL message in *err) on a bad dns_resolvers or
 * transport_maps setting. Everything after that is a recipient's result:
 * temporary DNS or table failures and unreachable servers defer, permanent
 * ones bounce, each with a Postfix-style reason. */
#ifndef TERN_QMGR_QMGR_RELAY_H
#define TERN_QMGR_QMGR_RELAY_H

#include <stddef.h>

struct event_base;
struct dns_ctx;
struct runtime;
struct qmgr_msg;
struct resolver;
struct transport_hop;

/* resolver: the queue's, for transport_maps; it must outlive the relay.
 * Sets up qmgr_nexthop too. */
int qmgr_relay_init(struct event_base *base, struct runtime *rt, struct resolver *resolver, char **err);
/* Drops every session and waiting recipient (process shutdown). */
void qmgr_relay_shutdown(void);
/* The process's DNS context (set up by qmgr_relay_init; DMARC reports use it too). */
struct dns_ctx *qmgr_relay_dns(void);
/* Stopping: sessions running may finish (a message in the middle of DATA
 * would otherwise be sent again after the restart), no new ones start.
 * qmgr_relay_active() counts those still running. */
void qmgr_relay_quiesce(void);
unsigned qmgr_relay_active(void);

/* Takes recipient idx of q (due, not busy, for another server): marks it
 * busy; its result comes back later through qmgr_msg_rcpt_result(), never
 * from inside this call. hop: its SMTP or LMTP transport as
 * qmgr_nexthop_transport parsed it (an SMTP hop without a next hop, or
 * NULL: relayhost, else its domain). */
void qmgr_relay_enqueue(struct qmgr_msg *q, size_t idx, const struct transport_hop *hop);

#endif
