/* Tests for smtpd_cmd: every verb in every state in which commands are
 * read, with and without a greeting by EHLO, with and without TLS required,
 * and the reply checked against the command table. The expectations are
 * computed from the table, so the test fails as soon as the dispatcher and
 * the table disagree; the few rules outside it (the prechecks, the flags)
 * have tests of their own. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "smtpd/smtpd_session_internal.h"
#include "tls/tls.h"
#include "util/log.h"
#include "util/mem.h"

/* For each verb a line the handler answers without a queue, a resolver or
 * a client: mostly its own syntax error, which shows the dispatcher let
 * the command through. */
struct probe {
    enum smtp_verb verb;
    const char *line;
    const char *reply;            /* the start of the handler's reply */
    const char *reply_bdat_wait;  /* in SS_BDAT_WAIT, when it differs */
};

static const struct probe probes[] = {
    {SMTP_EHLO, "EHLO client.example", "250-test.example\r\n250-PIPELINING\r\n", NULL},
    {SMTP_HELO, "HELO client.example", "250 test.example\r\n", NULL},
    {SMTP_MAIL, "MAIL TO:<a@example.org>", "501 5.5.4 Syntax: MAIL FROM:<address>\r\n", NULL},
    {SMTP_RCPT, "RCPT FROM:<a@example.org>", "501 5.5.4 Syntax: RCPT TO:<address>\r\n", NULL},
    {SMTP_DATA, "DATA now", "501 5.5.4 Syntax: DATA\r\n", NULL},
    /* the test has no incoming/: a first chunk cannot open its queue file */
    {SMTP_BDAT, "BDAT 0", "451 4.3.0 Error: queue file write error\r\n", "250 2.0.0 Ok: 0 bytes\r\n"},
    {SMTP_RSET, "RSET", "250 2.0.0 Ok\r\n", NULL},
    {SMTP_NOOP, "NOOP", "250 2.0.0 Ok\r\n", NULL},
    {SMTP_QUIT, "QUIT", "221 2.0.0 Bye\r\n", NULL},
    {SMTP_VRFY, "VRFY", "501 5.5.4 Syntax: VRFY address\r\n", NULL},
    {SMTP_EXPN, "expn", "501 5.5.4 Syntax: VRFY address\r\n", NULL},
    {SMTP_HELP, "HELP", "214 2.0.0 Commands: ", NULL},
    {SMTP_STARTTLS, "STARTTLS", "220 2.0.0 Ready to start TLS\r\n", NULL},
    {SMTP_AUTH, "Auth", "501 5.5.4 Syntax: AUTH mechanism\r\n", NULL},
};
#define NPROBES (sizeof probes / sizeof probes[0])

static const enum session_state command_states[] = {SS_INIT, SS_READY, SS_MAIL, SS_RCPT, SS_BDAT_WAIT};
#define NSTATES (sizeof command_states / sizeof command_states[0])

static struct event_base *base;
static SSL_CTX *tls_ctx;
static struct smtpd_settings set;
static char myhostname[] = "test.example", banner[] = "test.example ESMTP", service[] = "smtp";

static void settings_default(void)
{
    memset(&set, 0, sizeof set);
    set.myhostname = myhostname;
    set.banner = banner;
    set.service = service;
    set.mail_name = service;
    set.tls_ctx = tls_ctx;
    set.tls_level = TLS_LEVEL_MAY;
    set.sasl_enabled = 1;
    set.vrfy_enabled = set.expn_enabled = 1;
}

static int setup(void **state)
{
    (void)state;
    log_set_stderr(0);   /* a connect and a disconnect line per case */
    base = event_base_new();
    tls_ctx = SSL_CTX_new(TLS_server_method());
    settings_default();
    return base && tls_ctx ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    log_set_stderr(1);
    SSL_CTX_free(tls_ctx);
    event_base_free(base);
    return 0;
}

struct conn {
    struct smtp_session *s;
    int peer;
    struct evbuffer *out;   /* the session's output (never sent: the loop does not run) */
};

/* What the session has replied since the last call, as a string to free:
 * what it sent straight to the socket (a reply with nothing queued before
 * it), then what it queued. The loop never runs, so nothing queued is
 * sent; the test takes it out itself, thawing the start of the output
 * bufferevents keep frozen. */
