/* Unit tests for mastercf (master.cf parsing). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/mastercf.h"
#include "util/mem.h"
#include "util/strbuf.h"

static void assert_service(const struct mastercf_service *s, const char *name, const char *type,
                           const char *priv, const char *unpriv, const char *chroot,
                           const char *wakeup, const char *maxproc, const char *command)
{
    assert_string_equal(s->name, name);
    assert_string_equal(s->type, type);
    assert_string_equal(s->private_, priv);
    assert_string_equal(s->unpriv, unpriv);
    assert_string_equal(s->chroot, chroot);
    assert_string_equal(s->wakeup, wakeup);
    assert_string_equal(s->maxproc, maxproc);
    assert_string_equal(s->command, command);
}

static void test_postfix_examples(void **state)
{
    (void)state;
    static const char text[] =
        "#\n"
        "# ==========================================================================\n"
        "# service type  private unpriv  chroot  wakeup  maxproc command + args\n"
        "# ==========================================================================\n"
        "smtp      inet  n       -       y       -       -       smtpd\n"          /* 5 */
        "submission inet n       -       y       -       -       smtpd\n"          /* 6 */
        "  -o syslog_name=postfix/submission\n"
        "  -o smtpd_tls_security_level=encrypt\n"
        "#  -o smtpd_sasl_auth_enable=yes\n"
        "  -o smtpd_client_restrictions=$mua_client_restrictions\n"
        "  -o milter_macro_daemon_name=ORIGINATING\n"
        "127.0.0.1:2599 inet n - n - - smtpd\n"                                    /* 12 */
        "[::1]:2525 inet n - n - 10 smtpd -v\n"                                    /* 13 */
        "pickup    unix  n       -       y       60      1       pickup\n"         /* 14 */
        "qmgr      unix  n       -       n       300?    1       qmgr\n"           /* 15 */
        "maildrop  unix  -       n       n       -       -       pipe\n"           /* 16 */
        "  flags=DRXhu user=vmail argv=/usr/bin/maildrop -d ${recipient}\n";
    struct mastercf m = {0};
    struct strbuf diag = STRBUF_INIT;
    assert_int_equal(mastercf_load_string(&m, text, "master.cf", &diag), 0);
    assert_string_equal(strbuf_str(&diag), "");
    assert_int_equal(m.n, 7);

    assert_service(&m.svc[0], "smtp", "inet", "n", "-", "y", "-", "-", "smtpd");
    assert_int_equal(m.svc[0].nargs, 0);
    assert_int_equal(m.svc[0].noverrides, 0);
    assert_string_equal(m.svc[0].file, "master.cf");
    assert_int_equal(m.svc[0].line, 5);

    const struct mastercf_service *sub = &m.svc[1];
    assert_service(sub, "submission", "inet", "n", "-", "y", "-", "-", "smtpd");
    assert_int_equal(sub->line, 6);
    assert_int_equal(sub->nargs, 0);
    assert_int_equal(sub->noverrides, 4);
    assert_string_equal(sub->overrides[0].name, "syslog_name");
    assert_string_equal(sub->overrides[0].value, "postfix/submission");
    assert_string_equal(sub->overrides[1].name, "smtpd_tls_security_level");
    assert_string_equal(sub->overrides[1].value, "encrypt");
    assert_string_equal(sub->overrides[2].name, "smtpd_client_restrictions");
    assert_string_equal(sub->overrides[2].value, "$mua_client_restrictions");
    assert_string_equal(sub->overrides[3].name, "milter_macro_daemon_name");
    assert_string_equal(sub->overrides[3].value, "ORIGINATING");

    assert_service(&m.svc[2], "127.0.0.1:2599", "inet", "n", "-", "n", "-", "-", "smtpd");
    assert_int_equal(m.svc[2].line, 12);
    assert_service(&m.svc[3], "[::1]:2525", "inet", "n", "-", "n", "-", "10", "smtpd");
    assert_int_equal(m.svc[3].nargs, 1);
    assert_string_equal(m.svc[3].args[0], "-v");
    assert_service(&m.svc[4], "pickup", "unix", "n", "-", "y", "60", "1", "pickup");
    assert_service(&m.svc[5], "qmgr", "unix", "n", "-", "n", "300?", "1", "qmgr");
    const struct mastercf_service *md = &m.svc[6];
    assert_service(md, "maildrop", "unix", "-", "n", "n", "-", "-", "pipe");
    assert_int_equal(md->nargs, 5);
    const char *want[] = {"flags=DRXhu", "user=vmail", "argv=/usr/bin/maildrop", "-d",
                          "${recipient}"};
    for (size_t i = 0; i < 5; i++)
        assert_string_equal(md->args[i], want[i]);

    mastercf_free(&m);
    assert_int_equal(m.n, 0);
    assert_null(m.svc);
    strbuf_free(&diag);
}

