"""Statistics per cell group, from the summary CSV alone.

A cell group is every repetition of one parameter point: platform, layer,
stack, the primary keys (eth: cores, size; tcp: conns, msg) and every
variant column (napi, touch, bind, ...). For each metric of a group:

- n: the repetitions with status ok and a value;
- median, mean, sd (sample standard deviation, n - 1);
- the 95 % confidence interval of the mean by Student's t:
  mean +/- t(0.975, n - 1) * sd / sqrt(n). Deterministic (no resampling);
  the t quantile is computed exactly here (no scipy). With n = 1 there is
  no interval (NaN);
- CV = sd / mean; a group whose CV exceeds NOISY_CV (5 %) is "noisy";
- med_lo, med_hi: the 95 % bootstrap interval of the median
  (scipy.stats.bootstrap, percentile method, BOOT_RESAMPLES resamples,
  fixed seed: the same data give the same interval), NaN for n < 3.
  Comparisons use medians and these intervals (`compare`, `claim`).

Groups whose repetitions are all unsupported or failed are kept, with their
status and reason (tables show them as n/a with the reason as a footnote).

    python -m rxbench.paper stats --csv results/local/summary.csv \
        --out paper/generated/local/stats.csv
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from .aggregate import read_summary
# computed by each cell, where pandas is not imported (a cell's start-up cost)
from .measure import STEADY_DRIFT, steady_state  # noqa: F401

CONFIDENCE = 0.95
NOISY_CV = 0.05
BOOT_RESAMPLES = 9999
BOOT_SEED = 20261201
MIN_BOOT_N = 3            # fewer values: no bootstrap interval

KEYS = ("platform", "layer", "stack", "cores", "size", "conns", "msg")
PRIMARY = {"eth": ("cores", "size"), "tcp": ("conns", "msg")}
# the metric each layer is judged by
HEADLINE = {"eth": "rx_pps", "tcp": "rx_gbps"}
METRICS = ("rx_pps", "offered_pps", "rx_gbps", "offered_gbps", "cpu_ns_per_pkt",
           "cpu_ns_per_byte", "ndr_pps", "pdr_pps", "ndr_trials",
           # [tcp] the sender's side per byte (analysis.sender_path), where measured
           "sender_cpu_ns_per_byte", "sender_proc_ns_per_byte", "sender_bytes_per_packet", "sender_bytes_per_ack",
           "sender_hrtimer_per_mb", "sender_sends_per_turn", "sender_rps_ipis_per_mb")
# stacks in the order figures and tables list them (others follow, sorted)
STACK_ORDER = ("xdp_drop", "af_xdp", "dpdk", "af_packet",
               "blocking", "epoll", "uring", "uring_opt", "uring_zcrx", "iperf3")
LAYER_ORDER = ("eth", "tcp")

_KV = re.compile(r"^([a-z][a-z0-9_]*)=")


# --- Student's t --------------------------------------------------------------

def t_coverage(t: float, dof: int) -> float:
    """P(|T| <= t) for Student's t with an integer number of degrees of
    freedom (Abramowitz & Stegun 26.7.3 and 26.7.4: finite sums)."""
    if dof < 1:
        raise ValueError("degrees of freedom must be >= 1")
    theta = math.atan(t / math.sqrt(dof))
    s, c = math.sin(theta), math.cos(theta)
    if dof % 2:             # odd: 2/pi (theta + sin cos (1 + 2/3 cos^2 + ...))
        term, total = c, 0.0
        if dof > 1:
            total = term
            for k in range(2, dof - 1, 2):
                term *= c * c * k / (k + 1)
                total += term
        return 2 / math.pi * (theta + s * total)
    term, total = 1.0, 1.0  # even: sin (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...)
    for k in range(1, dof - 2, 2):
        term *= c * c * k / (k + 1)
        total += term
    return s * total


def t_quantile(confidence: float, dof: int) -> float:
    """The t with P(|T| <= t) = confidence (two-sided), e.g. 4.303 for
    0.95 and 2 degrees of freedom. Bisection on t_coverage."""
    if not 0 < confidence < 1:
        raise ValueError("confidence must be in (0, 1)")
    lo, hi = 0.0, 1.0
    while t_coverage(hi, dof) < confidence:
        lo, hi = hi, hi * 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_coverage(mid, dof) < confidence:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * hi:
            break
    return (lo + hi) / 2


@dataclass(frozen=True)
class Summary:
    n: int
    median: float
    mean: float
    sd: float
    ci_lo: float
    ci_hi: float
    cv: float
    noisy: bool
    med_lo: float = float("nan")
    med_hi: float = float("nan")


def median_ci(values, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The bootstrap interval of the median of the finite values (NaN, NaN
    for fewer than MIN_BOOT_N, or all equal: (v, v))."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    nan = float("nan")
    if len(xs) < MIN_BOOT_N:
        return nan, nan
    if min(xs) == max(xs):
        return xs[0], xs[0]
    # the resampling does not depend on the order (fixed seed, sorted input):
    # figures, tables and numbers recompute the same groups, once each here
    return _median_ci(tuple(sorted(xs)), confidence)


@functools.lru_cache(maxsize=65536)
def _median_ci(xs: tuple, confidence: float) -> tuple[float, float]:
    import numpy as np
    from scipy.stats import bootstrap
    res = bootstrap((np.array(xs),), np.median, confidence_level=confidence,
                    n_resamples=BOOT_RESAMPLES, method="percentile", vectorized=True,
                    random_state=np.random.default_rng(BOOT_SEED))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def summarize(values, confidence: float = CONFIDENCE, noisy_cv: float = NOISY_CV) -> Summary:
    """n, median, mean, sd, Student-t CI of the mean, CV and the noisy flag
    of the finite values given."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(xs)
    nan = float("nan")
    if n == 0:
        return Summary(0, nan, nan, nan, nan, nan, nan, False)
    xs.sort()
    mean = sum(xs) / n
    median = xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2
    if n == 1:
        return Summary(1, median, mean, nan, nan, nan, nan, False)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile(confidence, n - 1) * sd / math.sqrt(n)
    cv = sd / mean if mean else nan
    lo, hi = median_ci(xs, confidence)
    return Summary(n, median, mean, sd, mean - half, mean + half, cv,
                   bool(math.isfinite(cv) and cv > noisy_cv), lo, hi)


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
        from . import cells
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


