"""How the presenting side names, orders and draws a stack. Each fact is
declared once, by the stack's own module in its registry entry
(stacks/registry.py: label, order, style); figures, tables and the paper's
sentences ask here, and this module only reads the registry.

A stack's name is what the cells call it; its label is what it really is
on this testbed (DPDK on veth is testpmd on the af_xdp PMD; iperf3 is its
own sender and server together, never a server alone).
"""

from __future__ import annotations

from ..stacks import registry
from ..stacks.tcp import PAIR_LABEL  # noqa: F401 (iperf3's label, for the captions that explain it)

LAYER_ORDER = registry.LAYERS


def label(stack, nic_driver: str | None = "veth") -> str:
    """The registry's label of the stack on nic_driver (None: veth)."""
    return registry.label(str(stack), None, nic_driver)


def rank(stack) -> tuple:
    """Sort key: the registered stacks in their order, then any other by name."""
    return registry.rank(stack)


def layer_rank(layer) -> tuple:
    return (LAYER_ORDER.index(layer) if layer in LAYER_ORDER else 9, str(layer))


def style(stack) -> tuple[str, str, str]:
    """(colour, marker, hatch) of a stack in every figure."""
    s = registry.style(stack)
    return s.colour, s.marker, s.hatch


def tcp_linestyle(stack):
    """A TCP server's own line style (None: the variant's)."""
    return registry.style(stack).linestyle
