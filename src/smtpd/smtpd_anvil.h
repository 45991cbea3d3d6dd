/* smtpd_anvil: per-client limits of the SMTP server, as Postfix's anvil(8)
 * keeps them: concurrent connections (smtpd_client_connection_count_limit),
 * connections and messages per time unit (smtpd_client_connection_rate_limit,
 * smtpd_client_message_rate_limit, per anvil_rate_time_unit).
 *
 * Tern has one smtpd process, so the counters live in it: a hash table of
 * client addresses (util/hashmap), bounded (ANVIL_MAX_CLIENTS; past it the
 * stalest idle entries are dropped, which can only make a limit more
 * lenient). Rates count in fixed windows of one time unit, as anvil does.
 *
 * Owned by smtpd; single-threaded; no errors (a full table forgets). */
#ifndef TERN_SMTPD_SMTPD_ANVIL_H
#define TERN_SMTPD_SMTPD_ANVIL_H

#include <time.h>

#define ANVIL_MAX_CLIENTS 65536

struct smtpd_anvil_limits {
    long conn_count;   /* 0: no limit */
    long conn_rate;    /* per unit; 0: no limit */
    long msg_rate;     /* per unit; 0: no limit */
    long unit;         /* seconds */
};

/* A new connection from addr. Returns 0 (counted; smtpd_anvil_disconnect later),
 * 1 over the concurrency limit, 2 over the rate limit (not counted). */
int smtpd_anvil_connect(const char *addr, const struct smtpd_anvil_limits *l, time_t now);
void smtpd_anvil_disconnect(const char *addr);
/* A MAIL FROM from addr: 0, or 1 over smtpd_client_message_rate_limit. */
int smtpd_anvil_message(const char *addr, const struct smtpd_anvil_limits *l, time_t now);
/* Frees the table (process end). */
void smtpd_anvil_reset(void);

#endif
