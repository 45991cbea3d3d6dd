"""Nothing silently lost: what the programs that submit mail on real systems
(git, cron, scripts through sendmail; SMTP clients) hand to tern is either
delivered, bounced to its sender with the reason, or refused at once with an
exit code or SMTP reply that says why; never accepted and then dropped.

Every test drives the real binary (TERN_BIN) and checks what a user would:
sendmail's exit code and message, the bytes in the Maildir, the SMTP reply,
the bounce that came back.
"""
import email
import email.policy
import re
import subprocess

import pytest

from conftest import smtp_greeted as greeted


def sendmail(inst, *args, input=b"Subject: test\n\nbody\n", rc=0):
    r = inst.cli("sendmail", *args, input=input)
    out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    if rc is not None:
        assert r.returncode == rc, f"sendmail {args} exited {r.returncode}:\n{out}"
    return r


def maildrop_and_corrupt_empty(inst):
    return (list((inst.queue_dir / "maildrop").iterdir()) == []
            and list((inst.queue_dir / "corrupt").iterdir()) == [])


def parse(path):
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)


def recipient_fields(notice):
    """The per-recipient fields of an RFC 3464 notice, lowercased names."""
    status = list(notice.iter_parts())[1]
    return [{k.lower(): str(v) for k, v in block.items()} for block in status.get_payload()[1:]]


# ---------------------------------------------------------------- transport_maps error:

def with_error_transport(tern_instance, work_dir):
    table = work_dir / "transport"
    table.write_text("blocked.example error:5.1.2 No mail for this domain\n"
                     "plain.example error:go away\n")
    tern_instance.write_config(transport_maps=f"texthash:{table}")
    return tern_instance.start()


def test_error_transport_refuses_at_rcpt_with_its_status(tern_instance, work_dir):
    """As Postfix: no backscatter, the client learns it at RCPT."""
    tern = with_error_transport(tern_instance, work_dir)
    s = greeted(tern)
    assert s.cmd("MAIL FROM:<a@example.org>")[0] == 250
    assert s.cmd("RCPT TO:<x@blocked.example>") == (
        550, "550 5.1.2 <x@blocked.example>: Recipient address rejected: No mail for this domain")
    assert s.cmd("RCPT TO:<y@plain.example>") == (
        550, "550 5.1.1 <y@plain.example>: Recipient address rejected: go away")
    assert s.cmd("RCPT TO:<you@localhost>") == (250, "250 2.1.5 Ok")
    tern.wait_log("reject: RCPT from localhost[127.0.0.1]: 550 5.1.2 <x@blocked.example>: Recipient address "
                  "rejected: No mail for this domain; from=<a@example.org> to=<x@blocked.example>")
    s.cmd("QUIT")


def test_error_transport_keeps_its_status_in_the_bounce(tern_instance, work_dir):
    """Mail that reaches the queue without smtpd (sendmail) bounces with the
    entry's status and text."""
    tern = with_error_transport(tern_instance, work_dir)
    sendmail(tern, "-f", "you@localhost", "x@blocked.example", input=b"Subject: to blocked\n\nbody\n")
    notice = parse(tern.wait_messages("you")[0])
    rcpt = recipient_fields(notice)[0]
    assert rcpt["action"] == "failed"
    assert rcpt["status"] == "5.1.2"
    assert "No mail for this domain" in rcpt["diagnostic-code"]
    assert "5.1.2" not in rcpt["diagnostic-code"].split(";", 1)[1].strip()[:5]
    assert re.search(r"to=<x@blocked\.example>, relay=none, .*dsn=5\.1\.2, status=bounced \(No mail for this domain\)",
                     tern.log_text())


# ---------------------------------------------------------------- sendmail refuses at the door

def test_sendmail_t_without_recipients_fails_at_the_door(tern):
    """Postfix: "No recipient addresses found in message header", exit 75
    (EX_TEMPFAIL); nothing is left in maildrop/ or corrupt/."""
    r = sendmail(tern, "-t", "-i", input=b"Subject: x\n\nb\n", rc=75)
    assert r.stderr == b"sendmail: fatal: No recipient addresses found in message header\n"
    assert maildrop_and_corrupt_empty(tern)
    assert "moved to corrupt" not in tern.log_text()


def test_sendmail_t_with_recipients_in_the_body_only_fails_too(tern):
    r = sendmail(tern, "-t", input=b"Subject: x\n\nTo: alice@localhost\n", rc=75)
    assert b"No recipient addresses found in message header" in r.stderr
    assert maildrop_and_corrupt_empty(tern)


