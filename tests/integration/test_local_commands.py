"""Aliases to |commands and /files, and mailbox_command (local(8)'s rules).

As root, with real system users: a command runs as the owner of the alias
table, or as default_privs when root owns it, never as root; its environment
and standard input are Postfix's; exit 75 defers, other failures bounce with
the command's output; a /file alias appends mbox; allow_mail_to_commands can
refuse; mailbox_command runs as the recipient."""
import os
import subprocess
import pwd
import re
import socket
import struct
import stat
import time
from pathlib import Path

import pytest

from test_queue_delivery import (SystemUsers, needs_root, pickup_id, sendmail, tutorial_config,
                                 wait_files, wait_until)


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


def out_dir(work_dir):
    """A directory every command may write its report into."""
    d = work_dir / "out"
    d.mkdir(exist_ok=True)
    d.chmod(0o1777)
    return d


def script(work_dir, name, body):
    """An executable shell script anyone may run."""
    path = work_dir / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def reporter(work_dir, exit_code=0, message=""):
    """A script that writes its identity, environment and input to out/NAME."""
    out = out_dir(work_dir)
    return script(work_dir, f"report{exit_code}.sh",
                  f'f={out}/report-$$\n'
                  f'{{ id -u; id -g; pwd; env | sort; echo "ARGV=$*"; echo ---; cat; }} > "$f.tmp"\n'
                  f'mv "$f.tmp" "$f"\n'
                  f'{"echo " + repr(message) if message else ""}\n'
                  f'exit {exit_code}\n')


def reports(inst, work_dir, count=1, timeout=10):
    out = out_dir(work_dir)

    def ready():
        files = sorted(p for p in out.iterdir() if p.name.startswith("report-") and not p.name.endswith(".tmp"))
        return files if len(files) >= count else None
    try:
        files = wait_until(ready, timeout, f"{count} report(s)")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{inst.log_text()[-3000:]}") from None
    result = []
    for f in files:
        head, _, stdin = f.read_text().partition("---\n")
        lines = head.splitlines()
        env = dict(l.split("=", 1) for l in lines[3:] if "=" in l)
        result.append(dict(uid=int(lines[0]), gid=int(lines[1]), cwd=lines[2], env=env, stdin=stdin))
    return result


def aliases_owned_by(work_dir, text, owner):
    path = work_dir / "aliases"
    path.write_text(text)
    os.chown(path, owner.pw_uid if owner else 0, owner.pw_gid if owner else 0)
    path.chmod(0o644)
    return path


@needs_root
def test_alias_command_runs_as_table_owner_with_postfix_environment(tern_instance, work_dir, system_users):
    tern = tern_instance
    owner = system_users.add()
    cmd = reporter(work_dir)
    aliases_owned_by(work_dir, f"robot: |{cmd}\n", owner)
    tutorial_config(tern, work_dir, recipient_delimiter="+")
    tern.start()
    sendmail(tern, "-f", "sender@remote.example", "robot+tag@localhost",
             input=b"Subject: to the robot\n\nline one\nFrom here\n")
    qid = pickup_id(tern)
    [r] = reports(tern, work_dir)
    assert r["uid"] == owner.pw_uid and r["gid"] == owner.pw_gid
    assert r["cwd"] == owner.pw_dir
    env = r["env"]
    assert env["SENDER"] == "sender@remote.example"
    assert env["RECIPIENT"] == env["ORIGINAL_RECIPIENT"] == "robot+tag@localhost"
    assert env["LOCAL"] == "robot+tag" and env["DOMAIN"] == "localhost" and env["EXTENSION"] == "tag"
    assert env["USER"] == env["LOGNAME"] == owner.pw_name
    assert env["HOME"] == owner.pw_dir and env["SHELL"] == owner.pw_shell
    assert env["PATH"] == "/usr/bin:/bin"
    assert "TERN_BIN" not in env and "ASAN_OPTIONS" not in env
    # mail from sendmail has no SMTP client: no CLIENT_* or SASL_* (as Postfix)
    assert not [k for k in env if k.startswith(("CLIENT_", "SASL_"))], env
    stdin = r["stdin"]
    assert re.match(r"From sender@remote\.example \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\n", stdin), stdin
    assert "\nReturn-Path: <sender@remote.example>\nX-Original-To: robot+tag@localhost\nDelivered-To: robot+tag@localhost\n" in stdin
    assert "Subject: to the robot\n" in stdin and stdin.endswith("\n\nline one\nFrom here\n")
    tern.wait_log(rf"{qid}: to=<\|{re.escape(str(cmd))}>, orig_to=<robot\+tag@localhost>, relay=local, "
                  rf".*status=sent \(delivered to command of alias robot\)", regex=True)
    tern.wait_log(f"{qid}: removed")


