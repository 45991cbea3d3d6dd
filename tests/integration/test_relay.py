"""Relaying: mail for other domains leaves tern and arrives at the right
server (found through a real unbound serving relay.zone), or comes back to
the sender as an RFC 3464 bounce. Peers listen on port 25 of 127.0.0.2 and
up; the tern under test listens on 127.0.0.1."""
import email
import email.policy
import re
import smtplib
import time

import pytest

from conftest import TernInstance, settle_queue
from relay_peers import RecordingPeer, SmtpSink, peer, test_dns  # noqa: F401 (fixtures)


def relay_tern(tern_instance, test_dns, **params):
    params.setdefault("relayhost", None)
    tern_instance.write_config(dns_resolvers=test_dns.resolver, smtp_helo_name="client.example.test",
                               **params)
    return tern_instance.start()


def send(tern, sender, rcpts, content: bytes, mail_opts=(), rcpt_opts=()):
    with tern.smtp() as c:
        c.ehlo()
        c.sendmail(sender, rcpts, content, mail_options=list(mail_opts), rcpt_options=list(rcpt_opts))


def parse(path):
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)


def notice_fields(msg):
    """(text part, per-message fields, [per-recipient fields]) of a DSN."""
    assert msg.get_content_type() == "multipart/report"
    parts = list(msg.iter_parts())
    groups = [{k.lower(): str(v) for k, v in block.items()} for block in parts[1].get_payload()]
    return parts[0].get_content(), groups[0], groups[1:]


BODY = (b"From: alice@example.test\r\n"
        b"To: bob@sink.test\r\n"
        b"Subject: relay test\r\n"
        b"\r\n"
        b"first line\r\n"
        b".a line that starts with a dot\r\n"
        b"..two dots\r\n"
        b"last line\r\n")


def test_mail_goes_to_the_domains_mx(tern_instance, test_dns, peer):
    tern = relay_tern(tern_instance, test_dns)
    send(tern, "alice@example.test", ["bob@sink.test"], BODY)
    got = peer.wait()[0]
    assert got.mail_from == "alice@example.test"
    assert got.rcpts == ["bob@sink.test"]
    assert got.helo == "client.example.test"
    # what arrived is what tern queued: its Received: line, then the message
    # byte for byte, dot-stuffing undone by the peer
    assert got.content.startswith(b"Received: from ")
    head, body = got.content.split(b"\r\n\r\n", 1)
    assert b"\r\nFrom: alice@example.test\r\nTo: bob@sink.test\r\nSubject: relay test\r\n" in head + b"\r\n"
    assert body == BODY.split(b"\r\n\r\n", 1)[1]
    assert b"\r\n.a line that starts with a dot\r\n..two dots\r\n" in got.content
    log = tern.wait_log("status=sent")
    line = re.search(r"to=<bob@sink\.test>, relay=mx\.sink\.test\[127\.0\.0\.2\]:25, delay=[\d.]+, "
                     r"delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, dsn=2\.0\.0, status=sent \(250 2\.0\.0 Ok: queued as PEER1\)",
                     log)
    assert line, log
    tern.wait_log(": removed")


def test_recipients_of_one_message_share_one_transaction(tern_instance, test_dns, peer):
    tern = relay_tern(tern_instance, test_dns)
    send(tern, "alice@example.test", ["a@sink.test", "b@sink.test", "c@sink.test"], BODY)
    got = peer.wait()[0]
    assert sorted(got.rcpts) == ["a@sink.test", "b@sink.test", "c@sink.test"]
    tern.wait_log("status=sent", count=3)
    time.sleep(0.3)
    assert len(peer.received) == 1


def test_failover_to_the_next_mx(tern_instance, test_dns):
    """mx1.multi.test (127.0.0.3) refuses connections; mx2 (127.0.0.4) takes it."""
    second = RecordingPeer("127.0.0.4")
    try:
        tern = relay_tern(tern_instance, test_dns)
        send(tern, "alice@example.test", ["carol@multi.test"], BODY)
        got = second.wait()[0]
        assert got.rcpts == ["carol@multi.test"]
        log = tern.wait_log("status=sent")
        assert "relay=mx2.multi.test[127.0.0.4]:25" in log
    finally:
        second.stop()


