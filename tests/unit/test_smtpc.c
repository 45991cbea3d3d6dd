/* Tests for smtpc, the outbound SMTP session, against a scripted
 * fake SMTP server on 127.0.0.1 that runs on the same event loop: what the
 * server received (exact bytes, how they were grouped into reads), and
 * what the session reported (outcome, per-recipient codes, texts, relay).
 * Content always comes from a temp file at an offset > 0. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "smtpc/smtpc.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/strbuf.h"

/* ---- the fake server ---- */

#define SILENT ""          /* a reply of "" means: say nothing */
#define CLOSE "<close>"    /* close the connection instead of replying */

struct fake_conf {
    const char *greeting;  /* NULL: "220 fake.test ESMTP" */
    const char *ehlo;      /* NULL: "250 fake.test" (no extensions) */
    const char *helo;
    const char *mail;
    const char *rcpt[8];   /* in order; NULL: 250 */
    const char *data;      /* NULL: 354 */
    const char *dot;       /* NULL: 250 queued; LMTP: all the per-recipient
                              replies, one after the other */
    size_t drop_after;     /* close after this many content octets (0: never) */
    const char *lhlo;      /* NULL: "250 fake.test" */
    int close_after_dot;   /* close right after the dot's reply(ies) */
};

struct fake {
    struct event_base *base;
    int lfd;
    struct event *lev;
    unsigned short port;
    char *unix_path;         /* listening on a unix socket instead (LMTP) */
    struct fake_conf conf;
    struct strbuf rx;        /* every command octet received, all connections */
    struct strbuf content;   /* raw DATA octets (dot-stuffed, final dot excluded) */
    char *mail_chunk;        /* the read() chunk in which MAIL FROM arrived */
    int conns_total, conns_open, saw_quit, dot_seen;
    /* one connection at a time */
    int fd;
    struct event *ev;
    struct strbuf in;
    size_t rcpt_i;
    int in_data;
};

static void fake_close(struct fake *f)
{
    if (f->fd < 0)
        return;
    event_free(f->ev);
    f->ev = NULL;
    close(f->fd);
    f->fd = -1;
    f->conns_open--;
    strbuf_free(&f->in);
}

static void fake_say(struct fake *f, const char *s)
{
    if (s == NULL || f->fd < 0 || s[0] == '\0')
        return;
    if (strcmp(s, CLOSE) == 0) {
        fake_close(f);
        return;
    }
    size_t len = strlen(s), off = 0;
    while (off < len) {
        ssize_t n = send(f->fd, s + off, len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        off += (size_t)n;
    }
}

static void fake_command(struct fake *f, const char *line, size_t len)
{
    strbuf_append(&f->rx, line, len);
    if (len >= 4 && strncasecmp(line, "EHLO", 4) == 0) {
        fake_say(f, f->conf.ehlo ? f->conf.ehlo : "250 fake.test\r\n");
    } else if (len >= 4 && strncasecmp(line, "LHLO", 4) == 0) {
        fake_say(f, f->conf.lhlo ? f->conf.lhlo : "250 fake.test\r\n");
    } else if (len >= 4 && strncasecmp(line, "HELO", 4) == 0) {
        fake_say(f, f->conf.helo ? f->conf.helo : "250 fake.test\r\n");
    } else if (len >= 4 && strncasecmp(line, "MAIL", 4) == 0) {
        fake_say(f, f->conf.mail ? f->conf.mail : "250 2.1.0 Ok\r\n");
    } else if (len >= 4 && strncasecmp(line, "RCPT", 4) == 0) {
        const char *r = f->rcpt_i < 8 ? f->conf.rcpt[f->rcpt_i] : NULL;
        f->rcpt_i++;
        fake_say(f, r ? r : "250 2.1.5 Ok\r\n");
    } else if (len >= 4 && strncasecmp(line, "DATA", 4) == 0) {
        const char *r = f->conf.data ? f->conf.data : "354 End data with <CR><LF>.<CR><LF>\r\n";
        if (strncmp(r, "354", 3) == 0)
            f->in_data = 1;
        fake_say(f, r);
    } else if (len >= 4 && strncasecmp(line, "QUIT", 4) == 0) {
        f->saw_quit++;
        fake_say(f, "221 2.0.0 Bye\r\n");
        fake_close(f);
    } else if (len >= 4 && strncasecmp(line, "RSET", 4) == 0) {
        fake_say(f, "250 2.0.0 Ok\r\n");
    } else {
        fake_say(f, "502 5.5.2 Error: command not recognized\r\n");
    }
}

static void fake_data_line(struct fake *f, const char *line, size_t len)
{
    if (len == 3 && memcmp(line, ".\r\n", 3) == 0) {
        f->in_data = 0;
        f->dot_seen++;
        fake_say(f, f->conf.dot ? f->conf.dot : "250 2.0.0 Ok: queued as 1\r\n");
        if (f->conf.close_after_dot)
            fake_close(f);
        return;
    }
    strbuf_append(&f->content, line, len);
    if (f->conf.drop_after > 0 && f->content.len >= f->conf.drop_after)
        fake_close(f);
}

static void fake_read(evutil_socket_t fd, short what, void *arg)
{
    struct fake *f = arg;
    char buf[65536];
    (void)what;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        fake_close(f);
        return;
    }
    if (!f->in_data && memmem(buf, (size_t)n, "MAIL FROM", 9) != NULL && f->mail_chunk == NULL)
        f->mail_chunk = xstrndup(buf, (size_t)n);
    strbuf_append(&f->in, buf, (size_t)n);
    size_t pos = 0;
    while (f->fd >= 0) {
        const char *start = f->in.buf + pos;
        const char *nl = memchr(start, '\n', f->in.len - pos);
        if (nl == NULL)
            break;
        size_t len = (size_t)(nl - start) + 1;
        pos += len;
        if (f->in_data)
            fake_data_line(f, start, len);
        else
            fake_command(f, start, len);
    }
    if (f->fd >= 0 && pos > 0) {
        memmove(f->in.buf, f->in.buf + pos, f->in.len - pos);
        f->in.len -= pos;
        f->in.buf[f->in.len] = '\0';
    }
}

static void fake_accept(evutil_socket_t lfd, short what, void *arg)
{
    struct fake *f = arg;
    (void)what;
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    if (f->fd >= 0) {   /* one at a time is all these tests need */
        close(fd);
        return;
    }
    f->fd = fd;
    f->conns_total++;
    f->conns_open++;
    f->rcpt_i = 0;
    f->in_data = 0;
    f->ev = event_new(f->base, fd, EV_READ | EV_PERSIST, fake_read, f);
    event_add(f->ev, NULL);
    fake_say(f, f->conf.greeting ? f->conf.greeting : "220 fake.test ESMTP\r\n");
}

static struct fake *fake_new(struct event_base *base, const struct fake_conf *conf)
{
    struct fake *f = xcalloc(1, sizeof *f);
    f->base = base;
    f->fd = -1;
    if (conf)
        f->conf = *conf;
    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(f->lfd >= 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(f->lfd, 8), 0);
    socklen_t sl = sizeof sa;
    getsockname(f->lfd, (struct sockaddr *)&sa, &sl);
    f->port = ntohs(sa.sin_port);
    f->lev = event_new(base, f->lfd, EV_READ | EV_PERSIST, fake_accept, f);
    event_add(f->lev, NULL);
    return f;
}

/* The same server on a unix socket in a fresh temporary directory. */
static struct fake *fake_new_unix(struct event_base *base, const struct fake_conf *conf)
{
    struct fake *f = xcalloc(1, sizeof *f);
    f->base = base;
    f->fd = -1;
    if (conf)
        f->conf = *conf;
    char dir[] = "/tmp/test_smtpc_lmtp.XXXXXX";
    assert_non_null(mkdtemp(dir));
    f->unix_path = xasprintf("%s/lmtp", dir);
    f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(f->lfd >= 0);
    struct sockaddr_un su = {0};
    su.sun_family = AF_UNIX;
    assert_true(strlen(f->unix_path) < sizeof su.sun_path);
    strcpy(su.sun_path, f->unix_path);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&su, sizeof su), 0);
    assert_int_equal(listen(f->lfd, 8), 0);
    f->lev = event_new(base, f->lfd, EV_READ | EV_PERSIST, fake_accept, f);
    event_add(f->lev, NULL);
    return f;
}

