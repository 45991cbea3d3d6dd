/* smtpd_anvil: per-client limits of the SMTP server, as Postfix's anvil(8)
 * keeps them: concurrent connections (smtpd_client_connection_count_limit),
 * connections and messages per time unit (smtpd_client_connection_rate_limit,
 * smtpd_client_message_rate_limit, per anvil_rate_time_unit); and the AUTH
 * lockout (smtpd_sasl_failure_limit failures within smtpd_sasl_lockout_time
 * refuse the client for smtpd_sasl_lockout_time).
 *
 * A client is its IPv4 address, or its IPv6 /64 (an IPv4-mapped IPv6
 * address is its IPv4 address): one subscriber gets a /64 and could
 * otherwise appear as 2^64 clients.
 *
 * Tern has one smtpd process, so the counters live in it: hash tables of
 * clients (util/hashmap), bounded. The limits table (ANVIL_MAX_CLIENTS)
 * drops the stalest idle entries when full, which can only make a limit more
 * lenient; when every entry holds an open connection, the clients without a
 * slot are counted together as one shared client (its limits apply to all
 * of them at once), so none goes uncounted. Rates count in fixed windows of
 * one time unit, as anvil does.
 *
 * The lockout table (ANVIL_MAX_LOCKOUTS) never stops counting: when full,
 * a new client takes the slot of the client that failed least recently
 * among those not locked out; when every slot holds a running lockout, the
 * failures of all clients without a slot are counted together in one shared
 * entry, and once that reaches the limit every client without a slot is
 * refused until its lockout ends (ANVIL_LOCKED_SHARED). So an attacker with
 * more addresses than slots gets at most one more limit's worth of guesses
 * per lockout time, never an uncounted stream. Evicting running lockouts
 * instead would let 1025 addresses guess without end.
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

struct smtpd_anvil_limits {
    long conn_count;   /* 0: no limit */
    long conn_rate;    /* per unit; 0: no limit */
    long msg_rate;     /* per unit; 0: no limit */
    long unit;         /* seconds */
};

/* The client addr counts as: the address, or "prefix::/64" for IPv6. */
void smtpd_anvil_client_key(const char *addr, char *key, size_t size);

#define ANVIL_ADMITTED 0          /* counted for addr */
#define ANVIL_OVER_COUNT 1        /* over the concurrency limit, not counted */
#define ANVIL_OVER_RATE 2         /* over the connection rate limit, not counted */
#define ANVIL_ADMITTED_SHARED 3   /* counted in the shared entry (the table is full) */
/* A new connection from addr: one of the above. An admitted one is given
 * back with smtpd_anvil_disconnect(addr, what connect returned). */
int smtpd_anvil_connect(const char *addr, const struct smtpd_anvil_limits *l, time_t now);
void smtpd_anvil_disconnect(const char *addr, int admitted);
/* A MAIL FROM from addr: 0, or 1 over smtpd_client_message_rate_limit. */
int smtpd_anvil_message(const char *addr, const struct smtpd_anvil_limits *l, time_t now);

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
