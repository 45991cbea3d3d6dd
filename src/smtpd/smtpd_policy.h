/* smtpd_policy: Postfix's SMTP access restriction lists, first match wins.
 *
 * Parses smtpd_client_restrictions, smtpd_helo_restrictions,
 * smtpd_sender_restrictions, smtpd_relay_restrictions and
 * smtpd_recipient_restrictions as an admin writes them in main.cf or a
 * master.cf "-o" ("permit_mynetworks, reject_unauth_destination"; commas
 * and/or whitespace separate, "inline:{ a=b, c=d }" stays one word), opens
 * the access tables they name, and decides one RCPT TO.
 *
 * Evaluation is Postfix's with smtpd_delay_reject = yes: at RCPT time the
 * lists run in the order client, helo, sender, relay, recipient. Within a
 * list restrictions run left to right: PERMIT ends that list (the next list
 * still runs), REJECT/DEFER ends everything, DUNNO goes on, and the end of a
 * list is a permit for that list. The mail is accepted only if no list
 * rejected. A NULL relay list means Postfix's default
 * "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination".
 *
 * Restrictions: permit reject defer permit_mynetworks permit_sasl_authenticated
 *   permit_auth_destination reject_unauth_destination defer_unauth_destination
 *   reject_unlisted_recipient (old name check_recipient_maps)
 *   reject_unlisted_sender
 *   reject_non_fqdn_helo_hostname (reject_non_fqdn_hostname)
 *   reject_invalid_helo_hostname (reject_invalid_hostname)
 *   reject_non_fqdn_sender reject_non_fqdn_recipient
 *   check_client_access check_helo_access check_sender_access
 *   check_recipient_access, each followed by one "type:name" table.
 * Access table lookup keys, as access(5) with Postfix's default
 * parent_domain_matches_subdomains (which lists smtpd_access_maps):
 *   client: its name, parent domains ("a.b.c", "b.c", "c"), then its address
 *     and networks by dropping the last ".octet" or ":field" ("1.2.3.4",
 *     "1.2.3", "1.2", "1"). No name (NULL) is looked up as "unknown".
 *   helo: the name, then parent domains.
 *   sender/recipient: "user@domain", "domain", parent domains, "user@";
 *     the null sender is looked up as "<>" only. No recipient_delimiter.
 *   A DUNNO result stops the walk (shorter keys are not tried).
 * Table results (case-insensitive): OK, PERMIT, all-digits = permit; REJECT
 *   [text] = 554 5.7.1; DEFER [text] = 450 4.7.1; "4NN text"/"5NN text";
 *   a leading "x.y.z" in text is the enhanced code (its class follows the
 *   reply code). DUNNO = not found. WARN/INFO text: logged, then DUNNO.
 *   A list of plain restrictions ("permit_mynetworks, reject") is applied
 *   in place. Anything else (HOLD, DISCARD, FILTER, REDIRECT, BCC, PREPEND,
 *   DEFER_IF_*, unknown words, check_* inside a table) is logged and answers
 *   451 4.3.5 Server configuration error, so mail waits instead of being
 *   lost or let through. 421/521 codes are returned as they are: the caller
 *   disconnects after sending them. A failed lookup answers
 *   451 4.3.0 "<key>: Temporary lookup failure".
 * Mail authentication: reject_spf_fail (550 5.7.23) and defer_spf_temperror
 *   (451 4.7.24, RFC 7372) act on the SPF result of the MAIL FROM identity,
 *   which the caller waits for before RCPT when a list names them; they do
 *   nothing while SPF has not run. reject_dmarc_policy belongs in
 *   smtpd_end_of_data_restrictions (checked by smtpd_policy_check_end_of_data
 *   once the message is in): a DMARC fail under p=reject is refused with
 *   550 5.7.1 naming the policy (as is a message with no author domain or
 *   several: RFC 9989 11.5), under p=quarantine it is accepted on hold
 *   (result hold = 1), unless the caller's dmarc_policy says to deliver.
 *   The end-of-data list also takes the restrictions that need no recipient.
 * DNS-based restrictions (reject_rbl_client, reject_rhsbl_*, permit_dnswl_client,
 *   reject_unknown_sender_domain, reject_unknown_recipient_domain,
 *   reject_unknown_client_hostname, reject_unknown_reverse_client_hostname,
 *   reject_unknown_helo_hostname) and check_policy_service and
 *   reject_unauth_pipelining are parsed and IGNORED (DUNNO) for now, with
 *   one warning at parse time: none of them can ever permit, so ignoring
 *   them only lets more spam in, never opens a relay.
 *
 * Relay safety: the recipient's domain is only what follows the last '@'
 * outside a quoted string; '%', '!' and quoted '@' in the local part are
 * never routing here. is_local_domain/is_relay_domain get it lower-cased
 * with one trailing dot removed. An address without any '@' ("postmaster")
 * is local; "user@" (empty domain) is not local. As in Postfix, parsing
 * fails unless the relay or the recipient list holds a working
 * reject_unauth_destination, defer_unauth_destination, reject or defer
 * before any "permit".
 *
 * Callers: smtpd, once per configuration (smtpd_policy_parse) and once per
 * RCPT (smtpd_policy_check_rcpt). The parsed lists own their tables; a table is
 * not thread-safe, so one struct smtpd_policy_lists per thread. Logging the
 * rejection ("reject: RCPT from ...") is the caller's job.
 *
 * Errors: smtpd_policy_parse returns NULL and a malloc'd message in *err
 * ("smtpd_recipient_restrictions: unknown restriction foo") for an unknown
 * restriction, a missing or bad table, unbalanced braces, or the open-relay
 * check above. smtpd_policy_check_rcpt never fails: problems become 4xx replies. */
