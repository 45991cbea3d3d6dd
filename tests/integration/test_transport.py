"""transport(5)'s forms in transport_maps, for real: the null entry ":"
(the recipient goes as it would without the entry), ":nexthop" (the
class's transport to another next hop), "transport:" (the class's next
hop), the "*" wildcard (asked last), retry:, virtual:, local: with a next
hop, and relay_transport for relay_domains (an entry's next hop wins over
the parameter's). Remote next hops are recording SMTP peers (aiosmtpd) on
free loopback ports; relayhost stays conftest's closed port, so mail that
takes the usual route stays deferred. `sendmail -bv` and `tern map query`
say what the forms do."""
import os
import time

import pytest

from conftest import free_port, settle_queue

aiosmtpd = pytest.importorskip("aiosmtpd", reason="needs aiosmtpd (scripts/deps.sh test)")
from relay_peers import RecordingPeer  # noqa: E402

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="virtual mailboxes are written as their uid: needs root")

VMAIL_UID = 5000


@pytest.fixture
def peers():
    """Two recording peers on free ports of 127.0.0.1."""
    started = [RecordingPeer("127.0.0.1", free_port()), RecordingPeer("127.0.0.1", free_port())]
    yield started
    for p in started:
        p.stop()


def send(inst, rcpts, subject):
    with inst.smtp() as c:
        refused = c.sendmail("someone@example.test", rcpts,
                             f"From: someone@example.test\r\nSubject: {subject}\r\n\r\nhello\r\n")
    assert refused == {}


