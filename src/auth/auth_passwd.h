/* auth_passwd: tern's own SASL password file, checked without blocking the
 * event loop.
 *
 * File format, one user per line:
 *     name:hash
 *     name:hash:addr1,addr2
 * hash is a crypt(3) string ("$y$..." yescrypt as written by `tern passwd`;
 * any method libxcrypt supports, e.g. $6$, $2b$, $7$, is verified). The
 * optional third field lists the envelope sender addresses the user may use
 * (for smtpd's sender-login check). Leading/trailing blanks of a line are
 * ignored, as are empty lines and lines whose first character is '#'.
 * Lines over AUTH_PASSWD_MAX_LINE bytes and malformed lines are logged with
 * file:line and skipped; a later line repeating a name is logged and skipped
 * (the first one wins). The file is at most AUTH_PASSWD_MAX_FILE bytes.
 *
 * User names are compared exactly (byte-wise, case-sensitive), as Dovecot
 * and Postfix do by default; "Alice@Example.org" and "alice@example.org"
 * are different users. A name is 1..255 bytes, printable ASCII or UTF-8,
 * without ':', ',' or blanks.
 *
 * Who owns what: the auth_passwd handle owns the parsed table, a small pool
 * of worker threads running crypt_rn (yescrypt costs tens of milliseconds on
 * purpose), and an eventfd read event on the caller's event_base through
 * which results come back to the loop thread. Every function here must be
 * called on that loop thread; libevent needs no thread support for this
 * (workers never touch libevent).
 *
 * The file is re-stat()ed at most once a second when a check starts
 * (inode, size, mtime, ctime) and re-read when it changed, so `tern passwd
 * add` takes effect without a restart. While the file is missing or
 * unreadable every check is AUTH_TEMPFAIL; that is logged once per outage.
 *
 * Errors: auth_passwd_open() fails only when it cannot set up threads or
 * the eventfd (not for a missing file, which is a temporary state). Checks
 * report through the callback: AUTH_FAIL for a wrong password or unknown
 * user (an unknown user still costs one hash, against a dummy, so timing
 * does not tell which users exist), AUTH_TEMPFAIL when the file is
 * unavailable, the queue of pending checks is full, or a hash is of a
 * method this libcrypt cannot compute. Passwords are copied only as long as
 * needed, wiped afterwards, and never logged. */
#ifndef TERN_AUTH_AUTH_PASSWD_H
#define TERN_AUTH_AUTH_PASSWD_H

#include <stddef.h>

#include "auth/auth.h"

struct event_base;
struct auth_passwd;
struct auth_passwd_req;

#define AUTH_PASSWD_MAX_LINE 4096               /* bytes, without the newline */
#define AUTH_PASSWD_MAX_FILE (16 * 1024 * 1024) /* bytes */
#define AUTH_PASSWD_MAX_NAME 255
#define AUTH_PASSWD_MAX_ADDRESS 320             /* RFC 5321 path limits: 64@255 */
#define AUTH_PASSWD_MAX_PASSWORD 1024           /* longer ones fail without hashing */
#define AUTH_PASSWD_THREADS 2
#define AUTH_PASSWD_MAX_PENDING 256             /* queued + being hashed */

/* Opens the file at path (it may be missing for now) and starts the
 * workers. NULL with *err (heap string) when threads or the eventfd
 * cannot be set up. */
struct auth_passwd *auth_passwd_open(struct event_base *base, const char *path, char **err);

/* Starts checking password for user. cb runs exactly once, later, on the
 * loop thread (never inside this call), unless the request is cancelled.
 * The returned handle is valid until cb starts running or until
 * auth_passwd_cancel(); drop it in the callback. Never NULL. */
struct auth_passwd_req *auth_passwd_check(struct auth_passwd *db, const char *user, const char *password,
                                          auth_cb cb, void *arg);

/* Withdraws a pending check: cb will not run. Safe at any point before cb
 * starts, including while a worker is hashing it (the worker then discards
 * its result). */
void auth_passwd_cancel(struct auth_passwd_req *r);

/* Cancels every pending check (no callbacks), stops and joins the workers,
 * removes the event, frees everything. May be called from inside a
 * callback. NULL is ignored. */
void auth_passwd_close(struct auth_passwd *db);

/* The sender addresses listed for user in the current table: NULL when the
 * user is unknown (or the file unavailable), an empty list (first element
 * NULL) when the line has no third field. Valid until the next
 * auth_passwd_check(), auth_passwd_recheck() or auth_passwd_close(); does
 * not itself re-read the file. */
const char *const *auth_passwd_addresses(struct auth_passwd *db, const char *user);

/* Forgets the once-a-second limit: the next check stat()s the file again
 * (for SIGHUP-style reloads). */
void auth_passwd_recheck(struct auth_passwd *db);

/* Number of users in the current table (0 while the file is unavailable). */
size_t auth_passwd_count(const struct auth_passwd *db);

/* --- line syntax, shared with `tern passwd` (cli_passwd) --- */

enum auth_passwd_line_kind {
    AUTH_PASSWD_LINE_SKIP,  /* empty or comment */
    AUTH_PASSWD_LINE_ENTRY, /* a valid user line */
    AUTH_PASSWD_LINE_BAD,   /* malformed: *why says how */
};

/* Fields of one line, pointing into the caller's text (not NUL-terminated). */
struct auth_passwd_line {
    const char *name;
    size_t name_len;
    const char *hash;
    size_t hash_len;
    const char *addrs; /* the third field as written; NULL when absent */
    size_t addrs_len;
};

/* Classifies one line (len bytes, without its newline) and splits an
 * entry into its fields. *why gets a static text for BAD lines. */
enum auth_passwd_line_kind auth_passwd_split_line(const char *line, size_t len, struct auth_passwd_line *out,
                                                  const char **why);

/* 1 when s may be a user name / a sender address in the file. */
int auth_passwd_valid_name(const char *s);
int auth_passwd_valid_address(const char *s);

#ifdef TERN_TEST_BUILD
/* Runs hook(arg) in a worker after it took a request and before it hashes,
 * so tests can hold workers busy deterministically. */
void auth_passwd_test_set_worker_hook(struct auth_passwd *db, void (*hook)(void *arg), void *arg);
/* Sets the pending bound (default AUTH_PASSWD_MAX_PENDING). */
void auth_passwd_test_set_max_pending(struct auth_passwd *db, size_t max);
#endif

#endif
