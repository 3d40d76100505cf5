"""Every stack and generator, as its own module declares it.

A stack module (any module of this package) lists what it adds:

    STACKS = [Stack(name="xdp_drop", layer="eth", receiver=XdpDrop, ...)]
    GENERATORS = [GeneratorSpec(name="rxb-gen", layer="eth", cls=RxbGen, ...)]

and nothing else has to know it: the configuration schema's enums and each
stack's variant section (config.py injects them at validation time), the
cells' variant keys and defaults (cells.py), the runner's choice of classes
(runner.py), the programs and kernel options the ssh platform asks a host
about (platforms/ssh.py), the native tools `rule native` builds
(workflow/rules/cells.smk), and how figures, tables and sentences name,
order and draw a stack (label, rank, style below) all derive from here.
Adding a stack is one module here plus its native tool (tests/test_registry.py
adds a throwaway one).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

LAYERS = ("eth", "tcp")
# modules of this package that declare nothing (helpers, tool wrappers run on hosts)
_NOT_STACKS = {"base", "registry", "testpmd", "xdpsock", "pktgen_dpdk"}


@dataclass(frozen=True)
class Style:
    """How plots draw a stack: colour, marker and hatch (told apart in
    grayscale too); linestyle: the TCP figures' line (None: by variant)."""
    colour: str
    marker: str
    hatch: str = ""
    linestyle: object = None


OTHER_STYLE = Style("#999999", "d", "||")


@dataclass(frozen=True)
class Variant:
    """A stack's variant: a cell key whose values the config sweeps.
    items: the JSON schema of one value; default: the values swept when the
    config names none (the first is the default value, left out of cell
    paths). layer_wide: configured under <layer>.variants for every stack
    that takes it (its schema is the layer's, in the YAML schema)."""
    key: str
    items: dict = field(default_factory=dict)
    default: tuple = ()
    description: str = ""
    layer_wide: bool = False

    def schema(self) -> dict:
        return {"description": f"{self.description}; the first value is the default".lstrip("; "),
                "type": "array", "minItems": 1, "uniqueItems": True, "items": self.items}

    @property
    def integer(self) -> bool:
        """Are its values integers (read back from a cell path as such)?"""
        enum = self.items.get("enum")
        return self.items.get("type") == "integer" or bool(
            enum and all(isinstance(v, int) and not isinstance(v, bool) for v in enum))


@dataclass(frozen=True)
class Needs:
    """What a stack (or generator) needs from a host: programs looked up
    on its PATH, kernel options, and native tools (native/build)."""
    programs: tuple[str, ...] = ()
    kernel: tuple[str, ...] = ()
    native: tuple[str, ...] = ()


@dataclass(frozen=True)
class Stack:
    """One stack: the receiver of a layer measured in its cells.
    receiver: its Receiver class (stacks/base.py); label: how figures,
    tables and sentences name it, or relabel(params, nic_driver) where a
    cell's parameters or the NIC change that (None: label); order: its
    place in figures and tables (lower first); role: "ceiling" (the upper
    bound others are read against), "reference" (a tool users would pick
    instead) or ""."""
    name: str
    layer: str
    receiver: type
    order: int
    style: Style
    label: str = ""
    variants: tuple[Variant, ...] = ()
    needs: Needs = Needs()
    relabel: Callable[[dict, str | None], str | None] | None = None
    role: str = ""
    description: str = ""

    def variant_keys(self) -> tuple[str, ...]:
        return tuple(v.key for v in self.variants)

    def own_variants(self) -> tuple[Variant, ...]:
        """Variants configured under <layer>.<stack>."""
        return tuple(v for v in self.variants if not v.layer_wide)

    def label_for(self, params: dict | None = None, nic_driver: str | None = None) -> str:
        if self.relabel is not None:
            got = self.relabel(params or {}, nic_driver)
            if got:
                return got
        return self.label or self.name

    def config_schema(self) -> dict:
        """The JSON schema of its section <layer>.<stack> in the config."""
        return {"type": "object", "additionalProperties": False,
                "description": self.description or f"{self.name}'s own variants",
                "properties": {v.key: v.schema() for v in self.own_variants()}}


@dataclass(frozen=True)
class GeneratorSpec:
    """A sender of a layer: an Ethernet generator the config picks
    (eth.generator), or the TCP layer's sender."""
    name: str
    layer: str
    cls: type
    needs: Needs = Needs()
    description: str = ""


