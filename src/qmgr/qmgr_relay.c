/* qmgr_relay: delivery to other mail servers (see qmgr_relay.h). */
#include "qmgr/qmgr_relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "daemon/runtime.h"
#include "dns/dns.h"
#include "maps/map.h"
#include "maps/resolver.h"
#include "maps/transport.h"
#include "msg/mime_downgrade.h"
#include "qmgr/qmgr_dkim.h"
#include "qmgr/qmgr_msg.h"
#include "qmgr/qmgr_nexthop.h"
#include "spool/spool.h"
#include "spool/store.h"
#include "smtpc/smtpc.h"
#include "tls/tls.h"
#include "util/clock.h"
#include "util/list.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

/* Where a recipient waits for a session. Waiting recipients hold their
 * message (qmgr_msg_rcpt_take), so the pointer stays valid until released. */
struct qmgr_relay_item {
    struct qmgr_relay_item *next;
    struct qmgr_msg *q;
    size_t idx;
};

/* One next hop: "example.com" (MX lookup), "[host]:port" (addresses of
 * host only), "host:port" (MX lookup, another port); or an LMTP one, keyed
 * "lmtp:unix:path" or "lmtp:inet:host:port" (transport_lmtp_key). */
struct qmgr_relay_dest {
    struct qmgr_relay_dest *next;
    char *key;
    char *host;          /* what DNS is asked; NULL for a unix socket */
    int use_mx;
    unsigned port;
    int lmtp;            /* LMTP, no MX lookup, no TLS, no login */
    char *socket_path;   /* LMTP over a unix socket: absolute */
    char *socket_shown;  /* ... and as configured, for relay= */
    unsigned active;     /* sessions running */
    struct qmgr_relay_item *head, *tail;
};

struct qmgr_relay_job {
    struct list_node link;      /* in rl.jobs */
    struct qmgr_relay_dest *dest;
    struct qmgr_msg *q;
    size_t *idx;
    size_t n;
    int fd;
    char content_id[QUEUE_ID_LEN + 1]; /* the message whose content fd reads ("": none) */
    int64_t start_us;
    struct dns_query *dq;
    struct smtpc *sc;
    struct smtpc_msg msg;
    struct smtpc_rcpt *rcpts;
    struct smtpc_target *targets;
    char **target_names;     /* the targets' host names, ours */
    size_t ntargets;
    int converted_fd;    /* the 7-bit copy for a server without 8BITMIME, or -1 */
    char *auth_user, *auth_pass;   /* smtp_sasl_password_maps, for this next hop */
    int tls_level;       /* enum smtpc_tls, from the policy */
    char *tls_match;     /* names the certificate must carry (verify, secure) */
    char *prepend;       /* DKIM-Signature fields, then the queue file's prepend */
};

static struct {
    struct event_base *base;
    struct runtime *rt;
    struct dns_ctx *dns;
    char *myhostname;
    size_t mx_address_limit;    /* smtp_mx_address_limit; 0: none */
    long dkim_lifetime;          /* dkim_signature_lifetime: x= after t=; 0 none */
    struct smtpc_opts opts;      /* smtp_*: SMTP next hops */
    struct smtpc_opts lmtp_opts; /* lmtp_*: LMTP next hops */
    struct ssl_ctx_st *tls_may, *tls_mandatory;   /* client contexts */
    char *cafile, *capath;
    int cas_loaded;
    unsigned dest_limit, total_limit, rcpt_limit;
    unsigned lmtp_dest_limit, lmtp_rcpt_limit;
    unsigned active;
    int quiescing;       /* stopping: sessions running finish, none start */
    struct qmgr_relay_dest *dests;
    struct list jobs;           /* of struct qmgr_relay_job: sessions running */
    struct event *kick;
} rl;

/* ---- LMTP next hops (transport_maps "lmtp:...") ---- */

/* d from an LMTP key (as qmgr_nexthop_key makes it): 0, or -1 when it does not
 * parse (the key came from a transport entry that parsed, so: never). */
