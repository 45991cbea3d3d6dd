"""TLS on the server side: STARTTLS (RFC 3207) and port 465 wrapper mode
(RFC 8314), checked with Python's ssl module, openssl s_client and swaks."""
import os
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from conftest import process_pid, raw_session


def client_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def tls_tern(tern_instance, tls_files, kind="ec", master_cf=None, **params):
    cert, key = tls_files[kind]
    if master_cf:
        tern_instance.master_cf = master_cf
    tern_instance.write_config(smtpd_tls_cert_file=str(cert), smtpd_tls_key_file=str(key), **params)
    return tern_instance.start()


def test_starttls_is_offered_and_works(tern_instance, tls_files):
    tern = tls_tern(tern_instance, tls_files)
    with tern.smtp() as c:
        code, text = c.ehlo("client.example")
        assert b"STARTTLS" in text
        code, text = c.starttls(context=client_ctx())
        assert (code, text) == (220, b"2.0.0 Ready to start TLS")
        code, text = c.ehlo("client.example")
        assert code == 250 and b"STARTTLS" not in text   # not offered twice
        assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
        c.sendmail("you@localhost", ["bob@localhost"], b"Subject: over tls\r\n\r\nsecret\r\n")
    msg = tern.wait_messages("bob")[0].read_bytes()
    # Received: says ESMTPS and how (RFC 3848)
    received = msg.split(b"\nReceived: ", 1)[1].split(b"\n\S", 1)[0] if b"\nReceived: " in msg else msg
    assert re.search(rb"\(using TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\)\)", msg), msg[:600]
    assert b"with ESMTPS id" in msg
    log = tern.wait_log("Anonymous TLS connection established from localhost[127.0.0.1]: TLSv1.")
    tern.wait_log("starttls=1")


def test_no_starttls_without_a_certificate(tern):
    s = raw_session(tern)
    assert s.read_reply()[0] == 220
    code, text = s.cmd("EHLO client.example")
    assert "STARTTLS" not in text
    assert s.cmd("STARTTLS") == (502, "502 5.5.1 Error: command not implemented")


def test_starttls_rules(tern_instance, tls_files):
    tern = tls_tern(tern_instance, tls_files)
    s = raw_session(tern)
    assert s.read_reply()[0] == 220
    assert s.cmd("STARTTLS")[0] == 503            # before EHLO
    s.cmd("EHLO client.example")
    assert s.cmd("STARTTLS now")[0] == 501
    s.cmd("MAIL FROM:<a@localhost>")
    assert s.cmd("STARTTLS")[0] == 503            # inside a transaction
    s.close()


def test_plaintext_pipelined_after_starttls_is_never_executed(tern_instance, tls_files):
    """CVE-2011-0411: "STARTTLS\\r\\nRSET\\r\\n" in one packet; the RSET must be
    thrown away, not answered inside the TLS session."""
    tern = tls_tern(tern_instance, tls_files)
    sock = socket.create_connection((tern.host, tern.port), timeout=10)
    f = sock.makefile("rb")
    assert f.readline().startswith(b"220")
    sock.sendall(b"EHLO client.example\r\n")
    while True:
        line = f.readline()
        if line.startswith(b"250 "):
            break
    sock.sendall(b"STARTTLS\r\nRSET\r\nMAIL FROM:<evil@example.test>\r\n")
    assert f.readline() == b"220 2.0.0 Ready to start TLS\r\n"
    tls = client_ctx().wrap_socket(sock, server_hostname="mail.example.test")
    tls.sendall(b"NOOP\r\n")
    reply = b""
    while not reply.endswith(b"\r\n"):
        reply += tls.recv(4096)
    # the first reply in TLS answers our NOOP, not the injected RSET or MAIL
    assert reply == b"250 2.0.0 Ok\r\n", reply
    tls.sendall(b"MAIL FROM:<a@localhost>\r\n")
    assert tls.recv(4096).startswith(b"503")      # EHLO is needed again after TLS
    tls.close()
    assert "improper command pipelining after STARTTLS" in tern.wait_log("octets discarded")


def test_encrypt_level_requires_starttls(tern_instance, tls_files):
    tern = tls_tern(tern_instance, tls_files, smtpd_tls_security_level="encrypt")
    s = raw_session(tern)
    s.read_reply()
    s.cmd("EHLO client.example")
    assert s.cmd("MAIL FROM:<a@localhost>") == (530, "530 5.7.0 Must issue a STARTTLS command first")
    assert s.cmd("NOOP")[0] == 250
    s.close()
    with tern.smtp() as c:
        c.ehlo()
        c.starttls(context=client_ctx())
        c.ehlo()
        c.sendmail("you@localhost", ["carol@localhost"], b"Subject: enc\r\n\r\nx\r\n")
    tern.wait_messages("carol")


