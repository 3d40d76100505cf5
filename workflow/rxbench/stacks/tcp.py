"""TCP-layer servers (receive and discard, count bytes) and senders."""

from __future__ import annotations

import json
import math

from .. import RxbenchError
from .base import Generator, Receiver, Unsupported

# cell stack -> rxb-tcp-server --mode (epoll's trigger variant picks epoll_et)
MODES = {"blocking": "blocking", "epoll": "epoll", "uring": "uring",
         "uring_opt": "uring_opt", "uring_zcrx": "uring_zcrx"}


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
            # the ifq goes on the receive queue the test flow lands on
            argv += ["--ifname", r.ifname, "--rxq", "0"]
        return r.exec(argv)

    def received(self, snap: dict) -> int:
        return int(snap["bytes"])

    def prepare(self) -> dict:
        """zcrx wants header split on the NIC and the test flow on the
        registered queue (0). Each step is tried and its outcome recorded;
        the registration itself then says whether the device can do it."""
        if self.cell.stack != "uring_zcrx":
            return {}
        r, port = self.tb.receiver, self.cfg["tcp"]["port"]
        steps = {
            "header_split": ["ethtool", "-G", r.ifname, "tcp-data-split", "on"],
            "steer_flow": ["ethtool", "-N", r.ifname, "flow-type", "tcp4", "dst-ip", r.ip,
                           "dst-port", str(port), "action", "0"],
            "rss_off_queue": ["ethtool", "-X", r.ifname, "equal", "1"],
        }
        done = {}
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
        if self.cell.stack == "uring_zcrx" and err.get("errno_name") in ("EOPNOTSUPP",
                                                                        "EINVAL", "ENODEV"):
            why += (f": {self.tb.driver(self.tb.receiver)} cannot do zero-copy receive; "
                    "zcrx needs a NIC driver with the queue-management API, header split "
                    "and flow steering (bnxt, mlx5, gve, fbnic)")
        return why


class RxbTcpSend(Generator):
    """native/rxb_tcp_send.c: `conns` connections, `msg`-byte writes as fast
    as it can, bounded by --duration, pinned to the sender's CPUs."""

    name = "rxb-tcp-send"
    tool = "rxb-tcp-send"

    def argv(self, bound_s: float) -> list[str]:
        s, r, p = self.tb.sender, self.tb.receiver, self.cell.params
        return s.exec([self.binary(), "--dst", r.ip, "--port", str(self.cfg["tcp"]["port"]),
                       "--conns", str(p["conns"]), "--msg", str(p["msg"]),
                       "--cpus", ",".join(map(str, self.placement.generator)),
                       "--duration", f"{bound_s:.3f}"])

    def sent(self, snap: dict) -> int:
        return int(snap["bytes"])


class Iperf3(Receiver):
    """iperf3's own server (with its client as the sender): the tool users
    would pick instead. It reports only at the end: the client measures
    after --omit (the warm-up) for the cell's duration, and the bytes the
    server received over that interval are in the client's JSON report."""

    name = "iperf3"
    tool = "iperf3"
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
        return s.exec([self.binary(), "-c", r.ip, "-p", str(self.cfg["tcp"]["port"]),
                       "-P", str(p["conns"]), "-l", str(p["msg"]),
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
                "cpu": end.get("cpu_utilization_percent", {})}
