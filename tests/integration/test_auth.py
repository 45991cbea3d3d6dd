"""Submission with AUTH (RFC 4954): the seeds' master.cf (ports moved), users
from tern's own password file (tern passwd) or a real Dovecot's auth socket,
mail clients smtplib, swaks and msmtp; failed logins delayed and locked out."""
import base64
import os
import pwd
import shutil
import signal
import smtplib
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import free_port, raw_session, REPO, settle_queue

PASSWORD = "correct horse battery"


def client_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Submission:
    """A tern with the tutorial's three services: 25, 587 (encrypt + AUTH),
    465 (wrapper + AUTH), all on loopback ports."""

    def __init__(self, inst, tls_files, **params):
        self.inst = inst
        self.sub_port, self.smtps_port = free_port(), free_port()
        h = inst.host
        inst.master_cf = (f"{h}:{inst.port} inet n - n - - smtpd\n"
                          f"{h}:{self.sub_port} inet n - n - - smtpd\n"
                          f"  -o smtpd_tls_security_level=encrypt\n"
                          f"  -o smtpd_sasl_auth_enable=yes\n"
                          f"{h}:{self.smtps_port} inet n - n - - smtpd\n"
                          f"  -o smtpd_tls_wrappermode=yes\n"
                          f"  -o smtpd_sasl_auth_enable=yes\n")
        cert, key = tls_files["ec"]
        inst.write_config(smtpd_tls_cert_file=str(cert), smtpd_tls_key_file=str(key),
                          smtpd_sasl_failure_delay="0", **params)

    def add_user(self, name, password=PASSWORD):
        r = self.inst.cli("passwd", "add", name, input=(password + "\n").encode())
        assert r.returncode == 0, r.stderr

    def submit(self):
        c = smtplib.SMTP(self.inst.host, self.sub_port, timeout=10)
        c.ehlo("laptop.example")
        c.starttls(context=client_ctx())
        c.ehlo("laptop.example")
        return c


@pytest.fixture
def submission(tern_instance, tls_files):
    sub = Submission(tern_instance, tls_files)
    sub.add_user("alice@example.test")
    tern_instance.start()
    return sub


def test_tern_passwd_file(tern_instance, tls_files):
    sub = Submission(tern_instance, tls_files)
    sub.add_user("alice@example.test")
    sub.add_user("bob@example.test")
    path = tern_instance.dir / "passwd"
    text = path.read_text()
    assert "alice@example.test:$y$" in text          # yescrypt, never the password
    assert PASSWORD not in text
    st = path.stat()
    assert oct(st.st_mode & 0o777) == "0o640"
    if os.geteuid() == 0:
        assert st.st_gid == pwd.getpwnam("tern").pw_gid  # smtpd (mail_owner) reads it
    out = tern_instance.cli("passwd", "list").stdout.decode()
    assert out.split() == ["alice@example.test", "bob@example.test"]
    assert tern_instance.cli("passwd", "del", "bob@example.test").returncode == 0
    assert tern_instance.cli("passwd", "list").stdout.decode().split() == ["alice@example.test"]
    assert tern_instance.cli("passwd", "del", "nobody@example.test").returncode == 1


def test_submission_with_starttls_and_auth_relays(submission):
    tern = submission.inst
    with submission.submit() as c:
        assert "PLAIN" in c.esmtp_features.get("auth", "")
        code, text = c.login("alice@example.test", PASSWORD)
        assert (code, text) == (235, b"2.7.0 Authentication successful")
        c.sendmail("alice@example.test", ["friend@remote.example"], b"Subject: from my laptop\r\n\r\nhello\r\n")
    log = tern.wait_log("sasl_username=alice@example.test")
    assert "sasl_method=PLAIN, sasl_username=alice@example.test" in log
    # queued for the remote domain (the test relayhost keeps it deferred)
    tern.wait_log("to=<friend@remote.example>")


def test_authenticated_mail_is_marked_esmtpsa(submission):
    tern = submission.inst
    with submission.submit() as c:
        c.login("alice@example.test", PASSWORD)
        c.sendmail("alice@example.test", ["carol@localhost"], b"Subject: a\r\n\r\nx\r\n")
    msg = tern.wait_messages("carol")[0].read_bytes()
    assert b"with ESMTPSA id" in msg


