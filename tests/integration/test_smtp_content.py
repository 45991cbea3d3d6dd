"""Message content through the SMTP server: DATA (dot-stuffing, end of
data, bare CR/LF and the SMTP smuggling sequences), BDAT/CHUNKING, 8-bit
content, and PIPELINING (replies in order and together, nothing after a
refused DATA executed)."""
import os
import re
import signal
import time

import pytest

from conftest import process_pid, raw_session, settle_queue
from conftest import smtp_greeted as greeted, smtp_queue_id as queue_id, smtp_send_data as send_data


@pytest.fixture(autouse=True)
def _settle(tern_instance):
    yield
    settle_queue(tern_instance)


def body_of(raw: bytes) -> bytes:
    return raw.partition(b"\n\n")[2]


def start_transaction(s, rcpts=("you@localhost",), mail_from="a@example.org", params=""):
    assert s.cmd(f"MAIL FROM:<{mail_from}>{params}") == (250, "250 2.1.0 Ok")
    for r in rcpts:
        assert s.cmd(f"RCPT TO:<{r}>") == (250, "250 2.1.5 Ok")


def only_message(inst, user):
    msgs = inst.wait_messages(user)
    assert len(msgs) == 1, msgs
    return msgs[0].read_bytes()


def sentinel(inst, s, user="you"):
    """Sends one more good message in session s and waits until it is
    delivered: afterwards anything an earlier command could have queued has
    been delivered too, so counting mailboxes is meaningful."""
    start_transaction(s, rcpts=(f"{user}@localhost",))
    qid = queue_id(send_data(s, b"From: a@example.org\r\nSubject: sentinel\r\n\r\nsentinel\r\n")[1])
    inst.wait_log(f"{qid}: removed")
    return qid


# ---------------------------------------------------------------------------
# DATA

def test_dot_unstuffing(tern):
    s = greeted(tern)
    start_transaction(s)
    content = (b"From: a@example.org\r\nSubject: dots\r\n\r\n"
               b"..leading dot\r\n...\r\n..\r\n. space\r\n.x unstuffed\r\n x.\r\n .\r\nlast.\r\n")
    queue_id(send_data(s, content)[1])
    assert body_of(only_message(tern, "you")) == (
        b".leading dot\n..\n.\n space\nx unstuffed\n x.\n .\nlast.\n")


def test_lone_dot_ends_data_only_at_crlf_dot_crlf_even_split(tern):
    """The end-of-data sequence is recognised across reads of any size."""
    s = greeted(tern)
    start_transaction(s)
    assert s.cmd("DATA")[0] == 354
    s.send(b"From: a@example.org\r\n\r\nline\r")
    time.sleep(0.05)
    s.send(b"\n")
    time.sleep(0.05)
    s.send(b".")
    time.sleep(0.05)
    s.send(b"\r")
    time.sleep(0.05)
    s.send(b"\n")
    queue_id(s.read_reply()[1])
    assert body_of(only_message(tern, "you")) == b"line\n"


def test_empty_message(tern):
    s = greeted(tern)
    start_transaction(s)
    qid = queue_id(send_data(s, b"")[1])
    raw = only_message(tern, "you")
    lines = raw.split(b"\n")
    # the completed header and no body at all
    assert lines[-2].startswith(b"Message-ID: <") and lines[-1] == b""
    assert lines[-3].startswith(b"Date: ") and lines[-4] == b"From: a@example.org"
    assert b"\n\n" not in raw
    tern.wait_log(f"{qid}: removed")


def test_body_without_header(tern):
    s = greeted(tern)
    start_transaction(s)
    queue_id(send_data(s, b"just a body line\r\nsecond: line\r\n")[1])
    raw = only_message(tern, "you")
    # the completed header is separated from the body by an empty line
    assert raw.endswith(b">\n\njust a body line\nsecond: line\n")


def test_big_message_intact(tern):
    s = greeted(tern)
    start_transaction(s)
    lines = [b"line %06d " % i + b"x" * (i % 900) for i in range(4000)]
    body = b"\r\n".join(lines) + b"\r\n"
    assert len(body) > 1_500_000
    queue_id(send_data(s, b"From: a@example.org\r\nSubject: big\r\n\r\n" + body)[1])
    assert body_of(only_message(tern, "you")) == body.replace(b"\r\n", b"\n")


SMUGGLED = (b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@localhost>\r\nDATA\r\n"
            b"From: evil@example.org\r\nSubject: smuggled\r\n\r\nevil\r\n")