static void test_braced_arguments(void **state)
{
    (void)state;
    static const char text[] =
        "465 inet n - n - - smtpd\n"
        "  -o { smtpd_banner = $myhostname  ESMTP on port 465 }\n"
        "  -o {smtpd_tls_wrappermode=yes}\n"
        "  -osmtpd_sasl_auth_enable=yes\n"
        "  -o smtpd_relay_restrictions=\n"
        "  -o { smtpd_client_restrictions = check_client_access { inline:{ a=b } } }\n"
        "  -o {empty_value=}\n"
        "  { an argument with spaces } {} -x {nested {braces} kept}\n";
    struct mastercf m = {0};
    struct strbuf diag = STRBUF_INIT;
    assert_int_equal(mastercf_load_string(&m, text, "master.cf", &diag), 0);
    assert_string_equal(strbuf_str(&diag), "");
    assert_int_equal(m.n, 1);
    const struct mastercf_service *s = &m.svc[0];
    assert_int_equal(s->noverrides, 6);
    assert_string_equal(s->overrides[0].name, "smtpd_banner");
    assert_string_equal(s->overrides[0].value, "$myhostname  ESMTP on port 465");
    assert_string_equal(s->overrides[1].name, "smtpd_tls_wrappermode");
    assert_string_equal(s->overrides[1].value, "yes");
    assert_string_equal(s->overrides[2].name, "smtpd_sasl_auth_enable");
    assert_string_equal(s->overrides[2].value, "yes");
    assert_string_equal(s->overrides[3].name, "smtpd_relay_restrictions");
    assert_string_equal(s->overrides[3].value, "");
    assert_string_equal(s->overrides[4].name, "smtpd_client_restrictions");
    assert_string_equal(s->overrides[4].value, "check_client_access { inline:{ a=b } }");
    assert_string_equal(s->overrides[5].name, "empty_value");
    assert_string_equal(s->overrides[5].value, "");
    assert_int_equal(s->nargs, 4);
    assert_string_equal(s->args[0], "an argument with spaces");
    assert_string_equal(s->args[1], "");
    assert_string_equal(s->args[2], "-x");
    assert_string_equal(s->args[3], "nested {braces} kept");
    mastercf_free(&m);
    strbuf_free(&diag);
}

