"""The SMTP server as a client sees it: commands, replies with their
enhanced status codes, address syntax, recipient policy, the header
completion and Received: field, the log lines. Content handling (DATA,
BDAT, smuggling, pipelining) is in test_smtp_content.py, limits and load
in test_smtp_limits.py."""
import re
import subprocess
import time

import pytest

from conftest import raw_session, settle_queue
from conftest import smtp_greeted as greeted, smtp_queue_id as queue_id, smtp_send_data as send_data

NO_SUCH_USER = "nosuchuser-tern-test"


@pytest.fixture(autouse=True)
def _settle(tern_instance):
    """Lets queued deliveries finish before the fixture stops tern."""
    yield
    settle_queue(tern_instance)


def wait_empty(directory, timeout=5.0):
    deadline = time.time() + timeout
    while list(directory.iterdir()) and time.time() < deadline:
        time.sleep(0.05)
    return list(directory.iterdir()) == []


def one_message(inst, user):
    msgs = inst.wait_messages(user)
    assert len(msgs) == 1, msgs
    return msgs[0].read_bytes()


def split_message(raw: bytes):
    head, _, body = raw.partition(b"\n\n")
    return head.decode(errors="replace"), body


# ---------------------------------------------------------------------------
# greeting, EHLO, HELO and the simple commands

EHLO_LINES = ["250-mail.example.test", "250-PIPELINING", "250-SIZE 10240000",
              "250-ENHANCEDSTATUSCODES", "250-8BITMIME", "250-DSN", "250-SMTPUTF8", "250 CHUNKING"]


def test_greeting_and_ehlo_keywords(tern):
    s = raw_session(tern)
    assert s.read_reply() == (220, "220 mail.example.test ESMTP Tern")
    code, text = s.cmd("EHLO client.example")
    assert code == 250
    assert text.split("\n") == EHLO_LINES
    # not offered yet: TLS, AUTH; VRFY only when enabled
    for kw in ("STARTTLS", "AUTH", "VRFY", "BINARYMIME"):
        assert kw not in text
    assert s.cmd("QUIT") == (221, "221 2.0.0 Bye")


def test_ehlo_follows_configuration(tern_instance):
    tern_instance.write_config(message_size_limit="5000", smtputf8_enable="no")
    tern_instance.start()
    s = greeted(tern_instance, ehlo=None)
    code, text = s.cmd("EHLO client.example")
    assert text.split("\n") == ["250-mail.example.test", "250-PIPELINING", "250-SIZE 5000",
                                "250-ENHANCEDSTATUSCODES", "250-8BITMIME", "250-DSN", "250 CHUNKING"]
    # what is not advertised is not accepted
    assert s.cmd("MAIL FROM:<a@example.org> SMTPUTF8") == (555, "555 5.5.4 Unsupported option: SMTPUTF8")
    assert s.cmd("MAIL FROM:<j\u00f6@example.org>") == (
        553, "553 5.6.7 Non-ASCII address: SMTPUTF8 is required")


def test_helo_gives_plain_smtp(tern):
    s = greeted(tern, ehlo=None)
    assert s.cmd("HELO client.example") == (250, "250 mail.example.test")
    # no ESMTP after HELO: parameters and BDAT are refused
    assert s.cmd("MAIL FROM:<a@example.org> SIZE=10") == (555, "555 5.5.4 Unsupported option: SIZE")
    assert s.cmd("MAIL FROM:<a@example.org> BODY=8BITMIME") == (555, "555 5.5.4 Unsupported option: BODY")
    assert s.cmd("MAIL FROM:<a@example.org>") == (250, "250 2.1.0 Ok")
    assert s.cmd("RCPT TO:<you@localhost>") == (250, "250 2.1.5 Ok")
    s.send(b"BDAT 4 LAST\r\nabcd")
    assert s.read_reply() == (503, "503 5.5.1 Error: send EHLO first")
    # the refused chunk was consumed and the transaction is intact
    code, text = send_data(s, b"Subject: helo\r\n\r\nplain\r\n")
    qid = queue_id(text)
    head, body = split_message(one_message(tern, "you"))
    assert f"Received: from client.example (localhost [127.0.0.1])\n\tby mail.example.test (Tern) with SMTP id {qid}\n\tfor <you@localhost>;" in head
    assert body == b"plain\n"


@pytest.mark.parametrize("cmd", ["EHLO", "HELO", "EHLO ", "HELO   "])
def test_helo_ehlo_need_a_name(tern, cmd):
    s = greeted(tern, ehlo=None)
    assert s.cmd(cmd) == (501, f"501 5.5.4 Syntax: {cmd.strip()} hostname")
    # still not greeted
    assert s.cmd("MAIL FROM:<a@example.org>") == (503, "503 5.5.1 Error: send HELO/EHLO first")


