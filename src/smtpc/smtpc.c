/* smtpc: the session (see smtpc.h): which target comes next,
 * the dialogue's states, and the results. The socket, timers and line
 * reading are smtpc_conn.c's; replies are parsed by
 * smtpc_reply.c, commands built by smtpc_cmd.c, and the
 * content streamed by smtpc_data.c.
 *
 * Result texts follow Postfix's wording, so log lines and bounces read
 * the way people expect: a server's reply verbatim ("550 5.1.1 <a@b>: User
 * unknown", lines joined with spaces), our own failures as "connect to
 * host[ip]:25: Connection refused", "lost connection with host[ip]:25
 * while sending RCPT TO", "conversation with host[ip]:25 timed out while
 * sending message body". */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "smtp/smtp_addr.h"
#include "smtpc/smtpc_internal.h"
#include "util/base64.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

/* How the session leaves its connection when the result is out. */
enum conn_end {
    END_QUIT,    /* read the owed replies, then QUIT */
    END_CLOSE,   /* close at once: the dialogue's state is unknown */
    END_REUSE,   /* a clean end: keep it for the next message (else QUIT) */
};

static const char *stage_name(enum smtpc_stage st)
{
    switch (st) {
    case SMTPC_ST_CONNECT: return "connect";
    case SMTPC_ST_GREETING: return "greeting";
    case SMTPC_ST_EHLO: return "EHLO";
    case SMTPC_ST_HELO: return "HELO";
    case SMTPC_ST_LHLO: return "LHLO";
    case SMTPC_ST_STARTTLS: return "STARTTLS";
    case SMTPC_ST_TLS: return "STARTTLS";
    case SMTPC_ST_AUTH: return "AUTH";
    case SMTPC_ST_MAIL: return "MAIL FROM";
    case SMTPC_ST_RCPT: return "RCPT TO";
    case SMTPC_ST_DATA: return "DATA";
    case SMTPC_ST_XFER: return "end of DATA";
    case SMTPC_ST_DOT: return "end of DATA";
    case SMTPC_ST_QUIT: return "QUIT";
    case SMTPC_ST_IDLE: return "MAIL FROM";
    }
    return "connect";
}

/* Postfix's "while ..." phrases. */
static const char *stage_doing(const struct smtpc_conn *k)
{
    switch (k->stage) {
    case SMTPC_ST_CONNECT: return "connecting";
    case SMTPC_ST_GREETING: return "receiving the initial server greeting";
    case SMTPC_ST_EHLO: return "performing the EHLO handshake";
    case SMTPC_ST_HELO: return "performing the HELO handshake";
    case SMTPC_ST_LHLO: return "performing the LHLO handshake";
    case SMTPC_ST_STARTTLS: return "sending STARTTLS";
    case SMTPC_ST_TLS: return "performing the TLS handshake";
    case SMTPC_ST_AUTH: return "performing the SASL login";
    case SMTPC_ST_MAIL: return "sending MAIL FROM";
    case SMTPC_ST_RCPT: return "sending RCPT TO";
    case SMTPC_ST_DATA: return "sending DATA command";
    case SMTPC_ST_XFER: return "sending message body";
    case SMTPC_ST_DOT:
        if (evbuffer_get_length(bufferevent_get_output(k->bev)) > 0)
            return "sending message body";
        return "sending end of data -- message may be sent more than once";
    case SMTPC_ST_QUIT: return "sending QUIT";
    case SMTPC_ST_IDLE: return "waiting for the next message";
    }
    return "talking";
}

/* "host[ip]:port" (Postfix's relay= form); the address stands in for a
 * missing hostname. A unix socket has no port: "host[path]", the path as
 * the caller shows it (Postfix's "mail.example.com[private/dovecot-lmtp]"). */
static char *relay_name(const struct smtpc_target *t)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 25;
    if (t->addr.ss_family == AF_UNIX) {
        const struct sockaddr_un *su = (const struct sockaddr_un *)&t->addr;
        const char *path = t->display_addr != NULL ? t->display_addr : su->sun_path;
        const char *host = t->hostname != NULL && t->hostname[0] != '\0' ? t->hostname : "localhost";
        return xasprintf("%s[%s]", host, path);
    }
    if (t->addr.ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&t->addr;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
        port = ntohs(s4->sin_port);
    } else if (t->addr.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&t->addr;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
        port = ntohs(s6->sin6_port);
    }
    const char *host = t->hostname != NULL && t->hostname[0] != '\0' ? t->hostname : ip;
    return xasprintf("%s[%s]:%u", host, ip, port);
}

/* 25, or LMTP's 24 (RFC 2033 §5 asks for no well-known port; 24 is the
 * one in use, and Postfix's lmtp_tcp_port default). */
static void set_default_port(struct smtpc_target *t, int lmtp)
{
    uint16_t port = htons(lmtp ? 24 : 25);
    if (t->addr.ss_family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&t->addr;
        if (s4->sin_port == 0)
            s4->sin_port = port;
    } else if (t->addr.ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&t->addr;
        if (s6->sin6_port == 0)
            s6->sin6_port = port;
    }
}

