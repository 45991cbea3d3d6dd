/* cli: the command-line tools that address a tern instance: sendmail,
 * mailq / tern queue, tern config, newaliases, tern map. Each returns an exit status
 * (sysexits values for sendmail, as scripts expect). */
#ifndef TERN_CLI_CLI_H
#define TERN_CLI_CLI_H

int cli_sendmail(const char *config_dir, int argc, char **argv);
int cli_queue(const char *config_dir, int argc, char **argv);   /* argv[0] = "queue" or "mailq" */
int cli_config(const char *config_dir, int argc, char **argv);
int cli_newaliases(const char *config_dir, int argc, char **argv);
int cli_dkim(const char *config_dir, int argc, char **argv);   /* argv[0] = "dkim" */
int cli_map(int argc, char **argv);                             /* argv[0] = "map" */

#endif
