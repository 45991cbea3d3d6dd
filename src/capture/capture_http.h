/* capture_http: capture mode's HTTP API (libevent's evhttp; JSON by jansson).
 *
 * Routes (docs: README "Testing your application's mail"):
 *   GET    /api/v1/messages?inbox=&from=&subject=&since=CURSOR&limit=N
 *   GET    /api/v1/wait?inbox=&from=&subject=&after=CURSOR&count=N&timeout=S
 *   GET    /api/v1/messages/ID            envelope, header fields, parts ...
 *   GET    /api/v1/messages/ID/raw        the message as received
 *   DELETE /api/v1/messages/ID
 *   DELETE /api/v1/messages?inbox=ADDR    (no inbox: every message)
 *   POST   /api/v1/inboxes                a fresh random inbox address
 *   GET    /metrics                       Prometheus text
 *
 * Requests are bounded (header and body sizes, a timeout, at most
 * CAPTURE_MAX_WAITS parked waits). The listener is loopback-only: a Host
 * header that names anything but a loopback address or localhost is
 * refused (DNS rebinding), and a state-changing request whose Origin is not
 * this server is refused (a web page elsewhere cannot delete or release).
 * Capture process only. */
#ifndef TERN_CAPTURE_CAPTURE_HTTP_H
#define TERN_CAPTURE_CAPTURE_HTTP_H

struct event_base;
struct capture_counters;

/* Serves on the bound, listening socket fd; inbox_domain is the domain of
 * addresses POST /api/v1/inboxes makes; counters, smtpd's (shared memory,
 * daemon/runtime.h) for /metrics, may be NULL. 0, or -1. */
int capture_http_start(struct event_base *base, int fd, const char *inbox_domain,
                       const struct capture_counters *counters);
/* A message was added to the store: answers the waits it completes. */
void capture_http_arrived(void);
void capture_http_stop(void);

#endif
