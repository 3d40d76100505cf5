"""The hardware profile and what it needs of the platforms: per-queue
counters, RSS steering, IRQ placement, link speed and line rate
(rxbench.queues), pktgen with one kthread per queue, mlx5's bifurcated PMD,
the vm guests' multi-queue device options and 4-vCPU inventory, and the vm
lease released before the campaign process returns (rxbench.lease.leave).
The guest campaign itself (test_hardware_campaign_in_guests) boots QEMU
guests under the machine lock: it skips without root, QEMU or debootstrap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT
from test_lease import leases  # noqa: F401 (the fixture)
from test_vm import _why_no_vm
from rxbench import RxbenchError, lease, queues
from rxbench.config import resolve
from rxbench.platforms import vm
from rxbench.platforms.base import Placement, Side
from rxbench.platforms.vm.lease import guest_inventory
from rxbench.stacks.eth import Dpdk, Pktgen

pytestmark = pytest.mark.unit



# -- the profile -----------------------------------------------------------------
def test_hardware_profile_measures_kernel_bypass_on_every_queue_count():
    cfg = resolve({"profile": "hardware"}, ncpus=16)
    eth = cfg["eth"]
    assert eth["stacks"] == ["xdp_drop", "af_xdp", "dpdk", "af_packet"]
    assert eth["dpdk"]["pmd"] == ["native"]
    assert eth["af_xdp"]["bind"] == ["copy", "zerocopy"]
    assert eth["generator"] == "pktgen"
    assert eth["cores"] == [1, 2, 4, 8]
    assert not (ROOT / "config/profiles/full.yaml").exists()


def test_vm_runs_both_af_xdp_modes_from_one_lease():
    cfg = resolve({"profile": "hardware", "platform": "vm"})
    v = cfg["platforms"]["vm"]
    assert cfg["eth"]["af_xdp"]["bind"] == ["copy", "zerocopy"]
    assert cfg["eth"]["dpdk"]["pmd"] == ["native"]
    assert v["vcpus"] == 4 and v["queues"] >= 2 and v["rss"] and v["iommu_platform"]
    argv = " ".join(vm.qemu_argv({**v, "vhost": False}, name="g", accel="tcg", kernel="K",
                                 initrd="I", disk="D", append="A", tap="tap0",
                                 test_mac=vm.TEST_MACS["receiver"],
                                 mgmt_mac=vm.MGMT_MACS["receiver"], hostfwd="tcp:x:1-:22",
                                 serial="S"))
    assert "-smp 4" in argv and f"queues={v['queues']}" in argv
    assert "iommu_platform=on" in argv and "rss=on" in argv and "speed=10000" in argv


def test_the_seed_profile_keeps_the_seeds_device():
    cfg = resolve({"profile": "seed", "platform": "vm"})
    v = cfg["platforms"]["vm"]
    assert not v["iommu_platform"] and not v["rss"] and v["queues"] == 1
    assert cfg["eth"]["af_xdp"]["bind"] == ["auto"]


def test_4_vcpu_guests_leave_cpu_0_to_the_guest():
    inv = guest_inventory({"vcpus": 4, "mtu": 1500}, "198.19.0.2", Path("k"), Path("kh"))
    assert inv["receiver"]["cpus"] == [1, 2, 3] and inv["sender"]["cpus"] == [1, 2, 3]
    assert inv["receiver"]["napi_cpus"] == [1, 2, 3]
    one = guest_inventory({"vcpus": 1, "mtu": 1500}, "198.19.0.2", Path("k"), Path("kh"))
    assert one["receiver"]["cpus"] == [0]


# -- per-queue counters ---------------------------------------------------------------
@pytest.mark.parametrize("before, after, want", [
    # virtio_net with an XDP program: packets and xdp_packets of the same frames
    ({"rx_queue_0_packets": 10, "rx_queue_0_xdp_packets": 10, "rx_queue_1_packets": 0,
      "rx_queue_1_xdp_packets": 0},
     {"rx_queue_0_packets": 110, "rx_queue_0_xdp_packets": 110, "rx_queue_1_packets": 50,
      "rx_queue_1_xdp_packets": 50}, {0: 100, 1: 50}),
    # veth: xdp_packets only
    ({"rx_queue_0_xdp_packets": 1}, {"rx_queue_0_xdp_packets": 5}, {0: 4}),
    # mlx5, and virtio_net since 6.10: rx<N>_packets
    ({"rx0_packets": 0, "rx1_packets": 0, "rx0_xdp_drop": 0},
     {"rx0_packets": 7, "rx1_packets": 9, "rx0_xdp_drop": 7}, {0: 7, 1: 9}),
    # DPDK xstats: generic and the virtio PMD's own
    ({"rx_q0_packets": 0, "rx_q1_good_packets": 0},
     {"rx_q0_packets": 3, "rx_q1_good_packets": 4}, {0: 3, 1: 4}),
])
def test_one_counter_per_queue_never_two_summed(before, after, want):
    assert queues.per_queue_received(before, after) == want


def test_line_rate():
    assert round(queues.line_rate_pps(10000, 64) / 1e6, 2) == 14.88
    assert round(queues.line_rate_pps(25000, 64) / 1e6, 1) == 37.2
    assert queues.line_rate_pps(None, 64) is None and queues.line_rate_pps(-1, 64) is None


def test_irq_lines():
    text = "27 virtio1-input.0 1 1\n28 virtio1-output.0 1-2 2\ngarbage\n"
    assert queues.parse_irqs(text) == [
        {"irq": 27, "name": "virtio1-input.0", "affinity": "1", "effective": "1"},
        {"irq": 28, "name": "virtio1-output.0", "affinity": "1-2", "effective": "2"}]


# -- RSS steering, against a fake host ----------------------------------------------------
class FakeRegistry:
    def __init__(self, log):
        self.log = log

    def add(self, key, item):
        self.log.append(("record", key, item))


class FakeHost:
    key = "fake"

    def __init__(self, rxqs=2, rss=True, speed="10000", combined=True):
        self.calls, self.rxqs, self.rss, self.speed = [], rxqs, rss, speed
        self.combined = combined
        self.registry = FakeRegistry(self.calls)

    def read_file(self, path):
        return self.speed if path.endswith("/speed") else None

    def python_module(self, module):
        return ["python3", "-m", module]

    def run(self, argv, check=True, **kw):
        self.calls.append(("run", argv))
        cmd = " ".join(argv)
        if "queues/rx-" in " ".join(argv):
            return " ".join(f"/sys/class/net/test0/queues/rx-{i}" for i in range(self.rxqs))
        if "msi_irqs" in cmd:
            return "27 virtio1-input.0 1 1\n"
        if argv[:2] == ["ethtool", "-X"] and not self.rss:
            raise RxbenchError("ethtool -X: Operation not supported")
        if argv[:2] == ["ethtool", "-l"]:
            if not self.combined:
                return "Pre-set maximums:\nRX:\t\t2\nCurrent hardware settings:\nRX:\t\t2\n"
            return (f"Pre-set maximums:\nCombined:\t{self.rxqs}\nCurrent hardware settings:\n"
                    f"Combined:\t{self.rxqs}\n")
        return ""


class FakeTb:
    def __init__(self, host):
        self.receiver = Side("receiver", None, "test0", "198.18.0.2", host=host)

    def _run(self, side, argv, **kw):
        return side.host.run(argv, **kw)


def _snap(ethtool=None, xstats=None):
    return {"receiver": {"counters": {"ethtool": {"test0": ethtool} if ethtool else {}},
                         "tool": {"xstats": xstats} if xstats else {}}}


def _cell_tb(setup=None, host=None):
    tb = FakeTb(host or FakeHost())
    tb.queue_setup = setup
    return tb


def test_record_cell_kernel_counters_and_fraction_of_line_rate():
    out = {"rx_pps": 1488095.2}
    setup = {"link_speed_mbps": 10000, "rss": "ethtool -X test0 equal 2",
             "netdev": {"queues": [{"id": 0, "type": "rx", "napi_id": 8194},
                                   {"id": 0, "type": "tx", "napi_id": None}]}}
    placement = {"napi": {"threads": [{"name": "napi/test0-8194", "pid": 5, "cpus": [1]}]}}
    queues.record_cell(out, _cell_tb(setup), _snap({"rx0_xdp_packets": 0, "rx1_xdp_packets": 0}),
                       _snap({"rx0_xdp_packets": 5, "rx1_xdp_packets": 6}), 2, 64, placement)
    assert out["per_queue_rx"] == {0: 5, 1: 6}
    assert out["per_queue_source"].startswith("ethtool -S test0")
    assert abs(out["fraction_of_line_rate"] - 0.1) < 1e-3
    assert out["queues"]["rss"].startswith("ethtool -X")
    assert out["queues"]["queue_napi"] == [{"queue": 0, "napi_id": 8194,
                                            "kthread": "napi/test0-8194", "cpus": [1]}]


def test_record_cell_dpdk_xstats_and_an_idle_queue_fails_the_cell():
    out = {"rx_pps": 1.0}
    a, b = _snap(xstats={"rx_q0_good_packets": 0, "rx_q1_good_packets": 0}), \
        _snap(xstats={"rx_q0_good_packets": 9, "rx_q1_good_packets": 0})
    with pytest.raises(RxbenchError, match=r"queue\(s\) \[1\] of 2 got no frames.*DPDK"):
        queues.record_cell(out, _cell_tb(), a, b, 2, 64)
    assert out["per_queue_rx"] == {0: 9, 1: 0}
    assert out["fraction_of_line_rate"] is None      # no link speed known
    queues.record_cell({"rx_pps": 1.0}, _cell_tb(), a, b, 1, 64)   # one core: fine


class QstatsHost(FakeHost):
    def run(self, argv, check=True, **kw):
        if "rxbench.netdev_nl" in argv:
            return json.dumps({"qstats": {"rx": {"0": 1100, "1": 700}}})
        return super().run(argv, check, **kw)


def test_record_cell_falls_back_to_qstats_over_the_cell():
    """virtio_net >= 6.10 without XDP: ethtool -S has only rx<N>_xdp_packets
    (no change): the queues' packets are the netdev qstats'."""
    out = {"rx_pps": 1.0}
    setup = {"netdev": {"qstats": {"rx": {"0": 100, "1": 200}}}}
    flat = {"rx0_xdp_packets": 0, "rx1_xdp_packets": 0}
    queues.record_cell(out, _cell_tb(setup, QstatsHost()), _snap(flat), _snap(flat), 2, 64)
    assert out["per_queue_rx"] == {0: 1000, 1: 500}
    assert out["per_queue_source"].startswith("netdev qstats")


def test_netdev_nl_reads_this_hosts_loopback():
    from rxbench import netdev_nl
    got = netdev_nl.probe("lo")
    assert set(got) == {"ifname", "queues", "napis", "qstats", "error"}
    assert netdev_nl.probe("no-such-if0")["error"]


def test_steer_records_the_undo_before_it_sets_the_channels():
    h = FakeHost()
    out = queues.steer(FakeTb(h), 1)
    i_rec = h.calls.index(("record", "rxfh", ["test0", "combined", 2]))
    i_set = h.calls.index(("run", ["ethtool", "-L", "test0", "combined", "1"]))
    assert i_rec < i_set
    assert out["link_speed_mbps"] == 10000 and out["rx_queues"] == 2
    assert out["rss"] == "ethtool -L test0 combined 1 (was 2)"
    assert out["irqs"][0]["name"] == "virtio1-input.0"
    h2 = FakeHost()
    queues.steer(FakeTb(h2), 2)           # already 2: nothing to change or undo
    assert not any(c[0] == "record" for c in h2.calls)


def test_steer_without_channels_sets_the_rss_table_and_single_queue_is_left_alone():
    h = FakeHost(combined=False)
    out = queues.steer(FakeTb(h), 1)
    assert ("record", "rxfh", ["test0", "equal", None]) in h.calls
    assert ("run", ["ethtool", "-X", "test0", "equal", "1"]) in h.calls
    assert out["rss"] == "ethtool -X test0 equal 1"
    with pytest.raises(RxbenchError, match="no combined channels and ethtool -X refused"):
        queues.steer(FakeTb(FakeHost(combined=False, rss=False)), 1)
    h1 = FakeHost(rxqs=1, speed="-1")
    out = queues.steer(FakeTb(h1), 1)
    assert out["rss"] == "single queue" and out["link_speed_mbps"] is None
    assert not any(c[0] == "record" for c in h1.calls)
    with pytest.raises(RxbenchError, match="2 receive queues"):
        queues.steer(FakeTb(FakeHost(rxqs=2)), 4)


def test_frames_on_queues_the_receiver_does_not_use_fail_the_cell():
    assert queues.stray_problem({0: 1000, 1: 5}, 1) is None          # under 1 %
    assert "queue(s) [1] beyond the cell's 1" in queues.stray_problem({0: 100, 1: 60}, 1)
    out = {"rx_pps": 1.0}
    with pytest.raises(RxbenchError, match="the receive steering failed"):
        queues.record_cell(out, _cell_tb(), _snap({"rx0_xdp_packets": 0, "rx1_xdp_packets": 0}),
                           _snap({"rx0_xdp_packets": 50, "rx1_xdp_packets": 40}), 1, 64)


# -- pktgen, one kthread per queue -----------------------------------------------------
class Cell:
    def __init__(self, **params):
        self.params = params


class GenHost(FakeHost):
    def __init__(self, ntx):
        super().__init__()
        self.ntx = ntx
        self.kernel_options = {"CONFIG_NET_PKTGEN": "m"}

    def run(self, argv, check=True, **kw):
        if "queues/tx-" in " ".join(argv):
            return " ".join(f"tx-{i}" for i in range(self.ntx))
        return super().run(argv, check, **kw)


def _pktgen(ntx, cores, gen_cpus, monkeypatch):
    import rxbench.stacks.eth as eth
    monkeypatch.setattr(eth, "require_kernel", lambda *a, **k: None)
    host = GenHost(ntx)
    tb = FakeTb(host)
    tb.sender = Side("sender", None, "test0", "198.18.0.1", host=host)
    tb.receiver.mac = "52:54:00:18:00:02"
    p = Pktgen.__new__(Pktgen)
    p.cfg, p.cell, p.tb = {}, Cell(cores=cores, size=64), tb
    p.placement = Placement(gen_cpus, [1], "receiver", [1])
    monkeypatch.setattr(Pktgen, "binary", lambda self: "rxb-pktgen")
    return p


def test_pktgen_one_thread_per_tx_queue(monkeypatch):
    p = _pktgen(2, 2, [1, 2, 3], monkeypatch)
    p.probe()
    argv = " ".join(p.argv(5.0))
    assert p.threads == 2 and "--threads 2 --cpus 1,2" in argv
    p1 = _pktgen(1, 1, [1, 2, 3], monkeypatch)
    p1.probe()
    assert "--cpu 1" in " ".join(p1.argv(5.0)) and "--threads" not in " ".join(p1.argv(5.0))
    from rxbench.stacks.base import Unsupported
    with pytest.raises(Unsupported, match="2 receiver cores want as many sending threads"):
        _pktgen(1, 2, [1, 2, 3], monkeypatch).probe()


@pytest.mark.skipif(not (ROOT / "native/build/rxb-pktgen").exists(), reason="make native first")
def test_rxb_pktgen_threads_need_cpus():
    p = subprocess.run([str(ROOT / "native/build/rxb-pktgen"), "--ifname", "lo", "--dst",
                        "198.18.0.2", "--dst-mac", "52:54:00:18:00:02", "--size", "64",
                        "--duration", "1", "--threads", "2"], capture_output=True, text=True)
    assert p.returncode == 2 and "--threads 2 needs --cpus" in p.stderr


# -- mlx5: DPDK's PMD beside the kernel driver ------------------------------------------------
class NicHost(FakeHost):
    def __init__(self, driver, infiniband=True):
        super().__init__()
        self.driver, self.ib, self.sysfs = driver, infiniband, {}

    def run(self, argv, check=True, **kw):
        cmd = " ".join(argv)
        if "infiniband" in cmd:
            return "mlx5_0\n" if self.ib else ""
        if "ifn=$1" in cmd:
            return (f"bus=pci\npci=0000:3b:00.0\ndriver={self.driver}\niommu_group=12\n"
                    "mac=0c:42:a1:00:00:01\nmtu=1500\nhugepages=0\nhugetlbfs=yes\n"
                    "addr=198.18.0.2/30\n")
        return super().run(argv, check, **kw)

    def set_sysfs(self, path, value, log=None):
        self.calls.append(("sysfs", path, value))
        self.sysfs[path] = value

    def read_file(self, path):
        return self.sysfs.get(path, super().read_file(path))


def _dpdk(host):
    d = Dpdk.__new__(Dpdk)
    d.cell, d.tb, d.bound, d.nic = Cell(pmd="native", cores=1), FakeTb(host), None, {}
    d.tb.log = lambda m: None
    return d


def test_mlx5_is_bifurcated_nothing_unbound():
    h = NicHost("mlx5_core")
    out = _dpdk(h).bind()["dpdk"]
    assert out["pmd"] == "net_mlx5" and out["binding"].startswith("none (bifurcated")
    assert not any(c[0] == "record" and c[1] == "nic_bind" for c in h.calls)
    assert ("sysfs", "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "128") in h.calls


def test_mlx5_without_its_rdma_device_is_unsupported():
    from rxbench.stacks.base import Unsupported
    with pytest.raises(Unsupported, match="mlx5's PMD works through the kernel's RDMA stack"):
        _dpdk(NicHost("mlx5_core", infiniband=False)).probe_nic()


# -- the lease gone before the campaign returns ----------------------------------------------
def _ensure(watch):
    return lease.ensure("dummy", {"platforms": {}}, print, module="lease_dummy",
                        watch_pid=watch, ready_s=60)


def test_leave_releases_before_returning_unless_another_campaign_watches(leases):
    from rxbench.state import alive
    other = subprocess.Popen(["sleep", "300"])
    try:
        inv = _ensure(os.getpid())
        _ensure(other.pid)
        assert lease.leave("dummy", os.getpid(), print).startswith("left to 1")
        assert alive(inv["pid"], None)
        other.kill()
        other.wait()
        t0 = time.monotonic()
        # the owner may notice first: either way nothing is left when leave returns
        lease.leave("dummy", os.getpid(), print)
        took = time.monotonic() - t0
        assert not lease.state_path("dummy").exists()
        assert not alive(inv["pid"], None) or _zombie(inv["pid"])
        assert took < 30
    finally:
        if other.poll() is None:
            other.kill()
    assert lease.leave("dummy", os.getpid(), print) == "no lease"


def _zombie(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z"
    except OSError:
        return True


# -- every path in the guests (QEMU; TCG here: rates mean nothing) -------------------------------
NO_GUESTS = _why_no_vm()
CAMPAIGN = ["profile=hardware", "platform=vm", "reps=1", "duration_s=2", "warmup_s=1",
            "timeout_s=120", "eth={sizes: [64], cores: [1, 2], af_xdp: {wait: [poll]}}",
            "tcp={stacks: []}"]


def check_hardware_campaign(results: Path) -> list[str]:
    """What the smoke-sized hardware campaign on vm must show; the problems
    (none: every path ran). Also used on a campaign run by hand."""
    problems = []
    cells = {str(p.relative_to(results)): json.loads(p.read_text())
             for p in sorted(results.glob("eth/*/*/*/**/rep=*.json"))}
    stacks = {c["stack"] for c in cells.values()}
    if stacks != {"xdp_drop", "af_xdp", "dpdk", "af_packet"}:
        problems.append(f"stacks {sorted(stacks)}")
    for path, c in cells.items():
        if c["status"] != "ok":
            problems.append(f"{path}: {c['status']}: {c.get('reason')}")
            continue
        per = {int(k): v for k, v in c["per_queue_rx"].items()}
        if c["params"]["cores"] == 2 and not (len(per) >= 2 and per[0] > 0 and per[1] > 0):
            problems.append(f"{path}: per-queue {per}")
        if c["queues"]["link_speed_mbps"] is None and c["stack"] != "dpdk":
            problems.append(f"{path}: no link speed")
        if c["stack"] == "af_xdp" and c["params"].get("bind") == "zerocopy":
            if c["counters"]["receiver_ready"].get("bind") != "zerocopy":
                problems.append(f"{path}: bind {c['counters']['receiver_ready'].get('bind')}")
        if c["stack"] == "dpdk" and c["nic_setup"]["dpdk"]["pmd"] != "net_virtio":
            problems.append(f"{path}: PMD {c['nic_setup']['dpdk']['pmd']}")
    return problems


@pytest.mark.guests
@pytest.mark.slow
@pytest.mark.skipif(NO_GUESTS is not None, reason=NO_GUESTS or "")
@pytest.mark.skipif(not os.environ.get("RXBENCH_VM_HARDWARE"),
                    reason="the hardware campaign in TCG guests takes ~30 min here: "
                           "set RXBENCH_VM_HARDWARE=1")
def test_hardware_campaign_in_guests(tmp_path):
    """The smoke-sized hardware campaign on vm (4-vCPU guests, 2 queue
    pairs): every stack ok, af_xdp zero-copy granted, DPDK's virtio PMD on
    2 queues, cores=2 cells receiving on both queues; after snakemake
    returns, no namespace, QEMU or run directory of the lease is left."""
    def qemus():
        out = subprocess.run(["pgrep", "-f", "qemu-system-x86_64 -name rxb-"],
                             capture_output=True, text=True).stdout
        return set(out.split())

    def netns():
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        return {line.split()[0] for line in out.splitlines() if line.strip()}

    before_ns, before_qemu = netns(), qemus()
    wd = tmp_path / "wd"
    wd.mkdir()
    p = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"),
                        "--cores", "1", "--config", *CAMPAIGN, "--", "results/vm/summary.csv"],
                       cwd=wd, capture_output=True, text=True, timeout=5400)
    assert p.returncode == 0, p.stderr[-3000:]
    assert check_hardware_campaign(wd / "results/vm") == []
    # right after snakemake returned (the lease left in its onsuccess handler)
    assert not {n for n in netns() - before_ns if n.startswith("rxbvm-")}
    assert not qemus() - before_qemu
