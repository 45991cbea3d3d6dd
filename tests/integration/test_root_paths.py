"""The master runs as root; smtpd and the queue run as mail_owner (`tern`).
Each test here is an attack a compromised smtpd (so: the mail_owner uid)
or a local user could make on a path root acts on, reproduced: root must
never be turned against its own files, nor made to signal someone else's
process. Log lines and the queue listing keep bytes from outside printable.

Run as root (the tests start tern as root with mail_owner `tern`)."""
import base64
import fcntl
import os
import pwd
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import TERN_BIN, SANITIZER_RE, smtp_greeted, wait_port

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: tern must start as root")

MAIL_OWNER = "tern"


def owner_ids():
    pw = pwd.getpwnam(MAIL_OWNER)
    return pw.pw_uid, pw.pw_gid


def as_mail_owner(code, wait=True, timeout=30):
    """Runs python CODE as mail_owner, as a compromised smtpd would: its
    output, or the running process when wait is false."""
    uid, gid = owner_ids()
    p = subprocess.Popen([sys.executable, "-c", code], user=uid, group=gid, extra_groups=[],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd="/")
    if not wait:
        return p
    out, _ = p.communicate(timeout=timeout)
    return out.decode(errors="replace")


def root_victim(path: Path, mode=0o600, text="root's secret\n"):
    """A root-owned file the attacks aim at; returns what must not change."""
    path.write_text(text)
    os.chown(path, 0, 0)
    path.chmod(mode)
    return snapshot(path)


def snapshot(path: Path):
    st = os.lstat(path)
    return (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), path.read_bytes())


def serve_expecting_refusal(inst, timeout=15):
    """`tern serve` that should refuse to start: (exit status, stderr); a
    server that starts anyway is stopped and reported as status None."""
    p = subprocess.Popen([TERN_BIN, "-c", str(inst.dir), "serve"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True,
                         env=dict(os.environ, ASAN_OPTIONS="detect_leaks=1"))
    try:
        _, err = p.communicate(timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGTERM)
        _, err = p.communicate(timeout=30)
        rc = None
    return rc, err.decode(errors="replace")


def start_and_stop_once(inst):
    inst.start()
    inst.stop()


# ---------------------------------------------------------------- ownership

def test_queue_tree_owners_and_modes(tern_instance):
    """The layout everything below rests on: what root creates belongs to
    root; only the directories mail_owner writes are its own."""
    inst = tern_instance
    inst.start()
    uid, gid = owner_ids()
    q = inst.queue_dir

    def own(rel):
        st = os.lstat(q / rel)
        return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)

    assert own(".") == (0, 0, 0o755)
    assert own("pid") == (0, 0, 0o755)
    assert own("pid/master.pid") == (0, 0, 0o600)
    assert own("private") == (0, 0, 0o711)
    assert own("public") == (0, 0, 0o755)
    for d in ("incoming", "queue", "hold", "corrupt"):
        assert own(d) == (uid, gid, 0o700), d
    assert own("maildrop") == (uid, gid, 0o1733)
    for sock, mode in (("private/queue", 0o600), ("private/local", 0o600), ("public/qmgr", 0o666)):
        st = os.lstat(q / sock)
        assert stat.S_ISSOCK(st.st_mode) and (st.st_uid, stat.S_IMODE(st.st_mode)) == (uid, mode), sock
    # mail_owner can create nothing where root acts
    out = as_mail_owner(f"""
import os
for d in ({str(q)!r}, {str(q / 'pid')!r}, {str(q / 'private')!r}, {str(q / 'public')!r}):
    try:
        open(os.path.join(d, 'planted'), 'w')
        print('WROTE', d)
    except PermissionError:
        pass
""")
    assert "WROTE" not in out, out


# ---------------------------------------------------------------- pid/master.pid

PLANT_PID_LINK = """
import os, sys
link = sys.argv[1] if len(sys.argv) > 1 else {link!r}
try:
    os.unlink(link)
except FileNotFoundError:
    pass
except PermissionError as e:
    print('DENIED', e); raise SystemExit
os.symlink({target!r}, link)
print('PLANTED')
"""


