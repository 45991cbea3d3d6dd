/* auth_dovecot: smtpd's client for Dovecot's auth socket (see auth_dovecot.h).
 *
 * Wire format (auth client protocol 1.x): LF-terminated lines, TAB-separated
 * fields, values tab-escaped with \001 as the escape byte. We send
 *   VERSION 1 2 / CPID <pid>                        on connect, then per check
 *   AUTH <id> PLAIN service=smtp nologin [secured] [lip= rip= lport= rport=]
 *        resp=<base64 of "\0user\0password">
 *   CANCEL <id>                                     when we stop waiting
 * and read VERSION, MECH, SPID, CUID, COOKIE, DONE, then OK/FAIL/CONT <id>.
 *
 * Every completion goes through the request's own timer armed at zero, so a
 * callback never runs inside a call into this module, and a callback that
 * frees the client only frees requests that are not being delivered. */
#include "auth/auth_dovecot.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/base64.h"
#include "util/hashmap.h"
#include "util/list.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

#define PROTOCOL_MAJOR 1
#define PROTOCOL_MINOR 2
#define SERVICE_NAME "smtp"
/* Requests queue behind a server that stops reading; past this it is dead. */
#define MAX_OUTPUT (4u * 1024 * 1024)
#define MAX_WHY 200

enum conn_state {
    CONN_IDLE,       /* no socket; the next check connects */
    CONN_CONNECTING, /* connect() in progress */
    CONN_HANDSHAKE,  /* connected, waiting for DONE */
    CONN_READY,
    CONN_BACKOFF,    /* an attempt failed; checks fail until the timer fires */
};

enum req_state { REQ_QUEUED, REQ_SENT, REQ_DONE };

struct auth_dovecot_req {
    struct auth_dovecot *d;
    struct list_node link; /* in d->queued, d->sent or d->done */
    enum req_state state;
    unsigned id;
    char *line; /* the AUTH line (holds the encoded password) until sent */
    size_t line_len; /* without the NUL after it */
    char *user; /* as given, for AUTH_OK when Dovecot names nobody */
    struct event *timer;
    auth_cb cb;
    void *arg;
    enum auth_result result;
    char *why;
};

struct auth_dovecot {
    struct event_base *base;
    char *path;
    enum conn_state state;
    int fd;
    struct event *ev_read, *ev_write;
    struct event *ev_timer; /* handshake timeout, or end of backoff */
    char *in;
    size_t in_len;
    char *out;
    size_t out_len, out_cap;
    int got_version, has_plain;
    unsigned next_id;
    unsigned request_ms, retry_min_ms, retry_max_ms, retry_ms;
    char *down_why;
    struct list queued, sent, done; /* of struct auth_dovecot_req */
    struct hashmap sent_ids;        /* the requests in sent, by id */
};

static void conn_flush(struct auth_dovecot *d);

/* ---- small helpers ------------------------------------------------------- */

static void wipe_free(void *p, size_t n)
{
    if (p) {
        explicit_bzero(p, n);
        free(p);
    }
}

/* Control bytes become '?' so Dovecot's text cannot forge log lines, and the
 * length is bounded because the text may end up in a reply. */
static char *sanitized_dup(const char *s)
{
    size_t n = strlen(s);
    if (n > MAX_WHY)
        n = MAX_WHY;
    char *r = xstrndup(s, n);
    for (char *p = r; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == 0x7f)
            *p = '?';
    }
    return r;
}

static void put_tabescaped(struct strbuf *sb, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '\001': strbuf_puts(sb, "\0011"); break;
        case '\t': strbuf_puts(sb, "\001t"); break;
        case '\r': strbuf_puts(sb, "\001r"); break;
        case '\n': strbuf_puts(sb, "\001n"); break;
        default: strbuf_putc(sb, *s); break;
        }
    }
}

/* In place. "\0010" would be a NUL, which a C string cannot carry: it ends
 * the value there, which for our uses (names, reasons) is harmless. */
static void tab_unescape(char *s)
{
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (*r != '\001') {
            *w++ = *r;
            continue;
        }
        r++;
        switch (*r) {
        case '\0': *w = '\0'; return;
        case '0': *w = '\0'; return;
        case '1': *w++ = '\001'; break;
        case 't': *w++ = '\t'; break;
        case 'r': *w++ = '\r'; break;
        case 'n': *w++ = '\n'; break;
        default: *w++ = *r; break;
        }
    }
    *w = '\0';
}

