/* command: runs one delivery command (`|command` of an alias, a .forward,
 * mailbox_command) as a given user, without holding up the event loop.
 *
 * The local delivery agent decides what runs and as whom (local_targets.c);
 * this module only carries it out, the way Postfix's local(8) does: the
 * command line goes to `/bin/sh -c` in a child that has a clean environment
 * (command_env_build), umask 077, its own session (so a time-out kills the
 * whole process group), the user's groups, gid and uid (set in the child,
 * never in the agent, and never 0: command_start refuses root), the message
 * on its standard input and its standard output and error on a pipe to the
 * agent. The agent learns of the end through SIGCHLD (a libevent signal
 * event) and keeps the first COMMAND_OUTPUT_MAX bytes of the output for
 * the bounce text.
 *
 * The exit status is read as Postfix reads it (sysexits.h): 0 delivered;
 * EX_TEMPFAIL (75) and EX_OSERR (71) deferred; the other sysexits codes
 * bounced with their own enhanced status; any other non-zero status bounced
 * with 5.3.0; a signal or command_time_limit deferred with 4.3.0. The text
 * names the status and carries the first line of the output, printable. */
#ifndef TERN_LOCAL_COMMAND_H
#define TERN_LOCAL_COMMAND_H

#include <sys/types.h>

#include "local/deliver.h"

struct event_base;

/* Output kept for the bounce text (the rest is read and dropped). */
#define COMMAND_OUTPUT_MAX 1024
/* Commands running at once (Postfix's default_process_limit): more defer. */
#define COMMAND_MAX_RUNNING 100

/* What the environment says about one delivery (Postfix's names). NULL
 * fields are left out. */
struct command_env_fields {
    const char *home, *logname, *shell;  /* the user the command runs as */
    const char *sender;                  /* "" for <> */
    const char *recipient;               /* the recipient being delivered */
    const char *original_recipient;
    /* the SMTP client, from the queue file (NULL or "": left out, as for
     * mail that did not come by SMTP) */
    const char *client_address, *client_helo, *client_hostname, *client_protocol;
    const char *sasl_method, *sasl_sender, *sasl_username;
    const char *recipient_delimiter;     /* to split LOCAL's EXTENSION off; "" for none */
    /* command_expansion_filter: the bytes a value keeps; others become '_'
     * (the shell a command line goes through must not meet a ';' or '`'
     * from a stranger's address). NULL: printable ASCII. */
    const char *filter;
    char *const *exported;               /* export_environment's "NAME=value" (may be NULL) */
};

/* HOME, LOGNAME, USER, SHELL, SENDER, RECIPIENT, LOCAL, DOMAIN, EXTENSION,
 * ORIGINAL_RECIPIENT, CLIENT_ADDRESS, CLIENT_HELO, CLIENT_HOSTNAME,
 * CLIENT_PROTOCOL, SASL_METHOD, SASL_SENDER, SASL_USERNAME (the last seven
 * only when not empty, as Postfix's local(8)) and PATH=/usr/bin:/bin, as "NAME=value" strings in a
 * NULL-terminated heap array (free with command_env_free), their values
 * passed through f->filter; then the exported variables, as they are,
 * except one of the names above (the delivery's own value wins). */
char **command_env_build(const struct command_env_fields *f);
void command_env_free(char **env);

struct queue_file_message;
/* The SMTP client's attributes (client_address, helo_name, client_name,
 * protocol, sasl_method, sasl_username) of the queue file open on qfd
 * whose content starts at content_offset (so the file starts 16 bytes
 * before: a queue/ file at 0, a journal message inside its segment),
 * read with pread, into f's client and SASL fields, which then point into
 * *m (free with queue_file_message_free). Mail that did not come by SMTP
 * (no client_address: sendmail, notices) has none, as with Postfix; nor
 * does a queue file that cannot be read (the delivery goes on without).
 * tern does not keep MAIL FROM's AUTH= address: sasl_sender stays NULL. */
void command_env_client(int qfd, off_t content_offset, struct command_env_fields *f, struct queue_file_message *m);

/* export_environment (n items): a NAME passes the variable of that name
 * from the agent's own environment when it is set; NAME=value (also in
 * braces, "{ NAME = value }") sets it. The "NAME=value" strings, as
 * command_env_build takes them (free with command_env_free). */
char **command_env_exported(char *const *items, size_t n);

/* A byte of s not in filter (or, with filter NULL, outside printable
 * ASCII) becomes '_', in place: command_expansion_filter's rule. */
void command_filter(char *s, const char *filter);

/* What a finished command means: 0 delivered, -1 with err filled (deferred
 * or bounced). wstatus as waitpid gives it; timed_out when the agent killed
 * it at command_time_limit; output (may be NULL) what it printed. */
int command_result(int wstatus, int timed_out, const char *output, struct deliver_error *err);

struct command_request {
    const char *command;      /* for /bin/sh -c */
    char *const *env;
    uid_t uid;                /* applied only when the agent runs as root; never 0 */
    gid_t gid;
    const char *user;         /* for initgroups; NULL: gid only */
    const char *cwd;          /* tried first (the user's home); "/" otherwise */
    int cwd_required;         /* command_execution_directory: no other; failing, the delivery defers */
    int stdin_fd;             /* the message, read from its start; the caller keeps its own */
    unsigned time_limit;      /* seconds */
    off_t file_size_limit;    /* RLIMIT_FSIZE of the command (mailbox_size_limit, as Postfix); 0: none */
};

/* Called once when the command ends: err NULL when it delivered. */
typedef void command_done_fn(void *arg, const struct deliver_error *err);

/* Sets up the SIGCHLD event on base; once per process. */
void command_init(struct event_base *base);
/* Kills what still runs (SIGKILL to its process group) and calls back
 * with a temporary error (the agent is stopping: the queue will retry; its
 * channel may be gone already, the callback frees its context). */
void command_shutdown(void);

/* How many commands run now. */
unsigned command_running(void);

/* The agent is asked to stop while commands run: killing one half way
 * (a procmail writing a mailbox, a list manager sending) leaves its work
 * half done and makes the queue run it again, so they may finish, as
 * Postfix lets them, but only for grace seconds. drained(arg) is called
 * once, from the event loop, when the last one has ended (its result
 * reported as usual), or when grace runs out and what is left has been
 * killed (each reported deferred, "command killed: the local delivery
 * agent is stopping"). */
typedef void command_drained_fn(void *arg);
void command_drain(unsigned grace, command_drained_fn *drained, void *arg);

/* Starts a command. 0: done will be called later. -1: nothing started,
 * err filled (the identity is root, fork failed, ...). */
int command_start(const struct command_request *req, command_done_fn *done, void *arg,
                  struct deliver_error *err);

#endif