static int lmtp_dest_init(struct qmgr_relay_dest *d, const char *key)
{
    struct transport_hop hop;
    char *err = NULL;
    if (transport_parse(key, rl.rt->queue_dir, &hop, &err) != 0 || hop.kind != TRANSPORT_LMTP) {
        transport_hop_free(&hop);   /* (cleared already after a failure) */
        free(err);
        return -1;
    }
    d->lmtp = 1;
    d->use_mx = 0;
    d->port = hop.port;
    d->host = hop.host, hop.host = NULL;
    d->socket_path = hop.socket_path, hop.socket_path = NULL;
    d->socket_shown = hop.socket_shown, hop.socket_shown = NULL;
    transport_hop_free(&hop);
    return 0;
}

static void launch(struct qmgr_relay_job *j);

/* The one target of an LMTP unix socket: no DNS. Logged as Postfix does,
 * "myhostname[private/dovecot-lmtp]". */
static void lmtp_unix_session(struct qmgr_relay_job *j)
{
    struct smtpc_target *t = j->targets = xcalloc(1, sizeof *t);
    j->target_names = xcalloc(1, sizeof *j->target_names);
    j->ntargets = 1;
    t->hostname = j->target_names[0] = xstrdup(rl.myhostname);
    t->display_addr = j->dest->socket_shown;
    struct sockaddr_un *su = (struct sockaddr_un *)&t->addr;
    su->sun_family = AF_UNIX;
    /* transport_parse checked that it fits */
    memcpy(su->sun_path, j->dest->socket_path, strlen(j->dest->socket_path) + 1);
    t->addrlen = (socklen_t)sizeof *su;
    launch(j);
}

/* ---- end of LMTP next hops ---- */

/* The destination for key, made when there is none; lmtp tells how the key
 * reads (an SMTP next hop such as "lmtp:25", host "lmtp", is not one). */
static struct qmgr_relay_dest *dest_get(const char *key, int lmtp)
{
    for (struct qmgr_relay_dest *d = rl.dests; d; d = d->next)
        if (d->lmtp == lmtp && strcasecmp(d->key, key) == 0)
            return d;
    struct qmgr_relay_dest *d = xcalloc(1, sizeof *d);
    if (lmtp) {
        if (lmtp_dest_init(d, key) != 0) {
            free(d);
            return NULL;
        }
    } else if (qmgr_nexthop_parse(key, &d->host, &d->use_mx, &d->port) != 0) {
        free(d);
        return NULL;
    }
    d->key = xstrdup(key);
    d->next = rl.dests;
    rl.dests = d;
    return d;
}

static void dest_free(struct qmgr_relay_dest *d)
{
    free(d->key);
    free(d->host);
    free(d->socket_path);
    free(d->socket_shown);
    free(d);
}

static void dest_free_if_idle(struct qmgr_relay_dest *d)
{
    if (d->active || d->head)
        return;
    struct qmgr_relay_dest **pp = &rl.dests;
    while (*pp && *pp != d)
        pp = &(*pp)->next;
    if (*pp)
        *pp = d->next;
    dest_free(d);
}

/* ---------- sessions ---------- */

/* smtp_destination_* or lmtp_destination_*, by the next hop's protocol */
static unsigned dest_concurrency_limit(const struct qmgr_relay_dest *d)
{
    return d->lmtp ? rl.lmtp_dest_limit : rl.dest_limit;
}

static unsigned dest_recipient_limit(const struct qmgr_relay_dest *d)
{
    return d->lmtp ? rl.lmtp_rcpt_limit : rl.rcpt_limit;
}

static void kick_soon(void)
{
    if (!evtimer_pending(rl.kick, NULL)) {
        struct timeval tv = {0, 0};
        evtimer_add(rl.kick, &tv);
    }
}