static struct timeval ms_to_tv(unsigned ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

static int is_ip_address(const char *s)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return s && (inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1);
}

/* Strict decimal, 1..UINT_MAX: ids are ours, anything else is a broken server. */
static int parse_id(const char *s, unsigned *id)
{
    if (!s || !*s || strlen(s) > 10)
        return -1;
    unsigned long long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (unsigned)(*p - '0');
    }
    if (v == 0 || v > 0xffffffffull)
        return -1;
    *id = (unsigned)v;
    return 0;
}

/* ---- request bookkeeping ------------------------------------------------- */

static struct list *list_of(struct auth_dovecot *d, enum req_state st)
{
    return st == REQ_QUEUED ? &d->queued : st == REQ_SENT ? &d->sent : &d->done;
}

static struct auth_dovecot_req *first_req(struct list *l)
{
    return LIST_FIRST(l, struct auth_dovecot_req, link);
}

static const void *req_id_key(const void *item, size_t *len)
{
    const struct auth_dovecot_req *r = item;
    *len = sizeof r->id;
    return &r->id;
}

/* Takes r out of whatever list (and the id table) it is in. */
static void req_unlink(struct auth_dovecot_req *r)
{
    struct auth_dovecot *d = r->d;
    if (r->state == REQ_SENT)
        hashmap_remove(&d->sent_ids, r);
    list_remove(list_of(d, r->state), &r->link);
}

static void req_wipe_line(struct auth_dovecot_req *r)
{
    wipe_free(r->line, r->line_len + 1); /* + its NUL */
    r->line = NULL;
    r->line_len = 0;
}

/* Must not touch r->d: the client may already be gone (freed by a callback). */
static void req_free(struct auth_dovecot_req *r)
{
    req_wipe_line(r);
    event_free(r->timer);
    free(r->user);
    free(r->why);
    free(r);
}

/* Decides r's outcome; the callback runs from r's timer on the next loop pass. */
static void req_finish(struct auth_dovecot_req *r, enum auth_result result, const char *why)
{
    req_unlink(r);
    req_wipe_line(r);
    r->state = REQ_DONE;
    list_append(&r->d->done, &r->link);
    r->result = result;
    r->why = sanitized_dup(why);
    static const struct timeval now = {0, 0};
    evtimer_del(r->timer);
    evtimer_add(r->timer, &now);
}

static void fail_list(struct list *l, enum auth_result result, const char *why)
{
    while (!list_empty(l))
        req_finish(first_req(l), result, why);
}

/* ---- output -------------------------------------------------------------- */

/* Grows by copy-and-wipe rather than realloc: the buffer holds passwords. */
static void out_append(struct auth_dovecot *d, const char *data, size_t n)
{
    if (d->out_len + n > d->out_cap) {
        size_t cap = d->out_cap ? d->out_cap : 4096;
        while (cap < d->out_len + n)
            cap *= 2;
        char *nb = xmalloc(cap);
        if (d->out_len)
            memcpy(nb, d->out, d->out_len);
        wipe_free(d->out, d->out_cap);
        d->out = nb;
        d->out_cap = cap;
    }
    memcpy(d->out + d->out_len, data, n);
    d->out_len += n;
}

static void send_cancel(struct auth_dovecot *d, unsigned id)
{
    if (d->fd < 0 || d->state != CONN_READY)
        return;
    char line[32];
    int n = snprintf(line, sizeof line, "CANCEL\t%u\n", id);
    out_append(d, line, (size_t)n);
    conn_flush(d);
}

static void req_send(struct auth_dovecot_req *r)
{
    struct auth_dovecot *d = r->d;
    out_append(d, r->line, r->line_len);
    req_wipe_line(r);
    list_remove(&d->queued, &r->link);
    r->state = REQ_SENT;
    list_append(&d->sent, &r->link);
    hashmap_add(&d->sent_ids, r);
}

/* ---- connection ---------------------------------------------------------- */

static void timer_cb(evutil_socket_t fd, short what, void *arg);

