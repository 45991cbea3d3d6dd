/* smtpd_auth: the AUTH command of a session (RFC 4954) with the
 * PLAIN (RFC 4616) and LOGIN mechanisms, checked against tern's password
 * file (auth_passwd) or Dovecot's auth socket (auth_dovecot), without
 * blocking the loop; failed logins are delayed, counted per client
 * (smtpd_anvil: the address, an IPv6 /64), and past smtpd_sasl_failure_limit
 * the client is refused for smtpd_sasl_lockout_time (see
 * smtpd_session_internal.h). */
#include "smtpd/smtpd_session_internal.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/auth_dovecot.h"
#include "auth/auth_passwd.h"
#include "smtpd/smtpd_anvil.h"
#include "util/base64.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

/* RFC 4954 §4: a response line may be up to 12288 octets; ours are read as
 * command lines (1000), plenty for PLAIN and LOGIN. */
#define AUTH_MAX_DECODED 1024

enum auth_step { AUTH_NONE, AUTH_PLAIN_WAIT, AUTH_LOGIN_USER, AUTH_LOGIN_PASS, AUTH_CHECKING };

/* ---- backends: one per (type, path) in this process ---- */

struct backend {
    struct backend *next;
    int dovecot;
    char *path;
    struct auth_passwd *passwd;
    struct auth_dovecot *dove;
};
static struct backend *backends;

static struct backend *backend_for(struct smtp_session *s)
{
    const struct smtpd_settings *set = s->set;
    for (struct backend *b = backends; b; b = b->next)
        if (b->dovecot == set->sasl_dovecot && strcmp(b->path, set->sasl_path) == 0)
            return b;
    struct backend *b = xcalloc(1, sizeof *b);
    b->dovecot = set->sasl_dovecot;
    b->path = xstrdup(set->sasl_path);
    if (b->dovecot) {
        b->dove = auth_dovecot_new(s->base, b->path);
    } else {
        char *err = NULL;
        b->passwd = auth_passwd_open(s->base, b->path, &err);
        if (!b->passwd) {
            log_warn("SASL password file %s: %s", b->path, err ? err : "cannot open");
            free(err);
        }
    }
    b->next = backends;
    backends = b;
    return b;
}

void smtpd_auth_shutdown(void)
{
    while (backends) {
        struct backend *b = backends;
        backends = b->next;
        if (b->passwd)
            auth_passwd_close(b->passwd);
        if (b->dove)
            auth_dovecot_free(b->dove);
        free(b->path);
        free(b);
    }
}

/* ---- failed logins per client (smtpd_anvil keeps the table) ---- */

/* The shared lockout of clients without a slot (see smtpd_anvil.h) spares
 * the clients exempt from the limits (smtpd_client_event_limit_exceptions,
 * $mynetworks by default): a flood from outside must not lock out our own. */
static int locked_out(const struct smtp_session *s)
{
    int locked = smtpd_anvil_auth_locked(s->client_addr, time(NULL));
    return locked == ANVIL_LOCKED || (locked == ANVIL_LOCKED_SHARED && !s->limits_exempt);
}

/* Counts a failure; 1 when this client is now locked out. */
static int count_failure(const struct smtp_session *s)
{
    int locked = smtpd_anvil_auth_failure(s->client_addr, s->set->sasl_failure_limit, s->set->sasl_lockout_time,
                                          time(NULL));
    if (locked == ANVIL_LOCKED_SHARED)
        log_warn("%s[%s]: too many failed SASL logins while %d addresses are locked out; every address without "
                 "a lockout slot is refused for a while",
                 s->client_name, s->client_addr, ANVIL_MAX_LOCKOUTS);
    return locked == ANVIL_LOCKED || (locked == ANVIL_LOCKED_SHARED && !s->limits_exempt);
}

/* ---- the exchange ---- */