static void client_free(struct smtpc *c)
{
    if (c->conn != NULL) {
        struct smtpc_conn *k = c->conn;
        c->conn = NULL;
        smtpc_conn_close(k);
    }
    smtpc_data_free(c);
    if (c->kick != NULL)
        event_free(c->kick);
    for (size_t i = 0; i < c->ntargets; i++) {
        free(c->relays[i]);
        free(c->target_names[i]);
    }
    free(c->relays);
    free(c->target_names);
    free(c->targets);
    free(c->helo_name);
    free(c->cache_key);
    free(c->reused_relay);
    free(c->last_text);
    free(c->rstate);
    free(c->sent);
    free(c);
}

static void rcpt_set(struct smtpc_rcpt *r, int code, const char *enh, const char *text,
                     const char *stage, int remote)
{
    free(r->text);
    r->done = 1;
    r->code = code;
    str_copy(r->enh, enh, sizeof r->enh);
    r->text = xstrdup(text);
    r->stage = stage;
    r->remote = remote;
}

/* The code a result takes from a reply to a command that expects class
 * want: a reply of another positive class is a broken dialogue, which is
 * worth another try later, not a bounce. */
static int result_code(int code, int want)
{
    int cls = code / 100;
    return cls == 4 || cls == 5 || cls == want ? code : 451;
}

/* The current reply as rcpt i's result. */
static void rcpt_set_reply(struct smtpc *c, size_t i, int want, const char *stage)
{
    const struct smtpc_reply *rp = &c->conn->reply;
    int code = result_code(rp->code, want);
    char enh[16];
    smtpc_status_for(code, rp->enh, enh);
    rcpt_set(&c->msg->rcpts[i], code, enh, strbuf_str(&rp->text), stage, 1);
}

/* Every accepted recipient without a result gets the current reply. */
static void accepted_set_reply(struct smtpc *c, int want, const char *stage)
{
    for (size_t j = 0; j < c->nsent; j++) {
        size_t i = c->sent[j];
        if (c->rstate[i] == SMTPC_R_ACCEPTED && !c->msg->rcpts[i].done)
            rcpt_set_reply(c, i, want, stage);
    }
}

static void detach_conn(struct smtpc *c, enum conn_end end, unsigned owed)
{
    struct smtpc_conn *k = c->conn;
    if (k == NULL)
        return;
    c->conn = NULL;
    k->client = NULL;
    smtpc_data_free(c);
    k->uses++;
    if (end == END_REUSE && c->cache_key != NULL && k->uses < c->opts.cache_uses)
        smtpc_conn_cache(k, c->cache_key, c->opts.cache_idle, c->opts.quit_timeout);
    else if (end == END_QUIT || end == END_REUSE)
        smtpc_conn_linger(k, owed, c->opts.quit_timeout);
    else
        smtpc_conn_close(k);
}

/* Gives the result and ends the session: the connection goes on alone to
 * QUIT (or is closed), the callback runs, c is freed. For DEFER_ALL and
 * BOUNCE_ALL every recipient without a result of its own gets this one. */
static void finish(struct smtpc *c, enum smtpc_outcome outcome, int code, const char *enh,
                   const char *text, const char *stage, int remote, enum conn_end end, unsigned owed)
{
    struct smtpc_msg *m = c->msg;
    char *text_copy = xstrdup(text != NULL ? text : "");
    char enh_copy[16];
    str_copy(enh_copy, enh != NULL ? enh : "", sizeof enh_copy);
    for (size_t i = 0; i < m->nrcpts; i++) {
        if (m->rcpts[i].done)
            continue;
        if (outcome != SMTPC_DONE)
            rcpt_set(&m->rcpts[i], code, enh_copy, text_copy, stage, remote);
        else /* cannot happen: every path gives each recipient its result */
            rcpt_set(&m->rcpts[i], 451, "4.3.0", "internal error: no result for recipient", stage, 0);
    }
    unsigned conn_use = c->conn != NULL ? c->conn->uses + 1 : 0;
    char tls_info[sizeof c->conn->tls_info] = "";
    if (c->conn != NULL && c->conn->tls)
        str_copy(tls_info, c->conn->tls_info, sizeof tls_info);
    detach_conn(c, end, owed);

    struct smtpc_result res;
    memset(&res, 0, sizeof res);
    res.outcome = outcome;
    res.conn_use = conn_use;
    res.tls = tls_info[0] ? tls_info : NULL;
    res.relay = c->relay;
    res.stage = stage;
    if (outcome == SMTPC_DONE) {
        res.text = "";
    } else {
        res.code = code;
        str_copy(res.enh, enh_copy, sizeof res.enh);
        res.text = text_copy;
        res.remote = remote;
    }
    smtpc_cb cb = c->cb;
    void *arg = c->cb_arg;
    cb(arg, &res);
    free(text_copy);
    client_free(c);
}

