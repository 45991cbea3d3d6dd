/* smtpd_content: the message content of an SMTP session: DATA and
 * BDAT bytes decoded by smtp_data, completed by cleanup and written to a
 * queue file (in incoming/, or in memory with the journal spool: see
 * SMTPD_CONTENT_MEMORY), checked at the end, then committed to the queue;
 * the final reply waits for the queue to say the file is durable (see
 * smtpd_session_internal.h). */
#include "smtpd/smtpd_session_internal.h"
#include "smtpd/smtpd_mailauth.h"

#include <errno.h>
#include <stdio.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "msg/cleanup.h"
#include "msg/msg_header.h"
#include "smtpd/smtpd_policy.h"
#include "spool/storage_reply.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/strbuf.h"

#define SMTP_DATA_CHUNK 16384

/* Received:'s "with" (RFC 3848): ESMTPS over TLS, UTF8SMTPS ... */
static const char *client_protocol(const struct smtp_session *s)
{
    if (s->smtputf8)
        return s->tls ? "UTF8SMTPS" : "UTF8SMTP";
    if (!s->esmtp)
        return "SMTP";
    if (s->sasl_user)
        return s->tls ? "ESMTPSA" : "ESMTPA";
    return s->tls ? "ESMTPS" : "ESMTP";
}

int smtpd_content_begin(struct smtp_session *s, enum smtp_data_mode mode)
{
    struct queue_file_memory mem = smtpd_session_content_memory(s);
    if ((s->set->content_in_memory ? queue_file_writer_open_memory(smtpd_incoming_dirfd(), s->id, &mem, &s->writer)
                                   : queue_file_writer_open(smtpd_incoming_dirfd(), s->id, &s->writer)) != 0) {
        int e = errno;
        log_warn("%s: cannot create queue file: %s", s->id, strerror(e));
        s->writer = NULL;
        return e ? e : EIO;
    }
    struct msg_received rcv = {
        .helo = s->helo,
        .client_name = s->client_name,
        .client_addr = s->client_addr,
        .by_host = s->set->myhostname,
        .protocol = client_protocol(s),
        .queue_id = s->id,
        .for_rcpt = s->env.nrcpt == 1 ? s->env.rcpts[0].addr : NULL,
        .mail_name = s->set->mail_name,
        .when = time(NULL),
    };
    char tls_info[sizeof s->tls_info + 16];
    if (s->tls && s->set->tls_received) {
        snprintf(tls_info, sizeof tls_info, "(using %s)", s->tls_info);
        rcv.tls_info = tls_info;
    }
    char *received = msg_header_received(&rcv);
    struct cleanup_opts o = {
        .queue_id = s->id,
        .myhostname = s->set->myhostname,
        .myorigin = s->set->myorigin,
        .sender = s->env.sender,
        .add_missing_headers = s->is_local,
        .received = received,
        .header_size_limit = (size_t)s->set->header_size_limit,
        .message_size_limit = s->set->message_size_limit,
        .now = time(NULL),
        .observer = smtpd_mailauth_observer(s),
    };
    s->cleanup = cleanup_new(s->writer, &o);
    free(received);
    smtp_data_init(&s->dec, mode, SMTP_DATA_REJECT_NUL | (s->set->reject_bare_lf ? SMTP_DATA_REJECT_BARE_LF : 0));
    return 0;
}

void smtpd_content_storage_error(struct smtp_session *s, int err)
{
    smtpd_session_reply(s, "%s", storage_reply(err));
}

