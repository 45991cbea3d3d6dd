/* smtp_server: one SMTP server session (see smtp_server.h). */
#include "smtp/smtp_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
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
#include "deliver/resolve.h"
#include "msg/cleanup.h"
#include "msg/msg_header.h"
#include "queue/queue_file.h"
#include "queue/queue_id.h"
#include "smtp/smtp_addr.h"
#include "smtp/smtp_cmd.h"
#include "smtp/smtp_data.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/strbuf.h"

/* RFC 5321 4.5.3.1.4/6: a command line is at most 512 octets and a text
 * line 1000; extensions make commands longer, so commands may use the text
 * limit. Anything longer is discarded up to its end: never buffered. */
#define SMTP_MAX_COMMAND_LINE 1000
#define SMTP_INPUT_HIGH_WATER (256 * 1024)
/* A client that pipelines commands but never reads the replies must not make
 * us buffer them without end: above this, commands wait until it has read. */
#define SMTP_OUTPUT_HIGH_WATER (64 * 1024)
#define SMTP_DATA_CHUNK 16384

enum session_state {
    SS_INIT,        /* greeted, no HELO/EHLO yet */
    SS_READY,       /* HELO/EHLO done, no transaction */
    SS_MAIL,        /* MAIL accepted */
    SS_RCPT,        /* at least one RCPT accepted */
    SS_DATA,        /* reading DATA content */
    SS_BDAT,        /* reading the bytes of a BDAT chunk */
    SS_BDAT_WAIT,   /* between BDAT chunks */
    SS_COMMIT,      /* waiting for the queue to make the message durable */
    SS_CLOSING,     /* final reply queued; close once written */
};

#define ST(x) (1u << (x))
#define ST_ANY (ST(SS_INIT) | ST(SS_READY) | ST(SS_MAIL) | ST(SS_RCPT) | ST(SS_BDAT_WAIT))

/* Counters for the Postfix-style disconnect line, in its order. */
enum counter {
    CNT_EHLO, CNT_HELO, CNT_STARTTLS, CNT_AUTH, CNT_MAIL, CNT_RCPT, CNT_BDAT, CNT_DATA, CNT_RSET,
    CNT_NOOP, CNT_VRFY, CNT_EXPN, CNT_HELP, CNT_QUIT, CNT_UNKNOWN, CNT_MAX
};
static const char *counter_names[CNT_MAX] = {"ehlo", "helo", "starttls", "auth", "mail", "rcpt", "bdat",
                                             "data", "rset", "noop", "vrfy", "expn", "help", "quit",
                                             "unknown"};

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
    unsigned cnt_ok[CNT_MAX], cnt_total[CNT_MAX];
    int cur_counter;            /* command awaiting its final reply, or -1 */
    const char *where;          /* last command, for "... after X" log lines (Postfix's names) */
    int discarding_line;        /* an overlong command is being skipped */
    int pipelining_logged;
    struct event *error_sleep;  /* past smtpd_soft_error_limit: a pause after each error */
    int closing_after_write;
    int output_blocked;         /* reading paused until the client reads its replies */

    /* the transaction */
    char id[QUEUE_ID_LEN + 1];
    int have_id;
    struct qf_message env;
    int env_init;
    int smtputf8;
    enum smtp_body body;
    struct qf_writer *writer;
    struct cleanup *cleanup;
    struct smtp_data dec;
    /* BDAT */
    unsigned long long bdat_remaining;
    unsigned long long bdat_chunk_size;
    int bdat_last;
    const char *bdat_error;     /* reply to give once the chunk is read, if any */
    int bdat_started;
};

static struct smtp_session *sessions;
static unsigned nsessions;

static void session_process(struct smtp_session *s);
static void session_free(struct smtp_session *s);

/* ---------- settings ---------- */