def test_wrapper_mode_port_465(tern_instance, tls_files, work_dir):
    from conftest import free_port
    port = free_port()
    tern = tls_tern(tern_instance, tls_files, kind="rsa",
                    master_cf=f"{tern_instance.host}:{tern_instance.port} inet n - n - - smtpd\n"
                              f"{tern_instance.host}:{port} inet n - n - - smtpd\n"
                              f"  -o smtpd_tls_wrappermode=yes\n")
    with smtplib.SMTP_SSL(tern.host, port, context=client_ctx(), timeout=10) as c:
        code, text = c.ehlo("client.example")
        assert code == 250 and b"STARTTLS" not in text
        c.sendmail("you@localhost", ["dave@localhost"], b"Subject: 465\r\n\r\nimplicit\r\n")
    msg = tern.wait_messages("dave")[0].read_bytes()
    assert b"with ESMTPS id" in msg
    # the plain port still works alongside
    with tern.smtp() as c:
        c.ehlo()
        c.sendmail("you@localhost", ["dave@localhost"], b"Subject: 25\r\n\r\nplain\r\n")
    tern.wait_messages("dave", 2)


def test_openssl_s_client_starttls(tern_instance, tls_files):
    tern = tls_tern(tern_instance, tls_files)
    r = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect", f"{tern.host}:{tern.port}",
                        "-servername", "mail.example.test", "-brief"],
                       input=b"EHLO client.example\r\nQUIT\r\n", capture_output=True, timeout=30)
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert "Protocol version: TLSv1.3" in out, out
    assert "CN = mail.example.test" in out or "CN=mail.example.test" in out, out


def s_client(tern, *args, stdin=b"EHLO client.example\r\nQUIT\r\n"):
    # -ign_eof: read until the server closes after QUIT, so a TLS 1.3
    # ticket (sent after the handshake) is seen and saved
    r = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect", f"{tern.host}:{tern.port}",
                        "-servername", "mail.example.test", "-ign_eof", *args],
                       input=stdin, capture_output=True, timeout=30)
    return (r.stdout + r.stderr).decode(errors="replace")


def tls12_handshake(tern, ciphers):
    """STARTTLS with TLS 1.2 and only these suites offered; the cipher, or None if refused."""
    ctx = client_ctx()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(ciphers)
    with tern.smtp() as c:
        c.ehlo()
        try:
            c.starttls(context=ctx)
        except (ssl.SSLError, smtplib.SMTPServerDisconnected, ConnectionResetError):
            return None
        return c.sock.cipher()[0]


def test_only_forward_secret_key_exchange_by_default(tern_instance, tls_files):
    tern = tls_tern(tern_instance, tls_files, kind="rsa")
    # static RSA key exchange (no forward secrecy) is not offered ...
    assert tls12_handshake(tern, "AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA") is None
    # ... ECDHE is
    assert tls12_handshake(tern, "ECDHE-RSA-AES128-GCM-SHA256") == "ECDHE-RSA-AES128-GCM-SHA256"


def test_static_rsa_when_configured(tern_instance, tls_files):
    tern = tls_tern(tern_instance, tls_files, kind="rsa", smtpd_tls_exclude_ciphers="")
    assert tls12_handshake(tern, "AES128-GCM-SHA256") == "AES128-GCM-SHA256"


@pytest.mark.parametrize("version", ["-tls1_3", "-tls1_2"])
def test_session_resumption_with_a_ticket(tern_instance, tls_files, work_dir, version):
    tern = tls_tern(tern_instance, tls_files)
    sess = work_dir / "session.pem"
    first = s_client(tern, version, "-sess_out", str(sess))
    assert "New, TLSv1." in first, first
    assert sess.exists() and sess.stat().st_size > 0
    second = s_client(tern, version, "-sess_in", str(sess))
    assert "Reused, TLSv1." in second, second


