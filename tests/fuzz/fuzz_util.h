/* fuzz_util: helpers the libFuzzer targets share: a checked invariant that
 * aborts (so libFuzzer keeps the input), splitting one input into fields,
 * files in memory for modules that read or write descriptors, and a scratch
 * directory for queue_file_writer. Header-only, test code. */
#ifndef TERN_TESTS_FUZZ_UTIL_H
#define TERN_TESTS_FUZZ_UTIL_H

#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "maps/map.h"
#include "spool/queue_file.h"
#include "util/log.h"
#include "util/mem.h"

/* A broken promise of the code under test: abort, so that libFuzzer stops
 * and writes the input out as a crash reproducer. */
#define FUZZ_REQUIRE(cond)                                                                          \
    do {                                                                                            \
        if (!(cond)) {                                                                              \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond);            \
            abort();                                                                                \
        }                                                                                           \
    } while (0)

/* Consumes the input field by field: each field ends at a NUL byte, the last
 * one at the end of the input. Seeds are written as NUL-separated fields. */
struct fuzz_fields {
    const uint8_t *data;
    size_t size, pos;
};

/* The next field, as a malloc'd C string (empty once the input is used up). */
static inline char *fuzz_field(struct fuzz_fields *f)
{
    size_t start = f->pos;
    while (f->pos < f->size && f->data[f->pos] != 0)
        f->pos++;
    char *s = xstrndup((const char *)f->data + start, f->pos - start);
    if (f->pos < f->size)
        f->pos++;
    return s;
}

/* The rest of the input, NULs included, without copying. */
static inline const uint8_t *fuzz_rest(struct fuzz_fields *f, size_t *len)
{
    *len = f->size - f->pos;
    const uint8_t *p = f->data + f->pos;
    f->pos = f->size;
    return p;
}

/* One byte of the input as a small number (0 once it is used up). */
static inline unsigned fuzz_byte(struct fuzz_fields *f)
{
    return f->pos < f->size ? f->data[f->pos++] : 0;
}

/* A file in memory holding data; -1 when memfd_create fails. */
static inline int fuzz_memfd(const void *data, size_t len)
{
    int fd = memfd_create("fuzz", MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    if (len > 0 && write(fd, data, len) != (ssize_t)len) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The whole content of fd (from offset 0), NUL-terminated, and its length. */
static inline char *fuzz_read_all(int fd, size_t *len)
{
    struct stat st;
    FUZZ_REQUIRE(fstat(fd, &st) == 0);
    char *buf = xmalloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got);
        FUZZ_REQUIRE(n > 0);
        got += (size_t)n;
    }
    buf[got] = '\0';
    *len = got;
    return buf;
}

/* A directory for queue files, made once per process under TMPDIR (or
 * /tmp) and removed at exit; its path and its descriptor. */
static inline char *fuzz_scratch_path(void)
{
    static char path[4096];
    return path;
}

static inline void fuzz_scratch_remove(void)
{
    rmdir(fuzz_scratch_path());
}

static inline int fuzz_scratch_dirfd(void)
{
    static int dirfd = -1;
    if (dirfd >= 0)
        return dirfd;
    const char *tmp = getenv("TMPDIR");
    char *path = fuzz_scratch_path();
    snprintf(path, 4096, "%s/tern-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    FUZZ_REQUIRE(mkdtemp(path) != NULL);
    dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    FUZZ_REQUIRE(dirfd >= 0);
    atexit(fuzz_scratch_remove);
    return dirfd;
}

/* A queue file being written in the scratch directory. */
static inline struct queue_file_writer *fuzz_writer_open(const char *name)
{
    struct queue_file_writer *w;
    FUZZ_REQUIRE(queue_file_writer_open(fuzz_scratch_dirfd(), name, &w) == 0);
    return w;
}

/* Finishes w (an envelope with no recipient), and returns the content that
 * was written to it, NUL-terminated, with its length; removes the file. */
static inline char *fuzz_writer_content(struct queue_file_writer *w, const char *name, size_t *len)
{
    struct queue_file_message m;
    queue_file_message_init(&m, "FUZZ", 0, "");
    FUZZ_REQUIRE(queue_file_writer_finish(w, &m) == 0);
    int fd = openat(fuzz_scratch_dirfd(), name, O_RDONLY | O_CLOEXEC);
    FUZZ_REQUIRE(fd >= 0);
    char *content = xmalloc(m.content_length + 1);
    for (size_t got = 0; got < m.content_length;) {
        ssize_t n = pread(fd, content + got, m.content_length - got, (off_t)(m.content_offset + got));
        FUZZ_REQUIRE(n > 0);
        got += (size_t)n;
    }
    content[m.content_length] = '\0';
    *len = m.content_length;
    close(fd);
    unlinkat(fuzz_scratch_dirfd(), name, 0);
    queue_file_message_free(&m);
    return content;
}

/* A table file target's input: the first line is the key, the rest the
 * table's text, written to a file of this process and opened as TYPE:.
 * Then both lookups of the key are checked alike (first match wins, no
 * state between lookups): the answer is 1 (a value within MAP_MAX_LINE),
 * 0 or -1 (no value), twice the same. Returns that answer, or -2 when the
 * input is no case (no first line, too large, a table map_open refuses);
 * *key is the key (malloc'd) when the answer is not -2. */
static inline int fuzz_map_lookup_twice(const char *type, const uint8_t *data, size_t size, char **key)
{
    static char path[64];
    if (!path[0]) {
        snprintf(path, sizeof path, "/tmp/tern-fuzz-%s-%d", type, (int)getpid());
        log_set_stderr(0);
        log_set_syslog(0);
        map_set_check_interval(0);
    }
    const uint8_t *nl = memchr(data, '\n', size);
    if (!nl || size > 8192)
        return -2;
    FILE *f = fopen(path, "w");
    FUZZ_REQUIRE(f != NULL);
    size_t len = size - (size_t)(nl + 1 - data);
    FUZZ_REQUIRE(fwrite(nl + 1, 1, len, f) == len);
    FUZZ_REQUIRE(fclose(f) == 0);
    char spec[96];
    snprintf(spec, sizeof spec, "%s:%s", type, path);
    char *err = NULL;
    struct map *m = map_open(spec, 0, &err);
    if (!m) {
        free(err);
        return -2;
    }
    *key = xstrndup((const char *)data, (size_t)(nl - data));
    char *v1 = NULL, *v2 = NULL;
    int r1 = map_lookup(m, *key, &v1);
    int r2 = map_lookup(m, *key, &v2);
    FUZZ_REQUIRE(r1 >= -1 && r1 <= 1);
    FUZZ_REQUIRE(r1 == r2);
    if (r1 == 1) {
        FUZZ_REQUIRE(v1 && v2 && strcmp(v1, v2) == 0);
        FUZZ_REQUIRE(strlen(v1) <= MAP_MAX_LINE);
    } else {
        FUZZ_REQUIRE(!v1 && !v2);
    }
    free(v1);
    free(v2);
    map_close(m);
    return r1;
}

/* 1 when every CR in buf is followed by LF and every LF preceded by CR. */
static inline int fuzz_is_crlf_only(const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '\r' && (i + 1 >= len || buf[i + 1] != '\n'))
            return 0;
        if (buf[i] == '\n' && (i == 0 || buf[i - 1] != '\r'))
            return 0;
    }
    return 1;
}

static inline int fuzz_has_8bit(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    for (size_t i = 0; i < len; i++)
        if (p[i] >= 0x80)
            return 1;
    return 0;
}

#endif