/* Queues recipient idx (already taken) for the destination hop (taken over). */
static void enqueue_to(struct qmgr_msg *q, size_t idx, char *hop, int lmtp)
{
    struct qmgr_relay_dest *d = dest_get(hop, lmtp);
    if (!d) {
        /* Settled from the loop, as promised: park it on a dead end. */
        char *why = xasprintf("bad next hop \"%s\" (relayhost or transport_maps)", hop);
        log_warn("%s: %s", q->m.id, why);
        free(hop);
        hop = xstrdup("[invalid]");
        d = dest_get(hop, 0);
        free(why);
    }
    free(hop);
    struct qmgr_relay_item *it = xcalloc(1, sizeof *it);
    it->q = q;
    it->idx = idx;
    if (d->tail)
        d->tail->next = it;
    else
        d->head = it;
    d->tail = it;
    kick_soon();
}

void qmgr_relay_enqueue(struct qmgr_msg *q, size_t idx, const struct transport_hop *hop)
{
    if (!rl.kick)
        return;   /* shutting down: the recipient stays due for the next start */
    qmgr_msg_rcpt_take(q, idx);
    int lmtp;
    char *next = qmgr_nexthop_key(q->m.rcpts[idx].addr, hop, &lmtp);
    enqueue_to(q, idx, next, lmtp);
}

static void job_free(struct qmgr_relay_job *j)
{
    list_remove(&rl.jobs, &j->link);
    if (j->fd >= 0)
        close(j->fd);
    if (j->content_id[0])
        store_content_done(j->content_id);
    if (j->converted_fd >= 0)
        close(j->converted_fd);
    for (size_t i = 0; i < j->ntargets; i++)
        free(j->target_names[i]);
    free(j->target_names);
    free(j->targets);
    free(j->tls_match);
    free(j->prepend);
    free(j->auth_user);
    if (j->auth_pass) {
        explicit_bzero(j->auth_pass, strlen(j->auth_pass));
        free(j->auth_pass);
    }
    smtpc_msg_clear(&j->msg);
    free(j->rcpts);
    free(j->idx);
    struct qmgr_relay_dest *d = j->dest;
    d->active--;
    rl.active--;
    free(j);
    /* an idle destination is freed by on_kick, never here: this may run
     * inside on_kick's walk over the destinations */
    kick_soon();
}

/* Every recipient of the job gets the same result (DNS, loops, setup). */
static void job_settle_all(struct qmgr_relay_job *j, enum qmgr_msg_outcome o, const char *relay, const char *dsn,
                           const char *reason)
{
    for (size_t i = 0; i < j->n; i++)
        qmgr_msg_rcpt_finish(j->q, j->idx[i], o, relay, j->start_us, dsn, reason, NULL);
    struct qmgr_msg *q = j->q;
    job_free(j);
    qmgr_msg_finish_if_done(q);
}

/* "mx.example.net[192.0.2.5]:25" -> "mx.example.net" */
static char *relay_host_name(const char *relay)
{
    const char *b = strchr(relay, '[');
    return xstrndup(relay, b ? (size_t)(b - relay) : strlen(relay));
}

static void on_client_done(void *arg, struct smtpc_result *res);

/* The CA certificates, read once, when a job first needs them. */
static void load_cas_if_verifying(const struct qmgr_relay_job *j)
{
    if (j->tls_level < SMTPC_TLS_VERIFY || rl.cas_loaded)
        return;
    char *err = NULL;
    if (tls_client_load_cas(rl.tls_mandatory, rl.cafile, rl.capath, &err) != 0) {
        /* verification then fails, and the mail waits: never sent unverified */
        log_warn("%s", err);
        free(err);
    }
    rl.cas_loaded = 1;
}

/* The fields sent above the content: DKIM signatures over the content as
 * it is sent (the original, or the 7-bit copy), then the queue file's own
 * (Authentication-Results). An LMTP next hop is final delivery into a
 * mailbox store: no verifier will ever see a signature there, so none is
 * made (signing hashes the whole message: CPU for nothing). */
static void sign(struct qmgr_relay_job *j)
{
    const char *queued = queue_file_message_attr(&j->q->m, QF_ATTR_PREPEND);
    char *sigs = j->dest->lmtp ? NULL
                               : qmgr_dkim_sign(&j->q->m, j->msg.content_fd, j->msg.offset, j->msg.length,
                                                rl.dkim_lifetime);
    free(j->prepend);
    j->prepend = sigs || queued ? xasprintf("%s%s", sigs ? sigs : "", queued ? queued : "") : NULL;
    j->msg.prepend = j->prepend;
    free(sigs);
}

