/* ipc_schema: the messages between tern's processes (see ipc_schema.h). */
#include "util/ipc_schema.h"

#include <stdio.h>
#include <string.h>

#include "util/ipc.h"
#include "util/strbuf.h"

#define END {NULL, IPC_TEXT, 0, NULL}

static const struct ipc_attr_spec commit_attrs[] = {
    {"id", IPC_TEXT, 1, "the queue ID of the finished queue file"},
    {"file", IPC_BYTES, 0, "the queue file itself, when it fits this message (then no descriptor comes)"},
    END,
};
static const struct ipc_attr_spec commit_reply_attrs[] = {
    {"status", IPC_TEXT, 1, NULL},
    {"reply", IPC_TEXT, 0, "on fail: the SMTP reply for the client (storage_reply.h)"},
    END,
};
static const char *const ok_fail[] = {"ok", "fail", NULL};

static const struct ipc_attr_spec captured_attrs[] = {
    {"id", IPC_TEXT, 1, "the queue ID of the file in capture/"},
    {"missed", IPC_TEXT, 0, "yes: notices were dropped meanwhile, scan capture/"},
    END,
};

static const struct ipc_attr_spec deliver_attrs[] = {
    {"id", IPC_TEXT, 1, NULL},
    {"path", IPC_TEXT, 1, "the queue file or the journal segment holding it, opened by local"},
    {"offset", IPC_NUMBER, 1, "where the content starts in it"},
    {"length", IPC_NUMBER, 1, "the content's length"},
    {"sender", IPC_TEXT, 1, NULL},
    {"rcpt", IPC_TEXT, 1, NULL},
    {"user", IPC_TEXT, 0, "the local user, when the recipient is one"},
    {"orig_rcpt", IPC_TEXT, 0, "the recipient as it arrived, before any expansion (X-Original-To)"},
    {"arrival", IPC_NUMBER, 0, "seconds since the epoch"},
    {"prepend", IPC_TEXT, 0, "header fields to write above the content (the queue file's prepend: Authentication-Results)"},
    {"alias", IPC_TEXT, 0, "rcpt is a |command, /file or :include: target: the alias that lists it (local checks it in its own alias_maps)"},
    {"forward_of", IPC_TEXT, 0, "rcpt is such a target: the local user whose .forward lists it (local reads it again)"},
    {"include", IPC_TEXT, 0, "with alias or forward_of: the :include: files between them and rcpt, one a line, the one they list first"},
    {"alias_rcpt", IPC_TEXT, 0, "with alias or forward_of: the address that was expanded"},
    {"skip_forward", IPC_TEXT, 0, "the copy a user's own .forward keeps: delivered without reading it"},
    END,
};
static const struct ipc_attr_spec deliver_reply_attrs[] = {
    {"status", IPC_TEXT, 1, NULL},
    {"dsn", IPC_TEXT, 0, "enhanced status code"},
    {"text", IPC_TEXT, 0, "the reason, for the log and notices"},
    {"ntargets", IPC_NUMBER, 0, "expanded: how many targetN follow"},
    {"target#", IPC_TEXT, 0, "expanded: what a .forward or :include: file lists, a recipient of its own"},
    END,
};
/* sent-unsynced: written and linked into new/, which the queue's next group
 * commit makes durable; the queue records the delivery only after it. */
/* expanded: the recipient is a .forward or :include: list; its targets
 * become recipients of their own. */
static const char *const deliver_statuses[] = {"sent", "sent-unsynced", "deferred", "bounced", "expanded", NULL};

static const struct ipc_attr_spec barrier_attrs[] = {
    /* when the oldest unsynced file was written: a sync that began later covers it */
    {"written_s", IPC_NUMBER, 0, "seconds since the epoch"},
    {"written_ns", IPC_NUMBER, 0, "and nanoseconds"},
    END,
};
static const struct ipc_attr_spec barrier_reply_attrs[] = {
    {"status", IPC_TEXT, 1, NULL},
    END,
};