static void test_errors_with_lines(void **state)
{
    (void)state;
    static const char text[] =
        "  orphan continuation\n"                                  /* 1 */
        "smtp inet n - y - - smtpd\n"                              /* 2 ok */
        "submission inet n - y - - smtpd\n"                        /* 3 */
        "  -o smtpd_tls_security_level = encrypt\n"                /* 4 */
        "short inet n - y -\n"                                     /* 5 */
        "x tcp n - y - - smtpd\n"                                  /* 6 */
        "2526 inet maybe - y - - smtpd\n"                          /* 7 */
        "2527 inet n - y x - smtpd\n"                              /* 8 */
        "2528 inet n - y - many smtpd\n"                           /* 9 */
        "2529 inet n - y - - smtpd { unclosed\n"                   /* 10 */
        "2530 inet n - y - - smtpd {a}b\n"                         /* 11 */
        "::1:25 inet n - y - - smtpd\n"                            /* 12 */
        "smtp inet n - y - - smtpd\n"                              /* 13 */
        "2531 inet n - y - - smtpd -o\n"                           /* 14 */
        "2532 inet n - y - - smtpd -o bad-name=1\n"                /* 15 */
        "../x unix n - y - - evil\n"                               /* 16 */
        "nul inet n - y - - sm\0tpd\n"                             /* 17 */
        "2533 inet n - y 10?? - smtpd\n"                           /* 18 */
        "2525 inet n - n - - smtpd\n";                             /* 19 ok */
    struct mastercf m = {0};
    struct strbuf diag = STRBUF_INIT;
    int rc = mastercf_load_mem(&m, text, sizeof text - 1, "master.cf", &diag);
    assert_string_equal(
        strbuf_str(&diag),
        "master.cf:1: error: line starts with whitespace but continues no service\n"
        "master.cf:3: error: -o smtpd_tls_security_level: expected name=value (write -o { name "
        "= value } for spaces)\n"
        "master.cf:5: error: expected at least 8 fields (service type private unpriv chroot "
        "wakeup maxproc command), found 6\n"
        "master.cf:6: error: unknown service type \"tcp\" (expected inet, unix, unix-dgram, fifo "
        "or pass)\n"
        "master.cf:7: error: private field must be y, n or -, not \"maybe\"\n"
        "master.cf:8: error: wakeup field must be -, N or N?, not \"x\"\n"
        "master.cf:9: error: maxproc field must be - or a number, not \"many\"\n"
        "master.cf:10: error: missing '}' in a { ... } argument\n"
        "master.cf:11: error: text right after '}' in a { ... } argument\n"
        "master.cf:12: error: bad inet service \"::1:25\" (expected port, host:port or "
        "[ipv6]:port)\n"
        "master.cf:13: error: duplicate service smtp/inet (first at master.cf:2)\n"
        "master.cf:14: error: -o at end of line: expected name=value\n"
        "master.cf:15: error: -o: invalid parameter name \"bad-name\"\n"
        "master.cf:16: error: bad unix service name \"../x\"\n"
        "master.cf:17: error: NUL byte in line\n"
        "master.cf:18: error: wakeup field must be -, N or N?, not \"10??\"\n");
    assert_int_equal(rc, 16);
    assert_int_equal(m.n, 2);
    assert_string_equal(m.svc[0].name, "smtp");
    assert_int_equal(m.svc[0].line, 2);
    assert_string_equal(m.svc[1].name, "2525");
    assert_int_equal(m.svc[1].line, 19);
    mastercf_free(&m);
    strbuf_free(&diag);
}