static void conn_teardown(struct auth_dovecot *d)
{
    if (d->ev_read)
        event_free(d->ev_read);
    if (d->ev_write)
        event_free(d->ev_write);
    d->ev_read = d->ev_write = NULL;
    if (d->fd >= 0)
        close(d->fd);
    d->fd = -1;
    wipe_free(d->out, d->out_cap);
    d->out = NULL;
    d->out_len = d->out_cap = 0;
    free(d->in);
    d->in = NULL;
    d->in_len = 0;
    d->got_version = d->has_plain = 0;
    evtimer_del(d->ev_timer);
}

/* Drops the connection (if any); everything waiting on it gets TEMPFAIL.
 * backoff: the failure says the server is unusable, so wait before the next
 * attempt; otherwise a working connection was merely lost (Dovecot restarted)
 * and the next check may reconnect at once. */
static void conn_fail(struct auth_dovecot *d, const char *why, int backoff)
{
    size_t waiting = hashmap_count(&d->sent_ids);
    for (const struct list_node *n = d->queued.head; n; n = n->next)
        waiting++;
    if (backoff || waiting)
        log_warn("dovecot auth %s: %s (%zu request%s failed)", d->path, why, waiting, waiting == 1 ? "" : "s");
    char *msg = xasprintf("auth server unavailable: %s", why);
    conn_teardown(d);
    fail_list(&d->sent, AUTH_TEMPFAIL, msg);
    fail_list(&d->queued, AUTH_TEMPFAIL, msg);
    if (backoff) {
        d->state = CONN_BACKOFF;
        free(d->down_why);
        d->down_why = msg;
        struct timeval tv = ms_to_tv(d->retry_ms);
        evtimer_add(d->ev_timer, &tv);
        d->retry_ms = d->retry_ms > d->retry_max_ms / 2 ? d->retry_max_ms : d->retry_ms * 2;
    } else {
        d->state = CONN_IDLE;
        free(msg);
    }
}

static void conn_fail_errno(struct auth_dovecot *d, const char *what, int err, int backoff)
{
    char *why = xasprintf("%s: %s", what, strerror(err));
    conn_fail(d, why, backoff);
    free(why);
}

static void conn_flush(struct auth_dovecot *d)
{
    if (d->fd < 0 || d->state == CONN_CONNECTING)
        return;
    if (d->out_len > MAX_OUTPUT) {
        conn_fail(d, "server is not reading its socket", 1);
        return;
    }
    size_t done = 0;
    while (done < d->out_len) {
        ssize_t n = send(d->fd, d->out + done, d->out_len - done, MSG_NOSIGNAL);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        int err = n < 0 ? errno : EPIPE;
        conn_fail_errno(d, "write", err, d->state != CONN_READY);
        return;
    }
    if (done) {
        memmove(d->out, d->out + done, d->out_len - done);
        explicit_bzero(d->out + d->out_len - done, done);
        d->out_len -= done;
    }
    if (d->out_len)
        event_add(d->ev_write, NULL);
    else
        event_del(d->ev_write);
}

static void violation(struct auth_dovecot *d, const char *what)
{
    char *why = xasprintf("protocol error: %s", what);
    conn_fail(d, why, 1);
    free(why);
}

/* Value of "name=value" among args, or NULL; boolean flags match "name". */
static char *find_param(char **args, const char *name)
{
    size_t n = strlen(name);
    for (; *args; args++) {
        if (strncmp(*args, name, n) == 0 && (*args)[n] == '=')
            return *args + n + 1;
    }
    return NULL;
}

static int has_flag(char **args, const char *name)
{
    for (; *args; args++)
        if (strcmp(*args, name) == 0)
            return 1;
    return 0;
}

static void handshake_done(struct auth_dovecot *d)
{
    evtimer_del(d->ev_timer);
    if (!d->has_plain) {
        log_error("dovecot auth %s: server does not offer PLAIN; add it to auth_mechanisms", d->path);
        conn_fail(d, "server does not offer the PLAIN mechanism", 1);
        return;
    }
    d->state = CONN_READY;
    d->retry_ms = d->retry_min_ms;
    free(d->down_why);
    d->down_why = NULL;
    while (!list_empty(&d->queued))
        req_send(first_req(&d->queued));
    conn_flush(d);
}