static void launch(struct qmgr_relay_job *j)
{
    struct smtpc_opts o = j->dest->lmtp ? rl.lmtp_opts : rl.opts;
    o.lmtp = j->dest->lmtp;
    o.auth_user = j->auth_user;
    o.auth_pass = j->auth_pass;
    o.tls_level = j->tls_level;
    o.tls_ctx = j->tls_level >= SMTPC_TLS_ENCRYPT ? rl.tls_mandatory : rl.tls_may;
    o.tls_match = j->tls_match;
    o.myhostname = j->dest->lmtp ? NULL : rl.myhostname;
    o.nexthop = j->dest->host;
    /* a cached connection serves only the same protocol and policy:
     * SMTP or LMTP, TLS level, names and login are part of the key */
    char *key = xasprintf("%s:%s:%u:%d:%s:%s", j->dest->lmtp ? "lmtp" : "smtp", j->dest->key, j->dest->port,
                          j->tls_level, j->tls_match ? j->tls_match : "", j->auth_user ? j->auth_user : "");
    o.cache_key = key;
    j->sc = smtpc_start(rl.base, &o, j->targets, j->ntargets, &j->msg, on_client_done, j);
    free(key);
}

/* The server does not take 8-bit mail: a 7-bit copy (RFC 6152 §3) in an
 * unlinked file in incoming/ (the queue directory itself is root's; the
 * file never gets a name, so recovery never sees it), sent instead. 0, or
 * -1 with *why when the message cannot be made 7-bit (or the copy not
 * written). */
static int downgrade(struct qmgr_relay_job *j, char **why)
{
    char *dir = xasprintf("%s/%s", rl.rt->queue_dir, QDIR_INCOMING);
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    free(dir);
    if (fd < 0) {
        *why = xasprintf("cannot create a file for the 7-bit copy: %s", strerror(errno));
        return -1;
    }
    uint64_t len = 0;
    const char *reason = NULL;
    int rc = mime_downgrade(j->fd, j->msg.offset, j->msg.length, fd, &len, &reason);
    if (rc != 0) {
        *why = rc == MIME_DG_IMPOSSIBLE ? xasprintf("cannot convert the message to 7-bit MIME: %s", reason)
                                        : xasprintf("cannot write the 7-bit copy: %s", strerror(errno));
        close(fd);
        return rc == MIME_DG_IMPOSSIBLE ? -1 : -2;
    }
    j->converted_fd = fd;
    smtpc_msg_clear(&j->msg);
    j->msg.content_fd = fd;
    j->msg.offset = 0;
    j->msg.length = len;
    j->msg.body_8bit = 0;
    sign(j);   /* what goes out changed: so do its signatures */
    return 0;
}