def test_domain_without_mx_uses_its_address(tern_instance, test_dns):
    implicit = RecordingPeer("127.0.0.5")
    try:
        tern = relay_tern(tern_instance, test_dns)
        send(tern, "alice@example.test", ["dave@aonly.test"], BODY)
        assert implicit.wait()[0].rcpts == ["dave@aonly.test"]
        assert "relay=aonly.test[127.0.0.5]:25" in tern.wait_log("status=sent")
    finally:
        implicit.stop()


def test_address_literal(tern_instance, test_dns, peer):
    tern = relay_tern(tern_instance, test_dns)
    send(tern, "alice@example.test", ["erin@[127.0.0.2]"], BODY)
    assert peer.wait()[0].rcpts == ["erin@[127.0.0.2]"]
    assert "relay=127.0.0.2[127.0.0.2]:25" in tern.wait_log("status=sent")


@pytest.mark.parametrize("domain,dsn,words", [
    ("nullmx.test", "5.1.10", "does not accept mail"),
    ("nowhere.test", "5.4.4", "not found"),
])
def test_permanent_dns_failures_bounce(tern_instance, test_dns, domain, dsn, words):
    tern = relay_tern(tern_instance, test_dns)
    send(tern, "alice@example.test", [f"frank@{domain}"], BODY)
    log = tern.wait_log("status=bounced")
    assert re.search(rf"to=<frank@{re.escape(domain)}>, relay=none, .*dsn={re.escape(dsn)}, status=bounced", log), log
    notice = parse(tern.wait_messages("alice")[0])
    text, per_msg, rcpts = notice_fields(notice)
    assert rcpts[0]["action"] == "failed"
    assert rcpts[0]["status"] == dsn
    assert words in rcpts[0]["diagnostic-code"].lower() or words in text.lower()


def test_recipient_rejected_by_the_server_bounces_with_its_reply(tern_instance, test_dns):
    rejecting = RecordingPeer("127.0.0.2", replies={"rcpt": {"nobody@sink.test": "550 5.1.1 <nobody@sink.test>: "
                                                                                 "Recipient address rejected"}})
    try:
        tern = relay_tern(tern_instance, test_dns)
        send(tern, "alice@example.test", ["nobody@sink.test", "bob@sink.test"], BODY)
        assert rejecting.wait()[0].rcpts == ["bob@sink.test"]
        log = tern.wait_log("status=bounced")
        assert ("to=<nobody@sink.test>, relay=mx.sink.test[127.0.0.2]:25" in log), log
        assert ("status=bounced (host mx.sink.test[127.0.0.2] said: 550 5.1.1 <nobody@sink.test>: "
                "Recipient address rejected (in reply to RCPT TO command))") in log
        notice = parse(tern.wait_messages("alice")[0])
        text, per_msg, rcpts = notice_fields(notice)
        assert len(rcpts) == 1
        r = rcpts[0]
        assert r["final-recipient"].replace(" ", "") == "rfc822;nobody@sink.test"
        assert r["status"] == "5.1.1"
        assert r["remote-mta"].replace(" ", "") == "dns;mx.sink.test"
        assert r["diagnostic-code"].replace("\n", "").startswith("smtp; 550 5.1.1 <nobody@sink.test>")
        assert "mx.sink.test said" in text
    finally:
        rejecting.stop()


def test_temporary_failure_is_retried(tern_instance, test_dns):
    flaky = RecordingPeer("127.0.0.2", replies={"data": ["451 4.3.0 try again later"]})
    try:
        tern = relay_tern(tern_instance, test_dns, minimal_backoff_time="1s", maximal_backoff_time="1s")
        send(tern, "alice@example.test", ["bob@sink.test"], BODY)
        log = tern.wait_log("status=deferred")
        assert ("status=deferred (host mx.sink.test[127.0.0.2] said: 451 4.3.0 try again later "
                "(in reply to end of DATA command))") in log, log
        flaky.wait(timeout=20)
        tern.wait_log("status=sent", timeout=20)
        tern.wait_log(": removed")
        assert tern.messages("alice") == []
    finally:
        flaky.stop()