static const struct ipc_attr_spec key_sign_attrs[] = {
    {"key", IPC_TEXT, 1, "the key's id: SHA-256 of its public key (DER), in hex"},
    {"op", IPC_TEXT, 1, "ecdsa, rsa-pkcs1 or rsa-pss"},
    {"data", IPC_TEXT, 1, "in hex: the digest (ecdsa), DigestInfo (rsa-pkcs1), the encoded block (rsa-pss)"},
    END,
};
static const struct ipc_attr_spec key_sign_reply_attrs[] = {
    {"status", IPC_TEXT, 1, NULL},
    {"result", IPC_TEXT, 0, "on ok: the signature (or plaintext), in hex"},
    {"text", IPC_TEXT, 0, "on fail: why, for smtpd's log"},
    END,
};

static const struct ipc_attr_spec dmarc_record_attrs[] = {
    {"policy_domain", IPC_TEXT, 1, "where the DMARC record was found"},
    {"source_ip", IPC_TEXT, 1, "the client's address"},
    {"header_from", IPC_TEXT, 1, "the From: domain"},
    {"envelope_from", IPC_TEXT, 1, "the MAIL FROM domain, empty for <>"},
    {"envelope_to", IPC_TEXT, 1, "the first recipient's domain"},
    {"disposition", IPC_TEXT, 1, "none, pass, quarantine or reject: what was done"},
    {"dkim", IPC_TEXT, 1, "pass or fail: DKIM aligned"},
    {"spf", IPC_TEXT, 1, "pass or fail: SPF aligned"},
    {"reason", IPC_TEXT, 0, "why less was done than the policy asks (RFC 9990's override types)"},
    {"spf_domain", IPC_TEXT, 0, "the domain SPF checked"},
    {"spf_result", IPC_TEXT, 0, "its result"},
    {"dkim#", IPC_TEXT, 0, "\"domain selector result\" of a DKIM signature, up to 8"},
    END,
};

static const struct ipc_attr_spec no_attrs[] = {END};
static const struct ipc_attr_spec id_attrs[] = {
    {"id", IPC_TEXT, 1, "a queue ID, or ALL"},
    END,
};
static const struct ipc_attr_spec list_item_attrs[] = {
    {"id", IPC_TEXT, 1, NULL},
    {"flag", IPC_TEXT, 1, "\"!\" on hold, \"*\" being delivered, else empty"},
    {"size", IPC_NUMBER, 1, NULL},
    {"arrival", IPC_NUMBER, 1, NULL},
    {"sender", IPC_TEXT, 1, NULL},
    {"nrcpt", IPC_NUMBER, 1, "how many rcptN/reasonN pairs follow"},
    {"rcpt#", IPC_TEXT, 0, "an open recipient"},
    {"reason#", IPC_TEXT, 0, "why it was deferred, or empty"},
    {"hold_reason", IPC_TEXT, 0, "why smtpd put it on hold (a DMARC quarantine)"},
    END,
};
static const struct ipc_attr_spec done_attrs[] = {
    {"status", IPC_TEXT, 1, NULL},
    {"text", IPC_TEXT, 1, "a count of messages, or the error"},
    END,
};
static const char *const done_statuses[] = {"ok", "error", "denied", "notfound", NULL};

