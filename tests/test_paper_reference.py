"""The paper built from the committed reference sets (not synthetic data):
each comparative sentence holds under the interval test it claims
(recomputed here from the group statistics); it names no platform, tool or
command that is not in the code or the data; unsupported reasons are one
footnote each, without random interface names.

Every set gets its statistics, tables and numbers.tex (cheap: no figure, no
LaTeX); one set gets the whole PDF (figures and latexmk), the set with the
most layers (then the most cells), and the checks on the printed text run
on it. Whether a generated clause reaches the text is the template's
business (paper/paper.tex), the same for every set."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from rxbench import paper, plots, tables
from rxbench.platforms import PLATFORMS
from rxbench.present import figdata
from rxbench.present import groups as G
from rxbench.present import statsfile as SF
from rxbench.present.claims import label_tex
from rxbench.present.numbers import numbers, write_numbers

ROOT = Path(__file__).resolve().parents[1]
SETS = sorted((ROOT / "results" / "reference").glob("*/summary.csv"))
pytestmark = pytest.mark.skipif(not SETS, reason="no committed reference set")
pytestmark = [pytestmark, pytest.mark.unit, pytest.mark.slow]


def _pdf_set():
    """The set whose whole paper is built: most layers, then most cells."""
    def size(csv):
        df = pd.read_csv(csv, usecols=["layer"])
        return (df["layer"].nunique(), len(df))
    return max(SETS, key=size) if SETS else None


PDF_SET = _pdf_set()


@pytest.fixture(scope="module", params=SETS, ids=lambda p: p.parent.name)
def built(request, tmp_path_factory):
    """(summary, group statistics, numbers, the PDF's text or None, folder):
    the rules' steps in-process, the figures and PDF for PDF_SET only."""
    csv = request.param
    pdf = csv == PDF_SET
    if pdf and (not shutil.which("latexmk") or not shutil.which("pdftotext")):
        pytest.skip("latexmk or pdftotext not installed (see workflow/envs/debian-packages.txt)")
    out = tmp_path_factory.mktemp("paper")
    name = f"reference-{csv.parent.name}"
    gen = out / "generated" / name
    SF.write(csv, gen / "stats.csv")
    gs = SF.read(gen / "stats.csv")
    for t, f in tables.TABLES.items():
        f(gs, gen / f"{t}_table.tex")
    label = f"reference set reference/{csv.parent.name}"
    write_numbers(gen / "stats.csv", out / "generated" / "numbers.tex", f"generated/{name}", label)
    text = None
    if pdf:
        for fam in figdata.plan(gs):
            plots.figure(fam, gs, gen / f"{fam}.pdf", gen / f"{fam}.png")
        paper.build_pdf(out, source_dir=ROOT / "paper")
        text = subprocess.run(["pdftotext", "-layout", str(out / "paper.pdf"), "-"],
                              capture_output=True, text=True, check=True).stdout
        text = re.sub(r"\s+", " ", text)
    return csv, gs, numbers(gs, f"generated/{name}", label), text, out


def _printed(text):
    if text is None:
        pytest.skip(f"the PDF is built for {PDF_SET.parent.name} only")
    return text


def _flat(tex: str) -> str:
    """A generated TeX clause as pdftotext prints it."""
    t = re.sub(r"\\texttt\{([^}]*)\}", r"\1", tex)
    t = t.replace("\\,", " ").replace("\\_", " ").replace("\\%", "%").replace("\\", "")
    return re.sub(r"\s+", " ", t)


def test_comparative_sentences_hold_under_the_interval_test(built):
    csv, gs, M, text, _ = built
    st = gs.st
    variants = G.layer_variants(st, "eth")
    defaults = gs.variant_defaults(variants)
    d = M.defs
    small, cores = int(d["EthSmallSize"]), int(d["EthCores"])
    # the stored choice is the rule's, recomputed here from the groups
    best = G.best_config(st, "eth", defaults=defaults)
    assert list(best.index) == list(gs.best("eth").index)
    at = best[(best["size"].map(G.norm) == small) & (best["cores"].map(G.norm) == cores)]
    # within each NAPI placement and wait class: the top stack against each
    # other, as the interval test says (and nothing across them:
    # tests/test_no_cross_class.py)
    nic = gs.context()["nic_driver"]
    name = lambda r: label_tex(r, variants, defaults, nic)    # noqa: E731
    claim = d["EthClassClaimsSmall"]
    users = at[at["stack"] != "xdp_drop"]
    for _, g in users.groupby([users["napi"].map(G.norm), users["wait_class"].map(G.norm)]):
        g = g.sort_values("rx_pps_median", ascending=False)
        top = g.iloc[0]
        for _, r in g.iloc[1:].iterrows():
            c = G.compare_stats(top, r, "rx_pps")
            said = f"{name(top)} receives more than {name(r)} (" in claim
            assert (c.apart and c.order == ">") == said, name(r)
            if not said:
                assert f"{name(top)} and {name(r)} are not" in claim
    # CPU cost below saturation: woken receivers at one size, placement and
    # load, each pair as the interval test on the busy share says
    eth = st[(st["layer"] == "eth") & (st["status"] == "ok")]
    paced = G.paced(eth)
    cost = d.get("EthLoadWokenClaims", "n/a")
    cv = [v for v in variants if v not in ("load", "napi")]
    cname = lambda r: label_tex(r, cv, gs.variant_defaults(cv), nic)    # noqa: E731
    woken = paced[paced["wait_class"].map(G.norm) == "woken"] if len(paced) else paced
    for _, g in woken.groupby([woken["size"].map(G.norm), woken["napi"].map(G.norm),
                               woken["load"].map(G.load_target)]) if len(woken) else []:
        rows = [r for _, r in g.iterrows()]
        for i in range(len(rows)):
            for j in range(i + 1, len(rows)):
                c = G.compare_stats(rows[i], rows[j], "receiver_cpu_frac")
                hi, lo = (rows[i], rows[j]) if c.order == ">" else (rows[j], rows[i])
                said = f"{cname(hi)} keeps more of its core busy than {cname(lo)} (" in cost
                assert c.apart == said, (cname(rows[i]), cname(rows[j]))
                if not said:
                    assert ("not told apart" in cost or "not compared" in cost
                            or "no pair is compared" in cost)
    # beside the seed: each stack at its best, by the interval test
    rows = [r for r in tables.seed_rows(gs) if r["dpdk"] is not None and r["af_xdp"] is not None]
    cmp = [G.compare_stats(r["af_xdp"], r["dpdk"], "rx_pps") for r in rows]
    n_above = sum(c.apart and c.order == ">" for c in cmp)
    assert int(d["OursAfXdpAboveDpdk"]) == n_above
    if text is None:
        return
    assert _flat(claim)[:120] in text.replace("\u2019", "'")   # the results say it
    # every generated comparative clause made it into the PDF
    plain = text.replace("\u2019", "'")
    for name in ("EthClassClaimsSmall", "TcpClaims", "TcpPairClaim"):   # (the wait pairs are panels of the class claims)
        if d.get(name, "n/a") != "n/a":
            assert _flat(d[name])[:120] in plain, name
    if rows:      # (the seed's receivers spin: compared only where both spun here)
        assert (f"received more than dpdk at {n_above} of them") in text.replace("af xdp", "af_xdp")
    else:
        assert "In the seed, DPDK received more" not in text


def test_no_tcp_ranking_rests_on_a_sender_bound_cell(built):
    csv, gs, M, text, _ = built
    st = gs.st
    tcp = st[(st["layer"] == "tcp") & (st["status"] == "ok") & (st["stack"] != "iperf3")]
    claims = M.defs["TcpClaims"]
    if not M.flags["HaveTcpRank"]:
        assert claims == "n/a"
        assert text is None or "ranks no servers" in text
        return
    conns = int(re.match(r"(\d+)", M.defs["TcpRankConnsText"]).group(1))
    msg = 1024 * int(re.match(r"(\d+)", M.defs["TcpRankMsg"]).group(1))
    point = tcp[(tcp["conns"].map(G.norm) == conns) & (tcp["msg"].map(G.norm) == msg)]
    for _, r in point.iterrows():
        name = f"\\texttt{{{tables.tex_escape(r['stack'])}}}"
        if r["generator_bound_reps"] > 0:
            # a sender-bound group of the point is not named in the ranking
            # (unless another touch variant of the same server is the one ranked)
            ranked = [c for c in claims.split("; ") if name in c]
            assert not ranked or not any(
                G.sender_bound(x) for _, x in point[point["stack"] == r["stack"]].iterrows()
                if G.norm(x.get("touch")) == (1 if "every byte" in M.defs["TcpRankTouch"] else 0))


def test_saturation_cells_are_never_called_throughput_and_iperf3_is_a_pair(built):
    csv, gs, M, text, _ = built
    text = _printed(text)
    allowed = r"not a throughput in the sense|zero-loss throughput|conditional throughput"
    rest = re.sub(allowed, "", text)
    assert "throughput" not in rest.lower(), re.findall(r".{60}throughput.{60}", rest.lower())
    assert "maximum receive rate under overload" in text
    assert "% of iperf3" not in text and "of the reference" not in text
    assert "iperf3 (sender+server pair)" in text
    if "veth" in gs.context()["nic_driver"]:
        assert "DPDK (af xdp PMD on veth" in text or "DPDK (af_xdp PMD on veth" in text
    assert "Each stack at its best" in text and "Table 2" in text


def test_names_only_what_exists_and_ran(built):
    csv, gs, M, text, _ = built
    ran = set(gs.provenance["platforms"])
    assert ran == set(pd.read_csv(csv)["platform"].astype(str))
    ok = pd.read_csv(csv).query("status == 'ok'")
    assert M.flags["ZcrxNotRun"] == (not (ok["stack"] == "uring_zcrx").any())
    text = _printed(text)
    if not (ROOT / "flake.nix").exists():
        assert "nix develop" not in text
    for name in ("vm", "ssh", "g5k", "Grid'5000"):
        if name not in PLATFORMS and name not in ran:
            assert not re.search(rf"\b{re.escape(name)}\b", text), name
    assert f"measured on {', '.join(sorted(ran))}" in text
    if not (ok["stack"] == "uring_zcrx").any():
        assert "no such cell ran in this data set" in text


def test_unsupported_reasons_are_one_footnote_each_without_random_names(built):
    csv, gs, M, text, out = built
    gen = out / M.defs["RxGenDir"]
    for t in ("eth", "tcp"):
        tex = (gen / f"{t}_table.tex").read_text()
        assert not re.search(r"rxb-?[0-9a-f]{6,}", tex), t
    for notes in (tables.eth_rows(gs)[2], tables.tcp_rows(gs)[3]):
        # one footnote per distinct reason: none repeats another but for a name
        assert len(notes) == len({re.sub(r"\W+", " ", n) for n in notes}), notes
        zcrx = [n for n in notes if "ZCRX_IFQ" in n]
        assert len(zcrx) <= 1, zcrx