static void on_client_done(void *arg, struct smtpc_result *res)
{
    struct qmgr_relay_job *j = arg;
    j->sc = NULL;
    /* tern's own finding (the server offers no 8BITMIME), not a server's
     * 5.6.3: a second session would only be refused again */
    if (res->outcome == SMTPC_BOUNCE_ALL && !res->remote && strcmp(res->enh, "5.6.3") == 0 && j->converted_fd < 0) {
        char *why = NULL;
        int rc = downgrade(j, &why);
        if (rc == 0) {
            log_info("%s: converted to 7-bit MIME for %s", j->q->m.id, res->relay ? res->relay : "the next hop");
            launch(j);
            return;
        }
        log_warn("%s: %s", j->q->m.id, why);
        job_settle_all(j, rc == -1 ? QMSG_BOUNCED : QMSG_DEFERRED, res->relay ? res->relay : "none",
                       rc == -1 ? "5.6.3" : "4.3.0", why);
        free(why);
        return;
    }
    const char *relay = res->relay ? res->relay : "none";
    char *mta = res->relay ? relay_host_name(res->relay) : xstrdup("");
    /* Postfix's log names a reused connection: "relay=..., conn_use=2" */
    char *relay_logged = res->conn_use > 1 ? xasprintf("%s, conn_use=%u", relay, res->conn_use) : xstrdup(relay);
    for (size_t i = 0; i < j->n; i++) {
        const struct smtpc_rcpt *r = &j->rcpts[i];
        int code = r->code;
        const char *text = r->text ? r->text : (res->text ? res->text : "no reason given");
        const char *enh = r->enh[0] ? r->enh : (code / 100 == 2 ? "2.0.0" : code / 100 == 5 ? "5.0.0" : "4.0.0");
        enum qmgr_msg_outcome o = code / 100 == 2 ? QMSG_SENT : code / 100 == 5 ? QMSG_BOUNCED : QMSG_DEFERRED;
        char *reason;
        if (r->remote && o != QMSG_SENT) {
            /* "host mx.example.net[192.0.2.5] said: ...": the relay without its port */
            const char *port = strrchr(relay, ':');
            int hostlen = port && port > relay && port[-1] == ']' ? (int)(port - relay) : (int)strlen(relay);
            reason = xasprintf("host %.*s said: %s (in reply to %s command)", hostlen, relay, text,
                               r->stage ? r->stage : "end of DATA");
        }
        else
            reason = xstrdup(text);
        struct qmgr_msg_remote remote = {mta, r->remote ? text : "", r->remote && r->dsn_passed};
        /* Postfix names no relay when not even a connection was made. */
        const char *logged = r->stage && strcmp(r->stage, "connect") == 0 ? "none" : relay_logged;
        qmgr_msg_rcpt_finish(j->q, j->idx[i], o, logged, j->start_us, enh, reason, &remote);
        free(reason);
    }
    free(mta);
    free(relay_logged);
    struct qmgr_msg *q = j->q;
    job_free(j);
    qmgr_msg_finish_if_done(q);
}

static void start_session(struct qmgr_relay_job *j, const struct dns_route *route, size_t nhosts)
{
    /* smtp_mx_address_limit: a domain's DNS must not make one delivery try
     * hundreds of addresses (20 exchangers of 16 each), each a connection
     * and, refused, a QUIT that lingers; an LMTP destination is the
     * admin's own */
    size_t ntargets = 0;
    for (size_t h = 0; h < nhosts; h++)
        ntargets += route->hosts[h].naddrs;
    if (!j->dest->lmtp && rl.mx_address_limit > 0 && ntargets > rl.mx_address_limit)
        ntargets = rl.mx_address_limit;
    struct smtpc_target *t = j->targets = xcalloc(ntargets ? ntargets : 1, sizeof *t);
    j->target_names = xcalloc(ntargets ? ntargets : 1, sizeof *j->target_names);
    j->ntargets = ntargets;
    size_t k = 0;
    for (size_t h = 0; h < nhosts; h++) {
        const struct dns_host *host = &route->hosts[h];
        for (size_t a = 0; a < host->naddrs && k < ntargets; a++, k++) {
            t[k].hostname = j->target_names[k] = xstrdup(host->name);
            t[k].less_preferred = host->pref != route->hosts[0].pref;
            t[k].addr = host->addrs[a];
            if (t[k].addr.ss_family == AF_INET) {
                ((struct sockaddr_in *)&t[k].addr)->sin_port = htons((uint16_t)j->dest->port);
                t[k].addrlen = sizeof(struct sockaddr_in);
            } else {
                ((struct sockaddr_in6 *)&t[k].addr)->sin6_port = htons((uint16_t)j->dest->port);
                t[k].addrlen = sizeof(struct sockaddr_in6);
            }
        }
    }
    launch(j);
}

