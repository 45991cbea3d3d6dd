#!/usr/bin/env python3
"""The spool part of `make bench` (BENCH_ONLY=spool): what issue 12 (a spool
whose commit is an append to a group-committed journal) is judged by, under
three disk conditions, tern against Postfix and smtp-sink on the same load.

bench/bench.py runs it (its main() calls spool_part() and report()); the
servers, smtp-source, the sinks, the CPU and Maildir counting are bench.py's.

Servers: one tern per value of BENCH_SPOOL_METHODS (tern's queue_sync_method;
a value the built tern does not accept, found by `tern -c DIR config check`
on the instance's own main.cf, or one with which tern does not start, is
left out, saying so), one Postfix (bench.py's: virtual(8) into Maildirs), and
for the protocol ceiling a Postfix smtp-sink(1) without dumps. Each server
also has its own dumping smtp-sink as relayhost, as in bench.py's relay part.

Conditions, each set up just before every run and taken down after it (so
every server meets it the same way), bounded in count and time:

  quiet    sync, wait (at most BENCH_SPOOL_QUIET_WAIT s) for quiet CPUs;
  noisy    then a child process (this file, "neighbour") writes 64 KiB files
           into a directory of the bench on the spools' file system at about
           150/s, fsyncs none, deletes each about 0.2 s later; started 0.5 s
           before the run, stopped after it (it stops by itself after
           BENCH_SPOOL_NOISY_MAX_S s, or when the bench is gone); its CPU
           is taken out of the whole-machine CPU per message (the kernel's
           writeback of its files, when a sync forces it, is not);
  deletes  after the quiet wait, 3,000 files of 16 KiB are created there,
           synced once (sync(2)), then deleted, and the run starts at once
           (their freed blocks, inodes and directory are dirty metadata for
           the next whole-file-system sync; on a `discard` mount each unlink
           also discards). Creation stops after BENCH_SPOOL_DELETE_MAX_S s.

Loads, per round and condition, each run to its own recipient (its own
Maildir), the servers alternated with the starting server rotated from
round to round:

  (a) 20 sessions: smtp-source -s 20 -l 4096 -m N, one connection per
      message: accepted msgs/s (N / smtp-source's wall time) and delivered
      msgs/s (N / newest ctime in Maildir/new - start; the count must be N);
      smtp-sink is in this rotation too: (d) the protocol ceiling, the same
      smtp-source against smtp-sink directly;
  (e) from the same runs: CPU ms per message, whole machine (all busy CPU
      time of the machine while smtp-source ran and the deliveries finished,
      client and kernel threads included, the neighbour's own CPU taken off),
      the same less the CPU of other people's processes meanwhile (not
      kernel threads: a fuzzer or a test suite on a shared machine), and the
      server's process tree;
  (b) one session: smtp-source -s 1 -m N1 (msgs/s); then, after a paired
      bare sync (4 KiB pwrite + fdatasync into a pre-written file in the
      bench's directory, BENCH_SPOOL_BARE_SYNCS times: its median is "one
      fdatasync" on this disk now), a small SMTP client sends
      BENCH_SPOOL_LATENCY_MSGS messages one at a time, one connection each,
      and times each end of DATA from sending "." to reading the 250
      (TCP_NODELAY; the body is sent first): its median, and that less the
      paired fdatasync median;
  (c) relay: smtp-source -s 20 to RCPT@relay.test, relayed by the server to
      its own smtp-sink: relayed msgs/s (bench.py's relay_run, exact counts
      checked three ways).

Reported per condition: median [min-max] over the rounds for each server,
ratios tern/Postfix and tern/smtp-sink (the ratio of the medians, and in
brackets the range of the ratios of runs of the same round), and the issue's
targets where it sets them (quiet and noisy).

Settings (environment): BENCH_SPOOL_METHODS ("syncfs journal"),
BENCH_SPOOL_ROUNDS (3), BENCH_SPOOL_CONDITIONS ("quiet noisy deletes"),
BENCH_SPOOL_MSGS (2000: (a), (c), (d)), BENCH_SPOOL_ONE_MSGS (300: (b)'s
smtp-source), BENCH_SPOOL_LATENCY_MSGS (200), BENCH_SPOOL_BARE_SYNCS (200),
BENCH_SPOOL_SESSIONS (20), BENCH_SPOOL_SIZE (4096), BENCH_SPOOL_QUIET_WAIT
(2 s: the other parts' 10 s would be most of this part's time on a machine
where a niced fuzzer keeps one CPU busy), BENCH_SPOOL_NOISY_RATE (150 files/s),
BENCH_SPOOL_NOISY_SIZE (65536), BENCH_SPOOL_NOISY_LIFE (0.2 s),
BENCH_SPOOL_NOISY_MAX_S (600), BENCH_SPOOL_DELETE_FILES (3000),
BENCH_SPOOL_DELETE_SIZE (16384), BENCH_SPOOL_DELETE_MAX_S (60),
BENCH_SPOOL_BASELINE (a tern binary run beside the others as tern-at-filing
with its own defaults: the code the issue was filed against, whose CPU per
message is the target's "today's"; bench/run.sh sets it to
build/baseline/tern when make bench-baseline has built that). With the
defaults and two tern methods about 15-20 minutes on the 2-vCPU machine of
docs/PERFORMANCE.md. A quick check: BENCH_SPOOL_ROUNDS=1 BENCH_SPOOL_MSGS=300
BENCH_SPOOL_ONE_MSGS=50 BENCH_SPOOL_LATENCY_MSGS=50.
"""
import collections
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import bench
from bench import DOMAIN, HOST, log


