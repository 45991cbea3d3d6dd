/* smtpd_mailauth: SPF, DKIM and DMARC for one transaction, and the
 * Authentication-Results field that records them (see smtpd_mailauth.h). */
#include "smtpd/smtpd_mailauth.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mailauth/authres.h"
#include "mailauth/dkim.h"
#include "mailauth/dmarc.h"
#include "mailauth/dmarc_report.h"
#include "mailauth/mailauth_dns.h"
#include "mailauth/spf.h"
#include "msg/cleanup.h"
#include "smtpd/smtpd_policy.h"
#include "smtpd/smtpd_session_internal.h"
#include "util/ipc.h"
#include "util/ipc_schema.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

/* One SPF identity being checked. */
struct spf_state {
    struct smtpd_mailauth *m;
    struct spf_check *check;   /* NULL once answered (or never asked) */
    int asked, done;
    enum spf_result result;
    char *identity;            /* the address or HELO name checked */
    char *domain;
    char *problem;
    char *explanation;
};

struct smtpd_mailauth {
    struct smtp_session *s;
    struct cleanup_observer observer;
    struct spf_state mfrom, helo;
    struct dkim_verify *dkim;
    int dkim_pending;          /* dkim_verify_end said lookups run */
    int dkim_ready;            /* results can be read */
    struct dkim_arc_verify *arc;   /* the ARC chain (RFC 8617), verified only */
    int arc_pending, arc_ready;
    struct dmarc_from from;
    int header_seen;
    struct dmarc_check *dmarc;
    struct dmarc_outcome *dmarc_out;
    int dmarc_started;
    int timed_out;
    struct event *timer;       /* the wait's end, or "complete now" */
    struct event *spf_timer;   /* SPF's own time limit, from MAIL */
    void (*finish_cb)(struct smtp_session *s);
    char *results;             /* the Authentication-Results field */
    char *policy_text;         /* reject_dmarc_policy's reason */
    int dmarc_judged;          /* reject_dmarc_policy ran: dmarc_verdict is its POLICY_DMARC_* */
    int dmarc_verdict;
    int reported;              /* the evaluation went to the queue for the DMARC report */
};

static struct mailauth_dns real_dns;
static struct dmarc_cache *dmarc_cache;

int smtpd_mailauth_enabled(const char *setting, const char *service, int wrapper_mode)
{
    if (strcasecmp(setting, "yes") == 0)
        return 1;
    if (strcasecmp(setting, "no") == 0)
        return 0;
    /* auto: the service name, or the port of "host:port" */
    const char *port = strrchr(service, ':');
    port = port ? port + 1 : service;
    static const char *const submission[] = {"submission", "submissions", "smtps", "587", "465"};
    for (size_t i = 0; i < sizeof submission / sizeof submission[0]; i++)
        if (strcasecmp(port, submission[i]) == 0)
            return 0;
    return !wrapper_mode;
}

/* SPF checks a session may leave unfinished before it gets no more. */
#define SMTPD_SPF_ABANDONED_MAX 3

static const struct mailauth_dns *dns_of(struct smtp_session *s)
{
    struct dns_ctx *d = smtpd_dns_context(s);
    if (!d)
        return NULL;
    real_dns = mailauth_dns_real(d);
    return &real_dns;
}

/* 1 when a check was still running (cancelled: its lookups go on in
 * libunbound all the same). */
static int spf_state_clear(struct spf_state *st)
{
    int running = st->check != NULL;
    if (st->check)
        spf_check_cancel(st->check);
    free(st->identity);
    free(st->domain);
    free(st->problem);
    free(st->explanation);
    memset(st, 0, sizeof *st);
    return running;
}

static void advance(struct smtpd_mailauth *m);
static void spf_give_up(struct spf_state *st, const char *why);