def test_pid_file_symlink_planted_by_mail_owner_is_not_followed(tern_instance, work_dir):
    inst = tern_instance
    start_and_stop_once(inst)
    victim = work_dir / "root-file"
    before = root_victim(victim)
    link = inst.queue_dir / "pid" / "master.pid"
    as_mail_owner(PLANT_PID_LINK.format(link=str(link), target=str(victim)))
    inst.start()
    assert snapshot(victim) == before, "root truncated the file behind a planted pid/master.pid"
    assert inst.cli("status").returncode == 0


def test_pid_symlink_from_the_old_layout_is_removed_not_followed(tern_instance, work_dir):
    """An upgrade: pid/ and the queue directory still belong to mail_owner
    and it planted a link before root took them back."""
    inst = tern_instance
    start_and_stop_once(inst)
    uid, gid = owner_ids()
    for d in (inst.queue_dir, inst.queue_dir / "pid"):
        os.chown(d, uid, gid)
    victim = work_dir / "root-file"
    before = root_victim(victim)
    link = inst.queue_dir / "pid" / "master.pid"
    out = as_mail_owner(PLANT_PID_LINK.format(link=str(link), target=str(victim)))
    assert "PLANTED" in out, out
    inst.start()
    assert snapshot(victim) == before
    st = os.lstat(link)
    assert stat.S_ISREG(st.st_mode) and st.st_uid == 0
    assert os.stat(inst.queue_dir).st_uid == 0 and os.stat(inst.queue_dir / "pid").st_uid == 0


# ---------------------------------------------------------------- tern stop

