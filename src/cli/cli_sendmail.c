/* cli_sendmail: the Sendmail-compatible submission command.
 *
 * `sendmail [options] [recipient ...]` (tern called by that name, or `tern
 * sendmail`) reads a message on standard input and leaves it in the
 * instance's maildrop/ directory, durably, before it exits with 0; the queue
 * process picks it up (at once when running, at its next start otherwise),
 * so mail submitted while the daemon is stopped is not lost.
 *
 * Nothing is accepted that pickup would refuse: before the drop file is
 * committed the content goes through the same cleanup checks pickup applies
 * (header_size_limit, the -t recipients) and every address through the same
 * syntax rule, so a message tern will not deliver fails here, with a message
 * and an exit code, instead of landing in corrupt/.
 *
 * Options as in Postfix's sendmail: -t (recipients from To/Cc/Bcc), -f/-r
 * sender, -F full name, -i / -oi (a lone "." does not end the input),
 * -N/-R/-V (DSN NOTIFY, RET, ENVID), -bs (SMTP on standard input/output),
 * -bp (mailq), -bi / -I (newaliases), -bv (report what would happen to each
 * recipient, deliver nothing), -bm (default), -C DIR, -q (flush); -h N,
 * -o..., -v, -B, -L, -U are accepted and ignored. A leading mbox "From "
 * line is skipped. Exit codes follow sysexits.h. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_verify.h"
#include "conf/conf.h"
#include "daemon/instance.h"
#include "maps/resolver.h"
#include "msg/cleanup.h"
#include "spool/spool.h"
#include "util/ipc.h"
#include "msg/rfc5322_addr.h"
#include "spool/maildrop.h"
#include "smtp/smtp_addr.h"
#include "smtp/smtp_cmd.h"
#include "smtp/smtp_data.h"
#include "util/mem.h"
#include "util/strbuf.h"

#define EX_USAGE 64
#define EX_DATAERR 65
#define EX_NOUSER 67
#define EX_SOFTWARE 70
#define EX_OSERR 71
#define EX_CANTCREAT 73
#define EX_IOERR 74
#define EX_TEMPFAIL 75
#define EX_CONFIG 78

struct submit {
    char *qdir;
    char *myorigin;
    char *myhostname;
    uint64_t size_limit;
    size_t header_size_limit;
    char *login;
};

/* A drop file being written: the content is normalised as it goes, and
 * checked as pickup will check it. */
struct drop {
    FILE *f;
    char *tmp_path;
    struct line_norm norm;
    uint64_t size;
    int too_big;
    struct cleanup *check;  /* pickup's cleanup rules, writing nothing */
    int extract;            /* -t */
    size_t nrcpts;          /* recipients given outside the header */
    const char *why;        /* why drop_commit refused the message */
};

/* Text from the command line or the message, as it may go into a message
 * to the terminal: control characters become '?'. */
