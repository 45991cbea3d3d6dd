/* cli_verify: sendmail -bv (see cli_verify.h). */
#include "cli/cli_verify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli_out.h"
#include "maps/resolver.h"
#include "maps/transport.h"
#include "smtp/smtp_addr.h"
#include "util/mem.h"
#include "util/strbuf.h"

#define VERIFY_EX_NOUSER 67
#define VERIFY_EX_TEMPFAIL 75

struct verify {
    struct resolver *r;
    const char *queue_dir;
    int rc;
};

static void undeliverable(struct verify *v)
{
    if (v->rc == 0)
        v->rc = VERIFY_EX_NOUSER;
}

/* A virtual alias: 1 when addr is one (or its lookup failed), with its
 * targets (or the failure) printed; 0 when not. */
static int virtual_alias_shown(struct verify *v, const char *addr)
{
    struct resolve_targets t;
    char *error;
    const char *dsn;
    int x = resolver_virtual_expand(v->r, addr, &t, &error, &dsn);
    if (x == 1)
        return 0;
    if (x < 0) {
        /* every expansion error is temporary: the queue defers it */
        cli_out_line(stdout, "<%s>: deferred: %s %s", addr, dsn, error);
        free(error);
        v->rc = VERIFY_EX_TEMPFAIL;
        return 1;
    }
    if (t.n == 1 && strcasecmp(t.v[0], addr) == 0) {
        /* it names only itself: delivered as it is */
        resolve_targets_free(&t);
        return 0;
    }
    struct strbuf to = STRBUF_INIT;
    for (size_t i = 0; i < t.n; i++)
        strbuf_printf(&to, "%s%s", i ? ", " : "", t.v[i]);
    cli_out_line(stdout, "<%s>: deliverable: virtual alias of %s", addr, to.buf);
    strbuf_free(&to);
    resolve_targets_free(&t);
    return 1;
}

/* The class's own transport, untouched: said without its origin, as
 * before transport_maps existed. */
static int plain_default(enum resolve_class cls, const char *source, const char *transport)
{
    if (strcmp(source, "transport_maps") == 0)
        return 0;
    if (cls == RESOLVE_REMOTE || cls == RESOLVE_RELAY)
        return strcasecmp(transport, "smtp") == 0 || strcasecmp(transport, "relay") == 0;
    return 1;
}

/* What the transport of a recipient that exists does with it. */
static void say_transport(struct verify *v, const char *addr, enum resolve_class cls, const char *transport,
                          const char *source)
{
    struct transport_hop hop;
    char *err = NULL;
    if (transport_parse(transport, v->queue_dir, &hop, &err) != 0) {
        cli_out_line(stdout, "<%s>: deferred: 4.3.5 %s: %s", addr, source, err);
        free(err);
        v->rc = VERIFY_EX_TEMPFAIL;
        return;
    }
    int plain = plain_default(cls, source, transport);
    switch (hop.kind) {
    case TRANSPORT_SMTP:
    case TRANSPORT_LMTP:
        if (plain && cls == RESOLVE_RELAY)
            cli_out_line(stdout, "<%s>: would be relayed (relay_domains); not verified with the next hop", addr);
        else if (plain)
            cli_out_line(stdout, "<%s>: would be relayed; not verified with the next hop", addr);
        else
            cli_out_line(stdout, "<%s>: would be relayed (%s: %s); not verified with the next hop", addr, source,
                         transport);
        break;
    case TRANSPORT_LOCAL:
        if (plain)
            cli_out_line(stdout, "<%s>: deliverable: local", addr);
        else
            cli_out_line(stdout, "<%s>: deliverable: local (%s: %s)", addr, source, transport);
        break;
    case TRANSPORT_VIRTUAL:
        if (cls == RESOLVE_VIRTUAL_MAILBOX) {
            cli_out_line(stdout, "<%s>: deliverable: virtual mailbox", addr);
        } else {
            cli_out_line(stdout, "<%s>: deferred: 4.3.5 %s: virtual: delivers only addresses of "
                                 "virtual_mailbox_domains", addr, source);
            v->rc = VERIFY_EX_TEMPFAIL;
        }
        break;
    case TRANSPORT_ERROR:
        cli_out_line(stdout, "<%s>: undeliverable: %s %s", addr, hop.status, hop.text);
        undeliverable(v);
        break;
    case TRANSPORT_RETRY:
        cli_out_line(stdout, "<%s>: deferred: %s %s (%s: retry)", addr, hop.status, hop.text, source);
        v->rc = VERIFY_EX_TEMPFAIL;
        break;
    case TRANSPORT_DISCARD:
        cli_out_line(stdout, "<%s>: deliverable: discarded (%s: discard:%s)", addr, source, hop.text);
        break;
    }
    transport_hop_free(&hop);
}

static void verify_one(struct verify *v, const char *addr)
{
    char *value = NULL;
    char status[16];
    const char *text;
    int tr = resolver_transport(v->r, addr, &value);
    enum resolve_class cls;
    char *transport = NULL;
    const char *source;
    if (tr < 0) {
        cli_out_line(stdout, "<%s>: deferred: 4.3.0 transport_maps lookup failure", addr);
        v->rc = VERIFY_EX_TEMPFAIL;
    } else if (tr == 1 && resolver_error_transport(value, "5.0.0", status, &text)) {
        /* smtpd refuses it at RCPT */
        cli_out_line(stdout, "<%s>: undeliverable: %s %s", addr, status, text);
        undeliverable(v);
    } else {
        switch (resolver_check_recipient(v->r, addr, &text)) {
        case RESOLVE_UNKNOWN:
            cli_out_line(stdout, "<%s>: undeliverable: 5.1.1 User unknown in %s", addr, text);
            undeliverable(v);
            break;
        case RESOLVE_TEMPFAIL:
            cli_out_line(stdout, "<%s>: deferred: 4.3.0 temporary lookup failure", addr);
            v->rc = VERIFY_EX_TEMPFAIL;
            break;
        case RESOLVE_OK:
            if (virtual_alias_shown(v, addr))
                break;
            if (resolver_classify(v->r, addr, &cls) != 0 ||
                resolver_delivery_transport(v->r, addr, cls, &transport, &source) != 0) {
                cli_out_line(stdout, "<%s>: deferred: 4.3.0 temporary lookup failure", addr);
                v->rc = VERIFY_EX_TEMPFAIL;
                break;
            }
            say_transport(v, addr, cls, transport, source);
            break;
        }
    }
    free(transport);
    free(value);
}

int cli_verify_recipients(struct conf *c, const char *myorigin, const char *queue_dir, char **rcpts, size_t n)
{
    char *err = NULL;
    struct verify v = {.queue_dir = queue_dir};
    v.r = resolver_new(c, &err);
    if (!v.r) {
        cli_out_line(stderr, "sendmail: fatal: %s", err ? err : "cannot open the recipient tables");
        free(err);
        return VERIFY_EX_TEMPFAIL;
    }
    for (size_t i = 0; i < n; i++) {
        char *addr = smtp_addr_envelope(rcpts[i], myorigin, 0);
        if (!addr) {
            cli_out_line(stdout, "<%s>: undeliverable: 5.1.3 bad recipient address syntax", rcpts[i]);
            undeliverable(&v);
            continue;
        }
        verify_one(&v, addr);
        free(addr);
    }
    resolver_free(v.r);
    return v.rc;
}
