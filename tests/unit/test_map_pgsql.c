/* Unit tests for pgsql: tables.
 *
 * map_pgsql_cf (no database): the configuration file (settings, hosts
 * forms, unknown settings, errors with file:line), which keys are queried
 * (domain filter, parts a template needs), query expansion and escaping,
 * result_format and joining, expansion_limit.
 *
 * map_pgsql's engine against a real, throwaway PostgreSQL that
 * tests/integration/pg_fixture.py serves (started once for the group,
 * driven through its stdin: stop, start, sql): answers, callbacks never
 * from inside pgsql_lookup, cancel, one reused connection, hosts in order,
 * the database going down (a temporary error, at once while it stays down)
 * and coming back, query errors and timeouts. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <event2/event.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "maps/map.h"
#include "maps/map_pgsql.h"
#include "maps/map_pgsql_cf.h"
#include "test_fixture.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/strbuf.h"

static char tmpdir[64];

static int setup_all(void **state)
{
    (void)state;
    if (tf_tmpdir_make(tmpdir, sizeof tmpdir, "test-map-pgsql") != 0)
        return -1;
    tf_log_capture(tmpdir);
    return 0;
}

static int teardown_all(void **state)
{
    (void)state;
    tf_log_release();
    return tf_tmpdir_remove(tmpdir);
}

static int setup_one(void **state)
{
    (void)state;
    return tf_log_clear();
}

static struct pgsql_cf *parse_ok(const char *text)
{
    char *err = NULL;
    struct pgsql_cf *cf = pgsql_cf_parse("/etc/tern/t.cf", text, strlen(text), &err);
    if (!cf)
        fail_msg("parse failed: %s", err);
    return cf;
}

static char *parse_err(const char *text)
{
    char *err = NULL;
    struct pgsql_cf *cf = pgsql_cf_parse("/etc/tern/t.cf", text, strlen(text), &err);
    assert_null(cf);
    assert_non_null(err);
    return err;
}

/* ---- the file ------------------------------------------------------------ */

static void test_cf_good_file(void **state)
{
    (void)state;
    struct pgsql_cf *cf = parse_ok("# virtual aliases\n"
                                   "hosts = db1, inet:db2:5433 unix:/run/postgresql\n"
                                   "   [::1]:6543 127.0.0.1 postgresql://u@h/db\n"
                                   "user = postfix\n"
                                   "password = a secret\n"
                                   "dbname = mail\n"
                                   "query = SELECT goto FROM alias WHERE address = '%s'\n"
                                   "expansion_limit = 5\n"
                                   "domain = Example.COM, hash:/nonexistent/domains\n"
                                   "retry_interval = 3\n"
                                   "query_timeout = 7\n");
    assert_int_equal(cf->host_count, 6);
    assert_string_equal(cf->hosts[0].host, "db1");
    assert_null(cf->hosts[0].port);
    assert_string_equal(cf->hosts[1].host, "db2");
    assert_string_equal(cf->hosts[1].port, "5433");
    assert_string_equal(cf->hosts[2].host, "/run/postgresql");
    assert_null(cf->hosts[2].port);
    assert_string_equal(cf->hosts[3].host, "::1");
    assert_string_equal(cf->hosts[3].port, "6543");
    assert_string_equal(cf->hosts[4].host, "127.0.0.1");
    assert_true(cf->hosts[5].uri);
    assert_string_equal(cf->hosts[5].host, "postgresql://u@h/db");
    assert_string_equal(cf->user, "postfix");
    assert_string_equal(cf->password, "a secret");
    assert_string_equal(cf->dbname, "mail");
    assert_string_equal(cf->encoding, "UTF8");
    assert_string_equal(cf->result_format, "%s");
    assert_int_equal(cf->expansion_limit, 5);
    assert_int_equal(cf->domain_count, 2);
    assert_string_equal(cf->domains[0], "example.com");
    assert_non_null(cf->domain_maps[1]);
    assert_int_equal(cf->retry_interval, 3);
    assert_int_equal(cf->query_timeout, 7);
    assert_int_equal(cf->connect_timeout, 5);
    assert_int_equal(cf->idle_interval, 60);
    assert_int_equal(tf_log_count("warning"), 0);
    pgsql_cf_free(cf);

    /* no hosts: localhost, as Postfix */
    cf = parse_ok("query = SELECT 1\n");
    assert_int_equal(cf->host_count, 1);
    assert_string_equal(cf->hosts[0].host, "localhost");
    pgsql_cf_free(cf);
}

