"""NDR/PDR cells (eth variant search=ndr): MLRsearch over real paced trials
on the local testbed; every trial is kept with its offered (sender veth),
received and loss counts."""

from __future__ import annotations

import json

from conftest import needs_testbed, rxb_netns
from rxbench import cells
from rxbench.config import resolve
from rxbench.ndr import measure_ndr
from rxbench.util import Log

import pytest
pytestmark = pytest.mark.integration

QUICK = {"profile": "ndr", "ndr": {"initial_trial_duration_s": 0.25,
                                   "final_trial_duration_s": 0.5, "duration_sum_s": 1,
                                   "relative_width": 0.05, "max_load_pps": 2000000,
                                   "min_load_pps": 10000, "warmup_s": 0,
                                   "search_duration_max_s": 300}}


@needs_testbed
def test_ndr_cell_keeps_every_trial(tmp_path):
    # measure_ndr directly, not run_cell: run_cell's clean() removes every
    # rxb- namespace it does not know, other sessions' test namespaces too
    cfg = resolve(QUICK)
    cell = cells.parse("results/local/eth/xdp_drop/cores=1/size=1518/search=ndr/rep=1.json",
                       cfg)
    rec = measure_ndr(cfg, cell, Log(tmp_path / "cell.log"))
    assert rec.status == "ok", rec.reason
    res, commands, tools = rec.fields, rec.commands, rec.tools
    n = res["ndr"]
    assert n["search"] == "MLRsearch" and n["trials"] == len(n["trial_list"]) >= 3
    # 1518-byte frames at 2 Mpps are 24 Gbit/s: beyond what rxb-gen sends here
    assert 0 < n["ndr_pps"] <= n["pdr_pps"] < 2000000
    for t in n["trial_list"]:
        assert {"intended_load_pps", "intended_duration_s", "offered", "received", "loss",
                "offered_duration_s"} <= set(t)
        assert t["loss"] == t["offered"] - t["received"]
    # the NDR is a rate some trial sustained without loss or unsent frames
    assert any(t["loss"] <= 0 and t["offered"] >= t["intended_count"] and
               t["intended_load_pps"] >= n["ndr_pps"] * 0.99 for t in n["trial_list"])
    assert res["rx_pps"] == n["ndr_pps"]
    assert any("--rate-pps" in c for c in commands) and "rxb-gen" in tools
    hosts = rec.hosts
    assert not {hosts["sender"]["netns"], hosts["receiver"]["netns"]} & set(rxb_netns())
