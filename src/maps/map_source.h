/* map_source: the logical lines of a table's source file, shared by the
 * readers of every file table type (map.c's key/value tables and
 * map_regexp.c's pattern tables), so they agree on what a line is.
 *
 * Rules (Postfix's): blank lines and lines whose first non-blank is '#' are
 * ignored; a line that starts with whitespace continues the previous one
 * (the newline is dropped, the whitespace kept); a trailing CR and trailing
 * blanks are dropped. A logical line over MAP_MAX_LINE bytes or holding a
 * NUL byte is skipped with a warning naming file and line. */
#ifndef TERN_MAPS_MAP_SOURCE_H
#define TERN_MAPS_MAP_SOURCE_H

#include <stddef.h>

/* Called with each logical line (NUL-terminated, may be modified in place)
 * and the number of the physical line it starts on. */
typedef void map_source_line_fn(void *arg, const char *path, size_t lineno, char *line);

void map_source_lines(const char *path, const char *data, size_t len, map_source_line_fn *fn,
                      void *arg);

#endif
