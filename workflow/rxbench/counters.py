"""The counters readers of a cell: one rxb-counters (native/rxb_counters.c)
per side, in that side's network namespace, for the cell's life; and the
snapshots of SEAMS section 4, every side's reader and tool asked at once so
that each host's counters and tool share one moment:

    {"sender": {"counters": ..., "tool": ..., "ifname": ...}, "receiver": {...}}
"""

from __future__ import annotations

import signal

from .analysis import side_snapshot
from .proc import Tool
from .stacks import native_tool

READY_TIMEOUT_S = 10.0
LOG_LINE_LIMIT = 400      # a snapshot line is ~10 KB: the result keeps it, the log a head


def napi_prefix(ifname: str) -> str:
    """The names of an interface's NAPI kthreads ("napi/IF-ID"), as far as
    the kernel's 15-character thread names keep them."""
    return f"napi/{ifname}"[:15]


class Readers:
    """Start readers with start(); snapshot() asks them and the tools;
    leaving the context stops every reader (whatever happened)."""

    def __init__(self, tb, log, commands: list[str], tools: dict, bound_s: float):
        self.tb, self.commands, self.bound_s = tb, commands, bound_s
        self.log = lambda m: log(m if len(m) <= LOG_LINE_LIMIT
                                 else f"{m[:LOG_LINE_LIMIT]} ... ({len(m)} chars)")
        self.readers: dict[str, Tool] = {}
        tools["rxb-counters"] = native_tool("rxb-counters")

    def __enter__(self) -> "Readers":
        return self

    def __exit__(self, *exc) -> None:
        for t in self.readers.values():
            t.stop(signal.SIGTERM)

    def start(self, side, pid: int | None, comm_prefix: str | None = None) -> Tool:
        """A reader of side's test interface, the process tree of its tool
        (pid: the wrapper's, the real tool under it included) and the kernel
        threads named comm_prefix*. SCHED_FIFO: on the saturated CPUs it
        measures, its snapshot is one moment."""
        argv = [native_tool("rxb-counters"), "--ifname", side.ifname,
                "--duration", f"{self.bound_s:.3f}", "--rt-priority", "1"]
        if pid:
            argv += ["--pid", str(pid)]
        if comm_prefix:
            argv += ["--comm-prefix", comm_prefix]
        t = Tool(f"{side.role}-counters", side.exec(argv), self.log, self.tb.registry,
                 name="rxb-counters")
        self.readers[side.role] = t
        self.commands.append(t.command)
        t.start()
        t.wait_event("ready", READY_TIMEOUT_S)
        return t

    def snapshot(self, tools: dict[str, Tool | None], timeout: float = 3.0) -> dict:
        """{role: tool or None (a tool without snapshots: iperf3)} -> the
        section-4 snapshot of every side."""
        asked = {}
        for role, tool in tools.items():
            for t in (self.readers[role], tool):
                if t is not None:
                    asked[id(t)] = len(t.events)
                    t.send(signal.SIGUSR1)
        out = {}
        for role, tool in tools.items():
            reader = self.readers[role]
            side = self.tb.sender if role == "sender" else self.tb.receiver
            out[role] = side_snapshot(
                reader.wait_event("snapshot", timeout, after=asked[id(reader)]),
                tool.wait_event("snapshot", timeout, after=asked[id(tool)]) if tool else None,
                side.ifname)
        return out
