"""Turning two snapshots of a cell into its result: rates, drops by stage,
CPU cost, and what limited the rate.

A snapshot is, per host, what one rxb-counters reader read in one place
(stamped with that host's CLOCK_MONOTONIC) and what the host's tool said at
the same moment:

    {"sender":   {"counters": <rxb-counters snapshot>, "tool": <generator snapshot>},
     "receiver": {"counters": <rxb-counters snapshot>, "tool": <receiver snapshot>}}

A side may also name its test interface ("ifname"; default: the only one the
reader read). The rules:
- busy time is the wall interval minus idle (+iowait) from /proc/stat; steal
  is reported apart (neither busy nor idle); the per-CPU tick sum is checked
  against the wall interval (`cpu_check`), since sampled ticks on a tickless
  guest need not add up;
- every rate is over its own host's window (offered over the sender's tool
  snapshots, received over the receiver's), every count is scaled to the
  receiver's window before they are compared, and the residual is signed;
- drop stages are summed where they are disjoint and not where they nest
  (`DROP_STAGES`);
- a cell losing more than 1 % of what was offered is receiver-limited
  whatever the CPUs say; a polling generator's or receiver's busy core says
  nothing; a receive path on the generator's CPU is `shared_cpu`.
"""

from __future__ import annotations

from .measure import MissingCounter, delta, tcp_drops

SATURATED = 0.95          # a CPU busier than this over the interval was the limit
GENERATOR_BOUND = 0.99    # received >= 99% of offered: maybe the sender's limit
LOSSY = 1 - GENERATOR_BOUND   # losing more than this fraction: receiver-limited
# a CPU's /proc/stat tick sum over the window may differ from the wall
# interval by this fraction (plus two ticks of rounding) before it is flagged
TICK_TOLERANCE = 0.05
CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")

# Where a frame offered but not received was lost, and how the stages
# relate (`drops.stages` of every result says the same):
# - sender_veth_refused: the sender's veth dropped it (peer ring full); it
#   never reached the receiver: disjoint from everything below.
# - receiver_rx_dropped: the receiving veth dropped it (the veth's
#   rx_queue_N_drops in ethtool are the same counter: not listed again).
# - xsk_rx_dropped, xsk_rx_ring_full, xsk_rx_invalid_descs: XDP_STATISTICS;
#   the kernel counts a frame in one of them only (rx_dropped excludes
#   rx_ring_full), so they are summed; an XDP redirect to the socket that
#   fails is also a veth receive drop, so their sum nests in
#   receiver_rx_dropped.
# - dpdk_imissed: the af_xdp PMD reports XDP_STATISTICS rx_dropped only
#   (ring-full drops are missed); nests in receiver_rx_dropped like xsk_*.
# - packet_ring_drops: AF_PACKET's ring was full; the frame had been
#   received by the veth: disjoint from receiver_rx_dropped.
NESTED_IN_VETH = ("xsk_rx_dropped", "xsk_rx_ring_full", "xsk_rx_invalid_descs",
                  "dpdk_imissed", "dpdk_ierrors", "dpdk_nombuf")
DROP_STAGES = {
    "disjoint": ["sender_veth_refused", "receiver_rx_dropped", "packet_ring_drops"],
    "nested_in_receiver_rx_dropped": list(NESTED_IN_VETH),
    "summed_among_themselves": ["xsk_rx_dropped", "xsk_rx_ring_full", "xsk_rx_invalid_descs"],
}


def side_snapshot(counters: dict, tool: dict | None, ifname: str | None = None) -> dict:
    """One side of a section-4 snapshot from an rxb-counters `snapshot` (or
    `final`) event and the side's tool event (None: a tool without
    snapshots, iperf3); ifname: the side's test interface."""
    if counters.get("event") not in ("snapshot", "final") or "t0_ns" not in counters:
        raise MissingCounter(f"not an rxb-counters snapshot: {str(counters)[:120]}")
    out = {"counters": counters, "tool": tool}
    if ifname:
        out["ifname"] = ifname
    return out


def window_s(a: dict, b: dict) -> float:
    """Seconds between two snapshots of one clock (t_ns, or a reader's t0_ns)."""
    key = "t_ns" if "t_ns" in a else "t0_ns"
    return (b[key] - a[key]) / 1e9


