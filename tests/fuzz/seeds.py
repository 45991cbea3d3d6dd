#!/usr/bin/python3
"""seeds: writes the hand-written seed inputs of the fuzz targets into
tests/fuzz/corpus/<target>/seed-<name> (realistic inputs: a real bounce, a
multipart 8-bit message, EHLO replies of well-known servers, an MX answer, a
maildrop file as our sendmail writes it, one IPC message of each type,
Dovecot's handshake). Fields of multi-field inputs are separated by NUL bytes
(see each target's header comment). Run once by hand; `make fuzz-long` keeps
the corpus minimized afterwards, and the seeds stay as long as they add
coverage."""
import os
import struct
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def crlf(text):
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


MULTIPART_8BIT = crlf("""From: =?utf-8?q?J=C3=BCrgen?= <juergen@example.de>
To: anna@example.org
Subject: Bericht
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="==b1=="
Content-Transfer-Encoding: 8bit

Preamble with ümlaut.
--==b1==
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Grüße aus Köln.
.dot at line start and From here, and a long line: """ + "ä" * 60 + """
--==b1==
Content-Type: message/rfc822

From: x@example.com
Subject: inner

Innen: ß
--==b1==
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64

AAECAwQF
--==b1==--
Epilogue é
""")

SIMPLE_8BIT = crlf("""From: a@example.com
To: b@example.org
Subject: plain

caf\u00e9
""").encode("latin-1")

NESTED = crlf("""From: a@example.com
Content-Type: multipart/alternative; boundary=outer

--outer
Content-Type: multipart/related; boundary="inner"

--inner
Content-Type: text/html; charset=utf-8

<p>na\u00efve</p>
--inner--
--outer--
""")

SEVEN_BIT = crlf("""From: a@example.com
To: b@example.org
Subject: ascii only
Message-ID: <1@example.com>

Hello.
""")

QP_8BIT = crlf("""From: a@example.com
Content-Type: text/plain
Content-Transfer-Encoding: quoted-printable

caf=C3=A9 and raw \u00e9
""")

REAL_BOUNCE = crlf("""Return-Path: <>
Received: from mx.example.org (mx.example.org [192.0.2.25])
	by mail.example.com (Tern) with ESMTPS id 4Tt7Hq0DzKz1a2b
	for <sender@example.com>; Sun, 6 Dec 2026 12:00:05 +0000 (UTC)
From: "Mail Delivery System" <MAILER-DAEMON@mx.example.org>
To: <sender@example.com>
Subject: Undelivered Mail Returned to Sender
Date: Sun, 6 Dec 2026 12:00:04 +0000
Message-ID: <20261206120004.4Tt7Hq0DzKz1a2c@mx.example.org>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="4Tt7Hq0DzKz1a2c.0123456789abcdef01234567"

This is a MIME-encapsulated message.

--4Tt7Hq0DzKz1a2c.0123456789abcdef01234567
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<nobody@example.net>: host mx.example.net[198.51.100.2] said: 550 5.1.1
    <nobody@example.net>: Recipient address rejected: User unknown

--4Tt7Hq0DzKz1a2c.0123456789abcdef01234567
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org
X-Tern-Queue-ID: 4Tt7Hq0DzKz1a2b
Arrival-Date: Sun, 6 Dec 2026 12:00:00 +0000

Final-Recipient: rfc822; nobody@example.net
Original-Recipient: rfc822;nobody@example.net
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.example.net
Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.net>: Recipient address
    rejected: User unknown

--4Tt7Hq0DzKz1a2c.0123456789abcdef01234567
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: sender@example.com
To: nobody@example.net
Subject: hello

--4Tt7Hq0DzKz1a2c.0123456789abcdef01234567--
""")


def mime_downgrade():
    put("fuzz_mime_downgrade", "multipart-8bit", MULTIPART_8BIT)
    put("fuzz_mime_downgrade", "plain-latin1", SIMPLE_8BIT)
    put("fuzz_mime_downgrade", "nested-utf8", NESTED)
    put("fuzz_mime_downgrade", "seven-bit", SEVEN_BIT)
    put("fuzz_mime_downgrade", "qp-with-8bit", QP_8BIT)
    put("fuzz_mime_downgrade", "bare-lf", "Subject: x\n\n\u00e9\nline\r\n")


