"""What the figures draw, without drawing (no matplotlib here): a layer's
groups with their variant bookkeeping (Data: which combination of variants
a line is, its label and style), and which figure families the data
supports (plan; the paper's \\ifFig switches and the figure_plan rule ask
here, rxbench/plots.py draws)."""

from __future__ import annotations

import pandas as pd

from . import groups as G
from . import statsfile as SF
from . import look

# variant combination index (0 = every variant at its default) ->
# (line style, marker fill)
VARIANT_STYLE = [("-", "full"), ((0, (5, 2)), "none"), ((0, (1, 1.2)), "left"),
                 ((0, (6, 1.5, 1, 1.5)), "bottom"), ((0, (3, 1, 1, 1, 1, 1)), "right")]
# the figure families, in the order the paper and the report list them
FAMILY_NAMES = ("eth_best", "eth_rate", "eth_ndr", "eth_gbps", "eth_cores", "eth_cpu",
                "tcp_msg", "tcp_conns", "tcp_cpu", "tcp_load")


# --- data -----------------------------------------------------------------------

class Data:
    """The summary, its cell-group statistics and the variant bookkeeping
    for one layer."""

    def __init__(self, gs: SF.GroupStats, layer: str):
        self.gs = gs
        self.layer = layer
        st = gs.st
        self.st = st[st["layer"].astype(str) == layer] if len(st) else st
        self.variants = G.layer_variants(st, layer) if len(st) else []
        self.defaults = gs.variant_defaults(self.variants)
        self.ctx = gs.context(layer)
        self.tcg = gs.tcg(layer)
        # variant combinations, a variant a stack does not have (None)
        # counted as its default
        combos = []
        for _, r in self.st.iterrows():
            c = self._canon(self.combo(r))
            if c not in combos:
                combos.append(c)
        # the all-default combination first: index 0 is the plain style
        default = tuple(self.defaults.get(k) for k in self.variants)
        combos.sort(key=lambda c: (c != default, [G._sort_value(v, self.defaults.get(k))
                                                  for k, v in zip(self.variants, c)]))
        self.combos = combos

    def combo(self, r, skip=()) -> tuple:
        return tuple(G.norm(r.get(k)) for k in self.variants if k not in skip)

    def ok(self) -> pd.DataFrame:
        return self.st[self.st["status"] == "ok"] if len(self.st) else self.st

    def values(self, col: str) -> list:
        vals = {G.norm(v) for v in self.st[col]} if col in self.st.columns else set()
        return sorted(v for v in vals if v is not None)

    def label(self, stack: str, combo: tuple, skip=()) -> str:
        keys = [k for k in self.variants if k not in skip]
        extra = [f"{k}={v}" for k, v in zip(keys, combo)
                 if v is not None and v != self.defaults.get(k)]
        name = look.label(stack, self.ctx["nic_driver"])
        if extra and name.endswith(")"):
            return f"{name[:-1]}; {', '.join(extra)})"
        return name + (f" ({', '.join(extra)})" if extra else "")

    def saturation(self, sub: pd.DataFrame) -> pd.DataFrame:
        """Without the NDR groups (search=ndr: their rx_pps is the NDR)."""
        if "search" not in sub.columns or not len(sub):
            return sub
        return G.saturation(sub)

    def max_load(self, sub: pd.DataFrame) -> pd.DataFrame:
        """Without the groups of a rate-limited sender (load=<Gbit/s>)."""
        if "load" not in sub.columns or not len(sub):
            return sub
        return sub[sub["load"].map(G.load_target).isna()]

    def variant_index(self, combo, skip=()) -> int:
        """0 for the all-default combination, else 1 + the rank of its first
        non-default (key, value) among all of them, keys in variant order
        (napi first): napi=sender has the same style in every figure."""
        pairs = []
        for c in self.combos:
            for k, v in zip(self.variants, c):
                if v != self.defaults.get(k) and (k, v) not in pairs:
                    pairs.append((k, v))
        pairs.sort(key=lambda kv: (self.variants.index(kv[0]),
                                   G._sort_value(kv[1], self.defaults.get(kv[0]))))
        for k, v in zip(self.variants, self._full_combo(combo, skip)):
            if v != self.defaults.get(k):
                return 1 + pairs.index((k, v))
        return 0

    def line_style(self, stack: str, combo: tuple, skip=()) -> dict:
        color, marker, _ = look.style(stack)
        i = self.variant_index(combo, skip)
        ls, fill = VARIANT_STYLE[i % len(VARIANT_STYLE)]
        return {"color": color, "marker": marker, "linestyle": ls, "fillstyle": fill,
                "markerfacecoloralt": "white", "markersize": 6}

    def _full_combo(self, combo, skip=()):
        it = iter(combo)
        return self._canon(tuple(None if k in skip else next(it) for k in self.variants))

    def _canon(self, combo) -> tuple:
        return tuple(self.defaults.get(k) if v is None else v
                     for k, v in zip(self.variants, combo))

    def is_default(self, combo, skip=()) -> bool:
        return self._full_combo(combo, skip) == self._canon((None,) * len(self.variants))

    def lines(self, sub: pd.DataFrame, skip=()):
        """(stack, combo, group rows) per line, stacks in the usual order."""
        out = []
        keyed: dict[tuple, list] = {}
        for i, r in sub.iterrows():
            keyed.setdefault((r["stack"], self.combo(r, skip)), []).append(i)
        for (stack, combo), idx in sorted(keyed.items(), key=lambda kv: (
                look.rank(kv[0][0]), self.variant_index(kv[0][1], skip))):
            out.append((stack, combo, sub.loc[idx]))
        return out

    def missing(self, sub: pd.DataFrame, skip=()) -> list[str]:
        """A note naming the stacks (with variants) of a slice that have no
        successful group, so they are not silently absent."""
        notes: dict[str, list[str]] = {}
        for stack, combo, g in self.lines(sub, skip):
            if (g["status"] == "ok").any():
                continue
            reason = next((str(r) for r in g["reason"] if G.norm(r)), str(g["status"].iloc[0]))
            if len(reason) > 100:
                reason = reason[:97] + "..."
            labels = notes.setdefault(reason, [])
            if self.label(stack, combo, skip) not in labels:
                labels.append(self.label(stack, combo, skip))
        if not notes:
            return []
        return ["not shown (no successful cell): " + "; ".join(
            f"{', '.join(labels)} ({reason})" for reason, labels in notes.items())]

    def at_min(self, sub: pd.DataFrame, col: str) -> tuple[pd.DataFrame, object]:
        """The groups of the smallest value of col (all groups if col has
        no value in this layer)."""
        vals = sorted({G.norm(v) for v in sub[col]} - {None}) if col in sub.columns else []
        if not vals:
            return sub, None
        return sub[sub[col].map(G.norm) == vals[0]], vals[0]


