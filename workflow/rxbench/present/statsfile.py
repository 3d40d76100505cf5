"""stats.csv and set.json: the group statistics of a data set, computed
once per build from its summary CSV (the only step that reads it) and read
by every figure, table and number (`read` -> GroupStats).

stats.csv: one row per cell group (groups.py: keys, n, medians and their
bootstrap intervals, verdicts, each stack's best configuration, the
like-with-like pairs) of each subset of the summary's rows (column subset):
all (every row), load_reached (TCP rows whose sender reached its target:
equal load), host_close / host_other (rows whose host placement was close
and steady throughout, and the others). set.json: the data set's own facts
(provenance, context per layer, variant defaults, cell counts, measured
intervals, the environment's values). Both are checked against
workflow/schemas/stats.schema.yaml when written.

    python -m rxbench.paper stats --csv results/local/summary.csv \
        --out paper/generated/local/stats.csv
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from .. import RxbenchError
from ..util import atomic_write, atomic_write_json
from .groups import (best_config, cell_stats, closed_loop, host_stratum, layer_variants,
                     like_pairs, load, load_reached, load_target, norm, overloaded,
                     sender_bound, tcg, to_bool, variant_defaults, wait_class)

SUBSETS = ("all", "load_reached", "host_close", "host_other")


# --- facts for captions -------------------------------------------------------

def _short_kernel(k) -> str:
    return str(k).split()[0] if norm(k) is not None else "unknown"


def context(df: pd.DataFrame, st: pd.DataFrame, layer: str | None = None) -> dict:
    """Platform, kernel, NIC driver, CPU, reps and line rate of a summary
    (or of one layer's rows; st: its cell groups), for captions and footers."""
    sub = df[df["layer"] == layer] if layer else df

    def uniq(col, f=str):
        if col not in sub.columns:
            return []
        vals = []
        for v in sub[col]:
            v = norm(v)
            if v is not None and f(v) not in vals:
                vals.append(f(v))
        return vals

    platforms = uniq("platform")
    kernels = uniq("kernel", _short_kernel)
    drivers = uniq("nic_driver")
    st = st[st["layer"] == layer] if layer and len(st) else st
    reps = [int(n) for n in st["n_ok"] if n] if len(st) else []
    nmin, nmax = (min(reps), max(reps)) if reps else (0, 0)
    line = None
    for col, scale in (("line_rate_gbps", 1.0), ("link_speed_mbps", 1e-3)):
        if col in sub.columns:
            vals = [norm(v) for v in sub[col] if norm(v) is not None]
            vals = [v for v in vals if isinstance(v, (int, float)) and v > 0]
            if vals:
                line = float(max(vals)) * scale
                break
    if line is not None:
        line_note = f"line rate {line:g} Gbit/s"
    elif drivers == ["veth"]:
        line_note = "no line rate: veth has no nominal link speed"
    else:
        line_note = "line rate unknown (not in the summary)"
    return {
        "platform": ", ".join(platforms) or "unknown",
        "kernel": ", ".join(kernels) or "unknown",
        "nic_driver": ", ".join(drivers) or "unknown",
        "cpu_model": ", ".join(uniq("cpu_model")) or "unknown",
        "n_min": nmin, "n_max": nmax,
        "n_text": f"n = {nmin}" if nmin == nmax else f"n = {nmin}-{nmax}",
        "line_rate_gbps": line, "line_note": line_note,
    }



# --- the build: stats.csv and set.json, once ----------------------------------------

# the verdict and selection columns every group row has (beside the keys and metrics)
VERDICTS = ("overloaded", "lower_bound", "closed_loop", "sender_bound", "wait_class")
BEST_COLUMNS = ("best", "best_order", "best_rule_note", "best_candidates", "best_is_default",
                "best_lower_bound", "best_unloaded_max")


def _verdicts(st: pd.DataFrame) -> pd.DataFrame:
    st = st.copy()
    recs = [r for _, r in st.iterrows()]
    st["overloaded"] = [overloaded(r) for r in recs]
    # a paced Ethernet group (load=<Mpps>) is a cost below saturation, no bound
    st["lower_bound"] = [r.get("layer") == "eth" and not overloaded(r)
                         and load_target(r.get("load")) is None for r in recs]
    st["closed_loop"] = [closed_loop(r) for r in recs]
    st["sender_bound"] = [sender_bound(r) for r in recs]
    st["wait_class"] = [wait_class(r) for r in recs]
    return st


def _value_counts(df: pd.DataFrame, col: str) -> list:
    """[value, cells] of a column's distinct values, in order of appearance."""
    if col not in df.columns:
        return []
    vals = [v for v in (norm(x) for x in df[col]) if v is not None]
    return [[k, int(n)] for k, n in pd.Series(vals, dtype=object).value_counts(sort=False).items()] \
        if vals else []


def _range(values) -> dict | None:
    v = pd.Series(values, dtype=float).dropna()
    return ({"min": float(v.min()), "max": float(v.max()), "median": float(v.median()),
             "n": int(len(v))} if len(v) else None)


VERSION_COLUMN = re.compile(r"^(versions?_(?P<a>.+)|(?P<b>.+)_version)$")


def set_facts(df: pd.DataFrame, st: pd.DataFrame) -> dict:
    """What the presenting side says about the data set as a whole (not
    per group): provenance, context per layer, variant defaults, counts of
    cells, measured intervals, the environment's values."""
    from ..reference import provenance
    ok = df[df["status"].astype(str) == "ok"]
    layers = {"all": None, "eth": "eth", "tcp": "tcp"}
    targets = df["load"].map(load_target).notna() if "load" in df.columns else \
        pd.Series(False, index=df.index)
    reached = load_reached(df)
    tcp = df["layer"].astype(str) == "tcp"
    env = {c: _value_counts(df, c) for c in ("platform", "kernel", "cpu_model", "nic_driver",
                                              "git_rev", "accel", "generator")}
    return {
        "provenance": provenance(df),
        "context": {k: context(df, st, v) for k, v in layers.items()},
        "tcg": {k: tcg(df[df["layer"] == v] if v else df) for k, v in layers.items()},
        "defaults": variant_defaults(df),
        "duration_ok": _range(ok["duration_s"] if "duration_s" in ok.columns else []),
        "pingpong": _range(df["pingpong_ns"] if "pingpong_ns" in df.columns else []),
        "pdr_loss_ratios": sorted({float(v) for v in df.get(
            "pdr_loss_ratio", pd.Series(dtype=float)).dropna()}),
        # [tcp] a rate-limited sender (the eth layer's paced cells are cost_numbers')
        "load": {"cells": int((targets & tcp).sum()), "reached": int((reached.eq(True) & tcp).sum()),
                 "missed_tcp": int((targets & tcp & (reached != True)).sum())},  # noqa: E712
        "env": env,
        "versions": [[c, _value_counts(df, c)] for c in df.columns if VERSION_COLUMN.match(c)],
        # CPUs the cells measured busy time of (columns cpu<N>_busy_s with a value)
        "cpus": sum(1 for c in df.columns if re.fullmatch(r"cpu\d+_busy_s", c)
                    and df[c].notna().any()),
    }


def build(df: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """(stats frame: every subset's groups with their verdicts, set facts)."""
    st = _verdicts(cell_stats(df))
    facts = set_facts(df, st)
    defaults = facts["defaults"]
    variants = layer_variants(st, "eth") if len(st) else []
    best = best_config(st, "eth", defaults={v: defaults.get(v) for v in variants}) \
        if len(st) else st.iloc[0:0]
    for c in BEST_COLUMNS:
        st[c] = None
    st["best"] = False
    for order, (i, r) in enumerate(best.iterrows()):
        st.loc[i, "best"] = True
        st.loc[i, "best_order"] = order
        for c in BEST_COLUMNS[2:]:
            st.loc[i, c] = r[c]
    st["pairs"] = None
    for tag, (a, b, _) in like_pairs(st, best, variants, defaults).items():
        for i, side in ((a, "a"), (b, "b")):
            st.loc[i, "pairs"] = ";".join(filter(None, [st.loc[i, "pairs"], f"{tag}:{side}"]))
    parts = [st.assign(subset="all")]
    tcp = df["layer"].astype(str) == "tcp"
    if "load" in df.columns:
        sub = df[tcp & (load_reached(df) == True)]  # noqa: E712
        if len(sub):
            parts.append(_verdicts(cell_stats(sub)).assign(subset="load_reached"))
    host = host_stratum(df)
    steady = df["steady"].map(lambda v: norm(v) is None or to_bool(v)) \
        if "steady" in df.columns else pd.Series(True, index=df.index)
    good = (host == "close") & steady
    for name, mask in (("host_close", good), ("host_other", ~good)):
        if mask.any():
            parts.append(_verdicts(cell_stats(df[mask])).assign(subset=name))
    out = pd.concat(parts, ignore_index=True)
    keys = [c for c in st.columns[:list(st.columns).index("n_reps")]]
    out = out[["subset", *keys, *[c for c in out.columns if c not in keys and c != "subset"]]]
    return out, facts


def facts_path(stats_csv: str | Path) -> Path:
    return Path(stats_csv).with_name("set.json")


def write(csv: str | Path, out: str | Path) -> pd.DataFrame:
    """The summary -> stats.csv (validated) and set.json beside it."""
    frame, facts = build(load(csv))
    facts["summary"] = Path(csv).as_posix()
    validate(frame, facts)
    # full precision: the readers' interval tests see the numbers computed here
    atomic_write(out, frame.to_csv(index=False))
    atomic_write_json(facts_path(out), facts)
    return frame


SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "stats.schema.yaml"


def validate(frame: pd.DataFrame, facts: dict) -> None:
    """stats.csv's columns and rows, and set.json, against
    workflow/schemas/stats.schema.yaml: a clear one-line error on the first
    problem."""
    import jsonschema
    import yaml
    schema = yaml.load(SCHEMA.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    cols = list(frame.columns)
    missing = [c for c in schema["required_columns"] if c not in cols]
    if missing:
        raise RxbenchError(f"stats.csv: missing column(s) {', '.join(missing)} ({SCHEMA.name})")
    rows = jsonschema.Draft202012Validator(schema["row"])
    checked = [c for c in schema["row"]["properties"] if c in cols]
    for i, rec in enumerate(frame[checked].to_dict("records")):
        err = next(rows.iter_errors({k: v for k, v in ((k, norm(v)) for k, v in rec.items())
                                     if v is not None or k in schema["row"]["required"]}), None)
        if err is not None:
            where = "/".join(str(p) for p in err.absolute_path) or "row"
            raise RxbenchError(f"stats.csv row {i + 1}: {where}: {err.message} ({SCHEMA.name})")
    err = next(jsonschema.Draft202012Validator(schema["set"]).iter_errors(facts), None)
    if err is not None:
        where = "/".join(str(p) for p in err.absolute_path) or "set.json"
        raise RxbenchError(f"set.json: {where}: {err.message} ({SCHEMA.name})")


class GroupStats:
    """stats.csv and set.json, read back: what figures, tables and numbers take."""

    def __init__(self, frame: pd.DataFrame, facts: dict):
        self.frame = frame
        self.facts = facts
        self.st = self.subset("all")
        self.provenance = facts["provenance"]
        self.defaults = facts["defaults"]

    def subset(self, name: str) -> pd.DataFrame:
        if name not in SUBSETS:
            raise ValueError(f"unknown subset {name!r}; known: {', '.join(SUBSETS)}")
        sub = self.frame[self.frame["subset"] == name].drop(columns="subset")
        return sub.reset_index(drop=True).copy()

    def context(self, layer: str | None = None) -> dict:
        return self.facts["context"][layer or "all"]

    def tcg(self, layer: str | None = None) -> bool:
        return bool(self.facts["tcg"][layer or "all"])

    def variant_defaults(self, variants) -> dict:
        return {k: self.defaults.get(k) for k in variants}

    def best(self, layer: str = "eth") -> pd.DataFrame:
        """best_config's rows, in its order."""
        st = self.st
        if not len(st) or "best" not in st.columns:
            return st.iloc[0:0]
        b = st[(st["layer"] == layer) & st["best"].map(to_bool)]
        return b.sort_values("best_order", kind="stable")

    def pair(self, tag: str, side: str):
        """The group standing as side a or b of a like-with-like pair (None)."""
        if "pairs" not in self.st.columns:
            return None
        hit = self.st[self.st["pairs"].map(lambda v: f"{tag}:{side}" in str(v).split(";")
                                           if norm(v) is not None else False)]
        return hit.iloc[0] if len(hit) else None


def read(stats_csv: str | Path) -> GroupStats:
    """stats.csv (and set.json beside it), as the build wrote them."""
    p = Path(stats_csv)
    if not p.is_file() or not facts_path(p).is_file():
        raise RxbenchError(f"{p}: no such stats file (or no set.json beside it); "
                           f"make it with: python -m rxbench.paper stats --csv SUMMARY --out {p}")
    frame = pd.read_csv(p, keep_default_na=True, low_memory=False)
    if "reason" in frame.columns:        # "" (an ok group's) reads back as NaN
        frame["reason"] = ["" if norm(v) is None else str(v) for v in frame["reason"]]
    return GroupStats(frame, json.loads(facts_path(p).read_text()))
