/* Tests for auth_dovecot, the client of Dovecot's auth socket.
 *
 * (a) Against a scripted fake auth server on a UNIX socket served by the same
 *     event loop: the exact lines we send (handshake, AUTH fields, the decoded
 *     PLAIN response, CANCEL), and what we report for every kind of server
 *     behaviour: split handshake, no PLAIN, FAIL variants, CONT, long and
 *     over-long lines, lost connections, timeouts, cancels, thousands of
 *     requests answered out of order, tab-escaping, protocol violations,
 *     connection failure and backoff, freeing from inside a callback.
 * (b) Against a real Dovecot 2.3 started from tests/unit/dovecot-auth.conf.in
 *     in a temp dir (root only; skipped otherwise): PLAIN and SHA512-CRYPT
 *     passwords, wrong password, unknown user, cancel. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <crypt.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth_dovecot.h"
#include "test_fixture.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

#define HANDSHAKE                                                                                          \
    "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\nSPID\t4242\nCUID\t7\n"                 \
    "COOKIE\t0123456789abcdef0123456789abcdef\nDONE\n"

/* ---- results ------------------------------------------------------------- */

struct res {
    int calls;
    enum auth_result r;
    char why[512];
};

static int g_done; /* callbacks so far, all requests */
static int g_in_check; /* set while auth_dovecot_check runs */

static void res_cb(void *arg, enum auth_result r, const char *why)
{
    struct res *x = arg;
    assert_false(g_in_check);
    assert_non_null(why);
    x->calls++;
    x->r = r;
    snprintf(x->why, sizeof x->why, "%s", why);
    g_done++;
}

static struct auth_dovecot_req *check(struct auth_dovecot *d, const char *user, const char *pw,
                                      const struct auth_dovecot_info *info, struct res *x)
{
    g_in_check = 1;
    struct auth_dovecot_req *r = auth_dovecot_check(d, user, pw, info, res_cb, x);
    g_in_check = 0;
    assert_int_equal(x->calls, 0);
    return r;
}

/* ---- loop helpers -------------------------------------------------------- */

struct waiter {
    struct event_base *base;
    int (*pred)(void *);
    void *ctx;
    int expired;
};

static void wait_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct waiter *w = arg;
    if (w->pred && w->pred(w->ctx))
        event_base_loopbreak(w->base);
}

static void wait_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct waiter *w = arg;
    w->expired = 1;
    event_base_loopbreak(w->base);
}

/* Runs the loop until pred(ctx) holds (checked every ms) or ms pass. */
static int run_until(struct event_base *base, int (*pred)(void *), void *ctx, unsigned ms)
{
    struct waiter w = {base, pred, ctx, 0};
    if (pred && pred(ctx))
        return 1;
    struct event *tick = event_new(base, -1, EV_PERSIST, wait_tick, &w);
    struct event *dl = evtimer_new(base, wait_deadline, &w);
    struct timeval one = {0, 1000}, lim = {ms / 1000, (suseconds_t)(ms % 1000) * 1000};
    event_add(tick, &one);
    evtimer_add(dl, &lim);
    event_base_dispatch(base);
    event_free(tick);
    event_free(dl);
    return pred ? pred(ctx) : 1;
}

static void run_for(struct event_base *base, unsigned ms)
{
    run_until(base, NULL, NULL, ms);
}

static int done_at_least(void *ctx)
{
    return g_done >= *(int *)ctx;
}

static int wait_done(struct event_base *base, int n, unsigned ms)
{
    return run_until(base, done_at_least, &n, ms);
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* ---- base64 (independent of the module's encoder) ---------------------- */

static int b64val(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Decodes strictly (length multiple of 4, padding only at the end). */
static int b64decode(const char *s, struct strbuf *out)
{
    size_t n = strlen(s);
    if (n % 4)
        return -1;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            if (s[i + k] == '=' && i + 4 == n && k >= 2) {
                v[k] = 0;
                pad++;
            } else if (pad || (v[k] = b64val((unsigned char)s[i + k])) < 0) {
                return -1;
            }
        }
        unsigned long w = (unsigned long)v[0] << 18 | (unsigned long)v[1] << 12 | (unsigned long)v[2] << 6 |
                          (unsigned long)v[3];
        char b[3] = {(char)(w >> 16), (char)(w >> 8), (char)w};
        strbuf_append(out, b, (size_t)(3 - pad));
    }
    return 0;
}

/* ---- the fake server ----------------------------------------------------- */

struct fake;
typedef void (*line_fn)(struct fake *f, const char *line);

struct fake {
    struct event_base *base;
    char dir[64], path[128];
    int lfd;
    struct event *lev;
    int cfd;
    struct event *cev;
    int accepts, eofs;
    struct strbuf in;
    char **lines;
    size_t nlines, cap;
    const char *handshake; /* sent on accept; NULL: nothing */
    size_t drip;           /* >0: send the handshake this many bytes per ms */
    struct strbuf dripbuf;
    size_t dripoff;
    struct event *dripev;
    int handshake_sent;   /* all of it written */
    int auth_before_done; /* AUTH lines seen before the handshake was all out */
    line_fn on_line;
    void *ctx;
};

/* The fields of an AUTH line we got, with the PLAIN response decoded. */
struct smtpd_auth_line {
    unsigned id;
    char user[2048], pw[8192];
    char prefix[1024]; /* everything before "resp=" */
    int ok;
};

static void parse_auth(const char *line, struct smtpd_auth_line *a)
{
    memset(a, 0, sizeof *a);
    if (strncmp(line, "AUTH\t", 5) != 0)
        return;
    a->id = (unsigned)strtoul(line + 5, NULL, 10);
    const char *resp = strstr(line, "\tresp=");
    if (!resp)
        return;
    size_t plen = (size_t)(resp - line) + 1;
    if (plen >= sizeof a->prefix)
        return;
    memcpy(a->prefix, line, plen);
    a->prefix[plen] = '\0';
    struct strbuf raw = STRBUF_INIT;
    if (b64decode(resp + 6, &raw) == 0 && raw.len >= 2 && raw.buf[0] == '\0') {
        const char *u = raw.buf + 1;
        size_t ulen = strlen(u);
        if (1 + ulen < raw.len && ulen < sizeof a->user && raw.len - ulen - 2 < sizeof a->pw) {
            memcpy(a->user, u, ulen + 1);
            memcpy(a->pw, u + ulen + 1, raw.len - ulen - 2);
            a->pw[raw.len - ulen - 2] = '\0';
            a->ok = memchr(a->pw, '\0', raw.len - ulen - 2) == NULL;
        }
    }
    strbuf_free(&raw);
}

static void fake_send(struct fake *f, const char *s, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(f->cfd, s + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        assert_true(w > 0);
        off += (size_t)w;
    }
}

static void fake_sendf(struct fake *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fake_sendf(struct fake *f, const char *fmt, ...)
{
    struct strbuf sb = STRBUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    strbuf_vprintf(&sb, fmt, ap);
    va_end(ap);
    fake_send(f, sb.buf, sb.len);
    strbuf_free(&sb);
}

static void fake_close_client(struct fake *f)
{
    if (f->cev)
        event_free(f->cev);
    f->cev = NULL;
    if (f->cfd >= 0)
        close(f->cfd);
    f->cfd = -1;
    strbuf_reset(&f->in);
    if (f->dripev)
        event_del(f->dripev);
}

static void fake_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct fake *f = arg;
    char buf[65536];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) {
        f->eofs++;
        fake_close_client(f);
        return;
    }
    if (memchr(buf, '\0', (size_t)n))
        fail_msg("NUL byte sent to the auth server");
    strbuf_append(&f->in, buf, (size_t)n);
    char *nl;
    size_t start = 0;
    while ((nl = memchr(f->in.buf + start, '\n', f->in.len - start)) != NULL) {
        char *line = xstrndup(f->in.buf + start, (size_t)(nl - f->in.buf - start));
        start = (size_t)(nl - f->in.buf) + 1;
        f->lines = xgrow(f->lines, &f->cap, f->nlines + 1, sizeof *f->lines);
        f->lines[f->nlines++] = line;
        if (strncmp(line, "AUTH\t", 5) == 0 && !f->handshake_sent)
            f->auth_before_done++;
        if (f->on_line)
            f->on_line(f, line);
        if (f->cfd < 0)
            return; /* the handler closed the connection */
    }
    memmove(f->in.buf, f->in.buf + start, f->in.len - start);
    f->in.len -= start;
}