/* A class-4 version of a failure, for DEFER_ALL: what only made us try
 * elsewhere must not read as a bounce. */
static void defer_all(struct smtpc *c, int code, const char *enh, const char *text, const char *stage,
                      int remote, enum conn_end end, unsigned owed)
{
    char e4[16];
    snprintf(e4, sizeof e4, "4%s", enh[0] != '\0' ? enh + 1 : ".0.0");
    finish(c, SMTPC_DEFER_ALL, code / 100 == 4 ? code : 451, e4, text, stage, remote, end, owed);
}

static void try_next_target(struct smtpc *c);

/* Notes why the current target failed, for a DEFER_ALL if none is left. */
static void note_failure(struct smtpc *c, int code, const char *enh, const char *text,
                         const char *stage, int remote)
{
    char *copy = xstrdup(text);
    free(c->last_text);
    c->last_text = copy;
    c->last_code = code;
    str_copy(c->last_enh, enh, sizeof c->last_enh);
    c->last_stage = stage;
    c->last_remote = remote;
    c->last_was_loop = 0;
    log_info("%s: %s", c->relay != NULL ? c->relay : "-", copy);
}

/* The current target failed before MAIL: drop it, try the next. */
static void target_failed(struct smtpc *c, int code, const char *enh, const char *text,
                          const char *stage, int remote, enum conn_end end)
{
    note_failure(c, code, enh, text, stage, remote);
    detach_conn(c, end, 0);
    try_next_target(c);
}

/* A failed reply from the current target before MAIL. */
static void target_refused(struct smtpc *c)
{
    const struct smtpc_reply *rp = &c->conn->reply;
    char enh[16];
    smtpc_status_for(rp->code, rp->enh, enh);
    target_failed(c, rp->code, enh, strbuf_str(&rp->text), stage_name(c->conn->stage), 1, END_QUIT);
}

static void try_next_target(struct smtpc *c)
{
    while (c->next_target < c->ntargets) {
        size_t i = c->next_target++;
        const struct smtpc_target *t = &c->targets[i];
        c->relay = c->relays[i];
        c->tls_name = c->target_names[i];
        c->tls_skip = c->tls_skip_target == i + 1;
        int err = 0;
        c->conn = smtpc_conn_open(c, (const struct sockaddr *)&t->addr, t->addrlen, c->relay,
                                  c->opts.connect_timeout, &err);
        if (c->conn != NULL)
            return;
        char *text = xasprintf("connect to %s: %s", c->relay, strerror(err));
        note_failure(c, 451, "4.4.1", text, "connect", 0);
        free(text);
    }
    if (c->last_text == NULL)
        finish(c, SMTPC_DEFER_ALL, 451, "4.4.4", "no SMTP server to try", "connect", 0, END_CLOSE, 0);
    else if (c->last_was_loop)
        finish(c, SMTPC_BOUNCE_ALL, c->last_code, c->last_enh, c->last_text, c->last_stage, 0, END_CLOSE, 0);
    else
        defer_all(c, c->last_code, c->last_enh, c->last_text, c->last_stage, c->last_remote, END_CLOSE, 0);
}

/* ---- the dialogue ---- */

static void send_str(struct smtpc *c, const char *s)
{
    smtpc_conn_send(c->conn, s, strlen(s));
}

void smtpc_connected(struct smtpc *c)
{
    smtpc_conn_arm(c->conn, c->opts.helo_timeout);
}

static void send_ehlo(struct smtpc *c, const char *verb, enum smtpc_stage st);

/* EHLO, or LHLO in LMTP (which has no HELO to fall back to). */
static void send_hello(struct smtpc *c)
{
    if (c->opts.lmtp)
        send_ehlo(c, "LHLO", SMTPC_ST_LHLO);
    else
        send_ehlo(c, "EHLO", SMTPC_ST_EHLO);
}

static void send_ehlo(struct smtpc *c, const char *verb, enum smtpc_stage st)
{
    struct smtpc_conn *k = c->conn;
    char *cmd = xasprintf("%s %s\r\n", verb, c->helo_name);
    send_str(c, cmd);
    free(cmd);
    memset(&k->ext, 0, sizeof k->ext);
    k->stage = st;
    smtpc_conn_arm(k, c->opts.helo_timeout);
}

static void send_rcpt(struct smtpc *c, size_t j)
{
    struct strbuf sb = STRBUF_INIT;
    smtpc_put_rcpt(&sb, &c->msg->rcpts[c->sent[j]], &c->conn->ext, c->needs_smtputf8);
    smtpc_conn_send(c->conn, sb.buf, sb.len);
    strbuf_free(&sb);
    c->conn->stage = SMTPC_ST_RCPT;
    smtpc_conn_arm(c->conn, c->opts.rcpt_timeout);
}

/* MAIL, and with PIPELINING (RFC 2920 §3.1) every RCPT and DATA with it,
 * in one write. */
