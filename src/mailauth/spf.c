/* spf: check_host() of RFC 7208, asynchronous (see spf.h).
 *
 * How it runs: a check is a stack of frames, one per SPF record being
 * evaluated (the top one, then one per include; a redirect replaces its
 * frame, since its result is the frame's result). run() walks the current
 * frame's terms until a term needs DNS; it then starts exactly one lookup
 * and returns. The answer's callback finishes that term and calls run()
 * again. So at any time at most one lookup is pending (c->q), which is all
 * spf_check_cancel has to stop. Lookups are sequential on purpose: a record
 * is evaluated left to right and stops at the first match (§4.6.2), so
 * parallel lookups would mostly be wasted, and one pending query keeps
 * cancellation trivial. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mailauth/spf_internal.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

const char *spf_result_name(enum spf_result r)
{
    switch (r) {
    case SPF_NONE: return "none";
    case SPF_NEUTRAL: return "neutral";
    case SPF_PASS: return "pass";
    case SPF_FAIL: return "fail";
    case SPF_SOFTFAIL: return "softfail";
    case SPF_TEMPERROR: return "temperror";
    case SPF_PERMERROR: return "permerror";
    }
    return "permerror";
}

/* ---- small helpers ---- */

static struct spf_frame *top(struct spf_check *c)
{
    return &c->frames[c->depth - 1];
}

static void conclude(struct spf_check *c, enum spf_result r, const struct spf_term *t, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void conclude(struct spf_check *c, enum spf_result r, const struct spf_term *t, const char *fmt, ...)
{
    if (c->done)
        return;
    c->done = 1;
    c->result = r;
    if (t != NULL)
        c->mechanism = xstrdup(t->text);
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        char *p = xvasprintf(fmt, ap);
        va_end(ap);
        /* names and record text from DNS end up here: printable, bounded */
        if (strlen(p) > 200)
            memcpy(p + 197, "...", 4);
        for (char *q = p; *q; q++)
            if ((unsigned char)*q < 0x20 || (unsigned char)*q > 0x7e)
                *q = '?';
        c->problem = p;
    }
}

static void macro_ctx(struct spf_check *c, const char *domain, struct spf_macro_ctx *m)
{
    memset(m, 0, sizeof *m);
    m->sender = c->identity;
    m->local = c->local;
    m->sender_domain = c->sender_domain;
    m->domain = domain;
    m->helo = c->helo;
    m->receiver = c->receiver;
    m->family = c->family;
    memcpy(m->ip, c->ip, 16);
    m->now = c->now;
    /* %{p}: the target domain itself if validated, else a subdomain of it,
     * else any validated name (§7.3) */
    size_t dl = strlen(domain);
    for (int pass = 0; pass < 3 && m->validated == NULL; pass++)
        for (size_t i = 0; i < c->nvalidated && m->validated == NULL; i++) {
            const char *v = c->validated[i];
            size_t vl = strlen(v);
            if (pass == 2 || (pass == 0 && strcasecmp(v, domain) == 0) ||
                (pass == 1 && vl > dl && v[vl - dl - 1] == '.' && strcasecmp(v + vl - dl, domain) == 0))
                m->validated = v;
        }
}

static void strip_dot(char *s)
{
    size_t n = strlen(s);
    if (n > 0 && s[n - 1] == '.')
        s[n - 1] = '\0';
}

static void on_answer(void *arg, struct dns_rrset *rs);

void spf_ask(struct spf_check *c, const char *name, int rrtype, enum spf_wait w)
{
    c->wait = w;
    c->q = mailauth_dns_lookup(c->dns, name, rrtype, on_answer, c);
}

int spf_addr_type(const struct spf_check *c)
{
    return c->family == AF_INET6 ? DNS_TYPE_AAAA : DNS_TYPE_A;
}

/* ---- expanding domain-specs ---- */

/* The target-name of spec (or the frame's domain when spec is NULL).
 * 0: *out is set (NULL when the name is not a usable domain name);
 * 1: a PTR lookup for %{p} was started first, come back later;
 * -1: a macro error, concluded as permerror. */
