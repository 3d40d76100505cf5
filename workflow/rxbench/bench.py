"""Speed benchmark of the local testbed, median of N, printed side by side:

  python -m rxbench bench [--reps 5] [--duration 5] [--sizes 64,1518]

1. Generators: each candidate sends into the cheapest sink there is (the
   in-kernel XDP_DROP, NAPI threaded on the receiver's CPU) and the rate
   is what that sink counted over the interval. A generator cannot be
   measured alone on veth: with the peer down veth refuses every frame,
   and with the peer up the peer's receive path pushes back, so "alone"
   means "into XDP_DROP on the other CPU". Candidates: rxb-gen
   (PACKET_TX_RING, and sendmmsg), trafgen, dpdk-testpmd txonly on the
   af_packet and af_xdp PMDs (each where installed).
2. Receivers: each stack in each NAPI placement as a real cell
   (runner.run_cell) in a scratch directory, with the rate the generator
   offered in that cell.

  python -m rxbench bench --rate-accuracy [--rates 10000,100000,...] [--out F.json]

4. Rate accuracy of rxb-gen --rate-pps (PACKET_TX_RING and sendmmsg), per
   size, rate and NAPI placement into XDP_DROP: what went onto the link
   (sender veth tx_packets over a window inside the run) against the
   target; pace_resets counts the times the sender fell > 20 ms behind.

  python -m rxbench bench --ndr-cost [--stacks xdp_drop] [--sizes 64] [--out F.json]

5. NDR/PDR search cost: MLRsearch (the ndr profile's settings) and then a
   plain bisection at the final trial duration for each goal, on one
   running receiver: trials, trial seconds, wall time and the rates found.

  python -m rxbench bench --layer tcp [--reps 5] [--duration 5] [--conns 1,8] [--msg 65536]

3. TCP servers: iperf3's server (with its client) and each of ours (with
   rxb-tcp-send), as real cells: goodput, the sender's rate, server CPU
   per byte, saturated CPUs.

Raw output stays in the results tree (never a temporary folder):
results/local/bench/<UTC time>-<what>/ holds the cells (results/local/...
JSON and logs), the generator log, run.json (the command's arguments, the
commit, start and end) and table.txt (what was printed). `make reference`
copies it with the run, so numbers quoted from a bench name their file.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import contextlib
import datetime as dt
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import ROOT, RxbenchError, cells
from .config import resolve
from .measure import cpu_delta, read_proc_stat
from .platforms.local import LocalTestbed, host_probe
from .proc import Tool
from .runner import run_cell, signals_raise
from .state import testbed_lock
from .stacks import Unsupported, registry
from .stacks.eth import DpdkTxonly, RxbGen, XdpDrop
from .util import Log, atomic_write_json


class _Tee:
    """stdout and a file at once (the printed tables are part of the raw output)."""

    def __init__(self, path: Path):
        self.f = open(path, "a")
        self.out = sys.stdout

    def write(self, s):
        self.out.write(s)
        self.f.write(s)
        return len(s)

    def flush(self):
        self.out.flush()
        self.f.flush()


@contextlib.contextmanager
def bench_dir(what: str, args: dict, results: Path | None = None):
    """results/local/bench/<UTC time>-<what>/, kept; prints go to its table.txt."""
    from .provenance import git_rev
    started = dt.datetime.now(dt.timezone.utc)
    d = Path(results or ROOT / "results") / "local" / "bench" / \
        f"{started.strftime('%Y%m%dT%H%M%SZ')}-{what}"
    d.mkdir(parents=True, exist_ok=False)
    meta = {"what": what, "args": args, "git_rev": git_rev(), "started_at": started.isoformat(),
            "command": "python -m rxbench " + " ".join(sys.argv[1:])}
    atomic_write_json(d / "run.json", meta)
    tee = _Tee(d / "table.txt")
    try:
        with contextlib.redirect_stdout(tee):
            print(f"raw output: {d}")
            yield d
    finally:
        tee.f.close()
        meta["finished_at"] = dt.datetime.now(dt.timezone.utc).isoformat()
        atomic_write_json(d / "run.json", meta)


def _trafgen_conf(path: Path, dst_mac: str, size: int) -> None:
    """One UDP/IPv4 frame of `size` bytes with FCS (size - 4 on the wire),
    198.18.0.1 -> 198.18.0.2, in trafgen's configuration language."""
    mac = ", ".join(f"0x{b}" for b in dst_mac.split(":"))
    ip_len, udp_len = size - 4 - 14, size - 4 - 14 - 20
    path.write_text(
        f"{{ {mac}, 0x02,0,0,0,0,1, 0x08,0x00,\n"
        f"  0x45,0x00, const16({ip_len}), 0,0, 0x40,0x00, 64, 17, csumip(14, 33),\n"
        f"  198,18,0,1, 198,18,0,2,\n"
        f"  const16(9), const16(9), const16({udp_len}), const16(0), fill(0x00, {udp_len - 8}) }}\n")


