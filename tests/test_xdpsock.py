"""rxbench.stacks.xdpsock: upstream xdpsock's periodic statistics behind the
JSON-lines protocol, and stopping it the way its source requires. Debian
has no xdpsock (where Nix provides it, the eth cells run the real one), so
tests/standins/xdpsock.py behaves as its source does: the same blocks, no
exit without traffic in -p mode, its XDP program left attached when it is
SIGKILLed (a real program on a real veth in the integration tests)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time

import pytest

from rxbench import ROOT
from conftest import NATIVE, left_by, needs_testbed
from rxbench.stacks.xdpsock import Blocks, count, interface

pytestmark = pytest.mark.unit

BLOCK = """
 sock0@rxb1r:0 rxdrop xdp-drv poll()
                   pps            pkts           1.00
rx                 1,917,220      9,586,100
tx                 0              0
rx dropped         10             12
rx invalid         0              0
tx invalid         0              0
rx queue full      0              3
fill ring empty    0              7
tx ring empty      0              0
"""


def test_counts_with_or_without_thousands_separators():
    assert count("9,586,100") == count("9586100") == 9586100


def test_a_block_is_complete_when_the_next_one_starts_or_output_ends():
    b = Blocks()
    lines = BLOCK.splitlines()
    for i, line in enumerate(lines[:5]):           # without -x: ends at tx
        b.feed(line, 1000 + i)
    assert b.snapshot("snapshot") is None          # not closed yet
    b.feed(" sock0@rxb1r:0 rxdrop xdp-drv poll()", 2000)
    assert b.snapshot("snapshot")["packets"] == 9586100
    b = Blocks()
    for i, line in enumerate(lines):               # with -x: its last row closes it
        b.feed(line, 1000 + i)
    snap = b.snapshot("snapshot")
    assert snap["packets"] == 9586100 and snap["rx_dropped"] == 12
    assert snap["rx_ring_full"] == 3 and snap["rx_fill_ring_empty"] == 7
    assert snap["t_ns"] == 1000 + 3                # when the rx row arrived


STANDIN = ROOT / "tests" / "standins" / "xdpsock.py"
ENV = {"PYTHONPATH": str(ROOT / "workflow"), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


def wrapper(args, duration=30.0, env=None, wrap=lambda a: a):
    cmd = [sys.executable, "-m", "rxbench.stacks.xdpsock", "--duration", str(duration),
           "--", sys.executable, str(STANDIN), "-r", "-p", "-x", "-n", "1", *args]
    return subprocess.Popen(wrap(cmd), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env={**ENV, **(env or {})})


def test_interface_is_read_from_the_command():
    assert interface(["xdpsock", "-r", "-i", "veth1", "-q", "0"]) == "veth1"
    assert interface(["xdpsock", "-iveth2"]) == "veth2"
    assert interface(["xdpsock", "--interface=veth3"]) == "veth3"
    assert interface(["xdpsock", "-r"]) is None


def test_ready_snapshot_final_while_traffic_flows():
    p = wrapper([], env={"FAKE_XDPSOCK_TRAFFIC_S": "30"})
    ready = json.loads(p.stdout.readline())
    time.sleep(1.2)
    p.send_signal(signal.SIGUSR1)
    snap = json.loads(p.stdout.readline())
    p.send_signal(signal.SIGTERM)
    final = json.loads(p.stdout.readline())
    assert p.wait(10) == 0
    assert [ready["event"], snap["event"], final["event"]] == ["ready", "snapshot", "final"]
    assert ready["packets"] < snap["packets"] <= final["packets"]
    assert snap["t_ns"] > ready["t_ns"]
    assert final["stopped"] == "sigint"          # a packet came after SIGINT: it ended


def test_a_snapshot_is_the_first_block_printed_after_the_request():
    """Not the newest block at the request (up to one interval old): with a
    0.5 s warm-up that one can predate the traffic (issue 22)."""
    p = wrapper([], env={"FAKE_XDPSOCK_TRAFFIC_S": "30"})
    ready = json.loads(p.stdout.readline())
    time.sleep(0.3)                              # mid-interval: the newest block is ready's
    asked = time.monotonic_ns()
    p.send_signal(signal.SIGUSR1)
    snap = json.loads(p.stdout.readline())
    answered = time.monotonic_ns()
    p.send_signal(signal.SIGTERM)
    json.loads(p.stdout.readline())
    assert p.wait(10) == 0
    assert snap["event"] == "snapshot" and "stale" not in snap
    assert snap["t_ns"] > asked > ready["t_ns"]
    assert snap["packets"] > ready["packets"]
    assert answered - asked < 1.5e9              # within one interval (-n 1) and a bit


def test_newer_than_compares_the_time_the_blocks_rx_row_arrived():
    b = Blocks()
    assert not b.newer_than(0)                   # no block yet
    for i, line in enumerate(BLOCK.splitlines()):
        b.feed(line, 1000 + i)
    assert b.newer_than(999) and not b.newer_than(1003)


def test_without_traffic_in_poll_mode_it_is_killed_after_the_grace():
    p = wrapper([], env={"FAKE_XDPSOCK_TRAFFIC_S": "0.5"})
    json.loads(p.stdout.readline())
    time.sleep(1.0)                              # the traffic has stopped
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    final = json.loads(p.stdout.readline())
    assert p.wait(10) == 0
    took = time.monotonic() - t0
    assert final["event"] == "final" and final["stopped"] == "sigkill"
    assert final["packets"] > 0                  # the last periodic block
    assert 1.5 < took < 5.0                      # the runner's stop() kills after 5 s


def test_its_duration_alone_does_not_end_it_without_traffic():
    """-d is checked only by its statistics thread: the wrapper's bound ends it."""
    t0 = time.monotonic()
    p = wrapper(["-d", "1"], duration=2.0)
    assert json.loads(p.stdout.readline())["event"] == "ready"
    final = json.loads(p.stdout.readline())
    assert p.wait(10) == 0 and final["stopped"] == "sigkill"
    assert time.monotonic() - t0 < 8


