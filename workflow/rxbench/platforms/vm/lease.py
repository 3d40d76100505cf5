"""The vm platform's lease (rxbench.lease): lease_up builds or finds the
image, makes the namespace with the bridge, the taps and the management
veth, boots both guests and checks them; lease_down releases all of it
from the record alone (after a SIGKILL of the owner too)."""

from __future__ import annotations

import ipaddress
import os
import shlex
import shutil
import time
from pathlib import Path

from ...state import alive, delete_netns, kill_pid, netns_list, new_token
from ...util import run
from .common import (MGMT_NET, ROLES, SSH_PORTS, TEST_IF, TEST_IPS, TEST_MACS, TEST_PREFIX,
                     VmError, ssh)
from .guests import (boot_guests, health, nix_configure, nix_image_facts, probe_kvm,
                     vhost_usable)
from .image import build_image, nix_image_hash, nix_image_path, read_nix_image


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


def lease_key(run_dir: Path, token: str) -> Path:
    """A key pair for this lease alone (the public half goes to the guests by
    fw_cfg); it lives in the lease's run dir, removed with it."""
    key = run_dir / "id_ed25519"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"rxbench-lease-{token}",
         "-f", str(key)], timeout=30)
    os.chmod(key, 0o600)
    return key



def _image_files(cfg: dict, log) -> tuple[Path, dict | None, dict]:
    """The image (built or found; a Nix image read and validated before
    anything is made or started), its boot.json files (Nix) and each
    role's kernel, initrd, disk and image kernel arguments."""
    boots = read_nix_image(cfg)
    if boots is None:
        image = build_image(cfg, log)
        files = {r: {"kernel": str(image / "vmlinuz"), "initrd": str(image / "initrd.img"),
                     "disk": str(image / "rootfs.qcow2"), "append": None} for r in ROLES}
        return image, None, files
    image = nix_image_path(cfg)
    files = {r: {k: boots[r][k] for k in ("kernel", "initrd", "disk", "append")} for r in ROLES}
    if not shutil.which("ssh-keygen"):
        raise VmError("platforms.vm.nix_image: the lease's key pair needs ssh-keygen: "
                      "not installed")
    log(f"vm: NixOS images from {image} (boot.json: {boots['sender']['path']}, "
        f"{boots['receiver']['path']})")
    return image, boots, files


def _accel(v: dict, image: Path, kernel: str, log) -> tuple[str, str]:
    """The accelerator (auto: KVM if a guest really runs under it) and why."""
    if v["accel"] != "auto":
        return v["accel"], ""
    ok, why = probe_kvm(image, v, log, kernel=kernel)
    if not ok:
        log(f"WARNING: vm: KVM unusable ({why}); guests run under TCG (software "
            f"emulation): rates say nothing about the stacks")
    return ("kvm" if ok else "tcg"), why


def _network(v: dict, tok: str, record, log) -> dict:
    """The lease's namespace (written to the record first): bridge br0 with
    the guests' test taps, and the management veth to the root namespace."""
    ns = f"rxbvm-{tok}"
    veth_root, veth_ns = f"rxbv{tok}", "mgmt"
    record.add("netns", ns)
    _sh(["ip", "netns", "add", ns], log)
    _sh(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
         "net.ipv6.conf.default.disable_ipv6=1"], log)
    _sh(["ip", "-n", ns, "link", "set", "lo", "up"], log)
    _sh(["ip", "-n", ns, "link", "add", "br0", "type", "bridge"], log)
    for i, _role in enumerate(ROLES):
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
    return {"ns": ns, "net": str(net), "ns_ip": ns_ip, "root_ip": root_ip,
            "veth_root": veth_root}