def _env_int(name, default):
    return int(os.environ.get(name, str(default)))


def _env_float(name, default):
    return float(os.environ.get(name, str(default)))


METHODS = os.environ.get("BENCH_SPOOL_METHODS", "syncfs journal").split()
# The tern the issue was filed against (make bench-baseline builds it), run
# beside the others with its own defaults: "today's" CPU in the target.
BASELINE = os.environ.get("BENCH_SPOOL_BASELINE", "")
BASELINE_NAME = "tern-at-filing"
ROUNDS = _env_int("BENCH_SPOOL_ROUNDS", 3)
CONDITIONS = os.environ.get("BENCH_SPOOL_CONDITIONS", "quiet noisy deletes").split()
MSGS = _env_int("BENCH_SPOOL_MSGS", 2000)
ONE_MSGS = _env_int("BENCH_SPOOL_ONE_MSGS", 300)
LATENCY_MSGS = _env_int("BENCH_SPOOL_LATENCY_MSGS", 200)
BARE_SYNCS = _env_int("BENCH_SPOOL_BARE_SYNCS", 200)
SESSIONS = _env_int("BENCH_SPOOL_SESSIONS", 20)
SIZE = _env_int("BENCH_SPOOL_SIZE", 4096)
QUIET_WAIT = _env_float("BENCH_SPOOL_QUIET_WAIT", 2)
NOISY_RATE = _env_float("BENCH_SPOOL_NOISY_RATE", 150)
NOISY_SIZE = _env_int("BENCH_SPOOL_NOISY_SIZE", 65536)
NOISY_LIFE = _env_float("BENCH_SPOOL_NOISY_LIFE", 0.2)
NOISY_MAX_S = _env_float("BENCH_SPOOL_NOISY_MAX_S", 600)
DELETE_FILES = _env_int("BENCH_SPOOL_DELETE_FILES", 3000)
DELETE_SIZE = _env_int("BENCH_SPOOL_DELETE_SIZE", 16384)
DELETE_MAX_S = _env_float("BENCH_SPOOL_DELETE_MAX_S", 60)
KNOWN_CONDITIONS = ("quiet", "noisy", "deletes")
LOADS = ("s20", "s1", "lat", "relay")
CEILING = "smtp-sink"
BARE_FILE_BLOCKS = 2048  # the pre-written file for the bare syncs: 8 MiB


# ---------- the conditions ----------

class Condition:
    """Set up before each run (prepare, which returns the other work's busy %
    seen by the quiet wait) and taken down after it (finish, which returns
    what the condition did). pids: process trees of the condition's own,
    filled in by prepare, whose CPU is not other work."""

    def __init__(self, name, work: Path):
        self.name = name
        self.dir = work / f"cond-{name}"
        self.dir.mkdir(mode=0o755)
        self.pids = []
        self.proc = None
        self.info = {}

    def prepare(self):
        self.pids.clear()
        self.info = {"loadavg": os.getloadavg()[0]}
        os.sync()  # start from a clean disk: no one else's dirty data in our syncs
        busy = bench.wait_quiet(QUIET_WAIT)
        if self.name == "noisy":
            self.start_neighbour()
        elif self.name == "deletes":
            self.create_and_delete()
        return busy

    def finish(self):
        if self.proc:
            self.stop_neighbour()
        return self.info

    # noisy: a child process writing and deleting files beside the spools
    def start_neighbour(self):
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "neighbour", str(self.dir),
             str(NOISY_RATE), str(NOISY_SIZE), str(NOISY_LIFE), str(NOISY_MAX_S)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self.pids.append(self.proc.pid)
        time.sleep(0.5)  # at its pace, with files alive, before the run
        if self.proc.poll() is not None:
            out = self.proc.communicate()[0].decode(errors="replace")
            self.proc = None
            raise RuntimeError(f"spool: the noisy neighbour exited at once: {out}")

    def stop_neighbour(self):
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.terminate()  # by PID: our own child
        try:
            out = proc.communicate(timeout=20)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            log(f"spool: the noisy neighbour {proc.pid} did not stop on SIGTERM; killing it")
            proc.kill()
            out = proc.communicate()[0].decode(errors="replace")
        m = re.search(r"files=(\d+) seconds=([\d.]+) max_live=(\d+)", out)
        if not m:
            raise RuntimeError(f"spool: the noisy neighbour said: {out!r}")
        files, secs = int(m.group(1)), float(m.group(2))
        self.info.update(neighbour_files=files, neighbour_s=secs,
                         neighbour_rate=files / secs if secs else 0.0,
                         neighbour_max_live=int(m.group(3)))
        for n in os.listdir(self.dir):  # anything it could not remove
            os.unlink(self.dir / n)

    # deletes: 3,000 files created, synced once, deleted just before the run
    def create_and_delete(self):
        data = os.urandom(DELETE_SIZE)
        names = []
        t0 = time.monotonic()
        for i in range(DELETE_FILES):
            if time.monotonic() - t0 > DELETE_MAX_S:
                log(f"spool: deletes: made only {i} files in {DELETE_MAX_S:.0f} s "
                    "(BENCH_SPOOL_DELETE_MAX_S)")
                break
            name = self.dir / f"d{i}"
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            names.append(name)
        t1 = time.monotonic()
        os.sync()
        t2 = time.monotonic()
        for name in names:
            os.unlink(name)
        t3 = time.monotonic()
        self.info.update(deleted_files=len(names), create_s=t1 - t0, sync_s=t2 - t1,
                         delete_s=t3 - t2)


