"""Every receiver counts exactly what the generator sent, on the real local
testbed: the generator sends a fixed count, the receiver's final count must
match (frames are 1518 bytes so nothing is lost at this rate)."""

from __future__ import annotations

import signal
import time

import pytest

from conftest import leftovers, needs_testbed
from rxbench import cells
from rxbench.config import resolve
from rxbench.platforms.local import LocalTestbed
from rxbench.proc import Tool
from rxbench.stacks import GENERATORS, RECEIVERS, Unsupported
from rxbench.util import Log

pytestmark = pytest.mark.integration

COUNT = 20_000


@needs_testbed
@pytest.mark.parametrize("stack", sorted(RECEIVERS))
@pytest.mark.parametrize("napi", ["receiver", "sender"])
def test_receiver_counts_every_frame_sent(stack, napi, state_dir, tmp_path):
    cfg = resolve({"profile": "smoke"})
    cell = cells.Cell("local", "eth", stack, {"cores": 1, "size": 1518, "napi": napi}, 1)
    log = Log(tmp_path / "log")
    tb = LocalTestbed(cfg, log)
    placement = tb.cpus(1, napi)
    rx = RECEIVERS[stack](cfg, cell, tb, placement)
    try:
        rx.probe()
    except Unsupported as e:
        pytest.skip(f"{stack}: {e}")
    gen = GENERATORS["rxb-gen"](cfg, cell, tb, placement)
    with tb:
        rx_tool = Tool("receiver", rx.argv(20), log, tb.registry, name=rx.tool).start()
        rx_tool.wait_event("ready", rx.ready_timeout)
        tb.place_napi(placement)
        gen_tool = Tool("generator", gen.argv(10) + ["--count", str(COUNT)], log, tb.registry,
                        name=gen.tool).start()
        final = gen_tool.wait_event("final", 15)
        assert final["packets"] == COUNT and final["reason"] == "count"
        assert gen_tool.wait(5) == 0
        n = len(rx_tool.events)
        # let the last frames through the receive path, then stop the receiver
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            snap = rx_tool.snapshot()
            if rx.received(snap) >= COUNT:
                break
            time.sleep(0.1)
        rx_tool.stop(signal.SIGTERM)
        got = rx.received(rx_tool.find("final", n))
        lost = sum(rx.stage_drops({}, rx_tool.find("final", n)).values())
    assert got + lost == COUNT, f"{stack}: received {got}, dropped {lost}, sent {COUNT}"
    assert not leftovers(state_dir)


@needs_testbed
def test_dpdk_txonly_generator_runs_a_cell_and_every_loss_is_explained(state_dir, tmp_path):
    """The default generator on this machine: a real cell, its offered rate
    from testpmd's tx counter, frames the sender's veth refused counted as
    a drop stage, so offered - received is explained."""
    import json
    import shutil

    from rxbench.runner import run_cell
    if not shutil.which("dpdk-testpmd"):
        pytest.skip("dpdk-testpmd is not installed")
    cfg = resolve({"profile": "smoke", "duration_s": 2, "eth": {"generator": "dpdk-txonly"}})
    out = tmp_path / "results/local/eth/xdp_drop/cores=1/size=64/rep=1.json"
    assert run_cell(str(out), cfg, str(out.with_suffix(".log"))) == 0
    r = json.loads(out.read_text())
    assert r["status"] == "ok", r["reason"]
    assert r["offered_pps"] > 100_000 and r["rx_pps"] > 100_000
    assert "sender_veth_refused" in r["drops"]
    # signed: neither under- nor over-explained by more than 1 % of what was sent
    assert abs(r["drops"]["unaccounted"]) <= 0.01 * r["sent_packets"]
    assert any("forward-mode=txonly" in c for c in r["provenance"]["commands"])
    # one rxb-counters reader per side; testpmd itself measured under its wrapper
    assert sum("rxb-counters" in c for c in r["provenance"]["commands"]) == 2
    gen = [p for p in r["processes"]["generator"].values() if "dpdk-testpmd" in p["comms"]]
    assert gen and gen[0]["user_s"] + gen[0]["sys_s"] > 0.5, r["processes"]
    assert "cpu_check" in r and r["bottleneck"] in ("receiver", "none", "shared_cpu")
    for side in ("sender", "receiver"):
        assert r["snapshot_cost"][side]["snapshot_ns"] > 0
        assert r["snapshot_cost"][side]["cpu_frac"] < 0.01
    assert not leftovers(state_dir)
