/* list_file: .forward and :include: files (see list_file.h). */
#include "local/list_file.h"
#include "local/deliver.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/mem.h"
#include "util/str.h"
#include "util/strbuf.h"

int list_file_check(enum list_file_kind kind, const struct stat *file, const struct stat *dir, uid_t user,
                    char *why, size_t whylen)
{
    if (!S_ISREG(file->st_mode)) {
        snprintf(why, whylen, "not a regular file");
        return -1;
    }
    if (file->st_size > LIST_FILE_MAX) {
        snprintf(why, whylen, "larger than %d bytes", LIST_FILE_MAX);
        return -1;
    }
    if (kind == LIST_FORWARD) {
        if (file->st_uid != user && file->st_uid != 0) {
            snprintf(why, whylen, "owned by uid %u, not by the user or root", (unsigned)file->st_uid);
            return -1;
        }
        if (file->st_mode & (S_IWGRP | S_IWOTH)) {
            snprintf(why, whylen, "writable by group or others");
            return -1;
        }
        return 0;
    }
    /* whoever may write it may give its owner's rights to commands */
    if (file->st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(why, whylen, "writable by group or others");
        return -1;
    }
    if (dir && (dir->st_mode & S_IWOTH) && !(dir->st_mode & S_ISVTX)) {
        snprintf(why, whylen, "in a directory others may write to");
        return -1;
    }
    return 0;
}

int list_file_parse(const char *text, size_t len, struct alias_result *out)
{
    /* each line an alias value; joined with commas into one */
    struct strbuf joined = STRBUF_INIT;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl ? nl : end;
        const char *s = p;
        while (s < line_end && str_is_space((unsigned char)*s))
            s++;
        if (s < line_end && *s != '#') {
            size_t n = (size_t)(line_end - s);
            if (n && s[n - 1] == '\r')
                n--;
            if (memchr(s, '\0', n)) {
                strbuf_free(&joined);
                memset(out, 0, sizeof *out);
                out->error = xstrdup("NUL byte in the file");
                return -1;
            }
            if (joined.len)
                strbuf_puts(&joined, ", ");
            strbuf_append(&joined, s, n);
        }
        p = nl ? nl + 1 : end;
    }
    int rc = alias_parse_value(joined.len ? joined.buf : "", out);
    strbuf_free(&joined);
    return rc;
}

int list_file_read(enum list_file_kind kind, const char *path, uid_t user, struct alias_result *targets,
                   uid_t *owner, char *why, size_t whylen)
{
    memset(targets, 0, sizeof *targets);
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (!slash || path[0] != '/') {
        free(dir);
        snprintf(why, whylen, "%s: not an absolute path", path);
        return -1;
    }
    if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    struct stat dst;
    int have_dir = stat(dir, &dst) == 0;
    free(dir);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        if (errno == ENOENT)
            return 1;
        snprintf(why, whylen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    char reason[128];
    if (fstat(fd, &st) != 0) {
        snprintf(why, whylen, "cannot stat %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    const char *pseudo = deliver_pseudo_fs(fd);
    if (pseudo) {
        snprintf(why, whylen, "%s is on the kernel's %s file system, not a list of addresses", path, pseudo);
        close(fd);
        return -1;
    }
    if (list_file_check(kind, &st, have_dir ? &dst : NULL, user, reason, sizeof reason) != 0) {
        snprintf(why, whylen, "%s is %s", path, reason);
        close(fd);
        return -1;
    }
    struct strbuf data = STRBUF_INIT;
    char buf[8192];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(why, whylen, "cannot read %s: %s", path, strerror(errno));
            strbuf_free(&data);
            close(fd);
            return -1;
        }
        if (n == 0 || data.len + (size_t)n > LIST_FILE_MAX)
            break;
        strbuf_append(&data, buf, (size_t)n);
    }
    close(fd);
    *owner = st.st_uid;
    int rc = list_file_parse(data.len ? data.buf : "", data.len, targets);
    strbuf_free(&data);
    if (rc != 0) {
        snprintf(why, whylen, "%s: %s", path, targets->error ? targets->error : "cannot be parsed");
        alias_result_free(targets);
        return -1;
    }
    return 0;
}

static const char *forward_var(const struct forward_vars *v, const char *name, size_t len, int *known)
{
    static const struct {
        const char *name;
        size_t offset;
    } names[] = {
        {"user", offsetof(struct forward_vars, user)},
        {"home", offsetof(struct forward_vars, home)},
        {"shell", offsetof(struct forward_vars, shell)},
        {"recipient", offsetof(struct forward_vars, recipient)},
        {"local", offsetof(struct forward_vars, local)},
        {"domain", offsetof(struct forward_vars, domain)},
        {"extension", offsetof(struct forward_vars, extension)},
        {"recipient_delimiter", offsetof(struct forward_vars, recipient_delimiter)},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strlen(names[i].name) == len && memcmp(names[i].name, name, len) == 0) {
            *known = 1;
            const char *value = *(const char *const *)((const char *)v + names[i].offset);
            return value && *value ? value : NULL;
        }
    }
    *known = 0;
    return NULL;
}

static int is_var_char(int c)
{
    return str_is_alnum((unsigned char)c) || c == '_';
}

/* A value into out: with filter, a byte not in it becomes '_'. */
static void put_value(struct strbuf *out, const char *value, const char *filter)
{
    for (const char *p = value; *p; p++)
        strbuf_putc(out, !filter || strchr(filter, *p) ? *p : '_');
}

/* forward_path_expand's syntax. undefined_empty: an undefined attribute
 * expands to nothing (command_execution_directory) instead of skipping
 * the entry (forward_path); an empty result is then an answer too. */
static char *expand(const char *entry, const struct forward_vars *v, const char *filter, int undefined_empty)
{
    struct strbuf out = STRBUF_INIT;
    const char *s = entry;
    while (*s) {
        if (*s != '$') {
            strbuf_putc(&out, *s++);
            continue;
        }
        s++;
        if (*s == '$') {
            strbuf_putc(&out, *s++);
            continue;
        }
        const char *name = s;
        char close = 0;
        if (*s == '{' || *s == '(') {
            close = *s == '{' ? '}' : ')';
            name = ++s;
        }
        while (is_var_char(*s))
            s++;
        size_t len = (size_t)(s - name);
        int known;
        const char *value = len ? forward_var(v, name, len, &known) : NULL;
        if (!len || !known)
            goto skip;
        if (!close) {
            if (!value && !undefined_empty)
                goto skip;
            if (value)
                put_value(&out, value, filter);
            continue;
        }
        char op = *s;
        const char *text = NULL;
        size_t text_len = 0;
        if (op == '?' || op == ':') {
            text = ++s;
            while (*s && *s != close)
                s++;
            text_len = (size_t)(s - text);
        }
        if (*s != close)
            goto skip;
        s++;
        if (op == '?') {
            if (value)
                strbuf_append(&out, text, text_len);
        } else if (op == ':') {
            if (!value)
                strbuf_append(&out, text, text_len);
        } else if (value) {
            put_value(&out, value, filter);
        } else if (!undefined_empty) {
            goto skip;
        }
    }
    if (!out.len && !undefined_empty)
        goto skip;
    return strbuf_detach(&out);
skip:
    strbuf_free(&out);
    return NULL;
}

char *forward_path_expand(const char *entry, const struct forward_vars *v)
{
    return expand(entry, v, NULL, 0);
}

char *command_dir_expand(const char *entry, const struct forward_vars *v, const char *filter)
{
    return expand(entry, v, filter, 1);
}