@pytest.mark.parametrize("seq", [b"\r\n.\n", b"\n.\r\n", b"\n.\n"],
                         ids=["CRLF.LF", "LF.CRLF", "LF.LF"])
def test_smuggling_bare_lf_sequences_normalised(tern, seq):
    """A dot line ended or preceded by a bare LF never ends the data: the
    'second message' stays text inside the first."""
    s = greeted(tern)
    start_transaction(s)
    assert s.cmd("DATA")[0] == 354
    s.send(b"From: a@example.org\r\nSubject: carrier\r\n\r\nbody" + seq + SMUGGLED + b".\r\nQUIT\r\n")
    code, text = s.read_reply()
    qid = queue_id(text)
    # exactly one more reply: QUIT's; no 250 2.1.0 / 354 from smuggled commands
    assert s.read_reply() == (221, "221 2.0.0 Bye")
    assert s.read_all() == ""
    log = tern.wait_log(f"{qid}: removed")
    assert len(re.findall(r": client=localhost\[127\.0\.0\.1\]", log)) == 1
    raw = only_message(tern, "you")
    body = body_of(raw)
    assert body.startswith(b"body\n")
    assert b"MAIL FROM:<evil@example.org>\nRCPT TO:<victim@localhost>\nDATA\n" in body
    assert body.endswith(b"\nevil\n")
    assert b"\r" not in raw
    assert tern.messages("victim") == []


@pytest.mark.parametrize("seq", [b"\r.\r\n", b"\r\n.\r", b"\r.\r"], ids=["CR.CRLF", "CRLF.CR", "CR.CR"])
def test_smuggling_bare_cr_sequences_rejected(tern, seq):
    s = greeted(tern)
    start_transaction(s)
    assert s.cmd("DATA")[0] == 354
    s.send(b"From: a@example.org\r\nSubject: carrier\r\n\r\nbody" + seq + SMUGGLED + b".\r\nNOOP\r\n")
    assert s.read_reply() == (550, "550 5.6.0 Message rejected: bare CR (a CR not followed by LF) in "
                                   "message content (RFC 5321 section 2.3.8)")
    assert s.read_reply() == (250, "250 2.0.0 Ok")  # the NOOP: in sync, nothing smuggled ran
    log = tern.wait_log("reject: bare CR (a CR not followed by LF) in message content from localhost[127.0.0.1]")
    assert len(re.findall(r": client=localhost\[127\.0\.0\.1\]", log)) == 1
    sentinel(tern, s)
    assert len(tern.messages("you")) == 1  # just the sentinel
    assert tern.messages("victim") == []


@pytest.mark.parametrize("seq", [b"\r\n.\n", b"\n.\r\n", b"\n.\n"], ids=["CRLF.LF", "LF.CRLF", "LF.LF"])
def test_smuggling_with_bare_lf_rejection(tern_instance, seq):
    tern_instance.write_config(smtpd_forbid_bare_newline="reject")
    tern_instance.start()
    s = greeted(tern_instance)
    start_transaction(s)
    assert s.cmd("DATA")[0] == 354
    s.send(b"From: a@example.org\r\n\r\nbody" + seq + SMUGGLED + b".\r\nNOOP\r\n")
    assert s.read_reply() == (550, "550 5.6.0 Message rejected: bare LF (an LF not preceded by CR) in "
                                   "message content (RFC 5321 section 2.3.8)")
    assert s.read_reply() == (250, "250 2.0.0 Ok")
    sentinel(tern_instance, s)
    assert len(tern_instance.messages("you")) == 1
    assert tern_instance.messages("victim") == []


def test_bare_lf_normalised_and_stored_as_lf(tern):
    s = greeted(tern)
    start_transaction(s)
    queue_id(send_data(s, b"From: a@example.org\nSubject: lf\n\none\ntwo\r\nthree\r\n")[1])
    raw = only_message(tern, "you")
    assert b"\nFrom: a@example.org\nSubject: lf\n" in raw
    assert body_of(raw) == b"one\ntwo\nthree\n"
    assert b"\r" not in raw


