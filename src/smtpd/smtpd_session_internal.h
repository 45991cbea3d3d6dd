/* smtpd_session_internal: the SMTP session shared by the files of the
 * smtpd_session module. Private to them; smtpd.c and everything else use
 * smtpd_session.h.
 *
 *   smtpd_session.c   the session: settings, replies, reading input,
 *                     events, start and end;
 *   smtpd_cmd.c       the command table (struct smtpd_command below: in
 *                     which states each verb is allowed, what it is
 *                     refused with elsewhere), its dispatcher, and the
 *                     command handlers;
 *   smtpd_content.c   message content: DATA and BDAT bytes through
 *                     smtp_data and cleanup into a queue file, then the
 *                     commit to the queue;
 *   smtpd_auth.c      AUTH PLAIN/LOGIN, the backends, the lockout (its table is smtpd_anvil's);
 *   smtpd_dns.c       DNS answers the restriction lists need.
 *
 * All of it runs on the smtpd event loop thread. */
#ifndef TERN_SMTPD_SMTPD_SESSION_INTERNAL_H
#define TERN_SMTPD_SMTPD_SESSION_INTERNAL_H

#include <netinet/in.h>
#include <stddef.h>

#include "msg/cleanup.h"
#include "smtp/smtp_cmd.h"
#include "smtp/smtp_data.h"
#include "smtpd/smtpd_anvil.h"
#include "smtpd/smtpd_session.h"
#include "spool/queue_file.h"
#include "spool/queue_id.h"
#include "util/list.h"

struct bufferevent;
struct cleanup;
struct event;
struct event_base;
struct queue_file_writer;
struct smtpd_dns_state;
struct smtpd_mailauth;
struct dns_ctx;

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
#define SS_NSTATES (SS_CLOSING + 1)
#define ST(state) (1u << (state))
/* The states in which a command line is read; in the others the input is
 * content (SS_DATA, SS_BDAT) or waits (SS_COMMIT, SS_AUTH, SS_CLOSING). */
#define ST_COMMAND (ST(SS_INIT) | ST(SS_READY) | ST(SS_MAIL) | ST(SS_RCPT) | ST(SS_BDAT_WAIT))

/* Counters for the Postfix-style disconnect line, in its order. */
enum counter {
    CNT_EHLO, CNT_HELO, CNT_STARTTLS, CNT_AUTH, CNT_MAIL, CNT_RCPT, CNT_BDAT, CNT_DATA, CNT_RSET,
    CNT_NOOP, CNT_VRFY, CNT_EXPN, CNT_HELP, CNT_QUIT, CNT_UNKNOWN, CNT_MAX
};

