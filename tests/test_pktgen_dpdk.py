"""rxbench.stacks.pktgen_dpdk: Pktgen-DPDK on a pseudo-terminal (24.10.3 exits
without one), its command file, its counters from the DPDK telemetry
socket, and stopping it. tests/standins/pktgen.py behaves as Pktgen-DPDK
does there (Debian has no Pktgen-DPDK; `make tools` builds it for the vm
guests, where the vm platform's cells run the real one)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from rxbench import ROOT
import pytest

pytestmark = pytest.mark.unit

STANDIN = ROOT / "tests" / "standins" / "pktgen.py"


def wrapper(tmp_path, duration=30.0, env=None, commands="set 0 size 64;start 0"):
    rundir = tmp_path / "run" / "rxbtest"
    cmd = [sys.executable, "-m", "rxbench.stacks.pktgen_dpdk", "--duration", str(duration),
           "--runtime-dir", str(rundir), "--commands", commands, "--",
           sys.executable, str(STANDIN), "--no-huge", "--file-prefix", "rxbtest", "--",
           "-P", "-T", "-m", "1.0"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            stdin=subprocess.DEVNULL,
                            env={"PYTHONPATH": str(ROOT / "workflow"), "PATH": "/usr/bin:/bin",
                                 "FAKE_DPDK_RUNTIME": str(tmp_path / "run"), **(env or {})}), rundir


def test_ready_snapshot_final_from_telemetry_on_a_terminal(tmp_path):
    p, rundir = wrapper(tmp_path)
    ready = json.loads(p.stdout.readline())
    assert ready["event"] == "ready" and ready["tx_packets"] > 0, ready
    assert ready["dpdk"] == "DPDK 24.11.8"
    time.sleep(0.3)
    p.send_signal(signal.SIGUSR1)
    snap = json.loads(p.stdout.readline())
    p.send_signal(signal.SIGTERM)
    final = json.loads(p.stdout.readline())
    assert p.wait(10) == 0
    assert snap["event"] == "snapshot" and final["event"] == "final"
    assert ready["tx_packets"] < snap["tx_packets"] <= final["tx_packets"]
    assert ready["t_ns"] < snap["t_ns"] < final["t_ns"]
    assert final["stopped"] == "quit"               # `quit` on its terminal ended it
    assert not rundir.exists()                      # the EAL runtime directory removed


def test_a_port_that_never_sends_is_an_error_line(tmp_path):
    import rxbench.stacks.pktgen_dpdk as P
    assert P.READY_S >= 30                             # TCG guests start slowly
    p, _ = wrapper(tmp_path, commands="set 0 size 64")   # never started
    time.sleep(1.5)                                    # it is up, telemetry answers 0
    p.send_signal(signal.SIGTERM)                      # give up waiting
    err = json.loads(p.stdout.readline())
    assert p.wait(10) == 1
    assert err["event"] == "error" and err["kind"] == "failed"
    assert "did not start sending" in err["reason"]


def test_a_port_that_cannot_attach_is_unsupported(tmp_path):
    p, _ = wrapper(tmp_path, env={"FAKE_PKTGEN_NO_PORT": "1"})
    err = json.loads(p.stdout.readline())
    assert p.wait(10) == 3
    assert err["kind"] == "unsupported" and "No Ethernet ports" in err["reason"]
