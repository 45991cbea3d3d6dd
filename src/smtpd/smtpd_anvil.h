/* smtpd_anvil: per-client limits of the SMTP server, as Postfix's anvil(8)
 * keeps them: concurrent connections (smtpd_client_connection_count_limit),
 * and per time unit (anvil_rate_time_unit) connections, messages,
 * recipients, AUTH commands and new TLS sessions
 * (smtpd_client_connection_rate_limit, smtpd_client_message_rate_limit,
 * smtpd_client_recipient_rate_limit, smtpd_client_auth_rate_limit,
 * smtpd_client_new_tls_session_rate_limit); and the AUTH lockout
 * (smtpd_sasl_failure_limit failures within smtpd_sasl_lockout_time refuse
 * the client for smtpd_sasl_lockout_time).
 *
 * A client is its IPv4 address, or its IPv6 /64 (an IPv4-mapped IPv6
 * address is its IPv4 address): one subscriber gets a /64 and could
 * otherwise appear as 2^64 clients.
 *
 * Tern has one smtpd process, so the counters live in it: hash tables of
 * clients (util/hashmap), bounded, and neither ever stops counting. The
 * limits table (ANVIL_MAX_CLIENTS), when full, forgets only entries that
 * hold nothing a limit needs (no open connection, no limited rate still
 * counting in its window), which is the same as having none; when every
 * entry holds something, the clients without a slot are counted together
 * as one shared client (its limits apply to all of them at once). Rates
 * count in fixed windows of one time unit, as anvil does. The counts are a
 * client's across all listeners of the process (master.cf services share
 * them); a window lasts the time unit of the listener whose event opened
 * it.
 *
 * The lockout table (ANVIL_MAX_LOCKOUTS) likewise: when full, a new client
 * takes the slot of a client whose lockout and counting window have ended
 * (the one that failed least recently); when every slot still counts, the
 * failures of all clients without a slot are counted together in one shared
 * entry, and once that reaches the limit every client without a slot is
 * refused until its lockout ends (ANVIL_LOCKED_SHARED). So an attacker with
 * more addresses than slots gets at most one more limit's worth of guesses
 * per lockout time, never an uncounted stream. Evicting entries that still
 * count would let 1025 addresses guess without end.
 *
 * The tables belong to one smtpd process: a reload starts a new one with
 * empty tables (as Postfix's anvil restarts), while the old one finishes
 * its sessions.
 *
 * Owned by smtpd; single-threaded; no errors. */
#ifndef TERN_SMTPD_SMTPD_ANVIL_H
#define TERN_SMTPD_SMTPD_ANVIL_H

#include <stddef.h>
#include <time.h>

#define ANVIL_MAX_CLIENTS 65536
#define ANVIL_MAX_LOCKOUTS 1024
/* "xxxx:xxxx:xxxx:xxxx::/64" or an IPv4 address, or a cut address string */
#define ANVIL_KEY_LEN 48

/* What a new connection is measured against. */
struct smtpd_anvil_limits {
    long conn_count;   /* 0: no limit */
    long conn_rate;    /* per unit; 0: no limit */
    long unit;         /* seconds */
};

/* The client addr counts as: the address, or "prefix::/64" for IPv6. */
void smtpd_anvil_client_key(const char *addr, char *key, size_t size);

#define ANVIL_ADMITTED 0          /* counted for addr */
#define ANVIL_OVER_COUNT 1        /* over the concurrency limit, not counted */
#define ANVIL_OVER_RATE 2         /* over the connection rate limit, not counted */
#define ANVIL_ADMITTED_SHARED 3   /* counted in the shared entry (the table is full) */
/* A new connection from addr: one of the above. An admitted one is given
 * back with smtpd_anvil_disconnect(addr, what connect returned, now). */
int smtpd_anvil_connect(const char *addr, const struct smtpd_anvil_limits *l, time_t now);
void smtpd_anvil_disconnect(const char *addr, int admitted, time_t now);
/* The rates counted per client and time unit. */
enum anvil_rate {
    ANVIL_RATE_CONN,   /* connections (smtpd_anvil_connect counts them) */
    ANVIL_RATE_MSG,    /* MAIL FROM */
    ANVIL_RATE_RCPT,   /* RCPT TO, accepted or not */
    ANVIL_RATE_AUTH,   /* AUTH commands */
    ANVIL_RATE_TLS,    /* new (not resumed) TLS sessions */
    ANVIL_RATES
};
/* Counts one event of rate r from addr: 0, or 1 when it is over limit per
 * unit seconds (limit 0: never; then not counted). The window is the
 * client's and the rate's: it begins with the first event after the last
 * window ended, and lasts unit seconds. */
int smtpd_anvil_rate(const char *addr, enum anvil_rate r, long limit, long unit, time_t now);
/* 1 when one more event of rate r from addr would be over limit (counts
 * nothing: STARTTLS asks before the handshake it counts). */
int smtpd_anvil_rate_reached(const char *addr, enum anvil_rate r, long limit, long unit, time_t now);

#define ANVIL_LOCKED 1          /* this client is locked out */
#define ANVIL_LOCKED_SHARED 2   /* every client without a slot is locked out */
/* 0, ANVIL_LOCKED or ANVIL_LOCKED_SHARED: may addr try AUTH now? */
int smtpd_anvil_auth_locked(const char *addr, time_t now);
/* Counts a failed AUTH from addr (limit failures within window seconds lock
 * out for window seconds; limit 0: never). Returns 0, or what this failure
 * locked: ANVIL_LOCKED or ANVIL_LOCKED_SHARED. */
int smtpd_anvil_auth_failure(const char *addr, long limit, long window, time_t now);

/* Frees the tables (process end; tests). */
void smtpd_anvil_reset(void);

#endif
