/* smtpd_policy: Postfix's SMTP access restriction lists (see smtpd_policy.h). */
#include "smtpd/smtpd_policy.h"
#include "smtpd/smtpd_policy_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "maps/map.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/strbuf.h"

static const struct rdef rdefs[] = {
    {"permit", RK_PERMIT, ARG_NONE},
    {"reject", RK_REJECT, ARG_NONE},
    {"defer", RK_DEFER, ARG_NONE},
    {"permit_mynetworks", RK_PERMIT_MYNETWORKS, ARG_NONE},
    {"permit_sasl_authenticated", RK_PERMIT_SASL, ARG_NONE},
    {"permit_auth_destination", RK_PERMIT_AUTH_DEST, ARG_NONE},
    {"reject_unauth_destination", RK_REJECT_UNAUTH_DEST, ARG_NONE},
    {"defer_unauth_destination", RK_DEFER_UNAUTH_DEST, ARG_NONE},
    {"reject_unlisted_recipient", RK_REJECT_UNLISTED_RCPT, ARG_NONE},
    {"check_recipient_maps", RK_REJECT_UNLISTED_RCPT, ARG_NONE},
    {"reject_unlisted_sender", RK_REJECT_UNLISTED_SENDER, ARG_NONE},
    {"reject_non_fqdn_helo_hostname", RK_REJECT_NON_FQDN_HELO, ARG_NONE},
    {"reject_non_fqdn_hostname", RK_REJECT_NON_FQDN_HELO, ARG_NONE},
    {"reject_invalid_helo_hostname", RK_REJECT_INVALID_HELO, ARG_NONE},
    {"reject_invalid_hostname", RK_REJECT_INVALID_HELO, ARG_NONE},
    {"reject_non_fqdn_sender", RK_REJECT_NON_FQDN_SENDER, ARG_NONE},
    {"reject_non_fqdn_recipient", RK_REJECT_NON_FQDN_RCPT, ARG_NONE},
    {"check_client_access", RK_CHECK_CLIENT, ARG_TABLE},
    {"check_helo_access", RK_CHECK_HELO, ARG_TABLE},
    {"check_sender_access", RK_CHECK_SENDER, ARG_TABLE},
    {"check_recipient_access", RK_CHECK_RCPT, ARG_TABLE},
    {"reject_sender_login_mismatch", RK_SENDER_LOGIN_MISMATCH, ARG_NONE},
    {"reject_authenticated_sender_login_mismatch", RK_AUTH_SENDER_LOGIN_MISMATCH, ARG_NONE},
    {"reject_known_sender_login_mismatch", RK_AUTH_SENDER_LOGIN_MISMATCH, ARG_NONE},
    {"reject_unauthenticated_sender_login_mismatch", RK_UNAUTH_SENDER_LOGIN_MISMATCH, ARG_NONE},
    {"reject_rbl_client", RK_RBL_CLIENT, ARG_WORD},
    {"reject_rhsbl_client", RK_IGNORED, ARG_WORD},
    {"reject_rhsbl_reverse_client", RK_IGNORED, ARG_WORD},
    {"reject_rhsbl_helo", RK_IGNORED, ARG_WORD},
    {"reject_rhsbl_sender", RK_IGNORED, ARG_WORD},
    {"reject_rhsbl_recipient", RK_IGNORED, ARG_WORD},
    {"permit_dnswl_client", RK_IGNORED, ARG_WORD},
    {"permit_rhswl_client", RK_IGNORED, ARG_WORD},
    {"check_policy_service", RK_IGNORED, ARG_WORD},
    {"reject_unknown_sender_domain", RK_UNKNOWN_SENDER_DOMAIN, ARG_NONE},
    {"reject_unknown_recipient_domain", RK_IGNORED, ARG_NONE},
    {"reject_unknown_client_hostname", RK_IGNORED, ARG_NONE},
    {"reject_unknown_client", RK_IGNORED, ARG_NONE},
    {"reject_unknown_reverse_client_hostname", RK_IGNORED, ARG_NONE},
    {"reject_unknown_helo_hostname", RK_IGNORED, ARG_NONE},
    {"reject_unknown_hostname", RK_IGNORED, ARG_NONE},
    {"reject_unauth_pipelining", RK_IGNORED, ARG_NONE},
    {"reject_spf_fail", RK_REJECT_SPF_FAIL, ARG_NONE},
    {"defer_spf_temperror", RK_DEFER_SPF_TEMPERROR, ARG_NONE},
    {"reject_dmarc_policy", RK_REJECT_DMARC_POLICY, ARG_NONE},
};

const char *const policy_list_param[L_COUNT] = {
    "smtpd_client_restrictions", "smtpd_helo_restrictions", "smtpd_sender_restrictions",
    "smtpd_relay_restrictions", "smtpd_recipient_restrictions", "smtpd_end_of_data_restrictions"};