static void fake_drip(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct fake *f = arg;
    if (f->cfd < 0)
        return;
    size_t n = f->dripbuf.len - f->dripoff;
    if (n > f->drip)
        n = f->drip;
    fake_send(f, f->dripbuf.buf + f->dripoff, n);
    f->dripoff += n;
    if (f->dripoff == f->dripbuf.len) {
        f->handshake_sent = 1;
        event_del(f->dripev);
    }
}

static void fake_accept(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct fake *f = arg;
    int c = accept(fd, NULL, NULL);
    if (c < 0)
        return;
    if (f->cfd >= 0)
        fake_close_client(f);
    f->cfd = c;
    f->accepts++;
    f->handshake_sent = 0;
    f->cev = event_new(f->base, c, EV_READ | EV_PERSIST, fake_read, f);
    event_add(f->cev, NULL);
    if (!f->handshake)
        return;
    if (f->drip) {
        strbuf_reset(&f->dripbuf);
        strbuf_puts(&f->dripbuf, f->handshake);
        f->dripoff = 0;
        struct timeval ms = {0, 1000};
        event_add(f->dripev, &ms);
    } else {
        fake_send(f, f->handshake, strlen(f->handshake));
        f->handshake_sent = 1;
    }
}

static void fake_listen(struct fake *f)
{
    f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(f->lfd >= 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    str_copy(sa.sun_path, f->path, sizeof sa.sun_path);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(f->lfd, 64), 0);
    f->lev = event_new(f->base, f->lfd, EV_READ | EV_PERSIST, fake_accept, f);
    event_add(f->lev, NULL);
}

/* Default behaviour: alice/secret is right, everything else wrong. */
static void reply_default(struct fake *f, const char *line)
{
    struct smtpd_auth_line a;
    parse_auth(line, &a);
    if (!a.id)
        return;
    if (a.ok && strcmp(a.user, "alice") == 0 && strcmp(a.pw, "secret") == 0)
        fake_sendf(f, "OK\t%u\tuser=alice\n", a.id);
    else
        fake_sendf(f, "FAIL\t%u\tuser=%s\n", a.id, a.user);
}

static struct fake *fake_new(struct event_base *base, int listen_now)
{
    struct fake *f = xcalloc(1, sizeof *f);
    f->base = base;
    f->lfd = f->cfd = -1;
    assert_int_equal(tf_tmpdir_make(f->dir, sizeof f->dir, "authdv"), 0);
    snprintf(f->path, sizeof f->path, "%s/auth", f->dir);
    f->handshake = HANDSHAKE;
    f->on_line = reply_default;
    f->dripev = event_new(base, -1, EV_PERSIST, fake_drip, f);
    if (listen_now)
        fake_listen(f);
    return f;
}

static void fake_free(struct fake *f)
{
    fake_close_client(f);
    if (f->lev)
        event_free(f->lev);
    if (f->lfd >= 0)
        close(f->lfd);
    event_free(f->dripev);
    unlink(f->path);
    rmdir(f->dir);
    for (size_t i = 0; i < f->nlines; i++)
        free(f->lines[i]);
    free(f->lines);
    strbuf_free(&f->in);
    strbuf_free(&f->dripbuf);
    free(f);
}

static int fake_has_line(struct fake *f, const char *line)
{
    for (size_t i = 0; i < f->nlines; i++)
        if (strcmp(f->lines[i], line) == 0)
            return 1;
    return 0;
}

static size_t fake_count_prefix(struct fake *f, const char *prefix)
{
    size_t n = 0;
    for (size_t i = 0; i < f->nlines; i++)
        n += strncmp(f->lines[i], prefix, strlen(prefix)) == 0;
    return n;
}

/* The AUTH line received for user, parsed; fails the test if none. */
static void fake_auth_for(struct fake *f, const char *user, struct smtpd_auth_line *a)
{
    for (size_t i = 0; i < f->nlines; i++) {
        parse_auth(f->lines[i], a);
        if (a->ok && strcmp(a->user, user) == 0)
            return;
    }
    fail_msg("no AUTH line for %s", user);
}

struct fx {
    struct event_base *base;
    struct fake *f;
    struct auth_dovecot *d;
};

static int setup(void **state)
{
    struct fx *x = xcalloc(1, sizeof *x);
    x->base = event_base_new();
    x->f = fake_new(x->base, 1);
    x->d = auth_dovecot_new(x->base, x->f->path);
    auth_dovecot_set_timeouts(x->d, 2000, 100, 400);
    g_done = 0;
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    struct fx *x = *state;
    auth_dovecot_free(x->d);
    fake_free(x->f);
    event_base_free(x->base);
    free(x);
    return 0;
}

/* ---- (a) protocol tests against the fake ----------------------------------- */

