"""The sender's turn of large messages (a benchmark, not a test): goodput
and the sender's side per byte, with turns of up to 1 MiB against one
message per turn, for one server at each connection count, at the largest
message (where the rule differs) and the smallest (where it does not).
Runs `rxbench bench --layer tcp` once per build and message size on the
real local testbed (as root, quiet machine) and writes the cells' summary
rows, with the build's name and rule, to --out (paper/data/tcp_interleave.csv,
which the paper's "Interleaving connections" paragraph quotes).

    sudo PYTHONPATH=workflow .venv/bin/python tests/bench_interleave.py \\
        --old-native DIR [--reps 5] [--duration 2] [--conns 1,2,8,64] \\
        [--msgs 1024,65536] [--stack epoll] [--out F.csv]

--old-native: a native/build/ of a revision whose rxb-tcp-send gives every
message size turns of up to 1 MiB (e.g. commit 002b226: `git worktree add
/tmp/old 002b226 && make -C /tmp/old/native`). This checkout's build is the
new one. The builds run one after the other, not interleaved.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "workflow"))

from rxbench.aggregate import row  # noqa: E402
from rxbench.result import load_result  # noqa: E402

BUILDS = {"turn1MiB": "up to 1 MiB per turn",
          "turn1msg": "one message per turn from 16 KiB messages"}
COLUMNS = ["sender", "turn", "platform", "layer", "stack", "conns", "msg", "rep", "status",
           "reason", "rx_gbps", "generator_bound", "bottleneck", "congestion_control",
           "sender_cpu_ns_per_byte", "sender_proc_ns_per_byte", "sender_bytes_per_packet",
           "sender_bytes_per_ack", "sender_sends_per_turn", "sender_rps_ipis_per_mb",
           "cpu_ns_per_byte", "kernel", "cpu_model", "started_at"]


def bench(native: Path | None, a, msg: int) -> Path:
    env = dict(os.environ, PYTHONPATH=str(HERE.parent / "workflow"))
    if native is not None:
        env["RXBENCH_NATIVE"] = str(native)
    cmd = [sys.executable, "-m", "rxbench", "bench", "--layer", "tcp", "--reps", str(a.reps),
           "--duration", str(a.duration), "--conns", a.conns, "--msg", str(msg),
           "--stacks", a.stack, "--loads", "max", "--generators", "none"]
    print("$", " ".join(cmd), f"(RXBENCH_NATIVE={native})" if native else "", flush=True)
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    print(out, flush=True)
    m = re.search(r"^raw output: (\S+)", out, re.M)
    if not m:
        raise SystemExit("the benchmark printed no 'raw output:' line")
    return Path(m.group(1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old-native", type=Path, required=True)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--duration", type=float, default=2.0)
    ap.add_argument("--conns", default="1,2,8,64")
    ap.add_argument("--msgs", default="1024,65536")
    ap.add_argument("--stack", default="epoll")
    ap.add_argument("--out", type=Path, default=HERE.parent / "paper" / "data" / "tcp_interleave.csv")
    a = ap.parse_args()
    if not (a.old_native / "rxb-tcp-send").exists():
        raise SystemExit(f"--old-native {a.old_native}: no rxb-tcp-send there")
    rows, dirs = [], []
    for sender, native in (("turn1MiB", a.old_native), ("turn1msg", None)):
        for msg in (int(x) for x in a.msgs.split(",")):
            d = bench(native, a, msg)
            dirs.append(f"{sender}: {d.name}")
            for path in sorted(d.glob("results/**/rep=*.json")):
                r = row(load_result(path), str(path))
                r.update(sender=sender, turn=BUILDS[sender])
                rows.append({k: r.get(k) for k in COLUMNS})
    with open(a.out, "w", newline="") as f:
        f.write("# rxb-tcp-send's turn of large messages, measured: goodput and the sender's\n"
                "# side per byte at each connection count (rows of rxbench's summary,\n"
                "# trimmed; paper.py _interleave_numbers reads it, paper.tex \"Interleaving\n"
                "# connections\" quotes it). One row per cell repetition.\n"
                f"# Made by: tests/bench_interleave.py --reps {a.reps} --duration {a.duration:g} "
                f"--conns {a.conns} --msgs {a.msgs} --stack {a.stack}\n"
                "# (rxbench bench --layer tcp per build and message size, one after the other:\n"
                f"#  {'; '.join(dirs)})\n"
                "#   turn1MiB  rxb-tcp-send of commit 002b226 (up to 1 MiB per turn, every size)\n"
                "#   turn1msg  this checkout's (one message per turn from 16 KiB messages)\n"
                "# sender_rps_ipis_per_mb: softnet received_rps on the sender's CPU per MB sent.\n")
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        w.writerows(rows)
    print(f"{len(rows)} rows -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