static int target_name(struct spf_check *c, const char *spec, const struct spf_term *t, char **out)
{
    *out = NULL;
    struct spf_frame *f = top(c);
    if (spec == NULL) {
        *out = xstrdup(f->domain);
        return 0;
    }
    if (spf_macro_uses_p(spec) && c->ptr_state != PTR_DONE) {
        spf_ptr_start(c, 0);
        return 1;
    }
    struct spf_macro_ctx m;
    macro_ctx(c, f->domain, &m);
    char *s, *err;
    if (spf_macro_expand(spec, &m, SPF_MACRO_DOMAIN, &s, &err) != 0) {
        conclude(c, SPF_PERMERROR, t, "macro error in %s: %s", f->domain, err);
        free(err);
        return -1;
    }
    if (!spf_domain_ok(s)) {
        free(s);
        return 0;
    }
    strip_dot(s);
    *out = s;
    return 0;
}

/* ---- terms ---- */

enum step { STEP_MATCH, STEP_NOMATCH, STEP_WAIT, STEP_END };

/* Counts the current term against the limit of §4.6.4 (once, even when
 * it is resumed after a %{p} lookup). 0, or -1 concluded as permerror. */
static int count_term(struct spf_check *c, const struct spf_term *t)
{
    if (c->term_counted)
        return 0;
    c->term_counted = 1;
    if (++c->dns_terms > SPF_MAX_DNS_TERMS) {
        conclude(c, SPF_PERMERROR, t, "more than %d DNS-querying terms", SPF_MAX_DNS_TERMS);
        return -1;
    }
    return 0;
}

/* A void lookup (§4.6.4): -1 once there are too many (concluded). */
static int count_void(struct spf_check *c, const struct spf_term *t)
{
    if (++c->voids > SPF_MAX_VOID_LOOKUPS) {
        conclude(c, SPF_PERMERROR, t, "more than %d void DNS lookups", SPF_MAX_VOID_LOOKUPS);
        return -1;
    }
    return 0;
}

static enum step eval_term(struct spf_check *c, const struct spf_term *t)
{
    switch (t->mech) {
    case SPF_M_ALL: return STEP_MATCH;
    case SPF_M_IP4: return c->family == AF_INET && spf_in_prefix(c, t->net, t->cidr4) ? STEP_MATCH : STEP_NOMATCH;
    case SPF_M_IP6: return c->family == AF_INET6 && spf_in_prefix(c, t->net, t->cidr6) ? STEP_MATCH : STEP_NOMATCH;
    default: break;
    }
    if (count_term(c, t) != 0)
        return STEP_END;
    if (t->mech == SPF_M_PTR && c->ptr_state != PTR_DONE) {
        spf_ptr_start(c, 1);
        return STEP_WAIT;
    }
    char *name;
    int rc = target_name(c, t->spec, t, &name);
    if (rc != 0)
        return rc > 0 ? STEP_WAIT : STEP_END;
    if (name == NULL) {
        /* A target that is no domain name (§4.8 leaves it undefined): an
         * include of it finds no record, so a permerror (§5.2); the other
         * mechanisms do not match, as for a name that does not exist. */
        if (t->mech == SPF_M_INCLUDE) {
            conclude(c, SPF_PERMERROR, t, "include of an invalid domain name");
            return STEP_END;
        }
        return STEP_NOMATCH;
    }
    enum step s = STEP_WAIT;
    switch (t->mech) {
    case SPF_M_INCLUDE:
        if (c->depth >= SPF_MAX_DEPTH) { /* unreachable with the term limit */
            conclude(c, SPF_PERMERROR, t, "includes nested too deep");
            s = STEP_END;
            break;
        }
        c->frames[c->depth++] = (struct spf_frame){.domain = name};
        name = NULL;
        c->term_counted = 0;
        spf_ask(c, top(c)->domain, DNS_TYPE_TXT, W_TXT);
        break;
    case SPF_M_A: spf_ask(c, name, spf_addr_type(c), W_A); break;
    case SPF_M_EXISTS: spf_ask(c, name, DNS_TYPE_A, W_EXISTS); break;
    case SPF_M_MX: spf_ask(c, name, DNS_TYPE_MX, W_MX); break;
    case SPF_M_PTR:
        if (c->voids > SPF_MAX_VOID_LOOKUPS) { /* the PTR answer was one too many */
            conclude(c, SPF_PERMERROR, t, "more than %d void DNS lookups", SPF_MAX_VOID_LOOKUPS);
            s = STEP_END;
        } else {
            s = spf_validated_within(c, name) ? STEP_MATCH : STEP_NOMATCH;
        }
        break;
    default: s = STEP_NOMATCH; break;
    }
    free(name);
    return s;
}

