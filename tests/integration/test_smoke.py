"""The tutorial session, end to end: telnet-style SMTP, Maildir, log."""


def test_tutorial_session_lands_in_maildir(tern):
    s = tern.raw()
    code, text = s.read_reply()
    assert code == 220 and "ESMTP" in text
    assert s.cmd("HELO localhost")[0] == 250
    assert s.cmd("MAIL FROM:<you@localhost>") == (250, "250 2.1.0 Ok")
    assert s.cmd("RCPT TO:<you@localhost>") == (250, "250 2.1.5 Ok")
    assert s.cmd("DATA")[0] == 354
    s.send(b"Subject: test\r\n\r\nHello from the tutorial.\r\n.\r\n")
    code, text = s.read_reply()
    assert code == 250 and text.startswith("250 2.0.0 Ok: queued as ")
    qid = text.split()[-1]
    assert s.cmd("QUIT")[0] == 221
    msgs = tern.wait_messages("you")
    body = msgs[0].read_bytes()
    assert body.startswith(b"Return-Path: <you@localhost>\nX-Original-To: you@localhost\nDelivered-To: you@localhost\nReceived: from localhost")
    assert f"with SMTP id {qid}".encode() in body
    assert b"\nSubject: test\n" in body
    # a loopback client's message is completed like Postfix does
    assert b"\nFrom: you@localhost\n" in body
    assert b"\nDate: " in body and b"\nMessage-ID: <" in body
    assert body.endswith(b"\n\nHello from the tutorial.\n")
    assert b"\r" not in body
    log = tern.wait_log(f"{qid}: removed")
    assert f"{qid}: to=<you@localhost>, relay=local" in log
    assert "status=sent (delivered to maildir)" in log


def test_fsync_method_commits_and_delivers(tern_instance):
    """queue_sync_method = fsync: per-file fdatasync plus a directory fsync for
    commits, and the local agent syncs Maildirs itself (it cannot share a
    whole-file-system sync then)."""
    tern_instance.write_config(queue_sync_method="fsync")
    tern = tern_instance.start()
    with tern.smtp() as c:
        for i in range(5):
            c.sendmail("a@example.org", ["you@localhost"], f"Subject: n{i}\r\n\r\nbody\r\n".encode())
    msgs = tern.wait_messages("you", 5)
    subjects = sorted(m.read_bytes().split(b"\nSubject: ")[1].split(b"\n")[0] for m in msgs)
    assert subjects == [b"n0", b"n1", b"n2", b"n3", b"n4"]
    tern.wait_log(": removed", count=5)