def _generator_argv(kind: str, cfg: dict, cell, tb, placement, bound: float,
                    tmp: Path) -> list[str] | None:
    """The command of one candidate, on the sender's side and CPUs (None:
    not installed). The project's own generators build their commands."""
    if kind.startswith("rxb-gen"):
        method = "sendmmsg" if "sendmmsg" in kind else "mmap"
        return RxbGen(cfg, cell, tb, placement).argv(bound) + ["--method", method]
    if kind.startswith("testpmd"):
        if not shutil.which("dpdk-testpmd"):
            return None
        gen = DpdkTxonly(cfg, cell, tb, placement)
        gen.pmd = kind.split()[-1]
        return gen.argv(bound)
    if kind == "trafgen":
        if not shutil.which("trafgen"):
            return None
        conf = tmp / f"trafgen-{cell.params['size']}.cfg"
        _trafgen_conf(conf, tb.receiver.mac, cell.params["size"])
        # bounded by count (100 Mpkt) and by `timeout`; -Q: leave IRQ affinity
        # alone; -S: a TX ring within the default socket buffer (trafgen
        # cannot raise the global wmem sysctls from a namespace, and with
        # its default ring it sends nothing and gives up)
        return tb.sender.exec(["timeout", "-s", "INT", f"{bound:.0f}", "trafgen", "--dev",
                               tb.sender.ifname, "--conf", str(conf), "--cpus", "1",
                               "-n", "100000000", "-Q", "-C", "-S", "64KiB"],
                              placement.generator)
    raise ValueError(kind)


# a generator-receiver cache-line round trip above this: the host placed the
# two vCPUs far apart (46-74 ns vs 365-420 ns measured here)
FAR_NS = 150

GENERATOR_KINDS = ["rxb-gen", "rxb-gen sendmmsg", "trafgen", "testpmd af_packet",
                   "testpmd af_xdp"]


def generator_rate(kind: str, size: int, cfg: dict, log: Log, tmp: Path,
                   warmup: float, duration: float) -> dict | None:
    """Rate (pps) that XDP_DROP counted while `kind` sent into it."""
    cell = cells.Cell("local", "eth", "xdp_drop", {"cores": 1, "size": size,
                                                   "napi": "receiver"}, 1)
    probe = host_probe(cfg, log)
    tb = LocalTestbed(cfg, log)
    placement = tb.cpus(1, "receiver")
    sink = XdpDrop(cfg, cell, tb, placement)
    with tb:
        argv = _generator_argv(kind, cfg, cell, tb, placement, warmup + duration + 2.0, tmp)
        if argv is None:
            return None
        rx = Tool("receiver", sink.argv(warmup + duration + 30), log, tb.registry,
                  name=sink.tool).start()
        rx.wait_event("ready", sink.ready_timeout)
        tb.place_napi(placement)
        gen = Tool("generator", argv, log, tb.registry,
                   name=kind).start()
        if kind.startswith("testpmd"):
            gen.wait_event("ready", 90)
        time.sleep(warmup)
        a, sa = rx.snapshot(), read_proc_stat()
        time.sleep(duration)
        b, sb = rx.snapshot(), read_proc_stat()
        gen.stop(signal.SIGINT, timeout=15)
        rx.stop(signal.SIGTERM)
    got = int(b["packets"]) - int(a["packets"])
    cpu = cpu_delta(sa, sb)
    return {"pps": got / ((b["t_ns"] - a["t_ns"]) / 1e9),
            "gen_cpu": max(cpu[str(c)]["busy_frac"] for c in placement.generator),
            "rx_cpu": max(cpu[str(c)]["busy_frac"] for c in placement.application),
            "pingpong_ns": probe.get("pingpong_ns", 0)}


