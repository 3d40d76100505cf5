# rxbench's native tools (native/, its Makefile) and the BPF object, against
# nixpkgs' libbpf, libxdp (xdp-tools' `lib` output) and liburing (the pinned
# version: see flake.nix's overlay).
{
  lib,
  stdenv,
  pkg-config,
  llvmPackages,
  libbpf,
  xdp-tools,
  liburing,
  elfutils,
  zlib,
}:

stdenv.mkDerivation {
  pname = "rxbench-native";
  version = "0.1.0"; # workflow/rxbench/__init__.py __version__
  src = ../native;

  nativeBuildInputs = [
    pkg-config
    llvmPackages.clang # the BPF target (the Makefile's CLANG)
  ];
  buildInputs = [
    libbpf
    xdp-tools # headers (xdp/xsk.h, xdp/libxdp.h)
    xdp-tools.lib # libxdp.so and libxdp.pc
    liburing
    elfutils
    zlib
  ];

  # the cc-wrapper's hardening flags do not apply to `-target bpf` (as in
  # nixpkgs' xdp-tools); BPF_CFLAGS comes in through the environment so the
  # Makefile's `?=` keeps it and its `+=` still adds -target bpf -Werror.
  hardeningDisable = [ "zerocallusedregs" "stackprotector" ];
  env.BPF_CFLAGS = "-O2 -g -fno-stack-protector -Wno-unused-command-line-argument";

  makeFlags = [ "CLANG=clang" ];
  enableParallelBuilding = true;

  # tools and xdp_drop.bpf.o side by side in libexec/rxbench (what
  # RXBENCH_NATIVE points at), the tools also on PATH
  installPhase = ''
    runHook preInstall
    mkdir -p $out/libexec/rxbench $out/bin
    cp build/rxb-* build/*.bpf.o $out/libexec/rxbench/
    for t in $out/libexec/rxbench/rxb-*; do
      ln -s "$t" $out/bin/
    done
    runHook postInstall
  '';

  passthru.nativeDir = "libexec/rxbench";

  meta = {
    description = "rxbench native receivers, generators and the XDP_DROP program";
    platforms = lib.platforms.linux;
  };
}
