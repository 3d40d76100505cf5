"""The Host interface: one kernel the benchmark runs tools on, reached
either in a local network namespace (NetnsHost) or over SSH (SshHost).
The runner, the stacks and the testbeds talk only to hosts: nothing
outside this package names `ip netns exec`, a local /proc path or
subprocess."""

from __future__ import annotations

import json

from .. import RxbenchError


class HostError(RxbenchError):
    pass


class ConnectionLost(HostError):
    """The host stopped answering (SSH exited 255, or timed out)."""


class OnHost(list):
    """An argv that knows the host it runs on (Side.exec makes them); a
    Tool started from one runs there."""

    def __init__(self, argv, host):
        super().__init__(argv)
        self.host = host

    def __add__(self, more):
        """argv + [options]: still on this host."""
        return OnHost([*self, *more], self.host)

    def copy(self):
        return OnHost(self, self.host)


class Host:
    """What the benchmark needs from a host. `registry` is the state record
    of what this run created there (add(kind, item) writes it down first)."""

    role = ""
    key = ""                # unique per host; names its scratch and state paths
    shared_kernel = False   # True: same kernel as the controller (local netns)
    registry = None

    # -- commands ------------------------------------------------------------
    def run(self, argv: list[str], *, timeout: float = 30, check: bool = True,
            log=None) -> str:
        """Run a short command, return its stdout (CommandError when it fails
        and check is set; ConnectionLost when the host is gone)."""
        raise NotImplementedError

    def popen(self, argv: list[str], bound_s: float):
        """Start a long-running tool; a Popen-like object whose stdout and
        stderr stream its lines. The tool is bounded by bound_s on the host."""
        raise NotImplementedError

    def on_event(self, tool, event: dict) -> bool:
        """A JSON line of the tool: True if it was the host's own (consumed)."""
        return False

    def pid(self, tool) -> int | None:
        raise NotImplementedError

    def lost(self, returncode) -> str:
        """Why a tool's process ended, if the host (not the tool) ended it."""
        return ""

    def signal(self, tool, sig) -> None:
        raise NotImplementedError

    def kill(self, tool) -> None:
        raise NotImplementedError

    # -- files ---------------------------------------------------------------
    def read_file(self, path: str) -> str | None:
        return self.gather(files=[path])[0][path]

    def gather(self, files: list[str] = (), commands: dict | None = None) -> tuple[dict, dict]:
        """Read files and run commands in one round trip: ({path: text or
        None}, {name: stdout})."""
        raise NotImplementedError

    def put_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        raise NotImplementedError

    def scratch(self, name: str) -> str:
        """A scratch directory on the host, recorded before it is made."""
        raise NotImplementedError

    # -- facts ---------------------------------------------------------------
    def facts(self, ifname: str | None = None) -> dict:
        raise NotImplementedError

    def which(self, name: str) -> str | None:
        raise NotImplementedError

    def native(self, name: str) -> str:
        """Path of a native tool (native/build/) on the host."""
        raise NotImplementedError

    def python_module(self, module: str) -> list[str]:
        """argv prefix running `python -m module` of rxbench on the host."""
        raise NotImplementedError

    def kernel_options(self, options: tuple[str, ...]) -> dict[str, str]:
        """{CONFIG_X: y|m|n} of the running kernel; {} when it has no readable config."""
        raise NotImplementedError

    def kthreads(self, prefix: str) -> list[dict]:
        raise NotImplementedError

    # -- state the run changes on the host -----------------------------------
    def set_sysfs(self, path: str, value: str, log=None) -> None:
        """Write a sysfs/procfs value, its old value recorded first (restored
        at teardown)."""
        old = (self.read_file(path) or "").strip()
        if old != value:
            self.registry.add("sysfs", [path, old])
        # written even when it reads the same: veth's `threaded` reads 1 with
        # no NAPI left, and only a write says whether the device has NAPI now
        self.run(["sh", "-c", f"echo {value} > {path}"], log=log)

    def restore_sysfs(self, log=None) -> None:
        """Put back what set_sysfs changed, now (threaded NAPI can be switched
        off only while the device still has NAPI, i.e. before the receiver's
        XDP program goes); teardown does it again for what is left."""
        items = self.registry.data.get("sysfs", [])
        for path, old in reversed(items):
            self.run(["sh", "-c", f"echo {old} > {path}"], check=False, log=log)
        if items:
            self.registry.drop("sysfs")

    def set_feature(self, ifname: str, feature: str, value: str, log=None) -> None:
        """ethtool -K, the old setting recorded first."""
        out = self.run(["ethtool", "-k", ifname], check=False)
        names = {"gro": "generic-receive-offload", "tso": "tcp-segmentation-offload"}
        old = "off"
        for line in out.splitlines():
            if line.strip().startswith(names.get(feature, feature) + ":"):
                old = line.split(":", 1)[1].split()[0]
        if old != value:
            self.registry.add("features", [ifname, feature, old])
        self.run(["ethtool", "-K", ifname, feature, value], log=log)

    def close(self) -> None:
        pass


def parse_json(text: str, what: str):
    try:
        return json.loads(text)
    except ValueError:
        raise HostError(f"{what}: not JSON: {text[:200]!r}") from None
