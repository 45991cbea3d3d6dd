/* tern: command dispatch.
 *
 * Called as sendmail, mailq or newaliases (a link to tern), it acts as
 * those commands; otherwise `tern [-c DIR] COMMAND ...`. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_passwd.h"
#include "conf/conf.h"
#include "daemon/instance.h"
#include "daemon/master.h"
#include "daemon/runtime.h"
#include "spool/spool.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/strbuf.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tern [-c CONFIG_DIR] COMMAND [ARGS]\n"
            "\n"
            "  serve                      run the mail server in the foreground\n"
            "  start | stop | reload | status   run it in the background / control it\n"
            "  dev [--port N] [--http-port M]\n"
            "                             a development server on 127.0.0.1:2525 (default) in\n"
            "                             capture mode: every message on the page and API at\n"
            "                             http://127.0.0.1:8025/, mail for any address @localhost\n"
            "                             also into CONFIG_DIR/mail, nothing sent elsewhere\n"
            "                             (CONFIG_DIR defaults to ./run for this command)\n"
            "  sendmail [options] RCPT..  submit a message (as Postfix's sendmail)\n"
            "  mailq                      list the queue\n"
            "  queue [list|flush|delete ID|hold ID|release ID]\n"
            "  config [-n|-a|-d NAME|NAME...|check|man]\n"
            "  newaliases                 check the alias file (tern reads it directly)\n"
            "  map query TYPE:NAME KEY..  look keys up in a table (as postmap -q): prints\n"
            "                             each value found; exit 1 if a key is not found\n"
            "  passwd add USER [ADDR..] | del USER | list | check USER\n"
            "                             the users of AUTH (smtpd_sasl_type = tern)\n"
            "  dkim keygen DOMAIN [-s SELECTOR] [-t rsa|ed25519] [-b BITS]\n"
            "                             make a DKIM key; print the DNS records to publish\n"
            "  dkim check DOMAIN | doctor DOMAIN\n"
            "                             what DNS publishes for DOMAIN (DKIM, SPF, DMARC, MX,\n"
            "                             PTR), checked against the local keys and this host\n"
            "  log reopen                 reopen the log file (after rotation)\n"
            "  version\n"
            "\n"
            "CONFIG_DIR defaults to $TERN_CONFIG, $MAIL_CONFIG or /etc/tern.\n");
}

/* tern passwd: the password file AUTH checks (smtpd_sasl_path of the
 * configuration, default CONFIG_DIR/passwd), readable by mail_owner. */
static int cmd_passwd(const char *config_dir, int argc, char **argv)
{
    struct instance in;
    struct strbuf diag = STRBUF_INIT;
    if (instance_load(&in, config_dir, &diag) != 0) {
        fprintf(stderr, "tern passwd: %s", strbuf_str(&diag));
        strbuf_free(&diag);
        return 2;
    }
    strbuf_free(&diag);
    const char *p = conf_str(in.conf, "smtpd_sasl_path");
    if (strcmp(conf_str(in.conf, "smtpd_sasl_type"), "tern") != 0)
        fprintf(stderr, "tern passwd: note: smtpd_sasl_type is not tern; AUTH does not use this file\n");
    char *path = !*p ? xasprintf("%s/passwd", config_dir) : p[0] == '/' ? xstrdup(p) : xasprintf("%s/%s", config_dir, p);
    struct stat before;
    int existed = stat(path, &before) == 0;
    int rc = cli_passwd_main(path, argc - 1, argv + 1);
    /* a new file: root's, readable by the group smtpd runs in */
    struct passwd *pw = getpwnam(conf_str(in.conf, "mail_owner"));
    if (rc == 0 && !existed && geteuid() == 0 && pw && access(path, F_OK) == 0) {
        if (chown(path, 0, pw->pw_gid) != 0 || chmod(path, 0640) != 0)
            fprintf(stderr, "tern passwd: cannot give %s to group %s: %s\n", path, conf_str(in.conf, "mail_owner"),
                    strerror(errno));
    }
    free(path);
    instance_free(&in);
    return rc;
}

struct dev_info {
    const char *dir;
};

