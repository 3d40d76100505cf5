"""What every platform's testbed has in common: the two sides (each on a
Host), the CPU placement, and NAPI/RPS placement done through the hosts
(sysfs values written with their old values recorded first)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from .. import TestbedError  # noqa: F401 (raised here, imported from here by the platforms)
from ..hosts import OnHost
from ..util import CommandError

TEST_NET = ipaddress.ip_network("198.18.0.0/15")


class PreflightError(TestbedError):
    """A host cannot run any cell (unreachable, not root, unsafe test
    interface, ...): the campaign stops before anything runs."""


@dataclass
class Side:
    role: str
    netns: str | None
    ifname: str
    ip: str
    mac: str = ""
    host: object = None
    # the user-space driver that owns the test NIC (DPDK's own PMD): the
    # kernel has no interface, no NAPI and no link counters for it then
    bypass: str | None = None

    def exec(self, argv: list[str], cpus: list[int] | None = None) -> list[str]:
        """The command line that runs argv on this side's host, pinned to cpus."""
        pin = ["taskset", "-c", ",".join(map(str, cpus))] if cpus else []
        return OnHost([*pin, *argv], self.host)


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


def check_test_ip(ip: str) -> str:
    if ipaddress.ip_address(ip) not in TEST_NET:
        raise TestbedError(f"refusing test address {ip}: not in {TEST_NET}")
    return ip


class TestbedBase:
    """Needs self.sender, self.receiver (Sides with hosts), self.queues, self.log."""

    # seconds every remote step (a process start, a snapshot over SSH) may
    # take beyond what the runner allows on a real host: TCG guests need more
    slack_s = 0.0
    # is the machine that runs the runner (the controller) one of the test
    # hosts? Only then does a probe of the controller's CPUs say anything
    # about the cell, and only then may one run inside a measured interval
    controller_is_test_host = False

    def host_probe(self, rounds: int | None = None) -> dict:
        """A probe of the test host's CPUs recorded with the cell
        (result host_probe, host_probe_during); {} where the platform has
        none: here the controller is no test host, so nothing runs."""
        return {}

    def _run(self, side: Side, argv: list[str], **kw) -> str:
        self.commands.append(f"[{side.role}] " + " ".join(argv))
        return side.host.run(argv, log=self.log, **kw)

    def connect(self) -> None:
        """Reach both hosts at once (a remote host: its SSH master, its agent
        and its facts, ~0.5 s each over SSH, in parallel instead of one after
        the other). A host that cannot be reached keeps its error for the
        pre-flight, which reports it (Host.connect raises it there)."""
        import signal
        import threading

        from ..hosts.tool import TERM_SIGNALS
        hosts = [s.host for s in (self.sender, self.receiver)
                 if hasattr(s.host, "connect") and getattr(s.host, "hello", 0) is None]
        if len(hosts) < 2:
            return

        def reach(host):
            # termination signals go to the main thread (waiting in join)
            signal.pthread_sigmask(signal.SIG_BLOCK, TERM_SIGNALS)
            try:
                host.connect()
            except Exception as e:     # noqa: BLE001 (raised again, whatever it is, by connect)
                host.connect_error = e
        threads = [threading.Thread(target=reach, args=(h,), daemon=True) for h in hosts]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def preflight(self) -> None:
        """Check the hosts before anything runs (PreflightError otherwise)."""

    def describe(self, side: Side) -> dict:
        return {"host": side.host.key, "netns": side.netns, "ifname": side.ifname,
                "ip": side.ip, "mac": side.mac}

    def tool_info(self, name: str, path: str) -> dict:
        """Where a tool the cell ran is, and its sha256."""
        from ..provenance import sha256
        try:
            return {"path": path, "sha256": sha256(path)}
        except OSError:
            return {"path": path, "sha256": "n/a"}

    def provenance(self) -> dict | None:
        """Per-host facts for the result's provenance.platform (None: this machine's)."""
        return None

    def driver(self, side: Side) -> str:
        out = side.host.run(["ethtool", "-i", side.ifname], check=False)
        m = re.search(r"^driver:\s*(\S+)", out, re.M)
        return m.group(1) if m else "unknown"

    def restore_placement(self) -> None:
        """Undo place_napi/place_rps while the receiver still runs."""
        for side in (self.receiver, self.sender):
            side.host.restore_sysfs(log=self.log)

    def napi_kthreads(self) -> list[dict]:
        """Threaded-NAPI kthreads of the receiver's interface (named
        napi/<ifname>-<napi id>; /proc/PID/status has the untruncated name)."""
        return self.receiver.host.kthreads(f"napi/{self.receiver.ifname}-")

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
            self.commands.append(f"[receiver] echo {mask} > rx-{q}/rps_cpus")
            r.host.set_sysfs(f"/sys/class/net/{r.ifname}/queues/rx-{q}/rps_cpus", mask,
                             log=self.log)
        placement.rps = True

    def place_napi(self, placement: Placement) -> None:
        """Apply the NAPI placement. 'sender': veth's default, the receive
        path runs in softirq on the sending CPU. 'receiver'/'dedicated':
        threaded NAPI (possible only once veth has NAPI, i.e. with an XDP
        program attached), kthreads pinned to placement.napi."""
        r, snd = self.receiver, self.sender
        if r.bypass:
            return          # no kernel receive path: the PMD's lcores are the placement
        threaded = "0" if placement.napi_mode == "sender" else "1"
        path = f"/sys/class/net/{r.ifname}/threaded"
        self.commands.append(f"[receiver] echo {threaded} > {path}")
        try:
            r.host.set_sysfs(path, threaded, log=self.log)
        except CommandError:
            if threaded == "0":
                # a veth without NAPI (no XDP program, GRO off) refuses any
                # write (EIO): unthreaded is then what it already is
                if (r.host.read_file(path) or "").strip() == "0":
                    return
                raise
            # veth has NAPI only with an XDP program, or with GRO on the
            # receiver (EIO otherwise); and it hands a frame to NAPI only
            # if the sender has no TSO (veth_skb_is_eligible_for_gro)
            self.commands.append(f"[receiver] ethtool -K {r.ifname} gro on")
            r.host.set_feature(r.ifname, "gro", "on", log=self.log)
            self.commands.append(f"[sender] ethtool -K {snd.ifname} tso off")
            snd.host.set_feature(snd.ifname, "tso", "off", log=self.log)
            r.host.set_sysfs(path, threaded, log=self.log)
            placement.napi_gro = True
        if threaded == "0":
            return
        threads = self.napi_kthreads()
        if not threads:
            raise TestbedError(f"threaded NAPI on {r.ifname}: no napi/{r.ifname}-* kthread found")
        cpus = ",".join(map(str, placement.napi))
        for t in threads:
            self._run(r, ["taskset", "-pc", cpus, str(t["pid"])])
            t["cpus"] = placement.napi
        placement.napi_threads = threads


class LeasedTestbed:
    """A platform whose lease (guests, a Grid'5000 job) gives an inventory
    that the ssh platform's SshTestbed (`self.inner`) then measures on:
    everything a cell asks of the testbed goes to the inner one (its
    command log too)."""

    # the controller leased the test hosts; it is none of them
    controller_is_test_host = False

    def host_probe(self, rounds: int | None = None) -> dict:
        return {}

    def __getattr__(self, name):
        inner = self.__dict__.get("inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)

    def __enter__(self):
        self.inner.__enter__()
        return self

    def __exit__(self, *exc):
        return self.inner.__exit__(*exc)
