"""/proc/net/softnet_stat: per-CPU backlog counters (packets processed,
dropped at netdev_max_backlog, time squeezes of net_rx_action, packets
received by RPS). One reader, so it is easy to swap for the counters
reader's (rxb-counters) parser when that lands. The file is machine-wide
(not per network namespace)."""

from __future__ import annotations

from pathlib import Path

# columns (hex) as the kernel prints them (net/core/net-procfs.c)
FIELDS = {0: "processed", 1: "dropped", 2: "time_squeeze", 9: "received_rps",
          10: "flow_limit_count"}
CPU_COLUMN = 12       # the CPU a row belongs to, since Linux 5.10


def parse(text: str) -> dict[str, dict[str, int]]:
    """{cpu: {field: count}}; rows without a CPU column are numbered in order
    (older kernels skip offline CPUs, so that numbering is only a guess)."""
    out = {}
    for i, line in enumerate(text.split("\n")):
        cols = line.split()
        if not cols:
            continue
        cpu = int(cols[CPU_COLUMN], 16) if len(cols) > CPU_COLUMN else i
        out[str(cpu)] = {name: int(cols[c], 16) for c, name in FIELDS.items() if c < len(cols)}
    return out


def read(path: str = "/proc/net/softnet_stat") -> dict[str, dict[str, int]]:
    return parse(Path(path).read_text())


def delta(a: dict, b: dict) -> dict[str, dict[str, int]]:
    """Per-CPU differences b - a (the counters are 32-bit: wrap-around
    corrected)."""
    out = {}
    for cpu, fb in b.items():
        fa = a.get(cpu, {})
        out[cpu] = {k: (v - fa.get(k, 0)) % (1 << 32) for k, v in fb.items()}
    return out