static char *printable(const char *text)
{
    char *t = xstrdup(text);
    for (char *p = t; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return t;
}

static int drop_open(struct submit *s, struct drop *d, const struct maildrop_env *env)
{
    memset(d, 0, sizeof *d);
    d->extract = env->extract;
    d->nrcpts = env->nrcpts;
    d->tmp_path = xasprintf("%s/%s/.tmpXXXXXX", s->qdir, QDIR_MAILDROP);
    mode_t old = umask(022);
    int fd = mkstemp(d->tmp_path);
    umask(old);
    if (fd < 0) {
        fprintf(stderr, "sendmail: fatal: cannot create a file in %s/%s: %s\n", s->qdir, QDIR_MAILDROP,
                strerror(errno));
        free(d->tmp_path);
        return -1;
    }
    /* The queue process runs as another user and must read the file; the
     * directory is not listable, and the final name is random. */
    fchmod(fd, 0644);
    d->f = fdopen(fd, "w");
    if (maildrop_write_env(d->f, env) != 0) {
        fprintf(stderr, "sendmail: fatal: bad envelope address\n");
        fclose(d->f);
        unlink(d->tmp_path);
        free(d->tmp_path);
        return -1;
    }
    struct cleanup_opts o = {
        .queue_id = "",
        .myhostname = s->myhostname,
        .myorigin = s->myorigin,
        .sender = "", /* only for a From: it adds; this cleanup adds none */
        .extract_recipients = env->extract,
        .header_size_limit = s->header_size_limit,
        .now = time(NULL),
    };
    d->check = cleanup_new(NULL, &o);
    return 0;
}

static void drop_write(struct submit *s, struct drop *d, const char *data, size_t len)
{
    char out[2 * 4096 + 2];
    while (len > 0) {
        size_t n = len > 4096 ? 4096 : len;
        size_t o = maildrop_line_norm_feed(&d->norm, data, n, out);
        d->size += o;
        if (s->size_limit && d->size > s->size_limit)
            d->too_big = 1;
        if (!d->too_big) {
            fwrite(out, 1, o, d->f);
            cleanup_write(d->check, out, o);
        }
        data += n;
        len -= n;
    }
}

static void drop_abort(struct drop *d)
{
    cleanup_free(d->check);
    d->check = NULL;
    fclose(d->f);
    unlink(d->tmp_path);
    free(d->tmp_path);
}

static void notify_pickup(const char *qdir)
{
    char *path = xasprintf("%s/%s", qdir, QSOCK_QMGR);
    int fd = ipc_connect(path);
    free(path);
    if (fd < 0)
        return; /* not running: pickup happens when it starts */
    struct ipc_msg m;
    ipc_msg_init(&m, IPC_PICKUP, 1);
    if (ipc_send_blocking(fd, &m) == 0) {
        struct ipc_msg r;
        if (ipc_recv_blocking(fd, &r, 5000) == 0)
            ipc_msg_free(&r);
    }
    ipc_msg_free(&m);
    close(fd);
}

/* What pickup would refuse in the content: 0, or a sysexits code with a
 * message on stderr (and d->why for -bs). */
static int drop_check(struct submit *s, struct drop *d)
{
    if (d->too_big) {
        fprintf(stderr, "sendmail: fatal: message size exceeds message_size_limit (%llu bytes)\n",
                (unsigned long long)s->size_limit);
        d->why = "message size exceeds message_size_limit";
        return EX_DATAERR;
    }
    struct cleanup_result res;
    cleanup_finish(d->check, &res);
    int rc = 0;
    size_t found = d->nrcpts;
    if (res.status == CLEANUP_HEADER_TOO_BIG) {
        fprintf(stderr, "sendmail: fatal: message header exceeds header_size_limit (%zu bytes)\n",
                s->header_size_limit);
        d->why = "message header exceeds header_size_limit";
        rc = EX_DATAERR;
    }
    for (size_t i = 0; rc == 0 && i < res.nrcpts; i++) {
        char *a = smtp_addr_envelope(res.rcpts[i], s->myorigin, 0);
        if (!a) {
            char *shown = printable(res.rcpts[i]);
            fprintf(stderr, "sendmail: fatal: bad recipient address syntax in message header: %s\n", shown);
            free(shown);
            d->why = "bad recipient address syntax in message header";
            rc = EX_DATAERR;
        }
        free(a);
        found++;
    }
    /* Postfix's words and exit code: the submission may be retried once
     * the header is fixed. */
    if (rc == 0 && found == 0) {
        fprintf(stderr, "sendmail: fatal: No recipient addresses found in message header\n");
        d->why = "No recipient addresses found in message header";
        rc = EX_TEMPFAIL;
    }
    cleanup_result_free(&res);
    return rc;
}

/* Makes the file durable under its final name; 0 or a sysexits code. */
static int drop_commit(struct submit *s, struct drop *d)
{
    char out[2];
    size_t n = maildrop_line_norm_end(&d->norm, out);
    if (n && !d->too_big) {
        fwrite(out, 1, n, d->f);
        cleanup_write(d->check, out, n);
    }
    int refused = drop_check(s, d);
    if (refused) {
        drop_abort(d);
        return refused;
    }
    cleanup_free(d->check);
    d->check = NULL;
    unsigned char rnd[16];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        drop_abort(d);
        return EX_OSERR;
    }
    char name[40];
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(name + 2 * i, 3, "%02x", rnd[i]);
    char *final = xasprintf("%s/%s/%s", s->qdir, QDIR_MAILDROP, name);
    int fd = fileno(d->f);
    int rc = 0;
    if (fflush(d->f) != 0 || fsync(fd) != 0 || rename(d->tmp_path, final) != 0 || syncfs(fd) != 0) {
        fprintf(stderr, "sendmail: fatal: cannot write the message: %s\n", strerror(errno));
        unlink(d->tmp_path);
        unlink(final);
        rc = EX_TEMPFAIL;
    }
    fclose(d->f);
    free(d->tmp_path);
    free(final);
    if (rc == 0)
        notify_pickup(s->qdir);
    return rc;
}

