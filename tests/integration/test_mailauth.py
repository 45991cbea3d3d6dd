"""Mail authentication of incoming mail (issue 9): SPF, DKIM and DMARC
checked against a real DNS (unbound serving a .test zone made here), with
the DKIM key made by `tern dkim keygen` and the messages signed by dkimpy
(Debian's python3-dkim), the way another domain's server would sign them.
What is checked is what a user sees: the Authentication-Results field at
the top of the delivered message."""
import email
import gzip
import re
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import dkim
import pytest

from conftest import TernInstance, settle_queue
from relay_peers import SmtpSink, Unbound, can_bind_25

ZONE = """$ORIGIN test.
$TTL 300
@               IN SOA  ns.test. hostmaster.test. 1 3600 600 86400 60
@               IN NS   ns.test.
ns              IN A    127.0.0.1

; auth.test: SPF allows the test client, DKIM key "sel", DMARC p=reject
auth                IN TXT  "v=spf1 ip4:127.0.0.1 -all"
sel._domainkey.auth IN TXT  {dkim_record}
esel._domainkey.auth IN TXT {ed_record}
_dmarc.auth         IN TXT  "v=DMARC1; p=reject; rua=mailto:dmarc@auth.test"
; strict.test sends from nowhere and wants forgeries refused
strict              IN TXT  "v=spf1 -all"
_dmarc.strict       IN TXT  "v=DMARC1; p=reject"
; xn--bcher-kva.test (buecher.test with u-umlaut) wants forgeries refused
_dmarc.xn--bcher-kva IN TXT "v=DMARC1; p=reject"
; quar.test asks for quarantine
quar                IN TXT  "v=spf1 -all"
_dmarc.quar         IN TXT  "v=DMARC1; p=quarantine"
; this host (myhostname) has the test client's address
mail.example        IN A    127.0.0.1
; other.test: SPF allows the test client, no DMARC
other               IN TXT  "v=spf1 ip4:127.0.0.1 -all"
; rep.test wants aggregate reports: at this host's example.test (another
; organization, which agrees to take them) and at noreports.test (which
; does not)
rep                 IN TXT  "v=spf1 ip4:127.0.0.1 -all"
_dmarc.rep          IN TXT  "v=DMARC1; p=reject; rua=mailto:dmarc-rua@example.test,mailto:x@noreports.test"
rep.test._report._dmarc.example IN TXT "v=DMARC1"
; ovr.test (testing, t=y) names a@example.test, which redirects its reports
; to b@example.test; redir.test names c@example.test, which points at
; another host: no report at all (RFC 9990 section 4)
ovr                 IN TXT  "v=spf1 ip4:127.0.0.1 -all"
_dmarc.ovr          IN TXT  "v=DMARC1; p=reject; t=y; rua=mailto:a@example.test"
ovr.test._report._dmarc.example IN TXT "v=DMARC1; rua=mailto:b@example.test"
redir               IN TXT  "v=spf1 ip4:127.0.0.1 -all"
_dmarc.redir        IN TXT  "v=DMARC1; p=none; rua=mailto:c@example.test"
redir.test._report._dmarc.example IN TXT "v=DMARC1; rua=mailto:d@elsewhere.test"
"""

AUTHSERV = "mail.example.test"
lab_ed_key = []   # the Ed25519 key the lab made (a list the fixture fills)


