/* ipc: small length-delimited messages between tern's processes.
 *
 * Channels are SOCK_SEQPACKET unix sockets (socketpairs or named sockets):
 * each packet is one message, so there is no framing to get wrong. A message
 * is a type, a request id and a list of named attributes:
 *
 *   u16 type | u32 reqid | { u8 namelen | name | u32 vallen | value }*
 *
 * A request carries an id; the caller parks its context in a map under that
 * id and the reply handler takes it back out (the async idiom of DESIGN.md).
 * A malformed message from a peer is fatal for the channel: the handler gets
 * NULL and must close it (the peer is restarted by the master).
 *
 * What each message type carries is declared in ipc_schema.h; channels and
 * ipc_recv_blocking refuse a message that does not match it.
 *
 * Used by every process; ipc_chan_* needs a libevent base. */
#ifndef TERN_UTIL_IPC_H
#define TERN_UTIL_IPC_H

#include <stddef.h>
#include <stdint.h>

#include "util/ipc_schema.h"
#include "util/strbuf.h"

struct event_base;

#define IPC_MAX_MSG 65536
/* Output queued for a peer that does not read closes the channel beyond this. */
#define IPC_MAX_QUEUED (32u * 1024 * 1024)

struct ipc_msg {
    uint16_t type;
    uint32_t reqid;
    struct strbuf body;   /* encoded attributes */
    /* Received: a descriptor that came with the message (SCM_RIGHTS; only
     * types whose spec has fd_doc), else -1, or IPC_FD_LOST. A handler that
     * keeps it sets this to -1; ipc_msg_free closes it otherwise. */
    int fd;
};
/* One was sent but this process could not take it (out of descriptors):
 * the handler answers for that message alone. */
#define IPC_FD_LOST (-2)


void ipc_msg_init(struct ipc_msg *m, uint16_t type, uint32_t reqid);
void ipc_msg_free(struct ipc_msg *m);
void ipc_msg_add(struct ipc_msg *m, const char *name, const char *value);
void ipc_msg_addf(struct ipc_msg *m, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ipc_msg_add_u64(struct ipc_msg *m, const char *name, uint64_t value);
/* A value of any bytes, NULs included (only for attributes the schema
 * declares IPC_BYTES; a text or number value holding a NUL is refused). */
void ipc_msg_add_bytes(struct ipc_msg *m, const char *name, const void *value, size_t len);
/* Attribute lookup; NULL / dflt when absent (get_u64: also when the value is
 * not a plain decimal number in range). The returned string lives in m. */
const char *ipc_msg_get(const struct ipc_msg *m, const char *name);
uint64_t ipc_msg_get_u64(const struct ipc_msg *m, const char *name, uint64_t dflt);
/* An IPC_BYTES attribute: its bytes (NUL-terminated too) and *len; NULL
 * when absent. */
const void *ipc_msg_get_bytes(const struct ipc_msg *m, const char *name, size_t *len);
/* Walks the attributes in order: start with *pos = 0; 1 while there is one
 * (name is not NUL-terminated, value is, and *valuelen, if not NULL, is its
 * length: an IPC_BYTES value may hold NULs), 0 at the end. */
int ipc_msg_next(const struct ipc_msg *m, size_t *pos, const char **name, size_t *namelen, const char **value,
                 size_t *valuelen);
/* Parses a received packet into m; -1 if malformed. Values may hold NULs
 * here: ipc_schema_check refuses them where the schema wants text. */
int ipc_msg_decode(struct ipc_msg *m, const void *packet, size_t len);
/* m as one packet (what ipc_chan_send would send), written to buf: its
 * length, or 0 when it needs more than cap bytes. For a packet another
 * thread sends with send(2) (spool/durable_reply.h). */
size_t ipc_msg_wire(const struct ipc_msg *m, void *buf, size_t cap);

/* Blocking helpers for command-line tools. A message (or packet) larger than
 * IPC_MAX_MSG is refused with EMSGSIZE on either side, never cut. */
int ipc_send_blocking(int fd, const struct ipc_msg *m);
/* ipc_send_blocking without waiting: -1 with EAGAIN when the peer's
 * socket is full (a peer that does not read its answers). */
int ipc_send_nowait(int fd, const struct ipc_msg *m);
int ipc_recv_blocking(int fd, struct ipc_msg *m, int timeout_ms);  /* 0 ok, -1 error/EOF/timeout */
/* Connects to a SOCK_SEQPACKET unix socket by path; -1 with errno. */
int ipc_connect(const char *path);
/* Creates a listening SOCK_SEQPACKET socket at path (unlinking a stale one). */
int ipc_listen(const char *path, int mode);
/* The same for the entry name (no '/') of the open directory dirfd, with
 * the given mode from the start: for root, which must not act on a path
 * that another user can change between its steps. */
int ipc_listen_at(int dirfd, const char *name, int mode);

/* Event-driven channel. The handler receives each message (freed after it
 * returns) or, from the event loop (never from inside ipc_chan_send), NULL
 * when the peer closed or sent garbage; it may free the channel then. */
struct ipc_chan;
typedef void (*ipc_handler)(struct ipc_chan *ch, struct ipc_msg *m, void *arg);
struct ipc_chan *ipc_chan_new(struct event_base *base, int fd, ipc_handler handler, void *arg);
/* Queues m for sending (copies it); never blocks. Returns -1 if the channel is dead. */
int ipc_chan_send(struct ipc_chan *ch, const struct ipc_msg *m);
/* The same with the descriptor fd passed along (SCM_RIGHTS), which the
 * channel takes over: closed once the kernel has it, or on failure. */
int ipc_chan_send_fd(struct ipc_chan *ch, const struct ipc_msg *m, int fd);
void ipc_chan_free(struct ipc_chan *ch);      /* closes the fd */
int ipc_chan_fd(const struct ipc_chan *ch);
/* Bytes queued for the peer and not yet taken by the kernel. */
size_t ipc_chan_queued(const struct ipc_chan *ch);
/* Stops (0) or resumes (1) reading messages: a server whose client does not
 * read its answers stops taking requests from it. */
void ipc_chan_set_reading(struct ipc_chan *ch, int on);
/* Once, from the event loop: drained(ch, arg) when at most low bytes are
 * queued (at once if that is so already). A producer uses it to make output
 * only as the peer reads it, instead of queueing it all. NULL cancels. */
typedef void (*ipc_drained)(struct ipc_chan *ch, void *arg);
void ipc_chan_on_drain(struct ipc_chan *ch, size_t low, ipc_drained cb);
void ipc_chan_set_arg(struct ipc_chan *ch, void *arg);
/* libevent priority of the channel's reads and writes (the base must have
 * priorities: event_base_priority_init); lower runs first. */
void ipc_chan_set_priority(struct ipc_chan *ch, int priority);

#endif