def cpu_window(a: dict, b: dict, hz: int) -> tuple[dict, dict]:
    """Per-CPU time between two rxb-counters snapshots of one host, and the
    tick-sum check. busy = wall - idle - iowait - steal."""
    wall = window_s(a, b)
    if wall <= 0:
        raise MissingCounter(f"cpu: the window is {wall} s")
    out, ratios = {}, {}
    for cpu in sorted(b["cpu"], key=int):
        if cpu not in a["cpu"]:
            raise MissingCounter(f"cpu: CPU {cpu} read at only one end of the window")
        d = {f: (b["cpu"][cpu].get(f, 0) - a["cpu"][cpu].get(f, 0)) / hz for f in CPU_FIELDS}
        idle = d["idle"] + d["iowait"]
        ticks = sum(d.values())
        busy = max(0.0, wall - idle - d["steal"])
        ratios[cpu] = ticks / wall
        out[cpu] = {"busy_s": busy, "busy_frac": busy / wall, "idle_s": idle,
                    "steal_s": d["steal"], "user_s": d["user"] + d["nice"],
                    "sys_s": d["system"], "softirq_s": d["softirq"], "irq_s": d["irq"],
                    "ticks_s": ticks, "wall_s": wall}
    tol = TICK_TOLERANCE + 2 / hz / wall
    bad = sorted((c for c, r in ratios.items() if abs(r - 1) > tol), key=int)
    check = {"ok": not bad, "tolerance": round(tol, 4), "wall_s": round(wall, 6),
             "tick_ratio": {c: round(r, 4) for c, r in ratios.items()}, "deviating": bad}
    return out, check


def _cpu_out(cpu: dict) -> dict:
    return {c: {k: round(v[k], 4) for k in ("busy_s", "busy_frac", "user_s", "sys_s",
                                            "softirq_s", "irq_s", "steal_s", "idle_s")}
            for c, v in cpu.items()}


def _ifname(side: dict) -> str:
    if side.get("ifname"):
        return side["ifname"]
    links = side["counters"].get("links", {})
    if len(links) != 1:
        raise MissingCounter(f"links: cannot tell the test interface among {sorted(links)}")
    return next(iter(links))


def _check_errors(*snaps) -> None:
    for s in snaps:
        if s.get("errors"):
            raise MissingCounter(f"rxb-counters could not read: {'; '.join(s['errors'])}")


def processes(a: dict, b: dict, hz: int) -> dict:
    """CPU of each process tree (the real tool under its wrapper: the sum
    over the tree rooted at a --pid) and of each matching kernel thread,
    over [a, b]; run_s from schedstat where the kernel has it (ns)."""
    def groups(snap):
        out = {}
        for pid, p in snap.get("procs", {}).items():
            key = f"tree:{p['root']}" if p["root"] else p["comm"]
            g = out.setdefault(key, {"members": {}})
            g["members"][pid] = p
        return out
    ga, gb = groups(a), groups(b)
    res = {}
    for key, g in gb.items():
        if key not in ga:
            continue
        ma = ga[key]["members"]
        both = [pid for pid in g["members"] if pid in ma]   # lived through the window
        pb = [g["members"][p] for p in both]
        pa = [ma[p] for p in both]
        r = {"user_s": round(sum(p["utime"] for p in pb) / hz - sum(p["utime"] for p in pa) / hz, 4),
             "sys_s": round(sum(p["stime"] for p in pb) / hz - sum(p["stime"] for p in pa) / hz, 4),
             "comms": sorted({p["comm"] for p in g["members"].values()}),
             "last_cpu": sorted({p["last_cpu"] for p in pb})}
        if all("run_ns" in p for p in pa + pb):
            r["run_s"] = round((sum(p["run_ns"] for p in pb) - sum(p["run_ns"] for p in pa)) / 1e9, 4)
        for k in ("vol_cs", "invol_cs"):        # context switches, summed over threads
            if all(k in p for p in pa + pb):
                r[k] = sum(p[k] for p in pb) - sum(p[k] for p in pa)
        res[key] = r
    return res


def generator_polls(gen) -> bool:
    polls = getattr(gen, "polls", None)
    return bool((polls() if callable(polls) else False) or getattr(gen, "polls_core", False))


