"""Virtual alias domains and virtual_alias_maps (issue 10), with the
tutorial's main.cf line `virtual_alias_maps = hash:/etc/postfix/virtual`:
what smtpd accepts and refuses at RCPT, and where the mail lands."""
import os
import re
import time

import pytest

from conftest import TernInstance, settle_queue

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="virtual mailboxes are written as their uid: needs root")

VIRTUAL = """# the tutorial's virtual file: a domain line, then its addresses
example.net                 anything
info@example.net            alice
sales@example.net           bob@example.test, carol
# another domain forwarded user for user to one of ours
@example.com                @example.test
# a local domain's address that is no user
webmaster@example.test      alice
# a catch-all for a third domain, which is listed in virtual_alias_domains
@catch.example              dave
loop1@example.net           loop2@example.net
loop2@example.net           loop1@example.net
"""


def start(inst, work_dir, table=VIRTUAL, **params):
    virtual = work_dir / "virtual"
    virtual.write_text(table)
    inst.write_config(virtual_alias_maps=f"hash:{virtual}",
                      virtual_alias_domains=f"hash:{virtual}, example.com, catch.example",
                      recipient_delimiter="+", **params)
    inst.start()
    return inst


def rcpt(inst, *addrs):
    """MAIL from a stranger, then RCPT for each address: their replies."""
    with inst.smtp() as c:
        c.ehlo("client.example")
        c.mail("someone@elsewhere.example")
        return [c.rcpt(a) for a in addrs]


def send(inst, *rcpts, subject="virtual"):
    with inst.smtp() as c:
        c.sendmail("someone@elsewhere.example", list(rcpts),
                   f"From: someone@elsewhere.example\r\nSubject: {subject}\r\n\r\nhello\r\n")


def test_rcpt_accepts_what_the_table_lists_and_refuses_the_rest(tern_instance, work_dir):
    inst = start(tern_instance, work_dir)
    replies = rcpt(inst, "info@example.net", "Info+News@Example.NET", "nobody@example.net",
                   "anyone@catch.example", "whoever@example.com")
    assert replies[0][0] == 250
    assert replies[1][0] == 250          # the extension is matched without it
    assert replies[2] == (550, b"5.1.1 <nobody@example.net>: Recipient address rejected: "
                               b"User unknown in virtual alias table"), replies[2]
    assert replies[3][0] == 250          # catch-all
    assert replies[4][0] == 250          # @domain forwarding
    log = inst.log_text()
    assert "User unknown in virtual alias table; from=<someone@elsewhere.example> to=<nobody@example.net>" in log


def test_mail_lands_where_the_aliases_point(tern_instance, work_dir):
    inst = start(tern_instance, work_dir)
    send(inst, "info@example.net", subject="to-info")
    send(inst, "sales@example.net", subject="to-sales")
    send(inst, "eve@example.com", subject="to-eve")
    send(inst, "webmaster@example.test", subject="to-webmaster")
    send(inst, "x@catch.example", subject="to-catch")
    assert b"Subject: to-info" in inst.wait_messages("alice", count=2)[0].read_bytes() + \
        inst.wait_messages("alice", count=2)[1].read_bytes()
    assert b"to-sales" in inst.wait_messages("bob")[0].read_bytes()
    assert b"to-sales" in inst.wait_messages("carol")[0].read_bytes()
    assert b"to-eve" in inst.wait_messages("eve")[0].read_bytes()       # user@example.com -> user@example.test
    assert b"to-catch" in inst.wait_messages("dave")[0].read_bytes()
    # the aliases themselves got nothing
    assert inst.messages("info") == [] and inst.messages("webmaster") == [] and inst.messages("sales") == []
    got = b"".join(p.read_bytes() for p in inst.messages("alice"))
    assert b"to-webmaster" in got, got
    log = inst.wait_log(r"to=<carol@example\.test>, orig_to=<sales@example\.net>.*status=sent", regex=True)
    assert re.search(r"to=<sales@example\.net>: expanded by virtual_alias_maps to 2 addresses", log), log
    settle_queue(inst)


