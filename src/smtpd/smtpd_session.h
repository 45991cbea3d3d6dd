/* smtpd_session: one SMTP server session, from greeting to QUIT.
 *
 * A session is a small state machine driven by a libevent bufferevent. The
 * commands are a table that holds their rules: for each verb the states in
 * which it is allowed, the reply it gets in the others, and its handler
 * (smtpd_session_internal.h); the state enum replaces scattered flags. PIPELINING falls out of the
 * buffering: every complete command in the input is handled in one go and
 * the replies leave in one write. Message content is decoded by smtp_data,
 * completed by cleanup and written to a queue file in incoming/; the 250
 * reply waits for the queue process to say the file is durable.
 *
 * Owned by the smtpd process (smtpd.c), which supplies the listener
 * settings and the commit path to the queue. */
#ifndef TERN_SMTPD_SMTPD_SESSION_H
#define TERN_SMTPD_SMTPD_SESSION_H

#include <stdint.h>
#include <sys/socket.h>

#include "util/cidr.h"

struct conf;
struct event_base;
struct ssl_ctx_st;
struct capture_counters;
struct smtpd_policy_lists;
struct map_list;
struct resolver;
struct smtp_session;

/* What a listener's sessions need, read once from its configuration. */
struct smtpd_settings {
    char *service;              /* master.cf service name, for logs */
    char *myhostname;
    char *myorigin;
    char *banner;               /* smtpd_banner, expanded */
    char *mail_name;
    uint64_t message_size_limit;
    uint64_t memory_limit;      /* smtpd_memory_limit, all sessions together; 0: none */
    uint64_t queue_minfree;     /* queue_minfree: bytes the queue file system keeps free */
    char *queue_dir;            /* whose file system MAIL checks for space */
    long recipient_limit;
    long timeout;               /* seconds */
    long hard_error_limit;
    long junk_command_limit;
    long soft_error_limit;
    long error_sleep_time;
    long header_size_limit;
    long hopcount_limit;
    int vrfy_enabled, expn_enabled;
    int smtputf8;
    int require_from;
    int reject_bare_lf;
    struct cidr_list mynetworks;
    /* TLS (the context is the master's, built with the keys as root) */
    struct ssl_ctx_st *tls_ctx;  /* NULL: no STARTTLS, no wrapper mode */
    int tls_level;               /* enum tls_level; NONE without a context */
    int tls_wrapper;             /* smtpd_tls_wrappermode: TLS from the first byte */
    int tls_auth_only;
    int tls_received;            /* TLS details in Received: */
    /* AUTH */
    int sasl_enabled;
    int sasl_dovecot;            /* smtpd_sasl_type = dovecot (else tern's password file) */
    char *sasl_path;             /* the socket or the file, absolute */
    long sasl_failure_limit, sasl_lockout_time, sasl_failure_delay;
    /* per-client limits (smtpd_anvil) and who is exempt from them */
    long conn_count_limit, conn_rate_limit, msg_rate_limit, rate_unit;
    long rcpt_rate_limit, auth_rate_limit, tls_rate_limit;
    struct cidr_list limit_exceptions;
    struct smtpd_policy_lists *policy;   /* smtpd_*_restrictions; NULL if they did not parse */
    struct map_list *sender_login_maps; /* smtpd_sender_login_maps: address -> owners */
    char *dns_resolvers;           /* for DNSBL and sender domain lookups */
    int mail_authentication;       /* smtpd_mail_authentication: SPF, DKIM, DMARC */
    char *authserv_id;             /* authserv_id: ours in Authentication-Results */
    int policy_checks_spf;         /* a RCPT list names reject_spf_fail or defer_spf_temperror */
    int policy_end_of_data;        /* smtpd_end_of_data_restrictions is not empty */
    int dmarc_quarantine_hold;     /* dmarc_quarantine_action = hold */
    int reject_unlisted_recipient; /* smtpd_reject_unlisted_recipient */
    int reject_unlisted_sender;    /* smtpd_reject_unlisted_sender */
    /* unknown_{local_recipient,virtual_alias,virtual_mailbox,relay_recipient}_reject_code */
    int unknown_local_code, unknown_virtual_alias_code, unknown_virtual_mailbox_code, unknown_relay_code;
    int content_in_memory;         /* queue_sync_method = journal, capture = no: SMTPD_CONTENT_MEMORY */
    int capture_all;               /* capture = yes: every recipient is accepted (kept, never delivered) */
    int capture_on;                /* capture = yes or copy: the failure rules apply */
    struct capture_counters *capture_counters; /* shared with the capture process (runtime.h); NULL: off */
    /* capture_require_auth = no: AUTH takes any login, from every client
     * under capture = yes (nothing is delivered), and under copy from
     * mynetworks only (clients that may relay without a login anyway) */
    int capture_any_login;
    int dmarc_reports;             /* dmarc_report_address is set: evaluations go to the queue */
    int policy_broken;             /* then every RCPT gets 451 4.3.5 */
};

