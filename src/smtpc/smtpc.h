/* smtpc: one outbound SMTP or LMTP client session: one message, its
 * recipients, a list of servers to try (RFC 5321 §3, §4, §5.1; LMTP,
 * RFC 2033, with opts.lmtp).
 *
 * What it does: connects to each target in turn until one takes the
 * transaction: greeting, EHLO (HELO when EHLO gets 5xx), then MAIL, RCPT
 * for every recipient and DATA, pipelined in one write when the server
 * offers PIPELINING (RFC 2920), one at a time otherwise. The content is
 * read from the queue file in 64 KiB pieces with pread(), dot-stuffed on
 * the way out, and never held whole in memory. The extensions it uses when
 * offered: SIZE (RFC 1870; a message larger than the server's limit is not
 * sent), 8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531), DSN (RFC 3461: RET,
 * ENVID, NOTIFY, ORCPT), ENHANCEDSTATUSCODES. STARTTLS and CHUNKING are
 * recognised but not used yet.
 *
 * LMTP (opts.lmtp) is the same dialogue with two differences (RFC 2033
 * §4): LHLO instead of EHLO, with no HELO fallback (a refused LHLO is a
 * failed target), and after the final dot one reply per recipient whose
 * RCPT got 2xx, in RCPT order, each that recipient's own result; a
 * connection lost before the last of them defers those still waiting.
 * Targets may then also be unix sockets (AF_UNIX, SOCK_STREAM); an inet
 * target without a port gets 24.
 *
 * Which target comes next (RFC 5321 §5.1): a connect failure or timeout, a
 * greeting other than 2xx (421 and 554 alike), an EHLO/HELO 4xx (or HELO
 * 5xx after the EHLO fallback), an LHLO other than 2xx, a lost connection
 * or a malformed reply
 * before MAIL was sent. When every target failed that way the outcome is
 * SMTPC_DEFER_ALL with the last one's reason. Once MAIL has been sent the
 * session sticks to its server: MAIL 4xx or a lost connection waiting for
 * the MAIL reply defers the whole message, MAIL 5xx bounces it, and after a
 * 2xx to MAIL every recipient gets its own result.
 *
 * Before connecting, the sender and every recipient are checked to be
 * paths that can be sent as they are (smtp_addr syntax, no control
 * octets): an unusable sender bounces the message (5.1.7); an unusable
 * recipient gets 553 5.1.3 at once and is never sent. With no usable
 * recipient (or none at all) the outcome is SMTPC_DONE without any
 * connection (relay NULL).
 *
 * Who calls it: the queue process's delivery code, after dns routing
 * (dns_resolve_mail_domain) turned the next hop into targets (or a
 * transport entry named an LMTP socket), on that process's event loop. The process must ignore SIGPIPE.
 *
 * What it owns: its sockets, timers and buffers; copies of opts and
 * targets. It does not own msg: the caller keeps msg, its strings and its
 * content_fd valid until the callback has run or the session was
 * cancelled. It writes nothing but the rcpts' result fields.
 *
 * Errors: none from the calls themselves; every result comes through the
 * callback, exactly once, from the event loop (never from inside
 * smtpc_start), unless the session is cancelled first. Every input
 * from the server is bounded: a reply line at most SMTPC_REPLY_LINE_MAX
 * octets, a reply at most SMTPC_REPLY_LINES_MAX lines, each stage at most
 * its timeout; breaking a bound is a temporary failure at that stage.
 * After the result is known the session sends QUIT in the background
 * (bounded by quit_timeout) while the callback runs; nothing the caller
 * sees waits for it. */
#ifndef TERN_SMTPC_SMTPC_H
#define TERN_SMTPC_SMTPC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct smtpc;
struct ssl_ctx_st;

#define SMTPC_REPLY_LINE_MAX 4096   /* octets of one reply line, CRLF included */
#define SMTPC_REPLY_LINES_MAX 100   /* lines of one (multi-line) reply */
#define SMTPC_TEXT_MAX 2048         /* octets of reply text kept for logs and bounces */

/* One recipient. The caller fills addr, notify and orcpt and zeroes the
 * rest; when the callback runs, every recipient has done = 1 and a result. */
