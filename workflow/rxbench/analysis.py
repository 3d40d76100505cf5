"""Turning two snapshots of a cell into its result: rates, drops by stage,
CPU cost, and what limited the rate."""

from __future__ import annotations

from .measure import cpu_delta, delta, tcp_drops

SATURATED = 0.95          # a CPU busier than this over the interval was the limit
GENERATOR_BOUND = 0.99    # received >= 99% of offered: maybe the sender's limit


def _drops(a: dict, b: dict, rx, gen) -> tuple[dict, dict]:
    """Receive-side losses over the interval, and the sender's refusals.
    Frames veth refused while its peer's ring was full (sender tx_dropped)
    are back-pressure when the generator sends them again (rxb-gen counts
    only frames the kernel accepted), and a loss stage when it does not
    (dpdk-txonly counts them as sent)."""
    snd = delta(a["links"]["sender"], b["links"]["sender"])
    rcv = delta(a["links"]["receiver"], b["links"]["receiver"])
    eth = delta(a["links"]["receiver_ethtool"], b["links"]["receiver_ethtool"])
    drops = {
        "receiver_rx_dropped": rcv.get("rx_dropped", 0),
        "receiver_rx_missed": rcv.get("rx_missed", 0),
        "receiver_rx_errors": rcv.get("rx_errors", 0),
        "veth_rx_queue_drops": sum(v for k, v in eth.items()
                                   if k.startswith("rx_queue_") and k.endswith("_drops")
                                   and "xdp" not in k),
        **rx.stage_drops(a["rx"], b["rx"]),
    }
    if not gen.retries_refused:
        drops["sender_veth_refused"] = snd.get("tx_dropped", 0)
    backpressure = {
        "sender_tx_dropped": snd.get("tx_dropped", 0),
        "sender_tx_errors": snd.get("tx_errors", 0),
        "generator_retries": int(b["gen"].get("backpressure", 0)) - int(a["gen"].get("backpressure", 0)),
    }
    return drops, backpressure


def analyse(cell, a: dict, b: dict, placement, gen, rx) -> dict:
    """Rates, drops and CPU cost over the measured interval [a, b]."""
    size = cell.params["size"]
    gen_s = (b["gen"]["t_ns"] - a["gen"]["t_ns"]) / 1e9
    rx_s = (b["rx"]["t_ns"] - a["rx"]["t_ns"]) / 1e9
    sent = gen.sent(b["gen"]) - gen.sent(a["gen"])
    got = rx.received(b["rx"]) - rx.received(a["rx"])
    offered_pps = sent / gen_s
    rx_pps = got / rx_s
    cpu = cpu_delta(a["stat"], b["stat"])
    saturated = sorted((int(c) for c, v in cpu.items() if v["busy_frac"] >= SATURATED))
    rx_only = set(placement.receiver_only)
    if rx.polls():
        # a polling receiver keeps its core busy whatever the load: that
        # core being saturated says nothing about who set the rate
        rx_only -= set(placement.application) - set(placement.napi)
    rx_saturated = bool(rx_only & set(saturated))
    gen_saturated = bool(set(placement.generator) & set(saturated))
    lossless = rx_pps >= GENERATOR_BOUND * offered_pps
    bottleneck = ("receiver" if rx_saturated else
                  "generator" if gen_saturated else "none")
    # CPU cost per packet: the receive side's CPUs, when none is shared
    # with the generator (napi=sender puts the receive path on its CPU)
    rx_cpus = set(placement.application) | set(placement.napi)
    separable = not (rx_cpus & set(placement.generator))
    rx_busy = sum(cpu[str(c)]["busy_s"] for c in rx_cpus)
    processes = {}
    for name in b["procs"]:
        pa, pb = a["procs"].get(name), b["procs"].get(name)
        if pa and pb:
            processes[name] = {"user_s": round(pb["user_s"] - pa["user_s"], 4),
                               "sys_s": round(pb["sys_s"] - pa["sys_s"], 4),
                               "last_cpu": pb["last_cpu"]}
    drops, backpressure = _drops(a, b, rx, gen)
    # the receive-side stages nest (a frame the AF_XDP socket drops is also
    # a veth drop), so the largest is what they explain for sure; frames the
    # sender's veth refused never reached them
    refused = drops.get("sender_veth_refused", 0)
    known = refused + max((v for k, v in drops.items() if k != "sender_veth_refused"),
                          default=0)
    return {
        "duration_s": round(rx_s, 6),
        "offered_pps": offered_pps,
        "rx_pps": rx_pps,
        # frame bits as RFC 2544 counts them (FCS included, no preamble/IFG)
        "rx_gbps": rx_pps * size * 8 / 1e9,
        "offered_gbps": offered_pps * size * 8 / 1e9,
        "sent_packets": sent,
        "rx_packets": got,
        # what was offered but not received, as each stage counted it (stages
        # overlap); "unaccounted" is what no stage explains (in flight at the
        # interval's edges, or a stage we cannot read)
        "drops": {**drops, "unaccounted": max(0, sent - got - known)},
        "backpressure": backpressure,
        "cpu": {c: {k: round(v[k], 4) for k in ("busy_s", "user_s", "sys_s", "softirq_s",
                                                "irq_s", "busy_frac")} for c, v in cpu.items()},
        "cpu_ns_per_pkt": (rx_busy * 1e9 / got) if (got and separable) else None,
        "processes": processes,
        "saturated_cpus": saturated,
        "bottleneck": bottleneck,
        # loss-free and no receiver-only CPU at its limit: the generator (or a
        # CPU shared with it) set the rate, not the stack. veth pushes back on
        # the sender when the receiver falls behind, so loss-free alone proves
        # nothing there.
        "generator_bound": bool(lossless and not rx_saturated),
    }