int smtpd_auth_user_lists_address(struct smtp_session *s, const char *addr)
{
    if (!s->sasl_user || s->set->sasl_dovecot)
        return 0;
    struct backend *b = backend_for(s);
    const char *const *list = b->passwd ? auth_passwd_addresses(b->passwd, s->sasl_user) : NULL;
    for (; list && *list; list++)
        if (strcasecmp(*list, addr) == 0)
            return 1;
    return 0;
}

static int client_on_loopback(const struct smtp_session *s)
{
    const char *a = s->client_addr;
    return strncmp(a, "127.", 4) == 0 || strcmp(a, "::1") == 0 || strncmp(a, "::ffff:127.", 11) == 0;
}

/* Capture mode takes any login (its name is an inbox) where that gives
 * no one more than they have: under capture = yes nothing is delivered;
 * under copy only from mynetworks, which may relay anyway. */
static int any_login(const struct smtp_session *s)
{
    return s->set->capture_any_login && (s->set->capture_all || s->is_local);
}

int smtpd_auth_any_login(const struct smtp_session *s)
{
    return any_login(s);
}

int smtpd_auth_offered(const struct smtp_session *s)
{
    /* an application on this machine may log in without TLS, as it would
     * on a development server */
    if (any_login(s))
        return s->tls || !s->set->tls_auth_only || client_on_loopback(s);
    return s->set->sasl_enabled && (s->tls || !s->set->tls_auth_only);
}

static void wipe(char **p)
{
    if (*p) {
        explicit_bzero(*p, strlen(*p));
        free(*p);
        *p = NULL;
    }
}

void smtpd_auth_session_end(struct smtp_session *s)
{
    if (s->auth_req) {
        if (s->set->sasl_dovecot)
            auth_dovecot_cancel(s->auth_req);
        else
            auth_passwd_cancel(s->auth_req);
        s->auth_req = NULL;
    }
    if (s->auth_accept) {
        event_free(s->auth_accept);
        s->auth_accept = NULL;
    }
    if (s->auth_delay) {
        event_free(s->auth_delay);
        s->auth_delay = NULL;
    }
    wipe(&s->auth_login_user);
    free(s->sasl_user);
    s->sasl_user = NULL;
}

/* Strict base64 (RFC 4648 §4); NULL for anything else, including an empty
 * line. "=" alone is the empty response (RFC 4954 §4). */
static char *b64_decode(const char *in, size_t len, size_t *outlen)
{
    if (len == 1 && in[0] == '=') {
        *outlen = 0;
        return xstrdup("");
    }
    if (len == 0 || base64_decoded_max(len) > AUTH_MAX_DECODED)
        return NULL;
    unsigned char *out = xmalloc(base64_decoded_max(len) + 1);
    if (base64_decode(in, len, out, outlen) != 0) {
        free(out);
        return NULL;
    }
    out[*outlen] = '\0';
    return (char *)out;
}

static void reply_b64(struct smtp_session *s, const char *text)
{
    char buf[64];
    base64_encode(text, strlen(text), buf);
    smtpd_session_reply(s, "334 %s", buf);
}

static void resume(struct smtp_session *s)
{
    if (s->state == SS_CLOSING)
        return;   /* the 421 is out: nothing more */
    s->state = SS_READY;
    bufferevent_enable(s->bev, EV_READ);
    smtpd_session_resume(s);
}

static void delayed_reply(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct smtp_session *s = arg;
    if (s->state == SS_CLOSING)
        return;
    if (s->auth_locked) {
        smtpd_session_reply(s, "421 4.7.0 %s Error: too many failed authentication attempts", s->set->myhostname);
        smtpd_session_close_after_reply(s);
        return;
    }
    smtpd_session_reply(s, "535 5.7.8 Error: authentication failed: authentication failure");
    resume(s);
}

