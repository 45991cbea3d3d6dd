/* dmarc_from: the Author Domain out of the From: field (RFC 9989 5.3.1,
 * 4.4, 11.5). See dmarc.h. */
#include <idn2.h>
#include <stdlib.h>
#include <string.h>

#include "mailauth/dmarc.h"
#include "msg/msg_header.h"
#include "msg/rfc5322_addr.h"
#include "util/str.h"

const char *dmarc_from_status_text(enum dmarc_from_status s)
{
    switch (s) {
    case DMARC_FROM_OK: return "ok";
    case DMARC_FROM_NO_FIELD: return "no From: field";
    case DMARC_FROM_SEVERAL_FIELDS: return "more than one From: field";
    case DMARC_FROM_INVALID: return "From: field is not valid";
    case DMARC_FROM_NO_ADDRESS: return "From: field holds no address";
    case DMARC_FROM_SEVERAL_DOMAINS: return "From: field holds addresses in several domains";
    case DMARC_FROM_BAD_DOMAIN: return "From: domain is not a host name";
    case DMARC_FROM_UTF8_DOMAIN: return "From: domain is not a valid internationalized domain name";
    }
    return "unknown";
}

/* RFC 9989 5.3.1: a U-label Author Domain is converted to A-labels
 * (IDNA2008 with UTS #46 mapping, as mail programs look names up) before
 * anything is looked up. 1 with the normalized name in out. */
static int utf8_to_alabels(const char *utf8, char out[DMARC_DOMAIN_MAX + 1])
{
    char *ascii = NULL;
    if (!str_is_utf8(utf8, strlen(utf8)) ||
        idn2_to_ascii_8z(utf8, &ascii, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT) != IDN2_OK)
        return 0;
    int ok = dmarc_domain_normalize(ascii, out) == 0;
    idn2_free(ascii);
    return ok;
}

void dmarc_from_value(const char *value, struct dmarc_from *out)
{
    memset(out, 0, sizeof *out);
    if (value == NULL || !rfc5322_addr_from_valid(value)) {
        out->status = DMARC_FROM_INVALID;
        return;
    }
    char **addrs = NULL;
    size_t n = 0;
    rfc5322_addr_list(value, &addrs, &n);
    out->naddrs = n;
    out->status = n == 0 ? DMARC_FROM_NO_ADDRESS : DMARC_FROM_OK;
    for (size_t i = 0; i < n && out->status == DMARC_FROM_OK; i++) {
        const char *at = strrchr(addrs[i], '@');
        char dom[DMARC_DOMAIN_MAX + 1];
        if (at == NULL || at[1] == '[') {
            out->status = DMARC_FROM_BAD_DOMAIN;
        } else if (str_has_8bit(at + 1, strlen(at + 1)) && !utf8_to_alabels(at + 1, dom)) {
            out->status = DMARC_FROM_UTF8_DOMAIN;
        } else if (!str_has_8bit(at + 1, strlen(at + 1)) && dmarc_domain_normalize(at + 1, dom) != 0) {
            out->status = DMARC_FROM_BAD_DOMAIN;
        } else if (i == 0) {
            memcpy(out->domain, dom, strlen(dom) + 1);
        } else if (strcmp(out->domain, dom) != 0) {
            out->status = DMARC_FROM_SEVERAL_DOMAINS;
        }
    }
    if (out->status != DMARC_FROM_OK)
        out->domain[0] = '\0';
    rfc5322_addr_list_free(addrs, n);
}

void dmarc_from_header(const char *hdr, size_t len, struct dmarc_from *out)
{
    struct msg_header_info info;
    memset(out, 0, sizeof *out);
    if (msg_header_scan(hdr, len, &info) != 0 || info.has_from == 0) {
        out->status = DMARC_FROM_NO_FIELD;
    } else if (info.has_from > 1) {
        out->status = DMARC_FROM_SEVERAL_FIELDS;
    } else if (info.has_nul) {
        out->status = DMARC_FROM_INVALID;
    } else {
        dmarc_from_value(info.from, out);
    }
    msg_header_info_free(&info);
}