static void test_handshake_split_then_ok(void **state)
{
    struct fx *x = *state;
    x->f->drip = 3;
    struct res r1 = {0};
    struct auth_dovecot_info info = {"127.0.0.1", "192.0.2.7", 587, 40000, 1};
    check(x->d, "alice", "secret", &info, &r1);
    assert_true(wait_done(x->base, 1, 3000));
    assert_int_equal(r1.calls, 1);
    assert_int_equal(r1.r, AUTH_OK);
    assert_string_equal(r1.why, "alice");
    assert_int_equal(x->f->auth_before_done, 0);
    assert_true(x->f->nlines >= 3);
    assert_string_equal(x->f->lines[0], "VERSION\t1\t2");
    char cpid[32];
    snprintf(cpid, sizeof cpid, "CPID\t%ld", (long)getpid());
    assert_string_equal(x->f->lines[1], cpid);
    assert_string_equal(x->f->lines[2], "AUTH\t1\tPLAIN\tservice=smtp\tnologin\tsecured\tlip=127.0.0.1\t"
                                        "rip=192.0.2.7\tlport=587\trport=40000\tresp=AGFsaWNlAHNlY3JldA==");
    /* a second check reuses the connection, no new handshake */
    struct res r2 = {0};
    check(x->d, "alice", "wrong", NULL, &r2);
    assert_true(wait_done(x->base, 2, 3000));
    assert_int_equal(r2.r, AUTH_FAIL);
    assert_string_equal(r2.why, "authentication failed");
    assert_int_equal(x->f->accepts, 1);
    assert_int_equal(fake_count_prefix(x->f, "VERSION"), 1);
    assert_string_equal(x->f->lines[3], "AUTH\t2\tPLAIN\tservice=smtp\tnologin\tresp=AGFsaWNlAHdyb25n");
}

static void test_requests_wait_for_handshake(void **state)
{
    struct fx *x = *state;
    x->f->handshake = NULL; /* the test sends it by hand */
    struct res r[3] = {{0}};
    check(x->d, "alice", "secret", NULL, &r[0]);
    check(x->d, "alice", "bad", NULL, &r[1]);
    run_for(x->base, 50);
    assert_int_equal(x->f->accepts, 1);
    assert_int_equal(fake_count_prefix(x->f, "AUTH"), 0);
    check(x->d, "alice", "secret", NULL, &r[2]);
    /* everything but DONE, then DONE alone */
    const char *hs = HANDSHAKE;
    fake_send(x->f, hs, strlen(hs) - 5);
    run_for(x->base, 30);
    assert_int_equal(fake_count_prefix(x->f, "AUTH"), 0);
    fake_send(x->f, "DONE\n", 5);
    assert_true(wait_done(x->base, 3, 3000));
    assert_int_equal(r[0].r, AUTH_OK);
    assert_int_equal(r[1].r, AUTH_FAIL);
    assert_int_equal(r[2].r, AUTH_OK);
    assert_int_equal(fake_count_prefix(x->f, "AUTH"), 3);
}

static void test_mech_without_plain(void **state)
{
    struct fx *x = *state;
    x->f->handshake = "VERSION\t1\t2\nMECH\tLOGIN\tplaintext\nMECH\tCRAM-MD5\tdictionary\tactive\n"
                      "MECH\tplainish\nSPID\t1\nCUID\t1\nCOOKIE\tab\nDONE\n";
    struct res r1 = {0}, r2 = {0};
    check(x->d, "alice", "secret", NULL, &r1);
    assert_true(wait_done(x->base, 1, 3000));
    assert_int_equal(r1.r, AUTH_TEMPFAIL);
    assert_non_null(strstr(r1.why, "PLAIN"));
    assert_int_equal(fake_count_prefix(x->f, "AUTH"), 0);
    run_until(x->base, NULL, NULL, 20);
    assert_int_equal(x->f->eofs, 1); /* we hung up */
    /* the server is unusable: the next check fails at once, no new attempt */
    check(x->d, "alice", "secret", NULL, &r2);
    assert_true(wait_done(x->base, 2, 50));
    assert_int_equal(r2.r, AUTH_TEMPFAIL);
    assert_non_null(strstr(r2.why, "PLAIN"));
    assert_int_equal(x->f->accepts, 1);
}

static void reply_fail_variants(struct fake *f, const char *line)
{
    struct smtpd_auth_line a;
    parse_auth(line, &a);
    if (!a.id)
        return;
    if (strcmp(a.user, "t1") == 0)
        fake_sendf(f, "FAIL\t%u\tuser=t1\ttemp\n", a.id);
    else if (strcmp(a.user, "t2") == 0)
        fake_sendf(f, "FAIL\t%u\tuser=t2\n", a.id);
    else if (strcmp(a.user, "t3") == 0)
        fake_sendf(f, "FAIL\t%u\tcode=temp_fail\treason=passdb down\n", a.id);
    else if (strcmp(a.user, "t4") == 0)
        fake_sendf(f, "FAIL\t%u\treason=Password expired\tcode=pass_expired\tunknown_flag\n", a.id);
    else if (strcmp(a.user, "t5") == 0)
        fake_sendf(f, "OK\t%u\tuser=t5@example.org\toriginal_user=T5\textra=x=y\n", a.id);
    else if (strcmp(a.user, "t6") == 0)
        fake_sendf(f, "FAIL\t%u\ttemp\n", a.id);
    else if (strcmp(a.user, "t7") == 0)
        fake_sendf(f, "OK\t%u\n", a.id);
}

static void test_fail_variants(void **state)
{
    struct fx *x = *state;
    x->f->on_line = reply_fail_variants;
    struct res r[7] = {{0}};
    const char *users[7] = {"t1", "t2", "t3", "t4", "t5", "t6", "t7"};
    for (int i = 0; i < 7; i++)
        check(x->d, users[i], "pw", NULL, &r[i]);
    assert_true(wait_done(x->base, 7, 3000));
    assert_int_equal(r[0].r, AUTH_TEMPFAIL);
    assert_string_equal(r[0].why, "temporary authentication failure");
    assert_int_equal(r[1].r, AUTH_FAIL);
    assert_string_equal(r[1].why, "authentication failed");
    assert_int_equal(r[2].r, AUTH_TEMPFAIL);
    assert_string_equal(r[2].why, "passdb down");
    assert_int_equal(r[3].r, AUTH_FAIL);
    assert_string_equal(r[3].why, "Password expired");
    assert_int_equal(r[4].r, AUTH_OK);
    assert_string_equal(r[4].why, "t5@example.org");
    assert_int_equal(r[5].r, AUTH_TEMPFAIL);
    assert_int_equal(r[6].r, AUTH_OK);
    assert_string_equal(r[6].why, "t7"); /* no user=: the name we sent */
    for (int i = 0; i < 7; i++)
        assert_int_equal(r[i].calls, 1);
    assert_int_equal(x->f->accepts, 1);
}