void smtpd_settings_load(struct smtpd_settings *s, struct conf *c, const char *service)
{
    memset(s, 0, sizeof *s);
    s->service = xstrdup(service);
    s->myhostname = xstrdup(conf_str(c, "myhostname"));
    s->myorigin = xstrdup(conf_str(c, "myorigin"));
    s->banner = xstrdup(conf_str(c, "smtpd_banner"));
    s->mail_name = xstrdup(conf_str(c, "mail_name"));
    long long lim = conf_int(c, "message_size_limit");
    s->message_size_limit = lim > 0 ? (uint64_t)lim : 0;
    s->recipient_limit = (long)conf_int(c, "smtpd_recipient_limit");
    s->timeout = (long)conf_time(c, "smtpd_timeout");
    s->hard_error_limit = (long)conf_int(c, "smtpd_hard_error_limit");
    s->soft_error_limit = (long)conf_int(c, "smtpd_soft_error_limit");
    s->error_sleep_time = (long)conf_time(c, "smtpd_error_sleep_time");
    s->header_size_limit = (long)conf_int(c, "header_size_limit");
    s->hopcount_limit = (long)conf_int(c, "hopcount_limit");
    s->vrfy_enabled = !conf_bool(c, "disable_vrfy_command");
    s->expn_enabled = !conf_bool(c, "disable_expn_command");
    s->smtputf8 = conf_bool(c, "smtputf8_enable");
    s->require_from = conf_bool(c, "smtpd_require_from_header");
    s->reject_bare_lf = strcmp(conf_str(c, "smtpd_forbid_bare_newline"), "reject") == 0;
    char *bad = NULL;
    if (cidr_list_parse(&s->mynetworks, conf_str(c, "mynetworks"), &bad) > 0) {
        log_warn("mynetworks: ignoring malformed entry \"%s\"", bad);
        free(bad);
    }
}

void smtpd_settings_free(struct smtpd_settings *s)
{
    free(s->service);
    free(s->myhostname);
    free(s->myorigin);
    free(s->banner);
    free(s->mail_name);
    cidr_list_free(&s->mynetworks);
    memset(s, 0, sizeof *s);
}

/* ---------- replies ---------- */

static void count_reply(struct smtp_session *s, int code)
{
    if (code >= 300 && code < 400)
        return; /* intermediate (354, 334): the command is not done yet */
    if (code >= 400)
        s->errors++;
    if (s->cur_counter >= 0) {
        s->cnt_total[s->cur_counter]++;
        if (code < 400)
            s->cnt_ok[s->cur_counter]++;
        s->cur_counter = -1;
    }
}

