/* cli_config: `tern config` (like postconf) and `newaliases`.
 *
 *   tern config              effective non-default parameters (postconf -n)
 *   tern config -a           every parameter (postconf)
 *   tern config NAME...      the effective value of each NAME
 *   tern config -d NAME...   the default of each NAME (postconf -d)
 *   tern config check        validate main.cf and master.cf, with FILE:LINE
 *   tern config man          tern.conf(5), generated from the parameter table */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "conf/conf.h"
#include "daemon/instance.h"
#include "maps/alias.h"
#include "maps/map.h"
#include "maps/resolver.h"
#include "util/mem.h"
#include "util/strbuf.h"

static const char *known_services[] = {"pickup", "cleanup", "qmgr", "tlsmgr", "rewrite", "bounce", "defer",
                                       "trace", "verify", "flush", "proxymap", "proxywrite", "smtp", "relay",
                                       "showq", "error", "retry", "discard", "local", "virtual", "lmtp",
                                       "anvil", "scache", "postlog", NULL};

static void check_services(struct instance *in, struct strbuf *out)
{
    for (size_t i = 0; i < in->services.n; i++) {
        struct mastercf_service *s = &in->services.svc[i];
        if (strcmp(s->type, "inet") == 0 && strcmp(s->command, "smtpd") == 0)
            continue;
        int builtin = 0;
        for (const char **k = known_services; *k; k++)
            if (strcmp(s->name, *k) == 0)
                builtin = 1;
        if (builtin)
            strbuf_printf(out, "%s:%d: note: service %s is built into tern; this line is ignored\n", s->file, s->line,
                      s->name);
        else
            strbuf_printf(out, "%s:%d: warning: service %s (%s %s) is not supported by tern; ignored\n", s->file,
                      s->line, s->name, s->type, s->command);
    }
}

/* A /file/name in a domain list that cannot be read stops the daemons at
 * start; say so before. */
static void check_domain_list_files(struct instance *in, struct strbuf *out)
{
    const char *param = NULL;
    char *problem = resolver_domain_list_files_problem(in->conf, &param);
    if (!problem)
        return;
    int line = 0;
    const char *origin = conf_origin(in->conf, param, &line);
    if (origin && line > 0)
        strbuf_printf(out, "%s:%d: ", origin, line);
    else
        strbuf_printf(out, "%s: ", origin ? origin : "main.cf");
    strbuf_printf(out, "error: %s\n", problem);
    free(problem);
}

/* Like postconf -n: what main.cf sets. config_directory is set from -c
 * (so that $config_directory expands), not by the file: it is left out
 * unless main.cf names it too. */
static void print_nondefault(struct instance *in)
{
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (!mem) {
        conf_print_nondefault(in->conf, stdout);
        return;
    }
    conf_print_nondefault(in->conf, mem);
    fclose(mem);
    int from_file = conf_origin(in->conf, "config_directory", NULL) != NULL;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (from_file || strncmp(line, "config_directory =", 18) != 0)
            puts(line);
    }
    free(text);
}

int cli_config(const char *config_dir, int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "man") == 0) {
        conf_print_man(stdout);
        return 0;
    }
    struct instance in;
    struct strbuf diag = STRBUF_INIT;
    int load_rc = instance_load(&in, config_dir, &diag);
    int rc = 0;
    if (argc > 1 && strcmp(argv[1], "check") == 0) {
        conf_check(in.conf, &diag);
        check_services(&in, &diag);
        check_domain_list_files(&in, &diag);
        fputs(strbuf_str(&diag), stdout);
        int errors = load_rc != 0 || strstr(strbuf_str(&diag), ": error:") != NULL;
        if (!errors)
            printf("%s: configuration OK\n", in.config_dir);
        rc = errors ? 1 : 0;
    } else if (load_rc != 0) {
        fputs(strbuf_str(&diag), stderr);
        rc = 1;
    } else if (argc > 1 && strcmp(argv[1], "-d") == 0) {
        struct conf *defaults = conf_new();
        for (int i = 2; i < argc; i++) {
            if (!conf_param_find(argv[i])) {
                fprintf(stderr, "tern: warning: %s: unknown parameter\n", argv[i]);
                rc = 1;
                continue;
            }
            printf("%s = %s\n", argv[i], conf_raw(defaults, argv[i]));
        }
        if (argc == 2)
            conf_print_all(defaults, stdout);
        conf_free(defaults);
    } else if (argc > 1 && strcmp(argv[1], "-a") == 0) {
        conf_print_all(in.conf, stdout);
    } else if (argc > 1 && strcmp(argv[1], "-n") != 0) {
        for (int i = 1; i < argc; i++) {
            const char *raw = conf_raw(in.conf, argv[i]);
            if (!raw) {
                fprintf(stderr, "tern: warning: %s: unknown parameter\n", argv[i]);
                rc = 1;
                continue;
            }
            /* A name outside the table (user-defined, or a Postfix parameter
             * tern ignores) has no type for conf_str to check: its raw value. */
            printf("%s = %s\n", argv[i], conf_param_find(argv[i]) ? conf_str(in.conf, argv[i]) : raw);
        }
    } else {
        print_nondefault(&in);
    }
    strbuf_free(&diag);
    instance_free(&in);
    return rc;
}

/* Tern reads alias files as text, so there is nothing to rebuild; this
 * checks them and says so, for scripts and habits that run newaliases. */
int cli_newaliases(const char *config_dir, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    struct instance in;
    struct strbuf diag = STRBUF_INIT;
    if (instance_load(&in, config_dir, &diag) != 0) {
        fputs(strbuf_str(&diag), stderr);
        strbuf_free(&diag);
        instance_free(&in);
        return 78;
    }
    strbuf_free(&diag);
    const char *db = conf_str(in.conf, "alias_database");
    int rc = 0;
    if (*db) {
        char *err = NULL;
        struct map_list *l = map_list_open(db, MAP_ALIAS_FORMAT, &err);
        if (!l) {
            fprintf(stderr, "newaliases: %s\n", err ? err : "cannot open alias_database");
            rc = 1;
        } else {
            char *v = NULL;
            if (map_list_lookup(l, "postmaster", &v) < 0) {
                fprintf(stderr, "newaliases: cannot read %s\n", db);
                rc = 1;
            }
            free(v);
            map_list_close(l);
        }
        free(err);
    }
    if (rc == 0)
        printf("newaliases: tern reads %s directly; changes take effect without rebuilding\n", *db ? db : "(none)");
    instance_free(&in);
    return rc;
}