@needs_root
@pytest.mark.parametrize("sync_method", ["syncfs", "journal"])
def test_command_gets_the_smtp_client_and_the_address_as_it_arrived(tern_instance, work_dir, system_users,
                                                                     sync_method):
    """Postfix's CLIENT_ADDRESS, CLIENT_HELO, CLIENT_HOSTNAME and
    CLIENT_PROTOCOL from the queue file (or, with queue_sync_method =
    journal, from the message inside its journal segment); ORIGINAL_RECIPIENT
    and X-Original-To name the address before the aliases (list -> robot ->
    |command)."""
    tern = tern_instance
    owner = system_users.add()
    cmd = reporter(work_dir)
    aliases_owned_by(work_dir, f"list: robot\nrobot: |{cmd}\n", owner)
    tutorial_config(tern, work_dir)
    tern.write_config(queue_sync_method=sync_method)
    tern.start()
    with tern.smtp() as c:
        c.ehlo("client.example")
        c.sendmail("sender@remote.example", ["list@localhost"], b"Subject: by smtp\r\n\r\nbody\r\n")
    [r] = reports(tern, work_dir)
    env = r["env"]
    assert env["CLIENT_ADDRESS"] == "127.0.0.1"
    assert env["CLIENT_HELO"] == "client.example"
    assert env["CLIENT_HOSTNAME"] == "localhost"
    assert env["CLIENT_PROTOCOL"] == "ESMTP"
    assert "SASL_USERNAME" not in env and "SASL_METHOD" not in env and "SASL_SENDER" not in env
    assert env["ORIGINAL_RECIPIENT"] == "list@localhost" and env["RECIPIENT"] == "robot@localhost"
    assert ("\nReturn-Path: <sender@remote.example>\nX-Original-To: list@localhost\n"
            "Delivered-To: robot@localhost\n") in r["stdin"]


@needs_root
def test_alias_command_of_root_table_runs_as_default_privs_never_root(tern_instance, work_dir, system_users):
    tern = tern_instance
    cmd = reporter(work_dir)
    aliases_owned_by(work_dir, f"robot: |{cmd}\n", None)
    tutorial_config(tern, work_dir)
    tern.start()
    sendmail(tern, "robot@localhost")
    [r] = reports(tern, work_dir)
    nobody = pwd.getpwnam("nobody")
    assert (r["uid"], r["gid"]) == (nobody.pw_uid, nobody.pw_gid)
    assert r["env"]["USER"] == "nobody"


@needs_root
def test_default_privs_root_is_refused(tern_instance, work_dir, system_users):
    tern = tern_instance
    cmd = reporter(work_dir)
    aliases_owned_by(work_dir, f"robot: |{cmd}\n", None)
    tutorial_config(tern, work_dir, default_privs="root")
    tern.start()
    sendmail(tern, "robot@localhost")
    tern.wait_log(r"status=deferred \(default_privs: root is a privileged user\)", regex=True)
    assert not list(out_dir(work_dir).iterdir())


@needs_root
def test_exit_75_defers_and_other_failures_bounce_with_output(tern_instance, work_dir, system_users):
    tern = tern_instance
    owner = system_users.add()
    tmp = reporter(work_dir, 75, "try later")
    bad = reporter(work_dir, 1, "no such list here")
    aliases_owned_by(work_dir, f"later: |{tmp}\nbroken: |{bad}\n", owner)
    tutorial_config(tern, work_dir)
    tern.start()
    sendmail(tern, "later@localhost")
    q1 = pickup_id(tern)
    tern.wait_log(rf"{q1}: to=<\|{re.escape(str(tmp))}>, .*dsn=4\.3\.0, status=deferred "
                  r"\(command died with status 75 \(temporary failure\): try later\)", regex=True)
    # fixed: the retry runs it again (and through a restart, which forgets
    # the recipient's flags: the target is known by its text)
    tern.stop()
    reporter(work_dir, 75).write_text("#!/bin/sh\ncat >/dev/null\nexit 0\n")
    tern.start()
    tern.wait_log(rf"{q1}: to=<\|{re.escape(str(tmp))}>, .*status=sent \(delivered to command of alias later\)",
                  regex=True, timeout=15)
    sendmail(tern, "broken@localhost")
    q2 = pickup_id(tern, nth=2)
    tern.wait_log(rf"{q2}: to=<\|{re.escape(str(bad))}>, .*dsn=5\.3\.0, status=bounced "
                  r"\(command died with status 1: no such list here\)", regex=True)


@needs_root
def test_command_time_limit_kills_and_defers(tern_instance, work_dir, system_users):
    tern = tern_instance
    owner = system_users.add()
    slow = script(work_dir, "slow.sh", "sleep 30 & sleep 30\n")
    aliases_owned_by(work_dir, f"slow: |{slow}\n", owner)
    tutorial_config(tern, work_dir, command_time_limit="1s")
    tern.start()
    sendmail(tern, "slow@localhost")
    tern.wait_log(r"status=deferred \(command time limit exceeded\)", regex=True, timeout=10)


@needs_root
def test_stop_lets_a_running_command_finish(tern_instance, work_dir, system_users):
    """SIGTERM while a delivery command runs: it may finish (bounded), and
    its result is recorded, instead of being killed half way and run again
    after the restart."""
    tern = tern_instance
    owner = system_users.add()
    out = out_dir(work_dir)
    slow = script(work_dir, "slow.sh", f"cat >/dev/null\nsleep 2\necho done > {out}/finished\n")
    aliases_owned_by(work_dir, f"slow: |{slow}\n", owner)
    tutorial_config(tern, work_dir)
    tern.start()
    sendmail(tern, "slow@localhost")
    qid = pickup_id(tern)
    tern.wait_log("running command of alias slow")
    started = time.monotonic()
    tern.stop()
    assert time.monotonic() - started < 12
    assert (out / "finished").read_text() == "done\n"
    tern.wait_log(r"stopping: waiting up to 8s for 1 delivery command", regex=True, timeout=1)
    tern.wait_log(rf"{qid}: to=<\|{re.escape(str(slow))}>, .*status=sent", regex=True, timeout=1)