#ifndef TERN_SMTPD_SMTPD_POLICY_H
#define TERN_SMTPD_SMTPD_POLICY_H

#include <stddef.h>

/* Longest reply text; "554 5.123.123 " + text + CRLF stays within the
 * 512-octet reply line of RFC 5321 4.5.3.1.5. A longer text (only possible
 * from a long access-table text or HELO name) is cut here with a warning. */
#define POLICY_TEXT_MAX 480

struct smtpd_policy_lists;

/* Each argument is the parameter's value; NULL or "" is an empty list,
 * except relay == NULL, which means Postfix's default relay list. */
struct smtpd_policy_lists *smtpd_policy_parse(const char *client, const char *helo, const char *sender,
                                  const char *relay, const char *recipient, const char *end_of_data,
                                  char **err);
void smtpd_policy_free(struct smtpd_policy_lists *p);

struct smtpd_policy_ctx {
    const char *client_addr;   /* "192.0.2.1", "2001:db8::1"; "::ffff:a.b.c.d" is used as IPv4 */
    const char *client_name;   /* verified reverse name; NULL = "unknown" */
    const char *helo;          /* NULL when the client sent no HELO/EHLO */
    const char *sender;        /* "" for the null sender <> */
    const char *recipient;     /* mailbox as in smtp_path.mailbox; must not be NULL */
    int mynetworks;            /* client address matched mynetworks */
    int authenticated;         /* SASL login succeeded */
    /* Domain arguments are lower-case, without a trailing dot, may be an
     * address literal "[192.0.2.1]". Return 1 yes, 0 no. NULL = never. */
    int (*is_local_domain)(void *arg, const char *domain);
    int (*is_relay_domain)(void *arg, const char *domain);
    /* For reject_unlisted_recipient and reject_unlisted_sender, asked
     * only about addresses in local or relay domains: 1 exists, 0 unknown
     * (then the callback may set *table, where the address is missing:
     * "local recipient table", "virtual alias table", ..., and *code, the
     * reply code for that class: unknown_*_reject_code; left alone they
     * are the local or relay recipient table by the domain, and 550), -1
     * temporary failure. The refusal is "CODE X.1.1 <addr>: Recipient
     * address rejected: User unknown in TABLE" (X.1.0 and "Sender" for a
     * sender; X is the code's class). NULL = every address exists. */
    int (*recipient_exists)(void *arg, const char *addr, const char **table, int *code);
    /* smtpd_reject_unlisted_sender: reject_unlisted_sender runs at the end
     * of the sender list, whatever it decided short of a refusal (not for
     * the null sender). */
    int reject_unlisted_sender;
    /* For reject_*sender_login_mismatch: with login set, 1 when that login
     * owns sender (smtpd_sender_login_maps), 0 when not; with login NULL
     * (not logged in), 1 when nobody owns sender, 0 when somebody does;
     * -1 temporary failure. NULL: the restrictions do nothing. */
    int (*sender_owned)(void *arg, const char *sender, const char *login);
    const char *login;         /* the SASL user name when authenticated */
    /* reject_rbl_client: 1 when the client is listed in zone (*text: the
     * list's TXT reason or NULL), else 0; the caller looked it up before.
     * reject_unknown_sender_domain: 0 the sender's domain has MX or
     * address records, 1 it has none (or does not exist), 2 null MX,
     * -1 temporary failure. NULL: those restrictions do nothing. */
    int (*rbl_listed)(void *arg, const char *zone, const char **text);
    int (*sender_domain)(void *arg);
    /* reject_spf_fail, defer_spf_temperror: the SPF result of the MAIL FROM
     * identity (*text: the domain's explanation or the problem; may be
     * NULL). reject_dmarc_policy: what DMARC asks for this message,
     * POLICY_DMARC_* (*text: the From: domain and why). NULL: nothing. */
    int (*spf_result)(void *arg, const char **text);
    int (*dmarc_policy)(void *arg, const char **text);
    void *arg;
};