def test_bare_lf_rejected_when_configured(tern_instance):
    tern_instance.write_config(smtpd_forbid_bare_newline="reject")
    tern_instance.start()
    s = greeted(tern_instance)
    start_transaction(s)
    assert send_data(s, b"From: a@example.org\r\n\r\none\ntwo\r\n") == (
        550, "550 5.6.0 Message rejected: bare LF (an LF not preceded by CR) in message content "
             "(RFC 5321 section 2.3.8)")
    tern_instance.wait_log("reject: bare LF (an LF not preceded by CR) in message content from localhost[127.0.0.1]")
    # clean CRLF content still goes through
    sentinel(tern_instance, s)
    assert len(tern_instance.messages("you")) == 1


def test_bare_cr_in_a_line_rejected(tern):
    s = greeted(tern)
    start_transaction(s)
    assert send_data(s, b"From: a@example.org\r\n\r\nover\rwrite\r\n")[0] == 550
    sentinel(tern, s)
    assert len(tern.messages("you")) == 1


NUL_REFUSED = (550, "550 5.6.0 Message rejected: NUL byte in message content (RFC 2045 section 2.8)")


@pytest.mark.parametrize("content", [b"From: a@example.org\r\n\r\nbe\x00fore\r\n",
                                     b"From: a@example.org\r\nSubject: x\x00y\r\n\r\nbody\r\n",
                                     b"From: a@example.org\r\n\r\n.\x00after a stuffed dot\r\n",
                                     b"From: a@example.org\r\n\r\n\x00" + SMUGGLED],
                         ids=["body", "header", "after-dot", "smuggling"])
def test_nul_in_data_rejected_after_the_real_end(tern, content):
    """A NUL is refused like a bare CR: a receiver that drops NULs would see
    other content (or other line ends) than we checked."""
    s = greeted(tern)
    start_transaction(s)
    assert s.cmd("DATA")[0] == 354
    s.send(content + b".\r\nNOOP\r\n")
    assert s.read_reply() == NUL_REFUSED
    assert s.read_reply() == (250, "250 2.0.0 Ok")  # in sync: the whole message was read
    tern.wait_log("reject: NUL byte in message content from localhost[127.0.0.1]")
    sentinel(tern, s)
    assert len(tern.messages("you")) == 1  # just the sentinel
    assert tern.messages("victim") == []


def test_8bitmime_body_intact(tern):
    s = greeted(tern)
    start_transaction(s, params=" BODY=8BITMIME")
    body = "Gr\u00fc\u00dfe, \u65e5\u672c\u8a9e, caf\u00e9\r\n".encode() + bytes(range(0x80, 0x100)) + b"\r\n"
    qid = queue_id(send_data(s, b"From: a@example.org\r\nContent-Type: text/plain; charset=utf-8\r\n"
                                b"Content-Transfer-Encoding: 8bit\r\n\r\n" + body)[1])
    assert body_of(only_message(tern, "you")) == body.replace(b"\r\n", b"\n")
    tern.wait_log(f"{qid}: removed")


def test_smtputf8_message(tern):
    s = greeted(tern)
    start_transaction(s, rcpts=("\u7528\u6237@localhost",), mail_from="\u00e9l\u00e8ve@\u00e9cole.example",
                      params=" SMTPUTF8 BODY=8BITMIME")
    content = ("From: \u00e9l\u00e8ve@\u00e9cole.example\r\nSubject: \u4f60\u597d\r\n\r\n"
               "\u4f60\u597d\r\n").encode()
    qid = queue_id(send_data(s, content)[1])
    raw = only_message(tern, "\u7528\u6237")
    assert raw.startswith("Return-Path: <\u00e9l\u00e8ve@\u00e9cole.example>\n"
                          "X-Original-To: \u7528\u6237@localhost\n"
                          "Delivered-To: \u7528\u6237@localhost\n".encode())
    assert f"with UTF8SMTP id {qid}".encode() in raw
    assert "\nFrom: \u00e9l\u00e8ve@\u00e9cole.example\nSubject: \u4f60\u597d\n".encode() in raw
    assert raw.endswith(">\n\n\u4f60\u597d\n".encode())
    tern.wait_log(f"{qid}: from=<\u00e9l\u00e8ve@\u00e9cole.example>")


# ---------------------------------------------------------------------------
# BDAT (RFC 3030)

def bdat(s, data: bytes, last=False):
    s.send(b"BDAT %d%s\r\n" % (len(data), b" LAST" if last else b"") + data)
    return s.read_reply()


