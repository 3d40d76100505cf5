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
from .platforms import PreflightError, testbed
from .proc import TERM_SIGNALS, Tool, ToolError, ToolExited
from .result import validate_result
from .stacks import GENERATORS, RECEIVERS, TCP_SENDER, TCP_SERVERS, Unsupported
from .stacks.tcp import Iperf3
from .state import clean, testbed_lock
from .util import Log, atomic_write_json, run

PROBE_DURING_ROUNDS = 20000   # the host probe inside the measured interval: ~1 ms when close
PR_SET_PDEATHSIG = 1
# a generator's own time bound beyond warm-up + measured interval: it is
# stopped after the last snapshot; the slack covers starting the counters
# readers (over SSH: a channel and a process start each)
BOUND_SLACK_S = 10.0


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


def start_counters(tb, log, side, pid: int | None, bound_s: float, commands: list,
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
    commands.append(t.command)
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


def _measured_interval(rx_tool: Tool, duration: float, cfg: dict, log) -> tuple[list, dict]:
    """[eth/steady] Sleep through the measured interval, asking the receiver
    for a snapshot every second (the steady-state check) and taking the
    host probe once, in the middle."""
    series, during = [], {}
    start = time.monotonic()
    end = start + duration
    probed = False
    while True:
        left = end - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(1.0, left))
        if time.monotonic() < end - 0.05:
            series.append(rx_tool.snapshot())
        if not probed and time.monotonic() >= start + duration / 2:
            during = host_probe(cfg, log, rounds=PROBE_DURING_ROUNDS)
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


