/* smtpd_dns: the DNS answers the restriction lists need (DNSBL for
 * reject_rbl_client, the sender's domain for reject_unknown_sender_domain),
 * asked ahead of RCPT so that the synchronous policy check finds them
 * ready: the client's lists at connect, the sender's domain at MAIL. While
 * an answer is outstanding the session reads no further command (see
 * session_process); every lookup ends within SDNS_TIMEOUT_MS. One libunbound
 * context per smtpd process (src/dns), made on first use. */
#include "smtpd/smtpd_session_internal.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dns/dns.h"
#include "smtpd/smtpd_policy.h"
#include "util/log.h"
#include "util/mem.h"

#define SDNS_MAX_ZONES POLICY_MAX_RBL_ZONES
#define SDNS_TIMEOUT_MS 10000

struct smtpd_dns_rbl {
    struct smtpd_dns_state *st;
    const char *zone;          /* the policy's string */
    struct dns_query *a, *txt;
    int listed;                /* -1 pending, 0 no, 1 yes */
    char *text;
};

struct smtpd_dns_state {
    struct smtp_session *s;
    struct smtpd_dns_rbl rbl[SDNS_MAX_ZONES];
    size_t nrbl;
    struct dns_query *sender_q;
    int sender_status;         /* -2 not asked, -3 pending, else as smtpd_policy_ctx.sender_domain */
    unsigned pending;
};

static struct dns_ctx *ctx;

struct dns_ctx *smtpd_dns_context(struct smtp_session *s)
{
    if (ctx)
        return ctx;
    char *err = NULL;
    ctx = dns_new(s->base, s->set->dns_resolvers, 1, 1, &err);
    if (!ctx) {
        log_warn("DNS for restrictions: %s", err ? err : "cannot set up");
        free(err);
        return NULL;
    }
    dns_set_timeout(ctx, SDNS_TIMEOUT_MS);
    return ctx;
}

void smtpd_dns_shutdown(void)
{
    if (ctx)
        dns_free(ctx);
    ctx = NULL;
}

static struct smtpd_dns_state *state(struct smtp_session *s)
{
    if (!s->dns) {
        s->dns = xcalloc(1, sizeof *s->dns);
        s->dns->s = s;
        s->dns->sender_status = -2;
    }
    return s->dns;
}

static void one_done(struct smtpd_dns_state *st)
{
    /* not while the error tarpit holds the session: its timer resumes it */
    struct smtp_session *s = st->s;
    if (--st->pending == 0 && !(s->error_sleep && evtimer_pending(s->error_sleep, NULL)))
        smtpd_session_resume(s);
}

/* The first character-string of the first TXT record (RFC 1035 §3.3.14). */
static char *first_txt(const struct dns_rrset *rs)
{
    if (rs->status != DNS_OK || rs->nrrs == 0 || rs->rrs[0].len < 1)
        return NULL;
    size_t n = rs->rrs[0].data[0];
    if (n + 1 > rs->rrs[0].len)
        return NULL;
    char *t = xstrndup((const char *)rs->rrs[0].data + 1, n);
    for (char *p = t; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '?';
    return t;
}

static void on_txt(void *arg, struct dns_rrset *rs)
{
    struct smtpd_dns_rbl *r = arg;
    r->txt = NULL;
    r->text = first_txt(rs);
    dns_rrset_free(rs);
    one_done(r->st);
}

static void on_a(void *arg, struct dns_rrset *rs)
{
    struct smtpd_dns_rbl *r = arg;
    r->a = NULL;
    r->listed = rs->status == DNS_OK && rs->nrrs > 0;
    if (rs->status == DNS_TEMPFAIL)
        log_warn("%s: RBL lookup error: %s", r->zone, rs->why ? rs->why : "temporary failure");
    dns_rrset_free(rs);
    one_done(r->st);
}

void smtpd_dns_connect(struct smtp_session *s)
{
    if (!s->set->policy)
        return;
    const char *zones[SDNS_MAX_ZONES];
    size_t n = smtpd_policy_rbl_zones(s->set->policy, zones, SDNS_MAX_ZONES);
    /* the address reversed: octets for IPv4, nibbles for IPv6 (RFC 5782 §2.4) */
    char rev[80];
    if (n == 0 || !dns_reverse_labels(s->client_addr, rev))
        return;
    struct dns_ctx *d = smtpd_dns_context(s);
    if (!d)
        return;
    struct smtpd_dns_state *st = state(s);
    for (size_t i = 0; i < n; i++) {
        struct smtpd_dns_rbl *r = &st->rbl[st->nrbl++];
        r->st = st;
        r->zone = zones[i];
        r->listed = -1;
        char *name = xasprintf("%s.%s", rev, zones[i]);
        st->pending += 2;
        r->a = dns_lookup(d, name, DNS_TYPE_A, on_a, r);
        r->txt = dns_lookup(d, name, DNS_TYPE_TXT, on_txt, r);
        free(name);
    }
}

static void on_sender(void *arg, struct dns_route *route)
{
    struct smtpd_dns_state *st = arg;
    st->sender_q = NULL;
    switch (route->status) {
    case DNS_OK: st->sender_status = 0; break;
    case DNS_NULL_MX: st->sender_status = 2; break;
    case DNS_TEMPFAIL: st->sender_status = -1; break;
    default: st->sender_status = 1; break;
    }
    dns_route_free(route);
    one_done(st);
}

void smtpd_dns_mail(struct smtp_session *s, const char *sender)
{
    if (s->dns) {
        if (s->dns->sender_q)
            dns_cancel(s->dns->sender_q), s->dns->pending--;
        s->dns->sender_q = NULL;
        s->dns->sender_status = -2;
    }
    const char *at = strrchr(sender, '@');
    if (!s->set->policy || !smtpd_policy_checks_sender_domain(s->set->policy) || !at || !at[1] || at[1] == '[')
        return;
    struct dns_ctx *d = smtpd_dns_context(s);
    if (!d)
        return;
    struct smtpd_dns_state *st = state(s);
    st->sender_status = -3;
    st->pending++;
    st->sender_q = dns_resolve_mail_domain(d, at + 1, on_sender, st);
}

int smtpd_dns_pending(const struct smtp_session *s)
{
    return s->dns && s->dns->pending > 0;
}

int smtpd_dns_rbl_listed(void *arg, const char *zone, const char **text)
{
    struct smtp_session *s = arg;
    if (!s->dns)
        return 0;
    for (size_t i = 0; i < s->dns->nrbl; i++)
        if (strcasecmp(s->dns->rbl[i].zone, zone) == 0) {
            *text = s->dns->rbl[i].text;
            return s->dns->rbl[i].listed == 1;
        }
    return 0;
}

int smtpd_dns_sender_domain(void *arg)
{
    struct smtp_session *s = arg;
    if (!s->dns || s->dns->sender_status < -1)
        return 0;
    return s->dns->sender_status;
}

void smtpd_dns_session_end(struct smtp_session *s)
{
    struct smtpd_dns_state *st = s->dns;
    if (!st)
        return;
    for (size_t i = 0; i < st->nrbl; i++) {
        if (st->rbl[i].a)
            dns_cancel(st->rbl[i].a);
        if (st->rbl[i].txt)
            dns_cancel(st->rbl[i].txt);
        free(st->rbl[i].text);
    }
    if (st->sender_q)
        dns_cancel(st->sender_q);
    free(st);
    s->dns = NULL;
}
