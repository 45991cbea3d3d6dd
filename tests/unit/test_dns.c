/* Tests for dns: next hops and raw lookups answered by a real unbound
 * (/usr/sbin/unbound, Debian's package) that the test starts on a free
 * loopback port, serving tests/dns/test.zone with tests/dns/unbound.conf.in;
 * the queries run through a real libevent loop. Failures come from real
 * sockets too: a port where nothing listens, and a UDP socket that swallows
 * queries without answering. Tests that need unbound are skipped when it is
 * not installed. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <unbound.h>

#include "dns/dns.h"
#include "dns/dns_internal.h"
#include "test_fixture.h"
#include "util/mem.h"
#include "util/strbuf.h"

#ifndef UNBOUND_BIN
#define UNBOUND_BIN "/usr/sbin/unbound"
#endif

struct server {
    pid_t pid;
    int port;
    char dir[64];
};

static struct event_base *base;
static struct server main_server;
static struct dns_ctx *ctx;        /* both families, through main_server */
static int have_unbound;

/* ---- helpers ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *fixture_path(const char *name)
{
    const char *slash = strrchr(__FILE__, '/');
    char *rel = xasprintf("%.*s../dns/%s", slash ? (int)(slash - __FILE__ + 1) : 0, __FILE__, name);
    char *abs = realpath(rel, NULL);
    if (abs == NULL)
        fail_msg("fixture %s: %s", rel, strerror(errno));
    free(rel);
    return abs;
}

/* A port nobody uses right now, on 127.0.0.1 (checked for UDP and TCP). */
static int free_port(void)
{
    for (int tries = 0; tries < 50; tries++) {
        int u = socket(AF_INET, SOCK_DGRAM, 0);
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof sin;
        assert_int_equal(bind(u, (struct sockaddr *)&sin, sizeof sin), 0);
        assert_int_equal(getsockname(u, (struct sockaddr *)&sin, &len), 0);
        int t = socket(AF_INET, SOCK_STREAM, 0);
        int ok = bind(t, (struct sockaddr *)&sin, sizeof sin) == 0;
        close(t);
        close(u);
        if (ok)
            return ntohs(sin.sin_port);
    }
    fail_msg("no free port");
    return -1;
}

static int port_accepts(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = connect(s, (struct sockaddr *)&sin, sizeof sin) == 0;
    close(s);
    return ok;
}

static void write_config(const struct server *sv)
{
    char *tmpl_path = fixture_path("unbound.conf.in"), *zone = fixture_path("test.zone");
    FILE *in = fopen(tmpl_path, "r");
    assert_non_null(in);
    struct strbuf conf = STRBUF_INIT;
    char line[1024];
    char port[16];
    snprintf(port, sizeof port, "%d", sv->port);
    while (fgets(line, sizeof line, in) != NULL) {
        for (const char *p = line; *p != '\0';) {
            if (strncmp(p, "@DIR@", 5) == 0) {
                strbuf_puts(&conf, sv->dir);
                p += 5;
            } else if (strncmp(p, "@PORT@", 6) == 0) {
                strbuf_puts(&conf, port);
                p += 6;
            } else if (strncmp(p, "@ZONEFILE@", 10) == 0) {
                strbuf_puts(&conf, zone);
                p += 10;
            } else {
                strbuf_putc(&conf, *p++);
            }
        }
    }
    fclose(in);
    char *path = xasprintf("%s/unbound.conf", sv->dir);
    FILE *out = fopen(path, "w");
    assert_non_null(out);
    fputs(strbuf_str(&conf), out);
    fclose(out);
    free(path);
    strbuf_free(&conf);
    free(tmpl_path);
    free(zone);
}

static void show_log(const struct server *sv)
{
    char *path = xasprintf("%s/unbound.log", sv->dir);
    FILE *f = fopen(path, "r");
    char line[512];
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        fprintf(stderr, "unbound: %s", line);
    if (f != NULL)
        fclose(f);
    free(path);
}

/* Starts unbound on a free port; returns 0 when it is accepting queries. */
static int server_start(struct server *sv)
{
    memset(sv, 0, sizeof *sv);
    if (tf_tmpdir_make(sv->dir, sizeof sv->dir, "dns") != 0)
        return -1;
    sv->port = free_port();
    write_config(sv);
    char *conf = xasprintf("%s/unbound.conf", sv->dir), *log = xasprintf("%s/unbound.log", sv->dir);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);    /* never outlive a crashed test */
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(UNBOUND_BIN, "unbound", "-d", "-c", conf, (char *)NULL);
        _exit(127);
    }
    free(conf);
    free(log);
    if (pid < 0)
        return -1;
    sv->pid = pid;
    for (int i = 0; i < 200; i++) {      /* up to 10 s */
        if (port_accepts(sv->port))
            return 0;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            sv->pid = 0;
            show_log(sv);
            return -1;
        }
        usleep(50 * 1000);
    }
    show_log(sv);
    return -1;
}

static void server_stop(struct server *sv)
{
    if (sv->pid > 0) {
        kill(sv->pid, SIGTERM);
        waitpid(sv->pid, NULL, 0);
        sv->pid = 0;
    }
    tf_tmpdir_remove(sv->dir);
    sv->dir[0] = '\0';
}

static struct dns_ctx *ctx_for(int port, int v4, int v6)
{
    char *list = xasprintf("127.0.0.1:%d", port), *err = NULL;
    struct dns_ctx *d = dns_new(base, list, v4, v6, &err);
    if (d == NULL)
        fail_msg("dns_new: %s", err);
    free(list);
    dns_set_timeout(d, 5000);
    return d;
}

struct waiter {
    int calls;
    struct dns_route *route;
    struct dns_rrset *rrset;
};

static void on_route(void *arg, struct dns_route *r)
{
    struct waiter *w = arg;
    w->calls++;
    w->route = r;
}

