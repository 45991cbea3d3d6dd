/* instance: one tern instance = a configuration directory (main.cf,
 * master.cf) and the queue directory it names.
 *
 * Loads and checks the configuration the same way for every command (serve,
 * sendmail, queue, config), knows the queue directory layout and creates it
 * with the right owners and modes, and writes the development instance
 * that `tern dev` (make run) starts from. */
#ifndef TERN_DAEMON_INSTANCE_H
#define TERN_DAEMON_INSTANCE_H

#include <sys/types.h>

#include "conf/mastercf.h"
#include "util/strbuf.h"

struct conf;

struct instance {
    char *config_dir;           /* absolute */
    char *main_cf, *master_cf;  /* paths */
    struct conf *conf;
    struct mastercf services;
    int have_master_cf;
};

/* The default config directory: $TERN_CONFIG, else $MAIL_CONFIG, else /etc/tern. */
const char *instance_default_dir(void);
/* Loads DIR/main.cf (a missing file means all defaults) and DIR/master.cf
 * (missing: one smtpd on port 25). Syntax errors go to diag; returns -1 if
 * the configuration cannot be used. */
int instance_load(struct instance *in, const char *config_dir, struct strbuf *diag);
void instance_free(struct instance *in);
const char *instance_queue_dir(struct instance *in);

/* The queue directory's subdirectories, their modes, and whether
 * mail_owner owns them (else root does); ends with a NULL name. */
struct instance_queue_dir {
    const char *name;
    mode_t mode;
    int mail_owner;
};
extern const struct instance_queue_dir instance_queue_dirs[];

/* Creates the queue directory tree and returns a descriptor of the queue
 * directory. Run by root, pass mail_owner's uid/gid: the queue directory,
 * pid/, private/ and public/ become root's, the rest mail_owner's, every
 * owner and mode set through descriptors, and the path to the queue
 * directory must be one only root can change (trusted_dir). Otherwise pass
 * (uid_t)-1 to keep the caller's ownership. -1 with a message in diag. */
int instance_prepare_queue(struct instance *in, uid_t uid, gid_t gid, struct strbuf *diag);

/* The process holding a POSIX write lock on the open file fd (the master
 * on pid/master.pid), from the kernel's lock table; 0 when there is none. */
pid_t instance_lock_holder(int fd);
/* The running master of this instance, found through the lock it holds on
 * pid/master.pid, never through the number written in the file. Run by
 * root, pid/ must be one only root can change (trusted_dir) and the file
 * root's. 0 when none runs, -1 with the reason in why when the pid file
 * cannot be trusted. */
pid_t instance_running_master(struct instance *in, struct strbuf *why);

/* Writes DIR/main.cf and DIR/master.cf for a development server on
 * 127.0.0.1:PORT with Maildirs under DIR/mail, unless main.cf exists. */
int instance_write_dev(const char *dir, int port, int http_port, struct strbuf *diag);

#endif
