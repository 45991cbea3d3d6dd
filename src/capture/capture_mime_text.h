/* capture_mime_text: text as capture mode's message view shows it: bytes in
 * any charset made into valid UTF-8, within a byte bound.
 *
 * For capture_mime and its parts (capture_mime_html, capture_mime_scan) only.
 * Everything the view puts into JSON passes through here, because jansson
 * refuses invalid UTF-8 and mail is full of it: undeclared 8-bit text,
 * charsets iconv does not know, bytes a charset does not define. Nothing is
 * ever refused: an invalid byte becomes U+FFFD. Uses GMime's charset names
 * and iconv cache (g_mime_init must have run); no other state. */
#ifndef TERN_CAPTURE_CAPTURE_MIME_TEXT_H
#define TERN_CAPTURE_CAPTURE_MIME_TEXT_H

#include <stddef.h>

#include "util/strbuf.h"

enum capture_mime_text_mode {
    /* A body: TAB and LF kept, CRLF becomes LF, a lone CR becomes LF. */
    CAPTURE_MIME_TEXT_BODY,
    /* One line (a header value, a file name): TAB, CR and LF become a space. */
    CAPTURE_MIME_TEXT_LINE,
};

/* Appends the len bytes at in to out as valid UTF-8: each byte that does not
 * start a well-formed character (RFC 3629) becomes U+FFFD, and so do NUL and
 * the other C0 controls and DEL that mode does not keep (a NUL would cut the
 * string short for every C consumer of the JSON). Stops before out->len
 * would pass max, never inside a character; returns 1 when it stopped
 * early, 0 when all of in was appended. */
int capture_mime_text_clean(struct strbuf *out, const char *in, size_t len, enum capture_mime_text_mode mode,
                            size_t max);

/* Like capture_mime_text_clean, for len bytes in charset (a MIME charset
 * name, as a Content-Type parameter gives it; NULL when none was given):
 * converted to UTF-8 with iconv under GMime's names for charsets. No charset,
 * US-ASCII, or a charset iconv does not know: the bytes are taken as UTF-8 if
 * they are valid UTF-8, else as windows-1252 (what browsers do with
 * undeclared 8-bit text). A byte the charset does not define becomes U+FFFD
 * and conversion goes on with the next byte. */
int capture_mime_text_decode(struct strbuf *out, const char *in, size_t len, const char *charset,
                             enum capture_mime_text_mode mode, size_t max);

#endif
