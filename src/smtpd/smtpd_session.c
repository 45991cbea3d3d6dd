/* smtpd_session: one SMTP server session (see smtpd_session.h): its
 * replies, input loop, events, start and end (a listener's settings are
 * read in smtpd_settings.c). The commands are in
 * smtpd_cmd.c, the message content in smtpd_content.c, the per-client
 * rates and the memory and disk budgets in smtpd_limits.c (see
 * smtpd_session_internal.h). */
#include "smtpd/smtpd_session.h"

#include "daemon/runtime.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "msg/cleanup.h"
#include "spool/queue_file.h"
#include "spool/queue_id.h"
#include "smtp/smtp_cmd.h"
#include "smtp/smtp_data.h"
#include "smtpd/smtpd_session_internal.h"
#include "smtpd/smtpd_anvil.h"
#include "smtpd/smtpd_capture.h"
#include "smtpd/smtpd_mailauth.h"
#include "smtpd/smtpd_policy.h"
#include "maps/map.h"
#include "tls/tls.h"
#include "util/list.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

/* RFC 5321 4.5.3.1.4/6: a command line is at most 512 octets and a text
 * line 1000; extensions make commands longer, so commands may use the text
 * limit. Anything longer is discarded up to its end: never buffered. */
#define SMTP_MAX_COMMAND_LINE 1000
/* What a session reads ahead of what it has handled: message content is
 * handled as it comes, in big reads; commands wait while their session waits
 * (on DNS for its restrictions, SPF or a table, on AUTH, on the commit), so
 * pipelined commands are read ahead only a few lines' worth (with STARTTLS,
 * a filter whose input is full stops reading the socket below it too). These
 * and the replies' bound keep a session in what smtpd_memory_limit counts for
 * it (SMTPD_SESSION_MEMORY): a session waiting on DNS held 280 KB of
 * commands. */
#define SMTP_INPUT_HIGH_WATER (256 * 1024)
#define SMTP_INPUT_COMMAND_HIGH_WATER (8 * 1024)
/* A client that pipelines commands but never reads the replies must not make
 * us buffer them without end: above this, commands wait until it has read. */
#define SMTP_OUTPUT_HIGH_WATER (16 * 1024)

/* The names of enum counter in the disconnect line. */
static const char *counter_names[CNT_MAX] = {"ehlo", "helo", "starttls", "auth", "mail", "rcpt", "bdat",
                                             "data", "rset", "noop", "vrfy", "expn", "help", "quit",
                                             "unknown"};

static struct list sessions;    /* of struct smtp_session, oldest first */
static unsigned nsessions;

static void session_process(struct smtp_session *s);
static void session_free(struct smtp_session *s);
static void tls_established(struct smtp_session *s);

/* ---------- replies ---------- */

static void count_reply(struct smtp_session *s, int code)
{
    if (code >= 300 && code < 400)
        return; /* intermediate (354, 334): the command is not done yet */
    if (code >= 400)
        s->errors++;
    if (code >= 400 && s->set->capture_counters)
        s->set->capture_counters->rejected++;
    if (s->cur_counter >= 0) {
        s->cnt_total[s->cur_counter]++;
        if (code < 400)
            s->cnt_ok[s->cur_counter]++;
        s->cur_counter = -1;
    }
}

void smtpd_session_reply(struct smtp_session *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = xvasprintf(fmt, ap);
    va_end(ap);
    struct evbuffer *out = bufferevent_get_output(s->bev);
    /* one add per reply: over TLS each write can become a record of its own */
    size_t len = strlen(text);
    text = xrealloc(text, len + 3);
    memcpy(text + len, "\r\n", 3);
    size_t sent = 0;
    /* Nothing waiting before it, no TLS, and no pipelined command still to
     * answer (its replies go out together, RFC 2920): straight to the
     * socket. Through the bufferevent a reply costs two epoll_ctl calls
     * (the write event on, then off) and a loop iteration; what the socket
     * does not take now goes that way after all, behind nothing. */
    if (s->plain_socket && evbuffer_get_length(out) == 0 &&
        evbuffer_get_length(bufferevent_get_input(s->bev)) == 0) {
        ssize_t n = send(bufferevent_getfd(s->bev), text, len + 2, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0)
            sent = (size_t)n;
    }
    if (sent < len + 2) {
        evbuffer_add(out, text + sent, len + 2 - sent);
        /* libevent adds the write event for what waits as long as writing
         * is enabled, which it is from the start; a write error or timeout
         * turns it off */
        if (!(bufferevent_get_enabled(s->bev) & EV_WRITE))
            bufferevent_enable(s->bev, EV_WRITE);
    }
    count_reply(s, atoi(text));
    free(text);
}

