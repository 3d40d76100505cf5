"""The campaign's cell count and time estimate (workflow/rxbench/estimate.py)."""


from rxbench.cells import targets
from rxbench.config import resolve
from rxbench.estimate import banner, estimate
import pytest

pytestmark = pytest.mark.unit



def test_default_campaign_fits_90_minutes_with_both_layers():
    cfg = resolve({})
    e = estimate(cfg)
    assert e["cells"] == len(targets(cfg))
    assert set(e["per_layer"]) == {"eth", "tcp"}
    assert e["seconds"] <= e["seconds_max"] <= 90 * 60


def test_default_campaign_has_what_the_paper_asks():
    cfg = resolve({})
    assert cfg["reps"] >= 5
    assert set(cfg["eth"]["variants"]["napi"]) >= {"receiver", "sender"}
    assert set(cfg["eth"]["af_xdp"]["wait"]) == {"poll", "spin", "busy_poll"}
    # maximum goodput and one equal load below every server's maximum
    loads = cfg["tcp"]["variants"]["load"]
    assert "max" in loads and any(v != "max" for v in loads)
    assert set(cfg["tcp"]["uring_opt"]["wait_nr"]) >= {1, 8}


def test_refused_cells_cost_little_and_banner_says_it():
    cfg = resolve({})
    e = estimate(cfg)
    assert e["refused"] > 0 and e["seconds"] < e["seconds_max"]
    line = banner(cfg)
    assert f"{e['cells']} cells" in line and "estimated" in line and "\n" not in line
    # elsewhere nothing is known to be refused: the estimate is the upper bound
    e2 = estimate(resolve({"platform": "vm"}))
    assert e2["refused"] == 0 and e2["seconds"] == e2["seconds_max"]