static char *take_output(struct conn *c)
{
    char sent[65536];
    ssize_t got = recv(c->peer, sent, sizeof sent, MSG_DONTWAIT);
    size_t ns = got > 0 ? (size_t)got : 0;
    size_t n = evbuffer_get_length(c->out);
    char *text = xmalloc(ns + n + 1);
    memcpy(text, sent, ns);
    evbuffer_unfreeze(c->out, 1);
    assert_int_equal(evbuffer_remove(c->out, text + ns, n), (int)n);
    evbuffer_freeze(c->out, 1);
    text[ns + n] = '\0';
    return text;
}

/* A session put in state st as the commands would have left it. */
static struct conn session_in(enum session_state st, int esmtp)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct conn c = {smtpd_session_test_start(base, &set, sv[0]), sv[1], NULL};
    assert_non_null(c.s);
    c.out = bufferevent_get_output(c.s->bev);
    free(take_output(&c));   /* the 220 greeting */
    struct smtp_session *s = c.s;
    if (st != SS_INIT) {
        s->helo = xstrdup("client.example");
        s->esmtp = s->ext.esmtp = esmtp;
    }
    if (st == SS_MAIL || st == SS_RCPT || st == SS_BDAT_WAIT) {
        queue_id_new(s->id);
        s->have_id = 1;
        queue_file_message_init(&s->env, s->id, 0, "a@example.org");
        s->env_init = 1;
    }
    if (st == SS_RCPT || st == SS_BDAT_WAIT)
        queue_file_message_add_rcpt(&s->env, "b@example.org", "", 0, -1);
    s->bdat_started = st == SS_BDAT_WAIT;
    s->state = st;
    return c;
}

/* Input as if it had arrived (the end of a bufferevent's input is frozen too). */
static void arrives(struct conn *c, const char *bytes)
{
    struct evbuffer *in = bufferevent_get_input(c->s->bev);
    evbuffer_unfreeze(in, 0);
    assert_int_equal(evbuffer_add(in, bytes, strlen(bytes)), 0);
    evbuffer_freeze(in, 0);
}

static void session_end(struct conn *c)
{
    smtpd_session_test_end(c->s);
    close(c->peer);
}

/* Sends one line; returns every reply it got (a refused BDAT's only once
 * its empty chunk is read). */
static char *send_line(struct conn *c, const char *line)
{
    /* an accepted STARTTLS leaves its 220 in the connection's own output
     * and puts a TLS filter with an output of its own over it */
    c->out = bufferevent_get_output(c->s->bev);
    smtpd_cmd_handle_line(c->s, line, strlen(line));
    if (c->s->state == SS_BDAT)
        smtpd_session_resume(c->s);
    return take_output(c);
}

static const struct smtpd_command *row_of(enum smtp_verb v)
{
    size_t n;
    const struct smtpd_command *t = smtpd_cmd_test_table(&n);
    for (size_t i = 0; i < n; i++)
        if (t[i].verb == v)
            return &t[i];
    fail_msg("no row for verb %d", (int)v);
    return NULL;
}

/* The reply the table promises; *exact is 0 when it names only its start. */
static char *expected(const struct probe *p, enum session_state st, int esmtp, int tls_required, int *exact)
{
    const struct smtpd_command *c = row_of(p->verb);
    char verb_text[16];
    snprintf(verb_text, sizeof verb_text, "%.*s", (int)strcspn(p->line, " "), p->line);
    *exact = 1;
    if (st == SS_BDAT_WAIT && !(c->states & ST(SS_BDAT_WAIT)))
        return xasprintf(SMTPD_REFUSE_IN_BDAT "\r\n", verb_text);
    if (tls_required && !(c->flags & CMD_BEFORE_TLS))
        return xasprintf(SMTPD_REFUSE_BEFORE_TLS "\r\n");
    enum session_state as = (c->flags & CMD_NEEDS_EHLO) && !esmtp ? SS_INIT : st;
    if (!(c->states & ST(as))) {
        assert_non_null(c->refusal[as]);
        return xasprintf("%s\r\n", c->refusal[as]);
    }
    *exact = 0;
    return xstrdup(st == SS_BDAT_WAIT && p->reply_bdat_wait ? p->reply_bdat_wait : p->reply);
}

