"""rxbench.stacks.testpmd: dpdk-testpmd's prompt behind the JSON-lines protocol.
A stand-in testpmd (same prompt, same xstats format) drives the logic here;
test_receivers.py runs the real one on the testbed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from rxbench import ROOT
from rxbench.stacks.testpmd import parse_xstats, reason_from

pytestmark = pytest.mark.unit

XSTATS = """###### NIC extended statistics for port 0
rx_good_packets: 1150567
tx_good_packets: 0
rx_good_bytes: 69034020
rx_missed_errors: 533629
rx_errors: 0
rx_mbuf_allocation_errors: 7
rx_q0_packets: 1150567
"""


def test_xstats_are_parsed_and_summed_over_ports():
    x = parse_xstats(XSTATS + XSTATS.replace("port 0", "port 1"))
    assert x["rx_good_packets"] == 2 * 1150567
    assert x["rx_missed_errors"] == 2 * 533629
    assert x["rx_mbuf_allocation_errors"] == 14


def test_reason_keeps_the_lines_that_say_why():
    text = ("EAL: Detected CPU lcores: 2\n"
            "af_xdp_umem_configure(): Failed to create umem\n"
            "EAL: Driver cannot attach the device (net_af_xdp0)\n"
            "EAL: Driver cannot attach the device (net_af_xdp0)\n")
    assert reason_from(text) == ("af_xdp_umem_configure(): Failed to create umem; "
                                 "EAL: Driver cannot attach the device (net_af_xdp0)")


FAKE = textwrap.dedent('''
    import sys, time
    mode = sys.argv[1]
    out = sys.stdout
    print("EAL: Detected CPU lcores: 2", flush=True)
    if mode == "refuse":
        print("EAL: Driver cannot attach the device (net_af_xdp0)", flush=True)
        sys.exit(1)
    if mode == "crash":
        print("Segmentation fault", flush=True)
        sys.exit(139)
    t0 = None
    out.write("testpmd> "); out.flush()
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "start":
            t0 = time.monotonic()
            print("Logical Core 1 (socket 0) forwards packets on 1 streams:")
        elif cmd == "show port xstats all":
            n = int((time.monotonic() - t0) * 1e6) if t0 else 0
            print("###### NIC extended statistics for port 0")
            print(f"rx_good_packets: {n}\\nrx_good_bytes: {n * 60}\\nrx_missed_errors: 3")
        elif cmd == "quit":
            print("Bye...")
            sys.exit(0)
        out.write("testpmd> "); out.flush()
''')


def wrapper(tmp_path, mode: str, duration: float = 30.0) -> subprocess.Popen:
    fake = tmp_path / "fake_testpmd.py"
    fake.write_text(FAKE)
    env = {"PYTHONPATH": str(ROOT / "workflow"), "PATH": "/usr/bin:/bin"}
    rundir = tmp_path / "rundir"
    rundir.mkdir()
    return subprocess.Popen(
        [sys.executable, "-m", "rxbench.stacks.testpmd", "--duration", str(duration),
         "--runtime-dir", str(rundir), "--log", str(tmp_path / "testpmd.log"), "--",
         sys.executable, str(fake), mode],
        stdout=subprocess.PIPE, text=True, env=env)


def events(p: subprocess.Popen) -> list[dict]:
    return [json.loads(line) for line in p.stdout.read().splitlines()]


def test_ready_snapshot_final_and_the_runtime_dir_is_removed(tmp_path):
    p = wrapper(tmp_path, "ok")
    ready = json.loads(p.stdout.readline())
    assert ready["event"] == "ready"
    time.sleep(0.2)
    p.send_signal(signal.SIGUSR1)
    snap = json.loads(p.stdout.readline())
    time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    rest = events(p)
    assert p.wait(10) == 0
    assert snap["event"] == "snapshot" and snap["packets"] > ready["packets"]
    assert snap["imissed"] == 3 and snap["bytes"] == snap["packets"] * 60
    assert snap["t_ns"] > ready["t_ns"]
    assert [e["event"] for e in rest] == ["final"] and rest[0]["packets"] > snap["packets"]
    assert not (tmp_path / "rundir").exists()


def test_duration_bounds_the_run(tmp_path):
    t = time.monotonic()
    p = wrapper(tmp_path, "ok", duration=1.0)
    evs = events(p)
    assert p.wait(10) == 0 and time.monotonic() - t < 8
    assert [e["event"] for e in evs] == ["ready", "final"]


@pytest.mark.parametrize("mode, code, kind", [("refuse", 3, "unsupported"),
                                              ("crash", 1, "failed")])
def test_a_driver_that_cannot_attach_is_unsupported_a_crash_is_a_failure(tmp_path, mode,
                                                                          code, kind):
    p = wrapper(tmp_path, mode)
    evs = events(p)
    assert p.wait(10) == code
    assert evs[-1]["event"] == "error" and evs[-1]["kind"] == kind
    if mode == "refuse":
        assert "cannot attach" in evs[-1]["reason"]
    assert not (tmp_path / "rundir").exists()