def neighbour_main(argv):
    """The noisy neighbour (a child of the bench): writes SIZE-byte files into
    DIR at RATE per second, no fsync, deletes each LIFE s later; stops on
    SIGTERM, after MAX_S seconds or RATE * MAX_S files, or when its parent is
    gone; removes what is left and prints what it did."""
    d, rate, size, life, max_s = Path(argv[0]), float(argv[1]), int(argv[2]), float(argv[3]), float(argv[4])
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    parent = os.getppid()
    data = os.urandom(size)
    live = collections.deque()
    start = time.monotonic()
    origin, made, max_live = start, 0, 0
    while not stop and made < rate * max_s and time.monotonic() - start < max_s:
        if os.getppid() != parent:
            break
        now = time.monotonic()
        due = origin + made / rate
        if due > now:
            time.sleep(due - now)
        elif now - due > 0.1:  # fell behind (a slow disk): no burst to catch up
            origin += now - due
        name = d / f"n{made}"
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        made += 1
        live.append((time.monotonic(), name))
        max_live = max(max_live, len(live))
        while live and time.monotonic() - live[0][0] >= life:
            os.unlink(live.popleft()[1])
    elapsed = time.monotonic() - start
    for _, name in live:
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass
    print(f"files={made} seconds={elapsed:.3f} max_live={max_live}", flush=True)


# ---------- the measurements of this part ----------

def make_bare_file(path):
    """The pre-written file of the bare syncs (zeros, synced): a write into it
    changes no file-system metadata."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        block = bytes(4096)
        for i in range(BARE_FILE_BLOCKS):
            os.pwrite(fd, block, i * 4096)
        os.fsync(fd)
    finally:
        os.close(fd)


def bare_fdatasync(path, n):
    """n times: 4 KiB pwrite into the pre-written file + fdatasync; seconds each."""
    data = os.urandom(4096)
    out = []
    fd = os.open(path, os.O_WRONLY)
    try:
        for i in range(n):
            t0 = time.perf_counter()
            os.pwrite(fd, data, (i % BARE_FILE_BLOCKS) * 4096)
            os.fdatasync(fd)
            out.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
    return out


def data_latency(server, rcpt, n, size):
    """n messages one at a time, one connection each (like smtp-source without
    -d): seconds from sending "." (the body already sent) to reading the 250."""
    pad = "x" * 76 + "\r\n"
    out = []
    for i in range(n):
        head = (f"From: sender@client.{DOMAIN}\r\nTo: {rcpt}\r\nSubject: latency {i}\r\n"
                f"Message-Id: <lat{i}.{time.time():.6f}@client.{DOMAIN}>\r\n\r\n")
        body = pad * max(1, (size - len(head)) // len(pad))
        c = bench.SmtpClient(server.port)
        try:
            c.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c.command(f"MAIL FROM:<sender@client.{DOMAIN}>", b"250")
            c.command(f"RCPT TO:<{rcpt}>", b"250")
            c.command("DATA", b"354")
            c.s.sendall((head + body).encode())
            t_dot = time.time()
            c.s.sendall(b".\r\n")
            t_250 = c.expect(b"250")
            out.append(t_250 - t_dot)
        finally:
            c.close()
    return out


def wait_delivered(server, user, count):
    new = server.maildir_new(user)
    deadline = time.time() + bench.DELIVERY_TIMEOUT
    while bench.count_new(new) < count:
        if time.time() > deadline:
            raise RuntimeError(f"{server.name}: only {bench.count_new(new)} of {count} delivered "
                               f"to {new} after {bench.DELIVERY_TIMEOUT:.0f} s")
        time.sleep(0.05)
    time.sleep(0.3)
    if bench.count_new(new) != count:
        raise RuntimeError(f"{server.name}: {bench.count_new(new)} files in {new} for {count} messages")


def ceiling_run(sink, cond):
    """(d) smtp-source straight into smtp-sink: the protocol's ceiling here."""
    busy = cond.prepare()
    base = sink.messages()
    ex0 = sum(bench.tree_cpu_seconds(p) for p in cond.pids)
    users0 = bench.user_cpu_snapshot()
    ours = bench.our_pids([])
    stat0 = bench.cpu_totals()
    t0, t1, client_cpu = bench.smtp_source(sink, f"ceiling@{DOMAIN}", SIZE, MSGS, SESSIONS)
    stat1 = bench.cpu_totals()
    users1 = bench.user_cpu_snapshot()
    foreign = bench.foreign_cpu_seconds(users0, users1, ours | bench.our_pids([]))
    ex1 = sum(bench.tree_cpu_seconds(p) for p in cond.pids)
    deadline = time.time() + 10  # its counter is written after each "."
    while sink.messages() - base < MSGS and time.time() < deadline:
        time.sleep(0.02)
    got = sink.messages() - base
    if got != MSGS:
        raise RuntimeError(f"smtp-sink counted {got} messages for {MSGS} sent")
    busy_s = (stat1[0] - stat0[0]) / bench.CLK_TCK
    return {"accepted_rate": MSGS / (t1 - t0), "accepted_s": t1 - t0,
            "machine_cpu_ms_per_msg": 1000.0 * busy_s / MSGS,
            "excluded_cpu_ms_per_msg": 1000.0 * (ex1 - ex0) / MSGS,
            "foreign_cpu_ms_per_msg": 1000.0 * foreign / MSGS,
            "client_cpu_ms_per_msg": 1000.0 * client_cpu / MSGS,
            "background_busy_pct": round(busy, 1)}


