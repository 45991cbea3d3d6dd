/* auth_dovecot: smtpd's client for Dovecot's auth socket (smtpd_sasl_type =
 * dovecot, smtpd_sasl_path = private/auth), speaking Dovecot's auth client
 * protocol 1.x.
 *
 * smtpd decodes the client's AUTH PLAIN/LOGIN exchange itself and asks here
 * whether (user, password) is valid; the check is sent to Dovecot as a PLAIN
 * request with an initial response, flagged "nologin" (we only verify, no
 * mail process is started for the user).
 *
 * It owns one connection per process to the socket, made lazily on the first
 * check, handshaken before any request goes out (requests queue meanwhile),
 * and shared by all sessions: requests are multiplexed by id. A lost
 * connection gives AUTH_TEMPFAIL to the requests it carried; the next check
 * reconnects at once if the connection had been working, otherwise attempts
 * are spaced by an exponential backoff, and checks made before the next
 * attempt is due fail with AUTH_TEMPFAIL straight away (a 454 now beats a
 * session hanging on a server that is down). A protocol violation from the
 * server, a line longer than AUTH_DOVECOT_MAX_LINE, a handshake without PLAIN
 * or a handshake that takes longer than the request timeout also drop the
 * connection, and count as failed attempts.
 *
 * Results (auth_cb from auth/auth.h, called exactly once per check, always
 * later from the event loop, never from inside a call to this module):
 *   AUTH_OK        why = the user name Dovecot authenticated ("user=", which
 *                  it may have canonicalised, e.g. lowercased); log it and use
 *                  it as the SASL identity.
 *   AUTH_FAIL      wrong password or unknown user (Dovecot cannot tell us
 *                  which), or credentials we refuse to send (empty user, too
 *                  long). why = Dovecot's reason= or a fixed text.
 *   AUTH_TEMPFAIL  anything that is not the client's fault: server down,
 *                  timeout, lost connection, FAIL with "temp", PLAIN not
 *                  offered, an unexpected challenge.
 * why is always non-NULL, control characters replaced, valid only during the
 * callback. The password is never logged; the only copies this module makes
 * (the encoded request) are wiped with explicit_bzero once written to the
 * socket, or when the request ends unsent.
 *
 * Called by smtpd only, on the thread running the event_base. A callback may
 * start new checks, cancel other requests and even free the client. Make one
 * client per process: Dovecot identifies clients by pid (CPID) and refuses a
 * second live connection from the same pid. */
#ifndef TERN_AUTH_AUTH_DOVECOT_H
#define TERN_AUTH_AUTH_DOVECOT_H

#include "auth/auth.h"

struct event_base;

/* Longest line accepted from the server; Dovecot itself stays under 16 KiB. */
#define AUTH_DOVECOT_MAX_LINE 65536
/* Credentials longer than these are refused (AUTH_FAIL) without asking. */
#define AUTH_DOVECOT_MAX_USER 1024
#define AUTH_DOVECOT_MAX_PASSWORD 4096

#define AUTH_DOVECOT_REQUEST_TIMEOUT_MS 30000
#define AUTH_DOVECOT_RETRY_MIN_MS 500
#define AUTH_DOVECOT_RETRY_MAX_MS 5000

struct auth_dovecot;
struct auth_dovecot_req;

/* What Dovecot is told about the SMTP session, for its logs, its brute-force
 * penalty (rip) and passdb conditions. NULL or "" addresses and 0 ports are
 * left out, as are addresses that do not parse as IPv4/IPv6. secured: the
 * session is under TLS (or otherwise trusted). */
struct auth_dovecot_info {
    const char *local_ip, *remote_ip;
    unsigned local_port, remote_port;
    int secured;
};

/* socket_path is the UNIX socket of Dovecot's auth service ("service auth {
 * unix_listener ... }"), resolved by the caller (e.g. against the queue
 * directory for "private/auth"). Nothing is connected yet. */
struct auth_dovecot *auth_dovecot_new(struct event_base *base, const char *socket_path);

/* Tuning, mainly for tests: per-request timeout (also bounds the handshake)
 * and the backoff range between failed connection attempts. 0 keeps a value. */
void auth_dovecot_set_timeouts(struct auth_dovecot *d, unsigned request_ms, unsigned retry_min_ms,
                               unsigned retry_max_ms);

/* Starts a check of user/password; info may be NULL. The password is copied
 * (encoded) only until it has been written to the socket. The returned handle
 * is valid until cb has been called or the request is cancelled. Being C
 * strings, user and password cannot hold a NUL (which would shift PLAIN's
 * fields): smtpd's SASL decoder must refuse such input before calling. */
struct auth_dovecot_req *auth_dovecot_check(struct auth_dovecot *d, const char *user, const char *password,
                                            const struct auth_dovecot_info *info, auth_cb cb, void *arg);

/* The callback will not be called (e.g. the SMTP session went away). Dovecot
 * is told to forget the request if it had been sent. Not allowed once the
 * callback has run. */
void auth_dovecot_cancel(struct auth_dovecot_req *r);

/* Cancels every outstanding request (no callbacks) and closes the connection. */
void auth_dovecot_free(struct auth_dovecot *d);

#endif