static void on_route(void *arg, struct dns_route *route)
{
    struct qmgr_relay_job *j = arg;
    j->dq = NULL;
    if (route->status != DNS_OK) {
        enum qmgr_msg_outcome o = dns_status_permanent(route->status) ? QMSG_BOUNCED : QMSG_DEFERRED;
        const char *why = route->why ? route->why : dns_status_name(route->status);
        job_settle_all(j, o, "none", dns_status_dsn(route->status), why);
        dns_route_free(route);
        return;
    }
    /* An LMTP server is a final destination, often on this very host
     * (another port, a socket): never a loop back to ourselves. */
    long n = j->dest->lmtp ? (long)route->nhosts : qmgr_nexthop_usable_hosts(route);
    if (n < 0) {
        char *why = xasprintf("mail for %s loops back to myself", j->dest->host);
        job_settle_all(j, QMSG_BOUNCED, "none", "5.4.6", why);
        free(why);
        dns_route_free(route);
        return;
    }
    start_session(j, route, (size_t)n);
    dns_route_free(route);
}

/* Takes the first waiting recipient of d and every other one of the same
 * message waiting there (up to the recipient limit) into a new job. */
static void start_job(struct qmgr_relay_dest *d)
{
    struct qmgr_relay_job *j = xcalloc(1, sizeof *j);
    j->dest = d;
    j->fd = -1;
    j->converted_fd = -1;
    j->q = d->head->q;
    unsigned rcpt_limit = dest_recipient_limit(d);
    j->idx = xcalloc(rcpt_limit, sizeof *j->idx);
    struct qmgr_relay_item **pp = &d->head, *last = NULL;
    while (*pp && j->n < rcpt_limit) {
        struct qmgr_relay_item *it = *pp;
        if (it->q != j->q) {
            last = it;
            pp = &it->next;
            continue;
        }
        *pp = it->next;
        j->idx[j->n++] = it->idx;
        free(it);
    }
    d->tail = NULL;
    for (struct qmgr_relay_item *it = d->head; it; it = it->next)
        d->tail = it;
    (void)last;
    d->active++;
    rl.active++;
    list_append(&rl.jobs, &j->link);
    j->start_us = clock_now_us();

    struct qmgr_msg *q = j->q;
    char *path;
    uint64_t base;
    store_content_locate(q->m.id, q->place, &path, &base);
    str_copy(j->content_id, q->m.id, sizeof j->content_id);
    j->fd = open(path, O_RDONLY | O_CLOEXEC);
    int err = errno;
    free(path);
    if (j->fd < 0) {
        char *why = xasprintf("cannot open the queue file: %s", strerror(err));
        job_settle_all(j, QMSG_DEFERRED, "none", "4.3.0", why);
        free(why);
        return;
    }
    j->rcpts = xcalloc(j->n, sizeof *j->rcpts);
    for (size_t i = 0; i < j->n; i++) {
        const struct queue_file_rcpt *r = &q->m.rcpts[j->idx[i]];
        j->rcpts[i].addr = r->addr;
        j->rcpts[i].notify = r->notify;
        j->rcpts[i].orcpt = r->orcpt;
    }
    const char *body = queue_file_message_attr(&q->m, "body");
    j->msg.sender = q->m.sender;
    j->msg.smtputf8 = queue_file_message_attr(&q->m, "smtputf8") != NULL;
    j->msg.body_8bit = body && strcasecmp(body, "8BITMIME") == 0;
    j->msg.ret = queue_file_message_attr(&q->m, "ret");
    j->msg.envid = queue_file_message_attr(&q->m, "envid");
    j->msg.content_fd = j->fd;
    j->msg.offset = base + q->m.content_offset;
    j->msg.length = q->m.content_length;
    j->msg.rcpts = j->rcpts;
    j->msg.nrcpts = j->n;
    sign(j);
    if (strcmp(d->key, "[invalid]") == 0) {
        job_settle_all(j, QMSG_DEFERRED, "none", "4.3.5", "bad next hop in relayhost or transport_maps");
        return;
    }
    if (d->lmtp && d->socket_path) {
        lmtp_unix_session(j);
        return;
    }
    /* LMTP goes to a mailbox store: no login (Postfix's
     * lmtp_sasl_auth_enable is off by default too), TLS only when
     * lmtp_tls_security_level asks */
    if (!d->lmtp)
        qmgr_nexthop_login(d->key, d->host, &j->auth_user, &j->auth_pass);
    qmgr_nexthop_tls(d->key, d->host, d->lmtp, &j->tls_level, &j->tls_match);
    load_cas_if_verifying(j);
    if (d->use_mx)
        j->dq = dns_resolve_mail_domain(rl.dns, d->host, on_route, j);
    else
        j->dq = dns_resolve_host(rl.dns, d->host, on_route, j);
}