static void handle_reply(struct auth_dovecot *d, const char *cmd, char **args)
{
    unsigned id;
    if (d->state != CONN_READY) {
        violation(d, "reply before the handshake ended");
        return;
    }
    if (parse_id(args[0], &id) < 0) {
        violation(d, "reply without a valid request id");
        return;
    }
    struct auth_dovecot_req *r = hashmap_get(&d->sent_ids, &id, sizeof id);
    if (!r) {
        /* A request we cancelled or gave up on may still be answered. */
        if (id < d->next_id)
            return;
        violation(d, "reply for a request never made");
        return;
    }
    char **params = args + 1;
    for (char **p = params; *p; p++)
        tab_unescape(*p);
    if (strcmp(cmd, "OK") == 0) {
        const char *user = find_param(params, "user");
        req_finish(r, AUTH_OK, user && *user ? user : r->user);
    } else if (strcmp(cmd, "FAIL") == 0) {
        const char *code = find_param(params, "code");
        const char *reason = find_param(params, "reason");
        int temp = has_flag(params, "temp") || (code && strcmp(code, "temp_fail") == 0);
        if (!reason || !*reason)
            reason = temp ? "temporary authentication failure" : "authentication failed";
        req_finish(r, temp ? AUTH_TEMPFAIL : AUTH_FAIL, reason);
    } else {
        /* CONT: PLAIN with an initial response is never challenged. */
        req_finish(r, AUTH_TEMPFAIL, "auth server sent an unexpected challenge");
        send_cancel(d, id);
    }
}

/* line is NUL-terminated in place (the LF replaced) and may be modified. */
static void handle_line(struct auth_dovecot *d, char *line, size_t len)
{
    if (memchr(line, '\0', len)) {
        violation(d, "NUL byte in a line");
        return;
    }
    size_t nfields = 1;
    for (size_t i = 0; i < len; i++)
        nfields += line[i] == '\t';
    char **args = xcalloc(nfields + 1, sizeof *args);
    size_t n = 0;
    for (char *p = line;;) {
        args[n++] = p;
        char *tab = strchr(p, '\t');
        if (!tab)
            break;
        *tab = '\0';
        p = tab + 1;
    }
    const char *cmd = args[0];

    if (!d->got_version) {
        if (strcmp(cmd, "VERSION") != 0 || !args[1] || strcmp(args[1], "1") != 0)
            violation(d, "expected VERSION 1 from the server");
        else
            d->got_version = 1;
    } else if (strcmp(cmd, "OK") == 0 || strcmp(cmd, "FAIL") == 0 || strcmp(cmd, "CONT") == 0) {
        handle_reply(d, cmd, args + 1);
    } else if (strcmp(cmd, "MECH") == 0 || strcmp(cmd, "SPID") == 0 || strcmp(cmd, "CUID") == 0 ||
               strcmp(cmd, "COOKIE") == 0 || strcmp(cmd, "DONE") == 0 || strcmp(cmd, "VERSION") == 0) {
        if (d->state != CONN_HANDSHAKE || strcmp(cmd, "VERSION") == 0)
            violation(d, "handshake line after the handshake");
        else if (strcmp(cmd, "DONE") == 0)
            handshake_done(d);
        else if (!args[1] || !*args[1])
            violation(d, "handshake line without its value");
        else if (strcmp(cmd, "MECH") == 0 && strcmp(args[1], "PLAIN") == 0)
            d->has_plain = 1;
    } else if (*cmd == '\0') {
        violation(d, "empty line");
    } else {
        /* Newer servers may add commands; the protocol lets us skip them. */
        log_debug("dovecot auth %s: ignoring unknown command from server", d->path);
    }
    free(args);
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct auth_dovecot *d = arg;
    ssize_t n = read(d->fd, d->in + d->in_len, AUTH_DOVECOT_MAX_LINE - d->in_len);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        conn_fail_errno(d, "read", errno, d->state != CONN_READY);
        return;
    }
    if (n == 0) {
        conn_fail(d, "server closed the connection", d->state != CONN_READY);
        return;
    }
    d->in_len += (size_t)n;
    size_t start = 0;
    char *nl;
    while ((nl = memchr(d->in + start, '\n', d->in_len - start)) != NULL) {
        *nl = '\0';
        size_t len = (size_t)(nl - (d->in + start));
        handle_line(d, d->in + start, len);
        if (d->fd < 0)
            return; /* the line cost us the connection; d->in is gone */
        start += len + 1;
    }
    memmove(d->in, d->in + start, d->in_len - start);
    d->in_len -= start;
    if (d->in_len == AUTH_DOVECOT_MAX_LINE)
        violation(d, "line too long");
}

