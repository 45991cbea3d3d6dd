/* smtpc_internal: what the parts of smtpc share, and nobody
 * else may use. smtpc.c runs the session (targets, states,
 * results); smtpc_conn.c owns the sockets, timers and the lingering
 * QUIT exchanges; smtpc_reply.c parses replies and EHLO keywords;
 * smtpc_cmd.c builds MAIL and RCPT with their parameters;
 * smtpc_data.c streams the content. */
#ifndef TERN_SMTPC_SMTPC_INTERNAL_H
#define TERN_SMTPC_SMTPC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "smtpc/smtpc.h"
#include "util/list.h"
#include "util/strbuf.h"

struct bufferevent;
struct event;
struct evbuffer;

/* Content is read this much at a time; the output buffer is refilled when
 * it drains below LOW and filled up to about HIGH. */
#define SMTPC_CHUNK (64 * 1024)
#define SMTPC_OUT_LOW (64 * 1024)
#define SMTPC_OUT_HIGH (256 * 1024)
/* Connections finishing their QUIT alone, at most (the oldest is closed). */
#define SMTPC_LINGER_MAX 64

/* Where a session is: what it sent last and which reply it waits for. */
enum smtpc_stage {
    SMTPC_ST_CONNECT,
    SMTPC_ST_GREETING,
    SMTPC_ST_EHLO,
    SMTPC_ST_HELO,
    SMTPC_ST_LHLO,      /* LMTP's EHLO (RFC 2033 §4.1) */
    SMTPC_ST_STARTTLS,  /* STARTTLS sent: waiting for 220 */
    SMTPC_ST_TLS,       /* the TLS handshake runs */
    SMTPC_ST_AUTH,      /* AUTH PLAIN sent: waiting for 235 */
    SMTPC_ST_MAIL,
    SMTPC_ST_RCPT,
    SMTPC_ST_DATA,
    SMTPC_ST_XFER,   /* after 354: sending the content */
    SMTPC_ST_DOT,    /* the final dot is out: waiting for the reply */
    SMTPC_ST_QUIT,   /* result given; draining owed replies, then QUIT */
    SMTPC_ST_IDLE,   /* transaction done, kept for the next message (cache) */
};

/* What the server's EHLO reply offered. */
struct smtpc_ext {
    int esmtp;               /* EHLO (or LHLO) worked (0 after the HELO fallback) */
    int pipelining, size, eightbit, smtputf8, dsn, chunking, enhanced, starttls;
    int auth_plain, auth_login;   /* AUTH mechanisms offered */
    uint64_t size_limit;     /* SIZE n; 0: no fixed limit given */
};

/* A reply being read, line by line. */
struct smtpc_reply {
    int code;                /* of the first line; 0 before any line */
    char enh[16];            /* the first line's enhanced code, "" if none */
    unsigned nlines;
    int complete;
    struct strbuf text;      /* "CODE ENH text text2 ...", at most SMTPC_TEXT_MAX */
    int cut;                 /* text was cut at its bound */
};

/* One TCP connection. It belongs to its session while client is set;
 * once the result is out it may stay on the lingering list to finish the
 * replies still owed and the QUIT exchange, owned by nobody but that list. */
struct smtpc_conn {
    struct smtpc *client;   /* NULL once detached (lingering or closing) */
    struct event_base *base;
    struct bufferevent *bev;
    struct event *timer;
    char *relay;                  /* "host[ip]:port" */
    char *line;                   /* SMTPC_REPLY_LINE_MAX + 1: one reply line */
    enum smtpc_stage stage;
    struct smtpc_reply reply;
    struct smtpc_ext ext;
    unsigned owed;                /* lingering: replies still to come */
    int lingering, quit_sent;
    int tls;                      /* TLS is up on this connection */
    int authenticated;            /* AUTH succeeded on it */
    char tls_info[160];
    char *cache_key;              /* idle: the destination it may serve */
    unsigned uses;                /* transactions it has carried */
    long quit_timeout;            /* idle: for the QUIT when it expires */
    int idle;
    int in_cb, dead;              /* freed when the outermost callback returns */
    struct list_node link;        /* in the lingering or the idle list */
};

/* Per recipient, beyond the caller's result fields. */
enum smtpc_rcpt_state {
    SMTPC_R_NONE,       /* not sent (yet) */
    SMTPC_R_BAD,        /* an address we cannot send: result given up front */
    SMTPC_R_ACCEPTED,   /* RCPT 2xx: waits for the DATA outcome */
};

/* A failure on the connection itself, for smtpc_conn_failed. */
enum smtpc_fail {
    SMTPC_F_CONNECT,    /* the TCP handshake failed: err is the errno */
    SMTPC_F_LOST,       /* EOF or a socket error */
    SMTPC_F_TIMEOUT,    /* the stage's timer ran out */
    SMTPC_F_PROTO,      /* a reply broke the syntax or a bound: why says how */
    SMTPC_F_TLS,        /* the TLS handshake failed: why says how */
};

struct smtpc {
    struct event_base *base;
    struct smtpc_opts opts;     /* timeouts with the defaults filled in */
    char *helo_name;
    struct smtpc_target *targets;
    char **relays;                    /* "host[ip]:port" per target */
    size_t ntargets, next_target;
    const char *relay;                /* relays[] of the target tried last; NULL before */
    char *cache_key;                  /* opts.cache_key, ours */
    char *reused_relay;               /* relay of a connection taken from the cache */
    int reused;                       /* the connection came from the cache */
    int tls_skip;                     /* this attempt goes without STARTTLS */
    size_t tls_skip_target;           /* index + 1 of the target to retry in plaintext */
    char *tls_name;                   /* the host name of the current target */
    char **target_names;              /* host names per target, for TLS */
    struct smtpc_msg *msg;
    smtpc_cb cb;
    void *cb_arg;
    struct event *kick;               /* starts the session from the loop */
    struct smtpc_conn *conn;