def test_auth_login_mechanism_and_cancel(submission):
    tern = submission.inst
    with submission.submit() as c:
        code, text = c.docmd("AUTH", "LOGIN")
        assert (code, base64.b64decode(text)) == (334, b"Username:")
        assert c.docmd("*") == (501, b"5.7.0 Authentication aborted")
        code, text = c.docmd("AUTH", "LOGIN " + base64.b64encode(b"alice@example.test").decode())
        assert (code, base64.b64decode(text)) == (334, b"Password:")
        assert c.docmd(base64.b64encode(PASSWORD.encode()).decode())[0] == 235
        assert c.docmd("AUTH", "PLAIN")[0] == 503          # already authenticated
    assert "SASL LOGIN authentication succeeded" in tern.log_text()


def test_no_auth_before_tls(submission):
    tern = submission.inst
    s = raw_session(tern)
    s.sock.close()
    # 587: TLS is required before anything else
    import socket
    sock = socket.create_connection((tern.host, submission.sub_port), timeout=10)
    f = sock.makefile("rb")
    assert f.readline().startswith(b"220")
    sock.sendall(b"EHLO laptop\r\n")
    lines = []
    while True:
        line = f.readline()
        lines.append(line)
        if line[3:4] == b" ":
            break
    assert not any(b"AUTH" in l for l in lines)         # never offered in the clear
    sock.sendall(b"AUTH PLAIN " + base64.b64encode(b"\0alice@example.test\0" + PASSWORD.encode()) + b"\r\n")
    assert f.readline() == b"530 5.7.0 Must issue a STARTTLS command first\r\n"
    sock.close()


def test_auth_on_port_25_needs_tls_too(tern_instance, tls_files):
    sub = Submission(tern_instance, tls_files, smtpd_sasl_auth_enable="yes")
    sub.add_user("alice@example.test")
    tern = tern_instance.start()
    s = raw_session(tern)
    s.read_reply()
    code, text = s.cmd("EHLO laptop")
    assert "AUTH" not in text and "STARTTLS" in text
    assert s.cmd("AUTH PLAIN AGFAYgBj") == (538, "538 5.7.11 Encryption required for requested "
                                                  "authentication mechanism")


def test_wrong_password_and_lockout(submission):
    tern = submission.inst
    def plain(user, password):
        return "PLAIN " + base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()

    for i in range(4):
        with submission.submit() as c:
            code, text = c.docmd("AUTH", plain("alice@example.test", f"wrong {i}"))
            assert (code, text) == (535, b"5.7.8 Error: authentication failed: authentication failure")
    # the fifth failure locks the address out: 421, and so do new connections
    c = submission.submit()
    code, text = c.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0alice@example.test\0nope").decode())
    assert code == 421, text
    c.close()
    c = submission.submit()
    code, text = c.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0alice@example.test\0" + PASSWORD.encode()).decode())
    assert code == 421, text
    c.close()
    log = tern.log_text()
    assert "SASL PLAIN authentication failed: password mismatch" in log
    assert PASSWORD not in log and "wrong 1" not in log   # never a password in the log


def plain_auth(user, password):
    return "PLAIN " + base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()


def outsider_submit(sub, source):
    """A submission session from source (outside mynetworks), after STARTTLS."""
    c = smtplib.SMTP(sub.inst.host, sub.sub_port, timeout=30, source_address=(source, 0))
    c.ehlo("x")
    c.starttls(context=client_ctx())
    c.ehlo("x")
    return c


def test_guesses_in_flight_when_the_lockout_begins_tell_nothing(tern_instance, tls_files):
    """20 AUTHs sent at once on 20 sessions of one client are all checked,
    but once smtpd_sasl_failure_limit failures are in, every later answer is
    the lockout's 421, a right password too: the limit bounds the guesses
    whose answer means something."""
    sub = Submission(tern_instance, tls_files, mynetworks="127.0.0.1/32", smtpd_sasl_failure_limit="5")
    sub.add_user("alice@example.test")
    tern_instance.start()
    sessions = [outsider_submit(sub, "127.0.0.30") for _ in range(20)]
    for i, c in enumerate(sessions):      # 19 wrong guesses, then the right one, all at once
        c.send(f"AUTH {plain_auth('alice@example.test', PASSWORD if i == 19 else f'guess {i}')}\r\n")
    replies = [c.getreply()[0] for c in sessions]
    log = [l for l in tern_instance.log_text().splitlines() if "SASL PLAIN authentication" in l]
    success = [n for n, l in enumerate(log) if "succeeded: sasl_username" in l]
    # a success is answered only within the first guesses
    assert not success or sum("authentication failed" in l for l in log[:success[0]]) < 5, log
    assert replies.count(535) <= 4 and replies.count(235) <= 1, replies
    if 235 not in replies:
        assert any("succeeded, but the client was locked out meanwhile" in l for l in log), log
    for c in sessions:
        c.close()


