#!/bin/sh
# `make tools`: the upstream tools rxbench cross-checks with, built from the
# pinned sources (versions.yaml) with the flake's own recipes:
#   - xdpsock (bpf-examples AF_XDP-example) on this host: nix/xdpsock.nix's
#     phases replayed (workflow/scripts/replay-recipes.py xdpsock), installed
#     into $TOOLS_PREFIX (default /usr/local): bin/xdpsock,
#     lib/bpf/xdpsock_kern.o, and lib/rxbench/rxb-memlock-shim.so (see
#     workflow/scripts/memlock-shim.c), and kept in $TOOLS_CACHE/xdpsock for
#     the vm guest image;
#   - Pktgen-DPDK for the vm platform's guests: nixpkgs' pktgen recipe
#     replayed in a Debian trixie root against trixie's DPDK 24.11
#     (replay-recipes.py pktgen); the result is kept in $TOOLS_CACHE/pktgen
#     (bin/pktgen), which vm/build-image.sh copies into the guest image.
# Sources: GitHub, or RXB_SOURCES=DIR (a local mirror, OWNER/REPO/REV.tar.gz),
# each tree checked against versions.yaml's NAR hash (workflow/scripts/sources.py).
#   build-tools.sh [xdpsock] [pktgen]      (default both)
set -eu
cd "$(dirname "$0")/../.."
PREFIX=${TOOLS_PREFIX:-/usr/local}
CACHE=${TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rxbench/tools}
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=.venv/bin/python
what=${*:-xdpsock pktgen}
./workflow/scripts/setup-debian.sh workflow/envs/debian-tools.txt
mkdir -p "$CACHE"
for t in $what; do
	case "$t" in
	xdpsock)
		"$PY" workflow/scripts/replay-recipes.py xdpsock --work "$CACHE/work" --json "$CACHE/xdpsock.json"
		out="$CACHE/work/xdpsock/out"
		install -Dm755 "$out/bin/xdpsock" "$PREFIX/bin/xdpsock"
		install -Dm644 "$out/lib/bpf/xdpsock_kern.o" "$PREFIX/lib/bpf/xdpsock_kern.o"
		mkdir -p "$PREFIX/lib/rxbench"
		cc -shared -fPIC -O2 -Wall -o "$PREFIX/lib/rxbench/rxb-memlock-shim.so" \
			workflow/scripts/memlock-shim.c -ldl
		# the same binary for the vm guest image (vm/build-image.sh)
		rm -rf "$CACHE/xdpsock" && cp -r "$out" "$CACHE/xdpsock"
		echo "tools: xdpsock in $PREFIX/bin (the xdpsock stack finds it on PATH) and $CACHE/xdpsock"
		;;
	pktgen)
		RXB_TRIXIE_ROOT=${RXB_TRIXIE_ROOT:-$CACHE/trixie-root} \
			"$PY" workflow/scripts/replay-recipes.py pktgen --work "$CACHE/work" --json "$CACHE/pktgen.json"
		root=${RXB_TRIXIE_ROOT:-$CACHE/trixie-root}
		rm -rf "$CACHE/pktgen.tmp"
		cp -r "$root/build/pktgen/out" "$CACHE/pktgen.tmp"
		cp "$CACHE/pktgen.json" "$CACHE/pktgen.tmp/build.json"
		rm -rf "$CACHE/pktgen" && mv "$CACHE/pktgen.tmp" "$CACHE/pktgen"
		echo "tools: Pktgen-DPDK in $CACHE/pktgen (the vm guest image takes it from there)"
		;;
	*)
		echo "build-tools.sh: no tool $t (xdpsock, pktgen)" >&2
		exit 2
		;;
	esac
done
