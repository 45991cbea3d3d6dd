/* delivered_to: Delivered-To loop detection (see delivered_to.h). */
#include "local/delivered_to.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

static const char FIELD[] = "Delivered-To";

/* A field's value, unfolded, against the address: surrounding blanks do
 * not count, case does not either. */
static int value_is(struct strbuf *value, const char *address)
{
    char *v = xstrdup(strbuf_str(value));
    int same = strcasecmp(str_trim(v), address) == 0;
    free(v);
    return same;
}

/* The length of the field name at line (a header field's "name:"), or 0
 * when the line is not a field. Blanks before the colon are allowed, as
 * RFC 5322's obsolete syntax and Postfix allow them. */
static size_t field_name_len(const char *line, size_t len)
{
    size_t n = 0;
    while (n < len && line[n] > ' ' && line[n] < 0x7f && line[n] != ':')
        n++;
    size_t colon = n;
    while (colon < len && (line[colon] == ' ' || line[colon] == '\t'))
        colon++;
    return n > 0 && colon < len && line[colon] == ':' ? n : 0;
}

int delivered_to_in_text(const char *text, size_t len, const char *address, int *header_ended)
{
    struct strbuf value = STRBUF_INIT;
    int in_field = 0;   /* the field being read is a Delivered-To */
    int found = 0, ended = 0;
    const char *p = text, *end = text + len;
    while (p < end && !found && !ended) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl ? nl : end;
        size_t line_len = (size_t)(line_end - p);
        if (line_len && p[line_len - 1] == '\r')
            line_len--;
        if (line_len > 0 && (p[0] == ' ' || p[0] == '\t')) {
            if (in_field)   /* a continuation of the field */
                strbuf_append(&value, p, line_len);
        } else {
            if (in_field)
                found = value_is(&value, address);
            in_field = 0;
            size_t name = line_len ? field_name_len(p, line_len) : 0;
            if (!name) {
                ended = 1;   /* the empty line, or a line that is no field: the body */
            } else if (name == sizeof FIELD - 1 && strncasecmp(p, FIELD, name) == 0) {
                const char *colon = memchr(p, ':', line_len);
                strbuf_reset(&value);
                strbuf_append(&value, colon + 1, line_len - (size_t)(colon + 1 - p));
                in_field = 1;
            }
        }
        p = nl ? nl + 1 : end;
    }
    if (in_field && !found)
        found = value_is(&value, address);
    strbuf_free(&value);
    if (header_ended)
        *header_ended = ended;
    return found;
}

/* Whether the content's header ends in buf[0..len) (an empty line: the
 * content's first line, or LF followed by LF or CRLF), looking at the
 * lines that start at from or later. */
static int header_complete(const char *buf, size_t len, size_t from)
{
    for (size_t i = from; i < len; i++) {
        if (i > 0 && buf[i - 1] != '\n')
            continue;   /* not the start of a line */
        if (buf[i] == '\n' || (buf[i] == '\r' && i + 1 < len && buf[i + 1] == '\n'))
            return 1;
    }
    return 0;
}

int delivered_to_loop(const struct deliver_input *in, const char *queued, const char *address,
                      struct deliver_error *err, char **content)
{
    if (content)
        *content = NULL;
    int found = queued && delivered_to_in_text(queued, strlen(queued), address, NULL);
    if (!found) {
        /* the content's header, read until its end (or the bound) */
        off_t want = in->length < DELIVERED_TO_HEADER_MAX ? in->length : DELIVERED_TO_HEADER_MAX;
        char *buf = xmalloc((size_t)want + 1);
        size_t have = 0;
        while ((off_t)have < want) {
            /* the first read takes a small message whole (no second read
             * to copy it), later ones go on in smaller steps */
            size_t step = have == 0 ? DELIVERED_TO_FIRST_READ : 16384;
            size_t chunk = (size_t)want - have < step ? (size_t)want - have : step;
            ssize_t n = pread(in->fd, buf + have, chunk, in->offset + (off_t)have);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                deliver_error_set(err, 1, "4.3.0", "cannot read queue file: %s", strerror(n < 0 ? errno : EIO));
                free(buf);
                return -1;
            }
            /* from a little before the new bytes: a CRLF may straddle two reads */
            size_t from = have > 2 ? have - 2 : 0;
            have += (size_t)n;
            if (header_complete(buf, have, from))
                break;
        }
        found = delivered_to_in_text(buf, have, address, NULL);
        if (!found && content && (off_t)have == in->length)
            *content = buf;
        else
            free(buf);
    }
    if (found) {
        char *shown = xstrdup(address);
        str_printable(shown);
        deliver_error_set(err, 0, "5.4.6", "mail forwarding loop for %s", shown);
        free(shown);
    }
    return found;
}

char *delivered_to_prepend(const char *from_line, const char *sender, const char *original, const char *address,
                           const char *queued)
{
    char *orig = original ? xasprintf("X-Original-To: %s\n", original) : xstrdup("");
    char *p = xasprintf("%sReturn-Path: <%s>\n%sDelivered-To: %s\n%s", from_line ? from_line : "", sender, orig,
                        address, queued ? queued : "");
    free(orig);
    return p;
}
