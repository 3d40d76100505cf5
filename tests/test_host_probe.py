"""The host probe (a CPU round trip measured on the controller, the machine
the runner runs on) is the testbed's: it runs where the controller is the
test host (local), before the cell and once inside its measured interval,
and nowhere else: no ssh, g5k or vm cell runs a probe on the controller,
least of all during its interval (on vm it would compete with the guests'
QEMU threads)."""

from __future__ import annotations

import json
import subprocess

import pytest

from rxbench import platforms, runner
from rxbench.record import Measured

pytestmark = pytest.mark.unit


class _Rx:
    """The receiver tool as _measured_interval sees it."""

    def __init__(self):
        self.snapshots = 0

    def snapshot(self):
        self.snapshots += 1
        return {"packets": self.snapshots}


@pytest.fixture
def controller(monkeypatch):
    """Every process the controller would start, recorded instead of run."""
    ran = []

    def fake_run(argv, *a, **kw):
        ran.append(list(argv))
        return json.dumps({"ns_per_round_trip": 123.0})

    class FakePopen:
        def __init__(self, argv, *a, **kw):
            ran.append(list(argv))
            raise AssertionError(f"a process started on the controller: {argv}")

    monkeypatch.setattr(subprocess, "Popen", FakePopen)
    monkeypatch.setattr(subprocess, "run", lambda argv, *a, **kw: FakePopen(argv))
    monkeypatch.setattr("rxbench.util.run", fake_run)
    monkeypatch.setattr("rxbench.platforms.local.run", fake_run)
    return ran


def _testbed(kind: str):
    """The platform's testbed as a cell has it, without its hosts (no lease,
    no SSH): what decides the probe is the platform's, not the hosts'."""
    cls = getattr(platforms.module(kind), platforms.PLATFORMS[kind][1])
    tb = cls.__new__(cls)
    tb.__dict__.update(cfg={"platforms": {"local": {"generator_cpus": [0]}}}, log=lambda m: None)
    return tb


@pytest.mark.parametrize("kind", ["ssh", "g5k", "vm"])
def test_no_probe_on_the_controller_during_the_interval(kind, controller):
    tb = _testbed(kind)
    assert tb.controller_is_test_host is False
    rx = _Rx()
    series, during = runner._measured_interval(tb, rx, duration=1.2)
    assert during == {} and controller == []
    assert len(series) >= 1           # the interval itself ran: its snapshots were taken
    # nor before the cell: the record's host probe is empty, and nothing ran
    assert tb.host_probe() == {} and controller == []


def test_local_probes_inside_the_interval(controller, monkeypatch):
    # the control: on local, where the controller is the test host, the
    # probe runs once, in the interval, with the short round count
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    tb = _testbed("local")
    assert tb.controller_is_test_host is True
    series, during = runner._measured_interval(tb, _Rx(), duration=1.2)
    assert during == {"pingpong_ns": 123.0, "cpus": [0, 1]}
    assert len(controller) == 1 and "rxb-pingpong" in controller[0][0]
    assert controller[0][-2:] == ["--rounds", str(runner.PROBE_DURING_ROUNDS)]


def test_the_record_takes_the_testbed_probe(controller, monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    for kind, want in (("local", {"pingpong_ns": 123.0, "cpus": [0, 1]}), ("ssh", {})):
        tb = _testbed(kind)
        tb.commands = []
        rec = Measured(generator="rxb-gen")
        assert rec.on(tb) is tb and rec.host_probe == want and rec.commands is tb.commands
