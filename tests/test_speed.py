"""What keeps a cell's orchestration cheap (tests/bench_overhead.py measures
it): what a cell's process imports, and the campaign-wide cache of tool
versions, invalidated when a tool changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from rxbench import measure, provenance, state

pytestmark = pytest.mark.unit


def test_a_cell_process_imports_no_pandas():
    """pandas and numpy cost a cell 0.3-0.6 s to import: the cell path
    (cli, runner, its steady-state check) must not need them."""
    code = ("import sys, rxbench.cli, rxbench.runner\n"
            "from rxbench.measure import steady_state\n"
            "s = [{'t_ns': i * 10**9, 'packets': 100 * i} for i in range(6)]\n"
            "assert steady_state(s)['steady'] is True\n"
            "print(sorted(m for m in ('pandas', 'numpy', 'jsonschema', 'snakemake')"
            " if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT / "workflow")})
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.replace("'", '"')) == []


def _series(rates: list[float]) -> list[dict]:
    """Cumulative one-a-second snapshots that give these per-second rates."""
    out, total = [{"t_ns": 0, "packets": 0}], 0
    for i, r in enumerate(rates, 1):
        total += r
        out.append({"t_ns": i * 10**9, "packets": int(total)})
    return out


def test_the_cells_steady_state_rule():
    """The verdict a cell records (and the summary reads, never recomputes):
    steady when the last half's mean rate is within STEADY_DRIFT of the
    first half's and no second falls below half the median."""
    ok = measure.steady_state(_series([1e6, 1.01e6, 0.99e6, 1e6]))
    assert ok["steady"] is True and ok["rates"] == [1e6, 1.01e6, 0.99e6, 1e6] and not ok["reason"]
    edge = 1 + measure.STEADY_DRIFT * 0.9
    assert measure.steady_state(_series([1e6, 1e6, edge * 1e6, edge * 1e6]))["steady"] is True
    up = measure.steady_state(_series([1e6, 1e6, 1.2e6, 1.2e6]))
    assert up["steady"] is False and abs(up["drift"] - 0.2) < 1e-9
    assert up["reason"] == "rate drifts +20.0 % from the first half to the last"
    stall = measure.steady_state(_series([1e6, 0.4e6, 1e6, 1e6, 0.4e6, 1e6]))
    assert stall["steady"] is False
    assert stall["reason"] == "2 interval(s) below half the median rate"
    few = measure.steady_state(_series([1e6, 1e6]))
    assert few["steady"] is None and few["reason"] == "too few snapshots"
    # a snapshot without the key (a tool that did not answer) is left out
    assert measure.steady_state([{"t_ns": 0}, *_series([1e6] * 3)[1:]])["steady"] is None


def _fake_iperf3(bindir: Path, version: str) -> None:
    f = bindir / "iperf3"
    f.write_text(f"#!/bin/sh\necho 'iperf {version}'\n")
    f.chmod(0o755)


@pytest.fixture
def fake_path(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    monkeypatch.setattr(state, "STATE_DIR", tmp_path / "state")
    provenance.versions.cache_clear()
    yield bindir
    provenance.versions.cache_clear()


def test_versions_are_asked_once_then_read_from_the_cache(fake_path, monkeypatch):
    _fake_iperf3(fake_path, "9.9")
    first = provenance.versions()
    assert first["iperf3"] == "iperf 9.9"
    cached = list((state.STATE_DIR / "cache").glob("versions-*.json"))
    assert len(cached) == 1
    # the next cell (a new process: the lru_cache is gone) runs no tool
    provenance.versions.cache_clear()

    def forked(*a, **kw):
        raise AssertionError("a tool was run although nothing changed")
    monkeypatch.setattr(provenance, "_measure_versions", forked)
    assert provenance.versions() == first


def test_a_changed_tool_is_asked_again(fake_path):
    _fake_iperf3(fake_path, "9.9")
    assert provenance.versions()["iperf3"] == "iperf 9.9"
    provenance.versions.cache_clear()
    _fake_iperf3(fake_path, "9.10")              # replaced in place: size and mtime change
    assert provenance.versions()["iperf3"] == "iperf 9.10"
    provenance.versions.cache_clear()
    (fake_path / "iperf3").unlink()              # gone from PATH: the system's, or none
    assert provenance.versions()["iperf3"] != "iperf 9.10"
    assert len(list((state.STATE_DIR / "cache").glob("versions-*.json"))) == 3


def test_a_damaged_cache_file_is_asked_again(fake_path):
    _fake_iperf3(fake_path, "9.9")
    provenance.versions()
    [f] = (state.STATE_DIR / "cache").glob("versions-*.json")
    f.write_text("{not json")
    provenance.versions.cache_clear()
    assert provenance.versions()["iperf3"] == "iperf 9.9"
    assert json.loads(f.read_text())["versions"]["iperf3"] == "iperf 9.9"


def test_cached_versions_equal_asked_versions(fake_path):
    assert provenance.versions() == provenance._measure_versions()


def test_ssh_host_runs_the_interpreter_python3_resolves_to(tmp_path, monkeypatch):
    """pyenv's python3 is a shell script (~0.3 s a start here): once the
    agent has said which interpreter it runs, tools and modules use it by
    path; the next cell's agent too (remembered beside the master socket),
    with python3 as the fallback if that path has gone."""
    monkeypatch.setenv("RXBENCH_SSH_DIR", str(tmp_path / "ssh"))
    from rxbench.hosts.ssh import SshHost
    spec = {"address": "198.19.0.2", "user": "root"}
    host = SshHost("sender", spec, lambda m: None, "0123abcd")
    assert host.python() == "python3"                      # nothing known yet
    host.hello = {"facts": {"python_executable": "/opt/py/bin/python3.11"}}
    host._remember_python()
    assert host.python() == "/opt/py/bin/python3.11"
    assert host.python_module("rxbench.stacks.testpmd")[2] == "/opt/py/bin/python3.11"
    again = SshHost("sender", spec, lambda m: None, "4567cdef")   # the next cell
    assert again.python() == "/opt/py/bin/python3.11"
    started = {}

    class FakePopen:
        def __init__(self, argv, **kw):
            started["argv"] = argv
    monkeypatch.setattr("rxbench.hosts.ssh.subprocess.Popen", FakePopen)
    again._start_agent()
    sh = started["argv"][-1]
    assert "if [ -x /opt/py/bin/python3.11 ]; then exec /opt/py/bin/python3.11 " in sh
    assert "else exec python3 " in sh