static void start_transaction(struct smtpc *c)
{
    struct smtpc_conn *k = c->conn;
    const struct smtpc_msg *m = c->msg;
    struct strbuf sb = STRBUF_INIT;
    c->pipelined = k->ext.pipelining;
    c->nsent = c->nreplied = c->naccepted = c->dot_cursor = 0;
    for (size_t i = 0; i < m->nrcpts; i++)
        if (c->rstate[i] != SMTPC_R_BAD)
            c->sent[c->nsent++] = i;
    smtpc_put_mail(&sb, m, &k->ext, c->needs_smtputf8);
    if (c->pipelined) {
        for (size_t j = 0; j < c->nsent; j++)
            smtpc_put_rcpt(&sb, &m->rcpts[c->sent[j]], &k->ext, c->needs_smtputf8);
        strbuf_puts(&sb, "DATA\r\n");
    }
    smtpc_conn_send(k, sb.buf, sb.len);
    strbuf_free(&sb);
    k->stage = SMTPC_ST_MAIL;
    smtpc_conn_arm(k, c->opts.mail_timeout);
}

static void after_hello(struct smtpc *c);

static int tls_level(const struct smtpc *c)
{
    return c->opts.tls_ctx != NULL ? c->opts.tls_level : SMTPC_TLS_NONE;
}

/* EHLO (or HELO) is answered: STARTTLS first when the policy and the
 * server allow, then the transaction. */
static void after_ehlo(struct smtpc *c)
{
    struct smtpc_conn *k = c->conn;
    int level = tls_level(c);
    if (k->tls || level == SMTPC_TLS_NONE || (level == SMTPC_TLS_MAY && c->tls_skip)) {
        after_hello(c);
        return;
    }
    if (!k->ext.starttls) {
        if (level == SMTPC_TLS_MAY) {
            after_hello(c);
            return;
        }
        char *t = xasprintf("TLS is required, but was not offered by host %s", c->relay);
        target_failed(c, 450, "4.7.4", t, stage_name(k->stage), 0, END_QUIT);
        free(t);
        return;
    }
    send_str(c, "STARTTLS\r\n");
    k->stage = SMTPC_ST_STARTTLS;
    smtpc_conn_arm(k, c->opts.helo_timeout);
}

static void starttls_reply(struct smtpc *c)
{
    struct smtpc_conn *k = c->conn;
    int level = tls_level(c);
    if (k->reply.code != 220) {
        if (level == SMTPC_TLS_MAY)
            after_hello(c);   /* opportunistic: on in plaintext */
        else
            target_refused(c);
        return;
    }
    const char *verify = level >= SMTPC_TLS_VERIFY ? (c->opts.tls_match ? c->opts.tls_match : c->tls_name) : NULL;
    if (smtpc_conn_start_tls(k, c->opts.tls_ctx, c->tls_name, verify) != 0) {
        target_failed(c, 451, "4.7.5", "cannot start TLS: out of resources", "STARTTLS", 0, END_CLOSE);
        return;
    }
    smtpc_conn_arm(k, c->opts.helo_timeout);
}

void smtpc_tls_done(struct smtpc *c)
{
    struct smtpc_conn *k = c->conn;
    log_info("%s TLS connection established to %s: %s",
             tls_level(c) >= SMTPC_TLS_VERIFY ? "Verified" : "Untrusted", c->relay, k->tls_info);
    /* RFC 3207 §4.2: forget what the server said before, ask again */
    send_hello(c);
}

/* RFC 4616 PLAIN with an initial response; the copy is wiped. */
static void send_auth(struct smtpc *c)
{
    struct smtpc_conn *k = c->conn;
    size_t enclen;
    char *resp = base64_sasl_plain(c->opts.auth_user, c->opts.auth_pass ? c->opts.auth_pass : "", &enclen);
    char *line = xmalloc(enclen + 16);
    memcpy(line, "AUTH PLAIN ", 11);
    memcpy(line + 11, resp, enclen);
    memcpy(line + 11 + enclen, "\r\n", 3);
    smtpc_conn_send(k, line, 11 + enclen + 2);
    explicit_bzero(resp, enclen);
    explicit_bzero(line, enclen + 16);
    free(resp);
    free(line);
    k->stage = SMTPC_ST_AUTH;
    smtpc_conn_arm(k, c->opts.helo_timeout);
}

static void auth_reply(struct smtpc *c)
{
    struct smtpc_conn *k = c->conn;
    if (k->reply.code == 235) {
        k->authenticated = 1;
        after_hello(c);
        return;
    }
    /* A refused login is the configuration's fault: try elsewhere, defer. */
    char *t = xasprintf("SASL authentication failed; server %s said: %s", c->relay, strbuf_str(&k->reply.text));
    target_failed(c, 454, "4.7.0", t, "AUTH", 0, END_QUIT);
    free(t);
}

/* EHLO or HELO worked: what the server offered may already rule the
 * message out; else the transaction starts. */