static void fake_free(struct fake *f)
{
    fake_close(f);
    event_free(f->lev);
    close(f->lfd);
    if (f->unix_path != NULL) {
        unlink(f->unix_path);
        char *slash = strrchr(f->unix_path, '/');
        *slash = '\0';
        rmdir(f->unix_path);
        free(f->unix_path);
    }
    strbuf_free(&f->rx);
    strbuf_free(&f->content);
    strbuf_free(&f->in);
    free(f->mail_chunk);
    free(f);
}

/* A port nothing listens on. */
static unsigned short dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&sa, sizeof sa);
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    close(fd);
    return ntohs(sa.sin_port);
}

static struct smtpc_target unix_target(const char *host, const char *path, const char *shown)
{
    struct smtpc_target t;
    memset(&t, 0, sizeof t);
    t.hostname = host;
    t.display_addr = shown;
    struct sockaddr_un *su = (struct sockaddr_un *)&t.addr;
    su->sun_family = AF_UNIX;
    strcpy(su->sun_path, path);
    t.addrlen = sizeof *su;
    return t;
}

static struct smtpc_target target(const char *host, unsigned short port)
{
    struct smtpc_target t;
    memset(&t, 0, sizeof t);
    t.hostname = host;
    struct sockaddr_in *sa = (struct sockaddr_in *)&t.addr;
    sa->sin_family = AF_INET;
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa->sin_port = htons(port);
    t.addrlen = sizeof *sa;
    return t;
}

/* ---- the session side ---- */

struct outcome {
    int calls;
    enum smtpc_outcome outcome;
    int code, remote;
    char enh[16];
    char *text, *relay, *stage;
    int quit_seen_at_cb;
    struct fake *watch;
};

static struct outcome got;

static void on_result(void *arg, struct smtpc_result *res)
{
    struct outcome *o = arg;
    o->calls++;
    o->outcome = res->outcome;
    o->code = res->code;
    o->remote = res->remote;
    memcpy(o->enh, res->enh, sizeof o->enh);
    free(o->text);
    free(o->relay);
    free(o->stage);
    o->text = xstrdup(res->text ? res->text : "(null)");
    o->relay = xstrdup(res->relay ? res->relay : "(null)");
    o->stage = xstrdup(res->stage ? res->stage : "(null)");
    o->quit_seen_at_cb = o->watch ? o->watch->saw_quit : 0;
}

static void outcome_reset(void)
{
    free(got.text);
    free(got.relay);
    free(got.stage);
    memset(&got, 0, sizeof got);
}

/* A temp file with junk before the content, as a queue file has records. */
struct content {
    int fd;
    uint64_t offset, length;
};

static struct content content_make(const char *body, size_t len)
{
    char path[] = "/tmp/test_smtp_client.XXXXXX";
    struct content c;
    c.fd = mkstemp(path);
    assert_true(c.fd >= 0);
    unlink(path);
    static const char junk[] = "QUEUE FILE RECORDS\r\n.\r\nmore junk\n";
    assert_int_equal(write(c.fd, junk, sizeof junk - 1), (ssize_t)(sizeof junk - 1));
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(c.fd, body + off, len - off);
        assert_true(n > 0);
        off += (size_t)n;
    }
    assert_int_equal(write(c.fd, "TRAILER", 7), 7);
    c.offset = sizeof junk - 1;
    c.length = len;
    return c;
}

static const char BODY[] = "Subject: test\r\n"
                           "\r\n"
                           ".leading dot\r\n"
                           "..two dots\r\n"
                           ".\r\n"
                           "last line\r\n";
static const char BODY_WIRE[] = "Subject: test\r\n"
                                "\r\n"
                                "..leading dot\r\n"
                                "...two dots\r\n"
                                "..\r\n"
                                "last line\r\n";

struct env {
    struct event_base *base;
    struct content ct;
    struct smtpc_rcpt rcpts[4];
    struct smtpc_msg msg;
    struct smtpc_opts opts;
};

static struct env *env_new(const char *body, size_t len, size_t nrcpts)
{
    static const char *const addrs[] = {"a@x.test", "b@x.test", "c@x.test", "d@x.test"};
    struct env *e = xcalloc(1, sizeof *e);
    e->base = event_base_new();
    e->ct = content_make(body, len);
    for (size_t i = 0; i < nrcpts; i++)
        e->rcpts[i].addr = addrs[i];
    e->msg.sender = "s@y.test";
    e->msg.content_fd = e->ct.fd;
    e->msg.offset = e->ct.offset;
    e->msg.length = e->ct.length;
    e->msg.rcpts = e->rcpts;
    e->msg.nrcpts = nrcpts;
    e->opts.helo_name = "client.test";
    outcome_reset();
    return e;
}

static void env_free(struct env *e)
{
    smtpc_drop_lingering();
    smtpc_msg_clear(&e->msg);
    close(e->ct.fd);
    event_base_free(e->base);
    free(e);
    outcome_reset();
}

struct waiter {
    struct event_base *base;
    struct fake *f[3];
    int timed_out;
    int (*until)(struct waiter *);
};

/* Done: the result is out, no QUIT is pending and the servers are idle. */
static int settled(struct waiter *w)
{
    if (got.calls == 0 || smtpc_lingering() != 0)
        return 0;
    for (int i = 0; i < 3; i++)
        if (w->f[i] != NULL && w->f[i]->conns_open > 0)
            return 0;
    return 1;
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    struct waiter *w = arg;
    (void)fd, (void)what;
    if (w->until(w))
        event_base_loopbreak(w->base);
}

static void deadline(evutil_socket_t fd, short what, void *arg)
{
    struct waiter *w = arg;
    (void)fd, (void)what;
    w->timed_out = 1;
    event_base_loopbreak(w->base);
}

static void run_until(struct event_base *base, struct fake *f0, struct fake *f1, int (*until)(struct waiter *))
{
    struct waiter w = {base, {f0, f1, NULL}, 0, until ? until : settled};
    struct event *t = event_new(base, -1, EV_PERSIST, tick, &w);
    struct event *d = evtimer_new(base, deadline, &w);
    struct timeval ms = {0, 2000}, lim = {15, 0};
    event_add(t, &ms);
    event_add(d, &lim);
    event_base_dispatch(base);
    event_free(t);
    event_free(d);
    assert_false(w.timed_out);
}

static void run(struct env *e, struct fake *f0, struct fake *f1, const struct smtpc_target *t, size_t nt)
{
    got.watch = f1 ? f1 : f0;
    smtpc_start(e->base, &e->opts, t, nt, &e->msg, on_result, &got);
    assert_int_equal(got.calls, 0);   /* never from inside start */
    run_until(e->base, f0, f1, NULL);
    assert_int_equal(got.calls, 1);
}

static void assert_rcpt(const struct smtpc_rcpt *r, int code, const char *enh, const char *text,
                        const char *stage, int remote)
{
    assert_int_equal(r->done, 1);
    assert_int_equal(r->code, code);
    assert_string_equal(r->enh, enh);
    assert_non_null(r->text);
    assert_string_equal(r->text, text);
    assert_string_equal(r->stage, stage);
    assert_int_equal(r->remote, remote);
}

static char *relay_of(const char *host, unsigned short port)
{
    return xasprintf("%s[127.0.0.1]:%u", host, port);
}

/* ---- the tests ---- */

static void test_plain_delivery_exact_bytes(void **state)
{
    (void)state;
    struct env *e = env_new(BODY, sizeof BODY - 1, 2);
    struct fake_conf fc = {.ehlo = "250 fake.test\r\n"};
    struct fake *f = fake_new(e->base, &fc);
    struct smtpc_target t = target("mx.x.test", f->port);
    e->msg.ret = "HDRS";
    e->msg.envid = "id+1";
    e->rcpts[0].notify = 3;
    e->rcpts[0].orcpt = "rfc822;a@x.test";
    run(e, f, NULL, &t, 1);

    /* no extension offered: no parameters, one command per read */
    assert_string_equal(f->rx.buf, "EHLO client.test\r\n"
                                   "MAIL FROM:<s@y.test>\r\n"
                                   "RCPT TO:<a@x.test>\r\n"
                                   "RCPT TO:<b@x.test>\r\n"
                                   "DATA\r\n"
                                   "QUIT\r\n");
    assert_string_equal(f->mail_chunk, "MAIL FROM:<s@y.test>\r\n");
    assert_int_equal(f->content.len, sizeof BODY_WIRE - 1);
    assert_memory_equal(f->content.buf, BODY_WIRE, sizeof BODY_WIRE - 1);
    assert_int_equal(f->dot_seen, 1);
    assert_int_equal(got.outcome, SMTPC_DONE);
    assert_int_equal(got.code, 0);
    assert_string_equal(got.text, "");
    char *relay = relay_of("mx.x.test", f->port);
    assert_string_equal(got.relay, relay);
    free(relay);
    for (int i = 0; i < 2; i++)
        assert_rcpt(&e->rcpts[i], 250, "2.0.0", "250 2.0.0 Ok: queued as 1", "end of DATA", 1);
    /* QUIT goes out after the result, not before */
    assert_int_equal(got.quit_seen_at_cb, 0);
    assert_int_equal(f->saw_quit, 1);
    fake_free(f);
    env_free(e);
}

