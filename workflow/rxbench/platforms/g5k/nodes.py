"""The reserved nodes: the test port of each from the reference API's node
description, the ssh platform's inventory built on them, and the check
over SSH that the deployed nodes are what the reference API describes.

The reference API lists each node's `network_adapters` (device, name,
driver, rate, mounted, mountable, switch, kavlan, management,
network_address). The port that carries the node's address and SSH is
`mounted: true`; the BMC is `management: true`; a cabled second port is
`mounted: false, mountable: true` with a switch. Test traffic goes only on
a cabled second port."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from ...util import CommandError, run
from .api import Api, G5kError
from .settings import KIND, PREFIX, RECEIVER_IP, SENDER_IP

# kernel drivers whose DPDK PMD runs beside the kernel driver (no
# vfio-pci binding; the port stays a kernel interface)
BIFURCATED = ("mlx5_core", "mlx4_core")
GBIT = 1e9


class Refused(G5kError):
    """The reserved nodes cannot give a safe test link."""


def short(node: str) -> str:
    return node.split(".")[0]


def cluster_of(node: str) -> str:
    return short(node).rsplit("-", 1)[0]


def _ifname(a: dict) -> str:
    return a.get("name") or a.get("device") or "?"


def _gbit(rate) -> str:
    return f"{(rate or 0) / GBIT:g} Gbit/s" if rate else "no rate given"


def _ports(adapters: list[dict]) -> str:
    return ", ".join(f"{_ifname(a)} ({a.get('driver') or 'no driver'}, {_gbit(a.get('rate'))})"
                     for a in adapters)


def needed_rate(p: dict) -> float | None:
    """The test port's rate in Gbit/s the configuration asks for: the
    lower bound in platforms.g5k.properties.eth_rate. OAR's eth_rate is the
    node's fastest port, which may be the SSH port, so the chosen test
    port's own rate is checked against it."""
    raw = (p.get("properties") or {}).get("eth_rate")
    if raw is None:
        return None
    m = re.fullmatch(r"\s*(>=|>|=|==)?\s*([0-9.]+)\s*", str(raw))
    return float(m.group(2)) if m else None


def choose_port(doc: dict, p: dict) -> dict:
    """The node's test port: a cabled second port, never the one that
    carries the node's address and SSH, never the BMC; with the driver the
    reference API gives (platforms.g5k.nic_driver: only that one), the
    kavlan flag when KaVLAN is asked, and at least the rate the properties
    ask. Returns {"ifname", "device", "driver", "rate", "model", "switch",
    "kavlan", "network_address", "bifurcated", "ssh_ifname", "ssh_ip"}."""
    node = doc.get("uid", "?")
    adapters = doc.get("network_adapters") or []
    eth = [a for a in adapters if not a.get("management") and
           a.get("interface", "Ethernet") == "Ethernet"]
    ssh = [a for a in eth if a.get("mounted")]
    if not ssh:
        raise Refused(f"g5k: node {node}: the reference API names no mounted port "
                      "(the one carrying its address and SSH); refusing to guess")
    ssh_names = {a.get(k) for a in ssh for k in ("device", "name") if a.get(k)}
    info = {"ssh_ifname": _ifname(ssh[0]), "ssh_ip": ssh[0].get("ip")}
    want = p.get("test_interface")
    if want and want in ssh_names:
        raise Refused(f"g5k: node {node}: test_interface {want} carries the node's address "
                      f"and SSH (mounted: true in the reference API); refusing to flood it")
    if want and any(a.get("management") and want in (a.get("device"), a.get("name"))
                    for a in adapters):
        raise Refused(f"g5k: node {node}: test_interface {want} is the management BMC")
    cabled = [a for a in eth if not a.get("mounted") and a.get("mountable")
              and a.get("switch") and a.get("enabled", True)
              and (a.get("device") or a.get("name")) not in ssh_names]
    if not cabled:
        raise Refused(
            f"g5k: node {node} ({cluster_of(node)}) has no cabled second port: its only "
            f"cabled port {_ports(ssh)} carries the node's address and SSH, and rxbench "
            f"never sends test traffic there; choose a cluster with a second cabled port "
            f"(config/g5k.yaml lists some)")
    cands = cabled
    if want:
        cands = [a for a in cands if want in (a.get("device"), a.get("name"))]
        if not cands:
            raise Refused(f"g5k: node {node}: test_interface {want} is not a cabled second "
                          f"port in the reference API (those are: {_ports(cabled)})")
    if p.get("nic_driver"):
        match = [a for a in cands if a.get("driver") == p["nic_driver"]]
        if not match:
            raise Refused(f"g5k: node {node}: its cabled test port(s) {_ports(cands)} do not "
                          f"have driver {p['nic_driver']} (platforms.g5k.nic_driver; null "
                          f"takes the driver the reference API gives)")
        cands = match
    if p.get("kavlan"):
        movable = [a for a in cands if a.get("kavlan")]
        if not movable:
            raise Refused(f"g5k: node {node}: test port(s) {_ports(cands)} have kavlan: false "
                          f"in the reference API, so KaVLAN cannot move them; set "
                          f"platforms.g5k.kavlan: false or choose another cluster")
        cands = movable
    a = sorted(cands, key=lambda a: (-(a.get("rate") or 0), a.get("device") or ""))[0]
    need = needed_rate(p)
    if need is not None and (a.get("rate") or 0) < need * GBIT:
        fastest = max(eth, key=lambda x: x.get("rate") or 0)
        raise Refused(
            f"g5k: node {node}: test port {_ifname(a)} runs at {_gbit(a.get('rate'))}, below "
            f"the eth_rate >= {need:g} asked in platforms.g5k.properties (OAR's eth_rate is "
            f"the node's fastest port: here {_ifname(fastest)}, {_gbit(fastest.get('rate'))})")
    return {**info, "ifname": _ifname(a), "device": a.get("device"),
            "driver": a.get("driver"), "model": a.get("model"), "rate": a.get("rate"),
            "switch": a.get("switch"), "kavlan": bool(a.get("kavlan")),
            "network_address": a.get("network_address"),
            "bifurcated": a.get("driver") in BIFURCATED}