def analyse_tcp(cell, a: dict, b: dict, placement, rx_bytes: int, rx_s: float,
                sent_bytes: int, sent_s: float) -> dict:
    """Goodput, CPU per byte and TCP's own loss counters over [a, b]."""
    cpu = cpu_delta(a["stat"], b["stat"])
    saturated = sorted(int(c) for c, v in cpu.items() if v["busy_frac"] >= SATURATED)
    server_cpus = set(placement.application)
    sender_cpus = set(placement.generator)
    server_sat = bool(server_cpus & set(saturated))
    sender_sat = bool(sender_cpus & set(saturated))
    server_busy = sum(cpu[str(c)]["busy_s"] for c in server_cpus)
    drops, tcp_counters = {}, {}
    for side in ("sender", "receiver"):
        d = delta(a["nstat"][side], b["nstat"][side])
        for k, v in tcp_drops(d).items():
            drops[f"{side}_{k}"] = int(v)
        tcp_counters[side] = {k: int(v) for k, v in d.items() if v}
    gbps = rx_bytes * 8 / rx_s / 1e9 if rx_s > 0 else 0.0
    return {
        "duration_s": round(rx_s, 6),
        "offered_pps": None,
        "rx_pps": None,
        "rx_gbps": gbps,
        "offered_gbps": sent_bytes * 8 / sent_s / 1e9 if sent_s > 0 else 0.0,
        "rx_bytes": rx_bytes,
        "sent_bytes": sent_bytes,
        "drops": drops,
        "tcp_counters": tcp_counters,     # every TCP counter that moved, per side
        "cpu": {c: {k: round(v[k], 4) for k in ("busy_s", "user_s", "sys_s", "softirq_s",
                                                "irq_s", "busy_frac")} for c, v in cpu.items()},
        # the server's cores only; veth runs TCP's receive path in softirq on
        # the sender's CPU, which is counted there (see cpu)
        "cpu_ns_per_byte": server_busy * 1e9 / rx_bytes if rx_bytes else None,
        "saturated_cpus": saturated,
        "bottleneck": "server" if server_sat else "sender" if sender_sat else "none",
        "generator_bound": bool(sender_sat and not server_sat),
    }
