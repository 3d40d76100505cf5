# rxbench: the Nix flake. WRITTEN AND PARSED, NOT BUILT BY NIX: the machines
# it was written on reach neither nixpkgs nor a binary cache, so nothing here
# has been evaluated against nixpkgs or built by Nix (docs/nix.md).
# What can be checked without nixpkgs is: workflow/scripts/replay-recipes.py
# replays our own recipes' phases (nix/xdpsock.nix, nix/rxbench-native.nix),
# nixpkgs' pktgen recipe that nix/pktgen.nix overrides, and the kernel
# configuration (kernels/rxbench.config, olddefconfig) on Debian, from the
# pinned sources checked against versions.yaml's hashes. Not replayed: Nix's
# stdenv, nixpkgs' DPDK, xdp-tools and liburing recipes, the kernel compile.
# Needs Nix >= versions.yaml's nix.min (2.18): older Nix stops at once with
# one line saying so.
#
# Every pin comes from versions.json, generated from versions.yaml (the one
# file of pins; tests/test_versions.py fails when they, flake.lock or the
# files below disagree).
#
# nixpkgs: rev 00c21e4c93d963c50d4c0c89bfa84ed6e0694df2 (nixos-unstable,
# 2026-02-04), narHash sha256-AYqlWrX09+HvGs8zM6ebZ1pwUqjkfpnv8mewYwAo+iM=,
# lastModified 1770197578. Read in two public files that pin the same rev:
# a NixOS configuration's flake.lock (its root input `nixpkgs` -> node
# `nixpkgs_2`, original github:nixos/nixpkgs ref nixos-unstable; beside
# inputs niri, noctalia, nix-cachyos, home-manager), and a NixOS wiki page on
# `nix develop` whose example output records
# 'github:NixOS/nixpkgs/00c21e4c...?narHash=sha256-AYqlWrX09%2BHvGs8zM6ebZ1pwUqjkfpnv8mewYwAo%2BiM%3D' (2026-02-04).
# Both were found with the code search (find_string of the rev); the two
# agree. Why this rev: after 6.18 (LTS, >= 6.15 for io_uring zcrx) entered
# nixpkgs, before any of our other pins' nixpkgs versions moved past them.
#
# nixpkgs files each override was checked against (read at their public
# source; the copies available were at the commits named, NOT at the pinned
# rev: names and arguments were checked, line-by-line equality at the pin
# was not):
#   nix/dpdk.nix        pkgs/by-name/dp/dpdk/package.nix @ 0145c6da (26.03):
#                       withExamples ? [ ], shared ? false, machine ? nehalem
#                       (x86-64) / generic (aarch64), finalAttrs, outputs
#                       out/doc(/examples), no patches
#   nix/pktgen.nix      pkgs/by-name/pk/pktgen/package.nix @ 005ab72f
#                       (24.10.3, same src hash as versions.yaml): `dpdk`
#                       argument, lua5_3 in buildInputs, no -Denable_lua
#   xdp-tools overlay,  pkgs/by-name/xd/xdp-tools/package.nix @ 09023cb3
#   nix/xdpsock.nix,    (1.5.6, hash equal to versions.yaml's): outputs out
#   rxbench-native.nix  and lib (libxdp), hardeningDisable zerocallusedregs
#   liburing overlay    pkgs/by-name/li/liburing/package.nix @ 16ed6750
#                       (2.8 there, a generic recipe: src/version override)
#   nix/python.nix      pkgs/by-name/sn/snakemake/package.nix @ 0ae26192
#                       (buildPythonApplication: hence toPythonModule);
#                       MLRsearch and python-grid5000 have no
#                       pkgs/development/python-modules entry
#   nix/kernel.nix      pkgs/os-specific/linux/kernel/generic.nix @ 00e6b22b
#                       (structuredExtraConfig, kernelPatches,
#                       ignoreConfigErrors); nixos/modules/system/boot/
#                       kernel_config.nix @ 014d8827 (tristate is an enum:
#                       hence mkForce); kernels-org.json @ 001fc17c (6.18.5
#                       present, 6.17 gone); pkgs/top-level/linux-kernels.nix
#                       @ 0000f23a (an old copy: the .override pattern)
#   nix/vm-image.nix    nixos/lib/make-disk-image.nix @ 025640dc (config,
#                       format "qcow2", partitionTableType, diskSize,
#                       additionalSpace, copyChannel, installBootLoader;
#                       result $out/nixos.qcow2)
#   nix/g5k-image.nix   nixos/lib/make-system-tarball.nix @ 0fa6fd22
#                       (contents, storeContents, extraCommands, fileName;
#                       result $out/tarball/<fileName>.tar.xz)
#   nix/vm-test.nix     pkgs/build-support/testers/default.nix (runNixOSTest
#                       = nixos/lib runTest with hostPkgs and a read-only
#                       node.pkgs; commit not shown by the search);
#                       nixos/lib/testing/nodes.nix, network.nix @ 003d5816
{
  description = "rxbench: reproducible benchmarks of Linux packet reception (AF_XDP, DPDK, AF_PACKET, XDP_DROP; TCP with blocking, epoll, io_uring, io_uring zcrx)";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/00c21e4c93d963c50d4c0c89bfa84ed6e0694df2";

  outputs =
    { self, nixpkgs }:
    let
      pins = builtins.fromJSON (builtins.readFile ./versions.json);
      # nixpkgs at the pinned rev refuses older Nix (its lib/minfeatures.nix)
      # with a message about missing builtins; say it first, in one line
      nixOk =
        builtins.compareVersions builtins.nixVersion pins.nix.min >= 0
        || throw "rxbench: this flake needs Nix >= ${pins.nix.min} (nixpkgs at the pinned rev requires it); this is Nix ${builtins.nixVersion}";
      inherit (nixpkgs) lib;

      # Grid'5000's only zcrx-capable cluster (hydra) is aarch64
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f system nixpkgs.legacyPackages.${system});

      # the checkout as the pipeline sees it (results/ included: the paper
      # and the checks read the committed reference results)
      src = lib.cleanSource ./.;

      fetchPinned =
        pkgs: pin:
        pkgs.fetchFromGitHub {
          inherit (pin)
            owner
            repo
            rev
            hash
            ;
        };

      packagesFor =
        system: pkgs:
        let
          # the pinned xdp-tools (libxdp) and liburing replace nixpkgs' for
          # everything built here
          xdp-tools = pkgs.xdp-tools.overrideAttrs (_: {
            version = pins.xdp_tools.version;
            src = fetchPinned pkgs pins.xdp_tools;
          });
          liburing = pkgs.liburing.overrideAttrs (_: {
            version = pins.liburing.version;
            src = fetchPinned pkgs pins.liburing;
            patches = [ ];
          });
          call = lib.callPackageWith (
            pkgs
            // {
              inherit pins xdp-tools liburing;
            }
          );
          dpdk = call ./nix/dpdk.nix { };
          python-env = call ./nix/python.nix { };
          image =
            module: role:
            (nixosFor system module role).config.system.build;
        in
        {
          inherit xdp-tools liburing dpdk python-env;
          rxbench-native = call ./nix/rxbench-native.nix { };
          pktgen = call ./nix/pktgen.nix { inherit dpdk; };
          xdpsock = call ./nix/xdpsock.nix { };
          kernel = call ./nix/kernel.nix { };
          paper = call ./nix/paper.nix {
            pythonEnv = python-env;
            inherit src;
          };
          vm-sender = (image ./nix/vm-image.nix "sender").rxbenchVm;
          vm-receiver = (image ./nix/vm-image.nix "receiver").rxbenchVm;
          # both guests in one directory: result/sender/boot.json and
          # result/receiver/boot.json (what `platforms.vm.nix_image` points at)
          vm-images = pkgs.linkFarm "rxbench-vm-images" [
            {
              name = "sender";
              path = self.packages.${system}.vm-sender;
            }
            {
              name = "receiver";
              path = self.packages.${system}.vm-receiver;
            }
          ];
          g5k-image = (image ./nix/g5k-image.nix "any").rxbenchG5k;
          default = self.packages.${system}.rxbench-native;
        };

      nixosFor =
        system: module: role:
        lib.nixosSystem {
          specialArgs = {
            rxbenchPkgs = self.packages.${system};
            inherit pins;
          };
          modules = [
            module
            {
              nixpkgs.hostPlatform = system;
              rxbench.role = role;
            }
          ];
        };
    in
    assert nixOk;
    {
      packages = forAllSystems packagesFor;

      nixosConfigurations = {
        vm-sender = nixosFor "x86_64-linux" ./nix/vm-image.nix "sender";
        vm-receiver = nixosFor "x86_64-linux" ./nix/vm-image.nix "receiver";
        g5k-x86_64 = nixosFor "x86_64-linux" ./nix/g5k-image.nix "any";
        g5k-aarch64 = nixosFor "aarch64-linux" ./nix/g5k-image.nix "any";
      };

      devShells = forAllSystems (
        system: pkgs:
        let
          p = self.packages.${system};
        in
        {
          default = pkgs.mkShell {
            packages = [
              p.python-env
              p.dpdk
              p.pktgen
              p.xdpsock
              p.xdp-tools
              p.xdp-tools.lib
              p.liburing
              p.paper.tex
            ]
            ++ (with pkgs; [
              # native/ (make -C native)
              gcc
              gnumake
              pkg-config
              llvmPackages.clang
              llvmPackages.llvm
              libbpf
              elfutils
              zlib
              # the local testbed and the other generators
              iproute2
              ethtool
              bpftools
              util-linux
              procps
              netsniff-ng
              iperf3
              # the ssh and vm platforms
              openssh
              qemu
              poppler-utils
            ]);
            # the BPF target refuses the cc-wrapper's hardening flags
            hardeningDisable = [
              "zerocallusedregs"
              "stackprotector"
            ];
            shellHook = ''
              export PYTHONPATH="$PWD/workflow''${PYTHONPATH:+:$PYTHONPATH}"
              echo "rxbench: make -C native, then snakemake --cores 1 (docs/nix.md)"
            '';
          };
        }
      );

      # `nix run .#campaign -- [snakemake args]` from the checkout: the
      # default campaign with the flake's tools on PATH and its native build
      apps = forAllSystems (
        system: pkgs:
        let
          p = self.packages.${system};
          campaign = pkgs.writeShellScript "rxbench-campaign" ''
            set -eu
            [ -f Snakefile ] || { echo "rxbench: run this from the rxbench checkout" >&2; exit 2; }
            export PATH=${
              lib.makeBinPath [
                p.python-env
                p.dpdk
                p.pktgen
                p.xdpsock
                p.xdp-tools
                p.rxbench-native
                pkgs.iproute2
                pkgs.ethtool
                pkgs.util-linux
                pkgs.procps
                pkgs.netsniff-ng
                pkgs.iperf3
                pkgs.coreutils
              ]
            }:$PATH
            export RXBENCH_NATIVE="''${RXBENCH_NATIVE:-${p.rxbench-native}/${p.rxbench-native.nativeDir}}"
            export PYTHONPATH="$PWD/workflow"
            exec snakemake --cores 1 "$@"
          '';
          paper = pkgs.writeShellScript "rxbench-paper" ''
            echo ${p.paper}/paper.pdf
          '';
        in
        {
          campaign = {
            type = "app";
            program = "${campaign}";
          };
          paper = {
            type = "app";
            program = "${paper}";
          };
        }
      );

      checks = forAllSystems (
        system: pkgs:
        let
          p = self.packages.${system};
        in
        {
          native = p.rxbench-native;
          # the unit tests, unprivileged in the build sandbox: tests that
          # need root or a testbed skip themselves with the reason
          unit = pkgs.runCommand "rxbench-unit-tests" { nativeBuildInputs = [ p.python-env ]; } ''
            cp -r ${src} checkout && chmod -R u+w checkout && cd checkout
            export HOME=$TMPDIR MPLCONFIGDIR=$TMPDIR/mpl
            export RXBENCH_NATIVE=${p.rxbench-native}/${p.rxbench-native.nativeDir}
            pytest -q -p no:cacheprovider tests
            touch $out
          '';
          vm-smoke = import ./nix/vm-test.nix {
            inherit pkgs lib pins src;
            rxbenchPkgs = p;
          };
        }
      );
    };
}
