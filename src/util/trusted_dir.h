/* trusted_dir: opens a directory that only root can change, for the code
 * that runs as root (the master, root's CLI) and must not be steered by a
 * path another user controls.
 *
 * The path is walked from / one component at a time with openat(O_NOFOLLOW |
 * O_DIRECTORY), each directory checked through its descriptor, so nothing
 * is re-resolved after its check. A directory is trusted when root owns it
 * and neither its group nor others may write it; an ancestor that others
 * may write is accepted only with the sticky bit (as /tmp), since then only
 * root can rename or remove the root-owned entry the walk goes through. A
 * symbolic link on the way is followed only when root owns it; ".." is
 * refused. The caller then acts with openat/fchown/fchmod on the returned
 * descriptor. */
#ifndef TERN_UTIL_TRUSTED_DIR_H
#define TERN_UTIL_TRUSTED_DIR_H

#include "util/strbuf.h"

/* The open directory (O_RDONLY | O_DIRECTORY | O_CLOEXEC), or -1 with
 * errno set and the reason in why ("/srv/x is writable by others"). */
int trusted_dir_open(const char *path, struct strbuf *why);

#endif