@needs_root
def test_stop_kills_a_command_that_outlasts_the_grace(tern_instance, work_dir, system_users):
    tern = tern_instance
    owner = system_users.add()
    out = out_dir(work_dir)
    slow = script(work_dir, "slower.sh", f"cat >/dev/null\nsleep 30\necho done > {out}/finished\n")
    aliases_owned_by(work_dir, f"slower: |{slow}\n", owner)
    tutorial_config(tern, work_dir)
    tern.start()
    sendmail(tern, "slower@localhost")
    tern.wait_log("running command of alias slower")
    started = time.monotonic()
    tern.stop()
    # 8 s, before the master's SIGKILL at 15 s
    assert 7.5 < time.monotonic() - started < 14
    tern.wait_log("1 delivery command still running after the grace period; killing it", timeout=1)
    tern.wait_log(r"dsn=4\.3\.0, status=deferred \(command killed: the local delivery agent is stopping\)",
                  regex=True, timeout=1)
    assert not (out / "finished").exists()
    assert "killing them" not in tern.log_text()   # the master did not have to


@needs_root
def test_file_alias_appends_mbox_as_table_owner(tern_instance, work_dir, system_users):
    tern = tern_instance
    owner = system_users.add()
    box = Path(owner.pw_dir) / "archive.mbox"
    aliases_owned_by(work_dir, f"archive: {box}, {owner.pw_name}\nnowhere: /dev/null\n", owner)
    tutorial_config(tern, work_dir)
    tern.start()
    sendmail(tern, "-f", "a@remote.example", "archive@localhost", input=b"Subject: one\n\nFrom me\n")
    sendmail(tern, "-f", "a@remote.example", "archive@localhost", input=b"Subject: two\n\nbody\n")
    sendmail(tern, "nowhere@localhost")
    tern.wait_log("status=sent (delivered to file: /dev/null)")
    tern.wait_log("status=sent (delivered to file: ", count=3)
    data = box.read_bytes()
    assert len(re.findall(rb"(?:^|\n\n)From a@remote\.example ", data)) == 2, data
    assert b"\nDelivered-To: archive@localhost\n" in data and b"\n>From me\n" in data
    st = box.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (owner.pw_uid, 0o600)
    # the user the alias also names gets the mail in the mailbox
    assert len(wait_files(Path(owner.pw_dir) / "Maildir" / "new", 2)) == 2


@needs_root
def test_file_alias_of_root_table_cannot_write_root_files(tern_instance, work_dir, system_users):
    tern = tern_instance
    target = work_dir / "rootonly"
    target.mkdir(mode=0o755)
    aliases_owned_by(work_dir, f"sneaky: {target}/log\n", None)
    tutorial_config(tern, work_dir)
    tern.start()
    sendmail(tern, "sneaky@localhost")
    tern.wait_log(r"status=deferred \(.*Permission denied\)", regex=True)
    assert not (target / "log").exists()


@needs_root
def test_allow_mail_to_commands_and_files_restrict(tern_instance, work_dir, system_users):
    tern = tern_instance
    owner = system_users.add()
    cmd = reporter(work_dir)
    aliases_owned_by(work_dir, f"robot: |{cmd}\narchive: /tmp/never-written-{owner.pw_name}\n", owner)
    tutorial_config(tern, work_dir, allow_mail_to_commands="forward", allow_mail_to_files="include")
    tern.start()
    sendmail(tern, "robot@localhost", "archive@localhost")
    tern.wait_log(r"dsn=5\.7\.1, status=bounced \(mail to command is restricted\)", regex=True)
    tern.wait_log(r"dsn=5\.7\.1, status=bounced \(mail to file is restricted\)", regex=True)
    assert not list(out_dir(work_dir).iterdir())


@needs_root
def test_mailbox_command_runs_as_recipient(tern_instance, work_dir, system_users):
    tern = tern_instance
    user = system_users.add()
    cmd = reporter(work_dir)
    tutorial_config(tern, work_dir, mailbox_command=f'{cmd} -a "$EXTENSION"', recipient_delimiter="+")
    tern.start()
    sendmail(tern, "-f", "s@remote.example", f"{user.pw_name}+box@localhost")
    [r] = reports(tern, work_dir)
    assert (r["uid"], r["gid"], r["cwd"]) == (user.pw_uid, user.pw_gid, user.pw_dir)
    assert r["env"]["EXTENSION"] == "box" and r["env"]["USER"] == user.pw_name
    assert r["env"]["ARGV"] == "-a box"   # mailbox_command is not expanded by the configuration
    assert r["env"]["RECIPIENT"] == f"{user.pw_name}+box@localhost"
    assert "\nDelivered-To: " + f"{user.pw_name}+box@localhost\n" in r["stdin"]
    tern.wait_log("status=sent (delivered to mailbox_command)")
    assert not (Path(user.pw_dir) / "Maildir").exists()


@needs_root
def test_delivered_to_loop_bounces_and_another_address_is_delivered(tern_instance, work_dir, system_users):
    """Postfix local(8)'s loop check: a message whose header already says it
    was delivered to the address bounces 5.4.6; another address in that
    field, or the address in the body, does not count."""
    tern = tern_instance
    user, owner = system_users.add(), system_users.add()
    cmd = reporter(work_dir)
    aliases_owned_by(work_dir, f"robot: |{cmd}\n", owner)
    tutorial_config(tern, work_dir)
    tern.start()
    addr = f"{user.pw_name}@localhost"
    sendmail(tern, "-f", "s@remote.example", addr,
             input=f"Received: by elsewhere\nDelivered-To: {addr.upper()}\nSubject: loop\n\nbody\n".encode())
    q1 = pickup_id(tern)
    tern.wait_log(rf"{q1}: to=<{re.escape(addr)}>, .*dsn=5\.4\.6, status=bounced "
                  rf"\(mail forwarding loop for {re.escape(addr)}\)", regex=True)
    sendmail(tern, "-f", "s@remote.example", addr,
             input=f"Delivered-To: other@localhost\nSubject: fine\n\nDelivered-To: {addr}\n".encode())
    [msg] = wait_files(Path(user.pw_dir) / "Maildir" / "new", 1)
    assert f"Delivered-To: {addr}\n".encode() in msg.read_bytes()
    # an alias's command: the address delivered is the alias's
    sendmail(tern, "-f", "s@remote.example", "robot@localhost",
             input=b"delivered-to:\n robot@localhost\nSubject: loop\n\nbody\n")
    q3 = pickup_id(tern, nth=3)
    tern.wait_log(rf"{q3}: to=<\|{re.escape(str(cmd))}>, .*dsn=5\.4\.6, status=bounced "
                  r"\(mail forwarding loop for robot@localhost\)", regex=True)
    assert not list(out_dir(work_dir).iterdir())
    assert len(list((Path(user.pw_dir) / "Maildir" / "new").iterdir())) == 1


