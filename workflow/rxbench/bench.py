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

  python -m rxbench bench --layer tcp [--reps 5] [--duration 5] [--conns 1,8] [--msg 65536]

3. TCP servers: iperf3's server (with its client) and each of ours (with
   rxb-tcp-send), as real cells: goodput, the sender's rate, server CPU
   per byte, saturated CPUs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from . import RxbenchError, cells
from .config import resolve
from .measure import cpu_delta, read_proc_stat
from .platforms.local import LocalTestbed
from .proc import Tool
from .runner import host_probe, run_cell, signals_raise
from .stacks import XdpDrop
from .stacks.eth import DpdkTxonly, RxbGen
from .util import Log


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


def generators(reps: int, duration: float, sizes: list[int], kinds: list[str]) -> None:
    cfg = resolve({"profile": "smoke"})
    with tempfile.TemporaryDirectory(prefix="rxbench-bench-") as tmp, signals_raise():
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
    if kinds:
        generators(reps, duration, sizes, kinds)
    if stacks:
        receivers(reps, duration, sizes, stacks, napis, generator)
    return 0


def receivers(reps: int, duration: float, sizes: list[int], stacks: list[str],
              napis: list[str], generator: str | None = None) -> None:
    """The default profile's cells (its generator, unless one is given)."""
    eth = {"stacks": stacks, "sizes": sizes, "variants": {"napi": napis}}
    if generator:
        eth["generator"] = generator
    cfg = resolve({"duration_s": duration, "warmup_s": 1, "eth": eth})
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
        # (cache-line round trip > 150 ns, see runner.host_probe)
        far = sum(1 for r in runs if (r.get("host_probe") or {}).get("pingpong_ns", 0) > FAR_NS)
        print(f"{label:28} {size:>5} {off:13.3f} {rx_s} {rng:>13} {str(sat):>15} "
              f"{(str(gb) + '/' + str(len(runs))) if rx else '-':>9} {far}/{len(runs):<6}")


TCP_STACKS = ["iperf3", "blocking", "epoll", "uring", "uring_opt", "uring_zcrx"]


def tcp(reps: int, duration: float, conns: list[int], msg: int, stacks: list[str],
        touch: int = 0, loads: list | None = None) -> int:
    """Per server, connection count and load ("max" or a goodput target in
    Gbit/s): goodput, CPU per byte and, at a target, how close the
    rate-limited sender came to it (median and worst over the reps)."""
    loads = loads or ["max"]
    if os.geteuid() != 0:
        raise RxbenchError("the benchmark runs real cells: run it as root")
    cfg = resolve({"profile": "smoke", "warmup_s": 1,
                   "tcp": {"stacks": stacks, "conns": conns, "msgs": [msg],
                           "duration_s": duration}})
    rows = []
    with tempfile.TemporaryDirectory(prefix="rxbench-bench-") as tmp, signals_raise():
        for stack, n, load in ((s, n, ld) for s in stacks for n in conns for ld in loads):
            runs = []
            for rep in range(1, reps + 1):
                params = {"conns": n, "msg": msg, "cores": 1, "load": load}
                if stack != "iperf3":
                    params["touch"] = touch
                cell = cells.Cell("local", "tcp", stack, params, rep)
                out = cell.path(cells.variant_defaults(cfg, "tcp", stack),
                                root=f"{tmp}/results")
                run_cell(out, cfg, out.replace(".json", ".log"))
                res = json.loads(Path(out).read_text())
                if res["status"] != "ok":
                    print(f"{stack} conns={n} rep {rep}: {res['status']}: {res['reason']}")
                    if res["status"] == "unsupported":
                        break
                    continue
                runs.append(res)
            rows.append((stack, n, load, runs))
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
    return 0


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
