/* smtpd_cmd: the SMTP commands of a session. The table at the end is the
 * rulebook: for each verb the states in which it is allowed, the reply it
 * gets in each of the others, whether it may come before TLS where TLS is
 * required or between BDAT chunks, whether it ends a pipelined group or
 * counts as junk, and its handler (struct smtpd_command and the order of
 * the checks: smtpd_session_internal.h). smtpd_cmd_handle_line enforces
 * it, so the handlers below start where the command is allowed. DATA and
 * BDAT start the content, which smtpd_content.c reads and finishes. */
#include "smtpd/smtpd_session_internal.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "maps/resolver.h"
#include "smtp/smtp_addr.h"
#include "smtpd/smtpd_anvil.h"
#include "smtpd/smtpd_capture.h"
#include "smtpd/smtpd_mailauth.h"
#include "smtpd/smtpd_policy.h"
#include "maps/map.h"
#include "spool/storage_reply.h"
#include "tls/tls.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

static void cmd_helo_common(struct smtp_session *s, const char *arg, int esmtp)
{
    arg += strspn(arg, " \t");
    if (!*arg) {
        smtpd_session_reply(s, "501 5.5.4 Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
        return;
    }
    smtpd_session_reset_transaction(s);
    free(s->helo);
    size_t len = strcspn(arg, " \t");
    s->helo = xstrndup(arg, len > 255 ? 255 : len);
    s->esmtp = esmtp;
    s->state = SS_READY;
    memset(&s->ext, 0, sizeof s->ext);
    if (!esmtp) {
        smtpd_session_reply(s, "250 %s", s->set->myhostname);
        return;
    }
    s->ext.esmtp = 1;
    s->ext.size = 1;
    s->ext.eightbit = 1;
    s->ext.chunking = 1;
    s->ext.dsn = 1;
    s->ext.smtputf8 = s->set->smtputf8;
    struct strbuf r = STRBUF_INIT;
    strbuf_printf(&r, "250-%s\r\n250-PIPELINING\r\n", s->set->myhostname);
    if (s->set->message_size_limit)
        strbuf_printf(&r, "250-SIZE %llu\r\n", (unsigned long long)s->set->message_size_limit);
    else
        strbuf_puts(&r, "250-SIZE\r\n");
    if (s->set->vrfy_enabled)
        strbuf_puts(&r, "250-VRFY\r\n");
    strbuf_puts(&r, "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n");
    if (s->set->smtputf8)
        strbuf_puts(&r, "250-SMTPUTF8\r\n");
    if (s->set->tls_level != TLS_LEVEL_NONE && !s->tls)
        strbuf_puts(&r, "250-STARTTLS\r\n");
    if (smtpd_auth_offered(s))
        strbuf_puts(&r, "250-AUTH PLAIN LOGIN\r\n");
    strbuf_puts(&r, "250 CHUNKING");
    smtpd_session_reply(s, "%s", r.buf);
    strbuf_free(&r);
}

static void cmd_ehlo(struct smtp_session *s, const char *arg) { cmd_helo_common(s, arg, 1); }
static void cmd_helo(struct smtp_session *s, const char *arg) { cmd_helo_common(s, arg, 0); }

static void cmd_mail(struct smtp_session *s, const char *arg)
{
    struct smtp_mail_args a;
    struct smtp_reply_err err;
    if (smtp_parse_mail(arg, &s->ext, &a, &err) != 0) {
        smtpd_session_reply(s, "%d %s %s", err.code, err.enh, err.text);
        return;
    }
    if (a.size >= 0 && s->set->message_size_limit && (uint64_t)a.size > s->set->message_size_limit) {
        smtpd_session_reply(s, "552 5.3.4 Message size exceeds fixed limit");
        smtp_mail_args_free(&a);
        return;
    }
    if (smtpd_session_storage_short(s, a.size) == 1) {
        log_warn("%s[%s]: not enough free space in the queue file system (queue_minfree, message_size_limit)",
                 s->client_name, s->client_addr);
        smtpd_session_reply(s, "452 4.3.1 Insufficient system storage");
        smtp_mail_args_free(&a);
        return;
    }
    if (smtpd_session_over_client_rate(s, ANVIL_RATE_MSG)) {
        smtpd_session_reply(s, "450 4.7.1 Error: too much mail from %s", s->client_addr);
        smtp_mail_args_free(&a);
        return;
    }
    queue_id_new(s->id);
    s->have_id = 1;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    queue_file_message_init(&s->env, s->id, (int64_t)tv.tv_sec * 1000000 + tv.tv_usec, a.path.mailbox);
    s->env_init = 1;
    /* RFC 3461: what to return in a notice, and the sender's envelope id */
    if (a.ret)
        queue_file_message_set_attr(&s->env, "ret", a.ret);
    if (a.envid)
        queue_file_message_set_attr(&s->env, "envid", a.envid);
    s->smtputf8 = a.smtputf8;
    s->body = a.body;
    s->state = SS_MAIL;
    smtpd_dns_mail(s, a.path.mailbox);
    smtpd_mailauth_mail(s, a.path.mailbox);
    if (s->sasl_user)
        log_info("%s: client=%s[%s], sasl_method=%s, sasl_username=%s", s->id, s->client_name, s->client_addr,
                 s->sasl_method, s->sasl_user);
    else
        log_info("%s: client=%s[%s]", s->id, s->client_name, s->client_addr);
    smtp_mail_args_free(&a);
    smtpd_session_reply(s, "250 2.1.0 Ok");
}

static int policy_local_domain(void *arg, const char *domain)
{
    (void)arg;
    return resolver_is_our_domain(smtpd_resolver(), domain);
}

static int policy_relay_domain(void *arg, const char *domain)
{
    (void)arg;
    return resolver_is_relay_domain(smtpd_resolver(), domain);
}

/* The reply code for an unknown address of the class whose table
 * resolver_check_recipient named: unknown_*_reject_code. */
static int unknown_code(const struct smtpd_settings *set, const char *table)
{
    if (strcmp(table, "virtual alias table") == 0)
        return set->unknown_virtual_alias_code;
    if (strcmp(table, "virtual mailbox table") == 0)
        return set->unknown_virtual_mailbox_code;
    if (strcmp(table, "relay recipient table") == 0)
        return set->unknown_relay_code;
    return set->unknown_local_code;
}

/* "550 5.1.1", or "450 4.1.1" with a 450 code: the enhanced code's class
 * follows the reply code. */
static void reply_unknown_recipient(struct smtp_session *s, const char *addr, const char *table)
{
    int code = unknown_code(s->set, table);
    smtpd_session_reply(s, "%d %d.1.1 <%s>: Recipient address rejected: User unknown in %s", code, code / 100,
                        addr, table);
}

static int policy_rcpt_exists(void *arg, const char *addr, const char **table, int *code)
{
    struct smtp_session *s = arg;
    switch (resolver_check_recipient(smtpd_resolver(), addr, table)) {
    case RESOLVE_OK: return 1;
    case RESOLVE_UNKNOWN:
        *code = unknown_code(s->set, *table);
        return 0;
    default: return -1;
    }
}

/* smtpd_sender_login_maps: the address, then "@domain"; owners separated
 * by commas or blanks. With login: 1 if it owns sender (or tern's password
 * file lists sender for it); without: 1 if nobody owns sender. */
static int policy_sender_owned(void *arg, const char *sender, const char *login)
{
    struct smtp_session *s = arg;
    if (login && smtpd_auth_user_lists_address(s, sender))
        return 1;
    char *value = NULL;
    int rc = 0;
    if (s->set->sender_login_maps) {
        char *key = xstrdup(sender);
        str_lower(key);
        rc = map_list_lookup(s->set->sender_login_maps, key, &value);
        const char *at = strrchr(key, '@');
        if (rc == 0 && at)
            rc = map_list_lookup_partial(s->set->sender_login_maps, at, &value);
        free(key);
    }
    if (rc < 0)
        return -1;
    if (rc == 0) {
        free(value);
        return login ? 0 : 1;
    }
    int owned = 0;
    if (login) {
        char *save = NULL;
        for (char *w = strtok_r(value, ", \t", &save); w && !owned; w = strtok_r(NULL, ", \t", &save))
            owned = strcmp(w, login) == 0;
    }
    free(value);
    return login ? owned : 0;
}

static struct smtpd_policy_ctx policy_ctx_all(struct smtp_session *s, const char *rcpt);

/* capture = yes: any domain is ours, every recipient exists; the
 * restriction lists still run, so access tables can give the failures a
 * test wants (452 4.2.2, 550 5.1.1 ...). */
static int capture_any_domain(void *arg, const char *domain)
{
    (void)arg;
    (void)domain;
    return 1;
}

static struct smtpd_policy_ctx policy_ctx(struct smtp_session *s, const char *rcpt)
{
    if (s->set->capture_all) {
        struct smtpd_policy_ctx c = policy_ctx_all(s, rcpt);
        c.is_local_domain = capture_any_domain;
        c.recipient_exists = NULL;
        return c;
    }
    return policy_ctx_all(s, rcpt);
}

static struct smtpd_policy_ctx policy_ctx_all(struct smtp_session *s, const char *rcpt)
{
    return (struct smtpd_policy_ctx){
        .client_addr = s->client_addr,
        .client_name = s->client_name,
        .helo = s->helo,
        .sender = s->env.sender,
        .recipient = rcpt,
        .mynetworks = s->is_local,
        .authenticated = s->sasl_user != NULL,
        .is_local_domain = policy_local_domain,
        .is_relay_domain = policy_relay_domain,
        .recipient_exists = policy_rcpt_exists,
        .reject_unlisted_sender = s->set->reject_unlisted_sender,
        .sender_owned = policy_sender_owned,
        .rbl_listed = smtpd_dns_rbl_listed,
        .sender_domain = smtpd_dns_sender_domain,
        .spf_result = smtpd_mailauth_spf_result,
        .dmarc_policy = smtpd_mailauth_dmarc_policy,
        .login = s->sasl_user,
        .arg = s,
    };
}

/* The restriction lists (smtpd_policy), all evaluated at RCPT time as
 * Postfix does with smtpd_delay_reject = yes. 0: go on. */
static int check_policy(struct smtp_session *s, const char *rcpt, struct smtpd_policy_result *r)
{
    struct smtpd_policy_ctx c = policy_ctx(s, rcpt);
    return smtpd_policy_check_rcpt(s->set->policy, &c, r);
}

int smtpd_cmd_check_end_of_data(struct smtp_session *s, struct smtpd_policy_result *r)
{
    memset(r, 0, sizeof *r);
    if (!s->set->policy || !s->set->policy_end_of_data)
        return 0;
    struct smtpd_policy_ctx c = policy_ctx(s, NULL);
    return smtpd_policy_check_end_of_data(s->set->policy, &c, r);
}

/* Text from a table, as it may go into a reply line and the log: controls
 * become '?', and it is cut so the reply stays within 512 octets. */
static char *reply_text_from_table(const char *text)
{
    char *t = xstrndup(text, 300);
    for (char *p = t; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return t;
}

/* A transport_maps "error:" entry refuses the recipient here, as Postfix
 * does, with the entry's status (5.1.1 when it has none) and text; the
 * queue would only bounce it later. 1 when a reply was sent. */
static int refuse_error_transport(struct smtp_session *s, struct resolver *res, const char *addr)
{
    char *value = NULL;
    int rc = resolver_transport(res, addr, &value);
    if (rc < 0) {
        smtpd_session_reply(s, "451 4.3.0 <%s>: Temporary lookup failure", addr);
        return 1;
    }
    char status[16];
    const char *text;
    if (rc == 0 || !resolver_error_transport(value, "5.1.1", status, &text)) {
        free(value);
        return 0;
    }
    char *shown = reply_text_from_table(text);
    log_info("%s: reject: RCPT from %s[%s]: 550 %s <%s>: Recipient address rejected: %s; from=<%s> to=<%s> "
             "proto=%s helo=<%s>",
             s->id, s->client_name, s->client_addr, status, addr, shown, s->env.sender, addr,
             s->esmtp ? "ESMTP" : "SMTP", s->helo ? s->helo : "");
    smtpd_session_reply(s, "550 %s <%s>: Recipient address rejected: %s", status, addr, shown);
    free(shown);
    free(value);
    return 1;
}

static void cmd_rcpt(struct smtp_session *s, const char *arg);

/* capture mode: a recipient rule of the capture API ("452 4.2.2 Mailbox
 * full"); 1 when it answered. The table's text is the admin's (the API
 * checked its form); the address is the client's, made printable. */
static int capture_rule_refuses(struct smtp_session *s, const char *addr)
{
    char *reply = smtpd_capture_rcpt_reply(addr);
    if (!reply)
        return 0;
    int code = atoi(reply);
    const char *rest = reply + strspn(reply, "0123456789");
    rest += strspn(rest, " ");
    const char *text = rest + strcspn(rest, " ");
    text += strspn(text, " ");
    char enh[16];
    size_t enh_len = strcspn(rest, " ");
    if (code < 400 || code > 599 || enh_len == 0 || enh_len >= sizeof enh || rest[0] != reply[0]) {
        log_warn("capture: recipient rule result \"%s\" is not \"CODE X.Y.Z text\"; ignored", reply);
        free(reply);
        return 0;
    }
    memcpy(enh, rest, enh_len);
    enh[enh_len] = 0;
    log_info("%s: capture rule: RCPT from %s[%s]: %d %s <%s>: %s", s->id, s->client_name, s->client_addr, code,
             enh, addr, text);
    smtpd_session_reply(s, "%d %s <%s>: Recipient address rejected: %s", code, enh, addr, text);
    free(reply);
    return 1;
}

/* Asynchronous tables (pgsql:) answer later: a dry run of what RCPT will
 * ask (the restrictions, transport_maps, the recipient check) starts their
 * lookups; when any answer was missing the command waits, reading nothing
 * more, and runs again once the answers are in (a chain of lookups may take
 * a few rounds; after SMTPD_TABLE_ROUNDS a missing answer is a temporary
 * failure, 451). 1 when it waits. */
static int rcpt_waits_for_tables(struct smtp_session *s, const char *addr, const char *arg)
{
    if (!map_async_in_use() || s->table_rounds >= SMTPD_TABLE_ROUNDS)
        return 0;
    unsigned long before = map_pending_count();
    struct smtpd_policy_result pr;
    if (!s->set->policy_broken && s->set->policy)
        (void)check_policy(s, addr, &pr);
    char *value = NULL;
    (void)resolver_transport(smtpd_resolver(), addr, &value);
    free(value);
    const char *table;
    (void)resolver_check_recipient(smtpd_resolver(), addr, &table);
    if (map_pending_count() == before)
        return 0;
    s->table_rounds++;
    s->table_wait_arg = xstrdup(arg);
    return 1;
}

void smtpd_cmd_table_retry(struct smtp_session *s)
{
    char *arg = s->table_wait_arg;
    s->table_wait_arg = NULL;
    cmd_rcpt(s, arg);
    free(arg);
    if (!s->table_wait_arg)
        smtpd_session_resume(s);   /* and on with pipelined commands */
}

static void cmd_rcpt(struct smtp_session *s, const char *arg)
{
    /* counted whether or not the recipient is then accepted, as anvil does */
    if (smtpd_session_over_client_rate(s, ANVIL_RATE_RCPT)) {
        smtpd_session_reply(s, "450 4.7.1 Error: too many recipients from %s", s->client_addr);
        return;
    }
    struct smtp_ext ext = s->ext;
    ext.smtputf8 = s->ext.smtputf8 && s->smtputf8;
    struct smtp_rcpt_args a;
    struct smtp_reply_err err;
    if (smtp_parse_rcpt(arg, &ext, &a, &err) != 0) {
        smtpd_session_reply(s, "%d %s %s", err.code, err.enh, err.text);
        return;
    }
    /* <postmaster> (RFC 5321 4.1.1.3) is our postmaster: qualified with
     * myhostname, which is always one of our names. */
    char *qualified = NULL;
    if (!a.path.domain && !a.path.is_null)
        qualified = xasprintf("postmaster@%s", s->set->myhostname);
    const char *addr = qualified ? qualified : a.path.mailbox;
    struct resolver *res = smtpd_resolver();
    struct smtpd_policy_result pr;
    if (rcpt_waits_for_tables(s, addr, arg)) {
        free(qualified);
        smtp_rcpt_args_free(&a);
        return;
    }
    s->table_rounds = 0;
    if (s->set->recipient_limit > 0 && s->env.nrcpt >= (size_t)s->set->recipient_limit) {
        smtpd_session_reply(s, "452 4.5.3 Error: too many recipients");
    } else if (s->set->policy_broken) {
        smtpd_session_reply(s, "451 4.3.5 Server configuration error");
    } else if (s->set->capture_on && capture_rule_refuses(s, addr)) {
        /* a failure rule set through the capture API */
    } else if (check_policy(s, addr, &pr) != 0) {
        log_info("%s: reject: RCPT from %s[%s]: %d %s %s; from=<%s> to=<%s> proto=%s helo=<%s>", s->id,
                 s->client_name, s->client_addr, pr.code, pr.enh, pr.text, s->env.sender, addr,
                 s->esmtp ? "ESMTP" : "SMTP", s->helo ? s->helo : "");
        smtpd_session_reply(s, "%d %s %s", pr.code, pr.enh, pr.text);
        if (pr.code == 421 || pr.code == 521)
            smtpd_session_close_after_reply(s);
    } else if (s->set->capture_all) {
        goto accept;   /* kept in the capture store, never delivered */
    } else if (refuse_error_transport(s, res, addr)) {
        /* refused or deferred: no backscatter from a bounce later */
    } else {
        const char *table;
        switch (resolver_check_recipient(res, addr, &table)) {
        case RESOLVE_OK:
            goto accept;   /* ours, or relaying the restrictions allowed */
        case RESOLVE_UNKNOWN:
            if (!s->set->reject_unlisted_recipient)
                goto accept;   /* the admin's choice: it bounces later */
            {
                int code = unknown_code(s->set, table);
                log_info("%s: reject: RCPT from %s[%s]: %d %d.1.1 <%s>: Recipient address rejected: "
                         "User unknown in %s; from=<%s> to=<%s>",
                         s->id, s->client_name, s->client_addr, code, code / 100, addr, table, s->env.sender,
                         addr);
            }
            reply_unknown_recipient(s, addr, table);
            break;
        case RESOLVE_TEMPFAIL:
            smtpd_session_reply(s, "451 4.3.0 <%s>: Temporary lookup failure", addr);
            break;
        }
    }
    goto out;
accept:;
    /* A repeated recipient is acknowledged but delivered once. */
    int repeated = 0;
    for (size_t i = 0; i < s->env.nrcpt && !repeated; i++)
        repeated = strcmp(s->env.rcpts[i].addr, addr) == 0;
    if (!repeated && smtpd_session_charge_recipient(s, addr, a.orcpt) != 0) {
        /* smtpd_memory_limit: the client may send the rest in another transaction */
        smtpd_session_reply(s, "452 4.5.3 Error: too many recipients, server memory is short");
        goto out;
    }
    if (!repeated) {
        queue_file_message_add_rcpt(&s->env, addr, a.orcpt ? a.orcpt : "", a.notify, -1);
        s->state = SS_RCPT;
    }
    smtpd_session_reply(s, "250 2.1.5 Ok");
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
    if (*arg) {
        smtpd_session_reply(s, "501 5.5.4 Syntax: DATA");
    } else {
        int rc = smtpd_content_begin(s, SMTP_DATA_DOT);
        if (rc) {
            smtpd_content_storage_error(s, rc);
            discard_pipelined_input(s, "DATA");
            return;
        }
        s->state = SS_DATA;
        smtpd_session_reply(s, "354 End data with <CR><LF>.<CR><LF>");
        return;
    }
    /* Whatever the client sent after a refused DATA is message text, not
     * commands: never execute it. */
    discard_pipelined_input(s, "DATA");
}

/* BDAT's size is read before the state is looked at: a refused BDAT's
 * chunk has to be skipped, which takes its size. */
static int bdat_check_size(struct smtp_session *s, const char *arg)
{
    unsigned long long size;
    int last;
    if (smtp_parse_bdat(arg, &size, &last) != 0) {
        /* Without a valid size the chunk cannot be skipped: the session
         * cannot be resynchronised. */
        smtpd_session_reply(s, "501 5.5.4 Syntax: BDAT chunk-size [LAST]");
        smtpd_session_reply(s, "421 4.7.0 %s Error: cannot recover from a malformed BDAT", s->set->myhostname);
        smtpd_session_close_after_reply(s);
        return 1;
    }
    s->bdat_remaining = size;
    s->bdat_chunk_size = size;
    s->bdat_last = last;
    s->bdat_error = NULL;
    return 0;
}

static void cmd_bdat(struct smtp_session *s, const char *arg)
{
    (void)arg;
    if (!s->bdat_started) {
        int rc = smtpd_content_begin(s, SMTP_DATA_BDAT);
        if (rc)
            s->bdat_error = storage_reply(rc);
        else
            s->bdat_started = 1;
    }
    s->state = SS_BDAT;
}

static void cmd_rset(struct smtp_session *s, const char *arg)
{
    (void)arg;
    smtpd_session_reset_transaction(s);
    smtpd_session_reply(s, "250 2.0.0 Ok");
}

static void cmd_noop(struct smtp_session *s, const char *arg)
{
    (void)arg;
    smtpd_session_reply(s, "250 2.0.0 Ok");
}

static void cmd_quit(struct smtp_session *s, const char *arg)
{
    (void)arg;
    smtpd_session_reply(s, "221 2.0.0 Bye");
    smtpd_session_reset_transaction(s);
    smtpd_session_close_after_reply(s);
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
        smtpd_session_reply(s, "501 5.5.4 Syntax: VRFY address");
        return;
    }
    if (!enabled) {
        smtpd_session_reply(s, "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
        return;
    }
    char *t = verify_target(arg);
    struct resolver *res = smtpd_resolver();
    if (!*t || strchr(t, '\r') || strchr(t, '\n')) {
        smtpd_session_reply(s, "501 5.1.3 Bad recipient address syntax");
    } else {
        const char *table;
        enum resolve_verdict v = resolver_check_recipient(res, t, &table);
        enum resolve_class cls;
        int cls_ok = resolver_classify(res, t, &cls) == 0;
        if (v == RESOLVE_OK && cls_ok && cls == RESOLVE_REMOTE)
            smtpd_session_reply(s, "252 2.0.0 <%s>: not a local address, will attempt delivery", t);
        else if (v == RESOLVE_OK)
            smtpd_session_reply(s, "250 2.0.0 <%s>", t);
        else if (v == RESOLVE_UNKNOWN)
            reply_unknown_recipient(s, t, table);
        else
            smtpd_session_reply(s, "451 4.3.0 <%s>: Temporary lookup failure", t);
    }
    free(t);
}

static void cmd_vrfy(struct smtp_session *s, const char *arg) { cmd_vrfy_expn(s, arg, s->set->vrfy_enabled); }
static void cmd_expn(struct smtp_session *s, const char *arg) { cmd_vrfy_expn(s, arg, s->set->expn_enabled); }

static void cmd_help(struct smtp_session *s, const char *arg)
{
    (void)arg;
    smtpd_session_reply(s, "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY EXPN HELP");
}

/* STARTTLS's refusals that outrank the state: a listener without TLS
 * answers 502 whatever the session's state. */
static int starttls_refused(struct smtp_session *s, const char *arg)
{
    if (s->set->tls_level == TLS_LEVEL_NONE)
        smtpd_session_reply(s, "502 5.5.1 Error: command not implemented");
    else if (s->tls)
        smtpd_session_reply(s, "554 5.5.1 Error: TLS already active");
    else if (*arg)
        smtpd_session_reply(s, "501 5.5.4 Syntax: STARTTLS");
    else
        return 0;
    return 1;
}

static void cmd_starttls(struct smtp_session *s, const char *arg)
{
    (void)arg;
    /* asked before the handshake, which is what costs; the handshake counts */
    if (!s->limits_exempt && s->set->tls_rate_limit > 0 &&
        smtpd_anvil_rate_reached(s->client_addr, ANVIL_RATE_TLS, s->set->tls_rate_limit, s->set->rate_unit,
                                 time(NULL))) {
        log_warn("Refusing STARTTLS request from %s[%s] for service %s", s->client_name, s->client_addr,
                 s->set->service);
        smtpd_session_reply(s, "454 4.7.0 Error: too many new TLS sessions from %s[%s]", s->client_name,
                            s->client_addr);
        return;
    }
    smtpd_session_reply(s, "220 2.0.0 Ready to start TLS");
    smtpd_session_start_tls(s);
}

/* AUTH's refusals that outrank the state: "not enabled" and "encryption
 * required" hold in any state, and "already authenticated" outranks "MAIL
 * transaction in progress". */
static int auth_refused(struct smtp_session *s, const char *arg)
{
    (void)arg;
    if (!s->set->sasl_enabled && !smtpd_auth_any_login(s))
        smtpd_session_reply(s, "503 5.5.1 Error: authentication not enabled");
    else if (!smtpd_auth_offered(s))
        smtpd_session_reply(s, "538 5.7.11 Encryption required for requested authentication mechanism");
    else if (s->sasl_user)
        smtpd_session_reply(s, "503 5.5.1 Error: already authenticated");
    else
        return 0;
    return 1;
}

/* The replies to a command in the wrong state (the table's refusal column). */
#define GREET_FIRST "503 5.5.1 Error: send HELO/EHLO first"
#define EHLO_FIRST "503 5.5.1 Error: send EHLO first"
#define NESTED_MAIL "503 5.5.1 Error: nested MAIL command"
#define NEED_MAIL "503 5.5.1 Error: need MAIL command"
#define NEED_RCPT "503 5.5.1 Error: need RCPT command"
#define IN_TRANSACTION "503 5.5.1 Error: MAIL transaction in progress"

#define ST_GREETED (ST(SS_READY) | ST(SS_MAIL) | ST(SS_RCPT))
#define ST_OUTSIDE_BDAT (ST(SS_INIT) | ST_GREETED)

/* STARTTLS ends a pipelined group too (RFC 3207 §4.2), but
 * smtpd_session_start_tls throws away and logs what follows an accepted
 * one itself, and nothing is logged after a refused one: no CMD_ENDS_GROUP. */
static const struct smtpd_command commands[] = {
    {.verb = SMTP_EHLO, .counter = CNT_EHLO, .handler = cmd_ehlo,
     .states = ST_OUTSIDE_BDAT, .flags = CMD_BEFORE_TLS | CMD_ENDS_GROUP},
    {.verb = SMTP_HELO, .counter = CNT_HELO, .handler = cmd_helo,
     .states = ST_OUTSIDE_BDAT, .flags = CMD_BEFORE_TLS | CMD_ENDS_GROUP},
    {.verb = SMTP_MAIL, .counter = CNT_MAIL, .handler = cmd_mail,
     .states = ST(SS_READY),
     .refusal = {[SS_INIT] = GREET_FIRST, [SS_MAIL] = NESTED_MAIL, [SS_RCPT] = NESTED_MAIL}},
    {.verb = SMTP_RCPT, .counter = CNT_RCPT, .handler = cmd_rcpt,
     .states = ST(SS_MAIL) | ST(SS_RCPT),
     .refusal = {[SS_INIT] = NEED_MAIL, [SS_READY] = NEED_MAIL}},
    {.verb = SMTP_DATA, .counter = CNT_DATA, .handler = cmd_data,
     .states = ST(SS_RCPT), .flags = CMD_ENDS_GROUP | CMD_REFUSAL_DISCARDS,
     .refusal = {[SS_INIT] = NEED_MAIL, [SS_READY] = NEED_MAIL, [SS_MAIL] = NEED_RCPT}},
    {.verb = SMTP_BDAT, .counter = CNT_BDAT, .handler = cmd_bdat, .precheck = bdat_check_size,
     .states = ST(SS_RCPT) | ST(SS_BDAT_WAIT), .flags = CMD_NEEDS_EHLO | CMD_CHUNK,
     .refusal = {[SS_INIT] = EHLO_FIRST, [SS_READY] = NEED_MAIL, [SS_MAIL] = NEED_RCPT}},
    {.verb = SMTP_RSET, .counter = CNT_RSET, .handler = cmd_rset,
     .states = ST_COMMAND, .flags = CMD_BEFORE_TLS | CMD_JUNK},
    {.verb = SMTP_NOOP, .counter = CNT_NOOP, .handler = cmd_noop,
     .states = ST_COMMAND, .flags = CMD_BEFORE_TLS | CMD_ENDS_GROUP | CMD_JUNK},
    {.verb = SMTP_QUIT, .counter = CNT_QUIT, .handler = cmd_quit,
     .states = ST_COMMAND, .flags = CMD_BEFORE_TLS | CMD_ENDS_GROUP},
    {.verb = SMTP_VRFY, .counter = CNT_VRFY, .handler = cmd_vrfy,
     .states = ST_OUTSIDE_BDAT, .flags = CMD_ENDS_GROUP | CMD_JUNK},
    {.verb = SMTP_EXPN, .counter = CNT_EXPN, .handler = cmd_expn,
     .states = ST_OUTSIDE_BDAT, .flags = CMD_ENDS_GROUP | CMD_JUNK},
    {.verb = SMTP_HELP, .counter = CNT_HELP, .handler = cmd_help,
     .states = ST_OUTSIDE_BDAT, .flags = CMD_BEFORE_TLS | CMD_JUNK},
    /* RFC 3207: after EHLO (HELO will do), never inside a transaction */
    {.verb = SMTP_STARTTLS, .counter = CNT_STARTTLS, .handler = cmd_starttls, .precheck = starttls_refused,
     .states = ST(SS_READY), .flags = CMD_BEFORE_TLS,
     .refusal = {[SS_INIT] = EHLO_FIRST, [SS_MAIL] = IN_TRANSACTION, [SS_RCPT] = IN_TRANSACTION}},
    /* RFC 4954 §4: not during a transaction (HELO will do here too) */
    {.verb = SMTP_AUTH, .counter = CNT_AUTH, .handler = smtpd_auth_cmd, .precheck = auth_refused,
     .states = ST(SS_READY), .flags = CMD_ENDS_GROUP,
     .refusal = {[SS_INIT] = EHLO_FIRST, [SS_MAIL] = IN_TRANSACTION, [SS_RCPT] = IN_TRANSACTION}},
};

#ifdef TERN_TEST_BUILD
const struct smtpd_command *smtpd_cmd_test_table(size_t *n)
{
    *n = sizeof commands / sizeof commands[0];
    return commands;
}
#endif

static const char *verb_name(const struct smtp_cmd *c)
{
    return c->verb_text[0] ? c->verb_text : "command";
}

/* Step 4 of the rulebook: the state, 0 if the command may run. */
static int refuse_by_state(struct smtp_session *s, const struct smtpd_command *c)
{
    enum session_state as = (c->flags & CMD_NEEDS_EHLO) && !s->esmtp ? SS_INIT : s->state;
    if (c->states & ST(as))
        return 0;
    if (c->flags & CMD_CHUNK) {
        /* the reply waits until the chunk is skipped (smtpd_content_bdat_done) */
        s->bdat_error = c->refusal[as];
        s->state = SS_BDAT;
        return 1;
    }
    smtpd_session_reply(s, "%s", c->refusal[as]);
    if (c->flags & CMD_REFUSAL_DISCARDS)
        discard_pipelined_input(s, smtp_verb_name(c->verb));
    return 1;
}

void smtpd_cmd_handle_line(struct smtp_session *s, const char *line, size_t len)
{
    struct smtp_cmd cmd;
    s->where = "UNKNOWN";
    if (smtp_cmd_parse(line, len, &cmd) != 0) {
        s->cur_counter = CNT_UNKNOWN;
        smtpd_session_reply(s, "500 5.5.2 Error: bad syntax");
        return;
    }
    const struct smtpd_command *c = NULL;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (commands[i].verb == cmd.verb)
            c = &commands[i];
    if (!c) {
        s->cur_counter = CNT_UNKNOWN;
        smtpd_session_reply(s, "500 5.5.2 Error: command not recognized");
        return;
    }
    s->cur_counter = (int)c->counter;
    s->where = smtp_verb_name(c->verb);
    if (s->state == SS_BDAT_WAIT && !(c->states & ST(SS_BDAT_WAIT))) {
        /* RFC 3030: a BDAT transfer is ended by BDAT LAST or RSET. */
        smtpd_session_reset_transaction(s);
        smtpd_session_reply(s, SMTPD_REFUSE_IN_BDAT, verb_name(&cmd));
        if (c->flags & CMD_REFUSAL_DISCARDS)
            discard_pipelined_input(s, smtp_verb_name(c->verb));
        return;
    }
    /* smtpd_tls_security_level = encrypt: nothing but the way to TLS
     * before it (RFC 3207 §4) */
    if (s->set->tls_level == TLS_LEVEL_ENCRYPT && !s->tls && !(c->flags & CMD_BEFORE_TLS)) {
        smtpd_session_reply(s, SMTPD_REFUSE_BEFORE_TLS);
        return;
    }
    if (!(c->precheck && c->precheck(s, cmd.arg)) && !refuse_by_state(s, c))
        c->handler(s, cmd.arg);
    /* Commands that move no mail cost an error each beyond the junk limit,
     * so a session cannot idle on them forever (Postfix's junk counter). */
    if ((c->flags & CMD_JUNK) && s->set->junk_command_limit > 0 &&
        ++s->junk_commands > (unsigned)s->set->junk_command_limit)
        s->errors++;
    if ((c->flags & CMD_ENDS_GROUP) && s->state != SS_DATA && s->state != SS_CLOSING && !s->pipelining_logged &&
        evbuffer_get_length(bufferevent_get_input(s->bev)) > 0) {
        log_info("improper command pipelining after %s from %s[%s]", verb_name(&cmd), s->client_name,
                 s->client_addr);
        s->pipelining_logged = 1;
    }
}
