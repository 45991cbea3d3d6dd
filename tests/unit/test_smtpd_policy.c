/* Unit tests for src/smtpd/smtpd_policy.c: restriction lists, their order and
 * first-match rule, access tables, the relay check and its open-relay tricks. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_fixture.h"
#include "maps/map.h"
#include "smtpd/smtpd_policy.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

static char tmpdir[64];

static int setup_all(void **state)
{
    (void)state;
    if (tf_tmpdir_make(tmpdir, sizeof tmpdir, "test-policy") != 0)
        return -1;
    tf_log_capture(tmpdir);
    map_set_check_interval(0);
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

static char *write_tmp(const char *name, const char *data)
{
    char *path = xasprintf("%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(data, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    return path;
}

/* ---------- a fake server: ourdomain.test is local, relayed.test is relayed ---------- */

struct fake {
    char last_domain[300]; /* last domain the policy asked about */
    int domain_calls;
    char last_rcpt[300];
    int rcpt_calls;
    int rcpt_answer; /* what recipient_exists says for unknown users */
    const char *unknown_table; /* and where it says they are missing (NULL: leave it) */
    int unknown_code;          /* and the code for them (0: leave it) */
};

static int fake_local(void *arg, const char *domain)
{
    struct fake *f = arg;
    str_copy(f->last_domain, domain, sizeof f->last_domain);
    f->domain_calls++;
    return strcmp(domain, "ourdomain.test") == 0 || strcmp(domain, "[192.0.2.99]") == 0 ||
           strcmp(domain, "[ipv6:2001:db8::99]") == 0;
}

static int fake_relay(void *arg, const char *domain)
{
    (void)arg;
    return strcmp(domain, "relayed.test") == 0;
}

static int fake_exists(void *arg, const char *addr, const char **table, int *code)
{
    struct fake *f = arg;
    str_copy(f->last_rcpt, addr, sizeof f->last_rcpt);
    f->rcpt_calls++;
    if (strcmp(addr, "bob@ourdomain.test") == 0 || strcmp(addr, "postmaster") == 0 ||
        strcmp(addr, "carol@relayed.test") == 0)
        return 1;
    if (f->unknown_table)
        *table = f->unknown_table;
    if (f->unknown_code)
        *code = f->unknown_code;
    return f->rcpt_answer;
}

static struct fake fk;

static struct smtpd_policy_ctx base_ctx(void)
{
    memset(&fk, 0, sizeof fk);
    struct smtpd_policy_ctx c = {
        .client_addr = "192.0.2.10",
        .client_name = "mail.remote.test",
        .helo = "mail.remote.test",
        .sender = "alice@remote.test",
        .recipient = "bob@ourdomain.test",
        .mynetworks = 0,
        .authenticated = 0,
        .is_local_domain = fake_local,
        .is_relay_domain = fake_relay,
        .recipient_exists = fake_exists,
        .arg = &fk,
    };
    return c;
}

static struct smtpd_policy_lists *parse_ok(const char *client, const char *helo, const char *sender,
                                     const char *relay, const char *rcpt)
{
    char *err = NULL;
    struct smtpd_policy_lists *p = smtpd_policy_parse(client, helo, sender, relay, rcpt, NULL, &err);
    if (p == NULL)
        fail_msg("smtpd_policy_parse: %s", err ? err : "(no message)");
    assert_null(err);
    return p;
}