def latency_run(srv, user, cond, bare_path):
    """(b) the paired bare fdatasync, then the SMTP client's end-of-DATA times."""
    busy = cond.prepare()
    bare = [x * 1000 for x in bare_fdatasync(bare_path, BARE_SYNCS)]
    t0 = time.time()
    lat = [x * 1000 for x in data_latency(srv, f"{user}@{DOMAIN}", LATENCY_MSGS, SIZE)]
    t1 = time.time()
    wait_delivered(srv, user, LATENCY_MSGS)
    return {"latency_p50_ms": statistics.median(lat),
            "latency_p95_ms": bench.percentile(lat, 95),
            "bare_p50_ms": statistics.median(bare),
            "bare_p95_ms": bench.percentile(bare, 95),
            "latency_minus_bare_ms": statistics.median(lat) - statistics.median(bare),
            "client_rate": LATENCY_MSGS / (t1 - t0),
            "background_busy_pct": round(busy, 1)}


# ---------- the part ----------

def check_method(work, method):
    """None if the built tern accepts queue_sync_method = method in the bench's
    main.cf (tern config check), else why not."""
    probe = bench.Tern(work / f"check-{method}", [], 9, name=f"tern-{method}",
                       settings={"queue_sync_method": method})
    probe.write_config()
    r = subprocess.run([bench.TERN_BIN, "-c", str(probe.base), "config", "check"],
                       capture_output=True, text=True)
    if r.returncode == 0:
        return None
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if "error" in ln] or \
        (r.stdout + r.stderr).splitlines()[-1:]
    return "tern config check: " + "; ".join(ln.split(": ", 1)[-1] for ln in lines[:3])


def rotated(items, k):
    k %= len(items)
    return items[k:] + items[:k]


