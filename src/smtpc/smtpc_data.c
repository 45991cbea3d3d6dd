/* smtpc_data: streams a message's content after 354 (RFC 5321
 * §4.1.1.4, §4.5.2): read from the queue file a chunk at a time, a dot added
 * before every line that starts with one, then <CRLF>.<CRLF>.
 *
 * Stored content has CRLF line ends only (smtp_data.h). Should a bare CR or
 * LF ever be in it anyway, it goes out as CRLF, so the content can never
 * hold a line end that a peer reads differently from us and never an early
 * end of data (no SMTP smuggling through tern). The output buffer holds at
 * most about SMTPC_OUT_HIGH plus one encoded chunk; it is refilled from the
 * write callback when it drains below SMTPC_OUT_LOW. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smtpc/smtpc_internal.h"
#include "util/mem.h"

/* Encodes n octets of content into out (room for 2 * n + 1 octets);
 * returns the output length. A CR ending one chunk is settled by the first
 * octet of the next. */
static size_t encode(struct smtpc *c, const char *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char b = in[i];
        if (c->pending_cr) {
            c->pending_cr = 0;
            out[o++] = '\n';
            c->at_line_start = 1;
            if (b == '\n')
                continue;
        }
        if (b == '\r') {
            out[o++] = '\r';
            c->pending_cr = 1;
            c->at_line_start = 0;
        } else if (b == '\n') {
            out[o++] = '\r';
            out[o++] = '\n';
            c->at_line_start = 1;
        } else {
            if (c->at_line_start && b == '.')
                out[o++] = '.';
            out[o++] = b;
            c->at_line_start = 0;
        }
    }
    return o;
}

void smtpc_data_start(struct smtpc *c)
{
    c->pos = 0;
    c->at_line_start = 1;
    c->pending_cr = 0;
    c->scratch = xmalloc(SMTPC_CHUNK + 2 * SMTPC_CHUNK + 8);
    bufferevent_setwatermark(c->conn->bev, EV_WRITE, SMTPC_OUT_LOW, 0);
    const char *prepend = c->msg->prepend;
    if (prepend && *prepend) {
        /* a few header lines, encoded like the content (they end in CRLF,
         * so the content starts a line) */
        size_t n = strlen(prepend);
        char *enc = xmalloc(2 * n + 1);
        evbuffer_add(bufferevent_get_output(c->conn->bev), enc, encode(c, prepend, n, enc));
        free(enc);
    }
    smtpc_data_fill(c);
}

void smtpc_data_free(struct smtpc *c)
{
    free(c->scratch);
    c->scratch = NULL;
}

void smtpc_data_fill(struct smtpc *c)
{
    struct evbuffer *out = bufferevent_get_output(c->conn->bev);
    const struct smtpc_msg *m = c->msg;
    char *in = c->scratch, *enc = c->scratch + SMTPC_CHUNK;
    while (evbuffer_get_length(out) < SMTPC_OUT_HIGH && c->pos < m->length) {
        uint64_t left = m->length - c->pos;
        size_t want = left < SMTPC_CHUNK ? (size_t)left : SMTPC_CHUNK;
        ssize_t got = pread(m->content_fd, in, want, (off_t)(m->offset + c->pos));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            char *why = got < 0 ? xasprintf("error reading the queue file: %s", strerror(errno))
                                : xasprintf("queue file ends %llu octets into a %llu-octet message",
                                            (unsigned long long)c->pos, (unsigned long long)m->length);
            smtpc_content_failed(c, why);
            free(why);
            return;
        }
        size_t n = encode(c, in, (size_t)got, enc);
        evbuffer_add(out, enc, n);
        c->pos += (uint64_t)got;
    }
    if (c->pos < m->length)
        return;
    /* the end: settle a trailing CR, end the last line, then the dot */
    char tail[8];
    size_t t = 0;
    if (c->pending_cr) {
        tail[t++] = '\n';
        c->at_line_start = 1;
        c->pending_cr = 0;
    }
    if (!c->at_line_start) {
        tail[t++] = '\r';
        tail[t++] = '\n';
    }
    memcpy(tail + t, ".\r\n", 3);
    t += 3;
    evbuffer_add(out, tail, t);
    smtpc_data_free(c);
    smtpc_data_sent(c);
}