def rfc5322_addr():
    for name, value in [
        ("simple", "a@example.com"),
        ("name-addr", '"Doe, John" <john.doe@example.com>, Jane <jane@example.org>'),
        ("group", "Team: alice@example.com, (boss) bob@example.com;, carol@example.com"),
        ("empty-group", "undisclosed-recipients:;"),
        ("route", "<@relay1,@relay2:user@example.com>"),
        ("comments", "user(comment (nested))@(c)example.com (trailing)"),
        ("literal", "postmaster@[192.0.2.1], x@[IPv6:2001:db8::1]"),
        ("quoted-local", '"john..doe"@example.com, "a\\"b"@example.com'),
        ("no-domain", "root, <postmaster>"),
        ("utf8", "J\u00fcrgen <j\u00fcrgen@b\u00fccher.example>"),
        ("folded", "a@example.com,\r\n b@example.com,\r\n\tc@example.com"),
        ("obs-dots", "john . doe @ example . com"),
    ]:
        put("fuzz_rfc5322_addr", name, value)


def cleanup():
    local = crlf("""Subject: from cron
To: admin, ops@example.org
Cc: "Ops Team" <ops-team@example.org>
Bcc: hidden@example.org

Job done.
""")
    put("fuzz_cleanup", "sendmail-t", b"\x07" + b"cron@host.example.org\0Cron Daemon\0" + local.encode())
    smtp = crlf("""Received: from client.example.net ([192.0.2.7])
	by mx.example.org with ESMTP id 1; Sun, 6 Dec 2026 11:59:00 +0000
From: Alice <alice@example.net>
To: bob@example.org
Date: Sun, 6 Dec 2026 11:58:59 +0000
Message-ID: <abc.123@example.net>
Subject: hi

Hello Bob.
""")
    put("fuzz_cleanup", "smtpd", b"\x04" + b"alice@example.net\0\0" + smtp.encode())
    put("fuzz_cleanup", "no-header", b"\x01" + b"\0\0" + b"just a body line\r\nand another\r\n")
    put("fuzz_cleanup", "resent", b"\x03" + b"u@example.org\0\0" +
        crlf("Resent-To: r@example.org\nResent-Bcc: s@example.org\nTo: t@example.org\n\nbody\n").encode())
    put("fuzz_cleanup", "multipart-8bit", b"\x05" + b"juergen@example.de\0J\xc3\xbcrgen\0" +
        MULTIPART_8BIT.encode())
    put("fuzz_cleanup", "unterminated", b"\x11" + b"a@example.org\0\0" + b"Subject: no end")
    put("fuzz_cleanup", "big-header", b"\x0d" + b"a@example.org\0\0" +
        ("X-Long: " + "x" * 300 + "\r\n\r\nbody\r\n").encode())


def bounce():
    def fields(*items):
        return b"\0".join(x.encode() if isinstance(x, str) else x for x in items)
    orig = crlf("""From: sender@example.com
To: nobody@example.net
Subject: hello
Message-ID: <m1@example.com>

Hi there.
--4Tt7Hq0DzKz1a2c.d9a0c6b1e8f7a2b3c4d5e6f7
""")
    put("fuzz_bounce", "failure-full", bytes([0x00, 0x00]) + fields(
        "sender@example.com", "envid-42",
        "nobody@example.net", "rfc822;nobody@example.net", "failed", "5.1.1", "dns; mx.example.net",
        "smtp; 550 5.1.1 <nobody@example.net>: Recipient address rejected: User unknown", orig))
    put("fuzz_bounce", "delay-two", bytes([0x01, 0x01]) + fields(
        "sender@example.com", "",
        "a@example.net", "", "delayed", "4.4.1", "dns; mx.example.net",
        "smtp; 421 4.4.1 Connection timed out", "b@example.org", "rfc822;B@example.org", "delayed", "4.7.0",
        "", "x-tern; greylisted, try again later", orig))
    put("fuzz_bounce", "success-utf8", bytes([0x2a, 0x00]) + fields(
        "s\u00e9nder@example.com", "", "j\u00fcrgen@b\u00fccher.example", "utf-8;j\\x{FC}rgen@b\\x{FC}cher.example",
        "delivered", "2.0.0", "", "", orig))
    put("fuzz_bounce", "injection", bytes([0x00, 0x02]) + fields(
        "sender@example.com", "id\r\n--x",
        "a@example.net", "rfc822;a@example.net\r\n\r\n--fake", "failed\r\nX: y", "5.0.0\t",
        "dns; mx\r\n\r\n--fake", "smtp; 550 " + "word " * 300 + "x" * 1200,
        "c@example.net", "", "", "", "", "", "e@example.net", "", "relayed", "2.0.0", "", "smtp; 250 ok",
        REAL_BOUNCE))
    put("fuzz_bounce", "headers-only-8bit", bytes([0x14, 0x00]) + fields(
        "sender@example.com", "", "x@example.net", "", "failed", "5.6.3", "", "", MULTIPART_8BIT))


