"""Campaign-scoped resources: guests (vm) and reservations (g5k) live for a
whole campaign, not for one cell. A lease is a detached owner process that
brings them up once, hands every cell the same inventory, and releases
them when the campaign ends, however it ends.

A platform that needs one (its module, found through the platform
registry, platforms/__init__.py) defines

    lease_up(cfg, record, log) -> dict     # the ssh platform's inventory
    lease_down(record, log) -> None        # release everything up() recorded

`record` (LeaseRecord) is persisted on every change, so `lease_up` writes
down what it is about to create BEFORE it creates it, and `lease_down` must
work from the record alone, in a new process, after a SIGKILL.

    inventory = lease.ensure("vm", cfg, log)     # from a cell's runner

starts `python -m rxbench lease serve KIND --state FILE` (its own session)
unless a live owner of this checkout already serves an equal `key`, and
waits until it is ready. The owner releases the resources when every
campaign process it watches (the snakemake that ran the cells: the
runner's parent) is gone, when asked (`rxbench lease down KIND`, SIGTERM,
SIGINT, SIGHUP), or after `idle_s` without a cell. `clean()` releases
leases whose owner died (SIGKILL) from their records.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from . import ROOT, RxbenchError
from .state import STATE_DIR, alive, pid_start
from .util import Log

POLL_S = 0.5
DEFAULT_IDLE_S = 900.0
DEFAULT_READY_S = 1800.0     # a cold guest image build under TCG takes minutes


class LeaseError(RxbenchError):
    pass


def _checkout_id() -> str:
    return hashlib.sha256(str(ROOT).encode()).hexdigest()[:10]


def state_path(kind: str) -> Path:
    return STATE_DIR / f"lease-{kind}-{_checkout_id()}.json"


def _fingerprint(key) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _save(path: Path, data: dict) -> None:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        return None


@contextmanager
def _locked(kind: str):
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(STATE_DIR / f"lease-{kind}-{_checkout_id()}.lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class LeaseRecord:
    """What a lease created, saved in its state file on every change."""

    def __init__(self, path: Path, data: dict):
        self.path, self.state = path, data
        self.data = data.setdefault("resources", {})

    def save(self) -> None:
        _save(self.path, self.state)

    def add(self, key: str, item) -> None:
        """Append item to the list `key` (written before the thing exists)."""
        items = self.data.setdefault(key, [])
        if item not in items:
            items.append(item)
            self.save()

    def put(self, key: str, value) -> None:
        self.data[key] = value
        self.save()

    def get(self, key: str, default=None):
        return self.data.get(key, default)


def _module(kind: str, data: dict | None = None):
    """The platform that brings a lease of `kind` up and down, from the
    platform registry (platforms/__init__.py); the record's `module`, where
    set, names a stand-in (tests)."""
    from .platforms import TestbedError, lease_platform
    try:
        return lease_platform(kind, (data or {}).get("module"))
    except (TestbedError, ValueError) as e:
        raise LeaseError(str(e)) from None


def _running(pid: int, start: int | None) -> bool:
    """Alive and not a zombie: an owner started by this process stays a
    zombie until reaped, so reap it if it is our child."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z" and alive(pid, start)


def _owner_alive(data: dict) -> bool:
    return bool(data) and _running(data.get("owner_pid", -1), data.get("owner_start"))


def _release_dead(kind: str, path: Path, data: dict, log) -> None:
    """The owner is gone (SIGKILL, crash): release from the record here."""
    log(f"lease {kind}: owner {data.get('owner_pid')} is gone; releasing from its record")
    try:
        _module(kind, data).lease_down(LeaseRecord(path, data), log)
    finally:
        path.unlink(missing_ok=True)


def _stop_owner(kind: str, path: Path, data: dict, log, timeout: float = 300.0) -> None:
    pid = data["owner_pid"]
    log(f"lease {kind}: asking owner {pid} to release")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    end = time.monotonic() + timeout
    while time.monotonic() < end and _running(pid, data.get("owner_start")):
        time.sleep(POLL_S / 5)
    if _running(pid, data.get("owner_start")):
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    fresh = _load(path)
    if fresh is not None:
        _release_dead(kind, path, fresh, log)


