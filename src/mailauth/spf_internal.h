/* spf_internal: what the SPF module's files share (spf.c evaluates,
 * spf_parse.c parses records, spf_macro.c expands macros). Not for other
 * modules: their contract is spf.h. */
#ifndef TERN_MAILAUTH_SPF_INTERNAL_H
#define TERN_MAILAUTH_SPF_INTERNAL_H

#include <stddef.h>

#include "mailauth/spf.h"

enum spf_mech { SPF_M_ALL, SPF_M_INCLUDE, SPF_M_A, SPF_M_MX, SPF_M_PTR, SPF_M_IP4, SPF_M_IP6, SPF_M_EXISTS };

struct spf_term {
    enum spf_mech mech;
    enum spf_result qual;   /* PASS, FAIL, SOFTFAIL or NEUTRAL */
    char *spec;             /* the domain-spec (a macro-string); NULL when absent */
    int cidr4, cidr6;       /* prefix lengths: 32 and 128 when not given */
    unsigned char net[16];  /* ip4 (4 octets) / ip6 network */
    char *text;             /* the term as written (printable), for outcomes */
};

struct spf_record {
    struct spf_term *terms;  /* mechanisms only, in order */
    size_t nterms;
    size_t nmodifiers;       /* every modifier, known or not */
    char *redirect;          /* domain-specs, NULL when absent */
    char *exp;
    int has_all;             /* an "all" anywhere: redirect is ignored (§5.1) */
};

/* 1 when the record text starts with the version section "v=spf1" (§4.5). */
int spf_is_spf_record(const char *text, size_t len);

/* Syntax of a macro-string (§7.1) without expanding it: 0, or -1 and *err.
 * domain_spec: it must also end in a domain-end; explain: SP and c/r/t. */
int spf_macro_check(const char *spec, int domain_spec, int explain, char **err);
/* 1 when spec uses the %{p} macro (which needs a PTR lookup first). */
int spf_macro_uses_p(const char *spec);

/* 1 when name is usable as a DNS name: labels of 1..63 octets, at most 253
 * octets without a trailing dot, which is allowed. */
int spf_domain_ok(const char *name);

/* A printable, bounded copy of a term for messages. */
char *spf_term_excerpt(const char *s, size_t len);

/* ---- a check in progress (spf.c runs it, spf_ptr.c helps) ---- */

/* 10 DNS terms allow at most 10 nested includes under the top record. */
#define SPF_MAX_DEPTH (SPF_MAX_DNS_TERMS + 2)

struct spf_frame {
    char *domain;            /* <domain> of this check_host(), no trailing dot */
    struct spf_record *rec;  /* NULL until its TXT answer came */
    size_t term;             /* the mechanism being evaluated */
    int redirected;          /* reached by redirect=: "none" is a permerror */
};

/* What the pending lookup is for. */
enum spf_wait { W_NONE, W_DEFER, W_TXT, W_A, W_MX, W_MXADDR, W_PTR, W_PTRADDR, W_EXISTS, W_EXP };

enum { PTR_NOT_DONE, PTR_RUNNING, PTR_DONE };

struct spf_check {
    const struct mailauth_dns *dns;
    spf_cb cb;
    void *arg;
    struct mailauth_dns_query *q;
    enum spf_wait wait;

    char *identity, *local, *sender_domain, *helo, *receiver, *default_exp;
    int family;
    unsigned char ip[16];
    time_t now;

    struct spf_frame frames[SPF_MAX_DEPTH];
    int depth;
    int dns_terms, voids;
    int term_counted;  /* the current term was counted against dns_terms */

    /* exchangers of an mx term, or PTR names being validated */
    char **names;
    size_t nnames, iname;
    int mx_match;

    /* the client's validated names (§5.5), found once per check */
    int ptr_state;
    int ptr_for_mech;  /* the PTR lookup was a ptr term's: its void counts */
    char **validated;
    size_t nvalidated;

    /* the end */
    int done;
    int delivering;    /* the callback is running: a cancel now is a no-op */
    enum spf_result result;
    char *problem, *mechanism, *explanation;
    int exp_state;     /* 0: not started, 1: waiting for TXT, 2: done */
    char *exp_text;    /* the fetched explain-string */
};

/* Starts a lookup whose answer goes to spf.c's dispatcher. */
void spf_ask(struct spf_check *c, const char *name, int rrtype, enum spf_wait w);
/* DNS_TYPE_A or DNS_TYPE_AAAA: the client's family. */
int spf_addr_type(const struct spf_check *c);
void spf_free_names(char ***names, size_t *n);
/* 1 when the first bits of addr equal the client's address. */
int spf_in_prefix(const struct spf_check *c, const unsigned char *addr, int bits);
/* An RDATA name (uncompressed wire format) as text without the final dot;
 * NULL if malformed or holding what no host name holds; "" for the root. */
char *spf_wire_name(const unsigned char *p, size_t len);
/* The records of a TXT answer, each RR's strings concatenated (§3.3): how
 * many there are (with spf_only, only those starting with "v=spf1"), and
 * the text of the only one in *text (NULL unless exactly one). */
size_t spf_txt_records(const struct dns_rrset *rs, int spf_only, char **text);
/* The PTR validation of §5.5: looks up the client's names, then each
 * name's addresses; c->validated gets those that lead back to it. When it
 * ends, c->ptr_state is PTR_DONE and no lookup is pending. for_mech: a
 * void PTR answer counts against the void-lookup limit. */
void spf_ptr_start(struct spf_check *c, int for_mech);
void spf_ptr_answer(struct spf_check *c, struct dns_rrset *rs);
void spf_ptr_addr_answer(struct spf_check *c, struct dns_rrset *rs);
/* 1 when a validated name is target or a subdomain of it. */
int spf_validated_within(const struct spf_check *c, const char *target);

#endif
