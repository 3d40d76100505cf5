"""The vm platform booting the flake's NixOS images (platforms.vm.nix_image).

Unit: the boot.json that nix/vm-image.nix writes (evaluated here with a stub
nixpkgs: its bootJson and the rxbenchVm directory it lands in) passes the
platform's validation; each malformed boot.json is refused with one error
naming the file and the key, before lease_up makes or starts anything; the
QEMU line takes kernel, initrd, disk and kernel arguments from boot.json and
hands the lease's key over by fw_cfg.

Integration (root, QEMU, the Debian guest image): a boot.json directory made
from the Debian image (whose rxb-init honours the same fw_cfg key and, given
no rxb.test_ip, leaves the test NIC unaddressed, as the NixOS image does)
is booted by lease_up's Nix path: the guests take the lease's own key (the
image's baked-in key no longer works), the test NIC is configured over SSH
(address, MTU, up, static neighbours, no default route) and carries packets.
Nothing Nix is built: Nix cannot build here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

from rxbench.config import resolve
from rxbench.platforms import vm
from rxbench.state import netns_list

pytestmark = pytest.mark.unit     # the boot is guests, the namespace test integration

NIX = shutil.which("nix-instantiate")
QCOW2_MAGIC = b"QFI\xfb"

# just enough of nixpkgs and of a NixOS config for vm-image.nix's own let
# bindings (bootJson, the rxbenchVm directory) to evaluate
STUB = r"""
let
  lib = { mkDefault = x: x; mkIf = c: x: x; concatStringsSep = builtins.concatStringsSep; };
  pkgs = {
    stdenv.hostPlatform.isx86 = true;
    writeText = name: text: text;
    runCommand = name: env: script: { inherit script; outPath = "/nix/store/ffff-${name}"; };
    coreutils = "/nix/store/c"; kmod = "/nix/store/k"; gnused = "/nix/store/s";
    iproute2 = "/nix/store/i";
  };
  config = {
    system.build.toplevel = "/nix/store/aaaa-nixos-system";
    system.build.initialRamdisk = "/nix/store/bbbb-initrd";
    system.boot.loader = { kernelFile = "bzImage"; initrdFile = "initrd"; };
    boot.kernelPackages.kernel = "/nix/store/cccc-linux";
    boot.kernelParams = [ "hugepagesz=2M" "hugepages=128" "vfio.enable_unsafe_noiommu_mode=1" "console=ttyS0" "loglevel=4" ];
    rxbench.role = "ROLE";
  };
  pins = builtins.fromJSON (builtins.readFile ./versions.json);
  rxbenchPkgs.rxbench-native = { outPath = "/nix/store/eeee-rxbench-native"; nativeDir = "libexec/rxbench"; };
  m = import ./nix/vm-image.nix { inherit config lib pkgs pins rxbenchPkgs; modulesPath = "MODULES"; };
in { vm = m.system.build.rxbenchVm.script; nics = m.systemd.services.rxbench-nics.script;
     tmpfiles = m.systemd.tmpfiles.rules; ready = m.systemd.services.rxbench-ready.script; }
