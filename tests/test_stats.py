"""Statistics (rxbench/stats.py) and cell groups with their verdicts
(rxbench/present/groups.py): known inputs, known answers."""

import math

import pandas as pd
import pytest

import synthetic
from rxbench import stats as S
from rxbench.present import groups as G
from rxbench.present import statsfile as SF
from rxbench.present import look

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("dof,t", [(1, 12.706204736), (2, 4.302652730), (4, 2.776445105),
                                   (9, 2.262157163), (29, 2.045229642), (100, 1.983971519)])
def test_t_quantile_matches_the_table(dof, t):
    assert S.t_quantile(0.95, dof) == pytest.approx(t, abs=1e-8)


def test_three_values_by_hand():
    # mean 2, s = 1, t(0.975, 2) = 4.302653: 2 -/+ 4.302653 / sqrt(3) = 2 -/+ 2.484138
    s = S.summarize([3.0, 1.0, 2.0])
    assert (s.n, s.mean, s.median, s.sd) == (3, 2.0, 2.0, 1.0)
    assert s.ci_lo == pytest.approx(-0.484138, abs=1e-6)
    assert s.ci_hi == pytest.approx(4.484138, abs=1e-6)
    assert s.cv == pytest.approx(0.5)
    assert s.noisy


def test_noisy_only_above_five_percent():
    assert not S.summarize([100, 101, 102]).noisy          # CV 1 %
    assert S.summarize([100, 110, 120]).noisy              # CV 9 %
    # CV = 5 % exactly (mean 20, s = 1) is not above the threshold
    exact = S.summarize([19, 20, 21])
    assert exact.cv == pytest.approx(0.05) and not exact.noisy


def test_one_value_has_no_interval_and_none_is_empty():
    one = S.summarize([7.0])
    assert one.n == 1 and one.mean == 7.0 and math.isnan(one.ci_lo) and not one.noisy
    none = S.summarize([float("nan"), None])
    assert none.n == 0 and math.isnan(none.mean)


@pytest.fixture
def mixed(tmp_path):
    rows = synthetic.eth_rows() + synthetic.tcp_rows(conns=(1, 8), msgs=(1024, 65536))
    # one group with a failed repetition among ok ones
    rows[0] = {**rows[0], "status": "failed", "reason": "rxb-af-xdp exited 1",
               "rx_pps": "", "offered_pps": "", "rx_gbps": ""}
    return synthetic.write(tmp_path / "summary.csv", rows)


def test_every_group_with_its_variants_and_status(mixed):
    df = G.load(mixed)
    assert G.variant_columns(df) == ["napi", "touch"]
    assert G.variant_defaults(df) == {"napi": "receiver", "touch": 0}
    st = G.cell_stats(df)
    eth = st[st["layer"] == "eth"]
    tcp = st[st["layer"] == "tcp"]
    assert len(eth) == 3 * 2 * 3                            # stacks x napi x sizes
    # servers x conns x msgs x touch, + iperf3 (no touch variant)
    assert len(tcp) == 5 * 2 * 2 * 2 + 1 * 2 * 2
    assert (st.n_reps == 3).all()
    zcrx = tcp[tcp["stack"] == "uring_zcrx"]
    assert (zcrx.status == "unsupported").all() and (zcrx.n_ok == 0).all()
    assert zcrx.reason.str.contains("header split").all()
    # the stack order of the paper, default variant first
    assert list(dict.fromkeys(eth["stack"])) == ["xdp_drop", "af_xdp", "af_packet"]
    assert eth.napi.iloc[0] == "receiver"


def test_group_values_match_the_csv(mixed):
    df = pd.read_csv(mixed)
    st = G.cell_stats(G.load(mixed))
    sel = (df["stack"] == "af_xdp") & (df["size"] == 512) & (df["napi"] == "sender")
    want = S.summarize(df[sel].rx_pps.tolist())
    got = st[(st["stack"] == "af_xdp") & (st["size"] == 512) & (st["napi"] == "sender")].iloc[0]
    assert got.rx_pps_mean == pytest.approx(want.mean)
    assert got.rx_pps_ci_lo == pytest.approx(want.ci_lo)
    assert got.rx_pps_n == 3 and got.rx_pps_median == pytest.approx(want.median)
    # the partly failed group: ok, 2 of 3, the failure's reason kept
    part = st.iloc[0]
    assert (part["stack"], part["status"], part["n_ok"], part["n_reps"]) == ("xdp_drop", "ok", 2, 3)
    assert part["reason"] == "failed: rxb-af-xdp exited 1"