/* The answer to an address lookup of a term (a, mx's exchangers): 1 match,
 * 0 no match, -1 concluded (temperror). void_counts: an a term's own. */
static int addr_match(struct spf_check *c, const struct spf_term *t, struct dns_rrset *rs, int void_counts)
{
    if (rs->status == DNS_TEMPFAIL) {
        conclude(c, SPF_TEMPERROR, t, "DNS failure looking up %s: %s", rs->name, rs->why ? rs->why : "");
        return -1;
    }
    if (rs->status != DNS_OK || rs->nrrs == 0) {
        if (void_counts && rs->status != DNS_INVALID && count_void(c, t) != 0)
            return -1;
        return 0;
    }
    size_t want = c->family == AF_INET6 ? 16 : 4;
    int bits = c->family == AF_INET6 ? t->cidr6 : t->cidr4;
    for (size_t i = 0; i < rs->nrrs; i++)
        if (rs->rrs[i].len == want && spf_in_prefix(c, rs->rrs[i].data, bits))
            return 1;
    return 0;
}

/* ---- the answers ---- */

static void frame_txt_answer(struct spf_check *c, struct dns_rrset *rs);
static void run(struct spf_check *c);
static void term_done(struct spf_check *c, enum step s);

static void mx_next(struct spf_check *c)
{
    while (c->iname < c->nnames && c->names[c->iname][0] == '\0')
        c->iname++; /* a null MX (RFC 7505) names no host */
    if (c->iname < c->nnames) {
        spf_ask(c, c->names[c->iname], spf_addr_type(c), W_MXADDR);
        return;
    }
    spf_free_names(&c->names, &c->nnames);
    c->wait = W_NONE;
    term_done(c, STEP_NOMATCH);
}

static const struct spf_term *cur_term(struct spf_check *c)
{
    struct spf_frame *f = top(c);
    return &f->rec->terms[f->term];
}

static void mx_answer(struct spf_check *c, struct dns_rrset *rs)
{
    const struct spf_term *t = cur_term(c);
    if (rs->status == DNS_TEMPFAIL) {
        conclude(c, SPF_TEMPERROR, t, "DNS failure looking up MX of %s", rs->name);
        return;
    }
    if (rs->status != DNS_OK || rs->nrrs == 0) {
        if (rs->status != DNS_INVALID && count_void(c, t) != 0)
            return;
        term_done(c, STEP_NOMATCH);
        return;
    }
    if (rs->nrrs > SPF_MAX_MX_NAMES) {
        conclude(c, SPF_PERMERROR, t, "%s has more than %d MX records", rs->name, SPF_MAX_MX_NAMES);
        return;
    }
    for (size_t i = 0; i < rs->nrrs; i++) {
        char *n = rs->rrs[i].len > 2 ? spf_wire_name(rs->rrs[i].data + 2, rs->rrs[i].len - 2) : NULL;
        if (n == NULL)
            continue;
        c->names = xrealloc(c->names, (c->nnames + 1) * sizeof *c->names);
        c->names[c->nnames++] = n;
    }
    c->iname = 0;
    mx_next(c);
}

