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
# `nix build .#vm-images` puts both roles side by side (result/sender/,
# result/receiver/); `platforms.vm.nix_image: result` boots them
# (workflow/rxbench/platforms/vm/image.py: read_boot_json validates this file's
# output, lease_up boots it).
#
# Same layout the Debian image (vm/build-image.sh, vm/rxb-init) gives the
# platform:
# - NICs named by MAC, from the kernel command line the platform appends to
#   `append` (rxb.mgmt_mac, rxb.test_mac, rxb.mgmt_route, rxb.name), by the
#   rxbench-nics service below, as rxb-init does: mgmt0 = management, QEMU
#   user networking's 10.0.2.15/24 and a route to rxb.mgmt_route (the lease's
#   management /30) via 10.0.2.2 only: no DHCP, no default route; test0 = the
#   test NIC, left down and unaddressed (the platform sets its MTU, test_ip,
#   up and the static neighbours over SSH). The names come from
#   versions.yaml's vm_image; the platform renames the test NIC to test0 by
#   its MAC anyway.
# - root logs in by an SSH key the platform makes per lease and injects as
#   QEMU fw_cfg `-fw_cfg name=opt/rxbench/authorized_keys,file=KEY.pub`
#   (or, by hand, on the kernel command line `rxbench.authorized_key=<base64
#   of the line>`); no password works.
# - the native tools as the Debian image has them: native/'s sources in
#   /opt/rxbench/native, their build (rxbench-native) in build/, so the ssh
#   platform's deploy takes that build (prebuilt_native) instead of
#   compiling in the guest; the other tools on PATH, RXBENCH_NATIVE and
#   PYTHONPATH as in host.nix.
# - IPv6 off (the platform also passes ipv6.disable=1): no router or
#   neighbour solicitations on the test link.
# On x86_64 the disk also boots on its own (GRUB on /dev/vda) for a plain
# `-hda` run; on aarch64 only directly (-kernel/-initrd).
{
  config,
  lib,
  pkgs,
  modulesPath,
  pins,
  rxbenchPkgs,
  ...
}:

let
  system = config.system.build.toplevel;
  nativeTree = pkgs.runCommand "rxbench-native-tree" { } ''
    mkdir -p $out
    cp -r ${../native}/. $out/
    chmod -R u+w $out
    rm -rf $out/build
    ln -s ${rxbenchPkgs.rxbench-native}/${rxbenchPkgs.rxbench-native.nativeDir} $out/build
  '';
  mgmtIf = pins.vm_image.management_interface;
  testIf = pins.vm_image.test_interface;
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
          name = mgmtIf;
          use = "management";
          model = "virtio-net-pci";
          match = "rxb.mgmt_mac";
          dhcp = false;
        }
        {
          name = testIf;
          use = "test";
          model = "virtio-net-pci";
          match = "rxb.test_mac";
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

  # the NICs are named and the management one addressed by rxbench-nics (no
  # DHCP: slirp's would bring a default route)
  networking.usePredictableInterfaceNames = false;
  networking.useDHCP = false;
  networking.dhcpcd.enable = false;
  networking.enableIPv6 = false;
  networking.defaultGateway = null;

  # what vm/rxb-init does for the Debian image, from the same kernel arguments
  systemd.services.rxbench-nics = {
    description = "rxbench: name the NICs by MAC (${mgmtIf}, ${testIf}), address ${mgmtIf}";
    wantedBy = [ "multi-user.target" ];
    wants = [ "network-pre.target" ];
    before = [
      "network-pre.target"
      "sshd.service"
    ];
    after = [ "systemd-udevd.service" ];
    serviceConfig = {
      Type = "oneshot";
      RemainAfterExit = true;
    };
    path = [
      pkgs.coreutils
      pkgs.gnused
      pkgs.iproute2
    ];
    script = ''
      set -eu
      arg() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^$1=//p" | tail -1; }
      name=$(arg rxb.name); mgmt_mac=$(arg rxb.mgmt_mac); test_mac=$(arg rxb.test_mac)
      mgmt_route=$(arg rxb.mgmt_route)
      if [ -z "$mgmt_mac" ] || [ -z "$test_mac" ]; then
        echo "rxbench: rxb.mgmt_mac and rxb.test_mac are not on the kernel command line" >&2
        exit 1
      fi
      [ -n "$name" ] && echo "$name" > /proc/sys/kernel/hostname
      i=0
      while :; do
        n=0
        for d in /sys/class/net/*; do
          mac=$(cat "$d/address")
          if [ "$mac" = "$mgmt_mac" ] || [ "$mac" = "$test_mac" ]; then n=$((n + 1)); fi
        done
        [ $n -ge 2 ] && break
        i=$((i + 1))
        if [ $i -ge 600 ]; then
          echo "rxbench: NICs $mgmt_mac and $test_mac not both present after 60 s" >&2
          exit 1
        fi
        sleep 0.1
      done
      for d in /sys/class/net/*; do
        ifn=''${d##*/}; mac=$(cat "$d/address")
        if [ "$mac" = "$mgmt_mac" ] && [ "$ifn" != ${mgmtIf} ]; then
          ip link set "$ifn" down; ip link set "$ifn" name ${mgmtIf}
        elif [ "$mac" = "$test_mac" ] && [ "$ifn" != ${testIf} ]; then
          ip link set "$ifn" down; ip link set "$ifn" name ${testIf}
        fi
      done
      ip link set lo up
      ip addr replace 10.0.2.15/24 dev ${mgmtIf}
      ip link set ${mgmtIf} up
      # slirp shows a forwarded connection with the controller's address: a
      # route back to the lease's management /30 only, never a default one
      if [ -n "$mgmt_route" ]; then ip route replace "$mgmt_route" via 10.0.2.2 dev ${mgmtIf}; fi
      { ip -br addr; ip route; } > /dev/ttyS0 2>&1 || true
    '';
  };

  # the platform waits for this line on the serial console before it tries
  # SSH (vm/rxb-init writes the same once sshd runs)
  systemd.services.rxbench-ready = {
    description = "rxbench: tell the platform on the serial console that sshd runs";
    wantedBy = [ "multi-user.target" ];
    after = [
      "sshd.service"
      "rxbench-nics.service"
      "rxbench-ssh-key.service"
    ];
    wants = [ "sshd.service" ];
    serviceConfig.Type = "oneshot";
    path = [ pkgs.coreutils ];
    script = ''
      echo "rxb-init: ready $(cut -d' ' -f1 /proc/uptime)" > /dev/ttyS0
    '';
  };

  # the Debian image's layout (vm/build-image.sh): native/'s sources in
  # /opt/rxbench/native and their build in build/. The ssh platform's deploy
  # (workflow/rxbench/hosts/ssh.py, prebuilt_native) compares the checkout's
  # native/ sources with these and, when identical, takes build/ instead of
  # compiling in the guest (which has no compiler)
  systemd.tmpfiles.rules = [ "L+ /opt/rxbench/native - - - - ${nativeTree}" ];

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
