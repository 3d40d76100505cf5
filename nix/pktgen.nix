# Pktgen-DPDK at the pinned version (versions.json: pktgen_dpdk), built
# against our DPDK (nix/dpdk.nix) instead of nixpkgs' top-level one.
# Checked against pkgs/by-name/pk/pktgen/package.nix (flake.nix's header):
# it takes `dpdk` as an argument, carries lua5_3 in buildInputs but never
# passes -Denable_lua=true, so Lua (scripts, the socket on 22022,
# pktgen.portStats) stays compiled out. We keep it out on purpose: rxbench
# reads Pktgen-DPDK's counters through DPDK telemetry
# (/var/run/dpdk/<prefix>/dpdk_telemetry.v2), and drives it with .pkt
# command files, which work without Lua.
# Note: Pktgen-DPDK's own meson.build adds -march=native: the binary is tuned
# to the CPU of the machine that builds it and may stop with SIGILL on an
# older CPU (or under QEMU TCG with a weaker -cpu): build it where it runs.
# 24.10.3 exits at start without a terminal on stdin (fixed in 25.05.3):
# run it under a pseudo-terminal.
{
  pktgen,
  fetchFromGitHub,
  dpdk,
  pins,
}:

# (RTE_SDK in nixpkgs' env follows the overridden dpdk argument)
(pktgen.override { inherit dpdk; }).overrideAttrs (old: {
  version = pins.pktgen_dpdk.version;
  src = fetchFromGitHub {
    inherit (pins.pktgen_dpdk) owner repo rev hash;
  };
})
