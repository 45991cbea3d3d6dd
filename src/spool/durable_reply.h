/* durable_reply: the reply a commit owes its client the moment the message
 * is durable, and the peer's socket it goes out on.
 *
 * The journal's writer thread sends it (send(2), MSG_DONTWAIT) right after
 * the fdatasync that made the record durable, before the event loop even
 * hears of the commit, which takes a wake-up of this process and a turn of
 * its loop off the client's wait (store_journal.c). The queue prepares it
 * (qmgr_commit.c). Only commits into the journal use it: the journal then
 * holds sock until the reply is sent or failed; every other path leaves
 * sent at 0 and the caller answers from its callback as usual. sock is the
 * caller's: it must be held when the commit is asked for. The caller keeps
 * the struct until the commit's callback has run; sent is set before that,
 * and only when the whole packet went out.
 *
 * Thread-safe: the socket's holders are counted atomically. */
#ifndef TERN_SPOOL_DURABLE_REPLY_H
#define TERN_SPOOL_DURABLE_REPLY_H

#include <stddef.h>

struct durable_reply_socket;
struct durable_reply {
    struct durable_reply_socket *sock;
    size_t len;
    unsigned char wire[64];
    int sent;
};

/* A peer's socket for durable replies: a descriptor of its own (a dup of
 * fd, so that a channel closed and its number reused meanwhile cannot
 * misdirect a reply), made once per connection and shared by the commits
 * that come over it: its maker holds it until the connection ends, the
 * journal for each commit in flight; the last to let go closes it (the
 * writer thread or the loop). NULL (errno) when fd cannot be duplicated. */
struct durable_reply_socket *durable_reply_socket_new(int fd);
void durable_reply_socket_hold(struct durable_reply_socket *s);
/* NULL is ignored. */
void durable_reply_socket_release(struct durable_reply_socket *s);

/* Sends r on its socket when err is 0 (r->sent: the whole packet went),
 * then lets go of the socket: the commit's hold ends either way. */
void durable_reply_send(struct durable_reply *r, int err);

#endif
