/* ipc: length-delimited messages over SOCK_SEQPACKET sockets (see ipc.h). */
#include "util/ipc.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/log.h"
#include "util/mem.h"

void ipc_msg_init(struct ipc_msg *m, uint16_t type, uint32_t reqid)
{
    m->type = type;
    m->reqid = reqid;
    m->body = (struct strbuf)STRBUF_INIT;
    m->fd = -1;
}

void ipc_msg_free(struct ipc_msg *m)
{
    strbuf_free(&m->body);
    if (m->fd >= 0)
        close(m->fd);
    m->fd = -1;
}

void ipc_msg_add_bytes(struct ipc_msg *m, const char *name, const void *value, size_t vlen)
{
    size_t nlen = strlen(name);
    if (nlen > 255)
        log_panic("ipc attribute name too long: %s", name);
    unsigned char n8 = (unsigned char)nlen;
    strbuf_append(&m->body, &n8, 1);
    strbuf_append(&m->body, name, nlen);
    unsigned char l[4] = {(unsigned char)vlen, (unsigned char)(vlen >> 8), (unsigned char)(vlen >> 16),
                          (unsigned char)(vlen >> 24)};
    strbuf_append(&m->body, l, 4);
    strbuf_append(&m->body, vlen ? value : "", vlen);
    strbuf_putc(&m->body, '\0');
}

void ipc_msg_add(struct ipc_msg *m, const char *name, const char *value)
{
    ipc_msg_add_bytes(m, name, value, value ? strlen(value) : 0);
}

void ipc_msg_addf(struct ipc_msg *m, const char *name, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *v = xvasprintf(fmt, ap);
    va_end(ap);
    ipc_msg_add(m, name, v);
    free(v);
}

void ipc_msg_add_u64(struct ipc_msg *m, const char *name, uint64_t value)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)value);
    ipc_msg_add(m, name, buf);
}

/* Attributes are stored encoded, each value followed by a NUL (on the wire
 * too, checked by the decoder), so values can be returned as C strings.
 * Lookups walk the list; messages are small. */
int ipc_msg_next(const struct ipc_msg *m, size_t *pos, const char **name, size_t *namelen, const char **value,
                 size_t *valuelen)
{
    const unsigned char *p = (const unsigned char *)m->body.buf;
    if (!p || *pos >= m->body.len)
        return 0;
    size_t n = p[*pos];
    const unsigned char *l = p + *pos + 1 + n;
    size_t v = (size_t)l[0] | (size_t)l[1] << 8 | (size_t)l[2] << 16 | (size_t)l[3] << 24;
    *name = (const char *)p + *pos + 1;
    *namelen = n;
    *value = (const char *)l + 4;
    if (valuelen)
        *valuelen = v;
    *pos += 1 + n + 4 + v + 1;
    return 1;
}

const void *ipc_msg_get_bytes(const struct ipc_msg *m, const char *name, size_t *len)
{
    size_t pos = 0, nlen = strlen(name), n;
    const char *nm, *val;
    while (ipc_msg_next(m, &pos, &nm, &n, &val, len))
        if (n == nlen && memcmp(nm, name, n) == 0)
            return val;
    return NULL;
}

const char *ipc_msg_get(const struct ipc_msg *m, const char *name)
{
    size_t len;
    return ipc_msg_get_bytes(m, name, &len);
}

uint64_t ipc_msg_get_u64(const struct ipc_msg *m, const char *name, uint64_t dflt)
{
    const char *v = ipc_msg_get(m, name);
    /* Digits only: strtoull alone takes "-1" (as UINT64_MAX), "+5", " 5". */
    if (!v || *v < '0' || *v > '9')
        return dflt;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || *end)
        return dflt;
    return x;
}

/* Decodes a received packet and checks it against ipc_schema; -1 (with a
 * log line) for either kind of malformed message. */
static int decode_checked(struct ipc_msg *m, const void *packet, size_t len, int fd, int passed)
{
    if (ipc_msg_decode(m, packet, len) != 0) {
        log_error("malformed internal message on fd %d", fd);
        return -1;
    }
    char why[160];
    if (ipc_schema_check(m, passed != -1, why, sizeof why) != 0) {
        log_error("malformed internal message on fd %d: %s", fd, why);
        ipc_msg_free(m);
        return -1;
    }
    m->fd = passed;
    return 0;
}

static void encode_wire(const struct ipc_msg *m, int fd, struct strbuf *out)
{
#ifdef TERN_TEST_BUILD
    /* A sender that drifts from the schema is a bug the tests must see at once. */
    char why[160];
    if (ipc_schema_check(m, fd >= 0, why, sizeof why) != 0)
        log_panic("sending a message that does not match ipc_schema: %s", why);
#else
    (void)fd;
#endif
    unsigned char h[6] = {(unsigned char)m->type, (unsigned char)(m->type >> 8), (unsigned char)m->reqid,
                          (unsigned char)(m->reqid >> 8), (unsigned char)(m->reqid >> 16),
                          (unsigned char)(m->reqid >> 24)};
    strbuf_append(out, h, 6);
    strbuf_append(out, m->body.buf ? m->body.buf : "", m->body.len);
}

