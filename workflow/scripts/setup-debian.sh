#!/bin/sh
# Install the Debian packages listed in $1 that are not installed yet.
# Does nothing (and needs no root) when all are present.
set -eu
list=${1:?usage: setup-debian.sh PACKAGE-LIST}
# the list names the suite whose versions versions.yaml pins (debian.host)
want=$(sed -n 's/^# suite: \([a-z]*\).*/\1/p' "$list" | head -n 1)
have=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
if [ -n "$want" ] && [ "$have" != "$want" ]; then
    echo "setup: warning: this is Debian ${have:-unknown}, $list and versions.yaml pin $want's versions" >&2
fi
missing=""
for pkg in $(sed 's/#.*//' "$list"); do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = installed ] || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages:$missing; install them as root (apt-get install$missing)" >&2
    exit 1
fi
echo "setup: installing Debian packages:$missing"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