static void on_spf(void *arg, const struct spf_outcome *out)
{
    struct spf_state *st = arg;
    st->check = NULL;
    st->done = 1;
    st->result = out->result;
    st->domain = out->domain ? xstrdup(out->domain) : NULL;
    st->problem = out->problem ? xstrdup(out->problem) : NULL;
    st->explanation = out->explanation ? xstrdup(out->explanation) : NULL;
    struct smtp_session *s = st->m->s;
    if (st == &st->m->mfrom && s->set->policy_checks_spf && !st->m->finish_cb &&
        !(s->error_sleep && evtimer_pending(s->error_sleep, NULL))) {
        smtpd_session_resume(s);   /* RCPT waited for this answer */
        return;
    }
    advance(st->m);
}

static void spf_start(struct smtpd_mailauth *m, struct spf_state *st, int which, const char *sender)
{
    struct smtp_session *s = m->s;
    const struct mailauth_dns *dns = dns_of(s);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, s->client_addr, &sin->sin_addr) == 1)
        sin->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, s->client_addr, &sin6->sin6_addr) == 1)
        sin6->sin6_family = AF_INET6;
    if (!dns || ss.ss_family == 0 || !s->helo)
        return;   /* no DNS or no address: no SPF result (none) */
    struct spf_request req = {
        .client = (const struct sockaddr *)&ss,
        .helo = s->helo,
        .sender = sender,
        .receiver = s->set->myhostname,
        .helo_identity = which == 2,
    };
    st->m = m;
    st->asked = which;
    st->identity = xstrdup(which == 2 ? s->helo : sender);
    st->check = spf_check_start(dns, &req, on_spf, st);
}

/* ---- the content ---- */

static void on_dkim_done(void *arg, struct dkim_verify *v)
{
    (void)v;
    struct smtpd_mailauth *m = arg;
    m->dkim_pending = 0;
    m->dkim_ready = 1;
    advance(m);
}

static void on_arc_done(void *arg, struct dkim_arc_verify *v)
{
    (void)v;
    struct smtpd_mailauth *m = arg;
    m->arc_pending = 0;
    m->arc_ready = 1;
    advance(m);
}

/* 1 when some line of the header block begins with prefix (any case):
 * every field a verifier reads (DKIM-Signature, ARC-*) begins a line, so
 * with none there is nothing to verify and no verifier is made; the
 * results are the same (dkim=none, no arc=), and most mail is spared two
 * large zeroed allocations, two field splits and two body hashes. */
static int header_has_line_prefix(const char *hdr, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    for (size_t k = 0; k + n <= len;) {
        if (strncasecmp(hdr + k, prefix, n) == 0)
            return 1;
        const char *nl = memchr(hdr + k, '\n', len - k);
        if (!nl)
            break;
        k = (size_t)(nl - hdr) + 1;
    }
    return 0;
}

static size_t observe_header(void *arg, char *hdr, size_t len)
{
    struct smtpd_mailauth *m = arg;
    m->header_seen = 1;
    const struct mailauth_dns *dns = dns_of(m->s);
    if (dns && header_has_line_prefix(hdr, len, "dkim-signature"))
        m->dkim = dkim_verify_new(dns, hdr, len, time(NULL), on_dkim_done, m);
    if (dns && header_has_line_prefix(hdr, len, "arc-"))
        m->arc = dkim_arc_verify_new(dns, hdr, len, time(NULL), on_arc_done, m);
    dmarc_from_header(hdr, len, &m->from);
    return authres_drop_ours(hdr, len, m->s->set->authserv_id);
}

static void observe_body(void *arg, const char *data, size_t len)
{
    struct smtpd_mailauth *m = arg;
    if (m->dkim)
        dkim_verify_body(m->dkim, data, len);
    if (m->arc)
        dkim_arc_verify_body(m->arc, data, len);
}

/* RFC 7208 §4.6.4: a check that has not ended after SMTPD_SPF_LIMIT_S is
 * a temperror (its lookups run one after another, each bounded by DNS). */
