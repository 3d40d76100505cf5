"""The guests themselves: their QEMU command line and kernel arguments,
whether KVM and vhost-net really work here, booting both and waiting until
SSH answers, the test NIC of a Nix image configured over SSH, and the
health check before every cell."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from pathlib import Path

from ...state import pid_start
from ...util import CommandError, run
from .common import (MGMT_MACS, ROLES, SSH_PORTS, TEST_IF, TEST_IPS, TEST_MACS, TEST_PREFIX,
                     VmError, ssh, ssh_argv)


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
    if v.get("rss"):
        dev += ",rss=on"
    if v.get("speed_mbps"):
        dev += f",speed={int(v['speed_mbps'])},duplex=full"
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


# -- booting ---------------------------------------------------------------
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



def boot_guests(v: dict, files: dict, inventory: dict, run_dir: Path, ns: str, mgmt: dict,
                accel: str, fw_cfg: dict, timeout_s: float, record, log) -> tuple[dict, dict]:
    """Both guests' overlays made and QEMU started in the lease's namespace
    (each pid in the record as it starts), then waited for until SSH
    answers; a guest left running is killed if that fails. Returns the
    guests (argv, pid, proc) and their seconds from QEMU's start to ready."""
    nx = ["ip", "netns", "exec", ns]
    guests, t_boot = {}, time.monotonic()
    for i, role in enumerate(ROLES):
        disk = run_dir / f"{role}.qcow2"
        disk.unlink(missing_ok=True)
        f = files[role]
        run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", f["disk"],
             str(disk)], log=log, timeout=60)
        serial = run_dir / f"{role}.console"
        argv = qemu_argv(v, name=f"rxb-{role}", accel=accel, kernel=f["kernel"],
                         initrd=f["initrd"], disk=str(disk),
                         append=kernel_append(v, role, mgmt["net"], f["append"]),
                         tap=f"tap{i}", test_mac=TEST_MACS[role], mgmt_mac=MGMT_MACS[role],
                         hostfwd=f"tcp:{mgmt['ns_ip']}:{SSH_PORTS[role]}-:22",
                         serial=str(serial), fw_cfg=fw_cfg[role])
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


# -- over SSH, once booted and before each cell ---------------------------------
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

