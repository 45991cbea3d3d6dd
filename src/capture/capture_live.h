/* capture_live: the API's answers that wait for mail: GET /api/v1/wait
 * (answered the moment enough matching messages exist, 408 at its timeout)
 * and GET /api/v1/events (server-sent events: `message`, `deleted`,
 * `pruned`; resumable with Last-Event-ID, which is a cursor).
 *
 * Both are bounded: at most CAPTURE_MAX_WAITS waits and
 * CAPTURE_MAX_STREAMS event streams at once (more get 503), and a stream
 * whose client does not read is closed beyond CAPTURE_STREAM_BACKLOG bytes.
 * Capture process only. */
#ifndef TERN_CAPTURE_CAPTURE_LIVE_H
#define TERN_CAPTURE_CAPTURE_LIVE_H

#include <stdint.h>

#include "capture/capture_store.h"

struct event_base;
struct evhttp_request;

#define CAPTURE_MAX_WAITS 1024
#define CAPTURE_MAX_STREAMS 256
#define CAPTURE_STREAM_BACKLOG (4u * 1024 * 1024)
#define CAPTURE_WAIT_MAX_S 600

void capture_live_init(struct event_base *base);
/* Takes the filter over. count >= 1, timeout_s <= CAPTURE_WAIT_MAX_S. */
void capture_live_wait(struct evhttp_request *req, struct capture_filter *f, unsigned count, unsigned timeout_s);
/* Takes the filter over; f->after is the Last-Event-ID (0: none): the
 * messages after it are sent first. */
void capture_live_events(struct evhttp_request *req, struct capture_filter *f);
/* The store changed: new messages (answers waits, tells streams), a
 * deletion (id, or every message of inbox, or all when both are NULL). */
void capture_live_arrived(void);
void capture_live_deleted(const char *id, const char *inbox);
size_t capture_live_waiting(void);
size_t capture_live_streams(void);
void capture_live_shutdown(void);

#endif