static void on_rrset(void *arg, struct dns_rrset *rs)
{
    struct waiter *w = arg;
    w->calls++;
    w->rrset = rs;
}

static void run_until(const int *flag)
{
    double start = now_s();
    while (!*flag) {
        event_base_loop(base, EVLOOP_ONCE);
        if (now_s() - start > 20)
            fail_msg("no answer within 20 s");
    }
}

static void run_until_all(const struct waiter *w, size_t n)
{
    double start = now_s();
    for (;;) {
        size_t done = 0;
        for (size_t i = 0; i < n; i++)
            done += w[i].calls > 0;
        if (done == n)
            return;
        event_base_loop(base, EVLOOP_ONCE);
        if (now_s() - start > 20)
            fail_msg("no answer within 20 s");
    }
}

static struct dns_route *resolve_with(struct dns_ctx *d, const char *domain)
{
    struct waiter w = {0};
    dns_resolve_mail_domain(d, domain, on_route, &w);
    assert_int_equal(w.calls, 0);      /* never called back from inside the call */
    run_until(&w.calls);
    assert_int_equal(w.calls, 1);
    assert_non_null(w.route);
    return w.route;
}

static struct dns_route *resolve(const char *domain)
{
    return resolve_with(ctx, domain);
}

static struct dns_rrset *lookup_with(struct dns_ctx *d, const char *name, int rrtype)
{
    struct waiter w = {0};
    dns_lookup(d, name, rrtype, on_rrset, &w);
    assert_int_equal(w.calls, 0);
    run_until(&w.calls);
    assert_non_null(w.rrset);
    return w.rrset;
}

static char *addr_text(const struct sockaddr_storage *ss)
{
    char buf[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        assert_int_equal(sin->sin_port, 0);
        inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf);
    } else {
        assert_int_equal(ss->ss_family, AF_INET6);
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        assert_int_equal(sin6->sin6_port, 0);
        inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof buf);
    }
    return xstrdup(buf);
}

static void assert_addr(const struct dns_host *h, size_t i, const char *want)
{
    assert_true(i < h->naddrs);
    char *got = addr_text(&h->addrs[i]);
    assert_string_equal(got, want);
    free(got);
}