def ensure(kind: str, cfg: dict, log, key=None, watch_pid: int | None = None,
           module: str | None = None, ready_s: float | None = None,
           idle_s: float | None = None) -> dict:
    """The inventory of this checkout's lease of `kind`, starting its owner
    if needed. `key`: what the resources depend on (a live lease with another
    key is released first, e.g. guests booted with other QEMU options)."""
    watch = os.getppid() if watch_pid is None else watch_pid
    fp = _fingerprint(key if key is not None else cfg.get("platforms", {}).get(kind, {}))
    path = state_path(kind)
    with _locked(kind):
        data = _load(path)
        if data is not None and not _owner_alive(data):
            _release_dead(kind, path, data, log)
            data = None
        if data is not None and (data.get("fingerprint") != fp or data.get("status") == "stopping"):
            _stop_owner(kind, path, data, log)
            data = None
        if data is None:
            data = {"kind": kind, "module": module,
                    "checkout": str(ROOT), "fingerprint": fp, "cfg": cfg, "status": "starting",
                    "watch": [], "idle_s": idle_s or DEFAULT_IDLE_S,
                    "created_at": time.time(), "last_used": time.time(), "resources": {}}
            data["watch"].append([watch, pid_start(watch)])
            _save(path, data)
            logfile = path.with_suffix(".log")
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(
                [str(ROOT / "workflow"), *filter(None, [os.environ.get("PYTHONPATH")])])}
            with open(logfile, "ab") as out:
                p = subprocess.Popen([sys.executable, "-m", "rxbench", "lease", "serve", kind,
                                      "--state", str(path)], stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
            data["owner_pid"], data["owner_start"] = p.pid, pid_start(p.pid)
            _save(path, data)
            log(f"lease {kind}: started owner {p.pid} (log {logfile})")
        else:
            if [watch, pid_start(watch)] not in data["watch"]:
                data["watch"].append([watch, pid_start(watch)])
            data["last_used"] = time.time()
            _save(path, data)
    return _wait_ready(kind, path, log, ready_s or DEFAULT_READY_S)


def _wait_ready(kind: str, path: Path, log, timeout: float) -> dict:
    end = time.monotonic() + timeout
    while True:
        data = _load(path)
        if data is None:
            raise LeaseError(f"lease {kind}: its owner ended before it was ready "
                             f"(log {path.with_suffix('.log')})")
        if data.get("status") == "ready":
            return data["inventory"]
        if data.get("status") == "failed":
            raise LeaseError(f"lease {kind}: {data.get('error', 'failed')}")
        if not _owner_alive(data):
            with _locked(kind):
                fresh = _load(path)
                if fresh is not None and not _owner_alive(fresh):
                    _release_dead(kind, path, fresh, log)
            raise LeaseError(f"lease {kind}: owner {data.get('owner_pid')} died before it "
                             f"was ready (log {path.with_suffix('.log')})")
        if time.monotonic() > end:
            down(kind, log)
            raise LeaseError(f"lease {kind}: not ready within {timeout:.0f} s; released")
        time.sleep(POLL_S)


class _Stop(BaseException):
    """A signal while the lease was coming up."""


def serve(kind: str, path: Path) -> int:
    """The owner: bring the resources up, then hold them until released."""
    log = Log(path.with_suffix(".log"), echo=False)
    stop = {"sig": None, "coming_up": True}

    def on_signal(signum, _frame):
        stop["sig"] = signum
        if stop["coming_up"]:
            # `lease down`, Ctrl-C or a campaign's end while guests boot or a
            # job waits: abandon the way up now (released from the record)
            # rather than minutes later
            stop["coming_up"] = False
            raise _Stop(f"signal {signal.Signals(signum).name} while coming up")

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    with _locked(kind):         # ensure() has written our pid and released the lock
        data = _load(path)
    if data is None or data.get("owner_pid") != os.getpid():
        log(f"lease {kind}: {path} does not name this process as its owner")
        return 1
    record = LeaseRecord(path, data)
    mod = _module(kind, data)
    try:
        inventory = mod.lease_up(data["cfg"], record, log)
        stop["coming_up"] = False
    except BaseException as e:  # noqa: BLE001 - every failure releases and is reported
        stop["coming_up"] = False
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)     # release runs to the end
        log(f"lease {kind}: up failed: {e}")
        error = str(e) or type(e).__name__
        # released first, then reported: ensure() raises as soon as it reads
        # "failed", and nothing of the lease may be left by then
        try:
            mod.lease_down(record, log)
        except BaseException as down_e:  # noqa: BLE001 - reported with the reason
            error += f" (and releasing failed: {down_e})"
            raise
        finally:
            record.state["status"], record.state["error"] = "failed", error
            record.save()
            time.sleep(2 * POLL_S)    # let a waiting ensure() read the reason
            path.unlink(missing_ok=True)
        return 1
    with _locked(kind):
        data = {**(_load(path) or data), "resources": record.data}
        data.update(status="ready", inventory=inventory, ready_at=time.time())
        record.state = data
        record.data = data["resources"]
        record.save()
    log(f"lease {kind}: ready")
    why = ""
    while not why:
        time.sleep(POLL_S)
        if stop["sig"] is not None:
            why = f"signal {signal.Signals(stop['sig']).name}"
            break
        with _locked(kind):
            cur = _load(path) or data
            watched = [w for w in cur.get("watch", []) if _running(w[0], w[1])]
            if not watched:
                why = "the campaign ended (no watched process left)"
            elif time.time() - cur.get("last_used", 0) > cur.get("idle_s", DEFAULT_IDLE_S):
                why = f"idle for {cur['idle_s']:.0f} s"
            if why:
                cur["status"] = "stopping"
                _save(path, cur)
                record.state, record.data = cur, cur.setdefault("resources", {})
    log(f"lease {kind}: releasing: {why}")
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)     # release runs to the end
    try:
        mod.lease_down(record, log)
    finally:
        path.unlink(missing_ok=True)
        log(f"lease {kind}: released")
    return 0