static void flush_check(evutil_socket_t fd, short what, void *arg);
static size_t underlying_pending(struct smtp_session *s);

void smtpd_session_close_after_reply(struct smtp_session *s)
{
    s->state = SS_CLOSING;
    s->closing_after_write = 1;
    bufferevent_disable(s->bev, EV_READ);
    /* The session is over for the client once its last reply is out. When
     * it is already (in the kernel's hands), the connection stops counting
     * now, before this loop can accept the client's next one; a reply still
     * waiting here keeps it counted until the session ends, or a client
     * that never reads its 221 could hold slots it no longer counts for. */
    if (s->anvil_counted && evbuffer_get_length(bufferevent_get_output(s->bev)) == 0 &&
        underlying_pending(s) == 0) {
        smtpd_anvil_disconnect(s->client_addr, s->anvil_admitted, time(NULL));
        s->anvil_counted = 0;
    }
    /* The last reply went straight to the socket: no write event will say
     * it left. End the session from the loop, after the caller is done. */
    if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0) {
        if (!s->flush_timer)
            s->flush_timer = evtimer_new(s->base, flush_check, s);
        struct timeval now = {0, 0};
        evtimer_add(s->flush_timer, &now);
    }
}

int smtpd_session_check_error_limit(struct smtp_session *s)
{
    if (s->state == SS_CLOSING)
        return 1; /* the final reply is already queued: never a second 421 */
    if (s->set->hard_error_limit > 0 && s->errors >= (unsigned)s->set->hard_error_limit) {
        log_info("too many errors after %s from %s[%s]", s->where, s->client_name, s->client_addr);
        smtpd_session_reply(s, "421 4.7.0 %s Error: too many errors", s->set->myhostname);
        smtpd_session_close_after_reply(s);
        return 1;
    }
    return 0;
}

void smtpd_session_reset_transaction(struct smtp_session *s)
{
    smtpd_session_uncharge_memory(s, s->rcpt_memory_charged);
    s->rcpt_memory_charged = 0;
    if (s->cleanup) {
        cleanup_free(s->cleanup);
        s->cleanup = NULL;
    }
    if (s->writer) {
        queue_file_writer_abort(s->writer);
        s->writer = NULL;
    }
    if (s->env_init) {
        queue_file_message_free(&s->env);
        s->env_init = 0;
    }
    s->have_id = 0;
    s->smtputf8 = 0;
    s->body = SMTP_BODY_NONE;
    s->bdat_started = 0;
    s->bdat_error = NULL;
    smtpd_mailauth_end(s);
    if (s->state != SS_INIT && s->state != SS_CLOSING)
        s->state = SS_READY;
}

/* ---------- input ---------- */

static int read_command_line(struct smtp_session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    size_t eol_len = 0;
    struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
    if (p.pos < 0) {
        size_t have = evbuffer_get_length(in);
        if (have > SMTP_MAX_COMMAND_LINE) {
            /* Never buffer an endless line: drop what we have, and the rest
             * of the line when its end arrives. */
            s->discarding_line = 1;
            evbuffer_drain(in, have);
        }
        return 0;
    }
    size_t len = (size_t)p.pos;
    if (s->discarding_line || len + eol_len > SMTP_MAX_COMMAND_LINE) {
        evbuffer_drain(in, len + eol_len);
        s->discarding_line = 0;
        s->cur_counter = CNT_UNKNOWN;
        s->where = "UNKNOWN";
        smtpd_session_reply(s, "500 5.5.2 Error: command line too long");
        return 1;
    }
    char line[SMTP_MAX_COMMAND_LINE + 1];
    evbuffer_remove(in, line, len);
    evbuffer_drain(in, eol_len);
    if (len > 0 && line[len - 1] == '\r')
        len--;
    line[len] = '\0';
    if (s->auth_step)
        smtpd_auth_line(s, line, len);   /* never logged: it holds credentials */
    else
        smtpd_cmd_handle_line(s, line, len);
    explicit_bzero(line, len);
    return 1;
}

