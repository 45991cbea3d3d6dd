"""queue_sync_method = journal: the queue kept as records of a journal.

What a user of this mode relies on: mail is delivered, nothing of it is
left as one file per message, a deferred or held message survives kill -9,
shows in `tern queue` and can be held, released or deleted whether tern
runs or not, and a full disk gets 452 without losing anything.
"""
import os
import re
import socket
import struct
import time

from test_local_commands import ipc_decode
from test_queue_durability import QID, fill, listing, listed_ids, small_fs, smtp_send, wait_until  # noqa: F401


def start_journal(inst, **params):
    inst.write_config(queue_sync_method="journal", **params)
    inst.start()
    return inst


def test_journal_mode_delivers_and_leaves_no_queue_files(tern_instance):
    tern = start_journal(tern_instance)
    ids = [smtp_send(tern, "alice@localhost", f"journal {i}") for i in range(3)]
    files = tern.wait_messages("alice", count=3)
    subjects = sorted(re.search(rb"\nSubject: (.*)\n", f.read_bytes()).group(1) for f in files)
    assert subjects == [b"journal 0", b"journal 1", b"journal 2"]
    for qid in ids:
        tern.wait_log(f"{qid}: removed")
    segments = sorted(p.name for p in (tern.queue_dir / "journal").iterdir())
    assert any(name.startswith("seg-") for name in segments), segments
    assert list((tern.queue_dir / "queue").iterdir()) == []
    wait_until(lambda: list((tern.queue_dir / "incoming").iterdir()) == [], 5, "incoming/ to empty")


def test_journal_keeps_held_message_across_kill9_and_lists_it_offline(tern_instance):
    tern = start_journal(tern_instance)
    qid = smtp_send(tern, "someone@remote.example", "held in the journal")
    tern.wait_log(f"{qid}: to=<someone@remote.example>")
    r = tern.cli("queue", "hold", qid)
    assert r.returncode == 0, r.stderr
    tern.wait_log(f"{qid}: placed on hold")
    assert (qid + "!") in listing(tern)

    tern.kill9()
    time.sleep(0.2)
    tern.start()
    assert re.search(rf"^{qid}!\s", listing(tern), re.M), listing(tern)

    tern.stop()
    offline = listing(tern)
    assert re.search(rf"^{qid}!\s", offline, re.M), offline
    assert "someone@remote.example" in offline
    # with tern stopped, tern queue changes the journal itself (as its owner)
    r = tern.cli("queue", "release", qid)
    assert r.returncode == 0 and b"release: 1 message" in r.stderr, r.stderr
    assert re.search(rf"^{qid}\s", listing(tern), re.M), listing(tern)
    other = None
    tern.start()
    assert re.search(rf"^{qid}[*]?\s", listing(tern), re.M), listing(tern)
    other = smtp_send(tern, "other@remote.example", "deleted while stopped")
    tern.wait_log(f"{other}: to=<other@remote.example>")
    tern.stop()
    r = tern.cli("queue", "delete", other)
    assert r.returncode == 0 and b"delete: 1 message" in r.stderr, r.stderr
    assert other not in listing(tern)
    for path in (tern.queue_dir / "journal").iterdir():
        assert path.stat().st_uid == (tern.queue_dir / "journal").stat().st_uid, path
    tern.start()
    assert other not in listed_ids(tern)
    r = tern.cli("queue", "delete", qid)
    assert r.returncode == 0, r.stderr
    wait_until(lambda: qid not in listed_ids(tern), 5, "the deleted message to go")
    tern.stop()
    tern.start()
    assert qid not in listed_ids(tern)


