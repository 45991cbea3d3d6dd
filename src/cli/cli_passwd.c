/* cli_passwd: `tern passwd` (see cli_passwd.h). */
#include "cli/cli_passwd.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth_passwd.h"
#include "util/fsops.h"
#include "util/mem.h"
#include "util/strbuf.h"

#define EXIT_DONE 0
#define EXIT_NOMATCH 1
#define EXIT_TROUBLE 2

#define LOCK_WAIT_MS 10000

static void complain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void complain(const char *fmt, ...)
{
    struct strbuf sb = STRBUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    strbuf_puts(&sb, "tern passwd: ");
    strbuf_vprintf(&sb, fmt, ap);
    va_end(ap);
    strbuf_putc(&sb, '\n');
    fflush(stdout);
    (void)!write(STDERR_FILENO, sb.buf, sb.len);
    strbuf_free(&sb);
}

static int usage(void)
{
    fprintf(stderr, "usage: tern passwd add USER [ADDRESS...]\n"
                    "       tern passwd del USER\n"
                    "       tern passwd list\n"
                    "       tern passwd check USER\n");
    return EXIT_TROUBLE;
}

/* ---------- reading the password ---------- */

static volatile sig_atomic_t tty_signal;

static void note_signal(int sig)
{
    tty_signal = sig;
}

/* One line from fd 0 into buf (cap bytes incl. NUL), read a byte at a time
 * so nothing beyond the line is consumed. 0 ok, -1 EOF before anything,
 * -2 too long, -3 read error or interrupted. */
static int read_line_fd0(char *buf, size_t cap)
{
    size_t n = 0;
    int got_any = 0, too_long = 0;
    for (;;) {
        char c;
        ssize_t r = read(STDIN_FILENO, &c, 1);
        if (r < 0) {
            if (errno == EINTR && !tty_signal)
                continue;
            explicit_bzero(&c, sizeof c);
            return -3;
        }
        if (r == 0)
            break;
        got_any = 1;
        if (c == '\n')
            break;
        if (n + 1 < cap)
            buf[n++] = c;
        else
            too_long = 1;
        explicit_bzero(&c, sizeof c);
    }
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    if (!got_any)
        return -1;
    return too_long ? -2 : 0;
}

/* Reads a password with the prompt (terminal: no echo). 0 ok, else a
 * message was printed and the result is EXIT_TROUBLE. */
static int read_password(const char *prompt, char *buf, size_t cap)
{
    int rc;
    if (!isatty(STDIN_FILENO)) {
        rc = read_line_fd0(buf, cap);
    } else {
        struct termios saved, quiet;
        if (tcgetattr(STDIN_FILENO, &saved) != 0) {
            complain("cannot read the terminal settings: %s", strerror(errno));
            return -1;
        }
        /* Ctrl-C while echo is off must not leave the terminal silent:
         * catch it, restore, then die of it as usual. */
        struct sigaction sa, old_int, old_term, old_quit;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = note_signal;
        sigemptyset(&sa.sa_mask);
        tty_signal = 0;
        sigaction(SIGINT, &sa, &old_int);
        sigaction(SIGTERM, &sa, &old_term);
        sigaction(SIGQUIT, &sa, &old_quit);
        quiet = saved;
        quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
        quiet.c_lflag |= ICANON;
        fputs(prompt, stderr);
        fflush(stderr);
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
        rc = read_line_fd0(buf, cap);
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
        fputs("\n", stderr);
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        sigaction(SIGQUIT, &old_quit, NULL);
        if (tty_signal) {
            explicit_bzero(buf, cap);
            raise(tty_signal);
            return -1;
        }
    }
    if (rc == -1)
        complain("no password given (end of input)");
    else if (rc == -2)
        complain("password longer than %d bytes", AUTH_PASSWD_MAX_PASSWORD);
    else if (rc == -3)
        complain("cannot read the password: %s", strerror(errno));
    if (rc != 0) {
        explicit_bzero(buf, cap);
        return -1;
    }
    return 0;
}

/* ---------- reading the file ---------- */

/* Reads path whole, bounded. 1 ok, 0 missing (empty data), -1 error
 * (reported). */