def test_extension_carried_to_the_target(tern_instance, work_dir):
    """info+news@example.net matches info@example.net; the +news goes along
    (propagate_unmatched_extensions), so alice's delivery still sees it."""
    inst = start(tern_instance, work_dir)
    send(inst, "info+news@example.net", subject="with-ext")
    got = inst.wait_messages("alice")[0].read_bytes()
    assert b"with-ext" in got
    inst.wait_log(r"to=<alice\+news@example\.test>, orig_to=<info\+news@example\.net>.*status=sent",
                  regex=True)
    settle_queue(inst)


def replace_table(work_dir, text):
    """Writes the virtual table anew, by rename as an editor or postmap would."""
    tmp = work_dir / "virtual.new"
    tmp.write_text(text)
    tmp.rename(work_dir / "virtual")


def deferred_then_delivered_after_fix(inst, work_dir, rcpt_addr, why, fixed_table, user, subject):
    """rcpt_addr is deferred with 4.6.0 and why (log and `tern queue`), no
    bounce is made; once the table is fixed and the queue flushed, user
    gets the message."""
    send(inst, rcpt_addr, subject=subject)
    inst.wait_log(r"to=<%s>.*dsn=4\.6\.0, status=deferred \(%s\)" % (re.escape(rcpt_addr), why), regex=True)
    inst.wait_log(r"warning: [0-9A-Z]+: to=<%s>: virtual_alias_maps: %s; deferred until the table is fixed"
                  % (re.escape(rcpt_addr), why), regex=True)
    listing = inst.cli("queue", check=True).stdout.decode()
    assert rcpt_addr in listing and re.search(why, listing), listing
    assert inst.messages(user) == []
    replace_table(work_dir, fixed_table)
    time.sleep(1.5)   # the table is reread when its file changed, at most a second later
    inst.cli("queue", "flush", check=True)
    got = inst.wait_messages(user, timeout=15)[0].read_bytes()
    assert f"Subject: {subject}".encode() in got
    inst.wait_log(r"to=<%s@example\.test>, orig_to=<%s>.*status=sent" % (user, re.escape(rcpt_addr)), regex=True)
    settle_queue(inst)
    log = inst.log_text()
    assert "status=bounced" not in log and "non-delivery notification" not in log, log


def test_a_virtual_loop_is_deferred_until_the_table_is_fixed(tern_instance, work_dir):
    """Entries that lead back to each other are the administrator's mistake:
    Postfix's cleanup meets them as its nesting limit and refuses the mail
    with 4.6.0 (try again later); tern, which expands after acceptance,
    defers the recipient and delivers once the table is fixed."""
    inst = start(tern_instance, work_dir)
    deferred_then_delivered_after_fix(
        inst, work_dir, "loop1@example.net", r"virtual alias expansion of <loop1@example\.net> loops back to itself",
        VIRTUAL.replace("loop1@example.net           loop2@example.net", "loop1@example.net  alice"),
        "alice", "looping")


def test_virtual_expansion_limit_defers_until_the_table_is_fixed(tern_instance, work_dir):
    inst = start(tern_instance, work_dir, virtual_alias_expansion_limit="1")
    deferred_then_delivered_after_fix(
        inst, work_dir, "sales@example.net",
        r"virtual alias expansion of <sales@example\.net> has more than virtual_alias_expansion_limit \(1\) "
        r"addresses",
        VIRTUAL.replace("sales@example.net           bob@example.test, carol", "sales@example.net  bob"),
        "bob", "too-many")


def test_virtual_recursion_limit_defers(tern_instance, work_dir):
    chain = "deep@example.net  mid@example.net\nmid@example.net  mid2@example.net\nmid2@example.net  carol\n"
    inst = start(tern_instance, work_dir, table=VIRTUAL + chain, virtual_alias_recursion_limit="1")
    deferred_then_delivered_after_fix(
        inst, work_dir, "deep@example.net",
        r"virtual alias expansion of <deep@example\.net> is nested deeper than virtual_alias_recursion_limit "
        r"\(1\) at <mid2@example\.net>",
        VIRTUAL + "deep@example.net  carol\n",
        "carol", "too-deep")


