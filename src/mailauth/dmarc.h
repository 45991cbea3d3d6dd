/* dmarc: DMARC (RFC 9989, which obsoletes RFC 7489) for mail tern receives:
 * the policy record, the DNS Tree Walk that finds it and the Organizational
 * Domain, identifier alignment of SPF and DKIM, and the result and policy.
 *
 * Who calls it: the SMTP server (after DATA, with the SPF and DKIM results it
 * has), and later the aggregate reporting (the record's rua list is in the
 * outcome). The fuzz target calls dmarc_record_parse. The module never logs;
 * it reports through its return values and the outcome.
 *
 * What it owns: a struct dmarc_check (one evaluation in flight: its DNS
 * queries, its pending event) and a struct dmarc_cache (the answers of
 * earlier _dmarc TXT queries, shared by every check of a process, bounded
 * and expired by the answers' TTLs, so a repeated domain costs no query).
 *
 * How it reads RFC 9989 (the choices where the text leaves room):
 *  - Record: "v=DMARC1" must be the first tag (value case-sensitive); blanks
 *    before it are tolerated. Tag names and the values of p, sp, np, psd, t,
 *    adkim, aspf, fo are matched case-insensitively (ABNF literal strings).
 *    Unknown tags, and the historic pct, rf, ri, are ignored. A tag with a
 *    bad value falls back to its default (psd=u, t=n, adkim/aspf=r, fo=0);
 *    the first occurrence of a tag counts, later ones are ignored. A bad or
 *    missing p, or a bad sp or np, marks the record: when it has at least
 *    one valid rua URI it acts as "p=none" (sp and np ignored), otherwise
 *    the check ends in permerror (RFC 9989 4.10.1 "applies no DMARC
 *    processing"; permerror is the name 9.2 gives an improperly formatted
 *    record). rua/ruf: comma-separated URIs; a malformed one is dropped,
 *    the others kept (RFC 9990 3.5); a "!size" suffix is dropped.
 *  - A TXT answer counts only when exactly one of its records starts with
 *    v=DMARC1 (several: all discarded, the walk goes on). A record longer
 *    than DMARC_RECORD_MAX is discarded as if it were not DMARC.
 *  - Tree Walk (4.10): the domain itself, then its parent, or for a name of
 *    more than eight labels the seven right-most labels, then one label
 *    less each time: at most eight queries. A record with psd=y or psd=n
 *    stops it. The Organizational Domain is, among the records found: the
 *    one with psd=n; one label below the one with psd=y (unless that is
 *    where the walk started); else the one with the fewest labels; with no
 *    record, the domain itself.
 *  - Policy discovery (4.10.1): the Author Domain's record; else the record
 *    of its Organizational Domain; else that of its PSD (psd=y). From a
 *    parent's record the policy is sp (existing subdomain) or np
 *    (non-existent subdomain; falls back to sp, then p).
 *  - Existence (A.4): asked only when the result is fail, the record is a
 *    parent's, and np would give another policy than sp: A, AAAA and MX of
 *    the Author Domain; any answer or NODATA means it exists, NXDOMAIN (with
 *    nothing else) means it does not.
 *  - Alignment (4.10.2): strict is equality (case-insensitive); relaxed is
 *    equal Organizational Domains, found by a walk from each identifier
 *    (skipped when the Author Domain's Organizational Domain is not a
 *    suffix of the identifier: they cannot match).
 *  - DNS failures: TEMPFAIL while looking for the policy is temperror; on an
 *    identifier's walk it makes that identifier's alignment unknown, and the
 *    result temperror only when nothing else aligns. NXDOMAIN, NODATA and
 *    INVALID answers for _dmarc names are "no record".
 *  - Non-ASCII Author Domains (U-labels) are converted to A-labels (5.3.1)
 *    with libidn2 (IDNA2008, UTS #46 non-transitional); a name that does
 *    not convert is DMARC_FROM_UTF8_DOMAIN.
 *  - t=y: the policy applied is one level below the requested one (reject
 *    to quarantine, quarantine to none), and the outcome says so. */
#ifndef TERN_MAILAUTH_DMARC_H
#define TERN_MAILAUTH_DMARC_H

#include <stddef.h>
#include <time.h>

#include "mailauth/authres.h"
#include "mailauth/mailauth_dns.h"

struct event_base;

#define DMARC_DOMAIN_MAX 253     /* a domain name in text, without the root dot */
#define DMARC_RECORD_MAX 8192    /* longer TXT records are not read as DMARC */
#define DMARC_MAX_URIS 8         /* rua/ruf URIs kept per tag; more are dropped */
#define DMARC_MAX_QUERIES 8      /* per Tree Walk (RFC 9989 4.10) */
#define DMARC_MAX_DKIM 16        /* DKIM-Authenticated Identifiers looked at */
#define DMARC_CACHE_MAX_TTL 3600 /* seconds an answer is kept at most */
#define DMARC_ERR_MAX 160        /* bytes of an error message, NUL included */

