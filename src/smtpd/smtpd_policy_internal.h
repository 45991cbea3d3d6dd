/* smtpd_policy_internal: what the two halves of smtpd_policy share, and
 * nobody else may use: smtpd_policy.c parses the lists (and owns the
 * restriction table), smtpd_policy_eval.c evaluates them at RCPT. */
#ifndef TERN_SMTPD_SMTPD_POLICY_INTERNAL_H
#define TERN_SMTPD_SMTPD_POLICY_INTERNAL_H

#include <stddef.h>

#include "smtpd/smtpd_policy.h"

struct map;

enum rkind {
    RK_PERMIT,
    RK_REJECT,
    RK_DEFER,
    RK_PERMIT_MYNETWORKS,
    RK_PERMIT_SASL,
    RK_PERMIT_AUTH_DEST,
    RK_REJECT_UNAUTH_DEST,
    RK_DEFER_UNAUTH_DEST,
    RK_REJECT_UNLISTED_RCPT,
    RK_REJECT_UNLISTED_SENDER,
    RK_REJECT_NON_FQDN_HELO,
    RK_REJECT_INVALID_HELO,
    RK_REJECT_NON_FQDN_SENDER,
    RK_REJECT_NON_FQDN_RCPT,
    RK_CHECK_CLIENT,
    RK_CHECK_HELO,
    RK_CHECK_SENDER,
    RK_CHECK_RCPT,
    RK_RBL_CLIENT,                   /* reject_rbl_client zone */
    RK_UNKNOWN_SENDER_DOMAIN,        /* reject_unknown_sender_domain */
    RK_SENDER_LOGIN_MISMATCH,        /* both halves */
    RK_AUTH_SENDER_LOGIN_MISMATCH,   /* logged in, sender not owned by the login */
    RK_UNAUTH_SENDER_LOGIN_MISMATCH, /* not logged in, sender owned by somebody */
    RK_REJECT_SPF_FAIL,              /* reject_spf_fail: the MAIL FROM identity failed SPF */
    RK_DEFER_SPF_TEMPERROR,          /* defer_spf_temperror */
    RK_REJECT_DMARC_POLICY,          /* reject_dmarc_policy (end of data only) */
    RK_IGNORED /* known to Postfix, needs DNS or a service we lack: DUNNO */
};

enum rarg { ARG_NONE, ARG_TABLE, ARG_WORD };

struct rdef {
    const char *name;
    enum rkind kind;
    enum rarg arg;
};

struct restriction {
    const struct rdef *def;
    struct map *map; /* ARG_TABLE only */
    char *word;      /* ARG_WORD: the argument (an RBL zone) */
};

struct rlist {
    struct restriction *r;
    size_t n, cap;
};

/* The lists evaluated at RCPT come first (L_RCPT_LISTS of them); the end
 * of data has its own. */
enum { L_CLIENT, L_HELO, L_SENDER, L_RELAY, L_RCPT, L_EOD, L_COUNT };
#define L_RCPT_LISTS L_EOD

/* The parameter name of each list, for messages. */
extern const char *const policy_list_param[L_COUNT];

struct smtpd_policy_lists {
    struct rlist l[L_COUNT];
};

/* Parses one list (see smtpd_policy.c); nested: an access-table value. */
int smtpd_policy_parse_list(struct rlist *l, const char *param, const char *text, int nested, char **err);
void smtpd_policy_rlist_free(struct rlist *l);

#endif