static void reply_cont(struct fake *f, const char *line)
{
    struct smtpd_auth_line a;
    parse_auth(line, &a);
    if (a.id && strcmp(a.user, "challenged") == 0)
        fake_sendf(f, "CONT\t%u\t\n", a.id);
    else
        reply_default(f, line);
}

static void test_cont_is_tempfail_and_cancelled(void **state)
{
    struct fx *x = *state;
    x->f->on_line = reply_cont;
    struct res r1 = {0}, r2 = {0};
    check(x->d, "challenged", "pw", NULL, &r1);
    assert_true(wait_done(x->base, 1, 3000));
    assert_int_equal(r1.r, AUTH_TEMPFAIL);
    assert_non_null(strstr(r1.why, "challenge"));
    run_for(x->base, 20);
    assert_true(fake_has_line(x->f, "CANCEL\t1"));
    /* the connection is still good */
    check(x->d, "alice", "secret", NULL, &r2);
    assert_true(wait_done(x->base, 2, 3000));
    assert_int_equal(r2.r, AUTH_OK);
    assert_int_equal(x->f->accepts, 1);
    assert_int_equal(x->f->eofs, 0);
    assert_int_equal(r1.calls, 1);
}

static void reply_long(struct fake *f, const char *line)
{
    struct smtpd_auth_line a;
    parse_auth(line, &a);
    if (!a.id)
        return;
    if (strcmp(a.user, "long") == 0) {
        /* a whole line of 65536 bytes, LF included: the most we accept */
        struct strbuf sb = STRBUF_INIT;
        strbuf_printf(&sb, "OK\t%u\tuser=long\tx=", a.id);
        while (sb.len < AUTH_DOVECOT_MAX_LINE - 1)
            strbuf_putc(&sb, 'a');
        strbuf_putc(&sb, '\n');
        assert_int_equal(sb.len, AUTH_DOVECOT_MAX_LINE);
        fake_send(f, sb.buf, sb.len);
        strbuf_free(&sb);
    } else if (strcmp(a.user, "toolong") == 0) {
        struct strbuf sb = STRBUF_INIT;
        strbuf_printf(&sb, "OK\t%u\tuser=toolong\tx=", a.id);
        while (sb.len < AUTH_DOVECOT_MAX_LINE)
            strbuf_putc(&sb, 'b');
        strbuf_putc(&sb, '\n'); /* one byte too many */
        fake_send(f, sb.buf, sb.len);
        strbuf_free(&sb);
    } else {
        reply_default(f, line);
    }
}

static void test_line_length_limit(void **state)
{
    struct fx *x = *state;
    x->f->on_line = reply_long;
    struct res r1 = {0}, r2 = {0}, r3 = {0}, r4 = {0}, r5 = {0};
    check(x->d, "long", "pw", NULL, &r1);
    assert_true(wait_done(x->base, 1, 3000));
    assert_int_equal(r1.r, AUTH_OK);
    assert_string_equal(r1.why, "long");

    check(x->d, "toolong", "pw", NULL, &r2);
    assert_true(wait_done(x->base, 2, 3000));
    assert_int_equal(r2.r, AUTH_TEMPFAIL);
    assert_non_null(strstr(r2.why, "too long"));
    run_for(x->base, 20);
    assert_int_equal(x->f->eofs, 1);

    /* a broken server: back off; checks meanwhile fail at once */
    check(x->d, "alice", "secret", NULL, &r3);
    assert_true(wait_done(x->base, 3, 50));
    assert_int_equal(r3.r, AUTH_TEMPFAIL);
    assert_int_equal(x->f->accepts, 1);
    run_for(x->base, 150); /* > retry_min (100 ms) */
    check(x->d, "alice", "secret", NULL, &r4);
    assert_true(wait_done(x->base, 4, 3000));
    assert_int_equal(r4.r, AUTH_OK);
    assert_int_equal(x->f->accepts, 2);
    check(x->d, "alice", "secret", NULL, &r5);
    assert_true(wait_done(x->base, 5, 3000));
    assert_int_equal(r5.r, AUTH_OK);
}

static void reply_close(struct fake *f, const char *line)
{
    struct smtpd_auth_line a;
    parse_auth(line, &a);
    if (a.id && strcmp(a.user, "closer") == 0)
        fake_close_client(f);
    else if (a.id && strcmp(a.user, "hold") == 0)
        return;
    else
        reply_default(f, line);
}

static void test_server_closes_mid_request(void **state)
{
    struct fx *x = *state;
    x->f->on_line = reply_close;
    struct res r[3] = {{0}}, r4 = {0};
    check(x->d, "hold", "pw", NULL, &r[0]);
    check(x->d, "hold", "pw2", NULL, &r[1]);
    check(x->d, "closer", "pw", NULL, &r[2]);
    assert_true(wait_done(x->base, 3, 3000));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].r, AUTH_TEMPFAIL);
        assert_non_null(strstr(r[i].why, "closed"));
    }
    /* the connection had worked: reconnect at once, no backoff */
    check(x->d, "alice", "secret", NULL, &r4);
    assert_true(wait_done(x->base, 4, 3000));
    assert_int_equal(r4.r, AUTH_OK);
    assert_int_equal(x->f->accepts, 2);
}

static void reply_slow(struct fake *f, const char *line)
{
    struct smtpd_auth_line a;
    parse_auth(line, &a);
    if (a.id && strcmp(a.user, "slow") == 0)
        return;
    reply_default(f, line);
}

static void test_timeout(void **state)
{
    struct fx *x = *state;
    x->f->on_line = reply_slow;
    auth_dovecot_set_timeouts(x->d, 150, 0, 0);
    struct res r1 = {0}, r2 = {0};
    long t0 = now_ms();
    check(x->d, "slow", "pw", NULL, &r1);
    assert_true(wait_done(x->base, 1, 3000));
    long elapsed = now_ms() - t0;
    assert_true(elapsed >= 140);
    assert_true(elapsed < 1500);
    assert_int_equal(r1.r, AUTH_TEMPFAIL);
    assert_non_null(strstr(r1.why, "timeout"));
    run_for(x->base, 20);
    assert_true(fake_has_line(x->f, "CANCEL\t1"));
    /* a late answer is ignored, the connection stays */
    fake_sendf(x->f, "OK\t1\tuser=slow\n");
    run_for(x->base, 20);
    assert_int_equal(r1.calls, 1);
    check(x->d, "alice", "secret", NULL, &r2);
    assert_true(wait_done(x->base, 2, 3000));
    assert_int_equal(r2.r, AUTH_OK);
    assert_int_equal(x->f->accepts, 1);
}

