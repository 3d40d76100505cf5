"""Ethernet-layer receivers and generators."""

from __future__ import annotations

import shlex

from .. import RxbenchError
from ..state import DPDK_RUNTIME, NETNS_PREFIX
from .base import Generator, Receiver, Unsupported, require_kernel
from .registry import GeneratorSpec, Needs, Stack, Style, Variant

# the generators' UDP destination port (rxb-gen: UDP_DST_PORT, discard)
TEST_UDP_PORT = 9


# Preferred busy polling (the application drives NAPI): interrupts/NAPI
# deferred while it polls, so it is not raced by softirq (kernel
# Documentation/networking/napi.rst). Values as in its examples.
NAPI_DEFER_HARD_IRQS = 2
GRO_FLUSH_TIMEOUT_NS = 200000


def busy_poll_setup(rx) -> dict:
    """napi_defer_hard_irqs and gro_flush_timeout on the receiver's
    interface (its host's sysfs, old values restored at teardown), for
    busy-polling variants."""
    r = rx.tb.receiver
    out = {}
    for knob, value in (("napi_defer_hard_irqs", NAPI_DEFER_HARD_IRQS),
                        ("gro_flush_timeout", GRO_FLUSH_TIMEOUT_NS)):
        path = f"/sys/class/net/{r.ifname}/{knob}"
        try:
            r.host.set_sysfs(path, str(value), rx.tb.log)
            out[knob] = int((r.host.read_file(path) or "").strip())
        except (RxbenchError, ValueError) as e:
            raise Unsupported(f"cannot set {knob} for busy polling: {e}") from None
    return out


def refuse_spinning_on_napi(rx, what: str) -> None:
    """A receiver that spins on the core its NAPI kthread must run on
    starves it: that
    combination measures the misconfiguration, so it is refused."""
    p = rx.placement
    if p.napi_mode != "sender" and set(p.napi) & set(p.application):
        raise Unsupported(f"misconfigured here, not measured: {what} spins on CPU "
                          f"{sorted(set(p.napi) & set(p.application))}, where NAPI must run "
                          f"(napi={p.napi_mode}); it starves the NAPI kthread. Measured with "
                          f"napi=sender, napi=dedicated (>= 3 CPUs) or busy polling instead")


class XdpDrop(Receiver):
    """In-kernel XDP program returning XDP_DROP (native mode): the ceiling.
    Drops every frame and counts, in a per-CPU map (native/xdp_drop.bpf.c),
    the test flow (IPv4 UDP to the receiver's address and TEST_UDP_PORT) as
    packets/bytes and anything else apart (`other`)."""

    name = "xdp_drop"
    tool = "rxb-xdp-drop"
    kernel_options = ("CONFIG_BPF_SYSCALL",)

    # drivers whose rx_dropped also counts the frames an XDP program
    # dropped by its verdict (measured on the vm platform, 2026-12-02:
    # virtio_net's rx_dropped rose by the program's own count, so the loss
    # came out negative); veth keeps them apart (xdp_drops)
    VERDICT_IN_RX_DROPPED = ("virtio_net",)

    def verdict_drops(self, a: dict, b: dict, driver: str | None) -> int:
        """Frames the program dropped by its verdict that `driver` also
        counts as the interface's rx_dropped (0 where it does not)."""
        if driver not in self.VERDICT_IN_RX_DROPPED:
            return 0
        test = int(b.get("packets", 0)) - int(a.get("packets", 0))
        other = int(b.get("other", {}).get("packets", 0)) - int(a.get("other", {}).get("packets", 0))
        return test + other

    def argv(self, bound_s: float) -> list[str]:
        r = self.tb.receiver
        return r.exec([self.binary(), "--ifname", r.ifname,
                       "--mode", self.cell.params.get("mode", "native"),
                       "--dst-ip", r.ip, "--dst-port", str(TEST_UDP_PORT),
                       "--duration", f"{bound_s:.3f}"], self.placement.application)


class AfXdp(Receiver):
    """AF_XDP sockets (native/rxb_af_xdp.c, libxdp): one socket and thread
    per queue and receiver core, libxdp's XSK program redirecting into
    them. Variants: bind (copy, zerocopy: unsupported on veth, auto),
    wait (poll() with need_wakeup, the default: a consumer that spins on
    the core of the NAPI kthread starves it; spin; busy_poll: preferred
    busy polling, the application drives NAPI) and batch."""

    name = "af_xdp"
    tool = "rxb-af-xdp"
    kernel_options = ("CONFIG_BPF_SYSCALL", "CONFIG_XDP_SOCKETS")

    def argv(self, bound_s: float) -> list[str]:
        r = self.tb.receiver
        app = self.placement.application
        p = self.cell.params
        return r.exec([self.binary(), "--ifname", r.ifname, "--queues", str(len(app)),
                       "--cpus", ",".join(map(str, app)), "--bind", p.get("bind", "copy"),
                       "--mode", "native", "--wait", p.get("wait", "poll").replace("_", "-"),
                       "--batch", str(p.get("batch", 64)), "--duration", f"{bound_s:.3f}"])

    def polls(self) -> bool:
        return self.cell.params.get("wait", "poll") in ("spin", "busy_poll")

    def probe(self) -> None:
        super().probe()
        if self.cell.params.get("wait", "poll") == "spin":
            refuse_spinning_on_napi(self, "af_xdp wait=spin")

    def prepare(self) -> dict:
        if self.cell.params.get("wait", "poll") == "busy_poll":
            return {"busy_poll": busy_poll_setup(self)}
        return {}

    def stage_drops(self, a: dict, b: dict) -> dict:
        # XDP_STATISTICS: rx_dropped includes frames lost to an empty fill
        # ring; rx_ring_full counts frames lost to a full RX ring
        xa, xb = a.get("xsk", {}), b.get("xsk", {})
        return {f"xsk_{k}": int(xb.get(k, 0)) - int(xa.get(k, 0))
                for k in ("rx_dropped", "rx_ring_full", "rx_invalid_descs")}