def generators(reps: int, duration: float, sizes: list[int], kinds: list[str],
               tmp: Path) -> None:
    cfg = resolve({"profile": "smoke"})
    with signals_raise():
        log = Log(Path(tmp) / "generators.log")
        rows = []
        for kind in kinds:
            for size in sizes:
                runs = []
                for _ in range(reps):
                    try:
                        r = generator_rate(kind, size, cfg, log, Path(tmp), 1.0, duration)
                    except Exception as e:      # a candidate that fails is reported, not fatal
                        print(f"{kind} {size} B: failed: {e}")
                        r = {}
                    if r is None:
                        break
                    if r:
                        runs.append(r)
                rows.append((kind, size, runs))
    print(f"\ngenerators into XDP_DROP (NAPI on CPU 1), generator on CPU "
          f"{cfg['platforms']['local']['generator_cpus']}, median of {reps} x {duration:g} s")
    print(f"{'generator':22} {'size':>5} {'Mpps':>7} {'min-max':>13} {'gen CPU':>8} {'sink CPU':>9} "
          f"{'far host':>8}")
    for kind, size, runs in rows:
        if not runs:
            print(f"{kind:22} {size:>5} {'n/a (not installed or failed)':>30}")
            continue
        pps = [r["pps"] / 1e6 for r in runs]
        print(f"{kind:22} {size:>5} {statistics.median(pps):7.3f} "
              f"{min(pps):6.3f}-{max(pps):.3f} "
              f"{statistics.median(r['gen_cpu'] for r in runs):8.2f} "
              f"{statistics.median(r['rx_cpu'] for r in runs):9.2f} "
              f"{sum(1 for r in runs if r['pingpong_ns'] > FAR_NS)}/{len(runs)}")


def main(reps: int, duration: float, sizes: list[int], stacks: list[str],
         napis: list[str], kinds: list[str], generator: str | None = None) -> int:
    if os.geteuid() != 0:
        raise RxbenchError("the benchmark runs real cells: run it as root")
    for k in kinds:
        if k not in GENERATOR_KINDS:
            raise RxbenchError(f"unknown generator {k!r}; known: {', '.join(GENERATOR_KINDS)}")
    with bench_dir("eth", {"reps": reps, "duration": duration, "sizes": sizes, "stacks": stacks,
                           "napi": napis, "generators": kinds, "generator": generator}) as out:
        if kinds:
            generators(reps, duration, sizes, kinds, out)
        if stacks:
            receivers(reps, duration, sizes, stacks, napis, out, generator)
    return 0


def _cell(out: str, cfg: dict) -> dict:
    """One real cell (runner.run_cell) and its result. A cell interrupted
    by a signal was torn down and wrote nothing: stop the benchmark there
    with one line (the cells finished so far stay in the results tree)."""
    rc = run_cell(out, cfg, out.replace(".json", ".log"))
    if rc >= 128 or not Path(out).exists():
        raise RxbenchError(f"interrupted (status {rc}) during {out}: the cell was torn down "
                           f"and wrote no result; the cells before it are kept")
    return json.loads(Path(out).read_text())


