"""Results -> summary CSV -> group statistics -> figure and LaTeX table (no
root needed)."""

import copy
import json

import pytest

from rxbench.aggregate import COLUMNS, read_summary, write_summary
from rxbench.plots import eth_rate
from rxbench.present import statsfile as SF
from rxbench.result import ResultError, load_result, validate_result
from rxbench.tables import eth_table

pytestmark = pytest.mark.unit

PROV = {"kernel": "6.18.0 #1", "cmdline": "", "cpu_model": "Test CPU", "nic_driver": "veth",
        "versions": {}, "commands": [], "git_rev": "abc", "started_at": "2026-11-26T00:00:00",
        "hosts": {}}


def result(stack="xdp_drop", size=64, rep=1, status="ok", rx=1.5e6, reason=""):
    ok = status == "ok"
    return {"platform": "local", "layer": "eth", "stack": stack,
            "params": {"cores": 1, "size": size, "napi": "receiver"}, "rep": rep,
            "status": status, "reason": reason, "duration_s": 1.0 if ok else 0.0,
            "offered_pps": 2e6 if ok else None, "rx_pps": rx if ok else None,
            "rx_gbps": rx * size * 8 / 1e9 if ok else None, "drops": {"receiver_rx_dropped": 5},
            "cpu": {"0": {"busy_s": 1, "user_s": 0, "sys_s": 1, "softirq_s": 0}},
            "generator_bound": False, "provenance": PROV}


@pytest.fixture
def cells_dir(tmp_path):
    paths = []
    for i, r in enumerate([result(rep=1, rx=1.4e6), result(rep=2, rx=1.6e6),
                           result(size=1518, rx=0.8e6),
                           result(stack="af_xdp", status="unsupported",
                                  reason="zero-copy bind refused by veth (EOPNOTSUPP)")]):
        p = tmp_path / f"c{i}.json"
        p.write_text(json.dumps(r))
        paths.append(str(p))
    return tmp_path, paths


def test_schema_requires_rates_for_ok_eth_and_reason_otherwise():
    validate_result(result())
    bad = result()
    bad["rx_pps"] = None
    with pytest.raises(ResultError, match="rx_pps"):
        validate_result(bad)
    with pytest.raises(ResultError, match="reason"):
        validate_result(result(status="failed"))
    nop = copy.deepcopy(result())
    del nop["provenance"]["git_rev"]
    with pytest.raises(ResultError, match="git_rev"):
        validate_result(nop)


def test_load_result_names_the_file(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("{not json")
    with pytest.raises(ResultError, match="x.json"):
        load_result(p)


def test_summary_has_contract_columns_and_every_cell(cells_dir):
    tmp, paths = cells_dir
    df = write_summary(paths, tmp / "summary.csv")
    back = read_summary(tmp / "summary.csv")
    assert list(back.columns[:len(COLUMNS)]) == COLUMNS
    assert len(back) == len(df) == 4
    assert set(back.status) == {"ok", "unsupported"}
    assert back.loc[back["stack"] == "af_xdp", "reason"].iloc[0].startswith("zero-copy")
    assert "drops_receiver_rx_dropped" in back.columns


def test_figure_and_table_from_the_csv_alone(cells_dir):
    tmp, paths = cells_dir
    write_summary(paths, tmp / "summary.csv")
    SF.write(tmp / "summary.csv", tmp / "gen" / "stats.csv")
    gs = SF.read(tmp / "gen" / "stats.csv")
    eth_rate(gs, tmp / "f.pdf", tmp / "f.png")
    assert (tmp / "f.pdf").read_bytes()[:4] == b"%PDF"
    assert (tmp / "f.png").read_bytes()[:4] == b"\x89PNG"
    eth_table(gs, tmp / "t.tex")
    tex = (tmp / "t.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex
    # median of 1.4 and 1.6 Mpps, n=2
    assert "1.500" in tex and "& 2 \\\\" in tex
    # the unsupported stack is kept, as n/a with its reason in a footnote
    assert r"\texttt{af\_xdp}" in tex and "n/a$^{1}$" in tex
    assert "zero-copy bind refused by veth" in tex


def test_summary_keeps_the_accelerator_and_the_ndr_search(tmp_path):
    vm = result()
    vm.update(platform="vm", accel="tcg")
    ndr = result(rx=1.1e6)
    ndr["params"]["search"] = "ndr"
    ndr["ndr"] = {"ndr_pps": 1.1e6, "pdr_pps": 1.2e6, "trials": 15, "pdr_loss_ratio": 0.005,
                  "trial_list": [{"offered": 1, "received": 1}]}
    paths = []
    for i, r in enumerate((vm, ndr, result())):
        p = tmp_path / f"c{i}.json"
        p.write_text(json.dumps(r))
        paths.append(str(p))
    df = write_summary(paths, tmp_path / "s.csv")
    assert sorted(df["accel"].fillna("")) == ["", "", "tcg"]
    row = df[df["search"] == "ndr"].iloc[0]
    assert (row["ndr_pps"], row["pdr_pps"], row["ndr_trials"], row["pdr_loss_ratio"]) == (
        1.1e6, 1.2e6, 15, 0.005)


def test_summary_has_the_tcp_sender_s_cost_per_byte_when_the_cell_measured_it(tmp_path):
    tcp = result()
    tcp.update(layer="tcp", stack="blocking", params={"conns": 2, "msg": 1024},
               congestion_control="bbr",
               sender_path={"cpu_ns_per_byte": 21.5, "bytes_per_packet": 1746.0,
                            "bytes_per_ack": 3419.0, "bytes_per_segment": 1181.0,
                            "sends_per_turn": 16.0, "turns_full_frac": 0.0,
                            "softirqs_per_mb": {"HRTIMER": 339.5, "NET_RX": 521.2}})
    old = result()          # a cell from before the sender's counters
    old.update(layer="tcp", stack="blocking", params={"conns": 1, "msg": 1024})
    paths = []
    for i, r in enumerate((tcp, old)):
        p = tmp_path / f"c{i}.json"
        p.write_text(json.dumps(r))
        paths.append(str(p))
    write_summary(paths, tmp_path / "s.csv")
    df = read_summary(tmp_path / "s.csv").set_index("conns")
    assert df.loc[2, "sender_cpu_ns_per_byte"] == 21.5
    assert df.loc[2, "sender_bytes_per_packet"] == 1746.0
    assert df.loc[2, "sender_hrtimer_per_mb"] == 339.5 and df.loc[2, "sender_sends_per_turn"] == 16
    assert df.loc[2, "congestion_control"] == "bbr"
    assert df[["sender_cpu_ns_per_byte", "congestion_control"]].loc[1].isna().all()


def test_a_rate_limited_cell_s_own_load_verdict_is_a_column(tmp_path):
    paths = []
    for i, (load, reached) in enumerate((("2.5", True), ("2.5", False), ("max", None))):
        r = result()
        r.update(layer="tcp", stack="epoll", params={"conns": 1, "msg": 65536, "load": load})
        if reached is not None:
            r["load"] = {"target_gbps": 2.5, "sender_gbps": 2.5, "goodput_gbps": 2.5,
                         "error_pct": 0.0, "reached": reached}
        p = tmp_path / f"c{i}.json"
        p.write_text(json.dumps(r))
        paths.append(str(p))
    df = write_summary(paths, tmp_path / "s.csv")
    got = {(row["load"], None if row["load_reached"] != row["load_reached"] else
            bool(row["load_reached"])) for _, row in df.iterrows()}
    assert got == {("2.5", True), ("2.5", False), ("max", None)}