static void test_cf_unknown_setting_warned(void **state)
{
    (void)state;
    struct pgsql_cf *cf = parse_ok("query = SELECT 1\n\nbogus_setting = 1\n");
    assert_int_equal(tf_log_count("/etc/tern/t.cf:3: unknown setting \"bogus_setting\" ignored"), 1);
    pgsql_cf_free(cf);
}

static void test_cf_errors(void **state)
{
    (void)state;
    char *err = parse_err("hosts = db1\nuser = x\n");
    assert_non_null(strstr(err, "/etc/tern/t.cf: no \"query\" setting"));
    free(err);
    err = parse_err("hosts = db1\nthis line has no equals sign\nquery = SELECT 1\n");
    assert_non_null(strstr(err, "/etc/tern/t.cf:2: expected \"name = value\""));
    free(err);
    err = parse_err("# c\nquery = SELECT '%x'\n");
    assert_non_null(strstr(err, "/etc/tern/t.cf:2: query: unknown expansion \"%x\""));
    free(err);
    err = parse_err("query = SELECT 1\nresult_format = x%\n");
    assert_non_null(strstr(err, "/etc/tern/t.cf:2: result_format: unknown expansion"));
    free(err);
    err = parse_err("query = SELECT 1\nhosts = db1:port\n");
    assert_non_null(strstr(err, "/etc/tern/t.cf:2: hosts: bad host \"db1:port\""));
    free(err);
    err = parse_err("query = SELECT 1\nhosts = unix:relative\n");
    assert_non_null(strstr(err, "t.cf:2: hosts: bad host"));
    free(err);
    err = parse_err("query = SELECT 1\nexpansion_limit = lots\n");
    assert_non_null(strstr(err, "t.cf:2: expansion_limit: \"lots\" is not a number"));
    free(err);
    err = parse_err("query = SELECT 1\ndomain = /etc/domains\n");
    assert_non_null(strstr(err, "t.cf:2: domain: a file of domains is not supported"));
    free(err);
}

static void test_cf_old_interface(void **state)
{
    (void)state;
    struct pgsql_cf *cf = parse_ok("select_field = goto\ntable = alias\nwhere_field = address\n"
                                   "additional_conditions = AND active\n");
    assert_string_equal(cf->query, "SELECT goto FROM alias WHERE address='%s' AND active");
    pgsql_cf_free(cf);
    cf = parse_ok("select_function = lookup_alias\n");
    assert_string_equal(cf->query, "SELECT lookup_alias('%s')");
    pgsql_cf_free(cf);
}

static void test_cf_read_missing_file(void **state)
{
    (void)state;
    char *err = NULL;
    assert_null(pgsql_cf_read("/nonexistent/pgsql.cf", &err));
    assert_non_null(strstr(err, "/nonexistent/pgsql.cf: No such file"));
    free(err);
}

/* The servers' map_open does not take pgsql: tables until its callers can
 * wait for an answer: a clear message, not "unknown type". */
/* map_open opens pgsql: tables (map_async.h answers them); a file it
 * cannot read is refused at once, named, also behind proxy:. */
