"""Multi-queue cells: which TX queue a sender's frames take, and a check
that every receive queue of a multi-core cell got traffic.

TX queue of an AF_PACKET socket with PACKET_QDISC_BYPASS (net/packet/
af_packet.c, packet_pick_tx_queue): the device's ndo_select_queue if it
has one (veth has none), else netdev_pick_tx(): the socket has no cached
queue, so XPS (/sys/class/net/IF/queues/tx-N/xps_cpus) if it maps the
sending CPU, else skb_tx_hash(), which returns the "recorded RX queue"
packet_pick_tx_queue stored: the sending CPU modulo real_num_tx_queues.
veth then delivers to the peer's RX queue of the same number
(veth_xmit: rxq = skb_get_queue_mapping). So the queue-to-flow mapping is
explicit when each sending thread is pinned to its own CPU and those CPUs
differ modulo the queue count (or XPS maps each to its queue):
`tx_queues(cpus, n, xps)` gives the queue of each, `mapping_problem` says
why a set of CPUs cannot spread over n queues. rxb-gen --threads T --cpus
LIST sends one flow per thread (UDP source port 1024 + i) from thread i
pinned to LIST[i % len]; tests/test_queues.py checks this rule on a real
2-queue veth (thread CPUs 0,1 -> RX queues 0,1; both threads on one CPU ->
one queue; XPS masks move a CPU to the queue they name). Where XPS maps a
CPU to several queues the kernel hashes the flow among them; tx_queue()
takes the lowest (the testbeds set no such masks).

Elsewhere (a NIC, virtio behind a tap) the receiver's RSS hash of the flow
picks the RX queue, not the sender's TX queue: distinct flows per thread
make spreading likely, not certain, and the runner's per-queue check
(spread_problem) fails a multi-core cell whose queues did not all receive.
There, `steer` gives the receiver as many queues as the cell has receiver
cores (`ethtool -L IF combined N`, RSS spreading over them; where the NIC
has no combined channels, its RSS table: `ethtool -X IF equal N`), undone
at teardown from the host's state record, and records the NIC's link speed and which CPU
takes each queue's interrupt; `record_cell` puts them, the packets each
queue received (kernel ethtool -S, or the DPDK port's per-queue xstats when
DPDK's own PMD has the NIC) and the rate as a fraction of line rate into
the cell.
"""

from __future__ import annotations

import re

from . import RxbenchError, TestbedError

# per-queue receive counters: ethtool -S (veth: rx_queue_N_xdp_packets; virtio_net
# before 6.10: rx_queue_N_packets, since: rx<N>_xdp_packets only, its packets
# moved to netdev qstats; mlx5: rx<N>_packets) and DPDK xstats (rx_qN_packets;
# the virtio PMD: rx_qN_good_packets)
_RXQ = re.compile(r"^rx_queue_(\d+)_(xdp_packets|packets)$|^rx(\d+)_(xdp_packets|packets)$"
                  r"|^rx_q(\d+)_(packets|good_packets)$")
# preferred name when a driver has several for one queue: every frame the
# queue took (virtio_net counts rx_queue_N_packets with or without XDP;
# veth has only xdp_packets)
_RANK = {"packets": 0, "good_packets": 0, "xdp_packets": 1}


def tx_queue(cpu: int, n_tx: int, xps: dict[int, set[int]] | None = None) -> int:
    """The TX queue the kernel picks for a frame sent from `cpu` on a
    device with `n_tx` TX queues and no ndo_select_queue; `xps` maps a
    queue to the CPUs its xps_cpus mask names."""
    if n_tx < 1:
        raise ValueError("a device has at least one TX queue")
    for q, cpus in sorted((xps or {}).items()):
        if cpu in cpus and q < n_tx:
            return q
    return cpu % n_tx


def parse_cpumask(text: str) -> set[int]:
    """CPUs of a sysfs CPU mask ("3", "00000000,00000001"; empty = none)."""
    t = text.strip().replace(",", "")
    if not t:
        return set()
    try:
        v = int(t, 16)
    except ValueError:
        raise ValueError(f"not a CPU mask: {text!r}") from None
    return {i for i in range(v.bit_length()) if v >> i & 1}


