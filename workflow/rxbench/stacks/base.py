"""What every receiver and generator has in common."""

from __future__ import annotations

from .. import RxbenchError
from ..hosts.netns import NATIVE_BUILD  # noqa: F401 (re-exported)


class Unsupported(RxbenchError):
    """This platform cannot run the cell; the result says why."""


def native_tool(name: str) -> str:
    """Path of a native tool on this machine (hosts.netns.native_tool)."""
    from ..hosts.netns import native_tool as local
    return local(name)


def kernel_config() -> dict[str, str]:
    """The running kernel's configuration, from /proc/config.gz (or /boot)."""
    from ..hosts.netns import local_kernel_config
    return local_kernel_config()


def require_kernel(*options: str, host=None) -> None:
    """Raise Unsupported naming the first kernel option that is missing on
    the host (this machine without one). Without a readable kernel config,
    trust the tools to fail clearly."""
    if host is None:
        from ..hosts import NetnsHost
        host = NetnsHost("local", None, None)
    have = host.kernel_options(tuple(options))
    if not have:
        return
    for opt in options:
        if have.get(opt) not in ("y", "m"):
            where = f"{host.role} {host.key}: " if not host.shared_kernel else ""
            raise Unsupported(f"{where}kernel {host.facts()['kernel'].split()[0]} lacks {opt}")


class Tooled:
    name = ""
    tool = ""
    kernel_options: tuple[str, ...] = ()

    def __init__(self, cfg: dict, cell, testbed, placement):
        self.cfg, self.cell, self.tb, self.placement = cfg, cell, testbed, placement
        # a slow testbed (TCG guests) gives every tool more time to say ready
        self.ready_timeout = type(self).ready_timeout + getattr(testbed, "slack_s", 0.0)

    side = "receiver"       # the testbed side whose host runs the tool
    # does its tool attach XDP programs to its side's test interface (a
    # wrapper's PMD too)? On a host that outlives the cell, teardown then
    # detaches whatever is left
    attaches_xdp = False

    @property
    def host(self):
        return getattr(self.tb, self.side).host

    def probe(self) -> None:
        require_kernel(*self.kernel_options, host=self.host)

    def which(self, tool: str) -> str | None:
        return self.host.which(tool)

    def binary(self) -> str:
        return self.host.native(self.tool)


class Receiver(Tooled):
    """Receives and drops; counts what it got. Its tool prints `ready`,
    `snapshot` (on SIGUSR1) and `final` JSON lines with packets/bytes and
    t_ns (CLOCK_MONOTONIC), or an `error` line with kind `unsupported`."""

    ready_timeout = 15.0
    attaches_xdp = True

    def argv(self, bound_s: float) -> list[str]:
        raise NotImplementedError

    def received(self, snap: dict) -> int:
        return int(snap["packets"])

    def verdict_drops(self, a: dict, b: dict, driver: str | None) -> int:
        """Frames this receiver got that the driver counts as rx_dropped too
        (an XDP program's XDP_DROP on some drivers): 0 for most."""
        return 0

    def polls(self) -> bool:
        """Does it busy-poll (keep its core at 100 % whatever the load)?"""
        return False

    def stage_drops(self, a: dict, b: dict) -> dict:
        """Losses the tool itself can see (socket/ring counters), as
        {stage: count} over the interval between snapshots a and b."""
        return {}

    def prepare(self) -> dict:
        """Set the testbed up for this receiver before it starts (the
        testbed is up); returns what was set, recorded in the result as
        nic_setup. Default: nothing."""
        return {}

    # does it bring its own sender (iperf3's client) instead of the layer's?
    own_sender = False

    def verify(self, out: dict) -> None:
        """Check the cell's analysed record against the tools' own counts
        (raise RxbenchError: the cell is failed). Default: nothing to check."""


class Generator(Tooled):
    """Sends for a bounded time and count; reports what it sent."""

    side = "sender"
    ready_timeout = 10.0
    # True: a frame the sender's veth refuses (its peer's ring is full) is
    # sent again, so it is back-pressure; False: it is lost, and counted as
    # a drop stage (sender_veth_refused)
    retries_refused = True
    # True: the generator busy-polls its core whatever the load (a DPDK
    # lcore), so a busy generator CPU says nothing about its limit
    polls_core = False

    def argv(self, bound_s: float) -> list[str]:
        raise NotImplementedError

    def sent(self, snap: dict) -> int:
        return int(snap["packets"])