static void test_map_open_pgsql_names_a_bad_file(void **state)
{
    (void)state;
    char *err = NULL;
    assert_null(map_open("pgsql:/nonexistent/pgsql-virtual.cf", 0, &err));
    assert_non_null(err);
    assert_non_null(strstr(err, "/nonexistent/pgsql-virtual.cf"));
    free(err);
    err = NULL;
    assert_null(map_open("proxy:pgsql:/nonexistent/pgsql-virtual.cf", 0, &err));
    assert_non_null(err);
    assert_non_null(strstr(err, "/nonexistent/pgsql-virtual.cf"));
    free(err);
}

/* ---- query expansion ----------------------------------------------------- */

static int standard_conforming = 1;

/* The query of key under the file text, or NULL when it is not queried. */
static char *query_of(const char *text, const char *key)
{
    struct pgsql_cf *cf = parse_ok(text);
    struct strbuf out = STRBUF_INIT;
    int rc = pgsql_expand_query(cf, key, pgsql_escape_plain, &standard_conforming, &out);
    pgsql_cf_free(cf);
    if (rc != 1) {
        assert_int_equal(rc, 0);
        strbuf_free(&out);
        return NULL;
    }
    return strbuf_detach(&out);
}

#define assert_query(text, key, want)                                                              \
    do {                                                                                           \
        char *got_ = query_of(text, key);                                                          \
        if (!(want))                                                                               \
            assert_null(got_);                                                                     \
        else                                                                                       \
            assert_string_equal(got_ ? got_ : "(not queried)", (want) ? (want) : "");              \
        free(got_);                                                                                \
    } while (0)

static void test_query_expansion(void **state)
{
    (void)state;
    const char *all = "query = s=%s u=%u d=%d 1=%1 2=%2 3=%3 pct=%% S=%S U=%U D=%D\n";
    assert_query(all, "user@mail.example.com",
                 "s=user@mail.example.com u=user d=mail.example.com 1=com 2=example 3=mail pct=% "
                 "S=user@mail.example.com U=user D=mail.example.com");
    /* too few labels for %3 */
    assert_query(all, "user@example.com", NULL);
    /* a key with no local part or domain */
    assert_query("query = u=%u\n", "user", "u=user");
    assert_query("query = u=%u\n", "@example.com", NULL);
    assert_query("query = d=%d\n", "user", NULL);
    assert_query("query = d=%d\n", "user@", NULL);
    assert_query("query = d=%D\n", "user", NULL);
    assert_query("query = x=%1\n", "user", NULL);
    assert_query("query = x=%1\n", "user@example.", NULL); /* empty label */
    assert_query("query = s=%s\n", "user", "s=user");
    assert_query("query = s=%s\n", "@example.com", "s=@example.com");
    /* the last '@' splits */
    assert_query("query = %u|%d\n", "\"a@b\"@example.com", "\"a@b\"|example.com");
    /* an empty key is never asked */
    assert_query("query = s=%s\n", "", NULL);
}

static void test_query_domain_filter(void **state)
{
    (void)state;
    const char *cf = "query = %s\ndomain = example.com .example.net\n";
    assert_query(cf, "a@example.com", "a@example.com");
    assert_query(cf, "a@sub.example.net", "a@sub.example.net");
    assert_query(cf, "a@example.net", NULL);
    assert_query(cf, "a@other.org", NULL);
    assert_query(cf, "a@sub.example.com", NULL);
    assert_query(cf, "a", NULL);           /* no domain */
    assert_query(cf, "@example.com", NULL); /* no local part */
    assert_query(cf, "example.com", NULL);

    /* a domain table that cannot be read: a temporary error */
    struct pgsql_cf *c = parse_ok("query = %s\ndomain = hash:/nonexistent/domains\n");
    assert_int_equal(pgsql_key_eligible(c, "a@example.com"), -1);
    pgsql_cf_free(c);
    c = parse_ok("query = %s\ndomain = inline:{example.org=yes}\n");
    assert_int_equal(pgsql_key_eligible(c, "a@example.org"), 1);
    assert_int_equal(pgsql_key_eligible(c, "a@example.com"), 0);
    pgsql_cf_free(c);
}

