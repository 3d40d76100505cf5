"""The g5k platform: two Grid'5000 nodes reserved with OAR (a `deploy`
job), deployed with kadeploy through the REST API, measured through the
ssh platform, released at the end of the campaign whatever ends it.

The reservation is a campaign lease (rxbench.lease): `lease_up` reserves
(or finds the job by its name), waits until it runs, picks the test link
from the reference API, deploys, checks the deployed kernel, and returns
the ssh platform's inventory (workflow/schemas/inventory.schema.yaml); `lease_down` deletes the
job from the lease record alone. Everything is recorded before it is
created: the job's name before it is submitted, its id as soon as known.

Only the base URL and the credentials differ between the real API and the
tests' server (tests/g5k_api.py)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import re
import shlex
import signal
import time
from pathlib import Path

from .. import ROOT
from .. import lease as _lease
from ..state import alive, pid_start
from ..util import CommandError, run
from .base import LeasedTestbed
from .g5k_api import Api, G5kError, HttpError

KIND = "g5k"
PENDING = ("waiting", "hold", "toLaunch", "toAckReservation", "launching", "resuming")
ENDED = ("terminated", "error", "finishing", "toError", "suspended")
SENDER_IP, RECEIVER_IP, PREFIX = "198.18.0.1", "198.18.0.2", 30
# pcfg keys the inventory and the job depend on (others do not make a new lease)
DEFAULTS = {
    "nodes": 2, "walltime": "auto", "reservation": None, "queue": None, "exotic": False,
    "job_name": None, "properties": {}, "extra_properties": None,
    "start_timeout_s": 3600, "poll_s": 10, "progress_s": 60,
    "environment": "debian12-min", "expect_os": None, "kernel_min": None,
    "deploy_retries": 2, "deploy_timeout_s": 1800, "check_environment": True,
    "ssh_key": "~/.ssh/id_rsa", "gateway": "access.grid5000.fr", "gateway_user": None,
    "test_interface": None, "nic_driver": None, "kavlan": False,
    "allow_shared_port": False, "shared_port_rate_mbps": 1000,
    "sender_cpus": [0], "receiver_cpus": [1], "napi_cpus": None, "mtu": 1500,
    "cell_overhead_s": 20, "setup_s": 1200, "api_outage_s": 300,
}


class Refused(G5kError):
    """The reserved nodes cannot give a safe test link."""


class JobEnded(G5kError):
    """The job ended before the campaign (walltime, an administrator)."""


class Aborted(G5kError):
    pass


def settings(cfg: dict) -> dict:
    p = {**DEFAULTS, **(cfg.get("platforms", {}).get(KIND) or {})}
    for k in ("site", "cluster"):
        if not p.get(k):
            raise G5kError(f"config key platforms.g5k.{k} is required for platform g5k "
                           f"(copy config/g5k.yaml)")
    return p


def job_name(p: dict, user: str) -> str:
    """rxbench-<checkout hash>-<user>: the same checkout finds its own job."""
    return p["job_name"] or f"rxbench-{hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]}-{user}"


def campaign_config(cfg: dict) -> dict:
    """A cell's runner gets only its own layer's configuration: the whole
    campaign's is its keys over config.yaml and the profile."""
    if "eth" in cfg and "tcp" in cfg:
        return cfg
    from ..config import resolve
    keys = ("profile", "warmup_s", "timeout_s", "duration_s", "eth", "tcp", "platforms")
    return resolve({"platform": KIND, **{k: cfg[k] for k in keys if k in cfg}})


def walltime_s(cfg: dict) -> int:
    """cells x (warm-up + duration + overhead) + set-up (reservation start,
    deployment, checks), for the campaign this configuration runs."""
    from ..cells import expand
    cfg = campaign_config(cfg)
    p = settings(cfg)
    total = p["setup_s"]
    for c in expand(cfg):
        dur = cfg["duration_s"] if c.layer == "eth" else cfg["tcp"]["duration_s"]
        total += cfg["warmup_s"] + dur + p["cell_overhead_s"]
    return int(math.ceil(total / 60.0) * 60)


def walltime(cfg: dict) -> str:
    p = settings(cfg)
    if p["walltime"] != "auto":
        return str(p["walltime"])
    s = walltime_s(cfg)
    return f"{s // 3600}:{s % 3600 // 60:02d}"


