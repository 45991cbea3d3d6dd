#!/bin/sh
# Installs what building (deps.sh build) or testing (deps.sh test) tern needs,
# from Debian's archive, when it is missing. Prints nothing when all is there.
# deps.sh bench: what the spool journal probe (make journal-probe) links with.
set -eu
build_pkgs="gcc make pkg-config libevent-dev libcrypt-dev libunbound-dev libssl-dev libseccomp-dev libidn2-dev zlib1g-dev libpcre2-dev libpq-dev libgmime-3.0-dev libjansson-dev node-dompurify python3 openssl"
test_pkgs="$build_pkgs clang libclang-rt-14-dev libcmocka-dev python3 python3-pytest swaks libnet-ssleay-perl libio-socket-ssl-perl postfix python3-aiosmtpd procps unbound dovecot-core dovecot-lmtpd msmtp groff-base python3-flufl.bounce git libyaml-dev python3-dkim python3-nacl python3-authres opendkim opendkim-tools dns-root-data libxml2-utils postgresql chromium chromium-driver python3-selenium"
bench_pkgs="gcc make librocksdb-dev liblmdb-dev libsqlite3-dev"
case "${1:-build}" in
  build) want=$build_pkgs ;;
  test)  want=$test_pkgs ;;
  bench) want=$bench_pkgs ;;
  *) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac
# The test suite runs tern as root the way an installation does, so the
# unprivileged mail_owner must exist.
ensure_user() {
  [ "${1:-}" = test ] || return 0
  [ "$(id -u)" = 0 ] || return 0
  getent passwd tern >/dev/null 2>&1 && return 0
  echo "tern: creating the system user tern (mail_owner)" >&2
  useradd --system --home-dir /var/spool/tern --no-create-home --shell /usr/sbin/nologin tern
}
missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then ensure_user "${1:-build}"; exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "tern: missing Debian packages:$missing" >&2
  echo "tern: run as root, or: sudo apt-get install$missing" >&2
  exit 1
fi
echo "tern: installing$missing" >&2
# Debian's postfix package would start a system Postfix on port 25: keep it from
# starting anything, and let it install without a configuration. The same
# policy-rc.d keeps postgresql's service (a cluster on port 5432) from starting;
# its package still makes a "main" cluster unless told not to: the tests make
# throwaway clusters of their own (tests/integration/pg_fixture.py).
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
if ! dpkg-query -W -f='${Status}' postgresql-common 2>/dev/null | grep -q "install ok installed" &&
   [ ! -e /etc/postgresql-common/createcluster.conf ]; then
  mkdir -p /etc/postgresql-common
  echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
fi
had_policy=0
[ -e /usr/sbin/policy-rc.d ] && had_policy=1
if [ $had_policy = 0 ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null || true
apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confold -o Dpkg::Options::=--force-confdef $missing >/dev/null
if [ $had_policy = 0 ]; then rm -f /usr/sbin/policy-rc.d; fi
ensure_user "${1:-build}"
