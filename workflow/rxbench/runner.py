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
from .measure import (cpu_delta, delta, ethtool_stats, link_stats, nstat, proc_cpu,
                      read_proc_stat, tcp_drops)
from .platforms import testbed
from .proc import TERM_SIGNALS, Tool, ToolExited
from .result import validate_result
from .stacks import GENERATORS, RECEIVERS, TCP_SENDER, TCP_SERVERS, Unsupported
from .stacks.tcp import Iperf3
from .state import clean, testbed_lock
from .util import Log, atomic_write_json, run

SATURATED = 0.95          # a CPU busier than this over the interval was the limit
GENERATOR_BOUND = 0.99    # received >= 99% of offered: maybe the sender's limit
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


def _snapshot(tb, rx_tool: Tool, gen_tool: Tool, threads: list[dict]) -> dict:
    t0 = time.monotonic_ns()
    stat = read_proc_stat()
    gen = gen_tool.snapshot()
    rx = rx_tool.snapshot()
    links = {
        "sender": link_stats(tb.sender.netns, tb.sender.ifname),
        "receiver": link_stats(tb.receiver.netns, tb.receiver.ifname),
        "receiver_ethtool": ethtool_stats(tb.receiver.netns, tb.receiver.ifname),
    }
    procs = {"generator": proc_cpu(gen_tool.p.pid), "receiver": proc_cpu(rx_tool.p.pid)}
    for t in threads:
        procs[t["name"]] = proc_cpu(t["pid"])
    return {"t0_ns": t0, "t1_ns": time.monotonic_ns(), "stat": stat, "gen": gen, "rx": rx,
            "links": links, "procs": procs}


def _drops(a: dict, b: dict, rx, gen) -> tuple[dict, dict]:
    """Receive-side losses over the interval, and the sender's refusals.
    Frames veth refused while its peer's ring was full (sender tx_dropped)
    are back-pressure when the generator sends them again (rxb-gen counts
    only frames the kernel accepted), and a loss stage when it does not
    (dpdk-txonly counts them as sent)."""
    snd = delta(a["links"]["sender"], b["links"]["sender"])
    rcv = delta(a["links"]["receiver"], b["links"]["receiver"])
    eth = delta(a["links"]["receiver_ethtool"], b["links"]["receiver_ethtool"])
    drops = {
        "receiver_rx_dropped": rcv.get("rx_dropped", 0),
        "receiver_rx_missed": rcv.get("rx_missed", 0),
        "receiver_rx_errors": rcv.get("rx_errors", 0),
        "veth_rx_queue_drops": sum(v for k, v in eth.items()
                                   if k.startswith("rx_queue_") and k.endswith("_drops")
                                   and "xdp" not in k),
        **rx.stage_drops(a["rx"], b["rx"]),
    }
    if not gen.retries_refused:
        drops["sender_veth_refused"] = snd.get("tx_dropped", 0)
    backpressure = {
        "sender_tx_dropped": snd.get("tx_dropped", 0),
        "sender_tx_errors": snd.get("tx_errors", 0),
        "generator_retries": int(b["gen"].get("backpressure", 0)) - int(a["gen"].get("backpressure", 0)),
    }
    return drops, backpressure


