"""A local Grid'5000 REST API for the g5k platform's tests: the part the
platform uses, as a state machine, over real HTTP on 127.0.0.1 (a random
port), so the platform runs its real code path (python-grid5000, requests,
timeouts); only the base URL and the credentials differ.

Its documents have the real API's structure (the g5k-api's OAR::Job
JSON, KaVLAN's per-node answer, the reference API's network_adapters),
written for these tests. Jobs: waiting -> launching -> running by the
clock (or never); a deleted job is fragged and ends in state error (an
empty 202 answer; events FRAG_JOB_REQUEST ... SWITCH_INTO_ERROR_STATE);
ended on demand (walltime, an administrator). States are lower-case as the
API gives them; a state filter is capitalised as the API does. Deployments:
processing -> terminated (per-node OK/KO; nodes told to fail do so a given
number of times), error when every node failed. KaVLAN answers per name:
success, unchanged, or failure for a port it cannot move. Faults: a 500 or
a hang longer than the client's timeout on matching requests, a given
number of times.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import threading
import time
import datetime as dt
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

# OAR's own state names; the API gives them lower-cased (OAR::Job#state)
# and capitalises the names of a state filter (OAR::Job.list)
OAR_STATE = {"waiting": "Waiting", "hold": "Hold", "tolaunch": "toLaunch",
             "toackreservation": "toAckReservation", "launching": "Launching",
             "running": "Running", "suspended": "Suspended", "resuming": "Resuming",
             "finishing": "Finishing", "terminated": "Terminated", "error": "Error",
             "toerror": "toError"}
LIVE = ("waiting", "hold", "tolaunch", "toackreservation", "launching", "running")
PARIS = ZoneInfo("Europe/Paris")

# Test fixtures with the reference API's node structure
# (network_adapters[] of data/grid5000/sites/*/clusters/*/nodes/*.json in
# the reference repository): per cluster, its ports as
# (device, kernel name, driver, model, rate, mounted, kavlan)
CLUSTERS = {
    # two XXV710 ports, both cabled, both movable by KaVLAN
    "chiclet": [("eth0", "eth0", "i40e", "Ethernet Controller XXV710 for 25GbE SFP28",
                 25_000_000_000, True, True),
                ("eth1", "eth1", "i40e", "Ethernet Controller XXV710 for 25GbE SFP28",
                 25_000_000_000, False, True)],
    # ConnectX-5, mlx5 (bifurcated); the second port is not in KaVLAN
    "chuc": [("eth0", "ens15f0np0", "mlx5_core", "MT27800 Family [ConnectX-5]",
              25_000_000_000, True, False),
             ("eth1", "ens15f1np1", "mlx5_core", "MT27800 Family [ConnectX-5]",
              25_000_000_000, False, False)],
    # one cabled port (it carries SSH)
    "hydra": [("eth0", "enP2p1s0f0np0", "mlx5_core", "MT2910 Family [ConnectX-7]",
               10_000_000_000, True, False)],
    # tests/sshhosts.py's namespace hosts standing in for nodes: veth
    # ports, which have no device driver to compare with
    "netns": [("eth0", "eth0", None, "veth", 10_000_000_000, True, True),
              ("eth1", "eth1", None, "veth", 10_000_000_000, False, True)],
    # the fastest port carries SSH; the second one is slower
    "slowtwo": [("eth0", "eno1", "ice", "Ethernet Controller E810-C for SFP",
                 25_000_000_000, True, True),
                ("eth1", "eno2", "ixgbe", "82599ES 10-Gigabit SFI/SFP+",
                 10_000_000_000, False, True)],
}


def adapters(cluster: str, i: int, mgmt_ip: str, site: str = "lille",
             test_ifname: str | None = None) -> list[dict]:
    """A node's network_adapters as the reference API gives them."""
    out = []
    for n, (dev, name, driver, model, rate, mounted, kavlan) in enumerate(CLUSTERS[cluster]):
        if not mounted and test_ifname:
            name = test_ifname
        out.append({
            "device": dev, "driver": driver, "enabled": True,
            "firmware_version": "1.0", "interface": "Ethernet",
            "ip": mgmt_ip if mounted else f"172.16.{40 + n}.{i}", "kavlan": kavlan,
            "mac": f"02:00:00:00:{i:02x}:{n:02x}", "management": False, "model": model,
            "mountable": True, "mounted": mounted, "name": name,
            "network_address": (f"{cluster}-{i}.{site}.grid5000.fr" if mounted
                                else f"{cluster}-{i}-{dev}.{site}.grid5000.fr"),
            "rate": rate, "switch": f"sw-{n + 1}", "switch_port": f"1/1/{i}",
            "vendor": {"i40e": "Intel", "ice": "Intel", "ixgbe": "Intel",
                       "mlx5_core": "Mellanox Technologies"}.get(driver)})
    out.append({"device": "bmc", "enabled": True, "interface": "Ethernet",
                "ip": f"172.17.40.{i}", "kavlan": False, "mac": f"02:00:00:01:{i:02x}:00",
                "management": True, "mountable": False, "mounted": False,
                "network_address": f"{cluster}-{i}-bmc.{site}.grid5000.fr"})
    return out


