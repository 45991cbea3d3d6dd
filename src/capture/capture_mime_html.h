/* capture_mime_html: an HTML body read as text, and the links of its <a> and
 * <area> elements, for capture mode's message view (codes are looked for in
 * the text; the links are listed). For capture_mime only.
 *
 * Not an HTML parser and not a sanitizer: the web page shows the HTML itself,
 * sandboxed. This is one bounded pass over the bytes (time and output linear
 * in the input): tags are dropped (block elements and <br> leave a line end,
 * table cells a space), the contents of <script>, <style> and <title> and
 * comments are skipped (what a reader never sees cannot be a code), and the
 * common character references are decoded: &amp; &lt; &gt; &quot; &apos;
 * &nbsp; a few typographic ones, and every numeric &#N; / &#xH; (one that is
 * no Unicode scalar value becomes U+FFFD). Anything else stays as written.
 * GLib and GMime offer no HTML-to-text, and a library for this much would
 * bring more code than it saves. Pure; input is UTF-8 (capture_mime_text). */
#ifndef TERN_CAPTURE_CAPTURE_MIME_HTML_H
#define TERN_CAPTURE_CAPTURE_MIME_HTML_H

#include <stddef.h>

#include "capture/capture_mime_scan.h"
#include "util/strbuf.h"

/* Appends the text of the len bytes of html to text, and adds to links each
 * href of an <a> or <area> tag, character references decoded and blanks
 * around it trimmed, that capture_mime_scan_is_web_link accepts. */
void capture_mime_html_read(const char *html, size_t len, struct strbuf *text,
                            struct capture_mime_scan_list *links);

#endif
