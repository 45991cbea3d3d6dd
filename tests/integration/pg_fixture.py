"""A throwaway PostgreSQL cluster for tests of pgsql: tables.

PgCluster makes a cluster in a temporary directory (initdb, then the
postgres server in the foreground), listening on 127.0.0.1 at a free port and
on a unix socket inside the directory, with fsync off: nothing in it is meant
to survive. It makes a database, a login role with a password (which needs
quoting) and runs SQL as the superuser over the socket. stop() and start()
may repeat, to take the database down and bring it back; cleanup() stops it
and removes everything.

initdb and postgres refuse to run as root: as root (the tests' usual case)
both run as the unprivileged system user tern (scripts/deps.sh makes it),
through setpriv, which execs, so the process we hold is postgres itself.

Run as a script (`pg_fixture.py serve`) it serves C tests: it prints
"READY <port> <socket-dir> <dbname> <user> <password>" and then obeys one
command a line on stdin: "stop", "start", "sql <statement>", "quit"; each
answered with "OK" or "ERR <why>" on one line.
"""
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DBNAME = "mail"
DBUSER = "lookup"
DBPASSWORD = "s3cret 'quoted' \\pass"


def pg_bin(name):
    """The path of a PostgreSQL server program, or None when not installed."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def free_port(host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class PgCluster:
    """One private PostgreSQL server; start() and stop() may repeat."""

    def __init__(self, port=None):
        self.initdb = pg_bin("initdb")
        self.postgres = pg_bin("postgres")
        self.psql_bin = shutil.which("psql") or pg_bin("psql")
        if not (self.initdb and self.postgres and self.psql_bin):
            raise RuntimeError("PostgreSQL's server programs are missing (Debian package postgresql)")
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="tern-pg-"))
        self.data = self.dir / "data"
        self.sockdir = self.dir / "sock"
        self.sockdir.mkdir()
        self.log_path = self.dir / "postgres.log"
        self.as_user = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("tern")
            for p in (self.dir, self.sockdir):
                os.chown(p, pw.pw_uid, pw.pw_gid)
            self.dir.chmod(0o755)   # the tests' root user reads the log
            self.as_user = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", "--"]
        self.proc = None
        self._initdb()

    def _run_as(self, args, **kw):
        return subprocess.run(self.as_user + args, check=True, capture_output=True, timeout=120, **kw)

    def _initdb(self):
        # trust for the superuser over our private socket; a password over TCP
        self._run_as([self.initdb, "-D", str(self.data), "-U", "postgres", "-E", "UTF8",
                      "--locale=C", "--no-sync", "--auth-local=trust", "--auth-host=scram-sha-256"],
                     cwd="/")
        conf = self.data / "postgresql.conf"
        with open(conf, "a") as f:
            f.write(f"""
listen_addresses = '127.0.0.1'
port = {self.port}
unix_socket_directories = '{self.sockdir}'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 16MB
max_connections = 20
logging_collector = off
""")
        self.start()
        self.sql(f"CREATE ROLE {DBUSER} LOGIN PASSWORD '{DBPASSWORD.replace(chr(39), chr(39) * 2)}'",
                 db="postgres")
        self.sql(f"CREATE DATABASE {DBNAME} OWNER {DBUSER}", db="postgres")

    def start(self):
        if self.proc is not None:
            return
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.as_user + [self.postgres, "-D", str(self.data)],
                                     stdout=log, stderr=log, cwd="/")
        log.close()
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("postgres exited:\n" + self.log())
            r = subprocess.run([self.psql_bin, "-h", str(self.sockdir), "-p", str(self.port), "-U",
                                "postgres", "-d", "postgres", "-Atc", "SELECT 1"],
                               capture_output=True, timeout=10)
            if r.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("postgres did not start:\n" + self.log())

    def stop(self):
        """Fast shutdown: open sessions are ended, as when a server goes down."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def sql(self, statement, db=DBNAME):
        """Runs statement; returns psql's unaligned output. In the lookup
        database as its owner (the role tables name), so what it makes the
        lookups may read."""
        as_owner = ["-c", f"SET ROLE {DBUSER}"] if db == DBNAME else []
        r = subprocess.run([self.psql_bin, "-h", str(self.sockdir), "-p", str(self.port), "-U", "postgres",
                            "-d", db, "-q", "-v", "ON_ERROR_STOP=1", "-At", *as_owner, "-c", statement],
                           capture_output=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"psql failed: {statement}\n{r.stderr.decode(errors='replace')}")
        return r.stdout.decode()

    def cf_text(self, query, hosts=None, **extra):
        """A pgsql: table's configuration for this cluster (password login over TCP)."""
        lines = [f"hosts = {hosts or f'inet:127.0.0.1:{self.port}'}", f"user = {DBUSER}",
                 f"password = {DBPASSWORD}", f"dbname = {DBNAME}", f"query = {query}"]
        lines += [f"{k} = {v}" for k, v in extra.items()]
        return "\n".join(lines) + "\n"

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def serve():
    cluster = PgCluster()
    try:
        print(f"READY {cluster.port} {cluster.sockdir} {DBNAME} {DBUSER} {DBPASSWORD}", flush=True)
        for line in sys.stdin:
            cmd, _, arg = line.strip().partition(" ")
            try:
                if cmd == "stop":
                    cluster.stop()
                elif cmd == "start":
                    cluster.start()
                elif cmd == "sql":
                    cluster.sql(arg)
                elif cmd == "quit":
                    print("OK", flush=True)
                    break
                else:
                    raise RuntimeError(f"unknown command {cmd}")
                print("OK", flush=True)
            except Exception as e:  # the C test reads the reason
                print("ERR " + str(e).replace("\n", " "), flush=True)
    finally:
        cluster.cleanup()


if __name__ == "__main__":
    if sys.argv[1:] == ["serve"]:
        serve()
    else:
        sys.exit("usage: pg_fixture.py serve")
