# DPDK at the pinned version (versions.json: dpdk). nixpkgs never packaged
# 24.11.x (24.07 -> 25.03 -> 25.07 -> 26.03), so nixpkgs' dpdk is overridden:
# src and version from the pins, no patches (the ones nixpkgs carried were
# for other releases). Checked against pkgs/by-name/dp/dpdk/package.nix (see
# flake.nix's header): its arguments are `withExamples ? [ ]`,
# `shared ? false`, `machine ? "nehalem"` (x86-64) / "generic" (aarch64).
{
  lib,
  stdenv,
  dpdk,
  fetchFromGitHub,
  pins,
  # meson -Dmachine: not nixpkgs' nehalem (2008) for performance runs.
  # Default: pins.dpdk.machine.<system> = haswell (x86-64-v3, AVX2) on
  # x86_64-linux, generic on aarch64-linux; "native" ties the build to the
  # CPU of the machine that builds it (the seed's -Dplatform=native).
  machine ? pins.dpdk.machine.${stdenv.hostPlatform.system} or null,
  # dpdk-testpmd (the receiver and the dpdk-txonly generator) is one of
  # DPDK's apps, built by default: it needs no example. Examples can be
  # added here (e.g. [ "skeleton" ]) and land in the `examples` output.
  withExamples ? [ ],
  # Pktgen-DPDK links DPDK's static libraries (nixpkgs' default)
  shared ? false,
}:

(dpdk.override { inherit machine withExamples shared; }).overrideAttrs (old: {
  version = pins.dpdk.version;
  src = fetchFromGitHub {
    inherit (pins.dpdk) owner repo rev hash;
  };
  patches = [ ];
  passthru = (old.passthru or { }) // { rxbenchMachine = machine; };
})