class Xdpsock(Receiver):
    """Upstream xdpsock (bpf-examples AF_XDP-example) in rxdrop mode: a
    second, independent AF_XDP receiver to cross-check ours, with the same
    settings as our default (copy bind, poll() with need_wakeup, batch 64,
    native XDP), one socket on queue 0. Debian 12 has no xdpsock: `make
    tools` builds it from the pinned source; the Nix devShell provides it.
    rxbench.stacks.xdpsock reads its periodic statistics and
    stops it as its source requires: in -p mode it ends only after one more
    packet, so after the generator has stopped the wrapper SIGKILLs it and
    detaches the XDP program it leaves (recorded in the receiver's final
    line: "stopped", "xdp_detached")."""

    name = "xdpsock"
    tool = "xdpsock"
    kernel_options = ("CONFIG_BPF_SYSCALL", "CONFIG_XDP_SOCKETS")

    def probe(self) -> None:
        super().probe()
        if not self.which(self.tool):
            raise Unsupported("xdpsock (bpf-examples) is not installed: `make tools` builds it "
                              "from the pinned source (Debian 12 does not package it; the Nix "
                              "devShell provides it)")
        if self.cell.params["cores"] != 1:
            raise Unsupported("xdpsock runs one socket on one queue here: cores=1 only")
        if not self.which("stdbuf"):
            raise Unsupported("stdbuf (coreutils) is not installed")

    def binary(self) -> str:
        return self.which(self.tool) or self.tool

    def argv(self, bound_s: float) -> list[str]:
        r = self.tb.receiver
        secs = str(max(1, int(bound_s)))
        return r.exec([*r.host.python_module("rxbench.stacks.xdpsock"), "--duration", f"{bound_s:.3f}", "--",
                       "stdbuf", "-oL", self.binary(), "-r", "-i", r.ifname, "-q", "0", "-N",
                       "-c", "-p", "-b", "64", "-x", "-n", "1", "-d", secs],
                      self.placement.application)

    def received(self, snap: dict) -> int:
        """A window's boundary needs a block printed after the request; the
        wrapper marks the newest older one "stale" when none came (xdpsock
        stalled or ending), and its count is then not the window's."""
        if snap.get("stale"):
            raise RxbenchError("xdpsock printed no statistics block within the wrapper's wait "
                               "after a window's snapshot request (stale snapshot): the "
                               "window's count is not this moment's")
        return int(snap["packets"])

    def stage_drops(self, a: dict, b: dict) -> dict:
        return {f"xsk_{k}": int(b.get(k, 0)) - int(a.get(k, 0))
                for k in ("rx_dropped", "rx_ring_full")}


# dpdk-testpmd without hugepages or PCI: its default mbuf pool does not fit
# in 512 MB. --no-mlockall there: testpmd's default mlockall()
# faults in all of the anonymous -m memory before anything starts (2.3 of
# its 2.6 s start on this machine, measured with net_null); the mbuf pool
# is written when it is populated, so its pages are resident before the
# first packet either way
TESTPMD_MEMORY_MB = 1024
TESTPMD_MBUFS = 16384


def testpmd_command(tb, side, cpus: list[int], prefix: str, vdev: str | None, app: list[str],
                    bound_s: float, pci: str | None = None) -> list[str]:
    """dpdk-testpmd on `side` behind rxbench.stacks.testpmd (its prompt as JSON
    lines), the main lcore and one forwarding lcore per CPU, `app` its
    forwarding options; the EAL runtime directory is in the state record
    before EAL creates it. vdev: a virtual device without hugepages or PCI;
    pci: instead, the one PCI device (bound to a user-space driver) on
    hugepages."""
    rundir = DPDK_RUNTIME / prefix
    side.host.registry.add("dirs", str(rundir))
    n = len(cpus)
    lcores = ",".join([f"0@{cpus[0]}"] + [f"{i + 1}@{c}" for i, c in enumerate(cpus)])
    testpmd = ["stdbuf", "-oL", side.host.which("dpdk-testpmd") or "dpdk-testpmd",  # line-buffered
               *(["-a", pci] if pci else
                 ["--no-huge", "-m", str(TESTPMD_MEMORY_MB), "--no-pci", "--vdev", vdev]),
               "--file-prefix", prefix, "--lcores", lcores, "--",
               "-i", *([] if pci else ["--no-mlockall"]), f"--total-num-mbufs={TESTPMD_MBUFS}",
               f"--rxq={n}", f"--txq={n}", f"--nb-cores={n}", *app]
    wrapper = [*side.host.python_module("rxbench.stacks.testpmd"), "--duration", f"{bound_s:.3f}", "--runtime-dir", str(rundir),
               "--"]
    return side.exec(wrapper + testpmd, cpus)