static void error_sleep_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct smtp_session *s = arg;
    bufferevent_enable(s->bev, EV_READ);
    session_process(s);
}

/* Past smtpd_soft_error_limit every error costs the client
 * smtpd_error_sleep_time before its next command is read (Postfix's tarpit,
 * without blocking the other sessions). Returns 1 if paused. */
static int pause_after_error(struct smtp_session *s)
{
    if (s->set->soft_error_limit <= 0 || s->set->error_sleep_time <= 0 ||
        s->errors < (unsigned)s->set->soft_error_limit || s->state == SS_CLOSING)
        return 0;
    if (!s->error_sleep)
        s->error_sleep = evtimer_new(s->base, error_sleep_done, s);
    struct timeval tv = {s->set->error_sleep_time, 0};
    bufferevent_disable(s->bev, EV_READ);
    evtimer_add(s->error_sleep, &tv);
    return 1;
}

void smtpd_session_resume(struct smtp_session *s)
{
    session_process(s);
}

void smtpd_session_tables_answered(void *arg)
{
    for (struct list_node *n = sessions.head; n; n = arg) {
        arg = n->next;   /* s may end while its RCPT runs; the others stay */
        struct smtp_session *s = LIST_ITEM(n, struct smtp_session, link);
        if (s->table_wait_arg)
            smtpd_cmd_table_retry(s);
    }
}

/* Reads ahead as far as the session's phase allows (see SMTP_INPUT_*). */
static void set_input_high_water(struct smtp_session *s)
{
    size_t want = s->state == SS_DATA || s->state == SS_BDAT ? SMTP_INPUT_HIGH_WATER : SMTP_INPUT_COMMAND_HIGH_WATER;
    if (want != s->input_high_water) {
        bufferevent_setwatermark(s->bev, EV_READ, 0, want);
        s->input_high_water = want;
    }
}

/* Everything the client sent is handled: one that closed its sending side
 * during a commit is done (its replies still leave: close after them). */
static void end_if_peer_done(struct smtp_session *s)
{
    if (!s->peer_done || s->state == SS_CLOSING)
        return;
    if (s->state != SS_INIT && s->state != SS_READY)
        log_info("lost connection after %s from %s[%s]", s->where, s->client_name, s->client_addr);
    smtpd_session_close_after_reply(s);
}

static void session_process(struct smtp_session *s)
{
    for (;;) {
        set_input_high_water(s);
        if (s->state == SS_CLOSING || s->state == SS_COMMIT || s->state == SS_AUTH)
            return;
        /* the restrictions' DNS answers first (bounded; resumes), and an RCPT
         * waiting for a table's answer (smtpd_session_tables_answered) */
        if ((smtpd_dns_pending(s) || smtpd_mailauth_rcpt_waits(s) || s->table_wait_arg) && s->state != SS_DATA &&
            s->state != SS_BDAT)
            return;
        if (s->state == SS_DATA || s->state == SS_BDAT) {
            /* the content's refusals (a chunk without MAIL, a message too
             * big) count as errors too: the same limits and tarpit */
            unsigned errors_before = s->errors;
            if (s->state == SS_DATA) {
                if (!smtpd_content_read_dot(s)) {
                    end_if_peer_done(s);
                    return;
                }
                smtpd_content_end(s);
            } else {
                if (!smtpd_content_read_bdat(s)) {
                    end_if_peer_done(s);
                    return;
                }
                smtpd_content_bdat_done(s, s->bdat_chunk_size);
            }
            if (smtpd_session_check_error_limit(s))
                return;
            if (s->errors > errors_before && pause_after_error(s))
                return;
            continue;
        }
        if (evbuffer_get_length(bufferevent_get_output(s->bev)) > SMTP_OUTPUT_HIGH_WATER) {
            s->output_blocked = 1;
            bufferevent_disable(s->bev, EV_READ);
            return;
        }
        unsigned errors_before = s->errors;
        if (!read_command_line(s)) {
            end_if_peer_done(s);
            return;
        }
        if (smtpd_session_check_error_limit(s))
            return;
        if (s->errors > errors_before && pause_after_error(s))
            return;
    }
}