def receivers(reps: int, duration: float, sizes: list[int], stacks: list[str],
              napis: list[str], tmp: Path, generator: str | None = None) -> None:
    """The default profile's cells (its generator, unless one is given)."""
    eth = {"stacks": stacks, "sizes": sizes, "variants": {"napi": napis}}
    if generator:
        eth["generator"] = generator
    cfg = resolve({"duration_s": duration, "warmup_s": 1, "eth": eth})
    rows = []
    plan = [(s, s, n) for s in stacks for n in napis]
    with signals_raise():
        for label, stack, napi in plan:
            for size in sizes:
                runs = []
                for rep in range(1, reps + 1):
                    cell = cells.Cell("local", "eth", stack,
                                      {"cores": 1, "size": size, "napi": napi}, rep)
                    out = cell.path(cells.variant_defaults(cfg, "eth", stack), root=f"{tmp}/results")
                    res = _cell(out, cfg)
                    if res["status"] != "ok":
                        print(f"{label} {size} B rep {rep}: {res['status']}: {res['reason']}")
                        continue
                    runs.append(res)
                rows.append((f"{label} napi={napi}", size, runs))
    print(f"\nmedian of {reps} x {duration:g} s, 1 receiver core, generator "
          f"{cfg['eth']['generator']} on CPU {cfg['platforms']['local']['generator_cpus']}")
    print(f"{'what':28} {'size':>5} {'offered Mpps':>13} {'rx Mpps':>8} {'min-max rx':>13} "
          f"{'saturated CPUs':>15} {'gen-bound':>9} {'far host':>8}")
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
        # runs whose generator and receiver CPUs were far apart on the host
        # (cache-line round trip > 150 ns, see platforms/local.py host_probe)
        far = sum(1 for r in runs if (r.get("host_probe") or {}).get("pingpong_ns", 0) > FAR_NS)
        print(f"{label:28} {size:>5} {off:13.3f} {rx_s} {rng:>13} {str(sat):>15} "
              f"{(str(gb) + '/' + str(len(runs))) if rx else '-':>9} {far}/{len(runs):<6}")


# the TCP stacks, the reference (iperf3) first
TCP_STACKS = sorted(registry.names("tcp"), key=lambda s: registry.role(s) != "reference")


def tcp(reps: int, duration: float, conns: list[int], msg: int, stacks: list[str],
        touch: int = 0, loads: list | None = None, wait_nrs: list[int] | None = None) -> int:
    """Per server, connection count and load ("max" or a goodput target in
    Gbit/s): goodput, CPU per byte and, at a target, how close the
    rate-limited sender came to it (median and worst over the reps).
    uring_opt once per wait_nrs value (a row each)."""
    loads = loads or ["max"]
    wait_nrs = wait_nrs or [1]
    if os.geteuid() != 0:
        raise RxbenchError("the benchmark runs real cells: run it as root")
    cfg = resolve({"profile": "smoke", "warmup_s": 1,
                   "tcp": {"stacks": stacks, "conns": conns, "msgs": [msg],
                           "duration_s": duration}})
    with bench_dir("tcp", {"reps": reps, "duration": duration, "conns": conns, "msg": msg,
                           "stacks": stacks, "touch": touch, "loads": loads,
                           "wait_nr": wait_nrs}) as tmp:
        _tcp(cfg, reps, duration, conns, msg, stacks, touch, tmp, loads, wait_nrs)
    return 0