/* ---------- -bs: SMTP on standard input ---------- */

static void bs_reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void bs_reply(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\r\n");
    fflush(stdout);
}

static int sendmail_bs(struct submit *s)
{
    struct maildrop_env env;
    memset(&env, 0, sizeof env);
    int in_mail = 0;
    struct smtp_ext ext = {.esmtp = 1, .size = 1, .eightbit = 1, .smtputf8 = 1};
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    bs_reply("220 %s ESMTP Tern (sendmail -bs)", s->myhostname);
    while ((len = getline(&line, &cap, stdin)) > 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        struct smtp_cmd cmd;
        if (len > 1000 || smtp_cmd_parse(line, (size_t)len, &cmd) != 0) {
            bs_reply("500 5.5.2 Error: bad syntax");
            continue;
        }
        switch (cmd.verb) {
        case SMTP_HELO:
        case SMTP_EHLO:
            if (cmd.verb == SMTP_EHLO)
                bs_reply("250-%s\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES", s->myhostname);
            else
                bs_reply("250 %s", s->myhostname);
            break;
        case SMTP_MAIL: {
            struct smtp_mail_args a;
            struct smtp_reply_err err;
            if (in_mail) {
                bs_reply("503 5.5.1 Error: nested MAIL command");
            } else if (smtp_parse_mail(cmd.arg, &ext, &a, &err) != 0) {
                bs_reply("%d %s %s", err.code, err.enh, err.text);
            } else {
                maildrop_env_free(&env);
                env.sender = xstrdup(a.path.mailbox);
                in_mail = 1;
                smtp_mail_args_free(&a);
                bs_reply("250 2.1.0 Ok");
            }
            break;
        }
        case SMTP_RCPT: {
            struct smtp_rcpt_args a;
            struct smtp_reply_err err;
            if (!in_mail) {
                bs_reply("503 5.5.1 Error: need MAIL command");
            } else if (smtp_parse_rcpt(cmd.arg, &ext, &a, &err) != 0) {
                bs_reply("%d %s %s", err.code, err.enh, err.text);
            } else {
                env.rcpts = xrealloc(env.rcpts, (env.nrcpts + 1) * sizeof *env.rcpts);
                env.rcpts[env.nrcpts++] = xstrdup(a.path.mailbox);
                smtp_rcpt_args_free(&a);
                bs_reply("250 2.1.5 Ok");
            }
            break;
        }
        case SMTP_DATA: {
            if (!env.nrcpts) {
                bs_reply("503 5.5.1 Error: need RCPT command");
                break;
            }
            struct drop d;
            if (drop_open(s, &d, &env) != 0) {
                bs_reply("451 4.3.0 Error: cannot create the message file");
                break;
            }
            bs_reply("354 End data with <CR><LF>.<CR><LF>");
            struct smtp_data dec;
            smtp_data_init(&dec, SMTP_DATA_DOT, 0);
            /* Standard input is a local pipe, not the network: a line may
             * end in LF alone (as with Postfix), so ".\n" ends the data too.
             * Each bare LF becomes CRLF before the SMTP decoder sees it. */
            char buf[4096 + 1], out[2 * (4096 + 1) + 2];
            int last_was_cr = 0;
            while (!dec.done && fgets(buf, sizeof buf - 1, stdin)) {
                size_t got = strlen(buf);
                if (got && buf[got - 1] == '\n' && !(got >= 2 ? buf[got - 2] == '\r' : last_was_cr)) {
                    buf[got - 1] = '\r';
                    buf[got++] = '\n';
                }
                last_was_cr = got && buf[got - 1] == '\r';
                size_t outlen;
                smtp_data_decode(&dec, buf, got, out, &outlen);
                drop_write(s, &d, out, outlen);
            }
            if (!dec.done) {
                drop_abort(&d);
                maildrop_env_free(&env);
                free(line);
                return EX_DATAERR;
            }
            int rc = smtp_data_error(&dec) ? (drop_abort(&d), EX_DATAERR) : drop_commit(s, &d);
            if (rc == 0)
                bs_reply("250 2.0.0 Ok: queued");
            else if (rc == EX_DATAERR && d.why)
                bs_reply("552 5.3.4 Error: %s", d.why);
            else if (rc == EX_DATAERR)
                bs_reply("554 5.3.4 Error: message not accepted");
            else /* a full disk or an I/O error: the client may try again */
                bs_reply("451 4.3.0 Error: cannot write the message");
            maildrop_env_free(&env);
            in_mail = 0;
            break;
        }
        case SMTP_RSET:
            maildrop_env_free(&env);
            in_mail = 0;
            bs_reply("250 2.0.0 Ok");
            break;
        case SMTP_NOOP:
            bs_reply("250 2.0.0 Ok");
            break;
        case SMTP_QUIT:
            bs_reply("221 2.0.0 Bye");
            maildrop_env_free(&env);
            free(line);
            return 0;
        default:
            bs_reply("502 5.5.1 Error: command not implemented");
        }
    }
    maildrop_env_free(&env);
    free(line);
    return 0;
}