static void test_query_escaping(void **state)
{
    (void)state;
    const char *cf = "query = SELECT 1 WHERE a = '%s' AND u = '%u'\n";
    assert_query(cf, "o'brien\\x@example.com", "SELECT 1 WHERE a = 'o''brien\\x@example.com' AND u = 'o''brien\\x'");
    assert_query(cf, "'; DROP TABLE alias; --", "SELECT 1 WHERE a = '''; DROP TABLE alias; --' AND u = '''; DROP TABLE alias; --'");

    /* standard_conforming_strings off: backslashes are special too */
    standard_conforming = 0;
    assert_query(cf, "a\\'b", "SELECT 1 WHERE a = 'a\\\\''b' AND u = 'a\\\\''b'");
    standard_conforming = 1;
}

/* ---- results ------------------------------------------------------------- */

static int format(const char *text, const char *key, const char *const *fields, size_t n, char **value,
                  char **why)
{
    struct pgsql_cf *cf = parse_ok(text);
    int rc = pgsql_format_result(cf, key, fields, n, value, why);
    pgsql_cf_free(cf);
    return rc;
}

static void test_result_format(void **state)
{
    (void)state;
    char *value, *why;
    const char *rows[] = {"mx1.example.com", NULL, "", "mx2.example.com"};
    assert_int_equal(format("query = x\n", "k", rows, 4, &value, &why), 1);
    assert_string_equal(value, "mx1.example.com,mx2.example.com");
    free(value);
    assert_int_equal(format("query = x\nresult_format = smtp:[%s]\n", "k", rows, 4, &value, &why), 1);
    assert_string_equal(value, "smtp:[mx1.example.com],smtp:[mx2.example.com]");
    free(value);

    /* %u and %d take the value's parts; values without them are skipped */
    const char *addrs[] = {"a@x.org", "plain", "@y.org", "b@"};
    assert_int_equal(format("query = x\nresult_format = %u at %d\n", "k", addrs, 4, &value, &why), 1);
    assert_string_equal(value, "a at x.org");
    free(value);
    assert_int_equal(format("query = x\nresult_format = %u\n", "k", addrs, 4, &value, &why), 1);
    assert_string_equal(value, "a,plain,b");
    free(value);

    /* upper case and digits take the key's parts, unescaped */
    const char *one[] = {"v"};
    assert_int_equal(format("query = x\nresult_format = %s/%S/%U/%D/%1/%2/%%\n", "o'b@mail.example.com",
                            one, 1, &value, &why),
                     1);
    assert_string_equal(value, "v/o'b@mail.example.com/o'b/mail.example.com/com/example/%");
    free(value);

    /* nothing usable: not found */
    const char *empty[] = {NULL, ""};
    assert_int_equal(format("query = x\n", "k", empty, 2, &value, &why), 0);
    assert_null(value);
    assert_int_equal(format("query = x\n", "k", NULL, 0, &value, &why), 0);
}

static void test_expansion_limit(void **state)
{
    (void)state;
    char *value, *why;
    const char *two[] = {"a@x.org", "b@x.org"};
    assert_int_equal(format("query = x\nexpansion_limit = 1\n", "k@x.org", two, 2, &value, &why), -1);
    assert_null(value);
    assert_non_null(strstr(why, "more than expansion_limit = 1 results for \"k@x.org\""));
    free(why);
    assert_int_equal(format("query = x\nexpansion_limit = 2\n", "k", two, 2, &value, &why), 1);
    assert_string_equal(value, "a@x.org,b@x.org");
    free(value);
    /* skipped values do not count */
    const char *three[] = {"a@x.org", "", NULL, "b@x.org"};
    assert_int_equal(format("query = x\nexpansion_limit = 2\n", "k", three, 4, &value, &why), 1);
    free(value);
    assert_int_equal(format("query = x\nexpansion_limit = 0\n", "k", two, 2, &value, &why), 1);
    free(value);
}

/* ---- the engine against a real PostgreSQL -------------------------------- */

