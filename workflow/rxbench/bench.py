"""Speed benchmark of the local testbed: each receiver in each NAPI
placement, with the rate the generator offered, side by side, median of N.

  python -m rxbench bench [--reps 5] [--duration 5] [--sizes 64,1518]

Every row is a real cell (runner.run_cell) written to a scratch
directory; "offered" is the generator's rate in that cell. The generator
cannot be measured alone on veth: with the receiver's end down veth
refuses every frame (ENOBUFS), which the generator treats as
back-pressure, so nothing is ever accepted. The cheapest sink is the
in-kernel XDP_DROP with NAPI on the other CPU, the first row.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

from . import cells
from .config import resolve
from .runner import run_cell, signals_raise
from .util import Log


def main(reps: int, duration: float, sizes: list[int], stacks: list[str],
         napis: list[str]) -> int:
    cfg = resolve({"profile": "smoke", "duration_s": duration, "warmup_s": 1,
                   "eth": {"stacks": stacks, "sizes": sizes, "variants": {"napi": napis}}})
    rows = []
    with tempfile.TemporaryDirectory(prefix="rxbench-bench-") as tmp:
        log = Log(Path(tmp) / "bench.log")
        plan = [(s, s, n) for s in stacks for n in napis]
        with signals_raise():
            for label, stack, napi in plan:
                for size in sizes:
                    runs = []
                    for rep in range(1, reps + 1):
                        cell = cells.Cell("local", "eth", stack,
                                          {"cores": 1, "size": size, "napi": napi}, rep)
                        out = cell.path(cells.variant_defaults(cfg, "eth", stack), root=f"{tmp}/results")
                        run_cell(out, cfg, out.replace(".json", ".log"))
                        res = json.loads(Path(out).read_text())
                        if res["status"] != "ok":
                            print(f"{label} {size} B rep {rep}: {res['status']}: {res['reason']}")
                            continue
                        runs.append(res)
                    rows.append((f"{label} napi={napi}", size, runs))
    print(f"\nmedian of {reps} x {duration:g} s, 1 receiver core, generator on CPU "
          f"{cfg['platforms']['local']['generator_cpus']}")
    print(f"{'what':28} {'size':>5} {'offered Mpps':>13} {'rx Mpps':>8} {'min-max rx':>13} "
          f"{'saturated CPUs':>15} {'gen-bound':>9}")
    for label, size, runs in rows:
        if not runs:
            print(f"{label:28} {size:>5} {'n/a':>13}")
            continue
        off = statistics.median(r["offered_pps"] for r in runs) / 1e6
        rx = [r["rx_pps"] / 1e6 for r in runs if r["rx_pps"] is not None]
        sat = sorted({c for r in runs for c in r["saturated_cpus"]})
        gb = sum(1 for r in runs if r["generator_bound"])
        rx_s = f"{statistics.median(rx):8.3f}" if rx else f"{'-':>8}"
        rng = f"{min(rx):.3f}-{max(rx):.3f}" if rx else "-"
        print(f"{label:28} {size:>5} {off:13.3f} {rx_s} {rng:>13} {str(sat):>15} "
              f"{(str(gb) + '/' + str(len(runs))) if rx else '-':>9}")
    return 0