static const char EHLO_ALL[] = "250-fake.test greets you\r\n"
                               "250-PIPELINING\r\n"
                               "250-SIZE 10240000\r\n"
                               "250-8BITMIME\r\n"
                               "250-SMTPUTF8\r\n"
                               "250-DSN\r\n"
                               "250 ENHANCEDSTATUSCODES\r\n";

static void test_pipelined_with_all_parameters(void **state)
{
    (void)state;
    struct env *e = env_new(BODY, sizeof BODY - 1, 2);
    struct fake_conf fc = {.ehlo = EHLO_ALL};
    struct fake *f = fake_new(e->base, &fc);
    struct smtpc_target t = target("mx.x.test", f->port);
    e->msg.ret = "HDRS";
    e->msg.envid = "id+1";
    e->msg.body_8bit = 1;
    e->msg.smtputf8 = 1;
    e->rcpts[0].notify = 3;
    e->rcpts[0].orcpt = "rfc822;a@x.test";
    e->rcpts[1].notify = 8;
    run(e, f, NULL, &t, 1);

    char *mail = xasprintf("MAIL FROM:<s@y.test> SIZE=%zu BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id+2B1\r\n"
                           "RCPT TO:<a@x.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@x.test\r\n"
                           "RCPT TO:<b@x.test> NOTIFY=NEVER\r\n"
                           "DATA\r\n",
                           sizeof BODY - 1);
    /* PIPELINING: MAIL, both RCPTs and DATA in one read */
    assert_string_equal(f->mail_chunk, mail);
    char *all = xasprintf("EHLO client.test\r\n%sQUIT\r\n", mail);
    assert_string_equal(f->rx.buf, all);
    free(all);
    free(mail);
    assert_memory_equal(f->content.buf, BODY_WIRE, sizeof BODY_WIRE - 1);
    assert_int_equal(got.outcome, SMTPC_DONE);
    assert_rcpt(&e->rcpts[1], 250, "2.0.0", "250 2.0.0 Ok: queued as 1", "end of DATA", 1);
    fake_free(f);
    env_free(e);
}

/* Fields the queue file asks to prepend (Authentication-Results) go out
 * before the content, dot-stuffed like it, and count in SIZE=. */
static void test_prepend_before_content(void **state)
{
    (void)state;
    struct env *e = env_new(BODY, sizeof BODY - 1, 1);
    struct fake_conf fc = {.ehlo = EHLO_ALL};
    struct fake *f = fake_new(e->base, &fc);
    struct smtpc_target t = target("mx.x.test", f->port);
    static const char prepend[] = "Authentication-Results: mx.y.test;\r\n\tspf=pass smtp.mailfrom=y.test\r\n";
    e->msg.prepend = prepend;
    run(e, f, NULL, &t, 1);
    char *size = xasprintf(" SIZE=%zu\r\n", sizeof prepend - 1 + sizeof BODY - 1);
    assert_non_null(strstr(f->mail_chunk, size));
    free(size);
    assert_int_equal(f->content.len, sizeof prepend - 1 + sizeof BODY_WIRE - 1);
    assert_memory_equal(f->content.buf, prepend, sizeof prepend - 1);
    assert_memory_equal(f->content.buf + sizeof prepend - 1, BODY_WIRE, sizeof BODY_WIRE - 1);
    assert_int_equal(got.outcome, SMTPC_DONE);
    fake_free(f);
    env_free(e);
}

static void test_mixed_rcpt_results(void **state)
{
    (void)state;
    struct env *e = env_new(BODY, sizeof BODY - 1, 3);
    struct fake_conf fc = {.ehlo = "250-fake.test\r\n250 PIPELINING\r\n",
                           .rcpt = {NULL, "550-5.1.1 <b@x.test>: Recipient address rejected:\r\n"
                                          "550 5.1.1 User unknown in virtual mailbox table\r\n",
                                    "450 4.2.0 <c@x.test>: Greylisted\r\n"}};
    struct fake *f = fake_new(e->base, &fc);
    struct smtpc_target t = target("mx.x.test", f->port);
    run(e, f, NULL, &t, 1);
    assert_int_equal(got.outcome, SMTPC_DONE);
    assert_rcpt(&e->rcpts[0], 250, "2.0.0", "250 2.0.0 Ok: queued as 1", "end of DATA", 1);
    assert_rcpt(&e->rcpts[1], 550, "5.1.1",
                "550 5.1.1 <b@x.test>: Recipient address rejected: User unknown in virtual mailbox table",
                "RCPT TO", 1);
    assert_rcpt(&e->rcpts[2], 450, "4.2.0", "450 4.2.0 <c@x.test>: Greylisted", "RCPT TO", 1);
    assert_int_equal(f->dot_seen, 1);
    fake_free(f);
    env_free(e);
}

static void all_rcpts_rejected(int pipelining)
{
    struct env *e = env_new(BODY, sizeof BODY - 1, 2);
    struct fake_conf fc = {.ehlo = pipelining ? "250-fake.test\r\n250 PIPELINING\r\n" : NULL,
                           .rcpt = {"550 5.1.1 no a\r\n", "551 5.1.6 no b\r\n"},
                           .data = pipelining ? "554 5.5.1 Error: no valid recipients\r\n" : NULL};
    struct fake *f = fake_new(e->base, &fc);
    struct smtpc_target t = target(NULL, f->port);
    run(e, f, NULL, &t, 1);
    assert_int_equal(got.outcome, SMTPC_DONE);
    assert_rcpt(&e->rcpts[0], 550, "5.1.1", "550 5.1.1 no a", "RCPT TO", 1);
    assert_rcpt(&e->rcpts[1], 551, "5.1.6", "551 5.1.6 no b", "RCPT TO", 1);
    char *relay = relay_of("127.0.0.1", f->port);
    assert_string_equal(got.relay, relay);
    free(relay);
    if (pipelining)
        assert_non_null(strstr(f->rx.buf, "DATA\r\nQUIT\r\n"));
    else
        assert_null(strstr(f->rx.buf, "DATA"));
    assert_int_equal(f->content.len, 0);
    assert_int_equal(f->dot_seen, 0);
    assert_int_equal(f->saw_quit, 1);
    fake_free(f);
    env_free(e);
}

static void test_all_rcpts_rejected_no_data(void **state)
{
    (void)state;
    all_rcpts_rejected(0);
    all_rcpts_rejected(1);
}

/* A server that answers a pipelined DATA with 354 although no RCPT was
 * accepted gets a lone dot, then QUIT. */
static void test_pipelined_354_without_rcpts(void **state)
{
    (void)state;
    struct env *e = env_new(BODY, sizeof BODY - 1, 1);
    struct fake_conf fc = {.ehlo = "250-fake.test\r\n250 PIPELINING\r\n", .rcpt = {"550 5.1.1 no\r\n"}};
    struct fake *f = fake_new(e->base, &fc);
    struct smtpc_target t = target("mx", f->port);
    run(e, f, NULL, &t, 1);
    assert_int_equal(got.outcome, SMTPC_DONE);
    assert_rcpt(&e->rcpts[0], 550, "5.1.1", "550 5.1.1 no", "RCPT TO", 1);
    assert_int_equal(f->dot_seen, 1);
    assert_int_equal(f->content.len, 0);
    assert_int_equal(f->saw_quit, 1);
    fake_free(f);
    env_free(e);
}

static void test_ehlo_5xx_helo_fallback(void **state)
{
    (void)state;
    struct env *e = env_new(BODY, sizeof BODY - 1, 1);
    struct fake_conf fc = {.ehlo = "502 5.5.2 Error: command not recognized\r\n"};
    struct fake *f = fake_new(e->base, &fc);
    struct smtpc_target t = target("mx", f->port);
    e->msg.envid = "x";
    e->msg.ret = "FULL";
    run(e, f, NULL, &t, 1);
    assert_string_equal(f->rx.buf, "EHLO client.test\r\nHELO client.test\r\nMAIL FROM:<s@y.test>\r\n"
                                   "RCPT TO:<a@x.test>\r\nDATA\r\nQUIT\r\n");
    assert_rcpt(&e->rcpts[0], 250, "2.0.0", "250 2.0.0 Ok: queued as 1", "end of DATA", 1);
    fake_free(f);
    env_free(e);
}