def test_simple_commands(tern):
    s = greeted(tern)
    assert s.cmd("NOOP") == (250, "250 2.0.0 Ok")
    assert s.cmd("noop with arguments") == (250, "250 2.0.0 Ok")
    assert s.cmd("RSET") == (250, "250 2.0.0 Ok")
    assert s.cmd("HELP") == (214, "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY EXPN HELP")
    assert s.cmd("QUIT") == (221, "221 2.0.0 Bye")
    assert s.read_all(timeout=5) == ""  # and the server closed the connection


def test_commands_are_case_insensitive(tern):
    s = greeted(tern, ehlo=None)
    assert s.cmd("ehlo client.example")[0] == 250
    assert s.cmd("mail from:<a@example.org>") == (250, "250 2.1.0 Ok")
    assert s.cmd("rcpt to:<you@localhost>") == (250, "250 2.1.5 Ok")
    assert s.cmd("Rset") == (250, "250 2.0.0 Ok")


def test_rset_clears_the_transaction(tern):
    s = greeted(tern)
    assert s.cmd("MAIL FROM:<a@example.org>")[0] == 250
    assert s.cmd("RCPT TO:<first@localhost>")[0] == 250
    assert s.cmd("RSET") == (250, "250 2.0.0 Ok")
    assert s.cmd("RCPT TO:<you@localhost>") == (503, "503 5.5.1 Error: need MAIL command")
    assert s.cmd("DATA") == (503, "503 5.5.1 Error: need MAIL command")
    assert s.cmd("MAIL FROM:<b@example.org>") == (250, "250 2.1.0 Ok")
    assert s.cmd("RCPT TO:<you@localhost>")[0] == 250
    queue_id(send_data(s, b"Subject: after rset\r\n\r\nx\r\n")[1])
    raw = one_message(tern, "you")
    assert raw.startswith(b"Return-Path: <b@example.org>\n")
    assert tern.messages("first") == []


def test_ehlo_again_resets_the_transaction(tern):
    s = greeted(tern)
    assert s.cmd("MAIL FROM:<a@example.org>")[0] == 250
    assert s.cmd("EHLO again.example")[0] == 250
    assert s.cmd("RCPT TO:<you@localhost>") == (503, "503 5.5.1 Error: need MAIL command")


def test_vrfy_and_expn_default_252(tern):
    s = greeted(tern)
    want = (252, "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery")
    assert s.cmd("VRFY you") == want
    assert s.cmd(f"VRFY <{NO_SUCH_USER}@localhost>") == want
    assert s.cmd("EXPN staff") == want
    assert s.cmd("VRFY") == (501, "501 5.5.4 Syntax: VRFY address")


def test_vrfy_enabled_checks_local_users(tern_instance):
    tern_instance.write_config(disable_vrfy_command="no", local_mailbox_base="")
    tern_instance.start()
    s = greeted(tern_instance, ehlo=None)
    assert "\n250-VRFY\n" in s.cmd("EHLO client.example")[1]
    # mail_owner 'tern' is a system user
    assert s.cmd("VRFY tern") == (250, "250 2.0.0 <tern>")
    assert s.cmd("VRFY <root@localhost>") == (250, "250 2.0.0 <root@localhost>")
    assert s.cmd(f"VRFY {NO_SUCH_USER}@localhost") == (
        550, f"550 5.1.1 <{NO_SUCH_USER}@localhost>: Recipient address rejected: User unknown in local recipient table")
    assert s.cmd("VRFY someone@example.org") == (
        252, "252 2.0.0 <someone@example.org>: not a local address, will attempt delivery")
    # EXPN stays disabled (disable_expn_command = yes)
    assert s.cmd("EXPN tern")[0] == 252


def test_unknown_command(tern):
    s = greeted(tern)
    assert s.cmd("FOO bar") == (500, "500 5.5.2 Error: command not recognized")
    assert s.cmd("MAILFROM:<a@example.org>") == (500, "500 5.5.2 Error: command not recognized")
    assert s.cmd("") == (500, "500 5.5.2 Error: command not recognized")
    s.send(b"NO\x00OP\r\n")
    assert s.read_reply() == (500, "500 5.5.2 Error: bad syntax")
    assert s.cmd("NOOP") == (250, "250 2.0.0 Ok")
    assert s.cmd("QUIT")[0] == 221
    s.read_all()
    tern.wait_log("disconnect from localhost[127.0.0.1] ehlo=1 noop=1 quit=1 unknown=0/4 commands=3/7")


def test_starttls_and_auth_not_offered(tern):
    """Without a certificate and with AUTH off (the defaults)."""
    s = greeted(tern)
    assert s.cmd("STARTTLS") == (502, "502 5.5.1 Error: command not implemented")
    assert s.cmd("AUTH PLAIN AGZvbwBiYXI=") == (503, "503 5.5.1 Error: authentication not enabled")
    assert s.cmd("NOOP")[0] == 250


