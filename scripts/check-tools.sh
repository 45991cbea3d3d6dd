#!/bin/sh
# Checks, before any test runs, that every tool and library the test suite uses
# is here and able to do what the tests ask of it; names the Debian package of
# each one missing and exits 1. A gap then fails in a second with its cause,
# not minutes later inside a test. scripts/deps.sh test installs them all.
set -u
missing=""
need() {  # need PACKAGE TEST...: the package provides something the test checks
  pkg=$1; shift
  if ! "$@" >/dev/null 2>&1; then
    echo "tern: the tests need Debian package $pkg (failed: $*)" >&2
    missing="$missing $pkg"
  fi
}
have() { command -v "$1"; }
need clang have clang
need libclang-rt-14-dev sh -c 'ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a'
need libcmocka-dev test -e /usr/include/cmocka.h
need pkg-config have pkg-config
need python3-pytest /usr/bin/python3 -c 'import pytest'
need python3-aiosmtpd /usr/bin/python3 -c 'import aiosmtpd.controller'
need python3-flufl.bounce /usr/bin/python3 -c 'import flufl.bounce'
# dkimpy signs and verifies against tern (RSA; Ed25519 through PyNaCl)
need python3-dkim /usr/bin/python3 -c 'import dkim'
need python3-nacl /usr/bin/python3 -c 'import nacl.signing'
need python3-authres /usr/bin/python3 -c 'import authres'   # dkimpy's ARC sealing
need libyaml-dev test -e /usr/include/yaml.h
need libxml2-utils have xmllint   # DMARC reports checked against RFC 9990's schema
need git have git
need swaks have swaks
# swaks names what it cannot do; the tests need TLS and AUTH PLAIN/LOGIN.
need libnet-ssleay-perl sh -c 'swaks --support 2>&1 | grep -q "^=== TLS supported"'
need swaks sh -c 'swaks --support 2>&1 | grep -q "^=== Basic AUTH supported"'
need msmtp have msmtp
need openssl have openssl
need unbound test -x /usr/sbin/unbound
need postfix test -x /usr/sbin/postfix
need postfix test -x /usr/sbin/smtp-sink
need dovecot-core test -x /usr/sbin/dovecot
# tests/integration/test_lmtp.py delivers to a private Dovecot LMTP server
need dovecot-lmtpd test -x /usr/lib/dovecot/lmtp
# tests/integration/pg_fixture.py runs throwaway PostgreSQL clusters (pgsql: tables)
need postgresql sh -c 'ls /usr/lib/postgresql/*/bin/initdb /usr/lib/postgresql/*/bin/postgres'
need postgresql-client have psql
need libpq-dev test -e /usr/include/postgresql/libpq-fe.h
# capture mode: MIME parsing (GMime) and the HTTP API's JSON (jansson)
need libgmime-3.0-dev pkg-config --exists gmime-3.0
need libjansson-dev pkg-config --exists jansson
# tests/integration/test_capture_page.py drives the capture page in headless Chromium
need chromium test -x /usr/bin/chromium
need chromium-driver have chromedriver
need python3-selenium /usr/bin/python3 -c 'import selenium.webdriver'
need groff-base have groff
need util-linux have setpriv
need mount have mount
need passwd have useradd
need procps have pgrep
if [ -n "$missing" ]; then
  echo "tern: install them with: apt-get install$missing (or run: scripts/deps.sh test)" >&2
  exit 1
fi
exit 0