@pytest.fixture(scope="module")
def lab():
    """The DKIM key of auth.test (made by tern dkim keygen) and a DNS
    server publishing it with the SPF and DMARC records above."""
    base = Path(tempfile.mkdtemp(prefix="tern-mailauth-"))
    base.chmod(0o755)
    keys = TernInstance(base / "keys")
    keys.write_config()
    r = keys.cli("dkim", "keygen", "auth.test", "-s", "sel", check=True)
    out = r.stdout.decode()
    m = re.search(r"^\s*sel\._domainkey\.auth\.test\. IN TXT \( (.*) \)$", out, re.M)
    assert m, out
    key_path = Path(re.search(r"^Wrote (\S+) ", out, re.M).group(1))
    assert key_path.stat().st_mode & 0o777 == 0o600
    assert "auth.test  sel:" + str(key_path) in out          # the dkim_sign_maps line
    assert '"v=spf1 mx a:mail.example.test ~all"' in out      # suggested SPF
    assert "_dmarc.auth.test. IN TXT" in out                   # suggested DMARC
    r = keys.cli("dkim", "keygen", "auth.test", "-s", "esel", "-t", "ed25519", check=True)
    ed = re.search(r"^\s*esel\._domainkey\.auth\.test\. IN TXT \( (.*) \)$", r.stdout.decode(), re.M)
    assert ed and "k=ed25519" in ed.group(1), r.stdout.decode()
    zone = base / "mailauth.zone"
    zone.write_text(ZONE.format(dkim_record=m.group(1), ed_record=ed.group(1)))
    lab_ed_key[:] = [Path(re.search(r"^Wrote (\S+) ", r.stdout.decode(), re.M).group(1))]
    dns = Unbound(zone)
    record = "".join(re.findall(r'"([^"]*)"', m.group(1))).encode()
    yield dns, key_path.read_bytes(), record, key_path
    dns.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def inst(tern_instance, lab):
    dns = lab[0]
    # 127.0.0.1 outside mynetworks: the test client is a stranger
    tern_instance.write_config(dns_resolvers=dns.resolver, mynetworks="192.0.2.0/24",
                               smtpd_mail_authentication="auto")
    tern_instance.start()
    return tern_instance


def message(frm, subject, extra=""):
    return (f"From: {frm}\r\nTo: alice@example.test\r\nSubject: {subject}\r\n"
            f"Date: Sun, 06 Dec 2026 12:00:00 +0000\r\nMessage-ID: <{subject}@test>\r\n{extra}"
            f"\r\nHello from the lab.\r\n").encode()


def signed(msg, key):
    sig = dkim.sign(msg, b"sel", b"auth.test", key, include_headers=[b"from", b"to", b"subject", b"date"])
    return sig + msg


def deliver(inst, sender, msg, count):
    """Sends msg; the delivered copy of it (found by its Message-ID: the
    Maildir's order is not the order of arrival)."""
    with inst.smtp() as c:
        c.ehlo("client.other.test")
        c.sendmail(sender, ["alice@example.test"], msg)
    mid = re.search(rb"^Message-ID: (<[^>]*>)", msg, re.M | re.I).group(1)
    got = [m.read_bytes() for m in inst.wait_messages("alice", count=count)]
    mine = [g for g in got if mid in g]
    assert len(mine) == 1, got
    return mine[0]


def results(delivered):
    """The Authentication-Results fields of a delivered message, unfolded."""
    msg = email.message_from_bytes(delivered)
    return [re.sub(r"\s+", " ", v) for v in msg.get_all("Authentication-Results", [])]


def test_aligned_mail_passes_everything(inst, lab):
    _, key, record, _ = lab
    got = deliver(inst, "alice@auth.test", signed(message("Alice <alice@auth.test>", "aligned"), key), 1)
    ar = results(got)
    assert len(ar) == 1, got
    assert ar[0].startswith(AUTHSERV + ";"), ar
    assert re.search(r"\bdkim=pass\b[^;]*header\.d=auth\.test", ar[0]), ar
    assert re.search(r"\bspf=pass\b[^;]*smtp\.mailfrom=alice@auth\.test", ar[0]), ar
    assert re.search(r"\bdmarc=pass\b[^;]*header\.from=auth\.test", ar[0]), ar
    # the field goes above everything but the delivery's own (Return-Path,
    # X-Original-To, Delivered-To), and the signature still verifies
    assert got.split(b"\n", 4)[3].startswith(b"Authentication-Results:"), got[:300]
    wire = got.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert dkim.verify(wire, dnsfunc=lambda name, timeout=5: record if name == b"sel._domainkey.auth.test." else b"")
    log = inst.log_text()
    assert re.search(r"authentication: dkim=pass \(d=auth\.test\) spf=pass \(mailfrom=alice@auth\.test\)", log), log