def stack_rank(stack) -> tuple:
    s = str(stack)
    return (STACK_ORDER.index(s), "") if s in STACK_ORDER else (len(STACK_ORDER), s)


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
        for m in metrics:
            s = summarize(ok[m].tolist())
            for f, v in asdict(s).items():
                rec[f"{m}_{f}"] = v
        head = HEADLINE.get(rec.get("layer"))
        rec["noisy"] = bool(rec.get(f"{head}_noisy", False)) if head else False
        rows.append(rec)

    def order(rec):
        layer = rec.get("layer")
        return ((LAYER_ORDER.index(layer) if layer in LAYER_ORDER else 9, str(layer)),
                stack_rank(rec.get("stack")),
                tuple(_sort_value(rec.get(k), defaults.get(k)) for k in variants),
                tuple(_sort_value(rec.get(k)) for k in KEYS if k in rec))

    rows.sort(key=order)
    out = pd.DataFrame(rows)
    if out.empty:
        out = pd.DataFrame(columns=keys + ["n_reps", "n_ok", "status", "reason",
                                           "generator_bound_reps", "noisy"])
    return out


def write_stats(csv: str | Path, out: str | Path) -> pd.DataFrame:
    from .util import atomic_write
    st = cell_stats(load(csv))
    atomic_write(out, st.to_csv(index=False, float_format="%.6g"))
    return st


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
        from .analysis import GENERATOR_BOUND, SATURATED
        return float(GENERATOR_BOUND), float(SATURATED)
    except Exception:      # pragma: no cover - the package ships runner.py
        return None, None


# --- facts for captions -------------------------------------------------------

def _short_kernel(k) -> str:
    return str(k).split()[0] if norm(k) is not None else "unknown"


def context(df: pd.DataFrame, layer: str | None = None) -> dict:
    """Platform, kernel, NIC driver, CPU, reps and line rate of a summary
    (or of one layer's rows), for captions and footers."""
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
    st = cell_stats(sub)
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


# --- the interval test: every comparative sentence goes through it ------------

