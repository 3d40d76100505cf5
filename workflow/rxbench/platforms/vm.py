"""The vm platform: two QEMU guests (sender, receiver) on a bridge, as in the
seed's appendix, booted once per campaign by a lease (rxbench.lease) and
reached over SSH like any other pair of hosts (the ssh platform's testbed
gets the inventory lease_up returns).

Host side, all inside one network namespace the lease creates (rxb-vm-<tok>),
nothing of the host's own interfaces touched:
  - bridge `br0` with the guests' test taps `tap0`/`tap1` (guests address
    their test NIC 198.18.0.1/30 and .2/30 themselves; no NAT, no route out);
  - management: a second NIC per guest on QEMU user networking (no default
    route in the guest; slirp itself runs in the namespace) with hostfwd of SSH bound to the
    namespace end (198.19.K.2) of a veth whose root-namespace end is
    198.19.K.1/30: the controller reaches the guests at 198.19.K.2:2201/2202
    and control traffic never crosses the test link.
Everything is written to the lease record before it is created; lease_down
removes it from the record alone (after a SIGKILL too).

Two kinds of guest image: the Debian image the platform builds itself
(vm/build-image.sh; its init, vm/rxb-init, addresses the test NIC from the
kernel command line and the image carries its own key pair), or, with
`platforms.vm.nix_image: PATH`, the flake's NixOS images (`nix build
.#vm-images`: PATH/sender/boot.json, PATH/receiver/boot.json, see
nix/vm-image.nix): kernel, initrd, disk and kernel arguments from boot.json,
a key pair made for the lease and handed to the guests by QEMU fw_cfg, and
the test NIC configured over SSH once the guest answers (nix_configure).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

from .. import ROOT, RxbenchError
from ..state import alive, delete_netns, kill_pid, netns_list, new_token, pid_start
from ..util import CommandError, run
from .base import LeasedTestbed

ROLES = ("sender", "receiver")
TEST_IPS = {"sender": "198.18.0.1", "receiver": "198.18.0.2"}
TEST_PREFIX = 30
MGMT_NET = ipaddress.ip_network("198.19.0.0/16")
SSH_PORTS = {"sender": 2201, "receiver": 2202}
# guest NIC MACs (locally administered, QEMU's prefix); the guests' init
# names the NICs by them: mgmt0 (management), test0 (the test link)
TEST_MACS = {"sender": "52:54:00:18:00:01", "receiver": "52:54:00:18:00:02"}
MGMT_MACS = {"sender": "52:54:00:19:00:01", "receiver": "52:54:00:19:00:02"}
TEST_IF = "test0"
RECIPE_FILES = ("vm/build-image.sh", "vm/rxb-init")


class VmError(RxbenchError):
    pass


# -- the image ---------------------------------------------------------------
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


def lease_key(run_dir: Path, token: str) -> Path:
    """A key pair for this lease alone (the public half goes to the guests by
    fw_cfg); it lives in the lease's run dir, removed with it."""
    key = run_dir / "id_ed25519"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"rxbench-lease-{token}",
         "-f", str(key)], timeout=30)
    os.chmod(key, 0o600)
    return key


def nix_configure(inv: dict, test_mac: str, mtu: int, log=None) -> str:
    """Over SSH, what rxb-init does for the Debian image: the NIC with the
    test MAC named test0, its MTU, its address, up; returns the name the
    image had given it. (No default route and the static neighbours are
    checked and set for both kinds of image by lease_up.)"""
    script = (
        "set -e; n=; for d in /sys/class/net/*; do "
        f'[ "$(cat $d/address)" = {test_mac} ] && n=${{d##*/}}; done; '
        f'[ -n "$n" ] || {{ echo "no NIC with MAC {test_mac}" >&2; exit 1; }}; '
        f'if [ "$n" != {TEST_IF} ]; then ip link set "$n" down; '
        f'ip link set "$n" name {TEST_IF}; fi; '
        f"ip link set {TEST_IF} mtu {int(mtu)}; "
        f"ip addr replace {inv['test_ip']}/{inv['prefix']} dev {TEST_IF}; "
        f'ip link set {TEST_IF} up; echo "$n"')
    try:
        return ssh(inv, script, timeout=60, log=log).strip().splitlines()[-1]
    except (CommandError, IndexError) as e:
        raise VmError(f"vm: configuring the test NIC over SSH failed: {e}") from None