/* ---------- the common form ---------- */

static int read_message(struct submit *s, struct drop *d, int dot_ends)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int first = 1;
    while ((len = getline(&line, &cap, stdin)) > 0) {
        /* A leading mbox "From " line (git format-patch, saved mail) is not
         * part of the message; Postfix's sendmail skips it too. */
        if (first && strncmp(line, "From ", 5) == 0) {
            first = 0;
            continue;
        }
        first = 0;
        if (dot_ends && (strcmp(line, ".\n") == 0 || strcmp(line, ".\r\n") == 0 || strcmp(line, ".") == 0))
            break;
        drop_write(s, d, line, (size_t)len);
    }
    free(line);
    return ferror(stdin) ? -1 : 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: sendmail [-t] [-i] [-f sender] [-F full_name] [-N dsn] [-R ret] [-V envid] "
                    "[-bs|-bp|-bv|-bm] [recipient ...]\n");
}

/* -N, as RCPT's NOTIFY: "never" or a list of success, delay, failure. */
static int notify_option(const char *val, char **out)
{
    unsigned bits;
    if (smtp_notify_parse(val, strlen(val), &bits) != 0) {
        fprintf(stderr, "sendmail: fatal: bad -N value \"%s\": use never, or success,delay,failure\n", val);
        return -1;
    }
    free(*out);
    *out = xstrdup(val);
    for (char *p = *out; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    return 0;
}

int cli_sendmail(const char *config_dir, int argc, char **argv)
{
    const char *sender = NULL, *full_name = NULL, *dir = config_dir;
    int extract = 0, dot_ends = 1, mode_bs = 0, mode_bp = 0, mode_bi = 0, mode_bv = 0, mode_q = 0;
    char *notify = NULL, *ret = NULL, *envid = NULL;
    int rc;
    int i;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || strcmp(a, "-") == 0)
            break;
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        /* As with getopt, flags may be grouped (-ti is -t -i, -it too); an
         * option with a value, -b or -o takes the rest of the group. */
        for (const char *p = a + 1; *p; p++) {
            char opt = *p;
            const char *val = NULL;
            if (strchr("frFCNRVBLXOh", opt)) {
                val = p[1] ? p + 1 : (i + 1 < argc ? argv[++i] : NULL);
                if (!val) {
                    fprintf(stderr, "sendmail: option -%c requires a value\n", opt);
                    usage();
                    rc = EX_USAGE;
                    goto done;
                }
            } else if (opt == 'b' || opt == 'o' || opt == 'q') {
                val = p + 1;
            }
            switch (opt) {
            case 't': extract = 1; break;
            case 'i': dot_ends = 0; break;
            case 'f': case 'r': sender = val; break;
            case 'F': full_name = val; break;
            case 'C': dir = val; break;
            case 'o':
                if (strcmp(val, "i") == 0)
                    dot_ends = 0;
                break;
            case 'b':
                if (strcmp(val, "s") == 0) mode_bs = 1;
                else if (strcmp(val, "p") == 0) mode_bp = 1;
                else if (strcmp(val, "i") == 0) mode_bi = 1;
                else if (strcmp(val, "v") == 0) mode_bv = 1;
                else if (strcmp(val, "m") != 0) {
                    fprintf(stderr, "sendmail: unsupported mode -b%s\n", val);
                    rc = EX_USAGE;
                    goto done;
                }
                break;
            case 'I': mode_bi = 1; break; /* Postfix: same as newaliases */
            case 'q': mode_q = 1; break;
            case 'N':
                if (notify_option(val, &notify) != 0) {
                    rc = EX_USAGE;
                    goto done;
                }
                break;
            case 'R':
                if (strcasecmp(val, "hdrs") != 0 && strcasecmp(val, "full") != 0) {
                    fprintf(stderr, "sendmail: fatal: bad -R value \"%s\": use hdrs or full\n", val);
                    rc = EX_USAGE;
                    goto done;
                }
                free(ret);
                ret = xstrdup(strcasecmp(val, "hdrs") == 0 ? "HDRS" : "FULL");
                break;
            case 'V':
                if (!smtp_envid_valid(val)) {
                    fprintf(stderr, "sendmail: fatal: bad -V value: an envelope id is 1 to 100 printable "
                                    "ASCII characters\n");
                    rc = EX_USAGE;
                    goto done;
                }
                free(envid);
                envid = xstrdup(val);
                break;
            /* -h: the hop count, ignored as by Postfix (hopcount_limit counts
             * Received: fields); the others change nothing tern does. */
            case 'h': case 'v': case 'B': case 'L': case 'U': case 'X': case 'O': case 'G': break;
            default:
                fprintf(stderr, "sendmail: unknown option -%c in %s\n", opt, a);
                usage();
                rc = EX_USAGE;
                goto done;
            }
            if (val)
                break;
        }
    }
    if (mode_bp || mode_q) {
        char *qargv[] = {mode_bp ? "mailq" : "queue", mode_bp ? "list" : "flush", NULL};
        rc = cli_queue(dir, 2, qargv);
        goto done;
    }
    if (mode_bi) {
        rc = cli_newaliases(dir, 0, NULL);
        goto done;
    }

    struct instance in;
    struct strbuf diag = STRBUF_INIT;
    if (instance_load(&in, dir, &diag) != 0) {
        fprintf(stderr, "%s", strbuf_str(&diag));
        strbuf_free(&diag);
        instance_free(&in);
        rc = EX_CONFIG;
        goto done;
    }
    strbuf_free(&diag);
    struct submit s = {0};
    s.qdir = xstrdup(instance_queue_dir(&in));
    s.myorigin = xstrdup(conf_str(in.conf, "myorigin"));
    s.myhostname = xstrdup(conf_str(in.conf, "myhostname"));
    long long lim = conf_int(in.conf, "message_size_limit");
    s.size_limit = lim > 0 ? (uint64_t)lim : 0;
    s.header_size_limit = (size_t)conf_int(in.conf, "header_size_limit");
    if (mode_bv) {
        if (i >= argc) {
            fprintf(stderr, "sendmail: fatal: -bv needs recipient addresses on the command line\n");
            rc = EX_USAGE;
        } else {
            rc = cli_verify_recipients(in.conf, s.myorigin, s.qdir, argv + i, (size_t)(argc - i));
        }
        instance_free(&in);
        goto out;
    }
    instance_free(&in);
    struct passwd *pw = getpwuid(getuid());
    s.login = xstrdup(pw ? pw->pw_name : "nobody");

    if (mode_bs) {
        rc = sendmail_bs(&s);
        goto out;
    }
    struct maildrop_env env;
    memset(&env, 0, sizeof env);
    env.notify = notify;
    env.ret = ret;
    env.envid = envid;
    notify = ret = envid = NULL; /* env owns them now */
    if (sender && (strcmp(sender, "<>") == 0 || *sender == '\0'))
        env.sender = xstrdup("");
    else if (sender)
        env.sender = strchr(sender, '@') ? xstrdup(sender) : xasprintf("%s@%s", sender, s.myorigin);
    else
        env.sender = xasprintf("%s@%s", s.login, s.myorigin);
    /* "<a@b>" from the command line: keep the address only */
    size_t sl = strlen(env.sender);
    if (sl >= 2 && env.sender[0] == '<' && env.sender[sl - 1] == '>') {
        memmove(env.sender, env.sender + 1, sl - 2);
        env.sender[sl - 2] = '\0';
    }
    env.full_name = full_name ? xstrdup(full_name) : NULL;
    env.extract = extract;
    /* Every address by pickup's rule, so none is dropped there. */
    char *checked = smtp_addr_envelope(env.sender, s.myorigin, 1);
    if (!checked) {
        char *shown = printable(env.sender);
        fprintf(stderr, "sendmail: fatal: bad sender address syntax: %s\n", shown);
        free(shown);
        maildrop_env_free(&env);
        rc = EX_USAGE;
        goto out;
    }
    free(checked);
    for (; i < argc; i++) {
        char **addrs = NULL;
        size_t n = 0;
        rfc5322_addr_list(argv[i], &addrs, &n);
        if (n == 0) {
            char *shown = printable(argv[i]);
            fprintf(stderr, "sendmail: fatal: bad recipient address: %s\n", shown);
            free(shown);
            maildrop_env_free(&env);
            rc = EX_USAGE;
            goto out;
        }
        for (size_t k = 0; k < n; k++) {
            env.rcpts = xrealloc(env.rcpts, (env.nrcpts + 1) * sizeof *env.rcpts);
            env.rcpts[env.nrcpts++] = addrs[k];
        }
        free(addrs);
    }
    for (size_t k = 0; k < env.nrcpts; k++) {
        checked = smtp_addr_envelope(env.rcpts[k], s.myorigin, 0);
        if (!checked) {
            char *shown = printable(env.rcpts[k]);
            fprintf(stderr, "sendmail: fatal: bad recipient address syntax: %s\n", shown);
            free(shown);
            maildrop_env_free(&env);
            rc = EX_USAGE;
            goto out;
        }
        free(checked);
    }
    if (env.nrcpts > MAILDROP_MAX_RCPTS) {
        fprintf(stderr, "sendmail: fatal: more than %d recipients\n", MAILDROP_MAX_RCPTS);
        maildrop_env_free(&env);
        rc = EX_USAGE;
        goto out;
    }
    if (!extract && env.nrcpts == 0) {
        fprintf(stderr, "sendmail: fatal: no recipient addresses specified (use -t to take them from the header)\n");
        maildrop_env_free(&env);
        rc = EX_USAGE;
        goto out;
    }
    struct drop d;
    if (drop_open(&s, &d, &env) != 0) {
        maildrop_env_free(&env);
        rc = EX_CANTCREAT;
        goto out;
    }
    maildrop_env_free(&env);
    if (read_message(&s, &d, dot_ends) != 0) {
        fprintf(stderr, "sendmail: fatal: error reading the message: %s\n", strerror(errno));
        drop_abort(&d);
        rc = EX_IOERR;
        goto out;
    }
    rc = drop_commit(&s, &d);
out:
    free(s.qdir);
    free(s.myorigin);
    free(s.myhostname);
    free(s.login);
done:
    free(notify);
    free(ret);
    free(envid);
    return rc;
}
