#!/bin/sh
# Installs what building (deps.sh build) or testing (deps.sh test) tern needs,
# from Debian's archive, when it is missing. Prints nothing when all is there.
set -eu
build_pkgs="gcc make pkg-config libevent-dev libcrypt-dev"
test_pkgs="$build_pkgs libcmocka-dev python3 python3-pytest swaks postfix python3-aiosmtpd procps"
case "${1:-build}" in
  build) want=$build_pkgs ;;
  test)  want=$test_pkgs ;;
  *) echo "usage: $0 build|test" >&2; exit 2 ;;
esac
missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "tern: missing Debian packages:$missing" >&2
  echo "tern: run as root, or: sudo apt-get install$missing" >&2
  exit 1
fi
echo "tern: installing$missing" >&2
# Debian's postfix package would start a system Postfix on port 25: keep it from
# starting anything, and let it install without a configuration.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
had_policy=0
[ -e /usr/sbin/policy-rc.d ] && had_policy=1
if [ $had_policy = 0 ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null || true
apt-get install -y -q --no-install-recommends $missing >/dev/null
if [ $had_policy = 0 ]; then rm -f /usr/sbin/policy-rc.d; fi
