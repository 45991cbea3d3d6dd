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
#define QDIR_JOURNAL "journal" /* queue_sync_method = journal: the spool's segments (store_journal.h) */
#define QDIR_MAILDROP "maildrop"
#define QDIR_PRIVATE "private"
#define QDIR_PUBLIC "public"
#define QDIR_PID "pid"
#define QDIR_DMARC "dmarc"   /* DMARC report rows per period (qmgr_dmarc.h) */
#define QDIR_CAPTURE "capture" /* capture mode's store (capture_store.h) */
/* capture mode's failure rules, kept by the capture API, read by smtpd
 * (smtpd_capture.h) */
#define QDIR_CAPTURE_RULES "capture-rules"
#define QFILE_CAPTURE_RECIPIENT_RULES "recipients.pcre"
#define QFILE_CAPTURE_SESSION_RULE "sessions"
#define QSOCK_QUEUE "private/queue"
#define QSOCK_LOCAL "private/local"
#define QSOCK_QMGR "public/qmgr"
#define QSOCK_CAPTURE "private/capture"
/* the same sockets by their name in private/ and public/ */
#define QSOCK_QUEUE_NAME "queue"
#define QSOCK_LOCAL_NAME "local"
#define QSOCK_QMGR_NAME "qmgr"
#define QSOCK_CAPTURE_NAME "capture"
/* in pid/: the master's lock; its POSIX lock's holder is the master */
#define QFILE_MASTER_PID "master.pid"

#endif
