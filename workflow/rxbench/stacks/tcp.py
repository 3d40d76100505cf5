"""TCP-layer servers (receive and discard, count bytes) and senders."""

from __future__ import annotations

import json
import math
import signal
import time

from .. import RxbenchError
from ..hosts.tool import ToolExited
from .base import Generator, Receiver, Unsupported
from .registry import GeneratorSpec, Needs, Stack, Style, Variant

# cell stack -> rxb-tcp-server --mode (epoll's trigger variant picks epoll_et)
MODES = {"blocking": "blocking", "epoll": "epoll", "uring": "uring",
         "uring_opt": "uring_opt", "uring_zcrx": "uring_zcrx"}
DEFAULT_RECV = 65536          # the servers' receive size when a cell says none
LOAD_TOLERANCE = 0.01         # a rate-limited sender within 1 % of its target
DRAIN_TIMEOUT_S = 5.0         # for the server to read what the sender wrote


# iperf3 is its own sender and server: every figure, table and sentence says so
PAIR_LABEL = "iperf3 (sender+server pair)"


def label(stack: str, params: dict) -> str:
    """How figures and sentences name a cell's stack (the registry's
    label): iperf3 is its own sender and server together; device-less zcrx
    copies every byte."""
    from .registry import label as registered
    return registered(stack, params)


def _zcrx_label(params: dict, nic_driver: str | None) -> str | None:
    return "uring_zcrx nodev (copy fallback)" if params.get("zcrx") == "nodev" else None


def load_gbps(params: dict) -> float | None:
    """The cell's goodput target in Gbit/s, None for load=max."""
    load = params.get("load", "max")
    return None if load == "max" else float(load)


def steer_sender(tb, placement) -> str:
    """RPS on the sender's veth to the sender's CPUs, so the ACKs the server
    sends (tcp_ack, freeing acked skbs, write-space wake-ups) are processed
    in softirq there, not on the server's core (veth's netif_rx would queue
    them on the CPU that sent them). 'sender' NAPI placement leaves veth
    alone, as place_rps does."""
    if placement.napi_mode == "sender":
        return "skipped (napi=sender)"
    s = tb.sender
    mask = format(sum(1 << c for c in placement.generator), "x")
    for q in range(tb.queues):
        tb.commands.append(f"[sender] echo {mask} > rx-{q}/rps_cpus")
        s.host.set_sysfs(f"/sys/class/net/{s.ifname}/queues/rx-{q}/rps_cpus", mask, log=tb.log)
    return f"rps_cpus={mask}"


