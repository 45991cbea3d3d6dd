/* cidr: address-block lists (see cidr.h). */
#include "util/cidr.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "util/mem.h"
#include "util/str.h"

int cidr_list_add(struct cidr_list *l, const char *entry)
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

int cidr_list_match(const struct cidr_list *l, const char *addr)
{
    unsigned char a4[4], a6[16];
    int is4 = inet_pton(AF_INET, addr, a4) == 1;
    int is6 = !is4 && inet_pton(AF_INET6, addr, a6) == 1;
    if (is6) {
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
        if (memcmp(a6, mapped, 12) == 0) {
            memcpy(a4, a6 + 12, 4);
            is4 = 1;
        }
    }
    for (size_t i = 0; i < l->n; i++) {
        const struct cidr_block *b = &l->b[i];
        if (b->family == AF_INET && is4 && prefix_match(a4, b->addr, b->prefix))
            return 1;
        if (b->family == AF_INET6 && is6 && prefix_match(a6, b->addr, b->prefix))
            return 1;
    }
    return 0;
}

void cidr_list_free(struct cidr_list *l)
{
    free(l->b);
    memset(l, 0, sizeof *l);
}