@needs_root
def test_mailbox_command_maps_and_postfix_command_parameters(tern_instance, work_dir, system_users, monkeypatch):
    """mailbox_command_maps overrides mailbox_command per user;
    command_execution_directory (expanded, filtered), export_environment and
    command_expansion_filter shape what the command gets."""
    tern = tern_instance
    mapped, plain, homeless = system_users.add(), system_users.add(), system_users.add()
    cmd = reporter(work_dir)
    (work_dir / "commands").write_text(f"{mapped.pw_name} {cmd} -m mapped\n{homeless.pw_name} {cmd} -m x\n")
    dirs = work_dir / "dirs"
    dirs.mkdir(mode=0o755)
    for u in (mapped, plain):
        (dirs / u.pw_name).mkdir(mode=0o755)
    monkeypatch.setenv("TERN_TEST_EXPORTED", "from tern's environment")
    tutorial_config(tern, work_dir, mailbox_command=f"{cmd} -m plain",
                    mailbox_command_maps=f"hash:{work_dir}/commands",
                    command_execution_directory=f"{dirs}/$user${{extension?-}}$extension",
                    export_environment="TERN_TEST_EXPORTED FIXED=yes, { SPACED = a b }")
    tern.start()
    sendmail(tern, "-f", "o'neil@remote.example", f"{mapped.pw_name}@localhost", f"{plain.pw_name}@localhost")
    rs = reports(tern, work_dir, count=2)
    by_user = {r["env"]["USER"]: r for r in rs}
    m, p = by_user[mapped.pw_name], by_user[plain.pw_name]
    assert m["env"]["ARGV"] == "-m mapped" and p["env"]["ARGV"] == "-m plain"
    assert (m["uid"], m["cwd"]) == (mapped.pw_uid, str(dirs / mapped.pw_name))
    assert (p["uid"], p["cwd"]) == (plain.pw_uid, str(dirs / plain.pw_name))
    for r in rs:
        assert r["env"]["SENDER"] == "o_neil@remote.example"   # ' is not in command_expansion_filter
        assert r["env"]["TERN_TEST_EXPORTED"] == "from tern's environment"
        assert r["env"]["FIXED"] == "yes" and r["env"]["SPACED"] == "a b"
        assert "TERN_BIN" not in r["env"]
    tern.wait_log("status=sent (delivered to mailbox_command_maps)")
    tern.wait_log("status=sent (delivered to mailbox_command)")
    # a directory that cannot be entered defers
    sendmail(tern, f"{homeless.pw_name}@localhost")
    tern.wait_log(r"dsn=4\.3\.0, status=deferred \(command died with status 75 \(temporary failure\): "
                  r"cannot change to command_execution_directory\)", regex=True)


# ---------------------------------------------------------------- :include: and .forward

def owned_file(path: Path, text, owner, mode=0o644):
    path.write_text(text)
    os.chown(path, owner.pw_uid if owner else 0, owner.pw_gid if owner else 0)
    path.chmod(mode)
    return path


@needs_root
def test_include_list_expands_and_runs_as_its_owner(tern_instance, work_dir, system_users):
    tern = tern_instance
    keeper, member = system_users.add(), system_users.add()
    cmd = reporter(work_dir)
    box = Path(keeper.pw_dir) / "list-archive"
    lists = work_dir / "lists"
    lists.mkdir(mode=0o755)
    owned_file(lists / "staff", f"# the staff list\n{member.pw_name}\n|{cmd}\n\n{box}\n", keeper)
    aliases_owned_by(work_dir, f"staff: :include:{lists}/staff\n", None)
    tutorial_config(tern, work_dir, allow_mail_to_commands="alias, forward, include",
                    allow_mail_to_files="alias, forward, include")
    tern.start()
    sendmail(tern, "-f", "s@remote.example", "staff@localhost")
    qid = pickup_id(tern)
    [r] = reports(tern, work_dir)
    assert (r["uid"], r["gid"]) == (keeper.pw_uid, keeper.pw_gid)
    assert r["env"]["RECIPIENT"] == "staff@localhost"
    assert len(wait_files(Path(member.pw_dir) / "Maildir" / "new", 1)) == 1
    tern.wait_log(rf"{qid}: to=<:include:{re.escape(str(lists))}/staff>: expanded by :include: to 3 recipients",
                  regex=True)
    tern.wait_log(f"{qid}: removed")
    assert box.stat().st_uid == keeper.pw_uid and b"\nDelivered-To: staff@localhost\n" in box.read_bytes()


