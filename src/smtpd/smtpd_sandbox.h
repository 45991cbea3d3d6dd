/* smtpd_sandbox: the least the kernel lets smtpd do once it serves the network.
 *
 * smtpd parses what strangers send; a bug there must not become a shell or
 * a read of someone's files. smtpd_sandbox_enter, called once by smtpd_main
 * after privileges are dropped and everything smtpd needs more for has been
 * opened (listeners, the queue socket, libevent, OpenSSL contexts, NSS),
 * and before any thread exists, turns on, for good:
 *
 *   - PR_SET_NO_NEW_PRIVS (no set-uid gain, and what lets the rest work
 *     without root);
 *   - Landlock (when the kernel has it): files only in smtpd's rooms,
 *     read-write incoming/, read-only the configuration directory, /etc, the
 *     directories of every table and password file it rereads, append to
 *     maillog_file's directory (docs/ARCHITECTURE.md, "The sandbox");
 *   - a seccomp allowlist (libseccomp): the system calls smtpd makes. Exec,
 *     ptrace, process_vm_* and the like fail with EPERM and are logged once;
 *     any other call outside the list fails with EPERM too and is logged
 *     once, except in the test build (TERN_TEST_BUILD), where it aborts
 *     smtpd with the call's name so a test catches the missing entry.
 *
 * What the kernel lacks is logged in one line and smtpd goes on without it.
 * smtpd_sandbox = no turns the whole sandbox off (for debugging).
 *
 * Only smtpd calls this (hence its folder). */
#ifndef TERN_SMTPD_SMTPD_SANDBOX_H
#define TERN_SMTPD_SMTPD_SANDBOX_H

#include <stddef.h>

struct event_base;
struct runtime;

/* extra_read_files: files smtpd rereads besides the tables map.c knows
 * (tern's password files); their directories become readable. Returns 0, or
 * -1 when smtpd_sandbox = no (nothing was done). Failing kernel features are
 * logged, not fatal; a sandbox that was asked for and then half-applied is
 * fatal (log_fatal). */
int smtpd_sandbox_enter(struct event_base *base, const struct runtime *rt,
                        const char *const *extra_read_files, size_t nextra);

/* Frees the logging event; the filter itself stays until the process ends. */
void smtpd_sandbox_shutdown(void);

#endif
