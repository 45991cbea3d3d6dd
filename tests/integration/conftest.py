"""Fixtures for tern's integration tests.

`tern_instance` starts a real tern (the sanitizer build from TERN_BIN) in a
temporary directory on a free loopback port and stops it afterwards; the
test fails if any tern process printed a sanitizer report. The instance
delivers into Maildirs under its directory (local_mailbox_base) unless a
test writes its own main.cf first (see TernInstance.write_config).
"""
import os
import re
import shutil
import tempfile
import signal
import smtplib
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TERN_BIN = os.environ.get("TERN_BIN", str(REPO / "build" / "tern"))
SANITIZER_RE = re.compile(r"(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer)")


# ---- no silent skips under continuous integration ---------------------------
# With CI set (CI=true; "", "0" and "false" count as unset) a skipped test is
# reported as failed with its skip reason: a missing tool, package or test
# data must never pass silently there. A test that may legitimately skip
# even in CI says so with @pytest.mark.allow_skip("why"); none needs it when
# run as root with scripts/deps.sh installed. Expected failures (xfail) are
# not skips and are left alone.


def under_ci():
    return os.environ.get("CI", "") not in ("", "0", "false")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "allow_skip(reason): this test may skip even under CI=true (give the reason)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or hasattr(report, "wasxfail") or not under_ci():
        return
    if item.get_closest_marker("allow_skip") is not None:
        return
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    report.outcome = "failed"
    report.longrepr = "skipped under CI=%s, which allows no skip: %s" % (os.environ.get("CI"), reason)