static const char POSTFIX_DEFAULT_RELAY[] =
    "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination";


/* ---------- parsing ---------- */

static int is_list_sep(char ch)
{
    return ch == ',' || isspace((unsigned char)ch);
}

/* The next word of a list, keeping "inline:{ a=b, c }" whole. Returns 1 with
 * a malloc'd *word, 0 at the end, -1 with *why on unbalanced braces. Config
 * text, but still iterative: the depth is a counter, not recursion. */
static int next_word(const char **pos, char **word, const char **why)
{
    const char *s = *pos;
    while (*s && is_list_sep(*s))
        s++;
    if (*s == 0) {
        *pos = s;
        return 0;
    }
    const char *start = s;
    size_t depth = 0;
    for (; *s; s++) {
        if (*s == '{') {
            depth++;
        } else if (*s == '}') {
            if (depth == 0) {
                *why = "unexpected '}'";
                return -1;
            }
            depth--;
        } else if (depth == 0 && is_list_sep(*s)) {
            break;
        }
    }
    if (depth != 0) {
        *why = "missing '}'";
        return -1;
    }
    *word = xstrndup(start, (size_t)(s - start));
    *pos = s;
    return 1;
}

static const struct rdef *find_rdef(const char *name)
{
    for (size_t i = 0; i < sizeof rdefs / sizeof rdefs[0]; i++)
        if (strcasecmp(rdefs[i].name, name) == 0)
            return &rdefs[i];
    return NULL;
}

void smtpd_policy_rlist_free(struct rlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        if (l->r[i].map)
            map_close(l->r[i].map);
        free(l->r[i].word);
    }
    free(l->r);
    l->r = NULL;
    l->n = l->cap = 0;
}

static int ends_list(enum rkind k)
{
    return k == RK_PERMIT || k == RK_REJECT || k == RK_DEFER;
}

/* Parses one list. "nested" is a restriction list found as an access-table
 * value: it may not open tables (that would happen per lookup) nor name
 * restrictions we ignore (the admin would never learn they do nothing).
 * Returns 0, or -1 with *err malloc'd. */
int smtpd_policy_parse_list(struct rlist *l, const char *param, const char *text, int nested,
                      char **err)
{
    const char *pos = text ? text : "";
    const char *why = NULL;
    const char *final_name = NULL;
    int warned_after_final = 0;
    char *word = NULL;
    int rc;
    while ((rc = next_word(&pos, &word, &why)) > 0) {
        const struct rdef *d = find_rdef(word);
        /* (nor DNS-based ones: their answers are fetched ahead for the
         * configured lists only) */
        if (d == NULL || (nested && (d->arg == ARG_TABLE || d->kind == RK_IGNORED || d->kind == RK_RBL_CLIENT ||
                                     d->kind == RK_UNKNOWN_SENDER_DOMAIN || d->kind == RK_REJECT_SPF_FAIL ||
                                     d->kind == RK_DEFER_SPF_TEMPERROR || d->kind == RK_REJECT_DMARC_POLICY))) {
            *err = xasprintf("%s: unknown restriction %s", param, word);
            free(word);
            return -1;
        }
        free(word);
        word = NULL;
        struct restriction x = {d, NULL, NULL};
        if (d->arg != ARG_NONE) {
            rc = next_word(&pos, &word, &why);
            if (rc < 0)
                break;
            if (rc == 0) {
                *err = xasprintf("%s: %s needs %s", param, d->name,
                                 d->arg == ARG_TABLE ? "a type:name table" : "an argument");
                return -1;
            }
            if (d->arg == ARG_TABLE) {
                char *merr = NULL;
                x.map = map_open(word, 0, &merr);
                if (x.map == NULL) {
                    *err = xasprintf("%s: %s %s: %s", param, d->name, word,
                                     merr ? merr : "cannot open table");
                    free(merr);
                    free(word);
                    return -1;
                }
            }
            if (d->arg == ARG_WORD)
                x.word = word;
            else
                free(word);
            word = NULL;
        }
        if (d->kind == RK_IGNORED)
            log_warn("%s: %s is not supported yet and is ignored", param, d->name);
        if (final_name != NULL && !warned_after_final) {
            log_warn("%s: restriction `%s' after `%s' is ignored", param, d->name, final_name);
            warned_after_final = 1;
        }
        if (final_name == NULL && ends_list(d->kind))
            final_name = d->name;
        l->r = xgrow(l->r, &l->cap, l->n + 1, sizeof *l->r);
        l->r[l->n++] = x;
    }
    if (rc < 0) {
        *err = xasprintf("%s: %s in \"%s\"", param, why, text);
        return -1;
    }
    return 0;
}