def test_stats_csv_is_machine_readable(mixed, tmp_path):
    SF.write(mixed, tmp_path / "stats.csv")
    back = pd.read_csv(tmp_path / "stats.csv")
    for col in ("subset", "stack", "napi", "touch", "status", "reason", "n_ok", "rx_pps_ci_lo",
                "rx_gbps_cv", "noisy", "overloaded", "sender_bound", "best"):
        assert col in back.columns
    st = G.cell_stats(G.load(mixed))
    assert len(back[back["subset"] == "all"]) == len(st)
    # read back, the numbers are the ones computed (full precision)
    gs = SF.read(tmp_path / "stats.csv")
    assert gs.st["rx_pps_med_lo"].equals(st["rx_pps_med_lo"].astype(float))


def test_no_rows_of_a_layer_is_fine(tmp_path):
    eth_only = synthetic.write(tmp_path / "eth.csv", synthetic.eth_rows())
    assert set(G.cell_stats(G.load(eth_only))["layer"]) == {"eth"}
    df = G.load(eth_only)
    st = G.cell_stats(df)
    ctx = SF.context(df, st, "tcp")
    assert ctx["n_text"] == "n = 0"
    assert SF.context(df, st, "eth")["line_note"].startswith("no line rate: veth")


def test_median_ci_is_reproducible_and_brackets_the_median():
    xs = [1.23, 1.99, 2.31, 1.5, 1.7]
    lo, hi = S.median_ci(xs)
    assert (lo, hi) == S.median_ci(list(reversed(xs)))     # fixed seed, order-free
    assert lo <= 1.7 <= hi and lo >= min(xs) and hi <= max(xs)
    assert all(math.isnan(v) for v in S.median_ci([1.0, 2.0]))
    s = S.summarize(xs)
    assert (s.med_lo, s.med_hi) == (lo, hi)


def test_interval_test_says_only_what_the_data_support():
    a = [1.40, 1.42, 1.41, 1.43, 1.39]
    b = [1.15, 1.17, 1.16, 1.18, 1.14]
    c = S.compare(a, b)
    assert c.apart and c.order == ">" and c.ratio == pytest.approx(1.41 / 1.16)
    assert "1.22 times" in S.claim("af_xdp", a, "dpdk", b) and "apart" in S.claim("af_xdp", a, "dpdk", b)
    # XDP_DROP's committed reps vs AF_XDP's: one noisy sample overlaps
    noisy = [1.233, 1.992, 2.313, 1.385, 1.6]
    c = S.compare(noisy, a)
    assert not c.apart and c.order == "~"
    assert "not told apart" in S.claim("xdp_drop", noisy, "af_xdp", a)
    assert "cannot be compared" in S.claim("x", [1, 2], "y", [3, 4, 5])


def test_steady_state_flags_drift_and_stalls():
    snap = lambda rates: [{"t_ns": i * 10**9, "packets": sum(rates[:i])} for i in range(len(rates) + 1)]
    assert S.steady_state(snap([100] * 6))["steady"] is True
    r = S.steady_state(snap([100, 100, 100, 80, 80, 80]))
    assert r["steady"] is False and r["drift"] == pytest.approx(-0.2) and "drifts" in r["reason"]
    r = S.steady_state(snap([100, 10, 100, 100, 10, 100]))
    assert r["steady"] is False and "below half" in r["reason"]
    assert S.steady_state(snap([100, 100]))["steady"] is None


def test_best_config_rule():
    rows = []
    for wait, vals in (("poll", [1.00, 1.02, 1.01, 0.99, 1.00]),
                       ("spin", [1.01, 1.03, 1.02, 1.00, 1.04]),
                       ("busy_poll", [0.5, 0.52, 0.51, 0.5, 0.49])):
        s = S.summarize(vals)
        rows.append({"platform": "local", "layer": "eth", "stack": "af_xdp", "cores": 1,
                     "size": 64, "wait": wait, "n_reps": 5, "n_ok": 5, "status": "ok",
                     "rx_pps_median": s.median, "rx_pps_med_lo": s.med_lo,
                     "rx_pps_med_hi": s.med_hi})
    st = pd.DataFrame(rows)
    best = G.best_config(st)
    # spin has the highest median, but poll (the default) is not told apart from it
    assert list(best["wait"]) == ["poll"] and "default" in best.iloc[0]["best_rule_note"]
    st.loc[st["wait"] == "spin", ["rx_pps_median", "rx_pps_med_lo", "rx_pps_med_hi"]] = [2, 1.9, 2.1]
    assert list(G.best_config(st)["wait"]) == ["spin"]
    assert look.label("dpdk") == "DPDK (af_xdp PMD on veth)"
    assert look.label("dpdk", "virtio_net") == "dpdk"


