"""Cells: one measurement each, named by its result path (docs/results.md,
"Cell names"):

    results/{platform}/{layer}/{stack}/{k=v}/.../rep={n}.json

Primary keys (eth: cores, size; tcp: conns, msg) always appear, in that order.
Variant keys follow: the layer's (VARIANTS, e.g. napi), then the stack's
own (its module's, stacks/registry.py: e.g. af_xdp's bind, wait, batch),
each only when its value is not the variant's default (the first value
listed in the config, else the first the stack declares),
so the default cell of every stack keeps the short name, e.g.
results/local/eth/xdp_drop/cores=1/size=64/rep=1.json and
results/local/eth/af_xdp/cores=1/size=64/wait=spin/rep=1.json
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

from . import RxbenchError
from .stacks import registry

PRIMARY = {"eth": ("cores", "size"), "tcp": ("conns", "msg")}
# load: "max" (the sender as fast as it can) or a target: tcp goodput in
# Gbit/s, eth offered rate in Mpps (the generator paced: rxb-gen --rate-pps)
VARIANTS = {"eth": ("napi", "search", "load"), "tcp": ("cores", "napi", "load")}
LOAD_UNIT = {"eth": "Mpps", "tcp": "Gbit/s"}
# a stack's own variants (configured under <layer>.<stack>, or under
# <layer>.variants for one its layer shares, such as recv) are declared by
# its stack module (stacks/registry.py)
LAYER_INT_KEYS = {"cores", "size", "conns", "msg"}


def stack_variants(layer: str, stack: str) -> tuple:
    """The registry's Variants of a stack (none for a stack it does not know)."""
    s = registry.find(stack)
    return s.variants if s is not None and s.layer == layer else ()


def variant_keys(layer: str, stack: str) -> tuple[str, ...]:
    return VARIANTS[layer] + tuple(v.key for v in stack_variants(layer, stack))


def __getattr__(name: str):
    if name == "STACK_VARIANTS":     # {(layer, stack): its variant keys}, as registered now
        return {(s.layer, s.name): s.variant_keys() for s in registry.stacks() if s.variants}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def int_key(layer: str, stack: str, key: str) -> bool:
    return key in LAYER_INT_KEYS or any(v.key == key and v.integer
                                        for v in stack_variants(layer, stack))

_KV = re.compile(r"^([a-z][a-z0-9_]*)=([A-Za-z0-9_.+-]+)$")
_REP = re.compile(r"^rep=([1-9][0-9]*)\.json$")


class CellNameError(RxbenchError):
    pass


@dataclass(frozen=True)
class Cell:
    platform: str
    layer: str
    stack: str
    params: dict = field(hash=False)
    rep: int

    def path(self, defaults: dict, root: str = "results") -> str:
        parts = [root, self.platform, self.layer, self.stack]
        for k in PRIMARY[self.layer]:
            parts.append(f"{k}={self.params[k]}")
        for k in variant_keys(self.layer, self.stack):
            if k in self.params and self.params[k] != defaults.get(k):
                parts.append(f"{k}={self.params[k]}")
        parts.append(f"rep={self.rep}.json")
        return "/".join(parts)

    @property
    def name(self) -> str:
        """A short human name, e.g. eth/xdp_drop/cores=1/size=64/napi=sender/rep=1."""
        kv = "/".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.layer}/{self.stack}/{kv}/rep={self.rep}"


def variant_values(cfg: dict, layer: str, stack: str) -> dict:
    """{variant: [values]} configured for one stack: the layer's variants
    (<layer>.variants) and the stack's own (<layer>.<stack>)."""
    sect = cfg.get(layer, {})
    own = sect.get(stack, {}) if isinstance(sect.get(stack), dict) else {}
    # the stack's declared defaults where the config names no values
    declared = {v.key: list(v.default) for v in stack_variants(layer, stack) if v.default}
    values = {**declared, **sect.get("variants", {}), **own}
    return {k: values[k] for k in variant_keys(layer, stack) if values.get(k)}


def variant_defaults(cfg: dict, layer: str, stack: str) -> dict:
    """Each variant's default is the first value the config lists for it."""
    return {k: v[0] for k, v in variant_values(cfg, layer, stack).items()}


def load_value(raw, layer: str = "tcp"):
    """A load level: "max", or a target (> 0): tcp goodput in Gbit/s, eth
    offered rate in Mpps."""
    if raw == "max":
        return raw
    try:
        v = float(raw)
    except (TypeError, ValueError):
        v = 0.0
    if not (v > 0 and v < 1e4):
        what = "an offered rate in Mpps" if layer == "eth" else "a goodput in Gbit/s"
        raise CellNameError(f"cell key load={raw}: load must be 'max' or {what} (> 0)")
    return int(v) if v == int(v) else v


def load_target(params: dict) -> float | None:
    """A cell's load target in its layer's unit (LOAD_UNIT), None for max."""
    load = params.get("load", "max")
    return None if load == "max" else float(load)


def conflict(params: dict) -> str | None:
    """Why a combination of variants is not a cell (None: it is one). An
    NDR search paces its own trials, so it takes no load target."""
    if params.get("search") == "ndr" and load_target(params) is not None:
        return "search=ndr sets its own trial loads: it takes no load target"
    return None


