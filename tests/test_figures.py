"""Figures and tables from the group statistics alone (rxbench.plots,
rxbench.tables; stats.csv and set.json of rxbench/present/statsfile.py):
Ethernet only, TCP only, both; every cell group in a table."""

import re

import pytest

import synthetic
from rxbench import plots, tables
from rxbench.present import figdata
from rxbench.present import groups as G
from rxbench.present import statsfile as SF
from rxbench.present import look

pytestmark = pytest.mark.unit

PDF, PNG = b"%PDF", b"\x89PNG"


def _gs(csv):
    """The group statistics of a summary, as the stats rule writes them."""
    out = csv.with_suffix("") / "stats.csv"
    SF.write(csv, out)
    return SF.read(out)


@pytest.fixture
def eth_only(tmp_path):
    return _gs(synthetic.write(tmp_path / "eth.csv", synthetic.eth_rows()))


@pytest.fixture
def tcp_only(tmp_path):
    return _gs(synthetic.write(tmp_path / "tcp.csv",
                           synthetic.tcp_rows(conns=(1, 4, 64), msgs=(1024, 65536))))


@pytest.fixture
def both(tmp_path):
    rows = (synthetic.eth_rows(cores=(1, 2), sizes=(64, 1518))
            + synthetic.tcp_rows(conns=(1, 8), msgs=(1024, 16384, 65536)))
    return _gs(synthetic.write(tmp_path / "both.csv", rows))


@pytest.fixture
def full(tmp_path):
    """Everything a figure family can show: NDR cells beside saturation
    cells, and TCP cells of a rate-limited sender."""
    eth = [dict(r, search="saturation") for r in synthetic.eth_rows(cores=(1, 2), sizes=(64, 1518))]
    rows = (eth + synthetic.ndr_rows()
            + [dict(r, load="max") for r in synthetic.tcp_rows(conns=(1, 8), msgs=(1024, 65536))]
            + synthetic.load_rows())
    return _gs(synthetic.write(tmp_path / "full.csv", rows))


def test_plan_follows_the_data(eth_only, tcp_only, both, full):
    assert figdata.plan(eth_only) == ["eth_best", "eth_rate", "eth_gbps", "eth_cpu"]  # one core count
    assert figdata.plan(tcp_only) == ["tcp_msg", "tcp_conns", "tcp_cpu"]
    assert figdata.plan(both) == [f for f in plots.FAMILIES if f not in ("eth_ndr", "tcp_load")]
    assert figdata.plan(full) == list(plots.FAMILIES)


def test_ndr_cells_are_not_saturation_lines(full):
    d = figdata.Data(full, "eth")
    sat = d.saturation(d.st)
    assert len(sat) and not (sat["search"] == "ndr").any()
    assert (d.st["search"] == "ndr").any()


def test_every_planned_figure_is_drawn(full, tmp_path):
    # every family: NDR beside saturation cells, TCP at equal load too
    for name in figdata.plan(full):
        pdf, png = tmp_path / f"{name}.pdf", tmp_path / f"{name}.png"
        plots.figure(name, full, pdf, png)
        assert pdf.read_bytes()[:4] == PDF and png.read_bytes()[:4] == PNG, name