def test_host_stratum_and_stratified_stats():
    df = pd.DataFrame({"platform": "local", "layer": "eth", "stack": "xdp_drop", "cores": 1,
                       "size": 64, "status": "ok", "reason": None, "generator_bound": False,
                       "rx_pps": [1.6e6, 1.63e6, 1.1e6, 1.62e6, 1.0e6],
                       "pingpong_ns": [46, 47, 380, 50, 48],
                       "pingpong_during_ns": [45, None, 390, 48, 400],
                       "steady": [True, True, True, False, True]})
    assert list(G.host_stratum(df)) == ["close", "close", "far", "close", "moved"]
    frame, _ = SF.build(df)
    close = frame[frame["subset"] == "host_close"].iloc[0]
    assert close["n_ok"] == 2 and close["rx_pps_median"] == pytest.approx(1.615e6)
    assert frame[frame["subset"] == "host_other"].iloc[0]["n_ok"] == 3
    assert frame[frame["subset"] == "all"].iloc[0]["n_ok"] == 5


def test_among_matches_a_missing_value_in_a_float_column():
    s = pd.Series([float("nan"), 0.0, 1.0])
    assert list(G.among(s, [None, 0])) == [True, True, False]    # pandas' isin says False, True, False
    assert list(G.among(pd.Series([None, "ndr", "saturation"]), [None, "saturation"])) == [True, False, True]


def test_compare_stats_agrees_with_compare_on_the_values():
    a, b = [1.40, 1.42, 1.41, 1.43, 1.39], [1.15, 1.17, 1.16, 1.18, 1.14]
    sa, sb = S.summarize(a), S.summarize(b)
    rec = lambda s: {"m_median": s.median, "m_med_lo": s.med_lo, "m_med_hi": s.med_hi}  # noqa
    assert G.compare_stats(rec(sa), rec(sb), "m") == S.compare(a, b)
    assert G.sender_bound({"generator_bound_reps": 1}) and not G.sender_bound({"generator_bound_reps": 0})


def _group(napi, vals, bottlenecks, stack="xdp_drop"):
    s = S.summarize([v * 1e6 for v in vals])
    return {"platform": "local", "layer": "eth", "stack": stack, "cores": 1, "size": 64,
            "napi": napi, "n_reps": len(vals), "n_ok": len(vals), "status": "ok",
            "rx_pps_n": len(vals), "rx_pps_median": s.median, "rx_pps_med_lo": s.med_lo,
            "rx_pps_med_hi": s.med_hi,
            "receiver_bound_reps": sum(b == "receiver" for b in bottlenecks)}


def test_cell_stats_counts_the_repetitions_whose_receiver_set_the_rate():
    df = pd.DataFrame({"platform": "local", "layer": "eth", "stack": "xdp_drop", "cores": 1,
                       "size": 64, "status": "ok", "reason": None, "generator_bound": False,
                       "rx_pps": [1.8e6, 1.85e6, 1.9e6],
                       "bottleneck": ["receiver", "shared_cpu", "receiver"]})
    rec = G.cell_stats(df).iloc[0]
    assert rec["receiver_bound_reps"] == 2 and G.overloaded(rec) and not G.closed_loop(rec)
    df["bottleneck"] = ["shared_cpu", "shared_cpu", "receiver"]
    rec = G.cell_stats(df).iloc[0]
    assert not G.overloaded(rec)
    # lossless on a CPU shared with the generator, mostly: a closed loop
    assert rec["shared_cpu_reps"] == 2 and G.closed_loop(rec)
    # TCP groups (and summaries without the column) are left as they were
    assert G.overloaded({"n_ok": 5}) and G.overloaded({"receiver_bound_reps": None, "n_ok": 5})