/* ---------- events ---------- */

static void on_read(struct bufferevent *bev, void *arg)
{
    struct smtp_session *s = arg;
    /* The client's first command can come in the same read that ends the
     * handshake, before libevent reports the handshake: TLS is up anyway. */
    if (s->tls_pending && SSL_is_init_finished(bufferevent_openssl_get_ssl(bev)))
        tls_established(s);
    session_process(s);
}

/* Over STARTTLS the session writes into a TLS filter whose records wait in
 * the socket's own buffer: the last reply is gone only when both are empty. */
static size_t underlying_pending(struct smtp_session *s)
{
    struct bufferevent *u = bufferevent_get_underlying(s->bev);
    return u ? evbuffer_get_length(bufferevent_get_output(u)) : 0;
}

static void flush_check(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct smtp_session *s = arg;
    /* A reply queued since the close was asked for: the write event ends
     * the session once it has left (on_write). */
    if (evbuffer_get_length(bufferevent_get_output(s->bev)) > 0)
        return;
    /* every 20 ms, for at most smtpd_timeout */
    long limit = 50 * (s->set->timeout > 0 ? s->set->timeout : 300);
    if (underlying_pending(s) == 0 || ++s->flush_tries > limit) {
        session_free(s);
        return;
    }
    struct timeval tv = {0, 20000};
    evtimer_add(s->flush_timer, &tv);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct smtp_session *s = arg;
    if (s->closing_after_write && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        if (underlying_pending(s) > 0) {
            /* bounded: the socket's write timeout ends a client that never reads */
            if (!s->flush_timer)
                s->flush_timer = evtimer_new(s->base, flush_check, s);
            if (!evtimer_pending(s->flush_timer, NULL)) {
                struct timeval tv = {0, 20000};
                evtimer_add(s->flush_timer, &tv);
            }
            return;
        }
        session_free(s);
        return;
    }
    if (s->output_blocked && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        s->output_blocked = 0;
        bufferevent_enable(s->bev, EV_READ);
        session_process(s);
    }
}

/* A handshake ends within smtpd_timeout, however its bytes trickle in
 * (each read resets the read timeout; a ClientHello sent a byte at a time
 * held a port-465 connection before its greeting for days). */
static void on_handshake_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct smtp_session *s = arg;
    if (!s->tls_pending)
        return;
    log_info("timeout after TLS handshake from %s[%s]", s->client_name, s->client_addr);
    session_free(s);
}

static void arm_handshake_timer(struct smtp_session *s)
{
    if (!s->handshake_timer)
        s->handshake_timer = evtimer_new(s->base, on_handshake_timeout, s);
    struct timeval tv = {s->set->timeout > 0 ? s->set->timeout : 300, 0};
    evtimer_add(s->handshake_timer, &tv);
}

static void tls_established(struct smtp_session *s)
{
    if (s->handshake_timer)
        evtimer_del(s->handshake_timer);
    s->tls = 1;
    s->tls_pending = 0;
    SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
    tls_describe(ssl, s->tls_info, sizeof s->tls_info);
    log_info("Anonymous TLS connection established from %s[%s]: %s", s->client_name, s->client_addr,
             s->tls_info);
    /* a new session (not a resumed one) counts; past the limit the session
     * ends, as Postfix does (what it cost is spent, the next is refused
     * before its handshake) */
    if (!SSL_session_reused(ssl) && smtpd_session_over_client_rate(s, ANVIL_RATE_TLS)) {
        smtpd_session_reply(s, "421 4.7.0 %s Error: too many new TLS sessions from %s[%s]", s->set->myhostname,
                            s->client_name, s->client_addr);
        smtpd_session_close_after_reply(s);
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct smtp_session *s = arg;
    if (what & BEV_EVENT_CONNECTED) {
        if (s->tls_pending)
            tls_established(s);
        return;
    }
    if (s->tls_pending && (what & BEV_EVENT_ERROR)) {
        char buf[256];
        unsigned long e = bufferevent_get_openssl_error(bev);
        log_info("SSL_accept error from %s[%s]: %s", s->client_name, s->client_addr,
                 e ? tls_error_text(e, buf, sizeof buf) : "lost connection");
        session_free(s);
        return;
    }
    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && s->state == SS_COMMIT) {
        /* A client may close its sending side after pipelining the dot
         * and QUIT (nc -N) and still read its replies: they come, and the
         * session ends after them (end_if_peer_done). libevent has stopped
         * reading. A reset or an error still ends the session at once. */
        s->peer_done = 1;
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        log_info("timeout after %s from %s[%s]", s->where, s->client_name, s->client_addr);
        if (!s->closing_after_write) {
            smtpd_session_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->set->myhostname);
            /* During a commit (a client that reads no replies) the file is
             * the queue's once handed over: leave it alone, and let no 250
             * follow the 421. Before that (mail authentication's answers
             * still awaited) the transaction ends here, its checks too. */
            if (s->state == SS_COMMIT && !s->writer)
                smtpd_commit_cancel(s);
            else
                smtpd_session_reset_transaction(s);
            if (s->state == SS_AUTH)
                smtpd_auth_session_end(s);   /* no late 235/535 after the 421 */
            smtpd_session_close_after_reply(s);
            /* give the reply a moment to leave; a dead peer ends it by write timeout */
            bufferevent_enable(s->bev, EV_WRITE);
            return;
        }
    } else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        if (s->state != SS_CLOSING && s->state != SS_INIT && s->state != SS_READY)
            log_info("lost connection after %s from %s[%s]", s->where, s->client_name, s->client_addr);
    }
    session_free(s);
}

