"""Capture mode: the real MTA as the mail server developers test against.

Every test runs a real tern with `capture = yes` (or copy) and talks to it the
way a test suite in another language would: SMTP to send, HTTP+JSON to look
and to wait. What is asserted is what such a suite relies on: the message is
listed in its inbox and nowhere else, a wait answers as soon as it is there,
nothing leaves the machine, and what was acknowledged survives a kill -9."""
import json
import re
import smtplib
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import free_port, wait_port


class Api:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"

    def call(self, method, path, body=None, headers=None, timeout=30):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if r.headers.get("Content-Type") == "application/json" else raw)
        except urllib.error.HTTPError as e:
            raw = e.read()
            return e.code, (json.loads(raw) if e.headers.get("Content-Type") == "application/json" else raw)

    def get(self, path, **kw):
        return self.call("GET", path, **kw)


def capture_instance(inst, mode="yes", **params):
    port = free_port()
    inst.write_config(capture=mode, capture_http_address=f"127.0.0.1:{port}", **params)
    inst.start()
    assert wait_port("127.0.0.1", port), inst.stderr_text()
    return Api(port)


def send(inst, rcpts, subject="hello", body="Hello.", sender="app@example.org", headers=""):
    msg = f"From: {sender}\r\nTo: {', '.join(rcpts)}\r\nSubject: {subject}\r\n{headers}\r\n{body}\r\n"
    with inst.smtp() as c:
        c.sendmail(sender, rcpts, msg.encode())


def test_everything_is_kept_and_nothing_leaves(tern_instance):
    inst = tern_instance
    api = capture_instance(inst)
    # a remote address, a local one, and one no table lists: all accepted
    send(inst, ["customer@gmail.example", "bob@example.test", "nobody-at-all@example.test"], subject="Welcome")
    code, listing = api.get("/api/v1/messages")
    assert code == 200 and listing["total"] == 1, listing
    m = listing["messages"][0]
    assert m["subject"] == "Welcome" and m["from"] == "app@example.org"
    assert m["to"] == ["customer@gmail.example", "bob@example.test", "nobody-at-all@example.test"]
    assert set(m["inbox"]) == {"customer@gmail.example", "bob@example.test", "nobody-at-all@example.test"}
    # nothing delivered, relayed or queued
    log = inst.wait_log(f"{m['id']}: from=<app@example.org>")
    assert "(captured)" in log
    time.sleep(0.5)
    assert not inst.messages("bob")
    assert "relay=" not in inst.log_text() and "status=" not in inst.log_text(), inst.log_text()
    assert "Mail queue is empty" in inst.cli("queue", "list").stdout.decode()
    # the message itself
    code, full = api.get(f"/api/v1/messages/{m['id']}")
    assert code == 200 and full["envelope"]["mail_from"] == "app@example.org"
    assert full["envelope"]["client_address"] == "127.0.0.1"
    code, raw = api.get(f"/api/v1/messages/{m['id']}/raw")
    assert code == 200 and b"Subject: Welcome\r\n" in raw and b"\r\n\r\nHello.\r\n" in raw
    assert api.get("/api/v1/messages/01ABCDEFGHJKM")[0] == 404


