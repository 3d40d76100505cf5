"""Run one cell: bring the testbed up, start the receiver, place NAPI, run
the generator for a bounded time, read every counter at the start and the
end of the measured interval, tear everything down, write the result JSON
atomically. A cell that cannot run here is written `unsupported`, one whose
tool fails is written `failed` (with its log kept); an interrupted cell
(SIGINT, SIGTERM, SIGHUP) tears down and writes nothing."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import time
from contextlib import contextmanager

from . import RxbenchError, cells, provenance
from .analysis import analyse_eth, analyse_tcp, side_snapshot
from .platforms import testbed
from .proc import TERM_SIGNALS, Tool, ToolError, ToolExited
from .record import Measured
from .result import validate_result
from .stacks import Unsupported, registry
from .state import clean, testbed_lock
from .util import Log, atomic_write_json

PROBE_DURING_ROUNDS = 20000   # the host probe inside the measured interval: ~1 ms when close
PR_SET_PDEATHSIG = 1
# a generator's own time bound beyond warm-up + measured interval: it is
# stopped after the last snapshot; the slack covers starting the counters
# readers (over SSH: a channel and a process start each)
BOUND_SLACK_S = 10.0
PACED_GENERATOR = "rxb-gen"   # the Ethernet generator that paces (--rate-pps)


class Interrupted(BaseException):
    """A termination signal arrived; unwinds through every teardown."""

    def __init__(self, signum):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


@contextmanager
def signals_raise():
    def handler(signum, _frame):
        # one signal is enough: block the rest so teardown is not cut short
        signal.pthread_sigmask(signal.SIG_BLOCK, TERM_SIGNALS)
        raise Interrupted(signum)
    old = {s: signal.signal(s, handler) for s in TERM_SIGNALS}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def die_with_parent() -> None:
    """SIGTERM when snakemake (our parent) dies, however it dies."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:
        os.kill(os.getpid(), signal.SIGTERM)


def _short_log(log, limit: int = 400):
    """The cell log, with a counters reader's long snapshot lines cut (the
    snapshots themselves are kept in the result)."""
    return lambda m: log(m if len(m) <= limit else f"{m[:limit]} ... ({len(m)} chars)")


def start_counters(tb, log, side, pid: int | None, bound_s: float,
                   comm_prefix: str | None = None) -> Tool:
    """One rxb-counters reader in a side's namespace for the cell's life:
    the side's test interface, the process tree of its tool (pid), the
    kernel threads named comm_prefix*."""
    # SCHED_FIFO: on the saturated CPUs it measures, a snapshot is one moment
    argv = [side.host.native("rxb-counters"), *([] if side.bypass else ["--ifname", side.ifname]),
            "--duration", f"{bound_s:.3f}", "--rt-priority", "1"]
    if pid:
        argv += ["--pid", str(pid)]
    if comm_prefix:
        argv += ["--comm-prefix", comm_prefix]
    t = Tool(f"{side.role}-counters", side.exec(argv), _short_log(log), tb.registry,
             name="rxb-counters", bound_s=bound_s + 5)
    tb.commands.append(t.command)
    t.start()
    return t


def counters_ready(*readers: Tool, timeout: float = 10.0) -> None:
    """Wait for readers started together (on remote hosts each start is a
    channel and a process start: they overlap)."""
    for t in readers:
        t.wait_event("ready", timeout)


def napi_prefix(ifname: str) -> str:
    """The names of an interface's NAPI kthreads ("napi/IF-ID"), as far as
    the kernel's 15-character thread names keep them."""
    return f"napi/{ifname}"[:15]


def stop_counters(*readers: Tool) -> None:
    """All asked first, then each waited for (over SSH each exit is a
    channel closing: they overlap instead of queueing)."""
    live = [t for t in readers if t is not None]
    for t in live:
        if t.p is not None and t.returncode is None:
            t.send(signal.SIGTERM)
    for t in live:
        t.stop(signal.SIGTERM)


