# xdpsock from xdp-project/bpf-examples AF_XDP-example/ at the pinned rev
# (versions.json: bpf_examples), with the two git submodules the tree records
# fetched at their recorded commits and put in place (postUnpack): the tree's
# hash is of the tree without them, and its ./configure has no switch to a
# system libxdp at this rev (check_libxdp always builds lib/xdp-tools).
# FORCE_SUBMODULE_LIBBPF makes libbpf the submodule's too (lib/libbpf, and
# libxdp configured against it), so the binary does not depend on which
# libbpf the build machine has: the Debian path (workflow/scripts/
# build-tools.sh, `make tools`) builds the same bytes, and
# workflow/scripts/replay-recipes.py replays these phases on Debian.
# `xdpsock -M/-F` load xdpsock_kern.o from the working directory: it is
# installed in lib/bpf/; run xdpsock from there when using those modes.
{
  lib,
  stdenv,
  fetchFromGitHub,
  pkg-config,
  llvmPackages,
  m4,
  bpftools,
  elfutils,
  zlib,
  libcap,
  libmnl,
  pins,
}:

let
  fetchPin = pin: fetchFromGitHub { inherit (pin) owner repo rev hash; };
  subs = pins.bpf_examples.submodules;
  # lib/xdp-tools is the pinned xdp-tools (same commit, same hash), which
  # records its own lib/libbpf
  libbpfSrc = fetchPin subs."lib/libbpf";
  xdpToolsSrc = fetchPin pins.${subs."lib/xdp-tools".same_as};
  xdpToolsLibbpfSrc = fetchPin pins.xdp_tools.submodules."lib/libbpf";
in
stdenv.mkDerivation {
  pname = "xdpsock";
  version = "0-unstable-${pins.bpf_examples.date}";
  src = fetchPin pins.bpf_examples;

  # the submodules' directories are empty in the fetched tree; the copies
  # from the store are read-only, hence the chmod
  postUnpack = ''
    rmdir "$sourceRoot/lib/libbpf" "$sourceRoot/lib/xdp-tools"
    cp -r ${libbpfSrc} "$sourceRoot/lib/libbpf"
    cp -r ${xdpToolsSrc} "$sourceRoot/lib/xdp-tools"
    chmod -R u+w "$sourceRoot/lib/libbpf" "$sourceRoot/lib/xdp-tools"
    rmdir "$sourceRoot/lib/xdp-tools/lib/libbpf"
    cp -r ${xdpToolsLibbpfSrc} "$sourceRoot/lib/xdp-tools/lib/libbpf"
    chmod -R u+w "$sourceRoot/lib/xdp-tools/lib/libbpf"
  '';

  nativeBuildInputs = [
    pkg-config
    llvmPackages.clang
    llvmPackages.llvm # llc
    m4 # libxdp's BPF programs are generated with m4
    bpftools # ./configure's check_toolchain insists on bpftool
  ];
  # ./configure requires libcap and libmnl (`libcap support: missing - this
  # is required`); libbpf (submodule) needs libelf and zlib
  buildInputs = [
    elfutils
    zlib
    libcap
    libmnl
  ];

  hardeningDisable = [ "zerocallusedregs" "stackprotector" ];

  env = {
    FORCE_SUBMODULE_LIBBPF = "1";
    BPF_CFLAGS = "-fno-stack-protector -Wno-unused-command-line-argument";
  };

  configurePhase = ''
    runHook preConfigure
    patchShebangs configure lib/xdp-tools/configure
    ./configure
    runHook postConfigure
  '';

  buildPhase = ''
    runHook preBuild
    make -C AF_XDP-example
    runHook postBuild
  '';

  installPhase = ''
    runHook preInstall
    install -Dm755 AF_XDP-example/xdpsock $out/bin/xdpsock
    install -Dm644 AF_XDP-example/xdpsock_kern.o $out/lib/bpf/xdpsock_kern.o
    runHook postInstall
  '';

  meta = {
    description = "AF_XDP sample (xdpsock) from xdp-project/bpf-examples";
    homepage = "https://github.com/xdp-project/bpf-examples";
    license = lib.licenses.gpl2Only;
    platforms = lib.platforms.linux;
    mainProgram = "xdpsock";
  };
}