def test_stop_does_not_signal_a_pid_planted_by_mail_owner(tern_instance):
    inst = tern_instance
    inst.start()
    bystander = subprocess.Popen(["sleep", "60"])      # a root process mail_owner cannot signal itself
    pidfile = inst.queue_dir / "pid" / "master.pid"
    # mail_owner replaces the pid file by its own, locked as the master locks it
    attacker = as_mail_owner(f"""
import fcntl, os, sys, time
path = {str(pidfile)!r}
try:
    os.rename(path, path + '.old')
except OSError as e:
    print('DENIED', e, flush=True)
try:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, b'{bystander.pid}\\n')
    fcntl.flock(fd, fcntl.LOCK_EX)
    fcntl.lockf(fd, fcntl.LOCK_EX)
    print('PLANTED', flush=True)
except OSError as e:
    print('DENIED', e, flush=True)
time.sleep(30)
""", wait=False)
    try:
        attacker.stdout.readline()
        # the master is this test's child: reap it while `tern stop` waits for it to go
        stop = subprocess.Popen([TERN_BIN, "-c", str(inst.dir), "stop"], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        try:
            master_status = inst.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            master_status = None
        out = stop.communicate(timeout=60)[0].decode(errors="replace")
        assert bystander.poll() is None, "tern stop killed pid %d, planted by mail_owner" % bystander.pid
        assert master_status == 0, "the real master was not stopped: " + out
        assert stop.returncode == 0, out
    finally:
        attacker.kill()
        attacker.wait()
        bystander.kill()
        bystander.wait()


# ---------------------------------------------------------------- listener sockets

RENAME_EXCHANGE = 2


def test_socket_directory_swap_race_changes_no_root_file(tern_instance, work_dir):
    """mail_owner swaps private/ and public/ with directories of its own
    whose socket names link to a root file, while root starts again and
    again: the file must keep its mode and owner."""
    inst = tern_instance
    start_and_stop_once(inst)
    victim = work_dir / "root-file"
    before = root_victim(victim)
    uid, gid = owner_ids()
    evil_parent = work_dir / "evil"
    evil_parent.mkdir()
    os.chown(evil_parent, uid, gid)
    q = inst.queue_dir
    attacker = as_mail_owner(f"""
import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
q, victim, evil_parent = {str(q)!r}, {str(victim)!r}, {str(evil_parent)!r}
pairs = []
for name, socks in (('private', ('queue', 'local')), ('public', ('qmgr',))):
    for base in (q, evil_parent):     # inside the queue directory when allowed, else beside it
        evil = os.path.join(base, '.evil-' + name)
        try:
            os.mkdir(evil)
            pairs.append((os.path.join(q, name), evil, os.stat(evil).st_ino, socks))
            break
        except OSError:
            pass

def plant(path, ino, socks):
    # the evil directory is wherever its inode is now; root's unlink may have removed a link
    for where in path:
        try:
            if os.stat(where).st_ino != ino:
                continue
            for s in socks:
                link = os.path.join(where, s)
                if not os.path.islink(link):
                    try:
                        os.unlink(link)
                    except OSError:
                        pass
                    os.symlink(victim, link)
        except OSError:
            pass

for real, evil, ino, socks in pairs:
    plant((real, evil), ino, socks)
print('READY', len(pairs), flush=True)
deadline = time.time() + 25
n = 0
while time.time() < deadline:
    moved = False
    for real, evil, ino, socks in pairs:
        if libc.renameat2(-100, real.encode(), -100, evil.encode(), {RENAME_EXCHANGE}) == 0:
            moved = True
        n += 1
        if n % 64 == 0:
            plant((real, evil), ino, socks)
    if not moved:
        time.sleep(0.01)
""", wait=False)
    try:
        attacker.stdout.readline()
        deadline = time.time() + 10
        tries = listening = 0
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
        while time.time() < deadline and tries < 200 and snapshot(victim) == before:
            tries += 1
            p = subprocess.Popen([TERN_BIN, "-c", str(inst.dir), "serve"], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, env=env, start_new_session=True)
            # the sockets are made before the ports are bound: a listening port means they are done
            t_end = time.time() + 5
            while time.time() < t_end and p.poll() is None:
                try:
                    socket.create_connection((inst.host, inst.port), timeout=0.2).close()
                    listening += 1
                    break
                except OSError:
                    time.sleep(0.01)
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
        assert snapshot(victim) == before, f"root changed {victim} after {tries} starts"
        assert listening > tries // 2, f"only {listening} of {tries} starts got as far as listening"
    finally:
        attacker.kill()
        attacker.wait()
    # and, whatever the timing: mail_owner cannot swap the directories root binds in
    out = as_mail_owner(f"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
spare = {str(evil_parent)!r} + '/spare'
os.mkdir(spare)
for name in ('private', 'public', 'pid'):
    a = os.path.join({str(q)!r}, name)
    if libc.renameat2(-100, a.encode(), -100, spare.encode(), {RENAME_EXCHANGE}) == 0:
        print('SWAPPED', name)
        libc.renameat2(-100, a.encode(), -100, spare.encode(), {RENAME_EXCHANGE})
""")
    assert "SWAPPED" not in out, out


# ---------------------------------------------------------------- maillog_file

def test_maillog_file_in_a_mail_owner_directory_is_refused(tern_instance, work_dir):
    inst = tern_instance
    uid, gid = owner_ids()
    logdir = work_dir / "logs"
    logdir.mkdir()
    os.chown(logdir, uid, gid)
    victim = work_dir / "root-file"
    before = root_victim(victim)
    logfile = logdir / "maillog"
    as_mail_owner(f"import os; os.symlink({str(victim)!r}, {str(logfile)!r})")
    inst.write_config(maillog_file=str(logfile))
    rc, err = serve_expecting_refusal(inst)
    assert not SANITIZER_RE.search(err), err
    assert snapshot(victim) == before, "root handed its file to mail_owner"
    assert rc is not None and rc != 0, err
    assert f"maillog_file {logfile}: {logdir} is owned by uid {uid}, not root" in err, err


@pytest.mark.parametrize("mode,reason", [(0o777, "is writable by others"), (0o775, "is writable by its group"),
                                         (0o1777, "is writable by others")])
def test_maillog_file_in_a_directory_others_can_write_is_refused(tern_instance, work_dir, mode, reason):
    """Root's, but writable by others (a sticky bit does not help the
    directory the file is created in: others may still add names there)."""
    inst = tern_instance
    logdir = work_dir / "shared"
    logdir.mkdir()
    logdir.chmod(mode)
    inst.write_config(maillog_file=str(logdir / "maillog"))
    rc, err = serve_expecting_refusal(inst)
    assert rc is not None and rc != 0, err
    assert f"maillog_file {logdir / 'maillog'}: {logdir} {reason}" in err, err
    assert not (logdir / "maillog").exists()


def test_maillog_file_in_the_queue_directory_is_fine_now(tern_instance):
    """The queue directory is root's: a log file there is safe (the layout
    `tern dev` writes when run as root)."""
    inst = tern_instance
    inst.log_path = inst.queue_dir / "maillog"
    inst.write_config(maillog_file=str(inst.log_path))
    inst.start()
    st = os.lstat(inst.log_path)
    assert st.st_uid == 0 and st.st_gid == owner_ids()[1] and stat.S_IMODE(st.st_mode) == 0o660
    inst.wait_log("daemon started")


def test_a_hard_link_the_mail_owner_makes_to_the_log_stops_nothing(tern_instance, work_dir):
    """The log is root's with the mail owner's group, which may write it and
    so link it elsewhere (fs.protected_hardlinks allows that): the second
    name must not keep tern from reopening its log or starting again. A
    root-owned file of another mode with two names is still refused."""
    inst = tern_instance
    inst.log_path = inst.queue_dir / "maillog"
    inst.write_config(maillog_file=str(inst.log_path))
    inst.start()
    # a directory of the mail owner's beside the instance (the log's own
    # directories must stay root's: trusted_dir checks them)
    mine = work_dir / "mail-owner"
    mine.mkdir()
    os.chown(mine, *owner_ids())
    elsewhere = mine / "mine"
    out = as_mail_owner(f"import os; os.link({str(inst.log_path)!r}, {str(elsewhere)!r}); print('LINKED')")
    assert "LINKED" in out, out
    inst.proc.send_signal(signal.SIGUSR1)          # reopen
    inst.wait_log("has 2 names (a hard link elsewhere); it is still the log")
    inst.stop()
    inst.start()                                    # and a restart
    inst.wait_log("daemon started", count=2)
    inst.stop()
    os.unlink(elsewhere)
    # a file that is not the log yet (root's 0600) with two names: refused
    inst.log_path.chmod(0o600)
    os.chown(inst.log_path, 0, 0)
    os.link(inst.log_path, elsewhere)
    rc, err = serve_expecting_refusal(inst)
    assert rc is not None and rc != 0 and "has more than one name (a hard link)" in err, err


def test_reload_to_an_unsafe_maillog_file_is_refused(tern_instance, work_dir):
    inst = tern_instance
    inst.start()
    uid, gid = owner_ids()
    logdir = work_dir / "logs"
    logdir.mkdir()
    os.chown(logdir, uid, gid)
    victim = work_dir / "root-file"
    before = root_victim(victim)
    as_mail_owner(f"import os; os.symlink({str(victim)!r}, {str(logdir / 'maillog')!r})")
    inst.write_config(maillog_file=str(logdir / "maillog"))
    os.kill(inst.proc.pid, signal.SIGHUP)
    inst.wait_log("reload refused")
    os.kill(inst.proc.pid, signal.SIGUSR1)
    time.sleep(0.5)
    assert snapshot(victim) == before
    assert f"reload refused: maillog_file {logdir / 'maillog'}: {logdir} is owned by uid {uid}" in inst.log_text()


# ---------------------------------------------------------------- dev mode

def test_dev_as_root_without_mail_owner_refuses_rather_than_nobody(work_dir):
    d = work_dir / "dev"
    d.mkdir()
    port = 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (d / "main.cf").write_text(f"queue_directory = {d}/spool\nmaillog_file = {d}/maillog\n"
                               "mail_owner = tern-no-such-user\ninet_interfaces = loopback-only\n")
    p = subprocess.Popen([TERN_BIN, "-c", str(d), "dev", "--port", str(port)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        pytest.fail("tern dev started as root without its mail_owner:\n" + err.decode(errors="replace"))
    err = err.decode(errors="replace")
    assert p.returncode != 0
    assert "mail_owner tern-no-such-user does not exist" in err, err


def run_dev(d, port, user=None):
    """`tern dev` in d on port, as user (uid, gid) or root; the process once
    it listens (the caller stops it), or the failure."""
    kw = {}
    if user:
        kw = dict(user=user[0], group=user[1], extra_groups=[])
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1")
    # the capture page's port too: never the fixed 8025 another program may hold
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        http_port = s.getsockname()[1]
    p = subprocess.Popen([TERN_BIN, "-c", str(d), "dev", "--port", str(port), "--http-port", str(http_port)],
                         stdout=subprocess.DEVNULL,
                         stderr=open(d / "stderr.log", "ab"), env=env, start_new_session=True, **kw)
    if not wait_port("127.0.0.1", port, timeout=20):
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        pytest.fail("tern dev did not start:\n" + (d / "stderr.log").read_text(errors="replace"))
    return p


def stop_dev(p):
    os.killpg(p.pid, signal.SIGTERM)
    assert p.wait(timeout=30) == 0


def dev_delivers(d, port):
    import smtplib
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.sendmail("me@localhost", ["you@localhost"], b"Subject: dev\r\n\r\nhello\r\n")
    new = d / "mail" / "you" / "Maildir" / "new"
    deadline = time.time() + 10
    while time.time() < deadline and not (new.is_dir() and list(new.iterdir())):
        time.sleep(0.05)
    assert new.is_dir() and list(new.iterdir()), (d / "stderr.log").read_text(errors="replace")


def test_dev_as_an_ordinary_user_runs_everything_as_that_user(work_dir):
    """make run / tern dev by a user: its own files, no root anywhere."""
    uid, gid = owner_ids()          # any ordinary user will do; tern exists on the test machine
    d = work_dir / "devuser"
    d.mkdir()
    os.chown(d, uid, gid)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = run_dev(d, port, user=(uid, gid))
    try:
        dev_delivers(d, port)
        for path in (d / "spool", d / "spool" / "pid" / "master.pid", d / "spool" / "private" / "queue", d / "maillog"):
            assert os.lstat(path).st_uid == uid, path
        r = subprocess.run([TERN_BIN, "-c", str(d), "status"], capture_output=True, user=uid, group=gid,
                           extra_groups=[])
        assert r.returncode == 0 and f"PID: {p.pid}" in r.stdout.decode(), r
    finally:
        stop_dev(p)
    assert "runtime error" not in (d / "stderr.log").read_text(errors="replace")


def test_dev_as_root_uses_mail_owner(work_dir):
    d = work_dir / "devroot"
    d.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = run_dev(d, port)
    try:
        dev_delivers(d, port)
        assert os.stat(d / "spool").st_uid == 0
        assert os.stat(d / "spool" / "queue").st_uid == owner_ids()[0]
    finally:
        stop_dev(p)


# ---------------------------------------------------------------- printable logs

def unprintable(data: bytes):
    """Bytes a terminal would act on: C0 controls but LF, DEL, and C1
    controls (raw or UTF-8 encoded)."""
    text = data.decode("utf-8", errors="replace")
    return [c for c in text if (ord(c) < 0x20 and c != "\n") or 0x7f <= ord(c) <= 0x9f]


def test_helo_and_auth_user_with_escapes_are_logged_printable(tern_instance, tls_files):
    from test_auth import Submission, client_ctx
    sub = Submission(tern_instance, tls_files, mynetworks="192.0.2.0/24")
    sub.add_user("alice@example.test")
    inst = tern_instance
    inst.start()
    s = smtp_greeted(inst, ehlo=None)
    assert s.cmd("HELO evil\x1b[31mred\x07bell\x7f")[0] == 250
    assert s.cmd("MAIL FROM:<a@example.test>")[0] == 250
    code, _ = s.cmd("RCPT TO:<someone@elsewhere.test>")     # no relay: the reject line carries helo=
    assert code in (454, 554)
    s.close()
    with sub.submit() as c:
        user = b"\x1b[31mmallory\x1b]0;title\x07\x01\xc2\x9b2J\xff"
        code, _ = c.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0" + user + b"\0wrong").decode())
        assert code == 535
    log = inst.wait_log("SASL PLAIN authentication failed")
    inst.wait_log("reject: RCPT")
    raw = inst.log_path.read_bytes()
    assert not unprintable(raw), [l for l in raw.split(b"\n") if unprintable(l)]
    assert "helo=<evil?[31mred?bell?>" in log, log
    assert "sasl_username=?[31mmallory?]0;title????2J?" in log, log



def test_queue_listing_shows_a_planted_sender_printable(tern_instance):
    """Addresses are checked where they enter, but the queue files belong to
    mail_owner: a compromised queue process can write any bytes there, and
    root's `tern queue` (here offline, reading the files) must not pass
    escape sequences to root's terminal."""
    import struct
    import zlib
    inst = tern_instance
    inst.write_config(queue_sync_method="syncfs")   # the bytes are planted in a queue file
    inst.start()
    s = smtp_greeted(inst)
    sender = b"a@example.test"
    assert s.cmd("MAIL FROM:<a@example.test>")[0] == 250
    assert s.cmd("RCPT TO:<bob@elsewhere.test>")[0] == 250      # deferred: relayhost is closed
    assert s.cmd("DATA")[0] == 354
    s.send(b"Subject: x\r\n\r\nbody\r\n.\r\n")
    assert s.read_reply()[0] == 250
    s.close()
    inst.wait_log("status=deferred")
    inst.stop()
    (qf,) = list((inst.queue_dir / "queue").iterdir())
    data = qf.read_bytes()
    payload = struct.pack("<I", len(sender)) + sender
    at = data.index(struct.pack("<I", len(payload)) + payload) - 1
    evil = b"\x1b]0;pwn\x07\x1b[2J\xc2\x9b"
    assert len(evil) == len(sender)
    record = data[at:at + 5] + struct.pack("<I", len(evil)) + evil
    record += struct.pack("<I", zlib.crc32(record))
    qf.write_bytes(data[:at] + record + data[at + len(record):])
    r = inst.cli("queue", check=True)
    assert not unprintable(r.stdout), r.stdout
    assert b"?]0;pwn??[2J??" in r.stdout, r.stdout



