"""The key process (issue 8, section 2): smtpd, which parses network input,
never holds a TLS private key. Its contexts carry certificates and public
keys; each handshake's signature is made by the key process, which the
master forks, which reads the keys as root and then runs as mail_owner.

The memory test reads smtpd's memory (/proc/PID/mem, as root) after
handshakes with every key and looks for the private key's secret numbers
(the RSA private exponent and first prime, the EC private scalar, as
`openssl pkey -text` prints them) in both byte orders (big-endian as in
DER, little-endian as in OpenSSL's BIGNUM words), and for a line of the
key file's base64. The same search must find them in the key process: that
shows the search itself works."""
import os
import re
import signal
import time

import pytest

import test_tls

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="reads other processes' memory: needs root")


def secrets_of(key_path):
    """Byte strings that must never be found in smtpd: pieces of the key's
    secret numbers (both byte orders) and a base64 line of its file."""
    import subprocess
    text = subprocess.run(["openssl", "pkey", "-in", str(key_path), "-text", "-noout"],
                          check=True, capture_output=True, text=True).stdout
    needles = []
    for field in ("privateExponent", "prime1", "priv"):
        m = re.search(rf"^{field}:\s*\n((?:\s+[0-9a-f:]+\n)+)", text, re.M)
        if not m:
            continue
        number = bytes.fromhex(re.sub(r"[^0-9a-f]", "", m.group(1))).lstrip(b"\0")
        piece = number[:32]
        needles.append((f"{field} (big-endian)", piece))
        needles.append((f"{field} (little-endian)", number[::-1][:32]))
    assert needles, text
    body = [line for line in key_path.read_text().splitlines() if line and not line.startswith("-----")]
    needles.append(("a base64 line of the key file", body[len(body) // 2].encode()))
    return needles


def readable_memory(pid, limit=1 << 30):
    """The readable mappings of pid, less the sanitizer's shadow (huge,
    mostly never touched) and the kernel's [vvar]."""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            name = fields[5] if len(fields) > 5 else ""
            if fields[1][0] != "r" or end - start > limit or name in ("[vvar]", "[vsyscall]"):
                continue
            try:
                mem.seek(start)
                yield mem.read(end - start)
            except OSError:
                continue


def found_in(pid, needles):
    hits = set()
    for chunk in readable_memory(pid):
        for what, needle in needles:
            if needle in chunk:
                hits.add(what)
    return sorted(hits)


def process_pid(tern, role):
    """The pid of the newest process of a role, from its log lines."""
    pids = re.findall(rf"tern/{role}\[(\d+)\]", tern.log_text())
    assert pids, tern.log_text()[-2000:]
    return int(pids[-1])


def handshakes(tern):
    """One handshake with each key and each kind of signature: TLS 1.3
    (RSA-PSS, ECDSA) and TLS 1.2 (PKCS#1 v1.5, ECDSA)."""
    for args in (["-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256"],
                 ["-tls1_3", "-sigalgs", "ecdsa_secp256r1_sha256"],
                 ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256", "-sigalgs", "RSA+SHA256"],
                 ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]):
        out = test_tls.s_client(tern, *args)
        assert "New, TLSv1." in out and "250" in out, (args, out[-1500:])


def check_no_key_in_smtpd(tern, keys):
    needles = [n for key in keys for n in secrets_of(key)]
    tern.wait_log("tern/keys[")
    handshakes(tern)
    smtpd = process_pid(tern, "smtpd")
    assert found_in(smtpd, needles) == [], "smtpd holds private key material"
    # the search works: the key process does hold them
    assert len(found_in(process_pid(tern, "keys"), needles)) >= 3


def test_smtpd_memory_holds_no_private_key(tern_instance, tls_files):
    (rsa_cert, rsa_key), (ec_cert, ec_key) = tls_files["rsa"], tls_files["ec"]
    tern_instance.write_config(smtpd_tls_cert_file=str(rsa_cert), smtpd_tls_key_file=str(rsa_key),
                               smtpd_tls_eccert_file=str(ec_cert), smtpd_tls_eckey_file=str(ec_key))
    tern = tern_instance.start()
    check_no_key_in_smtpd(tern, [rsa_key, ec_key])


def test_smtpd_memory_holds_no_private_key_with_chain_files(tern_instance, tls_files, work_dir):
    """smtpd_tls_chain_files hold key and certificates in one file, which the
    master reads for the certificates: the key part must not stay behind."""
    chains = []
    for kind in ("rsa", "ec"):
        cert, key = tls_files[kind]
        chain = work_dir / f"{kind}-chain.pem"
        chain.write_text(key.read_text() + cert.read_text())
        chain.chmod(0o600)
        chains.append(chain)
    tern_instance.write_config(smtpd_tls_chain_files=" ".join(str(c) for c in chains))
    tern = tern_instance.start()
    check_no_key_in_smtpd(tern, [tls_files["rsa"][1], tls_files["ec"][1]])


def test_key_process_runs_as_mail_owner_and_is_not_dumpable(tern_instance, tls_files):
    tern = test_tls.tls_tern(tern_instance, tls_files)
    assert "New, TLSv1." in test_tls.s_client(tern)
    pid = process_pid(tern, "keys")
    status = open(f"/proc/{pid}/status").read()
    uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)\s+(\d+)", status, re.M).groups()
    assert "0" not in uids, status
    smtpd_uid = re.search(r"^Uid:\s+(\d+)", open(f"/proc/{process_pid(tern, 'smtpd')}/status").read(), re.M)
    assert uids[0] == smtpd_uid.group(1)
    # not dumpable: smtpd, the same user, can neither ptrace it nor read its memory
    import subprocess
    out = subprocess.run(["setpriv", f"--reuid={uids[0]}", "--regid=0", "--clear-groups", "cat",
                          f"/proc/{pid}/environ"], capture_output=True)
    assert out.returncode != 0, out


def test_mail_owner_processes_are_not_dumpable_whatever_the_sysctl(tern_instance, tls_files):
    """The queue holds the DKIM signing keys: no other process of the mail
    owner (a compromised smtpd) may read its memory, even where an
    administrator set fs.suid_dumpable = 1."""
    import subprocess
    sysctl = "/proc/sys/fs/suid_dumpable"
    before = open(sysctl).read().strip()
    with open(sysctl, "w") as f:
        f.write("1")
    try:
        tern = test_tls.tls_tern(tern_instance, tls_files)
        assert "New, TLSv1." in test_tls.s_client(tern)
        with tern.smtp() as c:      # the queue logs its first message
            c.sendmail("a@example.org", ["alice@example.test"], b"Subject: x\r\n\r\nx\r\n")
        tern.wait_log("tern/queue[")
        for role in ("queue", "smtpd"):
            pid = process_pid(tern, role)
            uid = re.search(r"^Uid:\s+(\d+)", open(f"/proc/{pid}/status").read(), re.M).group(1)
            assert os.stat(f"/proc/{pid}/mem").st_uid == 0, role   # root's: not dumpable
            out = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "cat",
                                  f"/proc/{pid}/environ"], capture_output=True)
            assert out.returncode != 0, (role, out)
    finally:
        with open(sysctl, "w") as f:
            f.write(before)