static void on_answer(void *arg, struct dns_rrset *rs)
{
    struct spf_check *c = arg;
    enum spf_wait w = c->wait;
    c->q = NULL;
    c->wait = W_NONE;
    switch (w) {
    case W_DEFER: break; /* the result was decided at the start */
    case W_TXT: frame_txt_answer(c, rs); break;
    case W_A: {
        int m = addr_match(c, cur_term(c), rs, 1);
        if (m >= 0)
            term_done(c, m ? STEP_MATCH : STEP_NOMATCH);
        break;
    }
    case W_EXISTS: {
        const struct spf_term *t = cur_term(c);
        if (rs->status == DNS_TEMPFAIL) {
            conclude(c, SPF_TEMPERROR, t, "DNS failure looking up %s", rs->name);
        } else if (rs->status == DNS_OK && rs->nrrs > 0) {
            term_done(c, STEP_MATCH);
        } else if (rs->status == DNS_INVALID || count_void(c, t) == 0) {
            term_done(c, STEP_NOMATCH);
        }
        break;
    }
    case W_MX: mx_answer(c, rs); break;
    case W_MXADDR: {
        int m = addr_match(c, cur_term(c), rs, 0);
        if (m > 0) {
            spf_free_names(&c->names, &c->nnames);
            term_done(c, STEP_MATCH);
        } else if (m == 0) {
            c->iname++;
            mx_next(c);
        }
        break;
    }
    case W_PTR: spf_ptr_answer(c, rs); break;
    case W_PTRADDR: spf_ptr_addr_answer(c, rs); break;
    case W_EXP:
        if (rs->status == DNS_OK) {
            char *text;
            if (spf_txt_records(rs, 0, &text) == 1)
                c->exp_text = text;
            else
                free(text);
        }
        c->exp_state = 2;
        break;
    case W_NONE: break;
    }
    dns_rrset_free(rs);
    if (c->q == NULL)
        run(c);
}

/* A frame's record arrived (§4.4, §4.5). */
static void frame_txt_answer(struct spf_check *c, struct dns_rrset *rs)
{
    struct spf_frame *f = top(c);
    if (rs->status == DNS_TEMPFAIL) {
        conclude(c, SPF_TEMPERROR, NULL, "DNS failure looking up TXT of %s", f->domain);
        return;
    }
    char *text = NULL;
    size_t n = rs->status == DNS_OK ? spf_txt_records(rs, 1, &text) : 0;
    if (n > 1) {
        conclude(c, SPF_PERMERROR, NULL, "%s has %zu SPF records", f->domain, n);
        return;
    }
    if (n == 0) {
        /* none: at the top the result; under include or redirect a
         * permerror (§5.2, §6.1) */
        if (c->depth > 1 || f->redirected)
            conclude(c, SPF_PERMERROR, NULL, "%s has no SPF record", f->domain);
        else
            conclude(c, SPF_NONE, NULL, NULL);
        return;
    }
    char *err;
    if (spf_record_parse(text, &f->rec, &err) != 0) {
        conclude(c, SPF_PERMERROR, NULL, "SPF record of %s: %s", f->domain, err);
        free(err);
    }
    free(text);
    f->term = 0;
    c->term_counted = 0;
}

/* The current frame's result (§4.6.2, §4.7, §5.2): hands it to the
 * including frame, or concludes. */
static void frame_done(struct spf_check *c, enum spf_result r, const struct spf_term *t)
{
    while (c->depth > 1) {
        struct spf_frame *f = top(c);
        spf_record_free(f->rec);
        free(f->domain);
        c->depth--;
        struct spf_frame *parent = top(c);
        const struct spf_term *inc = &parent->rec->terms[parent->term];
        if (r != SPF_PASS) {
            /* fail, softfail, neutral: not a match; errors were concluded
             * where they happened */
            parent->term++;
            c->term_counted = 0;
            return;
        }
        r = inc->qual;
        t = inc;
    }
    conclude(c, r, t, NULL);
}

