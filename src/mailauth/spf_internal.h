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

#endif
