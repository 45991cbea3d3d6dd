/* trusted_dir: a directory only root can change (see trusted_dir.h). */
#include "util/trusted_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/mem.h"

enum { TRUSTED_MAX_LINKS = 32 };

/* Refuses what a user other than root could change: the directory's
 * entries (what the walk opens next) and, for the last one, the files the
 * caller creates in it. */
static int check_dir(int fd, const char *where, int last, struct strbuf *why)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        strbuf_printf(why, "%s: %s", where, strerror(errno));
        return -1;
    }
    if (sb.st_uid != 0) {
        strbuf_printf(why, "%s is owned by uid %u, not root", where, (unsigned)sb.st_uid);
        errno = EPERM;
        return -1;
    }
    if ((sb.st_mode & (S_IWGRP | S_IWOTH)) && (last || !(sb.st_mode & S_ISVTX))) {
        strbuf_printf(why, "%s is writable by %s", where, sb.st_mode & S_IWOTH ? "others" : "its group");
        errno = EPERM;
        return -1;
    }
    return 0;
}

/* Joins the rest of the walk after a link's target. */
static char *join_rest(const char *target, const char *rest)
{
    return *rest ? xasprintf("%s/%s", target, rest) : xstrdup(target);
}

int trusted_dir_open(const char *path, struct strbuf *why)
{
    if (path[0] != '/') {
        strbuf_printf(why, "%s is not an absolute path", path);
        errno = EINVAL;
        return -1;
    }
    int fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        strbuf_printf(why, "/: %s", strerror(errno));
        return -1;
    }
    struct strbuf where = STRBUF_INIT; /* the directories walked, for messages */
    char *todo = xstrdup(path + 1);    /* what remains to walk */
    int links = 0;
    for (;;) {
        char *comp = todo;
        while (*comp == '/')
            comp++;
        if (!*comp)
            break;
        size_t len = strcspn(comp, "/");
        char *rest = comp + len + (comp[len] == '/');
        comp[len] = '\0';
        if (strcmp(comp, ".") == 0) {
            memmove(todo, rest, strlen(rest) + 1);
            continue;
        }
        const char *shown = where.len ? strbuf_str(&where) : "/";
        if (strcmp(comp, "..") == 0) {
            strbuf_printf(why, "%s: \"..\" is not allowed in the path", path);
            errno = EINVAL;
            goto fail;
        }
        if (check_dir(fd, shown, 0, why) != 0)
            goto fail;
        struct stat sb;
        if (fstatat(fd, comp, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
            strbuf_printf(why, "%s/%s: %s", where.len ? strbuf_str(&where) : "", comp, strerror(errno));
            goto fail;
        }
        if (S_ISLNK(sb.st_mode)) {
            char target[PATH_MAX];
            ssize_t n;
            if (sb.st_uid != 0) {
                strbuf_printf(why, "%s/%s is a symbolic link owned by uid %u, not root", strbuf_str(&where), comp,
                              (unsigned)sb.st_uid);
                errno = EPERM;
                goto fail;
            }
            if (++links > TRUSTED_MAX_LINKS ||
                (n = readlinkat(fd, comp, target, sizeof target - 1)) <= 0) {
                strbuf_printf(why, "%s/%s: %s", strbuf_str(&where), comp, links > TRUSTED_MAX_LINKS ?
                              "too many symbolic links" : strerror(errno));
                if (links > TRUSTED_MAX_LINKS)
                    errno = ELOOP;
                goto fail;
            }
            target[n] = '\0';
            char *next = join_rest(target[0] == '/' ? target + 1 : target, rest);
            free(todo);
            todo = next;
            if (target[0] == '/') { /* an absolute target starts again at / */
                int root = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (root < 0) {
                    strbuf_printf(why, "/: %s", strerror(errno));
                    goto fail;
                }
                close(fd);
                fd = root;
                strbuf_reset(&where);
            }
            continue;
        }
        int child = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (child < 0) {
            strbuf_printf(why, "%s/%s: %s", strbuf_str(&where), comp, strerror(errno));
            goto fail;
        }
        close(fd);
        fd = child;
        strbuf_printf(&where, "/%s", comp);
        memmove(todo, rest, strlen(rest) + 1);
    }
    if (check_dir(fd, where.len ? strbuf_str(&where) : "/", 1, why) != 0)
        goto fail;
    free(todo);
    strbuf_free(&where);
    return fd;
fail:;
    int e = errno;
    close(fd);
    free(todo);
    strbuf_free(&where);
    errno = e;
    return -1;
}