def test_bdat_single_chunk_is_taken_literally(tern):
    s = greeted(tern)
    start_transaction(s)
    content = (b"From: a@example.org\r\nSubject: bdat\r\n\r\n"
               b"..two dots stay\r\n.\r\nnot the end\r\n" + bytes(b for b in range(1, 256) if b not in (10, 13))
               + b"\r\nlast line without CRLF")
    code, text = bdat(s, content, last=True)
    qid = queue_id(text)
    assert body_of(only_message(tern, "you")) == (
        b"..two dots stay\n.\nnot the end\n" + bytes(b for b in range(1, 256) if b not in (10, 13))
        + b"\nlast line without CRLF\n")  # the mailbox ends the last line
    assert s.cmd("QUIT")[0] == 221
    log = tern.wait_log("disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=1 bdat=1 quit=1 commands=5")
    assert f"{qid}: client=localhost[127.0.0.1]" in log


def test_bdat_several_chunks(tern):
    s = greeted(tern)
    start_transaction(s, rcpts=("you@localhost", "other@localhost"))
    # the CRLF is split between chunks: it must stay one line end
    assert bdat(s, b"From: a@example.org\r\nSubject: chunks\r") == (250, "250 2.0.0 Ok: 37 bytes")
    assert bdat(s, b"\n\r\nfirst ") == (250, "250 2.0.0 Ok: 9 bytes")
    assert bdat(s, b"") == (250, "250 2.0.0 Ok: 0 bytes")
    assert bdat(s, b"second\r\n") == (250, "250 2.0.0 Ok: 8 bytes")
    qid = queue_id(bdat(s, b"", last=True)[1])
    assert s.cmd("QUIT")[0] == 221
    for user in ("you", "other"):
        raw = only_message(tern, user)
        assert b"\nFrom: a@example.org\nSubject: chunks\n" in raw
        assert raw.endswith(b">\n\nfirst second\n")
        assert f"with ESMTP id {qid};".encode() in raw
    tern.wait_log("disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=2 bdat=5 quit=1 commands=10")


def test_bdat_pipelined_in_one_write(tern):
    s = greeted(tern)
    s.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<you@localhost>\r\nBDAT 23\r\nFrom: a@example.org\r\n\r\n"
           b"BDAT 5 LAST\r\nhelloQUIT\r\n")
    replies = [s.read_reply() for _ in range(5)]
    assert replies[:3] == [(250, "250 2.1.0 Ok"), (250, "250 2.1.5 Ok"), (250, "250 2.0.0 Ok: 23 bytes")]
    queue_id(replies[3][1])
    assert replies[4] == (221, "221 2.0.0 Bye")
    assert body_of(only_message(tern, "you")) == b"hello\n"


def test_bdat_without_rcpt_consumes_the_chunk(tern):
    s = greeted(tern)
    s.send(b"BDAT 6\r\nNOOP\r\n")
    assert s.read_reply() == (503, "503 5.5.1 Error: need MAIL command")
    assert s.cmd("MAIL FROM:<a@example.org>") == (250, "250 2.1.0 Ok")
    # a chunk that looks like commands is still data: only one reply
    s.send(b"BDAT 28 LAST\r\nRCPT TO:<victim@localhost>\r\n")
    assert s.read_reply() == (503, "503 5.5.1 Error: need RCPT command")
    assert s.cmd("RCPT TO:<you@localhost>") == (250, "250 2.1.5 Ok")
    queue_id(bdat(s, b"From: a@example.org\r\n\r\nok\r\n", last=True)[1])
    assert body_of(only_message(tern, "you")) == b"ok\n"
    assert tern.messages("victim") == []


def test_data_during_bdat_aborts(tern):
    s = greeted(tern)
    start_transaction(s)
    assert bdat(s, b"From: a@example.org\r\n\r\n") == (250, "250 2.0.0 Ok: 23 bytes")
    # pipelined after DATA: text, never commands
    s.send(b"DATA\r\nNOOP\r\n")
    assert s.read_reply() == (503, "503 5.5.1 Error: DATA during a BDAT transfer; transaction aborted")
    assert s.cmd("RSET") == (250, "250 2.0.0 Ok")  # the reply to RSET, not to the NOOP
    assert bdat(s, b"x", last=True) == (503, "503 5.5.1 Error: need MAIL command")
    sentinel(tern, s)
    assert len(tern.messages("you")) == 1


def test_mail_during_bdat_aborts(tern):
    s = greeted(tern)
    start_transaction(s)
    assert bdat(s, b"From: a@example.org\r\n\r\n")[0] == 250
    assert s.cmd("MAIL FROM:<b@example.org>") == (
        503, "503 5.5.1 Error: MAIL during a BDAT transfer; transaction aborted")
    assert bdat(s, b"x", last=True) == (503, "503 5.5.1 Error: need MAIL command")


