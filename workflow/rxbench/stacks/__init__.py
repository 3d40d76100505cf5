"""Stacks (one Receiver class each, declared in stacks/registry.py's terms
by the module that defines it) and generators (one per tool): each turns a
cell's parameters into a command line and reads the tool's counters.

Nothing is imported here until it is asked for: the tool wrappers of this
package (testpmd.py, xdpsock.py) run on remote hosts as `python -m
rxbench.stacks.<wrapper>` with only this file and theirs deployed
(hosts/ssh.py DEPLOY_FILES)."""

from __future__ import annotations

_FROM_BASE = ("NATIVE_BUILD", "Generator", "Receiver", "Unsupported", "native_tool")


def __getattr__(name: str):
    if name in _FROM_BASE:
        from . import base
        return getattr(base, name)
    if name not in ("RECEIVERS", "TCP_SERVERS", "GENERATORS", "TCP_SENDER"):
        # a submodule not imported yet, or nothing: the import system's turn
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import registry
    if name == "RECEIVERS":       # eth stack -> Receiver class
        return {s.name: s.receiver for s in registry.stacks("eth")}
    if name == "TCP_SERVERS":     # tcp stack -> server class
        return {s.name: s.receiver for s in registry.stacks("tcp")}
    if name == "GENERATORS":      # eth generator -> Generator class
        return {g.name: g.cls for g in registry.generators("eth")}
    return registry.generators("tcp")[0].cls     # TCP_SENDER


__all__ = ["NATIVE_BUILD", "RECEIVERS", "GENERATORS", "TCP_SERVERS", "TCP_SENDER",
           "Receiver", "Generator", "Unsupported", "native_tool"]