# DPDK on its own poll-mode driver (pmd=native): the receiver's NIC leaves
# the kernel for a user-space I/O driver, on hugepages
HUGEPAGES_2M = 128                 # 256 MiB for testpmd's mbuf pool (16384 mbufs)
HUGEPAGES = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"
VIRTIO_F_ACCESS_PLATFORM = 33      # virtio feature bit: DMA through the (v)IOMMU
# the kernel driver of a NIC's PCI device -> the DPDK PMD that drives it
DPDK_PMDS = {"virtio-pci": "net_virtio", "i40e": "net_i40e", "ice": "net_ice",
             "ixgbe": "net_ixgbe", "igb": "net_e1000_igb", "e1000e": "net_e1000_em",
             "e1000": "net_e1000_em", "bnxt_en": "net_bnxt", "mlx5_core": "net_mlx5",
             "gve": "net_gve", "ena": "net_ena"}
# PMDs that run beside the kernel driver (no unbinding; mlx5 through its RDMA stack)
BIFURCATED = ("mlx5_core",)
# what the receiver's NIC is, in one round trip: key=value lines
NIC_PROBE = r"""
ifn=$1
d=$(readlink -f /sys/class/net/$ifn/device 2>/dev/null) || d=
[ -n "$d" ] && [ -e "$d/subsystem" ] || { echo bus=none; exit 0; }
case $(readlink -f $d/subsystem) in
  */bus/virtio) echo "virtio_features=$(cat $d/features)"; d=$(dirname $d);;
  */bus/pci) ;;
  *) echo "bus=$(basename $(readlink -f $d/subsystem))"; exit 0;;
esac
echo bus=pci
echo "pci=$(basename $d)"
echo "driver=$(basename $(readlink -f $d/driver))"
[ -e $d/iommu_group ] && echo "iommu_group=$(basename $(readlink -f $d/iommu_group))"
echo "mac=$(cat /sys/class/net/$ifn/address)"
echo "mtu=$(cat /sys/class/net/$ifn/mtu)"
echo "hugepages=$(cat HUGEPAGES 2>/dev/null)"
grep -q ' hugetlbfs ' /proc/mounts && echo hugetlbfs=yes
ip -4 -o addr show dev $ifn | while read -r _ _ _ a _; do echo "addr=$a"; done
""".replace("HUGEPAGES", HUGEPAGES)
# hand the device to the user-space driver (after the state record says how
# to give it back): module, hugepages, driver_override, unbind, probe
NIC_BIND = r"""
set -e
pci=$1; want=$2; pages=$3
modprobe $want
[ "$(cat HUGEPAGES)" -ge "$pages" ] || echo $pages > HUGEPAGES
got=$(cat HUGEPAGES)
[ "$got" -ge "$pages" ] || { echo "only $got of $pages 2 MiB hugepages" >&2; exit 1; }
echo $want > /sys/bus/pci/devices/$pci/driver_override
[ -e /sys/bus/pci/devices/$pci/driver ] && echo $pci > /sys/bus/pci/devices/$pci/driver/unbind
echo $pci > /sys/bus/pci/drivers_probe
echo "bound=$(basename $(readlink -f /sys/bus/pci/devices/$pci/driver))"
echo "hugepages=$got"
""".replace("HUGEPAGES", HUGEPAGES)


def _kv(out: str) -> dict:
    d: dict = {}
    for line in out.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            if k == "addr":
                d.setdefault("addresses", []).append(v.strip())
            else:
                d[k.strip()] = v.strip()
    return d


def user_space_binding(nic: dict) -> str:
    """vfio-pci where the device sits behind an IOMMU that translates its
    DMA (an IOMMU group; for virtio also VIRTIO_F_ACCESS_PLATFORM, i.e.
    iommu_platform=on), else uio_pci_generic (no IOMMU protection; Debian's
    kernels lack VFIO_NOIOMMU)."""
    feats = nic.get("virtio_features")
    platform = feats is None or (len(feats) > VIRTIO_F_ACCESS_PLATFORM
                                 and feats[VIRTIO_F_ACCESS_PLATFORM] == "1")
    return "vfio-pci" if nic.get("iommu_group") and platform else "uio_pci_generic"


