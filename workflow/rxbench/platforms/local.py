"""The local platform: two network namespaces on this machine, sender and
receiver, joined by a veth pair; addresses from 198.18.0.0/15 (RFC 2544's
benchmarking range), no default route. Names carry a random token, so two
checkouts or runs never collide, and are written to the state registry
before they are created, so teardown and `rxbench clean` find them."""

from __future__ import annotations

import os
import shutil

from ..hosts import NetnsHost
from ..state import NETNS_PREFIX, Registry, delete_netns, kill_pid, new_token, testbed_lock
from ..util import run
from .base import TEST_NET, Placement, Side, TestbedBase, TestbedError, check_test_ip

__all__ = ["LocalTestbed", "Placement", "Side", "TestbedError", "TEST_NET"]

SENDER_IP, RECEIVER_IP, PREFIX = "198.18.0.1", "198.18.0.2", 30
_check_test_ip = check_test_ip


class LocalTestbed(TestbedBase):
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
        for side in (self.sender, self.receiver):
            side.host = NetnsHost(side.role, side.netns, self.registry)
        self.commands: list[str] = []

    # -- lifecycle ---------------------------------------------------------
    def _sh(self, argv: list[str], **kw) -> str:
        """A command in the root namespace (creating the testbed)."""
        self.commands.append(" ".join(argv))
        return run(argv, log=self.log, **kw)

    def up(self) -> "LocalTestbed":
        s, r = self.sender, self.receiver
        for side in (s, r):
            self.registry.add("netns", side.netns)   # written down before it exists
            self._sh(["ip", "netns", "add", side.netns])
        q = str(self.queues)
        self._sh(["ip", "link", "add", s.ifname, "netns", s.netns,
                   "numtxqueues", q, "numrxqueues", q, "type", "veth",
                   "peer", "name", r.ifname, "netns", r.netns,
                   "numtxqueues", q, "numrxqueues", q])
        mtu = str(self.pcfg["mtu"])
        for side in (s, r):
            ns = side.netns
            # no IPv6: its router/neighbour solicitations would be counted as test traffic
            self._run(side, ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                             "net.ipv6.conf.default.disable_ipv6=1"])
            self._sh(["ip", "-n", ns, "link", "set", "lo", "up"])
            self._sh(["ip", "-n", ns, "link", "set", side.ifname, "mtu", mtu, "up"])
            self._sh(["ip", "-n", ns, "addr", "add", f"{side.ip}/{PREFIX}", "dev", side.ifname])
            side.mac = self.mac(side)
        # the receiver's XDP program drops ARP too: a static neighbour entry
        # and both ends static, so no ARP crosses the link during a cell
        for a, b in ((s, r), (r, s)):
            self._sh(["ip", "-n", a.netns, "neigh", "replace", b.ip, "lladdr", b.mac,
                       "dev", a.ifname, "nud", "permanent"])
        for side in (s, r):
            routes = self._sh(["ip", "-n", side.netns, "route", "show", "default"])
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
        out = self._sh(["ip", "-n", side.netns, "-br", "link", "show", "dev", side.ifname])
        return out.split()[2]

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