def nix_image_facts(inv: dict) -> dict | None:
    """The image's own record (/etc/rxbench/image.json, host.nix), if any."""
    out = ssh(inv, "cat /etc/rxbench/image.json 2>/dev/null || true", timeout=30).strip()
    try:
        return json.loads(out) if out else None
    except ValueError:
        return {"unparsed": out[:2000]}


# -- QEMU --------------------------------------------------------------------
def qemu_argv(v: dict, *, name: str, accel: str, kernel: str, initrd: str, disk: str,
              append: str, tap: str, test_mac: str, mgmt_mac: str, hostfwd: str,
              serial: str, fw_cfg: dict | None = None) -> list[str]:
    """One guest's whole QEMU command line from platforms.vm's named options
    (the seed's line is the default: q35,kernel-irqchip=split, intel-iommu
    with intremap and caching-mode, virtio-net-pci mq=on)."""
    machine = f"{v['machine']},accel={accel}"
    if v.get("kernel_irqchip"):
        machine += f",kernel-irqchip={v['kernel_irqchip']}"
    cpu = v["cpu"] if v["cpu"] != "auto" else ("host" if accel == "kvm" else "max")
    argv = ["qemu-system-x86_64", "-name", name, "-machine", machine, "-cpu", cpu,
            "-smp", str(v["vcpus"]), "-m", str(v["memory_mb"]),
            "-nodefaults", "-display", "none", "-no-reboot",
            "-chardev", f"file,id=ser0,path={serial}", "-serial", "chardev:ser0"]
    if v["iommu"]:
        argv += ["-device", "intel-iommu,intremap=on,caching-mode=on"]
    argv += ["-kernel", kernel, "-initrd", initrd, "-append", append,
             "-drive", f"file={disk},if=virtio,format=qcow2,cache=unsafe"]
    # files for the guest by QEMU fw_cfg (the lease's public key for a Nix image)
    for item, path in (fw_cfg or {}).items():
        if "," in item or "," in str(path):
            raise VmError(f"fw_cfg {item}={path}: a comma cannot pass QEMU's option parser")
        argv += ["-fw_cfg", f"name={item},file={path}"]
    q = int(v["queues"])
    tapopt = f"tap,id=test,ifname={tap},script=no,downscript=no"
    if v["vhost"] is True:
        tapopt += ",vhost=on"
    if q > 1:
        tapopt += f",queues={q}"
    dev = f"virtio-net-pci,netdev=test,mac={test_mac}"
    if v["mq"]:
        dev += ",mq=on"
    if v.get("vectors") is not None:
        dev += f",vectors={v['vectors']}"
    if v["iommu_platform"]:
        dev += ",disable-legacy=on,iommu_platform=on,ats=on"
    elif v["disable_legacy"]:
        dev += ",disable-legacy=on"
    argv += ["-netdev", tapopt, "-device", dev,
             # not restrict=on: QEMU 7.2's slirp then drops the forwarded SSH
             # connection too. Safe without it: the guest has no default route,
             # and slirp runs in the lease's namespace, which routes nowhere
             "-netdev", f"user,id=mgmt,hostfwd={hostfwd}",
             "-device", f"virtio-net-pci,netdev=mgmt,mac={mgmt_mac}"]
    return argv


def kernel_append(v: dict, role: str, mgmt_route: str, image_append: str | None = None) -> str:
    """The guest's kernel command line. Debian image: root and init are ours,
    and rxb-init addresses the test NIC from rxb.test_ip/rxb.mtu. A Nix image
    (image_append = its boot.json's append: root=, init=, its own options):
    no rxb.test_ip/rxb.mtu, the test NIC is configured over SSH."""
    # no IPv6: its router and neighbour solicitations would be test traffic
    if image_append is None:
        parts = [f"rxb.mgmt_route={mgmt_route}", "ipv6.disable=1", "console=ttyS0",
                 "root=/dev/vda", "rw", "init=/sbin/rxb-init", "panic=-1",
                 f"rxb.name=rxb-{role}", f"rxb.test_mac={TEST_MACS[role]}",
                 f"rxb.mgmt_mac={MGMT_MACS[role]}",
                 f"rxb.test_ip={TEST_IPS[role]}/{TEST_PREFIX}", f"rxb.mtu={v['mtu']}"]
    else:
        parts = [*image_append.split(), f"rxb.mgmt_route={mgmt_route}", "ipv6.disable=1",
                 "panic=-1", f"rxb.name=rxb-{role}", f"rxb.test_mac={TEST_MACS[role]}",
                 f"rxb.mgmt_mac={MGMT_MACS[role]}"]
    if v["iommu"]:
        parts.append("intel_iommu=on")
    return " ".join(parts + list(v.get("append", [])))


