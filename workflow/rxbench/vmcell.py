"""One Ethernet cell in the vm platform's guests over SSH: the receiver
tool in the receiver guest, Linux pktgen (rxb-pktgen) in the sender guest,
snapshots a/b of both tools (SIGUSR1 sent in the guest) and of the
receiver guest's /proc/stat around the measured interval, the result in
the cell contract with the lease's provenance (accel, guest kernel, QEMU
command lines).

This is the vm platform's own path until the host-generic runner (the
`core` engineer's SshTestbed) lands; it reuses proc.Tool, measure and
provenance, and writes nothing on failure or interruption but the log.
"""

from __future__ import annotations

import shlex
import subprocess
import time

from . import RxbenchError, provenance
from .measure import cpu_delta, parse_proc_stat
from .platforms.vm import ROLES, health, ssh
from .proc import Tool
from .result import validate_result
from .util import atomic_write_json

GUEST_NATIVE = "/opt/rxbench/native/build"
PIDFILE = "/run/rxb-{role}.pid"
GUEST_TESTPMD = "/run/rxb-testpmd.py"     # rxbench/testpmd.py (stdlib only), copied per cell
HUGEPAGES_2M = 128                        # 256 MiB of the guest's memory for DPDK
DPDK_BINDING = "uio_pci_generic"          # Debian's kernels lack VFIO_NOIOMMU (vm.md)


class VmCellError(RxbenchError):
    pass


def receiver_command(stack: str, ifname: str, bound_s: float) -> list[str]:
    b = f"{bound_s:.3f}"
    if stack == "xdp_drop":
        return [f"{GUEST_NATIVE}/rxb-xdp-drop", "--ifname", ifname, "--mode", "native",
                "--duration", b]
    if stack == "af_packet":
        return [f"{GUEST_NATIVE}/rxb-af-packet", "--ifname", ifname, "--duration", b]
    if stack == "af_xdp":
        return [f"{GUEST_NATIVE}/rxb-af-xdp", "--ifname", ifname, "--queues", "1",
                "--cpus", "0", "--bind", "auto", "--mode", "native", "--wait", "poll",
                "--batch", "64", "--duration", b]
    if stack == "dpdk":
        # DPDK's own virtio PMD (net_virtio) on the NIC bound to uio_pci_generic;
        # one vCPU: the main and the forwarding lcore share it
        return ["python3", GUEST_TESTPMD, "--duration", b, "--runtime-dir",
                "/var/run/dpdk/rxbvm", "--", "stdbuf", "-oL", "dpdk-testpmd",
                "--lcores", "0@0,1@0", "-a", "{pci}", "--file-prefix", "rxbvm", "--",
                "-i", "--total-num-mbufs=8192", "--nb-cores=1", "--forward-mode=rxonly"]
    raise VmCellError(f"vm cell: stack {stack!r} is not wired on the ssh path yet")


def dpdk_bind(inv: dict, log) -> dict:
    """Hand the receiver guest's test NIC to DPDK: hugepages, uio_pci_generic,
    the device unbound from virtio-pci (test0 disappears). Returns what ran."""
    import base64
    from .platforms.vm import ROOT
    wrapper = base64.b64encode((ROOT / "workflow/rxbench/testpmd.py").read_bytes()).decode()
    ssh(inv, f"echo {wrapper} | base64 -d > {GUEST_TESTPMD}", timeout=60)
    ifn = inv["test_interface"]
    out = ssh(inv, "set -e; modprobe uio_pci_generic; "
                   f"echo {HUGEPAGES_2M} > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages; "
                   f"pci=$(basename $(readlink -f /sys/class/net/{ifn}/device/..)); "
                   f"drv=$(basename $(readlink -f /sys/bus/pci/devices/$pci/driver)); "
                   f"dpdk-devbind.py --force -b {DPDK_BINDING} $pci >&2; "
                   "echo $pci $drv; cat /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages",
              timeout=120, log=log)
    pci, drv, pages = out.split()
    return {"binding": DPDK_BINDING, "pci": pci, "kernel_driver": drv,
            "hugepages_2M": int(pages), "pmd": "net_virtio"}