def test_table_changes_apply_without_restart(tern_instance, work_dir):
    inst = start(tern_instance, work_dir)
    assert rcpt(inst, "new@example.net")[0][0] == 550
    virtual = work_dir / "virtual"
    tmp = work_dir / "virtual.new"
    tmp.write_text(VIRTUAL + "new@example.net  alice\n")
    tmp.rename(virtual)
    for _ in range(50):
        if rcpt(inst, "new@example.net")[0][0] == 250:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the new alias was never accepted")


def test_sendmail_bv_shows_the_expansion(tern_instance, work_dir):
    inst = start(tern_instance, work_dir)
    r = inst.cli("sendmail", "-bv", "sales@example.net", "nobody@example.net")
    out = r.stdout.decode()
    assert "<sales@example.net>: deliverable: virtual alias of bob@example.test, carol@example.test" in out, out
    assert "<nobody@example.net>: undeliverable: 5.1.1 User unknown in virtual alias table" in out, out


# ---- virtual mailbox domains: tern's own delivery as the virtual uid ----

VMAIL_UID = 5000   # the tutorials' vmail user; no passwd entry needed

VMAILBOXES = """vdomain.test              anything
alice@vdomain.test        vdomain.test/alice/
bob@vdomain.test          vdomain.test/bob
escape@vdomain.test       vdomain.test/../../escape/
"""


def start_vmail(inst, work_dir, **params):
    base = work_dir / "vhosts"
    base.mkdir()
    os.chown(base, VMAIL_UID, VMAIL_UID)
    base.chmod(0o700)
    (work_dir / "vmailbox").write_text(VMAILBOXES)
    (work_dir / "virtual").write_text("info@valias.test  alice@vdomain.test\n")
    settings = dict(virtual_mailbox_domains="vdomain.test", virtual_mailbox_maps=f"hash:{work_dir / 'vmailbox'}",
                    virtual_mailbox_base=str(base), virtual_uid_maps=f"static:{VMAIL_UID}",
                    virtual_gid_maps=f"static:{VMAIL_UID}", virtual_alias_domains="valias.test",
                    virtual_alias_maps=f"hash:{work_dir / 'virtual'}", recipient_delimiter="+")
    settings.update(params)
    inst.write_config(**settings)
    inst.start()
    return base


@needs_root
def test_virtual_mailboxes_are_written_as_the_virtual_uid(tern_instance, work_dir):
    inst = tern_instance
    base = start_vmail(inst, work_dir)
    assert rcpt(inst, "nobody@vdomain.test")[0] == (
        550, b"5.1.1 <nobody@vdomain.test>: Recipient address rejected: User unknown in virtual mailbox table")
    send(inst, "alice@vdomain.test", "bob@vdomain.test", subject="to-vmail")
    send(inst, "Info+x@valias.test", subject="via-alias")
    maildir = base / "vdomain.test" / "alice"
    # the extension goes along (propagate_unmatched_extensions) and the
    # mailbox lookup finds alice@ without it
    inst.wait_log(r"to=<alice\+x@vdomain\.test>, orig_to=<Info\+x@valias\.test>.*status=sent", regex=True)
    files = sorted((maildir / "new").iterdir())
    assert len(files) == 2, files
    assert any(b"Subject: to-vmail" in f.read_bytes() for f in files)
    assert any(b"Delivered-To: alice+x@vdomain.test" in f.read_bytes() and b"via-alias" in f.read_bytes() for f in files)
    for p in [base / "vdomain.test", maildir, maildir / "new", files[0]]:
        st = p.stat()
        assert (st.st_uid, st.st_gid) == (VMAIL_UID, VMAIL_UID), (p, st.st_uid, st.st_gid)
    mbox = base / "vdomain.test" / "bob"
    text = mbox.read_bytes()
    assert text.startswith(b"From someone@elsewhere.example ") and b"Subject: to-vmail" in text
    assert mbox.stat().st_uid == VMAIL_UID
    settle_queue(inst)


