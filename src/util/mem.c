/* mem: checked allocation and string helpers (see mem.h). */
#include "util/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void out_of_memory(size_t n)
{
    /* Plain write: the logger may itself need memory. */
    char msg[96];
    int len = snprintf(msg, sizeof msg, "tern: fatal: out of memory (%zu bytes)\n", n);
    if (len > 0)
        (void)!write(STDERR_FILENO, msg, (size_t)len);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        out_of_memory(n);
    return p;
}

void *xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        out_of_memory(count * size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        out_of_memory(n);
    return q;
}

void *xgrow(void *p, size_t *cap, size_t want, size_t elem_size)
{
    if (want <= *cap)
        return p;
    size_t ncap = *cap ? *cap : 8;
    while (ncap < want) {
        if (ncap > ((size_t)-1) / 2 / elem_size)
            out_of_memory(want * elem_size);
        ncap *= 2;
    }
    p = xrealloc(p, ncap * elem_size);
    *cap = ncap;
    return p;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *xvasprintf(const char *fmt, va_list ap)
{
    /* Most results are short: formatted once on the stack and copied,
     * instead of a measuring pass and a writing pass. */
    char small[256];
    va_list ap2;
    va_copy(ap2, ap);
    int len = vsnprintf(small, sizeof small, fmt, ap2);
    va_end(ap2);
    if (len < 0)
        out_of_memory(0);
    char *p = xmalloc((size_t)len + 1);
    if ((size_t)len < sizeof small)
        memcpy(p, small, (size_t)len + 1);
    else
        vsnprintf(p, (size_t)len + 1, fmt, ap);
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = xvasprintf(fmt, ap);
    va_end(ap);
    return p;
}