static void test_split_listen(void **state)
{
    (void)state;
    static const struct {
        const char *name, *fallback, *host, *port;
    } ok[] = {
        {"smtp", NULL, NULL, "smtp"},
        {"submission", "all", NULL, "submission"},
        {"2525", "", NULL, "2525"},
        {"2525", "ALL", NULL, "2525"},
        {"2525", "loopback-only", "loopback-only", "2525"},
        {"smtps", "127.0.0.1, ::1", "127.0.0.1, ::1", "smtps"},
        {"127.0.0.1:2599", "loopback-only", "127.0.0.1", "2599"},
        {"[::1]:2525", NULL, "::1", "2525"},
        {"[2001:db8::25]:smtp", NULL, "2001:db8::25", "smtp"},
        {"[192.0.2.1]:25", NULL, "192.0.2.1", "25"},
        {"localhost:submission", NULL, "localhost", "submission"},
        {"mx.example.com:65535", NULL, "mx.example.com", "65535"},
        {"1", NULL, NULL, "1"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char *host = (char *)"unset", *port = (char *)"unset";
        if (mastercf_split_listen(ok[i].name, ok[i].fallback, &host, &port) != 0)
            fail_msg("rejected %s", ok[i].name);
        if (ok[i].host)
            assert_string_equal(host, ok[i].host);
        else
            assert_null(host);
        assert_string_equal(port, ok[i].port);
        free(host);
        free(port);
    }
    static const char *const bad[] = {
        "",        "::1:25",      "[::1]",    "[::1]25",   "[::1:25", "[]:25",  "[zz]:25",
        ":25",     "host:",       "host:0",   "host:65536", "70000",  "0",      "ho st:25",
        "-smtp",   "host:sm tp",  "[::1]:",   "a/b:25",    "[::1]:-1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *host = (char *)"unset", *port = (char *)"unset";
        if (mastercf_split_listen(bad[i], "127.0.0.1", &host, &port) != -1)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_null(host);
        assert_null(port);
    }
    char *host = (char *)"unset", *port = (char *)"unset";
    assert_int_equal(mastercf_split_listen(NULL, NULL, &host, &port), -1);
    assert_null(host);
    assert_null(port);
}

static void test_load_file(void **state)
{
    (void)state;
    char path[] = "/tmp/test_mastercf_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] = "smtp inet n - y - - smtpd\nbroken line\n";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);

    struct mastercf m = {0};
    struct strbuf diag = STRBUF_INIT;
    assert_int_equal(mastercf_load_file(&m, path, &diag), 1);
    char *expect = xasprintf("%s:2: error: expected at least 8 fields (service type private "
                             "unpriv chroot wakeup maxproc command), found 2\n",
                             path);
    assert_string_equal(strbuf_str(&diag), expect);
    free(expect);
    assert_int_equal(m.n, 1);
    assert_string_equal(m.svc[0].file, path);
    unlink(path);

    /* a second load adds to the first, and sees its services */
    strbuf_reset(&diag);
    assert_int_equal(mastercf_load_string(&m, "smtp inet n - y - - smtpd\n"
                                              "smtp unix n - y - - other\n",
                                          "extra.cf", &diag),
                     1);
    expect = xasprintf("extra.cf:1: error: duplicate service smtp/inet (first at %s:1)\n", path);
    assert_string_equal(strbuf_str(&diag), expect);
    free(expect);
    assert_int_equal(m.n, 2);
    assert_string_equal(m.svc[1].type, "unix");

    errno = 0;
    assert_int_equal(mastercf_load_file(&m, path, &diag), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(m.n, 2);
    mastercf_free(&m);
    strbuf_free(&diag);
}

static void test_empty_and_comments(void **state)
{
    (void)state;
    struct mastercf m = {0};
    assert_int_equal(mastercf_load_string(&m, "", "master.cf", NULL), 0);
    assert_int_equal(mastercf_load_string(&m, "# only\n\n   \n\t# comments\n", "m", NULL), 0);
    assert_int_equal(m.n, 0);
    /* a '#' that does not start a line is an ordinary argument; CRLF is fine */
    assert_int_equal(mastercf_load_string(&m, "smtp inet n - y - - smtpd #x\r\n", "m", NULL), 0);
    assert_int_equal(m.n, 1);
    assert_int_equal(m.svc[0].nargs, 1);
    assert_string_equal(m.svc[0].args[0], "#x");
    /* errors without a diag are still counted */
    assert_int_equal(mastercf_load_string(&m, "bad\n", NULL, NULL), 1);
    mastercf_free(&m);
}

static void test_arbitrary_bytes(void **state)
{
    (void)state;
    static const char alphabet[] = "smtp inet-o{}=:[]1\t\n#\r\0\xffnuy?";
    unsigned seed = 4242;
    char buf[400];
    struct strbuf diag = STRBUF_INIT;
    for (int round = 0; round < 5000; round++) {
        seed = seed * 1103515245u + 12345u;
        size_t want = (seed >> 16) % sizeof buf, len = 0;
        static const char start[] = "smtp inet n - y - - smtpd ";
        if (round % 2) {
            memcpy(buf, start, sizeof start - 1);
            len = sizeof start - 1;
        }
        while (len < want) {
            seed = seed * 1103515245u + 12345u;
            buf[len++] = alphabet[(seed >> 16) % (sizeof alphabet - 1)];
        }
        struct mastercf m = {0};
        mastercf_load_mem(&m, buf, len, "fuzz", &diag);
        for (size_t i = 0; i < m.n; i++) {
            if (strcmp(m.svc[i].type, "inet") == 0) {
                char *host, *port;
                assert_int_equal(mastercf_split_listen(m.svc[i].name, NULL, &host, &port), 0);
                free(host);
                free(port);
            }
        }
        mastercf_free(&m);
        strbuf_reset(&diag);
    }
    strbuf_free(&diag);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_postfix_examples),
        cmocka_unit_test(test_braced_arguments),
        cmocka_unit_test(test_errors_with_lines),
        cmocka_unit_test(test_split_listen),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_empty_and_comments),
        cmocka_unit_test(test_arbitrary_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