def test_sendmail_refuses_a_header_over_header_size_limit(tern_instance):
    tern_instance.write_config(header_size_limit="2000")
    tern = tern_instance.start()
    big = b"To: alice@localhost\n" + b"X-Filler: " + b"y" * 70 + b"\n" + (b" " + b"z" * 70 + b"\n") * 40
    r = sendmail(tern, "-t", input=big + b"\nbody\n", rc=65)
    assert r.stderr == b"sendmail: fatal: message header exceeds header_size_limit (2000 bytes)\n"
    assert maildrop_and_corrupt_empty(tern)


def test_sendmail_refuses_a_bad_sender_address(tern):
    r = sendmail(tern, "-f", "a b@example.test", "alice@localhost", rc=64)
    assert r.stderr.startswith(b"sendmail: fatal: bad sender address syntax: ")
    assert maildrop_and_corrupt_empty(tern)


def test_sendmail_refuses_a_recipient_smtp_cannot_carry(tern):
    long_local = "x" * 300 + "@localhost"   # over RFC 5321's 64-octet local part
    r = sendmail(tern, long_local, rc=64)
    assert r.stderr.startswith(b"sendmail: fatal: bad recipient address syntax: ")
    r = sendmail(tern, "-t", input=f"To: alice@localhost, {long_local}\n\nb\n".encode(), rc=65)
    assert r.stderr.startswith(b"sendmail: fatal: bad recipient address syntax in message header: ")
    assert maildrop_and_corrupt_empty(tern)
    assert tern.messages("alice") == []


# ---------------------------------------------------------------- mbox "From " line

def test_git_format_patch_through_sendmail_t(tern, work_dir):
    """git format-patch --stdout starts with an mbox "From <sha> <date>" line:
    skipped, as Postfix's sendmail does, and the patch is delivered."""
    repo = work_dir / "repo"
    env = {"GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "dev@example.test", "GIT_COMMITTER_NAME": "Dev",
           "GIT_COMMITTER_EMAIL": "dev@example.test", "HOME": str(work_dir), "PATH": "/usr/bin:/bin",
           "GIT_CONFIG_NOSYSTEM": "1"}

    def git(*args):
        return subprocess.run(["git", "-C", str(repo), *args], env=env, check=True, capture_output=True).stdout

    repo.mkdir()
    git("init", "-q")
    (repo / "hello.c").write_text("int main(void) { return 0; }\n")
    git("add", "hello.c")
    git("commit", "-q", "-m", "Add hello")
    patch = git("format-patch", "-1", "--stdout", "--to=alice@localhost")
    assert patch.startswith(b"From ")
    sendmail(tern, "-t", "-i", input=patch)
    body = tern.wait_messages("alice")[0].read_bytes()
    header, _, content = body.partition(b"\n\n")
    assert b"\nSubject: [PATCH] Add hello\n" in header
    assert b"\nTo: alice@localhost\n" in header
    assert b"\nFrom: Dev <dev@example.test>\n" in header
    assert not re.search(rb"^From [0-9a-f]{40} ", body, re.M)
    assert b"+int main(void) { return 0; }\n" in content
    assert maildrop_and_corrupt_empty(tern)


def test_only_a_leading_from_line_is_skipped(tern):
    sendmail(tern, "alice@localhost", input=b"From someone Mon Jan  1 00:00:00 2026\nSubject: mbox\n\n"
                                            b"From here on it is body\n")
    body = tern.wait_messages("alice")[0].read_bytes()
    assert b"\nSubject: mbox\n" in body
    assert b"From someone" not in body
    assert body.endswith(b"\n\nFrom here on it is body\n")


# ---------------------------------------------------------------- DSN options -N, -R, -V

def with_failing_alias(tern_instance, work_dir):
    """pipe@localhost fails (its command exits 1): a bounce is owed."""
    aliases = work_dir / "aliases"
    aliases.write_text("pipe: |/bin/false\n")
    tern_instance.write_config(alias_maps=f"hash:{aliases}")
    return tern_instance.start()


def test_sendmail_N_never_suppresses_the_bounce(tern_instance, work_dir):
    tern = with_failing_alias(tern_instance, work_dir)
    sendmail(tern, "-N", "never", "-f", "you@localhost", "pipe@localhost", input=b"Subject: quiet\n\nx\n")
    sendmail(tern, "-f", "you@localhost", "bob@localhost", input=b"Subject: sentinel\n\nx\n")
    tern.wait_messages("bob")
    tern.wait_log(": removed", count=2)
    assert "status=bounced" in tern.log_text()
    assert tern.messages("you") == []
    assert "notification" not in tern.log_text()


def test_sendmail_N_success_asks_for_a_success_notice(tern_instance, work_dir):
    tern = with_failing_alias(tern_instance, work_dir)
    sendmail(tern, "-N", "success,delay,failure", "-f", "you@localhost", "bob@localhost",
             input=b"Subject: tell me\n\nx\n")
    notice = parse(tern.wait_messages("you")[0])
    assert "Successful" in notice["Subject"]
    assert recipient_fields(notice)[0]["action"] == "delivered"


