/* cli_out: printable output lines (see cli_out.h). */
#include "cli/cli_out.h"

#include <stdarg.h>
#include <stdlib.h>

#include "util/str.h"
#include "util/strbuf.h"

void cli_out_line(FILE *f, const char *fmt, ...)
{
    struct strbuf line = STRBUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    strbuf_vprintf(&line, fmt, ap);
    va_end(ap);
    char *text = strbuf_detach(&line);
    str_printable(text);
    fputs(text, f);
    fputc('\n', f);
    free(text);
}
