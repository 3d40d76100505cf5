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
- CV = sd / mean; a group whose CV exceeds NOISY_CV (5 %) is "noisy".

Groups whose repetitions are all unsupported or failed are kept, with their
status and reason (tables show them as n/a with the reason as a footnote).

    python -m rxbench.paper stats --csv results/local/summary.csv \
        --out paper/generated/local/stats.csv
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from .aggregate import read_summary

CONFIDENCE = 0.95
NOISY_CV = 0.05

KEYS = ("platform", "layer", "stack", "cores", "size", "conns", "msg")
PRIMARY = {"eth": ("cores", "size"), "tcp": ("conns", "msg")}
# the metric each layer is judged by
HEADLINE = {"eth": "rx_pps", "tcp": "rx_gbps"}
METRICS = ("rx_pps", "offered_pps", "rx_gbps", "cpu_ns_per_pkt", "cpu_ns_per_byte")
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
    return Summary(n, median, mean, sd, mean - half, mean + half, cv,
                   bool(math.isfinite(cv) and cv > noisy_cv))


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
