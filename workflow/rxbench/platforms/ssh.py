"""The ssh platform: two hosts the user already has (or that vm/g5k
bring up), reached over SSH, joined by a test link the inventory names.
Nothing is created on the link itself; the testbed checks it (pre-flight:
reachable, root or sudo, kernel options, tools, the interface up, its
speed, never the default route's or the SSH session's interface, test
addresses in 198.18.0.0/15), sets static neighbours, records what it
changes in each host's own state record and restores it at teardown."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import yaml

from .. import ROOT, RxbenchError
from ..hosts import SshHost
from ..stacks import registry
from ..state import Registry, new_token, testbed_lock
from .base import TEST_NET, Placement, PreflightError, Side, TestbedBase, TestbedError

# What this platform can and cannot show, and where it has run (tables.platform_rows)
CAN_SHOW = ("the same cells between two hosts over a test link the inventory names: real "
            "NICs and drivers, DPDK's own driver, AF_XDP zero-copy, multi-queue, zcrx where "
            "the NIC has header split and flow steering")
CANNOT_SHOW = ("anything on an interface that carries the default route or the SSH "
               "session (refused), or on a link the hosts do not both have")
EXERCISED = ("between network namespaces of one machine, each with its own sshd (the tests); "
             "never between two real hosts")

INVENTORY_SCHEMA = ROOT / "workflow" / "schemas" / "inventory.schema.yaml"
# the kernel options the platform itself asks about (SshHost reads these at
# connect, with every one a stack or generator declares: kernel_options())
PLATFORM_KERNEL_OPTIONS = ("CONFIG_NET_RX_BUSY_POLL", "CONFIG_RPS")
# what the platform itself needs on a host (the stacks' programs: host_programs())
REQUIRED_TOOLS = ("python3", "ip", "ethtool", "taskset", "make", "cc", "clang", "pkg-config",
                  "nstat", "ss")


def kernel_options() -> tuple[str, ...]:
    return tuple(dict.fromkeys((*PLATFORM_KERNEL_OPTIONS, *registry.kernel_options())))


def host_programs() -> tuple[str, ...]:
    """Every program looked up on a host at connect: the platform's, and
    those the stacks and generators may use (stacks/registry.py)."""
    return tuple(dict.fromkeys((*REQUIRED_TOOLS, *registry.host_programs(), "env")))


class InventoryError(RxbenchError):
    pass


def _explain(error) -> str:
    path = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    v = error.validator
    if v == "required":
        return f"inventory {path}: {error.message}"
    if v == "additionalProperties":
        return f"inventory {path}: {error.message}"
    return f"inventory {path}: {error.instance!r}: {error.message}"


def validate_inventory(inv) -> dict:
    """Schema (one line per error) and semantics: test addresses from
    198.18.0.0/15 on one subnet, distinct hosts, CPUs."""
    import jsonschema
    if not isinstance(inv, dict):
        raise InventoryError("inventory: expected a mapping with sender and receiver")
    schema = yaml.safe_load(INVENTORY_SCHEMA.read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(inv),
                    key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise InventoryError("\n".join(_explain(e) for e in errors))
    problems = []
    nets = {}
    for role in ("sender", "receiver"):
        h = inv[role]
        try:
            ip = ipaddress.ip_address(h["test_ip"])
        except ValueError:
            problems.append(f"inventory {role}.test_ip: {h['test_ip']!r} is not an IP address")
            continue
        if ip not in TEST_NET:
            problems.append(f"inventory {role}.test_ip: {ip} is not in {TEST_NET} "
                            f"(test traffic uses the benchmarking range only)")
        nets[role] = ipaddress.ip_interface(f"{ip}/{h.get('prefix', 30)}").network
        try:
            if ipaddress.ip_address(h["address"]) in TEST_NET and \
                    ipaddress.ip_address(h["address"]) in nets[role]:
                problems.append(f"inventory {role}.address: {h['address']} is on the test link")
        except ValueError:
            pass        # a host name: checked by pre-flight on the host
    if len(nets) == 2 and nets["sender"] != nets["receiver"]:
        problems.append(f"inventory: sender and receiver test addresses are on different "
                        f"subnets ({nets['sender']}, {nets['receiver']})")
    if inv["sender"]["test_ip"] == inv["receiver"]["test_ip"]:
        problems.append("inventory: sender and receiver have the same test_ip")
    if problems:
        raise InventoryError("\n".join(problems))
    return inv


def load_inventory(path) -> dict:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as e:
        raise InventoryError(f"inventory {path}: cannot read it: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise InventoryError(f"inventory {path}: not YAML: {str(e).splitlines()[0]}") from None
    return validate_inventory(data)


def inventory_for(cfg: dict) -> dict:
    inv = cfg.get("inventory")
    if not inv:
        raise InventoryError("platform ssh needs an inventory: --config inventory=FILE")
    return inv if isinstance(inv, dict) else load_inventory(inv)


class SshTestbed(TestbedBase):
    name = "ssh"

    def __init__(self, cfg: dict, log, inventory: dict | None = None, queues: int = 1,
                 token: str | None = None):
        self.cfg, self.log, self.queues = cfg, log, queues
        self.inv = validate_inventory(inventory if inventory is not None else inventory_for(cfg))
        self.token = token or new_token()
        self.registry = Registry(self.token)      # this controller's own record
        self.commands: list[str] = []
        tools, options = host_programs(), kernel_options()
        for role in ("sender", "receiver"):
            h = self.inv[role]
            host = SshHost(role, h, log, self.token, ifname=h["test_interface"],
                           options=options, tools=tools)
            setattr(self, role, Side(role, None, h["test_interface"], h["test_ip"], host=host))
        self.checked = False

    # -- pre-flight ----------------------------------------------------------
    def preflight(self) -> None:
        """Every host, every check; all failures at once, one line each."""
        if self.checked:
            return
        problems = []
        for side in (self.sender, self.receiver):
            try:
                problems += self._check(side)
            except RxbenchError as e:      # HostError names the host
                problems.append(str(e))
        if problems:
            raise PreflightError("pre-flight failed:\n" + "\n".join(problems))
        self.checked = True

    def _check(self, side: Side) -> list[str]:
        host, h = side.host, self.inv[side.role]
        f = host.connect()["facts"]
        who = f"{side.role} {host.address}"
        out = []
        if f["euid"] != 0:
            out.append(f"{who}: not root (uid {f['euid']}): log in as root or set sudo: true")
        for t in REQUIRED_TOOLS:
            if not f["tools"].get(t):
                out.append(f"{who}: {t} is not installed")
        kc = f["kernel_config"]
        if not kc.get("source"):
            self.log(f"{who}: no kernel config readable (/proc/config.gz, /boot/config-*): "
                     f"the tools report what the kernel lacks")
        else:
            for opt in ("CONFIG_BPF_SYSCALL", "CONFIG_XDP_SOCKETS", "CONFIG_PACKET", "CONFIG_INET"):
                if kc["options"].get(opt) not in ("y", "m"):
                    out.append(f"{who}: kernel {f['release']} lacks {opt}")
        nic = f["nic"]
        ifn = side.ifname
        if not nic.get("exists"):
            return out + [f"{who}: test interface {ifn} does not exist"]
        if nic.get("operstate") not in ("up", "unknown"):
            out.append(f"{who}: test interface {ifn} is {nic.get('operstate')}, not up")
        # traffic safety: never the interface of the default route or of the SSH session
        if ifn in f.get("default_routes", []):
            out.append(f"{who}: test interface {ifn} carries the default route: refusing "
                       f"(test traffic must stay on a dedicated link)")
        ssh_ip = (f.get("ssh_connection") or "").split()[2:3]
        if f.get("ssh_dev") == ifn or (ssh_ip and ssh_ip[0] in nic.get("addresses", [])):
            out.append(f"{who}: test interface {ifn} carries this SSH session "
                       f"({' '.join(ssh_ip)}): refusing")
        if h["test_ip"] not in nic.get("addresses", []):
            out.append(f"{who}: test interface {ifn} does not have the test address "
                       f"{h['test_ip']} (has {', '.join(nic.get('addresses', [])) or 'none'})")
        for a in nic.get("addresses", []):
            try:
                if ipaddress.ip_address(a).version == 4 and ipaddress.ip_address(a) not in TEST_NET:
                    out.append(f"{who}: test interface {ifn} has {a}, outside {TEST_NET}: refusing")
            except ValueError:
                pass
        ncpu = f["ncpus"]
        for key in ("cpus", "napi_cpus"):
            for c in h.get(key, []):
                if c >= ncpu:
                    out.append(f"{who}: {key} names CPU {c}; the host has CPUs 0..{ncpu - 1}")
        side.mac = nic.get("address", "")
        return out

    # -- lifecycle -------------------------------------------------------------
    def up(self) -> "SshTestbed":
        self.preflight()
        s, r = self.sender, self.receiver
        self.registry.add("ssh_hosts", [s.host.key, r.host.key])
        for a, b in ((s, r), (r, s)):
            # static neighbours both ways (an XDP receiver drops ARP)
            a.host.registry.add("neigh", [a.ifname, b.ip])
            self._run(a, ["ip", "neigh", "replace", b.ip, "lladdr", b.mac, "dev", a.ifname,
                          "nud", "permanent"])
        # the receiver's RSS over as many queues as the cell has cores, its
        # link speed and IRQ placement (rxbench.queues.steer; undone at teardown)
        from ..queues import steer
        self.queue_setup = steer(self, self.queues)
        self.log(f"testbed up: {s.host.key}/{s.ifname} {s.ip} {s.mac} -> "
                 f"{r.host.key}/{r.ifname} {r.ip} {r.mac}")
        return self

    def down(self) -> None:
        """Unconditional on both hosts: what each host's record lists is
        released there; a host that does not answer is cleaned at the next
        contact (its record stays on it)."""
        for side in (self.sender, self.receiver):
            try:
                for item in side.host.release():
                    self.log(f"[{side.host.key}] released {item}")
            except RxbenchError as e:
                self.log(f"[{side.host.key}] teardown failed: {e}; the host's state record "
                         f"{side.host.registry.path} is released at the next contact")
            side.host.close()
        self.registry.remove_file()
        self.log("testbed down")

    def __enter__(self):
        self._lock = testbed_lock(self.log)     # this machine's CPUs may be the hosts'
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

    # -- placement ---------------------------------------------------------------
    def cpus(self, cores: int, napi: str) -> Placement:
        gen = list(self.inv["sender"]["cpus"])
        rcv = list(self.inv["receiver"]["cpus"])
        app = rcv[:cores]
        if len(app) < cores:
            raise TestbedError(f"{cores} receiver cores asked, the inventory gives the "
                               f"receiver {len(rcv)} ({rcv})")
        napi_cpus = list(self.inv["receiver"].get("napi_cpus") or app)
        if napi == "sender":
            napi_cpus = gen
        elif napi == "receiver":
            napi_cpus = app
        elif napi == "dedicated":
            rest = [c for c in napi_cpus if c not in app] or [c for c in rcv[cores:]]
            if not rest:
                raise TestbedError("napi=dedicated needs a receiver CPU beside the application's "
                                   "(inventory receiver.napi_cpus)")
            napi_cpus = rest[:1]
        else:
            raise TestbedError(f"unknown napi placement {napi!r}")
        return Placement(gen, app, napi, napi_cpus)

    # -- provenance --------------------------------------------------------------
    def describe(self, side: Side) -> dict:
        return {**super().describe(side), "address": side.host.address}

    def tool_info(self, name: str, path: str) -> dict:
        side = self.receiver if path.startswith(self.receiver.host.deploy_dir) else self.sender
        build = side.host.build()
        base = os.path.basename(path)
        return {"path": path, "host": side.host.key,
                "sha256": (build.get("tools") or {}).get(base, "n/a (not built here)")}

    def provenance(self) -> dict:
        hosts = {}
        for side in (self.sender, self.receiver):
            if side.host.hello is None:
                continue
            f, b = side.host.hello["facts"], side.host.hello.get("build") or {}
            hosts[side.role] = {
                "address": side.host.address, "hostname": f["hostname"], "kernel": f["kernel"],
                "cmdline": f["cmdline"], "cpu_model": f["cpu_model"], "ncpus": f["ncpus"],
                "cpus": f["cpus"], "isolated_cpus": f["isolated"], "smt": f["smt"],
                "nic": {k: v for k, v in f["nic"].items() if k != "addresses"},
                "kernel_config": f["kernel_config"],
                "build": {"source_hash": side.host.hash, "cc": b.get("cc"),
                          "clang": b.get("clang")}}
        # the inventory's own provenance (g5k: site, cluster, nodes, job; vm:
        # accel, QEMU lines) at the top level, and kept whole under "inventory"
        inv = self.inv.get("provenance", {})
        return {"name": self.name, **inv, "hosts": hosts, "inventory": inv}


def clean_hosts(cfg: dict, log) -> list[str]:
    """`rxbench clean` for the ssh platform: every host of the inventory,
    records of dead runs of this machine released."""
    inv = inventory_for(cfg)
    done = []
    tb = SshTestbed(cfg, log, inventory=inv)
    for side in (tb.sender, tb.receiver):
        try:
            side.host.connect()
            done += [f"{side.host.key}: {x}" for x in side.host.swept]
        except RxbenchError as e:
            done.append(f"{side.host.key}: not cleaned: {e}")
    return done
