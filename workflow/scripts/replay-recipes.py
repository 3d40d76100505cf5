#!/usr/bin/env python3
"""Replay the flake's own recipes on this Debian machine, from the pinned sources.

    replay-recipes.py [xdpsock] [rxbench-native] [pktgen] [kernel] [--work DIR] [--keep]

Each replay builds what the Nix derivation builds, with the recipe's own
phases and flags, so a recipe that cannot build is found here rather than
on a user's first `nix develop`:

  xdpsock, rxbench-native  nix/xdpsock.nix, nix/rxbench-native.nix are
      evaluated by nix-instantiate with stub inputs (no nixpkgs needed): the
      phases (postUnpack, configurePhase, buildPhase, installPhase), env,
      makeFlags and the inputs come out of the recipe itself. Sources are the
      pinned trees (workflow/scripts/sources.py: RXB_SOURCES or GitHub,
      checked against versions.yaml's NAR hashes); every Nix input must map
      to an installed Debian package (INPUTS below) or the replay stops.
  pktgen  nix/pktgen.nix is nixpkgs' pktgen recipe (pkgs/by-name/pk/pktgen/
      package.nix) with src/version/dpdk overridden: its meson build, env and
      postPatch (PKTGEN_RECIPE below, read from that file) are replayed in a
      Debian trixie root (debootstrap), against trixie's DPDK 24.11.
  kernel  kernels/rxbench.config merged into x86_64_defconfig of the pinned
      series' tree (RXB_KERNEL_SRC=DIR, or linux-source-<series> from the
      registry when Debian serves it), `make olddefconfig` in the trixie root
      (its pahole is new enough for DEBUG_INFO_BTF), then every option
      of the fragment must end as asked (the check nixpkgs' generate-config
      makes with ignoreConfigErrors = false).

Not replayed (said in the output): Nix's stdenv and cc-wrapper (Debian's
gcc/clang stand in; hardening flags differ), nixpkgs' DPDK recipe (Debian's
24.11 build stands in for nix/dpdk.nix's 24.11.1), nixpkgs' xdp-tools and
liburing recipes (rxbench-native builds against Debian's libxdp/liburing),
and nixpkgs' kernel build itself (only its configuration is replayed).
A replay whose source or tool is absent prints `skip: <reason>` and counts
as skipped, not passed. Exit status: 1 if any replay failed, else 0.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sources  # noqa: E402

ROOT = sources.ROOT

# Nix input (as the recipe names it) -> the Debian packages that stand in
INPUTS = {
    "pkg-config": ["pkg-config"],
    "llvmPackages.clang": ["clang"],
    "llvmPackages.llvm": ["llvm"],
    "m4": ["m4"],
    "bpftools": ["bpftool"],
    "libbpf": ["libbpf-dev"],
    "xdp-tools": ["libxdp-dev"],
    "xdp-tools.lib": ["libxdp-dev"],
    "elfutils": ["libelf-dev"],
    "zlib": ["zlib1g-dev"],
    "libcap": ["libcap-dev"],
    "libmnl": ["libmnl-dev"],
    "liburing": ["liburing-dev"],
    # stdenv itself
    "stdenv": ["gcc", "make"],
}

# nixpkgs' pktgen recipe (pkgs/by-name/pk/pktgen/package.nix, the file
# nix/pktgen.nix overrides; read at nixpkgs 005ab72f), as the Debian
# packages that stand in for its inputs and its phases
PKTGEN_RECIPE = {
    "debian": ["gcc", "pkg-config", "meson", "ninja-build", "dpdk-dev", "libbsd-dev", "libpcap-dev",
               "liblua5.3-dev", "libnuma-dev", "debianutils", "util-linux", "libelf-dev",
               "libbpf-dev", "libxdp-dev"],
    # env of the recipe: NIX_CFLAGS_COMPILE, NIX_LDFLAGS (the cc-wrapper
    # adds them to every compile/link: CFLAGS/LDFLAGS here)
    "cflags": "-Wno-error=sign-compare",
    "ldflags": "-lrte_net_bond",
    # postPatch: substituteInPlace lib/common/lscpu.h --replace /usr/bin/lscpu
    # ${util-linux}/bin/lscpu: on Debian util-linux's lscpu IS /usr/bin/lscpu,
    # so the replay checks the path the recipe rewrites is still there
    "post_patch": "grep -q /usr/bin/lscpu lib/common/lscpu.h",
    # nixpkgs' meson setup hook: mesonFlags defaults
    "meson": "meson setup build --prefix=$out --libdir=lib --buildtype=plain --wrap-mode=nodownload",
    # postInstall
    "post_install": "rm -rf $out/include $out/lib",
}

STUBS = r"""
let
  pins = builtins.fromJSON (builtins.readFile ./versions.json);
  pkg = name: { __pkg = name; outPath = "@pkg:${name}@"; lib = pkg (name + ".lib"); };
  special = {
    inherit pins;
    lib = { };
    stdenv = { mkDerivation = a: a; hostPlatform.system = "x86_64-linux"; };
    fetchFromGitHub = a: {
      __fetch = { inherit (a) owner repo rev hash; };
      outPath = "@fetch:${a.owner}/${a.repo}/${a.rev}#${a.hash}@";
    };
    llvmPackages = { clang = pkg "llvmPackages.clang"; llvm = pkg "llvmPackages.llvm"; };
  };
  f = import ./RECIPE;
  d = f (builtins.mapAttrs (n: _: special.${n} or (pkg n)) (builtins.functionArgs f));
  names = l: map (p: p.__pkg) l;
  strs = builtins.removeAttrs d [ "src" "meta" "nativeBuildInputs" "buildInputs" "env" "passthru"
    "hardeningDisable" "makeFlags" ];