class Dpdk(Receiver):
    """DPDK's own receiver: dpdk-testpmd --forward-mode=rxonly, one
    forwarding lcore per receiver core plus the main lcore sharing the
    first; rxbench.stacks.testpmd drives its prompt and speaks the native tools'
    JSON lines. PMDs (variant pmd):
      af_xdp (default), af_packet: work on veth/virtio without hugepages or
        PCI. The af_xdp PMD's busy_budget is a variant (0: no preferred busy
        polling; > 0: the PMD drives NAPI, with napi_defer_hard_irqs and
        gro_flush_timeout set). On veth this is an AF_XDP socket in copy mode
        behind testpmd, no kernel bypass: figures label it "DPDK (af_xdp PMD
        on veth)" (present/look.py: label). A spinning lcore on the NAPI core
        (napi=receiver, busy_budget=0) is refused.
      native: DPDK's own PMD for the NIC (net_virtio in the vm guests, the
        NIC's on ssh/g5k hosts): kernel bypass. The NIC's PCI device is
        unbound from its kernel driver and bound to vfio-pci (behind an
        IOMMU that translates its DMA) or uio_pci_generic, on 2 MiB
        hugepages; every step is in the host's state record first, so
        teardown (or the next contact after a SIGKILL) binds it back, names
        and addresses it as it was and gives the hugepages back. No kernel
        receive path is left (no NAPI, no link counters): busy_budget does
        not apply; losses are the PMD's imissed. `unsupported` where the
        interface has no PCI device (veth)."""

    name = "dpdk"
    tool = "dpdk-testpmd"
    kernel_options = ("CONFIG_PACKET",)
    ready_timeout = 90.0        # EAL init without hugepages takes seconds

    def __init__(self, cfg, cell, testbed, placement):
        super().__init__(cfg, cell, testbed, placement)
        self.bound: dict | None = None
        self.nic: dict = {}

    @property
    def pmd(self) -> str:
        return self.cell.params.get("pmd", "af_xdp")

    def probe(self) -> None:
        if self.pmd == "af_xdp":
            self.kernel_options = ("CONFIG_XDP_SOCKETS", "CONFIG_BPF_SYSCALL")
        if self.pmd == "native":
            self.kernel_options = ()
            self.ready_timeout = max(self.ready_timeout, 180.0)   # EAL probing a PCI device, TCG
        super().probe()
        for tool in (self.tool, "stdbuf"):
            if not self.which(tool):
                raise Unsupported(f"{tool} is not installed (Debian: dpdk-dev; Nix: the devShell)")
        if self.pmd != "native" and not self._busy_polls():
            refuse_spinning_on_napi(self, "the DPDK lcore (busy_budget=0)")

    def probe_nic(self) -> dict:
        """What the receiver's NIC is; Unsupported where DPDK's own PMD
        cannot have it."""
        r = self.tb.receiver
        nic = _kv(r.host.run(["sh", "-c", NIC_PROBE, "sh", r.ifname], timeout=60))
        who = f"receiver {r.host.key}: {r.ifname}"
        if nic.get("bus") != "pci":
            raise Unsupported(f"{who} has no PCI device (bus {nic.get('bus')}: "
                              f"{self.tb.driver(r)}): DPDK's own PMD needs a PCI NIC")
        if nic.get("driver") not in DPDK_PMDS:
            raise Unsupported(f"{who}: no DPDK PMD known here for its driver "
                              f"{nic.get('driver')} (known: {', '.join(sorted(DPDK_PMDS))})")
        if nic["driver"] in BIFURCATED and not r.host.run(
                ["sh", "-c", "ls /sys/class/infiniband 2>/dev/null"], check=False).strip():
            raise Unsupported(f"{who}: mlx5's PMD works through the kernel's RDMA stack "
                              f"(mlx5_ib, rdma-core): no /sys/class/infiniband device here")
        if nic.get("hugetlbfs") != "yes":
            raise Unsupported(f"receiver {r.host.key}: no hugetlbfs mounted (DPDK's own PMD "
                              f"needs hugepages)")
        if not nic.get("hugepages", "").isdigit():
            raise Unsupported(f"receiver {r.host.key}: no 2 MiB hugepages ({HUGEPAGES})")
        return nic

    def _busy_polls(self) -> bool:
        return self.pmd == "af_xdp" and int(self.cell.params.get("busy_budget", 0)) > 0

    def prepare(self) -> dict:
        if self.pmd == "native":
            return self.bind()
        return {"busy_poll": busy_poll_setup(self)} if self._busy_polls() else {}

    def bind(self) -> dict:
        """The NIC to the user-space driver; how to undo it is recorded on the
        host first (hosts/remote.py restores it at release). mlx5 is
        bifurcated: its PMD runs beside mlx5_core, nothing is unbound."""
        r = self.tb.receiver
        nic = self.nic = self.probe_nic()
        if nic["driver"] in BIFURCATED:
            return self.bifurcated(nic)
        binding = user_space_binding(nic)
        record = {"ifname": r.ifname, "pci": nic["pci"], "driver": nic["driver"],
                  "mac": nic["mac"], "mtu": int(nic["mtu"]),
                  "addresses": nic.get("addresses", []), "hugepages": int(nic["hugepages"]),
                  "binding": binding}
        r.host.registry.add("nic_bind", record)
        argv = ["sh", "-c", NIC_BIND, "sh", nic["pci"], binding, str(HUGEPAGES_2M)]
        try:
            out = _kv(self.tb._run(r, argv, timeout=120))
        except RxbenchError as e:
            if binding != "vfio-pci":
                raise
            # vfio-pci refused (module, group): the generic driver instead
            self.tb.log(f"vfio-pci refused ({e}); binding uio_pci_generic instead")
            binding = record["binding"] = "uio_pci_generic"
            r.host.registry.save()
            out = _kv(self.tb._run(r, [*argv[:5], binding, argv[6]], timeout=120))
        if out.get("bound") != binding:
            raise RxbenchError(f"receiver {r.host.key}: {nic['pci']} is bound to "
                               f"{out.get('bound')}, not {binding}")
        r.bypass = DPDK_PMDS[nic["driver"]]    # no kernel receive path from here on
        self.bound = {"pmd": DPDK_PMDS[nic["driver"]], "binding": binding, "pci": nic["pci"],
                      "kernel_driver": nic["driver"], "iommu_group": nic.get("iommu_group"),
                      "hugepages_2M": int(out.get("hugepages", 0)),
                      "busy_budget": "n/a (no kernel NAPI under DPDK's own PMD)"}
        return {"dpdk": self.bound}

    def bifurcated(self, nic: dict) -> dict:
        """mlx5: the kernel keeps its netdev (and its counters); DPDK's
        net_mlx5 takes the port's traffic through flow rules of its own.
        Only the hugepages are set (sysfs, restored at teardown)."""
        r = self.tb.receiver
        if int(nic["hugepages"]) < HUGEPAGES_2M:
            r.host.set_sysfs(HUGEPAGES, str(HUGEPAGES_2M), self.tb.log)
        got = int((r.host.read_file(HUGEPAGES) or "0").strip() or 0)
        if got < HUGEPAGES_2M:
            raise Unsupported(f"receiver {r.host.key}: only {got} of {HUGEPAGES_2M} 2 MiB "
                              f"hugepages")
        self.bound = {"pmd": DPDK_PMDS[nic["driver"]], "pci": nic["pci"],
                      "binding": f"none (bifurcated: {nic['driver']} keeps {r.ifname})",
                      "kernel_driver": nic["driver"], "hugepages_2M": got,
                      "busy_budget": "n/a (DPDK's own PMD)"}
        return {"dpdk": self.bound}

    def binary(self) -> str:
        return self.which(self.tool) or self.tool

    def vdev(self) -> str:
        p, r, n = self.cell.params, self.tb.receiver, len(self.placement.application)
        if self.pmd == "af_xdp":
            return (f"net_af_xdp0,iface={r.ifname},start_queue=0,queue_count={n},"
                    f"busy_budget={p.get('busy_budget', 0)}")
        # a ring of 4096 frames, like our own receivers (the PMD default is 512)
        return f"net_af_packet0,iface={r.ifname},qpairs={n},framecnt=4096"

    def argv(self, bound_s: float) -> list[str]:
        native = self.pmd == "native"
        app = ["--forward-mode=rxonly"]
        if native and len(self.placement.application) > 1:
            # RSS over the UDP ports too: the generators' flows may differ in them only
            app.append("--rss-udp")
        return testpmd_command(self.tb, self.tb.receiver, self.placement.application,
                               f"{NETNS_PREFIX}{self.tb.token}", None if native else self.vdev(),
                               app, bound_s, pci=self.nic["pci"] if native else None)

    def polls(self) -> bool:
        return True      # a DPDK lcore spins on its queues

    def stage_drops(self, a: dict, b: dict) -> dict:
        # the af_xdp PMD reports the socket's XDP_STATISTICS drops as imissed;
        # a native PMD, the NIC's (virtio: none)
        return {f"dpdk_{k}": int(b.get(k, 0)) - int(a.get(k, 0))
                for k in ("imissed", "ierrors", "nombuf")}