# ---------------------------------------------------------------------------
# sequence and syntax errors

def test_sequence_errors(tern):
    s = greeted(tern, ehlo=None)
    assert s.cmd("MAIL FROM:<a@example.org>") == (503, "503 5.5.1 Error: send HELO/EHLO first")
    assert s.cmd("EHLO client.example")[0] == 250
    assert s.cmd("RCPT TO:<you@localhost>") == (503, "503 5.5.1 Error: need MAIL command")
    assert s.cmd("DATA") == (503, "503 5.5.1 Error: need MAIL command")
    assert s.cmd("MAIL FROM:<a@example.org>") == (250, "250 2.1.0 Ok")
    assert s.cmd("MAIL FROM:<a@example.org>") == (503, "503 5.5.1 Error: nested MAIL command")
    assert s.cmd("DATA") == (503, "503 5.5.1 Error: need RCPT command")
    assert s.cmd("RCPT TO:<you@localhost>") == (250, "250 2.1.5 Ok")
    assert s.cmd("DATA extra") == (501, "501 5.5.4 Syntax: DATA")
    queue_id(send_data(s, b"Subject: seq\r\n\r\nok\r\n")[1])
    # after the message the transaction is over
    assert s.cmd("RCPT TO:<you@localhost>") == (503, "503 5.5.1 Error: need MAIL command")
    assert s.cmd("QUIT")[0] == 221
    s.read_all()
    tern.wait_log("disconnect from localhost[127.0.0.1] ehlo=1 mail=1/3 rcpt=1/3 data=1/4 quit=1 commands=5/12")


@pytest.mark.parametrize("line,reply", [
    ("MAIL", "501 5.5.4 Syntax: MAIL FROM:<address>"),
    ("MAIL TO:<a@example.org>", "501 5.5.4 Syntax: MAIL FROM:<address>"),
    ("MAIL FROM:", "501 5.1.7 Bad sender address syntax"),
    ("MAIL FROM:<a@@example.org>", "501 5.1.7 Bad sender address syntax"),
    ("MAIL FROM:<a@example.org", "501 5.1.7 Bad sender address syntax"),
    ("MAIL FROM:<a.@example.org>", "501 5.1.7 Bad sender address syntax"),
    ("MAIL FROM:<a b@example.org>", "501 5.1.7 Bad sender address syntax"),
    ("MAIL FROM:<a@-example.org>", "501 5.1.7 Bad sender address syntax"),
    ("MAIL FROM:<a@example..org>", "501 5.1.7 Bad sender address syntax"),
    ("MAIL FROM:<postmaster>", "501 5.1.7 Bad sender address syntax"),
    ("MAIL FROM:<a@example.org>x", "501 5.1.7 Bad sender address syntax"),
    ("MAIL FROM:a@example.org SIZE=10", "501 5.1.7 Bad sender address syntax"),
    ("MAIL FROM:<a@[192.0.2.300]>", "501 5.1.7 Bad sender address syntax"),
    ("MAIL FROM:<a@[1.2.3]>", "501 5.1.7 Bad sender address syntax"),
    ("MAIL FROM:<a@example.org> SIZE=abc", "501 5.5.4 Bad SIZE parameter syntax"),
    ("MAIL FROM:<a@example.org> SIZE=", "501 5.5.4 Bad SIZE parameter syntax"),
    ("MAIL FROM:<a@example.org> SIZE=1 SIZE=2", "501 5.5.4 Bad SIZE parameter syntax"),
    ("MAIL FROM:<a@example.org> BODY=9BIT", "501 5.5.4 Bad BODY parameter syntax"),
    ("MAIL FROM:<a@example.org> SMTPUTF8=yes", "501 5.5.4 Bad SMTPUTF8 parameter syntax"),
    ("MAIL FROM:<a@example.org> =x", "501 5.5.4 Bad parameter syntax"),
    ("MAIL FROM:<a@example.org> FOO=bar", "555 5.5.4 Unsupported option: FOO"),
    ("MAIL FROM:<a@example.org> RET=SOME", "501 5.5.4 Bad RET parameter syntax"),
    ("MAIL FROM:<a@example.org> AUTH=<>", "555 5.5.4 Unsupported option: AUTH"),
    ("MAIL FROM:<a@example.org> BODY=BINARYMIME", "555 5.5.4 Unsupported option: BODY=BINARYMIME"),
    ("MAIL FROM:<a@example.org> SIZE=10240001", "552 5.3.4 Message size exceeds fixed limit"),
    ("MAIL FROM:<a@example.org> SIZE=99999999999999999999", "552 5.3.4 Message size exceeds fixed limit"),
])
def test_mail_syntax_errors(tern, line, reply):
    s = greeted(tern)
    assert s.cmd(line) == (int(reply[:3]), reply)
    # nothing was started: a proper MAIL is accepted afterwards
    assert s.cmd("MAIL FROM:<a@example.org>") == (250, "250 2.1.0 Ok")