def spool_part(work: Path):
    """Runs the part; returns its results (see report())."""
    unknown = [c for c in CONDITIONS if c not in KNOWN_CONDITIONS]
    if unknown or not CONDITIONS:
        raise RuntimeError(f"BENCH_SPOOL_CONDITIONS: unknown {' '.join(unknown)}; choose from "
                           f"{' '.join(KNOWN_CONDITIONS)}")
    started = time.time()
    work.mkdir(mode=0o755)
    res = {"settings": {"methods": METHODS, "rounds": ROUNDS, "conditions": CONDITIONS,
                        "msgs": MSGS, "one_msgs": ONE_MSGS, "latency_msgs": LATENCY_MSGS,
                        "bare_syncs": BARE_SYNCS, "sessions": SESSIONS, "size": SIZE,
                        "quiet_wait": QUIET_WAIT, "noisy_rate": NOISY_RATE,
                        "noisy_size": NOISY_SIZE, "noisy_life": NOISY_LIFE,
                        "delete_files": DELETE_FILES, "delete_size": DELETE_SIZE},
           "left_out": {}, "versions": {}, "runs": [], "filesystem": bench.filesystem_of(work),
           "loadavg_start": os.getloadavg()}
    methods = []
    for m in METHODS:
        why = check_method(work, m)
        if why:
            res["left_out"][f"tern-{m}"] = why
            log(f"bench: spool: leaving out tern with queue_sync_method = {m}: {why}")
        elif m not in methods:
            methods.append(m)
    users = [f"sp{r}-{c}-{ld}" for r in range(ROUNDS) for c in CONDITIONS for ld in ("s20", "s1", "lat")]
    users.append("warmup")
    shm = bench.tmpfs_dir()
    if not shm:
        log("bench: spool: warning: no tmpfs at /dev/shm: the sinks dump onto the disk under test")
        shm = work / "sinks"
        shm.mkdir(mode=0o755)
    shm.chmod(0o755)  # smtp-sink runs as nobody
    names = [f"tern-{m}" for m in methods] + ["postfix"]
    if BASELINE and not os.access(BASELINE, os.X_OK):
        res["left_out"][BASELINE_NAME] = f"BENCH_SPOOL_BASELINE={BASELINE} is not an executable"
        log(f"bench: spool: leaving out {BASELINE_NAME}: {res['left_out'][BASELINE_NAME]}")
    elif BASELINE:
        names.insert(len(methods), BASELINE_NAME)
    sinks = {n: bench.Sink(n, shm) for n in names}
    ceiling = bench.Sink("ceiling", shm, dump=False)
    servers = [bench.Tern(work / f"tern-{m}", users, sinks[f"tern-{m}"].port, name=f"tern-{m}",
                          settings={"queue_sync_method": m}) for m in methods]
    if BASELINE_NAME in names:
        servers.append(bench.Tern(work / BASELINE_NAME, users, sinks[BASELINE_NAME].port, name=BASELINE_NAME,
                                  binary=BASELINE))
    servers.append(bench.Postfix(work / "postfix", users, sinks["postfix"].port))
    conds = {c: Condition(c, work) for c in CONDITIONS}
    bare_path = work / "bare.dat"
    running = []
    try:
        make_bare_file(bare_path)
        for s in list(sinks.values()) + [ceiling]:
            s.start()
            running.append(s)
        for srv in list(servers):
            try:
                srv.start()
            except RuntimeError as e:
                if not isinstance(srv, bench.Tern):
                    raise
                tail = ""
                try:
                    tail = (srv.base / "stderr.log").read_text(errors="replace").strip()[-400:]
                except OSError:
                    pass
                srv.stop()
                servers.remove(srv)
                res["left_out"][srv.name] = f"did not start: {e}; stderr: {tail}"
                log(f"bench: spool: leaving out {srv.name}: {res['left_out'][srv.name]}")
                continue
            running.append(srv)
            res["versions"][srv.name] = srv.version()
            log(f"bench: spool: {srv.name} ({res['versions'][srv.name]}) on {HOST}:{srv.port}, "
                f"pid {srv.root_pid()}, relaying to {sinks[srv.name].port}")
        log(f"bench: spool: smtp-sink (the ceiling) on {HOST}:{ceiling.port}, pid {ceiling.proc.pid}")
        res["participants"] = [s.name for s in servers] + [CEILING]
        quiet = conds.get("quiet") or Condition("warmup", work)
        for srv in servers:  # warm-up: processes spawned, connections made
            bench.throughput_run(srv, "warmup", SIZE, 50, 5, prepare=quiet.prepare)
            bench.relay_run(srv, sinks[srv.name], "warmup", 50, 5, prepare=quiet.prepare)

        for rnd in range(ROUNDS):
            for c in CONDITIONS:
                cond = conds[c]
                t_cond = time.time()
                for load in LOADS:
                    who = servers + [ceiling] if load == "s20" else servers
                    for srv in rotated(who, rnd):
                        user = f"sp{rnd}-{c}-{load}"
                        try:
                            if srv is ceiling:
                                r = ceiling_run(ceiling, cond)
                            elif load == "s20":
                                r = bench.throughput_run(srv, user, SIZE, MSGS, SESSIONS,
                                                         prepare=cond.prepare, exclude_roots=cond.pids)
                                if r["delivered_files"] != MSGS:
                                    raise RuntimeError(f"{srv.name}: {r['delivered_files']} files "
                                                       f"delivered for {MSGS} messages")
                            elif load == "s1":
                                r = bench.throughput_run(srv, user, SIZE, ONE_MSGS, 1,
                                                         prepare=cond.prepare, exclude_roots=cond.pids)
                                if r["delivered_files"] != ONE_MSGS:
                                    raise RuntimeError(f"{srv.name}: {r['delivered_files']} files "
                                                       f"delivered for {ONE_MSGS} messages")
                            elif load == "lat":
                                r = latency_run(srv, user, cond, bare_path)
                            else:
                                r = bench.relay_run(srv, sinks[srv.name], user, MSGS, SESSIONS,
                                                    prepare=cond.prepare)
                                r["anomalies"] = bench.relay_anomalies(r, MSGS)
                                for k in ("cpu_ms_per_msg_by_process", "processes_exited"):
                                    r.pop(k, None)
                        finally:
                            info = dict(cond.finish())
                        name = CEILING if srv is ceiling else srv.name
                        r.update(round=rnd, condition=c, load=load, name=name, condition_info=info)
                        res["runs"].append(r)
                        log_run(r)
                log(f"bench: spool: round {rnd + 1}/{ROUNDS} condition {c} done in "
                    f"{time.time() - t_cond:.0f} s (part so far {time.time() - started:.0f} s)")
    finally:
        for srv in reversed(running):
            try:
                srv.stop()
            except Exception as e:  # keep stopping the others
                log(f"bench: stopping {srv.name}: {e}")
        for cond in conds.values():
            if cond.proc:
                try:
                    cond.stop_neighbour()
                except Exception as e:  # keep cleaning up
                    log(f"bench: spool: stopping the noisy neighbour: {e}")
        if shm != work / "sinks":
            shutil.rmtree(shm, ignore_errors=True)
    res["loadavg_end"] = os.getloadavg()
    res["elapsed_s"] = time.time() - started
    return res