@needs_root
def test_nested_include_lists_each_run_as_their_owner(tern_instance, work_dir, system_users):
    tern = tern_instance
    keeper, ops_keeper, member, operator = (system_users.add() for _ in range(4))
    cmd = reporter(work_dir)
    lists = work_dir / "lists"
    lists.mkdir(mode=0o755)
    owned_file(lists / "staff", f"{member.pw_name}\n:include:{lists}/ops\n", keeper)
    owned_file(lists / "ops", f"{operator.pw_name}\n|{cmd}\n", ops_keeper)
    aliases_owned_by(work_dir, f"staff: :include:{lists}/staff\n", None)
    tutorial_config(tern, work_dir, allow_mail_to_commands="alias, forward, include")
    tern.start()
    sendmail(tern, "-f", "s@remote.example", "staff@localhost")
    qid = pickup_id(tern)
    [r] = reports(tern, work_dir)
    assert (r["uid"], r["gid"]) == (ops_keeper.pw_uid, ops_keeper.pw_gid)
    assert r["env"]["RECIPIENT"] == "staff@localhost"
    assert len(wait_files(Path(member.pw_dir) / "Maildir" / "new", 1)) == 1
    assert len(wait_files(Path(operator.pw_dir) / "Maildir" / "new", 1)) == 1
    tern.wait_log(f"{qid}: to=<:include:{lists}/ops>: expanded by :include: to 2 recipients")
    tern.wait_log(rf"status=sent \(delivered to command of :include:{re.escape(str(lists))}/ops\)", regex=True)
    tern.wait_log(f"{qid}: removed")


@needs_root
def test_nested_include_is_checked_like_the_first(tern_instance, work_dir, system_users):
    tern = tern_instance
    keeper, member = system_users.add(), system_users.add()
    lists = work_dir / "lists"
    lists.mkdir(mode=0o755)
    owned_file(lists / "staff", f":include:{lists}/open\n", keeper)
    owned_file(lists / "open", f"{member.pw_name}\n", keeper, mode=0o666)
    aliases_owned_by(work_dir, f"staff: :include:{lists}/staff\n", None)
    tutorial_config(tern, work_dir)
    tern.start()
    sendmail(tern, "staff@localhost")
    tern.wait_log(r"status=deferred \(.*/open is writable by group or others\)", regex=True)
    assert not (Path(member.pw_dir) / "Maildir").exists()


@needs_root
def test_include_loops_and_too_deep_nesting_bounce(tern_instance, work_dir, system_users):
    tern = tern_instance
    keeper, member = system_users.add(), system_users.add()
    lists = work_dir / "lists"
    lists.mkdir(mode=0o755)
    owned_file(lists / "self", f"{member.pw_name}\n:include:{lists}/self\n", keeper)
    owned_file(lists / "a", f":include:{lists}/b\n", keeper)
    owned_file(lists / "b", f":include:{lists}/a\n{member.pw_name}\n", keeper)
    for i in range(11):   # eleven files, each listing the next
        owned_file(lists / f"level{i}", f":include:{lists}/level{i + 1}\n" if i < 10 else f"{member.pw_name}\n",
                   keeper)
    aliases_owned_by(work_dir, f"self: :include:{lists}/self\nab: :include:{lists}/a\n"
                               f"deep: :include:{lists}/level0\n", None)
    tutorial_config(tern, work_dir)
    tern.start()
    sendmail(tern, "-f", "s@remote.example", "self@localhost")
    tern.wait_log(rf"dsn=5\.4\.6, status=bounced \(mail forwarding loop: :include:{re.escape(str(lists))}/self "
                  r"lists itself\)", regex=True)
    sendmail(tern, "-f", "s@remote.example", "ab@localhost")
    tern.wait_log(rf"dsn=5\.4\.6, status=bounced \(mail forwarding loop: :include:{re.escape(str(lists))}/a "
                  r"lists itself through other :include: files\)", regex=True)
    assert len(wait_files(Path(member.pw_dir) / "Maildir" / "new", 2)) == 2
    sendmail(tern, "-f", "s@remote.example", "deep@localhost")
    tern.wait_log(r"dsn=5\.4\.6, status=bounced \(too many nested :include: lists \(at most 10\)\)", regex=True)
    tern.wait_log(": removed", count=3)
    assert len(list((Path(member.pw_dir) / "Maildir" / "new").iterdir())) == 2


@needs_root
def test_include_commands_are_restricted_by_default(tern_instance, work_dir, system_users):
    tern = tern_instance
    keeper = system_users.add()
    cmd = reporter(work_dir)
    owned_file(work_dir / "robots", f"|{cmd}\n", keeper)
    aliases_owned_by(work_dir, f"robots: :include:{work_dir}/robots\n", None)
    tutorial_config(tern, work_dir)
    tern.start()
    sendmail(tern, "robots@localhost")
    tern.wait_log(r"dsn=5\.7\.1, status=bounced \(mail to command is restricted\)", regex=True)
    assert not list(out_dir(work_dir).iterdir())


@needs_root
def test_world_writable_include_file_defers(tern_instance, work_dir, system_users):
    tern = tern_instance
    keeper, member = system_users.add(), system_users.add()
    owned_file(work_dir / "open-list", f"{member.pw_name}\n", keeper, mode=0o666)
    aliases_owned_by(work_dir, f"open: :include:{work_dir}/open-list\n", None)
    tutorial_config(tern, work_dir)
    tern.start()
    sendmail(tern, "open@localhost")
    tern.wait_log(r"status=deferred \(.*/open-list is writable by group or others\)", regex=True)