static struct {
    int started;
    char *skip_why;
    pid_t pid;
    FILE *to, *from;
    int port;
    char sockdir[256];
    struct event_base *base;
} pg;

static char *fixture_path(void)
{
    const char *slash = strrchr(__FILE__, '/');
    if (!slash)
        return xstrdup("../integration/pg_fixture.py");
    return xasprintf("%.*s/../integration/pg_fixture.py", (int)(slash - __FILE__), __FILE__);
}

/* Starts the fixture once; test_skip (a failure under CI) when it cannot. */
static void pg_need(void)
{
    if (!pg.started) {
        pg.started = 1;
        int in[2], out[2];
        char *script = fixture_path();
        if (access(script, R_OK) != 0 || pipe(in) != 0 || pipe(out) != 0) {
            pg.skip_why = xasprintf("%s not readable", script);
            free(script);
            test_skip("%s", pg.skip_why);
        }
        pg.pid = fork();
        if (pg.pid == 0) {
            dup2(in[0], 0);
            dup2(out[1], 1);
            close(in[1]);
            close(out[0]);
            execl("/usr/bin/python3", "python3", script, "serve", (char *)NULL);
            _exit(127);
        }
        free(script);
        close(in[0]);
        close(out[1]);
        pg.to = fdopen(in[1], "w");
        pg.from = fdopen(out[0], "r");
        char line[1024];
        if (!fgets(line, sizeof line, pg.from) ||
            sscanf(line, "READY %d %255s", &pg.port, pg.sockdir) != 2)
            pg.skip_why = xstrdup("the PostgreSQL fixture did not start (Debian package postgresql; "
                                  "see its output above)");
        pg.base = event_base_new();
    }
    if (pg.skip_why)
        test_skip("%s", pg.skip_why);
}

static void pg_command(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(pg.to, fmt, ap);
    va_end(ap);
    fputc('\n', pg.to);
    fflush(pg.to);
    char line[1024];
    assert_non_null(fgets(line, sizeof line, pg.from));
    if (strncmp(line, "OK", 2) != 0)
        fail_msg("fixture: %s", line);
}

static void pg_shutdown(void)
{
    if (pg.to) {
        fputs("quit\n", pg.to);
        fclose(pg.to);
        char line[256];
        while (fgets(line, sizeof line, pg.from))
            ;
        fclose(pg.from);
        waitpid(pg.pid, NULL, 0);
    }
    if (pg.base)
        event_base_free(pg.base);
    free(pg.skip_why);
}

static struct pgsql_table *table_with(const char *hosts, const char *query, const char *extra)
{
    char *path = xasprintf("%s/t%d.cf", tmpdir, rand());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "hosts = %s\nuser = lookup\npassword = s3cret 'quoted' \\pass\ndbname = mail\nquery = %s\n"
            "%s",
            hosts, query, extra ? extra : "");
    fclose(f);
    char *err = NULL;
    struct pgsql_table *t = pgsql_table_open(path, pg.base, &err);
    if (!t)
        fail_msg("%s", err);
    free(path);
    return t;
}

static char *tcp_host(void)
{
    return xasprintf("inet:127.0.0.1:%d", pg.port);
}

struct answer {
    int calls, rc;
    char value[512], why[1024];
};

static void record_answer(void *arg, int rc, const char *value, const char *why)
{
    struct answer *a = arg;
    a->calls++;
    a->rc = rc;
    snprintf(a->value, sizeof a->value, "%s", value ? value : "");
    snprintf(a->why, sizeof a->why, "%s", why ? why : "");
    if (rc > 0)
        assert_non_null(value);
    if (rc < 0)
        assert_non_null(why);
}

static void run_until(struct answer *a)
{
    for (int i = 0; i < 100000 && a->calls == 0; i++)
        assert_true(event_base_loop(pg.base, EVLOOP_ONCE) >= 0);
    assert_int_equal(a->calls, 1);
}

