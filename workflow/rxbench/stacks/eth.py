"""Ethernet-layer receivers and generators."""

from __future__ import annotations

from .base import Generator, Receiver


class XdpDrop(Receiver):
    """In-kernel XDP program returning XDP_DROP (native mode): the ceiling.
    Counts packets and bytes in a per-CPU map (native/xdp_drop.bpf.c)."""

    name = "xdp_drop"
    tool = "rxb-xdp-drop"
    kernel_options = ("CONFIG_BPF_SYSCALL",)

    def argv(self, bound_s: float) -> list[str]:
        r = self.tb.receiver
        return r.exec([self.binary(), "--ifname", r.ifname, "--mode", "native",
                       "--duration", f"{bound_s:.3f}"], self.placement.application)


class AfXdp(Receiver):
    """AF_XDP sockets (native/rxb_af_xdp.c, libxdp): one socket and thread
    per queue and receiver core, libxdp's XSK program redirecting into
    them. Copy-mode bind (veth has no zero-copy) and poll() with
    need_wakeup: a consumer that spins on the core of the NAPI kthread
    starves it (machine.md). Bind and wait variants come with the
    Ethernet-layer issue."""

    name = "af_xdp"
    tool = "rxb-af-xdp"
    kernel_options = ("CONFIG_BPF_SYSCALL", "CONFIG_XDP_SOCKETS")

    def argv(self, bound_s: float) -> list[str]:
        r = self.tb.receiver
        app = self.placement.application
        return r.exec([self.binary(), "--ifname", r.ifname, "--queues", str(len(app)),
                       "--cpus", ",".join(map(str, app)), "--bind", "copy", "--mode", "native",
                       "--wait", "poll", "--duration", f"{bound_s:.3f}"])

    def stage_drops(self, a: dict, b: dict) -> dict:
        # XDP_STATISTICS: rx_dropped includes frames lost to an empty fill
        # ring; rx_ring_full counts frames lost to a full RX ring
        xa, xb = a.get("xsk", {}), b.get("xsk", {})
        return {f"xsk_{k}": int(xb.get(k, 0)) - int(xa.get(k, 0))
                for k in ("rx_dropped", "rx_ring_full", "rx_invalid_descs")}


class AfPacket(Receiver):
    """The classic socket path: TPACKET_V3 mmap rings (native/rxb_af_packet.c),
    one socket and thread per receiver core in a PACKET_FANOUT group. Frames
    then go on up the stack (no UDP socket listens: they end there)."""

    name = "af_packet"
    tool = "rxb-af-packet"
    kernel_options = ("CONFIG_PACKET",)

    def argv(self, bound_s: float) -> list[str]:
        r = self.tb.receiver
        app = self.placement.application
        return r.exec([self.binary(), "--ifname", r.ifname, "--threads", str(len(app)),
                       "--cpus", ",".join(map(str, app)), "--duration", f"{bound_s:.3f}"])

    def stage_drops(self, a: dict, b: dict) -> dict:
        sa, sb = a.get("packet_stats", {}), b.get("packet_stats", {})
        return {"packet_ring_drops": int(sb.get("tp_drops", 0)) - int(sa.get("tp_drops", 0))}


class RxbGen(Generator):
    """native/rxb_gen.c: AF_PACKET sender of fixed-size UDP/IPv4 frames,
    one flow per receiver core, bounded by --duration."""

    name = "rxb-gen"
    tool = "rxb-gen"

    def argv(self, bound_s: float) -> list[str]:
        s, r = self.tb.sender, self.tb.receiver
        p = self.cell.params
        return s.exec([self.binary(), "--ifname", s.ifname, "--dst-mac", r.mac,
                       "--src-ip", s.ip, "--dst-ip", r.ip, "--size", str(p["size"]),
                       "--flows", str(max(1, p["cores"])), "--duration", f"{bound_s:.3f}"],
                      self.placement.generator)
