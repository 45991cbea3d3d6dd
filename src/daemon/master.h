/* master: `tern serve` (see master.c). */
#ifndef TERN_DAEMON_MASTER_H
#define TERN_DAEMON_MASTER_H

#include "util/version.h"   /* TERN_VERSION */

struct runtime;

struct master_opts {
    const char *config_dir;
    int dev;                    /* `tern dev`: fall back to nobody as mail_owner */
    int daemonize;              /* `tern start`: detach, log to maillog_file or syslog */
    /* Called once the ports are bound, before the children start. */
    void (*announce)(const struct runtime *rt, void *arg);
    void *announce_arg;
};

int master_run(const struct master_opts *opts);
/* Frees the master's state in a child before it exits. */
void master_cleanup_for_exit(void);

#endif