class TcpServer(Receiver):
    """native/rxb_tcp_server.c in one of its modes, on the receiver side:
    listens on the test address, accepts any number of connections,
    receives and discards, counts bytes (per thread, summed on SIGUSR1)."""

    tool = "rxb-tcp-server"
    kernel_options = ("CONFIG_INET",)

    def __init__(self, cfg, cell, testbed, placement):
        super().__init__(cfg, cell, testbed, placement)
        self.name = cell.stack

    def probe(self) -> None:
        opts = ("CONFIG_IO_URING",) if self.cell.stack.startswith("uring") else ()
        self.kernel_options = TcpServer.kernel_options + opts
        super().probe()

    def mode(self) -> str:
        p = self.cell.params
        if self.cell.stack == "epoll" and p.get("trigger", "level") == "edge":
            return "epoll_et"
        return MODES[self.cell.stack]

    def argv(self, bound_s: float) -> list[str]:
        r, app, p = self.tb.receiver, self.placement.application, self.cell.params
        argv = [self.binary(), "--mode", self.mode(), "--addr", r.ip,
                "--port", str(self.cfg["tcp"]["port"]), "--cpus", ",".join(map(str, app)),
                "--duration", f"{bound_s:.3f}"]
        if p.get("touch"):
            argv.append("--touch")
        if self.cell.stack == "uring_zcrx":
            if p.get("zcrx") == "nodev":
                argv.append("--zcrx-nodev")
            else:
                # the ifq goes on the receive queue the test flow lands on
                argv += ["--ifname", r.ifname, "--rxq", "0"]
        else:
            argv += ["--recv-size", str(p.get("recv", DEFAULT_RECV))]
        if self.cell.stack == "uring_opt" and p.get("wait_nr", 1) > 1:
            argv += ["--wait-nr", str(p["wait_nr"])]
        return r.exec(argv)

    def label(self) -> str:
        return label(self.cell.stack, self.cell.params)

    def drive(self, trial, server, snd) -> dict:
        """The cell once the server is started: the layer's sender (snd)
        for warm-up and measured interval, both stopped once the server has
        read what was written. trial is the runner's (runner.Trial)."""
        trial.ready(server, self.ready_timeout, self.unsupported_reason)
        run_s = trial.warmup + trial.duration + trial.slack
        sender = trial.start("sender", snd.argv(run_s), snd.tool, run_s + 10)
        trial.uses(snd.tool, snd.binary())
        sender.wait_event("ready", snd.ready_timeout)
        a, b, _ = trial.window((sender.pid, sender), (server.pid, server), trial.warmup,
                               lambda: time.sleep(trial.duration))
        trial.measured()
        sender.stop(signal.SIGINT)
        self.stop(server, sender)          # once it has read what the sender wrote
        for t in (sender, server):
            if t.returncode != 0 or t.find("final") is None:
                raise ToolExited(t, "a clean exit")
        ra, rb = a["receiver"]["tool"], b["receiver"]["tool"]
        sa, sb = a["sender"]["tool"], b["sender"]["tool"]
        return {"a": a, "b": b,
                "rx_bytes": self.received(rb) - self.received(ra),
                "rx_s": (rb["t_ns"] - ra["t_ns"]) / 1e9,
                "sent_bytes": snd.sent(sb) - snd.sent(sa),
                "sent_s": (sb["t_ns"] - sa["t_ns"]) / 1e9,
                "counters": {"server_final": server.find("final"),
                             "sender_final": sender.find("final")},
                # the sender's connections' congestion control (the namespace's
                # default): TCP's pacing, and so the sender's cost, depend on it
                "congestion_control": (sender.find("ready") or {}).get("congestion_control")}

    def stop(self, server, sender, timeout: float = DRAIN_TIMEOUT_S) -> None:
        """Stop the server once it has read every byte the (stopped) sender
        wrote, so its final counts and checksum cover the same bytes as the
        sender's; after `timeout` it is stopped anyway (verify then fails)."""
        final = sender.find("final")
        want = int(final["bytes"]) if final else None
        end = time.monotonic() + timeout
        while want is not None and server.returncode is None and time.monotonic() < end:
            try:
                if int(server.snapshot()["bytes"]) >= want:
                    break
            except RxbenchError:
                break
            time.sleep(0.02)
        server.stop(signal.SIGTERM)

    def verify(self, out: dict) -> None:
        """Over the connections' lifetime (both tools' final events) the
        server must have received every byte the sender wrote and, with
        touch, its byte sum must equal the sender's: raise (the cell is
        failed) with both numbers otherwise. Annotates out with the checks
        and, for a rate-limited cell, how close the sender came to its
        target."""
        srv, snd = out["counters"]["server_final"], out["counters"]["sender_final"]
        checks = {"bytes": {"server": srv["bytes"], "sender": snd["bytes"]}}
        if srv["bytes"] != snd["bytes"]:
            raise RxbenchError(f"the server received {srv['bytes']} bytes over the cell, the "
                               f"sender wrote {snd['bytes']}")
        if self.cell.params.get("touch"):
            checks["touch"] = {"server": srv.get("touch"), "sender": snd.get("touch")}
            if srv.get("touch") is None or srv.get("touch") != snd.get("touch"):
                raise RxbenchError(f"touch checksum mismatch: server {srv.get('touch')}, "
                                   f"sender {snd.get('touch')} (over {snd['bytes']} bytes)")
        out["verified"] = checks
        if self.cell.stack == "uring_zcrx":
            out["zcrx"] = {k: srv.get(k) for k in ("zcrx", "copy_count", "copy_bytes",
                                                   "copy_stats", "refill_full",
                                                   "refill_pending_max", "zcrx_flushes")
                           if k in srv}
            # device-less zcrx copies every byte: never a zero-copy result; on
            # a device, only the kernel's copy counters can tell
            cc = srv.get("copy_count")
            out["zcrx"]["zero_copy"] = (False if srv.get("zcrx") == "nodev" else
                                        None if cc is None else cc == 0)
        target = load_gbps(self.cell.params)
        if target is not None:
            reached = abs(out["offered_gbps"] / target - 1) <= LOAD_TOLERANCE
            out["load"] = {"target_gbps": target, "sender_gbps": out["offered_gbps"],
                           "goodput_gbps": out["rx_gbps"],
                           "error_pct": 100 * (out["offered_gbps"] / target - 1),
                           "reached": reached}
            if reached and out["bottleneck"] == "none":
                out["bottleneck"] = "rate"     # the limit is the target, by design

    def received(self, snap: dict) -> int:
        return int(snap["bytes"])

    def prepare(self) -> dict:
        """The sender's veth steered to the sender's CPUs; for zcrx on a
        device, header split on the NIC and the test flow on the registered
        queue (0). Each step is tried and its outcome recorded; the
        registration itself then says whether the device can do it."""
        done = {"steer_sender": steer_sender(self.tb, self.placement)}
        if self.cell.stack != "uring_zcrx" or self.cell.params.get("zcrx") == "nodev":
            return done
        r, port = self.tb.receiver, self.cfg["tcp"]["port"]
        steps = {
            "header_split": ["ethtool", "-G", r.ifname, "tcp-data-split", "on"],
            "steer_flow": ["ethtool", "-N", r.ifname, "flow-type", "tcp4", "dst-ip", r.ip,
                           "dst-port", str(port), "action", "0"],
            "rss_off_queue": ["ethtool", "-X", r.ifname, "equal", "1"],
        }
        for name, argv in steps.items():
            try:
                self.tb._run(r, argv)
                done[name] = "ok"
            except RxbenchError as e:
                done[name] = f"refused: {e}"
        return done

    def unsupported_reason(self, err: dict) -> str:
        """The server's own reason, its errno by name, and what it means."""
        why = err.get("reason", "unsupported")
        if err.get("errno_name"):
            why += f" ({err['errno_name']}, errno {err.get('errno')})"
        if self.cell.stack == "uring_zcrx" and self.cell.params.get("zcrx") == "nodev":
            return why
        if self.cell.stack == "uring_zcrx" and err.get("errno_name") in ("EOPNOTSUPP",
                                                                        "EINVAL", "ENODEV"):
            why += (f": {self.tb.driver(self.tb.receiver)} cannot do zero-copy receive; "
                    "zcrx needs a NIC driver with the queue-management API, header split "
                    "and flow steering (bnxt, mlx5, gve, fbnic)")
        return why


