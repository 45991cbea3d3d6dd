"""Delivery status notifications (RFC 3464 bounces, RFC 3461 DSN requests),
checked as the sender would: the notice in their Maildir, parsed with
Python's email package."""
import email
import email.policy
import re

import pytest


def setup_aliases(tern_instance, work_dir, text, **params):
    aliases = work_dir / "aliases"
    aliases.write_text(text)
    tern_instance.write_config(alias_maps=f"hash:{aliases}", **params)
    return tern_instance.start()


def parse(path):
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)


def report_parts(msg):
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    return report_parts_any(msg)


def report_parts_any(msg):
    """The parts of a notice of either kind (RFC 3464 or RFC 6533); RFC 6522
    wants report-type to name the second part's subtype, which is what
    bounce parsers look for."""
    assert msg.get_content_type() == "multipart/report"
    parts = list(msg.iter_parts())
    assert msg.get_param("report-type") == parts[1].get_content_subtype()
    assert parts[0].get_content_type() == "text/plain"
    assert parts[1].get_content_type() in ("message/delivery-status", "message/global-delivery-status")
    return parts


def status_fields(part):
    """The per-message and per-recipient field groups of a delivery-status part."""
    groups = []
    for block in part.get_payload():
        groups.append({k.lower(): str(v) for k, v in block.items()})
    return groups


def send(tern, sender, rcpts, subject, mail_opts=(), rcpt_opts=()):
    with tern.smtp() as c:
        c.ehlo()
        c.sendmail(sender, rcpts, f"From: {sender}\r\nSubject: {subject}\r\n\r\nbody of {subject}\r\n".encode(),
                   mail_options=list(mail_opts), rcpt_options=list(rcpt_opts))


def test_failed_delivery_returns_a_bounce_to_the_sender(tern_instance, work_dir):
    tern = setup_aliases(tern_instance, work_dir, "pipe: |/bin/false\n")
    send(tern, "you@localhost", ["pipe@localhost"], "will bounce")
    tern.wait_log("status=bounced")
    notice = parse(tern.wait_messages("you")[0])
    assert notice["From"].addresses[0].addr_spec == "MAILER-DAEMON@mail.example.test"
    assert notice["Auto-Submitted"] == "auto-replied"
    assert "Undelivered" in notice["Subject"]
    text, status, original = report_parts(notice)
    groups = status_fields(status)
    assert groups[0]["reporting-mta"].replace(" ", "") == "dns;mail.example.test"
    rcpt = groups[1]
    assert rcpt["action"] == "failed"
    assert rcpt["status"] == "5.3.0"
    assert rcpt["final-recipient"].replace(" ", "") == "rfc822;|/bin/false"   # the alias target
    assert rcpt["original-recipient"].replace(" ", "") == "rfc822;pipe@localhost"  # what the sender wrote
    assert "command died with status 1" in rcpt["diagnostic-code"]
    assert original.get_content_type() == "message/rfc822"
    returned = original.get_payload()[0]
    assert returned["Subject"] == "will bounce"
    assert "body of will bounce" in returned.get_content()
    # the notice itself came from <>: its Return-Path says so
    assert tern.messages("you")[0].read_bytes().startswith(b"Return-Path: <>\n")
    log = tern.wait_log("sender non-delivery notification: ")
    orig_id, notice_id = re.search(r"(\w+): sender non-delivery notification: (\w+)", log).groups()
    tern.wait_log(f"{orig_id}: removed")
    tern.wait_log(f"{notice_id}: removed")


def test_failed_delivery_bounce_is_understood_by_flufl_bounce(tern_instance, work_dir):
    """flufl.bounce (Mailman's bounce parser) finds the failed recipient."""
    from flufl.bounce import scan_message
    tern = setup_aliases(tern_instance, work_dir, "gone: |/bin/false\n")
    send(tern, "you@localhost", ["gone@localhost"], "for flufl")
    raw = tern.wait_messages("you")[0].read_bytes()
    assert scan_message(email.message_from_bytes(raw)) == {b"gone@localhost"}  # its Original-Recipient


