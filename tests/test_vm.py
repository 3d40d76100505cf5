"""The vm platform: the QEMU command line from named options (unit), and a
real smoke run under whatever accelerator the machine gives (TCG here):
image built or reused from the cache, both guests booted by the lease, one
real cell per stack through the host-generic runner on the ssh platform's
testbed (Linux pktgen in the sender guest, DPDK on its own virtio PMD,
zcrx=nodev), teardown that leaves no process, namespace, link or overlay
behind; and what the vm platform brought to the generic stacks, on the
local testbed (unsupported there, with the reason).

The guest tests share one lease (the `guests` fixture: the guests boot once
for this module, as a campaign's do); the last of them ends that campaign
and checks that the lease releases everything."""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT

pytestmark = pytest.mark.unit     # the guest tests are marked guests, one integration

from rxbench.config import ConfigError, resolve
from rxbench.platforms import vm
from rxbench.state import netns_list


def _vm_cfg(**over):
    cfg = resolve({"platform": "vm"})
    cfg["platforms"]["vm"].update(over)
    return cfg["platforms"]["vm"]


def _argv(v):
    return vm.qemu_argv(v, name="g", accel="tcg", kernel="K", initrd="I", disk="D",
                        append=vm.kernel_append(v, "sender", "198.19.0.4/30"), tap="tap0",
                        test_mac=vm.TEST_MACS["sender"], mgmt_mac=vm.MGMT_MACS["sender"],
                        hostfwd="tcp:198.19.0.6:2201-:22", serial="S")


def test_default_command_line_is_the_seeds():
    a = _argv(_vm_cfg(vhost=False))
    line = " ".join(a)
    assert "-machine q35,accel=tcg,kernel-irqchip=split" in line
    assert "-device intel-iommu,intremap=on,caching-mode=on" in line
    assert "virtio-net-pci,netdev=test,mac=52:54:00:18:00:01,mq=on" in line
    assert "vectors=" not in line           # QEMU's default (2N+2)
    assert "vhost=on" not in line
    assert "-cpu max" in line                # TCG: no -cpu host
    assert "intel_iommu=on" in a[a.index("-append") + 1]
    # management on its own NIC, SSH forwarded; never the test NIC
    assert "user,id=mgmt,hostfwd=tcp:198.19.0.6:2201-:22" in line


def test_knobs_change_the_command_line():
    a = " ".join(_argv(_vm_cfg(vectors=2, queues=2, vhost=True, iommu=False,
                               iommu_platform=True, vcpus=2, memory_mb=2048)))
    assert "vectors=2" in a and "queues=2" in a and "vhost=on" in a
    assert "intel-iommu" not in a and "intel_iommu=on" not in a
    assert "disable-legacy=on,iommu_platform=on,ats=on" in a
    assert "-smp 2 -m 2048" in a
    kvm = " ".join(vm.qemu_argv(_vm_cfg(vhost=False), name="g", accel="kvm", kernel="K",
                                initrd="I", disk="D", append="", tap="t", test_mac="m",
                                mgmt_mac="m", hostfwd="h", serial="S"))
    assert "-cpu host" in kvm


@pytest.mark.parametrize("key,value", [("vectors", 0), ("accel", "xen"), ("vcpus", 0),
                                       ("vhost", "maybe"), ("memory_mb", 64)])
def test_bad_vm_options_are_refused(key, value):
    with pytest.raises(ConfigError, match=key):
        resolve({"platform": "vm", "platforms": {"vm": {key: value}}})


def test_image_hash_follows_the_recipe(monkeypatch):
    cfg = resolve({"platform": "vm"})
    h = vm.image_hash(cfg)
    assert h == vm.image_hash(copy.deepcopy(cfg))
    other = copy.deepcopy(cfg)
    other["platforms"]["vm"]["image"]["packages"].append("strace")
    assert vm.image_hash(other) != h
    # the cache lives outside the clone
    assert not str(vm.image_dir(cfg)).startswith(str(ROOT))


def _why_no_vm() -> str | None:
    if os.geteuid() != 0:
        return "needs root (namespaces, taps, debootstrap)"
    for tool in ("qemu-system-x86_64", "qemu-img", "debootstrap", "mkfs.ext4", "ssh"):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    if os.environ.get("RXBENCH_SKIP_VM"):
        return "RXBENCH_SKIP_VM is set"
    return None