def analyse(cell, a: dict, b: dict, placement, gen, rx) -> dict:
    """Rates, drops and CPU cost over the measured interval [a, b]."""
    size = cell.params["size"]
    gen_s = (b["gen"]["t_ns"] - a["gen"]["t_ns"]) / 1e9
    rx_s = (b["rx"]["t_ns"] - a["rx"]["t_ns"]) / 1e9
    sent = gen.sent(b["gen"]) - gen.sent(a["gen"])
    got = rx.received(b["rx"]) - rx.received(a["rx"])
    offered_pps = sent / gen_s
    rx_pps = got / rx_s
    cpu = cpu_delta(a["stat"], b["stat"])
    saturated = sorted((int(c) for c, v in cpu.items() if v["busy_frac"] >= SATURATED))
    rx_only = set(placement.receiver_only)
    if rx.polls():
        # a polling receiver keeps its core busy whatever the load: that
        # core being saturated says nothing about who set the rate
        rx_only -= set(placement.application) - set(placement.napi)
    rx_saturated = bool(rx_only & set(saturated))
    gen_saturated = bool(set(placement.generator) & set(saturated))
    lossless = rx_pps >= GENERATOR_BOUND * offered_pps
    bottleneck = ("receiver" if rx_saturated else
                  "generator" if gen_saturated else "none")
    # CPU cost per packet: the receive side's CPUs, when none is shared
    # with the generator (napi=sender puts the receive path on its CPU)
    rx_cpus = set(placement.application) | set(placement.napi)
    separable = not (rx_cpus & set(placement.generator))
    rx_busy = sum(cpu[str(c)]["busy_s"] for c in rx_cpus)
    processes = {}
    for name in b["procs"]:
        pa, pb = a["procs"].get(name), b["procs"].get(name)
        if pa and pb:
            processes[name] = {"user_s": round(pb["user_s"] - pa["user_s"], 4),
                               "sys_s": round(pb["sys_s"] - pa["sys_s"], 4),
                               "last_cpu": pb["last_cpu"]}
    drops, backpressure = _drops(a, b, rx, gen)
    # the receive-side stages nest (a frame the AF_XDP socket drops is also
    # a veth drop), so the largest is what they explain for sure; frames the
    # sender's veth refused never reached them
    refused = drops.get("sender_veth_refused", 0)
    known = refused + max((v for k, v in drops.items() if k != "sender_veth_refused"),
                          default=0)
    return {
        "duration_s": round(rx_s, 6),
        "offered_pps": offered_pps,
        "rx_pps": rx_pps,
        # frame bits as RFC 2544 counts them (FCS included, no preamble/IFG)
        "rx_gbps": rx_pps * size * 8 / 1e9,
        "offered_gbps": offered_pps * size * 8 / 1e9,
        "sent_packets": sent,
        "rx_packets": got,
        # what was offered but not received, as each stage counted it (stages
        # overlap); "unaccounted" is what no stage explains (in flight at the
        # interval's edges, or a stage we cannot read)
        "drops": {**drops, "unaccounted": max(0, sent - got - known)},
        "backpressure": backpressure,
        "cpu": {c: {k: round(v[k], 4) for k in ("busy_s", "user_s", "sys_s", "softirq_s",
                                                "irq_s", "busy_frac")} for c, v in cpu.items()},
        "cpu_ns_per_pkt": (rx_busy * 1e9 / got) if (got and separable) else None,
        "processes": processes,
        "saturated_cpus": saturated,
        "bottleneck": bottleneck,
        # loss-free and no receiver-only CPU at its limit: the generator (or a
        # CPU shared with it) set the rate, not the stack. veth pushes back on
        # the sender when the receiver falls behind, so loss-free alone proves
        # nothing there.
        "generator_bound": bool(lossless and not rx_saturated),
    }


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
        time.sleep(warmup)
        a = _snapshot(tb, rx_tool, gen_tool, placement.napi_threads)
        time.sleep(duration)
        b = _snapshot(tb, rx_tool, gen_tool, placement.napi_threads)
        gen_tool.stop(signal.SIGINT)
        rx_tool.stop(signal.SIGTERM)
        for t in (gen_tool, rx_tool):
            if t.returncode != 0 or t.find("final") is None:
                raise ToolExited(t, "a clean exit")
        out = analyse(cell, a, b, placement, gen, rx)
        out["placement"] = placement.as_dict()
        out["counters"] = {"generator_final": gen_tool.find("final"),
                           "receiver_final": rx_tool.find("final")}
    return out


