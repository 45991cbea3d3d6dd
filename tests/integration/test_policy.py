"""Restriction lists with Postfix's names and first-match semantics
(smtpd_*_restrictions, evaluated at RCPT TO), per listener from master.cf -o."""
import smtplib

import pytest

from conftest import raw_session
from relay_peers import test_dns  # noqa: F401 (fixture)


def rcpt_reply(tern, rcpt, sender="someone@example.org", helo="client.example", source=None):
    s = raw_session(tern, source=source)
    s.read_reply()
    s.cmd(f"EHLO {helo}")
    code, text = s.cmd(f"MAIL FROM:<{sender}>")
    assert code == 250, text
    reply = s.cmd(f"RCPT TO:<{rcpt}>")
    s.close()
    return reply


def test_default_relay_policy(tern_instance):
    tern_instance.write_config(mynetworks="127.0.0.1/32")
    tern = tern_instance.start()
    assert rcpt_reply(tern, "far@remote.example", source="127.0.0.40") == (
        554, "554 5.7.1 <far@remote.example>: Relay access denied")
    assert rcpt_reply(tern, "far@remote.example")[0] == 250                 # mynetworks
    assert rcpt_reply(tern, "you@localhost", source="127.0.0.40")[0] == 250  # our own domain
    log = tern.wait_log("Relay access denied; from=<someone@example.org>")
    assert "proto=ESMTP helo=<client.example>" in log


def test_access_tables_and_first_match(tern_instance, work_dir):
    table = work_dir / "client_access"
    table.write_text("127.0.0.41 REJECT go away\n127.0.0.42 OK\n127.0.0.43 450 4.7.1 slow down\n")
    senders = work_dir / "sender_access"
    senders.write_text("spam.example REJECT\nfriend@spam.example OK\n")
    tern_instance.write_config(
        mynetworks="127.0.0.1/32",
        smtpd_client_restrictions=f"check_client_access texthash:{table}",
        smtpd_helo_restrictions="reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname",
        smtpd_sender_restrictions=f"reject_non_fqdn_sender, check_sender_access texthash:{senders}")
    tern = tern_instance.start()
    assert rcpt_reply(tern, "you@localhost", source="127.0.0.41") == (
        554, "554 5.7.1 <localhost[127.0.0.41]>: Client host rejected: go away")
    code, text = rcpt_reply(tern, "you@localhost", source="127.0.0.43")
    assert (code, text) == (450, "450 4.7.1 <localhost[127.0.0.43]>: Client host rejected: slow down")
    # OK for the client ends that list only: the HELO list still applies
    assert rcpt_reply(tern, "you@localhost", source="127.0.0.42", helo="nodots")[0] == 504
    assert rcpt_reply(tern, "you@localhost", source="127.0.0.42")[0] == 250
    assert rcpt_reply(tern, "you@localhost", sender="x@spam.example")[0] == 554
    assert rcpt_reply(tern, "you@localhost", sender="friend@spam.example")[0] == 250   # first match


def test_submission_recipient_restrictions_from_master_cf(tern_instance, tls_files):
    """The seed's -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject:
    on 587 nothing goes without a login, not even local mail."""
    from test_auth import Submission, PASSWORD, client_ctx
    sub = Submission(tern_instance, tls_files)
    # on the submission service (the first one with AUTH)
    tern_instance.master_cf = tern_instance.master_cf.replace(
        "  -o smtpd_sasl_auth_enable=yes\n",
        "  -o smtpd_sasl_auth_enable=yes\n  -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject\n", 1)
    sub.add_user("alice@example.test")
    tern = tern_instance.start()
    with sub.submit() as c:
        c.mail("alice@example.test")
        assert c.rcpt("bob@localhost")[0] == 554                 # not logged in
    with sub.submit() as c:
        c.login("alice@example.test", PASSWORD)
        c.mail("alice@example.test")
        assert c.rcpt("bob@localhost")[0] == 250


def test_bad_restriction_is_refused_at_start(tern_instance):
    tern_instance.write_config(smtpd_recipient_restrictions="permit_mynetworks, reject_everything_bad")
    tern_instance.start(wait=False)
    tern_instance.proc.wait(timeout=20)
    assert tern_instance.proc.returncode != 0
    assert "reject_everything_bad" in tern_instance.stderr_text() + tern_instance.log_text()


