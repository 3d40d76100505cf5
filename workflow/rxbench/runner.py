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
from .analysis import analyse_eth, analyse_tcp
from .counters import Readers, napi_prefix
from .platforms import testbed
from .proc import TERM_SIGNALS, Tool, ToolExited
from .result import validate_result
from .stacks import GENERATORS, RECEIVERS, TCP_SENDER, TCP_SERVERS, Unsupported
from .stacks.tcp import Iperf3
from .state import clean, testbed_lock
from .util import Log, atomic_write_json, run

PR_SET_PDEATHSIG = 1


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


def measure_eth(cfg: dict, cell, log, commands: list[str], tools: dict, extra: dict) -> dict:
    """commands, tools and extra (hosts, driver) are filled as the cell goes,
    so a failed cell's provenance still says what ran where."""
    rx_cls, gen_cls = RECEIVERS[cell.stack], GENERATORS[cfg["eth"]["generator"]]
    tb = testbed(cfg, log, queues=cell.params["cores"])
    tb.commands = commands            # every command of the cell, in order
    placement = tb.cpus(cell.params["cores"], cell.params["napi"])
    rx, gen = rx_cls(cfg, cell, tb, placement), gen_cls(cfg, cell, tb, placement)
    rx.probe()
    gen.probe()
    warmup, duration = cfg["warmup_s"], cfg["duration_s"]
    bound = cfg["timeout_s"]
    with tb:
        extra["hosts"] = {"sender": {"netns": tb.sender.netns, "ifname": tb.sender.ifname,
                                     "ip": tb.sender.ip, "mac": tb.sender.mac},
                          "receiver": {"netns": tb.receiver.netns, "ifname": tb.receiver.ifname,
                                       "ip": tb.receiver.ip, "mac": tb.receiver.mac}}
        extra["nic_driver"] = tb.driver(tb.receiver)
        rx_tool = Tool("receiver", rx.argv(bound), log, tb.registry, name=rx.tool)
        gen_tool = Tool("generator", gen.argv(warmup + duration + 1.0), log, tb.registry,
                        name=gen.tool)
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
        with Readers(tb, log, commands, tools, bound) as readers:
            readers.start(tb.sender, gen_tool.p.pid)
            readers.start(tb.receiver, rx_tool.p.pid, napi_prefix(tb.receiver.ifname))
            sides = {"sender": gen_tool, "receiver": rx_tool}
            time.sleep(warmup)
            a = readers.snapshot(sides)
            time.sleep(duration)
            b = readers.snapshot(sides)
        gen_tool.stop(signal.SIGINT)
        rx_tool.stop(signal.SIGTERM)
        for t in (gen_tool, rx_tool):
            if t.returncode != 0 or t.find("final") is None:
                raise ToolExited(t, "a clean exit")
        out = analyse_eth(cell, a, b, placement, gen, rx)
        out["placement"] = placement.as_dict()
        out["counters"] = {"generator_final": gen_tool.find("final"),
                           "receiver_final": rx_tool.find("final")}
    return out


def measure_tcp(cfg: dict, cell, log, commands: list[str], tools: dict, extra: dict) -> dict:
    """One TCP cell: server in the receiver namespace, sender in the other,
    counters at the end of the warm-up and of the measured interval."""
    p = cell.params
    tb = testbed(cfg, log, queues=p.get("cores", 1))
    tb.commands = commands
    placement = tb.cpus(p.get("cores", 1), p.get("napi", "receiver"))
    srv = TCP_SERVERS[cell.stack](cfg, cell, tb, placement)
    srv.probe()
    snd = TCP_SENDER(cfg, cell, tb, placement)
    if not isinstance(srv, Iperf3):
        snd.probe()
    warmup, duration, bound = cfg["warmup_s"], cfg["tcp"]["duration_s"], cfg["timeout_s"]
    with tb:
        extra["hosts"] = {"sender": {"netns": tb.sender.netns, "ifname": tb.sender.ifname,
                                     "ip": tb.sender.ip},
                          "receiver": {"netns": tb.receiver.netns, "ifname": tb.receiver.ifname,
                                       "ip": tb.receiver.ip, "port": cfg["tcp"]["port"]}}
        extra["nic_driver"] = tb.driver(tb.receiver)
        tb.place_rps(placement)
        nic_setup = srv.prepare() if hasattr(srv, "prepare") else {}
        extra["nic_setup"] = nic_setup
        server = Tool("server", srv.argv(bound), log, tb.registry, name=srv.tool)
        tools[srv.tool] = srv.binary()
        commands.append(server.command)
        server.start()
        if isinstance(srv, Iperf3):
            _wait_listening(tb, cfg["tcp"]["port"], server)
            client = Tool("sender", srv.client_argv(warmup, duration), log, tb.registry,
                          name="iperf3")
            commands.append(client.command)
            client.start()
            omit, secs = srv.seconds(warmup, duration)
            with Readers(tb, log, commands, tools, bound) as readers:
                readers.start(tb.sender, client.p.pid)
                readers.start(tb.receiver, server.p.pid, napi_prefix(tb.receiver.ifname))
                sides = {"sender": None, "receiver": None}
                time.sleep(omit)
                a = readers.snapshot(sides)
                time.sleep(secs)
                b = readers.snapshot(sides)
            if client.wait(bound) != 0:
                raise ToolExited(client, "a clean exit")
            server.wait(10)
            rep = srv.client_report()
            out = analyse_tcp(cell, a, b, placement, rep["received_bytes"], rep["received_s"],
                              rep["sent_bytes"], rep["sent_s"])
            out["counters"] = {"iperf3": rep}
        else:
            try:
                server.wait_event("ready", srv.ready_timeout)
            except ToolExited:
                err = server.find("error")
                if err and err.get("kind") == "unsupported":
                    raise Unsupported(srv.unsupported_reason(err)) from None
                raise
            sender = Tool("sender", snd.argv(warmup + duration + 1.0), log, tb.registry,
                          name=snd.tool)
            tools[snd.tool] = snd.binary()
            commands.append(sender.command)
            sender.start()
            sender.wait_event("ready", snd.ready_timeout)
            with Readers(tb, log, commands, tools, bound) as readers:
                readers.start(tb.sender, sender.p.pid)
                readers.start(tb.receiver, server.p.pid, napi_prefix(tb.receiver.ifname))
                sides = {"sender": sender, "receiver": server}
                time.sleep(warmup)
                a = readers.snapshot(sides)
                time.sleep(duration)
                b = readers.snapshot(sides)
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
        out = run(["ip", "netns", "exec", tb.receiver.netns, "ss", "-Hltn",
                   f"sport = :{port}"], check=False)
        if out.strip():
            return
        time.sleep(0.05)
    raise ToolExited(server, f"a listening socket on port {port}")