size_t ipc_msg_wire(const struct ipc_msg *m, void *buf, size_t cap)
{
    struct strbuf w = STRBUF_INIT;
    encode_wire(m, -1, &w);
    size_t n = w.len <= cap && w.len <= IPC_MAX_MSG ? w.len : 0;
    if (n)
        memcpy(buf, w.buf, n);
    strbuf_free(&w);
    return n;
}

int ipc_msg_decode(struct ipc_msg *m, const void *packet, size_t len)
{
    const unsigned char *p = packet;
    if (len < 6)
        return -1;
    ipc_msg_init(m, (uint16_t)(p[0] | p[1] << 8), (uint32_t)p[2] | (uint32_t)p[3] << 8 |
                                                     (uint32_t)p[4] << 16 | (uint32_t)p[5] << 24);
    size_t pos = 6;
    while (pos < len) {
        size_t n = p[pos];
        if (len - pos < 1 + n + 4)
            goto bad;
        const unsigned char *l = p + pos + 1 + n;
        size_t v = (size_t)l[0] | (size_t)l[1] << 8 | (size_t)l[2] << 16 | (size_t)l[3] << 24;
        if (len - pos - 1 - n - 4 < 1 || v > len - pos - 1 - n - 4 - 1)
            goto bad;
        if (l[4 + v] != 0)
            goto bad;
        strbuf_append(&m->body, p + pos, 1 + n + 4 + v + 1);
        pos += 1 + n + 4 + v + 1;
    }
    return 0;
bad:
    ipc_msg_free(m);
    return -1;
}

static int send_whole(int fd, const struct ipc_msg *m, int flags)
{
    struct strbuf w = STRBUF_INIT;
    encode_wire(m, -1, &w);
    if (w.len > IPC_MAX_MSG) {
        /* The receiver could not take it whole. */
        strbuf_free(&w);
        errno = EMSGSIZE;
        return -1;
    }
    ssize_t n;
    do
        n = send(fd, w.buf, w.len, MSG_NOSIGNAL | flags);
    while (n < 0 && errno == EINTR);
    int ok = n == (ssize_t)w.len;
    strbuf_free(&w);
    return ok ? 0 : -1;
}

int ipc_send_blocking(int fd, const struct ipc_msg *m)
{
    return send_whole(fd, m, 0);
}

int ipc_send_nowait(int fd, const struct ipc_msg *m)
{
    return send_whole(fd, m, MSG_DONTWAIT);
}

int ipc_recv_blocking(int fd, struct ipc_msg *m, int timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int pr;
    do
        pr = poll(&pfd, 1, timeout_ms);
    while (pr < 0 && errno == EINTR);
    if (pr <= 0) {
        if (pr == 0)
            errno = ETIMEDOUT;
        return -1;
    }
    unsigned char *buf = xmalloc(IPC_MAX_MSG);
    ssize_t n;
    /* MSG_TRUNC: the real size of a longer packet, which would otherwise
     * be cut silently (and could still decode). */
    do
        n = recv(fd, buf, IPC_MAX_MSG, MSG_TRUNC);
    while (n < 0 && errno == EINTR);
    int rc = -1;
    if (n > IPC_MAX_MSG)
        errno = EMSGSIZE;
    else if (n > 0 && (rc = decode_checked(m, buf, (size_t)n, fd, -1)) != 0)
        errno = EPROTO;
    else if (n == 0)
        errno = ECONNRESET;
    free(buf);
    return rc;
}

static int fill_sockaddr(struct sockaddr_un *sun, const char *path)
{
    memset(sun, 0, sizeof *sun);
    sun->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sun->sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(sun->sun_path, path);
    return 0;
}

