/* maildir: delivers one message into a Maildir (cr.yp.to/proc/maildir.html),
 * naming files the way Dovecot does so its index needs no stat():
 *     tmp/<sec>.M<usec>P<pid>Q<counter>.<host>
 *     new/<sec>.M<usec>P<pid>Q<counter>.<host>,S=<size>
 * where <host> has '/' written as "\057" and ':' as "\072".
 *
 * Called by the local delivery process, running as the recipient (or as root
 * with setfsuid() switched to the recipient); this module never changes
 * identity. It owns the files it creates under DIR until commit, and the
 * directories DIR, DIR/tmp, DIR/new, DIR/cur when it creates them (mode 0700,
 * chowned to uid/gid unless uid is (uid_t)-1). DIR itself is created when
 * missing, its parent never: a missing home directory is the
 * administrator's to fix, so it is a temporary error.
 *
 * The API is in phases so that many deliveries can share one disk sync:
 *     maildir_begin() for each message    file written in tmp/, not synced
 *     fsync(maildir_fd()) or one syncfs()  (maildir_sync_file() does the former)
 *     maildir_commit() for each            linked into new/, tmp/ entry removed
 *     fsync each distinct maildir_new_dir()
 *     maildir_free()
 * If the sync of new/ fails, maildir_withdraw() takes the message back out.
 * maildir_deliver() does all of it for one message.
 *
 * Errors are reported in struct deliver_error, always temporary: "4.2.2"
 * when the disk or quota is full, "4.2.0" for anything else on the mailbox
 * side (permissions, missing directories, I/O errors), "4.3.0" when the
 * queue file cannot be read. A failed delivery leaves nothing in new/ and
 * nothing of its own in tmp/. */
#ifndef TERN_LOCAL_MAILDIR_H
#define TERN_LOCAL_MAILDIR_H

#include <sys/types.h>

#include "local/deliver.h"

struct maildir_delivery;

/* Ensures DIR/{tmp,new,cur} exist, creates a unique file in tmp/ (O_CREAT |
 * O_EXCL | O_NOFOLLOW, mode 0600, fchown'd if uid != -1) and copies the
 * content into it. DIR may end in '/' and may be a symlink. Syncs only the
 * directories it had to create. 0 and *out, or -1 with *out = NULL. */
int maildir_begin(const char *dir, uid_t uid, gid_t gid, const struct deliver_input *in,
                  struct maildir_delivery **out, struct deliver_error *err);
/* fsync() of the file in tmp/. Callers may instead syncfs() via maildir_fd(). */
int maildir_sync_file(struct maildir_delivery *d, struct deliver_error *err);
/* The file's descriptor until commit (or abort), -1 after. */
int maildir_fd(struct maildir_delivery *d);
/* Closes the file and links it into new/ under its final name (falling back
 * to rename() on file systems without hard links), then unlinks the tmp/
 * name. The caller then fsyncs maildir_new_dir(). On failure the tmp/ file
 * is gone too. */
int maildir_commit(struct maildir_delivery *d, struct deliver_error *err);
/* DIR/new, for the caller's directory fsync. */
const char *maildir_new_dir(struct maildir_delivery *d);
/* The path in new/ after a successful commit, NULL before. */
const char *maildir_final_path(struct maildir_delivery *d);
/* Size of the file written, the S= of the final name. */
off_t maildir_size(struct maildir_delivery *d);
/* Unlinks the tmp/ file if not committed; no effect after commit. */
void maildir_abort(struct maildir_delivery *d);
/* After a commit whose directory sync failed: unlinks the file from new/ so
 * the retry the temporary error causes does not deliver it twice.
 * 0, or -1 with errno. */
int maildir_withdraw(struct maildir_delivery *d);
/* Frees d; an uncommitted delivery is aborted first. NULL is allowed. */
void maildir_free(struct maildir_delivery *d);

/* One message: begin + fsync file + commit + fsync new/. On success
 * *final_path (if final_path is not NULL) receives the heap path in new/. */
int maildir_deliver(const char *dir, uid_t uid, gid_t gid, const struct deliver_input *in,
                    char **final_path, struct deliver_error *err);

/* The <host> part of file names: hostname with '/' as "\057" and ':' as
 * "\072" (Dovecot's escaping; the maildir spec reserves both). Heap string. */
char *maildir_escape_hostname(const char *hostname);

#endif