def test_forged_from_fails_dmarc_and_is_marked(inst, lab):
    got = deliver(inst, "x@other.test", message("The CEO <ceo@strict.test>", "forged"), 1)
    ar = results(got)
    assert len(ar) == 1, got
    assert "dkim=none" in ar[0], ar
    assert re.search(r"\bspf=pass\b[^;]*smtp\.mailfrom=x@other\.test", ar[0]), ar
    assert re.search(r"\bdmarc=fail\b[^;]*header\.from=strict\.test", ar[0]), ar
    assert "policy.dmarc=reject" in ar[0], ar


def test_tampered_signature_fails(inst, lab):
    key = lab[1]
    msg = signed(message("Alice <alice@auth.test>", "tampered"), key).replace(b"Hello from", b"Hullo from")
    ar = results(deliver(inst, "alice@auth.test", msg, 1))
    assert re.search(r"\bdkim=fail\b", ar[0]), ar
    # SPF still aligns, so DMARC passes on SPF alone
    assert re.search(r"\bdmarc=pass\b", ar[0]), ar


def test_claims_in_our_name_are_removed(inst, lab):
    extra = (f"Authentication-Results: {AUTHSERV.upper()}; dkim=pass header.d=strict.test\r\n"
             "Authentication-Results: mx.elsewhere.test; spf=pass smtp.mailfrom=x@other.test\r\n")
    got = deliver(inst, "x@other.test", message("ceo@strict.test", "claims", extra), 1)
    ar = results(got)
    assert len(ar) == 2, ar
    assert ar[0].startswith(AUTHSERV + ";") and "dmarc=fail" in ar[0], ar
    assert ar[1].startswith("mx.elsewhere.test;"), ar


def test_off_means_no_field(tern_instance, lab):
    dns = lab[0]
    tern_instance.write_config(dns_resolvers=dns.resolver, mynetworks="192.0.2.0/24",
                               smtpd_mail_authentication="no")
    tern_instance.start()
    got = deliver(tern_instance, "x@other.test", message("ceo@strict.test", "off"), 1)
    assert results(got) == []
    settle_queue(tern_instance)


def enforcing(tern_instance, lab, **params):
    tern_instance.write_config(dns_resolvers=lab[0].resolver, mynetworks="192.0.2.0/24",
                               smtpd_mail_authentication="auto",
                               smtpd_end_of_data_restrictions="reject_dmarc_policy", **params)
    tern_instance.start()
    return tern_instance


def send_raw(inst, sender, msg):
    """MAIL, RCPT, DATA; the reply to the final dot."""
    with inst.smtp() as c:
        c.ehlo("client.other.test")
        c.mail(sender)
        assert c.rcpt("alice@example.test")[0] == 250
        return c.data(msg)


def test_reject_dmarc_policy_refuses_a_forgery(tern_instance, lab):
    inst = enforcing(tern_instance, lab)
    code, text = send_raw(inst, "x@other.test", message("The CEO <ceo@strict.test>", "refused"))
    assert code == 550, text
    assert text.startswith(b"5.7.1 Message rejected: DMARC policy of strict.test is reject"), text
    log = inst.wait_log("reject: END-OF-MESSAGE")
    assert re.search(r"reject: END-OF-MESSAGE from localhost\[127\.0\.0\.1\]: 550 5\.7\.1 Message rejected: "
                     r"DMARC policy of strict\.test is reject.*; from=<x@other\.test>", log), log
    # aligned mail still comes in
    key = lab[1]
    code, _ = send_raw(inst, "alice@auth.test", signed(message("alice@auth.test", "welcome"), key))
    assert code == 250
    inst.wait_messages("alice", count=1)
    assert inst.messages("alice") and all(b"refused" not in m.read_bytes() for m in inst.messages("alice"))