def queue_deferred(inst, senders):
    """One message per sender to a recipient that stays deferred (the
    relayhost is closed); their queue ids."""
    ids = []
    for sender in senders:
        s = smtp_greeted(inst)
        assert s.cmd(f"MAIL FROM:<{sender}>")[0] == 250
        assert s.cmd("RCPT TO:<bob@elsewhere.test>")[0] == 250
        assert s.cmd("DATA")[0] == 354
        s.send(b"Subject: x\r\n\r\nbody\r\n.\r\n")
        code, text = s.read_reply()
        assert code == 250, text
        ids.append(text.split()[-1])
        s.close()
    for qid in ids:
        inst.wait_log(f"{qid}: to=<bob@elsewhere.test>")
    return ids


def test_offline_listing_follows_no_link_mail_owner_planted(tern_instance, work_dir):
    """With tern stopped, root's `tern queue` reads queue/, which mail_owner
    controls: a link planted there to a queue file only root may read must
    not show that file, and a FIFO in its place must not hang the command;
    the other messages are listed as always. A hard link is what only
    reading as mail_owner stops (root makes it here, as mail_owner could on
    a system without fs.protected_hardlinks)."""
    inst = tern_instance
    inst.write_config(queue_sync_method="syncfs")
    inst.start()
    keep, secret, gone, hard = queue_deferred(
        inst, ["keep@example.test", "secret@example.test", "gone@example.test", "hard@example.test"])
    inst.stop()
    queue = inst.queue_dir / "queue"
    private = work_dir / "root-only"
    private.mkdir(mode=0o700)
    for qid in (secret, hard):
        (queue / qid).rename(private / qid)
        os.chown(private / qid, 0, 0)
        (private / qid).chmod(0o600)
    os.link(private / hard, queue / hard)
    (queue / gone).unlink()
    out = as_mail_owner(f"""
import os
os.symlink({str(private / secret)!r}, {str(queue / secret)!r})
os.mkfifo({str(queue / gone)!r})
print('PLANTED')
""")
    assert "PLANTED" in out, out
    r = inst.cli("queue", check=True, timeout=20)
    assert b"keep@example.test" in r.stdout, r.stdout
    assert b"secret@example.test" not in r.stdout and secret.encode() not in r.stdout, r.stdout
    assert gone.encode() not in r.stdout, r.stdout
    assert b"hard@example.test" not in r.stdout and hard.encode() not in r.stdout, r.stdout
    # root's file is where it was, unchanged, and still root's
    st = os.lstat(private / secret)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o600)


