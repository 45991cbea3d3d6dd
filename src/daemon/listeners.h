/* listeners: the sockets the master binds for its children: every inet
 * smtpd service of master.cf (with its -o overrides, its restriction lists
 * checked and its TLS context built while the master is still root), and
 * in capture mode the capture API's loopback address.
 * The master only (daemon/master.c), at start and at reload. */
#ifndef TERN_DAEMON_LISTENERS_H
#define TERN_DAEMON_LISTENERS_H

struct conf;
struct instance;
struct runtime;
struct ssl_ctx_st;
struct strbuf;
struct tls_keyring;

/* Binds every inet smtpd service of inst's master.cf into rt->listeners;
 * their private keys are added to keys for the key process. 0, or -1 with
 * every problem in diag. */
int listeners_bind(struct runtime *rt, struct instance *inst, struct tls_keyring *keys, struct strbuf *diag);
/* A listener's TLS context (and a check of its restriction lists), built
 * while the master is root (the certificates may be root's); its keys are
 * added to keys. 0, or -1 with the reason in diag. */
int listeners_tls(const char *service, struct conf *c, struct tls_keyring *keys, struct ssl_ctx_st **out,
                  struct strbuf *diag);
/* capture_http_address ("host:port" or "[v6]:port"), which must be a
 * loopback address: the API has no login, nothing else may reach it.
 * Sets rt->capture_http_fd and rt->capture_http_address. */
int listeners_bind_capture(struct runtime *rt, struct conf *conf, struct strbuf *diag);

#endif