def oar_properties(p: dict) -> str:
    """OAR's -p: the cluster and the NIC properties (eth_count, eth_rate,
    eth_kavlan_count), e.g. "(cluster='chiclet') and (eth_count>=2)"."""
    terms = [f"cluster='{p['cluster']}'"]
    for key, value in sorted((p.get("properties") or {}).items()):
        value = str(value)
        op = "" if value[:1] in "<>=!" else ">="
        terms.append(f"{key}{op}{value}")
    if p.get("extra_properties"):
        terms.append(str(p["extra_properties"]))
    return " and ".join(f"({t})" for t in terms)


def job_spec(cfg: dict, name: str) -> dict:
    p = settings(cfg)
    nodes = f"nodes={p['nodes']},walltime={walltime(cfg)}"
    spec = {"name": name, "command": "sleep infinity",
            "types": ["deploy"] + (["exotic"] if p["exotic"] else [])}
    if p["kavlan"]:
        # the VLAN and the nodes are two resources: the node properties go
        # into the nodes' braces
        spec["resources"] = "{type='kavlan-local'}/vlan=1+{" + oar_properties(p) + "}/" + nodes
    else:
        spec["resources"], spec["properties"] = nodes, oar_properties(p)
    if p["reservation"]:
        spec["reservation"] = str(p["reservation"])
    if p["queue"]:
        spec["queue"] = p["queue"]
    return spec


class Watch:
    """Stops a long wait when the owner is signalled or every campaign
    process it serves is gone (lease.serve watches only after up())."""

    def __init__(self, record):
        self.record, self.sig = record, None

    def __enter__(self):
        self.old = {s: signal.signal(s, self._on) for s in
                    (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        return self

    def _on(self, signum, _frame):
        self.sig = signum

    def __exit__(self, *exc):
        for s, h in self.old.items():
            signal.signal(s, h)

    def check(self, what: str) -> None:
        if self.sig is not None:
            raise Aborted(f"{signal.Signals(self.sig).name} during {what}")
        path = getattr(self.record, "path", None)
        watch = (_lease._load(Path(path)) or {}).get("watch") if path else None
        if watch and not any(_lease._running(pid, start) for pid, start in watch):
            raise Aborted(f"the campaign ended during {what}")

    def sleep(self, seconds: float, what: str) -> None:
        end = time.monotonic() + seconds
        while True:
            self.check(what)
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.2, left))


def find_job(api: Api, name: str):
    """The user's live job of that name (the newest), or None."""
    jobs = api.jobs(state=",".join(("waiting", "launching", "running", "hold")),
                    user=api.user, name=name)
    mine = []
    for j in jobs:
        if j.attributes.get("name") not in (None, name):
            continue
        j = api.job(j.uid)          # listings are terse: the job itself
        if j.attributes.get("name") == name and j.attributes.get("user") in (None, api.user) \
                and j.attributes.get("state") not in ENDED:
            mine.append(j)
    return max(mine, key=lambda j: int(j.uid)) if mine else None


def reserve(cfg: dict, api: Api, record, log, watch: Watch):
    """Reuse the job of our name or submit one; return it once running."""
    p = settings(cfg)
    name = job_name(p, api.user)
    record.put("job_name", name)          # before submitting: down() finds it by name
    job = find_job(api, name)
    if job is not None:
        log(f"g5k: reusing job {job.uid} ({name}), state {job.state}")
    else:
        spec = job_spec(cfg, name)
        log(f"g5k: submitting job {name} at {api.site}: {json.dumps(spec)}")
        try:
            job = api.submit(spec)
        except G5kError as e:
            # a POST that timed out may have created the job: look it up
            job = find_job(api, name)
            if job is None:
                raise G5kError(f"g5k: could not submit job {name}: {e}") from None
            log(f"g5k: the submission reported an error ({e}) but job {job.uid} exists")
    record.put("job", int(job.uid))
    return wait_running(api, job, p, log, watch)


class Outage:
    """Polls survive an API outage of up to api_outage_s (each request
    already retried); a longer one ends the wait with its error."""

    def __init__(self, api: Api, p: dict, log):
        self.api, self.limit, self.log, self.since = api, float(p["api_outage_s"]), log, None

    def refresh(self, obj, what: str) -> None:
        try:
            self.api.refresh(obj, what)
            self.since = None
        except G5kError as e:
            now = time.monotonic()
            self.since = now if self.since is None else self.since
            if now - self.since > self.limit:
                raise G5kError(f"{e} (the API has not answered for {now - self.since:.0f} s)") \
                    from None
            self.log(f"g5k: {e}; polling on (outage {now - self.since:.0f} s of "
                     f"{self.limit:.0f} s)")