static void parse_fails(const char *client, const char *helo, const char *sender,
                        const char *relay, const char *rcpt, const char *msg)
{
    char *err = NULL;
    assert_null(smtpd_policy_parse(client, helo, sender, relay, rcpt, NULL, &err));
    assert_non_null(err);
    if (strcmp(err, msg) != 0 && strstr(err, msg) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", err, msg);
    free(err);
    /* err may be NULL, and nothing leaks then. */
    assert_null(smtpd_policy_parse(client, helo, sender, relay, rcpt, NULL, NULL));
}

/* Checks a full reply "code enh text". */
static void expect_reply(const struct smtpd_policy_lists *p, const struct smtpd_policy_ctx *c, int code,
                         const char *enh, const char *text)
{
    struct smtpd_policy_result r;
    int rc = smtpd_policy_check_rcpt(p, c, &r);
    if (rc != code)
        fail_msg("expected %d, got %d %s %s (%s/%s)", code, rc, r.enh, r.text,
                 r.list ? r.list : "-", r.restriction ? r.restriction : "-");
    assert_int_equal(r.code, code);
    assert_string_equal(r.enh, enh);
    assert_string_equal(r.text, text);
}

static void expect_accept(const struct smtpd_policy_lists *p, const struct smtpd_policy_ctx *c)
{
    struct smtpd_policy_result r;
    int rc = smtpd_policy_check_rcpt(p, c, &r);
    if (rc != 0)
        fail_msg("expected accept, got %d %s %s (%s/%s)", rc, r.enh, r.text, r.list,
                 r.restriction);
    assert_int_equal(r.code, 0);
    assert_string_equal(r.enh, "");
    assert_string_equal(r.text, "");
    assert_null(r.list);
    assert_null(r.restriction);
}

static void expect_decider(const struct smtpd_policy_lists *p, const struct smtpd_policy_ctx *c,
                           const char *list, const char *restriction)
{
    struct smtpd_policy_result r;
    assert_int_not_equal(smtpd_policy_check_rcpt(p, c, &r), 0);
    assert_string_equal(r.list, list);
    assert_string_equal(r.restriction, restriction);
}

/* ---------- defaults and the open-relay guard ---------- */

static void test_default_relay_list(void **state)
{
    (void)state;
    struct smtpd_policy_lists *p = parse_ok(NULL, NULL, NULL, NULL, NULL);
    struct smtpd_policy_ctx c = base_ctx();
    expect_accept(p, &c);

    c.recipient = "x@other.test";
    expect_reply(p, &c, 454, "4.7.1", "<x@other.test>: Relay access denied");
    expect_decider(p, &c, "smtpd_relay_restrictions", "defer_unauth_destination");

    c.mynetworks = 1;
    expect_accept(p, &c);
    c.mynetworks = 0;
    c.authenticated = 1;
    expect_accept(p, &c);
    c.authenticated = 0;

    c.recipient = "carol@relayed.test";
    expect_accept(p, &c);
    smtpd_policy_free(p);
    smtpd_policy_free(NULL);
}

static void test_open_relay_guard(void **state)
{
    (void)state;
    const char *msg = "in parameter smtpd_relay_restrictions or smtpd_recipient_restrictions, "
                      "specify at least one working instance of: reject_unauth_destination, "
                      "defer_unauth_destination, reject, defer";
    parse_fails(NULL, NULL, NULL, "", "permit_mynetworks, permit_sasl_authenticated", msg);
    parse_fails(NULL, NULL, NULL, "", "", msg);
    parse_fails(NULL, NULL, NULL, "permit, reject_unauth_destination", NULL, msg);
    parse_fails(NULL, NULL, NULL, "permit_mynetworks", "permit, reject", msg);
    /* A rejecting client list does not count: it is not where relaying is decided. */
    parse_fails("reject", NULL, NULL, "", "permit_mynetworks", msg);

    struct smtpd_policy_lists *p = parse_ok(NULL, NULL, NULL, "", "permit_mynetworks, reject_unauth_destination");
    struct smtpd_policy_ctx c = base_ctx();
    c.recipient = "x@other.test";
    expect_reply(p, &c, 554, "5.7.1", "<x@other.test>: Relay access denied");
    expect_decider(p, &c, "smtpd_recipient_restrictions", "reject_unauth_destination");
    smtpd_policy_free(p);

    p = parse_ok(NULL, NULL, NULL, "", "check_recipient_access inline:{a=OK}, defer");
    smtpd_policy_free(p);
}

/* ---------- list semantics ---------- */

static void test_permit_ends_only_its_list(void **state)
{
    (void)state;
    struct smtpd_policy_lists *p = parse_ok("permit, reject", NULL, NULL, NULL, "reject");
    struct smtpd_policy_ctx c = base_ctx();
    expect_reply(p, &c, 554, "5.7.1", "<bob@ourdomain.test>: Recipient address rejected: Access denied");
    expect_decider(p, &c, "smtpd_recipient_restrictions", "reject");
    assert_int_equal(tf_log_count("smtpd_client_restrictions: restriction `reject' after `permit' is ignored"), 1);
    smtpd_policy_free(p);
}

static void test_dunno_goes_on(void **state)
{
    (void)state;
    struct smtpd_policy_lists *p = parse_ok("permit_mynetworks, permit_sasl_authenticated, reject",
                                      NULL, NULL, NULL, NULL);
    struct smtpd_policy_ctx c = base_ctx();
    expect_reply(p, &c, 554, "5.7.1",
                 "<mail.remote.test[192.0.2.10]>: Client host rejected: Access denied");
    expect_decider(p, &c, "smtpd_client_restrictions", "reject");
    c.authenticated = 1;
    expect_accept(p, &c);
    c.authenticated = 0;
    c.mynetworks = 1;
    expect_accept(p, &c);
    c.client_name = NULL;
    c.mynetworks = 0;
    expect_reply(p, &c, 554, "5.7.1", "<unknown[192.0.2.10]>: Client host rejected: Access denied");
    smtpd_policy_free(p);
}

static void test_list_order(void **state)
{
    (void)state;
    struct smtpd_policy_ctx c = base_ctx();
    struct smtpd_policy_lists *p = parse_ok("defer", "reject", "reject", "reject", "reject");
    expect_reply(p, &c, 450, "4.7.1",
                 "<mail.remote.test[192.0.2.10]>: Client host rejected: Try again later");
    expect_decider(p, &c, "smtpd_client_restrictions", "defer");
    smtpd_policy_free(p);

    p = parse_ok("", "reject", "defer", "reject", "reject");
    expect_reply(p, &c, 554, "5.7.1", "<mail.remote.test>: Helo command rejected: Access denied");
    expect_decider(p, &c, "smtpd_helo_restrictions", "reject");
    smtpd_policy_free(p);

    p = parse_ok("", "", "defer", "reject", "reject");
    expect_reply(p, &c, 450, "4.7.1", "<alice@remote.test>: Sender address rejected: Try again later");
    c.sender = "";
    expect_reply(p, &c, 450, "4.7.1", "<>: Sender address rejected: Try again later");
    c.sender = "alice@remote.test";
    smtpd_policy_free(p);

    /* Relay before recipient, whatever order main.cf lists them in. */
    p = parse_ok(NULL, NULL, NULL, "reject_unauth_destination", "defer");
    expect_decider(p, &c, "smtpd_recipient_restrictions", "defer");
    c.recipient = "x@other.test";
    expect_decider(p, &c, "smtpd_relay_restrictions", "reject_unauth_destination");
    smtpd_policy_free(p);

    /* No HELO: the helo list's reply names an empty HELO. */
    p = parse_ok(NULL, "reject", NULL, NULL, NULL);
    c.helo = NULL;
    c.recipient = "bob@ourdomain.test";
    expect_reply(p, &c, 554, "5.7.1", "<>: Helo command rejected: Access denied");
    smtpd_policy_free(p);
}

static void test_separators_and_case(void **state)
{
    (void)state;
    struct smtpd_policy_lists *p = parse_ok(NULL, NULL, NULL, "",
                                      "\n\tPERMIT_MYNETWORKS,,Reject_Unauth_Destination ,\n");
    struct smtpd_policy_ctx c = base_ctx();
    c.recipient = "x@other.test";
    expect_decider(p, &c, "smtpd_recipient_restrictions", "reject_unauth_destination");
    c.mynetworks = 1;
    expect_accept(p, &c);
    smtpd_policy_free(p);
}

/* ---------- single restrictions ---------- */

static void test_reject_unlisted_recipient(void **state)
{
    (void)state;
    struct smtpd_policy_lists *p = parse_ok(NULL, NULL, NULL, NULL, "reject_unlisted_recipient");
    struct smtpd_policy_ctx c = base_ctx();
    expect_accept(p, &c);
    assert_string_equal(fk.last_rcpt, "bob@ourdomain.test");

    c.recipient = "nobody@ourdomain.test";
    expect_reply(p, &c, 550, "5.1.1",
                 "<nobody@ourdomain.test>: Recipient address rejected: User unknown in local recipient table");
    expect_decider(p, &c, "smtpd_recipient_restrictions", "reject_unlisted_recipient");

    c.recipient = "nobody@relayed.test";
    expect_reply(p, &c, 550, "5.1.1",
                 "<nobody@relayed.test>: Recipient address rejected: User unknown in relay recipient table");
    c.recipient = "carol@relayed.test";
    expect_accept(p, &c);

    c.recipient = "nobody@ourdomain.test";
    fk.rcpt_answer = -1;
    expect_reply(p, &c, 451, "4.3.0", "<nobody@ourdomain.test>: Temporary lookup failure");
    fk.rcpt_answer = 0;

    /* Remote recipients are none of its business (mynetworks relays them). */
    c.mynetworks = 1;
    c.recipient = "x@other.test";
    fk.rcpt_calls = 0;
    expect_accept(p, &c);
    assert_int_equal(fk.rcpt_calls, 0);
    c.mynetworks = 0;

    c.recipient = "postmaster";
    expect_accept(p, &c);
    assert_string_equal(fk.last_rcpt, "postmaster");

    c.recipient = "nobody@ourdomain.test";
    c.recipient_exists = NULL;
    expect_accept(p, &c);
    smtpd_policy_free(p);

    p = parse_ok(NULL, NULL, NULL, NULL, "check_recipient_maps");
    c = base_ctx();
    c.recipient = "nobody@ourdomain.test";
    expect_reply(p, &c, 550, "5.1.1",
                 "<nobody@ourdomain.test>: Recipient address rejected: User unknown in local recipient table");
    smtpd_policy_free(p);
}

/* unknown_*_reject_code: the callback names the table and the code; the
 * enhanced code's class follows the reply code. */
static void test_unlisted_reply_codes(void **state)
{
    (void)state;
    struct smtpd_policy_lists *p = parse_ok(NULL, NULL, NULL, NULL, "reject_unlisted_recipient");
    struct smtpd_policy_ctx c = base_ctx();
    c.recipient = "nobody@ourdomain.test";
    fk.unknown_code = 450;
    expect_reply(p, &c, 450, "4.1.1",
                 "<nobody@ourdomain.test>: Recipient address rejected: User unknown in local recipient table");
    fk.unknown_table = "virtual mailbox table";
    fk.unknown_code = 551;
    expect_reply(p, &c, 551, "5.1.1",
                 "<nobody@ourdomain.test>: Recipient address rejected: User unknown in virtual mailbox table");
    smtpd_policy_free(p);
}

/* reject_unlisted_sender and smtpd_reject_unlisted_sender: a sender of a
 * domain of ours that no table lists, 5.1.0. */
static void test_reject_unlisted_sender(void **state)
{
    (void)state;
    struct smtpd_policy_lists *p = parse_ok(NULL, NULL, "reject_unlisted_sender", NULL, NULL);
    struct smtpd_policy_ctx c = base_ctx();
    expect_accept(p, &c); /* alice@remote.test: not ours */
    assert_int_equal(fk.rcpt_calls, 0);
    c.sender = "nobody@ourdomain.test";
    expect_reply(p, &c, 550, "5.1.0",
                 "<nobody@ourdomain.test>: Sender address rejected: User unknown in local recipient table");
    expect_decider(p, &c, "smtpd_sender_restrictions", "reject_unlisted_sender");
    c.sender = "nobody@relayed.test";
    fk.unknown_code = 450;
    expect_reply(p, &c, 450, "4.1.0",
                 "<nobody@relayed.test>: Sender address rejected: User unknown in relay recipient table");
    fk.unknown_code = 0;
    c.sender = "bob@ourdomain.test";
    expect_accept(p, &c);
    c.sender = "";
    fk.rcpt_calls = 0;
    expect_accept(p, &c); /* the null sender */
    assert_int_equal(fk.rcpt_calls, 0);
    c.sender = "nobody@ourdomain.test";
    fk.rcpt_answer = -1;
    expect_reply(p, &c, 451, "4.3.0", "<nobody@ourdomain.test>: Temporary lookup failure");
    smtpd_policy_free(p);

    /* The implicit check runs after the sender list, even one that
     * permitted, and before the recipient list. */
    p = parse_ok(NULL, NULL, "permit", NULL, "reject");
    c = base_ctx();
    c.sender = "nobody@ourdomain.test";
    expect_reply(p, &c, 554, "5.7.1", "<bob@ourdomain.test>: Recipient address rejected: Access denied");
    c.reject_unlisted_sender = 1;
    expect_reply(p, &c, 550, "5.1.0",
                 "<nobody@ourdomain.test>: Sender address rejected: User unknown in local recipient table");
    expect_decider(p, &c, "smtpd_reject_unlisted_sender", "reject_unlisted_sender");
    c.sender = "bob@ourdomain.test";
    expect_reply(p, &c, 554, "5.7.1", "<bob@ourdomain.test>: Recipient address rejected: Access denied");
    smtpd_policy_free(p);
    /* a refusal by the client list comes first */
    p = parse_ok("reject", NULL, NULL, NULL, NULL);
    c.sender = "nobody@ourdomain.test";
    expect_decider(p, &c, "smtpd_client_restrictions", "reject");
    smtpd_policy_free(p);
}

static void test_permit_auth_destination(void **state)
{
    (void)state;
    struct smtpd_policy_lists *p = parse_ok(NULL, NULL, NULL, "", "permit_auth_destination, reject");
    struct smtpd_policy_ctx c = base_ctx();
    expect_accept(p, &c);
    c.recipient = "carol@relayed.test";
    expect_accept(p, &c);
    c.recipient = "x@other.test";
    expect_decider(p, &c, "smtpd_recipient_restrictions", "reject");
    smtpd_policy_free(p);
}

static int failing_domain(void *arg, const char *domain)
{
    (void)arg;
    return strcmp(domain, "down.test") == 0 ? -1 : 0;
}

/* A domain table that cannot answer (pgsql: down or slow) defers the
 * recipient: refusing it as relaying would bounce mail for our own domains. */
static void test_domain_lookup_failure_defers(void **state)
{
    (void)state;
    struct smtpd_policy_lists *p = parse_ok(NULL, NULL, NULL, "reject_unauth_destination", NULL);
    struct smtpd_policy_ctx c = base_ctx();
    c.recipient = "bob@down.test";
    c.is_local_domain = failing_domain;
    expect_reply(p, &c, 451, "4.3.0", "<bob@down.test>: Temporary lookup failure");
    c.is_local_domain = fake_local;
    c.is_relay_domain = failing_domain;
    expect_reply(p, &c, 451, "4.3.0", "<bob@down.test>: Temporary lookup failure");
    /* a local domain is known without asking the relay table */
    c.recipient = "bob@ourdomain.test";
    expect_accept(p, &c);
    c.recipient = "x@other.test";
    expect_reply(p, &c, 554, "5.7.1", "<x@other.test>: Relay access denied");
    smtpd_policy_free(p);

    p = parse_ok(NULL, NULL, NULL, "", "permit_auth_destination, reject");
    c.recipient = "bob@down.test";
    expect_reply(p, &c, 451, "4.3.0", "<bob@down.test>: Temporary lookup failure");
    smtpd_policy_free(p);

    p = parse_ok(NULL, NULL, NULL, "", "reject_unlisted_recipient, reject");
    expect_reply(p, &c, 451, "4.3.0", "<bob@down.test>: Temporary lookup failure");
    smtpd_policy_free(p);
}

static void test_helo_non_fqdn(void **state)
{
    (void)state;
    struct smtpd_policy_lists *p = parse_ok(NULL, "reject_non_fqdn_helo_hostname", NULL, NULL, NULL);
    struct smtpd_policy_ctx c = base_ctx();
    const char *good[] = {"mail.remote.test", "mail.remote.test.", "MX-1.Example.COM",
                          "[192.0.2.1]", "[IPv6:2001:db8::1]", "a_b.example"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        c.helo = good[i];
        expect_accept(p, &c);
    }
    c.helo = NULL;
    expect_accept(p, &c);

    const char *bad[] = {"localhost", "1.2.3.4", "mail..example", "-mail.example",
                         "mail-.example", "mail.example..", "bad!name.example", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        c.helo = bad[i];
        char *want = xasprintf("<%s>: Helo command rejected: need fully-qualified hostname", bad[i]);
        expect_reply(p, &c, 504, "5.5.2", want);
        free(want);
    }
    c.helo = "[300.1.2.3]";
    expect_reply(p, &c, 501, "5.5.2", "<[300.1.2.3]>: Helo command rejected: invalid ip address");
    expect_decider(p, &c, "smtpd_helo_restrictions", "reject_non_fqdn_helo_hostname");
    smtpd_policy_free(p);

    /* The old name works and is reported as written. */
    p = parse_ok(NULL, "reject_non_fqdn_hostname", NULL, NULL, NULL);
    c.helo = "localhost";
    expect_reply(p, &c, 504, "5.5.2", "<localhost>: Helo command rejected: need fully-qualified hostname");
    expect_decider(p, &c, "smtpd_helo_restrictions", "reject_non_fqdn_hostname");
    smtpd_policy_free(p);
}

static void test_helo_invalid(void **state)
{
    (void)state;
    struct smtpd_policy_lists *p = parse_ok(NULL, "reject_invalid_helo_hostname", NULL, NULL, NULL);
    struct smtpd_policy_ctx c = base_ctx();
    char label63[80], label64[80];
    memset(label63, 'a', 63);
    strcpy(label63 + 63, ".test");
    memset(label64, 'a', 64);
    strcpy(label64 + 64, ".test");
    const char *good[] = {"localhost", "mail.remote.test", "mail.remote.test.", "1.2.3.4",
                          "2001:db8::1", "[192.0.2.1]", "[IPv6:2001:db8::1]", "[::1]", label63};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        c.helo = good[i];
        expect_accept(p, &c);
    }
    const char *bad[] = {"bad!name", "mail..example", "-x.example", "x y", "123", "mail.example..",
                         label64};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        c.helo = bad[i];
        char *want = xasprintf("<%s>: Helo command rejected: Invalid name", bad[i]);
        expect_reply(p, &c, 501, "5.5.2", want);
        free(want);
    }
    const char *badlit[] = {"[192.0.2.1", "[]", "[IPv6:192.0.2.300]", "[example.com]"};
    for (size_t i = 0; i < sizeof badlit / sizeof badlit[0]; i++) {
        c.helo = badlit[i];
        char *want = xasprintf("<%s>: Helo command rejected: invalid ip address", badlit[i]);
        expect_reply(p, &c, 501, "5.5.2", want);
        free(want);
    }
    /* Bytes that could break the reply line are replaced. */
    c.helo = "bad\r\nname";
    expect_reply(p, &c, 501, "5.5.2", "<bad??name>: Helo command rejected: Invalid name");
    smtpd_policy_free(p);
}

