"""queue_sync_method = journal: the queue kept as records of a journal.

What a user of this mode relies on: mail is delivered, nothing of it is
left as one file per message, a deferred or held message survives kill -9
and shows in `tern queue` whether tern runs or not, and changes to it
while tern is stopped are refused rather than lost.
"""
import re
import time

from test_queue_durability import QID, listing, listed_ids, smtp_send, wait_until


def start_journal(inst, **params):
    inst.write_config(queue_sync_method="journal", **params)
    inst.start()
    return inst


def test_journal_mode_delivers_and_leaves_no_queue_files(tern_instance):
    tern = start_journal(tern_instance)
    ids = [smtp_send(tern, "alice@localhost", f"journal {i}") for i in range(3)]
    files = tern.wait_messages("alice", count=3)
    subjects = sorted(re.search(rb"\nSubject: (.*)\n", f.read_bytes()).group(1) for f in files)
    assert subjects == [b"journal 0", b"journal 1", b"journal 2"]
    for qid in ids:
        tern.wait_log(f"{qid}: removed")
    segments = sorted(p.name for p in (tern.queue_dir / "journal").iterdir())
    assert any(name.startswith("seg-") for name in segments), segments
    assert list((tern.queue_dir / "queue").iterdir()) == []
    wait_until(lambda: list((tern.queue_dir / "incoming").iterdir()) == [], 5, "incoming/ to empty")


def test_journal_keeps_held_message_across_kill9_and_lists_it_offline(tern_instance):
    tern = start_journal(tern_instance)
    qid = smtp_send(tern, "someone@remote.example", "held in the journal")
    tern.wait_log(f"{qid}: to=<someone@remote.example>")
    r = tern.cli("queue", "hold", qid)
    assert r.returncode == 0, r.stderr
    tern.wait_log(f"{qid}: placed on hold")
    assert (qid + "!") in listing(tern)

    tern.kill9()
    time.sleep(0.2)
    tern.start()
    assert re.search(rf"^{qid}!\s", listing(tern), re.M), listing(tern)

    tern.stop()
    offline = listing(tern)
    assert re.search(rf"^{qid}!\s", offline, re.M), offline
    assert "someone@remote.example" in offline
    # a stopped tern's journal is changed by nobody: refused, and kept
    r = tern.cli("queue", "delete", qid)
    assert r.returncode != 0
    assert b"only while tern runs" in r.stderr, r.stderr
    assert qid in listing(tern)

    tern.start()
    r = tern.cli("queue", "release", qid)
    assert r.returncode == 0, r.stderr
    assert re.search(rf"^{qid}\s", listing(tern), re.M), listing(tern)
    r = tern.cli("queue", "delete", qid)
    assert r.returncode == 0, r.stderr
    wait_until(lambda: qid not in listed_ids(tern), 5, "the deleted message to go")
    tern.stop()
    tern.start()
    assert qid not in listed_ids(tern)
