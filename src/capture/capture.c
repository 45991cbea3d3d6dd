/* capture: the capture process (capture mode, main.cf `capture = yes|copy`).
 *
 * Started by the master when capture mode is on, as mail_owner. It owns
 * queue_directory/capture/: indexes it (capture_store.c), serves the HTTP
 * API on the socket the master bound (capture_http.c), and learns of each
 * new message from the queue over private/capture (CAPTURED), so that a
 * waiting client is answered the moment the message is durable. Parses
 * HTTP from loopback clients; never runs as root. */
#include <event2/event.h>
#include <gmime/gmime.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "capture/capture_http.h"
#include "capture/capture_mime.h"
#include "capture/capture_release.h"
#include "capture/capture_rules.h"
#include "capture/capture_store.h"
#include "conf/conf.h"
#include "daemon/runtime.h"
#include "spool/queue_id.h"
#include "util/ipc.h"
#include "util/log.h"
#include "util/mem.h"

/* How often capture_max_age is applied when nothing arrives. */
#define CAPTURE_PRUNE_INTERVAL_S 60

struct notice_conn {
    struct notice_conn *next;
    struct ipc_chan *ch;
};

static struct {
    struct event_base *base;
    struct event *listen_ev, *prune_timer;
    struct notice_conn *conns;
} cp;

static void drop_conn(struct notice_conn *c)
{
    struct notice_conn **pp = &cp.conns;
    while (*pp && *pp != c)
        pp = &(*pp)->next;
    if (*pp)
        *pp = c->next;
    ipc_chan_free(c->ch);
    free(c);
}

static void on_notice(struct ipc_chan *ch, struct ipc_msg *m, void *arg)
{
    (void)ch;
    if (!m) {
        drop_conn(arg);
        return;
    }
    if (m->type != IPC_CAPTURED) {
        log_error("unexpected message type %u on the capture socket", m->type);
        return;
    }
    const char *missed = ipc_msg_get(m, "missed");
    if (missed && strcmp(missed, "yes") == 0)
        capture_store_rescan();
    capture_store_add(ipc_msg_get(m, "id"));
    capture_http_arrived();
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    for (int i = 0; i < 16; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
            return;
        struct notice_conn *c = xcalloc(1, sizeof *c);
        c->ch = ipc_chan_new(cp.base, cfd, on_notice, c);
        ipc_chan_set_priority(c->ch, 0);
        c->next = cp.conns;
        cp.conns = c;
        /* a (re)connected queue may have captured while no one listened */
        capture_store_rescan();
        capture_http_arrived();
    }
}

static void on_prune(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    capture_store_prune();
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    (void)arg;
    if (sig == SIGUSR1) {
        log_reopen();
        return;
    }
    event_base_loopexit(cp.base, NULL);
}

int capture_main(struct runtime *rt)
{
    memset(&cp, 0, sizeof cp);
    g_mime_init();
    queue_id_init(2);   /* releases make queue files; the queue is 0, smtpd 1 */
    cp.base = event_base_new();
    /* Two priorities: the queue's notices (0) run before HTTP (1, the
     * default), so a client that got its 250 and asks at once finds its
     * message: the notice was sent before smtpd was told to say 250, so it
     * is waiting in the socket when the request is. */
    if (!cp.base || event_base_priority_init(cp.base, 2) != 0)
        log_fatal("cannot create event loop");
    log_batch_on(cp.base);
    char *err = NULL;
    if (capture_store_open(rt->queue_dir, (size_t)conf_int(rt->conf, "capture_max_messages"),
                           conf_time(rt->conf, "capture_max_age"), &err) != 0)
        log_fatal("capture: %s", err);
    if (capture_rules_init(rt->queue_dir, &err) != 0)
        log_fatal("capture: %s", err);
    if (capture_release_init(cp.base, rt->conf, rt->queue_dir, &err) != 0)
        log_fatal("capture_release_recipients: %s", err);
    if (capture_http_start(cp.base, rt->capture_http_fd, conf_str(rt->conf, "myhostname"), rt->capture_counters) != 0)
        log_fatal("capture: cannot serve HTTP");
    cp.listen_ev = event_new(cp.base, rt->capture_listen_fd, EV_READ | EV_PERSIST, on_accept, NULL);
    event_priority_set(cp.listen_ev, 0);
    event_add(cp.listen_ev, NULL);
    cp.prune_timer = event_new(cp.base, -1, EV_PERSIST, on_prune, NULL);
    struct timeval tv = {CAPTURE_PRUNE_INTERVAL_S, 0};
    event_add(cp.prune_timer, &tv);
    int sigs[] = {SIGTERM, SIGINT, SIGUSR1};
    struct event *sigev[3];
    for (int i = 0; i < 3; i++) {
        sigev[i] = evsignal_new(cp.base, sigs[i], on_signal, NULL);
        event_add(sigev[i], NULL);
    }
    log_info("capture: serving the API on %s", rt->capture_http_address ? rt->capture_http_address : "?");

    event_base_dispatch(cp.base);

    for (int i = 0; i < 3; i++)
        event_free(sigev[i]);
    capture_http_stop();
    capture_release_shutdown();
    capture_rules_shutdown();
    while (cp.conns)
        drop_conn(cp.conns);
    event_free(cp.listen_ev);
    event_free(cp.prune_timer);
    capture_store_close();
    log_batch_on(NULL);   /* its flush event goes with the loop */
    event_base_free(cp.base);
    capture_mime_shutdown();
    g_mime_shutdown();
    return 0;
}
