/* libFuzzer target: main.cf and master.cf parsing, expansion and checking
 * on arbitrary bytes. Built by `make fuzz`. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "conf/mastercf.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        log_set_stderr(0);
        quiet = 1;
    }
    struct conf *c = conf_new();
    struct strbuf diag = STRBUF_INIT;
    conf_load_mem(c, (const char *)data, size, "fuzz", &diag);
    /* Expanding every parameter exercises the $name machinery. */
    for (size_t i = 0; i < conf_params_count; i++)
        (void)conf_str(c, conf_params[i].name);
    conf_check(c, &diag);
    conf_free(c);
    struct mastercf m;
    memset(&m, 0, sizeof m);
    mastercf_load_mem(&m, (const char *)data, size, "fuzz", &diag);
    for (size_t i = 0; i < m.n; i++) {
        char *host = NULL, *port = NULL;
        if (mastercf_split_listen(m.svc[i].name, "all", &host, &port) == 0) {
            free(host);
            free(port);
        }
    }
    mastercf_free(&m);
    strbuf_free(&diag);
    return 0;
}