class AfPacket(Receiver):
    """The classic socket path: TPACKET_V3 mmap rings (native/rxb_af_packet.c),
    one socket and thread per receiver core in a PACKET_FANOUT group.

    prepare(): the frames are dropped right after the tap, by a tc ingress
    rule (clsact, a cls_bpf direct-action program returning TC_ACT_SHOT,
    native/tc_drop.bpf.c: taps see a frame before tc ingress in
    __netif_receive_skb_core, IP never does; this kernel has no act_gact
    for `matchall action drop`), so the cell measures
    AF_PACKET and not IP/UDP input and ICMP port-unreachable too; and GRO is
    on at the receiver with TSO off at the sender in every placement (the
    local testbed does that for napi=receiver to give veth NAPI; here also
    for napi=sender), so both placements run the same receive path
    (napi_gro_receive). Both are recorded in the result (nic_setup)."""

    name = "af_packet"
    tool = "rxb-af-packet"
    kernel_options = ("CONFIG_PACKET",)

    def prepare(self) -> dict:
        r, s = self.tb.receiver, self.tb.sender
        if not r.host.which("tc"):
            raise Unsupported("tc (iproute2) is not installed: the drop after the tap needs it")
        r.host.set_feature(r.ifname, "gro", "on", self.tb.log)
        s.host.set_feature(s.ifname, "tso", "off", self.tb.log)
        rule = ["tc", "filter", "add", "dev", r.ifname, "ingress", "pref", "1", "bpf", "da",
                "obj", r.host.native("tc_drop.bpf.o"), "sec", "tc"]
        r.host.registry.add("clsact", r.ifname)       # removed at teardown (remote hosts)
        self.tb._run(r, ["tc", "qdisc", "add", "dev", r.ifname, "clsact"])
        try:
            self.tb._run(r, rule)
        except RxbenchError as e:
            raise Unsupported(f"cannot drop after the tap (tc ingress cls_bpf): {e}") from None
        shown = self.tb._run(r, ["tc", "filter", "show", "dev", r.ifname, "ingress"])
        return {"receiver_gro": "on", "sender_tso": "off", "ingress_drop": shlex.join(rule),
                "ingress_filters": shown.strip()}

    def argv(self, bound_s: float) -> list[str]:
        r = self.tb.receiver
        app = self.placement.application
        return r.exec([self.binary(), "--ifname", r.ifname, "--threads", str(len(app)),
                       "--cpus", ",".join(map(str, app)), "--duration", f"{bound_s:.3f}"])

    def stage_drops(self, a: dict, b: dict) -> dict:
        sa, sb = a.get("packet_stats", {}), b.get("packet_stats", {})
        return {"packet_ring_drops": int(sb.get("tp_drops", 0)) - int(sa.get("tp_drops", 0))}


