"""Several servers, one user base (issue 10): two tern instances, the two MX
hosts of the same domains, read their domains, mailboxes and aliases from
one PostgreSQL (pg_fixture.PgCluster). A domain, a mailbox and an alias
added with one INSERT each are accepted by both at once, without a restart;
a mailbox deleted is refused by both; with PostgreSQL stopped both answer
451 4.3.0 and nothing is bounced; both recover when it returns. The
lookups never block smtpd's loop: a session waits for its table while the
others go on (map_async.h)."""
import os
import time

import pytest

from conftest import TernInstance, free_port, settle_queue
from pg_fixture import PgCluster, pg_bin

VMAIL_UID = 5000


@pytest.fixture(scope="module")
def pg():
    if not pg_bin("initdb"):
        pytest.skip("PostgreSQL is not installed (Debian package postgresql)")
    if os.geteuid() != 0:
        pytest.skip("virtual mailboxes are written as their uid: needs root")
    cluster = PgCluster(port=free_port())
    cluster.sql("CREATE TABLE domains (domain text PRIMARY KEY)")
    cluster.sql("CREATE TABLE mailboxes (address text PRIMARY KEY, path text NOT NULL)")
    cluster.sql("CREATE TABLE aliases (address text NOT NULL, goto text NOT NULL)")
    cluster.sql("GRANT SELECT ON domains, mailboxes, aliases TO lookup")
    yield cluster
    cluster.cleanup()


def server(work_dir, name, pg):
    d = work_dir / name
    d.mkdir(parents=True)
    tables = {}
    for table, query in (("domains", "SELECT domain FROM domains WHERE domain = '%s'"),
                         ("mailboxes", "SELECT path FROM mailboxes WHERE address = '%s'"),
                         ("aliases", "SELECT goto FROM aliases WHERE address = '%s'")):
        cf = d / f"pgsql-{table}.cf"
        cf.write_text(pg.cf_text(query))
        cf.chmod(0o644)   # smtpd and the queue read it as mail_owner
        tables[table] = f"pgsql:{cf}"
    base = d / "vhosts"
    base.mkdir()
    os.chown(base, VMAIL_UID, VMAIL_UID)
    inst = TernInstance(d / "tern")
    inst.write_config(mynetworks="192.0.2.0/24", virtual_mailbox_domains=tables["domains"],
                      virtual_mailbox_maps=tables["mailboxes"], virtual_alias_maps=tables["aliases"],
                      virtual_mailbox_base=str(base), virtual_uid_maps=f"static:{VMAIL_UID}",
                      virtual_gid_maps=f"static:{VMAIL_UID}")
    inst.start()
    return inst, base


def rcpt(inst, addr):
    with inst.smtp() as c:
        c.ehlo("client.example")
        c.mail("someone@elsewhere.example")
        return c.rcpt(addr)


def until(what, fn, timeout=8.0):
    deadline = time.time() + timeout
    while True:
        got = fn()
        if got or time.time() > deadline:
            return got
        time.sleep(0.2)


def test_two_servers_share_one_user_base(work_dir, pg):
    a, base_a = server(work_dir, "a", pg)
    b, base_b = server(work_dir, "b", pg)
    try:
        for inst in (a, b):
            code, text = rcpt(inst, "alice@hosted.test")
            assert code == 554 and b"Relay access denied" in text, (code, text)   # not our domain yet
        pg.sql("INSERT INTO domains VALUES ('hosted.test')")
        pg.sql("INSERT INTO mailboxes VALUES ('alice@hosted.test', 'hosted.test/alice/')")
        # both accept at once (an answer is kept 1 s at most)
        for inst in (a, b):
            assert until("accepted", lambda: rcpt(inst, "alice@hosted.test")[0] == 250), inst.log_text()[-3000:]
            assert rcpt(inst, "bob@hosted.test")[0] == 550
        pg.sql("INSERT INTO aliases VALUES ('info@hosted.test', 'alice@hosted.test')")
        assert until("alias", lambda: rcpt(b, "info@hosted.test")[0] == 250)
        with b.smtp() as c:
            c.sendmail("someone@elsewhere.example", ["info@hosted.test"],
                       "From: someone@elsewhere.example\r\nSubject: via-sql\r\n\r\nhello\r\n")
        maildir = base_b / "hosted.test" / "alice" / "new"
        assert until("delivered", lambda: maildir.is_dir() and list(maildir.iterdir())), b.log_text()[-3000:]
        assert b"via-sql" in list(maildir.iterdir())[0].read_bytes()
        # deleted: refused by both
        pg.sql("DELETE FROM mailboxes WHERE address = 'alice@hosted.test'")
        for inst in (a, b):
            assert until("refused", lambda: rcpt(inst, "alice@hosted.test")[0] == 550)
        # the database down: 451 from both, nothing bounced; back: accepted again
        pg.sql("INSERT INTO mailboxes VALUES ('carol@hosted.test', 'hosted.test/carol/')")
        pg.stop()
        for inst in (a, b):
            code, text = rcpt(inst, "carol@hosted.test")
            assert code == 451 and text.startswith(b"4.3.0"), (code, text)
        pg.start()
        for inst in (a, b):
            assert until("recovered", lambda: rcpt(inst, "carol@hosted.test")[0] == 250), inst.log_text()[-3000:]
        for inst in (a, b):
            assert "status=bounced" not in inst.log_text()
            settle_queue(inst)
    finally:
        a.stop()
        b.stop()
    for inst in (a, b):
        assert not inst.sanitizer_reports(), inst.stderr_text()[-4000:]
        assert "children did not stop in time" not in inst.stderr_text()
        assert "sandbox: refused" not in inst.log_text(), inst.log_text()[-3000:]