static void test_non_fqdn_addresses(void **state)
{
    (void)state;
    struct smtpd_policy_lists *p =
        parse_ok(NULL, NULL, "reject_non_fqdn_sender", NULL, "reject_non_fqdn_recipient");
    struct smtpd_policy_ctx c = base_ctx();
    c.mynetworks = 1; /* get past the relay list */
    const char *good[] = {"alice@remote.test", "", "alice@remote.test.", "alice@[192.0.2.1]",
                          "\"a@b\"@remote.test"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        c.sender = good[i];
        expect_accept(p, &c);
    }
    const char *bad[] = {"alice", "alice@localhost", "alice@", "alice@bad!host.test",
                         "\"alice@remote.test\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        c.sender = bad[i];
        char *want = xasprintf("<%s>: Sender address rejected: need fully-qualified address", bad[i]);
        expect_reply(p, &c, 504, "5.5.2", want);
        expect_decider(p, &c, "smtpd_sender_restrictions", "reject_non_fqdn_sender");
        free(want);
    }
    c.sender = "alice@remote.test";
    c.recipient = "bob@localhost";
    expect_reply(p, &c, 504, "5.5.2",
                 "<bob@localhost>: Recipient address rejected: need fully-qualified address");
    c.recipient = "postmaster";
    expect_reply(p, &c, 504, "5.5.2",
                 "<postmaster>: Recipient address rejected: need fully-qualified address");
    c.recipient = "x@other.test";
    expect_accept(p, &c);
    smtpd_policy_free(p);
}