class DpdkTxonly(Generator):
    """dpdk-testpmd --forward-mode=txonly on the af_xdp PMD of the sender's
    veth: fixed-size UDP/IPv4 frames 198.18.0.1 -> 198.18.0.2 to the
    receiver's MAC (several flows with --txonly-multi-flow when the cell has
    several cores), bounded in time by rxbench.stacks.testpmd. Offered = the
    port's tx_good_packets."""

    name = "dpdk-txonly"
    tool = "dpdk-testpmd"
    ready_timeout = 90.0
    retries_refused = False      # the PMD counts a frame veth refused as sent
    polls_core = True            # a DPDK lcore polls whatever the load
    attaches_xdp = True          # the af_xdp PMD's program on the sender's interface
    pmd = "af_xdp"               # the benchmark also compares af_packet

    def probe(self) -> None:
        require_kernel("CONFIG_XDP_SOCKETS", host=self.host)
        for tool in (self.tool, "stdbuf"):
            if not self.which(tool):
                raise Unsupported(f"generator {self.name}: {tool} is not installed")

    def binary(self) -> str:
        return self.which(self.tool) or self.tool

    def vdev(self) -> str:
        s, n = self.tb.sender, len(self.placement.generator)
        if self.pmd == "af_xdp":
            return f"net_af_xdp0,iface={s.ifname},start_queue=0,queue_count={n}"
        return f"net_af_packet0,iface={s.ifname},qpairs={n},framecnt=4096"

    def argv(self, bound_s: float) -> list[str]:
        s, r, p = self.tb.sender, self.tb.receiver, self.cell.params
        app = ["--forward-mode=txonly", f"--txpkts={p['size'] - 4}", f"--eth-peer=0,{r.mac}",
               f"--tx-ip={s.ip},{r.ip}", f"--tx-udp={TEST_UDP_PORT},{TEST_UDP_PORT}"]
        if p.get("cores", 1) > 1:
            app.append("--txonly-multi-flow")
        return testpmd_command(self.tb, s, self.placement.generator,
                               f"{NETNS_PREFIX}{self.tb.token}-gen", self.vdev(), app, bound_s)

    def sent(self, snap: dict) -> int:
        return int(snap["tx_packets"])


class RxbGen(Generator):
    """native/rxb_gen.c: AF_PACKET sender of fixed-size UDP/IPv4 frames,
    bounded by --duration. One sending thread per receive queue
    (tb.queues), thread i pinned to generator CPU i mod len(CPUs) with its
    own flow (UDP source port 1024 + i); on veth the TX queue, hence the
    peer's RX queue, is the sending CPU's (rxbench.queues), so probe()
    refuses a multi-queue cell whose generator CPUs cannot reach every
    queue, with the reason."""

    name = "rxb-gen"
    tool = "rxb-gen"
    # a rate-controlled cell's target (eth load=<Mpps>): paced by
    # --rate-pps and bounded by --count as well as --duration; None: as
    # fast as it goes
    rate_pps: float | None = None

    def threads(self) -> int:
        return max(1, int(getattr(self.tb, "queues", 1) or 1), int(self.cell.params.get("cores", 1)))

    def thread_cpus(self) -> list[int]:
        """The CPU of each sending thread (empty: not pinned per thread)."""
        gen = list(self.placement.generator or [])
        return [gen[i % len(gen)] for i in range(self.threads())] if gen else []

    def probe(self) -> None:
        super().probe()
        n = self.threads()
        if n < 2:
            return
        s = self.tb.sender
        if not self._veth():
            return      # RSS on the receiver decides; the runner checks the queues
        from ..queues import mapping_problem, read_xps
        cpus = self.thread_cpus()
        why = mapping_problem(cpus, n, read_xps(s.host, s.ifname, n)) if cpus else \
            f"no generator CPUs to pin {n} sending threads to"
        if why:
            raise Unsupported(f"rxb-gen cannot spread over the {n} veth queues: {why} "
                              f"(one generator CPU per queue, distinct modulo {n}, or XPS)")

    def _veth(self) -> bool:
        """Is the sender's test interface a veth (the local platform's always
        is; elsewhere ask its driver)?"""
        if getattr(self.tb, "name", "") == "local":
            return True
        try:
            return self.tb.driver(self.tb.sender) == "veth"
        except RxbenchError:
            return False

    def argv(self, bound_s: float) -> list[str]:
        s, r = self.tb.sender, self.tb.receiver
        p = self.cell.params
        n = self.threads()
        argv = [self.binary(), "--ifname", s.ifname, "--dst-mac", r.mac,
                "--src-ip", s.ip, "--dst-ip", r.ip, "--size", str(p["size"]),
                "--flows", str(n), "--duration", f"{bound_s:.3f}"]
        if n > 1:
            argv += ["--threads", str(n)]
            if self.thread_cpus():
                argv += ["--cpus", ",".join(map(str, self.thread_cpus()))]
        if self.rate_pps:
            rate = max(n, int(round(self.rate_pps)))
            argv += ["--rate-pps", str(rate), "--count", str(int(rate * bound_s) + 1)]
        return s.exec(argv, self.placement.generator)

    def per_queue_sent(self, final: dict) -> dict[int, int]:
        """Frames per TX queue from rxb-gen's final (or snapshot) line: each
        thread's count on the queue its CPU sends on (veth, no XPS here)."""
        from ..queues import tx_queue
        n = self.threads()
        threads = final.get("threads") or [{"cpu": -1, "packets": final.get("packets", 0)}]
        out: dict[int, int] = {}
        for t in threads:
            q = tx_queue(t["cpu"], n) if t.get("cpu", -1) >= 0 else 0
            out[q] = out.get(q, 0) + int(t["packets"])
        return out


