/* dmarc: one DMARC evaluation (RFC 9989 4.10, 5.3) as a state machine
 * driven by DNS answers: the Author Domain's Tree Walk (policy discovery and
 * its Organizational Domain), a walk per identifier that relaxed alignment
 * needs, then, for a failing message under a parent's record, whether the
 * Author Domain exists (np=). Walks run one query at a time, so a walk
 * stopped by psd= sends no query past that point. See dmarc.h. */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailauth/dmarc.h"
#include "util/mem.h"
#include "util/strbuf.h"

struct walk {
    char names[DMARC_MAX_QUERIES][DMARC_DOMAIN_MAX + 1];
    size_t nnames, next;
    int has[DMARC_MAX_QUERIES];
    struct dmarc_record rec[DMARC_MAX_QUERIES];
    int stopped;  /* psd=y or psd=n */
    int tempfail; /* a query failed: what lies above is unknown */
};

struct ident {
    char domain[DMARC_DOMAIN_MAX + 1];
    int spf;                 /* the SPF identifier (else a DKIM one) */
    enum dmarc_alignment a;
    int walk;                /* needs a walk of its own */
};

struct exists_q {
    struct dmarc_check *chk;
    struct mailauth_dns_query *q;
};

enum phase { PH_AUTHOR, PH_IDENTS, PH_EXISTS, PH_DONE };

struct dmarc_check {
    struct dmarc_env env;
    dmarc_cb cb;
    void *arg;
    char author[DMARC_DOMAIN_MAX + 1];
    enum phase phase;
    struct walk aw, iw;             /* the Author Domain's walk; the identifier's */
    struct walk *cur;               /* the walk a query is out for */
    struct mailauth_dns_query *q;
    struct ident ids[1 + DMARC_MAX_DKIM];
    size_t nids, id_next;
    char org[DMARC_DOMAIN_MAX + 1]; /* the Author Domain's; "" unknown */
    int policy_step;                /* index in aw of the applied record, -1 none */
    struct exists_q ex[3];
    int ex_pending, ex_nx;
    struct dmarc_outcome *out;
    struct event *ev;
    int in_start;
    char *spf_domain;               /* the caller's identifiers, until the record is known */
    char *dkim[DMARC_MAX_DKIM];
    size_t ndkim;
};

const char *dmarc_result_name(enum dmarc_result r)
{
    switch (r) {
    case DMARC_RESULT_NONE: return "none";
    case DMARC_RESULT_PASS: return "pass";
    case DMARC_RESULT_FAIL: return "fail";
    case DMARC_RESULT_TEMPERROR: return "temperror";
    case DMARC_RESULT_PERMERROR: return "permerror";
    }
    return "permerror";
}

static size_t count_labels(const char *d)
{
    size_t n = 1;
    for (; *d; d++)
        n += *d == '.';
    return n;
}

/* The right-most k labels of d (k <= its label count). */
static const char *suffix_labels(const char *d, size_t k)
{
    size_t x = count_labels(d);
    while (x > k) {
        d = strchr(d, '.') + 1;
        x--;
    }
    return d;
}

/* 1 when s is d or ends in "." + d. */
static int is_label_suffix(const char *s, const char *d)
{
    size_t ls = strlen(s), ld = strlen(d);
    if (ls == ld)
        return strcmp(s, d) == 0;
    return ls > ld && s[ls - ld - 1] == '.' && strcmp(s + ls - ld, d) == 0;
}

/* The names a walk from start queries (RFC 9989 4.10 steps 3-7): start,
 * then its parent or, past eight labels, its seven right-most labels, then
 * one label less each time. */
static void walk_plan(struct walk *w, const char *start)
{
    for (size_t i = 0; i < w->nnames; i++)
        dmarc_record_free(&w->rec[i]);
    memset(w, 0, sizeof *w);
    size_t x = count_labels(start);
    memcpy(w->names[0], start, strlen(start) + 1);
    w->nnames = 1;
    for (size_t k = x - 1 < 7 ? x - 1 : 7; k >= 1; k--) {
        const char *s = suffix_labels(start, k);
        memcpy(w->names[w->nnames++], s, strlen(s) + 1);
    }
}

