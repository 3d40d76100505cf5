"""Orchestration cost per cell (a benchmark, not a test): a smoke campaign's
wall time minus what its cells measured (warm-up + measured interval of
every ok cell), per cell, for the local platform and for ssh (on the
namespace hosts of tests/sshhosts.py; native tools built on them first, so
the build is not counted). Time spent waiting for the machine's testbed
lock (other checkouts measuring) is read from the cells' logs and shown
apart.

The campaign runs in two steps in one working directory: first the cells
only (snakemake with the cell targets: what a cell costs), then the default
target (aggregate, statistics, figures, tables, paper: once per campaign,
whatever its size, reported apart). Each cell's time is cut into parts
from its log's timestamps and its result's started_at (table), and the
floor is measured too: snakemake running N empty jobs, and N jobs that
only start the Python the cells use.

    sudo .venv/bin/python tests/bench_overhead.py [local] [ssh] [floor] [--keep DIR]
    .venv/bin/python tests/bench_overhead.py --analyse DIR/local   # a kept campaign, again
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from conftest import ROOT, SNAKEMAKE  # noqa: E402

LINE = re.compile(r"^\[\s*([0-9.]+)\] (.*)$")
PARTS = ("snakemake+python start", "lock wait", "host probe", "before testbed", "testbed up",
         "tools start", "interval excess", "stop+teardown", "provenance+write")


def _lines(log: Path) -> list[tuple[float, str]]:
    out = []
    for x in log.read_text().splitlines():
        m = LINE.match(x)
        if m:
            out.append((float(m.group(1)), m.group(2)))
    return out


def lock_wait(log: Path) -> float:
    """Seconds a cell waited for the testbed lock (from its log)."""
    lines = _lines(log)
    for i, (t, msg) in enumerate(lines):
        if "release the testbed lock" in msg and i + 1 < len(lines):
            return lines[i + 1][0] - t
    return 0.0


def cell_parts(log: Path, measured: float, after_log: float = 0.0) -> dict:
    """One cell's in-process time, by its log's markers: lock wait; the
    host probe (rxb-pingpong, 200000 round trips); the rest before the
    testbed (clean, checks, SSH contact); testbed up; tools started until
    both counters readers are ready; the interval beyond warm-up + measured
    (snapshots, the probe in it); tools stopped and testbed down; provenance,
    validation and the atomic write. A cell without some marker (unsupported
    before the testbed) counts its time as 'before testbed'."""
    lines = _lines(log)
    if not lines:
        return {}
    end = lines[-1][0]
    waited = lock_wait(log)

    def first(pred, default=None):
        return next((t for t, m in lines if pred(m)), default)

    def last(pred, default=None):
        return next((t for t, m in reversed(lines) if pred(m)), default)

    up_start = first(lambda m: m.startswith("$ ip ") or m.startswith("$ [")
                     or m.startswith("testbed up"))
    up = first(lambda m: m.startswith("testbed up"))
    ready = last(lambda m: "-counters] {" in m and '"event":"ready"' in m)
    snap = last(lambda m: "-counters] {" in m and '"event":"snapshot"' in m)
    down = last(lambda m: m.startswith("testbed down"))
    out = dict.fromkeys(PARTS[1:], 0.0)
    out["lock wait"] = waited
    # the host probe before the cell: rxb-pingpong with its default rounds
    for i, (t, m) in enumerate(lines[:-1]):
        if "rxb-pingpong --cpus" in m and "--rounds" not in m:
            out["host probe"] = lines[i + 1][0] - t
            break
    # validation and the write follow the last log line (after_log: the
    # result file's mtime after it)
    if up is None or down is None:
        out["before testbed"] = end - waited - out["host probe"]
        out["provenance+write"] = after_log
        return out
    out["before testbed"] = ((up_start if up_start is not None else up) - waited
                             - out["host probe"])
    out["testbed up"] = up - (up_start if up_start is not None else up)
    if ready is not None and snap is not None and snap > ready:
        out["tools start"] = ready - up
        out["interval excess"] = max(0.0, (snap - ready) - measured)
        out["stop+teardown"] = down - snap - max(0.0, measured - (snap - ready))
    else:          # failed or unsupported after the testbed came up
        out["tools start"] = down - up
    out["provenance+write"] = end - down + after_log
    return out


def analyse(wd: Path, platform: str, wall_cells: float, wall_rest: float | None) -> dict:
    cells = []
    for f in sorted(Path(wd, "results", platform).rglob("rep=*.json")):
        r = json.loads(f.read_text())
        measured = 0.0
        if r["status"] == "ok":
            measured = r["provenance"]["config"]["warmup_s"] + r["duration_s"]
        log = f.with_suffix(".log")
        lines = _lines(log)
        start = dt.datetime.fromisoformat(r["provenance"]["started_at"]).timestamp()
        logged = start + (lines[-1][0] if lines else 0.0)
        end = max(logged, f.stat().st_mtime)       # the result is written last
        cells.append({"name": str(f.relative_to(wd)), "status": r["status"],
                      "measured": measured, "start": start, "end": end,
                      "parts": cell_parts(log, measured, end - logged)})
    cells.sort(key=lambda c: c["start"])
    n = len(cells)
    measured = sum(c["measured"] for c in cells)
    waited = sum(c["parts"].get("lock wait", 0.0) for c in cells)
    # between one cell's last log line and the next one's first: snakemake's
    # per-job work, the fresh Python and its imports (the first cell's gap
    # holds snakemake's start-up too: reported apart)
    gaps = [b["start"] - a["end"] for a, b in zip(cells, cells[1:])]
    per_job = sum(gaps) / len(gaps) if gaps else 0.0
    in_cells = sum(c["end"] - c["start"] for c in cells)
    fixed = wall_cells - in_cells - per_job * n      # snakemake start-up and exit, once
    parts = {p: sum(c["parts"].get(p, 0.0) for c in cells) / n for p in PARTS[1:]}
    parts = {PARTS[0]: per_job, **parts}
    return {"platform": platform, "cells": n, "ok": sum(c["status"] == "ok" for c in cells),
            "wall_cells_s": wall_cells, "wall_rest_s": wall_rest, "measured_s": measured,
            "lock_wait_s": waited, "snakemake_fixed_s": fixed,
            # the definition: (campaign wall - measured) / cells, the
            # campaign being the cells (the per-campaign tail is apart)
            "per_cell_s": (wall_cells - measured) / n,
            "per_cell_excl_lock_s": (wall_cells - measured - waited) / n,
            # what one more cell costs: no snakemake start-up, no lock waits
            "marginal_per_cell_s": (wall_cells - measured - waited - fixed) / n,
            "parts_per_cell_s": parts}


def campaign(platform: str, extra: list[str], keep: Path | None) -> dict:
    wd = (keep / platform) if keep else Path(tempfile.mkdtemp(prefix=f"rxbench-overhead-{platform}-"))
    wd.mkdir(parents=True, exist_ok=True)
    base = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-d", str(wd), "--cores", "1",
            "--config", "profile=smoke", f"platform={platform}", *extra]
    try:
        targets = subprocess.run(
            [sys.executable, "-m", "rxbench", "targets", "--config", "profile=smoke",
             f"platform={platform}", *extra], capture_output=True, text=True, check=True,
            env={"PYTHONPATH": str(ROOT / "workflow"), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        ).stdout.split()
        t0 = time.monotonic()
        p = subprocess.run([*base[:1], *targets, *base[1:]], capture_output=True, text=True)
        wall_cells = time.monotonic() - t0
        if p.returncode:
            raise SystemExit(f"{platform} campaign failed: {p.stderr[-2000:]}")
        t0 = time.monotonic()
        p = subprocess.run(base, capture_output=True, text=True)
        wall_rest = time.monotonic() - t0
        if p.returncode:
            raise SystemExit(f"{platform} campaign (after the cells) failed: {p.stderr[-2000:]}")
        out = analyse(wd, platform, wall_cells, wall_rest)
        (wd / "overhead.json").write_text(json.dumps(out, indent=1))
        return out
    finally:
        if not keep:
            import shutil
            shutil.rmtree(wd, ignore_errors=True)


EMPTY_SNAKEFILE = """
rule all:
    input: expand("out/{{i}}", i=range(int(config["njobs"])))
