"""Counters read from the kernel: per-CPU time (/proc/stat), per-process
CPU time, link statistics (ip -s -j link) and driver statistics (ethtool -S)."""

from __future__ import annotations

import json
import os

from . import RxbenchError

HZ = os.sysconf("SC_CLK_TCK")
_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def parse_proc_stat(text: str) -> dict[str, list[int]]:
    """Per-CPU tick counters: {"0": [user, nice, system, idle, iowait, irq, softirq, steal]}."""
    out = {}
    for line in text.splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            name, *vals = line.split()
            out[name[3:]] = [int(v) for v in vals[:len(_FIELDS)]]
    return out


def read_proc_stat(host=None) -> dict[str, list[int]]:
    """Per-CPU ticks of the host's kernel (this machine's without one)."""
    if host is None:
        from .hosts import NetnsHost
        host = NetnsHost("local", None, None)
    return parse_proc_stat(host.read_file("/proc/stat") or "")


def cpu_delta(a: dict, b: dict, hz: int = HZ) -> dict:
    """Seconds per CPU between two /proc/stat readings."""
    out = {}
    for cpu in sorted(b, key=int):
        d = dict(zip(_FIELDS, (y - x for x, y in zip(a[cpu], b[cpu]))))
        total = sum(d.values())
        idle = d["idle"] + d["iowait"]
        out[cpu] = {
            "busy_s": (total - idle) / hz,
            "user_s": (d["user"] + d["nice"]) / hz,
            "sys_s": d["system"] / hz,
            "softirq_s": d["softirq"] / hz,
            "irq_s": d["irq"] / hz,
            "idle_s": idle / hz,
            "busy_frac": round((total - idle) / total, 4) if total else 0.0,
        }
    return out


def parse_proc_pid_stat(data: str | None) -> dict | None:
    """utime+stime of one process (seconds) and the CPU it last ran on,
    from the text of /proc/PID/stat (None: the process is gone)."""
    if not data:
        return None
    fields = data[data.rindex(")") + 2:].split()
    return {"user_s": int(fields[11]) / HZ, "sys_s": int(fields[12]) / HZ,
            "last_cpu": int(fields[36])}


def parse_link_json(text: str) -> dict:
    """Flatten `ip -s -j link show dev IF` into {rx_packets, rx_dropped, ...}."""
    data = json.loads(text)[0]
    out = {}
    stats = data.get("stats64") or data.get("stats") or {}
    for direction in ("rx", "tx"):
        for k, v in stats.get(direction, {}).items():
            out[f"{direction}_{k}"] = v
    return out


LINK_STATS = ["ip", "-s", "-j", "link", "show", "dev"]      # + ifname
ETHTOOL_STATS = ["ethtool", "-S"]                           # + ifname
NSTAT = ["nstat", "-asz", "--json"]      # absolute TCP counters, no history file


def link_stats(host, ifname: str) -> dict:
    return parse_link_json(host.run([*LINK_STATS, ifname]))


def parse_ethtool_stats(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines()[1:]:
        if ":" in line:
            k, v = line.rsplit(":", 1)
            try:
                out[k.strip()] = int(v)
            except ValueError:
                pass
    return out


def ethtool_stats(host, ifname: str) -> dict[str, int]:
    return parse_ethtool_stats(host.run([*ETHTOOL_STATS, ifname], check=False))


class MissingCounter(RxbenchError):
    """A counter present at one end of a window and not at the other."""


def delta(a: dict, b: dict, what: str = "counters") -> dict:
    """b - a for every numeric counter; a counter missing at either end is
    an error (a failed read must not turn absolute values into deltas)."""
    num_a = {k for k, v in a.items() if isinstance(v, (int, float))}
    num_b = {k for k, v in b.items() if isinstance(v, (int, float))}
    missing = sorted(num_a ^ num_b)
    if missing:
        raise MissingCounter(f"{what}: {', '.join(missing[:8])}"
                             f"{' ...' if len(missing) > 8 else ''} read at only one end "
                             f"of the window")
    return {k: b[k] - a[k] for k in num_b}


# TCP counters (nstat) that say where bytes were lost or sent again
TCP_COUNTERS = {
    "TcpRetransSegs": "tcp_retrans_segs",
    "TcpExtTCPLostRetransmit": "tcp_lost_retransmit",
    "TcpExtTCPRcvQDrop": "tcp_rcvq_drop",
    "TcpExtTCPBacklogDrop": "tcp_backlog_drop",
    "TcpExtTCPOFODrop": "tcp_ofo_drop",
    "TcpExtTCPZeroWindowDrop": "tcp_zero_window_drop",
    "TcpExtListenDrops": "tcp_listen_drops",
    "TcpExtListenOverflows": "tcp_listen_overflows",
}


def parse_nstat_json(text: str) -> dict[str, int]:
    """Every Tcp*/TcpExt* counter, absolute."""
    data = json.loads(text or "{}").get("kernel", {})
    return {k: int(v) for k, v in data.items() if k.startswith("Tcp")}


def tcp_drops(counters: dict[str, int]) -> dict[str, int]:
    """The loss-related subset, under short names."""
    return {short: int(counters.get(name, 0)) for name, short in TCP_COUNTERS.items()}


def nstat(host) -> dict[str, int]:
    """Absolute TCP counters of a host (nstat -a: no history file kept)."""
    return parse_nstat_json(host.run(NSTAT, check=False))


# steady state of a cell: computed in the cell (stats.py re-exports it)
STEADY_DRIFT = 0.05       # a cell whose per-second rate drifts more than this is not steady


def steady_state(series: list[dict], key: str = "packets",
                 max_drift: float = STEADY_DRIFT) -> dict:
    """Per-interval rates from a time series of cumulative snapshots
    [{"t_ns", key}, ...] (one a second over the measured interval), and
    whether the cell was steady: the mean rate of the last half within
    `max_drift` of the first half's, and no interval below half the
    median (a stall). Fewer than 4 snapshots: steady is None."""
    pts = [(int(s["t_ns"]), int(s[key])) for s in series if s and key in s and "t_ns" in s]
    rates = [(b[1] - a[1]) / ((b[0] - a[0]) / 1e9) for a, b in zip(pts, pts[1:]) if b[0] > a[0]]
    if len(rates) < 3:
        return {"rates": rates, "steady": None, "drift": None, "reason": "too few snapshots"}
    half = len(rates) // 2
    first, last = sum(rates[:half]) / half, sum(rates[-half:]) / half
    drift = (last - first) / first if first else float("inf")
    med = sorted(rates)[len(rates) // 2]
    stalls = sum(1 for r in rates if r < 0.5 * med)
    steady = abs(drift) <= max_drift and stalls == 0
    reason = ("" if steady else
              f"rate drifts {drift * 100:+.1f} % from the first half to the last" if
              abs(drift) > max_drift else f"{stalls} interval(s) below half the median rate")
    return {"rates": rates, "steady": steady, "drift": drift, "reason": reason}