def test_quarantine_goes_on_hold_with_its_reason(tern_instance, lab):
    inst = enforcing(tern_instance, lab)
    code, _ = send_raw(inst, "x@other.test", message("boss@quar.test", "held"))
    assert code == 250
    inst.wait_log("placed on hold: DMARC policy of quar.test is quarantine")
    q = inst.cli("queue", check=True).stdout.decode()
    assert "!" in q and "(on hold: DMARC policy of quar.test is quarantine" in q, q
    assert inst.messages("alice") == []
    # released by hand, it is delivered, its result in the field
    qid = re.search(r"^(\w+)!", q, re.M).group(1)
    inst.cli("queue", "release", qid, check=True)
    got = inst.wait_messages("alice", count=1)[0].read_bytes()
    assert re.search(r"\bdmarc=fail\b[^;]*policy\.dmarc=quarantine", results(got)[0]), got


def test_quarantine_delivered_when_asked(tern_instance, lab):
    inst = enforcing(tern_instance, lab, dmarc_quarantine_action="deliver")
    code, _ = send_raw(inst, "x@other.test", message("boss@quar.test", "delivered"))
    assert code == 250
    got = inst.wait_messages("alice", count=1)[0].read_bytes()
    assert "policy.dmarc=quarantine" in results(got)[0]


def test_reject_spf_fail_at_rcpt(tern_instance, lab):
    tern_instance.write_config(dns_resolvers=lab[0].resolver, mynetworks="192.0.2.0/24",
                               smtpd_mail_authentication="no",
                               smtpd_sender_restrictions="reject_spf_fail")
    tern_instance.start()
    with tern_instance.smtp() as c:
        c.ehlo("client.other.test")
        c.mail("someone@strict.test")
        code, text = c.rcpt("alice@example.test")
        assert code == 550, text
        assert text.startswith(b"5.7.23 <someone@strict.test>: Sender address rejected: SPF check failed"), text
        c.rset()
        c.mail("someone@other.test")
        assert c.rcpt("alice@example.test")[0] == 250


# ---- signing: what tern sends out carries a signature that verifies ----

def sign_maps(inst, lab):
    """dkim_sign_maps for auth.test with the key tern dkim keygen made."""
    path = inst.dir / "dkim_sign"
    inst.dir.mkdir(parents=True, exist_ok=True)
    path.write_text(f"auth.test sel:{lab[3]}, esel:{lab_ed_key[0]}\n")
    return f"texthash:{path}"


def test_two_instances_sign_and_verify(work_dir, lab):
    """A (the sender's server) signs what its local user submits and relays
    it to B, which checks it as a stranger's mail: dkim, spf and dmarc pass."""
    dns = lab[0]
    b = TernInstance(work_dir / "b")
    b.write_config(dns_resolvers=dns.resolver, mynetworks="192.0.2.0/24", smtpd_mail_authentication="auto")
    a = TernInstance(work_dir / "a")
    a.write_config(myhostname="a.example.test", mydestination="$myhostname, localhost",
                   relayhost=f"[127.0.0.1]:{b.port}", dkim_sign_maps=sign_maps(a, lab))
    b.start()
    a.start()
    try:
        with a.smtp() as c:
            c.sendmail("alice@auth.test", ["alice@example.test"], message("Alice <alice@auth.test>", "lab"))
        a.wait_log(r"DKIM-Signature added \(d=auth\.test, s=esel\)", regex=True)
        got = b.wait_messages("alice", count=1, timeout=20)[0].read_bytes()
        ar = results(got)
        assert len(ar) == 1, got
        # RSA and Ed25519 side by side: two signatures, both pass
        assert re.search(r"\bdkim=pass\b[^;]*header\.d=auth\.test[^;]*header\.s=sel\b[^;]*header\.a=rsa-sha256", ar[0]), ar
        assert re.search(r"\bdkim=pass\b[^;]*header\.s=esel\b[^;]*header\.a=ed25519-sha256", ar[0]), ar
        assert re.search(r"\bspf=pass\b[^;]*smtp\.mailfrom=alice@auth\.test", ar[0]), ar
        assert re.search(r"\bdmarc=pass\b", ar[0]), ar
        # dkimpy agrees
        wire = got.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        assert dkim.verify(wire, dnsfunc=lambda name, timeout=5: lab[2] if name == b"sel._domainkey.auth.test." else b"")
    finally:
        a.stop()
        b.stop()
    assert not a.sanitizer_reports() and not b.sanitizer_reports()