def down(kind: str, log) -> bool:
    """Release this checkout's lease of `kind`; True if there was one."""
    path = state_path(kind)
    with _locked(kind):
        data = _load(path)
        if data is None:
            return False
        if _owner_alive(data):
            _stop_owner(kind, path, data, log)
        else:
            _release_dead(kind, path, data, log)
    return True


def leave(kind: str, pid: int, log) -> str:
    """A campaign process (`pid`, the snakemake whose cells used the lease)
    is ending: it is no longer watched, and if no other watched process is
    alive the lease is released now, before that process returns (the
    owner would notice only after POLL_S, and its release takes seconds
    more: the lease outlived the campaign). Returns what was done."""
    path = state_path(kind)
    with _locked(kind):
        data = _load(path)
        if data is None:
            return "no lease"
        others = [w for w in data.get("watch", []) if w[0] != pid and _running(w[0], w[1])]
        if others:
            data["watch"] = others
            _save(path, data)
            return f"left to {len(others)} other campaign process(es)"
        if _owner_alive(data):
            _stop_owner(kind, path, data, log)
        else:
            _release_dead(kind, path, data, log)
    return "released"


def clean(log) -> list[str]:
    """Release leases (any checkout) whose owner is gone."""
    done = []
    for path in sorted(STATE_DIR.glob("lease-*.json")) if STATE_DIR.exists() else []:
        data = _load(path)
        if data is None:
            path.unlink(missing_ok=True)
            continue
        if not _owner_alive(data):
            _release_dead(data["kind"], path, data, log)
            done.append(f"lease {data['kind']} ({path.name})")
    return done
