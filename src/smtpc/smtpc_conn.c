/* smtpc_conn: the socket side of smtpc (TCP, or a unix socket for
 * LMTP). It owns one connection's
 * socket (a libevent bufferevent), its stage timer and its line reading,
 * and the process-wide list of lingering connections that finish their
 * QUIT exchange after their session has given its result.
 *
 * Replies are network input: a line is taken only once its end is in the
 * buffer and it is at most SMTPC_REPLY_LINE_MAX octets; a longer one is a
 * protocol failure as soon as the buffer holds that many octets without a
 * line end, so the input buffer never grows past about one line plus one
 * read.
 *
 * A connection may be ended from inside one of its own callbacks (by the
 * session's result callback, by smtpc_drop_lingering ...): it is then
 * only marked dead and freed when the outermost of its callbacks returns. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "smtpc/smtpc_internal.h"
#include "util/list.h"
#include "util/mem.h"

static struct list lingering;
static size_t lingering_count;
/* Idle connections kept for reuse, newest last, on the same link (a
 * connection is on one list at most). */
static struct list idle;
static size_t idle_count;

static void conn_free(struct smtpc_conn *k)
{
    if (k->bev != NULL)
        bufferevent_free(k->bev);
    if (k->timer != NULL)
        event_free(k->timer);
    smtpc_reply_free(&k->reply);
    free(k->line);
    free(k->relay);
    free(k->cache_key);
    free(k);
}

static void idle_unlink(struct smtpc_conn *k)
{
    if (!k->idle)
        return;
    list_remove(&idle, &k->link);
    k->idle = 0;
    idle_count--;
}

static void lingering_unlink(struct smtpc_conn *k)
{
    if (!k->lingering)
        return;
    list_remove(&lingering, &k->link);
    k->lingering = 0;
    lingering_count--;
}

/* Ends k now, or when its outermost callback returns. */
static void conn_end(struct smtpc_conn *k)
{
    lingering_unlink(k);
    idle_unlink(k);
    k->client = NULL;
    if (k->in_cb > 0) {
        k->dead = 1;
        bufferevent_disable(k->bev, EV_READ | EV_WRITE);
        event_del(k->timer);
        return;
    }
    conn_free(k);
}

static void enter(struct smtpc_conn *k)
{
    k->in_cb++;
}

static void leave(struct smtpc_conn *k)
{
    if (--k->in_cb == 0 && k->dead)
        conn_free(k);
}

void smtpc_conn_send(struct smtpc_conn *k, const char *s, size_t len)
{
    evbuffer_add(bufferevent_get_output(k->bev), s, len);
}

void smtpc_conn_arm(struct smtpc_conn *k, long seconds)
{
    struct timeval tv = {seconds, 0};
    event_add(k->timer, &tv);
}

static void send_quit(struct smtpc_conn *k)
{
    smtpc_conn_send(k, "QUIT\r\n", 6);
    k->quit_sent = 1;
    k->stage = SMTPC_ST_QUIT;
}

void smtpc_conn_linger(struct smtpc_conn *k, unsigned owed, long quit_timeout)
{
    /* Servers that never answer QUIT must not hold a descriptor each for
     * the whole timeout without bound: past SMTPC_LINGER_MAX the oldest
     * goes (its results are in; only the courtesy of the QUIT is lost). */
    if (lingering_count >= SMTPC_LINGER_MAX) {
        struct smtpc_conn *oldest = LIST_FIRST(&lingering, struct smtpc_conn, link);
        if (oldest)
            conn_end(oldest);
    }
    k->client = NULL;
    k->lingering = 1;
    list_append(&lingering, &k->link);
    lingering_count++;
    k->owed = owed;
    bufferevent_enable(k->bev, EV_READ);
    if (owed == 0)
        send_quit(k);
    smtpc_conn_arm(k, quit_timeout);
}

void smtpc_conn_close(struct smtpc_conn *k)
{
    conn_end(k);
}

void smtpc_conn_cache(struct smtpc_conn *k, const char *key, long idle_seconds, long quit_timeout)
{
    k->client = NULL;
    k->idle = 1;
    k->stage = SMTPC_ST_IDLE;
    free(k->cache_key);
    k->cache_key = xstrdup(key);
    k->quit_timeout = quit_timeout;
    list_append(&idle, &k->link);
    idle_count++;
    bufferevent_enable(k->bev, EV_READ);
    smtpc_conn_arm(k, idle_seconds);
}

struct smtpc_conn *smtpc_conn_take(struct smtpc *c, const char *key)
{
    /* the most recently used first: the least likely to have timed out */
    for (struct smtpc_conn *k = LIST_LAST(&idle, struct smtpc_conn, link); k != NULL;
         k = LIST_PREV(k, struct smtpc_conn, link)) {
        if (k->dead || strcmp(k->cache_key, key) != 0 || k->base != c->base)
            continue;
        idle_unlink(k);
        event_del(k->timer);
        k->client = c;
        return k;
    }
    return NULL;
}

