#!/usr/bin/python3
"""Checks that a delivery status notification written by src/msg/bounce.c
parses with Python's email package as RFC 3464/6522 wants it.

    /usr/bin/python3 tests/unit/check_dsn.py FILE [--rcpts N] [--third TYPE]

FILE holds the notice as written (CRLF). --rcpts: the number of per-recipient
groups expected; --third: the content type of part 3, or "none". Prints OK and
exits 0, or prints what is wrong and exits 1. test_bounce.c runs it."""

import argparse
import email
import email.policy
import re
import sys
from email.parser import BytesHeaderParser

ACTIONS = {"failed", "delayed", "delivered", "relayed", "expanded"}
STATUS = re.compile(r"^[245]\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})$")
TYPED = re.compile(r"^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+;")
STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")
THIRD_TYPES = ("message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers")


def fail(why):
    print("FAIL: " + why)
    sys.exit(1)


def check_lines(raw):
    for no, line in enumerate(raw.split(b"\r\n"), 1):
        if b"\n" in line or b"\r" in line:
            fail("line %d: bare CR or LF" % no)
        if len(line) > 998:
            fail("line %d: %d octets" % (no, len(line)))


def status_blocks(msg, raw):
    """The field groups of the (global-)delivery-status part, as Messages."""
    part = msg.get_payload()[1]
    if part.get_content_type() == "message/delivery-status":
        return list(part.get_payload())
    # The email package parses only message/delivery-status into groups; the
    # global type (RFC 6533) has the same syntax in UTF-8, so take the part's
    # raw bytes from the notice and split them by hand.
    delim = b"\r\n--" + msg.get_boundary().encode("ascii")
    chunks = raw.split(delim)
    if len(chunks) < 4:
        fail("cannot find part 2 by its boundary")
    text = chunks[2]
    if not text.startswith(b"\r\n") or b"\r\n\r\n" not in text:
        fail("part 2 has no header/body separator")
    body = text.split(b"\r\n\r\n", 1)[1]
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        fail("global delivery-status is not UTF-8")
    blocks = [b for b in re.split(rb"\r\n[ \t]*\r\n", body) if b.strip()]
    return [BytesHeaderParser(policy=email.policy.default).parsebytes(b + b"\r\n") for b in blocks]


def field(block, name):
    v = block.get(name)
    return None if v is None else " ".join(str(v).split())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--rcpts", type=int)
    ap.add_argument("--third")
    args = ap.parse_args()

    with open(args.file, "rb") as f:
        raw = f.read()
    check_lines(raw)
    msg = email.message_from_bytes(raw, policy=email.policy.default)

    if msg.get_content_type() != "multipart/report":
        fail("top type " + msg.get_content_type())
    for name in ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version"):
        if msg[name] is None:
            fail("no " + name)
    if str(msg["Auto-Submitted"]) != "auto-replied":
        fail("Auto-Submitted %r" % msg["Auto-Submitted"])
    for part in msg.walk():
        if part.defects:
            fail("defects in %s: %r" % (part.get_content_type(), part.defects))

    parts = msg.get_payload()
    if len(parts) not in (2, 3):
        fail("%d parts" % len(parts))
    if parts[0].get_content_type() != "text/plain":
        fail("part 1 is " + parts[0].get_content_type())
    if not parts[0].get_content().strip():
        fail("empty text part")
    if parts[1].get_content_type() not in STATUS_TYPES:
        fail("part 2 is " + parts[1].get_content_type())
    # RFC 6522: report-type names the subtype of the second part
    if msg.get_param("report-type") != parts[1].get_content_subtype():
        fail("report-type %r with a %s part" % (msg.get_param("report-type"), parts[1].get_content_type()))

    blocks = status_blocks(msg, raw)
    if len(blocks) < 2:
        fail("no per-recipient fields")
    per_msg = blocks[0]
    mta = field(per_msg, "Reporting-MTA")
    if not mta or not mta.lower().startswith("dns;"):
        fail("Reporting-MTA %r" % mta)
    if per_msg.get("Final-Recipient") is not None:
        fail("Final-Recipient in the per-message fields")
    for i, b in enumerate(blocks[1:], 1):
        fr = field(b, "Final-Recipient")
        if not fr or not TYPED.match(fr):
            fail("recipient %d: Final-Recipient %r" % (i, fr))
        action = field(b, "Action")
        if action not in ACTIONS:
            fail("recipient %d: Action %r" % (i, action))
        status = field(b, "Status")
        if not status or not STATUS.match(status):
            fail("recipient %d: Status %r" % (i, status))
        for name in ("Remote-MTA", "Diagnostic-Code", "Original-Recipient"):
            v = field(b, name)
            if v is not None and not TYPED.match(v):
                fail("recipient %d: %s %r" % (i, name, v))
        if b.get("Will-Retry-Until") is not None and action != "delayed":
            fail("recipient %d: Will-Retry-Until with Action %s" % (i, action))
    if args.rcpts is not None and len(blocks) - 1 != args.rcpts:
        fail("%d recipient groups, expected %d" % (len(blocks) - 1, args.rcpts))

    third = parts[2].get_content_type() if len(parts) == 3 else "none"
    if third != "none" and third not in THIRD_TYPES:
        fail("part 3 is " + third)
    if args.third is not None and third != args.third:
        fail("part 3 is %s, expected %s" % (third, args.third))
    if third in ("message/rfc822", "message/global"):
        inner = parts[2].get_payload()
        if not isinstance(inner, list) or len(inner) != 1:
            fail("part 3 does not hold one message")

    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