def probe_kvm(image: Path, v: dict, log, wait_s: float = 4.0,
              kernel: str | None = None) -> tuple[bool, str]:
    """KVM by really starting a guest with the guests' own machine, CPU,
    vCPUs and IOMMU (the kernel alone, no disk): a nested host's KVM kills
    it at once ("KVM internal error", or a CPU model it cannot give: "failed
    to set MSR"). The boot itself still falls back to TCG (lease_up)."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is absent or not usable"
    machine = f"{v['machine']},accel=kvm"
    if v.get("kernel_irqchip"):
        machine += f",kernel-irqchip={v['kernel_irqchip']}"
    cpu = v["cpu"] if v["cpu"] != "auto" else "host"
    argv = ["qemu-system-x86_64", "-machine", machine, "-cpu", cpu, "-smp", str(v["vcpus"]),
            "-m", "256", "-nodefaults", "-display", "none", "-no-reboot", "-serial", "null"]
    if v["iommu"]:
        argv += ["-device", "intel-iommu,intremap=on,caching-mode=on"]
    argv += ["-kernel", kernel or str(image / "vmlinuz"), "-append", "console=ttyS0 panic=-1"]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = p.communicate(timeout=wait_s)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return True, f"a KVM guest ({shlex.join(argv[1:9])}) ran for {wait_s:.0f} s"
    return False, f"a KVM guest died at once ({p.returncode}): {_why_died(out)}"


def _why_died(out: str) -> str:
    lines = [ln.strip() for ln in (out or "").splitlines() if ln.strip()]
    return next((ln for ln in lines if "KVM" in ln or "kvm" in ln),
                lines[-1] if lines else "no output")


def vhost_usable() -> bool:
    try:
        fd = os.open("/dev/vhost-net", os.O_RDWR)
    except OSError:
        return False
    os.close(fd)
    return True


# -- SSH to the guests ---------------------------------------------------------
def ssh_argv(inv: dict, command: str, timeout: int = 5) -> list[str]:
    return ["ssh", "-i", inv["key"], "-p", str(inv["port"]), "-o", "BatchMode=yes",
            "-o", f"ConnectTimeout={timeout}", "-o", "StrictHostKeyChecking=accept-new",
            "-o", f"UserKnownHostsFile={inv['known_hosts']}", "-o", "LogLevel=ERROR",
            f"{inv['user']}@{inv['address']}", command]


def ssh(inv: dict, command: str, timeout: float = 30, check: bool = True, log=None) -> str:
    return run(ssh_argv(inv, command), timeout=timeout, check=check, log=log)


def health(inventory: dict, log=None, max_skew_s: float = 5.0) -> dict:
    """Before a cell: SSH answers, the test NIC is up with its address, the
    guest's clock is within max_skew_s of ours. Raises VmError naming what failed."""
    facts = {}
    for role in ROLES:
        inv = inventory[role]
        try:
            out = ssh(inv, f"cat /sys/class/net/{inv['test_interface']}/operstate; "
                           f"ip -4 -br addr show dev {inv['test_interface']}; date +%s.%N",
                      timeout=20)
        except CommandError as e:
            raise VmError(f"vm {role}: health check failed: {e}") from None
        lines = out.strip().splitlines()
        if len(lines) < 3:       # no such interface: only the clock answered
            raise VmError(f"vm {role}: test NIC {inv['test_interface']} is not there "
                          f"(a NIC a killed DPDK cell left bound?): {' | '.join(lines)}")
        state, addr, clock = lines[-3:]
        skew = float(clock) - time.time()
        if state.strip() != "up":
            raise VmError(f"vm {role}: test NIC {inv['test_interface']} is {state.strip()}")
        if inv["test_ip"] not in addr:
            raise VmError(f"vm {role}: test NIC lacks {inv['test_ip']}: {addr.strip()}")
        if abs(skew) > max_skew_s:
            raise VmError(f"vm {role}: clock off by {skew:.1f} s")
        facts[role] = {"operstate": state.strip(), "clock_skew_s": round(skew, 3)}
    if log:
        log(f"vm: health ok {facts}")
    return facts


