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
pytestmark = [pytestmark, pytest.mark.unit, pytest.mark.slow]


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


def _flat(tex: str) -> str:
    """A generated TeX clause as pdftotext prints it."""
    t = re.sub(r"\\texttt\{([^}]*)\}", r"\1", tex)
    t = t.replace("\\,", " ").replace("\\_", " ").replace("\\%", "%").replace("\\", "")
    return re.sub(r"\s+", " ", t)


def test_comparative_sentences_hold_under_the_interval_test(built):
    csv, M, text, _ = built
    df = S.load(csv)
    st = S.cell_stats(df)
    variants = S.layer_variants(st, "eth")
    defaults = S.variant_defaults(df, variants)
    d, f = M.defs, M.flags
    small, cores = int(d["EthSmallSize"]), int(d["EthCores"])
    best = S.best_config(st, "eth", defaults=defaults)
    at = best[(best["size"].map(S.norm) == small) & (best["cores"].map(S.norm) == cores)]
    users = at[at["stack"] != "xdp_drop"].sort_values("rx_pps_median", ascending=False)
    ceil = at[at["stack"] == "xdp_drop"].iloc[0]
    top = users.iloc[0]
    assert d["TopUserStackSmall"].startswith(f"\\texttt{{{tables.tex_escape(top['stack'])}}}")
    # the top user-space receiver against the ceiling, as the interval test says
    c = S.compare_stats(top, ceil, "rx_pps")
    claim = d["EthCeilingClaimSmall"]
    if c.apart:
        assert " receives more than " in claim
    else:
        assert ("not told apart" in claim or "not compared" in claim
                or ("not ranked" in claim and c.bound))
        assert "more than" not in claim
    assert _flat(claim) in text                       # the abstract and the results say it
    # against every other user-space receiver, each at its best
    nic = S.context(df)["nic_driver"]
    name = lambda r: paper.label_tex(r, variants, defaults, nic)    # noqa: E731
    for _, r in users.iloc[1:].iterrows():
        c = S.compare_stats(top, r, "rx_pps")
        said = f"{name(top)} receives more than {name(r)} (" in d["EthUserClaimsSmall"]
        assert (c.apart and c.order == ">") == said, name(r)
        if not said:
            assert f"{name(top)} and {name(r)} are not" in d["EthUserClaimsSmall"]
    # every generated comparative clause made it into the PDF
    plain = text.replace("\u2019", "'")
    for name in ("EthUserClaimsSmall", "EthPairSleep", "NapiClaim", "TcpClaims", "TcpPairClaim"):
        if d.get(name, "n/a") != "n/a":
            assert _flat(d[name])[:120] in plain, name
    # beside the seed: each stack at its best, by the interval test
    rows = [r for r in tables.seed_rows(csv) if r["dpdk"] is not None and r["af_xdp"] is not None]
    cmp = [S.compare_stats(r["af_xdp"], r["dpdk"], "rx_pps") for r in rows]
    n_above = sum(c.apart and c.order == ">" for c in cmp)
    assert (f"received more than dpdk at {n_above} of them") in text.replace("af xdp", "af_xdp")


def test_no_tcp_ranking_rests_on_a_sender_bound_cell(built):
    csv, M, text, _ = built
    st = S.cell_stats(S.load(csv))
    tcp = st[(st["layer"] == "tcp") & (st["status"] == "ok") & (st["stack"] != "iperf3")]
    claims = M.defs["TcpClaims"]
    if not M.flags["HaveTcpRank"]:
        assert claims == "n/a" and "ranks no servers" in text
        return
    conns = int(re.match(r"(\d+)", M.defs["TcpRankConnsText"]).group(1))
    msg = 1024 * int(re.match(r"(\d+)", M.defs["TcpRankMsg"]).group(1))
    point = tcp[(tcp["conns"].map(S.norm) == conns) & (tcp["msg"].map(S.norm) == msg)]
    for _, r in point.iterrows():
        name = f"\\texttt{{{tables.tex_escape(r['stack'])}}}"
        if r["generator_bound_reps"] > 0:
            # a sender-bound group of the point is not named in the ranking
            # (unless another touch variant of the same server is the one ranked)
            ranked = [c for c in claims.split("; ") if name in c]
            assert not ranked or not any(
                S.sender_bound(x) for _, x in point[point["stack"] == r["stack"]].iterrows()
                if S.norm(x.get("touch")) == (1 if "every byte" in M.defs["TcpRankTouch"] else 0))


def test_saturation_cells_are_never_called_throughput_and_iperf3_is_a_pair(built):
    csv, M, text, _ = built
    allowed = r"not a throughput in the sense|zero-loss throughput|conditional throughput"
    rest = re.sub(allowed, "", text)
    assert "throughput" not in rest.lower(), re.findall(r".{60}throughput.{60}", rest.lower())
    assert "maximum receive rate under overload" in text
    assert "% of iperf3" not in text and "of the reference" not in text
    assert "iperf3 (sender+server pair)" in text
    if "veth" in S.context(S.load(csv))["nic_driver"]:
        assert "DPDK (af xdp PMD on veth" in text or "DPDK (af_xdp PMD on veth" in text
    assert "Each stack at its best" in text and "Table 2" in text


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
