"""The paper built from a committed reference set (not synthetic data):
its first page and figure captions name the data set; each comparative
sentence holds under the interval test it claims (recomputed here from the
summary with rxbench.paper.apart); it names no platform, tool or command
that is not in the code or the data; unsupported reasons are one footnote
each, without random interface names."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from rxbench import paper, reference, tables
from rxbench import stats as S
from rxbench.platforms import PLATFORMS

ROOT = Path(__file__).resolve().parents[1]
SETS = sorted((ROOT / "results" / "reference").glob("*/summary.csv"))
pytestmark = pytest.mark.skipif(not SETS, reason="no committed reference set")


@pytest.fixture(scope="module", params=SETS, ids=lambda p: p.parent.name)
def built(request, tmp_path_factory):
    csv = request.param
    if not shutil.which("latexmk") or not shutil.which("pdftotext"):
        pytest.skip("latexmk or pdftotext not installed (see workflow/envs/debian-packages.txt)")
    out = tmp_path_factory.mktemp("paper")
    paper.build_all(csv, out, pdf=False, source_dir=ROOT / "paper")
    label = f"reference set reference/{csv.parent.name}"
    gen = f"generated/{S.context(S.load(csv))['platform']}"
    paper.write_numbers(csv, out / "generated" / "numbers.tex", gen, label)
    paper.build_pdf(out, source_dir=ROOT / "paper")
    text = subprocess.run(["pdftotext", "-layout", str(out / "paper.pdf"), "-"],
                          capture_output=True, text=True, check=True).stdout
    return csv, paper.numbers(csv, gen, label), re.sub(r"\s+", " ", text), out


def _group(st, defaults, stack, size, cores):
    """One Ethernet group at the default variants (the text's comparisons)."""
    g = st[(st["layer"] == "eth") & (st["stack"] == stack) & (st["status"] == "ok")
           & (st["size"].map(S.norm) == size) & (st["cores"].map(S.norm) == cores)]
    for k, v in defaults.items():
        vals = g[k].map(S.norm)
        g = g[vals.isna() | (vals == v)]
    return g


def test_first_page_and_every_figure_name_the_data_set(built):
    csv, M, text, _ = built
    prov = reference.provenance(csv)
    first = text[:1500]
    assert f"reference/{csv.parent.name}" in first
    assert prov["commits"][0][:12] in first and prov["first"][:10] in first
    captions = re.findall(r"Figure \d+: (.*?)(?=Figure \d+:|\Z)", text)
    assert captions
    for c in captions:
        assert "Data: reference set" in c and prov["commits"][0][:12] in c, c[:300]


def test_comparative_sentences_hold_under_the_interval_test(built):
    csv, M, text, _ = built
    df = S.load(csv)
    st = S.cell_stats(df)
    defaults = S.variant_defaults(df, S.layer_variants(st, "eth"))
    d, f = M.defs, M.flags
    small, cores = int(d["EthSmallSize"]), int(d["EthCores"])
    ceil = _group(st, defaults, "xdp_drop", small, cores)
    users = [(s, _group(st, defaults, s, small, cores)) for s in dict.fromkeys(st["stack"])
             if s != "xdp_drop"]
    users = sorted([u for u in users if len(u[1])], key=lambda u: -u[1]["rx_pps_mean"].iloc[0])
    best, worst = users[0], users[-1]
    # "the fastest user-space receiver": the highest mean
    assert d["BestUserStack"] == f"\\texttt{{{tables.tex_escape(best[0])}}}"
    assert d["WorstUserStack"] == f"\\texttt{{{tables.tex_escape(worst[0])}}}"
    # the interval claims, as the text words them
    apart_ceil = paper.apart(best[1], ceil, "rx_pps")
    assert f["BestCeilingApart"] == apart_ceil
    if apart_ceil:
        assert "the two confidence intervals do not overlap" in text
    else:
        assert "the two confidence intervals overlap" in text
        assert "intervals overlap: this data set does not tell them apart" in text   # abstract
    apart_bw = paper.apart(best[1], worst[1], "rx_pps")
    assert f["BestWorstApart"] == apart_bw
    assert ("and the intervals are apart" in text) == apart_bw
    # beside the seed: how many sizes, with the intervals apart
    rows = [r for r in tables.seed_rows(csv) if r["dpdk"] is not None and r["af_xdp"] is not None]
    above = [r for r in rows if r["af_xdp"]["rx_pps_mean"] > r["dpdk"]["rx_pps_mean"]]
    n_apart = sum(paper.apart(pd.DataFrame([r["af_xdp"]]), pd.DataFrame([r["dpdk"]]), "rx_pps")
                  for r in above)
    assert (f"received more than dpdk at {len(above)} of them, with the intervals apart at "
            f"{n_apart}") in text.replace("af xdp", "af_xdp")


def test_names_only_what_exists_and_ran(built):
    csv, M, text, _ = built
    if not (ROOT / "flake.nix").exists():
        assert "nix develop" not in text
    ran = set(S.load(csv)["platform"].astype(str))
    for name in ("vm", "ssh", "g5k", "Grid'5000"):
        if name not in PLATFORMS and name not in ran:
            assert not re.search(rf"\b{re.escape(name)}\b", text), name
    assert f"measured on {', '.join(sorted(ran))}" in text
    ok = S.load(csv).query("status == 'ok'")
    if not (ok["stack"] == "uring_zcrx").any():
        assert "no such cell ran in this data set" in text


def test_unsupported_reasons_are_one_footnote_each_without_random_names(built):
    csv, M, text, out = built
    gen = out / M.defs["RxGenDir"]
    for t in ("eth", "tcp"):
        tex = (gen / f"{t}_table.tex").read_text()
        assert not re.search(r"rxb-?[0-9a-f]{6,}", tex), t
    for notes in (tables.eth_rows(csv)[2], tables.tcp_rows(csv)[3]):
        # one footnote per distinct reason: none repeats another but for a name
        assert len(notes) == len({re.sub(r"\W+", " ", n) for n in notes}), notes
        zcrx = [n for n in notes if "ZCRX_IFQ" in n]
        assert len(zcrx) <= 1, zcrx