static void walk_free(struct walk *w)
{
    for (size_t i = 0; i < w->nnames; i++)
        dmarc_record_free(&w->rec[i]);
    w->nnames = 0;
}

static int walk_done(const struct walk *w)
{
    return w->stopped || w->tempfail || w->next >= w->nnames;
}

/* Takes the answer for the walk's next name: text is its one DMARC record
 * or NULL. */
static void walk_take(struct walk *w, const char *text)
{
    size_t i = w->next++;
    if (text != NULL && dmarc_record_parse(text, strlen(text), &w->rec[i], NULL) == 0) {
        w->has[i] = 1;
        if (w->rec[i].psd != DMARC_PSD_U)
            w->stopped = 1;
    }
}

/* The Organizational Domain of the walk's start (RFC 9989 4.10.2) into org;
 * 0, or -1 when a DNS failure left it unknown. */
static int walk_org(const struct walk *w, char *org)
{
    if (w->tempfail)
        return -1;
    const char *start = w->names[0], *res = start;
    for (size_t i = w->next; i-- > 0;) {
        if (!w->has[i])
            continue;
        if (w->rec[i].psd == DMARC_PSD_Y && i != 0)
            res = suffix_labels(start, count_labels(w->names[i]) + 1);
        else
            res = w->names[i];
        break; /* the last record found is the shortest name */
    }
    memcpy(org, res, strlen(res) + 1);
    return 0;
}

/* The one DMARC record among a TXT answer's records, as text (malloc'd), or
 * NULL when there is none or more than one (RFC 9989 4.10 step 2). */
static char *pick_record(const struct dns_rrset *rs)
{
    char *found = NULL;
    int count = 0;
    for (size_t i = 0; i < rs->nrrs; i++) {
        struct dmarc_record rec;
        char *buf = dmarc_txt_record(&rs->rrs[i]);
        if (buf && dmarc_record_parse(buf, strlen(buf), &rec, NULL) == 0) {
            dmarc_record_free(&rec);
            if (count++ == 0)
                found = xstrdup(buf);
        }
        free(buf);
    }
    if (count != 1) {
        free(found);
        found = NULL;
    }
    return found;
}

static void advance(struct dmarc_check *chk);

static void on_txt(void *arg, struct dns_rrset *rs)
{
    struct dmarc_check *chk = arg;
    struct walk *w = chk->cur;
    chk->q = NULL;
    if (rs->status == DNS_TEMPFAIL) {
        w->tempfail = 1;
    } else {
        char *text = rs->status == DNS_OK ? pick_record(rs) : NULL;
        dmarc_cache_put(chk->env.cache, w->names[w->next], text, rs->ttl);
        walk_take(w, text);
        free(text);
    }
    dns_rrset_free(rs);
    advance(chk);
}

/* Moves walk w on as far as the cache allows; 1 when it is finished, 0
 * when a query is out. */
static int walk_run(struct dmarc_check *chk, struct walk *w)
{
    while (!walk_done(w)) {
        char *text;
        if (dmarc_cache_get(chk->env.cache, w->names[w->next], &text)) {
            walk_take(w, text);
            free(text);
            continue;
        }
        char qname[DMARC_DOMAIN_MAX + 16];
        snprintf(qname, sizeof qname, "_dmarc.%s", w->names[w->next]);
        chk->cur = w;
        chk->out->queries++;
        chk->q = mailauth_dns_lookup(chk->env.dns, qname, DNS_TYPE_TXT, on_txt, chk);
        return 0;
    }
    return 1;
}

static void set_reason(struct dmarc_check *chk, const char *fmt, const char *a)
{
    free(chk->out->reason);
    chk->out->reason = xasprintf(fmt, a);
}