static void after_hello(struct smtpc *c)
{
    if (c->opts.auth_user != NULL && !c->conn->authenticated) {
        const char *why = NULL;
        if (!c->conn->tls)
            why = "would send credentials without TLS";
        else if (!c->conn->ext.auth_plain)
            why = "the server offers no AUTH PLAIN";
        if (why) {
            char *t = xasprintf("SASL authentication to %s not possible: %s", c->relay, why);
            target_failed(c, 454, "4.7.0", t, "AUTH", 0, END_QUIT);
            free(t);
            return;
        }
        send_auth(c);
        return;
    }
    const struct smtpc_ext *x = &c->conn->ext;
    const struct smtpc_msg *m = c->msg;
    const char *st = stage_name(c->conn->stage);
    char *text = NULL;
    int code = 0;
    const char *enh = NULL;
    if (x->size && x->size_limit > 0 && smtpc_msg_size(m) > x->size_limit) {
        code = 552, enh = "5.3.4";
        text = xasprintf("message size %llu exceeds size limit %llu of server %s",
                         (unsigned long long)smtpc_msg_size(m), (unsigned long long)x->size_limit, c->relay);
    } else if (c->needs_smtputf8 && !x->smtputf8) {
        code = 550, enh = "5.6.7";
        text = xasprintf("SMTPUTF8 is required, but was not offered by host %s", c->relay);
    } else if (m->body_8bit && !x->eightbit && !c->opts.allow_8bit_anyway) {
        code = 554, enh = "5.6.3";
        text = xasprintf("message has 8-bit content, but host %s does not announce 8BITMIME support",
                         c->relay);
    }
    if (text != NULL) {
        finish(c, SMTPC_BOUNCE_ALL, code, enh, text, st, 0, END_QUIT, 0);
        free(text);
        return;
    }
    start_transaction(c);
}

static void mail_reply(struct smtpc *c)
{
    const struct smtpc_reply *rp = &c->conn->reply;
    if (rp->code / 100 == 2) {
        if (c->pipelined) {
            c->conn->stage = SMTPC_ST_RCPT;
            smtpc_conn_arm(c->conn, c->opts.rcpt_timeout);
        } else {
            send_rcpt(c, 0);
        }
        return;
    }
    /* With PIPELINING the RCPT and DATA replies are still to come. */
    unsigned owed = c->pipelined ? (unsigned)c->nsent + 1 : 0;
    char enh[16];
    smtpc_status_for(rp->code, rp->enh, enh);
    if (rp->code / 100 == 5)
        finish(c, SMTPC_BOUNCE_ALL, rp->code, enh, strbuf_str(&rp->text), "MAIL FROM", 1, END_QUIT, owed);
    else
        defer_all(c, rp->code, enh, strbuf_str(&rp->text), "MAIL FROM", 1, END_QUIT, owed);
}

static void rcpt_reply(struct smtpc *c)
{
    size_t i = c->sent[c->nreplied++];
    if (c->conn->reply.code / 100 == 2) {
        c->rstate[i] = SMTPC_R_ACCEPTED;
        c->naccepted++;
        /* it got NOTIFY/ORCPT with the RCPT (smtpc_put_rcpt) */
        c->msg->rcpts[i].dsn_passed = c->conn->ext.dsn;
    } else {
        rcpt_set_reply(c, i, 2, "RCPT TO");
    }
    if (c->nreplied < c->nsent) {
        if (c->pipelined)
            smtpc_conn_arm(c->conn, c->opts.rcpt_timeout);
        else
            send_rcpt(c, c->nreplied);
        return;
    }
    if (c->naccepted == 0) {
        /* Nothing to send: no DATA (a pipelined one is answered in the
         * background). */
        finish(c, SMTPC_DONE, 0, "", "", "RCPT TO", 1, END_QUIT, c->pipelined ? 1 : 0);
        return;
    }
    if (!c->pipelined)
        send_str(c, "DATA\r\n");
    c->conn->stage = SMTPC_ST_DATA;
    smtpc_conn_arm(c->conn, c->opts.data_timeout);
}

static void data_reply(struct smtpc *c)
{
    int code = c->conn->reply.code;
    if (code == 354) {
        c->conn->stage = SMTPC_ST_XFER;
        smtpc_conn_arm(c->conn, c->opts.data_xfer_timeout);
        smtpc_data_start(c);
        return;
    }
    accepted_set_reply(c, 0, "DATA");
    int sane = code / 100 == 4 || code / 100 == 5;
    finish(c, SMTPC_DONE, 0, "", "", "DATA", 1, sane ? END_QUIT : END_CLOSE, 0);
}

/* LMTP (RFC 2033 §4.2): after the final dot one reply per recipient
 * whose RCPT got 2xx, in RCPT order; each is that recipient's own result.
 * The session ends when the last has come; a connection lost before that
 * defers those still waiting (conn_trouble). */