def log_run(r):
    head = f"bench: spool: round {r['round'] + 1} {r['condition']:7} {r['load']:5} {r['name']:12}"
    info = r["condition_info"]
    extra = ""
    if "neighbour_rate" in info:
        extra = f"; neighbour {info['neighbour_rate']:.0f} files/s"
    if "deleted_files" in info:
        extra = (f"; {info['deleted_files']} files made in {info['create_s']:.2f} s, synced in "
                 f"{info['sync_s']:.2f} s, deleted in {info['delete_s']:.2f} s")
    tail = (f"(other work {r['background_busy_pct']:.0f}% before"
            + (f", {r['other_cpu_pct']:.0f}% during" if "other_cpu_pct" in r else "")
            + f"; load {info['loadavg']:.2f}{extra})")
    if r["load"] == "lat":
        what = (f"end of DATA p50 {r['latency_p50_ms']:.3f} ms (p95 {r['latency_p95_ms']:.3f}); "
                f"bare fdatasync p50 {r['bare_p50_ms']:.3f} ms (p95 {r['bare_p95_ms']:.3f}); "
                f"difference {r['latency_minus_bare_ms']:+.3f} ms")
    elif r["load"] == "relay":
        what = (f"accepted {r['accepted_rate']:8.1f}/s relayed {r['relayed_rate']:8.1f}/s"
                + r["anomalies"])
    elif r["name"] == CEILING:
        what = (f"accepted {r['accepted_rate']:8.1f}/s machine {machine_cpu(r):.3f} ms/msg "
                f"(less others' processes {own_cpu(r):.3f})")
    else:
        what = (f"accepted {r['accepted_rate']:8.1f}/s delivered {r['delivered_rate']:8.1f}/s "
                f"cpu {r['cpu_ms_per_msg']:.3f} ms/msg (machine {machine_cpu(r):.3f}, less others' "
                f"processes {own_cpu(r):.3f})")
    log(f"{head} {what} {tail}")


# ---------- the report ----------

def machine_cpu(r):
    """Whole-machine CPU ms/msg less the condition's own process (the neighbour)."""
    return r["machine_cpu_ms_per_msg"] - r.get("excluded_cpu_ms_per_msg", 0.0)


def own_cpu(r):
    """That, less other people's processes (not kernel threads) meanwhile."""
    return machine_cpu(r) - r["foreign_cpu_ms_per_msg"]


# (label, load, value of a run, format, participants it applies to: None = servers)
METRICS = [
    ("accepted msgs/s, 20 sessions", "s20", lambda r: r["accepted_rate"], "{:.1f}", "all"),
    ("delivered msgs/s, 20 sessions", "s20", lambda r: r["delivered_rate"], "{:.1f}", None),
    ("CPU ms/msg, 20 s.: whole machine", "s20", machine_cpu, "{:.3f}", "all"),
    ("  less others' processes", "s20", own_cpu, "{:.3f}", "all"),
    ("CPU ms/msg, 20 s.: server", "s20", lambda r: r["cpu_ms_per_msg"], "{:.3f}", None),
    ("msgs/s, 1 session (smtp-source)", "s1", lambda r: r["accepted_rate"], "{:.1f}", None),
    ("end of DATA to 250, ms (median)", "lat", lambda r: r["latency_p50_ms"], "{:.3f}", None),
    ("  its paired fdatasync, ms (median)", "lat", lambda r: r["bare_p50_ms"], "{:.3f}", None),
    ("  end of DATA - fdatasync, ms", "lat", lambda r: r["latency_minus_bare_ms"], "{:+.3f}", None),
    ("relayed msgs/s, 20 sessions", "relay", lambda r: r["relayed_rate"], "{:.1f}", None),
]