def _snapshot(tb, sides: dict, timeout: float = 3.0) -> dict:
    """The section-4 snapshot: every side's reader and tool asked at once,
    so each host's counters and tool share one moment."""
    asked = {}
    for role, (reader, tool) in sides.items():
        for t in (reader, tool):
            if t is not None:
                asked[id(t)] = len(t.events)
                t.send(signal.SIGUSR1)
    out = {}
    for role, (reader, tool) in sides.items():
        side = tb.sender if role == "sender" else tb.receiver
        out[role] = side_snapshot(
            reader.wait_event("snapshot", timeout, after=asked[id(reader)]),
            tool.wait_event("snapshot", timeout, after=asked[id(tool)]) if tool is not None else None,
            side.ifname)
    return out


def _measured_interval(tb, rx_tool: Tool, duration: float) -> tuple[list, dict]:
    """[eth/steady] Sleep through the measured interval, asking the receiver
    for a snapshot every second (the steady-state check) and, where the
    testbed's controller is a test host (local), taking its host probe once,
    in the middle: nowhere else does a probe run inside the interval."""
    series, during = [], {}
    start = time.monotonic()
    end = start + duration
    probed = not tb.controller_is_test_host
    while True:
        left = end - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(1.0, left))
        if time.monotonic() < end - 0.05:
            series.append(rx_tool.snapshot())
        if not probed and time.monotonic() >= start + duration / 2:
            during = tb.host_probe(rounds=PROBE_DURING_ROUNDS)
            probed = True
    return series, during


_PREWARM: list = []


def prewarm_validation() -> None:
    """Import the result validator (jsonschema: 0.15-0.3 s here) in the
    background once nothing is measured any more (after the last snapshot;
    iperf3: after its own interval), so it overlaps the tools' exit and the
    teardown instead of following them. validate_result waits for it."""
    if _PREWARM:
        return
    import threading

    from .result import _validator

    def load():
        signal.pthread_sigmask(signal.SIG_BLOCK, TERM_SIGNALS)
        try:
            _validator()
        except Exception:          # noqa: BLE001 (validate_result raises it again)
            pass
    t = threading.Thread(target=load, name="prewarm-validation", daemon=True)
    _PREWARM.append(t)
    t.start()


def exited_tool(tools, grace_s: float) -> ToolExited | None:
    """A counters reader that fails at its start was often given the pid of
    a tool that had just exited ("--pid N: no such process"); that tool's
    own exit, with its last error, is then the cell's reason, not the
    reader's. Over SSH an exit arrives as a channel closing, a moment
    after the remote process has gone: wait up to grace_s for it."""
    deadline = time.monotonic() + grace_s
    while True:
        for t in tools:
            if t is not None and t.p is not None and t.returncode is not None:
                return ToolExited(t, "the measured window")
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


def _window(tb, log, tools, bound, sender, receiver, first_s, interval):
    """The measured window: a counters reader on each side's host (sender
    and receiver are (pid, tool or None)), a snapshot of readers and tools
    after first_s, interval() run, a second snapshot; the readers are
    stopped whatever happens. Returns (a, b, what interval() returned)."""
    tools["rxb-counters"] = tb.receiver.host.native("rxb-counters")
    readers = [None, None]
    try:
        try:
            readers[0] = start_counters(tb, log, tb.sender, sender[0], bound)
            readers[1] = start_counters(tb, log, tb.receiver, receiver[0], bound,
                                        comm_prefix=napi_prefix(tb.receiver.ifname))
            counters_ready(*readers, timeout=10.0 + tb.slack_s)   # slack_s: TCG guests
        except ToolError as e:
            gone = exited_tool((sender[1], receiver[1]), 2.0 + tb.slack_s)
            if gone is not None:
                raise gone from e
            raise
        sides = {"sender": (readers[0], sender[1]), "receiver": (readers[1], receiver[1])}
        time.sleep(first_s)
        a = _snapshot(tb, sides, 3.0 + tb.slack_s)
        during = interval()
        b = _snapshot(tb, sides, 3.0 + tb.slack_s)
    finally:
        stop_counters(*readers)
    return a, b, during