def test_unreachable_destination_is_deferred_with_the_reason(tern_instance, test_dns):
    tern = relay_tern(tern_instance, test_dns)
    # nothing listens on 127.0.0.3 or .4 (multi.test's exchangers) here
    send(tern, "alice@example.test", ["carol@multi.test"], BODY)
    log = tern.wait_log("status=deferred", timeout=20)
    assert re.search(r"to=<carol@multi\.test>, relay=none, .*dsn=4\.4\.1, status=deferred "
                     r"\(connect to mx2\.multi\.test\[127\.0\.0\.4\]:25: Connection refused\)", log), log
    out = tern.cli("queue").stdout.decode()
    assert "Connection refused" in out
    settle_queue(tern)


def test_one_delivery_tries_at_most_smtp_mx_address_limit_addresses(tern_instance, test_dns):
    """A domain's DNS must not make one attempt open hundreds of connections:
    of eight exchangers, the first five addresses are tried (Postfix's
    smtp_mx_address_limit), then the mail is deferred."""
    tern = relay_tern(tern_instance, test_dns)
    send(tern, "alice@example.test", ["ida@manymx.test"], BODY)
    log = tern.wait_log("status=deferred", timeout=30)
    tried = sorted(set(re.findall(r"connect to mx(\d)\.manymx\.test\[127\.0\.0\.\d+\]:25", log)))
    assert tried == ["0", "1", "2", "3", "4"], log[-3000:]
    settle_queue(tern)


def test_mail_looping_back_to_us_bounces(tern_instance, test_dns):
    tern = relay_tern(tern_instance, test_dns)
    send(tern, "alice@example.test", ["gina@loop.test"], BODY)
    log = tern.wait_log("status=bounced")
    assert "dsn=5.4.6, status=bounced (mail for loop.test loops back to myself)" in log, log


def test_an_exchanger_at_our_own_address_is_a_loop_whatever_its_name(tern_instance, test_dns):
    """The queue compares exchangers' addresses with the listeners' (kept
    when it closed their sockets): a differently named MX host at our
    address, or its IPv4-mapped form, loops back too, and is not relayed."""
    tern = relay_tern(tern_instance, test_dns)
    send(tern, "alice@example.test", ["gina@selfaddr.test", "hal@selfmapped.test"], BODY)
    log = tern.wait_log("status=bounced", count=2)
    assert "(mail for selfaddr.test loops back to myself)" in log, log
    assert "(mail for selfmapped.test loops back to myself)" in log, log
    # nothing relayed (the bounces themselves are delivered to alice)
    assert not re.search(r"to=<(gina@selfaddr|hal@selfmapped)\.test>.*status=sent", log), log
    notice = parse(tern.wait_messages("alice")[0])
    assert notice_fields(notice)[2][0]["status"] == "5.4.6"


def test_a_server_naming_itself_as_us_is_a_loop(tern_instance, test_dns):
    """Postfix's check by name: a server whose EHLO reply names our
    myhostname is this host again (behind a NAT or a port forward, where
    the check by address cannot see it): the mail bounces with 5.4.6, and
    nothing is relayed to it."""
    twin = RecordingPeer("127.0.0.6", port=2528, hostname="mail.example.test")   # the tests' myhostname
    try:
        tern = relay_tern(tern_instance, test_dns, relayhost="[127.0.0.6]:2528")
        send(tern, "alice@example.test", ["bob@sink.test"], BODY)
        log = tern.wait_log("status=bounced")
        assert ("host 127.0.0.6[127.0.0.6]:2528 replied to HELO/EHLO with my own hostname mail.example.test"
                in log), log[-3000:]
        assert re.search(r"to=<bob@sink\.test>.*dsn=5\.4\.6, status=bounced \(mail for 127\.0\.0\.6 loops back "
                         r"to myself\)", log), log[-3000:]
        assert twin.received == []
        notice = parse(tern.wait_messages("alice")[0])
        assert notice_fields(notice)[2][0]["status"] == "5.4.6"
    finally:
        twin.stop()


