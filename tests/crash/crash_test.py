#!/usr/bin/python3
"""Crash trials: does tern keep its promise when it is killed -9 under load?

Tern promises that a 250 after DATA (or a sendmail exit status of 0) means the
message is on disk, that kill -9 at any moment loses nothing acknowledged, and
that delivery is at least once. A trial checks that promise end to end:

  1. start a fresh tern (the release build, as root) in a temporary directory:
     Maildirs for local recipients, and a recording SMTP peer on a loopback
     address as `relayhost` for every other domain;
  2. run a paced, concurrent load: SMTP client threads and sendmail
     submissions, every message with a unique id in its Message-ID and
     Subject, recipients both local and relayed; record which submissions
     were acknowledged;
  3. at a random moment of the load (submission or delivery) kill -9 every
     process of the instance at once, restart it on the same directories and
     let the clients retry what was not acknowledged;
  4. wait until the queue is empty, stop tern, then count: acknowledged but
     lost (must be 0), delivered twice, holes (files left in corrupt/,
     incoming/, queue/, hold/ or maildrop/) and submissions never
     acknowledged but delivered anyway.

Run as root (tern drops to its mail_owner `tern`), with Debian's python3 and
python3-aiosmtpd:  make crash-test TRIALS=100   or
                   /usr/bin/python3 tests/crash/crash_test.py --trials 5 --seed 42
The exit status is 1 when anything acknowledged was lost (or a copy of it
arrived cut short), 2 on a harness error.
A trial's seed (printed on its line) fixes its messages, recipients, kill
moment and restart delay; `--seed S --trials 1` replays that plan (the
timing of the processes themselves is of course not reproducible).
"""
import argparse
import os
import random
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_TERN = REPO / "build" / "tern"

SENDER = "crash@localhost"
LOCAL_USERS = ["u0", "u1", "u2", "u3"]
RELAY_RCPTS = ["r0@relay.test", "r1@relay.test", "r2@relay.test"]
SPOOL_DIRS_THAT_MUST_EMPTY = ["incoming", "queue", "hold", "maildrop", "corrupt"]
MESSAGE_ID_RE = re.compile(rb"^Message-ID:[ \t]*<([^>@]+)@crash\.test>", re.M | re.I)
DELIVERED_TO_RE = re.compile(rb"^Delivered-To:[ \t]*(\S+)", re.M | re.I)
QUEUED_AS_RE = re.compile(r"queued as ([0-9A-Z]+)")
# one whole body line as message_bytes writes it (CRLF on the wire, LF in a Maildir)
BODY_LINE_RE = re.compile(rb"^submission \S+ line \d+: x{60}\r?$", re.M)

# Everything a run started, so that an interrupted run can clean up after itself.
live_instances = set()
live_peers = set()
live_children = set()          # sendmail / tern queue invocations
live_dirs = set()
registry_lock = threading.Lock()


def log_phase(verbose, text):
    if verbose:
        print(f"    {time.strftime('%H:%M:%S')} {text}", flush=True)


