"""Benchmark tools as processes on a host (rxbench.hosts.tool): re-exported
here, where the runner and the benchmarks have always found them."""

from .hosts.tool import TERM_SIGNALS, Tool, ToolError, ToolExited

__all__ = ["TERM_SIGNALS", "Tool", "ToolError", "ToolExited"]