/* An asynchronous lookup of key: its rc, the value or reason in *a. */
static int ask(struct pgsql_table *t, const char *key, struct answer *a)
{
    memset(a, 0, sizeof *a);
    pgsql_lookup(t, key, record_answer, a);
    assert_int_equal(a->calls, 0); /* never from inside pgsql_lookup */
    run_until(a);
    return a->rc;
}

static const char *alias_query = "SELECT goto FROM alias WHERE address = '%s'";

static void test_engine_found_and_not(void **state)
{
    (void)state;
    pg_need();
    pg_command("sql CREATE TABLE IF NOT EXISTS alias (address text, goto text)");
    pg_command("sql INSERT INTO alias VALUES ('a@example.com', 'b@example.org'), "
               "('multi@example.com', 'x@example.org'), ('multi@example.com', 'y@example.org'), "
               "('o''brien\\x@example.com', 'quoted@example.org')");
    char *host = tcp_host();
    struct pgsql_table *t = table_with(host, alias_query, NULL);
    struct answer a;
    assert_int_equal(ask(t, "A@Example.COM", &a), 1); /* folded */
    assert_string_equal(a.value, "b@example.org");
    assert_int_equal(ask(t, "nobody@example.com", &a), 0);
    assert_int_equal(ask(t, "multi@example.com", &a), 1);
    assert_true(strcmp(a.value, "x@example.org,y@example.org") == 0 ||
                strcmp(a.value, "y@example.org,x@example.org") == 0);
    assert_int_equal(ask(t, "o'brien\\x@example.com", &a), 1); /* escaped on the connection */
    assert_string_equal(a.value, "quoted@example.org");
    assert_int_equal(ask(t, "", &a), 0);

    /* the blocking convenience */
    char *value = NULL, *why = NULL;
    assert_int_equal(pgsql_table_lookup_wait(t, "a@example.com", &value, &why), 1);
    assert_string_equal(value, "b@example.org");
    free(value);
    assert_int_equal(pgsql_table_lookup_wait(t, "zz@example.com", &value, &why), 0);
    assert_null(value);
    pgsql_table_close(t);
    free(host);
}

static void test_engine_reuses_connection(void **state)
{
    (void)state;
    pg_need();
    char *host = tcp_host();
    struct pgsql_table *t = table_with(host, "SELECT pg_backend_pid()::text WHERE '%s' <> ''", NULL);
    struct answer a;
    assert_int_equal(ask(t, "k1", &a), 1);
    char first[sizeof a.value];
    snprintf(first, sizeof first, "%s", a.value);
    assert_int_equal(ask(t, "k2", &a), 1);
    assert_string_equal(a.value, first);
    pgsql_table_close(t);
    free(host);
}

static void test_engine_queue_and_cancel(void **state)
{
    (void)state;
    pg_need();
    char *host = tcp_host();
    struct pgsql_table *t = table_with(host, "SELECT '%s'::text", NULL);
    struct answer a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0};
    pgsql_lookup(t, "one", record_answer, &a1);
    struct pgsql_query *cancelled = pgsql_lookup(t, "two", record_answer, &a2);
    pgsql_lookup(t, "three", record_answer, &a3);
    pgsql_lookup_cancel(cancelled);
    run_until(&a3);
    run_until(&a1);
    assert_string_equal(a1.value, "one");
    assert_string_equal(a3.value, "three");
    assert_int_equal(a2.calls, 0);
    pgsql_table_close(t);

    /* cancelled while its query is on the wire (it sleeps 0.3 s there): the
     * answer is dropped, the connection goes on */
    t = table_with(host, "SELECT pg_sleep(0.3)::text || '%s'", NULL);
    struct pgsql_query *q = pgsql_lookup(t, "four", record_answer, &a4);
    for (int i = 0; i < 50; i++) {
        event_base_loop(pg.base, EVLOOP_NONBLOCK);
        usleep(2000);
    }
    assert_int_equal(a4.calls, 0);
    pgsql_lookup_cancel(q);
    struct answer a5;
    assert_int_equal(ask(t, "five", &a5), 1);
    assert_string_equal(a5.value, "five");
    assert_int_equal(a4.calls, 0);
    /* closing with lookups outstanding: no callbacks, nothing leaked */
    struct answer a6 = {0};
    pgsql_lookup(t, "six", record_answer, &a6);
    pgsql_table_close(t);
    assert_int_equal(a6.calls, 0);
    free(host);
}

