# xdpsock from xdp-project/bpf-examples AF_XDP-example/ at the pinned rev
# (versions.json: bpf_examples), against nixpkgs' libbpf and libxdp (the
# pinned xdp-tools), not the repository's git submodules (empty in the
# fetched tree: its hash is of the tree without them).
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
  libbpf,
  xdp-tools,
  elfutils,
  zlib,
  pins,
}:

stdenv.mkDerivation {
  pname = "xdpsock";
  version = "0-unstable-${pins.bpf_examples.date}";
  src = fetchFromGitHub {
    inherit (pins.bpf_examples) owner repo rev hash;
  };

  nativeBuildInputs = [
    pkg-config
    llvmPackages.clang
    llvmPackages.llvm # llc
    m4
    bpftools # recent ./configure checks its toolchain for bpftool (seen in
    # generated config.mk files: BPFTOOL:=bpftool, SYSTEM_LIBXDP:=y)
  ];
  buildInputs = [
    libbpf
    xdp-tools
    xdp-tools.lib
    elfutils
    zlib
  ];

  hardeningDisable = [ "zerocallusedregs" "stackprotector" ];

  # bpf-examples' ./configure (not autoconf) picks the system libraries
  # when pkg-config finds them; the FORCE_* variables make it fail instead
  # of falling back to the (absent) submodules.
  env = {
    FORCE_SYSTEM_LIBBPF = "1";
    FORCE_SYSTEM_LIBXDP = "1";
    BPF_CFLAGS = "-fno-stack-protector -Wno-unused-command-line-argument";
  };

  configurePhase = ''
    runHook preConfigure
    patchShebangs configure
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