def test_offline_listing_is_not_hung_by_a_fifo_among_journal_segments(tern_instance):
    """The journal's directory is mail_owner's too: a FIFO named as a
    segment is passed over, and the journal's messages are still listed."""
    inst = tern_instance
    inst.write_config(queue_sync_method="journal")
    inst.start()
    (qid,) = queue_deferred(inst, ["journal@example.test"])
    inst.stop()
    journal = inst.queue_dir / "journal"
    out = as_mail_owner(f"""
import os
os.mkfifo({str(journal / 'seg-00000000000fffff')!r})
print('PLANTED')
""")
    assert "PLANTED" in out, out
    r = inst.cli("queue", check=True, timeout=20)
    assert qid.encode() in r.stdout and b"journal@example.test" in r.stdout, r.stdout


def test_offline_listing_refuses_a_spool_with_two_owners(tern_instance):
    """Root reads the stopped spool as the one user owning queue/, hold/ and
    journal/; when they disagree it says so and reads nothing, rather than
    guess whose rights to use."""
    inst = tern_instance
    inst.start()
    inst.stop()
    hold = inst.queue_dir / "hold"
    st = os.lstat(hold)
    os.chown(hold, 0, 0)
    try:
        r = inst.cli("queue", timeout=20)
    finally:
        os.chown(hold, st.st_uid, st.st_gid)
    assert r.returncode == 1, r
    assert b"belongs to uid 0" in r.stderr and b"not reading it as root" in r.stderr, r.stderr
    assert inst.cli("queue", timeout=20).returncode == 0