def wait_for_handshake(tern, timeout, version="-tls1_3"):
    """Tries handshakes until one works: while a process restarts, one may
    fail, cleanly and logged."""
    expect = "New, TLSv1.2" if version == "-tls1_2" else "New, TLSv1."
    deadline = time.time() + timeout
    while True:
        out = test_tls.s_client(tern, version)
        if expect in out and "250" in out:
            return
        assert time.time() < deadline, out[-1500:]
        time.sleep(0.5)


def test_handshake_after_the_key_process_was_killed(tern_instance, tls_files):
    tern = test_tls.tls_tern(tern_instance, tls_files)
    tern.wait_log("tern/keys[")
    assert "New, TLSv1." in test_tls.s_client(tern, "-tls1_3")
    old = process_pid(tern, "keys")
    os.kill(old, signal.SIGKILL)
    tern.wait_log(f"process keys pid {old} killed by signal 9")
    # the master restarts it (after a pause); a handshake after it works
    wait_for_handshake(tern, 20)
    assert process_pid(tern, "keys") != old
    # smtpd itself kept running
    assert len(set(re.findall(r"tern/smtpd\[(\d+)\]", tern.log_text()))) == 1


def test_reload_takes_new_keys_all_or_nothing(tern_instance, tls_files, work_dir):
    tern = test_tls.tls_tern(tern_instance, tls_files)
    tern.wait_log("tern/keys[")
    first = process_pid(tern, "keys")
    # a key that does not match: the reload is refused, the old keys serve on
    (ec_cert, _), (_, rsa_key) = tls_files["ec"], tls_files["rsa"]
    tern.write_config(smtpd_tls_cert_file=str(ec_cert), smtpd_tls_key_file=str(rsa_key))
    tern.proc.send_signal(signal.SIGHUP)
    log = tern.wait_log("reload refused")
    assert "does not match the certificate in " + str(ec_cert) in log, log[-2000:]
    assert "New, TLSv1." in test_tls.s_client(tern, "-tls1_3")
    # the RSA pair: a new key process holds it, the old one goes
    rsa_cert, rsa_key = tls_files["rsa"]
    tern.write_config(smtpd_tls_cert_file=str(rsa_cert), smtpd_tls_key_file=str(rsa_key))
    tern.proc.send_signal(signal.SIGHUP)
    tern.wait_log("reload -- version")
    tern.wait_log("holding 1 TLS private key", count=2)
    assert process_pid(tern, "keys") != first
    out = test_tls.s_client(tern, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")
    assert "New, TLSv1.2" in out and "250" in out, out[-1500:]


def test_handshake_after_smtpd_was_killed(tern_instance, tls_files):
    """A restarted smtpd gets a new socketpair, and the key process is
    restarted to serve it."""
    tern = test_tls.tls_tern(tern_instance, tls_files)
    assert "New, TLSv1." in test_tls.s_client(tern, "-tls1_2")
    smtpd, keys = process_pid(tern, "smtpd"), process_pid(tern, "keys")
    os.kill(smtpd, signal.SIGKILL)
    tern.wait_log(f"process smtpd pid {smtpd} killed by signal 9")
    wait_for_handshake(tern, 20, "-tls1_2")
    assert process_pid(tern, "smtpd") != smtpd and process_pid(tern, "keys") != keys
    assert "killed by signal" not in tern.log_text().split(f"pid {smtpd} killed by signal 9", 1)[1]


def test_a_stopped_key_process_is_replaced(tern_instance, tls_files):
    """The key process shares smtpd's uid: if it cannot act on the SIGTERM
    that asks it to make way for a new smtpd (stopped, or blocked by a
    compromised smtpd), the master kills it after a grace and starts one,
    so TLS comes back."""
    tern = test_tls.tls_tern(tern_instance, tls_files)
    tern.wait_log("tern/keys[")
    assert "New, TLSv1." in test_tls.s_client(tern, "-tls1_3")
    keys, smtpd = process_pid(tern, "keys"), process_pid(tern, "smtpd")
    os.kill(keys, signal.SIGSTOP)
    os.kill(smtpd, signal.SIGKILL)
    tern.wait_log(f"process smtpd pid {smtpd} killed by signal 9")
    tern.wait_log(f"the key process {keys} did not stop within 5 seconds; killing it", timeout=15)
    wait_for_handshake(tern, 20)
    assert process_pid(tern, "keys") != keys


def key_channel_of(smtpd, master):
    """A duplicate of smtpd's end of its key socketpair, as code running in
    smtpd would hold it (root's pidfd_getfd stands in for that)."""
    import ctypes
    import socket
    import struct
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = libc.syscall(434, smtpd, 0)          # pidfd_open
    assert pidfd >= 0
    try:
        for name in os.listdir(f"/proc/{smtpd}/fd"):
            try:
                if not os.readlink(f"/proc/{smtpd}/fd/{name}").startswith("socket:"):
                    continue
            except OSError:
                continue
            fd = libc.syscall(438, pidfd, int(name), 0)   # pidfd_getfd
            if fd < 0:
                continue
            s = socket.socket(fileno=fd)
            if s.family == socket.AF_UNIX and s.type == socket.SOCK_SEQPACKET:
                pid = struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0]
                if pid == master and not s.getpeername():
                    return s
            s.detach()
            os.close(fd)
    finally:
        os.close(pidfd)
    raise AssertionError("no key channel in smtpd")


