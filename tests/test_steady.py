"""An eth cell keeps a per-second receive series (the steady-state check)
and a host probe taken inside its measured interval."""

from __future__ import annotations

from conftest import needs_testbed, rxb_netns
from rxbench import cells
from rxbench.config import resolve
from rxbench.runner import measure_eth
from rxbench.util import Log

import pytest
pytestmark = pytest.mark.integration


@needs_testbed
def test_eth_cell_has_steady_state_and_probe_during(tmp_path):
    # measure_eth, not run_cell: run_cell's clean() would remove other
    # sessions' test namespaces on this shared machine
    cfg = resolve({"profile": "smoke", "duration_s": 3})
    cell = cells.parse("results/local/eth/xdp_drop/cores=1/size=1518/rep=1.json", cfg)
    rec = measure_eth(cfg, cell, Log(tmp_path / "log"))
    assert rec.status == "ok", rec.reason
    out = rec.fields
    st = out["steady_state"]
    assert len(st["rates"]) >= 3 and st["steady"] in (True, False)
    assert st["steady"] or st["reason"]
    assert out["host_probe_during"].get("pingpong_ns", 0) > 0
    # the local platform's controller is the test host: probed before the cell too
    assert rec.host_probe.get("pingpong_ns", 0) > 0
    h = rec.hosts
    assert not {h["sender"]["netns"], h["receiver"]["netns"]} & set(rxb_netns())