def read_xps(host, ifname: str, n_tx: int) -> dict[int, set[int]]:
    """The xps_cpus masks of an interface's TX queues on a host (queues
    without XPS or without the file are left out)."""
    out = {}
    for q in range(n_tx):
        text = host.read_file(f"/sys/class/net/{ifname}/queues/tx-{q}/xps_cpus")
        cpus = parse_cpumask(text or "")
        if cpus:
            out[q] = cpus
    return out


def tx_queues(cpus: list[int], n_tx: int, xps: dict[int, set[int]] | None = None) -> list[int]:
    return [tx_queue(c, n_tx, xps) for c in cpus]


def mapping_problem(cpus: list[int], n_queues: int,
                    xps: dict[int, set[int]] | None = None) -> str | None:
    """None if one sending thread per CPU in `cpus` reaches every one of
    `n_queues` queues exactly once; else why not."""
    if len(cpus) != n_queues:
        return f"{len(cpus)} sending CPU(s) for {n_queues} queue(s): one thread per queue needed"
    qs = tx_queues(cpus, n_queues, xps)
    if sorted(qs) != list(range(n_queues)):
        return (f"CPUs {cpus} send on TX queues {qs} of {n_queues}: "
                f"queues {sorted(set(range(n_queues)) - set(qs))} would get nothing")
    return None


def per_queue_received(a: dict, b: dict) -> dict[int, int]:
    """Frames per receive queue over [a, b] from the receiver's ethtool -S
    or a DPDK port's xstats: per queue, one counter (rx_queue_N_packets
    where the driver has it, else rx_queue_N_xdp_packets: veth), never
    two of them summed."""
    best: dict[int, tuple[int, str]] = {}
    for k in b:
        m = _RXQ.match(k)
        if m:
            g = [x for x in m.groups() if x is not None]
            q, rank = int(g[0]), _RANK[g[1]]
            if q not in best or rank < best[q][0]:
                best[q] = (rank, k)
    return {q: int(b[k]) - int(a.get(k, 0)) for q, (_, k) in sorted(best.items())}


def spread_problem(a: dict, b: dict, queues: int) -> str | None:
    """None if every one of `queues` receive queues got frames over [a, b];
    else the reason a multi-core cell fails."""
    per = per_queue_received(a, b)
    if not per:
        return "no per-queue receive counters (ethtool -S): cannot check the queues"
    idle = [q for q in range(queues) if per.get(q, 0) <= 0]
    if idle:
        return (f"receive queue(s) {idle} of {queues} got no frames "
                f"(per queue: {dict(sorted(per.items()))}): the traffic did not spread")
    return None


# -- the receiver's queues in a cell (ssh, vm, g5k: a NIC or virtio) ----------
# the NIC's interrupts: its PCI function's MSI vectors (a virtio device's
# parent), each one's name in /proc/interrupts and its CPU affinity
IRQ_PROBE = r"""
d=$(readlink -f /sys/class/net/$1/device 2>/dev/null) || exit 0
case $(readlink -f $d/subsystem) in */bus/virtio) d=$(dirname $d);; esac
for irq in $(ls $d/msi_irqs 2>/dev/null | sort -n); do
  name=$(awk -v i="$irq:" '$1 == i {print $NF}' /proc/interrupts)
  echo "$irq ${name:-?} $(cat /proc/irq/$irq/smp_affinity_list 2>/dev/null || echo ?) \
$(cat /proc/irq/$irq/effective_affinity_list 2>/dev/null || echo ?)"
done
"""


def parse_irqs(text: str) -> list[dict]:
    """IRQ_PROBE's lines -> [{irq, name, affinity, effective}]."""
    out = []
    for line in text.splitlines():
        f = line.split()
        if len(f) == 4 and f[0].isdigit():
            out.append({"irq": int(f[0]), "name": f[1], "affinity": f[2], "effective": f[3]})
    return out


