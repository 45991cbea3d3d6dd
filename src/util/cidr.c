/* cidr: address-block lists (see cidr.h). */
#include "util/cidr.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "util/mem.h"
#include "util/str.h"

int cidr_block_parse(struct cidr_block *out, const char *entry)
{
    char buf[128];
    if (str_copy(buf, entry, sizeof buf) >= sizeof buf)
        return -1;
    int prefix = -1;
    char *slash = strrchr(buf, '/');
    if (slash) {
        *slash = '\0';
        /* Digits only: strtol alone would take "+8", " 8" and "-0". */
        if (slash[1] < '0' || slash[1] > '9')
            return -1;
        char *end;
        long p = strtol(slash + 1, &end, 10);
        if (*end || p < 0 || p > 128)
            return -1;
        prefix = (int)p;
    }
    char *a = buf;
    size_t len = strlen(a);
    if (len >= 2 && a[0] == '[' && a[len - 1] == ']') {
        a[len - 1] = '\0';
        a++;
    }
    struct cidr_block b;
    memset(&b, 0, sizeof b);
    if (inet_pton(AF_INET, a, b.addr) == 1) {
        b.family = AF_INET;
        if (prefix < 0)
            prefix = 32;
        if (prefix > 32)
            return -1;
    } else if (inet_pton(AF_INET6, a, b.addr) == 1) {
        b.family = AF_INET6;
        if (prefix < 0)
            prefix = 128;
    } else {
        return -1;
    }
    b.prefix = prefix;
    *out = b;
    return 0;
}

int cidr_block_is_network(const struct cidr_block *b, struct cidr_block *net)
{
    struct cidr_block n = *b;
    size_t len = b->family == AF_INET ? 4 : 16;
    for (size_t i = 0; i < len; i++) {
        int keep = b->prefix - (int)i * 8; /* bits of this byte inside the prefix */
        unsigned char mask = keep >= 8 ? 0xFF : keep <= 0 ? 0 : (unsigned char)(0xFF << (8 - keep));
        n.addr[i] &= mask;
    }
    if (memcmp(n.addr, b->addr, len) == 0)
        return 1;
    if (net)
        *net = n;
    return 0;
}

int cidr_list_add(struct cidr_list *l, const char *entry)
{
    struct cidr_block b;
    if (cidr_block_parse(&b, entry) != 0)
        return -1;
    l->b = xgrow(l->b, &l->cap, l->n + 1, sizeof *l->b);
    l->b[l->n++] = b;
    return 0;
}

int cidr_list_parse(struct cidr_list *l, const char *text, char **bad)
{
    int nbad = 0;
    char *copy = xstrdup(text), *save = NULL;
    for (char *tok = strtok_r(copy, ", \t\r\n", &save); tok; tok = strtok_r(NULL, ", \t\r\n", &save)) {
        if (cidr_list_add(l, tok) != 0) {
            if (nbad++ == 0 && bad)
                *bad = xstrdup(tok);
        }
    }
    free(copy);
    return nbad;
}

static int prefix_match(const unsigned char *a, const unsigned char *b, int prefix)
{
    int full = prefix / 8, rest = prefix % 8;
    if (memcmp(a, b, (size_t)full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xFF << (8 - rest));
    return (a[full] & mask) == (b[full] & mask);
}

int cidr_addr_parse(struct cidr_addr *a, const char *text)
{
    memset(a, 0, sizeof *a);
    a->is4 = inet_pton(AF_INET, text, a->a4) == 1;
    a->is6 = !a->is4 && inet_pton(AF_INET6, text, a->a6) == 1;
    if (a->is6) {
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
        if (memcmp(a->a6, mapped, 12) == 0) {
            memcpy(a->a4, a->a6 + 12, 4);
            a->is4 = 1;
        }
    }
    return a->is4 || a->is6 ? 0 : -1;
}

int cidr_block_match(const struct cidr_block *b, const struct cidr_addr *a)
{
    if (b->family == AF_INET)
        return a->is4 && prefix_match(a->a4, b->addr, b->prefix);
    return a->is6 && prefix_match(a->a6, b->addr, b->prefix);
}

int cidr_list_match(const struct cidr_list *l, const char *addr)
{
    struct cidr_addr a;
    if (cidr_addr_parse(&a, addr) != 0)
        return 0;
    for (size_t i = 0; i < l->n; i++)
        if (cidr_block_match(&l->b[i], &a))
            return 1;
    return 0;
}

void cidr_list_free(struct cidr_list *l)
{
    free(l->b);
    memset(l, 0, sizeof *l);
}