@needs_root
def test_virtual_mailbox_configuration_errors_defer(tern_instance, work_dir):
    """A path out of the base, or a uid below virtual_minimum_uid, is the
    administrator's to fix: deferred with the reason, nothing written."""
    inst = tern_instance
    base = start_vmail(inst, work_dir, virtual_minimum_uid="6000")
    send(inst, "alice@vdomain.test", subject="low-uid")
    inst.wait_log(r"to=<alice@vdomain\.test>.*status=deferred \(virtual_uid_maps gives alice@vdomain\.test "
                  r"uid 5000, below virtual_minimum_uid \(6000\)\)", regex=True)
    assert not (base / "vdomain.test").exists()
    inst.stop()
    start_vmail_again = dict(virtual_minimum_uid="100")
    inst.write_config(virtual_mailbox_domains="vdomain.test", virtual_mailbox_maps=f"hash:{work_dir / 'vmailbox'}",
                      virtual_mailbox_base=str(base), virtual_uid_maps=f"static:{VMAIL_UID}",
                      virtual_gid_maps=f"static:{VMAIL_UID}", **start_vmail_again)
    inst.start()
    send(inst, "escape@vdomain.test", subject="escape")
    inst.wait_log(r"to=<escape@vdomain\.test>.*status=deferred \(virtual_mailbox_maps gives escape@vdomain\.test "
                  r"an unsafe path\)", regex=True)
    assert not (work_dir / "escape").exists()


@needs_root
def test_virtual_mailbox_limit_bounces_a_message_too_big(tern_instance, work_dir):
    inst = tern_instance
    base = start_vmail(inst, work_dir, virtual_mailbox_limit="2000")
    with inst.smtp() as c:
        c.sendmail("someone@elsewhere.example", ["alice@vdomain.test"],
                   "From: someone@elsewhere.example\r\nSubject: big\r\n\r\n" + "x" * 3000 + "\r\n")
    inst.wait_log(r"to=<alice@vdomain\.test>.*dsn=5\.2\.2, status=bounced \(message is larger than "
                  r"virtual_mailbox_limit \(2000 bytes\)\)", regex=True)
    assert not (base / "vdomain.test" / "alice" / "new").exists() or \
        list((base / "vdomain.test" / "alice" / "new").iterdir()) == []


# ---- relay_domains: a backup MX that relays for listed domains ----

def test_relay_domains_with_recipient_maps(work_dir):
    """A relays for relayed.test (from anyone, as a backup MX does) to B,
    its primary, and only for the recipients relay_recipient_maps lists."""
    primary = TernInstance(work_dir / "primary")
    primary.write_config(mydestination="relayed.test, $myhostname")
    backup = TernInstance(work_dir / "backup")
    backup.write_config(myhostname="backup.example.test", mynetworks="192.0.2.0/24",
                        relay_domains="relayed.test",
                        relay_recipient_maps="inline:{ ok@relayed.test=x }",
                        transport_maps=f"inline:{{ relayed.test=smtp:[127.0.0.1]:{primary.port} }}")
    primary.start()
    backup.start()
    try:
        replies = rcpt(backup, "ok@relayed.test", "nope@relayed.test", "someone@elsewhere.test")
        assert replies[0][0] == 250, replies
        assert replies[1] == (550, b"5.1.1 <nope@relayed.test>: Recipient address rejected: "
                                   b"User unknown in relay recipient table"), replies
        assert replies[2][0] == 554 and b"Relay access denied" in replies[2][1], replies
        send(backup, "ok@relayed.test", subject="via-backup")
        got = primary.wait_messages("ok", timeout=20)[0].read_bytes()
        assert b"via-backup" in got
        out = backup.cli("sendmail", "-bv", "ok@relayed.test", "nope@relayed.test").stdout.decode()
        assert "<ok@relayed.test>: would be relayed (transport_maps: smtp:[127.0.0.1]" in out, out
        assert "<nope@relayed.test>: undeliverable: 5.1.1 User unknown in relay recipient table" in out, out
    finally:
        backup.stop()
        primary.stop()


def test_pcre_virtual_alias_map(tern_instance, work_dir):
    """A pcre: table as virtual_alias_maps sees whole addresses only, and
    $1 carries the user over."""
    table = work_dir / "virtual.pcre"
    table.write_text("/^(sales|info)@pattern\\.test$/   ${1}-team@example.test\n")
    tern_instance.write_config(virtual_alias_maps=f"pcre:{table}", virtual_alias_domains="pattern.test")
    tern_instance.start()
    replies = rcpt(tern_instance, "sales@pattern.test", "other@pattern.test")
    assert replies[0][0] == 250 and replies[1][0] == 550, replies
    send(tern_instance, "sales@pattern.test", subject="by-pattern")
    assert b"by-pattern" in tern_instance.wait_messages("sales-team")[0].read_bytes()
    settle_queue(tern_instance)