/* The message's final reply is out: the next command may be handled. */
static void transaction_over(struct smtp_session *s)
{
    /* writer and cleanup are gone (handed over before the commit), so
     * this resets only the envelope and the transaction's state */
    smtpd_session_reset_transaction(s);
    /* the client's idle time counts from this reply */
    smtpd_session_client_timeout(s, 1);
    /* Not session_process() from here: this runs inside the queue channel's
     * callback (or inside smtpd_commit itself when the queue is down), and
     * the next message's commit must not re-enter it; pipelined input
     * waits for the event loop. */
    if (!smtpd_session_check_error_limit(s))
        bufferevent_trigger(s->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

static void commit_done(void *arg, int ok, const char *failure)
{
    struct smtp_session *s = arg;
    if (ok) {
        smtpd_session_reply(s, "250 2.0.0 Ok: queued as %s", s->id);
        /* the file belongs to the queue now */
    } else {
        smtpd_session_reply(s, "%s", failure);
    }
    transaction_over(s);
}

/* The content is accepted and its checks are done: the results go above
 * the content, the envelope is written, and the queue takes the file. */
static void content_commit(struct smtp_session *s)
{
    struct smtpd_policy_result r;
    int refused = smtpd_cmd_check_end_of_data(s, &r) != 0;
    smtpd_mailauth_report(s);   /* counted whatever the outcome (RFC 9990 3.1) */
    if (refused) {
        log_info("%s: reject: END-OF-MESSAGE from %s[%s]: %d %s %s; from=<%s> proto=%s helo=<%s>", s->id,
                 s->client_name, s->client_addr, r.code, r.enh, r.text, s->env.sender, client_protocol(s),
                 s->helo ? s->helo : "");
        smtpd_session_reply(s, "%d %s %s", r.code, r.enh, r.text);
        transaction_over(s);
        return;
    }
    if (r.hold) {
        log_info("%s: hold: END-OF-MESSAGE from %s[%s]: %s; from=<%s> proto=%s helo=<%s>", s->id, s->client_name,
                 s->client_addr, r.text, s->env.sender, client_protocol(s), s->helo ? s->helo : "");
        queue_file_message_set_attr(&s->env, QF_ATTR_HOLD, r.text);
    }
    const char *results = smtpd_mailauth_results(s);
    if (results)
        queue_file_message_set_attr(&s->env, QF_ATTR_PREPEND, results);
    int memfd;
    size_t charged;
    struct strbuf bytes = STRBUF_INIT;
    if (queue_file_writer_finish_memory(s->writer, &s->env, &memfd, &charged, &bytes, smtpd_commit_file_max()) != 0) {
        int e = errno;
        s->writer = NULL;
        strbuf_free(&bytes);
        log_warn("%s: queue file write error: %s", s->id, strerror(e));
        smtpd_content_storage_error(s, e);
        transaction_over(s);
        return;
    }
    s->writer = NULL;
    s->content_charged -= charged; /* the commit's now, until the queue answers */
    smtpd_commit(s->id, memfd, &bytes, charged, commit_done, s);
    strbuf_free(&bytes);
}

void smtpd_content_end(struct smtp_session *s)
{
    s->where = "END-OF-MESSAGE";
    char out[2];
    size_t n = smtp_data_finish(&s->dec, out);
    if (n)
        cleanup_write(s->cleanup, out, n);
    struct cleanup_result res;
    cleanup_finish(s->cleanup, &res);
    cleanup_free(s->cleanup);
    s->cleanup = NULL;

    const char *bad_content = smtp_data_error(&s->dec);
    int refused = 1;
    if (bad_content) {
        log_info("%s: reject: %s from %s[%s]", s->id, bad_content, s->client_name, s->client_addr);
        smtpd_session_reply(s, "550 5.6.0 Message rejected: %s (%s)", bad_content, smtp_data_error_rule(&s->dec));
    } else if (res.status == CLEANUP_TOO_BIG) {
        smtpd_session_reply(s, "552 5.3.4 Message size exceeds fixed limit");
    } else if (res.status == CLEANUP_HEADER_TOO_BIG) {
        smtpd_session_reply(s, "552 5.3.4 Message header size exceeds limit");
    } else if (res.status == CLEANUP_WRITE_ERROR) {
        log_warn("%s: queue file write error: %s", s->id, strerror(res.error_errno));
        smtpd_content_storage_error(s, res.error_errno);
    } else if (s->set->hopcount_limit > 0 && res.hops > s->set->hopcount_limit) {
        log_info("%s: reject: too many hops (%d) from %s[%s]", s->id, res.hops, s->client_name,
                 s->client_addr);
        smtpd_session_reply(s, "554 5.4.6 Too many hops: %d Received: header fields, mail loop?", res.hops);
    } else if (!res.had_from && s->set->require_from && !s->is_local) {
        log_info("%s: reject: message without From: header from %s[%s]", s->id, s->client_name,
                 s->client_addr);
        smtpd_session_reply(s, "550 5.7.1 Message rejected: it has no From: header field (RFC 5322 section 3.6)");
    } else {
        refused = 0;
    }
    if (refused) {
        cleanup_result_free(&res);
        smtpd_session_reset_transaction(s);
        smtpd_session_check_error_limit(s);
        return;
    }

    queue_file_message_set_attr(&s->env, "client_name", s->client_name);
    queue_file_message_set_attr(&s->env, "client_address", s->client_addr);
    if (s->helo)
        queue_file_message_set_attr(&s->env, "helo_name", s->helo);
    queue_file_message_set_attr(&s->env, "protocol", client_protocol(s));
    queue_file_message_set_attr(&s->env, "origin", "smtp");
    queue_file_message_set_attr(&s->env, "service", s->set->service);
    /* for the capture API's envelope view (and for people reading queue files) */
    if (s->sasl_user) {
        queue_file_message_set_attr(&s->env, "sasl_username", s->sasl_user);
        if (s->sasl_method)   /* for delivery commands' SASL_METHOD */
            queue_file_message_set_attr(&s->env, "sasl_method", s->sasl_method);
    }
    if (s->tls && s->tls_info[0])
        queue_file_message_set_attr(&s->env, "tls", s->tls_info);
    if (s->is_local || s->sasl_user)
        queue_file_message_set_attr(&s->env, QF_ATTR_DKIM_SIGN, "1");   /* ours: the queue may sign it */
    if (s->body == SMTP_BODY_8BITMIME || res.has_8bit)
        queue_file_message_set_attr(&s->env, "body", s->body == SMTP_BODY_8BITMIME ? "8BITMIME" : "8BIT");
    if (s->smtputf8)
        queue_file_message_set_attr(&s->env, "smtputf8", "1");
    if (res.message_id) {
        queue_file_message_set_attr(&s->env, "message_id", res.message_id);
        log_info("%s: message-id=<%s>", s->id, res.message_id);
    }
    cleanup_result_free(&res);
    /* No command is handled until the final reply (session_process waits
     * in SS_COMMIT), but reading stays on: what the client pipelines waits
     * in the input, at most SMTP_INPUT_COMMAND_HIGH_WATER of it; a client
     * that closes its sending side still gets its replies (on_event), a
     * reset ends the session at once (the commit goes on without it:
     * smtpd_commit_cancel). Turning reading off and on around each commit
     * cost two epoll_ctl calls a message. The client's read timeout waits
     * too: the commit has its own (smtpd_commit). */
    s->state = SS_COMMIT;
    smtpd_session_client_timeout(s, 0);
    if (!smtpd_mailauth_finish(s, content_commit))
        content_commit(s);
}

int smtpd_content_read_dot(struct smtp_session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    static char out[2 * SMTP_DATA_CHUNK + 2];
    while (evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, SMTP_DATA_CHUNK, NULL, &v, 1) < 1)
            break;
        size_t take = v.iov_len < SMTP_DATA_CHUNK ? v.iov_len : SMTP_DATA_CHUNK;
        size_t outlen = 0;
        size_t used = smtp_data_decode(&s->dec, v.iov_base, take, out, &outlen);
        cleanup_write(s->cleanup, out, outlen);
        evbuffer_drain(in, used);
        if (s->dec.done)
            return 1;
    }
    return 0;
}