@needs_root
def test_forward_with_command_address_and_own_copy(tern_instance, work_dir, system_users):
    tern = tern_instance
    user, friend = system_users.add(), system_users.add()
    cmd = reporter(work_dir)
    owned_file(Path(user.pw_dir) / ".forward", f"\\{user.pw_name}, |{cmd}\n{friend.pw_name}@localhost\n", user)
    tutorial_config(tern, work_dir)
    tern.start()
    sendmail(tern, "-f", "s@remote.example", f"{user.pw_name}@localhost")
    qid = pickup_id(tern)
    [r] = reports(tern, work_dir)
    assert (r["uid"], r["gid"], r["cwd"]) == (user.pw_uid, user.pw_gid, user.pw_dir)
    assert r["env"]["RECIPIENT"] == f"{user.pw_name}@localhost"
    assert len(wait_files(Path(user.pw_dir) / "Maildir" / "new", 1)) == 1
    assert len(wait_files(Path(friend.pw_dir) / "Maildir" / "new", 1)) == 1
    tern.wait_log(f"{qid}: to=<{user.pw_name}@localhost>: expanded by .forward to 3 recipients")
    tern.wait_log(f"{qid}: removed")
    assert len(list((Path(user.pw_dir) / "Maildir" / "new").iterdir())) == 1


@needs_root
@pytest.mark.parametrize("mode,owner", [(0o664, "user"), (0o644, "other")])
def test_untrusted_forward_is_ignored(tern_instance, work_dir, system_users, mode, owner):
    tern = tern_instance
    user, other = system_users.add(), system_users.add()
    owned_file(Path(user.pw_dir) / ".forward", f"{other.pw_name}@localhost\n",
               user if owner == "user" else other, mode=mode)
    tutorial_config(tern, work_dir)
    tern.start()
    sendmail(tern, f"{user.pw_name}@localhost")
    assert len(wait_files(Path(user.pw_dir) / "Maildir" / "new", 1)) == 1
    why = "writable by group or others" if owner == "user" else "owned by uid"
    tern.wait_log(rf"ignoring the \.forward of {user.pw_name}: .*\.forward is {why}", regex=True)
    assert not (Path(other.pw_dir) / "Maildir").exists()


@needs_root
def test_forward_command_refused_by_allow_mail_to_commands(tern_instance, work_dir, system_users):
    tern = tern_instance
    user = system_users.add()
    cmd = reporter(work_dir)
    owned_file(Path(user.pw_dir) / ".forward", f"|{cmd}\n", user)
    tutorial_config(tern, work_dir, allow_mail_to_commands="alias")
    tern.start()
    sendmail(tern, f"{user.pw_name}@localhost")
    tern.wait_log(r"dsn=5\.7\.1, status=bounced \(mail to command is restricted\)", regex=True)
    assert not list(out_dir(work_dir).iterdir())


@needs_root
def test_forward_path_prefers_the_extension_file(tern_instance, work_dir, system_users):
    tern = tern_instance
    user, lists, plain = system_users.add(), system_users.add(), system_users.add()
    home = Path(user.pw_dir)
    owned_file(home / ".forward+lists", f"{lists.pw_name}\n", user)
    owned_file(home / ".forward", f"{plain.pw_name}\n", user)
    tutorial_config(tern, work_dir, recipient_delimiter="+")
    tern.start()
    sendmail(tern, f"{user.pw_name}+lists@localhost", f"{user.pw_name}@localhost")
    assert len(wait_files(Path(lists.pw_dir) / "Maildir" / "new", 1)) == 1
    assert len(wait_files(Path(plain.pw_dir) / "Maildir" / "new", 1)) == 1
    tern.wait_log(": removed")
    assert not (home / "Maildir").exists()


# ---------------------------------------------------------------- a compromised queue

IPC_DELIVER, IPC_DELIVER_REPLY = 3, 4


def ipc_encode(msg_type, reqid, attrs):
    out = struct.pack("<HI", msg_type, reqid)
    for name, value in attrs.items():
        n, v = name.encode(), str(value).encode()
        out += struct.pack("<B", len(n)) + n + struct.pack("<I", len(v)) + v + b"\0"
    return out


def ipc_decode(packet):
    msg_type, reqid = struct.unpack_from("<HI", packet)
    pos, attrs = 6, {}
    while pos < len(packet):
        n = packet[pos]
        name = packet[pos + 1:pos + 1 + n].decode()
        (v,) = struct.unpack_from("<I", packet, pos + 1 + n)
        start = pos + 1 + n + 4
        attrs[name] = packet[start:start + v].decode(errors="replace")
        pos = start + v + 1
    return msg_type, reqid, attrs


