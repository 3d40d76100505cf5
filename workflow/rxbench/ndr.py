"""Zero-loss throughput (NDR) and partial-drop rate (PDR) of one Ethernet
receiver, found by MLRsearch (PyPI MLRsearch, FD.io CSIT's implementation
of the IETF BMWG MLRsearch draft), from real trials:

  one trial = rxb-gen paced at a target rate (--rate-pps R, --count R*D,
  bounded by --duration) into a receiver that runs for the whole search.
  offered  = frames that went onto the link: the sender veth's tx_packets
             over the trial (not what the generator queued);
  received = the receiver tool's own count over the trial (read after the
             generator ended and the receive path settled);
  loss     = offered - received (signed, kept as measured);
  unsent   = R*D - offered (a generator that could not keep the rate: it
             is stopped 1 % + 20 ms after the trial's duration): MLRsearch
             counts it as loss, so it steers below that rate.

Every trial is kept as data. NDR is the conditional throughput for loss
ratio 0, PDR for `ndr.pdr_loss_ratio` (0.5 % by default), both from one
search (MLRsearch searches several goals at once). `bisect()` is a plain
binary search over the same trials, for the cost comparison of the bench.

Host-specific code is in `Bench` (the local testbed's netns sides, today's
Tool API); `measure_ndr()` is the one call the runner makes. Porting to
the Host-object runner means rewriting `Bench.__enter__` and `_link_tx`.
"""

from __future__ import annotations

import math
import signal
import time

from . import RxbenchError
from .measure import link_stats
from .platforms import testbed
from .proc import Tool, ToolExited
from .record import Measured
from .stacks import Unsupported, registry
from .stacks.eth import RxbGen

SETTLE_S = 0.25          # after the generator ends: frames still in the receive path
# --duration of a trial's generator: the trial's duration plus 1 % and 20 ms,
# so the count ends it when it keeps the rate; frames it could not send by
# then are unsent (MLRsearch counts them as loss), not sent late
GEN_SLACK_RATIO = 1.01
GEN_SLACK_S = 0.02