/* ---- the policy record (RFC 9989 4.7, 4.8) ---- */

enum dmarc_policy {
    DMARC_POLICY_UNSET,      /* tag absent */
    DMARC_POLICY_NONE,
    DMARC_POLICY_QUARANTINE,
    DMARC_POLICY_REJECT,
};

enum dmarc_psd { DMARC_PSD_U, DMARC_PSD_Y, DMARC_PSD_N };
enum dmarc_mode { DMARC_RELAXED, DMARC_STRICT };

/* fo= options, a bit each. */
enum {
    DMARC_FO_0 = 1,
    DMARC_FO_1 = 2,
    DMARC_FO_D = 4,
    DMARC_FO_S = 8,
};

struct dmarc_record {
    enum dmarc_policy p, sp, np;
    int p_invalid, sp_invalid, np_invalid; /* present with a value outside the grammar */
    enum dmarc_psd psd;
    int testing;                           /* t=y */
    enum dmarc_mode adkim, aspf;
    unsigned fo;                           /* DMARC_FO_* bits; DMARC_FO_0 by default */
    char *rua[DMARC_MAX_URIS];             /* valid URIs, in the record's order */
    size_t nrua;
    char *ruf[DMARC_MAX_URIS];
    size_t nruf;
    unsigned ignored;                      /* tags ignored: unknown, historic, repeated or malformed */
};

/* Parses text[0..len) (one TXT record, its strings joined). 0 when it is a
 * DMARC record (v=DMARC1 first): *rec is filled (free it with
 * dmarc_record_free), problems in other tags are noted in it as described
 * at the top. -1 when it is not a DMARC record: *rec is zeroed and err (at
 * least DMARC_ERR_MAX bytes, may be NULL) says why, in printable ASCII. */
int dmarc_record_parse(const char *text, size_t len, struct dmarc_record *rec, char *err);
void dmarc_record_free(struct dmarc_record *rec);
/* 1 when the record's policy tags are usable as they are; 0 when p is
 * missing or bad, or sp/np bad (see the top for what follows). */
int dmarc_record_policy_ok(const struct dmarc_record *rec);

/* "none", "quarantine", "reject" ("" for UNSET). */
const char *dmarc_policy_name(enum dmarc_policy p);

/* ---- the Author Domain (RFC 9989 5.3.1) ---- */

enum dmarc_from_status {
    DMARC_FROM_OK,
    DMARC_FROM_NO_FIELD,         /* no From: field */
    DMARC_FROM_SEVERAL_FIELDS,   /* more than one From: field */
    DMARC_FROM_INVALID,          /* not a valid From: value (RFC 5322 3.6.2, RFC 6854) */
    DMARC_FROM_NO_ADDRESS,       /* valid but holds no address (an empty group) */
    DMARC_FROM_SEVERAL_DOMAINS,  /* addresses in more than one domain */
    DMARC_FROM_BAD_DOMAIN,       /* a domain literal, or not a host name */
    DMARC_FROM_UTF8_DOMAIN,      /* non-ASCII and no valid IDNA name (a valid one becomes A-labels) */
};

struct dmarc_from {
    enum dmarc_from_status status;
    char domain[DMARC_DOMAIN_MAX + 1]; /* DMARC_FROM_OK: lower case, no trailing dot */
    size_t naddrs;                     /* addresses in the field */
};

/* From one From: value (after the colon, folded or not, NUL-terminated).
 * Several addresses in one domain give that domain (RFC 9989 speaks of
 * domains; naddrs lets a caller that wants one author refuse the rest). */
void dmarc_from_value(const char *value, struct dmarc_from *out);
/* From a header section (as msg_header_scan reads it): exactly one From:
 * field, then as dmarc_from_value. */
void dmarc_from_header(const char *hdr, size_t len, struct dmarc_from *out);
/* A short English phrase for logs and replies ("no From: field", ...). */
const char *dmarc_from_status_text(enum dmarc_from_status s);

/* Lower-cases name into out (DMARC_DOMAIN_MAX + 1 bytes), dropping one
 * trailing dot; 0 when it is an ASCII host name (LDH labels of 1..63,
 * underscores allowed as DNS allows them, at most DMARC_DOMAIN_MAX), else -1. */
int dmarc_domain_normalize(const char *name, char *out);

/* ---- the cache of _dmarc answers ---- */

struct dmarc_cache;

/* At most max_entries answers (0: 1000). */
struct dmarc_cache *dmarc_cache_new(size_t max_entries);
void dmarc_cache_free(struct dmarc_cache *c);
size_t dmarc_cache_count(const struct dmarc_cache *c);

/* ---- one evaluation ---- */