static void on_spf_limit(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct smtpd_mailauth *m = arg;
    struct spf_state *spfs[] = {&m->mfrom, &m->helo};
    int waited = smtpd_mailauth_rcpt_waits(m->s);
    char why[64];
    snprintf(why, sizeof why, "no answer within %d seconds", SMTPD_SPF_LIMIT_S);
    for (int i = 0; i < 2; i++)
        spf_give_up(spfs[i], why);
    if (waited && !(m->s->error_sleep && evtimer_pending(m->s->error_sleep, NULL)))
        smtpd_session_resume(m->s);
    else
        advance(m);
}

void smtpd_mailauth_mail(struct smtp_session *s, const char *sender)
{
    smtpd_mailauth_end(s);
    if (!(s->set->mail_authentication || s->set->policy_checks_spf || s->set->policy_end_of_data) || s->is_local ||
        s->sasl_user)
        return;
    struct smtpd_mailauth *m = xcalloc(1, sizeof *m);
    m->s = s;
    m->observer = (struct cleanup_observer){observe_header, observe_body, m};
    s->mailauth = m;
    /* Each transaction a client abandons (RSET, a new EHLO) before its SPF
     * check ends leaves that check's DNS lookups running: a pipelining
     * client could start thousands a second. Past a few, this session's
     * SPF is a temperror, asked no more. */
    if (s->spf_abandoned >= SMTPD_SPF_ABANDONED_MAX) {
        if (s->spf_abandoned++ == SMTPD_SPF_ABANDONED_MAX)
            log_warn("%s[%s]: %u SPF checks abandoned by resets; no more SPF lookups for this session",
                     s->client_name, s->client_addr, SMTPD_SPF_ABANDONED_MAX);
        struct spf_state *sts[] = {&m->mfrom, &m->helo};
        for (int i = 0; i < 2; i++) {
            sts[i]->m = m;
            sts[i]->asked = i + 1;
            sts[i]->identity = xstrdup(i == 1 && s->helo ? s->helo : sender);
            sts[i]->done = 1;
            sts[i]->result = SPF_TEMPERROR;
            sts[i]->problem = xstrdup("too many checks this session abandoned unfinished");
        }
        return;
    }
    spf_start(m, &m->mfrom, 1, sender);
    spf_start(m, &m->helo, 2, sender);
    m->spf_timer = evtimer_new(s->base, on_spf_limit, m);
    struct timeval limit = {SMTPD_SPF_LIMIT_S, 0};
    evtimer_add(m->spf_timer, &limit);
}

static size_t drop_claims_only(void *arg, char *hdr, size_t len)
{
    return authres_drop_ours(hdr, len, arg);
}

const struct cleanup_observer *smtpd_mailauth_observer(struct smtp_session *s)
{
    if (s->mailauth)
        return &s->mailauth->observer;
    /* No checks for this client (ours, logged in, a submission listener),
     * but an Authentication-Results field in our name must not reach a
     * mailbox from anyone: RFC 8601 §5 */
    s->claims_filter = (struct cleanup_observer){drop_claims_only, NULL, s->set->authserv_id};
    return &s->claims_filter;
}

/* ---- the end ---- */

static void on_dmarc(void *arg, struct dmarc_outcome *o)
{
    struct smtpd_mailauth *m = arg;
    m->dmarc = NULL;
    m->dmarc_out = o;
    advance(m);
}

