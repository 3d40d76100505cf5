"""The local platform: two network namespaces on this machine, sender and
receiver, joined by a veth pair; addresses from 198.18.0.0/15 (RFC 2544's
benchmarking range), no default route. Names carry a random token, so two
checkouts or runs never collide, and are written to the state registry
before they are created, so teardown and `rxbench clean` find them."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess

from .. import RxbenchError
from ..hosts import NetnsHost
from ..state import NETNS_PREFIX, Registry, delete_netns, kill_pid, new_token, testbed_lock
from ..util import CommandError, run
from .base import TEST_NET, Placement, Side, TestbedBase, TestbedError, check_test_ip

# What this platform can and cannot show, and where it has run (the paper's
# platforms table, tables.platform_rows, prints these beside the data)
CAN_SHOW = ("each stack's rate and CPU cost relative to the others on one kernel, with "
            "sender and receiver on CPUs of their own: XDP, AF_XDP in copy mode, DPDK on "
            "its af_xdp and af_packet drivers, AF_PACKET, the TCP servers, zcrx's "
            "device-less API")
CANNOT_SHOW = ("a NIC's rates or line rate, zero-copy (AF_XDP or zcrx), DPDK's own drivers "
               "(nothing bypasses the kernel on veth), more cores than the machine has")
EXERCISED = "this machine: every campaign of the committed reference sets"

__all__ = ["LocalTestbed", "Placement", "Side", "TestbedError", "TEST_NET"]

SENDER_IP, RECEIVER_IP, PREFIX = "198.18.0.1", "198.18.0.2", 30
_check_test_ip = check_test_ip


def host_probe(cfg: dict, log, rounds: int | None = None) -> dict:
    """Cache-line round trip between the generator's CPU and the receiver's
    (native/rxb_pingpong.c) on this machine: on a VM the host's vCPU
    placement moves it, and packet rates move with it."""
    from ..hosts.netns import native_tool
    gen = cfg["platforms"]["local"]["generator_cpus"][0]
    free = [c for c in sorted(os.sched_getaffinity(0)) if c not in
            cfg["platforms"]["local"]["generator_cpus"]]
    if not free:
        return {}
    try:
        out = run([native_tool("rxb-pingpong"), "--cpus", f"{gen},{free[0]}",
                   *(["--rounds", str(rounds)] if rounds else [])], log=log)
        return {"pingpong_ns": json.loads(out)["ns_per_round_trip"], "cpus": [gen, free[0]]}
    except (RxbenchError, ValueError, KeyError) as e:
        log(f"host probe failed: {e}")
        return {}


class LocalTestbed(TestbedBase):
    name = "local"
    controller_is_test_host = True      # both namespaces are on this machine

    def host_probe(self, rounds: int | None = None) -> dict:
        return host_probe(self.cfg, self.log, rounds)

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

    def _batch(self, netns: str | None, lines: list[str]) -> str:
        """ip commands in one process (ip -batch; in a namespace with -n):
        a testbed is 3 processes instead of 17. Each is recorded as the
        command it stands for; the first that fails stops the batch."""
        pre = ["ip", *(["-n", netns] if netns else [])]
        self.commands += [" ".join(pre) + " " + line for line in lines]
        self.log(f"$ {shlex.join([*pre, '-batch', '-'])} <<< {'; '.join(lines)}")
        try:
            p = subprocess.run([*pre, "-batch", "-"], input="\n".join(lines) + "\n",
                               capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise CommandError(f"{shlex.join([*pre, '-batch', '-'])}: {e}") from None
        if p.returncode != 0:
            err = " / ".join(p.stderr.strip().splitlines()[-2:]) or "no output"
            raise CommandError(f"{' '.join(pre)} -batch ({'; '.join(lines)}) failed "
                               f"({p.returncode}): {err}")
        return p.stdout

    def up(self) -> "LocalTestbed":
        s, r = self.sender, self.receiver
        for side in (s, r):
            self.registry.add("netns", side.netns)   # written down before it exists
            # chosen, not read back: locally administered, from the token
            side.mac = f"02:{':'.join(self.token[i:i + 2] for i in (0, 2, 4, 6))}:" \
                       f"{'01' if side is s else '02'}"
        q = str(self.queues)
        self._batch(None, [f"netns add {s.netns}", f"netns add {r.netns}",
                           f"link add {s.ifname} netns {s.netns} address {s.mac} "
                           f"numtxqueues {q} numrxqueues {q} type veth "
                           f"peer name {r.ifname} netns {r.netns} address {r.mac} "
                           f"numtxqueues {q} numrxqueues {q}"])
        mtu = str(self.pcfg["mtu"])
        for side, peer in ((s, r), (r, s)):
            # no IPv6 (before the link is up): its router/neighbour
            # solicitations would be counted as test traffic
            self._run(side, ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                             "net.ipv6.conf.default.disable_ipv6=1"])
            # the receiver's XDP program drops ARP too: static neighbours both
            # ways, so no ARP crosses the link during a cell
            routes = self._batch(side.netns, [
                "link set lo up", f"link set {side.ifname} mtu {mtu} up",
                f"addr add {side.ip}/{PREFIX} dev {side.ifname}",
                f"neigh replace {peer.ip} lladdr {peer.mac} dev {side.ifname} nud permanent",
                "route show default"])
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