static void test_handshake_timeout(void **state)
{
    struct fx *x = *state;
    x->f->handshake = "VERSION\t1\t2\nMECH\tPLAIN\n"; /* and then nothing */
    auth_dovecot_set_timeouts(x->d, 150, 0, 0);
    struct res r1 = {0};
    check(x->d, "alice", "secret", NULL, &r1);
    assert_true(wait_done(x->base, 1, 3000));
    assert_int_equal(r1.r, AUTH_TEMPFAIL);
    assert_non_null(strstr(r1.why, "timeout"));
    run_for(x->base, 50);
    assert_int_equal(x->f->eofs, 1);
    assert_int_equal(fake_count_prefix(x->f, "AUTH"), 0);
}

static void test_cancel(void **state)
{
    struct fx *x = *state;
    x->f->handshake = NULL;
    x->f->on_line = reply_slow;
    struct res ra = {0}, rb = {0}, rc = {0}, rd = {0}, re = {0};
    /* queued, cancelled before the handshake: never sent */
    struct auth_dovecot_req *a = check(x->d, "queued", "pw", NULL, &ra);
    check(x->d, "alice", "secret", NULL, &rb);
    run_for(x->base, 20);
    auth_dovecot_cancel(a);
    fake_send(x->f, HANDSHAKE, strlen(HANDSHAKE));
    assert_true(wait_done(x->base, 1, 3000));
    assert_int_equal(rb.r, AUTH_OK);
    assert_int_equal(fake_count_prefix(x->f, "AUTH"), 1);
    assert_int_equal(fake_count_prefix(x->f, "CANCEL"), 0);

    /* sent, then cancelled: Dovecot is told, a late reply is ignored */
    struct auth_dovecot_req *c = check(x->d, "slow", "pw", NULL, &rc);
    run_for(x->base, 20);
    assert_int_equal(fake_count_prefix(x->f, "AUTH"), 2);
    struct smtpd_auth_line al;
    fake_auth_for(x->f, "slow", &al);
    auth_dovecot_cancel(c);
    run_for(x->base, 20);
    char want[32];
    snprintf(want, sizeof want, "CANCEL\t%u", al.id);
    assert_true(fake_has_line(x->f, want));
    fake_sendf(x->f, "FAIL\t%u\tuser=slow\n", al.id);

    /* cancelled while its result was already decided */
    struct auth_dovecot_req *e = check(x->d, "", "pw", NULL, &re);
    auth_dovecot_cancel(e);
    check(x->d, "alice", "secret", NULL, &rd);
    assert_true(wait_done(x->base, 2, 3000));
    run_for(x->base, 20);
    assert_int_equal(rd.r, AUTH_OK);
    assert_int_equal(ra.calls + rc.calls + re.calls, 0);
    assert_int_equal(g_done, 2);
    assert_int_equal(x->f->accepts, 1);
    assert_int_equal(x->f->eofs, 0);
}

#define MANY 2000

struct many {
    unsigned ids[MANY];
    int good[MANY];
    int n;
};

static void collect_many(struct fake *f, const char *line)
{
    struct many *m = f->ctx;
    struct smtpd_auth_line a;
    parse_auth(line, &a);
    if (!a.id)
        return;
    assert_true(m->n < MANY);
    int i = atoi(a.user + 1);
    char want[32];
    snprintf(want, sizeof want, "p%d", i);
    m->ids[m->n] = a.id;
    m->good[m->n] = strcmp(a.pw, want) == 0;
    m->n++;
}

static int many_collected(void *ctx)
{
    return ((struct many *)ctx)->n == MANY;
}

static void test_many_concurrent(void **state)
{
    struct fx *x = *state;
    struct many *m = xcalloc(1, sizeof *m);
    x->f->ctx = m;
    x->f->on_line = collect_many;
    struct res *r = xcalloc(MANY, sizeof *r);
    for (int i = 0; i < MANY; i++) {
        char user[32], pw[32];
        snprintf(user, sizeof user, "u%d", i);
        snprintf(pw, sizeof pw, i % 3 ? "p%d" : "x%d", i);
        check(x->d, user, pw, NULL, &r[i]);
    }
    assert_true(run_until(x->base, many_collected, m, 5000));
    /* answer in reverse order, all in one burst */
    struct strbuf sb = STRBUF_INIT;
    for (int k = MANY - 1; k >= 0; k--) {
        if (m->good[k])
            strbuf_printf(&sb, "OK\t%u\tuser=canon%u\n", m->ids[k], m->ids[k]);
        else
            strbuf_printf(&sb, "FAIL\t%u\n", m->ids[k]);
    }
    fake_send(x->f, sb.buf, sb.len);
    strbuf_free(&sb);
    assert_true(wait_done(x->base, MANY, 5000));
    for (int i = 0; i < MANY; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].r, i % 3 ? AUTH_OK : AUTH_FAIL);
        if (i % 3) {
            char want[32];
            snprintf(want, sizeof want, "canon%d", i + 1); /* ids are 1.. in check order */
            assert_string_equal(r[i].why, want);
        }
    }
    assert_int_equal(x->f->accepts, 1);
    free(r);
    free(m);
}

static void reply_escaped(struct fake *f, const char *line)
{
    struct smtpd_auth_line a;
    parse_auth(line, &a);
    if (!a.id)
        return;
    if (strcmp(a.user, "j\xc3\xb6rg@example.org") == 0)
        /* \001c is a plain c, \0011 a \001, \001t a TAB, \001n an LF */
        fake_sendf(f, "OK\t%u\tuser=ab\001cd\0011e\001tf\001ng\n", a.id);
    else
        fake_sendf(f, "FAIL\t%u\treason=Bad\001tthing\001r\001n\033[1m\n", a.id);
}

