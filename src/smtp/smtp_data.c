/* smtp_data: message content decoding and end-of-data detection (see smtp_data.h). */
#include "smtp/smtp_data.h"

#include <string.h>

enum {
    S_BOL,      /* at the start of a line */
    S_DOT,      /* a line that started with '.', the dot dropped */
    S_DOT_CR,   /* ".\r" at the start of a line */
    S_TEXT,     /* inside a line */
    S_CR,       /* a CR inside a line */
};

void smtp_data_init(struct smtp_data *d, enum smtp_data_mode mode, int flags)
{
    memset(d, 0, sizeof *d);
    d->mode = mode;
    d->reject_bare_lf = (flags & SMTP_DATA_REJECT_BARE_LF) != 0;
    d->reject_nul = (flags & SMTP_DATA_REJECT_NUL) != 0;
    d->state = S_BOL;
    d->prev_crlf = 1;
}

/* Ends the current line: stored as CRLF whatever ended it; real_crlf says
 * whether the client sent CRLF (only then may ".\r\n" end the data next). */
static size_t end_line(struct smtp_data *d, char *out, int real_crlf)
{
    out[0] = '\r';
    out[1] = '\n';
    d->lines++;
    d->prev_crlf = real_crlf;
    if (!real_crlf)
        d->bare_lf = 1;
    d->state = S_BOL;
    return 2;
}

size_t smtp_data_decode(struct smtp_data *d, const char *in, size_t inlen, char *out, size_t *outlen)
{
    size_t o = 0, i = 0;
    int dot_mode = d->mode == SMTP_DATA_DOT;
    while (i < inlen && !d->done) {
        char c = in[i++];
        switch (d->state) {
        case S_BOL:
            if (c == '.' && dot_mode) {
                d->state = S_DOT;
                break;
            }
            /* fall through */
        case S_TEXT:
        text:
            if (c == '\r') {
                d->state = S_CR;
            } else if (c == '\n') {
                o += end_line(d, out + o, 0);
            } else {
                /* Most bytes are ordinary text: copy the run up to the next
                 * CR or LF in one go. */
                const char *start = in + i - 1;
                size_t left = inlen - (i - 1);
                const char *lf = memchr(start, '\n', left);
                const char *cr = memchr(start, '\r', lf ? (size_t)(lf - start) : left);
                const char *end = cr ? cr : lf ? lf : in + inlen;
                size_t run = (size_t)(end - start);
                if (d->reject_nul && !d->nul && memchr(start, '\0', run))
                    d->nul = 1;
                memcpy(out + o, start, run);
                o += run;
                i += run - 1;
                d->state = S_TEXT;
            }
            break;
        case S_DOT:
            if (c == '\r') {
                d->state = S_DOT_CR;
            } else if (c == '\n') {
                /* ".\n": a lone dot ended by a bare LF never ends the data. */
                o += end_line(d, out + o, 0);
            } else {
                if (c == '\0' && d->reject_nul)
                    d->nul = 1;
                out[o++] = c;
                d->state = S_TEXT;
            }
            break;
        case S_DOT_CR:
            if (c == '\n') {
                if (d->prev_crlf) {
                    d->done = 1;
                    d->state = S_BOL;
                    break;
                }
                /* "\n.\r\n": not the end; an empty line. */
                o += end_line(d, out + o, 1);
            } else {
                d->bare_cr = 1;
                out[o++] = '\r';
                d->state = S_TEXT;
                goto text;
            }
            break;
        case S_CR:
            if (c == '\n') {
                o += end_line(d, out + o, 1);
            } else {
                d->bare_cr = 1;
                out[o++] = '\r';
                d->state = S_TEXT;
                goto text;
            }
            break;
        }
    }
    *outlen = o;
    return i;
}

size_t smtp_data_finish(struct smtp_data *d, char *out)
{
    size_t o = 0;
    if (d->state == S_CR || d->state == S_DOT_CR) {
        d->bare_cr = 1;
        out[o++] = '\r';
    }
    d->state = S_BOL;
    return o;
}

const char *smtp_data_error(const struct smtp_data *d)
{
    if (d->bare_cr)
        return "bare CR (a CR not followed by LF) in message content";
    if (d->bare_lf && d->reject_bare_lf)
        return "bare LF (an LF not preceded by CR) in message content";
    if (d->nul)
        return "NUL byte in message content";
    return NULL;
}

const char *smtp_data_error_rule(const struct smtp_data *d)
{
    if (d->bare_cr || (d->bare_lf && d->reject_bare_lf))
        return "RFC 5321 section 2.3.8";
    if (d->nul)
        return "RFC 2045 section 2.8"; /* 8bit data: no NULs; tern offers no BINARYMIME */
    return NULL;
}
