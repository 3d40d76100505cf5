"""Benchmark tools as long-running processes on a host: their JSON-lines
output parsed as it arrives and copied into the cell's log, snapshots asked
for with SIGUSR1, stopped (signal, grace, kill) when they overstay. Where
and how the process runs (a local namespace, a remote host over SSH) is
the host's business (Host.popen/signal/kill)."""

from __future__ import annotations

import json
import os
import select
import shlex
import signal
import subprocess
import threading
import time

from .. import RxbenchError

TERM_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
DEFAULT_BOUND_S = 3600.0


def wait_exit(p, timeout: float) -> bool | None:
    """Wait for a local child to exit, woken the moment it does (a pidfd),
    not by Popen.wait's polling, whose sleeps grow to 50 ms: a cell stops
    several tools one after the other. Whether it exited within timeout;
    None (and nothing waited) where there is no pidfd: the caller then
    falls back to Popen.wait."""
    if not isinstance(p, subprocess.Popen) or not hasattr(os, "pidfd_open"):
        return None
    if p.poll() is not None:
        return True
    try:
        fd = os.pidfd_open(p.pid)
    except OSError:
        return None
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + timeout
        while p.poll() is None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            poller.poll(left * 1000)
    finally:
        os.close(fd)
    return p.poll() is not None


class ToolError(RxbenchError):
    pass


class ToolExited(ToolError):
    """The tool ended while we waited for something from it."""

    def __init__(self, tool, waited_for):
        self.tool = tool
        err = tool.last_error()
        lost = tool.host.lost(tool.returncode)
        super().__init__(f"{tool.role} ({tool.name}) exited with status {tool.returncode} "
                         f"while waiting for {waited_for}" + (f": {lost}" if lost else "")
                         + (f": {err}" if err else ""))


class Tool:
    def __init__(self, role: str, argv: list[str], log, registry=None, name: str = "",
                 host=None, bound_s: float | None = None):
        from .netns import NetnsHost
        self.role, self.argv, self.log = role, list(argv), log
        self.host = host or getattr(argv, "host", None) or NetnsHost("local", None, registry)
        # on its host, the tool is killed this long after it starts whatever
        # happens to us (the tools' own --duration is shorter)
        self.bound_s = bound_s or DEFAULT_BOUND_S
        self.name = name or os.path.basename(self.argv[0])
        self.events: list[dict] = []
        self.stderr: list[str] = []
        self.cond = threading.Condition()
        self.p: subprocess.Popen | None = None
        self.threads: list[threading.Thread] = []
        self.remote: dict = {}           # what the host said about the process (pid)

    @property
    def command(self) -> str:
        return shlex.join(self.argv)

    @property
    def pid(self) -> int | None:
        return self.host.pid(self)

    def start(self) -> "Tool":
        self.log(f"[{self.role}@{self.host.key}] $ {self.command}")
        self.p = self.host.popen(self.argv, self.bound_s)
        for stream, fn in ((self.p.stdout, self._on_stdout), (self.p.stderr, self._on_stderr)):
            t = threading.Thread(target=self._pump, args=(stream, fn), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def _pump(self, stream, fn) -> None:
        # termination signals must reach the main thread, which may be asleep
        # in time.sleep(): a signal delivered to this thread would not wake it
        signal.pthread_sigmask(signal.SIG_BLOCK, TERM_SIGNALS)
        for line in stream:
            fn(line.rstrip("\n"))
        with self.cond:
            self.cond.notify_all()

    def _on_stdout(self, line: str) -> None:
        try:
            ev = json.loads(line)
        except ValueError:
            ev = None
        if isinstance(ev, dict) and self.host.on_event(self, ev):
            with self.cond:
                self.cond.notify_all()
            return
        self.log(f"[{self.role}] {line}")
        if isinstance(ev, dict):
            with self.cond:
                self.events.append(ev)
                self.cond.notify_all()

    def _on_stderr(self, line: str) -> None:
        self.log(f"[{self.role}!] {line}")
        with self.cond:
            self.stderr.append(line)

    @property
    def returncode(self):
        return None if self.p is None else self.p.poll()

    def last_error(self) -> str:
        for ev in reversed(self.events):
            if ev.get("event") == "error":
                return ev.get("reason", "")
        return self.stderr[-1] if self.stderr else ""

    def find(self, name: str, after: int = 0):
        for ev in self.events[after:]:
            if ev.get("event") == name:
                return ev
        return None

    def wait_event(self, name: str, timeout: float, after: int = 0) -> dict:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                ev = self.find(name, after)
                if ev is not None:
                    return ev
                if self.p.poll() is not None and all(not t.is_alive() for t in self.threads):
                    raise ToolExited(self, f"its '{name}' line")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ToolError(f"{self.role} ({self.name}) printed no '{name}' line "
                                    f"within {timeout:.0f} s")
                self.cond.wait(min(left, 0.1))

    def snapshot(self, timeout: float = 3.0) -> dict:
        n = len(self.events)
        self.send(signal.SIGUSR1)
        return self.wait_event("snapshot", timeout, after=n)

    def send(self, sig) -> None:
        self.host.signal(self, sig)

    def _wait(self, timeout: float) -> bool:
        done = wait_exit(self.p, timeout)
        if done is not None:
            return done
        try:
            self.p.wait(max(0.0, timeout))
            return True
        except subprocess.TimeoutExpired:
            return False

    def stop(self, sig=signal.SIGTERM, timeout: float = 5.0) -> int | None:
        """Ask the tool to end; kill it if it overstays."""
        if self.p is None:
            return None
        if self.p.poll() is None:
            self.send(sig)
            if not self._wait(timeout):
                self.log(f"[{self.role}] still running {timeout:.0f} s after {sig.name}: killing")
                self.kill()
        for t in self.threads:
            t.join(2)
        return self.p.returncode

    def wait(self, timeout: float) -> int | None:
        """Wait for the tool to end by itself; kill it if it overstays."""
        if not self._wait(timeout):
            self.log(f"[{self.role}] overstayed its bound by {timeout:.0f} s: killing")
            self.kill()
        for t in self.threads:
            t.join(2)
        return self.p.returncode

    def kill(self) -> None:
        self.host.kill(self)