@pytest.mark.parametrize("line,reply", [
    ("RCPT", "501 5.5.4 Syntax: RCPT TO:<address>"),
    ("RCPT FROM:<you@localhost>", "501 5.5.4 Syntax: RCPT TO:<address>"),
    ("RCPT TO:", "501 5.1.3 Bad recipient address syntax"),
    ("RCPT TO:<>", "501 5.1.3 Bad recipient address syntax"),
    ("RCPT TO:<you@>", "501 5.1.3 Bad recipient address syntax"),
    ("RCPT TO:<you@localhost", "501 5.1.3 Bad recipient address syntax"),
    ("RCPT TO:<you>", "501 5.1.3 Bad recipient address syntax"),
    ("RCPT TO:<\"unterminated@localhost>", "501 5.1.3 Bad recipient address syntax"),
    ("RCPT TO:<you@[IPv6:2001:db8::g]>", "501 5.1.3 Bad recipient address syntax"),
    ("RCPT TO:<@bad_route:you@localhost>", "501 5.1.3 Bad recipient address syntax"),
    ("RCPT TO:you@localhost NOTIFY=NEVER", "501 5.1.3 Bad recipient address syntax"),
    ("RCPT TO:<you@localhost> FOO=bar", "555 5.5.4 Unsupported option: FOO"),
    ("RCPT TO:<you@localhost> NOTIFY=NEVER,SUCCESS", "501 5.5.4 Bad NOTIFY parameter syntax"),
    ("RCPT TO:<you@localhost> ORCPT=you@localhost", "501 5.5.4 Bad ORCPT parameter syntax"),
])
def test_rcpt_syntax_errors(tern, line, reply):
    s = greeted(tern)
    assert s.cmd("MAIL FROM:<a@example.org>")[0] == 250
    assert s.cmd(line) == (int(reply[:3]), reply)
    assert s.cmd("DATA") == (503, "503 5.5.1 Error: need RCPT command")
    assert s.cmd("RCPT TO:<you@localhost>") == (250, "250 2.1.5 Ok")


def test_size_at_the_limit_is_accepted(tern):
    s = greeted(tern)
    assert s.cmd("MAIL FROM:<a@example.org> SIZE=10240000") == (250, "250 2.1.0 Ok")


# ---------------------------------------------------------------------------
# addresses (RFC 5321 4.1.2)

def deliver_one(inst, mail_from, rcpts, content=b"Subject: addr\r\n\r\nbody\r\n", ehlo="client.example",
                source=None):
    s = greeted(inst, ehlo=ehlo, source=source)
    code, text = s.cmd(f"MAIL FROM:{mail_from}")
    assert code == 250, text
    for r in rcpts:
        code, text = s.cmd(f"RCPT TO:{r}")
        assert code == 250, (r, text)
    qid = queue_id(send_data(s, content)[1])
    assert s.cmd("QUIT")[0] == 221
    s.close()
    return qid


def test_null_sender(tern):
    qid = deliver_one(tern, "<>", ["<you@localhost>"])
    raw = one_message(tern, "you")
    assert raw.startswith(b"Return-Path: <>\nX-Original-To: you@localhost\nDelivered-To: you@localhost\n")
    # the completed From: names the mailer daemon with a domain (RFC 5322 addr-spec)
    assert b"\nFrom: MAILER-DAEMON@mail.example.test\n" in raw
    tern.wait_log(f"{qid}: from=<>, size=")


def test_postmaster_without_domain(tern):
    deliver_one(tern, "<a@example.org>", ["<postmaster>", "<Postmaster>"])
    raw = one_message(tern, "postmaster")
    # qualified with myhostname, as Postfix's trivial-rewrite does; one copy for both forms
    assert raw.startswith(b"Return-Path: <a@example.org>\nX-Original-To: postmaster@mail.example.test\nDelivered-To: postmaster@mail.example.test\n")


def test_postmaster_without_domain_reaches_the_postmaster_alias(tern_instance, work_dir):
    aliases = work_dir / "aliases"
    aliases.write_text("postmaster: you\n")
    tern_instance.write_config(alias_maps=f"hash:{aliases}")
    tern_instance.start()
    deliver_one(tern_instance, "<a@example.org>", ["<postmaster>"])
    assert b"Subject: addr\n" in one_message(tern_instance, "you")
    assert tern_instance.messages("postmaster") == []