def test_offline_helper_stopped_by_mail_owner_does_not_hang_root(tern_instance):
    """Root's offline listing runs as mail_owner, and mail_owner may signal
    its own processes: a helper stopped with SIGSTOP is killed and root's
    `tern queue` says so, rather than wait for it for ever."""
    inst = tern_instance
    inst.start()
    # a listing of some 250 KiB, more than the pipes between the helper and
    # the test hold, so the helper is still there to be stopped
    s = smtp_greeted(inst)
    for m in range(30):
        s.send(("MAIL FROM:<a@example.test>\r\n"
                + "".join(f"RCPT TO:<r{r}-{'x' * 56}@elsewhere.test>\r\n" for r in range(100))
                + "DATA\r\n").encode())
        replies = [s.read_reply()[0] for _ in range(102)]
        assert replies == [250] * 101 + [354], replies
        s.send(b"Subject: x\r\n\r\nbody\r\n.\r\n")
        assert s.read_reply()[0] == 250
    s.close()
    inst.stop()
    uid, _ = owner_ids()
    rd, wr = os.pipe()
    p = subprocess.Popen([TERN_BIN, "-c", str(inst.dir), "queue"], stdout=wr, stderr=subprocess.PIPE,
                         env=dict(os.environ, ASAN_OPTIONS="detect_leaks=1"))
    os.close(wr)
    helper = None
    deadline = time.monotonic() + 20
    while helper is None and time.monotonic() < deadline:
        try:
            kids = Path(f"/proc/{p.pid}/task/{p.pid}/children").read_text().split()
            if kids and os.stat(f"/proc/{kids[0]}").st_uid == uid:
                helper = int(kids[0])
        except OSError:
            pass
        time.sleep(0.01)
    assert helper, "no helper process running as mail_owner"
    # it holds nothing of root's: /dev/null and its pipes to the parent, in
    # a session of its own (no controlling terminal to push input into)
    fds = {int(n): os.readlink(f"/proc/{helper}/fd/{n}") for n in os.listdir(f"/proc/{helper}/fd")}
    assert fds[0] == "/dev/null" and fds[1].startswith("pipe:") and fds[2].startswith("pipe:"), fds
    spool = str(inst.queue_dir)
    assert all(fds[n].startswith(spool + "/") and "/pid" not in fds[n] for n in fds if n > 2), fds
    assert os.getsid(helper) == helper != os.getsid(p.pid)
    out = as_mail_owner(f"import os, signal\nos.kill({helper}, signal.SIGSTOP)\nprint('STOPPED')")
    assert "STOPPED" in out, out
    listing = []
    reader = threading.Thread(target=lambda: listing.append(os.fdopen(rd, "rb").read()))
    reader.start()
    try:
        _, err = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.kill(helper, signal.SIGKILL)
        p.kill()
        p.communicate()
        pytest.fail("root's tern queue waited for its stopped helper")
    finally:
        reader.join(timeout=20)
    assert p.returncode == 1, (p.returncode, err)
    assert b"was stopped by signal 19" in err and b"killed, not waited for" in err, err
    assert listing and listing[0].count(b"@elsewhere.test") < 3100, "the listing is cut short"


