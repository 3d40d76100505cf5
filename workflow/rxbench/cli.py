"""rxbench command line: what the Snakefile's rules call, and `clean`.

  python -m rxbench cell results/local/eth/xdp_drop/cores=1/size=64/rep=1.json \
      --config-json '{...}' [--log FILE]
  python -m rxbench aggregate --out results/local/summary.csv CELL.json ...
  (figures, tables, numbers and the paper: python -m rxbench.paper --help)
  python -m rxbench clean          # remove what killed runs left behind
  python -m rxbench targets [--config k=v ...]   # list the configured cells
  python -m rxbench bench [--reps 5]   # receivers vs offered rate (speed check)
"""

from __future__ import annotations

import argparse
import json
import sys

import yaml

from . import RxbenchError


def _overrides(pairs: list[str]) -> dict:
    out: dict = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise RxbenchError(f"--config {pair!r}: expected KEY=VALUE")
        key, value = pair.split("=", 1)
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(value)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rxbench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cell", help="measure one cell and write its result JSON")
    c.add_argument("out")
    c.add_argument("--config-json", help="the resolved configuration (as the Snakefile passes it)")
    c.add_argument("--config", nargs="*", default=[], metavar="KEY=VALUE",
                   help="without --config-json: overrides of config/config.yaml")
    c.add_argument("--log")
    a = sub.add_parser("aggregate", help="cell JSONs -> summary CSV")
    a.add_argument("--out", required=True)
    a.add_argument("cells", nargs="*")
    sub.add_parser("clean", help="remove namespaces, processes and state of dead runs")
    b = sub.add_parser("bench", help="receivers vs the generator's offered rate, "
                                     "median of N (speed check)")
    b.add_argument("--reps", type=int, default=5)
    b.add_argument("--duration", type=float, default=5.0)
    b.add_argument("--sizes", default="64,1518")
    b.add_argument("--stacks", default="",
                   help="eth receivers (default xdp_drop,af_xdp,dpdk,af_packet) or tcp servers "
                        "(default iperf3 and all of ours); 'none': skip")
    b.add_argument("--napi", default="receiver,sender")
    b.add_argument("--layer", choices=["eth", "tcp"], default="eth")
    b.add_argument("--conns", default="1,8", help="tcp: connections")
    b.add_argument("--msg", type=int, default=65536, help="tcp: message bytes")
    b.add_argument("--touch", type=int, choices=[0, 1], default=0, help="tcp: servers read every byte")
    b.add_argument("--generators", default="rxb-gen,rxb-gen sendmmsg,trafgen,"
                                           "testpmd af_packet,testpmd af_xdp",
                   help="generators to compare ('none': skip)")
    b.add_argument("--generator", help="the receivers' generator (default: the config's)")
    b.add_argument("--rate-accuracy", action="store_true",
                   help="rxb-gen --rate-pps vs the rate on the link (bench 4)")
    b.add_argument("--rates", default="10000,100000,300000,1000000",
                   help="rate-accuracy: target rates, pps")
    b.add_argument("--ndr-cost", action="store_true",
                   help="MLRsearch vs plain bisection, trials and time (bench 5)")
    b.add_argument("--ndr", nargs="*", default=[], metavar="KEY=VALUE",
                   help="ndr-cost: overrides of the config's ndr section")
    b.add_argument("--no-bisection", action="store_true",
                   help="ndr-cost: MLRsearch only (NDR/PDR per stack)")
    b.add_argument("--out", help="rate-accuracy/ndr-cost: write the raw data (JSON) here")
    g = sub.add_parser("targets", help="print every cell target of the configuration")
    g.add_argument("--config", nargs="*", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "cell":
            from .config import resolve
            from .runner import die_with_parent, run_cell
            die_with_parent()
            cfg = (json.loads(args.config_json) if args.config_json
                   else resolve(_overrides(args.config)))
            return run_cell(args.out, cfg, args.log)
        if args.cmd == "bench" and args.layer == "tcp":
            from .bench import TCP_STACKS, tcp
            stacks = args.stacks.split(",") if args.stacks else TCP_STACKS
            return tcp(args.reps, args.duration, [int(x) for x in args.conns.split(",")],
                       args.msg, stacks, args.touch)
        if args.cmd == "bench" and args.rate_accuracy:
            from .bench import rate_accuracy
            return rate_accuracy(args.reps, args.duration, [int(x) for x in args.sizes.split(",")],
                                 [float(x) for x in args.rates.split(",")],
                                 args.napi.split(","), args.out)
        if args.cmd == "bench" and args.ndr_cost:
            from .bench import ndr_cost
            ndr = _overrides([f"ndr.{kv}" for kv in args.ndr])
            return ndr_cost((args.stacks or "xdp_drop").split(","),
                            [int(x) for x in args.sizes.split(",")],
                            args.napi.split(",")[0], args.out, ndr, not args.no_bisection)
        if args.cmd == "bench":
            from .bench import main as bench
            return bench(args.reps, args.duration, [int(x) for x in args.sizes.split(",")],
                         [] if args.stacks == "none" else
                         (args.stacks or "xdp_drop,af_xdp,dpdk,af_packet").split(","),
                         args.napi.split(","),
                         [] if args.generators == "none" else args.generators.split(","),
                         args.generator)
        if args.cmd == "aggregate":
            from .aggregate import write_summary
            write_summary(args.cells, args.out)
        elif args.cmd == "clean":
            from .state import clean
            removed = clean()
            print("\n".join(f"removed {r}" for r in removed) or "nothing to clean")
        elif args.cmd == "targets":
            from .cells import targets
            from .config import resolve
            print("\n".join(targets(resolve(_overrides(args.config)))))
        return 0
    except RxbenchError as e:
        print(f"rxbench: {e}", file=sys.stderr)
        return 2