def test_relayhost_takes_everything(tern_instance, test_dns):
    smarthost = RecordingPeer("127.0.0.6", port=2526)
    try:
        tern = relay_tern(tern_instance, test_dns, relayhost="[127.0.0.6]:2526")
        send(tern, "alice@example.test", ["bob@sink.test", "x@nowhere.test"], BODY)
        got = smarthost.wait()[0]
        assert sorted(got.rcpts) == ["bob@sink.test", "x@nowhere.test"]
        assert "relay=127.0.0.6[127.0.0.6]:2526" in tern.wait_log("status=sent", count=2)
    finally:
        smarthost.stop()


def test_transport_maps_route_and_error(tern_instance, test_dns, work_dir):
    special = RecordingPeer("127.0.0.6", port=2527)
    table = work_dir / "transport"
    table.write_text("special.test smtp:[127.0.0.6]:2527\n"
                     ".sub.special.test smtp:[127.0.0.6]:2527\n"
                     "closed.test error:5.7.1 this domain takes no mail\n")
    try:
        tern = relay_tern(tern_instance, test_dns, transport_maps=f"texthash:{table}")
        send(tern, "alice@example.test", ["p@special.test", "q@deep.sub.special.test"], BODY)
        got = special.wait()[0]
        assert sorted(got.rcpts) == ["p@special.test", "q@deep.sub.special.test"]
        # an error: entry is refused at RCPT with its status (no backscatter)
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            send(tern, "alice@example.test", ["r@closed.test"], BODY)
        assert refused.value.recipients["r@closed.test"] == (
            550, b"5.7.1 <r@closed.test>: Recipient address rejected: this domain takes no mail")
    finally:
        special.stop()


def test_size_limit_of_the_peer_bounces_up_front(tern_instance, test_dns):
    small = RecordingPeer("127.0.0.2", data_size_limit=1000)
    try:
        tern = relay_tern(tern_instance, test_dns)
        big = BODY + b"x" * 2000 + b"\r\n"
        send(tern, "alice@example.test", ["bob@sink.test"], big)
        log = tern.wait_log("status=bounced")
        assert "dsn=5.3.4" in log, log
        assert small.received == []
    finally:
        small.stop()


def test_success_notice_for_a_server_without_dsn_says_relayed(tern_instance, test_dns, peer):
    tern = relay_tern(tern_instance, test_dns)
    send(tern, "alice@example.test", ["bob@sink.test"], BODY, rcpt_opts=["NOTIFY=SUCCESS"])
    peer.wait()
    notice = parse(tern.wait_messages("alice")[0])
    _, _, rcpts = notice_fields(notice)
    assert rcpts[0]["action"] == "relayed"
    assert rcpts[0]["remote-mta"].replace(" ", "") == "dns;mx.sink.test"


def test_smtp_sink_rejections(tern_instance, test_dns):
    """Postfix's smtp-sink, told to refuse RCPT with 5xx: a bounce, no DATA."""
    sink = SmtpSink("127.0.0.9", "-f", "RCPT")
    try:
        tern = relay_tern(tern_instance, test_dns)
        send(tern, "alice@example.test", ["h@sinkfail.test"], BODY)
        log = tern.wait_log("status=bounced")
        assert "host mx.sinkfail.test[127.0.0.9] said: 5" in log, log
        assert "(in reply to RCPT TO command)" in log
    finally:
        sink.stop()