def test_signature_survives_the_7bit_conversion(tern_instance, lab):
    """A server without 8BITMIME gets a quoted-printable copy: it is signed
    as it is sent, so dkimpy verifies what arrives."""
    if not can_bind_25("127.0.0.9"):
        pytest.skip("binding port 25 on 127.0.0.9 needs root")
    sink = SmtpSink("127.0.0.9", "-8", dump=True)
    try:
        inst = tern_instance
        inst.write_config(mydestination="$myhostname, localhost", relayhost="[127.0.0.9]:25",
                          dkim_sign_maps=sign_maps(inst, lab))
        inst.start()
        body = "Grüße aus dem Labor: ÄÖÜ ß\r\n".encode()
        msg = (b"From: alice@auth.test\r\nTo: bob@example.test\r\nSubject: umlauts\r\n"
               b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
               b"Content-Transfer-Encoding: 8bit\r\n\r\n" + body)
        with inst.smtp() as c:
            c.ehlo()
            c.sendmail("alice@auth.test", ["bob@example.test"], msg, mail_options=["BODY=8BITMIME"])
        dump = sink.wait_dumps(1)[0]
        assert b"quoted-printable" in dump.lower() and max(dump) < 128, dump
        assert b"DKIM-Signature:" in dump
        wire = dump.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        assert dkim.verify(wire, dnsfunc=lambda name, timeout=5: lab[2] if name == b"sel._domainkey.auth.test." else b"")
    finally:
        sink.stop()


def test_mail_from_outside_is_not_signed(tern_instance, lab):
    """Mail that merely passes through from a stranger is never signed, even
    for a domain with a key (here forwarded by an alias)."""
    if not can_bind_25("127.0.0.9"):
        pytest.skip("binding port 25 on 127.0.0.9 needs root")
    sink = SmtpSink("127.0.0.9", dump=True)
    try:
        inst = tern_instance
        aliases = inst.dir / "aliases"
        inst.dir.mkdir(parents=True, exist_ok=True)
        aliases.write_text("fwd: bob@elsewhere.test\n")
        inst.write_config(relayhost="[127.0.0.9]:25", mynetworks="192.0.2.0/24", alias_maps=f"hash:{aliases}",
                          dkim_sign_maps=sign_maps(inst, lab))
        inst.start()
        with inst.smtp() as c:   # a stranger, to a local alias that forwards
            c.sendmail("alice@auth.test", ["fwd@example.test"], message("alice@auth.test", "stranger"))
        dump = sink.wait_dumps(1)[0]
        assert b"Subject: stranger" in dump
        assert b"DKIM-Signature" not in dump
    finally:
        sink.stop()


# ---- tern dkim check: what is published, against the local keys and host ----

def test_dkim_check_reports_line_by_line(tern_instance, lab):
    inst = tern_instance
    inst.write_config(dns_resolvers=lab[0].resolver, dkim_sign_maps=sign_maps(inst, lab))
    r = inst.cli("dkim", "check", "auth.test")
    out = r.stdout.decode()
    assert "ok:   selector sel: the key record at sel._domainkey.auth.test matches the local key" in out, out
    assert "ok:   selector esel: the key record at esel._domainkey.auth.test matches the local key" in out, out
    assert "ok:   this server's address 127.0.0.1 may send for auth.test (ip4:127.0.0.1)" in out, out
    assert "ok:   p=reject" in out, out
    # no MX and no address for auth.test; 127.0.0.1's PTR is localhost
    assert "fix:  mail for auth.test cannot be delivered" in out, out
    assert "fix:  127.0.0.1's PTR record names localhost; receivers expect mail.example.test" in out, out
    assert r.returncode == 1 and out.rstrip().endswith("2 things to fix."), out