def wait_running(api: Api, job, p: dict, log, watch: Watch):
    timeout = float(p["start_timeout_s"])
    if p["reservation"]:
        start = _parse_date(p["reservation"])
        timeout += max(0.0, start - time.time())
    t0 = time.monotonic()
    last, last_line = None, 0.0
    outage = Outage(api, p, log)
    while True:
        state = job.attributes.get("state")
        if state == "running":
            log(f"g5k: job {job.uid} running on {', '.join(job.assigned_nodes)} "
                f"after {time.monotonic() - t0:.0f} s")
            return job
        if state in ENDED:
            raise JobEnded(f"g5k: job {job.uid} {state} before it ran"
                           f"{_why(job)}")
        now = time.monotonic()
        if state != last or now - last_line >= p["progress_s"]:
            sched = job.attributes.get("scheduled_at")
            when = (f", scheduled for {dt.datetime.fromtimestamp(sched, dt.timezone.utc):%H:%M} "
                    f"UTC" if sched else "")
            log(f"g5k: job {job.uid} {state}{when} ({now - t0:.0f} s of {timeout:.0f} s)")
            last, last_line = state, now
        if now - t0 > timeout:
            raise G5kError(f"g5k: job {job.uid} did not start within {timeout:.0f} s "
                           f"(state {state}); released (raise platforms.g5k.start_timeout_s "
                           f"or choose a less busy cluster)")
        watch.sleep(p["poll_s"], f"the wait for job {job.uid}")
        outage.refresh(job, f"job {job.uid}")


def _why(job) -> str:
    events = job.attributes.get("events") or []
    if events:
        e = events[-1]
        return f": {e.get('type', '')} {e.get('description', '')}".rstrip()
    return ""


def _parse_date(s: str) -> float:
    d = dt.datetime.fromisoformat(str(s))
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.timezone.utc)
    return d.timestamp()


# ---- the test link, from the reference API ----

def short(node: str) -> str:
    return node.split(".")[0]


def cluster_of(node: str) -> str:
    return short(node).rsplit("-", 1)[0]


def choose_port(doc: dict, p: dict) -> dict:
    """The node's test port: a cabled second port (mounted: false,
    mountable: true, with a switch), never the one that carries the node's
    address and SSH (mounted: true), never the BMC (management: true).
    Returns {"ifname", "device", "driver", "rate", "model", "switch",
    "shared": bool, "ssh_ifname", "ssh_ip", "kavlan"}."""
    node = doc.get("uid", "?")
    adapters = doc.get("network_adapters") or []
    eth = [a for a in adapters if not a.get("management") and
           a.get("interface", "Ethernet") == "Ethernet"]
    ssh = [a for a in eth if a.get("mounted")]
    if not ssh:
        raise Refused(f"g5k: node {node}: the reference API names no mounted port "
                      "(the one carrying its address and SSH); refusing to guess")
    ssh_a = ssh[0]
    ssh_names = {a.get(k) for a in ssh for k in ("device", "name") if a.get(k)}
    info = {"ssh_ifname": ssh_a.get("name") or ssh_a.get("device"), "ssh_ip": ssh_a.get("ip")}
    want = p.get("test_interface")
    if want and want in ssh_names:
        raise Refused(f"g5k: node {node}: test_interface {want} carries the node's address "
                      f"and SSH (mounted: true in the reference API); refusing to flood it")
    cands = [a for a in eth if not a.get("mounted") and a.get("mountable")
             and a.get("switch") and a.get("enabled", True)
             and (a.get("device") or a.get("name")) not in ssh_names]
    if want:
        bmc = [a for a in adapters if a.get("management") and want in (a.get("device"), a.get("name"))]
        if bmc:
            raise Refused(f"g5k: node {node}: test_interface {want} is the management BMC")
        cands = [a for a in cands if want in (a.get("device"), a.get("name"))]
        if not cands:
            raise Refused(f"g5k: node {node}: test_interface {want} is not a cabled, "
                          f"mountable port with a switch in the reference API")
    if p.get("nic_driver"):
        cands = [a for a in cands if a.get("driver") == p["nic_driver"]]
    if cands:
        a = sorted(cands, key=lambda a: (-(a.get("rate") or 0), a.get("device") or ""))[0]
        return {**info, **_port(a), "shared": False}
    if not p.get("allow_shared_port"):
        raise Refused(
            f"g5k: node {node} ({cluster_of(node)}) has no cabled second port "
            f"(mounted: false, mountable: true, with a switch"
            + (f", driver {p['nic_driver']}" if p.get("nic_driver") else "")
            + f"); its only port {info['ssh_ifname']} carries SSH. Choose another cluster, "
              f"or set platforms.g5k.allow_shared_port: true to run at most "
              f"shared_port_rate_mbps on it")
    if p.get("nic_driver") and ssh_a.get("driver") != p["nic_driver"]:
        raise Refused(f"g5k: node {node}: no port with driver {p['nic_driver']}")
    return {**info, **_port(ssh_a), "shared": True}