/* Waiting recipients whose message went on hold, was deleted, or whose
 * recipient got settled another way leave the queue without a session. */
static void drop_stale(struct qmgr_relay_dest *d)
{
    struct qmgr_relay_item **pp = &d->head;
    while (*pp) {
        struct qmgr_relay_item *it = *pp;
        if (!it->q->deleted && it->q->place == STORE_QUEUE) {
            pp = &it->next;
            continue;
        }
        *pp = it->next;
        struct qmgr_msg *q = it->q;
        qmgr_msg_rcpt_release(q, it->idx);
        free(it);
        qmgr_msg_finish_if_done(q);
    }
    d->tail = NULL;
    for (struct qmgr_relay_item *it = d->head; it; it = it->next)
        d->tail = it;
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    struct qmgr_relay_dest *d = rl.dests;
    while (d) {
        struct qmgr_relay_dest *next = d->next;
        drop_stale(d);
        while (!rl.quiescing && d->head && d->active < dest_concurrency_limit(d) && rl.active < rl.total_limit)
            start_job(d);
        dest_free_if_idle(d);
        d = next;
    }
}

/* ---------- setup ---------- */

/* lmtp_connect_timeout = 0, Postfix's "no time limit": the session's own
 * timer is set beyond the kernel's TCP connect timeout (about 2 minutes),
 * so the kernel's answer comes first. */
#define LMTP_CONNECT_NO_LIMIT 3600

static long opt_time(struct conf *c, const char *name)
{
    return (long)conf_time(c, name);
}

