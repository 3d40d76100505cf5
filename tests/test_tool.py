"""hosts/tool.py: waiting for a local tool's exit by its pidfd."""

from __future__ import annotations

import subprocess
import sys

from rxbench.hosts.tool import wait_exit

import pytest
pytestmark = pytest.mark.unit


def test_wait_exit_returns_when_the_child_exits_and_reaps_it():
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"])
    assert wait_exit(p, 30) is True
    assert p.returncode == 0


def test_wait_exit_gives_up_at_its_timeout_and_leaves_the_child_alone():
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert wait_exit(p, 0.1) is False
        assert p.poll() is None
    finally:
        p.kill()
        p.wait()


def test_wait_exit_of_an_exited_child_and_of_what_is_not_a_local_child():
    p = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    p.wait()
    assert wait_exit(p, 0) is True and p.returncode == 3
    assert wait_exit(object(), 1) is None