NO_VM = _why_no_vm()


def _lease_file(state):
    return list(state.glob("lease-vm-*.json"))


def _lease_netns(state) -> list[str]:
    """The namespaces the lease recorded (its record, while it exists)."""
    out = []
    for f in _lease_file(state):
        try:
            out += json.loads(f.read_text()).get("resources", {}).get("netns", [])
        except ValueError:
            pass
    return out


def _ours(namespaces):
    """What of this test's lease is left: its namespaces, the QEMU processes
    whose run directory is named by one, the root-namespace veths (other
    engineers' guests on this machine are not ours)."""
    tokens = [n[len("rxbvm-"):] for n in namespaces]
    ps = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    qemu = [ln.strip()[:120] for ln in ps.splitlines() if "qemu-system" in ln
            and any(f"/rxbvm-{t}/" in ln for t in tokens)]
    links = [ln for ln in subprocess.run(["ip", "-br", "link"], capture_output=True,
                                         text=True).stdout.splitlines()
             if any(ln.startswith(f"rxbv{t}") for t in tokens)]
    return {"netns": sorted(set(namespaces) & set(netns_list())), "qemu": qemu, "links": links}


# the campaign that holds the shared lease: it takes the lease (booting the
# guests, or finding them up) and watches nothing but its stdin; the lease
# watches it, so the guests stay up until the stdin closes
HOLDER = """
import os, sys
from rxbench import lease
from rxbench.config import resolve
from rxbench.util import Log
lease.ensure("vm", resolve({"platform": "vm"}), Log(echo=True), watch_pid=os.getpid())
print("LEASED", flush=True)
sys.stdin.read()
"""


class Guests:
    """The module's lease of the two guests: a private state dir (the lease's
    record is ours alone, and the leftovers check is exact) and the campaign
    process that holds it. The tests' cells run with `env`: each cell's
    lease.ensure finds the lease up (the same platforms.vm) and uses it."""

    def __init__(self, state):
        self.state = state
        self.env = {**os.environ, "PYTHONPATH": str(ROOT / "workflow"),
                    "RXBENCH_STATE_DIR": str(state)}
        self.holder = subprocess.Popen([sys.executable, "-c", HOLDER], env=self.env,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True,
                                       start_new_session=True)
        out = []
        for line in self.holder.stdout:      # lease.ensure gives up by itself (ready_s)
            out.append(line)
            if line.strip() == "LEASED":
                break
        assert out and out[-1].strip() == "LEASED", "".join(out[-40:])
        self.netns = _lease_netns(state)
        assert self.netns, _lease_file(state)

    def end_campaign(self) -> None:
        """The campaign ends: the lease sees no watched process left."""
        if self.holder.poll() is None:
            self.holder.stdin.close()
            self.holder.wait(60)

    def released(self, timeout: float = 300) -> dict:
        """What is left of the lease once its campaign has ended (empty: nothing)."""
        self.end_campaign()
        end = time.monotonic() + timeout
        while time.monotonic() < end and (_lease_file(self.state) or _ours(self.netns)["qemu"]):
            time.sleep(1)
        left = {k: v for k, v in _ours(self.netns).items() if v}
        if _lease_file(self.state):
            left["record"] = [f.name for f in _lease_file(self.state)]
        return left


@pytest.fixture(scope="module")
def guests(tmp_path_factory):
    if NO_VM is not None:
        pytest.skip(NO_VM)
    g = Guests(tmp_path_factory.mktemp("vm-lease") / "state")
    try:
        yield g
    finally:
        left = g.released()
        if left:
            subprocess.run([sys.executable, "-m", "rxbench", "lease", "down", "vm"], env=g.env,
                           capture_output=True)
        assert not left, f"the lease left {left}"


# one cell per stack, the order chosen so that the cells after dpdk show the
# NIC given back to the kernel (named, addressed, up: each cell's health check)
SMOKE_CELLS = {
    "xdp_drop": "results/vm/eth/xdp_drop/cores=1/size=64/rep=1.json",
    "dpdk": "results/vm/eth/dpdk/cores=1/size=64/rep=1.json",
    "af_packet": "results/vm/eth/af_packet/cores=1/size=64/rep=1.json",
    "af_xdp": "results/vm/eth/af_xdp/cores=1/size=64/rep=1.json",
    "epoll": "results/vm/tcp/epoll/conns=1/msg=65536/rep=1.json",
    "uring_zcrx": "results/vm/tcp/uring_zcrx/conns=1/msg=65536/zcrx=nodev/rep=1.json",
}
SMOKE_CONFIG = ["profile=smoke", "duration_s=2", "warmup_s=1", "timeout_s=120"]