static void term_done(struct spf_check *c, enum step s)
{
    if (c->done)
        return;
    struct spf_frame *f = top(c);
    if (s == STEP_MATCH) {
        const struct spf_term *t = &f->rec->terms[f->term];
        frame_done(c, t->qual, t);
    } else if (s == STEP_NOMATCH) {
        f->term++;
        c->term_counted = 0;
    }
}

/* ---- the explanation (§6.2) ---- */

/* 0 done (c->explanation set), 1 waiting for DNS. */
static int explain(struct spf_check *c)
{
    struct spf_frame *f = top(c);
    struct spf_macro_ctx m;
    if (c->exp_state == 0 && f->rec != NULL && f->rec->exp != NULL) {
        if (spf_macro_uses_p(f->rec->exp) && c->ptr_state != PTR_DONE) {
            spf_ptr_start(c, 0);
            return 1;
        }
        macro_ctx(c, f->domain, &m);
        char *name, *err;
        if (spf_macro_expand(f->rec->exp, &m, SPF_MACRO_DOMAIN, &name, &err) == 0 && spf_domain_ok(name)) {
            c->exp_state = 1;
            spf_ask(c, name, DNS_TYPE_TXT, W_EXP);
            free(name);
            return 1;
        }
        free(name);
        free(err);
    }
    c->exp_state = 2;
    const char *text = c->exp_text ? c->exp_text : c->default_exp;
    if (spf_macro_uses_p(text) && c->ptr_state != PTR_DONE) {
        spf_ptr_start(c, 0);
        return 1;
    }
    macro_ctx(c, f->domain, &m);
    char *out, *err;
    if (spf_macro_expand(text, &m, SPF_MACRO_EXPLAIN, &out, &err) != 0) {
        free(err);
        if (text == c->default_exp || spf_macro_expand(c->default_exp, &m, SPF_MACRO_EXPLAIN, &out, &err) != 0) {
            free(err);
            out = xstrdup("");
        }
    }
    if (strlen(out) > SPF_EXPLANATION_MAX)
        out[SPF_EXPLANATION_MAX] = '\0';
    c->explanation = out;
    return 0;
}

/* ---- the loop ---- */

static void check_free(struct spf_check *c)
{
    for (int i = 0; i < c->depth; i++) {
        spf_record_free(c->frames[i].rec);
        free(c->frames[i].domain);
    }
    spf_free_names(&c->names, &c->nnames);
    spf_free_names(&c->validated, &c->nvalidated);
    free(c->identity);
    free(c->local);
    free(c->sender_domain);
    free(c->helo);
    free(c->receiver);
    free(c->default_exp);
    free(c->problem);
    free(c->mechanism);
    free(c->explanation);
    free(c->exp_text);
    free(c);
}

static void deliver(struct spf_check *c)
{
    struct spf_outcome out = {
        .result = c->result,
        .domain = c->sender_domain,
        .identity = c->identity,
        .explanation = c->result == SPF_FAIL ? c->explanation : NULL,
        .problem = c->result == SPF_TEMPERROR || c->result == SPF_PERMERROR ? c->problem : NULL,
        .mechanism = c->mechanism,
    };
    if ((out.result == SPF_TEMPERROR || out.result == SPF_PERMERROR) && out.problem == NULL)
        out.problem = "unknown error";
    c->delivering = 1;
    c->cb(c->arg, &out);
    check_free(c);
}

static void run(struct spf_check *c)
{
    while (c->q == NULL) {
        if (c->done) {
            if (c->result == SPF_FAIL && c->explanation == NULL && explain(c) != 0)
                return;
            deliver(c);
            return;
        }
        struct spf_frame *f = top(c);
        if (f->rec == NULL) {
            spf_ask(c, f->domain, DNS_TYPE_TXT, W_TXT);
            return;
        }
        if (f->term < f->rec->nterms) {
            enum step s = eval_term(c, &f->rec->terms[f->term]);
            if (s == STEP_MATCH || s == STEP_NOMATCH)
                term_done(c, s);
            continue;
        }
        if (f->rec->redirect == NULL || f->rec->has_all) {
            frame_done(c, SPF_NEUTRAL, NULL);
            continue;
        }
        /* §6.1: the redirect's record is this frame's from now on */
        static const struct spf_term redirect_term = {.text = "redirect"};
        if (count_term(c, &redirect_term) != 0)
            continue;
        char *name;
        int rc = target_name(c, f->rec->redirect, &redirect_term, &name);
        if (rc != 0)
            continue;
        if (name == NULL) {
            conclude(c, SPF_PERMERROR, NULL, "redirect to an invalid domain name");
            continue;
        }
        spf_record_free(f->rec);
        free(f->domain);
        *f = (struct spf_frame){.domain = name, .redirected = 1};
        c->term_counted = 0;
    }
}