def test_two_terns_lab(tern_instance, test_dns, work_dir):
    """Seed 002's lab: a user of arch.test writes to nemesis.test; the first
    tern relays through DNS to the second, which delivers to a Maildir."""
    nemesis = TernInstance(work_dir / "nemesis", port=25, host="127.0.0.7")
    nemesis.write_config(myhostname="mx.nemesis.test", mydomain="nemesis.test", relayhost=None,
                         mydestination="$myhostname, nemesis.test", dns_resolvers=test_dns.resolver)
    nemesis.start()
    try:
        tern = relay_tern(tern_instance, test_dns, myhostname="mail.arch.test", mydomain="arch.test",
                          mydestination="$myhostname, arch.test")
        content = (b"From: user@arch.test\r\nTo: friend@nemesis.test\r\nSubject: hello nemesis\r\n\r\n"
                   b"bounced around\r\n")
        send(tern, "user@arch.test", ["friend@nemesis.test"], content)
        msg = nemesis.wait_messages("friend", timeout=20)[0].read_bytes()
        assert b"Subject: hello nemesis" in msg
        assert b"bounced around" in msg
        # both hops left their Received: line
        assert msg.count(b"Received: from ") == 2
        assert "relay=mx.nemesis.test[127.0.0.7]:25" in tern.wait_log("status=sent")
    finally:
        nemesis.stop()
        assert not nemesis.sanitizer_reports(), nemesis.stderr_text()[-4000:]


def test_delay_notice_is_sent_once(tern_instance, test_dns):
    tern = relay_tern(tern_instance, test_dns, delay_warning_time="1s", minimal_backoff_time="1s",
                      maximal_backoff_time="1s")
    send(tern, "alice@example.test", ["carol@multi.test", "dan@multi.test"], BODY)
    tern.wait_log("sender delay notification", timeout=20)
    tern.wait_log("status=deferred", count=6, timeout=20)   # three more rounds
    notices = tern.wait_messages("alice")
    assert len(notices) == 1
    notice = parse(notices[0])
    assert notice["Subject"] == "Delayed Mail (still being retried)"
    text, per_msg, rcpts = notice_fields(notice)
    assert sorted(r["final-recipient"].replace(" ", "") for r in rcpts) == ["rfc822;carol@multi.test",
                                                                          "rfc822;dan@multi.test"]
    for r in rcpts:
        assert r["action"] == "delayed"
        assert r["status"].startswith("4.")
        assert "will-retry-until" in r
    settle_queue(tern)