# Pktgen-DPDK's EAL memory without hugepages: its default pools fit in 512
# (tried on net_null), and the vm guests have 1024 MiB in all
PKTGEN_MEMORY_MB = 512


class PktgenDpdk(Generator):
    """Pktgen-DPDK, the seed's generator, on the af_xdp PMD of the sender's
    interface (as dpdk-txonly: no hugepages, no PCI), behind
    rxbench.stacks.pktgen_dpdk (a pseudo-terminal; counters from DPDK telemetry).
    The seed's mapping: `-m 1.0`, one lcore doing port 0's rx and tx beside
    the main lcore (both on the generator's CPU here); a .pkt command file
    sets the frame size (FCS included, as the cell's), the receiver's MAC
    and address, UDP port 9 both ways, rate 100 % and starts port 0.
    Offered = the port's opackets. Debian has no Pktgen-DPDK: `make tools`
    builds it into the vm guest image (workflow/scripts/build-tools.sh)."""

    name = "pktgen-dpdk"
    tool = "pktgen"
    ready_timeout = 120.0        # EAL start and the first packets under TCG
    retries_refused = False      # the PMD counts a frame veth refused as sent
    polls_core = True            # a DPDK lcore polls whatever the load

    def probe(self) -> None:
        require_kernel("CONFIG_XDP_SOCKETS", host=self.host)
        if not self.which(self.tool):
            raise Unsupported("generator pktgen-dpdk: Pktgen-DPDK is not installed: `make tools` "
                              "builds it from the pinned source into the vm guest image "
                              "(Debian does not package it)")
        if self.cell.params.get("cores", 1) > 1:
            raise Unsupported("generator pktgen-dpdk: one flow from one lcore here; cores > 1 "
                              "needs a flow per receive queue (use rxb-gen)")

    def binary(self) -> str:
        return self.which(self.tool) or self.tool

    def argv(self, bound_s: float) -> list[str]:
        s, r, p = self.tb.sender, self.tb.receiver, self.cell.params
        cpu = self.placement.generator[0]
        prefix = f"{NETNS_PREFIX}{self.tb.token}-pktgen"
        rundir = DPDK_RUNTIME / prefix
        s.host.registry.add("dirs", str(rundir))
        commands = [f"set 0 size {p['size']}", f"set 0 dst mac {r.mac}", f"set 0 src ip {s.ip}/15",
                    f"set 0 dst ip {r.ip}", "set 0 proto udp", f"set 0 sport {TEST_UDP_PORT}",
                    f"set 0 dport {TEST_UDP_PORT}", "set 0 rate 100", "set 0 count 0", "start 0"]
        pktgen = [self.binary(), "--no-huge", "-m", str(PKTGEN_MEMORY_MB), "--no-pci",
                  "--vdev", f"net_af_xdp0,iface={s.ifname},start_queue=0,queue_count=1",
                  "--file-prefix", prefix, "--lcores", f"0@{cpu},1@{cpu}", "--",
                  "-P", "-T", "-m", "1.0"]
        wrapper = [*s.host.python_module("rxbench.stacks.pktgen_dpdk"), "--duration", f"{bound_s:.3f}",
                   "--runtime-dir", str(rundir), "--commands", ";".join(commands), "--"]
        return s.exec(wrapper + pktgen, self.placement.generator)

    def sent(self, snap: dict) -> int:
        return int(snap["tx_packets"])