/* A session to x.test from the host mail.us.test, with n recipients. */
static struct env *loop_env(size_t n)
{
    struct env *e = env_new(BODY, sizeof BODY - 1, n);
    e->opts.myhostname = "mail.us.test";
    e->opts.nexthop = "x.test";
    return e;
}

/* A server whose EHLO (or, after a refused EHLO, HELO) reply names our
 * myhostname is this host again: that target fails (550 5.4.6 among the
 * best exchangers, else 450 4.4.6), the next is tried, and when a best one
 * was the last every recipient bounces. Only the first word counts, in
 * any case. */
static void test_server_naming_us_is_a_loop(void **state)
{
    (void)state;
    struct env *e = loop_env(1);
    struct fake_conf twin = {.ehlo = "502 5.5.2 no\r\n", .helo = "250 MAIL.us.test hello\r\n"};
    struct fake_conf other = {.ehlo = "250-mx.them.test says mail.us.test\r\n250 PIPELINING\r\n"};
    struct fake *f0 = fake_new(e->base, &twin);
    struct fake *f1 = fake_new(e->base, &other);
    struct smtpc_target t[2] = {target("mx1", f0->port), target("mx2", f1->port)};
    run(e, f0, f1, t, 2);
    assert_string_equal(f0->rx.buf, "EHLO client.test\r\nHELO client.test\r\nQUIT\r\n");
    assert_int_equal(got.outcome, SMTPC_DONE);
    assert_rcpt(&e->rcpts[0], 250, "2.0.0", "250 2.0.0 Ok: queued as 1", "end of DATA", 1);
    fake_free(f0);
    fake_free(f1);
    env_free(e);

    e = loop_env(2);
    struct fake_conf self = {.ehlo = "250-mail.us.test\r\n250 PIPELINING\r\n"};
    f0 = fake_new(e->base, &self);
    struct smtpc_target one = target("mx1", f0->port);
    run(e, f0, NULL, &one, 1);
    assert_string_equal(f0->rx.buf, "EHLO client.test\r\nQUIT\r\n");
    assert_int_equal(got.outcome, SMTPC_BOUNCE_ALL);
    for (int i = 0; i < 2; i++)
        assert_rcpt(&e->rcpts[i], 550, "5.4.6", "mail for x.test loops back to myself", "EHLO", 0);
    fake_free(f0);
    env_free(e);

    /* a less preferred exchanger that is us (a TAB after its name): the
     * better ones failed for now, so the mail waits for them */
    e = loop_env(1);
    struct fake_conf tabbed = {.ehlo = "250-mail.us.test\thi\r\n250 PIPELINING\r\n"};
    f0 = fake_new(e->base, &tabbed);
    struct smtpc_target two[2] = {target("mx1", dead_port()), target("mx2", f0->port)};
    two[1].less_preferred = 1;
    run(e, f0, NULL, two, 2);
    assert_string_equal(f0->rx.buf, "EHLO client.test\r\nQUIT\r\n");
    assert_int_equal(got.outcome, SMTPC_DEFER_ALL);
    assert_rcpt(&e->rcpts[0], 450, "4.4.6", "mail for x.test loops back to myself", "EHLO", 0);
    fake_free(f0);
    env_free(e);
}

static void test_greeting_554_next_target(void **state)
{
    (void)state;
    struct env *e = env_new(BODY, sizeof BODY - 1, 1);
    struct fake_conf bad = {.greeting = "554 5.7.1 go away\r\n"};
    struct fake *f0 = fake_new(e->base, &bad);
    struct fake *f1 = fake_new(e->base, NULL);
    struct smtpc_target t[2] = {target("mx1", f0->port), target("mx2", f1->port)};
    run(e, f0, f1, t, 2);
    assert_string_equal(f0->rx.buf, "QUIT\r\n");   /* nothing but a polite QUIT */
    assert_int_equal(got.outcome, SMTPC_DONE);
    char *relay = relay_of("mx2", f1->port);
    assert_string_equal(got.relay, relay);
    free(relay);
    assert_rcpt(&e->rcpts[0], 250, "2.0.0", "250 2.0.0 Ok: queued as 1", "end of DATA", 1);
    fake_free(f0);
    fake_free(f1);
    env_free(e);
}

static void test_refused_then_second_target(void **state)
{
    (void)state;
    struct env *e = env_new(BODY, sizeof BODY - 1, 1);
    struct fake *f1 = fake_new(e->base, NULL);
    struct smtpc_target t[2] = {target("mx1", dead_port()), target("mx2", f1->port)};
    run(e, f1, NULL, t, 2);
    assert_int_equal(got.outcome, SMTPC_DONE);
    assert_int_equal(f1->conns_total, 1);
    assert_rcpt(&e->rcpts[0], 250, "2.0.0", "250 2.0.0 Ok: queued as 1", "end of DATA", 1);
    fake_free(f1);
    env_free(e);
}

static void test_all_targets_fail_defer_last_reason(void **state)
{
    (void)state;
    struct env *e = env_new(BODY, sizeof BODY - 1, 2);
    struct fake_conf busy = {.greeting = "421 4.3.2 busy, try later\r\n"};
    struct fake *f1 = fake_new(e->base, &busy);
    unsigned short dp = dead_port();
    struct smtpc_target t[2] = {target("mx1", dp), target("mx2", f1->port)};
    run(e, f1, NULL, t, 2);
    assert_int_equal(got.outcome, SMTPC_DEFER_ALL);
    assert_int_equal(got.code, 421);
    assert_string_equal(got.enh, "4.3.2");
    assert_string_equal(got.text, "421 4.3.2 busy, try later");
    assert_string_equal(got.stage, "greeting");
    assert_int_equal(got.remote, 1);
    for (int i = 0; i < 2; i++)
        assert_rcpt(&e->rcpts[i], 421, "4.3.2", "421 4.3.2 busy, try later", "greeting", 1);
    fake_free(f1);
    smtpc_msg_clear(&e->msg);
    outcome_reset();

    /* the other way round: the refused connect is the last reason */
    struct smtpc_target t2[1] = {target("mx1", dp)};
    run(e, NULL, NULL, t2, 1);
    assert_int_equal(got.outcome, SMTPC_DEFER_ALL);
    char *want = xasprintf("connect to mx1[127.0.0.1]:%u: Connection refused", dp);
    assert_string_equal(got.text, want);
    assert_string_equal(got.enh, "4.4.1");
    assert_int_equal(got.remote, 0);
    assert_rcpt(&e->rcpts[1], 451, "4.4.1", want, "connect", 0);
    free(want);
    env_free(e);
}

/* A 5xx greeting on the only target defers: another day, another MX. */
static void test_greeting_5xx_only_target_defers_class_4(void **state)
{
    (void)state;
    struct env *e = env_new(BODY, sizeof BODY - 1, 1);
    struct fake_conf bad = {.greeting = "554 5.7.1 go away\r\n"};
    struct fake *f = fake_new(e->base, &bad);
    struct smtpc_target t = target("mx", f->port);
    run(e, f, NULL, &t, 1);
    assert_int_equal(got.outcome, SMTPC_DEFER_ALL);
    assert_int_equal(got.code, 451);
    assert_string_equal(got.enh, "4.7.1");
    assert_string_equal(got.text, "554 5.7.1 go away");
    assert_rcpt(&e->rcpts[0], 451, "4.7.1", "554 5.7.1 go away", "greeting", 1);
    fake_free(f);
    env_free(e);
}

static void test_mail_5xx_bounce_all(void **state)
{
    (void)state;
    struct env *e = env_new(BODY, sizeof BODY - 1, 2);
    struct fake_conf fc = {.ehlo = "250-fake.test\r\n250 PIPELINING\r\n",
                           .mail = "553 5.7.1 <s@y.test>: Sender address rejected\r\n",
                           .rcpt = {"503 5.5.1 need MAIL\r\n", "503 5.5.1 need MAIL\r\n"},
                           .data = "503 5.5.1 need RCPT\r\n"};
    struct fake *f = fake_new(e->base, &fc);
    struct smtpc_target t = target("mx", f->port);
    run(e, f, NULL, &t, 1);
    assert_int_equal(got.outcome, SMTPC_BOUNCE_ALL);
    assert_int_equal(got.code, 553);
    assert_string_equal(got.enh, "5.7.1");
    assert_string_equal(got.stage, "MAIL FROM");
    assert_string_equal(got.text, "553 5.7.1 <s@y.test>: Sender address rejected");
    for (int i = 0; i < 2; i++)
        assert_rcpt(&e->rcpts[i], 553, "5.7.1", "553 5.7.1 <s@y.test>: Sender address rejected", "MAIL FROM",
                    1);
    /* QUIT waited for the three owed replies */
    assert_non_null(strstr(f->rx.buf, "DATA\r\nQUIT\r\n"));
    assert_int_equal(f->saw_quit, 1);
    fake_free(f);
    env_free(e);
}