def test_sendmail_R_hdrs_and_V_envid(tern_instance, work_dir):
    tern = with_failing_alias(tern_instance, work_dir)
    sendmail(tern, "-R", "hdrs", "-V", "job-42.abc", "-f", "you@localhost", "pipe@localhost",
             input=b"Subject: headers only\n\nsecret body\n")
    raw = tern.wait_messages("you")[0].read_bytes()
    notice = email.message_from_bytes(raw, policy=email.policy.default)
    parts = list(notice.iter_parts())
    per_message = dict(parts[1].get_payload()[0].items())
    assert per_message["Original-Envelope-Id"] == "job-42.abc"
    assert parts[2].get_content_type() == "text/rfc822-headers"
    assert b"secret body" not in raw


@pytest.mark.parametrize("args", [("-N", "never,success"), ("-N", "sometimes"), ("-R", "body"),
                                  ("-V", "x" * 101), ("-V", "tab\there")])
def test_sendmail_bad_dsn_option_values_are_usage_errors(tern, args):
    r = sendmail(tern, *args, "alice@localhost", rc=64)
    assert r.stderr.startswith(b"sendmail: fatal: bad -")
    assert maildrop_and_corrupt_empty(tern)


def test_sendmail_h_is_accepted_and_ignored(tern):
    sendmail(tern, "-h", "17", "alice@localhost", input=b"Subject: hops\n\nx\n")
    assert b"\nSubject: hops\n" in tern.wait_messages("alice")[0].read_bytes()


def test_sendmail_I_is_newaliases(tern):
    r = sendmail(tern, "-I")
    assert r.stdout.startswith(b"newaliases: ")
    assert maildrop_and_corrupt_empty(tern)


def test_sendmail_bv_reports_without_delivering(tern_instance, work_dir):
    table = work_dir / "transport"
    table.write_text("blocked.example error:5.1.2 No mail for this domain\n")
    # system users only (no local_mailbox_base), so an unknown user is unknown
    tern_instance.write_config(transport_maps=f"texthash:{table}", local_mailbox_base="")
    tern = tern_instance.start()
    r = sendmail(tern, "-bv", "root@localhost", "far@remote.example", rc=0, input=b"")
    assert r.stdout == (b"<root@localhost>: deliverable: local\n"
                        b"<far@remote.example>: would be relayed; not verified with the next hop\n")
    r = sendmail(tern, "-bv", "root@localhost", "nosuchuser-tern-test@localhost", "x@blocked.example", rc=67)
    assert r.stdout == (b"<root@localhost>: deliverable: local\n"
                        b"<nosuchuser-tern-test@localhost>: undeliverable: 5.1.1 User unknown in local "
                        b"recipient table\n"
                        b"<x@blocked.example>: undeliverable: 5.1.2 No mail for this domain\n")
    assert maildrop_and_corrupt_empty(tern)
    assert ": uid=" not in tern.log_text()


# ---------------------------------------------------------------- sendmail -bs

def test_sendmail_bs_with_lf_only_lines(tern):
    """A script talking SMTP on a pipe often writes bare LF: Postfix answers
    250 at ".\\n"; so does tern, and the greeting names $myhostname."""
    dialogue = (b"HELO script\n"
                b"MAIL FROM:<sender@example.test>\n"
                b"RCPT TO:<alice@localhost>\n"
                b"DATA\n"
                b"Subject: lf only\n\n..stuffed\nplain\n.\n"
                b"QUIT\n")
    r = sendmail(tern, "-bs", input=dialogue)
    lines = r.stdout.decode().split("\r\n")
    assert lines[0] == "220 mail.example.test ESMTP Tern (sendmail -bs)"
    assert lines[1] == "250 mail.example.test"
    assert "250 2.0.0 Ok: queued" in lines
    assert lines[-2] == "221 2.0.0 Bye"
    body = tern.wait_messages("alice")[0].read_bytes()
    assert body.endswith(b"\n\n.stuffed\nplain\n")


def test_sendmail_bs_ehlo_names_myhostname(tern):
    r = sendmail(tern, "-bs", input=b"EHLO x\r\nQUIT\r\n")
    assert r.stdout.decode().split("\r\n")[1] == "250-mail.example.test"


def test_sendmail_bs_refuses_a_header_over_the_limit(tern_instance):
    tern_instance.write_config(header_size_limit="2000")
    tern = tern_instance.start()
    header = b"Subject: big\r\n" + (b"X-Filler: " + b"y" * 70 + b"\r\n") * 40
    r = sendmail(tern, "-bs", input=b"HELO x\r\nMAIL FROM:<a@localhost>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n"
                                     + header + b"\r\nbody\r\n.\r\nQUIT\r\n")
    assert "552 5.3.4 Error: message header exceeds header_size_limit" in r.stdout.decode().split("\r\n")
    assert maildrop_and_corrupt_empty(tern)