void smtpd_session_client_timeout(struct smtp_session *s, int reading)
{
    struct timeval tv = {s->set->timeout > 0 ? s->set->timeout : 300, 0};
    /* no system call: the events stay in epoll, only their timers change */
    bufferevent_set_timeouts(s->bev, reading ? &tv : NULL, &tv);
    /* Over STARTTLS the filter's timers count the client's time; a read
     * timer on the socket under it would run from the last bytes in, also
     * while a commit has the filter's off. Its write timer stays. */
    struct bufferevent *under = bufferevent_get_underlying(s->bev);
    if (under)
        bufferevent_set_timeouts(under, NULL, &tv);
}

static void session_setup_bev(struct smtp_session *s)
{
    if (s->tls_pending)
        bufferevent_openssl_set_allow_dirty_shutdown(s->bev, 1);
    bufferevent_setcb(s->bev, on_read, on_write, on_event, s);
    s->input_high_water = 0;
    set_input_high_water(s);
    smtpd_session_client_timeout(s, 1);
}

void smtpd_session_start_tls(struct smtp_session *s)
{
    /* The client has to wait for our 220 before its handshake: anything
     * already here was sent blind, and must never be read as commands. */
    struct evbuffer *in = bufferevent_get_input(s->bev);
    size_t junk = evbuffer_get_length(in);
    if (junk > 0) {
        log_info("improper command pipelining after STARTTLS from %s[%s]: %zu octets discarded",
                 s->client_name, s->client_addr, junk);
        evbuffer_drain(in, junk);
    }
    smtpd_session_reset_transaction(s);
    smtpd_auth_session_end(s);   /* RFC 3207 §4.2: nothing from before TLS is kept */
    free(s->helo);
    s->helo = NULL;
    s->esmtp = 0;
    memset(&s->ext, 0, sizeof s->ext);
    s->state = SS_INIT;
    s->tls_pending = 1;
    arm_handshake_timer(s);
    s->plain_socket = 0;
    /* The filter moves its output into the socket's buffer until that
     * reaches the socket bufferevent's write high-water mark; without one it
     * takes everything, the output session_process watches stays empty,
     * and a client that never reads could grow us without end. */
    bufferevent_setwatermark(s->bev, EV_WRITE, 0, SMTP_OUTPUT_HIGH_WATER);
    /* Callbacks deferred to the loop: a filter reads and decrypts at once
     * whenever its input drops below the read-ahead bound or reading is
     * enabled, so without it a line taken from the input (or a commit's
     * answer enabling reads) could run on_read or on_event, and free the
     * session, inside the code that is handling it. */
    struct bufferevent *tls =
        bufferevent_openssl_filter_new(s->base, s->bev, SSL_new(s->set->tls_ctx), BUFFEREVENT_SSL_ACCEPTING,
                                       BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!tls) {
        log_warn("cannot start TLS for %s[%s]", s->client_name, s->client_addr);
        smtpd_session_close_after_reply(s);
        return;
    }
    s->bev = tls;
    session_setup_bev(s);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

void smtpd_session_start(struct event_base *base, const struct smtpd_settings *set, int fd,
                        const struct sockaddr *sa, socklen_t salen)
{
    struct smtp_session *s = xcalloc(1, sizeof *s);
    s->base = base;
    s->set = set;
    s->cur_counter = -1;
    s->where = "CONNECT";
    s->state = SS_INIT;
    char port[16] = "";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, s->client_addr, sizeof s->client_addr);
        snprintf(port, sizeof port, "%u", ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, s->client_addr, sizeof s->client_addr);
        snprintf(port, sizeof port, "%u", ntohs(in6->sin6_port));
    } else {
        str_copy(s->client_addr, "127.0.0.1", sizeof s->client_addr);
    }
    (void)salen;
    str_copy(s->client_port, port, sizeof s->client_port);
    s->is_local = cidr_list_match(&set->mynetworks, s->client_addr);
    /* No reverse DNS yet (it comes with the resolver): loopback is
     * "localhost", everything else "unknown", as Postfix writes it. */
    int loop = strcmp(s->client_addr, "::1") == 0 || strncmp(s->client_addr, "127.", 4) == 0;
    str_copy(s->client_name, loop ? "localhost" : "unknown", sizeof s->client_name);

    if (set->tls_wrapper) {
        /* port 465: TLS from the first byte; the greeting waits in the
         * output until the handshake is done */
        s->bev = bufferevent_openssl_socket_new(base, fd, SSL_new(set->tls_ctx), BUFFEREVENT_SSL_ACCEPTING,
                                                BEV_OPT_CLOSE_ON_FREE);
        s->tls_pending = 1;
        arm_handshake_timer(s);
    } else {
        s->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
        s->plain_socket = 1;
    }
    session_setup_bev(s);

    list_append(&sessions, &s->link);
    nsessions++;
    log_info("connect from %s[%s]", s->client_name, s->client_addr);

    char peek;
    if (!set->tls_wrapper && recv(fd, &peek, 1, MSG_PEEK | MSG_DONTWAIT) == 1) {
        log_info("improper command pipelining after CONNECT from %s[%s]", s->client_name, s->client_addr);
        s->pipelining_logged = 1;
    }
    if (smtpd_session_charge_memory(s, SMTPD_SESSION_MEMORY) != 0) {
        log_warn("smtpd_memory_limit reached: refusing %s[%s]", s->client_name, s->client_addr);
        smtpd_session_reply(s, "421 4.3.2 %s Error: too many sessions, try again later", set->myhostname);
        smtpd_session_close_after_reply(s);
        bufferevent_enable(s->bev, EV_WRITE);
        return;
    }
    s->limits_exempt = cidr_list_match(&set->limit_exceptions, s->client_addr);
    if (!s->limits_exempt) {
        struct smtpd_anvil_limits lim = {set->conn_count_limit, set->conn_rate_limit, set->rate_unit};
        int admitted = smtpd_anvil_connect(s->client_addr, &lim, time(NULL));
        if (admitted == ANVIL_OVER_COUNT || admitted == ANVIL_OVER_RATE) {
            log_warn("Connection %s limit exceeded from %s[%s] for service %s",
                     admitted == ANVIL_OVER_COUNT ? "concurrency" : "rate",
                     s->client_name, s->client_addr, set->service);
            smtpd_session_reply(s, "421 4.7.0 %s Error: too many connections from %s", set->myhostname, s->client_addr);
            smtpd_session_close_after_reply(s);
            bufferevent_enable(s->bev, EV_WRITE);
            return;
        }
        s->anvil_counted = 1;
        s->anvil_admitted = admitted;
        /* port 465: refused before the handshake, which is what costs */
        if (set->tls_wrapper && set->tls_rate_limit > 0 &&
            smtpd_anvil_rate_reached(s->client_addr, ANVIL_RATE_TLS, set->tls_rate_limit, set->rate_unit,
                                     time(NULL))) {
            log_warn("Refusing TLS service request from %s[%s] for service %s", s->client_name, s->client_addr,
                     set->service);
            session_free(s);
            return;
        }
    }
    if (set->capture_counters)
        set->capture_counters->sessions++;
    if (set->capture_on && smtpd_capture_session_fails()) {
        if (set->capture_counters)
            set->capture_counters->refused_sessions++;
        log_info("capture: %s[%s]: session refused by capture_session_failure_rate", s->client_name, s->client_addr);
        smtpd_session_reply(s, "421 4.3.2 %s Service not available (capture mode failure rule)", set->myhostname);
        smtpd_session_close_after_reply(s);
        bufferevent_enable(s->bev, EV_WRITE);
        return;
    }
    smtpd_session_reply(s, "220 %s", set->banner);
    /* Writing is enabled from the bufferevent's creation; asking for it
     * again adds the write event with nothing to write, which cost two
     * epoll_ctl calls and a turn of the loop per connection. A plain
     * session sends its replies straight to the socket (smtpd_session_reply)
     * and libevent adds the event when a reply has to wait. The TLS filter
     * is set up as before. */
    bufferevent_enable(s->bev, s->plain_socket ? EV_READ : EV_READ | EV_WRITE);
    smtpd_dns_connect(s);
}

