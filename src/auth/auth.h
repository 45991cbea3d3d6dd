/* auth: the result and callback shapes shared by smtpd's SASL backends
 * (auth_passwd: tern's own password file; the Dovecot auth-socket client).
 *
 * A backend answers a (user, password) check later, on the caller's event
 * loop thread, through an auth_cb. AUTH_TEMPFAIL means "could not decide"
 * (backend unavailable, overloaded): smtpd answers 454 4.7.0, not 535.
 * why is a short text for logs; it never contains the password. */
#ifndef TERN_AUTH_AUTH_H
#define TERN_AUTH_AUTH_H

enum auth_result { AUTH_OK, AUTH_FAIL, AUTH_TEMPFAIL };
typedef void (*auth_cb)(void *arg, enum auth_result r, const char *why);

#endif