def test_key_process_drops_an_smtpd_that_reads_no_answers(tern_instance, tls_files):
    """A compromised smtpd that asks and never reads must not block the key
    process in send(): it loses its channel, and a new smtpd is served."""
    import hashlib
    import socket
    import struct
    tern = test_tls.tls_tern(tern_instance, tls_files)
    tern.wait_log("tern/keys[")
    assert "New, TLSv1." in test_tls.s_client(tern, "-tls1_3")
    smtpd = process_pid(tern, "smtpd")
    s = key_channel_of(smtpd, tern.proc.pid)
    s.setblocking(False)
    data = hashlib.sha256(b"x").hexdigest()
    request = struct.pack("<HI", 15, 1)          # KEY_SIGN
    for k, v in (("key", "0" * 64), ("op", "ecdsa"), ("data", data)):
        request += bytes([len(k)]) + k.encode() + struct.pack("<I", len(v)) + v.encode() + b"\0"
    sent = 0
    deadline = time.time() + 10
    while time.time() < deadline and "dropping a channel from smtpd: cannot answer" not in tern.log_text():
        try:
            s.send(request)
            sent += 1
        except BlockingIOError:
            time.sleep(0.05)
        except OSError:
            break
    tern.wait_log("dropping a channel from smtpd: cannot answer")
    s.close()
    os.kill(smtpd, signal.SIGKILL)
    tern.wait_log(f"process smtpd pid {smtpd} killed by signal 9")
    wait_for_handshake(tern, 20)
    assert "did not stop within" not in tern.log_text()   # it acted on SIGTERM itself
