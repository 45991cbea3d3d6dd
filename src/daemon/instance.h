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

/* Creates the queue directory tree (owned by uid/gid when running as root;
 * pass (uid_t)-1 to keep the caller's). -1 with a message in diag. */
int instance_prepare_queue(struct instance *in, uid_t uid, gid_t gid, struct strbuf *diag);

/* Writes DIR/main.cf and DIR/master.cf for a development server on
 * 127.0.0.1:PORT with Maildirs under DIR/mail, unless main.cf exists. */
int instance_write_dev(const char *dir, int port, struct strbuf *diag);

#endif
