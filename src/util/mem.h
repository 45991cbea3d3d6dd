/* mem: checked allocation.
 *
 * Every allocation in tern goes through these wrappers. Running out of memory
 * is a broken environment we cannot reply through, so it is fatal (the master
 * restarts the process; the durable queue makes that harmless). */
#ifndef TERN_UTIL_MEM_H
#define TERN_UTIL_MEM_H

#include <stdarg.h>
#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
/* Grows an array of *cap elements of elem_size to hold at least want. */
void *xgrow(void *p, size_t *cap, size_t want, size_t elem_size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap);
#endif