EHLO_POSTFIX = ("250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n"
                "250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n"
                "250 CHUNKING\r\n")
EHLO_EXIM = ("250-mail.example.net Hello client.example.org [192.0.2.7]\r\n250-SIZE 52428800\r\n"
             "250-8BITMIME\r\n250-PIPELINING\r\n250-AUTH PLAIN LOGIN\r\n250-CHUNKING\r\n250-STARTTLS\r\n"
             "250-PRDR\r\n250 HELP\r\n")
EHLO_GMAIL = ("250-mx.google.com at your service, [192.0.2.7]\r\n250-SIZE 157286400\r\n250-8BITMIME\r\n"
              "250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 SMTPUTF8\r\n")


def smtpc_reply():
    put("fuzz_smtpc_reply", "postfix", "220 mx.example.org ESMTP Postfix (Debian/GNU)\r\n" + EHLO_POSTFIX +
        "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
        "250 2.0.0 Ok: queued as 4Tt7Hq0DzKz\r\n221 2.0.0 Bye\r\n")
    put("fuzz_smtpc_reply", "exim", "220 mail.example.net ESMTP Exim 4.96 Sun, 06 Dec 2026 12:00:00 +0000\r\n" +
        EHLO_EXIM + "250 OK\r\n550-Verification failed for <x@example.org>\r\n550-Unrouteable address\r\n"
        "550 Sender verify failed\r\n")
    put("fuzz_smtpc_reply", "gmail", "220 mx.google.com ESMTP a1si123456wrb.1 - gsmtp\r\n" + EHLO_GMAIL +
        "250 2.1.0 OK a1si123456wrb.1 - gsmtp\r\n"
        "550-5.1.1 The email account that you tried to reach does not exist. Please try\r\n"
        "550-5.1.1 double-checking the recipient's email address for typos or\r\n"
        "550 5.1.1 unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser a1si123456wrb.1 - gsmtp\r\n"
        "421-4.7.0 Try again later, closing connection.\r\n421 4.7.0 (EHLO) a1si123456wrb.1 - gsmtp\r\n")
    put("fuzz_smtpc_reply", "odd", "220\r\n250-x\n250-SIZE\r\n250-SIZE 99999999999999999999999\r\n"
        "250-AUTH=LOGIN PLAIN\r\n250 8bitmime\r\n452 4.5.3 Too many recipients\r\n"
        "250 caf\u00e9 \xff bad\r\n".encode("latin-1"))


def wire_name(name):
    out = b""
    for label in name.split(".") if name else []:
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def dns_route():
    def answer(flags, rcode, records):
        out = bytes([flags, rcode, len(records)])
        for r in records:
            out += bytes([len(r)]) + r
        return out
    ok = 0x01 | 0x04
    mx = answer(ok, 0, [struct.pack(">H", 10) + wire_name("mx1.example.com"),
                        struct.pack(">H", 20) + wire_name("MX2.Example.COM"),
                        struct.pack(">H", 10) + wire_name("mx1.example.com")])
    a1 = answer(ok, 0, [bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2])])
    aaaa1 = answer(ok, 0, [bytes.fromhex("20010db8000000000000000000000001")])
    nodata = answer(0, 0, [])
    nx = answer(0x02, 3, [])
    put("fuzz_dns_route", "mx-two-hosts", b"\0example.com\0\0" + mx + aaaa1 + a1 + nodata + a1)
    put("fuzz_dns_route", "implicit-mx", b"\0example.org\0\0" + nodata + aaaa1 + a1)
    put("fuzz_dns_route", "null-mx", b"\0example.net\0\0" + answer(ok, 0, [b"\0\0\0"]))
    put("fuzz_dns_route", "nxdomain", b"\0nonexistent.example\0\0" + nx)
    put("fuzz_dns_route", "servfail-bogus", b"\0example.com\0\0" + answer(0x09, 2, []) )
    put("fuzz_dns_route", "addr-fails", b"\x01\0example.com\0\0" + mx + bytes([0x10]) + nx + answer(0, 2, []))
    put("fuzz_dns_route", "timeout", b"\0example.com\0\0" + mx + a1 + bytes([0x20]))
    put("fuzz_dns_route", "host", b"\x04smtp.example.com.\0\0" + aaaa1 + a1)
    put("fuzz_dns_route", "literal", b"\0[IPv6:2001:db8::25]\0\0")
    put("fuzz_dns_route", "raw-tlsa", b"\x08\x34_25._tcp.mx.example.com\0mx.example.com.\0" +
        answer(ok, 0, [bytes.fromhex("030101") + bytes(32)]))


