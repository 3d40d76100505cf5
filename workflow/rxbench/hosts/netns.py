"""A host that is a network namespace of this machine: today's local
platform. Same kernel, same filesystem; commands run with `ip netns exec`."""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import subprocess
from pathlib import Path

from .. import ROOT, RxbenchError
from ..state import STATE_DIR, pid_start
from ..util import CommandError, run
from .base import Host

NATIVE_BUILD = Path(os.environ.get("RXBENCH_NATIVE", ROOT / "native" / "build"))


def native_tool(name: str) -> str:
    """Path of a native tool: native/build/ (or $RXBENCH_NATIVE), else PATH (Nix)."""
    p = NATIVE_BUILD / name
    if p.exists():
        return str(p)
    found = shutil.which(name)
    if found:
        return found
    raise RxbenchError(f"native tool {name} is not built: run `make -C native` "
                       f"(looked in {NATIVE_BUILD} and PATH)")


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


class NetnsHost(Host):
    shared_kernel = True

    def __init__(self, role: str, netns: str | None, registry):
        self.role, self.netns, self.registry = role, netns, registry
        self.key = netns or "root"

    def _wrap(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv] if self.netns else list(argv)

    def run(self, argv, *, timeout=30, check=True, log=None) -> str:
        return run(self._wrap(argv), check=check, timeout=timeout, log=log)

    def popen(self, argv, bound_s):
        # setpriv execs the command: the tool gets SIGTERM if we die; the
        # tool's own --duration bounds it (same kernel: pdeathsig is enough)
        p = subprocess.Popen(self._wrap(["setpriv", "--pdeathsig", "TERM", *argv]),
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, bufsize=1,
                             start_new_session=True)
        if self.registry is not None:
            self.registry.add("pids", [p.pid, pid_start(p.pid)])
        return p

    def pid(self, tool):
        return tool.p.pid if tool.p is not None else None

    def signal(self, tool, sig):
        if tool.p is not None and tool.p.poll() is None:
            try:
                os.kill(tool.p.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self, tool):
        if tool.p is not None and tool.p.poll() is None:
            try:
                os.killpg(tool.p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            tool.p.wait()

    def gather(self, files=(), commands=None):
        # procfs outside /proc/net and sysfs outside /sys/class/net are the
        # same in every namespace; /proc/net and the namespace's interfaces
        # (ip netns exec mounts its own /sys) are read inside it
        def read(p):
            if self.netns and (p.startswith("/sys/class/net/") or p.startswith("/proc/net/")):
                out = run(self._wrap(["cat", p]), check=False)
                return out if out else None
            return _read(p)
        return ({p: read(p) for p in files},
                {name: self.run(argv, check=False) for name, argv in (commands or {}).items()})

    def put_file(self, path, data, mode=0o644):
        Path(path).write_bytes(data)
        os.chmod(path, mode)

    def scratch(self, name):
        d = STATE_DIR / f"{name}"
        self.registry.add("dirs", str(d))
        d.mkdir(parents=True, exist_ok=True)
        return str(d)

    def which(self, name):
        return shutil.which(name)

    def native(self, name):
        return native_tool(name)

    def python_module(self, module):
        import sys
        return ["env", f"PYTHONPATH={ROOT / 'workflow'}", sys.executable, "-m", module]

    def kernel_options(self, options):
        conf = local_kernel_config()
        return {o: conf.get(o, "n") for o in options} if conf else {}

    def kthreads(self, prefix):
        found = []
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                line = (_read(f"/proc/{pid}/status") or "").split("\n", 1)[0]
                name = line.split(None, 1)[1].strip() if "\t" in line else ""
                if name.startswith(prefix):
                    found.append({"pid": int(pid), "name": name})
        return found

    def facts(self, ifname=None):
        u = os.uname()
        out = {"kernel": f"{u.release} {u.version}",
               "cmdline": (_read("/proc/cmdline") or "").strip()}
        if ifname:
            info = self.run(["ethtool", "-i", ifname], check=False)
            out["nic"] = {k.strip().replace("-", "_"): v.strip() for k, v in
                          (line.split(":", 1) for line in info.splitlines() if ":" in line)}
            out["nic"]["queues_rx"] = len(self.run(
                ["sh", "-c", f"ls -d /sys/class/net/{ifname}/queues/rx-*"], check=False).split())
        return out


_KCONFIG: dict = {}


def local_kernel_config() -> dict[str, str]:
    """The running kernel's configuration, from /proc/config.gz (or /boot)."""
    if "conf" not in _KCONFIG:
        _KCONFIG["conf"] = {}
        for path in ("/proc/config.gz", f"/boot/config-{os.uname().release}"):
            try:
                opener = gzip.open if path.endswith(".gz") else open
                with opener(path, "rt") as f:
                    _KCONFIG["conf"] = dict(line.strip().split("=", 1) for line in f
                                            if line.startswith("CONFIG_") and "=" in line)
                break
            except OSError:
                continue
    return _KCONFIG["conf"]


def local_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


__all__ = ["NetnsHost", "NATIVE_BUILD", "native_tool", "local_kernel_config", "local_cpus", "CommandError"]