@pytest.mark.parametrize("version", ["-tls1_3", "-tls1_2"])
def test_no_resumption_when_tickets_are_off(tern_instance, tls_files, work_dir, version):
    tern = tls_tern(tern_instance, tls_files, smtpd_tls_session_cache_timeout="0")
    sess = work_dir / "session.pem"
    first = s_client(tern, version, "-sess_out", str(sess))
    assert "New, TLSv1." in first, first
    # no ticket and no server-side cache: nothing a client could resume with
    if sess.exists():
        second = s_client(tern, version, "-sess_in", str(sess))
        assert "New, TLSv1." in second and "Reused" not in second, second


def test_old_protocols_refused(tern_instance, tls_files):
    tern = tls_tern(tern_instance, tls_files)
    ctx = client_ctx()
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    with tern.smtp() as c:
        c.ehlo()
        with pytest.raises((ssl.SSLError, smtplib.SMTPServerDisconnected, ConnectionResetError, OSError)):
            c.starttls(context=ctx)
    tern.wait_log("SSL_accept error from localhost[127.0.0.1]")


def test_bad_key_is_a_configuration_error(tern_instance, tls_files, work_dir):
    cert, _ = tls_files["ec"]
    _, other_key = tls_files["rsa"]
    tern_instance.write_config(smtpd_tls_cert_file=str(cert), smtpd_tls_key_file=str(other_key))
    tern_instance.start(wait=False)
    tern_instance.proc.wait(timeout=20)
    assert tern_instance.proc.returncode != 0
    assert "does not match" in tern_instance.stderr_text() + tern_instance.log_text()


def test_swaks_starttls(tern_instance, tls_files):
    tern = tls_tern(tern_instance, tls_files)
    r = subprocess.run(["swaks", "--server", f"{tern.host}:{tern.port}", "--tls", "--from", "you@localhost",
                        "--to", "erin@localhost", "--body", "via swaks"],
                       capture_output=True, timeout=60)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, out
    assert "TLS started" in out
    tern.wait_messages("erin")


def test_sni_chooses_the_certificate(tern_instance, tls_files, work_dir):
    """tls_server_sni_maps: a client asking for alt.example.test gets that
    name's certificate; others get the default one."""
    alt = work_dir / "alt.pem"
    key, cert = work_dir / "alt-key.pem", work_dir / "alt-cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=alt.example.test"],
                   check=True, capture_output=True)
    alt.write_bytes(key.read_bytes() + cert.read_bytes())
    alt.chmod(0o600)
    sni = work_dir / "sni"
    sni.write_text(f"alt.example.test {alt}\n.alt.example.test {alt}\n")
    tern = tls_tern(tern_instance, tls_files, tls_server_sni_maps=f"texthash:{sni}")

    def subject(servername):
        sock = socket.create_connection((tern.host, tern.port), timeout=10)
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(b"EHLO client.example\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        sock.sendall(b"STARTTLS\r\n")
        assert f.readline().startswith(b"220")
        tls = client_ctx().wrap_socket(sock, server_hostname=servername)
        der = tls.getpeercert(binary_form=True)
        tls.close()
        out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject"], input=der,
                             capture_output=True).stdout.decode()
        return out.strip()

    assert "CN = alt.example.test" in subject("alt.example.test")
    assert "CN = alt.example.test" in subject("mx.alt.example.test")     # .domain entry
    assert "CN = mail.example.test" in subject("mail.example.test")
    assert "CN = mail.example.test" in subject("unknown.example")


def test_openssl_s_client_port_465_and_chain_files(tern_instance, tls_files, work_dir):
    """smtpd_tls_chain_files (key and chain in one file, RSA and ECDSA side
    by side) on a wrapper-mode port, checked with openssl s_client -connect."""
    from conftest import free_port
    chain = []
    for kind in ("rsa", "ec"):
        cert, key = tls_files[kind]
        f = work_dir / f"{kind}-chain.pem"
        f.write_bytes(key.read_bytes() + cert.read_bytes())
        f.chmod(0o600)
        chain.append(str(f))
    port = free_port()
    tern_instance.master_cf = (f"{tern_instance.host}:{tern_instance.port} inet n - n - - smtpd\n"
                               f"{tern_instance.host}:{port} inet n - n - - smtpd\n"
                               f"  -o smtpd_tls_wrappermode=yes\n")
    tern_instance.write_config(smtpd_tls_chain_files=", ".join(chain))
    tern = tern_instance.start()
    for sigalg, want in (("ECDSA+SHA256", "ECDSA"), ("RSA-PSS+SHA256", "RSA")):
        r = subprocess.run(["openssl", "s_client", "-connect", f"{tern.host}:{port}", "-brief", "-tls1_3", "-ign_eof",
                            "-sigalgs", sigalg], input=b"EHLO client.example\r\nQUIT\r\n", capture_output=True,
                           timeout=30)
        out = (r.stdout + r.stderr).decode(errors="replace")
        assert "Protocol version: TLSv1.3" in out, out
        assert f"Signature type: {want}" in out or (want == "RSA" and "Signature type: RSA-PSS" in out), out
        assert "220 mail.example.test ESMTP" in out, out