def guest_inventory(v: dict, ns_ip: str, key: Path, known: Path) -> dict:
    """Each guest as the ssh platform's inventory names a host."""
    inventory = {}
    for role in ROLES:
        inventory[role] = {
            "address": ns_ip, "port": SSH_PORTS[role], "user": "root", "key": str(key),
            "jump": None, "sudo": False, "known_hosts": str(known),
            "test_interface": TEST_IF, "test_ip": TEST_IPS[role], "prefix": TEST_PREFIX,
            "mtu": int(v["mtu"]), "cpus": [0]}
    inventory["receiver"]["napi_cpus"] = [0]
    if int(v["vcpus"]) > 1:
        # CPU 0 left to the guest's own work (sshd, the counters' reader)
        rest = list(range(1, int(v["vcpus"])))
        for role in ROLES:
            inventory[role]["cpus"] = rest
        inventory["receiver"]["napi_cpus"] = rest
    return inventory


def _configure(v: dict, inventory: dict, boots: dict | None, log) -> dict:
    """Once both answer: a Nix image's test NIC configured (what rxb-init
    does for the Debian image), no default route on either, each one's
    test MAC read, static neighbours both ways. Returns the names a Nix
    image had given the test NIC."""
    nix_names = {}
    if boots is not None:
        for role in ROLES:
            nix_names[role] = nix_configure(inventory[role], TEST_MACS[role], int(v["mtu"]),
                                            log=log)
    for role in ROLES:
        # no default route: a generator must find no way off the test link
        routes = ssh(inventory[role], "ip -4 route show default").strip()
        if routes:
            raise VmError(f"vm {role}: has a default route: {routes}")
        inventory[role]["mac"] = ssh(inventory[role],
                                     f"cat /sys/class/net/{TEST_IF}/address").strip()
    # static neighbours both ways: no ARP on the test link during a cell
    for a, b in (("sender", "receiver"), ("receiver", "sender")):
        ssh(inventory[a], f"ip neigh replace {TEST_IPS[b]} lladdr {TEST_MACS[b]} "
                          f"dev {TEST_IF} nud permanent", log=log)
    return nix_names


def lease_up(cfg: dict, record, log) -> dict:
    """Build or find the image, make the namespace, bridge, taps and the
    management veth, boot both guests, wait until SSH answers; return the
    inventory (workflow/schemas/inventory.schema.yaml)."""
    v = cfg["platforms"]["vm"]
    t_up = time.monotonic()
    image, boots, files = _image_files(cfg, log)
    accel, accel_note = _accel(v, image, files["receiver"]["kernel"], log)
    vhost = v["vhost"]
    if vhost == "auto":
        vhost = vhost_usable()
    elif vhost and not vhost_usable():
        raise VmError("platforms.vm.vhost=true but /dev/vhost-net is not usable here")
    vv = {**v, "vhost": bool(vhost)}

    tok = new_token()
    # not "rxb-<...>": older sweeps of rxb-* namespaces elsewhere must not take it
    run_dir = Path(v["run_dir"]) / f"rxbvm-{tok}"
    record.put("token", tok)
    record.add("dirs", str(run_dir))
    run_dir.mkdir(parents=True)
    mgmt = _network(v, tok, record, log)

    if boots is None:
        key = run_dir / "id_ed25519"
        shutil.copy(image / "id_ed25519", key)
        os.chmod(key, 0o600)
        fw_cfg = {r: None for r in ROLES}
    else:
        key = lease_key(run_dir, tok)
        fw_cfg = {r: {boots[r]["fw_cfg"]: f"{key}.pub"} for r in ROLES}
    inventory = guest_inventory(v, mgmt["ns_ip"], key, run_dir / "known_hosts")

    boot_s = float(v["boot_timeout_s"])
    kvm_auto = v["accel"] == "auto" and accel == "kvm"
    boot = lambda accel, timeout_s: boot_guests(   # noqa: E731
        vv, files, inventory, run_dir, mgmt["ns"], mgmt, accel, fw_cfg, timeout_s, record, log)
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

    nix_names = _configure(v, inventory, boots, log)
    kernel = ssh(inventory["receiver"], "uname -r").strip()
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
                                      "iommu_platform", "disable_legacy", "rss", "speed_mbps",
                                      "mtu") if k in v},
        "boot_to_ready_s": ready,
        "lease_up_s": round(time.monotonic() - t_up, 2),
        "netns": mgmt["ns"],
        "mgmt": {"root": f"{mgmt['veth_root']} {mgmt['root_ip']}/30", "ns": f"{mgmt['ns_ip']}/30"},
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