static void test_mail_4xx_defer_all(void **state)
{
    (void)state;
    struct env *e = env_new(BODY, sizeof BODY - 1, 1);
    struct fake_conf fc = {.mail = "452 4.3.1 Insufficient system storage\r\n"};
    struct fake *f = fake_new(e->base, &fc);
    struct smtpc_target t = target("mx", f->port);
    run(e, f, NULL, &t, 1);
    assert_int_equal(got.outcome, SMTPC_DEFER_ALL);
    assert_int_equal(got.code, 452);
    assert_string_equal(got.enh, "4.3.1");
    assert_rcpt(&e->rcpts[0], 452, "4.3.1", "452 4.3.1 Insufficient system storage", "MAIL FROM", 1);
    assert_null(strstr(f->rx.buf, "RCPT"));
    fake_free(f);
    env_free(e);
}

static void prechecked_bounce(const char *ehlo, int utf8, int body8, int anyway, const char *enh,
                              const char *text_fmt)
{
    struct env *e = env_new(BODY, sizeof BODY - 1, 1);
    struct fake_conf fc = {.ehlo = ehlo};
    struct fake *f = fake_new(e->base, &fc);
    struct smtpc_target t = target("mx", f->port);
    e->msg.smtputf8 = utf8;
    e->msg.body_8bit = body8;
    e->opts.allow_8bit_anyway = anyway;
    run(e, f, NULL, &t, 1);
    if (enh == NULL) {
        assert_int_equal(got.outcome, SMTPC_DONE);
        assert_non_null(strstr(f->rx.buf, "MAIL FROM:<s@y.test>"));
        assert_null(strstr(f->rx.buf, "BODY="));   /* never offered in these cases */
        assert_rcpt(&e->rcpts[0], 250, "2.0.0", "250 2.0.0 Ok: queued as 1", "end of DATA", 1);
    } else {
        assert_int_equal(got.outcome, SMTPC_BOUNCE_ALL);
        assert_string_equal(got.enh, enh);
        assert_int_equal(got.remote, 0);
        char *want = xasprintf(text_fmt, f->port);
        assert_string_equal(got.text, want);
        free(want);
        assert_null(strstr(f->rx.buf, "MAIL"));
        assert_int_equal(f->saw_quit, 1);
        assert_int_equal(e->rcpts[0].code / 100, 5);
        assert_string_equal(e->rcpts[0].enh, enh);
    }
    fake_free(f);
    env_free(e);
}

static void test_size_over_limit(void **state)
{
    (void)state;
    prechecked_bounce("250-fake\r\n250 SIZE 20\r\n", 0, 0, 0, "5.3.4",
                      "message size 57 exceeds size limit 20 of server mx[127.0.0.1]:%u");
    /* SIZE without a limit, or a limit we fit in, is no obstacle */
    prechecked_bounce("250-fake\r\n250 SIZE\r\n", 0, 0, 0, NULL, NULL);
    prechecked_bounce("250-fake\r\n250 SIZE 57\r\n", 0, 0, 0, NULL, NULL);
}

static void test_smtputf8_not_offered(void **state)
{
    (void)state;
    prechecked_bounce("250-fake\r\n250 8BITMIME\r\n", 1, 0, 0, "5.6.7",
                      "SMTPUTF8 is required, but was not offered by host mx[127.0.0.1]:%u");
}

static void test_8bit_without_8bitmime(void **state)
{
    (void)state;
    prechecked_bounce("250-fake\r\n250 SMTPUTF8\r\n", 0, 1, 0, "5.6.3",
                      "message has 8-bit content, but host mx[127.0.0.1]:%u does not announce 8BITMIME "
                      "support");
    /* allow_8bit_anyway: sent, and without BODY= */
    prechecked_bounce("250-fake\r\n250 SMTPUTF8\r\n", 0, 1, 1, NULL, NULL);
}

static void test_unusable_addresses(void **state)
{
    (void)state;
    struct env *e = env_new(BODY, sizeof BODY - 1, 2);
    struct fake *f = fake_new(e->base, NULL);
    struct smtpc_target t = target("mx", f->port);
    e->rcpts[0].addr = "a@x.test>\r\nRCPT TO:<evil@x.test";
    run(e, f, NULL, &t, 1);
    assert_rcpt(&e->rcpts[0], 553, "5.1.3", "unusable recipient address", "RCPT TO", 0);
    assert_rcpt(&e->rcpts[1], 250, "2.0.0", "250 2.0.0 Ok: queued as 1", "end of DATA", 1);
    assert_null(strstr(f->rx.buf, "evil"));
    fake_free(f);
    env_free(e);

    e = env_new(BODY, sizeof BODY - 1, 1);
    f = fake_new(e->base, NULL);
    t = target("mx", f->port);
    e->msg.sender = "s@y.test>\r\nRSET";
    run(e, f, NULL, &t, 1);
    assert_int_equal(got.outcome, SMTPC_BOUNCE_ALL);
    assert_string_equal(got.enh, "5.1.7");
    assert_int_equal(f->conns_total, 0);
    assert_string_equal(got.relay, "(null)");
    fake_free(f);
    env_free(e);
}

static void test_silent_server_timeout(void **state)
{
    (void)state;
    struct env *e = env_new(BODY, sizeof BODY - 1, 1);
    struct fake_conf fc = {.greeting = SILENT};
    struct fake *f = fake_new(e->base, &fc);
    struct smtpc_target t = target("mx", f->port);
    e->opts.helo_timeout = 1;
    run(e, f, NULL, &t, 1);
    assert_int_equal(got.outcome, SMTPC_DEFER_ALL);
    char *want = xasprintf("conversation with mx[127.0.0.1]:%u timed out while receiving the initial "
                           "server greeting",
                           f->port);
    assert_string_equal(got.text, want);
    assert_string_equal(got.enh, "4.4.2");
    assert_int_equal(got.remote, 0);
    free(want);
    fake_free(f);
    env_free(e);

    /* silent after RCPT: the recipient is deferred */
    e = env_new(BODY, sizeof BODY - 1, 1);
    struct fake_conf fc2 = {.rcpt = {SILENT}};
    f = fake_new(e->base, &fc2);
    t = target("mx", f->port);
    e->opts.rcpt_timeout = 1;
    run(e, f, NULL, &t, 1);
    assert_int_equal(got.outcome, SMTPC_DONE);
    want = xasprintf("conversation with mx[127.0.0.1]:%u timed out while sending RCPT TO", f->port);
    assert_rcpt(&e->rcpts[0], 451, "4.4.2", want, "RCPT TO", 0);
    free(want);
    fake_free(f);
    env_free(e);
}

static char *big_body(size_t size)
{
    char *b = xmalloc(size);
    size_t o = 0;
    unsigned n = 0;
    while (o < size) {
        char line[128];
        int len = snprintf(line, sizeof line, "%sline %u of the big message, some padding text here\r\n",
                           n % 7 == 0 ? "." : "", n);
        n++;
        size_t l = (size_t)len;
        if (o + l > size) {   /* end exactly on a line end */
            l = size - o;
            memset(line, 'z', l);
            if (l >= 2) {
                line[l - 2] = '\r';
                line[l - 1] = '\n';
            }
        }
        memcpy(b + o, line, l);
        o += l;
    }
    return b;
}

/* Undoes the dot-stuffing, as a receiving server does. */
static void unstuff(const struct strbuf *in, struct strbuf *out)
{
    size_t i = 0;
    while (i < in->len) {
        const char *nl = memchr(in->buf + i, '\n', in->len - i);
        size_t end = nl ? (size_t)(nl - in->buf) + 1 : in->len;
        size_t s = i;
        if (in->buf[i] == '.')
            s++;
        strbuf_append(out, in->buf + s, end - s);
        i = end;
    }
}