static void dmarc_start(struct smtpd_mailauth *m)
{
    m->dmarc_started = 1;
    const struct mailauth_dns *dns = dns_of(m->s);
    if (!dns || m->from.status != DMARC_FROM_OK)
        return;
    if (!dmarc_cache)
        dmarc_cache = dmarc_cache_new(0);
    const char *dkim_domains[DMARC_MAX_DKIM];
    size_t ndkim = 0;
    for (size_t i = 0; m->dkim_ready && i < dkim_verify_count(m->dkim) && ndkim < DMARC_MAX_DKIM; i++) {
        const struct dkim_result *r = dkim_verify_result(m->dkim, i);
        if (r->status == DKIM_PASS)
            dkim_domains[ndkim++] = r->d;
    }
    struct dmarc_auth auth = {
        .spf_domain = m->mfrom.domain,
        .spf_pass = m->mfrom.done && m->mfrom.result == SPF_PASS,
        .dkim_domains = dkim_domains,
        .ndkim = ndkim,
    };
    struct dmarc_env env = {dns, dmarc_cache, m->s->base};
    m->dmarc = dmarc_check_start(&env, m->from.domain, &auth, on_dmarc, m);
}

/* The methods of the field being composed; strings point into the
 * transaction's state, which outlives authres_build. */
#define AR_METHODS (DKIM_MAX_SIGS + 5)
#define AR_PROPS 5
struct ar {
    struct authres_method m[AR_METHODS];
    struct authres_prop p[AR_METHODS][AR_PROPS];
    size_t n;
};

static void ar_add(struct ar *a, const char *method, const char *result, const char *reason)
{
    if (a->n == AR_METHODS)
        return;
    a->m[a->n] = (struct authres_method){.method = method, .result = result, .reason = reason, .props = a->p[a->n]};
    a->n++;
}

static void ar_prop(struct ar *a, const char *ptype, const char *property, const char *value)
{
    if (a->n == 0 || !value || !*value)
        return;
    struct authres_method *m = &a->m[a->n - 1];
    if (m->nprops == AR_PROPS)
        return;
    a->p[a->n - 1][m->nprops++] = (struct authres_prop){ptype, property, value};
}

