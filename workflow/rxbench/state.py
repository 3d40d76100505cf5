"""What a run created, written down before it is created, so that teardown
and `rxbench clean` can remove it whatever killed the run.

One JSON file per testbed in STATE_DIR, named by the testbed's token:
{"token", "pid", "pid_start", "checkout", "created_at", "netns": [...],
 "pids": [...], "files": [...], "dirs": [...]}. Network namespaces are named
"rxb-<token>-<role>"; anything with that prefix belongs to rxbench.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

from . import ROOT, RxbenchError

STATE_DIR = Path(os.environ.get("RXBENCH_STATE_DIR", "/run/rxbench"))
NETNS_PREFIX = "rxb-"
# the local testbed's namespaces (rxb-<token>-s, rxb-<token>-r): the only
# ones clean() sweeps without a record; other platforms' namespaces (vm,
# the ssh test hosts) are removed from their own records
LOCAL_NETNS = re.compile(r"^rxb-[0-9a-f]{8}-[sr]$")
# DPDK's EAL keeps a runtime directory per --file-prefix; ours are rxb-<token>
DPDK_RUNTIME = Path("/var/run/dpdk")


def new_token() -> str:
    return secrets.token_hex(4)


def pid_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of
    /proc/PID/stat): with the pid, it names a process unambiguously."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return int(data[data.rindex(")") + 2:].split()[19])


def alive(pid: int, start: int | None) -> bool:
    s = pid_start(pid)
    return s is not None and (start is None or s == start)


class Registry:
    """The state file of one testbed."""

    def __init__(self, token: str):
        self.token = token
        self.path = STATE_DIR / f"{token}.json"
        me = os.getpid()
        self.data = {"token": token, "pid": me, "pid_start": pid_start(me),
                     "checkout": str(ROOT), "created_at": time.time(),
                     "netns": [], "pids": [], "files": [], "dirs": []}

    def _save(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data))
        os.replace(tmp, self.path)

    def add(self, kind: str, item) -> None:
        if item not in self.data.setdefault(kind, []):
            self.data[kind].append(item)
            self._save()

    def drop(self, kind: str) -> None:
        """Forget a kind of item (it was undone)."""
        self.data[kind] = []
        self._save()

    def remove_file(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


def netns_list() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def netns_pids(ns: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def kill_pid(pid: int, start: int | None = None) -> None:
    if alive(pid, start):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def delete_netns(ns: str) -> None:
    """Kill every process inside the namespace (or it, and its veth and XDP
    programs, outlive `ip netns del`), then delete it."""
    for _ in range(50):
        pids = netns_pids(ns)
        if not pids:
            break
        for pid in pids:
            kill_pid(pid)
        time.sleep(0.02)
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def release(data: dict) -> list[str]:
    """Remove everything a state record lists; return what was removed."""
    done = []
    for p in data.get("pids", []):
        pid, start = (p[0], p[1]) if isinstance(p, list) else (p, None)
        if alive(pid, start):
            kill_pid(pid, start)
            done.append(f"process {pid}")
    present = set(netns_list())
    for ns in data.get("netns", []):
        if ns in present:
            delete_netns(ns)
            done.append(f"netns {ns}")
    for f in data.get("files", []):
        try:
            os.unlink(f)
            done.append(f"file {f}")
        except FileNotFoundError:
            pass
    for d in data.get("dirs", []):
        if os.path.isdir(d):
            shutil.rmtree(d, ignore_errors=True)
            done.append(f"directory {d}")
    return done


def clean(all_orphans: bool = True) -> list[str]:
    """Remove what dead runs left: state records whose owner is gone, and
    rxbench namespaces no live run claims. Live runs are left alone."""
    removed = []
    claimed = _leased()
    if STATE_DIR.exists():
        for f in sorted(STATE_DIR.glob("*.json")):
            if f.name.startswith("lease-"):
                continue      # campaign leases: rxbench.lease cleans those
            try:
                data = json.loads(f.read_text())
            except (OSError, ValueError):
                f.unlink(missing_ok=True)
                continue
            if alive(data.get("pid", -1), data.get("pid_start")):
                claimed.update(data.get("netns", []))
                claimed.update(data.get("dirs", []))
                continue
            removed += release(data)
            f.unlink(missing_ok=True)
            removed.append(f"state {f.name}")
    if all_orphans:
        for ns in netns_list():
            if LOCAL_NETNS.match(ns) and ns not in claimed:
                delete_netns(ns)
                removed.append(f"netns {ns}")
        for d in sorted(DPDK_RUNTIME.glob(NETNS_PREFIX + "*")):
            if str(d) not in claimed:
                shutil.rmtree(d, ignore_errors=True)
                removed.append(f"directory {d}")
    return removed


def _leased() -> set[str]:
    """Namespaces and directories that live campaign leases (rxbench.lease:
    guests, reservations) hold: not a dead run's leftovers."""
    held = set()
    for f in sorted(STATE_DIR.glob("lease-*.json")) if STATE_DIR.exists() else []:
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if alive(data.get("owner_pid", -1), data.get("owner_start")):
            res = data.get("resources", {})
            held.update(res.get("netns", []))
            held.update(res.get("dirs", []))
    return held


# One lock per machine, whatever RXBENCH_STATE_DIR says (tests use private
# state dirs): two testbeds sharing two CPUs would measure each other, and
# clean()'s sweep of unclaimed namespaces is right only under it. In
# /run/rxbench/ with the state records, so that a chroot given that
# directory (tests/fresh/debootstrap-check.sh) shares it too.
LOCK_PATH = Path(os.environ.get("RXBENCH_LOCK", "/run/rxbench/testbed.lock"))
_held = {"depth": 0, "file": None}


class LockTimeout(RxbenchError):
    pass


@contextmanager
def testbed_lock(log=None, timeout: float | None = None):
    """One measurement at a time on this machine, across checkouts and
    state dirs; re-entrant within a process (the runner holds it around a
    testbed that takes it too). timeout: give up after that many seconds
    (LockTimeout) instead of waiting for as long as the holder runs."""
    if _held["depth"]:
        _held["depth"] += 1
        try:
            yield
        finally:
            _held["depth"] -= 1
        return
    LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK_PATH, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if log:
                log("waiting for another rxbench run to release the testbed lock")
            if timeout is None:
                fcntl.flock(f, fcntl.LOCK_EX)
            else:
                deadline = time.monotonic() + timeout
                while True:
                    try:
                        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise LockTimeout(f"the testbed lock {LOCK_PATH} is still held "
                                              f"after {timeout:.0f} s") from None
                        time.sleep(0.2)
        _held.update(depth=1, file=f)
        try:
            yield
        finally:
            _held.update(depth=0, file=None)
            fcntl.flock(f, fcntl.LOCK_UN)