static void test_large_message_intact(void **state)
{
    (void)state;
    size_t size = 5 * 1024 * 1024 + 17;
    char *b = big_body(size);
    struct env *e = env_new(b, size, 1);
    struct fake_conf fc = {.ehlo = EHLO_ALL};
    struct fake *f = fake_new(e->base, &fc);
    struct smtpc_target t = target("mx", f->port);
    run(e, f, NULL, &t, 1);
    assert_int_equal(got.outcome, SMTPC_DONE);
    assert_rcpt(&e->rcpts[0], 250, "2.0.0", "250 2.0.0 Ok: queued as 1", "end of DATA", 1);
    struct strbuf plain = STRBUF_INIT;
    unstuff(&f->content, &plain);
    assert_int_equal(plain.len, size);
    assert_memory_equal(plain.buf, b, size);
    assert_true(f->content.len > size);   /* dots were added */
    strbuf_free(&plain);
    free(b);
    fake_free(f);
    env_free(e);
}

static void test_drop_mid_data_defers_accepted(void **state)
{
    (void)state;
    size_t size = 3 * 1024 * 1024;
    char *b = big_body(size);
    struct env *e = env_new(b, size, 2);
    struct fake_conf fc = {.rcpt = {NULL, "550 5.1.1 no such user\r\n"}, .drop_after = 100000};
    struct fake *f = fake_new(e->base, &fc);
    struct smtpc_target t = target("mx", f->port);
    run(e, f, NULL, &t, 1);
    assert_int_equal(got.outcome, SMTPC_DONE);
    char *want = xasprintf("lost connection with mx[127.0.0.1]:%u while sending message body", f->port);
    assert_rcpt(&e->rcpts[0], 451, "4.4.2", want, "end of DATA", 0);
    assert_rcpt(&e->rcpts[1], 550, "5.1.1", "550 5.1.1 no such user", "RCPT TO", 1);
    free(want);
    assert_int_equal(f->dot_seen, 0);
    free(b);
    fake_free(f);
    env_free(e);
}

static void test_final_dot_5xx_bounces_accepted(void **state)
{
    (void)state;
    struct env *e = env_new(BODY, sizeof BODY - 1, 2);
    struct fake_conf fc = {.rcpt = {NULL, "452 4.5.3 too many recipients\r\n"},
                           .dot = "554 5.7.1 Message rejected as spam\r\n"};
    struct fake *f = fake_new(e->base, &fc);
    struct smtpc_target t = target("mx", f->port);
    run(e, f, NULL, &t, 1);
    assert_int_equal(got.outcome, SMTPC_DONE);
    assert_rcpt(&e->rcpts[0], 554, "5.7.1", "554 5.7.1 Message rejected as spam", "end of DATA", 1);
    assert_rcpt(&e->rcpts[1], 452, "4.5.3", "452 4.5.3 too many recipients", "RCPT TO", 1);
    assert_int_equal(f->saw_quit, 1);
    fake_free(f);
    env_free(e);
}

static void test_overlong_reply_line(void **state)
{
    (void)state;
    struct env *e = env_new(BODY, sizeof BODY - 1, 1);
    char *longline = xmalloc(6000);
    memcpy(longline, "220 ", 4);
    memset(longline + 4, 'x', 5000);
    memcpy(longline + 5004, "\r\n", 3);
    struct fake_conf fc = {.greeting = longline};
    struct fake *f = fake_new(e->base, &fc);
    struct smtpc_target t = target("mx", f->port);
    run(e, f, NULL, &t, 1);
    assert_int_equal(got.outcome, SMTPC_DEFER_ALL);
    assert_int_equal(got.code / 100, 4);
    assert_string_equal(got.enh, "4.5.0");
    char *want = xasprintf("reply line too long from mx[127.0.0.1]:%u while receiving the initial server "
                           "greeting",
                           f->port);
    assert_string_equal(got.text, want);
    free(want);
    free(longline);
    fake_free(f);
    env_free(e);

    /* too many lines in one reply, after MAIL: deferred */
    e = env_new(BODY, sizeof BODY - 1, 1);
    struct strbuf many = STRBUF_INIT;
    for (int i = 0; i < 150; i++)
        strbuf_puts(&many, "250-ok\r\n");
    strbuf_puts(&many, "250 ok\r\n");
    struct fake_conf fc2 = {.mail = many.buf};
    f = fake_new(e->base, &fc2);
    t = target("mx", f->port);
    run(e, f, NULL, &t, 1);
    assert_int_equal(got.outcome, SMTPC_DEFER_ALL);
    assert_string_equal(got.enh, "4.5.0");
    assert_int_equal(e->rcpts[0].code / 100, 4);
    strbuf_free(&many);
    fake_free(f);
    env_free(e);
}

static int saw_ehlo(struct waiter *w)
{
    return w->f[0]->rx.len > 0;
}

static int server_idle(struct waiter *w)
{
    return w->f[0]->conns_open == 0;
}

static void test_cancel(void **state)
{
    (void)state;
    /* before the loop ever ran */
    struct env *e = env_new(BODY, sizeof BODY - 1, 1);
    struct fake *f = fake_new(e->base, NULL);
    struct smtpc_target t = target("mx", f->port);
    struct smtpc *c = smtpc_start(e->base, &e->opts, &t, 1, &e->msg, on_result, &got);
    smtpc_cancel(c);
    struct timeval tv = {0, 100000};
    event_base_loopexit(e->base, &tv);
    event_base_dispatch(e->base);
    assert_int_equal(got.calls, 0);
    assert_int_equal(f->conns_total, 0);
    fake_free(f);
    env_free(e);

    /* in the middle of the dialogue: closed at once, no QUIT */
    e = env_new(BODY, sizeof BODY - 1, 2);
    struct fake_conf fc = {.ehlo = SILENT};
    f = fake_new(e->base, &fc);
    t = target("mx", f->port);
    e->rcpts[1].addr = "bad address";   /* has a result already: cleared */
    c = smtpc_start(e->base, &e->opts, &t, 1, &e->msg, on_result, &got);
    run_until(e->base, f, NULL, saw_ehlo);
    assert_int_equal(e->rcpts[1].done, 1);
    smtpc_cancel(c);
    assert_int_equal(e->rcpts[1].done, 0);
    assert_null(e->rcpts[1].text);
    run_until(e->base, f, NULL, server_idle);
    assert_int_equal(got.calls, 0);
    assert_int_equal(f->saw_quit, 0);
    assert_int_equal(smtpc_lingering(), 0);
    fake_free(f);
    env_free(e);
}

/* The callback frees what it likes and even drops the lingering QUIT. */
static void drop_in_cb(void *arg, struct smtpc_result *res)
{
    on_result(arg, res);
    assert_int_equal(smtpc_lingering(), 1);
    smtpc_drop_lingering();
    assert_int_equal(smtpc_lingering(), 0);
}

static void test_drop_lingering_from_callback(void **state)
{
    (void)state;
    struct env *e = env_new(BODY, sizeof BODY - 1, 1);
    struct fake *f = fake_new(e->base, NULL);
    struct smtpc_target t = target("mx", f->port);
    smtpc_start(e->base, &e->opts, &t, 1, &e->msg, drop_in_cb, &got);
    run_until(e->base, f, NULL, NULL);
    assert_int_equal(got.calls, 1);
    assert_int_equal(f->saw_quit, 0);
    fake_free(f);
    env_free(e);
}

static void test_no_targets(void **state)
{
    (void)state;
    struct env *e = env_new(BODY, sizeof BODY - 1, 1);
    run(e, NULL, NULL, NULL, 0);
    assert_int_equal(got.outcome, SMTPC_DEFER_ALL);
    assert_int_equal(got.code / 100, 4);
    assert_string_equal(got.relay, "(null)");
    assert_int_equal(e->rcpts[0].code / 100, 4);
    env_free(e);
}

/* The queue file is shorter than the message claims: the accepted
 * recipients are deferred and the DATA is never ended. */
static void test_short_queue_file_defers(void **state)
{
    (void)state;
    struct env *e = env_new(BODY, sizeof BODY - 1, 1);
    struct fake *f = fake_new(e->base, NULL);
    struct smtpc_target t = target("mx", f->port);
    e->msg.length += 1000;   /* past the end of the file */
    run(e, f, NULL, &t, 1);
    assert_int_equal(got.outcome, SMTPC_DONE);
    assert_int_equal(e->rcpts[0].code, 451);
    assert_string_equal(e->rcpts[0].enh, "4.3.0");
    assert_non_null(strstr(e->rcpts[0].text, "queue file ends"));
    assert_int_equal(f->dot_seen, 0);
    assert_int_equal(f->saw_quit, 0);
    fake_free(f);
    env_free(e);
}