def classify_eth(loss_frac: float, refused_frac: float, busy_frac: dict, generator: list,
                 app: list, napi: list, rx_polls: bool, gen_polls: bool) -> dict:
    """What limited an Ethernet cell's rate.
    loss_frac: (offered - received) / offered; refused_frac: frames the
    receiving side refused and a retrying generator sent again, / sent;
    busy_frac: {cpu: busy/wall} (str keys); generator, app (the receiver's
    application) and napi: CPU lists."""
    saturated = sorted(int(c) for c, v in busy_frac.items() if v >= SATURATED)
    gen_cpus, rx_cpus = set(generator), set(app) | set(napi)
    rx_only = rx_cpus - gen_cpus
    if rx_polls:
        # a polling receiver keeps its application core busy whatever the
        # load: that core being saturated says nothing (unless NAPI runs there)
        rx_only -= set(app) - set(napi)
    gen_only = gen_cpus - rx_cpus
    if gen_polls:
        gen_only = set()
    rx_sat = bool(rx_only & set(saturated))
    gen_sat = bool(gen_only & set(saturated))
    shared = bool(rx_cpus & gen_cpus)
    lossy = loss_frac > LOSSY or refused_frac > LOSSY
    if lossy or rx_sat:
        bottleneck = "receiver"
    elif shared:
        bottleneck = "shared_cpu"
    elif gen_sat:
        bottleneck = "generator"
    else:
        bottleneck = "none"
    return {"bottleneck": bottleneck, "saturated_cpus": saturated,
            # lossless, the receive side kept up on CPUs of its own: the rate
            # was set upstream of the receiver
            "generator_bound": bool(not lossy and not rx_sat and not shared),
            "shared_cpu": shared, "lossy": lossy}


def eth_drops(a: dict, b: dict, rx, gen, driver: str | None = None) -> tuple[dict, dict, dict]:
    """Receive-side losses by stage, the sender's refusals (back-pressure
    or a loss stage), and each count's own window in seconds. Where the
    driver counts an XDP program's verdict drops as rx_dropped (virtio_net),
    those frames were received, not lost: receiver_rx_dropped is what is
    left, the raw count goes to back-pressure's receiver_rx_dropped_raw."""
    sa, sb, ra, rb = a["sender"], b["sender"], a["receiver"], b["receiver"]
    sif, rif = _ifname(sa), _ifname(ra)
    snd = delta(sa["counters"]["links"][sif], sb["counters"]["links"][sif], f"sender {sif}")
    s_win, r_win = window_s(sa["counters"], sb["counters"]), window_s(ra["counters"], rb["counters"])
    rx_win = window_s(ra["tool"], rb["tool"])
    drops, verdict = {}, 0
    if rif in ra["counters"].get("links", {}):
        rcv = delta(ra["counters"]["links"][rif], rb["counters"]["links"][rif], f"receiver {rif}")
        verdict = rx.verdict_drops(ra["tool"], rb["tool"], driver)
        drops = {"receiver_rx_dropped": rcv["rx_dropped"] - verdict,
                 "receiver_rx_missed": rcv["rx_missed_errors"], "receiver_rx_errors": rcv["rx_errors"]}
    # else the reader was started without the interface: the NIC is a
    # user-space driver's (DPDK's own PMD, Side.bypass), no kernel link
    # counters; its losses are the PMD's own (stage_drops)
    windows = {k: r_win for k in drops}
    for k, v in rx.stage_drops(ra["tool"], rb["tool"]).items():
        drops[k], windows[k] = v, rx_win
    if not gen.retries_refused:
        drops["sender_veth_refused"], windows["sender_veth_refused"] = snd["tx_dropped"], s_win
    backpressure = {
        "sender_tx_dropped": snd["tx_dropped"], "sender_tx_errors": snd["tx_errors"],
        **({"receiver_rx_dropped_raw": drops["receiver_rx_dropped"] + verdict,
            "receiver_rx_dropped_xdp_verdict": verdict} if drops and verdict else {}),
        "generator_retries": int(sb["tool"].get("backpressure", 0)) - int(sa["tool"].get("backpressure", 0)),
    }
    return drops, backpressure, windows


