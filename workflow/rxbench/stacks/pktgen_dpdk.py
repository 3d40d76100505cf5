"""Pktgen-DPDK (the seed's generator) behind the JSON-lines protocol of the
native tools.

    python -m rxbench.stacks.pktgen_dpdk --duration S --runtime-dir D [--commands 'set 0 size 64;start 0'] \
        -- pktgen <EAL> -- -P -T -m MAP

Pktgen-DPDK 24.10.3 exits at start without a terminal on stdin
("scrn_create: tcgetattr failed"), so it runs on a pseudo-terminal whose
output this wrapper reads and keeps (its last lines explain a failure). Its
Lua socket is compiled out (nix/pktgen.nix, workflow/scripts/replay-recipes.py
PKTGEN_RECIPE): the traffic is set up by a `.pkt` command file (--commands,
written into D and given as -f) and the
counters come from DPDK telemetry, the EAL's own socket
D/dpdk_telemetry.v2 (AF_UNIX, SOCK_SEQPACKET), `/ethdev/stats,0`: opackets
is what the port sent. {"event": "ready"} once the port has sent packets,
{"event": "snapshot", "t_ns", "tx_packets", "tx_bytes", "oerrors", ...} on
SIGUSR1 (t_ns halfway between asking and the answer), {"event": "final"}
after --duration or SIGINT/SIGTERM/SIGHUP: then `quit` on its terminal,
SIGKILL after STOP_GRACE_S, and the runtime directory D removed.
No ready within READY_S: an error line, kind "unsupported" when the EAL
said it cannot drive the port, exit 3; otherwise exit 1.
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

TERM = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
READY_S = 60.0           # EAL start under TCG takes seconds
STOP_GRACE_S = 3.0
UNSUPPORTED = re.compile(r"(No Ethernet ports|Failed to create xsk socket|Driver cannot attach|"
                         r"Cannot init|not supported|No probed ethernet devices|lcore \d+ unavailable)",
                         re.I)
_ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


class Telemetry:
    """DPDK's telemetry socket (v2): one JSON answer per command."""

    def __init__(self, path: str):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.s.settimeout(5.0)
        self.s.connect(path)
        self.info = json.loads(self.s.recv(16384))

    def stats(self, port: int = 0) -> dict:
        t0 = time.monotonic_ns()
        self.s.send(f"/ethdev/stats,{port}".encode())
        ans = json.loads(self.s.recv(1 << 20)).get("/ethdev/stats")
        t1 = time.monotonic_ns()
        if not isinstance(ans, dict):      # null until the EAL has probed port 0
            raise ValueError(f"no port {port} yet")
        return {"t_ns": (t0 + t1) // 2, "tx_packets": int(ans["opackets"]), "tx_bytes": int(ans["obytes"]),
                "oerrors": int(ans.get("oerrors", 0)), "packets": int(ans["ipackets"]),
                "bytes": int(ans["ibytes"]), "imissed": int(ans.get("imissed", 0))}

    def close(self) -> None:
        self.s.close()


class Screen:
    """Pktgen's terminal output, read so it never blocks; the tail kept."""

    def __init__(self, fd: int):
        self.fd, self.tail, self.eof = fd, b"", False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                data = b""
            if not data:
                self.eof = True
                return
            self.tail = (self.tail + _ANSI.sub(b"", data))[-4000:]

    def text(self) -> str:
        lines = [ln.strip() for ln in self.tail.decode(errors="replace").splitlines() if ln.strip()]
        return " | ".join(lines[-12:])[-600:]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rxbench.stacks.pktgen_dpdk", description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("--runtime-dir", required=True, help="the EAL's /var/run/dpdk/<file-prefix>")
    ap.add_argument("--commands", default="",
                    help="';'-separated Pktgen commands, written to a .pkt file given as -f")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        ap.error("need the pktgen command after --")
    if a.commands:
        os.makedirs(a.runtime_dir, exist_ok=True)
        pkt = os.path.join(a.runtime_dir, "rxbench.pkt")
        with open(pkt, "w") as f:
            f.write("\n".join(c.strip() for c in a.commands.split(";") if c.strip()) + "\n")
        cmd = [*cmd, "-f", pkt]
    sigs = TERM | {signal.SIGUSR1}
    signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                                start_new_session=True,
                                preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_UNBLOCK, sigs))
    except OSError as e:
        emit({"event": "error", "kind": "unsupported", "reason": f"cannot run {cmd[0]}: {e}"})
        return 3
    finally:
        os.close(slave)
    screen = Screen(master)
    try:
        return run(proc, screen, master, sigs, a)
    finally:
        stop(proc, master)
        shutil.rmtree(a.runtime_dir, ignore_errors=True)


def stop(proc, master: int) -> str:
    if proc.poll() is not None:
        return "exit"
    try:
        os.write(master, b"quit\r")
    except OSError:
        pass
    try:
        proc.wait(STOP_GRACE_S)
        return "quit"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return "sigkill"


def run(proc, screen: Screen, master: int, sigs: set, a) -> int:
    sock = os.path.join(a.runtime_dir, "dpdk_telemetry.v2")
    deadline = time.monotonic() + READY_S
    tele, first = None, None
    while time.monotonic() < deadline and proc.poll() is None:
        if tele is None and os.path.exists(sock):
            try:
                tele = Telemetry(sock)
            except (OSError, ValueError):
                tele = None
        if tele is not None:
            try:
                first = tele.stats()
            except (OSError, ValueError, KeyError):
                first = None
            if first and first["tx_packets"] > 0:
                break
        sig = signal.sigtimedwait(TERM, 0.2)
        if sig is not None:
            break
    if not first or first["tx_packets"] == 0:
        text = screen.text()
        kind = "unsupported" if UNSUPPORTED.search(text) else "failed"
        how = f"exit {proc.returncode}" if proc.poll() is not None else "no packets sent"
        emit({"event": "error", "kind": kind, "reason": f"Pktgen-DPDK did not start sending ({how}): {text}"})
        return 3 if kind == "unsupported" else 1
    emit({"event": "ready", **first, "dpdk": tele.info.get("version")})
    end = time.monotonic() + a.duration
    last = first
    while True:
        left = end - time.monotonic()
        sig = signal.sigtimedwait(sigs, max(0.0, min(left, 0.5))) if left > 0 else None
        if proc.poll() is not None:
            emit({"event": "error", "kind": "failed",
                  "reason": f"Pktgen-DPDK ended early (exit {proc.returncode}): {screen.text()}"})
            return 1
        if sig is not None and sig.si_signo == signal.SIGUSR1:
            last = tele.stats()
            emit({"event": "snapshot", **last})
            continue
        if sig is None and left > 0:
            continue
        try:
            last = tele.stats()
        except (OSError, ValueError, KeyError):
            pass
        tele.close()
        how = stop(proc, master)
        emit({"event": "final", **last, "stopped": how})
        return 0


if __name__ == "__main__":
    sys.exit(main())