/* The field, and its summary for the log. */
static void compose(struct smtpd_mailauth *m, struct strbuf *logline)
{
    struct ar a;
    memset(&a, 0, sizeof a);
    struct dmarc_authres dmarc_ar;   /* used by authres_build below */
    size_t n = m->dkim_ready ? dkim_verify_count(m->dkim) : 0;
    if (m->dkim && !m->dkim_ready) {
        ar_add(&a, "dkim", "temperror", "key lookup did not finish in time");
        strbuf_puts(logline, " dkim=temperror");
    } else if (n == 0) {
        ar_add(&a, "dkim", "none", NULL);
        strbuf_puts(logline, " dkim=none");
    }
    for (size_t i = 0; i < n; i++) {
        const struct dkim_result *r = dkim_verify_result(m->dkim, i);
        ar_add(&a, "dkim", dkim_status_name(r->status), r->reason[0] ? r->reason : NULL);
        ar_prop(&a, "header", "d", r->d);
        ar_prop(&a, "header", "i", r->i);
        ar_prop(&a, "header", "s", r->s);
        ar_prop(&a, "header", "a", r->a);
        ar_prop(&a, "header", "b", r->b);
        strbuf_printf(logline, " dkim=%s (d=%s)", dkim_status_name(r->status), r->d);
    }
    struct spf_state *spfs[] = {&m->mfrom, &m->helo};
    for (int i = 0; i < 2; i++) {
        struct spf_state *st = spfs[i];
        if (!st->asked)
            continue;
        const char *res = st->done ? spf_result_name(st->result) : "temperror";
        ar_add(&a, "spf", res, st->done ? st->problem : "the lookups did not finish in time");
        ar_prop(&a, "smtp", i == 0 ? "mailfrom" : "helo", st->identity);
        strbuf_printf(logline, " spf=%s (%s=%s)", res, i == 0 ? "mailfrom" : "helo", st->identity);
    }
    if (m->from.status != DMARC_FROM_OK) {
        ar_add(&a, "dmarc", "permerror", dmarc_from_status_text(m->from.status));
        strbuf_printf(logline, " dmarc=permerror (%s)", dmarc_from_status_text(m->from.status));
    } else if (!m->dmarc_out) {
        ar_add(&a, "dmarc", "temperror", "the policy lookup did not finish in time");
        ar_prop(&a, "header", "from", m->from.domain);
        strbuf_printf(logline, " dmarc=temperror (from=%s)", m->from.domain);
    } else {
        const struct dmarc_outcome *o = m->dmarc_out;
        dmarc_outcome_authres(o, &dmarc_ar);
        if (a.n < AR_METHODS)
            a.m[a.n++] = dmarc_ar.method;
        strbuf_printf(logline, " dmarc=%s (from=%s%s%s)", dmarc_result_name(o->result), m->from.domain,
                      o->has_record ? " p=" : "", o->has_record ? dmarc_policy_name(o->requested) : "");
    }
    /* ARC (RFC 8617): verified, never sealed; no temperror there, every
     * failure is a fail (§5.2.1), an unanswered lookup too */
    char oldest[24], arc_note[300];
    if (m->arc) {
        const struct dkim_arc_result *r = m->arc_ready ? dkim_arc_verify_result(m->arc) : NULL;
        if (!r) {
            ar_add(&a, "arc", "fail", "key lookups did not finish in time");
            strbuf_puts(logline, " arc=fail (timeout)");
        } else if (r->status != DKIM_ARC_NONE) {
            snprintf(arc_note, sizeof arc_note, "i=%u d=%s", r->instances, r->d);
            int pass = r->status == DKIM_ARC_PASS;
            ar_add(&a, "arc", dkim_arc_status_name(r->status), pass ? NULL : r->reason);
            if (pass)
                a.m[a.n - 1].comment = arc_note;
            snprintf(oldest, sizeof oldest, "%u", r->oldest_pass);
            if (pass)
                ar_prop(&a, "header", "oldest-pass", oldest);
            strbuf_printf(logline, " arc=%s (%s)", dkim_arc_status_name(r->status), arc_note);
        }
    }
    m->results = authres_build(m->s->set->authserv_id, a.m, a.n);
    if (!m->results)
        log_warn("%s: cannot write an Authentication-Results field (authserv_id \"%s\")", m->s->id,
                 m->s->set->authserv_id);
}

static void complete(struct smtpd_mailauth *m)
{
    void (*cb)(struct smtp_session *) = m->finish_cb;
    m->finish_cb = NULL;
    if (m->timer)
        evtimer_del(m->timer);
    struct strbuf logline = STRBUF_INIT;
    compose(m, &logline);
    log_info("%s: authentication:%s", m->s->id, strbuf_str(&logline));
    strbuf_free(&logline);
    cb(m->s);
}

/* Runs whenever an answer arrives: once everything asked so far is in
 * and the content is complete, the next step, or the end. */
static void advance(struct smtpd_mailauth *m)
{
    if (!m->finish_cb)
        return;
    /* DMARC needs MAIL FROM's SPF (which covers the null sender's HELO) and
     * the DKIM results; not HELO's own SPF result, not ARC: a slow HELO
     * domain must not hold it up */
    if (!m->dmarc_started) {
        if (!m->timed_out && (m->mfrom.check || m->dkim_pending))
            return;
        dmarc_start(m);
    }
    if (m->dmarc)
        return;
    if (!m->timed_out && (m->helo.check || m->arc_pending))
        return;
    /* complete, but never from inside smtpd_mailauth_finish itself */
    struct timeval now = {0, 0};
    evtimer_add(m->timer, &now);
}