static void sweep(int tls_required)
{
    settings_default();
    if (tls_required)
        set.tls_level = TLS_LEVEL_ENCRYPT;
    for (size_t i = 0; i < NPROBES; i++) {
        for (size_t k = 0; k < NSTATES; k++) {
            enum session_state st = command_states[k];
            /* SS_INIT has had no greeting; a BDAT transfer needs EHLO */
            int first = st == SS_BDAT_WAIT, last = st != SS_INIT;
            for (int esmtp = first; esmtp <= last; esmtp++) {
                struct conn c = session_in(st, esmtp);
                char *got = send_line(&c, probes[i].line);
                int exact;
                char *want = expected(&probes[i], st, esmtp, tls_required, &exact);
                if (exact ? strcmp(got, want) != 0 : strncmp(got, want, strlen(want)) != 0)
                    fail_msg("\"%s\" in state %d (%s, TLS %s): got \"%s\", the table says \"%s\"", probes[i].line,
                             (int)st, esmtp ? "EHLO" : "HELO", tls_required ? "required" : "optional", got, want);
                free(got);
                free(want);
                session_end(&c);
            }
        }
    }
}

static void test_every_verb_in_every_state(void **state)
{
    (void)state;
    sweep(0);
}

static void test_every_verb_before_required_tls(void **state)
{
    (void)state;
    sweep(1);
}

/* Each verb has one row, and a reply for each state it is refused in. */
static void test_table_complete(void **state)
{
    (void)state;
    size_t n;
    const struct smtpd_command *t = smtpd_cmd_test_table(&n);
    assert_int_equal(n, NPROBES);
    for (enum smtp_verb v = SMTP_HELO; v <= SMTP_AUTH; v++) {
        size_t rows = 0;
        for (size_t i = 0; i < n; i++)
            rows += t[i].verb == v;
        assert_int_equal(rows, 1);
    }
    for (size_t i = 0; i < n; i++) {
        assert_non_null(t[i].handler);
        assert_int_equal(t[i].states & ~ST_COMMAND, 0);
        for (int st = 0; st < SS_NSTATES; st++) {
            int refused = (ST_COMMAND & ~ST(SS_BDAT_WAIT) & ~t[i].states & ST(st)) != 0;
            if (refused != (t[i].refusal[st] != NULL))
                fail_msg("%s in state %d: %s", smtp_verb_name(t[i].verb), st,
                         refused ? "refused without a reply" : "a reply where it is allowed");
        }
    }
}

static void expect_reply(enum session_state st, const char *line, const char *want)
{
    struct conn c = session_in(st, 1);
    char *got = send_line(&c, line);
    assert_string_equal(got, want);
    free(got);
    session_end(&c);
}

/* The prechecks outrank the state. */
static void test_prechecks_before_state(void **state)
{
    (void)state;
    settings_default();
    set.tls_level = TLS_LEVEL_NONE;
    expect_reply(SS_INIT, "STARTTLS", "502 5.5.1 Error: command not implemented\r\n");
    expect_reply(SS_MAIL, "STARTTLS", "502 5.5.1 Error: command not implemented\r\n");
    settings_default();
    expect_reply(SS_INIT, "STARTTLS now", "501 5.5.4 Syntax: STARTTLS\r\n");
    set.sasl_enabled = 0;
    expect_reply(SS_INIT, "AUTH PLAIN", "503 5.5.1 Error: authentication not enabled\r\n");
    expect_reply(SS_RCPT, "AUTH PLAIN", "503 5.5.1 Error: authentication not enabled\r\n");
    settings_default();
    set.tls_auth_only = 1;
    expect_reply(SS_INIT, "AUTH PLAIN", "538 5.7.11 Encryption required for requested authentication mechanism\r\n");
    settings_default();

    struct conn c = session_in(SS_MAIL, 1);
    c.s->sasl_user = xstrdup("alice");
    char *got = send_line(&c, "AUTH PLAIN");
    assert_string_equal(got, "503 5.5.1 Error: already authenticated\r\n");
    free(got);
    session_end(&c);

    c = session_in(SS_INIT, 0);
    got = send_line(&c, "BDAT ten");
    assert_string_equal(got, "501 5.5.4 Syntax: BDAT chunk-size [LAST]\r\n"
                             "421 4.7.0 test.example Error: cannot recover from a malformed BDAT\r\n");
    assert_int_equal(c.s->state, SS_CLOSING);
    free(got);
    session_end(&c);
}

/* The table's contents as clients have seen them (the sweep only checks
 * that the dispatcher follows the table, whatever it says). */
