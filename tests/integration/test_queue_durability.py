"""What the queue promises: nothing acknowledged is ever lost.

kill -9 in the middle of a stream of messages, leftovers and damaged files
found at start, a torn progress record, and a full disk under the queue.
"""
import errno
import os
import re
import smtplib
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import raw_session

QID = r"[0-9A-Z]{13}"


def wait_until(pred, timeout=10.0, what="condition", interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def listing(inst):
    r = inst.cli("queue")
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode()


def listed_ids(inst):
    return re.findall(rf"^({QID})[!*]?\s", listing(inst), re.M)


def smtp_send(inst, rcpt, subject, body="body"):
    """One message over SMTP; returns the queue ID from the 250 reply."""
    with inst.smtp() as c:
        c.ehlo("client.test")
        c.mail("sender@localhost")
        c.rcpt(rcpt)
        code, text = c.data(f"Subject: {subject}\r\n\r\n{body}\r\n".encode())
    assert code == 250, (code, text)
    return re.search(rf"queued as ({QID})", text.decode()).group(1)


# ---------------------------------------------------------------- kill -9

def delivered_by_queue_id(inst, user):
    """{queue id: [subject, ...]} over every file in the user's Maildir/new."""
    seen = {}
    for f in inst.messages(user):
        data = f.read_bytes()
        qid = re.search(rb"with E?SMTP id (" + QID.encode() + rb")", data)
        subj = re.search(rb"\nSubject: (.*)\n", data)
        assert qid and subj, data[:400]
        seen.setdefault(qid.group(1).decode(), []).append(subj.group(1).decode())
    return seen


@pytest.mark.parametrize("sync_method", ["syncfs", "journal"])
def test_kill9_during_a_stream_of_200_messages_loses_nothing(tern_instance, sync_method):
    tern = tern_instance
    tern.write_config(queue_sync_method=sync_method)
    tern.start()
    total, nthreads = 200, 5
    acked = {}                     # queue id -> subject
    lock = threading.Lock()
    numbers = iter(range(total))
    errors = []
    stop = threading.Event()

    def worker():
        conn = None
        while not stop.is_set():
            with lock:
                n = next(numbers, None)
            if n is None:
                break
            subject = f"stream-{n:03d}"
            msg = f"Subject: {subject}\r\nMessage-ID: <{subject}@client.test>\r\n\r\nmessage {n}\r\n".encode()
            deadline = time.time() + 40
            while not stop.is_set():
                try:
                    if conn is None:
                        conn = tern.smtp(timeout=10)
                        conn.ehlo("client.test")
                    code, _ = conn.mail("sender@localhost")
                    assert code == 250
                    code, _ = conn.rcpt("sink@localhost")
                    assert code == 250
                    code, text = conn.data(msg)
                    if code == 250:
                        qid = re.search(rf"queued as ({QID})", text.decode()).group(1)
                        with lock:
                            acked[qid] = subject
                        break
                    conn.rset()
                except (smtplib.SMTPException, OSError, AssertionError):
                    try:
                        if conn:
                            conn.close()
                    except Exception:
                        pass
                    conn = None
                    if time.time() > deadline:
                        errors.append(f"{subject}: gave up")
                        break
                    time.sleep(0.05)
        if conn:
            try:
                conn.quit()
            except Exception:
                pass

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(nthreads)]
    for t in threads:
        t.start()
    try:
        # two crashes while the clients keep sending
        for at in (50, 120):
            wait_until(lambda: len(acked) >= at, 60, f"{at} acknowledged messages")
            tern.kill9()
            time.sleep(0.2)
            tern.start()
        for t in threads:
            t.join(timeout=90)
        assert not any(t.is_alive() for t in threads), "client threads hung"
    finally:
        stop.set()
    assert not errors, errors
    assert len(set(acked.values())) == total

    def all_delivered():
        seen = delivered_by_queue_id(tern, "sink")
        return seen if set(acked) <= set(seen) else None
    seen = wait_until(all_delivered, 60, "every acknowledged message to be delivered", interval=0.5)
    for qid, subjects in seen.items():
        # duplicates only ever come from a redelivery of the same queue file
        assert len(subjects) <= 2, (qid, subjects)
        assert len(set(subjects)) == 1
        if qid in acked:
            assert subjects[0] == acked[qid]
    wait_until(lambda: listing(tern) == "Mail queue is empty\n", 20, "the queue to drain")
    assert list((tern.queue_dir / "corrupt").iterdir()) == []