static void check_done(void *arg, enum auth_result r, const char *why)
{
    struct smtp_session *s = arg;
    s->auth_req = NULL;
    s->auth_step = AUTH_NONE;
    if (s->state == SS_CLOSING)
        return;
    const char *method = s->sasl_method;
    /* Other sessions' guesses may have locked this client out while the
     * backend checked this one (parallel AUTH from many connections): then
     * even a right password is refused, answered as a failure would be, so
     * that guesses answered after the lockout tell nothing. */
    if (r == AUTH_OK && !any_login(s) && locked_out(s)) {
        log_warn("%s[%s]: SASL %s authentication succeeded, but the client was locked out meanwhile (too many "
                 "failed SASL logins); refused, sasl_username=%s",
                 s->client_name, s->client_addr, method, s->auth_login_user ? s->auth_login_user : "");
        wipe(&s->auth_login_user);
        s->auth_locked = 1;
        if (!s->auth_delay)
            s->auth_delay = evtimer_new(s->base, delayed_reply, s);
        struct timeval tv = {s->set->sasl_failure_delay, 0};
        evtimer_add(s->auth_delay, &tv);
        return;
    }
    if (r == AUTH_OK) {
        /* Dovecot says who the user really is ("Alice" may be "alice") */
        if (s->set->sasl_dovecot && why && *why) {
            s->sasl_user = xstrdup(why);
            wipe(&s->auth_login_user);
        } else {
            s->sasl_user = s->auth_login_user;
            s->auth_login_user = NULL;
        }
        log_info("%s[%s]: SASL %s authentication succeeded: sasl_username=%s", s->client_name, s->client_addr,
                 method, s->sasl_user);
        smtpd_session_reply(s, "235 2.7.0 Authentication successful");
        resume(s);
        return;
    }
    if (r == AUTH_TEMPFAIL) {
        log_warn("%s[%s]: SASL %s authentication failed temporarily: %s", s->client_name, s->client_addr,
                 method, why ? why : "unknown reason");
        wipe(&s->auth_login_user);
        smtpd_session_reply(s, "454 4.7.0 Temporary authentication failure");
        resume(s);
        return;
    }
    log_warn("%s[%s]: SASL %s authentication failed: %s, sasl_username=%s", s->client_name, s->client_addr,
             method, why ? why : "authentication failure", s->auth_login_user ? s->auth_login_user : "");
    wipe(&s->auth_login_user);
    /* after the lockout began, every answer is its 421 (see above) */
    s->auth_locked = count_failure(s) || locked_out(s);
    if (s->auth_locked)
        log_warn("%s[%s]: too many failed SASL logins; refused for a while", s->client_name, s->client_addr);
    /* a failed guess costs time: no quick dictionary runs */
    if (!s->auth_delay)
        s->auth_delay = evtimer_new(s->base, delayed_reply, s);
    struct timeval tv = {s->set->sasl_failure_delay, 0};
    evtimer_add(s->auth_delay, &tv);
}

/* capture mode: every login succeeds, answered from the loop (not from
 * inside the command being processed) */
static void capture_login_accepted(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    check_done(arg, AUTH_OK, NULL);
}

/* user and password are known: ask the backend, the session waits */
static void start_check(struct smtp_session *s, const char *user, char *password)
{
    s->auth_step = AUTH_CHECKING;
    s->state = SS_AUTH;
    free(s->auth_login_user);
    s->auth_login_user = xstrdup(user);
    if (any_login(s)) {
        explicit_bzero(password, strlen(password));
        if (!s->auth_accept)
            s->auth_accept = evtimer_new(s->base, capture_login_accepted, s);
        struct timeval now = {0, 0};
        evtimer_add(s->auth_accept, &now);
        return;
    }
    struct backend *b = backend_for(s);
    if (b->dove) {
        struct auth_dovecot_info info = {.remote_ip = s->client_addr, .secured = s->tls};
        s->auth_req = auth_dovecot_check(b->dove, user, password, &info, check_done, s);
    } else if (b->passwd) {
        s->auth_req = auth_passwd_check(b->passwd, user, password, check_done, s);
    } else {
        explicit_bzero(password, strlen(password));
        s->auth_step = AUTH_NONE;
        wipe(&s->auth_login_user);
        smtpd_session_reply(s, "454 4.7.0 Temporary authentication failure");
        s->state = SS_READY;
        return;
    }
    explicit_bzero(password, strlen(password));
}

