/* smtp_data: decodes message content as it arrives after DATA or in BDAT
 * chunks, into canonical form: CRLF line endings, dot-stuffing undone.
 *
 * End of data is exactly <CRLF>.<CRLF> (the CRLF ending the DATA command
 * counts as the first one). Tern's line-ending policy, which is what keeps
 * SMTP smuggling out in both directions:
 *   - a bare LF ends a line like CRLF (it is stored as CRLF) in "normalize"
 *     mode, and is an error in "reject" mode; either way it can never be
 *     part of the end-of-data sequence, so "\n.\n", "\n.\r\n", "\r\n.\n"
 *     never end the data: such a lone dot is an ordinary (empty) line;
 *   - a bare CR (not followed by LF) is always an error: the message is read
 *     to its real end and rejected (it would be a line end to some peers);
 *   - a NUL is an error when the caller asks (SMTP_DATA_REJECT_NUL: content
 *     from the network), refused the same way: a receiver that drops NULs
 *     would see other content, or other line ends, than we checked.
 * Stored content therefore contains only CRLF line ends; when relayed, every
 * line that starts with a dot is stuffed again.
 *
 * The decoder owns no buffers: the caller gives input and an output area. */
#ifndef TERN_SMTP_SMTP_DATA_H
#define TERN_SMTP_SMTP_DATA_H

#include <stddef.h>

enum smtp_data_mode { SMTP_DATA_DOT, SMTP_DATA_BDAT };

/* What smtp_data_init's flags refuse besides a bare CR. */
enum {
    SMTP_DATA_REJECT_BARE_LF = 1,
    SMTP_DATA_REJECT_NUL = 2,
};

struct smtp_data {
    enum smtp_data_mode mode;
    int reject_bare_lf;
    int reject_nul;
    int state;
    int prev_crlf;          /* the last line ended in a real CRLF */
    int bare_cr, bare_lf;   /* seen in this message */
    int nul;                /* a NUL seen (only looked for with reject_nul) */
    int done;               /* end of data reached (DOT mode) */
    unsigned long long lines;
};

/* flags: SMTP_DATA_REJECT_BARE_LF, SMTP_DATA_REJECT_NUL, or 0. */
void smtp_data_init(struct smtp_data *d, enum smtp_data_mode mode, int flags);
/* Decodes from in[0..inlen) into out (outcap must be at least 2 * inlen + 2:
 * each input byte yields at most two). Stops after the end-of-data line.
 * Returns the number of input bytes consumed; *outlen gets the output size. */
size_t smtp_data_decode(struct smtp_data *d, const char *in, size_t inlen, char *out, size_t *outlen);
/* At the end of a BDAT LAST: flushes a pending CR (an error: bare CR). */
size_t smtp_data_finish(struct smtp_data *d, char *out);
/* The reason the content is refused, or NULL if it is acceptable. */
const char *smtp_data_error(const struct smtp_data *d);
/* The rule that reason cites ("RFC 5321 section 2.3.8"), or NULL. */
const char *smtp_data_error_rule(const struct smtp_data *d);

#endif
