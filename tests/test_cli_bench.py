"""`python -m rxbench bench` sends each benchmark flag to its own benchmark
(--ndr-cost once fell through to the generic generator/receiver run)."""

from __future__ import annotations

import pytest

from rxbench import bench, cli

pytestmark = pytest.mark.unit


@pytest.fixture
def calls(monkeypatch):
    seen = []
    for name in ("ndr_cost", "rate_accuracy", "main", "tcp", "counters_cost"):
        monkeypatch.setattr(bench, name, lambda *a, _n=name, **k: seen.append((_n, a, k)) or 0)
    return seen


def test_ndr_cost_runs_the_search_cost_benchmark(calls):
    assert cli.main(["bench", "--ndr-cost", "--stacks", "xdp_drop,af_packet", "--sizes", "64,1518",
                     "--napi", "receiver", "--ndr", "final_trial_duration_s=2",
                     "--no-bisection", "--out", "x.json"]) == 0
    (name, a, k), = calls
    assert name == "ndr_cost"
    assert a == (["xdp_drop", "af_packet"], [64, 1518], "receiver", "x.json",
                 {"ndr": {"final_trial_duration_s": 2}})
    assert k == {"bisection": False}


def test_rate_accuracy_and_the_generic_bench_are_each_their_own(calls):
    cli.main(["bench", "--rate-accuracy", "--rates", "1000,2000", "--napi", "receiver"])
    cli.main(["bench", "--stacks", "none", "--generators", "none"])
    assert [c[0] for c in calls] == ["rate_accuracy", "main"]
    assert calls[0][1][3] == [1000.0, 2000.0]


def test_an_interrupted_cell_stops_the_benchmark_with_one_line(monkeypatch, tmp_path):
    # run_cell tears an interrupted cell down and writes nothing (status 128 + signal)
    monkeypatch.setattr(bench, "run_cell", lambda out, cfg, log: 143)
    with pytest.raises(bench.RxbenchError, match="interrupted .status 143. during .*rep=1.json"):
        bench._cell(str(tmp_path / "rep=1.json"), {})
    out = tmp_path / "rep=2.json"
    monkeypatch.setattr(bench, "run_cell", lambda o, cfg, log: out.write_text('{"status": "ok"}') and 0)
    assert bench._cell(str(out), {}) == {"status": "ok"}


def test_a_signal_during_a_bench_ends_it_with_one_line(monkeypatch, capsys):
    from rxbench.runner import Interrupted
    import signal

    def stopped(*a, **k):
        raise Interrupted(signal.SIGTERM)
    monkeypatch.setattr(bench, "ndr_cost", stopped)
    assert cli.main(["bench", "--ndr-cost"]) == 128 + signal.SIGTERM
    assert capsys.readouterr().err.strip() == "rxbench: interrupted by SIGTERM: torn down"