def test_quoted_local_part_equivalent_to_plain(tern):
    deliver_one(tern, '<"a"@example.org>', ['<"you"@localhost>'])
    raw = one_message(tern, "you")
    # the least-quoted form is used (RFC 5321 4.1.2)
    assert raw.startswith(b"Return-Path: <a@example.org>\nX-Original-To: you@localhost\nDelivered-To: you@localhost\n")


def test_quoted_sender_local_part_kept(tern):
    deliver_one(tern, '<"john smith"@example.org>', ["<you@localhost>"])
    raw = one_message(tern, "you")
    assert raw.startswith(b'Return-Path: <"john smith"@example.org>\n')
    assert b'\nFrom: "john smith"@example.org\n' in raw


def test_quoted_local_part_delivers_to_the_unquoted_user(tern):
    deliver_one(tern, "<a@example.org>", ['<"john..doe"@localhost>'])
    assert b"Subject: addr\n" in one_message(tern, "john..doe")


def test_address_literals(tern):
    s = greeted(tern)
    assert s.cmd("MAIL FROM:<a@[192.0.2.1]>") == (250, "250 2.1.0 Ok")
    assert s.cmd("RCPT TO:<x@[192.0.2.7]>") == (250, "250 2.1.5 Ok")
    assert s.cmd("RCPT TO:<x@[IPv6:2001:db8::1]>") == (250, "250 2.1.5 Ok")
    assert s.cmd("RCPT TO:<x@[IPv6:::ffff:192.0.2.1]>") == (250, "250 2.1.5 Ok")
    assert s.cmd("RCPT TO:<x@[IPv6:1:2:3:4:5:6:7::8]>") == (501, "501 5.1.3 Bad recipient address syntax")
    assert s.cmd("RCPT TO:<x@[010.0.0.1]>") == (501, "501 5.1.3 Bad recipient address syntax")
    assert s.cmd("RCPT TO:<x@[tag:content]>") == (250, "250 2.1.5 Ok")
    assert s.cmd("RSET")[0] == 250
    assert s.cmd("MAIL FROM:<a@[IPv6:::1]>") == (250, "250 2.1.0 Ok")


def test_source_route_accepted_and_ignored(tern):
    deliver_one(tern, "<@relay.example.org:a@example.org>",
                ["<@one.example,@two.example:you@localhost>"])
    raw = one_message(tern, "you")
    assert raw.startswith(b"Return-Path: <a@example.org>\nX-Original-To: you@localhost\nDelivered-To: you@localhost\n")
    assert b"one.example" not in raw and b"relay.example.org" not in raw


def test_lenient_mail_from_forms(tern):
    s = greeted(tern)
    assert s.cmd("MAIL FROM: <x@example.org>") == (250, "250 2.1.0 Ok")
    assert s.cmd("RCPT TO: <you@localhost>") == (250, "250 2.1.5 Ok")
    assert s.cmd("RCPT TO:bare@localhost") == (250, "250 2.1.5 Ok")
    assert s.cmd("RSET")[0] == 250
    assert s.cmd("MAIL FROM:x@example.org") == (250, "250 2.1.0 Ok")
    assert s.cmd("RSET")[0] == 250
    assert s.cmd("MAIL  FROM:<x@example.org>") == (250, "250 2.1.0 Ok")


def test_utf8_addresses_need_smtputf8(tern):
    s = greeted(tern)
    non_ascii = (553, "553 5.6.7 Non-ASCII address: SMTPUTF8 is required")
    assert s.cmd("MAIL FROM:<j\u00f6rg@example.org>") == non_ascii
    assert s.cmd("MAIL FROM:<a@b\u00fccher.example>") == non_ascii
    assert s.cmd("MAIL FROM:<a@example.org>") == (250, "250 2.1.0 Ok")
    assert s.cmd("RCPT TO:<j\u00f6rg@localhost>") == non_ascii
    assert s.cmd("RSET")[0] == 250
    assert s.cmd("MAIL FROM:<j\u00f6rg@example.org> SMTPUTF8") == (250, "250 2.1.0 Ok")
    assert s.cmd("RCPT TO:<j\u00f6rg@localhost>") == (250, "250 2.1.5 Ok")
    # malformed UTF-8 is never an address, SMTPUTF8 or not
    s.send(b"RCPT TO:<j\xc3@localhost>\r\n")
    assert s.read_reply() == (501, "501 5.1.3 Bad recipient address syntax")
    s.send(b"RCPT TO:<j\xc0\xaf@localhost>\r\n")
    assert s.read_reply() == (501, "501 5.1.3 Bad recipient address syntax")


def test_duplicate_recipient_delivered_once(tern):
    deliver_one(tern, "<a@example.org>", ["<you@localhost>", "<you@localhost>"])
    tern.wait_log(": removed")
    assert len(tern.messages("you")) == 1


