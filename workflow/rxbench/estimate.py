"""How many cells a campaign has and how long it should take, printed once
when a campaign starts (workflow/rules/common.smk, onstart).

The per-cell costs are what the committed reference sets measured on the
2-vCPU development machine (time between consecutive cells' started_at in
their summary.csv, median per layer):

- an Ethernet saturation cell took warm-up + measured interval + 0.7 s
  (results/reference/local-xeon2-eth: 6.7 s at 1 + 5 s; 560 cells in 47 min 21 s);
- a TCP cell took warm-up + the layer's interval + 0.5 s
  (results/reference/local-fc2-epyc: 4.5 s at 1 + 3 s);
- an NDR cell (MLRsearch) took 23-144 s, median about 85 s
  (results/reference/local-xeon2 and its bench/*-ndr-profile run);
- a cell the platform refuses (`unsupported`) took 0.2-0.3 s.

Which cells a platform refuses is known only when they run, so the
estimate gives a range: every cell at its full interval (the upper bound)
and, for the local platform, with the cells it refuses by design on two
CPUs at their refusal cost (`refused_by_design`).
"""

from __future__ import annotations

from collections import Counter

from .cells import expand

ETH_OVERHEAD_S = 0.7
TCP_OVERHEAD_S = 0.5
NDR_CELL_S = 85.0
REFUSED_S = 0.25


def cell_seconds(cfg: dict, cell) -> float:
    """One cell's expected wall time if it runs (not refused)."""
    if cell.layer == "eth":
        if cell.params.get("search") == "ndr":
            return NDR_CELL_S
        return cfg["warmup_s"] + cfg["duration_s"] + ETH_OVERHEAD_S
    return cfg["warmup_s"] + cfg["tcp"]["duration_s"] + TCP_OVERHEAD_S


def refused_by_design(cfg: dict, cell) -> bool:
    """Cells the local platform on two CPUs refuses whatever the host has:
    a spinning receiver on the NAPI core (af_xdp wait=spin, dpdk
    busy_budget=0 with napi=receiver), zcrx on a NIC queue (veth has no
    queue-management API) and a dedicated NAPI core (needs three CPUs).
    Other refusals (xdpsock not installed, device-less zcrx on a kernel
    before 7.1) depend on the host and count at full length."""
    if cfg.get("platform") != "local":
        return False
    p = cell.params
    if p.get("napi") == "dedicated":
        return True
    if cell.layer == "eth" and p.get("napi") == "receiver":
        return (cell.stack == "af_xdp" and p.get("wait") == "spin") or \
            (cell.stack == "dpdk" and p.get("busy_budget") == 0)
    return cell.layer == "tcp" and cell.stack == "uring_zcrx" and p.get("zcrx") == "device"


def estimate(cfg: dict) -> dict:
    """{cells, per_layer, refused, seconds, seconds_max}: the campaign's
    cell count, per layer, the cells refused by design, and the expected
    and upper-bound wall time in seconds."""
    cells = expand(cfg)
    per_layer = Counter(c.layer for c in cells)
    full = [cell_seconds(cfg, c) for c in cells]
    refused = [refused_by_design(cfg, c) for c in cells]
    expected = sum(REFUSED_S if r else s for s, r in zip(full, refused))
    return {"cells": len(cells), "per_layer": dict(per_layer), "refused": sum(refused),
            "seconds": expected, "seconds_max": sum(full)}


def _minutes(s: float) -> str:
    return f"{int(s // 60)} min {int(round(s % 60)):02d} s"


def banner(cfg: dict) -> str:
    """One line for the start of a campaign."""
    e = estimate(cfg)
    layers = ", ".join(f"{k}: {v}" for k, v in sorted(e["per_layer"].items()))
    return (f"rxbench campaign: profile {cfg.get('profile')}, platform {cfg.get('platform')}, "
            f"{e['cells']} cells ({layers}; {e['refused']} refused by design), estimated "
            f"{_minutes(e['seconds'])} (at most {_minutes(e['seconds_max'])} if every cell "
            f"runs its full interval; per-cell costs measured on the committed reference "
            f"sets, workflow/rxbench/estimate.py)")