def test_rset_aborts_bdat(tern):
    s = greeted(tern)
    start_transaction(s)
    assert bdat(s, b"From: a@example.org\r\n\r\naborted\r\n")[0] == 250
    assert s.cmd("NOOP") == (250, "250 2.0.0 Ok")  # allowed between chunks
    assert s.cmd("RSET") == (250, "250 2.0.0 Ok")
    assert bdat(s, b"more", last=True) == (503, "503 5.5.1 Error: need MAIL command")
    sentinel(tern, s)
    assert len(tern.messages("you")) == 1
    assert b"aborted" not in tern.messages("you")[0].read_bytes()
    assert list((tern.queue_dir / "incoming").iterdir()) == []


@pytest.mark.parametrize("arg", ["", "x", "-1", "5 FIRST", "99999999999999999999999"])
def test_bdat_malformed_size_closes(tern, arg):
    s = greeted(tern)
    start_transaction(s)
    s.send(f"BDAT {arg}\r\n".encode())
    assert s.read_reply() == (501, "501 5.5.4 Syntax: BDAT chunk-size [LAST]")
    assert s.read_reply() == (421, "421 4.7.0 mail.example.test Error: cannot recover from a malformed BDAT")
    assert s.read_all() == ""


def test_bdat_bare_cr_rejected(tern):
    s = greeted(tern)
    start_transaction(s)
    assert bdat(s, b"From: a@example.org\r\n\r\nx\ry\r\n", last=True) == (
        550, "550 5.6.0 Message rejected: bare CR (a CR not followed by LF) in message content "
             "(RFC 5321 section 2.3.8)")
    start_transaction(s)
    assert bdat(s, b"From: a@example.org\r\n\r\nends in CR\r", last=True)[0] == 550
    sentinel(tern, s)
    assert len(tern.messages("you")) == 1


def test_bdat_nul_rejected(tern):
    s = greeted(tern)
    start_transaction(s)
    assert bdat(s, b"From: a@example.org\r\n\r\nx\x00y\r\n", last=True) == NUL_REFUSED
    # a NUL in an earlier chunk is remembered until LAST
    start_transaction(s)
    assert bdat(s, b"From: a@example.org\r\n\r\n\x00")[0] == 250
    assert bdat(s, b"clean\r\n", last=True) == NUL_REFUSED
    sentinel(tern, s)
    assert len(tern.messages("you")) == 1


def test_bdat_zero_last_only(tern):
    s = greeted(tern)
    start_transaction(s)
    qid = queue_id(bdat(s, b"", last=True)[1])
    raw = only_message(tern, "you")
    assert raw.endswith(b">\n") and b"\nFrom: a@example.org\n" in raw and b"\n\n" not in raw
    tern.wait_log(f"{qid}: removed")


def test_bdat_content_ending_inside_a_header_line(tern):
    """BDAT content need not end in CRLF: the fields added for a local
    client must still start on lines of their own."""
    s = greeted(tern)
    start_transaction(s)
    qid = queue_id(bdat(s, b"From: a@example.org\r\nSubject: no line end", last=True)[1])
    raw = only_message(tern, "you")
    head = raw.decode()
    assert re.search(r"\nFrom: a@example\.org\nSubject: no line end\nDate: [^\n]+\nMessage-ID: <[^\n]+>\n$", head), head
    tern.wait_log(f"{qid}: removed")


def test_bdat_content_ending_inside_a_body_line(tern):
    s = greeted(tern)
    start_transaction(s)
    qid = queue_id(bdat(s, b"Subject: x\r\nbody line without end", last=True)[1])
    raw = only_message(tern, "you")
    assert re.search(rb"\nSubject: x\nFrom: a@example\.org\nDate: [^\n]+\nMessage-ID: <[^\n]+>\n\n"
                     rb"body line without end\n$", raw), raw
    tern.wait_log(f"{qid}: removed")


def test_obsolete_space_before_colon_stays_in_header(tern):
    """RFC 5322 4.5: "Subject : x" is a header field (obsolete syntax that
    must be accepted); it must not end the header."""
    s = greeted(tern)
    start_transaction(s)
    qid = queue_id(send_data(s, b"Subject : hello\r\nTo: you@localhost\r\n\r\nbody\r\n")[1])
    raw = only_message(tern, "you")
    assert re.search(rb"\nSubject : hello\nTo: you@localhost\nFrom: a@example\.org\nDate: [^\n]+\n"
                     rb"Message-ID: <[^\n]+>\n\nbody\n$", raw), raw
    tern.wait_log(f"{qid}: removed")


