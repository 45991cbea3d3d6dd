/* log: Postfix-style log lines ("Nov 25 16:03:00 host tern/smtpd[42]: ...").
 *
 * Each process calls log_init() with its role name. Lines go to stderr when
 * running in the foreground, to maillog_file when one is set (opened O_APPEND,
 * written in whole lines, so processes can share it), else to syslog facility
 * mail. Every message is made printable first (str_printable: controls and
 * invalid UTF-8 become '?', CR/LF/TAB a space), whatever its arguments. log_reopen() reopens the file after rotation (SIGUSR1).
 *
 * A process with an event loop (smtpd, queue, local, capture) calls
 * log_batch_on(): the info and debug lines its loop thread logs during one
 * round of the loop are then written together when the round's callbacks
 * are done (one write per destination instead of one per line; smtpd logs
 * four lines a message), in order; a warning or worse, a line from another
 * thread, a fork, log_reopen and exit write what waits first, then the line
 * at once. What a crash (a signal) cuts short loses that round's lines. */
#ifndef TERN_UTIL_LOG_H
#define TERN_UTIL_LOG_H

#include <stdarg.h>

void log_init(const char *role);          /* "master", "smtpd", "queue", "local", "sendmail" */
void log_set_role(const char *role);
void log_set_stderr(int on);               /* foreground: also to stderr */
void log_set_file(const char *path);       /* NULL or "" = none */
/* Adopts fd (opened and checked by the caller: the master as root) as the
 * log file at path; log_reopen() then reopens path without creating it. */
void log_set_file_fd(const char *path, int fd);
void log_set_syslog(int on);
void log_reopen(void);
void log_set_debug(int on);

#define LOG_BATCH_MAX 16384   /* bytes of lines one round may hold before they are written anyway */
struct event_base;
/* Batches the calling thread's lines by rounds of base's loop (NULL: off;
 * call it so before freeing base: its flush event belongs to it). To a
 * regular file a round is one write; to anything else (a pipe, a FIFO)
 * pieces of at most PIPE_BUF bytes that end at a line's end, the most a
 * pipe keeps whole beside another process's writes. */
void log_batch_on(struct event_base *base);
/* Writes the lines that wait (any thread). */
void log_flush(void);

void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Logs "fatal: ..." and exits with status 1. */
void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* A broken internal invariant: logs "panic: ..." and aborts (core for debugging). */
void log_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