def line_rate_pps(speed_mbps: int | None, size: int) -> float | None:
    """Frames per second a link of speed_mbps carries at `size` bytes (FCS
    included) with preamble, SFD and inter-frame gap (20 bytes)."""
    if not speed_mbps or speed_mbps <= 0:
        return None
    return speed_mbps * 1e6 / ((size + 20) * 8)


def steer(tb, n: int) -> dict:
    """Before a cell: the receiver's RSS spread over n queues (ethtool -L IF
    combined n, else ethtool -X IF equal n where the NIC has no combined
    channels; what to undo goes to the host's state record first), its
    link speed and each queue's NAPI and IRQ placement. A single-queue NIC
    is left alone. The result goes into the cell (record_cell)."""
    r = tb.receiver
    host, ifn = r.host, r.ifname
    out: dict = {"queues_asked": n}
    speed = (host.read_file(f"/sys/class/net/{ifn}/speed") or "").strip()
    out["link_speed_mbps"] = int(speed) if speed.lstrip("-").isdigit() and int(speed) > 0 else None
    rxqs = host.run(["sh", "-c", f"ls -d /sys/class/net/{ifn}/queues/rx-* 2>/dev/null"],
                    check=False).split()
    out["rx_queues"] = len(rxqs)
    out["irqs"] = parse_irqs(host.run(["sh", "-c", IRQ_PROBE, "sh", ifn], check=False))
    chans = host.run(["ethtool", "-l", ifn], check=False)
    m = re.findall(r"^Combined:\s*(\d+)", chans, re.M)
    most = int(m[0]) if len(m) >= 2 and int(m[0]) > 0 else len(rxqs)
    if most <= 1:
        out["rss"] = "single queue"
        out["netdev"] = netdev_probe(host, ifn)
        return out
    if n > most:
        raise TestbedError(f"receiver {host.key}: {n} receiver cores asked, {ifn} has "
                           f"{most} receive queues")
    # the channel count first: an RSS table alone does not hold on virtio_net,
    # where attaching an XDP program re-sends the queue count and QEMU then
    # turns RSS off (seen: a cores=1 cell's frames on both queues)
    if len(m) >= 2 and int(m[0]) >= n:
        old = int(m[1])
        if old != n:
            host.registry.add("rxfh", [ifn, "combined", old])
            tb._run(r, ["ethtool", "-L", ifn, "combined", str(n)])
        out["rss"] = f"ethtool -L {ifn} combined {n} (was {old})"
    else:
        # no combined channels to set: the RSS indirection table instead
        host.registry.add("rxfh", [ifn, "equal", None])
        try:
            tb._run(r, ["ethtool", "-X", ifn, "equal", str(n)])
        except RxbenchError as e:
            raise TestbedError(f"receiver {host.key}: cannot spread over {n} queues of {ifn}: "
                               f"no combined channels and ethtool -X refused ({e})") from None
        out["rss"] = f"ethtool -X {ifn} equal {n}"
    table = host.run(["ethtool", "-x", ifn], check=False)
    out["rss_table"] = table.strip()[:2000]
    # each queue's NAPI instance and the per-queue packet counters (qstats)
    # once the queues are set, before the cell, from the netdev netlink
    # family (rxbench.netdev_nl)
    out["netdev"] = netdev_probe(host, ifn)
    return out


def netdev_probe(host, ifname: str) -> dict:
    """rxbench.netdev_nl on the host: queues, their NAPI ids, qstats."""
    import json
    try:
        text = host.run([*host.python_module("rxbench.netdev_nl"), ifname], check=False)
        return json.loads(text.strip().splitlines()[-1])
    except (RxbenchError, ValueError, IndexError) as e:
        return {"queues": [], "napis": [], "qstats": {}, "error": [f"netdev_nl: {e}"]}


def _qstats(d: dict) -> dict:
    return {f"rx_queue_{q}_packets": v for q, v in ((d or {}).get("qstats") or {})
            .get("rx", {}).items()}