class Trial:
    """What a stack's drive() hook (stacks/tcp.py) may use of the runner
    for its cell: start a tool (its command recorded), wait for its ready
    line, the measured window, say that nothing more is measured, name a
    tool it ran. warmup, duration, bound and slack are the cell's times."""

    def __init__(self, tb, log, rec: Measured, warmup: float, duration: float, bound: float,
                 slack: float):
        self.tb, self.log, self.rec = tb, log, rec
        self.warmup, self.duration, self.bound, self.slack = warmup, duration, bound, slack

    def start(self, role: str, argv: list[str], name: str, bound_s: float) -> Tool:
        t = Tool(role, argv, self.log, self.tb.registry, name=name, bound_s=bound_s)
        self.tb.commands.append(t.command)
        t.start()
        return t

    def ready(self, tool: Tool, timeout: float, reason=None) -> None:
        """Wait for the tool's ready line; a tool that exits saying
        `unsupported` makes the cell unsupported (reason(err): its words)."""
        try:
            tool.wait_event("ready", timeout)
        except ToolExited as e:
            err = tool.find("error")
            if err and err.get("kind") == "unsupported":
                raise Unsupported(reason(err) if reason else err.get("reason", str(e))) from None
            raise

    def window(self, sender, receiver, first_s: float, interval):
        return _window(self.tb, self.log, self.rec.tools, self.bound, sender, receiver,
                       first_s, interval)

    def measured(self) -> None:
        prewarm_validation()

    def uses(self, tool: str, path: str) -> None:
        self.rec.tools[tool] = path


def measure_eth(cfg: dict, cell, log) -> Measured:
    """One Ethernet cell: receiver and generator on the testbed, counters
    at the end of the warm-up and of the measured interval."""
    # a rate-controlled cell (load=<Mpps>) is paced by the one generator that
    # paces, rxb-gen (--rate-pps), whatever the campaign's generator is
    target = cells.load_target(cell.params)
    rec = Measured(generator=cfg["eth"]["generator"] if target is None else PACED_GENERATOR)
    with rec.outcome():
        rx_cls = registry.get(cell.stack, "eth").receiver
        gen_cls = registry.generator(rec.generator).cls
        tb = rec.on(testbed(cfg, log, queues=cell.params["cores"]))
        tb.connect()                      # remote hosts: both at once
        tb.preflight()
        placement = tb.cpus(cell.params["cores"], cell.params["napi"])
        rx, gen = rx_cls(cfg, cell, tb, placement), gen_cls(cfg, cell, tb, placement)
        if target is not None:
            gen.rate_pps = target * 1e6
        rx.probe()
        gen.probe()
        warmup, duration = cfg["warmup_s"], cfg["duration_s"]
        bound, slack = cfg["timeout_s"] + tb.slack_s, BOUND_SLACK_S + tb.slack_s
        trial = Trial(tb, log, rec, warmup, duration, bound, slack)
        with tb:
            rec.describe(tb)
            rec.nic_setup = rx.prepare()      # [eth] e.g. af_packet's drop after the tap
            for t in (rx, gen):               # what teardown detaches on a lasting host
                if t.attaches_xdp:
                    t.host.registry.add("xdp", getattr(tb, t.side).ifname)
            rec.tools.update({rx.tool: rx.binary(), gen.tool: gen.binary()})
            rx_tool = trial.start("receiver", rx.argv(bound), rx.tool, bound + 5)
            trial.ready(rx_tool, rx.ready_timeout)
            tb.place_napi(placement)
            run_s = warmup + duration + slack
            gen_tool = trial.start("generator", gen.argv(run_s), gen.tool, run_s + 10)
            gen_tool.wait_event("ready", gen.ready_timeout)
            a, b, (series, during) = trial.window(   # [eth/steady] per-second snapshots
                (gen_tool.pid, gen_tool), (rx_tool.pid, rx_tool), warmup,
                lambda: _measured_interval(tb, rx_tool, duration))
            trial.measured()
            gen_tool.stop(signal.SIGINT)
            tb.restore_placement()
            rx_tool.stop(signal.SIGTERM)
            for t in (gen_tool, rx_tool):
                if t.returncode != 0 or t.find("final") is None:
                    raise ToolExited(t, "a clean exit")
            out = analyse_eth(cell, a, b, placement, gen, rx, rec.nic_driver)
            # [eth/steady] per-second receive rate over the interval, and the
            # host probe taken in its middle (short: 20000 round trips; {}
            # where the controller is not a test host)
            from .measure import steady_state
            out["steady_state"] = steady_state(
                [a["receiver"]["tool"], *series, b["receiver"]["tool"]],
                "packets" if "packets" in a["receiver"]["tool"] else "rx_packets")
            out["host_probe_during"] = during
            if target is not None:           # [eth/load] what the paced generator offered
                out["load"] = {"target_pps": target * 1e6, "offered_pps": out["offered_pps"],
                               "error_pct": round(100 * (out["offered_pps"] / (target * 1e6) - 1), 3),
                               "receiver_cpu_frac": out.get("receiver_cpu_frac")}
            # [eth/queues] per-queue packets, link speed, IRQ placement, fraction of
            # line rate; every receive queue of a multi-core cell must get frames
            from .queues import record_cell
            record_cell(out, tb, a, b, cell.params["cores"], cell.params["size"],
                        placement.as_dict())
            out["placement"] = placement.as_dict()
            out["counters"] = {"generator_final": gen_tool.find("final"),
                               "receiver_final": rx_tool.find("final"),
                               "receiver_ready": rx_tool.find("ready")}  # e.g. the AF_XDP bind
            rec.fields = out
    return rec