/* An SPF check given up on: a temperror, as on_spf_limit records it. */
static void spf_give_up(struct spf_state *st, const char *why)
{
    if (!st->check)
        return;
    spf_check_cancel(st->check);
    st->check = NULL;
    st->done = 1;
    st->result = SPF_TEMPERROR;
    free(st->problem);
    st->problem = xstrdup(why);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct smtpd_mailauth *m = arg;
    if (!m->finish_cb)
        return;
    int all_in = m->dmarc_started && !m->dmarc && !m->mfrom.check && !m->helo.check && !m->dkim_pending &&
                 !m->arc_pending;
    if (!all_in && !m->timed_out) {
        /* The wait is over: what did not answer is a temperror, and DMARC
         * is still decided with what is in (SPF then does not pass), so a
         * sender whose DNS is slow on purpose cannot switch DMARC off. */
        m->timed_out = 1;
        log_warn("%s: authentication checks did not finish within %d s; going on with what is in", m->s->id,
                 SMTPD_MAILAUTH_WAIT_S);
        spf_give_up(&m->mfrom, "no answer in time");
        spf_give_up(&m->helo, "no answer in time");
        if (!m->dmarc_started) {
            dmarc_start(m);
            if (m->dmarc) {
                struct timeval more = {SMTPD_DMARC_EXTRA_S, 0};
                evtimer_add(m->timer, &more);
                return;
            }
        }
    }
    if (m->dmarc) {
        dmarc_check_cancel(m->dmarc);
        m->dmarc = NULL;
    }
    complete(m);
}

int smtpd_mailauth_finish(struct smtp_session *s, void (*cb)(struct smtp_session *s))
{
    struct smtpd_mailauth *m = s->mailauth;
    if (!m)
        return 0;
    m->finish_cb = cb;
    m->timer = evtimer_new(s->base, on_timer, m);
    struct timeval wait = {SMTPD_MAILAUTH_WAIT_S, 0};
    evtimer_add(m->timer, &wait);
    if (m->dkim)
        m->dkim_pending = !dkim_verify_end(m->dkim);
    m->dkim_ready = m->dkim && !m->dkim_pending;
    if (m->arc)
        m->arc_pending = !dkim_arc_verify_end(m->arc);
    m->arc_ready = m->arc && !m->arc_pending;
    advance(m);
    return 1;
}

const char *smtpd_mailauth_results(const struct smtp_session *s)
{
    return s->mailauth && s->set->mail_authentication ? s->mailauth->results : NULL;
}

int smtpd_mailauth_rcpt_waits(const struct smtp_session *s)
{
    return s->mailauth && s->mailauth->mfrom.check && s->set->policy_checks_spf;
}

int smtpd_mailauth_spf_result(void *arg, const char **text)
{
    struct smtp_session *s = arg;
    const struct spf_state *st = s->mailauth ? &s->mailauth->mfrom : NULL;
    if (!st || !st->done)
        return POLICY_SPF_UNKNOWN;
    if (st->result == SPF_FAIL) {
        *text = st->explanation;
        return POLICY_SPF_FAIL;
    }
    if (st->result == SPF_TEMPERROR) {
        *text = st->problem;
        return POLICY_SPF_TEMPERROR;
    }
    return POLICY_SPF_OTHER;
}