def test_dkim_check_finds_what_is_missing(tern_instance, lab):
    inst = tern_instance
    # a key that was never published, for a domain without DMARC
    inst.write_config(dns_resolvers=lab[0].resolver)
    inst.cli("dkim", "keygen", "other.test", "-s", "new", check=True)
    keyfile = inst.dir / "dkim" / "new._domainkey.other.test.pem"
    (inst.dir / "dkim_sign").write_text(f"other.test new:{keyfile}\n")
    inst.write_config(dns_resolvers=lab[0].resolver, dkim_sign_maps=f"texthash:{inst.dir / 'dkim_sign'}")
    out = inst.cli("dkim", "check", "other.test").stdout.decode()
    assert "fix:  selector new: no key record at new._domainkey.other.test" in out, out
    assert ("fix:  no DMARC record at _dmarc.other.test: publish _dmarc.other.test. IN TXT "
            "\"v=DMARC1; p=none; rua=mailto:postmaster@other.test\"") in out, out
    assert "ok:   this server's address 127.0.0.1 may send for other.test" in out, out
    # strict.test's SPF does not allow this host
    out = inst.cli("dkim", "check", "strict.test").stdout.decode()
    assert "fix:  SPF of strict.test says fail for this server's address 127.0.0.1" in out, out
    assert "fix:  strict.test has no entry in dkim_sign_maps: run `tern dkim keygen strict.test`" in out, out


def test_several_author_domains_refused_where_dmarc_is_enforced(tern_instance, lab):
    """RFC 9989 11.5: a From: with addresses in two domains would slip past
    DMARC; where it is enforced such a message is refused."""
    inst = enforcing(tern_instance, lab)
    code, text = send_raw(inst, "x@other.test",
                          message("ceo@strict.test, friend@other.test", "two authors"))
    assert code == 550, text
    assert text == (b"5.7.1 Message rejected: From: field holds addresses in several domains, "
                    b"so DMARC cannot be checked (RFC 9989 section 11.5)"), text
    code, text = send_raw(inst, "x@other.test",
                          message("ceo@strict.test", "two fields", "From: friend@other.test\r\n"))
    assert code == 550 and b"RFC 9989 section 11.5" in text, text


def test_arc_chain_verified(inst, lab):
    """A forwarder's ARC set (made by dkimpy with the lab's key) is verified
    and reported; a tampered copy fails."""
    key = lab[1]
    msg = message("alice@auth.test", "arc", "Authentication-Results: fwd.auth.test; spf=pass "
                  "smtp.mailfrom=alice@auth.test\r\n")
    sealed = b"".join(dkim.arc_sign(msg, b"sel", b"auth.test", key, b"fwd.auth.test",
                                    include_headers=[b"from", b"to", b"subject"])) + msg
    ar = results(deliver(inst, "x@other.test", sealed, 1))
    assert re.search(r"\barc=pass \(i=1 d=auth\.test\) header\.oldest-pass=0", ar[0]), ar
    # the body changed on the way (the Message-ID too, only to tell the copies apart)
    tampered = sealed.replace(b"from the lab", b"from a lab").replace(b"<arc@test>", b"<arc2@test>")
    ar = results(deliver(inst, "x@other.test", tampered, 2))
    assert re.search(r"\barc=fail\b", ar[0]), ar