def test_sender_login_mismatch(tern_instance, tls_files, work_dir):
    """smtpd_sender_login_maps + reject_sender_login_mismatch: a logged-in
    user sends only as addresses they own; nobody else may use those."""
    from test_auth import Submission, PASSWORD
    owners = work_dir / "senders"
    owners.write_text("alice@example.test alice@example.test\nbob@example.test bob@example.test\n")
    sub = Submission(tern_instance, tls_files, smtpd_sender_login_maps=f"texthash:{owners}",
                     smtpd_sender_restrictions="reject_sender_login_mismatch", mynetworks="127.0.0.1/32")
    sub.add_user("alice@example.test")
    r = tern_instance.cli("passwd", "add", "carol@example.test", "carol@example.test", "sales@example.test",
                          input=(PASSWORD + "\n").encode())
    assert r.returncode == 0, r.stderr
    tern = tern_instance.start()

    def try_send(user, sender):
        with sub.submit() as c:
            c.login(user, PASSWORD)
            c.mail(sender)
            return c.rcpt("dest@localhost")

    assert try_send("alice@example.test", "alice@example.test")[0] == 250
    assert try_send("alice@example.test", "bob@example.test") == (
        553, b"5.7.1 <bob@example.test>: Sender address rejected: not owned by user alice@example.test")
    assert try_send("carol@example.test", "sales@example.test")[0] == 250   # from tern passwd's address list
    # not logged in, using an owned address (from outside mynetworks, on port 25)
    s = raw_session(tern, source="127.0.0.50")
    s.read_reply()
    s.cmd("EHLO outside.example")
    s.cmd("MAIL FROM:<bob@example.test>")
    assert s.cmd("RCPT TO:<dest@localhost>") == (553, "553 5.7.1 <bob@example.test>: Sender address rejected: "
                                                      "not logged in")
    s.close()


def test_dnsbl_and_unknown_sender_domain(tern_instance, test_dns):
    """reject_rbl_client and reject_unknown_sender_domain against the test DNS."""
    tern_instance.write_config(mynetworks="127.0.0.1/32", dns_resolvers=test_dns.resolver,
                               smtpd_client_restrictions="reject_rbl_client rbl.test",
                               smtpd_sender_restrictions="reject_unknown_sender_domain")
    tern = tern_instance.start()
    assert rcpt_reply(tern, "you@localhost", source="127.0.0.2", sender="a@sink.test") == (
        554, "554 5.7.1 Service unavailable; Client host [127.0.0.2] blocked using rbl.test; listed for testing")
    assert rcpt_reply(tern, "you@localhost", source="127.0.0.3", sender="a@sink.test")[0] == 250
    assert rcpt_reply(tern, "you@localhost", source="127.0.0.3", sender="a@nowhere.test") == (
        450, "450 4.1.8 <a@nowhere.test>: Sender address rejected: Domain not found")
    assert rcpt_reply(tern, "you@localhost", source="127.0.0.3", sender="a@nullmx.test")[0] == 550
    assert rcpt_reply(tern, "you@localhost", source="127.0.0.3", sender="a@aonly.test")[0] == 250  # A, no MX


@pytest.mark.parametrize("style,relays", [("host", False), ("subnet", True)])
def test_mynetworks_style(tern_instance, style, relays):
    """Without mynetworks, mynetworks_style derives it from the interfaces
    (lo is 127.0.0.1/8): host trusts 127.0.0.1 only, subnet all of 127/8."""
    tern_instance.write_config(mynetworks=None, mynetworks_style=style)
    tern = tern_instance.start()
    code, text = rcpt_reply(tern, "far@remote.example", source="127.0.0.77")
    assert (code == 250) == relays, text
    assert rcpt_reply(tern, "far@remote.example")[0] == 250   # 127.0.0.1 itself, either way
    tern.wait_log(f"mynetworks (from mynetworks_style = {style}):")


def test_dnsbl_for_an_ipv6_client(tern_instance, test_dns):
    import socket
    with socket.socket(socket.AF_INET6) as s6:
        s6.bind(("::1", 0))
        port6 = s6.getsockname()[1]
    tern_instance.master_cf = (f"{tern_instance.host}:{tern_instance.port} inet n - n - - smtpd\n"
                               f"[::1]:{port6} inet n - n - - smtpd\n")
    tern_instance.write_config(mynetworks="127.0.0.1/32", dns_resolvers=test_dns.resolver,
                               smtpd_client_restrictions="reject_rbl_client rbl.test")
    tern = tern_instance.start()
    c = smtplib.SMTP("::1", port6, timeout=10)
    c.ehlo("v6.example")
    c.mail("a@sink.test")
    code, text = c.rcpt("you@localhost")
    c.close()
    assert (code, text) == (554, b"5.7.1 Service unavailable; Client host [::1] blocked using rbl.test")
