/* Unit tests for transport_parse: every form of a transport string
 * (local, smtp/relay, lmtp unix and inet, error, retry, virtual, discard),
 * the LMTP key that parses back to the same hop, the strings refused, and
 * transport(5)'s rule for entries that leave a half out (transport_combine). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maps/transport.h"

static struct transport_hop parse_ok(const char *value)
{
    struct transport_hop hop;
    char *err = NULL;
    int rc = transport_parse(value, "/var/spool/tern", &hop, &err);
    if (rc != 0)
        fail_msg("\"%s\": %s", value, err);
    assert_null(err);
    return hop;
}

static void parse_bad(const char *value, const char *why)
{
    struct transport_hop hop;
    char *err = NULL;
    assert_int_equal(transport_parse(value, "/var/spool/tern", &hop, &err), -1);
    assert_non_null(err);
    if (strstr(err, why) == NULL)
        fail_msg("\"%s\": \"%s\" does not say \"%s\"", value, err, why);
    free(err);
}

static void test_local_smtp_error(void **state)
{
    (void)state;
    struct transport_hop h = parse_ok("local");
    assert_int_equal(h.kind, TRANSPORT_LOCAL);
    transport_hop_free(&h);
    h = parse_ok(" LOCAL:whatever ");
    assert_int_equal(h.kind, TRANSPORT_LOCAL);
    transport_hop_free(&h);

    h = parse_ok("smtp:[mx.example.com]:587");
    assert_int_equal(h.kind, TRANSPORT_SMTP);
    assert_string_equal(h.nexthop, "[mx.example.com]:587");
    transport_hop_free(&h);
    h = parse_ok("relay: example.net ");
    assert_int_equal(h.kind, TRANSPORT_SMTP);
    assert_string_equal(h.nexthop, "example.net");
    transport_hop_free(&h);
    const char *usual[] = {"smtp", "smtp:", "relay", "Relay:"};
    for (size_t i = 0; i < sizeof usual / sizeof usual[0]; i++) {
        h = parse_ok(usual[i]);
        assert_int_equal(h.kind, TRANSPORT_SMTP);
        assert_string_equal(h.nexthop, "");
        transport_hop_free(&h);
    }

    h = parse_ok("error:5.1.2 No mail here");
    assert_int_equal(h.kind, TRANSPORT_ERROR);
    assert_string_equal(h.status, "5.1.2");
    assert_string_equal(h.text, "No mail here");
    transport_hop_free(&h);
    h = parse_ok("error:gone");
    assert_string_equal(h.status, "5.0.0");
    assert_string_equal(h.text, "gone");
    transport_hop_free(&h);
}

static void test_lmtp_unix(void **state)
{
    (void)state;
    struct transport_hop h = parse_ok("lmtp:unix:private/dovecot-lmtp");
    assert_int_equal(h.kind, TRANSPORT_LMTP);
    assert_int_equal(h.unix_socket, 1);
    assert_string_equal(h.socket_path, "/var/spool/tern/private/dovecot-lmtp");
    assert_string_equal(h.socket_shown, "private/dovecot-lmtp");
    assert_null(h.host);
    char *key = transport_lmtp_key(&h);
    assert_string_equal(key, "lmtp:unix:private/dovecot-lmtp");
    free(key);
    transport_hop_free(&h);

    h = parse_ok("LMTP:UNIX:/run/dovecot/lmtp");
    assert_string_equal(h.socket_path, "/run/dovecot/lmtp");
    assert_string_equal(h.socket_shown, "/run/dovecot/lmtp");
    transport_hop_free(&h);

    /* no queue directory: only absolute paths */
    char *err = NULL;
    assert_int_equal(transport_parse("lmtp:unix:private/x", NULL, &h, &err), -1);
    assert_non_null(strstr(err, "queue_directory"));
    free(err);
    assert_int_equal(transport_parse("lmtp:unix:/abs", NULL, &h, &err), 0);
    transport_hop_free(&h);
}

