#!/usr/bin/python3
"""dkimpy cross-checks for tests/unit/test_dkim.c: an independent DKIM
implementation (Debian's python3-dkim, with python3-nacl for Ed25519) verifies
what Tern signs and signs what Tern must verify.

  dkimpy_check.py verify MSGFILE DNSFILE
      Verifies every DKIM-Signature of MSGFILE with dkimpy, the key records
      answered from DNSFILE (one record a line: "<name> <TXT text>", the name
      without a trailing dot). Prints "pass" or "fail" per signature, top
      down; exit status 0 when all pass, 1 when one does not, 2 on misuse.
  dkimpy_check.py sign MSGFILE KEYFILE SELECTOR DOMAIN [rsa|ed25519] [simple|relaxed]
      Prints the DKIM-Signature field dkimpy makes (KEYFILE: PEM for rsa, the
      base64 Ed25519 seed for ed25519; c= both parts as given, relaxed by
      default). Exit status 0, or 2.

Exit status 3 with a message naming the Debian package when dkim or nacl
cannot be imported."""
import sys

try:
    import dkim
except ImportError:
    sys.stderr.write("dkimpy_check: python3 module 'dkim' missing: apt-get install python3-dkim\n")
    sys.exit(3)


def load_dns(path):
    table = {}
    with open(path, "rb") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(b"#"):
                continue
            name, _, text = line.partition(b" ")
            table[name.lower().rstrip(b".")] = text.strip()
    return table


def verify(msgfile, dnsfile):
    table = load_dns(dnsfile)

    def dnsfunc(name, timeout=5):
        if isinstance(name, str):
            name = name.encode()
        return table.get(name.lower().rstrip(b"."))

    msg = open(msgfile, "rb").read()
    d = dkim.DKIM(msg)
    count = sum(1 for h, _ in d.headers if h.lower() == b"dkim-signature")
    if count == 0:
        print("none")
        return 1
    ok = True
    for idx in range(count):
        try:
            good = d.verify(idx=idx, dnsfunc=dnsfunc)
        except dkim.DKIMException as e:
            sys.stderr.write("dkimpy_check: signature %d: %s\n" % (idx, e))
            good = False
        print("pass" if good else "fail")
        ok = ok and good
    return 0 if ok else 1


def sign(msgfile, keyfile, selector, domain, alg="rsa", canon="relaxed"):
    if alg == "ed25519":
        try:
            import nacl  # noqa: F401
        except ImportError:
            sys.stderr.write("dkimpy_check: python3 module 'nacl' missing: apt-get install python3-nacl\n")
            return 3
    msg = open(msgfile, "rb").read()
    key = open(keyfile, "rb").read().strip()
    sig = dkim.sign(msg, selector.encode(), domain.encode(), key,
                    canonicalize=(canon.encode(), canon.encode()),
                    signature_algorithm=b"ed25519-sha256" if alg == "ed25519" else b"rsa-sha256")
    sys.stdout.buffer.write(sig)
    return 0


def main(argv):
    if len(argv) == 4 and argv[1] == "verify":
        return verify(argv[2], argv[3])
    if 6 <= len(argv) <= 8 and argv[1] == "sign":
        return sign(*argv[2:])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