def dpdk_unbind(inv: dict, peer: dict, bound: dict, log) -> None:
    """Give the NIC back to virtio-pci, name it and address it as rxb-init
    did, restore the static neighbour, free the hugepages."""
    ifn, mac = inv["test_interface"], inv["mac"]
    ssh(inv, f"dpdk-devbind.py -b {bound['kernel_driver']} {bound['pci']} >&2; "
             "for i in $(seq 50); do for d in /sys/class/net/*; do "
             f"[ \"$(cat $d/address)\" = {mac} ] && n=${{d##*/}} && break 2; done; sleep 0.1; done; "
             f"[ \"$n\" = {ifn} ] || ip link set $n name {ifn}; "
             f"ip addr replace {inv['test_ip']}/{inv['prefix']} dev {ifn}; ip link set {ifn} up; "
             f"ip neigh replace {peer['test_ip']} lladdr {peer['mac']} dev {ifn} nud permanent; "
             "echo 0 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages; "
             f"cat /sys/class/net/{ifn}/operstate", timeout=120, log=log)


TCP_PORT = 5201
TCP_MSG = 65536


def tcp_commands(stack: str, rx: dict, gen: dict, bound_s: float, send_s: float,
                 conns: int = 1, msg: int = TCP_MSG, touch: int = 0) -> tuple[list[str], list[str]]:
    """rxb-tcp-server (mode = the stack) in the receiver guest, rxb-tcp-send
    with `conns` connections of `msg`-byte writes in the sender guest."""
    server = [f"{GUEST_NATIVE}/rxb-tcp-server", "--mode", stack, "--port", str(TCP_PORT),
              "--addr", rx["test_ip"], "--cpus", "0", "--duration", f"{bound_s:.3f}"]
    if touch:
        server.append("--touch")
    if stack == "uring_zcrx":
        # device-less zcrx (ZCRX_REG_NODEV): the whole RECV_ZC path, every byte
        # through the copy fallback; never zero-copy (virtio-net has no queue API)
        server.append("--zcrx-nodev")
    send = [f"{GUEST_NATIVE}/rxb-tcp-send", "--dst", rx["test_ip"], "--port", str(TCP_PORT),
            "--conns", str(conns), "--msg", str(msg), "--cpus", "0",
            "--duration", f"{send_s:.3f}"]
    return server, send


def pktgen_command(inv: dict, peer: dict, size: int, bound_s: float,
                   rate_pps: int = 0) -> list[str]:
    argv = [f"{GUEST_NATIVE}/rxb-pktgen", "--ifname", inv["test_interface"],
            "--dst", peer["test_ip"], "--dst-mac", peer["mac"], "--size", str(size),
            "--duration", f"{bound_s:.3f}", "--burst", "1", "--clone-skb", "0"]
    if rate_pps:
        argv += ["--rate-pps", str(rate_pps)]
    return argv


def _remote(inv: dict, role: str, argv: list[str]) -> list[str]:
    """ssh that runs argv in the guest, its pid in a file so that signals
    reach the tool itself (ssh forwards none)."""
    from .platforms.vm import ssh_argv
    pidfile = PIDFILE.format(role=role)
    return ssh_argv(inv, f"echo $$ > {pidfile}; exec {shlex.join(argv)}", timeout=30)


def _signal(inv: dict, role: str, sig: str) -> None:
    ssh(inv, f"kill -{sig} $(cat {PIDFILE.format(role=role)})", timeout=60, check=False)