def _port(a: dict) -> dict:
    return {"ifname": a.get("name") or a.get("device"), "device": a.get("device"),
            "driver": a.get("driver"), "model": a.get("model"), "rate": a.get("rate"),
            "switch": a.get("switch"), "kavlan": bool(a.get("kavlan")),
            "network_address": a.get("network_address")}


def choose_links(api: Api, nodes: list[str], p: dict, log) -> tuple[list[dict], list[dict]]:
    docs, ports = [], []
    for n in nodes:
        doc = api.node(cluster_of(n), short(n))
        docs.append(doc)
        ports.append(choose_port(doc, p))
    if any(x["shared"] for x in ports) and not rate_bound_supported():
        raise Refused(
            f"g5k: {', '.join(short(n) for n in nodes)} have one cabled port (it carries SSH); "
            f"allow_shared_port asks for a rate bound of {p['shared_port_rate_mbps']} Mbit/s, "
            f"but this checkout's generators (rxb-gen, testpmd txonly) cannot bound their "
            f"rate: refused rather than flood the nodes' SSH port; choose a cluster with a "
            f"second port")
    if len({bool(x["shared"]) for x in ports}) > 1:
        raise Refused("g5k: one node has a second port and the other not: "
                      f"{', '.join(short(n) for n in nodes)}; reserve nodes of one cluster")
    for n, port in zip(nodes, ports):
        log(f"g5k: {short(n)}: test port {port['ifname']} ({port['driver']}, "
            f"{(port['rate'] or 0) / 1e9:g} Gbit/s, switch {port['switch']})"
            + (" SHARED with SSH" if port["shared"] else f"; SSH on {port['ssh_ifname']}"))
    return docs, ports


def rate_bound_supported() -> bool:
    """Whether the generators honour a rate bound (their owners declare it
    as rxbench.stacks.base.RATE_BOUND = True once they read the
    inventory's provenance.rate_limit_mbps); until then a shared port is
    refused."""
    try:
        from ..stacks import base
    except ImportError:
        return False
    return bool(getattr(base, "RATE_BOUND", False))


# ---- deployment (kadeploy through the REST API) ----

def public_key(p: dict) -> str:
    key = Path(p["ssh_key"]).expanduser()
    pub = key.with_name(key.name + ".pub")
    if not key.exists() or not pub.exists():
        raise G5kError(f"config key platforms.g5k.ssh_key: {key} and {pub} must both exist "
                       f"(ssh-keygen -t ed25519 -f {key})")
    return pub.read_text().strip()


def deploy(api: Api, nodes: list[str], p: dict, record, log, watch: Watch) -> list[dict]:
    """Deploy the environment; nodes kadeploy reports KO are deployed again,
    up to deploy_retries more times each; every attempt's document is kept
    (record and the lease log). Returns the attempts."""
    key = public_key(p)
    todo, tries, attempts = list(nodes), {n: 0 for n in nodes}, []
    while todo:
        spec = {"nodes": todo, "environment": p["environment"], "key": key}
        log(f"g5k: deploying {p['environment']} on {', '.join(short(n) for n in todo)} "
            f"(attempt {1 + max(tries[n] for n in todo)})")
        d = api.deploy(spec)
        record.add("deployments", str(d.uid))
        d = _wait_deployment(api, d, p, log, watch)
        result = d.attributes.get("result") or {}
        doc = {"uid": str(d.uid), "nodes": todo, "status": d.status, "result": result}
        attempts.append(doc)
        log(f"g5k: deployment {d.uid}: {json.dumps(doc)}")
        failed = [n for n in todo if (result.get(n) or {}).get("state") != "OK"]
        for n in failed:
            tries[n] += 1
        over = [n for n in failed if tries[n] > p["deploy_retries"]]
        if over:
            raise G5kError(
                f"g5k: kadeploy failed on {', '.join(short(n) for n in over)} "
                f"{p['deploy_retries'] + 1} times (last: deployment {d.uid}, "
                f"{_node_reason(result, over[0])}); campaign stopped, job released")
        todo = failed
    record.put("deployed", {"environment": p["environment"], "nodes": nodes,
                            "attempts": len(attempts)})
    return attempts