@dataclass(frozen=True)
class Comparison:
    """Medians of two samples and their bootstrap intervals. `apart`: the
    intervals do not overlap (both exist), the only case in which a
    sentence may say one is larger; `order` is ">", "<" or "~" (not told
    apart); `ratio` = median_a / median_b."""
    median_a: float
    median_b: float
    ci_a: tuple
    ci_b: tuple
    apart: bool
    order: str
    ratio: float
    # the intervals are apart, but the group below was not overloaded (its
    # rate is a lower bound), so neither is ranked above the other
    bound: bool = False


def compare(a, b, confidence: float = CONFIDENCE) -> Comparison:
    """The interval test of sample a against sample b (medians and
    bootstrap intervals of the median)."""
    sa, sb = summarize(a, confidence), summarize(b, confidence)
    ca, cb = (sa.med_lo, sa.med_hi), (sb.med_lo, sb.med_hi)
    known = all(math.isfinite(v) for v in (*ca, *cb))
    apart = bool(known and (ca[0] > cb[1] or cb[0] > ca[1]))
    order = "~" if not apart else (">" if sa.median > sb.median else "<")
    ratio = sa.median / sb.median if sb.median else float("nan")
    return Comparison(sa.median, sb.median, ca, cb, apart, order, ratio)


def claim(name_a: str, a, name_b: str, b, what: str = "packets per second",
          confidence: float = CONFIDENCE) -> str:
    """A comparative sentence that says only what the interval test
    supports, e.g. "af_xdp gets 1.22 times the packets per second of dpdk
    (medians 1.41 vs 1.16 M; 95 % bootstrap intervals apart)" or "af_xdp
    and dpdk are not told apart (medians ...; intervals overlap)"."""
    c = compare(a, b, confidence)
    pct = f"{confidence * 100:.0f} %"
    med = f"medians {c.median_a:.4g} vs {c.median_b:.4g}"
    if not all(math.isfinite(v) for v in (*c.ci_a, *c.ci_b)):
        return (f"{name_a} and {name_b} cannot be compared by the interval test "
                f"({med}; fewer than {MIN_BOOT_N} repetitions)")
    if not c.apart:
        return (f"{name_a} and {name_b} are not told apart in {what} "
                f"({med}; {pct} bootstrap intervals overlap)")
    hi, lo, r = (name_a, name_b, c.ratio) if c.order == ">" else (name_b, name_a, 1 / c.ratio)
    return (f"{hi} gets {r:.2f} times the {what} of {lo} "
            f"({med}; {pct} bootstrap intervals apart)")


def compare_stats(a, b, metric: str) -> Comparison:
    """The interval test of two cell groups (rows of cell_stats): their
    medians and the bootstrap intervals of the median cell_stats computed
    (the same numbers compare() gives on the groups' values)."""
    def g(rec, f):
        v = norm(rec.get(f"{metric}_{f}"))
        return float(v) if isinstance(v, (int, float)) else float("nan")
    ma, mb = g(a, "median"), g(b, "median")
    ca, cb = (g(a, "med_lo"), g(a, "med_hi")), (g(b, "med_lo"), g(b, "med_hi"))
    known = all(math.isfinite(v) for v in (*ca, *cb))
    apart = bool(known and (ca[0] > cb[1] or cb[0] > ca[1]))
    order = "~" if not apart else (">" if ma > mb else "<")
    ratio = ma / mb if mb else float("nan")
    bound = False
    if apart and metric in RATE_METRICS and not overloaded(b if order == ">" else a):
        # a receive rate measured without overload is only a lower bound:
        # "A receives more than B" needs B's maximum, not what B was offered
        apart, order, bound = False, "~", True
    return Comparison(ma, mb, ca, cb, apart, order, ratio, bound)


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


def sender_bound(rec) -> bool:
    """A group in which any repetition was generator- (sender-) bound: the
    sender, not the receiver, set the rate, so no sentence ranks on it."""
    return int(norm(rec.get("generator_bound_reps")) or 0) > 0


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
    """A load variant's goodput target (Gbit/s); None for max or no value."""
    v = norm(v)
    if v is None or str(v) == "max":
        return None
    try:
        return float(v)
    except ValueError:
        return None