# -- the lease ---------------------------------------------------------------
def _mgmt_subnet(token: str) -> ipaddress.IPv4Network:
    """A free /30 of 198.19.0.0/16 for this lease's management veth."""
    used = run(["ip", "-4", "route", "show", "table", "all"], check=False)
    start = int(token, 16) % 16384
    for i in range(16384):
        net = list(MGMT_NET.subnets(new_prefix=30))[(start + i) % 16384]
        if net.network_address.exploded == "198.19.0.0":
            continue
        if str(net) not in used and str(net.network_address + 1) not in used:
            return net
    raise VmError("no free /30 in 198.19.0.0/16 for the management link")


def _sh(argv: list[str], log) -> str:
    return run(argv, log=log, timeout=60)


READY_MARKER = b"rxb-init: ready"        # vm/rxb-init, on the serial console


def _console_ready(console: Path) -> bool:
    """The guest's init says it is ready (sshd started) on its console."""
    try:
        return READY_MARKER in console.read_bytes()
    except FileNotFoundError:
        return False


KVM_STOPS = ("KVM internal error", "emulation failure", "KVM: entry failed")


def _kvm_stuck(qemu_log: Path) -> str:
    """QEMU's line saying KVM stopped the vCPU (it dumps the registers and
    waits forever), or ''."""
    try:
        text = qemu_log.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return next((ln.strip() for ln in text.splitlines() if any(k in ln for k in KVM_STOPS)), "")


class GuestDied(VmError):
    """A guest's QEMU exited while booting."""


def _wait_ready(guests: dict, inventory: dict, run_dir: Path, t_boot: float,
                timeout_s: float, log) -> dict:
    """Until both guests answer SSH; the seconds from QEMU's start to that."""
    ready = {}
    deadline = time.monotonic() + timeout_s
    while len(ready) < len(ROLES):
        for role in ROLES:
            if role in ready:
                continue
            g = guests[role]
            if g["proc"].poll() is not None:
                tail = (run_dir / f"{role}.qemu.log").read_text().strip().splitlines()[-3:]
                raise GuestDied(f"vm {role}: QEMU exited ({g['proc'].returncode}) while "
                                f"booting: {' | '.join(tail) or 'no output'}")
            stuck = _kvm_stuck(run_dir / f"{role}.qemu.log")
            if stuck:
                # QEMU keeps the process, the vCPU is stopped for good
                raise GuestDied(f"vm {role}: the guest stopped while booting: {stuck}")
            if not _console_ready(run_dir / f"{role}.console"):
                continue
            try:
                # one patient attempt, not many short ones: slirp accepts a
                # connection before the guest listens and holds its guest side
                # open after the client gave up, and sshd's MaxStartups then
                # drops every newer one (seen: a guest up, sshd silent)
                run(ssh_argv(inventory[role], "true", timeout=30), timeout=60)
                ready[role] = round(time.monotonic() - t_boot, 2)
                log(f"vm: {role} answers SSH {ready[role]} s after QEMU started")
            except CommandError:
                pass
        if time.monotonic() > deadline:
            raise VmError(f"vm: guests not ready within {timeout_s:g} s "
                          f"(ready: {sorted(ready)}; consoles in {run_dir})")
        if len(ready) < len(ROLES):
            time.sleep(1)
    return ready