class Pktgen(Generator):
    """Linux's in-kernel packet generator (the pktgen module, the seed's VM
    generator) behind native/rxb_pktgen.c: the sender's test interface given
    to the pktgen kthread of the first generator CPU, UDP/IPv4 frames of the
    cell's size to the receiver's address and MAC (pktgen's default UDP port
    9, the test flow), bounded by --duration (and --count); burst 1 and
    clone_skb 0 (a fresh skb per frame: what a real sender pays). One
    kthread per sender TX queue, up to one per generator CPU and at least
    one per receiver core: thread i sends on TX queue i from CPU i with 16
    UDP source ports of its own (rxb-pktgen --threads), so the receiver's
    RSS spreads the flows. `unsupported` where the sender's kernel has no
    pktgen (this machine's: CONFIG_NET_PKTGEN is not set)."""

    name = "pktgen"
    tool = "rxb-pktgen"
    threads = 1

    def probe(self) -> None:
        try:
            require_kernel("CONFIG_NET_PKTGEN", host=self.host)
        except Unsupported as e:
            raise Unsupported(f"generator pktgen (Linux's pktgen module): {e}") from None
        s, cores = self.tb.sender, int(self.cell.params.get("cores", 1))
        ntx = len(s.host.run(["sh", "-c", f"ls -d /sys/class/net/{s.ifname}/queues/tx-*"],
                             check=False).split())
        gen = self.placement.generator
        self.threads = max(1, min(ntx, len(gen)))
        if self.threads < cores:
            raise Unsupported(f"generator pktgen: {cores} receiver cores want as many sending "
                              f"threads; the sender has {ntx} TX queue(s) and {len(gen)} "
                              f"generator CPU(s)")

    def argv(self, bound_s: float) -> list[str]:
        s, r, p = self.tb.sender, self.tb.receiver, self.cell.params
        gen = self.placement.generator
        threads = (["--cpu", str(gen[0])] if self.threads == 1 else
                   ["--threads", str(self.threads), "--cpus",
                    ",".join(map(str, gen[:self.threads]))])
        return s.exec([self.binary(), "--ifname", s.ifname, "--dst", r.ip, "--dst-mac", r.mac,
                       "--size", str(p["size"]), "--duration", f"{bound_s:.3f}",
                       "--burst", "1", "--clone-skb", "0", *threads])


# -- the registry's view (stacks/registry.py) ------------------------------------

def _dpdk_label(params: dict, nic_driver: str | None) -> str | None:
    """DPDK on veth is testpmd on the af_xdp PMD: an AF_XDP socket in copy
    mode, no kernel bypass (veth has no PCI device for a native PMD)."""
    return "DPDK (af_xdp PMD on veth)" if (nic_driver or "veth") == "veth" else None


_XDP = ("CONFIG_BPF_SYSCALL", "CONFIG_XDP_SOCKETS")
STACKS = [
    Stack("xdp_drop", "eth", XdpDrop, order=10, style=Style("#000000", "o", ""), role="ceiling",
          variants=(Variant("mode", {"enum": ["native", "skb"]}, ("native",),
                            "XDP attach mode"),),
          needs=Needs(kernel=XdpDrop.kernel_options, native=("rxb-xdp-drop", "xdp_drop.bpf.o"))),
    Stack("af_xdp", "eth", AfXdp, order=20, style=Style("#0072B2", "s", "//"),
          variants=(Variant("bind", {"enum": ["copy", "zerocopy", "auto"]}, ("copy",),
                            "AF_XDP bind mode"),
                    Variant("wait", {"enum": ["poll", "spin", "busy_poll"]}, ("poll",),
                            "how the consumer waits for frames"),
                    Variant("batch", {"type": "integer", "minimum": 1, "maximum": 2048}, (64,),
                            "descriptors per ring operation")),
          needs=Needs(kernel=_XDP, native=("rxb-af-xdp",))),
    Stack("dpdk", "eth", Dpdk, order=30, style=Style("#D55E00", "^", "xx"), relabel=_dpdk_label,
          variants=(Variant("pmd", {"enum": ["af_xdp", "af_packet", "native"]}, ("af_xdp",),
                            "DPDK poll-mode driver under testpmd"),
                    Variant("busy_budget", {"type": "integer", "minimum": 0, "maximum": 1024}, (0,),
                            "af_xdp PMD busy_budget (0 disables preferred busy polling)")),
          needs=Needs(programs=("dpdk-testpmd", "stdbuf"), kernel=("CONFIG_PACKET", *_XDP))),
    Stack("af_packet", "eth", AfPacket, order=40, style=Style("#009E73", "D", ".."),
          needs=Needs(programs=("tc",), kernel=AfPacket.kernel_options,
                      native=("rxb-af-packet", "tc_drop.bpf.o"))),
    # a cross-check of af_xdp by an independent receiver: right after it
    Stack("xdpsock", "eth", Xdpsock, order=25, style=Style("#332288", "<", "\\\\//"),
          needs=Needs(programs=("xdpsock", "stdbuf"), kernel=Xdpsock.kernel_options)),
]
GENERATORS = [
    GeneratorSpec("rxb-gen", "eth", RxbGen, Needs(native=("rxb-gen",)),
                  "native AF_PACKET TX ring"),
    GeneratorSpec("dpdk-txonly", "eth", DpdkTxonly,
                  Needs(programs=("dpdk-testpmd", "stdbuf"), kernel=("CONFIG_XDP_SOCKETS",)),
                  "testpmd txonly on the af_xdp PMD"),
    GeneratorSpec("pktgen", "eth", Pktgen, Needs(kernel=("CONFIG_NET_PKTGEN",),
                                                native=("rxb-pktgen",)),
                  "Linux's pktgen module by rxb-pktgen"),
    GeneratorSpec("pktgen-dpdk", "eth", PktgenDpdk,
                  Needs(programs=("pktgen",), kernel=("CONFIG_XDP_SOCKETS",)),
                  "Pktgen-DPDK on the af_xdp PMD, built by make tools"),
]