@needs_root
def test_local_checks_what_a_forged_deliver_request_names(tern_instance, work_dir, system_users):
    """Playing a compromised queue process: local runs no command, writes no
    file and reads no list that its own tables and files do not name."""
    tern = tern_instance
    owner, victim = system_users.add(), system_users.add()
    cmd = reporter(work_dir)
    aliases_owned_by(work_dir, f"robot: |{cmd}\n", owner)
    owned_file(Path(victim.pw_dir) / ".forward", f"\\{victim.pw_name}\n", victim)
    tutorial_config(tern, work_dir, allow_mail_to_commands="alias, forward, include",
                    allow_mail_to_files="alias, forward, include")
    # queue files, not the journal: the forged requests name one
    tern.write_config(queue_sync_method="syncfs")
    tern.start()
    # a message that stays in queue/: its file is what the forged requests name
    sendmail(tern, "someone@remote.example")
    qid = pickup_id(tern)
    tern.wait_log(f"{qid}: to=<someone@remote.example>")
    path = tern.queue_dir / "queue" / qid
    assert path.exists()
    evil = f"|touch {work_dir}/pwned"
    base = dict(id=qid, path=str(path), offset=0, length=1, sender="x@remote.example",
                user="robot", alias_rcpt="robot@localhost")
    forged = [
        (dict(rcpt=evil, alias="robot"), "alias robot does not list"),
        (dict(rcpt=evil, alias="nosuchalias"), "alias nosuchalias does not list"),
        (dict(rcpt=f"{work_dir}/pwned", alias="robot"), "alias robot does not list"),
        (dict(rcpt=evil, forward_of=victim.pw_name, alias_rcpt=f"{victim.pw_name}@localhost"), "does not list"),
        (dict(rcpt=evil, forward_of="root", alias_rcpt="root@localhost"), ""),
        (dict(rcpt=evil, alias="robot", include="/etc/shadow"), "alias robot does not list :include:/etc/shadow"),
        (dict(rcpt=":include:/etc/shadow", alias="robot"), "alias robot does not list :include:/etc/shadow"),
        # nested :include: chains: every link is checked, their length bounded
        (dict(rcpt=evil, alias="robot", include="/etc/a\n/etc/shadow"), "alias robot does not list :include:/etc/a"),
        (dict(rcpt=evil, alias="robot", include="\n".join(f"/l{i}" for i in range(11))),
         "too many nested :include: lists"),
        (dict(rcpt=evil, alias="robot", include="/etc/a\nrelative"), "not an :include: file"),
        # only journal segments by their exact name, besides queue/ID and hold/ID
        (dict(rcpt=f"{owner.pw_name}@localhost", user=owner.pw_name, path=str(tern.queue_dir / "journal" / "seg-../../../../etc/shadow")), "cannot open queue file"),
        (dict(rcpt=f"{owner.pw_name}@localhost", user=owner.pw_name, path=str(tern.queue_dir / "journal" / "free-0000000000000001")), "cannot open queue file"),
        (dict(rcpt=f"{owner.pw_name}@localhost", user=owner.pw_name, path=str(tern.queue_dir / "journal" / "seg-000000000000000g")), "cannot open queue file"),
        (dict(rcpt=f"{owner.pw_name}@localhost", user=owner.pw_name, path=str(tern.queue_dir / "journal" / "seg-0000000000000001" / "x")), "cannot open queue file"),
        # content beyond the file: a command's input would be copied whole
        (dict(rcpt=evil, alias="robot", length=3 << 30), "does not match its queue file"),
        (dict(rcpt=f"{owner.pw_name}@localhost", user=owner.pw_name, offset=1 << 40), "does not match its queue file"),
    ]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(str(tern.queue_dir / "private" / "local"))
    s.settimeout(10)
    for i, (extra, why) in enumerate(forged, 1):
        s.send(ipc_encode(IPC_DELIVER, 1000 + i, {**base, **extra}))
        msg_type, reqid, reply = ipc_decode(s.recv(65536))
        assert (msg_type, reqid) == (IPC_DELIVER_REPLY, 1000 + i)
        assert reply["status"] in ("bounced", "deferred"), (extra, reply)
        assert why in reply["text"], (extra, reply)
    s.close()
    assert not (work_dir / "pwned").exists()
    assert not list(out_dir(work_dir).iterdir())
    assert "running command" not in tern.log_text()


@needs_root
def test_a_kept_journal_segment_is_still_checked(tern_instance, work_dir, system_users):
    """The local agent keeps a journal segment open between deliveries; a
    forged request naming that segment with content beyond its end is still
    refused, and a real delivery after it from the same segment is whole."""
    tern = tern_instance
    user = system_users.add()
    tutorial_config(tern, work_dir)
    tern.start()
    sendmail(tern, f"{user.pw_name}@localhost", input=b"Subject: one\n\nfirst\n")
    tern.wait_log("status=sent (delivered to maildir)")
    segment = sorted((tern.queue_dir / "journal").glob("seg-*"))[-1]
    size = segment.stat().st_size
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(str(tern.queue_dir / "private" / "local"))
    s.settimeout(10)
    forged = dict(id="01K0000000001", path=str(segment), sender="x@remote.example",
                  rcpt=f"{user.pw_name}@localhost", user=user.pw_name)
    for i, (offset, length) in enumerate([(size - 10, 11), (size + 1, 0), (0, 1 << 40)], 1):
        s.send(ipc_encode(IPC_DELIVER, 2000 + i, {**forged, "offset": offset, "length": length}))
        msg_type, reqid, reply = ipc_decode(s.recv(65536))
        assert (msg_type, reqid) == (IPC_DELIVER_REPLY, 2000 + i)
        assert reply["status"] == "deferred" and "does not match its queue file" in reply["text"], reply
    s.close()
    sendmail(tern, f"{user.pw_name}@localhost", input=b"Subject: two\n\nsecond\n")
    tern.wait_log("status=sent (delivered to maildir)", count=2)
    text = maildir_text(user)
    assert text.count("\nfirst\n") == 1 and text.count("\nsecond\n") == 1, text


# ------------------------------------------------- what a local user can try

def maildir_text(user):
    new = Path(user.pw_dir) / "Maildir" / "new"
    return "".join(p.read_text(errors="replace") for p in sorted(new.iterdir())) if new.is_dir() else ""


