"""The interval test in the text's words, and how the text names a group
(its stack and non-default configuration), plus the small selections the
numbers make of the stats frame."""

from __future__ import annotations

import math

import pandas as pd

from .. import stats as S
from . import groups as G
from . import look
from .macros import camel, sig, tex_text


def ok_groups(st: pd.DataFrame, layer: str) -> pd.DataFrame:
    """A layer's groups that ran."""
    if not len(st):
        return st
    return st[(st["layer"] == layer) & (st["status"] == "ok")]


def variant_part(rec, variants, defaults) -> str:
    return "".join(camel(k) + camel(G.norm(rec.get(k))) for k in variants
                   if G.norm(rec.get(k)) is not None and G.norm(rec.get(k)) != defaults.get(k))


def pick(sub: pd.DataFrame, col: str, value) -> pd.DataFrame:
    return sub[sub[col].map(G.norm) == value] if len(sub) else sub


# --- the interval test, in the text's words ----------------------------------------

def finite(x) -> bool:
    x = G.norm(x)
    return isinstance(x, (int, float)) and math.isfinite(x)


def claim_tex(la: str, a, lb: str, b, metric: str, unit: str, scale: float = 1.0,
              verb: str = "receives more than") -> tuple[str, S.Comparison]:
    """A comparative clause that says only what the interval test
    (groups.compare_stats: medians, bootstrap intervals of the median)
    supports: "A <verb> B (medians ...; intervals apart)" when the
    intervals separate, else "A and B are not told apart (...)", or "not
    compared" when either has no interval. la, lb are TeX already."""
    c = G.compare_stats(a, b, metric)
    conf = f"{100 * S.CONFIDENCE:g}\\,\\%"
    ma, mb = sig(c.median_a / scale), sig(c.median_b / scale)

    def ci(t):
        return f"[{sig(t[0] / scale)}, {sig(t[1] / scale)}]"
    if not all(math.isfinite(v) for v in (*c.ci_a, *c.ci_b)):
        return (f"{la} and {lb} are not compared by the interval test (medians {ma} and "
                f"{mb}\\,{unit}; fewer than {S.MIN_BOOT_N} repetitions, so no interval)"), c
    if c.bound:
        lo = lb if c.median_a > c.median_b else la
        return (f"{la} and {lb} are not ranked (medians {ma} and {mb}\\,{unit}; {lo} "
                f"received all it was offered, so its rate is a lower bound, not a "
                f"maximum under overload)"), c
    if not c.apart:
        unloaded = [x for x, r in ((la, a), (lb, b)) if metric in G.RATE_METRICS
                    and not G.overloaded(r)]
        why = ("" if not unloaded else
               f"; {unloaded[0]} was not overloaded: a lower bound" if len(unloaded) == 1
               else "; neither was overloaded: lower bounds")
        return (f"{la} and {lb} are not told apart (medians {ma} and {mb}\\,{unit}; "
                f"their {conf} bootstrap intervals {ci(c.ci_a)} and {ci(c.ci_b)} "
                f"overlap{why})"), c
    if c.order == ">":
        hi, lo, mh, ml, ch, cl = la, lb, ma, mb, c.ci_a, c.ci_b
    else:
        hi, lo, mh, ml, ch, cl = lb, la, mb, ma, c.ci_b, c.ci_a
    return (f"{hi} {verb} {lo} (medians {mh} vs {ml}\\,{unit}; {conf} bootstrap "
            f"intervals {ci(ch)} and {ci(cl)} apart)"), c


def config_text(rec, variants, defaults, skip=("search",)) -> str:
    """The non-default variants of a group, "napi=sender, wait=spin"
    (TeX), or "" when every variant is at its default."""
    parts = [f"{k}={G.norm(rec.get(k))}" for k in variants if k not in skip
             and G.norm(rec.get(k)) is not None and G.norm(rec.get(k)) != defaults.get(k)]
    return tex_text(", ".join(parts))


def label_tex(rec, variants, defaults, nic=None, config: bool = True) -> str:
    """How the text names a group's stack: \\texttt{af\\_xdp}, with its
    non-default configuration; DPDK on veth and iperf3 by what they are."""
    stack = str(rec["stack"])
    lab = look.label(stack, nic)
    name = f"\\texttt{{{tex_text(stack)}}}" if lab == stack else tex_text(lab)
    cfg = config_text(rec, variants, defaults) if config else ""
    if cfg and name.endswith(")"):
        return f"{name[:-1]}; {cfg})"
    return f"{name} ({cfg})" if cfg else name


saturation = G.saturation


def ndr_groups(eth: pd.DataFrame) -> pd.DataFrame:
    """The NDR groups (search=ndr cells)."""
    if "search" not in eth.columns or not len(eth):
        return eth.iloc[0:0]
    return eth[eth["search"].map(G.norm) == "ndr"]


def med(rec, col):
    v = G.norm(rec.get(f"{col}_median")) if rec is not None else None
    return v if finite(v) else None


def msg_tex(m) -> str:
    return (f"{m // 1024}\\,KiB" if m and m % 1024 == 0 else f"{m}\\,B") if m else "n/a"


