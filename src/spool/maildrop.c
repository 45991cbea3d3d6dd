/* maildrop: sendmail's drop file format (see maildrop.h). */
#include "spool/maildrop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/mem.h"

static int valid_addr_text(const char *s)
{
    if (strlen(s) > MAILDROP_MAX_ADDR)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return 0;
    return 1;
}

/* getline() with a bound: the file is untrusted, and one line without a
 * newline must not be held in memory whole. Reads at most max + 1 bytes;
 * returns the length (the line is NUL-terminated), 0 at end of file, or
 * max + 1 when the line goes on past max. */
static size_t read_line_bounded(FILE *f, char **line, size_t *cap, size_t max)
{
    size_t n = 0;
    int ch;
    while (n <= max && (ch = getc(f)) != EOF) {
        *line = xgrow(*line, cap, n + 2, 1);
        (*line)[n++] = (char)ch;
        if (ch == '\n')
            break;
    }
    if (*line)
        (*line)[n] = '\0';
    return n;
}

int maildrop_read_env(FILE *f, struct maildrop_env *env, char *err, size_t errlen)
{
    memset(env, 0, sizeof *env);
    char *line = NULL;
    size_t cap = 0, total = 0;
    size_t n = read_line_bounded(f, &line, &cap, strlen(MAILDROP_MAGIC));
    int rc = -1;
    if (n == 0 || strcmp(line, MAILDROP_MAGIC) != 0) {
        snprintf(err, errlen, "not a maildrop file");
        goto out;
    }
    for (;;) {
        n = read_line_bounded(f, &line, &cap, MAILDROP_MAX_ENVELOPE - total);
        if (n == 0) {
            snprintf(err, errlen, "envelope not terminated");
            goto out;
        }
        total += n;
        if (total > MAILDROP_MAX_ENVELOPE) {
            snprintf(err, errlen, "envelope too large");
            goto out;
        }
        if (line[n - 1] != '\n' || memchr(line, 0, n)) {
            snprintf(err, errlen, "malformed envelope line");
            goto out;
        }
        line[n - 1] = '\0';
        if (line[0] == '\0')
            break;
        const char *v = line[1] == ' ' ? line + 2 : line + 1;
        if (line[0] != 'T' && !valid_addr_text(v)) {
            snprintf(err, errlen, "bad characters in envelope");
            goto out;
        }
        switch (line[0]) {
        case 'S':
            free(env->sender);
            env->sender = xstrdup(v);
            break;
        case 'F':
            free(env->full_name);
            env->full_name = xstrdup(v);
            break;
        case 'T':
            env->extract = 1;
            break;
        case 'N':
            free(env->notify);
            env->notify = xstrdup(v);
            break;
        case 'D':
            free(env->ret);
            env->ret = xstrdup(v);
            break;
        case 'E':
            free(env->envid);
            env->envid = xstrdup(v);
            break;
        case 'R':
            if (!*v)
                break;
            env->rcpts = xrealloc(env->rcpts, (env->nrcpts + 1) * sizeof *env->rcpts);
            env->rcpts[env->nrcpts++] = xstrdup(v);
            break;
        default:
            snprintf(err, errlen, "unknown envelope record '%c'", line[0]);
            goto out;
        }
    }
    if (!env->sender)
        env->sender = xstrdup("");
    env->content_offset = ftell(f);
    rc = 0;
out:
    free(line);
    if (rc != 0)
        maildrop_env_free(env);
    return rc;
}

void maildrop_env_free(struct maildrop_env *env)
{
    free(env->sender);
    free(env->full_name);
    free(env->notify);
    free(env->ret);
    free(env->envid);
    for (size_t i = 0; i < env->nrcpts; i++)
        free(env->rcpts[i]);
    free(env->rcpts);
    memset(env, 0, sizeof *env);
}

int maildrop_write_env(FILE *f, const struct maildrop_env *env)
{
    if (!valid_addr_text(env->sender) || (env->full_name && !valid_addr_text(env->full_name)) ||
        (env->notify && !valid_addr_text(env->notify)) || (env->ret && !valid_addr_text(env->ret)) ||
        (env->envid && !valid_addr_text(env->envid))) {
        errno = EINVAL;
        return -1;
    }
    fputs(MAILDROP_MAGIC, f);
    fprintf(f, "S %s\n", env->sender);
    if (env->full_name)
        fprintf(f, "F %s\n", env->full_name);
    if (env->extract)
        fputs("T\n", f);
    if (env->notify)
        fprintf(f, "N %s\n", env->notify);
    if (env->ret)
        fprintf(f, "D %s\n", env->ret);
    if (env->envid)
        fprintf(f, "E %s\n", env->envid);
    for (size_t i = 0; i < env->nrcpts; i++) {
        if (!valid_addr_text(env->rcpts[i])) {
            errno = EINVAL;
            return -1;
        }
        fprintf(f, "R %s\n", env->rcpts[i]);
    }
    fputc('\n', f);
    return ferror(f) ? -1 : 0;
}

size_t maildrop_line_norm_feed(struct line_norm *n, const char *in, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (n->pending_cr) {
            n->pending_cr = 0;
            out[o++] = '\r';
            out[o++] = '\n';
            if (c == '\n')
                continue;
        }
        if (c == '\r')
            n->pending_cr = 1;
        else if (c == '\n') {
            out[o++] = '\r';
            out[o++] = '\n';
        } else
            out[o++] = c;
    }
    return o;
}

size_t maildrop_line_norm_end(struct line_norm *n, char *out)
{
    if (!n->pending_cr)
        return 0;
    n->pending_cr = 0;
    out[0] = '\r';
    out[1] = '\n';
    return 2;
}