def explained_rate(drops: dict, windows: dict) -> float:
    """Frames per second the stages explain, by DROP_STAGES: disjoint stages
    add up, the XDP_STATISTICS ones are summed among themselves, and what
    nests in the veth's receive drop counts only beyond it."""
    rate = {k: drops[k] / windows[k] for k in drops}
    nested = sum(rate.get(k, 0.0) for k in NESTED_IN_VETH)
    veth = rate.get("receiver_rx_dropped", 0.0) + rate.get("receiver_rx_missed", 0.0) + \
        rate.get("receiver_rx_errors", 0.0)
    return (rate.get("sender_veth_refused", 0.0) + max(veth, nested) +
            rate.get("packet_ring_drops", 0.0))


def analyse_eth(cell, a: dict, b: dict, placement, gen, rx, driver: str | None = None) -> dict:
    """Rates, drops and CPU cost over the measured interval [a, b]."""
    size = cell.params["size"]
    for side in ("sender", "receiver"):
        _check_errors(a[side]["counters"], b[side]["counters"])
    gen_s = window_s(a["sender"]["tool"], b["sender"]["tool"])
    rx_s = window_s(a["receiver"]["tool"], b["receiver"]["tool"])
    sent = gen.sent(b["sender"]["tool"]) - gen.sent(a["sender"]["tool"])
    got = rx.received(b["receiver"]["tool"]) - rx.received(a["receiver"]["tool"])
    offered_pps, rx_pps = sent / gen_s, got / rx_s
    hz_r = b["receiver"]["counters"].get("clk_tck", 100)
    hz_s = b["sender"]["counters"].get("clk_tck", 100)
    cpu, check = cpu_window(a["receiver"]["counters"], b["receiver"]["counters"], hz_r)
    scpu, scheck = cpu_window(a["sender"]["counters"], b["sender"]["counters"], hz_s)
    drops, backpressure, windows = eth_drops(a, b, rx, gen, driver)
    # every count as a rate over its own window, back to the receiver's window
    unaccounted = round((offered_pps - rx_pps - explained_rate(drops, windows)) * rx_s)
    refused_frac = (backpressure["sender_tx_dropped"] / (sent + backpressure["sender_tx_dropped"])
                    if gen.retries_refused and sent else 0.0)
    loss_frac = (offered_pps - rx_pps) / offered_pps if offered_pps else 0.0
    busy = {c: v["busy_frac"] for c, v in cpu.items()}
    for c in placement.generator:          # the generator's CPUs as its own host saw them
        busy[str(c)] = scpu[str(c)]["busy_frac"]
    receive = sorted(set(placement.application) | set(placement.napi))
    cls = classify_eth(loss_frac, refused_frac, busy, placement.generator,
                       placement.application, placement.napi, rx.polls(), generator_polls(gen))
    rx_busy = sum(cpu[str(c)]["busy_s"] for c in receive)
    procs = {"generator": processes(a["sender"]["counters"], b["sender"]["counters"], hz_s),
             "receiver": processes(a["receiver"]["counters"], b["receiver"]["counters"], hz_r)}
    return {
        "duration_s": round(rx_s, 6),
        "windows_s": {"generator": round(gen_s, 6), "receiver": round(rx_s, 6),
                      "sender_counters": round(window_s(a["sender"]["counters"], b["sender"]["counters"]), 6),
                      "receiver_counters": round(window_s(a["receiver"]["counters"], b["receiver"]["counters"]), 6)},
        "offered_pps": offered_pps,
        "rx_pps": rx_pps,
        # frame bits as RFC 2544 counts them (FCS included, no preamble/IFG)
        "rx_gbps": rx_pps * size * 8 / 1e9,
        "offered_gbps": offered_pps * size * 8 / 1e9,
        "sent_packets": sent,
        "rx_packets": got,
        "loss_frac": round(loss_frac, 6),
        # what was offered but not received, as each stage counted it;
        # "unaccounted" is what no stage explains, SIGNED: negative when the
        # stages explain more than was lost (double counting shows)
        "drops": {**drops, "unaccounted": unaccounted},
        "drop_stages": DROP_STAGES,
        "backpressure": backpressure,
        "cpu": _cpu_out(cpu),
        "sender_cpu": _cpu_out({str(c): scpu[str(c)] for c in placement.generator}),
        "cpu_check": {"ok": check["ok"] and scheck["ok"], "receiver": check, "sender": scheck},
        "cpu_ns_per_pkt": (rx_busy * 1e9 / got) if (got and not cls["shared_cpu"]) else None,
        # the receive CPUs' busy share (1.0 = one core busy the whole interval)
        "receiver_cpu_frac": (round(rx_busy / rx_s, 4) if rx_s and not cls["shared_cpu"] else None),
        "processes": procs,
        "snapshot_cost": snapshot_cost(a, b),
        **cls,
    }