def test_smtputf8_bounce_names_its_global_report_type(tern_instance, work_dir):
    """An SMTPUTF8 message's notice is RFC 6533's: message/global-delivery-status
    under multipart/report; report-type=global-delivery-status (RFC 6522: the
    report-type is the second part's subtype, which parsers match on)."""
    tern = setup_aliases(tern_instance, work_dir, "pipe: |/bin/false\n")
    with tern.smtp() as c:
        c.ehlo()
        c.sendmail("you@localhost", ["pipe@localhost"],
                   "From: you@localhost\r\nSubject: \u00e9t\u00e9\r\n\r\nna\u00efve body\r\n".encode(),
                   mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    raw = tern.wait_messages("you")[0].read_bytes()
    notice = email.message_from_bytes(raw, policy=email.policy.default)
    assert notice.get_content_type() == "multipart/report"
    assert notice.get_param("report-type") == "global-delivery-status"
    text, status, original = report_parts_any(notice)
    assert status.get_content_type() == "message/global-delivery-status"
    assert original.get_content_type() == "message/global"
    # Python parses message/global-delivery-status like a message: the
    # per-message fields are its header, the recipients' groups its body.
    inner = status.get_payload()[0]
    assert inner["Reporting-MTA"].replace(" ", "") == "dns;mail.example.test"
    rcpt = email.message_from_string(inner.get_payload().lstrip("\n"))
    assert rcpt["Action"] == "failed"
    assert rcpt["Final-Recipient"].replace(" ", "") == "rfc822;|/bin/false"
    assert rcpt["Original-Recipient"].replace(" ", "") == "rfc822;pipe@localhost"


def test_expired_message_bounces(tern_instance):
    tern_instance.write_config(maximal_queue_lifetime="2s", minimal_backoff_time="1s", maximal_backoff_time="1s")
    tern = tern_instance.start()
    send(tern, "you@localhost", ["far@remote.example"], "never arrives")
    tern.wait_log("status=expired", timeout=15)
    notice = parse(tern.wait_messages("you")[0])
    _, status, _ = report_parts(notice)
    rcpt = status_fields(status)[1]
    assert rcpt["action"] == "failed"
    assert rcpt["final-recipient"].replace(" ", "") == "rfc822;far@remote.example"
    assert "expired" in rcpt["diagnostic-code"]


def test_notify_never_suppresses_and_success_is_reported(tern_instance, work_dir):
    tern = setup_aliases(tern_instance, work_dir, "pipe: |/bin/false\n")
    send(tern, "you@localhost", ["pipe@localhost"], "silent failure", rcpt_opts=["NOTIFY=NEVER"])
    send(tern, "you@localhost", ["bob@localhost"], "tell me", rcpt_opts=["NOTIFY=SUCCESS",
                                                                          "ORCPT=rfc822;Bob@Example.Test"])
    tern.wait_messages("bob")
    notices = tern.wait_messages("you", 1)
    tern.wait_log(": removed", count=3)
    assert len(tern.messages("you")) == 1  # the success notice only
    notice = parse(notices[0])
    assert "Successful" in notice["Subject"]
    text, status, returned = report_parts(notice)
    rcpt = status_fields(status)[1]
    assert rcpt["action"] == "delivered"
    assert rcpt["original-recipient"].replace(" ", "") == "rfc822;Bob@Example.Test"
    # success notices return the headers only
    assert returned.get_content_type() == "text/rfc822-headers"


def test_ret_hdrs_and_envid(tern_instance, work_dir):
    tern = setup_aliases(tern_instance, work_dir, "pipe: |/bin/false\n")
    send(tern, "you@localhost", ["pipe@localhost"], "headers only", mail_opts=["RET=HDRS", "ENVID=abc123"])
    notice = parse(tern.wait_messages("you")[0])
    _, status, returned = report_parts(notice)
    assert status_fields(status)[0]["original-envelope-id"] == "abc123"
    assert returned.get_content_type() == "text/rfc822-headers"
    assert b"body of headers only" not in tern.messages("you")[0].read_bytes()


def test_no_notice_for_the_null_sender(tern_instance, work_dir):
    tern = setup_aliases(tern_instance, work_dir, "pipe: |/bin/false\n")
    send(tern, "<>", ["pipe@localhost"], "from nobody")
    tern.wait_log("status=bounced")
    tern.wait_log(": removed")
    assert "notification" not in tern.log_text()
    assert not any(tern.mail_dir.iterdir()) if tern.mail_dir.exists() else True


def test_undeliverable_bounce_goes_to_postmaster_once(tern_instance, work_dir):
    """The sender's own address fails too: the bounce becomes a double bounce
    to the postmaster; when that fails as well it is dropped, never looping."""
    tern = setup_aliases(tern_instance, work_dir, "pipe: |/bin/false\nbadsender: |/bin/false\n")
    send(tern, "badsender@localhost", ["pipe@localhost"], "double")
    pm = tern.wait_messages("postmaster")[0]
    notice = parse(pm)
    _, status, _ = report_parts(notice)
    assert status_fields(status)[1]["action"] == "failed"
    tern.wait_log(": removed", count=3)
    assert len(tern.messages("postmaster")) == 1


def test_failed_double_bounce_is_discarded(tern_instance, work_dir):
    tern = setup_aliases(tern_instance, work_dir,
                         "pipe: |/bin/false\nbadsender: |/bin/false\npostmaster: |/bin/false\n")
    send(tern, "badsender@localhost", ["pipe@localhost"], "triple")
    tern.wait_log("undeliverable postmaster notification discarded")
    tern.wait_log(": removed", count=3)
    out = tern.cli("queue").stdout.decode()
    assert "Mail queue is empty" in out


def test_bounce_queue_lifetime_applies_to_mail_from_the_null_sender(tern_instance):
    """Notices (from <>) give up after bounce_queue_lifetime, other mail
    keeps trying until maximal_queue_lifetime."""
    tern_instance.write_config(bounce_queue_lifetime="2s", maximal_queue_lifetime="1h",
                               minimal_backoff_time="1s", maximal_backoff_time="1s")
    tern = tern_instance.start()
    send(tern, "<>", ["far@remote.example"], "a notice that cannot go out")
    send(tern, "you@localhost", ["other@remote.example"], "ordinary mail")
    log = tern.wait_log(r"to=<far@remote\.example>, relay=none, .*status=expired", regex=True, timeout=15)
    assert not re.search(r"to=<other@remote\.example>.*status=expired", log)
    tern.wait_log(r"to=<other@remote\.example>.*status=deferred", regex=True, count=3, timeout=15)
    assert not re.search(r"to=<other@remote\.example>.*status=expired", tern.log_text())
    assert tern.messages("you") == []
