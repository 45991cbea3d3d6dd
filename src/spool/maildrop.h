/* maildrop: the file `sendmail` leaves in maildrop/ for pickup.
 *
 *   TERNMD01\n
 *   S <envelope sender>\n          (empty for <>)
 *   F <full name>\n                (optional, sendmail -F)
 *   T\n                            (optional, sendmail -t)
 *   N <notify>\n                   (optional, sendmail -N: NEVER, or SUCCESS,DELAY,FAILURE
 *                                  as in RCPT's NOTIFY; for every recipient)
 *   D <FULL|HDRS>\n                (optional, sendmail -R: the message's RET)
 *   E <envid>\n                    (optional, sendmail -V: the message's ENVID)
 *   R <recipient>\n                (zero or more)
 *   \n
 *   content in canonical form (CRLF line ends)
 *
 * Writers: the sendmail command (any local user). Reader: pickup, which
 * treats the file as untrusted input. */
#ifndef TERN_SPOOL_MAILDROP_H
#define TERN_SPOOL_MAILDROP_H

#include <stddef.h>
#include <stdio.h>

#define MAILDROP_MAGIC "TERNMD01\n"
#define MAILDROP_MAX_ENVELOPE (4u * 1024 * 1024)
/* Recipients one drop file may name (sendmail refuses more; the queue
 * moves such a file aside rather than be held up by it). */
#define MAILDROP_MAX_RCPTS 10000
#define MAILDROP_MAX_ADDR 1024

struct maildrop_env {
    char *sender;
    char *full_name;
    int extract;
    char *notify;           /* NOTIFY text for every recipient, NULL if not given */
    char *ret;              /* "FULL" or "HDRS", NULL if not given */
    char *envid;            /* NULL if not given */
    char **rcpts;
    size_t nrcpts;
    long content_offset;    /* where the content starts in the file */
};

/* Reads and validates the envelope from f (positioned at the start);
 * leaves f at the content. 0 ok, -1 with reason. */
int maildrop_read_env(FILE *f, struct maildrop_env *env, char *err, size_t errlen);
void maildrop_env_free(struct maildrop_env *env);
/* Writes an envelope; -1 with errno. */
int maildrop_write_env(FILE *f, const struct maildrop_env *env);

/* Line-end normalisation for locally submitted text: CRLF, LF and a lone
 * CR all end a line and become CRLF. State carries across calls (a CR at
 * the end of one buffer may pair with an LF at the start of the next).
 * out must hold 2 * len + 2 bytes. */
struct line_norm { int pending_cr; };
size_t maildrop_line_norm_feed(struct line_norm *n, const char *in, size_t len, char *out);
size_t maildrop_line_norm_end(struct line_norm *n, char *out);

#endif