int ipc_connect(const char *path)
{
    struct sockaddr_un sun;
    if (fill_sockaddr(&sun, path) != 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int ipc_listen(const char *path, int mode)
{
    struct sockaddr_un sun;
    if (fill_sockaddr(&sun, path) != 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0 || chmod(path, (mode_t)mode) != 0 ||
        listen(fd, 128) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int ipc_listen_at(int dirfd, const char *name, int mode)
{
    struct sockaddr_un sun;
    if (strchr(name, '/') || fill_sockaddr(&sun, name) != 0) {
        errno = strchr(name, '/') ? EINVAL : errno;
        return -1;
    }
    /* bind() takes a path, not a descriptor: bind the bare name with the
     * directory as the working directory, so the kernel resolves nothing
     * but that one entry of the directory we hold. The umask gives the
     * socket its mode as it is created (no chmod by name afterwards). */
    int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (cwd < 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int rc = -1, e = 0;
    if (fd >= 0 && fchdir(dirfd) == 0) {
        if (unlinkat(dirfd, name, 0) != 0 && errno != ENOENT) {
            e = errno;
        } else {
            mode_t old = umask((mode_t)(~mode & 0777));
            rc = bind(fd, (struct sockaddr *)&sun, sizeof sun);
            e = errno;
            umask(old);
        }
        if (fchdir(cwd) != 0 && rc == 0) {
            rc = -1;
            e = errno;
        }
    } else {
        e = errno;
    }
    close(cwd);
    if (rc == 0 && listen(fd, 128) != 0) {
        rc = -1;
        e = errno;
    }
    if (rc != 0) {
        if (fd >= 0)
            close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* ---------- event-driven channel ---------- */

struct out_packet {
    struct out_packet *next;
    int fd;               /* passed along with the packet, or -1 */
    size_t len;
    unsigned char data[];
};

struct ipc_chan {
    int fd;
    int dead;
    struct event *rev, *wev;
    struct event *fail_ev;      /* reports a dead channel from the event loop */
    ipc_handler handler;
    void *arg;
    struct out_packet *out_head, *out_tail;
    size_t out_bytes;           /* queued, not yet sent */
    unsigned char *rbuf;
    int paused;                 /* reading stopped by ipc_chan_set_reading */
    size_t drain_low;           /* ipc_chan_on_drain: call drained at or below this */
    ipc_drained drained;
    struct event *drain_ev;     /* reports the drain from the event loop */
};

static void chan_report_failure(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct ipc_chan *ch = arg;
    ch->handler(ch, NULL, ch->arg);
}

/* The handler may free the channel, so it is never called from inside
 * ipc_chan_send or the read loop, only from its own event. */
static void chan_fail(struct ipc_chan *ch)
{
    if (ch->dead)
        return;
    ch->dead = 1;
    event_del(ch->rev);
    event_del(ch->wev);
    event_active(ch->fail_ev, 0, 0);
}

/* One packet and the descriptor that may come with it (*passed, else -1;
 * IPC_FD_LOST when the kernel could not give us the one that came, as when
 * this process is out of descriptors). A packet carrying more than one
 * descriptor is refused (-1, EPROTO) after closing what arrived. */
static ssize_t recv_packet(int fd, void *buf, size_t len, int flags, int *passed)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } control;
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                        .msg_controllen = sizeof control.buf};
    *passed = -1;
    ssize_t n = recvmsg(fd, &mh, flags | MSG_TRUNC | MSG_CMSG_CLOEXEC);
    if (n < 0)
        return n;
    int rights = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        rights = 1;
        size_t nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < nfds; i++) {
            int got;
            memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof got);
            if (*passed < 0 && nfds == 1)
                *passed = got;
            else
                close(got);
        }
        if (nfds != 1)
            mh.msg_flags |= MSG_CTRUNC;
    }
    if (mh.msg_flags & MSG_CTRUNC) {
        if (!rights) {   /* nothing installed: one came, and it is lost */
            *passed = IPC_FD_LOST;
            return n;
        }
        if (*passed >= 0)
            close(*passed);
        *passed = -1;
        errno = EPROTO;
        return -1;
    }
    return n;
}

static void chan_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct ipc_chan *ch = arg;
    /* Bounded batch per wakeup so one busy peer cannot starve the loop. */
    for (int i = 0; i < 64 && !ch->dead && !ch->paused; i++) {
        int passed;
        ssize_t n = recv_packet(fd, ch->rbuf, IPC_MAX_MSG, MSG_DONTWAIT, &passed);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            if (errno == EPROTO)
                log_error("internal message on fd %d with more than one descriptor", (int)fd);
            chan_fail(ch);
            return;
        }
        struct ipc_msg m;
        if (n == 0 || n > IPC_MAX_MSG || decode_checked(&m, ch->rbuf, (size_t)n, (int)fd, passed) != 0) {
            if (n > IPC_MAX_MSG)
                log_error("oversized internal message on fd %d", (int)fd);
            if (passed >= 0)
                close(passed);
            chan_fail(ch);
            return;
        }
        ch->handler(ch, &m, ch->arg);
        ipc_msg_free(&m);
    }
}

static void chan_report_drain(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct ipc_chan *ch = arg;
    ipc_drained cb = ch->drained;
    ch->drained = NULL;
    if (cb && !ch->dead)
        cb(ch, ch->arg);
}