static void deliver(struct dmarc_check *chk)
{
    struct dmarc_outcome *o = chk->out;
    chk->out = NULL;
    dmarc_cb cb = chk->cb;
    void *arg = chk->arg;
    dmarc_check_cancel(chk);
    cb(arg, o);
}

static void on_defer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    deliver(arg);
}

static void finish(struct dmarc_check *chk)
{
    chk->phase = PH_DONE;
    if (!chk->in_start) {
        deliver(chk);
        return;
    }
    chk->ev = event_new(chk->env.base, -1, 0, on_defer, chk);
    if (chk->ev == NULL)
        abort(); /* libevent out of memory: as xmalloc would */
    event_active(chk->ev, EV_TIMEOUT, 0);
}

/* Policy discovery (RFC 9989 4.10.1) on the finished Author Domain walk.
 * 0 to go on with alignment; -1 when the outcome is final. */
static int discover_policy(struct dmarc_check *chk)
{
    struct dmarc_outcome *o = chk->out;
    struct walk *w = &chk->aw;
    if (walk_org(w, chk->org) == 0)
        o->org_domain = xstrdup(chk->org);
    else
        chk->org[0] = '\0';
    int step = -1;
    if (w->next > 0 && w->has[0]) {
        step = 0;
    } else if (w->tempfail) {
        o->result = DMARC_RESULT_TEMPERROR;
        set_reason(chk, "DNS failure while looking for the policy record of %s", chk->author);
        return -1;
    } else {
        for (size_t i = 0; i < w->next && step < 0; i++)
            if (w->has[i] && strcmp(w->names[i], chk->org) == 0)
                step = (int)i;
        for (size_t i = 0; i < w->next && step < 0; i++)
            if (w->has[i] && w->rec[i].psd == DMARC_PSD_Y)
                step = (int)i;
    }
    if (step < 0) {
        o->result = DMARC_RESULT_NONE;
        set_reason(chk, "no DMARC policy record for %s", chk->author);
        return -1;
    }
    chk->policy_step = step;
    const struct dmarc_record *rec = &w->rec[step];
    o->policy_domain = xstrdup(w->names[step]);
    o->has_record = 1;
    o->record = *rec;
    for (size_t i = 0; i < rec->nrua; i++)
        o->record.rua[i] = xstrdup(rec->rua[i]);
    for (size_t i = 0; i < rec->nruf; i++)
        o->record.ruf[i] = xstrdup(rec->ruf[i]);
    if (!dmarc_record_policy_ok(rec)) {
        if (rec->nrua == 0) {
            o->result = DMARC_RESULT_PERMERROR;
            set_reason(chk, "the policy record at %s has no valid p=, sp= or np=, and no valid rua=",
                       o->policy_domain);
            return -1;
        }
        o->fallback_none = 1;
    }
    return 0;
}

static void add_ident(struct dmarc_check *chk, const char *domain, int spf)
{
    char d[DMARC_DOMAIN_MAX + 1];
    if (domain == NULL || dmarc_domain_normalize(domain, d) != 0)
        return;
    for (size_t i = 0; i < chk->nids; i++)
        if (chk->ids[i].spf == spf && strcmp(chk->ids[i].domain, d) == 0)
            return;
    struct ident *id = &chk->ids[chk->nids++];
    memcpy(id->domain, d, strlen(d) + 1);
    id->spf = spf;
    const struct dmarc_record *rec = &chk->aw.rec[chk->policy_step];
    enum dmarc_mode mode = spf ? rec->aspf : rec->adkim;
    if (strcmp(d, chk->author) == 0)
        id->a = DMARC_ALIGN_YES;
    else if (mode == DMARC_STRICT)
        id->a = DMARC_ALIGN_NO;
    else if (chk->org[0] == '\0')
        id->a = DMARC_ALIGN_UNKNOWN;
    else if (!is_label_suffix(d, chk->org))
        id->a = DMARC_ALIGN_NO; /* its Organizational Domain cannot be ours */
    else if (strcmp(d, chk->org) == 0)
        id->a = DMARC_ALIGN_YES;
    else
        id->walk = 1;
}

