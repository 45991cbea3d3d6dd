#!/usr/bin/env python3
"""tern vs Postfix, side by side, on this machine (`make bench`).

Starts one tern and one Postfix instance in a private temporary directory,
each on its own free port on 127.0.0.1, both delivering into Maildirs, and
drives them with Postfix's own load generator, smtp-source(1):

  * for 1 and 20 parallel sessions, and 1 KiB and 100 KiB messages:
    accepted msgs/s   = messages / wall time of smtp-source (every message
                        got its 250 and the sessions ended),
    delivered msgs/s  = messages / (time of the last link into Maildir/new -
                        start of smtp-source), taken from the ctime of the
                        delivered files, so nothing polls while timing;
    CPU ms/msg        = CPU time of the server's processes / messages, and
                        CPU time of the whole machine / messages (that one
                        includes the client, and the kernel threads that
                        do writeback for syncfs, which no process is
                        charged for; it is also hit by anything else that
                        runs on the machine meanwhile);
  * relay: both servers also have relayhost = [127.0.0.1]:PORT pointing
    at a Postfix smtp-sink(1) of their own (it accepts and discards all
    mail); smtp-source sends 1 KiB messages to RECIPIENT@relay.test, which
    neither server delivers itself, for 1 and 20 sessions:
    relayed msgs/s    = messages / (time the last message reached the
                        sink - start of smtp-source), as for delivered: at
                        least the wall time of smtp-source; the sink dumps
                        every message (-d) into a directory on tmpfs
                        (/dev/shm: no disk work, nothing for tern's syncfs
                        to flush), and the time is the newest ctime there;
                        completion is seen from the sink's own message
                        counter (-c), read at 20 Hz from its output file,
                        also on tmpfs;
    the count must be exact three ways: the sink's counter, the dumped
    files (with distinct Message-Ids, all for this run's recipient), and
    the server's own "status=sent" log lines for that recipient; the
    server's CPU is also given per process (per role for tern, whose
    processes are forks), with the connections it opened to the sink (its
    "status=sent" lines without "conn_use=") and any warnings it logged;
  * resident memory (sum of RSS and of PSS over every process of the
    instance) idle and with N connections held open after EHLO;
  * mailauth: what checking incoming mail (SPF, DKIM, DMARC) costs. Two
    more tern instances, identical but for smtpd_mail_authentication (yes
    or no), both with mynetworks = 192.0.2.0/24 (smtp-source's 127.0.0.1
    is outside it, so the checks apply) and dns_resolvers pointing at a
    private unbound serving bench/mailauth.zone, and bench/mailauth-tld.zone
    for "test." so that DMARC's Tree Walk meets NXDOMAIN at _dmarc.test as
    at a real top-level domain (SPF passes for 127.0.0.1
    for the MAIL FROM and HELO domain client.bench.test, DMARC p=none
    passes; the messages are unsigned, so dkim=none); 1 KiB messages to a
    Maildir, 20 sessions: accepted msgs/s and server CPU ms/msg, on and
    off. With Debian's opendkim installed (/usr/sbin/opendkim), also two
    more Postfix instances, one with opendkim (Mode v, on a UNIX socket)
    as smtpd_milters and one without; opendkim's CPU counts as Postfix's.
    The check is exact or the bench fails: tern with the checks on logs one
    "authentication: ... spf=pass (mailfrom=...) ... dmarc=pass" line per
    message, tern with them off none; every message delivered through
    opendkim has its Authentication-Results field, plain Postfix's none.
    The queries that reach unbound are counted (unbound-control): tern's
    libunbound answers repeats from its cache within the records' TTL;
  * capture: tern in capture mode (capture = yes: every accepted message is
    committed durably into queue_directory/capture/ before its 250, and
    listed by the capture process's HTTP JSON API on a free loopback port;
    nothing is delivered), one instance per queue_sync_method in
    BENCH_CAPTURE_SYNC (syncfs, the default, and fsync), 1 KiB messages
    from smtp-source with 20 sessions, each run to its own recipient, which
    is its inbox:
    captured msgs/s   = messages / wall time of smtp-source;
    then the API must list every message: GET /api/v1/messages?inbox=RCPT
    totals exactly the count (also 0.5 s later), /metrics'
    tern_capture_messages went up by exactly the count and nothing was
    pruned, or the bench fails (a run that lost a message has no figure);
    the time the API first listed them all is given too (polled at 50 Hz),
    and what the whole disk wrote while smtp-source ran (others' writes
    are flushed by tern's syncfs too).
    Alternated with the same runs of the local part's Maildir delivery by
    tern and Postfix (same size and sessions), as a reference measured on
    the same machine at the same time. Then the wait primitive: for each of
    BENCH_CAPTURE_WAIT_MSGS messages, sent one at a time on one SMTP
    session, a GET /api/v1/wait?inbox=...&after=CURSOR is parked first
    (until /metrics' tern_capture_waiting counts it), then the message is
    sent; the latency is the time from reading the 250 to the end of DATA
    to reading the wait's complete answer (one process sees both through
    select(), so it is negative when the answer came first), median and
    p95; each answer must be the message just sent;
  * spool: what issue 12 (a journal spool) is judged by, under three disk
    conditions (quiet, a noisy neighbour, right after 3,000 deletes), tern
    once per queue_sync_method in BENCH_SPOOL_METHODS against Postfix and
    smtp-sink, alternated; bench/bench_spool.py says what and how, and has
    its own settings (BENCH_SPOOL_*).

Each run uses its own recipient (its own Maildir), so the delivered count is
exact: a lost or duplicated message is reported. Runs alternate between the
two servers and are repeated (median reported) to share out background noise;
before each run the bench syncs the disk and waits (a little) for the
machine to be quiet. The mailboxes (about 1.3 GB with the defaults) are kept
until the end. The servers are stopped and the directory (under $TMPDIR,
default /tmp: it must be a real disk, not tmpfs) removed at the end, also on
error or Ctrl-C, and so are the sinks and their directory in /dev/shm.
Nothing here touches port 25 or the system's Postfix: the Postfix
instance has its own config directory, queue and data directory.

Settings (environment): TERN_BIN, BENCH_SMALL_MSGS (2000), BENCH_LARGE_MSGS
(1000), BENCH_IDLE_CONNS (1000), BENCH_REPEAT (3), BENCH_SESSIONS ("1 20"),
BENCH_QUIET_WAIT (seconds to wait, before each run, for other work on the
machine to calm down below 15% CPU; 10),
BENCH_SMTP_SOURCE_OPTS (extra smtp-source options, e.g. "-d" to send every
message of a session over one connection), BENCH_KEEP=1 keeps the directory,
BENCH_JSON=FILE also writes the results as JSON, BENCH_RELAY_MSGS (2000),
BENCH_RELAY_SESSIONS (as BENCH_SESSIONS), BENCH_RELAY_SIZE (1024),
BENCH_ONLY (parts to run, comma-separated, of "local" (the Maildir runs),
"relay", "memory", "mailauth", "capture" and "spool"; default all six), BENCH_TIMEOUT (seconds
smtp-source may take, and then the deliveries or relays, before the bench
fails; 300), BENCH_MAILAUTH_MSGS (as BENCH_SMALL_MSGS),
BENCH_MAILAUTH_SESSIONS ("20"), BENCH_MAILAUTH_TTL (the zone's TTL, 300;
0 makes every check ask unbound), BENCH_CAPTURE_MSGS (as BENCH_SMALL_MSGS),
BENCH_CAPTURE_SESSIONS ("20"), BENCH_CAPTURE_SIZE (1024), BENCH_CAPTURE_SYNC
("syncfs fsync"), BENCH_CAPTURE_WAIT_MSGS (200; 0 leaves the latency out),
BENCH_CAPTURE_REFS (1; 0 leaves out the Maildir rows of tern and Postfix).
"""
import json
import os
import pwd
import re
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TERN_BIN = os.environ.get("TERN_BIN", str(REPO / "build" / "tern"))
SMTP_SOURCE = os.environ.get("SMTP_SOURCE", "/usr/sbin/smtp-source")
POSTFIX = os.environ.get("POSTFIX", "/usr/sbin/postfix")
SMTP_SINK = os.environ.get("SMTP_SINK", "/usr/sbin/smtp-sink")
SMALL_MSGS = int(os.environ.get("BENCH_SMALL_MSGS", "2000"))
LARGE_MSGS = int(os.environ.get("BENCH_LARGE_MSGS", "1000"))
IDLE_CONNS = int(os.environ.get("BENCH_IDLE_CONNS", "1000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
SESSIONS = [int(s) for s in os.environ.get("BENCH_SESSIONS", "1 20").split()]
QUIET_WAIT = float(os.environ.get("BENCH_QUIET_WAIT", "10"))
EXTRA_OPTS = os.environ.get("BENCH_SMTP_SOURCE_OPTS", "").split()
KEEP = os.environ.get("BENCH_KEEP") == "1"
JSON_OUT = os.environ.get("BENCH_JSON")
RELAY_MSGS = int(os.environ.get("BENCH_RELAY_MSGS", "2000"))
RELAY_SIZE = int(os.environ.get("BENCH_RELAY_SIZE", "1024"))
RELAY_SESSIONS = [int(s) for s in os.environ.get("BENCH_RELAY_SESSIONS",
                                                 " ".join(map(str, SESSIONS))).split()]
PARTS = ("local", "relay", "memory", "mailauth", "capture", "spool")
ONLY = [p for p in re.split(r"[,\s]+", os.environ.get("BENCH_ONLY", ",".join(PARTS))) if p]

UNBOUND = os.environ.get("UNBOUND", "/usr/sbin/unbound")
UNBOUND_CONTROL = os.environ.get("UNBOUND_CONTROL", "/usr/sbin/unbound-control")
OPENDKIM = os.environ.get("OPENDKIM", "/usr/sbin/opendkim")
MAILAUTH_MSGS = int(os.environ.get("BENCH_MAILAUTH_MSGS", str(SMALL_MSGS)))
MAILAUTH_SESSIONS = [int(s) for s in os.environ.get("BENCH_MAILAUTH_SESSIONS", "20").split()]
MAILAUTH_TTL = os.environ.get("BENCH_MAILAUTH_TTL")  # None: the zone file's (300)
MAILAUTH_SIZE = 1024
MAILAUTH_ZONE = Path(__file__).resolve().parent / "mailauth.zone"
# "test." itself, so that _dmarc.test gets NXDOMAIN as under a real TLD.
MAILAUTH_TLD_ZONE = Path(__file__).resolve().parent / "mailauth-tld.zone"
# Not 127.0.0.1, where smtp-source connects from: mail authentication only
# checks clients outside mynetworks (TEST-NET-1, RFC 5737).
MAILAUTH_NETWORKS = "192.0.2.0/24"

CAPTURE_MSGS = int(os.environ.get("BENCH_CAPTURE_MSGS", str(SMALL_MSGS)))
CAPTURE_SESSIONS = [int(s) for s in os.environ.get("BENCH_CAPTURE_SESSIONS", "20").split()]
CAPTURE_SIZE = int(os.environ.get("BENCH_CAPTURE_SIZE", "1024"))
# queue_sync_method of the capture instances: syncfs is tern's default.
CAPTURE_SYNC = os.environ.get("BENCH_CAPTURE_SYNC", "syncfs fsync").split()
CAPTURE_WAIT_MSGS = int(os.environ.get("BENCH_CAPTURE_WAIT_MSGS", "200"))
# The same-machine references: Postfix and tern delivering into a Maildir
# (the local part's rows), alternated with the capture runs; 0 leaves them out.
CAPTURE_REFS = os.environ.get("BENCH_CAPTURE_REFS", "1") != "0"

HOST = "127.0.0.1"
DOMAIN = "bench.test"
RELAY_DOMAIN = "relay.test"  # in no server's own domains: relayed to the sink
SIZES = [("1KiB", 1024, SMALL_MSGS), ("100KiB", 102400, LARGE_MSGS)]
DELIVERY_TIMEOUT = float(os.environ.get("BENCH_TIMEOUT", "300"))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


_PORTS_GIVEN = set()


def free_port():
    """A port of HOST free now, and never handed out before by this run: the
    ports are picked before the servers start, and the kernel may offer a
    closed one again."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if port not in _PORTS_GIVEN:
            _PORTS_GIVEN.add(port)
            return port


def wait_port(port, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=1) as s:
                s.settimeout(5)
                if s.recv(512).startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"nothing answers on {HOST}:{port}")


# ---------- process trees: memory and CPU ----------

def process_table():
    """{pid: ppid} for every process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        table[int(entry)] = int(fields[1])
    return table


def tree(root):
    table = process_table()
    children = {}
    for pid, ppid in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            out.append(pid)
            todo.extend(children.get(pid, []))
    return out, table


def tree_cpu_seconds(root):
    """CPU time of the live tree (every thread, in ns from schedstat) plus
    that of the children its processes have reaped (in clock ticks)."""
    pids, _ = tree(root)
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            fields = stat[stat.rindex(")") + 2:].split()
            total += (int(fields[13]) + int(fields[14])) / CLK_TCK  # cutime + cstime
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            pass  # exited meanwhile
    return total


def tree_cpu_detail(root):
    """{(pid, tid): CPU s} for every thread of the live tree, plus
    {(pid, "reaped"): CPU s} of the children each process has reaped, and
    {pid: comm}."""
    pids, _ = tree(root)
    cpu, comm = {}, {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            comm[pid] = stat[stat.index("(") + 1:stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            cpu[(pid, "reaped")] = (int(fields[13]) + int(fields[14])) / CLK_TCK
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    cpu[(pid, int(tid))] = int(f.read().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            pass  # exited meanwhile
    return cpu, comm


PF_KTHREAD = 0x00200000


def user_cpu_snapshot():
    """{pid: (start time, CPU ticks of the process and of the children it
    has reaped)} for every process that is not a kernel thread."""
    snap = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            v = stat[stat.rindex(")") + 2:].split()
            if int(v[6]) & PF_KTHREAD:
                continue
            snap[int(entry)] = (int(v[19]), sum(int(x) for x in v[11:15]))
        except (OSError, ValueError, IndexError):
            pass  # exited meanwhile
    return snap


def our_pids(roots):
    """The PIDs of the bench's own process tree and of the trees of roots
    (a server's, which may not be the bench's child: Postfix's master)."""
    return set(tree(os.getpid())[0]).union(*(tree(root)[0] for root in roots))


def foreign_cpu_seconds(before, after, ours):
    """CPU s that processes outside the PIDs ours (the bench's own trees, at
    the start and at the end) used between two user_cpu_snapshot()s: other people's work on a shared
    machine. A process that exited meanwhile is counted in its reaper's
    reaped-children time, less what it had used before; kernel threads
    (writeback, softirqs) are not counted: they are taken as ours."""
    ticks = 0
    for pid, (start, t) in after.items():
        if pid in ours:
            continue
        b = before.get(pid)
        ticks += t - b[1] if b and b[0] == start else t
    for pid, (start, t) in before.items():
        if pid not in ours and after.get(pid, (None,))[0] != start:
            ticks -= t
    return max(0, ticks) / CLK_TCK


EXITED = "processes that exited meanwhile"


def cpu_by_role(before, after, roles):
    """CPU s used between two tree_cpu_detail() snapshots, by role: the
    process's name in the log (tern's processes are forks, all "tern"),
    else its comm (Postfix's programs), with other threads apart. A process
    that exited meanwhile (Postfix's smtpd and smtp after max_use) shows up
    only in its parent's reaped-children time, which holds its whole life:
    its time before the run is taken off there, and all of it is put under
    EXITED. Returns ({label: s}, {name: processes that exited})."""
    out, exited = {}, {}
    for key, secs in after[0].items():
        pid, tid = key
        name = roles.get(pid) or after[1].get(pid, "?")
        label = (name if tid == pid else EXITED if tid == "reaped" else f"{name} (other threads)")
        out[label] = out.get(label, 0.0) + secs - before[0].get(key, 0.0)
    for key, secs in before[0].items():
        if key not in after[0]:
            out[EXITED] = out.get(EXITED, 0.0) - secs
            if key[1] == key[0]:
                name = roles.get(key[0]) or before[1].get(key[0], "?")
                exited[name] = exited.get(name, 0) + 1
    return out, exited


def tree_memory_kib(root):
    """(processes, sum of RSS, sum of PSS) in KiB over the tree."""
    pids, _ = tree(root)
    rss = pss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            pass
    return len(pids), rss, pss


# ---------- the two servers ----------

class Server:
    name = ""

    def __init__(self, base: Path, recipients, relay_port):
        self.base = base
        self.port = free_port()
        self.recipients = recipients
        self.mail = base / "mail"
        # All mail for other domains goes here (the server's own smtp-sink);
        # an IP literal in brackets: no MX and no address lookup.
        self.relayhost = f"[{HOST}]:{relay_port}"
        self.maillog = base / "maillog"

    def maildir_new(self, user):
        return self.mail / user / "Maildir" / "new"

    def maillog_size(self):
        try:
            return self.maillog.stat().st_size
        except FileNotFoundError:
            return 0

    def maillog_since(self, offset):
        try:
            with open(self.maillog, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def root_pid(self):
        raise NotImplementedError

    def cpu_roots(self):
        """The process trees whose CPU time counts as the server's."""
        return [self.root_pid()]


class Tern(Server):
    name = "tern"

    def __init__(self, base, recipients, relay_port, name=None, settings=None, binary=None):
        """settings: main.cf lines (name = value) to add or to replace;
        binary: another tern than TERN_BIN (the spool part's baseline)."""
        super().__init__(base, recipients, relay_port)
        self.proc = None
        if name:
            self.name = name
        self.settings = settings or {}
        self.binary = binary or TERN_BIN

    def write_config(self):
        """Makes the instance's directory with its main.cf and master.cf."""
        b = self.base
        b.mkdir(mode=0o755)
        text = (
            "# tern under `make bench`\n"
            f"myhostname = mail.{DOMAIN}\n"
            f"mydomain = {DOMAIN}\n"
            "myorigin = $mydomain\n"
            f"mydestination = $myhostname, localhost, {DOMAIN}\n"
            f"inet_interfaces = {HOST}\n"
            f"queue_directory = {b}/spool\n"
            f"maillog_file = {b}/maillog\n"
            f"local_mailbox_base = {b}/mail\n"
            "home_mailbox = Maildir/\n"
            "alias_maps =\n"
            "smtpd_client_connection_count_limit = 0\n"
            # The relay runs: the relayhost is an IP literal, so no DNS is
            # needed; should tern ask anyway, it asks the discard port.
            f"relayhost = {self.relayhost}\n"
            f"dns_resolvers = {HOST}:9\n")
        for key, value in self.settings.items():
            line = f"{key} = {value}\n"
            text, replaced = re.subn(rf"^{re.escape(key)} = .*\n", lambda _: line, text, flags=re.M)
            if not replaced:
                text += line
        (b / "main.cf").write_text(text)
        (b / "master.cf").write_text(f"{HOST}:{self.port} inet n - n - - smtpd\n")

    def start(self):
        b = self.base
        self.write_config()
        self.stderr = open(b / "stderr.log", "wb")
        self.proc = subprocess.Popen([self.binary, "-c", str(b), "serve"], stdout=self.stderr,
                                     stderr=self.stderr, start_new_session=True)
        wait_port(self.port)

    def root_pid(self):
        return self.proc.pid

    def stop(self):
        if not self.proc:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                log("tern did not stop on SIGTERM within 30 s; killing its process group")
        try:
            # Its own session and process group (start_new_session): only tern's.
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.proc = None
        self.stderr.close()

    def version(self):
        r = subprocess.run([self.binary, "version"], capture_output=True, text=True)
        out = (r.stdout or r.stderr).strip()
        return out.splitlines()[0] if r.returncode == 0 and out else "tern"


class Postfix(Server):
    name = "postfix"

    def __init__(self, base, recipients, relay_port, name=None, extra_main=""):
        """extra_main: main.cf lines added at the end (later lines win)."""
        super().__init__(base, recipients, relay_port)
        if name:
            self.name = name
        self.extra_main = extra_main
        self.etc = base / "etc"
        self.started = False
        self.master_pid = None

    def start(self):
        b, etc = self.base, self.etc
        b.mkdir(mode=0o755)
        etc.mkdir(mode=0o755)
        (b / "queue").mkdir(mode=0o755)
        # virtual(8) writes as this uid (it refuses root): nobody.
        nobody = pwd.getpwnam("nobody")
        self.mail.mkdir(mode=0o755)
        os.chown(self.mail, nobody.pw_uid, nobody.pw_gid)
        # The recipients of this bench, each its own Maildir; virtual(8) does
        # not allow regexp substitution, hence the explicit table.
        (etc / "vmailbox").write_text(
            "".join(f"{r}@{DOMAIN} {r}/Maildir/\n" for r in self.recipients))
        (etc / "main.cf").write_text(
            "# Postfix under `make bench`: its own instance, nothing shared with /etc/postfix\n"
            "compatibility_level = 3.6\n"
            f"myhostname = mail.{DOMAIN}\n"
            f"mydomain = {DOMAIN}\n"
            "myorigin = $mydomain\n"
            # bench.test is a virtual mailbox domain (Postfix's fastest path to a
            # Maildir); Postfix forbids listing it in mydestination as well.
            "mydestination = $myhostname, localhost\n"
            f"inet_interfaces = {HOST}\n"
            "inet_protocols = ipv4\n"
            f"queue_directory = {b}/queue\n"
            f"data_directory = {b}/data\n"
            "mail_owner = postfix\n"
            "setgid_group = postdrop\n"
            f"maillog_file = {b}/maillog\n"
            f"maillog_file_prefixes = {b}\n"
            "alias_maps =\n"
            "alias_database =\n"
            f"virtual_mailbox_domains = {DOMAIN}\n"
            f"virtual_mailbox_base = {self.mail}\n"
            f"virtual_mailbox_maps = texthash:{etc}/vmailbox\n"
            f"virtual_uid_maps = static:{nobody.pw_uid}\n"
            f"virtual_gid_maps = static:{nobody.pw_gid}\n"
            # Room for the idle-connection test: one smtpd process per client.
            f"default_process_limit = {IDLE_CONNS + 100}\n"
            "smtpd_client_connection_count_limit = 0\n"
            "smtpd_client_connection_rate_limit = 0\n"
            # The relay runs: other domains go to the default transport
            # (smtp) and the relayhost; no DNS at all (an IP literal in
            # brackets needs none, and nothing else may try).
            f"relayhost = {self.relayhost}\n"
            "smtp_dns_support_level = disabled\n"
            "smtp_host_lookup = native\n" + self.extra_main)
        # Postfix's stock master.cf minus what the bench does not use; no chroot.
        (etc / "master.cf").write_text(
            f"{HOST}:{self.port} inet n - n - {IDLE_CONNS + 100} smtpd\n"
            "pickup    unix  n - n 60    1 pickup\n"
            "cleanup   unix  n - n -     0 cleanup\n"
            "qmgr      unix  n - n 300   1 qmgr\n"
            "rewrite   unix  - - n -     - trivial-rewrite\n"
            "bounce    unix  - - n -     0 bounce\n"
            "defer     unix  - - n -     0 bounce\n"
            "trace     unix  - - n -     0 bounce\n"
            "verify    unix  - - n -     1 verify\n"
            "flush     unix  n - n 1000? 0 flush\n"
            "proxymap  unix  - - n -     - proxymap\n"
            "smtp      unix  - - n -     - smtp\n"
            "relay     unix  - - n -     - smtp\n"
            "error     unix  - - n -     - error\n"
            "retry     unix  - - n -     - error\n"
            "discard   unix  - - n -     - discard\n"
            "local     unix  - n n -     - local\n"
            "virtual   unix  - n n -     - virtual\n"
            "anvil     unix  - - n -     1 anvil\n"
            "scache    unix  - - n -     1 scache\n"
            "postlog   unix-dgram n - n - 1 postlogd\n")
        self.postfix("check")
        self.postfix("start")
        self.started = True
        pidfile = b / "queue" / "pid" / "master.pid"
        deadline = time.time() + 20
        while time.time() < deadline and not self.master_pid:
            try:
                self.master_pid = int(pidfile.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                time.sleep(0.1)
        if not self.master_pid:
            raise RuntimeError("Postfix wrote no master.pid")
        wait_port(self.port)

    def postfix(self, *args):
        r = subprocess.run([POSTFIX, "-c", str(self.etc), *args], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"postfix -c {self.etc} {' '.join(args)} failed:\n{r.stdout}{r.stderr}"
                               + self.log_tail())
        return r

    def log_tail(self):
        try:
            return "".join((self.base / "maillog").read_text(errors="replace").splitlines(True)[-20:])
        except OSError:
            return ""

    def root_pid(self):
        return self.master_pid

    def stop(self):
        if not self.started:
            return
        self.started = False
        pids, _ = tree(self.master_pid) if self.master_pid else ([], {})
        try:
            self.postfix("stop")
        except RuntimeError as e:
            log(str(e))
        deadline = time.time() + 30
        while time.time() < deadline and any(os.path.exists(f"/proc/{p}") for p in pids):
            time.sleep(0.1)
        for p in pids:  # only the processes of this instance, by PID
            if os.path.exists(f"/proc/{p}"):
                log(f"postfix process {p} still there after stop; killing it")
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def version(self):
        r = subprocess.run(["/usr/sbin/postconf", "-d", "-h", "mail_version"], capture_output=True,
                           text=True)
        return "Postfix " + r.stdout.strip()


class Sink:
    """One server's far end for the relay runs: smtp-sink(1), which accepts
    every message and throws it away. It dumps each message (-d) into a
    directory and keeps a running message count (-c), both on tmpfs so
    that they cost no disk work (and add nothing to tern's syncfs)."""

    def __init__(self, name, shm: Path, dump=True):
        """dump=False: no -d (nothing written per message; only the counter)."""
        self.name = name
        self.dump_messages = dump
        self.port = free_port()
        self.dump = shm / name  # smtp-sink creates it again when missing
        self.counters = shm / f"{name}.counters"
        self.proc = None

    def start(self):
        nobody = pwd.getpwnam("nobody")
        self.dump.mkdir(mode=0o755)
        os.chown(self.dump, nobody.pw_uid, nobody.pw_gid)  # -u nobody writes there
        self.out = open(self.counters, "wb")
        self.err = open(self.counters.with_suffix(".stderr"), "wb")
        # -c: "sess=N quit=N mesg=N\r" after every session, QUIT and ".";
        # -d DIR/m.: one file per message, DIR/m.RANDOMHEX.
        dump = ["-d", f"{self.dump}/m."] if self.dump_messages else []
        self.proc = subprocess.Popen([SMTP_SINK, "-c", "-u", "nobody", *dump,
                                      f"{HOST}:{self.port}", "256"],
                                     stdout=self.out, stderr=self.err, start_new_session=True)
        try:
            wait_port(self.port, timeout=10)
        except RuntimeError:
            raise RuntimeError(f"smtp-sink for {self.name} did not start: "
                               + self.counters.with_suffix(".stderr").read_text(errors="replace"))

    def messages(self):
        """The sink's count of messages received (".") since it started."""
        with open(self.counters, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 256))
            found = re.findall(rb"mesg=(\d+)\r", f.read())  # only complete records
        return int(found[-1]) if found else 0

    def cpu_seconds(self):
        return tree_cpu_seconds(self.proc.pid)

    def clear(self):
        """Removes the dumps of earlier runs (tmpfs: no disk work)."""
        try:
            for n in os.listdir(self.dump):
                os.unlink(self.dump / n)
        except FileNotFoundError:
            pass

    def dumps(self):
        try:
            return [self.dump / n for n in os.listdir(self.dump)]
        except FileNotFoundError:
            return []

    def stop(self):
        if not self.proc:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                log(f"smtp-sink {self.proc.pid} did not stop on SIGTERM; killing it")
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.out.close()
        self.err.close()


def tmpfs_dir():
    """A directory for the sinks on tmpfs (/dev/shm), else None."""
    dev_shm = "/dev/shm"
    if os.path.isdir(dev_shm) and filesystem_of(dev_shm)[1] == "tmpfs":
        return Path(tempfile.mkdtemp(prefix="tern-bench-sink-", dir=dev_shm))
    return None


# ---------- mail authentication: DNS and the milter ----------

def free_udp_tcp_port():
    """A port of HOST free for both TCP and UDP (unbound listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind((HOST, 0))
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind((HOST, port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no port free for both TCP and UDP")


class Unbound:
    """unbound serving bench/mailauth.zone ("bench.test.") authoritatively on
    a loopback port: every DNS answer of the mail authentication runs."""

    name = "unbound"

    def __init__(self, base: Path):
        self.dir = base
        self.port = free_udp_tcp_port()
        self.proc = None

    def start(self):
        d = self.dir
        d.mkdir(mode=0o755)
        for src, dst in ((MAILAUTH_ZONE, "bench.zone"), (MAILAUTH_TLD_ZONE, "test.zone")):
            zone = src.read_text()
            if MAILAUTH_TTL is not None:
                # On every record too: unbound reads "$TTL 0" as no $TTL (3600).
                zone = re.sub(r"^\$TTL .*$", f"$TTL {MAILAUTH_TTL}", zone, flags=re.M)
                zone = re.sub(r"^(\S+\s+)IN\s", rf"\g<1>{MAILAUTH_TTL} IN ", zone, flags=re.M)
            (d / dst).write_text(zone)
        (d / "unbound.conf").write_text(
            "# unbound under `make bench`: the bench.test zone, nothing else\n"
            "server:\n"
            f"    interface: {HOST}\n"
            f"    port: {self.port}\n"
            "    do-ip6: no\n"
            "    do-daemonize: no\n"
            '    chroot: ""\n'
            '    username: ""\n'
            f'    directory: "{d}"\n'
            f'    pidfile: "{d}/unbound.pid"\n'
            "    use-syslog: no\n"
            '    logfile: ""\n'
            "    verbosity: 0\n"
            "    num-threads: 1\n"
            "    access-control: 127.0.0.0/8 allow\n"
            # .test is answered by unbound itself (RFC 6761): hand it to the auth-zone.
            '    local-zone: "test." nodefault\n'
            "    do-not-query-localhost: no\n"
            # unbound-control reads the query counter through this socket.
            "remote-control:\n"
            "    control-enable: yes\n"
            f'    control-interface: "{d}/control.sock"\n'
            "    control-use-cert: no\n"
            "auth-zone:\n"
            '    name: "bench.test."\n'
            f'    zonefile: "{d}/bench.zone"\n'
            "    for-downstream: yes\n"
            "    for-upstream: yes\n"
            "    fallback-enabled: no\n"
            "auth-zone:\n"
            '    name: "test."\n'
            f'    zonefile: "{d}/test.zone"\n'
            "    for-downstream: yes\n"
            "    for-upstream: yes\n"
            "    fallback-enabled: no\n")
        self.log = open(d / "unbound.log", "wb")
        self.proc = subprocess.Popen([UNBOUND, "-d", "-c", str(d / "unbound.conf")],
                                     stdout=self.log, stderr=self.log, start_new_session=True)
        # The SOA of bench.test answers once the zone is loaded.
        query = (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                 b"\x05bench\x04test\x00\x00\x06\x00\x01")
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("unbound exited: " + (d / "unbound.log").read_text(errors="replace"))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(0.3)
                try:
                    s.sendto(query, (HOST, self.port))
                    data = s.recv(512)
                    if data[:2] == b"\x12\x34" and (data[3] & 0x0F) == 0:
                        return
                except OSError:
                    pass
            time.sleep(0.1)
        raise RuntimeError("unbound does not answer for bench.test")

    def cpu_seconds(self):
        return tree_cpu_seconds(self.proc.pid)

    def queries(self):
        """The queries unbound has answered since it started."""
        r = subprocess.run([UNBOUND_CONTROL, "-c", str(self.dir / "unbound.conf"), "stats_noreset"],
                           capture_output=True, text=True, timeout=30)
        m = re.search(r"^total\.num\.queries=(\d+)$", r.stdout, re.M)
        if r.returncode != 0 or not m:
            raise RuntimeError(f"unbound-control stats_noreset failed: {r.stdout}{r.stderr}")
        return int(m.group(1))

    def stop(self):
        if not self.proc:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                log(f"unbound {self.proc.pid} did not stop on SIGTERM; killing it")
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.log.close()


class OpenDKIM:
    """Debian's opendkim as a verifying milter (Mode v) on a UNIX socket
    (Debian's default kind), for a Postfix instance's smtpd_milters. It adds an Authentication-Results field to every message
    (AlwaysAddARHeader), so the bench can count that it saw each one."""

    name = "opendkim"

    def __init__(self, base: Path):
        self.dir = base
        self.socket = base / "opendkim.sock"
        self.proc = None

    def start(self):
        d = self.dir
        d.mkdir(mode=0o755)
        dkim_user = pwd.getpwnam("opendkim")
        os.chown(d, dkim_user.pw_uid, dkim_user.pw_gid)  # it makes its socket there
        (d / "opendkim.conf").write_text(
            "# opendkim under `make bench`: verify only\n"
            "Mode v\n"
            f"Socket local:{self.socket}\n"
            "UMask 000\n"
            "Background no\n"
            "Syslog no\n"
            "AlwaysAddARHeader yes\n"
            f"AuthservID mail.{DOMAIN}\n"
            "UserID opendkim\n"
            f"PidFile {d}/opendkim.pid\n")
        self.log = open(d / "opendkim.log", "wb")
        self.proc = subprocess.Popen([OPENDKIM, "-f", "-x", str(d / "opendkim.conf")],
                                     stdout=self.log, stderr=self.log, start_new_session=True)
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("opendkim exited: " + (d / "opendkim.log").read_text(errors="replace"))
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(1)
                    s.connect(str(self.socket))
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"opendkim does not listen on {self.socket}")

    def stop(self):
        if not self.proc:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                log(f"opendkim {self.proc.pid} did not stop on SIGTERM; killing it")
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.log.close()


class PostfixMilter(Postfix):
    """A Postfix instance whose smtpd hands every message to a milter; the
    milter's CPU time counts as the server's."""

    def __init__(self, base, recipients, relay_port, milter, name):
        super().__init__(base, recipients, relay_port, name=name, extra_main=(
            f"smtpd_milters = unix:{milter.socket}\n"
            "milter_default_action = tempfail\n"))
        self.milter = milter

    def cpu_roots(self):
        return [self.root_pid(), self.milter.proc.pid]


# ---------- measurements ----------

def count_new(path):
    try:
        return len(os.listdir(path))
    except FileNotFoundError:
        return 0


def cpu_totals():
    """(busy, busy + idle) clock ticks summed over all CPUs since boot."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:8]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def wait_quiet(max_wait):
    """Waits (at most max_wait s) until other work uses < 15% of the CPUs;
    returns the last reading."""
    deadline = time.time() + max_wait
    busy = background_busy_pct(1.0)
    while busy >= 15 and time.time() < deadline:
        busy = background_busy_pct(1.0)
    return busy


def smtp_source(server, rcpt, size, count, sessions):
    """Runs smtp-source against server; returns (start, end, client CPU s).
    Killed, and the bench fails, after DELIVERY_TIMEOUT."""
    cmd = [SMTP_SOURCE, "-s", str(sessions), "-l", str(size), "-m", str(count),
           "-f", f"sender@client.{DOMAIN}", "-t", rcpt, "-M", f"client.{DOMAIN}",
           *EXTRA_OPTS, f"{HOST}:{server.port}"]
    with tempfile.TemporaryFile() as out:
        t0 = time.time()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        # The watchdog kills smtp-source only while it is unreaped (a zombie
        # at worst), so its PID cannot have been reused: the wait below does
        # not reap (WNOWAIT) until the watchdog is off.
        lock, state = threading.Lock(), {"done": False, "killed": False}

        def watchdog():
            with lock:
                if not state["done"]:
                    state["killed"] = True
                    os.kill(proc.pid, signal.SIGKILL)
        timer = threading.Timer(DELIVERY_TIMEOUT, watchdog)
        timer.start()
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        t1 = time.time()
        with lock:
            state["done"] = True
        timer.cancel()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if state["killed"]:
            raise RuntimeError(f"{server.name}: smtp-source did not finish within "
                               f"{DELIVERY_TIMEOUT:.0f} s (BENCH_TIMEOUT); killed it")
        if proc.returncode != 0:
            out.seek(0)
            raise RuntimeError(f"{server.name}: smtp-source failed ({proc.returncode}): "
                               + out.read().decode(errors="replace"))
    return t0, t1, usage.ru_utime + usage.ru_stime


def throughput_run(server, user, size, count, sessions, prepare=None, exclude_roots=()):
    """prepare: called instead of the sync and the wait for quiet CPUs just
    before smtp-source starts; returns the other work's busy % it saw.
    exclude_roots: PIDs of process trees of the bench's own (a noisy
    neighbour) whose CPU is not "other work", read after prepare (which may
    fill the list in); reported as excluded_cpu_ms_per_msg (still inside
    machine_cpu_ms_per_msg)."""
    new = server.maildir_new(user)
    roots = server.cpu_roots()
    if prepare:
        busy = prepare()
    else:
        os.sync()  # start from a clean disk: no one else's dirty data in our syncs
        busy = wait_quiet(QUIET_WAIT)
    cpu0 = sum(tree_cpu_seconds(root) for root in roots)
    ex0 = sum(tree_cpu_seconds(root) for root in exclude_roots)
    users0 = user_cpu_snapshot()
    ours = our_pids(roots)
    stat0 = cpu_totals()
    disk0 = disk_written_bytes(server.base)
    t0, t1, client_cpu = smtp_source(server, f"{user}@{DOMAIN}", size, count, sessions)
    disk1 = disk_written_bytes(server.base)
    deadline = t1 + DELIVERY_TIMEOUT
    while count_new(new) < count:
        if time.time() > deadline:
            raise RuntimeError(f"{server.name}: only {count_new(new)} of {count} delivered "
                               f"to {new} after {DELIVERY_TIMEOUT:.0f} s")
        time.sleep(0.05)
    cpu1 = sum(tree_cpu_seconds(root) for root in roots)
    ex1 = sum(tree_cpu_seconds(root) for root in exclude_roots)
    stat1 = cpu_totals()
    users1 = user_cpu_snapshot()
    foreign = foreign_cpu_seconds(users0, users1, ours | our_pids(roots))
    # CPU time the rest of the machine used meanwhile (other people's work,
    # plus some of our own network softirq work that the kernel does not
    # charge to our processes): high values mark a disturbed run.
    busy_s = (stat1[0] - stat0[0]) / CLK_TCK
    other = max(0.0, busy_s - (cpu1 - cpu0) - client_cpu - (ex1 - ex0))
    capacity = (stat1[1] - stat0[1]) / CLK_TCK
    names = os.listdir(new)
    last = max(os.stat(new / n).st_ctime for n in names)
    time.sleep(0.5)  # anything extra (a duplicate) would show up now
    delivered = count_new(new)
    return {
        "accepted_s": t1 - t0,
        "delivered_s": max(last - t0, t1 - t0),
        "accepted_rate": count / (t1 - t0),
        "delivered_rate": count / max(last - t0, t1 - t0),
        "cpu_ms_per_msg": 1000.0 * (cpu1 - cpu0) / count,
        "delivered_files": delivered,
        "background_busy_pct": round(busy, 1),
        "client_cpu_ms_per_msg": 1000.0 * client_cpu / count,
        # Everything the machine did: the server, its kernel threads (syncfs
        # hands writeback to kworkers, fsync does it in the caller), the client.
        "machine_cpu_ms_per_msg": 1000.0 * busy_s / count,
        "excluded_cpu_ms_per_msg": 1000.0 * (ex1 - ex0) / count,
        # Other people's processes (not kernel threads) meanwhile.
        "foreign_cpu_ms_per_msg": 1000.0 * foreign / count,
        "other_cpu_pct": 100.0 * other / capacity if capacity else 0.0,
        # Everything written to the disk while smtp-source ran, by anyone:
        # other people's writes are flushed by tern's syncfs too.
        "disk_written_mb": (disk1 - disk0) / 1e6 if disk0 is not None and disk1 is not None else None,
    }


def log_summary(text, rcpt):
    """From a server's log: deliveries to rcpt that were sent (and how many of
    those opened a new connection), other results, warnings and errors."""
    sent = new_conns = 0
    other, problems = [], []
    for line in text.splitlines():
        if f"to=<{rcpt}>" in line and "status=" in line:
            if "status=sent" in line:
                sent += 1
                new_conns += "conn_use=" not in line
            else:
                other.append(line)
        elif re.search(r": (warning|error|fatal|panic): ", line):
            problems.append(line)
    return {"sent": sent, "new_connections": new_conns, "other": other, "problems": problems}


def relay_run(server, sink, user, count, sessions, prepare=None):
    """smtp-source -> server -> relayhost -> sink; timed until the sink has
    received every message. prepare: as for throughput_run."""
    rcpt = f"{user}@{RELAY_DOMAIN}"
    root = server.root_pid()
    sink.clear()
    if prepare:
        busy = prepare()
    else:
        os.sync()
        busy = wait_quiet(QUIET_WAIT)
    log0 = server.maillog_size()
    base = sink.messages()
    cpu0 = tree_cpu_detail(root)
    sink0 = sink.cpu_seconds()
    stat0 = cpu_totals()
    t0, t1, client_cpu = smtp_source(server, rcpt, RELAY_SIZE, count, sessions)
    deadline = t1 + DELIVERY_TIMEOUT
    while sink.messages() - base < count:
        if time.time() > deadline:
            s = log_summary(server.maillog_since(log0), rcpt)
            raise RuntimeError(
                f"{server.name}: the sink received {sink.messages() - base} of {count} relayed "
                f"messages after {DELIVERY_TIMEOUT:.0f} s (BENCH_TIMEOUT); the server logged "
                f"{s['sent']} sent and {len(s['other'])} other results; last of those and of "
                "its warnings:\n" + "\n".join((s["other"] + s["problems"])[-10:]))
        time.sleep(0.05)
    cpu1 = tree_cpu_detail(root)
    sink_cpu = sink.cpu_seconds() - sink0
    stat1 = cpu_totals()
    log_text = server.maillog_since(log0)
    roles = {int(pid): role for role, pid in re.findall(r" tern/(\w+)\[(\d+)\]:", log_text)}
    by_role, exited = cpu_by_role(cpu0, cpu1, roles)
    server_cpu = sum(by_role.values())
    busy_s = (stat1[0] - stat0[0]) / CLK_TCK
    other_cpu = max(0.0, busy_s - server_cpu - client_cpu - sink_cpu)
    capacity = (stat1[1] - stat0[1]) / CLK_TCK
    time.sleep(0.5)  # a duplicate would show up now
    received = sink.messages() - base
    files = sink.dumps()
    last = max(os.stat(f).st_ctime for f in files)
    ids, wrong_rcpt = set(), 0
    for f in files:
        head = f.read_bytes().split(b"\n\n", 1)[0].decode(errors="replace")
        m = re.search(r"^Message-Id: (\S+)", head, re.M | re.I)
        ids.add(m.group(1) if m else f.name)
        wrong_rcpt += f"<{rcpt}>" not in head
    # The servers log a delivery after the sink's 250: give them a moment.
    log_deadline = time.time() + 10
    while True:
        summary = log_summary(server.maillog_since(log0), rcpt)
        if summary["sent"] + len(summary["other"]) >= count or time.time() > log_deadline:
            break
        time.sleep(0.2)
    relayed_s = max(last - t0, t1 - t0)
    return {
        "accepted_s": t1 - t0,
        "relayed_s": relayed_s,
        "accepted_rate": count / (t1 - t0),
        "relayed_rate": count / relayed_s,
        # Often < accepted_s: the last message can reach the sink before
        # smtp-source has sent QUIT, had its reply and exited.
        "sink_last_s": last - t0,
        "cpu_ms_per_msg": 1000.0 * server_cpu / count,
        "cpu_ms_per_msg_by_process": {k: round(1000.0 * v / count, 4) for k, v in
                                      sorted(by_role.items(), key=lambda kv: -kv[1])},
        "processes_exited": exited,
        "client_cpu_ms_per_msg": 1000.0 * client_cpu / count,
        "sink_cpu_ms_per_msg": 1000.0 * sink_cpu / count,
        # Includes smtp-source and smtp-sink.
        "machine_cpu_ms_per_msg": 1000.0 * busy_s / count,
        "background_busy_pct": round(busy, 1),
        "other_cpu_pct": 100.0 * other_cpu / capacity if capacity else 0.0,
        # Exactness, three ways: what the sink counted, what it dumped (one
        # file per message, distinct Message-Ids, all to this recipient),
        # and what the server says it sent.
        "sink_received": received,
        "dump_files": len(files),
        "distinct_message_ids": len(ids),
        "wrong_recipient": wrong_rcpt,
        "log_sent": summary["sent"],
        "log_other_results": len(summary["other"]),
        "log_problems": summary["problems"][:20],
        "connections": summary["new_connections"],
    }


def relay_anomalies(r, count):
    """What is wrong with a relay run's counts, as text ("" if nothing)."""
    bad = []
    for key in ("sink_received", "dump_files", "distinct_message_ids", "log_sent"):
        if r[key] != count:
            bad.append(f"{key} {r[key]}")
    if r["wrong_recipient"]:
        bad.append(f"{r['wrong_recipient']} for another recipient")
    if r["log_other_results"]:
        bad.append(f"{r['log_other_results']} not sent")
    if r["log_problems"]:
        bad.append(f"{len(r['log_problems'])} warnings/errors in the log")
    return f"  !! {count} messages: " + ", ".join(bad) if bad else ""


# ---------- mail authentication on/off ----------

def auth_header_files(new):
    """How many delivered files in new carry an Authentication-Results field
    in their header."""
    n = 0
    for name in os.listdir(new):
        head = (new / name).read_bytes().split(b"\n\n", 1)[0]
        n += re.search(rb"^Authentication-Results:", head, re.M | re.I) is not None
    return n


def mailauth_check(srv, log_text, new, count):
    """Raises unless the run was checked exactly as its variant says: tern
    with the checks on logs one "authentication:" line per message, each
    with spf=pass for the MAIL FROM and dmarc=pass; tern with them off
    logs none; opendkim's Authentication-Results field is on every
    message Postfix delivered through it and on none of plain Postfix's.
    Returns what was counted."""
    if srv.name.startswith("tern"):
        lines = [ln for ln in log_text.splitlines() if ": authentication:" in ln]
        passing = [ln for ln in lines if " spf=pass (mailfrom=" in ln and " dmarc=pass" in ln]
        want = count if srv.name == "tern-on" else 0
        if len(lines) != want or len(passing) != want:
            raise RuntimeError(
                f"{srv.name}: {len(lines)} \"authentication:\" log lines ({len(passing)} with "
                f"spf=pass and dmarc=pass) for {count} messages, want {want}; first ones:\n"
                + "\n".join(([ln for ln in lines if ln not in passing] + lines)[:5]))
        return {"authentication_lines": len(lines), "passing": len(passing)}
    with_ar = auth_header_files(new)
    want = count if srv.name.endswith("+opendkim") else 0
    if with_ar != want:
        raise RuntimeError(f"{srv.name}: {with_ar} of {count} delivered messages have an "
                           f"Authentication-Results field, want {want}")
    return {"authentication_results_fields": with_ar}


def mailauth_part(work):
    """tern with mail authentication on and off (and, with opendkim
    installed, Postfix with and without an opendkim milter): accepted
    msgs/s and CPU per message. Returns ({(sessions, variant): [runs]},
    {variant: version}, variants)."""
    work.mkdir(mode=0o755)
    have_dkim = os.access(OPENDKIM, os.X_OK)
    if not have_dkim:
        log(f"bench: {OPENDKIM} missing (apt-get install opendkim): mailauth runs tern only")
    recipients = [f"ma{rep}-s{s}" for rep in range(REPEAT) for s in MAILAUTH_SESSIONS] + ["warmup"]
    unbound = Unbound(work / "unbound")
    # Both tern instances: the same DNS, and 127.0.0.1 (smtp-source) outside
    # mynetworks, so that only smtpd_mail_authentication tells them apart.
    common = {"dns_resolvers": f"{HOST}:{unbound.port}", "mynetworks": MAILAUTH_NETWORKS}
    servers = [Tern(work / "tern-on", recipients, 9, name="tern-on",
                    settings={**common, "smtpd_mail_authentication": "yes"}),
               Tern(work / "tern-off", recipients, 9, name="tern-off",
                    settings={**common, "smtpd_mail_authentication": "no"})]
    milter = None
    if have_dkim:
        milter = OpenDKIM(work / "opendkim")
        servers += [PostfixMilter(work / "postfix-opendkim", recipients, 9, milter,
                                  name="postfix+opendkim"),
                    Postfix(work / "postfix-plain", recipients, 9, name="postfix")]
    raw, versions = {}, {}
    try:
        unbound.start()
        log(f"bench: unbound for bench.test on {HOST}:{unbound.port}, pid {unbound.proc.pid}")
        if milter:
            milter.start()
            log(f"bench: opendkim (Mode v) on {milter.socket}, pid {milter.proc.pid}")
        for srv in servers:
            srv.start()
            versions[srv.name] = srv.version()
            log(f"bench: {srv.name} ({versions[srv.name]}) on {HOST}:{srv.port}, pid {srv.root_pid()}")
        for srv in servers:  # warm-up: processes spawned, tern's DNS cache filled
            off = srv.maillog_size()
            throughput_run(srv, "warmup", MAILAUTH_SIZE, 50, 5)
            mailauth_check(srv, wait_auth_log(srv, off, 50), srv.maildir_new("warmup"), 50)
        for rep in range(REPEAT):
            for s in MAILAUTH_SESSIONS:
                order = servers if rep % 2 == 0 else servers[::-1]
                for srv in order:
                    user = f"ma{rep}-s{s}"
                    off = srv.maillog_size()
                    dns0, q0 = unbound.cpu_seconds(), unbound.queries()
                    r = throughput_run(srv, user, MAILAUTH_SIZE, MAILAUTH_MSGS, s)
                    r["dns_cpu_ms_per_msg"] = 1000.0 * (unbound.cpu_seconds() - dns0) / MAILAUTH_MSGS
                    # Queries that reached unbound: tern's libunbound answers
                    # repeats from its cache for the records' TTL.
                    r["dns_queries_per_msg"] = (unbound.queries() - q0) / MAILAUTH_MSGS
                    if r["delivered_files"] != MAILAUTH_MSGS:
                        raise RuntimeError(f"{srv.name}: {r['delivered_files']} files delivered "
                                           f"for {MAILAUTH_MSGS} messages")
                    r.update(mailauth_check(srv, wait_auth_log(srv, off, MAILAUTH_MSGS),
                                            srv.maildir_new(user), MAILAUTH_MSGS))
                    raw.setdefault((s, srv.name), []).append(r)
                    log(f"bench: rep {rep + 1}/{REPEAT} mailauth 1KiB x{MAILAUTH_MSGS} sessions={s:<2} "
                        f"{srv.name:16} accepted {r['accepted_rate']:8.1f}/s "
                        f"delivered {r['delivered_rate']:8.1f}/s cpu {r['cpu_ms_per_msg']:.3f} ms/msg "
                        f"(machine {r['machine_cpu_ms_per_msg']:.2f}, unbound "
                        f"{r['dns_cpu_ms_per_msg']:.3f}, {r['dns_queries_per_msg']:.2f} queries/msg) (other work {r['background_busy_pct']:.0f}% "
                        f"before, {r['other_cpu_pct']:.0f}% during)")
    finally:
        for srv in servers + [milter, unbound]:
            if srv is None:
                continue
            try:
                srv.stop()
            except Exception as e:  # keep stopping the others
                log(f"bench: stopping {srv.name}: {e}")
    return raw, versions, [srv.name for srv in servers]


def wait_auth_log(srv, offset, count, timeout=10.0):
    """The server's log since offset, once it has count "authentication:"
    lines (tern with the checks on) or after a short wait for stragglers."""
    deadline = time.time() + (timeout if srv.name == "tern-on" else 0.5)
    while True:
        text = srv.maillog_since(offset)
        if text.count(": authentication:") >= count or time.time() > deadline:
            return text
        time.sleep(0.1)


# ---------- capture mode: captured msgs/s and the wait primitive ----------

class CaptureApi:
    """The capture process's HTTP JSON API on a loopback port."""

    def __init__(self, port):
        self.port = port

    def get(self, path, timeout=30):
        """(status, body bytes) of GET path, over a fresh connection."""
        with socket.create_connection((HOST, self.port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
                      "Connection: close\r\n\r\n".encode())
            buf = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        return http_parse(buf)

    def json(self, path):
        status, body = self.get(path)
        if status != 200:
            raise RuntimeError(f"capture API: GET {path}: {status} {body[:200]!r}")
        return json.loads(body)

    def metrics(self):
        status, body = self.get("/metrics")
        if status != 200:
            raise RuntimeError(f"capture API: GET /metrics: {status}")
        return {m.group(1).decode(): int(m.group(2))
                for m in re.finditer(rb"^(tern_capture_\w+) (\d+)$", body, re.M)}

    def listed(self, inbox):
        """How many messages GET /api/v1/messages lists for inbox (its total)."""
        return self.json(f"/api/v1/messages?inbox={inbox}&limit=1")["total"]


def disk_written_bytes(path):
    """Bytes written so far to the disk that holds path, by everyone
    (/proc/diskstats); None when it cannot be told."""
    dev = os.path.basename(os.path.realpath(filesystem_of(path)[0]))
    try:
        with open("/proc/diskstats") as f:
            for line in f:
                v = line.split()
                if v[2] == dev:
                    return int(v[9]) * 512
    except (OSError, IndexError, ValueError):
        pass
    return None


def http_parse(buf):
    """(status, body) of one complete HTTP/1.1 response in buf, or
    (None, b"") while it is incomplete (Content-Length decides)."""
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        return None, b""
    lines = head.split(b"\r\n")
    m = re.search(rb"^content-length:\s*(\d+)\s*$", head, re.M | re.I)
    if m and len(body) < int(m.group(1)):
        return None, b""
    return int(lines[0].split()[1]), body[:int(m.group(1))] if m else body


class TernCapture(Tern):
    """tern with capture = yes: every accepted message is committed into
    queue_directory/capture/ (durable before the 250) and listed by the
    capture process's API; nothing is delivered."""

    def __init__(self, base, sync_method):
        self.http_port = free_port()
        super().__init__(base, [], 9, name=f"tern-capture-{sync_method}", settings={
            "capture": "yes",
            "capture_http_address": f"{HOST}:{self.http_port}",
            # Every message of the part stays: pruning would hide a loss.
            "capture_max_messages": "10000000",
            "queue_sync_method": sync_method})
        self.sync_method = sync_method
        self.api = CaptureApi(self.http_port)

    def start(self):
        super().start()
        deadline = time.time() + 30
        while True:
            try:
                self.api.metrics()
                return
            except (OSError, RuntimeError):
                if time.time() > deadline:
                    raise RuntimeError(f"{self.name}: the capture API does not answer on "
                                       f"{HOST}:{self.http_port}")
                time.sleep(0.1)


def capture_run(server, inbox, size, count, sessions):
    """smtp-source -> tern in capture mode; captured msgs/s from smtp-source's
    wall time (each 250 comes after the message is durable in capture/),
    then every message must be listed by the API: exactly count in the
    run's inbox (its recipient), tern_capture_messages up by exactly count,
    nothing pruned. Anything else fails the bench."""
    api = server.api
    roots = server.cpu_roots()
    os.sync()
    busy = wait_quiet(QUIET_WAIT)
    m0 = api.metrics()
    cpu0 = sum(tree_cpu_seconds(root) for root in roots)
    stat0 = cpu_totals()
    disk0 = disk_written_bytes(server.base)
    t0, t1, client_cpu = smtp_source(server, inbox, size, count, sessions)
    disk1 = disk_written_bytes(server.base)
    # When the API lists them all (a poll every 20 ms, after smtp-source).
    deadline = t1 + DELIVERY_TIMEOUT
    while (n := api.listed(inbox)) < count:
        if time.time() > deadline:
            raise RuntimeError(f"{server.name}: the capture API lists {n} of {count} messages "
                               f"for {inbox} after {DELIVERY_TIMEOUT:.0f} s: messages lost")
        time.sleep(0.02)
    t_listed = time.time()
    cpu1 = sum(tree_cpu_seconds(root) for root in roots)
    stat1 = cpu_totals()
    busy_s = (stat1[0] - stat0[0]) / CLK_TCK
    other = max(0.0, busy_s - (cpu1 - cpu0) - client_cpu)
    capacity = (stat1[1] - stat0[1]) / CLK_TCK
    time.sleep(0.5)  # a duplicate would show up now
    listed = api.listed(inbox)
    m1 = api.metrics()
    gauge = m1["tern_capture_messages"] - m0["tern_capture_messages"]
    pruned = m1["tern_capture_pruned_total"] - m0["tern_capture_pruned_total"]
    if listed != count or gauge != count or pruned:
        raise RuntimeError(f"{server.name}: {count} messages sent to {inbox}, the API lists "
                           f"{listed}; tern_capture_messages went up by {gauge}, "
                           f"tern_capture_pruned_total by {pruned}")
    return {
        "captured_s": t1 - t0,
        "captured_rate": count / (t1 - t0),
        "listed_s": max(t_listed, t1) - t0,
        "listed_rate": count / (max(t_listed, t1) - t0),
        "cpu_ms_per_msg": 1000.0 * (cpu1 - cpu0) / count,
        "client_cpu_ms_per_msg": 1000.0 * client_cpu / count,
        "machine_cpu_ms_per_msg": 1000.0 * busy_s / count,
        "background_busy_pct": round(busy, 1),
        "other_cpu_pct": 100.0 * other / capacity if capacity else 0.0,
        "api_listed": listed,
        "metrics_messages_added": gauge,
        "pruned": pruned,
        "disk_written_mb": (disk1 - disk0) / 1e6 if disk0 is not None and disk1 is not None else None,
    }


class SmtpClient:
    """One SMTP session on a plain socket, to time the reply to the end of
    DATA exactly (smtplib hides when the reply was read)."""

    def __init__(self, port):
        self.s = socket.create_connection((HOST, port), timeout=30)
        self.buf = b""
        self.expect(b"220")
        self.command(f"EHLO client.{DOMAIN}", b"250")

    def read_reply(self):
        """The complete reply (all its lines) and the time its last byte came."""
        while True:
            lines = self.buf.split(b"\r\n")
            for i, ln in enumerate(lines[:-1]):
                if len(ln) >= 4 and ln[3:4] == b" ":
                    reply = b"\r\n".join(lines[:i + 1])
                    self.buf = b"\r\n".join(lines[i + 1:])
                    return reply, self.last_read
            chunk = self.s.recv(4096)
            if not chunk:
                raise RuntimeError("SMTP: the server closed the connection")
            self.last_read = time.time()
            self.buf += chunk

    def expect(self, code):
        reply, t = self.read_reply()
        if not reply.startswith(code):
            raise RuntimeError(f"SMTP: {reply!r}, expected {code.decode()}")
        return t

    def command(self, line, code):
        self.s.sendall(line.encode() + b"\r\n")
        return self.expect(code)

    def close(self):
        try:
            self.s.sendall(b"QUIT\r\n")
        except OSError:
            pass
        self.s.close()


def wait_latency(server, inbox, n, size):
    """The wait primitive: for each of n messages sent one at a time, a GET
    /api/v1/wait?inbox=INBOX&after=CURSOR is parked first (the bench waits
    until /metrics counts it: tern_capture_waiting), then the message is
    sent; latency = time the wait's answer was complete - time the 250 to
    the end of DATA was read, both seen by this one process through
    select(), so it is negative when the answer came first. Each answer
    must be the message just sent (by its Subject)."""
    api = server.api
    listing = api.json(f"/api/v1/messages?inbox={inbox}&limit=1")["messages"]
    cursor = listing[0]["cursor"] if listing else "0"
    smtp = SmtpClient(server.port)
    pad = "x" * 76 + "\r\n"
    samples, commits, totals = [], [], []
    try:
        for i in range(n):
            subject = f"wait {i}"
            head = (f"From: sender@client.{DOMAIN}\r\nTo: {inbox}\r\nSubject: {subject}\r\n"
                    f"Message-Id: <wait{i}.{time.time():.6f}@client.{DOMAIN}>\r\n\r\n")
            body = pad * max(1, (size - len(head)) // len(pad))
            smtp.command(f"MAIL FROM:<sender@client.{DOMAIN}>", b"250")
            smtp.command(f"RCPT TO:<{inbox}>", b"250")
            smtp.command("DATA", b"354")
            w = socket.create_connection((HOST, server.http_port), timeout=30)
            w.sendall(f"GET /api/v1/wait?inbox={inbox}&after={cursor}&count=1&timeout=30 HTTP/1.1\r\n"
                      f"Host: {HOST}:{server.http_port}\r\nConnection: close\r\n\r\n".encode())
            deadline = time.time() + 10
            while api.metrics()["tern_capture_waiting"] < 1:
                if time.time() > deadline:
                    raise RuntimeError(f"{server.name}: the wait request was never parked")
                time.sleep(0.001)
            sel = selectors.DefaultSelector()
            w.setblocking(False)
            sel.register(w, selectors.EVENT_READ, "http")
            t_dot = time.time()
            smtp.s.sendall((head + body).encode() + b".\r\n")
            sel.register(smtp.s, selectors.EVENT_READ, "smtp")
            t_250 = t_http = None
            http_buf = b""
            status = answer = None
            while t_250 is None or t_http is None:
                events = sel.select(timeout=30)
                if not events:
                    raise RuntimeError(f"{server.name}: no 250 or no wait answer within 30 s "
                                       f"(message {i})")
                for key, _ in events:
                    now = time.time()
                    if key.data == "smtp":
                        chunk = smtp.s.recv(4096)
                        if not chunk:
                            raise RuntimeError("SMTP: the server closed the connection")
                        smtp.buf += chunk
                        if re.search(rb"(^|\r\n)\d{3} [^\r\n]*\r\n", smtp.buf):
                            smtp.last_read = now
                            reply, _ = smtp.read_reply()
                            if not reply.startswith(b"250"):
                                raise RuntimeError(f"SMTP: end of DATA: {reply!r}")
                            t_250 = now
                            sel.unregister(smtp.s)
                    else:
                        chunk = w.recv(65536)
                        http_buf += chunk
                        status, answer = http_parse(http_buf)
                        if status is not None or not chunk:
                            t_http = now
                            sel.unregister(w)
            sel.close()
            w.close()
            if status != 200:
                raise RuntimeError(f"{server.name}: wait answered {status}: {http_buf[:300]!r}")
            msgs = json.loads(answer)["messages"]
            if [m["subject"] for m in msgs] != [subject]:
                raise RuntimeError(f"{server.name}: the wait answered {[m['subject'] for m in msgs]}, "
                                   f"expected [{subject!r}]")
            cursor = msgs[0]["cursor"]
            samples.append(t_http - t_250)
            commits.append(t_250 - t_dot)
            totals.append(t_http - t_dot)
    finally:
        smtp.close()
    listed = api.listed(inbox)
    if listed != n:
        raise RuntimeError(f"{server.name}: {n} messages sent to {inbox} one at a time, the API "
                           f"lists {listed}")
    return {"latency_s": samples, "commit_s": commits, "total_s": totals}


def percentile(values, p):
    """The p-th percentile (nearest rank) of values."""
    v = sorted(values)
    return v[min(len(v) - 1, max(0, -(-len(v) * p // 100) - 1))]


def capture_part(work):
    """tern in capture mode (one instance per queue_sync_method), and the
    Maildir rows of tern and Postfix as a reference on the same machine,
    alternated; then the wait primitive's latency. Returns (runs
    {(sessions, name): [run]}, waits {name: {...}}, versions)."""
    work.mkdir(mode=0o755)
    reps = [f"cm{rep}-s{s}" for rep in range(REPEAT) for s in CAPTURE_SESSIONS]
    servers = [TernCapture(work / f"tern-capture-{m}", m) for m in CAPTURE_SYNC]
    if CAPTURE_REFS:
        servers += [Tern(work / "tern-maildir", reps + ["warmup"], 9, name="tern-maildir"),
                    Postfix(work / "postfix", reps + ["warmup"], 9, name="postfix")]
    raw, waits, versions = {}, {}, {}

    def one(srv, user, count, sessions):
        if isinstance(srv, TernCapture):
            r = capture_run(srv, f"{user}@{DOMAIN}", CAPTURE_SIZE, count, sessions)
        else:
            r = throughput_run(srv, user, CAPTURE_SIZE, count, sessions)
            if r["delivered_files"] != count:
                raise RuntimeError(f"{srv.name}: {r['delivered_files']} files delivered for "
                                   f"{count} messages")
            r["captured_rate"] = r["accepted_rate"]  # the one column of the table
        return r

    try:
        for srv in servers:
            srv.start()
            versions[srv.name] = srv.version()
            log(f"bench: {srv.name} ({versions[srv.name]}) on {HOST}:{srv.port}"
                + (f", capture API on {HOST}:{srv.http_port}" if isinstance(srv, TernCapture) else "")
                + f", pid {srv.root_pid()}")
        for srv in servers:  # warm-up: processes spawned, caches filled
            one(srv, "warmup", 50, 5)
        for rep in range(REPEAT):
            for s in CAPTURE_SESSIONS:
                order = servers if rep % 2 == 0 else servers[::-1]
                for srv in order:
                    r = one(srv, f"cm{rep}-s{s}", CAPTURE_MSGS, s)
                    raw.setdefault((s, srv.name), []).append(r)
                    what = (f"captured {r['captured_rate']:8.1f}/s, all listed by the API at "
                            f"{r['listed_s']:.3f} s ({r['api_listed']} listed)"
                            if isinstance(srv, TernCapture) else
                            f"accepted {r['accepted_rate']:8.1f}/s delivered {r['delivered_rate']:8.1f}/s")
                    disk = ("" if r["disk_written_mb"] is None else
                            f", the disk wrote {r['disk_written_mb']:.0f} MB meanwhile")
                    log(f"bench: rep {rep + 1}/{REPEAT} capture {CAPTURE_SIZE}B x{CAPTURE_MSGS} "
                        f"sessions={s:<2} {srv.name:21} {what} cpu {r['cpu_ms_per_msg']:.3f} ms/msg "
                        f"(machine {r['machine_cpu_ms_per_msg']:.2f}{disk}) (other work "
                        f"{r['background_busy_pct']:.0f}% before, {r['other_cpu_pct']:.0f}% during)")
        if CAPTURE_WAIT_MSGS:
            for srv in servers:
                if not isinstance(srv, TernCapture):
                    continue
                os.sync()
                busy = wait_quiet(QUIET_WAIT)
                stat0 = cpu_totals()
                w = wait_latency(srv, f"wait@{DOMAIN}", CAPTURE_WAIT_MSGS, CAPTURE_SIZE)
                stat1 = cpu_totals()
                lat = [x * 1000 for x in w["latency_s"]]
                com = [x * 1000 for x in w["commit_s"]]
                tot = [x * 1000 for x in w["total_s"]]
                w = {"messages": CAPTURE_WAIT_MSGS,
                     "latency_ms": {"median": statistics.median(lat), "p95": percentile(lat, 95),
                                    "min": min(lat), "max": max(lat)},
                     "commit_ms": {"median": statistics.median(com), "p95": percentile(com, 95),
                                   "max": max(com)},
                     "data_to_answer_ms": {"median": statistics.median(tot), "p95": percentile(tot, 95),
                                           "max": max(tot)},
                     "background_busy_pct": round(busy, 1),
                     "machine_busy_pct": 100.0 * (stat1[0] - stat0[0]) / max(1, stat1[1] - stat0[1]),
                     "samples_ms": lat}
                waits[srv.name] = w
                log(f"bench: {srv.name}: wait answered {w['latency_ms']['median']:.3f} ms after the "
                    f"250 (median of {CAPTURE_WAIT_MSGS}; p95 {w['latency_ms']['p95']:.3f}, "
                    f"min {w['latency_ms']['min']:.3f}, max {w['latency_ms']['max']:.3f}); end of DATA "
                    f"to 250 {w['commit_ms']['median']:.3f} ms (p95 {w['commit_ms']['p95']:.3f}), "
                    f"to the wait's answer {w['data_to_answer_ms']['median']:.3f} ms "
                    f"(p95 {w['data_to_answer_ms']['p95']:.3f}) "
                    f"(other work {busy:.0f}% before; CPUs {w['machine_busy_pct']:.0f}% busy during)")
    finally:
        for srv in servers:
            try:
                srv.stop()
            except Exception as e:  # keep stopping the others
                log(f"bench: stopping {srv.name}: {e}")
    return raw, waits, versions, [srv.name for srv in servers]


def hold_idle_connections(port, n):
    """Opens n SMTP sessions, each greeted and past EHLO; returns the sockets."""
    socks = []
    for i in range(n):
        s = socket.create_connection((HOST, port), timeout=30)
        socks.append(s)
        buf = b""
        for cmd in (None, b"EHLO client%d.%s\r\n" % (i, DOMAIN.encode())):
            if cmd:
                s.sendall(cmd)
                buf = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    raise RuntimeError(f"connection {i} closed by the server")
                buf += chunk
                lines = buf.split(b"\r\n")
                done = [ln for ln in lines[:-1] if len(ln) >= 4 and ln[3:4] == b" "]
                if done:
                    if not done[-1].startswith(b"2"):
                        raise RuntimeError(f"connection {i}: {done[-1]!r}")
                    break
    return socks


def memory_test(server, n):
    root = server.root_pid()
    idle = tree_memory_kib(root)
    t0 = time.time()
    socks = hold_idle_connections(server.port, n)
    setup = time.time() - t0
    time.sleep(2)
    busy = tree_memory_kib(root)
    for s in socks:
        try:
            s.sendall(b"QUIT\r\n")
        except OSError:
            pass
        s.close()
    return {"idle": idle, "conns": busy, "setup_s": setup}


# ---------- report ----------

def sessions_text(n):
    return f"{n} session" + ("" if n == 1 else "s")


def fmt_rate(x):
    return f"{x:9.1f}"


def machine_info():
    info = {}
    info["nproc"] = os.cpu_count()
    with open("/proc/meminfo") as f:
        info["mem_total_mib"] = int(f.readline().split()[1]) // 1024
    info["kernel"] = os.uname().release
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        info["cpu"] = "?"
    with open("/proc/loadavg") as f:
        info["loadavg"] = f.read().split()[:3]
    info["background_busy_pct"] = round(background_busy_pct(), 1)
    return info


def background_busy_pct(seconds=2.0):
    """How busy the CPUs are with other work, measured before we start: the
    figures are only meaningful on an otherwise idle machine."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]
    a = sample()
    time.sleep(seconds)
    b = sample()
    total = b[0] - a[0]
    return 100.0 * (1 - (b[1] - a[1]) / total) if total else 0.0


def filesystem_of(path):
    """(device, type, mount options) of the file system holding path."""
    best = ("?", "?", "?", "")
    real = os.path.realpath(path)
    with open("/proc/mounts") as f:
        for line in f:
            dev, mnt, fstype, opts = line.split()[:4]
            mnt = mnt.replace("\\040", " ")
            if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best[3]):
                best = (dev, fstype, opts, mnt)
    return best[:3]


def raise_fd_limit():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, min(hard, 65536), IDLE_CONNS * 2 + 256)
    if want > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


def main():
    unknown = [p for p in ONLY if p not in PARTS]
    if unknown or not ONLY:
        sys.exit(f"bench: BENCH_ONLY: unknown part {' '.join(unknown)}; "
                 f"choose from {', '.join(PARTS)}")
    for path in ((TERN_BIN, SMTP_SOURCE, POSTFIX)
                 + ((SMTP_SINK,) if "relay" in ONLY or "spool" in ONLY else ())
                 + ((UNBOUND, UNBOUND_CONTROL) if "mailauth" in ONLY else ())):
        if not os.access(path, os.X_OK):
            sys.exit(f"bench: {path} missing (make build/tern; apt-get install postfix)")
    if os.geteuid() != 0:
        sys.exit("bench: run as root: a Postfix instance can only be started by root")

    raise_fd_limit()  # inherited by both servers: 1,000 connections need it
    results = {"machine": machine_info(), "parts": ONLY, "runs": [], "relay": [], "memory": {},
               "mailauth": [], "capture": {}, "versions": {}}
    if results["machine"]["background_busy_pct"] > 10:
        log(f"bench: warning: the CPUs are {results['machine']['background_busy_pct']:.0f}% busy "
            "with other work; the figures will be low and noisy")
    work = Path(tempfile.mkdtemp(prefix="tern-bench-"))
    work.chmod(0o755)  # tern's and Postfix's unprivileged processes traverse it
    results["machine"]["filesystem"] = filesystem_of(work)
    if results["machine"]["filesystem"][1] in ("tmpfs", "ramfs"):
        log(f"bench: warning: {work} is on {results['machine']['filesystem'][1]}: syncs cost "
            "nothing there; set TMPDIR to a directory on a real disk")
    shm = tmpfs_dir() if "relay" in ONLY else None
    if "relay" in ONLY and not shm:
        log("bench: warning: no tmpfs at /dev/shm: the sinks dump onto the disk under test")
    sink_dir = shm or work / "sinks"
    if shm:
        shm.chmod(0o755)  # smtp-sink runs as nobody
    else:
        sink_dir.mkdir(mode=0o755)
    runs = [(label, size, count, s) for s in SESSIONS for (label, size, count) in SIZES]
    if "local" not in ONLY:
        runs = []
    relay_runs = RELAY_SESSIONS if "relay" in ONLY else []
    recipients = [f"r{rep}-s{s}-{label.lower()}" for rep in range(REPEAT) for (label, _, _, s) in runs]
    recipients += ["warmup"]
    sinks = {name: Sink(name, sink_dir) for name in ("tern", "postfix")}
    servers = [Tern(work / "tern", recipients, sinks["tern"].port),
               Postfix(work / "postfix", recipients, sinks["postfix"].port)]
    if not any(p in ONLY for p in ("local", "relay", "memory")):
        servers = []  # the mailauth part starts its own
    mailauth_raw, mailauth_variants = {}, []
    capture_raw, capture_waits, capture_variants = {}, {}, []
    spool = None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # runs the cleanup below
    try:
        if relay_runs:
            for sink in sinks.values():
                sink.start()
                log(f"bench: smtp-sink for {sink.name} on {HOST}:{sink.port}, pid {sink.proc.pid}, "
                    f"dumps in {sink.dump}")
        for srv in servers:
            srv.start()
            log(f"bench: {srv.name} ({srv.version()}) on {HOST}:{srv.port}, pid {srv.root_pid()}")
        results["versions"] = {srv.name: srv.version() for srv in servers}
        if runs:
            for srv in servers:  # warm-up: processes spawned, caches filled
                throughput_run(srv, "warmup", 1024, 50, 5)

        raw = {}
        for rep in range(REPEAT):
            for (label, size, count, s) in runs:
                order = servers if rep % 2 == 0 else servers[::-1]
                for srv in order:
                    user = f"r{rep}-s{s}-{label.lower()}"
                    r = throughput_run(srv, user, size, count, s)
                    # The mailbox stays until the end: deleting 100 MB here
                    # (on a file system mounted with `discard`, every unlink
                    # discards synchronously) would disturb the next run.
                    raw.setdefault((label, s, srv.name), []).append(r)
                    log(f"bench: rep {rep + 1}/{REPEAT} {label:>6} x{count} sessions={s:<2} "
                        f"{srv.name:7} accepted {r['accepted_rate']:8.1f}/s "
                        f"delivered {r['delivered_rate']:8.1f}/s cpu {r['cpu_ms_per_msg']:.2f} ms/msg "
                        f"(machine {r['machine_cpu_ms_per_msg']:.2f}) "
                        f"(other work {r['background_busy_pct']:.0f}% before, "
                        f"{r['other_cpu_pct']:.0f}% during)"
                        + ("" if r["delivered_files"] == count else
                           f"  !! {r['delivered_files']} files for {count} messages"))

        relay_raw = {}
        if relay_runs:
            for srv in servers:  # warm-up: smtp clients spawned, connections made
                relay_run(srv, sinks[srv.name], "warmup", 50, 5)
        for rep in range(REPEAT):
            for s in relay_runs:
                order = servers if rep % 2 == 0 else servers[::-1]
                for srv in order:
                    r = relay_run(srv, sinks[srv.name], f"r{rep}-s{s}-relay", RELAY_MSGS, s)
                    relay_raw.setdefault((s, srv.name), []).append(r)
                    log(f"bench: rep {rep + 1}/{REPEAT}  relay x{RELAY_MSGS} sessions={s:<2} "
                        f"{srv.name:7} accepted {r['accepted_rate']:8.1f}/s "
                        f"relayed {r['relayed_rate']:8.1f}/s (last in sink at "
                        f"{r['sink_last_s']:.3f} s, smtp-source done at {r['accepted_s']:.3f} s) "
                        f"cpu {r['cpu_ms_per_msg']:.2f} ms/msg "
                        f"(machine {r['machine_cpu_ms_per_msg']:.2f}, sink "
                        f"{r['sink_cpu_ms_per_msg']:.2f}) {r['connections']} connections "
                        f"(other work {r['background_busy_pct']:.0f}% before, "
                        f"{r['other_cpu_pct']:.0f}% during)" + relay_anomalies(r, RELAY_MSGS))
                    log("bench:   CPU ms/msg by process: " + ", ".join(
                        f"{k} {v:.3f}" for k, v in list(r["cpu_ms_per_msg_by_process"].items())[:8] if v >= 0.0005)
                        + "; exited meanwhile: " + (", ".join(
                            f"{n} {c}" for n, c in sorted(r["processes_exited"].items())) or "none"))
                    for line in r["log_problems"][:5]:
                        log(f"bench:   {srv.name} log: {line}")

        if "memory" in ONLY:
            for srv in servers:
                log(f"bench: {srv.name}: opening {IDLE_CONNS} idle connections")
                results["memory"][srv.name] = memory_test(srv, IDLE_CONNS)

        if "mailauth" in ONLY:
            mailauth_raw, versions, mailauth_variants = mailauth_part(work / "mailauth")
            results["versions"].update(versions)

        if "capture" in ONLY:
            capture_raw, capture_waits, versions, capture_variants = capture_part(work / "capture")
            results["versions"].update(versions)

        if "spool" in ONLY:
            import bench_spool  # bench/bench_spool.py: the part, with its own settings
            spool = bench_spool.spool_part(work / "spool")
            results["versions"].update(spool["versions"])
    finally:
        for srv in list(servers) + list(sinks.values()):
            try:
                srv.stop()
            except Exception as e:  # keep stopping the others
                log(f"bench: stopping {srv.name}: {e}")
        if KEEP:
            log(f"bench: kept {work}" + (f" and {shm}" if shm else ""))
        else:
            shutil.rmtree(work, ignore_errors=True)
            if shm:
                shutil.rmtree(shm, ignore_errors=True)

    # ----- summary -----
    m = results["machine"]
    print(f"\nmachine: {m['nproc']} CPUs ({m['cpu']}), {m['mem_total_mib']} MiB RAM, "
          f"kernel {m['kernel']}, load {' '.join(m['loadavg'])} and CPUs "
          f"{m['background_busy_pct']:.0f}% busy with other work at start")
    fs = m["filesystem"]
    print(f"spool and mailboxes on: {fs[0]} {fs[1]} ({fs[2]})")
    vers = results["versions"]
    print(f"servers: {vers.get('tern') or vers.get('tern-on') or next(iter(vers.values()), '?')} vs "
          f"{vers.get('postfix') or vers.get('postfix+opendkim', '(no Postfix)')}; "
          f"smtp-source {' '.join(EXTRA_OPTS) or '(one connection per message)'}"
          + (f"; median of {REPEAT}" if ONLY != ["spool"] else ""))
    hdr = (f"{'size':>6} {'sess':>4} {'msgs':>5} | {'accepted msgs/s':^29} | {'delivered msgs/s':^29} | "
           f"{'CPU ms/msg: server':^18} | {'whole machine':^13}")
    sub = (f"{'':>6} {'':>4} {'':>5} | {'tern':>9} {'postfix':>9} {'ratio':>9} | "
           f"{'tern':>9} {'postfix':>9} {'ratio':>9} | {'tern':>8} {'pfix':>8}   | {'tern':>6} {'pfix':>6}")

    def medians(rs, keys):
        out = {k: statistics.median(r[k] for r in rs) for k in keys}
        out["all"] = rs
        return out

    def table_row(label, s, count, t, p, ratio_a, ratio_d, second):
        print(f"{label:>6} {s:>4} {count:>5} | {fmt_rate(t['accepted_rate'])} "
              f"{fmt_rate(p['accepted_rate'])} {ratio_a:8.2f}x | {fmt_rate(t[second])} "
              f"{fmt_rate(p[second])} {ratio_d:8.2f}x | "
              f"{t['cpu_ms_per_msg']:8.2f} {p['cpu_ms_per_msg']:8.2f}   | "
              f"{t['machine_cpu_ms_per_msg']:6.2f} {p['machine_cpu_ms_per_msg']:6.2f}")

    if runs:
        print()
        print(hdr)
        print(sub)
        print("-" * len(hdr))
    for (label, size, count, s) in runs:
        row = {"size": label, "sessions": s, "messages": count}
        for srv in ("tern", "postfix"):
            row[srv] = medians(raw[(label, s, srv)], ("accepted_rate", "delivered_rate",
                                                      "cpu_ms_per_msg", "machine_cpu_ms_per_msg"))
        t, p = row["tern"], row["postfix"]
        row["ratio_accepted"] = t["accepted_rate"] / p["accepted_rate"]
        row["ratio_delivered"] = t["delivered_rate"] / p["delivered_rate"]
        results["runs"].append(row)
        table_row(label, s, count, t, p, row["ratio_accepted"], row["ratio_delivered"],
                  "delivered_rate")

    size_label = f"{RELAY_SIZE // 1024}KiB" if RELAY_SIZE % 1024 == 0 else f"{RELAY_SIZE}B"
    if relay_runs:
        print()
        print(f"relay: to RCPT@{RELAY_DOMAIN} via relayhost = [{HOST}]:PORT, each server its own "
              "smtp-sink; relayed = messages / (last one in the sink - start of smtp-source)")
        print(hdr.replace("delivered msgs/s", "  relayed msgs/s"))
        print(sub)
        print("-" * len(hdr))
    for s in relay_runs:
        row = {"size": size_label, "sessions": s, "messages": RELAY_MSGS}
        for srv in ("tern", "postfix"):
            row[srv] = medians(relay_raw[(s, srv)], ("accepted_rate", "relayed_rate",
                                                     "cpu_ms_per_msg", "machine_cpu_ms_per_msg",
                                                     "connections"))
        t, p = row["tern"], row["postfix"]
        row["ratio_accepted"] = t["accepted_rate"] / p["accepted_rate"]
        row["ratio_relayed"] = t["relayed_rate"] / p["relayed_rate"]
        row["exact"] = all(not relay_anomalies(r, RELAY_MSGS)
                           for srv in ("tern", "postfix") for r in relay_raw[(s, srv)])
        results["relay"].append(row)
        table_row(size_label, s, RELAY_MSGS, t, p, row["ratio_accepted"], row["ratio_relayed"],
                  "relayed_rate")
    if relay_runs:
        conns = ", ".join(f"{sessions_text(r['sessions'])}: tern {r['tern']['connections']:.0f}, "
                          f"Postfix {r['postfix']['connections']:.0f}" for r in results["relay"])
        print(f"connections to the sink (median): {conns}; counts exact (sink counter, dumps, "
              f"server logs) in every run: "
              f"{'yes' if all(r['exact'] for r in results['relay']) else 'NO (see the run lines)'}")
        print("server CPU ms/msg by process (median):")
        for row in results["relay"]:
            for srv in ("tern", "postfix"):
                rs = row[srv]["all"]
                labels = {k for r in rs for k in r["cpu_ms_per_msg_by_process"]}
                med = {k: statistics.median(r["cpu_ms_per_msg_by_process"].get(k, 0.0) for r in rs)
                       for k in labels}
                row[srv]["cpu_ms_per_msg_by_process"] = med
                top = sorted(med.items(), key=lambda kv: -kv[1])
                print(f"  {sessions_text(row['sessions']):>11} {srv:7}: " + ", ".join(
                    f"{k} {v:.3f}" for k, v in top if v >= 0.005))

    mem = results["memory"]
    if mem:
        print()
        print("resident memory, all processes of the instance (MiB):")
        print(f"{'':>9} {'idle: procs':>11} {'RSS':>8} {'PSS':>8} | {IDLE_CONNS} conns: {'procs':>5} "
              f"{'RSS':>8} {'PSS':>8} | {'KiB/conn (PSS)':>14}")
        for srv in ("tern", "postfix"):
            i, c = mem[srv]["idle"], mem[srv]["conns"]
            print(f"{srv:>9} {i[0]:>11} {i[1] / 1024:8.1f} {i[2] / 1024:8.1f} | {'':>11}{c[0]:>5} "
                  f"{c[1] / 1024:8.1f} {c[2] / 1024:8.1f} | {(c[2] - i[2]) / IDLE_CONNS:14.1f}")
        tc, pc = mem["tern"]["conns"], mem["postfix"]["conns"]
        print(f"{'ratio':>9} tern/postfix with {IDLE_CONNS} connections: RSS {tc[1] / pc[1]:.4f} "
              f"(1/{pc[1] / tc[1]:.0f}), PSS {tc[2] / pc[2]:.4f} (1/{pc[2] / tc[2]:.0f})")
    if mailauth_raw:
        print()
        print(f"mail authentication on/off: 1 KiB x{MAILAUTH_MSGS}, smtp-source from {HOST} "
              f"(outside mynetworks = {MAILAUTH_NETWORKS}), all DNS from a local unbound "
              f"(bench.test: SPF pass, DMARC p=none pass; unsigned: dkim=none); median of {REPEAT}")
        mhdr = (f"{'':>28} {'sess':>4} | {'accepted msgs/s':^36} | {'CPU ms/msg: server':^20} | "
                f"{'whole machine':^13}")
        msub = (f"{'':>28} {'':>4} | {'on':>8} {'off':>8} {'on/off':>8} {'range':>9} | "
                f"{'on':>9} {'off':>9}  | {'on':>6} {'off':>6}")
        print(mhdr)
        print(msub)
        print("-" * len(mhdr))
        pairs = [("tern-on", "tern-off", "tern: SPF+DKIM+DMARC")]
        if "postfix+opendkim" in mailauth_variants:
            pairs.append(("postfix+opendkim", "postfix", "Postfix: opendkim milter"))
        for s in MAILAUTH_SESSIONS:
            for on_name, off_name, label in pairs:
                on_rs, off_rs = mailauth_raw[(s, on_name)], mailauth_raw[(s, off_name)]
                keys = ("accepted_rate", "delivered_rate", "cpu_ms_per_msg", "machine_cpu_ms_per_msg",
                        "dns_cpu_ms_per_msg")
                on = {k: statistics.median(r[k] for r in on_rs) for k in keys}
                off = {k: statistics.median(r[k] for r in off_rs) for k in keys}
                # Runs of one repetition are neighbours in time: their ratios
                # show how much the noise moves the figure.
                paired = [a["accepted_rate"] / b["accepted_rate"] for a, b in zip(on_rs, off_rs)]
                row = {"variant": label, "on": on_name, "off": off_name, "sessions": s,
                       "messages": MAILAUTH_MSGS, "size": "1KiB", on_name: on, off_name: off,
                       "ratio_accepted": on["accepted_rate"] / off["accepted_rate"],
                       "ratio_accepted_per_rep": paired,
                       "cost_pct": 100.0 * (1 - on["accepted_rate"] / off["accepted_rate"]),
                       "cpu_ms_per_msg_added": on["cpu_ms_per_msg"] - off["cpu_ms_per_msg"],
                       "runs": {on_name: on_rs, off_name: off_rs}}
                results["mailauth"].append(row)
                print(f"{label:>28} {s:>4} | {on['accepted_rate']:8.1f} {off['accepted_rate']:8.1f} "
                      f"{row['ratio_accepted']:7.3f}x {min(paired):.2f}-{max(paired):.2f} | "
                      f"{on['cpu_ms_per_msg']:9.3f} {off['cpu_ms_per_msg']:9.3f}  | "
                      f"{on['machine_cpu_ms_per_msg']:6.2f} {off['machine_cpu_ms_per_msg']:6.2f}")
        if "postfix+opendkim" not in mailauth_variants:
            print(f"(no Postfix+opendkim row: {OPENDKIM} is not installed)")
    if capture_raw:
        print()
        print(f"capture mode: {CAPTURE_SIZE} B x{CAPTURE_MSGS}, smtp-source, median of {REPEAT}; "
              "captured = messages / smtp-source's wall time (each 250 after the message is "
              "durable in capture/), every message then listed by the API (exact or the bench "
              "fails); the Maildir rows (accepted msgs/s) are the local part's, for reference")
        chdr = (f"{'':>21} {'sess':>4} | {'msgs/s':>8} {'min':>8} {'max':>8} | {'all listed':>10} | "
                f"{'CPU ms/msg: server':>18} {'machine':>8} | {'disk MB':>7}")
        print(chdr)
        print("-" * len(chdr))
        print(f"{'':>21} {'':>4}   (min and max over the runs; disk MB: the whole disk's writes, "
              "by anyone, while smtp-source ran; median)")
        for s in CAPTURE_SESSIONS:
            for name in capture_variants:
                rs = capture_raw[(s, name)]
                rates = [r["captured_rate"] for r in rs]
                row = {"variant": name, "sessions": s, "messages": CAPTURE_MSGS, "size": CAPTURE_SIZE,
                       "rate": statistics.median(rates), "min": min(rates), "max": max(rates),
                       "cpu_ms_per_msg": statistics.median(r["cpu_ms_per_msg"] for r in rs),
                       "machine_cpu_ms_per_msg": statistics.median(r["machine_cpu_ms_per_msg"] for r in rs),
                       "disk_written_mb": statistics.median(r["disk_written_mb"] or 0.0 for r in rs),
                       "runs": rs}
                listed = (f"{statistics.median(r['listed_rate'] for r in rs):8.1f}/s"
                          if "listed_rate" in rs[0] else f"{'-':>10}")
                results["capture"].setdefault("rows", []).append(row)
                print(f"{name:>21} {s:>4} | {row['rate']:8.1f} {row['min']:8.1f} {row['max']:8.1f} | "
                      f"{listed} | {row['cpu_ms_per_msg']:18.3f} {row['machine_cpu_ms_per_msg']:8.2f} | "
                      f"{row['disk_written_mb']:7.0f}")
        if any(n.startswith("tern-capture") for n in capture_variants):
            print("(tern-capture-*: every message listed by GET /api/v1/messages?inbox= and counted "
                  "by tern_capture_messages, in every run; nothing pruned)")
    if capture_waits:
        print()
        print(f"wait primitive: {CAPTURE_WAIT_MSGS} messages one at a time, each with a GET "
              "/api/v1/wait parked first; ms from the 250 (end of DATA) to the wait's answer")
        for name, w in capture_waits.items():
            lat, com, tot = w["latency_ms"], w["commit_ms"], w["data_to_answer_ms"]
            print(f"{name:>21}: median {lat['median']:.3f} ms, p95 {lat['p95']:.3f}, min "
                  f"{lat['min']:.3f}, max {lat['max']:.3f}; end of DATA to 250: median "
                  f"{com['median']:.3f} ms, p95 {com['p95']:.3f}; end of DATA to the wait's "
                  f"answer: median {tot['median']:.3f} ms, p95 {tot['p95']:.3f}")
        results["capture"]["wait"] = capture_waits
    if spool:
        bench_spool.report(spool)
        results["spool"] = spool
    print()

    def verdict(rows, key):
        rows = [r for r in rows if r["sessions"] == 20] or rows
        worst = min(rows, key=lambda r: r[key])
        return (f"{'met' if worst[key] >= 2 else 'NOT met'} (lowest {worst[key]:.3f}x, "
                f"{worst['size']} x{worst['sessions']})")
    targets = []
    if results["runs"]:
        targets.append(f">= 2x Postfix with 20 sessions: accepted "
                       f"{verdict(results['runs'], 'ratio_accepted')}, delivered "
                       f"{verdict(results['runs'], 'ratio_delivered')}")
    if mem:
        ok_mem = tc[2] * 10 <= pc[2]
        targets.append(f"<= 1/10 of its memory (PSS) at {IDLE_CONNS} connections: "
                       f"{'met' if ok_mem else 'NOT met'}")
    if targets:
        print("targets: " + "; ".join(targets))
    if results["relay"]:
        print("relay (no target set): tern/Postfix relayed msgs/s "
              + ", ".join(f"{r['ratio_relayed']:.2f}x with {sessions_text(r['sessions'])}"
                          for r in results["relay"]))
    for row in results["mailauth"]:
        if row["on"] == "tern-on" and row["sessions"] == 20:
            print(f"mail authentication (target: costs < 10% of accepted msgs/s at 20 sessions): "
                  f"{'met' if row['cost_pct'] < 10 else 'NOT met'} (costs {row['cost_pct']:.1f}%, "
                  f"{row['cpu_ms_per_msg_added']:+.3f} server CPU ms/msg)")
        elif row["sessions"] == 20:
            print(f"{row['variant']} (for comparison): costs {row['cost_pct']:.1f}% of Postfix's "
                  f"accepted msgs/s, {row['cpu_ms_per_msg_added']:+.3f} server CPU ms/msg")
    if JSON_OUT:
        Path(JSON_OUT).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    # bench_spool's "import bench" gets this module, not a second copy of it.
    sys.modules.setdefault("bench", sys.modules[__name__])
    main()
