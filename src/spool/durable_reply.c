/* durable_reply: a commit's reply and its socket (see durable_reply.h). */
#include "spool/durable_reply.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/mem.h"

struct durable_reply_socket {
    int fd;
    atomic_uint holders;
};

struct durable_reply_socket *durable_reply_socket_new(int fd)
{
    int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (own < 0)
        return NULL;
    struct durable_reply_socket *s = xmalloc(sizeof *s);
    s->fd = own;
    atomic_init(&s->holders, 1);
    return s;
}

void durable_reply_socket_hold(struct durable_reply_socket *s)
{
    atomic_fetch_add_explicit(&s->holders, 1, memory_order_relaxed);
}

void durable_reply_socket_release(struct durable_reply_socket *s)
{
    if (s && atomic_fetch_sub_explicit(&s->holders, 1, memory_order_acq_rel) == 1) {
        close(s->fd);
        free(s);
    }
}

void durable_reply_send(struct durable_reply *r, int err)
{
    ssize_t n = -1;
    while (err == 0 && (n = send(r->sock->fd, r->wire, r->len, MSG_DONTWAIT | MSG_NOSIGNAL)) < 0 && errno == EINTR)
        ;
    r->sent = n == (ssize_t)r->len;
    durable_reply_socket_release(r->sock);
}