def test_inboxes_keep_parallel_test_runs_apart(tern_instance):
    inst = tern_instance
    api = capture_instance(inst)
    code, a = api.call("POST", "/api/v1/inboxes")
    code2, b = api.call("POST", "/api/v1/inboxes")
    assert code == code2 == 201 and a["address"] != b["address"]
    assert a["login"] == a["address"] and len(a["password"]) == 16
    assert re.fullmatch(r"test-[a-z0-9]{16}@mail\.example\.test", a["address"]), a
    send(inst, [a["address"]], subject="for run A")
    send(inst, [b["address"]], subject="for run B")
    send(inst, [a["address"].upper()], subject="A again, other case")
    sa = api.get("/api/v1/messages?inbox=" + a["address"])[1]
    sb = api.get("/api/v1/messages?inbox=" + b["address"])[1]
    assert [m["subject"] for m in sa["messages"]] == ["A again, other case", "for run A"]   # newest first
    assert [m["subject"] for m in sb["messages"]] == ["for run B"]
    # deleting one run's inbox leaves the other's alone
    assert api.call("DELETE", "/api/v1/messages?inbox=" + a["address"])[1] == {"deleted": 2}
    assert api.get("/api/v1/messages?inbox=" + a["address"])[1]["total"] == 0
    assert api.get("/api/v1/messages?inbox=" + b["address"])[1]["total"] == 1
    inboxes = api.get("/api/v1/inboxes")[1]["inboxes"]
    assert [(i["address"], i["count"]) for i in inboxes] == [(b["address"], 1)]
    # filters
    send(inst, [b["address"]], subject="Your code", sender="noreply@shop.example")
    assert [m["subject"] for m in api.get(f"/api/v1/messages?inbox={b['address']}&subject=CODE")[1]["messages"]] \
        == ["Your code"]
    assert api.get(f"/api/v1/messages?inbox={b['address']}&from=shop.example")[1]["total"] == 1


def test_wait_answers_when_the_message_arrives_and_408_on_timeout(tern_instance):
    inst = tern_instance
    api = capture_instance(inst)
    send(inst, ["old@example.test"], subject="before")
    cursor = api.get("/api/v1/messages")[1]["messages"][0]["cursor"]
    # nothing new: 408 after the timeout, with what there is
    t0 = time.time()
    code, body = api.get(f"/api/v1/wait?inbox=run@example.test&after={cursor}&timeout=1")
    assert code == 408 and body["messages"] == [] and time.time() - t0 >= 0.9, body
    # a message that arrives while the client waits answers the wait
    sender = threading.Timer(0.5, send, args=(inst, ["run@example.test"]), kwargs={"subject": "the one"})
    sender.start()
    code, body = api.get(f"/api/v1/wait?inbox=run@example.test&after={cursor}&timeout=20")
    sender.join()
    assert code == 200 and [m["subject"] for m in body["messages"]] == ["the one"], body
    # count: waits for two; "after" excludes what came before
    cursor2 = body["messages"][0]["cursor"]
    threading.Timer(0.3, lambda: [send(inst, ["run@example.test"], subject=f"n{i}") for i in range(2)]).start()
    code, body = api.get(f"/api/v1/wait?inbox=run@example.test&after={cursor2}&count=2&timeout=20")
    assert code == 200 and sorted(m["subject"] for m in body["messages"]) == ["n0", "n1"], body
    assert api.get("/api/v1/wait?count=0")[0] == 400
    assert api.get("/api/v1/wait?timeout=601")[0] == 400