@pytest.mark.guests
def test_vm_smoke(guests, tmp_path):
    """One cell per stack on the lease's guests (the image from the cache or
    built cold, the guests booted by the `guests` fixture) through the
    host-generic runner on the ssh platform's testbed (Linux pktgen as
    generator, DPDK on its own virtio PMD, zcrx=nodev with its byte count
    checked)."""
    wd = tmp_path / "wd"
    wd.mkdir()
    script = tmp_path / "campaign.sh"
    # the shell is the campaign the lease watches (as snakemake is for cells)
    lines = [f"{sys.executable} -m rxbench vm-cell {c} --log {wd}/{s}.log "
             f"--config {' '.join(SMOKE_CONFIG)} || echo FAILED {s}"
             for s, c in SMOKE_CELLS.items()]
    script.write_text("set -u\n" + "\n".join(lines) + "\n")
    t0 = time.monotonic()
    p = subprocess.run(["sh", str(script)], env=guests.env, capture_output=True, text=True,
                       timeout=1500, cwd=wd)
    print(p.stdout[-4000:], p.stderr[-4000:])
    print(f"vm smoke: {len(SMOKE_CELLS)} cells in {time.monotonic() - t0:.0f} s")
    results = {}
    for s, c in SMOKE_CELLS.items():
        assert (wd / c).exists(), f"{s}: no result ({p.stderr[-500:]})"
        results[s] = json.loads((wd / c).read_text())
        assert results[s]["provenance"]["platform"].get("netns") in guests.netns
    for s, r in results.items():
        assert r["status"] == "ok", (s, r["reason"])
        plat = r["provenance"]["platform"]
        assert plat["name"] == "vm" and plat["accel"] in ("tcg", "kvm")
        assert plat["qemu_command_lines"]["receiver"].startswith("qemu-system-x86_64")
        assert plat["guest_kernel"].startswith("7.")
        assert plat["hosts"]["receiver"]["kernel"].startswith(plat["guest_kernel"])
        assert plat["health"]["receiver"]["operstate"] == "up"
        if r["layer"] == "tcp":
            assert r["rx_bytes"] > 0 and r["rx_gbps"] > 0
            v = r["verified"]["bytes"]
            assert v["server"] == v["sender"] > 0
        else:
            assert r["generator"] == "pktgen"
            assert r["rx_packets"] > 0 and r["offered_pps"] > 0, s
    dpdk = results["dpdk"]
    assert dpdk["params"]["pmd"] == "native"
    assert dpdk["nic_setup"]["dpdk"]["pmd"] == "net_virtio"
    assert dpdk["nic_setup"]["dpdk"]["binding"] in ("uio_pci_generic", "vfio-pci")
    assert dpdk["nic_setup"]["dpdk"]["hugepages_2M"] > 0
    assert not any(k.startswith("receiver_rx") for k in dpdk["drops"])   # no kernel NIC
    assert results["af_xdp"]["counters"]["receiver_ready"]["bind"] in ("copy", "zerocopy")
    z = results["uring_zcrx"]
    assert z["params"]["zcrx"] == "nodev" and z["stack_label"].endswith("(copy fallback)")
    assert z["zcrx"]["zero_copy"] is False
    # the kernel's copy counters: the fallback copied (nearly) every byte
    assert 0 < z["zcrx"]["copy_bytes"] <= z["verified"]["bytes"]["server"]


