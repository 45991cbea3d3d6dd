/* capture_web: the web page's files (HTML, JavaScript, CSS), compiled into
 * the binary so the page works with no build step and no files to install.
 *
 * The sources live in src/capture/web/; the build turns them (and Debian's
 * DOMPurify, package node-dompurify) into a table (scripts/embed-web.py).
 * capture_http serves "/" (index.html, with a fresh CSP nonce put where
 * the file says {{nonce}}) and "/assets/NAME". Capture process only. */
#ifndef TERN_CAPTURE_CAPTURE_WEB_H
#define TERN_CAPTURE_CAPTURE_WEB_H

#include <stddef.h>

struct capture_asset {
    const char *name;          /* "index.html", "app.js", "purify.js" ... */
    const char *content_type;  /* "text/html; charset=utf-8" ... */
    const unsigned char *data;
    size_t len;
};

/* The asset of that name, or NULL. */
const struct capture_asset *capture_web_find(const char *name);

#endif
