/* capture_rules: GET, PUT and DELETE /api/v1/rules: the failure rules a
 * test sets for its run (smtpd_capture.h applies them):
 *
 *   {"recipients": [{"match": "^full-", "reply": "452 4.2.2 Mailbox full"}],
 *    "session_failure_rate": 25}
 *
 * match is a PCRE2 pattern tried on the whole recipient address (without
 * case); reply is "CODE X.Y.Z text" with a 4xx or 5xx code; the rate, in
 * percent, overrides capture_session_failure_rate (null or absent: main.cf's
 * value). The rules are written to queue_directory/capture-rules/ (a pcre:
 * table, the rate, and the JSON for GET), each file replaced at once by
 * rename, so smtpd never reads half a file; they last until DELETE. Bounded:
 * 100 rules, patterns of 500 bytes, replies of 200. Capture process only. */
#ifndef TERN_CAPTURE_CAPTURE_RULES_H
#define TERN_CAPTURE_CAPTURE_RULES_H

struct evhttp_request;

/* Opens capture-rules/ under queue_dir; -1 with *err (malloc'd). */
int capture_rules_init(const char *queue_dir, char **err);
void capture_rules_get(struct evhttp_request *req);
void capture_rules_put(struct evhttp_request *req);
void capture_rules_delete(struct evhttp_request *req);
void capture_rules_shutdown(void);

#endif
