"""The SMTP server's limits (all parameters with Postfix's names), its behaviour
under many concurrent sessions, and when the queue process goes away."""
import contextlib
import os
import re
import signal
import smtplib
import socket
import threading
import time
from pathlib import Path

import pytest

from conftest import process_pid, raw_session, settle_queue
from conftest import smtp_greeted as greeted, smtp_queue_id as queue_id, smtp_send_data as send_data


@pytest.fixture(autouse=True)
def _settle(tern_instance):
    yield
    settle_queue(tern_instance)


def start_transaction(s, rcpts=("you@localhost",)):
    assert s.cmd("MAIL FROM:<a@example.org>") == (250, "250 2.1.0 Ok")
    for r in rcpts:
        assert s.cmd(f"RCPT TO:<{r}>") == (250, "250 2.1.5 Ok")


def sentinel(inst, s, user="you"):
    """One more good message in session s, waited for until delivered."""
    start_transaction(s, rcpts=(f"{user}@localhost",))
    qid = queue_id(send_data(s, b"From: a@example.org\r\nSubject: sentinel\r\n\r\nsentinel\r\n")[1])
    inst.wait_log(f"{qid}: removed")
    return qid


def only_sentinel(inst, user="you"):
    msgs = inst.messages(user)
    assert len(msgs) == 1, msgs
    assert msgs[0].read_bytes().endswith(b"\n\nsentinel\n")
    assert list((inst.queue_dir / "incoming").iterdir()) == []