def _snapshot(inventory: dict, tools: dict) -> dict:
    rx, gen = inventory["receiver"], inventory["sender"]
    n_rx, n_gen = len(tools["receiver"].events), len(tools["generator"].events)
    # both guests asked at once (an SSH round trip takes seconds under TCG)
    from .platforms.vm import ssh_argv
    g = subprocess.Popen(ssh_argv(gen, f"kill -USR1 $(cat {PIDFILE.format(role='generator')})"),
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        stat = ssh(rx, f"kill -USR1 $(cat {PIDFILE.format(role='receiver')}); cat /proc/stat",
                   timeout=60)
    finally:
        try:
            g.wait(60)
        except subprocess.TimeoutExpired:
            g.kill()
            g.wait()
    return {"stat": parse_proc_stat(stat),
            "rx": tools["receiver"].wait_event("snapshot", 60, after=n_rx),
            "gen": tools["generator"].wait_event("snapshot", 60, after=n_gen)}


def run_cell(inventory: dict, layer: str, stack: str, size: int, duration_s: float,
             warmup_s: float, out: str | None, log, rep: int = 1,
             tcp: dict | None = None) -> dict:
    """Measure one cell (eth: `size`-byte frames from Linux pktgen; tcp: one
    connection); write the result to `out` (when given) and return it."""
    started = time.time()
    health(inventory, log)
    rx, gen = inventory["receiver"], inventory["sender"]
    bound = warmup_s + duration_s + 120.0      # TCG: SSH round trips take seconds
    if layer == "tcp":
        tp = {"conns": 1, "msg": TCP_MSG, "touch": 0, **(tcp or {})}
        rx_argv, gen_argv = tcp_commands(stack, rx, gen, bound, warmup_s + duration_s + 60.0,
                                         tp["conns"], tp["msg"], tp["touch"])
    else:
        rx_argv = receiver_command(stack, rx["test_interface"], bound)
        gen_argv = pktgen_command(gen, rx, size, warmup_s + duration_s + 60.0)
    count = "bytes" if layer == "tcp" else "packets"
    bound_nic = None
    if stack == "dpdk":
        bound_nic = dpdk_bind(rx, log)
        rx_argv = [a.replace("{pci}", bound_nic["pci"]) for a in rx_argv]
    tools = {"receiver": Tool("receiver", _remote(rx, "receiver", rx_argv), log,
                              name=rx_argv[0].rsplit("/", 1)[-1]),
             "generator": Tool("generator", _remote(gen, "generator", gen_argv), log,
                               name=gen_argv[0].rsplit("/", 1)[-1])}
    try:
        tools["receiver"].start()
        ready_rx = tools["receiver"].wait_event("ready", 120)
        tools["generator"].start()
        tools["generator"].wait_event("ready", 120)
        time.sleep(warmup_s)
        a = _snapshot(inventory, tools)
        time.sleep(duration_s)
        b = _snapshot(inventory, tools)
    finally:
        for role, t in (("generator", gen), ("receiver", rx)):
            tool = tools[role]
            if tool.p is not None and tool.p.poll() is None:
                _signal(t, role, "TERM")
                tool.wait(60)
        if bound_nic:
            dpdk_unbind(rx, gen, bound_nic, log)
    gen_s = (b["gen"]["t_ns"] - a["gen"]["t_ns"]) / 1e9
    rx_s = (b["rx"]["t_ns"] - a["rx"]["t_ns"]) / 1e9
    sent = int(b["gen"][count]) - int(a["gen"][count])
    got = int(b["rx"][count]) - int(a["rx"][count])
    cpu = cpu_delta(a["stat"], b["stat"])
    rx_rate, offered = got / rx_s, sent / gen_s
    lease = inventory.get("provenance", {})
    prov = provenance.collect({}, [t.command for t in tools.values()],
                              {r: {k: inventory[r][k] for k in ("address", "port",
                                                                "test_interface", "test_ip",
                                                                "mac")} for r in ROLES},
                              "virtio_net", started)
    prov["platform"] = lease
    prov["guest_tools"] = {"receiver": rx_argv, "generator": gen_argv,
                           "receiver_ready": ready_rx}
    if bound_nic:
        prov["dpdk"] = bound_nic
    if stack == "af_xdp":
        prov["af_xdp_bind"] = ready_rx.get("bind")
    if layer == "tcp":
        rates = {"params": {"cores": 1, **tp, "generator": "rxb-tcp-send"},
                 "offered_pps": None, "rx_pps": None, "rx_gbps": rx_rate * 8 / 1e9,
                 "offered_gbps": offered * 8 / 1e9, "sent_bytes": sent, "rx_bytes": got,
                 "drops": {}}
    else:
        rates = {"params": {"cores": 1, "size": size, "generator": "pktgen"},
                 "offered_pps": offered, "rx_pps": rx_rate, "rx_gbps": rx_rate * size * 8 / 1e9,
                 "sent_packets": sent, "rx_packets": got,
                 "drops": {"unaccounted": max(0, sent - got)}}
    result = {
        "platform": "vm", "layer": layer, "stack": stack, "rep": rep,
        "status": "ok", "reason": "", "accel": lease.get("accel"),
        "duration_s": round(rx_s, 6), **rates,
        "cpu": {c: {k: round(v[k], 4) for k in ("busy_s", "user_s", "sys_s", "softirq_s",
                                                "irq_s", "busy_frac")} for c, v in cpu.items()},
        "generator_bound": False, "provenance": prov,
    }
    # each tool's own last word (TCP: every byte the sender wrote must be
    # in the server's count; zcrx=nodev: the kernel's copy counters)
    finals = {role: tools[role].find("final") for role in tools}
    result["finals"] = finals
    if layer == "tcp" and finals["receiver"] and finals["generator"]:
        result["bytes_verified"] = finals["receiver"].get("bytes") == finals["generator"].get("bytes")
    if lease.get("accel") == "tcg":
        result["note"] = ("guests under TCG (software emulation): rates say nothing about "
                          "the stacks")
    validate_result(result)
    if out:
        atomic_write_json(out, result)
    unit = "B/s" if layer == "tcp" else "pps"
    log(f"vm cell {layer}/{stack}: offered {offered:.0f} {unit}, received {rx_rate:.0f} {unit} "
        f"over {rx_s:.1f} s ({lease.get('accel')})")
    return result


WIRED = {"eth": ("xdp_drop", "af_packet", "af_xdp", "dpdk"),
         "tcp": ("blocking", "epoll", "uring", "uring_opt", "uring_zcrx")}


def run_from_runner(out_path: str, cfg: dict, log_path: str | None = None) -> int:
    """A cell of the Snakefile on the vm platform (runner.run_cell's hook):
    the lease boots the guests once per campaign (it watches snakemake, our
    parent), the cell runs over SSH; a stack not wired here yet is written
    `unsupported` with the reason, a failure `failed`; an interrupted cell
    writes nothing."""
    from . import cells, lease
    from .runner import Interrupted, signals_raise
    from .util import Log
    cell = cells.parse(out_path, cfg)
    log = Log(log_path)
    started = time.time()
    base = {"platform": "vm", "layer": cell.layer, "stack": cell.stack, "params": cell.params,
            "rep": cell.rep, "status": "ok", "reason": "", "duration_s": 0.0,
            "offered_pps": None, "rx_pps": None, "rx_gbps": None, "drops": {}, "cpu": {},
            "generator_bound": False}
    with signals_raise():
        try:
            if cell.stack not in WIRED[cell.layer]:
                raise _Unwired(f"{cell.layer} stack {cell.stack} is not wired on the vm "
                               f"platform yet (wired: {', '.join(WIRED[cell.layer])})")
            if cell.stack == "uring_zcrx" and cell.params.get("zcrx", "nodev") != "nodev":
                raise _Unwired("zcrx on a device needs a NIC with the queue management API "
                               "(header split, flow steering): virtio-net has none; the vm "
                               "platform runs zcrx=nodev (copy fallback)")
            inventory = lease.ensure("vm", cfg, log)
            duration = cfg["duration_s"] if cell.layer == "eth" else cfg["tcp"]["duration_s"]
            result = run_cell(inventory, cell.layer, cell.stack,
                              cell.params.get("size", 0), duration, cfg["warmup_s"], None, log,
                              cell.rep, tcp={k: cell.params[k] for k in ("conns", "msg", "touch")
                                             if k in cell.params})
            result["params"] = {**cell.params, **result["params"]}
        except _Unwired as e:
            result = {**base, "status": "unsupported", "reason": str(e)}
        except RxbenchError as e:
            result = {**base, "status": "failed", "reason": str(e)}
        except Interrupted as e:
            log(f"interrupted by {e}: no result written (the lease releases the guests "
                f"when the campaign is gone)")
            log.close()
            return 128 + e.signum
    if "provenance" not in result:
        result["provenance"] = provenance.collect({}, [], {}, "virtio_net", started)
    validate_result(result, out_path)
    atomic_write_json(out_path, result)
    log(f"status {result['status']}" + (f": {result['reason']}" if result["reason"] else ""))
    log.close()
    return 0


class _Unwired(RxbenchError):
    pass
