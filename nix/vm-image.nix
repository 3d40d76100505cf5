# The vm platform's guests as a NixOS system (imports host.nix), built into
# one directory the platform boots without asking anything else:
#
#   result/kernel       the kernel       (qemu -kernel)
#   result/initrd       the initrd       (qemu -initrd)
#   result/disk.qcow2   the root file system (ext4, label "nixos"; the
#                       platform boots a copy-on-write overlay of it)
#   result/boot.json    {"kernel", "initrd", "disk", "append", "role",
#                        "ssh_key": {...}, "nics": [...]} : the exact
#                       command-line pieces, so the platform builds its QEMU
#                       line from data, not from knowledge of NixOS
#   result/system       the NixOS toplevel (init=<system>/init)
#
# Same layout the Debian image gives the platform:
# - NIC 1 (eth0) = management: DHCP (QEMU user networking with a hostfwd to
#   port 22 answers it); NIC 2 (eth1) = the test NIC: left unconfigured
#   (no address, no route: the platform sets test_ip from its inventory).
#   Interface names are eth0/eth1 (predictable names off), in PCI order.
# - root logs in by an SSH key the platform injects, either as QEMU fw_cfg
#   `-fw_cfg name=opt/rxbench/authorized_keys,file=KEY.pub` (preferred) or
#   on the kernel command line `rxbench.authorized_key=<base64 of the line>`;
#   no password works.
# - the tools on PATH, RXBENCH_NATIVE and PYTHONPATH as in host.nix.
# On x86_64 the disk also boots on its own (GRUB on /dev/vda) for a plain
# `-hda` run; on aarch64 only directly (-kernel/-initrd).
{
  config,
  lib,
  pkgs,
  modulesPath,
  ...
}:

let
  system = config.system.build.toplevel;
  disk = import "${modulesPath}/../lib/make-disk-image.nix" {
    inherit pkgs lib config;
    format = "qcow2";
    partitionTableType = "legacy";
    diskSize = "auto";
    additionalSpace = "1G";
    copyChannel = false;
    # GRUB (BIOS) exists on x86 only; aarch64 guests boot directly
    installBootLoader = pkgs.stdenv.hostPlatform.isx86;
  };
  append = lib.concatStringsSep " " (
    [
      "root=LABEL=nixos"
      "init=${system}/init"
    ]
    ++ config.boot.kernelParams
  );
  bootJson = pkgs.writeText "boot.json" (
    builtins.toJSON {
      kernel = "kernel";
      initrd = "initrd";
      disk = "disk.qcow2";
      inherit append;
      inherit (config.rxbench) role;
      ssh_key = {
        fw_cfg = "opt/rxbench/authorized_keys";
        cmdline = "rxbench.authorized_key";
        user = "root";
      };
      nics = [
        {
          name = "eth0";
          use = "management";
          model = "virtio-net-pci";
          dhcp = true;
        }
        {
          name = "eth1";
          use = "test";
          model = "virtio-net-pci";
          dhcp = false;
        }
      ];
    }
  );
in
{
  imports = [
    ./host.nix
    "${modulesPath}/profiles/qemu-guest.nix"
  ];

  rxbench.platform = lib.mkDefault "vm";

  boot.loader.grub.enable = pkgs.stdenv.hostPlatform.isx86;
  boot.loader.grub.device = lib.mkIf pkgs.stdenv.hostPlatform.isx86 "/dev/vda";
  boot.growPartition = true;
  fileSystems."/" = {
    device = "/dev/disk/by-label/nixos";
    fsType = "ext4";
    autoResize = true;
  };
  boot.kernelParams = [ "console=ttyS0" ];
  boot.kernelModules = [ "qemu_fw_cfg" ];

  networking.usePredictableInterfaceNames = false;
  networking.useDHCP = false;
  networking.interfaces.eth0.useDHCP = true;
  networking.dhcpcd.denyInterfaces = [ "eth1" ];

  # root's key from QEMU's fw_cfg or the kernel command line, before sshd
  systemd.services.rxbench-ssh-key = {
    description = "rxbench: root's authorized_keys from fw_cfg or the kernel command line";
    wantedBy = [ "multi-user.target" ];
    before = [ "sshd.service" ];
    serviceConfig.Type = "oneshot";
    path = [ pkgs.coreutils pkgs.kmod ];
    script = ''
      set -eu
      modprobe qemu_fw_cfg 2>/dev/null || true
      fw=/sys/firmware/qemu_fw_cfg/by_name/opt/rxbench/authorized_keys/raw
      key=""
      if [ -r "$fw" ]; then
        key=$(cat "$fw")
      else
        for arg in $(cat /proc/cmdline); do
          case "$arg" in
            rxbench.authorized_key=*) key=$(echo "''${arg#*=}" | base64 -d) ;;
          esac
        done
      fi
      if [ -z "$key" ]; then
        echo "rxbench: no SSH key given (fw_cfg opt/rxbench/authorized_keys or rxbench.authorized_key=)" >&2
        exit 1
      fi
      install -d -m 700 /root/.ssh
      printf '%s\n' "$key" > /root/.ssh/authorized_keys
      chmod 600 /root/.ssh/authorized_keys
    '';
  };

  system.build.rxbenchVm = pkgs.runCommand "rxbench-vm-${config.rxbench.role}" { } ''
    mkdir -p $out
    ln -s ${system} $out/system
    ln -s ${config.boot.kernelPackages.kernel}/${config.system.boot.loader.kernelFile} $out/kernel
    ln -s ${config.system.build.initialRamdisk}/${config.system.boot.loader.initrdFile} $out/initrd
    ln -s ${disk}/nixos.qcow2 $out/disk.qcow2
    ln -s ${bootJson} $out/boot.json
  '';
}