/* The next identifier that still needs a walk, or NULL. A DKIM walk is not
 * needed once another DKIM identifier aligned. */
static struct ident *next_walk(struct dmarc_check *chk)
{
    int dkim_yes = 0;
    for (size_t i = 0; i < chk->nids; i++)
        if (!chk->ids[i].spf && chk->ids[i].a == DMARC_ALIGN_YES)
            dkim_yes = 1;
    while (chk->id_next < chk->nids) {
        struct ident *id = &chk->ids[chk->id_next];
        if (id->walk && !(dkim_yes && !id->spf))
            return id;
        if (id->walk)
            id->a = DMARC_ALIGN_NO; /* not looked at: DKIM is aligned already */
        chk->id_next++;
    }
    return NULL;
}

static enum dmarc_alignment summary(struct dmarc_check *chk, int spf, char **aligned)
{
    enum dmarc_alignment best = DMARC_ALIGN_NA;
    for (size_t i = 0; i < chk->nids; i++) {
        const struct ident *id = &chk->ids[i];
        if (id->spf != spf)
            continue;
        if (id->a == DMARC_ALIGN_YES) {
            if (*aligned == NULL)
                *aligned = xstrdup(id->domain);
            best = DMARC_ALIGN_YES;
        } else if (id->a == DMARC_ALIGN_UNKNOWN && best != DMARC_ALIGN_YES) {
            best = DMARC_ALIGN_UNKNOWN;
        } else if (best == DMARC_ALIGN_NA) {
            best = DMARC_ALIGN_NO;
        }
    }
    return best;
}

static enum dmarc_policy lowered(enum dmarc_policy p)
{
    return p == DMARC_POLICY_REJECT ? DMARC_POLICY_QUARANTINE : DMARC_POLICY_NONE;
}

/* The requested policy (RFC 9989 4.10.1) once existence is known (or not
 * needed), the applied one, and the words of the reason. */
static void settle(struct dmarc_check *chk)
{
    struct dmarc_outcome *o = chk->out;
    const struct dmarc_record *rec = &chk->aw.rec[chk->policy_step];
    if (o->fallback_none) {
        o->requested = DMARC_POLICY_NONE;
        o->source = DMARC_SRC_P;
    } else if (chk->policy_step == 0) {
        o->requested = rec->p;
        o->source = DMARC_SRC_P;
    } else {
        o->requested = rec->p;
        o->source = DMARC_SRC_P;
        if (rec->sp != DMARC_POLICY_UNSET) {
            o->requested = rec->sp;
            o->source = DMARC_SRC_SP;
        }
        if (o->author_exists == 0 && rec->np != DMARC_POLICY_UNSET) {
            o->requested = rec->np;
            o->source = DMARC_SRC_NP;
        }
    }
    o->testing = rec->testing && o->requested >= DMARC_POLICY_QUARANTINE;
    o->applied = DMARC_POLICY_NONE;
    if (o->result == DMARC_RESULT_FAIL)
        o->applied = o->testing ? lowered(o->requested) : o->requested;
    struct strbuf sb = STRBUF_INIT;
    if (o->result == DMARC_RESULT_PASS)
        strbuf_printf(&sb, "aligned %s", o->spf == DMARC_ALIGN_YES ? "SPF" : "DKIM");
    else if (o->result == DMARC_RESULT_TEMPERROR)
        strbuf_puts(&sb, "DNS failure while looking for Organizational Domains");
    else
        strbuf_puts(&sb, "no aligned SPF or DKIM pass");
    static const char *const src[] = {"p", "sp", "np"};
    strbuf_printf(&sb, "; %s=%s at %s", src[o->source], dmarc_policy_name(o->requested), o->policy_domain);
    if (o->fallback_none)
        strbuf_puts(&sb, " (record without a valid policy: treated as p=none)");
    if (o->testing)
        strbuf_printf(&sb, "; t=y: %s lowered to %s", dmarc_policy_name(o->requested),
                      dmarc_policy_name(lowered(o->requested)));
    free(o->reason);
    o->reason = strbuf_detach(&sb);
}

