"""The guests' images: the Debian image the platform builds itself
(vm/build-image.sh, cached by the hash of its recipe) and the flake's NixOS
images (platforms.vm.nix_image: their boot.json read and validated before
anything starts)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from ... import ROOT
from .common import ROLES, VmError

RECIPE_FILES = ("vm/build-image.sh", "vm/rxb-init")


def image_recipe(cfg: dict) -> dict:
    """What the guest image depends on: the Debian suites and packages
    (versions.yaml's debian.guest when it exists, else platforms.vm.image)."""
    icfg = cfg["platforms"]["vm"]["image"]
    recipe = {"mirror": icfg["mirror"], "suite": icfg["suite"],
              "kernel_suite": icfg["kernel_suite"], "packages": list(icfg["packages"])}
    versions = ROOT / "versions.yaml"
    if versions.exists():
        import yaml
        guest = (yaml.safe_load(versions.read_text()) or {}).get("debian", {}).get("guest")
        if guest:
            recipe["suite"] = guest.get("suite", recipe["suite"])
            recipe["kernel_suite"] = guest.get("kernel_suite", recipe["kernel_suite"])
            recipe["pins"] = guest.get("packages", {})
    return recipe


def _source_files() -> list[Path]:
    native = sorted(p for p in (ROOT / "native").iterdir()
                    if p.is_file() and p.suffix in (".c", ".h") or p.name == "Makefile")
    return [ROOT / f for f in RECIPE_FILES] + native


def image_hash(cfg: dict) -> str:
    h = hashlib.sha256(json.dumps(image_recipe(cfg), sort_keys=True).encode())
    for f in _source_files():
        h.update(f.relative_to(ROOT).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    for name in GUEST_TOOLS:      # a new `make tools` build makes a new image
        d = tool_dir(name)
        if d is not None:
            h.update(name.encode() + b"\0" + (d / "bin" / name).read_bytes())
    return h.hexdigest()[:16]


# -- upstream tools built by `make tools` (workflow/scripts/build-tools.sh) ---
# tool -> the variable through which vm/build-image.sh takes its directory
GUEST_TOOLS = {"pktgen": "RXB_PKTGEN_DIR", "xdpsock": "RXB_XDPSOCK_DIR"}


def tool_dir(name: str) -> Path | None:
    """Where `make tools` left `name` for the guest image (DIR/bin/name), or
    None: then the image has none and its stack or generator is `unsupported`."""
    cache = os.environ.get("TOOLS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "rxbench", "tools")
    d = Path(cache) / name
    return d if (d / "bin" / name).is_file() else None


def pktgen_dir() -> Path | None:
    return tool_dir("pktgen")


def image_dir(cfg: dict) -> Path:
    return Path(cfg["platforms"]["vm"]["image"]["cache"]) / image_hash(cfg)


def image_command(cfg: dict, out: Path) -> list[str]:
    r = image_recipe(cfg)
    return [str(ROOT / "vm/build-image.sh"), str(out), r["suite"], r["kernel_suite"],
            r["mirror"], str(ROOT / "native"), str(ROOT / "vm/rxb-init"), *r["packages"]]


def check_pins(cfg: dict, image: Path) -> dict:
    """The image's package versions against versions.yaml's debian.guest
    pins (fnmatch patterns); VmError naming the first that does not match."""
    import fnmatch
    have = dict(line.split(" ", 1) for line in
                (image / "versions.txt").read_text().splitlines() if " " in line)
    for pkg, pattern in image_recipe(cfg).get("pins", {}).items():
        version = have.get(pkg)
        # Debian versions carry an epoch and a revision: match the upstream part
        upstream = (version or "").split(":", 1)[-1]
        if version is None or not fnmatch.fnmatch(upstream, str(pattern)):
            raise VmError(f"guest image {image.name}: {pkg} is {version or 'not installed'}, "
                          f"versions.yaml pins {pattern}")
    return have


def build_image(cfg: dict, log) -> Path:
    """The cached image, built if its recipe is new (log kept beside it)."""
    out = image_dir(cfg)
    if (out / "rootfs.qcow2").exists():
        check_pins(cfg, out)
        return out
    for tool in ("debootstrap", "mkfs.ext4", "qemu-img"):
        if not shutil.which(tool):
            raise VmError(f"building the guest image needs {tool}: not installed")
    out.parent.mkdir(parents=True, exist_ok=True)
    logfile = out.parent / f"{out.name}.build.log"
    log(f"vm: building guest image {out} (log {logfile})")
    t0 = time.monotonic()
    with open(logfile, "w") as f:
        tools = {var: str(tool_dir(name)) for name, var in GUEST_TOOLS.items() if tool_dir(name)}
        p = subprocess.run(image_command(cfg, out), stdout=f, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, env={**os.environ, **tools})
    if p.returncode != 0:
        raise VmError(f"guest image build failed ({p.returncode}): see {logfile}")
    shutil.copy(logfile, out / "build.log")
    check_pins(cfg, out)
    log(f"vm: guest image built in {time.monotonic() - t0:.0f} s")
    return out


# -- the flake's NixOS images (platforms.vm.nix_image) --------------------------
BOOT_JSON = "boot.json"
# the kernel arguments through which the platform tells a Nix image which NIC
# is which (nix/vm-image.nix's rxbench-nics service reads them, as rxb-init does)
NIC_MATCH = {"management": "rxb.mgmt_mac", "test": "rxb.test_mac"}
# what the platform itself puts on the kernel command line: an image's own
# append must not set these
PLATFORM_ARGS = ("ipv6.disable", "panic", "intel_iommu")


def _boot_error(path: Path, key: str | None, problem: str) -> VmError:
    where = f"{path}: key {key}" if key else str(path)
    return VmError(f"platforms.vm.nix_image: {where}: {problem}")


def read_boot_json(directory: Path, role: str) -> dict:
    """One role's boot.json of a `nix build .#vm-images` result, validated;
    its file names resolved against its directory. VmError naming the file
    and the key on the first problem (nothing is started before this)."""
    path = Path(directory) / role / BOOT_JSON
    if not path.is_file():
        raise _boot_error(path, None, "does not exist (platforms.vm.nix_image wants the "
                          "result of `nix build .#vm-images`: sender/boot.json and "
                          "receiver/boot.json)")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise _boot_error(path, None, f"not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise _boot_error(path, None, f"not a JSON object but {type(data).__name__}")
    out = {"path": str(path), "dir": str(path.parent.resolve()), "content": data}
    for key in ("kernel", "initrd", "disk"):
        value = data.get(key)
        if not isinstance(value, str) or not value:
            raise _boot_error(path, key, "missing or not a file name")
        f = (path.parent / value).resolve()
        if not f.is_file():
            raise _boot_error(path, key, f"{value} does not exist ({f})")
        out[key] = str(f)
    with open(out["disk"], "rb") as f:
        if f.read(4) != b"QFI\xfb":
            raise _boot_error(path, "disk", f"{data['disk']} is not a qcow2 image")
    append = data.get("append")
    if not isinstance(append, str) or not append.strip():
        raise _boot_error(path, "append", "missing or not a string of kernel arguments")
    for arg in append.split():
        if arg.startswith("rxb.") or arg.split("=", 1)[0] in PLATFORM_ARGS:
            raise _boot_error(path, "append", f"sets {arg}, which the platform sets itself")
    if not any(a.startswith("init=") for a in append.split()):
        raise _boot_error(path, "append", "has no init= (the NixOS system's init)")
    out["append"] = append.strip()
    if data.get("role") not in (role, "any"):
        raise _boot_error(path, "role", f"is {data.get('role')!r}, not {role!r} or 'any'")
    key = data.get("ssh_key")
    if not isinstance(key, dict):
        raise _boot_error(path, "ssh_key", "missing or not an object {fw_cfg, user}")
    name = key.get("fw_cfg")
    # QEMU takes user fw_cfg items under opt/ only (docs/specs/fw_cfg)
    if not isinstance(name, str) or not name.startswith("opt/") or len(name) > 55 \
            or not all(c.isalnum() or c in "._/-" for c in name):
        raise _boot_error(path, "ssh_key.fw_cfg", f"{name!r} is not a QEMU fw_cfg name "
                          "(opt/..., at most 55 characters)")
    if key.get("user", "root") != "root":
        raise _boot_error(path, "ssh_key.user", f"is {key.get('user')!r}: the platform "
                          "logs in as root")
    out["fw_cfg"] = name
    nics = data.get("nics")
    if not isinstance(nics, list) or not all(isinstance(n, dict) for n in nics):
        raise _boot_error(path, "nics", "missing or not a list of objects")
    uses = [n.get("use") for n in nics]
    if sorted(uses) != ["management", "test"]:
        raise _boot_error(path, "nics", f"uses are {uses}: want one 'management' and one "
                          "'test' NIC")
    for i, n in enumerate(nics):
        if n.get("model", "virtio-net-pci") != "virtio-net-pci":
            raise _boot_error(path, f"nics[{i}].model", f"is {n.get('model')!r}: the "
                              "platform gives virtio-net-pci")
        if n.get("match") != NIC_MATCH[n["use"]]:
            raise _boot_error(path, f"nics[{i}].match", f"is {n.get('match')!r}: the "
                              f"{n['use']} NIC is named by the MAC in {NIC_MATCH[n['use']]}")
        if n["use"] == "test" and n.get("dhcp"):
            raise _boot_error(path, f"nics[{i}].dhcp", "the test NIC must be left "
                              "unconfigured (the platform addresses it)")
        if not isinstance(n.get("name"), str) or not n["name"]:
            raise _boot_error(path, f"nics[{i}].name", "missing")
    out["nics"] = {n["use"]: n["name"] for n in nics}
    return out


def read_nix_image(cfg: dict) -> dict | None:
    """Both roles' boot.json when platforms.vm.nix_image is set, else None."""
    d = nix_image_path(cfg)
    if d is None:
        return None
    if not d.is_dir():
        raise VmError(f"platforms.vm.nix_image: {d} is not a directory (want the result of "
                      "`nix build .#vm-images`)")
    return {role: read_boot_json(d, role) for role in ROLES}


def nix_image_path(cfg: dict) -> Path | None:
    """platforms.vm.nix_image as a path (a relative one is the checkout's)."""
    d = cfg["platforms"]["vm"].get("nix_image")
    return None if not d else (ROOT / d if not os.path.isabs(d) else Path(d))


def nix_image_hash(boots: dict) -> str:
    """The store hash of the image when it is a Nix store path, else a hash
    of both boot.json files and the files they name (path, size, mtime)."""
    real = Path(os.path.realpath(Path(boots["sender"]["dir"]).parent))
    if real.parts[:3] == ("/", "nix", "store"):
        return real.parts[3].split("-", 1)[0]
    h = hashlib.sha256()
    for role in ROLES:
        b = boots[role]
        h.update(json.dumps(b["content"], sort_keys=True).encode())
        for k in ("kernel", "initrd", "disk"):
            st = os.stat(b[k])
            h.update(f"{b[k]} {st.st_size} {st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