# --- the families and which ones the data supports ----------------------------

def _has(d: Data, metric: str) -> bool:
    ok = d.ok()
    return bool(len(ok)) and f"{metric}_n" in ok.columns and bool((ok[f"{metric}_n"] > 0).any())


def _more_than_one(d: Data, col: str) -> bool:
    ok = d.ok()
    return len({G.norm(v) for v in ok[col]} - {None}) > 1 if len(ok) else False


def _has_ndr(d: Data) -> bool:
    return _has(d, "ndr_pps")


def _has_load(d: Data) -> bool:
    st = d.gs.subset("load_reached")
    return bool(len(st)) and "cpu_ns_per_byte_n" in st.columns and \
        bool(((st["status"] == "ok") & (st["cpu_ns_per_byte_n"] > 0)).any())


# family -> does the data support it? (e: the Ethernet layer's Data, t: TCP's)
SUPPORTS = {
    "eth_best": lambda e, t: _has(e, "rx_pps"),
    "eth_rate": lambda e, t: _has(e, "rx_pps"),
    "eth_ndr": lambda e, t: _has_ndr(e),
    "eth_gbps": lambda e, t: _has(e, "rx_gbps"),
    "eth_cores": lambda e, t: _has(e, "rx_pps") and _more_than_one(e, "cores"),
    "eth_cpu": lambda e, t: _has(e, "cpu_ns_per_pkt"),
    "tcp_msg": lambda e, t: _has(t, "rx_gbps"),
    "tcp_conns": lambda e, t: _has(t, "rx_gbps") and _more_than_one(t, "conns"),
    "tcp_cpu": lambda e, t: _has(t, "cpu_ns_per_byte"),
    "tcp_load": lambda e, t: _has_load(t),
}
assert tuple(SUPPORTS) == FAMILY_NAMES


def plan(gs: SF.GroupStats) -> list[str]:
    """The figure families the data supports, in FAMILY_NAMES order."""
    e, t = Data(gs, "eth"), Data(gs, "tcp")
    return [name for name in FAMILY_NAMES if SUPPORTS[name](e, t)]
