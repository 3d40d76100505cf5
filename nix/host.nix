# What every rxbench host runs, as a NixOS module shared by the vm guests
# (vm-image.nix), the Grid'5000 image (g5k-image.nix) and the flake's VM
# check: the zcrx kernel, the tools on PATH, sshd with a root login by key
# only, 2 MiB hugepages, and one fixed layout under /etc/rxbench:
#   /etc/rxbench/native    -> rxbench-native's libexec/rxbench (rxb-* tools
#                             and xdp_drop.bpf.o; RXBENCH_NATIVE points here)
#   /etc/rxbench/workflow  -> the rxbench Python package (wrappers such as
#                             `python3 -m rxbench.stacks.testpmd` run on the host
#                             where the tool runs; PYTHONPATH points here)
#   /etc/rxbench/image.json   role, platform, versions.yaml's sha256, the
#                             kernel, and the tools' store paths
# `rxbenchPkgs` (the flake's packages for this system) and `pins`
# (versions.json) come in through specialArgs.
{
  config,
  lib,
  pkgs,
  rxbenchPkgs,
  pins,
  ...
}:

let
  cfg = config.rxbench;
  tools = with rxbenchPkgs; [
    rxbench-native
    dpdk
    pktgen
    xdpsock
    xdp-tools
  ];
in
{
  options.rxbench = {
    role = lib.mkOption {
      type = lib.types.enum [
        "sender"
        "receiver"
        "any"
      ];
      default = "any";
      description = "Which side of the testbed this host is (recorded in /etc/rxbench/image.json; the software is the same).";
    };
    platform = lib.mkOption {
      type = lib.types.str;
      description = "The rxbench platform this system is built for (vm, g5k, nixos-test).";
    };
    hugepages = lib.mkOption {
      type = lib.types.ints.positive;
      default = pins.vm_image.hugepages_2m;
      description = "2 MiB hugepages reserved at boot (DPDK, Pktgen-DPDK).";
    };
  };

  config = {
    boot.kernelPackages = pkgs.linuxPackagesFor rxbenchPkgs.kernel;
    boot.kernelParams = [
      "hugepagesz=2M"
      "hugepages=${toString cfg.hugepages}"
      # DPDK on virtio/NICs without an IOMMU (CONFIG_VFIO_NOIOMMU=y in
      # kernels/rxbench.config); vfio is a module, the parameter reaches it
      "vfio.enable_unsafe_noiommu_mode=1"
    ];
    boot.kernelModules = [
      "vfio-pci"
      "uio_pci_generic"
    ];

    services.openssh = {
      enable = true;
      settings = {
        PermitRootLogin = "prohibit-password";
        PasswordAuthentication = false;
        KbdInteractiveAuthentication = false;
      };
    };

    # test traffic (198.18.0.0/15) must not be filtered on the test NIC
    networking.firewall.enable = false;

    environment.systemPackages =
      tools
      ++ (with pkgs; [
        python3 # the rxbench wrappers use the standard library only
        iperf3
        iproute2
        ethtool
        bpftools
        util-linux # taskset, setpriv
        procps
        netsniff-ng # trafgen
        pciutils
        tcpdump
      ]);

    environment.etc = {
      "rxbench/native".source = "${rxbenchPkgs.rxbench-native}/${rxbenchPkgs.rxbench-native.nativeDir}";
      "rxbench/workflow".source = ../workflow;
      "rxbench/image.json".text = builtins.toJSON {
        inherit (cfg) role platform;
        versions_file_sha256 = builtins.hashFile "sha256" ../versions.yaml;
        kernel = config.boot.kernelPackages.kernel.version;
        tools = lib.listToAttrs (map (p: lib.nameValuePair (lib.getName p) "${p}") tools);
      };
    };
    environment.variables = {
      RXBENCH_NATIVE = "/etc/rxbench/native";
      PYTHONPATH = "/etc/rxbench/workflow";
    };

    documentation.enable = lib.mkDefault false;
    system.stateVersion = lib.mkDefault "25.11";
  };
}