class Bench:
    """A testbed with one receiver running, ready for paced trials."""

    def __init__(self, cfg: dict, cell, log, bound_s: float):
        self.cfg, self.cell, self.log, self.bound_s = cfg, cell, log, bound_s
        self.trials: list[dict] = []
        self.tb = testbed(cfg, log, queues=cell.params["cores"])
        self.commands: list[str] = self.tb.commands     # the testbed's own log
        self.tb.connect()                 # remote hosts: both at once (vm: health-checked)
        self.tb.preflight()
        self.placement = self.tb.cpus(cell.params["cores"], cell.params["napi"])
        self.rx = registry.get(cell.stack, "eth").receiver(cfg, cell, self.tb, self.placement)
        self.gen = RxbGen(cfg, cell, self.tb, self.placement)
        self.rx.probe()
        self.gen.probe()
        self.rx_tool: Tool | None = None
        self.method: str | None = None      # rxb-gen --method (None: its default, mmap)

    def __enter__(self) -> "Bench":
        self.tb.__enter__()
        try:
            self.nic_setup = self.rx.prepare()
            self.rx_tool = Tool("receiver", self.rx.argv(self.bound_s), self.log,
                                self.tb.registry, name=self.rx.tool)
            self.commands.append(self.rx_tool.command)
            self.rx_tool.start()
            try:
                self.rx_tool.wait_event("ready", self.rx.ready_timeout)
            except ToolExited as e:
                err = self.rx_tool.find("error")
                if err and err.get("kind") == "unsupported":
                    raise Unsupported(err.get("reason", str(e))) from None
                raise
            self.tb.place_napi(self.placement)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self.rx_tool is not None:
                self.rx_tool.stop(signal.SIGTERM)
        finally:
            self.tb.__exit__(*exc)

    def _link_tx(self) -> tuple[int, int]:
        """(tx_packets, tx_dropped) of the sender's interface, and when."""
        s = link_stats(self.tb.sender.host, self.tb.sender.ifname)
        return int(s.get("tx_packets", 0)), int(s.get("tx_dropped", 0))

    def _gen_tool(self, rate_pps: float | None, duration_s: float, count: int | None) -> Tool:
        """The generator paced at rate_pps (None: unpaced, as fast as it goes)."""
        argv = self.gen.argv(duration_s)
        if rate_pps is not None:
            argv += ["--rate-pps", str(int(round(rate_pps)))]
        if self.method:
            argv += ["--method", self.method]
        if count:
            argv += ["--count", str(count)]
        t = Tool("generator", argv, self.log, self.tb.registry, name=self.gen.tool)
        self.commands.append(t.command)
        return t.start()

    def trial(self, rate_pps: float, duration_s: float) -> dict:
        """One paced trial of `duration_s` at `rate_pps`; kept in self.trials."""
        intended = max(1, int(round(rate_pps * duration_s)))
        t_start = time.monotonic()
        a_rx = self.rx_tool.snapshot()
        a_tx, a_drop = self._link_tx()
        bound = duration_s * GEN_SLACK_RATIO + GEN_SLACK_S
        gen = self._gen_tool(rate_pps, bound, intended)
        final = gen.wait_event("final", bound + 30)
        if gen.wait(10) != 0:
            raise ToolExited(gen, "a clean exit")
        time.sleep(SETTLE_S)
        b_rx = self.rx_tool.snapshot()
        b_tx, b_drop = self._link_tx()
        offered = b_tx - a_tx
        received = self.rx.received(b_rx) - self.rx.received(a_rx)
        drops = {k: int(v) for k, v in self.rx.stage_drops(a_rx, b_rx).items()}
        t = {"intended_load_pps": rate_pps, "intended_duration_s": duration_s,
             "intended_count": intended, "offered": offered, "received": received,
             "loss": offered - received,
             "loss_ratio": (offered - received) / offered if offered else 0.0,
             "generator_packets": int(final["packets"]), "generator_reason": final["reason"],
             "offered_duration_s": float(final["elapsed_s"]),
             "offered_pps": offered / float(final["elapsed_s"]) if final["elapsed_s"] else 0.0,
             "sender_veth_refused": b_drop - a_drop, "pace_resets": final.get("pace_resets", 0),
             "receiver_drops": drops,
             "wall_s": round(time.monotonic() - t_start, 4)}
        self.trials.append(t)
        self.log(f"trial {rate_pps / 1e6:.4f} Mpps x {duration_s:g} s: offered {offered}, "
                 f"received {received}, loss {t['loss_ratio']:.5f}")
        return t

    def tx_window(self, rate_pps: float | None, duration_s: float,
                  warmup_s: float = 0.5) -> tuple[float, dict]:
        """Frames per second that went onto the link (sender veth tx_packets
        over a window inside the run) with the generator paced at rate_pps
        (None: unpaced), and the generator's final line."""
        gen = self._gen_tool(rate_pps, warmup_s + duration_s + 1.0, None)
        try:
            gen.wait_event("ready", 10)
            time.sleep(warmup_s)
            t0a = time.monotonic()
            a, _ = self._link_tx()
            t0 = (t0a + time.monotonic()) / 2
            time.sleep(duration_s)
            t1a = time.monotonic()
            b, _ = self._link_tx()
            t1 = (t1a + time.monotonic()) / 2
        finally:
            gen.stop(signal.SIGINT)
        return (b - a) / (t1 - t0), gen.find("final") or {}

    def rate_window(self, rate_pps: float, duration_s: float, warmup_s: float = 0.5) -> dict:
        """What went onto the link per second while the generator paced at
        `rate_pps`."""
        link_pps, final = self.tx_window(rate_pps, duration_s, warmup_s)
        return {"target_pps": rate_pps, "link_pps": link_pps,
                "pace_resets": final.get("pace_resets"),
                "backpressure": final.get("backpressure")}


def _mlrsearch():
    try:
        from MLRsearch import (AbstractMeasurer, Config, MeasurementResult,
                               MultipleLossRatioSearch, SearchGoal)
    except ImportError as e:
        raise Unsupported(f"MLRsearch is not installed ({e}): pip install -r requirements.txt")
    return AbstractMeasurer, Config, MeasurementResult, MultipleLossRatioSearch, SearchGoal


def goals(ncfg: dict):
    """The two search goals: NDR (loss ratio 0) and PDR."""
    SearchGoal = _mlrsearch()[4]
    common = dict(exceed_ratio=ncfg["exceed_ratio"], relative_width=ncfg["relative_width"],
                  initial_trial_duration=ncfg["initial_trial_duration_s"],
                  final_trial_duration=ncfg["final_trial_duration_s"],
                  duration_sum=ncfg["duration_sum_s"], preceding_targets=2,
                  fail_fast=False)
    return (SearchGoal(loss_ratio=0.0, **common),
            SearchGoal(loss_ratio=ncfg["pdr_loss_ratio"], **common))