rule job:
    output: "out/{{i}}"
    shell: "{cmd} && touch {{output}}"
"""


def floor(n: int = 24) -> dict:
    """Snakemake's own cost per job (n empty jobs against 1), and per job
    that starts the cells' Python and imports the runner: the floor under
    any cell."""
    py = f"env PYTHONPATH={shlex.quote(str(ROOT / 'workflow'))} {shlex.quote(sys.executable)}"
    out = {}
    for name, cmd in (("empty job", "true"), ("python start", f"{py} -c pass"),
                      ("python + runner import", f"{py} -c 'import rxbench.runner'")):
        walls = {}
        for k in (1, n + 1):
            with tempfile.TemporaryDirectory(prefix="rxbench-floor-") as wd:
                Path(wd, "Snakefile").write_text(EMPTY_SNAKEFILE.format(cmd=cmd))
                t0 = time.monotonic()
                subprocess.run([SNAKEMAKE, "-s", f"{wd}/Snakefile", "-d", wd, "--cores", "1",
                                "--config", f"njobs={k}"], capture_output=True, check=True)
                walls[k] = time.monotonic() - t0
        out[name] = (walls[n + 1] - walls[1]) / n
    return out


def report(rows: list[dict], fl: dict | None) -> None:
    for r in rows:
        print(f"{r['platform']:5s} {r['cells']} cells ({r['ok']} ok): cells' wall "
              f"{r['wall_cells_s']:.1f} s, measured {r['measured_s']:.1f} s, waited for the "
              f"lock {r['lock_wait_s']:.1f} s; orchestration {r['per_cell_s']:.2f} s/cell "
              f"({r['per_cell_excl_lock_s']:.2f} s/cell without the lock waits; "
              f"{r['marginal_per_cell_s']:.2f} s/cell without snakemake's start-up of "
              f"{r['snakemake_fixed_s']:.1f} s)"
              + (f"; then aggregate..paper {r['wall_rest_s']:.1f} s once"
                 if r.get("wall_rest_s") is not None else ""))
    if rows:
        print("\nper cell (s)            " + "".join(f"{r['platform']:>8s}" for r in rows))
        for p in PARTS:
            print(f"  {p:22s}" + "".join(f"{r['parts_per_cell_s'][p]:8.3f}" for r in rows))
    if fl:
        print("\nfloor, per job (s): " + ", ".join(f"{k} {v:.3f}" for k, v in fl.items()))
    print(json.dumps({"campaigns": rows, "floor": fl}))


def main(argv: list[str]) -> None:
    keep = None
    if "--keep" in argv:
        i = argv.index("--keep")
        keep = Path(argv[i + 1]).resolve()
        del argv[i:i + 2]
    if "--analyse" in argv:
        d = Path(argv[argv.index("--analyse") + 1])
        old = json.loads((d / "overhead.json").read_text())
        report([analyse(d, old["platform"], old["wall_cells_s"], old["wall_rest_s"])], None)
        return
    which = argv or ["local", "ssh", "floor"]
    rows = []
    if "local" in which:
        rows.append(campaign("local", [], keep))
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
            rows.append(campaign("ssh", [f"inventory={hosts.inventory_path}"], keep))
        finally:
            hosts.down()
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
    report(rows, floor() if "floor" in which else None)


if __name__ == "__main__":
    main(sys.argv[1:])
