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
        [--threads 2 --cpus 0,1]

With --threads T (> 1): rxb-gen with T sending threads on --cpus into
XDP_DROP on a veth with T queues (NAPI in softirq on the senders, which
is why it can run with as many CPUs as threads): the rate on the link, and
what each RX queue got, per size and rate.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "workflow"))

import signal  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from rxbench import RxbenchError, cells  # noqa: E402
from rxbench.bench import rate_accuracy  # noqa: E402
from rxbench.config import resolve  # noqa: E402
from rxbench.measure import ethtool_stats, link_stats  # noqa: E402
from rxbench.platforms.base import Placement  # noqa: E402
from rxbench.platforms.local import LocalTestbed  # noqa: E402
from rxbench.proc import Tool  # noqa: E402
from rxbench.queues import per_queue_received  # noqa: E402
from rxbench.stacks import RECEIVERS  # noqa: E402
from rxbench.stacks.base import native_tool  # noqa: E402
from rxbench.util import Log  # noqa: E402


def _window(tb, argv, log, duration, warmup=0.5):
    """(link pps, per-RX-queue frames, rxb-gen's final line) over a window."""
    s, r = tb.sender, tb.receiver
    g = Tool("generator", argv, log, tb.registry, name="rxb-gen",
             bound_s=warmup + duration + 15).start()
    try:
        g.wait_event("ready", 10)
        time.sleep(warmup)
        t0a = time.monotonic()
        a, qa = int(link_stats(s.host, s.ifname)["tx_packets"]), ethtool_stats(r.host, r.ifname)
        t0 = (t0a + time.monotonic()) / 2
        time.sleep(duration)
        t1a = time.monotonic()
        b, qb = int(link_stats(s.host, s.ifname)["tx_packets"]), ethtool_stats(r.host, r.ifname)
        t1 = (t1a + time.monotonic()) / 2
    finally:
        g.stop(signal.SIGINT)
    return (b - a) / (t1 - t0), per_queue_received(qa, qb), g.find("final") or {}


def threads_bench(threads: int, cpus: list[int], reps: int, duration: float,
                  sizes: list[int], rates: list[float], methods: list[str]) -> int:
    cfg = resolve({"profile": "smoke"})
    rows = []
    with tempfile.TemporaryDirectory(prefix="rxbench-bench-") as tmp:
        log = Log(Path(tmp) / "threads.log")
        for size in sizes:
            cell = cells.Cell("local", "eth", "xdp_drop", {"cores": 1, "size": size,
                                                           "napi": "sender"}, 1)
            tb = LocalTestbed(cfg, log, queues=threads)
            placement = Placement(sorted(set(cpus)), cpus[:1], "sender", sorted(set(cpus)))
            rx = RECEIVERS["xdp_drop"](cfg, cell, tb, placement)
            rx.probe()
            with tb:
                s, r = tb.sender, tb.receiver
                rxt = Tool("receiver", rx.argv(3600), log, tb.registry, name=rx.tool).start()
                rxt.wait_event("ready", rx.ready_timeout)
                try:
                    for method in methods:
                        for rate in rates:
                            argv = s.exec([native_tool("rxb-gen"), "--ifname", s.ifname,
                                           "--dst-mac", r.mac, "--src-ip", s.ip, "--dst-ip", r.ip,
                                           "--size", str(size), "--threads", str(threads),
                                           "--cpus", ",".join(map(str, cpus)), "--method", method,
                                           "--rate-pps", str(int(rate)),
                                           "--duration", f"{duration + 2:.3f}"])
                            runs = [_window(tb, argv, log, duration) for _ in range(reps)]
                            rows.append((method, size, rate, runs))
                finally:
                    rxt.stop(signal.SIGTERM)
    print(f"\nrxb-gen --threads {threads} --cpus {','.join(map(str, cpus))} into XDP_DROP on a "
          f"{threads}-queue veth: rate on the link vs target, median of {reps} x {duration:g} s "
          f"(machine shared with other work)")
    print(f"{'method':9} {'size':>5} {'target pps':>11} {'link pps':>11} {'error %':>8} "
          f"{'worst %':>8} {'resets':>7}  per RX queue (last window)")
    for method, size, rate, runs in rows:
        err = [(x[0] - rate) / rate * 100 for x in runs]
        print(f"{method:9} {size:>5} {rate:>11.0f} {statistics.median(x[0] for x in runs):>11.0f} "
              f"{statistics.median(err):>+8.2f} {max(err, key=abs):>+8.2f} "
              f"{sum(x[2].get('pace_resets', 0) for x in runs):>7}  {runs[-1][1]}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=float, default=2.0)
    ap.add_argument("--sizes", default="64,1518")
    ap.add_argument("--rates", default="10000,100000,300000,1000000")
    ap.add_argument("--napi", default="sender")
    ap.add_argument("--methods", default="mmap,sendmmsg")
    ap.add_argument("--out", help="write the raw data (JSON) here")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cpus", default="0,1", help="with --threads: the threads' CPUs")
    a = ap.parse_args(argv)
    try:
        if a.threads > 1:
            return threads_bench(a.threads, [int(x) for x in a.cpus.split(",")], a.reps,
                                 a.duration, [int(x) for x in a.sizes.split(",")],
                                 [float(x) for x in a.rates.split(",")], a.methods.split(","))
        return rate_accuracy(a.reps, a.duration, [int(x) for x in a.sizes.split(",")],
                             [float(x) for x in a.rates.split(",")], a.napi.split(","),
                             a.out, methods=a.methods.split(","))
    except RxbenchError as e:
        print(f"bench_rate: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