def host_probe(cfg: dict, log) -> dict:
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
        out = run([native_tool("rxb-pingpong"), "--cpus", f"{gen},{free[0]}"], log=log)
        return {"pingpong_ns": json.loads(out)["ns_per_round_trip"], "cpus": [gen, free[0]]}
    except (RxbenchError, ValueError, KeyError) as e:
        log(f"host probe failed: {e}")
        return {}


def run_cell(out_path: str, cfg: dict, log_path: str | None = None) -> int:
    """Measure one cell and write its JSON. Returns the exit status."""
    if cfg["platform"] == "vm":
        # HOOK (vm engineer): the vm platform's cells run over SSH in its
        # guests (rxbench.vmcell) until the host-generic runner lands
        from .vmcell import run_from_runner
        return run_from_runner(out_path, cfg, log_path)
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
    if cell.stack not in stacks:
        raise RxbenchError(f"cell {cell.name}: unknown {cell.layer} stack {cell.stack!r}; "
                           f"known: {', '.join(sorted(stacks))}")
    if os.geteuid() != 0:
        raise RxbenchError("the local platform needs root (network namespaces, XDP): "
                           "run snakemake as root")
    log(f"cell {out_path}: {json.dumps(cell.params)}")
    with signals_raise(), testbed_lock(log):
        # what runs killed with SIGKILL left behind (dead owners only)
        for item in clean():
            log(f"removed a dead run's leftover: {item}")
        result["host_probe"] = host_probe(cfg, log)
        result["generator"] = (cfg["eth"]["generator"] if cell.layer == "eth" else
                               "iperf3" if cell.stack == "iperf3" else TCP_SENDER.name)
        try:
            result.update(measure(cfg, cell, log, commands, tools, extra))
        except Unsupported as e:
            result.update(status="unsupported", reason=str(e))
        except (RxbenchError, OSError) as e:
            result.update(status="failed", reason=str(e))
        except Interrupted as e:
            log(f"interrupted by {e}: torn down, no result written")
            log.close()
            return 128 + e.signum
    if extra.get("nic_setup"):
        result["nic_setup"] = extra["nic_setup"]      # what the NIC accepted (zcrx)
    log(f"status {result['status']}" + (f": {result['reason']}" if result["reason"] else ""))
    result["provenance"] = provenance.collect(
        tools, commands, extra.get("hosts", {}), extra.get("nic_driver", "n/a"), started)
    result["provenance"]["config"] = {
        "profile": cfg["profile"], "warmup_s": cfg["warmup_s"], "timeout_s": cfg["timeout_s"],
        "duration_s": cfg["duration_s"] if cell.layer == "eth" else cfg["tcp"]["duration_s"]}
    if result["status"] == "ok" and cell.layer == "tcp":
        log(f"goodput {result['rx_gbps']:.2f} Gbit/s (sender {result['offered_gbps']:.2f}), "
            f"saturated CPUs {result['saturated_cpus']}, "
            f"generator_bound={result['generator_bound']}")
    elif result["status"] == "ok":
        log(f"offered {result['offered_pps'] / 1e6:.3f} Mpps, received "
            f"{result['rx_pps'] / 1e6:.3f} Mpps, saturated CPUs {result['saturated_cpus']}, "
            f"generator_bound={result['generator_bound']}")
    validate_result(result)
    atomic_write_json(out_path, result)
    log.close()
    return 0
