/* capture_release: POST /api/v1/messages/ID/release {"to": [...]}: hands a
 * captured message to the real queue, to be delivered to the addresses
 * given (relayed, DKIM-signed when it came from a client that may send as
 * us, with retries and bounces like any other message).
 *
 * Only addresses capture_release_recipients allows may be given: its
 * entries are addresses, domains ("example.com" or "@example.com") and
 * type:table lookup tables in which an address or its domain is a key.
 * Empty (the default): releasing is off, so a test setup cannot send real
 * mail by mistake.
 *
 * The message is written anew into incoming/ (the same content, the same
 * envelope sender, the new recipients) and committed over private/queue
 * with CAPTURE_RELEASE, which the queue commits into queue/ whatever the
 * capture mode. The reply (202 with the new queue ID) waits for that
 * commit. Capture process only. */
#ifndef TERN_CAPTURE_CAPTURE_RELEASE_H
#define TERN_CAPTURE_CAPTURE_RELEASE_H

struct conf;
struct event_base;
struct evhttp_request;
struct capture_entry;

/* -1 with *err (malloc'd) when capture_release_recipients cannot be used. */
int capture_release_init(struct event_base *base, struct conf *c, const char *queue_dir, char **err);
/* Answers req: 202 {"id": ...}, 400 (a bad body), 403 (an address not
 * allowed), 503 (the queue did not take it). */
void capture_release(struct evhttp_request *req, const struct capture_entry *e);
void capture_release_shutdown(void);

#endif