static void announce_dev(const struct runtime *rt, void *arg)
{
    const struct dev_info *d = arg;
    const char *where = rt->nlisteners ? rt->listeners[0].address : "(no listener)";
    char *page = rt->capture_http_address ? xasprintf("http://%s/", rt->capture_http_address)
                                          : xstrdup("(capture mode is off in this main.cf)");
    fprintf(stderr,
            "\n"
            "  tern development server\n"
            "  listening on    %s   (SMTP; any AUTH login works)\n"
            "  see the mail    %s\n"
            "  mail for        any-name@localhost also lands in %s/mail/<name>/Maildir/new/\n"
            "                  other domains: kept on the page, never sent\n"
            "  queue           %s    (tern -c %s queue)\n"
            "  log             this terminal and %s\n"
            "  try             swaks --server %s --to you@example.com\n"
            "  stop            Ctrl-C\n\n",
            where, page, d->dir, rt->queue_dir, d->dir, conf_str(rt->conf, "maillog_file"), where);
    free(page);
}

static int cmd_dev(const char *config_dir, int argc, char **argv)
{
    int port = 2525, http_port = 8025;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--http-port") == 0 && i + 1 < argc) {
            http_port = atoi(argv[++i]);
        } else {
            usage(stderr);
            return 64;
        }
    }
    if (port <= 0 || port > 65535 || http_port <= 0 || http_port > 65535) {
        fprintf(stderr, "tern: bad port\n");
        return 64;
    }
    struct strbuf diag = STRBUF_INIT;
    if (instance_write_dev(config_dir, port, http_port, &diag) != 0) {
        fprintf(stderr, "tern: %s", strbuf_str(&diag));
        strbuf_free(&diag);
        return 1;
    }
    strbuf_free(&diag);
    char *abs = config_dir[0] == '/' ? xstrdup(config_dir) : NULL;
    if (!abs) {
        char *cwd = getcwd(NULL, 0);
        abs = xasprintf("%s/%s", cwd ? cwd : ".", config_dir);
        free(cwd);
    }
    struct dev_info info = {abs};
    struct master_opts o = {.config_dir = abs, .dev = 1, .announce = announce_dev, .announce_arg = &info};
    int rc = master_run(&o);
    free(abs);
    return rc;
}

/* The running master's pid (from the kernel's lock table, see
 * instance_running_master), 0 when none runs, -1 when the instance's pid
 * file is not one to act on (reported). */
static pid_t running_master(const char *config_dir)
{
    struct instance in;
    struct strbuf diag = STRBUF_INIT;
    pid_t pid = -1;
    if (instance_load(&in, config_dir, &diag) != 0) {
        fputs(strbuf_str(&diag), stderr);
    } else {
        strbuf_reset(&diag);
        pid = instance_running_master(&in, &diag);
        if (pid < 0)
            fprintf(stderr, "tern: cannot tell which process is the master: %s\n", strbuf_str(&diag));
    }
    strbuf_free(&diag);
    instance_free(&in);
    return pid;
}

static int cmd_control(const char *config_dir, const char *cmd, int argc, char **argv)
{
    pid_t pid = running_master(config_dir);
    int rc = 0;
    if (pid < 0) {
        rc = 1;
    } else if (strcmp(cmd, "status") == 0) {
        if (pid > 0)
            printf("tern: the mail system is running: PID: %ld\n", (long)pid);
        else
            printf("tern: the mail system is not running\n");
        rc = pid > 0 ? 0 : 1;
    } else if (pid <= 0) {
        fprintf(stderr, "tern: the mail system is not running\n");
        rc = 1;
    } else if (strcmp(cmd, "log") == 0) {
        if (argc < 2 || strcmp(argv[1], "reopen") != 0) {
            usage(stderr);
            rc = 64;
        } else if (kill(pid, SIGUSR1) != 0) {
            fprintf(stderr, "tern: cannot signal pid %ld: %s\n", (long)pid, strerror(errno));
            rc = 1;
        }
    } else if (strcmp(cmd, "reload") == 0) {
        if (kill(pid, SIGHUP) != 0) {
            fprintf(stderr, "tern: cannot signal pid %ld: %s\n", (long)pid, strerror(errno));
            rc = 1;
        } else {
            printf("tern: refreshing the mail system\n");
        }
    } else { /* stop */
        if (kill(pid, SIGTERM) != 0) {
            fprintf(stderr, "tern: cannot signal pid %ld: %s\n", (long)pid, strerror(errno));
            rc = 1;
        } else {
            printf("tern: stopping the mail system\n");
            for (int i = 0; i < 300 && kill(pid, 0) == 0; i++)
                usleep(100000);
            if (kill(pid, 0) == 0) {
                fprintf(stderr, "tern: pid %ld is still running\n", (long)pid);
                rc = 1;
            }
        }
    }
    return rc;
}