struct smtpd_policy_result {
    int code;                        /* 0 accept, else 4xx or 5xx */
    char enh[16];                    /* "5.7.1"; "" on accept */
    char text[POLICY_TEXT_MAX + 1];  /* "<x@y>: Relay access denied" */
    /* What decided, for the log; point into the parsed lists (valid while
     * they live), NULL on accept. table: the "type:name" of check_*. */
    int hold;                        /* end of data: accept, but on hold (text says why) */
    const char *list;                /* "smtpd_relay_restrictions" */
    const char *restriction;         /* "reject_unauth_destination" */
    const char *table;
};

/* Fills *r and returns r->code: 0 accept, else the reply code to send as
 * "code enh text". */
int smtpd_policy_check_rcpt(const struct smtpd_policy_lists *p, const struct smtpd_policy_ctx *c,
                      struct smtpd_policy_result *r);

/* The most distinct reject_rbl_client zones a configuration may name
 * (each is a lookup per connection); more is a parse error. */
#define POLICY_MAX_RBL_ZONES 8

/* What DNS the lists need, so the caller can look it up ahead of RCPT:
 * the reject_rbl_client zones (up to max, without duplicates; pointers
 * into p) and whether reject_unknown_sender_domain is used. */
size_t smtpd_policy_rbl_zones(const struct smtpd_policy_lists *p, const char **zones, size_t max);
int smtpd_policy_checks_sender_domain(const struct smtpd_policy_lists *p);
/* Whether a RCPT list needs the SPF result (reject_spf_fail,
 * defer_spf_temperror), and whether there is an end-of-data list. */
int smtpd_policy_checks_spf(const struct smtpd_policy_lists *p);
int smtpd_policy_has_end_of_data(const struct smtpd_policy_lists *p);

/* The answers of spf_result. */
enum { POLICY_SPF_UNKNOWN = -1, POLICY_SPF_OTHER = 0, POLICY_SPF_FAIL = 1, POLICY_SPF_TEMPERROR = 2 };
/* The answers of dmarc_policy: nothing to do, accept on hold, refuse. */
enum { POLICY_DMARC_NONE = 0, POLICY_DMARC_HOLD = 1, POLICY_DMARC_REJECT = 2 };

/* smtpd_end_of_data_restrictions for the message just received (ctx has
 * no recipient; c->recipient may be NULL). Fills *r; returns r->code (0:
 * accept, then r->hold may ask for the hold queue). */
int smtpd_policy_check_end_of_data(const struct smtpd_policy_lists *p, const struct smtpd_policy_ctx *c,
                                   struct smtpd_policy_result *r);

#endif
