"""A local Grid'5000 REST API for the g5k platform's tests: the part the
platform uses, as a state machine, over real HTTP on 127.0.0.1 (a random
port), so the platform runs its real code path (python-grid5000, requests,
timeouts); only the base URL and the credentials differ.

Jobs: waiting -> launching -> running by the clock (or never), deleted ->
terminated, ended on demand (error/terminated with an event). Deployments:
processing -> terminated (per-node OK/KO; nodes told to fail do so a given
number of times), error when every node failed. The reference API serves
two nodes with their network adapters. Faults: a 500 or a hang longer than
the client's timeout on matching requests, a given number of times.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

LIVE = ("waiting", "launching", "running")


def adapters(mgmt_ip: str, second_port: bool = True, driver: str = "i40e",
             test_ifname: str = "eth1") -> list[dict]:
    """Like the reference API's network_adapters of a chiclet node."""
    out = [{"device": "eth0", "name": "eth0", "interface": "Ethernet", "driver": driver,
            "model": "XXV710", "rate": 25_000_000_000, "mounted": True, "mountable": True,
            "management": False, "enabled": True, "ip": mgmt_ip, "switch": "gw-lille",
            "kavlan": True}]
    if second_port:
        out.append({"device": "eth1", "name": test_ifname, "interface": "Ethernet",
                    "driver": driver, "model": "XXV710", "rate": 25_000_000_000,
                    "mounted": False, "mountable": True, "management": False,
                    "enabled": True, "switch": "sw-lille-2", "kavlan": True})
    out.append({"device": "bmc", "interface": "Ethernet", "management": True,
                "mounted": False, "mountable": False, "rate": 1_000_000_000,
                "ip": "172.17.0.1"})
    return out


class Server:
    """The API; `url` is the base URL to give the platform (api_url)."""

    def __init__(self, site: str = "lille", cluster: str = "chiclet",
                 mgmt_ips: tuple[str, str] = ("198.19.7.2", "198.19.7.6"),
                 second_port: bool = True, test_ifname: str = "eth1"):
        self.site, self.cluster = site, cluster
        self.lock = threading.Lock()
        self.jobs: dict[int, dict] = {}
        self.deployments: dict[str, dict] = {}
        self.requests: list[tuple[str, str, object]] = []
        self.faults: list[dict] = []
        self.next_job, self.next_dep = 4242, 1
        self.start_after_s: float | None = 0.2      # None: never starts
        self.launch_s = 0.2
        self.deploy_s = 0.3
        self.fail_nodes: dict[str, int] = {}         # node -> KO this many times
        self.vlans: dict[str, list] = {}
        self.nodes = {}
        for i, ip in enumerate(mgmt_ips, 1):
            uid = f"{cluster}-{i}"
            self.nodes[uid] = {"uid": uid, "type": "node", "architecture":
                               {"platform_type": "x86_64"},
                               "processor": {"model": "Intel Xeon", "version": "Gold 6126"},
                               "network_adapters": adapters(ip, second_port,
                                                            test_ifname=test_ifname)}
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
                data = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json; charset=utf-8")
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

    def end_job(self, uid: int, state: str = "error",
                description: str = "walltime reached") -> None:
        with self.lock:
            j = self.jobs[uid]
            j["state"] = state
            j["events"].append({"type": "WALLTIME" if "walltime" in description else "KILL",
                                "description": description})

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
        self.jobs[uid] = {"uid": uid, "name": body.get("name"), "user": user,
                          "state": state, "created": time.monotonic(),
                          "types": body.get("types", []), "resources": body.get("resources"),
                          "properties": body.get("properties"),
                          "reservation": body.get("reservation"),
                          "assigned_nodes": [], "events": []}
        if state == "running":
            self._assign(self.jobs[uid])
        return uid

    def _assign(self, j: dict) -> None:
        j["assigned_nodes"] = [f"{n}.{self.site}.grid5000.fr" for n in self.nodes]
        if "kavlan" in (j["resources"] or ""):
            j["resources_by_type"] = {"vlans": ["4"]}

    def _advance(self, j: dict) -> None:
        if j["state"] not in ("waiting", "launching") or self.start_after_s is None:
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

    def _job_doc(self, j: dict) -> dict:
        return {k: v for k, v in j.items() if k != "created"}

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
            states = (query.get("state", [""])[0] or "").split(",")
            items = []
            for j in self.jobs.values():
                self._advance(j)
                if states != [""] and j["state"] not in states:
                    continue
                if "user" in query and j["user"] != query["user"][0]:
                    continue
                if "name" in query and j["name"] != query["name"][0]:
                    continue
                items.append({"uid": j["uid"], "state": j["state"], "user": j["user"],
                              "name": j["name"]})
            return 200, {"items": items, "total": len(items)}
        if rest == "/jobs" and method == "POST":
            if not isinstance(body, dict) or not body.get("command") or not body.get("resources"):
                return 400, {"message": "command and resources are required"}
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
                if j["state"] in LIVE:
                    j["state"] = "terminated"
                    j["events"].append({"type": "FRAG_JOB_REQUEST",
                                        "description": f"deleted by {user}"})
                return 202, {"uid": j["uid"], "status": "Delete request registered"}
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
                return 200, {"uid": m.group(1)}
            if method == "POST" and m.group(2):
                self.vlans.setdefault(m.group(1), []).extend(body or [])
                return 200, {"items": [{"uid": n, "vlan": m.group(1)} for n in body or []]}
        return 404, {"message": f"not implemented here: {method} {path}"}