# ---------------------------------------------------------------------------
# recipient policy

def test_unknown_local_user(tern_instance):
    tern_instance.write_config(local_mailbox_base="")
    tern_instance.start()
    s = greeted(tern_instance)
    assert s.cmd("MAIL FROM:<a@example.org>")[0] == 250
    assert s.cmd(f"RCPT TO:<{NO_SUCH_USER}@localhost>") == (
        550, f"550 5.1.1 <{NO_SUCH_USER}@localhost>: Recipient address rejected: "
             "User unknown in local recipient table")
    assert s.cmd(f"RCPT TO:<{NO_SUCH_USER}@example.test>")[0] == 550
    # local part case is folded like Postfix's local delivery does; root exists
    assert s.cmd("RCPT TO:<ROOT@localhost>") == (250, "250 2.1.5 Ok")
    log = tern_instance.wait_log(f"to=<{NO_SUCH_USER}@localhost>")
    assert re.search(r"[0-9A-Z]+: reject: RCPT from localhost\[127\.0\.0\.1\]: 550 5\.1\.1 "
                     rf"<{NO_SUCH_USER}@localhost>: Recipient address rejected: User unknown in local "
                     rf"recipient table; from=<a@example\.org> to=<{NO_SUCH_USER}@localhost>", log)


def test_relay_denied_outside_mynetworks(tern_instance):
    tern_instance.write_config(mynetworks="127.0.0.1/32")
    tern_instance.start()
    s = greeted(tern_instance, source="127.0.0.2")
    assert s.cmd("MAIL FROM:<a@example.org>") == (250, "250 2.1.0 Ok")
    assert s.cmd("RCPT TO:<someone@example.org>") == (554, "554 5.7.1 <someone@example.org>: Relay access denied")
    assert s.cmd("RCPT TO:<x@[192.0.2.1]>") == (554, "554 5.7.1 <x@[192.0.2.1]>: Relay access denied")
    # the source route does not open a relay either
    assert s.cmd("RCPT TO:<@localhost:someone@example.org>") == (
        554, "554 5.7.1 <someone@example.org>: Relay access denied")
    # mydestination is still open to everyone
    assert s.cmd("RCPT TO:<you@localhost>") == (250, "250 2.1.5 Ok")
    assert s.cmd("RCPT TO:<you2@example.test>") == (250, "250 2.1.5 Ok")
    log = tern_instance.wait_log("Relay access denied; from=<a@example.org> to=<someone@example.org>")
    assert "connect from localhost[127.0.0.2]" in log
    assert re.search(r"[0-9A-Z]+: reject: RCPT from localhost\[127\.0\.0\.2\]: 554 5\.7\.1 "
                     r"<someone@example\.org>: Relay access denied", log)


def test_foreign_domain_accepted_from_mynetworks(tern):
    qid = deliver_one(tern, "<a@example.org>", ["<someone@example.org>"],
                      content=b"From: a@example.org\r\nSubject: out\r\n\r\nx\r\n")
    log = tern.wait_log(f"{qid}: to=<someone@example.org>, relay=none")
    assert re.search(rf"{qid}: to=<someone@example\.org>, relay=none, .* status=deferred", log)


# ---------------------------------------------------------------------------
# header completion, the From: requirement, Received:

def test_message_without_from_refused_outside_mynetworks(tern_instance):
    tern_instance.write_config(mynetworks="127.0.0.1/32")
    tern_instance.start()
    s = greeted(tern_instance, source="127.0.0.2")
    assert s.cmd("MAIL FROM:<a@example.org>")[0] == 250
    assert s.cmd("RCPT TO:<you@localhost>")[0] == 250
    assert send_data(s, b"Subject: no from\r\n\r\nbody\r\n") == (
        550, "550 5.7.1 Message rejected: it has no From: header field (RFC 5322 section 3.6)")
    # the session goes on; a message with From: is taken as it is
    assert s.cmd("MAIL FROM:<a@example.org>")[0] == 250
    assert s.cmd("RCPT TO:<you@localhost>")[0] == 250
    qid = queue_id(send_data(s, b"From: A <a@example.org>\r\nSubject: with from\r\n\r\nbody\r\n")[1])
    raw = one_message(tern_instance, "you")
    head, body = split_message(raw)
    assert "Subject: with from" in head and body == b"body\n"
    # an outside client's header is not completed
    assert "\nDate:" not in head and "\nMessage-ID:" not in head
    assert f"by mail.example.test (Tern) with ESMTP id {qid}" in head
    log = tern_instance.wait_log(f"{qid}: removed")
    assert re.search(r"[0-9A-Z]+: reject: message without From: header from localhost\[127\.0\.0\.2\]", log)