/* ---------- access tables ---------- */

static void test_client_access_keys(void **state)
{
    (void)state;
    struct smtpd_policy_ctx c = base_ctx();
    struct {
        const char *table;
        int code; /* 0: permitted by the table; 554: rejected by it; 1: reached "reject" */
    } cases[] = {
        {"inline:{ {remote.test = REJECT no thanks} }", 554},
        {"inline:{ test=REJECT }", 554},
        {"inline:{ .remote.test=REJECT }", 1},    /* dot form is not Postfix's default */
        {"inline:{ remote=REJECT }", 1},
        {"inline:{ 192.0.2.10=REJECT }", 554},
        {"inline:{ 192.0.2=REJECT }", 554},
        {"inline:{ 192.0=REJECT }", 554},
        {"inline:{ 192=REJECT }", 554},
        {"inline:{ 192.0.2.1=REJECT }", 1},       /* not an octet boundary */
        {"inline:{ 192.0.2.=REJECT }", 1},
        /* The name is looked up before the address, and any hit ends the walk. */
        {"inline:{ mail.remote.test=OK, 192.0.2.10=REJECT }", 0},
        {"inline:{ mail.remote.test=DUNNO, 192.0.2.10=REJECT }", 1},
        {"inline:{ remote.test=DUNNO, mail.remote.test=REJECT }", 554},
        {"inline:{ 192.0.2=OK, 192.0.2.10=REJECT }", 554},
        {"inline:{ 192.0.2.10=DUNNO, 192.0.2=REJECT }", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *list = xasprintf("check_client_access %s, reject", cases[i].table);
        struct smtpd_policy_lists *p = parse_ok(list, NULL, NULL, NULL, NULL);
        struct smtpd_policy_result r;
        int rc = smtpd_policy_check_rcpt(p, &c, &r);
        if (cases[i].code == 0) {
            if (rc != 0)
                fail_msg("%s: %d %s", cases[i].table, rc, r.text);
        } else {
            if (rc != 554)
                fail_msg("%s: expected a reject, got %d", cases[i].table, rc);
            assert_string_equal(r.restriction, cases[i].code == 1 ? "reject" : "check_client_access");
            if (cases[i].code != 1)
                assert_string_equal(r.table, cases[i].table);
            else
                assert_null(r.table);
        }
        smtpd_policy_free(p);
        free(list);
    }

    struct smtpd_policy_lists *p =
        parse_ok("check_client_access inline:{ {remote.test = REJECT no thanks} }", NULL, NULL, NULL, NULL);
    expect_reply(p, &c, 554, "5.7.1", "<mail.remote.test[192.0.2.10]>: Client host rejected: no thanks");
    smtpd_policy_free(p);

    /* IPv6 truncates at ':'; IPv4-mapped addresses are IPv4. */
    p = parse_ok("check_client_access inline:{ 2001:db8=REJECT, 192.0.2=DEFER, {unknown=554 5.7.0 who} }",
                 NULL, NULL, NULL, NULL);
    c.client_name = "name.example";
    c.client_addr = "2001:DB8::1";
    expect_reply(p, &c, 554, "5.7.1", "<name.example[2001:DB8::1]>: Client host rejected: Access denied");
    c.client_addr = "2001:db8:1::1";
    expect_reply(p, &c, 554, "5.7.1", "<name.example[2001:db8:1::1]>: Client host rejected: Access denied");
    c.client_addr = "2001:db9::1";
    expect_accept(p, &c);
    c.client_addr = "::ffff:192.0.2.77";
    expect_reply(p, &c, 450, "4.7.1", "<name.example[::ffff:192.0.2.77]>: Client host rejected: Access denied");
    c.client_name = NULL;
    c.client_addr = "198.51.100.1";
    expect_reply(p, &c, 554, "5.7.0", "<unknown[198.51.100.1]>: Client host rejected: who");
    smtpd_policy_free(p);
}

static void test_helo_access(void **state)
{
    (void)state;
    struct smtpd_policy_lists *p = parse_ok(NULL, "check_helo_access inline:{ example.test=REJECT }",
                                      NULL, NULL, NULL);
    struct smtpd_policy_ctx c = base_ctx();
    expect_accept(p, &c);
    c.helo = "HOST.Example.Test";
    expect_reply(p, &c, 554, "5.7.1", "<HOST.Example.Test>: Helo command rejected: Access denied");
    expect_decider(p, &c, "smtpd_helo_restrictions", "check_helo_access");
    c.helo = "example.test.";
    expect_decider(p, &c, "smtpd_helo_restrictions", "check_helo_access");
    c.helo = "notexample.test";
    expect_accept(p, &c);
    c.helo = NULL;
    expect_accept(p, &c);
    smtpd_policy_free(p);
}

/* Which key of an email address wins, by giving each key its own text. */
static void expect_sender_key(const char *table, const char *sender, const char *winner)
{
    char *list = xasprintf("check_sender_access %s", table);
    struct smtpd_policy_lists *p = parse_ok(NULL, NULL, list, NULL, NULL);
    struct smtpd_policy_ctx c = base_ctx();
    c.sender = sender;
    struct smtpd_policy_result r;
    int rc = smtpd_policy_check_rcpt(p, &c, &r);
    if (winner == NULL) {
        if (rc != 0)
            fail_msg("%s with %s: %s", sender, table, r.text);
    } else {
        char *want = xasprintf("<%s>: Sender address rejected: %s", sender, winner);
        if (rc != 550 || strcmp(r.text, want) != 0)
            fail_msg("%s with %s: got %d \"%s\", want \"%s\"", sender, table, rc, r.text, want);
        assert_string_equal(r.enh, "5.7.1");
        free(want);
    }
    smtpd_policy_free(p);
    free(list);
}

static void test_sender_access_order(void **state)
{
    (void)state;
    const char *all = "inline:{ {alice@remote.test=550 full}, {remote.test=550 domain}, "
                      "{test=550 parent}, {alice@=550 user} }";
    expect_sender_key(all, "alice@remote.test", "full");
    expect_sender_key(all, "ALICE@Remote.TEST", "full");
    expect_sender_key(all, "alice@remote.test.", "full");
    expect_sender_key(all, "bob@remote.test", "domain");
    expect_sender_key(all, "bob@sub.remote.test", "domain");
    expect_sender_key(all, "bob@other.test", "parent");
    expect_sender_key(all, "alice@other.example", "user");
    expect_sender_key(all, "bob@other.example", NULL);
    expect_sender_key("inline:{ {.remote.test=550 dot} }", "bob@sub.remote.test", NULL);
    expect_sender_key("inline:{ {alice@=550 user} }", "alice", "user");
    expect_sender_key("inline:{ {alice=550 bare} }", "alice", "bare");
    expect_sender_key("inline:{ {<>=550 null} }", "", "null");
    expect_sender_key("inline:{ {<>=550 null} }", "alice@remote.test", NULL);
    /* DUNNO stops the walk: shorter keys are not tried. */
    expect_sender_key("inline:{ {alice@remote.test=DUNNO}, {remote.test=550 domain} }",
                      "alice@remote.test", NULL);
    expect_sender_key("inline:{ {remote.test=dunno}, {alice@=550 user} }", "alice@remote.test", NULL);
    /* A quoted '@' is part of the local part. */
    expect_sender_key("inline:{ {other.test=550 wrong}, {remote.test=550 domain} }",
                      "\"x@other.test\"@remote.test", "domain");
    expect_sender_key("inline:{ {[192.0.2.1]=550 literal} }", "a@[192.0.2.1]", "literal");
}

/* Pattern tables see only the whole address or name, as in Postfix: no
 * domain, parent-domain, "user@" or shortened-address keys. Otherwise the
 * bare domain "remote.test" would not match /@remote\.test$/ and the
 * negated rule below would reject the domain's own senders. */
static void test_pattern_tables_whole_key(void **state)
{
    (void)state;
    char *path = write_tmp("sender.pcre",
                           "/^postmaster@/         550 no postmaster\n"
                           "!/@remote\\.test$/    550 outsider\n"
                           "/^remote\\.test$/     550 bare domain\n"
                           "/^alice@$/             550 user key\n");
    char *table = xasprintf("pcre:%s", path);
    expect_sender_key(table, "alice@remote.test", NULL);
    expect_sender_key(table, "bob@sub.remote.test", "outsider");
    expect_sender_key(table, "Postmaster@remote.test", "no postmaster");
    expect_sender_key(table, "bob@other.test", "outsider");
    expect_sender_key(table, "", "outsider"); /* the null sender's key is "<>" */
    free(table);
    free(path);

    path = write_tmp("client.regexp",
                     "/^192[.]0[.]2$/     REJECT shortened address\n"
                     "/^remote[.]test$/   REJECT parent domain\n"
                     "/^192[.]0[.]2[.]10$/ 550 whole address\n");
    char *list = xasprintf("check_client_access regexp:%s", path);
    struct smtpd_policy_lists *p = parse_ok(list, NULL, NULL, NULL, NULL);
    struct smtpd_policy_ctx c = base_ctx();
    expect_reply(p, &c, 550, "5.7.1", "<mail.remote.test[192.0.2.10]>: Client host rejected: whole address");
    c.client_addr = "192.0.2.11";
    expect_accept(p, &c);
    smtpd_policy_free(p);
    free(list);
    free(path);
}

static void test_recipient_access_texthash(void **state)
{
    (void)state;
    char *path = write_tmp("rcpt_access",
                           "# recipient access\n"
                           "bob@ourdomain.test    DUNNO\n"
                           "ourdomain.test        REJECT 5.7.2 closed\n"
                           "abuse@                OK\n"
                           "spam@ourdomain.test   DEFER 4.2.1 mailbox busy\n");
    char *list = xasprintf("check_recipient_access texthash:%s, reject_unauth_destination", path);
    struct smtpd_policy_lists *p = parse_ok(NULL, NULL, NULL, "", list);
    struct smtpd_policy_ctx c = base_ctx();
    expect_accept(p, &c);
    c.recipient = "eve@ourdomain.test";
    expect_reply(p, &c, 554, "5.7.2", "<eve@ourdomain.test>: Recipient address rejected: closed");
    struct smtpd_policy_result r;
    smtpd_policy_check_rcpt(p, &c, &r);
    assert_string_equal(r.list, "smtpd_recipient_restrictions");
    assert_string_equal(r.restriction, "check_recipient_access");
    char *spec = xasprintf("texthash:%s", path);
    assert_string_equal(r.table, spec);
    free(spec);
    c.recipient = "spam@ourdomain.test";
    expect_reply(p, &c, 450, "4.2.1", "<spam@ourdomain.test>: Recipient address rejected: mailbox busy");
    /* OK from an access table permits the list: even a remote recipient. */
    c.recipient = "abuse@other.test";
    expect_accept(p, &c);
    c.recipient = "x@other.test";
    expect_decider(p, &c, "smtpd_recipient_restrictions", "reject_unauth_destination");
    smtpd_policy_free(p);
    free(list);
    free(path);
}

static void test_access_results(void **state)
{
    (void)state;
    struct {
        const char *value;
        int code;          /* 0 = the table permitted, 1 = fell through to "reject" */
        const char *enh;
        const char *text;  /* after "<...>: Client host rejected: " unless starting with '=' */
    } cases[] = {
        {"OK", 0, NULL, NULL},
        {"ok whatever", 0, NULL, NULL},
        {"PERMIT", 0, NULL, NULL},
        {"1712345678", 0, NULL, NULL},
        {"450", 0, NULL, NULL},                  /* all-numerical means OK */
        {"DUNNO", 1, NULL, NULL},
        {"REJECT", 554, "5.7.1", "Access denied"},
        {"reject go away", 554, "5.7.1", "go away"},
        {"REJECT 5.7.2", 554, "5.7.2", "Access denied"},
        {"REJECT 4.7.2 class follows code", 554, "5.7.2", "class follows code"},
        {"REJECT 5.7.2x not a code", 554, "5.7.1", "5.7.2x not a code"},
        {"REJECT 5.1234.1 too long", 554, "5.7.1", "5.1234.1 too long"},
        {"DEFER", 450, "4.7.1", "Access denied"},
        {"DEFER later", 450, "4.7.1", "later"},
        {"450 busy", 450, "4.7.1", "busy"},
        {"553 5.7.3 no", 553, "5.7.3", "no"},
        {"550 4.1.1 mismatch", 550, "5.1.1", "mismatch"},
        {"421 4.7.0 closing", 421, "4.7.0", "closing"},
        {"WARN watch this", 1, NULL, NULL},
        {"HOLD", 451, "4.3.5", "=Server configuration error"},
        {"DISCARD bye", 451, "4.3.5", "=Server configuration error"},
        {"FILTER smtp:[127.0.0.1]:10025", 451, "4.3.5", "=Server configuration error"},
        {"bogus", 451, "4.3.5", "=Server configuration error"},
        {"350 odd", 451, "4.3.5", "=Server configuration error"},
        {"check_client_access inline:{x=OK}", 451, "4.3.5", "=Server configuration error"},
        {"reject_rbl_client zen.example", 451, "4.3.5", "=Server configuration error"},
        /* A restriction list as the value is applied in place. */
        {"permit_mynetworks reject", 554, "5.7.1", "Access denied"},
        {"permit_sasl_authenticated, defer", 450, "4.7.1", "Try again later"},
        {"reject_unauth_destination", 1, NULL, NULL},
        {"permit_auth_destination", 0, NULL, NULL},
    };
    struct smtpd_policy_ctx c = base_ctx();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *list = xasprintf("check_client_access inline:{ {192.0.2.10 = %s} }, reject",
                               cases[i].value);
        struct smtpd_policy_lists *p = parse_ok(list, NULL, NULL, NULL, NULL);
        struct smtpd_policy_result r;
        int rc = smtpd_policy_check_rcpt(p, &c, &r);
        if (cases[i].code == 0) {
            if (rc != 0)
                fail_msg("%s: got %d %s", cases[i].value, rc, r.text);
        } else if (cases[i].code == 1) {
            if (rc != 554 || strcmp(r.restriction, "reject") != 0)
                fail_msg("%s: expected to reach reject, got %d %s", cases[i].value, rc, r.text);
        } else {
            char *want = cases[i].text[0] == '='
                             ? xstrdup(cases[i].text + 1)
                             : xasprintf("<mail.remote.test[192.0.2.10]>: Client host rejected: %s",
                                         cases[i].text);
            if (rc != cases[i].code || strcmp(r.enh, cases[i].enh) != 0 || strcmp(r.text, want) != 0)
                fail_msg("%s: got %d %s \"%s\", want %d %s \"%s\"", cases[i].value, rc, r.enh,
                         r.text, cases[i].code, cases[i].enh, want);
            assert_string_equal(r.restriction, "check_client_access");
            free(want);
        }
        smtpd_policy_free(p);
        free(list);
    }
    assert_int_equal(tf_log_count("WARN: <mail.remote.test[192.0.2.10]>: watch this"), 1);
    assert_int_equal(tf_log_count("action HOLD is not supported yet"), 1);
    assert_int_equal(tf_log_count("unknown restriction bogus"), 1);
}

