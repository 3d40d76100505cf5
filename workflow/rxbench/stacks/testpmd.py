"""dpdk-testpmd behind the JSON-lines protocol of the native tools.

    python -m rxbench.stacks.testpmd --duration S [--runtime-dir D] -- <testpmd command...>

The command must start testpmd interactively (`-i`, without --auto-start)
with `--forward-mode=rxonly`. This wrapper talks to its prompt: it says
`start`, and once the port forwards it prints {"event": "ready"}; on SIGUSR1 it asks for `show port
xstats all` and prints {"event": "snapshot", "t_ns", "packets", "bytes",
"imissed", "ierrors", "nombuf", "xstats"}; on SIGINT/SIGTERM/SIGHUP or
after --duration seconds it takes a last snapshot, stops forwarding, quits
testpmd and prints {"event": "final", ...}. t_ns is CLOCK_MONOTONIC halfway
between asking and the answer (testpmd reads the counters in between).

A poll-mode driver that cannot attach (no AF_XDP support, interface
refused) gives {"event": "error", "kind": "unsupported", "reason"} and
exit 3; anything else that ends testpmd early is exit 1. The EAL runtime
directory (--runtime-dir, /var/run/dpdk/<file-prefix>) is removed at exit.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

PROMPT = b"testpmd> "
EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_UNSUPPORTED = 0, 1, 2, 3
TERM = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
# testpmd/EAL lines that mean the driver cannot work on this interface
UNSUPPORTED = re.compile(
    r"(Driver cannot attach the device|Failed to create xsk socket|"
    r"xdp_umem_configure|Failed to (configure|init) (xdp|internals)|"
    r"Invalid port|No probed ethernet devices|Couldn't find device|"
    r"not supported|Operation not supported)", re.I)
_XSTAT = re.compile(r"^([A-Za-z0-9_]+): (\d+)$", re.M)


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


class Prompt:
    """Reads testpmd's output; hands back what it printed before each prompt."""

    def __init__(self, proc: subprocess.Popen, log):
        self.proc, self.log = proc, log
        self.buf = b""
        self.chunks: list[bytes] = []
        self.eof = False
        self.cv = threading.Condition()
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self) -> None:
        fd = self.proc.stdout.fileno()
        while True:
            data = os.read(fd, 65536)
            if data:
                self.log.write(data)
                self.log.flush()
            with self.cv:
                if not data:
                    self.eof = True
                    self.cv.notify_all()
                    return
                self.buf += data
                while PROMPT in self.buf:
                    head, self.buf = self.buf.split(PROMPT, 1)
                    self.chunks.append(head)
                    self.cv.notify_all()

    def wait(self, timeout: float) -> bytes | None:
        """Text up to the next prompt; None on EOF or timeout."""
        end = time.monotonic() + timeout
        with self.cv:
            while not self.chunks:
                left = end - time.monotonic()
                if self.eof or left <= 0:
                    return None
                self.cv.wait(left)
            return self.chunks.pop(0)

    def pending(self) -> bytes:
        with self.cv:
            return b"".join(self.chunks) + self.buf

    def command(self, cmd: str, timeout: float = 10.0) -> bytes | None:
        try:
            self.proc.stdin.write(cmd.encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            return None
        return self.wait(timeout)


def parse_xstats(text: str) -> dict:
    """`show port xstats all` -> {name: value}, summed over ports."""
    out: dict[str, int] = {}
    for name, value in _XSTAT.findall(text):
        out[name] = out.get(name, 0) + int(value)
    return out


def snapshot(prompt: Prompt, event: str) -> dict | None:
    t0 = time.monotonic_ns()
    text = prompt.command("show port xstats all")
    t1 = time.monotonic_ns()
    if text is None:
        return None
    x = parse_xstats(text.decode(errors="replace"))
    if "rx_good_packets" not in x:
        return None
    return {"event": event, "t_ns": (t0 + t1) // 2, "ask_ns": t1 - t0,
            "packets": x["rx_good_packets"], "bytes": x.get("rx_good_bytes", 0),
            "tx_packets": x.get("tx_good_packets", 0), "tx_bytes": x.get("tx_good_bytes", 0),
            "imissed": x.get("rx_missed_errors", 0), "ierrors": x.get("rx_errors", 0),
            "nombuf": x.get("rx_mbuf_allocation_errors", 0), "xstats": x}


def reason_from(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if UNSUPPORTED.search(ln)]
    return "; ".join(dict.fromkeys(lines))[:500]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rxbench.stacks.testpmd", description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, required=True,
                    help="quit testpmd this many seconds after forwarding started (a bound; "
                         "start-up is bounded on its own)")
    ap.add_argument("--runtime-dir", help="EAL runtime directory to remove at exit")
    ap.add_argument("--log", help="append testpmd's own output here (default: stderr)")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd or a.duration <= 0:
        ap.error("need --duration > 0 and a testpmd command after --")
    sigs = TERM | {signal.SIGUSR1}
    signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    log = open(a.log, "ab") if a.log else sys.stderr.buffer
    try:
        # the child must not inherit our blocked signals
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT,
                                preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_UNBLOCK, sigs))
    except OSError as e:
        emit({"event": "error", "kind": "unsupported" if isinstance(e, FileNotFoundError)
              else "failed", "reason": f"cannot run {cmd[0]}: {e.strerror}"})
        return EXIT_UNSUPPORTED if isinstance(e, FileNotFoundError) else EXIT_FAIL
    prompt = Prompt(proc, log)
    try:
        return run(proc, prompt, sigs, a.duration)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if a.runtime_dir:
            shutil.rmtree(a.runtime_dir, ignore_errors=True)