def tcp_generator(stack: str) -> str:
    """The sender a TCP cell is measured with: the layer's, or the stack's
    own (iperf3's client)."""
    cls = registry.get(stack, "tcp").receiver
    return cls.tool if cls.own_sender else registry.generators("tcp")[0].name


def measure_tcp(cfg: dict, cell, log) -> Measured:
    """One TCP cell: server in the receiver namespace, its sender (the
    layer's, or the stack's own) in the other, counters at the end of the
    warm-up and of the measured interval; the stack's drive() runs them."""
    p = cell.params
    rec = Measured(generator=tcp_generator(cell.stack))
    with rec.outcome():
        srv_cls = registry.get(cell.stack, "tcp").receiver
        tb = rec.on(testbed(cfg, log, queues=p.get("cores", 1)))
        tb.connect()                      # remote hosts: both at once
        tb.preflight()
        placement = tb.cpus(p.get("cores", 1), p.get("napi", "receiver"))
        srv = srv_cls(cfg, cell, tb, placement)
        srv.probe()
        snd = None
        if not srv.own_sender:
            snd = registry.generators("tcp")[0].cls(cfg, cell, tb, placement)
            snd.probe()
        warmup, duration = cfg["warmup_s"], cfg["tcp"]["duration_s"]
        bound, slack = cfg["timeout_s"] + tb.slack_s, BOUND_SLACK_S + tb.slack_s
        trial = Trial(tb, log, rec, warmup, duration, bound, slack)
        with tb:
            rec.describe(tb, port=cfg["tcp"]["port"])
            tb.place_rps(placement)
            rec.nic_setup = srv.prepare()
            rec.tools[srv.tool] = srv.binary()
            server = trial.start("server", srv.argv(bound), srv.tool, bound + 5)
            got = srv.drive(trial, server, snd)
            out = analyse_tcp(cell, got["a"], got["b"], placement, got["rx_bytes"], got["rx_s"],
                              got["sent_bytes"], got["sent_s"])
            out["counters"] = got["counters"]
            out["congestion_control"] = got["congestion_control"]
            srv.verify(out)                   # every byte and the touch sum, or failed
            out["placement"] = placement.as_dict()
            out["stack_label"] = srv.label()
            if rec.nic_setup:
                out["nic_setup"] = rec.nic_setup
            rec.fields = out
    return rec