int main(int argc, char **argv)
{
    char *argv0 = xstrdup(argv[0]);
    const char *name = basename(argv0);
    const char *config_dir = NULL;
    log_init("cli");
    int rc;
    if (strcmp(name, "sendmail") == 0) {
        rc = cli_sendmail(instance_default_dir(), argc, argv);
        goto out;
    }
    if (strcmp(name, "mailq") == 0) {
        char *qargv[] = {"mailq", NULL};
        rc = cli_queue(instance_default_dir(), 1, qargv);
        goto out;
    }
    if (strcmp(name, "newaliases") == 0) {
        rc = cli_newaliases(instance_default_dir(), argc, argv);
        goto out;
    }
    int i = 1;
    while (i < argc && argv[i][0] == '-') {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            config_dir = argv[i + 1];
            i += 2;
        } else if (strcmp(argv[i], "-v") == 0) {
            log_set_debug(1);
            i++;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            rc = 0;
            goto out;
        } else {
            usage(stderr);
            rc = 64;
            goto out;
        }
    }
    if (i >= argc) {
        usage(stderr);
        rc = 64;
        goto out;
    }
    const char *cmd = argv[i];
    int cargc = argc - i;
    char **cargv = argv + i;
    if (strcmp(cmd, "dev") == 0) {
        rc = cmd_dev(config_dir ? config_dir : "run", cargc, cargv);
        goto out;
    }
    if (!config_dir)
        config_dir = instance_default_dir();
    if (strcmp(cmd, "serve") == 0) {
        struct master_opts o = {.config_dir = config_dir};
        rc = master_run(&o);
    } else if (strcmp(cmd, "sendmail") == 0) {
        rc = cli_sendmail(config_dir, cargc, cargv);
    } else if (strcmp(cmd, "mailq") == 0) {
        char *qargv[] = {"mailq", NULL};
        rc = cli_queue(config_dir, 1, qargv);
    } else if (strcmp(cmd, "queue") == 0) {
        rc = cli_queue(config_dir, cargc, cargv);
    } else if (strcmp(cmd, "config") == 0) {
        rc = cli_config(config_dir, cargc, cargv);
    } else if (strcmp(cmd, "newaliases") == 0) {
        rc = cli_newaliases(config_dir, cargc, cargv);
    } else if (strcmp(cmd, "map") == 0) {
        rc = cli_map(cargc, cargv);
    } else if (strcmp(cmd, "dkim") == 0) {
        rc = cli_dkim(config_dir, cargc, cargv);
    } else if (strcmp(cmd, "doctor") == 0) {
        char *dargv[] = {"dkim", "check", cargc > 1 ? cargv[1] : NULL, NULL};
        rc = cargc == 2 ? cli_dkim(config_dir, 3, dargv) : (usage(stderr), 64);
    } else if (strcmp(cmd, "passwd") == 0) {
        rc = cargc < 2 ? (usage(stderr), 64) : cmd_passwd(config_dir, cargc, cargv);
    } else if (strcmp(cmd, "start") == 0) {
        struct master_opts o = {.config_dir = config_dir, .daemonize = 1};
        rc = master_run(&o);
    } else if (strcmp(cmd, "stop") == 0 || strcmp(cmd, "reload") == 0 || strcmp(cmd, "status") == 0 ||
               strcmp(cmd, "log") == 0) {
        rc = cmd_control(config_dir, cmd, cargc, cargv);
    } else if (strcmp(cmd, "version") == 0) {
        printf("tern %s\n", TERN_VERSION);
        rc = 0;
    } else {
        fprintf(stderr, "tern: unknown command %s\n", cmd);
        usage(stderr);
        rc = 64;
    }
out:
    free(argv0);
    return rc;
}