@pytest.mark.guests
def test_vm_sigkill_mid_dpdk_cell_gives_the_nic_back(guests, tmp_path):
    """A dpdk cell's runner SIGKILLed mid-cell (the NIC bound to a user-space
    driver, testpmd running): no result; the next cell's first contact
    sweeps the guest (the NIC back on virtio-net, named and addressed), its
    pre-flight sees the host as the sweep left it, and it measures. The
    lease outlives the killed runner (it is not its campaign), so the guests
    are the shared ones."""
    wd = tmp_path / "wd"
    wd.mkdir()
    dpdk = "results/vm/eth/dpdk/cores=1/size=64/rep=1.json"
    xdp = "results/vm/eth/xdp_drop/cores=1/size=64/rep=1.json"
    conf = " ".join(SMOKE_CONFIG[:1] + ["duration_s=20", "timeout_s=120"])
    py = sys.executable
    # the shell is the campaign the lease watches; it outlives the killed cell
    script = tmp_path / "campaign.sh"
    script.write_text(f"""set -u
{py} -m rxbench vm-cell {dpdk} --log {wd}/dpdk.log --config {conf} &
pid=$!
i=0
until grep -q '\\[generator\\].*"ready"' {wd}/dpdk.log 2>/dev/null; do
    i=$((i + 1)); [ $i -gt 2400 ] && break; sleep 0.5
done
sleep 1
kill -9 $pid && echo KILLED
wait $pid
{py} -m rxbench vm-cell {xdp} --log {wd}/xdp.log --config {' '.join(SMOKE_CONFIG)}
""")
    p = subprocess.run(["sh", str(script)], env=guests.env, capture_output=True, text=True,
                       timeout=1500, cwd=wd)
    print(p.stdout[-3000:], p.stderr[-3000:])
    assert "KILLED" in p.stdout, (wd / "dpdk.log").read_text()[-2000:]
    assert not (wd / dpdk).exists()
    log = (wd / "xdp.log").read_text()
    assert "removed a dead run's leftover: nic " in log, log[-3000:]
    r = json.loads((wd / xdp).read_text())
    assert r["status"] == "ok", r["reason"]
    assert r["provenance"]["platform"]["health"]["receiver"]["operstate"] == "up"
    assert r["provenance"]["platform"].get("netns") in guests.netns


