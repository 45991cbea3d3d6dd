/* cli_map: `tern map query TYPE:NAME KEY...`, like Postfix's `postmap -q`:
 * looks keys up in a table as the server would, to test a table before
 * naming it in main.cf. It reads the table itself and needs no running
 * server or configuration.
 *
 * Prints the value of each key found, one line each, through the printable
 * rule (cli_out), since values come from files anyone may have edited.
 * Exit status: 0 every key was found, 1 some key was not, 2 a temporary
 * error (table unreadable, match limit hit) or a usage error. Problems in
 * the table's file (bad lines) are logged to stderr as warnings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_out.h"
#include "maps/map.h"

static int map_usage(void)
{
    fprintf(stderr, "usage: tern map query TYPE:NAME KEY...\n");
    return 2;
}

int cli_map(int argc, char **argv)
{
    if (argc < 4 || strcmp(argv[1], "query") != 0)
        return map_usage();
    char *err = NULL;
    struct map *m = map_open(argv[2], 0, &err);
    if (!m) {
        cli_out_line(stderr, "tern map: %s", err ? err : "cannot open the table");
        free(err);
        return 2;
    }
    int rc = 0;
    for (int i = 3; i < argc; i++) {
        char *value = NULL;
        int found = map_lookup(m, argv[i], &value);
        if (found > 0)
            cli_out_line(stdout, "%s", value);
        else if (found < 0)
            rc = 2;
        else if (rc == 0)
            rc = 1;
        free(value);
    }
    map_close(m);
    return rc;
}