# ---------------------------------------------------------------- recovery at start

def test_leftover_incoming_files_are_removed_at_start(tern):
    tern.stop()
    incoming = tern.queue_dir / "incoming"
    partial = incoming / "01K0000000000"
    partial.write_bytes(b"TERNQF01" + b"\0" * 8 + b"Subject: half written\r\n")
    other = incoming / "junk-name"
    other.write_bytes(b"whatever")
    # left over from before the restart (files made since belong to a live smtpd)
    then = time.time() - 60
    for p in (partial, other):
        os.utime(p, (then, then))
    tern.start()
    # recovery meets the two in directory order: wait for each line
    tern.wait_log("01K0000000000: removing unfinished incoming file (never acknowledged)")
    tern.wait_log("junk-name: removing unfinished incoming file")
    assert list(incoming.iterdir()) == []
    assert list((tern.queue_dir / "corrupt").iterdir()) == []
    assert listing(tern) == "Mail queue is empty\n"


# With the journal a queue file is written in memory up to 1 MiB
# (SMTPD_CONTENT_MEMORY) and moves to incoming/ past it: both kinds of file.
@pytest.mark.parametrize("method,size", [("syncfs", 70000), ("journal", 1200000)])
def test_unfinished_incoming_file_of_a_killed_instance_goes_at_once(tern_instance, method, size):
    """kill -9 of the whole instance while a client is in the middle of DATA,
    restarted at once: the half-written incoming file is removed at that
    start (it was written before this master started, so no live smtpd
    owns it), not left until some later start. Found by make crash-test."""
    tern = tern_instance
    tern.write_config(queue_sync_method=method)
    tern.start()
    s = raw_session(tern)
    assert s.read_reply()[0] == 220
    for line, code in (("EHLO client.example", 250), ("MAIL FROM:<a@example.org>", 250),
                       ("RCPT TO:<you@localhost>", 250), ("DATA", 354)):
        assert s.cmd(line)[0] == code, line
    s.send(b"Subject: cut off\r\n\r\n" + (b"x" * 998 + b"\r\n") * (size // 1000))
    incoming = tern.queue_dir / "incoming"
    deadline = time.time() + 10
    while time.time() < deadline and not any(p.stat().st_size > 1000 for p in incoming.iterdir()):
        time.sleep(0.05)
    leftovers = [p.name for p in incoming.iterdir()]
    assert leftovers, "smtpd never started the incoming file"
    tern.kill9()
    s.sock.close()
    tern.start()
    for name in leftovers:
        tern.wait_log(f"{name}: removing unfinished incoming file (never acknowledged)")
    assert list(incoming.iterdir()) == []


def test_damaged_queue_files_are_moved_to_corrupt(tern_instance):
    # queue files (the journal's damage is its unit tests' business)
    tern = tern_instance
    tern.write_config(queue_sync_method="syncfs")
    tern.start()
    good = smtp_send(tern, "far@remote.example", "keep me")
    tern.wait_log(f"{good}: to=<far@remote.example>, relay=none")
    tern.stop()
    queue = tern.queue_dir / "queue"
    (queue / "0000000000001").write_bytes(b"this is not a queue file at all\n")
    (queue / "0000000000002").write_bytes(b"TERNQF01" + b"\0" * 8 + b"Subject: unfinished\r\n")
    (queue / "0000000000003").write_bytes((queue / good).read_bytes())    # right format, wrong name
    (queue / "stray.txt").write_bytes(b"hello\n")
    owner = queue.stat()
    for p in queue.iterdir():       # as if the queue process had written them
        os.chown(p, owner.st_uid, owner.st_gid)
        p.chmod(0o600)
    tern.start()
    log = tern.wait_log("0000000000003: invalid queue file")
    assert re.search(r"0000000000001: invalid queue file \(bad magic\); moved to corrupt/", log), log
    assert re.search(r"0000000000002: invalid queue file \(no envelope \(unfinished file\)\); moved to corrupt/",
                     log), log
    assert re.search(r"0000000000003: invalid queue file \(queue id in file does not match its name\); "
                     r"moved to corrupt/", log), log
    tern.wait_log("queue/stray.txt: not a queue file name; moved to corrupt/")
    corrupt = sorted(p.name for p in (tern.queue_dir / "corrupt").iterdir())
    assert corrupt == ["0000000000001", "0000000000002", "0000000000003", "stray.txt"]
    assert (tern.queue_dir / "corrupt" / "0000000000001").read_bytes() == b"this is not a queue file at all\n"
    assert sorted(p.name for p in queue.iterdir()) == [good]
    # the good message resumes and the server still works
    assert "queue: 1 messages recovered" in log
    assert listed_ids(tern) == [good]
    tern.wait_log(f"{good}: to=<far@remote.example>", count=2)
    smtp_send(tern, "alice@localhost", "after recovery")
    tern.wait_messages("alice")


def test_torn_progress_record_is_cut_off_and_progress_kept(tern_instance):
    tern = tern_instance
    tern.write_config(queue_sync_method="syncfs")   # a queue file's progress records
    tern.start()
    with tern.smtp() as c:
        c.ehlo("client.test")
        c.mail("sender@localhost")
        c.rcpt("alice@localhost")
        c.rcpt("far@remote.example")
        code, text = c.data(b"Subject: torn\r\n\r\nbody\r\n")
    qid = re.search(rf"queued as ({QID})", text.decode()).group(1)
    tern.wait_messages("alice")
    tern.wait_log(f"{qid}: to=<far@remote.example>, relay=none")
    tern.stop()
    path = tern.queue_dir / "queue" / qid
    size = path.stat().st_size
    # a status record cut short by a crash: type 'D', a length, part of the payload
    with open(path, "ab") as f:
        f.write(b"D" + (60).to_bytes(4, "little") + b"\x01\x00\x00")
    tern.start()
    log = tern.wait_log(f"{qid}: removing a torn progress record")
    assert "queue: 1 messages recovered" in log
    tern.wait_log(f"{qid}: to=<far@remote.example>", count=2)
    # alice's delivery was recorded before the torn record: not delivered again
    time.sleep(0.5)
    assert len(tern.messages("alice")) == 1
    assert tern.log_text().count(f"{qid}: to=<alice@localhost>") == 1
    out = listing(tern)
    assert "far@remote.example" in out and "alice@localhost" not in out
    tern.stop()
    # the cut was clean: the records appended after it read back fine
    assert path.stat().st_size >= size
    tern.start()
    tern.wait_log(f"{qid}: to=<far@remote.example>", count=3)
    assert tern.log_text().count("removing a torn progress record") == 1
    assert list((tern.queue_dir / "corrupt").iterdir()) == []
    assert len(tern.messages("alice")) == 1


# ---------------------------------------------------------------- full disk

@pytest.fixture
def small_fs(work_dir):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = work_dir / "smallfs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(mnt)],
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: " + r.stderr.decode().strip())
    yield mnt
    if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(path: Path):
    chunk = b"x" * 65536
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as e:
            assert e.errno == errno.ENOSPC
        # the last partial page too
        try:
            while True:
                f.write(b"x" * 512)
        except OSError as e:
            assert e.errno == errno.ENOSPC


@pytest.mark.parametrize("sync_method", ["syncfs", "journal"])
def test_full_disk_gets_452_and_keeps_what_was_acknowledged(small_fs, tern_instance, sync_method):
    tern = tern_instance
    # smtpd wants room for 1.5 x message_size_limit before it takes MAIL:
    # the 2 MB file system holds that for a small limit (and, for the
    # journal, two segments of 256 KiB: the current one and a spare)
    tern.write_config(queue_directory=str(small_fs / "spool"), message_size_limit="100000",
                      queue_sync_method=sync_method, queue_journal_segment_size="262144")
    tern.start()
    kept = [smtp_send(tern, f"r{i}@remote.example", f"before full {i}") for i in range(3)]
    for qid in kept:
        tern.wait_log(f"{qid}: to=<", timeout=5)
    fill(small_fs / "filler")

    s = tern.raw()
    s.read_reply()
    assert s.cmd("EHLO client.test")[0] == 250
    # refused at MAIL once smtpd has looked at the free space (at most a
    # second old), else when the write fails; the journal's segments are
    # written in advance, so with it a message that comes through MAIL
    # before smtpd looks fits without a new block, and is durable
    code, text = s.cmd("MAIL FROM:<sender@localhost>")
    if code == 250:
        assert s.cmd("RCPT TO:<alice@localhost>")[0] == 250
        code, text = s.cmd("DATA")
        if code == 354:
            s.send(b"Subject: disk full\r\n\r\n" + b"some text to write\r\n" * 200 + b".\r\n")
            code, text = s.read_reply()
    if code == 250 and sync_method == "journal":
        alice_got = 1   # delivered once there is room for her Maildir
    else:
        assert code == 452 and "4.3.1" in text, text
        alice_got = 0
    assert s.cmd("QUIT")[0] == 221
    s.close()
    assert list((small_fs / "spool" / "incoming").iterdir()) == []
    # once smtpd has looked, MAIL is refused in every mode
    time.sleep(1.1)
    s = tern.raw()
    s.read_reply()
    assert s.cmd("EHLO client.test")[0] == 250
    code, text = s.cmd("MAIL FROM:<sender@localhost>")
    assert code == 452 and "4.3.1" in text, text
    assert s.cmd("QUIT")[0] == 221
    s.close()

    # sendmail cannot drop its file either, and says so
    r = tern.cli("sendmail", "alice@localhost", input=b"Subject: dropped\n\n" + b"line\n" * 2000)
    assert r.returncode in (73, 75), r
    assert b"sendmail: fatal:" in r.stderr
    assert [p for p in (small_fs / "spool" / "maildrop").iterdir()] == []
    # and sendmail -bs answers with a temporary error, not a permanent one
    r = tern.cli("sendmail", "-bs", input=b"HELO x\r\nMAIL FROM:<a@localhost>\r\nRCPT TO:<alice@localhost>\r\n"
                 b"DATA\r\nSubject: bs\r\n\r\n" + b"line\r\n" * 2000 + b".\r\nQUIT\r\n")
    replies = r.stdout.decode().split("\r\n")
    assert any(l.startswith("451 4.3.0 ") for l in replies), replies
    assert not any(l.startswith("5") for l in replies), replies
    assert [p for p in (small_fs / "spool" / "maildrop").iterdir()] == []

    # what was acknowledged is still there
    assert set(kept) <= set(listed_ids(tern))

    # space comes back: accepted again without a restart
    (small_fs / "filler").unlink()
    time.sleep(1.1)   # smtpd looks at the free space once a second
    smtp_send(tern, "alice@localhost", "after space returned")
    bodies = [p.read_bytes() for p in tern.wait_messages("alice", count=1 + alice_got)]
    assert any(b"\nSubject: after space returned\n" in b for b in bodies)
    assert alice_got == sum(b"\nSubject: disk full\n" in b for b in bodies)
    sendmail = tern.cli("sendmail", "bob@localhost", input=b"Subject: sendmail again\n\nbody\n")
    assert sendmail.returncode == 0
    tern.wait_messages("bob")

    # and survives a restart intact (progress appends failed while full)
    tern.stop()
    offline = listing(tern)
    for qid in kept:
        assert qid in offline
    tern.start()
    assert set(kept) <= set(listed_ids(tern))
    assert list((small_fs / "spool" / "corrupt").iterdir()) == []
    assert len(tern.messages("alice")) == 1 + alice_got