class Server:
    """The API; `url` is the base URL to give the platform (api_url)."""

    def __init__(self, site: str = "lille", cluster: str = "chiclet",
                 mgmt_ips: tuple[str, str] = ("198.19.7.2", "198.19.7.6"),
                 test_ifname: str | None = None, layout: str | None = None):
        """`layout`: the CLUSTERS entry the nodes' ports follow (default:
        the cluster's own)."""
        self.site, self.cluster = site, cluster
        self.lock = threading.Lock()
        self.jobs: dict[int, dict] = {}
        self.deployments: dict[str, dict] = {}
        self.requests: list[tuple[str, str, object]] = []
        self.faults: list[dict] = []
        self.next_job, self.next_dep, self.next_event = 4242, 1, 900_000
        self.start_after_s: float | None = 0.2      # None: never starts
        self.launch_s = 0.2
        self.deploy_s = 0.3
        self.fail_nodes: dict[str, int] = {}         # node -> KO this many times
        self.vlans: dict[str, list] = {}
        self.kavlan_fail: set[str] = set()           # names KaVLAN reports as failure
        self.nodes = {}
        for i, ip in enumerate(mgmt_ips, 1):
            uid = f"{cluster}-{i}"
            self.nodes[uid] = {"uid": uid, "type": "node", "architecture":
                               {"platform_type": "x86_64", "nb_procs": 1, "nb_cores": 16},
                               "processor": {"model": "Intel Xeon", "version": "Gold 6126"},
                               "network_adapters": adapters(layout or cluster, i, ip, site,
                                                            test_ifname)}
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _do(self, method):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null") if length else None
                u = urlparse(self.path)
                user = "anonymous"
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Basic "):
                    user = base64.b64decode(auth[6:]).decode().split(":", 1)[0]
                code, doc = srv.handle(method, u.path, parse_qs(u.query), body, user)
                if code is None:          # a hang: answer nothing, then close
                    return
                data = json.dumps(doc).encode() if doc != "" else b""
                self.send_response(code)
                self.send_header("Content-Type", "application/json; charset=utf-8" if data
                                 else "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._do("GET")

            def do_POST(self):
                self._do("POST")

            def do_DELETE(self):
                self._do("DELETE")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/stable"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    # what the tests set and look at
    def fault(self, method: str, path_re: str, kind: str = "500", count: int = 1,
              hang_s: float = 5.0) -> None:
        with self.lock:
            self.faults.append({"method": method, "re": re.compile(path_re), "kind": kind,
                                "count": count, "hang_s": hang_s})

    def _event(self, j: dict, kind: str, description: str) -> None:
        self.next_event += 1
        j["events"].append({"uid": self.next_event, "created_at": int(time.time()),
                            "type": kind, "description": description})

    def end_job(self, uid: int, state: str = "error",
                description: str = "walltime reached") -> None:
        with self.lock:
            j = self.jobs[uid]
            j["state"] = state
            self._event(j, "WALLTIME" if "walltime" in description else "SEND_KILL_JOB",
                        description)

    def live_jobs(self) -> list[dict]:
        with self.lock:
            for j in self.jobs.values():
                self._advance(j)
            return [copy.deepcopy(j) for j in self.jobs.values() if j["state"] in LIVE]

    def add_job(self, name: str, user: str, state: str = "running") -> int:
        """A job made outside the platform (e.g. an earlier run's)."""
        with self.lock:
            return self._new_job({"name": name, "resources": "nodes=2,walltime=1:00",
                                  "types": ["deploy"], "command": "sleep infinity"},
                                 user, state)

    # the state machine
    def _new_job(self, body: dict, user: str, state: str = "waiting") -> int:
        uid = self.next_job
        self.next_job += 1
        now = int(time.time())
        res = body.get("resources") or ""
        m = re.search(r"walltime=(\d+):(\d+)", res)
        walltime = int(m.group(1)) * 3600 + int(m.group(2)) * 60 if m else 3600
        start = None
        if body.get("reservation"):
            start = int(dt.datetime.strptime(body["reservation"], "%Y-%m-%d %H:%M:%S")
                        .replace(tzinfo=PARIS).timestamp())
        self.jobs[uid] = {"uid": uid, "user_uid": user, "user": user, "walltime": walltime,
                          "queue": body.get("queue", "default"), "state": state,
                          "project": "default", "name": body.get("name"),
                          "types": body.get("types", []),
                          "mode": "PASSIVE" if body.get("command") else "INTERACTIVE",
                          "command": body.get("command", ""), "submitted_at": now,
                          "scheduled_at": start, "properties": body.get("properties"),
                          "message": "", "directory": f"/home/{user}", "events": [],
                          "resources": res, "reservation": body.get("reservation"),
                          "created": time.monotonic(), "assigned_nodes": [],
                          "resources_by_type": {}}
        if state == "running":
            self._assign(self.jobs[uid])
        return uid

    def _assign(self, j: dict) -> None:
        nodes = [f"{n}.{self.site}.grid5000.fr" for n in self.nodes]
        j["started_at"] = int(time.time())
        j["assigned_nodes"] = nodes
        # one entry per core in the real API; two per node here
        j["resources_by_type"] = {"cores": [n for n in nodes for _ in range(2)]}
        if "kavlan" in (j["resources"] or ""):
            j["resources_by_type"]["vlans"] = ["4"]

    def _advance(self, j: dict) -> None:
        if j["state"] not in ("waiting", "tolaunch", "launching") or self.start_after_s is None:
            return
        age = time.monotonic() - j["created"]
        if age >= self.start_after_s + self.launch_s:
            j["state"] = "running"
            self._assign(j)
        elif age >= self.start_after_s:
            j["state"] = "launching"

    def _advance_dep(self, d: dict) -> None:
        if d["status"] != "processing" or time.monotonic() - d["created"] < self.deploy_s:
            return
        result = {}
        for n in d["nodes"]:
            s = n.split(".")[0]
            if self.fail_nodes.get(s, 0) > 0:
                self.fail_nodes[s] -= 1
                result[n] = {"state": "KO", "macro": "SetDeploymentEnv",
                             "micro": "reboot", "last_cmd_stderr": "node did not come back"}
            else:
                result[n] = {"state": "OK"}
        d["result"] = result
        d["status"] = "error" if all(r["state"] == "KO" for r in result.values()) \
            else "terminated"

    def _job_doc(self, j: dict, full: bool = True) -> dict:
        """A job as the API shows it (OAR::Job#as_json): a listing's items
        lack assigned_nodes and resources_by_type."""
        hidden = {"created", "resources", "reservation"}
        if not full:
            hidden |= {"assigned_nodes", "resources_by_type"}
        return {k: v for k, v in j.items() if k not in hidden and v is not None}

    def _delete(self, j: dict, user: str) -> None:
        """oardel through the API: the job is fragged and ends in state
        error (FRAG_JOB_REQUEST, then SWITCH_INTO_ERROR_STATE)."""
        if j["state"] not in LIVE:
            return
        self._event(j, "FRAG_JOB_REQUEST", f"User {user} requested to frag the job {j['uid']}")
        if j["state"] == "running":
            self._event(j, "SEND_KILL_JOB", f"[Leon] Send kill signal to oarexec for the "
                                            f"job {j['uid']}")
        self._event(j, "SWITCH_INTO_ERROR_STATE", f"[bipbip {j['uid']}] Ask to change the "
                                                  f"job state")
        j["state"] = "error"

    def _kavlan(self, vlan: str, names: list) -> dict:
        """KaVLAN's answer per name (the API's vlans/nodes add): ok ->
        success, already there -> unchanged, else failure."""
        ports = {a.get("network_address"): (f"{uid}.{self.site}.grid5000.fr", a)
                 for uid, n in self.nodes.items() for a in n["network_adapters"]
                 if not a.get("management")}
        owned = {n for j in self.jobs.values() if j["state"] == "running"
                 and vlan in j["resources_by_type"].get("vlans", [])
                 for n in j["assigned_nodes"]}
        out = {}
        for name in names:
            node, a = ports.get(name, (None, None))
            if a is None or not a.get("kavlan") or name in self.kavlan_fail \
                    or node not in owned:
                out[name] = {"status": "failure", "message": "Unknown node"}
            elif name in self.vlans.get(vlan, []):
                out[name] = {"status": "unchanged", "message": "Node already in vlan"}
            else:
                self.vlans.setdefault(vlan, []).append(name)
                out[name] = {"status": "success", "message": "Successfully added to vlan"}
        return out

    def handle(self, method: str, path: str, query: dict, body, user: str):
        with self.lock:
            self.requests.append((method, path, body))
            for f in self.faults:
                if f["count"] > 0 and f["method"] == method and f["re"].search(path):
                    f["count"] -= 1
                    if f["kind"] == "500":
                        return 500, {"message": "injected server error"}
                    hang = f["hang_s"]
                    break
            else:
                hang = None
        if hang is not None:
            time.sleep(hang)
            return None, None
        with self.lock:
            return self._route(method, path, query, body, user)

    def _route(self, method, path, query, body, user):
        m = re.fullmatch(r"/stable/sites/([^/]+)(/.*)?", path)
        if not m or m.group(1) != self.site:
            return 404, {"message": f"no such site or path {path}"}
        rest = m.group(2) or ""
        if rest == "" and method == "GET":
            return 200, {"uid": self.site}
        if rest == "/jobs" and method == "GET":
            states = [x.capitalize() for x in query.get("state", [""])[0].split(",") if x]
            items = []
            for j in sorted(self.jobs.values(), key=lambda j: -j["uid"]):
                self._advance(j)
                if states and OAR_STATE[j["state"]] not in states:
                    continue
                if "user" in query and j["user"] != query["user"][0]:
                    continue
                if "name" in query and j["name"] != query["name"][0]:
                    continue
                items.append(self._job_doc(j, full=False))
            return 200, {"total": len(items), "offset": 0, "items": items, "links": []}
        if rest == "/jobs" and method == "POST":
            if not isinstance(body, dict) or not body.get("command") or not body.get("resources"):
                return 400, {"message": "command and resources are required"}
            r = body.get("reservation")
            if r is not None and not re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", str(r)):
                return 400, {"message": f"OAR: bad reservation date {r!r}"}
            uid = self._new_job(body, user)
            return 201, self._job_doc(self.jobs[uid])
        m = re.fullmatch(r"/jobs/(\d+)", rest)
        if m:
            j = self.jobs.get(int(m.group(1)))
            if j is None:
                return 404, {"message": "no such job"}
            if method == "GET":
                self._advance(j)
                return 200, self._job_doc(j)
            if method == "DELETE":
                self._delete(j, user)
                return 202, ""          # an empty body, as the API answers
        if rest == "/deployments" and method == "POST":
            nodes = body.get("nodes") or []
            live = {n for j in self.jobs.values() if j["state"] == "running"
                    and "deploy" in j["types"] for n in j["assigned_nodes"]}
            if not nodes or not set(nodes) <= live or not body.get("environment"):
                return 400, {"message": "nodes must belong to a running deploy job"}
            uid = f"D-{self.next_dep}"
            self.next_dep += 1
            self.deployments[uid] = {"uid": uid, "status": "processing", "nodes": nodes,
                                     "environment": body["environment"],
                                     "key": body.get("key"), "created": time.monotonic(),
                                     "result": {}}
            return 201, {k: v for k, v in self.deployments[uid].items() if k != "created"}
        m = re.fullmatch(r"/deployments/([^/]+)", rest)
        if m and method == "GET":
            d = self.deployments.get(m.group(1))
            if d is None:
                return 404, {"message": "no such deployment"}
            self._advance_dep(d)
            return 200, {k: v for k, v in d.items() if k != "created"}
        m = re.fullmatch(r"/clusters/([^/]+)(/nodes/([^/]+))?", rest)
        if m and method == "GET" and m.group(1) == self.cluster:
            if m.group(3) is None:
                return 200, {"uid": self.cluster}
            n = self.nodes.get(m.group(3))
            return (200, n) if n else (404, {"message": "no such node"})
        m = re.fullmatch(r"/vlans/([^/]+)(/nodes)?", rest)
        if m:
            if method == "GET" and not m.group(2):
                return 200, {"uid": m.group(1), "type": "kavlan-local", "links": []}
            if method == "POST" and m.group(2):
                if not isinstance(body, list):
                    return 422, {"message": "Missing node list"}
                return 200, self._kavlan(m.group(1), body)
        return 404, {"message": f"not implemented here: {method} {path}"}