def test_memlock_refusal_is_unsupported():
    p = wrapper([], env={"FAKE_XDPSOCK_MEMLOCK": "fail"})
    err = json.loads(p.stdout.readline())
    assert p.wait(10) == 3
    assert err["kind"] == "unsupported" and "RLIMIT_MEMLOCK" in err["reason"]


XDP_PASS = """
struct xdp_md;
__attribute__((section("xdp"), used)) int xdp_pass_prog(struct xdp_md *ctx) { return 2; }
char LICENSE[] __attribute__((section("license"), used)) = "GPL";
"""


@pytest.fixture
def xdp_pass(tmp_path):
    if shutil.which("clang") is None:
        pytest.skip("clang is not installed (the tiny XDP program of the stand-in)")
    src, obj = tmp_path / "xdp_pass.bpf.c", tmp_path / "xdp_pass.bpf.o"
    src.write_text(XDP_PASS)
    subprocess.run(["clang", "-O2", "-g", "-target", "bpf", "-c", str(src), "-o", str(obj)],
                   check=True)
    return obj


def local_testbed(tmp_path):
    from rxbench.config import resolve
    from rxbench.platforms.local import LocalTestbed
    from rxbench.util import Log
    return LocalTestbed(resolve({"profile": "smoke"}), Log(tmp_path / "log"))


def generator(tb, seconds: float, count: int) -> list[str]:
    s, r = tb.sender, tb.receiver
    return s.host._wrap([str(NATIVE / "rxb-gen"), "--ifname", s.ifname, "--dst-mac", r.mac,
                   "--src-ip", s.ip, "--dst-ip", r.ip, "--size", "1518",
                   "--duration", str(seconds), "--count", str(count)])