def snapshot_cost(a: dict, b: dict) -> dict:
    """What the readers cost: ns per snapshot and their CPU over the window."""
    out = {}
    for side in ("sender", "receiver"):
        ca, cb = a[side]["counters"], b[side]["counters"]
        if "snapshot_ns" in cb and "self_cpu_ns" in ca:
            out[side] = {"snapshot_ns": max(ca["snapshot_ns"], cb["snapshot_ns"]),
                         "cpu_frac": round((cb["self_cpu_ns"] - ca["self_cpu_ns"]) /
                                           (cb["t0_ns"] - ca["t0_ns"]), 6)}
    return out


def classify_tcp(saturated, server_cpus, sender_cpus) -> dict:
    """What limited a TCP cell's goodput, from its saturated CPUs: the
    server's cores ("server"), a CPU the server shares with the sender
    ("shared_cpu"), the sender's own ("sender": generator-bound), or
    nothing saturated ("none")."""
    saturated, server, sender = set(saturated), set(server_cpus), set(sender_cpus)
    server_sat, sender_sat = bool(server & saturated), bool(sender & saturated)
    shared = bool(server & sender)
    return {"bottleneck": ("server" if server_sat else "shared_cpu" if shared else
                           "sender" if sender_sat else "none"),
            "generator_bound": bool(sender_sat and not server_sat and not shared)}


def analyse_tcp(cell, a: dict, b: dict, placement, rx_bytes: int, rx_s: float,
                sent_bytes: int, sent_s: float) -> dict:
    """Goodput, CPU per byte and TCP's own loss counters over [a, b]; a and b
    are the section-4 snapshots (the tools' parts may be None: iperf3)."""
    hz_r = b["receiver"]["counters"].get("clk_tck", 100)
    hz_s = b["sender"]["counters"].get("clk_tck", 100)
    for side in ("sender", "receiver"):
        _check_errors(a[side]["counters"], b[side]["counters"])
    cpu, check = cpu_window(a["receiver"]["counters"], b["receiver"]["counters"], hz_r)
    scpu, scheck = cpu_window(a["sender"]["counters"], b["sender"]["counters"], hz_s)
    busy = {c: v["busy_frac"] for c, v in cpu.items()}
    for c in placement.generator:
        busy[str(c)] = scpu[str(c)]["busy_frac"]
    saturated = sorted(int(c) for c, v in busy.items() if v >= SATURATED)
    server_cpus, sender_cpus = set(placement.application), set(placement.generator)
    shared = bool(server_cpus & sender_cpus)
    server_busy = sum(cpu[str(c)]["busy_s"] for c in server_cpus)
    drops, tcp_counters, links, softnet, softirqs = {}, {}, {}, {}, {}
    for side in ("sender", "receiver"):
        ca, cb = a[side]["counters"], b[side]["counters"]
        d = delta({k: v for k, v in ca["snmp"].items() if k.startswith("Tcp")},
                  {k: v for k, v in cb["snmp"].items() if k.startswith("Tcp")}, f"{side} snmp")
        for k, v in tcp_drops(d).items():
            drops[f"{side}_{k}"] = int(v)
        tcp_counters[side] = {k: int(v) for k, v in d.items() if v}
        ifname = _ifname(a[side])
        ld = delta(ca["links"][ifname], cb["links"][ifname], f"{side} {ifname}")
        links[side] = {k: ld[k] for k in ("rx_packets", "tx_packets", "rx_dropped", "tx_dropped")}
        drops[f"{side}_rx_dropped"], drops[f"{side}_tx_dropped"] = ld["rx_dropped"], ld["tx_dropped"]
        softnet[side] = softnet_delta(ca, cb)
        drops[f"{side}_backlog_dropped"] = sum(v["dropped"] for v in softnet[side].values())
        softirqs[side] = softirqs_delta(ca, cb)
    procs = {"sender": processes(a["sender"]["counters"], b["sender"]["counters"], hz_s),
             "receiver": processes(a["receiver"]["counters"], b["receiver"]["counters"], hz_r)}
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
        "links": links,
        "softnet": softnet,
        "softirqs": softirqs,
        "sender_path": sender_path(a["sender"], b["sender"], placement, sent_bytes, sent_s,
                                   tcp_counters["sender"], links["sender"], scpu,
                                   softirqs["sender"], procs["sender"], softnet["sender"]),
        "cpu": _cpu_out(cpu),
        "sender_cpu": _cpu_out({str(c): scpu[str(c)] for c in placement.generator}),
        "cpu_check": {"ok": check["ok"] and scheck["ok"], "receiver": check, "sender": scheck},
        # the server's cores only (RPS puts the receive path there; the ACKs'
        # softirq on that core is charged to it too)
        "cpu_ns_per_byte": server_busy * 1e9 / rx_bytes if (rx_bytes and not shared) else None,
        "processes": procs,
        "snapshot_cost": snapshot_cost(a, b),
        "saturated_cpus": saturated,
        **classify_tcp(saturated, server_cpus, sender_cpus),
        "shared_cpu": shared,
    }


