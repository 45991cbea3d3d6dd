/* qmgr_capture: tells the capture process about captured messages (see
 * qmgr_capture.h). */
#include "qmgr/qmgr_capture.h"

#include <event2/event.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "spool/spool.h"
#include "spool/store.h"
#include "util/ipc.h"
#include "util/log.h"
#include "util/mem.h"

/* Notices kept while the capture process is away; more are dropped and it
 * rescans capture/ when told (the "missed" attribute). */
#define CAPTURE_BACKLOG_MAX 4096

static struct {
    struct event_base *base;
    enum store_capture mode;
    char *socket_path;
    struct ipc_chan *ch;
    char **backlog;
    size_t nbacklog;
    int missed;                 /* notices dropped since the last that went */
    struct event *retry;
} qc;

int qmgr_capture_only(void)
{
    return qc.mode == STORE_CAPTURE_ONLY;
}

static void on_capture_message(struct ipc_chan *ch, struct ipc_msg *m, void *arg)
{
    (void)arg;
    if (m)
        return; /* the capture process answers nothing on this channel */
    if (ch == qc.ch) {
        ipc_chan_free(qc.ch);
        qc.ch = NULL;
    }
}

static void send_notice(const char *id)
{
    struct ipc_msg m;
    ipc_msg_init(&m, IPC_CAPTURED, 0);
    ipc_msg_add(&m, "id", id);
    if (qc.missed)
        ipc_msg_add(&m, "missed", "yes");
    if (ipc_chan_send(qc.ch, &m) == 0)
        qc.missed = 0;
    ipc_msg_free(&m);
}

static int connected(void)
{
    if (qc.ch)
        return 1;
    int fd = ipc_connect(qc.socket_path);
    if (fd < 0)
        return 0;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    qc.ch = ipc_chan_new(qc.base, fd, on_capture_message, NULL);
    return qc.ch != NULL;
}

static void flush_backlog(void)
{
    for (size_t i = 0; i < qc.nbacklog; i++) {
        send_notice(qc.backlog[i]);
        free(qc.backlog[i]);
    }
    qc.nbacklog = 0;
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (connected())
        flush_backlog();
    else if (qc.nbacklog) {
        struct timeval tv = {1, 0};
        event_add(qc.retry, &tv);
    }
}

void qmgr_capture_notify(const char *id)
{
    if (qc.mode == STORE_CAPTURE_OFF)
        return;
    if (connected()) {
        flush_backlog();
        send_notice(id);
        return;
    }
    if (qc.nbacklog < CAPTURE_BACKLOG_MAX) {
        if (!qc.backlog)
            qc.backlog = xcalloc(CAPTURE_BACKLOG_MAX, sizeof *qc.backlog);
        qc.backlog[qc.nbacklog++] = xstrdup(id);
    } else {
        qc.missed = 1;
    }
    if (!evtimer_pending(qc.retry, NULL)) {
        struct timeval tv = {1, 0};
        event_add(qc.retry, &tv);
    }
}

int qmgr_capture_init(struct event_base *base, struct conf *c, const char *queue_dir)
{
    memset(&qc, 0, sizeof qc);
    qc.base = base;
    const char *mode = conf_str(c, "capture");
    qc.mode = strcmp(mode, "yes") == 0    ? STORE_CAPTURE_ONLY
              : strcmp(mode, "copy") == 0 ? STORE_CAPTURE_COPY
                                          : STORE_CAPTURE_OFF;
    if (qc.mode == STORE_CAPTURE_OFF)
        return store_set_capture(STORE_CAPTURE_OFF);
    qc.socket_path = xasprintf("%s/%s", queue_dir, QSOCK_CAPTURE);
    qc.retry = evtimer_new(base, on_retry, NULL);
    return store_set_capture(qc.mode);
}

void qmgr_capture_shutdown(void)
{
    if (qc.ch)
        ipc_chan_free(qc.ch);
    for (size_t i = 0; i < qc.nbacklog; i++)
        free(qc.backlog[i]);
    free(qc.backlog);
    if (qc.retry)
        event_free(qc.retry);
    free(qc.socket_path);
    memset(&qc, 0, sizeof qc);
}
