/* capture_mime: capture mode's view of one message: its header fields,
 * addresses, text and HTML bodies, parts, links and one-time codes as a
 * JSON object, and the decoded content of one part for downloading.
 *
 * Called by capture mode's HTTP API (src/capture/) with a message as the
 * queue stores it (RFC 5322, CRLF or LF line ends). Pure: it reads only its
 * arguments, writes nothing, logs nothing, fetches nothing; the only global
 * state is GMime's, initialised once (thread-safe) on first use. Every input
 * gives an answer: invalid charsets, broken base64, missing boundaries, NUL
 * bytes and 8-bit garbage give the best view GMime can parse, and every
 * string in the JSON is valid UTF-8 without NUL (invalid bytes become
 * U+FFFD; capture_mime_text). The limits below bound the answer; hitting
 * one sets "truncated".
 *
 * The view, capture_mime_view:
 *   {"headers": [{"name", "value"}],  every field in order, the value
 *        unfolded and RFC 2047-decoded to UTF-8
 *    "subject": string ("" when none), "message_id": string or null (no <>),
 *    "date": RFC 3339 ("2026-12-06T21:22:45+01:00") or null when absent or
 *        unparsable,
 *    "from", "to", "cc", "reply_to": [{"name", "address"}] (groups flattened
 *        into their members; name "" when none),
 *    "text": the first text/plain leaf, "html": the first text/html leaf,
 *        each outside any attached message/rfc822, not a disposition
 *        attachment and without a file name; converted from its MIME
 *        charset to UTF-8 (an HTML <meta charset> is not read: mail
 *        declares it in Content-Type), line ends as LF; null when there is
 *        none. The HTML is not sanitised: the page sandboxes it.
 *    "parts": [{"part": N, "content_type": "type/subtype" (lower case),
 *        "filename": string or null (RFC 2231 and RFC 2047 decoded),
 *        "size": bytes after the transfer encoding is undone,
 *        "disposition": "inline", "attachment" or null (an unknown
 *        disposition counts as attachment, RFC 2183 section 2.8),
 *        "content_id": string or null (no <>)}]:
 *        every leaf part, depth first; containers (every multipart,
 *        message/rfc822) are not listed, the leaves of an attached message
 *        are; N counts from 1 and is what capture_mime_part takes,
 *    "attachments": the parts (same objects) that are attachments, or
 *        have a file name, other than the chosen text and HTML bodies,
 *    "links": http(s) URLs of the text body and the hrefs of the HTML
 *        body's <a> and <area>, in that order, each once
 *        (capture_mime_scan says which),
 *    "codes": one-time codes of the subject, the text and the HTML read as
 *        text, each once (capture_mime_scan states the rules),
 *    "truncated": true when a limit cut something}
 */
#ifndef TERN_CAPTURE_CAPTURE_MIME_H
#define TERN_CAPTURE_CAPTURE_MIME_H

#include <jansson.h>
#include <stddef.h>

struct capture_mime_limits {
    unsigned max_parts;            /* leaf parts numbered and listed */
    unsigned max_depth;            /* multipart and message/rfc822 nesting entered */
    size_t max_text_bytes;         /* "text", UTF-8 bytes, cut at a character */
    size_t max_html_bytes;         /* "html", likewise */
    unsigned max_links;
    unsigned max_codes;
    unsigned max_headers;          /* header fields listed */
    size_t max_header_value_bytes; /* each header value, file name, address */
    unsigned max_addresses;        /* per address field */
};

/* 1000 parts, depth 32, 2 MiB of text and of HTML, 500 links, 20 codes,
 * 1000 header fields of at most 16 KiB each, 1000 addresses per field. */
extern const struct capture_mime_limits capture_mime_default_limits;

/* The view of the len bytes at msg (see above), a new reference; lim NULL
 * means capture_mime_default_limits. Never NULL (allocation failure aborts,
 * as everywhere in tern). */
json_t *capture_mime_view(const char *msg, size_t len, const struct capture_mime_limits *lim);

/* One leaf part's content for a download. */
struct capture_mime_part_content {
    char *data;         /* transfer encoding undone, charset untouched; malloc'd,
                         * with a NUL after the len bytes */
    size_t len;
    /* "type/subtype" in lower case, with "; charset=..." for text: token
     * characters only (RFC 9110), so it can go into a Content-Type header
     * as it is; application/octet-stream when the part's is not. */
    char *content_type;
    /* The part's file name, UTF-8 on one line (no CR, LF or TAB), or NULL
     * when it names none. Outside text: a Content-Disposition header needs
     * it encoded (RFC 6266 filename*). */
    char *filename;
};

/* Fills out with leaf part number (as "parts" numbers it, under the same
 * limits: pass the lim given to capture_mime_view). 0, or -1 when the
 * message has no such part (out is then zeroed). */
int capture_mime_part(const char *msg, size_t len, unsigned number, const struct capture_mime_limits *lim,
                      struct capture_mime_part_content *out);
void capture_mime_part_content_free(struct capture_mime_part_content *content);

/* Releases GMime's global state, for tests and fuzz targets that check for
 * leaks at exit; no capture_mime call may follow. */
void capture_mime_shutdown(void);

#endif