def test_client_auth_rate_limit(tern_instance, tls_files):
    """smtpd_client_auth_rate_limit: AUTH commands per client and time unit,
    answered or not (450 4.7.1 past it, as Postfix's)."""
    sub = Submission(tern_instance, tls_files, mynetworks="127.0.0.1/32", smtpd_client_auth_rate_limit="2")
    sub.add_user("alice@example.test")
    tern_instance.start()
    c = outsider_submit(sub, "127.0.0.23")
    assert c.docmd("AUTH", plain_auth("alice@example.test", "wrong"))[0] == 535
    assert c.docmd("AUTH", plain_auth("alice@example.test", "wrong again"))[0] == 535
    assert c.docmd("AUTH", plain_auth("alice@example.test", PASSWORD)) == \
        (450, b"4.7.1 Error: too many AUTH commands from 127.0.0.23")
    c.close()
    assert "AUTH command rate limit exceeded from localhost[127.0.0.23]" in tern_instance.log_text()


def test_client_new_tls_session_rate_limit(tern_instance, tls_files):
    """smtpd_client_new_tls_session_rate_limit: past it STARTTLS is refused
    (454 4.7.0) and port 465 closes the connection before the handshake."""
    sub = Submission(tern_instance, tls_files, mynetworks="127.0.0.1/32",
                     smtpd_client_new_tls_session_rate_limit="1")
    tern_instance.start()
    outsider_submit(sub, "127.0.0.24").close()
    c = smtplib.SMTP(tern_instance.host, sub.sub_port, timeout=30, source_address=("127.0.0.24", 0))
    c.ehlo("x")
    assert c.docmd("STARTTLS") == (454, b"4.7.0 Error: too many new TLS sessions from localhost[127.0.0.24]")
    c.close()
    # the limit is the client's, whatever the port: 465 refuses it too
    with pytest.raises((ssl.SSLError, ConnectionError, smtplib.SMTPServerDisconnected, OSError)):
        smtplib.SMTP_SSL(tern_instance.host, sub.smtps_port, context=client_ctx(), timeout=10,
                         source_address=("127.0.0.24", 0))
    # another client is not affected
    with smtplib.SMTP_SSL(tern_instance.host, sub.smtps_port, context=client_ctx(), timeout=10,
                          source_address=("127.0.0.26", 0)) as ok:
        assert ok.ehlo("x")[0] == 250
    log = tern_instance.log_text()
    assert "Refusing STARTTLS request from localhost[127.0.0.24]" in log
    assert "Refusing TLS service request from localhost[127.0.0.24]" in log


def test_failed_login_reply_is_delayed(tern_instance, tls_files):
    sub = Submission(tern_instance, tls_files)
    sub.inst.write_config(smtpd_sasl_failure_delay="1s")
    sub.add_user("alice@example.test")
    tern_instance.start()
    with sub.submit() as c:
        t0 = time.time()
        with pytest.raises(smtplib.SMTPAuthenticationError):
            c.login("alice@example.test", "guess")
        assert time.time() - t0 >= 0.9


def test_smtps_port_465(submission):
    tern = submission.inst
    with smtplib.SMTP_SSL(tern.host, submission.smtps_port, context=client_ctx(), timeout=10) as c:
        c.ehlo("laptop")
        c.login("alice@example.test", PASSWORD)
        c.sendmail("alice@example.test", ["dave@localhost"], b"Subject: 465\r\n\r\nx\r\n")
    tern.wait_messages("dave")