def choose_links(api: Api, nodes: list[str], p: dict, log) -> tuple[list[dict], list[dict]]:
    docs, ports = [], []
    for n in nodes:
        doc = api.node(cluster_of(n), short(n))
        docs.append(doc)
        ports.append(choose_port(doc, p))
    for n, port in zip(nodes, ports):
        log(f"g5k: {short(n)}: test port {port['ifname']} ({port['driver']}"
            f"{', bifurcated: DPDK runs beside the kernel driver' if port['bifurcated'] else ''}"
            f", {_gbit(port['rate'])}, switch {port['switch']}); SSH on {port['ssh_ifname']}")
    return docs, ports


def inventory(p: dict, api: Api, job, docs: list[dict], ports: list[dict],
              known_hosts: str) -> dict:
    """The ssh platform's inventory of the two nodes (sender first)."""
    nodes = list(job.assigned_nodes)[:2]
    jump = (f"{p['gateway_user'] or api.user}@{p['gateway']}:22" if p.get("gateway") else None)
    sides = {}
    napi = p["napi_cpus"] if p["napi_cpus"] is not None else p["receiver_cpus"]
    for role, port, ip, cpus in (("sender", ports[0], SENDER_IP, p["sender_cpus"]),
                                 ("receiver", ports[1], RECEIVER_IP, p["receiver_cpus"])):
        side = {"address": port["ssh_ip"] or nodes[0 if role == "sender" else 1], "port": 22,
                "user": "root", "key": str(Path(p["ssh_key"]).expanduser()), "jump": jump,
                "sudo": False, "known_hosts": known_hosts, "test_interface": port["ifname"],
                "test_ip": ip, "prefix": PREFIX, "mtu": p["mtu"], "cpus": list(cpus)}
        if role == "receiver":
            side["napi_cpus"] = list(napi)
        sides[role] = side
    nics = {short(n): {k: port[k] for k in ("ifname", "device", "driver", "model", "rate",
                                              "switch", "kavlan", "bifurcated")}
            for n, port in zip(nodes, ports)}
    prov = {"platform": KIND, "site": api.site, "cluster": cluster_of(nodes[0]),
            "nodes": {"sender": nodes[0], "receiver": nodes[1]}, "job": int(job.uid),
            "job_name": job.attributes.get("name"), "api": api.url,
            "environment": p["environment"], "nics": nics,
            "ssh_ports": {short(n): port["ssh_ifname"] for n, port in zip(nodes, ports)},
            "reference": {short(d.get("uid", n)): {k: d.get(k) for k in
                                                    ("uid", "processor", "architecture")
                                                    if k in d}
                          for n, d in zip(nodes, docs)}}
    return {**sides, "provenance": prov}


def ssh_argv(side: dict, command: str) -> list[str]:
    argv = ["ssh", "-i", side["key"], "-p", str(side.get("port", 22)),
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=15",
            "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
            "-o", "StrictHostKeyChecking=accept-new",
            "-o", f"UserKnownHostsFile={side['known_hosts']}"]
    if side.get("jump"):
        argv += ["-J", side["jump"]]
    return argv + [f"{side['user']}@{side['address']}", command]


def check_environment(inv: dict, p: dict, log, drivers: dict | None = None) -> dict:
    """Before the first cell: each node answers SSH, runs the expected OS
    and a kernel >= kernel_min, has the chosen test interface and, where
    `drivers` names one per role, that interface's kernel driver is the one
    the reference API gives."""
    facts = {}
    for role in ("sender", "receiver"):
        side = inv[role]
        ifdir = f"/sys/class/net/{shlex.quote(side['test_interface'])}"
        cmd = (". /etc/os-release; echo \"$ID $VERSION_ID\"; uname -r; "
               f"cat {ifdir}/address && "
               f"basename \"$(readlink -f {ifdir}/device/driver 2>/dev/null)\"")
        try:
            out = run(ssh_argv(side, cmd), timeout=60, log=log).split("\n")
        except CommandError as e:
            raise G5kError(f"g5k: {role} {side['address']}: the deployed node does not "
                           f"answer as expected over SSH: {e}") from None
        os_id, kernel, mac, driver = (out + ["", "", "", ""])[:4]
        driver = driver.strip()
        facts[role] = {"os": os_id.strip(), "kernel": kernel.strip(), "mac": mac.strip(),
                       "driver": driver}
        if p.get("expect_os") and not os_id.startswith(p["expect_os"]):
            raise G5kError(f"g5k: {role}: deployed OS is {os_id!r}, expected {p['expect_os']}")
        if p.get("kernel_min") and _kver(kernel) < _kver(str(p["kernel_min"])):
            raise G5kError(f"g5k: {role}: deployed kernel {kernel.strip()} is older than "
                           f"kernel_min {p['kernel_min']} (environment {p['environment']})")
        want = (drivers or {}).get(role)
        if want and driver != want:
            raise G5kError(f"g5k: {role} {side['address']}: test interface "
                           f"{side['test_interface']} has driver {driver or '(none)'}, the "
                           f"reference API says {want}; refusing to measure a NIC it does "
                           f"not describe")
        log(f"g5k: {role}: {facts[role]}")
    return facts


def _kver(s: str) -> tuple:
    m = re.match(r"(\d+)\.(\d+)", s.strip())
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)
