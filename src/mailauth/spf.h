/* spf: Sender Policy Framework (RFC 7208): may this client send mail for
 * this domain?
 *
 * What it is for: the SMTP server asks, for a connection's client address,
 * whether the domain of the MAIL FROM address (or of the HELO name) has
 * authorised that address, and records the answer (Received-SPF,
 * Authentication-Results) or acts on it. This module is the check_host()
 * function of RFC 7208 §4, asynchronous: every DNS question goes through a
 * struct mailauth_dns (mailauth_dns.h), and the answer comes back through a
 * callback. It never blocks and never talks to libunbound itself.
 *
 * Who calls it: smtpd (spf_check_start / spf_check_cancel); the unit tests
 * and the fuzz target also use the record parser and the macro expander
 * directly.
 *
 * Bounds, so that a hostile record costs little (RFC 7208 §4.6.4, §11):
 *   - at most 10 terms that query DNS (include, a, mx, ptr, exists,
 *     redirect) per check, includes and redirects counted; the 11th is a
 *     permerror;
 *   - at most 2 "void" lookups (NXDOMAIN or no answer) among those terms;
 *     the 3rd is a permerror;
 *   - an mx term may name at most 10 exchangers (more is a permerror); a
 *     ptr term or %{p} validates at most 10 PTR names (the rest ignored);
 *   - so one check makes at most 1 + 10 * (1 + 10) + 11 + 1 (exp) lookups,
 *     one at a time; each is timed out by the DNS layer (a timeout ends the
 *     check with temperror), which bounds the check's time. No timer of its
 *     own here: RFC 7208 §4.6.4 asks the MTA for an overall limit (at least
 *     20 s), which the caller sets with its own timer and spf_check_cancel,
 *     recording temperror;
 *   - a record's text is at most SPF_RECORD_MAX octets (more is a
 *     permerror), a macro expansion at most SPF_EXPAND_MAX octets, a domain
 *     name from an expansion at most 253 (cut on the left, §7.3), an
 *     explanation at most SPF_EXPLANATION_MAX octets, US-ASCII printable.
 *
 * Only TXT records are asked for (type SPF is gone, RFC 7208 §3.1). An
 * identity whose domain is no multi-label name of letters, digits, '-' and
 * '_' (an address literal, a bare host name) gives "none" without DNS
 * (§4.3). A target name made by macros may hold any printable octet; the
 * DNS layer refuses what it cannot ask (DNS_INVALID), which is no match.
 *
 * Results are the RFC 8601 names (spf_result_name). A permerror or
 * temperror carries a "problem": a short, printable sentence for logs. */
#ifndef TERN_MAILAUTH_SPF_H
#define TERN_MAILAUTH_SPF_H

#include <stddef.h>
#include <sys/socket.h>
#include <time.h>

#include "mailauth/mailauth_dns.h"

#define SPF_RECORD_MAX 8192      /* a record's concatenated TXT strings */
#define SPF_EXPAND_MAX 2048      /* one macro expansion, before truncation */
#define SPF_DOMAIN_MAX 253       /* a target-name after truncation (§7.3) */
#define SPF_EXPLANATION_MAX 512  /* the explanation handed to the caller */
#define SPF_MAX_DNS_TERMS 10
#define SPF_MAX_VOID_LOOKUPS 2
#define SPF_MAX_MX_NAMES 10
#define SPF_MAX_PTR_NAMES 10

enum spf_result { SPF_NONE, SPF_NEUTRAL, SPF_PASS, SPF_FAIL, SPF_SOFTFAIL, SPF_TEMPERROR, SPF_PERMERROR };

/* "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror". */
const char *spf_result_name(enum spf_result r);