def test_unauthenticated_outsider_cannot_relay_but_authenticated_can(tern_instance, tls_files):
    sub = Submission(tern_instance, tls_files, mynetworks="127.0.0.1/32", smtpd_sasl_auth_enable="yes")
    sub.add_user("alice@example.test")
    tern = tern_instance.start()
    for authenticate in (False, True):
        c = smtplib.SMTP(tern.host, tern.port, timeout=10, source_address=("127.0.0.9", 0))
        c.ehlo("outside.example")
        c.starttls(context=client_ctx())
        c.ehlo("outside.example")
        if authenticate:
            c.login("alice@example.test", PASSWORD)
        c.mail("alice@example.test")
        code, text = c.rcpt("victim@remote.example")
        if authenticate:
            assert code == 250, text
        else:
            assert (code, text) == (554, b"5.7.1 <victim@remote.example>: Relay access denied")
        c.quit()


def test_swaks_and_msmtp(submission):
    tern = submission.inst
    r = subprocess.run(["swaks", "--server", f"{tern.host}:{submission.sub_port}", "--tls", "--auth", "PLAIN",
                        "--auth-user", "alice@example.test", "--auth-password", PASSWORD,
                        "--from", "alice@example.test", "--to", "erin@localhost", "--body", "via swaks"],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stdout.decode(errors="replace")
    tern.wait_messages("erin")
    msg = b"From: alice@example.test\nTo: frank@localhost\nSubject: via msmtp\n\nhello from msmtp\n"
    r = subprocess.run(["msmtp", "--host", tern.host, "--port", str(submission.sub_port), "--tls=on",
                        "--tls-starttls=on", "--tls-certcheck=off", "--auth=on",
                        "--user", "alice@example.test", "--passwordeval", f"echo '{PASSWORD}'",
                        "--from", "alice@example.test", "frank@localhost"],
                       input=msg, capture_output=True, timeout=60)
    assert r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")
    got = tern.wait_messages("frank")[0].read_bytes()
    assert b"hello from msmtp" in got and b"with ESMTPSA id" in got


# -- Dovecot --------------------------------------------------------------------

@pytest.fixture
def dovecot(work_dir):
    if os.geteuid() != 0 or not os.path.exists("/usr/sbin/dovecot"):
        pytest.skip("a private Dovecot needs root and dovecot-core")
    d = Path(tempfile.mkdtemp(prefix="tern-dovecot-"))
    d.chmod(0o755)
    conf = (REPO / "tests" / "unit" / "dovecot-auth.conf.in").read_text().replace("@DIR@", str(d))
    (d / "dovecot.conf").write_text(conf)
    (d / "users").write_text(f"imapuser@example.test:{{PLAIN}}{PASSWORD}\n")
    proc = subprocess.Popen(["/usr/sbin/dovecot", "-F", "-c", str(d / "dovecot.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 20
    while not (d / "auth").exists() and time.time() < deadline:
        time.sleep(0.1)
    assert (d / "auth").exists(), (d / "dovecot.log").read_text() if (d / "dovecot.log").exists() else ""
    yield d / "auth"
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    shutil.rmtree(d, ignore_errors=True)


def test_auth_against_dovecot(tern_instance, tls_files, dovecot):
    sub = Submission(tern_instance, tls_files, smtpd_sasl_type="dovecot", smtpd_sasl_path=str(dovecot))
    tern = tern_instance.start()
    with sub.submit() as c:
        with pytest.raises(smtplib.SMTPAuthenticationError):
            c.login("imapuser@example.test", "not it")
    with sub.submit() as c:
        assert c.login("imapuser@example.test", PASSWORD)[0] == 235
        c.sendmail("imapuser@example.test", ["gina@localhost"], b"Subject: dovecot\r\n\r\nx\r\n")
    tern.wait_messages("gina")
    assert "sasl_username=imapuser@example.test" in tern.log_text()


def test_open_relay_battery(tern_instance):
    """The classic tricks from a client outside mynetworks: whatever is
    accepted is delivered here, never relayed to other.test."""
    tern_instance.write_config(mynetworks="127.0.0.1/32")
    tern = tern_instance.start()
    tricks = ["victim@other.test", "victim@OTHER.TEST", "victim@other.test.",
              "user%other.test@example.test", '"user@other.test"@example.test',
              "@example.test:user@other.test", "other.test!user@example.test",
              "user@other.test@example.test", "user@[127.0.0.1]", "user@[192.0.2.1]",
              "user@[IPv6:::1]", "postmaster@other.test", "<user@other.test>@example.test"]
    accepted = []
    for rcpt in tricks:
        c = smtplib.SMTP(tern.host, tern.port, timeout=10, source_address=("127.0.0.30", 0))
        c.ehlo("outside.example")
        c.mail("spammer@outside.example")
        code, text = c.rcpt(rcpt)
        if code == 250:
            accepted.append(rcpt)
            c.data(b"Subject: relay test\r\n\r\nx\r\n")
        c.quit()
    settle_queue(tern)
    time.sleep(0.5)
    log = tern.log_text()
    # nothing went anywhere but into a local mailbox
    for line in log.splitlines():
        if "to=<" in line and "status=" in line:
            assert "relay=local" in line, line
    assert "other.test" not in "".join(l for l in log.splitlines() if "relay=" in l and "relay=local" not in l)
    assert tern.cli("queue").stdout.decode().strip() == "Mail queue is empty"
    # and the plain remote forms were refused with the relay reply
    assert "victim@other.test" not in accepted and "victim@OTHER.TEST" not in accepted


def test_the_seed_configuration(tern_instance, tls_files, dovecot):
    """The tutorials' main.cf and master.cf, only ports and file paths
    changed (and chroot left as written: tern has none to do)."""
    cert, key = tls_files["rsa"]
    sub_port, smtps_port = free_port(), free_port()
    h = tern_instance.host
    tern_instance.write_config(
        smtpd_sasl_auth_enable="yes", smtpd_sasl_type="dovecot", smtpd_sasl_path="private/auth",
        smtpd_tls_security_level="may", smtpd_tls_cert_file=str(cert), smtpd_tls_key_file=str(key),
        smtpd_tls_protocols="!SSLv2, !SSLv3, !TLSv1, !TLSv1.1",
        smtpd_recipient_restrictions="permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
        mynetworks="127.0.0.1/32")
    tern_instance.master_cf = (f"{h}:{tern_instance.port}       inet n - y - - smtpd\n"
                               f"{h}:{sub_port} inet n - y - - smtpd\n"
                               f"  -o smtpd_tls_security_level=encrypt\n"
                               f"  -o smtpd_sasl_auth_enable=yes\n"
                               f"  -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject\n"
                               f"{h}:{smtps_port}      inet n - y - - smtpd\n"
                               f"  -o smtpd_tls_wrappermode=yes\n"
                               f"  -o smtpd_sasl_auth_enable=yes\n")
    tern = tern_instance.start()
    # Dovecot's "unix_listener /var/spool/postfix/private/auth", in tern's queue
    os.symlink(dovecot, tern.queue_dir / "private" / "auth")
    with smtplib.SMTP(h, sub_port, timeout=10) as c:
        c.ehlo("laptop")
        c.starttls(context=client_ctx())
        c.ehlo("laptop")
        c.login("imapuser@example.test", PASSWORD)
        c.sendmail("imapuser@example.test", ["far@remote.example"], b"Subject: seed\r\n\r\nx\r\n")
    with smtplib.SMTP_SSL(h, smtps_port, context=client_ctx(), timeout=10) as c:
        c.login("imapuser@example.test", PASSWORD)
        c.sendmail("imapuser@example.test", ["hal@localhost"], b"Subject: seed 465\r\n\r\nx\r\n")
    tern.wait_messages("hal")
    tern.wait_log("to=<far@remote.example>")
    # port 25 from outside: no relaying without a login
    c = smtplib.SMTP(h, tern_instance.port, timeout=10, source_address=("127.0.0.60", 0))
    c.ehlo("outside.example")
    c.mail("x@outside.example")
    assert c.rcpt("far@remote.example")[0] == 554
    c.quit()


def test_unreachable_backend_is_a_temporary_failure(tern_instance, tls_files, work_dir):
    sub = Submission(tern_instance, tls_files, smtpd_sasl_type="dovecot",
                     smtpd_sasl_path=str(work_dir / "no-such-socket"))
    tern_instance.start()
    with sub.submit() as c:
        code, text = c.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0u@example.test\0pw").decode())
        assert (code, text) == (454, b"4.7.0 Temporary authentication failure")