def rcpts_of(peer, count, timeout=15):
    """The recipients peer has received once there are count of them, sorted."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        with peer.lock:
            got = sorted(r for m in peer.received for r in m.rcpts)
        if len(got) >= count:
            return got
        time.sleep(0.05)
    raise AssertionError(f"peer got {got}, expected {count} recipients")


def test_null_entry_nexthop_only_and_wildcard(tern_instance, work_dir, peers):
    first, second = peers
    table = work_dir / "transport"
    table.write_text(
        # "*" answers only when nothing else does
        f"*                  smtp:[127.0.0.1]:{first.port}\n"
        # a local domain stays local; a remote one takes its usual route
        "example.test       :\n"
        "usual.example      :\n"
        # the class's transport (smtp) to another next hop
        f"hop.example        :[127.0.0.1]:{second.port}\n"
        # the transport named, the class's next hop kept: default_transport's
        "keep.example       relay:\n")
    inst = tern_instance
    inst.write_config(mynetworks="127.0.0.0/8", transport_maps=f"texthash:{table}",
                      default_transport=f"smtp:[127.0.0.1]:{second.port}")
    inst.start()
    send(inst, ["bob@example.test", "a@anywhere.example", "b@hop.example", "c@keep.example", "d@usual.example"],
         "forms")
    assert b"Subject: forms" in inst.wait_messages("bob")[0].read_bytes()
    assert rcpts_of(first, 1) == ["a@anywhere.example"]
    # hop.example by its entry; keep.example and usual.example by
    # default_transport's next hop
    assert rcpts_of(second, 3) == ["b@hop.example", "c@keep.example", "d@usual.example"]
    assert "unsupported transport" not in inst.log_text()
    settle_queue(inst)

    out = inst.cli("sendmail", "-bv", "bob@example.test", "a@anywhere.example", "b@hop.example",
                   "d@usual.example").stdout.decode()
    assert out.splitlines() == [
        "<bob@example.test>: deliverable: local",
        f"<a@anywhere.example>: would be relayed (transport_maps: smtp:[127.0.0.1]:{first.port}); "
        "not verified with the next hop",
        f"<b@hop.example>: would be relayed (transport_maps: smtp:[127.0.0.1]:{second.port}); "
        "not verified with the next hop",
        f"<d@usual.example>: would be relayed (default_transport: smtp:[127.0.0.1]:{second.port}); "
        "not verified with the next hop",
    ], out
    # postmap -q's answers: the entries as written, "*" and ":" included
    r = inst.cli("map", "query", f"texthash:{table}", "*", "example.test")
    assert r.returncode == 0 and r.stdout.decode().splitlines() == [f"smtp:[127.0.0.1]:{first.port}", ":"], r


def test_relay_transport_and_an_entry_nexthop_over_it(tern_instance, work_dir, peers):
    """A backup MX sends relay_domains to its primary through
    relay_transport; an entry's next hop wins over the parameter's."""
    primary, other = peers
    table = work_dir / "transport"
    table.write_text(f"other.backup.example   :[127.0.0.1]:{other.port}\n")
    inst = tern_instance
    inst.write_config(relay_domains="backup.example", relay_transport=f"relay:[127.0.0.1]:{primary.port}",
                      transport_maps=f"texthash:{table}")
    inst.start()
    # from a stranger: relay_domains are relayed for anyone
    send(inst, ["a@backup.example"], "to primary")
    send(inst, ["b@other.backup.example"], "to other")
    assert rcpts_of(primary, 1) == ["a@backup.example"]
    assert rcpts_of(other, 1) == ["b@other.backup.example"]
    inst.wait_log(rf"to=<a@backup\.example>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:{primary.port},.*status=sent",
                  regex=True)
    out = inst.cli("sendmail", "-bv", "a@backup.example").stdout.decode()
    assert out == (f"<a@backup.example>: would be relayed (relay_transport: relay:[127.0.0.1]:{primary.port}); "
                   "not verified with the next hop\n"), out
    settle_queue(inst)


def test_retry_and_local_with_a_nexthop(tern_instance, work_dir):
    table = work_dir / "transport"
    table.write_text("slow.example   retry:4.3.0 upgrade in progress\n"
                     "lcl.example    local:ignored.example\n"
                     "plain.example  retry:\n")
    inst = tern_instance
    inst.write_config(mynetworks="127.0.0.0/8", transport_maps=f"texthash:{table}")
    inst.start()
    send(inst, ["a@slow.example", "b@plain.example", "carol@lcl.example"], "retry")
    inst.wait_log(r"to=<a@slow\.example>, relay=none,.*dsn=4\.3\.0, status=deferred \(upgrade in progress\)",
                  regex=True)
    inst.wait_log(r"to=<b@plain\.example>, relay=none,.*dsn=4\.0\.0, status=deferred "
                  r"\(delivery to this destination is deferred\)", regex=True)
    # local: delivers to the local part's mailbox; its next hop is ignored
    assert b"Subject: retry" in inst.wait_messages("carol")[0].read_bytes()
    r = inst.cli("sendmail", "-bv", "a@slow.example", "carol@lcl.example")
    assert r.returncode == 75, r
    assert r.stdout.decode().splitlines() == [
        "<a@slow.example>: deferred: 4.3.0 upgrade in progress (transport_maps: retry)",
        "<carol@lcl.example>: deliverable: local (transport_maps: local:ignored.example)",
    ], r.stdout


@needs_root
def test_virtual_entry_uses_the_virtual_mailbox_delivery(tern_instance, work_dir):
    """virtual: in transport_maps delivers a virtual mailbox domain's mail
    with tern's own virtual delivery, though virtual_transport sends the
    rest elsewhere; given another domain's address it defers and says why."""
    base = work_dir / "vhosts"
    base.mkdir()
    os.chown(base, VMAIL_UID, VMAIL_UID)
    base.chmod(0o700)
    (work_dir / "vmailbox").write_text("alice@vdomain.test   vdomain.test/alice/\n"
                                       "alice@other.test     other.test/alice/\n")
    table = work_dir / "transport"
    table.write_text("vdomain.test   virtual:\nother.test     virtual:\n")
    inst = tern_instance
    inst.write_config(mynetworks="127.0.0.0/8", virtual_mailbox_domains="vdomain.test",
                      virtual_mailbox_maps=f"hash:{work_dir / 'vmailbox'}", virtual_mailbox_base=str(base),
                      virtual_uid_maps=f"static:{VMAIL_UID}", virtual_gid_maps=f"static:{VMAIL_UID}",
                      virtual_transport="smtp:[127.0.0.3]:1", transport_maps=f"texthash:{table}")
    inst.start()
    send(inst, ["alice@vdomain.test", "alice@other.test"], "virtual entry")
    inst.wait_log(r"to=<alice@vdomain\.test>, relay=local,.*status=sent", regex=True)
    files = list((base / "vdomain.test" / "alice" / "new").iterdir())
    assert len(files) == 1 and b"Subject: virtual entry" in files[0].read_bytes()
    assert files[0].stat().st_uid == VMAIL_UID
    inst.wait_log(r"to=<alice@other\.test>, relay=none,.*dsn=4\.3\.5, status=deferred \(transport_maps: virtual: "
                  r"delivers only addresses of virtual_mailbox_domains\)", regex=True)
    assert not (base / "other.test").exists()
    out = inst.cli("sendmail", "-bv", "alice@vdomain.test").stdout.decode()
    assert out == "<alice@vdomain.test>: deliverable: virtual mailbox\n", out
