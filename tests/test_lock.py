"""The machine's testbed lock (state.testbed_lock): re-entrant in a
process, exclusive across open files, and with a timeout it gives up with
LockTimeout instead of waiting for as long as the holder runs."""

import fcntl
import time

import pytest

from rxbench import state

pytestmark = pytest.mark.unit


@pytest.fixture
def lock_path(tmp_path, monkeypatch):
    p = tmp_path / "run" / "testbed.lock"
    monkeypatch.setattr(state, "LOCK_PATH", p)
    return p


def test_re_entrant_and_released(lock_path):
    with state.testbed_lock():
        with state.testbed_lock(timeout=0.1):
            assert state._held["depth"] == 2
        assert state._held["depth"] == 1
    assert state._held["depth"] == 0
    with open(lock_path, "a+") as f:          # free again for anyone
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_a_timeout_gives_up_while_another_holds_it(lock_path):
    lock_path.parent.mkdir(parents=True)
    logged = []
    with open(lock_path, "a+") as other:
        fcntl.flock(other, fcntl.LOCK_EX)      # another run's cell (flock: per open file)
        t0 = time.monotonic()
        with pytest.raises(state.LockTimeout, match=r"still held after 0 s"):
            with state.testbed_lock(logged.append, timeout=0.3):
                pytest.fail("entered a held lock")
        assert 0.3 <= time.monotonic() - t0 < 2.0
        assert state._held["depth"] == 0
        assert logged == ["waiting for another rxbench run to release the testbed lock"]
        fcntl.flock(other, fcntl.LOCK_UN)
        with state.testbed_lock(timeout=0.3):  # released: taken at once
            assert state._held["depth"] == 1