def test_local_recipient_maps_read_for_real(tern_instance, work_dir):
    """Set, local_recipient_maps alone says who exists (here: in the
    development layout, where any name would otherwise be a user)."""
    users = work_dir / "local_users"
    users.write_text("alice x\nbob@example.test x\n")
    tern_instance.write_config(local_recipient_maps=f"hash:{users}", recipient_delimiter="+")
    tern_instance.start()
    replies = rcpt(tern_instance, "alice@example.test", "alice+list@example.test", "bob@example.test",
                   "carol@example.test")
    assert [r[0] for r in replies] == [250, 250, 250, 550], replies
    assert replies[3][1] == (b"5.1.1 <carol@example.test>: Recipient address rejected: "
                             b"User unknown in local recipient table")


@needs_root
def test_local_recipient_maps_tutorial_default(tern_instance, work_dir):
    """The guides' line, proxy: and $alias_maps included: system users and
    aliases exist, nobody else."""
    aliases = work_dir / "aliases"
    aliases.write_text("postmaster: root\nteam: root\n")
    tern_instance.write_config(alias_maps=f"hash:{aliases}",
                               local_recipient_maps="proxy:unix:passwd.byname $alias_maps")
    tern_instance.start()
    replies = rcpt(tern_instance, "root@example.test", "team@example.test", "nosuchuser7q@example.test")
    assert [r[0] for r in replies] == [250, 250, 550], replies


def test_reject_unlisted_recipient_off_accepts_and_bounces(tern_instance, work_dir):
    """smtpd_reject_unlisted_recipient = no: an unknown address of a virtual
    alias domain is accepted, then bounced by the queue (Postfix's choice)."""
    inst = start(tern_instance, work_dir, smtpd_reject_unlisted_recipient="no")
    assert rcpt(inst, "nobody@example.net")[0][0] == 250
    send(inst, "nobody@example.net", subject="unlisted")
    inst.wait_log(r"to=<nobody@example\.net>.*dsn=5\.1\.1, status=bounced \(User unknown in virtual alias table\)",
                  regex=True)
    settle_queue(inst)


def test_transport_maps_by_address_and_pattern(work_dir):
    """transport(5)'s order: an address entry wins over its domain's, and a
    pcre: transport table sees the whole address."""
    sink = TernInstance(work_dir / "sink")
    sink.write_config(myhostname="sink.example.test", mydestination="routed.test, $myhostname")   # not front's
    table = work_dir / "transport.pcre"
    table.write_text(f"/^vip@routed\\.test$/  smtp:[127.0.0.1]:{sink.port}\n")
    front = TernInstance(work_dir / "front")
    front.write_config(mynetworks="127.0.0.0/8", transport_maps=f"pcre:{table}")
    sink.start()
    front.start()
    try:
        with front.smtp() as c:
            c.sendmail("someone@example.test", ["vip@routed.test", "other@routed.test"],
                       "From: someone@example.test\r\nSubject: routed\r\n\r\nhello\r\n")
        assert b"routed" in sink.wait_messages("vip", timeout=20)[0].read_bytes()
        # other@ has no entry: the usual route (DNS for routed.test, which fails here)
        front.wait_log(r"to=<other@routed\.test>.*status=deferred", regex=True, timeout=40)
        assert sink.messages("other") == []
    finally:
        front.stop()
        sink.stop()


