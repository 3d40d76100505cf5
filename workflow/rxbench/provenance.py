"""Where and how a result was measured."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
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


# what versions() asks, and what each answer depends on (fingerprint())
_PROGRAMS = ("ip", "ethtool", "pkg-config", "cc", "iperf3")
_PC_MODULES = ("libbpf", "libxdp", "libdpdk", "liburing")


def _measure_versions() -> dict:
    from importlib.metadata import version
    return {
        "rxbench": __version__,
        "python": platform.python_version(),
        "snakemake": version("snakemake"),
        "iproute2": _out(["ip", "-V"]),
        "ethtool": _out(["ethtool", "--version"]),
        "libbpf": _out(["pkg-config", "--modversion", "libbpf"]),
        "libxdp": _out(["pkg-config", "--modversion", "libxdp"]),
        "cc": (_out(["cc", "--version"]).splitlines() or [""])[0],
        "dpdk": _out(["pkg-config", "--modversion", "libdpdk"]) or "not installed",
        "liburing": _out(["pkg-config", "--modversion", "liburing"]) or "not installed",
        "iperf3": (_out(["iperf3", "--version"]).splitlines() or ["not installed"])[0],
    }


def _stat(path) -> list:
    try:
        st = os.stat(path)
        return [str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]
    except OSError:
        return [str(path), None]


def fingerprint() -> str:
    """What the tool versions depend on, without running the tools: each
    program's resolved path and inode/size/mtime, the .pc files pkg-config
    would find (and their directories: one added shows), the snakemake
    package (its __init__.py: pip replaces it), Python, the environment
    that steers the lookups, and the Debian package database. A change to
    any of them is a new fingerprint."""
    import importlib.util
    import shutil
    parts: list = [sys.executable, platform.python_version(), __version__,
                   os.environ.get("PATH", ""), os.environ.get("PKG_CONFIG_PATH", ""),
                   os.environ.get("PKG_CONFIG_LIBDIR", ""), _stat("/var/lib/dpkg/status")]
    for prog in _PROGRAMS:
        found = shutil.which(prog)
        parts.append(_stat(os.path.realpath(found)) if found else [prog, None])
    pc_dirs = [d for d in (os.environ.get("PKG_CONFIG_PATH", "").split(":")
                           + _pc_path().split(":")) if d]
    for d in pc_dirs:
        parts.append(_stat(d))
        parts += [_stat(os.path.join(d, f"{m}.pc")) for m in _PC_MODULES]
    spec = importlib.util.find_spec("snakemake")     # found, not imported
    parts.append(_stat(spec.origin) if spec and spec.origin else ["snakemake", None])
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:20]


@lru_cache(maxsize=1)
def _pc_path() -> str:
    """pkg-config's default search path (the directories its .pc files are in)."""
    return _out(["pkg-config", "--variable", "pc_path", "pkg-config"])


def versions_cache_dir():
    from .state import STATE_DIR
    return STATE_DIR / "cache"


@lru_cache(maxsize=1)
def versions() -> dict:
    """The tool versions of this machine. Asking them forks ten programs
    (0.1-0.2 s a cell): the answer is kept in STATE_DIR/cache under the
    fingerprint of what it depends on, so the cells of a campaign ask once
    and a changed tool, library or PATH is asked again."""
    from .util import atomic_write_json
    key = fingerprint()
    path = versions_cache_dir() / f"versions-{key}.json"
    try:
        with open(path) as f:
            data = json.load(f)
        if isinstance(data, dict) and data.get("fingerprint") == key:
            return data["versions"]
    except (OSError, ValueError, KeyError):
        pass
    vers = _measure_versions()
    try:
        atomic_write_json(path, {"fingerprint": key, "versions": vers})
    except OSError:
        pass                          # read-only state dir: asked every time
    return vers


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
            started_at: float, tool_info=None, platform: dict | None = None) -> dict:
    """platform: the testbed's own record (remote hosts: their facts,
    kernels, CPUs, NICs, builds; the inventory's provenance)."""
    facts = host_facts()
    vers = dict(versions())
    info = tool_info or (lambda name, path: {"path": path, "sha256": sha256(path)})
    vers["tools"] = {name: info(name, path) for name, path in tools.items()}
    out = {
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
    if platform:
        out["platform"] = platform
        # the receiver's kernel is the one under test
        recv = platform.get("hosts", {}).get("receiver", {})
        out["kernel"] = recv.get("kernel", out["kernel"])
        out["cmdline"] = recv.get("cmdline", out["cmdline"])
        out["cpu_model"] = recv.get("cpu_model", out["cpu_model"])
    return out
