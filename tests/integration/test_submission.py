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