#ifdef TERN_TEST_BUILD
struct smtp_session *smtpd_session_test_start(struct event_base *base, const struct smtpd_settings *set, int fd)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    smtpd_session_start(base, set, fd, (const struct sockaddr *)&sa, sizeof sa);
    return LIST_ITEM(sessions.tail, struct smtp_session, link);   /* the newest */
}

void smtpd_session_test_end(struct smtp_session *s)
{
    session_free(s);
}
#endif

static void session_free(struct smtp_session *s)
{
    free(s->table_wait_arg);
    /* A command cut short by the disconnect (DATA, BDAT) failed, as in Postfix. */
    if (s->cur_counter >= 0) {
        s->cnt_total[s->cur_counter]++;
        s->cur_counter = -1;
    }
    struct strbuf line = STRBUF_INIT;
    unsigned ok = 0, total = 0;
    for (int i = 0; i < CNT_MAX; i++) {
        if (!s->cnt_total[i])
            continue;
        ok += s->cnt_ok[i];
        total += s->cnt_total[i];
        if (s->cnt_ok[i] == s->cnt_total[i])
            strbuf_printf(&line, " %s=%u", counter_names[i], s->cnt_total[i]);
        else
            strbuf_printf(&line, " %s=%u/%u", counter_names[i], s->cnt_ok[i], s->cnt_total[i]);
    }
    /* Postfix's form: "commands=N" when all succeeded, else "commands=ok/total". */
    if (ok == total)
        strbuf_printf(&line, " commands=%u", total);
    else
        strbuf_printf(&line, " commands=%u/%u", ok, total);
    log_info("disconnect from %s[%s]%s", s->client_name, s->client_addr, strbuf_str(&line));
    strbuf_free(&line);
    smtpd_commit_cancel(s); /* nothing pending is fine; a pending one must not call back */
    smtpd_auth_session_end(s);
    smtpd_dns_session_end(s);
    if (s->anvil_counted)
        smtpd_anvil_disconnect(s->client_addr, s->anvil_admitted, time(NULL));
    smtpd_session_reset_transaction(s);
    smtpd_session_uncharge_memory(s, s->memory_charged);
    free(s->helo);
    if (s->error_sleep)
        event_free(s->error_sleep);
    if (s->flush_timer)
        event_free(s->flush_timer);
    if (s->handshake_timer)
        event_free(s->handshake_timer);
    bufferevent_free(s->bev);
    list_remove(&sessions, &s->link);
    nsessions--;
    free(s);
    smtpd_session_closed();
}

void smtpd_session_shutdown_all(void)
{
    for (struct smtp_session *s = LIST_FIRST(&sessions, struct smtp_session, link), *next; s; s = next) {
        next = LIST_NEXT(s, struct smtp_session, link);
        if (s->state == SS_COMMIT || s->closing_after_write)
            continue; /* finishes on its own */
        smtpd_session_reply(s, "421 4.3.2 %s Service shutting down, closing transmission channel",
                      s->set->myhostname);
        if (s->state == SS_AUTH)
            smtpd_auth_session_end(s);
        smtpd_session_reset_transaction(s);
        smtpd_session_close_after_reply(s);
    }
}

unsigned smtpd_session_count(void)
{
    return nsessions;
}
