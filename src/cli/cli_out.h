/* cli_out: how the command-line tools print lines that carry text from
 * outside (addresses, queue IDs and reasons from the queue, replies of
 * other servers): the same printable rule as the log (str_printable), so
 * `tern queue` / mailq cannot be made to send escape sequences to the
 * terminal of whoever lists the queue. */
#ifndef TERN_CLI_CLI_OUT_H
#define TERN_CLI_CLI_OUT_H

#include <stdio.h>

/* Formats one line, makes it printable and writes it with a newline (the
 * format carries none). */
void cli_out_line(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