static void lmtp_dot_reply(struct smtpc *c)
{
    while (c->dot_cursor < c->nsent && c->rstate[c->sent[c->dot_cursor]] != SMTPC_R_ACCEPTED)
        c->dot_cursor++;
    if (c->dot_cursor < c->nsent)
        rcpt_set_reply(c, c->sent[c->dot_cursor++], 2, "end of DATA");
    while (c->dot_cursor < c->nsent && c->rstate[c->sent[c->dot_cursor]] != SMTPC_R_ACCEPTED)
        c->dot_cursor++;
    if (c->dot_cursor < c->nsent) {
        smtpc_conn_arm(c->conn, c->opts.data_done_timeout);   /* each reply may take its time */
        return;
    }
    /* every reply is in: the server waits for a new MAIL, reusable */
    finish(c, SMTPC_DONE, 0, "", "", "end of DATA", 1, END_REUSE, 0);
}

/* The reply to the final dot, or one the server sent before we were done
 * with the content (then the connection is in no state for QUIT). */
static void dot_reply(struct smtpc *c)
{
    int early = c->conn->stage == SMTPC_ST_XFER;
    if (c->opts.lmtp && !early) {
        lmtp_dot_reply(c);
        return;
    }
    accepted_set_reply(c, early ? 0 : 2, "end of DATA");
    /* after the final reply the server waits for a new MAIL: reusable */
    finish(c, SMTPC_DONE, 0, "", "", "end of DATA", 1, early ? END_CLOSE : END_REUSE, 0);
}

/* Does the EHLO/HELO reply's first word (the server's name, RFC 5321
 * §4.1.1.1) say it is this host? */
static int names_myself(const struct smtpc *c)
{
    if (c->opts.myhostname == NULL || c->opts.myhostname[0] == '\0')
        return 0;
    const struct smtpc_reply *rp = &c->conn->reply;
    const char *p = strbuf_str(&rp->text);
    p += strspn(p, "0123456789");
    p += strspn(p, " ");
    if (rp->enh[0] != '\0' && strncmp(p, rp->enh, strlen(rp->enh)) == 0)
        p += strlen(rp->enh) + strspn(p + strlen(rp->enh), " ");
    size_t n = strcspn(p, " ?");   /* a TAB or other control is kept as '?' */
    return n == strlen(c->opts.myhostname) && strncasecmp(p, c->opts.myhostname, n) == 0;
}

static void loops_back(struct smtpc *c)
{
    log_warn("host %s replied to HELO/EHLO with my own hostname %s", c->relay, c->opts.myhostname);
    char *text = xasprintf("mail for %s loops back to myself", c->opts.nexthop ? c->opts.nexthop : c->relay);
    int best = c->next_target == 0 || !c->targets[c->next_target - 1].less_preferred;
    note_failure(c, best ? 550 : 450, best ? "5.4.6" : "4.4.6", text, stage_name(c->conn->stage), 0);
    c->last_was_loop = best;
    free(text);
    detach_conn(c, END_QUIT, 0);
    try_next_target(c);
}

void smtpc_reply_in(struct smtpc *c)
{
    struct smtpc_conn *k = c->conn;
    int cls = k->reply.code / 100;
    switch (k->stage) {
    case SMTPC_ST_GREETING:
        if (cls == 2)
            send_hello(c);
        else
            target_refused(c);
        break;
    case SMTPC_ST_LHLO:
        /* RFC 2033 §4.1: no HELO fallback; a refusal is this target's failure */
        if (cls == 2) {
            k->ext.esmtp = 1;
            after_ehlo(c);
        } else {
            target_refused(c);
        }
        break;
    case SMTPC_ST_EHLO:
        if (cls == 2 && names_myself(c)) {
            loops_back(c);
        } else if (cls == 2) {
            k->ext.esmtp = 1;
            after_ehlo(c);
        } else if (cls == 5) {
            send_ehlo(c, "HELO", SMTPC_ST_HELO);
        } else {
            target_refused(c);
        }
        break;
    case SMTPC_ST_HELO:
        if (cls == 2 && names_myself(c))
            loops_back(c);
        else if (cls == 2)
            after_ehlo(c);
        else
            target_refused(c);
        break;
    case SMTPC_ST_STARTTLS: starttls_reply(c); break;
    case SMTPC_ST_TLS: break;
    case SMTPC_ST_AUTH: auth_reply(c); break;
    case SMTPC_ST_MAIL: mail_reply(c); break;
    case SMTPC_ST_RCPT: rcpt_reply(c); break;
    case SMTPC_ST_DATA: data_reply(c); break;
    case SMTPC_ST_XFER:
    case SMTPC_ST_DOT: dot_reply(c); break;
    case SMTPC_ST_CONNECT:
    case SMTPC_ST_QUIT:
    case SMTPC_ST_IDLE: break;
    }
}

/* ---- our own failures ---- */

/* A failure of the connection (not a reply) at the current stage: before
 * MAIL the next target gets its turn; waiting for the MAIL reply the
 * message is deferred; later every recipient without a result is. */
