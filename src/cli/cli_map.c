/* cli_map: `tern map query TYPE:NAME KEY...`, like Postfix's `postmap -q`:
 * looks keys up in a table as the server would, to test a table before
 * naming it in main.cf. It reads the table itself and needs no running
 * server or configuration.
 *
 * Prints the value of each key found, one line each, through the printable
 * rule (cli_out), since values come from files anyone may have edited.
 * Exit status: 0 every key was found, 1 some key was not, 2 a temporary
 * error (table unreadable, match limit hit, database down) or a usage
 * error. Problems in the table's file (bad lines) are logged to stderr as
 * warnings.
 *
 * pgsql:/path tables are asked through map_pgsql's engine directly, on an
 * event loop of the command's own, one key after the other, so that a
 * temporary error's reason goes to stderr with the key (map_open would
 * open them too, through map_async.h, which waits the same way without an
 * event loop but only logs the reason). */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "cli/cli_out.h"
#include "maps/map.h"
#include "maps/map_pgsql.h"

static int map_usage(void)
{
    fprintf(stderr, "usage: tern map query TYPE:NAME KEY...\n");
    return 2;
}

/* The file of a "pgsql:/path" spec (also behind proxy:), else NULL. */
static const char *pgsql_spec_path(const char *spec)
{
    spec += strspn(spec, " \t");
    while (strncasecmp(spec, "proxy:", 6) == 0)
        spec += 6;
    return strncmp(spec, "pgsql:", 6) == 0 ? spec + 6 : NULL;
}

static int query_pgsql(const char *path, int nkeys, char **keys)
{
    struct event_base *base = event_base_new();
    if (!base) {
        cli_out_line(stderr, "tern map: cannot make an event loop");
        return 2;
    }
    char *err = NULL;
    struct pgsql_table *t = pgsql_table_open(path, base, &err);
    if (!t) {
        cli_out_line(stderr, "tern map: %s", err ? err : "cannot open the table");
        free(err);
        event_base_free(base);
        return 2;
    }
    int rc = 0;
    for (int i = 0; i < nkeys; i++) {
        char *value = NULL, *why = NULL;
        int found = pgsql_table_lookup_wait(t, keys[i], &value, &why);
        if (found > 0) {
            cli_out_line(stdout, "%s", value);
        } else if (found < 0) {
            cli_out_line(stderr, "tern map: %s: temporary error: %s", keys[i], why);
            rc = 2;
        } else if (rc == 0) {
            rc = 1;
        }
        free(value);
        free(why);
    }
    pgsql_table_close(t);
    event_base_free(base);
    return rc;
}

int cli_map(int argc, char **argv)
{
    if (argc < 4 || strcmp(argv[1], "query") != 0)
        return map_usage();
    const char *pgsql_path = pgsql_spec_path(argv[2]);
    if (pgsql_path)
        return query_pgsql(pgsql_path, argc - 3, argv + 3);
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
