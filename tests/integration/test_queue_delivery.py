"""The queue, local delivery and the command-line tools, as a user sees them.

sendmail (and its options), mailq / `tern queue` and the queue commands
online and offline, retries and expiry, delivery to system users (Maildir,
mbox in the spool, ~/Mailbox) and aliases. Every test drives the real
binary (TERN_BIN, the sanitizer build in CI) through its command line,
SMTP and the files it leaves behind.
"""
import grp
import os
import pwd
import re
import secrets
import smtplib
import stat
import subprocess
import time
from pathlib import Path

import pytest

from conftest import SANITIZER_RE, TERN_BIN

QID = r"[0-9A-Z]{13}"
LIST_HEADER = "-Queue ID-     --Size-- ----Arrival Time---- -Sender/Recipient-------"
# conftest's relayhost: a port where nothing listens
REMOTE_REASON = "connect to 127.0.0.3[127.0.0.3]:1: Connection refused"


# ---------------------------------------------------------------- helpers

def wait_until(pred, timeout=10.0, what="condition", interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def sendmail(inst, *args, input=b"Subject: test\n\nbody\n", rc=0, env_extra=None):
    r = inst.cli("sendmail", *args, input=input, env_extra=env_extra)
    out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    if rc is not None:
        assert r.returncode == rc, f"sendmail {args} exited {r.returncode}:\n{out}"
    return r


def listing(inst):
    r = inst.cli("queue")
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode()


def listed_ids(inst):
    """[(id, flag)] in listing order."""
    return re.findall(rf"^({QID})([!*]?)\s", listing(inst), re.M)


def pickup_id(inst, nth=1, timeout=10):
    """The queue ID of the nth message picked up from sendmail (its
    'ID: uid=N from=<...>' log line; sendmail itself does not print it)."""
    text = inst.wait_log(r": uid=\d+ from=<", regex=True, timeout=timeout, count=nth)
    return re.findall(rf"({QID}): uid=\d+ from=<", text)[nth - 1]


def deferred_remote(inst, rcpt="someone@remote.example", subject="remote"):
    """Submits a message that stays deferred; returns its queue ID."""
    n = inst.log_text().count(": uid=")
    sendmail(inst, rcpt, input=f"Subject: {subject}\n\nbody\n".encode())
    qid = pickup_id(inst, nth=n + 1)
    inst.wait_log(f"{qid}: to=<{rcpt}>, relay=none")
    return qid


def files_queue(inst):
    """Starts inst with queue files (queue_sync_method = syncfs): for the
    tests that look at the files in queue/ and hold/ themselves
    (test_queue_journal.py has the journal's side)."""
    inst.write_config(queue_sync_method="syncfs")
    return inst.start()


def qfile(inst, qid, where="queue"):
    return inst.queue_dir / where / qid


# ---------------------------------------------------------------- sendmail

def test_sendmail_delivers_with_local_received_header(tern):
    r = sendmail(tern, "alice@localhost", input=b"Subject: hello\n\nFirst line.\nSecond line.\n")
    assert r.stdout == b"" and r.stderr == b""
    msgs = tern.wait_messages("alice")
    body = msgs[0].read_bytes()
    qid = pickup_id(tern)
    assert body.startswith(b"Return-Path: <root@example.test>\nX-Original-To: alice@localhost\nDelivered-To: alice@localhost\n"
                           b"Received: by mail.example.test (Tern, from userid 0)\n\tid " + qid.encode())
    assert b"\tfor <alice@localhost>; " in body
    # sendmail is a local client: the header is completed
    assert b"\nFrom: root@example.test\n" in body
    assert re.search(rb"\nDate: \w{3}, [ \d]?\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}", body)
    assert f"\nMessage-ID: <".encode() in body and f"{qid}@mail.example.test>".encode() in body
    assert b"\nSubject: hello\n" in body
    assert body.endswith(b"\n\nFirst line.\nSecond line.\n")
    assert b"\r" not in body
    log = tern.wait_log(f"{qid}: removed")
    assert f"{qid}: uid=0 from=<root@example.test>" in log
    assert re.search(rf"{qid}: from=<root@example.test>, size=\d+, nrcpt=1 \(queue active\)", log)
    assert re.search(rf"{qid}: to=<alice@localhost>, relay=local, delay=[\d.]+, delays=[\d./]+, dsn=2.0.0, "
                     r"status=sent \(delivered to maildir\)", log)
    # the maildrop file is gone once the queue file is durable
    assert [p for p in (tern.queue_dir / "maildrop").iterdir()] == []


def test_sendmail_qualifies_unqualified_addresses_with_myorigin(tern):
    sendmail(tern, "-f", "bob", "carol", input=b"Subject: q\n\nbody\n")
    body = tern.wait_messages("carol")[0].read_bytes()
    qid = pickup_id(tern)
    assert body.startswith(b"Return-Path: <bob@example.test>\nX-Original-To: carol@example.test\nDelivered-To: carol@example.test\n")
    # the Received: line names the recipient as it was delivered, qualified
    assert b"\tfor <carol@example.test>; " in body, body
    log = tern.wait_log(f"{qid}: removed")
    assert f"{qid}: to=<carol@example.test>, relay=local" in log


def test_sendmail_t_takes_to_cc_bcc_and_drops_bcc(tern):
    msg = (b"To: Alice <alice@localhost>, bob\n"
           b"Cc: \"Carol, C.\" <carol@localhost>\n"
           b"Bcc: dave@localhost\n"
           b"Subject: extracted\n\nhello all\n")
    sendmail(tern, "-t", "eve@localhost", input=msg)
    for user in ("alice", "bob", "carol", "dave", "eve"):
        body = tern.wait_messages(user)[0].read_bytes()
        assert b"\nSubject: extracted\n" in body
        assert b"Bcc" not in body.split(b"\n\n", 1)[0], body
        assert b"\nTo: Alice <alice@localhost>, bob\n" in body
        assert b"\nCc: \"Carol, C.\" <carol@localhost>\n" in body
        assert body.endswith(b"\n\nhello all\n")
    qid = pickup_id(tern)
    log = tern.wait_log(f"{qid}: removed")
    assert f"{qid}: to=<bob@example.test>" in log      # unqualified To: gets myorigin
    assert re.search(rf"{qid}: from=<root@example.test>, size=\d+, nrcpt=5 ", log)
    # nobody got it twice
    for user in ("alice", "bob", "carol", "dave", "eve"):
        assert len(tern.messages(user)) == 1


def test_drop_file_without_recipients_is_kept_aside_and_logged(tern):
    """sendmail refuses such a message at the door (test_submission.py); a
    drop file written some other way is still kept aside, never lost."""
    drop = tern.queue_dir / "maildrop" / "00112233445566778899aabbccddeeff"
    drop.write_bytes(b"TERNMD01\nS root@example.test\nT\n\nSubject: nobody\r\n\r\nbody\r\n")
    sendmail(tern, "alice@localhost")      # wakes pickup
    tern.wait_log("no recipient addresses found; moved to corrupt/maildrop-")
    kept = list((tern.queue_dir / "corrupt").iterdir())
    assert len(kept) == 1 and b"Subject: nobody" in kept[0].read_bytes()
    wait_until(lambda: list((tern.queue_dir / "maildrop").iterdir()) == [], what="maildrop emptied")


def test_sendmail_without_recipient_is_a_usage_error(tern):
    r = sendmail(tern, input=b"Subject: x\n\nbody\n", rc=64)
    assert b"no recipient addresses specified" in r.stderr
    assert list((tern.queue_dir / "maildrop").iterdir()) == []


def test_sendmail_f_and_F_set_sender_and_from_name(tern):
    sendmail(tern, "-f", "bob@example.test", "-F", "Bob Smith", "alice@localhost")
    sendmail(tern, "-r", "<carol@example.test>", "-F", "Smith, Carol", "dave@localhost")
    sendmail(tern, "-f", "<>", "erin@localhost")
    a = tern.wait_messages("alice")[0].read_bytes()
    assert a.startswith(b"Return-Path: <bob@example.test>\n")
    assert b"\nFrom: Bob Smith <bob@example.test>\n" in a
    d = tern.wait_messages("dave")[0].read_bytes()
    assert d.startswith(b"Return-Path: <carol@example.test>\n")
    assert b"\nFrom: \"Smith, Carol\" <carol@example.test>\n" in d
    e = tern.wait_messages("erin")[0].read_bytes()
    assert e.startswith(b"Return-Path: <>\n")
    assert "from=<>, size=" in tern.log_text()


def test_sendmail_keeps_an_existing_from_header(tern):
    sendmail(tern, "-F", "Ignored Name", "alice@localhost",
             input=b"From: Real Author <author@example.org>\nSubject: own from\n\nbody\n")
    body = tern.wait_messages("alice")[0].read_bytes()
    header = body.split(b"\n\n", 1)[0]
    assert header.count(b"\nFrom: ") == 1
    assert b"\nFrom: Real Author <author@example.org>\n" in header


@pytest.mark.parametrize("opts, expect_full", [((), False), (("-i",), True), (("-oi",), True)])
def test_lone_dot_line_ends_input_unless_i(tern, opts, expect_full):
    text = b"Subject: dots\n\nline1\n..two dots stay\n.\nline after the dot\n"
    sendmail(tern, *opts, "alice@localhost", input=text)
    body = tern.wait_messages("alice")[0].read_bytes()
    content = body.split(b"\n\n", 1)[1]
    if expect_full:
        assert content == b"line1\n..two dots stay\n.\nline after the dot\n"
    else:
        assert content == b"line1\n..two dots stay\n"


@pytest.mark.parametrize("opts", [("-ti",), ("-it",), ("-t", "-i"), ("-oi", "-t"), ("-tfbob", "-oi")])
def test_grouped_flags_work_like_getopt(tern, opts):
    """Postfix's sendmail parses with getopt: -ti is -t plus -i."""
    sendmail(tern, *opts, input=b"To: alice@localhost\nSubject: grouped\n\nx\n.\ny\n")
    body = tern.wait_messages("alice")[0].read_bytes()
    assert body.endswith(b"\n\nx\n.\ny\n"), body
    if "-tfbob" in opts:
        assert body.startswith(b"Return-Path: <bob@example.test>\n")


def test_sendmail_rejects_unknown_options(tern):
    for args in (("-Z", "alice@localhost"), ("-tZ", "alice@localhost"), ("-bz", "alice@localhost"), ("-f",)):
        r = sendmail(tern, *args, rc=64)
        assert r.stderr.startswith(b"sendmail: "), r.stderr
    assert list((tern.queue_dir / "maildrop").iterdir()) == []


def test_sendmail_normalises_line_ends(tern):
    sendmail(tern, "-i", "alice@localhost", input=b"Subject: crlf\r\n\r\nwindows\r\nunix\nold mac\rlast")
    body = tern.wait_messages("alice")[0].read_bytes()
    assert body.split(b"\n\n", 1)[1] == b"windows\nunix\nold mac\nlast\n"


def test_sendmail_bs_speaks_smtp_on_stdin(tern):
    dialogue = (b"EHLO client\r\n"
                b"MAIL FROM:<sender@example.test>\r\n"
                b"RCPT TO:<alice@localhost>\r\n"
                b"RCPT TO:<bob@localhost>\r\n"
                b"DATA\r\n"
                b"Subject: via bs\r\n\r\n..stuffed line\r\nplain\r\n.\r\n"
                b"RCPT TO:<x@localhost>\r\n"
                b"NOOP\r\n"
                b"QUIT\r\n")
    r = sendmail(tern, "-bs", input=dialogue)
    lines = r.stdout.decode().split("\r\n")
    assert lines[0].startswith("220 ")
    codes = [l[:4] for l in lines if l]
    assert codes == ["220 ", "250-", "250-", "250-", "250 ", "250 ", "250 ", "250 ", "354 ", "250 ", "503 ",
                     "250 ", "221 "], lines
    assert "250 2.0.0 Ok: queued" in lines
    for user in ("alice", "bob"):
        body = tern.wait_messages(user)[0].read_bytes()
        assert body.startswith(b"Return-Path: <sender@example.test>\n")
        assert b"Received: by mail.example.test (Tern, from userid 0)" in body
        assert body.endswith(b"\n\n.stuffed line\nplain\n")


def test_sendmail_bs_without_data_end_submits_nothing(tern):
    r = sendmail(tern, "-bs", rc=None,
                 input=b"HELO x\r\nMAIL FROM:<a@localhost>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\nSubject: cut\r\n")
    assert r.returncode != 0
    time.sleep(0.5)
    assert tern.messages("alice") == []
    assert [p for p in (tern.queue_dir / "maildrop").iterdir()] == []


def test_mailq_empty_and_bp(tern):
    for args in (("queue",), ("queue", "list"), ("mailq",), ("sendmail", "-bp")):
        r = tern.cli(*args)
        assert r.returncode == 0
        assert r.stdout == b"Mail queue is empty\n", args


def test_invoked_as_sendmail_and_mailq_through_symlinks(tern, work_dir):
    bindir = work_dir / "bin"
    bindir.mkdir()
    for name in ("sendmail", "mailq"):
        (bindir / name).symlink_to(TERN_BIN)
    env = dict(os.environ, TERN_CONFIG=str(tern.dir))
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    r = subprocess.run([str(bindir / "sendmail"), "-t", "-i"], input=b"To: alice@localhost, far@remote.example\n"
                       b"Subject: via symlink\n\nbody\n", env=env, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    body = tern.wait_messages("alice")[0].read_bytes()
    assert b"\nSubject: via symlink\n" in body
    qid = pickup_id(tern)
    tern.wait_log(f"{qid}: to=<far@remote.example>, relay=none")
    r = subprocess.run([str(bindir / "mailq")], env=env, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert not SANITIZER_RE.search(out + r.stderr.decode())
    assert out == listing(tern)
    assert re.search(rf"^{qid} +\d+ ", out, re.M) and "far@remote.example" in out
    # Postfix's MAIL_CONFIG works too
    env2 = dict(env)
    del env2["TERN_CONFIG"]
    env2["MAIL_CONFIG"] = str(tern.dir)
    r = subprocess.run([str(bindir / "mailq")], env=env2, capture_output=True, timeout=30)
    assert r.returncode == 0 and r.stdout.decode() == out


def test_sendmail_enforces_message_size_limit(tern_instance):
    tern = tern_instance
    tern.write_config(message_size_limit="4000")
    tern.start()
    r = sendmail(tern, "alice@localhost", input=b"Subject: big\n\n" + (b"x" * 70 + b"\n") * 100, rc=65)
    assert b"message size exceeds message_size_limit" in r.stderr
    assert list((tern.queue_dir / "maildrop").iterdir()) == []
    sendmail(tern, "alice@localhost", input=b"Subject: small\n\n" + b"x" * 70 + b"\n")
    assert b"\nSubject: small\n" in tern.wait_messages("alice")[0].read_bytes()


def test_mailbox_size_limit_bounces_a_message_too_large_for_the_mailbox(tern_instance):
    """Postfix's mailbox_size_limit: a Maildir message larger than it bounces
    with 5.2.2 (the sender is told); a smaller one is delivered; a limit
    below message_size_limit is warned about."""
    tern = tern_instance
    tern.write_config(mailbox_size_limit="2000")
    tern.start()
    sendmail(tern, "alice@localhost", input=b"Subject: big\n\n" + (b"x" * 70 + b"\n") * 40)
    qid = pickup_id(tern)
    log = tern.wait_log(rf"{qid}: to=<alice@localhost>, relay=local, .*dsn=5\.2\.2, status=bounced "
                        r"\(cannot write .*mailbox full", regex=True)
    assert "mailbox_size_limit (2000) is smaller than message_size_limit" in log
    sendmail(tern, "alice@localhost", input=b"Subject: small\n\nfits\n")
    msgs = tern.wait_messages("alice")
    assert len(msgs) == 1 and b"\nSubject: small\n" in msgs[0].read_bytes()


def test_submission_while_stopped_waits_in_maildrop(tern):
    tern.stop()
    sendmail(tern, "alice@localhost", input=b"Subject: while down\n\nqueued offline\n")
    drops = [p for p in (tern.queue_dir / "maildrop").iterdir()]
    assert len(drops) == 1 and not drops[0].name.startswith(".")
    assert b"queued offline" in drops[0].read_bytes()
    time.sleep(0.3)
    assert tern.messages("alice") == []
    tern.start()
    body = tern.wait_messages("alice")[0].read_bytes()
    assert body.endswith(b"\n\nqueued offline\n")
    wait_until(lambda: list((tern.queue_dir / "maildrop").iterdir()) == [], what="maildrop emptied")


def test_garbage_in_maildrop_is_moved_aside(tern):
    bad = tern.queue_dir / "maildrop" / "0123456789abcdef"
    bad.write_bytes(b"not a maildrop file\n")
    sendmail(tern, "alice@localhost")      # wakes pickup
    tern.wait_messages("alice")
    tern.wait_log("maildrop/0123456789abcdef: not a maildrop file; moved to corrupt/maildrop-0123456789abcdef")
    assert not bad.exists()
    assert (tern.queue_dir / "corrupt" / "maildrop-0123456789abcdef").read_bytes() == b"not a maildrop file\n"


def write_whole(path, data):
    """Puts a drop file into maildrop/ whole, as sendmail does (written
    beside it, then renamed in): a large one written in place can be seen
    half-written by the queue's first scan, and is then moved aside."""
    tmp = path.parent.parent / (path.name + ".tmp")
    tmp.write_bytes(data)
    os.rename(tmp, path)


def test_drop_file_with_too_many_recipients_is_moved_aside(tern):
    """Any local user can write a drop file straight into maildrop/: one
    naming 40,000 recipients is moved aside (more than 10,000), and mail of
    others is picked up meanwhile; sendmail refuses as many at the door."""
    drop = tern.queue_dir / "maildrop" / "00112233445566778899aabbccddee01"
    rcpts = "".join(f"R u{i:07d}@remote.example\n" for i in range(40000))
    write_whole(drop, f"TERNMD01\nS root@example.test\n{rcpts}\nSubject: many\r\n\r\nbody\r\n".encode())
    sendmail(tern, "alice@localhost")      # wakes pickup
    # under ASan the 40,000 lines take about 5 s before alice's file (10 s timed out once)
    tern.wait_messages("alice", timeout=30)
    tern.wait_log("more than 10000 recipients; moved to corrupt/maildrop-")
    r = sendmail(tern, *[f"u{i}@remote.example" for i in range(10001)], rc=64)
    assert b"more than 10000 recipients" in r.stderr


def test_drop_file_recipients_are_taken_without_quadratic_work(tern):
    """9,000 distinct recipients (repeats dropped) are one message, its bad
    addresses one log line, however many."""
    drop = tern.queue_dir / "maildrop" / "00112233445566778899aabbccddee02"
    rcpts = "".join(f"R u{i % 9000:07d}@remote.example\n" for i in range(9500))
    rcpts += "".join(f"R bad address {i}\n" for i in range(500))
    write_whole(drop, f"TERNMD01\nS root@example.test\n{rcpts}\nSubject: many\r\n\r\nbody\r\n".encode())
    sendmail(tern, "alice@localhost")
    log = tern.wait_log(r": from=<root@example.test>, size=\d+, nrcpt=9000 ", regex=True, timeout=30)
    assert log.count("malformed recipient address") == 1, log[-2000:]
    assert "ignoring 500 malformed recipient addresses, the first \"bad address 0\"" in log


def test_directories_in_maildrop_are_logged_once(tern):
    """maildrop/ is writable by every user: a directory there can be moved
    neither to corrupt/ nor unlinked when it is not empty; it is logged once
    and passed over, however often pickup is woken, and an empty one is
    removed."""
    md = tern.queue_dir / "maildrop"
    full = md / "d-full"
    full.mkdir()
    (full / "x").write_text("x")
    full.chmod(0o555)          # not ours to rename: the mail owner cannot update its ".."
    os.chown(full, 65534, 65534)
    empty = md / "d-empty"
    empty.mkdir()
    for i in range(5):
        sendmail(tern, "alice@localhost")
        tern.wait_messages("alice", count=i + 1)
    log = tern.log_text()
    assert log.count("maildrop/d-full: not a regular file") == 1, log[-3000:]
    assert "passed over from now on" in log
    assert "maildrop/d-empty: not a regular file; removed" in log or \
           "maildrop/d-empty: not a regular file; moved to corrupt/" in log
    assert not empty.exists()
    full.chmod(0o755)


# ---------------------------------------------------------------- the queue listing and commands

def kbytes(inst, *qids):
    """The listing's total: the message sizes the log gave, in KiB rounded up."""
    log = inst.log_text()
    total = sum(int(re.search(rf"{q}: from=<[^>]*>, size=(\d+)", log).group(1)) for q in qids)
    return (total + 1023) // 1024


def test_listing_shows_deferred_message_like_postqueue(tern):
    qid = deferred_remote(tern, "someone@remote.example")
    out = listing(tern)
    size = re.search(rf"{qid}: from=<root@example.test>, size=(\d+)", tern.log_text()).group(1)
    lines = out.split("\n")
    assert lines[0] == LIST_HEADER
    m = re.match(rf"^({QID})([*!]?) +(\d+) (\w{{3}} \w{{3}} [ \d]\d \d\d:\d\d:\d\d)  (\S+)$", lines[1])
    assert m, lines[1]
    assert m.group(1) == qid and m.group(3) == size and m.group(5) == "root@example.test"
    assert time.strftime("%a %b", time.localtime()) in m.group(4)
    assert lines[2] == " " * 45 + f"({REMOTE_REASON})"
    assert lines[3] == " " * 45 + "someone@remote.example"
    assert lines[4] == ""
    assert lines[5] == f"-- {kbytes(tern, qid)} Kbytes in 1 Request."
    assert out.endswith("Request.\n")
    # two messages: plural, and both listed in ID order
    qid2 = deferred_remote(tern, "other@remote.example")
    out = listing(tern)
    assert out.endswith(f"-- {kbytes(tern, qid, qid2)} Kbytes in 2 Requests.\n")
    assert [i for i, _ in listed_ids(tern)] == sorted([qid, qid2])
    # the null sender is listed as MAILER-DAEMON
    sendmail(tern, "-f", "<>", "bounce@remote.example", input=b"Subject: null\n\nbody\n")
    qid3 = pickup_id(tern, nth=3)
    tern.wait_log(f"{qid3}: to=<bounce@remote.example>, relay=none")
    out = listing(tern)
    assert re.search(rf"^{qid3} +\d+ \w{{3}} \w{{3}} [ \d]\d \d\d:\d\d:\d\d  MAILER-DAEMON$", out, re.M), out
    assert out.endswith(f"-- {kbytes(tern, qid, qid2, qid3)} Kbytes in 3 Requests.\n")
    # mailq and sendmail -bp print the same
    assert tern.cli("mailq").stdout.decode() == out
    assert tern.cli("sendmail", "-bp").stdout.decode() == out


def test_listing_shows_only_open_recipients(tern):
    sendmail(tern, "alice@localhost", "far@remote.example", input=b"Subject: mixed\n\nbody\n")
    qid = pickup_id(tern)
    tern.wait_messages("alice")
    tern.wait_log(f"{qid}: to=<far@remote.example>, relay=none")
    out = listing(tern)
    assert "far@remote.example" in out and "alice@localhost" not in out
    assert re.search(rf"^{qid} ", out, re.M)


def test_flush_retries_deferred_now(tern_instance):
    tern = tern_instance
    tern.write_config(minimal_backoff_time="300s", maximal_backoff_time="300s")
    tern.start()
    qid = deferred_remote(tern)
    time.sleep(1.5)
    assert tern.log_text().count(f"{qid}: to=<someone@remote.example>") == 1
    r = tern.cli("queue", "flush")
    assert r.returncode == 0
    tern.wait_log(f"{qid}: to=<someone@remote.example>", count=2, timeout=5)
    r = tern.cli("sendmail", "-q")
    assert r.returncode == 0
    tern.wait_log(f"{qid}: to=<someone@remote.example>", count=3, timeout=5)


def test_delete_one_and_all(tern):
    q1 = deferred_remote(tern, "a@remote.example")
    q2 = deferred_remote(tern, "b@remote.example")
    q3 = deferred_remote(tern, "c@remote.example")
    r = tern.cli("queue", "delete", q1)
    assert r.returncode == 0 and b"delete: 1 message\n" in r.stderr
    tern.wait_log(f"{q1}: removed (deleted by the administrator)")
    assert not qfile(tern, q1).exists()
    assert [i for i, _ in listed_ids(tern)] == [q2, q3]
    r = tern.cli("queue", "delete", q1)
    assert r.returncode == 1 and f"{q1}: no such message".encode() in r.stderr
    r = tern.cli("queue", "delete", "not-an-id")
    assert r.returncode == 64
    r = tern.cli("queue", "delete", "ALL")
    assert r.returncode == 0 and b"delete: 2 messages" in r.stderr
    assert listing(tern) == "Mail queue is empty\n"
    assert list((tern.queue_dir / "queue").iterdir()) == []
    # nothing comes back after a restart
    tern.stop()
    tern.start()
    assert listing(tern) == "Mail queue is empty\n"


def break_maildir(tern, user):
    """Makes a development-mode mailbox undeliverable: Maildir is a file."""
    home = tern.mail_dir / user
    home.mkdir(parents=True, exist_ok=True)
    (home / "Maildir").write_text("not a directory\n")


def test_hold_keeps_message_from_delivery_until_release(tern_instance):
    tern = files_queue(tern_instance)
    break_maildir(tern, "alice")
    sendmail(tern, "alice@localhost", input=b"Subject: held\n\nbody\n")
    qid = pickup_id(tern)
    tern.wait_log(f"{qid}: to=<alice@localhost>, relay=local")
    assert "status=deferred" in tern.log_text()
    r = tern.cli("queue", "hold", qid)
    assert r.returncode == 0 and b"hold: 1 message" in r.stderr
    tern.wait_log(f"{qid}: placed on hold")
    assert listed_ids(tern) == [(qid, "!")]
    assert qfile(tern, qid, "hold").exists() and not qfile(tern, qid).exists()
    # the mailbox is fixed, but a held message is not tried, not even by flush
    (tern.mail_dir / "alice" / "Maildir").unlink()
    tries = tern.log_text().count(f"{qid}: to=<alice@localhost>")
    assert tern.cli("queue", "flush").returncode == 0
    time.sleep(3)           # well beyond the 2 s maximal backoff
    assert tern.messages("alice") == []
    assert tern.log_text().count(f"{qid}: to=<alice@localhost>") == tries
    # held across a restart too
    tern.stop()
    tern.start()
    time.sleep(1)
    assert listed_ids(tern) == [(qid, "!")]
    assert tern.messages("alice") == []
    r = tern.cli("queue", "release", qid)
    assert r.returncode == 0 and b"release: 1 message" in r.stderr
    tern.wait_messages("alice")
    tern.wait_log(f"{qid}: removed")
    assert listing(tern) == "Mail queue is empty\n"
    assert not qfile(tern, qid, "hold").exists()


def test_queue_commands_while_daemon_is_stopped(tern_instance):
    tern = files_queue(tern_instance)
    q1 = deferred_remote(tern, "a@remote.example")
    q2 = deferred_remote(tern, "b@remote.example")
    q3 = deferred_remote(tern, "c@remote.example")
    online = listing(tern)
    tern.stop()
    # the offline listing reads the files and prints the same
    assert listing(tern) == online
    r = tern.cli("queue", "hold", q1)
    assert r.returncode == 0 and b"hold: 1 message" in r.stderr
    assert qfile(tern, q1, "hold").exists()
    assert listed_ids(tern) == [(q1, "!"), (q2, ""), (q3, "")]
    r = tern.cli("queue", "flush")
    assert r.returncode == 0 and b"mail system is down" in r.stderr
    r = tern.cli("queue", "delete", q2)
    assert r.returncode == 0 and b"delete: 1 message" in r.stderr
    assert not qfile(tern, q2).exists()
    r = tern.cli("queue", "release", q2)
    assert r.returncode == 1 and b"no such message" in r.stderr
    offline = listing(tern)
    # a held message survives the restart held; the others are tried again
    tern.start()
    tern.wait_log(f"{q3}: to=<c@remote.example>", count=2)
    assert listed_ids(tern) in ([(q1, "!"), (q3, "")], [(q1, "!"), (q3, "*")])
    # online and offline listings agree, held messages included
    wait_until(lambda: listing(tern) == offline, 3, "the online listing to match the offline one")
    assert tern.log_text().count(f"{q1}: to=<a@remote.example>") == 1
    tern.stop()
    r = tern.cli("queue", "release", "ALL")
    assert r.returncode == 0 and b"release: 1 message" in r.stderr
    r = tern.cli("queue", "delete", "ALL")
    assert r.returncode == 0 and b"delete: 2 messages" in r.stderr
    assert listing(tern) == "Mail queue is empty\n"
    tern.start()
    assert listing(tern) == "Mail queue is empty\n"


def test_hold_and_release_all_online(tern_instance):
    tern = files_queue(tern_instance)
    q1 = deferred_remote(tern, "a@remote.example")
    q2 = deferred_remote(tern, "b@remote.example")
    r = tern.cli("queue", "hold", "ALL")
    assert r.returncode == 0 and b"hold: 2 messages" in r.stderr
    assert listed_ids(tern) == [(q1, "!"), (q2, "!")]
    assert sorted(p.name for p in (tern.queue_dir / "hold").iterdir()) == [q1, q2]
    r = tern.cli("queue", "release", "ALL")
    assert r.returncode == 0 and b"release: 2 messages" in r.stderr
    tern.wait_log(f"{q2}: released from hold")
    assert [i for i, _ in listed_ids(tern)] == [q1, q2]
    assert all(f == "" or f == "*" for _, f in listed_ids(tern))
    assert list((tern.queue_dir / "hold").iterdir()) == []


def test_queue_commands_refuse_unknown_verbs(tern):
    r = tern.cli("queue", "frobnicate")
    assert r.returncode == 64 and b"usage:" in r.stderr
    r = tern.cli("queue", "hold")
    assert r.returncode == 64


# ---------------------------------------------------------------- retries and expiry

def delays(log, qid, rcpt):
    return [float(d) for d in re.findall(rf"{qid}: to=<{re.escape(rcpt)}>, relay=none, delay=([\d.]+),", log)]


def test_deferred_recipient_backs_off_between_minimal_and_maximal(tern_instance):
    tern = tern_instance
    tern.write_config(minimal_backoff_time="1s", maximal_backoff_time="2s")
    tern.start()
    qid = deferred_remote(tern)
    log = tern.wait_log(f"{qid}: to=<someone@remote.example>", count=5, timeout=12)
    d = delays(log, qid, "someone@remote.example")
    gaps = [b - a for a, b in zip(d, d[1:])]
    # 1 s after the first try, then doubled and capped at 2 s
    expected = [1, 2, 2, 2]
    assert len(gaps) >= 4
    for got, want in zip(gaps, expected):
        assert want - 0.3 <= got <= want + 1.0, (d, gaps)
    assert "dsn=4.4.1, status=deferred" in log
    assert re.search(rf"{qid}: to=<someone@remote.example>, relay=none, delay=[\d.]+, delays=[\d./]+, "
                     rf"dsn=4.4.1, status=deferred \({re.escape(REMOTE_REASON)}\)", log)


def test_backoff_survives_restart(tern_instance):
    """The next-try time is in the queue file: a restart does not make a
    deferred recipient's retries more frequent."""
    tern = tern_instance
    tern.write_config(minimal_backoff_time="4s", maximal_backoff_time="4s")
    tern.start()
    qid = deferred_remote(tern)
    tern.stop()
    t0 = time.time()
    tern.start()
    tern.wait_log(f"{qid}: to=<someone@remote.example>", count=2, timeout=8)
    # not retried at once at start, but when its 4 s were up (next_try is
    # kept in whole seconds: up to one second earlier)
    d = delays(tern.log_text(), qid, "someone@remote.example")
    assert d[1] - d[0] >= 2.8, d


def test_maximal_queue_lifetime_expires_message(tern_instance):
    tern = tern_instance
    tern.write_config(minimal_backoff_time="1s", maximal_backoff_time="1s", maximal_queue_lifetime="3s")
    tern.start()
    sendmail(tern, "alice@localhost", "far@remote.example", input=b"Subject: expiring\n\nbody\n")
    qid = pickup_id(tern)
    tern.wait_messages("alice")
    log = tern.wait_log(f"{qid}: removed", timeout=10)
    m = re.search(rf"{qid}: to=<far@remote.example>, relay=none, delay=([\d.]+), delays=[\d./]+, "
                  r"dsn=4.4.1, status=expired \((.*)\)", log)
    assert m, log
    assert float(m.group(1)) >= 2.0
    assert "expired" in m.group(2) and REMOTE_REASON in m.group(2)
    assert log.index("status=expired") < log.index(f"{qid}: removed")
    assert listing(tern) == "Mail queue is empty\n"
    assert not qfile(tern, qid).exists()
    # delivered exactly once to the local recipient
    assert len(tern.messages("alice")) == 1


def test_maximal_queue_lifetime_zero_tries_once(tern_instance):
    """As in Postfix: 0 means one delivery attempt, then give up."""
    tern = tern_instance
    tern.write_config(maximal_queue_lifetime="0")
    tern.start()
    sendmail(tern, "far@remote.example", input=b"Subject: once\n\nbody\n")
    qid = pickup_id(tern)
    log = tern.wait_log(f"{qid}: removed")
    assert log.count(f"{qid}: to=<far@remote.example>") == 1
    assert f"{qid}: to=<far@remote.example>, relay=none" in log and "status=expired" in log
    # the bounce to the sender is its own message, delivered a moment later
    wait_until(lambda: listing(tern) == "Mail queue is empty\n", what="the queue emptied")


def test_local_deferral_is_retried_without_flush(tern):
    """A deferral that comes back from the local agent is retried on its own."""
    break_maildir(tern, "alice")
    sendmail(tern, "alice@localhost", input=b"Subject: retried\n\nbody\n")
    qid = pickup_id(tern)
    log = tern.wait_log(f"{qid}: to=<alice@localhost>, relay=local")
    assert re.search(rf"{qid}: to=<alice@localhost>, relay=local, .*dsn=4\.2\.0, status=deferred", log), log
    tern.wait_log(f"{qid}: to=<alice@localhost>, relay=local", count=2, timeout=5)
    (tern.mail_dir / "alice" / "Maildir").unlink()
    tern.wait_messages("alice", timeout=6)
    tern.wait_log(f"{qid}: removed")


def test_many_recipients_through_few_delivery_slots(tern_instance):
    """More recipients than parallel deliveries: they wait for a slot, and a
    deferral among them is retried like any other."""
    tern = tern_instance
    tern.write_config(default_process_limit="2")
    tern.start()
    users = [f"user{i:02d}" for i in range(12)]
    break_maildir(tern, "user05")
    sendmail(tern, *users, input=b"Subject: crowd\n\nbody\n")
    qid = pickup_id(tern)
    for u in users:
        if u != "user05":
            tern.wait_messages(u)
    tern.wait_log(f"{qid}: to=<user05@example.test>, relay=local", count=2, timeout=6)
    assert "status=deferred" in tern.log_text()
    (tern.mail_dir / "user05" / "Maildir").unlink()
    tern.wait_messages("user05", timeout=6)
    tern.wait_log(f"{qid}: removed")
    for u in users:
        assert len(tern.messages(u)) == 1, u


# ---------------------------------------------------------------- system users (as root)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="system-user delivery needs root")


class SystemUsers:
    """Throwaway system users with homes under the test's directory."""

    def __init__(self, base: Path):
        self.base = base
        self.homes = base / "home"
        self.homes.mkdir(exist_ok=True)
        self.homes.chmod(0o755)
        self.created = []

    def add(self, prefix="tt"):
        name = f"{prefix}{secrets.token_hex(4)}"
        home = self.homes / name
        subprocess.run(["useradd", "--no-user-group", "--gid", "users", "-M", "-d", str(home),
                        "-s", "/usr/sbin/nologin", name], check=True, capture_output=True)
        self.created.append(name)
        pw = pwd.getpwnam(name)
        home.mkdir()
        os.chown(home, pw.pw_uid, pw.pw_gid)
        home.chmod(0o755)
        return pw

    def remove_all(self):
        for name in self.created:
            subprocess.run(["userdel", name], capture_output=True)
        self.created = []


@pytest.fixture
def system_users(work_dir):
    if os.geteuid() != 0:
        pytest.skip("needs root to create users")
    try:
        pwd.getpwnam("tern")
    except KeyError:
        pytest.skip("mail_owner 'tern' does not exist (scripts/deps.sh test creates it)")
    users = SystemUsers(work_dir)
    yield users
    users.remove_all()


def tutorial_config(inst, work_dir, **extra):
    """The tutorial's main.cf (as root): real users, aliases from a file.
    Its "relayhost =" is left out: conftest's keeps remote mail in the queue."""
    spool = work_dir / "var-mail"
    if not spool.exists():
        spool.mkdir()
        spool.chmod(0o1777)
    aliases = work_dir / "aliases"
    if not aliases.exists():
        aliases.write_text("")
    params = dict(myhostname="localhost", mydomain="localhost", myorigin="$mydomain",
                  mydestination="$myhostname, localhost.$mydomain, localhost",
                  local_mailbox_base=None, alias_maps=f"hash:{aliases}",
                  home_mailbox="Maildir/", mail_spool_directory=str(spool))
    params.update(extra)
    inst.write_config(**params)
    return spool


def wait_files(directory: Path, count=1, timeout=10):
    def ready():
        if not directory.is_dir():
            return None
        files = sorted(p for p in directory.iterdir())
        return files if len(files) >= count else None
    return wait_until(ready, timeout, f"{count} file(s) in {directory}")


def wait_mbox(inst, path: Path, count=1, timeout=10):
    """The mbox once count mailbox deliveries are logged (the file grows
    while a message is written, so its content alone does not say)."""
    inst.wait_log("status=sent (delivered to mailbox)", count=count, timeout=timeout)
    data = path.read_bytes()
    n = len(re.findall(rb"(?:^|\n\n)From \S+ \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\n", data))
    assert n == count, data
    return data


@needs_root
def test_tutorial_session_delivers_to_system_users_maildir(tern_instance, work_dir, system_users):
    tern = tern_instance
    user = system_users.add()
    tutorial_config(tern, work_dir)
    tern.start()
    s = tern.raw()
    assert s.read_reply()[0] == 220
    assert s.cmd("HELO localhost")[0] == 250
    assert s.cmd("MAIL FROM:<you@localhost>")[0] == 250
    assert s.cmd(f"RCPT TO:<{user.pw_name}@localhost>") == (250, "250 2.1.5 Ok")
    assert s.cmd("DATA")[0] == 354
    s.send(b"Subject: test\r\n\r\nHello from the tutorial.\r\n.\r\n")
    code, text = s.read_reply()
    assert code == 250
    s.cmd("QUIT")
    maildir = Path(user.pw_dir) / "Maildir"
    files = wait_files(maildir / "new")
    assert len(files) == 1
    st = files[0].stat()
    assert (st.st_uid, st.st_gid) == (user.pw_uid, user.pw_gid)
    assert stat.S_IMODE(st.st_mode) == 0o600
    for sub in ("", "new", "cur", "tmp"):
        dst = (maildir / sub).stat()
        assert dst.st_uid == user.pw_uid and stat.S_IMODE(dst.st_mode) == 0o700, sub
    body = files[0].read_bytes()
    assert body.startswith(f"Return-Path: <you@localhost>\nX-Original-To: {user.pw_name}@localhost\nDelivered-To: {user.pw_name}@localhost\n".encode())
    assert body.endswith(b"\n\nHello from the tutorial.\n")
    assert list((maildir / "tmp").iterdir()) == []
    assert re.search(rf",S={len(body)}$", files[0].name)


@needs_root
@pytest.mark.parametrize("spool_mode", ["1777", "root:mail 2775"])
def test_mbox_in_mail_spool_directory(tern_instance, work_dir, system_users, spool_mode):
    tern = tern_instance
    user = system_users.add()
    spool = work_dir / "var-mail"
    spool.mkdir()
    if spool_mode == "1777":
        spool.chmod(0o1777)
    else:
        os.chown(spool, 0, grp.getgrnam("mail").gr_gid)
        spool.chmod(0o2775)
    tutorial_config(tern, work_dir, home_mailbox=None)
    tern.start()
    name = user.pw_name
    sendmail(tern, "-f", "sender@example.org", name,
             input=b"Subject: one\n\nFrom the start of a line\n>From already quoted\nnot From here\n")
    with tern.smtp() as c:
        c.sendmail("you@localhost", [f"{name}@localhost"], b"Subject: two\r\n\r\nsecond message\r\n")
    mbox = spool / name
    data = wait_mbox(tern, mbox, 2)
    st = mbox.stat()
    assert st.st_uid == user.pw_uid
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert re.match(rb"From sender@example.org \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\n"
                    rb"Return-Path: <sender@example.org>\nX-Original-To: " + name.encode() + rb"@localhost\n"
                    rb"Delivered-To: " + name.encode() + rb"@localhost\n", data)
    assert b"\n\n>From the start of a line\n>>From already quoted\nnot From here\n\n" in data
    second = data.index(b"\nFrom you@localhost ")
    assert data[second - 1:second + 1] == b"\n\n"
    assert data.endswith(b"\n\nsecond message\n\n")
    # the dot-lock is released (just after the data is in place)
    wait_until(lambda: not (spool / (name + ".lock")).exists(), 3, "the lock file to go")
    assert "status=sent (delivered to mailbox)" in tern.log_text()


@needs_root
def test_home_mailbox_file_is_an_mbox_in_home(tern_instance, work_dir, system_users):
    tern = tern_instance
    user = system_users.add()
    tutorial_config(tern, work_dir, home_mailbox="Mailbox")
    tern.start()
    sendmail(tern, f"{user.pw_name}@localhost", input=b"Subject: home mbox\n\nFrom me\n")
    mbox = Path(user.pw_dir) / "Mailbox"
    data = wait_mbox(tern, mbox, 1)
    st = mbox.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (user.pw_uid, 0o600)
    assert data.startswith(b"From root@localhost ")
    assert data.endswith(b"\n\n>From me\n\n")


@needs_root
def test_broken_maildir_defers_only_that_recipient(tern_instance, work_dir, system_users):
    tern = tern_instance
    good, bad = system_users.add(), system_users.add()
    (Path(bad.pw_dir) / "Maildir").write_text("a file where the Maildir should be\n")
    tutorial_config(tern, work_dir)
    tern.start()
    with tern.smtp() as c:
        c.sendmail("you@localhost", [f"{good.pw_name}@localhost", f"{bad.pw_name}@localhost"],
                   b"Subject: two users\r\n\r\nbody\r\n")
    wait_files(Path(good.pw_dir) / "Maildir" / "new")
    log = tern.wait_log(rf"{QID}: to=<{good.pw_name}@localhost>", regex=True)
    qid = re.search(rf"({QID}): to=<{good.pw_name}@localhost>", log).group(1)
    log = tern.wait_log(f"{qid}: to=<{bad.pw_name}@localhost>")
    assert re.search(rf"{qid}: to=<{bad.pw_name}@localhost>, relay=local, .*dsn=4\.2\.\d, status=deferred \(.+\)",
                     log), log
    out = listing(tern)
    assert f"{bad.pw_name}@localhost" in out and f"{good.pw_name}@localhost" not in out
    # the admin fixes it; the next retry delivers, once, to the right owner
    (Path(bad.pw_dir) / "Maildir").unlink()
    files = wait_files(Path(bad.pw_dir) / "Maildir" / "new", timeout=8)
    assert files[0].stat().st_uid == bad.pw_uid
    tern.wait_log(f"{qid}: removed")
    assert len(list((Path(good.pw_dir) / "Maildir" / "new").iterdir())) == 1


@needs_root
def test_mbox_owned_by_someone_else_is_deferred(tern_instance, work_dir, system_users):
    tern = tern_instance
    victim, other = system_users.add(), system_users.add()
    spool = tutorial_config(tern, work_dir, home_mailbox=None)
    mbox = spool / victim.pw_name
    mbox.write_bytes(b"")
    os.chown(mbox, other.pw_uid, other.pw_gid)
    tern.start()
    sendmail(tern, victim.pw_name, other.pw_name, input=b"Subject: x\n\nbody\n")
    wait_mbox(tern, spool / other.pw_name, 1)
    log = tern.wait_log(f"to=<{victim.pw_name}@localhost>, relay=local")
    assert re.search(rf"to=<{victim.pw_name}@localhost>, relay=local, .*dsn=4\.2\.0, status=deferred "
                     rf"\(mailbox {re.escape(str(mbox))} is not owned by {victim.pw_name}\)", log), log
    assert mbox.read_bytes() == b""


@needs_root
def test_unwritable_home_defers(tern_instance, work_dir, system_users):
    tern = tern_instance
    user = system_users.add()
    Path(user.pw_dir).chmod(0o555)      # the user cannot create ~/Maildir
    tutorial_config(tern, work_dir)
    tern.start()
    sendmail(tern, user.pw_name)
    log = tern.wait_log(f"to=<{user.pw_name}@localhost>, relay=local")
    assert re.search(rf"to=<{user.pw_name}@localhost>, relay=local, .*dsn=4\.2\.0, status=deferred \(.*"
                     r"Permission denied\)", log), log
    assert not (Path(user.pw_dir) / "Maildir").exists()
    Path(user.pw_dir).chmod(0o755)
    files = wait_files(Path(user.pw_dir) / "Maildir" / "new", timeout=8)
    assert files[0].stat().st_uid == user.pw_uid


# ---------------------------------------------------------------- aliases

@needs_root
def test_aliases_chain_list_and_remote(tern_instance, work_dir, system_users):
    tern = tern_instance
    u1, u2 = system_users.add(), system_users.add()
    (work_dir / "aliases").write_text(
        "# test aliases\n"
        f"postmaster: root\n"
        f"root: {u1.pw_name}\n"
        f"team: {u1.pw_name}, {u2.pw_name}\n"
        f"far: someone@remote.example\n")
    tutorial_config(tern, work_dir)
    tern.start()
    with tern.smtp() as c:
        c.sendmail("you@localhost", ["postmaster@localhost"], b"Subject: to postmaster\r\n\r\nbody\r\n")
        c.sendmail("you@localhost", ["team@localhost"], b"Subject: to team\r\n\r\nbody\r\n")
        c.sendmail("you@localhost", ["far@localhost"], b"Subject: to far\r\n\r\nbody\r\n")
    new1 = Path(u1.pw_dir) / "Maildir" / "new"
    new2 = Path(u2.pw_dir) / "Maildir" / "new"
    files1 = wait_files(new1, 2)
    files2 = wait_files(new2, 1)
    subjects1 = sorted(re.search(rb"\nSubject: (.*)\n", f.read_bytes()).group(1) for f in files1)
    assert subjects1 == [b"to postmaster", b"to team"]
    assert b"\nSubject: to team\n" in files2[0].read_bytes()
    assert files2[0].stat().st_uid == u2.pw_uid
    pm = [f.read_bytes() for f in files1 if b"to postmaster" in f.read_bytes()][0]
    # X-Original-To: the address as it arrived, before postmaster -> root -> u1
    assert pm.startswith(f"Return-Path: <you@localhost>\nX-Original-To: postmaster@localhost\nDelivered-To: {u1.pw_name}@localhost\n".encode())
    # (the file is in new/ a moment before the queue logs the result)
    tern.wait_log(rf"to=<{u1.pw_name}@localhost>, orig_to=<postmaster@localhost>, relay=local, .*status=sent",
                  regex=True)
    tern.wait_log(rf"to=<{u2.pw_name}@localhost>, orig_to=<team@localhost>, relay=local, .*status=sent",
                  regex=True)
    tern.wait_log(r"to=<someone@remote.example>, orig_to=<far@localhost>, relay=none, .*status=deferred",
                  regex=True)
    out = listing(tern)
    assert "someone@remote.example" in out and "postmaster" not in out and "team@" not in out
    time.sleep(0.5)
    assert len(list(new1.iterdir())) == 2 and len(list(new2.iterdir())) == 1


def test_alias_address_targets_in_our_domains_are_expanded_again(tern_instance, work_dir):
    """An alias naming user@one-of-our-domains is that address's aliases too,
    as with Postfix (each local name is followed once, so loops end)."""
    tern = tern_instance
    aliases = work_dir / "aliases"
    aliases.write_text("team: alice@localhost, Boss@Example.Test\n"
                       "boss: bob\n"
                       "abuse: postmaster@localhost\n"
                       "postmaster: carol, alice@localhost\n"
                       "loop1: loop2@localhost\n"
                       "loop2: loop1@localhost\n")
    tern.write_config(alias_maps=f"hash:{aliases}")
    tern.start()
    sendmail(tern, "team", "abuse", "loop1", input=b"Subject: nested\n\nbody\n")
    qid = pickup_id(tern)
    log = tern.wait_log(f"{qid}: removed")
    delivered = re.findall(rf"{qid}: to=<([^>]+)>, orig_to=<([^>]+)>, relay=local, .*status=sent", log)
    assert sorted(delivered) == sorted([
        ("alice@localhost", "team@example.test"),
        ("bob@example.test", "team@example.test"),
        ("carol@localhost", "abuse@example.test"),
        ("loop1@localhost", "loop1@example.test"),
    ]), log  # alice, reached through team and abuse, gets one copy
    assert sorted(p.name for p in tern.mail_dir.iterdir()) == ["alice", "bob", "carol", "loop1"]
    assert len(tern.messages("alice")) == 1


@pytest.mark.parametrize("special", ["yes", "no"])
def test_owner_alias_becomes_the_sender_of_the_lists_mail(tern_instance, work_dir, special):
    """aliases(5): with an owner-list alias, the list's members get the mail
    from owner-list@domain (their bounces go to the owner), as Postfix's
    owner_request_special = yes; a bounce (null sender) keeps <>."""
    tern = tern_instance
    aliases = work_dir / "aliases"
    aliases.write_text("list: alice, bob\nowner-list: carol\nplain: dave\n")
    tern.write_config(alias_maps=f"hash:{aliases}", owner_request_special=special)
    tern.start()
    sendmail(tern, "-f", "writer@example.org", "list@localhost", "plain@localhost", input=b"Subject: l\n\nbody\n")
    qid = pickup_id(tern)
    owner = b"owner-list@localhost" if special == "yes" else b"writer@example.org"
    for name in ("alice", "bob"):
        got = tern.wait_messages(name)[0].read_bytes()
        assert got.startswith(b"Return-Path: <" + owner + b">\n"), got[:200]
    assert tern.wait_messages("dave")[0].read_bytes().startswith(b"Return-Path: <writer@example.org>\n")
    log = tern.wait_log(f"{qid}: removed")
    if special == "yes":
        m = re.search(rf"{qid}: to=<list@localhost>: expanded by alias to 2 addresses, sent from "
                      r"<owner-list@localhost> as (\w+)", log)
        assert m, log
        tern.wait_log(f"{m.group(1)}: removed")
        assert "carol" not in [p.name for p in tern.mail_dir.iterdir()]
        # a bounce keeps the null sender
        sendmail(tern, "-f", "", "list@localhost", input=b"Subject: n\n\nbody\n")
        wait_until(lambda: len(tern.messages("alice")) == 2, 10, "the second message")
        second = [p.read_bytes() for p in tern.messages("alice") if b"Subject: n" in p.read_bytes()][0]
        assert second.startswith(b"Return-Path: <>\n"), second[:100]


@pytest.mark.parametrize("enabled", ["yes", "no"])
def test_x_original_to_names_the_recipient_as_it_arrived(tern_instance, work_dir, enabled):
    """Postfix's local(8): X-Original-To: (the address before aliases) between
    Return-Path: and Delivered-To: (the address delivered);
    enable_original_recipient = no leaves it out."""
    tern = tern_instance
    aliases = work_dir / "aliases"
    aliases.write_text("staff: team@localhost\nteam: bob\n")
    tern.write_config(alias_maps=f"hash:{aliases}", enable_original_recipient=enabled)
    tern.start()
    sendmail(tern, "-f", "a@example.org", "staff@localhost", "carol@localhost", input=b"Subject: x\n\nbody\n")
    bob = tern.wait_messages("bob")[0].read_bytes()
    carol = tern.wait_messages("carol")[0].read_bytes()
    if enabled == "yes":
        assert bob.startswith(b"Return-Path: <a@example.org>\nX-Original-To: staff@localhost\n"
                              b"Delivered-To: bob@localhost\n"), bob[:200]
        assert carol.startswith(b"Return-Path: <a@example.org>\nX-Original-To: carol@localhost\n"
                                b"Delivered-To: carol@localhost\n"), carol[:200]
    else:
        assert bob.startswith(b"Return-Path: <a@example.org>\nDelivered-To: bob@localhost\n"), bob[:200]
        assert b"X-Original-To" not in bob and b"X-Original-To" not in carol


@needs_root
def test_unknown_local_user_rejected_at_rcpt_and_bounced_via_sendmail(tern_instance, work_dir, system_users):
    tern = tern_instance
    user = system_users.add()
    tutorial_config(tern, work_dir)
    tern.start()
    ghost = "nosuchuser" + secrets.token_hex(3)
    s = tern.raw()
    s.read_reply()
    s.cmd("EHLO localhost")
    assert s.cmd("MAIL FROM:<you@localhost>")[0] == 250
    code, text = s.cmd(f"RCPT TO:<{ghost}@localhost>")
    assert code == 550 and text.startswith("550 5.1.1 ")
    assert s.cmd(f"RCPT TO:<{user.pw_name}@localhost>")[0] == 250
    s.cmd("QUIT")
    sendmail(tern, ghost, user.pw_name, input=b"Subject: partly unknown\n\nbody\n")
    wait_files(Path(user.pw_dir) / "Maildir" / "new")
    qid = pickup_id(tern)
    log = tern.wait_log(f"{qid}: removed")
    assert re.search(rf"{qid}: to=<{ghost}@localhost>, relay=local, .*dsn=5\.1\.1, status=bounced "
                     rf"\(unknown user: \"{ghost}\"\)", log), log
    assert listing(tern) == "Mail queue is empty\n"


@needs_root
def test_luser_relay_takes_unknown_local_users_mail(tern_instance, work_dir, system_users):
    """Postfix's luser_relay: an unknown local user's mail goes to the
    catch-all (with $local expanded) instead of bouncing; smtpd still refuses
    unknown users at RCPT (local_recipient_maps), as Postfix documents."""
    tern = tern_instance
    user = system_users.add()
    tutorial_config(tern, work_dir, luser_relay=f"{user.pw_name}+$local@localhost", recipient_delimiter="+")
    tern.start()
    ghost = "nosuchuser" + secrets.token_hex(3)
    s = tern.raw()
    s.read_reply()
    s.cmd("EHLO localhost")
    assert s.cmd("MAIL FROM:<you@localhost>")[0] == 250
    assert s.cmd(f"RCPT TO:<{ghost}@localhost>")[0] == 550
    s.cmd("QUIT")
    sendmail(tern, "-f", "you@localhost", f"{ghost}@localhost", input=b"Subject: lost\n\nbody\n")
    qid = pickup_id(tern)
    [f] = wait_files(Path(user.pw_dir) / "Maildir" / "new")
    data = f.read_bytes()
    assert data.startswith(f"Return-Path: <you@localhost>\nX-Original-To: {ghost}@localhost\n"
                           f"Delivered-To: {user.pw_name}+{ghost}@localhost\n".encode()), data[:300]
    log = tern.wait_log(f"{qid}: removed")
    assert f"{qid}: to=<{ghost}@localhost>: expanded by luser_relay to 1 recipient" in log
    assert re.search(rf"{qid}: to=<{user.pw_name}\+{ghost}@localhost>, orig_to=<{ghost}@localhost>, "
                     r"relay=local, .*status=sent", log), log


@needs_root
def test_alias_file_changes_apply_without_restart(tern_instance, work_dir, system_users):
    tern = tern_instance
    user = system_users.add()
    tutorial_config(tern, work_dir)
    tern.start()
    with tern.smtp() as c:
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            c.sendmail("you@localhost", ["sales@localhost"], b"Subject: x\r\n\r\nb\r\n")
    new = work_dir / "aliases.new"
    new.write_text(f"sales: {user.pw_name}\n")
    os.rename(new, work_dir / "aliases")
    time.sleep(1.2)     # the table is re-stat'ed at most once a second

    def accepted():
        try:
            with tern.smtp() as c:
                c.sendmail("you@localhost", ["sales@localhost"], b"Subject: sales\r\n\r\nb\r\n")
            return True
        except smtplib.SMTPRecipientsRefused:
            time.sleep(0.3)
            return False
    wait_until(accepted, 5, "the new alias to be accepted")
    files = wait_files(Path(user.pw_dir) / "Maildir" / "new")
    assert b"\nSubject: sales\n" in files[0].read_bytes()


# ---------------------------------------------------------------- ordinary users

def cli_as(inst, pw, *args, input=None):
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    r = subprocess.run(["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", "--",
                        TERN_BIN, "-c", str(inst.dir), *args], input=input, capture_output=True, env=env,
                       timeout=60)
    assert not SANITIZER_RE.search(r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace"))
    return r


@needs_root
def test_ordinary_user_submits_and_lists_but_cannot_change_the_queue(tern, system_users):
    user = system_users.add()
    r = cli_as(tern, user, "sendmail", "alice@localhost", "far@remote.example",
               input=b"Subject: from a user\n\nbody\n")
    assert r.returncode == 0, r.stderr
    body = tern.wait_messages("alice")[0].read_bytes()
    assert body.startswith(f"Return-Path: <{user.pw_name}@example.test>\n".encode())
    assert f"Received: by mail.example.test (Tern, from userid {user.pw_uid})".encode() in body
    assert f"\nFrom: {user.pw_name}@example.test\n".encode() in body
    qid = pickup_id(tern)
    assert f"{qid}: uid={user.pw_uid} from=<{user.pw_name}@example.test>" in tern.log_text()
    tern.wait_log(f"{qid}: to=<far@remote.example>, relay=none")
    # listing is open to everyone
    r = cli_as(tern, user, "queue")
    assert r.returncode == 0 and r.stdout.decode() == listing(tern)
    # changes are not
    for verb in ("delete", "hold"):
        r = cli_as(tern, user, "queue", verb, qid)
        assert r.returncode == 1 and b"permission denied" in r.stderr, r.stderr
    assert listed_ids(tern) == [(qid, "")]
    # a user cannot pretend to be someone else's uid in Received:
    r = cli_as(tern, user, "sendmail", "-f", "root@example.test", "bob@localhost", input=b"Subject: f\n\nb\n")
    assert r.returncode == 0
    bob = tern.wait_messages("bob")[0].read_bytes()
    assert f"(Tern, from userid {user.pw_uid})".encode() in bob


def test_sendmail_loop_bounces(tern_instance):
    """A locally submitted message with more than hopcount_limit Received:
    lines is a forwarding loop: nobody to reply 554 to, so it bounces."""
    tern_instance.write_config(hopcount_limit="3")
    tern = tern_instance.start()
    hops = "".join(f"Received: from h{i}.example by h{i + 1}.example; Mon, 1 Jan 2024 00:00:00 +0000\n"
                   for i in range(4))
    sendmail(tern, "-f", "alice@localhost", "bob@localhost",
             input=(hops + "Subject: looping\n\nround and round\n").encode())
    log = tern.wait_log("status=bounced")
    assert re.search(r"to=<bob@localhost>, relay=none, .*dsn=5\.4\.6, status=bounced \(mail forwarding loop: "
                     r"too many hops", log), log
    assert tern.messages("bob") == []
    notice = tern.wait_messages("alice")[0].read_bytes()
    assert b"mail forwarding loop" in notice
