"""Data sets: the committed reference sets apart from a campaign's run,
which the paper shows (paper_data), and `make reference` (promote)."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import ROOT, tree_hash

from rxbench import RxbenchError, cells, reference
from rxbench.config import resolve

pytestmark = pytest.mark.unit

REF = ROOT / "results" / "reference"


def test_a_reference_cell_name_is_refused_with_the_reason():
    cfg = resolve({})
    for path in ("results/reference/eth/xdp_drop/cores=1/size=64/rep=1.json",
                 "results/reference/local-fc2-epyc/eth/xdp_drop/cores=1/size=64/rep=1.json"):
        with pytest.raises(cells.CellNameError, match="results/reference/ holds the committed "
                                                      "reference sets and is never written"):
            cells.parse(path, cfg)


def test_campaign_targets_never_point_into_the_reference_sets():
    for profile in ("default", "smoke"):
        for t in cells.targets(resolve({"profile": profile})):
            assert t.startswith("results/local/"), t


def test_committed_reference_sets_have_a_summary_and_a_readme():
    sets = reference.names(str(ROOT / "results"))
    if not sets:
        pytest.skip("no committed reference set")
    for name in sets:
        d = REF / name
        p = reference.provenance(d / "summary.csv")
        text = (d / "README.md").read_text()
        for c in p["commits"]:
            assert c[:7] in text
        assert f"{p['cells']} (" in text and "command" in text
        # every cell the summary lists is committed beside it
        n = len(reference.campaign_cells(d))
        assert n == p["cells"], (name, n, p["cells"])


def test_paper_data_picks_the_summary_or_says_what_exists(tmp_path):
    assert reference.dataset("run", "local")[0] == "results/local/summary.csv"
    with pytest.raises(RxbenchError, match="paper_data: 'reference/nope': no .*reference sets here"):
        reference.dataset("reference/nope", "local", str(ROOT / "results"))
    with pytest.raises(RxbenchError, match="is not allowed; allowed values: run"):
        reference.dataset("elsewhere", "local", str(ROOT / "results"))
    with pytest.raises(RxbenchError, match="paper_data"):
        resolve({"paper_data": "../results/local"})


def _fake_run(results, status="ok"):
    src = next(REF.glob("*/summary.csv"), None)
    if src is None:
        pytest.skip("no committed reference set to take cells from")
    run = results / "local"
    cell = next(src.parent.rglob("rep=*.json"))
    rel = cell.relative_to(src.parent)
    (run / rel).parent.mkdir(parents=True)
    data = json.loads(cell.read_text())
    data["status"] = status
    if status != "ok":
        data["reason"] = "a test"
    (run / rel).write_text(json.dumps(data))
    from rxbench.aggregate import write_summary
    write_summary([str(run / rel)], run / "summary.csv")
    return run


def test_make_reference_copies_a_finished_run_and_never_overwrites(tmp_path):
    results = tmp_path / "results"
    run = _fake_run(results)
    # a bench run after the campaign: its cells are not the campaign's (kept, not counted)
    bench = run / "bench" / "20261202T000000Z-tcp" / "results" / "local" / "tcp" / "rep=1.json"
    bench.parent.mkdir(parents=True)
    bench.write_text("{}")
    before = tree_hash(run)
    dst = reference.promote("local", "test-box", str(results), command="make reference")
    assert (dst / bench.relative_to(run)).exists()
    assert len(reference.campaign_cells(dst)) == 1
    assert dst == results / "reference" / "local-test-box"
    assert tree_hash(run) == before                        # the run is left as it was
    assert (dst / "summary.csv").read_bytes() == (run / "summary.csv").read_bytes()
    readme = (dst / "README.md").read_text()
    assert "`make reference`" in readme and "1 ok, 0 unsupported, 0 failed" in readme
    ref_before = tree_hash(dst)
    with pytest.raises(RxbenchError, match="exists; pick another MACHINE"):
        reference.promote("local", "test-box", str(results))
    assert tree_hash(dst) == ref_before
    with pytest.raises(RxbenchError, match="machine name 'Bad Name'"):
        reference.promote("local", "Bad Name", str(results))
    with pytest.raises(RxbenchError, match="not a platform name"):
        reference.promote("reference", "x", str(results))
    with pytest.raises(RxbenchError, match="results/vm/summary.csv does not exist"):
        reference.promote("vm", "x", str(results))


def test_make_reference_refuses_a_run_with_failed_cells(tmp_path):
    results = tmp_path / "results"
    _fake_run(results, status="failed")
    with pytest.raises(RxbenchError, match="1 failed cells"):
        reference.promote("local", "box", str(results))
    assert not (results / "reference").exists()


def _layer_set(results, name, df):
    """A reference set of these summary rows, with their cells copied from
    the committed local-fc2-epyc set."""
    d = results / "reference" / name
    d.mkdir(parents=True)
    for p in df["path"]:
        rel = p.split("/", 2)[2]
        src = REF / "local-fc2-epyc" / rel
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, d / rel)
        if src.with_suffix(".log").is_file():          # and its log, as a campaign leaves it
            shutil.copy2(src.with_suffix(".log"), (d / rel).with_suffix(".log"))
    df.to_csv(d / "summary.csv", index=False)
    (d / "README.md").write_text(f"# {name}\n")
    return d


def test_join_makes_one_set_of_parts_and_refuses_other_commits_and_shared_cells(tmp_path):
    import pandas as pd
    src = REF / "local-fc2-epyc" / "summary.csv"
    if not src.exists():
        pytest.skip("the committed set local-fc2-epyc is not in this checkout")
    df = pd.read_csv(src, low_memory=False)
    eth = df[df["layer"] == "eth"].head(3)
    tcp = df[df["layer"] == "tcp"].head(2)
    results = tmp_path / "results"
    _layer_set(results, "local-x-eth", eth)
    _layer_set(results, "local-x-tcp", tcp)
    dst = reference.join(["local-x-eth", "local-x-tcp"], "local-x", str(results))
    joined = pd.read_csv(dst / "summary.csv", low_memory=False)
    assert len(joined) == 5 and set(joined["layer"]) == {"eth", "tcp"}
    assert len(reference.campaign_cells(dst)) == 5
    # each cell is its own JSON, byte for byte, and its log sits beside it
    for p in df["path"].head(3).tolist() + df[df["layer"] == "tcp"]["path"].head(2).tolist():
        rel = p.split("/", 2)[2]
        src = REF / "local-fc2-epyc" / rel
        assert (dst / rel).read_bytes() == src.read_bytes(), rel
        json.loads((dst / rel).read_text())
        if src.with_suffix(".log").is_file():
            assert (dst / rel).with_suffix(".log").read_bytes() == src.with_suffix(".log").read_bytes()
    readme = (dst / "README.md").read_text()
    assert "Joined from `local-x-eth`, `local-x-tcp`" in readme and "5 ok" in readme
    assert "--machine local-x`" in readme
    for part in ("local-x-eth", "local-x-tcp"):      # each part's own README kept beside it
        assert (dst / f"README.{part}.md").exists()
    # a set is one commit: another commit, or the same layer twice, is refused
    other = tcp.copy()
    other["git_rev"] = "0" * 40
    _layer_set(results, "local-y-tcp", other)
    with pytest.raises(RxbenchError, match="different commits"):
        reference.join(["local-x-eth", "local-y-tcp"], "local-y", str(results))
    _layer_set(results, "local-z-eth", eth)
    with pytest.raises(RxbenchError, match="cell eth/.* is in both local-x-eth and local-z-eth"):
        reference.join(["local-x-eth", "local-z-eth"], "local-z", str(results))
    # the same layer in two parts is fine when their cells differ (the
    # default campaign beside the ndr and cost profiles)
    more = df[df["layer"] == "eth"].iloc[3:5]
    _layer_set(results, "local-w-eth", more)
    dst = reference.join(["local-x-eth", "local-w-eth"], "local-w", str(results))
    assert len(reference.campaign_cells(dst)) == 5
    with pytest.raises(RxbenchError, match="exists"):
        reference.join(["local-x-eth", "local-x-tcp"], "local-x", str(results))
    assert not (results / "reference" / "local-y").exists()
    assert not (results / "reference" / "local-z").exists()
