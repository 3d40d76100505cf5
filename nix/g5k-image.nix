# The Grid'5000 image: a kadeploy environment for bare-metal nodes (imports
# host.nix), built into one directory:
#
#   result/rxbench-g5k.tar.xz   the root file system (the system's closure,
#                               /boot/bzImage or /boot/Image, /boot/initrd,
#                               /boot/init)
#   result/rxbench-g5k.yaml     its kadeploy description (kaenv YAML). Its
#                               image.file is `rxbench-g5k.tar.xz` relative
#                               to the YAML; the g5k platform copies both to
#                               the site (e.g. ~/public/) and rewrites that
#                               one key to the copy's URL before
#                               `kadeploy3 -a rxbench-g5k.yaml -f $OAR_NODEFILE -k`
#
# kadeploy's `-k` installs the user's key as root's authorized_keys. The
# test NIC is whatever the reference API names (the platform picks it);
# nothing is configured on it here. Modelled on oar-team/nixos-compose's
# g5k-image flavour (read, not copied): kernel and initrd inside the image,
# `init=` pointing at the system's init, GRUB not used (kadeploy boots the
# kernel itself).
{
  config,
  lib,
  pkgs,
  modulesPath,
  ...
}:

let
  name = "rxbench-g5k";
  kernelFile = config.system.boot.loader.kernelFile;
  initrdFile = config.system.boot.loader.initrdFile;
  arch =
    {
      x86_64-linux = "x86_64";
      aarch64-linux = "aarch64";
    }
    .${pkgs.stdenv.hostPlatform.system};

  # checked against nixos/lib/make-system-tarball.nix (flake.nix's header):
  # contents = [{source; target}], storeContents = [{object; symlink}];
  # callPackage supplies its stdenv/closure helpers
  tarball = pkgs.callPackage "${modulesPath}/../lib/make-system-tarball.nix" {
    fileName = name;
    contents = [
      {
        source = "${config.boot.kernelPackages.kernel}/${kernelFile}";
        target = "/boot/${kernelFile}";
      }
      {
        source = "${config.system.build.initialRamdisk}/${initrdFile}";
        target = "/boot/${initrdFile}";
      }
      {
        source = "${config.system.build.toplevel}/init";
        target = "/boot/init";
      }
    ];
    storeContents = [
      {
        object = config.system.build.toplevel;
        symlink = "/run/current-system";
      }
    ];
    extraCommands = "mkdir -p etc/ssh root tmp var/log";
  };

  kaenv = pkgs.writeText "${name}.yaml" ''
    # kadeploy environment for rxbench (nix/g5k-image.nix); deploy with
    #   kadeploy3 -a ${name}.yaml -f $OAR_NODEFILE -k
    name: ${name}
    version: 1
    description: rxbench NixOS (kernel ${config.boot.kernelPackages.kernel.version}, versions.yaml sha256 ${builtins.hashFile "sha256" ../versions.yaml})
    author: rxbench
    visibility: private
    destructive: false
    os: linux
    arch: ${arch}
    image:
      file: ${name}.tar.xz
      kind: tar
      compression: xz
    boot:
      kernel: /boot/${kernelFile}
      initrd: /boot/${initrdFile}
      kernel_params: init=/boot/init console=tty0 console=ttyS0,115200 ${lib.concatStringsSep " " config.boot.kernelParams}
    filesystem: ext4
    partition_type: 131
    multipart: false
  '';
in
{
  imports = [
    ./host.nix
    "${modulesPath}/profiles/all-hardware.nix"
  ];

  rxbench.platform = lib.mkDefault "g5k";

  boot.loader.grub.enable = false;
  fileSystems."/" = {
    # kadeploy writes the tarball onto the deployment partition and passes
    # it as root=; stage 1 mounts /dev/root
    device = "/dev/root";
    fsType = "ext4";
  };
  # register the tarball's store in the Nix database on first boot
  boot.postBootCommands = ''
    if [ -f /nix-path-registration ]; then
      ${config.nix.package.out}/bin/nix-store --load-db < /nix-path-registration && rm /nix-path-registration
    fi
    touch /etc/NIXOS
    ${config.nix.package.out}/bin/nix-env -p /nix/var/nix/profiles/system --set /run/current-system
  '';
  networking.useDHCP = lib.mkDefault true;

  system.build.rxbenchG5k = pkgs.runCommand name { } ''
    mkdir -p $out
    ln -s ${tarball}/tarball/${name}.tar.xz $out/${name}.tar.xz
    ln -s ${kaenv} $out/${name}.yaml
  '';
}