/* Queues one reply; multi-line replies pass lines separated by '\n'. */
static void reply(struct smtp_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(struct smtp_session *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = xvasprintf(fmt, ap);
    va_end(ap);
    struct evbuffer *out = bufferevent_get_output(s->bev);
    evbuffer_add(out, text, strlen(text));
    evbuffer_add(out, "\r\n", 2);
    count_reply(s, atoi(text));
    free(text);
}

static void close_after_reply(struct smtp_session *s)
{
    s->state = SS_CLOSING;
    s->closing_after_write = 1;
    bufferevent_disable(s->bev, EV_READ);
}

/* A 4xx/5xx reply counts towards the hard error limit. */
static int check_error_limit(struct smtp_session *s)
{
    if (s->state == SS_CLOSING)
        return 1; /* the final reply is already queued: never a second 421 */
    if (s->set->hard_error_limit > 0 && s->errors >= (unsigned)s->set->hard_error_limit) {
        log_info("too many errors after %s from %s[%s]", s->where, s->client_name, s->client_addr);
        reply(s, "421 4.7.0 %s Error: too many errors", s->set->myhostname);
        close_after_reply(s);
        return 1;
    }
    return 0;
}

/* ---------- transaction ---------- */

static void transaction_reset(struct smtp_session *s)
{
    if (s->cleanup) {
        cleanup_free(s->cleanup);
        s->cleanup = NULL;
    }
    if (s->writer) {
        qf_writer_abort(s->writer);
        s->writer = NULL;
    }
    if (s->env_init) {
        qf_message_free(&s->env);
        s->env_init = 0;
    }
    s->have_id = 0;
    s->smtputf8 = 0;
    s->body = SMTP_BODY_NONE;
    s->bdat_started = 0;
    s->bdat_error = NULL;
    if (s->state != SS_INIT && s->state != SS_CLOSING)
        s->state = SS_READY;
}

static const char *client_protocol(const struct smtp_session *s)
{
    if (s->smtputf8)
        return "UTF8SMTP";
    return s->esmtp ? "ESMTP" : "SMTP";
}

/* Opens the queue file and the cleanup stage for the content. */
static int content_begin(struct smtp_session *s, enum smtp_data_mode mode)
{
    if (qf_writer_open(smtpd_incoming_dirfd(), s->id, &s->writer) != 0) {
        int e = errno;
        log_warn("%s: cannot create queue file: %s", s->id, strerror(e));
        s->writer = NULL;
        return e == ENOSPC || e == EDQUOT ? 452 : 451;
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
    };
    s->cleanup = cleanup_new(s->writer, &o);
    free(received);
    smtp_data_init(&s->dec, mode, s->set->reject_bare_lf);
    return 0;
}

static void reply_storage_error(struct smtp_session *s, int code)
{
    if (code == 452)
        reply(s, "452 4.3.1 Insufficient system storage");
    else
        reply(s, "451 4.3.0 Error: queue file write error");
}

static void commit_done(void *arg, int ok, const char *failure)
{
    struct smtp_session *s = arg;
    if (ok) {
        reply(s, "250 2.0.0 Ok: queued as %s", s->id);
        /* the file belongs to the queue now */
    } else {
        reply(s, "%s", failure);
    }
    s->state = SS_READY;
    if (s->env_init) {
        qf_message_free(&s->env);
        s->env_init = 0;
    }
    s->have_id = 0;
    s->smtputf8 = 0;
    s->body = SMTP_BODY_NONE;
    s->bdat_started = 0;
    bufferevent_enable(s->bev, EV_READ);
    /* Not session_process() from here: this runs inside the queue channel's
     * callback (or inside smtpd_commit itself when the queue is down), and
     * the next message's commit must not re-enter it; pipelined input
     * waits for the event loop. */
    if (!check_error_limit(s))
        bufferevent_trigger(s->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/* The content is complete: check it, finish the file, hand it to the queue. */
static void content_end(struct smtp_session *s)
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
        reply(s, "550 5.6.0 Message rejected: %s (RFC 5321 section 2.3.8)", bad_content);
    } else if (res.status == CLEANUP_TOO_BIG) {
        reply(s, "552 5.3.4 Message size exceeds fixed limit");
    } else if (res.status == CLEANUP_HEADER_TOO_BIG) {
        reply(s, "552 5.3.4 Message header size exceeds limit");
    } else if (res.status == CLEANUP_WRITE_ERROR) {
        log_warn("%s: queue file write error: %s", s->id, strerror(res.error_errno));
        reply_storage_error(s, res.error_errno == ENOSPC || res.error_errno == EDQUOT ? 452 : 451);
    } else if (s->set->hopcount_limit > 0 && res.hops > s->set->hopcount_limit) {
        log_info("%s: reject: too many hops (%d) from %s[%s]", s->id, res.hops, s->client_name,
                 s->client_addr);
        reply(s, "554 5.4.6 Too many hops: %d Received: header fields, mail loop?", res.hops);
    } else if (!res.had_from && s->set->require_from && !s->is_local) {
        log_info("%s: reject: message without From: header from %s[%s]", s->id, s->client_name,
                 s->client_addr);
        reply(s, "550 5.7.1 Message rejected: it has no From: header field (RFC 5322 section 3.6)");
    } else {
        refused = 0;
    }
    if (refused) {
        cleanup_result_free(&res);
        transaction_reset(s);
        check_error_limit(s);
        return;
    }

    qf_message_set_attr(&s->env, "client_name", s->client_name);
    qf_message_set_attr(&s->env, "client_address", s->client_addr);
    if (s->helo)
        qf_message_set_attr(&s->env, "helo_name", s->helo);
    qf_message_set_attr(&s->env, "protocol", client_protocol(s));
    qf_message_set_attr(&s->env, "origin", "smtp");
    qf_message_set_attr(&s->env, "service", s->set->service);
    if (s->body == SMTP_BODY_8BITMIME || res.has_8bit)
        qf_message_set_attr(&s->env, "body", s->body == SMTP_BODY_8BITMIME ? "8BITMIME" : "8BIT");
    if (s->smtputf8)
        qf_message_set_attr(&s->env, "smtputf8", "1");
    if (res.message_id)
        qf_message_set_attr(&s->env, "message_id", res.message_id);
    if (qf_writer_finish(s->writer, &s->env) != 0) {
        int e = errno;
        s->writer = NULL;
        log_warn("%s: queue file write error: %s", s->id, strerror(e));
        reply_storage_error(s, e == ENOSPC || e == EDQUOT ? 452 : 451);
        cleanup_result_free(&res);
        transaction_reset(s);
        check_error_limit(s);
        return;
    }
    s->writer = NULL;
    if (res.message_id)
        log_info("%s: message-id=<%s>", s->id, res.message_id);
    cleanup_result_free(&res);
    s->state = SS_COMMIT;
    bufferevent_disable(s->bev, EV_READ);
    smtpd_commit(s->id, commit_done, s);
}

/* ---------- commands ---------- */

static void cmd_helo_common(struct smtp_session *s, const char *arg, int esmtp)
{
    arg += strspn(arg, " \t");
    if (!*arg) {
        reply(s, "501 5.5.4 Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
        return;
    }
    transaction_reset(s);
    free(s->helo);
    size_t len = strcspn(arg, " \t");
    s->helo = xstrndup(arg, len > 255 ? 255 : len);
    s->esmtp = esmtp;
    s->state = SS_READY;
    memset(&s->ext, 0, sizeof s->ext);
    if (!esmtp) {
        reply(s, "250 %s", s->set->myhostname);
        return;
    }
    s->ext.esmtp = 1;
    s->ext.size = 1;
    s->ext.eightbit = 1;
    s->ext.chunking = 1;
    s->ext.smtputf8 = s->set->smtputf8;
    struct strbuf r = STRBUF_INIT;
    sb_printf(&r, "250-%s\r\n250-PIPELINING\r\n", s->set->myhostname);
    if (s->set->message_size_limit)
        sb_printf(&r, "250-SIZE %llu\r\n", (unsigned long long)s->set->message_size_limit);
    else
        sb_puts(&r, "250-SIZE\r\n");
    if (s->set->vrfy_enabled)
        sb_puts(&r, "250-VRFY\r\n");
    sb_puts(&r, "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n");
    if (s->set->smtputf8)
        sb_puts(&r, "250-SMTPUTF8\r\n");
    sb_puts(&r, "250 CHUNKING");
    reply(s, "%s", r.buf);
    sb_free(&r);
}

static void cmd_ehlo(struct smtp_session *s, const char *arg) { cmd_helo_common(s, arg, 1); }
static void cmd_helo(struct smtp_session *s, const char *arg) { cmd_helo_common(s, arg, 0); }

static void cmd_mail(struct smtp_session *s, const char *arg)
{
    if (s->state == SS_INIT) {
        reply(s, "503 5.5.1 Error: send HELO/EHLO first");
        return;
    }
    if (s->state != SS_READY) {
        reply(s, "503 5.5.1 Error: nested MAIL command");
        return;
    }
    struct smtp_mail_args a;
    struct smtp_reply_err err;
    if (smtp_parse_mail(arg, &s->ext, &a, &err) != 0) {
        reply(s, "%d %s %s", err.code, err.enh, err.text);
        return;
    }
    if (a.size >= 0 && s->set->message_size_limit && (uint64_t)a.size > s->set->message_size_limit) {
        reply(s, "552 5.3.4 Message size exceeds fixed limit");
        smtp_mail_args_free(&a);
        return;
    }
    queue_id_new(s->id);
    s->have_id = 1;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    qf_message_init(&s->env, s->id, (int64_t)tv.tv_sec * 1000000 + tv.tv_usec, a.path.mailbox);
    s->env_init = 1;
    s->smtputf8 = a.smtputf8;
    s->body = a.body;
    s->state = SS_MAIL;
    log_info("%s: client=%s[%s]", s->id, s->client_name, s->client_addr);
    smtp_mail_args_free(&a);
    reply(s, "250 2.1.0 Ok");
}

static void cmd_rcpt(struct smtp_session *s, const char *arg)
{
    if (s->state != SS_MAIL && s->state != SS_RCPT) {
        reply(s, "503 5.5.1 Error: need MAIL command");
        return;
    }
    struct smtp_ext ext = s->ext;
    ext.smtputf8 = s->ext.smtputf8 && s->smtputf8;
    struct smtp_rcpt_args a;
    struct smtp_reply_err err;
    if (smtp_parse_rcpt(arg, &ext, &a, &err) != 0) {
        reply(s, "%d %s %s", err.code, err.enh, err.text);
        return;
    }
    /* <postmaster> (RFC 5321 4.1.1.3) is our postmaster: qualified with
     * myhostname, which is always one of our names. */
    char *qualified = NULL;
    if (!a.path.domain && !a.path.is_null)
        qualified = xasprintf("postmaster@%s", s->set->myhostname);
    const char *addr = qualified ? qualified : a.path.mailbox;
    struct resolver *res = smtpd_resolver();
    if (s->set->recipient_limit > 0 && s->env.nrcpt >= (size_t)s->set->recipient_limit) {
        reply(s, "452 4.5.3 Error: too many recipients");
    } else if (resolver_class(res, addr) == RESOLVE_LOCAL) {
        switch (resolver_check_local(res, addr)) {
        case RESOLVE_OK:
            goto accept;
        case RESOLVE_UNKNOWN:
            log_info("%s: reject: RCPT from %s[%s]: 550 5.1.1 <%s>: Recipient address rejected: "
                     "User unknown in local recipient table; from=<%s> to=<%s>",
                     s->id, s->client_name, s->client_addr, addr, s->env.sender, addr);
            reply(s, "550 5.1.1 <%s>: Recipient address rejected: User unknown in local recipient table",
                  addr);
            break;
        case RESOLVE_TEMPFAIL:
            reply(s, "451 4.3.0 <%s>: Temporary lookup failure", addr);
            break;
        }
    } else if (s->is_local) {
        goto accept;
    } else {
        log_info("%s: reject: RCPT from %s[%s]: 554 5.7.1 <%s>: Relay access denied; from=<%s> to=<%s>",
                 s->id, s->client_name, s->client_addr, addr, s->env.sender, addr);
        reply(s, "554 5.7.1 <%s>: Relay access denied", addr);
    }
    goto out;
accept:;
    /* A repeated recipient is acknowledged but delivered once. */
    int repeated = 0;
    for (size_t i = 0; i < s->env.nrcpt && !repeated; i++)
        repeated = strcmp(s->env.rcpts[i].addr, addr) == 0;
    if (!repeated) {
        qf_message_add_rcpt(&s->env, addr, a.orcpt ? a.orcpt : "", a.notify, -1);
        s->state = SS_RCPT;
    }
    reply(s, "250 2.1.5 Ok");
out:
    smtp_rcpt_args_free(&a);
    free(qualified);
}

static void discard_pipelined_input(struct smtp_session *s, const char *after)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    size_t pending = evbuffer_get_length(in);
    if (!pending)
        return;
    log_info("improper command pipelining after %s from %s[%s]: %zu bytes discarded", after,
             s->client_name, s->client_addr, pending);
    s->pipelining_logged = 1;
    evbuffer_drain(in, pending);
}

static void cmd_data(struct smtp_session *s, const char *arg)
{
    if (s->state == SS_BDAT_WAIT) {
        reply(s, "503 5.5.1 Error: DATA during a BDAT transfer");
    } else if (s->state != SS_RCPT) {
        reply(s, s->state == SS_MAIL ? "503 5.5.1 Error: need RCPT command"
                                     : "503 5.5.1 Error: need MAIL command");
    } else if (*arg) {
        reply(s, "501 5.5.4 Syntax: DATA");
    } else {
        int rc = content_begin(s, SMTP_DATA_DOT);
        if (rc) {
            reply_storage_error(s, rc);
            discard_pipelined_input(s, "DATA");
            return;
        }
        s->state = SS_DATA;
        reply(s, "354 End data with <CR><LF>.<CR><LF>");
        return;
    }
    /* Whatever the client sent after a refused DATA is message text, not
     * commands: never execute it. */
    discard_pipelined_input(s, "DATA");
}

static void cmd_bdat(struct smtp_session *s, const char *arg)
{
    unsigned long long size;
    int last;
    if (smtp_parse_bdat(arg, &size, &last) != 0) {
        /* Without a valid size the chunk cannot be skipped: the session
         * cannot be resynchronised. */
        reply(s, "501 5.5.4 Syntax: BDAT chunk-size [LAST]");
        reply(s, "421 4.7.0 %s Error: cannot recover from a malformed BDAT", s->set->myhostname);
        close_after_reply(s);
        return;
    }
    s->bdat_remaining = size;
    s->bdat_chunk_size = size;
    s->bdat_last = last;
    s->bdat_error = NULL;
    if (!s->esmtp) {
        s->bdat_error = "503 5.5.1 Error: send EHLO first";
    } else if (s->state == SS_MAIL) {
        s->bdat_error = "503 5.5.1 Error: need RCPT command";
    } else if (s->state != SS_RCPT && s->state != SS_BDAT_WAIT) {
        s->bdat_error = "503 5.5.1 Error: need MAIL command";
    } else if (!s->bdat_started) {
        int rc = content_begin(s, SMTP_DATA_BDAT);
        if (rc)
            s->bdat_error = rc == 452 ? "452 4.3.1 Insufficient system storage"
                                      : "451 4.3.0 Error: queue file write error";
        else
            s->bdat_started = 1;
    }
    s->state = SS_BDAT;
}

static void cmd_rset(struct smtp_session *s, const char *arg)
{
    (void)arg;
    transaction_reset(s);
    reply(s, "250 2.0.0 Ok");
}

static void cmd_noop(struct smtp_session *s, const char *arg)
{
    (void)arg;
    reply(s, "250 2.0.0 Ok");
}

static void cmd_quit(struct smtp_session *s, const char *arg)
{
    (void)arg;
    reply(s, "221 2.0.0 Bye");
    transaction_reset(s);
    close_after_reply(s);
}

/* VRFY and EXPN: an address, with or without angle brackets. */
static char *verify_target(const char *arg)
{
    char *t = xstrdup(arg);
    str_trim(t);
    size_t len = strlen(t);
    if (len >= 2 && t[0] == '<' && t[len - 1] == '>') {
        memmove(t, t + 1, len - 2);
        t[len - 2] = '\0';
    }
    return t;
}

static void cmd_vrfy_expn(struct smtp_session *s, const char *arg, int enabled)
{
    if (!*arg) {
        reply(s, "501 5.5.4 Syntax: VRFY address");
        return;
    }
    if (!enabled) {
        reply(s, "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
        return;
    }
    char *t = verify_target(arg);
    struct resolver *res = smtpd_resolver();
    if (!*t || strchr(t, '\r') || strchr(t, '\n')) {
        reply(s, "501 5.1.3 Bad recipient address syntax");
    } else if (resolver_class(res, t) != RESOLVE_LOCAL) {
        reply(s, "252 2.0.0 <%s>: not a local address, will attempt delivery", t);
    } else {
        switch (resolver_check_local(res, t)) {
        case RESOLVE_OK:
            reply(s, "250 2.0.0 <%s>", t);
            break;
        case RESOLVE_UNKNOWN:
            reply(s, "550 5.1.1 <%s>: Recipient address rejected: User unknown in local recipient table", t);
            break;
        case RESOLVE_TEMPFAIL:
            reply(s, "451 4.3.0 <%s>: Temporary lookup failure", t);
            break;
        }
    }
    free(t);
}

static void cmd_vrfy(struct smtp_session *s, const char *arg) { cmd_vrfy_expn(s, arg, s->set->vrfy_enabled); }
static void cmd_expn(struct smtp_session *s, const char *arg) { cmd_vrfy_expn(s, arg, s->set->expn_enabled); }

static void cmd_help(struct smtp_session *s, const char *arg)
{
    (void)arg;
    reply(s, "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY EXPN HELP");
}

static void cmd_not_implemented(struct smtp_session *s, const char *arg)
{
    (void)arg;
    reply(s, "502 5.5.1 Error: command not implemented");
}

struct command {
    enum smtp_verb verb;
    unsigned states;     /* where the command may appear */
    enum counter counter;
    int ends_group;      /* RFC 2920: must be the last command of a pipelined group */
    void (*handler)(struct smtp_session *s, const char *arg);
};

static const struct command commands[] = {
    {SMTP_EHLO, ST_ANY, CNT_EHLO, 1, cmd_ehlo},
    {SMTP_HELO, ST_ANY, CNT_HELO, 1, cmd_helo},
    {SMTP_MAIL, ST_ANY, CNT_MAIL, 0, cmd_mail},
    {SMTP_RCPT, ST_ANY, CNT_RCPT, 0, cmd_rcpt},
    {SMTP_DATA, ST_ANY, CNT_DATA, 1, cmd_data},
    {SMTP_BDAT, ST_ANY, CNT_BDAT, 0, cmd_bdat},
    {SMTP_RSET, ST_ANY, CNT_RSET, 0, cmd_rset},
    {SMTP_NOOP, ST_ANY, CNT_NOOP, 1, cmd_noop},
    {SMTP_QUIT, ST_ANY, CNT_QUIT, 1, cmd_quit},
    {SMTP_VRFY, ST_ANY, CNT_VRFY, 1, cmd_vrfy},
    {SMTP_EXPN, ST_ANY, CNT_EXPN, 1, cmd_expn},
    {SMTP_HELP, ST_ANY, CNT_HELP, 0, cmd_help},
    {SMTP_STARTTLS, ST_ANY, CNT_STARTTLS, 1, cmd_not_implemented},
    {SMTP_AUTH, ST_ANY, CNT_AUTH, 0, cmd_not_implemented},
};

static const char *verb_name(const struct smtp_cmd *c)
{
    return c->verb_text[0] ? c->verb_text : "command";
}

static void handle_command(struct smtp_session *s, const char *line, size_t len)
{
    struct smtp_cmd cmd;
    s->where = "UNKNOWN";
    if (smtp_cmd_parse(line, len, &cmd) != 0) {
        s->cur_counter = CNT_UNKNOWN;
        reply(s, "500 5.5.2 Error: bad syntax");
        return;
    }
    const struct command *c = NULL;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (commands[i].verb == cmd.verb)
            c = &commands[i];
    if (!c) {
        s->cur_counter = CNT_UNKNOWN;
        reply(s, "500 5.5.2 Error: command not recognized");
        return;
    }
    s->cur_counter = (int)c->counter;
    s->where = smtp_verb_name(c->verb);
    if (s->state == SS_BDAT_WAIT && c->verb != SMTP_BDAT && c->verb != SMTP_RSET &&
        c->verb != SMTP_QUIT && c->verb != SMTP_NOOP) {
        /* RFC 3030: a BDAT transfer is ended by BDAT LAST or RSET. */
        transaction_reset(s);
        reply(s, "503 5.5.1 Error: %s during a BDAT transfer; transaction aborted", verb_name(&cmd));
        /* as after any refused DATA, what follows it is text, not commands */
        if (c->verb == SMTP_DATA)
            discard_pipelined_input(s, "DATA");
        return;
    }
    if (!(c->states & ST(s->state))) {
        reply(s, "503 5.5.1 Error: bad sequence of commands");
        return;
    }
    c->handler(s, cmd.arg);
    if (c->ends_group && s->state != SS_DATA && s->state != SS_CLOSING && !s->pipelining_logged &&
        evbuffer_get_length(bufferevent_get_input(s->bev)) > 0) {
        log_info("improper command pipelining after %s from %s[%s]", verb_name(&cmd), s->client_name,
                 s->client_addr);
        s->pipelining_logged = 1;
    }
}

/* ---------- input ---------- */

/* Reads DATA content from the input buffer. Returns 1 if the content ended. */
static int read_dot_data(struct smtp_session *s)
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

/* Reads the bytes of the current BDAT chunk. Returns 1 when the chunk is complete. */
static int read_bdat_chunk(struct smtp_session *s)
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

static void bdat_chunk_done(struct smtp_session *s, unsigned long long chunk_size)
{
    if (s->bdat_error) {
        const char *r = s->bdat_error;
        s->bdat_error = NULL;
        enum session_state back = s->have_id ? (s->env.nrcpt ? SS_RCPT : SS_MAIL)
                                             : (s->helo ? SS_READY : SS_INIT);
        s->state = back;
        reply(s, "%s", r);
        return;
    }
    if (!s->bdat_last) {
        s->state = SS_BDAT_WAIT;
        reply(s, "250 2.0.0 Ok: %llu bytes", chunk_size);
        return;
    }
    content_end(s);
}

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
        reply(s, "500 5.5.2 Error: command line too long");
        return 1;
    }
    char line[SMTP_MAX_COMMAND_LINE + 1];
    evbuffer_remove(in, line, len);
    evbuffer_drain(in, eol_len);
    if (len > 0 && line[len - 1] == '\r')
        len--;
    line[len] = '\0';
    handle_command(s, line, len);
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

static void session_process(struct smtp_session *s)
{
    for (;;) {
        if (s->state == SS_CLOSING || s->state == SS_COMMIT)
            return;
        if (s->state == SS_DATA) {
            if (!read_dot_data(s))
                return;
            content_end(s);
            continue;
        }
        if (s->state == SS_BDAT) {
            if (!read_bdat_chunk(s))
                return;
            bdat_chunk_done(s, s->bdat_chunk_size);
            continue;
        }
        if (evbuffer_get_length(bufferevent_get_output(s->bev)) > SMTP_OUTPUT_HIGH_WATER) {
            s->output_blocked = 1;
            bufferevent_disable(s->bev, EV_READ);
            return;
        }
        unsigned errors_before = s->errors;
        if (!read_command_line(s))
            return;
        if (check_error_limit(s))
            return;
        if (s->errors > errors_before && pause_after_error(s))
            return;
    }
}

/* ---------- events ---------- */

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    session_process(arg);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct smtp_session *s = arg;
    if (s->closing_after_write && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        session_free(s);
        return;
    }
    if (s->output_blocked && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        s->output_blocked = 0;
        bufferevent_enable(s->bev, EV_READ);
        session_process(s);
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct smtp_session *s = arg;
    if (what & BEV_EVENT_TIMEOUT) {
        log_info("timeout after %s from %s[%s]", s->where, s->client_name, s->client_addr);
        if (!s->closing_after_write) {
            reply(s, "421 4.4.2 %s Error: timeout exceeded", s->set->myhostname);
            transaction_reset(s);
            close_after_reply(s);
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

void smtp_session_start(struct event_base *base, const struct smtpd_settings *set, int fd,
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

    s->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(s->bev, on_read, on_write, on_event, s);
    bufferevent_setwatermark(s->bev, EV_READ, 0, SMTP_INPUT_HIGH_WATER);
    struct timeval tv = {set->timeout > 0 ? set->timeout : 300, 0};
    bufferevent_set_timeouts(s->bev, &tv, &tv);

    s->next = sessions;
    if (sessions)
        sessions->prev = s;
    sessions = s;
    nsessions++;
    log_info("connect from %s[%s]", s->client_name, s->client_addr);

    char peek;
    if (recv(fd, &peek, 1, MSG_PEEK | MSG_DONTWAIT) == 1) {
        log_info("improper command pipelining after CONNECT from %s[%s]", s->client_name, s->client_addr);
        s->pipelining_logged = 1;
    }
    reply(s, "220 %s", set->banner);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

static void session_free(struct smtp_session *s)
{
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
            sb_printf(&line, " %s=%u", counter_names[i], s->cnt_total[i]);
        else
            sb_printf(&line, " %s=%u/%u", counter_names[i], s->cnt_ok[i], s->cnt_total[i]);
    }
    /* Postfix's form: "commands=N" when all succeeded, else "commands=ok/total". */
    if (ok == total)
        sb_printf(&line, " commands=%u", total);
    else
        sb_printf(&line, " commands=%u/%u", ok, total);
    log_info("disconnect from %s[%s]%s", s->client_name, s->client_addr, sb_str(&line));
    sb_free(&line);
    if (s->state == SS_COMMIT)
        smtpd_commit_cancel(s);
    transaction_reset(s);
    free(s->helo);
    if (s->error_sleep)
        event_free(s->error_sleep);
    bufferevent_free(s->bev);
    if (s->prev)
        s->prev->next = s->next;
    else
        sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    nsessions--;
    free(s);
    smtpd_session_closed();
}

void smtp_sessions_shutdown(void)
{
    for (struct smtp_session *s = sessions, *next; s; s = next) {
        next = s->next;
        if (s->state == SS_COMMIT || s->closing_after_write)
            continue; /* finishes on its own */
        reply(s, "421 4.3.2 %s Service shutting down, closing transmission channel", s->set->myhostname);
        transaction_reset(s);
        close_after_reply(s);
    }
}

unsigned smtp_sessions_count(void)
{
    return nsessions;
}