static void conn_connected(struct auth_dovecot *d)
{
    d->state = CONN_HANDSHAKE;
    d->in = xmalloc(AUTH_DOVECOT_MAX_LINE);
    d->in_len = 0;
    event_add(d->ev_read, NULL);
    char hello[64];
    int n = snprintf(hello, sizeof hello, "VERSION\t%d\t%d\nCPID\t%ld\n", PROTOCOL_MAJOR, PROTOCOL_MINOR,
                     (long)getpid());
    out_append(d, hello, (size_t)n);
    struct timeval tv = ms_to_tv(d->request_ms);
    evtimer_add(d->ev_timer, &tv);
    conn_flush(d);
}

static void write_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct auth_dovecot *d = arg;
    if (d->state == CONN_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(d->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err) {
            conn_fail_errno(d, "connect", err, 1);
            return;
        }
        conn_connected(d);
        return;
    }
    conn_flush(d);
}

static void conn_connect(struct auth_dovecot *d)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (str_copy(sa.sun_path, d->path, sizeof sa.sun_path) >= sizeof sa.sun_path) {
        conn_fail(d, "socket path too long", 1);
        return;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        conn_fail_errno(d, "socket", errno, 1);
        return;
    }
    d->fd = fd;
    d->ev_read = event_new(d->base, fd, EV_READ | EV_PERSIST, read_cb, d);
    d->ev_write = event_new(d->base, fd, EV_WRITE | EV_PERSIST, write_cb, d);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        conn_connected(d);
        return;
    }
    if (errno == EINPROGRESS || errno == EINTR) {
        d->state = CONN_CONNECTING;
        event_add(d->ev_write, NULL);
        struct timeval tv = ms_to_tv(d->request_ms);
        evtimer_add(d->ev_timer, &tv);
        return;
    }
    /* EAGAIN here means the listen backlog is full: treat as a failure. */
    conn_fail_errno(d, "connect", errno, 1);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct auth_dovecot *d = arg;
    if (d->state == CONN_BACKOFF)
        d->state = CONN_IDLE; /* reconnect lazily, on the next check */
    else if (d->state == CONN_CONNECTING || d->state == CONN_HANDSHAKE)
        conn_fail(d, "timeout waiting for the handshake", 1);
}

/* ---- requests ------------------------------------------------------------ */

static void req_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct auth_dovecot_req *r = arg;
    if (r->state == REQ_DONE) {
        list_remove(&r->d->done, &r->link);
        r->cb(r->arg, r->result, r->why);
        req_free(r);
        return;
    }
    struct auth_dovecot *d = r->d;
    int was_sent = r->state == REQ_SENT;
    unsigned id = r->id;
    req_finish(r, AUTH_TEMPFAIL, "timeout waiting for the auth server");
    if (was_sent)
        send_cancel(d, id);
}

/* The AUTH line, built at its exact size so the password is never left in a
 * buffer that was grown and abandoned. */
static void req_build_line(struct auth_dovecot_req *r, const char *user, const char *password,
                           const struct auth_dovecot_info *info)
{
    struct strbuf sb = STRBUF_INIT;
    strbuf_printf(&sb, "AUTH\t%u\tPLAIN\tservice=", r->id);
    put_tabescaped(&sb, SERVICE_NAME);
    strbuf_puts(&sb, "\tnologin");
    if (info) {
        if (info->secured)
            strbuf_puts(&sb, "\tsecured");
        if (is_ip_address(info->local_ip)) {
            strbuf_puts(&sb, "\tlip=");
            put_tabescaped(&sb, info->local_ip);
        }
        if (is_ip_address(info->remote_ip)) {
            strbuf_puts(&sb, "\trip=");
            put_tabescaped(&sb, info->remote_ip);
        }
        if (info->local_port && info->local_port <= 65535)
            strbuf_printf(&sb, "\tlport=%u", info->local_port);
        if (info->remote_port && info->remote_port <= 65535)
            strbuf_printf(&sb, "\trport=%u", info->remote_port);
    }
    strbuf_puts(&sb, "\tresp=");

    /* Built in a buffer of its final size: no realloc leaves copies behind. */
    size_t rlen;
    char *resp = base64_sasl_plain(user, password, &rlen);
    r->line_len = sb.len + rlen + 1;
    r->line = xmalloc(r->line_len + 1);
    memcpy(r->line, sb.buf, sb.len);
    memcpy(r->line + sb.len, resp, rlen);
    r->line[r->line_len - 1] = '\n';
    r->line[r->line_len] = '\0';
    wipe_free(resp, rlen);
    strbuf_free(&sb);
}