in {
  src = if builtins.isPath d.src then { path = toString d.src; } else d.src.__fetch;
  attrs = builtins.mapAttrs (n: v: if builtins.isBool v then (if v then "1" else "") else toString v)
    (builtins.removeAttrs strs (builtins.filter (n: builtins.isFunction strs.${n}) (builtins.attrNames strs)));
  env = d.env or { };
  makeFlags = d.makeFlags or [ ];
  hardeningDisable = d.hardeningDisable or [ ];
  nativeBuildInputs = names (d.nativeBuildInputs or [ ]);
  buildInputs = names (d.buildInputs or [ ]);
}
"""

_FETCH = re.compile(r"@fetch:([^/@]+)/([^/@]+)/([^#@]+)#([^@]+)@")

# what stdenv does for a phase the recipe does not set (only what these
# recipes rely on: a recipe whose build needs more fails here, visibly)
DEFAULT_PHASES = {
    "configurePhase": 'runHook preConfigure; if [ -x ./configure ]; then ./configure --prefix="$out"; fi; '
                      'runHook postConfigure',
    "buildPhase": 'runHook preBuild; make ${enableParallelBuilding:+-j$NIX_BUILD_CORES} $makeFlags; '
                  'runHook postBuild',
    "installPhase": 'runHook preInstall; make install $makeFlags; runHook postInstall',
}

PRELUDE = r"""
set -eu
runHook() { local h="$1"; if [ -n "${!h:-}" ]; then eval "${!h}"; fi; return 0; }
# Debian has /bin/sh and /usr/bin/env where the scripts' shebangs point:
# nothing to rewrite (Nix rewrites them to store paths)
patchShebangs() { :; }
"""


class Skip(Exception):
    pass


class Failed(Exception):
    pass


def log(msg: str) -> None:
    print(msg, flush=True)


def missing_debian(pkgs: list[str], root: Path | None = None) -> list[str]:
    cmd = ["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n", *pkgs]
    if root:
        cmd[1:1] = ["--admindir", str(root / "var/lib/dpkg")]
    p = subprocess.run(cmd, capture_output=True, text=True)
    have = {ln.split()[0].split(":")[0] for ln in p.stdout.splitlines() if ln.endswith(" installed")}
    return [x for x in pkgs if x not in have]


def eval_recipe(recipe: str) -> dict:
    nix = shutil.which("nix-instantiate")
    if nix is None:
        raise Skip("nix-instantiate is not installed (Debian: nix-bin), the recipe cannot be read")
    expr = STUBS.replace("./RECIPE", f"./{recipe}")
    p = subprocess.run([nix, "--eval", "--strict", "--json", "-E", expr], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    if p.returncode:
        raise Failed(f"{recipe} does not evaluate with stub inputs: {p.stderr.strip().splitlines()[-1:]}")
    return json.loads(p.stdout)


def pin_for(owner: str, repo: str, rev: str, table: dict) -> str:
    for name, pin in table.items():
        if (pin["owner"], pin["repo"], pin["rev"]) == (owner, repo, rev):
            return name
    raise Failed(f"the recipe fetches {owner}/{repo} {rev}, which versions.yaml does not pin")


def fetch_checked(owner, repo, rev, hash_, table, dest: Path) -> dict:
    name = pin_for(owner, repo, rev, table)
    if table[name]["hash"] != hash_:
        raise Failed(f"the recipe pins {name} at {hash_}, versions.yaml at {table[name]['hash']}")
    try:
        return sources.fetch(name, dest, table)
    except sources.SourceError as e:
        raise Skip(f"source {name}: {e}") from None


def replay_derivation(recipe: str, work: Path) -> dict:
    """A stdenv.mkDerivation recipe of ours, its phases run on Debian."""
    d = eval_recipe(recipe)
    inputs = ["stdenv", *d["nativeBuildInputs"], *d["buildInputs"]]
    unknown = [i for i in inputs if i not in INPUTS]
    if unknown:
        raise Failed(f"no Debian stand-in known for Nix input(s) {unknown} (replay-recipes.py INPUTS)")
    debs = sorted({p for i in inputs for p in INPUTS[i]})
    missing = missing_debian(debs)
    if missing:
        raise Failed(f"the recipe's inputs need Debian packages that are not installed: {missing}")
    table = sources.pins()
    records = []
    if "path" in d["src"]:
        shutil.copytree(d["src"]["path"], work / "source", symlinks=True)
        shutil.rmtree(work / "source" / "build", ignore_errors=True)
    else:
        s = d["src"]
        records.append(fetch_checked(s["owner"], s["repo"], s["rev"], s["hash"], table, work / "source"))
    attrs = dict(d["attrs"])
    fetched: dict[str, str] = {}
    for key, value in attrs.items():
        for m in _FETCH.finditer(value):
            if m.group(0) not in fetched:
                dest = work / "store" / f"{len(fetched)}-{m.group(2)}"
                records.append(fetch_checked(*m.groups(), table, dest))
                fetched[m.group(0)] = str(dest)
    for key in attrs:
        for ph, path in fetched.items():
            attrs[key] = attrs[key].replace(ph, path)
    leftover = [k for k, v in attrs.items() if "@pkg:" in v or "@fetch:" in v]
    if leftover:
        raise Failed(f"{recipe}: {leftover} refer to store paths the replay cannot stand in for")
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "TERM")}
    env.update(attrs)
    env.update({k: str(v) for k, v in d["env"].items()})
    env.update(out=str(work / "out"), sourceRoot="source", NIX_BUILD_CORES=str(os.cpu_count() or 1),
               HOME=str(work / "homeless-shelter"), TMPDIR=str(work / "tmp"),
               makeFlags=" ".join(d["makeFlags"]))
    (work / "tmp").mkdir()
    script = PRELUDE + 'cd "$RXB_WORK"\n' + 'runHook postUnpack\ncd "$sourceRoot"\n' + "".join(
        f'echo "== {ph}"\n' + (f'eval "${ph}"\n' if ph in attrs else DEFAULT_PHASES[ph] + "\n")
        for ph in ("configurePhase", "buildPhase", "installPhase"))
    env["RXB_WORK"] = str(work)
    with open(work / "build.log", "w") as f:
        p = subprocess.run(["bash", "-c", script], env=env, stdout=f, stderr=subprocess.STDOUT)
    if p.returncode:
        tail = (work / "build.log").read_text().splitlines()[-8:]
        raise Failed(f"{recipe}: build failed (exit {p.returncode}), {work / 'build.log'}: " + " | ".join(tail))
    built = sorted(str(x.relative_to(work / "out")) for x in (work / "out").rglob("*") if x.is_file())
    return {"built": built, "sources": records, "debian": debs,
            "phases": [ph for ph in ("postUnpack", "configurePhase", "buildPhase", "installPhase")
                       if ph in attrs] }


# --- Pktgen-DPDK in a trixie root ---------------------------------------------

def trixie_root(work: Path, mirror: str) -> Path:
    root = Path(os.environ.get("RXB_TRIXIE_ROOT") or work / "trixie-root")
    if not (root / "usr/bin/apt-get").exists():
        if shutil.which("debootstrap") is None:
            raise Skip("debootstrap is not installed")
        log(f"== debootstrap trixie into {root}")
        p = subprocess.run(["debootstrap", "--variant=minbase", "trixie", str(root), mirror],
                           capture_output=True, text=True)
        if p.returncode:
            raise Skip(f"debootstrap trixie failed (no registry?): {p.stderr.strip()[-200:]}")
    return root


def mount_root(root: Path, mounts: list) -> None:
    for m, args in (("proc", ["-t", "proc", "proc"]), ("dev", ["--bind", "/dev"])):
        subprocess.run(["mount", *args, str(root / m)], check=True)
        mounts.append(root / m)


def unmount(mounts: list) -> None:
    while mounts:
        subprocess.run(["umount", "-l", str(mounts.pop())])


def in_root(root: Path, cmd: str, logf) -> int:
    return subprocess.run(["chroot", str(root), "env", "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C",
                           "bash", "-c", cmd], stdout=logf, stderr=subprocess.STDOUT).returncode


def replay_pktgen(work: Path, mirror: str) -> dict:
    table = sources.pins()
    root = trixie_root(work, mirror)
    build = root / "build" / "pktgen"
    if build.exists():
        shutil.rmtree(build)
    try:
        rec = sources.fetch("pktgen_dpdk", build / "source", table)
    except sources.SourceError as e:
        raise Skip(f"source pktgen_dpdk: {e}") from None
    R = PKTGEN_RECIPE
    mounts = []
    with open(work / "build.log", "w") as logf:
        mount_root(root, mounts)
        try:
            missing = missing_debian(R["debian"], root)
            if missing and in_root(root, "apt-get update -qq && apt-get install -y -qq "
                                   "--no-install-recommends " + " ".join(missing), logf):
                raise Failed(f"pktgen: cannot install {missing} in the trixie root")
            script = (f"set -eu; export out=/build/pktgen/out CFLAGS='{R['cflags']}' "
                      f"LDFLAGS='{R['ldflags']}'; cd /build/pktgen/source; "
                      "dpkg-query -W -f 'dpdk-dev ${Version}\\n' dpdk-dev; "
                      f"{R['post_patch']}; {R['meson']}; ninja -C build -j{os.cpu_count() or 1}; "
                      f"ninja -C build install; {R['post_install']}")
            if in_root(root, script, logf):
                tail = (work / "build.log").read_text().splitlines()[-8:]
                raise Failed(f"pktgen: build failed, {work / 'build.log'}: " + " | ".join(tail))
        finally:
            unmount(mounts)
    dpdk = re.search(r"^dpdk-dev (\S+)", (work / "build.log").read_text(), re.M)
    out = build / "out"
    built = sorted(str(x.relative_to(out)) for x in out.rglob("*") if x.is_file())
    return {"built": built, "sources": [rec], "dpdk": dpdk.group(1) if dpdk else None,
            "root": str(root)}


# --- the kernel configuration -------------------------------------------------

def fragment(path: Path) -> dict[str, str]:
    """kernels/rxbench.config's CONFIG_X=y|m|n lines (nix/kernel.nix reads the same)."""
    out = {}
    for line in path.read_text().splitlines():
        m = re.fullmatch(r"CONFIG_([A-Za-z0-9_]+)=([ymn])\s*", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def config_values(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        m = re.fullmatch(r"CONFIG_([A-Za-z0-9_]+)=(.*)", line)
        if m:
            out[m.group(1)] = m.group(2)
        m = re.fullmatch(r"# CONFIG_([A-Za-z0-9_]+) is not set", line)
        if m:
            out[m.group(1)] = "n"
    return out


def replay_kernel(work: Path, mirror: str) -> dict:
    import yaml
    kpin = yaml.safe_load((ROOT / "versions.yaml").read_text())["kernel"]
    src = os.environ.get("RXB_KERNEL_SRC")
    if not src:
        deb = Path(f"/usr/src/linux-source-{kpin['series']}.tar.xz")
        if not deb.exists():
            raise Skip(f"no {kpin['series']} kernel tree: set RXB_KERNEL_SRC=DIR (an unpacked "
                       f"linux-{kpin['series']}.x tree) or install linux-source-{kpin['series']}")
        subprocess.run(["tar", "xf", str(deb), "-C", str(work)], check=True)
        src = str(next(work.glob("linux-source-*")))
    src = Path(src)
    mk = (src / "Makefile").read_text()
    ver = ".".join(re.search(rf"^{k} = (\d+)", mk, re.M).group(1) for k in ("VERSION", "PATCHLEVEL", "SUBLEVEL"))
    if not ver.startswith(kpin["series"] + "."):
        raise Failed(f"RXB_KERNEL_SRC is {ver}, versions.yaml pins the {kpin['series']} series")
    want = fragment(ROOT / kpin["config"])
    # Kconfig asks the toolchain: DEBUG_INFO_BTF with the toolchain's default
    # DWARF needs pahole >= 1.21 (nixpkgs' is newer); bookworm's is 1.24, so
    # the configuration is made in the trixie root (gcc 14, a newer pahole),
    # the toolchain generation nixpkgs has
    root = trixie_root(work, mirror)
    kdeps = ["make", "gcc", "flex", "bison", "bc", "dwarves", "libelf-dev", "libssl-dev"]
    mounts = []
    with open(work / "build.log", "w") as logf:
        missing = missing_debian(kdeps, root)
        if missing:
            mount_root(root, mounts)
            try:
                if in_root(root, "apt-get update -qq && apt-get install -y -qq --no-install-recommends "
                           + " ".join(missing), logf):
                    raise Failed(f"kernel: cannot install {missing} in the trixie root")
            finally:
                unmount(mounts)
        (root / "build" / "linux").mkdir(parents=True, exist_ok=True)
        shutil.rmtree(root / "build" / "kbuild", ignore_errors=True)
        (root / "build" / "kbuild").mkdir(parents=True)
        shutil.copy(ROOT / kpin["config"], root / "build" / "fragment.config")
        subprocess.run(["mount", "--bind", "-o", "ro", str(src), str(root / "build" / "linux")], check=True)
        mounts.append(root / "build" / "linux")
        mount_root(root, mounts)
        try:
            script = ("set -eu; cd /build/linux; m='make -C /build/linux O=/build/kbuild ARCH=x86_64'; "
                      "gcc --version | head -1; pahole --version; $m defconfig; "
                      "cd /build/kbuild; /build/linux/scripts/kconfig/merge_config.sh -m -O /build/kbuild "
                      ".config /build/fragment.config; $m olddefconfig")
            if in_root(root, script, logf):
                raise Failed(f"kernel: defconfig/merge/olddefconfig failed, {work / 'build.log'}")
        finally:
            unmount(mounts)
    build = root / "build" / "kbuild"
    got = config_values((build / ".config").read_text())
    wrong = {k: f"wanted {v}, got {got.get(k, 'absent')}" for k, v in want.items()
             if got.get(k, "n") != v}
    if wrong:
        raise Failed(f"kernel {ver}: options not as asked: " +
                     "; ".join(f"{k} {w}" for k, w in sorted(wrong.items())))
    return {"version": ver, "options": len(want), "IO_URING_ZCRX": got.get("IO_URING_ZCRX"),
            "config": str(build / ".config")}


RECIPES = {
    "xdpsock": lambda work, a: replay_derivation("nix/xdpsock.nix", work),
    "rxbench-native": lambda work, a: replay_derivation("nix/rxbench-native.nix", work),
    "pktgen": lambda work, a: replay_pktgen(work, a.mirror),
    "kernel": lambda work, a: replay_kernel(work, a.mirror),
}

NOT_REPLAYED = ("Nix's stdenv and cc-wrapper (Debian's gcc/clang/make stand in)",
                "nixpkgs' DPDK recipe (Debian trixie's dpdk-dev 24.11 stands in for nix/dpdk.nix's 24.11.1)",
                "nixpkgs' xdp-tools and liburing recipes (rxbench-native builds against Debian's "
                "libxdp and liburing)",
                "nixpkgs' kernel build (its configuration is replayed, not the compile)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="replay-recipes.py", description=__doc__.split("\n")[0])
    ap.add_argument("recipes", nargs="*", help=f"some of {', '.join(RECIPES)} (default: all)")
    ap.add_argument("--work", type=Path, help="build here (kept); default a temporary directory")
    ap.add_argument("--mirror", default="http://deb.debian.org/debian", help="Debian mirror for the trixie root")
    ap.add_argument("--json", type=Path, help="write the results here")
    a = ap.parse_args(argv)
    unknown = [r for r in a.recipes if r not in RECIPES]
    if unknown:
        ap.error(f"no recipe {', '.join(unknown)} (known: {', '.join(RECIPES)})")
    base = a.work or Path(tempfile.mkdtemp(prefix="rxb-replay-"))
    results, failed = {}, False
    for name in a.recipes or list(RECIPES):
        work = base / name
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        t0 = time.monotonic()
        try:
            res = {"status": "ok", **RECIPES[name](work, a)}
        except Skip as e:
            res = {"status": "skip", "reason": str(e)}
        except (Failed, sources.SourceError, subprocess.CalledProcessError) as e:
            res = {"status": "failed", "reason": str(e)}
            failed = True
        res["seconds"] = round(time.monotonic() - t0, 1)
        results[name] = res
        detail = res.get("reason") or ", ".join(res.get("built", [])[:6]) or res.get("version", "")
        log(f"replay {name}: {res['status']} in {res['seconds']} s: {detail}")
    for what in NOT_REPLAYED:
        log(f"not replayed: {what}")
    if a.json:
        a.json.write_text(json.dumps({"results": results, "not_replayed": NOT_REPLAYED}, indent=2) + "\n")
    if not a.work:
        log(f"work directory: {base}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