def sender_path(a: dict, b: dict, placement, sent: int, sent_s: float, tcp: dict, link: dict,
                scpu: dict, softirqs: dict, procs: dict, softnet: dict | None = None) -> dict:
    """What the sender's side spent per byte it sent over [a, b] (a, b: its
    side of the two snapshots): how its writes became segments, veth packets
    (GSO skbs) and ACKs, its CPUs' busy time and its own processes' run
    time (proc_ns_per_byte), the softirqs that ran on them
    (HRTIMER: TCP's pacing timers; NET_RX: the ACKs' backlog), its context
    switches, the RPS IPIs its CPUs took (softnet received_rps: an ACK
    steered to a CPU whose backlog was idle costs one), and from
    rxb-tcp-send's own counters its sends per turn (one
    turn per writable socket) and what it wrote against the pacing rates
    TCP computed for its connections (the mean of the two snapshots). Ratios
    per byte, not rates, compare cells measured on a shared machine."""
    if sent <= 0:
        return {}
    mb = sent / 1e6
    cpus = [str(c) for c in placement.generator]
    out = {"sent_bytes": sent,
           "bytes_per_segment": sent / tcp["TcpOutSegs"] if tcp.get("TcpOutSegs") else None,
           "bytes_per_packet": sent / link["tx_packets"] if link.get("tx_packets") else None,
           "bytes_per_ack": sent / tcp["TcpInSegs"] if tcp.get("TcpInSegs") else None,
           "cpu_ns_per_byte": sum(scpu[c]["busy_s"] for c in cpus if c in scpu) * 1e9 / sent,
           "softirq_ns_per_byte": sum(scpu[c]["softirq_s"] for c in cpus if c in scpu) * 1e9 / sent,
           # every softirq the reader read, 0 where it did not run
           "softirqs_per_mb": {k: sum(softirqs.get(c, {}).get(k, 0) for c in cpus) / mb
                               for k in sorted(b["counters"].get("softirqs") or {})},
           "autocorked_per_mb": tcp.get("TcpExtTCPAutoCorking", 0) / mb}
    if softnet and all(c in softnet for c in cpus):
        out["rps_ipis_per_mb"] = sum(softnet[c]["received_rps"] for c in cpus) / mb
    trees = [p for k, p in procs.items() if k.startswith("tree:")]
    if trees:
        # the sender's own time (schedstat; ticks without it), softirqs run
        # in its context included: unlike its CPUs' busy time, not inflated
        # by whatever else ran there on a shared machine
        own = sum(p["run_s"] if "run_s" in p else p["user_s"] + p["sys_s"] for p in trees)
        out["proc_ns_per_byte"] = own * 1e9 / sent
    if trees and all("vol_cs" in p for p in trees):
        out["cs_per_mb"] = {k: sum(p[k] for p in trees) / mb for k in ("vol_cs", "invol_cs")}
    ta, tb = a.get("tool") or {}, b.get("tool") or {}
    d = {k: tb[k] - ta[k] for k in ("sends", "turns", "turns_full", "waits")
         if isinstance(ta.get(k), int) and isinstance(tb.get(k), int)}
    if d.get("sends"):
        out["bytes_per_send"] = sent / d["sends"]
    if d.get("turns"):
        out["sends_per_turn"] = d.get("sends", 0) / d["turns"]
        out["turns_full_frac"] = d.get("turns_full", 0) / d["turns"]
    if d.get("waits"):
        out["sends_per_wait"] = d.get("sends", 0) / d["waits"]

    def pacing(snap):
        rates = [c.get("pacing_Bps") for c in snap.get("per_conn", [])]
        return sum(rates) if rates and all(isinstance(r, int) for r in rates) else None
    pa, pb = pacing(ta), pacing(tb)
    if pa and pb and sent_s > 0:
        out["pacing_Bps"] = (pa + pb) / 2
        out["sent_over_pacing"] = sent / sent_s / out["pacing_Bps"]
    return out


