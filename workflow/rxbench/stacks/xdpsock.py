"""Upstream xdpsock (bpf-examples) behind the JSON-lines protocol of the
native tools, so it runs as a second, independent AF_XDP receiver.

    python -m rxbench.stacks.xdpsock --duration S -- xdpsock -r -i IF -q 0 -x ...

xdpsock prints a statistics block every interval (`-n`, 1 s) with the
socket's cumulative counters:

     sock0@IF:0 rxdrop xdp-drv
                       pps            pkts           1.00
    rx                 1,917,220      9,586,100
    tx                 0              0
    rx dropped         0              12          (with -x)
    ...

This wrapper keeps the newest block and the CLOCK_MONOTONIC time it
arrived: {"event": "ready"} after the first block, on SIGUSR1 a
{"event": "snapshot", "t_ns", "packets", "rx_dropped", "rx_ring_full",
"rx_fill_ring_empty"} of that block (a block is up to one interval old;
its t_ns says when it was printed, so rates over several seconds stay
right), {"event": "final"} when xdpsock ends (its duration, or SIGTERM
passed on). xdpsock failing before its first block is an error line:
kind "unsupported" when it says why (e.g. it insists on raising
RLIMIT_MEMLOCK), exit 3; otherwise exit 1.

Stopping it (read from bpf-examples AF_XDP-example/xdpsock.c): its SIGINT/
SIGTERM handler only sets a flag, and in -p (poll) mode rx_drop_all()
`continue`s past the flag's check whenever poll() times out (1 s), so once
the traffic has stopped it never ends by itself; its -d duration is
checked by the statistics thread, which only sets the same flag. The
runner stops the generator before the receiver, so this wrapper sends
SIGINT, waits STOP_GRACE_S (a poll timeout and a statistics block), then
SIGKILLs it. Killed, it leaves the XDP program libxdp attached for its
socket on the interface: whatever XDP program is on `-i IF` after xdpsock
ended and was not there before it started is detached (`ip link set dev
IF xdp off`, in our network namespace). The final line records how it
ended: "stopped" (exit, sigint or sigkill) and "xdp_detached" (the
program's id and name, or null), so a cell says what was cleaned.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

TERM = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
STOP_GRACE_S = 2.0        # xdpsock's poll() timeout is 1 s (opt_timeout)
_ROW = re.compile(r"^(rx|tx|rx dropped|rx invalid|tx invalid|rx queue full|fill ring empty|"
                  r"tx ring empty)\s+([\d,.']+)\s+([\d,.']+)\s*$")
FIELDS = {"rx": "packets", "rx dropped": "rx_dropped", "rx queue full": "rx_ring_full",
          "fill ring empty": "rx_fill_ring_empty", "rx invalid": "rx_invalid_descs"}
UNSUPPORTED = re.compile(r"(setrlimit|RLIMIT_MEMLOCK|Operation not supported|"
                         r"errno: 95|Cannot allocate memory|Permission denied)", re.I)


def count(text: str) -> int:
    """xdpsock prints counts with the locale's thousands separator."""
    return int(re.sub(r"[,.']", "", text))


class Blocks:
    """Parses xdpsock's output into the newest complete block (summed over sockets)."""

    def __init__(self):
        self.cur: dict[str, int] = {}
        self.latest: dict | None = None
        self.lines: list[str] = []
        self.lock = threading.Lock()
        self.first = threading.Event()

    def feed(self, line: str, t_ns: int) -> None:
        self.lines = (self.lines + [line])[-20:]
        s = line.strip()
        if s.startswith("sock0@"):
            self._close(t_ns)
        m = _ROW.match(s)
        if m and m.group(1) in FIELDS:
            key = FIELDS[m.group(1)]
            self.cur[key] = self.cur.get(key, 0) + count(m.group(3))
            if m.group(1) == "rx":        # the counters of a block are read together
                self.cur["_t_ns"] = t_ns
                self.cur["_complete"] = 1
        if m and m.group(1) == "tx ring empty":
            self._close(t_ns)             # the last row with -x: no need to wait for the next

    def _close(self, t_ns: int) -> None:
        if self.cur.get("_complete"):
            with self.lock:
                self.latest = {k: v for k, v in self.cur.items() if not k.startswith("_")}
                self.latest["t_ns"] = self.cur["_t_ns"]
            self.first.set()
        self.cur = {}

    def finish(self, t_ns: int) -> None:
        self._close(t_ns)

    def snapshot(self, event: str) -> dict | None:
        with self.lock:
            if self.latest is None:
                return None
            out = {"event": event, "t_ns": self.latest["t_ns"], "bytes": 0}
            out.update({k: v for k, v in self.latest.items() if k != "t_ns"})
            for f in FIELDS.values():
                out.setdefault(f, 0)
            return out


