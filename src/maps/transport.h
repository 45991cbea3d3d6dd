/* transport: what a transport string means, as one structured next hop.
 *
 * A transport string is a transport_maps value, or the value of a
 * parameter that names a transport the same way (mailbox_transport,
 * virtual_transport). The forms read, as Postfix writes them (transport(5)):
 *
 *   local, local:ANYTHING          local delivery; the next hop is ignored
 *   smtp, smtp:, relay, relay:     SMTP to the usual next hop (relayhost,
 *                                  else the recipient's domain)
 *   smtp:NEXTHOP, relay:NEXTHOP    SMTP to NEXTHOP as written: "[host]:port"
 *                                  (that host's addresses), "host:port" or
 *                                  "host" (MX lookup)
 *   lmtp:unix:PATH                 LMTP (RFC 2033) over a unix socket; a
 *                                  relative PATH is relative to the queue
 *                                  directory ("lmtp:unix:private/dovecot-lmtp")
 *   lmtp:inet:HOST[:PORT], lmtp:[HOST]:PORT, lmtp:HOST:PORT, lmtp:HOST
 *                                  LMTP over TCP to HOST's own addresses
 *                                  (never an MX lookup); port 24 when none
 *                                  is given; an IPv6 address in brackets
 *   error:[5.X.Y ]TEXT             a bounce with that status and text
 *   retry:[4.X.Y ]TEXT             deferred with that status (4.0.0 when it
 *                                  has none) and text: Postfix's retry(8)
 *   discard[:TEXT]                 reported delivered, sent nowhere
 *   virtual, virtual:ANYTHING      the virtual mailbox delivery (in tern the
 *                                  local agent's, for an address of
 *                                  virtual_mailbox_domains); the next hop
 *                                  is ignored
 *
 * A transport_maps entry may leave out either half (transport(5)): ":"
 * keeps both the transport and the next hop of the address class,
 * ":NEXTHOP" keeps the transport, "NAME:" keeps the next hop.
 * transport_combine applies such an entry to the class's default before
 * transport_parse reads the result.
 *
 * Transport names and "unix:"/"inet:" are case-insensitive; blanks around
 * the value are ignored. Anything else (another transport, an "lmtp:"
 * without a next hop, a bad port, a socket path too long for a
 * sockaddr_un) is an error, so a broken entry defers mail instead of
 * sending it somewhere unintended.
 *
 * Pure parsing: no I/O, no DNS, nothing kept between calls. */
#ifndef TERN_MAPS_TRANSPORT_H
#define TERN_MAPS_TRANSPORT_H

#define TRANSPORT_LMTP_PORT 24

enum transport_kind {
    TRANSPORT_LOCAL,
    TRANSPORT_SMTP,
    TRANSPORT_LMTP,
    TRANSPORT_ERROR,
    TRANSPORT_DISCARD,   /* Postfix's discard(8): reported delivered, sent nowhere */
    TRANSPORT_RETRY,     /* Postfix's retry(8): deferred with the entry's status and text */
    TRANSPORT_VIRTUAL,   /* virtual mailbox delivery (virtual(8)), by the local agent */
};

struct transport_hop {
    enum transport_kind kind;
    /* SMTP: the next hop as written after the colon, blanks trimmed; ""
     * for the usual one. */
    char *nexthop;
    /* LMTP over a unix socket (unix_socket = 1): socket_path is absolute,
     * socket_shown as written (for logs, and Postfix's relay= form). */
    int unix_socket;
    char *socket_path;
    char *socket_shown;
    /* LMTP over TCP: the host (a name or an address, brackets removed)
     * and the port. */
    char *host;
    unsigned port;
    /* ERROR: the entry's 5.X.Y status (5.0.0 when it has none) and text;
     * RETRY: its 4.X.Y status (4.0.0 when it has none) and text;
     * DISCARD: the text after "discard:" (status unused). */
    char status[16];
    char *text;
};

/* Parses value into *hop (zeroed first; free with transport_hop_free).
 * queue_dir anchors a relative LMTP socket path. 0, or -1 with *err
 * (malloc'd, "unsupported transport in \"uucp:x\"", "bad LMTP next hop in
 * \"...\": ...") and nothing to free in *hop. */
int transport_parse(const char *value, const char *queue_dir, struct transport_hop *hop, char **err);
void transport_hop_free(struct transport_hop *hop);

/* transport(5)'s override rule: entry (a transport_maps value) applied to
 * class_default (the transport of the recipient's address class:
 * default_transport, relay_transport, virtual_transport, "local"). The
 * entry's transport replaces the default's when it names one; its next
 * hop replaces the default's when it has one. An entry that names a
 * transport but no next hop ("smtp:", "relay:") keeps the default's next
 * hop only when both transports send to a destination (smtp, relay,
 * lmtp): the "next hop" of error:, retry: and discard: is a text, and
 * local and virtual ignore theirs. So with class_default "relay:[backup]",
 * ":" gives "relay:[backup]", ":[gw]:2525" gives "relay:[gw]:2525" and
 * "smtp:" gives "smtp:[backup]". Blanks around each half are dropped.
 * malloc'd; no check of the result (transport_parse does that). */
char *transport_combine(const char *class_default, const char *entry);

/* An entry that changes nothing: empty or ":" (blanks aside). */
int transport_is_null(const char *entry);

/* An LMTP hop written the one way that parses back to the same hop
 * ("lmtp:unix:private/dovecot-lmtp", "lmtp:inet:[::1]:24",
 * "lmtp:inet:lmtp.example.com:24"): a key for "the same destination".
 * malloc'd; NULL for any other kind. */
char *transport_lmtp_key(const struct transport_hop *hop);

#endif