static ssize_t send_packet(int fd, const struct out_packet *p)
{
    if (p->fd < 0)
        return send(fd, p->data, p->len, MSG_DONTWAIT | MSG_NOSIGNAL);
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } control;
    memset(&control, 0, sizeof control);
    struct iovec iov = {.iov_base = (void *)p->data, .iov_len = p->len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                        .msg_controllen = sizeof control.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &p->fd, sizeof p->fd);
    return sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static void chan_flush(struct ipc_chan *ch)
{
    if (ch->drained && ch->out_bytes <= ch->drain_low)
        event_active(ch->drain_ev, 0, 0);
    while (ch->out_head) {
        struct out_packet *p = ch->out_head;
        ssize_t n = send_packet(ch->fd, p);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                event_add(ch->wev, NULL);
                return;
            }
            chan_fail(ch);
            return;
        }
        ch->out_head = p->next;
        if (!ch->out_head)
            ch->out_tail = NULL;
        ch->out_bytes -= p->len;
        if (p->fd >= 0)
            close(p->fd);
        free(p);
        if (ch->drained && ch->out_bytes <= ch->drain_low)
            event_active(ch->drain_ev, 0, 0);
    }
}

static void chan_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    chan_flush(arg);
}

struct ipc_chan *ipc_chan_new(struct event_base *base, int fd, ipc_handler handler, void *arg)
{
    struct ipc_chan *ch = xcalloc(1, sizeof *ch);
    ch->fd = fd;
    ch->handler = handler;
    ch->arg = arg;
    ch->rbuf = xmalloc(IPC_MAX_MSG);
    evutil_make_socket_nonblocking(fd);
    ch->rev = event_new(base, fd, EV_READ | EV_PERSIST, chan_read, ch);
    ch->wev = event_new(base, fd, EV_WRITE, chan_write, ch);
    ch->fail_ev = event_new(base, -1, 0, chan_report_failure, ch);
    ch->drain_ev = event_new(base, -1, 0, chan_report_drain, ch);
    event_add(ch->rev, NULL);
    return ch;
}

int ipc_chan_send_fd(struct ipc_chan *ch, const struct ipc_msg *m, int fd)
{
    if (ch->dead) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    struct strbuf w = STRBUF_INIT;
    encode_wire(m, fd, &w);
    if (w.len > IPC_MAX_MSG)
        log_panic("internal message too large (%zu bytes, type %u)", w.len, m->type);
    /* A peer that never reads must not make us queue without bound. */
    if (ch->out_bytes + w.len > IPC_MAX_QUEUED) {
        strbuf_free(&w);
        if (fd >= 0)
            close(fd);
        log_warn("internal peer on fd %d does not read its replies; closing", ch->fd);
        chan_fail(ch);
        return -1;
    }
    struct out_packet *p = xmalloc(sizeof *p + w.len);
    p->next = NULL;
    p->fd = fd;
    p->len = w.len;
    memcpy(p->data, w.buf, w.len);
    strbuf_free(&w);
    ch->out_bytes += p->len;
    if (ch->out_tail)
        ch->out_tail->next = p;
    else
        ch->out_head = p;
    ch->out_tail = p;
    chan_flush(ch);
    return ch->dead ? -1 : 0;
}

int ipc_chan_send(struct ipc_chan *ch, const struct ipc_msg *m)
{
    return ipc_chan_send_fd(ch, m, -1);
}

void ipc_chan_free(struct ipc_chan *ch)
{
    if (!ch)
        return;
    event_free(ch->rev);
    event_free(ch->wev);
    event_free(ch->fail_ev);
    event_free(ch->drain_ev);
    while (ch->out_head) {
        struct out_packet *p = ch->out_head;
        ch->out_head = p->next;
        if (p->fd >= 0)
            close(p->fd);
        free(p);
    }
    close(ch->fd);
    free(ch->rbuf);
    free(ch);
}

int ipc_chan_fd(const struct ipc_chan *ch)
{
    return ch->fd;
}

void ipc_chan_set_priority(struct ipc_chan *ch, int priority)
{
    event_priority_set(ch->rev, priority);
    event_priority_set(ch->wev, priority);
}

void ipc_chan_set_arg(struct ipc_chan *ch, void *arg)
{
    ch->arg = arg;
}

size_t ipc_chan_queued(const struct ipc_chan *ch)
{
    return ch->out_bytes;
}

void ipc_chan_set_reading(struct ipc_chan *ch, int on)
{
    if (ch->dead || ch->paused == !on)
        return;
    ch->paused = !on;
    if (on)
        event_add(ch->rev, NULL);
    else
        event_del(ch->rev);
}

void ipc_chan_on_drain(struct ipc_chan *ch, size_t low, ipc_drained cb)
{
    ch->drain_low = low;
    ch->drained = cb;
    if (cb && ch->out_bytes <= low)
        event_active(ch->drain_ev, 0, 0);
}