static int dmarc_policy_verdict(struct smtp_session *s, const char **text)
{
    struct smtpd_mailauth *m = s->mailauth;
    /* RFC 9989 5.3.1 and 11.5: with no author domain, or several, DMARC
     * cannot protect the message, and such messages are a known way
     * around it: refused where DMARC is enforced */
    enum dmarc_from_status fs = m && m->header_seen ? m->from.status : DMARC_FROM_OK;
    /* (a From: that does not parse is the same way around DMARC: mail
     * programs still show the domain in it) */
    if (fs == DMARC_FROM_NO_FIELD || fs == DMARC_FROM_SEVERAL_FIELDS || fs == DMARC_FROM_SEVERAL_DOMAINS ||
        fs == DMARC_FROM_NO_ADDRESS || fs == DMARC_FROM_INVALID || fs == DMARC_FROM_BAD_DOMAIN) {
        free(m->policy_text);
        m->policy_text = xasprintf("%s, so DMARC cannot be checked (RFC 9989 section 11.5)",
                                   dmarc_from_status_text(fs));
        *text = m->policy_text;
        return POLICY_DMARC_REJECT;
    }
    const struct dmarc_outcome *o = m ? m->dmarc_out : NULL;
    if (!o || o->result != DMARC_RESULT_FAIL || o->applied == DMARC_POLICY_NONE || o->applied == DMARC_POLICY_UNSET)
        return POLICY_DMARC_NONE;
    free(m->policy_text);
    m->policy_text = xasprintf("DMARC policy of %s is %s: the From: domain %s is not aligned with a passing "
                               "SPF or DKIM identity%s",
                               o->policy_domain ? o->policy_domain : m->from.domain, dmarc_policy_name(o->requested),
                               m->from.domain, o->testing ? " (t=y: one level lower)" : "");
    *text = m->policy_text;
    if (o->applied == DMARC_POLICY_REJECT)
        return POLICY_DMARC_REJECT;
    return s->set->dmarc_quarantine_hold ? POLICY_DMARC_HOLD : POLICY_DMARC_NONE;
}

int smtpd_mailauth_dmarc_policy(void *arg, const char **text)
{
    struct smtp_session *s = arg;
    int verdict = dmarc_policy_verdict(s, text);
    if (s->mailauth) {
        s->mailauth->dmarc_judged = 1;
        s->mailauth->dmarc_verdict = verdict;
    }
    return verdict;
}

static int policy_rank(enum dmarc_policy p)
{
    return p == DMARC_POLICY_REJECT ? 2 : p == DMARC_POLICY_QUARANTINE ? 1 : 0;
}

/* What the report says was done with the message (RFC 9990 3.1.1.9 and
 * the XSD's ActionDispositionType) and, when that is less than the policy
 * asked for, why. */
static void report_disposition(const struct smtpd_mailauth *m, const char **disposition, const char **reason)
{
    const struct dmarc_outcome *o = m->dmarc_out;
    *reason = "";
    if (o->result == DMARC_RESULT_PASS) {
        *disposition = policy_rank(o->requested) > 0 ? "pass" : "none";
        return;
    }
    int done = 0;
    if (m->dmarc_judged && m->dmarc_verdict == POLICY_DMARC_REJECT)
        done = 2;
    else if (m->dmarc_judged && m->dmarc_verdict == POLICY_DMARC_HOLD)
        done = 1;
    *disposition = done == 2 ? "reject" : done == 1 ? "quarantine" : "none";
    if (done >= policy_rank(o->requested))
        return;
    if (o->result != DMARC_RESULT_FAIL)
        *reason = "other";              /* a temperror or permerror: no policy applied */
    else if (o->testing && done >= policy_rank(o->applied))
        *reason = "policy_test_mode";   /* t=y lowered it */
    else
        *reason = "local_policy";       /* not enforced here, or dmarc_quarantine_action = deliver */
}

/* The domain of an address, normalized, or "" (the null path, a literal). */
static void address_domain(const char *addr, char *out)
{
    const char *at = addr ? strrchr(addr, '@') : NULL;
    if (!at || dmarc_domain_normalize(at + 1, out) != 0)
        out[0] = '\0';
}

/* DKIM results in the order RFC 9990 3.1.3 prefers: passing and strictly
 * aligned, passing and related to the Author Domain, passing, the rest. */
static int dkim_report_rank(const struct dkim_result *r, const char *author)
{
    if (r->status != DKIM_PASS)
        return 3;
    if (strcasecmp(r->d, author) == 0)
        return 0;
    size_t ld = strlen(r->d), la = strlen(author);
    const char *longer = ld > la ? r->d : author, *shorter = ld > la ? author : r->d;
    size_t ll = ld > la ? ld : la, ls = ld > la ? la : ld;
    if (strcasecmp(longer + (ll - ls), shorter) == 0 && longer[ll - ls - 1] == '.')
        return 1;
    return 2;
}