static const struct ipc_msg_spec specs[] = {
    {IPC_COMMIT, "COMMIT", "private/queue", "smtpd", "queue",
     "commit the queue file ID: answered once it is durable", commit_attrs, NULL,
     "a queue file too large for the message, in memory (a sealed memfd) instead of in incoming/"},
    {IPC_COMMIT_REPLY, "COMMIT_REPLY", "private/queue", "queue", "smtpd",
     "ok: smtpd may send 250", commit_reply_attrs, ok_fail, NULL},
    {IPC_DELIVER, "DELIVER", "private/local", "queue", "local",
     "deliver one recipient of a queue file", deliver_attrs, NULL, NULL},
    {IPC_DELIVER_REPLY, "DELIVER_REPLY", "private/local", "local", "queue",
     "the result", deliver_reply_attrs, deliver_statuses, NULL},
    {IPC_QUEUE_LIST, "QUEUE_LIST", "public/qmgr", "tern queue, mailq", "queue",
     "answered by one QUEUE_LIST_ITEM a message (made as the client reads them), then DONE; authorized_mailq_users", no_attrs, NULL, NULL},
    {IPC_QUEUE_LIST_ITEM, "QUEUE_LIST_ITEM", "public/qmgr", "queue", "tern queue, mailq",
     "one queued message", list_item_attrs, NULL, NULL},
    {IPC_QUEUE_FLUSH, "QUEUE_FLUSH", "public/qmgr", "tern queue", "queue",
     "retry every deferred recipient now; authorized_flush_users", no_attrs, NULL, NULL},
    {IPC_QUEUE_DELETE, "QUEUE_DELETE", "public/qmgr", "tern queue", "queue",
     "delete (root or mail_owner only)", id_attrs, NULL, NULL},
    {IPC_QUEUE_HOLD, "QUEUE_HOLD", "public/qmgr", "tern queue", "queue",
     "move to hold/ (root or mail_owner only)", id_attrs, NULL, NULL},
    {IPC_QUEUE_RELEASE, "QUEUE_RELEASE", "public/qmgr", "tern queue", "queue",
     "move back from hold/ (root or mail_owner only)", id_attrs, NULL, NULL},
    {IPC_PICKUP, "PICKUP", "public/qmgr", "sendmail", "queue",
     "a new file waits in maildrop/ (pokes are coalesced)", no_attrs, NULL, NULL},
    {IPC_DONE, "DONE", "public/qmgr", "queue", "tern queue, mailq, sendmail",
     "the answer to every public/qmgr request; request id 0: the connection is refused (a limit)", done_attrs, done_statuses, NULL},
    {IPC_BARRIER, "BARRIER", "private/local", "local", "queue",
     "answer after your next sync (shares the group commit)", barrier_attrs, NULL, NULL},
    {IPC_BARRIER_REPLY, "BARRIER_REPLY", "private/local", "queue", "local",
     "that sync is done", barrier_reply_attrs, ok_fail, NULL},
    {IPC_KEY_SIGN, "KEY_SIGN", "key socketpair", "smtpd", "key process",
     "one private-key operation of a TLS handshake", key_sign_attrs, NULL, NULL},
    {IPC_KEY_SIGN_REPLY, "KEY_SIGN_REPLY", "key socketpair", "key process", "smtpd",
     "its result", key_sign_reply_attrs, ok_fail, NULL},
    {IPC_DMARC_RECORD, "DMARC_RECORD", "private/queue", "smtpd", "queue",
     "one DMARC evaluation of a domain that asks for aggregate reports; not answered (checked again, counted)",
     dmarc_record_attrs, NULL, NULL},
    {IPC_CAPTURED, "CAPTURED", "private/capture", "queue", "capture",
     "a message committed into capture/ is durable; not answered", captured_attrs, NULL, NULL},
    {IPC_CAPTURE_RELEASE, "CAPTURE_RELEASE", "private/queue", "capture", "queue",
     "commit incoming/ID into queue/ for delivery whatever the capture mode (a release); answered by "
     "COMMIT_REPLY", commit_attrs, NULL, NULL},
};

const struct ipc_msg_spec *ipc_schema_find(uint16_t type)
{
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
        if (specs[i].type == type)
            return &specs[i];
    return NULL;
}

const struct ipc_msg_spec *ipc_schema_all(size_t *n)
{
    *n = sizeof specs / sizeof specs[0];
    return specs;
}

const struct ipc_attr_spec *ipc_schema_attr(const struct ipc_msg_spec *spec, const char *name, size_t namelen)
{
    for (const struct ipc_attr_spec *a = spec->attrs; a->name; a++) {
        size_t alen = strlen(a->name);
        if (alen > 0 && a->name[alen - 1] == '#') {
            /* numbered: the stem followed by at least one digit and only digits */
            size_t stem = alen - 1;
            if (namelen <= stem || memcmp(name, a->name, stem) != 0)
                continue;
            size_t k = stem;
            while (k < namelen && name[k] >= '0' && name[k] <= '9')
                k++;
            if (k == namelen)
                return a;
        } else if (alen == namelen && memcmp(name, a->name, namelen) == 0) {
            return a;
        }
    }
    return NULL;
}