def test_journal_full_disk_gets_452_at_end_of_data_and_keeps_what_was_acknowledged(small_fs, tern_instance):
    """The journal's segments are made ahead: when the next one cannot be
    made, the messages that do not fit the current one get 452 4.3.1, what
    was acknowledged stays, and mail is taken again once there is room."""
    tern = tern_instance
    start_journal(tern, queue_directory=str(small_fs / "spool"), message_size_limit="20000",
                  queue_journal_segment_size="262144")
    # one message first: the queue has opened its journal (and made its
    # spare) before the disk fills
    first = smtp_send(tern, "first@remote.example", "before the disk fills")
    tern.wait_log(f"{first}: to=<first@remote.example>")
    filler = small_fs / "filler"
    fill(filler)
    # leave room for smtpd's free-space check (1.5 x message_size_limit)
    # and for incoming files, but not for another segment
    os.truncate(filler, max(0, filler.stat().st_size - 120 * 1024))
    body = "x" * 75 + "\r\n"
    acked, refused = [], None
    for i in range(200):
        with tern.smtp() as c:
            c.ehlo("client.test")
            c.mail("sender@localhost")
            c.rcpt(f"r{i}@remote.example")
            code, text = c.data(f"Subject: fill {i}\r\n\r\n{body * 100}".encode())
        if code != 250:
            refused = (code, text.decode())
            break
        acked.append(re.search(rf"queued as ({QID})", text.decode()).group(1))
    assert refused and refused[0] == 452 and "4.3.1" in refused[1], refused
    # about a segment (256 KiB) of ~7.8 KiB messages went in first
    assert len(acked) >= 25, (len(acked), refused, tern.log_text())
    assert set(acked + [first]) <= set(listed_ids(tern))

    filler.unlink()
    time.sleep(1.1)   # smtpd looks at the free space once a second
    later = smtp_send(tern, "alice@localhost", "after space returned")
    tern.wait_log(f"{later}: removed")
    tern.stop()
    tern.start()
    assert set(acked + [first]) <= set(listed_ids(tern))