def lease_up(cfg: dict, record, log) -> dict:
    """Build or find the image, make the namespace, bridge, taps and the
    management veth, boot both guests, wait until SSH answers; return the
    inventory (workflow/schemas/inventory.schema.yaml)."""
    v = cfg["platforms"]["vm"]
    t_up = time.monotonic()
    # a Nix image is read and validated before anything is made or started
    boots = read_nix_image(cfg)
    if boots is None:
        image = build_image(cfg, log)
        files = {r: {"kernel": str(image / "vmlinuz"), "initrd": str(image / "initrd.img"),
                     "disk": str(image / "rootfs.qcow2"), "append": None} for r in ROLES}
    else:
        image = nix_image_path(cfg)
        files = {r: {k: boots[r][k] for k in ("kernel", "initrd", "disk", "append")}
                 for r in ROLES}
        if not shutil.which("ssh-keygen"):
            raise VmError("platforms.vm.nix_image: the lease's key pair needs ssh-keygen: "
                          "not installed")
        log(f"vm: NixOS images from {image} (boot.json: {boots['sender']['path']}, "
            f"{boots['receiver']['path']})")
    accel = v["accel"]
    accel_note = ""
    if accel == "auto":
        ok, why = probe_kvm(image, v, log, kernel=files["receiver"]["kernel"])
        accel = "kvm" if ok else "tcg"
        accel_note = why
        if not ok:
            log(f"WARNING: vm: KVM unusable ({why}); guests run under TCG (software "
                f"emulation): rates say nothing about the stacks")
    vhost = v["vhost"]
    if vhost == "auto":
        vhost = vhost_usable()
    elif vhost and not vhost_usable():
        raise VmError("platforms.vm.vhost=true but /dev/vhost-net is not usable here")
    vv = {**v, "vhost": bool(vhost)}

    tok = new_token()
    # not "rxb-<...>": older sweeps of rxb-* namespaces elsewhere must not take it
    ns = f"rxbvm-{tok}"
    run_dir = Path(v["run_dir"]) / f"rxbvm-{tok}"
    veth_root, veth_ns = f"rxbv{tok}", "mgmt"
    record.put("token", tok)
    record.add("dirs", str(run_dir))
    run_dir.mkdir(parents=True)
    record.add("netns", ns)
    _sh(["ip", "netns", "add", ns], log)
    nx = ["ip", "netns", "exec", ns]
    _sh(nx + ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
              "net.ipv6.conf.default.disable_ipv6=1"], log)
    _sh(["ip", "-n", ns, "link", "set", "lo", "up"], log)
    _sh(["ip", "-n", ns, "link", "add", "br0", "type", "bridge"], log)
    for i, role in enumerate(ROLES):
        mq = ["multi_queue"] if int(v["queues"]) > 1 else []
        _sh(["ip", "-n", ns, "tuntap", "add", "dev", f"tap{i}", "mode", "tap", *mq], log)
        _sh(["ip", "-n", ns, "link", "set", f"tap{i}", "master", "br0", "mtu", str(v["mtu"]),
             "up"], log)
    _sh(["ip", "-n", ns, "link", "set", "br0", "up"], log)
    net = _mgmt_subnet(tok)
    root_ip, ns_ip = str(net.network_address + 1), str(net.network_address + 2)
    record.add("links", veth_root)
    _sh(["ip", "link", "add", veth_root, "type", "veth", "peer", "name", veth_ns,
         "netns", ns], log)
    _sh(["ip", "addr", "add", f"{root_ip}/30", "dev", veth_root], log)
    _sh(["ip", "link", "set", veth_root, "up"], log)
    _sh(["ip", "-n", ns, "addr", "add", f"{ns_ip}/30", "dev", veth_ns], log)
    _sh(["ip", "-n", ns, "link", "set", veth_ns, "up"], log)

    if boots is None:
        key = run_dir / "id_ed25519"
        shutil.copy(image / "id_ed25519", key)
        os.chmod(key, 0o600)
        fw_cfg = {r: None for r in ROLES}
    else:
        key = lease_key(run_dir, tok)
        fw_cfg = {r: {boots[r]["fw_cfg"]: f"{key}.pub"} for r in ROLES}
    known = run_dir / "known_hosts"
    inventory = {}
    for i, role in enumerate(ROLES):
        inventory[role] = {
            "address": ns_ip, "port": SSH_PORTS[role], "user": "root", "key": str(key),
            "jump": None, "sudo": False, "known_hosts": str(known),
            "test_interface": TEST_IF, "test_ip": TEST_IPS[role], "prefix": TEST_PREFIX,
            "mtu": int(v["mtu"]), "cpus": [0]}
    inventory["receiver"]["napi_cpus"] = [0]
    if int(v["vcpus"]) > 1:
        inventory["receiver"]["cpus"] = [1]
        inventory["receiver"]["napi_cpus"] = [1]

    def boot(accel: str, timeout_s: float) -> tuple[dict, dict]:
        guests, t_boot = {}, time.monotonic()
        for i, role in enumerate(ROLES):
            disk = run_dir / f"{role}.qcow2"
            disk.unlink(missing_ok=True)
            f = files[role]
            _sh(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                 f["disk"], str(disk)], log)
            serial = run_dir / f"{role}.console"
            argv = qemu_argv(vv, name=f"rxb-{role}", accel=accel, kernel=f["kernel"],
                             initrd=f["initrd"], disk=str(disk),
                             append=kernel_append(v, role, str(net), f["append"]),
                             tap=f"tap{i}", test_mac=TEST_MACS[role],
                             mgmt_mac=MGMT_MACS[role],
                             hostfwd=f"tcp:{ns_ip}:{SSH_PORTS[role]}-:22", serial=str(serial),
                             fw_cfg=fw_cfg[role])
            log(f"vm: $ {shlex.join(nx + argv)}")
            out = open(run_dir / f"{role}.qemu.log", "w")
            p = subprocess.Popen(nx + argv, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True)
            out.close()
            record.add("pids", [p.pid, pid_start(p.pid)])
            guests[role] = {"argv": argv, "pid": p.pid, "proc": p}
        try:
            return guests, _wait_ready(guests, inventory, run_dir, t_boot, timeout_s, log)
        except BaseException:
            for g in guests.values():
                if g["proc"].poll() is None:
                    g["proc"].kill()
                    g["proc"].wait()
            raise

    boot_s = float(v["boot_timeout_s"])
    kvm_auto = v["accel"] == "auto" and accel == "kvm"
    try:
        # a nested host's KVM may run the probe's guest and still kill or
        # hang the real one (seen here: "failed to set MSR 0x10a" under the
        # split irqchip; a guest stuck before userspace): under auto, KVM
        # gets kvm_ready_s and TCG the rest
        guests, ready = boot(accel, min(boot_s, float(v["kvm_ready_s"])) if kvm_auto else boot_s)
    except VmError as e:
        if not kvm_auto:
            raise
        accel_note = f"{accel_note}; but the guests' own QEMU line failed under KVM: {e}"
        log(f"WARNING: vm: {e}; booting the guests again under TCG (software emulation): "
            f"rates say nothing about the stacks")
        accel = "tcg"
        (run_dir / "known_hosts").unlink(missing_ok=True)
        guests, ready = boot(accel, boot_s)

    nix_names = {}
    if boots is not None:
        # the Nix image leaves the test NIC unconfigured: what rxb-init does
        # from the kernel command line, done here over SSH
        for role in ROLES:
            nix_names[role] = nix_configure(inventory[role], TEST_MACS[role], int(v["mtu"]),
                                            log=log)
    kernel = ssh(inventory["receiver"], "uname -r").strip()
    for role in ROLES:
        # no default route: a generator must find no way off the test link
        routes = ssh(inventory[role], "ip -4 route show default").strip()
        if routes:
            raise VmError(f"vm {role}: has a default route: {routes}")
        mac = ssh(inventory[role], f"cat /sys/class/net/{TEST_IF}/address").strip()
        inventory[role]["mac"] = mac
    # static neighbours both ways: no ARP on the test link during a cell
    for a, b in (("sender", "receiver"), ("receiver", "sender")):
        ssh(inventory[a], f"ip neigh replace {TEST_IPS[b]} lladdr {TEST_MACS[b]} "
                          f"dev {TEST_IF} nud permanent", log=log)
    health(inventory, log)
    image_facts = {}
    if boots is not None:
        image_facts = {r: nix_image_facts(inventory[r]) for r in ROLES}
    inventory["provenance"] = {
        "platform": "vm", "accel": accel, "accel_probe": accel_note,
        "vhost": bool(vhost), "guest_kernel": kernel, "image": str(image),
        "image_kind": "debian" if boots is None else "nix",
        "image_hash": image.name if boots is None else nix_image_hash(boots),
        "image_packages": ((image / "versions.txt").read_text().splitlines() if boots is None
                           else _nix_packages(image_facts)),
        "qemu": run(["qemu-system-x86_64", "-version"]).splitlines()[0],
        "qemu_command_lines": {r: shlex.join(guests[r]["argv"]) for r in ROLES},
        "options": {k: v[k] for k in ("machine", "kernel_irqchip", "cpu", "vcpus",
                                      "memory_mb", "iommu", "mq", "queues", "vectors",
                                      "iommu_platform", "disable_legacy", "mtu")},
        "boot_to_ready_s": ready,
        "lease_up_s": round(time.monotonic() - t_up, 2),
        "netns": ns, "mgmt": {"root": f"{veth_root} {root_ip}/30", "ns": f"{ns_ip}/30"},
    }
    if boots is not None:
        inventory["provenance"]["nix_image"] = {
            "path": str(image), "store_path": os.path.realpath(image),
            **{r: {"dir": boots[r]["dir"], "boot_json": boots[r]["content"],
                   "test_nic_name_in_image": nix_names[r], "image_json": image_facts[r]}
               for r in ROLES}}
    record.put("inventory", inventory)
    log(f"vm: lease up in {inventory['provenance']['lease_up_s']} s "
        f"(boot to ready {ready}, accel {accel})")
    return inventory


