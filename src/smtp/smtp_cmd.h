/* smtp_cmd: SMTP command lines and the arguments of MAIL, RCPT, BDAT, HELO.
 *
 * Splits one received command line into verb and argument (RFC 5321 4.1.1),
 * and parses the MAIL and RCPT arguments with their ESMTP parameters: SIZE
 * (RFC 1870), BODY (RFC 6152, RFC 3030), SMTPUTF8 (RFC 6531), RET, ENVID,
 * NOTIFY, ORCPT (RFC 3461) and AUTH (RFC 4954). A parameter is accepted only
 * when the session advertised its extension (struct smtp_ext).
 *
 * Callers: the SMTP server session, which owns the line buffer and decides
 * what a command means in its state; this module only reads syntax. It owns
 * the strings in smtp_mail_args / smtp_rcpt_args until the matching _free.
 *
 * Errors: MAIL and RCPT failures come back as a complete SMTP reply (code,
 * enhanced status code, text) ready to send. The text never echoes client
 * bytes except a parameter keyword already checked to be letters, digits and
 * hyphens. The other parsers return -1. */
#ifndef TERN_SMTP_SMTP_CMD_H
#define TERN_SMTP_SMTP_CMD_H

#include <stddef.h>

#include "smtp/smtp_addr.h"

enum smtp_verb {
    SMTP_UNKNOWN,
    SMTP_HELO,
    SMTP_EHLO,
    SMTP_MAIL,
    SMTP_RCPT,
    SMTP_DATA,
    SMTP_BDAT,
    SMTP_RSET,
    SMTP_NOOP,
    SMTP_QUIT,
    SMTP_VRFY,
    SMTP_EXPN,
    SMTP_HELP,
    SMTP_STARTTLS,
    SMTP_AUTH
};

struct smtp_cmd {
    enum smtp_verb verb;
    /* The verb as sent, at most 15 octets (longer ones are cut: only for
     * logs and "unknown command" replies), bytes outside printable ASCII
     * replaced by '?'. */
    char verb_text[16];
    /* Points into the line just after the verb and one space ("" when none):
     * "MAIL FROM:<a@b> SIZE=10" gives "FROM:<a@b> SIZE=10". */
    const char *arg;
    size_t arg_len;
};

/* line holds one command without its CRLF and must have line[len] == '\0'
 * so that arg is a C string. Returns 0, or -1 if the line holds a NUL (the
 * session answers 500 5.5.2). The verb is matched case-insensitively; an
 * unknown one gives SMTP_UNKNOWN with verb_text filled. */
int smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *out);
/* Upper-case name of a verb ("MAIL"), "UNKNOWN" for SMTP_UNKNOWN. */
const char *smtp_verb_name(enum smtp_verb v);

/* A reply to send as is: code, enhanced code, text. */
struct smtp_reply_err {
    int code;
    const char *enh; /* static string, e.g. "5.5.4" */
    char text[160];
};

enum smtp_body { SMTP_BODY_NONE, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME, SMTP_BODY_BINARYMIME };

/* NOTIFY bits (RFC 3461 4.1); NEVER is never combined with the others. */
enum {
    SMTP_NOTIFY_SUCCESS = 1,
    SMTP_NOTIFY_FAILURE = 2,
    SMTP_NOTIFY_DELAY = 4,
    SMTP_NOTIFY_NEVER = 8
};

struct smtp_mail_args {
    struct smtp_path path;
    long long size;        /* SIZE=, -1 if absent; values past LLONG_MAX read as LLONG_MAX */
    enum smtp_body body;   /* SMTP_BODY_NONE if absent */
    int smtputf8;          /* SMTPUTF8 given */
    char *ret;             /* "FULL" or "HDRS" (upper-cased), NULL if absent */
    char *envid;           /* ENVID, xtext-decoded, NULL if absent */
    char *auth;            /* AUTH=, xtext-decoded ("<>" kept as is), NULL if absent */
};

struct smtp_rcpt_args {
    struct smtp_path path;
    unsigned notify;       /* SMTP_NOTIFY_* bits, 0 if absent */
    char *orcpt;           /* "addr-type;address", address xtext-decoded, NULL if absent */
};

/* What the session advertised in its EHLO reply, so which parameters MAIL
 * and RCPT may carry. All zero after HELO: then no parameter is accepted.
 * For RCPT, smtputf8 means "this transaction is SMTPUTF8": the caller passes
 * a copy with smtputf8 = advertised && the MAIL carried SMTPUTF8, and only
 * then may the recipient hold UTF-8. */
struct smtp_ext {
    int esmtp;             /* EHLO was used */
    int smtputf8, size, eightbit, dsn, chunking, binarymime;
    int auth;              /* AUTH advertised: MAIL may carry AUTH= */
};

/* arg is smtp_cmd.arg of a MAIL or RCPT command. Return 0 with *out filled,
 * or -1 with *err set and *out empty (its _free is harmless either way).
 * Lenient forms taken: spaces after the colon ("FROM: <a@b>") and a bare
 * address with no parameters ("FROM:a@b"). A NULL ext means nothing was
 * advertised. */
int smtp_parse_mail(const char *arg, const struct smtp_ext *ext, struct smtp_mail_args *out,
                    struct smtp_reply_err *err);
int smtp_parse_rcpt(const char *arg, const struct smtp_ext *ext, struct smtp_rcpt_args *out,
                    struct smtp_reply_err *err);
void smtp_mail_args_free(struct smtp_mail_args *a);
void smtp_rcpt_args_free(struct smtp_rcpt_args *a);

/* BDAT argument "<size> [LAST]" (RFC 3030): size in decimal digits only, at
 * most 2^63; LAST in any case. Returns 0 or -1. */
int smtp_parse_bdat(const char *arg, unsigned long long *size, int *last);

/* HELO/EHLO argument: a domain or an address literal, ASCII only, spaces
 * around it ignored. Returns 0 with *name_out a heap copy (when name_out is
 * not NULL), or -1 with *name_out NULL. Policy (reject or just log a bad
 * name) is the caller's. */
int smtp_parse_helo(const char *arg, char **name_out);

/* A NOTIFY value ("NEVER" or a comma list of SUCCESS, FAILURE, DELAY; any
 * case) into SMTP_NOTIFY_* bits: 0, or -1 when it is not one. For RCPT's
 * parameter and for sendmail -N, so both mean the same. */
int smtp_notify_parse(const char *value, size_t len, unsigned *bits);

/* An ENVID as sendmail -V gives it (RFC 3461 4.4: printable US-ASCII, at
 * most 100 characters): 1 when it is one. */
int smtp_envid_valid(const char *envid);

#endif
