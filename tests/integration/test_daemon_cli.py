"""The processes and the admin commands: signals, restarts of dead
children, reload, log rotation, several instances, and `tern config`."""
import os
import re
import shutil
import signal
import smtplib
import subprocess
import time

import pytest

from conftest import SANITIZER_RE, TERN_BIN, TernInstance, wait_port

QID = r"[0-9A-Z]{13}"


def wait_until(pred, timeout=10.0, what="condition", interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def children(pid):
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(d))
    return sorted(kids)


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def role_pid(inst, role):
    """The pid of a running child, from its latest log line."""
    pids = re.findall(rf"tern/{role}\[(\d+)\]", inst.log_text())
    for pid in reversed(pids):
        if alive(int(pid)) and int(pid) in children(inst.proc.pid):
            return int(pid)
    return None


def uid_of(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^Uid:\s+(\d+)", f.read(), re.M).group(1))


def run_serve(inst, timeout=20):
    """`tern serve` that is expected to refuse; if it starts after all, it
    is stopped with all its children and the test fails."""
    p = subprocess.Popen([TERN_BIN, "-c", str(inst.dir), "serve"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise AssertionError("a second tern serve kept running")
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def banner(inst):
    s = inst.raw()
    try:
        return s.read_reply()[1]
    finally:
        s.close()


def smtp_send(inst, rcpt, subject):
    with inst.smtp() as c:
        c.ehlo("client.test")
        c.mail("sender@localhost")
        c.rcpt(rcpt)
        code, text = c.data(f"Subject: {subject}\r\n\r\nbody\r\n".encode())
    assert code == 250, (code, text)
    return re.search(rf"queued as ({QID})", text.decode()).group(1)


def subjects(inst, user):
    return sorted(re.search(rb"\nSubject: (.*)\n", p.read_bytes()).group(1).decode() for p in inst.messages(user))


# ---------------------------------------------------------------- stopping

def test_sigterm_stops_everything_cleanly(tern):
    smtp_send(tern, "alice@localhost", "before stop")
    tern.wait_messages("alice")
    master = tern.proc.pid
    kids = children(master)
    assert len(kids) == 4, kids   # the key process, queue, local, smtpd
    pidfile = tern.queue_dir / "pid" / "master.pid"
    assert pidfile.read_text().strip() == str(master)
    tern.proc.send_signal(signal.SIGTERM)
    assert tern.proc.wait(timeout=20) == 0
    for pid in kids:
        wait_until(lambda: not alive(pid), 5, f"child {pid} to exit")
    log = tern.log_text()
    assert "terminating on signal 15" in log
    assert log.rstrip("\n").endswith("stopped")
    assert not pidfile.exists()
    assert not wait_port(tern.host, tern.port, timeout=0.3)
    tern.stop()
    # and it comes back up on the same directory
    tern.start()
    smtp_send(tern, "alice@localhost", "after restart")
    tern.wait_messages("alice", 2)


def test_sigterm_also_stops_an_smtpd_draining_after_reload(tern):
    old = tern.raw()
    old.read_reply()
    assert old.cmd("EHLO client.test")[0] == 250
    draining = role_pid(tern, "smtpd")
    os.kill(tern.proc.pid, signal.SIGHUP)
    tern.wait_log("reload -- version")
    assert banner(tern).startswith("220 ")      # the new smtpd answers
    assert alive(draining), "the old smtpd keeps its session while draining"
    tern.proc.send_signal(signal.SIGTERM)
    assert tern.proc.wait(timeout=20) == 0
    wait_until(lambda: not alive(draining), 5, "the draining smtpd to exit")
    # its client is disconnected, not left talking to an orphan
    try:
        code, _ = old.cmd("MAIL FROM:<sender@localhost>")
        assert code == 421
    except (EOFError, OSError):
        pass
    tern.stop()


def test_a_draining_smtpd_that_does_not_go_is_killed(tern_instance):
    """After a reload the old smtpd finishes its sessions; one that ignores
    SIGUSR2 (a compromised smtpd: SIGSTOP stands in) is killed once its
    sessions would have timed out twice over, so it cannot hold its channel
    to the new key process for ever."""
    tern_instance.write_config(smtpd_timeout="5s")
    tern = tern_instance.start()
    assert banner(tern).startswith("220 ")
    draining = role_pid(tern, "smtpd")
    os.kill(draining, signal.SIGSTOP)
    os.kill(tern.proc.pid, signal.SIGHUP)
    tern.wait_log("reload -- version")
    tern.wait_log(f"the draining smtpd {draining} did not stop within 20 seconds; killing it", timeout=40)
    wait_until(lambda: not alive(draining), 10, "the draining smtpd to be gone")
    assert banner(tern).startswith("220 ")      # the new smtpd serves on


def test_second_serve_on_the_same_directory_refuses(tern):
    r = run_serve(tern)
    err = r.stderr.decode()
    assert r.returncode != 0
    assert "already running" in err and f"(pid {tern.proc.pid})" in err, err
    assert not SANITIZER_RE.search(err)
    # the first one is untouched, its pid file too, so a third is refused as well
    assert (tern.queue_dir / "pid" / "master.pid").read_text().strip() == str(tern.proc.pid)
    r = run_serve(tern)
    assert r.returncode != 0 and b"already running" in r.stderr
    smtp_send(tern, "alice@localhost", "still here")
    tern.wait_messages("alice")


def test_two_instances_side_by_side(work_dir):
    a = TernInstance(work_dir / "a")
    b = TernInstance(work_dir / "b")
    try:
        a.start()
        b.start()
        smtp_send(a, "alice@localhost", "for a")
        smtp_send(b, "alice@localhost", "for b")
        r = b.cli("sendmail", "far@remote.example", input=b"Subject: b remote\n\nbody\n")
        assert r.returncode == 0
        a.wait_messages("alice")
        b.wait_messages("alice")
        b.wait_log("to=<far@remote.example>, relay=none")
        assert subjects(a, "alice") == ["for a"]
        assert subjects(b, "alice") == ["for b"]
        assert a.cli("queue").stdout == b"Mail queue is empty\n"
        assert b"far@remote.example" in b.cli("queue").stdout
        # stopping one leaves the other running
        a.stop()
        smtp_send(b, "alice@localhost", "b again")
        b.wait_messages("alice", 2)
    finally:
        a.stop()
        b.stop()
    for inst in (a, b):
        assert not inst.sanitizer_reports(), inst.stderr_text()[-4000:]


# ---------------------------------------------------------------- dead children

def test_killed_local_agent_is_restarted(tern):
    master = tern.proc.pid
    # the listeners are up before every child is forked
    wait_until(lambda: [p for p in children(master) if uid_of(p) == 0], 5, "the local agent")
    local = [p for p in children(master) if uid_of(p) == 0]
    if os.geteuid() == 0:
        assert len(local) == 1, "only the local agent keeps root"
        local = local[0]
    else:
        pytest.skip("roles are told apart by uid only when started as root")
    os.kill(local, signal.SIGKILL)
    tern.wait_log(f"process local pid {local} killed by signal 9")
    tern.wait_log("restarting local in ")
    smtp_send(tern, "alice@localhost", "after local died")
    tern.wait_messages("alice", timeout=10)
    new_local = [p for p in children(master) if uid_of(p) == 0]
    assert len(new_local) == 1 and new_local[0] != local


def test_local_agent_killed_during_a_delivery(tern_instance):
    """The delivery in flight is deferred and retried by itself."""
    if os.geteuid() != 0:
        pytest.skip("roles are told apart by uid only when started as root")
    tern = tern_instance
    tern.write_config(home_mailbox="Mailbox")
    tern.start()
    # a first delivery connects the queue to this local agent
    assert tern.cli("sendmail", "alice@localhost", input=b"Subject: first\n\nbody\n").returncode == 0
    tern.wait_log("status=sent (delivered to mailbox)")
    local = [p for p in children(tern.proc.pid) if uid_of(p) == 0][0]
    os.kill(local, signal.SIGSTOP)  # the next request reaches it, but is never answered
    assert tern.cli("sendmail", "alice@localhost", input=b"Subject: in flight\n\nbody\n").returncode == 0
    tern.wait_log("(queue active)")
    time.sleep(0.5)
    os.kill(local, signal.SIGKILL)
    log = tern.wait_log("status=deferred (local delivery agent failed)")
    assert "to=<alice@localhost>, relay=local" in log
    tern.wait_log("status=sent (delivered to mailbox)", timeout=8, count=2)
    data = (tern.mail_dir / "alice" / "Mailbox").read_bytes()
    assert data.startswith(b"From root@example.test ") and b"\nSubject: in flight\n" in data
    tern.wait_log(": removed", count=2)


def test_killed_queue_process_is_restarted_and_recovers(tern):
    qid = smtp_send(tern, "far@remote.example", "deferred before the crash")
    tern.wait_log(f"{qid}: to=<far@remote.example>, relay=none")
    queue = role_pid(tern, "queue")
    assert queue, tern.log_text()
    os.kill(queue, signal.SIGKILL)
    tern.wait_log(f"process queue pid {queue} killed by signal 9")
    tern.wait_log("queue: 1 messages recovered", timeout=10)
    # new mail through smtpd (which must find the new queue process) and sendmail
    def accepted():
        try:
            smtp_send(tern, "alice@localhost", "after queue died")
            return True
        except (smtplib.SMTPException, OSError, AssertionError):
            time.sleep(0.2)
            return False
    wait_until(accepted, 10, "smtpd to accept mail again")
    assert tern.cli("sendmail", "bob@localhost", input=b"Subject: sendmail after\n\nbody\n").returncode == 0
    tern.wait_messages("alice")
    tern.wait_messages("bob")
    assert qid in tern.cli("queue").stdout.decode()


def test_killed_smtpd_is_restarted(tern):
    smtp_send(tern, "alice@localhost", "first")
    smtpd = role_pid(tern, "smtpd")
    os.kill(smtpd, signal.SIGKILL)
    tern.wait_log(f"process smtpd pid {smtpd} killed by signal 9")

    def accepted():
        try:
            smtp_send(tern, "alice@localhost", "second")
            return True
        except (smtplib.SMTPException, OSError):
            time.sleep(0.2)
            return False
    wait_until(accepted, 10, "a new smtpd")
    tern.wait_messages("alice", 2)


# ---------------------------------------------------------------- reload

def test_sighup_reloads_configuration(tern):
    assert banner(tern) == "220 mail.example.test ESMTP Tern"
    # a session open across the reload finishes on the old process
    old = tern.raw()
    old.read_reply()
    assert old.cmd("EHLO client.test")[0] == 250
    assert old.cmd("MAIL FROM:<sender@localhost>")[0] == 250

    tern.write_config(smtpd_banner="$myhostname ESMTP reloaded banner")
    os.kill(tern.proc.pid, signal.SIGHUP)
    tern.wait_log("reload -- version")
    wait_until(lambda: banner(tern) == "220 mail.example.test ESMTP reloaded banner", 10, "the new banner")

    assert old.cmd("RCPT TO:<alice@localhost>")[0] == 250
    assert old.cmd("DATA")[0] == 354
    old.send(b"Subject: across reload\r\n\r\nbody\r\n.\r\n")
    assert old.read_reply()[0] == 250
    old.cmd("QUIT")
    smtp_send(tern, "alice@localhost", "after reload")
    tern.wait_messages("alice", 2)
    assert subjects(tern, "alice") == ["across reload", "after reload"]


def test_reload_with_a_broken_configuration_keeps_the_old_one(tern):
    tern.write_config(smtpd_banner="$myhostname ESMTP should not appear")
    main_cf = tern.dir / "main.cf"
    main_cf.write_text(main_cf.read_text() + "this line has no equals sign\n")
    os.kill(tern.proc.pid, signal.SIGHUP)
    log = tern.wait_log("reload refused")
    assert "main.cf:" in log and "this line has no equals sign" in log
    time.sleep(0.5)
    assert banner(tern) == "220 mail.example.test ESMTP Tern"
    smtp_send(tern, "alice@localhost", "still working")
    tern.wait_messages("alice")
    assert tern.proc.poll() is None


# ---------------------------------------------------------------- log rotation

def rotate_and_check(tern, how, suffix):
    rotated = tern.log_path.with_name(tern.log_path.name + suffix)
    os.rename(tern.log_path, rotated)
    if how == "signal":
        os.kill(tern.proc.pid, signal.SIGUSR1)
    else:
        r = tern.cli("log", "reopen")
        assert r.returncode == 0, r.stderr
    # the processes reopen asynchronously: wait until the queue process has
    # its new file, then every role must write there
    def reopened():
        tern.cli("sendmail", "alice@localhost", input=f"Subject: {how}\n\nbody\n".encode())
        time.sleep(0.3)
        return "uid=0 from=<" in tern.log_text()
    wait_until(reopened, 10, "log lines in the new file", interval=0.2)
    smtp_send(tern, "alice@localhost", f"{how} smtp")
    tern.wait_log(r"tern/smtpd\[\d+\]: .*client=", regex=True)
    log = tern.wait_log("status=sent")
    assert re.search(r"tern/queue\[\d+\]: " + QID + r": from=<", log)
    before = rotated.read_text()
    time.sleep(0.3)
    assert rotated.read_text() == before, "the old file still gets lines"
    return rotated


def test_sigusr1_and_log_reopen_follow_a_renamed_maillog(tern):
    smtp_send(tern, "alice@localhost", "before rotation")
    tern.wait_log("status=sent")
    first = rotate_and_check(tern, "signal", ".1")
    assert "before rotation" not in tern.log_text()
    second = rotate_and_check(tern, "command", ".2")
    assert "status=sent" in first.read_text() and "status=sent" in second.read_text()
    st = tern.log_path.stat()
    assert st.st_size > 0


# ---------------------------------------------------------------- tern config

def config(inst, *args, rc=0):
    r = inst.cli("config", *args)
    out = r.stdout.decode()
    assert r.returncode == rc, (args, r.returncode, out, r.stderr.decode())
    return out, r.stderr.decode()


def test_config_prints_non_default_parameters(tern_instance):
    inst = tern_instance
    inst.write_config(message_size_limit="5000", myorigin="$mydomain")
    out, _ = config(inst)
    lines = out.splitlines()
    assert lines == sorted(lines)
    assert "myhostname = mail.example.test" in lines
    assert "myorigin = $mydomain" in lines            # as written, like postconf -n
    assert "message_size_limit = 5000" in lines
    assert f"queue_directory = {inst.queue_dir}" in lines
    assert not any(l.startswith("smtpd_banner =") for l in lines)   # a default is not shown
    # -c sets config_directory, but main.cf does not: postconf -n would not show it
    assert not any(l.startswith("config_directory") for l in lines), lines
    assert config(inst, "config_directory")[0] == f"config_directory = {inst.dir}\n"
    assert config(inst, "-n")[0] == out
    # one parameter: its effective value; -d: the default
    assert config(inst, "myorigin")[0] == "myorigin = example.test\n"
    assert config(inst, "message_size_limit")[0] == "message_size_limit = 5000\n"
    assert config(inst, "-d", "message_size_limit")[0] == "message_size_limit = 10240000\n"
    assert config(inst, "-d", "smtpd_banner")[0] == "smtpd_banner = $myhostname ESMTP $mail_name\n"
    out, err = config(inst, "-d", "no_such_parameter", rc=1)
    assert "no_such_parameter: unknown parameter" in err


def test_config_check_reports_file_and_line(tern_instance):
    inst = tern_instance
    inst.write_config()
    main_cf = inst.dir / "main.cf"
    out, _ = config(inst, "check")
    assert out.strip().endswith("configuration OK")
    text = main_cf.read_text()
    nlines = text.count("\n")
    main_cf.write_text(text + "frobnication_level = 11\n")
    out, _ = config(inst, "check")
    assert f"{main_cf}:{nlines + 1}: warning: unknown parameter frobnication_level" in out
    assert "configuration OK" in out
    main_cf.write_text(text + "frobnication_level = 11\nmessage_size_limit = huge\n")
    out, _ = config(inst, "check", rc=1)
    assert re.search(rf"{re.escape(str(main_cf))}:{nlines + 2}: error: message_size_limit: .*huge", out), out
    assert "configuration OK" not in out
    # a line that is no parameter setting: check and serve both refuse it
    main_cf.write_text(text + "no equals sign here\n")
    out, _ = config(inst, "check", rc=1)
    assert f"{main_cf}:{nlines + 1}: error: " in out, out
    r = run_serve(inst)
    assert r.returncode != 0 and f"{main_cf}:{nlines + 1}: error: ".encode() in r.stderr, r.stderr


def test_config_man_is_roff(tern_instance):
    out, _ = config(tern_instance, "man")
    assert re.search(r"^\.TH TERN\.CONF 5 ", out, re.M)
    assert "\n.SH NAME\n" in out
    for name in ("message_size_limit", "maximal_queue_lifetime", "home_mailbox", "alias_maps"):
        assert f"\n.B {name}\n" in out, name
    # groff is checked for by scripts/check-tools.sh before the suite starts
    r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z"], input=out.encode(), capture_output=True)
    assert r.returncode == 0 and r.stderr == b"", r.stderr.decode()