# ---------------------------------------------------------------------------
# PIPELINING (RFC 2920)

def test_pipelined_transaction_replies_together_and_in_order(tern):
    s = greeted(tern)
    s.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<you@localhost>\r\nRCPT TO:<x@example.org> FOO=1\r\n"
           b"RCPT TO:<other@localhost>\r\nDATA\r\n")
    s.sock.settimeout(5)
    first = s.sock.recv(65536)
    # all five replies were written at once, in order
    assert first == (b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n555 5.5.4 Unsupported option: FOO\r\n"
                     b"250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n")
    # end of data and the next transaction in one write
    s.send(b"From: a@example.org\r\n\r\nfirst\r\n.\r\nMAIL FROM:<b@example.org>\r\nRCPT TO:<you@localhost>\r\n"
           b"DATA\r\n")
    r = [s.read_reply() for _ in range(4)]
    queue_id(r[0][1])
    assert r[1:] == [(250, "250 2.1.0 Ok"), (250, "250 2.1.5 Ok"), (354, "354 End data with <CR><LF>.<CR><LF>")]
    s.send(b"From: b@example.org\r\n\r\nsecond\r\n.\r\nQUIT\r\n")
    queue_id(s.read_reply()[1])
    assert s.read_reply() == (221, "221 2.0.0 Bye")
    msgs = tern.wait_messages("you", 2)
    bodies = sorted(body_of(m.read_bytes()) for m in msgs)
    assert bodies == [b"first\n", b"second\n"]
    assert len(tern.wait_messages("other")) == 1


def test_commands_after_refused_data_are_not_executed(tern):
    s = greeted(tern)
    s.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<x@example.org> FOO=1\r\nDATA\r\n"
           b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@localhost>\r\nDATA\r\n"
           b"From: evil@example.org\r\n\r\nevil\r\n.\r\nQUIT\r\n")
    assert s.read_reply() == (250, "250 2.1.0 Ok")
    assert s.read_reply() == (555, "555 5.5.4 Unsupported option: FOO")
    assert s.read_reply() == (503, "503 5.5.1 Error: need RCPT command")
    # nothing else: the rest was message text, and QUIT went with it
    assert s.cmd("NOOP") == (250, "250 2.0.0 Ok")
    log = tern.wait_log("improper command pipelining after DATA from localhost[127.0.0.1]")
    assert re.search(r"improper command pipelining after DATA from localhost\[127\.0\.0\.1\]: \d+ bytes discarded",
                     log)
    assert s.cmd("RSET")[0] == 250
    sentinel(tern, s)
    assert tern.messages("victim") == []


def test_commands_before_greeting_are_logged(tern):
    smtpd = process_pid(tern, "smtpd")
    os.kill(smtpd, signal.SIGSTOP)
    try:
        s = raw_session(tern)
        s.send(b"EHLO early.example\r\n")
        time.sleep(0.2)
    finally:
        os.kill(smtpd, signal.SIGCONT)
    assert s.read_reply()[0] == 220
    assert s.read_reply()[0] == 250  # the early command is still answered
    tern.wait_log("improper command pipelining after CONNECT from localhost[127.0.0.1]")


def test_improper_pipelining_after_ehlo_logged(tern):
    s = raw_session(tern)
    assert s.read_reply()[0] == 220
    s.send(b"EHLO client.example\r\nMAIL FROM:<a@example.org>\r\n")
    assert s.read_reply()[0] == 250
    assert s.read_reply() == (250, "250 2.1.0 Ok")
    tern.wait_log("improper command pipelining after EHLO from localhost[127.0.0.1]")


def test_quit_pipelined_after_end_of_data(tern):
    s = greeted(tern)
    start_transaction(s)
    assert s.cmd("DATA")[0] == 354
    s.send(b"From: a@example.org\r\n\r\nbye\r\n.\r\nQUIT\r\n")
    qid = queue_id(s.read_reply()[1])
    assert s.read_reply() == (221, "221 2.0.0 Bye")
    assert s.read_all() == ""
    assert body_of(only_message(tern, "you")) == b"bye\n"
    tern.wait_log(f"{qid}: removed")