def _tcp(cfg, reps, duration, conns, msg, stacks, touch, tmp: Path, loads: list,
         wait_nrs: list[int]) -> None:
    rows = []
    runs_of = [(s, w) for s in stacks for w in (wait_nrs if s == "uring_opt" else [1])]
    with signals_raise():
        for (stack, wnr), n, load in ((sw, n, ld) for sw in runs_of for n in conns
                                      for ld in loads):
            runs = []
            name = f"{stack} w{wnr}" if wnr > 1 else stack
            for rep in range(1, reps + 1):
                params = {"conns": n, "msg": msg, "cores": 1, "load": load}
                if stack != "iperf3":
                    params["touch"] = touch
                if stack == "uring_opt":
                    params["wait_nr"] = wnr
                cell = cells.Cell("local", "tcp", stack, params, rep)
                out = cell.path(cells.variant_defaults(cfg, "tcp", stack),
                                root=f"{tmp}/results")
                res = _cell(out, cfg)
                if res["status"] != "ok":
                    print(f"{name} conns={n} rep {rep}: {res['status']}: {res['reason']}")
                    if res["status"] == "unsupported":
                        break
                    continue
                runs.append(res)
            rows.append((name, n, load, runs))
    print(f"\nTCP, {msg}-byte messages, median of {reps} x {duration:g} s, server on CPU "
          f"1, sender on CPU {cfg['platforms']['local']['generator_cpus']}, touch={touch}")
    print(f"{'server':11} {'conns':>5} {'load':>5} {'Gbit/s':>7} {'min-max':>13} "
          f"{'sender Gbit/s':>13} {'err% med':>8} {'err% max':>8} "
          f"{'ns/byte':>8} {'saturated':>10} {'gen-bound':>9}")
    for stack, n, load, runs in rows:
        if not runs:
            print(f"{stack:11} {n:>5} {load!s:>5} {'n/a':>7}")
            continue
        errs = [r["load"]["error_pct"] for r in runs if r.get("load")]
        err = (f"{statistics.median(errs):+8.2f} {max(errs, key=abs):+8.2f}" if errs
               else f"{'-':>8} {'-':>8}")
        g = [r["rx_gbps"] for r in runs]
        cpb = [r["cpu_ns_per_byte"] for r in runs if r.get("cpu_ns_per_byte") is not None]
        sat = sorted({c for r in runs for c in r["saturated_cpus"]})
        gb = sum(1 for r in runs if r["generator_bound"])
        print(f"{stack:11} {n:>5} {load!s:>5} {statistics.median(g):7.2f} "
              f"{min(g):6.2f}-{max(g):<6.2f} "
              f"{statistics.median(r['offered_gbps'] for r in runs):13.2f} {err} "
              f"{statistics.median(cpb) if cpb else float('nan'):8.3f} {str(sat):>10} "
              f"{gb}/{len(runs):<7}")