static void on_exists(void *arg, struct dns_rrset *rs)
{
    struct exists_q *e = arg;
    struct dmarc_check *chk = e->chk;
    e->q = NULL;
    chk->ex_pending--;
    enum dns_status st = rs->status;
    dns_rrset_free(rs);
    if (st == DNS_OK || st == DNS_NODATA || st == DNS_NULL_MX) {
        chk->out->author_exists = 1;
        for (int i = 0; i < 3; i++) {
            if (chk->ex[i].q != NULL) {
                mailauth_dns_cancel(chk->env.dns, chk->ex[i].q);
                chk->ex[i].q = NULL;
            }
        }
        chk->ex_pending = 0;
    } else if (st == DNS_NXDOMAIN || st == DNS_INVALID) {
        chk->ex_nx++;
    }
    if (chk->ex_pending > 0)
        return;
    if (chk->out->author_exists != 1) {
        if (chk->ex_nx > 0) {
            chk->out->author_exists = 0;
        } else {
            chk->out->result = DMARC_RESULT_TEMPERROR;
            settle(chk);
            set_reason(chk, "DNS failure while checking whether %s exists", chk->author);
            finish(chk);
            return;
        }
    }
    settle(chk);
    finish(chk);
}

/* After alignment: the result, and the existence check when np= matters. */
static void conclude(struct dmarc_check *chk)
{
    struct dmarc_outcome *o = chk->out;
    o->spf = summary(chk, 1, &o->spf_aligned_domain);
    o->dkim = summary(chk, 0, &o->dkim_aligned_domain);
    if (o->spf == DMARC_ALIGN_YES || o->dkim == DMARC_ALIGN_YES)
        o->result = DMARC_RESULT_PASS;
    else if (o->spf == DMARC_ALIGN_UNKNOWN || o->dkim == DMARC_ALIGN_UNKNOWN)
        o->result = DMARC_RESULT_TEMPERROR;
    else
        o->result = DMARC_RESULT_FAIL;
    const struct dmarc_record *rec = &chk->aw.rec[chk->policy_step];
    enum dmarc_policy sp = rec->sp != DMARC_POLICY_UNSET ? rec->sp : rec->p;
    enum dmarc_policy np = rec->np != DMARC_POLICY_UNSET ? rec->np : sp;
    if (o->result == DMARC_RESULT_FAIL && chk->policy_step != 0 && !o->fallback_none && np != sp) {
        static const int types[3] = {DNS_TYPE_A, DNS_TYPE_AAAA, DNS_TYPE_MX};
        chk->phase = PH_EXISTS;
        chk->ex_pending = 3;
        for (int i = 0; i < 3; i++) {
            chk->ex[i].chk = chk;
            o->queries++;
            chk->ex[i].q = mailauth_dns_lookup(chk->env.dns, chk->author, types[i], on_exists, &chk->ex[i]);
        }
        return;
    }
    settle(chk);
    finish(chk);
}

static void advance(struct dmarc_check *chk)
{
    if (chk->phase == PH_AUTHOR) {
        if (!walk_run(chk, &chk->aw))
            return;
        if (discover_policy(chk) != 0) {
            finish(chk);
            return;
        }
        add_ident(chk, chk->spf_domain, 1);
        for (size_t i = 0; i < chk->ndkim; i++)
            add_ident(chk, chk->dkim[i], 0);
        chk->phase = PH_IDENTS;
    }
    while (chk->phase == PH_IDENTS) {
        struct ident *id = next_walk(chk);
        if (id == NULL) {
            conclude(chk);
            return;
        }
        if (chk->iw.nnames == 0 || strcmp(chk->iw.names[0], id->domain) != 0)
            walk_plan(&chk->iw, id->domain);
        if (!walk_run(chk, &chk->iw))
            return;
        char org[DMARC_DOMAIN_MAX + 1];
        if (walk_org(&chk->iw, org) != 0)
            id->a = DMARC_ALIGN_UNKNOWN;
        else
            id->a = strcmp(org, chk->org) == 0 ? DMARC_ALIGN_YES : DMARC_ALIGN_NO;
        id->walk = 0;
        walk_free(&chk->iw);
        chk->id_next++;
    }
}