static void test_escaping(void **state)
{
    struct fx *x = *state;
    x->f->on_line = reply_escaped;
    const char *pw = "p\tw\nd\001x\r\\ \xe2\x82\xac=:";
    struct res r1 = {0}, r2 = {0};
    /* addresses that are not addresses are left out, not injected */
    struct auth_dovecot_info bad = {"1.2.3.4\tsecured", "192.0.2.1\nFAIL\t1", 70000, 0, 0};
    check(x->d, "j\xc3\xb6rg@example.org", pw, &bad, &r1);
    check(x->d, "mallory\tsecured", "pw\n", NULL, &r2);
    assert_true(wait_done(x->base, 2, 3000));
    assert_int_equal(r1.r, AUTH_OK);
    assert_string_equal(r1.why, "abcd?e?f?g");
    assert_int_equal(r2.r, AUTH_FAIL);
    assert_string_equal(r2.why, "Bad?thing???[1m");

    struct smtpd_auth_line a;
    fake_auth_for(x->f, "j\xc3\xb6rg@example.org", &a);
    assert_string_equal(a.pw, pw);
    assert_string_equal(a.prefix, "AUTH\t1\tPLAIN\tservice=smtp\tnologin\t");
    fake_auth_for(x->f, "mallory\tsecured", &a);
    assert_string_equal(a.pw, "pw\n");
    assert_string_equal(a.prefix, "AUTH\t2\tPLAIN\tservice=smtp\tnologin\t");
    /* every line we sent is a single, well-formed line */
    for (size_t i = 0; i < x->f->nlines; i++) {
        assert_null(strchr(x->f->lines[i], '\r'));
        if (strncmp(x->f->lines[i], "AUTH", 4) == 0) {
            size_t tabs = 0;
            for (const char *p = x->f->lines[i]; *p; p++)
                tabs += *p == '\t';
            assert_int_equal(tabs, 5);
        }
    }
    /* IPv6 addresses pass; a zone id does not */
    struct res r3 = {0}, r4 = {0};
    struct auth_dovecot_info v6 = {"2001:db8::25", "::ffff:192.0.2.9", 25, 1, 0};
    struct auth_dovecot_info zone = {"fe80::1%eth0", "", 0, 0, 0};
    check(x->d, "alice", "secret", &v6, &r3);
    check(x->d, "alice", "secret", &zone, &r4);
    assert_true(wait_done(x->base, 4, 3000));
    assert_true(fake_has_line(x->f, "AUTH\t3\tPLAIN\tservice=smtp\tnologin\tlip=2001:db8::25\t"
                                    "rip=::ffff:192.0.2.9\tlport=25\trport=1\tresp=AGFsaWNlAHNlY3JldA=="));
    assert_true(fake_has_line(x->f, "AUTH\t4\tPLAIN\tservice=smtp\tnologin\tresp=AGFsaWNlAHNlY3JldA=="));
}

static void test_refused_credentials(void **state)
{
    struct fx *x = *state;
    struct res r[5] = {{0}};
    char *longuser = xmalloc(AUTH_DOVECOT_MAX_USER + 2);
    memset(longuser, 'u', AUTH_DOVECOT_MAX_USER + 1);
    longuser[AUTH_DOVECOT_MAX_USER + 1] = '\0';
    char *longpw = xmalloc(AUTH_DOVECOT_MAX_PASSWORD + 2);
    memset(longpw, 'p', AUTH_DOVECOT_MAX_PASSWORD + 1);
    longpw[AUTH_DOVECOT_MAX_PASSWORD + 1] = '\0';
    check(x->d, "", "pw", NULL, &r[0]);
    check(x->d, NULL, "pw", NULL, &r[1]);
    check(x->d, longuser, "pw", NULL, &r[2]);
    check(x->d, "alice", longpw, NULL, &r[3]);
    assert_true(wait_done(x->base, 4, 1000));
    for (int i = 0; i < 4; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].r, AUTH_FAIL);
    }
    assert_int_equal(x->f->accepts, 0); /* nothing worth connecting for */
    /* the longest allowed ones do go out */
    longuser[AUTH_DOVECOT_MAX_USER] = '\0';
    longpw[AUTH_DOVECOT_MAX_PASSWORD] = '\0';
    check(x->d, longuser, longpw, NULL, &r[4]);
    assert_true(wait_done(x->base, 5, 3000));
    assert_int_equal(r[4].r, AUTH_FAIL);
    struct smtpd_auth_line a;
    fake_auth_for(x->f, longuser, &a);
    assert_string_equal(a.pw, longpw);
    free(longuser);
    free(longpw);
}

/* Each case: what the server says after our AUTH (or instead of a handshake). */
struct violation_case {
    const char *handshake;
    const char *reply; /* %u: the request id */
    const char *why;   /* expected in the reason */
};

static const struct violation_case *g_vcase;

static void reply_violation(struct fake *f, const char *line)
{
    struct smtpd_auth_line a;
    parse_auth(line, &a);
    if (a.id && g_vcase->reply)
        fake_sendf(f, g_vcase->reply, a.id);
}