/* A lingering connection's line: replies are counted, not judged. A 354
 * means the server opened a DATA nobody wants: a lone dot ends it, and its
 * reply is owed too. */
static void linger_line(struct smtpc_conn *k, const char *line, size_t len)
{
    const char *why;
    if (k->reply.complete)
        smtpc_reply_reset(&k->reply);
    if (smtpc_reply_add_line(&k->reply, line, len, NULL, &why) < 0) {
        conn_end(k);
        return;
    }
    if (!k->reply.complete)
        return;
    if (k->quit_sent) {
        conn_end(k);
        return;
    }
    if (k->reply.code == 354) {
        smtpc_conn_send(k, ".\r\n", 3);
        k->owed++;
    }
    if (k->owed > 0)
        k->owed--;
    if (k->owed == 0)
        send_quit(k);
}

static void session_line(struct smtpc_conn *k, const char *line, size_t len)
{
    const char *why;
    if (k->reply.complete)
        smtpc_reply_reset(&k->reply);
    struct smtpc_ext *ext = k->stage == SMTPC_ST_EHLO || k->stage == SMTPC_ST_LHLO ? &k->ext : NULL;
    if (smtpc_reply_add_line(&k->reply, line, len, ext, &why) < 0) {
        smtpc_conn_failed(k->client, SMTPC_F_PROTO, 0, why);
        return;
    }
    if (k->reply.complete)
        smtpc_reply_in(k->client);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct smtpc_conn *k = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    enter(k);
    while (!k->dead) {
        size_t eol_len = 0;
        struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
        size_t have = evbuffer_get_length(in);
        if ((p.pos < 0 && have >= SMTPC_REPLY_LINE_MAX) ||
            (p.pos >= 0 && (size_t)p.pos + 1 > SMTPC_REPLY_LINE_MAX)) {
            evbuffer_drain(in, have);
            if (k->client != NULL)
                smtpc_conn_failed(k->client, SMTPC_F_PROTO, 0, "reply line too long");
            else
                conn_end(k);
            break;
        }
        if (p.pos < 0)
            break;
        size_t total = (size_t)p.pos + 1;
        evbuffer_remove(in, k->line, total);
        size_t len = total - 1;
        if (len > 0 && k->line[len - 1] == '\r')
            len--;
        k->line[len] = '\0';
        if (k->client != NULL)
            session_line(k, k->line, len);
        else if (k->idle)
            conn_end(k);   /* a 421 or anything else unasked for: not reusable */
        else
            linger_line(k, k->line, len);
    }
    leave(k);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    struct smtpc_conn *k = arg;
    (void)bev;
    enter(k);
    if (k->client != NULL && !k->dead)
        smtpc_out_drained(k->client);
    leave(k);
}

/* Progress on the output restarts the content timer: the transfer may
 * take long as long as it moves (smtp_data_xfer_timeout). */
static void out_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct smtpc_conn *k = arg;
    struct smtpc *c = k->client;
    if (info->n_deleted == 0 || c == NULL || k->dead)
        return;
    if (k->stage == SMTPC_ST_XFER || (k->stage == SMTPC_ST_DOT && evbuffer_get_length(buf) > 0))
        smtpc_conn_arm(k, c->opts.data_xfer_timeout);
    else if (k->stage == SMTPC_ST_DOT)
        smtpc_conn_arm(k, c->opts.data_done_timeout);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct smtpc_conn *k = arg;
    int err = errno;
    enter(k);
    if (k->client == NULL || k->dead) {
        if (!k->dead)
            conn_end(k);
    } else if ((what & BEV_EVENT_CONNECTED) && k->stage == SMTPC_ST_TLS) {
        SSL *ssl = bufferevent_openssl_get_ssl(bev);
        const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);
        int alg = 0, bits = cipher ? SSL_CIPHER_get_bits(cipher, &alg) : 0;
        snprintf(k->tls_info, sizeof k->tls_info, "%s with cipher %s (%d/%d bits)", SSL_get_version(ssl),
                 cipher ? SSL_CIPHER_get_name(cipher) : "unknown", bits, alg);
        k->tls = 1;
        smtpc_tls_done(k->client);
    } else if (what & BEV_EVENT_CONNECTED) {
        k->stage = SMTPC_ST_GREETING;
        bufferevent_enable(bev, EV_READ);
        smtpc_connected(k->client);
    } else if (k->stage == SMTPC_ST_TLS) {
        char buf[256] = "lost connection";
        unsigned long e = bufferevent_get_openssl_error(bev);
        if (e)
            ERR_error_string_n(e, buf, sizeof buf);
        else if (SSL_get_verify_result(bufferevent_openssl_get_ssl(bev)) != X509_V_OK)
            snprintf(buf, sizeof buf, "certificate verification failed: %s",
                     X509_verify_cert_error_string(SSL_get_verify_result(bufferevent_openssl_get_ssl(bev))));
        smtpc_conn_failed(k->client, SMTPC_F_TLS, 0, buf);
    } else if (k->stage == SMTPC_ST_CONNECT) {
        smtpc_conn_failed(k->client, SMTPC_F_CONNECT, err != 0 ? err : ECONNREFUSED, NULL);
    } else {
        smtpc_conn_failed(k->client, SMTPC_F_LOST, (what & BEV_EVENT_EOF) ? 0 : err, NULL);
    }
    leave(k);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct smtpc_conn *k = arg;
    (void)fd, (void)what;
    enter(k);
    if (k->idle) {
        /* unused for its idle time: say goodbye properly */
        idle_unlink(k);
        smtpc_conn_linger(k, 0, k->quit_timeout);
    } else if (k->client == NULL) {
        conn_end(k);
    } else {
        smtpc_conn_failed(k->client, SMTPC_F_TIMEOUT, 0, NULL);
    }
    leave(k);
}