static void test_lmtp_inet(void **state)
{
    (void)state;
    static const struct {
        const char *value, *host;
        unsigned port;
        const char *key;
    } cases[] = {
        {"lmtp:inet:lmtp.example.com:2424", "lmtp.example.com", 2424, "lmtp:inet:lmtp.example.com:2424"},
        {"lmtp:inet:lmtp.example.com", "lmtp.example.com", 24, "lmtp:inet:lmtp.example.com:24"},
        {"lmtp:inet:[192.0.2.1]:24", "192.0.2.1", 24, "lmtp:inet:192.0.2.1:24"},
        {"lmtp:[::1]:2003", "::1", 2003, "lmtp:inet:[::1]:2003"},
        {"lmtp:[mail.example.com]", "mail.example.com", 24, "lmtp:inet:mail.example.com:24"},
        {"lmtp:127.0.0.1:24", "127.0.0.1", 24, "lmtp:inet:127.0.0.1:24"},
        {"lmtp:localhost", "localhost", 24, "lmtp:inet:localhost:24"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct transport_hop h = parse_ok(cases[i].value);
        assert_int_equal(h.kind, TRANSPORT_LMTP);
        assert_int_equal(h.unix_socket, 0);
        assert_string_equal(h.host, cases[i].host);
        assert_int_equal(h.port, cases[i].port);
        char *key = transport_lmtp_key(&h);
        assert_string_equal(key, cases[i].key);
        /* the key is the same hop again */
        struct transport_hop again = parse_ok(key);
        assert_string_equal(again.host, h.host);
        assert_int_equal(again.port, h.port);
        transport_hop_free(&again);
        free(key);
        transport_hop_free(&h);
    }
}

static void test_refused(void **state)
{
    (void)state;
    parse_bad("uucp:gateway", "unsupported transport in \"uucp:gateway\"");
    parse_bad("procmail:", "unsupported transport");
    parse_bad(":[gw]", "unsupported transport");   /* only after transport_combine */
    parse_bad("lmtp", "no next hop");
    parse_bad("lmtp:", "no next hop");
    parse_bad("lmtp:unix:", "no socket path");
    parse_bad("lmtp:inet:", "bad host");
    parse_bad("lmtp:inet:host:0", "bad port");
    parse_bad("lmtp:inet:host:65536", "bad port");
    parse_bad("lmtp:inet:host:24x", "bad port");
    parse_bad("lmtp:host:", "bad port");
    parse_bad("lmtp:inet:[::1", "missing ']'");
    parse_bad("lmtp:[::1]x", "junk after ']'");
    parse_bad("lmtp:inet:::1", "brackets");
    parse_bad("lmtp:inet:a b:24", "bad host");
    char longpath[200];
    memset(longpath, 'x', sizeof longpath - 1);
    longpath[sizeof longpath - 1] = '\0';
    char value[256];
    snprintf(value, sizeof value, "lmtp:unix:/%s", longpath);
    parse_bad(value, "socket path too long");
    struct transport_hop h = parse_ok("smtp:x");
    assert_null(transport_lmtp_key(&h));
    transport_hop_free(&h);
}

static void test_retry_virtual_discard(void **state)
{
    (void)state;
    struct transport_hop h = parse_ok("retry:4.3.0 upgrade in progress");
    assert_int_equal(h.kind, TRANSPORT_RETRY);
    assert_string_equal(h.status, "4.3.0");
    assert_string_equal(h.text, "upgrade in progress");
    transport_hop_free(&h);
    /* no status: 4.0.0; a permanent one is only text (retry never bounces) */
    h = parse_ok("RETRY:5.1.1 later");
    assert_int_equal(h.kind, TRANSPORT_RETRY);
    assert_string_equal(h.status, "4.0.0");
    assert_string_equal(h.text, "5.1.1 later");
    transport_hop_free(&h);
    h = parse_ok("retry");
    assert_string_equal(h.status, "4.0.0");
    assert_string_equal(h.text, "delivery to this destination is deferred");
    transport_hop_free(&h);

    const char *virtuals[] = {"virtual", "virtual:", " Virtual:example.com "};
    for (size_t i = 0; i < sizeof virtuals / sizeof virtuals[0]; i++) {
        h = parse_ok(virtuals[i]);
        assert_int_equal(h.kind, TRANSPORT_VIRTUAL);
        transport_hop_free(&h);
    }
    h = parse_ok("discard:kept");
    assert_int_equal(h.kind, TRANSPORT_DISCARD);
    assert_string_equal(h.text, "kept");
    transport_hop_free(&h);
}

/* transport(5): an entry's empty half keeps the class default's. */
static void test_combine(void **state)
{
    (void)state;
    static const struct {
        const char *class_default, *entry, *combined;
    } cases[] = {
        /* the null entry: both kept */
        {"smtp", ":", "smtp"},
        {"relay:[backup.example]", " : ", "relay:[backup.example]"},
        {"virtual", ":", "virtual"},
        /* :nexthop: the class's transport to another next hop */
        {"smtp", ":[gw.example]:2525", "smtp:[gw.example]:2525"},
        {"relay:[backup.example]", ":primary.example", "relay:primary.example"},
        {"lmtp:unix:private/dovecot-lmtp", ":[lmtp.example]", "lmtp:[lmtp.example]"},
        {"local", ":elsewhere", "local:elsewhere"},
        /* transport: with no next hop keeps the class's next hop */
        {"relay:[backup.example]", "smtp:", "smtp:[backup.example]"},
        {"smtp", "relay:", "relay"},
        {"smtp:[a.example]", "lmtp", "lmtp:[a.example]"},
        /* ... but not as text for error:, retry:, discard:, nor from them */
        {"smtp:[a.example]", "error:", "error"},
        {"smtp:[a.example]", "retry:", "retry"},
        {"error:5.1.2 closed", "smtp:", "smtp"},
        {"discard:kept", "relay:", "relay"},
        {"smtp:[a.example]", "local:", "local"},
        /* a full entry replaces both */
        {"relay:[backup.example]", "smtp:[b.example]:26", "smtp:[b.example]:26"},
        {"smtp", "error:5.7.1 no", "error:5.7.1 no"},
        {"smtp", "lmtp:unix:/run/lmtp", "lmtp:unix:/run/lmtp"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = transport_combine(cases[i].class_default, cases[i].entry);
        if (strcmp(got, cases[i].combined) != 0)
            fail_msg("\"%s\" over \"%s\": \"%s\", not \"%s\"", cases[i].entry, cases[i].class_default, got,
                     cases[i].combined);
        free(got);
    }
    assert_int_equal(transport_is_null(":"), 1);
    assert_int_equal(transport_is_null("  :  "), 1);
    assert_int_equal(transport_is_null(""), 1);
    assert_int_equal(transport_is_null(":x"), 0);
    assert_int_equal(transport_is_null("smtp:"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local_smtp_error),
        cmocka_unit_test(test_lmtp_unix),
        cmocka_unit_test(test_lmtp_inet),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_retry_virtual_discard),
        cmocka_unit_test(test_combine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
