/* runtime: what the master hands each child process after fork().
 *
 * The master parses the configuration once; children inherit it in memory
 * together with exactly the file descriptors their role needs (the rest are
 * closed). Paths are absolute. */
#ifndef TERN_DAEMON_RUNTIME_H
#define TERN_DAEMON_RUNTIME_H

#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

struct conf;
struct ssl_ctx_st;

/* Capture mode's SMTP counters for the API's /metrics: a page of shared
 * memory the master maps before it forks, so every smtpd (a restarted one
 * too) adds to the same numbers and the capture process reads them. */
struct capture_counters {
    _Atomic unsigned long long sessions;        /* SMTP sessions started */
    _Atomic unsigned long long refused_sessions; /* of those, refused by capture_session_failure_rate */
    _Atomic unsigned long long rejected;        /* 4xx/5xx replies to commands (refused recipients, rules, limits) */
};

struct runtime_listener {
    int fd;                 /* -1 in the processes that do not accept */
    struct sockaddr_storage bound; /* its address, kept for the queue's loop check after fd is closed */
    char *service;          /* master.cf service name, e.g. "127.0.0.1:2525" or "smtp" */
    char *address;          /* what was bound, for logs: "127.0.0.1:2525" */
    struct conf *conf;      /* main.cf plus this service's -o overrides */
    struct ssl_ctx_st *tls_ctx; /* its TLS server context (keys read as root), or NULL */
};

struct runtime {
    struct conf *conf;
    char *config_dir;
    char *queue_dir;
    int foreground;
    struct timespec started;    /* when the master started, before any child */
    int is_root;            /* started as root: children drop to mail_owner */
    uid_t owner_uid;        /* mail_owner (or the invoking user) */
    gid_t owner_gid;
    struct runtime_listener *listeners;
    size_t nlisteners;
    int queue_listen_fd;    /* private/queue: smtpd -> queue (owned by queue) */
    int qmgr_listen_fd;     /* public/qmgr: command-line tools -> queue */
    int local_listen_fd;    /* private/local: queue -> local */
    /* capture mode only (-1 otherwise): */
    int capture_listen_fd;  /* private/capture: queue -> capture */
    int capture_http_fd;    /* capture_http_address, bound by the master */
    char *capture_http_address; /* what was bound, for logs and `tern dev` */
    struct capture_counters *capture_counters; /* shared; NULL when capture mode is off */
};

int smtpd_main(struct runtime *rt);
int qmgr_main(struct runtime *rt);
/* In the queue process, before it drops root: reads what only root may
 * read (the DKIM signing keys, src/qmgr/qmgr_dkim.c). */
void qmgr_prepare_as_root(struct runtime *rt);
int local_main(struct runtime *rt);
int capture_main(struct runtime *rt);

#endif
