"""Counters read from the kernel: per-CPU time (/proc/stat), per-process
CPU time, link statistics (ip -s -j link) and driver statistics (ethtool -S)."""

from __future__ import annotations

import json
import os

from . import RxbenchError
from .util import run

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


def read_proc_stat() -> dict[str, list[int]]:
    with open("/proc/stat") as f:
        return parse_proc_stat(f.read())


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


def proc_cpu(pid: int) -> dict | None:
    """utime+stime of one process (seconds) and the CPU it last ran on."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
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


def link_stats(netns: str, ifname: str) -> dict:
    return parse_link_json(run(["ip", "-n", netns, "-s", "-j", "link", "show", "dev", ifname]))


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


def ethtool_stats(netns: str, ifname: str) -> dict[str, int]:
    out = run(["ip", "netns", "exec", netns, "ethtool", "-S", ifname], check=False)
    return parse_ethtool_stats(out)


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


def nstat(netns: str) -> dict[str, int]:
    """Absolute TCP counters of a namespace (nstat -a: no history file kept)."""
    return parse_nstat_json(run(["ip", "netns", "exec", netns, "nstat", "-asz", "--json"],
                                check=False))
