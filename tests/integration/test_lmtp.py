"""LMTP delivery (RFC 2033) to a real Dovecot: transport_maps entries
`lmtp:unix:PATH` (absolute, and relative to queue_directory as Postfix's
`lmtp:unix:private/dovecot-lmtp`) and `lmtp:inet:host:port`.

A throwaway Dovecot runs only its LMTP service, with its own base_dir, a
passwd-file userdb of two users and Maildirs under a temporary directory,
listening on a unix socket (and, for one test, on a free loopback port).
Each recipient gets Dovecot's own reply to the final dot: the two users'
mail lands in their Maildirs, an unknown user bounces with Dovecot's
550 5.1.1, and with Dovecot stopped the recipients wait in the queue.
DKIM signatures are made for SMTP next hops only, never for LMTP.
"""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import TernInstance, free_port, wait_port

DOVECOT = "/usr/sbin/dovecot"
LMTP_BINARY = "/usr/lib/dovecot/lmtp"   # dovecot-lmtpd

USERS = ("alice", "bob")


class Dovecot:
    """A private Dovecot LMTP server; start() and stop() may repeat."""

    def __init__(self, inet_port=None):
        self.dir = Path(tempfile.mkdtemp(prefix="tern-lmtp-dovecot-"))
        self.dir.chmod(0o755)   # Dovecot's own processes run as its users
        self.socket = self.dir / "lmtp"
        self.mail = self.dir / "mail"
        self.mail.mkdir()
        # deliveries run as nobody (the userdb's uid): it makes the homes
        self.mail.chmod(0o1777)
        self.inet_port = inet_port
        inet = (f"  inet_listener lmtp {{\n    address = 127.0.0.1\n    port = {inet_port}\n  }}\n"
                if inet_port else "")
        d = self.dir
        (d / "dovecot.conf").write_text(f"""\
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = lmtp
ssl = no
passdb {{
  driver = passwd-file
  args = {d}/users
}}
userdb {{
  driver = passwd-file
  args = {d}/users
  default_fields = uid=nobody gid=nogroup home={d}/mail/%n
}}
mail_location = maildir:~/Maildir
service lmtp {{
  unix_listener {self.socket} {{
    mode = 0666
  }}
{inet}}}
""")
        (d / "users").write_text("".join(f"{u}@example.org:{{PLAIN}}unused::::::\n" for u in USERS))
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", str(self.dir / "dovecot.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while not self.socket.exists() and time.time() < deadline:
            time.sleep(0.1)
        assert self.socket.exists(), self.log()
        if self.inet_port:
            assert wait_port("127.0.0.1", self.inet_port), self.log()

    def stop(self):
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def log(self):
        p = self.dir / "dovecot.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def messages(self, user):
        new = self.mail / user / "Maildir" / "new"
        return sorted(new.iterdir()) if new.is_dir() else []

    def wait_messages(self, user, count=1, timeout=15.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(self.messages(user)) >= count:
                return self.messages(user)
            time.sleep(0.05)
        raise AssertionError(f"{user}: expected {count} messages in Dovecot, have "
                             f"{len(self.messages(user))}\n{self.log()[-3000:]}")


def dovecot_or_skip():
    if os.geteuid() != 0:
        pytest.skip("a private Dovecot needs root")
    if not os.path.exists(DOVECOT) or not os.path.exists(LMTP_BINARY):
        pytest.skip("needs dovecot-core and dovecot-lmtpd (scripts/deps.sh test)")


@pytest.fixture
def dovecot():
    dovecot_or_skip()
    d = Dovecot()
    d.start()
    yield d
    d.stop()
    shutil.rmtree(d.dir, ignore_errors=True)


@pytest.fixture
def dovecot_inet():
    dovecot_or_skip()
    d = Dovecot(inet_port=free_port())
    d.start()
    yield d
    d.stop()
    shutil.rmtree(d.dir, ignore_errors=True)


def lmtp_tern(tern_instance, work_dir, hop):
    table = work_dir / "transport"
    table.write_text(f"example.org {hop}\n")
    tern_instance.write_config(transport_maps=f"texthash:{table}", mynetworks="127.0.0.0/8")
    return tern_instance.start()


def send(tern, rcpts, subject, token):
    body = f"Subject: {subject}\r\nFrom: you@localhost\r\n\r\n{token}\r\n".encode()
    with tern.smtp() as c:
        refused = c.sendmail("you@localhost", rcpts, body)
    assert refused == {}


def delivered_line(tern, rcpt, relay, count=1):
    """The log lines of rcpt's deliveries (at least count: Dovecot may show
    the message before tern has logged Dovecot's reply), with their relay
    and Dovecot's reply."""
    pattern = (rf"to=<{re.escape(rcpt)}>, relay={re.escape(relay)}(, conn_use=\d+)?, delay=[\d.]+, "
               rf"delays=[\d./]+, dsn=2\.0\.0, status=sent \(250 2\.0\.0 <{re.escape(rcpt)}> \S+ Saved\)")
    text = tern.wait_log(pattern, regex=True, timeout=15, count=count)
    return re.findall(pattern, text)


def test_lmtp_unix_delivers_bounces_and_reuses(tern_instance, work_dir, dovecot):
    tern = lmtp_tern(tern_instance, work_dir, f"lmtp:unix:{dovecot.socket}")
    relay = f"mail.example.test[{dovecot.socket}]"
    send(tern, ["alice@example.org", "bob@example.org", "nobody@example.org"], "lmtp one", "token-one-7f3a")

    for user in USERS:
        data = dovecot.wait_messages(user)[0].read_bytes()
        assert b"Subject: lmtp one" in data and b"token-one-7f3a" in data
        # Dovecot's own trace: it took the envelope from tern over LMTP
        assert b"Return-Path: <you@localhost>" in data and b"with LMTP" in data
        delivered_line(tern, f"{user}@example.org", relay)
    # Dovecot's reply to the unknown user's RCPT is its bounce
    tern.wait_log(rf"to=<nobody@example\.org>, relay={re.escape(relay)}, .*dsn=5\.1\.1, status=bounced "
                  rf"\(host {re.escape(relay)} said: 550 5\.1\.1 <nobody@example\.org> User doesn't exist: "
                  rf"nobody@example\.org \(in reply to RCPT TO command\)\)", regex=True)
    notice = tern.wait_messages("you")[0].read_bytes()
    assert b"User doesn't exist" in notice

    # a second message: the cached connection, or a new one, works the same
    send(tern, ["alice@example.org"], "lmtp two", "token-two-91c4")
    second = dovecot.wait_messages("alice", 2)
    assert any(b"token-two-91c4" in p.read_bytes() for p in second)
    assert len(delivered_line(tern, "alice@example.org", relay, count=2)) == 2
    assert len(dovecot.messages("bob")) == 1
    assert not tern.sanitizer_reports()


def test_lmtp_relative_socket_under_queue_directory(tern_instance, work_dir, dovecot):
    """Postfix's lmtp:unix:private/dovecot-lmtp, logged as it is written."""
    tern = lmtp_tern(tern_instance, work_dir, "lmtp:unix:private/dovecot-lmtp")
    os.symlink(dovecot.socket, tern.queue_dir / "private" / "dovecot-lmtp")
    send(tern, ["bob@example.org"], "relative", "token-rel-2b8e")
    data = dovecot.wait_messages("bob")[0].read_bytes()
    assert b"token-rel-2b8e" in data
    delivered_line(tern, "bob@example.org", "mail.example.test[private/dovecot-lmtp]")


def test_lmtp_inet(tern_instance, work_dir, dovecot_inet):
    port = dovecot_inet.inet_port
    tern = lmtp_tern(tern_instance, work_dir, f"lmtp:inet:127.0.0.1:{port}")
    send(tern, ["alice@example.org"], "inet", "token-inet-5d01")
    data = dovecot_inet.wait_messages("alice")[0].read_bytes()
    assert b"token-inet-5d01" in data
    delivered_line(tern, "alice@example.org", f"127.0.0.1[127.0.0.1]:{port}")


def test_lmtp_server_down_defers(tern_instance, work_dir, dovecot):
    dovecot.stop()
    tern = lmtp_tern(tern_instance, work_dir, f"lmtp:unix:{dovecot.socket}")
    send(tern, ["alice@example.org", "nobody@example.org"], "down", "token-down-00aa")
    for rcpt in ("alice@example.org", "nobody@example.org"):
        tern.wait_log(rf"to=<{re.escape(rcpt)}>, relay=none, .*dsn=4\.4\.1, status=deferred \(connect to "
                      rf"mail\.example\.test\[{re.escape(str(dovecot.socket))}\]: ", regex=True)
    assert "status=bounced" not in tern.log_text()

    # back up: the queue's next try delivers (minimal_backoff_time is 1s)
    dovecot.start()
    assert b"token-down-00aa" in dovecot.wait_messages("alice", timeout=30)[0].read_bytes()


def test_virtual_mailbox_domain_handed_to_dovecot(tern_instance, work_dir, dovecot):
    """The guides' hosting setup: virtual_mailbox_domains and _maps say who
    exists (checked at RCPT, for anyone on the Internet), virtual_transport
    hands the mail to Dovecot's LMTP, and a virtual alias may point there."""
    vmailbox = work_dir / "vmailbox"
    vmailbox.write_text("alice@example.org  example.org/alice/\nbob@example.org  example.org/bob/\n")
    virtual = work_dir / "virtual"
    virtual.write_text("postmaster@example.org  alice@example.org\n")
    tern_instance.write_config(mynetworks="192.0.2.0/24", virtual_mailbox_domains="example.org",
                               virtual_mailbox_maps=f"hash:{vmailbox}", virtual_alias_maps=f"hash:{virtual}",
                               virtual_transport=f"lmtp:unix:{dovecot.socket}")
    tern = tern_instance.start()
    with tern.smtp() as c:
        c.ehlo("client.example")
        c.mail("someone@elsewhere.example")
        assert c.rcpt("alice@example.org")[0] == 250
        assert c.rcpt("postmaster@example.org")[0] == 250
        code, text = c.rcpt("carol@example.org")
        assert code == 550 and b"User unknown in virtual mailbox table" in text, text
        c.data(b"From: someone@elsewhere.example\r\nSubject: hosted\r\n\r\ntoken-hosted-5d2e\r\n")
    # alice, named twice (directly and through postmaster), gets one copy
    got = dovecot.wait_messages("alice", 1)
    assert b"token-hosted-5d2e" in got[0].read_bytes()
    tern.wait_log(r"to=<alice@example\.org>, orig_to=<postmaster@example\.org>, relay=", regex=True)
    delivered_line(tern, "alice@example.org", f"mail.example.test[{dovecot.socket}]")
    time.sleep(0.5)
    assert len(dovecot.messages("alice")) == 1


def test_mailbox_transport_hands_local_users_to_dovecot(tern_instance, work_dir, dovecot):
    """mailbox_transport: local users (after aliases) go to Dovecot's LMTP."""
    aliases = work_dir / "aliases"
    aliases.write_text("team: alice, bob\n")
    tern_instance.write_config(mydestination="example.org, $myhostname", mynetworks="127.0.0.0/8",
                               alias_maps=f"hash:{aliases}", mailbox_transport=f"lmtp:unix:{dovecot.socket}")
    tern = tern_instance.start()
    send(tern, ["team@example.org"], "to the team", "token-team-4b1c")
    for user in USERS:
        assert b"token-team-4b1c" in dovecot.wait_messages(user)[0].read_bytes()
        tern.wait_log(rf"to=<{user}@example\.org>, orig_to=<team@example\.org>, "
                      rf"relay=mail\.example\.test\[{re.escape(str(dovecot.socket))}\]", regex=True)


def test_dkim_signs_smtp_next_hops_only(tern_instance, work_dir, dovecot):
    """One message from a local user of a domain with a DKIM key, to a
    mailbox behind LMTP and to a recipient relayed over SMTP: the SMTP copy
    is signed, the LMTP copy (final delivery: nobody verifies it) is not."""
    sink = TernInstance(work_dir / "sink")
    # a host of its own: a server answering EHLO with our name is a loop
    sink.write_config(myhostname="sink.example.test", mydestination="relayed.test, $myhostname")
    tern = tern_instance
    tern.write_config()
    out = tern.cli("dkim", "keygen", "auth.test", "-s", "sel", check=True).stdout.decode()
    key = re.search(r"^Wrote (\S+) ", out, re.M).group(1)
    (work_dir / "dkim_sign").write_text(f"auth.test sel:{key}\n")
    table = work_dir / "transport"
    table.write_text(f"example.org lmtp:unix:{dovecot.socket}\nrelayed.test smtp:[127.0.0.1]:{sink.port}\n")
    tern.write_config(transport_maps=f"texthash:{table}", mynetworks="127.0.0.0/8",
                      dkim_sign_maps=f"texthash:{work_dir / 'dkim_sign'}")
    sink.start()
    tern.start()
    try:
        body = (b"From: alice@auth.test\r\nTo: alice@example.org, bob@relayed.test\r\nSubject: both ways\r\n"
                b"\r\ntoken-dkim-3e9f\r\n")
        with tern.smtp() as c:
            assert c.sendmail("alice@auth.test", ["alice@example.org", "bob@relayed.test"], body) == {}
        relayed = sink.wait_messages("bob", timeout=20)[0].read_bytes()
        stored = dovecot.wait_messages("alice")[0].read_bytes()
        assert b"token-dkim-3e9f" in relayed and b"token-dkim-3e9f" in stored
        assert b"DKIM-Signature: " in relayed and b"d=auth.test" in relayed, relayed
        assert b"DKIM-Signature" not in stored, stored
        delivered_line(tern, "alice@example.org", f"mail.example.test[{dovecot.socket}]")
        # one signature made: for the SMTP hop alone
        assert tern.log_text().count("DKIM-Signature added (d=auth.test, s=sel)") == 1, tern.log_text()
    finally:
        sink.stop()
    assert not tern.sanitizer_reports() and not sink.sanitizer_reports()


def test_lmtp_parameters_apply_to_lmtp_sessions(tern_instance, work_dir, dovecot):
    """lmtp_lhlo_name is what Dovecot records (smtp_helo_name is not);
    lmtp_destination_recipient_limit = 1 with one session at a time
    (lmtp_destination_concurrency_limit = 1) makes two transactions, the
    second on the cached connection."""
    table = work_dir / "transport"
    table.write_text(f"example.org lmtp:unix:{dovecot.socket}\n")
    tern_instance.write_config(transport_maps=f"texthash:{table}", mynetworks="127.0.0.0/8",
                               lmtp_lhlo_name="lhlo.example.test", smtp_helo_name="helo.example.test",
                               lmtp_destination_recipient_limit="1", lmtp_destination_concurrency_limit="1",
                               lmtp_connection_cache_time_limit="10s")
    tern = tern_instance.start()
    send(tern, ["alice@example.org", "bob@example.org"], "lmtp params", "token-params-77d1")
    for user in USERS:
        data = dovecot.wait_messages(user)[0].read_bytes()
        assert b"token-params-77d1" in data
        assert re.search(rb"Received: from lhlo\.example\.test\b", data), data
    relay = f"mail.example.test[{dovecot.socket}]"
    for user in USERS:
        delivered_line(tern, f"{user}@example.org", relay)
    lines = [line for line in tern.log_text().splitlines() if "status=sent" in line and "@example.org" in line]
    assert len(lines) == 2 and sum("conn_use=2" in line for line in lines) == 1, lines


def test_lmtp_tls_security_level(tern_instance, work_dir, dovecot_inet):
    """lmtp_tls_security_level = encrypt: a Dovecot without STARTTLS is not
    given the mail in plaintext (deferred); SMTP's level does not apply."""
    port = dovecot_inet.inet_port
    table = work_dir / "transport"
    table.write_text(f"example.org lmtp:inet:127.0.0.1:{port}\n")
    tern_instance.write_config(transport_maps=f"texthash:{table}", mynetworks="127.0.0.0/8",
                               lmtp_tls_security_level="encrypt", smtp_tls_security_level="none")
    tern = tern_instance.start()
    send(tern, ["alice@example.org"], "lmtp tls", "token-tls-1a2b")
    tern.wait_log(r"to=<alice@example\.org>, .*status=deferred \(TLS is required, but was not offered by host "
                  rf"127\.0\.0\.1\[127\.0\.0\.1\]:{port}\)", regex=True, timeout=15)
    assert dovecot_inet.messages("alice") == []
