"""Where and how a result was measured."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import platform
import socket
import subprocess
from functools import lru_cache

from . import ROOT, __version__
from . import versions as pins


def _out(argv: list[str]) -> str:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10,
                           stdin=subprocess.DEVNULL)
        return (p.stdout or p.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def git_rev() -> str:
    rev = _out(["git", "-C", str(ROOT), "rev-parse", "HEAD"]) or "unknown"
    if rev != "unknown" and _out(["git", "-C", str(ROOT), "status", "--porcelain",
                                  "--untracked-files=no"]):
        rev += "-dirty"
    return rev


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@lru_cache(maxsize=1)
def versions() -> dict:
    import snakemake
    return {
        "rxbench": __version__,
        "python": platform.python_version(),
        "snakemake": snakemake.__version__,
        "iproute2": _out(["ip", "-V"]),
        "ethtool": _out(["ethtool", "--version"]),
        "libbpf": _out(["pkg-config", "--modversion", "libbpf"]),
        "libxdp": _out(["pkg-config", "--modversion", "libxdp"]),
        "cc": (_out(["cc", "--version"]).splitlines() or [""])[0],
        "dpdk": _out(["pkg-config", "--modversion", "libdpdk"]) or "not installed",
        "liburing": _out(["pkg-config", "--modversion", "liburing"]) or "not installed",
        "iperf3": (_out(["iperf3", "--version"]).splitlines() or ["not installed"])[0],
    }


def host_facts() -> dict:
    u = os.uname()
    return {
        "hostname": socket.gethostname(),
        "kernel": f"{u.release} {u.version}",
        "cmdline": _read("/proc/cmdline"),
        "cpu_model": cpu_model(),
        "ncpus": os.cpu_count(),
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor") or "n/a",
    }


def collect(tools: dict[str, str], commands: list[str], hosts: dict, nic_driver: str,
            started_at: float) -> dict:
    facts = host_facts()
    vers = dict(versions())
    vers["tools"] = {name: {"path": path, "sha256": sha256(path)} for name, path in tools.items()}
    return {
        "kernel": facts["kernel"],
        "cmdline": facts["cmdline"],
        "cpu_model": facts["cpu_model"],
        "nic_driver": nic_driver,
        "versions": vers,
        "versions_file": pins.file_record(),
        "commands": commands,
        "git_rev": git_rev(),
        "started_at": dt.datetime.fromtimestamp(started_at, dt.timezone.utc).isoformat(),
        "hosts": {**hosts, "machine": facts},
    }