static void test_lookup_failure(void **state)
{
    (void)state;
    char *list = xasprintf("check_client_access texthash:%s/missing", tmpdir);
    struct smtpd_policy_lists *p = parse_ok(list, NULL, NULL, NULL, NULL);
    struct smtpd_policy_ctx c = base_ctx();
    expect_reply(p, &c, 451, "4.3.0", "<mail.remote.test[192.0.2.10]>: Temporary lookup failure");
    struct smtpd_policy_result r;
    smtpd_policy_check_rcpt(p, &c, &r);
    assert_string_equal(r.list, "smtpd_client_restrictions");
    assert_string_equal(r.restriction, "check_client_access");
    smtpd_policy_free(p);
    free(list);

    list = xasprintf("check_sender_access texthash:%s/missing", tmpdir);
    p = parse_ok(NULL, NULL, list, NULL, NULL);
    expect_reply(p, &c, 451, "4.3.0", "<alice@remote.test>: Temporary lookup failure");
    smtpd_policy_free(p);
    free(list);

    /* The file coming back heals the table without reparsing. */
    char *path = xasprintf("%s/healing", tmpdir);
    list = xasprintf("check_recipient_access texthash:%s", path);
    p = parse_ok(NULL, NULL, NULL, NULL, list);
    expect_reply(p, &c, 451, "4.3.0", "<bob@ourdomain.test>: Temporary lookup failure");
    free(write_tmp("healing", "bob@ourdomain.test REJECT gone\n"));
    expect_reply(p, &c, 554, "5.7.1", "<bob@ourdomain.test>: Recipient address rejected: gone");
    smtpd_policy_free(p);
    free(list);
    free(path);
}