def test_relay_to_a_real_postfix_passes_dsn_on(tern_instance, test_dns):
    """Postfix offers DSN: tern hands NOTIFY/ORCPT on and sends no success
    notice of its own (Postfix reports from there, RFC 3461 §5.2.2)."""
    import os
    if os.geteuid() != 0:
        pytest.skip("a private Postfix instance needs root")
    from relay_peers import PostfixPeer
    pf = PostfixPeer("127.0.0.8")
    try:
        tern = relay_tern(tern_instance, test_dns)
        send(tern, "alice@example.test", ["pat@postfix.test"], BODY.replace(b"bob@sink.test", b"pat@postfix.test"),
             mail_opts=["RET=HDRS", "ENVID=env-42"], rcpt_opts=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;pat@postfix.test"])
        got = pf.wait_messages("pat")[0].read_bytes()
        assert b"Subject: relay test" in got
        assert b"\n.a line that starts with a dot\n..two dots\n" in got   # Maildir: LF line ends
        log = tern.wait_log("status=sent")
        assert "relay=mx.postfix.test[127.0.0.8]:25" in log
        tern.wait_log(": removed")
        assert tern.messages("alice") == []
        assert "notification" not in tern.log_text()
    finally:
        pf.stop()


def test_one_connection_carries_several_messages(tern_instance, test_dns, peer):
    tern = relay_tern(tern_instance, test_dns, smtp_destination_concurrency_limit="1")
    with tern.smtp() as c:
        c.ehlo()
        for i in range(3):
            c.sendmail("alice@example.test", [f"r{i}@sink.test"], BODY)
    got = peer.wait(3)
    assert sorted(g.rcpts[0] for g in got) == ["r0@sink.test", "r1@sink.test", "r2@sink.test"]
    log = tern.wait_log("status=sent", count=3)
    # one session at a time to sink.test, each next message within the 2 s
    # an idle connection is kept: all three on one connection, logged as
    # Postfix does (conn_use=N)
    assert "to=<r0@sink.test>, relay=mx.sink.test[127.0.0.2]:25, delay" in log, log
    assert "to=<r1@sink.test>, relay=mx.sink.test[127.0.0.2]:25, conn_use=2, delay" in log, log
    assert "to=<r2@sink.test>, relay=mx.sink.test[127.0.0.2]:25, conn_use=3, delay" in log, log


def test_silent_exchanger_times_out_and_the_next_one_is_tried(tern_instance, test_dns):
    """mx1.slow.test accepts the connection but never sends a greeting."""
    import socket
    hole = socket.socket()
    hole.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    hole.bind(("127.0.0.12", 25))
    hole.listen(16)          # the kernel completes handshakes; nobody answers
    second = RecordingPeer("127.0.0.4")
    try:
        tern = relay_tern(tern_instance, test_dns, smtp_helo_timeout="1s")
        send(tern, "alice@example.test", ["sam@slow.test"], BODY)
        assert second.wait(timeout=20)[0].rcpts == ["sam@slow.test"]
        log = tern.wait_log("status=sent")
        assert "relay=mx2.slow.test[127.0.0.4]:25" in log
        # the attempt on the silent one is logged with its reason
        assert "conversation with mx1.slow.test[127.0.0.12]:25 timed out while receiving the initial " \
               "server greeting" in log, log
    finally:
        second.stop()
        hole.close()


def test_delivery_over_ipv6(tern_instance, test_dns):
    v6 = RecordingPeer("::1")
    try:
        tern = relay_tern(tern_instance, test_dns)
        send(tern, "alice@example.test", ["ivy@v6.test"], BODY)
        assert v6.wait()[0].rcpts == ["ivy@v6.test"]
        assert "relay=mx.v6.test[::1]:25" in tern.wait_log("status=sent")
    finally:
        v6.stop()


def qp_decode(data: bytes) -> bytes:
    import quopri
    return quopri.decodestring(data)


def test_8bit_mail_is_converted_for_a_server_without_8bitmime(tern_instance, test_dns):
    """RFC 6152 §3: smtp-sink -8 does not offer 8BITMIME; tern sends a
    quoted-printable copy instead of 8-bit octets."""
    sink = SmtpSink("127.0.0.9", "-8", dump=True)
    try:
        tern = relay_tern(tern_instance, test_dns)
        body = "Grüße aus Zürich\r\n.dot line\r\nплюс кириллица\r\n".encode()
        content = (b"From: alice@example.test\r\nTo: kim@sinkfail.test\r\nSubject: umlauts\r\n"
                   b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + body)
        send(tern, "alice@example.test", ["kim@sinkfail.test"], content, mail_opts=["BODY=8BITMIME"])
        dump = sink.wait_dumps()[0]
        assert all(b < 0x80 for b in dump), dump
        head, sent_body = dump.split(b"\r\n\r\n", 1) if b"\r\n\r\n" in dump else dump.split(b"\n\n", 1)
        assert b"Content-Transfer-Encoding: quoted-printable" in head
        assert b"MIME-Version: 1.0" in head
        assert b"Content-Type: text/plain; charset=utf-8" in head
        decoded = qp_decode(sent_body.replace(b"\r\n", b"\n")).replace(b"\n", b"\r\n")
        # (smtp-sink ends its dump with one more empty line)
        assert decoded.rstrip(b"\r\n") == body.rstrip(b"\r\n"), sent_body
        log = tern.wait_log("status=sent")
        assert "converted to 7-bit MIME for mx.sinkfail.test[127.0.0.9]:25" in log
    finally:
        sink.stop()


def test_a_servers_own_5_6_3_bounces_without_a_second_session(tern_instance, test_dns):
    """Only tern's own 5.6.3 (a server without 8BITMIME) makes it convert the
    message to 7-bit and try again; a server refusing MAIL with 5.6.3 is
    answered with the bounce, after one session."""
    picky = RecordingPeer("127.0.0.6", port=2529, replies={"mail": "554 5.6.3 conversion required and prohibited"})
    try:
        tern = relay_tern(tern_instance, test_dns, relayhost="[127.0.0.6]:2529")
        send(tern, "alice@example.test", ["bob@sink.test"], "Subject: caf\u00e9\r\n\r\nna\u00efve\r\n".encode(),
             mail_opts=["BODY=8BITMIME"])
        log = tern.wait_log("status=bounced")
        assert "dsn=5.6.3" in log and "conversion required and prohibited" in log, log[-3000:]
        assert "converted to 7-bit MIME" not in log
        assert picky.mail_commands == 1
    finally:
        picky.stop()


def test_8bit_header_for_a_server_without_8bitmime_bounces(tern_instance, test_dns):
    sink = SmtpSink("127.0.0.9", "-8", dump=True)
    try:
        tern = relay_tern(tern_instance, test_dns)
        content = "From: alice@example.test\r\nSubject: Grüße\r\n\r\nbody\r\n".encode()
        send(tern, "alice@example.test", ["kim@sinkfail.test"], content, mail_opts=["BODY=8BITMIME"])
        log = tern.wait_log("status=bounced")
        assert "dsn=5.6.3" in log and "cannot convert the message to 7-bit MIME" in log, log
        notice = parse(tern.wait_messages("alice")[0])
        assert notice_fields(notice)[2][0]["status"] == "5.6.3"
        assert list(sink.dumps.iterdir()) == []
    finally:
        sink.stop()


def nemesis_tern(work_dir, test_dns, tls_files=None, **params):
    nemesis = TernInstance(work_dir / "nemesis", port=25, host="127.0.0.7")
    extra = {}
    if tls_files:
        cert, key = tls_files["ec"]
        extra = dict(smtpd_tls_cert_file=str(cert), smtpd_tls_key_file=str(key))
    nemesis.write_config(myhostname="mx.nemesis.test", mydomain="nemesis.test", relayhost=None,
                         mydestination="$myhostname, nemesis.test", dns_resolvers=test_dns.resolver,
                         **extra, **params)
    return nemesis.start()


def test_relay_uses_starttls_when_offered(tern_instance, test_dns, work_dir, tls_files):
    nemesis = nemesis_tern(work_dir, test_dns, tls_files)
    try:
        tern = relay_tern(tern_instance, test_dns)
        send(tern, "alice@example.test", ["friend@nemesis.test"], BODY)
        msg = nemesis.wait_messages("friend", timeout=20)[0].read_bytes()
        assert b"with ESMTPS id" in msg          # the hop was encrypted
        log = tern.wait_log("status=sent")
        assert re.search(r"Untrusted TLS connection established to mx\.nemesis\.test\[127\.0\.0\.7\]:25: "
                         r"TLSv1\.3 with cipher", log), log
    finally:
        nemesis.stop()


def test_encrypt_level_refuses_a_server_without_starttls(tern_instance, test_dns, peer):
    tern = relay_tern(tern_instance, test_dns, smtp_tls_security_level="encrypt")
    send(tern, "alice@example.test", ["bob@sink.test"], BODY)
    log = tern.wait_log("status=deferred")
    assert ("status=deferred (TLS is required, but was not offered by host mx.sink.test[127.0.0.2]:25)"
            in log), log
    assert peer.received == []


def test_verify_level_checks_the_certificate(tern_instance, test_dns, work_dir, tls_files):
    nemesis = nemesis_tern(work_dir, test_dns, tls_files)
    try:
        good_ca, _ = tls_files["ec"]
        wrong_ca, _ = tls_files["rsa"]
        table = work_dir / "tls_policy"
        table.write_text("nemesis.test verify\n")
        tern = relay_tern(tern_instance, test_dns, smtp_tls_CAfile=str(wrong_ca),
                          smtp_tls_policy_maps=f"texthash:{table}")
        send(tern, "alice@example.test", ["friend@nemesis.test"], BODY)
        log = tern.wait_log("status=deferred", timeout=20)
        assert "TLS handshake failed with mx.nemesis.test[127.0.0.7]:25" in log, log
        assert "certificate verify failed" in log, log
        assert nemesis.messages("friend") == []
        tern.stop()
        tern.write_config(smtp_tls_CAfile=str(good_ca))
        tern.start()
        tern.cli("queue", "flush")
        nemesis.wait_messages("friend", timeout=20)
        assert "Verified TLS connection established to mx.nemesis.test[127.0.0.7]:25" in tern.wait_log("status=sent")
    finally:
        nemesis.stop()


def test_relayhost_with_sasl_login(tern_instance, test_dns, work_dir, tls_files):
    """relayhost = [smarthost]:587 with smtp_sasl_password_maps, as with a
    provider's smarthost: STARTTLS, then AUTH, then the mail."""
    nemesis = TernInstance(work_dir / "nemesis", port=25, host="127.0.0.7")
    cert, key = tls_files["ec"]
    nemesis.master_cf = ("127.0.0.7:25 inet n - n - - smtpd\n"
                         "127.0.0.7:587 inet n - n - - smtpd\n"
                         "  -o smtpd_tls_security_level=encrypt\n"
                         "  -o smtpd_sasl_auth_enable=yes\n")
    nemesis.write_config(myhostname="mx.nemesis.test", mydomain="nemesis.test", relayhost=None,
                         mydestination="$myhostname, nemesis.test", dns_resolvers=test_dns.resolver,
                         smtpd_tls_cert_file=str(cert), smtpd_tls_key_file=str(key),
                         mynetworks="127.0.0.7/32", smtpd_sasl_failure_delay="0")
    assert nemesis.cli("passwd", "add", "relayuser", input=b"s3cret pass\n").returncode == 0
    nemesis.start()
    try:
        table = work_dir / "sasl_passwd"
        table.write_text("[127.0.0.7]:587 relayuser:wrong\n")
        tern = relay_tern(tern_instance, test_dns, relayhost="[127.0.0.7]:587", smtp_sasl_auth_enable="yes",
                          smtp_sasl_password_maps=f"texthash:{table}")
        send(tern, "alice@example.test", ["friend@nemesis.test"], BODY)
        log = tern.wait_log("status=deferred", timeout=20)
        assert "SASL authentication failed; server 127.0.0.7[127.0.0.7]:587 said: 535 5.7.8" in log, log
        assert "wrong" not in log                      # never a password in the log
        table.write_text("[127.0.0.7]:587 relayuser:s3cret pass\n")
        time.sleep(1.1)                                # the table is re-read when it changes
        tern.cli("queue", "flush")
        got = nemesis.wait_messages("friend", timeout=20)[0].read_bytes()
        assert b"with ESMTPSA id" in got
        assert "sasl_username=relayuser" in nemesis.log_text()
        assert "relay=127.0.0.7[127.0.0.7]:587" in tern.wait_log("status=sent")
    finally:
        nemesis.stop()


def test_equal_preference_with_ourselves_is_a_loop(tern_instance, test_dns, peer):
    tern = relay_tern(tern_instance, test_dns)
    send(tern, "alice@example.test", ["ed@equal.test"], BODY)
    log = tern.wait_log("status=bounced")
    assert "mail for equal.test loops back to myself" in log
    assert peer.received == []


def test_bad_relayhost_defers_and_the_queue_lives_on(tern_instance, test_dns, peer):
    """A broken relayhost setting defers mail with a reason; it never takes
    the queue process down (which would stop all deliveries)."""
    tern = relay_tern(tern_instance, test_dns, relayhost="[broken")
    for i in range(2):
        send(tern, "alice@example.test", [f"r{i}@sink.test"], BODY)
    log = tern.wait_log("status=deferred", count=2)
    assert "bad next hop" in log
    assert "tern/master" not in "".join(l for l in log.splitlines() if "exited" in l or "signal" in l), log
    with tern.smtp() as c:       # local delivery still flows
        c.sendmail("alice@example.test", ["carl@localhost"], BODY)
    tern.wait_messages("carl")


def test_stop_lets_a_transfer_finish(tern_instance, test_dns):
    """SIGTERM while a server takes its time over the final dot: the queue
    waits for the reply, so the message is delivered once, not again after
    the restart."""
    slow = RecordingPeer("127.0.0.2", data_delay=2)
    try:
        tern = relay_tern(tern_instance, test_dns)
        send(tern, "alice@example.test", ["bob@sink.test"], BODY)
        assert slow.data_started.wait(15)
        tern.stop()
        assert len(slow.received) == 1
        assert "status=sent" in tern.log_text()
        tern.start()
        time.sleep(2)
        assert len(slow.received) == 1, "delivered twice"
    finally:
        slow.stop()
