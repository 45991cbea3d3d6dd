/* master_files: the two files the master keeps open for the instance:
 * pid/master.pid (one master per queue directory: an flock, and a POSIX
 * write lock on it by the process that stays the master, whose holder
 * `tern stop` asks the kernel for) and maillog_file (opened by root only
 * in a directory no other user can change, never through a link).
 * The master only (daemon/master.c), at start and at reload. */
#ifndef TERN_DAEMON_MASTER_FILES_H
#define TERN_DAEMON_MASTER_FILES_H

#include <sys/types.h>

struct strbuf;

/* Takes the instance's lock on queue_dir's pid/master.pid (queue_fd is the
 * queue directory, root's): *pid_dir_fd and *lock_fd are set (-1 when not
 * opened). 0, or -1 with the reason in diag (another master runs; the pid
 * file is not one to trust). */
int pidlock_take(int queue_fd, const char *queue_dir, int *pid_dir_fd, int *lock_fd, struct strbuf *diag);
/* In the process that stays the master: the POSIX lock and its pid, for
 * people, in the file. */
void pidlock_publish(int lock_fd);
/* As root: opens maillog_file for appending (as maillog_use does), without
 * using it yet (a reload checks the new file first). fd, or -1 with diag. */
int maillog_open(const char *path, gid_t group, struct strbuf *diag);
/* Points the log at maillog_file (nothing when it is empty); as root the
 * file is opened through descriptors (trusted_dir) and given to root and
 * group (the mail_owner's group) 0660. 0, or -1 with the reason in diag
 * and the log left as it was. */
int maillog_use(const char *path, int as_root, gid_t group, struct strbuf *diag);

#endif
