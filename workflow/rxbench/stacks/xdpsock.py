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
"rx_fill_ring_empty"} of the FIRST block printed after the request (up to
one interval later; its t_ns says when it was printed). Not the newest
block at the request: that one can be an interval old, and with a short
warm-up (smoke: 0.5 s) a window's first snapshot would then be the block
printed before the traffic started. When no block follows within
SNAPSHOT_WAIT_S (xdpsock stalled or ending) the newest is sent, marked
"stale": true. {"event": "final"} when xdpsock ends (its duration, or
SIGTERM passed on).

Memlock: xdpsock calls setrlimit(RLIMIT_MEMLOCK, unlimited) and exits
when that is refused. The wrapper first raises the limit itself (as root
with CAP_SYS_RESOURCE: what a user's machine has). Where root cannot
(a container or VM that drops CAP_SYS_RESOURCE), the limit does not matter
on kernels >= 5.11 with CAP_IPC_LOCK (BPF memory is charged to the memory
cgroup, and UMEM pinning is not counted for CAP_IPC_LOCK), so xdpsock runs
with MEMLOCK_SHIM (built by `make tools` beside xdpsock) preloaded, which
turns only that refusal into success, and the ready line says so
("memlock"); without the shim, or on an older kernel, or without
CAP_IPC_LOCK, xdpsock's own refusal makes an `unsupported` error line,
led by one line saying why root cannot. xdpsock failing before its first block is an error line:
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
SNAPSHOT_WAIT_S = 2.5     # a block is printed every -n 1 s; the runner waits 3 s
MEMLOCK_SHIM = "rxb-memlock-shim.so"   # in ../lib/rxbench/ of xdpsock's bin/
CAP_IPC_LOCK = 14
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

    def newer_than(self, t_ns: int) -> bool:
        """A complete block printed after `t_ns` is there."""
        with self.lock:
            return self.latest is not None and self.latest["t_ns"] > t_ns

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


def _has_cap(bit: int) -> bool:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> bit & 1)
    return False


def memlock(cmd: list[str]) -> tuple[dict, str | None, str | None]:
    """Make RLIMIT_MEMLOCK what xdpsock needs. Returns (extra environment,
    how it was done or None, and when it could not be, the one-line reason
    (xdpsock is run all the same: its own refusal then makes the error
    line, with this reason in front))."""
    import resource
    inf = resource.RLIM_INFINITY
    try:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (inf, inf))
        return {}, "raised to unlimited", None
    except (ValueError, OSError):
        pass
    hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
    cannot = (f"root cannot raise RLIMIT_MEMLOCK here (no CAP_SYS_RESOURCE, hard limit "
              f"{hard // 1024 if hard != inf else 'unlimited'} KiB) and xdpsock insists on unlimited")
    release = tuple(int(x) for x in re.findall(r"\d+", os.uname().release)[:2])
    if release < (5, 11):
        return {}, None, f"{cannot}; kernel {os.uname().release} < 5.11 still charges BPF to memlock"
    if not _has_cap(CAP_IPC_LOCK):
        return {}, None, f"{cannot}; without CAP_IPC_LOCK the UMEM counts against it too"
    import shutil
    exe = shutil.which(next((c for c in cmd if "xdpsock" in os.path.basename(c)), cmd[0])) or ""
    shim = os.path.join(os.path.dirname(os.path.realpath(exe)), "..", "lib", "rxbench", MEMLOCK_SHIM)
    if not os.path.exists(shim):
        return {}, None, f"{cannot}; {MEMLOCK_SHIM} (built by `make tools`) is not beside {exe or cmd[0]}"
    pre = os.environ.get("LD_PRELOAD", "")
    return ({"LD_PRELOAD": os.path.normpath(shim) + (" " + pre if pre else "")},
            f"kept at {hard // 1024} KiB: xdpsock's setrlimit refusal made non-fatal by {MEMLOCK_SHIM} "
            f"(kernel >= 5.11 charges BPF to memcg; CAP_IPC_LOCK exempts the UMEM)", None)


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
    extra, how, why_not = memlock(cmd)
    before = xdp_attached(ifname) if ifname else None
    sigs = TERM | {signal.SIGUSR1}
    signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1, env={**os.environ, "LC_ALL": "C", **extra},
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
        return run(proc, blocks, t, sigs, time.monotonic() + a.duration, ended, memlock=how,
                   memlock_note=why_not)
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
        ended: dict, memlock: str | None = None, memlock_note: str | None = None) -> int:
    blocks.first.wait(30)
    first = blocks.snapshot("ready")
    if first is not None and memlock:
        first["memlock"] = memlock
    if first is None:
        proc.wait(timeout=10) if proc.poll() is None else None
        text = " | ".join(ln.strip() for ln in blocks.lines if ln.strip())[-400:]
        kind = "unsupported" if UNSUPPORTED.search(text) else "failed"
        why = f"{memlock_note}: " if memlock_note and "RLIMIT_MEMLOCK" in text else ""
        emit({"event": "error", "kind": kind,
              "reason": f"{why}xdpsock printed no statistics (exit {proc.returncode}): {text}"})
        return 3 if kind == "unsupported" else 1
    emit(first)
    asked: list[int] = []        # monotonic ns of the snapshot requests not yet answered
    while True:
        while asked and (blocks.newer_than(asked[0]) or not reader.is_alive()
                         or time.monotonic_ns() - asked[0] > SNAPSHOT_WAIT_S * 1e9):
            snap = blocks.snapshot("snapshot")
            if snap["t_ns"] <= asked.pop(0):
                snap["stale"] = True
            emit(snap)
        left = deadline - time.monotonic()
        wait = 0.02 if asked else 0.2
        sig = signal.sigtimedwait(sigs, max(0.0, min(left, wait))) if left > 0 else None
        if sig is not None and sig.si_signo == signal.SIGUSR1:
            asked.append(time.monotonic_ns())
            continue
        if sig is None and left > 0 and proc.poll() is None:
            continue
        for _ in asked:          # ending: answer what is pending with the newest block
            emit({**blocks.snapshot("snapshot"), "stale": True})
        asked.clear()
        stop(proc, ended)
        reader.join(5)
        # emitted by main() once the interface is clean, with how it ended
        ended["final_event"] = blocks.snapshot("final")
        ended["_final"] = 1
        ok = proc.returncode in (0, -signal.SIGINT) or ended["stopped"] == "sigkill"
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
