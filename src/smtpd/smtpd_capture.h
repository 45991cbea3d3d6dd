/* smtpd_capture: capture mode's failure rules, for testing an application's
 * error paths against a server that otherwise accepts everything.
 *
 *  - Recipients: a pcre: table of "/pattern/ CODE X.Y.Z text" rules, kept by
 *    the capture API (PUT /api/v1/rules) in queue_directory/capture-rules/
 *    recipients.pcre; a recipient that matches gets that reply at RCPT.
 *    (Rules in main.cf are the restriction lists, which still run in
 *    capture mode: check_recipient_access pcre:/etc/tern/fail.pcre.)
 *  - Sessions: a share of connections (capture_session_failure_rate, in
 *    percent; the API's capture-rules/sessions file overrides it) gets
 *    "421 4.3.2" at once: deterministic, the 1st, 2nd ... that the rate
 *    makes due, never random, so a test run repeats.
 * A rules file that is missing or unreadable means no rules.
 * smtpd only; opened before the sandbox, whose room then includes
 * capture-rules/. */
#ifndef TERN_SMTPD_SMTPD_CAPTURE_H
#define TERN_SMTPD_SMTPD_CAPTURE_H

struct conf;

/* Called once at start when capture = yes. */
void smtpd_capture_init(struct conf *c, const char *queue_dir);
/* The reply for this recipient by the rules ("452 4.2.2 Mailbox full",
 * malloc'd), or NULL. */
char *smtpd_capture_rcpt_reply(const char *addr);
/* 1 when this new session is one the rate makes fail. */
int smtpd_capture_session_fails(void);
void smtpd_capture_shutdown(void);

#endif