def measure(cfg: dict, cell, log) -> Measured:
    """The cell's measuring function by its layer and search."""
    if cell.params.get("search") == "ndr":      # [eth/ndr] MLRsearch: ndr.py
        from .ndr import measure_ndr
        return measure_ndr(cfg, cell, log)
    return (measure_eth if cell.layer == "eth" else measure_tcp)(cfg, cell, log)


def result_of(cell, rec: Measured, cfg: dict, started: float) -> dict:
    """The cell's result JSON (result.schema.yaml) from what it measured."""
    result = {"platform": cell.platform, "layer": cell.layer, "stack": cell.stack,
              "params": cell.params, "rep": cell.rep, "status": rec.status,
              "reason": rec.reason, "duration_s": 0.0, "offered_pps": None, "rx_pps": None,
              "rx_gbps": None, "drops": {}, "cpu": {}, "generator_bound": False,
              "host_probe": rec.host_probe, "generator": rec.generator}
    if rec.status == "ok":
        result.update(rec.fields)
    if rec.nic_setup:
        result["nic_setup"] = rec.nic_setup      # what the NIC accepted (zcrx)
    result["provenance"] = provenance.collect(
        rec.tools, rec.commands, rec.hosts, rec.nic_driver, started,
        tool_info=lambda name, path: rec.tool_info.get(name) or {"path": path, "sha256": "n/a"},
        platform=rec.platform)
    result["provenance"]["config"] = {
        "profile": cfg["profile"], "warmup_s": cfg["warmup_s"], "timeout_s": cfg["timeout_s"],
        "duration_s": cfg["duration_s"] if cell.layer == "eth" else cfg["tcp"]["duration_s"]}
    return result


def run_cell(out_path: str, cfg: dict, log_path: str | None = None) -> int:
    """Measure one cell and write its JSON. Returns the exit status."""
    cell = cells.parse(out_path, cfg)
    log = Log(log_path)
    started = time.time()
    try:
        registry.get(cell.stack, cell.layer)
    except KeyError as e:
        raise RxbenchError(f"cell {cell.name}: {e.args[0]}") from None
    if cfg["platform"] == "local" and os.geteuid() != 0:
        raise RxbenchError("the local platform needs root (network namespaces, XDP): "
                           "run snakemake as root")
    log(f"cell {out_path}: {json.dumps(cell.params)}")
    with signals_raise(), testbed_lock(log):
        log("testbed lock held")          # the end of a lock wait (tests/bench_overhead.py)
        # what runs killed with SIGKILL left behind (dead owners only)
        for item in clean():
            log(f"removed a dead run's leftover: {item}")
        try:
            rec = measure(cfg, cell, log)
        except Interrupted as e:
            log(f"interrupted by {e}: torn down, no result written")
            log.close()
            return 128 + e.signum
    result = result_of(cell, rec, cfg, started)
    log(f"status {result['status']}" + (f": {result['reason']}" if result["reason"] else ""))
    if result["status"] == "ok" and cell.layer == "tcp":
        log(f"goodput {result['rx_gbps']:.2f} Gbit/s (sender {result['offered_gbps']:.2f}), "
            f"saturated CPUs {result['saturated_cpus']}, "
            f"generator_bound={result['generator_bound']}")
    elif result["status"] == "ok" and "ndr" in result:       # [eth/ndr]
        n = result["ndr"]
        log(f"NDR {n['ndr_pps'] or 0:.0f} pps, PDR {n['pdr_pps'] or 0:.0f} pps "
            f"({n['trials']} trials, {n['wall_s']:.0f} s)")
    elif result["status"] == "ok":
        log(f"offered {result['offered_pps'] / 1e6:.3f} Mpps, received "
            f"{result['rx_pps'] / 1e6:.3f} Mpps, saturated CPUs {result['saturated_cpus']}, "
            f"generator_bound={result['generator_bound']}")
    for t in _PREWARM:
        t.join()
    validate_result(result)
    atomic_write_json(out_path, result)
    log.close()
    return 0