def mlrsearch(bench: Bench, ncfg: dict, max_load: float) -> dict:
    """NDR and PDR by MLRsearch; the trials are in bench.trials."""
    AbstractMeasurer, Config, MeasurementResult, Search, _ = _mlrsearch()

    class Measurer(AbstractMeasurer):
        def measure(self, intended_duration, intended_load):
            t = bench.trial(intended_load, intended_duration)
            return MeasurementResult(
                intended_duration=intended_duration, intended_load=intended_load,
                offered_count=t["offered"], loss_count=max(0, t["loss"]),
                intended_count=t["intended_count"], offered_duration=t["offered_duration_s"],
                duration_with_overheads=t["wall_s"])

    ndr_goal, pdr_goal = goals(ncfg)
    config = Config()
    config.goals = (ndr_goal, pdr_goal)
    config.max_load = max_load
    config.min_load = ncfg["min_load_pps"]
    config.search_duration_max = ncfg["search_duration_max_s"]
    config.warmup_duration = ncfg["warmup_s"] or None
    first = len(bench.trials)
    t0 = time.monotonic()
    try:
        res = Search(config=config).search(measurer=Measurer(), debug=bench.log)
    except RuntimeError as e:      # search_duration_max exceeded
        raise RxbenchError(f"MLRsearch did not finish: {e}") from None

    def rate(goal):
        ct = res[goal].conditional_throughput
        return None if ct is None else float(ct)

    return {"ndr_pps": rate(ndr_goal), "pdr_pps": rate(pdr_goal),
            "trials": len(bench.trials) - first,
            "trial_seconds": sum(t["intended_duration_s"] for t in bench.trials[first:]),
            "wall_s": round(time.monotonic() - t0, 3)}


def bisect(bench: Bench, lo: float, hi: float, loss_ratio: float, duration_s: float,
           relative_width: float) -> dict:
    """A plain binary search at one trial duration: the highest load in
    [lo, hi] whose trial loss ratio (unsent included) is <= loss_ratio,
    to a relative width of `relative_width`."""
    first = len(bench.trials)
    t0 = time.monotonic()

    def good(load):
        t = bench.trial(load, duration_s)
        bad = abs(t["loss"]) + abs(t["intended_count"] - t["offered"])
        return bad / max(t["offered"], t["intended_count"]) <= loss_ratio

    if good(hi):
        best = hi
    else:
        best = lo if good(lo) else None
        while best is not None and (hi - best) > relative_width * hi:
            mid = math.sqrt(best * hi)          # in log space, as MLRsearch does
            if good(mid):
                best = mid
            else:
                hi = mid
    return {"rate_pps": best, "trials": len(bench.trials) - first,
            "trial_seconds": sum(t["intended_duration_s"] for t in bench.trials[first:]),
            "wall_s": round(time.monotonic() - t0, 3)}


def measure_ndr(cfg: dict, cell, log) -> Measured:
    """An NDR/PDR cell (variant search=ndr): the runner's one call."""
    ncfg = cfg["ndr"]
    rec = Measured(generator=cfg["eth"]["generator"])
    with rec.outcome():
        bench = Bench(cfg, cell, log, bound_s=ncfg["search_duration_max_s"] + 60)
        rec.on(bench.tb)        # provenance: a remote host's tools hashed there
        with bench:
            rec.describe(bench.tb)
            rec.nic_setup = bench.nic_setup
            rec.tools.update({bench.rx.tool: bench.rx.binary(),
                              bench.gen.tool: bench.gen.binary()})
            found = mlrsearch(bench, ncfg, max_load=ncfg["max_load_pps"])
            placement = bench.placement.as_dict()
        best = max((t for t in bench.trials if t["loss"] <= 0),
                   key=lambda t: t["offered_pps"], default=None)
        rec.fields = {"duration_s": found["trial_seconds"],
                      "offered_pps": best["offered_pps"] if best else None,
                      "rx_pps": found["ndr_pps"], "rx_gbps": None,
                      "ndr": {**found, "pdr_loss_ratio": ncfg["pdr_loss_ratio"],
                              "search": "MLRsearch", "trial_list": bench.trials},
                      "placement": placement}
    return rec
