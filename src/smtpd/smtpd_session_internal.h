/* smtpd_session_internal: the SMTP session shared by the files of the
 * smtpd_session module. Private to them; smtpd.c and everything else use
 * smtpd_session.h.
 *
 *   smtpd_session.c   the session: settings, replies, reading input,
 *                     events, start and end;
 *   smtpd_cmd.c       the command table and the command handlers;
 *   smtpd_content.c   message content: DATA and BDAT bytes through
 *                     smtp_data and cleanup into a queue file, then the
 *                     commit to the queue;
 *   smtpd_auth.c      AUTH PLAIN/LOGIN, the backends, the lockout;
 *   smtpd_dns.c       DNS answers the restriction lists need.
 *
 * All of it runs on the smtpd event loop thread. */
#ifndef TERN_SMTPD_SMTPD_SESSION_INTERNAL_H
#define TERN_SMTPD_SMTPD_SESSION_INTERNAL_H

#include <netinet/in.h>
#include <stddef.h>

#include "spool/queue_file.h"
#include "spool/queue_id.h"
#include "smtp/smtp_cmd.h"
#include "smtp/smtp_data.h"
#include "smtpd/smtpd_session.h"

struct bufferevent;
struct cleanup;
struct event;
struct event_base;
struct queue_file_writer;
struct smtpd_dns_state;

enum session_state {
    SS_INIT,        /* greeted, no HELO/EHLO yet */
    SS_READY,       /* HELO/EHLO done, no transaction */
    SS_MAIL,        /* MAIL accepted */
    SS_RCPT,        /* at least one RCPT accepted */
    SS_DATA,        /* reading DATA content */
    SS_BDAT,        /* reading the bytes of a BDAT chunk */
    SS_BDAT_WAIT,   /* between BDAT chunks */
    SS_COMMIT,      /* waiting for the queue to make the message durable */
    SS_AUTH,        /* waiting for the password check (or its failure delay) */
    SS_CLOSING,     /* final reply queued; close once written */
};

/* Counters for the Postfix-style disconnect line, in its order. */
enum counter {
    CNT_EHLO, CNT_HELO, CNT_STARTTLS, CNT_AUTH, CNT_MAIL, CNT_RCPT, CNT_BDAT, CNT_DATA, CNT_RSET,
    CNT_NOOP, CNT_VRFY, CNT_EXPN, CNT_HELP, CNT_QUIT, CNT_UNKNOWN, CNT_MAX
};

struct smtp_session {
    struct smtp_session *next, *prev;
    struct event_base *base;
    const struct smtpd_settings *set;
    struct bufferevent *bev;
    enum session_state state;
    char client_addr[INET6_ADDRSTRLEN];
    char client_name[256];
    char client_port[8];
    int is_local;               /* mynetworks: header completion, relay */
    char *helo;
    int esmtp;
    struct smtp_ext ext;        /* what EHLO advertised */
    unsigned errors;
    unsigned junk_commands;     /* NOOP, RSET, VRFY, EXPN, HELP so far */
    unsigned cnt_ok[CNT_MAX], cnt_total[CNT_MAX];
    int cur_counter;            /* command awaiting its final reply, or -1 */
    const char *where;          /* last command, for "... after X" log lines (Postfix's names) */
    int discarding_line;        /* an overlong command is being skipped */
    int pipelining_logged;
    struct event *error_sleep;  /* past smtpd_soft_error_limit: a pause after each error */
    int closing_after_write;
    int output_blocked;         /* reading paused until the client reads its replies */
    struct event *flush_timer;  /* TLS: waits for the encrypted output before closing */
    long flush_tries;
    struct smtpd_dns_state *dns;     /* DNS answers for the restrictions (smtpd_dns.c) */
    int anvil_counted;          /* counted in smtpd_anvil: uncount at the end */
    int limits_exempt;          /* smtpd_client_event_limit_exceptions */
    int tls;                    /* the TLS handshake is done */
    int tls_pending;            /* STARTTLS accepted or wrapper mode: handshake under way */
    char tls_info[160];         /* "TLSv1.3 with cipher ... (256/256 bits)" */
    /* AUTH (smtpd_auth.c) */
    int auth_step;              /* where a PLAIN/LOGIN exchange is */
    void *auth_req;             /* the backend's pending check */
    struct event *auth_delay;   /* a failed login's reply waits */
    int auth_locked;            /* that failure locked the address out */
    char *auth_login_user;      /* the name being checked */
    char *sasl_user;            /* authenticated as */
    const char *sasl_method;

