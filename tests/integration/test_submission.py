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
