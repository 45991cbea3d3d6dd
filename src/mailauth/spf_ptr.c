/* spf_ptr: the helpers of a check that read DNS answers: the client's
 * validated names (RFC 7208 §5.5, for the ptr mechanism and %{p}), names
 * and TXT strings in wire format, address prefixes. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "mailauth/spf_internal.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

void spf_free_names(char ***names, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free((*names)[i]);
    free(*names);
    *names = NULL;
    *n = 0;
}

/* 1 when the first bits of addr equal the client's. */
int spf_in_prefix(const struct spf_check *c, const unsigned char *addr, int bits)
{
    int full = bits / 8, rest = bits % 8;
    if (memcmp(addr, c->ip, (size_t)full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (addr[full] & mask) == (c->ip[full] & mask);
}

/* An RDATA name (uncompressed wire format) as text without the final dot;
 * NULL if it is malformed or holds what no host name holds. "" is the
 * root (a null MX). */
char *spf_wire_name(const unsigned char *p, size_t len)
{
    struct strbuf sb = STRBUF_INIT;
    size_t i = 0;
    for (;;) {
        if (i >= len || p[i] > 63) {
            strbuf_free(&sb);
            return NULL;
        }
        size_t l = p[i++];
        if (l == 0)
            break;
        if (i + l > len || sb.len + l + 1 > 254) {
            strbuf_free(&sb);
            return NULL;
        }
        for (size_t k = 0; k < l; k++)
            if (p[i + k] <= 0x20 || p[i + k] >= 0x7f || p[i + k] == '.') {
                strbuf_free(&sb);
                return NULL;
            }
        if (sb.len)
            strbuf_putc(&sb, '.');
        strbuf_append(&sb, p + i, l);
        i += l;
    }
    char *s = strbuf_detach(&sb);
    return s ? s : xstrdup("");
}

/* The record text of a TXT answer: each RR's strings concatenated (§3.3),
 * into *text when exactly one RR passes the filter (spf_only: starts with
 * "v=spf1"). Returns how many passed. */
size_t spf_txt_records(const struct dns_rrset *rs, int spf_only, char **text)
{
    size_t found = 0;
    *text = NULL;
    for (size_t i = 0; i < rs->nrrs; i++) {
        struct strbuf sb = STRBUF_INIT;
        /* all of it (an RR holds at most 64 KiB), so the parser refuses a
         * record longer than it may be (a permerror); malformed RDATA:
         * what could be read */
        (void)dns_txt_text(&rs->rrs[i], 65535, &sb);
        /* a NUL cannot live in a C string: make it a byte that no record
         * may hold, so the record is still a syntax error */
        for (size_t j = 0; j < sb.len; j++)
            if (sb.buf[j] == '\0')
                sb.buf[j] = '\x01';
        const char *s = strbuf_str(&sb);
        if (!spf_only || spf_is_spf_record(s, sb.len)) {
            if (++found == 1)
                *text = strbuf_detach(&sb);
            else {
                free(*text);
                *text = NULL;
            }
        }
        strbuf_free(&sb);
    }
    if (found == 1 && *text == NULL)
        *text = xstrdup("");
    return found;
}

/* ---- the PTR validation of §5.5, shared by ptr terms and %{p} ---- */

void spf_ptr_start(struct spf_check *c, int for_mech)
{
    char name[80];
    struct strbuf sb = STRBUF_INIT;
    if (c->family == AF_INET6) {
        for (int i = 15; i >= 0; i--)
            strbuf_printf(&sb, "%x.%x.", c->ip[i] & 15, c->ip[i] >> 4);
        strbuf_puts(&sb, "ip6.arpa");
    } else {
        strbuf_printf(&sb, "%u.%u.%u.%u.in-addr.arpa", c->ip[3], c->ip[2], c->ip[1], c->ip[0]);
    }
    str_copy(name, strbuf_str(&sb), sizeof name);
    strbuf_free(&sb);
    c->ptr_state = PTR_RUNNING;
    c->ptr_for_mech = for_mech;
    spf_ask(c, name, DNS_TYPE_PTR, W_PTR);
}

/* Validates the next PTR name, or ends the job. */
static void ptr_next(struct spf_check *c)
{
    if (c->iname < c->nnames) {
        spf_ask(c, c->names[c->iname], spf_addr_type(c), W_PTRADDR);
        return;
    }
    spf_free_names(&c->names, &c->nnames);
    c->ptr_state = PTR_DONE;
    c->wait = W_NONE;
}

void spf_ptr_answer(struct spf_check *c, struct dns_rrset *rs)
{
    if (rs->status != DNS_OK) {
        /* §5.5: a failed PTR lookup is no match, not an error */
        if (c->ptr_for_mech && (rs->status == DNS_NXDOMAIN || rs->status == DNS_NODATA))
            c->voids++;
        ptr_next(c);
        return;
    }
    for (size_t i = 0; i < rs->nrrs && c->nnames < SPF_MAX_PTR_NAMES; i++) {
        char *n = spf_wire_name(rs->rrs[i].data, rs->rrs[i].len);
        if (n != NULL && spf_domain_ok(n)) {
            c->names = xrealloc(c->names, (c->nnames + 1) * sizeof *c->names);
            c->names[c->nnames++] = n;
        } else {
            free(n);
        }
    }
    c->iname = 0;
    ptr_next(c);
}

void spf_ptr_addr_answer(struct spf_check *c, struct dns_rrset *rs)
{
    size_t want = c->family == AF_INET6 ? 16 : 4;
    int bits = c->family == AF_INET6 ? 128 : 32;
    /* §5.5: an error here skips this name only */
    if (rs->status == DNS_OK)
        for (size_t i = 0; i < rs->nrrs; i++)
            if (rs->rrs[i].len == want && spf_in_prefix(c, rs->rrs[i].data, bits)) {
                c->validated = xrealloc(c->validated, (c->nvalidated + 1) * sizeof *c->validated);
                c->validated[c->nvalidated++] = c->names[c->iname];
                c->names[c->iname] = NULL;
                break;
            }
    c->iname++;
    ptr_next(c);
}

int spf_validated_within(const struct spf_check *c, const char *target)
{
    size_t tl = strlen(target);
    for (size_t i = 0; i < c->nvalidated; i++) {
        const char *v = c->validated[i];
        size_t vl = strlen(v);
        if (strcasecmp(v, target) == 0 ||
            (vl > tl && v[vl - tl - 1] == '.' && strcasecmp(v + vl - tl, target) == 0))
            return 1;
    }
    return 0;
}

