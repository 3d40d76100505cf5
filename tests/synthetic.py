"""A small synthetic summary CSV (eth and tcp rows) for the unit tests of
the statistics, figures, tables and paper: known values, no testbed."""

from __future__ import annotations

import csv
import random
from pathlib import Path

ETH_STACKS = ("xdp_drop", "af_xdp", "af_packet")
TCP_STACKS = ("blocking", "epoll", "uring", "uring_opt", "uring_zcrx", "iperf3")
ZCRX_REASON = "io_uring zero-copy receive needs NIC header split (veth has none)"
KERNEL = "6.18.0-test #1 SMP"
COLUMNS = ["platform", "layer", "stack", "cores", "size", "conns", "msg", "napi", "rep",
           "status", "reason", "offered_pps", "rx_pps", "rx_gbps", "generator_bound",
           "bottleneck", "saturated_cpus", "cpu_ns_per_pkt", "duration_s", "sent_packets",
           "rx_packets", "kernel", "cpu_model", "nic_driver", "git_rev", "started_at", "path",
           "cpu0_busy_s", "cpu1_busy_s", "cpu_ns_per_byte", "touch"]


def _base(layer, stack, rep, path):
    return {"platform": "local", "layer": layer, "stack": stack, "rep": rep, "status": "ok",
            "reason": "", "kernel": KERNEL, "cpu_model": "Test CPU", "nic_driver": "veth",
            "git_rev": "0123456789abcdef0123456789abcdef01234567", "duration_s": 5.0,
            "started_at": "2026-11-26T10:00:00+00:00", "path": path,
            "cpu0_busy_s": 5.0, "cpu1_busy_s": 4.0}


def eth_rows(stacks=ETH_STACKS, sizes=(64, 512, 1518), cores=(1,), napi=("receiver", "sender"),
             reps=3, seed=1):
    rnd = random.Random(seed)
    rows = []
    for s_i, stack in enumerate(stacks):
        for c in cores:
            for nv in napi:
                for size in sizes:
                    for rep in range(1, reps + 1):
                        level = f"/napi={nv}" if nv != napi[0] else ""
                        path = (f"results/local/eth/{stack}/cores={c}/size={size}{level}"
                                f"/rep={rep}.json")
                        r = _base("eth", stack, rep, path)
                        rx = (2.0 - 0.4 * s_i) * 1e6 * c * (0.5 if nv == "sender" else 1.0)
                        rx *= 1 + rnd.uniform(-0.02, 0.02)
                        r.update({"cores": c, "size": size, "napi": nv, "offered_pps": 2.1e6 * c,
                                  "rx_pps": rx, "rx_gbps": rx * size * 8 / 1e9,
                                  "generator_bound": s_i == 0 and size == sizes[-1],
                                  "cpu_ns_per_pkt": (400 + 300 * s_i) if nv == napi[0] else "",
                                  "sent_packets": 10, "rx_packets": 10})
                        rows.append(r)
    return rows


def tcp_rows(stacks=TCP_STACKS, conns=(1, 2, 4, 8, 64), msgs=(1024, 16384, 65536),
             touch=(0, 1), reps=3, seed=2):
    rnd = random.Random(seed)
    rows = []
    for s_i, stack in enumerate(stacks):
        for c in conns:
            for m in msgs:
                for t in (touch if stack != "iperf3" else touch[:1]):
                    for rep in range(1, reps + 1):
                        level = f"/touch={t}" if t != touch[0] else ""
                        path = f"results/local/tcp/{stack}/conns={c}/msg={m}{level}/rep={rep}.json"
                        r = _base("tcp", stack, rep, path)
                        r.update({"conns": c, "msg": m, "touch": t})
                        if stack == "uring_zcrx":
                            r.update({"status": "unsupported", "reason": ZCRX_REASON,
                                      "duration_s": 0.0})
                        else:
                            g = (10 + 2 * s_i) * (m / 65536) ** 0.3 * (1 + 0.1 * (c > 1))
                            g *= (0.8 if t else 1.0) * (1 + rnd.uniform(-0.02, 0.02))
                            r.update({"rx_gbps": g, "cpu_ns_per_byte": 0.5 + 0.1 * s_i,
                                      "generator_bound": False})
                        rows.append(r)
    return rows


def write(path: str | Path, rows: list[dict]) -> Path:
    path = Path(path)
    extra = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in COLUMNS]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS + extra, restval="")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    return path


def ndr_rows(stacks=("xdp_drop", "af_xdp"), sizes=(64, 1518), reps=1, seed=3):
    """NDR/PDR cells (variant search=ndr): rx_pps is the NDR, as the runner
    writes it; the saturation rows they sit beside carry search=saturation."""
    rnd = random.Random(seed)
    rows = []
    for s_i, stack in enumerate(stacks):
        for size in sizes:
            for rep in range(1, reps + 1):
                path = f"results/local/eth/{stack}/cores=1/size={size}/search=ndr/rep={rep}.json"
                r = _base("eth", stack, rep, path)
                ndr = (1.5 - 0.4 * s_i) * 1e6 * (1 + rnd.uniform(-0.01, 0.01))
                r.update({"cores": 1, "size": size, "napi": "receiver", "search": "ndr",
                          "rx_pps": ndr, "offered_pps": ndr, "ndr_pps": ndr,
                          "pdr_pps": ndr * 1.1, "ndr_trials": 14 + s_i,
                          "pdr_loss_ratio": 0.005, "generator_bound": False,
                          "duration_s": 40.0})
                rows.append(r)
    return rows


def load_rows(stacks=("epoll", "uring_opt", "iperf3"), loads=(1, 3), conns=(1,), msg=65536,
              reps=5, ns_per_byte=None, miss=(), seed=4):
    """TCP cells of a rate-limited sender (variant load=<Gbit/s>): the sender
    reaches its target (offered_gbps within 0.1 %; load_reached, as the
    cell records it) except for the (stack, load) pairs in `miss` (10 %
    short, not reached); CPU per byte per stack from
    ns_per_byte (default: 0.5 + 0.2 * index)."""
    rnd = random.Random(seed)
    rows = []
    for s_i, stack in enumerate(stacks):
        for c in conns:
            for load in loads:
                for rep in range(1, reps + 1):
                    path = f"results/local/tcp/{stack}/conns={c}/msg={msg}/load={load}/rep={rep}.json"
                    r = _base("tcp", stack, rep, path)
                    got = load * (0.9 if (stack, load) in miss else 1 + rnd.uniform(-0.001, 0.001))
                    cost = (ns_per_byte or {}).get(stack, 0.5 + 0.2 * s_i)
                    r.update({"conns": c, "msg": msg, "load": str(load),
                              "load_reached": (stack, load) not in miss,
                              "touch": 0 if stack != "iperf3" else "",
                              "rx_gbps": got, "offered_gbps": got,
                              "cpu_ns_per_byte": cost * (1 + rnd.uniform(-0.01, 0.01)),
                              "generator_bound": False})
                    rows.append(r)
    return rows