def queue_napi(setup: dict, placement: dict | None, ifname: str) -> list[dict]:
    """Each receive queue's NAPI instance and, when NAPI is threaded, its
    kthread (napi/IF-ID) and the CPUs it was pinned to."""
    threads = {t["name"]: t for t in ((placement or {}).get("napi") or {}).get("threads", [])}
    out = []
    for q in (setup.get("netdev") or {}).get("queues", []):
        if q.get("type") != "rx":
            continue
        t = threads.get(f"napi/{ifname}-{q.get('napi_id')}")
        out.append({"queue": q["id"], "napi_id": q.get("napi_id"),
                    "kthread": t["name"] if t else None, "cpus": t.get("cpus") if t else None})
    return out


def record_cell(out: dict, tb, a: dict, b: dict, cores: int, size: int,
                placement: dict | None = None) -> None:
    """Into the cell: the receiver's queue set-up (steer), the frames each
    queue received and where they were counted: ethtool -S over [a, b];
    else the DPDK port's xstats (DPDK's own PMD has the NIC); else the
    netdev qstats from before the receiver started to now (warm-up
    included: a driver that keeps per-queue packets only there, like
    virtio_net >= 6.10 without XDP). Also each queue's NAPI, the link speed
    and the rate as a fraction of line rate; RxbenchError if a multi-core
    cell left a queue idle."""
    ifname = tb.receiver.ifname
    setup = dict(getattr(tb, "queue_setup", None) or {})
    eth = lambda s: s["receiver"]["counters"].get("ethtool", {}).get(ifname)  # noqa: E731
    xs = lambda s: s["receiver"]["tool"].get("xstats") or {}  # noqa: E731
    ca = cb = {}
    source = "none"
    if eth(a) and eth(b) and sum(per_queue_received(eth(a), eth(b)).values()) > 0:
        ca, cb, source = eth(a), eth(b), f"ethtool -S {ifname}, measured interval"
    elif sum(per_queue_received(xs(a), xs(b)).values()) > 0:
        ca, cb, source = xs(a), xs(b), "DPDK port xstats, measured interval"
    elif setup.get("netdev", {}).get("qstats"):
        after = netdev_probe(tb.receiver.host, ifname)
        ca, cb = _qstats(setup["netdev"]), _qstats(after)
        source = "netdev qstats, from before the receiver started to its end (warm-up included)"
    out["per_queue_rx"] = per_queue_received(ca, cb)
    out["per_queue_source"] = source
    rate = line_rate_pps(setup.get("link_speed_mbps"), size)
    setup["line_rate_pps"] = rate
    setup["queue_napi"] = queue_napi(setup, placement, ifname)
    out["queues"] = setup
    out["fraction_of_line_rate"] = (out["rx_pps"] / rate if rate and "rx_pps" in out else None)
    # the vm platform's accelerator: under TCG the rates (and this fraction)
    # say nothing about the stacks, only that each path ran
    accel = ((getattr(tb, "inventory", None) or {}).get("provenance") or {}).get("accel")
    if accel:
        out["accel"] = accel
        if accel == "tcg":
            out["rate_note"] = ("TCG guests (software emulation): rates and the fraction of "
                                "line rate say nothing about the stacks")
    if cores > 1:
        why = spread_problem(ca, cb, cores)
        if why:
            raise RxbenchError(f"multi-core cell: {why} ({source})")
    why = stray_problem(out["per_queue_rx"], cores)
    if why:
        raise RxbenchError(f"{why} ({source})")


def stray_problem(per: dict[int, int], cores: int, tolerance: float = 0.01) -> str | None:
    """None unless more than `tolerance` of the frames arrived on receive
    queues beyond the cell's first `cores` (a receiver bound to queues
    0..cores-1, AF_XDP or DPDK, never sees them: the steering failed)."""
    total = sum(per.values())
    stray = {q: v for q, v in per.items() if int(q) >= cores and v > 0}
    if total > 0 and sum(stray.values()) > tolerance * total:
        return (f"{sum(stray.values())} of {total} frames arrived on queue(s) "
                f"{sorted(int(q) for q in stray)} beyond the cell's {cores} "
                f"(per queue: {dict(sorted(per.items()))}): the receive steering failed")
    return None
