"""What one client or one local user can hold (issue 8, section 3).

public/qmgr is open to every local user: a user's connections are limited,
root and mail_owner keep slots of their own, a LIST that nobody reads stops
producing, pickup pokes are coalesced and an unreadable drop file is moved
aside. smtpd has a memory budget for all sessions (smtpd_memory_limit) and
refuses mail when the queue file system is short of space (queue_minfree).

Local users are played by `nobody` (setpriv), the test itself is root.
"""
import os
import re
import socket
import struct
import subprocess
import sys
import time

import pytest

from conftest import TERN_BIN, process_pid
from conftest import smtp_greeted as greeted, smtp_send_data as send_data

IPC_QUEUE_LIST, IPC_QUEUE_LIST_ITEM, IPC_PICKUP, IPC_DONE = 5, 6, 11, 12

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (setpriv, tmpfs, mail_owner)")


def ipc_request(msg_type, reqid=1):
    """A public/qmgr request without attributes: u16 type, u32 request id."""
    return struct.pack("<HI", msg_type, reqid)


def qmgr_socket(inst):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(str(inst.queue_dir / "public" / "qmgr"))
    return s


def as_nobody(*argv):
    return ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups", *argv]


def vm_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1))


def submit_many_recipients(inst, messages, rcpts):
    """messages messages of rcpts long remote recipients each (they stay queued)."""
    s = greeted(inst)
    pad = "x" * 40
    for m in range(messages):
        lines = [f"MAIL FROM:<sender@localhost>"]
        lines += [f"RCPT TO:<r{m}-{i}-{pad}@remote.example>" for i in range(rcpts)]
        s.send(("\r\n".join(lines) + "\r\n").encode())
        for _ in range(rcpts + 1):
            code, text = s.read_reply(timeout=60)
            assert code == 250, text
        code, text = send_data(s, f"Subject: many {m}\r\n\r\nbody\r\n".encode())
        assert code == 250, text
    s.cmd("QUIT")
    s.close()


# ---------------------------------------------------------------- public/qmgr

def test_list_that_nobody_reads_keeps_the_queue_process_small(tern_instance, monkeypatch):
    tern = tern_instance
    # ASan keeps freed memory in quarantine (up to 256 MB), which would count
    # as growth here; without it RSS shows what the queue process holds
    monkeypatch.setenv("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:quarantine_size_mb=0")
    tern.start()
    submit_many_recipients(tern, messages=60, rcpts=1000)
    assert tern.cli("queue", "hold", "ALL").returncode == 0
    # a full listing once, so the allocator has seen one
    r = tern.cli("queue")
    assert r.returncode == 0 and r.stdout.count(b"remote.example") >= 60 * 400, r.stderr
    pid = process_pid(tern, "queue")
    before = vm_rss_kb(pid)
    # 8 clients ask for a listing of ~3.7 MB each and never read
    idle = [qmgr_socket(tern) for _ in range(8)]
    for s in idle:
        s.send(ipc_request(IPC_QUEUE_LIST))
    time.sleep(3)
    grown = vm_rss_kb(pid) - before
    assert grown < 8 * 1024, f"queue process grew by {grown} kB for 8 clients that do not read"
    # the listing is still whole for a client that reads, however slowly
    s = idle[0]
    s.settimeout(10)
    items = 0
    while True:
        packet = s.recv(70000)
        msg_type = struct.unpack("<H", packet[:2])[0]
        if msg_type == IPC_DONE:
            break
        assert msg_type == IPC_QUEUE_LIST_ITEM
        items += 1
        if items % 10 == 0:
            time.sleep(0.05)
    assert items == 60
    for s in idle:
        s.close()
    assert tern.cli("queue", "delete", "ALL").returncode == 0