def test_eth_only_figures_and_a_tcp_figure_without_tcp_rows(eth_only, tmp_path):
    plots.eth_rate(eth_only, tmp_path / "r.pdf", tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes()[:4] == PNG
    # asked for anyway (the CLI allows it): a placeholder, not a crash
    plots.tcp_msg(eth_only, tmp_path / "t.pdf", tmp_path / "t.png")
    assert (tmp_path / "t.pdf").read_bytes()[:4] == PDF


def test_each_stack_has_its_own_style():
    from rxbench.stacks import registry
    styles = {s: look.style(s) for s in registry.order()}
    assert {"xdp_drop", "af_xdp", "dpdk", "uring_opt", "iperf3"} <= set(styles)
    pairs = [(c, m) for c, m, _ in styles.values()]
    assert len(set(pairs)) == len(pairs)
    assert len({m for _, m, _ in styles.values()}) == len(styles)   # grayscale


def test_non_default_variant_is_labelled_and_styled_apart(eth_only):
    d = figdata.Data(eth_only, "eth")
    assert d.label("af_xdp", ("receiver",)) == "af_xdp"
    assert d.label("af_xdp", ("sender",)) == "af_xdp (napi=sender)"
    a, b = d.line_style("af_xdp", ("receiver",)), d.line_style("af_xdp", ("sender",))
    assert a["color"] == b["color"] and a["marker"] == b["marker"]
    assert a["fillstyle"] != b["fillstyle"] and a["linestyle"] != b["linestyle"]


def test_a_variant_keeps_its_style_whatever_other_variants_exist(tmp_path):
    rows = synthetic.eth_rows(stacks=("xdp_drop", "af_xdp"), sizes=(64,))
    for r in rows:
        if r["stack"] == "af_xdp":
            r["wait"] = "poll"
    for r in synthetic.eth_rows(stacks=("af_xdp",), sizes=(64,), napi=("receiver",)):
        rows.append(dict(r, wait="busy_poll",
                         path=r["path"].replace("/rep=", "/wait=busy_poll/rep=")))
    d = figdata.Data(_gs(synthetic.write(tmp_path / "v.csv", rows)), "eth")
    assert d.variants == ["napi", "wait"] and d.defaults == {"napi": "receiver", "wait": "poll"}
    # napi=sender is the first non-default variant: the style the paper's captions describe
    assert d.variant_index(("sender", None)) == 1 == d.variant_index(("sender", "poll"))
    assert d.variant_index(("receiver", None)) == 0
    assert d.variant_index(("receiver", "busy_poll")) == 2
    assert d.label("af_xdp", ("receiver", "busy_poll")) == "af_xdp (wait=busy_poll)"


def _data_rows(tex: str) -> list[str]:
    body = tex.split(r"\endlastfoot", 1)[1].split(r"\end{longtable}")[0]
    return [r for r in body.split("\\\\\n") if "&" in r]


def test_every_eth_group_is_in_the_table(tmp_path):
    rows = synthetic.eth_rows(stacks=("xdp_drop", "af_xdp", "dpdk"))
    for r in rows:
        if r["stack"] == "dpdk":
            r.update(status="unsupported", reason="dpdk-testpmd is not installed",
                     rx_pps="", offered_pps="", rx_gbps="")
    csv = _gs(synthetic.write(tmp_path / "s.csv", rows))
    tables.eth_table(csv, tmp_path / "t.tex")
    tex = (tmp_path / "t.tex").read_text()
    groups = csv.st
    assert len(_data_rows(tex)) == len(groups) == 3 * 2 * 3
    assert tex.count("n/a$^{1}$") == 6                       # dpdk: napi x sizes
    assert r"$^{1}$ unsupported: dpdk-testpmd is not installed" in tex
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"\begin{longtable}" in tex


def test_every_tcp_group_is_in_the_table(tcp_only, tmp_path):
    tables.tcp_table(tcp_only, tmp_path / "t.tex")
    tex = (tmp_path / "t.tex").read_text()
    groups = tcp_only.st
    rows = _data_rows(tex)
    cells = [c for r in rows for c in r.split("&")[3:-1] if c.strip()]   # the msg columns
    assert len(cells) == len(groups)
    zcrx = groups[groups["stack"] == "uring_zcrx"]
    assert sum("n/a$^{1}$" in c for c in cells) == len(zcrx) > 0
    assert "header split (veth has none)" in tex
    # median [bootstrap interval of the median] of a known group, two decimals
    g = groups[(groups["stack"] == "epoll") & (groups["conns"] == 1) & (groups["msg"] == 1024)
               & (groups["touch"] == 0)].iloc[0]
    assert f"{g.rx_gbps_median:.2f} [{g.rx_gbps_med_lo:.2f}, {g.rx_gbps_med_hi:.2f}]" in tex
    assert f"{g.rx_gbps_mean:.2f} [{g.rx_gbps_ci_lo:.2f}," not in tex
    # iperf3 is a pair, never a server
    assert "iperf3 (sender+server pair)" in tex and r"\texttt{iperf3}" not in tex


def test_partial_failures_show_n_of_reps_with_the_reason(tmp_path):
    rows = synthetic.eth_rows(stacks=("af_xdp",), sizes=(64,), napi=("receiver",))
    rows[1].update(status="failed", reason="rxb-af-xdp crashed", rx_pps="")
    csv = _gs(synthetic.write(tmp_path / "s.csv", rows))
    tables.eth_table(csv, tmp_path / "t.tex")
    tex = (tmp_path / "t.tex").read_text()
    assert "2/3$^{1}$" in tex and "failed: rxb-af-xdp crashed" in tex


def test_environment_table_from_provenance(both, tmp_path):
    tables.env_table(both, tmp_path / "env.tex")
    tex = (tmp_path / "env.tex").read_text()
    assert r"6.18.0-test \#1 SMP" in tex and "Test CPU" in tex and "veth" in tex
    assert r"\texttt{0123456789ab}" in tex                       # short revision
    assert re.search(r"Cells \(repetitions\) & \d+ \(eth: \d+, tcp: \d+\)", tex)


def test_tables_without_rows_of_their_layer(eth_only, tcp_only, tmp_path):
    tables.tcp_table(eth_only, tmp_path / "tcp.tex")
    assert "No TCP cell in this summary" in (tmp_path / "tcp.tex").read_text()
    tables.eth_table(tcp_only, tmp_path / "eth.tex")
    assert "No Ethernet cell in this summary" in (tmp_path / "eth.tex").read_text()


def test_eth_table_shows_medians_and_names_dpdk_on_veth(tmp_path):
    rows = synthetic.eth_rows(stacks=("xdp_drop", "dpdk"), sizes=(64,), napi=("receiver",))
    csv = _gs(synthetic.write(tmp_path / "s.csv", rows))
    tables.eth_table(csv, tmp_path / "t.tex")
    tex = (tmp_path / "t.tex").read_text()
    g = csv.st.iloc[0]
    assert f"{g.rx_pps_median / 1e6:.3f} [{g.rx_pps_med_lo / 1e6:.3f}, " in tex
    assert "DPDK (af\\_xdp PMD on veth)" in tex and "median" in tex and "Student" not in tex


def test_best_table_states_the_rule_and_each_stacks_choice(tmp_path):
    rows = synthetic.eth_rows(sizes=(64, 1518), reps=5)
    csv = _gs(synthetic.write(tmp_path / "s.csv", rows))
    tables.best_table(csv, tmp_path / "b.tex")
    tex = (tmp_path / "b.tex").read_text()
    body = _data_rows(tex)
    # chosen within one NAPI placement and wait class: stacks x sizes x placements
    assert len(body) == 3 * 2 * 2
    assert "the default configuration wins" in tex          # the rule, in the caption
    assert "same NAPI placement and the same wait class" in tex
    # napi=sender halves the rate here, yet it is never ranked against the receiver's
    assert sum("napi=sender" in r for r in body) == 3 * 2
    best = csv.best("eth")
    r = best[(best["stack"] == "af_xdp") & (best["size"] == 64)].iloc[0]
    assert f"{r.rx_pps_median / 1e6:.3f} [{r.rx_pps_med_lo / 1e6:.3f}, {r.rx_pps_med_hi / 1e6:.3f}]" in tex


def test_ndr_table_beside_the_saturation_rate(full, tmp_path):
    tables.ndr_table(full, tmp_path / "n.tex")
    tex = (tmp_path / "n.tex").read_text()
    rows = tables.ndr_rows(full)
    assert len(rows) == 4 and all(r["sat"] != "--" and r["trials"] != "--" for r in rows)
    df = G.load(full.facts["summary"])
    x = df[(df.search == "ndr") & (df["stack"] == "xdp_drop") & (df["size"] == 64)].iloc[0]
    assert f"{x.ndr_pps / 1e6:.3f}" in tex and f"{x.pdr_pps / 1e6:.3f}" in tex


def test_tcg_results_carry_the_caveat_in_tables_and_figures(tmp_path):
    rows = [dict(r, platform="vm", accel="tcg") for r in synthetic.eth_rows(sizes=(64,))]
    csv = _gs(synthetic.write(tmp_path / "vm.csv", rows))
    assert figdata.Data(csv, "eth").tcg and not figdata.Data(
        _gs(synthetic.write(tmp_path / "l.csv", synthetic.eth_rows(sizes=(64,)))), "eth").tcg
    for t in ("eth", "best", "seed", "env"):
        tables.TABLES[t](csv, tmp_path / f"{t}.tex")
        assert "say nothing about the stacks" in (tmp_path / f"{t}.tex").read_text(), t
    # the footer every family shares (plots._finish) carries the caveat
    plots.figure("eth_best", csv, tmp_path / "b.pdf", tmp_path / "b.png")
    assert _pdf_has(tmp_path / "b.pdf", "say nothing about the stacks")


def _pdf_has(pdf, word) -> bool:
    import shutil
    import subprocess
    if not shutil.which("pdftotext"):
        pytest.skip("pdftotext is not installed")
    return word in subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True,
                                  text=True).stdout


def test_equal_load_keeps_only_cells_that_reached_their_target(tmp_path):
    rows = synthetic.load_rows(miss=(("epoll", 3),))
    gs = _gs(synthetic.write(tmp_path / "l.csv", rows))
    df = G.load(gs.facts["summary"])
    reached = G.load_reached(df)
    assert reached[(df["stack"] == "epoll") & (df.load == "3")].eq(False).all()
    assert reached[df["stack"] == "uring_opt"].all()
    st = gs.subset("load_reached")
    assert not ((st["stack"] == "epoll") & (st.load.astype(str) == "3")).any()
    assert ((st["stack"] == "epoll") & (st.load.astype(str) == "1")).any()