def maildrop():
    content = crlf("From: me\nSubject: test\n\nbody\n").encode()
    put("fuzz_maildrop", "sendmail", b"TERNMD01\nS user@host.example.org\nF Jane Q. User\nR a@example.org\n"
        b"R b@example.net\n\n" + content)
    put("fuzz_maildrop", "sendmail-t", b"TERNMD01\nS \nT\n\n" + b"To: x@example.org\nBare LF\rlone CR\r\n")
    put("fuzz_maildrop", "bad-record", b"TERNMD01\nS a@b\nQ what\n\nx")


def ipc_msg(mtype, reqid, attrs):
    out = struct.pack("<HI", mtype, reqid)
    for name, value in attrs:
        n = name.encode()
        v = value.encode()
        out += bytes([len(n)]) + n + struct.pack("<I", len(v)) + v + b"\0"
    return out


def ipc():
    msgs = {
        "commit": (1, [("id", "4Tt7Hq0DzKz1a2b")]),
        "commit-reply": (2, [("status", "fail"), ("reply", "452 4.3.1 Insufficient system storage")]),
        "deliver": (3, [("id", "4Tt7Hq0DzKz1a2b"), ("path", "active/4Tt7Hq0DzKz1a2b"), ("offset", "16"),
                        ("length", "1234"), ("sender", "a@example.net"), ("rcpt", "bob@example.org"),
                        ("user", "bob"), ("arrival", "1796558400")]),
        "deliver-reply": (4, [("status", "deferred"), ("dsn", "4.2.2"), ("text", "mailbox full")]),
        "queue-list": (5, []),
        "queue-list-item": (6, [("id", "4Tt7Hq0DzKz1a2b"), ("flag", "!"), ("size", "2048"),
                                ("arrival", "1796558400"), ("sender", ""), ("nrcpt", "2"),
                                ("rcpt0", "a@example.org"), ("reason0", "connection refused"),
                                ("rcpt1", "b@example.org"), ("reason1", "")]),
        "queue-flush": (7, []),
        "queue-delete": (8, [("id", "ALL")]),
        "queue-hold": (9, [("id", "4Tt7Hq0DzKz1a2b")]),
        "queue-release": (10, [("id", "4Tt7Hq0DzKz1a2b")]),
        "pickup": (11, []),
        "done": (12, [("status", "ok"), ("text", "3")]),
        "barrier": (13, [("written_s", "1796558400"), ("written_ns", "123456789")]),
        "barrier-reply": (14, [("status", "ok")]),
    }
    for i, (name, (mtype, attrs)) in enumerate(msgs.items()):
        put("fuzz_ipc", name, ipc_msg(mtype, i + 1, attrs))
    put("fuzz_ipc", "unknown-attr", ipc_msg(1, 7, [("id", "X"), ("bogus", "1")]))