struct auth_dovecot_req *auth_dovecot_check(struct auth_dovecot *d, const char *user, const char *password,
                                            const struct auth_dovecot_info *info, auth_cb cb, void *arg)
{
    struct auth_dovecot_req *r = xcalloc(1, sizeof *r);
    r->d = d;
    r->cb = cb;
    r->arg = arg;
    r->timer = evtimer_new(d->base, req_timer_cb, r);
    r->id = d->next_id++;
    if (d->next_id == 0)
        d->next_id = 1;
    r->state = REQ_QUEUED;
    list_append(&d->queued, &r->link);
    struct timeval tv = ms_to_tv(d->request_ms);
    evtimer_add(r->timer, &tv);

    if (!password)
        password = "";
    /* user and password are C strings, so an embedded NUL (which would
     * shift PLAIN's fields) cannot reach us; the caller's decoder refuses it. */
    if (!user || !*user) {
        req_finish(r, AUTH_FAIL, "empty user name");
        return r;
    }
    if (strlen(user) > AUTH_DOVECOT_MAX_USER || strlen(password) > AUTH_DOVECOT_MAX_PASSWORD) {
        req_finish(r, AUTH_FAIL, "user name or password too long");
        return r;
    }
    if (d->state == CONN_BACKOFF) {
        req_finish(r, AUTH_TEMPFAIL, d->down_why ? d->down_why : "auth server unavailable");
        return r;
    }
    r->user = xstrdup(user);
    req_build_line(r, user, password, info);

    switch (d->state) {
    case CONN_BACKOFF:
        break;
    case CONN_IDLE:
        conn_connect(d);
        break;
    case CONN_CONNECTING:
    case CONN_HANDSHAKE:
        break;
    case CONN_READY:
        req_send(r);
        conn_flush(d);
        break;
    }
    return r;
}

void auth_dovecot_cancel(struct auth_dovecot_req *r)
{
    if (!r)
        return;
    struct auth_dovecot *d = r->d;
    int was_sent = r->state == REQ_SENT;
    unsigned id = r->id;
    req_unlink(r);
    req_free(r);
    if (was_sent)
        send_cancel(d, id);
}

/* ---- lifetime ------------------------------------------------------------ */

struct auth_dovecot *auth_dovecot_new(struct event_base *base, const char *socket_path)
{
    struct auth_dovecot *d = xcalloc(1, sizeof *d);
    d->base = base;
    d->path = xstrdup(socket_path);
    d->fd = -1;
    d->state = CONN_IDLE;
    d->ev_timer = evtimer_new(base, timer_cb, d);
    d->next_id = 1;
    d->request_ms = AUTH_DOVECOT_REQUEST_TIMEOUT_MS;
    d->retry_min_ms = d->retry_ms = AUTH_DOVECOT_RETRY_MIN_MS;
    d->retry_max_ms = AUTH_DOVECOT_RETRY_MAX_MS;
    hashmap_init(&d->sent_ids, req_id_key, 0);
    return d;
}

void auth_dovecot_set_timeouts(struct auth_dovecot *d, unsigned request_ms, unsigned retry_min_ms,
                               unsigned retry_max_ms)
{
    if (request_ms)
        d->request_ms = request_ms;
    if (retry_min_ms)
        d->retry_min_ms = d->retry_ms = retry_min_ms;
    if (retry_max_ms)
        d->retry_max_ms = retry_max_ms;
    if (d->retry_max_ms < d->retry_min_ms)
        d->retry_max_ms = d->retry_min_ms;
}

static void free_list(struct list *l)
{
    while (!list_empty(l)) {
        struct auth_dovecot_req *r = first_req(l);
        req_unlink(r);
        req_free(r);
    }
}

void auth_dovecot_free(struct auth_dovecot *d)
{
    if (!d)
        return;
    free_list(&d->queued);
    free_list(&d->sent);
    free_list(&d->done);
    conn_teardown(d);
    event_free(d->ev_timer);
    hashmap_free(&d->sent_ids);
    free(d->down_why);
    free(d->path);
    free(d);
}