@needs_root
def test_include_of_kernel_files_is_refused(tern_instance, work_dir, system_users):
    """Root's local agent acts as the user on what the user names, but the
    kernel answers some /proc files by who asks (a sysctl checks the
    effective uid, /proc/PID/cwd a capability): an :include: of them must
    not bounce their lines back to the user as unknown addresses."""
    tern = tern_instance
    user = system_users.add()
    key_path = "/proc/sys/net/ipv4/tcp_fastopen_key"   # root-only (0600)
    secret = Path(key_path).read_text().strip()
    assert subprocess.run(["runuser", "-u", user.pw_name, "--", "cat", key_path], capture_output=True).returncode != 0
    owned_file(Path(user.pw_dir) / ".forward", f":include:{key_path}\n:include:/proc/self/maps\n", user)
    tutorial_config(tern, work_dir)
    tern.start()
    sendmail(tern, "-f", f"{user.pw_name}@localhost", f"{user.pw_name}@localhost")
    # the sysctl is not the user's to read (local acts with the user's
    # effective uid); the agent's own memory map is readable by itself, but
    # no file of the kernel's is a list of addresses
    tern.wait_log(rf"to=<:include:{key_path}>.*status=deferred \(cannot open .*Permission denied", regex=True)
    tern.wait_log(r"to=<:include:/proc/self/maps>.*status=deferred \(/proc/self/maps is on the kernel's proc file "
                  r"system", regex=True)
    text = maildir_text(user) + tern.log_text()
    assert secret not in text and "[heap]" not in text and "r-xp" not in text


@needs_root
def test_forward_longer_than_the_queue_takes_bounces_and_local_lives(tern_instance, work_dir, system_users):
    """A .forward may be 1 MiB, but the queue records at most 1000 targets
    and one message to it holds 64 KiB: a longer list bounces (5.2.4) and
    the local agent goes on delivering, rather than aborting at every try."""
    tern = tern_instance
    user, other = system_users.add(), system_users.add()
    owned_file(Path(user.pw_dir) / ".forward",
               "".join(f"someone{i}-{'x' * 30}@remote.example\n" for i in range(3000)), user)
    tutorial_config(tern, work_dir)
    tern.start()
    sendmail(tern, "-f", "s@remote.example", f"{user.pw_name}@localhost")
    tern.wait_log(rf"to=<{user.pw_name}@localhost>.*status=bounced \(.*more than the 1000 addresses", regex=True)
    sendmail(tern, f"{other.pw_name}@localhost")
    assert len(wait_files(Path(other.pw_dir) / "Maildir" / "new", 1)) == 1
    assert "panic" not in tern.log_text() and "restarting local" not in tern.log_text()


@needs_root
def test_locked_file_targets_do_not_stall_other_deliveries(tern_instance, work_dir, system_users):
    """The local agent delivers from one event loop: 200 file targets whose
    lock files the user keeps would stall everyone for 50 s at a quarter of
    a second each. Lock waits share one allowance, so the others' mail goes
    on and the locked targets are tried again later."""
    tern = tern_instance
    user, other = system_users.add(), system_users.add()
    home = Path(user.pw_dir)
    files = [home / f"box{i}" for i in range(200)]
    for f in files:
        owned_file(Path(f"{f}.lock"), "", user)
    owned_file(home / ".forward", "".join(f"{f}\n" for f in files), user)
    tutorial_config(tern, work_dir)
    tern.start()
    sendmail(tern, "-f", "s@remote.example", f"{user.pw_name}@localhost")
    tern.wait_log(rf"to=<{files[0]}>.*status=deferred", regex=True, timeout=30)
    sendmail(tern, f"{other.pw_name}@localhost")
    # delivered while the locked targets are still being tried, not 50 s later
    assert len(wait_files(Path(other.pw_dir) / "Maildir" / "new", 1, timeout=15)) == 1


@needs_root
def test_an_extension_with_a_slash_names_no_forward_file(tern_instance, work_dir, system_users):
    """$home/.forward+EXT takes the address's extension: one with a '/'
    would walk out of the home (given a directory named .forward+x there),
    turning any file the user can read into their .forward. It is ignored,
    as Postfix does, and the mail goes to the user's own mailbox."""
    tern = tern_instance
    victim, attacker = system_users.add(), system_users.add()
    home = Path(victim.pw_dir)
    (home / ".forward+x").mkdir()
    os.chown(home / ".forward+x", victim.pw_uid, victim.pw_gid)
    owned_file(home / "secret.txt", "topsecret-4711\n", victim, mode=0o600)
    owned_file(Path(attacker.pw_dir) / ".forward", f"{victim.pw_name}+x/../secret.txt@localhost\n", attacker)
    tutorial_config(tern, work_dir, recipient_delimiter="+")
    tern.start()
    sendmail(tern, "-f", f"{attacker.pw_name}@localhost", f"{attacker.pw_name}@localhost")
    assert len(wait_files(home / "Maildir" / "new", 1)) == 1
    tern.wait_log("address with an illegal extension")
    assert "topsecret" not in tern.log_text()
    assert "topsecret" not in maildir_text(attacker)


@needs_root
def test_local_takes_a_bounded_number_of_connections(tern_instance, work_dir, system_users):
    """Only the queue talks to local (one connection): more than 32 at once
    are closed, so a compromised mail owner cannot run root's agent out of
    descriptors, and the queue's delivery goes on."""
    tern = tern_instance
    user = system_users.add()
    tutorial_config(tern, work_dir)
    tern.start()
    sendmail(tern, f"{user.pw_name}@localhost")          # the queue is connected now
    new = Path(user.pw_dir) / "Maildir" / "new"
    assert len(wait_files(new, 1)) == 1
    held = []
    for _ in range(40):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.connect(str(tern.queue_dir / "private" / "local"))
        held.append(s)
    tern.wait_log("refusing a delivery connection: 32 are open already")
    time.sleep(0.5)
    closed = 0
    for s in held:
        s.setblocking(False)
        try:
            closed += s.recv(100) == b""
        except BlockingIOError:
            pass
    assert closed == 9, closed      # 32 open at most, the queue's own among them
    sendmail(tern, f"{user.pw_name}@localhost")
    assert len(wait_files(new, 2)) == 2
    for s in held:
        s.close()