def interface(cmd: list[str]) -> str | None:
    """The interface xdpsock binds to (-i IF, -iIF, --interface[=]IF)."""
    for i, arg in enumerate(cmd):
        if arg in ("-i", "--interface") and i + 1 < len(cmd):
            return cmd[i + 1]
        if arg.startswith("--interface="):
            return arg.split("=", 1)[1]
        if arg.startswith("-i") and len(arg) > 2 and not arg.startswith("--"):
            return arg[2:]
    return None


def xdp_attached(ifname: str) -> dict | None:
    """The XDP program attached to `ifname` in this network namespace, as
    `ip -d -j link` reports it ({"id", "name", "mode"}), or None."""
    out = subprocess.run(["ip", "-d", "-j", "link", "show", "dev", ifname],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return None
    try:
        link = (json.loads(out.stdout) or [{}])[0]
    except ValueError:
        return None
    xdp = link.get("xdp")
    if not xdp:
        return None
    prog = xdp.get("prog") or (xdp.get("attached") or [{}])[0].get("prog") or {}
    return {"id": prog.get("id"), "name": prog.get("name"), "mode": xdp.get("mode")}


def detach_xdp(ifname: str) -> dict | None:
    """Detach what XDP program is on `ifname`; returns what was there."""
    found = xdp_attached(ifname)
    if found is None:
        return None
    for mode in ("xdp", "xdpdrv", "xdpgeneric"):
        subprocess.run(["ip", "link", "set", "dev", ifname, mode, "off"],
                       capture_output=True, text=True)
        if xdp_attached(ifname) is None:
            return found
    found["detach_failed"] = True
    return found


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rxbench.stacks.xdpsock", description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        ap.error("need the xdpsock command after --")
    ifname = interface(cmd)
    before = xdp_attached(ifname) if ifname else None
    sigs = TERM | {signal.SIGUSR1}
    signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1, env={**os.environ, "LC_ALL": "C"},
                                preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_UNBLOCK, sigs))
    except OSError as e:
        emit({"event": "error", "kind": "unsupported", "reason": f"cannot run {cmd[0]}: {e}"})
        return 3
    blocks = Blocks()

    def reader():
        signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
        for line in proc.stdout:
            sys.stderr.write(line)
            blocks.feed(line.rstrip("\n"), time.monotonic_ns())
        blocks.finish(time.monotonic_ns())
        blocks.first.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    ended: dict = {"stopped": "exit", "xdp_detached": None}
    try:
        return run(proc, blocks, t, sigs, time.monotonic() + a.duration, ended)
    finally:
        if proc.poll() is None:
            proc.kill()
            ended["stopped"] = "sigkill"
        proc.wait()
        # a program that was there before xdpsock started is not its own
        if ifname and before is None:
            ended["xdp_detached"] = detach_xdp(ifname)
        if ended.pop("_final", None) is not None:
            emit({**ended.pop("final_event"), **ended})


def stop(proc, ended: dict, grace: float = STOP_GRACE_S) -> None:
    """SIGINT (xdpsock prints a last block and deletes its socket, but only
    after one more packet in -p mode), then SIGKILL after `grace`."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    ended["stopped"] = "sigint"
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        ended["stopped"] = "sigkill"


def run(proc, blocks: Blocks, reader: threading.Thread, sigs: set, deadline: float,
        ended: dict) -> int:
    blocks.first.wait(30)
    first = blocks.snapshot("ready")
    if first is None:
        proc.wait(timeout=10) if proc.poll() is None else None
        text = " | ".join(ln.strip() for ln in blocks.lines if ln.strip())[-400:]
        kind = "unsupported" if UNSUPPORTED.search(text) else "failed"
        emit({"event": "error", "kind": kind,
              "reason": f"xdpsock printed no statistics (exit {proc.returncode}): {text}"})
        return 3 if kind == "unsupported" else 1
    emit(first)
    while True:
        left = deadline - time.monotonic()
        sig = signal.sigtimedwait(sigs, max(0.0, min(left, 0.2))) if left > 0 else None
        if sig is not None and sig.si_signo == signal.SIGUSR1:
            emit(blocks.snapshot("snapshot"))
            continue
        if sig is None and left > 0 and proc.poll() is None:
            continue
        stop(proc, ended)
        reader.join(5)
        # emitted by main() once the interface is clean, with how it ended
        ended["final_event"] = blocks.snapshot("final")
        ended["_final"] = 1
        ok = proc.returncode in (0, -signal.SIGINT) or ended["stopped"] == "sigkill"
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
