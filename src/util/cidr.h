/* cidr: address-block lists such as mynetworks ("127.0.0.0/8 [::1]/128 10.1.2.3").
 *
 * Parses Postfix's notation (IPv6 in brackets or bare; a bare address is a
 * /32 or /128) and matches client addresses against it. IPv4-mapped IPv6
 * client addresses (::ffff:a.b.c.d) match IPv4 blocks. */
#ifndef TERN_UTIL_CIDR_H
#define TERN_UTIL_CIDR_H

#include <stddef.h>
#include <sys/socket.h>

struct cidr_block {
    int family;                 /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    int prefix;
};

struct cidr_list {
    struct cidr_block *b;
    size_t n, cap;
};

/* Adds one entry ("10.0.0.0/8", "[2001:db8::]/32", "::1"); -1 if malformed. */
int cidr_list_add(struct cidr_list *l, const char *entry);
/* Adds every entry of a comma/space separated string; returns the number of
 * malformed entries (each named in *bad, malloc'd, for the first one). */
int cidr_list_parse(struct cidr_list *l, const char *text, char **bad);
/* Matches a textual address ("192.0.2.1", "::1"); 1 match, 0 not. */
int cidr_list_match(const struct cidr_list *l, const char *addr);
void cidr_list_free(struct cidr_list *l);

#endif
