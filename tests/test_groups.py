"""The group statistics the presenting side reads (rxbench/present/groups.py,
statsfile.py): verdicts taken from what each cell recorded, the
like-with-like pairs and each stack's best configuration marked in
stats.csv, the schema's check, and figures, tables and numbers reading
only stats.csv and set.json."""

from __future__ import annotations

import pandas as pd
import pytest

import synthetic
from rxbench import RxbenchError, tables
from rxbench.present import figdata
from rxbench.present import groups as G
from rxbench.present import statsfile as SF
from rxbench.present.numbers import numbers

pytestmark = pytest.mark.unit


def _tcp(load, offered, reached=None):
    r = {"platform": "local", "layer": "tcp", "stack": "epoll", "conns": 1, "msg": 65536,
         "status": "ok", "reason": None, "rx_gbps": offered, "offered_gbps": offered,
         "load": load}
    if reached is not None:
        r["load_reached"] = reached
    return r


def test_load_reached_is_the_cells_own_record():
    # the record says, whatever the rates: no tolerance is recomputed here
    df = pd.DataFrame([_tcp("2.5", 2.5, False), _tcp("2.5", 1.0, True), _tcp("max", 9.0)])
    assert list(G.load_reached(df)) == [False, True, None]
    # a summary from before the column: a rate-limited cell counts as not reached
    old = pd.DataFrame([_tcp("2.5", 2.5), _tcp("max", 9.0)])
    assert list(G.load_reached(old)) == [False, None]


def test_equal_load_is_a_subset_of_the_same_file():
    rows = [_tcp("2.5", 2.5, True) | {"rep": i, "cpu_ns_per_byte": 1.0 + i / 100}
            for i in range(3)]
    rows += [_tcp("2.5", 2.0, False) | {"stack": "uring", "rep": i} for i in range(3)]
    frame, facts = SF.build(pd.DataFrame(rows))
    sub = frame[frame["subset"] == "load_reached"]
    assert list(sub["stack"]) == ["epoll"] and int(sub.iloc[0]["n_ok"]) == 3
    assert facts["load"] == {"cells": 6, "reached": 3, "missed_tcp": 3}
    assert list(frame[frame["subset"] == "all"]["load_reached_reps"]) == [3, 0]


@pytest.fixture
def built(tmp_path):
    csv = synthetic.write(tmp_path / "summary.csv",
                          synthetic.eth_rows() + synthetic.tcp_rows(conns=(1, 8), msgs=(1024, 65536)))
    SF.write(csv, tmp_path / "gen" / "stats.csv")
    return csv, tmp_path / "gen" / "stats.csv"


def test_best_configuration_and_facts_are_in_the_files(built):
    csv, stats = built
    gs = SF.read(stats)
    df = G.load(csv)
    st = G.cell_stats(df)
    variants = G.layer_variants(st, "eth")
    want = G.best_config(st, "eth", defaults=G.variant_defaults(df, variants))
    got = gs.best("eth")
    assert list(got.index) == list(want.index)
    assert list(got["best_rule_note"]) == list(want["best_rule_note"])
    assert gs.defaults == G.variant_defaults(df)
    assert gs.provenance["cells"] == len(df)
    assert gs.facts["summary"] == str(csv)


def test_readers_never_open_the_summary(built, tmp_path):
    csv, stats = built
    csv.unlink()                       # gone: figures, tables and numbers still build
    gs = SF.read(stats)
    assert figdata.plan(gs)
    for t, f in tables.TABLES.items():
        f(gs, tmp_path / f"{t}.tex")
    assert numbers(gs).defs["RxCells"] == str(gs.provenance["cells"])


def test_a_bad_stats_file_is_refused_in_one_line(built, tmp_path):
    _, stats = built
    frame, facts = SF.build(G.load(built[0]))
    bad = frame.copy()
    bad.loc[0, "status"] = "fine"
    with pytest.raises(RxbenchError, match=r"stats.csv row 1: status: 'fine' is not one of"):
        SF.validate(bad, facts)
    with pytest.raises(RxbenchError, match="missing column"):
        SF.validate(frame.drop(columns="overloaded"), facts)
    with pytest.raises(RxbenchError, match="no such stats file"):
        SF.read(tmp_path / "nowhere" / "stats.csv")