def body_of_size(n, header=b"From: a@example.org\r\nSubject: size\r\n\r\n"):
    """Content of exactly n octets (as the server counts them: CRLF lines)."""
    left = n - len(header)
    lines = [b"y" * 78 + b"\r\n"] * (left // 80)
    rem = left % 80
    if rem == 1:
        lines[-1] = b"y" * 79 + b"\r\n"
    elif rem:
        lines.append(b"y" * (rem - 2) + b"\r\n")
    content = header + b"".join(lines)
    assert len(content) == n
    return content


# ---------------------------------------------------------------------------
# message size

def test_message_size_limit_data(tern_instance):
    tern_instance.write_config(message_size_limit="2000")
    tern_instance.start()
    s = greeted(tern_instance)
    start_transaction(s)
    assert s.cmd("RSET")[0] == 250
    assert s.cmd("MAIL FROM:<a@example.org> SIZE=2001") == (552, "552 5.3.4 Message size exceeds fixed limit")
    start_transaction(s)
    assert send_data(s, body_of_size(2001)) == (
        552, "552 5.3.4 Message size exceeds fixed limit")
    # at the limit exactly: accepted (and the lie in SIZE= is not believed)
    assert s.cmd("MAIL FROM:<a@example.org> SIZE=10") == (250, "250 2.1.0 Ok")
    assert s.cmd("RCPT TO:<you@localhost>")[0] == 250
    qid = queue_id(send_data(s, body_of_size(2000))[1])
    tern_instance.wait_log(f"{qid}: removed")
    msgs = tern_instance.messages("you")
    assert len(msgs) == 1 and msgs[0].read_bytes().endswith(b"y\n")
    assert list((tern_instance.queue_dir / "incoming").iterdir()) == []


def test_message_size_limit_big_data_and_bdat(tern_instance):
    tern_instance.write_config(message_size_limit="10000")
    tern_instance.start()
    s = greeted(tern_instance)
    start_transaction(s)
    assert send_data(s, body_of_size(300_000)) == (552, "552 5.3.4 Message size exceeds fixed limit")
    start_transaction(s)
    content = body_of_size(6000)
    s.send(b"BDAT %d\r\n" % len(content) + content)
    assert s.read_reply() == (250, "250 2.0.0 Ok: 6000 bytes")
    s.send(b"BDAT %d LAST\r\n" % len(content) + content)
    assert s.read_reply() == (552, "552 5.3.4 Message size exceeds fixed limit")
    # the session is still in sync and the transaction is over
    assert s.cmd("RCPT TO:<you@localhost>") == (503, "503 5.5.1 Error: need MAIL command")
    sentinel(tern_instance, s)
    only_sentinel(tern_instance)


# ---------------------------------------------------------------------------
# recipients

def test_recipient_limit(tern_instance):
    tern_instance.write_config(smtpd_recipient_limit="3")
    tern_instance.start()
    s = greeted(tern_instance)
    start_transaction(s, rcpts=("r1@localhost", "r2@localhost", "r3@localhost"))
    assert s.cmd("RCPT TO:<r4@localhost>") == (452, "452 4.5.3 Error: too many recipients")
    assert s.cmd("RCPT TO:<r5@localhost>") == (452, "452 4.5.3 Error: too many recipients")
    qid = queue_id(send_data(s, b"From: a@example.org\r\n\r\nthree\r\n")[1])
    log = tern_instance.wait_log(f"{qid}: removed")
    assert re.search(rf"{qid}: from=<a@example\.org>, size=\d+, nrcpt=3 ", log)
    for u in ("r1", "r2", "r3"):
        assert len(tern_instance.wait_messages(u)) == 1
    assert tern_instance.messages("r4") == [] and tern_instance.messages("r5") == []
    # the limit is per transaction
    start_transaction(s, rcpts=("r4@localhost", "r5@localhost", "r6@localhost"))


# ---------------------------------------------------------------------------
# command lines

def test_command_line_length(tern):
    s = greeted(tern)
    line = "NOOP " + "x" * (1000 - 2 - 5)
    assert len(line) + 2 == 1000
    assert s.cmd(line) == (250, "250 2.0.0 Ok")
    assert s.cmd(line + "x") == (500, "500 5.5.2 Error: command line too long")
    assert s.cmd("NOOP") == (250, "250 2.0.0 Ok")
    # inside a transaction: the transaction survives
    start_transaction(s)
    assert s.cmd("RCPT TO:<" + "a" * 1200 + "@localhost>") == (500, "500 5.5.2 Error: command line too long")
    assert s.cmd("RCPT TO:<other@localhost>") == (250, "250 2.1.5 Ok")
    queue_id(send_data(s, b"From: a@example.org\r\n\r\nx\r\n")[1])
    assert len(tern.wait_messages("you")) == 1 and len(tern.wait_messages("other")) == 1


def test_endless_line_is_not_buffered(tern):
    s = greeted(tern)
    chunk = b"A" * 65536
    for _ in range(64):  # 4 MiB without a line end
        s.send(chunk)
    s.send(b"\r\nNOOP\r\n")
    assert s.read_reply() == (500, "500 5.5.2 Error: command line too long")
    assert s.read_reply() == (250, "250 2.0.0 Ok")
    assert s.cmd("QUIT")[0] == 221
    s.read_all()
    tern.wait_log("disconnect from localhost[127.0.0.1] ehlo=1 noop=1 quit=1 unknown=0/1 commands=3/4")


# ---------------------------------------------------------------------------
# errors and time

def test_hard_error_limit(tern_instance):
    tern_instance.write_config(smtpd_hard_error_limit="3")
    tern_instance.start()
    s = greeted(tern_instance)
    assert s.cmd("FOO")[0] == 500
    assert s.cmd("RCPT TO:<you@localhost>")[0] == 503
    assert s.cmd("NOOP")[0] == 250  # successes do not count
    assert s.cmd("MAIL FROM:<bad") == (501, "501 5.1.7 Bad sender address syntax")
    assert s.read_reply() == (421, "421 4.7.0 mail.example.test Error: too many errors")
    assert s.read_all() == ""
    tern_instance.wait_log("too many errors after MAIL from localhost[127.0.0.1]")
    tern_instance.wait_log("disconnect from localhost[127.0.0.1] ehlo=1 mail=0/1 rcpt=0/1 noop=1 unknown=0/1 "
                           "commands=2/5")


def test_hard_error_limit_pipelined_stops_executing(tern_instance):
    tern_instance.write_config(smtpd_hard_error_limit="2")
    tern_instance.start()
    s = greeted(tern_instance)
    s.send(b"FOO\r\nBAR\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<you@localhost>\r\n")
    assert s.read_reply()[0] == 500
    assert s.read_reply()[0] == 500
    assert s.read_reply() == (421, "421 4.7.0 mail.example.test Error: too many errors")
    assert s.read_all() == ""


def test_malformed_bdat_closes_with_one_421(tern_instance):
    tern_instance.write_config(smtpd_hard_error_limit="2")
    tern_instance.start()
    s = greeted(tern_instance)
    s.send(b"BDAT x\r\n")
    assert s.read_reply()[0] == 501
    assert s.read_reply() == (421, "421 4.7.0 mail.example.test Error: cannot recover from a malformed BDAT")
    assert s.read_all() == ""


def test_idle_timeout(tern_instance):
    tern_instance.write_config(smtpd_timeout="1s")
    tern_instance.start()
    s = greeted(tern_instance)
    t0 = time.time()
    assert s.read_reply(timeout=5) == (421, "421 4.4.2 mail.example.test Error: timeout exceeded")
    assert 0.8 < time.time() - t0 < 4
    assert s.read_all() == ""
    tern_instance.wait_log("timeout after EHLO from localhost[127.0.0.1]")
    tern_instance.wait_log("disconnect from localhost[127.0.0.1] ehlo=1 commands=1")


def test_timeout_during_data(tern_instance):
    tern_instance.write_config(smtpd_timeout="1s")
    tern_instance.start()
    s = greeted(tern_instance)
    start_transaction(s)
    assert s.cmd("DATA")[0] == 354
    s.send(b"From: a@example.org\r\n\r\npartial")
    assert s.read_reply(timeout=5) == (421, "421 4.4.2 mail.example.test Error: timeout exceeded")
    assert s.read_all() == ""
    tern_instance.wait_log("timeout after DATA from localhost[127.0.0.1]")
    tern_instance.wait_log("disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=0/1 commands=3/4")
    deadline = time.time() + 5
    while list((tern_instance.queue_dir / "incoming").iterdir()) and time.time() < deadline:
        time.sleep(0.05)
    assert list((tern_instance.queue_dir / "incoming").iterdir()) == []
    assert tern_instance.messages("you") == []


def test_activity_resets_the_timeout(tern_instance):
    tern_instance.write_config(smtpd_timeout="1s")
    tern_instance.start()
    s = greeted(tern_instance)
    for _ in range(4):
        time.sleep(0.5)
        assert s.cmd("NOOP") == (250, "250 2.0.0 Ok"), tern_instance.log_text()


def queue_pid(inst):
    """The queue process's pid, known from its log once it took a message
    (sent in a session of its own, ended before what the caller times)."""
    s = greeted(inst)
    sentinel(inst, s, user="first")
    assert s.cmd("QUIT")[0] == 221
    return process_pid(inst, "queue")


@contextlib.contextmanager
def queue_stopped_at_the_dot(inst, subject, after=b""):
    """A session whose message's final dot (and after, pipelined behind it)
    is sent while the queue process is stopped (SIGSTOP): yields the
    session; the queue goes on after the block."""
    queue = queue_pid(inst)
    s = greeted(inst)
    start_transaction(s)
    assert s.cmd("DATA")[0] == 354
    os.kill(queue, signal.SIGSTOP)
    try:
        s.send(b"From: a@example.org\r\nSubject: " + subject + b"\r\n\r\nbody\r\n.\r\n" + after)
        yield s
    finally:
        os.kill(queue, signal.SIGCONT)


def test_a_slow_commit_is_not_the_clients_timeout(tern_instance):
    """smtpd reads on while the queue commits a message, but a commit that
    takes longer than smtpd_timeout is no timeout of the client's (who was
    waiting for us): the commit's own bound answers it, 451 4.3.0, and the
    session goes on; never a 421 and a closed connection."""
    tern_instance.write_config(smtpd_timeout="1s")
    tern_instance.start()
    with queue_stopped_at_the_dot(tern_instance, b"slow commit") as s:
        assert s.read_reply(timeout=10) == (451, "451 4.3.0 Error: queue service timeout, try again later")
        assert s.cmd("NOOP") == (250, "250 2.0.0 Ok"), tern_instance.log_text()
    assert s.cmd("QUIT")[0] == 221
    assert "timeout after" not in tern_instance.log_text()
    tern_instance.wait_log("no answer from the queue service in 1 seconds")


def test_a_client_that_closes_after_its_dot_still_gets_its_replies(tern_instance):
    """A client may pipeline QUIT behind the final dot and close its sending
    side (shutdown(SHUT_WR), nc -N) while the queue commits: it still reads,
    and gets the 250 and the 221 (a client that never saw its 250 sends the
    message again)."""
    tern_instance.start()
    with queue_stopped_at_the_dot(tern_instance, b"half close", after=b"QUIT\r\n") as s:
        s.sock.shutdown(socket.SHUT_WR)
        time.sleep(0.5)   # smtpd sees the end of input during the commit
    code, text = s.read_reply(timeout=10)
    assert code == 250 and "queued as" in text, text
    assert s.read_reply(timeout=10)[0] == 221
    assert s.read_all() == ""
    msgs = tern_instance.wait_messages("you")
    assert len(msgs) == 1 and b"\nSubject: half close\n" in msgs[0].read_bytes()
    tern_instance.wait_log("disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5")


def test_a_client_that_leaves_during_the_commit(tern_instance):
    """The client closes right after its final dot, while the queue is busy
    (stopped): the commit goes on, the message is delivered (as with
    Postfix: the client saw no 250, so it will send again, at least once),
    and the session ends with it."""
    tern_instance.start()
    with queue_stopped_at_the_dot(tern_instance, b"left early") as s:
        s.close()
        time.sleep(0.5)
    msgs = tern_instance.wait_messages("you")
    assert len(msgs) == 1 and b"\nSubject: left early\n" in msgs[0].read_bytes()
    tern_instance.wait_log("disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=1 commands=4")


# ---------------------------------------------------------------------------
# header checks

def test_header_size_limit(tern_instance):
    tern_instance.write_config(header_size_limit="1000")
    tern_instance.start()
    s = greeted(tern_instance)
    big = b"From: a@example.org\r\n" + b"".join(b"X-Pad-%02d: %s\r\n" % (i, b"p" * 60) for i in range(20))
    assert len(big) > 1000
    start_transaction(s)
    # all in one write, with the body
    assert send_data(s, big + b"\r\nbody\r\n") == (552, "552 5.3.4 Message header size exceeds limit")
    # and in small pieces
    start_transaction(s)
    assert s.cmd("DATA")[0] == 354
    for i in range(0, len(big), 50):
        s.send(big[i:i + 50])
        time.sleep(0.005)
    s.send(b"\r\nbody\r\n.\r\n")
    assert s.read_reply() == (552, "552 5.3.4 Message header size exceeds limit")
    sentinel(tern_instance, s)
    only_sentinel(tern_instance)


def test_header_just_under_limit_accepted(tern_instance):
    tern_instance.write_config(header_size_limit="1000")
    tern_instance.start()
    s = greeted(tern_instance)
    head = b"From: a@example.org\r\nX-Pad: " + b"p" * (1000 - 21 - 7 - 2) + b"\r\n"
    assert len(head) == 1000
    start_transaction(s)
    qid = queue_id(send_data(s, head + b"\r\nbody\r\n")[1])
    raw = tern_instance.wait_messages("you")[0].read_bytes()
    assert raw.endswith(b"\n\nbody\n") and b"p" * 968 in raw
    tern_instance.wait_log(f"{qid}: removed")


def test_header_at_limit_split_before_the_empty_line(tern_instance):
    """A header of exactly header_size_limit bytes is accepted wherever
    the input is split, also just after the CR of the empty line."""
    tern_instance.write_config(header_size_limit="1000")
    tern_instance.start()
    s = greeted(tern_instance)
    head = b"From: a@example.org\r\nX-Pad: " + b"p" * (1000 - 21 - 7 - 2) + b"\r\n"
    start_transaction(s)
    assert s.cmd("DATA")[0] == 354
    s.send(head + b"\r")
    time.sleep(0.2)
    s.send(b"\nbody\r\n.\r\n")
    qid = queue_id(s.read_reply()[1])
    assert tern_instance.wait_messages("you")[0].read_bytes().endswith(b"\n\nbody\n")
    tern_instance.wait_log(f"{qid}: removed")
    # no empty line: the first body line ends the header, even when it
    # arrives in pieces and the piece takes the total past the limit
    start_transaction(s, rcpts=("other@localhost",))
    assert s.cmd("DATA")[0] == 354
    s.send(head + b"body t")
    time.sleep(0.2)
    s.send(b"ext\r\n.\r\n")
    qid = queue_id(s.read_reply()[1])
    raw = tern_instance.wait_messages("other")[0].read_bytes()
    assert re.search(rb"p{970}\nDate: [^\n]+\nMessage-ID: <[^\n]+>\n\nbody text\n$", raw), raw
    tern_instance.wait_log(f"{qid}: removed")


def test_hopcount_limit(tern_instance):
    tern_instance.write_config(hopcount_limit="3")
    tern_instance.start()
    s = greeted(tern_instance)

    def hops(n):
        return b"".join(b"Received: from h%d.example by h%d.example; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
                        % (i, i + 1) for i in range(n))

    start_transaction(s)
    assert send_data(s, hops(4) + b"From: a@example.org\r\n\r\nloop\r\n") == (
        554, "554 5.4.6 Too many hops: 4 Received: header fields, mail loop?")
    tern_instance.wait_log("reject: too many hops (4) from localhost[127.0.0.1]")
    start_transaction(s)
    qid = queue_id(send_data(s, hops(3) + b"From: a@example.org\r\n\r\nthree hops\r\n")[1])
    raw = tern_instance.wait_messages("you")[0].read_bytes()
    assert raw.count(b"\nReceived: ") == 4 and raw.endswith(b"\n\nthree hops\n")
    tern_instance.wait_log(f"{qid}: removed")
    assert len(tern_instance.messages("you")) == 1


# ---------------------------------------------------------------------------
# many sessions

def test_many_concurrent_sessions(tern):
    threads, per_thread = 50, 5
    barrier = threading.Barrier(threads)
    errors = []
    queued = []
    lock = threading.Lock()

    def client(t):
        try:
            with smtplib.SMTP(tern.host, tern.port, timeout=60) as c:
                barrier.wait(timeout=30)  # every session open at the same time
                for i in range(per_thread):
                    msg = (f"From: t{t}@example.org\r\nSubject: t{t}-m{i}\r\n\r\nbody {t} {i}\r\n").encode()
                    c.sendmail(f"t{t}@example.org", [f"u{t % 10}@localhost"], msg)
                    with lock:
                        queued.append((t, i))
        except Exception as e:  # reported below
            with lock:
                errors.append(f"{t}: {e!r}")

    ts = [threading.Thread(target=client, args=(t,)) for t in range(threads)]
    for th in ts:
        th.start()
    for th in ts:
        th.join(120)
    assert errors == []
    assert len(queued) == threads * per_thread

    deadline = time.time() + 60
    while time.time() < deadline:
        if sum(len(tern.messages(f"u{k}")) for k in range(10)) >= threads * per_thread:
            break
        time.sleep(0.1)
    subjects = []
    for k in range(10):
        for m in tern.messages(f"u{k}"):
            raw = m.read_bytes()
            subjects.append(re.search(rb"\nSubject: (t\d+-m\d+)\n", raw).group(1).decode())
    # every message exactly once, each in its user's mailbox
    assert sorted(subjects) == sorted(f"t{t}-m{i}" for t in range(threads) for i in range(per_thread))
    log = tern.log_text()
    assert len(re.findall(r"tern/smtpd\[\d+\]: [0-9A-Z]+: client=", log)) == threads * per_thread
    ids = re.findall(r"tern/smtpd\[\d+\]: ([0-9A-Z]+): client=", log)
    assert len(set(ids)) == len(ids)
    n_disc = len(re.findall(r"disconnect from localhost\[127\.0\.0\.1\] ehlo=1 mail=5 rcpt=5 data=5 quit=1 "
                            r"commands=17", log))
    assert n_disc == threads


def test_client_that_does_not_read_replies_is_throttled(tern_instance):
    """Pipelined commands from a client that never reads its replies must
    not make the server buffer replies without end: it stops reading, the
    client's sends stall, and all goes on once the client reads."""
    tern_instance.write_config(smtpd_junk_command_limit="2000000000")  # NOOPs are the load here
    tern = tern_instance.start()
    smtpd = process_pid(tern, "smtpd")

    def rss_kib():
        with open(f"/proc/{smtpd}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))

    s = greeted(tern)
    rss_before = rss_kib()
    s.sock.setblocking(False)
    blob = b"NOOP\r\n" * 50000
    sent, stalled_since = 0, None
    deadline = time.time() + 20
    while sent < 40_000_000 and time.time() < deadline:
        try:
            n = s.sock.send(blob[sent % len(blob):])
            sent += n
            stalled_since = None
        except BlockingIOError:
            stalled_since = stalled_since or time.time()
            if time.time() - stalled_since > 1.0:
                break
            time.sleep(0.01)
    assert sent < 40_000_000, "the server kept reading commands whose replies nobody read"
    assert rss_kib() - rss_before < 64 * 1024
    s.sock.setblocking(True)
    partial = sent % 6
    if partial:
        s.send(b"NOOP\r\n"[partial:])
    ncmds = (sent + 5) // 6
    # every command is answered once the client reads
    expected = b"250 2.0.0 Ok\r\n" * ncmds
    got = s.buf
    s.sock.settimeout(20)
    while len(got) < len(expected):
        chunk = s.sock.recv(1 << 20)
        assert chunk, "connection closed"
        got += chunk
    assert got == expected
    s.buf = b""
    assert s.cmd("QUIT") == (221, "221 2.0.0 Bye")


# ---------------------------------------------------------------------------
# the queue going away under the server

def test_queue_lost_while_committing(tern):
    """The queue process dies while smtpd has a commit to send it: smtpd
    survives (no use of the freed channel), the client's reply tells the
    truth, and once the queue is back mail flows again. Which smtpd's event
    loop takes first, the client's input or the queue's end of connection,
    is its own choice: input first, the commit goes to the dead queue and
    the client gets 451 (that message is never delivered); the end first,
    smtpd connects again and the commit waits for the restarted queue:
    250, and it is delivered once."""
    s = greeted(tern)
    start_transaction(s)
    queue_id(send_data(s, b"From: a@example.org\r\n\r\nfirst\r\n")[1])
    master, queue, smtpd = tern.proc.pid, process_pid(tern, "queue"), process_pid(tern, "smtpd")
    os.kill(master, signal.SIGSTOP)  # no restart yet
    os.kill(smtpd, signal.SIGSTOP)
    try:
        # smtpd sees this input before the queue's end of connection
        s.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<you@localhost>\r\nBDAT 0 LAST\r\n")
        time.sleep(0.2)
        os.kill(queue, signal.SIGKILL)
        time.sleep(0.2)
    finally:
        os.kill(smtpd, signal.SIGCONT)
        os.kill(master, signal.SIGCONT)
    assert s.read_reply() == (250, "250 2.1.0 Ok")
    assert s.read_reply() == (250, "250 2.1.5 Ok")
    reply = s.read_reply()
    committed = reply[0] == 250
    if not committed:
        assert reply == (451, "451 4.3.0 Error: queue service unavailable, try again later")
    assert s.cmd("NOOP") == (250, "250 2.0.0 Ok")
    tern.wait_log("connection to the queue service lost")
    tern.wait_log("restarting queue")
    deadline = time.time() + 15
    while True:  # until the restarted queue takes mail again
        start_transaction(s)
        code, text = send_data(s, b"From: a@example.org\r\n\r\nsentinel\r\n")
        if code == 250 or time.time() > deadline:
            break
        assert code == 451, text
        time.sleep(0.3)
    qid = queue_id(text)
    tern.wait_log(f"{qid}: removed")
    if committed:
        tern.wait_messages("you", count=3)
    bodies = [m.read_bytes() for m in tern.messages("you")]
    assert len(bodies) == 2 + committed
    assert sum(b.endswith(b"\n\nfirst\n") for b in bodies) == 1
    assert sum(b.endswith(b"\n\nsentinel\n") for b in bodies) == 1


def test_soft_error_limit_slows_down_an_erring_client(tern_instance):
    """Past smtpd_soft_error_limit each error costs smtpd_error_sleep_time
    before the next command is read (the pause is the feature: only its
    lower bound is asserted)."""
    tern_instance.write_config(smtpd_soft_error_limit="2", smtpd_error_sleep_time="1s",
                               smtpd_hard_error_limit="10")
    tern_instance.start()
    s = tern_instance.raw()
    s.read_reply()
    s.send(b"BOGUS1\r\nBOGUS2\r\nBOGUS3\r\nNOOP\r\n")
    t0 = time.monotonic()
    assert s.read_reply()[0] == 500
    assert s.read_reply()[0] == 500
    t1 = time.monotonic()
    assert s.read_reply()[0] == 500
    t2 = time.monotonic()
    assert s.read_reply() == (250, "250 2.0.0 Ok")
    t3 = time.monotonic()
    assert t1 - t0 < 0.9          # below the soft limit: no pause
    assert t2 - t1 >= 0.9         # the 2nd error reached the limit: pause before the 3rd
    assert t3 - t2 >= 0.9         # and again after the 3rd
    s.close()


def test_junk_commands_count_as_errors_past_the_limit(tern_instance):
    """NOOP, RSET, VRFY, EXPN and HELP beyond smtpd_junk_command_limit count
    towards smtpd_hard_error_limit, so a session cannot idle on them forever."""
    tern_instance.write_config(smtpd_junk_command_limit="5", smtpd_hard_error_limit="3")
    tern_instance.start()
    s = greeted(tern_instance)
    for _ in range(7):
        assert s.cmd("NOOP") == (250, "250 2.0.0 Ok"), tern_instance.log_text()
    # the 6th and 7th were errors; the 8th reaches the hard limit
    assert s.cmd("RSET") == (250, "250 2.0.0 Ok")
    assert s.read_reply() == (421, "421 4.7.0 mail.example.test Error: too many errors")
    assert s.read_all() == ""


def test_client_connection_count_and_rate_limits(tern_instance):
    """Per client address, outside smtpd_client_event_limit_exceptions
    ($mynetworks): 421 4.7.0 past the limits; the limits recover."""
    tern_instance.write_config(mynetworks="127.0.0.1/32", smtpd_client_connection_count_limit="2",
                               smtpd_client_message_rate_limit="2", anvil_rate_time_unit="3s")
    tern = tern_instance.start()
    outsider = "127.0.0.20"
    a = raw_session(tern, source=outsider)
    b = raw_session(tern, source=outsider)
    assert a.read_reply()[0] == 220 and b.read_reply()[0] == 220
    c = raw_session(tern, source=outsider)
    assert c.read_reply() == (421, f"421 4.7.0 mail.example.test Error: too many connections from {outsider}")
    # mynetworks is exempt
    local = [raw_session(tern) for _ in range(3)]
    assert all(s.read_reply()[0] == 220 for s in local)
    for s in local:
        s.close()
    a.cmd("QUIT")
    a.close()
    d = raw_session(tern, source=outsider)
    assert d.read_reply()[0] == 220                      # a slot came free
    # messages per time unit
    b.cmd("EHLO outside.example")
    for i in range(2):
        assert b.cmd("MAIL FROM:<x@example.org>")[0] == 250
        assert b.cmd("RSET")[0] == 250
    assert b.cmd("MAIL FROM:<x@example.org>") == (450, f"450 4.7.1 Error: too much mail from {outsider}")
    time.sleep(3.2)
    assert b.cmd("MAIL FROM:<x@example.org>")[0] == 250   # the next time unit
    assert "Connection concurrency limit exceeded from localhost[127.0.0.20]" in tern.log_text()
    assert "Message delivery request rate limit exceeded" in tern.log_text()
    b.close()
    d.close()


def test_client_connection_rate_limit(tern_instance):
    tern_instance.write_config(mynetworks="127.0.0.1/32", smtpd_client_connection_rate_limit="3")
    tern = tern_instance.start()
    replies = []
    for i in range(4):
        s = raw_session(tern, source="127.0.0.21")
        replies.append(s.read_reply()[0])
        s.close()
    assert replies == [220, 220, 220, 421]
    assert "Connection rate limit exceeded from localhost[127.0.0.21]" in tern.wait_log("rate limit exceeded")


def server_send_queue(inst, client_port):
    """Bytes smtpd's socket to client_port has not got acknowledged (the
    kernel's tx_queue, from /proc/net/tcp), or -1."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        local, remote = f[1].split(":"), f[2].split(":")
        if int(local[1], 16) == inst.port and int(remote[1], 16) == client_port:
            return int(f[4].split(":")[0], 16)
    return -1


def session_left_unread(inst, source):
    """A client that asks for more than its buffers and smtpd's socket hold,
    then QUITs without ever reading: its 221 stays in smtpd's own output."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.bind((source, 0))
    s.connect((inst.host, inst.port))
    s.settimeout(5)
    greeting = s.recv(200)
    if greeting.startswith(b"220"):
        port, last = s.getsockname()[1], -2
        for _ in range(400):
            s.sendall(b"EHLO x\r\n" * 100)
            time.sleep(0.02)
            queued = server_send_queue(inst, port)
            if queued == last:      # the kernel takes no more: smtpd buffers the rest
                break
            last = queued
        s.sendall(b"QUIT\r\n")
    return s, greeting


def test_a_session_holding_its_last_reply_still_counts(tern_instance):
    """smtpd_client_connection_count_limit: a session stops counting when
    its last reply has left, not when it is queued: a client that QUITs and
    never reads would otherwise hold any number of sessions."""
    tern_instance.write_config(mynetworks="127.0.0.1/32", smtpd_client_connection_count_limit="2",
                               smtpd_timeout="30s")
    tern = tern_instance.start()
    held = [session_left_unread(tern, "127.0.0.40") for _ in range(6)]
    time.sleep(1)
    # a session whose 221 the kernel took is over, and counts no more; one
    # whose 221 still waits in smtpd is alive, and counts: never more than 2
    log = tern.log_text()
    alive = (len(re.findall(r"\]: connect from localhost\[127\.0\.0\.40\]", log))
             - log.count("disconnect from localhost[127.0.0.40]"))
    assert alive <= 2, (alive, [g[:40] for _, g in held])
    assert any(g.startswith(b"421 4.7.0") for _, g in held), [g for _, g in held]
    for s, _ in held:
        s.close()


def test_bdat_refusals_count_toward_the_error_limits(tern_instance):
    """A refused BDAT chunk is an error like a refused command: it pays
    smtpd_error_sleep_time past the soft limit and ends the session at the
    hard limit, before the command that follows runs."""
    tern_instance.write_config(smtpd_soft_error_limit="1", smtpd_error_sleep_time="1s",
                               smtpd_hard_error_limit="4")
    tern = tern_instance.start()
    s = greeted(tern)
    t0 = time.monotonic()
    s.send(b"BDAT 0\r\n" * 4 + b"MAIL FROM:<a@example.org>\r\n")
    out = s.read_all(timeout=15)
    assert out.count("503 5.5.1") == 4 and "421 4.7.0 mail.example.test Error: too many errors" in out, out
    assert "250 2.1.0" not in out, out
    assert time.monotonic() - t0 >= 2.5    # three pauses of a second: errors 2, 3 and 4
    s.close()


def test_client_recipient_rate_limit(tern_instance):
    """smtpd_client_recipient_rate_limit counts RCPT TO per client and time
    unit, accepted or not, as Postfix does: 450 4.7.1 past it."""
    tern_instance.write_config(mynetworks="127.0.0.1/32", smtpd_client_recipient_rate_limit="3",
                               anvil_rate_time_unit="60s")
    tern = tern_instance.start()
    s = raw_session(tern, source="127.0.0.22")
    assert s.read_reply()[0] == 220
    s.cmd("EHLO outside.example")
    assert s.cmd("MAIL FROM:<x@example.org>")[0] == 250
    assert s.cmd("RCPT TO:<you@localhost>")[0] == 250
    assert s.cmd("RCPT TO:<someone@elsewhere.example>")[0] == 554   # refused, and counted
    assert s.cmd("RCPT TO:<you@localhost>")[0] == 250
    assert s.cmd("RCPT TO:<you@localhost>") == (450, "450 4.7.1 Error: too many recipients from 127.0.0.22")
    # another client, and the exempt ones, are not affected
    t = raw_session(tern)
    assert t.read_reply()[0] == 220
    t.cmd("EHLO inside.example")
    assert t.cmd("MAIL FROM:<x@example.org>")[0] == 250
    for _ in range(5):
        assert t.cmd("RCPT TO:<you@localhost>")[0] == 250
    assert "Recipient address rate limit exceeded from localhost[127.0.0.22]" in tern.log_text()
    s.close()
    t.close()


def test_a_session_cannot_start_spf_checks_without_end(tern_instance):
    """Each MAIL starts an SPF check; a reset (EHLO, RSET) cancels only its
    answer, while its DNS lookups go on. A client pipelining EHLO/MAIL pairs
    would start thousands: past 3 left unfinished, the session's SPF is a
    temperror and no more lookups are asked."""
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # a resolver that never answers
    dns.bind(("127.0.0.1", 0))
    dns.settimeout(0.2)
    tern_instance.write_config(mynetworks="127.0.0.1/32", dns_resolvers=f"127.0.0.1:{dns.getsockname()[1]}",
                               smtpd_mail_authentication="yes")
    tern = tern_instance.start()
    s = raw_session(tern, source="127.0.0.50")
    assert s.read_reply()[0] == 220
    pairs = 30
    s.send(b"".join(f"EHLO h{i}.example\r\nMAIL FROM:<a@r{i}.example>\r\n".encode() for i in range(pairs)))
    replies = [s.read_reply()[0] for _ in range(2 * pairs)]
    assert replies == [250] * (2 * pairs), replies
    tern.wait_log("3 SPF checks abandoned by resets; no more SPF lookups for this session")
    names = set()
    deadline = time.time() + 3
    while time.time() < deadline:
        try:
            pkt = dns.recv(4096)
        except socket.timeout:
            continue
        names.update(re.findall(rb"\x01a?r(\d+)\x07example|h(\d+)\x07example", pkt))
    asked = {int(a or b) for m in names for a, b in [m]}
    assert asked and max(asked) <= 4, sorted(asked)      # the first few transactions only
    s.close()
    dns.close()


def test_a_session_waiting_on_dns_reads_few_commands_ahead(tern_instance):
    """smtpd_memory_limit counts 32 KiB a session. A session whose RCPT waits
    on DNS must not read the client's pipelined commands meanwhile beyond a
    few lines' worth (it read 256 KiB: 40 such sessions grew smtpd by 14 MB
    that no limit counted); once DNS has answered (here: timed out), every
    command is answered, in order."""
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # a resolver that never answers
    dns.bind(("127.0.0.1", 0))
    tern_instance.write_config(dns_resolvers=f"127.0.0.1:{dns.getsockname()[1]}",
                               smtpd_sender_restrictions="reject_unknown_sender_domain",
                               smtpd_junk_command_limit="2000000000")   # NOOPs are the load here
    tern = tern_instance.start()
    smtpd = process_pid(tern, "smtpd")

    def rss_kib():
        with open(f"/proc/{smtpd}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))

    sessions = []
    for i in range(40):
        s = greeted(tern)
        assert s.cmd("MAIL FROM:<a@slow.example>")[0] == 250
        s.send(b"RCPT TO:<you@localhost>\r\n")      # waits on the sender domain's lookup
        sessions.append(s)
    time.sleep(0.5)
    rss_before = rss_kib()
    few = 20 * 1024 // 6                              # past the read-ahead, within the kernel's buffers
    sessions[0].send(b"NOOP\r\n" * few)
    blob = b"NOOP\r\n" * (256 * 1024 // 6)
    for s in sessions[1:]:
        s.sock.settimeout(3)
        try:
            s.sock.sendall(blob)
        except socket.timeout:
            pass                                     # the kernel's buffers are full: fine
    time.sleep(1.0)
    grown = rss_kib() - rss_before
    assert grown < 4 * 1024, f"smtpd grew {grown} KiB reading commands ahead of a DNS answer"
    for s in sessions[1:]:
        s.close()
    first = sessions[0]
    first.sock.settimeout(30)
    code, text = first.read_reply()
    assert code == 451 and "Sender address rejected" in text, text
    for _ in range(few):
        assert first.read_reply() == (250, "250 2.0.0 Ok")
    assert first.cmd("QUIT")[0] == 221
    dns.close()