"""


def nix_vm_image(tmp_path, role: str) -> dict:
    """vm-image.nix evaluated with the stub: boot.json's content and what
    else the platform relies on."""
    mods = tmp_path / "nixpkgs" / "nixos" / "modules"
    mods.mkdir(parents=True, exist_ok=True)
    (mods.parent / "lib").mkdir(exist_ok=True)
    (mods.parent / "lib" / "make-disk-image.nix").write_text('args: "/nix/store/dddd-disk"\n')
    expr = STUB.replace("ROLE", role).replace("MODULES", str(mods))
    p = subprocess.run([NIX, "--eval", "--strict", "--json", "-E", expr], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    m = re.search(r"ln -s (\{.*\}) \$out/boot\.json", out["vm"])
    assert m, out["vm"]
    out["boot"] = json.loads(m.group(1))
    return out


def fake_result(tmp_path, boot: dict | None = None, roles=vm.ROLES) -> "os.PathLike":
    """A `nix build .#vm-images`-shaped directory: per role kernel, initrd,
    a real (empty) qcow2 disk and boot.json."""
    res = tmp_path / "result"
    for role in roles:
        d = res / role
        d.mkdir(parents=True, exist_ok=True)
        (d / "kernel").write_bytes(b"\0" * 16)
        (d / "initrd").write_bytes(b"\0" * 16)
        (d / "disk.qcow2").write_bytes(QCOW2_MAGIC + b"\0" * 60)
        b = dict(boot or good_boot(role))
        b["role"] = b.get("role", role) if boot else role
        (d / "boot.json").write_text(json.dumps(b))
    return res


def good_boot(role: str) -> dict:
    return {"kernel": "kernel", "initrd": "initrd", "disk": "disk.qcow2",
            "append": "root=LABEL=nixos init=/nix/store/aaaa-nixos-system/init console=ttyS0",
            "role": role,
            "ssh_key": {"fw_cfg": "opt/rxbench/authorized_keys",
                        "cmdline": "rxbench.authorized_key", "user": "root"},
            "nics": [{"name": "mgmt0", "use": "management", "model": "virtio-net-pci",
                      "match": "rxb.mgmt_mac", "dhcp": False},
                     {"name": "test0", "use": "test", "model": "virtio-net-pci",
                      "match": "rxb.test_mac", "dhcp": False}]}


def _cfg(path) -> dict:
    """A vm configuration naming `path`, set after resolve(): resolve itself
    refuses a bad nix_image up front (rxbench.config.probe_tools)."""
    cfg = resolve({"platform": "vm"})
    cfg["platforms"]["vm"]["nix_image"] = str(path)
    return cfg


# -- the .nix side and the platform agree ---------------------------------------
@pytest.mark.skipif(NIX is None, reason="nix-instantiate is not installed")
@pytest.mark.parametrize("role", vm.ROLES)
def test_vm_image_nix_writes_what_the_platform_reads(tmp_path, role):
    ev = nix_vm_image(tmp_path, role)
    boot = ev["boot"]
    assert boot["role"] == role
    assert "init=/nix/store/aaaa-nixos-system/init" in boot["append"].split()
    # its files, as rxbenchVm links them, pass the platform's validation
    res = tmp_path / "result"
    for r in vm.ROLES:
        d = res / r
        d.mkdir(parents=True)
        for f in ("kernel", "initrd"):
            (d / boot[f]).write_bytes(b"\0")
        (d / boot["disk"]).write_bytes(QCOW2_MAGIC + b"\0" * 60)
        (d / "boot.json").write_text(json.dumps({**boot, "role": r}))
    b = vm.read_boot_json(res, role)
    assert b["nics"] == {"management": "mgmt0", "test": vm.TEST_IF}
    assert b["fw_cfg"] == "opt/rxbench/authorized_keys"
    # the NICs by the MACs the platform passes, the tools where vmcell calls them
    for arg in ("rxb.mgmt_mac", "rxb.test_mac", "rxb.mgmt_route"):
        assert arg in ev["nics"]
    assert "dhclient" not in ev["nics"] and "default" not in ev["nics"].replace(
        "never a default one", "")
    # the console line the platform waits for before it tries SSH
    marker = getattr(vm, "READY_MARKER", b"rxb-init: ready").decode()
    assert marker in ev["ready"] and "/dev/ttyS0" in ev["ready"]
    assert marker in (ROOT / "vm" / "rxb-init").read_text()
    # native/'s sources and their build where the platform's deploy looks
    # for a prebuilt copy (the Debian image's /opt/rxbench/native)
    assert f"L+ {vm.GUEST_NATIVE_DIR} - - - - /nix/store/ffff-rxbench-native-tree" \
        in ev["tmpfiles"]
    tree = (ROOT / "nix" / "vm-image.nix").read_text()
    assert "ln -s ${rxbenchPkgs.rxbench-native}/${rxbenchPkgs.rxbench-native.nativeDir} " \
        "$out/build" in tree and "cp -r ${../native}/. $out/" in tree
    # the image's own arguments leave the platform's to the platform
    a = vm.kernel_append(_cfg(res)["platforms"]["vm"], role, "198.19.0.4/30", b["append"])
    assert f"rxb.test_mac={vm.TEST_MACS[role]}" in a and "rxb.test_ip" not in a


# -- boot.json validation ---------------------------------------------------------
def test_good_boot_json_is_read(tmp_path):
    res = fake_result(tmp_path)
    boots = vm.read_nix_image(_cfg(res))
    assert set(boots) == set(vm.ROLES)
    s = boots["sender"]
    assert s["kernel"] == str(res / "sender" / "kernel")
    assert s["disk"] == str(res / "sender" / "disk.qcow2")
    assert s["content"]["role"] == "sender"
    assert vm.read_nix_image(resolve({"platform": "vm"})) is None
    # one role for both guests is fine too
    res2 = fake_result(tmp_path / "any", {**good_boot("x"), "role": "any"})
    assert vm.read_nix_image(_cfg(res2))["receiver"]["content"]["role"] == "any"
    assert len(vm.nix_image_hash(boots)) == 16


def _without(d: dict, key: str) -> dict:
    return {k: v for k, v in d.items() if k != key}


BAD = [
    ("kernel", lambda b: _without(b, "kernel"), "missing"),
    ("kernel", lambda b: {**b, "kernel": "bzImage"}, "bzImage does not exist"),
    ("disk", lambda b: {**b, "disk": "kernel"}, "not a qcow2 image"),
    ("append", lambda b: {**b, "append": 3}, "not a string"),
    ("append", lambda b: {**b, "append": b["append"] + " rxb.test_ip=1.2.3.4/30"},
     "which the platform sets itself"),
    ("append", lambda b: {**b, "append": "console=ttyS0"}, "has no init="),
    ("role", lambda b: {**b, "role": "receiver"}, "not 'sender' or 'any'"),
    ("ssh_key", lambda b: _without(b, "ssh_key"), "missing"),
    ("ssh_key.fw_cfg", lambda b: {**b, "ssh_key": {"fw_cfg": "etc/keys"}}, "fw_cfg name"),
    ("ssh_key.user", lambda b: {**b, "ssh_key": {**b["ssh_key"], "user": "nixos"}}, "root"),
    ("nics", lambda b: {**b, "nics": b["nics"][:1]}, "one 'management' and one 'test'"),
    ("nics[1].dhcp", lambda b: {**b, "nics": [b["nics"][0], {**b["nics"][1], "dhcp": True}]},
     "unconfigured"),
    ("nics[0].match", lambda b: {**b, "nics": [{**b["nics"][0], "match": "eth0"},
                                               b["nics"][1]]}, "rxb.mgmt_mac"),
]


@pytest.mark.parametrize("key,mangle,why", BAD, ids=[f"{k}-{i}" for i, (k, _, _) in
                                                      enumerate(BAD)])
def test_bad_boot_json_is_one_error_naming_file_and_key(tmp_path, key, mangle, why):
    res = fake_result(tmp_path)
    f = res / "sender" / "boot.json"
    f.write_text(json.dumps(mangle(json.loads(f.read_text()))))
    with pytest.raises(vm.VmError) as e:
        vm.read_nix_image(_cfg(res))
    msg = str(e.value)
    assert "\n" not in msg
    assert f"{f}: key {key}:" in msg and why in msg, msg


def test_missing_or_unreadable_boot_json(tmp_path):
    res = fake_result(tmp_path)
    (res / "receiver" / "boot.json").unlink()
    with pytest.raises(vm.VmError, match=r"receiver/boot.json: does not exist .*nix build "
                                         r"\.#vm-images"):
        vm.read_nix_image(_cfg(res))
    (res / "receiver" / "boot.json").write_text("{not json")
    with pytest.raises(vm.VmError, match=r"receiver/boot.json: not valid JSON"):
        vm.read_nix_image(_cfg(res))
    (res / "receiver" / "boot.json").write_text("[1]")
    with pytest.raises(vm.VmError, match=r"receiver/boot.json: not a JSON object"):
        vm.read_nix_image(_cfg(res))
    with pytest.raises(vm.VmError, match="is not a directory"):
        vm.read_nix_image(_cfg(tmp_path / "nowhere"))


class _Record:
    def __init__(self):
        self.calls = []

    def add(self, *a):
        self.calls.append(a)

    def put(self, *a):
        self.calls.append(a)


def test_bad_nix_image_starts_nothing(tmp_path):
    """lease_up refuses a bad boot.json before it writes, makes or boots
    anything (no record entry, no namespace)."""
    res = fake_result(tmp_path)
    (res / "sender" / "boot.json").write_text('{"kernel": "kernel"}')
    rec, logged = _Record(), []
    before = set(netns_list())
    with pytest.raises(vm.VmError, match="sender/boot.json: key initrd: missing"):
        vm.lease_up(_cfg(res), rec, logged.append)
    assert rec.calls == [] and set(netns_list()) == before


# -- the QEMU line -------------------------------------------------------------------
def test_qemu_line_from_boot_json_with_the_key_by_fw_cfg(tmp_path):
    res = fake_result(tmp_path)
    cfg = _cfg(res)
    v = {**cfg["platforms"]["vm"], "vhost": False}
    b = vm.read_nix_image(cfg)["receiver"]
    argv = vm.qemu_argv(v, name="rxb-receiver", accel="tcg", kernel=b["kernel"],
                        initrd=b["initrd"], disk="/run/x/receiver.qcow2",
                        append=vm.kernel_append(v, "receiver", "198.19.0.4/30", b["append"]),
                        tap="tap1", test_mac=vm.TEST_MACS["receiver"],
                        mgmt_mac=vm.MGMT_MACS["receiver"], hostfwd="tcp:198.19.0.6:2202-:22",
                        serial="S", fw_cfg={b["fw_cfg"]: "/run/x/id_ed25519.pub"})
    assert argv[argv.index("-kernel") + 1] == str(res / "receiver" / "kernel")
    assert argv[argv.index("-initrd") + 1] == str(res / "receiver" / "initrd")
    assert argv[argv.index("-fw_cfg") + 1] == \
        "name=opt/rxbench/authorized_keys,file=/run/x/id_ed25519.pub"
    assert "file=/run/x/receiver.qcow2,if=virtio,format=qcow2,cache=unsafe" in argv
    append = argv[argv.index("-append") + 1].split()
    # the image's own arguments first, then the platform's; the test NIC's
    # address is not among them (it is configured over SSH)
    assert append[:3] == ["root=LABEL=nixos", "init=/nix/store/aaaa-nixos-system/init",
                          "console=ttyS0"]
    for a in ("ipv6.disable=1", "panic=-1", "rxb.mgmt_route=198.19.0.4/30",
              f"rxb.test_mac={vm.TEST_MACS['receiver']}",
              f"rxb.mgmt_mac={vm.MGMT_MACS['receiver']}", "intel_iommu=on"):
        assert a in append
    assert not any(a.startswith(("rxb.test_ip", "rxb.mtu", "init=/sbin")) for a in append)
    # the Debian image's line is unchanged: its init addresses the test NIC
    deb = vm.kernel_append(v, "receiver", "198.19.0.4/30")
    assert "rxb.test_ip=198.18.0.2/30" in deb and "init=/sbin/rxb-init" in deb
    with pytest.raises(vm.VmError, match="comma"):
        vm.qemu_argv(v, name="g", accel="tcg", kernel="K", initrd="I", disk="D", append="",
                     tap="t", test_mac="m", mgmt_mac="m", hostfwd="h", serial="S",
                     fw_cfg={"opt/x": "/a,b"})


# -- for real: lease_up's Nix path on a boot.json dir made of the Debian image -----
def _why_no_boot() -> str | None:
    if os.geteuid() != 0:
        return "needs root (namespaces, taps, QEMU)"
    for tool in ("qemu-system-x86_64", "qemu-img", "ssh", "ssh-keygen", "debootstrap",
                 "mkfs.ext4"):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    if os.environ.get("RXBENCH_SKIP_VM"):
        return "RXBENCH_SKIP_VM is set"
    init = (ROOT / "vm" / "rxb-init").read_text()
    if "opt/rxbench/authorized_keys" not in init:
        return "vm/rxb-init does not read the fw_cfg key: the Debian image cannot stand in"
    return None


NO_BOOT = _why_no_boot()


def debian_as_nix(image, dst) -> "os.PathLike":
    """The Debian image as a `nix build .#vm-images` result: per role the
    kernel, initrd and disk (links into the cache) and a boot.json."""
    for role in vm.ROLES:
        d = dst / role
        d.mkdir(parents=True)
        os.symlink(image / "vmlinuz", d / "kernel")
        os.symlink(image / "initrd.img", d / "initrd")
        os.symlink(image / "rootfs.qcow2", d / "disk.qcow2")
        (d / "boot.json").write_text(json.dumps(
            {**good_boot(role), "append": "console=ttyS0 root=/dev/vda rw init=/sbin/rxb-init"}))
    return dst


@pytest.mark.guests
@pytest.mark.skipif(NO_BOOT is not None, reason=NO_BOOT or "")
# its own guests, not tests/test_vm.py's shared lease: this boots the Nix
# path (kernel, initrd and disk from boot.json, the key by fw_cfg, the test
# NIC configured over SSH), which that lease's Debian guests never take.
# As tests/test_vm.py: not under the local testbed's lock (the guests live in
# a namespace of their own that no local-testbed leftover check looks at)
def test_lease_up_boots_a_boot_json_image_and_configures_the_test_nic(tmp_path):
    from rxbench.lease import LeaseRecord
    from rxbench.util import Log
    log = Log(echo=True)
    image = vm.build_image(resolve({"platform": "vm"}), log)
    res = debian_as_nix(image, tmp_path / "result")
    cfg = _cfg(res)
    # the Nix path does not depend on the accelerator; KVM on a nested host
    # passes the probe and then hangs or dies ("KVM internal error ...
    # emulation failure", seen here): TCG unless RXBENCH_VM_ACCEL says otherwise
    cfg["platforms"]["vm"]["accel"] = os.environ.get("RXBENCH_VM_ACCEL", "tcg")
    # boot to SSH took 142-446 s here under TCG on 2 shared, loaded CPUs
    cfg["platforms"]["vm"]["boot_timeout_s"] = 1200
    # what is tested is the boot.json path, not multi-queue: one vCPU and one
    # queue pair (a 4-vCPU TCG guest was seen stuck bringing up its CPUs for
    # the whole bound on this 2-CPU host)
    cfg["platforms"]["vm"].update(vcpus=1, queues=1, rss=False)
    record = LeaseRecord(tmp_path / "lease.json", {})
    try:
        inv = vm.lease_up(cfg, record, log)
        prov = inv["provenance"]
        assert prov["image_kind"] == "nix" and prov["image"] == str(res)
        for role in vm.ROLES:
            assert prov["nix_image"][role]["boot_json"] == json.loads(
                (res / role / "boot.json").read_text())
            line = prov["qemu_command_lines"][role]
            assert "-fw_cfg name=opt/rxbench/authorized_keys,file=" in line
            assert "rxb.test_ip" not in line
            assert f"-kernel {os.path.realpath(res / role / 'kernel')} " in line
        # the lease's own key, not the image's: the fw_cfg key replaced it
        key = inv["sender"]["key"]
        assert open(key + ".pub").read() != (image / "id_ed25519.pub").read_text()
        old = vm.ssh_argv({**inv["sender"], "key": str(image / "id_ed25519")}, "true")
        assert subprocess.run(old, capture_output=True, timeout=60).returncode != 0
        # configured over SSH: address, MTU, up, static neighbour, no default route
        for role, peer in (("sender", "receiver"), ("receiver", "sender")):
            out = vm.ssh(inv[role], f"ip -o -4 addr show dev {vm.TEST_IF}; "
                                    f"cat /sys/class/net/{vm.TEST_IF}/mtu; "
                                    f"ip neigh show {vm.TEST_IPS[peer]} dev {vm.TEST_IF}; "
                                    "ip -4 route show default")
            assert f"{vm.TEST_IPS[role]}/30" in out, out
            assert "\n1500\n" in out and "PERMANENT" in out and " via " not in out, out
        # and the link carries packets: UDP datagrams from the sender guest to
        # the receiver guest on the test link (inside the lease's bridge;
        # bounded: 10 datagrams, the listener 120 s); the image has no ping
        rx_ip = vm.TEST_IPS["receiver"]
        listen = subprocess.Popen(vm.ssh_argv(inv["receiver"], (
            "timeout 120 python3 -c \"import socket; s = socket.socket(2, 2); "
            f"s.bind(('{rx_ip}', 9999)); s.settimeout(110); print('bound', flush=True); "
            "print(s.recvfrom(64)[0].decode())\""), timeout=30),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            first = listen.stdout.readline()
            assert first.strip() == "bound", first
            vm.ssh(inv["sender"], (
                "python3 -c \"import socket, time; s = socket.socket(2, 2)\n"
                "for _ in range(10): s.sendto(b'rxb-nix', "
                f"('{rx_ip}', 9999)); time.sleep(0.5)\""), timeout=120)
            got, _ = listen.communicate(timeout=150)
        finally:
            if listen.poll() is None:
                listen.kill()
                listen.wait()
        assert "rxb-nix" in got, got
    except BaseException:
        # the guests' consoles, before lease_down removes them
        for d in record.get("dirs", []):
            for f in sorted(Path(d).glob("*.console")) + sorted(Path(d).glob("*.qemu.log")):
                print(f"== {f}", *f.read_text(errors="replace").splitlines()[-40:], sep="\n")
        raise
    finally:
        vm.lease_down(record, log)
    # what this lease made is gone (other checkouts' guests may be up meanwhile)
    res_ = record.data
    assert res_["netns"] and not set(res_["netns"]) & set(netns_list())
    for link in res_["links"]:
        assert not subprocess.run(["ip", "link", "show", "dev", link], capture_output=True,
                                  text=True).stdout.strip()
    assert not any(os.path.exists(f"/proc/{pid}") and vm.lease.alive(pid, start)
                   for pid, start in res_["pids"])
    assert not any(os.path.exists(d) for d in res_["dirs"])


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a network namespace)")
def test_nix_configure_names_and_addresses_the_test_nic(monkeypatch):
    """The script lease_up runs over SSH, run for real in a namespace of our
    own: the NIC with the test MAC (named eth1 by the image) becomes test0
    with the MTU and address, up; a missing MAC is one clear error."""
    from rxbench.state import new_token
    ns = f"rxbnix-{new_token()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        ip = ["ip", "-n", ns]
        subprocess.run(ip + ["link", "add", "eth1", "address", vm.TEST_MACS["sender"],
                             "type", "veth", "peer", "name", "eth0"], check=True)
        monkeypatch.setattr(vm.guests, "ssh", lambda inv, cmd, timeout=30, check=True, log=None:
                            vm.guests.run(["ip", "netns", "exec", ns, "sh", "-c", cmd],
                                   timeout=timeout, check=check))
        inv = {"test_ip": vm.TEST_IPS["sender"], "prefix": vm.TEST_PREFIX}
        assert vm.nix_configure(inv, vm.TEST_MACS["sender"], 1400) == "eth1"
        out = subprocess.run(ip + ["-o", "addr", "show", "dev", vm.TEST_IF],
                             capture_output=True, text=True, check=True).stdout
        link = subprocess.run(ip + ["-o", "link", "show", "dev", vm.TEST_IF],
                              capture_output=True, text=True, check=True).stdout
        assert "198.18.0.1/30" in out and "mtu 1400" in link and ",UP" in link, (out, link)
        # again (already named test0): idempotent
        assert vm.nix_configure(inv, vm.TEST_MACS["sender"], 1500) == vm.TEST_IF
        with pytest.raises(vm.VmError, match="no NIC with MAC 52:54:00:18:00:02"):
            vm.nix_configure(inv, vm.TEST_MACS["receiver"], 1500)
    finally:
        subprocess.run(["ip", "netns", "del", ns])