def spread(values, fmt):
    if not values:
        return "-"
    med, lo, hi = statistics.median(values), min(values), max(values)
    if len(values) == 1:
        return fmt.format(med)
    sep = ".." if lo < 0 or "+" in fmt else "-"
    return f"{fmt.format(med)} [{fmt.format(lo)}{sep}{fmt.format(hi)}]"


def runs_of(res, cond, load, name):
    return [r for r in res["runs"] if r["condition"] == cond and r["load"] == load and r["name"] == name]


def ratio(res, cond, load, a, b, key):
    """(ratio of the medians, [ratios of runs of the same round]) of a to b, or None."""
    ra, rb = runs_of(res, cond, load, a), runs_of(res, cond, load, b)
    if not ra or not rb:
        return None
    med = statistics.median(key(r) for r in ra) / statistics.median(key(r) for r in rb)
    by_round = {r["round"]: r for r in rb}
    paired = [key(r) / key(by_round[r["round"]]) for r in ra if r["round"] in by_round]
    return med, paired


def ratio_text(x):
    if not x:
        return "-"
    med, paired = x
    if len(paired) > 1:
        return f"{med:.2f}x [{min(paired):.2f}-{max(paired):.2f}]"
    return f"{med:.2f}x"


def report(res):
    s = res["settings"]
    names = res.get("participants", [])
    terns = [n for n in names if n.startswith("tern-")]
    print()
    print(f"spool conditions (issue 12): {s['size']} B messages, one connection per message; "
          f"{s['sessions']} sessions x{s['msgs']} (accepted, delivered, relay, ceiling), one session "
          f"x{s['one_msgs']} (smtp-source) and x{s['latency_msgs']} (end-of-DATA latency, a bench "
          f"client) after {s['bare_syncs']} bare 4 KiB pwrite+fdatasync; median [min-max] over "
          f"{s['rounds']} round(s), servers alternated, first server rotated each round")
    fs = res["filesystem"]
    print(f"spools, mailboxes and the conditions' files on {fs[0]} {fs[1]} ({fs[2]}); "
          f"load average {res['loadavg_start'][0]:.2f} at the start, {res['loadavg_end'][0]:.2f} "
          f"at the end; {res['elapsed_s'] / 60:.1f} minutes")
    for name, why in res["left_out"].items():
        print(f"(no {name} rows: {why})")
    if not names:
        return
    for cond in s["conditions"]:
        crs = [r for r in res["runs"] if r["condition"] == cond]
        if not crs:
            continue
        busy = [r["background_busy_pct"] for r in crs]
        # From the Maildir runs, which take the neighbour's CPU off (relay_run does not).
        during = [r["other_cpu_pct"] for r in crs if r["load"] in ("s20", "s1") and r["name"] != CEILING]
        loads = [r["condition_info"]["loadavg"] for r in crs]
        what = {"quiet": "quiet",
                "noisy": (f"noisy neighbour ({s['noisy_size'] // 1024} KiB files at "
                          f"{s['noisy_rate']:.0f}/s, each deleted {s['noisy_life']} s later)"),
                "deletes": f"after deletes ({s['delete_files']} files of {s['delete_size'] // 1024} KiB)"}[cond]
        print()
        print(f"condition: {what}")
        line = (f"  other work before the runs: {spread(busy, '{:.0f}')}% busy; during the 20- and "
                f"1-session runs (besides server, client{', neighbour' if cond == 'noisy' else ''}): "
                f"{spread(during, '{:.0f}')}% of the CPUs; load average {spread(loads, '{:.2f}')}")
        print(line)
        if cond == "noisy":
            rates = [r["condition_info"]["neighbour_rate"] for r in crs]
            print(f"  the neighbour wrote {spread(rates, '{:.0f}')} files/s")
        if cond == "deletes":
            ci = [r["condition_info"] for r in crs]
            print(f"  before each run: {spread([i['deleted_files'] for i in ci], '{:.0f}')} files made in "
                  f"{spread([i['create_s'] for i in ci], '{:.2f}')} s, synced in "
                  f"{spread([i['sync_s'] for i in ci], '{:.2f}')} s, deleted in "
                  f"{spread([i['delete_s'] for i in ci], '{:.2f}')} s")
        width = 27
        print(f"  {'':36}" + "".join(f"{n:>{width}}" for n in names))
        for label, load, key, fmt, who in METRICS:
            cells = []
            for n in names:
                if n == CEILING and who != "all":
                    cells.append(f"{'':>{width}}")
                    continue
                cells.append(f"{spread([key(r) for r in runs_of(res, cond, load, n)], fmt):>{width}}")
            print(f"  {label:36}" + "".join(cells))
        relays = [r for r in crs if r["load"] == "relay"]
        if relays:
            exact = all(not r["anomalies"] for r in relays)
            print(f"  relay counts exact (sink, dumps, server log) in every run: "
                  f"{'yes' if exact else 'NO (see the run lines)'}")
        print("  ratios (of the medians; in brackets the range of the ratios of runs of the same round):")
        accepted = lambda r: r["accepted_rate"]  # noqa: E731
        for t in terns:
            print(f"    {t}/postfix: accepted {ratio_text(ratio(res, cond, 's20', t, 'postfix', accepted))}, "
                  f"delivered {ratio_text(ratio(res, cond, 's20', t, 'postfix', lambda r: r['delivered_rate']))}, "
                  f"1 session {ratio_text(ratio(res, cond, 's1', t, 'postfix', accepted))}, "
                  f"relayed {ratio_text(ratio(res, cond, 'relay', t, 'postfix', lambda r: r['relayed_rate']))}")
            print(f"    {t}/{CEILING}: accepted "
                  f"{ratio_text(ratio(res, cond, 's20', t, CEILING, accepted))}")
        for base in (BASELINE_NAME, "tern-syncfs"):
            if base not in terns:
                continue
            for t in terns:
                if t not in (base, BASELINE_NAME):
                    print(f"    {t}/{base}: whole-machine CPU ms/msg at 20 sessions "
                          f"{ratio_text(ratio(res, cond, 's20', t, base, machine_cpu))}, "
                          f"less others' processes "
                          f"{ratio_text(ratio(res, cond, 's20', t, base, own_cpu))}")
        for t in terns:
            if t == BASELINE_NAME:
                continue
            targets = target_lines(res, cond, t, terns)
            if targets:
                print(f"  issue 12's targets, {t}: " + "; ".join(targets))
    print()
    print("(whole machine: all busy CPU time of the machine from the start of smtp-source to the last "
          "delivery, client, sink and kernel threads included, the neighbour's own CPU taken off but not "
          "the writeback of its files; less others' processes: without the CPU of processes other than "
          "the bench's and the servers' (a fuzzer, other test suites), kernel threads still counted. "
          f"The issue's CPU target is half of today's: {BASELINE_NAME}'s in the same run (the code the "
          "issue was filed against, BENCH_SPOOL_BASELINE, built by make bench-baseline), else tern-syncfs's; "
          "its 0.84 ms was measured at 1 KiB)")