def run(proc, prompt: Prompt, sigs: set, duration: float) -> int:
    first = prompt.wait(60.0)      # EAL init with --no-huge takes a few seconds
    if first is None:
        text = prompt.pending().decode(errors="replace")
        proc.wait(timeout=5) if proc.poll() is None else None
        why = reason_from(text)
        if why:
            emit({"event": "error", "kind": "unsupported", "reason": f"dpdk-testpmd: {why}"})
            return EXIT_UNSUPPORTED
        tail = " | ".join(text.strip().splitlines()[-3:])
        emit({"event": "error", "kind": "failed",
              "reason": f"dpdk-testpmd ended before its prompt (exit {proc.returncode}): {tail}"})
        return EXIT_FAIL
    started = prompt.command("start", 30.0)
    text = first.decode(errors="replace") + (started or b"").decode(errors="replace")
    if started is None or "forwards packets" not in text:
        why = reason_from(text) or " | ".join(text.strip().splitlines()[-3:])
        emit({"event": "error", "kind": "unsupported", "reason": f"dpdk-testpmd: {why}"})
        prompt.command("quit", 10.0)
        return EXIT_UNSUPPORTED
    base = snapshot(prompt, "ready")
    if base is None:
        emit({"event": "error", "kind": "failed", "reason": "dpdk-testpmd gave no port xstats"})
        return EXIT_FAIL
    emit(base)
    deadline = time.monotonic() + duration
    while True:
        left = deadline - time.monotonic()
        sig = signal.sigtimedwait(sigs, max(0.0, left)) if left > 0 else None
        if proc.poll() is not None:
            emit({"event": "error", "kind": "failed",
                  "reason": f"dpdk-testpmd exited early with {proc.returncode}"})
            return EXIT_FAIL
        if sig is not None and sig.si_signo == signal.SIGUSR1:
            snap = snapshot(prompt, "snapshot")
            if snap is None:
                emit({"event": "error", "kind": "failed", "reason": "dpdk-testpmd stopped answering"})
                return EXIT_FAIL
            emit(snap)
            continue
        final = snapshot(prompt, "final")
        prompt.command("stop", 10.0)
        prompt.command("quit", 0.0)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        if final is None:
            emit({"event": "error", "kind": "failed", "reason": "dpdk-testpmd gave no final xstats"})
            return EXIT_FAIL
        emit(final)
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
