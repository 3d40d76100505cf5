"""The vm platform: the QEMU command line from named options (unit), and a
real smoke run under whatever accelerator the machine gives (TCG here):
image built or reused from the cache, both guests booted by the lease, one
real cell per wired stack with Linux pktgen in the sender guest, teardown
that leaves no process, namespace, link or overlay behind."""

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


def _ours(before_ns):
    qemu = subprocess.run(["pgrep", "-f", "-a", "rxb-(sender|receiver) "], capture_output=True,
                          text=True).stdout
    links = [ln for ln in subprocess.run(["ip", "-br", "link"], capture_output=True,
                                         text=True).stdout.splitlines()
             if ln.startswith("rxbv")]
    return {"netns": sorted(set(n for n in netns_list() if n.startswith("rxbvm-"))
                            - set(before_ns)),
            "qemu": qemu.strip(), "links": links}


def _env(tmp_path):
    # a private state dir: the lease's record is ours alone (and the test's
    # own leftovers check is exact)
    return {**os.environ, "PYTHONPATH": str(ROOT / "workflow"),
            "RXBENCH_STATE_DIR": str(tmp_path / "state")}


def _lease_file(tmp_path):
    return list((tmp_path / "state").glob("lease-vm-*.json"))


@pytest.mark.skipif(NO_VM is not None, reason=NO_VM or "")
def test_vm_smoke(tmp_path):
    """Lease up (image from the cache or built cold), cells for real in the
    guests, lease down; nothing left."""
    before = [n for n in netns_list() if n.startswith("rxbvm-")]
    env = _env(tmp_path)
    results = {}
    script = tmp_path / "campaign.sh"
    outs = {s: tmp_path / f"{s}.json" for s in ("xdp_drop", "af_packet", "af_xdp", "dpdk",
                                                "epoll")}
    lines = [f"{sys.executable} -m rxbench vm-cell --layer {'tcp' if s == 'epoll' else 'eth'} "
             f"--stack {s} --size 64 --out {o} "
             f"--config duration_s=3 warmup_s=1 || echo FAILED {s}" for s, o in outs.items()]
    script.write_text("set -u\n" + "\n".join(lines) + "\n"
                      f"{sys.executable} -m rxbench lease down vm\n")
    p = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True,
                       timeout=1500, cwd=ROOT)
    print(p.stdout[-4000:], p.stderr[-4000:])
    try:
        for s, o in outs.items():
            assert o.exists(), f"{s}: no result ({p.stderr[-500:]})"
            results[s] = json.loads(o.read_text())
        for s, r in results.items():
            assert r["status"] == "ok"
            if s == "epoll":
                assert r["rx_bytes"] > 0 and r["rx_gbps"] > 0
            else:
                assert r["rx_packets"] > 0 and r["offered_pps"] > 0, s
            assert r["accel"] in ("tcg", "kvm")
            assert r["provenance"]["platform"]["qemu_command_lines"]["receiver"]
            assert r["provenance"]["platform"]["guest_kernel"].startswith("7.")
        assert results["dpdk"]["provenance"]["dpdk"]["binding"] == "uio_pci_generic"
        assert results["dpdk"]["provenance"]["dpdk"]["pmd"] == "net_virtio"
        assert results["af_xdp"]["provenance"]["af_xdp_bind"] in ("copy", "zerocopy")
    finally:
        subprocess.run([sys.executable, "-m", "rxbench", "lease", "down", "vm"], env=env,
                       cwd=ROOT, capture_output=True)
        left = _ours(before)
        assert not left["netns"] and not left["qemu"] and not left["links"], left
    assert not _lease_file(tmp_path)


@pytest.mark.skipif(NO_VM is not None, reason=NO_VM or "")
def test_vm_sigint_mid_cell_leaves_nothing(tmp_path):
    """SIGINT to the campaign in the middle of a cell: the cell writes
    nothing, the lease sees its campaign gone and releases everything."""
    before = [n for n in netns_list() if n.startswith("rxbvm-")]
    env = _env(tmp_path)
    out = tmp_path / "cell.json"
    # the shell is the campaign the lease watches (as snakemake is for cells)
    cmd = (f"{sys.executable} -m rxbench vm-cell --stack xdp_drop --out {out} "
           f"--config duration_s=30; true")
    p = subprocess.Popen(["sh", "-c", cmd], env=env, cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    seen = []
    deadline = time.monotonic() + 1200
    for line in p.stdout:
        seen.append(line)
        if "[generator]" in line and '"ready"' in line:
            break
        assert time.monotonic() < deadline, "".join(seen[-20:])
    time.sleep(2)
    os.killpg(p.pid, signal.SIGINT)
    p.wait(300)
    assert not out.exists()
    end = time.monotonic() + 300
    while time.monotonic() < end and (_lease_file(tmp_path) or _ours(before)["qemu"]):
        time.sleep(1)
    left = _ours(before)
    assert not left["netns"] and not left["qemu"] and not left["links"], left
    assert not _lease_file(tmp_path)


def test_unwired_stack_is_unsupported_with_the_reason(tmp_path, monkeypatch):
    """A stack the vm path cannot run yet is written `unsupported` with the
    reason, without booting anything."""
    from rxbench.result import load_result
    from rxbench.vmcell import run_from_runner
    monkeypatch.chdir(tmp_path)
    cfg = resolve({"platform": "vm", "profile": "smoke"})
    out = "results/vm/eth/xdpsock/cores=1/size=64/rep=1.json"
    assert run_from_runner(out, cfg, str(tmp_path / "cell.log")) == 0
    r = load_result(out)
    assert r["status"] == "unsupported" and "not wired on the vm platform" in r["reason"]


def test_pins_are_checked_against_the_image(tmp_path, monkeypatch):
    cfg = resolve({"platform": "vm"})
    (tmp_path / "versions.txt").write_text("dpdk 24.11.8-0+deb13u1\nxdp-tools 1.5.4-1\n")
    monkeypatch.setattr(vm, "image_recipe", lambda c: {"pins": {"dpdk": "24.11.*"}})
    assert vm.check_pins(cfg, tmp_path)["dpdk"].startswith("24.11")
    monkeypatch.setattr(vm, "image_recipe", lambda c: {"pins": {"dpdk": "25.*"}})
    with pytest.raises(vm.VmError, match="dpdk is 24.11.8-0.deb13u1, versions.yaml pins 25"):
        vm.check_pins(cfg, tmp_path)
    monkeypatch.setattr(vm, "image_recipe", lambda c: {"pins": {"iperf3": "*"}})
    with pytest.raises(vm.VmError, match="iperf3 is not installed"):
        vm.check_pins(cfg, tmp_path)