@pytest.mark.guests
def test_vm_sigint_mid_cell_leaves_nothing(guests, tmp_path):
    """SIGINT to the campaign in the middle of a cell: the cell writes
    nothing, the lease sees its campaign gone and releases everything.
    The last guest test (file order): it ends the shared lease."""
    cell = "results/vm/eth/xdp_drop/cores=1/size=64/rep=1.json"
    # the shell is the campaign the lease watches (as snakemake is for cells)
    cmd = (f"{sys.executable} -m rxbench vm-cell {cell} --config profile=smoke "
           f"duration_s=30 timeout_s=90; true")
    p = subprocess.Popen(["sh", "-c", cmd], env=guests.env, cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    seen = []
    deadline = time.monotonic() + 1200
    for line in p.stdout:
        seen.append(line)
        if "[generator]" in line and '"ready"' in line:
            break
        assert time.monotonic() < deadline, "".join(seen[-20:])
    assert _lease_netns(guests.state) == guests.netns, "".join(seen[-20:])
    time.sleep(2)
    # the whole campaign at once: this shell (and its cell) and the holder
    os.killpg(p.pid, signal.SIGINT)
    guests.end_campaign()
    p.wait(300)
    assert not (tmp_path / cell).exists()
    assert not guests.released(), guests.released(0)


def test_vm_eth_defaults_are_pktgen_and_dpdks_own_pmd():
    """On platform vm, platforms.vm.eth is merged over eth: the seed's
    generator and DPDK on its own PMD (the cell names stay canonical)."""
    cfg = resolve({"platform": "vm", "profile": "smoke"})
    assert cfg["eth"]["generator"] == "pktgen"
    assert cfg["eth"]["dpdk"]["pmd"] == ["native"]
    from rxbench.cells import targets
    assert "results/vm/eth/dpdk/cores=1/size=64/rep=1.json" in targets(cfg)
    local = resolve({"profile": "smoke"})
    assert local["eth"]["generator"] == "rxb-gen" and local["eth"]["dpdk"]["pmd"] == ["af_xdp"]
    with pytest.raises(ConfigError, match="generator"):
        resolve({"platform": "vm", "platforms": {"vm": {"eth": {"generator": "trafgen"}}}})


def test_the_lease_inventory_is_the_ssh_platforms():
    """What lease_up returns (its shape, here with made-up values) validates
    as an ssh inventory once VmTestbed adds the image's build."""
    from rxbench.platforms.ssh import validate_inventory
    inv = {r: {"address": "198.19.0.6", "port": vm.SSH_PORTS[r], "user": "root",
               "key": "/tmp/k", "jump": None, "sudo": False, "known_hosts": "/tmp/kh",
               "test_interface": vm.TEST_IF, "test_ip": vm.TEST_IPS[r],
               "prefix": vm.TEST_PREFIX, "mtu": 1500, "cpus": [0], "mac": vm.TEST_MACS[r]}
           for r in vm.ROLES}
    inv["receiver"]["napi_cpus"] = [0]
    inv["provenance"] = {"platform": "vm", "accel": "tcg"}
    out = validate_inventory(vm.ssh_inventory(inv))
    assert out["receiver"]["prebuilt_native"] == vm.GUEST_NATIVE_DIR
    assert "prebuilt_native" not in inv["receiver"]     # the lease's own record unchanged


def test_pins_are_checked_against_the_image(tmp_path, monkeypatch):
    cfg = resolve({"platform": "vm"})
    (tmp_path / "versions.txt").write_text("dpdk 24.11.8-0+deb13u1\nxdp-tools 1.5.4-1\n")
    monkeypatch.setattr(vm.image, "image_recipe", lambda c: {"pins": {"dpdk": "24.11.*"}})
    assert vm.check_pins(cfg, tmp_path)["dpdk"].startswith("24.11")
    monkeypatch.setattr(vm.image, "image_recipe", lambda c: {"pins": {"dpdk": "25.*"}})
    with pytest.raises(vm.VmError, match="dpdk is 24.11.8-0.deb13u1, versions.yaml pins 25"):
        vm.check_pins(cfg, tmp_path)
    monkeypatch.setattr(vm.image, "image_recipe", lambda c: {"pins": {"iperf3": "*"}})
    with pytest.raises(vm.VmError, match="iperf3 is not installed"):
        vm.check_pins(cfg, tmp_path)


# -- what the vm platform brought to the generic stacks, on the local testbed ---------
from conftest import leftovers, needs_testbed  # noqa: E402


@needs_testbed
@pytest.mark.parametrize("what", ["pktgen", "dpdk_native"])
def test_vm_stacks_are_unsupported_on_veth_with_the_reason(what, state_dir, tmp_path):
    """Linux pktgen where the kernel has none (this machine's), DPDK's own
    PMD on a NIC without a PCI device (veth): `unsupported` with the
    reason, nothing left behind."""
    from rxbench.hosts.netns import local_kernel_config
    from rxbench.runner import run_cell
    kc = local_kernel_config()
    if what == "pktgen":
        if kc.get("CONFIG_NET_PKTGEN") in ("y", "m"):
            pytest.skip("this kernel has pktgen: the unsupported path is not reachable here")
        cfg = resolve({"profile": "smoke", "eth": {"generator": "pktgen"}})
        cell, want = "results/local/eth/xdp_drop/cores=1/size=64/rep=1.json", "CONFIG_NET_PKTGEN"
    else:
        if not shutil.which("dpdk-testpmd"):
            pytest.skip("dpdk-testpmd is not installed")
        cfg = resolve({"profile": "smoke", "eth": {"dpdk": {"pmd": ["native"]}}})
        cell, want = "results/local/eth/dpdk/cores=1/size=64/rep=1.json", "has no PCI device"
    out = tmp_path / cell
    assert run_cell(str(out), cfg, str(out.with_suffix(".log"))) == 0
    r = json.loads(out.read_text())
    assert r["status"] == "unsupported" and want in r["reason"], r["reason"]
    assert not leftovers(state_dir)


def test_user_space_binding_follows_the_iommu():
    from rxbench.stacks.eth import _kv, user_space_binding
    nic = _kv("bus=pci\npci=0000:00:02.0\ndriver=virtio-pci\naddr=198.18.0.2/30\n"
              "virtio_features=" + "1" * 33 + "0" + "0" * 30 + "\n")
    assert nic["addresses"] == ["198.18.0.2/30"] and nic["pci"] == "0000:00:02.0"
    assert user_space_binding(nic) == "uio_pci_generic"              # no IOMMU group
    nic["iommu_group"] = "3"
    assert user_space_binding(nic) == "uio_pci_generic"              # no ACCESS_PLATFORM
    nic["virtio_features"] = "1" * 64
    assert user_space_binding(nic) == "vfio-pci"
    assert user_space_binding({"iommu_group": "7", "driver": "i40e"}) == "vfio-pci"