struct dmarc_check *dmarc_check_start(const struct dmarc_env *env, const char *author_domain,
                                      const struct dmarc_auth *auth, dmarc_cb cb, void *arg)
{
    struct dmarc_check *chk = xcalloc(1, sizeof *chk);
    chk->env = *env;
    chk->cb = cb;
    chk->arg = arg;
    chk->policy_step = -1;
    chk->out = xcalloc(1, sizeof *chk->out);
    chk->out->author_exists = -1;
    chk->out->applied = DMARC_POLICY_NONE;
    chk->in_start = 1;
    if (dmarc_domain_normalize(author_domain, chk->author) != 0) {
        chk->out->author_domain = xstrdup("");
        chk->out->result = DMARC_RESULT_PERMERROR;
        chk->out->reason = xstrdup("the Author Domain is not a valid host name");
        finish(chk);
        chk->in_start = 0;
        return chk;
    }
    chk->out->author_domain = xstrdup(chk->author);
    /* Identifiers are taken once the policy record is known (their
     * alignment modes come from it); a copy waits until then. */
    if (auth != NULL) {
        if (auth->spf_pass && auth->spf_domain != NULL)
            chk->spf_domain = xstrdup(auth->spf_domain);
        for (size_t i = 0; i < auth->ndkim && chk->ndkim < DMARC_MAX_DKIM; i++)
            if (auth->dkim_domains[i] != NULL)
                chk->dkim[chk->ndkim++] = xstrdup(auth->dkim_domains[i]);
    }
    walk_plan(&chk->aw, chk->author);
    chk->phase = PH_AUTHOR;
    advance(chk);
    chk->in_start = 0;
    return chk;
}

void dmarc_check_cancel(struct dmarc_check *chk)
{
    if (chk == NULL)
        return;
    if (chk->q != NULL)
        mailauth_dns_cancel(chk->env.dns, chk->q);
    for (int i = 0; i < 3; i++)
        if (chk->ex[i].q != NULL)
            mailauth_dns_cancel(chk->env.dns, chk->ex[i].q);
    if (chk->ev != NULL)
        event_free(chk->ev);
    walk_free(&chk->aw);
    walk_free(&chk->iw);
    dmarc_outcome_free(chk->out);
    free(chk->spf_domain);
    for (size_t i = 0; i < chk->ndkim; i++)
        free(chk->dkim[i]);
    free(chk);
}

void dmarc_outcome_authres(const struct dmarc_outcome *o, struct dmarc_authres *out)
{
    memset(out, 0, sizeof *out);
    out->method.method = "dmarc";
    out->method.result = dmarc_result_name(o->result);
    if (o->requested != DMARC_POLICY_UNSET) {
        snprintf(out->comment, sizeof out->comment, "p=%s dis=%s%s", dmarc_policy_name(o->requested),
                 dmarc_policy_name(o->applied), o->testing ? " t=y" : "");
        out->method.comment = out->comment;
    }
    out->props[0] = (struct authres_prop){"header", "from", o->author_domain};
    out->props[1] = (struct authres_prop){"policy", "dmarc", dmarc_policy_name(o->applied)};
    out->method.props = out->props;
    out->method.nprops = o->result == DMARC_RESULT_PASS || o->result == DMARC_RESULT_FAIL ? 2 : 1;
}

void dmarc_outcome_free(struct dmarc_outcome *o)
{
    if (o == NULL)
        return;
    free(o->reason);
    free(o->author_domain);
    free(o->policy_domain);
    free(o->org_domain);
    dmarc_record_free(&o->record);
    free(o->spf_aligned_domain);
    free(o->dkim_aligned_domain);
    free(o);
}