def test_claims_in_our_name_removed_from_our_own_users_too(tern_instance):
    """Mail from mynetworks (no checks) and from sendmail still loses an
    Authentication-Results field in our name: a web host or a local user
    cannot make phishing look verified by us (RFC 8601 section 5)."""
    inst = tern_instance
    inst.start()   # conftest: 127.0.0.1 in mynetworks, checks off
    forged = message("ceo@strict.test", "forged-ar",
                     f"Authentication-Results: {AUTHSERV}; dkim=pass header.d=strict.test; dmarc=pass\r\n")
    with inst.smtp() as c:
        c.sendmail("x@other.test", ["alice@example.test"], forged)
    inst.cli("sendmail", "-i", "alice@example.test", input=forged.replace(b"\r\n", b"\n"), check=True)
    for m in inst.wait_messages("alice", count=2):
        got = m.read_bytes()
        assert b"Subject: forged-ar" in got
        assert b"Authentication-Results" not in got, got


def test_internationalized_author_domain(tern_instance, lab):
    """RFC 9989 5.3.1: a From: domain in Unicode is looked up as A-labels,
    so its policy applies (here: a forgery of bücher.test is refused)."""
    inst = enforcing(tern_instance, lab)
    code, text = send_raw(inst, "x@other.test", message("Anna <anna@b\u00fccher.test>", "idn"))
    assert code == 550, text
    assert b"DMARC policy of xn--bcher-kva.test is reject" in text, text


# ---- DMARC aggregate reports (RFC 9990) ----

RFC9990 = Path(__file__).resolve().parents[2].parent / "shared" / "rfc" / "rfc9990.txt"


def dmarc_schema(where):
    """The XML Schema of RFC 9990 Appendix A, taken out of the RFC's text
    (page breaks dropped)."""
    text = RFC9990.read_text()
    body = text[text.index("\nAppendix A.  DMARC XML Schema\n") + 1:text.index("\nAppendix B.  Sample Report\n")]
    lines = [ln for ln in body.splitlines()[1:]
             if not ln.startswith(("RFC 9990", "Brotman")) and "\f" not in ln]
    xsd = where / "dmarc-2.0.xsd"
    xsd.write_text("\n".join(ln[3:] if ln.startswith("   ") else ln for ln in lines).strip() + "\n")
    return xsd