def _node_reason(result: dict, node: str) -> str:
    r = result.get(node) or {}
    return ", ".join(f"{k} {r[k]}" for k in ("state", "macro", "micro", "last_cmd_stderr")
                     if r.get(k)) or "no per-node result"


def _wait_deployment(api: Api, d, p: dict, log, watch: Watch):
    t0 = time.monotonic()
    last = 0.0
    outage = Outage(api, p, log)
    while d.attributes.get("status") == "processing":
        if time.monotonic() - t0 > p["deploy_timeout_s"]:
            raise G5kError(f"g5k: deployment {d.uid} still processing after "
                           f"{p['deploy_timeout_s']} s")
        if time.monotonic() - last >= p["progress_s"]:
            log(f"g5k: deployment {d.uid} processing ({time.monotonic() - t0:.0f} s)")
            last = time.monotonic()
        watch.sleep(p["poll_s"], f"deployment {d.uid}")
        outage.refresh(d, f"deployment {d.uid}")
    return d


# ---- the inventory ----

def inventory(p: dict, api: Api, job, docs: list[dict], ports: list[dict],
              known_hosts: str) -> dict:
    nodes = list(job.assigned_nodes)[:2]
    jump = (f"{p['gateway_user'] or api.user}@{p['gateway']}:22" if p.get("gateway") else None)
    sides = {}
    napi = p["napi_cpus"] if p["napi_cpus"] is not None else p["receiver_cpus"]
    for role, node, port, ip, cpus in (("sender", nodes[0], ports[0], SENDER_IP, p["sender_cpus"]),
                                       ("receiver", nodes[1], ports[1], RECEIVER_IP,
                                        p["receiver_cpus"])):
        side = {"address": port["ssh_ip"] or node, "port": 22, "user": "root",
                "key": str(Path(p["ssh_key"]).expanduser()), "jump": jump, "sudo": False,
                "known_hosts": known_hosts, "test_interface": port["ifname"],
                "test_ip": ip, "prefix": PREFIX, "mtu": p["mtu"], "cpus": list(cpus)}
        if role == "receiver":
            side["napi_cpus"] = list(napi)
        sides[role] = side
    nics = {short(n): {k: port[k] for k in ("ifname", "device", "driver", "model", "rate",
                                              "switch", "kavlan")}
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
    if ports[0]["shared"]:
        prov["warning"] = (
            f"test traffic shares the port that carries SSH ({ports[0]['ifname']}): "
            f"allow_shared_port is set, rate bounded to {p['shared_port_rate_mbps']} Mbit/s; "
            f"results are not comparable with a dedicated test link")
        prov["rate_limit_mbps"] = p["shared_port_rate_mbps"]
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


def check_environment(inv: dict, p: dict, log) -> dict:
    """Before the first cell: each node answers SSH, runs the expected OS
    and a kernel >= kernel_min, and has the chosen test interface."""
    facts = {}
    for role in ("sender", "receiver"):
        side = inv[role]
        cmd = (". /etc/os-release; echo \"$ID $VERSION_ID\"; uname -r; "
               f"cat /sys/class/net/{shlex.quote(side['test_interface'])}/address")
        try:
            out = run(ssh_argv(side, cmd), timeout=60, log=log).split("\n")
        except CommandError as e:
            raise G5kError(f"g5k: {role} {side['address']}: the deployed node does not "
                           f"answer as expected over SSH: {e}") from None
        os_id, kernel, mac = (out + ["", "", ""])[:3]
        facts[role] = {"os": os_id.strip(), "kernel": kernel.strip(), "mac": mac.strip()}
        if p.get("expect_os") and not os_id.startswith(p["expect_os"]):
            raise G5kError(f"g5k: {role}: deployed OS is {os_id!r}, expected {p['expect_os']}")
        if p.get("kernel_min") and _kver(kernel) < _kver(str(p["kernel_min"])):
            raise G5kError(f"g5k: {role}: deployed kernel {kernel.strip()} is older than "
                           f"kernel_min {p['kernel_min']} (environment {p['environment']})")
        log(f"g5k: {role}: {facts[role]}")
    return facts


def _kver(s: str) -> tuple:
    m = re.match(r"(\d+)\.(\d+)", s.strip())
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


# ---- the lease (rxbench.lease) ----

def lease_up(cfg: dict, record, log) -> dict:
    p = settings(cfg)
    api_cfg = _api_cfg(cfg)
    record.put("api_cfg", api_cfg)       # lease_down reaches the API from the record
    api = Api(api_cfg)
    with Watch(record) as watch:
        job = reserve(cfg, api, record, log, watch)
        nodes = list(job.assigned_nodes)
        if len(nodes) < 2:
            raise G5kError(f"g5k: job {job.uid} has {len(nodes)} node(s), the platform needs 2")
        record.put("nodes", nodes)
        docs, ports = choose_links(api, nodes[:2], p, log)
        vlan = None
        if p["kavlan"]:
            vlan = _job_vlan(job)
            names = [port["network_address"] or f"{short(n)}-{port['device']}.{api.site}"
                     f".grid5000.fr" for n, port in zip(nodes, ports)]
            log(f"g5k: test ports into KaVLAN {vlan}: {', '.join(names)}")
            api.vlan_add(vlan, names)
        deploy(api, nodes[:2], p, record, log, watch)
        known = str(_lease.STATE_DIR / f"g5k-known_hosts-{job.uid}")
        record.add("files", known)
        inv = inventory(p, api, job, docs, ports, known)
        inv["provenance"]["kavlan"] = vlan
        watch.check("the environment check")
        if p["check_environment"]:
            inv["provenance"]["deployed"] = check_environment(inv, p, log)
    return inv


def _job_vlan(job) -> str:
    by_type = job.attributes.get("resources_by_type") or {}
    vlans = by_type.get("vlans") or []
    if not vlans:
        raise G5kError(f"g5k: job {job.uid} has no VLAN although kavlan is set")
    return str(vlans[0])


def lease_down(record, log) -> None:
    """Delete the job (by its id, or by its name when the owner died before
    it knew the id); works from the record alone."""
    cfg = record.get("api_cfg")
    if not cfg:
        return
    api = Api(cfg)
    uids = [record.get("job")] if record.get("job") else []
    if not uids and record.get("job_name"):
        j = find_job(api, record.get("job_name"))
        uids = [j.uid] if j is not None else []
    for f in record.get("files", []):
        Path(f).unlink(missing_ok=True)
    for uid in uids:
        try:
            release_job(api, uid, log)
        except G5kError:
            # the lease record goes with its owner: keep what `rxbench g5k
            # release` (and `rxbench clean`) need to try again
            from ..util import atomic_write_json
            atomic_write_json(unreleased_path(uid), {"api_cfg": cfg, "job": uid})
            log(f"g5k: job {uid} NOT released; recorded in {unreleased_path(uid)} "
                f"for `rxbench g5k release`")
            raise


def unreleased_path(uid) -> Path:
    return _lease.STATE_DIR / f"g5k-unreleased-{uid}.json"


def release_unreleased(log) -> list[str]:
    """Jobs whose deletion failed earlier (API down): try again."""
    done = []
    for f in sorted(_lease.STATE_DIR.glob("g5k-unreleased-*.json")):
        data = _lease._load(f)
        if data:
            release_job(Api(data["api_cfg"]), data["job"], log)
            done.append(f"job {data['job']} at {data['api_cfg']['site']}")
        f.unlink(missing_ok=True)
    return done


def release_job(api: Api, uid, log, tries: int = 5) -> None:
    for i in range(tries):
        try:
            api.delete_job(uid)
            log(f"g5k: job {uid} deleted (released)")
            return
        except HttpError as e:
            if e.code in (404, 410):
                log(f"g5k: job {uid} already gone")
                return
            err = e
        except G5kError as e:
            err = e
        try:
            if api.job(uid).attributes.get("state") in ENDED:
                log(f"g5k: job {uid} already ended")
                return
        except G5kError:
            pass
        log(f"g5k: deleting job {uid} failed ({err}); try {i + 1} of {tries}")
        time.sleep(min(0.5 * 2 ** i, 10))
    raise G5kError(f"g5k: could not delete job {uid} after {tries} tries: {err}; "
                   f"delete it by hand: rxbench g5k release, or oardel {uid} on the frontend")


LEASES = {KIND: (lease_up, lease_down)}


# ---- the testbed a cell's runner gets ----

def ready_s(p: dict) -> float:
    """How long a cell waits for the lease: the job's start (after its
    reservation date), every deployment attempt, the checks."""
    wait = float(p["start_timeout_s"])
    if p["reservation"]:
        wait += max(0.0, _parse_date(p["reservation"]) - time.time())
    return wait + float(p["deploy_timeout_s"]) * (p["deploy_retries"] + 1) + 600


def _campaign() -> list:
    pp = os.getppid()
    return [pp, pid_start(pp)]


def stop_path() -> Path:
    return _lease.STATE_DIR / f"g5k-stopped-{_lease._checkout_id()}.json"


class G5kTestbed(LeasedTestbed):
    """The ssh platform's testbed on the lease's nodes, which checks that
    the job still runs around every cell: a job that ended early makes the
    cell failed with the reason, and the campaign's later cells stop the
    campaign (exit non-zero: snakemake stops scheduling) without reserving
    again."""

    name = KIND

    def __init__(self, cfg: dict, log, **kw):
        self.cfg, self.log = cfg, log
        stopped = _lease._load(stop_path())
        if stopped:
            who = stopped.get("campaign") or [None, None]
            if who[0] and alive(who[0], who[1]):
                raise SystemExit(f"rxbench: g5k campaign stopped: {stopped['reason']}")
            stop_path().unlink(missing_ok=True)
        try:
            from .ssh import SshTestbed      # the ssh platform runs the cells
        except ImportError:
            raise G5kError("the g5k platform runs its cells through the ssh platform "
                           "(rxbench/platforms/ssh.py), which this checkout does not have; "
                           "nothing was reserved") from None
        p = settings(cfg)
        log(f"g5k: the nodes' lease (reservation, deployment; progress in "
            f"{_lease.state_path(KIND).with_suffix('.log')})")
        self.inventory = _lease.ensure(KIND, cfg, log, ready_s=ready_s(p))
        prov = self.inventory["provenance"]
        self.api = Api(_api_cfg(cfg))
        self.job = prov["job"]
        self._check("before the cell")
        self.inner = SshTestbed(cfg, log, self.inventory, **kw)

    def _check(self, when: str) -> None:
        try:
            state = self.api.job(self.job).attributes
        except G5kError as e:
            self.log(f"g5k: could not check job {self.job} {when}: {e}")
            return
        if state.get("state") != "running":
            reason = (f"Grid'5000 job {self.job} is {state.get('state')} {when}"
                      f"{_why_attrs(state)} (walltime or an administrator ended it)")
            from ..util import atomic_write_json
            atomic_write_json(stop_path(), {"reason": reason, "campaign": _campaign()})
            _lease.down(KIND, self.log)
            raise JobEnded(reason)

    def __exit__(self, *exc):
        try:
            self.inner.__exit__(*exc)
        finally:
            self._check("after the cell")
        return False


def _why_attrs(attrs: dict) -> str:
    events = attrs.get("events") or []
    return f": {events[-1].get('description', '')}" if events else ""


def _api_cfg(cfg: dict) -> dict:
    p = settings(cfg)
    return {k: p[k] for k in ("site", "api_url", "credentials", "api_timeout_s",
                              "api_connect_timeout_s", "api_retries") if k in p}


def release(log) -> list[str]:
    """`rxbench g5k release`: this checkout's lease (its owner, or its record
    after a SIGKILL), then any live job of ours by name."""
    done = []
    try:
        if _lease.down(KIND, log):
            done.append("the g5k lease of this checkout")
    finally:
        stop_path().unlink(missing_ok=True)
    return done + release_unreleased(log)


def release_by_name(cfg: dict, log) -> list[str]:
    p = settings(cfg)
    api = Api(_api_cfg(cfg))
    name = job_name(p, api.user)
    done = []
    while True:
        j = find_job(api, name)
        if j is None:
            return done
        release_job(api, j.uid, log)
        done.append(f"job {j.uid} ({name}) at {api.site}")