int qmgr_relay_init(struct event_base *base, struct runtime *rt, struct resolver *resolver, char **err)
{
    memset(&rl, 0, sizeof rl);
    rl.base = base;
    rl.rt = rt;
    struct conf *c = rt->conf;
    const char *protocols = conf_str(c, "inet_protocols");
    int v4 = strstr(protocols, "all") || strstr(protocols, "ipv4");
    int v6 = strstr(protocols, "all") || strstr(protocols, "ipv6");
    rl.dns = dns_new(base, conf_str(c, "dns_resolvers"), v4, v6, err);
    if (!rl.dns)
        return -1;
    if (qmgr_nexthop_init(rt, resolver, err) != 0)
        return -1;
    rl.myhostname = xstrdup(conf_str(c, "myhostname"));
    rl.mx_address_limit = (size_t)conf_int(c, "smtp_mx_address_limit");
    rl.dkim_lifetime = (long)conf_time(c, "dkim_signature_lifetime");
    rl.dest_limit = (unsigned)conf_int(c, "smtp_destination_concurrency_limit");
    rl.rcpt_limit = (unsigned)conf_int(c, "smtp_destination_recipient_limit");
    rl.total_limit = (unsigned)conf_int(c, "default_process_limit");
    rl.opts.helo_name = conf_str(c, "smtp_helo_name");
    rl.opts.connect_timeout = opt_time(c, "smtp_connect_timeout");
    rl.opts.helo_timeout = opt_time(c, "smtp_helo_timeout");
    rl.opts.mail_timeout = opt_time(c, "smtp_mail_timeout");
    rl.opts.rcpt_timeout = opt_time(c, "smtp_rcpt_timeout");
    rl.opts.data_timeout = opt_time(c, "smtp_data_init_timeout");
    rl.opts.data_xfer_timeout = opt_time(c, "smtp_data_xfer_timeout");
    rl.opts.data_done_timeout = opt_time(c, "smtp_data_done_timeout");
    rl.opts.quit_timeout = opt_time(c, "smtp_quit_timeout");
    rl.opts.cache_idle = opt_time(c, "smtp_connection_cache_time_limit");
    rl.opts.cache_uses = (unsigned)conf_int(c, "smtp_connection_reuse_count_limit");
    /* 8-bit mail for a server without 8BITMIME: the client refuses
     * (5.6.3) and on_client_done sends a 7-bit copy instead. */
    rl.opts.allow_8bit_anyway = 0;
    /* LMTP next hops: Postfix's lmtp_* counterparts of the same knobs */
    rl.lmtp_dest_limit = (unsigned)conf_int(c, "lmtp_destination_concurrency_limit");
    rl.lmtp_rcpt_limit = (unsigned)conf_int(c, "lmtp_destination_recipient_limit");
    rl.lmtp_opts.helo_name = conf_str(c, "lmtp_lhlo_name");
    rl.lmtp_opts.connect_timeout = opt_time(c, "lmtp_connect_timeout");
    if (rl.lmtp_opts.connect_timeout == 0)
        rl.lmtp_opts.connect_timeout = LMTP_CONNECT_NO_LIMIT;
    rl.lmtp_opts.helo_timeout = opt_time(c, "lmtp_lhlo_timeout");
    rl.lmtp_opts.mail_timeout = opt_time(c, "lmtp_mail_timeout");
    rl.lmtp_opts.rcpt_timeout = opt_time(c, "lmtp_rcpt_timeout");
    rl.lmtp_opts.data_timeout = opt_time(c, "lmtp_data_init_timeout");
    rl.lmtp_opts.data_xfer_timeout = opt_time(c, "lmtp_data_xfer_timeout");
    rl.lmtp_opts.data_done_timeout = opt_time(c, "lmtp_data_done_timeout");
    rl.lmtp_opts.quit_timeout = opt_time(c, "lmtp_quit_timeout");
    rl.lmtp_opts.cache_idle = opt_time(c, "lmtp_connection_cache_time_limit");
    rl.lmtp_opts.cache_uses = (unsigned)conf_int(c, "lmtp_connection_reuse_count_limit");
    rl.cafile = xstrdup(conf_str(c, "smtp_tls_CAfile"));
    rl.capath = xstrdup(conf_str(c, "smtp_tls_CApath"));
    rl.tls_may = tls_client_ctx(c, "smtp_tls_protocols", err);
    if (!rl.tls_may)
        return -1;
    rl.tls_mandatory = tls_client_ctx(c, "smtp_tls_mandatory_protocols", err);
    if (!rl.tls_mandatory)
        return -1;
    rl.kick = evtimer_new(base, on_kick, NULL);
    return 0;
}

void qmgr_relay_quiesce(void)
{
    rl.quiescing = 1;
}

unsigned qmgr_relay_active(void)
{
    return rl.active;
}

struct dns_ctx *qmgr_relay_dns(void)
{
    return rl.dns;
}

void qmgr_relay_shutdown(void)
{
    struct qmgr_relay_job *j;
    while ((j = LIST_FIRST(&rl.jobs, struct qmgr_relay_job, link))) {
        if (j->dq)
            dns_cancel(j->dq);
        if (j->sc)
            smtpc_cancel(j->sc);
        for (size_t i = 0; i < j->n; i++)
            qmgr_msg_rcpt_release(j->q, j->idx[i]);
        job_free(j);
    }
    while (rl.dests) {
        struct qmgr_relay_dest *d = rl.dests;
        while (d->head) {
            struct qmgr_relay_item *it = d->head;
            d->head = it->next;
            qmgr_msg_rcpt_release(it->q, it->idx);
            free(it);
        }
        rl.dests = d->next;
        dest_free(d);
    }
    smtpc_drop_lingering();
    if (rl.kick)
        event_free(rl.kick);
    if (rl.dns)
        dns_free(rl.dns);
    qmgr_nexthop_shutdown();
    free(rl.cafile);
    free(rl.capath);
    tls_ctx_free(rl.tls_may);
    tls_ctx_free(rl.tls_mandatory);
    free(rl.myhostname);
    memset(&rl, 0, sizeof rl);
}