struct smtpc_conn *smtpc_conn_open(struct smtpc *c, const struct sockaddr *sa, socklen_t salen,
                                   const char *relay, long connect_timeout, int *err)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = errno;
        return NULL;
    }
    /* Our own connect() tells an immediate failure with its real errno;
     * libevent then waits for the handshake (EINTR: it goes on anyway).
     * A unix socket (LMTP) connects at once or fails at once: its EAGAIN
     * is a full listen queue, a failure like any other. */
    if (connect(fd, sa, salen) < 0 && errno != EINPROGRESS && errno != EINTR) {
        *err = errno;
        close(fd);
        return NULL;
    }
    struct bufferevent *bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        *err = ENOMEM;
        close(fd);
        return NULL;
    }
    struct smtpc_conn *k = xcalloc(1, sizeof *k);
    k->client = c;
    k->base = c->base;
    k->bev = bev;
    k->relay = xstrdup(relay);
    k->line = xmalloc(SMTPC_REPLY_LINE_MAX + 1);
    k->stage = SMTPC_ST_CONNECT;
    k->timer = evtimer_new(c->base, timer_cb, k);
    if (k->timer == NULL)
        abort();
    bufferevent_setcb(bev, read_cb, write_cb, event_cb, k);
    evbuffer_add_cb(bufferevent_get_output(bev), out_cb, k);
    if (bufferevent_socket_connect(bev, NULL, 0) < 0) {
        *err = errno != 0 ? errno : EIO;
        conn_free(k);
        return NULL;
    }
    smtpc_conn_arm(k, connect_timeout);
    return k;
}

int smtpc_conn_start_tls(struct smtpc_conn *k, SSL_CTX *ctx, const char *sni, const char *verify_name)
{
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL)
        return -1;
    /* SNI only for names (RFC 6066 §3: never an address literal) */
    if (sni != NULL && strchr(sni, ':') == NULL && strspn(sni, "0123456789.") != strlen(sni))
        SSL_set_tlsext_host_name(ssl, sni);
    if (verify_name != NULL) {
        /* the certificate must chain to a trusted CA and carry one of the
         * names ("a:b"; ".example.com" stands for its subdomains) */
        SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        char *names = xstrdup(verify_name), *save = NULL;
        int ok = 1, first = 1;
        for (char *n = strtok_r(names, ":", &save); n && ok; n = strtok_r(NULL, ":", &save), first = 0)
            ok = (first ? SSL_set1_host(ssl, n) : SSL_add1_host(ssl, n)) == 1;
        free(names);
        if (!ok) {
            SSL_free(ssl);
            return -1;
        }
    }
    struct bufferevent *tls = bufferevent_openssl_filter_new(k->base, k->bev, ssl, BUFFEREVENT_SSL_CONNECTING,
                                                             BEV_OPT_CLOSE_ON_FREE);
    if (tls == NULL)
        return -1;   /* (the filter frees ssl on failure) */
    bufferevent_openssl_set_allow_dirty_shutdown(tls, 1);
    k->bev = tls;
    k->stage = SMTPC_ST_TLS;
    bufferevent_setcb(tls, read_cb, write_cb, event_cb, k);
    evbuffer_add_cb(bufferevent_get_output(tls), out_cb, k);
    bufferevent_enable(tls, EV_READ | EV_WRITE);
    return 0;
}

size_t smtpc_lingering(void)
{
    return lingering_count;
}

size_t smtpc_idle(void)
{
    return idle_count;
}

void smtpc_drop_lingering(void)
{
    while (!list_empty(&lingering))
        conn_end(LIST_FIRST(&lingering, struct smtpc_conn, link));
    while (!list_empty(&idle))
        conn_end(LIST_FIRST(&idle, struct smtpc_conn, link));
}
