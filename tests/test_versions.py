"""versions.yaml, the one file of pins, against every file that installs
software: versions.json (what Nix reads), flake.lock, flake.nix and nix/*.nix,
the Debian package list, the vm image recipe (when present),
requirements.txt/.lock, and provenance. Unit tests: fast, no root.

What runs here is syntax (`nix-instantiate --parse`) and pure Nix evaluation
of the parts that need no nixpkgs (the kernel-fragment and requirements
parsers, with a stub `lib`); nothing is built."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from rxbench import RxbenchError, provenance
from rxbench import versions as V

pytestmark = pytest.mark.unit

ROOT = V.ROOT
NIX = shutil.which("nix-instantiate")
NEEDS_NIX = pytest.mark.skipif(NIX is None, reason="nix-instantiate is not installed "
                               "(Debian: nix-bin, in workflow/envs/debian-packages.txt)")
NIX_FILES = sorted([ROOT / "flake.nix", *(ROOT / "nix").glob("*.nix"), *(ROOT / "vm").rglob("*.nix")])

# a few nixpkgs lib functions, in plain builtins, for evaluating our files'
# pure parts without nixpkgs
STUB_LIB = r"""
rec {
  kernel = { yes = "y"; module = "m"; no = "n"; };
  mkForce = x: { forced = x; };
  splitString = sep: s: builtins.filter builtins.isString (builtins.split sep s);
  attrNames = builtins.attrNames;
  listToAttrs = builtins.listToAttrs;
  filterAttrs = pred: set: builtins.listToAttrs (builtins.concatMap
    (n: if pred n set.${n} then [ { name = n; value = set.${n}; } ] else [ ]) (builtins.attrNames set));
  hasSuffix = suf: s: let ls = builtins.stringLength s; lf = builtins.stringLength suf;
    in ls >= lf && builtins.substring (ls - lf) lf s == suf;
  removeSuffix = suf: s: if hasSuffix suf s
    then builtins.substring 0 (builtins.stringLength s - builtins.stringLength suf) s else s;
  versionAtLeast = a: b: builtins.compareVersions a b >= 0;
  assertMsg = c: msg: c || throw msg;
}
"""


def nix_eval(expr: str) -> object:
    p = subprocess.run([NIX, "--eval", "--strict", "--json", "-E", expr], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    if p.returncode:
        raise AssertionError(p.stderr.strip())
    return json.loads(p.stdout)


def pins() -> dict:
    return V.load()


def read(rel: str) -> str:
    return (ROOT / rel).read_text()


# --- the file itself and the generated JSON ---------------------------------

def test_versions_yaml_has_every_pin():
    p = pins()
    assert p["dpdk"]["version"] == "24.11.1"
    assert p["pktgen_dpdk"]["version"] == "24.10.3"
    assert re.fullmatch(r"[0-9a-f]{40}", p["nixpkgs"]["rev"])
    assert re.fullmatch(r"[0-9a-f]{40}", p["bpf_examples"]["rev"])
    assert p["nixpkgs"]["narHash"].startswith("sha256-")
    for name in ("dpdk", "pktgen_dpdk", "bpf_examples", "xdp_tools", "liburing"):
        assert re.fullmatch(r"sha256-[A-Za-z0-9+/]{43}=", p[name]["hash"]), name
        assert p[name].get("hash_source"), f"{name}: say where its hash comes from"
    assert tuple(int(x) for x in p["kernel"]["min"].split(".")) >= (6, 15)
    assert tuple(int(x) for x in p["kernel"]["series"].split(".")) >= (6, 15)
    assert p["kernel"]["nix_attr"] == "linux_" + p["kernel"]["series"].replace(".", "_")


def test_versions_json_is_generated_from_the_yaml():
    assert V.json_is_current(), "versions.json is stale: python -m rxbench.versions --write"
    data = json.loads(read("versions.json"))
    data.pop("_generated")
    assert data == pins()


def test_stale_json_is_detected(tmp_path):
    y = tmp_path / "versions.yaml"
    y.write_text(read("versions.yaml"))
    j = tmp_path / "versions.json"
    j.write_text(V.as_json(V.load(y)))
    assert V.json_is_current(y, j)
    y.write_text(read("versions.yaml").replace('version: "24.11.1"', 'version: "24.11.2"'))
    assert not V.json_is_current(y, j)


def test_bad_versions_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "versions.yaml"
    bad.write_text("nixpkgs: {rev: x}\n")
    with pytest.raises(RxbenchError, match="missing pins: dpdk"):
        V.load(bad)
    bad.write_text("nixpkgs: [\n")
    with pytest.raises(RxbenchError, match="not valid YAML"):
        V.load(bad)
    with pytest.raises(RxbenchError, match="cannot read"):
        V.load(tmp_path / "absent.yaml")
    with pytest.raises(RxbenchError, match="no debian.nope section"):
        V.debian("nope")


def test_provenance_records_the_versions_file(monkeypatch):
    monkeypatch.setattr(provenance, "versions", lambda: {})
    prov = provenance.collect({}, [], {}, "veth", 0.0)
    assert prov["versions_file"] == {"path": "versions.yaml", "sha256": V.sha256()}
    assert len(prov["versions_file"]["sha256"]) == 64


# --- Nix ---------------------------------------------------------------------

@NEEDS_NIX
@pytest.mark.parametrize("path", NIX_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_nix_file_parses(path):
    p = subprocess.run([NIX, "--parse", str(path)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr


def test_flake_lock_pins_the_versions_nixpkgs():
    lock = json.loads(read("flake.lock"))
    assert lock["version"] == 7 and lock["root"] == "root"
    node = lock["nodes"][lock["nodes"]["root"]["inputs"]["nixpkgs"]]
    want = pins()["nixpkgs"]
    assert node["locked"] == {"lastModified": want["lastModified"], "narHash": want["narHash"],
                              "owner": want["owner"], "repo": want["repo"], "rev": want["rev"],
                              "type": "github"}
    assert node["original"]["rev"] == want["rev"]
    flake = read("flake.nix")
    url = re.search(r'inputs\.nixpkgs\.url\s*=\s*"([^"]+)"', flake).group(1)
    assert url == f"github:{want['owner']}/{want['repo']}/{want['rev']}"


def test_flake_reads_the_pins_and_nix_files_hard_code_none():
    flake = read("flake.nix")
    assert "builtins.fromJSON (builtins.readFile ./versions.json)" in flake
    p = pins()
    literals = [p["dpdk"]["version"], p["pktgen_dpdk"]["version"], p["bpf_examples"]["rev"],
                p["xdp_tools"]["rev"], p["liburing"]["rev"], p["kernel"]["nix_attr"]]
    for f in (ROOT / "nix").glob("*.nix"):
        text = f.read_text()
        assert not re.search(r"sha256-[A-Za-z0-9+/]{43}=", text), f"{f.name}: a hash belongs in versions.yaml"
        assert "fakeHash" not in text, f"{f.name}: fakeHash (README must list it; none today)"
        code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
        for lit in literals:
            assert lit not in code, f"{f.name}: {lit!r} hard-coded, read it from pins"
    # each pinned tool's file takes its pin from versions.json
    uses = {"dpdk.nix": "pins.dpdk", "pktgen.nix": "pins.pktgen_dpdk",
            "xdpsock.nix": "pins.bpf_examples", "kernel.nix": "pins.kernel",
            "python.nix": "pins.python.wheels"}
    for name, ref in uses.items():
        assert ref in read(f"nix/{name}"), f"nix/{name} does not read {ref}"
    for ref in ("pins.xdp_tools", "pins.liburing"):
        assert ref in flake, f"flake.nix does not read {ref}"


@NEEDS_NIX
def test_flake_stops_below_the_minimum_nix_before_nixpkgs_is_evaluated():
    """The one-line message comes first: nixpkgs (here a throw) is never
    evaluated on a Nix older than versions.yaml's nix.min."""
    expr = ('let o = (import ./flake.nix).outputs { self = { }; nixpkgs = throw "nixpkgs evaluated"; };'
            ' in builtins.attrNames o.packages')
    p = subprocess.run([NIX, "--eval", "--strict", "--json", "-E", expr], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    have = subprocess.run([NIX, "--version"], capture_output=True, text=True).stdout.split()[-1]
    minimum = pins()["nix"]["min"]
    assert p.returncode != 0
    if tuple(map(int, have.split(".")[:2])) < tuple(map(int, minimum.split(".")[:2])):
        assert (f"rxbench: this flake needs Nix >= {minimum} (nixpkgs at the pinned rev requires it); "
                f"this is Nix {have}") in p.stderr
        assert "nixpkgs evaluated" not in p.stderr
    else:
        assert "nixpkgs evaluated" in p.stderr


@NEEDS_NIX
def test_kernel_config_comes_from_the_fragment():
    """Evaluate nix/kernel.nix with a stub lib and kernel: what it hands to
    the kernel's override is exactly kernels/rxbench.config, forced."""
    expr = f"""
      let lib = {STUB_LIB};
          pins = builtins.fromJSON (builtins.readFile ./versions.json);
          base = {{ version = "6.18.5"; structuredExtraConfig = {{ }}; kernelPatches = [ ];
                    override = args: args; }};
      in import ./nix/kernel.nix {{ inherit lib pins;
           linuxKernel.kernels.${{pins.kernel.nix_attr}} = base; }}
    """
    got = nix_eval(expr)
    want = {}
    for line in read("kernels/rxbench.config").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = re.fullmatch(r"CONFIG_([A-Za-z0-9_]+)=([ymn])\s*", line)
        assert m, f"kernels/rxbench.config: {line!r} is not CONFIG_X=y|m|n (nix/kernel.nix would skip it)"
        want[m.group(1)] = {"forced": m.group(2)}
    assert got["structuredExtraConfig"] == want
    for opt in ("IO_URING_ZCRX", "XDP_SOCKETS", "VFIO", "VFIO_NOIOMMU", "UIO_PCI_GENERIC",
                "HUGETLBFS", "PAGE_POOL"):
        assert want[opt] == {"forced": "y" if opt not in ("VFIO", "UIO_PCI_GENERIC") else "m"}, opt
    assert want["NET_PKTGEN"] == want["NETDEVSIM"] == {"forced": "m"}
    patches = sorted(p.name for p in (ROOT / "kernels").glob("*.patch"))
    assert [p["name"] for p in got["kernelPatches"]] == ["rxbench-" + n[:-6] for n in patches]


@NEEDS_NIX
def test_kernel_older_than_the_minimum_is_refused():
    expr = f"""
      let lib = {STUB_LIB};
          pins = builtins.fromJSON (builtins.readFile ./versions.json);
      in (import ./nix/kernel.nix {{ inherit lib pins;
           linuxKernel.kernels.${{pins.kernel.nix_attr}} = {{ version = "6.12.64"; override = a: a; }}; }}).structuredExtraConfig
    """
    p = subprocess.run([NIX, "--eval", "--strict", "-E", expr], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "older than" in p.stderr


@NEEDS_NIX
def test_python_env_maps_every_requirement():
    """Evaluate nix/python.nix with stub packages: the environment holds one
    package per requirements.txt name; the wheels built here are the pins'."""
    expr = f"""
      let lib = {STUB_LIB};
          pins = builtins.fromJSON (builtins.readFile ./versions.json);
          pkgs = builtins.listToAttrs (map (n: {{ name = n; value = "nixpkgs:" + n; }})
            [ "pandas" "matplotlib" "pyyaml" "jinja2" "jsonschema" "pytest" "scipy"
              "requests" "ipython" ]) // {{
            toPythonModule = x: "module:" + x;
            buildPythonPackage = a: "wheel:" + a.pname + "==" + a.version + "@" + a.src;
          }};
      in import ./nix/python.nix {{
        inherit lib pins;
        python3 = {{ inherit pkgs; withPackages = f: f pkgs; }};
        fetchurl = a: a.url;
        snakemake = "snakemake-app";
      }}
    """
    got = nix_eval(expr)
    names = [re.split(r"[=<>~ ]", line.strip(), maxsplit=1)[0]
             for line in read("requirements.txt").splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    assert len(got) == len(names)
    wheels = pins()["python"]["wheels"]
    for name, value in zip(names, got):
        if name in wheels:
            assert value == f"wheel:{name}=={wheels[name]['version']}@{wheels[name]['url']}"
        elif name == "snakemake":
            assert value == "module:snakemake-app"
        else:
            assert value == f"nixpkgs:{name}"


# --- Python ------------------------------------------------------------------

def _pins_of(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, ver = line.split("==", 1)
            out[name.strip().lower().replace("_", "-")] = ver.strip()
    return out


def test_python_pins_agree():
    py = pins()["python"]
    req = _pins_of(read(py["requirements"]))
    lock = _pins_of(read(py["lock"]))
    for name, ver in req.items():
        assert lock.get(name) == ver, f"{py['lock']}: {name} {lock.get(name)} != {ver}"
    for name, w in py["wheels"].items():
        key = name.lower()
        assert req.get(key) == w["version"], f"versions.yaml python.wheels {name}: {w['version']} != requirements.txt"
        assert w["url"].endswith(".whl") and f"-{w['version']}-" in w["url"]


# --- Debian ------------------------------------------------------------------

def _debian_list() -> list[str]:
    host = V.debian("host")
    return read(host["packages_file"]).splitlines()


def test_debian_host_list_names_its_suite_and_pinned_packages():
    host = V.debian("host")
    lines = _debian_list()
    assert f"# suite: {host['suite']}" in "\n".join(lines), \
        f"{host['packages_file']} must say `# suite: {host['suite']}`"
    names = {line.split("#", 1)[0].strip() for line in lines} - {""}
    for pkg in host["packages"]:
        assert pkg in names, f"versions.yaml pins {pkg}, which {host['packages_file']} does not install"


def test_debian_host_versions_match_this_machine():
    host = V.debian("host")
    try:
        codename = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().split("\n")
                        if "=" in line).get("VERSION_CODENAME", "").strip('"')
    except OSError:
        codename = ""
    if codename != host["suite"] or not shutil.which("dpkg-query"):
        pytest.skip(f"not a Debian {host['suite']} machine (this is {codename or 'unknown'})")
    for pkg, glob in host["packages"].items():
        p = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True)
        if p.returncode:
            pytest.skip(f"{pkg} is not installed (make setup)")
        assert fnmatch.fnmatch(p.stdout, glob), f"{pkg} {p.stdout} does not match versions.yaml {glob!r}"


def test_debian_guest_pins_as_agreed():
    guest = V.debian("guest")
    assert guest["suite"] == "trixie" and guest["kernel_suite"] == "trixie-backports"
    pk = guest["packages"]
    assert pk["dpdk"] == "24.11.*" and pk["xdp-tools"] == "1.5.*"
    assert pk["liburing-dev"].startswith("2.9") and pk["linux-image-cloud-amd64"] == "7.3.*"
    # the Nix path pins the same minor versions where both exist
    p = pins()
    assert fnmatch.fnmatch(p["dpdk"]["version"], pk["dpdk"])
    assert fnmatch.fnmatch(p["xdp_tools"]["version"], pk["xdp-tools"])
    assert fnmatch.fnmatch(p["liburing"]["version"], pk["liburing-dev"])


def _recipe_files() -> list[Path]:
    files = [f for f in (ROOT / "vm").rglob("*")
             if f.is_file() and f.suffix in (".py", ".sh", ".yaml", ".yml", ".nix", ".json", ".txt")]
    files += list((ROOT / "workflow" / "rxbench" / "platforms").glob("vm*.py"))
    return sorted(files)


def test_vm_image_recipe_reads_the_pins():
    """Whatever vm image recipe exists takes suites and package versions
    from versions.yaml (through rxbench.versions), never its own copy."""
    files = _recipe_files()
    if not files:
        pytest.skip("no vm image recipe yet (vm/ has only its README)")
    guest = V.debian("guest")
    literals = {guest["suite"], guest["kernel_suite"], *guest["packages"].values()} - {"*"}
    offenders = []
    for f in files:
        code = "\n".join(line.split("#", 1)[0] for line in f.read_text(errors="replace").splitlines())
        hard = sorted(lit for lit in literals if re.search(rf"['\"=\s]{re.escape(lit)}['\"\s]", code))
        if hard:
            offenders.append(f"{f.relative_to(ROOT)}: {', '.join(hard)}")
    assert not offenders, "hard-coded Debian pins (read rxbench.versions.debian('guest')): " + "; ".join(offenders)


def test_every_nix_file_is_wired_and_exists():
    text = read("flake.nix") + "".join(f.read_text() for f in (ROOT / "nix").glob("*.nix"))
    referenced = set(re.findall(r"\./nix/([A-Za-z0-9_-]+\.nix)", text)) | \
        set(re.findall(r"(?<![A-Za-z0-9_/])\./([A-Za-z0-9_-]+\.nix)", "".join(
            f.read_text() for f in (ROOT / "nix").glob("*.nix"))))
    present = {f.name for f in (ROOT / "nix").glob("*.nix")}
    assert referenced - present == set(), f"referenced but missing: {referenced - present}"
    assert present - referenced == set(), f"never used: {present - referenced}"


# stub nixpkgs pieces: a derivation is its attribute set, a fetch its arguments
STUB_PKGS = r"""
  let
    drv = a: a;
    overridable = name: {
      pname = name;
      override = args: {
        overrideAttrs = f: let base = { pname = name; passthru = { }; env = { }; };
          in base // f base // { overridden = args; };
      };
    };
  in {
    stdenv = { mkDerivation = drv; hostPlatform.system = "x86_64-linux"; };
    fetchFromGitHub = a: a;
    dpdk = overridable "dpdk";
    pktgen = overridable "pktgen";
    pkg-config = "pkg-config"; m4 = "m4"; bpftools = "bpftools"; libbpf = "libbpf";
    elfutils = "elfutils"; zlib = "zlib"; liburing = "liburing";
    libcap = "libcap"; libmnl = "libmnl";
    xdp-tools = { lib = "xdp-tools-lib"; outPath = "xdp-tools"; };
    llvmPackages = { clang = "clang"; llvm = "llvm"; };
  }
"""


@NEEDS_NIX
@pytest.mark.parametrize("nixfile,pin", [("dpdk.nix", "dpdk"), ("pktgen.nix", "pktgen_dpdk"),
                                          ("xdpsock.nix", "bpf_examples")])
def test_package_sources_are_the_pins(nixfile, pin):
    expr = f"""
      let lib = {STUB_LIB} // {{ platforms.linux = [ ]; licenses.gpl2Only = "gpl2"; }};
          pins = builtins.fromJSON (builtins.readFile ./versions.json);
          pkgs = {STUB_PKGS};
          f = import ./nix/{nixfile};
          r = f (builtins.intersectAttrs (builtins.functionArgs f) (pkgs // {{ inherit lib pins; }}));
      in {{ inherit (r) src; version = r.version or null; patches = r.patches or null;
            machine = r.overridden.machine or null;
            dpdk = (r.overridden.dpdk or {{ }}).pname or null;
            flags = builtins.toJSON (r.mesonFlags or [ ]) + builtins.toJSON (r.env or {{ }}); }}
    """
    got = nix_eval(expr)
    want = pins()[pin]
    assert got["src"] == {k: want[k] for k in ("owner", "repo", "rev", "hash")}
    if pin != "bpf_examples":
        assert got["version"] == want["version"]
    if pin == "dpdk":
        assert got["machine"] == want["machine"]["x86_64-linux"] != "nehalem"
        assert got["patches"] == []
    if pin == "pktgen_dpdk":
        assert got["dpdk"] == "dpdk"  # built against the dpdk it is given (ours, in flake.nix)
        assert "enable_lua" not in got["flags"], "Lua stays off (versions.yaml pktgen_dpdk.lua)"
        assert want["lua"] is False
    if pin == "bpf_examples":
        # its ./configure always builds libxdp from lib/xdp-tools; libbpf
        # from lib/libbpf too, so the build does not depend on the machine's
        assert '"FORCE_SUBMODULE_LIBBPF":"1"' in got["flags"]


@NEEDS_NIX
def test_native_package_builds_native_with_the_pinned_libraries():
    expr = f"""
      let lib = {STUB_LIB} // {{ platforms.linux = [ ]; }};
          pkgs = {STUB_PKGS};
          f = import ./nix/rxbench-native.nix;
      in f (builtins.intersectAttrs (builtins.functionArgs f) (pkgs // {{ inherit lib; }}))
    """
    got = nix_eval(expr)
    assert got["src"].endswith("-native")  # the checkout's native/ directory
    assert {"libbpf", "xdp-tools-lib", "liburing"} <= set(map(str, got["buildInputs"]))
    assert "build/*.bpf.o" in got["installPhase"] and got["passthru"]["nativeDir"] == "libexec/rxbench"
