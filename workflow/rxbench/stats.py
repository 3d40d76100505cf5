"""Statistics of samples, nothing about cells: Student's t, the bootstrap
interval of the median and the interval test every comparative sentence
goes through. Cell groups and their verdicts are present/groups.py.

For a sample of finite values:

- n; median, mean, sd (sample standard deviation, n - 1);
- the 95 % confidence interval of the mean by Student's t:
  mean +/- t(0.975, n - 1) * sd / sqrt(n). Deterministic (no resampling);
  the t quantile is computed exactly here (no scipy). With n = 1 there is
  no interval (NaN);
- CV = sd / mean; a sample whose CV exceeds NOISY_CV (5 %) is "noisy";
- med_lo, med_hi: the 95 % bootstrap interval of the median (percentile
  method, BOOT_RESAMPLES resamples, fixed seed: the same data give the
  same interval; scipy.stats.bootstrap, see _median_ci),
  NaN for n < 3.
  Comparisons use medians and these intervals (`compare`, `apart`, `claim`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

# computed by each cell, where pandas is not imported (a cell's start-up
# cost); re-exported for tests/test_speed.py
from .measure import STEADY_DRIFT, steady_state  # noqa: F401

CONFIDENCE = 0.95
NOISY_CV = 0.05
BOOT_RESAMPLES = 9999
BOOT_SEED = 20261201
MIN_BOOT_N = 3            # fewer values: no bootstrap interval


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
    # two groups with the same values (a subset of a group) resample once
    return _median_ci(tuple(sorted(xs)), confidence)


@functools.lru_cache(maxsize=65536)
def _median_ci(xs: tuple, confidence: float) -> tuple[float, float]:
    """The percentile bootstrap interval of the median (scipy.stats.bootstrap,
    a fixed seed, so a build is repeatable). Only the stats rule calls it
    (present/statsfile.py): figures, tables and numbers read its output."""
    import numpy as np
    from scipy.stats import bootstrap
    r = bootstrap((np.asarray(xs, dtype=float),), np.median, method="percentile",
                  vectorized=True, n_resamples=BOOT_RESAMPLES, confidence_level=confidence,
                  random_state=np.random.default_rng(BOOT_SEED))
    return float(r.confidence_interval.low), float(r.confidence_interval.high)


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


def interval_test(ma: float, mb: float, ca: tuple, cb: tuple) -> Comparison:
    """Two medians and their intervals: apart only when both intervals
    exist and do not overlap."""
    known = all(math.isfinite(v) for v in (*ca, *cb))
    apart = bool(known and (ca[0] > cb[1] or cb[0] > ca[1]))
    order = "~" if not apart else (">" if ma > mb else "<")
    ratio = ma / mb if mb else float("nan")
    return Comparison(ma, mb, ca, cb, apart, order, ratio)


def compare(a, b, confidence: float = CONFIDENCE) -> Comparison:
    """The interval test of sample a against sample b (medians and
    bootstrap intervals of the median)."""
    sa, sb = summarize(a, confidence), summarize(b, confidence)
    return interval_test(sa.median, sb.median, (sa.med_lo, sa.med_hi), (sb.med_lo, sb.med_hi))


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


def median_ci_is_range(n: int, confidence: float = CONFIDENCE) -> bool:
    """Is the percentile bootstrap interval of the median of n distinct
    values the sample's range (smallest to largest value)? It is when the
    resampled median equals the smallest value more often than the
    interval's lower tail: for odd n, P(at least (n+1)/2 of n draws are the
    smallest value) = P(Binomial(n, 1/n) >= (n+1)/2) > (1 - confidence)/2
    (n = 3, 5: yes; n = 7 and more: no). Even n: the median of the two
    smallest draws is never below their mean, so it is not the range."""
    if n < MIN_BOOT_N or n % 2 == 0:
        return False
    from math import comb
    k = (n + 1) // 2
    p = sum(comb(n, j) * (1 / n) ** j * (1 - 1 / n) ** (n - j) for j in range(k, n + 1))
    return p > (1 - confidence) / 2


def interval_text(n_min: int, n_max: int, confidence: float = CONFIDENCE) -> str:
    """What the figures' and tables' interval is at the n used, e.g. "with
    n = 5 the 95 % bootstrap interval of the median is the sample's range"."""
    pct = f"{100 * confidence:g} %"
    if n_max < MIN_BOOT_N:
        return f"n = {n_max}: no interval (fewer than {MIN_BOOT_N} values)"
    ns = range(max(n_min, MIN_BOOT_N), n_max + 1)
    if all(median_ci_is_range(n, confidence) for n in ns if n % 2) and n_min == n_max:
        return (f"with n = {n_max} the {pct} bootstrap interval of the median is the "
                "sample's range (smallest to largest value)")
    return f"{pct} percentile bootstrap interval of the median (n = {n_min}" + \
        (f"-{n_max})" if n_max != n_min else ")")