def test_a_rate_received_without_overload_is_a_lower_bound_never_ranked_below():
    hi = _group("sender", [2.45, 2.49, 2.50, 2.47, 2.52], ["shared_cpu"] * 5)
    mid = _group("receiver", [1.83, 1.85, 1.86, 1.84, 1.88], ["receiver"] * 5)
    low = _group("sender", [1.40, 1.41, 1.42, 1.43, 1.39], ["shared_cpu"] * 5)
    # the unloaded group above a loaded one: at least its lower bound, so it is more
    c = G.compare_stats(hi, mid, "rx_pps")
    assert c.apart and c.order == ">" and not c.bound
    # a loaded group above an unloaded one: the unloaded one's maximum is unknown
    c = G.compare_stats(mid, low, "rx_pps")
    assert not c.apart and c.order == "~" and c.bound
    assert G.compare_stats(low, mid, "rx_pps").bound
    # not the Ethernet rate: nothing changes
    rec = lambda g: {"m_median": g["rx_pps_median"], "m_med_lo": g["rx_pps_med_lo"],  # noqa
                     "m_med_hi": g["rx_pps_med_hi"], "n_ok": 5, "receiver_bound_reps": 0}
    assert G.compare_stats(rec(mid), rec(low), "m").apart
    from rxbench.present.claims import claim_tex
    text, _ = claim_tex("A", mid, "B", low, "rx_pps", "Mpps", 1e6)
    assert text.startswith("A and B are not ranked") and "B received all it was offered" in text
    assert "more than" not in text
    text, _ = claim_tex("A", hi, "B", _group("sender", [2.4, 2.5, 2.6, 2.45, 2.55], ["none"] * 5),
                        "rx_pps", "Mpps", 1e6)
    assert "not told apart" in text and text.endswith("neither was overloaded: lower bounds)")
    text, _ = claim_tex("A", _group("receiver", [2.4, 2.5, 2.6, 2.45, 2.55], ["receiver"] * 5),
                        "B", hi, "rx_pps", "Mpps", 1e6)
    assert text.endswith("overlap; B was not overloaded: a lower bound)")
    text, _ = claim_tex("A", mid, "B", _group("receiver", [1.8, 1.85, 1.9, 1.82, 1.87],
                                              ["receiver"] * 5), "rx_pps", "Mpps", 1e6)
    assert text.endswith("overlap)")


def test_best_config_takes_the_best_overloaded_configuration():
    # two configurations of one stack (here: batch) at one NAPI placement
    st = pd.DataFrame([{**_group("receiver", [1.83, 1.85, 1.86, 1.84, 1.88], ["receiver"] * 5),
                        "batch": 64},
                       {**_group("receiver", [2.45, 2.49, 2.50, 2.47, 2.52], ["shared_cpu"] * 5),
                        "batch": 256}])
    best = G.best_config(st, defaults={"napi": "receiver", "batch": 64})
    r = best.iloc[0]
    assert r["batch"] == 64 and not r["best_lower_bound"]
    assert r["best_candidates"] == 2 and r["best_unloaded_max"] == pytest.approx(2.49e6)
    assert "1 not overloaded (lower bound, up to 2.49 Mpps)" in r["best_rule_note"]
    # no configuration overloaded: the highest, said to be a lower bound
    st.loc[0, "receiver_bound_reps"] = 1
    r = G.best_config(st, defaults={"napi": "receiver", "batch": 64}).iloc[0]
    assert r["batch"] == 256 and r["best_lower_bound"]
    assert r["best_rule_note"].startswith("no configuration was overloaded: a lower bound")


def test_best_config_never_ranks_across_napi_placements_or_wait_classes():
    st = pd.DataFrame([_group("receiver", [1.83, 1.85, 1.86, 1.84, 1.88], ["receiver"] * 5, "af_xdp"),
                       _group("sender", [2.45, 2.49, 2.50, 2.47, 2.52], ["receiver"] * 5, "af_xdp"),
                       {**_group("receiver", [0.3, 0.31, 0.32, 0.3, 0.31], ["receiver"] * 5,
                                 "af_xdp"), "wait": "busy_poll"}])
    st["wait_class"] = [G.wait_class(r) for _, r in st.iterrows()]
    assert list(st["wait_class"]) == ["woken", "woken", "busy"]
    best = G.best_config(st, defaults={"napi": "receiver", "wait": "poll"})
    # one choice per (placement, class): each group stands for itself
    assert len(best) == 3 and set(best["best_candidates"]) == {1}
    assert G.wait_class({"layer": "eth", "stack": "dpdk", "busy_budget": 0}) == "spin"
    assert G.wait_class({"layer": "eth", "stack": "dpdk", "busy_budget": 64}) == "busy"
    assert G.wait_class({"layer": "tcp", "stack": "epoll"}) is None


def test_the_interval_at_n_is_said():
    assert S.median_ci_is_range(5) and S.median_ci_is_range(3) and not S.median_ci_is_range(7)
    vals = [1.0, 2.5, 3.1, 4.7, 9.0]
    assert S.median_ci(vals) == (1.0, 9.0)          # n = 5: the range, as said
    assert "sample's range" in S.interval_text(5, 5)
    lo, hi = S.median_ci([1.0, 2.5, 3.1, 4.7, 9.0, 11.0, 12.5])
    assert (lo, hi) != (1.0, 12.5) and "range" not in S.interval_text(7, 7)
    assert "overloaded" in G.BEST_RULE

