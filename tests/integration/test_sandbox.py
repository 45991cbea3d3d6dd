"""smtpd's sandbox (issue 8, section 2; src/smtpd/smtpd_sandbox.c): once it serves,
smtpd cannot exec and cannot open files outside its rooms, while mail, AUTH
against tern's password file and a reloaded access table keep working.

The test build's probe (TERN_TEST_SANDBOX_PROBE="outside-file:config-file")
makes the sandboxed smtpd try an exec, a read outside its rooms and a write
into the configuration directory, and logs each result. Both files are ones
mail_owner may read and write by their modes, so only the sandbox refuses."""
import os
import pwd
import subprocess
import time
from pathlib import Path

import pytest

from conftest import TernInstance, SANITIZER_RE, smtp_greeted, settle_queue
from test_auth import Submission, PASSWORD

PROBE_LINES = {
    "execve /bin/true": "EPERM",
    "read outside the rooms": "EACCES",
    "write into the configuration directory": "EACCES",
    "read /etc/shadow": "EACCES",
    # connecting to a unix socket is no Landlock file access: private/queue
    # (and the key process's socket to come) stay reachable
    "connect private/queue": "allowed",
    # the key process and the queue share smtpd's uid: smtpd may signal and
    # limit only itself
    "signal a process of the mail owner": "EPERM",
    "read the limits of a process of the mail owner": "EPERM",
    "signal smtpd itself": "allowed",
}


def mail_owner():
    return "tern" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name


def as_mail_owner(*argv):
    user = mail_owner() if os.geteuid() == 0 else None
    return subprocess.run(list(argv), user=user, capture_output=True)