_STACKS: dict[str, Stack] = {}
_GENERATORS: dict[str, GeneratorSpec] = {}
_LOADED = False


def _load() -> None:
    """Import every module of this package once and collect what it declares."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    here = [str(Path(__file__).parent)]
    for mod in sorted(pkgutil.iter_modules(here), key=lambda m: m.name):
        if mod.name in _NOT_STACKS or mod.name.startswith("_"):
            continue
        register_module(importlib.import_module(f"{__package__}.{mod.name}"))


def register(*items: Stack | GeneratorSpec) -> None:
    """Add stacks or generators (a module does it by declaring STACKS and
    GENERATORS); a name taken by another is refused."""
    _load()
    for it in items:
        table = _STACKS if isinstance(it, Stack) else _GENERATORS
        if it.layer not in LAYERS:
            raise ValueError(f"{it.name}: unknown layer {it.layer!r}; layers: {', '.join(LAYERS)}")
        old = table.get(it.name)
        if old is not None and old is not it:
            raise ValueError(f"{it.name}: already registered ({old})")
        table[it.name] = it


def register_module(module) -> None:
    register(*getattr(module, "STACKS", ()), *getattr(module, "GENERATORS", ()))


def forget(*names: str) -> None:
    """Remove stacks or generators by name (a test's throwaway stack)."""
    for n in names:
        _STACKS.pop(n, None)
        _GENERATORS.pop(n, None)


def stacks(layer: str | None = None) -> list[Stack]:
    """Registered stacks (of one layer), in figure order."""
    _load()
    return sorted((s for s in _STACKS.values() if layer in (None, s.layer)),
                  key=lambda s: (LAYERS.index(s.layer), s.order, s.name))


def generators(layer: str | None = None) -> list[GeneratorSpec]:
    _load()
    return [g for g in _GENERATORS.values() if layer in (None, g.layer)]


def names(layer: str) -> list[str]:
    return [s.name for s in stacks(layer)]


def generator_names(layer: str) -> list[str]:
    return [g.name for g in generators(layer)]


def get(name: str, layer: str | None = None) -> Stack:
    """The stack called name (of layer); KeyError naming the known ones."""
    _load()
    s = _STACKS.get(name)
    if s is None or layer not in (None, s.layer):
        known = ", ".join(names(layer) if layer else sorted(_STACKS))
        raise KeyError(f"unknown {layer + ' ' if layer else ''}stack {name!r}; known: {known}")
    return s


def generator(name: str) -> GeneratorSpec:
    _load()
    g = _GENERATORS.get(name)
    if g is None:
        raise KeyError(f"unknown generator {name!r}; known: {', '.join(sorted(_GENERATORS))}")
    return g


def find(name: str) -> Stack | None:
    _load()
    return _STACKS.get(name)


# -- for the presenting side: how a stack is named, ordered and drawn ----------

def label(stack: str, params: dict | None = None, nic_driver: str | None = None) -> str:
    """How a figure, table or sentence names the stack (of a cell with
    params, on nic_driver; None: veth, this machine's link)."""
    s = find(str(stack))
    return s.label_for(params, nic_driver) if s else str(stack)


def order(layer: str | None = None) -> tuple[str, ...]:
    """Stack names in figure and table order."""
    return tuple(s.name for s in stacks(layer))


def rank(stack) -> tuple:
    """A sort key: registered stacks in their order, then any other by name."""
    s = find(str(stack))
    return (0, LAYERS.index(s.layer), s.order, "") if s else (1, 0, 0, str(stack))


def style(stack) -> Style:
    s = find(str(stack))
    return s.style if s else OTHER_STYLE


def role(stack) -> str:
    s = find(str(stack))
    return s.role if s else ""


# -- what the platforms and rules derive -----------------------------------------

def _all_needs() -> list[Needs]:
    return [s.needs for s in stacks()] + [g.needs for g in generators()]


def host_programs() -> tuple[str, ...]:
    """Every program a stack or generator may look up on a host."""
    return tuple(dict.fromkeys(p for n in _all_needs() for p in n.programs))


def kernel_options() -> tuple[str, ...]:
    return tuple(dict.fromkeys(k for n in _all_needs() for k in n.kernel))


def native_tools() -> tuple[str, ...]:
    """The native/build outputs the stacks and generators run."""
    return tuple(dict.fromkeys(t for n in _all_needs() for t in n.native))
