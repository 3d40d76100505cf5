"""Orchestration cost per cell (a benchmark, not a test): a smoke campaign's
wall time minus what its cells measured (warm-up + measured interval of
every ok cell), per cell, for the local platform and for ssh (on the
namespace hosts of tests/sshhosts.py; native tools built on them first, so
the build is not counted). Time spent waiting for the machine's testbed
lock (other checkouts measuring) is read from the cells' logs and shown
apart.

    sudo .venv/bin/python tests/bench_overhead.py [local] [ssh]
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from conftest import ROOT, SNAKEMAKE  # noqa: E402

LINE = re.compile(r"^\[\s*([0-9.]+)\] (.*)$")


def lock_wait(log: Path) -> float:
    """Seconds a cell waited for the testbed lock (from its log)."""
    lines = [LINE.match(x) for x in log.read_text().splitlines()]
    lines = [m for m in lines if m]
    for i, m in enumerate(lines):
        if "release the testbed lock" in m.group(2) and i + 1 < len(lines):
            return float(lines[i + 1].group(1)) - float(m.group(1))
    return 0.0


def campaign(platform: str, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"rxbench-overhead-{platform}-") as wd:
        t0 = time.monotonic()
        p = subprocess.run([SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-d", wd, "--cores", "1",
                            "--config", "profile=smoke", f"platform={platform}", *extra],
                           capture_output=True, text=True)
        wall = time.monotonic() - t0
        if p.returncode:
            raise SystemExit(f"{platform} campaign failed: {p.stderr[-2000:]}")
        measured = waited = 0.0
        n = ok = 0
        for f in sorted(Path(wd, "results", platform).rglob("rep=*.json")):
            r = json.loads(f.read_text())
            n += 1
            waited += lock_wait(f.with_suffix(".log"))
            if r["status"] == "ok":
                ok += 1
                measured += r["provenance"]["config"]["warmup_s"] + r["duration_s"]
        return {"platform": platform, "cells": n, "ok": ok, "wall_s": wall,
                "measured_s": measured, "lock_wait_s": waited,
                "per_cell_s": (wall - measured) / n,
                "per_cell_excl_lock_s": (wall - measured - waited) / n}


def main(which: list[str]) -> None:
    rows = []
    if "local" in which:
        rows.append(campaign("local", []))
    if "ssh" in which:
        from sshhosts import SshHosts
        sys.path.insert(0, str(ROOT / "workflow"))
        from rxbench.config import resolve
        from rxbench.platforms.ssh import SshTestbed
        from rxbench.util import Log
        tmp = Path(tempfile.mkdtemp(prefix="rxbench-sshhosts-"))
        hosts = SshHosts(tmp)
        try:
            hosts.up()
            cfg = resolve({"profile": "smoke", "platform": "ssh",
                           "inventory": str(hosts.inventory_path)})
            SshTestbed(cfg, Log(tmp / "prebuild.log")).preflight()    # builds native/ there
            rows.append(campaign("ssh", [f"inventory={hosts.inventory_path}"]))
        finally:
            hosts.down()
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
    for r in rows:
        print(f"{r['platform']:5s} {r['cells']} cells ({r['ok']} ok): wall {r['wall_s']:.1f} s, "
              f"measured {r['measured_s']:.1f} s, waited for the lock {r['lock_wait_s']:.1f} s; "
              f"orchestration {r['per_cell_s']:.2f} s/cell "
              f"({r['per_cell_excl_lock_s']:.2f} s/cell without the lock waits)")
    print(json.dumps(rows))


if __name__ == "__main__":
    main(sys.argv[1:] or ["local", "ssh"])