static void conn_trouble(struct smtpc *c, const char *enh, const char *text)
{
    struct smtpc_conn *k = c->conn;
    const char *st = stage_name(k->stage);
    if (k->stage <= SMTPC_ST_AUTH) {
        target_failed(c, 451, enh, text, st, 0, END_CLOSE);
        return;
    }
    if (k->stage == SMTPC_ST_MAIL) {
        finish(c, SMTPC_DEFER_ALL, 451, enh, text, st, 0, END_CLOSE, 0);
        return;
    }
    for (size_t j = 0; j < c->nsent; j++) {
        struct smtpc_rcpt *r = &c->msg->rcpts[c->sent[j]];
        if (!r->done)
            rcpt_set(r, 451, enh, text, st, 0);
    }
    finish(c, SMTPC_DONE, 0, "", "", st, 0, END_CLOSE, 0);
}

void smtpc_conn_failed(struct smtpc *c, enum smtpc_fail f, int err, const char *why)
{
    struct smtpc_conn *k = c->conn;
    char *text;
    const char *enh = "4.4.2";
    if (f == SMTPC_F_CONNECT || (f == SMTPC_F_TIMEOUT && k->stage == SMTPC_ST_CONNECT)) {
        text = xasprintf("connect to %s: %s", c->relay, strerror(f == SMTPC_F_CONNECT ? err : ETIMEDOUT));
        target_failed(c, 451, "4.4.1", text, "connect", 0, END_CLOSE);
        free(text);
        return;
    }
    if (f == SMTPC_F_LOST && c->reused && k->stage == SMTPC_ST_MAIL) {
        /* A cached connection the server had given up on: nothing was
         * answered yet, so connect afresh. */
        detach_conn(c, END_CLOSE, 0);
        c->reused = 0;
        c->relay = NULL;
        try_next_target(c);
        return;
    }
    if (f == SMTPC_F_TLS) {
        text = xasprintf("TLS handshake failed with %s: %s", c->relay, why);
        if (tls_level(c) == SMTPC_TLS_MAY) {
            /* opportunistic TLS must not make mail undeliverable: the same
             * server once more, in plaintext */
            c->tls_skip = 1;
            c->tls_skip_target = c->next_target;
            c->next_target--;
        }
        target_failed(c, 451, "4.7.5", text, "STARTTLS", 0, END_CLOSE);
        free(text);
        return;
    }
    if (f == SMTPC_F_LOST) {
        text = xasprintf("lost connection with %s while %s", c->relay, stage_doing(k));
    } else if (f == SMTPC_F_TIMEOUT) {
        text = xasprintf("conversation with %s timed out while %s", c->relay, stage_doing(k));
    } else {
        enh = "4.5.0";
        text = xasprintf("%s from %s while %s", why, c->relay, stage_doing(k));
    }
    conn_trouble(c, enh, text);
    free(text);
}

void smtpc_content_failed(struct smtpc *c, const char *why)
{
    log_warn("%s", why);
    conn_trouble(c, "4.3.0", why);
}

void smtpc_out_drained(struct smtpc *c)
{
    if (c->conn->stage == SMTPC_ST_XFER && c->scratch != NULL)
        smtpc_data_fill(c);
}

void smtpc_data_sent(struct smtpc *c)
{
    struct smtpc_conn *k = c->conn;
    k->stage = SMTPC_ST_DOT;
    bufferevent_setwatermark(k->bev, EV_WRITE, 0, 0);
    int pending = evbuffer_get_length(bufferevent_get_output(k->bev)) > 0;
    smtpc_conn_arm(k, pending ? c->opts.data_xfer_timeout : c->opts.data_done_timeout);
}

/* ---- start ---- */

/* 1 if addr can go into MAIL FROM:<> or RCPT TO:<> as it is. */
static int path_usable(const char *addr, unsigned flags)
{
    if (addr == NULL || !smtpc_text_ok(addr))
        return 0;
    char *bracketed = xasprintf("<%s>", addr);
    struct smtp_path p;
    const char *end = NULL;
    int ok = smtp_path_parse(bracketed, flags | SMTP_PATH_ALLOW_UTF8, &p, &end, NULL) == 0 &&
             *end == '\0' && !p.had_source_route;
    smtp_path_free(&p);
    free(bracketed);
    return ok;
}