def auth_dovecot():
    # 0xFF separates the server's writes (see the target): latin-1 keeps it one byte.
    def put(target, name, text):
        globals()["put"](target, name, text.encode("latin-1"))
    handshake = ("VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\nMECH\tCRAM-MD5\tdictionary\t"
                 "active\nSPID\t12345\nCUID\t7\nCOOKIE\t0123456789abcdef0123456789abcdef\nDONE\n")
    put("fuzz_auth_dovecot", "ok-fail-temp", handshake + "\xff" + "OK\t1\tuser=alice\n"
        "FAIL\t2\tuser=bob@example.org\treason=Invalid\\001tpassword\nFAIL\t3\ttemp\n")
    put("fuzz_auth_dovecot", "split-lines", handshake[:20] + "\xff" + handshake[20:] + "\xff" +
        "OK\t2\tuser=Bob\x01n\nCONT\t1\t\nFAIL\t3\tcode=temp_fail\treason=backend down\n")
    put("fuzz_auth_dovecot", "no-plain", "VERSION\t1\t2\nMECH\tLOGIN\nDONE\n")
    put("fuzz_auth_dovecot", "violations", "VERSION\t1\t2\nMECH\tPLAIN\nDONE\nOK\t99\nOK\tx\n")
    put("fuzz_auth_dovecot", "unknown-cmd", handshake + "NOTICE\tsomething\nOK\t1\nOK\t2\t\x01"
        "0nul\nFAIL\t3\n")


def capture_mime():
    # The first byte picks the limits: 0 the defaults, 1 tight ones (fuzz_capture_mime.c).
    alternative = crlf("""From: "Shop" <shop@example.net>
To: bob@example.com
Subject: =?UTF-8?Q?Confirm_your_address_=E2=80=93_code_482913?=
Date: Sun, 6 Dec 2026 21:22:45 +0100
Message-ID: <c1@example.net>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="=_alt"

--=_alt
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

Your verification code is 123 456. Confirm: https://shop.example.net/c?t=3Da&u=3D1.
--=_alt
Content-Type: text/html; charset=utf-8

<p>Code: <b>K7PX2M</b> <a href="https://shop.example.net/c?t=a&amp;u=1">go</a>
<a href="javascript:x()">j</a><area href='http://shop.example.net/area'>&#x41;&euro;</p>
--=_alt--
""")
    mixed = crlf("""From: a@example.com
Subject: files
Content-Type: multipart/mixed; boundary=m1

--m1
Content-Type: multipart/related; boundary=r2

--r2
Content-Type: text/html; charset=shift_jis

<p>\x93\xfa\x96\x7b</p>
--r2
Content-Type: image/png; name="logo.png"
Content-ID: <logo@x>
Content-Transfer-Encoding: base64

iVBORw0KGgo=
--r2--
--m1
Content-Type: application/pdf
Content-Disposition: attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf
Content-Transfer-Encoding: base64

JVBERi0xLjQK
--m1
Content-Type: message/rfc822

From: b@example.com
Subject: inner
Content-Type: text/plain; charset=windows-1252

inner \x80 text
--m1--
""").encode("latin-1").decode("unicode_escape").encode("latin-1")
    put("fuzz_capture_mime", "alternative", b"\x00" + alternative.encode("utf-8"))
    put("fuzz_capture_mime", "alternative-tight", b"\x01" + alternative.encode("utf-8"))
    put("fuzz_capture_mime", "mixed", b"\x00" + mixed)
    put("fuzz_capture_mime", "mixed-tight", b"\x01" + mixed)
    put("fuzz_capture_mime", "multipart-8bit", b"\x00" + MULTIPART_8BIT.encode("utf-8"))
    put("fuzz_capture_mime", "nested", b"\x00" + NESTED.encode("utf-8"))
    put("fuzz_capture_mime", "lf-broken", b"\x01Subject: x\nContent-Type: multipart/mixed; boundary=b\n\n--b\n"
        b"Content-Transfer-Encoding: base64\n\nSGVsbG8!\x00\xff\n--b\nContent-Type: text/plain; charset=x-no\n\n"
        b"PIN:\n\n4821\n+1 555 123 4567 $1234 2026-12-06\n")


def main():
    # seeds.py NAME...: only those targets' seeds (e.g. capture_mime).
    if len(sys.argv) > 1:
        for name in sys.argv[1:]:
            globals()[name]()
        return 0
    mime_downgrade()
    rfc5322_addr()
    cleanup()
    bounce()
    smtpc_reply()
    dns_route()
    maildrop()
    ipc()
    auth_dovecot()
    capture_mime()
    return 0


if __name__ == "__main__":
    sys.exit(main())
