/* mastercf: master.cf parsing (the list of services the master runs).
 *
 * Postfix syntax: one service per logical line,
 *     service type private unpriv chroot wakeup maxproc command [args...]
 * lines starting with whitespace continue the previous line, '#' lines are
 * comments. "-o name=value" arguments (or "-o { name = value }", Postfix 3,
 * for values with spaces) become per-service parameter overrides, meant for
 * conf_set on a conf_clone; other arguments stay in args, with the braces of
 * a "{ text }" argument removed.
 *
 * This module only parses and checks the syntax of each field; what a
 * command means is the master's business. It owns the strings of a struct
 * mastercf until mastercf_free. Syntax errors go to a diag strbuf as
 * "FILE:LINE: error: ..." and the line is skipped. */
#ifndef TERN_CONF_MASTERCF_H
#define TERN_CONF_MASTERCF_H

#include <stddef.h>

#include "util/strbuf.h"

struct mastercf_override {
    char *name, *value;
};

struct mastercf_service {
    char *name;     /* "smtp", "2525", "127.0.0.1:2599", "[::1]:2525", or a unix name */
    char *type;     /* inet, unix, unix-dgram, fifo, pass */
    char *private_; /* y, n or - (each of these as written) */
    char *unpriv;
    char *chroot;
    char *wakeup;   /* -, N or N? */
    char *maxproc;  /* - or N */
    char *command;
    char **args;    /* after command, -o pairs removed */
    size_t nargs;
    struct mastercf_override *overrides; /* in order; a later one for a name wins */
    size_t noverrides;
    char *file; /* origin, for diagnostics */
    int line;
};

struct mastercf {
    struct mastercf_service *svc;
    size_t n;
    size_t cap;
};

/* m must start zeroed; services of several loads accumulate. Both return the
 * number of errors (0 = every line taken); mastercf_load_file returns -1
 * with errno set when the file cannot be read. */
int mastercf_load_file(struct mastercf *m, const char *path, struct strbuf *diag);
int mastercf_load_string(struct mastercf *m, const char *text, const char *origin,
                         struct strbuf *diag);
/* Same for bytes that may hold anything, NULs included. */
int mastercf_load_mem(struct mastercf *m, const char *data, size_t len, const char *origin,
                      struct strbuf *diag);
void mastercf_free(struct mastercf *m);

/* Splits an inet service name into host and port (both heap strings):
 * "host:port", "[ipv6]:port" (brackets removed), or a bare port or service
 * name ("smtp", "2525"), which takes its host from inet_interfaces_fallback:
 * NULL host (any address) when the fallback is NULL, empty or "all", else a
 * copy of the fallback, which the caller expands. The port is returned as
 * written (a number 1-65535 or a service name for getservbyname). Returns 0,
 * or -1 with *host and *port NULL when the name is malformed. */
int mastercf_split_listen(const char *service_name, const char *inet_interfaces_fallback,
                          char **host, char **port);

#endif