@pytest.mark.parametrize("name", ["seg-00000000000fffff", "free-00000000000fffff"])
def test_offline_changes_are_not_hung_by_a_fifo_in_the_journal(tern_instance, name):
    """hold, release and delete with tern stopped open the journal's files
    too: a FIFO named as a segment or a free file must not hang root's
    command. A segment that is not one is an error, said; a free file that
    is not one is passed over."""
    inst = tern_instance
    inst.write_config(queue_sync_method="journal")
    inst.start()
    (qid,) = queue_deferred(inst, ["journal@example.test"])
    inst.stop()
    out = as_mail_owner(f"""
import os
os.mkfifo({str(inst.queue_dir / 'journal' / name)!r})
print('PLANTED')
""")
    assert "PLANTED" in out, out
    try:
        r = inst.cli("queue", "hold", qid, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("tern queue hold waited on a FIFO in the journal")
    if name.startswith("free-"):
        assert r.returncode == 0 and b"hold: 1 message" in r.stderr, r.stderr
    else:
        assert r.returncode == 1 and b"cannot change the queue's journal" in r.stderr, r.stderr


def test_offline_changes_take_the_masters_lock(tern_instance):
    """With tern stopped cleanly there is no pid/master.pid: the offline
    change makes it and takes its lock, as a starting master does, so that
    neither a master nor another tern queue changes the spool meanwhile;
    it leaves no pid file behind. Someone holding the lock makes it wait."""
    inst = tern_instance
    inst.write_config(queue_sync_method="journal")
    inst.start()
    (qid,) = queue_deferred(inst, ["lock@example.test"])
    inst.stop()
    pidfile = inst.queue_dir / "pid" / "master.pid"
    assert not pidfile.exists()
    fd = os.open(pidfile, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        r = inst.cli("queue", "hold", qid, timeout=20)
        assert r.returncode == 1 and b"try again" in r.stderr, r.stderr
        assert f"{qid}!".encode() not in inst.cli("queue", check=True).stdout
    finally:
        os.close(fd)
        pidfile.unlink()
    r = inst.cli("queue", "hold", qid, timeout=20)
    assert r.returncode == 0 and b"hold: 1 message" in r.stderr, r.stderr
    assert not pidfile.exists()
    assert f"{qid}!".encode() in inst.cli("queue", check=True).stdout
    # While the helper works, the lock is held: the command is stopped as
    # soon as its helper shows (400 names to move make the helper last).
    uid, gid = owner_ids()
    queue = inst.queue_dir / "queue"
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    names = [f"0000000000{alphabet[i // 32 // 32]}{alphabet[i // 32 % 32]}{alphabet[i % 32]}" for i in range(400)]
    for n in names:
        (queue / n).touch()
        os.chown(queue / n, uid, gid)
    caught = False
    try:
        for attempt in range(10):
            verb = "release" if attempt % 2 else "hold"
            p = subprocess.Popen([TERN_BIN, "-c", str(inst.dir), "queue", verb, "ALL"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            while p.poll() is None:
                try:
                    if Path(f"/proc/{p.pid}/task/{p.pid}/children").read_text().split():
                        os.kill(p.pid, signal.SIGSTOP)
                        break
                except OSError:
                    pass
            if p.poll() is None:
                try:
                    assert pidfile.exists()
                    probe = os.open(pidfile, os.O_RDWR)
                    try:
                        with pytest.raises(BlockingIOError):
                            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    finally:
                        os.close(probe)
                    caught = True
                finally:
                    os.kill(p.pid, signal.SIGCONT)
            _, err = p.communicate(timeout=20)
            assert p.returncode == 0, err
            if caught:
                break
    finally:
        for sub in ("queue", "hold"):
            for n in names:
                (inst.queue_dir / sub / n).unlink(missing_ok=True)
    assert caught, "the helper was never seen at work"
    assert not pidfile.exists()