static void test_replies_unchanged(void **state)
{
    (void)state;
    settings_default();
    expect_reply(SS_INIT, "MAIL FROM:<a@example.org>", "503 5.5.1 Error: send HELO/EHLO first\r\n");
    expect_reply(SS_RCPT, "MAIL FROM:<a@example.org>", "503 5.5.1 Error: nested MAIL command\r\n");
    expect_reply(SS_INIT, "RCPT TO:<a@example.org>", "503 5.5.1 Error: need MAIL command\r\n");
    expect_reply(SS_INIT, "DATA", "503 5.5.1 Error: need MAIL command\r\n");
    expect_reply(SS_MAIL, "DATA", "503 5.5.1 Error: need RCPT command\r\n");
    expect_reply(SS_READY, "BDAT 0", "503 5.5.1 Error: need MAIL command\r\n");
    expect_reply(SS_INIT, "STARTTLS", "503 5.5.1 Error: send EHLO first\r\n");
    expect_reply(SS_RCPT, "STARTTLS", "503 5.5.1 Error: MAIL transaction in progress\r\n");
    expect_reply(SS_INIT, "AUTH PLAIN", "503 5.5.1 Error: send EHLO first\r\n");
    expect_reply(SS_MAIL, "AUTH PLAIN", "503 5.5.1 Error: MAIL transaction in progress\r\n");
    expect_reply(SS_BDAT_WAIT, "NOOP", "250 2.0.0 Ok\r\n");
    expect_reply(SS_BDAT_WAIT, "Mail FROM:<a@example.org>",
                 "503 5.5.1 Error: Mail during a BDAT transfer; transaction aborted\r\n");
    expect_reply(SS_BDAT_WAIT, "HELP", "503 5.5.1 Error: HELP during a BDAT transfer; transaction aborted\r\n");
    set.tls_level = TLS_LEVEL_ENCRYPT;
    expect_reply(SS_READY, "VRFY a", "530 5.7.0 Must issue a STARTTLS command first\r\n");
    expect_reply(SS_READY, "HELP", "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY EXPN HELP\r\n");
}

/* A refused BDAT's chunk is skipped before the refusal; the session stays
 * where it was. */
static void test_refused_chunk_skipped(void **state)
{
    (void)state;
    settings_default();
    struct conn c = session_in(SS_RCPT, 0);
    arrives(&c, "abc");
    char *got = send_line(&c, "BDAT 3 LAST");
    assert_string_equal(got, "503 5.5.1 Error: send EHLO first\r\n");
    assert_int_equal(evbuffer_get_length(bufferevent_get_input(c.s->bev)), 0);
    assert_int_equal(c.s->state, SS_RCPT);
    free(got);
    session_end(&c);
}

/* CMD_JUNK: past smtpd_junk_command_limit each such command costs an error. */
static void test_junk_flag(void **state)
{
    (void)state;
    for (size_t i = 0; i < NPROBES; i++) {
        unsigned cost[2];
        for (int limited = 0; limited <= 1; limited++) {
            settings_default();
            set.junk_command_limit = limited;
            struct conn c = session_in(SS_READY, 1);
            c.s->junk_commands = 1;
            unsigned before = c.s->errors;
            free(send_line(&c, probes[i].line));
            cost[limited] = c.s->errors - before;
            session_end(&c);
        }
        int junk = (row_of(probes[i].verb)->flags & CMD_JUNK) != 0;
        if (cost[1] - cost[0] != (unsigned)junk)
            fail_msg("%s: junk flag %d, cost %u", probes[i].line, junk, cost[1] - cost[0]);
    }
}

/* CMD_ENDS_GROUP: input already waiting after such a command is logged as
 * improper pipelining (unless the session now reads content or closes). */
static void test_ends_group_flag(void **state)
{
    (void)state;
    settings_default();
    for (size_t i = 0; i < NPROBES; i++) {
        struct conn c = session_in(SS_READY, 1);
        arrives(&c, "NOOP\r\n");
        smtpd_cmd_handle_line(c.s, probes[i].line, strlen(probes[i].line));
        enum session_state after = c.s->state;
        int ends = (row_of(probes[i].verb)->flags & CMD_ENDS_GROUP) != 0;
        int want = ends && after != SS_DATA && after != SS_CLOSING;
        if (c.s->pipelining_logged != want)
            fail_msg("%s: ends-group flag %d, logged %d", probes[i].line, ends, c.s->pipelining_logged);
        session_end(&c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_complete),
        cmocka_unit_test(test_every_verb_in_every_state),
        cmocka_unit_test(test_every_verb_before_required_tls),
        cmocka_unit_test(test_replies_unchanged),
        cmocka_unit_test(test_prechecks_before_state),
        cmocka_unit_test(test_refused_chunk_skipped),
        cmocka_unit_test(test_junk_flag),
        cmocka_unit_test(test_ends_group_flag),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
