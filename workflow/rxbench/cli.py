"""rxbench command line: what the Snakefile's rules call, and `clean`.

  python -m rxbench cell results/local/eth/xdp_drop/cores=1/size=64/rep=1.json \
      --config-json '{...}' [--log FILE]
  python -m rxbench aggregate --out results/local/summary.csv CELL.json ...
  (figures, tables, numbers and the paper: python -m rxbench.paper --help)
  python -m rxbench clean          # remove what killed runs left behind
  python -m rxbench lease down KIND   # release this checkout's guests/reservation now
  python -m rxbench g5k release [--by-name --config ...]   # free a killed run's nodes
  python -m rxbench g5k walltime [--config ...]   # the walltime a campaign needs
  python -m rxbench targets [--config k=v ...]   # list the configured cells
  python -m rxbench vm-image [--config k=v ...]  # build (or find) the vm guest image
  python -m rxbench vm-cell results/vm/eth/xdp_drop/cores=1/size=64/rep=1.json [--config k=v ...]
                                   # one cell in the vm guests (= cell, config resolved for vm)
  python -m rxbench bench [--reps 5]   # receivers vs offered rate (speed check)
  python -m rxbench reference --platform local --machine NAME
                                   # make reference: results/local -> results/reference/local-NAME
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


def _lease(args) -> int:
    from pathlib import Path

    from . import lease
    from .util import Log
    if args.action == "serve":
        if not (args.kind and args.state):
            raise RxbenchError("lease serve needs KIND and --state FILE")
        return lease.serve(args.kind, Path(args.state))
    if args.action == "down":
        if not args.kind:
            raise RxbenchError("lease down needs KIND (vm, g5k)")
        print(f"released the {args.kind} lease" if lease.down(args.kind, Log())
              else f"no {args.kind} lease of this checkout")
        return 0
    for path in sorted(lease.STATE_DIR.glob("lease-*.json")):
        data = lease._load(path) or {}
        print(f"{path.name}: {data.get('kind')} {data.get('status')} owner "
              f"{data.get('owner_pid')} ({'alive' if lease._owner_alive(data) else 'dead'})")
    return 0


def _g5k(args) -> int:
    from .cells import expand
    from .config import _load_yaml, merge, resolve
    from .platforms import g5k
    from .util import Log

    def cfg():
        from pathlib import Path
        over = _load_yaml(Path(args.configfile)) if args.configfile else {}
        return resolve(merge({"platform": "g5k", **over}, _overrides(args.config)))

    if args.action == "walltime":
        c = cfg()
        print(f"walltime {g5k.walltime(c)} ({g5k.walltime_s(c)} s: {len(expand(c))} cells)")
        return 0
    done = g5k.release(Log())
    if args.by_name:
        done += g5k.release_by_name(cfg(), Log())
    print("\n".join(f"released {d}" for d in done) or "no g5k reservation of this checkout")
    return 0


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
    cl = sub.add_parser("clean", help="remove namespaces, processes and state of dead runs "
                                      "(on every host of the configured platform)")
    cl.add_argument("--config", nargs="*", default=[], metavar="KEY=VALUE",
                    help="e.g. platform=ssh inventory=FILE")
    le = sub.add_parser("lease", help="campaign-scoped resources (vm guests, g5k reservations)")
    le.add_argument("action", choices=["serve", "down", "status"])
    le.add_argument("kind", nargs="?")
    le.add_argument("--state", help="serve: the lease's state file (rxbench.lease.ensure)")
    gk = sub.add_parser("g5k", help="Grid'5000: release a reservation, the campaign's walltime")
    gk.add_argument("action", choices=["release", "walltime"])
    gk.add_argument("--by-name", action="store_true",
                    help="release: also delete any live job of this checkout's name "
                         "(asks the API; needs platforms.g5k in the config)")
    gk.add_argument("--configfile", help="a copy of config/g5k.yaml")
    gk.add_argument("--config", nargs="*", default=[], metavar="KEY=VALUE")
    b = sub.add_parser("bench", help="receivers vs the generator's offered rate, "
                                     "median of N (speed check)")
    b.add_argument("--reps", type=int, default=5)
    b.add_argument("--duration", type=float, default=5.0)
    b.add_argument("--sizes", default="64,1518")
    b.add_argument("--stacks", default="",
                   help="eth receivers (default xdp_drop,af_xdp,dpdk,af_packet) or tcp servers "
                        "(default iperf3 and all of ours); 'none': skip")
    b.add_argument("--napi", default="receiver,sender")
    b.add_argument("--layer", choices=["eth", "tcp", "counters"], default="eth",
                   help="counters: what an rxb-counters snapshot costs")
    b.add_argument("--snapshots", type=int, default=200, help="counters: how many")
    b.add_argument("--rate", type=float, default=10.0, help="counters: snapshots per second")
    b.add_argument("--conns", default="1,8", help="tcp: connections")
    b.add_argument("--msg", type=int, default=65536, help="tcp: message bytes")
    b.add_argument("--touch", type=int, choices=[0, 1], default=0, help="tcp: servers read every byte")
    b.add_argument("--wait-nr", default="1",
                   help="tcp: uring_opt's completions per wait, a list (each a row)")
    b.add_argument("--loads", default="max",
                   help="tcp: sender goodput levels, max and/or Gbit/s targets (e.g. max,1,2)")
    b.add_argument("--generators", default="rxb-gen,rxb-gen sendmmsg,trafgen,"
                                           "testpmd af_packet,testpmd af_xdp",
                   help="generators to compare ('none': skip)")
    b.add_argument("--generator", help="the receivers' generator (default: the config's)")
    r = sub.add_parser("reference", help="copy a finished run results/PLATFORM/ to "
                                         "results/reference/PLATFORM-MACHINE/ (make reference)")
    r.add_argument("--platform", default="local")
    r.add_argument("--machine", required=True, help="a short stable name, e.g. fc2-epyc")
    r.add_argument("--results", default="results")
    r.add_argument("--command", default="snakemake --cores 1",
                   help="the campaign command that made the run (its README says it)")
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
    vi = sub.add_parser("vm-image", help="build the vm platform's guest image (cached by recipe)")
    vi.add_argument("--config", nargs="*", default=[], metavar="KEY=VALUE")
    vi.add_argument("--config-json")
    vi.add_argument("--print-dir", action="store_true", help="only print where it is (or goes)")
    vc = sub.add_parser("vm-cell", help="one cell in the vm guests, as the campaign runs it "
                                        "(the lease boots them once; 'lease down vm' releases)")
    vc.add_argument("out", help="the cell's result path, results/vm/...")
    vc.add_argument("--config", nargs="*", default=[], metavar="KEY=VALUE")
    vc.add_argument("--log", help="the cell's log (default: stderr)")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "cell":
            from .config import resolve
            from .runner import die_with_parent, run_cell
            die_with_parent()
            cfg = (json.loads(args.config_json) if args.config_json
                   else resolve(_overrides(args.config)))
            return run_cell(args.out, cfg, args.log)
        if args.cmd == "bench" and args.layer == "counters":
            from .bench import counters_cost
            return counters_cost(args.snapshots, args.rate)
        if args.cmd == "bench" and args.layer == "tcp":
            from .bench import TCP_STACKS, tcp
            stacks = args.stacks.split(",") if args.stacks else TCP_STACKS
            from .cells import load_value
            return tcp(args.reps, args.duration, [int(x) for x in args.conns.split(",")],
                       args.msg, stacks, args.touch,
                       [load_value(x) for x in args.loads.split(",")],
                       [int(x) for x in args.wait_nr.split(",")])
        if args.cmd == "bench" and args.ndr_cost:
            from .bench import ndr_cost
            return ndr_cost((args.stacks or "xdp_drop").split(","),
                            [int(x) for x in args.sizes.split(",")], args.napi.split(",")[0],
                            args.out, _overrides([f"ndr.{kv}" for kv in args.ndr]),
                            bisection=not args.no_bisection)
        if args.cmd == "bench" and args.rate_accuracy:
            from .bench import rate_accuracy
            return rate_accuracy(args.reps, args.duration, [int(x) for x in args.sizes.split(",")],
                                 [float(x) for x in args.rates.split(",")], args.napi.split(","),
                                 args.out)
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
        elif args.cmd == "lease":
            return _lease(args)
        elif args.cmd == "g5k":
            return _g5k(args)
        elif args.cmd == "reference":
            from .reference import promote
            dst = promote(args.platform, args.machine, args.results,
                          command=f"{args.command}, then make reference "
                                  f"PLATFORM={args.platform} MACHINE={args.machine}")
            print(f"reference set {dst}: commit it (git add {dst})")
        elif args.cmd == "clean":
            from . import lease
            from .state import clean, testbed_lock
            from .util import Log
            from .config import resolve
            cfg = resolve(_overrides(args.config))
            with testbed_lock(Log()):    # a live run's namespaces are not orphans
                removed = clean() + lease.clean(Log())
                if cfg["platform"] == "ssh":
                    from .platforms.ssh import clean_hosts
                    removed += clean_hosts(cfg, Log())
                if cfg["platform"] == "vm":
                    from .platforms.vm import clean_guests
                    removed += clean_guests(cfg, Log())
            print("\n".join(f"removed {r}" for r in removed) or "nothing to clean")
        elif args.cmd == "vm-image":
            from .config import resolve
            from .platforms.vm import build_image, image_dir
            from .util import Log
            cfg = (json.loads(args.config_json) if args.config_json
                   else resolve(_overrides(args.config)))
            print(image_dir(cfg) if args.print_dir else build_image(cfg, Log(echo=True)))
        elif args.cmd == "vm-cell":
            from .config import resolve
            from .runner import run_cell
            return run_cell(args.out, resolve({"platform": "vm", **_overrides(args.config)}),
                            args.log)
        elif args.cmd == "targets":
            from .cells import targets
            from .config import resolve
            print("\n".join(targets(resolve(_overrides(args.config)))))
        return 0
    except RxbenchError as e:
        print(f"rxbench: {e}", file=sys.stderr)
        return 2
    except BaseException as e:
        # runner.Interrupted (a signal, after the teardown); only raised once runner is loaded
        runner = sys.modules.get(f"{__package__}.runner")
        if runner is None or not isinstance(e, runner.Interrupted):
            raise
        print(f"rxbench: interrupted by {e}: torn down", file=sys.stderr)
        return 128 + e.signum