def _window(tb, log, commands, tools, bound, sender, receiver, first_s, interval):
    """The measured window: a counters reader on each side's host (sender
    and receiver are (pid, tool or None)), a snapshot of readers and tools
    after first_s, interval() run, a second snapshot; the readers are
    stopped whatever happens. Returns (a, b, what interval() returned)."""
    tools["rxb-counters"] = tb.receiver.host.native("rxb-counters")
    readers = [None, None]
    try:
        try:
            readers[0] = start_counters(tb, log, tb.sender, sender[0], bound, commands)
            readers[1] = start_counters(tb, log, tb.receiver, receiver[0], bound, commands,
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


def measure_eth(cfg: dict, cell, log, commands: list[str], tools: dict, extra: dict) -> dict:
    """commands, tools and extra (hosts, driver) are filled as the cell goes,
    so a failed cell's provenance still says what ran where."""
    rx_cls, gen_cls = RECEIVERS[cell.stack], GENERATORS[cfg["eth"]["generator"]]
    tb = testbed(cfg, log, queues=cell.params["cores"])
    tb.commands = commands            # every command of the cell, in order
    extra["testbed"] = tb
    tb.connect()                      # remote hosts: both at once
    tb.preflight()
    placement = tb.cpus(cell.params["cores"], cell.params["napi"])
    rx, gen = rx_cls(cfg, cell, tb, placement), gen_cls(cfg, cell, tb, placement)
    rx.probe()
    gen.probe()
    warmup, duration = cfg["warmup_s"], cfg["duration_s"]
    bound, slack = cfg["timeout_s"] + tb.slack_s, BOUND_SLACK_S + tb.slack_s
    with tb:
        extra["hosts"] = {"sender": tb.describe(tb.sender), "receiver": tb.describe(tb.receiver)}
        extra["nic_driver"] = tb.driver(tb.receiver)
        extra["nic_setup"] = rx.prepare()     # [eth] e.g. af_packet's drop after the tap
        # the receiver attaches XDP programs (a wrapper's PMD too): on a host
        # that outlives the cell, teardown detaches whatever is left
        tb.receiver.host.registry.add("xdp", tb.receiver.ifname)
        if gen.name == "dpdk-txonly":
            tb.sender.host.registry.add("xdp", tb.sender.ifname)
        rx_tool = Tool("receiver", rx.argv(bound), log, tb.registry, name=rx.tool,
                       bound_s=bound + 5)
        gen_tool = Tool("generator", gen.argv(warmup + duration + slack), log, tb.registry,
                        name=gen.tool, bound_s=warmup + duration + slack + 10)
        tools.update({rx.tool: rx.binary(), gen.tool: gen.binary()})
        commands.append(rx_tool.command)
        rx_tool.start()
        try:
            rx_tool.wait_event("ready", rx.ready_timeout)
        except ToolExited as e:
            err = rx_tool.find("error")
            if err and err.get("kind") == "unsupported":
                raise Unsupported(err.get("reason", str(e))) from None
            raise
        tb.place_napi(placement)
        commands.append(gen_tool.command)
        gen_tool.start()
        gen_tool.wait_event("ready", gen.ready_timeout)
        a, b, (series, during) = _window(   # [eth/steady] per-second snapshots
            tb, log, commands, tools, bound, (gen_tool.pid, gen_tool), (rx_tool.pid, rx_tool),
            warmup, lambda: _measured_interval(rx_tool, duration, cfg, log))
        prewarm_validation()
        gen_tool.stop(signal.SIGINT)
        tb.restore_placement()
        rx_tool.stop(signal.SIGTERM)
        for t in (gen_tool, rx_tool):
            if t.returncode != 0 or t.find("final") is None:
                raise ToolExited(t, "a clean exit")
        out = analyse_eth(cell, a, b, placement, gen, rx, extra.get("nic_driver"))
        # [eth/steady] per-second receive rate over the interval, and the host
        # probe taken in its middle (short: 20000 round trips)
        from .measure import steady_state
        out["steady_state"] = steady_state([a["receiver"]["tool"], *series, b["receiver"]["tool"]],
                                           "packets" if "packets" in a["receiver"]["tool"] else "rx_packets")
        out["host_probe_during"] = during
        # [eth/queues] per-queue packets, link speed, IRQ placement, fraction of
        # line rate; every receive queue of a multi-core cell must get frames
        from .queues import record_cell
        record_cell(out, tb, a, b, cell.params["cores"], cell.params["size"],
                    placement.as_dict())
        out["placement"] = placement.as_dict()
        out["counters"] = {"generator_final": gen_tool.find("final"),
                           "receiver_final": rx_tool.find("final"),
                           "receiver_ready": rx_tool.find("ready")}   # e.g. the AF_XDP bind granted
    return out


def measure_tcp(cfg: dict, cell, log, commands: list[str], tools: dict, extra: dict) -> dict:
    """One TCP cell: server in the receiver namespace, sender in the other,
    counters at the end of the warm-up and of the measured interval."""
    p = cell.params
    tb = testbed(cfg, log, queues=p.get("cores", 1))
    tb.commands = commands
    extra["testbed"] = tb
    tb.connect()                      # remote hosts: both at once
    tb.preflight()
    placement = tb.cpus(p.get("cores", 1), p.get("napi", "receiver"))
    srv = TCP_SERVERS[cell.stack](cfg, cell, tb, placement)
    srv.probe()
    snd = TCP_SENDER(cfg, cell, tb, placement)
    if not isinstance(srv, Iperf3):
        snd.probe()
    warmup, duration, bound = cfg["warmup_s"], cfg["tcp"]["duration_s"], cfg["timeout_s"] + tb.slack_s
    slack = BOUND_SLACK_S + tb.slack_s
    with tb:
        extra["hosts"] = {"sender": tb.describe(tb.sender),
                          "receiver": {**tb.describe(tb.receiver), "port": cfg["tcp"]["port"]}}
        extra["nic_driver"] = tb.driver(tb.receiver)
        tb.place_rps(placement)
        nic_setup = srv.prepare() if hasattr(srv, "prepare") else {}
        extra["nic_setup"] = nic_setup
        server = Tool("server", srv.argv(bound), log, tb.registry, name=srv.tool,
                      bound_s=bound + 5)
        tools[srv.tool] = srv.binary()
        commands.append(server.command)
        server.start()
        if isinstance(srv, Iperf3):
            _wait_listening(tb, cfg["tcp"]["port"], server)
            client = Tool("sender", srv.client_argv(warmup, duration), log, tb.registry,
                          name="iperf3", bound_s=bound + 5)
            commands.append(client.command)
            client.start()
            omit, secs = srv.seconds(warmup, duration)
            a, b, _ = _window(tb, log, commands, tools, bound, (client.pid, None),
                              (server.pid, None), omit, lambda: time.sleep(secs))
            if client.wait(bound) != 0:
                raise ToolExited(client, "a clean exit")
            server.wait(10)
            prewarm_validation()
            rep = srv.client_report()
            out = analyse_tcp(cell, a, b, placement, rep["received_bytes"], rep["received_s"],
                              rep["sent_bytes"], rep["sent_s"])
            out["counters"] = {"iperf3": rep}
            out["congestion_control"] = rep.get("congestion_control")
        else:
            try:
                server.wait_event("ready", srv.ready_timeout)
            except ToolExited:
                err = server.find("error")
                if err and err.get("kind") == "unsupported":
                    raise Unsupported(srv.unsupported_reason(err)) from None
                raise
            sender = Tool("sender", snd.argv(warmup + duration + slack), log, tb.registry,
                          name=snd.tool, bound_s=warmup + duration + slack + 10)
            tools[snd.tool] = snd.binary()
            commands.append(sender.command)
            sender.start()
            sender.wait_event("ready", snd.ready_timeout)
            a, b, _ = _window(tb, log, commands, tools, bound, (sender.pid, sender),
                              (server.pid, server), warmup, lambda: time.sleep(duration))
            prewarm_validation()
            sender.stop(signal.SIGINT)
            srv.stop(server, sender)          # once it has read what the sender wrote
            for t in (sender, server):
                if t.returncode != 0 or t.find("final") is None:
                    raise ToolExited(t, "a clean exit")
            ra, rb = a["receiver"]["tool"], b["receiver"]["tool"]
            sa, sb = a["sender"]["tool"], b["sender"]["tool"]
            rx_bytes = srv.received(rb) - srv.received(ra)
            rx_s = (rb["t_ns"] - ra["t_ns"]) / 1e9
            sent = snd.sent(sb) - snd.sent(sa)
            sent_s = (sb["t_ns"] - sa["t_ns"]) / 1e9
            out = analyse_tcp(cell, a, b, placement, rx_bytes, rx_s, sent, sent_s)
            out["counters"] = {"server_final": server.find("final"),
                               "sender_final": sender.find("final")}
            # the sender's connections' congestion control (the namespace's
            # default): TCP's pacing, and so the sender's cost, depend on it
            out["congestion_control"] = (sender.find("ready") or {}).get("congestion_control")
            srv.verify(out)                   # every byte and the touch sum, or failed
        out["placement"] = placement.as_dict()
        out["stack_label"] = srv.label()
        if nic_setup:
            out["nic_setup"] = nic_setup
    return out


def _wait_listening(tb, port: int, server: Tool, timeout: float = 10.0) -> None:
    """iperf3 says nothing machine-readable when it listens: ask ss."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if server.returncode is not None:
            raise ToolExited(server, "listening")
        out = tb.receiver.host.run(["ss", "-Hltn", f"sport = :{port}"], check=False)
        if out.strip():
            return
        time.sleep(0.05)
    raise ToolExited(server, f"a listening socket on port {port}")


def host_probe(cfg: dict, log, rounds: int | None = None) -> dict:
    """Cache-line round trip between the generator's CPU and the receiver's
    (native/rxb_pingpong.c), measured just before the cell: on a VM the
    host's vCPU placement moves it, and packet rates move with it."""
    from .stacks import native_tool
    gen = cfg["platforms"]["local"]["generator_cpus"][0]
    free = [c for c in sorted(os.sched_getaffinity(0)) if c not in
            cfg["platforms"]["local"]["generator_cpus"]]
    if not free:
        return {}
    try:
        out = run([native_tool("rxb-pingpong"), "--cpus", f"{gen},{free[0]}",
                   *(["--rounds", str(rounds)] if rounds else [])], log=log)
        return {"pingpong_ns": json.loads(out)["ns_per_round_trip"], "cpus": [gen, free[0]]}
    except (RxbenchError, ValueError, KeyError) as e:
        log(f"host probe failed: {e}")
        return {}


def run_cell(out_path: str, cfg: dict, log_path: str | None = None) -> int:
    """Measure one cell and write its JSON. Returns the exit status."""
    cell = cells.parse(out_path, cfg)
    log = Log(log_path)
    started = time.time()
    result = {"platform": cell.platform, "layer": cell.layer, "stack": cell.stack,
              "params": cell.params, "rep": cell.rep, "status": "ok", "reason": "",
              "duration_s": 0.0, "offered_pps": None, "rx_pps": None, "rx_gbps": None,
              "drops": {}, "cpu": {}, "generator_bound": False}
    commands: list[str] = []
    tools: dict[str, str] = {}
    extra: dict = {}
    stacks = RECEIVERS if cell.layer == "eth" else TCP_SERVERS
    measure = measure_eth if cell.layer == "eth" else measure_tcp
    # [eth/ndr] NDR/PDR cells: the trial loop and MLRsearch live in ndr.py
    if cell.params.get("search") == "ndr":
        from .ndr import measure_ndr
        measure = measure_ndr
    if cell.stack not in stacks:
        raise RxbenchError(f"cell {cell.name}: unknown {cell.layer} stack {cell.stack!r}; "
                           f"known: {', '.join(sorted(stacks))}")
    if cfg["platform"] == "local" and os.geteuid() != 0:
        raise RxbenchError("the local platform needs root (network namespaces, XDP): "
                           "run snakemake as root")
    log(f"cell {out_path}: {json.dumps(cell.params)}")
    with signals_raise(), testbed_lock(log):
        log("testbed lock held")          # the end of a lock wait (tests/bench_overhead.py)
        # what runs killed with SIGKILL left behind (dead owners only)
        for item in clean():
            log(f"removed a dead run's leftover: {item}")
        # the round trip between two CPUs of one machine: local only
        result["host_probe"] = host_probe(cfg, log) if cfg["platform"] == "local" else {}
        result["generator"] = (cfg["eth"]["generator"] if cell.layer == "eth" else
                               "iperf3" if cell.stack == "iperf3" else TCP_SENDER.name)
        try:
            result.update(measure(cfg, cell, log, commands, tools, extra))
        except Unsupported as e:
            result.update(status="unsupported", reason=str(e))
        except PreflightError:
            raise          # the hosts cannot run any cell: stop the campaign
        except (RxbenchError, OSError) as e:
            result.update(status="failed", reason=str(e))
        except Interrupted as e:
            log(f"interrupted by {e}: torn down, no result written")
            log.close()
            return 128 + e.signum
    if extra.get("nic_setup"):
        result["nic_setup"] = extra["nic_setup"]      # what the NIC accepted (zcrx)
    log(f"status {result['status']}" + (f": {result['reason']}" if result["reason"] else ""))
    tb = extra.get("testbed")
    result["provenance"] = provenance.collect(
        tools, commands, extra.get("hosts", {}), extra.get("nic_driver", "n/a"), started,
        tool_info=tb.tool_info if tb is not None else None,
        platform=tb.provenance() if tb is not None else None)
    result["provenance"]["config"] = {
        "profile": cfg["profile"], "warmup_s": cfg["warmup_s"], "timeout_s": cfg["timeout_s"],
        "duration_s": cfg["duration_s"] if cell.layer == "eth" else cfg["tcp"]["duration_s"]}
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
