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
  * resident memory (sum of RSS and of PSS over every process of the
    instance) idle and with N connections held open after EHLO.

Each run uses its own recipient (its own Maildir), so the delivered count is
exact: a lost or duplicated message is reported. Runs alternate between the
two servers and are repeated (median reported) to share out background noise;
before each run the bench syncs the disk and waits (a little) for the
machine to be quiet. The mailboxes (about 1.3 GB with the defaults) are kept
until the end. The servers are stopped and the directory (under $TMPDIR,
default /tmp: it must be a real disk, not tmpfs) removed at the end, also on
error or Ctrl-C. Nothing here touches port 25 or the system's Postfix: the Postfix
instance has its own config directory, queue and data directory.

Settings (environment): TERN_BIN, BENCH_SMALL_MSGS (2000), BENCH_LARGE_MSGS
(1000), BENCH_IDLE_CONNS (1000), BENCH_REPEAT (3), BENCH_SESSIONS ("1 20"),
BENCH_QUIET_WAIT (seconds to wait, before each run, for other work on the
machine to calm down below 15% CPU; 10),
BENCH_SMTP_SOURCE_OPTS (extra smtp-source options, e.g. "-d" to send every
message of a session over one connection), BENCH_KEEP=1 keeps the directory,
BENCH_JSON=FILE also writes the results as JSON.
"""
import json
import os
import pwd
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TERN_BIN = os.environ.get("TERN_BIN", str(REPO / "build" / "tern"))
SMTP_SOURCE = os.environ.get("SMTP_SOURCE", "/usr/sbin/smtp-source")
POSTFIX = os.environ.get("POSTFIX", "/usr/sbin/postfix")
SMALL_MSGS = int(os.environ.get("BENCH_SMALL_MSGS", "2000"))
LARGE_MSGS = int(os.environ.get("BENCH_LARGE_MSGS", "1000"))
IDLE_CONNS = int(os.environ.get("BENCH_IDLE_CONNS", "1000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
SESSIONS = [int(s) for s in os.environ.get("BENCH_SESSIONS", "1 20").split()]
QUIET_WAIT = float(os.environ.get("BENCH_QUIET_WAIT", "10"))
EXTRA_OPTS = os.environ.get("BENCH_SMTP_SOURCE_OPTS", "").split()
KEEP = os.environ.get("BENCH_KEEP") == "1"
JSON_OUT = os.environ.get("BENCH_JSON")

HOST = "127.0.0.1"
DOMAIN = "bench.test"
SIZES = [("1KiB", 1024, SMALL_MSGS), ("100KiB", 102400, LARGE_MSGS)]
DELIVERY_TIMEOUT = 300.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


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

    def __init__(self, base: Path, recipients):
        self.base = base
        self.port = free_port()
        self.recipients = recipients
        self.mail = base / "mail"

    def maildir_new(self, user):
        return self.mail / user / "Maildir" / "new"

    def root_pid(self):
        raise NotImplementedError


class Tern(Server):
    name = "tern"

    def __init__(self, base, recipients):
        super().__init__(base, recipients)
        self.proc = None

    def start(self):
        b = self.base
        b.mkdir(mode=0o755)
        (b / "main.cf").write_text(
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
            "smtpd_client_connection_count_limit = 0\n")
        (b / "master.cf").write_text(f"{HOST}:{self.port} inet n - n - - smtpd\n")
        self.stderr = open(b / "stderr.log", "wb")
        self.proc = subprocess.Popen([TERN_BIN, "-c", str(b), "serve"], stdout=self.stderr,
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
        r = subprocess.run([TERN_BIN, "version"], capture_output=True, text=True)
        out = (r.stdout or r.stderr).strip()
        return out.splitlines()[0] if r.returncode == 0 and out else "tern"


class Postfix(Server):
    name = "postfix"

    def __init__(self, base, recipients):
        super().__init__(base, recipients)
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
            "smtpd_client_connection_rate_limit = 0\n")
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


def throughput_run(server, user, size, count, sessions):
    new = server.maildir_new(user)
    root = server.root_pid()
    os.sync()  # start from a clean disk: no one else's dirty data in our syncs
    busy = wait_quiet(QUIET_WAIT)
    cpu0 = tree_cpu_seconds(root)
    stat0 = cpu_totals()
    cmd = [SMTP_SOURCE, "-s", str(sessions), "-l", str(size), "-m", str(count),
           "-f", f"sender@client.{DOMAIN}", "-t", f"{user}@{DOMAIN}", "-M", f"client.{DOMAIN}",
           *EXTRA_OPTS, f"{HOST}:{server.port}"]
    with tempfile.TemporaryFile() as out:
        t0 = time.time()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        t1 = time.time()
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            out.seek(0)
            raise RuntimeError(f"{server.name}: smtp-source failed ({proc.returncode}): "
                               + out.read().decode(errors="replace"))
    client_cpu = usage.ru_utime + usage.ru_stime
    deadline = t1 + DELIVERY_TIMEOUT
    while count_new(new) < count:
        if time.time() > deadline:
            raise RuntimeError(f"{server.name}: only {count_new(new)} of {count} delivered "
                               f"to {new} after {DELIVERY_TIMEOUT:.0f} s")
        time.sleep(0.05)
    cpu1 = tree_cpu_seconds(root)
    stat1 = cpu_totals()
    # CPU time the rest of the machine used meanwhile (other people's work,
    # plus some of our own network softirq work that the kernel does not
    # charge to our processes): high values mark a disturbed run.
    busy_s = (stat1[0] - stat0[0]) / CLK_TCK
    other = max(0.0, busy_s - (cpu1 - cpu0) - client_cpu)
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
        "other_cpu_pct": 100.0 * other / capacity if capacity else 0.0,
    }


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
    for path in (TERN_BIN, SMTP_SOURCE, POSTFIX):
        if not os.access(path, os.X_OK):
            sys.exit(f"bench: {path} missing (make build/tern; apt-get install postfix)")
    if os.geteuid() != 0:
        sys.exit("bench: run as root: a Postfix instance can only be started by root")

    raise_fd_limit()  # inherited by both servers: 1,000 connections need it
    results = {"machine": machine_info(), "runs": [], "memory": {}}
    if results["machine"]["background_busy_pct"] > 10:
        log(f"bench: warning: the CPUs are {results['machine']['background_busy_pct']:.0f}% busy "
            "with other work; the figures will be low and noisy")
    work = Path(tempfile.mkdtemp(prefix="tern-bench-"))
    work.chmod(0o755)  # tern's and Postfix's unprivileged processes traverse it
    results["machine"]["filesystem"] = filesystem_of(work)
    if results["machine"]["filesystem"][1] in ("tmpfs", "ramfs"):
        log(f"bench: warning: {work} is on {results['machine']['filesystem'][1]}: syncs cost "
            "nothing there; set TMPDIR to a directory on a real disk")
    runs = [(label, size, count, s) for s in SESSIONS for (label, size, count) in SIZES]
    recipients = [f"r{rep}-s{s}-{label.lower()}" for rep in range(REPEAT) for (label, _, _, s) in runs]
    recipients += ["warmup"]
    servers = [Tern(work / "tern", recipients), Postfix(work / "postfix", recipients)]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # runs the cleanup below
    try:
        for srv in servers:
            srv.start()
            log(f"bench: {srv.name} ({srv.version()}) on {HOST}:{srv.port}, pid {srv.root_pid()}")
        results["versions"] = {srv.name: srv.version() for srv in servers}
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

        for srv in servers:
            log(f"bench: {srv.name}: opening {IDLE_CONNS} idle connections")
            results["memory"][srv.name] = memory_test(srv, IDLE_CONNS)
    finally:
        for srv in servers:
            try:
                srv.stop()
            except Exception as e:  # keep stopping the others
                log(f"bench: stopping {srv.name}: {e}")
        if KEEP:
            log(f"bench: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    # ----- summary -----
    m = results["machine"]
    print(f"\nmachine: {m['nproc']} CPUs ({m['cpu']}), {m['mem_total_mib']} MiB RAM, "
          f"kernel {m['kernel']}, load {' '.join(m['loadavg'])} and CPUs "
          f"{m['background_busy_pct']:.0f}% busy with other work at start")
    fs = m["filesystem"]
    print(f"spool and mailboxes on: {fs[0]} {fs[1]} ({fs[2]})")
    print(f"servers: {results['versions']['tern']} vs {results['versions']['postfix']}; "
          f"smtp-source {' '.join(EXTRA_OPTS) or '(one connection per message)'}; "
          f"median of {REPEAT}")
    print()
    hdr = (f"{'size':>6} {'sess':>4} {'msgs':>5} | {'accepted msgs/s':^29} | {'delivered msgs/s':^29} | "
           f"{'CPU ms/msg: server':^18} | {'whole machine':^13}")
    print(hdr)
    print(f"{'':>6} {'':>4} {'':>5} | {'tern':>9} {'postfix':>9} {'ratio':>9} | "
          f"{'tern':>9} {'postfix':>9} {'ratio':>9} | {'tern':>8} {'pfix':>8}   | {'tern':>6} {'pfix':>6}")
    print("-" * len(hdr))
    for (label, size, count, s) in runs:
        row = {"size": label, "sessions": s, "messages": count}
        for srv in ("tern", "postfix"):
            rs = raw[(label, s, srv)]
            row[srv] = {k: statistics.median(r[k] for r in rs)
                        for k in ("accepted_rate", "delivered_rate", "cpu_ms_per_msg",
                                  "machine_cpu_ms_per_msg")}
            row[srv]["all"] = rs
        t, p = row["tern"], row["postfix"]
        row["ratio_accepted"] = t["accepted_rate"] / p["accepted_rate"]
        row["ratio_delivered"] = t["delivered_rate"] / p["delivered_rate"]
        results["runs"].append(row)
        print(f"{label:>6} {s:>4} {count:>5} | {fmt_rate(t['accepted_rate'])} {fmt_rate(p['accepted_rate'])} "
              f"{row['ratio_accepted']:8.2f}x | {fmt_rate(t['delivered_rate'])} "
              f"{fmt_rate(p['delivered_rate'])} {row['ratio_delivered']:8.2f}x | "
              f"{t['cpu_ms_per_msg']:8.2f} {p['cpu_ms_per_msg']:8.2f}   | "
              f"{t['machine_cpu_ms_per_msg']:6.2f} {p['machine_cpu_ms_per_msg']:6.2f}")
    print()
    print(f"resident memory, all processes of the instance (MiB):")
    print(f"{'':>9} {'idle: procs':>11} {'RSS':>8} {'PSS':>8} | {IDLE_CONNS} conns: {'procs':>5} "
          f"{'RSS':>8} {'PSS':>8} | {'KiB/conn (PSS)':>14}")
    mem = results["memory"]
    for srv in ("tern", "postfix"):
        i, c = mem[srv]["idle"], mem[srv]["conns"]
        print(f"{srv:>9} {i[0]:>11} {i[1] / 1024:8.1f} {i[2] / 1024:8.1f} | {'':>11}{c[0]:>5} "
              f"{c[1] / 1024:8.1f} {c[2] / 1024:8.1f} | {(c[2] - i[2]) / IDLE_CONNS:14.1f}")
    tc, pc = mem["tern"]["conns"], mem["postfix"]["conns"]
    print(f"{'ratio':>9} tern/postfix with {IDLE_CONNS} connections: RSS {tc[1] / pc[1]:.4f} "
          f"(1/{pc[1] / tc[1]:.0f}), PSS {tc[2] / pc[2]:.4f} (1/{pc[2] / tc[2]:.0f})")
    print()
    def verdict(key):
        rows = [r for r in results["runs"] if r["sessions"] == 20] or results["runs"]
        worst = min(rows, key=lambda r: r[key])
        return (f"{'met' if worst[key] >= 2 else 'NOT met'} (lowest {worst[key]:.3f}x, "
                f"{worst['size']} x{worst['sessions']})")
    ok_mem = tc[2] * 10 <= pc[2]
    print(f"targets: >= 2x Postfix with 20 sessions: accepted {verdict('ratio_accepted')}, "
          f"delivered {verdict('ratio_delivered')}; <= 1/10 of its memory (PSS) at "
          f"{IDLE_CONNS} connections: {'met' if ok_mem else 'NOT met'}")
    if JSON_OUT:
        Path(JSON_OUT).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
