/* libFuzzer target for alias_parse_value, plus alias expansion over an
 * inline table built from the same input, and the same bytes as a .forward
 * or :include: file (list_file_parse, which root's local agent runs on
 * files users write).
 *
 *   clang -std=c17 -D_GNU_SOURCE -Isrc -g -O1 -fsanitize=fuzzer,address,undefined \
 *       tests/fuzz/fuzz_aliases.c src/maps/alias.c src/maps/map.c \
 *       src/util/mem.c src/util/strbuf.c src/util/log.c src/util/fsops.c -o build/fuzz_aliases
 *   build/fuzz_aliases -max_total_time=60
 *
 * Checks, besides the sanitizers: every result is either a clean list of
 * well-formed targets or an error with a message, never both. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "local/list_file.h"
#include "maps/alias.h"
#include "maps/map.h"
#include "util/log.h"
#include "util/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_result(int rc, const struct alias_result *r)
{
    if (rc == -1) {
        if (!r->error || r->n || r->t)
            abort();
        return;
    }
    if (r->error)
        abort();
    for (size_t i = 0; i < r->n; i++) {
        const struct alias_target *t = &r->t[i];
        if (!t->value || !*t->value || (unsigned)t->type > ALIAS_INCLUDE)
            abort();
        if ((t->type == ALIAS_FILE || t->type == ALIAS_INCLUDE) && t->value[0] != '/')
            abort();
        if (t->type == ALIAS_ADDRESS && !strchr(t->value, '@'))
            abort();
        for (const char *p = t->value; *p; p++)
            if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
                abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        log_set_stderr(0);
        quiet = 1;
    }
    char *value = xstrndup((const char *)data, size);

    struct alias_result r;
    int rc = alias_parse_value(value, &r);
    if (rc != 0 && rc != -1)
        abort();
    check_result(rc, &r);
    alias_result_free(&r);

    /* The raw bytes (NULs and all) as a .forward or :include: file. */
    rc = list_file_parse((const char *)data, size, &r);
    if (rc != 0 && rc != -1)
        abort();
    check_result(rc, &r);
    alias_result_free(&r);

    /* The same text as an alias table: a=<input>, and every bare name in the
     * input maps back into the input, to exercise loops and recursion. */
    if (!strchr(value, '}') && !strchr(value, '{')) {
        char *spec = xasprintf("inline:{ {a = %s}, {b = a, %s}, {c = b} }", value, value);
        struct map_list *l = map_list_open(spec, MAP_ALIAS_FORMAT, NULL);
        if (l) {
            rc = alias_expand(l, "a", &r);
            if (rc < -1 || rc > 1)
                abort();
            check_result(rc, &r);
            if (rc == -1 && r.temporary)
                abort(); /* inline tables never fail */
            alias_result_free(&r);
            map_list_close(l);
        }
        free(spec);
    }
    free(value);
    return 0;
}