static void assert_contains(const char *hay, const char *needle)
{
    assert_non_null(hay);
    if (strstr(hay, needle) == NULL)
        fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

#define NEED_UNBOUND()                                                                   \
    do {                                                                                 \
        if (!have_unbound)                                                               \
            test_skip("%s is not installed: no DNS server to test against", UNBOUND_BIN); \
    } while (0)

/* A UDP socket that reads queries and never answers. */
static int blackhole(int *port)
{
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sin;
    assert_int_equal(bind(s, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&sin, &len), 0);
    *port = ntohs(sin.sin_port);
    return s;
}

/* ---- next hops ---- */

static void test_mx_sorted_with_addresses(void **state)
{
    (void)state;
    NEED_UNBOUND();
    struct dns_route *r = resolve("multi.test");
    assert_int_equal(r->status, DNS_OK);
    assert_null(r->why);
    assert_string_equal(r->domain, "multi.test");
    assert_true(r->from_mx);
    assert_false(r->literal);
    assert_false(r->mx_secure);         /* no trust anchor configured */
    assert_int_equal(r->nhosts, 5);
    unsigned prefs[] = {10, 20, 20, 30, 40};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(r->hosts[i].pref, prefs[i]);
    assert_string_equal(r->hosts[0].name, "mx1.multi.test");
    assert_true(strcmp(r->hosts[1].name, "mx2a.multi.test") == 0 || strcmp(r->hosts[1].name, "mx2b.multi.test") == 0);
    assert_true(strcmp(r->hosts[2].name, "mx2a.multi.test") == 0 || strcmp(r->hosts[2].name, "mx2b.multi.test") == 0);
    assert_string_not_equal(r->hosts[1].name, r->hosts[2].name);
    assert_string_equal(r->hosts[3].name, "mx3.multi.test");
    assert_string_equal(r->hosts[4].name, "mx4.multi.test");

    /* mx1: one AAAA and two A, IPv6 first then interleaved. */
    const struct dns_host *mx1 = &r->hosts[0];
    assert_int_equal(mx1->naddrs, 3);
    assert_addr(mx1, 0, "2001:db8::11");
    char *a1 = addr_text(&mx1->addrs[1]), *a2 = addr_text(&mx1->addrs[2]);
    assert_true((strcmp(a1, "127.0.0.11") == 0 && strcmp(a2, "127.0.0.12") == 0) ||
                (strcmp(a1, "127.0.0.12") == 0 && strcmp(a2, "127.0.0.11") == 0));
    free(a1);
    free(a2);
    assert_int_equal(r->hosts[1].naddrs, 1);
    assert_int_equal(r->hosts[2].naddrs, 1);
    assert_int_equal(r->hosts[3].naddrs, 1);
    assert_addr(&r->hosts[3], 0, "2001:db8::30");
    assert_addr(&r->hosts[4], 0, "127.0.0.40");
    for (size_t i = 1; i < 3; i++)
        assert_addr(&r->hosts[i], 0, strcmp(r->hosts[i].name, "mx2a.multi.test") == 0 ? "127.0.0.21" : "127.0.0.22");
    assert_false(dns_status_permanent(r->status));
    assert_string_equal(dns_status_dsn(r->status), "2.0.0");
    dns_route_free(r);
}

static void test_equal_preferences_shuffled(void **state)
{
    (void)state;
    NEED_UNBOUND();
    int a_first = 0, b_first = 0;
    for (int i = 0; i < 50; i++) {
        struct dns_route *r = resolve("multi.test");
        assert_int_equal(r->status, DNS_OK);
        assert_int_equal(r->nhosts, 5);
        assert_string_equal(r->hosts[0].name, "mx1.multi.test");   /* never shuffled away */
        assert_string_equal(r->hosts[3].name, "mx3.multi.test");
        if (strcmp(r->hosts[1].name, "mx2a.multi.test") == 0)
            a_first++;
        else if (strcmp(r->hosts[1].name, "mx2b.multi.test") == 0)
            b_first++;
        dns_route_free(r);
    }
    assert_int_equal(a_first + b_first, 50);
    assert_true(a_first > 0);
    assert_true(b_first > 0);
}

static void test_case_and_root_dot_normalized(void **state)
{
    (void)state;
    NEED_UNBOUND();
    struct dns_route *r = resolve("Multi.TEST.");
    assert_int_equal(r->status, DNS_OK);
    assert_string_equal(r->domain, "multi.test");
    assert_int_equal(r->nhosts, 5);
    dns_route_free(r);
}

static void test_implicit_mx(void **state)
{
    (void)state;
    NEED_UNBOUND();
    struct dns_route *r = resolve("aonly.test");
    assert_int_equal(r->status, DNS_OK);
    assert_false(r->from_mx);
    assert_int_equal(r->nhosts, 1);
    assert_string_equal(r->hosts[0].name, "aonly.test");
    assert_int_equal(r->hosts[0].pref, 0);
    assert_int_equal(r->hosts[0].naddrs, 2);
    assert_addr(&r->hosts[0], 0, "2001:db8::50");
    assert_addr(&r->hosts[0], 1, "127.0.0.50");
    dns_route_free(r);
}

static struct dns_route *resolve_host(const char *host)
{
    struct waiter w = {0};
    dns_resolve_host(ctx, host, on_route, &w);
    assert_int_equal(w.calls, 0);
    run_until(&w.calls);
    assert_int_equal(w.calls, 1);
    assert_non_null(w.route);
    return w.route;
}

/* "[host]" next hops: the host's own addresses, its MX records ignored. */
static void test_resolve_host_skips_mx(void **state)
{
    (void)state;
    NEED_UNBOUND();
    struct dns_route *r = resolve_host("mx2a.multi.test");
    assert_int_equal(r->status, DNS_OK);
    assert_int_equal(r->nhosts, 1);
    assert_string_equal(r->hosts[0].name, "mx2a.multi.test");
    assert_int_equal(r->hosts[0].naddrs, 1);
    assert_addr(&r->hosts[0], 0, "127.0.0.21");
    dns_route_free(r);
    /* multi.test has MX records but no address of its own */
    r = resolve_host("multi.test");
    assert_int_equal(r->status, DNS_NODATA);
    dns_route_free(r);
    r = resolve_host("nonexistent.test");
    assert_int_equal(r->status, DNS_NXDOMAIN);
    dns_route_free(r);
    r = resolve_host("127.0.0.5");
    assert_int_equal(r->status, DNS_OK);
    assert_true(r->literal);
    assert_addr(&r->hosts[0], 0, "127.0.0.5");
    dns_route_free(r);
    r = resolve_host("::1");
    assert_int_equal(r->status, DNS_OK);
    assert_addr(&r->hosts[0], 0, "::1");
    dns_route_free(r);
    r = resolve_host("bad..name");
    assert_int_equal(r->status, DNS_INVALID);
    dns_route_free(r);
}

static void test_null_mx_is_permanent(void **state)
{
    (void)state;
    NEED_UNBOUND();
    /* nullmx.test also has an A record: it must not be used. */
    struct dns_route *r = resolve("nullmx.test");
    assert_int_equal(r->status, DNS_NULL_MX);
    assert_int_equal(r->nhosts, 0);
    assert_null(r->hosts);
    assert_true(dns_status_permanent(r->status));
    assert_string_equal(dns_status_dsn(r->status), "5.1.10");
    assert_contains(r->why, "nullmx.test does not accept mail");
    dns_route_free(r);
}

static void test_nxdomain_is_permanent(void **state)
{
    (void)state;
    NEED_UNBOUND();
    const char *names[] = {"nx.test", "deeper.nowhere.test"};
    for (size_t i = 0; i < 2; i++) {
        struct dns_route *r = resolve(names[i]);
        assert_int_equal(r->status, DNS_NXDOMAIN);
        assert_int_equal(r->nhosts, 0);
        assert_true(dns_status_permanent(r->status));
        assert_string_equal(dns_status_dsn(r->status), "5.4.4");
        char *want = xasprintf("name=%s type=MX: Host not found", names[i]);
        assert_contains(r->why, want);
        free(want);
        dns_route_free(r);
    }
}

static void test_mx_without_address_skipped(void **state)
{
    (void)state;
    NEED_UNBOUND();
    struct dns_route *r = resolve("noaddr.test");
    assert_int_equal(r->status, DNS_OK);
    assert_int_equal(r->nhosts, 1);
    assert_string_equal(r->hosts[0].name, "mx.noaddr.test");
    assert_int_equal(r->hosts[0].pref, 20);
    assert_addr(&r->hosts[0], 0, "127.0.0.70");
    assert_int_equal(r->hosts[0].naddrs, 1);
    assert_contains(r->why, "hostless.noaddr.test");
    dns_route_free(r);
}

static void test_no_usable_mx_is_permanent(void **state)
{
    (void)state;
    NEED_UNBOUND();
    struct dns_route *r = resolve("deadmx.test");   /* exchanger does not exist */
    assert_int_equal(r->status, DNS_NODATA);
    assert_true(dns_status_permanent(r->status));
    assert_contains(r->why, "name=nowhere.deadmx.test");
    assert_contains(r->why, "Host not found");
    dns_route_free(r);

    r = resolve("emptymx.test");                   /* exchanger has no address */
    assert_int_equal(r->status, DNS_NODATA);
    assert_contains(r->why, "name=txtonly.emptymx.test");
    assert_contains(r->why, "no data record");
    dns_route_free(r);

    r = resolve("nothing.test");                   /* no MX, no address */
    assert_int_equal(r->status, DNS_NODATA);
    assert_false(r->from_mx);
    assert_contains(r->why, "name=nothing.test");
    dns_route_free(r);
}

static void test_duplicate_mx_listed_once(void **state)
{
    (void)state;
    NEED_UNBOUND();
    struct dns_route *r = resolve("dup.test");
    assert_int_equal(r->status, DNS_OK);
    assert_int_equal(r->nhosts, 2);
    assert_string_equal(r->hosts[0].name, "mx.dup.test");
    assert_int_equal(r->hosts[0].pref, 10);
    assert_string_equal(r->hosts[1].name, "backup.dup.test");
    assert_int_equal(r->hosts[1].pref, 20);
    dns_route_free(r);
}

static void test_cnames_followed(void **state)
{
    (void)state;
    NEED_UNBOUND();
    struct dns_route *r = resolve("cname.test");
    assert_int_equal(r->status, DNS_OK);
    assert_int_equal(r->nhosts, 1);
    assert_string_equal(r->hosts[0].name, "alias.cname.test");
    assert_int_equal(r->hosts[0].naddrs, 1);
    assert_addr(&r->hosts[0], 0, "127.0.0.80");
    dns_route_free(r);

    r = resolve("aliasdomain.test");               /* the domain itself is a CNAME */
    assert_int_equal(r->status, DNS_OK);
    assert_string_equal(r->domain, "aliasdomain.test");
    assert_int_equal(r->nhosts, 5);
    assert_string_equal(r->hosts[0].name, "mx1.multi.test");
    dns_route_free(r);
}

static void test_inet_protocols(void **state)
{
    (void)state;
    NEED_UNBOUND();
    struct dns_ctx *v4 = ctx_for(main_server.port, 1, 0);
    struct dns_route *r = resolve_with(v4, "multi.test");
    assert_int_equal(r->status, DNS_OK);
    assert_int_equal(r->nhosts, 4);            /* mx3 has only an AAAA */
    assert_string_equal(r->hosts[0].name, "mx1.multi.test");
    assert_int_equal(r->hosts[0].naddrs, 2);
    for (size_t i = 0; i < r->nhosts; i++) {
        assert_string_not_equal(r->hosts[i].name, "mx3.multi.test");
        for (size_t k = 0; k < r->hosts[i].naddrs; k++)
            assert_int_equal(r->hosts[i].addrs[k].ss_family, AF_INET);
    }
    assert_contains(r->why, "mx3.multi.test");
    dns_route_free(r);
    r = resolve_with(v4, "v6only.test");
    assert_int_equal(r->status, DNS_NODATA);
    dns_route_free(r);
    dns_free(v4);

    struct dns_ctx *v6 = ctx_for(main_server.port, 0, 1);
    r = resolve_with(v6, "aonly.test");
    assert_int_equal(r->status, DNS_OK);
    assert_int_equal(r->hosts[0].naddrs, 1);
    assert_addr(&r->hosts[0], 0, "2001:db8::50");
    dns_route_free(r);
    r = resolve_with(v6, "v6only.test");
    assert_int_equal(r->status, DNS_OK);
    assert_addr(&r->hosts[0], 0, "2001:db8::90");
    dns_route_free(r);
    r = resolve_with(v6, "mx2a.multi.test");       /* A only */
    assert_int_equal(r->status, DNS_NODATA);
    dns_route_free(r);
    dns_free(v6);
}

/* ---- address literals and bad names: no DNS involved ---- */

static struct dns_ctx *dead_ctx(int v4, int v6)
{
    int port = free_port();                    /* nothing listens there */
    struct dns_ctx *d = ctx_for(port, v4, v6);
    dns_set_timeout(d, 1000);
    return d;
}

static void test_address_literals(void **state)
{
    (void)state;
    struct dns_ctx *d = dead_ctx(1, 1);
    struct dns_route *r = resolve_with(d, "[192.0.2.7]");
    assert_int_equal(r->status, DNS_OK);
    assert_true(r->literal);
    assert_false(r->from_mx);
    assert_int_equal(r->nhosts, 1);
    assert_string_equal(r->hosts[0].name, "192.0.2.7");
    assert_int_equal(r->hosts[0].naddrs, 1);
    assert_addr(&r->hosts[0], 0, "192.0.2.7");
    dns_route_free(r);

    const char *v6[] = {"[IPv6:2001:DB8::7]", "[ipv6:2001:db8:0:0:0:0:0:7]"};
    for (size_t i = 0; i < 2; i++) {
        r = resolve_with(d, v6[i]);
        assert_int_equal(r->status, DNS_OK);
        assert_true(r->literal);
        assert_string_equal(r->hosts[0].name, "2001:db8::7");
        assert_int_equal(r->hosts[0].addrs[0].ss_family, AF_INET6);
        assert_addr(&r->hosts[0], 0, "2001:db8::7");
        dns_route_free(r);
    }

    const char *bad[] = {"[]", "[300.1.2.3]", "[192.0.2]", "[2001:db8::7]", "[IPv6:192.0.2.1]",
                         "[x-tag:whatever]", "[IPv6:]", "[192.0.2.7 ]"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        r = resolve_with(d, bad[i]);
        if (r->status != DNS_INVALID)
            fail_msg("%s: %s", bad[i], dns_status_name(r->status));
        assert_int_equal(r->nhosts, 0);
        assert_true(dns_status_permanent(r->status));
        assert_contains(r->why, bad[i]);
        dns_route_free(r);
    }
    dns_free(d);

    struct dns_ctx *only4 = dead_ctx(1, 0);
    r = resolve_with(only4, "[IPv6:::1]");
    assert_int_equal(r->status, DNS_NODATA);
    assert_contains(r->why, "IPv6 is disabled");
    dns_route_free(r);
    r = resolve_with(only4, "[127.0.0.1]");
    assert_int_equal(r->status, DNS_OK);
    dns_route_free(r);
    dns_free(only4);
}

static void test_invalid_names(void **state)
{
    (void)state;
    struct dns_ctx *d = dead_ctx(1, 1);
    char long_label[80], long_name[300];
    memset(long_label, 'a', 64);
    strcpy(long_label + 64, ".test");
    long_name[0] = '\0';
    while (strlen(long_name) < 254)
        strcat(long_name, "abcdefghi.");
    strcat(long_name, "test");
    const char *bad[] = {"", ".", "a..test", ".a.test", "a.test..", "b@d.test", "sp ace.test", "ex\xc3\xa4mple.test",
                         long_label, long_name, "[unclosed.test"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct dns_route *r = resolve_with(d, bad[i]);
        if (r->status != DNS_INVALID)
            fail_msg("\"%s\": %s", bad[i], dns_status_name(r->status));
        assert_contains(r->why, "Invalid domain name");
        assert_string_equal(dns_status_dsn(r->status), "5.1.2");
        dns_route_free(r);
        struct dns_rrset *rs = lookup_with(d, bad[i], DNS_TYPE_TXT);
        assert_int_equal(rs->status, DNS_INVALID);
        dns_rrset_free(rs);
    }
    struct dns_rrset *rs = lookup_with(d, "x.test", 0);
    assert_int_equal(rs->status, DNS_INVALID);
    assert_contains(rs->why, "Invalid record type");
    dns_rrset_free(rs);

    /* 63-octet labels and 253 octets in all are fine: they are asked for
     * (and fail only because this resolver is dead). */
    char label63[80], name253[260] = "";
    memset(label63, 'b', 63);
    strcpy(label63 + 63, ".test");
    for (int i = 0; i < 24; i++)
        strcat(name253, "abcdefghi.");
    strcat(name253, "abcdefgh.test");
    assert_int_equal(strlen(name253), 253);
    const char *fine[] = {label63, name253, "under_score.test"};
    struct waiter w[3] = {{0}};
    for (size_t i = 0; i < 3; i++)
        dns_resolve_mail_domain(d, fine[i], on_route, &w[i]);
    run_until_all(w, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(w[i].calls, 1);
        assert_int_equal(w[i].route->status, DNS_TEMPFAIL);
        dns_route_free(w[i].route);
    }
    dns_free(d);
}

/* ---- failures of the resolver ---- */

static void test_dead_resolver_is_temporary(void **state)
{
    (void)state;
    struct dns_ctx *d = dead_ctx(1, 1);
    double start = now_s();
    struct dns_route *r = resolve_with(d, "multi.test");
    double took = now_s() - start;
    assert_int_equal(r->status, DNS_TEMPFAIL);
    assert_false(dns_status_permanent(r->status));
    assert_string_equal(dns_status_dsn(r->status), "4.4.3");
    assert_non_null(r->why);
    assert_true(took < 1.5);
    dns_route_free(r);
    dns_free(d);
}

static void test_silent_resolver_times_out(void **state)
{
    (void)state;
    int port, hole = blackhole(&port);
    struct dns_ctx *d = ctx_for(port, 1, 1);
    dns_set_timeout(d, 300);
    double start = now_s();
    struct dns_route *r = resolve_with(d, "multi.test");
    double took = now_s() - start;
    assert_int_equal(r->status, DNS_TEMPFAIL);
    assert_contains(r->why, "DNS lookup timed out (name=multi.test, after 300 ms)");
    assert_true(took >= 0.29);
    assert_true(took < 2.0);
    dns_route_free(r);

    struct dns_rrset *rs = lookup_with(d, "_25._tcp.mx1.multi.test", DNS_TYPE_TLSA);
    assert_int_equal(rs->status, DNS_TEMPFAIL);
    assert_contains(rs->why, "timed out");
    dns_rrset_free(rs);
    dns_free(d);
    close(hole);
}

/* ---- raw lookups ---- */

static void test_lookup_tlsa_and_txt(void **state)
{
    (void)state;
    NEED_UNBOUND();
    struct dns_rrset *rs = lookup_with(ctx, "_25._tcp.mx1.multi.test", DNS_TYPE_TLSA);
    assert_int_equal(rs->status, DNS_OK);
    assert_null(rs->why);
    assert_int_equal(rs->rrtype, DNS_TYPE_TLSA);
    assert_int_equal(rs->nrrs, 1);
    assert_int_equal(rs->rrs[0].len, 3 + 32);
    const unsigned char head[3] = {3, 1, 1};
    assert_memory_equal(rs->rrs[0].data, head, 3);
    assert_int_equal(rs->rrs[0].data[3], 0x01);
    assert_int_equal(rs->rrs[0].data[34], 0xef);
    assert_true(rs->ttl > 0 && rs->ttl <= 300);
    assert_false(rs->secure);
    assert_null(rs->canonname);
    dns_rrset_free(rs);

    rs = lookup_with(ctx, "nothing.test", DNS_TYPE_TXT);
    assert_int_equal(rs->status, DNS_OK);
    assert_int_equal(rs->nrrs, 1);
    assert_int_equal(rs->rrs[0].len, 12);
    assert_memory_equal(rs->rrs[0].data, "\x0bv=spf1 -all", 12);
    dns_rrset_free(rs);

    rs = lookup_with(ctx, "alias.cname.test", DNS_TYPE_A);
    assert_int_equal(rs->status, DNS_OK);
    assert_string_equal(rs->canonname, "real.cname.test");
    assert_int_equal(rs->nrrs, 1);
    assert_memory_equal(rs->rrs[0].data, "\x7f\x00\x00\x50", 4);
    dns_rrset_free(rs);

    rs = lookup_with(ctx, "Alias.Cname.Test.", DNS_TYPE_A);   /* asked as written, canonname normalized */
    assert_int_equal(rs->status, DNS_OK);
    assert_string_equal(rs->name, "alias.cname.test");
    assert_string_equal(rs->canonname, "real.cname.test");
    dns_rrset_free(rs);

    rs = lookup_with(ctx, "nx.test", DNS_TYPE_A);
    assert_int_equal(rs->status, DNS_NXDOMAIN);
    assert_int_equal(rs->nrrs, 0);
    assert_contains(rs->why, "name=nx.test type=A:");
    dns_rrset_free(rs);

    rs = lookup_with(ctx, "aonly.test", DNS_TYPE_MX);
    assert_int_equal(rs->status, DNS_NODATA);
    assert_contains(rs->why, "type=MX");
    dns_rrset_free(rs);
}

/* ---- life cycle ---- */

static void test_cancel(void **state)
{
    (void)state;
    /* Cancelled before the loop ever ran (the answer was already stored). */
    struct dns_ctx *d = dead_ctx(1, 1);
    struct waiter gone = {0}, lit = {0};
    dns_cancel(dns_resolve_mail_domain(d, "[192.0.2.1]", on_route, &gone));
    dns_resolve_mail_domain(d, "[192.0.2.2]", on_route, &lit);
    run_until(&lit.calls);
    assert_int_equal(gone.calls, 0);
    dns_route_free(lit.route);
    dns_free(d);

    /* Cancelled while libunbound is waiting: neither an answer nor the
     * timeout calls back. */
    int port, hole = blackhole(&port);
    d = ctx_for(port, 1, 1);
    dns_set_timeout(d, 200);
    struct waiter w1 = {0}, w2 = {0};
    struct dns_query *q = dns_resolve_mail_domain(d, "multi.test", on_route, &w1);
    struct dns_query *q2 = dns_lookup(d, "multi.test", DNS_TYPE_TXT, on_rrset, &w2);
    dns_cancel(q);
    dns_cancel(q2);
    struct waiter later = {0};
    dns_set_timeout(d, 500);
    dns_resolve_mail_domain(d, "aonly.test", on_route, &later);
    run_until(&later.calls);
    assert_int_equal(w1.calls, 0);
    assert_int_equal(w2.calls, 0);
    assert_int_equal(later.route->status, DNS_TEMPFAIL);
    dns_route_free(later.route);
    dns_free(d);
    close(hole);
}

static void test_free_with_queries_running(void **state)
{
    (void)state;
    NEED_UNBOUND();
    struct dns_ctx *d = ctx_for(main_server.port, 1, 1);
    struct waiter w[4] = {{0}};
    dns_resolve_mail_domain(d, "multi.test", on_route, &w[0]);
    dns_resolve_mail_domain(d, "[192.0.2.9]", on_route, &w[1]);
    dns_lookup(d, "nothing.test", DNS_TYPE_TXT, on_rrset, &w[2]);
    dns_resolve_mail_domain(d, "nx.test", on_route, &w[3]);
    dns_free(d);
    /* Run the loop a little: nothing may fire for the freed context. */
    struct timeval tv = {0, 200 * 1000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    for (int i = 0; i < 4; i++)
        assert_int_equal(w[i].calls, 0);
}

struct freeing {
    struct dns_ctx *d;
    int calls;
};

static void free_ctx_from_callback(void *arg, struct dns_route *r)
{
    struct freeing *f = arg;
    f->calls++;
    dns_route_free(r);
    dns_free(f->d);
}

static void test_callback_may_free_context(void **state)
{
    (void)state;
    struct dns_ctx *d = dead_ctx(1, 1);
    struct freeing f = {d, 0};
    struct waiter other = {0};
    dns_resolve_mail_domain(d, "[192.0.2.1]", free_ctx_from_callback, &f);
    dns_resolve_mail_domain(d, "multi.test", on_route, &other);
    run_until(&f.calls);
    struct timeval tv = {0, 100 * 1000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    assert_int_equal(f.calls, 1);
    assert_int_equal(other.calls, 0);
}

/* Answers come from the cache while their TTL lasts, and only then. */
static void test_cache_respects_ttl(void **state)
{
    (void)state;
    NEED_UNBOUND();
    struct server sv;
    assert_int_equal(server_start(&sv), 0);
    struct dns_ctx *d = ctx_for(sv.port, 1, 0);
    struct dns_route *r = resolve_with(d, "multi.test");
    assert_int_equal(r->status, DNS_OK);
    dns_route_free(r);
    r = resolve_with(d, "shortttl.test");
    assert_int_equal(r->status, DNS_OK);
    assert_addr(&r->hosts[0], 0, "127.0.0.100");
    dns_route_free(r);
    server_stop(&sv);

    dns_set_timeout(d, 1500);
    r = resolve_with(d, "multi.test");            /* TTL 300: still cached */
    assert_int_equal(r->status, DNS_OK);
    assert_int_equal(r->nhosts, 4);
    dns_route_free(r);
    usleep(2100 * 1000);
    r = resolve_with(d, "shortttl.test");         /* TTL 1: gone, and so is the server */
    assert_int_equal(r->status, DNS_TEMPFAIL);
    dns_route_free(r);
    dns_free(d);
}

/* Raw lookups (what SPF, DKIM and DMARC ask) are answered from tern's own
 * cache while the TTL lasts, later and never inside the call, with the TTL
 * that is left; once it ends, DNS is asked again. */
static void test_raw_lookups_cached(void **state)
{
    (void)state;
    NEED_UNBOUND();
    struct server sv;
    assert_int_equal(server_start(&sv), 0);
    struct dns_ctx *d = ctx_for(sv.port, 1, 0);
    struct dns_rrset *a = lookup_with(d, "nothing.test", DNS_TYPE_TXT);
    struct dns_rrset *s = lookup_with(d, "shortttl.test", DNS_TYPE_A);
    assert_int_equal(a->status, DNS_OK);
    assert_int_equal(s->status, DNS_OK);
    assert_true(s->ttl <= 1);
    size_t kept = dns_test_cache_count(d);
    struct dns_rrset *big = lookup_with(d, "big.test", DNS_TYPE_TXT);   /* 10 KB: not kept */
    assert_int_equal(big->status, DNS_OK);
    assert_true(big->nrrs == 1 && big->rrs[0].len > 8192);
    dns_rrset_free(big);
    assert_int_equal(dns_test_cache_count(d), kept);
    server_stop(&sv);
    dns_set_timeout(d, 1500);
    /* answered from the cache, later (lookup_with runs the loop) */
    struct waiter w;
    memset(&w, 0, sizeof w);
    struct dns_query *q = dns_lookup(d, "Nothing.Test.", DNS_TYPE_TXT, on_rrset, &w);
    assert_non_null(q);
    assert_int_equal(w.calls, 0);
    dns_rrset_free(a);
    struct dns_rrset *b = lookup_with(d, "nothing.test", DNS_TYPE_TXT);
    assert_int_equal(b->status, DNS_OK);
    assert_int_equal(b->nrrs, 1);
    assert_memory_equal(b->rrs[0].data, "\x0bv=spf1 -all", 12);
    assert_true(b->ttl > 0 && b->ttl <= 300);
    assert_string_equal(b->name, "nothing.test");
    dns_rrset_free(b);
    run_until(&w.calls);
    assert_int_equal(w.calls, 1);
    assert_int_equal(w.rrset->status, DNS_OK);
    dns_rrset_free(w.rrset);
    dns_rrset_free(s);
    usleep(2100 * 1000);
    s = lookup_with(d, "shortttl.test", DNS_TYPE_A);   /* TTL 1: gone, and so is the server */
    assert_int_equal(s->status, DNS_TEMPFAIL);
    dns_rrset_free(s);
    dns_free(d);
}

/* ---- configuration ---- */

/* ---- lookups in flight ---- */

/* A resolver that keeps what it is given, as libunbound's thread does: each
 * lookup is answered when the test says, wanted or not. */
struct held_lookups {
    struct dns_sub *subs[DNS_MAX_INFLIGHT + 64];
    size_t n;
};

static int hold_lookup(void *arg, const char *name, int rrtype, struct dns_sub *s)
{
    (void)name;
    (void)rrtype;
    struct held_lookups *h = arg;
    if (h->n == sizeof h->subs / sizeof h->subs[0])
        fail_msg("more lookups handed over than the bound allows");
    h->subs[h->n++] = s;
    return 0;
}

/* A context as dns_new makes it, less libunbound: lookups go to held. */
static void held_ctx_start(struct dns_ctx *d, struct held_lookups *held, size_t inflight_max)
{
    memset(d, 0, sizeof *d);
    d->base = base;
    d->want_ipv4 = d->want_ipv6 = 1;
    d->timeout_ms = 30000;
    d->inflight_max = inflight_max;
    dns_test_cache_init(d);
    memset(held, 0, sizeof *held);
    dns_test_set_resolver(hold_lookup, held);
}

/* Nothing may be left: no place taken, no lookup waiting, no query. */
static void held_ctx_end(struct dns_ctx *d)
{
    assert_int_equal(d->inflight, 0);
    assert_true(list_empty(&d->orphans) && list_empty(&d->waiting) && list_empty(&d->queries));
    dns_test_set_resolver(NULL, NULL);
    dns_test_cache_free(d);
}

/* At most DNS_MAX_INFLIGHT lookups are at the resolver; a cancelled one keeps
 * its place until the resolver is done with it (libunbound goes on resolving
 * after ub_cancel), so a client abandoning lookups cannot pile more on it;
 * later lookups wait their turn and get their answers. */
static void test_lookups_in_flight_bounded(void **state)
{
    (void)state;
    struct dns_ctx d;
    static struct held_lookups held;
    held_ctx_start(&d, &held, 0);

    enum { ASKED = DNS_MAX_INFLIGHT + 10 };
    static struct dns_query *q[ASKED];
    struct waiter abandoned;
    memset(&abandoned, 0, sizeof abandoned);
    for (int k = 0; k < ASKED; k++) {
        char name[64];
        snprintf(name, sizeof name, "n%d.abandoned.test", k);
        q[k] = dns_lookup(&d, name, DNS_TYPE_TXT, on_rrset, &abandoned);
    }
    assert_int_equal(held.n, DNS_MAX_INFLIGHT);
    for (int k = 0; k < ASKED; k++)
        dns_cancel(q[k]);
    assert_int_equal(held.n, DNS_MAX_INFLIGHT);   /* the waiting ten never went */

    struct waiter later;
    memset(&later, 0, sizeof later);
    dns_lookup(&d, "later.test", DNS_TYPE_TXT, on_rrset, &later);
    assert_int_equal(held.n, DNS_MAX_INFLIGHT);   /* no place yet */
    dns_test_answer(held.subs[0], UB_SERVFAIL, NULL);
    assert_int_equal(held.n, DNS_MAX_INFLIGHT + 1);
    dns_test_answer(held.subs[DNS_MAX_INFLIGHT], UB_SERVFAIL, NULL);
    run_until(&later.calls);
    assert_int_equal(later.rrset->status, DNS_TEMPFAIL);
    assert_string_equal(later.rrset->name, "later.test");
    dns_rrset_free(later.rrset);

    /* The abandoned ones are answered to nobody, and then nothing is left. */
    for (size_t k = 1; k < DNS_MAX_INFLIGHT; k++)
        dns_test_answer(held.subs[k], UB_SERVFAIL, NULL);
    event_base_loop(base, EVLOOP_NONBLOCK);
    assert_int_equal(abandoned.calls, 0);
    held_ctx_end(&d);
}

/* A freed query whose answers never come (libunbound loses an answer only
 * when it runs out of memory) keeps its places only so long: then they go
 * to the lookups waiting, which get their answers. */
static void test_lost_answers_do_not_hold_places_for_good(void **state)
{
    (void)state;
    struct dns_ctx d;
    static struct held_lookups held;
    held_ctx_start(&d, &held, 2);
    d.orphan_hold_s = 1;
    struct waiter lost, first, second;
    memset(&lost, 0, sizeof lost);
    memset(&first, 0, sizeof first);
    memset(&second, 0, sizeof second);
    dns_cancel(dns_lookup(&d, "lost1.test", DNS_TYPE_TXT, on_rrset, &lost));
    dns_cancel(dns_lookup(&d, "lost2.test", DNS_TYPE_TXT, on_rrset, &lost));
    dns_lookup(&d, "first.test", DNS_TYPE_TXT, on_rrset, &first);
    assert_int_equal(held.n, 2);                  /* first waits */
    usleep(1100 * 1000);
    dns_lookup(&d, "second.test", DNS_TYPE_TXT, on_rrset, &second);
    assert_int_equal(held.n, 4);                  /* the lost ones' places given up */
    dns_test_answer(held.subs[2], UB_SERVFAIL, NULL);
    dns_test_answer(held.subs[3], UB_SERVFAIL, NULL);
    run_until(&first.calls);
    run_until(&second.calls);
    assert_string_equal(first.rrset->name, "first.test");
    assert_string_equal(second.rrset->name, "second.test");
    dns_rrset_free(first.rrset);
    dns_rrset_free(second.rrset);
    assert_int_equal(lost.calls, 0);
    held_ctx_end(&d);
}

static void test_resolver_lists(void **state)
{
    (void)state;
    const char *good[] = {"127.0.0.1", "127.0.0.1:5353", "[::1]:53, 192.0.2.1", "::1", "[2001:db8::1]",
                          " 192.0.2.1 ,192.0.2.2\t192.0.2.3:65535 "};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        char *err = NULL;
        struct dns_ctx *d = dns_new(base, good[i], 1, 1, &err);
        if (d == NULL)
            fail_msg("\"%s\": %s", good[i], err);
        assert_null(err);
        dns_free(d);
    }
    const char *bad[] = {"ns.example.net", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:", "127.0.0.1:53x",
                         "[::1", "[::1]x", "300.0.0.1", "192.0.2.1, nonsense", "[::1]:-1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *err = NULL;
        struct dns_ctx *d = dns_new(base, bad[i], 1, 1, &err);
        if (d != NULL)
            fail_msg("\"%s\" accepted", bad[i]);
        assert_contains(err, "dns_resolvers");
        free(err);
    }
    char *err = NULL;
    assert_null(dns_new(base, "127.0.0.1", 0, 0, &err));
    assert_contains(err, "neither IPv4 nor IPv6");
    free(err);
    /* "" means /etc/resolv.conf (present on any Debian system). */
    struct dns_ctx *d = dns_new(base, "", 1, 1, &err);
    if (access("/etc/resolv.conf", R_OK) == 0) {
        assert_non_null(d);
        dns_free(d);
    } else {
        free(err);
    }
}

static void test_status_helpers(void **state)
{
    (void)state;
    assert_false(dns_status_permanent(DNS_OK));
    assert_false(dns_status_permanent(DNS_TEMPFAIL));
    assert_true(dns_status_permanent(DNS_NXDOMAIN));
    assert_true(dns_status_permanent(DNS_NODATA));
    assert_true(dns_status_permanent(DNS_NULL_MX));
    assert_true(dns_status_permanent(DNS_INVALID));
    assert_string_equal(dns_status_dsn(DNS_NODATA), "5.4.4");
    assert_string_equal(dns_status_name(DNS_NULL_MX), "null-mx");
    assert_string_equal(dns_status_name(DNS_TEMPFAIL), "tempfail");
}

/* ---- fixture ---- */

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    if (base == NULL)
        return -1;
    if (access(UNBOUND_BIN, X_OK) != 0) {
        fprintf(stderr, "test_dns: %s not installed; tests needing a DNS server are skipped\n", UNBOUND_BIN);
        return 0;
    }
    if (server_start(&main_server) != 0) {
        server_stop(&main_server);
        return -1;
    }
    have_unbound = 1;
    ctx = ctx_for(main_server.port, 1, 1);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    dns_free(ctx);
    server_stop(&main_server);
    event_base_free(base);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mx_sorted_with_addresses),
        cmocka_unit_test(test_equal_preferences_shuffled),
        cmocka_unit_test(test_case_and_root_dot_normalized),
        cmocka_unit_test(test_implicit_mx),
        cmocka_unit_test(test_resolve_host_skips_mx),
        cmocka_unit_test(test_null_mx_is_permanent),
        cmocka_unit_test(test_nxdomain_is_permanent),
        cmocka_unit_test(test_mx_without_address_skipped),
        cmocka_unit_test(test_no_usable_mx_is_permanent),
        cmocka_unit_test(test_duplicate_mx_listed_once),
        cmocka_unit_test(test_cnames_followed),
        cmocka_unit_test(test_inet_protocols),
        cmocka_unit_test(test_address_literals),
        cmocka_unit_test(test_invalid_names),
        cmocka_unit_test(test_dead_resolver_is_temporary),
        cmocka_unit_test(test_silent_resolver_times_out),
        cmocka_unit_test(test_lookup_tlsa_and_txt),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_free_with_queries_running),
        cmocka_unit_test(test_callback_may_free_context),
        cmocka_unit_test(test_cache_respects_ttl),
        cmocka_unit_test(test_raw_lookups_cached),
        cmocka_unit_test(test_lookups_in_flight_bounded),
        cmocka_unit_test(test_lost_answers_do_not_hold_places_for_good),
        cmocka_unit_test(test_resolver_lists),
        cmocka_unit_test(test_status_helpers),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