def test_from_requirement_can_be_turned_off(tern_instance):
    tern_instance.write_config(mynetworks="127.0.0.1/32", smtpd_require_from_header="no")
    tern_instance.start()
    deliver_one(tern_instance, "<a@example.org>", ["<you@localhost>"], source="127.0.0.2")
    head, _ = split_message(one_message(tern_instance, "you"))
    assert "\nFrom:" not in head


def test_header_completed_for_local_clients(tern):
    qid = deliver_one(tern, "<a@example.org>", ["<you@localhost>"], content=b"Subject: bare\r\n\r\nb\r\n")
    head, body = split_message(one_message(tern, "you"))
    lines = head.split("\n")
    assert lines[0] == "Return-Path: <a@example.org>"
    assert lines[1] == "X-Original-To: you@localhost"
    assert lines[2] == "Delivered-To: you@localhost"
    assert lines[3] == "Received: from client.example (localhost [127.0.0.1])"
    assert lines[4] == f"\tby mail.example.test (Tern) with ESMTP id {qid}"
    assert re.fullmatch(r"\tfor <you@localhost>; \w{3}, \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4} \(\w+\)",
                        lines[5]), lines[5]
    assert lines[6] == "Subject: bare"
    assert lines[7] == "From: a@example.org"
    assert re.fullmatch(r"Date: \w{3}, \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4} \(\w+\)", lines[8])
    m = re.fullmatch(r"Message-ID: <(\d{14}\.%s@mail\.example\.test)>" % qid, lines[9])
    assert m, lines[9]
    assert len(lines) == 10 and body == b"b\n"
    tern.wait_log(f"{qid}: message-id=<{m.group(1)}>")


def test_existing_header_fields_are_kept(tern):
    content = (b"From: Someone <a@example.org>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
               b"Message-ID: <abc.123@example.org>\r\nSubject: full\r\n\r\nb\r\n")
    qid = deliver_one(tern, "<a@example.org>", ["<you@localhost>"], content=content)
    head, _ = split_message(one_message(tern, "you"))
    assert head.count("From:") == 1 and head.count("Date:") == 1 and head.count("Message-ID:") == 1
    assert head.endswith("From: Someone <a@example.org>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
                         "Message-ID: <abc.123@example.org>\nSubject: full")
    tern.wait_log(f"{qid}: message-id=<abc.123@example.org>")


def test_received_without_for_when_several_recipients(tern):
    qid = deliver_one(tern, "<a@example.org>", ["<you@localhost>", "<other@localhost>"],
                      ehlo="[192.0.2.9]")
    head, _ = split_message(one_message(tern, "other"))
    assert re.search(rf"\nReceived: from \[192\.0\.2\.9\] \(localhost \[127\.0\.0\.1\]\)\n"
                     rf"\tby mail\.example\.test \(Tern\) with ESMTP id {qid};\n\t\w{{3}}, ", head), head
    assert "for <" not in head


def test_received_names_utf8smtp(tern):
    s = greeted(tern)
    assert s.cmd("MAIL FROM:<j\u00f6rg@example.org> SMTPUTF8")[0] == 250
    assert s.cmd("RCPT TO:<j\u00f6rg@localhost>")[0] == 250
    qid = queue_id(send_data(s, "Subject: gr\u00fc\u00dfe\r\n\r\nb\u00e4r\r\n".encode())[1])
    raw = one_message(tern, "j\u00f6rg")
    assert raw.startswith("Return-Path: <j\u00f6rg@example.org>\nX-Original-To: j\u00f6rg@localhost\n"
                          "Delivered-To: j\u00f6rg@localhost\n".encode())
    assert f"(Tern) with UTF8SMTP id {qid}\n\tfor <j\u00f6rg@localhost>;".encode() in raw
    assert raw.endswith("\n\nb\u00e4r\n".encode())
    assert "Subject: gr\u00fc\u00dfe\n".encode() in raw


def test_helo_name_cannot_inject_into_received(tern):
    qid = deliver_one(tern, "<a@example.org>", ["<you@localhost>"], ehlo="evil(x);by\\fake\"")
    head, _ = split_message(one_message(tern, "you"))
    assert f"Received: from evil?x??by?fake? (localhost [127.0.0.1])\n\tby mail.example.test (Tern) with ESMTP id {qid}" in head


# ---------------------------------------------------------------------------
# log lines