def softirqs_delta(a: dict, b: dict) -> dict:
    """Per-CPU /proc/softirqs movement ({} from a reader without it): only
    the softirqs that ran."""
    sa, sb = a.get("softirqs") or {}, b.get("softirqs") or {}
    out: dict = {}
    for kind, cpus in sb.items():
        for cpu, n in cpus.items():
            d = n - sa.get(kind, {}).get(cpu, n)
            if d:
                out.setdefault(cpu, {})[kind] = d
    return out


def softnet_delta(a: dict, b: dict) -> dict:
    """Per-CPU softnet_stat movement (the kernel's counters are u32: wrap);
    received_rps: the RPS IPIs that CPU took."""
    def by_cpu(s):
        return {str(row.get("cpu", i)): row for i, row in enumerate(s.get("softnet", []))}
    ra, rb = by_cpu(a), by_cpu(b)
    out = {}
    for cpu, row in rb.items():
        if cpu not in ra:
            raise MissingCounter(f"softnet_stat: CPU {cpu} read at only one end of the window")
        out[cpu] = {k: (row.get(k, 0) - ra[cpu].get(k, 0)) % 2**32
                    for k in ("processed", "dropped", "time_squeeze", "received_rps")}
    return out


# ---- re-deriving committed cells' classification under these rules ----

def stored_busy(cell: dict) -> tuple[dict, dict]:
    """busy/wall and the tick ratio per CPU from a stored result's cpu
    fields (busy_s and busy_frac = busy ticks / tick sum, steal included in
    busy then): idle = tick sum - busy, busy by the wall = wall - idle."""
    wall = cell["duration_s"]
    busy, ratio = {}, {}
    for c, v in cell["cpu"].items():
        ticks = v["busy_s"] / v["busy_frac"] if v["busy_frac"] else None
        idle = ticks - v["busy_s"] if ticks is not None else wall
        busy[c] = max(0.0, wall - idle) / wall
        ratio[c] = ticks / wall if ticks is not None else None
    return busy, ratio