void smtpd_mailauth_report(struct smtp_session *s)
{
    struct smtpd_mailauth *m = s->mailauth;
    if (!m || m->reported || !s->set->dmarc_reports)
        return;
    const struct dmarc_outcome *o = m->dmarc_out;
    /* only domains that ask for reports are recorded */
    if (!o || !o->has_record || o->record.nrua == 0 || !o->policy_domain)
        return;
    m->reported = 1;
    const char *disposition, *reason;
    report_disposition(m, &disposition, &reason);
    char env_from[DMARC_DOMAIN_MAX + 1], env_to[DMARC_DOMAIN_MAX + 1];
    address_domain(s->env.sender, env_from);
    address_domain(s->env.nrcpt ? s->env.rcpts[0].addr : NULL, env_to);
    struct ipc_msg msg;
    ipc_msg_init(&msg, IPC_DMARC_RECORD, 0);
    ipc_msg_add(&msg, "policy_domain", o->policy_domain);
    ipc_msg_add(&msg, "source_ip", s->client_addr);
    ipc_msg_add(&msg, "header_from", o->author_domain);
    ipc_msg_add(&msg, "envelope_from", env_from);
    ipc_msg_add(&msg, "envelope_to", env_to);
    ipc_msg_add(&msg, "disposition", disposition);
    ipc_msg_add(&msg, "dkim", o->dkim == DMARC_ALIGN_YES ? "pass" : "fail");
    ipc_msg_add(&msg, "spf", o->spf == DMARC_ALIGN_YES ? "pass" : "fail");
    if (*reason)
        ipc_msg_add(&msg, "reason", reason);
    if (m->mfrom.asked && m->mfrom.domain) {
        ipc_msg_add(&msg, "spf_domain", m->mfrom.domain);
        ipc_msg_add(&msg, "spf_result", m->mfrom.done ? spf_result_name(m->mfrom.result) : "temperror");
    }
    size_t n = m->dkim_ready ? dkim_verify_count(m->dkim) : 0, sent = 0;
    for (int rank = 0; rank < 4; rank++) {
        for (size_t i = 0; i < n && sent < DMARC_REPORT_MAX_DKIM; i++) {
            const struct dkim_result *r = dkim_verify_result(m->dkim, i);
            char d[DMARC_DOMAIN_MAX + 1];
            if (dkim_report_rank(r, o->author_domain) != rank || dmarc_domain_normalize(r->d, d) != 0 ||
                !dmarc_report_selector_ok(r->s))
                continue;
            char name[16];
            snprintf(name, sizeof name, "dkim%zu", sent++);
            char *v = xasprintf("%s %s %s", d, r->s, dkim_status_name(r->status));
            ipc_msg_add(&msg, name, v);
            free(v);
        }
    }
    smtpd_queue_notify(&msg);
    ipc_msg_free(&msg);
}

void smtpd_mailauth_end(struct smtp_session *s)
{
    struct smtpd_mailauth *m = s->mailauth;
    if (!m)
        return;
    if (spf_state_clear(&m->mfrom) | spf_state_clear(&m->helo))
        s->spf_abandoned++;
    if (m->dkim)
        dkim_verify_free(m->dkim);
    if (m->arc)
        dkim_arc_verify_free(m->arc);
    if (m->dmarc)
        dmarc_check_cancel(m->dmarc);
    if (m->dmarc_out)
        dmarc_outcome_free(m->dmarc_out);   /* frees the struct too */
    if (m->timer)
        event_free(m->timer);
    if (m->spf_timer)
        event_free(m->spf_timer);
    free(m->results);
    free(m->policy_text);
    free(m);
    s->mailauth = NULL;
}

void smtpd_mailauth_shutdown(void)
{
    if (dmarc_cache)
        dmarc_cache_free(dmarc_cache);
    dmarc_cache = NULL;
}