def test_session_log_lines(tern):
    s = greeted(tern, ehlo=None)
    assert s.cmd("HELO localhost")[0] == 250
    assert s.cmd("MAIL FROM:<you@localhost>")[0] == 250
    assert s.cmd("RCPT TO:<you@localhost>")[0] == 250
    qid = queue_id(send_data(s, b"Subject: log\r\n\r\nx\r\n")[1])
    assert s.cmd("QUIT")[0] == 221
    s.read_all()
    log = tern.wait_log(f"{qid}: removed")
    log = tern.wait_log("disconnect from localhost[127.0.0.1] helo=1 mail=1 rcpt=1 data=1 quit=1 commands=5")
    mine = [l.split(": ", 1)[1] for l in log.splitlines() if qid in l]
    assert mine[0] == f"{qid}: client=localhost[127.0.0.1]"
    assert re.fullmatch(rf"{qid}: message-id=<\d{{14}}\.{qid}@mail\.example\.test>", mine[1])
    assert re.search(rf"{qid}: from=<you@localhost>, size=\d+, nrcpt=1", log)
    assert re.search(rf"{qid}: to=<you@localhost>, relay=local, delay=[\d.]+, delays=[\d./]+, dsn=2\.0\.0, "
                     r"status=sent \(delivered to maildir\)", log)


def test_disconnect_line_counts_failures(tern):
    s = greeted(tern)
    assert s.cmd("MAIL FROM:<a@example.org>")[0] == 250
    assert s.cmd("RCPT TO:<a@example.org> FOO")[0] == 555
    assert s.cmd("RCPT TO:<you@localhost>")[0] == 250
    assert s.cmd("RSET")[0] == 250
    assert s.cmd("VRFY x")[0] == 252
    assert s.cmd("XYZZY")[0] == 500
    s.close()  # no QUIT: the line says so
    tern.wait_log("disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=1/2 rset=1 vrfy=1 unknown=0/1 commands=5/7")


def test_lost_connection_in_transaction_is_logged(tern):
    s = greeted(tern)
    assert s.cmd("MAIL FROM:<a@example.org>")[0] == 250
    assert s.cmd("RCPT TO:<you@localhost>")[0] == 250
    assert s.cmd("DATA")[0] == 354
    s.send(b"Subject: cut\r\n\r\npartial")
    s.close()
    tern.wait_log("lost connection after DATA from localhost[127.0.0.1]")
    tern.wait_log("disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=0/1 commands=3/4")
    assert wait_empty(tern.queue_dir / "incoming")
    assert tern.messages("you") == []


# ---------------------------------------------------------------------------
# real clients

def test_smtplib_sendmail(tern):
    with tern.smtp() as c:
        c.ehlo("client.example")
        assert c.has_extn("pipelining") and c.has_extn("chunking") and c.has_extn("smtputf8")
        assert c.has_extn("8bitmime") and c.has_extn("enhancedstatuscodes")
        assert int(c.esmtp_features["size"]) == 10240000
        refused = c.sendmail("a@example.org", ["you@localhost", "other@localhost"],
                             b"From: a@example.org\r\nSubject: lib\r\n\r\n.leading dot\r\n")
        assert refused == {}
    for user in ("you", "other"):
        raw = one_message(tern, user)
        assert raw.endswith(b"\n\n.leading dot\n")


def test_swaks(tern):
    r = subprocess.run(["swaks", "--server", f"127.0.0.1:{tern.port}", "--to", "you@localhost",
                        "--from", "swaks@example.org", "--header", "Subject: via swaks",
                        "--body", "Hello from swaks."],
                       capture_output=True, timeout=30, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"<-  250 2\.0\.0 Ok: queued as ([0-9A-Z]+)", r.stdout)
    assert m, r.stdout
    raw = one_message(tern, "you")
    assert raw.startswith(b"Return-Path: <swaks@example.org>\nX-Original-To: you@localhost\nDelivered-To: you@localhost\n")
    assert f"with ESMTP id {m.group(1)}".encode() in raw
    assert b"\nSubject: via swaks\n" in raw
    assert b"\n\nHello from swaks.\n" in raw


def test_swaks_pipelining_and_chunking(tern):
    r = subprocess.run(["swaks", "--server", f"127.0.0.1:{tern.port}", "--to", "you@localhost,other@localhost",
                        "--from", "swaks@example.org", "--pipeline", "--body", "piped"],
                       capture_output=True, timeout=30, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "queued as" in r.stdout
    assert b"\n\npiped\n" in one_message(tern, "other")


def test_shutdown_closes_sessions_with_421(tern):
    idle = greeted(tern)
    busy = greeted(tern)
    assert busy.cmd("MAIL FROM:<a@example.org>")[0] == 250
    assert busy.cmd("RCPT TO:<you@localhost>")[0] == 250
    assert busy.cmd("DATA")[0] == 354
    busy.send(b"From: a@example.org\r\n\r\nunfinished")
    tern.stop()
    want = (421, "421 4.3.2 mail.example.test Service shutting down, closing transmission channel")
    assert idle.read_reply(timeout=5) == want
    assert busy.read_reply(timeout=5) == want
    assert idle.read_all() == "" and busy.read_all() == ""
    assert tern.messages("you") == []