static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct smtpc *c = arg;
    struct smtpc_msg *m = c->msg;
    (void)fd, (void)what;
    if (!path_usable(m->sender != NULL ? m->sender : "", SMTP_PATH_ALLOW_NULL)) {
        finish(c, SMTPC_BOUNCE_ALL, 553, "5.1.7", "unusable sender address", "MAIL FROM", 0, END_CLOSE, 0);
        return;
    }
    c->needs_smtputf8 = m->smtputf8 || (m->sender != NULL && str_has_8bit(m->sender, strlen(m->sender)));
    size_t usable = 0;
    for (size_t i = 0; i < m->nrcpts; i++) {
        struct smtpc_rcpt *r = &m->rcpts[i];
        if (!path_usable(r->addr, SMTP_PATH_ALLOW_NO_DOMAIN)) {
            c->rstate[i] = SMTPC_R_BAD;
            rcpt_set(r, 553, "5.1.3", "unusable recipient address", "RCPT TO", 0);
            continue;
        }
        usable++;
        if (str_has_8bit(r->addr, strlen(r->addr)))
            c->needs_smtputf8 = 1;
    }
    if (usable == 0) {
        finish(c, SMTPC_DONE, 0, "", "", "RCPT TO", 0, END_CLOSE, 0);
        return;
    }
    if (c->cache_key != NULL && (c->conn = smtpc_conn_take(c, c->cache_key)) != NULL) {
        c->reused = 1;
        c->reused_relay = xstrdup(c->conn->relay);
        c->relay = c->reused_relay;
        after_hello(c);
        return;
    }
    try_next_target(c);
}

static long or_default(long v, long dflt)
{
    return v > 0 ? v : dflt;
}

/* A name that can go into EHLO as one word. */
static int helo_name_ok(const char *s)
{
    return s != NULL && s[0] != '\0' && smtpc_text_ok(s) && strchr(s, ' ') == NULL && strlen(s) <= 255;
}

struct smtpc *smtpc_start(struct event_base *base, const struct smtpc_opts *o,
                                      const struct smtpc_target *targets, size_t ntargets,
                                      struct smtpc_msg *msg, smtpc_cb cb, void *arg)
{
    struct smtpc *c = xcalloc(1, sizeof *c);
    static const struct smtpc_opts none;
    if (o == NULL)
        o = &none;
    c->base = base;
    c->opts = *o;
    c->opts.helo_name = NULL;
    c->opts.connect_timeout = or_default(o->connect_timeout, 30);
    c->opts.helo_timeout = or_default(o->helo_timeout, 300);
    c->opts.mail_timeout = or_default(o->mail_timeout, 300);
    c->opts.rcpt_timeout = or_default(o->rcpt_timeout, 300);
    c->opts.data_timeout = or_default(o->data_timeout, 120);
    c->opts.data_xfer_timeout = or_default(o->data_xfer_timeout, 180);
    c->opts.data_done_timeout = or_default(o->data_done_timeout, 600);
    c->opts.quit_timeout = or_default(o->quit_timeout, 300);
    c->opts.cache_idle = or_default(o->cache_idle, 2);
    c->opts.cache_uses = o->cache_uses > 0 ? o->cache_uses : 100;
    c->opts.cache_key = NULL;
    c->cache_key = o->cache_key != NULL ? xstrdup(o->cache_key) : NULL;
    if (o->helo_name != NULL && !helo_name_ok(o->helo_name))
        log_warn("smtp client: unusable helo name, using \"localhost\"");
    c->helo_name = xstrdup(helo_name_ok(o->helo_name) ? o->helo_name : "localhost");
    c->ntargets = ntargets;
    c->targets = xcalloc(ntargets ? ntargets : 1, sizeof *c->targets);
    c->relays = xcalloc(ntargets ? ntargets : 1, sizeof *c->relays);
    c->target_names = xcalloc(ntargets ? ntargets : 1, sizeof *c->target_names);
    for (size_t i = 0; i < ntargets; i++) {
        c->targets[i] = targets[i];
        set_default_port(&c->targets[i], o->lmtp);
        c->relays[i] = relay_name(&c->targets[i]);
        c->target_names[i] = targets[i].hostname != NULL ? xstrdup(targets[i].hostname) : NULL;
        c->targets[i].hostname = NULL;   /* ours are in target_names */
        c->targets[i].display_addr = NULL;   /* only relay_name used it */
    }
    c->msg = msg;
    c->cb = cb;
    c->cb_arg = arg;
    c->rstate = xcalloc(msg->nrcpts ? msg->nrcpts : 1, 1);
    c->sent = xcalloc(msg->nrcpts ? msg->nrcpts : 1, sizeof *c->sent);
    c->kick = evtimer_new(base, kick_cb, c);
    if (c->kick == NULL)
        log_panic("smtp client: cannot create an event");
    struct timeval now = {0, 0};
    event_add(c->kick, &now);
    return c;
}

void smtpc_cancel(struct smtpc *c)
{
    if (c == NULL)
        return;
    smtpc_msg_clear(c->msg);
    client_free(c);
}

uint64_t smtpc_msg_size(const struct smtpc_msg *msg)
{
    return msg->length + (msg->prepend ? strlen(msg->prepend) : 0);
}

void smtpc_msg_clear(struct smtpc_msg *msg)
{
    for (size_t i = 0; i < msg->nrcpts; i++) {
        struct smtpc_rcpt *r = &msg->rcpts[i];
        free(r->text);
        r->text = NULL;
        r->done = 0;
        r->code = 0;
        r->enh[0] = '\0';
        r->stage = NULL;
        r->remote = 0;
        r->dsn_passed = 0;
    }
}
