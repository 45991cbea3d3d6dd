/* smtpd_mailauth: the mail authentication of one SMTP transaction: SPF of
 * the MAIL FROM and HELO identities from MAIL on, DKIM over the content as
 * it streams in, DMARC once both are known, all through the process's DNS
 * context without blocking; the outcome is one Authentication-Results
 * field (RFC 8601) that every delivery writes above the message, and a log
 * line.
 *
 * When: on listeners where smtpd_mail_authentication says so (auto: every
 * listener but submission ones), or whose restrictions need a result
 * (reject_spf_fail, defer_spf_temperror, smtpd_end_of_data_restrictions),
 * for clients whose mail tern does not sign itself (not mynetworks, not
 * authenticated); only the first adds the Authentication-Results field.
 * Incoming Authentication-Results fields that claim our authserv_id are
 * removed from every message, checked or not (RFC 8601 §5).
 *
 * Life: smtpd_mailauth_mail at MAIL starts it (and drops a previous one),
 * smtpd_mailauth_observer hands the content to it, smtpd_mailauth_finish at
 * the end of the data waits for the answers (at most SMTPD_MAILAUTH_WAIT_S
 * seconds; what is missing then is a temperror, and DMARC is still decided
 * with what is in, within SMTPD_DMARC_EXTRA_S more) and calls back, always
 * later, never from inside the call; smtpd_mailauth_end drops it (the
 * transaction ends) and cancels whatever is pending. */
#ifndef TERN_SMTPD_SMTPD_MAILAUTH_H
#define TERN_SMTPD_SMTPD_MAILAUTH_H

struct smtp_session;
struct cleanup_observer;

#define SMTPD_MAILAUTH_WAIT_S 10
#define SMTPD_SPF_LIMIT_S 20     /* RFC 7208 §4.6.4: at least 20 seconds */
#define SMTPD_DMARC_EXTRA_S 5    /* DMARC started late (the wait ran out): its own time */

/* smtpd_mail_authentication for a listener: 1 on, 0 off ("auto": off for
 * the submission services, by name or port 587/465, and wrapper mode). */
int smtpd_mailauth_enabled(const char *setting, const char *service, int wrapper_mode);

/* MAIL was accepted from sender ("" for <>): starts the checks when the
 * session gets them. */
void smtpd_mailauth_mail(struct smtp_session *s, const char *sender);
/* What cleanup reports the content to: the checks, or, for a transaction
 * without them, a filter that only drops Authentication-Results fields in
 * our authserv-id (every transaction gets one). Valid until the
 * transaction ends. */
const struct cleanup_observer *smtpd_mailauth_observer(struct smtp_session *s);

/* The content is complete: cb runs once every answer is in (or the wait
 * is over), from the event loop. Without checks it is not called: the
 * return value is 0 then, 1 when cb will run. */
int smtpd_mailauth_finish(struct smtp_session *s, void (*cb)(struct smtp_session *s));
/* After the callback: the Authentication-Results field (CRLF lines) to
 * prepend, or NULL. */
const char *smtpd_mailauth_results(const struct smtp_session *s);

/* RCPT must wait: a restriction needs the SPF result, which is not in. */
int smtpd_mailauth_rcpt_waits(const struct smtp_session *s);
/* The restriction lists' callbacks (smtpd_policy_ctx; arg: the session). */
int smtpd_mailauth_spf_result(void *arg, const char **text);
int smtpd_mailauth_dmarc_policy(void *arg, const char **text);

/* The message was judged (accepted, held or refused at the end of the
 * data): with dmarc_report_address set and a DMARC record that asks for
 * reports, the evaluation goes to the queue for the aggregate report
 * (a DMARC_RECORD message; RFC 9990). Once per transaction. */
void smtpd_mailauth_report(struct smtp_session *s);

/* The transaction is over: cancels and frees. */
void smtpd_mailauth_end(struct smtp_session *s);
/* Process end: frees the DMARC cache. */
void smtpd_mailauth_shutdown(void);

#endif