def wanted(cfg: dict, layer: str, params: dict) -> bool:
    """Is the combination a cell of this campaign? Not when it conflicts,
    nor when <layer>.only names values for a key and the cell's is not
    among them (a profile that measures only the non-default levels of a
    variant, e.g. config/profiles/ndr.yaml, keeps the default's names)."""
    only = (cfg.get(layer) or {}).get("only") or {}
    return conflict(params) is None and all(
        params.get(k) in vals for k, vals in only.items() if k in params)


def _value(layer: str, stack: str, key: str, raw: str):
    if key == "load":
        return load_value(raw, layer)
    if int_key(layer, stack, key):
        if not raw.isdigit():
            raise CellNameError(f"cell key {key}={raw}: {key} must be a positive integer")
        return int(raw)
    return raw


def parse(path: str, cfg: dict) -> Cell:
    """Parse a cell target path; fill in default variants. Refuses names that
    are not canonical (unknown key, wrong order, a default spelled out), so
    one cell has exactly one name."""
    p = path.replace("\\", "/")
    parts = p.split("/")
    if "results" in parts:      # the last one: a bench keeps its cells in results/.../bench/...
        parts = parts[len(parts) - parts[::-1].index("results"):]
    if parts and parts[0] == "reference":
        raise CellNameError(f"cell {path}: results/reference/ holds the committed reference "
                            "sets and is never written by a campaign; a cell is "
                            "results/PLATFORM/LAYER/..., e.g. results/local/eth/...")
    if len(parts) < 5:
        raise CellNameError(f"not a cell path: {path} "
                            "(expected results/PLATFORM/LAYER/STACK/k=v/.../rep=N.json)")
    platform, layer, stack, *kvs, last = parts
    m = _REP.match(last)
    if not m:
        raise CellNameError(f"not a cell path: {path} (must end in rep=N.json, N >= 1)")
    rep = int(m.group(1))
    if layer not in PRIMARY:
        raise CellNameError(f"cell {path}: unknown layer {layer!r}; allowed: {', '.join(PRIMARY)}")
    allowed = PRIMARY[layer] + variant_keys(layer, stack)
    defaults = variant_defaults(cfg, layer, stack)
    params: dict = {}
    for kv in kvs:
        m = _KV.match(kv)
        if not m:
            raise CellNameError(f"cell {path}: {kv!r} is not a key=value level")
        key, raw = m.groups()
        if key not in allowed:
            raise CellNameError(f"cell {path}: unknown key {key!r}; allowed keys for "
                                f"{layer}/{stack}: {', '.join(allowed)}")
        if key in params:
            raise CellNameError(f"cell {path}: key {key!r} given twice")
        params[key] = _value(layer, stack, key, raw)
    for k in PRIMARY[layer]:
        if k not in params:
            raise CellNameError(f"cell {path}: missing key {k!r} (required for {layer}: "
                                f"{', '.join(PRIMARY[layer])})")
    for k in variant_keys(layer, stack):
        if k in defaults:
            params.setdefault(k, defaults[k])
    why = conflict(params)
    if why:
        raise CellNameError(f"cell {path}: {why}")
    cell = Cell(platform, layer, stack, {k: params[k] for k in allowed if k in params}, rep)
    canonical = cell.path(defaults, root="")
    given = "/" + "/".join([platform, layer, stack, *kvs, last])
    if canonical != given:
        raise CellNameError(f"cell {path} is not in canonical form; its name is "
                            f"results{canonical} (primary keys first in the order "
                            f"{', '.join(PRIMARY[layer])}, then variants that differ "
                            f"from their default {defaults})")
    return cell


def expand(cfg: dict) -> list[Cell]:
    """Every cell of the configured sweep, in a stable order."""
    cells = []
    eth = cfg.get("eth")
    if eth:
        for stack in eth["stacks"]:
            variants = variant_values(cfg, "eth", stack)
            vkeys = list(variants)
            for cores, size, *vvals in itertools.product(
                    eth["cores"], eth["sizes"], *(variants[k] for k in vkeys)):
                params = {"cores": cores, "size": size, **dict(zip(vkeys, vvals))}
                if not wanted(cfg, "eth", params):
                    continue
                for rep in range(1, cfg["reps"] + 1):
                    cells.append(Cell(cfg["platform"], "eth", stack, params, rep))
    tcp = cfg.get("tcp")
    if tcp:
        for stack in tcp["stacks"]:
            variants = variant_values(cfg, "tcp", stack)
            vkeys = list(variants)
            for conns, msg, *vvals in itertools.product(
                    tcp["conns"], tcp["msgs"], *(variants[k] for k in vkeys)):
                params = {"conns": conns, "msg": msg, **dict(zip(vkeys, vvals))}
                if not wanted(cfg, "tcp", params):
                    continue
                for rep in range(1, cfg["reps"] + 1):
                    cells.append(Cell(cfg["platform"], "tcp", stack, params, rep))
    return cells


def targets(cfg: dict, root: str = "results") -> list[str]:
    return [c.path(variant_defaults(cfg, c.layer, c.stack), root) for c in expand(cfg)]