/* Postfix's guard against open relays: a list that rejects by default must
 * come before any permit, or no mail to other domains could be refused. */
static int has_required(const struct rlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        switch (l->r[i].def->kind) {
        case RK_PERMIT:
            return 0;
        case RK_REJECT:
        case RK_DEFER:
        case RK_REJECT_UNAUTH_DEST:
        case RK_DEFER_UNAUTH_DEST:
            return 1;
        default:
            break;
        }
    }
    return 0;
}

struct smtpd_policy_lists *smtpd_policy_parse(const char *client, const char *helo, const char *sender,
                                  const char *relay, const char *recipient, const char *end_of_data,
                                  char **err)
{
    const char *text[L_COUNT] = {client, helo, sender, relay ? relay : POSTFIX_DEFAULT_RELAY,
                                 recipient, end_of_data};
    struct smtpd_policy_lists *p = xcalloc(1, sizeof *p);
    char *why = NULL;
    for (int i = 0; i < L_COUNT; i++) {
        if (smtpd_policy_parse_list(&p->l[i], policy_list_param[i], text[i], 0, &why) < 0)
            goto fail;
    }
    /* DMARC is known only at the end of the data, and there is no single
     * recipient there to decide about */
    for (int i = 0; i < L_COUNT; i++)
        for (size_t j = 0; j < p->l[i].n; j++) {
            enum rkind k = p->l[i].r[j].def->kind;
            int recipient_based = k == RK_REJECT_UNAUTH_DEST || k == RK_DEFER_UNAUTH_DEST ||
                                  k == RK_PERMIT_AUTH_DEST || k == RK_REJECT_UNLISTED_RCPT || k == RK_CHECK_RCPT ||
                                  k == RK_REJECT_NON_FQDN_RCPT;
            if ((k == RK_REJECT_DMARC_POLICY && i != L_EOD) || (i == L_EOD && recipient_based)) {
                why = xasprintf("%s: %s %s", policy_list_param[i], p->l[i].r[j].def->name,
                                i == L_EOD ? "needs a recipient: it belongs in the RCPT lists"
                                           : "belongs in smtpd_end_of_data_restrictions");
                goto fail;
            }
        }
    const char *zones[POLICY_MAX_RBL_ZONES + 1];
    if (smtpd_policy_rbl_zones(p, zones, POLICY_MAX_RBL_ZONES + 1) > POLICY_MAX_RBL_ZONES) {
        why = xasprintf("more than %d reject_rbl_client zones", POLICY_MAX_RBL_ZONES);
        goto fail;
    }
    if (!has_required(&p->l[L_RELAY]) && !has_required(&p->l[L_RCPT])) {
        why = xasprintf("in parameter %s or %s, specify at least one working instance of: "
                        "reject_unauth_destination, defer_unauth_destination, reject, defer",
                        policy_list_param[L_RELAY], policy_list_param[L_RCPT]);
        goto fail;
    }
    return p;
fail:
    if (err)
        *err = why;
    else
        free(why);
    smtpd_policy_free(p);
    return NULL;
}

void smtpd_policy_free(struct smtpd_policy_lists *p)
{
    if (p == NULL)
        return;
    for (int i = 0; i < L_COUNT; i++)
        smtpd_policy_rlist_free(&p->l[i]);
    free(p);
}

size_t smtpd_policy_rbl_zones(const struct smtpd_policy_lists *p, const char **zones, size_t max)
{
    size_t n = 0;
    for (int i = 0; i < L_COUNT; i++)
        for (size_t j = 0; j < p->l[i].n; j++) {
            const struct restriction *x = &p->l[i].r[j];
            if (x->def->kind != RK_RBL_CLIENT)
                continue;
            int dup = 0;
            for (size_t k = 0; k < n && !dup; k++)
                dup = strcasecmp(zones[k], x->word) == 0;
            if (!dup && n < max)
                zones[n++] = x->word;
        }
    return n;
}

int smtpd_policy_checks_spf(const struct smtpd_policy_lists *p)
{
    for (int i = 0; i < L_RCPT_LISTS; i++)
        for (size_t j = 0; j < p->l[i].n; j++)
            if (p->l[i].r[j].def->kind == RK_REJECT_SPF_FAIL || p->l[i].r[j].def->kind == RK_DEFER_SPF_TEMPERROR)
                return 1;
    return 0;
}

int smtpd_policy_has_end_of_data(const struct smtpd_policy_lists *p)
{
    return p->l[L_EOD].n > 0;
}

int smtpd_policy_checks_sender_domain(const struct smtpd_policy_lists *p)
{
    for (int i = 0; i < L_COUNT; i++)
        for (size_t j = 0; j < p->l[i].n; j++)
            if (p->l[i].r[j].def->kind == RK_UNKNOWN_SENDER_DOMAIN)
                return 1;
    return 0;
}

