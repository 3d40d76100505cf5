"""How the presenting side names, orders and draws a stack: each fact once,
behind a small function (label, rank, style). Figures, tables and the
paper's sentences all ask here.

A stack's name is what the cells call it; its label is what it really is
on this testbed (DPDK on veth is testpmd on the af_xdp PMD; iperf3 is its
own sender and server together, never a server alone).
"""

from __future__ import annotations

# stacks in the order figures and tables list them (others follow, sorted)
ORDER = ("xdp_drop", "af_xdp", "dpdk", "af_packet",
         "blocking", "epoll", "uring", "uring_opt", "uring_zcrx", "iperf3")
LAYER_ORDER = ("eth", "tcp")

# stack -> label where the NIC driver is veth (what the stack is there)
_VETH_LABELS = {"dpdk": "DPDK (af_xdp PMD on veth)"}
# iperf3 is its own sender and server: every figure, table and sentence says so
PAIR_LABEL = "iperf3 (sender+server pair)"

# stack -> (colour, marker, hatch). Okabe-Ito and Tol colours (colour-blind
# safe); the marker and hatch tell stacks apart in grayscale.
_STYLE = {
    "xdp_drop": ("#000000", "o", ""),
    "af_xdp": ("#0072B2", "s", "//"),
    "dpdk": ("#D55E00", "^", "xx"),
    "af_packet": ("#009E73", "D", ".."),
    "blocking": ("#CC79A7", "v", "\\\\"),
    "epoll": ("#E69F00", "P", "--"),
    "uring": ("#56B4E9", "X", "++"),
    "uring_opt": ("#882255", "h", "oo"),
    "uring_zcrx": ("#44AA99", "p", "**"),
    "iperf3": ("#666666", "*", "OO"),
}
_OTHER = ("#999999", "d", "||")
# TCP figures split touch into panels, so their lines can tell servers apart
# by line style too (grayscale)
_TCP_LINESTYLE = {"blocking": (0, (1, 1.2)), "epoll": (0, (6, 1.5, 1, 1.5)),
                  "uring": (0, (5, 2)), "uring_opt": "-", "uring_zcrx": (0, (3, 1, 1, 1, 1, 1)),
                  "iperf3": (0, (4, 2))}


def label(stack, nic_driver: str | None = "veth") -> str:
    """DPDK on veth is testpmd on the af_xdp PMD: an AF_XDP socket in copy
    mode, no kernel bypass (veth has no PCI device for a native PMD).
    iperf3 is a sender+server pair, never a server alone."""
    stack = str(stack)
    if stack == "iperf3":
        return PAIR_LABEL
    if stack in _VETH_LABELS and (nic_driver or "veth") == "veth":
        return _VETH_LABELS[stack]
    return stack


def rank(stack) -> tuple:
    """Sort key: the stacks in ORDER, then any other by name."""
    s = str(stack)
    return (ORDER.index(s), "") if s in ORDER else (len(ORDER), s)


def layer_rank(layer) -> tuple:
    return (LAYER_ORDER.index(layer) if layer in LAYER_ORDER else 9, str(layer))


def style(stack) -> tuple[str, str, str]:
    """(colour, marker, hatch) of a stack in every figure."""
    return _STYLE.get(str(stack), _OTHER)


def tcp_linestyle(stack):
    """A TCP server's own line style (None: the variant's)."""
    return _TCP_LINESTYLE.get(str(stack))
