/* luser: Postfix's luser_relay, the catch-all for unknown local users.
 *
 * When the local delivery agent finds no user for a local recipient (not
 * a virtual mailbox's), luser_relay, when set, names where the mail goes
 * instead of bouncing: an address (or a bare name, which gets the
 * recipient's domain in the queue), with $user, $local, $extension,
 * $domain, $recipient and $recipient_delimiter expanded (${name?text} and
 * ${name:text} too; $home and $shell are empty for nobody). The values
 * keep only the bytes of an address (letters, digits, "@.-_+=!#$%&'*?^`{}~"):
 * a recipient cannot make the target a |command, a /file, an :include: or
 * a list. The agent hands the address back to the queue as an expansion,
 * which records it as a recipient of its own (logged "expanded by
 * luser_relay"). As with Postfix, smtpd refuses unknown users at RCPT
 * unless local_recipient_maps is empty, so only mail that gets that far
 * (local_recipient_maps = , or mail from sendmail) reaches it. */
#ifndef TERN_LOCAL_LUSER_H
#define TERN_LOCAL_LUSER_H

#include "maps/alias.h"

/* The target for the unknown user (with recipient rcpt), in *out (one
 * address; free with alias_result_free): 1, or 0 when luser_relay is empty,
 * its expansion is bad or empty, or it names rcpt itself (a loop). */
int luser_relay_target(const char *luser_relay, const char *rcpt, const char *user, const char *delimiters,
                       struct alias_result *out);

#endif