def test_client_that_never_reads_cannot_grow_smtpd_memory_over_tls(tern_instance, tls_files, monkeypatch):
    """After STARTTLS, a client streaming commands without reading the
    replies is held by the output bound as in plaintext."""
    from conftest import process_pid
    # ASan keeps freed memory in quarantine, which would count as growth
    monkeypatch.setenv("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:quarantine_size_mb=0")
    tern = tls_tern(tern_instance, tls_files)
    pid = process_pid(tern, "smtpd")

    def rss_kib():
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    sock = socket.create_connection((tern.host, tern.port), timeout=10)
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(b"EHLO client.example\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    sock.sendall(b"STARTTLS\r\n")
    assert f.readline().startswith(b"220")
    tls = client_ctx().wrap_socket(sock, server_hostname="mail.example.test")
    tls.setblocking(False)
    before = rss_kib()
    sent = 0
    chunk = b"EHLO x\r\n" * 4096
    deadline = time.time() + 5
    while time.time() < deadline and sent < 8 * 1024 * 1024:
        try:
            sent += tls.send(chunk)
        except (ssl.SSLWantWriteError, BlockingIOError):
            time.sleep(0.01)
    grown = rss_kib() - before
    tls.close()
    # unbounded, 8 MiB of EHLO would queue ~200 MiB of replies
    assert grown < 32 * 1024, (sent, grown)


def test_a_handshake_trickled_byte_by_byte_ends_at_smtpd_timeout(tern_instance, tls_files):
    """Each byte of a ClientHello resets the read timeout: on port 465 a
    client sending one every half second held its connection, before any
    greeting, without end. The handshake as a whole now has smtpd_timeout."""
    import socket
    from conftest import free_port
    port = free_port()
    tern = tls_tern(tern_instance, tls_files, kind="rsa", smtpd_timeout="2s",
                    master_cf=f"{tern_instance.host}:{tern_instance.port} inet n - n - - smtpd\n"
                              f"{tern_instance.host}:{port} inet n - n - - smtpd\n"
                              f"  -o smtpd_tls_wrappermode=yes\n")
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_ctx().wrap_bio(incoming, outgoing, server_side=False)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    assert len(hello) > 100
    s = socket.create_connection((tern.host, port), timeout=1)
    s.setblocking(False)
    t0 = time.monotonic()
    closed = False
    for b in hello:
        try:
            s.send(bytes([b]))
        except OSError:
            closed = True
            break
        try:
            if s.recv(1) == b"":
                closed = True
                break
        except BlockingIOError:
            pass
        except OSError:
            closed = True
            break
        if time.monotonic() - t0 > 12:
            break
        time.sleep(0.5)
    s.close()
    assert closed and time.monotonic() - t0 < 8, time.monotonic() - t0
    tern.wait_log("timeout after TLS handshake from localhost[127.0.0.1]")


def starttls_socket(tern):
    """A plaintext connection taken through EHLO and STARTTLS."""
    sock = socket.create_connection((tern.host, tern.port), timeout=20)
    f = sock.makefile("rb")
    assert f.readline().startswith(b"220")
    sock.sendall(b"EHLO client.example\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    sock.sendall(b"STARTTLS\r\n")
    assert f.readline().startswith(b"220")
    return client_ctx().wrap_socket(sock, server_hostname="mail.example.test")


def test_pipelined_commands_over_starttls_are_answered_once_each_in_order(tern_instance, tls_files):
    """Over STARTTLS a session reads 8 KiB of commands ahead; taking a line
    from the TLS filter's input makes it decrypt more at once, which must
    never run the session's handlers inside its own: 60 KB of pipelined
    commands in full TLS records are each answered once, in order, and
    a close right behind 12 KB of them frees the session only once (it
    was freed while a line was still being handled)."""
    tern = tls_tern(tern_instance, tls_files, smtpd_junk_command_limit="2000000000")
    tls = starttls_socket(tern)
    tls.sendall(b"NOOP\r\n" * 10000)
    expected = b"250 2.0.0 Ok\r\n" * 10000
    got = b""
    while len(got) < len(expected):
        chunk = tls.recv(1 << 16)
        assert chunk, ("connection closed", len(got), got[-200:])
        got += chunk
    assert got == expected, (len(got), got[:200])
    tls.sendall(b"QUIT\r\n")
    assert tls.recv(4096).startswith(b"221")
    tls.close()

    tls = starttls_socket(tern)
    tls.sendall(b"NOOP\r\n" * 2000)
    try:
        tls.unwrap()                   # close_notify right behind the commands
    except (ssl.SSLError, OSError):
        pass                           # sent; the replies coming meanwhile are not read
    tls.close()
    # the session ends once (what was not handled when the close came is
    # dropped, as a lost connection); the fixture checks for sanitizer reports
    log = tern.wait_log(r"disconnect from localhost\[127\.0\.0\.1\] ehlo=1 starttls=1 noop=\d+ commands=\d+\n",
                        regex=True)
    assert int(re.findall(r"starttls=1 noop=(\d+) commands", log)[-1]) <= 2000
    assert log.count("Anonymous TLS connection established") == 2


class TLSReplies:
    """Commands and replies over a TLS socket."""

    def __init__(self, tls):
        self.tls, self.buf = tls, b""

    def reply(self, timeout=10):
        self.tls.settimeout(timeout)
        while True:
            while b"\n" not in self.buf:
                chunk = self.tls.recv(65536)
                if not chunk:
                    raise EOFError(f"closed; partial {self.buf!r}")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            if line[3:4] != b"-":
                return int(line[:3]), line.rstrip(b"\r").decode()

    def cmd(self, line):
        self.tls.sendall(line.encode() + b"\r\n")
        return self.reply()


def commit_over_starttls_with_the_queue_stopped(tern, seconds):
    """A STARTTLS session whose final dot is sent with the queue process
    stopped for the given seconds (None: until the reply comes); the reply."""
    smtplib.SMTP(tern.host, tern.port).sendmail("a@example.org", ["first@localhost"],
                                                 "From: a@example.org\r\nSubject: first\r\n\r\nfirst\r\n")
    tern.wait_log(": removed")   # the queue has logged: its pid is known
    queue = process_pid(tern, "queue")
    s = TLSReplies(starttls_socket(tern))
    assert s.cmd("EHLO client.example")[0] == 250
    assert s.cmd("MAIL FROM:<a@example.org>")[0] == 250
    assert s.cmd("RCPT TO:<you@localhost>")[0] == 250
    assert s.cmd("DATA")[0] == 354
    os.kill(queue, signal.SIGSTOP)
    try:
        s.tls.sendall(b"From: a@example.org\r\nSubject: over TLS\r\n\r\nbody\r\n.\r\n")
        if seconds:
            time.sleep(seconds)
            os.kill(queue, signal.SIGCONT)
        return s, s.reply(timeout=10)
    finally:
        os.kill(queue, signal.SIGCONT)


def test_after_a_slow_commit_over_starttls_the_idle_time_counts_from_the_reply(tern_instance, tls_files):
    """Over STARTTLS the client's idle time counts from the commit's 250, as
    in plaintext: the socket under the TLS filter keeps no read timer of its
    own (it ran from the final dot: a 1.5 s commit with smtpd_timeout 2 s
    left the client 0.5 s after its 250)."""
    tern = tls_tern(tern_instance, tls_files, smtpd_timeout="2s")
    s, reply = commit_over_starttls_with_the_queue_stopped(tern, 1.5)
    assert reply[0] == 250, reply
    time.sleep(1.0)
    assert s.cmd("NOOP") == (250, "250 2.0.0 Ok"), tern.log_text()[-1500:]
    assert "timeout after" not in tern.log_text()


def test_a_commit_longer_than_smtpd_timeout_over_starttls_is_answered_451(tern_instance, tls_files):
    """The commit's own bound answers a commit that outlasts smtpd_timeout,
    451 4.3.0, and the session goes on: no 421 for a client that was
    waiting for us, over STARTTLS as in plaintext."""
    tern = tls_tern(tern_instance, tls_files, smtpd_timeout="2s")
    s, reply = commit_over_starttls_with_the_queue_stopped(tern, None)
    assert reply == (451, "451 4.3.0 Error: queue service timeout, try again later"), reply
    assert s.cmd("NOOP") == (250, "250 2.0.0 Ok"), tern.log_text()[-1500:]
    assert "timeout after" not in tern.log_text()