def load_reached(df: pd.DataFrame, tolerance: float | None = None) -> pd.Series:
    """Per row: did a rate-limited sender come within the tolerance of its
    target (stacks.tcp.LOAD_TOLERANCE)? None for load=max or no target."""
    if tolerance is None:
        try:
            from .stacks.tcp import LOAD_TOLERANCE as tolerance
        except Exception:      # pragma: no cover - the package ships stacks/tcp.py
            tolerance = 0.01
    loads = df["load"] if "load" in df.columns else pd.Series(None, index=df.index)
    sent = df["offered_gbps"] if "offered_gbps" in df.columns else pd.Series(None, index=df.index)

    def one(load, gbps):
        t, g = load_target(load), norm(gbps)
        if t is None:
            return None
        if not isinstance(g, (int, float)) or not math.isfinite(g) or t <= 0:
            return False
        return abs(g / t - 1) <= tolerance
    return pd.Series([one(a, b) for a, b in zip(loads, sent)], index=df.index, dtype=object)


def load_stats(df: pd.DataFrame) -> pd.DataFrame:
    """cell_stats of the TCP rows of a rate-limited sender that reached its
    goodput target (load_reached): the cells of equal load."""
    if "load" not in df.columns:
        return cell_stats(df.iloc[0:0])
    reached = load_reached(df)
    return cell_stats(df[(df["layer"].astype(str) == "tcp") & (reached == True)])  # noqa: E712


# --- each stack at its best ---------------------------------------------------

# Labels a figure or sentence uses for a stack (what it really is here).
STACK_LABELS = {"dpdk": "DPDK (af_xdp PMD on veth)"}
# iperf3 is its own sender and server: every figure, table and sentence says so
PAIR_LABEL = "iperf3 (sender+server pair)"


def stack_label(stack: str, nic_driver: str | None = "veth") -> str:
    """DPDK on veth is testpmd on the af_xdp PMD: an AF_XDP socket in copy
    mode, no kernel bypass (veth has no PCI device for a native PMD).
    iperf3 is a sender+server pair, never a server alone."""
    if stack == "iperf3":
        return PAIR_LABEL
    if stack in STACK_LABELS and (nic_driver or "veth") == "veth":
        return STACK_LABELS[stack]
    return stack


BEST_RULE = ("among a stack's configurations at the same point (cores, frame size) that "
             "ran and whose receiver was overloaded (it lost frames or saturated cores of "
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

      among a stack's groups at the same primary point (eth: cores, size)
      that ran (status ok), the one with the highest median of the layer's
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
    if "search" in sub.columns:
        sub = sub[among(sub["search"], [None, "saturation"])]
    sub = sub[sub[f"{metric}_n"] > 0] if f"{metric}_n" in sub.columns else sub
    if sub.empty:
        return sub.iloc[0:0]
    variants = layer_variants(st, layer)
    dflt = {v: (defaults or {}).get(v, _default_of(st, v)) for v in variants}
    prim = [k for k in PRIMARY[layer] if k in sub.columns]

    def is_default(r) -> bool:
        return all(norm(r.get(v)) in (None, dflt[v]) for v in variants)

    def finite(x) -> bool:
        x = norm(x)
        return isinstance(x, (int, float)) and math.isfinite(x)

    out = []
    for _, g in sub.groupby(["stack", *prim], dropna=False, sort=False):
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
        out.append(rec)
    return pd.DataFrame(out)


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


def stratified_stats(df: pd.DataFrame, far_ns: float = FAR_NS) -> pd.DataFrame:
    """cell_stats of the rows whose host placement was close throughout and
    steady (the comparable stratum), beside the others: a `host` column
    ("close", or "other": far, moved, unknown or not steady)."""
    host = host_stratum(df, far_ns)
    steady = df["steady"].map(lambda v: norm(v) is None or to_bool(v)) \
        if "steady" in df.columns else pd.Series(True, index=df.index)
    good = (host == "close") & steady
    parts = []
    for label, mask in (("close", good), ("other", ~good)):
        if mask.any():
            st = cell_stats(df[mask])
            st.insert(0, "host", label)
            parts.append(st)
    return pd.concat(parts, ignore_index=True) if parts else cell_stats(df.iloc[0:0])