/* DSN without SMTPUTF8: a UTF-8 ORCPT travels as utf-8-addr-xtext. */
static void test_utf8_orcpt_as_xtext(void **state)
{
    (void)state;
    struct env *e = env_new(BODY, sizeof BODY - 1, 1);
    struct fake_conf fc = {.ehlo = "250-fake\r\n250 DSN\r\n"};
    struct fake *f = fake_new(e->base, &fc);
    struct smtpc_target t = target("mx", f->port);
    e->rcpts[0].orcpt = "rfc822;b\xc3\xa9+x@x.test";
    e->rcpts[0].notify = 4;
    run(e, f, NULL, &t, 1);
    assert_non_null(strstr(f->rx.buf, "RCPT TO:<a@x.test> NOTIFY=DELAY ORCPT=utf-8;b\\x{E9}\\x{2B}x@x.test\r\n"));
    assert_int_equal(got.outcome, SMTPC_DONE);
    fake_free(f);
    env_free(e);
}

static int result_and_idle(struct waiter *w)
{
    (void)w;
    return got.calls > 0 && smtpc_idle() == 1;
}

static int got_result(struct waiter *w)
{
    (void)w;
    return got.calls > 0;
}

static int idle_gone(struct waiter *w)
{
    (void)w;
    return smtpc_idle() == 0;
}

/* With a cache key, a clean transaction leaves the connection idle; the
 * next session for the same key uses it (no new connect, no EHLO); an
 * idle connection says QUIT when its time is up, and one the server
 * closed is never used. */
static void test_connection_reuse(void **state)
{
    (void)state;
    struct env *e = env_new(BODY, sizeof BODY - 1, 1);
    struct fake_conf fc = {.ehlo = "250-fake.test\r\n250 DSN\r\n"};
    struct fake *f = fake_new(e->base, &fc);
    struct smtpc_target t = target("mx.x.test", f->port);
    e->opts.cache_key = "x.test:25";
    e->opts.cache_idle = 1;
    e->rcpts[0].notify = 1;

    smtpc_start(e->base, &e->opts, &t, 1, &e->msg, on_result, &got);
    run_until(e->base, f, NULL, result_and_idle);
    assert_rcpt(&e->rcpts[0], 250, "2.0.0", "250 2.0.0 Ok: queued as 1", "end of DATA", 1);
    assert_int_equal(e->rcpts[0].dsn_passed, 1);   /* the server offered DSN */
    assert_int_equal(f->conns_total, 1);
    assert_int_equal(f->saw_quit, 0);

    smtpc_msg_clear(&e->msg);
    assert_int_equal(e->rcpts[0].dsn_passed, 0);
    outcome_reset();
    smtpc_start(e->base, &e->opts, &t, 1, &e->msg, on_result, &got);
    run_until(e->base, f, NULL, result_and_idle);
    assert_rcpt(&e->rcpts[0], 250, "2.0.0", "250 2.0.0 Ok: queued as 1", "end of DATA", 1);
    assert_int_equal(f->conns_total, 1);
    assert_int_equal(f->dot_seen, 2);
    assert_string_equal(f->rx.buf, "EHLO client.test\r\n"
                                   "MAIL FROM:<s@y.test>\r\n"
                                   "RCPT TO:<a@x.test> NOTIFY=SUCCESS\r\n"
                                   "DATA\r\n"
                                   "MAIL FROM:<s@y.test>\r\n"
                                   "RCPT TO:<a@x.test> NOTIFY=SUCCESS\r\n"
                                   "DATA\r\n");
    char *relay = relay_of("mx.x.test", f->port);
    assert_string_equal(got.relay, relay);
    free(relay);

    /* unused for its idle second: QUIT, and gone */
    outcome_reset();
    got.calls = 1;
    run_until(e->base, f, NULL, settled);
    assert_int_equal(f->saw_quit, 1);
    assert_int_equal(smtpc_idle(), 0);

    /* the server drops an idle connection: the next session connects anew */
    smtpc_msg_clear(&e->msg);
    outcome_reset();
    smtpc_start(e->base, &e->opts, &t, 1, &e->msg, on_result, &got);
    run_until(e->base, f, NULL, result_and_idle);
    assert_int_equal(f->conns_total, 2);
    fake_close(f);
    run_until(e->base, f, NULL, idle_gone);
    smtpc_msg_clear(&e->msg);
    outcome_reset();
    smtpc_start(e->base, &e->opts, &t, 1, &e->msg, on_result, &got);
    run_until(e->base, f, NULL, result_and_idle);
    assert_int_equal(f->conns_total, 3);
    assert_int_equal(e->rcpts[0].code, 250);

    /* another key never takes it */
    assert_int_equal(smtpc_idle(), 1);
    smtpc_msg_clear(&e->msg);
    outcome_reset();
    struct fake_conf fc2 = {0};
    struct fake *f2 = fake_new(e->base, &fc2);
    struct smtpc_target t2 = target("mx.other.test", f2->port);
    e->opts.cache_key = "other.test:25";
    smtpc_start(e->base, &e->opts, &t2, 1, &e->msg, on_result, &got);
    run_until(e->base, f2, NULL, got_result);
    assert_int_equal(f2->conns_total, 1);
    assert_int_equal(f->conns_total, 3);
    assert_int_equal(f->dot_seen, 4);          /* f got nothing more */
    fake_free(f2);
    fake_free(f);
    env_free(e);
}

/* ---- LMTP (RFC 2033) ---- */

static const char LHLO_DOVECOT[] = "250-fake.test\r\n"
                                   "250-8BITMIME\r\n"
                                   "250-ENHANCEDSTATUSCODES\r\n"
                                   "250 PIPELINING\r\n";

/* LHLO, one pipelined group, and after the dot one reply per accepted
 * recipient in RCPT order (the one refused at RCPT gets none): each is
 * that recipient's result, 2xx, 4xx and 5xx alike. Over a unix socket,
 * shown as "host[path]" with the path as configured. */
static void test_lmtp_per_recipient_replies(void **state)
{
    (void)state;
    struct env *e = env_new(BODY, sizeof BODY - 1, 4);
    struct fake_conf fc = {.lhlo = LHLO_DOVECOT,
                           .rcpt = {NULL, "550 5.1.1 <b@x.test> User doesn't exist: b@x.test\r\n"},
                           .dot = "250 2.0.0 <a@x.test> Kx1 Saved\r\n"
                                  "452 4.2.2 <c@x.test> Mailbox is full\r\n"
                                  "550 5.2.1 <d@x.test> Mailbox disabled\r\n"};
    struct fake *f = fake_new_unix(e->base, &fc);
    struct smtpc_target t = unix_target("mail.test", f->unix_path, "private/lmtp");
    e->opts.lmtp = 1;
    run(e, f, NULL, &t, 1);

    assert_string_equal(f->rx.buf, "LHLO client.test\r\n"
                                   "MAIL FROM:<s@y.test>\r\n"
                                   "RCPT TO:<a@x.test>\r\n"
                                   "RCPT TO:<b@x.test>\r\n"
                                   "RCPT TO:<c@x.test>\r\n"
                                   "RCPT TO:<d@x.test>\r\n"
                                   "DATA\r\n"
                                   "QUIT\r\n");
    assert_non_null(strstr(f->mail_chunk, "RCPT TO:<d@x.test>\r\nDATA\r\n"));   /* pipelined */
    assert_memory_equal(f->content.buf, BODY_WIRE, sizeof BODY_WIRE - 1);
    assert_int_equal(got.outcome, SMTPC_DONE);
    assert_string_equal(got.relay, "mail.test[private/lmtp]");
    assert_rcpt(&e->rcpts[0], 250, "2.0.0", "250 2.0.0 <a@x.test> Kx1 Saved", "end of DATA", 1);
    assert_rcpt(&e->rcpts[1], 550, "5.1.1", "550 5.1.1 <b@x.test> User doesn't exist: b@x.test", "RCPT TO", 1);
    assert_rcpt(&e->rcpts[2], 452, "4.2.2", "452 4.2.2 <c@x.test> Mailbox is full", "end of DATA", 1);
    assert_rcpt(&e->rcpts[3], 550, "5.2.1", "550 5.2.1 <d@x.test> Mailbox disabled", "end of DATA", 1);
    assert_int_equal(f->saw_quit, 1);
    fake_free(f);
    env_free(e);
}