enum dmarc_result {
    DMARC_RESULT_NONE,      /* no policy record: DMARC does not apply */
    DMARC_RESULT_PASS,
    DMARC_RESULT_FAIL,
    DMARC_RESULT_TEMPERROR,
    DMARC_RESULT_PERMERROR,
};
/* The RFC 8601 result names: "none", "pass", "fail", "temperror", "permerror". */
const char *dmarc_result_name(enum dmarc_result r);

/* Where the policy came from. */
enum dmarc_policy_source { DMARC_SRC_P, DMARC_SRC_SP, DMARC_SRC_NP };

enum dmarc_alignment {
    DMARC_ALIGN_NA,         /* no such authenticated identifier (no pass) */
    DMARC_ALIGN_NO,
    DMARC_ALIGN_YES,
    DMARC_ALIGN_UNKNOWN,    /* a DNS failure kept the walk from finishing */
};

/* What SPF and DKIM established (RFC 9989 5.3.3). Strings are copied. */
struct dmarc_auth {
    const char *spf_domain;           /* the MAIL FROM identity's domain (the HELO
                                         name for a null path); NULL if none */
    int spf_pass;                     /* SPF said pass for it */
    const char *const *dkim_domains;  /* d= of each signature that passed */
    size_t ndkim;                     /* only the first DMARC_MAX_DKIM count */
};

struct dmarc_outcome {
    enum dmarc_result result;
    char *reason;              /* why, in a few words (printable ASCII); never NULL */
    char *author_domain;       /* as checked: lower case */
    char *policy_domain;       /* where the applied record was found; NULL without one */
    char *org_domain;          /* the Author Domain's Organizational Domain; NULL when
                                  a DNS failure kept it unknown */
    int has_record;            /* record below is the applied one */
    struct dmarc_record record;
    int fallback_none;         /* bad p/sp/np with a valid rua: treated as p=none */
    enum dmarc_policy requested; /* what the record asks for failing mail; UNSET
                                    without a usable record (none, permerror, a
                                    temperror before the record was known) */
    enum dmarc_policy_source source;
    enum dmarc_policy applied; /* what to do: none on pass; requested, one level
                                  lower when testing */
    int testing;               /* t=y lowered (or would lower) the policy */
    int author_exists;         /* 1, 0, or -1 when not asked */
    enum dmarc_alignment spf, dkim;
    char *spf_aligned_domain;  /* the aligned identifier, or NULL */
    char *dkim_aligned_domain;
    unsigned queries;          /* DNS queries this check sent */
};

/* Frees o and everything it holds. */
void dmarc_outcome_free(struct dmarc_outcome *o);

/* What every check of a process shares. dns, cache and base must outlive
 * the checks; cache may be NULL (no caching); base is required. */
struct dmarc_env {
    const struct mailauth_dns *dns;
    struct dmarc_cache *cache;
    struct event_base *base;   /* for a result known without DNS: it too comes later */
};

struct dmarc_check;
/* The callback owns the outcome (dmarc_outcome_free). The check is freed
 * when the callback returns; do not cancel it from inside. */
typedef void (*dmarc_cb)(void *arg, struct dmarc_outcome *o);

/* Starts the evaluation of author_domain (from dmarc_from_*; normalized
 * here again: a bad one ends in permerror). cb runs exactly once, later,
 * from the event loop (a DNS answer or base), unless cancelled first.
 * Never returns NULL. */
struct dmarc_check *dmarc_check_start(const struct dmarc_env *env, const char *author_domain,
                                      const struct dmarc_auth *auth, dmarc_cb cb, void *arg);
/* Stops a check whose callback has not run: its queries are cancelled, it
 * is freed, and the callback never runs. */
void dmarc_check_cancel(struct dmarc_check *chk);

/* The outcome as one Authentication-Results method (RFC 8601, RFC 9989
 * 9.1): "dmarc=RESULT (p=REQUESTED dis=APPLIED[ t=y]) header.from=DOMAIN
 * [policy.dmarc=APPLIED]", the comment only with a record, policy.dmarc
 * only for pass and fail. out->method points into out and o: keep both
 * while it is used. */
struct dmarc_authres {
    struct authres_method method;
    struct authres_prop props[2];
    char comment[64];
};
void dmarc_outcome_authres(const struct dmarc_outcome *o, struct dmarc_authres *out);

/* ---- shared by the module's files (dmarc.c, dmarc_walk.c) ---- */

/* One TXT record as text (malloc'd); NULL when it is malformed, longer
 * than DMARC_RECORD_MAX or holds a NUL (then it is no DMARC record). */
char *dmarc_txt_record(const struct dns_rr *rr);

/* A cached answer for _dmarc.<name>: 1 found (*text: the one DMARC record,
 * malloc'd, or NULL for "no record"), 0 not cached or expired. */
int dmarc_cache_get(struct dmarc_cache *c, const char *name, char **text);
/* Remembers the answer for ttl seconds (capped; 0: not kept). */
void dmarc_cache_put(struct dmarc_cache *c, const char *name, const char *text, unsigned ttl);

#endif
