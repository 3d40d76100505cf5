"""Cell groups and their verdicts, from the summary's rows: what the
presenting side needs of each group. statsfile.py writes them, once per
build, to paper/generated/<set>/stats.csv (with set.json beside it), and
figures, tables and numbers read only that.

A cell group is every repetition of one parameter point: platform, layer,
stack, the primary keys (eth: cores, size; tcp: conns, msg) and every
variant column (napi, touch, bind, ...). Per group and metric: n, median,
mean, sd, Student-t interval of the mean, CV, noisy, and the bootstrap
interval of the median (rxbench/stats.py). Per group, the verdicts:

- overloaded: the receiver set the rate (lost frames, or saturated cores
  of its own) in most repetitions (Ethernet; TCP groups count as
  overloaded); lower_bound: an Ethernet rate group that was not, so its
  rate is a lower bound of what the stack can receive;
- closed_loop: not overloaded and, in most repetitions, lossless on a CPU
  the receive path shares with the generator (bottleneck shared_cpu): the
  receiver's pace clocked the sender;
- sender_bound: the generator (sender) set the rate in >= 1 repetition
  (generator_bound_reps > 0): no sentence ranks on it;
- load_reached_reps: the repetitions of a rate-limited TCP sender that
  reached their goodput target, as each cell recorded it (summary column
  load_reached, written from stacks/tcp.py's verdict); summaries from
  before the column (no committed reference set has a rate-limited cell)
  count such a cell as not reached;
- best: each stack's best configuration per Ethernet point (best_config,
  BEST_RULE) with why (best_rule_note, ...), best_order its rank in that list;
- pairs: the like-with-like pairs (WAIT_PAIRS) a group stands in.

Subsets of the rows are groups of their own, in the same file
(statsfile.SUBSETS). A bootstrap runs once per distinct sample
(stats.median_ci caches it), so once per group per build.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd

from ..aggregate import read_summary
from ..stats import CONFIDENCE, MIN_BOOT_N, Comparison, interval_test, summarize
from . import look

KEYS = ("platform", "layer", "stack", "cores", "size", "conns", "msg")
PRIMARY = {"eth": ("cores", "size"), "tcp": ("conns", "msg")}
# the metric each layer is judged by
HEADLINE = {"eth": "rx_pps", "tcp": "rx_gbps"}
METRICS = ("rx_pps", "offered_pps", "rx_gbps", "offered_gbps", "cpu_ns_per_pkt",
           "cpu_ns_per_byte", "ndr_pps", "pdr_pps", "ndr_trials",
           # [eth] a paced generator: the receive cores' busy share, the rate's error
           "receiver_cpu_frac", "load_error_pct",
           # [tcp] the sender's side per byte (analysis.sender_path), where measured
           "sender_cpu_ns_per_byte", "sender_proc_ns_per_byte", "sender_bytes_per_packet", "sender_bytes_per_ack",
           "sender_hrtimer_per_mb", "sender_sends_per_turn", "sender_rps_ipis_per_mb")

# Ethernet metrics read from the receive CPUs' accounting (dropped where it failed)
RECEIVER_CPU_METRICS = ("receiver_cpu_frac", "cpu_ns_per_pkt")

_KV = re.compile(r"^([a-z][a-z0-9_]*)=")


# --- cell groups --------------------------------------------------------------

def norm(v):
    """A CSV value as a plain key: NaN -> None, 64.0 -> 64, numpy -> Python."""
    if v is None:
        return None
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float):
        if math.isnan(v):
            return None
        if v.is_integer():
            return int(v)
    if isinstance(v, str) and v.strip() == "":
        return None
    return v


def among(series: pd.Series, values) -> pd.Series:
    """Per row: is the value (normalised, NaN as None) one of `values`?
    (pandas' isin does not match None with NaN in a float column.)"""
    vals = list(values)
    return pd.Series([norm(v) in vals for v in series], index=series.index, dtype=bool)


def to_bool(v) -> bool:
    v = norm(v)
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes")
    return bool(v)


def variant_columns(df: pd.DataFrame) -> list[str]:
    """The variant keys present in the CSV: those the cell naming knows
    (rxbench.cells.VARIANTS) and any k=v level found in the cell paths."""
    names: list[str] = []
    try:
        from .. import cells
        for keys in [*cells.VARIANTS.values(),
                     *getattr(cells, "STACK_VARIANTS", {}).values()]:
            names += [k for k in keys if k not in names and k not in KEYS]
    except ImportError:     # pragma: no cover - the package ships cells.py
        pass
    if "path" in df.columns:
        for p in df["path"].dropna().astype(str).unique():
            for part in p.replace("\\", "/").split("/"):
                m = _KV.match(part)
                if m and m.group(1) not in names and m.group(1) not in KEYS \
                        and m.group(1) != "rep":
                    names.append(m.group(1))
    return [k for k in names if k in df.columns]


def variant_defaults(df: pd.DataFrame, variants: list[str] | None = None) -> dict:
    """Each variant's default value, read from the CSV: cell paths leave
    out a variant at its default, so it is the value of the rows whose path
    does not name the key (else the most common value)."""
    variants = variant_columns(df) if variants is None else variants
    out = {}
    for k in variants:
        vals = [norm(v) for v in df[k]]
        cand = []
        if "path" in df.columns:
            cand = [v for v, p in zip(vals, df["path"])
                    if v is not None and f"/{k}=" not in str(p)]
        if not cand:
            cand = [v for v in vals if v is not None]
        out[k] = Counter(cand).most_common(1)[0][0] if cand else None
    return out


def _sort_value(v, default=None):
    # default variant first, then None last, numbers before strings
    if default is not None and v == default:
        return (0, 0, "")
    if v is None:
        return (3, 0, "")
    if isinstance(v, (int, float)):
        return (1, v, "")
    return (2, 0, str(v))


def load(csv: str | Path) -> pd.DataFrame:
    df = read_summary(csv)
    for c in ("platform", "layer", "stack", "status"):
        if c not in df.columns:
            df[c] = None
    if "reason" not in df.columns:
        df["reason"] = None
    return df


def group_keys(df: pd.DataFrame) -> list[str]:
    return [k for k in KEYS if k in df.columns] + variant_columns(df)


def cell_stats(df: pd.DataFrame) -> pd.DataFrame:
    """One row per cell group: the keys, status, n_reps, n_ok, reason,
    generator-bound repetitions, noisy, and for each metric present
    {m}_n, _median, _mean, _sd, _ci_lo, _ci_hi, _cv, _noisy."""
    keys = group_keys(df)
    variants = [k for k in keys if k not in KEYS]
    defaults = variant_defaults(df, variants)
    metrics = [m for m in METRICS if m in df.columns]
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(df[keys].itertuples(index=False, name=None)):
        groups.setdefault(tuple(norm(v) for v in r), []).append(i)
    rows = []
    for key, idx in groups.items():
        g = df.iloc[idx]
        rec = dict(zip(keys, key))
        status = [str(norm(s) or "failed") for s in g["status"]]
        ok = g[[s == "ok" for s in status]]
        bad = [(s, norm(r)) for s, r in zip(status, g["reason"]) if s != "ok"]
        rec["n_reps"] = len(g)
        rec["n_ok"] = len(ok)
        if len(ok):
            rec["status"] = "ok"
        else:
            rec["status"] = Counter(s for s, _ in bad).most_common(1)[0][0]
        reasons = []
        for s, r in bad:
            text = f"{s}: {r}" if r else s
            if text not in reasons:
                reasons.append(text)
        rec["reason"] = "; ".join(reasons)
        rec["generator_bound_reps"] = (int(sum(to_bool(v) for v in ok["generator_bound"]))
                                       if "generator_bound" in ok.columns else 0)
        # Ethernet: repetitions whose receiver set the rate (it lost frames
        # or saturated cores of its own: analysis.classify_eth "receiver")
        rec["receiver_bound_reps"] = (
            int(sum(str(norm(v)) == "receiver" for v in ok["bottleneck"]))
            if rec.get("layer") == "eth" and "bottleneck" in ok.columns
            and ok["bottleneck"].map(norm).notna().any() else None)
        rec["shared_cpu_reps"] = (
            int(sum(str(norm(v)) == "shared_cpu" for v in ok["bottleneck"]))
            if rec.get("layer") == "eth" and "bottleneck" in ok.columns
            and ok["bottleneck"].map(norm).notna().any() else None)
        rec["load_reached_reps"] = (int(sum(v is True for v in load_reached(ok)))
                                    if "load" in ok.columns else 0)
        cc = sorted({str(norm(v)) for v in g.get("congestion_control", []) if norm(v) is not None})
        rec["congestion_control"] = ", ".join(cc) if cc else None
        # a repetition whose receive CPUs' accounting disagreed with the wall
        # clock (aggregate: receiver_cpu_ok; steal on a virtual CPU) has no
        # CPU figure: its rates stand, its CPU time does not
        cpu_ok = ok["receiver_cpu_ok"].map(lambda v: norm(v) is None or to_bool(v)) \
            if "receiver_cpu_ok" in ok.columns else pd.Series(True, index=ok.index)
        rec["cpu_dropped_reps"] = int((~cpu_ok).sum())
        for m in metrics:
            vals = ok[m][cpu_ok] if m in RECEIVER_CPU_METRICS else ok[m]
            s = summarize(vals.tolist())
            for f, v in asdict(s).items():
                rec[f"{m}_{f}"] = v
        head = HEADLINE.get(rec.get("layer"))
        rec["noisy"] = bool(rec.get(f"{head}_noisy", False)) if head else False
        rows.append(rec)

    def order(rec):
        layer = rec.get("layer")
        return (look.layer_rank(layer), look.rank(rec.get("stack")),
                tuple(_sort_value(rec.get(k), defaults.get(k)) for k in variants),
                tuple(_sort_value(rec.get(k)) for k in KEYS if k in rec))

    rows.sort(key=order)
    out = pd.DataFrame(rows)
    if out.empty:
        out = pd.DataFrame(columns=keys + ["n_reps", "n_ok", "status", "reason",
                                           "generator_bound_reps", "noisy"])
    return out


def layer_variants(st: pd.DataFrame, layer: str) -> list[str]:
    """The variant columns that have a value for some group of a layer."""
    variants = [c for c in st.columns if c not in KEYS and c in _variant_names(st)]
    sub = st[st["layer"] == layer] if "layer" in st.columns else st.iloc[0:0]
    return [c for c in variants if sub[c].map(norm).notna().any()]


def _variant_names(st: pd.DataFrame) -> list[str]:
    # the stats frame's variant columns: between the keys and n_reps
    cols = list(st.columns)
    end = cols.index("n_reps") if "n_reps" in cols else len(cols)
    return [c for c in cols[:end] if c not in KEYS]


def runner_thresholds() -> tuple[float | None, float | None]:
    """(generator-bound fraction, saturated-CPU fraction) as the runner
    applies them, for the texts that explain the flags (None if the runner
    cannot be imported)."""
    try:
        from ..analysis import GENERATOR_BOUND, SATURATED
        return float(GENERATOR_BOUND), float(SATURATED)
    except Exception:      # pragma: no cover - the package ships runner.py
        return None, None


def compare_stats(a, b, metric: str) -> Comparison:
    """The interval test of two cell groups (rows of cell_stats): their
    medians and the bootstrap intervals of the median cell_stats computed
    (the same numbers compare() gives on the groups' values)."""
    def g(rec, f):
        v = norm(rec.get(f"{metric}_{f}"))
        return float(v) if isinstance(v, (int, float)) else float("nan")
    c = interval_test(g(a, "median"), g(b, "median"), (g(a, "med_lo"), g(a, "med_hi")),
                      (g(b, "med_lo"), g(b, "med_hi")))
    if c.apart and metric in RATE_METRICS and not overloaded(b if c.order == ">" else a):
        # a receive rate measured without overload is only a lower bound:
        # "A receives more than B" needs B's maximum, not what B was offered
        c = replace(c, apart=False, order="~", bound=True)
    return c


# Ethernet rates that are a maximum only where the receiver was overloaded
RATE_METRICS = ("rx_pps", "rx_gbps")


def overloaded(rec) -> bool:
    """Was a cell group's receiver overloaded: did it set the rate (lost
    frames, or saturated cores of its own) in most of its repetitions?
    A group that received all it was offered, with the generator or a CPU
    it shares with the receive path the limit, was not: its rate is a
    lower bound of what the stack can receive, not its maximum under
    overload. Groups without the count (TCP; older summaries) count as
    overloaded, which leaves their comparisons as they were."""
    rb = norm(rec.get("receiver_bound_reps"))
    n = norm(rec.get("n_ok"))
    if not isinstance(rb, (int, float)) or not isinstance(n, (int, float)) or not n:
        return True
    return 2 * rb > n


def closed_loop(rec) -> bool:
    """A group not overloaded whose repetitions were mostly lossless on a
    CPU the receive path shares with the generator (bottleneck shared_cpu):
    the receiver's pace clocked the sender, so its rate is neither the
    sender's maximum nor the receiver's."""
    n = norm(rec.get("n_ok"))
    sc = norm(rec.get("shared_cpu_reps"))
    if not isinstance(sc, (int, float)) or not isinstance(n, (int, float)) or not n:
        return False
    return not overloaded(rec) and 2 * sc > n


def sender_bound(rec) -> bool:
    """A group in which any repetition was generator- (sender-) bound: the
    sender, not the receiver, set the rate, so no sentence ranks on it."""
    return int(norm(rec.get("generator_bound_reps")) or 0) > 0


# --- wait classes: how a receiver waits for frames --------------------------------

# class -> (label, what it means); the order is the figures' and tables'
WAIT_CLASSES = {
    "woken": ("woken by the kernel",
              "the receiver sleeps (poll() with need_wakeup, AF_PACKET's poll()) and the "
              "kernel wakes it: its core is free when no frame waits"),
    "busy": ("busy polling",
             "the receiver drives NAPI itself (preferred busy polling: af_xdp wait=busy_poll, "
             "DPDK's af_xdp PMD with busy_budget > 0): it runs the kernel's receive path on its "
             "own core"),
    "spin": ("spinning",
             "the receiver spins on its rings without sleeping (af_xdp wait=spin, a DPDK "
             "poll-mode lcore without busy polling): its core is 100 % busy whatever the load"),
    "kernel": ("in the kernel",
               "XDP_DROP: frames are dropped by the XDP program in the receive path, no "
               "application waits (the ceiling of the receive path)"),
}


def wait_class(rec) -> str | None:
    """How a group's receiver waits for frames (WAIT_CLASSES): rates are
    compared only within one class and one NAPI placement, never across
    (a spinning receiver buys its rate with a whole core; a woken one does
    not). None for TCP groups and unknown stacks."""
    if rec.get("layer") != "eth":
        return None
    stack = rec.get("stack")
    if stack == "xdp_drop":
        return "kernel"
    if stack in ("af_packet", "xdpsock"):       # poll() (xdpsock -p, rxbench/xdpsock.py)
        return "woken"
    if stack == "af_xdp":
        # no wait column (older summaries): the default, poll
        return {"poll": "woken", "busy_poll": "busy", "spin": "spin", None: "woken"}.get(
            norm(rec.get("wait")))
    if stack == "dpdk":
        bb = norm(rec.get("busy_budget"))
        if norm(rec.get("pmd")) in (None, "af_xdp") and isinstance(bb, (int, float)) and bb > 0:
            return "busy"
        return "spin"                            # a poll-mode lcore never sleeps
    return None


# --- platform caveats -----------------------------------------------------------

TCG_NOTE = ("under TCG (QEMU's software emulation, no KVM), absolute rates say nothing "
            "about the stacks")


def tcg(df: pd.DataFrame) -> bool:
    """Are any of these rows from guests under TCG (result key accel)?"""
    if "accel" not in df.columns or not len(df):
        return False
    return bool((df["accel"].map(norm).astype(str).str.lower() == "tcg").any())


# --- equal load (TCP: a rate-limited sender) ------------------------------------

def load_target(v) -> float | None:
    """A load variant's target (tcp: goodput in Gbit/s, eth: offered rate in
    Mpps); None for max or no value."""
    v = norm(v)
    if v is None or str(v) == "max":
        return None
    try:
        return float(v)
    except ValueError:
        return None


def load_reached(df: pd.DataFrame) -> pd.Series:
    """Per row: did a rate-limited sender reach its goodput target, as the
    cell recorded it (column load_reached)? None for load=max or no target;
    False where the summary predates the column."""
    loads = df["load"] if "load" in df.columns else pd.Series(None, index=df.index)
    rec = df["load_reached"] if "load_reached" in df.columns else pd.Series(None, index=df.index)
    return pd.Series([None if load_target(t) is None else to_bool(r) if norm(r) is not None
                      else False for t, r in zip(loads, rec)], index=df.index, dtype=object)


# --- each stack at its best ---------------------------------------------------

BEST_RULE = ("among a stack's configurations at the same point (cores, frame size), with "
             "the same NAPI placement and the same wait class, that ran and whose receiver was overloaded (it lost frames or saturated cores of "
             "its own in most repetitions; one that received all it was offered has only a "
             "lower bound, and competes only where no configuration was overloaded), "
             "the one with the highest median maximum receive rate under overload; "
             "when a runner-up's bootstrap interval overlaps the winner's, or there are "
             "fewer than three repetitions (no interval), the default configuration wins "
             "if it is among those not told apart: a variant must be shown better, not "
             "assumed better")


def best_config(st: pd.DataFrame, layer: str = "eth", metric: str | None = None,
                confidence: float = CONFIDENCE, defaults: dict | None = None) -> pd.DataFrame:
    """Each stack's best configuration per primary point, chosen from the
    data by one stated rule (BEST_RULE; the paper's headline uses it):

      among a stack's groups at the same primary point (eth: cores, size),
      with the same NAPI placement and wait class (wait_class: the
      groups' column, when the stats frame has it), that ran (status ok), the one with the highest median of the layer's
      headline metric (eth: rx_pps, the maximum receive rate under
      overload; NDR cells, search=ndr, are not candidates); when a
      runner-up's bootstrap interval overlaps the winner's (or either has
      none: fewer than MIN_BOOT_N repetitions), the default configuration
      wins if it is among those not told apart (a variant must be shown
      better, not assumed better).

    `defaults`: each variant's default (variant_defaults of the summary);
    without it, the first value the stats frame lists. Returns one row per
    (stack, primary point) with the chosen group's keys, `best_rule_note`
    saying why and `best_candidates` how many configurations competed."""
    metric = metric or HEADLINE[layer]
    sub = st[(st["layer"] == layer) & (st["status"] == "ok")].copy() if len(st) else st
    if sub.empty or f"{metric}_median" not in sub.columns:
        return sub.iloc[0:0]
    if layer == "eth":
        sub = saturation(sub)
    sub = sub[sub[f"{metric}_n"] > 0] if f"{metric}_n" in sub.columns else sub
    if sub.empty:
        return sub.iloc[0:0]
    variants = layer_variants(st, layer)
    dflt = {v: (defaults or {}).get(v, _default_of(st, v)) for v in variants}
    prim = [k for k in PRIMARY[layer] if k in sub.columns]
    # chosen only within one NAPI placement and one wait class (WAIT_CLASSES)
    within = [k for k in ("napi", "wait_class") if k in sub.columns]
    fixed = set(within)

    def is_default(r) -> bool:
        # the default among the class's candidates: a variant the class
        # fixes (all candidates share its value, e.g. af_xdp's wait) is no choice
        return all(norm(r.get(v)) in (None, dflt[v]) or v in same for v in variants
                   if v not in fixed)

    def finite(x) -> bool:
        x = norm(x)
        return isinstance(x, (int, float)) and math.isfinite(x)

    out = []
    for _, g in sub.groupby(["stack", *prim, *within], dropna=False, sort=False):
        same = {v for v in variants if v in g.columns and g[v].map(norm).nunique(dropna=False) == 1}
        g = g.sort_values(f"{metric}_median", ascending=False, kind="stable")
        over = g[[overloaded(r) for _, r in g.iterrows()]] if metric in RATE_METRICS else g
        unloaded = g.drop(over.index) if len(over) else g.iloc[0:0]
        candidates = len(g)
        g = over if len(over) else g
        win = g.iloc[0]
        note = "highest median" + (f", intervals apart from the {len(g) - 1} other "
                                   f"configuration{'s' if len(g) > 2 else ''}"
                                   if len(g) > 1 else
                                   " (the only configuration that ran)" if not len(unloaded)
                                   else " (the only one overloaded)")
        lo_win = win.get(f"{metric}_med_lo")
        close = []
        for _, r in g.iloc[1:].iterrows():
            hi = r.get(f"{metric}_med_hi")
            if not (finite(hi) and finite(lo_win)) or float(hi) >= float(lo_win):
                close.append(r)
        if close and not is_default(win):
            for r in close:
                if is_default(r):
                    why = ("fewer than %d repetitions, no interval" % MIN_BOOT_N
                           if not (finite(r.get(f"{metric}_med_hi")) and finite(lo_win))
                           else "intervals overlap")
                    win, note = r, f"default: not told apart from the highest median ({why})"
                    break
            else:
                note = "highest median; not told apart from the runner-up, and the default did not run"
        elif close:
            note = "highest median, and the default; not told apart from the runner-up"
        if not len(over):
            note = "no configuration was overloaded: a lower bound; " + note
        elif len(unloaded):
            top = float(unloaded.iloc[0][f"{metric}_median"])
            unit = f"{top / 1e6:.3g} Mpps" if metric == "rx_pps" else f"{top:.3g} Gbit/s"
            note += (f"; {len(unloaded)} not overloaded (lower "
                     f"bound{'s' if len(unloaded) > 1 else ''}, up to {unit})")
        rec = win.to_dict()
        rec["best_rule_note"] = note
        rec["best_candidates"] = candidates
        rec["best_is_default"] = is_default(win)
        rec["best_lower_bound"] = not len(over)
        rec["best_unloaded_max"] = (float(unloaded.iloc[0][f"{metric}_median"])
                                    if len(unloaded) else None)
        out.append((win.name, rec))
    # indexed as in st: the winners' rows
    return pd.DataFrame([r for _, r in out], index=[i for i, _ in out])


def _default_of(st: pd.DataFrame, variant: str):
    # the first row of a stats frame lists each variant's default first (cell_stats order)
    vals = [norm(v) for v in st[variant]] if variant in st.columns else []
    vals = [v for v in vals if v is not None]
    return vals[0] if vals else None


# --- the host probe: flag and stratify ----------------------------------------

FAR_NS = 150      # generator-receiver cache-line round trip above this: vCPUs far apart


def host_stratum(df: pd.DataFrame, far_ns: float = FAR_NS) -> pd.Series:
    """Per row: "close", "far" or "unknown", from the probe taken during the
    measured interval (pingpong_during_ns), else the one before it; a row
    whose two probes disagree is "moved" (the host moved a vCPU)."""
    def one(before, during):
        b, d = norm(before), norm(during)
        cls = [("far" if v > far_ns else "close") for v in (b, d) if v is not None]
        if not cls:
            return "unknown"
        return "moved" if len(set(cls)) > 1 else cls[-1]
    before = df["pingpong_ns"] if "pingpong_ns" in df.columns else [None] * len(df)
    during = df["pingpong_during_ns"] if "pingpong_during_ns" in df.columns else [None] * len(df)
    return pd.Series([one(b, d) for b, d in zip(before, during)], index=df.index, name="host")


# --- like with like --------------------------------------------------------------

def match_variants(sub: pd.DataFrame, want: dict, variants, defaults,
                   free=("napi",)) -> pd.DataFrame:
    """Groups whose variants equal `want`, every other variant (but those
    in `free`) at its default (a variant a stack lacks counts as default)."""
    if not len(sub):
        return sub
    mask = pd.Series(True, index=sub.index)
    for k in variants:
        if k in free and k not in want:
            continue
        vals = sub[k].map(norm) if k in sub.columns else pd.Series(None, index=sub.index)
        if k in want:
            mask &= vals == want[k]
        else:
            mask &= vals.isna() | (vals == defaults.get(k))
    return sub[mask]


def saturation(st: pd.DataFrame) -> pd.DataFrame:
    """The groups of a generator as fast as it goes: without the NDR groups
    (search=ndr: their rx_pps is the NDR) and the rate-controlled ones (eth
    load=<Mpps>: their rx_pps is what they were offered)."""
    if not len(st):
        return st
    if "search" in st.columns:
        st = st[among(st["search"], [None, "saturation"])]
    if "load" in st.columns:
        eth = st["layer"] == "eth" if "layer" in st.columns else True
        st = st[~(eth & st["load"].map(load_target).notna())]
    return st


def paced(st: pd.DataFrame) -> pd.DataFrame:
    """The rate-controlled Ethernet groups (eth load=<Mpps>, a paced
    generator below saturation): CPU cost against offered load."""
    if not len(st) or "load" not in st.columns:
        return st.iloc[0:0]
    eth = st["layer"] == "eth" if "layer" in st.columns else True
    return st[eth & st["load"].map(load_target).notna()]


# equal wait modes against each other: tag -> ((stack, variants), (stack,
# variants)), compared at the same NAPI placement
WAIT_PAIRS = {
    "Spin": (("af_xdp", {"wait": "spin"}), ("dpdk", {"busy_budget": 0})),
    "Busy": (("af_xdp", {"wait": "busy_poll"}), ("dpdk", {"busy_budget": 64})),
    "Sleep": (("af_xdp", {"wait": "poll"}), ("af_packet", {})),
}


def like_pairs(st: pd.DataFrame, best: pd.DataFrame, variants, defaults) -> dict:
    """tag -> (index of group a, index of group b, napi) for each WAIT_PAIRS
    pair found in st: saturation groups that ran, at the fewest cores and the
    smallest frame size of the best configurations, at a NAPI placement both
    have (the default first)."""
    eth = st[(st["layer"] == "eth") & (st["status"] == "ok")] if len(st) else st
    sat = saturation(eth)
    cores = sorted({norm(v) for v in eth["cores"]} - {None}) if len(eth) else []
    c0 = cores[0] if cores else None
    best = best[best["cores"].map(norm) == c0] if len(best) else best
    sizes = sorted({norm(v) for v in best["size"]} - {None}) if len(best) else []
    if not sizes or not len(sat):
        return {}
    at = sat[(sat["cores"].map(norm) == c0) & (sat["size"].map(norm) == sizes[0])]
    out = {}
    for tag, ((sa, wa), (sb, wb)) in WAIT_PAIRS.items():
        ga = match_variants(at[at["stack"] == sa], wa, variants, defaults)
        gb = match_variants(at[at["stack"] == sb], wb, variants, defaults)
        na = {norm(v) for v in ga["napi"]} if "napi" in ga.columns else {None}
        nb = {norm(v) for v in gb["napi"]} if "napi" in gb.columns else {None}
        common = sorted(na & nb, key=lambda v: (v != defaults.get("napi"), str(v)))
        if not (len(ga) and len(gb) and common):
            continue
        nv = common[0]
        a = ga[ga["napi"].map(norm) == nv] if "napi" in ga.columns else ga
        b = gb[gb["napi"].map(norm) == nv] if "napi" in gb.columns else gb
        out[tag] = (a.index[0], b.index[0], nv)
    return out