def free_port(host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(host, port, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class TernInstance:
    """One tern instance: config dir, queue, mailboxes, log, process."""

    def __init__(self, base: Path, port: int = None, host: str = "127.0.0.1"):
        self.dir = base
        self.host = host
        self.port = port or free_port(host)
        self.queue_dir = base / "spool"
        self.mail_dir = base / "mail"
        self.log_path = base / "maillog"
        self.stderr_path = base / "stderr.log"
        self.proc = None
        self.extra_main = {}
        self.master_cf = None

    # -- configuration -------------------------------------------------
    def main_cf_text(self):
        params = {
            "myhostname": "mail.example.test",
            "mydomain": "example.test",
            "myorigin": "$mydomain",
            "mydestination": "$myhostname, localhost.$mydomain, localhost, example.test",
            "inet_interfaces": "loopback-only",
            "queue_directory": str(self.queue_dir),
            "maillog_file": str(self.log_path),
            "local_mailbox_base": str(self.mail_dir),
            "home_mailbox": "Maildir/",
            "alias_maps": "",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            # Tests never reach the Internet: a resolver nobody runs, and
            # mail for other domains goes to a port where nothing listens,
            # so it stays deferred (the relay tests set both to real peers).
            "dns_resolvers": "127.0.0.1:9",
            "relayhost": "[127.0.0.3]:1",
            # ... so SPF, DKIM and DMARC, which need answers, are off unless
            # a test brings a DNS (test_mailauth.py).
            "smtpd_mail_authentication": "no",
            # the journal (queue_sync_method's default) writes two segments
            # at its first start: 4 MiB each here, not 64, for 500 instances
            "queue_journal_segment_size": "4194304",
        }
        # TERN_TEST_QUEUE_SYNC=journal runs the whole suite on another
        # queue_sync_method (a test that sets its own keeps it)
        if os.environ.get("TERN_TEST_QUEUE_SYNC"):
            params["queue_sync_method"] = os.environ["TERN_TEST_QUEUE_SYNC"]
        params.update(self.extra_main)
        return "".join(f"{k} = {v}\n" for k, v in params.items() if v is not None)

    def write_config(self, **params):
        """Sets main.cf parameters (None removes one) before start()."""
        self.extra_main.update(params)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "main.cf").write_text(self.main_cf_text())
        if self.master_cf is None:
            self.master_cf = f"{self.host}:{self.port} inet n - n - - smtpd\n"
        (self.dir / "master.cf").write_text(self.master_cf)

    # -- process -------------------------------------------------------
    def start(self, wait=True):
        self.write_config()
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        # a restart (after kill9) must wait for its own "daemon started", not the last one's
        started_before = self.log_text().count("daemon started")
        self.stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen([TERN_BIN, "-c", str(self.dir), "serve"],
                                     stdout=self.stderr, stderr=self.stderr, env=env,
                                     start_new_session=True)
        if wait:
            assert wait_port(self.host, self.port), "tern did not start listening:\n" + self.stderr_text()
            self.wait_log("daemon started", timeout=5, required=False, count=started_before + 1)
        return self

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if not self.proc:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # children of a killed master are in its session: never leave them behind
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc = None
        self.stderr.close()

    def kill9(self):
        """kill -9 the whole instance (master and children) at once."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None
        self.stderr.close()

    # -- observation ---------------------------------------------------
    def stderr_text(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern, timeout=10.0, regex=False, required=True, count=1):
        deadline = time.time() + timeout
        while time.time() < deadline:
            text = self.log_text()
            n = len(re.findall(pattern, text)) if regex else text.count(pattern)
            if n >= count:
                return text
            time.sleep(0.05)
        if required:
            raise AssertionError(f"log never showed {pattern!r} x{count}:\n{self.log_text()[-4000:]}")
        return None

    def maildir(self, user):
        return self.mail_dir / user / "Maildir"

    def messages(self, user):
        new = self.maildir(user) / "new"
        if not new.is_dir():
            return []
        return sorted(new.iterdir())

    def wait_messages(self, user, count=1, timeout=10.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            msgs = self.messages(user)
            if len(msgs) >= count:
                return msgs
            time.sleep(0.05)
        raise AssertionError(f"{user}: expected {count} messages, have {len(self.messages(user))}\n"
                             + self.log_text()[-4000:])

    def smtp(self, **kw):
        return smtplib.SMTP(self.host, self.port, timeout=kw.pop("timeout", 10), **kw)

    def raw(self):
        return RawSession(self.host, self.port)

    def cli(self, *args, input=None, check=False, env_extra=None, timeout=60):
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        if env_extra:
            env.update(env_extra)
        r = subprocess.run([TERN_BIN, "-c", str(self.dir), *args], input=input, capture_output=True,
                           env=env, timeout=timeout)
        out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
        assert not SANITIZER_RE.search(out), out
        if check:
            assert r.returncode == 0, out
        return r

    def sanitizer_reports(self):
        return SANITIZER_RE.findall(self.stderr_text())


class RawSession:
    """A byte-level SMTP client for protocol edge cases and pipelining."""

    def __init__(self, host, port, timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def send(self, data: bytes):
        self.sock.sendall(data)

    def read_reply(self, timeout=10):
        """Reads one complete (possibly multi-line) reply; returns (code, text)."""
        self.sock.settimeout(timeout)
        lines = []
        while True:
            while b"\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise EOFError("connection closed; partial: %r" % self.buf)
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            line = line.rstrip(b"\r").decode(errors="replace")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return int(line[:3]), "\n".join(lines)

    def cmd(self, line: str):
        self.send(line.encode() + b"\r\n")
        return self.read_reply()

    def read_all(self, timeout=5):
        """Reads until the server closes the connection."""
        self.sock.settimeout(timeout)
        data = self.buf
        self.buf = b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except socket.timeout:
            pass
        return data.decode(errors="replace")

    def close(self):
        self.sock.close()


@pytest.fixture
def work_dir():
    """A fresh directory that tern's unprivileged processes can traverse
    (pytest's own tmp_path lives under a 0700 directory)."""
    base = Path(tempfile.mkdtemp(prefix="tern-test-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def tern_instance(work_dir):
    """A tern with Maildirs under its directory; stopped afterwards."""
    inst = TernInstance(work_dir / "tern")
    yield inst
    inst.stop()
    reports = inst.sanitizer_reports()
    assert not reports, "sanitizer reports:\n" + inst.stderr_text()[-8000:]
    # a child that hangs at exit (e.g. a sanitizer's exit work refused by
    # smtpd's sandbox) costs every test the master's grace period: fail it
    assert "children did not stop in time" not in inst.stderr_text(), inst.stderr_text()[-4000:]


@pytest.fixture
def tern(tern_instance):
    return tern_instance.start()


# -- helpers for the SMTP server tests (test_smtp_*.py) ---------------------

def raw_session(inst, source=None, timeout=10):
    """A RawSession to inst, optionally from a given local source address
    (any 127.x.y.z works on Linux loopback), greeting not yet read."""
    s = RawSession.__new__(RawSession)
    s.sock = socket.create_connection((inst.host, inst.port), timeout=timeout,
                                      source_address=(source, 0) if source else None)
    s.buf = b""
    return s


def process_pid(inst, name):
    """The pid of a tern child process ("smtpd", "queue", ...) from the log."""
    pattern = r"tern/%s\[(\d+)\]" % re.escape(name)
    inst.wait_log(pattern, timeout=10, regex=True)
    return int(re.findall(pattern, inst.log_text())[-1])


def settle_queue(inst, timeout=5.0):
    """Waits (best effort, never fails) until every message the queue took
    is removed or deferred, so that stopping tern does not race a delivery."""
    if inst.proc is None:
        return
    deadline = time.time() + timeout
    while time.time() < deadline:
        log = inst.log_text()
        ids = set(re.findall(r"\]: ([0-9A-Z]+): from=<", log))
        done = set(re.findall(r"\]: ([0-9A-Z]+): removed", log))
        done |= set(re.findall(r"\]: ([0-9A-Z]+): to=<[^\n]*status=deferred", log))
        if ids <= done:
            return
        time.sleep(0.05)


def smtp_greeted(inst, ehlo="client.example", source=None):
    """A RawSession past the 220 greeting and, unless ehlo is None, EHLO."""
    s = raw_session(inst, source=source)
    code, text = s.read_reply()
    assert code == 220, text
    if ehlo:
        code, text = s.cmd(f"EHLO {ehlo}")
        assert code == 250, text
    return s


def smtp_send_data(sess, content: bytes):
    """DATA with content (already dot-stuffed, ending in CRLF); the final reply."""
    code, text = sess.cmd("DATA")
    assert (code, text) == (354, "354 End data with <CR><LF>.<CR><LF>"), text
    sess.send(content + b".\r\n")
    return sess.read_reply()


def smtp_queue_id(text):
    """The queue ID from a "250 2.0.0 Ok: queued as ID" reply (asserts the form)."""
    m = re.fullmatch(r"250 2\.0\.0 Ok: queued as ([0-9A-Z]+)", text)
    assert m, text
    return m.group(1)


# -- TLS --------------------------------------------------------------------

@pytest.fixture(scope="session")
def tls_files():
    """A throwaway self-signed certificate for mail.example.test, made with
    openssl for this test run (RSA and ECDSA); never a key from the repo."""
    d = Path(tempfile.mkdtemp(prefix="tern-tls-"))
    d.chmod(0o755)
    files = {}
    for kind, args in (("ec", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]),
                       ("rsa", ["-newkey", "rsa:2048"])):
        key, cert = d / f"{kind}-key.pem", d / f"{kind}-cert.pem"
        subprocess.run(["openssl", "req", "-x509", *args, "-nodes", "-keyout", str(key), "-out", str(cert),
                        "-days", "2", "-subj", "/CN=mail.example.test",
                        "-addext", "subjectAltName=DNS:mail.example.test,DNS:localhost,DNS:mx.nemesis.test"],
                       check=True, capture_output=True)
        key.chmod(0o600)   # as a real key: only root (the master) reads it
        files[kind] = (cert, key)
    yield files
    shutil.rmtree(d, ignore_errors=True)