def free_port(host):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(host, port, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def run_child(args, input_bytes=None, timeout=30):
    """Runs a short-lived command we started (sendmail, tern queue), tracked so
    that Ctrl-C can kill it by PID; returns (returncode, output)."""
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    with registry_lock:
        live_children.add(proc)
    try:
        out, _ = proc.communicate(input_bytes, timeout=timeout)
        return proc.returncode, out.decode(errors="replace")
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        return None, out.decode(errors="replace") + "\n(timed out, killed)"
    finally:
        with registry_lock:
            live_children.discard(proc)


# ---------------------------------------------------------------- the remote peer

class RecordingPeer:
    """The relay destination: an aiosmtpd server on a loopback address that
    accepts everything and counts, per (submission id, recipient), the
    transactions it acknowledged. It is recorded before the 250 goes out,
    so whatever tern was told was taken is counted."""

    def __init__(self, host, port, max_delay, seed):
        import asyncio
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import SMTP as AioSMTP

        self.host, self.port = host, port
        self.deliveries = Counter()        # (submission id, rcpt) -> count
        self.body_lines = {}               # (submission id, rcpt) -> [whole body lines of each copy]
        self.foreign = 0                   # transactions without one of our ids
        self.lock = threading.Lock()
        # a real remote server takes a while to answer the final dot; the
        # delay widens the window in which tern is killed after the peer
        # took a message but before tern recorded it (a duplicate)
        delays = random.Random(seed)
        peer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                if max_delay > 0:
                    await asyncio.sleep(delays.uniform(0, max_delay))
                content = envelope.original_content or b""
                head = content.split(b"\r\n\r\n", 1)[0]
                m = MESSAGE_ID_RE.search(head)
                with peer.lock:
                    if not m:
                        peer.foreign += 1
                    else:
                        lines = len(BODY_LINE_RE.findall(content))
                        for rcpt in envelope.rcpt_tos:
                            key = (m.group(1).decode(), rcpt.lower())
                            peer.deliveries[key] += 1
                            peer.body_lines.setdefault(key, []).append(lines)
                return "250 2.0.0 Ok: recorded"

        class PeerController(Controller):
            def factory(self):
                return AioSMTP(self.handler, decode_data=False, hostname="mx.relay.test")

        self.controller = PeerController(Handler(), hostname=host, port=port)
        self.controller.start()
        with registry_lock:
            live_peers.add(self)

    def snapshot(self):
        with self.lock:
            return Counter(self.deliveries), {k: list(v) for k, v in self.body_lines.items()}, self.foreign

    def stop(self):
        with registry_lock:
            if self not in live_peers:
                return
            live_peers.discard(self)
        try:
            self.controller.stop()
        except Exception:
            pass


# ---------------------------------------------------------------- the tern instance

def process_group_members(pgid):
    """PIDs of live (not zombie) processes in process group pgid."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


class TernInstance:
    """One tern in base/: main.cf, master.cf, spool/, mail/, maillog. The
    master runs in a session (and so a process group) of its own; its
    children are forked into that group, which is how kill9 finds them all."""

    def __init__(self, tern_bin, base, relay_host, relay_port, queue_sync_method=None):
        self.tern_bin = str(tern_bin)
        self.dir = base
        self.host = "127.0.0.1"
        self.port = free_port(self.host)
        self.spool = base / "spool"
        self.mail = base / "mail"
        self.maillog = base / "maillog"
        self.stderr_path = base / "stderr.log"
        self.proc = None
        self.start_times = []           # wall clock of each start, to compare with file times
        main_cf = {
            "myhostname": "mail.crash.test",
            "mydomain": "crash.test",
            "myorigin": "$mydomain",
            "mydestination": "$myhostname, localhost",
            "inet_interfaces": "loopback-only",
            "queue_directory": str(self.spool),
            "maillog_file": str(self.maillog),
            "local_mailbox_base": str(self.mail),
            "home_mailbox": "Maildir/",
            "alias_maps": "",
            # retries after the crash come quickly, so a trial drains in seconds
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            # never the Internet: a resolver nobody runs; every other domain
            # goes to the recording peer by address, which needs no DNS
            "dns_resolvers": "127.0.0.1:9",
            "relayhost": f"[{relay_host}]:{relay_port}",
        }
        if queue_sync_method:
            main_cf["queue_sync_method"] = queue_sync_method
        (base / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in main_cf.items()))
        (base / "master.cf").write_text(f"{self.host}:{self.port} inet n - n - - smtpd\n")

    def start(self):
        self.start_times.append(time.time())
        with open(self.stderr_path, "ab") as err:
            err.write(f"--- start {len(self.start_times)} at {time.strftime('%H:%M:%S')}\n".encode())
            err.flush()
            self.proc = subprocess.Popen([self.tern_bin, "-c", str(self.dir), "serve"],
                                         stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                         start_new_session=True)
        with registry_lock:
            live_instances.add(self)
        if not wait_port(self.host, self.port, 20):
            raise HarnessError(f"tern did not start listening on {self.host}:{self.port}:\n"
                               + tail(self.stderr_path, 30) + tail(self.maillog, 30))

    def kill9(self):
        """SIGKILL to every process of the instance at once (the master's
        process group), then waits until none is left. The master stays
        unreaped until then, so its PID (the group id) cannot be reused."""
        if not self.proc:
            return
        pgid = self.proc.pid
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.time() + 10
        while process_group_members(pgid) and time.time() < deadline:
            time.sleep(0.01)
        left = process_group_members(pgid)
        self.proc.wait()
        self.proc = None
        with registry_lock:
            live_instances.discard(self)
        if left:
            raise HarnessError(f"tern processes {left} survived SIGKILL of group {pgid}")

    def stop(self, timeout=30):
        """SIGTERM, the orderly stop; SIGKILL for whatever remains."""
        if not self.proc:
            return None
        pgid = self.proc.pid
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        status = self.proc.poll()
        try:
            os.killpg(pgid, signal.SIGKILL)     # children left behind, if any
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.proc = None
        with registry_lock:
            live_instances.discard(self)
        return status

    def queue_listing(self):
        rc, out = run_child([self.tern_bin, "-c", str(self.dir), "queue"], timeout=15)
        return out if rc == 0 else None

    def spool_files(self, name):
        d = self.spool / name
        try:
            return sorted(p.name for p in d.iterdir())
        except FileNotFoundError:
            return []

    def log_text(self):
        try:
            return self.maillog.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class HarnessError(Exception):
    """Something went wrong in the harness or the environment, not a finding."""


def tail(path, lines):
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "".join(f"      | {line}\n" for line in text[-lines:])


# ---------------------------------------------------------------- the load

class Submission:
    """One attempt to hand a message to tern. A message that fails (the
    instance is down, the connection breaks) is tried again as a new
    submission with a new id, so every id has one clear answer."""

    def __init__(self, sid, via, rcpts):
        self.sid = sid
        self.via = via
        self.rcpts = rcpts
        self.acked = False
        self.queue_id = None
        self.error = None
        self.stage = "start"           # how far it got: connect, mail, rcpt, data, sendmail
        self.body_lines = 0            # every copy delivered must have them all


def message_bytes(sid, rcpts, body_lines, line_end):
    header = [f"From: Crash Trial <{SENDER}>",
              f"To: {', '.join(rcpts)}",
              f"Subject: crash trial {sid}",
              f"Message-ID: <{sid}@crash.test>",
              "Date: " + time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())]
    body = [f"submission {sid} line {i}: " + "x" * 60 for i in range(body_lines)]
    return (line_end.join(header + [""] + body) + line_end).encode()


class Load:
    """The planned messages of one trial and the threads that submit them.

    Each message has a send time spread evenly over load_seconds (the order
    shuffled by the trial's seed), so the load, and the crash window, has a
    known length. SMTP messages are shared by the client threads; sendmail
    messages go through one thread running `tern sendmail`."""

    def __init__(self, rng, inst, trial_tag, messages, load_seconds, sendmail_share,
                 smtp_clients, give_up_at):
        self.inst = inst
        self.give_up_at = give_up_at
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.submissions = {}                       # sid -> Submission
        self.failed_messages = []                   # message numbers never acknowledged
        plan = []
        for n in range(messages):
            local = rng.sample(LOCAL_USERS, rng.choice([0, 1, 1, 2]))
            relayed = rng.sample(RELAY_RCPTS, rng.choice([0, 1, 1, 2]))
            if not local and not relayed:
                local = [rng.choice(LOCAL_USERS)]
            rcpts = [f"{u}@localhost" for u in local] + relayed
            rng.shuffle(rcpts)
            via = "sendmail" if rng.random() < sendmail_share else "smtp"
            # mostly small, sometimes large enough that writing it takes a while
            body_lines = rng.choice([2, 5, 20, 50, 200]) if rng.random() < 0.9 else rng.choice([2000, 8000])
            plan.append((n, via, rcpts, body_lines))
        order = list(range(messages))
        rng.shuffle(order)
        send_at = {n: load_seconds * i / max(messages, 1) for i, n in enumerate(order)}
        self.smtp_plan = sorted((p for p in plan if p[1] == "smtp"), key=lambda p: send_at[p[0]])
        self.sendmail_plan = sorted((p for p in plan if p[1] == "sendmail"), key=lambda p: send_at[p[0]])
        self.send_at = send_at
        self.body_lines_of = {p[0]: p[3] for p in plan}
        self.trial_tag = trial_tag
        self.next_smtp = 0
        self.threads = [threading.Thread(target=self.smtp_worker, name=f"smtp-{i}", daemon=True)
                        for i in range(smtp_clients)]
        if self.sendmail_plan:
            self.threads.append(threading.Thread(target=self.sendmail_worker, name="sendmail", daemon=True))

    def start(self):
        self.t0 = time.monotonic()
        for t in self.threads:
            t.start()

    def join(self, timeout):
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self.threads)

    def new_submission(self, n, via, rcpts, attempt):
        s = Submission(f"{self.trial_tag}m{n:03d}a{attempt}", via, rcpts)
        s.body_lines = self.body_lines_of[n]
        with self.lock:
            self.submissions[s.sid] = s
        return s

    def wait_until_due(self, n):
        delay = self.t0 + self.send_at[n] - time.monotonic()
        if delay > 0:
            self.stop_event.wait(delay)

    def gave_up(self, n):
        with self.lock:
            self.failed_messages.append(n)

    def smtp_worker(self):
        conn = None
        while not self.stop_event.is_set():
            with self.lock:
                if self.next_smtp >= len(self.smtp_plan):
                    break
                n, via, rcpts, body_lines = self.smtp_plan[self.next_smtp]
                self.next_smtp += 1
            self.wait_until_due(n)
            attempt = 0
            while not self.stop_event.is_set():
                if time.time() > self.give_up_at:
                    self.gave_up(n)
                    break
                s = self.new_submission(n, via, rcpts, attempt)
                attempt += 1
                try:
                    s.stage = "connect"
                    if conn is None:
                        conn = smtplib.SMTP(self.inst.host, self.inst.port, timeout=15)
                        conn.ehlo("client.crash.test")
                    s.stage = "mail"
                    code, text = conn.mail(SENDER)
                    if code != 250:
                        raise smtplib.SMTPResponseException(code, text)
                    s.stage = "rcpt"
                    for r in rcpts:
                        code, text = conn.rcpt(r)
                        if code not in (250, 251):
                            raise smtplib.SMTPResponseException(code, text)
                    s.stage = "data"
                    code, text = conn.data(message_bytes(s.sid, rcpts, body_lines, "\r\n"))
                    if code == 250:
                        s.acked = True
                        m = QUEUED_AS_RE.search(text.decode(errors="replace"))
                        s.queue_id = m.group(1) if m else None
                        break
                    raise smtplib.SMTPResponseException(code, text)
                except (smtplib.SMTPException, OSError) as e:
                    s.error = f"{type(e).__name__}: {e}"
                    try:
                        if conn is not None:
                            conn.close()
                    except Exception:
                        pass
                    conn = None
                    self.stop_event.wait(0.1)
        if conn is not None:
            try:
                conn.quit()
            except Exception:
                pass

    def sendmail_worker(self):
        for n, via, rcpts, body_lines in self.sendmail_plan:
            if self.stop_event.is_set():
                return
            self.wait_until_due(n)
            attempt = 0
            while not self.stop_event.is_set():
                if time.time() > self.give_up_at:
                    self.gave_up(n)
                    break
                s = self.new_submission(n, via, rcpts, attempt)
                attempt += 1
                s.stage = "sendmail"
                rc, out = run_child([self.inst.tern_bin, "-c", str(self.inst.dir), "sendmail",
                                     "-i", "-f", SENDER, *rcpts],
                                    message_bytes(s.sid, rcpts, body_lines, "\n"))
                if rc == 0:
                    s.acked = True
                    break
                s.error = f"sendmail exit {rc}: {out.strip()[:200]}"
                self.stop_event.wait(0.2)


# ---------------------------------------------------------------- counting

def local_deliveries(inst):
    """(submission id, rcpt) -> count over every Maildir's new/ (and cur/),
    the whole body lines of each copy, the other messages (bounces,
    notices) and the number of files left in tmp/ (written, never linked:
    the Maildir norm after a crash)."""
    counts, body_lines, other, tmp_left = Counter(), {}, [], 0
    if not inst.mail.is_dir():
        return counts, body_lines, other, tmp_left
    for user_dir in sorted(inst.mail.iterdir()):
        maildir = user_dir / "Maildir"
        tmp = maildir / "tmp"
        if tmp.is_dir():
            tmp_left += sum(1 for _ in tmp.iterdir())
        for sub in ("new", "cur"):
            d = maildir / sub
            if not d.is_dir():
                continue
            for f in d.iterdir():
                data = f.read_bytes()
                head = data.split(b"\n\n", 1)[0]
                m = MESSAGE_ID_RE.search(head)
                to = DELIVERED_TO_RE.search(head)
                if not m or not to:
                    other.append(f)
                    continue
                key = (m.group(1).decode(), to.group(1).decode().lower())
                counts[key] += 1
                body_lines.setdefault(key, []).append(len(BODY_LINE_RE.findall(data)))
    return counts, body_lines, other, tmp_left


class TrialResult:
    def __init__(self, seed):
        self.seed = seed
        self.acked = self.acked_smtp = self.acked_sendmail = 0
        self.submitted = 0
        self.lost = []                 # submissions
        self.damaged = []              # descriptions of acknowledged copies with missing lines
        self.deliveries = 0            # distinct (sid, rcpt) delivered
        self.extra_deliveries = 0      # deliveries beyond the first
        self.extra_local = 0           # of those, into Maildirs
        self.extra_relayed = 0         # of those, to the peer
        self.max_copies = 0            # one crash should never make more than 2
        self.unacked_delivered = 0
        self.unacked_partial = []      # never acknowledged, delivered to some recipients only
        self.holes = []                # "dir/name"
        self.other_mail = 0
        self.foreign_relay = 0
        self.unknown_ids = set()
        self.maildir_tmp = 0
        self.recovered = 0             # queue files the restarted queue found
        self.incoming_removed = 0      # unfinished incoming files it removed
        self.cut_off = 0               # submissions the kill interrupted
        self.gave_up = 0
        self.kill_at = None
        self.window = None
        self.drain_seconds = None
        self.drained = False
        self.stop_status = None
        self.seconds = 0.0
        self.details = []              # text shown under the trial line


def count(result, load, inst, peer):
    local, local_lines, other, tmp_left = local_deliveries(inst)
    relayed, relayed_lines, foreign = peer.snapshot()
    delivered = local + relayed
    result.other_mail = len(other)
    result.foreign_relay = foreign
    result.maildir_tmp = tmp_left
    result.gave_up = len(load.failed_messages)
    subs = load.submissions
    result.submitted = len(subs)
    result.unknown_ids = {sid for sid, _ in delivered if sid not in subs}
    for (sid, rcpt), n in delivered.items():
        result.deliveries += 1
        result.extra_deliveries += n - 1
    result.max_copies = max(delivered.values(), default=0)
    result.extra_local = sum(n - 1 for n in local.values())
    result.extra_relayed = sum(n - 1 for n in relayed.values())
    for s in subs.values():
        got = [delivered.get((s.sid, r.lower()), 0) for r in s.rcpts]
        if s.acked:
            result.acked += 1
            if s.via == "smtp":
                result.acked_smtp += 1
            else:
                result.acked_sendmail += 1
            if not all(got):
                result.lost.append(s)
            # a copy that is there but cut short is lost mail too
            for r in s.rcpts:
                key = (s.sid, r.lower())
                for where, lines in (("Maildir", local_lines), ("peer", relayed_lines)):
                    for found in lines.get(key, []):
                        if found != s.body_lines:
                            result.damaged.append(f"{s.sid} to {r} ({where}): {found} of "
                                                  f"{s.body_lines} body lines")
        elif any(got):
            result.unacked_delivered += 1
            if not all(got):
                result.unacked_partial.append(s)
    # what the kill interrupted: transactions cut off during DATA, sendmail
    # runs that failed, and what the restart found on disk
    result.cut_off = sum(1 for s in subs.values()
                         if not s.acked and s.error and s.stage in ("data", "sendmail"))
    after_restart = inst.log_text().split("daemon started", 2)[-1]
    m = re.search(r"queue: (\d+) messages recovered", after_restart)
    result.recovered = int(m.group(1)) if m else 0
    result.incoming_removed = after_restart.count("removing unfinished incoming file")
    for name in SPOOL_DIRS_THAT_MUST_EMPTY:
        result.holes += [f"{name}/{f}" for f in inst.spool_files(name)]
    return delivered


def describe_submission(s, delivered, inst, log):
    """Everything known about one submission: where each recipient's copy
    went, its queue id, every log line about it, and its file if still there."""
    qid = s.queue_id
    if not qid:
        m = re.search(r"\]: ([0-9A-Z]+): message-id=<" + re.escape(s.sid) + "@crash.test>", log)
        qid = m.group(1) if m else None
    lines = [f"      {s.sid} via {s.via}, acknowledged={s.acked}, queue id {qid or '?'}"
             + (f", last error {s.error}" if s.error else "")]
    for r in s.rcpts:
        lines.append(f"        {r}: delivered {delivered.get((s.sid, r.lower()), 0)} time(s)")
    if qid:
        for name in SPOOL_DIRS_THAT_MUST_EMPTY:
            if qid in inst.spool_files(name):
                lines.append(f"        file still in spool/{name}/{qid}")
        for line in log.splitlines():
            if qid in line:
                lines.append(f"        log: {line}")
    return "\n".join(lines)


def explain(result, opts, inst, delivered):
    """The text under a trial's line: every loss in full, and anything else
    that deserves a look (holes, partial deliveries, fatal log lines)."""
    log = inst.log_text()
    if result.lost:
        result.details.append(f"    LOST {len(result.lost)} acknowledged submission(s):")
        result.details += [describe_submission(s, delivered, inst, log) for s in result.lost]
    if result.damaged:
        result.details.append(f"    DAMAGED {len(result.damaged)} acknowledged cop(ies):")
        result.details += [f"      {d}" for d in result.damaged[:20]]
    if result.unacked_partial:
        result.details.append("    never acknowledged, delivered to only some recipients:")
        result.details += [describe_submission(s, delivered, inst, log) for s in result.unacked_partial]
    if result.holes:
        restarted = inst.start_times[-1]
        result.details.append(f"    holes: {', '.join(result.holes)} (restart at {restarted:.3f})")
        for hole in result.holes:
            try:
                mtime = (inst.spool / hole).stat().st_mtime
                result.details.append(f"      {hole}: modified at {mtime:.3f}, {restarted - mtime:.3f}s before "
                                      f"the restart, size {(inst.spool / hole).stat().st_size}")
            except OSError:
                pass
            name = hole.split("/", 1)[1]
            result.details += [f"      log: {l}" for l in log.splitlines() if name in l][:10]
    if result.unknown_ids:
        result.details.append(f"    delivered ids never submitted: {sorted(result.unknown_ids)[:10]}")
    if result.other_mail or result.foreign_relay:
        result.details.append(f"    other mail: {result.other_mail} local (bounces?), "
                              f"{result.foreign_relay} relayed without our Message-ID")
    if result.gave_up:
        result.details.append(f"    {result.gave_up} message(s) never acknowledged after "
                              f"{opts.give_up_seconds:.0f}s of retries")
    trouble = [l for l in log.splitlines() if re.search(r"\b(fatal|panic)\b", l)]
    if trouble:
        result.details.append("    fatal/panic lines in the log:\n"
                              + "".join(f"      | {l}\n" for l in trouble[:20]))
    if result.stop_status not in (0, None):
        result.details.append(f"    tern serve exited {result.stop_status} on SIGTERM")
    if result.lost or result.damaged or not result.drained:
        # tern's stderr repeats the log; what else it printed is what matters
        stderr_only = [l for l in inst.stderr_path.read_text(errors="replace").splitlines()
                       if " tern/" not in l]
        result.details.append("    log tail:\n" + tail(inst.maillog, 30) + "    stderr, other than log lines:\n"
                              + "".join(f"      | {l}\n" for l in stderr_only[-20:]))


# ---------------------------------------------------------------- one trial

def run_trial(opts, number, seed):
    rng = random.Random(seed)
    result = TrialResult(seed)
    started = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="tern-crash-"))
    with registry_lock:
        live_dirs.add(base)
    base.chmod(0o755)             # tern's unprivileged processes must traverse it
    keep = False
    peer = inst = load = None
    try:
        relay_host = f"127.0.0.{rng.randint(16, 250)}"
        peer = RecordingPeer(relay_host, free_port(relay_host), opts.peer_delay, seed)
        inst = TernInstance(opts.tern, base, relay_host, peer.port, opts.queue_sync_method)
        inst.start()
        log_phase(opts.verbose, f"tern on {inst.host}:{inst.port}, peer on {relay_host}:{peer.port}, dir {base}")

        # the crash window: the paced submissions and the deliveries behind them
        result.window = opts.load_seconds + opts.tail_seconds
        result.kill_at = rng.uniform(0, result.window)
        restart_delay = rng.uniform(0, opts.max_restart_delay)
        load = Load(rng, inst, f"t{number}s{seed}", opts.messages, opts.load_seconds, opts.sendmail_share,
                    opts.smtp_clients, time.time() + opts.load_seconds + opts.give_up_seconds)
        load.start()
        time.sleep(max(0.0, load.t0 + result.kill_at - time.monotonic()))
        inst.kill9()
        log_phase(opts.verbose, f"killed at {result.kill_at:.2f}s; restarting in {restart_delay:.2f}s")
        time.sleep(restart_delay)
        inst.start()
        if not load.join(opts.load_seconds + opts.give_up_seconds + 30):
            load.stop_event.set()
            load.join(20)
            raise HarnessError("client threads did not finish")
        log_phase(opts.verbose, "load done; waiting for the queue to empty")

        drain_start = time.monotonic()
        while time.monotonic() - drain_start < opts.drain_timeout:
            listing = inst.queue_listing()
            if (listing == "Mail queue is empty\n"
                    and not any(inst.spool_files(d) for d in ("queue", "hold", "maildrop"))):
                result.drained = True
                break
            time.sleep(0.25)
        result.drain_seconds = time.monotonic() - drain_start
        if not result.drained:
            result.details.append("    the queue did not empty within "
                                  f"{opts.drain_timeout:.0f}s:\n" + "".join(
                                      f"      | {l}\n" for l in (inst.queue_listing() or "").splitlines()[:40]))
        result.stop_status = inst.stop()

        delivered = count(result, load, inst, peer)
        explain(result, opts, inst, delivered)
        keep = opts.keep or (opts.keep_failed and bool(result.lost or result.damaged))
        if keep:
            result.details.append(f"    kept {base} for inspection")
    finally:
        if load:
            load.stop_event.set()
        if inst:
            inst.stop(timeout=20)
        if load:
            load.join(20)
        if peer:
            peer.stop()
        with registry_lock:
            live_dirs.discard(base)
        if not keep:
            shutil.rmtree(base, ignore_errors=True)
    result.seconds = time.monotonic() - started
    return result


def trial_line(number, total, r):
    rate = r.extra_deliveries / r.deliveries if r.deliveries else 0.0
    parts = [f"trial {number:>4}/{total}",
             f"seed={r.seed}",
             f"kill@{r.kill_at:.2f}/{r.window:.1f}s",
             f"acked={r.acked} (smtp {r.acked_smtp}, sendmail {r.acked_sendmail}) of {r.submitted} attempts",
             f"cut={r.cut_off} recovered={r.recovered} incoming-removed={r.incoming_removed}",
             f"lost={len(r.lost)}" + (f" DAMAGED={len(r.damaged)}" if r.damaged else ""),
             f"dup={r.extra_deliveries}/{r.deliveries} ({rate:.1%}; local {r.extra_local}, relayed {r.extra_relayed})",
             f"unacked-delivered={r.unacked_delivered}" + (f" COPIES={r.max_copies}" if r.max_copies > 2 else ""),
             f"holes={len(r.holes)}",
             f"maildir-tmp={r.maildir_tmp}",
             f"drain={r.drain_seconds:.1f}s" if r.drained else "NOT-DRAINED",
             f"{r.seconds:.1f}s"]
    return "  ".join(parts)


# ---------------------------------------------------------------- cleanup

def cleanup_everything():
    """Kills what this run started (by PID and by the instances' own process
    groups) and removes its directories; used on Ctrl-C and at exit."""
    with registry_lock:
        instances, peers = list(live_instances), list(live_peers)
        children, dirs = list(live_children), list(live_dirs)
    for inst in instances:
        if inst.proc:
            try:
                os.killpg(inst.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            inst.proc.wait()
            inst.proc = None
    for child in children:
        try:
            child.kill()
        except ProcessLookupError:
            pass
    for peer in peers:
        peer.stop()
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=1)
    ap.add_argument("--seed", type=int, default=None,
                    help="seed of the first trial; trial i uses seed+i (default: from the clock)")
    ap.add_argument("--messages", type=int, default=80, help="messages per trial (default 80)")
    ap.add_argument("--smtp-clients", type=int, default=4, help="SMTP client threads (default 4)")
    ap.add_argument("--sendmail-share", type=float, default=0.25,
                    help="share of the messages submitted with sendmail (default 0.25)")
    ap.add_argument("--load-seconds", type=float, default=2.5,
                    help="the submissions are spread over this long (default 2.5)")
    ap.add_argument("--tail-seconds", type=float, default=0.5,
                    help="the crash window goes on this long after the last submission, "
                         "when only deliveries run (default 0.5)")
    ap.add_argument("--peer-delay", type=float, default=0.05,
                    help="the relay peer answers the final dot after up to this long (default 0.05)")
    ap.add_argument("--max-restart-delay", type=float, default=0.5,
                    help="the restart follows the kill after up to this long (default 0.5)")
    ap.add_argument("--give-up-seconds", type=float, default=40,
                    help="clients stop retrying a message this long after the load began (default 40)")
    ap.add_argument("--drain-timeout", type=float, default=60,
                    help="how long the restarted instance may take to empty its queue (default 60)")
    ap.add_argument("--budget", type=float, default=0,
                    help="start no trial after this many seconds (default: no limit)")
    ap.add_argument("--tern", default=str(DEFAULT_TERN), help="the tern binary (default build/tern)")
    ap.add_argument("--queue-sync-method", default=None, choices=["syncfs", "fsync", "journal"],
                    help="main.cf queue_sync_method of the instance (default: tern's, journal)")
    ap.add_argument("--keep-failed", action="store_true",
                    help="keep the directory of a trial that lost or damaged mail (default: removed)")
    ap.add_argument("--keep", action="store_true",
                    help="keep every trial's directory (for looking at logs while developing)")
    ap.add_argument("-v", "--verbose", action="store_true")
    opts = ap.parse_args()

    if os.geteuid() != 0:
        sys.exit("crash_test: run as root (tern starts as root and drops to its mail_owner)")
    if not os.access(opts.tern, os.X_OK):
        sys.exit(f"crash_test: {opts.tern} is not an executable (make build/tern)")
    base_seed = opts.seed if opts.seed is not None else int(time.time()) % 1000000

    # SIGTERM (make being stopped, a timeout) cleans up like Ctrl-C
    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    run_start = time.monotonic()
    print(f"crash trials: {opts.trials} x {opts.messages} messages over {opts.load_seconds:.1f}s, "
          f"{opts.smtp_clients} SMTP clients + sendmail ({opts.sendmail_share:.0%}), "
          f"seeds {base_seed}..{base_seed + opts.trials - 1}, tern {opts.tern}", flush=True)
    results = []
    harness_errors = 0
    try:
        for i in range(opts.trials):
            if opts.budget and results:
                elapsed = time.monotonic() - run_start
                per_trial = elapsed / len(results)
                if elapsed + per_trial > opts.budget:
                    print(f"time budget of {opts.budget:.0f}s reached: stopping after {len(results)} trials")
                    break
            try:
                r = run_trial(opts, i + 1, base_seed + i)
            except HarnessError as e:
                harness_errors += 1
                print(f"trial {i + 1:>4}/{opts.trials}  seed={base_seed + i}  HARNESS ERROR: {e}", flush=True)
                continue
            results.append(r)
            print(trial_line(i + 1, opts.trials, r), flush=True)
            for d in r.details:
                print(d, flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", flush=True)
        cleanup_everything()
        summarize(results, harness_errors, time.monotonic() - run_start)
        sys.exit(130)
    finally:
        cleanup_everything()
    lost = summarize(results, harness_errors, time.monotonic() - run_start)
    if lost:
        sys.exit(1)
    if harness_errors or not results:
        sys.exit(2)


def summarize(results, harness_errors, seconds):
    acked = sum(r.acked for r in results)
    lost = sum(len(r.lost) for r in results)
    damaged = sum(len(r.damaged) for r in results)
    deliveries = sum(r.deliveries for r in results)
    extra = sum(r.extra_deliveries for r in results)
    holes = sum(len(r.holes) for r in results)
    unacked = sum(r.unacked_delivered for r in results)
    not_drained = sum(1 for r in results if not r.drained)
    trials_with_dups = sum(1 for r in results if r.extra_deliveries)
    extra_local = sum(r.extra_local for r in results)
    extra_relayed = sum(r.extra_relayed for r in results)
    # a kill that found nothing in flight proves little; say how many did
    in_flight = sum(1 for r in results if r.recovered or r.cut_off or r.incoming_removed or r.holes)
    rate = extra / deliveries if deliveries else 0.0
    max_copies = max((r.max_copies for r in results), default=0)
    print(f"summary: trials={len(results)} acknowledged={acked} lost={lost} damaged={damaged} "
          f"duplicates={extra}/{deliveries} recipient deliveries ({rate:.2%}; local {extra_local}, "
          f"relayed {extra_relayed}; in {trials_with_dups} trials; at most {max_copies} copies) "
          f"kills-with-work-in-flight={in_flight} "
          f"holes={holes} unacked-delivered={unacked} not-drained={not_drained} "
          f"harness-errors={harness_errors} time={seconds:.0f}s", flush=True)
    if lost or damaged:
        lossy = [str(r.seed) for r in results if r.lost or r.damaged]
        print(f"LOSS: acknowledged mail was lost or damaged in trials with seeds {', '.join(lossy)}", flush=True)
    return lost + damaged


if __name__ == "__main__":
    main()
