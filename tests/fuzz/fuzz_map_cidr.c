/* libFuzzer target for cidr: tables (src/maps/map_cidr.c, util/cidr.c):
 * the input's first line is the key (an address, or anything), the rest
 * the table's text; the table is written to a file, opened as cidr:, and
 * the key looked up (fuzz_map_lookup_twice).
 *
 *   make build/fuzz/fuzz_map_cidr && build/fuzz/fuzz_map_cidr CORPUS_COPY -max_total_time=60
 *
 * Checks, besides the sanitizers: a lookup answers 1 (with a value no
 * longer than MAP_MAX_LINE) or 0 (no value), never -1 (the file is there);
 * the same lookup twice gives the same answer (first match wins, no state
 * between lookups); a key that is no address is never found. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *key = NULL;
    int found = fuzz_map_lookup_twice("cidr", data, size, &key);
    if (found == -2)
        return 0;
    FUZZ_REQUIRE(found == 0 || found == 1);
    unsigned char bin[16];
    if (inet_pton(AF_INET, key, bin) != 1 && inet_pton(AF_INET6, key, bin) != 1)
        FUZZ_REQUIRE(found == 0);
    free(key);
    return 0;
}