int smtpd_content_read_bdat(struct smtp_session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    static char out[2 * SMTP_DATA_CHUNK + 2];
    while (s->bdat_remaining > 0 && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, SMTP_DATA_CHUNK, NULL, &v, 1) < 1)
            break;
        size_t take = v.iov_len < SMTP_DATA_CHUNK ? v.iov_len : SMTP_DATA_CHUNK;
        if (take > s->bdat_remaining)
            take = (size_t)s->bdat_remaining;
        if (!s->bdat_error && s->cleanup) {
            size_t outlen = 0;
            smtp_data_decode(&s->dec, v.iov_base, take, out, &outlen);
            cleanup_write(s->cleanup, out, outlen);
        }
        evbuffer_drain(in, take);
        s->bdat_remaining -= take;
    }
    return s->bdat_remaining == 0;
}

void smtpd_content_bdat_done(struct smtp_session *s, unsigned long long chunk_size)
{
    if (s->bdat_error) {
        const char *r = s->bdat_error;
        s->bdat_error = NULL;
        enum session_state back = s->have_id ? (s->env.nrcpt ? SS_RCPT : SS_MAIL)
                                             : (s->helo ? SS_READY : SS_INIT);
        s->state = back;
        smtpd_session_reply(s, "%s", r);
        return;
    }
    if (!s->bdat_last) {
        s->state = SS_BDAT_WAIT;
        smtpd_session_reply(s, "250 2.0.0 Ok: %llu bytes", chunk_size);
        return;
    }
    smtpd_content_end(s);
}
