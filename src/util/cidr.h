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

/* Parses one entry ("10.0.0.0/8", "[2001:db8::]/32", "::1") into *b; -1
 * if malformed. Bits past the prefix are kept as written. */
int cidr_block_parse(struct cidr_block *b, const char *entry);
/* 1 when no bit of b's address past its prefix is set ("10.0.0.0/8", not
 * "10.1.0.0/8"); else 0 and *net (if not NULL) is the block's network. */
int cidr_block_is_network(const struct cidr_block *b, struct cidr_block *net);

/* An address to match, parsed once: IPv4, or IPv6 (an IPv4-mapped one
 * also as its IPv4 address). */
struct cidr_addr {
    int is4, is6;
    unsigned char a4[4], a6[16];
};
/* "192.0.2.1", "2001:db8::1" (no brackets, no prefix); -1 otherwise. */
int cidr_addr_parse(struct cidr_addr *a, const char *text);
/* 1 when a is inside b, else 0 (an address of the other family never is). */
int cidr_block_match(const struct cidr_block *b, const struct cidr_addr *a);

/* Adds one entry (as cidr_block_parse); -1 if malformed. */
int cidr_list_add(struct cidr_list *l, const char *entry);
/* Adds every entry of a comma/space separated string; returns the number of
 * malformed entries (each named in *bad, malloc'd, for the first one). */
int cidr_list_parse(struct cidr_list *l, const char *text, char **bad);
/* Matches a textual address ("192.0.2.1", "::1"); 1 match, 0 not. */
int cidr_list_match(const struct cidr_list *l, const char *addr);
void cidr_list_free(struct cidr_list *l);

#endif