static void test_engine_hosts_in_order(void **state)
{
    (void)state;
    pg_need();
    /* a port nothing listens on, then the server */
    int dead = pg.port == 1 ? 2 : 1;
    char *hosts = xasprintf("inet:127.0.0.1:%d 127.0.0.1:%d", dead, pg.port);
    struct answer a;
    struct pgsql_table *t = table_with(hosts, alias_query, NULL);
    assert_int_equal(ask(t, "a@example.com", &a), 1);
    assert_string_equal(a.value, "b@example.org");
    assert_true(tf_log_count("Connection refused") >= 1);
    pgsql_table_close(t);
    free(hosts);

    /* every host dead: a temporary error naming the last */
    hosts = xasprintf("127.0.0.1:%d", dead);
    t = table_with(hosts, alias_query, NULL);
    assert_int_equal(ask(t, "a@example.com", &a), -1);
    assert_non_null(strstr(a.why, "no database host answered"));
    assert_non_null(strstr(a.why, "Connection refused"));
    pgsql_table_close(t);
    free(hosts);
}

/* A host that takes the TCP connection and never says a word. */
static int silent_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sin;
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

static void test_engine_connect_timeout_next_host(void **state)
{
    (void)state;
    pg_need();
    int silent_port;
    int silent = silent_listener(&silent_port);
    char *hosts = xasprintf("127.0.0.1:%d 127.0.0.1:%d", silent_port, pg.port);
    struct pgsql_table *t = table_with(hosts, alias_query, "connect_timeout = 1\n");
    struct answer a;
    assert_int_equal(ask(t, "a@example.com", &a), 1);
    assert_string_equal(a.value, "b@example.org");
    assert_int_equal(tf_log_count("no connection within connect_timeout = 1 s"), 1);
    pgsql_table_close(t);
    free(hosts);
    close(silent);
}

struct tick {
    int fired;
    struct answer *query; /* not answered yet when the timer fires */
};

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct tick *tick = arg;
    assert_int_equal(tick->query->calls, 0);
    tick->fired = 1;
}

/* A slow query does not hold the loop: a 50 ms timer fires before it ends. */
static void test_engine_loop_runs_during_query(void **state)
{
    (void)state;
    pg_need();
    char *host = tcp_host();
    struct pgsql_table *t = table_with(host, "SELECT pg_sleep(0.5)::text || '%s'", NULL);
    struct answer a = {0};
    struct tick tick = {0, &a};
    struct event *timer = evtimer_new(pg.base, on_tick, &tick);
    evtimer_add(timer, &(struct timeval){.tv_usec = 50000});
    pgsql_lookup(t, "slow", record_answer, &a);
    while (!tick.fired && a.calls == 0)
        event_base_loop(pg.base, EVLOOP_ONCE);
    assert_true(tick.fired);
    run_until(&a);
    assert_int_equal(a.rc, 1);
    assert_string_equal(a.value, "slow");
    event_free(timer);
    pgsql_table_close(t);
    free(host);
}