static void test_protocol_violations(void **state)
{
    struct fx *x = *state;
    static const struct violation_case cases[] = {
        {"VERSION\t2\t0\n" HANDSHAKE, NULL, "VERSION"},
        {"MECH\tPLAIN\n" HANDSHAKE, NULL, "VERSION"},
        {"VERSION\t1\t2\nOK\t1\tuser=x\n", NULL, "before the handshake"},
        {HANDSHAKE, "OK\t99999\tuser=x\n%.0u", "never made"},
        {HANDSHAKE, "OK\tabc\n%.0u", "request id"},
        {HANDSHAKE, "FAIL\n%.0u", "request id"},
        {HANDSHAKE, "OK\t0\n%.0u", "request id"},
        {HANDSHAKE, "MECH\tPLAIN\n%.0u", "after the handshake"},
        {HANDSHAKE, "\n%.0u", "empty line"},
        {"VERSION\t1\t2\nMECH\n" HANDSHAKE, NULL, "without its value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        g_vcase = &cases[i];
        struct fake *f = fake_new(x->base, 1);
        f->handshake = cases[i].handshake;
        f->on_line = reply_violation;
        struct auth_dovecot *d = auth_dovecot_new(x->base, f->path);
        struct res r = {0};
        g_done = 0;
        check(d, "alice", "secret", NULL, &r);
        assert_true(wait_done(x->base, 1, 3000));
        assert_int_equal(r.r, AUTH_TEMPFAIL);
        if (!strstr(r.why, cases[i].why))
            fail_msg("case %zu: why \"%s\" lacks \"%s\"", i, r.why, cases[i].why);
        run_for(x->base, 10);
        assert_int_equal(f->eofs, 1);
        auth_dovecot_free(d);
        fake_free(f);
    }
}

static void reply_with_unknown(struct fake *f, const char *line)
{
    struct smtpd_auth_line a;
    parse_auth(line, &a);
    if (a.id)
        fake_sendf(f, "NOTIFY\tsomething\tnew\nOK\t%u\tuser=alice\n", a.id);
}

static void test_unknown_commands_ignored(void **state)
{
    struct fx *x = *state;
    x->f->handshake = "VERSION\t1\t3\nMECH\tPLAIN\tplaintext\nX-NEW\tthing\nSPID\t1\nCUID\t1\nCOOKIE\tc\nDONE\n";
    x->f->on_line = reply_with_unknown;
    struct res r = {0};
    check(x->d, "alice", "secret", NULL, &r);
    assert_true(wait_done(x->base, 1, 3000));
    assert_int_equal(r.r, AUTH_OK);
    assert_int_equal(x->f->eofs, 0);
}

static void test_connect_failure_and_backoff(void **state)
{
    struct fx *x = *state;
    struct fake *f = fake_new(x->base, 0); /* nothing listens yet */
    struct auth_dovecot *d = auth_dovecot_new(x->base, f->path);
    auth_dovecot_set_timeouts(d, 2000, 200, 400);
    struct res r1 = {0}, r2 = {0}, r3 = {0}, r4 = {0};
    check(d, "alice", "secret", NULL, &r1);
    assert_true(wait_done(x->base, 1, 1000));
    assert_int_equal(r1.r, AUTH_TEMPFAIL);
    assert_non_null(strstr(r1.why, "connect"));
    assert_non_null(strstr(r1.why, strerror(ENOENT)));
    fake_listen(f);
    /* within the backoff: no attempt, immediate TEMPFAIL */
    long t0 = now_ms();
    check(d, "alice", "secret", NULL, &r2);
    assert_true(wait_done(x->base, 2, 1000));
    assert_true(now_ms() - t0 < 100);
    assert_int_equal(r2.r, AUTH_TEMPFAIL);
    assert_non_null(strstr(r2.why, "connect"));
    assert_int_equal(f->accepts, 0);
    run_for(x->base, 250);
    check(d, "alice", "secret", NULL, &r3);
    assert_true(wait_done(x->base, 3, 3000));
    assert_int_equal(r3.r, AUTH_OK);
    assert_int_equal(f->accepts, 1);
    /* a path that cannot be a UNIX socket address */
    char path[200];
    memset(path, 'x', sizeof path - 1);
    path[0] = '/';
    path[sizeof path - 1] = '\0';
    struct auth_dovecot *d2 = auth_dovecot_new(x->base, path);
    check(d2, "alice", "secret", NULL, &r4);
    assert_true(wait_done(x->base, 4, 1000));
    assert_int_equal(r4.r, AUTH_TEMPFAIL);
    assert_non_null(strstr(r4.why, "too long"));
    auth_dovecot_free(d2);
    auth_dovecot_free(d);
    fake_free(f);
}

struct reentry {
    struct auth_dovecot **d;
    int calls;
    struct res follow;
};

static void free_in_cb(void *arg, enum auth_result r, const char *why)
{
    (void)r;
    (void)why;
    struct reentry *re = arg;
    re->calls++;
    g_done++;
    auth_dovecot_free(*re->d);
    *re->d = NULL;
}

static void check_in_cb(void *arg, enum auth_result r, const char *why)
{
    (void)why;
    struct reentry *re = arg;
    re->calls++;
    g_done++;
    assert_int_equal(r, AUTH_OK);
    auth_dovecot_check(*re->d, "alice", "wrong", NULL, res_cb, &re->follow);
}

static void reply_all_at_once(struct fake *f, const char *line)
{
    struct smtpd_auth_line a;
    parse_auth(line, &a);
    if (a.id == 3)
        fake_sendf(f, "OK\t1\tuser=alice\nOK\t2\tuser=alice\nOK\t3\tuser=alice\n");
}

static void test_callback_reentry(void **state)
{
    struct fx *x = *state;
    /* a callback starting a new check */
    struct reentry re1 = {&x->d, 0, {0}};
    auth_dovecot_check(x->d, "alice", "secret", NULL, check_in_cb, &re1);
    assert_true(wait_done(x->base, 2, 3000));
    assert_int_equal(re1.calls, 1);
    assert_int_equal(re1.follow.calls, 1);
    assert_int_equal(re1.follow.r, AUTH_FAIL);

    /* a callback freeing the client while two more results are decided */
    struct fake *f = fake_new(x->base, 1);
    f->on_line = reply_all_at_once;
    struct auth_dovecot *d = auth_dovecot_new(x->base, f->path);
    struct reentry re2 = {&d, 0, {0}};
    g_done = 0;
    for (int i = 0; i < 3; i++)
        auth_dovecot_check(d, "alice", "secret", NULL, free_in_cb, &re2);
    assert_true(wait_done(x->base, 1, 3000));
    run_for(x->base, 30);
    assert_int_equal(re2.calls, 1);
    assert_null(d);
    fake_free(f);
}

static void test_free_with_outstanding(void **state)
{
    struct fx *x = *state;
    x->f->on_line = reply_slow;
    struct res r[3] = {{0}};
    check(x->d, "slow", "a", NULL, &r[0]);
    check(x->d, "slow", "b", NULL, &r[1]);
    run_for(x->base, 30);
    check(x->d, "", "b", NULL, &r[2]); /* decided, not yet delivered */
    auth_dovecot_free(x->d);
    x->d = NULL;
    run_for(x->base, 30);
    assert_int_equal(r[0].calls + r[1].calls + r[2].calls, 0);
    assert_int_equal(x->f->eofs, 1);
}

/* ---- (b) against a real Dovecot -------------------------------------------- */

#define DOVECOT_BIN "/usr/sbin/dovecot"

static struct {
    int available;
    const char *skip_why;
    char dir[64];
    char sock[128];
    pid_t pid;
} g_real;

static int write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    if (!fp)
        return -1;
    fputs(text, fp);
    return fclose(fp);
}

/* The template sits next to this file. */
static char *template_path(void)
{
    const char *slash = strrchr(__FILE__, '/');
    if (!slash)
        return xstrdup("dovecot-auth.conf.in");
    return xasprintf("%.*s/dovecot-auth.conf.in", (int)(slash - __FILE__), __FILE__);
}

