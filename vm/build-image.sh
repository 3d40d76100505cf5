#!/bin/sh
# Build the vm platform's guest image (Debian, debootstrap minbase) into OUT.
#   vm/build-image.sh OUT SUITE KERNEL_SUITE MIRROR NATIVE_DIR INIT_SCRIPT PKG...
# OUT gets: rootfs.qcow2 (ext4, the guests' base image, never written),
# vmlinuz, initrd.img (from the image's /boot), id_ed25519{,.pub} (the key
# pair made for this image; root's authorized key inside), versions.txt
# (dpkg -l of the packages that matter), build.log is written by the caller.
# RXB_PKTGEN_DIR, RXB_XDPSOCK_DIR (set by the platform when `make tools`
# built them) add /usr/local/bin/pktgen and /usr/local/bin/xdpsock.
# Called by workflow/rules/vm.smk; builds in OUT.tmp and renames at the end,
# so a half-built image is never taken for a finished one.
set -eu
OUT=$1; SUITE=$2; KSUITE=$3; MIRROR=$4; NATIVE=$5; INIT=$6; shift 6
PKGS="$*"
TMP="$OUT.tmp"
ROOT="$TMP/root"

cleanup() {
	for m in dev/pts dev proc sys; do
		mountpoint -q "$ROOT/$m" 2>/dev/null && umount -l "$ROOT/$m" || true
	done
}
trap cleanup EXIT INT TERM

rm -rf "$TMP"
mkdir -p "$ROOT"
t0=$(date +%s)
echo "== debootstrap $SUITE from $MIRROR"
debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$ROOT" "$MIRROR"
t1=$(date +%s)

cat > "$ROOT/etc/apt/sources.list" <<SRC
deb $MIRROR $SUITE main
deb $MIRROR $KSUITE main
SRC
echo rxb-guest > "$ROOT/etc/hostname"
mount -t proc proc "$ROOT/proc"
mount -t sysfs sys "$ROOT/sys"
mount --bind /dev "$ROOT/dev"
mount --bind /dev/pts "$ROOT/dev/pts"
# no daemons started inside the chroot
printf '#!/bin/sh\nexit 101\n' > "$ROOT/usr/sbin/policy-rc.d"
chmod +x "$ROOT/usr/sbin/policy-rc.d"

in_root() { chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive LC_ALL=C "$@"; }
in_root apt-get update
# the kernel and its uapi headers from the backports suite; the rest from SUITE
KPKGS=""; RPKGS=""
for p in $PKGS; do
	case "$p" in
	linux-image-*|linux-libc-dev*) KPKGS="$KPKGS $p" ;;
	*) RPKGS="$RPKGS $p" ;;
	esac
done
echo "== packages from $SUITE:$RPKGS"
in_root apt-get install -y --no-install-recommends $RPKGS
echo "== packages from $KSUITE:$KPKGS"
in_root apt-get install -y --no-install-recommends -t "$KSUITE" $KPKGS
t2=$(date +%s)

echo "== native tools, built against the guest's headers"
rm -rf "$ROOT/opt/rxbench"
mkdir -p "$ROOT/opt/rxbench"
cp -r "$NATIVE" "$ROOT/opt/rxbench/native"
rm -rf "$ROOT/opt/rxbench/native/build"
in_root make -C /opt/rxbench/native
install -m 0755 "$INIT" "$ROOT/sbin/rxb-init"

# Pktgen-DPDK, when `make tools` built it (workflow/scripts/build-tools.sh:
# nixpkgs' pktgen recipe replayed in a trixie root against trixie's DPDK
# 24.11, the guests' own): the binary and the libraries it links besides DPDK
if [ -n "${RXB_PKTGEN_DIR:-}" ]; then
	echo "== Pktgen-DPDK from $RXB_PKTGEN_DIR"
	in_root apt-get install -y --no-install-recommends libbsd0 libpcap0.8t64 libnuma1
	install -Dm755 "$RXB_PKTGEN_DIR/bin/pktgen" "$ROOT/usr/local/bin/pktgen"
	in_root sh -c '! ldd /usr/local/bin/pktgen | grep "not found"'
fi
# xdpsock as `make tools` built it on the host (nix/xdpsock.nix's phases; libbpf
# and libxdp linked in statically), with the libraries it links dynamically
if [ -n "${RXB_XDPSOCK_DIR:-}" ]; then
	echo "== xdpsock from $RXB_XDPSOCK_DIR"
	in_root apt-get install -y --no-install-recommends libcap2 libmnl0 libelf1t64 zlib1g
	install -Dm755 "$RXB_XDPSOCK_DIR/bin/xdpsock" "$ROOT/usr/local/bin/xdpsock"
	install -Dm644 "$RXB_XDPSOCK_DIR/lib/bpf/xdpsock_kern.o" "$ROOT/usr/local/lib/bpf/xdpsock_kern.o"
	in_root sh -c '! ldd /usr/local/bin/xdpsock | grep "not found"'
fi

echo "== ssh"
ssh-keygen -q -t ed25519 -N '' -C rxbench-vm-image -f "$TMP/id_ed25519"
mkdir -p "$ROOT/root/.ssh"
chmod 700 "$ROOT/root/.ssh"
cp "$TMP/id_ed25519.pub" "$ROOT/root/.ssh/authorized_keys"
chmod 600 "$ROOT/root/.ssh/authorized_keys"
in_root ssh-keygen -A
cat > "$ROOT/etc/ssh/sshd_config.d/rxbench.conf" <<SSHD
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
SSHD
# root without a password on the serial console only (debugging)
in_root passwd -d root
in_root dpkg-query -W -f '${Package} ${Version}\n' $RPKGS $KPKGS 2>/dev/null | sort > "$TMP/versions.txt" || true
in_root dpkg-query -W -f '${Package} ${Version}\n' 'linux-image-*' >> "$TMP/versions.txt" 2>/dev/null || true

KVER=$(ls "$ROOT/lib/modules" | sort -V | tail -1)
echo "$KVER" > "$TMP/kernel-release"
cp "$ROOT/boot/vmlinuz-$KVER" "$TMP/vmlinuz"
cp "$ROOT/boot/initrd.img-$KVER" "$TMP/initrd.img"
in_root apt-get clean
rm -f "$ROOT/usr/sbin/policy-rc.d"
cleanup
trap - EXIT INT TERM

echo "== root fs image"
SIZE_MB=$(( $(du -sm "$ROOT" | cut -f1) * 3 / 2 + 1024 ))
mkfs.ext4 -q -F -L rxbroot -d "$ROOT" "$TMP/rootfs.raw" "${SIZE_MB}M"
qemu-img convert -O qcow2 "$TMP/rootfs.raw" "$TMP/rootfs.qcow2"
rm -rf "$TMP/rootfs.raw" "$ROOT"
t3=$(date +%s)
printf 'debootstrap_s %s\npackages_s %s\ntotal_s %s\n' $((t1-t0)) $((t2-t1)) $((t3-t0)) > "$TMP/timing.txt"
rm -rf "$OUT"
mv "$TMP" "$OUT"
echo "== done in $((t3-t0)) s: $OUT"
