/* libFuzzer target for cidr: tables (src/maps/map_cidr.c, util/cidr.c):
 * the input's first line is the key (an address, or anything), the rest
 * the table's text; the table is written to a file, opened as cidr:, and
 * the key looked up.
 *
 *   make build/fuzz/fuzz_map_cidr && build/fuzz/fuzz_map_cidr CORPUS_COPY -max_total_time=60
 *
 * Checks, besides the sanitizers: a lookup answers 1 (with a value no
 * longer than MAP_MAX_LINE) or 0 (no value), never -1 (the file is there);
 * the same lookup twice gives the same answer (first match wins, no state
 * between lookups); a key that is no address is never found. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <arpa/inet.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "maps/map.h"
#include "util/log.h"
#include "util/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char table_path[64];

static void write_table(const uint8_t *text, size_t len)
{
    FILE *f = fopen(table_path, "w");
    FUZZ_REQUIRE(f != NULL);
    FUZZ_REQUIRE(fwrite(text, 1, len, f) == len);
    FUZZ_REQUIRE(fclose(f) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!table_path[0]) {
        snprintf(table_path, sizeof table_path, "/tmp/tern-fuzz-cidr-%d", (int)getpid());
        log_set_stderr(0);
        log_set_syslog(0);
        map_set_check_interval(0);
    }
    const uint8_t *nl = memchr(data, '\n', size);
    if (!nl || size > 8192)
        return 0;
    char *key = xstrndup((const char *)data, (size_t)(nl - data));
    write_table(nl + 1, size - (size_t)(nl + 1 - data));
    char spec[80];
    snprintf(spec, sizeof spec, "cidr:%s", table_path);
    char *err = NULL;
    struct map *m = map_open(spec, 0, &err);
    if (!m) {
        free(err);
        free(key);
        return 0;
    }
    char *v1 = NULL, *v2 = NULL;
    int r1 = map_lookup(m, key, &v1);
    int r2 = map_lookup(m, key, &v2);
    FUZZ_REQUIRE(r1 == 0 || r1 == 1);
    FUZZ_REQUIRE(r1 == r2);
    unsigned char bin[16];
    if (inet_pton(AF_INET, key, bin) != 1 && inet_pton(AF_INET6, key, bin) != 1)
        FUZZ_REQUIRE(r1 == 0);
    if (r1 == 1) {
        FUZZ_REQUIRE(v1 && v2 && strcmp(v1, v2) == 0);
        FUZZ_REQUIRE(strlen(v1) <= MAP_MAX_LINE);
    } else {
        FUZZ_REQUIRE(!v1 && !v2);
    }
    free(v1);
    free(v2);
    map_close(m);
    free(key);
    return 0;
}
