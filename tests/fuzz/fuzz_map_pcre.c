/* libFuzzer target for pcre: tables (src/maps/map_regexp.c): the input's
 * first line is the key, the rest the table's text; the table is written
 * to a file, opened as pcre:, and the key looked up (fuzz_map_lookup_twice).
 *
 *   make build/fuzz/fuzz_map_pcre && build/fuzz/fuzz_map_pcre CORPUS_COPY -max_total_time=60
 *
 * regexp: tables are not fuzzed here: glibc's regexec has no match limit,
 * so a pattern with back-references can take as long as it likes (tern
 * documents that pcre: is the table for patterns that see outside input).
 *
 * Checks, besides the sanitizers: a lookup answers 1 (with a value no
 * longer than MAP_MAX_LINE), 0 (no value) or -1; the same lookup twice
 * gives the same answer (first match wins, no state between lookups). */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *key = NULL;
    if (fuzz_map_lookup_twice("pcre", data, size, &key) != -2)
        free(key);
    return 0;
}
