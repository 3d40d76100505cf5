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
"""

from __future__ import annotations

import re

_RXQ = re.compile(r"^rx_queue_(\d+)_(xdp_packets|packets)$")


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
    (veth: rx_queue_N_xdp_packets with an XDP program or NAPI, else
    rx_queue_N_packets where the driver has it)."""
    out: dict[int, int] = {}
    for k, v in b.items():
        m = _RXQ.match(k)
        if m:
            q = int(m.group(1))
            out[q] = out.get(q, 0) + int(v) - int(a.get(k, 0))
    return out


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
