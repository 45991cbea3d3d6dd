/* Fuzz target for msg_header and rfc5322_addr: header scanning, field removal and
 * address-list extraction on arbitrary bytes, plus round trips through the
 * builders. Besides crashes and sanitizer reports it checks properties that must
 * hold for every input (abort() on a violation).
 *
 * Build and run (clang 14, libclang-rt-14-dev):
 *   clang -std=c17 -D_GNU_SOURCE -Isrc -g -O1 -fsanitize=fuzzer,address,undefined \
 *     -o build/fuzz_msg_header tests/fuzz/fuzz_msg_header.c src/msg/msg_header.c \
 *     src/msg/rfc5322_addr.c src/util/mem.c src/util/strbuf.c
 *   build/fuzz_msg_header -max_total_time=60 -max_len=4096 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msg/msg_header.h"
#include "msg/rfc5322_addr.h"
#include "util/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int cond)
{
    if (!cond)
        abort();
}

static void check_scan(const char *buf, size_t len)
{
    struct msg_header_info h;
    require(msg_header_scan(buf, len, &h) == 0);
    require(h.header_len <= h.body_offset && h.body_offset <= len);
    if (h.has_body_separator)
        require(h.body_offset - h.header_len == 1 || h.body_offset - h.header_len == 2);
    else
        require(h.body_offset == h.header_len);
    require(!h.malformed || !h.has_body_separator);
    require((h.from != NULL) == (h.has_from > 0));
    require((h.message_id != NULL) == (h.has_message_id > 0));
    if (h.from)
        require(strlen(h.from) <= h.header_len);

    /* Removing Bcc leaves no Bcc and every other field where it was. */
    char *copy = xmalloc(len + 1);
    memcpy(copy, buf, len);
    size_t new_len = msg_header_remove_field(copy, len, "Bcc");
    require(new_len <= len);
    require(memcmp(copy + new_len - (len - h.body_offset), buf + h.body_offset,
                   len - h.body_offset) == 0);
    struct msg_header_info after;
    require(msg_header_scan(copy, new_len, &after) == 0);
    require(after.has_bcc == 0);
    if (h.has_from || h.has_to || h.received_count || h.has_date) {
        require(after.has_from == h.has_from && after.has_to == h.has_to);
        require(after.received_count == h.received_count && after.has_date == h.has_date);
        require(after.header_len == h.header_len - (len - new_len));
    }
    msg_header_info_free(&after);
    free(copy);
    msg_header_info_free(&h);
}

/* Every extracted address is clean and already in canonical form. */
static void check_addr_list(const char *value)
{
    char **addrs;
    size_t n;
    int count = rfc5322_addr_list(value, &addrs, &n);
    require(count >= 0 && (size_t)count == n);
    for (size_t i = 0; i < n; i++) {
        require(addrs[i][0] != '\0');
        for (const unsigned char *p = (const unsigned char *)addrs[i]; *p; p++)
            require(*p >= 0x20 && *p != 0x7f);
        char **again;
        size_t m;
        require(rfc5322_addr_list(addrs[i], &again, &m) == 1);
        require(strcmp(again[0], addrs[i]) == 0);
        rfc5322_addr_list_free(again, m);
    }
    rfc5322_addr_list_free(addrs, n);
    (void)rfc5322_addr_from_valid(value);
}

/* Whatever the full name, the From: field scans as one field whose value is a
 * valid From: holding exactly the sender address. */
static void check_from_round_trip(const char *name)
{
    char *field = msg_header_from("user@example.com", name);
    require(field != NULL);
    struct msg_header_info h;
    require(msg_header_scan(field, strlen(field), &h) == 0);
    require(h.has_from == 1 && h.header_len == strlen(field) && !h.malformed);
    char **addrs;
    size_t n;
    require(rfc5322_addr_list(h.from, &addrs, &n) == 1);
    require(strcmp(addrs[0], "user@example.com") == 0);
    rfc5322_addr_list_free(addrs, n);
    require(rfc5322_addr_from_valid(h.from));
    msg_header_info_free(&h);
    free(field);
}

/* Hostile HELO and recipient cannot break the Received: field apart. */
static void check_received(const char *text)
{
    struct msg_received r = {
        .helo = text, .client_name = text, .client_addr = "192.0.2.1", .by_host = "mx",
        .protocol = "ESMTP", .queue_id = "ID", .for_rcpt = text, .tls_info = text,
        .mail_name = "Tern", .when = 1795622580,
    };
    char *field = msg_header_received(&r);
    require(field != NULL);
    struct msg_header_info h;
    require(msg_header_scan(field, strlen(field), &h) == 0);
    require(h.received_count == 1 && h.header_len == strlen(field) && !h.malformed);
    require(!h.has_from && !h.has_bcc);
    msg_header_info_free(&h);
    free(field);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    check_scan(buf, size);

    char *value = xmalloc(size + 1);
    memcpy(value, data, size);
    value[size] = '\0';
    check_addr_list(value);
    check_from_round_trip(value);
    check_received(value);
    free(value);
    return 0;
}
