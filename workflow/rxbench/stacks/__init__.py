"""Receivers (one class per stack) and generators (one per tool): each turns
a cell's parameters into a command line and reads the tool's counters."""

from .base import NATIVE_BUILD, Generator, Receiver, Unsupported, native_tool
from .eth import AfPacket, AfXdp, Dpdk, RxbGen, XdpDrop

RECEIVERS: dict[str, type[Receiver]] = {cls.name: cls for cls in (XdpDrop, AfXdp, Dpdk, AfPacket)}
GENERATORS: dict[str, type[Generator]] = {cls.name: cls for cls in (RxbGen,)}

__all__ = ["NATIVE_BUILD", "RECEIVERS", "GENERATORS", "Receiver", "Generator",
           "Unsupported", "native_tool"]
