"""XDP_DROP counts the test flow only (IPv4 UDP to the receiver's test
address and port); every other frame is dropped too and counted apart."""

from __future__ import annotations

import signal
import time

import pytest

from conftest import left_by, needs_testbed
from rxbench import cells
from rxbench.config import resolve
from rxbench.platforms.local import LocalTestbed
from rxbench.proc import Tool
from rxbench.stacks import GENERATORS, RECEIVERS, Unsupported
from rxbench.util import Log

pytestmark = pytest.mark.integration

COUNT = 5000


@needs_testbed
def test_xdp_drop_counts_the_test_flow_and_the_rest_apart(state_dir, tmp_path):
    """COUNT test frames and OTHER frames to another address: XDP drops all,
    counts COUNT as the test flow and OTHER apart."""
    other_n, other_ip = 3_000, "198.18.0.77"
    cfg = resolve({"profile": "smoke"})
    cell = cells.Cell("local", "eth", "xdp_drop", {"cores": 1, "size": 1518, "napi": "sender"}, 1)
    log = Log(tmp_path / "log")
    tb = LocalTestbed(cfg, log)
    placement = tb.cpus(1, "sender")
    rx = RECEIVERS["xdp_drop"](cfg, cell, tb, placement)
    try:
        rx.probe()
    except Unsupported as e:
        pytest.skip(f"xdp_drop: {e}")
    gen = GENERATORS["rxb-gen"](cfg, cell, tb, placement)
    with tb:
        rx_tool = Tool("receiver", rx.argv(20), log, tb.registry, name=rx.tool).start()
        ready = rx_tool.wait_event("ready", rx.ready_timeout)
        argv = gen.argv(10)
        other = argv.copy()
        other[other.index("--dst-ip") + 1] = other_ip
        for a, n in ((argv, COUNT), (other, other_n)):
            g = Tool("generator", a + ["--count", str(n)], log, tb.registry, name=gen.tool).start()
            assert g.wait_event("final", 15)["packets"] == n
            assert g.wait(5) == 0
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            snap = rx_tool.snapshot()
            if snap["packets"] + snap["other"]["packets"] >= COUNT + other_n:
                break
            time.sleep(0.1)
        n = len(rx_tool.events)
        rx_tool.stop(signal.SIGTERM)
        final = rx_tool.find("final", n)
    assert ready["flow"] == {"proto": "udp", "dst_ip": tb.receiver.ip, "dst_port": 9}
    assert final["packets"] == COUNT and final["bytes"] == COUNT * (1518 - 4), final
    assert final["other"]["packets"] == other_n, final
    assert not left_by(tb)
