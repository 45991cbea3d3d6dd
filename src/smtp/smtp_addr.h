/* smtp_addr: syntax of SMTP envelope paths, mailboxes and domains.
 *
 * Parses the <path> of MAIL FROM / RCPT TO (RFC 5321 4.1.2, 4.1.3, App. C),
 * with the SMTPUTF8 extensions of RFC 6531 3.3 when asked, and checks bare
 * domains and local parts. It owns only the strings it allocates into a
 * struct smtp_path, which the caller releases with smtp_path_free().
 *
 * Callers: the SMTP command parser (smtp_cmd), the SMTP client, and anything
 * that validates an address taken from configuration or a map. The input may
 * be hostile network text: every loop is bounded by the RFC 5321 size limits
 * (local part 64, domain 255, path 256 octets) and nothing recurses.
 *
 * Errors: parse functions return -1 and a short static English reason fit
 * for a log line (never for echoing back with client bytes in it). Nothing
 * here decides policy (which domains are ours, who may relay): only syntax. */
#ifndef TERN_SMTP_SMTP_ADDR_H
#define TERN_SMTP_SMTP_ADDR_H

#include <stddef.h>

#define SMTP_LOCAL_PART_MAX 64   /* RFC 5321 4.5.3.1.1, octets on the wire */
#define SMTP_DOMAIN_MAX 255      /* RFC 5321 4.5.3.1.2, literal brackets included */
#define SMTP_PATH_MAX 256        /* RFC 5321 4.5.3.1.3, "<" and ">" included */
#define SMTP_LABEL_MAX 63        /* RFC 1035 */

struct smtp_path {
    /* Canonical "local@domain": the local part with the least quoting that
     * keeps its meaning (RFC 5321 4.1.2: all quoted forms are equivalent),
     * the domain exactly as sent. "" for the null path <>, "postmaster" for
     * <postmaster> in any case. Callers lowercase the domain to compare. */
    char *mailbox;
    char *local;           /* local part as on the wire, quotes and escapes kept */
    char *local_unquoted;  /* quotes and backslash escapes removed */
    /* Domain or address literal with its brackets ("[192.0.2.1]",
     * "[IPv6:::1]"); NULL for the null path and for <postmaster>. */
    char *domain;
    int is_null;           /* <> */
    int is_literal;        /* domain is an address literal */
    int has_utf8;          /* non-ASCII octets in the local part or domain */
    int had_source_route;  /* "<@a,@b:user@dom>": accepted and dropped (App. C) */
};

enum smtp_path_flags {
    SMTP_PATH_ALLOW_NULL = 1,        /* "<>" (reverse-path only) */
    SMTP_PATH_ALLOW_UTF8 = 2,        /* RFC 6531: UTF-8 atext, qtext and U-labels */
    SMTP_PATH_ALLOW_NO_DOMAIN = 4,   /* "<postmaster>" (RCPT only, RFC 5321 4.1.1.3) */
    SMTP_PATH_ALLOW_NO_BRACKETS = 8  /* "MAIL FROM:user@dom", as Postfix accepts by default */
};

/* Parses a path starting at s (no leading space skipped). On success fills
 * *out, sets *end just past the path (past ">" or, without brackets, past
 * the mailbox) and returns 0. On failure returns -1, sets *why, leaves *out
 * zeroed (smtp_path_free on it is harmless) and *end at s. Non-ASCII octets
 * without SMTP_PATH_ALLOW_UTF8 fail with why == SMTP_WHY_NON_ASCII, so a
 * caller can tell "needs SMTPUTF8" from plain bad syntax. end and why may be
 * NULL. */
int smtp_path_parse(const char *s, unsigned flags, struct smtp_path *out,
                    const char **end, const char **why);
void smtp_path_free(struct smtp_path *p);

/* An envelope address given locally (sendmail's command line, -f, a -t
 * header field): qualified with "@" + myorigin when it has no domain, then
 * held to SMTP path syntax (UTF-8 allowed). The canonical mailbox, malloc'd,
 * or NULL when SMTP cannot carry it. allow_null: "" stays "" (the null
 * sender). sendmail and pickup both use it, so what sendmail accepts pickup
 * takes. */
char *smtp_addr_envelope(const char *addr, const char *myorigin, int allow_null);

/* The reason reported for an octet >= 0x80 when UTF-8 was not allowed. */
extern const char SMTP_WHY_NON_ASCII[];

/* 1 if the whole of d is an RFC 5321 Domain (with U-labels when allow_utf8)
 * or address literal, within the length limits; else 0. No trailing dot. */
int smtp_domain_valid(const char *d, int allow_utf8);
/* 1 if the whole of lp is a Dot-string or Quoted-string of at most 64
 * octets (RFC 6531 UTF-8 when allow_utf8); else 0. */
int smtp_local_part_valid(const char *lp, int allow_utf8);

#endif
