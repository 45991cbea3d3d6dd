"""Real peers for the relay tests: an unbound serving relay.zone, recording
SMTP servers (aiosmtpd) on port 25 of other loopback addresses, smtp-sink.

Everything listens on 127.0.0.0/8 only and is stopped by its fixture.
Port 25 needs root, as `make test` runs; without it the tests skip.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
UNBOUND = "/usr/sbin/unbound"
SMTP_SINK = "/usr/sbin/smtp-sink"


def free_udp_tcp_port(host="127.0.0.1"):
    """A port free for both TCP and UDP on host (unbound wants both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind((host, 0))
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind((host, port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


def can_bind_25(host="127.0.0.2"):
    try:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, 25))
        return True
    except OSError:
        return False


class Unbound:
    """unbound serving a zone file for "test." on a loopback port."""

    def __init__(self, zone: Path):
        self.dir = Path(tempfile.mkdtemp(prefix="tern-dns-"))
        self.dir.chmod(0o755)
        self.port = free_udp_tcp_port()
        zone_copy = self.dir / "test.zone"
        shutil.copy(zone, zone_copy)
        conf = (REPO / "tests" / "dns" / "unbound.conf.in").read_text()
        conf = conf.replace("@DIR@", str(self.dir)).replace("@PORT@", str(self.port))
        conf = conf.replace("@ZONEFILE@", str(zone_copy))
        (self.dir / "unbound.conf").write_text(conf)
        self.log = open(self.dir / "unbound.log", "wb")
        self.proc = subprocess.Popen([UNBOUND, "-d", "-c", str(self.dir / "unbound.conf")],
                                     stdout=self.log, stderr=self.log, start_new_session=True)
        self._wait()

    def _wait(self):
        # A query for the SOA answers once the zone is loaded.
        query = (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                 b"\x04test\x00\x00\x06\x00\x01")
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("unbound exited: " + (self.dir / "unbound.log").read_text())
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(0.3)
                try:
                    s.sendto(query, ("127.0.0.1", self.port))
                    data = s.recv(512)
                    if data[:2] == b"\x12\x34" and (data[3] & 0x0F) == 0:
                        return
                except OSError:
                    pass
            time.sleep(0.1)
        raise RuntimeError("unbound did not answer")

    @property
    def resolver(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Received:
    """One transaction a recording peer accepted."""

    def __init__(self, mail_from, mail_options, rcpts, rcpt_options, content, helo):
        self.mail_from = mail_from
        self.mail_options = mail_options
        self.rcpts = rcpts
        self.rcpt_options = rcpt_options
        self.content = content
        self.helo = helo


class RecordingPeer:
    """An aiosmtpd server on host:port that records what it accepts.

    replies: {"rcpt": {address: "550 5.1.1 ..."}, "data": "451 ..."}; a
    list value is used one entry per attempt (then "250" behaviour)."""

    def __init__(self, host, port=25, data_size_limit=None, smtputf8=True, replies=None, data_delay=0,
                 hostname="mx.peer.test"):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import SMTP as AioSMTP

        self.host, self.port = host, port
        self.received = []
        self.mail_commands = 0
        self.replies = replies or {}
        self.data_started = threading.Event()
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        peer = self

        class Handler:
            async def handle_MAIL(self, server, session, envelope, address, mail_options):
                peer.mail_commands += 1
                reply = peer._reply("mail", None)
                if reply:
                    return reply
                envelope.mail_from = address
                envelope.mail_options.extend(mail_options)
                return "250 2.1.0 Ok"

            async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
                reply = peer._reply("rcpt", address)
                if reply:
                    return reply
                envelope.rcpt_tos.append(address)
                envelope.rcpt_options.append(rcpt_options)
                return "250 2.1.5 Ok"

            async def handle_DATA(self, server, session, envelope):
                peer.data_started.set()
                if data_delay:
                    import asyncio
                    await asyncio.sleep(data_delay)   # a slow reply to the final dot
                reply = peer._reply("data", None)
                if reply:
                    return reply
                with peer.cond:
                    peer.received.append(Received(envelope.mail_from, list(envelope.mail_options),
                                                  list(envelope.rcpt_tos), list(envelope.rcpt_options),
                                                  envelope.original_content, session.host_name))
                    peer.cond.notify_all()
                return "250 2.0.0 Ok: queued as PEER%d" % len(peer.received)

        class Controller2(Controller):
            def factory(self):
                return AioSMTP(self.handler, data_size_limit=data_size_limit, enable_SMTPUTF8=smtputf8,
                               decode_data=False, hostname=hostname)

        self.controller = Controller2(Handler(), hostname=host, port=port)
        self.controller.start()

    def _reply(self, stage, key):
        with self.lock:
            table = self.replies.get(stage)
            if table is None:
                return None
            value = table.get(key) if isinstance(table, dict) else table
            if isinstance(value, list):
                return value.pop(0) if value else None
            return value

    def wait(self, count=1, timeout=15):
        with self.cond:
            self.cond.wait_for(lambda: len(self.received) >= count, timeout)
            assert len(self.received) >= count, f"peer {self.host} got {len(self.received)} of {count}"
            return list(self.received)

    def stop(self):
        self.controller.stop()


class SmtpSink:
    """Postfix's smtp-sink on host:25, with its reject options."""

    def __init__(self, host, *options, dump=False):
        self.dir = Path(tempfile.mkdtemp(prefix="tern-sink-"))
        self.dir.chmod(0o777)
        self.dumps = self.dir / "dumps"
        self.dumps.mkdir(mode=0o777)
        self.dumps.chmod(0o777)
        args = [SMTP_SINK, "-h", "mx.sinkfail.test"]
        if os.geteuid() == 0:
            args += ["-u", "nobody"]
        if dump:
            # one file per transaction: its envelope as X- headers, then the message
            args += ["-d", f"{self.dumps}/%H%M%S."]
        args += list(options) + [f"{host}:25", "64"]
        self.log = open(self.dir / "sink.log", "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log, start_new_session=True)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection((host, 25), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("smtp-sink did not start")

    def wait_dumps(self, count=1, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            files = sorted(self.dumps.iterdir())
            if len(files) >= count:
                time.sleep(0.1)   # written in one go at the end of DATA; be sure
                return [f.read_bytes() for f in files]
            time.sleep(0.05)
        raise AssertionError(f"smtp-sink received {len(list(self.dumps.iterdir()))} of {count}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def test_dns():
    if not os.path.exists(UNBOUND):
        pytest.skip("unbound is not installed")
    if not can_bind_25():
        pytest.skip("binding port 25 on 127.0.0.x needs root")
    server = Unbound(HERE / "relay.zone")
    yield server
    server.stop()


@pytest.fixture
def peer():
    """The recording exchanger of sink.test (127.0.0.2:25)."""
    p = RecordingPeer("127.0.0.2")
    yield p
    p.stop()


class PostfixPeer:
    """A private Postfix instance on host:25 (root only): postfix.test is a
    virtual mailbox domain delivering into Maildirs under its directory;
    whatever it would send elsewhere is discarded (it never asks DNS)."""

    MASTER_CF = ("{listen} inet n - n - - smtpd\n"
                 "pickup    unix  n - n 60    1 pickup\n"
                 "cleanup   unix  n - n -     0 cleanup\n"
                 "qmgr      unix  n - n 300   1 qmgr\n"
                 "rewrite   unix  - - n -     - trivial-rewrite\n"
                 "bounce    unix  - - n -     0 bounce\n"
                 "defer     unix  - - n -     0 bounce\n"
                 "trace     unix  - - n -     0 bounce\n"
                 "verify    unix  - - n -     1 verify\n"
                 "proxymap  unix  - - n -     - proxymap\n"
                 "error     unix  - - n -     - error\n"
                 "retry     unix  - - n -     - error\n"
                 "discard   unix  - - n -     - discard\n"
                 "virtual   unix  - n n -     - virtual\n"
                 "anvil     unix  - - n -     1 anvil\n"
                 "scache    unix  - - n -     1 scache\n"
                 "postlog   unix-dgram n - n - 1 postlogd\n")

    def __init__(self, host, users=("pat",), domain="postfix.test"):
        import pwd
        self.dir = Path(tempfile.mkdtemp(prefix="tern-postfix-"))
        self.dir.chmod(0o755)
        self.etc = self.dir / "etc"
        self.etc.mkdir()
        (self.dir / "queue").mkdir()
        self.mail = self.dir / "mail"
        self.mail.mkdir()
        nobody = pwd.getpwnam("nobody")
        os.chown(self.mail, nobody.pw_uid, nobody.pw_gid)
        (self.etc / "vmailbox").write_text("".join(f"{u}@{domain} {u}/Maildir/\n" for u in users))
        d = self.dir
        (self.etc / "main.cf").write_text(
            "compatibility_level = 3.6\n"
            f"myhostname = mx.{domain}\n"
            f"mydomain = {domain}\n"
            "mydestination = $myhostname, localhost\n"
            "inet_interfaces = 127.0.0.1\n"
            "inet_protocols = ipv4\n"
            f"queue_directory = {d}/queue\n"
            f"data_directory = {d}/data\n"
            "mail_owner = postfix\n"
            "setgid_group = postdrop\n"
            f"maillog_file = {d}/maillog\n"
            f"maillog_file_prefixes = {d}\n"
            "alias_maps =\n"
            "alias_database =\n"
            "mynetworks = 127.0.0.0/8\n"
            "default_transport = discard\n"
            "relay_transport = discard\n"
            "smtp_dns_support_level = disabled\n"
            "smtpd_peername_lookup = no\n"
            f"virtual_mailbox_domains = {domain}\n"
            f"virtual_mailbox_base = {self.mail}\n"
            f"virtual_mailbox_maps = texthash:{self.etc}/vmailbox\n"
            f"virtual_uid_maps = static:{nobody.pw_uid}\n"
            f"virtual_gid_maps = static:{nobody.pw_gid}\n")
        (self.etc / "master.cf").write_text(self.MASTER_CF.format(listen=f"{host}:25"))
        self.postfix("start")
        self.master_pid = None
        deadline = time.time() + 20
        while time.time() < deadline and not self.master_pid:
            try:
                self.master_pid = int((d / "queue" / "pid" / "master.pid").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                time.sleep(0.1)
        while time.time() < deadline:
            try:
                with socket.create_connection((host, 25), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("Postfix did not start: " + self.log_text()[-2000:])

    def postfix(self, *args):
        r = subprocess.run(["/usr/sbin/postfix", "-c", str(self.etc), *args], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"postfix {' '.join(args)}: {r.stdout}{r.stderr}{self.log_text()[-2000:]}")

    def log_text(self):
        try:
            return (self.dir / "maillog").read_text(errors="replace")
        except OSError:
            return ""

    def wait_messages(self, user, count=1, timeout=20):
        new = self.mail / user / "Maildir" / "new"
        deadline = time.time() + timeout
        while time.time() < deadline:
            msgs = sorted(new.iterdir()) if new.is_dir() else []
            if len(msgs) >= count:
                return msgs
            time.sleep(0.1)
        raise AssertionError(f"Postfix has no mail for {user}:\n" + self.log_text()[-3000:])

    def stop(self):
        try:
            self.postfix("stop")
        except RuntimeError:
            pass
        deadline = time.time() + 20
        while self.master_pid and os.path.exists(f"/proc/{self.master_pid}") and time.time() < deadline:
            time.sleep(0.1)
        if self.master_pid and os.path.exists(f"/proc/{self.master_pid}"):
            try:
                os.kill(self.master_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)