/* What ipc_msg_get_u64 reads: decimal digits of a value that fits 64 bits.
 * A longer one would reach the receiver as its default value instead. */
static int is_number(const char *v)
{
    static const char u64_max[] = "18446744073709551615";
    size_t len = strlen(v);
    if (len == 0)
        return 0;
    for (const char *p = v; *p; p++)
        if (*p < '0' || *p > '9')
            return 0;
    while (len > 1 && *v == '0')
        v++, len--;
    return len < sizeof u64_max - 1 || (len == sizeof u64_max - 1 && strcmp(v, u64_max) <= 0);
}

int ipc_schema_check(const struct ipc_msg *m, int with_fd, char *why, size_t whylen)
{
    const struct ipc_msg_spec *spec = ipc_schema_find(m->type);
    if (!spec) {
        snprintf(why, whylen, "unknown message type %u", m->type);
        return -1;
    }
    if (with_fd && !spec->fd_doc) {
        snprintf(why, whylen, "%s: a descriptor came with it", spec->name);
        return -1;
    }
    size_t pos = 0, namelen, valuelen;
    const char *name, *value;
    while (ipc_msg_next(m, &pos, &name, &namelen, &value, &valuelen)) {
        const struct ipc_attr_spec *a = ipc_schema_attr(spec, name, namelen);
        if (!a) {
            snprintf(why, whylen, "%s: undeclared attribute \"%.*s\"", spec->name, (int)namelen, name);
            return -1;
        }
        if (a->value != IPC_BYTES && memchr(value, '\0', valuelen)) {
            snprintf(why, whylen, "%s: attribute %s holds a NUL", spec->name, a->name);
            return -1;
        }
        if (a->value == IPC_NUMBER && !is_number(value)) {
            snprintf(why, whylen, "%s: attribute %s is not a number", spec->name, a->name);
            return -1;
        }
    }
    for (const struct ipc_attr_spec *a = spec->attrs; a->name; a++)
        if (a->required && !ipc_msg_get(m, a->name)) {
            snprintf(why, whylen, "%s: attribute %s is missing", spec->name, a->name);
            return -1;
        }
    if (spec->statuses) {
        const char *st = ipc_msg_get(m, "status");
        int known = 0;
        for (const char *const *s = spec->statuses; st && *s && !known; s++)
            known = strcmp(*s, st) == 0;
        if (!known) {
            snprintf(why, whylen, "%s: status \"%s\" is not one of its values", spec->name, st ? st : "");
            return -1;
        }
    }
    return 0;
}

void ipc_schema_markdown(struct strbuf *out)
{
    strbuf_puts(out, "| socket | message | from → to | attributes (`?`: optional; *n*: a number; *bytes*: any bytes; N: 0, 1, 2 …) "
                     "| status | what it says |\n");
    strbuf_puts(out, "|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        const struct ipc_msg_spec *s = &specs[i];
        strbuf_printf(out, "| `%s` | `%s` | %s → %s | ", s->socket, s->name, s->from, s->to);
        int first = 1;
        for (const struct ipc_attr_spec *a = s->attrs; a->name; a++) {
            if (strcmp(a->name, "status") == 0)
                continue;
            size_t len = strlen(a->name);
            int numbered = a->name[len - 1] == '#';
            strbuf_printf(out, "%s`%.*s%s%s`%s", first ? "" : ", ", (int)(len - (size_t)numbered), a->name,
                          numbered ? "N" : "", a->required ? "" : "?",
                          a->value == IPC_NUMBER ? " *n*" : a->value == IPC_BYTES ? " *bytes*" : "");
            first = 0;
        }
        if (s->fd_doc)
            strbuf_printf(out, "%sa descriptor?: %s", first ? "" : "; ", s->fd_doc);
        strbuf_puts(out, " | ");
        for (const char *const *st = s->statuses; st && *st; st++)
            strbuf_printf(out, "%s`%s`", st == s->statuses ? "" : ", ", *st);
        strbuf_printf(out, " | %s |\n", s->doc);
    }
}
