"""What starting a tool on an SSH host costs its far end (a benchmark, not a
test): the time from starting the wrapper to the tool's first output line,
native/rxb-run against `remote.py run` (the Python the ssh hosts run it
with: this interpreter unless --python), on an idle CPU and on a CPU kept
100 % busy by a spinning process (the wrapper pinned to the spinner's CPU,
as a cell's generator keeps its CPU busy). Medians of N runs; the tool is
`echo` (the wrapper's own cost) or, with --tool counters, rxb-counters
(the reader a cell starts last).

    .venv/bin/python tests/bench_run_start.py [--runs 20] [--cpu 0] [--tool echo|counters]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NATIVE = ROOT / "native" / "build"
REMOTE_PY = ROOT / "workflow" / "rxbench" / "hosts" / "remote.py"


def first_line_s(wrapper: list[str], tool: list[str], record: str, cpu: int | None) -> float:
    argv = [*wrapper, "--bound", "30", "--record", record, "--", *tool]
    # pinned between fork and exec (a syscall), so the wrapper starts on the busy CPU
    pin = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, preexec_fn=pin)
    try:
        for line in p.stdout:
            if not line.startswith(b'{"event": "spawned"'):
                took = time.perf_counter() - t0
                break
        else:
            raise RuntimeError(f"{argv}: no output from the tool (exit {p.wait()})")
    finally:
        p.stdin.close()            # the channel closes: the tool's group ends
        p.wait(10)
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--cpu", type=int, default=0, help="the busy CPU (default 0)")
    ap.add_argument("--tool", choices=("echo", "counters"), default="echo")
    ap.add_argument("--python", default=sys.executable)
    a = ap.parse_args()
    tool = ["echo", "ready"] if a.tool == "echo" else \
        [str(NATIVE / "rxb-counters"), "--duration", "5"]
    wrappers = {"rxb-run": [str(NATIVE / "rxb-run")],
                "remote.py run": [a.python, str(REMOTE_PY), "run"]}
    with tempfile.TemporaryDirectory() as d:
        record = f"{d}/rec.pids"
        for load in ("idle", "busy"):
            spin = None
            if load == "busy":
                spin = subprocess.Popen(["taskset", "-c", str(a.cpu), "timeout", "300", "sh", "-c",
                                         "while :; do :; done"], start_new_session=True)
                time.sleep(0.5)
            try:
                cpu = a.cpu if load == "busy" else None
                for name, w in wrappers.items():
                    ts = sorted(first_line_s(w, tool, record, cpu) for _ in range(a.runs))
                    print(f"{load:4} {name:14} median {statistics.median(ts) * 1e3:7.1f} ms  "
                          f"min {ts[0] * 1e3:6.1f}  max {ts[-1] * 1e3:6.1f}  (n={a.runs}, "
                          f"tool {a.tool}{f', on busy CPU {cpu}' if cpu is not None else ''})",
                          flush=True)
            finally:
                if spin is not None:
                    os.killpg(spin.pid, signal.SIGKILL)   # timeout and its spinning sh
                    spin.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
