# The zcrx kernel: the pinned nixpkgs' kernel of the pinned series
# (versions.json: kernel.nix_attr, >= kernel.min) with kernels/rxbench.config
# applied as structuredExtraConfig, and every kernels/*.patch applied.
# kernels/rxbench.config stays the one list of options: this file parses its
# `CONFIG_X=y|m|n` lines (comments and blank lines skipped), so the Nix kernel
# and any other kernel built from the fragment (Grid'5000) cannot drift.
# Checked against pkgs/os-specific/linux/kernel/generic.nix and
# nixos/modules/system/boot/kernel_config.nix (flake.nix's header): `structuredExtraConfig` is merged over common-config.nix,
# `kernelPatches` entries are { name; patch; extraStructuredConfig ? { }; },
# and `ignoreConfigErrors` is false on the "pc" and "aarch64-multiplatform"
# platforms, so an option that does not end up as asked (e.g.
# IO_URING_ZCRX, a def_bool on IO_URING, PAGE_POOL, INET and
# NET_RX_BUSY_POLL) fails the build instead of passing silently.
{
  lib,
  linuxKernel,
  pins,
}:

let
  base = linuxKernel.kernels.${pins.kernel.nix_attr};

  answer = {
    y = lib.kernel.yes;
    m = lib.kernel.module;
    n = lib.kernel.no;
  };
  parseLine =
    line:
    let
      m = builtins.match "CONFIG_([A-Za-z0-9_]+)=([ymn])[[:space:]]*" line;
    in
    if m == null then
      null
    else
      {
        name = builtins.elemAt m 0;
        # mkForce: kernel_config.nix types `tristate` as an enum, so a "y"
        # here against common-config.nix's "m" would be a conflict; the
        # fragment's answer wins and stays mandatory (not `option`).
        value = lib.mkForce answer.${builtins.elemAt m 1};
      };
  fragment = builtins.readFile ../kernels/rxbench.config;
  rxbenchConfig = lib.listToAttrs (
    builtins.filter (x: x != null) (map parseLine (lib.splitString "\n" fragment))
  );

  patchFiles = lib.attrNames (
    lib.filterAttrs (n: t: t == "regular" && lib.hasSuffix ".patch" n) (builtins.readDir ../kernels)
  );
  rxbenchPatches = map (n: {
    name = "rxbench-" + lib.removeSuffix ".patch" n;
    patch = ../kernels + "/${n}";
  }) patchFiles;
in
assert lib.assertMsg (lib.versionAtLeast base.version pins.kernel.min)
  "rxbench: ${pins.kernel.nix_attr} is ${base.version}, older than ${pins.kernel.min} (io_uring zcrx)";
base.override {
  structuredExtraConfig = (base.structuredExtraConfig or { }) // rxbenchConfig;
  kernelPatches = (base.kernelPatches or [ ]) ++ rxbenchPatches;
}