struct spf_request {
    const struct sockaddr *client;  /* AF_INET or AF_INET6 (an IPv4-mapped
                                       IPv6 address counts as IPv4, §5) */
    const char *helo;               /* the HELO/EHLO argument as given */
    const char *sender;             /* MAIL FROM address without <>, "" for
                                       the null reverse-path */
    const char *receiver;           /* our host name, for %{r}; NULL: "unknown" */
    int helo_identity;              /* 1: check the HELO identity (§2.3)
                                       instead of MAIL FROM (§2.4) */
    const char *default_explanation; /* a macro explain-string used on fail
                                       when the domain gives none; NULL: the
                                       built-in one (SPF_DEFAULT_EXPLANATION) */
};

#define SPF_DEFAULT_EXPLANATION "%{c} is not one of %{d}'s designated mail servers"

struct spf_outcome {
    enum spf_result result;
    const char *domain;       /* the domain checked: the identity's domain */
    const char *identity;     /* the identity checked: the sender (with
                                 "postmaster" for an empty local-part), or
                                 postmaster@helo */
    const char *explanation;  /* fail only: from the domain's exp= or the
                                 default; printable US-ASCII; else NULL */
    const char *problem;      /* temperror/permerror: why, printable; else NULL */
    const char *mechanism;    /* the term that decided ("-all", "include:x"),
                                 NULL when none did (default result, errors) */
};

/* The outcome and its strings are valid only during the callback. */
typedef void (*spf_cb)(void *arg, const struct spf_outcome *out);

struct spf_check;

/* Starts check_host() for req (copied; the caller's strings may go away at
 * once). cb runs exactly once, later, never from inside this call, unless
 * spf_check_cancel comes first; after cb the check is freed by itself.
 * dns must outlive the check. A check decided without a DNS answer (an
 * identity that is no domain) still reports later: it goes through the DNS
 * layer with a lookup of record type 0, which the layer refuses without
 * sending anything, so the "later" rule lives in one place. Never NULL. */
struct spf_check *spf_check_start(const struct mailauth_dns *dns, const struct spf_request *req, spf_cb cb,
                                  void *arg);

/* Stops a check whose callback has not run: its pending lookup is
 * cancelled, everything is freed, the callback never runs. Called from
 * inside the callback it does nothing (the check is freed when the
 * callback returns); after the callback it must not be called. */
void spf_check_cancel(struct spf_check *c);

/* ---- the parts, exposed for the tests and the fuzz target ---- */

struct spf_record;

/* Parses a record's text (the concatenated TXT strings, starting with
 * "v=spf1"). 0 and *out (free with spf_record_free), or -1 and *err (a
 * printable message of at most 200 octets, malloc'd) on a syntax error:
 * the permerror of §4.6. */
int spf_record_parse(const char *text, struct spf_record **out, char **err);
void spf_record_free(struct spf_record *r);
/* The number of terms (mechanisms and modifiers) of a parsed record. */
size_t spf_record_terms(const struct spf_record *r);

/* What the macros of §7.2 expand to. Strings may be NULL (treated as ""
 * or, for validated and receiver, "unknown"). */
struct spf_macro_ctx {
    const char *sender;       /* s */
    const char *local;        /* l */
    const char *sender_domain; /* o */
    const char *domain;       /* d */
    const char *helo;         /* h */
    const char *validated;    /* p: the validated name of the client */
    const char *receiver;     /* r */
    int family;               /* AF_INET or AF_INET6 */
    unsigned char ip[16];     /* 4 octets for AF_INET */
    time_t now;               /* t */
};

enum {
    SPF_MACRO_DOMAIN = 1,   /* a domain-spec: cut to 253 octets by labels */
    SPF_MACRO_EXPLAIN = 2,  /* an explain-string: SP allowed, c/r/t allowed */
};

/* Expands spec (a macro-string, or an explain-string with
 * SPF_MACRO_EXPLAIN). 0 and *out (malloc'd, printable US-ASCII, at most
 * SPF_EXPAND_MAX octets, at most SPF_DOMAIN_MAX with SPF_MACRO_DOMAIN), or
 * -1 and *err (printable, malloc'd) on a macro syntax error. */
int spf_macro_expand(const char *spec, const struct spf_macro_ctx *m, int flags, char **out, char **err);

#endif