def attached(tb) -> bool:
    out = subprocess.run(["ip", "-n", tb.receiver.netns, "-d", "-j", "link", "show", "dev",
                          tb.receiver.ifname], capture_output=True, text=True, check=True)
    return bool(json.loads(out.stdout)[0].get("xdp"))


@needs_testbed
def test_standin_killed_leaves_its_xdp_program(tmp_path, xdp_pass):
    """The stand-in is faithful: SIGKILLed, its XDP program stays on the veth."""
    with local_testbed(tmp_path) as tb:
        p = subprocess.Popen(tb.receiver.host._wrap([sys.executable, str(STANDIN), "-r", "-p", "-i",
                                               tb.receiver.ifname, "-n", "1"]),
                             stdout=subprocess.PIPE, text=True,
                             env={**ENV, "FAKE_XDPSOCK_PROG": str(xdp_pass)})
        assert "sock0@" in "".join(p.stdout.readline() for _ in range(3))
        assert attached(tb)
        p.kill()
        p.wait()
        assert attached(tb)
    assert not left_by(tb)


@needs_testbed
@pytest.mark.parametrize("traffic", ["flowing", "stopped"])
def test_wrapper_leaves_no_xdp_program(traffic, tmp_path, xdp_pass):
    with local_testbed(tmp_path) as tb:
        p = wrapper(["-i", tb.receiver.ifname, "-q", "0"], env={"FAKE_XDPSOCK_PROG": str(xdp_pass)},
                    wrap=tb.receiver.host._wrap)
        assert json.loads(p.stdout.readline())["event"] == "ready"
        assert attached(tb)
        seconds = 6 if traffic == "flowing" else 0.5
        gen = subprocess.Popen(generator(tb, seconds, 10_000_000 if traffic == "flowing"
                                         else 2000), stdout=subprocess.DEVNULL)
        time.sleep(2.5)                          # a block with the packets
        p.send_signal(signal.SIGTERM)
        final = json.loads(p.stdout.readline())
        assert p.wait(10) == 0
        gen.wait(10)
        assert final["event"] == "final" and final["packets"] > 0
        if traffic == "flowing":
            assert final["stopped"] == "sigint" and final["xdp_detached"] is None
        else:
            assert final["stopped"] == "sigkill"
            assert final["xdp_detached"]["name"] == "xdp_pass_prog"
        assert not attached(tb)
    assert not left_by(tb)


def test_memlock_is_raised_where_root_can_else_the_reason_is_one_line(tmp_path):
    """On a user's machine root raises RLIMIT_MEMLOCK; where it cannot (no
    CAP_SYS_RESOURCE, e.g. this workplace) the shim beside xdpsock is used,
    and without it the reason names the limit and `make tools`."""
    fake = tmp_path / "bin" / "xdpsock"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    code = ("import json, sys; from rxbench.stacks.xdpsock import memlock; "
            "print(json.dumps(memlock([sys.argv[1]])))")
    run = lambda: json.loads(subprocess.run([sys.executable, "-c", code, str(fake)], env=ENV,
                                            capture_output=True, text=True, check=True).stdout)
    extra, how, why = run()
    if how == "raised to unlimited":
        assert extra == {} and why is None
        return
    assert how is None and "RLIMIT_MEMLOCK" in why and "`make tools`" in why
    assert "\n" not in why
    shim = tmp_path / "lib" / "rxbench" / "rxb-memlock-shim.so"
    shim.parent.mkdir(parents=True)
    shim.write_bytes(b"")
    extra, how, why = run()
    assert why is None and extra["LD_PRELOAD"] == str(shim) and "kept at" in how


def test_a_stale_snapshot_at_a_window_boundary_fails_the_cell():
    # the wrapper answers a request no new block followed with the newest
    # older block, marked stale: its count is not the window's
    from rxbench import RxbenchError
    from rxbench.stacks.eth import Xdpsock
    assert Xdpsock.received(None, {"packets": 12}) == 12
    with pytest.raises(RxbenchError, match="stale snapshot"):
        Xdpsock.received(None, {"packets": 12, "stale": True})