/* Parses a configuration's restriction lists (also used by the master to
 * refuse a bad configuration before starting). NULL with *err. */
struct smtpd_policy_lists *smtpd_policy_from_conf(struct conf *c, char **err);

void smtpd_settings_load(struct smtpd_settings *s, struct conf *c, const char *service,
                         struct ssl_ctx_st *tls_ctx);
void smtpd_settings_free(struct smtpd_settings *s);

/* The services smtpd gives to sessions (implemented in smtpd.c). */
struct ipc_msg;
struct strbuf;
typedef void (*smtpd_commit_cb)(void *arg, int ok, const char *reply);
/* The largest queue file that goes to the queue inside its COMMIT message
 * (with room in the message for the rest of it: ipc.h's IPC_MAX_MSG). */
#define SMTPD_COMMIT_FILE_MAX (63u * 1024)
/* How large a queue file may go inside the COMMIT now: SMTPD_COMMIT_FILE_MAX,
 * or 0 while the queue lags behind in reading (then files go as memfds: the
 * channel's queue must stay far below its IPC_MAX_QUEUED, which the memory
 * budget for queue files would otherwise allow it to pass). */
size_t smtpd_commit_file_max(void);
/* Asks the queue to take the queue file ID: in bytes (not NULL, not empty:
 * the whole file) or memfd (taken over) when it is in memory, with the
 * charged bytes of the content budget, released when the queue has answered
 * or is gone; else bytes NULL or empty and memfd -1: incoming/ID. cb gets ok
 * and, on failure, the complete reply to send ("451 4.3.0 ..."). */
void smtpd_commit(const char *id, int memfd, const struct strbuf *bytes, size_t charged, smtpd_commit_cb cb,
                  void *arg);
/* Gives back bytes of the budget for queue files in memory (a commit's,
 * once the queue has answered for it; SMTPD_CONTENT_MEMORY). */
void smtpd_content_memory_release(size_t bytes);
/* Forgets a pending commit's callback (the session is going away). */
void smtpd_commit_cancel(void *arg);
/* Sends m to the queue, which does not answer (a DMARC_RECORD); dropped
 * with a log line when the queue cannot be reached. */
void smtpd_queue_notify(const struct ipc_msg *m);
int smtpd_incoming_dirfd(void);
struct resolver *smtpd_resolver(void);
void smtpd_session_closed(void);

/* Starts a session on an accepted socket. */
void smtpd_session_start(struct event_base *base, const struct smtpd_settings *set, int fd,
                        const struct sockaddr *sa, socklen_t salen);
/* Closes the AUTH password backends (process end). */
void smtpd_auth_shutdown(void);
/* Frees the DNS context of the restrictions (process end). */
void smtpd_dns_shutdown(void);
/* Closes every session politely (421) for shutdown. */
void smtpd_session_shutdown_all(void);
unsigned smtpd_session_count(void);
/* An asynchronous table answered: every RCPT waiting for one runs again
 * (the map layer's answer hook, set by smtpd.c). */
void smtpd_session_tables_answered(void *arg);

#endif
