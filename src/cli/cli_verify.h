/* cli_verify: `sendmail -bv`: what tern would do with each recipient, from
 * its own configuration and tables, with nothing delivered.
 *
 * Postfix mails a report instead; tern answers on standard output, one
 * line a recipient, and asks no remote server, so a relayed address is
 * only "would be relayed". The answer follows the queue's routing: an
 * error: entry of transport_maps (refused at RCPT), the recipient check,
 * virtual_alias_maps, then the transport the queue would use
 * (resolver_delivery_transport: the transport_maps entry over the address
 * class's default), said with where it comes from. Called by cli_sendmail
 * only. */
#ifndef TERN_CLI_CLI_VERIFY_H
#define TERN_CLI_CLI_VERIFY_H

#include <stddef.h>

struct conf;

/* Prints a line for each of rcpts (as given on the command line; myorigin
 * qualifies a bare name; queue_dir anchors a relative LMTP socket). 0 when every recipient is deliverable (or would
 * be relayed), 67 (EX_NOUSER) when one is not, 75 (EX_TEMPFAIL) when one
 * would be deferred or a table could not be read. */
int cli_verify_recipients(struct conf *c, const char *myorigin, const char *queue_dir, char **rcpts, size_t n);

#endif