static void test_long_text_is_cut_with_warning(void **state)
{
    (void)state;
    char longtext[700];
    memset(longtext, 'x', sizeof longtext - 1);
    longtext[sizeof longtext - 1] = 0;
    char *path = xasprintf("%s/long", tmpdir);
    char *data = xasprintf("192.0.2.10 REJECT %s\n", longtext);
    free(write_tmp("long", data));
    char *list = xasprintf("check_client_access texthash:%s", path);
    struct smtpd_policy_lists *p = parse_ok(list, NULL, NULL, NULL, NULL);
    struct smtpd_policy_ctx c = base_ctx();
    struct smtpd_policy_result r;
    assert_int_equal(smtpd_policy_check_rcpt(p, &c, &r), 554);
    assert_int_equal(strlen(r.text), POLICY_TEXT_MAX);
    assert_true(strncmp(r.text, "<mail.remote.test[192.0.2.10]>: Client host rejected: xxx", 57) == 0);
    assert_int_equal(tf_log_count("reply text cut to 480 characters"), 1);
    smtpd_policy_free(p);
    free(list);
    free(data);
    free(path);
}

/* ---------- the open-relay battery ---------- */

struct qmgr_relay_case {
    const char *rcpt;
    int local;              /* 1: must be treated as ours (not relayed) */
    const char *domain;     /* what is_local_domain must be asked; NULL: not asked */
};

static void run_relay_battery(const char *relay, const char *rcpt_list, int reject_code)
{
    static const struct qmgr_relay_case cases[] = {
        {"bob@ourdomain.test", 1, "ourdomain.test"},
        {"user%other.test@ourdomain.test", 1, "ourdomain.test"},
        {"\"user@other.test\"@ourdomain.test", 1, "ourdomain.test"},
        {"other.test!user@ourdomain.test", 1, "ourdomain.test"},
        {"\"a\\\"@other.test\"@ourdomain.test", 1, "ourdomain.test"},
        {"user@OURDOMAIN.TEST", 1, "ourdomain.test"},
        {"user@ourdomain.test.", 1, "ourdomain.test"},
        {"user@[192.0.2.99]", 1, "[192.0.2.99]"},
        {"user@[IPv6:2001:DB8::99]", 1, "[ipv6:2001:db8::99]"},
        {"postmaster", 1, NULL},
        {"user@other.test", 0, "other.test"},
        {"user%ourdomain.test@other.test", 0, "other.test"},
        {"\"user@ourdomain.test\"@other.test", 0, "other.test"},
        {"ourdomain.test!user@other.test", 0, "other.test"},
        {"user@ourdomain.test@other.test", 0, "other.test"},
        {"user@ourdomain.test..", 0, "ourdomain.test.."},
        {"user@ourdomain.test.other.test", 0, "ourdomain.test.other.test"},
        {"user@sub.ourdomain.test", 0, "sub.ourdomain.test"},
        {"user@[192.0.2.1]", 0, "[192.0.2.1]"},
        {"\"user@ourdomain.test", 0, NULL},   /* unterminated quote: not ours */
        {"\"user\"@ourdomain.test\"", 0, NULL},
        {"user@", 0, NULL},
        {"user@.", 0, NULL},
    };
    struct smtpd_policy_lists *p = parse_ok(NULL, NULL, NULL, relay, rcpt_list);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct smtpd_policy_ctx c = base_ctx();
        c.recipient = cases[i].rcpt;
        struct smtpd_policy_result r;
        int rc = smtpd_policy_check_rcpt(p, &c, &r);
        if (cases[i].local && rc != 0)
            fail_msg("%s: not accepted as local: %d %s", cases[i].rcpt, rc, r.text);
        if (!cases[i].local) {
            if (rc != reject_code)
                fail_msg("%s: relayed (got %d, want %d)", cases[i].rcpt, rc, reject_code);
            char *want = xasprintf("<%s>: Relay access denied", cases[i].rcpt);
            assert_string_equal(r.text, want);
            free(want);
        }
        if (cases[i].domain == NULL) {
            if (fk.domain_calls != 0)
                fail_msg("%s: is_local_domain asked about \"%s\"", cases[i].rcpt, fk.last_domain);
        } else {
            /* Asked once per RCPT, however many restrictions need it. */
            assert_int_equal(fk.domain_calls, 1);
            if (strcmp(fk.last_domain, cases[i].domain) != 0)
                fail_msg("%s: asked about \"%s\", want \"%s\"", cases[i].rcpt, fk.last_domain,
                         cases[i].domain);
        }
    }
    smtpd_policy_free(p);
}

static void test_open_relay_battery(void **state)
{
    (void)state;
    run_relay_battery(NULL, NULL, 454);
    run_relay_battery("", "permit_mynetworks, reject_unauth_destination", 554);
    run_relay_battery("permit_sasl_authenticated, reject_unauth_destination",
                      "reject_unauth_destination, permit", 554);
}