struct smtpc_rcpt {
    const char *addr;     /* envelope recipient, "local@domain" */
    unsigned notify;      /* RFC 3461 NOTIFY bits as QF_NOTIFY_* / SMTP_NOTIFY_*
                             (SUCCESS 1, FAILURE 2, DELAY 4, NEVER 8); 0: none */
    const char *orcpt;    /* "addr-type;address", address decoded (as smtp_cmd
                             and the queue store it); NULL or "": none */
    /* results */
    int done;             /* 1 once the recipient has its result; a
                             recipient that has one before the outcome
                             (553 5.1.3 above) keeps it under DEFER_ALL
                             and BOUNCE_ALL */
    int code;             /* 2xx delivered, 4xx try again later, 5xx bounce */
    char enh[16];         /* RFC 3463 status, "2.0.0", "5.1.1" ... */
    char *text;           /* heap, the caller's to free (smtpc_msg_clear);
                             a server reply: "550 5.1.1 <a@b>: User unknown";
                             ours: "lost connection with mx[192.0.2.5]:25 while ..." */
    const char *stage;    /* static: the command the result answers, see below */
    int remote;           /* 1: code, enh and text are the server's reply;
                             0: tern decided (timeout, lost connection ...) */
    int dsn_passed;       /* accepted by a server that offered DSN, so it
                             got our NOTIFY/ORCPT and reports from here on */
};

struct smtpc_msg {
    const char *sender;   /* envelope sender, "" for the null sender */
    int smtputf8;         /* the message needs SMTPUTF8 (also assumed when an
                             envelope address has non-ASCII octets) */
    int body_8bit;        /* the content has 8-bit octets: BODY=8BITMIME */
    const char *ret;      /* DSN RET: "FULL", "HDRS" or NULL */
    const char *envid;    /* DSN ENVID, decoded; NULL: none */
    const char *prepend;  /* CRLF header lines sent before the content
                             (Authentication-Results, a DKIM signature);
                             NULL: none */
    int content_fd;       /* the queue file, read with pread() only */
    uint64_t offset, length;   /* the content: CRLF lines, dot-unstuffed */
    struct smtpc_rcpt *rcpts;
    size_t nrcpts;
};

/* One server to try. addr's port is used when not 0, else 25 (LMTP: 24).
 * hostname is for logs ("mx.example.net[192.0.2.5]:25"); NULL: the
 * address. addr may be a sockaddr_un with LMTP: the relay is then
 * "hostname[path]", with display_addr as the path when it is set (the
 * path as configured, e.g. relative to the queue directory). */
struct smtpc_target {
    const char *hostname;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    const char *display_addr;
    int less_preferred;   /* not among the best exchangers (see myhostname) */
};

/* Timeouts in seconds; 0 (or less) takes Postfix's default for the
 * matching smtp_*_timeout parameter, shown after each. */
struct smtpc_opts {
    const char *helo_name;      /* EHLO/HELO/LHLO argument; NULL (or not one
                                   printable word): "localhost" */
    int lmtp;                   /* speak LMTP (RFC 2033), see above */
    long connect_timeout;       /* 30: the TCP handshake */
    long helo_timeout;          /* 300: the greeting and the EHLO/HELO reply */
    long mail_timeout;          /* 300: the MAIL reply */
    long rcpt_timeout;          /* 300: each RCPT reply */
    long data_timeout;          /* 120 (smtp_data_init_timeout): the DATA reply */
    long data_xfer_timeout;     /* 180: the content making no progress */
    long data_done_timeout;     /* 600: the reply to the final dot */
    long quit_timeout;          /* 300: the QUIT exchange after the result */
    int allow_8bit_anyway;      /* send an 8-bit body to a server without
                                   8BITMIME instead of bouncing it (5.6.3) */
    /* Connection reuse: with a cache_key (the destination, e.g.
     * "example.com:25"), a connection whose transaction ended cleanly is
     * kept idle for cache_idle seconds (0: 2) and up to cache_uses
     * transactions (0: 100), and a later session with the same key takes
     * it instead of connecting (the targets are then used only if the
     * server dropped it before answering MAIL). NULL: no reuse. */
    const char *cache_key;
    long cache_idle;
    unsigned cache_uses;
    /* STARTTLS (RFC 3207) with the client context tls_ctx (NULL: never).
     * SMTPC_TLS_MAY: used when offered, plaintext when not offered or when
     * the handshake fails (that target is tried once more without TLS);
     * ENCRYPT: a target without working TLS is a failure (4.7.5);
     * VERIFY: also the certificate must chain to a trusted CA and name
     * the target's host name (or tls_match when set). */
    struct ssl_ctx_st *tls_ctx;
    int tls_level;              /* enum smtpc_tls */
    const char *tls_match;      /* the name the certificate must carry */
    /* SASL (RFC 4954, PLAIN): log in with these before MAIL, and only over
     * TLS: credentials are never sent in the clear. A server that offers
     * no AUTH, or refuses the login, is a failed target (4.7.0, or the
     * server's 5xx as 4.7.x: a wrong password is the sender's admin's
     * problem, not a reason to bounce mail). NULL user: no login. */
    const char *auth_user, *auth_pass;
    /* Mail loops Postfix's way: a server whose EHLO or HELO reply names
     * myhostname is this host again (behind a NAT, a port forward, a name
     * that is ours); that target fails with "mail for <nexthop> loops back
     * to myself": 550 5.4.6 when it is among the best exchangers (if it was
     * the last to try, every recipient bounces), else 450 4.4.6 (a less
     * preferred one that is us: the better ones are to be tried again
     * later). NULL myhostname: no check (LMTP). */
    const char *myhostname, *nexthop;
};