static int read_file(const char *path, char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        complain("cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        complain("%s: not a regular file", path);
        close(fd);
        return -1;
    }
    struct strbuf sb = STRBUF_INIT;
    char chunk[8192];
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            complain("cannot read %s: %s", path, strerror(errno));
            strbuf_free(&sb);
            close(fd);
            return -1;
        }
        if (r == 0)
            break;
        if (sb.len + (size_t)r > AUTH_PASSWD_MAX_FILE) {
            complain("%s is larger than %d bytes", path, AUTH_PASSWD_MAX_FILE);
            strbuf_free(&sb);
            close(fd);
            return -1;
        }
        strbuf_append(&sb, chunk, (size_t)r);
    }
    close(fd);
    *len = sb.len;
    *data = strbuf_detach(&sb);
    return 1;
}

/* Walks the physical lines of data: fn gets each (without '\n') and its
 * number; the last line may lack its newline. */
struct line_walk {
    const char *data;
    size_t len, pos;
    int lineno;
};

static int next_line(struct line_walk *w, const char **line, size_t *n)
{
    if (w->pos >= w->len)
        return 0;
    const char *start = w->data + w->pos;
    const char *nl = memchr(start, '\n', w->len - w->pos);
    *line = start;
    *n = nl ? (size_t)(nl - start) : w->len - w->pos;
    w->pos += *n + (nl ? 1 : 0);
    w->lineno++;
    return 1;
}

/* 1 when line is a valid entry for user (fields in *f). */
static int line_is_user(const char *line, size_t n, const char *user, struct auth_passwd_line *f)
{
    const char *why;
    if (n > AUTH_PASSWD_MAX_LINE || auth_passwd_split_line(line, n, f, &why) != AUTH_PASSWD_LINE_ENTRY)
        return 0;
    return f->name_len == strlen(user) && memcmp(f->name, user, f->name_len) == 0;
}

/* ---------- writing the file ---------- */