def _tcp_snapshot(tb, server: Tool | None, sender: Tool | None) -> dict:
    t0 = time.monotonic_ns()
    stat = read_proc_stat()
    snap = {"t0_ns": t0, "stat": stat,
            "server": server.snapshot() if server else None,
            "sender": sender.snapshot() if sender else None,
            "nstat": {"sender": nstat(tb.sender.netns), "receiver": nstat(tb.receiver.netns)},
            "links": {"sender": link_stats(tb.sender.netns, tb.sender.ifname),
                      "receiver": link_stats(tb.receiver.netns, tb.receiver.ifname)}}
    snap["t1_ns"] = time.monotonic_ns()
    return snap


def analyse_tcp(cell, a: dict, b: dict, placement, rx_bytes: int, rx_s: float,
                sent_bytes: int, sent_s: float) -> dict:
    """Goodput, CPU per byte and TCP's own loss counters over [a, b]."""
    cpu = cpu_delta(a["stat"], b["stat"])
    saturated = sorted(int(c) for c, v in cpu.items() if v["busy_frac"] >= SATURATED)
    server_cpus = set(placement.application)
    sender_cpus = set(placement.generator)
    server_sat = bool(server_cpus & set(saturated))
    sender_sat = bool(sender_cpus & set(saturated))
    server_busy = sum(cpu[str(c)]["busy_s"] for c in server_cpus)
    drops, tcp_counters = {}, {}
    for side in ("sender", "receiver"):
        d = delta(a["nstat"][side], b["nstat"][side])
        for k, v in tcp_drops(d).items():
            drops[f"{side}_{k}"] = int(v)
        tcp_counters[side] = {k: int(v) for k, v in d.items() if v}
    gbps = rx_bytes * 8 / rx_s / 1e9 if rx_s > 0 else 0.0
    return {
        "duration_s": round(rx_s, 6),
        "offered_pps": None,
        "rx_pps": None,
        "rx_gbps": gbps,
        "offered_gbps": sent_bytes * 8 / sent_s / 1e9 if sent_s > 0 else 0.0,
        "rx_bytes": rx_bytes,
        "sent_bytes": sent_bytes,
        "drops": drops,
        "tcp_counters": tcp_counters,     # every TCP counter that moved, per side
        "cpu": {c: {k: round(v[k], 4) for k in ("busy_s", "user_s", "sys_s", "softirq_s",
                                                "irq_s", "busy_frac")} for c, v in cpu.items()},
        # the server's cores only; veth runs TCP's receive path in softirq on
        # the sender's CPU, which is counted there (see cpu)
        "cpu_ns_per_byte": server_busy * 1e9 / rx_bytes if rx_bytes else None,
        "saturated_cpus": saturated,
        "bottleneck": "server" if server_sat else "sender" if sender_sat else "none",
        "generator_bound": bool(sender_sat and not server_sat),
    }


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
            time.sleep(omit)
            a = _tcp_snapshot(tb, None, None)
            time.sleep(secs)
            b = _tcp_snapshot(tb, None, None)
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
            time.sleep(warmup)
            a = _tcp_snapshot(tb, server, sender)
            time.sleep(duration)
            b = _tcp_snapshot(tb, server, sender)
            sender.stop(signal.SIGINT)
            server.stop(signal.SIGTERM)
            for t in (sender, server):
                if t.returncode != 0 or t.find("final") is None:
                    raise ToolExited(t, "a clean exit")
            rx_bytes = srv.received(b["server"]) - srv.received(a["server"])
            rx_s = (b["server"]["t_ns"] - a["server"]["t_ns"]) / 1e9
            sent = snd.sent(b["sender"]) - snd.sent(a["sender"])
            sent_s = (b["sender"]["t_ns"] - a["sender"]["t_ns"]) / 1e9
            out = analyse_tcp(cell, a, b, placement, rx_bytes, rx_s, sent, sent_s)
            out["counters"] = {"server_final": server.find("final"),
                               "sender_final": sender.find("final")}
        out["placement"] = placement.as_dict()
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