/* "[authzid] NUL authcid NUL passwd" (RFC 4616 §2) */
static void plain_response(struct smtp_session *s, char *msg, size_t len)
{
    const char *authzid = msg;
    const char *nul1 = memchr(msg, '\0', len);
    const char *user = nul1 ? nul1 + 1 : NULL;
    const char *nul2 = user ? memchr(user, '\0', len - (size_t)(user - msg)) : NULL;
    if (!nul2 || !*user || memchr(nul2 + 1, '\0', len - (size_t)(nul2 + 1 - msg))) {
        s->auth_step = AUTH_NONE;
        smtpd_session_reply(s, "501 5.5.2 Invalid authentication data");
        return;
    }
    if (*authzid && strcmp(authzid, user) != 0) {
        /* acting as somebody else is not offered */
        s->auth_step = AUTH_NONE;
        smtpd_session_reply(s, "535 5.7.8 Error: authentication failed: authorization identity differs");
        return;
    }
    char *password = xstrdup(nul2 + 1);
    start_check(s, user, password);
    free(password);
}

void smtpd_auth_line(struct smtp_session *s, const char *line, size_t len)
{
    if (len == 1 && line[0] == '*') {
        s->auth_step = AUTH_NONE;
        wipe(&s->auth_login_user);
        smtpd_session_reply(s, "501 5.7.0 Authentication aborted");
        return;
    }
    size_t n = 0;
    char *msg = b64_decode(line, len, &n);
    if (!msg) {
        s->auth_step = AUTH_NONE;
        wipe(&s->auth_login_user);
        smtpd_session_reply(s, "501 5.5.2 Cannot decode response");
        return;
    }
    switch (s->auth_step) {
    case AUTH_PLAIN_WAIT:
        plain_response(s, msg, n);
        break;
    case AUTH_LOGIN_USER:
        if (n == 0 || memchr(msg, '\0', n)) {
            s->auth_step = AUTH_NONE;
            smtpd_session_reply(s, "501 5.5.2 Invalid authentication data");
            break;
        }
        free(s->auth_login_user);
        s->auth_login_user = xstrdup(msg);
        s->auth_step = AUTH_LOGIN_PASS;
        reply_b64(s, "Password:");
        break;
    case AUTH_LOGIN_PASS: {
        char *user = xstrdup(s->auth_login_user);
        start_check(s, user, msg);
        free(user);
        break;
    }
    default:
        break;
    }
    explicit_bzero(msg, n);
    free(msg);
}

void smtpd_auth_cmd(struct smtp_session *s, const char *arg)
{
    if (locked_out(s)) {
        smtpd_session_reply(s, "421 4.7.0 %s Error: too many failed authentication attempts", s->set->myhostname);
        smtpd_session_close_after_reply(s);
        return;
    }
    if (smtpd_session_over_client_rate(s, ANVIL_RATE_AUTH)) {
        smtpd_session_reply(s, "450 4.7.1 Error: too many AUTH commands from %s", s->client_addr);
        return;
    }
    size_t mlen = strcspn(arg, " ");
    const char *initial = arg[mlen] == ' ' ? arg + mlen + 1 : NULL;
    if (mlen == 5 && strncasecmp(arg, "PLAIN", 5) == 0) {
        s->sasl_method = "PLAIN";
        s->auth_step = AUTH_PLAIN_WAIT;
        if (initial)
            smtpd_auth_line(s, initial, strlen(initial));
        else
            smtpd_session_reply(s, "334 ");
    } else if (mlen == 5 && strncasecmp(arg, "LOGIN", 5) == 0) {
        s->sasl_method = "LOGIN";
        s->auth_step = AUTH_LOGIN_USER;
        if (initial)
            smtpd_auth_line(s, initial, strlen(initial));
        else
            reply_b64(s, "Username:");
    } else if (mlen == 0) {
        smtpd_session_reply(s, "501 5.5.4 Syntax: AUTH mechanism");
    } else {
        smtpd_session_reply(s, "504 5.5.4 Unrecognized authentication type");
    }
}