    /* The last failure of a target, for DEFER_ALL. */
    int last_code;
    char last_enh[16];
    char *last_text;
    const char *last_stage;
    int last_remote;
    int last_was_loop;                /* the last failure: a server naming itself as us */

    /* The transaction on the current connection. */
    int needs_smtputf8;
    int pipelined;
    unsigned char *rstate;            /* enum smtpc_rcpt_state per rcpt */
    size_t *sent;                     /* indices of the rcpts sent, in order */
    size_t nsent, nreplied, naccepted;
    size_t dot_cursor;                /* LMTP: index into sent of the next
                                         rcpt whose reply to the final dot
                                         is awaited (one per accepted rcpt,
                                         in RCPT order) */

    /* Content streaming. */
    uint64_t pos;
    int at_line_start, pending_cr;
    char *scratch;                    /* SMTPC_CHUNK in, then 2 * SMTPC_CHUNK + 8 out */
};

/* smtpc_reply.c */
void smtpc_reply_reset(struct smtpc_reply *r);
void smtpc_reply_free(struct smtpc_reply *r);
/* Adds one line (without its line end). ext, when not NULL, collects the
 * EHLO keywords of lines after the first. Returns 0 (and sets r->complete
 * on the last line) or -1 with *why for a malformed line. */
int smtpc_reply_add_line(struct smtpc_reply *r, const char *line, size_t len, struct smtpc_ext *ext,
                         const char **why);
/* enh for a code: the reply's own when it has one of the right class,
 * its detail under the code's class when the class disagrees, else "X.0.0". */
void smtpc_status_for(int code, const char *reply_enh, char enh[16]);

/* smtpc_cmd.c */
/* 1 if s has no octet a command line cannot carry (CR, LF, other controls). */
int smtpc_text_ok(const char *s);
void smtpc_put_mail(struct strbuf *sb, const struct smtpc_msg *m, const struct smtpc_ext *ext,
                    int smtputf8);
void smtpc_put_rcpt(struct strbuf *sb, const struct smtpc_rcpt *r, const struct smtpc_ext *ext,
                    int smtputf8);

/* smtpc_data.c */
/* After 354: streams the content, then the final dot. */
void smtpc_data_start(struct smtpc *c);
/* The output drained: writes more. */
void smtpc_data_fill(struct smtpc *c);
void smtpc_data_free(struct smtpc *c);

/* smtpc_conn.c: the connection, its timer and the lingering list */
/* Layers TLS over k (after "220" to STARTTLS); the handshake's end comes
 * back as smtpc_tls_done or smtpc_conn_failed. -1 if it cannot start. */
int smtpc_conn_start_tls(struct smtpc_conn *k, struct ssl_ctx_st *ctx, const char *sni, const char *verify_name);
/* smtpc.c: the handshake is done */
void smtpc_tls_done(struct smtpc *c);
/* Keeps a connection whose transaction is done for the next message to the
 * same destination: idle until taken, closed with QUIT after idle_seconds
 * or at once when the server says or closes anything. */
void smtpc_conn_cache(struct smtpc_conn *k, const char *key, long idle_seconds, long quit_timeout);
/* An idle connection for key, attached to c; NULL when there is none. */
struct smtpc_conn *smtpc_conn_take(struct smtpc *c, const char *key);
/* Starts a non-blocking connect to sa; NULL with *err (an errno) when it
 * failed at once. Calls back smtpc_connected or smtpc_conn_failed. */
struct smtpc_conn *smtpc_conn_open(struct smtpc *c, const struct sockaddr *sa, socklen_t salen,
                                   const char *relay, long connect_timeout, int *err);
void smtpc_conn_send(struct smtpc_conn *k, const char *s, size_t len);
/* (Re)starts the stage timer; it calls smtpc_conn_failed(SMTPC_F_TIMEOUT). */
void smtpc_conn_arm(struct smtpc_conn *k, long seconds);
/* Detaches k from its session: it reads the owed replies (ending a DATA a
 * 354 reply opens with a lone dot), sends QUIT and closes, all within
 * quit_timeout. */
void smtpc_conn_linger(struct smtpc_conn *k, unsigned owed, long quit_timeout);
/* Detaches k from its session and closes it at once, without QUIT. */
void smtpc_conn_close(struct smtpc_conn *k);

/* smtpc.c: what the connection reports to its session. Each may end
 * the session (and free c) or detach the connection. */
void smtpc_connected(struct smtpc *c);
/* A complete reply is in c->conn->reply. */
void smtpc_reply_in(struct smtpc *c);
void smtpc_conn_failed(struct smtpc *c, enum smtpc_fail f, int err, const char *why);
/* The output drained below SMTPC_OUT_LOW (or was written out). */
void smtpc_out_drained(struct smtpc *c);
/* The content could not be read: every accepted rcpt is deferred with why
 * and the connection is dropped without ending the DATA. */
void smtpc_content_failed(struct smtpc *c, const char *why);
/* All content and the dot are queued: wait for the final reply. */
void smtpc_data_sent(struct smtpc *c);

#endif
