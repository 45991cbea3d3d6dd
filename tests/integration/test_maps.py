"""Lookup tables from outside: `tern map query` (like postmap -q) on the
command line, a pcre: access table in a running server (read from
inside smtpd's sandbox, matched against the whole sender address), and a
cidr: client access table refusing the client by its address."""
from conftest import raw_session


def test_map_query(tern_instance, work_dir):
    table = work_dir / "checks.pcre"
    table.write_text("/^(.*)@example\\.com$/   user $1\n"
                     "/^esc$/                 a\x1b[31mred\n"
                     "/bad[/                  skipped\n")
    spec = f"pcre:{table}"
    # No configuration or server is needed.
    r = tern_instance.cli("map", "query", spec, "Joe@EXAMPLE.com")
    assert (r.returncode, r.stdout) == (0, b"user Joe\n")
    assert f"{table}, line 3: bad regular expression" in r.stderr.decode()
    # One line per key found; a key not found makes the status 1.
    r = tern_instance.cli("map", "query", spec, "a@example.com", "nobody@else", "b@example.com")
    assert (r.returncode, r.stdout) == (1, b"user a\nuser b\n")
    # Values come out printable, as in the log.
    r = tern_instance.cli("map", "query", spec, "ESC")
    assert (r.returncode, r.stdout) == (0, b"a?[31mred\n")
    # regexp: and the text tables work the same way.
    (work_dir / "r.regexp").write_text("/^x(y+)z$/ got $1\n")
    (work_dir / "t").write_text("Key value with spaces\n")
    r = tern_instance.cli("map", "query", f"regexp:{work_dir}/r.regexp", "xYYz")
    assert (r.returncode, r.stdout) == (0, b"got YY\n")
    r = tern_instance.cli("map", "query", f"texthash:{work_dir}/t", "KEY")
    assert (r.returncode, r.stdout) == (0, b"value with spaces\n")
    # A missing file is a temporary error; so are bad specs and usage.
    r = tern_instance.cli("map", "query", f"pcre:{work_dir}/missing", "x")
    assert r.returncode == 2 and r.stdout == b""
    assert tern_instance.cli("map", "query", "nosuch:/x", "k").returncode == 2
    assert tern_instance.cli("map", "query", spec).returncode == 2
    assert tern_instance.cli("map", "list", spec, "k").returncode == 2


def rcpt_reply(tern, sender):
    s = raw_session(tern)
    s.read_reply()
    s.cmd("EHLO client.example")
    code, text = s.cmd(f"MAIL FROM:<{sender}>")
    assert code == 250, text
    reply = s.cmd("RCPT TO:<you@localhost>")
    s.close()
    return reply


def test_pcre_sender_access(tern_instance, work_dir):
    checks = work_dir / "sender_checks"
    checks.write_text("/^spam[0-9]+@/           REJECT numbered sender\n"
                      "/@(.+)\\.invalid$/        550 5.7.1 no mail from $1\n"
                      "!/@/                     REJECT no domain\n")
    tern_instance.write_config(smtpd_sender_restrictions=f"check_sender_access pcre:{checks}")
    tern = tern_instance.start()
    assert rcpt_reply(tern, "SPAM42@example.org") == (
        554, "554 5.7.1 <SPAM42@example.org>: Sender address rejected: numbered sender")
    # smtpd hands access tables the domain in lower case (the local part as sent)
    assert rcpt_reply(tern, "bob@Junk.invalid") == (
        550, "550 5.7.1 <bob@Junk.invalid>: Sender address rejected: no mail from junk")
    # Only the whole address is looked up: "example.org" alone has no '@'.
    assert rcpt_reply(tern, "bob@example.org")[0] == 250


def test_cidr_map_query(tern_instance, work_dir):
    table = work_dir / "clients.cidr"
    table.write_text("192.168.1.1      OK\n"
                     "192.168.0.0/16   REJECT\n"
                     "if 2001:db8::/32\n"
                     "!2001:db8::/48   outside the /48\n"
                     "endif\n"
                     "10.1.0.0/8       host bits set\n")
    spec = f"cidr:{table}"
    r = tern_instance.cli("map", "query", spec, "192.168.1.1", "192.168.7.7", "2001:db8:1::1")
    assert (r.returncode, r.stdout) == (0, b"OK\nREJECT\noutside the /48\n")
    assert f"{table}, line 6: \"10.1.0.0/8\" has address bits set past its prefix" in r.stderr.decode()
    # Not in any block, or no address at all: not found.
    for key in ("2001:db8::1", "10.1.2.3", "mail.example.com"):
        r = tern_instance.cli("map", "query", spec, key)
        assert (r.returncode, r.stdout) == (1, b""), key


def test_cidr_client_access(tern_instance, work_dir):
    """check_client_access cidr:/path: the client's address (127.0.0.1
    here) is matched against the blocks; its name never is."""
    table = work_dir / "clients.cidr"
    table.write_text("# first match wins\n"
                     "127.0.0.2        OK\n"
                     "127.0.0.0/8      REJECT loopback clients are refused\n")
    tern_instance.write_config(smtpd_client_restrictions=f"check_client_access cidr:{table}")
    tern = tern_instance.start()
    s = raw_session(tern)
    s.read_reply()
    s.cmd("EHLO client.example")
    assert s.cmd("MAIL FROM:<a@example.org>")[0] == 250
    code, text = s.cmd("RCPT TO:<you@localhost>")
    s.close()
    assert code == 554, text
    assert text.startswith("554 5.7.1 <") and text.endswith(
        "[127.0.0.1]>: Client host rejected: loopback clients are refused"), text
    # The table is reread when it changes: a rule before it lets the client in.
    new = work_dir / "clients.new"
    new.write_text("127.0.0.1 OK\n" + table.read_text())
    new.rename(table)
    import time
    time.sleep(1.2)  # the default check interval
    assert rcpt_reply(tern, "a@example.org")[0] == 250
