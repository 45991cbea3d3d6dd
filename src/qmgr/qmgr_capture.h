/* qmgr_capture: the queue's side of capture mode (main.cf capture).
 *
 * The store commits captured messages into capture/ (store_set_capture);
 * this module tells the capture process about each one once it is durable
 * (CAPTURED over private/capture), so that the API's wait calls answer at
 * once. Notices that cannot be sent (the capture process is restarting)
 * wait in a bounded backlog and go when it is back; past the bound they are
 * dropped, and the capture process finds those files when it next scans
 * capture/ (it scans at start and when told it missed some).
 * Queue process only. */
#ifndef TERN_QMGR_QMGR_CAPTURE_H
#define TERN_QMGR_QMGR_CAPTURE_H

struct event_base;
struct conf;

/* Reads `capture` and sets the store's mode; 0, or -1 when capture/
 * cannot be opened. */
int qmgr_capture_init(struct event_base *base, struct conf *c, const char *queue_dir);
/* 1 when committed messages go to capture/ only (capture = yes). */
int qmgr_capture_only(void);
/* The message ID was committed into capture/ and is durable. */
void qmgr_capture_notify(const char *id);
void qmgr_capture_shutdown(void);

#endif
