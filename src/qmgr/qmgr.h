/* qmgr: the queue process (see qmgr.c). Other modules of the queue process
 * (pickup) hand finished incoming/ files to it through qmgr_commit. */
#ifndef TERN_QMGR_QMGR_H
#define TERN_QMGR_QMGR_H

typedef void (*qmgr_commit_cb)(void *arg, int ok);
/* Commits incoming/ID like an smtpd commit; cb learns whether it is durable. */
void qmgr_commit(const char *id, qmgr_commit_cb cb, void *arg);

#endif