struct smtp_session {
    struct list_node link;      /* in the process's list of sessions */
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
    char *table_wait_arg;       /* RCPT's argument while an asynchronous table's answer is awaited */
    int table_rounds;           /* how often this RCPT already waited */
    int cur_counter;            /* command awaiting its final reply, or -1 */
    const char *where;          /* last command, for "... after X" log lines (Postfix's names) */
    int discarding_line;        /* an overlong command is being skipped */
    int pipelining_logged;
    struct event *error_sleep;  /* past smtpd_soft_error_limit: a pause after each error */
    int closing_after_write;
    /* the client closed its sending side during a commit (on_event): the
     * session ends once the input it sent before is handled */
    int peer_done;
    int plain_socket;           /* no TLS on this connection (yet): replies may go straight to the socket */
    int output_blocked;         /* reading paused until the client reads its replies */
    size_t input_high_water;    /* the read-ahead bound set on bev (0: none yet) */
    struct event *flush_timer;  /* TLS: waits for the encrypted output before closing */
    struct event *handshake_timer; /* TLS: the handshake as a whole within smtpd_timeout */
    long flush_tries;
    struct smtpd_dns_state *dns;     /* DNS answers for the restrictions (smtpd_dns.c) */
    struct smtpd_mailauth *mailauth; /* SPF, DKIM, DMARC of the transaction (smtpd_mailauth.c) */
    unsigned spf_abandoned;     /* SPF checks a reset left unfinished (their lookups go on) */
    struct cleanup_observer claims_filter; /* without checks: drops claims in our authserv-id */
    int anvil_counted;          /* counted in smtpd_anvil: uncount at the end */
    int anvil_admitted;         /* how (smtpd_anvil_connect's answer) */
    int limits_exempt;          /* smtpd_client_event_limit_exceptions */
    int tls;                    /* the TLS handshake is done */
    int tls_pending;            /* STARTTLS accepted or wrapper mode: handshake under way */
    char tls_info[160];         /* "TLSv1.3 with cipher ... (256/256 bits)" */
    /* AUTH (smtpd_auth.c) */
    int auth_step;              /* where a PLAIN/LOGIN exchange is */
    void *auth_req;             /* the backend's pending check */
    struct event *auth_delay;   /* a failed login's reply waits */
    struct event *auth_accept;  /* capture mode: a login's success, from the loop */
    int auth_locked;            /* that failure locked the address out */
    char *auth_login_user;      /* the name being checked */
    char *sasl_user;            /* authenticated as */
    const char *sasl_method;
    size_t memory_charged;      /* of smtpd_memory_limit: the session and its recipients */
    size_t rcpt_memory_charged; /* the recipients' part, returned with the transaction */
    size_t content_charged;     /* of the content budget: the queue file in memory being written */

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
/* smtpd_timeout on the client's reads (reading = 1) or only on our writes
 * (0: while the session owes the client a reply, as during a commit, the
 * client's silence is no timeout of its; reading stays on). */
void smtpd_session_client_timeout(struct smtp_session *s, int reading);
/* Counts one event of rate r (MAIL, RCPT, AUTH, a new TLS session) for the
 * session's client: 1 when that is over the service's limit, logged as
 * Postfix logs it; 0 for clients in smtpd_client_event_limit_exceptions
 * and rates without a limit (nothing counted). */
int smtpd_session_over_client_rate(struct smtp_session *s, enum anvil_rate r);
/* smtpd_memory_limit counts SMTPD_SESSION_MEMORY for each session and
 * SMTPD_RCPT_MEMORY plus the address and ORCPT for each recipient: what
 * they roughly cost (a session with 1000 recipients was measured at about
 * 470 KB). A session's buffers fit its share while it waits: 8 KiB of
 * commands read ahead, 16 KiB of replies (smtpd_session.c); content is
 * read in bigger pieces but handled as it comes. Counts a recipient of the
 * transaction; -1 (nothing counted) when it would pass the limit. */
#define SMTPD_SESSION_MEMORY (32u * 1024)
#define SMTPD_RCPT_MEMORY 512u
int smtpd_session_charge_recipient(struct smtp_session *s, const char *addr, const char *orcpt);
/* Counts bytes of the session's own for smtpd_memory_limit: 0, or -1 (and
 * a warning, once a second at most) when that would pass the limit. */
int smtpd_session_charge_memory(struct smtp_session *s, size_t bytes);
void smtpd_session_uncharge_memory(struct smtp_session *s, size_t bytes);
/* With the journal spool a message's queue file is written to memory (a
 * memfd handed to the queue at the end, no file in incoming/) up to this
 * size, and moves to incoming/ when it grows past it. What all these files
 * hold, page by page, is counted apart from the sessions and recipients
 * (so it never refuses either), and may reach a quarter of
 * smtpd_memory_limit: beyond, queue files are written in incoming/. A file
 * handed to the queue stays counted until the queue has answered for it. */
#define SMTPD_CONTENT_MEMORY QF_MEMORY_MAX
/* The content budget as the session's writer uses it. */
struct queue_file_memory smtpd_session_content_memory(struct smtp_session *s);

/* queue_minfree and Postfix's 1.5 x message_size_limit: 1 when the queue's
 * file system has too little space for a message of size bytes (-1:
 * unknown); the caller answers 452 4.3.1. statvfs at most once a second. */
int smtpd_session_storage_short(const struct smtp_session *s, long long size);
/* Drops the transaction (queue file, cleanup, envelope); back to SS_READY
 * unless not yet greeted or closing. */
void smtpd_session_reset_transaction(struct smtp_session *s);
/* After "220 2.0.0 Ready to start TLS" is queued: plaintext the client sent
 * after STARTTLS is thrown away unread (RFC 3207 §4.2, CVE-2011-0411), the
 * session forgets its EHLO, and TLS is layered over the connection. */
void smtpd_session_start_tls(struct smtp_session *s);

/* Processes pending input again (after a pause: AUTH's check). */
void smtpd_session_resume(struct smtp_session *s);
#define SMTPD_TABLE_ROUNDS 4   /* times one RCPT waits for asynchronous tables */

/* smtpd_cmd.c: runs the waiting RCPT of s again. */
void smtpd_cmd_table_retry(struct smtp_session *s);

#ifdef TERN_TEST_BUILD
/* A session on fd (one end of a socketpair), greeted with 220 as a client
 * connecting from 127.0.0.1 would be; ended by smtpd_session_test_end. */
struct smtp_session *smtpd_session_test_start(struct event_base *base, const struct smtpd_settings *set, int fd);
void smtpd_session_test_end(struct smtp_session *s);
#endif

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
/* smtpd_end_of_data_restrictions for the message just in (smtpd_cmd.c);
 * 0 accept (r->hold: on hold), else the reply code of r. */
struct smtpd_policy_result;
int smtpd_cmd_check_end_of_data(struct smtp_session *s, struct smtpd_policy_result *r);
/* The process's DNS context (made on first use); NULL if it cannot be. */
struct dns_ctx *smtpd_dns_context(struct smtp_session *s);

/* ---- smtpd_auth.c ---- */

/* AUTH may be advertised and used now (enabled, and TLS when required). */
int smtpd_auth_offered(const struct smtp_session *s);
/* 1 when capture mode takes any login from this client (smtpd_auth.c). */
int smtpd_auth_any_login(const struct smtp_session *s);
/* The AUTH command where the table allows it (smtpd_cmd.c checks that AUTH
 * is enabled, offered, not done yet, and the state). */
void smtpd_auth_cmd(struct smtp_session *s, const char *arg);
/* A response line of an AUTH exchange in progress (s->auth_step set). */
void smtpd_auth_line(struct smtp_session *s, const char *line, size_t len);
/* 1 when the logged-in user's entry in tern's password file lists addr
 * (its third field) as one of theirs. */
int smtpd_auth_user_lists_address(struct smtp_session *s, const char *addr);
/* Forgets the login and cancels a pending check (session end, STARTTLS). */
void smtpd_auth_session_end(struct smtp_session *s);

/* ---- smtpd_cmd.c ---- */

/* The rulebook of the commands: one row per verb, and the dispatcher
 * (smtpd_cmd_handle_line) applies it in this order, the first that
 * applies answering:
 *   1. between BDAT chunks (SS_BDAT_WAIT) a verb whose states lack
 *      SS_BDAT_WAIT aborts the transaction: SMTPD_REFUSE_IN_BDAT (RFC 3030:
 *      a transfer ends with BDAT LAST or RSET; NOOP and QUIT do no harm);
 *   2. on a listener with smtpd_tls_security_level = encrypt, before TLS,
 *      a verb without CMD_BEFORE_TLS gets SMTPD_REFUSE_BEFORE_TLS;
 *   3. precheck, when the row has one: the command's own refusals that
 *      outrank the state (not offered on this listener, bad syntax);
 *   4. the state: outside states the reply is refusal[state] (CMD_NEEDS_EHLO:
 *      after HELO the state counts as SS_INIT);
 *   5. the handler.
 * After 3-5 the flags CMD_JUNK and CMD_ENDS_GROUP apply. */
enum {
    CMD_BEFORE_TLS = 1 << 0,      /* allowed before TLS where TLS is required (RFC 3207 §4) */
    CMD_NEEDS_EHLO = 1 << 1,      /* after HELO refused as before any greeting */
    CMD_ENDS_GROUP = 1 << 2,      /* RFC 2920: input pipelined after it is logged */
    CMD_JUNK = 1 << 3,            /* moves no mail: counts towards smtpd_junk_command_limit */
    CMD_REFUSAL_DISCARDS = 1 << 4, /* refused (steps 1, 4): what was pipelined after it is
                                      message text, thrown away unread */
    CMD_CHUNK = 1 << 5,           /* a chunk of bytes follows the command: a refusal (step 4)
                                     is given once they are read and skipped */
};

#define SMTPD_REFUSE_IN_BDAT "503 5.5.1 Error: %s during a BDAT transfer; transaction aborted"
#define SMTPD_REFUSE_BEFORE_TLS "530 5.7.0 Must issue a STARTTLS command first"

struct smtpd_command {
    enum smtp_verb verb;
    unsigned states;                    /* ST() of each state in which it is allowed */
    unsigned flags;                     /* CMD_* */
    const char *refusal[SS_NSTATES];    /* the reply in each of ST_COMMAND outside states,
                                           but SS_BDAT_WAIT (step 1) */
    enum counter counter;
    /* 1 if it refused the command (and replied); NULL when there is none */
    int (*precheck)(struct smtp_session *s, const char *arg);
    void (*handler)(struct smtp_session *s, const char *arg);
};

/* Handles one command line (without its CRLF, len bytes, NUL-terminated). */
void smtpd_cmd_handle_line(struct smtp_session *s, const char *line, size_t len);

#ifdef TERN_TEST_BUILD
/* The table, *n rows. */
const struct smtpd_command *smtpd_cmd_test_table(size_t *n);
#endif

/* ---- smtpd_content.c ---- */

/* Opens the queue file and the cleanup stage for the content. Returns 0, or
 * the errno of the failure (storage_reply.h gives the client's reply). */
int smtpd_content_begin(struct smtp_session *s, enum smtp_data_mode mode);
/* Replies to a storage failure (errno err, e.g. smtpd_content_begin's). */
void smtpd_content_storage_error(struct smtp_session *s, int err);
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
