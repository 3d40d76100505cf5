"""What the runner returns for one cell: one record of what it measured (the
result's fields, its status and reason) and of what ran where (the commands
in order, the tools, the testbed's facts). The record is filled as the cell
goes, so a failed cell's provenance still says what ran where."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

from . import RxbenchError
from .platforms.base import PreflightError
from .stacks.base import Unsupported


@dataclass
class Measured:
    generator: str                      # the sender the cell was measured with
    status: str = "ok"                  # ok | unsupported | failed
    reason: str = ""
    fields: dict = field(default_factory=dict)      # the analysis: rates, drops, CPU, counters
    commands: list[str] = field(default_factory=list)   # every command of the cell, in order
    tools: dict[str, str] = field(default_factory=dict)  # tool -> its path on its host
    tool_info: dict[str, dict] = field(default_factory=dict)  # tool -> {path, sha256} there
    hosts: dict = field(default_factory=dict)       # sender/receiver: host, netns, interface
    nic_driver: str = "n/a"
    nic_setup: dict = field(default_factory=dict)   # what the NIC accepted (zcrx, DPDK binding)
    host_probe: dict = field(default_factory=dict)  # the testbed's, before the cell ({}: none)
    platform: dict | None = None        # the testbed's provenance (remote hosts' facts)

    def __post_init__(self):
        self._tb = None

    def on(self, tb):
        """Measure on testbed tb: its command log is the cell's, its facts
        are taken at the end; the testbed's host probe (where it means
        something) runs now, before anything of the cell."""
        self._tb = tb
        self.commands = tb.commands
        self.host_probe = tb.host_probe()
        return tb

    def describe(self, tb, **receiver) -> None:
        """The testbed's facts once it is up: both sides, the NIC's driver."""
        self.hosts = {"sender": tb.describe(tb.sender),
                      "receiver": {**tb.describe(tb.receiver), **receiver}}
        self.nic_driver = tb.driver(tb.receiver)

    @contextmanager
    def outcome(self):
        """The cell's body: what it raises is its status (Unsupported:
        unsupported; any other RxbenchError or OSError: failed, with the
        reason); a pre-flight failure (no cell can run) and an interruption
        go on up. The testbed's facts are taken at the end."""
        try:
            yield self
        except Unsupported as e:
            self.status, self.reason = "unsupported", str(e)
        except PreflightError:
            raise
        except (RxbenchError, OSError) as e:
            self.status, self.reason = "failed", str(e)
        tb = self._tb
        if tb is not None:
            self.platform = tb.provenance()
            self.tool_info = {name: tb.tool_info(name, path) for name, path in self.tools.items()}