enum smtpc_tls { SMTPC_TLS_NONE, SMTPC_TLS_MAY, SMTPC_TLS_ENCRYPT, SMTPC_TLS_VERIFY };

enum smtpc_outcome {
    SMTPC_DONE,        /* the transaction ran: each rcpt has its own result */
    SMTPC_DEFER_ALL,   /* no server took the message (connection failures,
                          4xx/5xx greeting or EHLO, MAIL 4xx ...): try later */
    SMTPC_BOUNCE_ALL,  /* MAIL 5xx, a loop back to this host (5.4.6, see
                          myhostname), or a permanent condition: SIZE over the
                          server's limit (5.3.4), SMTPUTF8 needed but not
                          offered (5.6.7), 8-bit body and no 8BITMIME (5.6.3),
                          an unusable sender address (5.1.7) */
};

/* Handed to the callback; every string in it lives until the callback
 * returns (copy what must be kept). With DEFER_ALL and BOUNCE_ALL the
 * rcpts carry the same result as this; with DONE, code is 0, enh and text
 * are "" and the rcpts tell. With DEFER_ALL, code is always 4xx and enh of
 * class 4: a deciding reply of another class (a 554 greeting on the last
 * target) keeps its text but reads as 451 and 4.x.x, so that neither the
 * code nor the status can be taken for a bounce. Likewise a reply of a
 * positive class a command does not expect (a 3xx to RCPT, a 2xx to DATA)
 * gives its recipients 451. */
struct smtpc_result {
    enum smtpc_outcome outcome;
    int code;            /* the deciding reply's code (ours: 451/552/553/554 ...) */
    char enh[16];        /* its status; for DEFER_ALL always of class 4 */
    const char *text;    /* as smtpc_rcpt.text */
    const char *relay;   /* "mx.example.net[192.0.2.5]:25" (a unix socket:
                            "host[path]"), the last server tried; NULL when
                            no target was tried */
    const char *stage;   /* "connect" "greeting" "EHLO" "HELO" "LHLO" "MAIL FROM"
                            "RCPT TO" "DATA" "end of DATA" "QUIT": with
                            remote, for "(in reply to %s command)" */
    int remote;          /* 1: code/enh/text are what relay replied */
    unsigned conn_use;   /* the how-manieth transaction this was on its
                            connection (2 and up: reused); 0: none */
    const char *tls;     /* "TLSv1.3 with cipher ..." when the session was
                            encrypted, else NULL */
};

typedef void (*smtpc_cb)(void *arg, struct smtpc_result *res);

/* Starts a session on base; the targets are tried in the order given
 * (copied, as is o). cb runs exactly once, later, from the loop, unless
 * the session is cancelled; the session is gone when cb returns. Never
 * returns NULL. */
struct smtpc *smtpc_start(struct event_base *base, const struct smtpc_opts *o,
                                      const struct smtpc_target *targets, size_t ntargets,
                                      struct smtpc_msg *msg, smtpc_cb cb, void *arg);

/* Drops a session whose callback has not run yet: its connection is closed
 * at once (no QUIT; a message cut off in DATA is never delivered), cb never
 * runs, and results written so far are cleared (smtpc_msg_clear).
 * Not to be called once the callback has started. */
void smtpc_cancel(struct smtpc *c);

/* Frees the rcpts' result texts and zeroes their results, so msg can be
 * handed to another session or released. */
void smtpc_msg_clear(struct smtpc_msg *msg);

/* The octets the message will have on the wire before dot-stuffing: the
 * prepended lines and the content (for SIZE=). */
uint64_t smtpc_msg_size(const struct smtpc_msg *msg);

/* Sessions whose result is out but whose QUIT exchange is still running,
 * and idle connections kept for reuse. */
size_t smtpc_lingering(void);
size_t smtpc_idle(void);
/* Closes all those connections at once (process shutdown). */
void smtpc_drop_lingering(void);

#endif
