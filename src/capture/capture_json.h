/* capture_json: the JSON the capture API answers with, and its HTTP replies.
 *
 * One place for the shape of a message summary (lists, waits, events) and
 * of a whole message (summary, envelope, and capture_mime's view), so that
 * every route and the OpenAPI document agree. Capture process only. */
#ifndef TERN_CAPTURE_CAPTURE_JSON_H
#define TERN_CAPTURE_CAPTURE_JSON_H

#include <jansson.h>

struct capture_entry;
struct evhttp_request;

/* {id, cursor, inbox[], from, to[], subject, date, received, size} */
json_t *capture_json_summary(const struct capture_entry *e);
/* {mail_from, rcpt_to[], client_address, client_name, helo, tls,
 *  auth_login, protocol} */
json_t *capture_json_envelope(const struct capture_entry *e);

/* The Authentication-Results value tern computed, or null. */
json_t *capture_json_auth_results(const struct capture_entry *e);

/* The whole message: the summary, the envelope, tern's
 * Authentication-Results, and capture_mime's view (taken over): its
 * fields join the summary's (the summary's "from", "to", "subject" and
 * "date" stay; the view's address lists go under "addresses"), and each
 * part and attachment gets its download "url". */
json_t *capture_json_message(const struct capture_entry *e, json_t *view);
/* "attachment; filename=...; filename*=UTF-8''..." (RFC 6266) for a part's
 * download, malloc'd; a part without a name is called part-N. */
char *capture_json_content_disposition(const char *filename, unsigned n);

/* Sends body (taken over) as the reply. */
void capture_reply_json(struct evhttp_request *req, int code, const char *reason, json_t *body);
/* {"error": why} */
void capture_reply_error(struct evhttp_request *req, int code, const char *reason, const char *why);

#endif
