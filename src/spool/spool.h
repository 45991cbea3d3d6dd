/* spool: the queue directory's layout, shared by every process and the CLI.
 *
 * Names are relative to queue_directory. Which file may exist in which
 * directory at each step of a commit is written down in docs/ARCHITECTURE.md
 * ("The queue's commit protocol"); the store (spool/store.c) is the only
 * writer of incoming/ -> queue/ -> hold/ -> corrupt/. */
#ifndef TERN_SPOOL_SPOOL_H
#define TERN_SPOOL_SPOOL_H

#define QDIR_INCOMING "incoming"
#define QDIR_QUEUE "queue"
#define QDIR_HOLD "hold"
#define QDIR_CORRUPT "corrupt"
#define QDIR_MAILDROP "maildrop"
#define QDIR_PRIVATE "private"
#define QDIR_PUBLIC "public"
#define QDIR_PID "pid"
#define QSOCK_QUEUE "private/queue"
#define QSOCK_LOCAL "private/local"
#define QSOCK_QMGR "public/qmgr"

#endif