/* The connection drops after the first of three replies: the first
 * recipient is delivered, the two still waiting are deferred (never
 * bounced: the server may or may not have delivered them). */
static void test_lmtp_lost_after_first_reply(void **state)
{
    (void)state;
    struct env *e = env_new(BODY, sizeof BODY - 1, 3);
    struct fake_conf fc = {.lhlo = LHLO_DOVECOT, .dot = "250 2.0.0 <a@x.test> Kx1 Saved\r\n", .close_after_dot = 1};
    struct fake *f = fake_new_unix(e->base, &fc);
    struct smtpc_target t = unix_target("mail.test", f->unix_path, NULL);
    e->opts.lmtp = 1;
    run(e, f, NULL, &t, 1);
    assert_int_equal(got.outcome, SMTPC_DONE);
    char *relay = xasprintf("mail.test[%s]", f->unix_path);
    assert_string_equal(got.relay, relay);
    assert_rcpt(&e->rcpts[0], 250, "2.0.0", "250 2.0.0 <a@x.test> Kx1 Saved", "end of DATA", 1);
    char *want = xasprintf("lost connection with %s while sending end of data -- message may be sent more than once",
                           relay);
    assert_rcpt(&e->rcpts[1], 451, "4.4.2", want, "end of DATA", 0);
    assert_rcpt(&e->rcpts[2], 451, "4.4.2", want, "end of DATA", 0);
    free(want);
    free(relay);
    fake_free(f);
    env_free(e);
}

/* A server that does not offer PIPELINING gets one command at a time; an
 * inet target is fine too. */
static void test_lmtp_without_pipelining(void **state)
{
    (void)state;
    struct env *e = env_new(BODY, sizeof BODY - 1, 2);
    struct fake_conf fc = {.dot = "250 2.0.0 <a@x.test> ok\r\n" "250 2.0.0 <b@x.test> ok\r\n"};
    struct fake *f = fake_new(e->base, &fc);
    struct smtpc_target t = target("lmtp.x.test", f->port);
    e->opts.lmtp = 1;
    run(e, f, NULL, &t, 1);
    assert_string_equal(f->rx.buf, "LHLO client.test\r\n"
                                   "MAIL FROM:<s@y.test>\r\n"
                                   "RCPT TO:<a@x.test>\r\n"
                                   "RCPT TO:<b@x.test>\r\n"
                                   "DATA\r\n"
                                   "QUIT\r\n");
    assert_string_equal(f->mail_chunk, "MAIL FROM:<s@y.test>\r\n");
    char *relay = relay_of("lmtp.x.test", f->port);
    assert_string_equal(got.relay, relay);
    free(relay);
    assert_rcpt(&e->rcpts[0], 250, "2.0.0", "250 2.0.0 <a@x.test> ok", "end of DATA", 1);
    assert_rcpt(&e->rcpts[1], 250, "2.0.0", "250 2.0.0 <b@x.test> ok", "end of DATA", 1);
    fake_free(f);
    env_free(e);
}

/* LMTP has no HELO: a refused LHLO fails the target (deferred at the end),
 * and nothing else is sent but QUIT. */
static void test_lmtp_lhlo_refused_no_helo(void **state)
{
    (void)state;
    struct env *e = env_new(BODY, sizeof BODY - 1, 1);
    struct fake_conf fc = {.lhlo = "500 5.5.1 unknown command\r\n"};
    struct fake *f = fake_new_unix(e->base, &fc);
    struct smtpc_target t = unix_target("mail.test", f->unix_path, "lmtp");
    e->opts.lmtp = 1;
    run(e, f, NULL, &t, 1);
    assert_string_equal(f->rx.buf, "LHLO client.test\r\nQUIT\r\n");
    assert_int_equal(got.outcome, SMTPC_DEFER_ALL);
    assert_int_equal(got.code, 451);
    assert_string_equal(got.enh, "4.5.1");
    assert_string_equal(got.stage, "LHLO");
    assert_rcpt(&e->rcpts[0], 451, "4.5.1", "500 5.5.1 unknown command", "LHLO", 1);
    fake_free(f);
    env_free(e);
}

/* A unix socket nobody listens on: a connect failure, deferred. */
static void test_lmtp_unix_socket_missing(void **state)
{
    (void)state;
    struct env *e = env_new(BODY, sizeof BODY - 1, 1);
    struct smtpc_target t = unix_target("mail.test", "/nonexistent/tern-test/lmtp", NULL);
    e->opts.lmtp = 1;
    run(e, NULL, NULL, &t, 1);
    assert_int_equal(got.outcome, SMTPC_DEFER_ALL);
    assert_rcpt(&e->rcpts[0], 451, "4.4.1",
                "connect to mail.test[/nonexistent/tern-test/lmtp]: No such file or directory", "connect", 0);
    env_free(e);
}

/* Two messages over one cached LMTP connection: the second starts with
 * MAIL at once, and both get their per-recipient replies. */
static void test_lmtp_connection_reuse(void **state)
{
    (void)state;
    struct env *e = env_new(BODY, sizeof BODY - 1, 2);
    struct fake_conf fc = {.lhlo = LHLO_DOVECOT,
                           .dot = "250 2.0.0 <a@x.test> Saved\r\n" "550 5.2.2 <b@x.test> Quota exceeded\r\n"};
    struct fake *f = fake_new_unix(e->base, &fc);
    struct smtpc_target t = unix_target("mail.test", f->unix_path, "lmtp");
    e->opts.lmtp = 1;
    e->opts.cache_key = "lmtp:unix:lmtp";
    for (int round = 0; round < 2; round++) {
        smtpc_msg_clear(&e->msg);
        outcome_reset();
        smtpc_start(e->base, &e->opts, &t, 1, &e->msg, on_result, &got);
        run_until(e->base, f, NULL, result_and_idle);
        assert_rcpt(&e->rcpts[0], 250, "2.0.0", "250 2.0.0 <a@x.test> Saved", "end of DATA", 1);
        assert_rcpt(&e->rcpts[1], 550, "5.2.2", "550 5.2.2 <b@x.test> Quota exceeded", "end of DATA", 1);
    }
    assert_int_equal(f->conns_total, 1);
    assert_int_equal(f->dot_seen, 2);
    const char *second = strstr(f->rx.buf, "DATA\r\nMAIL FROM:");
    assert_non_null(second);
    assert_null(strstr(second, "LHLO"));
    fake_free(f);
    env_free(e);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    log_set_stderr(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_delivery_exact_bytes),
        cmocka_unit_test(test_pipelined_with_all_parameters),
        cmocka_unit_test(test_prepend_before_content),
        cmocka_unit_test(test_mixed_rcpt_results),
        cmocka_unit_test(test_all_rcpts_rejected_no_data),
        cmocka_unit_test(test_pipelined_354_without_rcpts),
        cmocka_unit_test(test_ehlo_5xx_helo_fallback),
        cmocka_unit_test(test_server_naming_us_is_a_loop),
        cmocka_unit_test(test_greeting_554_next_target),
        cmocka_unit_test(test_refused_then_second_target),
        cmocka_unit_test(test_all_targets_fail_defer_last_reason),
        cmocka_unit_test(test_greeting_5xx_only_target_defers_class_4),
        cmocka_unit_test(test_mail_5xx_bounce_all),
        cmocka_unit_test(test_mail_4xx_defer_all),
        cmocka_unit_test(test_size_over_limit),
        cmocka_unit_test(test_smtputf8_not_offered),
        cmocka_unit_test(test_8bit_without_8bitmime),
        cmocka_unit_test(test_unusable_addresses),
        cmocka_unit_test(test_silent_server_timeout),
        cmocka_unit_test(test_large_message_intact),
        cmocka_unit_test(test_drop_mid_data_defers_accepted),
        cmocka_unit_test(test_final_dot_5xx_bounces_accepted),
        cmocka_unit_test(test_overlong_reply_line),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_drop_lingering_from_callback),
        cmocka_unit_test(test_no_targets),
        cmocka_unit_test(test_short_queue_file_defers),
        cmocka_unit_test(test_utf8_orcpt_as_xtext),
        cmocka_unit_test(test_connection_reuse),
        cmocka_unit_test(test_lmtp_per_recipient_replies),
        cmocka_unit_test(test_lmtp_lost_after_first_reply),
        cmocka_unit_test(test_lmtp_without_pipelining),
        cmocka_unit_test(test_lmtp_lhlo_refused_no_helo),
        cmocka_unit_test(test_lmtp_unix_socket_missing),
        cmocka_unit_test(test_lmtp_connection_reuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