static void test_relay_without_callbacks(void **state)
{
    (void)state;
    struct smtpd_policy_lists *p = parse_ok(NULL, NULL, NULL, NULL, NULL);
    struct smtpd_policy_ctx c = base_ctx();
    c.is_local_domain = NULL;
    c.is_relay_domain = NULL;
    expect_reply(p, &c, 454, "4.7.1", "<bob@ourdomain.test>: Relay access denied");
    c.recipient = "postmaster";
    expect_accept(p, &c);
    smtpd_policy_free(p);
}

/* Tricks behind reject_unlisted_recipient: the whole address goes to the
 * callback, the domain decides which table is meant. */
static void test_unlisted_with_tricks(void **state)
{
    (void)state;
    struct smtpd_policy_lists *p = parse_ok(NULL, NULL, NULL, NULL, "reject_unlisted_recipient");
    struct smtpd_policy_ctx c = base_ctx();
    c.recipient = "other.test!user@ourdomain.test";
    expect_reply(p, &c, 550, "5.1.1",
                 "<other.test!user@ourdomain.test>: Recipient address rejected: User unknown in local recipient table");
    assert_string_equal(fk.last_rcpt, "other.test!user@ourdomain.test");
    c.recipient = "user%other.test@ourdomain.test";
    expect_reply(p, &c, 550, "5.1.1",
                 "<user%other.test@ourdomain.test>: Recipient address rejected: User unknown in local recipient table");
    smtpd_policy_free(p);
}

/* ---------- parse errors and ignored restrictions ---------- */

static void test_parse_errors(void **state)
{
    (void)state;
    parse_fails(NULL, NULL, NULL, NULL, "permit_mynetworks, foo, reject",
                "smtpd_recipient_restrictions: unknown restriction foo");
    parse_fails("permit_mynetwork", NULL, NULL, NULL, NULL,
                "smtpd_client_restrictions: unknown restriction permit_mynetwork");
    parse_fails(NULL, NULL, NULL, "reject_unauth_destination hash:/x", NULL,
                "smtpd_relay_restrictions: unknown restriction hash:/x");
    parse_fails(NULL, "check_helo_access", NULL, NULL, NULL,
                "smtpd_helo_restrictions: check_helo_access needs a type:name table");
    parse_fails(NULL, NULL, "reject_rbl_client", NULL, NULL,
                "smtpd_sender_restrictions: reject_rbl_client needs an argument");
    parse_fails("check_client_access ldap:/etc/x", NULL, NULL, NULL, NULL,
                "smtpd_client_restrictions: check_client_access ldap:/etc/x: ");
    parse_fails("check_client_access nosuchtype", NULL, NULL, NULL, NULL,
                "smtpd_client_restrictions: check_client_access nosuchtype: ");
    parse_fails("check_client_access inline:{a=b", NULL, NULL, NULL, NULL,
                "smtpd_client_restrictions: missing '}' in \"check_client_access inline:{a=b\"");
    parse_fails("reject }", NULL, NULL, NULL, NULL,
                "smtpd_client_restrictions: unexpected '}'");
    /* The first error is reported and tables opened so far are closed. */
    parse_fails("check_client_access inline:{a=OK}", "check_helo_access inline:{b=OK}",
                "nope", NULL, NULL, "smtpd_sender_restrictions: unknown restriction nope");
}

static void test_ignored_restrictions(void **state)
{
    (void)state;
    struct smtpd_policy_lists *p = parse_ok(
        "reject_rbl_client zen.example.org, reject_unknown_client_hostname", NULL,
        "reject_unknown_sender_domain, check_policy_service inet:127.0.0.1:10023", NULL,
        "reject_rhsbl_sender dbl.example, reject_unauth_pipelining, reject_unauth_destination");
    /* reject_rbl_client and reject_unknown_sender_domain are real now (their
     * DNS answers come from the caller): no warning, and without answers
     * (no callbacks) they do nothing */
    assert_int_equal(tf_log_count("reject_rbl_client is not supported yet"), 0);
    assert_int_equal(tf_log_count("reject_unknown_sender_domain is not supported yet"), 0);
    assert_int_equal(tf_log_count("check_policy_service is not supported yet"), 1);
    assert_int_equal(tf_log_count("is not supported yet"), 4);
    struct smtpd_policy_ctx c = base_ctx();
    expect_accept(p, &c);
    c.recipient = "x@other.test";
    expect_decider(p, &c, "smtpd_relay_restrictions", "defer_unauth_destination");
    smtpd_policy_free(p);
}

/* ---------- DNS-based restrictions, with the caller's answers ---------- */

static int g_listed, g_sender_domain;

static int fake_rbl(void *arg, const char *zone, const char **text)
{
    (void)arg;
    *text = strcmp(zone, "zen.example") == 0 ? "spam source" : NULL;
    return g_listed && strcmp(zone, "zen.example") == 0;
}

static int fake_sender_domain(void *arg)
{
    (void)arg;
    return g_sender_domain;
}

static void test_dns_restrictions(void **state)
{
    (void)state;
    struct smtpd_policy_lists *p = parse_ok("reject_rbl_client zen.example, reject_rbl_client other.example", NULL,
                                      "reject_unknown_sender_domain", NULL, NULL);
    const char *zones[4];
    assert_int_equal(smtpd_policy_rbl_zones(p, zones, 4), 2);
    assert_string_equal(zones[0], "zen.example");
    assert_int_equal(smtpd_policy_checks_sender_domain(p), 1);
    struct smtpd_policy_ctx c = base_ctx();
    c.rbl_listed = fake_rbl;
    c.sender_domain = fake_sender_domain;
    struct smtpd_policy_result r;
    g_listed = 1;
    assert_int_equal(smtpd_policy_check_rcpt(p, &c, &r), 554);
    assert_string_equal(r.enh, "5.7.1");
    assert_string_equal(r.text, "Service unavailable; Client host [192.0.2.10] blocked using zen.example; spam source");
    g_listed = 0;
    g_sender_domain = 1;
    assert_int_equal(smtpd_policy_check_rcpt(p, &c, &r), 450);
    assert_string_equal(r.text, "<alice@remote.test>: Sender address rejected: Domain not found");
    g_sender_domain = 2;
    assert_int_equal(smtpd_policy_check_rcpt(p, &c, &r), 550);
    assert_string_equal(r.enh, "5.7.27");
    g_sender_domain = -1;
    assert_int_equal(smtpd_policy_check_rcpt(p, &c, &r), 451);
    g_sender_domain = 0;
    assert_int_equal(smtpd_policy_check_rcpt(p, &c, &r), 0);
    c.sender = "";                    /* the null sender has no domain */
    g_sender_domain = 1;
    assert_int_equal(smtpd_policy_check_rcpt(p, &c, &r), 0);
    smtpd_policy_free(p);
    parse_fails("reject_rbl_client a.example reject_rbl_client b.example reject_rbl_client c.example "
                "reject_rbl_client d.example reject_rbl_client e.example reject_rbl_client f.example "
                "reject_rbl_client g.example reject_rbl_client h.example reject_rbl_client i.example",
                NULL, NULL, NULL, NULL, "more than 8 reject_rbl_client zones");
    p = parse_ok(NULL, NULL, NULL, NULL, NULL);
    assert_int_equal(smtpd_policy_rbl_zones(p, zones, 4), 0);
    assert_int_equal(smtpd_policy_checks_sender_domain(p), 0);
    smtpd_policy_free(p);
}

/* ---------- mail authentication ---------- */

static int spf_answer;
static const char *spf_text;
static int fake_spf(void *arg, const char **text)
{
    (void)arg;
    *text = spf_text;
    return spf_answer;
}

