/* cli_passwd: `tern passwd`, the admin tool for tern's own SASL password
 * file (read by smtpd through auth_passwd, which notices changes within a
 * second, so no restart is needed).
 *
 *   tern passwd add USER [ADDRESS...]  set USER's password (new user, or a
 *                                      new password for an existing one);
 *                                      ADDRESSes replace the sender list,
 *                                      none given keeps the existing list
 *   tern passwd del USER               remove USER
 *   tern passwd list                   user names and sender addresses
 *                                      (never hashes)
 *   tern passwd check USER             ask for a password, print ok / fail
 *
 * The password is read from the terminal without echo (twice for add, must
 * match) or, when stdin is not a terminal, as one line from stdin. Hashes
 * are yescrypt ($y$, libxcrypt's default cost). Changes are written to a
 * temporary file in the same directory, fsynced and renamed over the file
 * (owner, group and mode kept; a new file is mode 0640), under an flock on
 * PATH.lock so concurrent runs cannot lose each other's changes. Comments,
 * blank and unparsable lines are kept as they are.
 *
 * Called by the `tern` front end with the password file's path from the
 * configuration; argv[0] is the subcommand. Returns the exit status:
 * 0 done / password ok, 1 no such user or password mismatch, 2 usage or
 * I/O error. Diagnostics go to stderr as "tern passwd: ...". */
#ifndef TERN_CLI_CLI_PASSWD_H
#define TERN_CLI_CLI_PASSWD_H

int cli_passwd_main(const char *path, int argc, char **argv);

#endif
