"""AF_PACKET's receiver is measured alone: frames are dropped by a tc
ingress rule right after its tap (IP never sees them), with GRO on in
both NAPI placements; its PACKET_STATISTICS do not wrap at 2^32."""

from __future__ import annotations

import signal
import time

import pytest

from conftest import left_by, needs_testbed
from rxbench import cells
from rxbench.config import resolve
from rxbench.platforms.local import LocalTestbed
from rxbench.proc import Tool
from rxbench.stacks import GENERATORS, RECEIVERS
from rxbench.util import Log, run

pytestmark = pytest.mark.integration

COUNT = 5000


def ip_in_receives(tb) -> int:
    text = tb.receiver.host.run(["cat", "/proc/net/snmp"])
    head, vals = [ln.split() for ln in text.splitlines() if ln.startswith("Ip:")][:2]
    return int(vals[head.index("InReceives")])


@needs_testbed
@pytest.mark.parametrize("napi", ["receiver", "sender"])
def test_frames_end_after_the_tap_in_both_placements(napi, tmp_path):
    cfg = resolve({"profile": "smoke"})
    cell = cells.Cell("local", "eth", "af_packet", {"cores": 1, "size": 1518, "napi": napi}, 1)
    log = Log(tmp_path / "log")
    tb = LocalTestbed(cfg, log)
    placement = tb.cpus(1, napi)
    rx = RECEIVERS["af_packet"](cfg, cell, tb, placement)
    gen = GENERATORS["rxb-gen"](cfg, cell, tb, placement)
    with tb:
        setup = rx.prepare()
        assert "tc_drop" in setup["ingress_filters"] and "direct-action" in setup["ingress_filters"]
        gro = tb.receiver.host.run(["ethtool", "-k", tb.receiver.ifname])
        assert "generic-receive-offload: on" in gro
        rx_tool = Tool("receiver", rx.argv(20), log, tb.registry, name=rx.tool).start()
        rx_tool.wait_event("ready", rx.ready_timeout)
        tb.place_napi(placement)
        ip0 = ip_in_receives(tb)
        gen_tool = Tool("generator", gen.argv(10) + ["--count", str(COUNT)], log, tb.registry,
                        name=gen.tool).start()
        assert gen_tool.wait_event("final", 15)["packets"] == COUNT
        gen_tool.wait(5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and rx.received(rx_tool.snapshot()) < COUNT:
            time.sleep(0.1)
        n = len(rx_tool.events)
        rx_tool.stop(signal.SIGTERM)
        final = rx_tool.find("final", n)
        got, lost = rx.received(final), sum(rx.stage_drops({}, final).values())
        assert got + lost == COUNT
        assert ip_in_receives(tb) - ip0 < 10        # IP saw none of them (a stray ND at most)
    assert not left_by(tb)
