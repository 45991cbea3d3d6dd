/* list_file: reads a user's .forward or an alias's :include: file for the
 * local delivery agent, and refuses the ones nobody should trust; and
 * expands forward_path and command_execution_directory.
 *
 * The caller sets the file-system identity first (setfsuid/setfsgid: the
 * user for a .forward, the alias's rights for an :include:), so the file
 * is opened with that user's permissions, never root's. The file is opened
 * without following a symbolic link in its last component, must be a
 * regular file of at most LIST_FILE_MAX bytes, and:
 *   - a .forward must belong to the user or root and be writable by
 *     neither group nor others (else it is ignored with a warning and the
 *     mail goes to the mailbox, as with Postfix);
 *   - an :include: file must be writable by neither group nor others, nor lie in a
 *     directory others may write to without the sticky bit (else the
 *     delivery is deferred: someone must look at it).
 * Whose rights its |commands and /files then get is the caller's business
 * (the owner of an :include: file, the user of a .forward).
 *
 * Contents: the targets of an alias value (alias.h), one or more a line;
 * lines whose first non-blank is '#' are comments, blank lines are
 * ignored. */
#ifndef TERN_LOCAL_LIST_FILE_H
#define TERN_LOCAL_LIST_FILE_H

#include <sys/stat.h>
#include <sys/types.h>

#include "maps/alias.h"

#define LIST_FILE_MAX (1024 * 1024)

enum list_file_kind { LIST_FORWARD, LIST_INCLUDE };

/* Checks a file's and its directory's status for kind; user is the
 * .forward's user (ignored for :include:). 0 acceptable, else -1 with why
 * filled ("... is writable by group or others"). Does no I/O. */
int list_file_check(enum list_file_kind kind, const struct stat *file, const struct stat *dir, uid_t user,
                    char *why, size_t whylen);

/* Parses a file's text into targets. 0, or -1 with out->error set. */
int list_file_parse(const char *text, size_t len, struct alias_result *out);

/* What a forward_path entry may name (Postfix's local(8) attributes). NULL
 * or "" is an attribute that is not defined. */
struct forward_vars {
    const char *user, *home, *shell;
    const char *recipient, *local, *domain;
    const char *extension, *recipient_delimiter;
};

/* Expands one forward_path entry: $name, ${name} and $(name), ${name?text}
 * (text when name is defined), ${name:text} (text when it is not), $$.
 * NULL when the entry is to be skipped, as Postfix skips it: a plain
 * reference to an undefined attribute ("$home/.forward${extension}" for a
 * recipient without an extension), an unknown name, or bad syntax. */
char *forward_path_expand(const char *entry, const struct forward_vars *v);

/* command_execution_directory's expansion: the same syntax and names, but
 * an undefined attribute expands to nothing, and a value's bytes that are
 * not in filter (command_expansion_filter; NULL: all kept) become '_'.
 * NULL for an unknown name or bad syntax (the delivery defers). */
char *command_dir_expand(const char *entry, const struct forward_vars *v, const char *filter);

/* Reads and parses path with the caller's current file-system identity.
 * 1: no such file (a .forward is optional); 0: *targets filled, *owner its
 * owner; -1: refused or unreadable, why filled. */
int list_file_read(enum list_file_kind kind, const char *path, uid_t user, struct alias_result *targets,
                   uid_t *owner, char *why, size_t whylen);

#endif
