/* Fuzz target for capture_mime (and the capture_mime_text, _html and _scan
 * modules under it): the message view and one part's download on arbitrary
 * bytes. Besides crashes, sanitizer reports and leaks it checks what the
 * view promises for every input (abort() on a violation): every string is
 * valid UTF-8 without NUL, the limits hold, every link passes the link rule,
 * every code has a code's shape, and the parts the view lists are the parts
 * capture_mime_part serves, with the sizes the view gave.
 *
 * The first input byte picks tight or default limits (tight ones reach the
 * truncation paths with small inputs); the rest is the message.
 *   make build/fuzz/fuzz_capture_mime
 *   build/fuzz/fuzz_capture_mime -max_total_time=60 CORPUS_COPY */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "capture/capture_mime.h"
#include "capture/capture_mime_scan.h"
#include "fuzz_util.h"
#include "util/str.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_strings(const json_t *j)
{
    size_t i;
    const char *key;
    json_t *v;
    switch (json_typeof(j)) {
    case JSON_STRING:
        FUZZ_REQUIRE(str_is_utf8(json_string_value(j), json_string_length(j)));
        FUZZ_REQUIRE(strlen(json_string_value(j)) == json_string_length(j));
        break;
    case JSON_ARRAY:
        json_array_foreach(j, i, v) check_strings(v);
        break;
    case JSON_OBJECT:
        json_object_foreach((json_t *)j, key, v) {
            FUZZ_REQUIRE(str_is_utf8(key, strlen(key)));
            check_strings(v);
        }
        break;
    default:
        break;
    }
}

static int is_code(const char *s)
{
    size_t n = strlen(s), digits = 0, upper = 0;
    for (size_t i = 0; i < n; i++) {
        digits += str_is_digit((unsigned char)s[i]);
        upper += s[i] >= 'A' && s[i] <= 'Z';
    }
    if (digits == n)
        return n >= 4 && n <= 10;
    return n >= 6 && n <= 10 && digits > 0 && digits + upper == n;
}

static void check_part(const char *msg, size_t len, const struct capture_mime_limits *lim, json_t *parts, size_t i)
{
    json_t *entry = json_array_get(parts, i);
    json_int_t number = json_integer_value(json_object_get(entry, "part"));
    FUZZ_REQUIRE(number == (json_int_t)i + 1);
    struct capture_mime_part_content c;
    FUZZ_REQUIRE(capture_mime_part(msg, len, (unsigned)number, lim, &c) == 0);
    FUZZ_REQUIRE((json_int_t)c.len == json_integer_value(json_object_get(entry, "size")));
    FUZZ_REQUIRE(c.content_type != NULL && strchr(c.content_type, '\r') == NULL &&
                 strchr(c.content_type, '\n') == NULL);
    json_t *filename = json_object_get(entry, "filename");
    FUZZ_REQUIRE((c.filename == NULL) == json_is_null(filename));
    if (c.filename)
        FUZZ_REQUIRE(strcmp(c.filename, json_string_value(filename)) == 0);
    capture_mime_part_content_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    struct capture_mime_limits tight = {
        .max_parts = 5, .max_depth = 3, .max_text_bytes = 64, .max_html_bytes = 64, .max_links = 3,
        .max_codes = 2, .max_headers = 4, .max_header_value_bytes = 16, .max_addresses = 2,
    };
    const struct capture_mime_limits *lim = data[0] & 1 ? &tight : &capture_mime_default_limits;
    const char *msg = (const char *)data + 1;
    size_t len = size - 1;

    json_t *v = capture_mime_view(msg, len, lim);
    FUZZ_REQUIRE(v != NULL && json_is_object(v));
    check_strings(v);
    json_t *parts = json_object_get(v, "parts"), *links = json_object_get(v, "links");
    json_t *codes = json_object_get(v, "codes");
    FUZZ_REQUIRE(json_array_size(parts) <= lim->max_parts);
    FUZZ_REQUIRE(json_array_size(links) <= lim->max_links && json_array_size(codes) <= lim->max_codes);
    FUZZ_REQUIRE(json_array_size(json_object_get(v, "headers")) <= lim->max_headers);
    FUZZ_REQUIRE(json_array_size(json_object_get(v, "attachments")) <= json_array_size(parts));
    const char *text = json_string_value(json_object_get(v, "text"));
    const char *html = json_string_value(json_object_get(v, "html"));
    FUZZ_REQUIRE(!text || strlen(text) <= lim->max_text_bytes);
    FUZZ_REQUIRE(!html || strlen(html) <= lim->max_html_bytes);
    FUZZ_REQUIRE(strlen(json_string_value(json_object_get(v, "subject"))) <= lim->max_header_value_bytes);
    for (size_t i = 0; i < json_array_size(links); i++) {
        const char *link = json_string_value(json_array_get(links, i));
        FUZZ_REQUIRE(capture_mime_scan_is_web_link(link, strlen(link)));
    }
    for (size_t i = 0; i < json_array_size(codes); i++)
        FUZZ_REQUIRE(is_code(json_string_value(json_array_get(codes, i))));

    /* Parts served as listed: the first, the last, and one past the end. */
    size_t n = json_array_size(parts);
    if (n > 0) {
        check_part(msg, len, lim, parts, 0);
        check_part(msg, len, lim, parts, n - 1);
    }
    struct capture_mime_part_content c;
    FUZZ_REQUIRE(capture_mime_part(msg, len, (unsigned)n + 1, lim, &c) == -1 && c.data == NULL);
    json_decref(v);
    return 0;
}