def test_dmarc_aggregate_report(tern_instance, lab, tmp_path):
    """Evaluations of rep.test (two that pass, one forgery refused) become
    one report at the period's end: mailed to the rua address that agreed,
    not to the one that did not, gzip'd XML valid under RFC 9990's schema,
    with the counts and dispositions of what happened."""
    inst = enforcing(tern_instance, lab, dmarc_report_address="dmarc-reports@mail.example.test",
                     dmarc_report_interval="12s", dmarc_report_org_name="Example Lab")
    # all three in one period
    if time.time() % 12 > 7:
        time.sleep(12 - time.time() % 12 + 0.2)
    for subject in ("report-1", "report-2"):
        assert send_raw(inst, "alice@rep.test", message("Alice <alice@rep.test>", subject))[0] == 250
    code, _ = send_raw(inst, "x@other.test", message("Alice <alice@rep.test>", "forged"))
    assert code == 550
    got = inst.wait_messages("dmarc-rua", count=1, timeout=40)
    msg = email.message_from_bytes(got[0].read_bytes())
    subject = re.sub(r"\s+", " ", msg["Subject"])
    m = re.fullmatch(r"Report Domain: rep\.test Submitter: mail\.example\.test Report-ID: <(\d+)\.rep\.test@mail\.example\.test>",
                     subject)
    assert m, subject
    begin = int(m.group(1))
    assert msg["From"] == "dmarc-reports@mail.example.test"
    assert "x@noreports.test" not in msg["To"], msg["To"]
    parts = [p for p in msg.walk() if p.get_content_type() == "application/gzip"]
    assert len(parts) == 1, got[0].read_bytes()[:1200].decode()
    assert parts[0].get_filename() == f"mail.example.test!rep.test!{begin}!{begin + 11}.xml.gz"
    xml = gzip.decompress(parts[0].get_payload(decode=True))
    report = tmp_path / "report.xml"
    report.write_bytes(xml)
    check = subprocess.run(["xmllint", "--noout", "--schema", str(dmarc_schema(tmp_path)), str(report)],
                           capture_output=True)
    assert check.returncode == 0, check.stderr.decode() + xml.decode()
    ns = {"d": "urn:ietf:params:xml:ns:dmarc-2.0"}
    root = ET.fromstring(xml)
    assert root.findtext("d:report_metadata/d:org_name", namespaces=ns) == "Example Lab"
    assert root.findtext("d:report_metadata/d:date_range/d:begin", namespaces=ns) == str(begin)
    assert root.findtext("d:policy_published/d:domain", namespaces=ns) == "rep.test"
    assert root.findtext("d:policy_published/d:p", namespaces=ns) == "reject"
    rows = {}
    for rec in root.findall("d:record", ns):
        rows[rec.findtext("d:identifiers/d:envelope_from", namespaces=ns)] = (
            rec.findtext("d:row/d:source_ip", namespaces=ns),
            int(rec.findtext("d:row/d:count", namespaces=ns)),
            rec.findtext("d:row/d:policy_evaluated/d:disposition", namespaces=ns),
            rec.findtext("d:row/d:policy_evaluated/d:dkim", namespaces=ns),
            rec.findtext("d:row/d:policy_evaluated/d:spf", namespaces=ns),
            rec.findtext("d:identifiers/d:header_from", namespaces=ns),
            rec.findtext("d:auth_results/d:spf/d:domain", namespaces=ns),
            rec.findtext("d:auth_results/d:spf/d:result", namespaces=ns))
    assert rows == {
        "rep.test": ("127.0.0.1", 2, "pass", "fail", "pass", "rep.test", "rep.test", "pass"),
        "other.test": ("127.0.0.1", 1, "reject", "fail", "fail", "rep.test", "other.test", "pass"),
    }, rows
    log = inst.wait_log("not sent to x@noreports.test")
    assert re.search(r"report for rep\.test not sent to x@noreports\.test: noreports\.test does not agree", log), log
    assert re.search(r"DMARC aggregate report for rep\.test: 2 records, 3 messages, to=dmarc-rua@example\.test", log), log


def report_xml(path):
    msg = email.message_from_bytes(path.read_bytes())
    part = [p for p in msg.walk() if p.get_content_type() == "application/gzip"][0]
    return msg, ET.fromstring(gzip.decompress(part.get_payload(decode=True)))


def test_dmarc_report_destinations_and_test_mode(tern_instance, lab):
    """A destination's override rua is used; one that names another host
    cancels the report; t=y lowers reject to quarantine (held) and the
    report says policy_test_mode."""
    inst = enforcing(tern_instance, lab, dmarc_report_address="dmarc-reports@mail.example.test",
                     dmarc_report_interval="10s")
    if time.time() % 10 > 6:
        time.sleep(10 - time.time() % 10 + 0.2)
    code, _ = send_raw(inst, "x@other.test", message("Olga <olga@ovr.test>", "ovr-forged"))
    assert code == 250   # t=y: quarantine instead of reject, so held
    assert send_raw(inst, "r@redir.test", message("Rita <r@redir.test>", "redir"))[0] == 250
    got = inst.wait_messages("b", count=1, timeout=40)
    msg, root = report_xml(got[0])
    assert msg["To"] == "b@example.test", msg["To"]
    ns = {"d": "urn:ietf:params:xml:ns:dmarc-2.0"}
    assert root.findtext("d:policy_published/d:testing", namespaces=ns) == "y"
    ev = root.find("d:record/d:row/d:policy_evaluated", ns)
    assert ev.findtext("d:disposition", namespaces=ns) == "quarantine"
    assert ev.findtext("d:reason/d:type", namespaces=ns) == "policy_test_mode"
    log = inst.wait_log("names another host")
    assert re.search(r"report for redir\.test not sent to c@example\.test: "
                     r"redir\.test\._report\._dmarc\.example\.test names another host", log), log
    assert inst.messages("a") == [] and inst.messages("c") == [] and inst.messages("d") == []
