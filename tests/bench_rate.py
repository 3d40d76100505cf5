"""Rate accuracy of rxb-gen --rate-pps (a benchmark, not a test): per
method (PACKET_TX_RING, sendmmsg), NAPI placement, frame size and target
rate, what went onto the link (the sender veth's tx_packets over a window
inside the run, not what the generator queued) against the target, median
and worst of --reps windows. Runs on the real local testbed, as root,
under the machine's testbed lock; the machine is shared: say so when
quoting it.

    sudo PYTHONPATH=workflow .venv/bin/python tests/bench_rate.py \\
        [--reps 3] [--duration 2] [--sizes 64,1518] \\
        [--rates 10000,100000,300000,1000000] [--napi sender] [--out F.json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "workflow"))

from rxbench import RxbenchError  # noqa: E402
from rxbench.bench import rate_accuracy  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=float, default=2.0)
    ap.add_argument("--sizes", default="64,1518")
    ap.add_argument("--rates", default="10000,100000,300000,1000000")
    ap.add_argument("--napi", default="sender")
    ap.add_argument("--methods", default="mmap,sendmmsg")
    ap.add_argument("--out", help="write the raw data (JSON) here")
    a = ap.parse_args(argv)
    try:
        return rate_accuracy(a.reps, a.duration, [int(x) for x in a.sizes.split(",")],
                             [float(x) for x in a.rates.split(",")], a.napi.split(","),
                             a.out, methods=a.methods.split(","))
    except RxbenchError as e:
        print(f"bench_rate: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