static int lock_file(const char *path)
{
    char *lpath = xasprintf("%s.lock", path);
    int fd = fsops_open(lpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
    if (fd < 0) {
        complain("cannot open lock file %s: %s", lpath, strerror(errno));
        free(lpath);
        return -1;
    }
    for (int waited = 0;; waited += 100) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            break;
        if (errno != EWOULDBLOCK && errno != EINTR) {
            complain("cannot lock %s: %s", lpath, strerror(errno));
            close(fd);
            free(lpath);
            return -1;
        }
        if (waited >= LOCK_WAIT_MS) {
            complain("%s is locked by another tern passwd; try again later", lpath);
            close(fd);
            free(lpath);
            return -1;
        }
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    free(lpath);
    return fd;
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return xstrdup(".");
    if (slash == path)
        return xstrdup("/");
    return xstrndup(path, (size_t)(slash - path));
}

/* Replaces path by data: temp file beside it, fsync, rename, fsync dir.
 * The old file's owner, group and mode carry over; a new file is 0640. */
static int write_atomic(const char *path, const char *data, size_t len)
{
    struct stat st;
    int existed = stat(path, &st) == 0;
    if (!existed && errno != ENOENT) {
        complain("cannot stat %s: %s", path, strerror(errno));
        return -1;
    }
    char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    char *dir = dir_of(path);
    int ok = 0;
    (void)fsops_unlink(tmp); /* left by a crashed run with our pid; we hold the lock */
    int fd = fsops_open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        complain("cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (existed && (st.st_uid != geteuid() || st.st_gid != getegid()) && fchown(fd, st.st_uid, st.st_gid) != 0) {
        complain("cannot give %s the owner and group of %s: %s", tmp, path, strerror(errno));
        goto fail;
    }
    if (fchmod(fd, existed ? (st.st_mode & 07777) : 0640) != 0) {
        complain("cannot set the mode of %s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (fsops_write_all(fd, data, len) != 0) {
        complain("cannot write %s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (fsops_fsync(fd) != 0) {
        complain("cannot fsync %s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        complain("cannot close %s: %s", tmp, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (fsops_rename(tmp, path) != 0) {
        complain("cannot rename %s to %s: %s", tmp, path, strerror(errno));
        goto fail;
    }
    if (fsops_fsync_dir(dir) != 0)
        complain("warning: cannot fsync directory %s: %s", dir, strerror(errno)); /* renamed already */
    ok = 1;
    goto out;
fail:
    if (fd >= 0)
        close(fd);
    (void)fsops_unlink(tmp);
out:
    free(tmp);
    free(dir);
    return ok ? 0 : -1;
}

/* The file to rewrite: a symlinked password file is updated where it
 * points, not replaced by a regular file. */
static char *target_path(const char *path)
{
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
        char *real = realpath(path, NULL);
        if (real)
            return real;
    }
    return xstrdup(path);
}

/* ---------- subcommands ---------- */

static char *make_hash(const char *password)
{
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    if (!crypt_gensalt_rn("$y$", 0, NULL, 0, salt, (int)sizeof salt)) {
        complain("cannot make a yescrypt salt: %s", strerror(errno));
        return NULL;
    }
    struct crypt_data *cd = xcalloc(1, sizeof *cd);
    char *out = crypt_rn(password, salt, cd, (int)sizeof *cd);
    char *hash = NULL;
    if (!out || out[0] == '*')
        complain("cannot hash the password: %s", strerror(errno));
    else
        hash = xstrdup(out);
    explicit_bzero(cd, sizeof *cd);
    free(cd);
    return hash;
}

/* One file line: "user:hash", with ":addr1,addr2" when addrs is not NULL. */
static void put_entry(struct strbuf *out, const char *user, const char *hash, const char *addrs, size_t addrs_len)
{
    strbuf_printf(out, "%s:%s", user, hash);
    if (addrs)
        strbuf_printf(out, ":%.*s", (int)addrs_len, addrs);
    strbuf_putc(out, '\n');
}

static int cmd_add(const char *path, int argc, char **argv)
{
    if (argc < 2)
        return usage();
    const char *user = argv[1];
    if (!auth_passwd_valid_name(user)) {
        complain("invalid user name (1-%d bytes, no blanks, ':' or ',')", AUTH_PASSWD_MAX_NAME);
        return EXIT_TROUBLE;
    }
    struct strbuf addrs = STRBUF_INIT;
    for (int i = 2; i < argc; i++) {
        if (!auth_passwd_valid_address(argv[i])) {
            complain("invalid sender address: %s", argv[i]);
            strbuf_free(&addrs);
            return EXIT_TROUBLE;
        }
        if (i > 2)
            strbuf_putc(&addrs, ',');
        strbuf_puts(&addrs, argv[i]);
    }

    char pw[AUTH_PASSWD_MAX_PASSWORD + 1], again[AUTH_PASSWD_MAX_PASSWORD + 1];
    if (read_password("New password: ", pw, sizeof pw) != 0) {
        strbuf_free(&addrs);
        return EXIT_TROUBLE;
    }
    if (isatty(STDIN_FILENO)) {
        if (read_password("Retype new password: ", again, sizeof again) != 0) {
            explicit_bzero(pw, sizeof pw);
            strbuf_free(&addrs);
            return EXIT_TROUBLE;
        }
        int same = strcmp(pw, again) == 0;
        explicit_bzero(again, sizeof again);
        if (!same) {
            explicit_bzero(pw, sizeof pw);
            strbuf_free(&addrs);
            complain("passwords do not match; nothing changed");
            return EXIT_TROUBLE;
        }
    }
    if (pw[0] == '\0') {
        strbuf_free(&addrs);
        complain("empty password refused");
        return EXIT_TROUBLE;
    }
    char *hash = make_hash(pw);
    explicit_bzero(pw, sizeof pw);
    if (!hash) {
        strbuf_free(&addrs);
        return EXIT_TROUBLE;
    }

    int rc = EXIT_TROUBLE;
    char *target = target_path(path);
    char *data = NULL;
    size_t len = 0;
    struct strbuf out = STRBUF_INIT;
    int lockfd = lock_file(target);
    if (lockfd < 0)
        goto done;
    if (read_file(target, &data, &len) < 0)
        goto done;

    int replaced = 0;
    struct line_walk w = {data, len, 0, 0};
    const char *line;
    size_t n;
    while (next_line(&w, &line, &n)) {
        struct auth_passwd_line f;
        if (!line_is_user(line, n, user, &f)) {
            strbuf_append(&out, line, n);
            strbuf_putc(&out, '\n');
            continue;
        }
        if (replaced)
            continue; /* a later duplicate was ignored by smtpd anyway */
        /* new addresses replace the list; none given keeps the old one */
        if (argc > 2)
            put_entry(&out, user, hash, addrs.buf, addrs.len);
        else
            put_entry(&out, user, hash, f.addrs, f.addrs_len);
        replaced = 1;
    }
    if (!replaced)
        put_entry(&out, user, hash, argc > 2 ? addrs.buf : NULL, argc > 2 ? addrs.len : 0);
    if (write_atomic(target, out.buf, out.len) != 0)
        goto done;
    complain("%s user %s", replaced ? "changed the password of" : "added", user);
    rc = EXIT_DONE;
done:
    if (lockfd >= 0)
        close(lockfd);
    free(data);
    free(target);
    free(hash);
    strbuf_free(&out);
    strbuf_free(&addrs);
    return rc;
}

static int cmd_del(const char *path, int argc, char **argv)
{
    if (argc != 2)
        return usage();
    const char *user = argv[1];
    int rc = EXIT_TROUBLE;
    char *target = target_path(path);
    char *data = NULL;
    size_t len = 0;
    struct strbuf out = STRBUF_INIT;
    int lockfd = lock_file(target);
    if (lockfd < 0)
        goto done;
    if (read_file(target, &data, &len) < 0)
        goto done;
    int removed = 0;
    struct line_walk w = {data, len, 0, 0};
    const char *line;
    size_t n;
    while (next_line(&w, &line, &n)) {
        struct auth_passwd_line f;
        if (line_is_user(line, n, user, &f)) {
            removed++;
            continue;
        }
        strbuf_append(&out, line, n);
        strbuf_putc(&out, '\n');
    }
    if (!removed) {
        complain("no such user: %s", user);
        rc = EXIT_NOMATCH;
        goto done;
    }
    if (write_atomic(target, out.buf ? out.buf : "", out.len) != 0)
        goto done;
    complain("removed user %s", user);
    rc = EXIT_DONE;
done:
    if (lockfd >= 0)
        close(lockfd);
    free(data);
    free(target);
    strbuf_free(&out);
    return rc;
}

struct seen {
    const char *name;
    size_t len;
    size_t order;
};

static int seen_cmp(const void *a, const void *b)
{
    const struct seen *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->name, y->name, n);
    if (c)
        return c;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int order_cmp(const void *a, const void *b)
{
    const struct seen *x = a, *y = b;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Prints what smtpd will use, in file order: the first line of each user,
 * with the sender list normalised to "a,b". Bad lines are reported. */
static int cmd_list(const char *path, int argc)
{
    if (argc != 1)
        return usage();
    char *data;
    size_t len;
    int r = read_file(path, &data, &len);
    if (r < 0)
        return EXIT_TROUBLE;
    if (r == 0) {
        complain("%s does not exist (no users yet)", path);
        return EXIT_DONE;
    }
    struct seen *v = NULL;
    size_t nv = 0, cap = 0;
    struct line_walk w = {data, len, 0, 0};
    const char *line;
    size_t n;
    while (next_line(&w, &line, &n)) {
        struct auth_passwd_line f;
        const char *why = NULL;
        enum auth_passwd_line_kind k = n > AUTH_PASSWD_MAX_LINE ? AUTH_PASSWD_LINE_BAD
                                                                : auth_passwd_split_line(line, n, &f, &why);
        if (k == AUTH_PASSWD_LINE_BAD) {
            complain("%s:%d: %s; line ignored", path, w.lineno, why ? why : "line too long");
            continue;
        }
        if (k == AUTH_PASSWD_LINE_SKIP)
            continue;
        v = xgrow(v, &cap, nv + 1, sizeof *v);
        v[nv++] = (struct seen){f.name, f.name_len, (size_t)(f.name - data)};
    }
    /* First line per name wins, as in smtpd: sort by (name, position),
     * drop repeats, then restore file order. */
    qsort(v, nv, sizeof *v, seen_cmp);
    size_t keep = 0;
    for (size_t i = 0; i < nv; i++) {
        if (keep > 0 && v[keep - 1].len == v[i].len && memcmp(v[keep - 1].name, v[i].name, v[i].len) == 0) {
            complain("user %.*s listed more than once; only the first line counts", (int)v[i].len, v[i].name);
            continue;
        }
        v[keep++] = v[i];
    }
    qsort(v, keep, sizeof *v, order_cmp);
    for (size_t i = 0; i < keep; i++) {
        /* Re-split from the name: that is where the trimmed line starts. */
        const char *start = v[i].name;
        const char *end = memchr(start, '\n', len - (size_t)(start - data));
        size_t ln = end ? (size_t)(end - start) : len - (size_t)(start - data);
        struct auth_passwd_line f;
        const char *why;
        auth_passwd_split_line(start, ln, &f, &why);
        printf("%.*s", (int)f.name_len, f.name);
        if (f.addrs && f.addrs_len) {
            struct strbuf a = STRBUF_INIT;
            for (size_t k = 0; k < f.addrs_len; k++)
                if (f.addrs[k] != ' ' && f.addrs[k] != '\t')
                    strbuf_putc(&a, f.addrs[k]);
            if (a.len)
                printf(" %s", a.buf);
            strbuf_free(&a);
        }
        printf("\n");
    }
    fflush(stdout);
    free(v);
    free(data);
    return EXIT_DONE;
}

static int cmd_check(const char *path, int argc, char **argv)
{
    if (argc != 2)
        return usage();
    const char *user = argv[1];
    char *data;
    size_t len;
    int r = read_file(path, &data, &len);
    if (r < 0)
        return EXIT_TROUBLE;
    if (r == 0) {
        complain("%s does not exist", path);
        return EXIT_TROUBLE;
    }
    char *hash = NULL;
    struct line_walk w = {data, len, 0, 0};
    const char *line;
    size_t n;
    while (!hash && next_line(&w, &line, &n)) {
        struct auth_passwd_line f;
        if (line_is_user(line, n, user, &f))
            hash = xstrndup(f.hash, f.hash_len);
    }
    free(data);

    char pw[AUTH_PASSWD_MAX_PASSWORD + 1];
    if (read_password("Password: ", pw, sizeof pw) != 0) {
        free(hash);
        return EXIT_TROUBLE;
    }
    if (!hash) {
        explicit_bzero(pw, sizeof pw);
        printf("fail: no such user\n");
        fflush(stdout);
        return EXIT_NOMATCH;
    }
    struct crypt_data *cd = xcalloc(1, sizeof *cd);
    const char *out = crypt_rn(pw, hash, cd, (int)sizeof *cd);
    explicit_bzero(pw, sizeof pw);
    int rc;
    if (!out || out[0] == '*') {
        complain("cannot verify: the hash of %s is of a method this system cannot compute", user);
        rc = EXIT_TROUBLE;
    } else if (strcmp(out, hash) == 0) {
        printf("ok\n");
        rc = EXIT_DONE;
    } else {
        printf("fail: password mismatch\n");
        rc = EXIT_NOMATCH;
    }
    fflush(stdout);
    explicit_bzero(cd, sizeof *cd);
    free(cd);
    free(hash);
    return rc;
}

int cli_passwd_main(const char *path, int argc, char **argv)
{
    if (argc < 1 || !path || !*path)
        return usage();
    const char *cmd = argv[0];
    if (strcmp(cmd, "add") == 0)
        return cmd_add(path, argc, argv);
    if (strcmp(cmd, "del") == 0 || strcmp(cmd, "delete") == 0)
        return cmd_del(path, argc, argv);
    if (strcmp(cmd, "list") == 0)
        return cmd_list(path, argc);
    if (strcmp(cmd, "check") == 0)
        return cmd_check(path, argc, argv);
    complain("unknown subcommand: %s", cmd);
    return usage();
}
