/* authres: the Authentication-Results header field (RFC 8601): writing
 * tern's own, recognizing forged ones that claim to be ours, and reading
 * one field's method results.
 *
 * Who calls it: the SMTP server (after SPF, DKIM and DMARC: build one field
 * with $myhostname as the authserv-id and prepend it; before that, drop
 * every arriving field that authres_is_ours() says claims our id, as RFC
 * 8601 section 5 requires), and later ARC and the tests. No state, no
 * logging; it owns only what it returns.
 *
 * Writing (RFC 8601 2.2): "Authentication-Results: ID;" then each method
 * on a line of its own, "\tmethod=result (comment) reason=... p.q=v ...",
 * separated by ";", folded between items so no line passes 78 characters
 * (CRLF not counted, a tab counts as one) unless one item alone is longer;
 * CRLF line ends. No method gives "ID; none". Values are written as a MIME
 * token, as local-part@domain-name / @domain-name where RFC 8601's pvalue
 * allows it, or else as a quoted-string; bytes that are not printable ASCII
 * (controls, DEL, 8-bit) become '?' (tern writes 7-bit fields; IDNA
 * conversion is the caller's), and a value is cut at AUTHRES_VALUE_MAX
 * bytes, so the field stays far under SMTP's 998-byte line limit.
 *
 * Recognizing ours: the authserv-id is the first value after CFWS (a token
 * or a quoted-string); it is compared with ours ASCII case-insensitively,
 * one trailing dot ignored. Only the id is read, so a field whose rest is
 * malformed but which claims our id is still ours to remove; a token that
 * merely starts with our id ("mx.example.org.evil") is not ours. EAI
 * (U-label) ids are compared as bytes (RFC 8601 5 says to convert A-labels
 * first; tern does no IDNA yet).
 *
 * Reading: the whole grammar of 2.2, comments and CFWS anywhere it allows
 * them (nesting by a counter, no recursion), method versions, "none".
 * Keywords are lower-cased; values are unquoted. Bounded: at most
 * AUTHRES_FIELD_MAX bytes, AUTHRES_MAX_METHODS methods and AUTHRES_MAX_PROPS
 * properties each; beyond that, or on a syntax error, authres_parse fails
 * with a printable message. */
#ifndef TERN_MAILAUTH_AUTHRES_H
#define TERN_MAILAUTH_AUTHRES_H

#include <stddef.h>

#define AUTHRES_VALUE_MAX 512     /* bytes of one value written (longer: cut) */
#define AUTHRES_KEYWORD_MAX 64    /* bytes of a method, result, ptype, property */
#define AUTHRES_FIELD_MAX 65536   /* bytes of a field value authres_parse reads */
#define AUTHRES_MAX_METHODS 32
#define AUTHRES_MAX_PROPS 16
#define AUTHRES_ERR_MAX 128       /* bytes of an error message, NUL included */

/* One "ptype.property=value", e.g. {"smtp", "mailfrom", "example.net"},
 * {"header", "d", "example.com"}, {"policy", "dmarc", "reject"}. */
struct authres_prop {
    const char *ptype;
    const char *property;
    const char *value;
};

struct authres_method {
    const char *method;   /* "spf", "dkim", "dmarc", "arc", "auth", "iprev" ... */
    const char *result;   /* "pass", "fail", "none", "temperror" ... */
    const char *comment;  /* NULL, or free text written as a comment after the result */
    const char *reason;   /* NULL, or free text: reason="..." */
    const struct authres_prop *props;
    size_t nprops;        /* at most AUTHRES_MAX_PROPS */
};

/* The whole field, "Authentication-Results: ...\r\n" (malloc'd). NULL when
 * authserv_id is empty, more than AUTHRES_MAX_METHODS methods are given, or
 * a method, result, ptype or property is not a keyword (1 to
 * AUTHRES_KEYWORD_MAX letters, digits, '-' or '_'), or too many props. */
char *authres_build(const char *authserv_id, const struct authres_method *m, size_t n);

/* 1 when a keyword as above. */
int authres_keyword_ok(const char *s);

/* 1 when the field called name (name_len bytes; blanks before the colon
 * allowed) with the value value[0..value_len) (folded or not, after the
 * colon) is an Authentication-Results field whose authserv-id is ours. */
int authres_is_ours(const char *name, size_t name_len, const char *value, size_t value_len,
                    const char *our_id);
/* The same for a whole raw field "Name: value" (with its continuation
 * lines and line end, as it stands in the header). */
int authres_field_is_ours(const char *field, size_t len, const char *our_id);
/* Removes, in place, every field of the header section hdr[0..len) (its
 * fields with their line ends, no empty line) that authres_field_is_ours
 * says claims our_id; returns the new length. What a receiving server does
 * with every message before it adds its own field (RFC 8601 §5). */
size_t authres_drop_ours(char *hdr, size_t len, const char *our_id);

/* ---- reading one field ---- */

struct authres_parsed_prop {
    char *ptype, *property, *value;
};

struct authres_parsed_method {
    char *method;
    unsigned version;     /* 1 when absent */
    char *result;
    char *reason;         /* NULL when absent */
    struct authres_parsed_prop *props;
    size_t nprops;
};

struct authres_parsed {
    char *authserv_id;
    unsigned version;     /* 1 when absent */
    int none;             /* "; none" */
    struct authres_parsed_method *methods;
    size_t nmethods;
};

/* Parses a field value (after the colon) of len bytes. 0 and *out filled
 * (free it with authres_parsed_free), or -1 with *out empty and err (at
 * least AUTHRES_ERR_MAX bytes, may be NULL) saying where and why. */
int authres_parse(const char *value, size_t len, struct authres_parsed *out, char *err);
void authres_parsed_free(struct authres_parsed *p);

#endif