static int dmarc_answer;
static int fake_dmarc(void *arg, const char **text)
{
    (void)arg;
    *text = "DMARC policy of strict.test is reject";
    return dmarc_answer;
}

static void test_spf_restrictions(void **state)
{
    (void)state;
    struct smtpd_policy_lists *p = parse_ok(NULL, NULL, "reject_spf_fail, defer_spf_temperror", NULL, NULL);
    assert_true(smtpd_policy_checks_spf(p));
    assert_false(smtpd_policy_has_end_of_data(p));
    struct smtpd_policy_ctx c = base_ctx();
    /* without the callback, or before SPF ran, they do nothing */
    expect_accept(p, &c);
    c.spf_result = fake_spf;
    spf_answer = POLICY_SPF_UNKNOWN;
    expect_accept(p, &c);
    spf_answer = POLICY_SPF_OTHER;
    expect_accept(p, &c);
    spf_answer = POLICY_SPF_FAIL;
    spf_text = "192.0.2.10 is not one of remote.test's designated mail servers";
    expect_reply(p, &c, 550, "5.7.23",
                 "<alice@remote.test>: Sender address rejected: SPF check failed: "
                 "192.0.2.10 is not one of remote.test's designated mail servers");
    spf_answer = POLICY_SPF_TEMPERROR;
    spf_text = NULL;
    expect_reply(p, &c, 451, "4.7.24", "<alice@remote.test>: Sender address rejected: SPF temporary error");
    /* first match wins: a permit before them lets the client through */
    smtpd_policy_free(p);
    p = parse_ok(NULL, NULL, "permit_mynetworks, reject_spf_fail", NULL, NULL);
    c.mynetworks = 1;
    spf_answer = POLICY_SPF_FAIL;
    expect_accept(p, &c);
    smtpd_policy_free(p);
    p = parse_ok(NULL, NULL, NULL, NULL, NULL);
    assert_false(smtpd_policy_checks_spf(p));
    smtpd_policy_free(p);
}

static void test_end_of_data_restrictions(void **state)
{
    (void)state;
    char *err = NULL;
    /* reject_dmarc_policy only at the end of the data; recipient-based
     * restrictions never there */
    assert_null(smtpd_policy_parse(NULL, NULL, "reject_dmarc_policy", NULL, NULL, NULL, &err));
    assert_string_equal(err, "smtpd_sender_restrictions: reject_dmarc_policy belongs in smtpd_end_of_data_restrictions");
    free(err);
    assert_null(smtpd_policy_parse(NULL, NULL, NULL, NULL, NULL, "reject_unauth_destination", &err));
    assert_string_equal(err, "smtpd_end_of_data_restrictions: reject_unauth_destination needs a recipient: "
                             "it belongs in the RCPT lists");
    free(err);
    struct smtpd_policy_lists *p =
        smtpd_policy_parse(NULL, NULL, NULL, NULL, NULL, "permit_mynetworks, reject_dmarc_policy", &err);
    assert_non_null(p);
    assert_true(smtpd_policy_has_end_of_data(p));
    assert_false(smtpd_policy_checks_spf(p));
    struct smtpd_policy_ctx c = base_ctx();
    c.recipient = NULL;
    c.dmarc_policy = fake_dmarc;
    struct smtpd_policy_result r;
    dmarc_answer = POLICY_DMARC_NONE;
    assert_int_equal(smtpd_policy_check_end_of_data(p, &c, &r), 0);
    assert_int_equal(r.hold, 0);
    dmarc_answer = POLICY_DMARC_REJECT;
    assert_int_equal(smtpd_policy_check_end_of_data(p, &c, &r), 550);
    assert_string_equal(r.enh, "5.7.1");
    assert_string_equal(r.text, "Message rejected: DMARC policy of strict.test is reject");
    assert_string_equal(r.restriction, "reject_dmarc_policy");
    dmarc_answer = POLICY_DMARC_HOLD;
    assert_int_equal(smtpd_policy_check_end_of_data(p, &c, &r), 0);
    assert_int_equal(r.hold, 1);
    assert_string_equal(r.text, "DMARC policy of strict.test is reject");
    smtpd_policy_free(p);
    /* a recipient restriction reached through an access table's result at
     * the end of the data (found by review: a NULL recipient crashed smtpd)
     * is a configuration error */
    p = smtpd_policy_parse(NULL, NULL, NULL, NULL, NULL,
                           "check_client_access inline:{192.0.2.10=reject_non_fqdn_recipient}", &err);
    assert_non_null(p);
    c.mynetworks = 0;
    assert_int_equal(smtpd_policy_check_end_of_data(p, &c, &r), 451);
    assert_string_equal(r.enh, "4.3.5");
    smtpd_policy_free(p);
    p = smtpd_policy_parse(NULL, NULL, NULL, NULL, NULL, "check_client_access inline:{192.0.2.10=permit_auth_destination}",
                           &err);
    assert_non_null(p);
    assert_int_equal(smtpd_policy_check_end_of_data(p, &c, &r), 451);
    smtpd_policy_free(p);
    p = smtpd_policy_parse(NULL, NULL, NULL, NULL, NULL, "permit_mynetworks, reject_dmarc_policy", &err);
    /* the RCPT lists never run the end-of-data list */
    c.recipient = "bob@ourdomain.test";
    dmarc_answer = POLICY_DMARC_REJECT;
    expect_accept(p, &c);
    c.mynetworks = 1;
    assert_int_equal(smtpd_policy_check_end_of_data(p, &c, &r), 0);
    assert_int_equal(r.hold, 0);
    smtpd_policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_default_relay_list, setup_one),
        cmocka_unit_test_setup(test_open_relay_guard, setup_one),
        cmocka_unit_test_setup(test_permit_ends_only_its_list, setup_one),
        cmocka_unit_test_setup(test_dunno_goes_on, setup_one),
        cmocka_unit_test_setup(test_list_order, setup_one),
        cmocka_unit_test_setup(test_separators_and_case, setup_one),
        cmocka_unit_test_setup(test_reject_unlisted_recipient, setup_one),
        cmocka_unit_test_setup(test_unlisted_reply_codes, setup_one),
        cmocka_unit_test_setup(test_reject_unlisted_sender, setup_one),
        cmocka_unit_test_setup(test_permit_auth_destination, setup_one),
        cmocka_unit_test_setup(test_domain_lookup_failure_defers, setup_one),
        cmocka_unit_test_setup(test_helo_non_fqdn, setup_one),
        cmocka_unit_test_setup(test_helo_invalid, setup_one),
        cmocka_unit_test_setup(test_non_fqdn_addresses, setup_one),
        cmocka_unit_test_setup(test_client_access_keys, setup_one),
        cmocka_unit_test_setup(test_helo_access, setup_one),
        cmocka_unit_test_setup(test_sender_access_order, setup_one),
        cmocka_unit_test_setup(test_pattern_tables_whole_key, setup_one),
        cmocka_unit_test_setup(test_recipient_access_texthash, setup_one),
        cmocka_unit_test_setup(test_access_results, setup_one),
        cmocka_unit_test_setup(test_lookup_failure, setup_one),
        cmocka_unit_test_setup(test_long_text_is_cut_with_warning, setup_one),
        cmocka_unit_test_setup(test_open_relay_battery, setup_one),
        cmocka_unit_test_setup(test_relay_without_callbacks, setup_one),
        cmocka_unit_test_setup(test_unlisted_with_tricks, setup_one),
        cmocka_unit_test_setup(test_parse_errors, setup_one),
        cmocka_unit_test_setup(test_ignored_restrictions, setup_one),
        cmocka_unit_test_setup(test_dns_restrictions, setup_one),
        cmocka_unit_test_setup(test_spf_restrictions, setup_one),
        cmocka_unit_test_setup(test_end_of_data_restrictions, setup_one),
    };
    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
