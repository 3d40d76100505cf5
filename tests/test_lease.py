"""Campaign leases (rxbench.lease): a real owner process, a real resource
(a process), released on request, when the campaign ends, and after the
owner was SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from rxbench import lease
from rxbench.state import alive, pid_start

pytestmark = pytest.mark.unit

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def leases(tmp_path, monkeypatch):
    monkeypatch.setattr(lease, "STATE_DIR", tmp_path)
    monkeypatch.setenv("RXBENCH_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(TESTS), *filter(None, [os.environ.get("PYTHONPATH")])]))
    yield tmp_path
    lease.down("dummy", _log)


def _log(msg):
    print(msg)


def _ensure(cfg=None, watch=None):
    return lease.ensure("dummy", cfg or {"platforms": {}}, _log, module="lease_dummy",
                        watch_pid=watch or os.getpid(), ready_s=60)


def _gone(pid, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not alive(pid, None) or _zombie(pid):
            return True
        time.sleep(0.1)
    return False


def _zombie(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z"
    except OSError:
        return True


def test_ensure_reuses_one_owner_and_down_releases(leases):
    inv = _ensure()
    first = lease._load(lease.state_path("dummy"))
    assert inv["sender"]["address"] == "198.19.0.2" and alive(inv["pid"], None)
    again = _ensure()
    assert again == inv
    assert lease._load(lease.state_path("dummy"))["owner_pid"] == first["owner_pid"]
    assert lease.down("dummy", _log)
    assert _gone(inv["pid"]) and not lease.state_path("dummy").exists()


def test_another_key_replaces_the_lease(leases):
    inv = _ensure({"platforms": {"dummy": {"vectors": 2}}})
    other = _ensure({"platforms": {"dummy": {"vectors": 4}}})
    assert other["pid"] != inv["pid"] and _gone(inv["pid"]) and alive(other["pid"], None)


def test_released_when_the_campaign_ends(leases):
    campaign = subprocess.Popen(["sleep", "300"])
    inv = _ensure(watch=campaign.pid)
    campaign.kill()
    campaign.wait()
    assert _gone(inv["pid"])
    end = time.monotonic() + 10
    while lease.state_path("dummy").exists() and time.monotonic() < end:
        time.sleep(0.1)
    assert not lease.state_path("dummy").exists()


def test_sigkilled_owner_is_released_by_clean(leases):
    inv = _ensure()
    owner = lease._load(lease.state_path("dummy"))["owner_pid"]
    os.kill(owner, signal.SIGKILL)
    assert _gone(owner)
    assert lease.clean(_log) == [f"lease dummy ({lease.state_path('dummy').name})"]
    assert _gone(inv["pid"]) and not lease.state_path("dummy").exists()


def test_failed_up_is_one_clear_error_and_leaves_nothing(leases):
    with pytest.raises(lease.LeaseError, match="told to fail"):
        _ensure({"fail": True, "platforms": {}})
    end = time.monotonic() + 10
    while lease.state_path("dummy").exists() and time.monotonic() < end:
        time.sleep(0.1)
    assert not lease.state_path("dummy").exists()


def test_down_while_coming_up_releases_at_once(leases):
    """`lease down` (SIGTERM to the owner) while the resources are still
    coming up (guests booting, a job waiting) abandons the way up and
    releases from the record, instead of after the boot."""
    import threading
    errors = []

    def up():
        try:
            _ensure({"up_s": 120, "platforms": {}})
        except lease.LeaseError as e:
            errors.append(str(e))

    t = threading.Thread(target=up, daemon=True)
    t.start()
    path, pid, end = lease.state_path("dummy"), None, time.monotonic() + 30
    while pid is None and time.monotonic() < end:
        data = lease._load(path) or {}
        pids = (data.get("resources") or {}).get("pids") or []
        pid = pids[0][0] if pids else None
        time.sleep(0.1)
    assert pid is not None and alive(pid, None), "the dummy never started its resource"
    t0 = time.monotonic()
    assert lease.down("dummy", _log)
    assert time.monotonic() - t0 < 20
    assert _gone(pid) and not path.exists()
    t.join(30)
    assert errors and "signal SIGTERM" in errors[0]