    /* the transaction */
    char id[QUEUE_ID_LEN + 1];
    int have_id;
    struct queue_file_message env;
    int env_init;
    int smtputf8;
    enum smtp_body body;
    struct queue_file_writer *writer;
    struct cleanup *cleanup;
    struct smtp_data dec;
    /* BDAT */
    unsigned long long bdat_remaining;
    unsigned long long bdat_chunk_size;
    int bdat_last;
    const char *bdat_error;     /* reply to give once the chunk is read, if any */
    int bdat_started;
};

/* ---- smtpd_session.c ---- */

/* Queues one reply; multi-line replies pass lines separated by '\n'. A
 * 4xx/5xx reply counts towards the error limits. */
void smtpd_session_reply(struct smtp_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The reply just queued is the last: stop reading, close once it is sent. */
void smtpd_session_close_after_reply(struct smtp_session *s);
/* Past smtpd_hard_error_limit: replies 421 and closes. Returns 1 if the
 * session is closing (then nothing more may be replied). */
int smtpd_session_check_error_limit(struct smtp_session *s);
/* Drops the transaction (queue file, cleanup, envelope); back to SS_READY
 * unless not yet greeted or closing. */
void smtpd_session_reset_transaction(struct smtp_session *s);
/* After "220 2.0.0 Ready to start TLS" is queued: plaintext the client sent
 * after STARTTLS is thrown away unread (RFC 3207 §4.2, CVE-2011-0411), the
 * session forgets its EHLO, and TLS is layered over the connection. */
void smtpd_session_start_tls(struct smtp_session *s);

/* Processes pending input again (after a pause: AUTH's check). */
void smtpd_session_resume(struct smtp_session *s);

/* ---- smtpd_dns.c ---- */

/* Starts the DNSBL lookups of the client (reject_rbl_client), at connect. */
void smtpd_dns_connect(struct smtp_session *s);
/* Starts the sender domain's lookup (reject_unknown_sender_domain), at MAIL. */
void smtpd_dns_mail(struct smtp_session *s, const char *sender);
/* 1 while an answer is outstanding: commands wait (smtpd_session_resume after). */
int smtpd_dns_pending(const struct smtp_session *s);
/* The answers, for smtpd_policy_ctx (arg is the session). */
int smtpd_dns_rbl_listed(void *arg, const char *zone, const char **text);
int smtpd_dns_sender_domain(void *arg);
void smtpd_dns_session_end(struct smtp_session *s);

/* ---- smtpd_auth.c ---- */

/* AUTH may be advertised and used now (enabled, and TLS when required). */
int smtpd_auth_offered(const struct smtp_session *s);
void smtpd_auth_cmd(struct smtp_session *s, const char *arg);
/* A response line of an AUTH exchange in progress (s->auth_step set). */
void smtpd_auth_line(struct smtp_session *s, const char *line, size_t len);
/* 1 when the logged-in user's entry in tern's password file lists addr
 * (its third field) as one of theirs. */
int smtpd_auth_user_lists_address(struct smtp_session *s, const char *addr);
/* Forgets the login and cancels a pending check (session end, STARTTLS). */
void smtpd_auth_session_end(struct smtp_session *s);

/* ---- smtpd_cmd.c ---- */

/* Handles one command line (without its CRLF, len bytes, NUL-terminated). */
void smtpd_cmd_handle_line(struct smtp_session *s, const char *line, size_t len);

/* ---- smtpd_content.c ---- */

/* Opens the queue file and the cleanup stage for the content. Returns 0, or
 * the reply code for the failure (452 out of space, else 451). */
int smtpd_content_begin(struct smtp_session *s, enum smtp_data_mode mode);
/* Replies to a smtpd_content_begin failure code. */
void smtpd_content_storage_error(struct smtp_session *s, int code);
/* Reads DATA content from the input buffer. Returns 1 if the content ended. */
int smtpd_content_read_dot(struct smtp_session *s);
/* Reads the bytes of the current BDAT chunk. Returns 1 when the chunk is complete. */
int smtpd_content_read_bdat(struct smtp_session *s);
/* Replies to a complete BDAT chunk; after BDAT LAST, ends the content. */
void smtpd_content_bdat_done(struct smtp_session *s, unsigned long long chunk_size);
/* The content is complete: check it, finish the file, hand it to the queue
 * (the session waits in SS_COMMIT for the answer). */
void smtpd_content_end(struct smtp_session *s);

#endif
