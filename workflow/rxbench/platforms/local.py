"""The local platform: two network namespaces on this machine, sender and
receiver, joined by a veth pair; addresses from 198.18.0.0/15 (RFC 2544's
benchmarking range), no default route. Names carry a random token, so two
checkouts or runs never collide, and are written to the state registry
before they are created, so teardown and `rxbench clean` find them."""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
from dataclasses import dataclass, field

from .. import RxbenchError
from ..state import NETNS_PREFIX, Registry, delete_netns, kill_pid, new_token, testbed_lock
from ..util import CommandError, run

TEST_NET = ipaddress.ip_network("198.18.0.0/15")
SENDER_IP, RECEIVER_IP, PREFIX = "198.18.0.1", "198.18.0.2", 30


class TestbedError(RxbenchError):
    pass


@dataclass
class Side:
    role: str
    netns: str
    ifname: str
    ip: str
    mac: str = ""

    def exec(self, argv: list[str], cpus: list[int] | None = None) -> list[str]:
        """The command line that runs argv on this side, pinned to cpus."""
        pin = ["taskset", "-c", ",".join(map(str, cpus))] if cpus else []
        return ["ip", "netns", "exec", self.netns, *pin, *argv]


@dataclass
class Placement:
    """Which CPU runs what; recorded in every result."""
    generator: list[int]
    application: list[int]
    napi_mode: str
    napi: list[int]
    napi_threads: list[dict] = field(default_factory=list)
    napi_gro: bool = False      # GRO switched on to give veth NAPI (no XDP program)
    rps: bool = False           # receive packet steering to the NAPI CPUs (TCP layer)

    def as_dict(self) -> dict:
        return {"generator": self.generator, "application": self.application,
                "napi": {"mode": self.napi_mode, "cpus": self.napi,
                         "threads": self.napi_threads, "gro": self.napi_gro,
                         "rps": self.rps}}

    @property
    def receiver_only(self) -> set[int]:
        """CPUs that do receive work and nothing of the generator's."""
        return (set(self.application) | set(self.napi)) - set(self.generator)


def _check_test_ip(ip: str) -> str:
    if ipaddress.ip_address(ip) not in TEST_NET:
        raise TestbedError(f"refusing test address {ip}: not in {TEST_NET}")
    return ip