def target_lines(res, cond, t, terns):
    """The issue's targets that apply in this condition, met or not (by the
    medians; "(not in every round)" when a same-round ratio misses)."""
    out = []

    def check(label, x, want, higher=True):
        if not x:
            return
        med, paired = x
        ok = med >= want if higher else med <= want
        some = [p for p in paired if (p < want if higher else p > want)]
        note = " (not in every round)" if ok and some else ""
        out.append(f"{label} {med:.2f}x {'met' if ok else 'NOT met'}{note}")

    accepted = lambda r: r["accepted_rate"]  # noqa: E731
    delivered = lambda r: r["delivered_rate"]  # noqa: E731
    if cond == "quiet":
        check(">= 50% of smtp-sink", ratio(res, cond, "s20", t, CEILING, accepted), 0.5)
        check("accepted >= 5x Postfix", ratio(res, cond, "s20", t, "postfix", accepted), 5)
        check("delivered >= 4x", ratio(res, cond, "s20", t, "postfix", delivered), 4)
        check("1 session >= 3x", ratio(res, cond, "s1", t, "postfix", accepted), 3)
        lat = [r["latency_minus_bare_ms"] for r in runs_of(res, cond, "lat", t)]
        one = [r["bare_p50_ms"] for r in runs_of(res, cond, "lat", t)]
        if lat:
            d = statistics.median(lat)
            out.append(f"end of DATA within 0.3 ms of one fdatasync ({statistics.median(one):.3f} ms): "
                       f"{d:+.3f} ms {'met' if d <= 0.3 else 'NOT met'}")
        check("relayed >= 5x", ratio(res, cond, "relay", t, "postfix", lambda r: r["relayed_rate"]), 5)
        today = BASELINE_NAME if BASELINE_NAME in terns else "tern-syncfs"
        if t != today and today in terns:
            check(f"whole-machine CPU/msg (less others' processes) <= half of {today}'s",
                  ratio(res, cond, "s20", t, today, own_cpu), 0.5, higher=False)
    elif cond == "noisy":
        check("accepted >= 3x Postfix", ratio(res, cond, "s20", t, "postfix", accepted), 3)
        check("delivered >= 3x", ratio(res, cond, "s20", t, "postfix", delivered), 3)
    return out


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "neighbour":
        neighbour_main(sys.argv[2:])
    else:
        sys.exit("bench_spool.py is run by bench/bench.py (BENCH_ONLY=spool make bench); "
                 "its only command is the noisy neighbour: neighbour DIR RATE SIZE LIFE MAX_S")