def test_events_stream_new_messages(tern_instance):
    inst = tern_instance
    api = capture_instance(inst)
    port = int(api.base.rsplit(":", 1)[1])
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /api/v1/events?inbox=live@example.test HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    buf = b""
    while b"tern capture events" not in buf:
        buf += s.recv(4096)
    send(inst, ["other@example.test"], subject="not mine")
    send(inst, ["live@example.test"], subject="mine")
    while b"event: message" not in buf:
        buf += s.recv(4096)
    s.close()
    assert b"text/event-stream" in buf
    assert b'"subject":"mine"' in buf and b"not mine" not in buf, buf
    # a waiting client that goes away is answered into the void at its
    # timeout and forgotten (the fixture checks the sanitizers at stop)
    w = socket.create_connection(("127.0.0.1", port), timeout=10)
    w.sendall(b"GET /api/v1/wait?inbox=never@example.test&timeout=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    time.sleep(0.3)
    assert "tern_capture_waiting 1\n" in api.get("/metrics")[1].decode()
    w.close()
    time.sleep(1.5)
    assert "tern_capture_waiting 0\n" in api.get("/metrics")[1].decode()


def test_limits_prune_the_oldest_and_say_so(tern_instance):
    inst = tern_instance
    api = capture_instance(inst, capture_max_messages="3")
    for i in range(5):
        send(inst, ["p@example.test"], subject=f"m{i}")
    body = api.get("/api/v1/messages")[1]
    assert [m["subject"] for m in body["messages"]] == ["m4", "m3", "m2"] and body["pruned"] == 2, body
    metrics = api.get("/metrics")[1].decode()
    assert "tern_capture_messages 3\n" in metrics and "tern_capture_pruned_total 2\n" in metrics
    inst.wait_log("capture: pruned 1 oldest messages")
    assert len(list((inst.queue_dir / "capture").iterdir())) == 3


def test_max_age_prunes_old_messages(tern_instance):
    inst = tern_instance
    api = capture_instance(inst, capture_max_age="2s")
    send(inst, ["a@example.test"], subject="old")
    time.sleep(2.5)
    send(inst, ["a@example.test"], subject="new")   # an arrival applies the limits at once
    body = api.get("/api/v1/messages")[1]
    assert [m["subject"] for m in body["messages"]] == ["new"] and body["pruned"] == 1, body


def test_acknowledged_mail_survives_kill_9(tern_instance):
    inst = tern_instance
    api = capture_instance(inst)
    send(inst, ["durable@example.test"], subject="kept")
    inst.kill9()
    inst.start()
    assert wait_port("127.0.0.1", int(api.base.rsplit(":", 1)[1]))
    body = api.get("/api/v1/messages?inbox=durable@example.test")[1]
    assert [m["subject"] for m in body["messages"]] == ["kept"], body
    # cursors keep growing across the restart
    old = body["messages"][0]["cursor"]
    send(inst, ["durable@example.test"], subject="after")
    new = api.get("/api/v1/messages?inbox=durable@example.test")[1]["messages"][0]
    assert new["subject"] == "after" and int(new["cursor"]) > int(old)


def test_failure_rules_from_access_tables(tern_instance):
    """Error paths of the application under test: the restriction lists still
    run in capture mode, so a pcre: table gives the replies a test wants."""
    inst = tern_instance
    rules = inst.dir / "fail.pcre"
    inst.dir.mkdir(parents=True, exist_ok=True)
    rules.write_text("/^full-/ 452 4.2.2 Mailbox full\n/^gone-/ 550 5.1.1 No such user\n")
    api = capture_instance(inst, smtpd_recipient_restrictions=f"check_recipient_access pcre:{rules}")
    with inst.smtp() as c:
        c.ehlo()
        c.mail("app@example.org")
        assert c.rcpt("full-box@example.test") == (452, b"4.2.2 <full-box@example.test>: Recipient address rejected: Mailbox full")
        assert c.rcpt("gone-user@elsewhere.example")[0] == 550
        assert c.rcpt("fine@elsewhere.example")[0] == 250
        c.data(b"Subject: partial\r\n\r\nx\r\n")
    assert api.get("/api/v1/messages")[1]["messages"][0]["to"] == ["fine@elsewhere.example"]


def test_release_goes_through_the_real_queue(tern_instance):
    """Released mail is delivered by the queue (here to a local peer through
    relayhost); only addresses capture_release_recipients lists may get it."""
    from relay_peers import RecordingPeer
    inst = tern_instance
    peer_port = free_port()
    peer = RecordingPeer("127.0.0.1", peer_port)
    try:
        api = capture_instance(inst, relayhost=f"[127.0.0.1]:{peer_port}",
                               capture_release_recipients="allowed.example, one@other.example")
        send(inst, ["app-user@example.test"], subject="release me")
        mid = api.get("/api/v1/messages")[1]["messages"][0]["id"]
        code, body = api.call("POST", f"/api/v1/messages/{mid}/release", {"to": ["anyone@elsewhere.example"]})
        assert code == 403 and "not in capture_release_recipients" in body["error"], body
        code, body = api.call("POST", f"/api/v1/messages/{mid}/release", {"to": "x"})
        assert code == 400
        code, body = api.call("POST", f"/api/v1/messages/{mid}/release",
                              {"to": ["dev@allowed.example", "one@other.example"]})
        assert code == 202 and re.fullmatch(r"[0-9A-Z]{13}", body["id"]), body
        got = peer.wait(1, timeout=20)
        assert sorted(got[0].rcpts) == ["dev@allowed.example", "one@other.example"]
        assert got[0].mail_from == "app@example.org"
        assert b"Subject: release me" in got[0].content
        inst.wait_log(f"{body['id']}: removed")
        # the captured original stays
        assert api.get(f"/api/v1/messages/{mid}")[0] == 200
    finally:
        peer.stop()


def test_release_is_off_by_default(tern_instance):
    inst = tern_instance
    api = capture_instance(inst)
    send(inst, ["x@example.test"])
    mid = api.get("/api/v1/messages")[1]["messages"][0]["id"]
    code, body = api.call("POST", f"/api/v1/messages/{mid}/release", {"to": ["x@example.test"]})
    assert code == 403 and "releasing is off" in body["error"], body


def test_copy_delivers_and_keeps(tern_instance):
    inst = tern_instance
    api = capture_instance(inst, mode="copy")
    send(inst, ["bob@example.test"], subject="both")
    inst.wait_messages("bob")
    body = api.get("/api/v1/messages?inbox=bob@example.test")[1]
    assert [m["subject"] for m in body["messages"]] == ["both"]
    inst.wait_log(": removed")
    # the queue's copy is gone after delivery; the captured one stays
    assert api.get(f"/api/v1/messages/{body['messages'][0]['id']}/raw")[0] == 200


def test_only_loopback_names_and_same_origin(tern_instance):
    inst = tern_instance
    api = capture_instance(inst)
    code, body = api.get("/api/v1/messages", headers={"Host": "attacker.example:8025"})
    assert code == 403, body
    assert api.get("/api/v1/messages", headers={"Host": "localhost:1"})[0] == 200
    code, body = api.call("DELETE", "/api/v1/messages", headers={"Origin": "http://attacker.example"})
    assert code == 403 and body["error"] == "cross-origin request refused"
    host = api.base[len("http://"):]
    assert api.call("DELETE", "/api/v1/messages", headers={"Origin": "http://" + host})[0] == 200
    # the page: a nonce CSP, no inline script allowed
    with urllib.request.urlopen(api.base + "/", timeout=10) as r:
        csp = r.headers["Content-Security-Policy"]
        page = r.read().decode()
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
    assert "unsafe-inline" not in csp and f'nonce="{nonce}"' in page


def test_http_address_must_be_loopback(tern_instance):
    inst = tern_instance
    inst.write_config(capture="yes", capture_http_address="0.0.0.0:8025")
    r = inst.cli("serve", timeout=30)
    out = r.stdout.decode() + r.stderr.decode()
    assert r.returncode != 0 and "only a loopback address may serve the capture API" in out, out


def test_any_login_names_an_inbox(tern_instance):
    """An application that logs in (as it must with its real provider) is
    accepted whatever its credentials, and its mail is in the login's inbox."""
    inst = tern_instance
    api = capture_instance(inst)
    with inst.smtp() as c:
        c.ehlo()
        assert c.has_extn("auth"), c.esmtp_features
        c.login("ci-run-42", "any password")
        c.sendmail("app@example.org", ["user@customer.example"], b"Subject: logged in\r\n\r\nx\r\n")
    body = api.get("/api/v1/messages?inbox=ci-run-42")[1]
    assert [m["subject"] for m in body["messages"]] == ["logged in"], body
    full = api.get(f"/api/v1/messages/{body['messages'][0]['id']}")[1]
    assert full["envelope"]["auth_login"] == "ci-run-42"
    assert set(full["inbox"]) == {"user@customer.example", "ci-run-42"}


def test_failure_rules_through_the_api(tern_instance):
    inst = tern_instance
    api = capture_instance(inst)
    rules = {"recipients": [{"match": "^full-", "reply": "452 4.2.2 Mailbox full"},
                            {"match": "@gone\\.example$", "reply": "550 5.1.1 No such user here"}],
             "session_failure_rate": 50}
    code, body = api.call("PUT", "/api/v1/rules", rules)
    assert code == 200 and body == rules, body
    assert api.get("/api/v1/rules")[1] == rules
    time.sleep(1.2)   # tables are checked for changes once a second
    replies = []
    for _ in range(4):   # 50%: every second session fails, deterministically
        try:
            with inst.smtp() as c:
                c.ehlo()
                c.mail("app@example.org")
                replies.append((c.rcpt("FULL-box@example.test"), c.rcpt("bob@gone.example"), c.rcpt("ok@x.example")))
        except smtplib.SMTPConnectError as e:
            replies.append(e.smtp_code)
    # every second one (which, depends on the connections made before)
    failed = [i for i, r in enumerate(replies) if r == 421]
    assert failed in ([0, 2], [1, 3]), replies
    first = replies[1 - failed[0]]
    assert first[0] == (452, b"4.2.2 <FULL-box@example.test>: Recipient address rejected: Mailbox full"), first
    assert first[1][0] == 550 and first[2][0] == 250, first
    # bad rules are refused whole
    assert api.call("PUT", "/api/v1/rules", {"recipients": [{"match": "(", "reply": "452 4.2.2 x"}]})[0] == 400
    assert api.call("PUT", "/api/v1/rules", {"recipients": [{"match": "a", "reply": "452 5.2.2 x"}]})[0] == 400
    assert api.call("PUT", "/api/v1/rules", {"session_failure_rate": 101})[0] == 400
    assert api.get("/api/v1/rules")[1] == rules
    # DELETE: back to main.cf's (none)
    assert api.call("DELETE", "/api/v1/rules")[1] == {"recipients": [], "session_failure_rate": None}
    time.sleep(1.2)
    for _ in range(2):
        with inst.smtp() as c:
            c.ehlo()
            c.mail("app@example.org")
            assert c.rcpt("full-box@example.test")[0] == 250


def test_session_failure_rate_from_main_cf(tern_instance):
    inst = tern_instance
    api = capture_instance(inst, capture_session_failure_rate="25")
    codes = []
    for _ in range(8):
        try:
            with inst.smtp() as c:
                codes.append(c.noop()[0])
        except smtplib.SMTPConnectError as e:
            codes.append(e.smtp_code)
    # every fourth session (counted from the first connection, the start's probe included)
    failed = [i for i, c in enumerate(codes) if c == 421]
    assert len(failed) == 2 and failed[1] - failed[0] == 4, codes
    assert all(c == 250 for i, c in enumerate(codes) if i not in failed), codes
    metrics = api.get("/metrics")[1].decode()
    assert "tern_capture_smtp_sessions_refused_total 2\n" in metrics, metrics
    sessions = int(re.search(r"^tern_capture_smtp_sessions_total (\d+)$", metrics, re.M).group(1))
    assert sessions >= 8, metrics
    assert int(re.search(r"^tern_capture_smtp_rejected_total (\d+)$", metrics, re.M).group(1)) >= 2


def test_tern_dev_shows_the_page_keeps_everything_and_sends_nothing_out(work_dir):
    """`make run` / `tern dev`: prints the page's address; a local address
    lands in its Maildir and on the page; another domain's only on the page
    (discarded, never relayed); any login works for an application."""
    import os
    import signal
    import subprocess
    from conftest import TERN_BIN
    d = work_dir / "dev"
    d.mkdir()
    port, http_port = free_port(), free_port()
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1")
    p = subprocess.Popen([TERN_BIN, "-c", str(d), "dev", "--port", str(port), "--http-port", str(http_port)],
                         stdout=subprocess.DEVNULL, stderr=open(d / "stderr.log", "wb"), env=env,
                         start_new_session=True)
    try:
        assert wait_port("127.0.0.1", port) and wait_port("127.0.0.1", http_port), (d / "stderr.log").read_text()
        deadline = time.time() + 10
        while f"see the mail    http://127.0.0.1:{http_port}/" not in (d / "stderr.log").read_text():
            assert time.time() < deadline, (d / "stderr.log").read_text()
            time.sleep(0.05)
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
            c.login("my-app", "secret")
            c.sendmail("app@example.org", ["you@localhost", "customer@gmail.example"],
                       b"Subject: signup\r\n\r\nWelcome\r\n")
        api = Api(http_port)
        body = api.get("/api/v1/messages")[1]
        assert [m["to"] for m in body["messages"]] == [["you@localhost", "customer@gmail.example"]]
        assert "my-app" in body["messages"][0]["inbox"]
        new = d / "mail" / "you" / "Maildir" / "new"
        deadline = time.time() + 10
        while not (new.is_dir() and list(new.iterdir())):
            assert time.time() < deadline, (d / "maillog").read_text()
            time.sleep(0.05)
        log = (d / "maillog").read_text()
        deadline = time.time() + 10
        while "to=<customer@gmail.example>" not in log and time.time() < deadline:
            time.sleep(0.05)
            log = (d / "maillog").read_text()
        assert "to=<customer@gmail.example>, relay=none" in log and "delivered to discard" in log, log
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        assert p.wait(timeout=30) == 0
    assert "ERROR: AddressSanitizer" not in (d / "stderr.log").read_text()
    assert "ERROR: LeakSanitizer" not in (d / "stderr.log").read_text()


def test_message_view_parts_links_and_codes(tern_instance):
    """What a test reads from a message: its text and HTML, the link to
    click, the one-time code, the attachment (downloadable, never rendered
    in the page's origin), and the header fields."""
    import base64
    inst = tern_instance
    api = capture_instance(inst)
    pdf = b"%PDF-1.4 fake invoice\n"
    msg = ("From: Shop <noreply@shop.example>\r\nTo: Ann <ann@example.test>\r\n"
           "Subject: =?utf-8?q?Your_code_=E2=80=93_verify?=\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/mixed; boundary=outer\r\n\r\n"
           "--outer\r\nContent-Type: multipart/alternative; boundary=alt\r\n\r\n"
           "--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
           "Your verification code is 482913.\r\nConfirm: https://shop.example/confirm/abc\r\n"
           "--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
           "<p>Code <b>482913</b> <a href=\"https://shop.example/confirm/abc?h=1\">confirm</a>"
           "<a href=\"javascript:alert(1)\">x</a></p>\r\n"
           "--alt--\r\n"
           "--outer\r\nContent-Type: text/html; name=\"invoice.html\"\r\n"
           "Content-Disposition: attachment; filename=\"invoice.html\"\r\n\r\n<script>alert(1)</script>\r\n"
           "--outer\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
           "Content-Disposition: attachment; filename*=UTF-8''R%C3%A9sum%C3%A9.pdf\r\n\r\n"
           + base64.b64encode(pdf).decode() + "\r\n--outer--\r\n")
    with inst.smtp() as c:
        c.sendmail("noreply@shop.example", ["ann@example.test"], msg.encode())
    mid = api.get("/api/v1/messages")[1]["messages"][0]["id"]
    code, m = api.get(f"/api/v1/messages/{mid}")
    assert code == 200, m
    assert m["subject"] == "Your code \u2013 verify"
    assert m["addresses"]["from"] == [{"name": "Shop", "address": "noreply@shop.example"}]
    assert m["to"] == ["ann@example.test"]                       # the envelope's
    assert "Your verification code is 482913." in m["text"]
    assert "<b>482913</b>" in m["html"]
    assert m["codes"] == ["482913"], m["codes"]
    assert "https://shop.example/confirm/abc" in m["links"]
    assert "https://shop.example/confirm/abc?h=1" in m["links"]
    assert not any(l.startswith("javascript:") for l in m["links"])
    assert {"name": "Subject", "value": "Your code \u2013 verify"} in m["headers"]
    names = [(a["filename"], a["content_type"]) for a in m["attachments"]]
    assert names == [("invoice.html", "text/html"), ("R\u00e9sum\u00e9.pdf", "application/pdf")], names
    pdf_part = m["attachments"][1]
    assert pdf_part["size"] == len(pdf) and pdf_part["url"] == f"/api/v1/messages/{mid}/parts/{pdf_part['part']}"
    with urllib.request.urlopen(api.base + pdf_part["url"], timeout=10) as r:
        assert r.read() == pdf
        assert r.headers["Content-Type"] == "application/pdf"
        assert r.headers["Content-Disposition"] == \
            "attachment; filename=\"R_sum_.pdf\"; filename*=UTF-8''R%C3%A9sum%C3%A9.pdf"
    # an HTML attachment is a download under a sandbox CSP, never a page of ours
    with urllib.request.urlopen(api.base + m["attachments"][0]["url"], timeout=10) as r:
        assert r.headers["Content-Disposition"].startswith("attachment;")
        assert "sandbox" in r.headers["Content-Security-Policy"]
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert api.get(f"/api/v1/messages/{mid}/parts/99")[0] == 404
    assert api.get(f"/api/v1/messages/{mid}/parts/x")[0] == 404


def test_openapi_document_matches_the_routes(tern_instance):
    """Every route the server has is in /api/v1/openapi.json and every
    documented route answers (not the router's 404)."""
    import pathlib
    inst = tern_instance
    api = capture_instance(inst)
    code, doc = api.get("/api/v1/openapi.json")
    assert code == 200 and doc["openapi"].startswith("3.1")
    src = (pathlib.Path(__file__).parents[2] / "src" / "capture" / "capture_http.c").read_text()
    routed = set(re.findall(r'strcmp\(path, "(/[a-z0-9/._]+)"\) == 0', src)) - {"/"}
    routed |= {"/api/v1/messages/{id}", "/api/v1/messages/{id}/raw", "/api/v1/messages/{id}/parts/{n}",
               "/api/v1/messages/{id}/release"}
    assert routed == set(doc["paths"]), (routed ^ set(doc["paths"]))
    for sub in re.findall(r'strcmp\(rest, "(/[a-z]+)"\) == 0', src) + ["/parts/"]:
        assert any(p.endswith("{id}" + sub.rstrip("/")) or ("{id}" + sub) in p for p in doc["paths"]), sub
    send(inst, ["o@example.test"])
    mid = api.get("/api/v1/messages")[1]["messages"][0]["id"]
    for path, ops in doc["paths"].items():
        for method in ops:
            if path.endswith("/events") or path.endswith("/wait"):
                continue   # they wait; test_capture covers them
            real = path.replace("{id}", mid).replace("{n}", "1")
            body = {"to": ["x@example.test"]} if method == "post" and "release" in path else \
                {"recipients": []} if method == "put" else None
            code, reply = api.call(method.upper(), real, body)
            assert not (code == 404 and isinstance(reply, dict) and reply.get("error") == "no such resource"), \
                (method, path)
            assert str(code) in ops[method]["responses"], (method, path, code, reply)


def test_require_auth_turns_any_login_off(tern_instance):
    inst = tern_instance
    capture_instance(inst, capture_require_auth="yes")
    with inst.smtp() as c:
        c.ehlo()
        assert not c.has_extn("auth")       # no AUTH configured: none offered
        assert c.docmd("AUTH", "PLAIN AGFueQBhbnk=")[0] == 503


def test_copy_takes_any_login_only_from_mynetworks(tern_instance):
    inst = tern_instance
    capture_instance(inst, mode="copy", mynetworks="192.0.2.0/24")   # loopback is not in it
    with inst.smtp() as c:
        c.ehlo()
        assert not c.has_extn("auth")