class LocalTestbed:
    name = "local"

    def __init__(self, cfg: dict, log, queues: int = 1, token: str | None = None):
        self.cfg, self.log = cfg, log
        self.pcfg = cfg["platforms"]["local"]
        self.queues = queues
        self.token = token or new_token()
        self.registry = Registry(self.token)
        t = self.token
        self.sender = Side("sender", f"{NETNS_PREFIX}{t}-s", f"rxb{t}s", _check_test_ip(SENDER_IP))
        self.receiver = Side("receiver", f"{NETNS_PREFIX}{t}-r", f"rxb{t}r",
                             _check_test_ip(RECEIVER_IP))
        self.commands: list[str] = []

    # -- lifecycle ---------------------------------------------------------
    def _run(self, argv: list[str], **kw) -> str:
        self.commands.append(" ".join(argv))
        return run(argv, log=self.log, **kw)

    def up(self) -> "LocalTestbed":
        s, r = self.sender, self.receiver
        for side in (s, r):
            self.registry.add("netns", side.netns)   # written down before it exists
            self._run(["ip", "netns", "add", side.netns])
        q = str(self.queues)
        self._run(["ip", "link", "add", s.ifname, "netns", s.netns,
                   "numtxqueues", q, "numrxqueues", q, "type", "veth",
                   "peer", "name", r.ifname, "netns", r.netns,
                   "numtxqueues", q, "numrxqueues", q])
        mtu = str(self.pcfg["mtu"])
        for side in (s, r):
            ns = side.netns
            # no IPv6: its router/neighbour solicitations would be counted as test traffic
            self._run(["ip", "netns", "exec", ns, "sysctl", "-qw",
                       "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"])
            self._run(["ip", "-n", ns, "link", "set", "lo", "up"])
            self._run(["ip", "-n", ns, "link", "set", side.ifname, "mtu", mtu, "up"])
            self._run(["ip", "-n", ns, "addr", "add", f"{side.ip}/{PREFIX}", "dev", side.ifname])
            side.mac = self.mac(side)
        # the receiver's XDP program drops ARP too: a static neighbour entry
        # and both ends static, so no ARP crosses the link during a cell
        for a, b in ((s, r), (r, s)):
            self._run(["ip", "-n", a.netns, "neigh", "replace", b.ip, "lladdr", b.mac,
                       "dev", a.ifname, "nud", "permanent"])
        for side in (s, r):
            routes = self._run(["ip", "-n", side.netns, "route", "show", "default"])
            if routes.strip():
                raise TestbedError(f"{side.netns} has a default route: {routes.strip()}")
        self.log(f"testbed up: {s.netns}/{s.ifname} {s.ip} {s.mac} -> "
                 f"{r.netns}/{r.ifname} {r.ip} {r.mac}, {self.queues} queue(s)")
        return self

    def down(self) -> None:
        """Unconditional: kill our processes, delete the namespaces (which
        removes the veth pair and every XDP program on it), drop the record."""
        for pid, start in self.registry.data["pids"]:
            kill_pid(pid, start)      # only if it is still the process we started
        for ns in self.registry.data["netns"]:
            delete_netns(ns)
        for d in self.registry.data["dirs"]:
            shutil.rmtree(d, ignore_errors=True)
        self.registry.remove_file()
        self.log(f"testbed down: {', '.join(self.registry.data['netns'])} removed")

    def __enter__(self):
        # every testbed holds the machine's lock (a test's too, not only a cell's)
        self._lock = testbed_lock(self.log)
        self._lock.__enter__()
        try:
            return self.up()
        except BaseException:
            self.down()
            self._lock.__exit__(None, None, None)
            raise

    def __exit__(self, *exc):
        try:
            self.down()
        finally:
            self._lock.__exit__(None, None, None)

    # -- facts -------------------------------------------------------------
    def mac(self, side: Side) -> str:
        out = self._run(["ip", "-n", side.netns, "-br", "link", "show", "dev", side.ifname])
        return out.split()[2]

    def driver(self, side: Side) -> str:
        out = run(["ip", "netns", "exec", side.netns, "ethtool", "-i", side.ifname], check=False)
        m = re.search(r"^driver:\s*(\S+)", out, re.M)
        return m.group(1) if m else "unknown"

    # -- placement ---------------------------------------------------------
    def cpus(self, cores: int, napi: str) -> Placement:
        ncpus = len(os.sched_getaffinity(0))
        gen = list(self.pcfg["generator_cpus"])
        free = [c for c in range(ncpus) if c not in gen]
        app = free[:cores]
        if len(app) < cores:
            raise TestbedError(f"{cores} receiver cores asked, {len(free)} free on this host")
        if napi == "sender":
            napi_cpus = gen
        elif napi == "receiver":
            napi_cpus = app
        elif napi == "dedicated":
            rest = free[cores:]
            if not rest:
                raise TestbedError("napi=dedicated needs a free CPU beside the receiver's")
            napi_cpus = rest[:1]
        else:
            raise TestbedError(f"unknown napi placement {napi!r}")
        return Placement(gen, app, napi, napi_cpus)

    def napi_kthreads(self) -> list[dict]:
        """Threaded-NAPI kthreads of the receiver's interface (named
        napi/<ifname>-<napi id>; /proc/PID/status has the untruncated name)."""
        want = f"napi/{self.receiver.ifname}-"
        found = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/status") as f:
                    name = f.readline().split(None, 1)[1].strip()
            except (OSError, IndexError):
                continue
            if name.startswith(want):
                found.append({"pid": int(pid), "name": name})
        return found

    def place_rps(self, placement: Placement) -> None:
        """TCP on veth: with TSO on, veth hands a TCP skb to netif_rx, never
        to NAPI, so threaded NAPI cannot move the receive path; receive
        packet steering can: every rx queue of the receiver steers to the
        placement's NAPI CPUs, and TCP's receive processing runs in softirq
        there instead of on the sender's CPU. 'sender' leaves veth alone."""
        if placement.napi_mode == "sender":
            return
        r = self.receiver
        mask = format(sum(1 << c for c in placement.napi), "x")
        for q in range(self.queues):
            path = f"/sys/class/net/{r.ifname}/queues/rx-{q}/rps_cpus"
            self._run(["ip", "netns", "exec", r.netns, "sh", "-c", f"echo {mask} > {path}"])
        placement.rps = True

    def place_napi(self, placement: Placement) -> None:
        """Apply the NAPI placement. 'sender': veth's default, the receive
        path runs in softirq on the sending CPU. 'receiver'/'dedicated':
        threaded NAPI (possible only once veth has NAPI, i.e. with an XDP
        program attached), kthreads pinned to placement.napi."""
        r, snd = self.receiver, self.sender
        threaded = "0" if placement.napi_mode == "sender" else "1"
        path = f"/sys/class/net/{r.ifname}/threaded"
        current = self._run(["ip", "netns", "exec", r.netns, "cat", path]).strip()
        if current == threaded:
            pass
        elif threaded == "0":
            self._run(["ip", "netns", "exec", r.netns, "sh", "-c", f"echo 0 > {path}"])
        else:
            write = ["ip", "netns", "exec", r.netns, "sh", "-c", f"echo 1 > {path}"]
            try:
                self._run(write)
            except CommandError:
                # veth has NAPI only with an XDP program, or with GRO on the
                # receiver (EIO otherwise); and it hands a frame to NAPI only
                # if the sender has no TSO (veth_skb_is_eligible_for_gro)
                self._run(["ip", "netns", "exec", r.netns, "ethtool", "-K", r.ifname,
                           "gro", "on"])
                self._run(["ip", "netns", "exec", snd.netns, "ethtool", "-K", snd.ifname,
                           "tso", "off"])
                self._run(write)
                placement.napi_gro = True
        if threaded == "0":
            return
        threads = self.napi_kthreads()
        if not threads:
            raise TestbedError(f"threaded NAPI on {r.ifname}: no napi/{r.ifname}-* kthread found")
        cpus = ",".join(map(str, placement.napi))
        for t in threads:
            self._run(["taskset", "-pc", cpus, str(t["pid"])])
            t["cpus"] = placement.napi
        placement.napi_threads = threads