def _nix_packages(facts: dict) -> list[str]:
    """A Nix image's tools as "name store-path" lines (its image.json)."""
    lines = set()
    for f in facts.values():
        for name, path in ((f or {}).get("tools") or {}).items():
            lines.add(f"{name} {path}")
    return sorted(lines)


def lease_down(record, log) -> None:
    """Kill the guests, delete the namespace (taps, bridge, the veth's peer),
    the root-namespace veth and the overlays: from the record alone."""
    res = record.data if hasattr(record, "data") else record
    for pid, start in res.get("pids", []):
        if alive(pid, start):
            kill_pid(pid, start)
            log(f"vm: killed QEMU {pid}")
    for pid, start in res.get("pids", []):
        for _ in range(100):
            if not alive(pid, start):
                break
            time.sleep(0.05)
    present = set(netns_list())
    for ns in res.get("netns", []):
        if ns in present:
            delete_netns(ns)
            log(f"vm: deleted netns {ns}")
    for link in res.get("links", []):
        if run(["ip", "link", "show", "dev", link], check=False).strip():
            run(["ip", "link", "del", "dev", link], check=False)
            log(f"vm: deleted link {link}")
    for d in res.get("dirs", []):
        if os.path.isdir(d):
            shutil.rmtree(d, ignore_errors=True)
            log(f"vm: removed {d}")


