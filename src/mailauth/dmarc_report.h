/* dmarc_report: DMARC aggregate reports (RFC 9990): what one evaluation
 * contributes to a report (a row), the line a row is kept as between the
 * evaluation and the report, the report's XML, and the message that
 * carries it (gzip'd XML attached, RFC 9990 3.5.2).
 *
 * Who calls it: smtpd fills a row for each DMARC evaluation of a domain
 * that asks for reports and sends its fields to the queue process; the
 * queue checks them again (dmarc_report_row_check: smtpd parses the
 * network and is not trusted), counts identical rows, keeps them as lines
 * in its dmarc/ directory, and at the end of each period builds one report
 * per policy domain with the functions below. The module does no I/O and
 * never logs.
 *
 * The line format (one row; fields separated by TAB, none may hold TAB,
 * CR, LF or anything outside printable ASCII):
 *   policy_domain source_ip header_from envelope_from envelope_to
 *   disposition dkim spf reason spf_domain spf_result
 *   then per DKIM signature: domain selector result (three fields each)
 * Empty fields are allowed where the row's field is optional. The file
 * line adds the count in front: "COUNT<TAB>line". */
#ifndef TERN_MAILAUTH_DMARC_REPORT_H
#define TERN_MAILAUTH_DMARC_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "mailauth/dmarc.h"

struct strbuf;

#define DMARC_REPORT_MAX_DKIM 8        /* signatures kept per row (RFC 9990 3.1.3 allows 100) */
#define DMARC_REPORT_FIELD_MAX 255     /* bytes of one field */
#define DMARC_REPORT_NAMESPACE "urn:ietf:params:xml:ns:dmarc-2.0"

struct dmarc_report_dkim {
    char *domain, *selector, *result;  /* d=, s=, an RFC 8601 DKIM result */
};

/* One evaluation, or many identical ones (count). Strings are malloc'd;
 * optional ones may be "" (never NULL once checked). */
struct dmarc_report_row {
    char *policy_domain;   /* where the DMARC record was found */
    char *source_ip;       /* the client's address, as inet_ntop writes it */
    char *header_from;     /* the Author Domain */
    char *envelope_from;   /* the MAIL FROM domain ("" for <>) */
    char *envelope_to;     /* the first recipient's domain, or "" */
    char *disposition;     /* none, pass, quarantine, reject */
    char *dkim, *spf;      /* pass, fail: DMARC-aligned results */
    char *reason;          /* "" or a PolicyOverrideType: local_policy, policy_test_mode, other ... */
    char *spf_domain;      /* "" when SPF was not checked */
    char *spf_result;      /* an RFC 8601 SPF result, "" with spf_domain "" */
    struct dmarc_report_dkim dkim_sigs[DMARC_REPORT_MAX_DKIM];
    size_t ndkim;
    uint64_t count;
};

void dmarc_report_row_free(struct dmarc_report_row *r);

/* Normalizes and checks every field of r (domains lower-cased, the address
 * re-written by inet_ntop, names from their lists). 0 when the row may go
 * into a report; -1 and why (printable, at most DMARC_ERR_MAX bytes) if not. */
int dmarc_report_row_check(struct dmarc_report_row *r, char *why);

/* 1 when s can be a DKIM selector: one or more labels (RFC 6376 3.1). */
int dmarc_report_selector_ok(const char *s);

/* Appends r's line (no count, no newline) to out. r must be checked. */
void dmarc_report_row_line(const struct dmarc_report_row *r, struct strbuf *out);
/* Parses a file line "COUNT<TAB>line" (no newline) into *r (checked);
 * 0, or -1 for a line that is not one. */
int dmarc_report_row_parse(const char *line, size_t len, struct dmarc_report_row *r);

/* The report's header data. */
struct dmarc_report_meta {
    const char *org_name;        /* dmarc_report_org_name */
    const char *email;           /* dmarc_report_address */
    const char *receiver;        /* this host's name ($myhostname): filename and Subject */
    const char *report_id;       /* dmarc_report_id() */
    time_t begin, end;           /* the period, end inclusive (begin + interval - 1) */
    const char *generator;       /* "tern 0.1.0" */
};

/* "BEGIN.POLICY_DOMAIN@RECEIVER": unique per receiver, domain and period,
 * and the same when a report is made again (RFC 9990 3.5.1, 3.5.2). */
char *dmarc_report_id(const struct dmarc_report_meta *meta, const char *policy_domain);

/* The XML of one report (RFC 9990 3.1.1, Appendix A): rows all of
 * policy_domain; rec is the policy record published there. Appended to out. */
void dmarc_report_xml(const struct dmarc_report_meta *meta, const char *policy_domain,
                      const struct dmarc_record *rec, struct dmarc_report_row *const *rows, size_t nrows,
                      struct strbuf *out);

/* gzip (RFC 1952) of data; 0 and *out (malloc'd, *outlen bytes), or -1. */
int dmarc_report_gzip(const void *data, size_t len, unsigned char **out, size_t *outlen);

/* "RECEIVER!POLICY_DOMAIN!BEGIN!END.xml.gz" (RFC 9990 3.5.2). */
char *dmarc_report_filename(const struct dmarc_report_meta *meta, const char *policy_domain);

/* The whole message (CRLF lines): From: the report address, To: each of
 * to[0..nto), the Subject RFC 9990 3.5.2 prescribes, a short text part and
 * the gzip'd XML as an application/gzip attachment. date: for the Date:
 * field; boundary_seed: any text that makes the MIME boundary unique. */
void dmarc_report_message(const struct dmarc_report_meta *meta, const char *policy_domain,
                          const char *const *to, size_t nto, const unsigned char *gz, size_t gzlen,
                          time_t date, const char *boundary_seed, struct strbuf *out);

/* A "mailto:" rua URI (RFC 9989 4.7: RFC 6068 mailto, one address; a
 * "?..." part is ignored) as an address: 0 and addr (malloc'd, local@host
 * with the host lower-cased) and *host (points into addr), or -1 when it
 * is not a mailto URI tern can send to. */
int dmarc_report_mailto(const char *uri, char **addr, const char **host);

#endif