def replace_file(path: Path, text: str):
    """Atomically, as tables are meant to be edited (a new inode)."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    tmp.chmod(0o644)
    os.rename(tmp, path)


def rcpt_reply(inst, sender):
    s = smtp_greeted(inst)
    code, _ = s.cmd(f"MAIL FROM:<{sender}>")
    assert code == 250
    reply = s.cmd("RCPT TO:<alice@example.test>")
    s.cmd("QUIT")
    s.close()
    return reply


def landlock_or_skip(inst):
    log = inst.wait_log("sandbox: ", timeout=10)
    if "no Landlock in this kernel" in log:
        pytest.skip("the kernel has no Landlock: " + log)
    return log


def test_smtpd_cannot_exec_or_leave_its_rooms(tern_instance, work_dir, tls_files, monkeypatch):
    inst = tern_instance
    owner = pwd.getpwnam(mail_owner())
    # a file outside every room that mail_owner could read, and one in the
    # configuration directory it could write, were it not for the sandbox
    outside = work_dir / "outside"
    outside.mkdir(mode=0o755)
    secret = outside / "secret"
    secret.write_text("not for smtpd\n")
    secret.chmod(0o644)
    inst.dir.mkdir(parents=True, exist_ok=True)
    config_file = inst.dir / "writable-by-mail-owner"
    config_file.write_text("")
    os.chown(config_file, owner.pw_uid, owner.pw_gid)
    config_file.chmod(0o666)
    assert as_mail_owner("cat", str(secret)).stdout == b"not for smtpd\n"
    assert as_mail_owner("sh", "-c", f": >> {config_file}").returncode == 0
    # maillog_file's directory is a room (append): keep it apart from the
    # configuration directory so that one stays read-only
    (work_dir / "log").mkdir(mode=0o755)
    inst.log_path = work_dir / "log" / "maillog"
    tables = work_dir / "tables"
    tables.mkdir(mode=0o755)
    access = tables / "sender_access"
    replace_file(access, "blocked@example.org REJECT go away\n")

    sub = Submission(inst, tls_files, maillog_file=str(inst.log_path),
                     smtpd_sender_restrictions=f"check_sender_access texthash:{access}")
    sub.add_user("alice@example.test")
    # a process of the mail owner's, as the key process and the queue are
    other = subprocess.Popen(["sleep", "120"], user=owner.pw_uid, group=owner.pw_gid)
    monkeypatch.setenv("TERN_TEST_SANDBOX_PROBE", f"{secret}:{config_file}:{other.pid}")
    try:
        inst.start()
    except BaseException:
        other.kill()
        raise
    log = landlock_or_skip(inst)
    for what, result in PROBE_LINES.items():
        log = inst.wait_log(f"sandbox probe: {what}: ")
        assert f"sandbox probe: {what}: {result}" in log, log[-3000:]
    other.kill()
    other.wait()
    assert "sandbox: on (Landlock ABI" in log
    assert "sandbox: refused system call execve" in log
    assert config_file.read_text() == ""

    # mail still flows: accepted over SMTP, delivered into a Maildir
    with inst.smtp() as c:
        c.sendmail("someone@example.org", ["alice@example.test"], "Subject: sandboxed\r\n\r\nhello\r\n")
    msgs = inst.wait_messages("alice")
    assert b"Subject: sandboxed" in msgs[0].read_bytes()

    # AUTH against tern's password file, which smtpd opens on first use
    c = sub.submit()
    c.login("alice@example.test", PASSWORD)
    c.sendmail("alice@example.test", ["alice@example.test"], "Subject: authenticated\r\n\r\nhi\r\n")
    c.quit()
    inst.wait_messages("alice", count=2)
    # and a password added later (the file is replaced) is seen
    sub.add_user("bob@example.test")
    time.sleep(1.1)
    c = sub.submit()
    c.login("bob@example.test", PASSWORD)
    c.quit()

    # an access table replaced by rename is reread
    assert rcpt_reply(inst, "blocked@example.org")[0] == 554
    assert rcpt_reply(inst, "other@example.org")[0] == 250
    replace_file(access, "other@example.org REJECT not you either\n")
    time.sleep(1.2)
    assert rcpt_reply(inst, "other@example.org")[0] == 554
    assert rcpt_reply(inst, "blocked@example.org")[0] == 250
    settle_queue(inst)
    # nothing else was refused on the way
    refused = [l for l in inst.log_text().splitlines() if "refused system call" in l]
    assert all(c in l for l in refused for c in [l.split("system call ")[1].split()[0]]
               if c in ("execve", "tgkill", "prlimit64")), refused
    assert len(refused) == 3, refused
    assert "Permission denied" not in inst.log_text()


def test_sandbox_off(tern_instance):
    tern_instance.write_config(smtpd_sandbox="no")
    tern_instance.start()
    tern_instance.wait_log("sandbox: off (smtpd_sandbox = no)")
    with tern_instance.smtp() as c:
        c.sendmail("someone@example.org", ["alice@example.test"], "Subject: x\r\n\r\nhello\r\n")
    tern_instance.wait_messages("alice")


def test_sanitizer_report_still_written(work_dir, monkeypatch):
    """ASan writes its report from inside the sandbox (/proc/self/maps is in
    the test build's rooms, and its system calls in the allowlist)."""
    monkeypatch.setenv("TERN_TEST_SANDBOX_ASAN_REPORT", "1")
    inst = TernInstance(work_dir / "tern")
    try:
        inst.start(wait=False)
        deadline = time.time() + 20
        while time.time() < deadline and "SUMMARY: AddressSanitizer" not in inst.stderr_text():
            time.sleep(0.1)
    finally:
        inst.stop()
    text = inst.stderr_text()
    assert "ERROR: AddressSanitizer: heap-buffer-overflow" in text, text[-4000:]
    assert "SUMMARY: AddressSanitizer" in text
    assert "smtpd_sandbox" in text  # the stack was symbolized
    assert "allowlist" not in text.replace("seccomp allowlist)", "")


def test_leak_report_at_stop(work_dir, monkeypatch):
    """LeakSanitizer still checks the sandboxed smtpd at exit: its tracer (a
    clone that ptraces smtpd's threads, with every signal blocked) gets the
    calls it makes, so smtpd stops at once and reports the leak, instead of
    waiting for a tracer the filter killed until the master kills it."""
    monkeypatch.setenv("TERN_TEST_SANDBOX_LEAK", "1")
    inst = TernInstance(work_dir / "tern")
    try:
        inst.start()
        inst.wait_log("sandbox: on", timeout=10)
    finally:
        inst.stop()
    text = inst.stderr_text()
    assert "children did not stop in time" not in text, text[-4000:]
    assert "ERROR: LeakSanitizer: detected memory leaks" in text, text[-4000:]
    assert "sandbox_probe" in text  # the leak's stack names the probe