# -- the cells: the ssh platform's testbed on the lease's guests ------------------
GUEST_NATIVE_DIR = "/opt/rxbench/native"     # vm/build-image.sh builds native/ there
# the runner's extra time per remote step (TestbedBase.slack_s), by accelerator:
# under TCG here an rxb-counters start over SSH took 6-15 s, a tool's ready 3-5 s
SLACK_S = {"kvm": 10.0, "tcg": 60.0}


def ssh_inventory(inventory: dict) -> dict:
    """The lease's inventory as the ssh platform takes it: each guest takes
    the image's own build of native/ when its sources are the checkout's."""
    inv = {k: v for k, v in inventory.items()}
    for role in ROLES:
        inv[role] = {**inventory[role], "prebuilt_native": GUEST_NATIVE_DIR}
    return inv


class VmTestbed(LeasedTestbed):
    """The vm platform's cells: the lease (lease_up above, once per campaign)
    gives the guests' inventory, each cell health-checks both guests (SSH
    answers, test NIC up with its address, clock) and then runs on the ssh
    platform's SshTestbed like on any two hosts. Provenance: the lease's
    (accel, guest kernel, QEMU command lines, ...) at the top of
    provenance.platform, as for g5k."""

    name = "vm"

    def __init__(self, cfg: dict, log, **kw):
        from .. import lease as _lease
        from .ssh import SshTestbed
        self.cfg, self.log = cfg, log
        self.inventory = _lease.ensure("vm", cfg, log)
        self.health: dict = {}
        self.inner = SshTestbed(cfg, log, ssh_inventory(self.inventory), **kw)
        # under TCG a process start or a snapshot over SSH takes seconds
        accel = self.inventory.get("provenance", {}).get("accel")
        self.slack_s = SLACK_S.get(accel, SLACK_S["tcg"])

    def connect(self) -> None:
        """Both guests reached (each one's first contact sweeps what dead
        cells left there: a NIC a SIGKILLed DPDK cell kept bound to vfio-pci
        is given back to virtio-net), then health-checked."""
        self.inner.connect()
        self.health = health(self.inventory, self.log)

    def provenance(self) -> dict:
        out = self.inner.provenance()
        out["name"] = self.name
        out["health"] = self.health
        return out


def clean_guests(cfg: dict, log) -> list[str]:
    """`rxbench clean` for the vm platform: a dead lease is released by
    lease.clean (its guests with it); the guests of a live lease of this
    checkout are swept like any ssh hosts (what killed cells left there: a
    NIC still bound to DPDK, tools, XDP programs)."""
    from .. import lease as _lease
    from .ssh import clean_hosts
    data = _lease._load(_lease.state_path("vm"))
    if not data or data.get("status") != "ready" or not data.get("inventory"):
        return []
    return clean_hosts({**cfg, "inventory": ssh_inventory(data["inventory"])}, log)
