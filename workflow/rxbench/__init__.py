"""rxbench: packet-reception benchmarks (AF_XDP, DPDK, epoll, io_uring) as a
reproducible Snakemake artifact. The Snakefile's rules call this package."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The checkout: Snakefile, config/, native/, results/ live here."""

__version__ = "0.1.0"


class RxbenchError(Exception):
    """An error the user can act on; its message is shown as one line."""


class TestbedError(RxbenchError):
    """The testbed cannot do what a cell asks (hosts, links, queues, CPUs)."""