static int sock_accepts(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    str_copy(sa.sun_path, path, sizeof sa.sun_path);
    int ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

static void real_stop(void)
{
    if (g_real.pid > 0) {
        kill(g_real.pid, SIGTERM);
        int status;
        for (int i = 0; i < 500; i++) {
            if (waitpid(g_real.pid, &status, WNOHANG) == g_real.pid) {
                g_real.pid = 0;
                break;
            }
            usleep(10000);
        }
        if (g_real.pid > 0) {
            kill(g_real.pid, SIGKILL);
            waitpid(g_real.pid, &status, 0);
            g_real.pid = 0;
        }
    }
    if (g_real.dir[0]) {
        tf_tmpdir_remove(g_real.dir);
        g_real.dir[0] = '\0';
    }
}

static int real_setup(void **state)
{
    (void)state;
    memset(&g_real, 0, sizeof g_real);
    if (geteuid() != 0) {
        g_real.skip_why = "not root: cannot start a private Dovecot";
        return 0;
    }
    if (access(DOVECOT_BIN, X_OK) != 0) {
        g_real.skip_why = DOVECOT_BIN " is not installed";
        return 0;
    }
    if (!getpwnam("dovecot") || !getpwnam("dovenull")) {
        g_real.skip_why = "the dovecot/dovenull users do not exist";
        return 0;
    }
    char *tpath = template_path();
    char *tmpl = tf_read_file(tpath, NULL);
    if (!tmpl) {
        fprintf(stderr, "cannot read %s\n", tpath);
        free(tpath);
        return -1;
    }
    free(tpath);
    if (tf_tmpdir_make(g_real.dir, sizeof g_real.dir, "dovecot") != 0)
        return -1;
    chmod(g_real.dir, 0755); /* the auth process runs as user dovecot */
    snprintf(g_real.sock, sizeof g_real.sock, "%s/auth", g_real.dir);

    struct strbuf conf = STRBUF_INIT;
    for (const char *p = tmpl; *p;) {
        if (strncmp(p, "@DIR@", 5) == 0) {
            strbuf_puts(&conf, g_real.dir);
            p += 5;
        } else {
            strbuf_putc(&conf, *p++);
        }
    }
    free(tmpl);
    char *conf_path = xasprintf("%s/dovecot.conf", g_real.dir);
    char *users_path = xasprintf("%s/users", g_real.dir);
    const char *hash = crypt("s3cret-Crypt", "$6$ternunittest$");
    char *users = xasprintf("alice:{PLAIN}s3cret\nbob:{SHA512-CRYPT}%s\n", hash ? hash : "*");
    int bad = !hash || strncmp(hash, "$6$", 3) != 0 || write_file(conf_path, strbuf_str(&conf)) != 0 ||
              write_file(users_path, users) != 0;
    strbuf_free(&conf);
    free(users);
    free(users_path);
    if (bad) {
        free(conf_path);
        real_stop();
        return -1;
    }

    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        char *errlog = xasprintf("%s/stderr.log", g_real.dir);
        int fd = open(errlog, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(DOVECOT_BIN, "dovecot", "-F", "-c", conf_path, (char *)NULL);
        _exit(127);
    }
    free(conf_path);
    g_real.pid = pid;
    for (int i = 0; i < 1000 && !g_real.available; i++) {
        if (sock_accepts(g_real.sock))
            g_real.available = 1;
        else if (waitpid(pid, NULL, WNOHANG) == pid) {
            g_real.pid = 0;
            break;
        }
        else
            usleep(10000);
    }
    if (!g_real.available) {
        char *lp = xasprintf("%s/stderr.log", g_real.dir);
        char *log = tf_read_file(lp, NULL);
        fprintf(stderr, "dovecot did not start:\n%s\n", log ? log : "");
        free(log);
        free(lp);
        real_stop();
        return -1;
    }
    return 0;
}

static int real_teardown(void **state)
{
    (void)state;
    real_stop();
    return 0;
}

static void need_real(void)
{
    if (!g_real.available)
        test_skip("real Dovecot test: %s", g_real.skip_why);
}

static void test_real_dovecot_accepts(void **state)
{
    (void)state;
    need_real();
    struct event_base *base = event_base_new();
    struct auth_dovecot *d = auth_dovecot_new(base, g_real.sock);
    g_done = 0;
    struct res r[4] = {{0}};
    struct auth_dovecot_info info = {"127.0.0.1", "192.0.2.44", 587, 51000, 1};
    check(d, "alice", "s3cret", NULL, &r[0]);
    check(d, "bob", "s3cret-Crypt", &info, &r[1]);
    check(d, "Alice", "s3cret", &info, &r[2]); /* Dovecot lowercases by default */
    struct auth_dovecot_req *c = check(d, "alice", "s3cret", NULL, &r[3]);
    auth_dovecot_cancel(c);
    assert_true(wait_done(base, 3, 10000));
    run_for(base, 50);
    assert_int_equal(r[0].r, AUTH_OK);
    assert_string_equal(r[0].why, "alice");
    assert_int_equal(r[1].r, AUTH_OK);
    assert_string_equal(r[1].why, "bob");
    assert_int_equal(r[2].r, AUTH_OK);
    assert_string_equal(r[2].why, "alice");
    assert_int_equal(r[3].calls, 0);
    /* the connection survived the CANCEL */
    struct res r5 = {0};
    check(d, "bob", "s3cret-Crypt", NULL, &r5);
    assert_true(wait_done(base, 4, 10000));
    assert_int_equal(r5.r, AUTH_OK);
    auth_dovecot_free(d);
    event_base_free(base);
}

static void test_real_dovecot_rejects(void **state)
{
    (void)state;
    need_real();
    struct event_base *base = event_base_new();
    struct auth_dovecot *d = auth_dovecot_new(base, g_real.sock);
    g_done = 0;
    struct res r[4] = {{0}};
    /* Dovecot delays failures (auth_failure_delay, 2 s): run them together */
    check(d, "alice", "wrong", NULL, &r[0]);
    check(d, "bob", "s3cret", NULL, &r[1]); /* alice's password, bob's name */
    check(d, "nobody", "s3cret", NULL, &r[2]);
    check(d, "alice", "s3cret\tx", NULL, &r[3]);
    assert_true(wait_done(base, 4, 15000));
    for (int i = 0; i < 4; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].r, AUTH_FAIL);
    }
    auth_dovecot_free(d);
    event_base_free(base);
}

/* Dovecot found nothing to complain about in what we sent (it logs "BUG:"
 * errors for malformed requests, unknown CPIDs, broken handshakes). */
static void test_real_dovecot_log_clean(void **state)
{
    (void)state;
    need_real();
    usleep(100000); /* its log process writes asynchronously */
    char *lp = xasprintf("%s/dovecot.log", g_real.dir);
    char *log = tf_read_file(lp, NULL);
    free(lp);
    assert_non_null(log);
    assert_non_null(strstr(log, "starting up"));
    int bad = strstr(log, "Error:") || strstr(log, "Fatal:") || strstr(log, "Panic:") || strstr(log, "Warning:");
    if (bad)
        fprintf(stderr, "dovecot.log:\n%s", log);
    free(log);
    assert_false(bad);
}

int main(void)
{
    const struct CMUnitTest fake_tests[] = {
        cmocka_unit_test_setup_teardown(test_handshake_split_then_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requests_wait_for_handshake, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mech_without_plain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_variants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cont_is_tempfail_and_cancelled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_length_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_closes_mid_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handshake_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_protocol_violations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_commands_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_failure_and_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_callback_reentry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_outstanding, setup, teardown),
    };
    const struct CMUnitTest real_tests[] = {
        cmocka_unit_test(test_real_dovecot_accepts),
        cmocka_unit_test(test_real_dovecot_rejects),
        cmocka_unit_test(test_real_dovecot_log_clean),
    };
    signal(SIGPIPE, SIG_IGN);
    int failed = cmocka_run_group_tests_name("auth_dovecot (fake server)", fake_tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("auth_dovecot (real Dovecot)", real_tests, real_setup, real_teardown);
    return failed ? 1 : 0;
}
