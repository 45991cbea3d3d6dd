/* ipc_schema: every message tern's processes exchange, with its socket,
 * its direction, its attributes and the values its status may take.
 *
 * This table is the protocol's definition: util/ipc refuses a received
 * message that does not match it (an unknown type or attribute, a missing
 * required attribute, a number that is not one, a status outside its list)
 * exactly as it refuses a malformed packet, by closing the channel; in the
 * test build a sender that builds a non-matching message stops at once.
 * docs/ARCHITECTURE.md's socket table is rendered from it
 * (ipc_schema_markdown) and a unit test keeps the two equal. */
#ifndef TERN_UTIL_IPC_SCHEMA_H
#define TERN_UTIL_IPC_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

struct ipc_msg;
struct strbuf;

enum ipc_type {
    /* private/queue: smtpd -> queue */
    IPC_COMMIT = 1,
    IPC_COMMIT_REPLY,
    /* private/local: queue -> local */
    IPC_DELIVER,
    IPC_DELIVER_REPLY,
    /* public/qmgr: tern queue, mailq, sendmail -> queue */
    IPC_QUEUE_LIST,
    IPC_QUEUE_LIST_ITEM,
    IPC_QUEUE_FLUSH,
    IPC_QUEUE_DELETE,
    IPC_QUEUE_HOLD,
    IPC_QUEUE_RELEASE,
    IPC_PICKUP,
    IPC_DONE,
    /* private/local: local -> queue, to share the queue's next group commit */
    IPC_BARRIER,
    IPC_BARRIER_REPLY,
    /* the key socketpair: smtpd -> key process (TLS private-key operations) */
    IPC_KEY_SIGN,
    IPC_KEY_SIGN_REPLY,
    /* private/queue: smtpd -> queue, one DMARC evaluation for the aggregate report */
    IPC_DMARC_RECORD,
    /* capture mode */
    IPC_CAPTURED,
    IPC_CAPTURE_RELEASE,
};

/* TEXT and NUMBER values hold no NUL (refused as malformed); BYTES may. */
enum ipc_value { IPC_TEXT, IPC_NUMBER, IPC_BYTES };

struct ipc_attr_spec {
    const char *name;       /* a trailing '#' stands for 0, 1, 2 ... (rcpt0, rcpt1) */
    enum ipc_value value;
    int required;
    const char *doc;
};

struct ipc_msg_spec {
    uint16_t type;
    const char *name;            /* as written in docs: "COMMIT" */
    const char *socket;          /* "private/queue" */
    const char *from, *to;       /* "smtpd", "queue" */
    const char *doc;
    const struct ipc_attr_spec *attrs;   /* ends with a NULL name */
    const char *const *statuses;         /* the "status" values, NULL-terminated; NULL: any */
    const char *fd_doc;          /* it may carry a descriptor (SCM_RIGHTS): what it is; NULL: never */
};

/* The spec of a message type; NULL if tern has no such message. */
const struct ipc_msg_spec *ipc_schema_find(uint16_t type);
/* The spec of attribute name (namelen bytes, not NUL-terminated) in spec,
 * numbered ones ("rcpt12" for "rcpt#") included; NULL if undeclared. */
const struct ipc_attr_spec *ipc_schema_attr(const struct ipc_msg_spec *spec, const char *name, size_t namelen);
/* Every spec, in type order; *n of them. */
const struct ipc_msg_spec *ipc_schema_all(size_t *n);
/* 0 if m matches its spec (with_fd: a descriptor comes with it); else -1
 * and why (for the log). */
int ipc_schema_check(const struct ipc_msg *m, int with_fd, char *why, size_t whylen);
/* The socket table of docs/ARCHITECTURE.md, as Markdown. */
void ipc_schema_markdown(struct strbuf *out);

#endif