class RxbTcpSend(Generator):
    """native/rxb_tcp_send.c: `conns` connections, `msg`-byte writes, one
    thread per sender CPU (connections dealt over them), as fast as it can
    or at the cell's load (--rate-gbps, a token bucket per thread), bounded
    by --duration."""

    name = "rxb-tcp-send"
    tool = "rxb-tcp-send"

    def argv(self, bound_s: float) -> list[str]:
        s, r, p = self.tb.sender, self.tb.receiver, self.cell.params
        argv = [self.binary(), "--dst", r.ip, "--port", str(self.cfg["tcp"]["port"]),
                "--conns", str(p["conns"]), "--msg", str(p["msg"]),
                "--cpus", ",".join(map(str, self.placement.generator)),
                "--duration", f"{bound_s:.3f}"]
        if load_gbps(p) is not None:
            argv += ["--rate-gbps", f"{load_gbps(p):g}"]
        return s.exec(argv)

    def sent(self, snap: dict) -> int:
        return int(snap["bytes"])


class Iperf3(Receiver):
    """iperf3's own server with its own client as the sender: a sender+server
    PAIR, the tool users would pick instead; a comparison with it compares
    pairs, never servers. (Feeding iperf3's server from rxb-tcp-send is not
    possible: the server expects its control protocol, a cookie and JSON
    parameters on a first connection, before any data stream.) It reports
    only at the end: the client measures after --omit (the warm-up) for the
    cell's duration, and the bytes the server received over that interval
    are in the client's JSON report. At a load, -b paces each stream at its
    share of the target."""

    name = "iperf3"
    tool = "iperf3"
    own_sender = True               # its client, not the layer's sender
    ready_timeout = 10.0
    MAX_STREAMS = 128               # iperf3's -P limit

    def __init__(self, cfg, cell, testbed, placement):
        super().__init__(cfg, cell, testbed, placement)
        self._dirs: dict[str, str] = {}

    def probe(self) -> None:
        if not self.which("iperf3"):
            raise Unsupported("iperf3 is not installed (Debian: iperf3; Nix: the devShell)")
        if self.cell.params["conns"] > self.MAX_STREAMS:
            raise Unsupported(f"iperf3 opens at most {self.MAX_STREAMS} streams (-P), "
                              f"the cell asks for {self.cell.params['conns']}")

    def binary(self) -> str:
        return self.which("iperf3") or "iperf3"

    def label(self) -> str:
        return label("iperf3", self.cell.params)

    def drive(self, trial, server, snd) -> dict:
        """iperf3's own client for warm-up (--omit) and measured interval;
        the counters readers' window covers the client's measured seconds,
        the bytes come from its report."""
        port = self.cfg["tcp"]["port"]
        self.wait_listening(server, port)
        client = trial.start("sender", self.client_argv(trial.warmup, trial.duration), "iperf3",
                             trial.bound + 5)
        omit, secs = self.seconds(trial.warmup, trial.duration)
        a, b, _ = trial.window((client.pid, None), (server.pid, None), omit,
                               lambda: time.sleep(secs))
        if client.wait(trial.bound) != 0:
            raise ToolExited(client, "a clean exit")
        server.wait(10)
        trial.measured()
        rep = self.client_report()
        return {"a": a, "b": b, "rx_bytes": rep["received_bytes"], "rx_s": rep["received_s"],
                "sent_bytes": rep["sent_bytes"], "sent_s": rep["sent_s"],
                "counters": {"iperf3": rep}, "congestion_control": rep.get("congestion_control")}

    def wait_listening(self, server, port: int, timeout: float = 10.0) -> None:
        """iperf3 says nothing machine-readable when it listens: ask ss."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if server.returncode is not None:
                raise ToolExited(server, "listening")
            out = self.tb.receiver.host.run(["ss", "-Hltn", f"sport = :{port}"], check=False)
            if out.strip():
                return
            time.sleep(0.05)
        raise ToolExited(server, f"a listening socket on port {port}")

    def prepare(self) -> dict:
        return {"steer_sender": steer_sender(self.tb, self.placement)}

    def report_path(self, role: str) -> str:
        """The report file on the host where `role` (server, client) runs."""
        side = self.tb.receiver if role == "server" else self.tb.sender
        if role not in self._dirs:
            self._dirs[role] = side.host.scratch(f"iperf3-{self.tb.token}")
        return f"{self._dirs[role]}/{role}.json"

    def argv(self, bound_s: float) -> list[str]:
        r, app = self.tb.receiver, self.placement.application
        return r.exec([self.binary(), "-s", "-1", "-B", r.ip, "-p", str(self.cfg["tcp"]["port"]),
                       "-A", str(app[0]), "-J", "--logfile", str(self.report_path("server"))])

    @staticmethod
    def seconds(warmup: float, duration: float) -> tuple[int, int]:
        """iperf3 takes whole seconds for --omit and --time (it runs omit +
        time in all): the warm-up rounded up, the duration rounded."""
        return max(1, math.ceil(warmup)), max(1, round(duration))

    def client_argv(self, warmup: float, duration: float) -> list[str]:
        s, r, p = self.tb.sender, self.tb.receiver, self.cell.params
        omit, secs = self.seconds(warmup, duration)
        rate = []
        if load_gbps(p) is not None:
            # iperf3 paces each stream (-P) at -b: the target's share
            rate = ["-b", f"{load_gbps(p) * 1e9 / p['conns']:.0f}"]
        return s.exec([self.binary(), "-c", r.ip, "-p", str(self.cfg["tcp"]["port"]),
                       "-P", str(p["conns"]), "-l", str(p["msg"]), *rate,
                       "-O", str(omit), "-t", str(secs),
                       "-A", str(self.placement.generator[0]),
                       "-J", "--logfile", str(self.report_path("client"))])

    def client_report(self) -> dict:
        """end.sum_received of the client's report: what the server got over
        the measured interval (omitted seconds excluded)."""
        path = self.report_path("client")
        try:
            data = json.loads(self.tb.sender.host.read_file(path) or "")
        except ValueError as e:
            raise Unsupported(f"iperf3 wrote no report ({path}): {e}") from None
        if data.get("error"):
            raise RxbenchError(f"iperf3: {data['error']}")
        end = data["end"]
        return {"received_bytes": int(end["sum_received"]["bytes"]),
                "received_s": float(end["sum_received"]["seconds"]),
                "sent_bytes": int(end["sum_sent"]["bytes"]),
                "sent_s": float(end["sum_sent"]["seconds"]),
                "retransmits": int(end["sum_sent"].get("retransmits", 0)),
                "congestion_control": end.get("sender_tcp_congestion"),
                "cpu": end.get("cpu_utilization_percent", {})}


# -- the registry's view (stacks/registry.py) ------------------------------------

_TOUCH = Variant("touch", {"enum": [0, 1]}, (0,),
                 "1 = the server reads every received byte (checksum)")
# bytes per receive of our servers: configured under tcp.variants (its schema there)
_RECV = Variant("recv", {"type": "integer", "minimum": 1, "maximum": 16777216}, (DEFAULT_RECV,),
                layer_wide=True)
_SERVER = Needs(kernel=("CONFIG_INET",), native=("rxb-tcp-server",))
_URING = Needs(kernel=("CONFIG_INET", "CONFIG_IO_URING"), native=("rxb-tcp-server",))
STACKS = [
    Stack("blocking", "tcp", TcpServer, order=10,
          style=Style("#CC79A7", "v", "\\\\", (0, (1, 1.2))),
          variants=(_TOUCH, _RECV), needs=_SERVER),
    Stack("epoll", "tcp", TcpServer, order=20,
          style=Style("#E69F00", "P", "--", (0, (6, 1.5, 1, 1.5))),
          variants=(_TOUCH, Variant("trigger", {"enum": ["level", "edge"]}, ("level",),
                                    "epoll trigger mode"), _RECV), needs=_SERVER),
    Stack("uring", "tcp", TcpServer, order=30, style=Style("#56B4E9", "X", "++", (0, (5, 2))),
          variants=(_TOUCH, _RECV), needs=_URING),
    Stack("uring_opt", "tcp", TcpServer, order=40, style=Style("#882255", "h", "oo", "-"),
          variants=(_TOUCH, _RECV,
                    Variant("wait_nr", {"type": "integer", "minimum": 1, "maximum": 4096}, (1,),
                            "completions each wait of the loop asks for (at most 5 ms; the "
                            "server's --wait-nr)")), needs=_URING),
    # zcrx takes what the kernel hands it: recv does not apply
    Stack("uring_zcrx", "tcp", TcpServer, order=50,
          style=Style("#44AA99", "p", "**", (0, (3, 1, 1, 1, 1, 1))), relabel=_zcrx_label,
          variants=(_TOUCH, Variant("zcrx", {"enum": ["device", "nodev"]}, ("device",),
                                    "device (a NIC queue) or nodev (device-less zcrx, every "
                                    "byte copied)")), needs=_URING),
    # a tool users would pick instead; it cannot read each byte (no touch)
    Stack("iperf3", "tcp", Iperf3, order=60, style=Style("#666666", "*", "OO", (0, (4, 2))),
          label=PAIR_LABEL, role="reference", needs=Needs(programs=("iperf3",))),
]
GENERATORS = [GeneratorSpec("rxb-tcp-send", "tcp", RxbTcpSend, Needs(native=("rxb-tcp-send",)),
                            "native/rxb_tcp_send.c")]