/* ---- start and cancel ---- */

/* The initial checks of §4.3 on the identity's domain: a multi-label
 * name of letters, digits, hyphens and underscores. */
static int identity_domain_ok(const char *d)
{
    if (!spf_domain_ok(d))
        return 0;
    const char *dot = strchr(d, '.');
    if (dot == NULL || dot[1] == '\0')
        return 0;
    for (const char *p = d; *p; p++)
        if (!str_is_alnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
            return 0;
    return 1;
}

struct spf_check *spf_check_start(const struct mailauth_dns *dns, const struct spf_request *req, spf_cb cb,
                                  void *arg)
{
    struct spf_check *c = xcalloc(1, sizeof *c);
    c->dns = dns;
    c->cb = cb;
    c->arg = arg;
    c->now = time(NULL);
    c->helo = xstrdup(req->helo ? req->helo : "");
    c->receiver = xstrdup(req->receiver && *req->receiver ? req->receiver : "unknown");
    c->default_exp = xstrdup(req->default_explanation ? req->default_explanation : SPF_DEFAULT_EXPLANATION);
    c->family = AF_INET;
    int have_ip = 0;
    if (req->client != NULL && req->client->sa_family == AF_INET) {
        memcpy(c->ip, &((const struct sockaddr_in *)(const void *)req->client)->sin_addr, 4);
        have_ip = 1;
    } else if (req->client != NULL && req->client->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)(const void *)req->client)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            memcpy(c->ip, a6->s6_addr + 12, 4); /* §5: it is an IPv4 client */
        } else {
            memcpy(c->ip, a6->s6_addr, 16);
            c->family = AF_INET6;
        }
        have_ip = 1;
    }
    const char *sender = req->sender ? req->sender : "";
    const char *at = strrchr(sender, '@');
    if (req->helo_identity || *sender == '\0') {
        c->local = xstrdup("postmaster");
        c->sender_domain = xstrdup(c->helo);
    } else if (at == NULL) {
        c->local = xstrdup("postmaster");
        c->sender_domain = xstrdup(sender);
    } else {
        c->local = at == sender ? xstrdup("postmaster") : xstrndup(sender, (size_t)(at - sender));
        c->sender_domain = xstrdup(at + 1);
    }
    c->identity = xasprintf("%s@%s", c->local, c->sender_domain);
    char *domain = xstrdup(c->sender_domain);
    strip_dot(domain);
    if (!have_ip) {
        conclude(c, SPF_PERMERROR, NULL, "no client address to check");
    } else if (!identity_domain_ok(c->sender_domain)) {
        conclude(c, SPF_NONE, NULL, NULL); /* §4.3 */
    }
    if (c->done) {
        free(domain);
        /* record type 0: refused by the DNS layer without a query, so the
         * answer (ignored) only carries the callback to later */
        spf_ask(c, "invalid", 0, W_DEFER);
        return c;
    }
    c->frames[0].domain = domain;
    c->depth = 1;
    spf_ask(c, domain, DNS_TYPE_TXT, W_TXT);
    return c;
}

void spf_check_cancel(struct spf_check *c)
{
    if (c == NULL || c->delivering)
        return; /* from inside the callback: the check ends right after it */
    if (c->q != NULL)
        mailauth_dns_cancel(c->dns, c->q);
    c->q = NULL;
    check_free(c);
}