def test_pickup_flood_and_an_unreadable_drop_file_do_not_slow_smtp(tern):
    maildrop = tern.queue_dir / "maildrop"
    bad = [maildrop / f"UNREADABLE{i}" for i in range(300)]
    staging = tern.dir / "staging"   # made unreadable before pickup can see them
    staging.mkdir()
    for f in bad:
        tmp = staging / f.name
        tmp.write_bytes(b"not for the mail system\n")
        os.chown(tmp, 65534, 65534)
        tmp.chmod(0)
        os.rename(tmp, f)
    flood = subprocess.Popen(as_nobody(sys.executable, "-c", FLOOD, str(tern.queue_dir / "public" / "qmgr"), "6"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(1)   # the flood is running
        slowest = 0.0
        for i in range(3):
            s = greeted(tern)
            assert s.cmd("MAIL FROM:<sender@localhost>")[0] == 250
            assert s.cmd("RCPT TO:<alice@localhost>")[0] == 250
            assert s.cmd("DATA")[0] == 354
            s.send(f"Subject: during the flood {i}\r\n\r\nbody\r\n".encode())
            start = time.monotonic()
            s.send(b".\r\n")
            code, text = s.read_reply()
            slowest = max(slowest, time.monotonic() - start)
            assert code == 250, text
            s.cmd("QUIT")
            s.close()
        assert slowest < 1.0, f"250 after DATA took {slowest:.2f} s during a PICKUP flood"
    finally:
        out, err = flood.communicate(timeout=30)
    pokes = int(out.decode().strip() or 0)
    assert pokes > 100, err.decode()
    # the unreadable files went aside, each logged once, where only the mail system reads
    assert not any(f.exists() for f in bad)
    assert (tern.queue_dir / "corrupt" / "maildrop-UNREADABLE7").exists()
    assert len(re.findall(r"maildrop/UNREADABLE\d+: not readable", tern.log_text())) == 300
    corrupt_mode = (tern.queue_dir / "corrupt").stat().st_mode & 0o777
    assert corrupt_mode == 0o700
    tern.wait_messages("alice", count=3)


# Runs as nobody: opens as many public/qmgr connections as it gets (up to
# 64) and pokes PICKUP on all of them for the given seconds, reading answers
# only now and then. Prints the number of pokes sent.
FLOOD = r"""
import socket, struct, sys, time, errno
path, seconds = sys.argv[1], float(sys.argv[2])
conns = []
for _ in range(64):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        s.connect(path)
    except OSError:
        break
    s.setblocking(False)
    conns.append(s)
poke = struct.pack("<HI", 11, 1)
sent = 0
end = time.monotonic() + seconds
while time.monotonic() < end and conns:
    for s in list(conns):
        try:
            for _ in range(32):
                s.send(poke)
                sent += 1
        except BlockingIOError:
            pass
        except OSError:
            conns.remove(s)
            continue
        try:
            while True:
                if not s.recv(65536):
                    conns.remove(s)
                    break
        except BlockingIOError:
            pass
        except OSError:
            conns.remove(s)
print(sent)
"""

# Runs as nobody: takes every public/qmgr connection it can (up to 80) and
# holds them; prints how many the queue kept open, then waits for stdin.
HOG = r"""
import socket, sys, time, select
path = sys.argv[1]
conns = []
for _ in range(80):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        s.connect(path)
    except OSError:
        break
    conns.append(s)
time.sleep(1)
alive = 0
for s in conns:
    r, _, _ = select.select([s], [], [], 0)
    if not r:
        alive += 1    # a refused one has its answer and EOF waiting
print(alive, flush=True)
sys.stdin.read()
"""


def test_a_user_holding_connections_leaves_root_an_answer(tern):
    hog = subprocess.Popen(as_nobody(sys.executable, "-c", HOG, str(tern.queue_dir / "public" / "qmgr")),
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        held = int(hog.stdout.readline().decode().strip())
        assert 0 < held <= 8, held
        # another connection of that user is told why it is refused
        r = subprocess.run(as_nobody(TERN_BIN, "-c", str(tern.dir), "queue", "flush"), capture_output=True,
                           timeout=30)
        assert r.returncode != 0
        assert b"too many queue command connections" in r.stderr, r.stderr
        # root gets its answer
        start = time.monotonic()
        r = tern.cli("queue", "delete", "ALL", timeout=30)
        assert r.returncode == 0, r.stderr
        assert b"delete: 0 messages" in r.stderr
        assert time.monotonic() - start < 5
    finally:
        hog.stdin.close()
        hog.wait(timeout=30)


def test_authorized_mailq_and_flush_users(tern_instance):
    tern = tern_instance
    tern.write_config(authorized_mailq_users="root", authorized_flush_users="static:anyone")
    tern.start()
    r = subprocess.run(as_nobody(TERN_BIN, "-c", str(tern.dir), "queue"), capture_output=True, timeout=30)
    assert r.returncode != 0
    assert b"permission denied" in r.stderr, r.stderr
    r = subprocess.run(as_nobody(TERN_BIN, "-c", str(tern.dir), "queue", "flush"), capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert tern.cli("queue").returncode == 0   # root always may
    tern.stop()
    tern.write_config(authorized_mailq_users="static:anyone", authorized_flush_users="somebody, tern")
    tern.start()
    r = subprocess.run(as_nobody(TERN_BIN, "-c", str(tern.dir), "queue", "flush"), capture_output=True, timeout=30)
    assert r.returncode != 0
    assert b"flush: permission denied" in r.stderr, r.stderr
    r = subprocess.run(as_nobody(TERN_BIN, "-c", str(tern.dir), "queue"), capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------- smtpd

def test_memory_limit_refuses_sessions_and_recipients(tern_instance):
    tern = tern_instance
    # 32 KiB per session: three fit, a fourth does not, and the third leaves
    # room for only a few recipients
    tern.write_config(smtpd_memory_limit="100000")
    tern.start()
    sessions = [greeted(tern) for _ in range(3)]
    fourth = tern.raw()
    code, text = fourth.read_reply()
    assert code == 421 and text.startswith("421 4.3.2 "), text
    assert fourth.read_all() == ""
    fourth.close()
    s = sessions[0]
    assert s.cmd("MAIL FROM:<sender@localhost>")[0] == 250
    replies = [s.cmd(f"RCPT TO:<alice+{i}@localhost>") for i in range(10)]
    accepted = [r for r in replies if r[0] == 250]
    refused = [r for r in replies if r[0] != 250]
    assert 1 <= len(accepted) < 10
    assert refused and all(r[1].startswith("452 4.5.3 ") for r in refused), refused
    # a new transaction has its room back
    assert s.cmd("RSET")[0] == 250
    assert s.cmd("MAIL FROM:<sender@localhost>")[0] == 250
    assert s.cmd("RCPT TO:<alice@localhost>")[0] == 250
    # a session that ends gives its room to the next
    sessions[2].cmd("QUIT")
    sessions[2].close()
    time.sleep(0.3)
    greeted(tern).close()
    for x in sessions[:2]:
        x.close()


def test_messages_in_memory_never_shut_out_sessions(tern_instance):
    """With the journal spool a message being received is kept in memory,
    counted in a budget of its own (a quarter of smtpd_memory_limit), never
    in the one that admits sessions: a slow client in the middle of DATA does
    not make the next client's connection fail (the limit here admits it with
    room for 1 MiB besides), and a message past the budget is written to
    incoming/ instead of being refused."""
    tern = tern_instance
    tern.write_config(queue_sync_method="journal", smtpd_memory_limit=str(1024 * 1024 + 65536))
    tern.start()
    incoming = tern.queue_dir / "incoming"
    slow = greeted(tern)
    for line in ("MAIL FROM:<sender@localhost>", "RCPT TO:<alice@localhost>"):
        assert slow.cmd(line)[0] == 250, line
    assert slow.cmd("DATA")[0] == 354
    slow.send(b"Subject: slow\r\n\r\n" + b"x" * 998 + b"\r\n")
    time.sleep(0.3)
    assert list(incoming.iterdir()) == []          # in memory
    # another client: admitted, and its message goes through
    other = greeted(tern)
    for line in ("MAIL FROM:<sender@localhost>", "RCPT TO:<bob@localhost>"):
        assert other.cmd(line)[0] == 250, line
    code, text = send_data(other, b"Subject: meanwhile\r\n\r\nhello\r\n")
    assert code == 250, text
    other.cmd("QUIT")
    other.close()
    # the slow message grows past its budget (272 KiB): on to incoming/
    slow.send((b"y" * 998 + b"\r\n") * 400)
    deadline = time.time() + 10
    while time.time() < deadline and not list(incoming.iterdir()):
        time.sleep(0.05)
    assert len(list(incoming.iterdir())) == 1
    slow.send(b".\r\n")
    code, text = slow.read_reply()
    assert code == 250, text
    slow.cmd("QUIT")
    slow.close()
    assert b"Subject: meanwhile" in tern.wait_messages("bob")[0].read_bytes()
    body = tern.wait_messages("alice")[0].read_bytes()
    assert b"Subject: slow" in body and body.count(b"y" * 998) == 400
    assert list(incoming.iterdir()) == []


@pytest.fixture
def small_fs(work_dir):
    mnt = work_dir / "smallfs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(mnt)],
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: " + r.stderr.decode().strip())
    yield mnt
    if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def mail_reply(inst, params=""):
    s = greeted(inst)
    reply = s.cmd("MAIL FROM:<sender@localhost>" + params)
    s.cmd("QUIT")
    s.close()
    return reply


def test_queue_minfree_and_message_size_limit_refuse_mail(small_fs, tern_instance):
    tern = tern_instance
    tern.write_config(queue_directory=str(small_fs / "spool"), queue_minfree="2000000",
                      message_size_limit="1000000")
    tern.start()
    assert mail_reply(tern)[0] == 250
    filler = small_fs / "filler"
    filler.write_bytes(b"x" * 2_500_000)   # leaves less than queue_minfree
    time.sleep(1.1)                        # free space is looked at once a second
    assert mail_reply(tern) == (452, "452 4.3.1 Insufficient system storage")
    filler.unlink()
    time.sleep(1.1)
    assert mail_reply(tern)[0] == 250
    # a SIZE= that does not fit besides queue_minfree (4 MiB less 2.3 MB is
    # below 1.99 MB) is refused, a plain MAIL is not
    tern.stop()
    tern.write_config(queue_minfree="2300000", message_size_limit="2000000")
    tern.start()
    assert mail_reply(tern)[0] == 250
    assert mail_reply(tern, " SIZE=1990000") == (452, "452 4.3.1 Insufficient system storage")
    assert mail_reply(tern, " SIZE=1000")[0] == 250
    # 1.5 x message_size_limit must fit, as in Postfix, even with queue_minfree 0
    tern.stop()
    tern.write_config(queue_minfree="0", message_size_limit="3000000")
    tern.start()
    assert mail_reply(tern) == (452, "452 4.3.1 Insufficient system storage")