def test_each_commit_is_answered_once_under_concurrent_sessions(tern_instance):
    """The journal's writer thread sends smtpd the answer to a commit it has
    made durable, and the queue's loop answers the rest: with sessions
    committing at once (several messages per connection, so a stray second
    answer would meet a later request), every message gets one 250, is
    delivered once, and smtpd never hears of a request it did not make."""
    import threading
    tern = start_journal(tern_instance)
    sessions, per_session = 8, 12
    ids, errors = [], []

    def session(n):
        try:
            with tern.smtp() as c:
                c.ehlo("client.test")
                for i in range(per_session):
                    c.mail("sender@localhost")
                    c.rcpt("alice@localhost")
                    code, text = c.data(f"Subject: s{n} m{i}\r\n\r\nbody\r\n".encode())
                    assert code == 250, (code, text)
                    ids.append(re.search(rf"queued as ({QID})", text.decode()).group(1))
        except Exception as e:  # reported below, with the others
            errors.append(repr(e))

    threads = [threading.Thread(target=session, args=(n,)) for n in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    total = sessions * per_session
    assert len(set(ids)) == total
    files = tern.wait_messages("alice", count=total, timeout=30)
    subjects = sorted(re.search(rb"\nSubject: (.*)\n", f.read_bytes()).group(1) for f in files)
    assert subjects == sorted(f"s{n} m{i}".encode() for n in range(sessions) for i in range(per_session))
    tern.wait_log(f"{ids[-1]}: removed")
    log = tern.log_text()
    assert "for unknown request" not in log and "unexpected message type" not in log, log[-3000:]
    assert "was not taken over" not in log, log[-3000:]
    assert len(re.findall(r"\(queue active\)", log)) == total


# ---------------------------------------------------------------- a compromised smtpd

IPC_COMMIT, IPC_COMMIT_REPLY = 1, 2


def commit_packet(reqid, attrs):
    """A COMMIT as smtpd sends it: type, request id, then name/value pairs
    (values are bytes: the queue file travels inside as `file`)."""
    out = struct.pack("<HI", IPC_COMMIT, reqid)
    for name, value in attrs.items():
        out += struct.pack("<B", len(name)) + name.encode() + struct.pack("<I", len(value)) + value + b"\0"
    return out


def test_a_forged_commit_is_refused_and_the_queue_goes_on(tern_instance):
    """Playing a compromised smtpd on private/queue: a queue file inside the
    COMMIT that is not a valid one (binary garbage, cut short, an id that is
    not a queue id, the file both inside and as a descriptor) gets a failed
    COMMIT_REPLY and leaves nothing queued; a text attribute holding a NUL
    is a malformed message, which closes that channel only; real mail goes
    on being accepted and delivered."""
    tern = start_journal(tern_instance)
    sock = str(tern.queue_dir / "private" / "queue")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(sock)
    s.settimeout(10)
    garbage = bytes(range(256)) * 8
    forged = [
        {"id": b"01K1YSCA0Y6J7", "file": garbage},
        {"id": b"01K1YSCA0Y6J8", "file": b"\0" * 40},
        {"id": b"../../etc/x", "file": garbage},
        {"id": b"01K1YSCA0Y6J9", "file": b""},
    ]
    for i, attrs in enumerate(forged, 1):
        s.send(commit_packet(i, attrs))
        msg_type, reqid, reply = ipc_decode(s.recv(65536))
        assert (msg_type, reqid) == (IPC_COMMIT_REPLY, i), (attrs["id"], reply)
        assert reply["status"] == "fail", (attrs["id"], reply)
    # the file inside and a descriptor along with it
    r, w = os.pipe()
    socket.send_fds(s, [commit_packet(9, {"id": b"01K1YSCA0Y6JA", "file": garbage})], [r])
    os.close(r)
    os.close(w)
    msg_type, reqid, reply = ipc_decode(s.recv(65536))
    assert (msg_type, reqid, reply["status"]) == (IPC_COMMIT_REPLY, 9, "fail"), reply
    # a NUL in a text attribute: malformed, the channel is closed
    s.send(commit_packet(10, {"id": b"01K1YSCA0Y6J7\0x"}))
    assert s.recv(65536) == b""
    s.close()
    assert "holds a NUL" in tern.log_text()
    assert list((tern.queue_dir / "queue").iterdir()) == []
    assert list((tern.queue_dir / "incoming").iterdir()) == []
    assert "01K1YSCA0Y6J" not in listing(tern)
    # real mail, as small (inside the COMMIT) and as large (a memfd) as it comes
    small = smtp_send(tern, "alice@localhost", "after the forgeries")
    big_body = ("x" * 998 + "\r\n") * 100   # ~100 KB: past the writer's buffer
    with tern.smtp() as c:
        c.ehlo("client.test")
        c.mail("sender@localhost")
        c.rcpt("alice@localhost")
        code, text = c.data(f"Subject: large one\r\n\r\n{big_body}".encode())
        assert code == 250, (code, text)
    files = tern.wait_messages("alice", count=2)
    subjects = sorted(re.search(rb"\nSubject: (.*)\n", f.read_bytes()).group(1) for f in files)
    assert subjects == [b"after the forgeries", b"large one"]
    assert any(f.stat().st_size > 100_000 for f in files)
    tern.wait_log(f"{small}: removed")


def test_messages_around_the_size_a_commit_carries_arrive_whole(tern_instance):
    """smtpd hands a queue file of up to 63 KiB to the queue inside its
    COMMIT, a larger one as a memfd (its writer's buffer is 64 KiB): messages
    whose queue files fall just below, at and above both bounds, in the
    journal and as files, each arrive byte for byte."""
    tern = start_journal(tern_instance)
    sizes = [62_000, 63_800, 64_300, 64_900, 65_400, 66_000, 70_000, 130_000]
    line = "0123456789" * 9 + "\r\n"                      # 92 bytes a line
    bodies = {}
    for n, size in enumerate(sizes):
        lines = [f"{n:03d}-{i:05d}-" + line[12:] for i in range(size // len(line))]
        body = "".join(lines)
        bodies[f"size {size}"] = body.replace("\r\n", "\n").encode()
        with tern.smtp() as c:
            c.ehlo("client.test")
            c.mail("sender@localhost")
            c.rcpt("alice@localhost")
            code, text = c.data(f"Subject: size {size}\r\n\r\n{body}".encode())
            assert code == 250, (size, code, text)
    files = tern.wait_messages("alice", count=len(sizes), timeout=30)
    got = {}
    for f in files:
        data = f.read_bytes()
        subject = re.search(rb"\nSubject: (.*)\n", data).group(1).decode()
        got[subject] = data.split(b"\n\n", 1)[1]
    assert sorted(got) == sorted(bodies)
    for subject, body in bodies.items():
        assert got[subject] == body, subject