def test_local_domains_and_exempt_addresses(tern_instance, work_dir):
    """Postfix's local class: mydestination may name a file of domains, and
    [address] of this host is local too; postmaster, MAILER-DAEMON and
    double-bounce pass the local recipient check; a virtual mailbox domain
    without virtual_mailbox_maps takes every address (its final server
    decides)."""
    users = work_dir / "local_users"
    users.write_text("alice x\n")
    names = work_dir / "local_domains"
    names.write_text("# more of ours\nexample.test, filed.test\n")
    tern_instance.write_config(local_recipient_maps=f"hash:{users}",
                               mydestination=f"$myhostname, localhost, {names}",
                               virtual_mailbox_domains="vbox.test")
    tern_instance.start()
    replies = rcpt(tern_instance, "alice@filed.test", "carol@filed.test", "MAILER-DAEMON@example.test",
                   "postmaster@example.test", "double-bounce@example.test", "nobody@[127.0.0.1]",
                   "alice@[127.0.0.1]", "anyone@vbox.test")
    assert [r[0] for r in replies] == [250, 550, 250, 250, 250, 550, 250, 250], replies
    assert replies[5][1] == (b"5.1.1 <nobody@[127.0.0.1]>: Recipient address rejected: "
                             b"User unknown in local recipient table"), replies
    send(tern_instance, "alice@filed.test", "alice@[127.0.0.1]", subject="to-filed")
    assert b"to-filed" in tern_instance.wait_messages("alice", count=2)[0].read_bytes()
    # the file is read again when it changes, inside smtpd's sandbox too
    tmp = work_dir / "local_domains.new"
    tmp.write_text("example.test later.test\n")
    tmp.rename(names)
    time.sleep(1.5)
    assert [r[0] for r in rcpt(tern_instance, "alice@later.test", "carol@later.test")] == [250, 550]
    settle_queue(tern_instance)


def test_config_check_names_an_unreadable_domain_file(tern_instance, work_dir):
    tern_instance.write_config(mydestination=f"$myhostname, {work_dir}/no-such-domains")
    r = tern_instance.cli("config", "check")
    out = r.stdout.decode()
    assert r.returncode == 1, out
    assert re.search(r"main\.cf:\d+: error: mydestination: cannot read .*no-such-domains: No such file", out), out


def test_unknown_recipient_reject_codes(tern_instance, work_dir):
    """unknown_local_recipient_reject_code = 450 (LOCAL_RECIPIENT_README's
    advice while a new table is tested) and unknown_virtual_alias_reject_code:
    the reply code of each class, the enhanced code's class following it."""
    users = work_dir / "local_users"
    users.write_text("alice x\n")
    inst = start(tern_instance, work_dir, local_recipient_maps=f"hash:{users}",
                 unknown_local_recipient_reject_code="450", unknown_virtual_alias_reject_code="551")
    replies = rcpt(inst, "alice@example.test", "carol@example.test", "nobody@example.net")
    assert replies[0][0] == 250, replies
    assert replies[1] == (450, b"4.1.1 <carol@example.test>: Recipient address rejected: "
                               b"User unknown in local recipient table"), replies
    assert replies[2] == (551, b"5.1.1 <nobody@example.net>: Recipient address rejected: "
                               b"User unknown in virtual alias table"), replies
    inst.wait_log("reject: RCPT from localhost[127.0.0.1]: 450 4.1.1 <carol@example.test>", required=False)
    assert "450 4.1.1 <carol@example.test>: Recipient address rejected" in inst.log_text()


def test_reject_unlisted_sender(tern_instance, work_dir):
    """smtpd_reject_unlisted_sender = yes: a MAIL FROM address of a domain
    of ours that no table lists is refused (at RCPT, as Postfix does with
    smtpd_delay_reject), 5.1.0; senders elsewhere and <> are not."""
    users = work_dir / "local_users"
    users.write_text("alice x\n")
    inst = start(tern_instance, work_dir, local_recipient_maps=f"hash:{users}",
                 smtpd_reject_unlisted_sender="yes", unknown_virtual_alias_reject_code="450")
    for sender, want in (("forged@example.test", (550, b"5.1.0 <forged@example.test>: Sender address "
                                                        b"rejected: User unknown in local recipient table")),
                         ("nobody@example.net", (450, b"4.1.0 <nobody@example.net>: Sender address "
                                                      b"rejected: User unknown in virtual alias table")),
                         ("alice@example.test", None), ("info@example.net", None),
                         ("someone@elsewhere.example", None), ("", None)):
        with inst.smtp() as c:
            c.ehlo("client.example")
            assert c.mail(sender)[0] == 250
            got = c.rcpt("alice@example.test")
        if want is None:
            assert got[0] == 250, (sender, got)
        else:
            assert got == want, (sender, got)