def reclassify_cell(res: dict) -> dict | None:
    """{old, new, ...} for one stored ok cell, from its stored fields only."""
    from . import cells
    from .stacks import GENERATORS, RECEIVERS
    if res.get("status") != "ok":
        return None
    pl = res["placement"]
    gen_cpus, app, napi = pl["generator"], pl["application"], pl["napi"]["cpus"]
    busy, ratio = stored_busy(res)
    tol = TICK_TOLERANCE + 2 / 100 / res["duration_s"]
    flagged = sorted(c for c, r in ratio.items() if r is not None and abs(r - 1) > tol)
    old = {"bottleneck": res["bottleneck"], "generator_bound": bool(res["generator_bound"])}
    if res["layer"] == "eth":
        cls = RECEIVERS[res["stack"]]
        rx = cls.__new__(cls)
        rx.cell = cells.Cell(res["platform"], res["layer"], res["stack"], res["params"], res["rep"])
        gen = GENERATORS.get(res.get("generator"))     # a result's own generator class
        retries = gen.retries_refused if gen else True
        sent, refused = res["sent_packets"], res.get("backpressure", {}).get("sender_tx_dropped", 0)
        loss = (res["offered_pps"] - res["rx_pps"]) / res["offered_pps"] if res["offered_pps"] else 0.0
        new = classify_eth(loss, refused / (sent + refused) if retries and sent else 0.0, busy,
                           gen_cpus, app, napi, rx.polls(),
                           bool(gen and gen.polls_core))
        d = res["drops"]
        veth = d.get("receiver_rx_dropped", 0) + d.get("receiver_rx_missed", 0) + \
            d.get("receiver_rx_errors", 0)
        explained = (d.get("sender_veth_refused", 0) + max(veth, sum(d.get(k, 0) for k in NESTED_IN_VETH))
                     + d.get("packet_ring_drops", 0))
        residual = sent - res["rx_packets"] - explained      # counts: windows not stored
        extra = {"rx_over_offered": res["rx_pps"] > res["offered_pps"], "residual": residual}
    else:
        new = classify_tcp([int(c) for c, v in busy.items() if v >= SATURATED], app, gen_cpus)
        extra = {}
    new = {"bottleneck": new["bottleneck"], "generator_bound": new["generator_bound"]}
    return {"layer": res["layer"], "old": old, "new": new, "changed": old != new,
            "cpu_check_flagged": flagged, **extra}


def reclassify(root: str) -> dict:
    import json
    from pathlib import Path
    rows = {}
    for f in sorted(Path(root).rglob("rep=*.json")):
        r = reclassify_cell(json.loads(f.read_text()))
        if r:
            rows[str(f.relative_to(root))] = r
    return rows


def _reclassify_main(argv: list[str]) -> int:
    import argparse
    import collections
    ap = argparse.ArgumentParser(prog="python -m rxbench.analysis reclassify",
                                 description="re-derive the bottleneck/generator_bound of every "
                                             "committed ok cell under the current rules, from "
                                             "its stored fields, and list the cells that change")
    ap.add_argument("results", help="a results directory (e.g. results/reference/local-fc2-epyc)")
    args = ap.parse_args(argv)
    from pathlib import Path
    if not Path(args.results).is_dir():
        raise SystemExit(f"reclassify: {args.results}: not a directory")
    rows = reclassify(args.results)
    if not rows:
        raise SystemExit(f"reclassify: no ok cell results (rep=N.json) under {args.results}")
    for name, r in rows.items():
        if r["changed"]:
            print(f"{name}: {r['old']['bottleneck']}/gb={r['old']['generator_bound']} -> "
                  f"{r['new']['bottleneck']}/gb={r['new']['generator_bound']}")
    for layer in ("eth", "tcp"):
        lr = [r for r in rows.values() if r["layer"] == layer]
        if not lr:
            continue
        trans = collections.Counter(f"{r['old']['bottleneck']}->{r['new']['bottleneck']}"
                                    for r in lr if r["changed"])
        print(f"{layer}: {len(lr)} ok cells, {sum(r['changed'] for r in lr)} changed "
              f"classification; generator_bound {sum(r['old']['generator_bound'] for r in lr)} -> "
              f"{sum(r['new']['generator_bound'] for r in lr)}; bottleneck "
              f"{dict(collections.Counter(r['old']['bottleneck'] for r in lr))} -> "
              f"{dict(collections.Counter(r['new']['bottleneck'] for r in lr))}; "
              f"transitions {dict(trans)}; cpu_check flagged "
              f"{sum(bool(r['cpu_check_flagged']) for r in lr)}")
        if layer == "eth":
            print(f"eth: rx > offered in {sum(r['rx_over_offered'] for r in lr)} cells; signed "
                  f"residual < 0 (stages over-explain the loss) in "
                  f"{sum(r['residual'] < 0 for r in lr)} cells")
    return 0


if __name__ == "__main__":
    import sys
    if sys.argv[1:2] != ["reclassify"]:
        raise SystemExit("usage: python -m rxbench.analysis reclassify RESULTS_DIR")
    raise SystemExit(_reclassify_main(sys.argv[2:]))