def counters_cost(snapshots: int = 200, rate_hz: float = 10.0, ifname: str = "lo") -> int:
    """4. What one rxb-counters snapshot costs: wall ns per snapshot (as the
    reader stamps it) and the reader's own CPU per snapshot, then its CPU
    fraction at the runner's rate (two snapshots per cell of warm-up +
    duration) and at rate_hz. The reader watches a process tree (a shell and
    two children, like a wrapper over a tool) and the NAPI kthreads, on
    interface ifname of this namespace."""
    from .stacks import native_tool
    cfg = resolve({})
    log = Log(None)
    tree = subprocess.Popen(["sh", "-c", "sleep 600 & sleep 600 & wait"],
                            start_new_session=True)
    reader = Tool("counters", [native_tool("rxb-counters"), "--ifname", ifname, "--pid",
                               str(tree.pid), "--comm-prefix", "napi/", "--duration",
                               str(snapshots / rate_hz + 30)], lambda m: None)
    try:
        reader.start()
        reader.wait_event("ready", 10)
        time.sleep(0.2)
        snaps = []
        for _ in range(snapshots):
            snaps.append(reader.snapshot())
            time.sleep(1 / rate_hz)
    finally:
        reader.stop(signal.SIGTERM)
        os.killpg(tree.pid, signal.SIGKILL)
        tree.wait()
        log.close()
    wall = sorted(s["snapshot_ns"] for s in snaps)
    cpu_per = (snaps[-1]["self_cpu_ns"] - snaps[0]["self_cpu_ns"]) / (len(snaps) - 1)
    cell_s = cfg["warmup_s"] + cfg["duration_s"]
    out = {"snapshots": len(snaps), "procs": len(snaps[-1]["procs"]),
           "snapshot_ns_median": wall[len(wall) // 2], "snapshot_ns_p95": wall[int(len(wall) * .95)],
           "cpu_ns_per_snapshot": round(cpu_per),
           "cpu_frac_at_runner_rate": cpu_per * 2 / (cell_s * 1e9),
           f"cpu_frac_at_{rate_hz:g}_hz": cpu_per * rate_hz / 1e9,
           "line_bytes": len(json.dumps(snaps[-1]))}
    print(json.dumps(out, indent=1))
    return 0


RATE_METHODS = ("mmap", "sendmmsg")
RETRIES = 6       # a testbed lost mid-run (another session's clean-up) is built again


def _retrying(what: str, fn):
    for attempt in range(1, RETRIES + 1):
        try:
            return fn()
        except Unsupported:
            raise
        except RxbenchError as e:
            print(f"{what}: attempt {attempt} failed: {e}")
            if attempt == RETRIES:
                raise


def _save(out: str | None, data) -> None:
    if out:
        from .util import atomic_write_json
        atomic_write_json(out, data)
        print(f"raw data: {out}")


def _max_window(b, duration_s: float, warmup_s: float = 0.5) -> float:
    """rxb-gen unpaced (as fast as it goes) on a Bench: frames per second
    on the link over a window inside the run."""
    return b.tx_window(None, duration_s, warmup_s)[0]


def rate_accuracy(reps: int, duration: float, sizes: list[int], rates: list[float],
                  napis: list[str], out: str | None = None,
                  methods: list[str] | tuple = RATE_METHODS) -> int:
    """rxb-gen --rate-pps against what went onto the link (bench 4), with
    the generator's own maximum (unpaced) per method and size: a target
    above 99 % of it is marked `above max` (not a pacing error)."""
    from .ndr import Bench
    if os.geteuid() != 0:
        raise RxbenchError("the benchmark uses the real testbed: run it as root")
    cfg = resolve({"profile": "smoke"})
    rows = []
    with tempfile.TemporaryDirectory(prefix="rxbench-bench-") as tmp, signals_raise():
        log = Log(Path(tmp) / "rate.log")
        with testbed_lock(log):
            for method in methods:
                for napi in napis:
                    for size in sizes:
                        cell = cells.Cell("local", "eth", "xdp_drop",
                                          {"cores": 1, "size": size, "napi": napi}, 1)

                        def one(rate):
                            with Bench(cfg, cell, log, bound_s=3600) as b:
                                b.method = method
                                if rate is None:
                                    return [_max_window(b, duration) for _ in range(reps)]
                                return [b.rate_window(rate, duration) for _ in range(reps)]
                        top = statistics.median(_retrying(f"{method} {napi} {size} B max",
                                                          lambda: one(None)))
                        for rate in rates:
                            runs = _retrying(f"{method} {napi} {size} B {rate:g} pps",
                                             lambda: one(rate))
                            rows.append({"generator": f"rxb-gen {method}", "napi": napi,
                                         "size": size, "target_pps": rate, "max_pps": top,
                                         "above_max": rate > 0.99 * top, "runs": runs})
    print(f"\nrxb-gen --rate-pps into XDP_DROP: rate on the link (sender veth tx_packets) "
          f"vs target, median of {reps} x {duration:g} s; "
          f"max = unpaced, same window")
    print(f"{'generator':18} {'napi':8} {'size':>5} {'target pps':>11} {'link pps':>11} "
          f"{'error %':>8} {'worst %':>8} {'resets':>7} {'backpr.':>8} {'max pps':>9}")
    for r in rows:
        link = [x["link_pps"] for x in r["runs"]]
        err = [(v - r["target_pps"]) / r["target_pps"] * 100 for v in link]
        r["median_error_pct"] = statistics.median(err)
        print(f"{r['generator']:18} {r['napi']:8} {r['size']:>5} {r['target_pps']:>11.0f} "
              f"{statistics.median(link):>11.0f} {statistics.median(err):>+8.2f} "
              f"{max(err, key=abs):>+8.2f} "
              f"{sum(x['pace_resets'] or 0 for x in r['runs']):>7} "
              f"{sum(x['backpressure'] or 0 for x in r['runs']):>8} {r['max_pps']:>9.0f}"
              + ("  above max" if r["above_max"] else ""))
    _save(out, rows)
    return 0


def ndr_cost(stacks: list[str], sizes: list[int], napi: str, out: str | None = None,
             overrides: dict | None = None, bisection: bool = True) -> int:
    """MLRsearch vs a plain bisection for the same points (bench 5)."""
    if os.geteuid() != 0:
        raise RxbenchError("the benchmark uses the real testbed: run it as root")
    cfg = resolve({"profile": "ndr", **(overrides or {})})
    n = cfg["ndr"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="rxbench-bench-") as tmp, signals_raise():
        log = Log(Path(tmp) / "ndr.log")
        with testbed_lock(log):
            for stack in stacks:
                for size in sizes:
                    cell = cells.Cell("local", "eth", stack,
                                      {"cores": 1, "size": size, "napi": napi}, 1)
                    try:
                        rows.append(_retrying(f"{stack} {size} B", lambda: _ndr_point(
                            cfg, cell, log, n, stack, size, napi, bisection)))
                    except Unsupported as e:
                        print(f"{stack} {size} B napi={napi}: unsupported: {e}")
                    except RxbenchError as e:     # lost every attempt: the next point still runs
                        print(f"{stack} {size} B napi={napi}: failed {RETRIES} times: {e}")
    _ndr_report(rows, n, napi)
    _save(out, rows)
    return 0


def _ndr_point(cfg, cell, log, n, stack, size, napi, bisection) -> dict:
    from .ndr import Bench, bisect, mlrsearch
    with Bench(cfg, cell, log, bound_s=4 * n["search_duration_max_s"]) as b:
        mlr = mlrsearch(b, n, n["max_load_pps"])
        none = {"rate_pps": None, "trials": 0, "trial_seconds": 0.0, "wall_s": 0.0}
        bis = {goal: bisect(b, n["min_load_pps"], n["max_load_pps"], ratio,
                            n["final_trial_duration_s"], n["relative_width"])
               if bisection else none
               for goal, ratio in (("ndr", 0.0), ("pdr", n["pdr_loss_ratio"]))}
        return {"stack": stack, "size": size, "napi": napi, "mlrsearch": mlr,
                "bisection": bis, "trials": b.trials}


def _ndr_report(rows: list[dict], n: dict, napi: str) -> None:
    print(f"\nNDR/PDR search cost, napi={napi}: MLRsearch (NDR and PDR in one search; "
          f"trials {n['initial_trial_duration_s']:g}-{n['final_trial_duration_s']:g} s, "
          f"duration sum {n['duration_sum_s']:g} s, width {n['relative_width']:g}) vs a plain "
          f"bisection per goal ({n['final_trial_duration_s']:g} s trials), "
          f"loads {n['min_load_pps']:g}-{n['max_load_pps']:g} pps")
    print(f"{'stack':10} {'size':>5} {'method':10} {'NDR pps':>10} {'PDR pps':>10} "
          f"{'trials':>7} {'trial s':>8} {'wall s':>7}")
    for r in rows:
        m, bn, bp = r["mlrsearch"], r["bisection"]["ndr"], r["bisection"]["pdr"]
        print(f"{r['stack']:10} {r['size']:>5} {'MLRsearch':10} {m['ndr_pps'] or 0:>10.0f} "
              f"{m['pdr_pps'] or 0:>10.0f} {m['trials']:>7} {m['trial_seconds']:>8.1f} "
              f"{m['wall_s']:>7.1f}")
        print(f"{'':10} {'':>5} {'bisection':10} {bn['rate_pps'] or 0:>10.0f} "
              f"{bp['rate_pps'] or 0:>10.0f} {bn['trials'] + bp['trials']:>7} "
              f"{bn['trial_seconds'] + bp['trial_seconds']:>8.1f} "
              f"{bn['wall_s'] + bp['wall_s']:>7.1f}")
