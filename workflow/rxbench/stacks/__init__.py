"""Receivers (one class per stack) and generators (one per tool): each turns
a cell's parameters into a command line and reads the tool's counters."""

from .base import NATIVE_BUILD, Generator, Receiver, Unsupported, native_tool
from .eth import AfPacket, AfXdp, Dpdk, DpdkTxonly, Pktgen, PktgenDpdk, RxbGen, XdpDrop, Xdpsock
from .tcp import Iperf3, RxbTcpSend, TcpServer

RECEIVERS: dict[str, type[Receiver]] = {cls.name: cls for cls in (XdpDrop, AfXdp, Xdpsock, Dpdk, AfPacket)}
GENERATORS: dict[str, type[Generator]] = {cls.name: cls for cls in (RxbGen, DpdkTxonly, Pktgen, PktgenDpdk)}
# TCP layer: stack -> server class (our servers share one tool and class)
TCP_SERVERS: dict[str, type[Receiver]] = {
    **{s: TcpServer for s in ("blocking", "epoll", "uring", "uring_opt", "uring_zcrx")},
    "iperf3": Iperf3}
TCP_SENDER = RxbTcpSend

__all__ = ["NATIVE_BUILD", "RECEIVERS", "GENERATORS", "TCP_SERVERS", "TCP_SENDER",
           "Receiver", "Generator",
           "Unsupported", "native_tool"]
