#!/bin/sh
# A fresh-machine check of the README's quick start (not in the default test
# run: it downloads a Debian base system and takes tens of minutes).
#
#   tests/fresh/debootstrap-check.sh [DIR]      (as root)
#
# 1. debootstrap --variant=minbase bookworm DIR MIRROR, plus git and
#    ca-certificates (the mirror is the one apt uses here, read from
#    /etc/apt/sources.list*); an existing DIR/.rxb-base is reused;
# 2. clones this checkout's HEAD into DIR/root/rxbench (inside the chroot,
#    from a read-only bind mount), as a root user clones into their home;
# 3. runs the README's two commands in a chroot with /proc, /sys, /dev and
#    /run/rxbench (the machine-wide measurement lock) mounted:
#      ./rxb test      (the whole test suite)
#      ./rxb           (set-up, the default campaign, the paper from it;
#                       RXB_CHECK_RUN="SNAKE_ARGS=--config profile=smoke"
#                       runs the smoke profile instead, for a quicker check)
#    and prints the time and exit status of each, and pytest's summary line.
# Everything it mounts is unmounted on exit; DIR stays for inspection
# (rm -rf it when done).
set -eu
[ "$(id -u)" = 0 ] || { echo "debootstrap-check: needs root (debootstrap, chroot, mounts)" >&2; exit 2; }
here=$(cd "$(dirname "$0")/../.." && pwd)
dir=${1:-/var/tmp/rxb-fresh}
mirror=$(grep -h -E '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null |
         grep -m1 -E 'debian/?$|debian ' | sed -E 's/^URIs: *//; s/^deb +(\[[^]]*\] +)?//; s/ .*//')
mirror=${mirror:-http://deb.debian.org/debian}
log() { echo "debootstrap-check: $*"; }

if [ ! -e "$dir/.rxb-base" ]; then
    rm -rf "$dir"
    log "debootstrap --variant=minbase bookworm $dir $mirror"
    t0=$(date +%s)
    debootstrap --variant=minbase --include=git,ca-certificates bookworm "$dir" "$mirror" > "$dir.debootstrap.log" 2>&1 ||
        { tail -20 "$dir.debootstrap.log"; exit 1; }
    log "base system in $(( $(date +%s) - t0 )) s"
    touch "$dir/.rxb-base"
fi

mounted=""
cleanup() {
    for m in $mounted; do umount -l "$m" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM
bind() {  # bind SRC DST [ro]
    mkdir -p "$2"
    mount --bind "$1" "$2"
    [ "${3:-}" = ro ] && mount -o remount,bind,ro "$2"
    mounted="$2 $mounted"
}
mount -t proc proc "$dir/proc"; mounted="$dir/proc $mounted"
bind /sys "$dir/sys"
bind /dev "$dir/dev"
mkdir -p /run/rxbench; bind /run/rxbench "$dir/run/rxbench"
bind "$here" "$dir/mnt/src" ro
cp /etc/resolv.conf "$dir/etc/resolv.conf"

run() {  # run LABEL COMMAND...: in the chroot, in the clone, timed
    label=$1; shift
    t0=$(date +%s)
    rc=0
    chroot "$dir" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        LANG=C.UTF-8 sh -c "cd /root/rxbench && $*" > "$dir/root/$label.log" 2>&1 || rc=$?
    log "$label: '$*' exit $rc in $(( $(date +%s) - t0 )) s (log $dir/root/$label.log)"
    grep -E '[0-9]+ (passed|failed)' "$dir/root/$label.log" | tail -1 || true
    return 0
}
rm -rf "$dir/root/rxbench"
chroot "$dir" git -c safe.directory='*' clone -q /mnt/src /root/rxbench
log "cloned $(git -C "$here" rev-parse --short HEAD) into $dir/root/rxbench"
run test ./rxb test
run run ./rxb ${RXB_CHECK_RUN:-}
