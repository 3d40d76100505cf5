"""No generated sentence ranks Ethernet stacks across NAPI placements or
wait classes: every comparison the numbers make (present/numbers_eth.py's
claims, the seed comparison of present/numbers.py) is recorded while the
numbers of each committed reference set are built, and each must set two
groups of the same placement and the same wait class side by side."""

from __future__ import annotations

import pytest

from conftest import ROOT

from rxbench.present import groups as G
from rxbench.present import numbers as N
from rxbench.present import numbers_eth as NE
from rxbench.present import statsfile

pytestmark = [pytest.mark.unit, pytest.mark.slow]

SETS = sorted(p.parent.name for p in (ROOT / "results" / "reference").glob("*/summary.csv"))


@pytest.mark.parametrize("name", SETS)
def test_every_ethernet_comparison_stays_within_a_placement_and_class(name, tmp_path, monkeypatch):
    out = tmp_path / "stats.csv"
    statsfile.write(ROOT / "results" / "reference" / name / "summary.csv", out)
    gs = statsfile.read(out)
    seen = []
    claim, compare = NE.claim_tex, G.compare_stats

    def rec_claim(na, a, nb, b, metric, *args, **kw):
        seen.append((a, b, metric))
        return claim(na, a, nb, b, metric, *args, **kw)

    def rec_compare(a, b, metric):
        seen.append((a, b, metric))
        return compare(a, b, metric)

    monkeypatch.setattr(NE, "claim_tex", rec_claim)
    monkeypatch.setattr(G, "compare_stats", rec_compare)
    N.numbers(gs, "generated/x", name)
    eth = [(a, b) for a, b, m in seen
           if a.get("layer") == "eth" and b.get("layer") == "eth"]
    for a, b in eth:
        where = (a["stack"], G.norm(a.get("size")), b["stack"], G.norm(b.get("size")))
        assert G.norm(a.get("napi")) == G.norm(b.get("napi")), where
        assert G.wait_class(a) == G.wait_class(b), where
        assert "xdp_drop" not in (a["stack"], b["stack"]), where
        # a paced group (eth load=<Mpps>) only beside one at the same load and size
        assert G.load_target(a.get("load")) == G.load_target(b.get("load")), where
        assert G.norm(a.get("size")) == G.norm(b.get("size")), where
    if any(G.norm(r.get("wait_class")) for _, r in gs.st.iterrows()):
        # the set has Ethernet groups of several stacks: something was compared
        assert eth or not len(gs.best("eth"))


def test_the_recorder_sees_a_cross_class_comparison():
    # the check above can fail: two groups of different classes are caught
    a = {"layer": "eth", "stack": "af_xdp", "napi": "receiver", "wait": "poll"}
    b = {"layer": "eth", "stack": "dpdk", "napi": "receiver", "busy_budget": 64}
    assert G.wait_class(a) != G.wait_class(b)