static void test_engine_database_down_and_back(void **state)
{
    (void)state;
    pg_need();
    char *host = tcp_host();
    struct pgsql_table *t = table_with(host, alias_query, "retry_interval = 1\n");
    struct answer a;
    assert_int_equal(ask(t, "a@example.com", &a), 1);
    pg_command("stop");
    /* the idle connection broke: tried again on a new one, which fails */
    assert_int_equal(ask(t, "a@example.com", &a), -1);
    assert_non_null(strstr(a.why, "no database host answered"));
    /* while down, at once, without trying */
    int warnings = tf_log_count("Connection refused");
    assert_int_equal(ask(t, "a@example.com", &a), -1);
    assert_non_null(strstr(a.why, "no database host answered"));
    assert_int_equal(tf_log_count("Connection refused"), warnings);
    pg_command("start");
    usleep(1100 * 1000); /* retry_interval */
    assert_int_equal(ask(t, "a@example.com", &a), 1);
    assert_string_equal(a.value, "b@example.org");

    /* a restart between lookups is not an error: the query is sent again */
    pg_command("stop");
    pg_command("start");
    assert_int_equal(ask(t, "a@example.com", &a), 1);
    assert_string_equal(a.value, "b@example.org");
    pgsql_table_close(t);
    free(host);
}

static void test_engine_query_error_and_timeout(void **state)
{
    (void)state;
    pg_need();
    char *host = tcp_host();
    struct pgsql_table *t = table_with(host, "SELECT goto FROM no_such_table WHERE a = '%s'", NULL);
    struct answer a;
    assert_int_equal(ask(t, "a@example.com", &a), -1);
    assert_non_null(strstr(a.why, "query failed"));
    assert_non_null(strstr(a.why, "no_such_table"));
    pgsql_table_close(t);

    t = table_with(host, "SELECT pg_sleep(CASE WHEN '%s' = 'slow' THEN 5 ELSE 0 END)::text || 'done'",
                   "query_timeout = 1\n");
    assert_int_equal(ask(t, "slow", &a), -1);
    assert_non_null(strstr(a.why, "no answer within query_timeout = 1 s"));
    assert_int_equal(ask(t, "fast", &a), 1); /* on a new connection */
    assert_string_equal(a.value, "done");
    pgsql_table_close(t);

    /* expansion_limit through the engine */
    t = table_with(host, alias_query, "expansion_limit = 1\n");
    assert_int_equal(ask(t, "multi@example.com", &a), -1);
    assert_non_null(strstr(a.why, "expansion_limit"));
    assert_int_equal(ask(t, "a@example.com", &a), 1);
    pgsql_table_close(t);

    /* a key the table would not query: no connection made */
    t = table_with("127.0.0.1:1", "SELECT '%d'", NULL);
    assert_int_equal(ask(t, "nodomain", &a), 0);
    pgsql_table_close(t);
    free(host);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_cf_good_file, setup_one),
        cmocka_unit_test_setup(test_cf_unknown_setting_warned, setup_one),
        cmocka_unit_test_setup(test_cf_errors, setup_one),
        cmocka_unit_test_setup(test_cf_old_interface, setup_one),
        cmocka_unit_test_setup(test_cf_read_missing_file, setup_one),
        cmocka_unit_test_setup(test_map_open_pgsql_names_a_bad_file, setup_one),
        cmocka_unit_test_setup(test_query_expansion, setup_one),
        cmocka_unit_test_setup(test_query_domain_filter, setup_one),
        cmocka_unit_test_setup(test_query_escaping, setup_one),
        cmocka_unit_test_setup(test_result_format, setup_one),
        cmocka_unit_test_setup(test_expansion_limit, setup_one),
        cmocka_unit_test_setup(test_engine_found_and_not, setup_one),
        cmocka_unit_test_setup(test_engine_reuses_connection, setup_one),
        cmocka_unit_test_setup(test_engine_queue_and_cancel, setup_one),
        cmocka_unit_test_setup(test_engine_hosts_in_order, setup_one),
        cmocka_unit_test_setup(test_engine_connect_timeout_next_host, setup_one),
        cmocka_unit_test_setup(test_engine_loop_runs_during_query, setup_one),
        cmocka_unit_test_setup(test_engine_database_down_and_back, setup_one),
        cmocka_unit_test_setup(test_engine_query_error_and_timeout, setup_one),
    };
    int rc = cmocka_run_group_tests(tests, setup_all, teardown_all);
    pg_shutdown();
    return rc;
}
